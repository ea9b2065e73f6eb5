/*
 * Matching: globs, flag normalization, addresses, and the matchers of one
 * rule. Everything here runs inside ag_decide, so it never allocates,
 * never locks and never touches global state: subjects are examined in
 * place (an argument's normalized flag forms are slices of the argument
 * or a two-byte buffer on the stack).
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "policy_internal.h"

/* ---- globs --------------------------------------------------------------- */

/* Loop iterations of the matchers, for the unit tests that prove them
 * bounded; per thread because decide runs concurrently, initial-exec so
 * that counting is safe in a signal handler. Hidden like every symbol
 * that is not in exports.map. */
__thread unsigned long ag_match_steps __attribute__((tls_model("initial-exec")));

static unsigned char fold(unsigned char c, int icase)
{
	return icase && c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* The end (one past ']') of the bracket expression at p, or NULL when it
 * is unterminated, in which case '[' is an ordinary character. */
static const char *class_end(const char *p, const char *pe)
{
	const char *q = p + 1;

	if (q < pe && (*q == '!' || *q == '^'))
		q++;
	if (q < pe && *q == ']')
		q++;   /* a ']' first is a member, as in fnmatch */
	while (q < pe && *q != ']') {
		if (*q == '\\' && q + 1 < pe)
			q++;
		q++;
	}
	return q < pe ? q + 1 : NULL;
}

static int class_match(const char *p, const char *end, unsigned char c, int icase)
{
	const char *q = p + 1, *last = end - 1;   /* last: the closing ']' */
	int neg = 0, hit = 0;

	if (*q == '!' || *q == '^') {
		neg = 1;
		q++;
	}
	c = fold(c, icase);
	while (q < last) {
		unsigned char lo, hi;

		if (*q == '\\' && q + 1 < last)
			q++;
		lo = hi = (unsigned char)*q++;
		if (q + 1 < last && *q == '-') {
			q++;
			if (*q == '\\' && q + 1 < last)
				q++;
			hi = (unsigned char)*q++;
		}
		lo = fold(lo, icase);
		hi = fold(hi, icase);
		if (c >= lo && c <= hi)
			hit = 1;
	}
	return hit != neg;
}

/* Match the single token at p (not '*') against c; returns the token's
 * end and sets *ok. */
static const char *glob_tok(const char *p, const char *pe, unsigned char c,
			    int icase, int *ok)
{
	if (*p == '?') {
		*ok = 1;
		return p + 1;
	}
	if (*p == '[') {
		const char *q = class_end(p, pe);
		if (q) {
			ag_match_steps += (unsigned long)(q - p);   /* both scan it */
			*ok = class_match(p, q, c, icase);
			return q;
		}
	}
	if (*p == '\\' && p + 1 < pe)
		p++;
	*ok = fold((unsigned char)*p, icase) == fold(c, icase);
	return p + 1;
}

/*
 * [p, pe) against [s, se). '*' backtracks only to the most recent star,
 * which is exact because every other token consumes exactly one
 * character; the cost is O(|p| * |s|) at worst, never exponential.
 */
static int glob_seg(const char *p, const char *pe, const char *s, const char *se,
		    int icase)
{
	const char *star_p = NULL, *star_s = NULL;

	while (s < se) {
		AG_MATCH_STEP();
		if (p < pe && *p == '*') {
			while (p < pe && *p == '*')
				p++;
			if (p == pe)
				return 1;
			star_p = p;
			star_s = s;
			continue;
		}
		if (p < pe) {
			int ok;
			const char *np = glob_tok(p, pe, (unsigned char)*s, icase, &ok);
			if (ok) {
				p = np;
				s++;
				continue;
			}
		}
		if (!star_p)
			return 0;
		p = star_p;
		s = ++star_s;
	}
	while (p < pe && *p == '*')
		p++;
	return p == pe;
}

int ag_glob_flat(const char *pat, const char *s, size_t slen, int icase)
{
	return glob_seg(pat, pat + strlen(pat), s, s + slen, icase);
}

static int is_dstar(const char *p, const char *pe)
{
	return pe - p == 2 && p[0] == '*' && p[1] == '*';
}

/*
 * p and s each start a component. The same algorithm as glob_seg, one
 * level up: every component other than '**' consumes exactly one
 * component of the subject, so on a mismatch only the most recent '**'
 * needs to take one more component, and earlier ones never have to be
 * revisited. Each (pattern component, subject component) pair is then
 * compared at most once, so the whole match costs O(|pattern| * |path|)
 * character steps however many '**' there are.
 */
static int glob_path(const char *p, const char *s)
{
	const char *star_p = NULL, *star_s = NULL;
	int s_done = 0;   /* the subject's last component has been consumed */

	/* p == NULL: the pattern's last component has been consumed. */
	while (!s_done) {
		AG_MATCH_STEP();
		if (p) {
			const char *pe = strchrnul(p, '/');

			if (is_dstar(p, pe)) {
				while (is_dstar(p, pe) && *pe) {
					p = pe + 1;
					pe = strchrnul(p, '/');
				}
				if (is_dstar(p, pe))
					return 1;   /* a trailing '**' takes the rest */
				star_p = p;
				star_s = s;
				continue;
			}
			const char *se = strchrnul(s, '/');
			if (glob_seg(p, pe, s, se, 0)) {
				p = *pe ? pe + 1 : NULL;
				s_done = !*se;
				s = se + 1;
				continue;
			}
		}
		if (!star_p)
			return 0;
		const char *next = strchrnul(star_s, '/');
		if (!*next)
			return 0;   /* the '**' already took every component */
		p = star_p;
		s = star_s = next + 1;
	}
	/* The subject ended: what is left of the pattern must be all '**'
	 * (a trailing double star matches zero components). */
	while (p) {
		const char *pe = strchrnul(p, '/');
		AG_MATCH_STEP();
		if (!is_dstar(p, pe))
			return 0;
		p = *pe ? pe + 1 : NULL;
	}
	return 1;
}

int ag_glob_match(const char *pattern, const char *path)
{
	if (!pattern || !path)
		return 0;
	return glob_path(pattern, path);
}

const char *ag_glob_check(const char *pat)
{
	const char *pe = pat + strlen(pat);
	int dstars = 0;

	for (const char *p = pat; p < pe; p++) {
		if (*p == '\\') {
			if (p + 1 == pe)
				return "pattern ends with a lone backslash";
			p++;
		} else if (*p == '[') {
			const char *q = class_end(p, pe);
			if (!q)
				return "unterminated '[' in pattern";
			if (memchr(p, '/', (size_t)(q - p)))
				return "'/' inside [...] in pattern";
			p = q - 1;
		} else if (*p == '*' && p + 1 < pe && p[1] == '*' &&
			   (p == pat || p[-1] == '/') && (p + 2 == pe || p[2] == '/')) {
			dstars++;
			p++;
		}
	}
	/* Matching costs O(pattern * path) however many there are (glob_path);
	 * the limit stays because more than four never means anything a real
	 * path rule needs, and rule files already written rely on it. */
	if (dstars > 4)
		return "too many '**' components in pattern (at most 4)";
	return NULL;
}

static int is_meta(char c)
{
	return c == '*' || c == '?' || c == '[' || c == '\\';
}

void ag_glob_shape(struct ag_glob *g)
{
	const char *p = g->pat;
	size_t n = strlen(p), plen = 0;

	while (plen < n && !is_meta(p[plen]))
		plen++;
	g->frag = NULL;
	g->flen = 0;
	if (plen == n) {
		g->shape = AG_GLOB_EXACT;
		g->plen = n;
		return;
	}
	/* "dir" matches "dir/" + "**": the prefix stops before that slash. */
	if (plen > 0 && p[plen - 1] == '/' && p[plen] == '*' && p[plen + 1] == '*' &&
	    (p[plen + 2] == '/' || p[plen + 2] == 0))
		plen--;
	g->plen = plen;
	if (!g->base && plen + 3 == n && p[plen] == '/' && p[plen + 1] == '*' &&
	    p[plen + 2] == '*') {
		g->shape = AG_GLOB_UNDER;
		return;
	}
	/* The longest literal run after the prefix, within one component. */
	for (size_t i = plen; i < n;) {
		if (is_meta(p[i]) || p[i] == '/') {
			if (p[i] == '\\' && i + 1 < n)
				i++;
			else if (p[i] == '[') {
				const char *q = class_end(p + i, p + n);
				if (q)
					i = (size_t)(q - p) - 1;
			}
			i++;
			continue;
		}
		size_t j = i;
		while (j < n && !is_meta(p[j]) && p[j] != '/')
			j++;
		if (j - i > g->flen) {
			g->frag = p + i;
			g->flen = j - i;
		}
		i = j;
	}
	g->fmask = 0;
	for (size_t i = 0; i < g->flen; i++)
		g->fmask |= 1ull << (g->frag[i] & 63);
	if (plen == 0 && p[0] == '*' && g->flen && g->frag + g->flen == p + n &&
	    g->frag == p + 1)
		g->shape = AG_GLOB_SUFFIX;
	else
		g->shape = AG_GLOB_GENERAL;
}

void ag_globset_finish(struct ag_globset *set)
{
	size_t c = 0;

	for (size_t i = 0; i < set->n; i++) {
		const struct ag_glob *g = &set->g[i];
		if (g->base) {
			c = 0;
			break;
		}
		if (i == 0) {
			c = g->plen;
			continue;
		}
		size_t k = 0;
		while (k < c && k < g->plen && g->pat[k] == set->g[0].pat[k])
			k++;
		c = k;
	}
	set->clen = c;
}

/* ---- addresses ----------------------------------------------------------- */

int ag_net_parse(const char *s, struct ag_net *out, int allow_prefix)
{
	char buf[INET6_ADDRSTRLEN + 16];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	int max;

	if (n == 0 || n >= sizeof buf)
		return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET, buf, out->a) == 1) {
		max = 32;
	} else {
		char *zone = strchr(buf, '%');   /* fe80::1%eth0 */
		if (zone && !slash)
			*zone = 0;
		if (inet_pton(AF_INET6, buf, out->a) != 1)
			return -1;
		out->v6 = 1;
		max = 128;
	}
	out->prefix = max;
	if (slash) {
		const char *d = slash + 1;
		int v = 0;
		if (!allow_prefix || !*d || strlen(d) > 3)
			return -1;
		for (; *d; d++) {
			if (*d < '0' || *d > '9')
				return -1;
			v = v * 10 + (*d - '0');
		}
		if (v > max)
			return -1;
		out->prefix = v;
	}
	/* ::ffff:a.b.c.d is an IPv4 peer reached over a v6 socket; treat it
	 * as IPv4 so one rule on 169.254.169.254 catches both spellings. */
	static const unsigned char mapped[12] = {0,0,0,0,0,0,0,0,0,0,0xff,0xff};
	if (out->v6 && out->prefix >= 96 && memcmp(out->a, mapped, 12) == 0) {
		memmove(out->a, out->a + 12, 4);
		memset(out->a + 4, 0, 12);
		out->v6 = 0;
		out->prefix -= 96;
	}
	/* Clear host bits so containment is a plain prefix comparison. */
	int bytes = out->v6 ? 16 : 4;
	for (int i = 0; i < bytes; i++) {
		int keep = out->prefix - i * 8;
		if (keep <= 0)
			out->a[i] = 0;
		else if (keep < 8)
			out->a[i] &= (unsigned char)(0xff << (8 - keep));
	}
	return 0;
}

static int net_contains(const struct ag_net *net, const struct ag_net *addr)
{
	int full = net->prefix / 8, rest = net->prefix % 8;

	if (net->v6 != addr->v6)
		return 0;
	if (memcmp(net->a, addr->a, (size_t)full) != 0)
		return 0;
	if (rest) {
		unsigned char m = (unsigned char)(0xff << (8 - rest));
		if ((net->a[full] & m) != (addr->a[full] & m))
			return 0;
	}
	return 1;
}

/* ---- explanations -------------------------------------------------------- */

void ag_why_add(struct ag_why *w, const char *fmt, ...)
{
	va_list ap;

	if (!w || w->len + 1 >= w->cap)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(w->buf + w->len, w->cap - w->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	w->len += (size_t)n;
	if (w->len >= w->cap)
		w->len = w->cap - 1;   /* truncated; still terminated */
}

static void why_reset(struct ag_why *w, size_t len)
{
	if (w) {
		w->len = len;
		w->buf[len] = 0;
	}
}

/* One "<what> <subject> matches <pattern>" clause, comma-separated from
 * the previous one of the same set. */
static void why_clause(struct ag_why *w, size_t start, const char *what,
		       const char *subj, const char *verb, const char *orig,
		       const char *list)
{
	if (!w)
		return;
	ag_why_add(w, "%s%s %s %s %s", w->len > start ? ", " : "", what, subj, verb,
		   orig);
	if (list)
		ag_why_add(w, " (@%s)", list);
}

/* ---- the matchers -------------------------------------------------------- */

static void subj_set(struct ag_subj *j, const char *s)
{
	j->s = s;
	j->have_mask = 0;
	if (!s) {
		j->len = j->blen = 0;
		j->base = NULL;
		return;
	}
	j->len = strlen(s);
	const char *sl = memrchr(s, '/', j->len);
	j->base = sl ? sl + 1 : s;
	j->blen = j->len - (size_t)(j->base - s);
}

void ag_mctx_init(struct ag_mctx *c, const struct ag_op *op)
{
	c->op = op;
	subj_set(&c->path, NULL);
	subj_set(&c->target, NULL);
	subj_set(&c->unix_, NULL);
	subj_set(&c->database, NULL);
	switch (op->kind) {
	case AG_OP_DELETE:
	case AG_OP_TRUNCATE:
	case AG_OP_WRITE:
	case AG_OP_MODE:
		subj_set(&c->path, op->path);
		break;
	case AG_OP_RENAME:
	case AG_OP_LINK:
		subj_set(&c->path, op->path);
		subj_set(&c->target, op->target);
		break;
	case AG_OP_CONNECT:
		subj_set(&c->unix_, op->unix_path);
		break;
	case AG_OP_SQL:
		subj_set(&c->database, op->database);
		break;
	default:
		break;
	}
	subj_set(&c->prog, op->kind == AG_OP_EXEC ? op->path : op->caller);
	c->prog_bit = 0;
	c->addr_state = 0;
	c->sql_class = -2;
}

static const struct ag_net *mctx_addr(struct ag_mctx *c)
{
	if (c->addr_state == 0)
		c->addr_state = c->op->addr && ag_net_parse(c->op->addr, &c->addr, 0) == 0
				? 1 : -1;
	return c->addr_state == 1 ? &c->addr : NULL;
}

static int mctx_class(struct ag_mctx *c)
{
	if (c->sql_class == -2) {
		const struct ag_op *op = c->op;
		if (op->sql_class >= 0 && op->sql_class < AG_SQL_CLASS_COUNT)
			c->sql_class = op->sql_class;
		else if (op->sql)
			c->sql_class = (int)ag_sql_classify(op->sql, -1);
		else
			c->sql_class = -1;
	}
	return c->sql_class;
}

static uint64_t subj_mask(struct ag_subj *j)
{
	if (!j->have_mask) {
		uint64_t m = 0;
		for (size_t i = 0; i < j->len; i++)
			m |= 1ull << (j->s[i] & 63);
		j->mask = m;
		j->have_mask = 1;
	}
	return j->mask;
}

static int glob_one(const struct ag_glob *g, struct ag_subj *j)
{
	const char *s = g->base ? j->base : j->s;
	size_t n = g->base ? j->blen : j->len;

	if (n < g->plen || memcmp(s, g->pat, g->plen) != 0)
		return 0;
	switch (g->shape) {
	case AG_GLOB_EXACT:
		return n == g->plen;
	case AG_GLOB_UNDER:
		return n == g->plen || s[g->plen] == '/';
	case AG_GLOB_SUFFIX:
		return n >= g->flen && memcmp(s + n - g->flen, g->frag, g->flen) == 0;
	case AG_GLOB_GENERAL:
		break;
	}
	if (g->flen && ((g->fmask & ~subj_mask(j)) ||
			!memmem(s + g->plen, n - g->plen, g->frag, g->flen)))
		return 0;
	return g->base ? glob_seg(g->pat, g->pat + strlen(g->pat), s, s + n, 0)
		       : glob_path(g->pat, s);
}

static int match_globs(const struct ag_globset *set, struct ag_subj *j,
		       struct ag_why *w, size_t start, const char *what)
{
	if (!j->s)
		return 0;
	if (set->clen && (j->len < set->clen || memcmp(j->s, set->g[0].pat, set->clen) != 0))
		return 0;
	for (size_t i = 0; i < set->n; i++) {
		if (glob_one(&set->g[i], j)) {
			why_clause(w, start, what, j->s, "matches", set->g[i].orig,
				   set->g[i].list);
			return 1;
		}
	}
	return 0;
}

static int alts_match(const struct ag_argent *e, int flag, const char *s, size_t len)
{
	for (size_t i = 0; i < e->n; i++)
		if (e->alts[i].flag == flag && ag_glob_flat(e->alts[i].glob, s, len, 0))
			return 1;
	return 0;
}

static int isalnum_ascii(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9');
}

/* Does some argument satisfy entry e? Flags are normalized on the fly:
 * "--name=v" is --name; "-x...=v" is -x...; "-abc" (all alphanumeric) is
 * -a, -b, -c and -abc; anything after a bare "--" is positional. */
static const char *argent_match(const struct ag_argent *e, const char *const *argv)
{
	int positional = 0;

	if (!argv || !argv[0])
		return NULL;
	for (const char *const *a = argv + 1; *a; a++) {
		const char *s = *a;

		if (!positional && strcmp(s, "--") == 0) {
			positional = 1;
			continue;
		}
		if (positional || s[0] != '-' || s[1] == 0) {
			if (alts_match(e, 0, s, strlen(s)))
				return s;
			continue;
		}
		const char *eq = strchr(s, '=');
		size_t len = strlen(s);
		/* A pattern may name the value too: --method=DELETE, -XDELETE. */
		if (alts_match(e, 1, s, len))
			return s;
		if (eq) {
			if (alts_match(e, 1, s, (size_t)(eq - s)))
				return s;
			continue;
		}
		if (s[1] == '-')
			continue;
		int cluster = 1;
		for (const char *q = s + 1; *q; q++)
			if (!isalnum_ascii(*q)) {
				cluster = 0;
				break;
			}
		if (!cluster || len == 2)
			continue;
		for (const char *q = s + 1; *q; q++) {
			char one[3] = {'-', *q, 0};
			if (alts_match(e, 1, one, 2))
				return s;
		}
	}
	return NULL;
}

static int args_match(const struct ag_mset *m, const struct ag_op *op,
		      struct ag_why *w, size_t start)
{
	for (size_t i = 0; i < m->nargs; i++) {
		const char *hit = argent_match(&m->args[i], op->argv);
		if (!hit)
			return 0;
		if (w) {
			ag_why_add(w, "%sargument \"%s\" matches %s", w->len > start ? ", " : "",
				   hit, m->args[i].orig);
		}
	}
	return 1;
}

static int vflag_takes_next(const struct ag_mset *m, const char *s)
{
	for (size_t i = 0; i < m->nvflags; i++)
		if (strcmp(m->vflags[i], s) == 0)
			return 1;
	return 0;
}

/* The next positional word of argv from *a on: flags are skipped, and a
 * value flag with the word after it; after a bare "--" every word is
 * positional. NULL at the end. */
static const char *next_positional(const struct ag_mset *m, const char *const **a,
				   int *positional)
{
	while (**a) {
		const char *s = *(*a)++;
		AG_MATCH_STEP();
		if (*positional || s[0] != '-' || s[1] == 0)
			return s;
		if (strcmp(s, "--") == 0) {
			*positional = 1;
			continue;
		}
		if (!strchr(s, '=') && vflag_takes_next(m, s) && **a)
			(*a)++;
	}
	return NULL;
}

static int cmdent_match(const struct ag_mset *m, const struct ag_cmdent *e,
			const char *const *argv)
{
	const char *const *a = argv + 1;
	int positional = 0;

	for (size_t i = 0; i < e->n; i++) {
		const char *w = next_positional(m, &a, &positional);
		if (!w)
			return 0;
		size_t len = strlen(w), k;
		for (k = 0; k < e->words[i].n; k++)
			if (ag_glob_flat(e->words[i].alts[k], w, len, 0))
				break;
		if (k == e->words[i].n)
			return 0;
	}
	return 1;
}

static int command_match(const struct ag_mset *m, const struct ag_op *op,
			 struct ag_why *w, size_t start)
{
	if (!op->argv || !op->argv[0])
		return 0;
	for (size_t i = 0; i < m->ncmd; i++)
		if (cmdent_match(m, &m->cmd[i], op->argv)) {
			if (w)
				ag_why_add(w, "%scommand matches \"%s\"", w->len > start ? ", " : "",
					   m->cmd[i].orig);
			return 1;
		}
	return 0;
}

static int host_match(const struct ag_mset *m, struct ag_mctx *c, struct ag_why *w,
		      size_t start)
{
	const struct ag_op *op = c->op;
	const char *host = op->host;
	size_t hlen = host ? strlen(host) : 0;

	/* "example.com." names the same host as "example.com". */
	if (hlen > 1 && host[hlen - 1] == '.')
		hlen--;
	for (size_t i = 0; i < m->nhost; i++) {
		const struct ag_hostpat *h = &m->host[i];
		if (h->is_net) {
			const struct ag_net *a = mctx_addr(c);
			if (a && net_contains(&h->net, a)) {
				why_clause(w, start, "address", op->addr, "is in", h->orig, h->list);
				return 1;
			}
			continue;
		}
		if (host && ag_glob_flat(h->glob, host, hlen, 1)) {
			why_clause(w, start, "host", host, "matches", h->orig, h->list);
			return 1;
		}
		if (op->addr && ag_glob_flat(h->glob, op->addr, strlen(op->addr), 1)) {
			why_clause(w, start, "address", op->addr, "matches", h->orig, h->list);
			return 1;
		}
	}
	return 0;
}

static int cidr_match(const struct ag_mset *m, struct ag_mctx *c, struct ag_why *w,
		      size_t start)
{
	const struct ag_net *a = mctx_addr(c);

	if (!a)
		return 0;
	for (size_t i = 0; i < m->ncidr; i++)
		if (net_contains(&m->cidr[i], a)) {
			why_clause(w, start, "address", c->op->addr, "is in", m->cidr_orig[i],
				   NULL);
			return 1;
		}
	return 0;
}

static int port_match(const struct ag_mset *m, int port, struct ag_why *w, size_t start)
{
	if (port < 0)
		return 0;
	for (size_t i = 0; i < m->nport; i++)
		if (port >= m->port[i].lo && port <= m->port[i].hi) {
			if (w) {
				char num[16];
				snprintf(num, sizeof num, "%d", port);
				why_clause(w, start, "port", num, "is in", m->port[i].orig,
					   m->port[i].list);
			}
			return 1;
		}
	return 0;
}

/* All matchers of m against the op in c, with `subj` the path subject
 * (NULL for ops without one). */
static int mset_match(const struct ag_mset *m, struct ag_mctx *c,
		      struct ag_subj *subj, const char *subj_name, struct ag_why *w)
{
	const struct ag_op *op = c->op;
	size_t start = w ? w->len : 0;
	unsigned pr = m->present;

	if (!(m->ops & AG_OPBIT(op->kind)))
		return 0;
	if (!pr) {
		if (w)
			ag_why_add(w, "every %s (no matchers)", ag_op_name(op->kind));
		return 1;
	}
	/* Cheap, selective matchers first; `why` lists them in this order. */
	if ((pr & AG_M_PROGRAM) && !match_globs(&m->program, &c->prog, w, start, "program"))
		goto no;
	if ((pr & AG_M_PATH) && !match_globs(&m->path, subj, w, start, subj_name))
		goto no;
	if ((pr & AG_M_COMMAND) && !command_match(m, op, w, start))
		goto no;
	if ((pr & AG_M_ARGS) && !args_match(m, op, w, start))
		goto no;
	if (pr & AG_M_UNGUARDED) {
		if (!op->unguarded != !m->unguarded)
			goto no;
		if (w)
			ag_why_add(w, "%s%s", w->len > start ? ", " : "",
				   m->unguarded ? "the program runs unguarded"
						: "the program runs guarded");
	}
	if ((pr & AG_M_HOST) && !host_match(m, c, w, start))
		goto no;
	if ((pr & AG_M_CIDR) && !cidr_match(m, c, w, start))
		goto no;
	if ((pr & AG_M_PORT) && !port_match(m, op->port, w, start))
		goto no;
	if ((pr & AG_M_UNIX) && !match_globs(&m->unix_, &c->unix_, w, start, "socket"))
		goto no;
	if (pr & AG_M_CLASS) {
		int k = mctx_class(c);
		if (k < 0 || !(m->classes & (1u << k)))
			goto no;
		if (w)
			ag_why_add(w, "%sclass %s", w->len > start ? ", " : "",
				   ag_sql_class_name((enum ag_sql_class)k));
	}
	if ((pr & AG_M_DATABASE) && !match_globs(&m->database, &c->database, w, start,
						 "database"))
		goto no;
	return 1;
no:
	why_reset(w, start);
	return 0;
}

static enum ag_eval eval_subject(const struct ag_rule *r, struct ag_mctx *c,
				 struct ag_subj *subj, const char *subj_name,
				 struct ag_why *w)
{
	if (!mset_match(&r->m, c, subj, subj_name, w))
		return AG_EVAL_NO;
	for (size_t i = 0; i < r->nunless; i++) {
		size_t mark = w ? w->len : 0;
		if (w)
			ag_why_add(w, "; unless ");
		if (mset_match(&r->unless[i], c, subj, subj_name, w))
			return AG_EVAL_EXCEPTED;
		why_reset(w, mark);
	}
	return AG_EVAL_APPLIES;
}

/* explain's side of a rename: each subject gets its own text, and the
 * one that decided is kept. Separate (and never inlined) so that decide,
 * which may run on a signal handler's small stack, never carries this
 * buffer in its frame. */
static AG_NOINLINE enum ag_eval
rename_explained(const struct ag_rule *r, struct ag_mctx *c, struct ag_why *w,
		 enum ag_eval e1)
{
	char buf[4096];
	struct ag_why w2 = {buf, sizeof buf, 0};

	buf[0] = 0;
	enum ag_eval e2 = eval_subject(r, c, &c->target, "target", &w2);
	if (e2 > e1) {
		why_reset(w, 0);
		ag_why_add(w, "%s", buf);
		return e2;
	}
	return e1;
}

enum ag_eval ag_rule_eval(const struct ag_rule *r, struct ag_mctx *c, struct ag_why *w)
{
	const struct ag_op *op = c->op;

	if (!(r->ops & AG_OPBIT(op->kind)))
		return AG_EVAL_NO;
	if (~r->prog_names && !w) {
		/* The rule names its programs: most calls are by another. */
		if (!c->prog_bit)
			c->prog_bit = c->prog.s ? ag_name_bit(c->prog.base, c->prog.blen) : ~0ull;
		if (!(r->prog_names & c->prog_bit))
			return AG_EVAL_NO;
	}
	if (op->kind != AG_OP_RENAME && op->kind != AG_OP_LINK)
		return eval_subject(r, c, &c->path, "path", w);

	/* A rename is judged on each of its paths alone: moving /tmp/x onto
	 * ~/notes destroys ~/notes whatever rule /tmp/x falls under. */
	enum ag_eval e1 = eval_subject(r, c, &c->path, "source", w);
	if (e1 == AG_EVAL_APPLIES || !r->uses_path)
		return e1;
	if (w)
		return rename_explained(r, c, w, e1);
	enum ag_eval e2 = eval_subject(r, c, &c->target, "target", NULL);
	return e2 > e1 ? e2 : e1;
}

/* ---- every file of one directory ------------------------------------------
 * Whether a rule applies to a file directly in directory D can be the
 * same whatever the file's name: then one decision holds for all of them
 * (decide.c's ag_decide_dir, which guard.c remembers per directory, so
 * that rm -rf or a build deciding file after file in one directory does
 * not ask the rules again). Each matcher is judged three-valued for "D/B,
 * B any name without '/'": it matches every such file, none, or it
 * depends on B. Anything not certain is "depends". */

/* g against every "D/B": d[0, dl) is "D/" (the part of a path up to and
 * including its last '/'). */
static int glob_dir(const struct ag_glob *g, const char *d, size_t dl)
{
	const char *p = g->pat;
	size_t pl = g->plen;

	if (g->base)
		return AG_TRI_DEPENDS;
	/* Every match starts with the literal prefix, and every "D/B" with
	 * "D/": unless one is a prefix of the other, none matches. */
	for (size_t i = 0; i < pl && i < dl; i++)
		if (p[i] != d[i])
			return AG_TRI_NO;
	if (pl >= dl) {
		/* The prefix reaches into B: a '/' there cannot match it. */
		if (memchr(p + dl, '/', pl - dl))
			return AG_TRI_NO;
		if (g->shape == AG_GLOB_EXACT || g->shape == AG_GLOB_UNDER)
			return pl > dl ? AG_TRI_DEPENDS : AG_TRI_NO;
		return AG_TRI_DEPENDS;
	}
	/* The prefix P is shorter than "D/": everything under P holds the
	 * files of D if P is D or above it; P alone is too short for any. */
	if (g->shape == AG_GLOB_UNDER)
		return d[pl] == '/' ? AG_TRI_YES : AG_TRI_NO;
	if (g->shape == AG_GLOB_EXACT)
		return AG_TRI_NO;
	return AG_TRI_DEPENDS;
}

static int globs_dir(const struct ag_globset *set, const char *d, size_t dl)
{
	int r = AG_TRI_NO;

	for (size_t i = 0; i < set->n && r != AG_TRI_YES; i++) {
		int one = glob_dir(&set->g[i], d, dl);
		if (one != AG_TRI_NO)
			r = one;
	}
	return r;
}

static int mset_dir(const struct ag_mset *m, struct ag_mctx *c, const char *d, size_t dl)
{
	unsigned pr = m->present;

	if (!(m->ops & AG_OPBIT(c->op->kind)))
		return AG_TRI_NO;
	if (pr & ~(unsigned)(AG_M_PATH | AG_M_PROGRAM))
		return AG_TRI_DEPENDS;
	if ((pr & AG_M_PROGRAM) && !match_globs(&m->program, &c->prog, NULL, 0, "program"))
		return AG_TRI_NO;
	return pr & AG_M_PATH ? globs_dir(&m->path, d, dl) : AG_TRI_YES;
}

int ag_rule_dir(const struct ag_rule *r, struct ag_mctx *c, const char *d, size_t dl)
{
	const struct ag_op *op = c->op;

	if (!(r->ops & AG_OPBIT(op->kind)))
		return AG_TRI_NO;
	if (op->kind == AG_OP_RENAME || op->kind == AG_OP_LINK || op->kind == AG_OP_EXEC)
		return AG_TRI_DEPENDS;   /* more than one name */
	int m = mset_dir(&r->m, c, d, dl);
	if (m == AG_TRI_NO)
		return AG_TRI_NO;
	/* It applies where it matches and no `unless` does. */
	int u = AG_TRI_NO;
	for (size_t i = 0; i < r->nunless && u != AG_TRI_YES; i++) {
		int one = mset_dir(&r->unless[i], c, d, dl);
		if (one != AG_TRI_NO)
			u = one;
	}
	if (u == AG_TRI_YES)
		return AG_TRI_NO;
	return m == AG_TRI_YES && u == AG_TRI_NO ? AG_TRI_YES : AG_TRI_DEPENDS;
}


/*
 * Rule files: YAML text -> an immutable compiled struct ag_policy.
 *
 * Two stages. libyaml's event stream is first turned into a small tree of
 * our own (so aliases, anchors, odd tags and over-deep nesting are refused
 * at the event that introduces them, with its position); the tree is then
 * validated and compiled top-down. Every error is one line
 * "name:line:col: what is wrong" and unwinds with longjmp to the single
 * exit of ag_policy_load, which frees everything: the tree and scratch
 * space live in one arena, the policy in another, so an error half way
 * through never leaks and never hands out a half-built policy.
 *
 * Each rule's `tests:` examples are run as soon as the rule is compiled,
 * through the same evaluation ag_decide uses.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "policy_internal.h"

#define MAX_DEPTH 32

/* ---- arenas -------------------------------------------------------------- */

struct ag_arena_chunk {
	struct ag_arena_chunk *next;
	size_t used, cap;
	max_align_t data[];
};

static void *arena_alloc(struct ag_arena_chunk **head, size_t n)
{
	struct ag_arena_chunk *c = *head;

	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (n == 0)
		n = sizeof(max_align_t);
	if (!c || c->cap - c->used < n) {
		size_t cap = n > 16384 ? n : 16384;
		c = malloc(sizeof *c + cap);
		if (!c)
			return NULL;
		c->next = *head;
		c->used = 0;
		c->cap = cap;
		*head = c;
	}
	void *p = (unsigned char *)c->data + c->used;
	c->used += n;
	memset(p, 0, n);
	return p;
}

static void arena_free(struct ag_arena_chunk *c)
{
	while (c) {
		struct ag_arena_chunk *n = c->next;
		free(c);
		c = n;
	}
}

/* ---- the YAML tree ------------------------------------------------------- */

enum { Y_SCALAR, Y_SEQ, Y_MAP };

struct ynode {
	int kind;
	int line, col;           /* 1-based */
	const char *s;           /* scalar text, NUL-terminated */
	size_t len;
	int plain;               /* may be a number, bool or null */
	struct ynode *first, *last, *next;
	size_t n;                /* children; a map's alternate key, value */
	int layer;               /* the rule file it was read from */
	const struct ynode *over;   /* a rule made by override: the rule it replaced */
};

struct cc {
	const char *name;        /* the layer being read (or the top one) */
	const char *lname[AG_LAYERS_MAX];
	int lmanaged[AG_LAYERS_MAX];
	const char *ltext[AG_LAYERS_MAX];
	size_t llen[AG_LAYERS_MAX];
	int nlayers, cur;
	/* While an `unless:` is compiled: the rule's layer and node (an
	 * exception that grew in another layer loosens it). */
	int exc_layer;
	const struct ynode *exc_rule;
	char *err;
	size_t errlen;
	jmp_buf jb;
	const char *text;
	size_t len;
	const struct ag_policy_env *env;

	yaml_parser_t parser;
	int parser_live;
	yaml_event_t ev;
	int ev_live;

	struct ag_arena_chunk *tmp;
	struct ag_policy *p;
	struct ag_region *region;    /* non-NULL: the policy goes here (an image) */
	struct ynode *root;
	struct ynode *lists;

	const char *home;        /* NULL when the env gave none */
	const char *ws;
	const char *tmpdir;
};

static void fail_at(struct cc *cc, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5), noreturn));
static void fail_node(struct cc *cc, const struct ynode *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

/* One line, always: a newline in a quoted value must not split it. */
static void put_err(struct cc *cc, const char *name, int line, int col, const char *fmt,
		    va_list ap) __attribute__((format(printf, 5, 0)));
static void put_err(struct cc *cc, const char *name, int line, int col, const char *fmt,
		    va_list ap)
{
	if (!cc->err || !cc->errlen)
		return;
	int n = snprintf(cc->err, cc->errlen, "%s:%d:%d: ", name, line, col);
	if (n >= 0 && (size_t)n < cc->errlen)
		vsnprintf(cc->err + n, cc->errlen - (size_t)n, fmt, ap);
	for (char *q = cc->err; *q; q++)
		if (*q == '\n' || *q == '\r')
			*q = ' ';
}

static void fail_at(struct cc *cc, int line, int col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	put_err(cc, cc->name, line, col, fmt, ap);
	va_end(ap);
	longjmp(cc->jb, 1);
}

/* At a node: in the file it came from. */
static void fail_node(struct cc *cc, const struct ynode *at, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	put_err(cc, cc->lname[at->layer], at->line, at->col, fmt, ap);
	va_end(ap);
	longjmp(cc->jb, 1);
}

#define fail(cc, node, ...) fail_node((cc), (node), __VA_ARGS__)

static void *tmp_alloc(struct cc *cc, size_t n)
{
	void *p = arena_alloc(&cc->tmp, n);
	if (!p)
		fail_at(cc, 1, 1, "out of memory");
	return p;
}

/* A region is fresh anonymous memory, so already zero. */
void *ag_region_alloc(struct ag_region *r, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (n == 0)
		n = sizeof(max_align_t);
	if (r->cap - r->used < n)
		return NULL;
	void *p = r->base + r->used;
	r->used += n;
	return p;
}

static void *pol_alloc(struct cc *cc, size_t n)
{
	void *p = cc->region ? ag_region_alloc(cc->region, n) : arena_alloc(&cc->p->arena, n);
	if (!p)
		fail_at(cc, 1, 1, "out of memory");
	return p;
}

static char *pol_strdup(struct cc *cc, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = pol_alloc(cc, n);
	memcpy(d, s, n);
	return d;
}

static char *tmp_strndup(struct cc *cc, const char *s, size_t n)
{
	char *d = tmp_alloc(cc, n + 1);
	memcpy(d, s, n);
	d[n] = 0;
	return d;
}

/* Line and column of a byte offset, for errors libyaml reports by offset. */
static void offset_pos(const struct cc *cc, size_t off, int *line, int *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && i < cc->len; i++) {
		if (cc->text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)cc->text[i] & 0xc0) != 0x80) {
			(*col)++;
		}
	}
}

static void yaml_fail(struct cc *cc)
{
	yaml_parser_t *ps = &cc->parser;
	int line, col;

	if (ps->error == YAML_MEMORY_ERROR)
		fail_at(cc, 1, 1, "out of memory");
	if (ps->error == YAML_READER_ERROR) {
		offset_pos(cc, ps->problem_offset, &line, &col);
		fail_at(cc, line, col, "not valid UTF-8 text: %s",
			ps->problem ? ps->problem : "unreadable");
	}
	line = (int)ps->problem_mark.line + 1;
	col = (int)ps->problem_mark.column + 1;
	if (ps->context)
		fail_at(cc, line, col, "YAML syntax error: %s (%s that started at %d:%d)",
			ps->problem ? ps->problem : "malformed", ps->context,
			(int)ps->context_mark.line + 1, (int)ps->context_mark.column + 1);
	fail_at(cc, line, col, "YAML syntax error: %s",
		ps->problem ? ps->problem : "malformed");
}

static int core_tag(const yaml_char_t *tag, const char *const *ok)
{
	static const char prefix[] = "tag:yaml.org,2002:";
	const char *t = (const char *)tag;

	if (strncmp(t, prefix, sizeof prefix - 1) != 0)
		return 0;
	t += sizeof prefix - 1;
	for (; *ok; ok++)
		if (strcmp(t, *ok) == 0)
			return 1;
	return 0;
}

static void check_node_props(struct cc *cc, const yaml_event_t *ev,
			     const yaml_char_t *anchor, const yaml_char_t *tag,
			     const char *const *tags)
{
	int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;

	/* Anchors and aliases would let one node appear in several places;
	 * a rule file should say everything where it applies. */
	if (anchor)
		fail_at(cc, line, col, "YAML anchors and aliases are not allowed (use lists: and @name)");
	if (tag && !core_tag(tag, tags))
		fail_at(cc, line, col, "unsupported YAML tag '%s'", (const char *)tag);
}

static void add_child(struct ynode *parent, struct ynode *n)
{
	if (parent->last)
		parent->last->next = n;
	else
		parent->first = n;
	parent->last = n;
	parent->n++;
}

static void build_tree(struct cc *cc)
{
	static const char *const scalar_tags[] = {"str", "int", "bool", "null", NULL};
	static const char *const plain_tags[] = {"int", "bool", "null", NULL};
	static const char *const seq_tags[] = {"seq", NULL};
	static const char *const map_tags[] = {"map", NULL};
	struct ynode *stack[MAX_DEPTH];
	int depth = 0, docs = 0;

	/* In the preload library libyaml is loaded on first use (lazy.c), so
	 * this also fails when it cannot be loaded. */
	if (!yaml_parser_initialize(&cc->parser))
		fail_at(cc, 1, 1, "cannot start the YAML parser (libyaml missing or out of memory)");
	cc->parser_live = 1;
	yaml_parser_set_input_string(&cc->parser, (const unsigned char *)cc->text, cc->len);

	for (;;) {
		yaml_event_t *ev = &cc->ev;
		if (!yaml_parser_parse(&cc->parser, ev))
			yaml_fail(cc);
		cc->ev_live = 1;
		int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
		struct ynode *n = NULL;

		switch (ev->type) {
		case YAML_STREAM_END_EVENT:
			yaml_event_delete(ev);
			cc->ev_live = 0;
			return;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1)
				fail_at(cc, line, col, "a rule file holds one YAML document");
			break;
		case YAML_ALIAS_EVENT:
			fail_at(cc, line, col, "YAML anchors and aliases are not allowed (use lists: and @name)");
		case YAML_SCALAR_EVENT:
			check_node_props(cc, ev, ev->data.scalar.anchor, ev->data.scalar.tag,
					 scalar_tags);
			if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length)
				fail_at(cc, line, col, "NUL character in a string");
			n = tmp_alloc(cc, sizeof *n);
			n->kind = Y_SCALAR;
			n->s = tmp_strndup(cc, (const char *)ev->data.scalar.value,
					   ev->data.scalar.length);
			n->len = ev->data.scalar.length;
			n->plain = ev->data.scalar.tag
				   ? core_tag(ev->data.scalar.tag, plain_tags)
				   : ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
			break;
		case YAML_SEQUENCE_START_EVENT:
			check_node_props(cc, ev, ev->data.sequence_start.anchor,
					 ev->data.sequence_start.tag, seq_tags);
			n = tmp_alloc(cc, sizeof *n);
			n->kind = Y_SEQ;
			break;
		case YAML_MAPPING_START_EVENT:
			check_node_props(cc, ev, ev->data.mapping_start.anchor,
					 ev->data.mapping_start.tag, map_tags);
			n = tmp_alloc(cc, sizeof *n);
			n->kind = Y_MAP;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
		if (n) {
			n->line = line;
			n->col = col;
			n->layer = cc->cur;
			if (depth > 0)
				add_child(stack[depth - 1], n);
			else if (!cc->root)
				cc->root = n;
			if (n->kind != Y_SCALAR) {
				if (depth == MAX_DEPTH)
					fail_at(cc, line, col, "nested too deeply");
				stack[depth++] = n;
			}
		}
		yaml_event_delete(ev);
		cc->ev_live = 0;
	}
}

/* ---- typed access to nodes ----------------------------------------------- */

static const char *kind_name(const struct ynode *n)
{
	return n->kind == Y_MAP ? "a mapping" : n->kind == Y_SEQ ? "a list" : "a string";
}

static int is_null(const struct ynode *n)
{
	return n->kind == Y_SCALAR && n->plain &&
	       (n->len == 0 || strcmp(n->s, "~") == 0 || strcmp(n->s, "null") == 0 ||
		strcmp(n->s, "Null") == 0 || strcmp(n->s, "NULL") == 0);
}

static const char *get_str(struct cc *cc, const struct ynode *n, const char *what)
{
	if (n->kind != Y_SCALAR)
		fail(cc, n, "%s must be a string, not %s", what, kind_name(n));
	if (is_null(n)) {
		if (n->len && n->s[0] == '~')
			fail(cc, n, "%s is empty: a bare ~ is YAML's null, write \"~\" in quotes",
			     what);
		fail(cc, n, "%s is empty", what);
	}
	return n->s;
}

static int get_bool(struct cc *cc, const struct ynode *n, const char *what)
{
	if (n->kind == Y_SCALAR && n->plain) {
		if (!strcmp(n->s, "true") || !strcmp(n->s, "True") || !strcmp(n->s, "TRUE"))
			return 1;
		if (!strcmp(n->s, "false") || !strcmp(n->s, "False") || !strcmp(n->s, "FALSE"))
			return 0;
	}
	fail(cc, n, "%s must be true or false", what);
}

static long long parse_uint(const char *s, long long max)
{
	long long v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > max)
			return -1;
	}
	return v;
}

static long long get_uint(struct cc *cc, const struct ynode *n, const char *what,
			  long long max)
{
	long long v = -1;

	if (n->kind == Y_SCALAR && n->plain)
		v = parse_uint(n->s, max);
	if (v < 0)
		fail(cc, n, "%s must be a whole number from 0 to %lld", what, max);
	return v;
}

/* Walk a mapping's pairs, refusing non-string and duplicate keys and keys
 * not in `known`. vals[i]/keys[i] receive the node for known[i]. */
static void map_fields(struct cc *cc, const struct ynode *map, const char *what,
		       const char *const *known, struct ynode **keys, struct ynode **vals)
{
	size_t nk = 0;

	while (known[nk])
		nk++;
	for (size_t i = 0; i < nk; i++)
		keys[i] = vals[i] = NULL;
	if (map->kind != Y_MAP)
		fail(cc, map, "%s must be a mapping, not %s", what, kind_name(map));
	for (struct ynode *k = map->first; k; k = k->next->next) {
		if (k->kind != Y_SCALAR)
			fail(cc, k, "keys in %s must be plain words", what);
		size_t i;
		for (i = 0; i < nk; i++)
			if (strcmp(k->s, known[i]) == 0)
				break;
		if (i == nk) {
			char list[512];
			size_t off = 0;
			for (size_t j = 0; j < nk && off < sizeof list; j++)
				off += (size_t)snprintf(list + off, sizeof list - off, "%s%s",
							j ? ", " : "", known[j]);
			fail(cc, k, "unknown key '%s' in %s (expected one of: %s)", k->s, what,
			     list);
		}
		if (keys[i])
			fail(cc, k, "duplicate key '%s' (first at line %d)", k->s, keys[i]->line);
		keys[i] = k;
		vals[i] = k->next;
	}
}

/* Any mapping: just duplicate and non-string keys. */
static void map_check_keys(struct cc *cc, const struct ynode *map, const char *what)
{
	if (map->kind != Y_MAP)
		fail(cc, map, "%s must be a mapping, not %s", what, kind_name(map));
	for (struct ynode *k = map->first; k; k = k->next->next) {
		if (k->kind != Y_SCALAR || is_null(k))
			fail(cc, k, "keys in %s must be plain words", what);
		for (struct ynode *o = map->first; o != k; o = o->next->next)
			if (strcmp(o->s, k->s) == 0)
				fail(cc, k, "duplicate key '%s' (first at line %d)", k->s, o->line);
	}
}

static int name_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' || *s == '-'))
			return 0;
	return 1;
}

/* ---- $VARIABLES and ~ ---------------------------------------------------- */

static size_t var_name(const char *s, const char **name, size_t *nlen)
{
	/* s points just past '$'; returns the bytes consumed, 0 if no name. */
	if (*s == '{') {
		const char *e = strchr(s, '}');
		if (!e || e == s + 1)
			return 0;
		*name = s + 1;
		*nlen = (size_t)(e - s - 1);
		return (size_t)(e - s + 1);
	}
	size_t n = 0;
	while ((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z') || s[n] == '_' ||
	       (n > 0 && s[n] >= '0' && s[n] <= '9'))
		n++;
	*name = s;
	*nlen = n;
	return n;
}

static const char *var_value(struct cc *cc, const struct ynode *at, const char *name,
			     size_t nlen)
{
	if (nlen == 4 && memcmp(name, "HOME", 4) == 0) {
		if (!cc->home)
			fail(cc, at, "$HOME or ~ is used but no home directory is known");
		return cc->home;
	}
	if (nlen == 9 && memcmp(name, "WORKSPACE", 9) == 0) {
		if (!cc->ws)
			fail(cc, at, "$WORKSPACE cannot be used in the workspace itself");
		return cc->ws;
	}
	if (nlen == 6 && memcmp(name, "TMPDIR", 6) == 0)
		return cc->tmpdir;
	fail(cc, at, "unknown variable $%.*s (known: $HOME, $WORKSPACE, $TMPDIR)", (int)nlen,
	     name);
}

struct sbuf {
	char *b;
	size_t len, cap;
	int over;
};

static void sb_putc(struct sbuf *s, char c)
{
	if (s->len + 1 < s->cap)
		s->b[s->len++] = c;
	else
		s->over = 1;
	s->b[s->len] = 0;
}

static void sb_puts(struct sbuf *s, const char *t, int escape)
{
	for (; *t; t++) {
		if (escape && strchr("*?[]\\", *t))
			sb_putc(s, '\\');
		sb_putc(s, *t);
	}
}

/*
 * Expand a leading ~ and $HOME/$WORKSPACE/$TMPDIR (or ${NAME}) anywhere.
 * For globs (`glob`), the values are escaped so a workspace named
 * "a[1]" matches itself, and "\x" pairs are kept so "\$" stays literal.
 */
static void expand(struct cc *cc, const struct ynode *at, const char *in, int glob,
		   char *out, size_t outlen)
{
	struct sbuf sb = {out, 0, outlen, 0};
	const char *orig = in;

	out[0] = 0;
	if (in[0] == '~' && (in[1] == '/' || in[1] == 0)) {
		sb_puts(&sb, var_value(cc, at, "HOME", 4), glob);
		in++;
	}
	while (*in) {
		if (glob && *in == '\\' && in[1]) {
			sb_putc(&sb, *in++);
			sb_putc(&sb, *in++);
			continue;
		}
		if (*in == '$') {
			const char *name;
			size_t nlen, used = var_name(in + 1, &name, &nlen);
			if (used) {
				sb_puts(&sb, var_value(cc, at, name, nlen), glob);
				in += 1 + used;
				continue;
			}
		}
		sb_putc(&sb, *in++);
	}
	if (sb.over)
		fail(cc, at, "'%s' is too long once expanded", orig);
}

/* Normalize a glob with '/': no empty or "." components, ".." folded into
 * a literal parent, no trailing slash. Returns NULL on a ".." that would
 * climb out of a wildcard. */
static const char *glob_normalize(struct cc *cc, const char *g)
{
	size_t n = strlen(g);
	char *out = tmp_alloc(cc, n + 2);
	size_t len = 0;
	int abs = g[0] == '/';
	size_t comps = 0;

	if (abs)
		out[len++] = '/';
	for (const char *s = g; *s;) {
		while (*s == '/')
			s++;
		if (!*s)
			break;
		const char *e = strchrnul(s, '/');
		size_t cl = (size_t)(e - s);
		if (cl == 1 && s[0] == '.') {
			/* skip */
		} else if (cl == 2 && s[0] == '.' && s[1] == '.') {
			if (comps == 0) {
				if (!abs)
					return NULL;
			} else {
				size_t start = len;
				while (start > 0 && out[start - 1] != '/')
					start--;
				if (strpbrk(out + start, "*?[\\"))
					return NULL;
				len = start;
				if (len > (size_t)abs)
					len--;   /* the separator before it */
				out[len] = 0;
				comps--;
			}
		} else {
			if (len > (size_t)abs)
				out[len++] = '/';
			memcpy(out + len, s, cl);
			len += cl;
			comps++;
		}
		out[len] = 0;
		s = e;
	}
	out[len] = 0;
	return out;
}

/* ---- compiling matchers -------------------------------------------------- */

struct item {
	const char *s;
	const struct ynode *at;
	const char *list;
};

static struct ynode *map_key(const struct ynode *map, const char *key);

/* The list's key (its value is key->next). */
static struct ynode *find_list(struct cc *cc, const char *name)
{
	if (!cc->lists)
		return NULL;
	for (struct ynode *k = cc->lists->first; k; k = k->next->next)
		if (strcmp(k->s, name) == 0)
			return k;
	return NULL;
}

/* An exception (`unless:`) must not grow from another layer: entries a
 * layer added to a list the rule's exception names would loosen a rule of
 * a file below it without an `override:`. */
static void check_exception_entry(struct cc *cc, const struct ynode *list_key,
				  const struct ynode *e)
{
	if (cc->exc_layer < 0 || e->layer == list_key->layer || e->layer == cc->exc_layer)
		return;
	const struct ynode *r = cc->exc_rule, *id = map_key(r, "id");
	fail(cc, e, "this adds '%s' to list '%s', which is an exception (unless:) of rule '%s' "
	     "(%s:%d:%d): that would loosen that rule; override it (override: - id: %s) to "
	     "loosen it, or give your own rules a list of another name",
	     e->s, list_key->s, id->next->s, cc->lname[r->layer], r->line, r->col,
	     id->next->s);
}

static int matcher_index(const char *key);

/* A matcher's value: a string or a list of strings, each possibly an
 * @list reference, flattened. */
static struct item *collect(struct cc *cc, const struct ynode *v, const char *key,
			    int expand_lists, size_t *count)
{
	const struct ynode *one[1] = {v};
	size_t n = 0;

	if (v->kind == Y_MAP)
		fail(cc, v, "'%s' takes a string or a list of strings, not a mapping", key);
	if (v->kind == Y_SEQ && v->n == 0)
		fail(cc, v, "'%s' is an empty list%s", key,
		     matcher_index(key) >= 0 ? ": it would never match" : "");
	/* First count, then fill. */
	for (int pass = 0; pass < 2; pass++) {
		struct item *items = NULL;
		size_t i = 0;
		if (pass == 1)
			items = tmp_alloc(cc, (n ? n : 1) * sizeof *items);
		const struct ynode *e = v->kind == Y_SEQ ? v->first : one[0];
		for (; e; e = v->kind == Y_SEQ ? e->next : NULL) {
			if (e->kind != Y_SCALAR)
				fail(cc, e, "entries of '%s' must be strings, not %s", key,
				     kind_name(e));
			const char *s = get_str(cc, e, "an entry");
			if (expand_lists && s[0] == '@') {
				const struct ynode *lk = find_list(cc, s + 1);
				if (!lk)
					fail(cc, e, "unknown list '%s'", s);
				for (const struct ynode *li = lk->next->first; li; li = li->next) {
					if (pass == 1) {
						check_exception_entry(cc, lk, li);
						items[i] = (struct item){li->s, li, s + 1};
					}
					i++;
				}
			} else {
				if (pass == 1)
					items[i] = (struct item){s, e, NULL};
				i++;
			}
		}
		if (pass == 1) {
			*count = i;
			return items;
		}
		n = i;
	}
	return NULL;
}

enum glob_kind { G_PATH, G_DATABASE };

static void compile_glob(struct cc *cc, struct ag_glob *g, const struct item *it,
			 enum glob_kind kind, const char *key)
{
	char buf[AG_PATH_MAX];
	const char *pat = buf, *msg;

	expand(cc, it->at, it->s, 1, buf, sizeof buf);
	if (strchr(buf, '/')) {
		pat = glob_normalize(cc, buf);
		if (!pat)
			fail(cc, it->at, "'..' after a wildcard in '%s'", it->s);
		if (kind == G_PATH && pat[0] != '/')
			fail(cc, it->at,
			     "%s pattern '%s' must be absolute (start with /, ~, $HOME, $WORKSPACE or $TMPDIR) or a bare file name",
			     key, it->s);
	} else {
		g->base = 1;
	}
	if ((msg = ag_glob_check(pat)))
		fail(cc, it->at, "%s: '%s'", msg, it->s);
	g->pat = pol_strdup(cc, pat);
	g->orig = pol_strdup(cc, it->s);
	g->list = it->list ? pol_strdup(cc, it->list) : NULL;
	ag_glob_shape(g);
}

static struct ag_globset compile_globs(struct cc *cc, const struct ynode *v,
				       const char *key, enum glob_kind kind)
{
	struct ag_globset set = {0};
	size_t n;
	struct item *it = collect(cc, v, key, 1, &n);
	struct ag_glob *g = pol_alloc(cc, (n ? n : 1) * sizeof *g);

	for (size_t i = 0; i < n; i++)
		compile_glob(cc, &g[i], &it[i], kind, key);
	set.g = g;
	set.n = n;
	ag_globset_finish(&set);
	return set;
}

static void compile_hosts(struct cc *cc, struct ag_mset *m, const struct ynode *v)
{
	size_t n;
	struct item *it = collect(cc, v, "host", 1, &n);
	struct ag_hostpat *h = pol_alloc(cc, (n ? n : 1) * sizeof *h);

	for (size_t i = 0; i < n; i++) {
		const char *s = it[i].s, *msg;
		if (ag_net_parse(s, &h[i].net, 1) == 0) {
			h[i].is_net = 1;
		} else {
			if (strchr(s, '/'))
				fail(cc, it[i].at, "'%s' is neither a host name pattern nor an address or CIDR", s);
			if ((msg = ag_glob_check(s)))
				fail(cc, it[i].at, "%s: '%s'", msg, s);
			h[i].glob = pol_strdup(cc, s);
		}
		h[i].orig = pol_strdup(cc, s);
		h[i].list = it[i].list ? pol_strdup(cc, it[i].list) : NULL;
	}
	m->host = h;
	m->nhost = n;
}

static void compile_cidrs(struct cc *cc, struct ag_mset *m, const struct ynode *v)
{
	size_t n;
	struct item *it = collect(cc, v, "cidr", 1, &n);
	struct ag_net *nets = pol_alloc(cc, (n ? n : 1) * sizeof *nets);
	const char **orig = pol_alloc(cc, (n ? n : 1) * sizeof *orig);

	for (size_t i = 0; i < n; i++) {
		if (ag_net_parse(it[i].s, &nets[i], 1) < 0)
			fail(cc, it[i].at, "'%s' is not an address or CIDR (e.g. 10.0.0.0/8, fd00::/8)",
			     it[i].s);
		orig[i] = pol_strdup(cc, it[i].s);
	}
	m->cidr = nets;
	m->cidr_orig = orig;
	m->ncidr = n;
}

static void compile_ports(struct cc *cc, struct ag_mset *m, const struct ynode *v)
{
	size_t n;
	struct item *it = collect(cc, v, "port", 1, &n);
	struct ag_portrange *pr = pol_alloc(cc, (n ? n : 1) * sizeof *pr);

	for (size_t i = 0; i < n; i++) {
		const char *s = it[i].s, *dash = strchr(s, '-');
		long long lo, hi;
		if (dash) {
			char a[16];
			size_t al = (size_t)(dash - s);
			if (al >= sizeof a)
				al = sizeof a - 1;
			memcpy(a, s, al);
			a[al] = 0;
			lo = parse_uint(a, 65535);
			hi = parse_uint(dash + 1, 65535);
		} else {
			lo = hi = parse_uint(s, 65535);
		}
		if (lo < 0 || hi < 0 || lo > hi)
			fail(cc, it[i].at, "'%s' is not a port (0-65535) or a range like 8000-8999",
			     s);
		pr[i].lo = (int)lo;
		pr[i].hi = (int)hi;
		pr[i].orig = pol_strdup(cc, s);
		pr[i].list = it[i].list ? pol_strdup(cc, it[i].list) : NULL;
	}
	m->port = pr;
	m->nport = n;
}

static void compile_classes(struct cc *cc, struct ag_mset *m, const struct ynode *v)
{
	size_t n;
	struct item *it = collect(cc, v, "class", 1, &n);

	for (size_t i = 0; i < n; i++) {
		int k = ag_sql_class_parse(it[i].s);
		if (k < 0) {
			char list[512];
			size_t off = 0;
			for (int j = 0; j < AG_SQL_CLASS_COUNT; j++)
				off += (size_t)snprintf(list + off, sizeof list - off, "%s%s",
							j ? ", " : "",
							ag_sql_class_name((enum ag_sql_class)j));
			fail(cc, it[i].at, "unknown SQL class '%s' (expected one of: %s)", it[i].s,
			     list);
		}
		m->classes |= 1u << k;
	}
}

/* Split one args entry on unescaped '|' into alternatives; an alternative
 * "@name" stands for every string of that list. */
static size_t compile_alts(struct cc *cc, const char *entry, const struct ynode *at,
			   struct ag_argalt *out, int depth)
{
	size_t n = 0;
	const char *s = entry;

	for (;;) {
		const char *e = s;
		while (*e && *e != '|') {
			if (*e == '\\' && e[1])
				e++;
			e++;
		}
		size_t len = (size_t)(e - s);
		if (len == 0)
			fail(cc, at, "empty alternative in args entry '%s'", entry);
		char *alt = tmp_strndup(cc, s, len);
		if (alt[0] == '@' && depth == 0) {
			const struct ynode *lk = find_list(cc, alt + 1);
			if (!lk)
				fail(cc, at, "unknown list '%s'", alt);
			for (const struct ynode *li = lk->next->first; li; li = li->next) {
				if (out)
					check_exception_entry(cc, lk, li);
				n += compile_alts(cc, li->s, li, out ? out + n : NULL, 1);
			}
		} else {
			const char *msg = ag_glob_check(alt);
			if (msg)
				fail(cc, at, "%s: '%s'", msg, alt);
			if (out) {
				out[n].glob = pol_strdup(cc, alt);
				out[n].flag = alt[0] == '-' && alt[1] != 0;
			}
			n++;
		}
		if (!*e)
			break;
		s = e + 1;
	}
	return n;
}

static void compile_args(struct cc *cc, struct ag_mset *m, const struct ynode *v)
{
	size_t n;
	struct item *it = collect(cc, v, "args", 0, &n);
	struct ag_argent *ents = pol_alloc(cc, n * sizeof *ents);

	for (size_t i = 0; i < n; i++) {
		size_t na = compile_alts(cc, it[i].s, it[i].at, NULL, 0);
		struct ag_argalt *alts = pol_alloc(cc, (na ? na : 1) * sizeof *alts);
		compile_alts(cc, it[i].s, it[i].at, alts, 0);
		ents[i].alts = alts;
		ents[i].n = na;
		ents[i].orig = pol_strdup(cc, it[i].s);
	}
	m->args = ents;
	m->nargs = n;
}

/* `command: "s3 rm"`: an entry is words separated by blanks, each word
 * alternatives separated by '|' (globs). */
static void compile_command(struct cc *cc, struct ag_mset *m, const struct ynode *v)
{
	size_t n;
	struct item *it = collect(cc, v, "command", 1, &n);
	struct ag_cmdent *ents = pol_alloc(cc, (n ? n : 1) * sizeof *ents);

	for (size_t i = 0; i < n; i++) {
		const char *s = it[i].s;
		size_t nw = 0;
		struct ag_cmdword *words = pol_alloc(cc, (strlen(s) / 2 + 1) * sizeof *words);
		for (;;) {
			while (*s == ' ' || *s == '\t')
				s++;
			if (!*s)
				break;
			size_t wl = strcspn(s, " \t");
			char *word = tmp_strndup(cc, s, wl);
			size_t na = 1;
			for (const char *q = word; *q; q++)
				na += *q == '|';
			const char **alts = pol_alloc(cc, na * sizeof *alts);
			na = 0;
			for (char *q = word;;) {
				char *bar = strchr(q, '|');
				if (bar)
					*bar = 0;
				const char *msg = ag_glob_check(q);
				if (!*q)
					fail(cc, it[i].at, "empty alternative in command entry '%s'", it[i].s);
				if (msg)
					fail(cc, it[i].at, "%s: '%s'", msg, q);
				if (q[0] == '-')
					fail(cc, it[i].at, "command '%s': '%s' is a flag; command words are the positional words (use args for flags)",
					     it[i].s, q);
				alts[na++] = pol_strdup(cc, q);
				if (!bar)
					break;
				q = bar + 1;
			}
			words[nw].alts = alts;
			words[nw].n = na;
			nw++;
			s += wl;
		}
		if (nw == 0)
			fail(cc, it[i].at, "empty command entry: it would match every command");
		ents[i].words = words;
		ents[i].n = nw;
		ents[i].orig = pol_strdup(cc, it[i].s);
	}
	m->cmd = ents;
	m->ncmd = n;
}

static void compile_vflags(struct cc *cc, struct ag_mset *m, const struct ynode *v)
{
	size_t n;
	struct item *it = collect(cc, v, "value_flags", 1, &n);
	const char **f = pol_alloc(cc, (n ? n : 1) * sizeof *f);

	for (size_t i = 0; i < n; i++) {
		if (it[i].s[0] != '-' || !it[i].s[1] || strchr(it[i].s, '='))
			fail(cc, it[i].at, "value_flags entry '%s' is not a flag like -n or --namespace",
			     it[i].s);
		f[i] = pol_strdup(cc, it[i].s);
	}
	m->vflags = f;
	m->nvflags = n;
}

static const struct {
	const char *key;
	unsigned bit;
	unsigned ops;
} matchers[] = {
	{"path", AG_M_PATH,
	 AG_OPBIT(AG_OP_DELETE) | AG_OPBIT(AG_OP_RENAME) | AG_OPBIT(AG_OP_TRUNCATE) |
	 AG_OPBIT(AG_OP_LINK) | AG_OPBIT(AG_OP_WRITE) | AG_OPBIT(AG_OP_MODE)},
	{"program", AG_M_PROGRAM, AG_ALL_OPS},
	{"args", AG_M_ARGS, AG_OPBIT(AG_OP_EXEC)},
	{"command", AG_M_COMMAND, AG_OPBIT(AG_OP_EXEC)},
	{"value_flags", 0, AG_OPBIT(AG_OP_EXEC)},   /* a parameter of command */
	{"unguarded", AG_M_UNGUARDED, AG_OPBIT(AG_OP_EXEC)},
	{"host", AG_M_HOST, AG_OPBIT(AG_OP_CONNECT)},
	{"cidr", AG_M_CIDR, AG_OPBIT(AG_OP_CONNECT)},
	{"port", AG_M_PORT, AG_OPBIT(AG_OP_CONNECT)},
	{"unix", AG_M_UNIX, AG_OPBIT(AG_OP_CONNECT)},
	{"class", AG_M_CLASS, AG_OPBIT(AG_OP_SQL)},
	{"database", AG_M_DATABASE, AG_OPBIT(AG_OP_SQL)},
};
#define NMATCHERS (sizeof matchers / sizeof matchers[0])

static void ops_text(unsigned ops, char *out, size_t outlen)
{
	size_t off = 0;
	int count = 0, total = __builtin_popcount(ops);

	out[0] = 0;
	for (int k = 0; k < AG_OP_COUNT; k++) {
		if (!(ops & AG_OPBIT(k)))
			continue;
		count++;
		const char *sep = count == 1 ? "" : count == total ? " or " : ", ";
		int w = snprintf(out + off, outlen - off, "%s%s", sep,
				 ag_op_name((enum ag_op_kind)k));
		if (w < 0 || (size_t)w >= outlen - off)
			break;
		off += (size_t)w;
	}
}

/* Compile the matcher key `k` with value `v` into m. */
static void compile_matcher(struct cc *cc, struct ag_mset *m, unsigned rule_ops,
			    const struct ynode *k, const struct ynode *v, size_t which)
{
	if (!(matchers[which].ops & rule_ops)) {
		char ops[128];
		ops_text(rule_ops, ops, sizeof ops);
		fail(cc, k, "matcher '%s' does not apply to %s", k->s, ops);
	}
	m->present |= matchers[which].bit;
	m->ops &= matchers[which].ops;
	switch (matchers[which].bit) {
	case AG_M_PATH:
		m->path = compile_globs(cc, v, "path", G_PATH);
		break;
	case AG_M_PROGRAM:
		m->program = compile_globs(cc, v, "program", G_PATH);
		break;
	case AG_M_ARGS:
		compile_args(cc, m, v);
		break;
	case AG_M_COMMAND:
		compile_command(cc, m, v);
		break;
	case 0:
		compile_vflags(cc, m, v);
		break;
	case AG_M_UNGUARDED:
		m->unguarded = get_bool(cc, v, "unguarded");
		break;
	case AG_M_HOST:
		compile_hosts(cc, m, v);
		break;
	case AG_M_CIDR:
		compile_cidrs(cc, m, v);
		break;
	case AG_M_PORT:
		compile_ports(cc, m, v);
		break;
	case AG_M_UNIX:
		m->unix_ = compile_globs(cc, v, "unix", G_PATH);
		break;
	case AG_M_CLASS:
		compile_classes(cc, m, v);
		break;
	case AG_M_DATABASE:
		m->database = compile_globs(cc, v, "database", G_DATABASE);
		break;
	}
}

static int matcher_index(const char *key)
{
	for (size_t i = 0; i < NMATCHERS; i++)
		if (strcmp(matchers[i].key, key) == 0)
			return (int)i;
	return -1;
}

static void compile_unless_one(struct cc *cc, struct ag_mset *m, unsigned rule_ops,
			       const struct ynode *map)
{
	map_check_keys(cc, map, "unless");
	if (map->n == 0)
		fail(cc, map, "an empty unless would except everything");
	m->ops = AG_ALL_OPS;
	for (struct ynode *k = map->first; k; k = k->next->next) {
		int i = matcher_index(k->s);
		if (i < 0)
			fail(cc, k, "unknown matcher '%s' in unless (expected path, program, command, value_flags, args, unguarded, host, cidr, port, unix, class or database)",
			     k->s);
		compile_matcher(cc, m, rule_ops, k, k->next, (size_t)i);
	}
	if (!m->present)
		fail(cc, map, "an unless of value_flags alone would except everything");
}

/* value_flags says how to find `command`'s words; an unless without its
 * own uses the rule's. */
static void check_vflags(struct cc *cc, struct ag_mset *m, const struct ag_mset *rule,
			 const struct ynode *at)
{
	if (m->nvflags && !(m->present & AG_M_COMMAND))
		fail(cc, at, "value_flags is used only with command");
	if (rule && !m->nvflags) {
		m->vflags = rule->vflags;
		m->nvflags = rule->nvflags;
	}
}

/* ---- `tests:` examples --------------------------------------------------- */

/* Shell-like words: '...' literal, "..." with \" \\ \$ and $VAR, \x
 * outside quotes, ~ at a word's start, $HOME/$WORKSPACE/$TMPDIR. */
static char **shell_words(struct cc *cc, const struct ynode *at, const char *s, size_t *count)
{
	size_t cap = 8, n = 0;
	char **words = tmp_alloc(cc, cap * sizeof *words);
	char buf[AG_PATH_MAX * 2];
	size_t blen = sizeof buf;

	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		struct sbuf sb = {buf, 0, blen, 0};
		buf[0] = 0;
		if (s[0] == '~' && (s[1] == '/' || s[1] == 0 || s[1] == ' ' || s[1] == '\t')) {
			sb_puts(&sb, var_value(cc, at, "HOME", 4), 0);
			s++;
		}
		while (*s && *s != ' ' && *s != '\t') {
			if (*s == '\'') {
				const char *e = strchr(s + 1, '\'');
				if (!e)
					fail(cc, at, "unterminated ' in example");
				for (s++; s < e; s++)
					sb_putc(&sb, *s);
				s++;
			} else if (*s == '"') {
				for (s++; *s && *s != '"'; s++) {
					if (*s == '\\' && s[1] && strchr("\"\\$`", s[1])) {
						sb_putc(&sb, *++s);
					} else if (*s == '$') {
						const char *name;
						size_t nlen, used = var_name(s + 1, &name, &nlen);
						if (!used) {
							sb_putc(&sb, '$');
							continue;
						}
						sb_puts(&sb, var_value(cc, at, name, nlen), 0);
						s += used;
					} else {
						sb_putc(&sb, *s);
					}
				}
				if (!*s)
					fail(cc, at, "unterminated \" in example");
				s++;
			} else if (*s == '\\' && s[1]) {
				sb_putc(&sb, s[1]);
				s += 2;
			} else if (*s == '$') {
				const char *name;
				size_t nlen, used = var_name(s + 1, &name, &nlen);
				if (!used) {
					sb_putc(&sb, *s++);
					continue;
				}
				sb_puts(&sb, var_value(cc, at, name, nlen), 0);
				s += 1 + used;
			} else {
				sb_putc(&sb, *s++);
			}
		}
		if (sb.over)
			fail(cc, at, "example word too long");
		if (n + 1 >= cap) {
			char **nw = tmp_alloc(cc, cap * 2 * sizeof *nw);
			memcpy(nw, words, n * sizeof *nw);
			words = nw;
			cap *= 2;
		}
		words[n++] = tmp_strndup(cc, buf, sb.len);
	}
	words[n] = NULL;
	*count = n;
	return words;
}

/* An example's path: variables expanded, relative to the workspace. */
static const char *example_path(struct cc *cc, const struct ynode *at, const char *s)
{
	char exp[AG_PATH_MAX], abs[AG_PATH_MAX];

	expand(cc, at, s, 0, exp, sizeof exp);
	if (!exp[0])
		fail(cc, at, "example needs a path");
	if (ag_path_lexical(cc->ws, exp, abs, sizeof abs) < 0)
		fail(cc, at, "example path too long");
	return tmp_strndup(cc, abs, strlen(abs));
}

static const char *example_program(struct cc *cc, const struct ynode *at, const char *s)
{
	if (strchr(s, '/'))
		return example_path(cc, at, s);
	size_t n = strlen(s);
	char *p = tmp_alloc(cc, n + 10);
	memcpy(p, "/usr/bin/", 9);
	memcpy(p + 9, s, n + 1);
	return p;
}

static void example_connect(struct cc *cc, const struct ynode *at, const char *s,
			    struct ag_op *op)
{
	struct ag_net tmp;
	const char *host = s, *port = NULL;
	size_t hlen = strlen(s);

	op->port = -1;
	if (strncmp(s, "unix:", 5) == 0) {
		op->unix_path = example_path(cc, at, s + 5);
		return;
	}
	if (s[0] == '[') {
		const char *e = strchr(s, ']');
		if (!e || (e[1] && e[1] != ':'))
			fail(cc, at, "example \"%s\": expected [address]:port", s);
		host = s + 1;
		hlen = (size_t)(e - s - 1);
		if (e[1] == ':')
			port = e + 2;
	} else {
		const char *c = strrchr(s, ':');
		/* Two colons and no brackets: a bare IPv6 address. */
		if (c && memchr(s, ':', (size_t)(c - s)) == NULL) {
			hlen = (size_t)(c - s);
			port = c + 1;
		}
	}
	if (port) {
		long long v = parse_uint(port, 65535);
		if (v < 0)
			fail(cc, at, "example \"%s\": bad port", s);
		op->port = (int)v;
	}
	if (hlen == 0)
		fail(cc, at, "example \"%s\": expected host:port", s);
	char *h = tmp_strndup(cc, host, hlen);
	if (ag_net_parse(h, &tmp, 0) == 0)
		op->addr = h;
	else
		op->host = h;
}

static int word_prefix(const char *s, const char *key, const char **val, size_t *vlen)
{
	size_t kl = strlen(key);
	if (strncmp(s, key, kl) != 0)
		return 0;
	*val = s + kl;
	*vlen = strcspn(*val, " \t");
	return 1;
}

static void parse_example(struct cc *cc, const struct ag_rule *r, int first_op,
			  const struct ynode *at, struct ag_op *op)
{
	const char *s = at->s, *val;
	size_t vlen;
	int kind = first_op;

	memset(op, 0, sizeof *op);
	op->port = -1;
	op->sql_class = -1;
	while (*s == ' ' || *s == '\t')
		s++;
	/* "rename a b": an op word, when it names one of the rule's ops. */
	size_t wl = strcspn(s, " \t");
	if (s[wl]) {
		char w[16];
		if (wl < sizeof w) {
			memcpy(w, s, wl);
			w[wl] = 0;
			int k = ag_op_parse(w);
			if (k >= 0 && (r->ops & AG_OPBIT(k))) {
				kind = k;
				s += wl;
			} else if (k >= 0 && kind != AG_OP_EXEC) {
				/* For an exec rule "truncate -s 0 f" runs truncate;
				 * otherwise an op word is a mistake worth naming. */
				char ops[128];
				ops_text(r->ops, ops, sizeof ops);
				fail(cc, at, "example \"%s\" is a %s, but rule '%s' is on %s", at->s,
				     w, r->id, ops);
			}
		}
	}
	op->kind = (enum ag_op_kind)kind;
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (kind != AG_OP_EXEC && word_prefix(s, "program=", &val, &vlen)) {
			op->caller = example_program(cc, at, tmp_strndup(cc, val, vlen));
		} else if (kind == AG_OP_SQL && word_prefix(s, "db=", &val, &vlen)) {
			char exp[AG_PATH_MAX];
			expand(cc, at, tmp_strndup(cc, val, vlen), 0, exp, sizeof exp);
			op->database = tmp_strndup(cc, exp, strlen(exp));
			if (exp[0] == '/')
				op->path = op->database;
		} else if (kind == AG_OP_SQL && word_prefix(s, "class=", &val, &vlen)) {
			/* A class no text has (unguarded): given, not read. */
			op->sql_class = ag_sql_class_parse(tmp_strndup(cc, val, vlen));
			if (op->sql_class < 0)
				fail(cc, at, "example: no SQL class '%.*s'", (int)vlen, val);
		} else if (kind == AG_OP_EXEC && word_prefix(s, "unguarded=", &val, &vlen)) {
			if (vlen == 4 && !strncmp(val, "true", 4))
				op->unguarded = 1;
			else if (!(vlen == 5 && !strncmp(val, "false", 5)))
				fail(cc, at, "example: unguarded= takes true or false");
		} else {
			break;
		}
		s = val + vlen;
	}
	/* The rest, without trailing blanks. */
	size_t rl = strlen(s);
	while (rl && (s[rl - 1] == ' ' || s[rl - 1] == '\t'))
		rl--;
	const char *rest = tmp_strndup(cc, s, rl);
	size_t nw;
	char **w;

	switch (kind) {
	case AG_OP_DELETE:
	case AG_OP_TRUNCATE:
	case AG_OP_WRITE:
	case AG_OP_MODE:
		op->path = example_path(cc, at, rest);
		break;
	case AG_OP_RENAME:
	case AG_OP_LINK:
		w = shell_words(cc, at, rest, &nw);
		if (nw != 2)
			fail(cc, at, "%s example \"%s\" needs a source and a target",
			     ag_op_name(kind), at->s);
		op->path = example_path(cc, at, w[0]);
		op->target = example_path(cc, at, w[1]);
		op->target_exists = 1;
		break;
	case AG_OP_EXEC:
		w = shell_words(cc, at, rest, &nw);
		if (nw == 0)
			fail(cc, at, "exec example needs a command");
		op->path = example_program(cc, at, w[0]);
		op->argv = (const char *const *)w;
		break;
	case AG_OP_CONNECT:
		if (!*rest)
			fail(cc, at, "connect example needs host:port or unix:/path");
		example_connect(cc, at, rest, op);
		break;
	case AG_OP_SQL:
		if (!*rest && op->sql_class < 0)
			fail(cc, at, "sql example needs a statement");
		op->sql = rest;
		if (op->sql_class < 0)
			op->sql_class = (int)ag_sql_classify(rest, -1);
		break;
	}
}

static void run_examples(struct cc *cc, const struct ag_rule *r, int first_op,
			 const struct ynode *tests)
{
	static const char *const keys[] = {"match", "not_match", NULL};
	struct ynode *k[2], *v[2];

	map_fields(cc, tests, "tests", keys, k, v);
	for (int want = 0; want < 2; want++) {
		if (!v[want])
			continue;
		size_t n;
		struct item *it = collect(cc, v[want], keys[want], 0, &n);
		for (size_t i = 0; i < n; i++) {
			struct ag_op op;
			struct ag_mctx c;
			parse_example(cc, r, first_op, it[i].at, &op);
			ag_mctx_init(&c, &op);
			enum ag_eval e = op.kind == AG_OP_EXEC ? ag_rule_eval_exec(r, &op, NULL, 0)
							       : ag_rule_eval(r, &c, NULL);
			/* Examples are read in this environment; a workspace of
			 * "/" holds every path, which is rarely what was meant. */
			const char *hint = strcmp(cc->ws, "/") == 0
				? " (the workspace is /: start from the project directory or set the workspace)"
				: "";
			if (want == 0 && e != AG_EVAL_APPLIES)
				fail(cc, it[i].at, "rule '%s': example \"%s\" should match but does not%s%s",
				     r->id, it[i].s,
				     e == AG_EVAL_EXCEPTED ? " (its unless applies)" : "", hint);
			if (want == 1 && e == AG_EVAL_APPLIES)
				fail(cc, it[i].at, "rule '%s': example \"%s\" should not match but does%s",
				     r->id, it[i].s, hint);
		}
	}
}

/* ---- rules --------------------------------------------------------------- */

static void compile_rule(struct cc *cc, struct ag_rule *r, const struct ynode *map,
			 size_t index)
{
	static const char *const fixed[] = {"id", "on", "action", "reason", "hard",
					    "once", "unless", "tests", "locked"};
	enum { F_ID, F_ON, F_ACTION, F_REASON, F_HARD, F_ONCE, F_UNLESS, F_TESTS, F_LOCKED,
	       NF };
	const struct ynode *fv[NF] = {0};
	int first_op = -1;

	map_check_keys(cc, map, "a rule");
	for (struct ynode *k = map->first; k; k = k->next->next) {
		size_t i;
		for (i = 0; i < NF; i++)
			if (strcmp(k->s, fixed[i]) == 0)
				break;
		if (i < NF)
			fv[i] = k->next;
		else if (matcher_index(k->s) < 0) {
			fail(cc, k, "unknown key '%s' in a rule (expected id, on, action, reason, hard, once, unless, tests, locked, or a matcher: path, program, command, value_flags, args, unguarded, host, cidr, port, unix, class, database)",
			     k->s);
		}
	}
	if (!fv[F_ID])
		fail(cc, map, "rule has no id");
	const char *id = get_str(cc, fv[F_ID], "id");
	if (!name_ok(id))
		fail(cc, fv[F_ID], "rule id '%s' may use only letters, digits, '_', '.' and '-'",
		     id);
	for (size_t i = 0; i < index; i++)
		if (strcmp(cc->p->rules[i].id, id) == 0)
			fail(cc, fv[F_ID], "duplicate rule id '%s'", id);
	r->id = pol_strdup(cc, id);
	r->index = index;
	{
		char o[2 * AG_PATH_MAX];
		int n = snprintf(o, sizeof o, "%s:%d:%d", cc->lname[map->layer], map->line,
				 map->col);
		if (map->over && n > 0 && (size_t)n < sizeof o)
			snprintf(o + n, sizeof o - (size_t)n, " (overrides %s:%d:%d)",
				 cc->lname[map->over->layer], map->over->line, map->over->col);
		r->origin = pol_strdup(cc, o);
	}
	if (fv[F_LOCKED])
		r->locked = get_bool(cc, fv[F_LOCKED], "locked");
	r->layer = map->layer;

	if (!fv[F_ON])
		fail(cc, map, "rule '%s' has no 'on' (delete, rename, truncate, exec, connect or sql)",
		     id);
	{
		size_t n;
		struct item *it = collect(cc, fv[F_ON], "on", 0, &n);
		for (size_t i = 0; i < n; i++) {
			int k = ag_op_parse(it[i].s);
			if (k == AG_OP_SIGNAL)
				fail(cc, it[i].at, "operation 'signal' cannot be ruled: a signal to "
				     "agentguard's supervisor is always refused");
			if (k < 0)
				fail(cc, it[i].at, "unknown operation '%s' (expected delete, rename, truncate, write, exec, connect, sql, link or io_uring)",
				     it[i].s);
			if (first_op < 0)
				first_op = k;
			r->ops |= AG_OPBIT(k);
		}
	}

	if (!fv[F_ACTION])
		fail(cc, map, "rule '%s' has no action (allow, log, snapshot, ask or deny)", id);
	int a = ag_action_parse(get_str(cc, fv[F_ACTION], "action"));
	if (a < 0)
		fail(cc, fv[F_ACTION], "unknown action '%s' (expected allow, log, snapshot, ask or deny)",
		     fv[F_ACTION]->s);
	r->action = (enum ag_action)a;
	if (fv[F_REASON])
		r->reason = pol_strdup(cc, get_str(cc, fv[F_REASON], "reason"));
	if (fv[F_HARD])
		r->hard = get_bool(cc, fv[F_HARD], "hard");
	if (fv[F_ONCE]) {
		r->once = get_bool(cc, fv[F_ONCE], "once");
		if (r->once && r->action != AG_SNAPSHOT)
			fail(cc, fv[F_ONCE], "rule '%s': 'once' keeps one snapshot per object per "
			     "session, so it needs action: snapshot", id);
	}

	r->m.ops = AG_ALL_OPS;
	for (struct ynode *k = map->first; k; k = k->next->next) {
		int i = matcher_index(k->s);
		if (i >= 0)
			compile_matcher(cc, &r->m, r->ops, k, k->next, (size_t)i);
	}
	unsigned uses = r->m.present;
	if (r->m.nvflags && !(r->m.present & AG_M_COMMAND))
		check_vflags(cc, &r->m, NULL, map);

	if (fv[F_UNLESS]) {
		const struct ynode *u = fv[F_UNLESS];
		size_t n = u->kind == Y_SEQ ? u->n : 1;
		if (u->kind == Y_SCALAR)
			fail(cc, u, "unless takes a mapping of matchers or a list of them");
		if (n == 0)
			fail(cc, u, "unless is an empty list");
		struct ag_mset *ms = pol_alloc(cc, n * sizeof *ms);
		const struct ynode *e = u->kind == Y_SEQ ? u->first : u;
		for (size_t i = 0; i < n; i++, e = e->next) {
			if (e->kind != Y_MAP)
				fail(cc, e, "each unless entry must be a mapping of matchers");
			cc->exc_layer = map->layer;
			cc->exc_rule = map;
			compile_unless_one(cc, &ms[i], r->ops, e);
			cc->exc_layer = -1;
			if (ms[i].nvflags && !(ms[i].present & AG_M_COMMAND))
				check_vflags(cc, &ms[i], NULL, e);
			check_vflags(cc, &ms[i], &r->m, e);
			uses |= ms[i].present;
		}
		r->unless = ms;
		r->nunless = n;
	}
	r->uses_path = !!(uses & AG_M_PATH);
	r->prog_names = ~0ull;
	if ((r->m.present & AG_M_PROGRAM) && r->m.program.n) {
		uint64_t bits = 0;
		for (size_t i = 0; i < r->m.program.n; i++) {
			const struct ag_glob *g = &r->m.program.g[i];
			if (!g->base || g->shape != AG_GLOB_EXACT) {
				bits = ~0ull;
				break;
			}
			bits |= ag_name_bit(g->pat, strlen(g->pat));
		}
		r->prog_names = bits;
	}

	if (fv[F_TESTS] && !cc->env->no_examples)
		run_examples(cc, r, first_op, fv[F_TESTS]);
}

/* ---- layers: several rule files merged into one tree --------------------- */

/* A shallow copy, unlinked: a node moves into another container. */
static struct ynode *ycopy(struct cc *cc, const struct ynode *n)
{
	struct ynode *c = tmp_alloc(cc, sizeof *c);
	*c = *n;
	c->next = NULL;
	return c;
}

static struct ynode *ymap(struct cc *cc, const struct ynode *at)
{
	struct ynode *m = tmp_alloc(cc, sizeof *m);
	m->kind = Y_MAP;
	m->line = at->line;
	m->col = at->col;
	m->layer = at->layer;
	return m;
}

static struct ynode *map_key(const struct ynode *map, const char *key)
{
	for (struct ynode *k = map->first; k; k = k->next->next)
		if (k->kind == Y_SCALAR && strcmp(k->s, key) == 0)
			return k;
	return NULL;
}

/* Sets key to value in map: a key already there keeps its place and
 * takes the new pair. */
static void map_put(struct cc *cc, struct ynode *map, const struct ynode *k,
		    const struct ynode *v)
{
	struct ynode *prev = NULL;
	for (struct ynode *o = map->first; o; prev = o->next, o = o->next->next) {
		if (o->kind != Y_SCALAR || strcmp(o->s, k->s) != 0)
			continue;
		struct ynode *nk = ycopy(cc, k), *nv = ycopy(cc, v);
		nk->next = nv;
		nv->next = o->next->next;
		if (prev)
			prev->next = nk;
		else
			map->first = nk;
		if (map->last == o->next)
			map->last = nv;
		return;
	}
	struct ynode *nk = ycopy(cc, k);
	add_child(map, nk);
	add_child(map, ycopy(cc, v));
}

static const struct ynode *rule_id_node(struct cc *cc, const struct ynode *rule)
{
	if (rule->kind != Y_MAP)
		fail(cc, rule, "each rule must be a mapping (id:, on:, action:, ...)");
	const struct ynode *k = map_key(rule, "id");
	if (!k)
		fail(cc, rule, "rule has no id");
	get_str(cc, k->next, "id");
	return k->next;
}

/* The rule of that id in a merged rules list, and the link before it. */
static struct ynode *find_rule(const struct ynode *rules, const char *id, struct ynode **prev)
{
	*prev = NULL;
	for (struct ynode *e = rules ? rules->first : NULL; e; *prev = e, e = e->next) {
		const struct ynode *k = map_key(e, "id");
		if (k && k->next->kind == Y_SCALAR && strcmp(k->next->s, id) == 0)
			return e;
	}
	return NULL;
}

/* `locked: true` on a rule (or on an override of it) in any layer: no
 * other layer may override that id, wherever it lies in the order. */
static const struct ynode *lock_of(struct cc *cc, struct ynode *const *roots, const char *id,
				   int layer)
{
	static const char *const where[] = {"rules", "override"};
	for (int l = 0; l < cc->nlayers; l++) {
		if (l == layer || !roots[l])
			continue;
		for (int w = 0; w < 2; w++) {
			const struct ynode *k = map_key(roots[l], where[w]);
			if (!k || k->next->kind != Y_SEQ)
				continue;
			for (const struct ynode *e = k->next->first; e; e = e->next) {
				if (e->kind != Y_MAP)
					continue;
				const struct ynode *ik = map_key(e, "id"), *lk = map_key(e, "locked");
				if (ik && lk && ik->next->kind == Y_SCALAR &&
				    strcmp(ik->next->s, id) == 0 && get_bool(cc, lk->next, "locked"))
					return lk;
			}
		}
	}
	return NULL;
}

static int action_rank(const struct ynode *v)
{
	return v->kind == Y_SCALAR ? ag_action_parse(v->s) : -1;
}

/* Lays one layer's rule file over the merged tree. */
static void merge_layer(struct cc *cc, struct ynode *acc, struct ynode *const *roots, int l)
{
	const struct ynode *root = roots[l];

	for (const struct ynode *k = root->first; k; k = k->next->next) {
		const struct ynode *v = k->next;
		struct ynode *ak = map_key(acc, k->s);
		if (!strcmp(k->s, "version") || !strcmp(k->s, "extends"))
			continue;
		if (!strcmp(k->s, "lists") || !strcmp(k->s, "snapshots") ||
		    !strcmp(k->s, "limits") || !strcmp(k->s, "defaults")) {
			/* By name: a list grows by the entries it lacks, a
			 * setting takes the upper layer's value. */
			if (v->kind != Y_MAP)
				fail(cc, v, "%s must be a mapping, not %s", k->s, kind_name(v));
			map_check_keys(cc, v, k->s);
			if (!ak) {
				map_put(cc, acc, k, ymap(cc, v));
				ak = map_key(acc, k->s);
			}
			struct ynode *am = ak->next;
			int lists = !strcmp(k->s, "lists");
			for (const struct ynode *sk = v->first; sk; sk = sk->next->next) {
				struct ynode *old = map_key(am, sk->s);
				const struct ynode *sv = sk->next;
				if (lists && old && old->next->kind == Y_SEQ && sv->kind == Y_SEQ) {
					for (const struct ynode *e = sv->first; e; e = e->next) {
						const struct ynode *d = old->next->first;
						while (d && !(d->kind == Y_SCALAR && e->kind == Y_SCALAR &&
							      !strcmp(d->s, e->s)))
							d = d->next;
						if (!d)
							add_child(old->next, ycopy(cc, e));
					}
					continue;
				}
				if (!strcmp(k->s, "defaults") && old) {
					int was = action_rank(old->next), now = action_rank(sv);
					if (was >= 0 && now >= 0 && now < was)
						fail(cc, sv, "defaults: %s: %s is looser than the %s set at "
						     "%s:%d:%d: a layer can only tighten a default",
						     sk->s, sv->s, old->next->s, cc->lname[old->layer],
						     old->line, old->col);
				}
				if (lists && sv->kind == Y_SEQ) {
					/* A list of its own: copy it, entries are appended later. */
					struct ynode *seq = ycopy(cc, sv);
					seq->first = seq->last = NULL;
					seq->n = 0;
					for (const struct ynode *e = sv->first; e; e = e->next)
						add_child(seq, ycopy(cc, e));
					map_put(cc, am, sk, seq);
				} else {
					map_put(cc, am, sk, sv);
				}
			}
		} else if (!strcmp(k->s, "rules") || !strcmp(k->s, "override")) {
			int over = k->s[0] == 'o';
			if (is_null(v))
				continue;
			if (v->kind != Y_SEQ)
				fail(cc, v, "%s must be a list of rules, not %s", k->s, kind_name(v));
			struct ynode *rk = map_key(acc, "rules");
			if (!rk) {
				struct ynode *seq = ycopy(cc, v);
				seq->first = seq->last = NULL;
				seq->n = 0;
				seq->kind = Y_SEQ;
				struct ynode key = *k;
				key.s = "rules";
				map_put(cc, acc, &key, seq);
				rk = map_key(acc, "rules");
			}
			struct ynode *rules = rk->next;
			if (rules->kind != Y_SEQ)
				fail(cc, rules, "rules must be a list of rules, not %s", kind_name(rules));
			for (const struct ynode *e = v->first; e; e = e->next) {
				const struct ynode *idn = rule_id_node(cc, e);
				struct ynode *prev, *old = find_rule(rules, idn->s, &prev);
				if (!over) {
					if (old && old->layer == l)
						fail(cc, idn, "duplicate rule id '%s' (first at line %d)",
						     idn->s, old->line);
					if (old)
						fail(cc, idn, "rule '%s' is already defined at %s:%d:%d; a "
						     "layer adds rules under new ids and changes one only "
						     "under 'override:'", idn->s, cc->lname[old->layer],
						     old->line, old->col);
					add_child(rules, ycopy(cc, e));
					continue;
				}
				if (!old)
					fail(cc, idn, "override of rule '%s', which no rule file below "
					     "this one defines", idn->s);
				const struct ynode *lock = lock_of(cc, roots, idn->s, l);
				if (lock)
					fail(cc, idn, "rule '%s' is locked by %s:%d:%d: no other rule file "
					     "may override it", idn->s, cc->lname[lock->layer],
					     lock->line, lock->col);
				/* The old rule's keys, replaced or joined by the override's;
				 * its examples described the old rule and go with it. */
				struct ynode *m = ymap(cc, e);
				m->over = old->over ? old->over : old;
				for (const struct ynode *ok = old->first; ok; ok = ok->next->next)
					if (strcmp(ok->s, "tests") != 0 && !map_key(e, ok->s))
						map_put(cc, m, ok, ok->next);
				for (const struct ynode *nk = e->first; nk; nk = nk->next->next)
					map_put(cc, m, nk, nk->next);
				m->next = old->next;
				if (prev)
					prev->next = m;
				else
					rules->first = m;
				if (rules->last == old)
					rules->last = m;
			}
		} else {
			map_put(cc, acc, k, v);
		}
	}
}

/* ---- the top level ------------------------------------------------------- */

/* An absolute, normalized directory: symlinks resolved when it exists, so
 * that patterns agree with the resolved paths operations arrive with. */
static const char *abs_dir(struct cc *cc, const struct ynode *at, const char *base,
			   const char *p, const char *what)
{
	char lex[AG_PATH_MAX], real[PATH_MAX];

	if (p[0] != '/' && !base)
		fail_at(cc, at ? at->line : 1, at ? at->col : 1,
			"%s '%s' is relative but no working directory is known", what, p);
	if (ag_path_lexical(base ? base : "/", p, lex, sizeof lex) < 0)
		fail_at(cc, at ? at->line : 1, at ? at->col : 1, "%s path is too long", what);
	const char *use = lex;
	if (realpath(lex, real) && strlen(real) < AG_PATH_MAX)
		use = real;
	return pol_strdup(cc, use);
}

static void *index_alloc(void *ctx, size_t n)
{
	return pol_alloc(ctx, n);   /* fails the compile when out of memory */
}

/* The rule files to read, lowest first: a bundle's layers, or the one
 * text (under the built-in set when it says `extends: builtin:default`). */
static void setup_layers(struct cc *cc)
{
	struct ag_layer l[AG_LAYERS_MAX];
	int n;

	if (ag_layers_is_bundle(cc->text, cc->len)) {
		n = ag_layers_split(cc->text, cc->len, l, AG_LAYERS_MAX);
		if (n <= 0)
			fail_at(cc, 1, 1, "a damaged rule bundle (the session's frozen rules)");
		for (int i = 0; i < n; i++) {
			cc->lname[i] = tmp_strndup(cc, l[i].name, l[i].name_len);
			cc->ltext[i] = l[i].text;
			cc->llen[i] = l[i].len;
			cc->lmanaged[i] = l[i].managed;
		}
		cc->nlayers = n;
		return;
	}
	char ext[64];
	int line, col, rc = ag_rules_extends(cc->text, cc->len, ext, sizeof ext, &line, &col);
	n = 0;
	if (rc > 0) {
		if (strcmp(ext, "builtin") != 0 && strcmp(ext, "builtin:default") != 0 &&
		    strcmp(ext, "builtin:default.yaml") != 0)
			fail_at(cc, line, col, "extends '%s': rules given as text alone can extend "
				"only builtin:default (agentguard check and run read the files a rule "
				"file extends)", ext);
		cc->lname[0] = "builtin:default.yaml";
		cc->ltext[0] = ag_default_rules;
		cc->llen[0] = ag_default_rules_len;
		n = 1;
	}
	cc->lname[n] = cc->name;
	cc->ltext[n] = cc->text;
	cc->llen[n] = cc->len;
	cc->nlayers = n + 1;
}

static void compile_top(struct cc *cc)
{
	static const char *const keys[] = {"version", "extends", "mode", "enforce",
					   "workspace", "snapshots", "limits", "defaults",
					   "lists", "rules", "override", NULL};
	enum { K_VERSION, K_EXTENDS, K_MODE, K_ENFORCE, K_WORKSPACE, K_SNAPSHOTS, K_LIMITS,
	       K_DEFAULTS, K_LISTS, K_RULES, K_OVERRIDE, NK };
	struct ynode *k[NK], *v[NK];
	const struct ag_policy_env *env = cc->env;
	struct ag_policy *p = cc->p;

	struct ynode *roots[AG_LAYERS_MAX] = {0};

	setup_layers(cc);
	for (int l = 0; l < cc->nlayers; l++) {
		cc->cur = l;
		cc->name = cc->lname[l];
		cc->text = cc->ltext[l];
		cc->len = cc->llen[l];
		cc->root = NULL;
		build_tree(cc);
		yaml_parser_delete(&cc->parser);
		cc->parser_live = 0;
		if (!cc->root || is_null(cc->root))
			fail_at(cc, 1, 1, "the rule file is empty (it needs at least 'version: 1')");
		if (cc->root->kind != Y_MAP)
			fail(cc, cc->root, "a rule file is a mapping (version: 1, rules: [...]), not %s",
			     kind_name(cc->root));
		map_fields(cc, cc->root, "the rule file", keys, k, v);
		if (!v[K_VERSION])
			fail(cc, cc->root, "missing 'version: 1'");
		if (get_uint(cc, v[K_VERSION], "version", 1000000) != 1)
			fail(cc, v[K_VERSION], "unsupported version %s (this agentguard reads version 1)",
			     v[K_VERSION]->s);
		if (v[K_EXTENDS])
			get_str(cc, v[K_EXTENDS], "extends");
		if (v[K_OVERRIDE] && !is_null(v[K_OVERRIDE]) && v[K_OVERRIDE]->kind != Y_SEQ)
			fail(cc, v[K_OVERRIDE], "override must be a list of rules, not %s",
			     kind_name(v[K_OVERRIDE]));
		roots[l] = cc->root;
		p->layer_name[l] = pol_strdup(cc, cc->lname[l]);
		p->layer_managed[l] = cc->lmanaged[l];
	}
	p->nlayers = cc->nlayers;

	/* Lowest first, each laid over the ones below it. */
	struct ynode *acc = ymap(cc, roots[cc->nlayers - 1]);
	for (int l = 0; l < cc->nlayers; l++)
		merge_layer(cc, acc, roots, l);
	cc->root = acc;
	map_fields(cc, acc, "the rule file", keys, k, v);

	p->mode = AG_MODE_AUTONOMOUS;
	if (v[K_MODE]) {
		const char *m = get_str(cc, v[K_MODE], "mode");
		if (strcmp(m, "supervised") == 0)
			p->mode = AG_MODE_SUPERVISED;
		else if (strcmp(m, "autonomous") != 0)
			fail(cc, v[K_MODE], "unknown mode '%s' (expected autonomous or supervised)", m);
	}
	p->enforce = v[K_ENFORCE] ? get_bool(cc, v[K_ENFORCE], "enforce") : 1;

	/* The directories variables stand for. */
	if (env->home && env->home[0])
		cc->home = abs_dir(cc, NULL, env->cwd, env->home, "home");
	cc->tmpdir = abs_dir(cc, NULL, env->cwd,
			     env->tmpdir && env->tmpdir[0] ? env->tmpdir : "/tmp", "TMPDIR");
	if (env->workspace && env->workspace[0]) {
		cc->ws = abs_dir(cc, NULL, env->cwd, env->workspace, "workspace");
	} else if (v[K_WORKSPACE]) {
		char exp[AG_PATH_MAX];
		expand(cc, v[K_WORKSPACE], get_str(cc, v[K_WORKSPACE], "workspace"), 0, exp,
		       sizeof exp);
		cc->ws = abs_dir(cc, v[K_WORKSPACE], env->cwd, exp, "workspace");
	} else {
		if (!env->cwd)
			fail_at(cc, 1, 1, "no workspace and no working directory are known");
		cc->ws = abs_dir(cc, NULL, NULL, env->cwd, "workspace");
	}
	p->workspace = cc->ws;

	p->max_snapshot_bytes = 4ull << 30;
	if (v[K_SNAPSHOTS]) {
		static const char *const sk[] = {"max_bytes", NULL};
		struct ynode *kk[1], *vv[1];
		map_fields(cc, v[K_SNAPSHOTS], "snapshots", sk, kk, vv);
		if (vv[0]) {
			const char *s = get_str(cc, vv[0], "max_bytes");
			if (ag_parse_size(s, &p->max_snapshot_bytes) < 0)
				fail(cc, vv[0], "max_bytes '%s' is not a size (e.g. 4GiB, 512MB, 0 for no limit)",
				     s);
		}
	}
	p->denial_limit = 20;
	if (v[K_LIMITS]) {
		static const char *const lk[] = {"denials", NULL};
		struct ynode *kk[1], *vv[1];
		map_fields(cc, v[K_LIMITS], "limits", lk, kk, vv);
		if (vv[0])
			p->denial_limit = (int)get_uint(cc, vv[0], "denials", INT_MAX);
	}

	/* A ring's operations pass no system call the kernel layer sees:
	 * refused unless a rule (or `defaults:`) allows it. */
	p->defaults[AG_OP_IO_URING] = AG_DENY;
	if (v[K_DEFAULTS]) {
		map_check_keys(cc, v[K_DEFAULTS], "defaults");
		for (struct ynode *dk = v[K_DEFAULTS]->first; dk; dk = dk->next->next) {
			int op = ag_op_parse(dk->s);
			if (op == AG_OP_SIGNAL)
				fail(cc, dk, "operation 'signal' cannot be ruled: a signal to "
				     "agentguard's supervisor is always refused");
			if (op < 0)
				fail(cc, dk, "unknown operation '%s' in defaults (expected delete, rename, truncate, write, exec, connect, sql, link or io_uring)",
				     dk->s);
			int a = ag_action_parse(get_str(cc, dk->next, "a default"));
			if (a < 0)
				fail(cc, dk->next, "unknown action '%s' (expected allow, log, snapshot, ask or deny)",
				     dk->next->s);
			p->defaults[op] = (enum ag_action)a;
		}
	}
	for (int op = 0; op < AG_OP_COUNT; op++) {
		if (p->defaults[op] == AG_ALLOW)
			continue;
		char buf[160];
		const char *on = ag_op_name((enum ag_op_kind)op);
		if (op == AG_OP_IO_URING)
			snprintf(buf, sizeof buf, "io_uring would act where agentguard cannot see; "
				 "a rule 'on: io_uring' with 'action: allow' allows it");
		else
			snprintf(buf, sizeof buf, "no rule allows this %s and the policy's default for %s is %s",
				 on, on, ag_action_name(p->defaults[op]));
		p->default_reason[op] = pol_strdup(cc, buf);
	}

	if (v[K_LISTS]) {
		map_check_keys(cc, v[K_LISTS], "lists");
		for (struct ynode *lk = v[K_LISTS]->first; lk; lk = lk->next->next) {
			struct ynode *lv = lk->next;
			if (!name_ok(lk->s))
				fail(cc, lk, "list name '%s' may use only letters, digits, '_', '.' and '-'",
				     lk->s);
			if (lv->kind != Y_SEQ)
				fail(cc, lv, "list '%s' must be a list of strings", lk->s);
			for (struct ynode *e = lv->first; e; e = e->next) {
				if (e->kind != Y_SCALAR)
					fail(cc, e, "entries of list '%s' must be strings, not %s",
					     lk->s, kind_name(e));
				const char *s = get_str(cc, e, "a list entry");
				if (s[0] == '@')
					fail(cc, e, "list '%s' refers to '%s': lists cannot contain lists",
					     lk->s, s);
			}
		}
		cc->lists = v[K_LISTS];
	}

	if (v[K_RULES] && !is_null(v[K_RULES])) {
		struct ynode *rs = v[K_RULES];
		if (rs->kind != Y_SEQ)
			fail(cc, rs, "rules must be a list of rules, not %s", kind_name(rs));
		struct ag_rule *rules = pol_alloc(cc, (rs->n ? rs->n : 1) * sizeof *rules);
		p->rules = rules;
		size_t i = 0;
		for (struct ynode *e = rs->first; e; e = e->next, i++) {
			if (e->kind != Y_MAP)
				fail(cc, e, "each rule must be a mapping (id:, on:, action:, ...)");
			p->nrules = i;
			compile_rule(cc, &rules[i], e, i);
		}
		p->nrules = i;
	}

	/* Per op: strictest first, then file order, so decide can stop at the
	 * first rule that applies. */
	for (int op = 0; op < AG_OP_COUNT; op++) {
		size_t n = 0;
		for (size_t i = 0; i < p->nrules; i++)
			if (p->rules[i].ops & AG_OPBIT(op))
				n++;
		const struct ag_rule **idx = pol_alloc(cc, (n ? n : 1) * sizeof *idx);
		size_t j = 0;
		for (int a = AG_ACTION_COUNT - 1; a >= 0; a--)
			for (size_t i = 0; i < p->nrules; i++)
				if ((p->rules[i].ops & AG_OPBIT(op)) && (int)p->rules[i].action == a)
					idx[j++] = &p->rules[i];
		p->byop[op] = idx;
		p->nbyop[op] = n;
	}
	ag_index_build(p, index_alloc, cc);
}

static int compile_guarded(struct cc *cc)
{
	if (setjmp(cc->jb))
		return -1;
	compile_top(cc);
	return 0;
}

struct ag_policy *ag_policy_load_in(const char *name, const char *text, size_t len,
				   const struct ag_policy_env *env, struct ag_region *region,
				   char *err, size_t errlen)
{
	struct cc *cc;
	struct ag_policy *p;

	if (err && errlen)
		err[0] = 0;
	if (!name)
		name = "rules";
	cc = calloc(1, sizeof *cc);
	p = region ? ag_region_alloc(region, sizeof *p) : calloc(1, sizeof *p);
	if (!cc || !p || !env || !text) {
		if (err && errlen)
			snprintf(err, errlen, "%s:1:1: %s", name,
				 !cc || !p ? "out of memory" : "internal error: no rules text or environment");
		free(cc);
		if (!region)
			free(p);
		return NULL;
	}
	cc->name = name;
	cc->err = err;
	cc->errlen = errlen;
	cc->text = text;
	cc->len = len;
	cc->env = env;
	cc->p = p;
	cc->region = region;
	cc->exc_layer = -1;

	int rc = compile_guarded(cc);

	if (cc->ev_live)
		yaml_event_delete(&cc->ev);
	if (cc->parser_live)
		yaml_parser_delete(&cc->parser);
	arena_free(cc->tmp);
	free(cc);
	if (rc < 0) {
		if (!region)
			ag_policy_free(p);
		return NULL;
	}
	return p;
}

struct ag_policy *ag_policy_load(const char *name, const char *text, size_t len,
				 const struct ag_policy_env *env, char *err, size_t errlen)
{
	return ag_policy_load_in(name, text, len, env, NULL, err, errlen);
}

struct ag_policy *ag_policy_load_file(const char *path, const struct ag_policy_env *env,
				      char *err, size_t errlen)
{
	struct ag_rules_text t;

	if (ag_rules_resolve(path, &t, err, errlen) < 0)
		return NULL;
	struct ag_policy *p = ag_policy_load(t.builtin ? "builtin:default.yaml" : path, t.text,
					     t.len, env, err, errlen);
	ag_rules_text_free(&t);
	return p;
}

void ag_policy_free(struct ag_policy *p)
{
	if (!p)
		return;
	if (p->image) {
		munmap(p->image, p->image_size);
		return;
	}
	arena_free(p->arena);
	free(p);
}

enum ag_mode ag_policy_mode(const struct ag_policy *p)
{
	return p->mode;
}

int ag_policy_enforce(const struct ag_policy *p)
{
	return p->enforce;
}

const char *ag_policy_workspace(const struct ag_policy *p)
{
	return p->workspace;
}

uint64_t ag_policy_max_snapshot_bytes(const struct ag_policy *p)
{
	return p->max_snapshot_bytes;
}

int ag_policy_denial_limit(const struct ag_policy *p)
{
	return p->denial_limit;
}

int ag_policy_has_rules(const struct ag_policy *p, enum ag_op_kind op)
{
	return p && (unsigned)op < AG_OP_COUNT && p->nbyop[op] > 0;
}

size_t ag_policy_rule_count(const struct ag_policy *p)
{
	return p->nrules;
}

int ag_policy_rule_info(const struct ag_policy *p, size_t i, struct ag_rule_info *out)
{
	if (i >= p->nrules)
		return -1;
	const struct ag_rule *r = &p->rules[i];
	*out = (struct ag_rule_info){.id = r->id, .action = r->action, .origin = r->origin,
				     .layer = r->layer, .locked = r->locked};
	return 0;
}

const char *ag_policy_rule_origin(const struct ag_policy *p, const char *id)
{
	for (size_t i = 0; id && i < p->nrules; i++)
		if (strcmp(p->rules[i].id, id) == 0)
			return p->rules[i].origin;
	return NULL;
}

int ag_policy_layer(const struct ag_policy *p, int i, const char **name, int *managed)
{
	if (i < 0 || i >= p->nlayers)
		return -1;
	*name = p->layer_name[i];
	*managed = p->layer_managed[i];
	return 0;
}

int ag_policy_hard_paths(const struct ag_policy *p,
			 void (*fn)(void *ctx, const char *path, size_t len), void *ctx)
{
	const unsigned files = AG_OPBIT(AG_OP_DELETE) | AG_OPBIT(AG_OP_RENAME) |
			       AG_OPBIT(AG_OP_TRUNCATE) | AG_OPBIT(AG_OP_WRITE);
	int other = 0;

	for (size_t i = 0; i < p->nrules; i++) {
		const struct ag_rule *r = &p->rules[i];
		if (!r->hard || r->action != AG_DENY || !(r->ops & files))
			continue;
		/* Only a rule that is its paths alone says "never, whoever": a
		 * program or argument condition is the rule's to weigh call by
		 * call. An exception by path alone (~/.ssh but known_hosts) may
		 * be under the floor all the same: what is beyond the floor goes
		 * to the supervisor, which weighs the whole rule. */
		int plain = r->m.present == AG_M_PATH;
		for (size_t u = 0; plain && u < r->nunless; u++)
			plain = r->unless[u].present == AG_M_PATH;
		if (!plain) {
			other++;
			continue;
		}
		for (size_t g = 0; g < r->m.path.n; g++) {
			const struct ag_glob *gl = &r->m.path.g[g];
			if (!gl->base && gl->pat[0] == '/' &&
			    (gl->shape == AG_GLOB_EXACT || gl->shape == AG_GLOB_UNDER))
				fn(ctx, gl->pat, gl->plen);
			else
				other++;
		}
	}
	return other;
}

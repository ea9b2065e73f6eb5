/*
 * ag_sql_targets: what a destructive statement can destroy, by name — the
 * tables a DROP TABLE, TRUNCATE, DELETE, UPDATE or ALTER TABLE names, the
 * schemas a DROP SCHEMA names, the database a DROP DATABASE names. Pure:
 * a server pre-image (lib/hooks/sql_pq.c) resolves these names on the
 * server and dumps them before the statement runs.
 *
 * It reads tokens, not grammar: every place in the text where one of those
 * phrases begins is a target, wherever it is (a CTE's DELETE, the second
 * statement of three). Naming more than the statement touches costs a
 * larger dump; naming less would lose data, so whatever it cannot read
 * (a name too long, too many) sets `unknown`, and the caller refuses.
 * Text inside strings, dollar quotes and comments is never a target: a
 * DO block's dynamic SQL cannot be read here (the classifier decides what
 * such text is; finding no target for a destructive class is refusal).
 * A CREATE of a routine, trigger, event or rule is `unknown`: its body
 * destroys when it runs, not now.
 */
#include <ctype.h>
#include <string.h>

#include "agentguard.h"

enum { W_END, W_WORD, W_QUOTED, W_PUNCT, W_OTHER };

struct lex {
	const char *p, *end;
	int mysql;
};

struct word {
	int type;
	const char *s;
	size_t len;       /* bytes of s (a quoted name: inside the quotes) */
	char ch;          /* W_PUNCT */
};

static int ident_char(int c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* Past a quoted run opened by q at p (p after the quote); doubled quotes
 * stay inside; a backslash escapes in MySQL strings. */
static const char *past_quote(const char *p, const char *end, char q, int backslash)
{
	while (p < end) {
		if (backslash && *p == '\\' && p + 1 < end) {
			p += 2;
			continue;
		}
		if (*p == q) {
			if (p + 1 < end && p[1] == q) {
				p += 2;
				continue;
			}
			return p + 1;
		}
		p++;
	}
	return end;
}

static void next(struct lex *L, struct word *w)
{
	const char *p = L->p, *end = L->end;

	for (;;) {
		while (p < end && isspace((unsigned char)*p))
			p++;
		if (p + 1 < end && p[0] == '-' && p[1] == '-') {
			while (p < end && *p != '\n')
				p++;
			continue;
		}
		if (L->mysql && p < end && *p == '#') {
			while (p < end && *p != '\n')
				p++;
			continue;
		}
		if (p + 1 < end && p[0] == '/' && p[1] == '*') {
			/* MySQL runs its executable comments (slash-star-bang): their inside is read as text. */
			if (L->mysql && p + 2 < end && p[2] == '!') {
				p += 3;
				while (p < end && isdigit((unsigned char)*p))
					p++;
				continue;
			}
			int depth = 0;
			while (p + 1 < end) {
				if (p[0] == '/' && p[1] == '*') {
					depth++;
					p += 2;
				} else if (p[0] == '*' && p[1] == '/') {
					p += 2;
					if (--depth == 0 || L->mysql)
						break;
				} else {
					p++;
				}
			}
			if (p + 1 >= end && depth)
				p = end;
			continue;
		}
		if (L->mysql && p + 1 < end && p[0] == '*' && p[1] == '/') {
			p += 2;   /* the end of an executable comment */
			continue;
		}
		break;
	}
	memset(w, 0, sizeof *w);
	if (p >= end) {
		w->type = W_END;
		L->p = p;
		return;
	}
	const char *s = p;
	if (*p == '\'' || ((*p == 'E' || *p == 'e') && p + 1 < end && p[1] == '\'')) {
		int esc = *p != '\'' || L->mysql;
		p = past_quote(p + (*p == '\'' ? 1 : 2), end, '\'', esc);
		w->type = W_OTHER;
	} else if (*p == '"' || (*p == '`' && L->mysql)) {
		char q = *p;
		const char *e = past_quote(p + 1, end, q, 0);
		w->type = W_QUOTED;
		w->s = p + 1;
		w->len = (size_t)(e - p - 1) - (e > p + 1 && e[-1] == q);
		p = e;
	} else if (*p == '$' && !L->mysql) {
		/* $tag$ ... $tag$, or a parameter $1. */
		const char *t = p + 1;
		while (t < end && (isalnum((unsigned char)*t) || *t == '_'))
			t++;
		if (t < end && *t == '$' && !(t > p + 1 && isdigit((unsigned char)p[1]))) {
			size_t tl = (size_t)(t - p + 1);
			const char *q = t + 1;
			while (q + tl <= end && memcmp(q, p, tl) != 0)
				q++;
			p = q + tl <= end ? q + tl : end;
		} else {
			p = t;
		}
		w->type = W_OTHER;
	} else if (ident_char((unsigned char)*p)) {
		while (p < end && ident_char((unsigned char)*p))
			p++;
		w->type = isdigit((unsigned char)*s) ? W_OTHER : W_WORD;
		w->s = s;
		w->len = (size_t)(p - s);
	} else {
		w->type = W_PUNCT;
		w->ch = *p++;
	}
	L->p = p;
}

static int is(const struct word *w, const char *kw)
{
	size_t n = strlen(kw);

	return w->type == W_WORD && w->len == n && strncasecmp(w->s, kw, n) == 0;
}

/* A name's text into out: quoted as written, unquoted folded to lower
 * case for PostgreSQL (MySQL keeps it). -1 when it does not fit. */
static int copy_name(const struct lex *L, const struct word *w, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < w->len; i++) {
		char c = w->s[i];
		if (w->type == W_QUOTED && (c == '"' || c == '`') && i + 1 < w->len && w->s[i + 1] == c)
			i++;   /* a doubled quote is one */
		if (w->type == W_WORD && !L->mysql)
			c = (char)tolower((unsigned char)c);
		if (o + 1 >= cap)
			return -1;
		out[o++] = c;
	}
	out[o] = 0;
	return o ? 0 : -1;
}

static int is_name(const struct word *w)
{
	return w->type == W_WORD || w->type == W_QUOTED;
}

static void add(struct ag_sql_targets *T, const struct lex *L, int kind, const struct word *a,
		const struct word *b)
{
	if (T->n >= AG_SQL_TARGETS) {
		T->unknown = 1;
		return;
	}
	struct ag_sql_target *t = &T->t[T->n];
	memset(t, 0, sizeof *t);
	t->kind = kind;
	if ((b && copy_name(L, a, t->schema, sizeof t->schema) < 0) ||
	    copy_name(L, b ? b : a, t->name, sizeof t->name) < 0) {
		T->unknown = 1;
		return;
	}
	for (int i = 0; i < T->n; i++)
		if (T->t[i].kind == kind && !strcmp(T->t[i].schema, t->schema) &&
		    !strcmp(T->t[i].name, t->name))
			return;   /* named twice */
	T->n++;
}

/* [schema.]name at w (read on); w is left on the word after it. 0 when
 * w is no name. */
static int read_name(struct lex *L, struct word *w, struct ag_sql_targets *T, int kind)
{
	struct word a, dot;

	if (!is_name(w))
		return 0;
	a = *w;
	struct lex save = *L;
	next(L, &dot);
	if (dot.type == W_PUNCT && dot.ch == '.') {
		next(L, w);
		if (!is_name(w)) {
			T->unknown = 1;
			return 0;
		}
		struct word b = *w;
		/* db.schema.table: the last two (PostgreSQL names its own
		 * database first; MySQL has no third part). */
		save = *L;
		next(L, &dot);
		if (dot.type == W_PUNCT && dot.ch == '.') {
			next(L, w);
			if (!is_name(w)) {
				T->unknown = 1;
				return 0;
			}
			a = b;
			b = *w;
			next(L, w);
		} else {
			*L = save;
			next(L, w);
		}
		add(T, L, kind, &a, &b);
		return 1;
	}
	*L = save;
	next(L, w);
	add(T, L, kind, &a, NULL);
	return 1;
}

/* A list of names after a phrase: a, b.c, d */
static void read_list(struct lex *L, struct word *w, struct ag_sql_targets *T, int kind,
		      int only_ok)
{
	for (;;) {
		if (only_ok && is(w, "only"))
			next(L, w);
		if (!read_name(L, w, T, kind)) {
			T->unknown = 1;
			return;
		}
		if (w->type == W_PUNCT && w->ch == '*')
			next(L, w);   /* TRUNCATE t * : t and its children */
		if (!(w->type == W_PUNCT && w->ch == ','))
			return;
		next(L, w);
	}
}

static void if_exists(struct lex *L, struct word *w)
{
	struct lex save = *L;
	struct word x;

	if (!is(w, "if"))
		return;
	next(L, &x);
	if (is(&x, "exists")) {
		next(L, w);
		return;
	}
	*L = save;
}

void ag_sql_targets(const char *sql, long len, int mysql, struct ag_sql_targets *T)
{
	struct lex L = {sql, sql + (len < 0 ? (long)strlen(sql) : len), mysql};
	struct word w, prev = {0};

	memset(T, 0, sizeof *T);
	next(&L, &w);
	while (w.type != W_END) {
		struct word cur = w;
		if (is(&w, "cascade"))
			T->cascade = 1;
		/* A routine, trigger, event or rule destroys when it runs, later:
		 * what its body names now is no pre-image of that. */
		if (is(&w, "create")) {
			struct lex save = L;
			struct word x;
			for (int i = 0; i < 8; i++) {
				next(&L, &x);
				if (x.type == W_END || (x.type == W_PUNCT && x.ch == ';'))
					break;
				if (is(&x, "procedure") || is(&x, "function") || is(&x, "trigger") ||
				    is(&x, "event") || is(&x, "rule"))
					T->unknown = 1;
			}
			L = save;
		}
		if (is(&w, "drop")) {
			next(&L, &w);
			if (is(&w, "table")) {
				next(&L, &w);
				if_exists(&L, &w);
				read_list(&L, &w, T, AG_TARGET_TABLE, 0);
			} else if (is(&w, "schema") || (is(&w, "database") && mysql)) {
				/* MySQL's DROP SCHEMA is DROP DATABASE. */
				int db = mysql;
				next(&L, &w);
				if_exists(&L, &w);
				read_list(&L, &w, T, db ? AG_TARGET_DATABASE : AG_TARGET_SCHEMA, 0);
			} else if (is(&w, "database")) {
				next(&L, &w);
				if_exists(&L, &w);
				read_list(&L, &w, T, AG_TARGET_DATABASE, 0);
			}
			prev = cur;
			continue;
		}
		if (is(&w, "truncate")) {
			next(&L, &w);
			if (is(&w, "table"))
				next(&L, &w);
			read_list(&L, &w, T, AG_TARGET_TABLE, 1);
			prev = cur;
			continue;
		}
		if (is(&w, "delete")) {
			next(&L, &w);
			/* MySQL: DELETE LOW_PRIORITY QUICK IGNORE FROM t, or
			 * DELETE t1, t2 FROM ...: the names before FROM. */
			while (is(&w, "low_priority") || is(&w, "quick") || is(&w, "ignore"))
				next(&L, &w);
			if (is(&w, "from")) {
				next(&L, &w);
				read_list(&L, &w, T, AG_TARGET_TABLE, 1);
			} else if (mysql && is_name(&w)) {
				read_list(&L, &w, T, AG_TARGET_TABLE, 0);
			}
			prev = cur;
			continue;
		}
		/* UPDATE t, but not FOR UPDATE, ON UPDATE, DO UPDATE, KEY UPDATE. */
		if (is(&w, "update") && !is(&prev, "for") && !is(&prev, "on") && !is(&prev, "do") &&
		    !is(&prev, "key") && !is(&prev, "no")) {
			next(&L, &w);
			while (is(&w, "low_priority") || is(&w, "ignore"))
				next(&L, &w);
			if (is_name(&w) && !is(&w, "set"))
				read_list(&L, &w, T, AG_TARGET_TABLE, 1);
			prev = cur;
			continue;
		}
		if (is(&w, "alter")) {
			next(&L, &w);
			if (is(&w, "table")) {
				next(&L, &w);
				if_exists(&L, &w);
				if (is(&w, "only"))
					next(&L, &w);
				read_name(&L, &w, T, AG_TARGET_TABLE);
			}
			prev = cur;
			continue;
		}
		prev = cur;
		next(&L, &w);
	}
}

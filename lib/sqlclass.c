/*
 * ag_sql_classify: the class of a SQL string (SPEC §3 "SQL classes").
 *
 * The hooks call this on every statement a client library is about to
 * send, from inside arbitrary programs: no allocation, no locks, bounded
 * stack, linear time, and never a byte read past `len`.
 *
 * Dialects. The caller does not say which server the text is for, and a
 * classifier that disagrees with the server about where a string or a
 * comment ends can be walked past: a backslash before a quote ends the
 * string in PostgreSQL and SQLite but not in MySQL; a block comment that
 * holds a second opening delimiter is still open in PostgreSQL after the
 * first closing one, and closed everywhere else. So the text is read once
 * per lexical dialect (PostgreSQL, MySQL, SQLite) and the most destructive
 * reading wins. Text without any byte on which the dialects disagree is
 * read once. Dollar quotes, E'' strings and backticks are honoured in
 * every reading: taking them as plain text would misread every PostgreSQL
 * function body, and no server runs code hidden in them in a way that
 * another reading would catch.
 *
 * Reading. One forward pass over tokens per statement (split at every
 * `;` outside quotes and comments, whatever the parenthesis depth, so an
 * unbalanced `(` cannot hide the next statement). The statement's first
 * words decide its kind; for DELETE, UPDATE, INSERT, MERGE and WITH a
 * "frame" per parenthesis depth follows the tokens at its own depth, so a
 * WHERE in a subquery never filters the outer statement and a
 * data-modifying statement inside parentheses (a CTE body, COPY (...))
 * is classified on its own.
 *
 * Malformed text. An unterminated quote or comment means the server
 * rejects the text, or reads it differently from us; either way the part
 * after the opening delimiter is read again as SQL and may only raise the
 * class ("err toward the more destructive class").
 */
#include <stddef.h>
#include <string.h>

#include "agentguard.h"

/* ---- keywords ------------------------------------------------------------ */

/* Sorted (C locale): looked up by binary search. */
#define KEYWORDS(X) \
	X(ABORT) X(ALSO) X(ALTER) X(ANALYSE) X(ANALYZE) X(AS) \
	X(ASSERT) X(ATOMIC) X(ATTACH) X(BEGIN) X(BINLOG) X(BLACKHOLE) \
	X(CACHE) X(CALL) X(CASCADE) X(CASE) X(CHANGE) X(CHECK) \
	X(CHECKPOINT) X(CHECKSUM) X(CLONE) X(CLOSE) X(CLUSTER) X(COMMENT) \
	X(COMMIT) X(CONTINUE) X(COPY) X(CREATE) X(DATA) X(DATABASE) \
	X(DEALLOCATE) X(DECLARE) X(DEFAULT) X(DEFINER) X(DELETE) X(DESC) \
	X(DESCRIBE) X(DETACH) X(DETERMINISTIC) X(DISABLE) X(DISCARD) X(DO) \
	X(DOMAIN) X(DROP) X(DUMPFILE) X(ELSE) X(ELSEIF) X(ELSIF) \
	X(END) X(ENGINE) X(EVENT) X(EXCEPTION) X(EXECUTE) X(EXIT) \
	X(EXPLAIN) X(EXPRESSION) X(EXTENDED) X(EXTENSION) X(EXTERNAL) X(FALSE) \
	X(FETCH) X(FLUSH) X(FOR) X(FOREACH) X(FOREIGN) X(FORMAT) \
	X(FROM) X(FUNCTION) X(GET) X(GLOBAL) X(GRANT) X(HANDLER) \
	X(HELP) X(IDENTITY) X(IF) X(IGNORE) X(IMMEDIATE) X(IMPORT) \
	X(INDEX) X(INSERT) X(INSTALL) X(INSTEAD) X(INTO) X(INVOKER) \
	X(ITERATE) X(KILL) X(LANGUAGE) X(LEAVE) X(LIMIT) X(LISTEN) \
	X(LOAD) X(LOCAL) X(LOCK) X(LOOP) X(MERGE) X(MOVE) \
	X(NOT) X(NOTIFY) X(NULL) X(OFFLINE) X(ONLINE) X(OPEN) \
	X(OPTIMIZE) X(OR) X(ORDER) X(OUTFILE) X(OWNED) X(PARTITIONS) \
	X(PERFORM) X(PERSIST) X(PERSIST_ONLY) X(PLAN) X(PRAGMA) X(PREPARE) \
	X(PROCEDURE) X(PROGRAM) X(PURGE) X(QUERY) X(RAISE) X(REASSIGN) \
	X(RECURSIVE) X(REFRESH) X(REINDEX) X(RELEASE) X(RENAME) X(REPAIR) \
	X(REPEAT) X(REPLACE) X(RESET) X(RESIGNAL) X(RESTART) X(RETURN) \
	X(RETURNING) X(REVOKE) X(ROLE) X(ROLLBACK) X(ROW) X(RULE) \
	X(SAVEPOINT) X(SCHEMA) X(SECURITY) X(SELECT) X(SEQUENCE) X(SESSION) \
	X(SET) X(SET_CONFIG) X(SHOW) X(SHUTDOWN) X(SIGNAL) X(SQL) \
	X(START) X(STOP) X(SYSTEM) X(TABLE) X(TEMP) X(TEMPORARY) \
	X(THEN) X(TO) X(TRIGGER) X(TRUE) X(TRUNCATE) X(TYPE) \
	X(UNINSTALL) X(UNLISTEN) X(UNLOCK) X(UPDATE) X(UPSERT) X(USE) \
	X(USER) X(VACUUM) X(VALUES) X(VERBOSE) X(VIEW) X(VIRTUAL) \
	X(WHEN) X(WHERE) X(WHILE) X(WITH) X(XA) X(XML)

enum kw {
	K_NONE,
#define X(w) K_##w,
	KEYWORDS(X)
#undef X
	K_COUNT
};

static const char *const kw_names[K_COUNT] = {
	"",
#define X(w) #w,
	KEYWORDS(X)
#undef X
};

static int kw_lookup(const char *p, size_t len)
{
	char b[16];

	if (len == 0 || len >= sizeof b)
		return K_NONE;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		else if (!((c >= 'A' && c <= 'Z') || c == '_'))
			return K_NONE;
		b[i] = c;
	}
	b[len] = 0;
	int lo = 1, hi = K_COUNT - 1;
	while (lo <= hi) {
		/* Compared in line: libc's strcmp costs more to set up than
		 * these few bytes take (every word of every statement is
		 * looked up about 8 times). */
		int mid = (lo + hi) / 2;
		const unsigned char *x = (const unsigned char *)b, *y = (const unsigned char *)kw_names[mid];
		while (*x && *x == *y)
			x++, y++;
		int r = (int)*x - (int)*y;
		if (r == 0)
			return mid;
		if (r < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return K_NONE;
}

/* ---- lexer --------------------------------------------------------------- */

enum { M_PG, M_MY, M_LITE };
enum { T_END, T_WORD, T_QIDENT, T_STRING, T_NUMBER, T_PUNCT };
/* Punctuation is its own byte; these are the multi-byte operators. */
enum { OP_NE = 256, OP_LE, OP_GE, OP_EQ2, OP_NSEQ, OP_ASSIGN, OP_CONCAT,
       OP_ATAT, OP_CAST };

struct tok {
	int type, kw, op;
	size_t at, len;         /* the whole token */
	size_t cat, clen;       /* inside the quotes (strings, quoted names) */
};

struct lexer {
	const char *s;
	size_t n, i;
	int mode;
	int xdepth;             /* open MySQL executable comments */
	int unterm;
	size_t unterm_at;       /* just after the unterminated opening delimiter */
};

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* Bytes >= 0x80 are identifier bytes in all three servers (UTF-8 names). */
static int is_word_start(unsigned char c)
{
	return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_' || c >= 0x80;
}

static int is_word_char(unsigned char c)
{
	return is_word_start(c) || is_digit(c) || c == '$';
}

static int ieq(const char *a, size_t alen, const char *b)
{
	size_t i;

	for (i = 0; i < alen; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (!y)
			return 0;
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y - 'A' + 'a');
		if (x != y)
			return 0;
	}
	return b[i] == 0;
}

static void mark_unterm(struct lexer *L, size_t at)
{
	if (!L->unterm) {
		L->unterm = 1;
		L->unterm_at = at;
	}
}

static void skip_line(struct lexer *L)
{
	/* PostgreSQL's scanner also ends a -- comment at a bare CR. */
	while (L->i < L->n && L->s[L->i] != '\n' && !(L->s[L->i] == '\r' && L->mode == M_PG))
		L->i++;
}

static void skip_block(struct lexer *L)
{
	size_t start = L->i + 2;
	int depth = 1;

	L->i = start;
	while (L->i < L->n) {
		if (L->s[L->i] == '*' && L->i + 1 < L->n && L->s[L->i + 1] == '/') {
			L->i += 2;
			if (--depth == 0)
				return;
		} else if (L->mode == M_PG && L->s[L->i] == '/' && L->i + 1 < L->n &&
			   L->s[L->i + 1] == '*') {
			L->i += 2;
			depth++;
		} else {
			L->i++;
		}
	}
	mark_unterm(L, start);
}

/* A quoted token whose opening quote (after `skip` bytes of prefix) is at i. */
static void quoted(struct lexer *L, struct tok *t, char close, int bs, int type, size_t skip)
{
	t->type = type;
	t->cat = L->i + skip;
	L->i = t->cat;
	while (L->i < L->n) {
		char c = L->s[L->i];
		if (bs && c == '\\') {
			L->i += L->i + 1 < L->n ? 2 : 1;
			continue;
		}
		if (c == close) {
			if (close != ']' && L->i + 1 < L->n && L->s[L->i + 1] == close) {
				L->i += 2;
				continue;
			}
			t->clen = L->i - t->cat;
			L->i++;
			return;
		}
		L->i++;
	}
	t->clen = L->n - t->cat;
	mark_unterm(L, t->cat);
}

/* $tag$ ... $tag$ at i; 0 (nothing consumed) if i does not open one. */
static int dollar(struct lexer *L, struct tok *t)
{
	const char *s = L->s;
	size_t n = L->n, j = L->i + 1;

	if (j >= n)
		return 0;
	if (s[j] != '$') {
		if (!is_word_start((unsigned char)s[j]))
			return 0;
		while (j < n && (is_word_start((unsigned char)s[j]) || is_digit((unsigned char)s[j]))) {
			/* Longer than any real tag; keeps the closing search linear. */
			if (j - L->i > 64)
				return 0;
			j++;
		}
		if (j >= n || s[j] != '$')
			return 0;
	}
	size_t tl = j - L->i + 1;
	t->type = T_STRING;
	t->cat = j + 1;
	for (size_t k = t->cat; k + tl <= n; k++) {
		if (s[k] == '$' && memcmp(s + k, s + L->i, tl) == 0) {
			t->clen = k - t->cat;
			L->i = k + tl;
			return 1;
		}
	}
	t->clen = n - t->cat;
	L->i = n;
	mark_unterm(L, t->cat);
	return 1;
}

static void lex(struct lexer *L, struct tok *t)
{
	const char *s = L->s;
	size_t n = L->n;

	t->kw = K_NONE;
	t->op = 0;
	t->cat = t->clen = 0;
	for (;;) {
		/* NUL counts as blank: reading past it can only see more. */
		while (L->i < n && (unsigned char)s[L->i] <= ' ')
			L->i++;
		if (L->i >= n) {
			t->type = T_END;
			t->at = n;
			t->len = 0;
			return;
		}
		char c = s[L->i], d = L->i + 1 < n ? s[L->i + 1] : 0;
		if (c == '-' && d == '-' &&
		    (L->mode != M_MY || L->i + 2 >= n || (unsigned char)s[L->i + 2] <= ' ')) {
			skip_line(L);
			continue;
		}
		if (c == '#' && L->mode == M_MY) {
			skip_line(L);
			continue;
		}
		if (c == '/' && d == '*') {
			/* MySQL runs the inside of / *! ... * / (and MariaDB's / *M! ... * /). */
			size_t e = L->i + 2;
			if (L->mode == M_MY && e < n &&
			    (s[e] == '!' || (s[e] == 'M' && e + 1 < n && s[e + 1] == '!'))) {
				L->i = e + (s[e] == '!' ? 1 : 2);
				while (L->i < n && is_digit((unsigned char)s[L->i]))
					L->i++;
				L->xdepth++;
				continue;
			}
			skip_block(L);
			continue;
		}
		if (c == '*' && d == '/' && L->xdepth > 0) {
			L->i += 2;
			L->xdepth--;
			continue;
		}
		break;
	}

	size_t st = L->i;
	unsigned char c = (unsigned char)s[st];
	char d = st + 1 < n ? s[st + 1] : 0, e = st + 2 < n ? s[st + 2] : 0;

	t->at = st;
	if (c == '\'') {
		quoted(L, t, '\'', L->mode == M_MY, T_STRING, 1);
	} else if (c == '"') {
		if (L->mode == M_MY)
			quoted(L, t, '"', 1, T_STRING, 1);
		else
			quoted(L, t, '"', 0, T_QIDENT, 1);
	} else if (c == '`') {
		quoted(L, t, '`', 0, T_QIDENT, 1);
	} else if (c == '[' && L->mode == M_LITE) {
		quoted(L, t, ']', 0, T_QIDENT, 1);
	} else if ((c == 'E' || c == 'e') && d == '\'') {
		quoted(L, t, '\'', 1, T_STRING, 2);
	} else if (c == '$' && dollar(L, t)) {
		/* dollar() has read the whole quoted string */
	} else if (is_word_start(c) || c == '$') {
		L->i++;
		while (L->i < n && is_word_char((unsigned char)s[L->i]))
			L->i++;
		t->type = T_WORD;
		t->kw = kw_lookup(s + st, L->i - st);
	} else if (is_digit(c) || (c == '.' && is_digit((unsigned char)d))) {
		L->i++;
		while (L->i < n) {
			unsigned char x = (unsigned char)s[L->i];
			if (is_word_char(x) || x == '.')
				L->i++;
			else if ((x == '+' || x == '-') && (s[L->i - 1] == 'e' || s[L->i - 1] == 'E'))
				L->i++;
			else
				break;
		}
		t->type = T_NUMBER;
	} else {
		int op = c;
		size_t l = 2;
		if (c == '<' && d == '=' && e == '>')
			op = OP_NSEQ, l = 3;
		else if ((c == '<' && d == '>') || (c == '!' && d == '='))
			op = OP_NE;
		else if (c == '<' && d == '=')
			op = OP_LE;
		else if (c == '>' && d == '=')
			op = OP_GE;
		else if (c == '=' && d == '=')
			op = OP_EQ2;
		else if (c == ':' && d == '=')
			op = OP_ASSIGN;
		else if (c == '|' && d == '|')
			op = OP_CONCAT;
		else if (c == '@' && d == '@')
			op = OP_ATAT;
		else if (c == ':' && d == ':')
			op = OP_CAST;
		else
			l = 1;
		L->i += l;
		t->type = T_PUNCT;
		t->op = op;
	}
	t->len = L->i - st;
}

/* ---- parser state -------------------------------------------------------- */

/* Deeper sub-statements are classified blind (see open_nested). */
#define MAXD 32
/* Nesting of re-reads: DO bodies, EXECUTE strings, unterminated tails. */
#define MAXLEVEL 3

enum { F_NONE, F_SELECT, F_WITH, F_INSERT, F_UPDATE, F_DELETE, F_MERGE };
enum { W_NONE, W_IN, W_DONE };

struct tref {
	size_t at, len;
	int type, code;
};

struct frame {
	unsigned char kind;
	unsigned char fresh;       /* next token is the keyword that opened it */
	unsigned char expect_name; /* WITH: next word names a CTE */
	unsigned char where;
	unsigned char taut;        /* some OR branch of the WHERE is constant true */
	unsigned char then;        /* MERGE: last token was THEN */
	unsigned char merge;       /* MERGE actions seen: 1 insert, 2 update, 4 delete */
	unsigned char nb;          /* tokens in the current OR branch (4 = more) */
	unsigned short ntok;       /* tokens in the whole WHERE (saturating) */
	unsigned char named;       /* DELETE/UPDATE: the table it changes was read */
	unsigned char own;         /* ... and it is one of the connection's temporary tables */
	size_t wat;                /* where the WHERE's condition starts */
	signed char extra;         /* SELECT ... INTO: class it raises to, -1 none */
	struct tref br[3];
};

struct parser {
	struct lexer lx;
	long depth;
	int done, eof, body, level;
	int cls;                   /* rank of the current statement, -1 empty */
	struct ag_sql_temps *temps;/* the connection's temporary tables, or NULL */
	struct frame fr[MAXD];
};

static int run(const char *s, size_t n, int mode, int body, int level,
	       struct ag_sql_temps *temps);
/* A table's name as a connection would resolve it. 0: unqualified, 1:
 * in the temporary schema (pg_temp, SQLite's temp), 2: in another one. */
struct tname {
	const char *s;
	size_t len;
	int quoted, schema;
};
static int temp_find(const struct ag_sql_temps *T, const struct tname *nm);

/* The spec's order puts other above read; the enum has them the other way. */
static int rank(enum ag_sql_class c)
{
	return c == AG_SQL_OTHER ? 1 : c == AG_SQL_READ ? 0 : (int)c;
}

static enum ag_sql_class unrank(int r)
{
	return r == 1 ? AG_SQL_OTHER : r == 0 ? AG_SQL_READ : (enum ag_sql_class)r;
}

static void bump(struct parser *P, enum ag_sql_class c)
{
	int r = rank(c);
	if (r > P->cls)
		P->cls = r;
}

static int is_op(const struct tok *t, int op) { return t->type == T_PUNCT && t->op == op; }
static int is_kw(const struct tok *t, int kw) { return t->type == T_WORD && t->kw == kw; }
static int is_name(const struct tok *t) { return t->type == T_WORD || t->type == T_QIDENT; }

static void end_tok(struct tok *t)
{
	t->type = T_END;
	t->kw = K_NONE;
	t->op = 0;
	t->at = t->len = t->cat = t->clen = 0;
}

/* The text a value token stands for: quotes stripped. */
static const char *tok_text(const struct parser *P, const struct tok *t, size_t *len)
{
	if (t->type == T_STRING || t->type == T_QIDENT) {
		*len = t->clen;
		return P->lx.s + t->cat;
	}
	*len = t->len;
	return P->lx.s + t->at;
}

static int tok_is(const struct parser *P, const struct tok *t, const char *word)
{
	size_t len;
	const char *p;

	if (t->type != T_WORD && t->type != T_STRING && t->type != T_QIDENT)
		return 0;
	p = tok_text(P, t, &len);
	return ieq(p, len, word);
}

/* The next k tokens of the statement, without consuming them. */
static void peekn(const struct parser *P, struct tok *out, int k)
{
	struct lexer L = P->lx;
	int i = 0;

	if (!P->done) {
		for (; i < k; i++) {
			lex(&L, &out[i]);
			if (out[i].type == T_END || is_op(&out[i], ';'))
				break;
		}
	}
	for (; i < k; i++)
		end_tok(&out[i]);
}

static void peek(const struct parser *P, struct tok *t)
{
	peekn(P, t, 1);
}

/* ---- WHERE clauses ------------------------------------------------------- */

static int small_int(const struct parser *P, const struct tref *r, long long *v)
{
	const char *p = P->lx.s + r->at;

	if (r->type != T_NUMBER || r->len == 0 || r->len > 18)
		return 0;
	*v = 0;
	for (size_t i = 0; i < r->len; i++) {
		if (!is_digit((unsigned char)p[i]))
			return 0;
		*v = *v * 10 + (p[i] - '0');
	}
	return 1;
}

static int zero_number(const struct parser *P, const struct tref *r)
{
	const char *p = P->lx.s + r->at;

	if (r->type != T_NUMBER)
		return 0;
	for (size_t i = 0; i < r->len; i++)
		if (p[i] != '0' && p[i] != '.')
			return 0;
	return 1;
}

static int same_text(const struct parser *P, const struct tref *a, const struct tref *b)
{
	const char *s = P->lx.s;

	if (a->type != b->type || a->len != b->len)
		return 0;
	if (a->type == T_WORD) {
		for (size_t i = 0; i < a->len; i++) {
			unsigned char x = (unsigned char)s[a->at + i], y = (unsigned char)s[b->at + i];
			if (x >= 'A' && x <= 'Z')
				x = (unsigned char)(x - 'A' + 'a');
			if (y >= 'A' && y <= 'Z')
				y = (unsigned char)(y - 'A' + 'a');
			if (x != y)
				return 0;
		}
		return a->code != K_NULL;
	}
	return memcmp(s + a->at, s + b->at, a->len) == 0;
}

/*
 * `DELETE FROM t WHERE 1=1` filters nothing; agents use exactly such
 * conditions to get past "no WHERE" checks. Only whole OR branches made of
 * constants (or a column compared with itself) count.
 */
static int tautology(const struct parser *P, const struct frame *f)
{
	const struct tref *a = f->br;
	long long x, y;

	if (f->nb == 1)
		return (a[0].type == T_WORD && a[0].code == K_TRUE) ||
		       (a[0].type == T_NUMBER && !zero_number(P, &a[0]) && small_int(P, &a[0], &x));
	if (f->nb == 2)
		return a[0].type == T_WORD && a[0].code == K_NOT &&
		       ((a[1].type == T_WORD && a[1].code == K_FALSE) || zero_number(P, &a[1]));
	if (f->nb != 3 || a[1].type != T_PUNCT)
		return 0;
	int op = a[1].code;
	if (small_int(P, &a[0], &x) && small_int(P, &a[2], &y)) {
		switch (op) {
		case '=': case OP_EQ2: case OP_NSEQ: return x == y;
		case OP_NE: return x != y;
		case '<': return x < y;
		case '>': return x > y;
		case OP_LE: return x <= y;
		case OP_GE: return x >= y;
		default: return 0;
		}
	}
	if (op != '=' && op != OP_EQ2 && op != OP_NSEQ && op != OP_LE && op != OP_GE)
		return 0;
	if (a[0].type != T_NUMBER && a[0].type != T_STRING && a[0].type != T_WORD &&
	    a[0].type != T_QIDENT)
		return 0;
	return same_text(P, &a[0], &a[2]);
}

/*
 * The whole WHERE, evaluated where its value is known for every row:
 * constants, a column compared with itself, `x LIKE '%'`, NOT, AND, OR,
 * IS [NOT], BETWEEN, IN over constants, parentheses. Anything else
 * (a function, a subquery, arithmetic) is unknown and makes the WHERE a
 * filter, as it may be one.
 */
enum { V_UNK, V_TRUE, V_FALSE, V_NULL, V_NUM, V_STR, V_COL };

struct val {
	int kind;
	double num;
	size_t at, len;   /* V_STR: the text; V_COL: the name as written */
};

struct ev {
	const struct parser *P;
	struct lexer L;
	struct tok t;      /* the current token */
	int bad, depth;
};

static void ev_next(struct ev *e)
{
	lex(&e->L, &e->t);
}

static int ev_word(const struct ev *e, const char *w)
{
	return e->t.type == T_WORD && ieq(e->P->lx.s + e->t.at, e->t.len, w);
}

/* SQL truth of a value: V_TRUE, V_FALSE, or V_UNK (NULL counts as not
 * true, which is all that matters here). */
static int truth(const struct val *v)
{
	switch (v->kind) {
	case V_TRUE: return V_TRUE;
	case V_FALSE: case V_NULL: return V_FALSE;
	case V_NUM: return v->num != 0 ? V_TRUE : V_FALSE;
	default: return V_UNK;
	}
}

static struct val boolean(int t)
{
	return (struct val){.kind = t};
}

static struct val ev_or(struct ev *e);

static int same_col(const struct ev *e, const struct val *a, const struct val *b)
{
	const char *s = e->P->lx.s;

	if (a->len != b->len)
		return 0;
	for (size_t i = 0; i < a->len; i++) {
		unsigned char x = (unsigned char)s[a->at + i], y = (unsigned char)s[b->at + i];
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y - 'A' + 'a');
		if (x != y)
			return 0;
	}
	return 1;
}

static struct val ev_term(struct ev *e)
{
	struct val v = {V_UNK, 0, 0, 0};
	const struct tok *t = &e->t;
	int neg = 0;

	while (is_op(t, '-') || is_op(t, '+')) {
		neg ^= is_op(t, '-');
		ev_next(e);
	}
	if (t->type == T_NUMBER) {
		/* Digits, a point, more digits: enough to tell 0 from not 0
		 * and to order small constants (no locale: a host's may use a
		 * decimal comma). */
		const char *p = e->P->lx.s + t->at;
		double scale = 0;
		v.kind = V_NUM;
		for (size_t i = 0; i < t->len; i++) {
			if (p[i] == '.' && !scale) {
				scale = 1;
			} else if (is_digit((unsigned char)p[i])) {
				if (scale)
					v.num += (p[i] - '0') * (scale /= 10);
				else
					v.num = v.num * 10 + (p[i] - '0');
			} else {
				e->bad = 1;   /* 1e3, 0x10: not worth knowing */
			}
		}
		if (neg)
			v.num = -v.num;
		ev_next(e);
		return v;
	}
	if (neg) {
		e->bad = 1;   /* -x: arithmetic */
		return v;
	}
	if (t->type == T_STRING) {
		v.kind = V_STR;
		v.at = t->cat;
		v.len = t->clen;
		ev_next(e);
		return v;
	}
	if (is_op(t, '(')) {
		if (++e->depth > 16) {
			e->bad = 1;
			return v;
		}
		ev_next(e);
		v = ev_or(e);
		e->depth--;
		if (!is_op(t, ')'))
			e->bad = 1;
		ev_next(e);
		return v;
	}
	if (t->type == T_WORD && (t->kw == K_TRUE || t->kw == K_FALSE || t->kw == K_NULL)) {
		v.kind = t->kw == K_TRUE ? V_TRUE : t->kw == K_FALSE ? V_FALSE : V_NULL;
		ev_next(e);
		return v;
	}
	if (is_name(t) && !ev_word(e, "not") && !ev_word(e, "and") && !ev_word(e, "or")) {
		/* A column, perhaps qualified: compared by how it is written. */
		v.kind = V_COL;
		v.at = t->at;
		for (;;) {
			v.len = t->at + t->len - v.at;
			ev_next(e);
			if (!is_op(t, '.'))
				break;
			ev_next(e);
			if (!is_name(t)) {
				e->bad = 1;
				return v;
			}
		}
		if (is_op(t, '('))
			e->bad = 1;   /* a function call */
		return v;
	}
	e->bad = 1;
	return v;
}

static int known(const struct val *v)
{
	return v->kind == V_NUM || v->kind == V_STR || v->kind == V_TRUE || v->kind == V_FALSE;
}

/* -1, 0, 1, or 2 when the two cannot be ordered here. */
static int order(const struct ev *e, const struct val *a, const struct val *b)
{
	if ((a->kind == V_NUM || a->kind == V_TRUE || a->kind == V_FALSE) &&
	    (b->kind == V_NUM || b->kind == V_TRUE || b->kind == V_FALSE)) {
		double x = a->kind == V_NUM ? a->num : a->kind == V_TRUE;
		double y = b->kind == V_NUM ? b->num : b->kind == V_TRUE;
		return x < y ? -1 : x > y;
	}
	if (a->kind == V_STR && b->kind == V_STR) {
		size_t n = a->len < b->len ? a->len : b->len;
		int c = memcmp(e->P->lx.s + a->at, e->P->lx.s + b->at, n);
		return c ? (c < 0 ? -1 : 1) : a->len < b->len ? -1 : a->len > b->len;
	}
	return 2;
}

static struct val compare(const struct ev *e, int op, const struct val *a, const struct val *b)
{
	if (a->kind == V_NULL || b->kind == V_NULL)
		return boolean(V_NULL);
	if (a->kind == V_COL && b->kind == V_COL && same_col(e, a, b))
		/* x = x holds for every row but those where x is NULL. */
		return boolean(op == '=' || op == OP_EQ2 || op == OP_NSEQ || op == OP_LE ||
			       op == OP_GE ? V_TRUE : V_FALSE);
	int c = order(e, a, b);
	if (c == 2)
		return boolean(V_UNK);
	switch (op) {
	case '=': case OP_EQ2: case OP_NSEQ: return boolean(c == 0 ? V_TRUE : V_FALSE);
	case OP_NE: return boolean(c != 0 ? V_TRUE : V_FALSE);
	case '<': return boolean(c < 0 ? V_TRUE : V_FALSE);
	case '>': return boolean(c > 0 ? V_TRUE : V_FALSE);
	case OP_LE: return boolean(c <= 0 ? V_TRUE : V_FALSE);
	case OP_GE: return boolean(c >= 0 ? V_TRUE : V_FALSE);
	default: return boolean(V_UNK);
	}
}

static int cmp_op(const struct tok *t)
{
	if (t->type != T_PUNCT)
		return 0;
	switch (t->op) {
	case '=': case OP_EQ2: case OP_NSEQ: case OP_NE: case '<': case '>': case OP_LE: case OP_GE:
		return t->op;
	default:
		return 0;
	}
}

static struct val negate(struct val v)
{
	int t = truth(&v);

	return boolean(t == V_TRUE ? V_FALSE : t == V_FALSE && v.kind != V_NULL ? V_TRUE : V_UNK);
}

static struct val ev_pred(struct ev *e)
{
	struct val a = ev_term(e);
	int op, not = 0;

	if (e->bad)
		return a;
	if ((op = cmp_op(&e->t))) {
		ev_next(e);
		struct val b = ev_term(e);
		return compare(e, op, &a, &b);
	}
	if (ev_word(e, "is")) {
		ev_next(e);
		if (ev_word(e, "not")) {
			not = 1;
			ev_next(e);
		}
		if (ev_word(e, "distinct")) {
			ev_next(e);
			if (!ev_word(e, "from")) {
				e->bad = 1;
				return a;
			}
			ev_next(e);
			not = !not;
		}
		struct val b = ev_term(e);
		int same;
		if (a.kind == V_COL && b.kind == V_COL)
			same = same_col(e, &a, &b) ? 1 : -1;
		else if (a.kind == V_NULL || b.kind == V_NULL)
			same = a.kind == b.kind ? 1 : known(&a) || known(&b) ? 0 : -1;
		else
			same = order(e, &a, &b) == 2 ? -1 : order(e, &a, &b) == 0;
		if (same < 0)
			return boolean(V_UNK);
		return boolean(same != not ? V_TRUE : V_FALSE);
	}
	if (ev_word(e, "not")) {
		ev_next(e);
		not = 1;
	}
	if (ev_word(e, "like")) {
		ev_next(e);
		struct val b = ev_term(e);
		int all = b.kind == V_STR && b.len > 0;
		for (size_t i = 0; all && i < b.len; i++)
			all = e->P->lx.s[b.at + i] == '%';
		/* `x LIKE '%'`: every row where x is not NULL. */
		if (all && (a.kind == V_COL || a.kind == V_STR))
			return boolean(not ? V_FALSE : V_TRUE);
		return boolean(V_UNK);
	}
	if (ev_word(e, "between")) {
		ev_next(e);
		struct val lo = ev_term(e);
		if (!ev_word(e, "and")) {
			e->bad = 1;
			return a;
		}
		ev_next(e);
		struct val hi = ev_term(e);
		int x = order(e, &lo, &a), y = order(e, &a, &hi);
		if (x == 2 || y == 2)
			return boolean(V_UNK);
		return boolean((x <= 0 && y <= 0) != not ? V_TRUE : V_FALSE);
	}
	if (ev_word(e, "in")) {
		ev_next(e);
		if (!is_op(&e->t, '(')) {
			e->bad = 1;
			return a;
		}
		int found = 0, unk = 0;
		do {
			ev_next(e);
			struct val b = ev_term(e);
			if (e->bad)
				return a;
			int c = order(e, &a, &b);
			if (c == 0)
				found = 1;
			else if (c == 2)
				unk = 1;
		} while (is_op(&e->t, ','));
		if (!is_op(&e->t, ')')) {
			e->bad = 1;
			return a;
		}
		ev_next(e);
		if (!found && unk)
			return boolean(V_UNK);
		return boolean(found != not ? V_TRUE : V_FALSE);
	}
	if (not) {
		e->bad = 1;
		return a;
	}
	return a;
}

static struct val ev_not(struct ev *e)
{
	if (ev_word(e, "not")) {
		ev_next(e);
		return negate(ev_not(e));
	}
	return ev_pred(e);
}

static struct val ev_and(struct ev *e)
{
	struct val v = ev_not(e);
	int t = truth(&v);

	while (!e->bad && ev_word(e, "and")) {
		ev_next(e);
		struct val w = ev_not(e);
		int u = truth(&w);
		t = t == V_FALSE || u == V_FALSE ? V_FALSE : t == V_TRUE && u == V_TRUE ? V_TRUE : V_UNK;
	}
	return v.kind == V_COL && t == V_UNK ? v : boolean(t);
}

static struct val ev_or(struct ev *e)
{
	struct val v = ev_and(e);
	int t = truth(&v);

	while (!e->bad && ev_word(e, "or")) {
		ev_next(e);
		struct val w = ev_and(e);
		int u = truth(&w);
		t = t == V_TRUE || u == V_TRUE ? V_TRUE : t == V_FALSE && u == V_FALSE ? V_FALSE : V_UNK;
	}
	return v.kind == V_COL && t == V_UNK ? v : boolean(t);
}

/* 1 when the WHERE text [from, to) is true for every row (NULLs aside). */
static int where_true(const struct parser *P, size_t from, size_t to)
{
	struct ev e = {.P = P, .L = P->lx};

	if (to > P->lx.n)
		to = P->lx.n;
	e.L.i = from;
	e.L.n = to;
	ev_next(&e);
	struct val v = ev_or(&e);
	int stop = e.t.type == T_END || is_op(&e.t, ';') || is_op(&e.t, ')');
	return !e.bad && stop && truth(&v) == V_TRUE;
}

static void end_branch(const struct parser *P, struct frame *f)
{
	if (f->nb >= 1 && f->nb <= 3 && tautology(P, f))
		f->taut = 1;
	f->nb = 0;
}

/* ---- frames -------------------------------------------------------------- */

static void become(struct frame *f, int kind)
{
	f->kind = (unsigned char)kind;
	f->fresh = f->expect_name = f->where = f->taut = f->then = f->merge = f->nb = 0;
	f->named = f->own = 0;
	f->ntok = 0;
	f->extra = -1;
}

static enum ag_sql_class blind_class(int kind)
{
	switch (kind) {
	case F_DELETE: case F_MERGE: return AG_SQL_DELETE_ALL;
	case F_UPDATE: return AG_SQL_UPDATE_ALL;
	case F_INSERT: return AG_SQL_INSERT;
	default: return AG_SQL_READ;
	}
}

static int frame_rank(const struct parser *P, struct frame *f)
{
	switch (f->kind) {
	case F_SELECT:
		return f->extra > 0 ? f->extra : rank(AG_SQL_READ);
	case F_WITH:
		return rank(AG_SQL_READ);
	case F_INSERT:
		return rank(AG_SQL_INSERT);
	case F_DELETE:
	case F_UPDATE: {
		if (f->where == W_IN) {
			end_branch(P, f);
			if (where_true(P, f->wat, P->lx.i))
				f->taut = 1;
		}
		/* Emptying the connection's own temporary table loses
		 * nobody's data: an ordinary change. */
		int filtered = (f->where != W_NONE && f->ntok > 0 && !f->taut) || f->own;
		if (f->kind == F_DELETE)
			return rank(filtered ? AG_SQL_DELETE : AG_SQL_DELETE_ALL);
		return rank(filtered ? AG_SQL_UPDATE : AG_SQL_UPDATE_ALL);
	}
	case F_MERGE:
		return rank(f->merge & 4 ? AG_SQL_DELETE : f->merge & 2 ? AG_SQL_UPDATE :
			    f->merge & 1 ? AG_SQL_INSERT : AG_SQL_UPDATE);
	default:
		return -1;
	}
}

static void close_frame(struct parser *P, long d)
{
	if (d >= 0 && d < MAXD && P->fr[d].kind != F_NONE) {
		int r = frame_rank(P, &P->fr[d]);
		if (r > P->cls)
			P->cls = r;
		P->fr[d].kind = F_NONE;
	}
}

/* The statement at the current depth is of this kind from here on. */
static void open_here(struct parser *P, int kind)
{
	long d = P->depth;

	if (d >= MAXD) {
		bump(P, blind_class(kind));
		return;
	}
	close_frame(P, d);
	become(&P->fr[d], kind);
	P->fr[d].expect_name = kind == F_WITH;
}

static void feed(struct parser *P, struct frame *f, const struct tok *t)
{
	if (f->fresh) {
		f->fresh = 0;
		return;
	}
	switch (f->kind) {
	case F_WITH:
		if (f->expect_name) {
			f->expect_name = is_kw(t, K_RECURSIVE);
			return;
		}
		if (is_op(t, ',')) {
			f->expect_name = 1;
			return;
		}
		if (t->type != T_WORD)
			return;
		switch (t->kw) {
		case K_SELECT: case K_VALUES: case K_TABLE: become(f, F_SELECT); break;
		case K_INSERT: case K_REPLACE: case K_UPSERT: become(f, F_INSERT); break;
		case K_UPDATE: become(f, F_UPDATE); break;
		case K_DELETE: become(f, F_DELETE); break;
		case K_MERGE: become(f, F_MERGE); break;
		default: break;
		}
		return;
	case F_DELETE:
	case F_UPDATE:
		if (!f->named) {
			/* DELETE [LOW_PRIORITY] [QUICK] [IGNORE] [FROM] [ONLY] t,
			 * UPDATE [LOW_PRIORITY] [IGNORE] [ONLY] t [[AS] a] SET: t
			 * alone, not qualified, not one of several (MySQL's
			 * multi-table forms: DELETE t, u FROM ...; UPDATE t JOIN u
			 * or t, u, which may set u's columns). */
			if (is_kw(t, K_FROM) || is_kw(t, K_IGNORE) || tok_is(P, t, "ONLY") ||
			    tok_is(P, t, "LOW_PRIORITY") || tok_is(P, t, "QUICK"))
				return;
			f->named = 1;
			struct tok u[3];
			peekn(P, u, 3);
			int alone = f->kind == F_DELETE
				? !is_op(&u[0], '.') && !is_op(&u[0], ',')
				: is_kw(&u[0], K_SET) ||
				  (is_kw(&u[0], K_AS) && is_name(&u[1]) && is_kw(&u[2], K_SET)) ||
				  (is_name(&u[0]) && u[0].kw == K_NONE && is_kw(&u[1], K_SET));
			if (is_name(t) && alone) {
				struct tname nm = {.quoted = t->type == T_QIDENT};
				nm.s = tok_text(P, t, &nm.len);
				f->own = temp_find(P->temps, &nm) >= 0;
			}
			return;
		}
		if (f->where == W_IN) {
			if (is_kw(t, K_ORDER) || is_kw(t, K_LIMIT) || is_kw(t, K_RETURNING)) {
				end_branch(P, f);
				f->where = W_DONE;
				if (where_true(P, f->wat, t->at))
					f->taut = 1;
			} else if (is_kw(t, K_OR)) {
				end_branch(P, f);
			} else {
				if (f->nb < 3) {
					struct tref *r = &f->br[f->nb];
					r->at = t->at;
					r->len = t->len;
					r->type = t->type;
					r->code = t->type == T_PUNCT ? t->op : t->kw;
				}
				if (f->nb < 4)
					f->nb++;
				if (f->ntok < 60000)
					f->ntok++;
			}
		} else if (f->where == W_NONE && is_kw(t, K_WHERE)) {
			f->where = W_IN;
			f->wat = t->at + t->len;
		}
		return;
	case F_MERGE:
		if (f->then) {
			f->then = 0;
			f->merge |= is_kw(t, K_DELETE) ? 4 : is_kw(t, K_UPDATE) ? 2 :
				    is_kw(t, K_INSERT) ? 1 : 0;
		} else {
			f->then = is_kw(t, K_THEN);
		}
		return;
	case F_SELECT:
		/* SELECT ... INTO t creates a table (PostgreSQL); INTO @v or a
		 * routine's local variable does not; INTO OUTFILE writes a file. */
		if (!P->body && f->extra < 0 && is_kw(t, K_INTO)) {
			struct tok u;
			peek(P, &u);
			if (is_kw(&u, K_OUTFILE) || is_kw(&u, K_DUMPFILE))
				f->extra = (signed char)rank(AG_SQL_OTHER);
			else if (is_name(&u))
				f->extra = (signed char)rank(AG_SQL_DDL);
			else
				f->extra = 0;
		}
		return;
	default:
		return;
	}
}

static void feed_at(struct parser *P, long d, const struct tok *t)
{
	if (d >= 0 && d < MAXD && P->fr[d].kind != F_NONE)
		feed(P, &P->fr[d], t);
}

/*
 * Just after `(`: is this the start of a data-modifying statement? Only
 * the shapes a server accepts count (DELETE FROM, INSERT INTO, UPDATE name
 * ... SET), because PostgreSQL lets DELETE, INSERT and UPDATE be plain
 * column names: `CREATE TABLE t (delete int)` is not a DELETE.
 */
static void open_nested(struct parser *P)
{
	struct tok a[8];
	long d = P->depth;
	int kind = F_NONE;

	if (d < MAXD)
		P->fr[d].kind = F_NONE;
	peekn(P, a, 2);
	if (a[0].type != T_WORD)
		return;
	switch (a[0].kw) {
	case K_DELETE:
		if (is_kw(&a[1], K_FROM))
			kind = F_DELETE;
		break;
	case K_INSERT:
		if (is_kw(&a[1], K_INTO))
			kind = F_INSERT;
		break;
	case K_MERGE:
		if (is_kw(&a[1], K_INTO))
			kind = F_MERGE;
		break;
	case K_WITH:
		if (is_name(&a[1]))
			kind = F_WITH;
		break;
	case K_UPDATE:
		if (!is_name(&a[1]) || is_kw(&a[1], K_SET))
			break;
		peekn(P, a, 8);
		for (int i = 2; i < 8; i++) {
			if (is_kw(&a[i], K_SET)) {
				kind = F_UPDATE;
				break;
			}
			if (!is_name(&a[i]) && !is_op(&a[i], '.') && !is_op(&a[i], '*'))
				break;
		}
		break;
	default:
		break;
	}
	if (kind == F_NONE)
		return;
	if (d >= MAXD) {
		bump(P, blind_class(kind));
		return;
	}
	become(&P->fr[d], kind);
	P->fr[d].fresh = 1;
	P->fr[d].expect_name = kind == F_WITH;
}

/* ---- safety switches ----------------------------------------------------- */

enum { SW_OFF_UNSAFE = 1, SW_ON_UNSAFE, SW_REPLICA };

struct sw {
	const char *name;
	unsigned char kind;
	unsigned char default_unsafe; /* DEFAULT usually means "off" here */
};

static const struct sw switches[] = {
	/* MySQL / MariaDB */
	{ "sql_safe_updates", SW_OFF_UNSAFE, 1 },
	{ "foreign_key_checks", SW_OFF_UNSAFE, 0 },
	{ "unique_checks", SW_OFF_UNSAFE, 0 },
	{ "check_constraint_checks", SW_OFF_UNSAFE, 0 },
	{ "sql_log_bin", SW_OFF_UNSAFE, 0 },
	{ "read_only", SW_OFF_UNSAFE, 1 },
	{ "super_read_only", SW_OFF_UNSAFE, 1 },
	{ "transaction_read_only", SW_OFF_UNSAFE, 1 },
	{ "tx_read_only", SW_OFF_UNSAFE, 1 },
	/* PostgreSQL */
	{ "default_transaction_read_only", SW_OFF_UNSAFE, 1 },
	{ "session_replication_role", SW_REPLICA, 0 },
	/* SQLite pragmas */
	{ "foreign_keys", SW_OFF_UNSAFE, 0 },
	{ "query_only", SW_OFF_UNSAFE, 1 },
	{ "writable_schema", SW_ON_UNSAFE, 0 },
	{ "ignore_check_constraints", SW_ON_UNSAFE, 0 },
};

static const struct sw *find_switch(const struct parser *P, const struct tok *name)
{
	size_t len;
	const char *p;

	if (!is_name(name) && name->type != T_STRING)
		return NULL;
	p = tok_text(P, name, &len);
	for (size_t i = 0; i < sizeof switches / sizeof switches[0]; i++)
		if (ieq(p, len, switches[i].name))
			return &switches[i];
	return NULL;
}

/* 1 on, 0 off, 2 DEFAULT, -1 anything else. */
static int truthy(const struct parser *P, const struct tok *v)
{
	if (v->type == T_NUMBER) {
		const char *p = P->lx.s + v->at;
		int zero = 1;
		for (size_t i = 0; i < v->len; i++) {
			if (p[i] != '.' && !is_digit((unsigned char)p[i]))
				return -1;
			if (p[i] != '0' && p[i] != '.')
				zero = 0;
		}
		return !zero;
	}
	if (tok_is(P, v, "on") || tok_is(P, v, "true") || tok_is(P, v, "yes"))
		return 1;
	if (tok_is(P, v, "off") || tok_is(P, v, "false") || tok_is(P, v, "no"))
		return 0;
	if (is_kw(v, K_DEFAULT))
		return 2;
	return -1;
}

/* v NULL: the value is an expression we cannot evaluate. For a safety
 * switch that counts as switching it off. */
static int switch_off(const struct parser *P, const struct sw *sw, const struct tok *v)
{
	if (!v)
		return 1;
	if (sw->kind == SW_REPLICA) {
		if (tok_is(P, v, "replica"))
			return 1;
		return !(tok_is(P, v, "origin") || tok_is(P, v, "local") || is_kw(v, K_DEFAULT));
	}
	int b = truthy(P, v);
	if (b == 2)
		return sw->kind == SW_OFF_UNSAFE ? sw->default_unsafe : 0;
	if (b < 0)
		return 1;
	return sw->kind == SW_OFF_UNSAFE ? b == 0 : b == 1;
}

/* ---- statements ---------------------------------------------------------- */

static void nx(struct parser *P, struct tok *t);

/* Read the string's contents as SQL in its own right (DO bodies, dynamic
 * SQL, routine bodies); its class may only raise the statement's. `now`:
 * it runs in this session at once (DO, EXECUTE), so the connection's
 * temporary tables are its own, and what it makes or drops counts; a
 * routine body runs later, perhaps in another session, where the same
 * names are anyone's tables. */
static void sub_in(struct parser *P, const struct tok *s, int now)
{
	if (P->level >= MAXLEVEL || s->type != T_STRING)
		return;
	int r = run(P->lx.s + s->cat, s->clen, P->lx.mode, 1, P->level + 1,
		    now ? P->temps : NULL);
	if (r > P->cls)
		P->cls = r;
}

static void sub(struct parser *P, const struct tok *s)
{
	sub_in(P, s, 1);
}

/* ---- the connection's temporary tables ----------------------------------- */


/* The [schema.]name starting at t (consumed); t is left on the token
 * after it. 0 when t is no name. */
static int table_name(struct parser *P, struct tok *t, struct tname *nm)
{
	struct tok u;

	if (!is_name(t))
		return 0;
	nm->schema = 0;
	peek(P, &u);
	if (is_op(&u, '.')) {
		nm->schema = tok_is(P, t, "pg_temp") || tok_is(P, t, "temp") ? 1 : 2;
		nx(P, &u);
		nx(P, t);
		if (!is_name(t))
			return 0;
	}
	nm->s = tok_text(P, t, &nm->len);
	nm->quoted = t->type == T_QIDENT;
	nx(P, t);
	return 1;
}

static int temp_find(const struct ag_sql_temps *T, const struct tname *nm)
{
	if (!T || nm->schema == 2)
		return -1;
	for (unsigned i = 0; i < T->n && i < AG_SQL_TEMPS; i++)
		if (T->t[i].len == nm->len && T->t[i].quoted == nm->quoted &&
		    memcmp(T->t[i].name, nm->s, nm->len) == 0)
			return (int)i;
	return -1;
}

static void temp_forget(struct ag_sql_temps *T, int i)
{
	if (!T || i < 0 || (unsigned)i >= T->n)
		return;
	T->t[i] = T->t[T->n - 1];
	T->n--;
}

/* A full set keeps no more: a table it does not know is anyone's. */
static void temp_add(struct ag_sql_temps *T, const struct tname *nm)
{
	if (!T || nm->schema == 2 || nm->len == 0 || nm->len >= AG_SQL_TEMP_NAME ||
	    T->n >= AG_SQL_TEMPS || temp_find(T, nm) >= 0)
		return;
	struct ag_sql_temp *e = &T->t[T->n++];
	memcpy(e->name, nm->s, nm->len);
	e->name[nm->len] = 0;
	e->len = (unsigned char)nm->len;
	e->quoted = (unsigned char)nm->quoted;
	e->fresh = 1;
}

/* Every name of a statement's list ([IF EXISTS] a, b, ...) is one of the
 * connection's temporary tables: 1, and they are forgotten if `drop`. t
 * is the first token after the keyword; the rest of the list is consumed. */
static int all_temps(struct parser *P, struct tok *t, int mysql_temporary, int drop)
{
	struct tname nm;
	int idx[AG_SQL_TEMPS + 1], k = 0, all = 1;

	if (is_kw(t, K_IF)) {
		nx(P, t);   /* EXISTS */
		nx(P, t);
	}
	for (;;) {
		if (tok_is(P, t, "ONLY"))
			nx(P, t);
		if (!table_name(P, t, &nm)) {
			all = 0;
			break;
		}
		int i = temp_find(P->temps, &nm);
		if (i < 0 && !mysql_temporary)
			all = 0;
		else if (i >= 0 && k < AG_SQL_TEMPS)
			idx[k++] = i;
		if (is_op(t, '*'))
			nx(P, t);
		if (!is_op(t, ','))
			break;
		nx(P, t);
	}
	if (!all || !drop)
		return all;
	/* Highest index first: forgetting moves the last entry down. */
	for (int a = 0; a < k; a++)
		for (int b = a + 1; b < k; b++)
			if (idx[b] > idx[a]) {
				int x = idx[a];
				idx[a] = idx[b];
				idx[b] = x;
			}
	for (int a = 0; a < k; a++)
		if (a == 0 || idx[a] != idx[a - 1])
			temp_forget(P->temps, idx[a]);
	return 1;
}

/* A statement names one of the temporary tables in a way that may change
 * what the name stands for (renamed, altered): forget it. */
static void temps_touched(struct parser *P, const struct tok *t)
{
	struct tname nm;

	if (!P->temps || !is_name(t))
		return;
	nm.s = tok_text(P, t, &nm.len);
	nm.quoted = t->type == T_QIDENT;
	nm.schema = 0;
	temp_forget(P->temps, temp_find(P->temps, &nm));
}

/* `set_config('session_replication_role', 'replica', ...)` anywhere. */
static void set_config_call(struct parser *P)
{
	struct tok a[4];

	peekn(P, a, 4);
	if (!is_op(&a[0], '(') || a[1].type != T_STRING || !is_op(&a[2], ','))
		return;
	const struct sw *sw = find_switch(P, &a[1]);
	if (sw && switch_off(P, sw, a[3].type == T_END ? NULL : &a[3]))
		bump(P, AG_SQL_SAFETY_OFF);
}

/*
 * Server functions that destroy what no statement names: called anywhere
 * (SELECT lo_unlink(42), a WHERE clause, a function body), they are worth
 * the class of what they do.
 */
static const struct {
	const char *name;
	enum ag_sql_class cls;
} destructive_fns[] = {
	/* A whole object gone for good, as a dropped table is. */
	{"lo_unlink", AG_SQL_DROP_TABLE},
	{"pg_drop_replication_slot", AG_SQL_DROP_TABLE},  /* a replica's WAL */
	{"pg_replication_origin_drop", AG_SQL_DROP_TABLE},
	{"pg_file_unlink", AG_SQL_DROP_TABLE},            /* adminpack: a server file */
	/* Past the server's own safeguards: ending other sessions (what makes
	 * DROP DATABASE go through while others use it, and loses their
	 * uncommitted work), writing or renaming the server's files, running
	 * a shell command on the server (UDFs that do so). */
	{"pg_terminate_backend", AG_SQL_SAFETY_OFF},
	{"lo_export", AG_SQL_SAFETY_OFF},
	{"pg_file_write", AG_SQL_SAFETY_OFF},
	{"pg_file_rename", AG_SQL_SAFETY_OFF},
	{"sys_exec", AG_SQL_SAFETY_OFF},
	{"sys_eval", AG_SQL_SAFETY_OFF},
};

/* A word followed by `(`: one of the functions above, or dblink's, whose
 * string arguments are SQL run on another connection (read as such). */
static void function_call(struct parser *P, const struct tok *t)
{
	const char *p = P->lx.s + t->at;
	struct tok a[8];
	size_t n = t->len;
	int dblink = n >= 6 && ieq(p, 6, "dblink");

	if (!dblink) {
		unsigned char c0 = (unsigned char)p[0] | 0x20;
		if (c0 != 'l' && c0 != 'p' && c0 != 's')
			return;
	}
	peekn(P, a, dblink ? 8 : 1);
	if (!is_op(&a[0], '('))
		return;
	if (dblink) {
		if (ieq(p, n, "dblink") || ieq(p, n, "dblink_exec") ||
		    ieq(p, n, "dblink_send_query"))
			for (int i = 1; i < 8 && a[i].type != T_END && !is_op(&a[i], ')'); i++)
				if (a[i].type == T_STRING)
					sub_in(P, &a[i], 0);
		return;
	}
	for (size_t i = 0; i < sizeof destructive_fns / sizeof destructive_fns[0]; i++)
		if (ieq(p, n, destructive_fns[i].name)) {
			bump(P, destructive_fns[i].cls);
			return;
		}
}

static void nx(struct parser *P, struct tok *t)
{
	if (P->done) {
		end_tok(t);
		return;
	}
	lex(&P->lx, t);
	if (t->type == T_END) {
		P->done = P->eof = 1;
		return;
	}
	if (is_op(t, ';')) {
		P->done = 1;
		end_tok(t);
		return;
	}
	if (is_op(t, '(')) {
		feed_at(P, P->depth, t);
		P->depth++;
		open_nested(P);
		return;
	}
	if (is_op(t, ')')) {
		if (P->depth > 0) {
			close_frame(P, P->depth);
			P->depth--;
		}
		feed_at(P, P->depth, t);
		return;
	}
	if (t->kw == K_SET_CONFIG)
		set_config_call(P);
	else if (t->type == T_WORD && t->kw == K_NONE && t->len >= 6)
		function_call(P, t);
	feed_at(P, P->depth, t);
}

static int is_scope(int kw)
{
	return kw == K_GLOBAL || kw == K_SESSION || kw == K_LOCAL || kw == K_PERSIST ||
	       kw == K_PERSIST_ONLY;
}

/*
 * One `name = value` of SET (MySQL lists several, each with an optional
 * scope; `@@session.x`; `@x` is a user variable). t is its first token.
 * Consumes through the `,` that ends it; returns 1 at the statement's end.
 */
static int assignment(struct parser *P, struct tok *t)
{
	struct tok name, u, v;
	long d0 = P->depth;
	int nv = 0;

	end_tok(&v);
	if (t->type == T_WORD && is_scope(t->kw)) {
		peek(P, &u);
		if (is_name(&u) || is_op(&u, OP_ATAT))
			nx(P, t);
	}
	if (is_op(t, OP_ATAT)) {
		nx(P, t);
		peek(P, &u);
		if (t->type == T_WORD && is_scope(t->kw) && is_op(&u, '.')) {
			nx(P, &u);
			nx(P, t);
		}
	}
	if (!is_name(t))
		goto skip;
	name = *t;
	for (;;) {
		peek(P, &u);
		if (!is_op(&u, '.'))
			break;
		nx(P, &u);
		nx(P, &name);
		if (!is_name(&name))
			goto skip;
	}
	nx(P, &u);
	if (u.type == T_END)
		return 1;
	if (!(is_op(&u, '=') || is_op(&u, OP_ASSIGN) || is_kw(&u, K_TO))) {
		*t = u;
		goto skip;
	}
	for (;;) {
		nx(P, &u);
		if (u.type == T_END || (P->depth == d0 && is_op(&u, ','))) {
			const struct sw *sw = find_switch(P, &name);
			if (sw && switch_off(P, sw, nv == 1 ? &v : NULL))
				bump(P, AG_SQL_SAFETY_OFF);
			return u.type == T_END;
		}
		if (nv == 0 && (is_op(&u, '-') || is_op(&u, '+')))
			continue;
		if (nv++ == 0)
			v = u;
	}
skip:
	while (t->type != T_END && !(P->depth == d0 && is_op(t, ',')))
		nx(P, t);
	return t->type == T_END;
}

static void set_head(struct parser *P)
{
	struct tok t;

	bump(P, AG_SQL_OTHER);
	for (;;) {
		nx(P, &t);
		if (t.type == T_END || assignment(P, &t))
			return;
	}
}

static int read_pragma(const struct parser *P, const struct tok *name)
{
	static const char *const names[] = {
		"table_info", "table_xinfo", "table_list", "index_info", "index_xinfo",
		"index_list", "foreign_key_list", "foreign_key_check", "integrity_check",
		"quick_check",
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (tok_is(P, name, names[i]))
			return 1;
	return 0;
}

/* PRAGMA [schema.]name [= value | (value)] */
static void pragma_head(struct parser *P)
{
	struct tok name, u, v;

	nx(P, &name);
	if (!is_name(&name) && name.type != T_STRING) {
		bump(P, AG_SQL_OTHER);
		return;
	}
	for (;;) {
		peek(P, &u);
		if (!is_op(&u, '.'))
			break;
		nx(P, &u);
		nx(P, &name);
	}
	nx(P, &u);
	if (u.type == T_END) {
		bump(P, AG_SQL_READ);
		return;
	}
	int paren = is_op(&u, '(');
	if (!paren && !is_op(&u, '=')) {
		bump(P, AG_SQL_OTHER);
		return;
	}
	nx(P, &v);
	if (is_op(&v, '-') || is_op(&v, '+'))
		nx(P, &v);
	nx(P, &u);
	int simple = v.type != T_END && (paren ? is_op(&u, ')') : u.type == T_END);
	const struct sw *sw = find_switch(P, &name);
	if (sw) {
		bump(P, switch_off(P, sw, simple ? &v : NULL) ? AG_SQL_SAFETY_OFF : AG_SQL_OTHER);
		return;
	}
	bump(P, paren && read_pragma(P, &name) ? AG_SQL_READ : AG_SQL_OTHER);
}

static void drop_head(struct parser *P)
{
	struct tok t, u;

	int temporary = 0;

	nx(P, &t);
	while (is_kw(&t, K_TEMPORARY) || is_kw(&t, K_TEMP)) {
		temporary = 1;
		nx(P, &t);
	}
	if (is_kw(&t, K_FOREIGN) || is_kw(&t, K_VIRTUAL) || is_kw(&t, K_EXTERNAL)) {
		peek(P, &u);
		if (is_kw(&u, K_TABLE))
			t = u;
	}
	if (is_kw(&t, K_TABLE)) {
		/* MySQL's DROP TEMPORARY TABLE drops nothing but the session's
		 * own temporary tables; a plain DROP TABLE of names this
		 * connection made temporary drops those (every server looks in
		 * the temporary schema first). Nobody else's data either way. */
		nx(P, &t);
		bump(P, all_temps(P, &t, temporary, 1) ? AG_SQL_DDL : AG_SQL_DROP_TABLE);
		return;
	}
	/* DROP OWNED BY drops every object the role owns in the database. */
	if (is_kw(&t, K_DATABASE) || is_kw(&t, K_SCHEMA) || is_kw(&t, K_OWNED)) {
		bump(P, AG_SQL_DROP_DATABASE);
		return;
	}
	bump(P, AG_SQL_DDL);
	/* CASCADE on a type, domain, extension or server drops the table
	 * columns (or foreign tables) that depend on it. */
	while (t.type != T_END) {
		if (P->depth == 0 && is_kw(&t, K_CASCADE))
			bump(P, AG_SQL_ALTER_DROP);
		nx(P, &t);
	}
}

static void alter_head(struct parser *P)
{
	struct tok t, u[2];

	bump(P, AG_SQL_DDL);
	nx(P, &t);
	while (is_kw(&t, K_ONLINE) || is_kw(&t, K_OFFLINE) || is_kw(&t, K_IGNORE) ||
	       is_kw(&t, K_FOREIGN))
		nx(P, &t);
	int table = is_kw(&t, K_TABLE) || is_kw(&t, K_TYPE);
	int plain_table = is_kw(&t, K_TABLE);
	int settable = is_kw(&t, K_ROLE) || is_kw(&t, K_USER) || is_kw(&t, K_DATABASE) ||
		       is_kw(&t, K_SYSTEM);
	if (plain_table) {
		/* A temporary table renamed or changed is no longer the one
		 * the connection made under that name, as far as we know. */
		struct tok w[3];
		peekn(P, w, 3);
		temps_touched(P, tok_is(P, &w[0], "IF") ? &w[2] : tok_is(P, &w[0], "ONLY") ? &w[1]
			      : &w[0]);
	}
	while (t.type != T_END) {
		nx(P, &t);
		if (P->depth != 0 || t.type != T_WORD)
			continue;
		if (plain_table && t.kw == K_ALTER) {
			/* ALTER [COLUMN] c [SET DATA] TYPE x [USING e] converts every
			 * row: a lossy cast (numeric to int, text cut to a length)
			 * or a USING expression rewrites the column's data. */
			struct tok v[5];
			peekn(P, v, 5);
			int k = tok_is(P, &v[0], "COLUMN") ? 1 : 0;
			if (is_name(&v[k]) &&
			    (is_kw(&v[k + 1], K_TYPE) ||
			     (is_kw(&v[k + 1], K_SET) && is_kw(&v[k + 2], K_DATA) &&
			      is_kw(&v[k + 3], K_TYPE))))
				bump(P, AG_SQL_ALTER_DROP);
			continue;
		}
		if (settable && t.kw == K_SET) {
			nx(P, &t);
			if (assignment(P, &t))
				return;
			continue;
		}
		if (!table)
			continue;
		switch (t.kw) {
		case K_DROP:
			/* DROP DEFAULT / NOT NULL / IDENTITY / EXPRESSION lose no data. */
			peek(P, &u[0]);
			if (!(is_kw(&u[0], K_DEFAULT) || is_kw(&u[0], K_NOT) ||
			      is_kw(&u[0], K_IDENTITY) || is_kw(&u[0], K_EXPRESSION)))
				bump(P, AG_SQL_ALTER_DROP);
			break;
		case K_DISABLE:
			peek(P, &u[0]);
			if (is_kw(&u[0], K_TRIGGER) || is_kw(&u[0], K_ROW))
				bump(P, AG_SQL_SAFETY_OFF);
			break;
		case K_TRUNCATE:        /* MySQL TRUNCATE PARTITION */
		case K_DISCARD:         /* MySQL DISCARD TABLESPACE deletes the data file */
			bump(P, AG_SQL_TRUNCATE);
			break;
		case K_ENGINE:          /* a BLACKHOLE table keeps no rows */
			peekn(P, u, 2);
			if (is_kw(&u[0], K_BLACKHOLE) || (is_op(&u[0], '=') && is_kw(&u[1], K_BLACKHOLE)))
				bump(P, AG_SQL_TRUNCATE);
			break;
		default:
			break;
		}
	}
}

static int body_start(int kw)
{
	switch (kw) {
	case K_SELECT: case K_INSERT: case K_UPDATE: case K_DELETE: case K_REPLACE:
	case K_UPSERT: case K_MERGE: case K_WITH: case K_DROP: case K_TRUNCATE:
	case K_ALTER: case K_CREATE: case K_RENAME: case K_GRANT: case K_REVOKE:
	case K_SET: case K_COPY: case K_LOAD: case K_EXECUTE: case K_PERFORM:
	case K_IF: case K_WHILE: case K_LOOP: case K_REPEAT: case K_FOR: case K_FOREACH:
	case K_CASE: case K_BEGIN: case K_RETURN: case K_VALUES: case K_PRAGMA:
	case K_PREPARE:
		return 1;
	default:
		return 0;
	}
}

/* Tokens after which a routine's, trigger's, rule's or event's body begins. */
static int body_marker(const struct tok *t)
{
	if (t->type == T_STRING || is_op(t, ')'))
		return 1;
	switch (t->type == T_WORD ? t->kw : K_NONE) {
	case K_ATOMIC: case K_THEN: case K_ELSE: case K_LOOP: case K_DO: case K_ROW:
	case K_ALSO: case K_INSTEAD: case K_SQL: case K_DETERMINISTIC: case K_DATA:
	case K_DEFINER: case K_INVOKER:
		return 1;
	default:
		return 0;
	}
}

/* UPDATE SET (upsert, MERGE), DELETE WHEN (MERGE), INSERT (cols) / VALUES
 * (MERGE) are actions of the enclosing statement, not statements. */
static int false_start(const struct parser *P, const struct tok *t)
{
	struct tok u;

	peek(P, &u);
	switch (t->kw) {
	case K_UPDATE: return is_kw(&u, K_SET) || !is_name(&u);
	case K_DELETE: return !is_name(&u) || is_kw(&u, K_WHEN);
	case K_INSERT: return !is_name(&u) || is_kw(&u, K_VALUES);
	default: return 0;
	}
}

/*
 * The statements of a routine body (SQLite/MySQL triggers, MySQL
 * procedures and events, PostgreSQL BEGIN ATOMIC and rules) are visible
 * SQL and will run: they count. Bodies given as strings (PostgreSQL's
 * AS $$...$$) may be in any language and are not read. Returns 1 with t
 * at the first body statement's first word.
 */
static int routine_body(struct parser *P, struct tok *t)
{
	struct tok u, prev;

	end_tok(&prev);
	for (;;) {
		nx(P, &u);
		if (u.type == T_END)
			return 0;
		/* AS 'body' / AS $$body$$ (PostgreSQL, any language): what it
		 * runs when called is what creating it is worth, since a call
		 * (SELECT f(), CALL p()) names nothing we can judge. A body in
		 * another language (C's file name, Python) reads as no SQL. */
		if (P->depth == 0 && u.type == T_STRING && is_kw(&prev, K_AS))
			sub_in(P, &u, 0);
		if (P->depth == 0 && u.type == T_WORD && body_start(u.kw) &&
		    (u.kw == K_BEGIN || body_marker(&prev)) && !false_start(P, &u)) {
			*t = u;
			return 1;
		}
		if (P->depth == 0)
			prev = u;
	}
}

/* CREATE [TEMP] TABLE [IF NOT EXISTS] name ...: a temporary table (or one
 * made in the temporary schema) is the connection's own from now on,
 * unless it goes away at the end of the transaction (ON COMMIT DROP). */
static void create_table(struct parser *P, int temporary)
{
	struct tok t;
	struct tname nm;

	if (!P->temps)
		return;
	nx(P, &t);
	if (is_kw(&t, K_IF)) {
		nx(P, &t);   /* NOT */
		nx(P, &t);   /* EXISTS */
		nx(P, &t);
	}
	if (!table_name(P, &t, &nm) || (!temporary && nm.schema != 1))
		return;
	int on_commit_drop = 0;
	struct tok prev[2];
	end_tok(&prev[0]);
	end_tok(&prev[1]);
	while (t.type != T_END) {
		if (P->depth == 0 && is_kw(&t, K_DROP) && tok_is(P, &prev[0], "COMMIT") &&
		    tok_is(P, &prev[1], "ON"))
			on_commit_drop = 1;
		if (P->depth == 0) {
			prev[1] = prev[0];
			prev[0] = t;
		}
		nx(P, &t);
	}
	if (!on_commit_drop)
		temp_add(P->temps, &nm);
}

static int create_head(struct parser *P, struct tok *t)
{
	struct tok u;
	int or_replace = 0, temporary = 0;

	bump(P, AG_SQL_DDL);
	for (int i = 0; i < 24; i++) {
		nx(P, &u);
		if (u.type == T_END)
			return 0;
		if (P->depth != 0 || u.type != T_WORD)
			continue;
		switch (u.kw) {
		case K_OR:
			peek(P, &u);
			or_replace |= is_kw(&u, K_REPLACE);
			break;
		case K_TEMP: case K_TEMPORARY:
			temporary = 1;
			break;
		/* MariaDB's CREATE OR REPLACE TABLE/DATABASE drops the old one. */
		case K_TABLE:
			if (or_replace)
				bump(P, AG_SQL_DROP_TABLE);
			create_table(P, temporary && !or_replace);
			return 0;
		case K_DATABASE: case K_SCHEMA:
			if (or_replace)
				bump(P, AG_SQL_DROP_DATABASE);
			return 0;
		case K_TRIGGER: case K_PROCEDURE: case K_FUNCTION: case K_EVENT: case K_RULE:
			return routine_body(P, t);
		case K_VIEW: case K_INDEX: case K_SEQUENCE: case K_USER: case K_ROLE:
		case K_EXTENSION: case K_TYPE: case K_DOMAIN:
			return 0;
		default:
			break;
		}
	}
	return 0;
}

static int explainable(int kw, int strict)
{
	switch (kw) {
	case K_SELECT: case K_INSERT: case K_UPDATE: case K_DELETE: case K_REPLACE:
	case K_MERGE: case K_WITH: case K_VALUES:
		return 1;
	case K_TABLE: case K_EXECUTE: case K_CREATE:
		return !strict;
	default:
		return 0;
	}
}

/*
 * EXPLAIN/DESCRIBE options; with ANALYZE the statement runs, so returns 1
 * with t at it. `strict`: MariaDB's ANALYZE <statement>, where ANALYZE
 * TABLE t is not a statement but statistics.
 */
static int explain(struct parser *P, struct tok *t, int analyze, int strict)
{
	struct tok u, v;

	for (;;) {
		nx(P, &u);
		if (u.type == T_END)
			return 0;
		if (is_op(&u, '(') && P->depth == 1) {
			while (P->depth >= 1) {
				nx(P, &u);
				if (u.type == T_END)
					return 0;
				if (P->depth == 1 && (is_kw(&u, K_ANALYZE) || is_kw(&u, K_ANALYSE))) {
					peek(P, &v);
					if (truthy(P, &v) != 0)
						analyze = 1;
				}
			}
			continue;
		}
		if (u.type != T_WORD)
			return 0;
		switch (u.kw) {
		case K_ANALYZE: case K_ANALYSE:
			analyze = 1;
			continue;
		case K_VERBOSE: case K_EXTENDED: case K_PARTITIONS: case K_QUERY: case K_PLAN:
			continue;
		case K_FORMAT:
			peek(P, &v);
			if (is_op(&v, '='))
				nx(P, &v);
			nx(P, &v);
			continue;
		default:
			break;
		}
		if (analyze && explainable(u.kw, strict)) {
			*t = u;
			return 1;
		}
		return 0;
	}
}

/* PostgreSQL DO [LANGUAGE l] 'body' [LANGUAGE l]: the body runs now. */
static void do_head(struct parser *P)
{
	struct tok u, body, lang;
	int sql = 1;

	bump(P, AG_SQL_OTHER);
	end_tok(&body);
	nx(P, &u);
	for (int i = 0; i < 2; i++) {
		if (is_kw(&u, K_LANGUAGE)) {
			nx(P, &lang);
			sql = tok_is(P, &lang, "plpgsql") || tok_is(P, &lang, "sql");
			nx(P, &u);
		}
		if (i == 0 && u.type == T_STRING) {
			body = u;
			nx(P, &u);
		}
	}
	if (sql && body.type == T_STRING)
		sub(P, &body);
}

/* EXECUTE 'sql' / EXECUTE format('sql', ...) / EXECUTE IMMEDIATE 'sql':
 * the first string is the statement (or its leading part). */
static void execute_head(struct parser *P)
{
	struct tok u;

	bump(P, AG_SQL_OTHER);
	for (;;) {
		nx(P, &u);
		if (u.type == T_END)
			return;
		if (u.type == T_STRING) {
			sub(P, &u);
			return;
		}
	}
}

/* PREPARE p AS stmt (PostgreSQL) / PREPARE p FROM 'stmt' (MySQL): the
 * text is seen here only, EXECUTE p later runs it. */
static int prepare_head(struct parser *P, struct tok *t)
{
	struct tok u;

	bump(P, AG_SQL_OTHER);
	nx(P, &u);
	for (;;) {
		nx(P, &u);
		if (u.type == T_END)
			return 0;
		if (P->depth != 0)
			continue;
		if (is_kw(&u, K_AS)) {
			nx(P, t);
			return 1;
		}
		if (is_kw(&u, K_FROM)) {
			nx(P, &u);
			sub(P, &u);
			return 0;
		}
	}
}

static void copy_head(struct parser *P)
{
	struct tok u;

	for (;;) {
		nx(P, &u);
		if (u.type == T_END) {
			bump(P, AG_SQL_OTHER);
			return;
		}
		if (P->depth != 0)
			continue;
		if (is_kw(&u, K_FROM) || is_kw(&u, K_TO)) {
			/* FROM/TO PROGRAM runs a shell command on the server, as
			 * the server's own user: it can remove the data directory
			 * itself. That goes past every safety the server has, so it
			 * is the top class, which the built-in rules deny on every
			 * database (a new class would pass every rule file written
			 * before it). */
			int from = is_kw(&u, K_FROM);
			peek(P, &u);
			bump(P, is_kw(&u, K_PROGRAM) ? AG_SQL_SAFETY_OFF
			     : from ? AG_SQL_INSERT : AG_SQL_READ);
			return;
		}
	}
}

/* The statement whose first token is t. */
static void head(struct parser *P, struct tok *t)
{
	struct tok u[2];

redo:
	if (t->type == T_END) {
		bump(P, AG_SQL_OTHER);
		return;
	}
	if (is_op(t, '(')) {
		/* (SELECT ...) UNION (...); a DML inside is a frame of its own */
		while (is_op(t, '('))
			nx(P, t);
		bump(P, is_kw(t, K_SELECT) || is_kw(t, K_VALUES) || is_kw(t, K_TABLE) ||
			is_kw(t, K_WITH) ? AG_SQL_READ : AG_SQL_OTHER);
		return;
	}
	/* No server runs a statement that starts with a string, a number or
	 * stray punctuation: in the dialect where it is not junk it was in a
	 * comment (MySQL's #, PostgreSQL's nested block) that another reading
	 * sees. */
	if (t->type != T_WORD)
		return;
	switch (t->kw) {
	case K_SELECT:
		open_here(P, F_SELECT);
		return;
	case K_WITH:
		open_here(P, F_WITH);
		return;
	case K_VALUES: case K_TABLE: case K_SHOW:
		bump(P, AG_SQL_READ);
		return;
	case K_INSERT: case K_REPLACE: case K_UPSERT:
		open_here(P, F_INSERT);
		return;
	case K_UPDATE:
		open_here(P, F_UPDATE);
		return;
	case K_DELETE:
		open_here(P, F_DELETE);
		return;
	case K_MERGE:
		open_here(P, F_MERGE);
		return;
	case K_DROP:
		drop_head(P);
		return;
	case K_TRUNCATE:
		nx(P, t);
		if (is_kw(t, K_TABLE))
			nx(P, t);
		/* Emptying the connection's own temporary tables loses nobody's data. */
		bump(P, all_temps(P, t, 0, 0) ? AG_SQL_DELETE : AG_SQL_TRUNCATE);
		return;
	case K_ROLLBACK: case K_ABORT: case K_DISCARD:
		/* What the transaction made is gone (DISCARD TEMP drops every
		 * temporary table): keep none, rather than guess which. */
		if (P->temps)
			P->temps->n = 0;
		bump(P, AG_SQL_OTHER);
		return;
	case K_RENAME:
		/* RENAME TABLE a TO b: a temporary table under a new name. */
		for (; t->type != T_END; nx(P, t))
			temps_touched(P, t);
		bump(P, AG_SQL_DDL);
		return;
	case K_ALTER:
		alter_head(P);
		return;
	case K_CREATE:
		if (create_head(P, t))
			goto redo;
		return;
	case K_GRANT: case K_REVOKE: case K_COMMENT: case K_SECURITY:
	case K_IMPORT:
		bump(P, AG_SQL_DDL);
		return;
	case K_EXPLAIN: case K_DESCRIBE: case K_DESC:
		if (explain(P, t, 0, 0))
			goto redo;
		bump(P, AG_SQL_READ);
		return;
	case K_ANALYZE: case K_ANALYSE:
		if (explain(P, t, 1, 1))
			goto redo;
		bump(P, AG_SQL_OTHER);
		return;
	case K_BEGIN:
		/* A transaction, or a block (BEGIN [NOT] ATOMIC, PL/pgSQL, MySQL
		 * compound statements) whose first statement follows. */
		peekn(P, u, 2);
		if (is_kw(&u[0], K_ATOMIC) || (is_kw(&u[0], K_NOT) && is_kw(&u[1], K_ATOMIC))) {
			if (is_kw(&u[0], K_NOT))
				nx(P, &u[0]);
			nx(P, &u[0]);
			peek(P, &u[0]);
		}
		if (u[0].type == T_WORD && body_start(u[0].kw)) {
			nx(P, t);
			goto redo;
		}
		bump(P, AG_SQL_OTHER);
		return;
	case K_IF: case K_ELSEIF: case K_ELSIF: case K_WHILE: case K_WHEN: case K_FOR:
	case K_FOREACH: case K_CASE: case K_EXCEPTION:
		for (;;) {
			nx(P, t);
			if (t->type == T_END)
				goto redo;
			if (P->depth == 0 && (is_kw(t, K_THEN) || is_kw(t, K_LOOP) || is_kw(t, K_DO))) {
				nx(P, t);
				goto redo;
			}
		}
	case K_ELSE: case K_LOOP: case K_REPEAT:
		nx(P, t);
		goto redo;
	case K_RETURN:
		nx(P, t);
		if (is_kw(t, K_QUERY)) {
			nx(P, t);
			goto redo;
		}
		bump(P, AG_SQL_OTHER);
		return;
	case K_DO:
		do_head(P);
		return;
	case K_EXECUTE:
		execute_head(P);
		return;
	case K_PREPARE:
		if (prepare_head(P, t))
			goto redo;
		return;
	case K_SET:
		set_head(P);
		return;
	case K_PRAGMA:
		pragma_head(P);
		return;
	case K_COPY:
		copy_head(P);
		return;
	case K_LOAD:
		nx(P, t);
		bump(P, is_kw(t, K_DATA) || is_kw(t, K_XML) ? AG_SQL_INSERT : AG_SQL_OTHER);
		return;
	case K_REASSIGN:
		bump(P, AG_SQL_DDL);
		return;
	case K_ASSERT: case K_ATTACH: case K_BINLOG: case K_CACHE:
	case K_CALL: case K_CHANGE: case K_CHECK: case K_CHECKPOINT: case K_CHECKSUM:
	case K_CLONE: case K_CLOSE: case K_CLUSTER: case K_COMMIT: case K_CONTINUE:
	case K_DEALLOCATE: case K_DECLARE: case K_DETACH: case K_END:
	case K_EXIT: case K_FETCH: case K_FLUSH: case K_GET: case K_HANDLER: case K_HELP:
	case K_INSTALL: case K_ITERATE: case K_KILL: case K_LEAVE: case K_LISTEN:
	case K_LOCK: case K_MOVE: case K_NOTIFY: case K_NULL: case K_OPEN: case K_OPTIMIZE:
	case K_PERFORM: case K_PURGE: case K_RAISE: case K_REFRESH: case K_REINDEX:
	case K_RELEASE: case K_REPAIR: case K_RESET: case K_RESIGNAL: case K_RESTART:
	case K_SAVEPOINT: case K_SHUTDOWN: case K_SIGNAL: case K_START:
	case K_STOP: case K_UNINSTALL: case K_UNLISTEN: case K_UNLOCK: case K_USE:
	case K_VACUUM: case K_XA:
		bump(P, AG_SQL_OTHER);
		return;
	default:
		/* label: BEGIN / label: LOOP (MySQL) */
		peek(P, &u[0]);
		if (is_op(&u[0], ':')) {
			nx(P, t);
			nx(P, t);
			goto redo;
		}
		/* Not a statement any of the servers knows: a syntax error there,
		 * or text another reading sees as a comment or a string. */
		return;
	}
}

/* Rank of the most destructive statement in s[0..n), -1 if it holds none. */
static int run(const char *s, size_t n, int mode, int body, int level,
	       struct ag_sql_temps *temps)
{
	struct parser P;
	struct tok t;
	int best = -1;

	memset(&P.lx, 0, sizeof P.lx);
	P.lx.s = s;
	P.lx.n = n;
	P.lx.mode = mode;
	P.body = body;
	P.level = level;
	P.temps = temps;
	P.eof = 0;
	for (long d = 0; d < MAXD; d++)
		P.fr[d].kind = F_NONE;
	while (!P.eof) {
		P.done = 0;
		P.depth = 0;
		P.cls = -1;
		nx(&P, &t);
		if (t.type != T_END)
			head(&P, &t);
		while (!P.done)
			nx(&P, &t);
		for (long d = P.depth < MAXD ? P.depth : MAXD - 1; d >= 0; d--)
			close_frame(&P, d);
		if (P.cls > best)
			best = P.cls;
	}
	/* A speculative re-read only counts when it finds something that
	 * changes data or schema. */
	if (P.lx.unterm && level < MAXLEVEL) {
		/* Speculative: without the set (a copy would cost the stack
		 * hooks run on), so its drops count as anyone's. */
		int r = run(s + P.lx.unterm_at, n - P.lx.unterm_at, mode, body, level + 1, NULL);
		if (r > best && r > rank(AG_SQL_OTHER))
			best = r;
	}
	return best;
}

/* Does any byte (sequence) read differently in the three dialects? */
static int dialects_differ(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '\\' || c == '#' || c == '[' || c == '\r')
			return 1;
		if (i + 1 < n && ((c == '/' && s[i + 1] == '*') || (c == '-' && s[i + 1] == '-')))
			return 1;
	}
	return 0;
}

/* Keep in *acc only the names *r also has (as they are in *acc). */
static void temps_meet(struct ag_sql_temps *acc, const struct ag_sql_temps *r)
{
	for (unsigned i = acc->n; i-- > 0;) {
		struct tname nm = {acc->t[i].name, acc->t[i].len, acc->t[i].quoted, 0};
		if (temp_find(r, &nm) < 0)
			temp_forget(acc, (int)i);
	}
}

enum ag_sql_class ag_sql_classify_temps(const char *sql, long len, struct ag_sql_temps *temps)
{
	if (!sql)
		return AG_SQL_OTHER;
	size_t n = len < 0 ? strlen(sql) : (size_t)len;
	struct ag_sql_temps before, mine;
	int differ = dialects_differ(sql, n);
	if (temps) {
		if (temps->n > AG_SQL_TEMPS)
			temps->n = 0;
		for (unsigned i = 0; i < temps->n; i++)
			temps->t[i].fresh = 0;
		if (differ)   /* every reading starts from the same set */
			before = *temps;
	}
	int best = run(sql, n, M_PG, 0, 0, temps);
	if (differ) {
		for (int mode = M_MY; mode <= M_LITE && best < rank(AG_SQL_SAFETY_OFF); mode++) {
			/* Each reading from the same start; a table counts as the
			 * connection's own only where every reading agrees. */
			struct ag_sql_temps *tp = NULL;
			if (temps) {
				mine = before;
				tp = &mine;
			}
			int r = run(sql, n, mode, 0, 0, tp);
			if (r > best)
				best = r;
			if (temps)
				temps_meet(temps, &mine);
		}
	}
	return best < 0 ? AG_SQL_OTHER : unrank(best);
}

enum ag_sql_class ag_sql_classify(const char *sql, long len)
{
	return ag_sql_classify_temps(sql, len, NULL);
}

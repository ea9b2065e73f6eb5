/*
 * sql on the wire: clients that speak the PostgreSQL or MySQL protocol
 * themselves, without libpq or libmysqlclient (node's pg and mysql2,
 * Prisma and Drizzle through them, pgx, asyncpg, JDBC drivers), and
 * Debian's `mariadb` client with its own copy of the client library.
 *
 * A stream socket connect() reached is looked at once, at its first
 * write: a PostgreSQL StartupMessage (protocol 3), an SSLRequest or
 * GSSENCRequest, or a MySQL handshake response makes it a database
 * connection, and the user and database it names are kept with the
 * address for the pre-image's own connection. Anything else, and the
 * descriptor is never looked at again. From then on every call that can
 * write to it (write, writev, send, sendto, sendmsg) is read message by
 * message: PostgreSQL's Query and Parse, MySQL's COM_QUERY and
 * COM_STMT_PREPARE are judged whole, like any other statement (a message
 * may span calls and a call hold several: gathered per connection, up to
 * WIRE_MAX); everything else passes as it comes. A refused statement is
 * replaced by one that makes the server raise the denial, so the client
 * reports it through its own error path and the protocol stays in step.
 *
 * What cannot be read: a connection that turns to TLS (or GSS
 * encryption) is recorded once as an unguarded database connection (sql
 * class `unguarded`), which a rule may deny: its write then fails.
 *
 * Cost for other descriptors: one byte loaded and tested (ag_wire_on),
 * cleared again when the descriptor is closed or dup'ed over.
 */
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "wire.h"

unsigned char ag_wire_on[AG_WIRE_FDS];

/* A statement longer than this is not gathered: it is refused. */
#define WIRE_MAX (16u << 20)
#define PLAN_MAX 32

enum { ST_OFF, ST_PROBE, ST_PG_CRYPT, ST_PG, ST_MY };
enum { P_PG, P_MY };

/* Where a MySQL answer is: R_IDLE (0) before its first packet, then
 * through a result set's column definitions, their EOF and its rows. */
struct my_rs {
	int state, cols;
};

struct wconn {
	pthread_mutex_t mu;
	pthread_mutex_t rmu;       /* the reply state: readers never wait for mu,
				      which a writer holds while it waits on the socket */
	int readers, asking;       /* the client's reads under way; the guard's question */
	int state;
	int dbaddr;                /* the address is a database server's, by port or path */
	struct ag_wire_peer peer;
	uint32_t caps;             /* MySQL: the client's capabilities */
	/* framing */
	unsigned char hdr[5];
	unsigned hdr_have;
	size_t pass;               /* body bytes still to pass unread */
	size_t drop;               /* body bytes of a refused message to swallow */
	int drop_cont;             /* MySQL: what is swallowed continues in the next packet */
	int startup;               /* msg is PostgreSQL's StartupMessage */
	unsigned char *msg;        /* a judged message being gathered, header included */
	size_t have, want;
	/* the server's replies, as the client reads them (under rmu) */
	unsigned char rhdr[5];
	unsigned rhdr_have;
	size_t rleft;              /* body bytes of the reply message being read */
	unsigned char rhead[24];   /* its first bytes */
	unsigned rhead_have;
	unsigned long asked_n;     /* requests sent that the server answers (under mu) */
	unsigned long answered;    /* answers the client has read whole */
	struct my_rs rs;           /* MySQL: where in an answer the client's reads are */
	int rcont;                 /* MySQL: the next packet continues a 16 MiB one */
	int unsure;                /* the answers cannot be followed: never ask */
	/* what this call sends, in order */
	struct iovec v[PLAN_MAX];
	void *own[PLAN_MAX];
	unsigned char inl[PLAN_MAX][8];
	int n;
	int fd, how, flags;
	char db[400], instead[1600];
};

static struct wconn *wconns[AG_WIRE_FDS];
static pthread_mutex_t alloc_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- which descriptors ------------------------------------------------------ */

static int db_port(unsigned p)
{
	return p == 5432 || p == 3306 || p == 6432 || p == 3307 || p == 26257 || p == 4000;
}

static int db_path(const char *p)
{
	const char *b = strrchr(p, '/');
	b = b ? b + 1 : p;
	return !strncmp(b, ".s.PGSQL.", 9) || strstr(b, "mysql") || strstr(b, "mariadb");
}

void ag_wire_connected(int fd, const struct sockaddr *sa, socklen_t len)
{
	int type;
	socklen_t tl = sizeof type;

	if ((unsigned)fd >= AG_WIRE_FDS || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 ||
	    type != SOCK_STREAM)
		return;
	pthread_mutex_lock(&alloc_mu);
	struct wconn *c = wconns[fd];
	if (!c && (c = calloc(1, sizeof *c))) {
		pthread_mutex_init(&c->mu, NULL);
		pthread_mutex_init(&c->rmu, NULL);
	}
	wconns[fd] = c;
	pthread_mutex_unlock(&alloc_mu);
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	free(c->msg);
	memset(&c->state, 0, offsetof(struct wconn, v) - offsetof(struct wconn, state));
	struct ag_wire_peer *p = &c->peer;
	if (sa->sa_family == AF_UNIX) {
		const struct sockaddr_un *un = (const void *)sa;
		size_t n = len > offsetof(struct sockaddr_un, sun_path)
			   ? len - offsetof(struct sockaddr_un, sun_path) : 0;
		if (n > sizeof un->sun_path)
			n = sizeof un->sun_path;
		snprintf(p->unix_path, sizeof p->unix_path, "%.*s", (int)n, un->sun_path);
		const char *s = strrchr(p->unix_path, '.');
		if (strstr(p->unix_path, "/.s.PGSQL.") && s)
			p->port = (unsigned)strtoul(s + 1, NULL, 10);
		c->dbaddr = p->unix_path[0] && db_path(p->unix_path);
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, p->addr, sizeof p->addr);
		p->port = ntohs(in->sin_port);
		c->dbaddr = db_port(p->port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, p->addr, sizeof p->addr);
		p->port = ntohs(in6->sin6_port);
		c->dbaddr = db_port(p->port);
	}
	c->state = ST_PROBE;
	pthread_mutex_unlock(&c->mu);
	__atomic_store_n(&ag_wire_on[fd], 1, __ATOMIC_RELEASE);
}

void ag_wire_forget(int fd)
{
	if ((unsigned)fd < AG_WIRE_FDS && ag_wire_on[fd])
		__atomic_store_n(&ag_wire_on[fd], 0, __ATOMIC_RELEASE);
}

void ag_wire_closed(int fd)
{
	/* The structure stays for the next connection on this number: a
	 * writer that read the flag just before is never left holding freed
	 * memory. */
	ag_wire_forget(fd);
}

const char *ag_wire_database(const struct ag_wire_peer *p, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", p->addr[0] ? p->addr : "localhost", p->db[0] ? p->db : "?");
	return buf;
}

/* ---- sending what was judged ------------------------------------------------ */

static int emit(struct wconn *c)
{
	int i = 0, rc = 0;

	while (i < c->n) {
		ssize_t r;
		if (c->how == AG_WIRE_SEND) {
			struct msghdr mh = {.msg_iov = c->v + i, .msg_iovlen = (size_t)(c->n - i)};
			r = AG_REAL(sendmsg)(c->fd, &mh, c->flags);
		} else {
			r = AG_REAL(writev)(c->fd, c->v + i, c->n - i);
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* A non-blocking socket (node's): the caller was told it all
			 * went, so it waits here until it can. */
			struct pollfd pf = {c->fd, POLLOUT, 0};
			if (poll(&pf, 1, -1) < 0 && errno != EINTR) {
				rc = -1;
				break;
			}
			continue;
		}
		if (r < 0) {
			rc = -1;
			break;
		}
		size_t left = (size_t)r;
		while (i < c->n && left >= c->v[i].iov_len)
			left -= c->v[i++].iov_len;
		if (left) {
			c->v[i].iov_base = (char *)c->v[i].iov_base + left;
			c->v[i].iov_len -= left;
		}
	}
	int e = errno;
	for (int k = 0; k < c->n; k++)
		free(c->own[k]);
	c->n = 0;
	errno = e;
	return rc;
}

/* Bytes to send: the caller's (valid for the call), or `own` (freed once
 * sent). */
static void plan_add(struct wconn *c, const void *p, size_t n, void *own)
{
	if (!n) {
		free(own);
		return;
	}
	if (c->n == PLAN_MAX)
		emit(c);
	c->v[c->n].iov_base = (void *)p;
	c->v[c->n].iov_len = n;
	c->own[c->n++] = own;
}

/* The header just read: copied, the next one overwrites it. */
static void plan_hdr(struct wconn *c, unsigned n)
{
	if (c->n == PLAN_MAX)
		emit(c);
	memcpy(c->inl[c->n], c->hdr, n);
	plan_add(c, c->inl[c->n], n, NULL);
}

/* ---- the messages ------------------------------------------------------------ */

static uint32_t be32(const unsigned char *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void put_be32(unsigned char *b, uint32_t v)
{
	b[0] = (unsigned char)(v >> 24);
	b[1] = (unsigned char)(v >> 16);
	b[2] = (unsigned char)(v >> 8);
	b[3] = (unsigned char)v;
}

static uint32_t le24(const unsigned char *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16;
}

/* ---- the server's replies, as the client reads them ---------------------------
 * Followed only as far as framing and the first bytes of each message, to
 * know one thing: the client has read the answer to every request it sent
 * (quiet). Then, and only then, the guard may put a question of its own on
 * the connection (below): nothing of the client's is in flight. Requests
 * are counted as they are sent and answers as the client reads them:
 * PostgreSQL answers each Query, Sync and FunctionCall with one
 * ReadyForQuery (notices, parameter changes and notifications come at any
 * time and say nothing). MySQL answers each command (a packet of sequence
 * 0) once: OK or ERR, or a result set (column count, column definitions,
 * EOF unless the client dropped it, rows, EOF/OK), more than one while its
 * status says "more results". Only COM_QUERY, COM_INIT_DB and COM_PING are
 * followed; any other command (prepared statements, LOAD DATA LOCAL, a
 * change of user) makes the connection unsure, and it is never asked on.
 */
enum { R_IDLE, R_COLS, R_COLEOF, R_ROWS };

/* A MySQL length-encoded integer at *p (within end); -1 if it is not whole. */
static long long lenenc(const unsigned char **p, const unsigned char *end)
{
	const unsigned char *q = *p;
	unsigned k = q < end ? (*q < 0xfb ? 0 : *q == 0xfc ? 2 : *q == 0xfd ? 3 : *q == 0xfe ? 8 : 9) : 9;
	if (k == 9 || q + 1 + k > end)
		return -1;
	unsigned long long v = k ? 0 : *q;
	for (unsigned i = 0; i < k; i++)
		v |= (unsigned long long)q[1 + i] << (8 * i);
	*p = q + 1 + k;
	return (long long)(v & 0x7fffffffffffffffULL);
}

/* The status of an OK or EOF packet's first bytes (h, of a packet of len
 * bytes), or -1 when they do not hold it. */
static int my_status(const unsigned char *h, unsigned hn, size_t len)
{
	if (h[0] == 0xfe && len < 9)                    /* EOF: warnings, status */
		return hn >= 5 ? h[3] | h[4] << 8 : -1;
	const unsigned char *p = h + 1, *end = h + hn;
	if (lenenc(&p, end) < 0 || lenenc(&p, end) < 0 || p + 2 > end)
		return -1;
	return p[0] | p[1] << 8;
}

enum { MY_MORE, MY_ROW, MY_DONE, MY_LOST };

/* One whole packet of an answer (its first bytes h, of a packet of len
 * bytes): MY_DONE the answer is whole, MY_ROW a row of it, MY_MORE more
 * to come, MY_LOST not an answer this follows. */
static int my_step(struct my_rs *rs, const unsigned char *h, unsigned hn, size_t len,
		   int deprecate_eof)
{
	int st;

	if (!hn)
		return MY_LOST;
	switch (rs->state) {
	case R_IDLE:
		if (h[0] == 0xff)
			return MY_DONE;                 /* ERR */
		if (h[0] == 0x00) {                     /* OK, unless more results follow */
			st = my_status(h, hn, len);
			return st < 0 ? MY_LOST : st & 0x08 ? MY_MORE : MY_DONE;
		}
		/* A result set: its column count [MariaDB: metadata follows].
		 * LOCAL INFILE (0xfb), a count of 251 or more, no columns, or
		 * skipped metadata: not followed. */
		if (h[0] >= 0xfb || !h[0] || (len >= 2 && hn >= 2 && h[1] == 0))
			return MY_LOST;
		rs->cols = h[0];
		rs->state = R_COLS;
		return MY_MORE;
	case R_COLS:
		if (--rs->cols == 0)
			rs->state = deprecate_eof ? R_ROWS : R_COLEOF;
		return MY_MORE;
	case R_COLEOF:
		rs->state = R_ROWS;
		return h[0] == 0xfe ? MY_MORE : MY_LOST;
	default:                                        /* R_ROWS */
		if (h[0] == 0xff) {
			rs->state = R_IDLE;
			return MY_DONE;
		}
		if (h[0] != 0xfe || len >= 0xffffff)
			return MY_ROW;                  /* (one of 16 MiB may start so) */
		rs->state = R_IDLE;
		st = my_status(h, hn, len);
		return st < 0 ? MY_LOST : st & 0x08 ? MY_MORE : MY_DONE;
	}
}

/* One whole MySQL packet of an answer, read by the client. */
static void my_answer(struct wconn *w, const unsigned char *h, unsigned hn, size_t len)
{
	int cont = w->rcont;
	w->rcont = len == 0xffffff;
	if (cont || w->unsure || !w->asked_n)
		return;                                 /* (before any command: the login) */
	if (w->answered >= w->asked_n) {
		w->unsure = 1;                          /* an answer to nothing counted */
		return;
	}
	int r = my_step(&w->rs, h, hn, len, (w->caps & 0x01000000) != 0);
	if (r == MY_LOST)
		w->unsure = 1;
	else if (r == MY_DONE)
		w->answered++;
}

static void reply_done(struct wconn *w, size_t len)
{
	if (w->state == ST_PG) {
		if (w->rhdr[0] == 'Z')
			w->answered++;
	} else {
		my_answer(w, w->rhead, w->rhead_have, len);
	}
}

static void replies(struct wconn *w, const unsigned char *b, size_t n)
{
	int pg = w->state == ST_PG;
	unsigned hn = pg ? 5 : 4;

	while (n) {
		size_t k = 1;
		if (w->rleft) {
			k = n < w->rleft ? n : w->rleft;
			size_t room = sizeof w->rhead - w->rhead_have;
			memcpy(w->rhead + w->rhead_have, b, k < room ? k : room);
			w->rhead_have += (unsigned)(k < room ? k : room);
			if (!(w->rleft -= k))
				reply_done(w, pg ? 0 : le24(w->rhdr));
		} else {
			w->rhdr[w->rhdr_have++] = *b;
			if (w->rhdr_have == hn) {
				w->rhdr_have = 0;
				w->rhead_have = 0;
				w->rleft = pg ? (be32(w->rhdr + 1) >= 4 ? be32(w->rhdr + 1) - 4 : 0) : le24(w->rhdr);
				if (!w->rleft)
					reply_done(w, 0);
			}
		}
		b += k;
		n -= k;
	}
}

/* A request the server will answer is on its way (under mu). */
static void asked(struct wconn *w)
{
	pthread_mutex_lock(&w->rmu);
	w->asked_n++;
	pthread_mutex_unlock(&w->rmu);
}

/* A MySQL command is being sent: followed, or the connection unsure. */
static void my_command(struct wconn *w, unsigned char cmd)
{
	if (cmd == 0x03 || cmd == 0x02 || cmd == 0x0e)  /* QUERY, INIT_DB, PING */
		asked(w);
	else if (cmd != 0x01) {                         /* QUIT: no answer */
		pthread_mutex_lock(&w->rmu);
		w->unsure = 1;
		pthread_mutex_unlock(&w->rmu);
	}
}

/* Around a client's read of a followed descriptor: while the guard's
 * question is out, the client waits (its answer is the guard's to read). */
static struct wconn *read_begin(int fd)
{
	struct wconn *w = wconns[fd];
	if (!w)
		return NULL;
	for (;;) {
		__atomic_add_fetch(&w->readers, 1, __ATOMIC_SEQ_CST);
		if (!__atomic_load_n(&w->asking, __ATOMIC_SEQ_CST))
			return w;
		__atomic_sub_fetch(&w->readers, 1, __ATOMIC_SEQ_CST);
		poll(NULL, 0, 1);
	}
}

static void read_end(struct wconn *w, const struct iovec *iov, int n, ssize_t got)
{
	if (!w)
		return;
	if (got > 0 && (w->state == ST_PG || w->state == ST_MY)) {
		pthread_mutex_lock(&w->rmu);
		for (int i = 0; i < n && got > 0; i++) {
			size_t k = iov[i].iov_len < (size_t)got ? iov[i].iov_len : (size_t)got;
			replies(w, iov[i].iov_base, k);
			got -= (ssize_t)k;
		}
		pthread_mutex_unlock(&w->rmu);
	}
	__atomic_sub_fetch(&w->readers, 1, __ATOMIC_SEQ_CST);
}

/* ---- the guard's own question, between the client's requests -------------------
 * Whether the tables a statement drops or empties are the connection's
 * temporary tables is known to the server alone, and only on this very
 * connection: the text cannot tell (the table may have been made by an
 * earlier statement, or dropped out of sight by a procedure). So it is
 * asked, on the client's connection, when the answer would change how the
 * statement is judged and nothing of the client's is in flight (quiet, no
 * read under way, nothing to read). Only the answer to the question is
 * read: exactly its bytes, by its framing. Should the server not answer in
 * time, the connection is out of step for good and is shut down (the
 * client sees it closed, never a reply that is not its own).
 */
#define ASK_WAIT_MS 10000

static int ask_begin(struct wconn *w)
{
	pthread_mutex_lock(&w->rmu);
	int quiet = !w->unsure && w->answered == w->asked_n && w->rs.state == R_IDLE &&
		    !w->rleft && !w->rhdr_have && !w->rcont;
	pthread_mutex_unlock(&w->rmu);
	if (!quiet)
		return 0;
	__atomic_store_n(&w->asking, 1, __ATOMIC_SEQ_CST);
	struct pollfd pf = {w->fd, POLLIN, 0};
	if (__atomic_load_n(&w->readers, __ATOMIC_SEQ_CST) || poll(&pf, 1, 0) != 0) {
		__atomic_store_n(&w->asking, 0, __ATOMIC_SEQ_CST);
		return 0;
	}
	return 1;
}

static void ask_end(struct wconn *w, int broken)
{
	if (broken)
		shutdown(w->fd, SHUT_RDWR);
	__atomic_store_n(&w->asking, 0, __ATOMIC_SEQ_CST);
}

/* Exactly n bytes out, or in: 0, or -1 (the connection is out of step). */
static int ask_io(struct wconn *w, int out, void *b, size_t n)
{
	while (n) {
		ssize_t r = out ? AG_REAL(send)(w->fd, b, n, MSG_DONTWAIT | MSG_NOSIGNAL)
				: AG_REAL(recv)(w->fd, b, n, MSG_DONTWAIT);
		if (r > 0) {
			b = (char *)b + r;
			n -= (size_t)r;
			continue;
		}
		if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			return -1;
		struct pollfd pf = {w->fd, out ? POLLOUT : POLLIN, 0};
		if (errno != EINTR && poll(&pf, 1, ASK_WAIT_MS) <= 0)
			return -1;
	}
	return 0;
}

/* The next answer message: its body's first `cap` bytes into keep (the
 * rest read and dropped). Its length, or -1. */
static long ask_message(struct wconn *w, unsigned char *type, unsigned char *keep, size_t cap,
			size_t *kept)
{
	unsigned char h[5], sink[512];
	int pg = w->state == ST_PG;
	if (ask_io(w, 0, h, pg ? 5 : 4) < 0)
		return -1;
	if (pg && be32(h + 1) < 4)
		return -1;
	size_t len = pg ? be32(h + 1) - 4 : le24(h);
	*type = h[0];
	*kept = len < cap ? len : cap;
	if (ask_io(w, 0, keep, *kept) < 0)
		return -1;
	for (size_t left = len - *kept; left;) {
		size_t k = left < sizeof sink ? left : sizeof sink;
		if (ask_io(w, 0, sink, k) < 0)
			return -1;
		left -= k;
	}
	return (long)len;
}

/* PostgreSQL: how many of the names are not temporary tables of this
 * session, by its own search order; one Query, read to its ReadyForQuery.
 * 1 all are, 0 not (or the server said no: an aborted transaction), -1
 * out of step. */
static int pg_ask_temps(struct wconn *w, const struct ag_sql_targets *T)
{
	char q[1200], label[32];
	/* Its answer is told from any other by a column name of its own. */
	unsigned r = 0;
	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
		r = (unsigned)ag_now_ns() ^ (unsigned)(uintptr_t)w;
	snprintf(label, sizeof label, "agentguard_%08x", r);
	size_t n = 5 + (size_t)snprintf(q + 5, sizeof q - 5, "%s AS %s%s", AG_PG_TEMPS_COUNT, label,
					AG_PG_TEMPS_FROM "ARRAY[");
	for (int i = 0; i < T->n; i++) {
		if (strstr(T->t[i].name, "$ag$"))
			return 0;
		n += (size_t)snprintf(q + n, sizeof q - n, "%s$ag$%s$ag$", i ? ", " : "", T->t[i].name);
	}
	n += (size_t)snprintf(q + n, sizeof q - n, "%s", "]" AG_PG_TEMPS_TAIL);
	if (n + 1 >= sizeof q)
		return 0;
	q[0] = 'Q';
	put_be32((unsigned char *)q + 1, (uint32_t)n);   /* length, text and NUL */
	if (ask_io(w, 1, q, n + 1) < 0)
		return -1;
	int all = 0, ours = 0;
	for (;;) {
		unsigned char t, body[64];
		size_t kept;
		long len = ask_message(w, &t, body, sizeof body, &kept);
		if (len < 0)
			return -1;
		/* RowDescription: one field, named as asked */
		if (t == 'T')
			ours = kept > 2 + strlen(label) && body[0] == 0 && body[1] == 1 &&
			       !strcmp((const char *)body + 2, label);
		/* DataRow: one column, its text "0" */
		if (t == 'D' && ours && kept >= 7 && body[0] == 0 && body[1] == 1 && be32(body + 2) == 1)
			all = body[6] == '0';
		if (t == 'E')
			all = 0;
		if (t == 'Z')
			return all;
	}
}

/* A SHOW CREATE TABLE row (its first kept bytes): the table's name, the
 * one asked about (an answer out of step names another), then a CREATE
 * statement that says TEMPORARY. */
static int row_temporary(const unsigned char *body, size_t kept, const char *name)
{
	const unsigned char *p = body, *end = body + kept;
	long long l1 = lenenc(&p, end);
	if (l1 < 0 || p + l1 > end || (size_t)l1 != strlen(name) ||
	    strncasecmp((const char *)p, name, (size_t)l1))
		return 0;
	p += l1;
	long long l2 = lenenc(&p, end);
	return l2 >= 22 && p + 22 <= end && memcmp(p, "CREATE TEMPORARY TABLE", 22) == 0;
}

/* MySQL: SHOW CREATE TABLE of each name must say TEMPORARY (a table the
 * session holds shadows a real one of the name). Its answer is read by
 * the same steps as the client's (my_step). */
static int my_ask_temps(struct wconn *w, const struct ag_sql_targets *T)
{
	int deprecate_eof = (w->caps & 0x01000000) != 0;

	for (int i = 0, bounded = 1; i < T->n; i++) {
		unsigned char q[400];
		size_t n = 5 + ag_my_show_create((char *)q + 5, sizeof q - 5, &T->t[i], bounded);
		q[0] = (unsigned char)((n - 4) & 0xff);
		q[1] = (unsigned char)((n - 4) >> 8);
		q[2] = 0;
		q[3] = 0;
		q[4] = 0x03;
		if (ask_io(w, 1, q, n) < 0)
			return -1;
		struct my_rs rs = {R_IDLE, 0};
		int temporary = 0, rows = 0, r = MY_MORE;
		for (int first = 1; r != MY_DONE; first = 0) {
			unsigned char t, body[600];
			size_t kept;
			long len = ask_message(w, &t, body, sizeof body, &kept);
			if (len < 0)
				return -1;
			if (first && bounded && kept >= 3 && body[0] == 0xff &&
			    (body[1] | body[2] << 8) == AG_MY_PARSE_ERROR)
				break;                  /* MySQL: asked again, plainly */
			r = my_step(&rs, body, (unsigned)kept, (size_t)len, deprecate_eof);
			if (r == MY_LOST)
				return first ? 0 : -1;  /* no result set; or out of step */
			if (r == MY_ROW && rows++ == 0)
				temporary = row_temporary(body, kept, T->t[i].name);
		}
		if (r != MY_DONE) {
			bounded = 0;
			i--;
			continue;
		}
		if (!temporary)
			return 0;
	}
	return 1;
}

/* The statement, judged as if the tables it drops or empties were the
 * connection's temporary tables, reads differently, and the server says
 * they are: 1, with them in *held. */
static int server_temps(struct wconn *w, int proto, const char *sql, size_t len,
			struct ag_sql_temps *held)
{
	struct ag_sql_targets *T = malloc(sizeof *T);
	int yes = 0;

	if (!T)
		return 0;
	ag_sql_targets(sql, (long)len, proto == P_MY, T);
	memset(held, 0, sizeof *held);
	int ok = !T->unknown && T->n > 0 && T->n <= AG_SQL_TEMPS / 2;
	for (int i = 0; ok && i < T->n; i++) {
		size_t nl = strlen(T->t[i].name);
		ok = T->t[i].kind == AG_TARGET_TABLE && !T->t[i].schema[0] && nl < AG_SQL_TEMP_NAME;
		/* The name as written, quoted or not. */
		for (int q = 0; ok && q < 2; q++) {
			struct ag_sql_temp *e = &held->t[held->n++];
			memcpy(e->name, T->t[i].name, nl + 1);
			e->len = (unsigned char)nl;
			e->quoted = (unsigned char)q;
		}
	}
	if (ok) {
		/* Temporary tables lower only these (to ddl, delete, update). */
		enum ag_sql_class alone = ag_sql_classify(sql, (long)len);
		struct ag_sql_temps as_if = *held;
		ok = (alone == AG_SQL_DROP_TABLE || alone == AG_SQL_TRUNCATE ||
		      alone == AG_SQL_DELETE_ALL || alone == AG_SQL_UPDATE_ALL) &&
		     ag_sql_classify_temps(sql, (long)len, &as_if) != alone;
	}
	if (ok && ask_begin(w)) {
		int r = proto == P_PG ? pg_ask_temps(w, T) : my_ask_temps(w, T);
		ask_end(w, r < 0);
		yes = r > 0;
	}
	free(T);
	return yes;
}

/* Judge one statement: 0 pass, 1 refused (w->instead holds the text).
 * With `refuse`, refused for that reason without asking the rules. */
static int judge_as(struct wconn *w, int proto, const char *sql, size_t len, int parse,
		    const char *refuse)
{
	struct ag_call c;

	/* What came before it goes first: a pre-image must see what the
	 * statements before this one did. */
	if (w->n)
		emit(w);
	ag_begin(&c, AG_OP_SQL);
	struct ag_sql_temps held;
	const struct ag_sql_temps *h = !refuse && server_temps(w, proto, sql, len, &held) ? &held : NULL;
	int refused = proto == P_PG
		? ag_pg_wire_judge(&c, &w->peer, sql, len, parse, refuse, h, w->db, sizeof w->db,
				   w->instead, sizeof w->instead)
		: ag_my_wire_judge(&c, &w->peer, sql, len, parse, refuse, h, w->db, sizeof w->db,
				   w->instead, sizeof w->instead);
	if (refused)
		ag_refuse_status(&c, proto == P_PG ? 42501 : 1644);
	else
		ag_end_status(&c, 0);
	return refused;
}

static int judge(struct wconn *w, int proto, const char *sql, size_t len, int parse)
{
	return judge_as(w, proto, sql, len, parse, NULL);
}

/* A PostgreSQL message with its text in place of the original's: Query
 * [text], or Parse [name][text][the original's parameter types]. */
static void pg_replace(struct wconn *w, int type, const unsigned char *name, size_t nlen,
		       const unsigned char *tail, size_t tlen)
{
	size_t sl = strlen(w->instead) + 1;
	size_t len = 4 + (type == 'P' ? nlen + 1 : 0) + sl + (type == 'P' ? tlen : 0);
	unsigned char *m = malloc(1 + len);
	if (!m)
		return;
	unsigned char *q = m;
	*q++ = (unsigned char)type;
	put_be32(q, (uint32_t)len);
	q += 4;
	if (type == 'P') {
		memcpy(q, name, nlen);
		q[nlen] = 0;
		q += nlen + 1;
	}
	memcpy(q, w->instead, sl);
	q += sl;
	if (type == 'P' && tlen) {
		memcpy(q, tail, tlen);
		q += tlen;
	}
	plan_add(w, m, (size_t)(q - m), m);
}

/* The same for MySQL: one packet, sequence 0, [cmd][text]. */
static void my_replace(struct wconn *w, int cmd)
{
	size_t sl = strlen(w->instead);
	unsigned char *m = malloc(5 + sl);
	if (!m)
		return;
	size_t n = sl + 1;
	m[0] = (unsigned char)(n & 0xff);
	m[1] = (unsigned char)(n >> 8 & 0xff);
	m[2] = (unsigned char)(n >> 16 & 0xff);
	m[3] = 0;
	m[4] = (unsigned char)cmd;
	memcpy(m + 5, w->instead, sl);
	plan_add(w, m, 5 + sl, m);
}

/* A statement too long to gather: refused unread, and what it still has
 * to come is swallowed. */
static void refuse_unread(struct wconn *w, int proto, size_t body)
{
	static const char what[] = "-- agentguard: a statement too long to read";
	int parse = proto == P_PG ? w->hdr[0] == 'P' : w->hdr[4] == 0x16;

	judge_as(w, proto, what, sizeof what - 1, parse,
		 "a statement longer than 16 MiB (or one memory could not be found for) cannot "
		 "be read, and what cannot be read is not sent");
	if (proto == P_PG && w->hdr[0] == 'Q')
		asked(w);
	else if (proto == P_MY)
		my_command(w, w->hdr[4]);
	if (proto == P_PG) {
		/* A Parse's name is in what was not read: the unnamed
		 * statement fails instead, which stops the rest until Sync. */
		pg_replace(w, w->hdr[0], (const unsigned char *)"", 0, (const unsigned char *)"\0\0", 2);
		w->drop = body;
	} else {
		my_replace(w, w->hdr[4]);
		w->drop = body - 1;
		w->drop_cont = body == 0xffffff;
	}
}

/* The MySQL query text after a COM_QUERY's query attributes. A client
 * that offers them (mysql2 does) sends them only when the server took
 * them up, which the guard does not read: a payload that starts with
 * "no attributes, one set" has them; text cannot start so. NULL when
 * there are attributes with values (not read). */
static const unsigned char *my_text(const struct wconn *w, const unsigned char *p,
				    const unsigned char *end)
{
	if (!(w->caps & 0x08000000) || p >= end)        /* CLIENT_QUERY_ATTRIBUTES */
		return p;
	if (p + 2 <= end && p[0] == 0 && p[1] == 1)
		return p + 2;
	if (p[0] < 0x20 && p[0] != '\t' && p[0] != '\n' && p[0] != '\r')
		return NULL;
	return p;
}

/* A judged message, whole in w->msg. */
static void finish(struct wconn *w, int proto)
{
	unsigned char *m = w->msg;
	size_t n = w->want;

	w->msg = NULL;
	if (w->startup) {
		/* user and database: key\0value\0 pairs after the version. */
		w->startup = 0;
		for (size_t i = 8; i < n && m[i];) {
			const unsigned char *k = m + i, *v = memchr(k, 0, n - i);
			if (!v || ++v >= m + n)
				break;
			const unsigned char *ve = memchr(v, 0, (size_t)(m + n - v));
			if (!ve)
				break;
			if (!strcmp((const char *)k, "user"))
				snprintf(w->peer.user, sizeof w->peer.user, "%s", v);
			else if (!strcmp((const char *)k, "database"))
				snprintf(w->peer.db, sizeof w->peer.db, "%s", v);
			i = (size_t)(ve + 1 - m);
		}
		if (!w->peer.db[0])
			snprintf(w->peer.db, sizeof w->peer.db, "%s", w->peer.user);
		asked(w);   /* its answer ends with ReadyForQuery too */
		plan_add(w, m, n, m);
		return;
	}
	if (proto == P_PG && m[0] == 'Q') {
		const char *sql = (const char *)m + 5;
		int refused = judge(w, P_PG, sql, strnlen(sql, n - 5), 0);
		asked(w);
		if (refused) {
			free(m);
			pg_replace(w, 'Q', NULL, 0, NULL, 0);
			return;
		}
	} else if (proto == P_PG) {                     /* Parse */
		const unsigned char *name = m + 5, *end = m + n;
		const unsigned char *ne = memchr(name, 0, (size_t)(end - name));
		const unsigned char *q = ne ? ne + 1 : NULL;
		const unsigned char *qe = q && q < end ? memchr(q, 0, (size_t)(end - q)) : NULL;
		/* A malformed one the server refuses by itself. */
		if (qe && judge(w, P_PG, (const char *)q, (size_t)(qe - q), 1)) {
			pg_replace(w, 'P', name, (size_t)(ne - name), qe + 1, (size_t)(end - qe - 1));
			free(m);
			return;
		}
	} else if (m[4] == 0x02) {                      /* COM_INIT_DB */
		if (n - 5 < sizeof w->peer.db && !memchr(m + 5, 0, n - 5))
			snprintf(w->peer.db, sizeof w->peer.db, "%.*s", (int)(n - 5), m + 5);
		my_command(w, m[4]);
	} else {                                        /* COM_QUERY, COM_STMT_PREPARE */
		const unsigned char *t = m[4] == 0x03 ? my_text(w, m + 5, m + n) : m + 5;
		static const char attrs[] = "-- agentguard: a query with attributes";
		int refused = t ? judge(w, P_MY, (const char *)t, (size_t)(m + n - t), m[4] == 0x16)
				: judge_as(w, P_MY, attrs, sizeof attrs - 1, 0,
					   "a query with query attributes cannot be read, and what "
					   "cannot be read is not sent");
		my_command(w, m[4]);   /* counted once judged: the question came first */
		if (refused) {
			my_replace(w, m[4]);
			free(m);
			return;
		}
	}
	plan_add(w, m, n, m);
}

/* A header is whole: what its message is. */
static void header(struct wconn *w)
{
	if (w->state == ST_PG) {
		uint32_t len = be32(w->hdr + 1);
		unsigned char t = w->hdr[0];
		if (len < 4) {
			/* Not the protocol after all: stop reading. */
			plan_hdr(w, 5);
			w->state = ST_OFF;
			return;
		}
		if (t == 'Q' || t == 'P') {
			if (len - 4 > WIRE_MAX || !(w->msg = malloc(1 + (size_t)len))) {
				refuse_unread(w, P_PG, len - 4);
				return;
			}
			memcpy(w->msg, w->hdr, 5);
			w->have = 5;
			w->want = 1 + (size_t)len;
			return;
		}
		if (t == 'S' || t == 'F')   /* Sync, FunctionCall: each answered */
			asked(w);
		plan_hdr(w, 5);
		w->pass = len - 4;
		return;
	}
	/* MySQL: [3-byte length][sequence], and the command byte when the
	 * sequence starts a command. */
	uint32_t len = le24(w->hdr);
	if (w->drop_cont) {
		w->drop = len;
		w->drop_cont = len == 0xffffff;
		return;
	}
	unsigned char cmd = w->hdr_have == 5 ? w->hdr[4] : 0;
	if (w->hdr_have == 5 && (cmd == 0x03 || cmd == 0x16 || cmd == 0x02)) {
		if (len >= 0xffffff || len > WIRE_MAX || !(w->msg = malloc(4 + (size_t)len))) {
			refuse_unread(w, P_MY, len);
			return;
		}
		memcpy(w->msg, w->hdr, 5);
		w->have = 5;
		w->want = 4 + (size_t)len;
		return;
	}
	if (w->hdr_have == 5)
		my_command(w, cmd);
	plan_hdr(w, w->hdr_have);
	w->pass = len - (w->hdr_have - 4);
}

static unsigned hdr_need(const struct wconn *w)
{
	if (w->state == ST_PG)
		return 5;
	return w->hdr_have >= 4 && w->hdr[3] == 0 && le24(w->hdr) ? 5 : 4;
}

/* Bytes of this call, in order. */
static void feed(struct wconn *w, const unsigned char *b, size_t n)
{
	while (n) {
		size_t k;
		if (w->state == ST_OFF) {
			plan_add(w, b, n, NULL);
			return;
		}
		if (w->drop) {
			k = n < w->drop ? n : w->drop;
			w->drop -= k;
		} else if (w->pass) {
			k = n < w->pass ? n : w->pass;
			plan_add(w, b, k, NULL);
			w->pass -= k;
		} else if (w->msg) {
			k = n < w->want - w->have ? n : w->want - w->have;
			memcpy(w->msg + w->have, b, k);
			w->have += k;
			if (w->have == w->want)
				finish(w, w->state == ST_PG ? P_PG : P_MY);
		} else {
			w->hdr[w->hdr_have++] = *b;
			k = 1;
			if (w->hdr_have == hdr_need(w)) {
				header(w);
				w->hdr_have = 0;
			}
		}
		b += k;
		n -= k;
	}
}

/* ---- the first write: which protocol, if any -------------------------------- */

/* An unguarded database connection (its statements will be encrypted):
 * recorded, and judged. 0, or -1 with errno when a rule refuses it. */
static int unguarded(struct wconn *w, int proto, const char *why)
{
	struct ag_call c;
	char text[160];

	ag_begin(&c, AG_OP_SQL);
	snprintf(text, sizeof text, "-- agentguard: %s connection: its statements cannot be read", why);
	ag_set_sql(&c, text, strlen(text), ag_wire_database(&w->peer, w->db, sizeof w->db), 0);
	c.op.sql_class = AG_SQL_UNGUARDED;
	(void)proto;
	if (ag_check(&c) < 0) {
		ag_refuse_status(&c, 1);
		/* Its reads end too: a client waiting for the server's answer
		 * to a handshake that never went would wait for the server's
		 * timeout. */
		shutdown(w->fd, SHUT_RDWR);
		errno = EACCES;
		return -1;
	}
	ag_end_status(&c, 0);
	return 0;
}

/* A MySQL client's handshake response (protocol 4.1): [len][seq 1]
 * [caps 4][max packet 4][charset 1][23 filler bytes][user\0]... The
 * filler is zeros, but for its last 4 where a MariaDB client puts its
 * extended capabilities. */
static int my_handshake(struct wconn *w, const unsigned char *b, size_t n)
{
	if (n < 4 + 32 || b[3] != 1)
		return 0;
	size_t len = le24(b);
	const unsigned char *p = b + 4;
	uint32_t caps = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
			(uint32_t)p[3] << 24;
	if (len < 32 || !(caps & 0x200))
		return 0;
	for (int i = 9; i < 28; i++)
		if (p[i])
			return 0;
	w->caps = caps;
	if (caps & 0x800)                               /* CLIENT_SSL: TLS follows */
		return 2;
	/* user and database, when this piece holds them */
	const unsigned char *end = b + (n < 4 + len ? n : 4 + len), *u = p + 32;
	const unsigned char *ue = memchr(u, 0, (size_t)(end - u));
	if (!ue)
		return 1;
	snprintf(w->peer.user, sizeof w->peer.user, "%.*s", (int)(ue - u), u);
	const unsigned char *q = ue + 1;
	if (caps & 0x200000) {                          /* length-encoded auth data */
		if (q >= end || *q >= 0xfb)
			return 1;
		q += 1 + *q;
	} else if (caps & 0x8000) {                     /* secure connection */
		if (q >= end)
			return 1;
		q += 1 + *q;
	} else {
		const unsigned char *z = memchr(q, 0, (size_t)(end - q));
		if (!z)
			return 1;
		q = z + 1;
	}
	const unsigned char *z = q < end ? memchr(q, 0, (size_t)(end - q)) : NULL;
	if ((caps & 0x8) && z)                          /* CLIENT_CONNECT_WITH_DB */
		snprintf(w->peer.db, sizeof w->peer.db, "%.*s", (int)(z - q), q);
	return 1;
}

/* The first bytes written (up to 512 of them, in b): 0 to read on, -1
 * refused (errno set). */
static int probe(struct wconn *w, const unsigned char *b, size_t n)
{
	uint32_t len = n >= 8 ? be32(b) : 0, code = n >= 8 ? be32(b + 4) : 0;

	if (w->state == ST_PG_CRYPT) {
		/* After an SSLRequest: a StartupMessage when the server said no,
		 * else the TLS (or GSS) handshake. */
		if (n >= 8 && len >= 8 && len <= 10000 && code >> 16 == 3)
			goto startup;
		w->state = ST_OFF;
		return unguarded(w, P_PG, n && b[0] == 0x16 ? "TLS" : "encrypted");
	}
	if (n >= 8 && len >= 8 && len <= 10000 && code >> 16 == 3)
		goto startup;
	if (n >= 8 && len == 8 && (code == 80877103 || code == 80877104)) {
		/* SSLRequest, GSSENCRequest: the next write tells. */
		w->state = ST_PG_CRYPT;
		w->pass = 8;
		return 0;
	}
	int my = my_handshake(w, b, n);
	if (my == 2) {
		w->state = ST_OFF;
		return unguarded(w, P_MY, "TLS");
	}
	if (my == 1) {
		if (w->caps & 0x20) {
			/* The compressed protocol: read on send() by sql_mysql.c
			 * (the mariadb client's way), not here. */
			w->state = ST_OFF;
			return 0;
		}
		w->state = ST_MY;
		w->pass = 4 + le24(b);
		return 0;
	}
	w->state = ST_OFF;
	if (w->dbaddr && n >= 3 && b[0] == 0x16 && b[1] == 3)
		/* TLS from the first byte (PostgreSQL's direct negotiation). */
		return unguarded(w, P_PG, "TLS");
	return 0;
startup:
	w->state = ST_PG;
	w->startup = 1;
	w->msg = malloc(len);
	if (!w->msg) {
		w->state = ST_OFF;
		return 0;
	}
	w->have = 0;
	w->want = len;
	return 0;
}

/* ---- the slow path ------------------------------------------------------------ */

/* The call comes from libpq or a shared MySQL client library: that
 * library's hooks judge its statements (sql_pq.c, sql_mysql.c). */
static int from_client_library(const void *ra)
{
	Dl_info di;

	if (!ra || !dladdr(ra, &di) || !di.dli_fname)
		return 0;
	const char *b = strrchr(di.dli_fname, '/');
	b = b ? b + 1 : di.dli_fname;
	return !strncmp(b, "libpq.so", 8) || !strncmp(b, "libmariadb.so", 13) ||
	       !strncmp(b, "libmysqlclient.so", 17);
}

ssize_t ag_wire_writev(int fd, const struct iovec *iov, int iovcnt, int how, int flags,
		       const void *ra)
{
	struct wconn *w = wconns[fd];
	size_t total = 0;

	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (!w || iovcnt < 0)
		goto pass;
	pthread_mutex_lock(&w->mu);
	if (!ag_wire_on[fd] || w->state == ST_OFF) {
		pthread_mutex_unlock(&w->mu);
		goto pass;
	}
	if (w->state == ST_PROBE || w->state == ST_PG_CRYPT) {
		unsigned char head[512];
		size_t hn = 0;
		for (int i = 0; i < iovcnt && hn < sizeof head; i++) {
			size_t k = iov[i].iov_len < sizeof head - hn ? iov[i].iov_len : sizeof head - hn;
			memcpy(head + hn, iov[i].iov_base, k);
			hn += k;
		}
		if (!hn) {
			pthread_mutex_unlock(&w->mu);
			goto pass;
		}
		int rc = 0;
		w->fd = fd;
		if (from_client_library(ra))
			w->state = ST_OFF;
		else
			rc = probe(w, head, hn);
		if (rc < 0 || w->state == ST_OFF) {
			int e = errno;
			ag_wire_on[fd] = 0;
			pthread_mutex_unlock(&w->mu);
			if (rc < 0) {
				errno = e;
				return -1;
			}
			goto pass;
		}
	}
	w->fd = fd;
	w->how = how;
	w->flags = flags;
	for (int i = 0; i < iovcnt; i++)
		feed(w, iov[i].iov_base, iov[i].iov_len);
	int rc = emit(w);
	int e = errno;
	if (w->state == ST_OFF)
		ag_wire_on[fd] = 0;
	pthread_mutex_unlock(&w->mu);
	errno = e;
	return rc < 0 ? -1 : (ssize_t)total;
pass:
	if (how == AG_WIRE_SEND) {
		struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
		return AG_REAL(sendmsg)(fd, &mh, flags);
	}
	return AG_REAL(writev)(fd, iov, iovcnt);
}

/* ---- the entries --------------------------------------------------------------
 * send, sendto and sendmsg are in sql_mysql.c and connect.c, which read
 * them for their own reasons too; they come here for a descriptor
 * AG_WIRE_ON names.
 */
/* These entries are on every write and close a program makes: the real
 * function's resolved pointer is read in place, and resolving it (once)
 * is a cold call of its own, so the passthrough saves no registers. */
#define COLD_REAL(ret, name, params, args)                                      \
	static __attribute__((noinline, cold)) ret name##_first params          \
	{                                                                       \
		return AG_REAL(name) args;                                      \
	}
#define REAL_NOW(name, args) ({                                                   \
	__typeof__(ag_real.name) f_ = __atomic_load_n(&ag_real.name, __ATOMIC_ACQUIRE); \
	__builtin_expect(f_ != NULL, 1) ? f_ args : name##_first args; })

COLD_REAL(ssize_t, write, (int fd, const void *b, size_t n), (fd, b, n))
COLD_REAL(ssize_t, writev, (int fd, const struct iovec *iov, int n), (fd, iov, n))
COLD_REAL(int, close, (int fd), (fd))
COLD_REAL(int, dup2, (int old, int fd), (old, fd))
COLD_REAL(int, dup3, (int old, int fd, int flags), (old, fd, flags))

static __attribute__((noinline)) ssize_t wire_write(int fd, const void *b, size_t n,
						    const void *ra)
{
	struct iovec v = {(void *)b, n};
	return ag_wire_writev(fd, &v, 1, AG_WIRE_WRITE, 0, ra);
}

AG_EXPORT ssize_t write(int fd, const void *b, size_t n)
{
	if (AG_WIRE_ON(fd) && !AG_OWN_WORK() && !ag_thread.in_sql)
		return wire_write(fd, b, n, __builtin_return_address(0));
	return REAL_NOW(write, (fd, b, n));
}

AG_EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
	if (AG_WIRE_ON(fd) && !AG_OWN_WORK() && !ag_thread.in_sql)
		return ag_wire_writev(fd, iov, n, AG_WIRE_WRITE, 0, __builtin_return_address(0));
	return REAL_NOW(writev, (fd, iov, n));
}

COLD_REAL(ssize_t, read, (int fd, void *b, size_t n), (fd, b, n))
COLD_REAL(ssize_t, readv, (int fd, const struct iovec *iov, int n), (fd, iov, n))
COLD_REAL(ssize_t, recv, (int fd, void *b, size_t n, int flags), (fd, b, n, flags))
COLD_REAL(ssize_t, recvfrom, (int fd, void *b, size_t n, int flags, struct sockaddr *from,
			      socklen_t *fl), (fd, b, n, flags, from, fl))
COLD_REAL(ssize_t, recvmsg, (int fd, struct msghdr *mh, int flags), (fd, mh, flags))

/* The reads of a followed descriptor: the client's answers, followed
 * (read_end) only while the guard may need to ask. */
static __attribute__((noinline)) ssize_t wire_read(int fd, void *b, size_t n, int flags, int how,
						   struct sockaddr *from, socklen_t *fl)
{
	struct wconn *w = read_begin(fd);
	ssize_t r = how ? AG_REAL(recvfrom)(fd, b, n, flags, from, fl) : AG_REAL(read)(fd, b, n);
	int e = errno;
	struct iovec v = {b, n};
	read_end(w, &v, 1, flags & MSG_PEEK ? 0 : r);
	errno = e;
	return r;
}

AG_EXPORT ssize_t read(int fd, void *b, size_t n)
{
	if (AG_WIRE_ON(fd) && !AG_OWN_WORK())
		return wire_read(fd, b, n, 0, 0, NULL, NULL);
	return REAL_NOW(read, (fd, b, n));
}

AG_EXPORT ssize_t recv(int fd, void *b, size_t n, int flags)
{
	if (AG_WIRE_ON(fd) && !AG_OWN_WORK())
		return wire_read(fd, b, n, flags, 1, NULL, NULL);
	return REAL_NOW(recv, (fd, b, n, flags));
}

AG_EXPORT ssize_t recvfrom(int fd, void *b, size_t n, int flags, struct sockaddr *from,
			   socklen_t *fl)
{
	if (AG_WIRE_ON(fd) && !AG_OWN_WORK())
		return wire_read(fd, b, n, flags, 1, from, fl);
	return REAL_NOW(recvfrom, (fd, b, n, flags, from, fl));
}

AG_EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
	if (!AG_WIRE_ON(fd) || AG_OWN_WORK())
		return REAL_NOW(readv, (fd, iov, n));
	struct wconn *w = read_begin(fd);
	ssize_t r = AG_REAL(readv)(fd, iov, n);
	int e = errno;
	read_end(w, iov, n, r);
	errno = e;
	return r;
}

AG_EXPORT ssize_t recvmsg(int fd, struct msghdr *mh, int flags)
{
	if (!AG_WIRE_ON(fd) || AG_OWN_WORK() || !mh)
		return REAL_NOW(recvmsg, (fd, mh, flags));
	struct wconn *w = read_begin(fd);
	ssize_t r = AG_REAL(recvmsg)(fd, mh, flags);
	int e = errno;
	read_end(w, mh->msg_iov, (int)mh->msg_iovlen, flags & MSG_PEEK ? 0 : r);
	errno = e;
	return r;
}

AG_EXPORT int close(int fd)
{
	if (AG_WIRE_ON(fd))
		ag_wire_closed(fd);
	return REAL_NOW(close, (fd));
}

AG_EXPORT int dup2(int old, int fd)
{
	if (AG_WIRE_ON(fd) && old != fd)
		ag_wire_closed(fd);
	return REAL_NOW(dup2, (old, fd));
}

AG_EXPORT int dup3(int old, int fd, int flags)
{
	if (AG_WIRE_ON(fd))
		ag_wire_closed(fd);
	return REAL_NOW(dup3, (old, fd, flags));
}

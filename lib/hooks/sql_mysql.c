/*
 * sql, MySQL/MariaDB (libmariadb, libmysqlclient): mysql_query,
 * mysql_real_query, mysql_send_query.
 *
 * A denied statement is replaced by a SIGNAL that makes the server raise
 * the denial: the client reports it as any server error ("ERROR 1644
 * (45000): agentguard: denied sql ..."). A server database cannot be
 * snapshotted first, so a `snapshot` rule means deny here.
 *
 * mysql_real_connect, mysql_select_db and mysql_close are watched only to
 * know which host and database a connection is on: the client library
 * keeps that in a struct whose layout differs between versions.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "guard.h"

typedef struct st_mysql MYSQL;

static struct {
	int (*query)(MYSQL *, const char *);
	int (*real_query)(MYSQL *, const char *, unsigned long);
	int (*send_query)(MYSQL *, const char *, unsigned long);
	MYSQL *(*real_connect)(MYSQL *, const char *, const char *, const char *, const char *,
			       unsigned int, const char *, unsigned long);
	int (*select_db)(MYSQL *, const char *);
	void (*close)(MYSQL *);
} M;

static void *lookup(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);

	for (const char *const *so = (const char *const[]){"libmariadb.so.3",
		"libmysqlclient.so.21", NULL}; !f && *so; so++) {
		void *h = dlopen(*so, RTLD_LAZY | RTLD_NOLOAD);
		if (h)
			f = dlsym(h, name);
	}
	return f;
}

static void resolve(void)
{
	M.query = lookup("mysql_query");
	M.real_query = lookup("mysql_real_query");
	M.send_query = lookup("mysql_send_query");
	M.real_connect = lookup("mysql_real_connect");
	M.select_db = lookup("mysql_select_db");
	M.close = lookup("mysql_close");
}

static pthread_once_t resolved = PTHREAD_ONCE_INIT;
#define REAL(field) (pthread_once(&resolved, resolve), M.field)

/* ---- which database a connection is on ------------------------------------ */

static struct conn {
	MYSQL *m;
	char host[128];
	char db[128];
} conns[64];
static pthread_mutex_t conns_mu = PTHREAD_MUTEX_INITIALIZER;

static void conn_note(MYSQL *m, const char *host, const char *db, int forget)
{
	pthread_mutex_lock(&conns_mu);
	struct conn *slot = NULL;
	for (size_t i = 0; i < sizeof conns / sizeof conns[0]; i++) {
		if (conns[i].m == m) {
			slot = &conns[i];
			break;
		}
		if (!slot && !conns[i].m)
			slot = &conns[i];
	}
	if (slot && forget) {
		memset(slot, 0, sizeof *slot);
	} else if (slot) {
		slot->m = m;
		if (host)
			snprintf(slot->host, sizeof slot->host, "%s", *host && host[0] != '/' ? host
				 : "localhost");
		if (db)
			snprintf(slot->db, sizeof slot->db, "%s", db);
	}
	pthread_mutex_unlock(&conns_mu);
}

/* "host/dbname"; a unix socket or an unknown host is "localhost". */
static const char *database(MYSQL *m, char *buf, size_t len)
{
	snprintf(buf, len, "localhost/?");
	pthread_mutex_lock(&conns_mu);
	for (size_t i = 0; i < sizeof conns / sizeof conns[0]; i++)
		if (conns[i].m == m)
			snprintf(buf, len, "%s/%s", conns[i].host[0] ? conns[i].host : "localhost",
				 conns[i].db[0] ? conns[i].db : "?");
	pthread_mutex_unlock(&conns_mu);
	return buf;
}

AG_EXPORT MYSQL *mysql_real_connect(MYSQL *m, const char *host, const char *user,
				    const char *pass, const char *db, unsigned int port,
				    const char *sock, unsigned long flags)
{
	MYSQL *r = REAL(real_connect)(m, host, user, pass, db, port, sock, flags);

	if (r)
		conn_note(r, host ? host : "localhost", db ? db : "", 0);
	return r;
}

AG_EXPORT int mysql_select_db(MYSQL *m, const char *db)
{
	int r = REAL(select_db)(m, db);

	if (r == 0)
		conn_note(m, NULL, db, 0);
	return r;
}

AG_EXPORT void mysql_close(MYSQL *m)
{
	conn_note(m, NULL, NULL, 1);
	REAL(close)(m);
}

/* ---- deciding ------------------------------------------------------------ */

/* The statement the server runs instead: it raises the denial. */
static void raising(const struct ag_call *c, char *sql, size_t len)
{
	char line[1024], clean[129];
	size_t n = 0;

	/* MESSAGE_TEXT holds 128 characters: the rule and reason first (the
	 * client shows the statement itself); quotes and backslashes dropped
	 * so the message cannot end the string. */
	snprintf(line, sizeof line, "agentguard denied this (rule %s): %s",
		 c->rule ? c->rule : "default", c->reason ? c->reason : "not allowed");
	for (const char *p = line; *p && n < sizeof clean - 1; p++)
		if (*p != '\'' && *p != '\\')
			clean[n++] = *p;
	clean[n] = 0;
	snprintf(sql, len, "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '%s'", clean);
}

#define MY_BODY(field, sql, len, real_args, refused_call)                           \
	struct ag_call c;                                                       \
	char db_[300], instead_[400];                                           \
	if (!(sql) || !ag_begin(&c, AG_OP_SQL))                                 \
		return REAL(field) real_args;                                   \
	pthread_once(&resolved, resolve);                                       \
	ag_set_sql(&c, sql, len, database(m, db_, sizeof db_), 0);              \
	if (ag_check(&c) < 0) {                                                 \
		raising(&c, instead_, sizeof instead_);                         \
		int r_ = refused_call;                                          \
		return ag_refuse_status(&c, r_ ? r_ : 1);                       \
	}                                                                       \
	return ag_end_status(&c, M.field real_args);

AG_EXPORT int mysql_query(MYSQL *m, const char *q)
{
	MY_BODY(query, q, q ? strlen(q) : 0, (m, q), M.query(m, instead_))
}

AG_EXPORT int mysql_real_query(MYSQL *m, const char *q, unsigned long len)
{
	MY_BODY(real_query, q, len, (m, q, len),
		M.real_query(m, instead_, (unsigned long)strlen(instead_)))
}

AG_EXPORT int mysql_send_query(MYSQL *m, const char *q, unsigned long len)
{
	MY_BODY(send_query, q, len, (m, q, len),
		M.send_query(m, instead_, (unsigned long)strlen(instead_)))
}

/* ---- the wire ------------------------------------------------------------
 * Debian's `mariadb` client carries its own copy of the client library:
 * its mysql_real_query never passes through a hook. What it cannot avoid
 * is libc's send(). A COM_QUERY packet is [3-byte length][sequence 0]
 * [0x03][SQL]; a whole one in a single send, on a stream socket, whose
 * payload reads as text, is judged here. (Clients using the shared library
 * were judged in mysql_real_query already: the guard's depth flag lets
 * their send pass.)
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>

static ssize_t (*real_send)(int, const void *, size_t, int);
static ssize_t (*real_sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);

static int com_query(int fd, const unsigned char *b, size_t len)
{
	if (len < 6 || b[3] != 0 || b[4] != 0x03)
		return 0;
	if ((size_t)(b[0] | b[1] << 8 | b[2] << 16) != len - 4)
		return 0;
	if (memchr(b + 5, 0, len - 5))
		return 0;
	int type;
	socklen_t tl = sizeof type;
	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM;
}

/* "host/?": the peer, "localhost" for a unix socket. */
static const char *peer(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char host[INET6_ADDRSTRLEN] = "localhost";

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
		else if (ss.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
	}
	snprintf(buf, len, "%s/?", host);
	return buf;
}

/* 0: send as is; 1: refused, `out` holds the packet to send instead. */
static int wire_judge(struct ag_call *c, int fd, const unsigned char *b, size_t len,
		      unsigned char *out, size_t *outlen)
{
	char db[300], sql[400];

	ag_set_sql(c, (const char *)b + 5, len - 5, peer(fd, db, sizeof db), 0);
	if (ag_check(c) == 0)
		return 0;
	raising(c, sql, sizeof sql);
	size_t n = strlen(sql) + 1;
	out[0] = (unsigned char)(n & 0xff);
	out[1] = (unsigned char)(n >> 8 & 0xff);
	out[2] = (unsigned char)(n >> 16 & 0xff);
	out[3] = 0;
	out[4] = 0x03;
	memcpy(out + 5, sql, n - 1);
	*outlen = n + 4;
	return 1;
}

#define WIRE_BODY(real, name, real_args, instead_args)                             \
	struct ag_call c;                                                       \
	if (!real)                                                              \
		real = ag_real_next(name);                                      \
	if (!com_query(fd, buf, len) || !ag_begin(&c, AG_OP_SQL))               \
		return real real_args;                                          \
	unsigned char out[420];                                                 \
	size_t outlen = 0;                                                      \
	if (!wire_judge(&c, fd, buf, len, out, &outlen)) {                      \
		ssize_t r_ = real real_args;                                    \
		ag_end_status(&c, r_ < 0 ? errno : 0);                          \
		return r_;                                                      \
	}                                                                       \
	ssize_t r_ = real instead_args;                                         \
	int e_ = errno;                                                         \
	ag_refuse_status(&c, 1644);                                             \
	errno = e_;                                                             \
	/* The client sent its query; the server answers with the denial. */   \
	return r_ == (ssize_t)outlen ? (ssize_t)len : r_ < 0 ? -1 : (errno = EIO, -1);

AG_EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	WIRE_BODY(real_send, "send", (fd, buf, len, flags), (fd, out, outlen, flags))
}

AG_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags,
			 const struct sockaddr *to, socklen_t tolen)
{
	WIRE_BODY(real_sendto, "sendto", (fd, buf, len, flags, to, tolen),
		  (fd, out, outlen, flags, to, tolen))
}

/*
 * Database connections read at the socket (wire.c): what the protocol
 * layers share with the clients' hooks (sql_pq.c, sql_mysql.c).
 */
#ifndef AGENTGUARD_WIRE_H
#define AGENTGUARD_WIRE_H

#include <sys/socket.h>
#include <sys/uio.h>

#include "guard.h"

/* Descriptors numbered below this can be followed; a connection on a
 * higher one is not read (and the README says so). */
#define AG_WIRE_FDS 65536

/* One byte per descriptor: nonzero while it is a database connection
 * being read (or one whose first write is still to be looked at). The
 * write hooks test it and nothing else. */
extern unsigned char ag_wire_on[AG_WIRE_FDS] __attribute__((visibility("hidden")));
#define AG_WIRE_ON(fd) \
	__builtin_expect((unsigned)(fd) < AG_WIRE_FDS && ag_wire_on[(unsigned)(fd)], 0)

/* Where a connection goes and as whom: from the connect() address and the
 * protocol's startup message (or, for MySQL, the handshake response). */
struct ag_wire_peer {
	char addr[64];        /* numeric address ("" for a unix socket) */
	unsigned port;        /* TCP port, or the PostgreSQL socket's number */
	char unix_path[256];  /* a unix socket's path */
	char user[64];
	char db[128];
};

/* "localhost/db" for a unix socket, "addr/db" else ("?" when unknown). */
const char *ag_wire_database(const struct ag_wire_peer *p, char *buf, size_t len);

/* connect() on fd reached sa (rc 0, or EINPROGRESS): follow its writes. */
void ag_wire_connected(int fd, const struct sockaddr *sa, socklen_t len);
/* A client library's own connection on fd: its statements are judged in
 * the library's functions, not on the wire. */
void ag_wire_forget(int fd);
/* The descriptor is gone (close, or another dup'ed over it). */
void ag_wire_closed(int fd);

/* The write hooks' slow paths, for a descriptor AG_WIRE_ON says is one;
 * ra: where the call came from (a client library's own connection is
 * left to its hooks). */
ssize_t ag_wire_writev(int fd, const struct iovec *iov, int n, int how, int flags, const void *ra);
enum { AG_WIRE_WRITE, AG_WIRE_SEND };

/* One statement read on the wire, judged like any other: 0, let it go;
 * 1, refused: `instead` holds the statement the server is to run instead
 * (it raises the denial). `parse`: it comes in a PostgreSQL Parse or a
 * MySQL COM_STMT_PREPARE, where the replacement must fail at once. With
 * `refuse`, refused for that reason without asking the rules (what cannot
 * be read). `db` is room for the database's name, which must outlive the
 * call. */
int ag_pg_wire_judge(struct ag_call *c, const struct ag_wire_peer *p, const char *sql, size_t len,
		     int parse, const char *refuse, const struct ag_sql_temps *held, char *db,
		     size_t dblen, char *instead, size_t ilen);
int ag_my_wire_judge(struct ag_call *c, const struct ag_wire_peer *p, const char *sql, size_t len,
		     int parse, const char *refuse, const struct ag_sql_temps *held, char *db,
		     size_t dblen, char *instead, size_t ilen);
/* `held`: the tables the statement drops or empties, which the server
 * said (asked on the connection itself, wire.c) are the connection's
 * temporary tables; NULL when it was not asked or said no. */

/* PostgreSQL: of the names in w(n), how many are not, by the session's
 * search order, among its temporary tables (after AG_PG_TEMPS_HEAD and a
 * text[]). Every function, operator and type is pg_catalog's: a session
 * that puts a schema of its own first in search_path does not get its
 * `unnest` or `=` run by the guard. */
#define AG_PG_TEMPS_HEAD AG_PG_TEMPS_COUNT AG_PG_TEMPS_FROM
#define AG_PG_TEMPS_COUNT "SELECT pg_catalog.count(*)"
#define AG_PG_TEMPS_FROM " FROM pg_catalog.unnest("
#define AG_PG_TEMPS_TAIL                                                               \
	"::pg_catalog.text[]) AS w(n) WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c " \
	"WHERE c.oid OPERATOR(pg_catalog.=) "                                          \
	"pg_catalog.to_regclass(pg_catalog.quote_ident(w.n)) AND c.relnamespace "     \
	"OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema())"

/* MySQL: the SHOW CREATE TABLE of t into q (cap bytes, 400 are enough;
 * `bounded`: its wait for a lock bounded, MariaDB's way);
 * its length. Its answer begins "CREATE TEMPORARY TABLE" for a temporary
 * table the session holds, which shadows a real one of the name. */
size_t ag_my_show_create(char *q, size_t cap, const struct ag_sql_target *t, int bounded);
#define AG_MY_PARSE_ERROR 1064   /* ER_PARSE_ERROR: MySQL reading MariaDB's bound */

#endif

/*
 * The PostgreSQL protocol spoken by hand, through each call that can write
 * to a socket (test/e2e/t_wire.sh): write, writev (a message cut across
 * iovecs), send, sendto, sendmsg. For each, one Query; what the server
 * answered is printed ("write: C DELETE 3", "writev: E agentguard: ...").
 * Then the descriptor number is reused for a pipe, by dup2, dup3 and
 * close: bytes that look like a Query go through it unchanged. Last, the
 * answers read through each call that can read (read, readv, recv,
 * recvfrom, recvmsg): "read: C DROP TABLE" when the guard saw the client
 * had its last answer and could ask the server whether the table dropped
 * was the connection's temporary one; then two queries sent before either
 * answer is read (pipelined: no question may be put between them), and
 * a third sent when only the first of two answers was read.
 *
 *   wire_calls SOCKET_PATH USER DATABASE
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

static int conn_fd;

static void put32(unsigned char *b, uint32_t v)
{
	b[0] = v >> 24;
	b[1] = v >> 16;
	b[2] = v >> 8;
	b[3] = v;
}

static int reader;   /* which call reads: 0 read, 1 readv, 2 recv, 3 recvfrom, 4 recvmsg */

static ssize_t read_some(unsigned char *b, size_t n)
{
	struct iovec v[2] = {{b, n / 2}, {b + n / 2, n - n / 2}};
	struct msghdr mh = {.msg_iov = v, .msg_iovlen = 2};
	switch (reader) {
	case 1: return readv(conn_fd, v, 2);
	case 2: return recv(conn_fd, b, n, 0);
	case 3: return recvfrom(conn_fd, b, n, 0, NULL, NULL);
	case 4: return recvmsg(conn_fd, &mh, 0);
	default: return read(conn_fd, b, n);
	}
}

static void readn(unsigned char *b, size_t n)
{
	for (size_t k = 0; k < n;) {
		ssize_t r = read_some(b + k, n - k);
		if (r <= 0) {
			fprintf(stderr, "read: %s\n", r ? strerror(errno) : "EOF");
			exit(2);
		}
		k += (size_t)r;
	}
}

/* Messages until ReadyForQuery; the first CommandComplete or error text. */
static void answer(const char *how)
{
	char said[512] = "";

	for (;;) {
		unsigned char h[5];
		readn(h, 5);
		uint32_t len = (uint32_t)h[1] << 24 | h[2] << 16 | h[3] << 8 | h[4];
		unsigned char *b = malloc(len);
		readn(b, len - 4);
		if (h[0] == 'C' && !said[0])
			snprintf(said, sizeof said, "C %s", (char *)b);
		if (h[0] == 'E' && !said[0])
			/* fields: type byte, text; 'M' is the message */
			for (unsigned char *p = b; p < b + len - 4 && *p; p += strlen((char *)p + 1) + 2)
				if (*p == 'M')
					snprintf(said, sizeof said, "E %s", (char *)p + 1);
		free(b);
		if (h[0] == 'Z')
			break;
	}
	if (how)
		printf("%s: %s\n", how, said);
}

static size_t query(unsigned char *m, const char *sql)
{
	size_t n = strlen(sql) + 1;
	m[0] = 'Q';
	put32(m + 1, (uint32_t)(4 + n));
	memcpy(m + 5, sql, n);
	return 5 + n;
}

/* Bytes written to descriptor fd (now a pipe's end) come out unchanged. */
static void reused(const char *how, int fd, int rd)
{
	unsigned char m[64], got[64];
	size_t n = query(m, "DROP TABLE a");
	if (write(fd, m, n) != (ssize_t)n || read(rd, got, sizeof got) != (ssize_t)n)
		printf("%s: short\n", how);
	else
		printf("%s: %s\n", how, memcmp(m, got, n) ? "changed" : "unchanged");
}

/* A connection, started: the guard follows it from its StartupMessage. */
static int start(const char *path, const char *user, const char *db)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	unsigned char m[512];

	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	conn_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(conn_fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		perror("connect");
		exit(2);
	}
	size_t n = 8;
	put32(m + 4, 196608);
	n += (size_t)sprintf((char *)m + n, "user%c%s%cdatabase%c%s%c", 0, user, 0, 0, db, 0);
	m[n++] = 0;
	put32(m, (uint32_t)n);
	if (write(conn_fd, m, n) != (ssize_t)n) {
		perror("write startup");
		exit(2);
	}
	answer(NULL);
	return conn_fd;
}

int main(int argc, char **argv)
{
	unsigned char m[512];
	size_t n;

	if (argc != 4)
		return 2;
	start(argv[1], argv[2], argv[3]);
	n = query(m, "DELETE FROM t1");
	if (write(conn_fd, m, n) < 0)
		perror("write");
	answer("write");
	n = query(m, "DELETE FROM t2");
	struct iovec v[3] = {{m, 3}, {m + 3, 6}, {m + 9, n - 9}};
	if (writev(conn_fd, v, 3) < 0)
		perror("writev");
	answer("writev");
	n = query(m, "DELETE FROM t3");
	if (send(conn_fd, m, n, MSG_NOSIGNAL) < 0)
		perror("send");
	answer("send");
	n = query(m, "DELETE FROM t4");
	if (sendto(conn_fd, m, n, 0, NULL, 0) < 0)
		perror("sendto");
	answer("sendto");
	n = query(m, "DELETE FROM t5");
	struct iovec one = {m, n};
	struct msghdr mh = {.msg_iov = &one, .msg_iovlen = 1};
	if (sendmsg(conn_fd, &mh, 0) < 0)
		perror("sendmsg");
	answer("sendmsg");
	fflush(stdout);

	/* The number reused: the connection's state must not follow it. */
	int p[2];
	if (pipe(p) < 0)
		return 2;
	int fd = start(argv[1], argv[2], argv[3]);
	if (dup2(p[1], fd) < 0)
		return perror("dup2"), 2;
	reused("dup2", fd, p[0]);
	fd = start(argv[1], argv[2], argv[3]);
	if (dup3(p[1], fd, O_CLOEXEC) < 0)
		return perror("dup3"), 2;
	reused("dup3", fd, p[0]);
	fd = start(argv[1], argv[2], argv[3]);
	close(fd);
	int w = dup(p[1]);   /* the lowest free number: the closed socket's */
	reused(w == fd ? "close" : "close (another number)", w, p[0]);

	static const char *const readers[] = {"read", "readv", "recv", "recvfrom", "recvmsg"};
	start(argv[1], argv[2], argv[3]);
	for (reader = 0; reader < 5; reader++) {
		char sql[64];
		snprintf(sql, sizeof sql, "CREATE TEMP TABLE r%d(a int)", reader);
		n = query(m, sql);
		if (write(conn_fd, m, n) < 0)
			perror("write");
		answer(NULL);
		snprintf(sql, sizeof sql, "DROP TABLE r%d", reader);
		n = query(m, sql);
		if (write(conn_fd, m, n) < 0)
			perror("write");
		answer(readers[reader]);
	}
	reader = 0;
	n = query(m, "CREATE TEMP TABLE piped(a int)");
	if (write(conn_fd, m, n) < 0)
		perror("write");
	answer(NULL);
	n = query(m, "SELECT pg_sleep(0.3)");
	size_t n2 = query(m + n, "DROP TABLE piped");
	if (write(conn_fd, m, n) < 0 || write(conn_fd, m + n, n2) < 0)
		perror("write");
	answer("pipelined first");
	answer("pipelined second");
	/* The first answer of two read, the second still being made: no
	 * question before the third (its answer would be read for the DO's). */
	n = query(m, "CREATE TEMP TABLE piped2(a int)");
	if (write(conn_fd, m, n) < 0)
		perror("write");
	answer(NULL);
	n = query(m, "SELECT 1");
	n2 = query(m + n, "DO $$BEGIN PERFORM pg_sleep(0.5); END$$");
	if (write(conn_fd, m, n) < 0 || write(conn_fd, m + n, n2) < 0)
		perror("write");
	answer("overlapped first");
	n = query(m, "DROP TABLE piped2");
	if (write(conn_fd, m, n) < 0)
		perror("write");
	answer("overlapped second");
	answer("overlapped third");
	return 0;
}

/* Calls exactly one interposed entry point, so that the end-to-end tests
 * can hold every name in lib/interpose.def to account:
 *   entrypoints SYMBOL ARGS...
 * Prints "ok" (exit 0), "err ENAME" (exit 1, errno of the call), or
 * "exit N" (exit 1, a started program's status); 2 means the program
 * itself could not set the call up. Which ARGS each symbol takes is in
 * the table at the end. Built without _FORTIFY_SOURCE and without
 * _FILE_OFFSET_BITS, so open is open and open64 is open64: the compiler
 * must not swap one entry point for another behind the test's back. */
#define _GNU_SOURCE
#define _LARGEFILE64_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netdb.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

/* glibc's fortify targets: the headers declare them only under
 * _FORTIFY_SOURCE, and then would route open() to them as well. */
extern int __open_2(const char *, int);
extern int __open64_2(const char *, int);
extern int __openat_2(int, const char *, int);
extern int __openat64_2(int, const char *, int);

extern char **environ;

static int nargs;
static char **args;

static int usage(const char *why)
{
	fprintf(stderr, "entrypoints: %s\n", why);
	return 2;
}

static int report(int failed)
{
	if (failed) {
		printf("err %s\n", strerrorname_np(errno) ? strerrorname_np(errno) : "?");
		return 1;
	}
	puts("ok");
	return 0;
}

static int status(int st)
{
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		puts("ok");
		return 0;
	}
	printf("exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return 1;
}

static const char *arg(int i)
{
	if (i >= nargs) {
		fprintf(stderr, "entrypoints: missing argument %d\n", i + 1);
		exit(2);
	}
	return args[i];
}

/* The directory of PATH open, *name its last component: the *at calls
 * then take a real directory descriptor and a relative name. */
static int dir_of(const char *path, const char **name)
{
	char *copy = strdup(path);
	int fd;

	*name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
	free(copy);
	if (fd < 0) {
		perror("entrypoints: directory");
		exit(2);
	}
	return fd;
}

/* ---- delete, rename --------------------------------------------------- */

static int do_delete(const char *sym)
{
	const char *p = arg(0), *name;

	if (!strcmp(sym, "unlink"))
		return report(unlink(p) < 0);
	if (!strcmp(sym, "remove"))
		return report(remove(p) < 0);
	if (!strcmp(sym, "rmdir"))
		return report(rmdir(p) < 0);
	int dfd = dir_of(p, &name);
	struct stat st;
	int flags = fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) ?
		    AT_REMOVEDIR : 0;
	return report(unlinkat(dfd, name, flags) < 0);
}

static int do_rename(const char *sym)
{
	const char *from = arg(0), *to = arg(1), *fname, *tname;

	if (!strcmp(sym, "rename"))
		return report(rename(from, to) < 0);
	int fd = dir_of(from, &fname), td = dir_of(to, &tname);
	if (!strcmp(sym, "renameat"))
		return report(renameat(fd, fname, td, tname) < 0);
	return report(renameat2(fd, fname, td, tname, 0) < 0);
}

/* ---- opening with truncation, truncate --------------------------------- */

static int opened(int fd)
{
	if (fd < 0)
		return report(1);
	close(fd);
	return report(0);
}

static int fopened(FILE *f)
{
	if (!f)
		return report(1);
	fclose(f);
	return report(0);
}

/* EP_WRITE=1: opened to overwrite in place (O_RDWR, fopen "r+") instead. */
static int do_open(const char *sym)
{
	const char *p = arg(0), *name;
	const int w = getenv("EP_WRITE") != NULL;
	const int fl = w ? O_RDWR : O_WRONLY | O_TRUNC;
	const char *fm = w ? "r+" : "w";

	if (!strcmp(sym, "open"))
		return opened(open(p, fl));
	if (!strcmp(sym, "open64"))
		return opened(open64(p, fl));
	if (!strcmp(sym, "creat"))
		return opened(creat(p, 0644));
	if (!strcmp(sym, "creat64"))
		return opened(creat64(p, 0644));
	if (!strcmp(sym, "__open_2"))
		return opened(__open_2(p, fl));
	if (!strcmp(sym, "__open64_2"))
		return opened(__open64_2(p, fl));
	if (!strcmp(sym, "fopen"))
		return fopened(fopen(p, fm));
	if (!strcmp(sym, "fopen64"))
		return fopened(fopen64(p, fm));
	if (!strncmp(sym, "freopen", 7)) {
		FILE *f = fopen("/dev/null", "r");
		if (!f)
			return usage("cannot open /dev/null");
		return fopened(!strcmp(sym, "freopen") ? freopen(p, fm, f) : freopen64(p, fm, f));
	}
	int dfd = dir_of(p, &name);
	if (!strcmp(sym, "openat"))
		return opened(openat(dfd, name, fl));
	if (!strcmp(sym, "openat64"))
		return opened(openat64(dfd, name, fl));
	if (!strcmp(sym, "__openat_2"))
		return opened(__openat_2(dfd, name, fl));
	return opened(__openat64_2(dfd, name, fl));
}

/* Shrinks to one byte. */
static int do_truncate(const char *sym)
{
	const char *p = arg(0);

	if (!strcmp(sym, "truncate"))
		return report(truncate(p, 1) < 0);
	if (!strcmp(sym, "truncate64"))
		return report(truncate64(p, 1) < 0);
	/* Append-only: the open itself is no `write`, the shrink is judged. */
	int fd = open(p, O_WRONLY | O_APPEND);
	if (fd < 0)
		return report(1);
	return report((!strcmp(sym, "ftruncate") ? ftruncate(fd, 1) : ftruncate64(fd, 1)) < 0);
}

/* Punches out the first block (an append-only descriptor, as above). */
static int do_fallocate(const char *sym)
{
	int fd = open(arg(0), O_WRONLY | O_APPEND);
	const int mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;

	if (fd < 0)
		return report(1);
	return report((!strcmp(sym, "fallocate") ? fallocate(fd, mode, 0, 4096)
		       : fallocate64(fd, mode, 0, 4096)) < 0);
}

/* ---- new names and special files ---------------------------------------- */

static int do_link(const char *sym)
{
	const char *a = arg(0), *an, *bn;

	if (!strcmp(sym, "link"))
		return report(link(a, arg(1)) < 0);
	if (!strcmp(sym, "symlink"))
		return report(symlink(a, arg(1)) < 0);
	if (!strcmp(sym, "mkfifo"))
		return report(mkfifo(a, 0600) < 0);
	if (!strcmp(sym, "mknod"))
		return report(mknod(a, S_IFIFO | 0600, 0) < 0);
	if (!strcmp(sym, "mkfifoat") || !strcmp(sym, "mknodat")) {
		int d = dir_of(a, &an);
		return report((sym[2] == 'f' ? mkfifoat(d, an, 0600) :
			       mknodat(d, an, S_IFIFO | 0600, 0)) < 0);
	}
	int bd = dir_of(arg(1), &bn);
	if (!strcmp(sym, "symlinkat"))
		return report(symlinkat(a, bd, bn) < 0);
	int ad = dir_of(a, &an);
	return report(linkat(ad, an, bd, bn, 0) < 0);
}

/* ---- starting programs ----------------------------------------------------- */

/* The exec calls return only when refused (or the program is missing). */
static int do_exec(const char *sym)
{
	const char *prog = arg(0), *name;
	char **av = args;	/* argv[0] is the program as given */
	char *a1 = nargs > 1 ? args[1] : NULL, *a2 = nargs > 2 ? args[2] : NULL;
	pid_t pid;
	int st, rc;

	if (nargs > 3)
		return usage("exec: at most two arguments (the execl family's are fixed)");
	fflush(stdout);
	if (!strcmp(sym, "execve"))
		execve(prog, av, environ);
	else if (!strcmp(sym, "execv"))
		execv(prog, av);
	else if (!strcmp(sym, "execvp"))
		execvp(prog, av);
	else if (!strcmp(sym, "execvpe"))
		execvpe(prog, av, environ);
	else if (!strcmp(sym, "execl"))
		execl(prog, prog, a1, a2, (char *)NULL);
	else if (!strcmp(sym, "execlp"))
		execlp(prog, prog, a1, a2, (char *)NULL);
	else if (!strcmp(sym, "execle"))
		execle(prog, prog, a1, a2, (char *)NULL, environ);
	else if (!strcmp(sym, "fexecve")) {
		int fd = open(prog, O_RDONLY);
		if (fd < 0)
			return usage("fexecve: cannot open the program");
		fexecve(fd, av, environ);
	} else if (!strcmp(sym, "execveat")) {
		int d = dir_of(prog, &name);
		execveat(d, name, av, environ, 0);
	} else if (!strcmp(sym, "posix_spawn") || !strcmp(sym, "posix_spawnp")) {
		rc = (sym[11] ? posix_spawnp : posix_spawn)(&pid, prog, NULL, NULL, av, environ);
		if (rc) {
			errno = rc;
			return report(1);
		}
		if (waitpid(pid, &st, 0) < 0)
			return usage("waitpid");
		return status(st);
	} else {
		/* system and popen take a command line: ARGS joined. */
		char cmd[4096] = "";
		for (int i = 0; i < nargs; i++)
			snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), "%s%s",
				 i ? " " : "", args[i]);
		if (!strcmp(sym, "system")) {
			st = system(cmd);
			return st == -1 ? report(1) : status(st);
		}
		FILE *f = popen(cmd, "r");
		if (!f)
			return report(1);
		char buf[256];
		while (fgets(buf, sizeof(buf), f))
			fputs(buf, stderr);
		return status(pclose(f));
	}
	return report(1);
}

/* ---- the network ------------------------------------------------------------- */

/* A listener on 127.0.0.1, any port: the connect that follows has a peer. */
static int listener(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 4) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &len) < 0) {
		perror("entrypoints: listener");
		exit(2);
	}
	*port = ntohs(a.sin_port);
	return s;
}

static int do_connect(const char *sym)
{
	int port, s, ls;
	struct sockaddr_in a = {.sin_family = AF_INET};

	if (!strcmp(sym, "connect") && !strcmp(arg(0), "metadata")) {
		/* Non-blocking: a connect that reached the kernel would say
		 * EINPROGRESS (a SYN is on its way) or ENETUNREACH; only a
		 * refusal before the system call says EACCES at once. */
		s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		a.sin_port = htons(80);
		inet_pton(AF_INET, "169.254.169.254", &a.sin_addr);
		return report(connect(s, (struct sockaddr *)&a, sizeof(a)) < 0);
	}
	ls = listener(&port);
	if (!strcmp(sym, "connect")) {
		s = socket(AF_INET, SOCK_STREAM, 0);
		a.sin_port = htons(port);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return report(connect(s, (struct sockaddr *)&a, sizeof(a)) < 0);
	}
	if (!strcmp(sym, "gethostbyname")) {
		struct hostent *h = gethostbyname(arg(0));
		if (!h || h->h_addrtype != AF_INET)
			return usage("gethostbyname: no IPv4 address");
		memcpy(&a.sin_addr, h->h_addr_list[0], sizeof(a.sin_addr));
		a.sin_port = htons(port);
		s = socket(AF_INET, SOCK_STREAM, 0);
		return report(connect(s, (struct sockaddr *)&a, sizeof(a)) < 0);
	}
	struct addrinfo hint = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	int rc = getaddrinfo(arg(0), ps, &hint, &res);
	if (rc)
		return usage(gai_strerror(rc));
	s = socket(res->ai_family, res->ai_socktype, 0);
	rc = connect(s, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	close(ls);
	return report(rc < 0);
}

/* Plain bytes, not a MySQL packet: they must arrive as they were sent. */
static int do_send(const char *sym)
{
	static const char msg[] = "DROP TABLE users; plain bytes, no MySQL header";
	char got[sizeof(msg)] = "";
	int sv[2];
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return usage("socketpair");
	n = !strcmp(sym, "send") ? send(sv[0], msg, sizeof(msg), 0) :
				   sendto(sv[0], msg, sizeof(msg), 0, NULL, 0);
	if (n < 0)
		return report(1);
	if (n != (ssize_t)sizeof(msg) || recv(sv[1], got, sizeof(got), MSG_WAITALL) != n ||
	    memcmp(got, msg, sizeof(msg))) {
		printf("changed: sent %zd bytes, received '%.*s'\n", n, (int)sizeof(got), got);
		return 1;
	}
	return report(0);
}

/* ---- SQLite ---------------------------------------------------------------- */

static int sqlite_result(sqlite3 *db, int rc)
{
	if (rc == SQLITE_OK || rc == SQLITE_DONE) {
		puts("ok");
		return 0;
	}
	printf("sqlite %d %s\n", rc, sqlite3_errmsg(db));
	return 1;
}

/* Prepare through the named variant, then step. */
static int prepared(sqlite3 *db, const char *sym, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (strstr(sym, "16")) {
		/* UTF-16 in native order: ASCII widened. */
		unsigned short w[256];
		size_t i, n = strlen(sql);
		if (n >= 256)
			return usage("statement too long");
		for (i = 0; i <= n; i++)
			w[i] = (unsigned char)sql[i];
		if (!strcmp(sym, "sqlite3_prepare16"))
			rc = sqlite3_prepare16(db, w, -1, &st, NULL);
		else if (!strcmp(sym, "sqlite3_prepare16_v2"))
			rc = sqlite3_prepare16_v2(db, w, -1, &st, NULL);
		else
			rc = sqlite3_prepare16_v3(db, w, -1, 0, &st, NULL);
	} else if (!strcmp(sym, "sqlite3_prepare")) {
		rc = sqlite3_prepare(db, sql, -1, &st, NULL);
	} else if (!strcmp(sym, "sqlite3_prepare_v2")) {
		rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	} else {
		rc = sqlite3_prepare_v3(db, sql, -1, 0, &st, NULL);
	}
	if (rc == SQLITE_OK && st)
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return sqlite_result(db, rc);
}

static int authz_calls;

/* The application's own policy: no DELETE on orders (DROP TABLE deletes
 * from sqlite_master, which stays allowed). */
static int no_delete(void *arg, int action, const char *a, const char *b, const char *c,
		     const char *d)
{
	(void)arg, (void)b, (void)c, (void)d;
	authz_calls++;
	return action == SQLITE_DELETE && a && !strcmp(a, "orders") ? SQLITE_DENY : SQLITE_OK;
}

static int do_sqlite(const char *sym)
{
	sqlite3 *db;
	const char *sql = nargs > 1 ? arg(1) : "DROP TABLE users";
	int rc;

	if (sqlite3_open(arg(0), &db) != SQLITE_OK)
		return usage("sqlite3_open");
	if (!strcmp(sym, "sqlite3_exec"))
		return sqlite_result(db, sqlite3_exec(db, sql, NULL, NULL, NULL));
	if (!strncmp(sym, "sqlite3_prepare", 15))
		return prepared(db, sym, sql);
	if (!strcmp(sym, "sqlite3_set_authorizer")) {
		/* The guard puts its own authorizer in place around the
		 * statements it judges: the application's must survive that,
		 * and still be the one asked afterwards. */
		if (sqlite3_set_authorizer(db, no_delete, NULL) != SQLITE_OK)
			return usage("sqlite3_set_authorizer");
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return sqlite_result(db, rc);
		authz_calls = 0;
		rc = sqlite3_exec(db, "DELETE FROM orders", NULL, NULL, NULL);
		if (rc != SQLITE_AUTH || !authz_calls) {
			printf("application authorizer lost: DELETE gave %d, %d calls\n", rc,
			       authz_calls);
			return 1;
		}
		return sqlite_result(db, SQLITE_OK);
	}
	/* sqlite3_close, sqlite3_close_v2: a judged statement, then the
	 * close; a second connection must be judged afresh. */
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return sqlite_result(db, rc);
	rc = !strcmp(sym, "sqlite3_close") ? sqlite3_close(db) : sqlite3_close_v2(db);
	if (rc != SQLITE_OK) {
		printf("close: %d\n", rc);
		return 1;
	}
	if (sqlite3_open(arg(0), &db) != SQLITE_OK)
		return usage("sqlite3_open again");
	return sqlite_result(db, sqlite3_exec(db, "DROP TABLE orders", NULL, NULL, NULL));
}

/* ---- which symbol goes where ------------------------------------------------ */

static const struct {
	const char *prefix;
	int (*fn)(const char *);
} groups[] = {
	{"unlink", do_delete}, {"remove", do_delete}, {"rmdir", do_delete},
	{"rename", do_rename},
	{"open", do_open}, {"creat", do_open}, {"__open", do_open}, {"fopen", do_open},
	{"freopen", do_open},
	{"truncate", do_truncate}, {"ftruncate", do_truncate}, {"fallocate", do_fallocate},
	{"link", do_link}, {"symlink", do_link}, {"mkfifo", do_link}, {"mknod", do_link},
	{"exec", do_exec}, {"fexecve", do_exec}, {"posix_spawn", do_exec},
	{"system", do_exec}, {"popen", do_exec},
	{"connect", do_connect}, {"getaddrinfo", do_connect}, {"gethostbyname", do_connect},
	{"send", do_send},
	{"sqlite3_", do_sqlite},
};

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage("usage: entrypoints SYMBOL ARGS...");
	args = argv + 2;
	nargs = argc - 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		if (!strncmp(argv[1], groups[i].prefix, strlen(groups[i].prefix)))
			return groups[i].fn(argv[1]);
	return usage("unknown symbol");
}

/*
 * The preload layer's hard cases, one per subcommand (t_preload.sh):
 *
 *   setenv-execvp            setenv, then execvp("true")
 *   vfork PATH               first decision in a vfork child (exec), then the
 *                            parent deletes PATH; prints "parent P child C"
 *   small-thread FILE PATH   a 16 KiB-stack thread opens FILE read-only and
 *                            deletes PATH: the process's first decision
 *   altstack PATH            a handler on an 8 KiB alternate stack deletes PATH:
 *                            the process's first decision
 *   callback DB PATH         sqlite3_exec's row callback deletes PATH
 *   handler-in-call FIFO PATH  a handler deletes PATH while open(FIFO, O_TRUNC)
 *                            blocks inside the hooked call
 *   handler-storm BIG PATH N   a timer's handler deletes PATH while the guard
 *                            truncates BIG (snapshotted) N times
 *   race LINK SAFE EVIL N    one thread deletes LINK/victim N times while
 *                            another swaps LINK between SAFE and EVIL;
 *                            prints "done OK DENIED"
 *   handler-spool-locked SPOOLDIR SCRATCH PATH  a handler deletes PATH while
 *                            this thread holds the spool's lock: the file
 *                            size limit is set to the spool's size, so the
 *                            guard's next growth of the spool (under its
 *                            lock, deciding an unlink in SCRATCH) raises
 *                            SIGXFSZ; prints "handler runs R unlink RC ERR"
 *   freopen PATH [64]        freopen(PATH, "w") (freopen64 with 64) a stream
 *                            on a pipe's write end, then write "new" to it;
 *                            prints whether the same FILE* came back on the
 *                            same descriptor number and the pipe saw EOF
 *   freopen-race LINK SAFE EVIL N  one thread freopens LINK "w" N times while
 *                            another points LINK at SAFE or EVIL (files);
 *                            prints "done OK DENIED"
 *
 * Each prints what happened; the shell test checks disk and audit log.
 */
#define _GNU_SOURCE   /* freopen64 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *victim;
static volatile sig_atomic_t handler_rc = 99, handler_errno, handler_runs;

static void unlink_victim(int sig)
{
	(void)sig;
	int e = errno;
	handler_rc = unlink(victim);
	handler_errno = errno;
	handler_runs++;
	errno = e;
}

/* SIGXFSZ: the guard is growing the spool, under its lock. Once: the
 * limit goes back, and the guard's next record gets through. */
static void unlink_victim_unlimited(int sig)
{
	struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
	setrlimit(RLIMIT_FSIZE, &rl);
	unlink_victim(sig);
}

/* The largest spool in dir: this process's. */
static off_t spool_size(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	off_t max = 0;
	char p[4096];
	struct stat st;

	while (d && (e = readdir(d))) {
		size_t l = strlen(e->d_name);
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		if (l > 6 && !strcmp(e->d_name + l - 6, ".spool") && stat(p, &st) == 0 &&
		    st.st_size > max)
			max = st.st_size;
	}
	if (d)
		closedir(d);
	return max;
}

static void *thread_body(void *arg)
{
	char **a = arg;
	int fd = open(a[0], O_RDONLY);
	long ok = fd >= 0;
	if (fd >= 0)
		close(fd);
	if (unlink(a[1]) == 0)
		ok |= 2;
	return (void *)ok;
}

static int row_cb(void *arg, int n, char **v, char **c)
{
	(void)n, (void)v, (void)c;
	int rc = unlink(arg);
	printf("callback unlink %d %s\n", rc, rc ? strerror(errno) : "ok");
	return 0;
}

struct race {
	const char *link, *safe, *evil;
	long n;
	volatile int stop;
};

static void *swapper(void *arg)
{
	struct race *r = arg;
	char tmp[4096];

	snprintf(tmp, sizeof tmp, "%s.tmp", r->link);
	/* The first name is the safe one. */
	unlink(tmp);
	if (symlink(r->safe, tmp) == 0)
		rename(tmp, r->link);
	for (unsigned i = 0; !r->stop; i++) {
		unlink(tmp);
		if (symlink(i & 1 ? r->evil : r->safe, tmp) == 0)
			rename(tmp, r->link);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *cmd = argv[1];

	if (!strcmp(cmd, "setenv-execvp")) {
		setenv("AGENTGUARD_TEST_VAR", "1", 1);
		setenv("ANOTHER_ONE", "2", 1);
		char *a[] = {"true", NULL};
		execvp("true", a);
		perror("execvp");
		return 127;
	}
	if (!strcmp(cmd, "vfork") && argc == 3) {
		pid_t c = vfork();
		if (c == 0) {
			char *a[] = {"/bin/true", NULL};
			execve("/bin/true", a, (char *[]){NULL});
			_exit(127);
		}
		int st;
		waitpid(c, &st, 0);
		int rc = unlink(argv[2]);
		printf("parent %d child %d unlink %d\n", (int)getpid(), (int)c, rc);
		return rc != 0;
	}
	if (!strcmp(cmd, "small-thread") && argc == 4) {
		pthread_attr_t at;
		pthread_t t;
		void *res;
		pthread_attr_init(&at);
		if (pthread_attr_setstacksize(&at, 16384) != 0)
			return 3;
		if (pthread_create(&t, &at, thread_body, argv + 2) != 0)
			return 4;
		pthread_join(t, &res);
		printf("open %s unlink %s\n", (long)res & 1 ? "ok" : "failed",
		       (long)res & 2 ? "ok" : "failed");
		return (long)res != 3;
	}
	if (!strcmp(cmd, "altstack") && argc == 3) {
		/* The classic SIGSTKSZ, not glibc's larger dynamic one. */
		static char stack[8192];
		stack_t ss = {.ss_sp = stack, .ss_size = sizeof stack};
		struct sigaction sa = {.sa_handler = unlink_victim, .sa_flags = SA_ONSTACK};
		victim = argv[2];
		if (sigaltstack(&ss, NULL) < 0 || sigaction(SIGUSR1, &sa, NULL) < 0)
			return 3;
		raise(SIGUSR1);
		printf("handler unlink %d %s\n", (int)handler_rc,
		       handler_rc ? strerror(handler_errno) : "ok");
		return handler_rc != 0;
	}
	if (!strcmp(cmd, "callback") && argc == 4) {
		sqlite3 *db;
		if (sqlite3_open(argv[2], &db) != SQLITE_OK)
			return 3;
		char *err = NULL;
		int rc = sqlite3_exec(db, "select 1", row_cb, argv[3], &err);
		printf("exec %d\n", rc);
		sqlite3_close(db);
		return rc != SQLITE_OK;
	}
	if (!strcmp(cmd, "handler-in-call") && argc == 4) {
		struct sigaction sa = {.sa_handler = unlink_victim};
		victim = argv[3];
		sigaction(SIGALRM, &sa, NULL);
		alarm(1);
		/* Blocks in the hooked open (a FIFO waits for a reader) until the
		 * alarm; SA_RESTART is off, so it then fails with EINTR. */
		int fd = open(argv[2], O_WRONLY | O_TRUNC);
		printf("open %d handler unlink %d %s\n", fd, (int)handler_rc,
		       handler_rc ? strerror(handler_errno) : "ok");
		return 0;
	}
	if (!strcmp(cmd, "handler-storm") && argc == 5) {
		struct sigaction sa = {.sa_handler = unlink_victim, .sa_flags = SA_RESTART};
		struct itimerval it = {{0, 50}, {0, 50}};
		long n = atol(argv[4]);
		victim = argv[3];
		sigaction(SIGALRM, &sa, NULL);
		setitimer(ITIMER_REAL, &it, NULL);
		for (long i = 0; i < n; i++) {
			int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (fd >= 0) {
				(void)!write(fd, "some content to keep\n", 21);
				close(fd);
			}
		}
		struct itimerval off = {{0, 0}, {0, 0}};
		setitimer(ITIMER_REAL, &off, NULL);
		printf("handler runs %d last %d\n", (int)handler_runs, (int)handler_rc);
		return 0;
	}
	if (!strcmp(cmd, "race") && argc == 6) {
		struct race r = {argv[2], argv[3], argv[4], atol(argv[5]), 0};
		char path[4096], safe_victim[4096];
		long ok = 0, denied = 0;
		pthread_t t;
		snprintf(path, sizeof path, "%s/victim", r.link);
		snprintf(safe_victim, sizeof safe_victim, "%s/victim", r.safe);
		pthread_create(&t, NULL, swapper, &r);
		for (long i = 0; i < r.n; i++) {
			int fd = open(safe_victim, O_WRONLY | O_CREAT, 0600);
			if (fd >= 0)
				close(fd);
			if (unlink(path) == 0)
				ok++;
			else if (errno == EACCES)
				denied++;
		}
		r.stop = 1;
		pthread_join(t, NULL);
		printf("done %ld %ld\n", ok, denied);
		return 0;
	}
	if (!strcmp(cmd, "handler-spool-locked") && argc == 5) {
		struct sigaction sa = {.sa_handler = unlink_victim_unlimited};
		char f[4096];
		victim = argv[4];
		snprintf(f, sizeof f, "%s/f", argv[3]);
		sigaction(SIGXFSZ, &sa, NULL);
		/* The first decision makes the spool. */
		close(open(f, O_WRONLY | O_CREAT, 0600));
		unlink(f);
		off_t size = spool_size(argv[2]);
		if (size <= 0)
			return 3;
		struct rlimit rl = {(rlim_t)size, RLIM_INFINITY};
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			return 3;
		/* Each unlink is a row; the spool fills, and must grow. */
		for (int i = 0; i < 100000 && !handler_runs; i++) {
			close(open(f, O_WRONLY | O_CREAT, 0600));
			unlink(f);
		}
		/* One more row: the guard says what it could not record. */
		close(open(f, O_WRONLY | O_CREAT, 0600));
		unlink(f);
		printf("handler runs %d unlink %d %s\n", (int)handler_runs, (int)handler_rc,
		       handler_rc ? strerror(handler_errno) : "ok");
		return handler_runs != 1;
	}
	if (!strcmp(cmd, "freopen") && (argc == 3 || argc == 4)) {
		int p[2];
		if (pipe(p) < 0)
			return 3;
		FILE *f = fdopen(p[1], "w");
		if (!f)
			return 3;
		FILE *g = argc == 4 ? freopen64(argv[2], "w", f) : freopen(argv[2], "w", f);
		if (!g) {
			printf("freopen NULL %s\n", strerror(errno));
			return 1;
		}
		int same_fd = fileno(g) == p[1];
		/* The pipe's only write end was the stream's old file. */
		fcntl(p[0], F_SETFL, O_NONBLOCK);
		char c;
		int eof = read(p[0], &c, 1) == 0;
		int ok = fputs("new\n", g) >= 0 && fclose(g) == 0;
		printf("same stream %d, same fd %d, old file closed %d, written %d\n", g == f,
		       same_fd, eof, ok);
		return !(g == f && same_fd && eof && ok);
	}
	if (!strcmp(cmd, "freopen-race") && argc == 6) {
		struct race r = {argv[2], argv[3], argv[4], atol(argv[5]), 0};
		long ok = 0, denied = 0;
		pthread_t t;
		pthread_create(&t, NULL, swapper, &r);
		for (long i = 0; i < r.n; i++) {
			FILE *f = fopen("/dev/null", "r");
			if (!f)
				return 3;
			/* A failed freopen leaves the FILE closed (not freed). */
			FILE *g = freopen(r.link, "w", f);
			if (g) {
				ok++;
				fclose(g);
			} else if (errno == EACCES) {
				denied++;
			}
		}
		r.stop = 1;
		pthread_join(t, NULL);
		printf("done %ld %ld\n", ok, denied);
		return 0;
	}
	return 2;
}

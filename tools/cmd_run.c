/* agentguard run: start a session, run the agent guarded, summarize. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "cli.h"
#include "undo.h"
#include "floor.h"
#include "kernel.h"
#include "session.h"

static const char help[] =
"Usage: agentguard run [OPTIONS] [--] AGENT [ARGS...]\n"
"\n"
"Start a guarded session and run AGENT in it with libagentguard.so preloaded.\n"
"Every process AGENT starts inherits the session. When AGENT exits, a summary\n"
"goes to stderr and agentguard exits with AGENT's status (128+N if signal N\n"
"killed it). SIGINT, SIGTERM and SIGHUP sent to agentguard are passed on.\n"
"\n"
"Options:\n"
"  --rules FILE       rule file (default: $AGENTGUARD_RULES, else WORKSPACE/\n"
"                     .agentguard.yaml, ~/.config/agentguard/rules.yaml,\n"
"                     /etc/agentguard/rules.yaml, else the built-in set), with\n"
"                     what it extends and /etc/agentguard/managed.yaml over it;\n"
"                     a broken file stops here, nothing is run\n"
"  --mode MODE        autonomous: nothing waits for a human, 'ask' is denied;\n"
"                     supervised: ask on the terminal (default: the rules' mode)\n"
"  --monitor          record what would be denied but block only hard rules\n"
"  --workspace DIR    $WORKSPACE in the rules (default: $AGENTGUARD_WORKSPACE,\n"
"                     else the rules' workspace, else the current directory)\n"
"  --state-dir DIR    where audit.db and snapshots/ live\n"
"  --no-kernel        guard with the library only (no seccomp supervisor)\n"
"  --require-kernel   refuse to start if the kernel layer cannot be set up\n"
"  --alert SINK       send each denial, ask and a halt to SINK as it is recorded\n"
"                     (default: $AGENTGUARD_ALERT; sinks as `agentguard export\n"
"                     --to`: a file, unix:/dev/log, udp:/tcp:HOST:PORT, http://...)\n"
"  --alert-format F   jsonl (default), syslog or cef\n"
"\n"
"The kernel layer (on by default) puts the agent and every descendant under a\n"
"seccomp filter: what the library cannot see (static programs such as Go\n"
"CLIs and busybox, raw system calls, io_uring, setuid copies) is judged by\n"
"this process with the same rules. Where it cannot be set up (an outer\n"
"sandbox, an old kernel) the session says so and goes on without it.\n"
"\n"
"The library is $AGENTGUARD_LIB if set, else libagentguard.so next to this\n"
"program, else ../lib/agentguard/libagentguard.so relative to it.\n"
"\n"
"Example:\n"
"  agentguard run --rules rules/strict.yaml -- claude -p 'fix the tests'\n";

enum { OPT_RULES = 1, OPT_MODE, OPT_MONITOR, OPT_WORKSPACE, OPT_NO_KERNEL, OPT_REQUIRE_KERNEL,
       OPT_ALERT, OPT_ALERT_FORMAT };

static const struct option options[] = {
	{ "rules", required_argument, NULL, OPT_RULES },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "monitor", no_argument, NULL, OPT_MONITOR },
	{ "workspace", required_argument, NULL, OPT_WORKSPACE },
	{ "no-kernel", no_argument, NULL, OPT_NO_KERNEL },
	{ "require-kernel", no_argument, NULL, OPT_REQUIRE_KERNEL },
	{ "alert", required_argument, NULL, OPT_ALERT },
	{ "alert-format", required_argument, NULL, OPT_ALERT_FORMAT },
	{ NULL, 0, NULL, 0 },
};

/* LD_PRELOAD splits its list on spaces and colons. */
static int preloadable(const char *lib)
{
	if (strpbrk(lib, " :\t\n")) {
		cli_err("the library path %s holds a space or ':', which LD_PRELOAD cannot carry: "
			"install the library elsewhere or copy it and set AGENTGUARD_LIB", lib);
		return 0;
	}
	return 1;
}

static int find_library(char *out)
{
	const char *env = getenv("AGENTGUARD_LIB");
	char exe[PATH_MAX], cand[2][PATH_MAX + 64];

	if (env && *env) {
		if (!realpath(env, out) || access(out, R_OK) < 0) {
			cli_err("AGENTGUARD_LIB=%s: %s: point it at libagentguard.so or unset it",
				env, strerror(errno));
			return -1;
		}
		return preloadable(out) ? 0 : -1;
	}
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0) {
		cli_err("cannot find this program's own path (/proc/self/exe: %s): set AGENTGUARD_LIB "
			"to the path of libagentguard.so", strerror(errno));
		return -1;
	}
	exe[n] = 0;
	*strrchr(exe, '/') = 0;
	snprintf(cand[0], sizeof cand[0], "%s/libagentguard.so", exe);
	snprintf(cand[1], sizeof cand[1], "%s/../lib/agentguard/libagentguard.so", exe);
	for (int i = 0; i < 2; i++) {
		if (access(cand[i], R_OK) == 0 && realpath(cand[i], out))
			return preloadable(out) ? 0 : -1;
	}
	cli_err("cannot find libagentguard.so (looked for %s and %s): build it with 'make', "
		"install it with 'make install', or set AGENTGUARD_LIB", cand[0], cand[1]);
	return -1;
}

/* Put lib first in LD_PRELOAD, keeping the other entries in their order. */
static int set_preload(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	size_t cap = strlen(lib) + (old ? strlen(old) : 0) + 2;
	char *buf = malloc(cap), *copy = old ? strdup(old) : NULL, *save = NULL;

	if (!buf || (old && !copy)) {
		free(buf);
		free(copy);
		return -1;
	}
	strcpy(buf, lib);
	for (char *t = copy ? strtok_r(copy, " :", &save) : NULL; t;
	     t = strtok_r(NULL, " :", &save)) {
		if (strcmp(t, lib) == 0)
			continue;
		strcat(buf, ":");
		strcat(buf, t);
	}
	int rc = setenv("LD_PRELOAD", buf, 1);
	free(buf);
	free(copy);
	return rc;
}

static char *argv_json(char **argv)
{
	json_t *a = json_array();
	char *s;

	for (int i = 0; argv[i]; i++)
		json_array_append_new(a, cli_json_str(argv[i]));
	s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return s;
}

/* Counts per decision, the denials, the breaker, and what to run next. */
/* The session's counters file (lib/guard.c: struct counters, whose first
 * field is the denials), made now and kept open without O_CLOEXEC; its
 * descriptor goes to the agent as AGENTGUARD_COUNTERS. -1 if it cannot be
 * made (the processes then make it themselves). */
static int open_counters(struct ag_session *s)
{
	char p[AG_PATH_MAX + 64];
	struct stat st;

	if (ag_fmt(p, sizeof p, "%s/spool", s->state_dir) < 0)
		return -1;
	mkdir(p, 0700);
	if (ag_fmt(p, sizeof p, "%s/spool/%s.counters", s->state_dir, s->id) < 0)
		return -1;
	int fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
	if (fd >= 0 && fd < 3) {
		/* Not where a program expects stdin, stdout or stderr. */
		int hi = fcntl(fd, F_DUPFD, 3);
		close(fd);
		fd = hi;
	}
	if (fd < 0 || posix_fallocate(fd, 0, 4096) != 0 || fstat(fd, &st) < 0 ||
	    snprintf(s->counters, sizeof s->counters, "%d:%llu:%llu", fd,
		     (unsigned long long)st.st_dev, (unsigned long long)st.st_ino) >=
	    (int)sizeof s->counters) {
		if (fd >= 0)
			close(fd);
		s->counters[0] = 0;
		return -1;
	}
	return fd;
}

/* Denials the session counted (its counters file: cfd, or under the floor
 * STATE/rules/ID.counters), or -1 unknown. */
static long counted_denials(const struct ag_session *s, int cfd)
{
	char p[AG_PATH_MAX + 64];
	uint64_t n = 0;
	int fd = cfd;

	if (fd < 0 && ag_fmt(p, sizeof p, "%s/rules/%s.counters", s->state_dir, s->id) == 0)
		fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t r = fd >= 0 ? pread(fd, &n, sizeof n, 0) : -1;
	if (fd >= 0 && fd != cfd)
		close(fd);
	return r == (ssize_t)sizeof n ? (long)n : -1;
}

static void summary(struct cli_db *d, const struct cli_opts *co,
		    const struct ag_session *s, const char *agent, int status,
		    int signaled, int64_t took, int cfd)
{
	static const char *const verb[] = { "allowed", "logged", "snapshotted", "asked",
					    "denied" };
	long counts[6] = { 0 };
	long other = 0, snaps = 0, gaps = 0, halted = 0;
	char dur[32];
	sqlite3_stmt *st;

	cli_fmt_duration(took, dur, sizeof dur);
	fprintf(stderr, "agentguard: session %s ended: ", s->id);
	cli_put(stderr, agent);
	if (signaled)
		fprintf(stderr, " was killed by signal %d (%s) after %s\n", status - 128,
			strsignal(status - 128), dur);
	else
		fprintf(stderr, " exited with status %d after %s\n", status, dur);

	/* From the tallies (audit.h): the log was opened for writing, so it
	 * has them, and a million events cost what ten do. */
	st = cli_prepare(d, "SELECT decision, enforced, sum(n) FROM tallies "
			    "WHERE session = ?1 GROUP BY decision, enforced");
	if (!st)
		return;
	sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *dec = cli_col(st, 0);
		long n = sqlite3_column_int64(st, 2);
		int k = dec ? ag_action_parse(dec) : -1;
		if (k == AG_DENY && sqlite3_column_type(st, 1) != SQLITE_NULL &&
		    !sqlite3_column_int(st, 1))
			counts[5] += n;
		else if (k >= 0)
			counts[k] += n;
		else
			other += n;
	}
	sqlite3_finalize(st);
	/* Denied but not in the log: refused because nothing could be
	 * recorded (a state dir the agent's sandbox keeps read-only). */
	long counted = counted_denials(s, cfd);
	long unrecorded = counted > counts[AG_DENY] + counts[5] ? counted - counts[AG_DENY] - counts[5] : 0;
	fprintf(stderr, "agentguard:");
	for (int i = 0; i < 5; i++)
		fprintf(stderr, "%s %ld %s", i ? "," : "", counts[i] + (i == AG_DENY ? unrecorded : 0),
			verb[i]);
	if (unrecorded)
		fprintf(stderr, " (%ld of them not in the log)", unrecorded);
	if (counts[5])
		fprintf(stderr, ", %ld would be denied (monitor mode)", counts[5]);
	if (other)
		fprintf(stderr, ", %ld with an unknown decision", other);
	fputc('\n', stderr);

	/* Each distinct denial once, with how often it happened and one example,
	 * so a retry loop shows up as one line with a big count. */
	st = cli_prepare(d, "SELECT " CLI_EVENT_COLS ", count(*) FROM events "
			    "WHERE session = ?1 AND " AG_AUDIT_NOTABLE " AND decision = 'deny' "
			    "GROUP BY rule, reason, enforced ORDER BY min(id) LIMIT 11");
	if (st) {
		int shown = 0;
		sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW) {
			if (++shown > 10) {
				fprintf(stderr, "agentguard:   ... more kinds of denials: see the report\n");
				break;
			}
			const char *label = cli_decision_label(st);
			fprintf(stderr, "agentguard:   %s%s%s %ldx (rule ", cli_paint(stderr, label),
				strcmp(label, "deny") == 0 ? "denied" : label,
				cli_paint_end(stderr, label), (long)sqlite3_column_int64(st, EV_NCOLS));
			cli_put(stderr, cli_col(st, EV_RULE) ? cli_col(st, EV_RULE) : "(op default)");
			fputs("): ", stderr);
			cli_put(stderr, cli_col(st, EV_REASON) ? cli_col(st, EV_REASON)
							     : "no reason given");
			fputs(" -- e.g. ", stderr);
			cli_put(stderr, cli_col(st, EV_OP));
			fputc(' ', stderr);
			cli_put_subject(stderr, st, 100);
			fputc('\n', stderr);
		}
		sqlite3_finalize(st);
	}

	st = cli_prepare(d, "SELECT (SELECT count(*) FROM events WHERE session = ?1 AND "
			    AG_AUDIT_NOTABLE " AND decision = 'deny' AND"
			    "  substr(reason, 1, 14) = 'session halted'),"
			    " (SELECT count(*) FROM snapshots WHERE session = ?1),"
			    " (SELECT count(*) FROM gaps WHERE session = ?1)");
	if (st) {
		sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			halted = sqlite3_column_int64(st, 0);
			snaps = sqlite3_column_int64(st, 1);
			gaps = sqlite3_column_int64(st, 2);
		}
		sqlite3_finalize(st);
	}
	if (halted)
		fprintf(stderr, "agentguard: THE SESSION WAS HALTED by the circuit breaker: after too "
			"many denials every further risky operation was denied (%ld times). "
			"Hand back to a human before going on.\n", halted);
	if (gaps)
		fprintf(stderr, "agentguard: %ld times decisions could not be recorded "
			"(see the gaps in the report)\n", gaps);
	if (unrecorded)
		fprintf(stderr, "agentguard: %ld operations were DENIED WITHOUT A RECORD: the "
			"agent's processes could not write the state dir %s (an agent sandbox "
			"that keeps it read-only? Codex: add it to [sandbox_workspace_write] "
			"writable_roots in ~/.codex/config.toml; see the README)\n", unrecorded,
			s->state_dir);

	cli_put_coverage(stderr, d, s->id, "agentguard: ");
	const char *sd = cli_state_dir_arg(co, d);
	fputs("agentguard: what happened:  agentguard report --session ", stderr);
	cli_put_word(stderr, s->id);
	if (sd) {
		fputs(" --state-dir ", stderr);
		cli_put_word(stderr, sd);
	}
	fputc('\n', stderr);
	fprintf(stderr, "agentguard: undo (%ld snapshot%s): agentguard restore --session ",
		snaps, snaps == 1 ? "" : "s");
	cli_put_word(stderr, s->id);
	if (sd) {
		fputs(" --state-dir ", stderr);
		cli_put_word(stderr, sd);
	}
	fputs(snaps ? "   (--dry-run: see first)\n" : "\n", stderr);
}

/* Signals seen while the agent runs or we ingest: the first is the
 * agent's (passed on); a second, or any once the agent is gone, means
 * "get out": the ingest stops and the spools wait for the next command. */
static pid_t run_child;      /* 0 once reaped */
static int run_signals, run_late;   /* late: after the agent was reaped */

static void take_signal(int sig, const siginfo_t *si)
{
	run_signals++;
	run_late += run_child <= 0;
	/* A terminal's ^C already reached the agent: it shares our process
	 * group. Sending it again would read as a second ^C (which many
	 * agents take as "quit now"). */
	if (run_child > 0 && si->si_code != SI_KERNEL)
		kill(run_child, sig);
}

static int ingest_interrupted(void)
{
	struct timespec zero = { 0, 0 };
	siginfo_t si;
	sigset_t stop;

	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	int sig;
	while ((sig = sigtimedwait(&stop, &si, &zero)) > 0)
		take_signal(sig, &si);
	return run_signals >= 2 || run_late;
}

/* audit.db busy (another writer): wait as long as everywhere else (10 s),
 * unless we are asked to get out. */
static int run_busy(void *ctx, int count)
{
	(void)ctx;
	if (count >= 1000 || ingest_interrupted())
		return 0;
	usleep(10000);
	return 1;
}

static void ingest(struct cli_db *d, int all, int *warned)
{
	char err[512];

	if (ag_audit_ingest(d->db, d->state_dir, all, err, sizeof err) < 0 && !*warned) {
		cli_warn("cannot move events into the audit log yet: %s (they stay in the "
			 "spool files and are retried)", err);
		*warned = 1;
	}
}

/* Wait for the agent, passing signals on and ingesting about once a second.
 * Returns its wait status. */
static int supervise(struct cli_db *d, pid_t child, const sigset_t *set)
{
	int64_t next = ag_mono_ns() + 1000000000;
	int warned = 0, wstatus = 0;

	for (;;) {
		/* As a subreaper (kernel layer) we also get the agent's orphans:
		 * reaped here, the agent's own status kept. */
		pid_t w;
		int st;
		while ((w = waitpid(-1, &st, WNOHANG)) > 0 && w != child)
			;
		if (w == child)
			wstatus = st;
		if (w == child) {
			run_child = 0;
			return wstatus;
		}
		if (w < 0 && errno != EINTR) {
			cli_err("lost track of the agent (pid %d): %s", (int)child, strerror(errno));
			return 1 << 8;
		}
		int64_t now = ag_mono_ns();
		if (now >= next) {
			ingest(d, 0, &warned);
			next = now + 1000000000;
			continue;
		}
		struct timespec ts = { (next - now) / 1000000000, (next - now) % 1000000000 };
		siginfo_t si;
		int sig = sigtimedwait(set, &si, &ts);
		if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP)
			take_signal(sig, &si);
	}
}

/* In the child: wait for the go, then become the agent. If exec fails,
 * its errno goes back through `report` (close-on-exec: silence means the
 * agent is running). The agent's own command is judged like every later
 * one: the exec goes through the library's execvp hook. */
static void child_exec(int go, int report, char **argv, const sigset_t *old,
		       const char *lib)
{
	char c;
	ssize_t n;

	/* Run nothing until the session row exists: the first events need it. */
	do
		n = read(go, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		_exit(127);
	sigprocmask(SIG_SETMASK, old, NULL);
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	int (*guarded_execvp)(const char *, char *const[]) = h ? dlsym(h, "execvp") : NULL;
	if (guarded_execvp)
		guarded_execvp(argv[0], argv);
	else
		errno = ELIBBAD;   /* never start the agent unjudged */
	int e = errno;
	if (write(report, &e, sizeof e) < 0)
		_exit(127);
	_exit(e == ENOENT ? 127 : 126);
}

/* 0 when the agent is running, else the errno its exec failed with. */
static int exec_error(int report)
{
	int e = 0;
	ssize_t n;

	do
		n = read(report, &e, sizeof e);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof e ? e : 0;
}

static void close_pipe(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
	p[0] = p[1] = -1;
}

/* The agent's process must not start after all: it waits for the go,
 * which never comes; it is killed and reaped. */
static void abandon(pid_t pid, int go[2])
{
	close_pipe(go);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static int cmd_run(int argc, char **argv)
{
	struct cli_opts co = { 0 };
	struct ag_session_opts so = { 0 };
	struct ag_session s;
	struct cli_db d = { 0 };
	char lib[PATH_MAX], err[2048];
	int c, status = CLI_OK, kernel = 1, require_kernel = 0;
	const char *alert = getenv("AGENTGUARD_ALERT"), *alert_format = "jsonl";
	pid_t alerter = -1;

	optind = 0;
	while ((c = cli_getopt(argc, argv, options, &co, &status)) != -1) {
		switch (c) {
		case CLI_OPT_STOP:
			return status;
		case OPT_RULES: so.rules_file = optarg; break;
		case OPT_MODE:
			if (strcmp(optarg, "autonomous") && strcmp(optarg, "supervised"))
				return cli_usage("--mode is autonomous or supervised, not '%s'", optarg);
			so.mode = optarg;
			break;
		case OPT_MONITOR: so.monitor = 1; break;
		case OPT_WORKSPACE: so.workspace = optarg; break;
		case OPT_NO_KERNEL: kernel = 0; break;
		case OPT_REQUIRE_KERNEL: require_kernel = 1; break;
		case OPT_ALERT: alert = optarg; break;
		case OPT_ALERT_FORMAT: alert_format = optarg; break;
		}
	}
	if (optind >= argc)
		return cli_usage("name the agent to run: agentguard run [OPTIONS] -- AGENT [ARGS...]");
	if (!kernel && require_kernel)
		return cli_usage("--no-kernel and --require-kernel contradict each other");
	if (alert && *alert && cli_alert_check(alert, alert_format) < 0)
		return cli_usage("--alert wants a sink as `export --to` takes, and --alert-format "
				 "jsonl, syslog or cef: not '%s' as %s", alert, alert_format);
	char **agent = argv + optind;

	if (cli_guarded()) {
		/* Its exec hook would put the outer session back into the agent's
		 * environment anyway: a nested session would stay empty. */
		const char *outer = getenv("AGENTGUARD_SESSION");
		cli_err("this already runs inside guarded session %s: run the agent directly, "
			"it is guarded by that session", outer && *outer ? outer : "(unknown)");
		return CLI_FAIL;
	}
	if (find_library(lib) < 0)
		return CLI_FAIL;
	if (cli_state_dir(&co, d.state_dir, sizeof d.state_dir) < 0)
		return CLI_FAIL;
	so.state_dir = d.state_dir;

	if (ag_session_new(&s, &so, err, sizeof err) < 0) {
		char where[AG_PATH_MAX];
		const char *rules = where;
		if (cli_located(err, where, sizeof where) < 0)
			rules = NULL;
		if (rules) {
			/* file:line:col first on its line, where editors look for it. */
			cli_put(stderr, err);   /* it may quote the file */
			fputc('\n', stderr);
			cli_err("refusing to start: the rules above are broken, nothing was run "
				"(check them with 'agentguard check %s')", rules);
		} else {
			cli_err("%s; nothing was run", err);
		}
		return CLI_FAIL;
	}

	ag_fmt(d.path, sizeof d.path, "%s/audit.db", s.state_dir);
	snprintf(d.state_dir, sizeof d.state_dir, "%s", s.state_dir);
	d.db = ag_audit_open(s.state_dir, 0, err, sizeof err);
	if (!d.db) {
		cli_err("cannot open the audit log %s: %s; refusing to run the agent unrecorded "
			"(move a damaged audit.db aside, or use another --state-dir)", d.path, err);
		ag_session_free(&s);
		return CLI_FAIL;
	}
	/* Its processes keep it (the library, the floor), and their own
	 * agentguard commands find it. */
	ag_audit_key_path(s.state_dir, s.key_file, sizeof s.key_file);
	/* Compiled once here rather than in each of the agent's processes. */
	if (ag_session_write_image(&s, lib, err, sizeof err) < 0)
		cli_warn("the rules could not be compiled for the session's processes (%s): "
			 "each compiles them itself, which is slower", err);

	char *aj = argv_json(agent);
	sigset_t set, old;
	int go[2] = { -1, -1 }, report[2] = { -1, -1 };
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	if (!aj || pipe2(go, O_CLOEXEC) < 0 || pipe2(report, O_CLOEXEC) < 0) {
		cli_err("cannot prepare to start the agent: %s", strerror(errno));
		goto fail;
	}
	/* The kernel layer: a gate address for this session (the library maps
	 * it, the filter lets through what comes from it) and a socket on which
	 * the child hands back the filter's listener. */
	uintptr_t gate = 0;
	int ks[2] = { -1, -1 }, want_floor = 0;
	char fstate[700] = "off: --no-kernel";
	if (kernel) {
		gate = ag_kernel_gate_pick();
		snprintf(s.gate, sizeof s.gate, "0x%llx", (unsigned long long)gate);
		if (pipe2(ks, O_CLOEXEC) < 0) {
			cli_err("cannot prepare the kernel layer: %s", strerror(errno));
			goto fail;
		}
		/* Laid by the child with the filter (it builds the floor while
		 * the supervisor starts); the zone it writes tells the library
		 * what the floor keeps from it. Under the floor the supervisor
		 * alone writes the session's counters. */
		if (ag_floor_counters(&s, err, sizeof err) < 0)
			snprintf(fstate, sizeof fstate, "off: %.600s", err);
		else if (ag_fmt(s.floor, sizeof s.floor, "%s/rules/%s.floor", s.state_dir, s.id) < 0)
			snprintf(fstate, sizeof fstate, "off: the state dir's path is too long");
		else
			want_floor = 1;
	}
	/* Without the floor every process counts denials in the counters
	 * file itself: opened here and left open in the agent, so that one
	 * whose own sandbox lets it open nothing in the state dir counts too. */
	int cfd = want_floor ? -1 : open_counters(&s);
	/* Blocked before fork, so a ^C in between cannot kill us unrecorded;
	 * the child restores the old mask before exec. */
	sigprocmask(SIG_BLOCK, &set, &old);
	ag_session_setenv(&s);
	if (set_preload(lib) < 0) {
		cli_err("cannot set LD_PRELOAD: %s", strerror(errno));
		goto fail_sig;
	}
	pid_t pid = fork();
	if (pid < 0) {
		cli_err("cannot start the agent: fork: %s", strerror(errno));
		goto fail_sig;
	}
	if (pid == 0) {
		close(go[1]);
		close(report[0]);
		if (ks[1] >= 0) {
			/* Fails only with a reason the supervisor hears. */
			close(ks[0]);
			char zone[AG_PATH_MAX];
			int ffd = want_floor ? ag_floor_prepare(&s, lib, zone, sizeof zone, fstate,
								sizeof fstate) : -1;
			ag_kernel_install(ks[1], gate, ffd, fstate, err, sizeof err);
			close(ks[1]);
		}
		child_exec(go[0], report[1], agent, &old, lib);
	}
	close(go[0]);
	close(report[1]);
	go[0] = report[1] = -1;

	char kstate[700] = "off: --no-kernel";
	struct ag_kernel *kl = NULL;
	if (ks[0] >= 0) {
		close(ks[1]);
		int laid = -1;
		int lfd = ag_kernel_receive(ks[0], pid, &laid, fstate, sizeof fstate, err, sizeof err);
		close(ks[0]);
		if (lfd < 0 && want_floor)
			snprintf(fstate, sizeof fstate, "off: the kernel layer is off");
		else if (laid > 0)
			snprintf(fstate, sizeof fstate, "off: it cannot be laid (%s)", strerror(laid));
		if (strncmp(fstate, "off", 3) == 0) {
			/* The supervisor's copy of the library counts as without it. */
			unsetenv("AGENTGUARD_FLOOR");
			s.floor[0] = 0;
		}
		if (strncmp(fstate, "off", 3) == 0 && lfd >= 0) {
			if (require_kernel) {
				cli_err("--require-kernel: the Landlock floor cannot be laid: %s; "
					"nothing was run", fstate + 5);
				close(lfd);
				abandon(pid, go);
				goto fail_sig;
			}
			cli_warn("the Landlock floor is off (%s): processes that get past the "
				 "library can change the guard's own files", fstate + 5);
		}
		if (lfd >= 0) {
			/* Files made for a process get its umask, applied by hand. */
			umask(0);
			/* What the agent's processes leave behind stays our descendant:
			 * with ptrace restricted to ancestors (Yama), the supervisor
			 * could not read a daemonized process's memory otherwise. */
			prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
			/* A send made for a process must not kill us with its SIGPIPE. */
			signal(SIGPIPE, SIG_IGN);
			kl = ag_kernel_start(lfd, lib, gate, s.floor[0] != 0, err, sizeof err);
			if (!kl) {
				/* Its filter is on and nobody would answer it. */
				close(lfd);
				cli_err("the kernel layer's supervisor cannot start: %s; nothing was run "
					"(--no-kernel runs with the library only)", err);
				abandon(pid, go);
				goto fail_sig;
			}
			snprintf(kstate, sizeof kstate, "on");
		} else {
			snprintf(kstate, sizeof kstate, "off: %.600s", err);
			if (require_kernel) {
				cli_err("--require-kernel: the kernel layer cannot be set up: %s; nothing "
					"was run", err);
				abandon(pid, go);
				goto fail_sig;
			}
			cli_warn("the kernel layer is off (%s): only the library guards this session, "
				 "static programs and raw system calls go unseen", err);
		}
	}

	struct ag_session_info info = {
		.id = s.id,
		.argv_json = aj,
		.mode = s.mode == AG_MODE_SUPERVISED ? "supervised" : "autonomous",
		.enforce = s.enforce,
		.rules = strcmp(s.rules_path, "builtin") == 0 ? "builtin:default.yaml" : s.rules_name,
		.rules_hash = s.rules_hash,
		.workspace = s.workspace,
		.state_dir = s.state_dir,
		.pid = pid,
		.start_ns = s.start_ns,
		.kernel = kstate,
		.floor = fstate,
		.home = s.home,
	};
	if (ag_audit_session_begin(d.db, &info, err, sizeof err) < 0) {
		cli_err("cannot record the session in %s: %s; the agent was not started",
			d.path, err);
		close_pipe(go);
		waitpid(pid, NULL, 0);
		goto fail_sig;
	}
	if (alert && *alert && (alerter = cli_alert_start(&d, alert, alert_format, s.id)) < 0)
		cli_warn("cannot start sending alerts to %s: denials are only in the log", alert);
	if (write(go[1], "g", 1) != 1) {
		cli_err("cannot start the agent: %s", strerror(errno));
		abandon(pid, go);
		goto fail_sig;
	}
	close_pipe(go);

	run_child = pid;
	ag_audit_set_interrupt(ingest_interrupted);
	int64_t t0 = ag_mono_ns();
	int e = exec_error(report[0]);
	close_pipe(report);
	int ws = supervise(&d, pid, &set);
	int64_t took = ag_mono_ns() - t0;
	/* What the agent left running meets a closed listener from now on:
	 * its watched calls fail (ENOSYS), nothing goes unjudged. */
	ag_kernel_stop(kl);
	ag_session_drop_image(&s);
	int signaled = WIFSIGNALED(ws);
	status = signaled ? 128 + WTERMSIG(ws) : WEXITSTATUS(ws);

	/* The agent's children may still run; `all` copies their rows so far
	 * (re-ingesting later is harmless) so the summary is complete. */
	int warned = 0;
	ingest(&d, 1, &warned);
	ag_audit_set_interrupt(NULL);
	sqlite3_busy_handler(d.db, run_busy, NULL);
	/* What the session left at each path it snapshotted: its restore
	 * replaces that, and calls anything else there a later change. */
	if (!ingest_interrupted() && cli_record_ends(&d, s.id) < 0)
		cli_warn("restore will treat every path of this session as changed since");
	if (ag_audit_session_end(d.db, s.id, ag_now_ns(), status, err, sizeof err) < 0)
		cli_warn("cannot record the end of the session: %s", err);
	else if (ag_audit_write_head(d.db, s.state_dir, s.id, err, sizeof err) < 0)
		cli_warn("%s: verify cannot check this session against it", err);
	cli_alert_stop(alerter);
	if (e)
		cli_err("cannot run %s: %s%s", agent[0], strerror(e),
			e == ENOENT ? " (is it installed and on PATH?)" : "");
	else if (ingest_interrupted())
		cli_warn("interrupted: session %s ended with status %d; see it with "
			 "'agentguard report --session %s'", s.id, status, s.id);
	else
		summary(&d, &co, &s, agent[0], status, signaled, took, cfd);
	if (cfd >= 0)
		close(cfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	free(aj);
	cli_db_close(&d);
	ag_session_free(&s);
	return status;

fail_sig:
	if (alerter > 0) {
		kill(alerter, SIGTERM);
		waitpid(alerter, NULL, 0);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
fail:
	ag_session_drop_image(&s);
	close_pipe(go);
	close_pipe(report);
	free(aj);
	cli_db_close(&d);
	ag_session_free(&s);
	return CLI_FAIL;
}

const struct cli_command cli_cmd_run = {
	.name = "run",
	.summary = "run an agent under the guard, then summarize what it did",
	.help = help,
	.main = cmd_run,
	.in_order = 1,
};

/* Sessions: fix rules, mode and workspace once, hand them to every child. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "session.h"

#define BUILTIN "builtin"

static void seterr(char *err, size_t errlen, const char *fmt, const char *a,
		   const char *b)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, a, b ? b : "");
}

static const char *home_dir(void)
{
	const char *h = ag_getenv("HOME");

	if (h && h[0] == '/')
		return h;
	struct passwd *pw = getpwuid(getuid());
	return pw && pw->pw_dir ? pw->pw_dir : "/";
}

static void make_id(char *out, size_t outlen)
{
	unsigned char r[3];
	time_t t = time(NULL);
	struct tm tm;
	char ts[32];

	if (getrandom(r, sizeof r, GRND_NONBLOCK) != sizeof r) {
		uint64_t x = (uint64_t)ag_mono_ns() ^ (uint64_t)getpid();
		memcpy(r, &x, sizeof r);
	}
	gmtime_r(&t, &tm);
	strftime(ts, sizeof ts, "%Y%m%d-%H%M%S", &tm);
	snprintf(out, outlen, "%s-%02x%02x%02x", ts, r[0], r[1], r[2]);
}

static int parse_mode(const char *m, enum ag_mode *out)
{
	if (strcmp(m, "autonomous") == 0)
		*out = AG_MODE_AUTONOMOUS;
	else if (strcmp(m, "supervised") == 0)
		*out = AG_MODE_SUPERVISED;
	else
		return -1;
	return 0;
}

static const char *env_or(const char *given, const char *name)
{
	const char *v = given ? given : ag_getenv(name);
	return v && *v ? v : NULL;
}

static int load_policy(struct ag_session *s, const char *name, const char *text,
		       size_t len, const char *home, const char *workspace, int joined,
		       char *err, size_t errlen)
{
	char cwd[AG_PATH_MAX];
	struct ag_policy_env env = {
		.home = home,
		.workspace = workspace,
		.cwd = getcwd(cwd, sizeof cwd) ? cwd : "/",
		.tmpdir = ag_getenv("TMPDIR"),
		.no_examples = joined,
	};

	s->policy = ag_policy_load(name, text, len, &env, err, errlen);
	if (!s->policy)
		return -1;
	if (text == ag_default_rules)
		memcpy(s->rules_hash, ag_default_rules_hash, sizeof s->rules_hash);
	else
		ag_sha256_buf_hex(text, len, s->rules_hash);
	return 0;
}

/* The state dir a session started here would have (absolute). */
static int state_dir_of(const char *given, const char *cwd, char *out, size_t outlen,
			char *err, size_t errlen)
{
	const char *v = env_or(given, "AGENTGUARD_STATE_DIR");

	if (v) {
		if (ag_path_lexical(cwd, v, out, outlen) < 0) {
			seterr(err, errlen, "state dir path too long: %s%s", v, NULL);
			return -1;
		}
	} else if (ag_default_state_dir(out, outlen) < 0) {
		seterr(err, errlen, "cannot find a state dir: set AGENTGUARD_STATE_DIR or HOME%s%s", "", NULL);
		return -1;
	}
	return 0;
}

int ag_session_new(struct ag_session *s, const struct ag_session_opts *o,
		   char *err, size_t errlen)
{
	static const struct ag_session_opts none;
	char cwd[AG_PATH_MAX];
	const char *v;

	if (!o)
		o = &none;
	memset(s, 0, sizeof *s);
	if (!getcwd(cwd, sizeof cwd))
		strcpy(cwd, "/");

	/* State dir: absolute, created private. */
	if (state_dir_of(o->state_dir, cwd, s->state_dir, sizeof s->state_dir, err, errlen) < 0)
		return -1;
	if (ag_mkdirs(s->state_dir, 0700) < 0) {
		seterr(err, errlen, "cannot create state dir %s: %s", s->state_dir,
		       strerror(errno));
		return -1;
	}

	/* Rules: the named file, else the first of the lookup order, with
	 * what it extends and the machine's managed file over it (layers.c),
	 * frozen as one text. */
	const char *given = env_or(o->rules_file, "AGENTGUARD_RULES");
	const char *ws = env_or(o->workspace, "AGENTGUARD_WORKSPACE");
	char wsabs[AG_PATH_MAX], top[AG_PATH_MAX];
	if (ws) {
		if (ag_path_lexical(cwd, ws, wsabs, sizeof wsabs) < 0) {
			seterr(err, errlen, "workspace path too long: %s%s", ws, NULL);
			return -1;
		}
		ws = wsabs;
	}
	if (ag_rules_lookup(given, ws ? ws : cwd, top, sizeof top) < 0) {
		seterr(err, errlen, "rules path too long: %s%s", given ? given : "", NULL);
		return -1;
	}
	struct ag_rules_text t;
	if (ag_rules_resolve(top, &t, err, errlen) < 0)
		return -1;
	snprintf(s->rules_name, sizeof s->rules_name, "%s", t.name);
	if (t.builtin) {
		strcpy(s->rules_path, BUILTIN);
		if (load_policy(s, "builtin:default.yaml", ag_default_rules,
				ag_default_rules_len, home_dir(), ws, 0, err, errlen) < 0)
			return -1;
	} else {
		int rc = load_policy(s, top, t.text, t.len, home_dir(), ws, 0, err, errlen);
		if (rc == 0) {
			char dir[AG_PATH_MAX];
			if (ag_fmt(dir, sizeof dir, "%s/rules", s->state_dir) < 0 ||
			    ag_fmt(s->rules_path, sizeof s->rules_path, "%s/%s.yaml", dir,
				   s->rules_hash) < 0) {
				rc = -1;
			} else if (access(s->rules_path, R_OK) != 0 &&
				   (ag_mkdirs(dir, 0700) < 0 ||
				    ag_write_frozen(s->rules_path, t.text, t.len) < 0)) {
				rc = -1;
			}
			if (rc < 0)
				seterr(err, errlen, "cannot save the session's rules in %s: %s",
				       dir, strerror(errno));
		}
		ag_rules_text_free(&t);
		if (rc < 0) {
			ag_session_free(s);
			return -1;
		}
	}

	s->mode = ag_policy_mode(s->policy);
	if ((v = env_or(o->mode, "AGENTGUARD_MODE")) && parse_mode(v, &s->mode) < 0) {
		seterr(err, errlen, "unknown mode '%s': use autonomous or supervised%s", v, NULL);
		ag_session_free(s);
		return -1;
	}
	v = ag_getenv("AGENTGUARD_MONITOR");
	s->enforce = ag_policy_enforce(s->policy) && !o->monitor &&
		     !(v && strcmp(v, "1") == 0);
	snprintf(s->workspace, sizeof s->workspace, "%s", ag_policy_workspace(s->policy));
	snprintf(s->home, sizeof s->home, "%s", home_dir());
	s->start_ns = ag_now_ns();
	make_id(s->id, sizeof s->id);
	return 0;
}

int ag_session_id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n >= AG_SESSION_ID_MAX)
		return 0;
	return strspn(id, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.") == n;
}

/* Where a session's variables come from: the environment, or a
 * container session's file (ag_session_container). */
typedef const char *(*var_fn)(void *ctx, const char *name);

static const char *env_var(void *ctx, const char *name)
{
	(void)ctx;
	return ag_getenv(name);
}

static int join_vars(struct ag_session *s, var_fn get, void *ctx, char *err, size_t errlen)
{
	const char *id = get(ctx, "AGENTGUARD_SESSION");
	const char *sd = get(ctx, "AGENTGUARD_STATE_DIR");
	const char *rules = get(ctx, "AGENTGUARD_RULES");
	const char *mode = get(ctx, "AGENTGUARD_MODE");
	const char *ws = get(ctx, "AGENTGUARD_WORKSPACE");
	const char *home = get(ctx, "AGENTGUARD_HOME");
	const char *mon = get(ctx, "AGENTGUARD_MONITOR");
	const char *gate = get(ctx, "AGENTGUARD_GATE");
	const char *floor = get(ctx, "AGENTGUARD_FLOOR");
	const char *counters = get(ctx, "AGENTGUARD_COUNTERS");
	const char *key = get(ctx, "AGENTGUARD_KEY_FILE");

	memset(s, 0, sizeof *s);
	if (!id || !*id)
		return 0;
	if (!ag_session_id_ok(id) || !sd || sd[0] != '/' || !rules || !mode || !ws ||
	    ws[0] != '/' || !home || home[0] != '/') {
		seterr(err, errlen, "session %s: its environment is incomplete or damaged%s",
		       id, NULL);
		return -1;
	}
	snprintf(s->id, sizeof s->id, "%s", id);
	snprintf(s->state_dir, sizeof s->state_dir, "%s", sd);
	snprintf(s->workspace, sizeof s->workspace, "%s", ws);
	snprintf(s->home, sizeof s->home, "%s", home);
	if (parse_mode(mode, &s->mode) < 0) {
		seterr(err, errlen, "session %s: unknown mode '%s'", id, mode);
		return -1;
	}
	if (strcmp(rules, BUILTIN) == 0) {
		strcpy(s->rules_path, BUILTIN);
		snprintf(s->rules_name, sizeof s->rules_name, "builtin:default.yaml");
	} else {
		size_t sdl = strlen(sd);
		/* Only the session's own frozen copy is acceptable. */
		if (strncmp(rules, sd, sdl) != 0 || strncmp(rules + sdl, "/rules/", 7) != 0) {
			seterr(err, errlen, "session rules %s are not the session's own copy%s",
			       rules, NULL);
			return -1;
		}
		snprintf(s->rules_path, sizeof s->rules_path, "%s", rules);
		snprintf(s->rules_name, sizeof s->rules_name, "%s", rules);
	}
	/* The session's start folded the rules' `enforce:` into MONITOR. */
	s->enforce = !(mon && strcmp(mon, "1") == 0);
	if (gate && strlen(gate) < sizeof s->gate)
		strcpy(s->gate, gate);
	if (floor && floor[0] == '/' && strlen(floor) < sizeof s->floor)
		strcpy(s->floor, floor);
	if (counters && strlen(counters) < sizeof s->counters &&
	    strspn(counters, "0123456789:") == strlen(counters))
		strcpy(s->counters, counters);
	if (key && key[0] == '/' && strlen(key) < sizeof s->key_file)
		strcpy(s->key_file, key);
	return 1;
}

int ag_session_join(struct ag_session *s, char *err, size_t errlen)
{
	return join_vars(s, env_var, NULL, err, errlen);
}

static int image_path(const struct ag_session *s, char *out, size_t outlen)
{
	return ag_fmt(out, outlen, "%s/rules/%s.img", s->state_dir, s->id);
}

/* What a process of the session compiles with: the session's home and
 * workspace, its own TMPDIR. */
static struct ag_policy_env image_env(const struct ag_session *s)
{
	return (struct ag_policy_env){
		.home = s->home, .workspace = s->workspace, .tmpdir = ag_getenv("TMPDIR"),
	};
}

int ag_session_write_image(const struct ag_session *s, const char *lib, char *err,
			   size_t errlen)
{
	char real[AG_OWN_N][AG_PATH_MAX];
	struct ag_own_names own = {.given = {s->state_dir, s->key_file, lib}};
	char path[AG_PATH_MAX];
	struct ag_policy_env env = image_env(s);
	size_t len = 0;
	const char *text = ag_default_rules;
	char *owned = NULL;
	int rc;

	if (image_path(s, path, sizeof path) < 0) {
		seterr(err, errlen, "state dir path too long: %s%s", s->state_dir, NULL);
		return -1;
	}
	char *slash = strrchr(path, '/');
	*slash = 0;
	if (ag_mkdirs(path, 0700) < 0) {
		seterr(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	*slash = '/';
	if (strcmp(s->rules_path, BUILTIN) == 0) {
		len = ag_default_rules_len;
	} else if (!(text = owned = ag_read_file(s->rules_path, &len))) {
		seterr(err, errlen, "session rules %s cannot be read%s", s->rules_path, NULL);
		return -1;
	}
	for (int i = 0; i < AG_OWN_N; i++)
		if (own.given[i] && own.given[i][0] == '/' && realpath(own.given[i], real[i]))
			own.real[i] = real[i];
		else
			own.given[i] = NULL;
	rc = ag_policy_image_write(path, s->rules_name, text, len, &env, s->rules_hash, &own,
				   err, errlen);
	free(owned);
	return rc;
}

void ag_session_drop_image(const struct ag_session *s)
{
	char path[AG_PATH_MAX];

	if (s->id[0] && image_path(s, path, sizeof path) == 0)
		unlink(path);
}

int ag_session_load_policy(struct ag_session *s, char *err, size_t errlen)
{
	char img[AG_PATH_MAX];

	if (s->policy)
		return 0;
	if (s->id[0] && image_path(s, img, sizeof img) == 0) {
		struct ag_policy_env env = image_env(s);
		if ((s->policy = ag_policy_image_map(img, &env, s->rules_hash, &s->own))) {
			/* The image must be of the rules this session names. */
			const char *want = ag_default_rules_hash;
			if (strcmp(s->rules_path, BUILTIN) != 0)
				want = strrchr(s->rules_path, '/') + 1;
			if (strncmp(want, s->rules_hash, 64) == 0)
				return 0;
			ag_session_free(s);
		}
	}
	if (strcmp(s->rules_path, BUILTIN) == 0)
		return load_policy(s, s->rules_name, ag_default_rules, ag_default_rules_len,
				   s->home, s->workspace, 1, err, errlen);
	size_t len = 0;
	char *text = ag_read_file(s->rules_path, &len);
	if (!text) {
		seterr(err, errlen, "session rules %s cannot be read%s", s->rules_path, NULL);
		return -1;
	}
	int rc = load_policy(s, s->rules_path, text, len, s->home, s->workspace, 1, err, errlen);
	free(text);
	if (rc < 0)
		return -1;
	const char *base = strrchr(s->rules_path, '/') + 1;
	if (strncmp(base, s->rules_hash, 64) != 0) {
		seterr(err, errlen, "session rules %s were changed after the session started%s",
		       s->rules_path, NULL);
		ag_session_free(s);
		return -1;
	}
	return 0;
}

int ag_session_from_env(struct ag_session *s, char *err, size_t errlen)
{
	int rc = ag_session_join(s, err, errlen);

	if (rc == 1 && ag_session_load_policy(s, err, errlen) < 0)
		return -1;
	return rc;
}

int ag_session_env_strings(const struct ag_session *s, char *buf, size_t buflen,
			   const char **out, int outmax)
{
	const char *vals[][2] = {
		{"AGENTGUARD_SESSION", s->id},
		{"AGENTGUARD_STATE_DIR", s->state_dir},
		{"AGENTGUARD_RULES", s->rules_path},
		{"AGENTGUARD_MODE", s->mode == AG_MODE_SUPERVISED ? "supervised" : "autonomous"},
		{"AGENTGUARD_WORKSPACE", s->workspace},
		{"AGENTGUARD_HOME", s->home},
		{"AGENTGUARD_MONITOR", s->enforce ? "0" : "1"},
		{"AGENTGUARD_KEY_FILE", s->key_file},   /* these four only when set */
		{"AGENTGUARD_GATE", s->gate},
		{"AGENTGUARD_FLOOR", s->floor},
		{"AGENTGUARD_COUNTERS", s->counters},
	};
	int nv = (int)(sizeof vals / sizeof vals[0]), n = 0;
	size_t off = 0;

	if (nv + 1 > outmax)
		return -1;
	for (int i = 0; i < nv; i++) {
		if (i >= nv - 4 && !vals[i][1][0])
			continue;
		int l = snprintf(buf + off, buflen - off, "%s=%s", vals[i][0], vals[i][1]);
		if (l < 0 || (size_t)l >= buflen - off)
			return -1;
		out[n++] = buf + off;
		off += (size_t)l + 1;
	}
	out[n] = NULL;
	return n;
}

void ag_session_setenv(const struct ag_session *s)
{
	char buf[8 * AG_PATH_MAX + 512];
	const char *vars[16];
	int n = ag_session_env_strings(s, buf, sizeof buf, vars, 16);

	for (int i = 0; i < n; i++) {
		char *var = (char *)vars[i];
		char *eq = strchr(var, '=');
		*eq = 0;
		setenv(var, eq + 1, 1);
		*eq = '=';
	}
}

void ag_session_free(struct ag_session *s)
{
	if (s->policy)
		ag_policy_free(s->policy);
	s->policy = NULL;
	memset(&s->own, 0, sizeof s->own);
}

/* ---- container-wide sessions -----------------------------------------------
 * Loaded from /etc/ld.so.preload, the guard is in every program of a
 * container, and the programs `docker exec` starts come from outside it:
 * nothing in their environment names a session. They join one session per
 * container (and per AGENTGUARD_SESSION_KEY, when set). Its variables are
 * in STATE/containers/<key's hash>, made by the first process to come:
 * written under a temporary name, then linked to its own (link fails if
 * the name exists), so a file there is always whole, and of many processes
 * starting at once exactly one makes it and the others join. The key names
 * one life of the container: the boot, the pid namespace and the start
 * time of its init. A restart is a new life and a new session. */

struct ctr_id {
	char boot[40];
	uint64_t pidns;
	uint64_t init;      /* pid 1's start time, clock ticks since boot */
	char key[128];      /* AGENTGUARD_SESSION_KEY, or "" */
	char container[80]; /* docker's (podman's, ...) id, or "" */
};

#define CTR_VARS 24

struct ctr_file {
	char buf[8 * AG_PATH_MAX + 2048];
	const char *name[CTR_VARS], *val[CTR_VARS];
	int n;
};

static int read_small(int dfd, const char *name, char *buf, size_t len)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return (int)n;
}

static uint64_t pidns_of(const char *link)
{
	struct stat st;

	return stat(link, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static int boot_id(char out[40])
{
	if (read_small(AT_FDCWD, "/proc/sys/kernel/random/boot_id", out, 40) < 36)
		return -1;
	out[strcspn(out, "\n")] = 0;
	return 0;
}

static int ctr_ident(struct ctr_id *c)
{
	const char *k = ag_getenv("AGENTGUARD_SESSION_KEY");

	memset(c, 0, sizeof *c);
	if (boot_id(c->boot) < 0 || !(c->pidns = pidns_of("/proc/self/ns/pid")) ||
	    !(c->init = ag_proc_start(1)))
		return -1;
	if (k && *k) {
		/* Part of a file name's hash and of a line in the file. */
		size_t n = strlen(k);
		if (n >= sizeof c->key || strspn(k, "0123456789abcdefghijklmnopqrstuvwxyz"
						  "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_.:@/+=") != n)
			return -1;
		memcpy(c->key, k, n + 1);
	}
	ag_container_id(c->container, sizeof c->container);
	return 0;
}

static void ctr_name(const struct ctr_id *c, char out[40])
{
	char text[512], hex[AG_HASH_HEX];
	int n = snprintf(text, sizeof text, "%s\n%llu\n%llu\n%s", c->boot,
			 (unsigned long long)c->pidns, (unsigned long long)c->init, c->key);

	ag_sha256_buf_hex(text, (size_t)n, hex);
	snprintf(out, 40, "%.32s", hex);
}

/* Parse NAME=value lines; 0, or -1 (errno ENOENT: no such file). The file
 * must be a regular file of ours: the state dir is the guard's, but a
 * file of someone else's would name a session of theirs. */
static int ctr_read(int dfd, const char *name, struct ctr_file *f)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	size_t got = 0;

	f->n = 0;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    st.st_size >= (off_t)sizeof f->buf) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	while (got < sizeof f->buf - 1) {
		ssize_t n = read(fd, f->buf + got, sizeof f->buf - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	f->buf[got] = 0;
	for (char *line = f->buf; *line && f->n < CTR_VARS;) {
		char *nl = strchr(line, '\n');
		if (!nl)
			break;   /* a last line without its newline was never written whole */
		*nl = 0;
		char *eq = strchr(line, '=');
		if (eq) {
			*eq = 0;
			f->name[f->n] = line;
			f->val[f->n++] = eq + 1;
		}
		line = nl + 1;
	}
	return 0;
}

static const char *ctr_var(void *ctx, const char *name)
{
	const struct ctr_file *f = ctx;

	for (int i = 0; i < f->n; i++)
		if (strcmp(f->name[i], name) == 0)
			return f->val[i];
	return NULL;
}

/* Write the session's file: 0, or -1 with errno (EEXIST: another process
 * made it first). */
static int ctr_publish(const struct ag_session *s, const struct ctr_id *c, const char *dir,
		       const char *name)
{
	char envbuf[8 * AG_PATH_MAX + 512], text[sizeof envbuf + 1024], tmp[AG_PATH_MAX];
	const char *vars[16];
	int n = ag_session_env_strings(s, envbuf, sizeof envbuf, vars, 16);
	size_t off = 0;

	if (n < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (strchr(vars[i], '\n')) {
			errno = EINVAL;   /* a path with a newline cannot be one line */
			return -1;
		}
		off += (size_t)snprintf(text + off, sizeof text - off, "%s\n", vars[i]);
	}
	int l = snprintf(text + off, sizeof text - off,
			 "boot=%s\npidns=%llu\ninit=%llu\ncontainer=%s\nkey=%s\nstart=%lld\n",
			 c->boot, (unsigned long long)c->pidns, (unsigned long long)c->init,
			 c->container, c->key, (long long)s->start_ns);
	if (l < 0 || (size_t)l >= sizeof text - off) {
		errno = ENAMETOOLONG;
		return -1;
	}
	off += (size_t)l;
	unsigned r = 0;
	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r)
		r = (unsigned)ag_mono_ns();
	if (ag_mkdirs(dir, 0700) < 0 ||
	    ag_fmt(tmp, sizeof tmp, "%s/.new-%d-%08x", dir, (int)getpid(), r) < 0)
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	size_t done = 0;
	while (done < off) {
		ssize_t w = write(fd, text + done, off - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	int rc = done == off && close(fd) == 0 ? 0 : -1;
	if (done != off)
		close(fd);
	char final[AG_PATH_MAX];
	if (rc == 0 && ag_fmt(final, sizeof final, "%s/%s", dir, name) == 0)
		rc = link(tmp, final);
	else
		rc = -1;
	int e = errno;
	unlink(tmp);
	errno = e;
	return rc;
}

int ag_session_container(struct ag_session *s, char *err, size_t errlen)
{
	/* Static: once per process, on the start's own stack (guard.c). */
	static struct ctr_file f;
	struct ctr_id c;
	char cwd[AG_PATH_MAX], sd[AG_PATH_MAX], dir[AG_PATH_MAX], name[40];

	memset(s, 0, sizeof *s);
	if (ctr_ident(&c) < 0)
		return 0;
	if (!getcwd(cwd, sizeof cwd))
		strcpy(cwd, "/");
	if (state_dir_of(NULL, cwd, sd, sizeof sd, NULL, 0) < 0 ||
	    ag_fmt(dir, sizeof dir, "%s/containers", sd) < 0)
		return 0;   /* ag_session_new says what is wrong */
	ctr_name(&c, name);
	for (int tries = 0; tries < 3; tries++) {
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int r = dfd >= 0 ? ctr_read(dfd, name, &f) : -1;
		int e = errno;
		if (dfd >= 0)
			close(dfd);
		if (r == 0) {
			int rc = join_vars(s, ctr_var, &f, err, errlen);
			if (rc == 1 && strcmp(s->state_dir, sd) != 0) {
				seterr(err, errlen, "container session file %s/%s names another "
				       "state dir", dir, name);
				rc = -1;
			} else if (rc == 0) {
				seterr(err, errlen, "container session file %s/%s names no session",
				       dir, name);
				rc = -1;
			}
			return rc;
		}
		if (e != ENOENT) {
			seterr(err, errlen, "cannot read the container's session %s: %s", dir,
			       strerror(e));
			return -1;
		}
		if (ag_session_new(s, NULL, err, errlen) < 0)
			return -1;
		if (ctr_publish(s, &c, dir, name) == 0 || errno != EEXIST)
			return 2;   /* made it; or a session of this process's own */
		ag_session_free(s);   /* another process was first: join its */
	}
	return ag_session_new(s, NULL, err, errlen) < 0 ? -1 : 2;
}

/* Whether process pid is in a pid namespace below ours: its NSpid line
 * (readable where its namespace link is not) has a pid for each level. */
static int nested(const char *pid)
{
	char path[300], buf[4096];

	if (ag_fmt(path, sizeof path, "/proc/%s/status", pid) < 0 ||
	    read_small(AT_FDCWD, path, buf, sizeof buf) <= 0)
		return 1;   /* cannot tell: it may be */
	const char *l = strstr(buf, "\nNSpid:");
	if (!l)
		return 0;   /* a kernel without pid namespaces */
	l += 7;
	int n = 0;
	while (*l && *l != '\n') {
		l += strspn(l, " \t");
		if (*l >= '0' && *l <= '9')
			n++;
		l += strcspn(l, " \t\n");
	}
	return n > 1;
}

/* Is any process we can see in pid namespace ino? 1 yes, 0 no, -1 some
 * could not be looked at. */
static int pidns_seen(uint64_t ino)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int hidden = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char link[300];
		struct stat st;
		if (e->d_name[0] < '1' || e->d_name[0] > '9' ||
		    ag_fmt(link, sizeof link, "/proc/%s/ns/pid", e->d_name) < 0)
			continue;
		if (stat(link, &st) < 0) {
			hidden |= errno != ENOENT && errno != ESRCH && nested(e->d_name);
			continue;
		}
		if ((uint64_t)st.st_ino == ino) {
			closedir(d);
			return 1;
		}
	}
	closedir(d);
	return hidden ? -1 : 0;
}

/* The kernel's initial pid namespace (PROC_PID_INIT_INO): whoever is in
 * it sees every process of the machine. */
#define INIT_PIDNS 0xEFFFFFFCu

int ag_container_over(const char *dir, const char *name, char *sid, size_t sidlen,
		      int64_t *start_ns, char *why, size_t whylen)
{
	static struct ctr_file f;
	char boot[40];
	f.n = 0;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int r = dfd >= 0 ? ctr_read(dfd, name, &f) : -1;

	if (dfd >= 0)
		close(dfd);
	const char *id = r == 0 ? ctr_var(&f, "AGENTGUARD_SESSION") : NULL;
	const char *fb = ctr_var(&f, "boot"), *fns = ctr_var(&f, "pidns");
	const char *fi = ctr_var(&f, "init"), *fc = ctr_var(&f, "container");
	const char *fs = ctr_var(&f, "start");
	if (!id || !ag_session_id_ok(id) || !fb || !fns || !fi || ag_fmt(sid, sidlen, "%s", id) < 0)
		return -1;
	*start_ns = fs ? strtoll(fs, NULL, 10) : 0;
	uint64_t ns = strtoull(fns, NULL, 10), init = strtoull(fi, NULL, 10);
	uint64_t mine = pidns_of("/proc/self/ns/pid");
	char ctr[80];

	ag_container_id(ctr, sizeof ctr);
	if (boot_id(boot) == 0 && strcmp(boot, fb) != 0) {
		snprintf(why, whylen, "the machine was restarted since");
		return 1;
	}
	if (mine == ns) {
		if (ag_proc_start(1) == init)
			return 0;
		snprintf(why, whylen, "its init exited");
		return 1;
	}
	if (fc && fc[0] && strcmp(fc, ctr) == 0) {
		/* Seen from this very container in another life of it. */
		snprintf(why, whylen, "its container was restarted since");
		return 1;
	}
	int seen = pidns_seen(ns);
	if (seen == 0 && mine == INIT_PIDNS) {
		snprintf(why, whylen, "no process of its container is left");
		return 1;
	}
	return 0;
}

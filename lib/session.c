/* Sessions: fix rules, mode and workspace once, hand them to every child. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
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

/* Whole file into a NUL-terminated heap buffer. */
static char *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < (16 << 20)) {
		buf = malloc((size_t)st.st_size + 1);
		size_t got = 0;
		while (buf && got < (size_t)st.st_size) {
			ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		if (buf) {
			buf[got] = 0;
			*len = got;
		}
	} else if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
		errno = EINVAL;
	} else {
		errno = EFBIG;
	}
	int e = errno;
	close(fd);
	errno = e;
	return buf;
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
	if ((v = env_or(o->state_dir, "AGENTGUARD_STATE_DIR"))) {
		if (ag_path_lexical(cwd, v, s->state_dir, sizeof s->state_dir) < 0) {
			seterr(err, errlen, "state dir path too long: %s%s", v, NULL);
			return -1;
		}
	} else if (ag_default_state_dir(s->state_dir, sizeof s->state_dir) < 0) {
		seterr(err, errlen, "cannot find a state dir: set AGENTGUARD_STATE_DIR or HOME%s%s", "", NULL);
		return -1;
	}
	if (ag_mkdirs(s->state_dir, 0700) < 0) {
		seterr(err, errlen, "cannot create state dir %s: %s", s->state_dir,
		       strerror(errno));
		return -1;
	}

	/* Rules: the named file, or the built-in set. */
	const char *rules = env_or(o->rules_file, "AGENTGUARD_RULES");
	const char *ws = env_or(o->workspace, "AGENTGUARD_WORKSPACE");
	char wsabs[AG_PATH_MAX];
	if (ws) {
		if (ag_path_lexical(cwd, ws, wsabs, sizeof wsabs) < 0) {
			seterr(err, errlen, "workspace path too long: %s%s", ws, NULL);
			return -1;
		}
		ws = wsabs;
	}
	if (rules && strcmp(rules, BUILTIN) != 0) {
		size_t len = 0;
		char *text = read_file(rules, &len);
		if (!text) {
			seterr(err, errlen, "cannot read rules file %s: %s", rules,
			       strerror(errno));
			return -1;
		}
		snprintf(s->rules_name, sizeof s->rules_name, "%s", rules);
		int rc = load_policy(s, rules, text, len, home_dir(), ws, 0, err, errlen);
		if (rc == 0) {
			char dir[AG_PATH_MAX];
			if (ag_fmt(dir, sizeof dir, "%s/rules", s->state_dir) < 0 ||
			    ag_fmt(s->rules_path, sizeof s->rules_path, "%s/%s.yaml", dir,
				   s->rules_hash) < 0) {
				rc = -1;
			} else if (access(s->rules_path, R_OK) != 0 &&
				   (ag_mkdirs(dir, 0700) < 0 ||
				    ag_write_frozen(s->rules_path, text, len) < 0)) {
				rc = -1;
			}
			if (rc < 0)
				seterr(err, errlen, "cannot save the session's rules in %s: %s",
				       dir, strerror(errno));
		}
		free(text);
		if (rc < 0) {
			ag_session_free(s);
			return -1;
		}
	} else {
		snprintf(s->rules_name, sizeof s->rules_name, "builtin:default.yaml");
		strcpy(s->rules_path, BUILTIN);
		if (load_policy(s, "builtin:default.yaml", ag_default_rules,
				ag_default_rules_len, home_dir(), ws, 0, err, errlen) < 0)
			return -1;
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

int ag_session_join(struct ag_session *s, char *err, size_t errlen)
{
	const char *id = ag_getenv("AGENTGUARD_SESSION");
	const char *sd = ag_getenv("AGENTGUARD_STATE_DIR");
	const char *rules = ag_getenv("AGENTGUARD_RULES");
	const char *mode = ag_getenv("AGENTGUARD_MODE");
	const char *ws = ag_getenv("AGENTGUARD_WORKSPACE");
	const char *home = ag_getenv("AGENTGUARD_HOME");
	const char *mon = ag_getenv("AGENTGUARD_MONITOR");
	const char *gate = ag_getenv("AGENTGUARD_GATE");
	const char *floor = ag_getenv("AGENTGUARD_FLOOR");
	const char *key = ag_getenv("AGENTGUARD_KEY_FILE");

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
	if (key && key[0] == '/' && strlen(key) < sizeof s->key_file)
		strcpy(s->key_file, key);
	return 1;
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
	} else if (!(text = owned = read_file(s->rules_path, &len))) {
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
	char *text = read_file(s->rules_path, &len);
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
		{"AGENTGUARD_KEY_FILE", s->key_file},   /* these three only when set */
		{"AGENTGUARD_GATE", s->gate},
		{"AGENTGUARD_FLOOR", s->floor},
	};
	int nv = (int)(sizeof vals / sizeof vals[0]), n = 0;
	size_t off = 0;

	if (nv + 1 > outmax)
		return -1;
	for (int i = 0; i < nv; i++) {
		if (i >= nv - 3 && !vals[i][1][0])
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

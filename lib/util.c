/* Small helpers shared by the library and the CLI. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agentguard.h"

int ag_fmt(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= outlen) {
		if (outlen)
			out[0] = 0;
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int64_t ag_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t ag_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Number followed by an optional unit; the unit table says what it scales by. */
struct unit { const char *name; uint64_t mult; };

static int parse_scaled(const char *s, const struct unit *units, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	while (*end == ' ')
		end++;
	for (const struct unit *u = units; u->name; u++) {
		if (strcasecmp(end, u->name) == 0) {
			if (u->mult && v > UINT64_MAX / u->mult)
				return -1;
			*out = v * u->mult;
			return 0;
		}
	}
	return -1;
}

int ag_parse_size(const char *s, uint64_t *out)
{
	static const struct unit units[] = {
		{"", 1}, {"B", 1},
		{"K", 1ULL << 10}, {"KiB", 1ULL << 10}, {"KB", 1000ULL},
		{"M", 1ULL << 20}, {"MiB", 1ULL << 20}, {"MB", 1000000ULL},
		{"G", 1ULL << 30}, {"GiB", 1ULL << 30}, {"GB", 1000000000ULL},
		{"T", 1ULL << 40}, {"TiB", 1ULL << 40}, {"TB", 1000000000000ULL},
		{NULL, 0},
	};
	return parse_scaled(s, units, out);
}

int ag_parse_duration(const char *s, int64_t *out)
{
	static const struct unit units[] = {
		{"s", 1000000000ULL}, {"m", 60000000000ULL},
		{"h", 3600000000000ULL}, {"d", 86400000000000ULL},
		{"w", 604800000000000ULL}, {NULL, 0},
	};
	uint64_t v;

	if (parse_scaled(s, units, &v) < 0 || v > INT64_MAX)
		return -1;
	*out = (int64_t)v;
	return 0;
}

int ag_mkdirs(const char *path, mode_t mode)
{
	char buf[AG_PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == 0) {
			char c = *p;
			*p = 0;
			if (mkdir(buf, mode) < 0 && errno != EEXIST)
				return -1;
			*p = c;
			if (!c)
				break;
		}
	}
	struct stat st;
	if (stat(path, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

/* The variables a session start reads, copied when the process started:
 * `env -i CMD` empties the environment before the first hooked call. */
static const char *const snap_names[] = {
	"AGENTGUARD_SESSION", "AGENTGUARD_STATE_DIR", "AGENTGUARD_RULES",
	"AGENTGUARD_MODE", "AGENTGUARD_WORKSPACE", "AGENTGUARD_HOME",
	"AGENTGUARD_MONITOR", "HOME", "XDG_STATE_HOME", "TMPDIR", "LD_PRELOAD",
};
#define NSNAP (sizeof snap_names / sizeof snap_names[0])
static struct {
	int taken;
	const char *val[NSNAP];
	char buf[NSNAP * 1024 + 8192];
} snap;

void ag_env_snapshot(void)
{
	size_t off = 0;

	for (size_t i = 0; i < NSNAP; i++) {
		const char *v = getenv(snap_names[i]);
		size_t l = v ? strlen(v) + 1 : 0;
		snap.val[i] = NULL;
		if (v && off + l <= sizeof snap.buf) {
			memcpy(snap.buf + off, v, l);
			snap.val[i] = snap.buf + off;
			off += l;
		}
	}
	snap.taken = 1;
}

const char *ag_getenv(const char *name)
{
	if (snap.taken)
		for (size_t i = 0; i < NSNAP; i++)
			if (strcmp(name, snap_names[i]) == 0)
				return snap.val[i];
	return getenv(name);
}

int ag_default_state_dir(char *out, size_t outlen)
{
	const char *xdg = ag_getenv("XDG_STATE_HOME");
	const char *home = ag_getenv("HOME");
	int n;

	if (xdg && xdg[0] == '/')
		n = snprintf(out, outlen, "%s/agentguard", xdg);
	else if (home && home[0] == '/')
		n = snprintf(out, outlen, "%s/.local/state/agentguard", home);
	else
		return -1;
	return n > 0 && (size_t)n < outlen ? 0 : -1;
}

uint64_t ag_proc_start(pid_t pid)
{
	char path[64], buf[1024];
	int fd;
	ssize_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* comm may hold spaces and parens: fields restart after the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* p+2 is field 3 (state); start time is field 22. */
	p += 2;
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return 0;
		p++;
	}
	return strtoull(p, NULL, 10);
}

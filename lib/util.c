/* Small helpers shared by the library and the CLI. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agentguard.h"
#include "gate.h"

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
	"AGENTGUARD_MONITOR", "AGENTGUARD_KEY_FILE", "AGENTGUARD_SESSION_KEY",
	"AGENTGUARD_SYSCONFDIR", "HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "TMPDIR",
	"LD_PRELOAD",
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

/* The container this process runs in: the 64-hex-digit id that docker,
 * podman, containerd and CRI-O put in a cgroup or mount path, else "" (not
 * in one, or one whose id does not show). */
void ag_container_id(char *out, size_t len)
{
	static const char *const files[] = {"/proc/self/cgroup", "/proc/self/mountinfo"};
	char line[4096];

	out[0] = 0;
	for (int i = 0; i < 2 && !out[0]; i++) {
		FILE *f = fopen(files[i], "re");
		if (!f)
			continue;
		while (!out[0] && fgets(line, sizeof line, f)) {
			static const char *const marks[] = {"/docker/", "docker-", "/containers/",
							    "libpod-", "cri-containerd-", "crio-"};
			for (size_t m = 0; m < sizeof marks / sizeof marks[0] && !out[0]; m++) {
				const char *p = strstr(line, marks[m]);
				if (!p)
					continue;
				p += strlen(marks[m]);
				size_t n = strspn(p, "0123456789abcdef");
				if (n == 64 && len > 64)
					snprintf(out, len, "%.64s", p);
			}
		}
		fclose(f);
	}
}

/* ---- text safe to show on a terminal ------------------------------------- */

/* Code point of the valid UTF-8 sequence at s (at most avail bytes) and its
 * length, or 0 when the bytes are not one: overlong forms (C0 8A is not a
 * newline), surrogates and values past U+10FFFF are all invalid. */
static size_t utf8_decode(const unsigned char *s, size_t avail, uint32_t *cp)
{
	unsigned c = s[0];
	size_t n;
	uint32_t min, v;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, min = 0x80, v = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, min = 0x800, v = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, min = 0x10000, v = c & 0x07;
	else
		return 0;
	if (n > avail)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return n;
}

/* Code points a terminal obeys or a reader cannot see: C1 controls, marks
 * and overrides that reorder text, zero-width characters (they make two
 * different names look the same; this shows ZWJ inside emoji sequences as
 * well, truth before looks), line and paragraph separators, and the
 * invisible tag characters. */
static int invisible(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0xad || cp == 0x61c ||
	       cp == 0x180e || (cp >= 0x200b && cp <= 0x200f) ||
	       (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x206f) ||
	       cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb) ||
	       (cp >= 0xe0000 && cp <= 0xe007f);
}

/* The shown form of one unit of input (one character, or one byte that is
 * not part of valid UTF-8) into piece (at least 11 bytes); its length. */
static size_t escape_unit(const unsigned char *s, size_t avail, char *piece,
			  size_t *used)
{
	static const char hex[] = "0123456789abcdef";
	uint32_t cp;
	size_t n = utf8_decode(s, avail, &cp), k = 0;

	if (n == 0) {
		*used = 1;
		piece[0] = '\\';
		piece[1] = 'x';
		piece[2] = hex[s[0] >> 4];
		piece[3] = hex[s[0] & 15];
		return 4;
	}
	*used = n;
	if (cp == '\\' || cp == '\n' || cp == '\r' || cp == '\t') {
		piece[0] = '\\';
		piece[1] = cp == '\\' ? '\\' : cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't';
		return 2;
	}
	if (cp < 0x20 || cp == 0x7f) {
		piece[0] = '\\';
		piece[1] = 'x';
		piece[2] = hex[cp >> 4];
		piece[3] = hex[cp & 15];
		return 4;
	}
	if (invisible(cp)) {
		/* \u and four digits, \U and eight past the BMP: what $'...'
		 * in bash reads back as the same character. */
		int digits = cp > 0xffff ? 8 : 4;
		piece[k++] = '\\';
		piece[k++] = cp > 0xffff ? 'U' : 'u';
		for (int i = digits - 1; i >= 0; i--)
			piece[k++] = hex[(cp >> (4 * i)) & 15];
		return k;
	}
	for (k = 0; k < n; k++)
		piece[k] = (char)s[k];
	return n;
}

size_t ag_escape_display(const char *in, size_t len, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0, fits_dots = 0, i = 0;

	if (outlen == 0)
		return 0;
	if (!s)
		len = 0;
	while (i < len) {
		char piece[12];
		size_t used, pl = escape_unit(s + i, len - i, piece, &used);

		if (o + pl > outlen - 1) {
			/* Cut after a whole unit, never inside an escape or a
			 * character, and say so. */
			o = fits_dots;
			for (int d = 0; d < 3 && o < outlen - 1; d++)
				out[o++] = '.';
			break;
		}
		for (size_t k = 0; k < pl; k++)
			out[o++] = piece[k];
		if (o + 3 <= outlen - 1)
			fits_dots = o;
		i += used;
	}
	out[o] = 0;
	return o;
}

/* The gate's address (lib/gate.h), here in the core so the CLI and the unit
 * tests have it without the gate itself. */
/* Parsed by hand: strtoull's code would be two more pages faulted into every
 * process of the session (a /bin/true has 60 in all). */
uintptr_t ag_gate_parse(const char *s)
{
	uint64_t v = 0;

	if (!s || s[0] != '0' || s[1] != 'x' || !s[2])
		return 0;
	for (s += 2; *s; s++) {
		unsigned d = *s >= '0' && *s <= '9' ? (unsigned)(*s - '0')
			   : *s >= 'a' && *s <= 'f' ? (unsigned)(*s - 'a' + 10)
			   : *s >= 'A' && *s <= 'F' ? (unsigned)(*s - 'A' + 10) : 16u;
		if (d > 15 || v >> 44)
			return 0;
		v = v << 4 | d;
	}
	if (!v || (v & (AG_GATE_SIZE - 1)) || v >= (1ull << 47))
		return 0;
	return (uintptr_t)v;
}

int ag_write_frozen(const char *path, const void *data, size_t len)
{
	char tmp[AG_PATH_MAX + 32];
	snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0400);
	if (fd < 0)
		return -1;
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, (const char *)data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(fd);
			unlink(tmp);
			errno = e;
			return -1;
		}
		off += (size_t)n;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

char *ag_read_file(const char *path, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0)
		goto out;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > AG_RULES_MAX) {
		errno = EFBIG;
		goto out;
	}
	if (!(buf = malloc((size_t)st.st_size + 1)))
		goto out;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			buf = NULL;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = 0;
	*len = got;
out:;
	int e = errno;
	close(fd);
	errno = e;
	return buf;
}

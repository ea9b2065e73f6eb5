/*
 * The Landlock floor: laid by `agentguard run` on the agent before it
 * starts, inherited by every descendant, and binding whatever code runs
 * there — a static binary, a raw system call, a program that found the
 * gate (lib/gate.c). The seccomp supervisor (kernel.c) decides calls; the
 * floor makes sure that what the guard itself stands on cannot be changed
 * past it: the audit log, the frozen rules, the library, the snapshot
 * store (new entries only) and what the hard rules protect.
 *
 * Landlock can only grant. The rights it handles here are writing and
 * truncating a file, removing entries, and moving or linking them across
 * directories; reading, executing and making new entries are left alone.
 * A protected entry is kept by granting those rights on every entry that
 * existed beside it, and beside each of its ancestors, up to "/". Those
 * ancestors ("restricted" directories) then have no rights of their own,
 * so what is made in them later is out of the session's reach too: the
 * library knows this from the zone file (lib/floor.c) and hands such calls
 * to the supervisor, which the floor does not bind and which judges them
 * with the rules.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/landlock.h>

#include "agentguard.h"
#include "floor.h"
#include "session.h"

#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_SCOPE_SIGNAL
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif

/* The ruleset attribute as of ABI 6; older kernels take a prefix of it. */
struct ruleset_attr {
	uint64_t fs, net, scoped;
};

#define R_WRITE LANDLOCK_ACCESS_FS_WRITE_FILE
#define R_TRUNC LANDLOCK_ACCESS_FS_TRUNCATE
#define R_RMFILE LANDLOCK_ACCESS_FS_REMOVE_FILE
#define R_RMDIR LANDLOCK_ACCESS_FS_REMOVE_DIR
#define R_REFER LANDLOCK_ACCESS_FS_REFER
#define R_READ LANDLOCK_ACCESS_FS_READ_FILE
#define R_FILE (R_WRITE | R_TRUNC | R_READ)   /* the rights a file (not a directory) has */

/* An entry the floor does not simply grant: protected (rights 0), or
 * limited (the store: moved-in entries only). `closed`: a directory whose
 * other entries get nothing either (the state dir). */
struct special {
	char *path;
	uint64_t rights;
	int closed;
};

struct plan {
	uint64_t handled;
	struct special *sp;
	size_t nsp, capsp;
	char **restricted;
	size_t nr, capr;
	char **zone;        /* "R/path", "G/path" */
	size_t nz, capz;
	int fd;             /* the ruleset */
	size_t rules;
	int nozone;         /* the key's layer: the library needs no zone of it */
};

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 32;
	void *nv = realloc(*v, nc * size);
	if (!nv)
		return -1;
	*v = nv;
	*cap = nc;
	return 0;
}

static int has(char *const *v, size_t n, const char *p)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], p) == 0)
			return 1;
	return 0;
}

static struct special *special_of(struct plan *pl, const char *p)
{
	for (size_t i = 0; i < pl->nsp; i++)
		if (strcmp(pl->sp[i].path, p) == 0)
			return &pl->sp[i];
	return NULL;
}

static int add_zone(struct plan *pl, char kind, const char *p)
{
	char *line;

	if (grow((void **)&pl->zone, &pl->capz, pl->nz, sizeof *pl->zone) < 0 ||
	    asprintf(&line, "%c%s", kind, p) < 0)
		return -1;
	pl->zone[pl->nz++] = line;
	return 0;
}

static int add_restricted(struct plan *pl, const char *d)
{
	if (has(pl->restricted, pl->nr, d))
		return 0;
	char *c = strdup(d);
	if (!c || grow((void **)&pl->restricted, &pl->capr, pl->nr, sizeof *pl->restricted) < 0) {
		free(c);
		return -1;
	}
	pl->restricted[pl->nr++] = c;
	return 0;
}

/* Each proper ancestor of p ("/" first) is restricted. */
static int restrict_above(struct plan *pl, const char *p)
{
	char buf[PATH_MAX];

	for (size_t i = 0; p[i] && i < sizeof buf; i++) {
		if (p[i] != '/')
			continue;
		size_t len = i ? i : 1;
		memcpy(buf, p, len);
		buf[len] = 0;
		if (add_restricted(pl, buf) < 0)
			return -1;
	}
	return 0;
}

/* Note an entry the floor keeps (rights 0) or limits. What does not exist
 * cannot carry a rule: its nearest existing ancestor is restricted instead,
 * so that what is made there later is the supervisor's to judge. */
static int add_special(struct plan *pl, const char *path, uint64_t rights, int closed)
{
	char real[PATH_MAX], probe[PATH_MAX];

	if (path[0] != '/' || strlen(path) >= sizeof probe)
		return 0;
	snprintf(probe, sizeof probe, "%s", path);
	if (!realpath(probe, real)) {
		/* The longest prefix that exists, resolved, then restricted. */
		char *s;
		while ((s = strrchr(probe, '/')) && s != probe) {
			*s = 0;
			if (realpath(probe, real))
				return restrict_above(pl, real) < 0 || add_restricted(pl, real) < 0
				       ? -1 : 0;
		}
		return 0;
	}
	if (strcmp(real, "/") == 0)
		return 0;   /* "/" itself: nothing could run */
	struct special *old = special_of(pl, real);
	if (old) {
		old->rights &= rights;
		old->closed |= closed;
		return 0;
	}
	if (grow((void **)&pl->sp, &pl->capsp, pl->nsp, sizeof *pl->sp) < 0)
		return -1;
	pl->sp[pl->nsp] = (struct special){.path = strdup(real), .rights = rights, .closed = closed};
	if (!pl->sp[pl->nsp].path)
		return -1;
	pl->nsp++;
	return restrict_above(pl, real);
}

static void hard_path(void *ctx, const char *path, size_t len)
{
	char buf[PATH_MAX];

	if (len == 0 || len >= sizeof buf)
		return;
	memcpy(buf, path, len);
	buf[len] = 0;
	add_special(ctx, buf, 0, 0);
}

static int rule(struct plan *pl, const char *path, uint64_t rights)
{
	int fd = open(path, O_PATH | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;

	if (fd < 0)
		return 0;   /* gone meanwhile: nothing to grant */
	if (fstat(fd, &st) < 0 || S_ISLNK(st.st_mode)) {
		close(fd);   /* a symbolic link: its target has its own place */
		return 0;
	}
	if (!S_ISDIR(st.st_mode))
		rights &= R_FILE;
	rights &= pl->handled;
	struct landlock_path_beneath_attr pb = {.allowed_access = rights, .parent_fd = fd};
	long rc = rights ? syscall(SYS_landlock_add_rule, pl->fd, LANDLOCK_RULE_PATH_BENEATH,
				   &pb, 0) : 0;
	close(fd);
	if (rc < 0)
		return -1;
	pl->rules += rights != 0;
	return 0;
}

/* Grant every entry of restricted directory d but the restricted and the
 * special ones (which get their own rights). */
static int grant_beside(struct plan *pl, const char *d)
{
	DIR *dir = opendir(d);
	struct special *self = special_of(pl, d);

	if (!dir)
		return errno == ENOENT ? 0 : -1;
	struct dirent *e;
	char p[PATH_MAX];
	int rc = 0;
	while (rc == 0 && (e = readdir(dir))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (snprintf(p, sizeof p, "%s/%s", strcmp(d, "/") == 0 ? "" : d, e->d_name) >=
		    (int)sizeof p)
			continue;
		if (has(pl->restricted, pl->nr, p))
			continue;
		struct special *s = special_of(pl, p);
		if (s)
			rc = rule(pl, p, s->rights);
		else if (!(self && self->closed))
			/* A name with a newline is granted but not listed (the zone is
			 * lines): the library then hands its calls to the supervisor. */
			rc = rule(pl, p, pl->handled) < 0 ? -1
			     : strchr(p, '\n') || pl->nozone ? 0 : add_zone(pl, 'G', p);
	}
	closedir(dir);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_zone(const void *a, const void *b)
{
	return strcmp(*(char *const *)a + 1, *(char *const *)b + 1);
}

static int write_zone(struct plan *pl, const char *path)
{
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "we");
	if (!f)
		return -1;
	qsort(pl->zone, pl->nz, sizeof *pl->zone, cmp_zone);
	for (size_t i = 0; i < pl->nz; i++)
		fprintf(f, "%s\n", pl->zone[i]);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static void plan_free(struct plan *pl)
{
	for (size_t i = 0; i < pl->nsp; i++)
		free(pl->sp[i].path);
	for (size_t i = 0; i < pl->nr; i++)
		free(pl->restricted[i]);
	for (size_t i = 0; i < pl->nz; i++)
		free(pl->zone[i]);
	free(pl->sp);
	free(pl->restricted);
	free(pl->zone);
}

/* Where programs make new files all the time: a key beneath one of these
 * cannot be kept unreadable (below). */
static const char *busy_dir(const struct ag_session *s, const char *d)
{
	const char *tmp = getenv("TMPDIR");
	const char *busy[] = {s->home, s->workspace, tmp, "/tmp", "/var/tmp", "/dev/shm"};
	char real[PATH_MAX];

	for (size_t i = 0; i < sizeof busy / sizeof busy[0]; i++)
		if (busy[i] && busy[i][0] == '/' && realpath(busy[i], real) && strcmp(real, d) == 0)
			return busy[i];
	return NULL;
}

/* The chain's key, unreadable: a second layer that handles reading only,
 * granted beside the key and each of its ancestors. What is made later
 * directly in one of those directories is unreadable too, so the key must
 * live in a quiet one (root's does: lib/audit.c); beneath $HOME, the
 * workspace or a temporary directory the layer is not laid, and `why`
 * says so. The ruleset, or -1. */
static int key_layer(const struct ag_session *s, char *why, size_t whylen)
{
	/* REFER too: a layer that does not grant it denies every move across
	 * directories, whether it handles it or not. */
	struct plan pl = {.fd = -1, .handled = R_READ | R_REFER, .nozone = 1};
	char real[PATH_MAX];
	int fd = -1;

	if (!s->key_file[0] || !realpath(s->key_file, real)) {
		snprintf(why, whylen, "the chain key is readable: it cannot be found");
		return -1;
	}
	if (add_special(&pl, real, 0, 0) < 0)
		goto fail;
	for (size_t i = 0; i < pl.nr; i++) {
		const char *b = strcmp(pl.restricted[i], "/") ? busy_dir(s, pl.restricted[i]) : NULL;
		if (b) {
			snprintf(why, whylen, "the chain key is readable: it lies beneath %.200s "
				 "(AGENTGUARD_KEY_FILE can put it in a quiet directory)", b);
			plan_free(&pl);
			return -1;
		}
	}
	struct ruleset_attr ra = {.fs = pl.handled};
	pl.fd = (int)syscall(SYS_landlock_create_ruleset, &ra, sizeof(uint64_t), 0);
	if (pl.fd < 0)
		goto fail;
	for (size_t i = 0; i < pl.nr; i++)
		if (grant_beside(&pl, pl.restricted[i]) < 0)
			goto fail;
	snprintf(why, whylen, "the chain key unreadable");
	fd = pl.fd;
	pl.fd = -1;
fail:
	if (fd < 0)
		snprintf(why, whylen, "the chain key is readable: its layer cannot be built (%s)",
			 strerror(errno));
	if (pl.fd >= 0)
		close(pl.fd);
	plan_free(&pl);
	return fd;
}

/* Laid with the floor (ag_floor_apply), or -1; and where the state text
 * says so, to be corrected if the kernel refuses it. */
static int key_ruleset = -1;
static char *key_said;
static size_t key_said_len;

int ag_floor_prepare(const struct ag_session *s, const char *lib, char *zone, size_t zonelen,
		     char *state, size_t statelen)
{
	struct plan pl = {.fd = -1};
	char p[PATH_MAX + 16];
	int abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0,
			       LANDLOCK_CREATE_RULESET_VERSION);

	zone[0] = 0;
	if (abi < 0) {
		snprintf(state, statelen, "off: this kernel offers no Landlock (%s)",
			 strerror(errno));
		return -1;
	}
	if (abi < 2) {
		/* Without REFER every move across directories would be refused. */
		snprintf(state, statelen, "off: Landlock ABI %d cannot allow moves across "
			 "directories (REFER needs ABI 2)", abi);
		return -1;
	}
	pl.handled = R_WRITE | R_RMFILE | R_RMDIR | R_REFER | (abi >= 3 ? R_TRUNC : 0);

	/* The guard's own files. The store takes entries moved or linked in,
	 * and keeps them; the spool takes the processes' records; stage is
	 * where a copy is written before it is moved into the store. */
	const char *sd = s->state_dir;
	const char *mine[] = {"snapshots", "spool", "stage", "rules"};
	for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", sd, mine[i]);
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			goto fail_errno;
	}
	int bad = add_special(&pl, sd, 0, 1) < 0;
	snprintf(p, sizeof p, "%s/snapshots", sd);
	bad |= add_special(&pl, p, R_REFER, 0) < 0;
	snprintf(p, sizeof p, "%s/spool", sd);
	bad |= add_special(&pl, p, R_WRITE | R_TRUNC | R_RMFILE, 0) < 0;
	snprintf(p, sizeof p, "%s/stage", sd);
	bad |= add_special(&pl, p, R_WRITE | R_TRUNC | R_RMFILE | R_REFER, 0) < 0;
	bad |= add_special(&pl, lib, 0, 0) < 0;
	bad |= add_special(&pl, "/etc/ld.so.preload", 0, 0) < 0;
	if (s->key_file[0])
		bad |= add_special(&pl, s->key_file, 0, 0) < 0;
	int other = ag_policy_hard_paths(s->policy, hard_path, &pl);
	if (bad) {
		errno = ENOMEM;
		goto fail_errno;
	}

	struct ruleset_attr ra = {.fs = pl.handled, .scoped = abi >= 6 ? LANDLOCK_SCOPE_SIGNAL : 0};
	size_t rsize = abi >= 6 ? sizeof ra : abi >= 4 ? 2 * sizeof(uint64_t) : sizeof(uint64_t);
	pl.fd = (int)syscall(SYS_landlock_create_ruleset, &ra, rsize, 0);
	if (pl.fd < 0)
		goto fail_errno;
	qsort(pl.restricted, pl.nr, sizeof *pl.restricted, cmp_str);
	for (size_t i = 0; i < pl.nr; i++)
		if (grant_beside(&pl, pl.restricted[i]) < 0 || add_zone(&pl, 'R', pl.restricted[i]) < 0)
			goto fail_errno;
	if (snprintf(zone, zonelen, "%s/rules/%s.floor", sd, s->id) >= (int)zonelen ||
	    write_zone(&pl, zone) < 0)
		goto fail_errno;

	size_t l = (size_t)snprintf(state, statelen,
		"on: Landlock ABI %d; %zu protected, %zu restricted directories, %zu grants; "
		"kept from: writing, %sremoving, moving or linking across directories",
		abi, pl.nsp, pl.nr, pl.rules, abi >= 3 ? "truncating, " : "");
	if (abi >= 6 && l < statelen)
		l += (size_t)snprintf(state + l, statelen - l,
				      "; signals to processes outside the session refused");
	if (abi < 6 && l < statelen)
		l += (size_t)snprintf(state + l, statelen - l, "; dropped for ABI %d: %s", abi,
				      abi < 3 ? "truncation (ABI 3), signal scoping (ABI 6)"
					      : "signal scoping (ABI 6)");
	if (other && l < statelen)
		l += (size_t)snprintf(state + l, statelen - l, "; %d hard rule paths with wildcards "
				      "or exceptions are left to the rules", other);
	char kwhy[300];
	key_ruleset = key_layer(s, kwhy, sizeof kwhy);
	if (l < statelen) {
		key_said = state + l;
		key_said_len = statelen - l;
		snprintf(key_said, key_said_len, "; %s", kwhy);
	}
	plan_free(&pl);
	return pl.fd;

fail_errno:;
	int e = errno;
	if (pl.fd >= 0)
		close(pl.fd);
	plan_free(&pl);
	zone[0] = 0;
	snprintf(state, statelen, "off: the floor cannot be built (%s)", strerror(e));
	return -1;
}

int ag_floor_apply(int ruleset)
{
	if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
		return -1;
	/* Without it the floor stands; the key is then readable, and the
	 * session's row says so. */
	if (key_ruleset >= 0 && syscall(SYS_landlock_restrict_self, key_ruleset, 0) < 0) {
		if (key_said)
			snprintf(key_said, key_said_len, "; the chain key is readable: its layer "
				 "was refused (%s)", strerror(errno));
		key_ruleset = -1;
	}
	return 0;
}

int ag_floor_counters(const struct ag_session *s, char *err, size_t errlen)
{
	char p[PATH_MAX + 64];
	static const char zero[4096];

	snprintf(p, sizeof p, "%s/rules", s->state_dir);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/rules/%s.counters", s->state_dir, s->id);
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	int ok = fd >= 0 && pwrite(fd, zero, sizeof zero, 0) == (ssize_t)sizeof zero;
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (!ok)
		snprintf(err, errlen, "the session's counters %s cannot be made (%s)", p, strerror(e));
	return ok ? 0 : -1;
}

/*
 * A session's compiled policy as a file that every process of the session
 * maps instead of compiling the rules itself.
 *
 * Compiling is most of what a deciding process costs (libyaml, three
 * realpaths, a few hundred kilobytes of heap); a guarded build starts
 * hundreds of them. So `agentguard run` compiles once, into one contiguous
 * range at an address chosen at random for the session, and writes that
 * range out. A process of the session maps the file read-only at that same
 * address, where every pointer inside it is already right: no relocation,
 * no parsing, pages shared through the page cache.
 *
 * Anything unexpected (another build's layout, other inputs, the address
 * taken in this process, a damaged file) and the process compiles the
 * rules itself, as before: the image is only ever a shortcut.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy_internal.h"

/* The compiled structures' layout: the build hashes their headers, so an
 * image from another build of agentguard is never taken for this one's. */
#ifndef AG_LAYOUT_ID
#define AG_LAYOUT_ID 0
#endif

#define IMG_MAGIC "agpimg2"
#define IMG_CAP (64u << 20)            /* reserved, not committed */
#define IMG_LO 0x400000000000ull       /* above the gate (tools/kernel.c), below mmap's usual range */
#define IMG_SPAN 0x200000000000ull
#define IMG_ALIGN (2ull << 20)

struct img_hdr {
	char magic[8];
	uint64_t layout;
	uint64_t base, size;    /* where it must lie, and the file's length */
	const struct ag_policy *policy;
	/* The inputs it was compiled from, as given (a process with others
	 * compiles its own). */
	const char *home, *workspace, *tmpdir;
	char rules_hash[65];
	struct ag_own_names own;
};

static int img_inputs_ok(const struct ag_policy_env *env)
{
	return env->home && env->home[0] == '/' && env->workspace &&
	       env->workspace[0] == '/' &&
	       (!env->tmpdir || !env->tmpdir[0] || env->tmpdir[0] == '/');
}

static const char *tmpdir_of(const struct ag_policy_env *env)
{
	return env->tmpdir ? env->tmpdir : "";
}

static char *region_strdup(struct ag_region *r, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = ag_region_alloc(r, n);
	if (d)
		memcpy(d, s, n);
	return d;
}

static void *reserve(void)
{
	for (int i = 0; i < 8; i++) {
		uint64_t x;
		if (getrandom(&x, sizeof x, GRND_NONBLOCK) != sizeof x)
			x = (uint64_t)ag_mono_ns() * 0x9e3779b97f4a7c15ull;
		uintptr_t want = (uintptr_t)(IMG_LO + (x % (IMG_SPAN / IMG_ALIGN)) * IMG_ALIGN);
		void *p = mmap((void *)want, IMG_CAP, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
			       -1, 0);
		if (p == (void *)want)
			return p;
		if (p != MAP_FAILED)   /* a kernel that took the address as a hint */
			munmap(p, IMG_CAP);
	}
	return NULL;
}

int ag_policy_image_write(const char *path, const char *name, const char *text, size_t len,
			  const struct ag_policy_env *env, const char *rules_hash,
			  const struct ag_own_names *own, char *err, size_t errlen)
{
	struct ag_policy_env e = *env;
	struct ag_region r = {0};
	struct img_hdr *h;
	struct ag_policy *p;

	if (!img_inputs_ok(env) || strlen(rules_hash) != 64) {
		snprintf(err, errlen, "the session's home, workspace or TMPDIR is not absolute");
		return -1;
	}
	if (!(r.base = reserve())) {
		snprintf(err, errlen, "no free address range for the rules image");
		return -1;
	}
	r.cap = IMG_CAP;
	h = ag_region_alloc(&r, sizeof *h);
	/* The session's start ran the examples already. */
	e.no_examples = 1;
	p = ag_policy_load_in(name, text, len, &e, &r, err, errlen);
	if (!p)
		goto fail;
	memcpy(h->magic, IMG_MAGIC, sizeof h->magic);
	h->layout = AG_LAYOUT_ID;
	h->policy = p;
	h->home = region_strdup(&r, env->home);
	h->workspace = region_strdup(&r, env->workspace);
	h->tmpdir = region_strdup(&r, tmpdir_of(env));
	memcpy(h->rules_hash, rules_hash, 65);
	int lost = 0;
	for (int i = 0; own && i < AG_OWN_N; i++) {
		if (!own->given[i] || !own->real[i])
			continue;
		h->own.given[i] = region_strdup(&r, own->given[i]);
		h->own.real[i] = region_strdup(&r, own->real[i]);
		lost |= !h->own.given[i] || !h->own.real[i];
	}
	if (!h->home || !h->workspace || !h->tmpdir || lost) {
		snprintf(err, errlen, "the rules image would be over %u MiB", IMG_CAP >> 20);
		goto fail;
	}
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	h->base = (uint64_t)(uintptr_t)r.base;
	h->size = (r.used + pg - 1) & ~(pg - 1);
	p->image = r.base;
	p->image_size = h->size;

	if (ag_write_frozen(path, r.base, h->size) < 0)
		goto ioerr;
	munmap(r.base, IMG_CAP);
	return 0;
ioerr:
	snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
fail:
	munmap(r.base, IMG_CAP);
	return -1;
}

static int in_image(const struct img_hdr *h, const void *p, size_t n)
{
	uintptr_t a = (uintptr_t)p;
	return a >= h->base + sizeof *h && a <= h->base + h->size - n;
}

/* NULL, or a string that ends inside the image. */
static int any_str_in_image(const struct img_hdr *h, const char *s)
{
	return !s || (in_image(h, s, 1) &&
		      memchr(s, 0, (size_t)(h->base + h->size - (uintptr_t)s)) != NULL);
}

static int str_in_image(const struct img_hdr *h, const char *s, const char *want)
{
	size_t n = strlen(want) + 1;
	return in_image(h, s, n) && memcmp(s, want, n) == 0;
}

static int own_in_image(const struct img_hdr *h)
{
	for (int i = 0; i < AG_OWN_N; i++)
		if (!any_str_in_image(h, h->own.given[i]) || !any_str_in_image(h, h->own.real[i]) ||
		    !h->own.given[i] != !h->own.real[i])
			return 0;
	return 1;
}

struct ag_policy *ag_policy_image_map(const char *path, const struct ag_policy_env *env,
				      char rules_hash[65], struct ag_own_names *own)
{
	struct img_hdr hd;
	struct stat st;
	void *m;

	if (!img_inputs_ok(env))
		return NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	/* Its pointers are taken as they are: only a file that the session's
	 * own user (or root) wrote and nobody else can change is trusted.
	 * Owned by the user the program was started as (the kernel's word
	 * at exec, no system call) or by root. */
	uid_t euid = (uid_t)getauxval(AT_EUID);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 022) ||
	    (st.st_uid != euid && st.st_uid != 0) ||
	    pread(fd, &hd, sizeof hd, 0) != (ssize_t)sizeof hd ||
	    memcmp(hd.magic, IMG_MAGIC, sizeof hd.magic) != 0 || hd.layout != AG_LAYOUT_ID ||
	    hd.size != (uint64_t)st.st_size || hd.size < sizeof hd || hd.base % IMG_ALIGN ||
	    hd.base < IMG_LO || hd.base >= IMG_LO + IMG_SPAN) {
		close(fd);
		return NULL;
	}
	m = mmap((void *)(uintptr_t)hd.base, hd.size, PROT_READ,
		 MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return NULL;
	const struct img_hdr *h = m;
	if (m != (void *)(uintptr_t)hd.base || memcmp(h, &hd, sizeof hd) != 0 ||
	    !in_image(h, h->policy, sizeof *h->policy) || h->policy->image != m ||
	    h->policy->image_size != h->size || h->rules_hash[64] ||
	    !str_in_image(h, h->home, env->home) ||
	    !str_in_image(h, h->workspace, env->workspace) ||
	    !str_in_image(h, h->tmpdir, tmpdir_of(env)) || !own_in_image(h)) {
		if (m != MAP_FAILED)
			munmap(m, hd.size);
		return NULL;
	}
	memcpy(rules_hash, h->rules_hash, 65);
	if (own)
		*own = h->own;
	return (struct ag_policy *)h->policy;
}

/*
 * dlsym and dlvsym. A lookup by name on a handle to libc itself hands out
 * libc's own function, past the guard: ctypes.CDLL("libc.so.6").unlink, a
 * plugin host that dlopens libc. Such a lookup of a name we interpose gets
 * our hook instead.
 *
 * RTLD_NEXT means "after the caller", and libc tells the caller by the
 * return address: these two entries are a few instructions of assembly
 * that jump (not call) to libc's dlsym for RTLD_NEXT and RTLD_DEFAULT, so
 * other preloaded libraries (a sanitizer's runtime) and our own lib/real.c
 * still find what follows them. libc's two functions are found in the
 * loader's list and libc's symbol table by hand: asking dlsym for dlsym
 * would come back here.
 */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* Our hooks, by the names lib/interpose.def gives them: only their
 * addresses matter here, so they are bare symbols under other C names. */
#define AG_LIBC(ret, name, params, args) extern char hook_##name[] __asm__(#name);
#define AG_LIBC_VA(ret, name, params) extern char hook_##name[] __asm__(#name);
#define AG_ENTRY(name)
#define AG_CLIENT(name)
#include "interpose.def"
#undef AG_LIBC
#undef AG_LIBC_VA

static const struct hook {
	const char *name;
	const void *ours;
} hooks[] = {
#define AG_LIBC(ret, name, params, args) {#name, hook_##name},
#define AG_LIBC_VA(ret, name, params) {#name, hook_##name},
#include "interpose.def"
#undef AG_LIBC
#undef AG_LIBC_VA
#undef AG_ENTRY
#undef AG_CLIENT
};

int ag_real_ours(const void *f);   /* lib/guard.h, whose headers declare the hooks */

__attribute__((visibility("hidden"))) void *(*ag_libc_dlsym)(void *, const char *);
__attribute__((visibility("hidden"))) void *(*ag_libc_dlvsym)(void *, const char *,
							       const char *);
static void *libc;

/* What the entries reach before their first use runs inside a sanitizer's
 * start (its runtime asks dlsym for libc's functions): uninstrumented, as
 * the sanitizer's shadow memory may not be there yet. */
#define EARLY __attribute__((no_sanitize("address", "undefined")))

/* Byte compare of our own: a sanitizer's interceptors of libc's string
 * functions are not ready then either. */
EARLY static int same(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

EARLY static uint32_t gnu_hash(const char *s)
{
	uint32_t h = 5381;
	for (; *s; s++)
		h = h * 33 + (unsigned char)*s;
	return h;
}

/* The default version of `name` in the object lm, from its GNU hash table;
 * NULL if it is not there. */
EARLY static void *elf_find(const struct link_map *lm, const char *name)
{
	const ElfW(Sym) *symtab = NULL;
	const char *strtab = NULL;
	const uint32_t *gh = NULL;
	const ElfW(Half) *versym = NULL;

	for (const ElfW(Dyn) *d = lm->l_ld; d && d->d_tag != DT_NULL; d++) {
		/* The loader has made these absolute; be safe if not. */
		uintptr_t p = d->d_un.d_ptr;
		if (p < lm->l_addr)
			p += lm->l_addr;
		switch (d->d_tag) {
		case DT_SYMTAB: symtab = (const void *)p; break;
		case DT_STRTAB: strtab = (const void *)p; break;
		case DT_GNU_HASH: gh = (const void *)p; break;
		case DT_VERSYM: versym = (const void *)p; break;
		}
	}
	if (!symtab || !strtab || !gh)
		return NULL;
	uint32_t nbuckets = gh[0], symoff = gh[1], bloom = gh[2];
	const uint32_t *buckets = (const uint32_t *)((const ElfW(Addr) *)(gh + 4) + bloom);
	const uint32_t *chain = buckets + nbuckets;
	uint32_t h = gnu_hash(name);
	if (!nbuckets)
		return NULL;
	for (uint32_t i = buckets[h % nbuckets]; i >= symoff; i++) {
		uint32_t h2 = chain[i - symoff];
		const ElfW(Sym) *s = &symtab[i];
		if ((h | 1) == (h2 | 1) && s->st_shndx != SHN_UNDEF &&
		    same(strtab + s->st_name, name) &&
		    !(versym && (versym[i] & 0x8000)))
			return (void *)(lm->l_addr + s->st_value);
		if (h2 & 1)
			break;
	}
	return NULL;
}

/* Does an object's name end in "/libc.so.6"? */
EARLY static int is_libc(const char *name)
{
	static const char want[] = "/libc.so.6";
	size_t n = 0, w = sizeof want - 1;
	while (name && name[n])
		n++;
	return n >= w && same(name + n - w, want);
}

/* Called by the entries below before their first use. No libc call here:
 * a sanitizer's runtime asks dlsym for libc's functions while starting, and
 * its dlopen and dl_iterate_phdr are not ready yet. The loader's list of
 * objects is. */
EARLY __attribute__((visibility("hidden"))) void ag_dl_resolve(void)
{
	if (__atomic_load_n(&ag_libc_dlvsym, __ATOMIC_ACQUIRE))
		return;
	struct link_map *lm = _r_debug.r_map;
	while (lm && !is_libc(lm->l_name))
		lm = lm->l_next;
	if (!lm)
		return;
	libc = lm;
	void *s = elf_find(lm, "dlsym"), *v = elf_find(lm, "dlvsym");
	__atomic_store_n(&ag_libc_dlsym, (void *(*)(void *, const char *))s, __ATOMIC_RELEASE);
	__atomic_store_n(&ag_libc_dlvsym, (void *(*)(void *, const char *, const char *))v,
			 __ATOMIC_RELEASE);
}

/* Where libc keeps each function we interpose, found once: a lookup that
 * lands on one of these addresses, by its name or an alias (__connect is
 * connect, __open is open), gets our hook. */
static const void *libc_addr[sizeof hooks / sizeof hooks[0]];
static pthread_once_t addrs_once = PTHREAD_ONCE_INIT;

void *ag_libc_handle(void);   /* lib/real.c */

/* By a handle dlopen made: libc's entry in the loader's list is no handle
 * until libc has been opened once (its search list is empty before). */
static void find_addrs(void)
{
	void *h = ag_libc_handle();

	for (size_t i = 0; h && i < sizeof hooks / sizeof hooks[0]; i++)
		libc_addr[i] = ag_libc_dlsym(h, hooks[i].name);
}

/* libc's own function, asked for by someone else: ours instead. Only
 * libc's default versions: a plugin's own `unlink`, or an old version
 * with another ABI, is left as it is. */
static void *swap(void *found, const char *name, const void *caller)
{
	if (!found || !libc || ag_real_ours(caller) || ag_real_ours(found))
		return found;
	pthread_once(&addrs_once, find_addrs);
	size_t hit = sizeof hooks / sizeof hooks[0];
	for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++) {
		if (libc_addr[i] != found)
			continue;
		if (hit == sizeof hooks / sizeof hooks[0] || strcmp(hooks[i].name, name) == 0)
			hit = i;   /* the name itself over an alias at the same place */
	}
	if (hit < sizeof hooks / sizeof hooks[0] && ag_real_ours(hooks[hit].ours))
		return (void *)hooks[hit].ours;
	return found;
}

/* Reached by a jump from the entries: the return address is the caller's. */
__attribute__((visibility("hidden"), noinline)) void *ag_dlsym_handle(void *h, const char *name)
{
	const void *caller = __builtin_return_address(0);
	if (!ag_libc_dlsym) {
		ag_dl_resolve();
		if (!ag_libc_dlsym)
			return NULL;
	}
	return swap(ag_libc_dlsym(h, name), name, caller);
}

__attribute__((visibility("hidden"), noinline)) void *ag_dlvsym_handle(void *h, const char *name,
									 const char *version)
{
	const void *caller = __builtin_return_address(0);
	if (!ag_libc_dlvsym) {
		ag_dl_resolve();
		if (!ag_libc_dlvsym)
			return NULL;
	}
	return swap(ag_libc_dlvsym(h, name, version), name, caller);
}

/* RTLD_NEXT ((void *)-1) and RTLD_DEFAULT (NULL, which finds our hooks
 * first anyway): straight on to libc with the caller's return address; a
 * handle: the C above. The slow path keeps the
 * argument registers across the one-time lookup (three pushes keep the
 * stack 16-byte aligned at the call). */
#define DL_ENTRY(sym, fnptr, handler)                                         \
	__asm__(".text\n"                                                      \
		".globl " #sym "\n"                                            \
		".type " #sym ", @function\n"                                  \
		#sym ":\n"                                                     \
		"	cmpq $-1, %rdi\n"                                      \
		"	je 3f\n"                                               \
		"	testq %rdi, %rdi\n"                                    \
		"	jne " #handler "\n"                                    \
		"3:	movq " #fnptr "(%rip), %rax\n"                         \
		"	testq %rax, %rax\n"                                    \
		"	jnz 1f\n"                                              \
		"	pushq %rdi\n"                                          \
		"	pushq %rsi\n"                                          \
		"	pushq %rdx\n"                                          \
		"	call ag_dl_resolve\n"                                  \
		"	popq %rdx\n"                                           \
		"	popq %rsi\n"                                           \
		"	popq %rdi\n"                                           \
		"	movq " #fnptr "(%rip), %rax\n"                         \
		"	testq %rax, %rax\n"                                    \
		"	jz 2f\n"                                               \
		"1:	jmp *%rax\n"                                          \
		"2:	xorl %eax, %eax\n"                                     \
		"	ret\n"                                                 \
		".size " #sym ", .-" #sym "\n")

DL_ENTRY(dlsym, ag_libc_dlsym, ag_dlsym_handle);
DL_ENTRY(dlvsym, ag_libc_dlvsym, ag_dlvsym_handle);

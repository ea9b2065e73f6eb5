/*
 * libyaml and nettle for the preload library, loaded the first time they
 * are needed. Most guarded processes (true, cat, cc1, ...) never parse
 * rules or hash anything; loading both at every exec cost ~140 us a
 * process (make bench, spawn loop). These hidden definitions satisfy
 * policy.c and hash.c inside the library only; the CLI links the real
 * libraries directly.
 */
#include <dlfcn.h>
#include <errno.h>
#include <nettle/sha2.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

static void *open_lib(void **handle, const char *soname)
{
	void *h = __atomic_load_n(handle, __ATOMIC_ACQUIRE);

	if (!h) {
		h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			static const char msg[] = "agentguard: cannot load a library it needs: ";
			(void)!write(2, msg, sizeof msg - 1);
			(void)!write(2, soname, strlen(soname));
			(void)!write(2, "\n", 1);
			return NULL;
		}
		__atomic_store_n(handle, h, __ATOMIC_RELEASE);
	}
	return h;
}

static void *yaml, *nettle;

/* One forwarding function per symbol; `fail` is what the caller sees when
 * the library is missing (policy loading then fails closed). */
#define LAZY(handle, soname, ret, name, params, args, fail)                        \
	ret name params                                                             \
	{                                                                           \
		static ret (*f) params;                                             \
		ret (*g) params = __atomic_load_n(&f, __ATOMIC_ACQUIRE);           \
		if (!g) {                                                           \
			void *h = open_lib(&handle, soname);                        \
			g = h ? (ret (*) params)dlsym(h, #name) : NULL;             \
			if (!g)                                                     \
				return fail;                                        \
			__atomic_store_n(&f, g, __ATOMIC_RELEASE);                  \
		}                                                                   \
		return g args;                                                      \
	}

#define Y "libyaml-0.so.2"
LAZY(yaml, Y, int, yaml_parser_initialize, (yaml_parser_t *p), (p), 0)
LAZY(yaml, Y, int, yaml_parser_parse, (yaml_parser_t *p, yaml_event_t *e), (p, e), 0)

#define LAZY_VOID(handle, soname, name, params, args)                              \
	void name params                                                            \
	{                                                                           \
		static void (*f) params;                                            \
		void (*g) params = __atomic_load_n(&f, __ATOMIC_ACQUIRE);          \
		if (!g) {                                                           \
			void *h = open_lib(&handle, soname);                        \
			g = h ? (void (*) params)dlsym(h, #name) : NULL;            \
			if (!g)                                                     \
				return;                                             \
			__atomic_store_n(&f, g, __ATOMIC_RELEASE);                  \
		}                                                                   \
		g args;                                                             \
	}

LAZY_VOID(yaml, Y, yaml_parser_delete, (yaml_parser_t *p), (p))
LAZY_VOID(yaml, Y, yaml_event_delete, (yaml_event_t *e), (e))
LAZY_VOID(yaml, Y, yaml_parser_set_input_string,
	  (yaml_parser_t *p, const unsigned char *in, size_t n), (p, in, n))

/* Without nettle no hash comes out: sessions then refuse to start (the
 * frozen rules cannot be checked), which fails closed. */
#define N "libnettle.so.8"
LAZY_VOID(nettle, N, nettle_sha256_init, (struct sha256_ctx *c), (c))
LAZY_VOID(nettle, N, nettle_sha256_update, (struct sha256_ctx *c, size_t n, const uint8_t *d),
	  (c, n, d))
LAZY_VOID(nettle, N, nettle_sha256_digest, (struct sha256_ctx *c, size_t n, uint8_t *d),
	  (c, n, d))

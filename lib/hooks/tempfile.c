/*
 * mkstemp and its kin make a new file with libc's own internal open, which
 * the library does not see. Under the kernel layer's Landlock floor the
 * filter reports every open that may create a file (tools/kernel.c): each
 * compiler temporary would be a round trip to the supervisor. Under the
 * floor they are made here instead, through the library's open (the gate,
 * and the supervisor only where the floor refuses), as libc makes them:
 * six random letters in place of XXXXXX, O_EXCL, again while the name is
 * taken. Without the floor, libc's own.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "floor.h"
#include "guard.h"

static int make_temp(char *tmpl, int suffixlen, int flags)
{
	static const char letters[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	size_t n = tmpl ? strlen(tmpl) : 0;

	if (suffixlen < 0 || n < (size_t)suffixlen + 6 ||
	    memcmp(tmpl + n - (size_t)suffixlen - 6, "XXXXXX", 6) != 0 ||
	    (flags & ~(O_APPEND | O_CLOEXEC | O_DSYNC | O_SYNC | O_NOATIME | O_LARGEFILE))) {
		errno = EINVAL;
		return -1;
	}
	char *x = tmpl + n - (size_t)suffixlen - 6;
	for (int attempt = 0; attempt < 62 * 62 * 62; attempt++) {
		unsigned char r[6];
		if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
			uint64_t t = (uint64_t)ag_mono_ns() * 0x9e3779b97f4a7c15ull + (uint64_t)attempt;
			memcpy(r, &t, sizeof r);
		}
		for (int i = 0; i < 6; i++)
			x[i] = letters[r[i] % 62];
		int fd = AG_REAL(open)(tmpl, O_RDWR | O_CREAT | O_EXCL | flags, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	memcpy(x, "XXXXXX", 6);
	errno = EEXIST;
	return -1;
}

#define TEMP_ENTRY(name, params, call, suffix, flags)                          \
	AG_EXPORT int name params                                              \
	{                                                                      \
		if (!ag_floor_on() || AG_OWN_WORK())                           \
			return AG_REAL(name) call;                             \
		return make_temp(tmpl, (suffix), (flags));                     \
	}

TEMP_ENTRY(mkstemp, (char *tmpl), (tmpl), 0, 0)
TEMP_ENTRY(mkstemp64, (char *tmpl), (tmpl), 0, 0)
TEMP_ENTRY(mkostemp, (char *tmpl, int fl), (tmpl, fl), 0, fl)
TEMP_ENTRY(mkostemp64, (char *tmpl, int fl), (tmpl, fl), 0, fl)
TEMP_ENTRY(mkstemps, (char *tmpl, int sl), (tmpl, sl), sl, 0)
TEMP_ENTRY(mkstemps64, (char *tmpl, int sl), (tmpl, sl), sl, 0)
TEMP_ENTRY(mkostemps, (char *tmpl, int sl, int fl), (tmpl, sl, fl), sl, fl)
TEMP_ENTRY(mkostemps64, (char *tmpl, int sl, int fl), (tmpl, sl, fl), sl, fl)

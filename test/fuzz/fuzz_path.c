/* ag_path_lexical: the result is absolute, has no "." or ".." component and
 * no repeated slash, and normalizing it again changes nothing. Input: base,
 * a NUL, then the path. */
#include "agentguard.h"
#include "fuzz.h"

static void check_clean(const char *out)
{
	if (out[0] != '/')
		abort();
	if (!out[1])
		return;   /* "/" */
	for (const char *c = out; *c;) {   /* c: at a '/' */
		const char *e = strchrnul(c + 1, '/');
		size_t n = (size_t)(e - c - 1);
		if (n == 0 || (n == 1 && c[1] == '.') || (n == 2 && c[1] == '.' && c[2] == '.'))
			abort();
		c = e;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = fuzz_str(data, size);
	if (!in)
		return 0;
	const char *p = in + strlen(in) + (strlen(in) < size ? 1 : 0);
	char base[AG_PATH_MAX + 2] = "/";
	if (in[0] == '/' && strlen(in) < AG_PATH_MAX &&
	    ag_path_lexical("/", in, base, sizeof base) < 0)
		abort();   /* shorter than its buffer: cannot be too long */
	char out[AG_PATH_MAX], again[AG_PATH_MAX];
	for (size_t cap = 1; cap <= sizeof out; cap = cap < 64 ? cap + 1 : cap * 4) {
		if (ag_path_lexical(base, p, out, cap) < 0)
			continue;
		if (strlen(out) >= cap)
			abort();
		check_clean(out);
		if (ag_path_lexical("/", out, again, sizeof again) < 0 || strcmp(out, again))
			abort();
	}
	free(in);
	return 0;
}

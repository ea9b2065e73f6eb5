/* The SQL classifier on arbitrary bytes, both length-bounded and as a C
 * string: the same class either way when there is no NUL inside. */
#include "agentguard.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum ag_sql_class a = ag_sql_classify((const char *)data, (long)size);

	if ((int)a < 0 || a >= AG_SQL_CLASS_COUNT)
		abort();
	if (!memchr(data, 0, size)) {
		char *s = fuzz_str(data, size);
		if (s && ag_sql_classify(s, -1) != a)
			abort();
		free(s);
	}
	return 0;
}

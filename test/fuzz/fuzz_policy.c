/* The rules loader on arbitrary text: an error message or a policy, never
 * a crash; a policy that loads must then decide on a few ops. */
#include <stdio.h>

#include "agentguard.h"
#include "fuzz.h"

static const struct ag_policy_env ENV = {
	.home = "/home/u", .workspace = "/w", .cwd = "/w/sub", .tmpdir = "/tmp",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct ag_policy *p = ag_policy_load("fuzz.yaml", (const char *)data, size, &ENV,
					     err, sizeof err);
	if (!p) {
		if (!memchr(err, 0, sizeof err) || !err[0])
			abort();   /* an error must say something */
		return 0;
	}
	static const char *const argv[] = {"rm", "-rf", "--force", "/w/x", NULL};
	const struct ag_op ops[] = {
		{.kind = AG_OP_DELETE, .path = "/w/.git/index", .port = -1, .sql_class = -1},
		{.kind = AG_OP_RENAME, .path = "/home/u/a", .target = "/w/b", .port = -1,
		 .sql_class = -1},
		{.kind = AG_OP_EXEC, .path = "/bin/rm", .argv = argv, .port = -1, .sql_class = -1},
		{.kind = AG_OP_CONNECT, .host = "db.prod.example.com", .addr = "10.0.0.1",
		 .port = 5432, .sql_class = -1},
		{.kind = AG_OP_SQL, .sql = "DELETE FROM t", .database = "/w/app.db", .port = -1,
		 .sql_class = -1},
	};
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		struct ag_verdict v;
		ag_decide(p, &ops[i], &v);
	}
	ag_policy_free(p);
	return 0;
}

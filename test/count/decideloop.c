/* decideloop RULES N KIND: N decisions against RULES (a file, or "builtin")
 * with nothing else around them, for test/e2e/t_counts.sh to count under
 * callgrind. KIND: delete (a file in the workspace, one in /tmp, an SSH
 * key, in turn) or exec (make -j2). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentguard.h"

int main(int argc, char **argv)
{
	struct ag_policy_env env = {.home = "/home/u", .workspace = "/home/u/proj",
				    .cwd = "/home/u/proj", .tmpdir = "/tmp"};
	char err[512];
	struct ag_policy *p;

	if (argc != 4)
		return 2;
	if (strcmp(argv[1], "builtin") == 0)
		p = ag_policy_load("builtin", ag_default_rules, ag_default_rules_len, &env, err,
				   sizeof err);
	else
		p = ag_policy_load_file(argv[1], &env, err, sizeof err);
	if (!p) {
		fprintf(stderr, "decideloop: %s\n", err);
		return 1;
	}
	long n = atol(argv[2]);
	int exec = strcmp(argv[3], "exec") == 0;
	static const char *const av[] = {"make", "-j2", NULL};
	static const char *const paths[] = {"/home/u/proj/src/main.c", "/tmp/x/y.o",
					    "/home/u/.ssh/id_ed25519"};
	struct ag_verdict v = {0};
	for (long i = 0; i < n; i++) {
		struct ag_op op = {.kind = exec ? AG_OP_EXEC : AG_OP_DELETE,
				   .path = exec ? "/usr/bin/make" : paths[i % 3],
				   .argv = exec ? av : NULL, .caller = "/usr/bin/python3",
				   .port = -1, .sql_class = -1};
		ag_decide(p, &op, &v);
	}
	printf("%s\n", ag_action_name(v.action));
	ag_policy_free(p);
	return 0;
}

/* agentguard check: load rule files the way a session would. */
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char help[] =
"Usage: agentguard check FILE...\n"
"\n"
"Parse, validate and compile each rule file and run its rules' `tests:`\n"
"examples, exactly as 'agentguard run' would before starting an agent.\n"
"Prints 'FILE: ok (N rules)' or 'FILE:LINE:COL: what is wrong'.\n"
"$HOME, ~ and a relative `workspace:` are taken from this shell.\n"
"\n"
"Exit status: 0 when every file is good, 1 when any is not.\n";

static int cmd_check(int argc, char **argv)
{
	struct cli_opts co = { 0 };
	char cwd[AG_PATH_MAX], err[2048];
	int c, status = CLI_OK, bad = 0;

	optind = 0;
	while ((c = cli_getopt(argc, argv, NULL, &co, &status)) != -1)
		if (c == CLI_OPT_STOP)
			return status;
	if (optind >= argc)
		return cli_usage("name the rule files to check");

	const char *home = getenv("HOME");
	if (!home || home[0] != '/') {
		struct passwd *pw = getpwuid(getuid());
		home = pw && pw->pw_dir ? pw->pw_dir : "/";
	}
	struct ag_policy_env env = {
		.home = home,
		.cwd = getcwd(cwd, sizeof cwd) ? cwd : "/",
		.tmpdir = getenv("TMPDIR"),
	};
	for (int i = optind; i < argc; i++) {
		err[0] = 0;
		errno = 0;
		struct ag_policy *p = ag_policy_load_file(argv[i], &env, err, sizeof err);
		if (!p) {
			/* The loader names the file itself; a bare errno does not. */
			if (err[0]) {
				cli_put(stderr, err);   /* it may quote the file */
				fputc('\n', stderr);
			} else {
				fprintf(stderr, "%s: cannot load: %s\n", argv[i],
					errno ? strerror(errno) : "unknown error");
			}
			bad = 1;
			continue;
		}
		size_t n = ag_policy_rule_count(p);
		printf("%s: ok (%zu rule%s)\n", argv[i], n, n == 1 ? "" : "s");
		ag_policy_free(p);
	}
	return bad ? CLI_FAIL : CLI_OK;
}

const struct cli_command cli_cmd_check = {
	.name = "check",
	.summary = "validate rule files and run their examples",
	.help = help,
	.main = cmd_check,
};

/* agentguard check: load rule files the way a session would. */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char help[] =
"Usage: agentguard check [--list] FILE...\n"
"\n"
"Parse, validate and compile each rule file, with the files it extends and\n"
"the machine's managed rules (/etc/agentguard/managed.yaml) over it, and run\n"
"its rules' `tests:` examples, exactly as 'agentguard run' would before\n"
"starting an agent. Prints 'FILE: ok (N rules)' and, when several files\n"
"make the rules, how many rules each gave; or 'FILE:LINE:COL: what is wrong'.\n"
"$HOME, ~ and a relative `workspace:` are taken from this shell.\n"
"\n"
"  --list    every rule: its action, id and the file:line:col it came from\n"
"\n"
"Exit status: 0 when every file is good, 1 when any is not.\n";

enum { OPT_LIST = 1 };
static const struct option opts[] = {
	{ "list", no_argument, NULL, OPT_LIST },
	{ NULL, 0, NULL, 0 },
};

/* The file is a copy of the built-in set (rules/default.yaml). */
static int is_builtin_copy(const char *path)
{
	FILE *f = fopen(path, "rb");
	int same = 0;

	if (!f)
		return 0;
	char *buf = malloc(ag_default_rules_len + 1);
	if (buf)
		same = fread(buf, 1, ag_default_rules_len + 1, f) == ag_default_rules_len &&
		       memcmp(buf, ag_default_rules, ag_default_rules_len) == 0;
	free(buf);
	fclose(f);
	return same;
}

static void show_layers(const struct ag_policy *p, int list)
{
	const char *name;
	int managed, n = 0;
	size_t count[AG_LAYERS_MAX] = {0}, over[AG_LAYERS_MAX] = {0};
	struct ag_rule_info r;

	for (size_t i = 0; ag_policy_rule_info(p, i, &r) == 0; i++) {
		if (r.layer >= 0 && r.layer < AG_LAYERS_MAX) {
			count[r.layer]++;
			over[r.layer] += strstr(r.origin, " (overrides ") != NULL;
		}
		if (list) {
			printf("  %-9s ", ag_action_name(r.action));
			cli_put(stdout, r.id);
			fputs("  ", stdout);
			cli_put(stdout, r.origin);
			puts(r.locked ? "  [locked]" : "");
		}
	}
	while (ag_policy_layer(p, n, &name, &managed) == 0)
		n++;
	if (n > 1 || list)
		for (int l = 0; l < n; l++) {
			ag_policy_layer(p, l, &name, &managed);
			printf("  layer %d: ", l + 1);
			cli_put(stdout, name);
			printf("%s: %zu rule%s", managed ? " (managed)" : "", count[l],
			       count[l] == 1 ? "" : "s");
			if (over[l])
				printf(", %zu of them overriding one below", over[l]);
			putchar('\n');
		}
	ag_policy_layer(p, 0, &name, &managed);
	if (strcmp(name, "builtin:default.yaml") != 0 && !is_builtin_copy(name))
		printf("  note: it does not extend builtin:default: only its own rules apply "
		       "(say 'extends: builtin:default' to keep the built-in ones under them)\n");
}

static int cmd_check(int argc, char **argv)
{
	struct cli_opts co = { 0 };
	char cwd[AG_PATH_MAX], err[2048];
	int c, status = CLI_OK, bad = 0, list = 0;

	optind = 0;
	while ((c = cli_getopt(argc, argv, opts, &co, &status)) != -1) {
		if (c == CLI_OPT_STOP)
			return status;
		if (c == OPT_LIST)
			list = 1;
		else
			return cli_usage(NULL);
	}
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
		show_layers(p, list);
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

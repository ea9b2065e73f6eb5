/* `agentguard COMMAND ...`: find the command, run it. */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "cli.h"

static const struct cli_command *const commands[] = {
	&cli_cmd_run, &cli_cmd_report, &cli_cmd_restore, &cli_cmd_show, &cli_cmd_diff,
	&cli_cmd_verify, &cli_cmd_export,
	&cli_cmd_check, &cli_cmd_explain, &cli_cmd_sessions, &cli_cmd_gc,
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void help(FILE *f)
{
	fputs("Usage: agentguard COMMAND [OPTIONS] ...\n"
	      "\n"
	      "Guard an AI coding agent with libagentguard.so (LD_PRELOAD), then see what\n"
	      "it did and undo it.\n"
	      "\n"
	      "Commands:\n", f);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-9s %s\n", commands[i]->name, commands[i]->summary);
	fputs("\n"
	      "Every command takes --help and --state-dir DIR (default: $AGENTGUARD_STATE_DIR,\n"
	      "else ${XDG_STATE_HOME:-~/.local/state}/agentguard).\n"
	      "Exit status: 0 success, 1 failure, 2 usage error.\n", f);
}

/* What ingest finds in the spool directory, said like every other warning. */
static void audit_warning(const char *msg)
{
	cli_warn("%s", msg);
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : NULL;

	if (!name) {
		help(stderr);
		return CLI_USAGE;
	}
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 ||
	    strcmp(name, "help") == 0) {
		/* `agentguard help CMD` is what people type after `git help`. */
		if (argc > 2) {
			for (size_t i = 0; i < NCOMMANDS; i++) {
				if (strcmp(argv[2], commands[i]->name) == 0) {
					fputs(commands[i]->help, stdout);
					return CLI_OK;
				}
			}
		}
		help(stdout);
		return CLI_OK;
	}
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (strcmp(name, commands[i]->name) == 0) {
			cli_current = commands[i];
			ag_audit_set_warn(audit_warning);
			return commands[i]->main(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "agentguard: unknown command '%s'.\n", name);
	fprintf(stderr, "Try 'agentguard --help'.\n");
	return CLI_USAGE;
}

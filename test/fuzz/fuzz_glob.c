/*
 * Globs: input is pattern, NUL, subject. Checks that
 *  - every matcher stays within its O(|pattern| * |subject|) step bound
 *    (the bound test/unit/test_glob_cost.c asserts on chosen inputs);
 *  - a rule's compiled path glob (prefix and shape fast paths) agrees with
 *    ag_glob_match, and its argv glob with ag_glob_flat, through ag_decide.
 */
#include <stdio.h>

#include "agentguard.h"
#include "fuzz.h"
#include "policy_internal.h"

static const struct ag_policy_env ENV = {
	.home = "/home/u", .workspace = "/w", .cwd = "/w", .tmpdir = "/tmp",
};

static void bounded(unsigned long steps, size_t pl, size_t sl)
{
	if (steps > 4ul * (pl + 1) * (sl + 1) + 16) {
		fprintf(stderr, "%lu steps for %zu x %zu\n", steps, pl, sl);
		abort();
	}
}

/* Plain enough to put in a rule verbatim and to mean the same there. */
static int plain(const char *pat)
{
	if (pat[0] != '/' || strstr(pat, "//") || pat[strlen(pat) - 1] == '/')
		return 0;
	for (const char *c = pat; *c; c++)
		if (!strchr("abc/*?", *c))
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = fuzz_str(data, size);
	if (!in)
		return 0;
	const char *pat = in, *subj = in + strlen(in) + (strlen(in) < size ? 1 : 0);
	size_t pl = strlen(pat), sl = strlen(subj);

	ag_match_steps = 0;
	int flat = ag_glob_flat(pat, subj, sl, 0);
	bounded(ag_match_steps, pl, sl);
	ag_match_steps = 0;
	ag_glob_flat(pat, subj, sl, 1);
	bounded(ag_match_steps, pl, sl);
	if (ag_glob_check(pat)) {
		free(in);
		return 0;
	}
	ag_match_steps = 0;
	int m = ag_glob_match(pat, subj);
	bounded(ag_match_steps, pl, sl);

	if (plain(pat) && pl < 200 && !strchr(subj, '\n')) {
		char yaml[1024], err[256];
		snprintf(yaml, sizeof yaml,
			 "version: 1\nrules:\n"
			 "  - {id: p, on: delete, path: ['%s'], action: deny}\n"
			 "  - {id: a, on: exec, args: ['%s'], action: deny}\n", pat, pat + 1);
		struct ag_policy *p = ag_policy_load("g.yaml", yaml, strlen(yaml), &ENV, err,
						     sizeof err);
		if (!p) {
			fprintf(stderr, "rule did not load: %s\n", err);
			abort();
		}
		struct ag_verdict v;
		struct ag_op del = {.kind = AG_OP_DELETE, .path = subj, .port = -1,
				    .sql_class = -1};
		ag_decide(p, &del, &v);
		if ((v.rule_id != NULL) != m) {
			fprintf(stderr, "decide and ag_glob_match disagree on %s\n", pat);
			abort();
		}
		/* A positional argument: the argv glob is the pattern without its
		 * leading '/', matched flat. */
		const char *argv[] = {"x", subj, NULL};
		struct ag_op ex = {.kind = AG_OP_EXEC, .path = "/bin/x", .argv = argv,
				   .port = -1, .sql_class = -1};
		ag_decide(p, &ex, &v);
		if (subj[0] != '-' && (v.rule_id != NULL) != ag_glob_flat(pat + 1, subj, sl, 0)) {
			fprintf(stderr, "decide and ag_glob_flat disagree on %s\n", pat + 1);
			abort();
		}
		ag_policy_free(p);
	}
	(void)flat;
	free(in);
	return 0;
}

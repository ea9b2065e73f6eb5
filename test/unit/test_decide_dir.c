/* ag_decide_dir: a verdict it says holds for every file of a directory
 * must be what ag_decide says for each of them, whatever the rules and
 * the names; and it must say so where the built-in rules allow it, or the
 * guard's per-directory memory would never be used. */
#include <glob.h>

#include "helpers.h"
#include "policy_internal.h"

static const struct ag_policy_env ENV = {.home = "/home/u", .workspace = "/home/u/proj",
					 .cwd = "/home/u/proj", .tmpdir = "/tmp"};

static const char *const dirs[] = {
	"/tmp", "/tmp/build", "/var/tmp/x", "/home/u", "/home/u/.ssh", "/home/u/.config",
	"/home/u/.config/agentguard", "/home/u/.cache/pip", "/home/u/proj", "/home/u/proj/src",
	"/home/u/proj/.git", "/home/u/proj/.git/objects/ab", "/home/u/proj/.git/refs/heads",
	"/home/u/proj/node_modules/x", "/home/u/proj/build", "/etc", "/etc/agentguard", "/usr/bin",
	"/proc/self", "/srv/app3", "/opt/x37/data", "/data/4/q", "/home/u/proj/svc8/tmp",
	"/home/u/proj/keep", "/", "/home", "/var/lib", "/home/u/.aws", "/home/u/.kube",
};

/* Names that one glob or another singles out, and ordinary ones. */
static const char *const names[] = {
	"main.c", "id_rsa", "id_ed25519", "authorized_keys", ".bashrc", ".gitconfig", "config",
	"credentials", "x.db-journal", "x-wal", "a.sqlite-shm", "index", "HEAD", "packed-refs",
	"a.lock", "tmp_obj", "x.tmp", "index.stash.1", ".agentguard.yaml", "rules.yaml",
	"users.db", "users.txt", "conf", "conf2", "keep", "a.bak", "b.o", "ab", "proj", "u",
	".ssh", ".git", "agentguard", "data", "svc8", "tmp", "x", "d3", "e5", "r7", "passwd",
	".netrc", "gen2", "app3", "...", "-", "a b",
};

static const char *const callers[] = {NULL, "/usr/bin/git", "/usr/bin/python3", "/bin/rm",
				      "/usr/bin/shred"};

static const enum ag_op_kind kinds[] = {AG_OP_DELETE, AG_OP_TRUNCATE, AG_OP_WRITE,
					AG_OP_MODE};

/* Every claim checked against each name; the number of claims made. */
static int check_policy(const struct ag_policy *p, const char *what)
{
	int claims = 0;

	for (size_t d = 0; d < sizeof dirs / sizeof *dirs; d++)
		for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++)
			for (size_t c = 0; c < sizeof callers / sizeof *callers; c++) {
				char probe[256];
				snprintf(probe, sizeof probe, "%s/%s", strcmp(dirs[d], "/") ? dirs[d] : "",
					 "first");
				struct ag_op op = {.kind = kinds[k], .path = probe, .caller = callers[c],
						   .port = -1, .sql_class = -1};
				struct ag_verdict all;
				if (!ag_decide_dir(p, &op, &all))
					continue;
				claims++;
				for (size_t n = 0; n < sizeof names / sizeof *names; n++) {
					char path[256];
					snprintf(path, sizeof path, "%s/%s",
						 strcmp(dirs[d], "/") ? dirs[d] : "", names[n]);
					op.path = path;
					struct ag_verdict one;
					ag_decide(p, &op, &one);
					cr_assert_eq(one.action, all.action, "%s: %s %s (caller %s)", what,
						     ag_op_name(kinds[k]), path, callers[c] ? callers[c] : "-");
					cr_assert_str_eq(one.rule_id ? one.rule_id : "-",
							 all.rule_id ? all.rule_id : "-", "%s: %s %s", what,
							 ag_op_name(kinds[k]), path);
				}
			}
	return claims;
}

Test(decide_dir, every_claim_holds_for_every_name_under_the_builtin_rules)
{
	char err[512];
	struct ag_policy *p = ag_policy_load("default", ag_default_rules, ag_default_rules_len,
					     &ENV, err, sizeof err);
	cr_assert_not_null(p, "%s", err);
	int claims = check_policy(p, "built-in");
	cr_assert_gt(claims, 40, "claims made: %d", claims);

	/* Where it must claim: a temporary directory's files are all judged
	 * alike, and so are those outside everything (all denied). */
	static const char *const alike[] = {"/tmp/build/x", "/etc/ssl/certs/x", "/usr/bin/x", "/var/tmp/x/y"};
	for (size_t i = 0; i < sizeof alike / sizeof *alike; i++) {
		struct ag_op op = {.kind = AG_OP_DELETE, .path = alike[i], .caller = "/bin/rm",
				   .port = -1, .sql_class = -1};
		struct ag_verdict v;
		cr_assert(ag_decide_dir(p, &op, &v), "%s: one verdict for the directory", alike[i]);
	}
	/* Never for the directory itself, named with a trailing '/', "." or "..". */
	static const char *const selves[] = {"/tmp/build/", "/tmp/build/.", "/tmp/build/.."};
	for (size_t i = 0; i < sizeof selves / sizeof *selves; i++) {
		struct ag_op op = {.kind = AG_OP_DELETE, .path = selves[i], .caller = "/bin/rm",
				   .port = -1, .sql_class = -1};
		struct ag_verdict v;
		cr_assert_not(ag_decide_dir(p, &op, &v), "%s is no file of the directory", selves[i]);
	}
	/* And where it must not: ~/.ssh holds credentials and other files. */
	struct ag_op op = {.kind = AG_OP_DELETE, .path = "/home/u/.ssh/x", .caller = "/bin/rm",
			   .port = -1, .sql_class = -1};
	struct ag_verdict v;
	cr_assert_not(ag_decide_dir(p, &op, &v), "~/.ssh's files differ by name");
	ag_policy_free(p);
}

Test(decide_dir, every_claim_holds_under_the_shipped_rule_files)
{
	glob_t g;
	cr_assert_eq(glob("rules/*.yaml", 0, NULL, &g), 0, "run from the repo root");
	glob_t e;
	if (glob("examples/rules/*.yaml", 0, NULL, &e) == 0) {
		for (size_t i = 0; i < e.gl_pathc; i++) {
			char err[512];
			struct ag_policy *p = ag_policy_load_file(e.gl_pathv[i], &ENV, err, sizeof err);
			if (p) {
				check_policy(p, e.gl_pathv[i]);
				ag_policy_free(p);
			}
		}
		globfree(&e);
	}
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char err[512];
		struct ag_policy *p = ag_policy_load_file(g.gl_pathv[i], &ENV, err, sizeof err);
		cr_assert_not_null(p, "%s: %s", g.gl_pathv[i], err);
		check_policy(p, g.gl_pathv[i]);
		ag_policy_free(p);
	}
	globfree(&g);
}

/* Globs of every shape glob_dir tells apart, at and around the
 * directories above. */
Test(decide_dir, every_claim_holds_for_globs_of_every_shape)
{
	static const char *const globs[] = {
		"/tmp/**", "/tmp/build", "/tmp/build/**", "/tmp/buil*/**", "/tmp/b*", "*.db-journal",
		"/home/u/proj/**/.git/objects/**", "/home/u/proj/src/main.c", "/home/u/proj/src/*.c",
		"/home/u/proj/src", "/home/u/proj/s", "/etc/agentguard/**", "/etc/*", "/**",
		"/home/u/.ssh/id_*", "/home/u/.ssh/**", "/home/u/proj/.git/**/index", "keep",
		"/srv/app3/*.db", "/srv/app3/users.db/**", "/data/*/q/**", "/opt/x3*/data/**",
		"/home/u/.config/agentguard", "/home/u/.config/**/rules.yaml", "/", "/home/u/proj/svc8/tmp/**",
	};
	static const char *const actions[] = {"deny", "snapshot", "log", "ask", "allow"};
	const size_t ng = sizeof globs / sizeof *globs;
	int claims = 0;
	for (size_t seed = 0; seed < 48; seed++) {
		char y[8192];
		size_t len = (size_t)snprintf(y, sizeof y, "version: 1\nrules:\n");
		for (size_t r = 0; r < 6; r++) {
			size_t a = (seed * 7 + r * 5) % ng, b = (seed * 3 + r * 11 + 1) % ng,
			       u = (seed + r * 13 + 2) % ng;
			char unless[256] = "";
			if ((seed + r) % 3 == 0)
				snprintf(unless, sizeof unless, "    unless: {path: [\"%s\"]}\n", globs[u]);
			else if ((seed + r) % 4 == 1)
				snprintf(unless, sizeof unless,
					 "    unless: [{program: [git], path: [\"%s\"]}, {path: \"*.o\"}]\n",
					 globs[u]);
			len += (size_t)snprintf(y + len, sizeof y - len,
				"  - id: r%zu\n    on: [delete, truncate, write, mode]\n"
				"    path: [\"%s\", \"%s\"]\n%s%s    action: %s\n", r, globs[a], globs[b],
				unless, (seed + r) % 7 == 2 ? "    program: [rm]\n" : "",
				actions[(seed + r) % 5]);
		}
		char err[512];
		struct ag_policy *p = ag_policy_load("shapes.yaml", y, strlen(y), &ENV, err, sizeof err);
		cr_assert_not_null(p, "%s\n%s", err, y);
		claims += check_policy(p, "shapes");
		ag_policy_free(p);
	}
	cr_assert_gt(claims, 500, "claims made: %d", claims);
}

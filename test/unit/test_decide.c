/* ag_decide and ag_explain: precedence, defaults, rename's two subjects,
 * unless, explanations, concurrency and speed. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agentguard.h"

static const struct ag_policy_env ENV = {
	.home = "/h", .workspace = "/w", .cwd = "/w", .tmpdir = "/tmp",
};

static struct ag_policy *load(const char *yaml)
{
	char err[512];
	struct ag_policy *p = ag_policy_load("t.yaml", yaml, strlen(yaml), &ENV, err, sizeof err);
	cr_assert(p, "load failed: %s", err);
	return p;
}

static struct ag_verdict decide(const struct ag_policy *p, const struct ag_op *op)
{
	struct ag_verdict v;
	memset(&v, 0x5a, sizeof v);
	ag_decide(p, op, &v);
	return v;
}

static struct ag_op del(const char *path)
{
	return (struct ag_op){.kind = AG_OP_DELETE, .path = path, .port = -1, .sql_class = -1};
}

static struct ag_op ren(const char *a, const char *b)
{
	return (struct ag_op){.kind = AG_OP_RENAME, .path = a, .target = b, .port = -1,
			      .sql_class = -1};
}

Test(decide, strictest_wins_whatever_the_order)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"rules:\n"
		"  - {id: a-log, on: delete, path: ['/w/**'], action: log}\n"
		"  - {id: b-snap, on: delete, path: ['/w/**'], action: snapshot}\n"
		"  - {id: c-deny, on: delete, path: ['/w/secret/**'], action: deny, reason: secret}\n"
		"  - {id: d-ask, on: delete, path: ['/w/secret/**'], action: ask}\n"
		"  - {id: e-allow, on: delete, path: ['/w/**'], action: allow}\n");
	struct ag_op op = del("/w/src/a.c");
	struct ag_verdict v = decide(p, &op);
	cr_assert_eq(v.action, AG_SNAPSHOT);
	cr_assert_str_eq(v.rule_id, "b-snap");
	cr_assert_null(v.reason);
	cr_assert_eq(v.hard, 0);
	op = del("/w/secret/k");
	v = decide(p, &op);
	cr_assert_eq(v.action, AG_DENY);
	cr_assert_str_eq(v.rule_id, "c-deny");
	cr_assert_str_eq(v.reason, "secret");
	op = del("/elsewhere");
	v = decide(p, &op);
	cr_assert_eq(v.action, AG_ALLOW);
	cr_assert_null(v.rule_id);
	ag_policy_free(p);
}

Test(decide, ties_go_to_file_order)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"rules:\n"
		"  - {id: first, on: exec, program: [rm], action: deny, reason: one}\n"
		"  - {id: second, on: exec, program: ['r*'], action: deny, reason: two, hard: true}\n");
	struct ag_op op = {.kind = AG_OP_EXEC, .path = "/bin/rm", .port = -1};
	struct ag_verdict v = decide(p, &op);
	cr_assert_str_eq(v.rule_id, "first");
	cr_assert_str_eq(v.reason, "one");
	cr_assert_eq(v.hard, 0);
	op.path = "/bin/rmdir";
	v = decide(p, &op);
	cr_assert_str_eq(v.rule_id, "second");
	cr_assert_eq(v.hard, 1);
	ag_policy_free(p);
}

Test(decide, defaults_apply_only_when_no_rule_does)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"defaults: {exec: deny, connect: deny}\n"
		"rules:\n"
		"  - {id: tools, on: exec, program: [git, make, cc], action: allow}\n"
		"  - {id: loud, on: exec, program: [curl], action: log}\n"
		"  - {id: gh, on: connect, host: [github.com], port: [443], action: allow}\n");
	struct ag_op op = {.kind = AG_OP_EXEC, .path = "/usr/bin/git", .port = -1};
	struct ag_verdict v = decide(p, &op);
	cr_assert_eq(v.action, AG_ALLOW);
	cr_assert_str_eq(v.rule_id, "tools");
	op.path = "/usr/bin/curl";
	v = decide(p, &op);
	cr_assert_eq(v.action, AG_LOG, "any applying rule replaces the default");
	op.path = "/usr/bin/nc";
	v = decide(p, &op);
	cr_assert_eq(v.action, AG_DENY);
	cr_assert_null(v.rule_id);
	cr_assert(v.reason && strstr(v.reason, "default"), "%s", v.reason);
	struct ag_op c = {.kind = AG_OP_CONNECT, .host = "github.com", .addr = "140.82.112.3",
			  .port = 443};
	v = decide(p, &c);
	cr_assert_eq(v.action, AG_ALLOW);
	c.port = 22;
	v = decide(p, &c);
	cr_assert_eq(v.action, AG_DENY);
	struct ag_op d = del("/w/x");
	v = decide(p, &d);
	cr_assert_eq(v.action, AG_ALLOW, "ops without a default are allowed");
	cr_assert_null(v.reason);
	ag_policy_free(p);
}

Test(decide, rename_judges_each_path_alone)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"rules:\n"
		"  - id: outside\n"
		"    on: [delete, rename, truncate]\n"
		"    path: ['/**']\n"
		"    unless: {path: ['$WORKSPACE/**', '/tmp/**']}\n"
		"    action: deny\n"
		"  - {id: ws, on: [rename], path: ['$WORKSPACE/**'], action: snapshot}\n");
	struct ag_op op = ren("/tmp/x", "/h/notes");
	struct ag_verdict v = decide(p, &op);
	cr_assert_eq(v.action, AG_DENY, "target outside, source in /tmp");
	cr_assert_str_eq(v.rule_id, "outside");
	op = ren("/h/notes", "/tmp/x");
	v = decide(p, &op);
	cr_assert_eq(v.action, AG_DENY, "source outside");
	op = ren("/tmp/x", "/w/y");
	v = decide(p, &op);
	cr_assert_eq(v.action, AG_SNAPSHOT);
	op = ren("/tmp/x", "/tmp/y");
	v = decide(p, &op);
	cr_assert_eq(v.action, AG_ALLOW);
	op = ren("/tmp/x", NULL);
	v = decide(p, &op);
	cr_assert_eq(v.action, AG_ALLOW, "a missing target never matches");
	ag_policy_free(p);
}

Test(decide, unless_any_mapping_all_matchers)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"rules:\n"
		"  - id: git\n"
		"    on: [delete, rename]\n"
		"    path: ['$WORKSPACE/**']\n"
		"    unless:\n"
		"      - {program: [git], path: ['$WORKSPACE/**/.git/**']}\n"
		"      - {path: ['*.o']}\n"
		"    action: snapshot\n");
	struct ag_op op = del("/w/.git/index.lock");
	op.caller = "/usr/bin/git";
	cr_assert_eq(decide(p, &op).action, AG_ALLOW, "git in .git");
	op.path = "/w/src/a.c";
	cr_assert_eq(decide(p, &op).action, AG_SNAPSHOT, "git outside .git: both matchers needed");
	op.caller = "/usr/bin/python3";
	op.path = "/w/.git/index.lock";
	cr_assert_eq(decide(p, &op).action, AG_SNAPSHOT, "not git");
	op.path = "/w/build/a.o";
	cr_assert_eq(decide(p, &op).action, AG_ALLOW, "second unless");
	/* rename: excepted on one side, applies on the other. */
	op = ren("/w/.git/HEAD.lock", "/w/src/HEAD");
	op.caller = "/usr/bin/git";
	cr_assert_eq(decide(p, &op).action, AG_SNAPSHOT);
	ag_policy_free(p);
}

Test(decide, invalid_input_is_refused)
{
	struct ag_policy *p = load("version: 1\n");
	struct ag_op op = del("/w/x");
	op.kind = (enum ag_op_kind)42;
	struct ag_verdict v = decide(p, &op);
	cr_assert_eq(v.action, AG_DENY);
	v = decide(NULL, &op);
	cr_assert_eq(v.action, AG_DENY);
	ag_decide(p, NULL, &v);
	cr_assert_eq(v.action, AG_DENY);
	ag_policy_free(p);
}

/* ---- explain ------------------------------------------------------------- */

struct seen {
	int n;
	char ids[8][32];
	char why[8][512];
	int excepted[8];
	enum ag_action action[8];
};

static void collect(void *ctx, const struct ag_explain_item *it)
{
	struct seen *s = ctx;
	if (s->n >= 8)
		return;
	snprintf(s->ids[s->n], sizeof s->ids[0], "%s", it->rule_id);
	snprintf(s->why[s->n], sizeof s->why[0], "%s", it->why);
	s->excepted[s->n] = it->excepted;
	s->action[s->n] = it->action;
	s->n++;
}

Test(explain, items_and_why)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"lists:\n"
		"  creds: ['~/.ssh/**', '~/.aws/**']\n"
		"rules:\n"
		"  - {id: ws, on: delete, path: ['$WORKSPACE/**'], action: snapshot}\n"
		"  - {id: creds, on: delete, path: '@creds', action: deny, reason: keep}\n"
		"  - id: all\n"
		"    on: [delete, exec]\n"
		"    action: log\n"
		"  - id: not-git\n"
		"    on: delete\n"
		"    path: ['/h/**']\n"
		"    unless: {program: [git]}\n"
		"    action: ask\n");
	struct ag_op op = del("/h/.ssh/id_rsa");
	op.caller = "/usr/bin/git";
	struct seen s = {0};
	struct ag_verdict v;
	ag_explain(p, &op, collect, &s, &v);
	cr_assert_eq(s.n, 3);
	cr_assert_str_eq(s.ids[0], "creds");
	cr_assert_str_eq(s.why[0], "path /h/.ssh/id_rsa matches ~/.ssh/** (@creds)");
	cr_assert_eq(s.excepted[0], 0);
	cr_assert_eq(s.action[0], AG_DENY);
	cr_assert_str_eq(s.ids[1], "all");
	cr_assert_str_eq(s.why[1], "every delete (no matchers)");
	cr_assert_str_eq(s.ids[2], "not-git");
	cr_assert_eq(s.excepted[2], 1);
	cr_assert_str_eq(s.why[2],
			 "path /h/.ssh/id_rsa matches /h/**; unless program /usr/bin/git matches git");
	cr_assert_eq(v.action, AG_DENY);
	cr_assert_str_eq(v.rule_id, "creds");
	cr_assert_str_eq(v.reason, "keep");

	/* No callback, no verdict pointer: both optional. */
	ag_explain(p, &op, NULL, NULL, NULL);
	ag_policy_free(p);
}

Test(explain, why_for_each_matcher)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"rules:\n"
		"  - {id: x, on: exec, program: [terraform], args: [destroy, '-auto-approve|-force'], action: deny}\n"
		"  - {id: n, on: connect, host: ['10.0.0.0/8'], port: ['5000-6000'], action: deny}\n"
		"  - {id: h, on: connect, host: ['*.corp'], action: log}\n"
		"  - {id: s, on: sql, class: [drop_table], database: ['/**'], action: snapshot}\n"
		"  - {id: u, on: exec, unguarded: true, action: log}\n"
		"  - {id: r, on: rename, path: ['/etc/**'], action: deny}\n");
	struct seen s = {0};
	const char *argv[] = {"terraform", "destroy", "-auto-approve", NULL};
	struct ag_op ex = {.kind = AG_OP_EXEC, .path = "/usr/bin/terraform", .argv = argv,
			   .port = -1, .unguarded = 1};
	ag_explain(p, &ex, collect, &s, NULL);
	cr_assert_eq(s.n, 2);
	cr_assert_str_eq(s.why[0], "program /usr/bin/terraform matches terraform, argument "
				   "\"destroy\" matches destroy, argument \"-auto-approve\" "
				   "matches -auto-approve|-force");
	cr_assert_str_eq(s.why[1], "the program runs unguarded");

	memset(&s, 0, sizeof s);
	struct ag_op c = {.kind = AG_OP_CONNECT, .host = "db.corp", .addr = "10.1.1.1",
			  .port = 5432};
	ag_explain(p, &c, collect, &s, NULL);
	cr_assert_eq(s.n, 2);
	cr_assert_str_eq(s.why[0], "address 10.1.1.1 is in 10.0.0.0/8, port 5432 is in 5000-6000");
	cr_assert_str_eq(s.why[1], "host db.corp matches *.corp");

	memset(&s, 0, sizeof s);
	struct ag_op q = {.kind = AG_OP_SQL, .sql = "DROP TABLE t", .sql_class = AG_SQL_DROP_TABLE,
			  .database = "/w/a.db", .port = -1};
	ag_explain(p, &q, collect, &s, NULL);
	cr_assert_eq(s.n, 1);
	cr_assert_str_eq(s.why[0], "class drop_table, database /w/a.db matches /**");

	memset(&s, 0, sizeof s);
	struct ag_op r = ren("/tmp/a", "/etc/hosts");
	ag_explain(p, &r, collect, &s, NULL);
	cr_assert_eq(s.n, 1);
	cr_assert_str_eq(s.why[0], "target /etc/hosts matches /etc/**");
	ag_policy_free(p);
}

Test(explain, agrees_with_decide)
{
	struct ag_policy_env env = ENV;
	char err[512];
	struct ag_policy *p = ag_policy_load("default", ag_default_rules, ag_default_rules_len,
					     &env, err, sizeof err);
	cr_assert(p, "%s", err);
	const char *paths[] = {"/h/.ssh/id_rsa", "/w/a.c", "/etc/passwd", "/tmp/x", "/w/.git/x",
			       "/h/.bashrc", "/h/.cache/x", "/w/node_modules/a/b.js", "/"};
	const char *callers[] = {NULL, "/usr/bin/git", "/usr/bin/python3"};
	for (int k = AG_OP_DELETE; k <= AG_OP_TRUNCATE; k++)
		for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
			for (size_t j = 0; j < sizeof paths / sizeof *paths; j++)
				for (size_t c = 0; c < 3; c++) {
					struct ag_op op = {.kind = (enum ag_op_kind)k, .path = paths[i],
							   .target = paths[j], .caller = callers[c],
							   .port = -1, .sql_class = -1};
					struct ag_verdict a, b;
					ag_decide(p, &op, &a);
					ag_explain(p, &op, NULL, NULL, &b);
					cr_assert_eq(a.action, b.action, "%s %s", paths[i], paths[j]);
					cr_assert_eq(a.rule_id, b.rule_id, "%s %s", paths[i], paths[j]);
				}
	ag_policy_free(p);
}

/* ---- concurrency and speed ----------------------------------------------- */

static struct ag_policy *shared;

static void *worker(void *arg)
{
	long bad = 0;
	(void)arg;
	for (int i = 0; i < 20000; i++) {
		struct ag_op a = del("/h/.aws/credentials");
		struct ag_op b = del("/w/src/x.c");
		struct ag_op c = ren("/tmp/a", "/etc/x");
		struct ag_verdict v;
		ag_decide(shared, &a, &v);
		bad += v.action != AG_DENY;
		ag_decide(shared, &b, &v);
		bad += v.action != AG_SNAPSHOT;
		ag_decide(shared, &c, &v);
		bad += v.action != AG_DENY;
	}
	return (void *)bad;
}

Test(decide, threads_agree)
{
	char err[512];
	shared = ag_policy_load("default", ag_default_rules, ag_default_rules_len, &ENV, err,
				sizeof err);
	cr_assert(shared, "%s", err);
	pthread_t t[8];
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	for (int i = 0; i < 8; i++) {
		void *bad;
		pthread_join(t[i], &bad);
		cr_assert_eq((long)bad, 0);
	}
	ag_policy_free(shared);
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

Test(decide, speed)
{
	char err[512];
	struct ag_policy *p = ag_policy_load("default", ag_default_rules, ag_default_rules_len,
					     &ENV, err, sizeof err);
	cr_assert(p, "%s", err);
	const char *argv[] = {"cc", "-O2", "-c", "x.c", "-o", "x.o", NULL};
	struct ag_op ops[] = {
		del("/w/src/deep/dir/file.c"),
		del("/tmp/build-1234/obj.o"),
		ren("/w/a.tmp", "/w/a"),
		{.kind = AG_OP_EXEC, .path = "/usr/bin/cc", .argv = argv, .port = -1},
	};
	int n = 200000;
	struct ag_verdict v;
	for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
		double t0 = now_ns();
		for (int i = 0; i < n; i++)
			ag_decide(p, &ops[k], &v);
		double per = (now_ns() - t0) / n;
		cr_log_info("decide op %zu: %.0f ns", k, per);
		/* Generous: the target is well under 1 us; this only catches a
		 * pathological regression (and survives valgrind). */
		cr_expect_lt(per, 50000.0);
	}
	ag_policy_free(p);
}

/* ---- odd operations never crash ------------------------------------------ */

static void ignore(void *ctx, const struct ag_explain_item *it)
{
	(void)ctx;
	cr_assert_not_null(it->why);
}

Test(decide, random_operations)
{
	char err[512];
	struct ag_policy *p = ag_policy_load("default", ag_default_rules, ag_default_rules_len,
					     &ENV, err, sizeof err);
	cr_assert(p, "%s", err);
	static const char *const words[] = {"", "-", "--", "-rf", "--force=", "=", "+", ":",
					    "/", "push", "git", "-f", "of=/dev/sda", "destroy",
					    "--x=y=z", "-a-b", "\xff\xfe", "..", "/w/../h/.ssh",
					    "169.254.169.254", "::ffff:1.2.3.4", "fd00::1%eth0",
					    "a/b", "/h/.ssh/", "[", "*", "localhost/db"};
	const size_t nw = sizeof words / sizeof *words;
	unsigned seed = 99;
	for (int i = 0; i < 20000; i++) {
		const char *argv[6];
		int na = (int)(rand_r(&seed) % 6);
		for (int k = 0; k < na; k++)
			argv[k] = words[rand_r(&seed) % nw];
		argv[na] = NULL;
		struct ag_op op = {
			.kind = (enum ag_op_kind)(rand_r(&seed) % AG_OP_COUNT),
			.path = rand_r(&seed) % 4 ? words[rand_r(&seed) % nw] : NULL,
			.target = rand_r(&seed) % 4 ? words[rand_r(&seed) % nw] : NULL,
			.argv = rand_r(&seed) % 4 ? argv : NULL,
			.unguarded = (int)(rand_r(&seed) % 2),
			.host = rand_r(&seed) % 2 ? words[rand_r(&seed) % nw] : NULL,
			.addr = rand_r(&seed) % 2 ? words[rand_r(&seed) % nw] : NULL,
			.port = (int)(rand_r(&seed) % 70000) - 2,
			.unix_path = rand_r(&seed) % 2 ? words[rand_r(&seed) % nw] : NULL,
			.sql = rand_r(&seed) % 2 ? words[rand_r(&seed) % nw] : NULL,
			.sql_class = (int)(rand_r(&seed) % (AG_SQL_CLASS_COUNT + 3)) - 2,
			.database = rand_r(&seed) % 2 ? words[rand_r(&seed) % nw] : NULL,
			.caller = rand_r(&seed) % 2 ? words[rand_r(&seed) % nw] : NULL,
		};
		struct ag_verdict a, b;
		ag_decide(p, &op, &a);
		cr_assert_lt((unsigned)a.action, AG_ACTION_COUNT);
		ag_explain(p, &op, ignore, NULL, &b);
		cr_assert_eq(a.action, b.action);
		cr_assert_eq(a.rule_id, b.rule_id);
	}
	ag_policy_free(p);
}

/* The program-name prefilter (ag_rule.prog_names) passes over rules for
 * other programs, and never over a rule for this one, by any of its names. */
Test(decide, rules_naming_programs_are_found_by_every_name)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"rules:\n"
		"  - {id: tf, on: exec, program: [terraform, tofu], action: deny}\n"
		"  - {id: py, on: exec, program: ['python3*'], action: ask}\n"
		"  - {id: by-caller, on: delete, program: [rm], path: '/w/**', action: snapshot}\n");
	const char *tf[] = {"terraform", "destroy", NULL};
	struct ag_op op = {.kind = AG_OP_EXEC, .path = "/usr/bin/terraform", .argv = tf,
			   .port = -1, .sql_class = -1};
	cr_assert_str_eq(decide(p, &op).rule_id, "tf");
	op.path = "/opt/tofu";
	cr_assert_str_eq(decide(p, &op).rule_id, "tf");
	/* A symlink named otherwise, to terraform. */
	op.path = "/home/u/bin/t";
	op.real_path = "/usr/bin/terraform";
	cr_assert_str_eq(decide(p, &op).rule_id, "tf");
	op.real_path = NULL;
	op.path = "/usr/bin/python3.11";
	cr_assert_str_eq(decide(p, &op).rule_id, "py");
	op.path = "/usr/bin/terraformer";
	cr_assert_null(decide(p, &op).rule_id);
	/* Run elsewhere: sudo terraform destroy. */
	const char *sudo[] = {"sudo", "terraform", "destroy", NULL};
	op.path = "/usr/bin/sudo";
	op.argv = sudo;
	cr_assert_str_eq(decide(p, &op).rule_id, "tf");

	struct ag_op d = del("/w/a");
	d.caller = "/usr/bin/rm";
	cr_assert_str_eq(decide(p, &d).rule_id, "by-caller");
	d.caller = "/usr/bin/unlink";
	cr_assert_null(decide(p, &d).rule_id);
	ag_policy_free(p);
}

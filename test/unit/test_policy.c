/* Loading rule files: settings, validation errors with their positions,
 * `tests:` examples, and robustness against malformed input. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "agentguard.h"

static const struct ag_policy_env ENV = {
	.home = "/home/u", .cwd = "/w", .tmpdir = "/tmp",
};

static struct ag_policy *load_env(const char *yaml, const struct ag_policy_env *env)
{
	char err[512];
	struct ag_policy *p = ag_policy_load("t.yaml", yaml, strlen(yaml), env, err, sizeof err);
	cr_assert(p, "load failed: %s", err);
	cr_assert_str_empty(err);
	return p;
}

static struct ag_policy *load(const char *yaml)
{
	return load_env(yaml, &ENV);
}

/* The load fails, the error starts with `pos` ("t.yaml:L:C: ") and holds
 * `what`. */
static void expect_err(const char *yaml, const char *pos, const char *what)
{
	char err[512];
	memset(err, 'x', sizeof err);
	struct ag_policy *p = ag_policy_load("t.yaml", yaml, strlen(yaml), &ENV, err, sizeof err);
	cr_assert_null(p, "expected an error for:\n%s", yaml);
	cr_assert(strncmp(err, pos, strlen(pos)) == 0, "error '%s' should start with '%s'", err, pos);
	cr_assert(strstr(err, what), "error '%s' should mention '%s'", err, what);
	cr_assert_null(strchr(err, '\n'), "one line: %s", err);
}

/* ---- settings ------------------------------------------------------------ */

Test(policy, minimal_defaults)
{
	struct ag_policy *p = load("version: 1\n");
	cr_assert_eq(ag_policy_mode(p), AG_MODE_AUTONOMOUS);
	cr_assert_eq(ag_policy_enforce(p), 1);
	cr_assert_str_eq(ag_policy_workspace(p), "/w");
	cr_assert_eq(ag_policy_max_snapshot_bytes(p), 4ull << 30);
	cr_assert_eq(ag_policy_denial_limit(p), 20);
	cr_assert_eq(ag_policy_rule_count(p), 0);
	struct ag_op op = {.kind = AG_OP_EXEC, .path = "/bin/ls", .port = -1};
	struct ag_verdict v;
	ag_decide(p, &op, &v);
	cr_assert_eq(v.action, AG_ALLOW);
	cr_assert_null(v.rule_id);
	cr_assert_null(v.reason);
	ag_policy_free(p);
}

Test(policy, all_settings)
{
	struct ag_policy *p = load(
		"# comment\n"
		"version: 1\n"
		"mode: supervised\n"
		"enforce: false\n"
		"workspace: proj/../proj2\n"
		"snapshots: {max_bytes: 512MiB}\n"
		"limits:\n"
		"  denials: 0\n"
		"defaults: {exec: deny, connect: ask}\n"
		"rules: []\n");
	cr_assert_eq(ag_policy_mode(p), AG_MODE_SUPERVISED);
	cr_assert_eq(ag_policy_enforce(p), 0);
	cr_assert_str_eq(ag_policy_workspace(p), "/w/proj2");
	cr_assert_eq(ag_policy_max_snapshot_bytes(p), 512ull << 20);
	cr_assert_eq(ag_policy_denial_limit(p), 0);
	struct ag_op op = {.kind = AG_OP_EXEC, .path = "/bin/ls", .port = -1};
	struct ag_verdict v;
	ag_decide(p, &op, &v);
	cr_assert_eq(v.action, AG_DENY);
	cr_assert_null(v.rule_id);
	cr_assert_not_null(v.reason, "a default deny still says why");
	op.kind = AG_OP_CONNECT;
	ag_decide(p, &op, &v);
	cr_assert_eq(v.action, AG_ASK);
	op.kind = AG_OP_DELETE;
	ag_decide(p, &op, &v);
	cr_assert_eq(v.action, AG_ALLOW);
	ag_policy_free(p);
}

Test(policy, workspace_sources)
{
	struct ag_policy_env env = ENV;
	struct ag_policy *p = load_env("version: 1\nworkspace: /srv/app/\n", &env);
	cr_assert_str_eq(ag_policy_workspace(p), "/srv/app");
	ag_policy_free(p);

	env.workspace = "/override";
	p = load_env("version: 1\nworkspace: /srv/app\n", &env);
	cr_assert_str_eq(ag_policy_workspace(p), "/override", "env->workspace wins");
	ag_policy_free(p);

	env.workspace = NULL;
	p = load_env("version: 1\nworkspace: ~/code\n", &env);
	cr_assert_str_eq(ag_policy_workspace(p), "/home/u/code");
	ag_policy_free(p);

	/* An existing directory is resolved through symlinks. */
	char dir[] = "/tmp/agpolicyXXXXXX", link[64], want[4096];
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_not_null(realpath(dir, want));
	snprintf(link, sizeof link, "%s.lnk", dir);
	cr_assert_eq(symlink(dir, link), 0);
	env.workspace = link;
	p = load_env("version: 1\n", &env);
	cr_assert_str_eq(ag_policy_workspace(p), want);
	ag_policy_free(p);
	unlink(link);
	rmdir(dir);
}

Test(policy, size_and_quoted_strings)
{
	struct ag_policy *p = load("version: 1\nsnapshots: {max_bytes: \"10GB\"}\n");
	cr_assert_eq(ag_policy_max_snapshot_bytes(p), 10000000000ull);
	ag_policy_free(p);
	p = load("version: 1\nsnapshots: {max_bytes: 0}\n");
	cr_assert_eq(ag_policy_max_snapshot_bytes(p), 0);
	ag_policy_free(p);
}

Test(policy, rule_count_and_index)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"rules:\n"
		"  - {id: a, on: delete, action: log}\n"
		"  - {id: b.c-d_e, on: [exec, connect], action: deny, reason: 'no', hard: true}\n");
	cr_assert_eq(ag_policy_rule_count(p), 2);
	struct ag_op op = {.kind = AG_OP_CONNECT, .addr = "1.2.3.4", .port = 80};
	struct ag_verdict v;
	ag_decide(p, &op, &v);
	cr_assert_str_eq(v.rule_id, "b.c-d_e");
	cr_assert_str_eq(v.reason, "no");
	cr_assert_eq(v.hard, 1);
	ag_policy_free(p);
}

/* ---- errors, each with its position -------------------------------------- */

Test(errors, yaml_syntax)
{
	expect_err("version: 1\nrules: [\n", "t.yaml:3:1: ", "YAML syntax error");
	expect_err("version: 1\n  bad: indent\n", "t.yaml:2:6: ", "YAML syntax error");
	expect_err("version: 1\nmode: \"unterminated\n", "t.yaml:3:1: ", "YAML syntax error");
	expect_err("a: b\n\tc: d\n", "t.yaml:2:1: ", "YAML syntax error");
}

Test(errors, document_shape)
{
	expect_err("", "t.yaml:1:1: ", "empty");
	expect_err("# only a comment\n", "t.yaml:1:1: ", "empty");
	expect_err("- a\n- b\n", "t.yaml:1:1: ", "mapping");
	expect_err("just text\n", "t.yaml:1:1: ", "mapping");
	expect_err("version: 1\n---\nversion: 1\n", "t.yaml:2:1: ", "one YAML document");
	expect_err("mode: supervised\n", "t.yaml:1:1: ", "version");
}

Test(errors, version)
{
	expect_err("version: 2\n", "t.yaml:1:10: ", "unsupported version 2");
	expect_err("version: \"1\"\n", "t.yaml:1:10: ", "whole number");
	expect_err("version: one\n", "t.yaml:1:10: ", "whole number");
}

Test(errors, unknown_and_duplicate_keys)
{
	expect_err("version: 1\nmodes: x\n", "t.yaml:2:1: ", "unknown key 'modes'");
	expect_err("version: 1\nversion: 1\n", "t.yaml:2:1: ", "duplicate key 'version'");
	expect_err("version: 1\nsnapshots: {max_bytes: 1, max: 2}\n", "t.yaml:2:27: ",
		   "unknown key 'max'");
	expect_err("version: 1\nlists: {a: [x], a: [y]}\n", "t.yaml:2:17: ", "duplicate key 'a'");
	expect_err("version: 1\nrules:\n  - {id: a, on: exec, action: deny, bogus: 1}\n",
		   "t.yaml:3:37: ", "unknown key 'bogus'");
	expect_err("version: 1\nrules:\n  - {id: a, on: exec, action: deny, id: b}\n",
		   "t.yaml:3:37: ", "duplicate key 'id'");
	expect_err("version: 1\n[a]: b\n", "t.yaml:2:1: ", "keys");
}

Test(errors, anchors_aliases_tags)
{
	expect_err("version: 1\nlists: {a: &x [1], b: *x}\n", "t.yaml:2:12: ", "anchors");
	expect_err("version: &v 1\n", "t.yaml:1:10: ", "anchors");
	expect_err("version: 1\nmode: !custom x\n", "t.yaml:2:7: ", "unsupported YAML tag");
	struct ag_policy *p = load("version: !!int 1\nmode: !!str supervised\n");
	ag_policy_free(p);
}

Test(errors, wrong_types)
{
	expect_err("version: 1\nmode: [a]\n", "t.yaml:2:7: ", "mode must be a string");
	expect_err("version: 1\nmode: fast\n", "t.yaml:2:7: ", "unknown mode 'fast'");
	expect_err("version: 1\nenforce: yes\n", "t.yaml:2:10: ", "true or false");
	expect_err("version: 1\nenforce: \"true\"\n", "t.yaml:2:10: ", "true or false");
	expect_err("version: 1\nlimits: {denials: -1}\n", "t.yaml:2:19: ", "whole number");
	expect_err("version: 1\nlimits: 5\n", "t.yaml:2:9: ", "mapping");
	expect_err("version: 1\nsnapshots: {max_bytes: lots}\n", "t.yaml:2:24: ", "not a size");
	expect_err("version: 1\ndefaults: {exec: maybe}\n", "t.yaml:2:18: ", "unknown action 'maybe'");
	expect_err("version: 1\ndefaults: {execute: deny}\n", "t.yaml:2:12: ",
		   "unknown operation 'execute'");
	expect_err("version: 1\nrules: {a: b}\n", "t.yaml:2:8: ", "list of rules");
	expect_err("version: 1\nrules: [x]\n", "t.yaml:2:9: ", "mapping");
	expect_err("version: 1\nworkspace: ~\n", "t.yaml:2:12: ", "quotes");
	expect_err("version: 1\nworkspace: $WORKSPACE/x\n", "t.yaml:2:12: ", "$WORKSPACE");
}

Test(errors, lists)
{
	expect_err("version: 1\nlists: {a: x}\n", "t.yaml:2:12: ", "list of strings");
	expect_err("version: 1\nlists: {a: [[x]]}\n", "t.yaml:2:13: ", "must be strings");
	expect_err("version: 1\nlists: {a: ['@b'], b: [x]}\n", "t.yaml:2:13: ", "cannot contain lists");
	expect_err("version: 1\nlists: {'a b': [x]}\n", "t.yaml:2:9: ", "list name");
	expect_err("version: 1\nrules:\n  - {id: a, on: delete, path: '@nope', action: deny}\n",
		   "t.yaml:3:31: ", "unknown list '@nope'");
}

Test(errors, rule_fields)
{
	expect_err("version: 1\nrules:\n  - {on: exec, action: deny}\n", "t.yaml:3:5: ", "no id");
	expect_err("version: 1\nrules:\n  - {id: 'a b', on: exec, action: deny}\n", "t.yaml:3:10: ",
		   "rule id 'a b'");
	expect_err("version: 1\nrules:\n  - {id: a, action: deny}\n", "t.yaml:3:5: ", "no 'on'");
	expect_err("version: 1\nrules:\n  - {id: a, on: exec}\n", "t.yaml:3:5: ", "no action");
	expect_err("version: 1\nrules:\n  - {id: a, on: remove, action: deny}\n", "t.yaml:3:17: ",
		   "unknown operation 'remove'");
	expect_err("version: 1\nrules:\n  - {id: a, on: [], action: deny}\n", "t.yaml:3:17: ",
		   "empty list");
	expect_err("version: 1\nrules:\n  - {id: a, on: signal, action: allow}\n", "t.yaml:3:17: ",
		   "'signal' cannot be ruled");
	expect_err("version: 1\ndefaults: {signal: allow}\n", "t.yaml:2:12: ",
		   "'signal' cannot be ruled");
	expect_err("version: 1\nrules:\n  - {id: a, on: exec, action: block}\n", "t.yaml:3:31: ",
		   "unknown action 'block'");
	expect_err("version: 1\nrules:\n  - {id: a, on: exec, action: deny, hard: 1}\n",
		   "t.yaml:3:43: ", "true or false");
	expect_err("version: 1\nrules:\n"
		   "  - {id: a, on: exec, action: deny}\n"
		   "  - {id: a, on: exec, action: log}\n",
		   "t.yaml:4:10: ", "duplicate rule id 'a'");
}

Test(errors, matchers)
{
	expect_err("version: 1\nrules:\n  - {id: a, on: delete, host: [x], action: deny}\n",
		   "t.yaml:3:25: ", "matcher 'host' does not apply to delete");
	expect_err("version: 1\nrules:\n  - {id: a, on: [exec, sql], path: [x], action: deny}\n",
		   "t.yaml:3:30: ", "matcher 'path' does not apply to exec or sql");
	expect_err("version: 1\nrules:\n  - {id: a, on: delete, path: [relative/x], action: deny}\n",
		   "t.yaml:3:32: ", "must be absolute");
	expect_err("version: 1\nrules:\n  - {id: a, on: delete, path: ['$NOPE/x'], action: deny}\n",
		   "t.yaml:3:32: ", "unknown variable $NOPE");
	expect_err("version: 1\nrules:\n  - {id: a, on: delete, path: ['/a/[x'], action: deny}\n",
		   "t.yaml:3:32: ", "unterminated");
	expect_err("version: 1\nrules:\n  - {id: a, on: delete, path: ['/a/*/../b'], action: deny}\n",
		   "t.yaml:3:32: ", "'..'");
	expect_err("version: 1\nrules:\n  - {id: a, on: delete, path: [], action: deny}\n",
		   "t.yaml:3:31: ", "empty list");
	expect_err("version: 1\nrules:\n  - {id: a, on: delete, path: {a: b}, action: deny}\n",
		   "t.yaml:3:31: ", "not a mapping");
	expect_err("version: 1\nrules:\n  - {id: a, on: connect, port: [70000], action: deny}\n",
		   "t.yaml:3:33: ", "not a port");
	expect_err("version: 1\nrules:\n  - {id: a, on: connect, port: ['9-1'], action: deny}\n",
		   "t.yaml:3:33: ", "not a port");
	expect_err("version: 1\nrules:\n  - {id: a, on: connect, cidr: [example.com], action: deny}\n",
		   "t.yaml:3:33: ", "not an address or CIDR");
	expect_err("version: 1\nrules:\n  - {id: a, on: connect, host: ['10.0.0.0/40'], action: deny}\n",
		   "t.yaml:3:33: ", "neither");
	expect_err("version: 1\nrules:\n  - {id: a, on: sql, class: [drop], action: deny}\n",
		   "t.yaml:3:30: ", "unknown SQL class 'drop'");
	expect_err("version: 1\nrules:\n  - {id: a, on: exec, args: ['-f||-x'], action: deny}\n",
		   "t.yaml:3:30: ", "empty alternative");
	expect_err("version: 1\nrules:\n  - {id: a, on: exec, unguarded: maybe, action: deny}\n",
		   "t.yaml:3:34: ", "true or false");
	expect_err("version: 1\nrules:\n  - {id: a, on: exec, program: [~], action: deny}\n",
		   "t.yaml:3:33: ", "quotes");
}

Test(errors, unless)
{
	expect_err("version: 1\nrules:\n  - {id: a, on: delete, action: deny, unless: x}\n",
		   "t.yaml:3:47: ", "mapping");
	expect_err("version: 1\nrules:\n  - {id: a, on: delete, action: deny, unless: {}}\n",
		   "t.yaml:3:47: ", "except everything");
	expect_err("version: 1\nrules:\n  - {id: a, on: delete, action: deny, unless: []}\n",
		   "t.yaml:3:47: ", "empty");
	expect_err("version: 1\nrules:\n  - {id: a, on: delete, action: deny, unless: {action: log}}\n",
		   "t.yaml:3:48: ", "unknown matcher 'action'");
	expect_err("version: 1\nrules:\n  - {id: a, on: delete, action: deny, unless: [{port: 1}]}\n",
		   "t.yaml:3:49: ", "matcher 'port' does not apply to delete");
	expect_err("version: 1\nrules:\n  - {id: a, on: delete, action: deny, unless: [x]}\n",
		   "t.yaml:3:48: ", "mapping of matchers");
}

Test(errors, home_unknown)
{
	struct ag_policy_env env = {.cwd = "/w"};
	char err[256];
	const char *y = "version: 1\nrules:\n  - {id: a, on: delete, path: ['~/.ssh/**'], action: deny}\n";
	cr_assert_null(ag_policy_load("t.yaml", y, strlen(y), &env, err, sizeof err));
	cr_assert(strstr(err, "t.yaml:3:32: ") == err, "%s", err);
	/* Without ~ no home is needed. */
	const char *ok = "version: 1\n";
	struct ag_policy *p = ag_policy_load("t.yaml", ok, strlen(ok), &env, err, sizeof err);
	cr_assert_not_null(p, "%s", err);
	ag_policy_free(p);
}

Test(errors, small_error_buffers)
{
	const char *y = "version: 7\n";
	char tiny[8];
	cr_assert_null(ag_policy_load("t.yaml", y, strlen(y), &ENV, tiny, sizeof tiny));
	cr_assert_eq(strlen(tiny), sizeof tiny - 1);
	cr_assert_null(ag_policy_load("t.yaml", y, strlen(y), &ENV, NULL, 0));
	cr_assert_null(ag_policy_load("t.yaml", y, strlen(y), NULL, tiny, sizeof tiny));
}

/* ---- tests: examples ----------------------------------------------------- */

Test(examples, pass_and_fail_with_position)
{
	const char *ok =
		"version: 1\n"
		"rules:\n"
		"  - id: no-infra-destroy\n"
		"    on: exec\n"
		"    program: [terraform]\n"
		"    args: [destroy]\n"
		"    action: deny\n"
		"    tests:\n"
		"      match: [\"terraform destroy -auto-approve\", \"terraform -chdir=prod destroy\"]\n"
		"      not_match: [\"terraform plan\"]\n";
	ag_policy_free(load(ok));

	expect_err("version: 1\n"
		   "rules:\n"
		   "  - id: no-infra-destroy\n"
		   "    on: exec\n"
		   "    program: [terraform]\n"
		   "    action: deny\n"
		   "    tests:\n"
		   "      match: [\"terraform destroy\"]\n"
		   "      not_match:\n"
		   "        - \"terraform plan\"\n",
		   "t.yaml:10:11: ",
		   "rule 'no-infra-destroy': example \"terraform plan\" should not match but does");
	expect_err("version: 1\n"
		   "rules:\n"
		   "  - id: r\n"
		   "    on: delete\n"
		   "    path: ['$WORKSPACE/**']\n"
		   "    unless: {path: ['*.tmp']}\n"
		   "    action: deny\n"
		   "    tests: {match: [a.tmp]}\n",
		   "t.yaml:8:21: ", "should match but does not (its unless applies)");
	expect_err("version: 1\nrules:\n  - {id: r, on: exec, action: deny, tests: {maybe: [x]}}\n",
		   "t.yaml:3:45: ", "unknown key 'maybe'");
}

Test(examples, every_op_syntax)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"rules:\n"
		"  - id: files\n"
		"    on: [delete, rename, truncate]\n"
		"    path: ['$WORKSPACE/data/**', '~/keep/**', '$TMPDIR/k']\n"
		"    unless: {program: [git]}\n"
		"    action: deny\n"
		"    tests:\n"
		"      match: [data/x.csv, '$WORKSPACE/data', 'rename /tmp/a ~/keep/b',\n"
		"              'rename \"data/with space\" /tmp/z', 'truncate ~/keep/log',\n"
		"              '$TMPDIR/k', 'delete program=/bin/rm data/y', 'data/../data/z']\n"
		"      not_match: [src/x.c, 'rename /tmp/a /tmp/b', 'delete program=git data/x',\n"
		"                  'program=git data/x']\n"
		"  - id: exec\n"
		"    on: exec\n"
		"    args: ['/home/u/x|./rel', \"it's\"]\n"
		"    action: log\n"
		"    tests:\n"
		"      match: ['tool ~/x \"it''s\"', 't $HOME/x it\\''s', 't ''./rel'' \"it''s\"']\n"
		"      not_match: ['tool \"~/x\" \"its\"', 'exec t ~/x']\n"
		"  - id: ung\n"
		"    on: exec\n"
		"    unguarded: true\n"
		"    action: log\n"
		"    tests: {match: ['unguarded=true ./a.out'], not_match: ['unguarded=false ./a.out', './a.out']}\n"
		"  - id: prog\n"
		"    on: exec\n"
		"    program: ['$WORKSPACE/bin/*']\n"
		"    action: log\n"
		"    tests: {match: ['./bin/run', '$WORKSPACE/bin/x'], not_match: ['run']}\n"
		"  - id: net\n"
		"    on: connect\n"
		"    host: ['*.example.com', '10.0.0.0/8', 'fd00::/8']\n"
		"    action: deny\n"
		"    tests:\n"
		"      match: ['api.example.com:443', '10.1.2.3:22', '[fd00::5]:80', 'fd00::5', 'a.example.com']\n"
		"      not_match: ['example.org:443', '11.0.0.1:22', '[::1]:80', 'unix:/run/x.sock']\n"
		"  - id: sock\n"
		"    on: connect\n"
		"    unix: ['$TMPDIR/**']\n"
		"    action: deny\n"
		"    tests: {match: ['unix:$TMPDIR/s.sock'], not_match: ['unix:/run/s.sock', 'localhost:80']}\n"
		"  - id: port\n"
		"    on: connect\n"
		"    port: ['22']\n"
		"    action: deny\n"
		"    tests: {match: ['host:22'], not_match: ['host:2222', 'host']}\n"
		"  - id: sql\n"
		"    on: sql\n"
		"    class: [drop_table]\n"
		"    database: ['$WORKSPACE/*.db']\n"
		"    action: snapshot\n"
		"    tests:\n"
		"      match: ['db=$WORKSPACE/app.db DROP TABLE t']\n"
		"      not_match: ['db=$WORKSPACE/app.db SELECT 1', 'DROP TABLE t', 'db=h/app DROP TABLE t']\n"
		"  - id: multi\n"
		"    on: [exec, delete]\n"
		"    program: [rm]\n"
		"    action: log\n"
		"    tests: {match: ['rm -f x', 'delete program=rm /x'], not_match: ['delete /x']}\n");
	cr_assert_eq(ag_policy_rule_count(p), 9);
	ag_policy_free(p);
}

Test(examples, malformed_examples)
{
	expect_err("version: 1\nrules:\n  - {id: r, on: rename, action: deny, tests: {match: ['/a']}}\n",
		   "t.yaml:3:55: ", "source and a target");
	expect_err("version: 1\nrules:\n  - {id: r, on: exec, action: deny, tests: {match: ['a \"b']}}\n",
		   "t.yaml:3:53: ", "unterminated");
	expect_err("version: 1\nrules:\n  - {id: r, on: connect, action: deny, tests: {match: ['h:99999']}}\n",
		   "t.yaml:3:56: ", "bad port");
	expect_err("version: 1\nrules:\n  - {id: r, on: exec, action: deny, tests: {match: ['$FOO']}}\n",
		   "t.yaml:3:53: ", "unknown variable $FOO");
	expect_err("version: 1\nrules:\n  - {id: r, on: delete, action: deny, tests: {match: ['rename a b']}}\n",
		   "t.yaml:3:55: ", "example \"rename a b\" is a rename, but rule 'r' is on delete");
	expect_err("version: 1\nrules:\n  - {id: r, on: sql, action: deny, tests: {match: ['db=x ']}}\n",
		   "t.yaml:3:52: ", "needs a statement");
}

/* ---- files --------------------------------------------------------------- */

Test(policy, load_file)
{
	char path[] = "/tmp/agrulesXXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	const char *y = "version: 1\nrules:\n  - {id: a, on: exec, action: bad}\n";
	cr_assert_eq(write(fd, y, strlen(y)), (ssize_t)strlen(y));
	close(fd);
	char err[512], want[600];
	cr_assert_null(ag_policy_load_file(path, &ENV, err, sizeof err));
	snprintf(want, sizeof want, "%s:3:31: ", path);
	cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);

	fd = open(path, O_WRONLY | O_TRUNC);
	cr_assert_eq(write(fd, "version: 1\n", 11), 11);
	close(fd);
	struct ag_policy *p = ag_policy_load_file(path, &ENV, err, sizeof err);
	cr_assert_not_null(p, "%s", err);
	ag_policy_free(p);
	unlink(path);

	cr_assert_null(ag_policy_load_file("/nonexistent/rules.yaml", &ENV, err, sizeof err));
	cr_assert(strstr(err, "/nonexistent/rules.yaml:1:1: cannot read") == err, "%s", err);
	cr_assert_null(ag_policy_load_file("/tmp", &ENV, err, sizeof err));
	cr_assert(strstr(err, "not a regular file"), "%s", err);
}

/* ---- robustness ---------------------------------------------------------- */

static const char *const SAMPLE =
	"version: 1\n"
	"mode: supervised\n"
	"lists:\n"
	"  prod: ['*.prod.example.com', 10.20.0.0/16]\n"
	"rules:\n"
	"  - id: keep-git\n"
	"    on: [delete, rename, truncate]\n"
	"    path: [\"$WORKSPACE/**/.git/**\"]\n"
	"    unless: {program: [git]}\n"
	"    action: snapshot\n"
	"    tests: {match: ['.git/x'], not_match: ['delete program=git .git/x']}\n"
	"  - id: prod\n"
	"    on: connect\n"
	"    host: '@prod'\n"
	"    action: deny\n"
	"    reason: \"no prod \\u00e9\"\n";

Test(robust, every_truncation)
{
	size_t n = strlen(SAMPLE);
	for (size_t i = 0; i <= n; i++) {
		char err[512];
		struct ag_policy *p = ag_policy_load("t.yaml", SAMPLE, i, &ENV, err, sizeof err);
		if (p)
			ag_policy_free(p);
		else
			cr_assert(strncmp(err, "t.yaml:", 7) == 0 && !strchr(err, '\n'),
				  "at %zu: %s", i, err);
	}
}

Test(robust, random_mutations)
{
	size_t n = strlen(SAMPLE);
	char *buf = malloc(n + 1);
	unsigned seed = 12345;
	static const char junk[] = "-:[]{}&*!|>'\"%@`#,? \n\t\\\x80\xff\x00";
	for (int round = 0; round < 3000; round++) {
		memcpy(buf, SAMPLE, n + 1);
		int edits = 1 + (int)(rand_r(&seed) % 4);
		for (int e = 0; e < edits; e++)
			buf[rand_r(&seed) % n] = junk[rand_r(&seed) % (sizeof junk - 1)];
		char err[512];
		struct ag_policy *p = ag_policy_load("t.yaml", buf, n, &ENV, err, sizeof err);
		if (p)
			ag_policy_free(p);
		else
			cr_assert(strncmp(err, "t.yaml:", 7) == 0 && !strchr(err, '\n'),
				  "round %d: %s", round, err);
	}
	free(buf);
}

Test(robust, garbage_and_deep_nesting)
{
	char err[512];
	const char bin[] = "\x00\x01\x02\xff\xfe version: 1";
	cr_assert_null(ag_policy_load("t.yaml", bin, sizeof bin - 1, &ENV, err, sizeof err));
	cr_assert(strncmp(err, "t.yaml:", 7) == 0, "%s", err);

	char deep[4096];
	size_t k = 0;
	k += (size_t)snprintf(deep, sizeof deep, "version: 1\nlists: {a: ");
	for (int i = 0; i < 1000; i++)
		deep[k++] = '[';
	deep[k] = 0;
	cr_assert_null(ag_policy_load("t.yaml", deep, k, &ENV, err, sizeof err));
	cr_assert(strncmp(err, "t.yaml:", 7) == 0, "%s", err);

	const char nul[] = "version: \"1\\0\"\n";
	cr_assert_null(ag_policy_load("t.yaml", nul, sizeof nul - 1, &ENV, err, sizeof err));
	cr_assert(strstr(err, "NUL"), "%s", err);
}

Test(robust, huge_rule_count)
{
	size_t cap = 1 << 20, len = 0;
	char *y = malloc(cap);
	len += (size_t)snprintf(y, cap, "version: 1\nrules:\n");
	for (int i = 0; i < 2000; i++)
		len += (size_t)snprintf(y + len, cap - len,
					"  - {id: r%d, on: delete, path: ['/data/%d/**'], action: snapshot}\n",
					i, i);
	struct ag_policy *p = load(y);
	cr_assert_eq(ag_policy_rule_count(p), 2000);
	struct ag_op op = {.kind = AG_OP_DELETE, .path = "/data/1999/x"};
	struct ag_verdict v;
	ag_decide(p, &op, &v);
	cr_assert_str_eq(v.rule_id, "r1999");
	ag_policy_free(p);
	free(y);
}

static void collect_path(void *ctx, const char *path, size_t len)
{
	char *out = ctx;
	strncat(out, path, len);
	strcat(out, ";");
}

/* What the kernel layer's floor keeps out of reach: the plain paths of hard
 * deny rules, including those with exceptions by path (the supervisor
 * weighs those), never those with a program or argument condition. */
Test(policy, hard_paths_for_the_floor)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"rules:\n"
		"  - {id: keys, on: delete, path: '~/.ssh/**', unless: {path: '~/.ssh/known_hosts'},\n"
		"     action: deny, hard: true}\n"
		"  - {id: tokens, on: delete, path: '~/.tokens', action: deny, hard: true}\n"
		"  - {id: by-prog, on: delete, path: '~/.kube/**', unless: {program: kubectl},\n"
		"     action: deny, hard: true}\n"
		"  - {id: soft, on: delete, path: '~/.soft', action: deny}\n"
		"  - {id: glob, on: delete, path: '~/.x*', action: deny, hard: true}\n");
	char got[1024] = "";
	int other = ag_policy_hard_paths(p, collect_path, got);
	cr_assert_str_eq(got, "/home/u/.ssh;/home/u/.tokens;");
	cr_assert_eq(other, 2, "by-prog and glob are not plain: %d", other);
	ag_policy_free(p);
}

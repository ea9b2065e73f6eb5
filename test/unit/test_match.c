/* Matching primitives (globs, addresses) and each matcher of the rule
 * language, exercised through small compiled policies. */
#include <criterion/criterion.h>
#include <string.h>

#include "agentguard.h"
#include "policy_internal.h"

static const struct ag_policy_env ENV = {
	.home = "/home/u", .workspace = "/w", .cwd = "/w", .tmpdir = "/tmp",
};

static struct ag_policy *load(const char *yaml)
{
	char err[512];
	struct ag_policy *p = ag_policy_load("t.yaml", yaml, strlen(yaml), &ENV, err, sizeof err);
	cr_assert(p, "load failed: %s", err);
	return p;
}

static const char *decide_id(const struct ag_policy *p, const struct ag_op *op)
{
	struct ag_verdict v;
	ag_decide(p, op, &v);
	return v.rule_id ? v.rule_id : "-";
}

/* ---- ag_glob_match ------------------------------------------------------- */

Test(glob, literal_and_star)
{
	cr_assert(ag_glob_match("/a/b", "/a/b"));
	cr_assert(!ag_glob_match("/a/b", "/a/bc"));
	cr_assert(!ag_glob_match("/a/b", "/a"));
	cr_assert(ag_glob_match("/a/*.c", "/a/x.c"));
	cr_assert(ag_glob_match("/a/*.c", "/a/.c"));
	cr_assert(!ag_glob_match("/a/*.c", "/a/b/x.c"), "* stays within one component");
	cr_assert(ag_glob_match("/a/*", "/a/.hidden"), "* matches dotfiles");
	cr_assert(!ag_glob_match("/a/*", "/a"));
	cr_assert(ag_glob_match("/a/x*y*z", "/a/xaaybbz"));
	cr_assert(!ag_glob_match("/a/x*y*z", "/a/xaaybb"));
	cr_assert(ag_glob_match("/*/b", "/a/b"));
}

Test(glob, question_and_class)
{
	cr_assert(ag_glob_match("/dev/sd?", "/dev/sda"));
	cr_assert(!ag_glob_match("/dev/sd?", "/dev/sda1"));
	cr_assert(!ag_glob_match("/a?b", "/a/b"), "? never matches /");
	cr_assert(ag_glob_match("/dev/sd[a-c]", "/dev/sdb"));
	cr_assert(!ag_glob_match("/dev/sd[a-c]", "/dev/sdd"));
	cr_assert(ag_glob_match("/x/[!a]", "/x/b"));
	cr_assert(!ag_glob_match("/x/[!a]", "/x/a"));
	cr_assert(ag_glob_match("/x/[^a]", "/x/b"));
	cr_assert(ag_glob_match("/x/[]]", "/x/]"));
	cr_assert(ag_glob_match("/x/[a-]", "/x/-"));
	cr_assert(ag_glob_match("/x/a[", "/x/a["), "unterminated [ is literal");
}

Test(glob, escapes)
{
	cr_assert(ag_glob_match("/x/\\*", "/x/*"));
	cr_assert(!ag_glob_match("/x/\\*", "/x/a"));
	cr_assert(ag_glob_match("/x/a\\[1]", "/x/a[1]"));
}

Test(glob, double_star)
{
	cr_assert(ag_glob_match("/a/**", "/a"), "dir/** matches dir itself");
	cr_assert(ag_glob_match("/a/**", "/a/b"));
	cr_assert(ag_glob_match("/a/**", "/a/b/c/d"));
	cr_assert(!ag_glob_match("/a/**", "/ab"));
	cr_assert(!ag_glob_match("/a/**", "/ab/c"));
	cr_assert(ag_glob_match("/a/**/c", "/a/c"), "** matches zero components");
	cr_assert(ag_glob_match("/a/**/c", "/a/b/c"));
	cr_assert(ag_glob_match("/a/**/c", "/a/b/x/c"));
	cr_assert(!ag_glob_match("/a/**/c", "/a/b/x/d"));
	cr_assert(ag_glob_match("/w/**/.git/**", "/w/.git/index"));
	cr_assert(ag_glob_match("/w/**/.git/**", "/w/sub/mod/.git/objects/ab/cd"));
	cr_assert(ag_glob_match("/w/**/.git/**", "/w/.git"));
	cr_assert(!ag_glob_match("/w/**/.git/**", "/w/.github/x"));
	cr_assert(ag_glob_match("/**", "/"));
	cr_assert(ag_glob_match("/**", "/etc/passwd"));
	cr_assert(ag_glob_match("**", "a/b"));
	cr_assert(ag_glob_match("/a/**/**", "/a"));
	cr_assert(ag_glob_match("/a/**/*.c", "/a/x/y/z.c"));
	cr_assert(!ag_glob_match("/a/**/*.c", "/a/x/y/z.h"));
	cr_assert(ag_glob_match("/a/b**", "/a/bcd"), "** inside a component is *");
	cr_assert(!ag_glob_match("/a/b**", "/a/bc/d"));
}

Test(glob, relative_and_db)
{
	cr_assert(ag_glob_match("*/*", "localhost/app"));
	cr_assert(ag_glob_match("?*/*", "localhost/app"));
	cr_assert(!ag_glob_match("?*/*", "/app.db"));
	cr_assert(!ag_glob_match("/**", "localhost/app"));
	cr_assert(!ag_glob_match(NULL, "/x"));
	cr_assert(!ag_glob_match("/x", NULL));
}

Test(glob, pathological_is_fast)
{
	char s[300];
	memset(s, 'a', sizeof s - 2);
	s[0] = '/';
	s[sizeof s - 2] = 'b';
	s[sizeof s - 1] = 0;
	/* Would be exponential with naive backtracking. */
	cr_assert(!ag_glob_match("/*a*a*a*a*a*a*a*a*a*a*c", s));
	cr_assert(ag_glob_match("/*a*a*a*a*a*a*a*a*a*a*b", s));
}

Test(glob, flat_and_icase)
{
	cr_assert(ag_glob_flat("+*", "+refs/heads/main", 16, 0), "flat * crosses /");
	cr_assert(ag_glob_flat("*.prod.example.com", "DB.eu.PROD.example.com", 22, 1));
	cr_assert(!ag_glob_flat("*.prod.example.com", "DB.eu.PROD.example.com", 22, 0));
	cr_assert(ag_glob_flat("-f", "-fx", 2, 0), "length-limited subject");
	cr_assert(ag_glob_flat("[A-Z]x", "qx", 2, 1));
}

Test(glob, check)
{
	cr_assert_null(ag_glob_check("/a/**/b*[ch]"));
	cr_assert_not_null(ag_glob_check("/a/[bc"));
	cr_assert_not_null(ag_glob_check("/a/b\\"));
	cr_assert_not_null(ag_glob_check("/**/**/**/**/**/x"));
	cr_assert_null(ag_glob_check("/**/**/**/**/x"));
}

/* ---- addresses ----------------------------------------------------------- */

Test(net, parse)
{
	struct ag_net n;
	cr_assert_eq(ag_net_parse("10.20.0.0/16", &n, 1), 0);
	cr_assert_eq(n.v6, 0);
	cr_assert_eq(n.prefix, 16);
	cr_assert_eq(ag_net_parse("10.20.0.0/16", &n, 0), -1, "no prefix when not allowed");
	cr_assert_eq(ag_net_parse("fd00::/8", &n, 1), 0);
	cr_assert_eq(n.v6, 1);
	cr_assert_eq(ag_net_parse("::ffff:1.2.3.4", &n, 0), 0);
	cr_assert_eq(n.v6, 0, "v4-mapped becomes IPv4");
	cr_assert_eq(n.a[0], 1);
	cr_assert_eq(n.a[3], 4);
	cr_assert_eq(ag_net_parse("fe80::1%eth0", &n, 0), 0);
	cr_assert_eq(ag_net_parse("10.0.0.0/33", &n, 1), -1);
	cr_assert_eq(ag_net_parse("10.0.0.0/", &n, 1), -1);
	cr_assert_eq(ag_net_parse("10.0.0", &n, 1), -1);
	cr_assert_eq(ag_net_parse("example.com", &n, 1), -1);
	cr_assert_eq(ag_net_parse("", &n, 1), -1);
	cr_assert_eq(ag_net_parse("1.2.3.4/x", &n, 1), -1);
}

/* ---- matchers ------------------------------------------------------------ */

Test(matcher, path_basename_and_expansion)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"rules:\n"
		"  - {id: env, on: delete, path: [.env, '*.pem'], action: deny}\n"
		"  - {id: home, on: delete, path: ['~/notes/**'], action: ask}\n"
		"  - {id: ws, on: delete, path: ['$WORKSPACE/**'], action: snapshot}\n"
		"  - {id: tmp, on: delete, path: ['${TMPDIR}/keep/*'], action: log}\n"
		"  - {id: home2, on: delete, path: ['$HOME/x'], action: log}\n");
	struct ag_op op = {.kind = AG_OP_DELETE, .port = -1, .sql_class = -1};

	op.path = "/anywhere/deep/.env";
	cr_assert_str_eq(decide_id(p, &op), "env");
	op.path = "/w/certs/server.pem";
	cr_assert_str_eq(decide_id(p, &op), "env", "deny wins over snapshot");
	op.path = "/w/.envrc";
	cr_assert_str_eq(decide_id(p, &op), "ws");
	op.path = "/home/u/notes/a/b.txt";
	cr_assert_str_eq(decide_id(p, &op), "home");
	op.path = "/home/u/notesx";
	cr_assert_str_eq(decide_id(p, &op), "-");
	op.path = "/w";
	cr_assert_str_eq(decide_id(p, &op), "ws");
	op.path = "/tmp/keep/f";
	cr_assert_str_eq(decide_id(p, &op), "tmp");
	op.path = "/home/u/x";
	cr_assert_str_eq(decide_id(p, &op), "home2");
	op.path = NULL;
	cr_assert_str_eq(decide_id(p, &op), "-", "no path never matches");
	ag_policy_free(p);
}

Test(matcher, expansion_escapes_glob_chars)
{
	char err[256];
	struct ag_policy_env env = {.home = "/home/u", .workspace = "/w[1]", .cwd = "/"};
	const char *y = "version: 1\nrules:\n"
			"  - {id: ws, on: delete, path: ['$WORKSPACE/*'], action: deny,\n"
			"     tests: {match: ['$WORKSPACE/a'], not_match: ['/w1/a']}}\n";
	struct ag_policy *p = ag_policy_load("t", y, strlen(y), &env, err, sizeof err);
	cr_assert(p, "%s", err);
	ag_policy_free(p);
}

Test(matcher, program_exec_and_caller)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"rules:\n"
		"  - {id: tf, on: exec, program: [terraform], action: deny}\n"
		"  - {id: local, on: exec, program: ['/opt/*/bin/*'], action: log}\n"
		"  - {id: py-del, on: delete, program: ['python3*'], action: ask}\n");
	struct ag_op ex = {.kind = AG_OP_EXEC, .path = "/usr/local/bin/terraform", .port = -1};
	cr_assert_str_eq(decide_id(p, &ex), "tf");
	ex.path = "/opt/tools/bin/thing";
	cr_assert_str_eq(decide_id(p, &ex), "local");
	ex.path = "/opt/tools/sbin/thing";
	cr_assert_str_eq(decide_id(p, &ex), "-");
	ex.caller = "/usr/bin/terraform";
	ex.path = "/usr/bin/ls";
	cr_assert_str_eq(decide_id(p, &ex), "-", "exec matches the started program, not the caller");

	struct ag_op del = {.kind = AG_OP_DELETE, .path = "/w/x", .caller = "/usr/bin/python3.11"};
	cr_assert_str_eq(decide_id(p, &del), "py-del");
	del.caller = NULL;
	cr_assert_str_eq(decide_id(p, &del), "-", "an unknown caller never matches");
	ag_policy_free(p);
}

static int rm_rf(const struct ag_policy *p, const char *const *argv)
{
	struct ag_op op = {.kind = AG_OP_EXEC, .path = "/usr/bin/rm", .argv = argv, .port = -1};
	struct ag_verdict v;
	ag_decide(p, &op, &v);
	return v.rule_id != NULL;
}

Test(matcher, args_flag_normalization)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"rules:\n"
		"  - id: rmrf\n"
		"    on: exec\n"
		"    program: [rm]\n"
		"    args: ['-r|-R|--recursive', '-f|--force']\n"
		"    action: deny\n");
	const char *a1[] = {"rm", "-rf", "x", NULL};
	const char *a2[] = {"rm", "-r", "-f", "x", NULL};
	const char *a3[] = {"rm", "x", "-rf", NULL};
	const char *a4[] = {"rm", "--recursive", "--force", "x", NULL};
	const char *a5[] = {"rm", "-fR", "x", NULL};
	const char *a6[] = {"rm", "--force=yes", "-R", NULL};
	const char *n1[] = {"rm", "-r", "x", NULL};
	const char *n2[] = {"rm", "--", "-rf", NULL};
	const char *n3[] = {"rm", "-r", "-", "f", NULL};
	const char *n4[] = {"rm", NULL};
	const char *n5[] = {"rm", "-r", "--forceful", NULL};
	cr_assert(rm_rf(p, a1));
	cr_assert(rm_rf(p, a2));
	cr_assert(rm_rf(p, a3));
	cr_assert(rm_rf(p, a4));
	cr_assert(rm_rf(p, a5));
	cr_assert(rm_rf(p, a6));
	cr_assert(!rm_rf(p, n1));
	cr_assert(!rm_rf(p, n2), "after -- everything is positional");
	cr_assert(!rm_rf(p, n3), "a lone - is positional");
	cr_assert(!rm_rf(p, n4));
	cr_assert(!rm_rf(p, n5));
	cr_assert(!rm_rf(p, NULL), "no argv never matches args");
	ag_policy_free(p);
}

Test(matcher, args_single_dash_long_and_positional_globs)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"lists:\n"
		"  verbs: [destroy, 'nuke*']\n"
		"rules:\n"
		"  - {id: chdir, on: exec, args: ['-chdir'], action: log}\n"
		"  - {id: auto, on: exec, args: ['-auto-approve', '@verbs'], action: deny}\n"
		"  - {id: dd, on: exec, args: ['of=/dev/sd*'], action: deny}\n"
		"  - {id: plus, on: exec, args: [push, '+*'], action: deny}\n"
		"  - {id: pipe, on: exec, args: ['a\\|b'], action: deny}\n");
	struct ag_op op = {.kind = AG_OP_EXEC, .path = "/usr/bin/terraform", .port = -1};
	const char *t1[] = {"terraform", "-chdir=prod", "plan", NULL};
	const char *t2[] = {"terraform", "destroy", "-auto-approve", NULL};
	const char *t3[] = {"terraform", "nukeall", "-auto-approve", NULL};
	const char *t4[] = {"terraform", "destroy", NULL};
	const char *t5[] = {"terraform", "-a", "-u", "destroy", NULL};
	const char *d1[] = {"dd", "if=x", "of=/dev/sdb1", NULL};
	const char *d2[] = {"dd", "of=/dev/null", NULL};
	const char *g1[] = {"git", "push", "origin", "+main:refs/heads/main", NULL};
	const char *g2[] = {"git", "push", "origin", "main", NULL};
	const char *b1[] = {"x", "a|b", NULL};
	op.argv = t1;
	cr_assert_str_eq(decide_id(p, &op), "chdir");
	op.argv = t2;
	cr_assert_str_eq(decide_id(p, &op), "auto");
	op.argv = t3;
	cr_assert_str_eq(decide_id(p, &op), "auto");
	op.argv = t4;
	cr_assert_str_eq(decide_id(p, &op), "-");
	op.argv = t5;
	cr_assert_str_eq(decide_id(p, &op), "-", "-auto-approve is not a cluster");
	op.argv = d1;
	cr_assert_str_eq(decide_id(p, &op), "dd");
	op.argv = d2;
	cr_assert_str_eq(decide_id(p, &op), "-");
	op.argv = g1;
	cr_assert_str_eq(decide_id(p, &op), "plus");
	op.argv = g2;
	cr_assert_str_eq(decide_id(p, &op), "-");
	op.argv = b1;
	cr_assert_str_eq(decide_id(p, &op), "pipe", "\\| is a literal bar");
	ag_policy_free(p);
}

Test(matcher, unguarded)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"rules:\n"
		"  - {id: ung, on: exec, unguarded: true, action: log}\n"
		"  - {id: grd, on: exec, unguarded: false, program: [ls], action: log}\n");
	struct ag_op op = {.kind = AG_OP_EXEC, .path = "/usr/bin/ls", .port = -1};
	cr_assert_str_eq(decide_id(p, &op), "grd");
	op.unguarded = 1;
	cr_assert_str_eq(decide_id(p, &op), "ung");
	ag_policy_free(p);
}

Test(matcher, host_cidr_port_unix)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"lists:\n"
		"  prod: ['*.prod.example.com', 10.20.0.0/16, 'fd00::/8']\n"
		"rules:\n"
		"  - {id: prod, on: connect, host: '@prod', action: deny}\n"
		"  - {id: meta, on: connect, host: [169.254.169.254], action: deny}\n"
		"  - {id: lan, on: connect, cidr: [192.168.0.0/16], action: ask}\n"
		"  - {id: pg, on: connect, port: [5432, '6000-6010'], action: log}\n"
		"  - {id: sock, on: connect, unix: ['/run/docker.sock', '*.s.PGSQL.*'], action: deny}\n"
		"  - {id: ipglob, on: connect, host: ['172.17.*'], action: log}\n");
	struct ag_op op = {.kind = AG_OP_CONNECT, .port = 443};

	op.host = "db.eu.PROD.example.com";
	op.addr = "203.0.113.5";
	cr_assert_str_eq(decide_id(p, &op), "prod");
	op.host = "db.eu.prod.example.com.";
	cr_assert_str_eq(decide_id(p, &op), "prod", "trailing dot");
	op.host = "prod.example.com";
	cr_assert_str_eq(decide_id(p, &op), "-");
	op.host = NULL;
	op.addr = "10.20.7.9";
	cr_assert_str_eq(decide_id(p, &op), "prod");
	op.addr = "10.21.0.1";
	cr_assert_str_eq(decide_id(p, &op), "-");
	op.addr = "fd12:3456::1";
	cr_assert_str_eq(decide_id(p, &op), "prod");
	op.addr = "::ffff:169.254.169.254";
	cr_assert_str_eq(decide_id(p, &op), "meta");
	op.addr = "192.168.1.1";
	cr_assert_str_eq(decide_id(p, &op), "lan");
	op.addr = "::ffff:192.168.1.1";
	cr_assert_str_eq(decide_id(p, &op), "lan");
	op.addr = "172.17.0.2";
	cr_assert_str_eq(decide_id(p, &op), "ipglob");
	op.addr = "127.0.0.1";
	op.port = 5432;
	cr_assert_str_eq(decide_id(p, &op), "pg");
	op.port = 6005;
	cr_assert_str_eq(decide_id(p, &op), "pg");
	op.port = 6011;
	cr_assert_str_eq(decide_id(p, &op), "-");
	op.port = -1;
	cr_assert_str_eq(decide_id(p, &op), "-");
	op.addr = NULL;
	op.unix_path = "/run/docker.sock";
	cr_assert_str_eq(decide_id(p, &op), "sock");
	op.unix_path = "/tmp/.s.PGSQL.5432";
	cr_assert_str_eq(decide_id(p, &op), "sock");
	op.unix_path = "/run/other.sock";
	cr_assert_str_eq(decide_id(p, &op), "-");
	op.addr = "garbage";
	op.unix_path = NULL;
	cr_assert_str_eq(decide_id(p, &op), "-");
	ag_policy_free(p);
}

Test(matcher, class_and_database)
{
	struct ag_policy *p = load(
		"version: 1\n"
		"rules:\n"
		"  - {id: lite, on: sql, class: [drop_table, delete_all], database: ['/**'], action: snapshot}\n"
		"  - {id: srv, on: sql, class: [drop_table], database: ['?*/*'], action: deny}\n"
		"  - {id: name, on: sql, class: [read], database: ['app.db'], action: log}\n");
	struct ag_op op = {.kind = AG_OP_SQL, .port = -1, .sql_class = AG_SQL_DROP_TABLE};

	op.database = "/w/app.db";
	cr_assert_str_eq(decide_id(p, &op), "lite");
	op.database = "db.example.com/app";
	cr_assert_str_eq(decide_id(p, &op), "srv");
	op.database = NULL;
	cr_assert_str_eq(decide_id(p, &op), "-");
	op.database = "/w/app.db";
	op.sql_class = AG_SQL_READ;
	cr_assert_str_eq(decide_id(p, &op), "name", "a bare name matches the basename");
	op.sql_class = AG_SQL_INSERT;
	cr_assert_str_eq(decide_id(p, &op), "-");
	/* Class unknown: decide classifies the statement itself. */
	op.sql_class = -1;
	op.sql = "DROP TABLE users";
	cr_assert_str_eq(decide_id(p, &op), "lite");
	op.sql = NULL;
	cr_assert_str_eq(decide_id(p, &op), "-");
	ag_policy_free(p);
}

Test(matcher, multi_op_rule_inapplicable_matcher)
{
	/* `path` does not apply to exec: on exec the rule cannot match. */
	struct ag_policy *p = load(
		"version: 1\n"
		"rules:\n"
		"  - {id: both, on: [delete, exec], path: ['/etc/**'], action: deny}\n"
		"  - {id: prog, on: [delete, exec], program: [evil], action: deny}\n");
	struct ag_op ex = {.kind = AG_OP_EXEC, .path = "/usr/bin/ls", .port = -1};
	cr_assert_str_eq(decide_id(p, &ex), "-");
	struct ag_op del = {.kind = AG_OP_DELETE, .path = "/etc/hosts"};
	cr_assert_str_eq(decide_id(p, &del), "both");
	ex.path = "/bin/evil";
	cr_assert_str_eq(decide_id(p, &ex), "prog");
	del.path = "/w/x";
	del.caller = "/bin/evil";
	cr_assert_str_eq(decide_id(p, &del), "prog");
	ag_policy_free(p);
}

/* ---- the compiled fast paths agree with a naive reference ---------------- */

#include <fnmatch.h>
#include <stdlib.h>

/* Component-wise reference: "**" matches zero or more components, any
 * other component is an fnmatch pattern (so '*' matches leading dots). */
static int ref_match(char **pc, int np, char **sc, int ns)
{
	if (np == 0)
		return ns == 0;
	if (strcmp(pc[0], "**") == 0)
		return ref_match(pc + 1, np - 1, sc, ns) ||
		       (ns > 0 && ref_match(pc, np, sc + 1, ns - 1));
	return ns > 0 && fnmatch(pc[0], sc[0], 0) == 0 &&
	       ref_match(pc + 1, np - 1, sc + 1, ns - 1);
}

static int split(char *s, char **out)
{
	int n = 0;
	out[n++] = s;
	for (char *p = s; *p; p++)
		if (*p == '/') {
			*p = 0;
			out[n++] = p + 1;
		}
	return n;
}

static int ref_glob(const char *pat, const char *path)
{
	char pb[256], sb[256], *pc[64], *sc[64];
	snprintf(pb, sizeof pb, "%s", pat);
	snprintf(sb, sizeof sb, "%s", path);
	if (!strchr(pat, '/')) {
		const char *base = strrchr(path, '/');
		return fnmatch(pat, base ? base + 1 : path, 0) == 0;
	}
	int np = split(pb, pc), ns = split(sb, sc);
	/* "/" is the root: one empty component after the leading one. */
	return ref_match(pc, np, sc, ns);
}

Test(glob, fast_paths_agree_with_reference)
{
	static const char *const pparts[] = {"a", "b", "ab", "*", "a*", "*b", "?", "**",
					     "[ab]", ".a", "*.a", "a?b", "b*a"};
	static const char *const sparts[] = {"a", "b", "ab", "ba", ".a", "aa", "bab", "x.a"};
	unsigned seed = 7;
	int checked = 0;

	for (int round = 0; round < 200; round++) {
		/* A policy of several globs sharing prefixes, as real rule files do. */
		char pats[4][128];
		char yaml[1024];
		size_t len = (size_t)snprintf(yaml, sizeof yaml,
					      "version: 1\nrules:\n");
		for (int k = 0; k < 4; k++) {
			int nc = 1 + (int)(rand_r(&seed) % 4);
			int base = rand_r(&seed) % 5 == 0;
			size_t o = 0;
			for (int c = 0; c < nc; c++) {
				const char *part = pparts[rand_r(&seed) % (sizeof pparts / sizeof *pparts)];
				if (base && strcmp(part, "**") == 0)
					part = "*";
				o += (size_t)snprintf(pats[k] + o, sizeof pats[k] - o, "%s%s",
						      base ? "" : "/", part);
				if (base)
					break;
			}
			len += (size_t)snprintf(yaml + len, sizeof yaml - len,
						"  - {id: r%d, on: delete, path: ['%s'], action: deny}\n",
						k, pats[k]);
		}
		char err[512];
		struct ag_policy *p = ag_policy_load("t", yaml, len, &ENV, err, sizeof err);
		cr_assert(p, "%s\n%s", err, yaml);
		for (int s = 0; s < 60; s++) {
			char path[128] = "";
			int nc = (int)(rand_r(&seed) % 5);
			size_t o = 0;
			for (int c = 0; c < nc; c++)
				o += (size_t)snprintf(path + o, sizeof path - o, "/%s",
						      sparts[rand_r(&seed) % (sizeof sparts / sizeof *sparts)]);
			if (nc == 0)
				strcpy(path, "/");
			for (int k = 0; k < 4; k++) {
				int want = ref_glob(pats[k], path);
				if (strchr(pats[k], '/'))
					cr_assert_eq(ag_glob_match(pats[k], path), want, "%s vs %s",
						     pats[k], path);
				/* Through the compiled policy: rule k alone decides. */
				char one[256];
				size_t l1 = (size_t)snprintf(one, sizeof one,
							     "version: 1\nrules:\n  - {id: r, on: delete, path: ['%s'], action: deny}\n",
							     pats[k]);
				struct ag_policy *q = ag_policy_load("t", one, l1, &ENV, err, sizeof err);
				cr_assert(q, "%s", err);
				struct ag_op op = {.kind = AG_OP_DELETE, .path = path};
				struct ag_verdict v;
				ag_decide(q, &op, &v);
				cr_assert_eq(v.action == AG_DENY, want, "compiled %s vs %s", pats[k], path);
				ag_policy_free(q);
				checked++;
			}
			/* And the whole set: some rule applies iff some glob matches. */
			int any = 0;
			for (int k = 0; k < 4; k++)
				any |= ref_glob(pats[k], path);
			struct ag_op op = {.kind = AG_OP_DELETE, .path = path};
			struct ag_verdict v;
			ag_decide(p, &op, &v);
			cr_assert_eq(v.action == AG_DENY, any, "set vs %s", path);
		}
		ag_policy_free(p);
	}
	cr_assert_gt(checked, 10000);
}

Test(glob, set_prefix_agrees)
{
	/* Globs sharing a long prefix, one of them a whole directory. */
	struct ag_policy *p = load(
		"version: 1\n"
		"rules:\n"
		"  - {id: r, on: delete, path: ['/home/u/.ssh/**', '/home/u/.s*', '/home/u/.sq/x'], action: deny}\n");
	const char *yes[] = {"/home/u/.ssh", "/home/u/.ssh/k", "/home/u/.sx", "/home/u/.sq/x"};
	const char *no[] = {"/home/u", "/home/u/.a", "/home/u/.sq/y", "/home/v/.ssh", "/h"};
	for (size_t i = 0; i < 4; i++) {
		struct ag_op op = {.kind = AG_OP_DELETE, .path = yes[i]};
		cr_assert_str_eq(decide_id(p, &op), "r", "%s", yes[i]);
	}
	for (size_t i = 0; i < 5; i++) {
		struct ag_op op = {.kind = AG_OP_DELETE, .path = no[i]};
		cr_assert_str_eq(decide_id(p, &op), "-", "%s", no[i]);
	}
	ag_policy_free(p);
}

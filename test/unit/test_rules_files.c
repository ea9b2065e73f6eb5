/* The shipped rule files: every one in rules/ and examples/rules/ loads
 * (its examples pass) in every environment a session may start in, the
 * compiled-in copy is rules/default.yaml, and the default profile makes
 * the decisions it promises. Run from the repository root (make does). */
#include <criterion/criterion.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentguard.h"

/* Where a session might start: the ordinary case, a workspace that is
 * HOME itself, HOME under /tmp (CI), HOME=/ (service accounts), a
 * private TMPDIR, a workspace inside HOME, a workspace that is /tmp or
 * lies inside TMPDIR. The built-in rules are loaded
 * by every guarded process, so they must load in all of them. */
static const struct ag_policy_env ENVS[] = {
	{.home = "/home/agent", .workspace = "/work/proj", .cwd = "/work/proj"},
	{.home = "/home/agent", .workspace = "/home/agent", .cwd = "/home/agent"},
	{.home = "/tmp/ci/home", .workspace = "/tmp/ci/ws", .cwd = "/tmp/ci/ws", .tmpdir = "/tmp"},
	{.home = "/", .workspace = "/srv/app", .cwd = "/srv/app"},
	{.home = "/home/agent", .cwd = "/work/proj", .tmpdir = "/var/tmp/agent-1"},
	{.home = "/home/agent", .workspace = "/home/agent/code/proj", .cwd = "/"},
	{.home = "/home/agent", .workspace = "/tmp", .cwd = "/tmp"},
	{.home = "/root", .workspace = "/tmp/x/y", .cwd = "/tmp/x/y", .tmpdir = "/tmp/x"},
};
#define NENVS (sizeof ENVS / sizeof ENVS[0])

static size_t each_file(const char *pattern, void (*fn)(const char *path))
{
	glob_t g;
	size_t n = 0;

	if (glob(pattern, 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++)
			fn(g.gl_pathv[i]);
		n = g.gl_pathc;
		globfree(&g);
	}
	return n;
}

static void load_everywhere(const char *path)
{
	for (size_t e = 0; e < NENVS; e++) {
		char err[1024];
		struct ag_policy *p = ag_policy_load_file(path, &ENVS[e], err, sizeof err);
		cr_assert(p, "env %zu: %s", e, err);
		cr_assert_gt(ag_policy_rule_count(p), 0, "%s has no rules", path);
		ag_policy_free(p);
	}
}

Test(rules_files, shipped_profiles_load)
{
	size_t n = each_file("rules/*.yaml", load_everywhere);
	cr_assert_geq(n, 3, "expected default, strict and laptop in rules/ (run from the repo root)");
}

Test(rules_files, examples_load)
{
	size_t n = each_file("examples/rules/*.yaml", load_everywhere);
	cr_assert_geq(n, 2, "expected example rule sets in examples/rules/");
}

Test(rules_files, profiles_say_what_they_are)
{
	char err[1024];
	struct ag_policy *p = ag_policy_load_file("rules/laptop.yaml", &ENVS[0], err, sizeof err);
	cr_assert(p, "%s", err);
	cr_assert_eq(ag_policy_mode(p), AG_MODE_SUPERVISED);
	ag_policy_free(p);

	p = ag_policy_load_file("rules/strict.yaml", &ENVS[0], err, sizeof err);
	cr_assert(p, "%s", err);
	cr_assert_eq(ag_policy_mode(p), AG_MODE_AUTONOMOUS);
	struct ag_op ex = {.kind = AG_OP_EXEC, .path = "/usr/bin/nc", .port = -1};
	struct ag_verdict v;
	ag_decide(p, &ex, &v);
	cr_assert_eq(v.action, AG_DENY, "strict denies programs off the allow-list");
	ex.path = "/usr/bin/make";
	ag_decide(p, &ex, &v);
	cr_assert_eq(v.action, AG_ALLOW);
	struct ag_op c = {.kind = AG_OP_CONNECT, .host = "example.com", .addr = "93.184.216.34",
			  .port = 443};
	ag_decide(p, &c, &v);
	cr_assert_eq(v.action, AG_DENY, "strict denies hosts off the allow-list");
	ag_policy_free(p);
}

Test(rules_files, embedded_default_is_rules_default_yaml)
{
	FILE *f = fopen("rules/default.yaml", "rb");
	cr_assert_not_null(f, "run from the repository root");
	char *buf = malloc(ag_default_rules_len + 2);
	size_t n = fread(buf, 1, ag_default_rules_len + 1, f);
	fclose(f);
	cr_assert_eq(n, ag_default_rules_len, "the compiled-in rules are stale: rebuild");
	cr_assert(memcmp(buf, ag_default_rules, n) == 0, "the compiled-in rules are stale: rebuild");
	cr_assert_eq(ag_default_rules[ag_default_rules_len], 0);
	free(buf);
}

/* The build's hash of the compiled-in rules is theirs: processes take it
 * instead of hashing them again. */
Test(rules_files, embedded_hash_is_the_embedded_rules_hash)
{
	char hex[AG_HASH_HEX];
	ag_sha256_buf_hex(ag_default_rules, ag_default_rules_len, hex);
	cr_assert_str_eq(ag_default_rules_hash, hex);
}

Test(rules_files, workspace_root_gets_a_hint)
{
	struct ag_policy_env env = {.home = "/home/agent", .workspace = "/", .cwd = "/"};
	char err[1024];
	struct ag_policy *p = ag_policy_load("builtin", ag_default_rules, ag_default_rules_len,
					     &env, err, sizeof err);
	/* Nothing is outside a workspace of "/": the examples say so. */
	cr_assert_null(p);
	cr_assert(strstr(err, "the workspace is /"), "%s", err);
}

/* ---- what default.yaml promises ------------------------------------------ */

static struct ag_policy *def;

static void load_default(void)
{
	char err[1024];
	def = ag_policy_load("builtin", ag_default_rules, ag_default_rules_len, &ENVS[0], err,
			     sizeof err);
	cr_assert(def, "%s", err);
}

static void free_default(void)
{
	ag_policy_free(def);
}

static struct ag_verdict on_path(enum ag_op_kind k, const char *path, const char *caller)
{
	struct ag_op op = {.kind = k, .path = path, .caller = caller, .port = -1,
			   .sql_class = -1};
	struct ag_verdict v;
	ag_decide(def, &op, &v);
	return v;
}

static struct ag_verdict on_exec(const char *const *argv)
{
	char prog[256];
	snprintf(prog, sizeof prog, "/usr/bin/%s", argv[0]);
	struct ag_op op = {.kind = AG_OP_EXEC, .path = prog, .argv = argv, .port = -1};
	struct ag_verdict v;
	ag_decide(def, &op, &v);
	return v;
}

#define EXPECT(v, act, id)                                                               \
	do {                                                                             \
		struct ag_verdict v_ = (v);                                              \
		cr_expect_eq(v_.action, act, "%s: got %s (%s)", #v, ag_action_name(v_.action), \
			     v_.rule_id ? v_.rule_id : "default");                       \
		if (id)                                                                  \
			cr_expect(v_.rule_id && strcmp(v_.rule_id, id ? id : "") == 0,   \
				  "%s: rule %s", #v, v_.rule_id ? v_.rule_id : "none");  \
	} while (0)

Test(default_rules, files, .init = load_default, .fini = free_default)
{
	EXPECT(on_path(AG_OP_DELETE, "/work/proj/src/main.c", NULL), AG_SNAPSHOT, "workspace-snapshot");
	EXPECT(on_path(AG_OP_TRUNCATE, "/work/proj/data.csv", "/usr/bin/python3"), AG_SNAPSHOT, NULL);
	EXPECT(on_path(AG_OP_DELETE, "/work/proj/.git/index.lock", "/usr/bin/git"), AG_ALLOW, NULL);
	EXPECT(on_path(AG_OP_DELETE, "/work/proj/.git/index", "/usr/bin/rm"), AG_SNAPSHOT, NULL);
	/* What git itself destroys there is kept: a deleted branch, its reflog. */
	EXPECT(on_path(AG_OP_DELETE, "/work/proj/.git/refs/heads/x", "/usr/bin/git"), AG_SNAPSHOT, NULL);
	EXPECT(on_path(AG_OP_DELETE, "/work/proj/.git/logs/refs/heads/x", "/usr/bin/git"), AG_SNAPSHOT,
	       NULL);
	EXPECT(on_path(AG_OP_DELETE, "/work/proj/.git/objects/ab/cd", "/usr/bin/git"), AG_ALLOW, NULL);
	EXPECT(on_path(AG_OP_DELETE, "/work/proj/node_modules/x/i.js", "/usr/bin/rm"), AG_ALLOW, NULL);
	EXPECT(on_path(AG_OP_DELETE, "/home/agent/.ssh/id_rsa", "/usr/bin/rm"), AG_DENY,
	       "protect-credentials");
	EXPECT(on_path(AG_OP_TRUNCATE, "/home/agent/.aws/credentials", NULL), AG_DENY,
	       "protect-credentials");
	/* Configuration tools rewrite (kubectl config, aws configure set,
	 * ssh-keygen -R) is kept, not refused; the secrets beside it are not. */
	EXPECT(on_path(AG_OP_DELETE, "/home/agent/.kube/config", NULL), AG_SNAPSHOT, "home-config");
	EXPECT(on_path(AG_OP_WRITE, "/home/agent/.aws/config", NULL), AG_SNAPSHOT, "home-config");
	EXPECT(on_path(AG_OP_TRUNCATE, "/home/agent/.ssh/known_hosts", NULL), AG_SNAPSHOT,
	       "home-config");
	EXPECT(on_path(AG_OP_WRITE, "/home/agent/.ssh/deploy_key", NULL), AG_DENY,
	       "protect-credentials");
	EXPECT(on_path(AG_OP_WRITE, "/home/agent/.config/gcloud/access_tokens.db", NULL), AG_DENY,
	       "protect-credentials");
	EXPECT(on_path(AG_OP_DELETE, "/home/agent/.docker/config.json", NULL), AG_DENY, NULL);
	EXPECT(on_path(AG_OP_DELETE, "/etc/passwd", NULL), AG_DENY, "outside-workspace");
	EXPECT(on_path(AG_OP_DELETE, "/home/agent/Documents/cv.pdf", NULL), AG_DENY,
	       "outside-workspace");
	EXPECT(on_path(AG_OP_DELETE, "/tmp/build/x.o", NULL), AG_ALLOW, NULL);
	EXPECT(on_path(AG_OP_DELETE, "/var/tmp/x", NULL), AG_ALLOW, NULL);
	EXPECT(on_path(AG_OP_DELETE, "/dev/shm/x", NULL), AG_ALLOW, NULL);
	EXPECT(on_path(AG_OP_DELETE, "/home/agent/.cache/pip/x", NULL), AG_ALLOW, NULL);
	EXPECT(on_path(AG_OP_DELETE, "/home/agent/.cargo/registry/cache/x.crate", NULL), AG_ALLOW, NULL);
	EXPECT(on_path(AG_OP_TRUNCATE, "/home/agent/.bashrc", NULL), AG_SNAPSHOT, "home-config");
	EXPECT(on_path(AG_OP_DELETE, "/home/agent/.claude.json", NULL), AG_ALLOW, NULL);

	struct ag_verdict v = on_path(AG_OP_DELETE, "/home/agent/.ssh/id_rsa", NULL);
	cr_expect_eq(v.hard, 1, "credentials are protected even in monitor mode");
	cr_expect(v.reason && strstr(v.reason, "credentials"), "%s", v.reason);

	struct ag_op r = {.kind = AG_OP_RENAME, .path = "/tmp/x", .target = "/home/agent/notes",
			  .port = -1, .sql_class = -1};
	ag_decide(def, &r, &v);
	EXPECT(v, AG_DENY, "outside-workspace");
	r.target = "/home/agent/.ssh/authorized_keys";
	ag_decide(def, &r, &v);
	EXPECT(v, AG_DENY, "protect-credentials");
	r.target = "/work/proj/y";
	ag_decide(def, &r, &v);
	EXPECT(v, AG_SNAPSHOT, "workspace-snapshot");
}

Test(default_rules, programs, .init = load_default, .fini = free_default)
{
	const char *tf1[] = {"terraform", "destroy", "-auto-approve", NULL};
	const char *tf2[] = {"terraform", "-chdir=prod", "apply", "-destroy", NULL};
	const char *tf3[] = {"terraform", "plan", NULL};
	const char *k1[] = {"kubectl", "delete", "ns", "prod", NULL};
	const char *h1[] = {"helm", "uninstall", "web", NULL};
	const char *a1[] = {"aws", "ec2", "terminate-instances", "--instance-ids", "i-1", NULL};
	const char *a2[] = {"aws", "s3", "rm", "s3://b/k", "--recursive", NULL};
	const char *a3[] = {"aws", "s3", "rb", "s3://b", NULL};
	const char *a4[] = {"aws", "cloudformation", "delete-stack", "--stack-name", "x", NULL};
	const char *a5[] = {"aws", "s3", "ls", NULL};
	const char *g1[] = {"gcloud", "compute", "instances", "delete", "vm", NULL};
	const char *z1[] = {"az", "group", "delete", "-n", "rg", NULL};
	const char *p1[] = {"git", "push", "--force", NULL};
	const char *p2[] = {"git", "push", "-f", "origin", "main", NULL};
	const char *p3[] = {"git", "push", "--force-with-lease", NULL};
	const char *p4[] = {"git", "push", "origin", "+main", NULL};
	const char *p5[] = {"git", "push", "--mirror", NULL};
	const char *p6[] = {"git", "push", "origin", "--delete", "old", NULL};
	const char *p7[] = {"git", "push", "origin", "main", NULL};
	const char *d1[] = {"dropdb", "app", NULL};
	const char *m1[] = {"mkfs.ext4", "/dev/sdb1", NULL};
	const char *dd1[] = {"dd", "if=x", "of=/dev/sda", NULL};
	const char *dd2[] = {"dd", "if=/dev/zero", "of=/dev/null", NULL};
	const char *s1[] = {"shred", "-u", "f", NULL};
	const char *rm[] = {"rm", "-rf", "/work/proj", NULL};
	EXPECT(on_exec(tf1), AG_DENY, "no-infra-destroy");
	EXPECT(on_exec(tf2), AG_DENY, "no-infra-apply-destroy");
	EXPECT(on_exec(tf3), AG_ALLOW, NULL);
	EXPECT(on_exec(k1), AG_DENY, "no-k8s-delete");
	EXPECT(on_exec(h1), AG_DENY, "no-helm-uninstall");
	EXPECT(on_exec(a1), AG_DENY, NULL);
	EXPECT(on_exec(a2), AG_DENY, NULL);
	EXPECT(on_exec(a3), AG_DENY, NULL);
	EXPECT(on_exec(a4), AG_DENY, NULL);
	EXPECT(on_exec(a5), AG_ALLOW, NULL);
	EXPECT(on_exec(g1), AG_DENY, "no-gcloud-delete");
	EXPECT(on_exec(z1), AG_DENY, "no-az-delete");
	EXPECT(on_exec(p1), AG_DENY, "no-force-push");
	EXPECT(on_exec(p2), AG_DENY, "no-force-push");
	EXPECT(on_exec(p3), AG_DENY, "no-force-push");
	EXPECT(on_exec(p4), AG_DENY, "no-force-push");
	EXPECT(on_exec(p5), AG_DENY, "no-force-push");
	EXPECT(on_exec(p6), AG_DENY, "no-force-push");
	/* A plain push goes, its remote's tracking refs recorded first. */
	EXPECT(on_exec(p7), AG_SNAPSHOT, "git-history");
	EXPECT(on_exec(d1), AG_DENY, NULL);
	EXPECT(on_exec(m1), AG_DENY, "no-mkfs");
	EXPECT(on_exec(dd1), AG_DENY, "no-dd-to-device");
	EXPECT(on_exec(dd2), AG_ALLOW, NULL);
	EXPECT(on_exec(s1), AG_DENY, "no-shred");
	EXPECT(on_exec(rm), AG_ALLOW, NULL);

	struct ag_verdict v = on_exec(tf1);
	cr_expect(v.reason && strstr(v.reason, "ask the user"), "reasons tell the agent what to do");
	const char *ls[] = {"ls", NULL};
	struct ag_op op = {.kind = AG_OP_EXEC, .path = "/usr/local/bin/static", .argv = ls,
			   .unguarded = 1, .port = -1};
	ag_decide(def, &op, &v);
	EXPECT(v, AG_LOG, "unguarded-program");
}

static struct ag_verdict on_exec_env(const char *const *argv, const char *const *envp,
				     const char *real)
{
	char prog[256];
	snprintf(prog, sizeof prog, "/usr/bin/%s", argv[0]);
	struct ag_op op = {.kind = AG_OP_EXEC, .path = prog, .argv = argv, .port = -1,
			   .envp = envp, .real_path = real};
	struct ag_verdict v;
	ag_decide(def, &op, &v);
	return v;
}

/* The subcommand, not any word: global options skipped with their values. */
Test(default_rules, subcommands, .init = load_default, .fini = free_default)
{
	const char *k1[] = {"kubectl", "-n", "prod", "delete", "pod", "x", NULL};
	const char *k2[] = {"kubectl", "get", "pod", "delete", NULL};
	const char *k3[] = {"kubectl", "-n", "delete", "get", "pods", NULL};
	const char *a1[] = {"aws", "--region", "eu-west-1", "s3", "rm", "s3://b/k", NULL};
	const char *a2[] = {"aws", "s3", "ls", "s3://rm", NULL};
	const char *d1[] = {"docker", "--context", "prod", "rm", "web", NULL};
	const char *d2[] = {"docker", "logs", "rm", NULL};
	const char *t1[] = {"terraform", "plan", "-destroy", NULL};
	const char *t2[] = {"terraform", "destroy", "-help", NULL};
	const char *g1[] = {"gcloud", "compute", "instances", "describe", "vm-1", NULL};
	const char *g2[] = {"gcloud", "compute", "instances", "delete", "vm-1", NULL};
	const char *z1[] = {"az", "storage", "blob", "delete-batch", "-s", "c", NULL};
	const char *h1[] = {"helm", "plugin", "uninstall", "diff", NULL};
	EXPECT(on_exec(k1), AG_DENY, "no-k8s-delete");
	EXPECT(on_exec(k2), AG_ALLOW, NULL);
	EXPECT(on_exec(k3), AG_ALLOW, NULL);
	EXPECT(on_exec(a1), AG_DENY, "no-s3-bulk-delete");
	EXPECT(on_exec(a2), AG_ALLOW, NULL);
	EXPECT(on_exec(d1), AG_DENY, "no-docker-volume-rm");
	EXPECT(on_exec(d2), AG_ALLOW, NULL);
	EXPECT(on_exec(t1), AG_ALLOW, NULL);
	EXPECT(on_exec(t2), AG_ALLOW, NULL);
	EXPECT(on_exec(g1), AG_ALLOW, NULL);
	EXPECT(on_exec(g2), AG_DENY, "no-gcloud-delete");
	EXPECT(on_exec(z1), AG_DENY, "no-az-delete");
	EXPECT(on_exec(h1), AG_ALLOW, NULL);
}

/* What runs elsewhere, under other names, with terraform's env arguments. */
Test(default_rules, views, .init = load_default, .fini = free_default)
{
	const char *s1[] = {"ssh", "-p", "22", "bastion", "cd /srv && terraform destroy", NULL};
	const char *s2[] = {"ssh", "bastion", "terraform", "plan", NULL};
	const char *s3[] = {"ssh", "-o", "BatchMode=yes", "db", "redis-cli FLUSHALL", NULL};
	const char *k1[] = {"kubectl", "exec", "-n", "ci", "pod", "--", "sh", "-c",
			    "env X=1 timeout 5 kubectl delete ns prod", NULL};
	const char *k2[] = {"kubectl", "exec", "pod", "--", "ls", NULL};
	const char *d1[] = {"docker", "run", "--rm", "-v", "a:/a", "img", "bash", "-lc",
			    "tofu destroy -auto-approve", NULL};
	const char *d2[] = {"podman", "exec", "-u", "root", "c", "xargs", "-n1", "gh", "repo",
			    "delete", NULL};
	const char *d3[] = {"docker", "run", "img", "terraform", "plan", NULL};
	const char *u1[] = {"sudo", "-u", "ops", "terraform", "destroy", NULL};
	const char *i1[] = {"python3", "-u", "/usr/bin/aws", "s3", "rb", "s3://b", NULL};
	const char *i2[] = {"sh", "/usr/bin/gcloud", "projects", "delete", "p", NULL};
	const char *i3[] = {"python3", "-c", "print('terraform destroy')", NULL};
	const char *tf[] = {"terraform", "apply", NULL};
	const char *tf0[] = {"terraform", NULL};
	const char *e1[] = {"TF_CLI_ARGS_apply=-destroy", NULL};
	const char *e2[] = {"TF_CLI_ARGS=destroy", NULL};
	const char *e3[] = {"TF_CLI_ARGS_plan=-destroy", NULL};
	const char *tfl[] = {"tf", "destroy", NULL};
	EXPECT(on_exec(s1), AG_DENY, "no-infra-destroy");
	EXPECT(on_exec(s2), AG_ALLOW, NULL);
	EXPECT(on_exec(s3), AG_DENY, "no-datastore-wipe");
	EXPECT(on_exec(k1), AG_DENY, "no-k8s-delete");
	EXPECT(on_exec(k2), AG_ALLOW, NULL);
	EXPECT(on_exec(d1), AG_DENY, "no-infra-destroy");
	EXPECT(on_exec(d2), AG_DENY, "no-gh-delete");
	EXPECT(on_exec(d3), AG_ALLOW, NULL);
	EXPECT(on_exec(u1), AG_DENY, "no-infra-destroy");
	EXPECT(on_exec(i1), AG_DENY, "no-s3-bulk-delete");
	EXPECT(on_exec(i2), AG_DENY, "no-gcloud-delete");
	EXPECT(on_exec(i3), AG_ALLOW, NULL);
	EXPECT(on_exec_env(tf, e1, NULL), AG_DENY, "no-infra-apply-destroy");
	EXPECT(on_exec_env(tf, e3, NULL), AG_ALLOW, NULL);
	EXPECT(on_exec_env(tf0, e2, NULL), AG_DENY, "no-infra-destroy");
	EXPECT(on_exec_env(tfl, NULL, "/opt/hashicorp/terraform"), AG_DENY, "no-infra-destroy");
	EXPECT(on_exec_env(tfl, NULL, NULL), AG_ALLOW, NULL);
}

Test(default_rules, network_and_sql, .init = load_default, .fini = free_default)
{
	struct ag_op c = {.kind = AG_OP_CONNECT, .addr = "169.254.169.254", .port = 80};
	struct ag_verdict v;
	ag_decide(def, &c, &v);
	EXPECT(v, AG_DENY, "no-cloud-metadata");
	cr_expect_eq(v.hard, 1);
	c.addr = "fd00:ec2::254";
	ag_decide(def, &c, &v);
	EXPECT(v, AG_DENY, "no-cloud-metadata");
	c.addr = "140.82.112.3";
	c.host = "github.com";
	c.port = 443;
	ag_decide(def, &c, &v);
	EXPECT(v, AG_ALLOW, NULL);

	struct ag_op q = {.kind = AG_OP_SQL, .sql = "DROP TABLE users",
			  .sql_class = AG_SQL_DROP_TABLE, .database = "/work/proj/app.db",
			  .port = -1};
	ag_decide(def, &q, &v);
	EXPECT(v, AG_SNAPSHOT, "sqlite-destructive-snapshot");
	/* A server: a pre-image first (the hook denies where it cannot take one). */
	q.database = "db.example.com/shop";
	ag_decide(def, &q, &v);
	EXPECT(v, AG_SNAPSHOT, "server-destructive-sql");
	q.database = NULL;
	ag_decide(def, &q, &v);
	EXPECT(v, AG_SNAPSHOT, "server-destructive-sql");
	q.sql = "DELETE FROM t";
	q.sql_class = AG_SQL_DELETE_ALL;
	q.database = "localhost/shop";
	ag_decide(def, &q, &v);
	EXPECT(v, AG_SNAPSHOT, NULL);
	q.sql_class = AG_SQL_DELETE;
	ag_decide(def, &q, &v);
	EXPECT(v, AG_ALLOW, NULL);
	q.sql_class = AG_SQL_READ;
	ag_decide(def, &q, &v);
	EXPECT(v, AG_ALLOW, NULL);
	q.sql_class = AG_SQL_SAFETY_OFF;
	ag_decide(def, &q, &v);
	EXPECT(v, AG_DENY, "no-safety-off");
}

Test(default_rules, settings, .init = load_default, .fini = free_default)
{
	cr_assert_eq(ag_policy_mode(def), AG_MODE_AUTONOMOUS);
	cr_assert_eq(ag_policy_enforce(def), 1);
	cr_assert_eq(ag_policy_denial_limit(def), 20);
	cr_assert_eq(ag_policy_max_snapshot_bytes(def), 4ull << 30);
	cr_assert_str_eq(ag_policy_workspace(def), "/work/proj");
}

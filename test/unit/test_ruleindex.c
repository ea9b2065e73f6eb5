/* The rule index (lib/ruleindex.c): with many rules an op's decision asks
 * only the rules whose path globs can reach the subject. It must decide
 * exactly as scanning every rule does, whatever the globs look like. */
#include <stdint.h>

#include "helpers.h"
#include "policy_internal.h"

static struct ag_policy_env env = {.home = "/home/u", .workspace = "/home/u/proj",
				   .cwd = "/home/u/proj", .tmpdir = "/tmp"};

/* Globs of every shape the index treats differently: under a directory,
 * exact, a wildcard mid-name or mid-path, bare names, the root, @lists. */
static const char *const shapes[] = {
	"$WORKSPACE/svc%d/**",  "/srv/app%d/*.db",      "~/.config/tool%d/conf",
	"/var/lib/d%d",         "*.k%d",                "/opt/x%d*/data/**",
	"$WORKSPACE/**/gen%d/**", "/data/%d/**/keep",   "/e%d/**",
	"/**",
};
static const char *const actions[] = {"deny", "snapshot", "log", "ask", "allow"};

static char *many_rules(int n)
{
	size_t cap = 1 << 20, len = 0;
	char *y = malloc(cap);
	len += (size_t)snprintf(y + len, cap - len,
				"version: 1\nlists:\n  keep: [\"$WORKSPACE/keep/**\", \"*.bak\"]\nrules:\n");
	for (int i = 0; i < n; i++) {
		const char *a = shapes[i % 10], *b = shapes[(i * 7 + 3) % 10];
		char ga[64], gb[64];
		snprintf(ga, sizeof ga, a, i);
		snprintf(gb, sizeof gb, b, i + 1);
		if (!strcmp(ga, "/**"))
			snprintf(ga, sizeof ga, "/r%d/**", i);
		if (!strcmp(gb, "/**"))
			snprintf(gb, sizeof gb, "/q%d/**", i);
		if (i % 97 == 5)   /* the root only now and then, for shred alone */
			strcpy(gb, "/**");
		len += (size_t)snprintf(y + len, cap - len,
			"  - id: r%d\n    on: [delete, rename, truncate, write, mode, link]\n"
			"    path: [\"%s\", \"%s\"%s]\n%s%s    action: %s\n",
			i, ga, gb, i % 13 == 0 ? ", \"@keep\"" : "",
			i % 5 == 0 ? "    unless: {path: [\"$WORKSPACE/svc*/tmp/**\"]}\n" : "",
			i % 11 == 0 ? "    program: [git, \"py*\"]\n"
			: i % 97 == 5 ? "    program: [shred]\n" : "", actions[i % 5]);
	}
	/* Rules with no path at all are asked every time. */
	len += (size_t)snprintf(y + len, cap - len,
		"  - {id: by-program, on: [delete, rename], program: [shred], action: deny}\n");
	return y;
}

static const char *const subjects[] = {
	"/home/u/proj/svc%d/main.c", "/srv/app%d/users.db", "/srv/app%d/users.txt",
	"/home/u/.config/tool%d/conf", "/home/u/.config/tool%d/conf2", "/var/lib/d%d",
	"/var/lib/d%d/x", "/tmp/scratch/f%d.k%d", "/opt/x%d7/data/a", "/opt/x%d/data",
	"/home/u/proj/a/gen%d/b.o", "/data/%d/q/r/keep", "/e%d", "/r%d/z", "/home/u/proj/keep/%d",
	"/home/u/proj/svc%d/tmp/t", "/nowhere/%d.bak", "/", "/home/u/proj",
};
static const char *const progs[] = {"/usr/bin/git", "/usr/bin/python3", "/bin/rm",
				    "/usr/bin/shred"};

Test(ruleindex, decides_exactly_as_scanning_every_rule)
{
	char err[512];
	char *y = many_rules(400);
	struct ag_policy *p = ag_policy_load("many.yaml", y, strlen(y), &env, err, sizeof err);
	cr_assert_not_null(p, "%s", err);
	cr_assert_not_null(p->pindex[AG_OP_DELETE], "400 rules on delete are indexed");
	struct ag_policy scan = *p;
	for (int k = 0; k < AG_OP_COUNT; k++)
		scan.pindex[k] = NULL;

	static const enum ag_op_kind kinds[] = {AG_OP_DELETE, AG_OP_RENAME, AG_OP_TRUNCATE,
						AG_OP_WRITE, AG_OP_MODE, AG_OP_LINK};
	int compared = 0, ruled = 0;
	for (int i = 0; i < 420; i += 3)
		for (size_t s = 0; s < sizeof subjects / sizeof subjects[0]; s++)
			for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
				char path[256], target[256];
				snprintf(path, sizeof path, subjects[s], i, i);
				snprintf(target, sizeof target, subjects[(s + i) % 19], i + 1, i);
				struct ag_op op = {.kind = kinds[k], .path = path,
						   .caller = progs[(i + s) % 4], .port = -1,
						   .sql_class = -1};
				if (kinds[k] == AG_OP_RENAME || kinds[k] == AG_OP_LINK)
					op.target = target;
				struct ag_verdict a, b;
				ag_decide(p, &op, &a);
				ag_decide(&scan, &op, &b);
				cr_assert_eq(a.action, b.action, "%s %s -> %s", ag_op_name(op.kind),
					     path, op.target ? op.target : "");
				cr_assert_eq(a.rule_id, b.rule_id, "%s %s: %s vs %s",
					     ag_op_name(op.kind), path, a.rule_id ? a.rule_id : "-",
					     b.rule_id ? b.rule_id : "-");
				compared++;
				ruled += a.rule_id != NULL;
			}
	cr_assert_gt(ruled, compared / 4, "the subjects reach rules (%d of %d)", ruled, compared);
	cr_assert_lt(ruled, compared, "and some reach none");
	ag_policy_free(p);
	free(y);
}

/* Commands of every kind the built-in exec rules tell apart: programs by
 * name and by path, wrappers that run another command, interpreters. */
static const char *const commands[][8] = {
	{"/usr/bin/make", "make", "-j2", NULL},
	{"/usr/bin/terraform", "terraform", "destroy", "-auto-approve", NULL},
	{"/usr/bin/terraform", "terraform", "plan", "-destroy", NULL},
	{"/usr/bin/kubectl", "kubectl", "delete", "ns", "prod", NULL},
	{"/usr/bin/sudo", "sudo", "kubectl", "delete", "pod", "x", NULL},
	{"/usr/bin/ssh", "ssh", "host", "rm", "-rf", "/srv", NULL},
	{"/usr/bin/git", "git", "push", "--force", NULL},
	{"/usr/bin/git", "git", "status", NULL},
	{"/bin/sh", "sh", "-c", "terraform destroy", NULL},
	{"/usr/bin/env", "env", "A=1", "helm", "uninstall", "x", NULL},
	{"/usr/sbin/mkfs.ext4", "mkfs.ext4", "/dev/sda", NULL},
	{"/usr/bin/python3", "python3", "-c", "print(1)", NULL},
	{"/opt/tools/gcloud", "gcloud", "projects", "delete", "p", NULL},
	{"/usr/bin/docker", "docker", "volume", "rm", "v", NULL},
	{"/usr/bin/aws", "aws", "s3", "rm", "s3://b", "--recursive", NULL},
	{"/usr/bin/dd", "dd", "if=/dev/zero", "of=/dev/sda", NULL},
	{"/usr/local/bin/tool7", "tool7", "purge", NULL},
};

static void same_execs(const struct ag_policy *p)
{
	struct ag_policy scan = *p;
	scan.pindex[AG_OP_EXEC] = NULL;
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		struct ag_op op = {.kind = AG_OP_EXEC, .path = commands[i][0],
				   .argv = (const char *const *)&commands[i][1],
				   .caller = "/usr/bin/python3", .port = -1, .sql_class = -1};
		struct ag_verdict a, b;
		ag_decide(p, &op, &a);
		ag_decide(&scan, &op, &b);
		cr_assert_eq(a.action, b.action, "%s", commands[i][1]);
		cr_assert_str_eq(a.rule_id ? a.rule_id : "-", b.rule_id ? b.rule_id : "-", "%s %s",
				 commands[i][1], commands[i][2]);
	}
}

Test(ruleindex, the_builtin_execs_are_indexed_and_decide_as_scanned)
{
	char err[512];
	struct ag_policy *p = ag_policy_load("builtin", ag_default_rules, ag_default_rules_len,
					     &env, err, sizeof err);
	cr_assert_not_null(p, "%s", err);
	cr_assert_not_null(p->pindex[AG_OP_EXEC], "%zu exec rules", p->nbyop[AG_OP_EXEC]);
	cr_expect_null(p->pindex[AG_OP_DELETE], "a few delete rules are scanned");
	same_execs(p);
	/* And a thousand more, by name and by glob. */
	size_t cap = 1 << 20, len = 0;
	char *y = malloc(cap);
	len += (size_t)snprintf(y + len, cap - len, "%.*s\n", (int)ag_default_rules_len,
				ag_default_rules);
	for (int i = 0; i < 1000; i++)
		len += (size_t)snprintf(y + len, cap - len,
			"  - {id: gen%d, on: exec, program: [\"%s%d\"], args: [purge], action: %s}\n",
			i, i % 9 == 0 ? "/usr/local/bin/tool" : i % 7 == 0 ? "tool*" : "tool", i,
			actions[i % 5]);
	struct ag_policy *q = ag_policy_load("many.yaml", y, len, &env, err, sizeof err);
	cr_assert_not_null(q, "%s", err);
	same_execs(q);
	ag_policy_free(q);
	ag_policy_free(p);
	free(y);
}

Test(ruleindex, is_part_of_the_session_image)
{
	char err[512], dir[AG_PATH_MAX], img[AG_PATH_MAX + 16], h[65];
	static const char HASH[] = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
	char *y = many_rules(300);

	ut_mkdtemp(dir, sizeof dir);
	ut_fmt(img, sizeof img, "%s/s.img", dir);
	cr_assert_eq(ag_policy_image_write(img, "many.yaml", y, strlen(y), &env, HASH, NULL, err,
					   sizeof err), 0, "%s", err);
	struct ag_policy *m = ag_policy_image_map(img, &env, h, NULL);
	cr_assert_not_null(m);
	const struct ag_pindex *x = m->pindex[AG_OP_DELETE];
	cr_assert_not_null(x);
	uintptr_t lo = (uintptr_t)m->image, hi = lo + m->image_size;
	cr_assert((uintptr_t)x >= lo && (uintptr_t)x < hi, "the index lies in the image");
	cr_assert((uintptr_t)x->slot >= lo && (uintptr_t)x->slot < hi);
	struct ag_policy *c = ag_policy_load("many.yaml", y, strlen(y), &env, err, sizeof err);
	cr_assert_not_null(c, "%s", err);
	for (int i = 0; i < 300; i += 7)
		for (size_t s = 0; s < sizeof subjects / sizeof subjects[0]; s++) {
			char path[256];
			snprintf(path, sizeof path, subjects[s], i, i);
			struct ag_op op = {.kind = AG_OP_DELETE, .path = path, .caller = "/bin/rm",
					   .port = -1, .sql_class = -1};
			struct ag_verdict a, b;
			ag_decide(m, &op, &a);
			ag_decide(c, &op, &b);
			cr_assert_eq(a.action, b.action, "%s", path);
			cr_assert_str_eq(a.rule_id ? a.rule_id : "-", b.rule_id ? b.rule_id : "-", "%s", path);
		}
	ag_policy_free(c);
	ag_policy_free(m);
	ut_rmrf(dir);
	free(y);
}

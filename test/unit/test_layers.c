/* Rule layers: extends:, merging by id and name, override and locked,
 * the managed file over everything, the lookup order, and the bundle a
 * session freezes. Each test writes its files into a fresh directory. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentguard.h"

static const struct ag_policy_env ENV = {
	.home = "/home/u", .workspace = "/w", .cwd = "/w", .tmpdir = "/tmp",
};

static char dir[64];

static void fresh(void)
{
	strcpy(dir, "/tmp/ag-layers-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	char etc[128];
	snprintf(etc, sizeof etc, "%s/etc", dir);
	mkdir(etc, 0755);
	setenv("AGENTGUARD_SYSCONFDIR", etc, 1);   /* no managed file unless a test writes one */
}

static void rmtree(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static const char *put(const char *name, const char *text)
{
	static char path[8][256];
	static int k;
	char *p = path[k++ % 8];
	snprintf(p, 256, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

static struct ag_policy *load_ok(const char *path)
{
	char err[1024] = "";
	struct ag_policy *p = ag_policy_load_file(path, &ENV, err, sizeof err);
	cr_assert(p, "load failed: %s", err);
	return p;
}

/* The load fails with an error at `file:pos` that mentions `what`. */
static void load_err(const char *path, const char *file, const char *pos, const char *what)
{
	char err[1024] = "", want[512];
	struct ag_policy *p = ag_policy_load_file(path, &ENV, err, sizeof err);
	cr_assert_null(p, "expected an error loading %s", path);
	snprintf(want, sizeof want, "%s:%s: ", file, pos);
	cr_assert(strncmp(err, want, strlen(want)) == 0, "error '%s' should start with '%s'", err,
		  want);
	cr_assert(strstr(err, what), "error '%s' should mention '%s'", err, what);
}

static enum ag_action decide_exec(const struct ag_policy *p, const char *prog, const char **argv,
				  const char **rule)
{
	struct ag_op op = {.kind = AG_OP_EXEC, .path = prog, .argv = argv, .port = -1};
	struct ag_verdict v;
	char scratch[4096];
	op.scratch = scratch;
	op.scratch_len = sizeof scratch;
	ag_decide(p, &op, &v);
	*rule = v.rule_id;
	return v.action;
}

static enum ag_action decide_delete(const struct ag_policy *p, const char *path)
{
	struct ag_op op = {.kind = AG_OP_DELETE, .path = path, .port = -1};
	struct ag_verdict v;
	ag_decide(p, &op, &v);
	return v.action;
}

static const char *TF_DESTROY[] = {"terraform", "destroy", "-auto-approve", NULL};
static const char *DEPLOY[] = {"deploy.sh", "--prod", NULL};

static const char *PROJECT =
	"version: 1\n"
	"extends: builtin:default\n"
	"rules:\n"
	"  - id: no-deploy\n"
	"    on: exec\n"
	"    program: deploy.sh\n"
	"    action: deny\n"
	"    reason: deploys go through CI\n";

Test(layers, one_added_rule_keeps_every_builtin_protection)
{
	fresh();
	struct ag_policy *p = load_ok(put("project.yaml", PROJECT));
	const char *rule;

	cr_assert_eq(decide_delete(p, "/home/u/.ssh/id_ed25519"), AG_DENY);
	cr_assert_eq(decide_exec(p, "/usr/bin/terraform", TF_DESTROY, &rule), AG_DENY);
	cr_assert_str_eq(rule, "no-infra-destroy");
	cr_assert_eq(decide_exec(p, "/w/deploy.sh", DEPLOY, &rule), AG_DENY);
	cr_assert_str_eq(rule, "no-deploy");

	/* Two layers, and each rule knows its own. */
	const char *name;
	int managed;
	cr_assert_eq(ag_policy_layer(p, 0, &name, &managed), 0);
	cr_assert_str_eq(name, "builtin:default.yaml");
	cr_assert_eq(ag_policy_layer(p, 1, &name, &managed), 0);
	cr_assert(strstr(name, "project.yaml"));
	cr_assert_eq(ag_policy_layer(p, 2, &name, &managed), -1);
	const char *o = ag_policy_rule_origin(p, "no-deploy");
	cr_assert(o && strstr(o, "project.yaml:4:5"), "origin %s", o);
	o = ag_policy_rule_origin(p, "no-infra-destroy");
	cr_assert(o && strncmp(o, "builtin:default.yaml:", 21) == 0, "origin %s", o);
	ag_policy_free(p);

	/* One more rule than the built-in set alone. */
	char err[512];
	struct ag_policy *b = ag_policy_load("builtin", ag_default_rules, ag_default_rules_len,
					     &ENV, err, sizeof err);
	p = load_ok(put("project.yaml", PROJECT));
	cr_assert_eq(ag_policy_rule_count(p), ag_policy_rule_count(b) + 1);
	ag_policy_free(b);
	ag_policy_free(p);
	rmtree();
}

Test(layers, the_same_id_again_needs_override)
{
	fresh();
	const char *f = put("p.yaml", "version: 1\nextends: builtin:default\nrules:\n"
			    "  - id: no-infra-destroy\n    on: exec\n    action: allow\n");
	load_err(f, f, "4:9", "already defined at builtin:default.yaml:");
	rmtree();
}

Test(layers, an_override_loosens_and_says_what_it_replaced)
{
	fresh();
	const char *f = put("p.yaml", "version: 1\nextends: builtin:default\noverride:\n"
			    "  - id: no-infra-destroy\n    action: ask\n");
	struct ag_policy *p = load_ok(f);
	const char *rule;
	cr_assert_eq(decide_exec(p, "/usr/bin/terraform", TF_DESTROY, &rule), AG_ASK);
	cr_assert_str_eq(rule, "no-infra-destroy");
	const char *o = ag_policy_rule_origin(p, "no-infra-destroy");
	cr_assert(o && strstr(o, "p.yaml:4:5 (overrides builtin:default.yaml:"), "origin %s", o);
	/* The rest of the built-in set is untouched. */
	cr_assert_eq(decide_delete(p, "/home/u/.ssh/id_rsa"), AG_DENY);
	ag_policy_free(p);

	const char *g = put("q.yaml", "version: 1\nextends: builtin:default\noverride:\n"
			    "  - id: no-such-rule\n    action: ask\n");
	load_err(g, g, "4:9", "no rule file below this one defines");
	rmtree();
}

Test(layers, a_managed_lock_holds_against_a_project_override)
{
	fresh();
	const char *managed = put("etc/managed.yaml",
		"version: 1\noverride:\n  - id: no-infra-destroy\n    locked: true\n"
		"rules:\n  - id: corp-no-curl\n    on: exec\n    program: curl\n    action: deny\n"
		"    locked: true\n");

	const char *f = put("p.yaml", "version: 1\nextends: builtin:default\noverride:\n"
			    "  - id: no-infra-destroy\n    action: allow\n");
	char lockpos[256];
	snprintf(lockpos, sizeof lockpos, "locked by %s:4:5", managed);
	load_err(f, f, "4:9", lockpos);

	/* Without the override the project loads, under the managed rules. */
	struct ag_policy *p = load_ok(put("ok.yaml", PROJECT));
	const char *rule, *name;
	int is_managed;
	static const char *curl[] = {"curl", "https://example.com", NULL};
	cr_assert_eq(decide_exec(p, "/usr/bin/curl", curl, &rule), AG_DENY);
	cr_assert_str_eq(rule, "corp-no-curl");
	cr_assert_eq(ag_policy_layer(p, 2, &name, &is_managed), 0);
	cr_assert_str_eq(name, managed);
	cr_assert(is_managed);
	ag_policy_free(p);

	/* The built-in set alone gets the managed file too. */
	p = load_ok("builtin");
	cr_assert_eq(decide_exec(p, "/usr/bin/curl", curl, &rule), AG_DENY);
	ag_policy_free(p);
	rmtree();
}

Test(layers, the_managed_settings_are_final)
{
	fresh();
	const char *managed = put("etc/managed.yaml",
				  "version: 1\nenforce: true\nlimits: {denials: 5}\n");
	struct ag_policy *p = load_ok(put("p.yaml", "version: 1\nextends: builtin:default\n"
					 "enforce: false\nlimits: {denials: 50}\nmode: supervised\n"));
	cr_assert_eq(ag_policy_enforce(p), 1);
	cr_assert_eq(ag_policy_denial_limit(p), 5);
	cr_assert_eq(ag_policy_mode(p), AG_MODE_SUPERVISED);   /* managed said nothing */
	ag_policy_free(p);

	put("etc/managed.yaml", "version: 1\nextends: other.yaml\n");
	load_err(put("q.yaml", PROJECT), managed, "2:10", "cannot extend");
	rmtree();
}

Test(layers, an_exception_list_does_not_grow_from_above)
{
	fresh();
	/* ssh_config is what protect-credentials excepts: adding a key to it
	 * would let the key be deleted. */
	const char *f = put("p.yaml", "version: 1\nextends: builtin:default\nlists:\n"
			    "  ssh_config: [\"~/.ssh/id_rsa\"]\n");
	load_err(f, f, "4:16", "exception (unless:) of rule 'protect-credentials'");

	/* A list that no exception uses grows: the rule it feeds tightens. */
	const char *g = put("q.yaml", "version: 1\nextends: base.yaml\nlists:\n"
			    "  secret: [\"/srv/keys/**\"]\n");
	put("base.yaml", "version: 1\nlists:\n  secret: [\"/srv/vault/**\"]\nrules:\n"
	    "  - id: secrets\n    on: delete\n    path: \"@secret\"\n    action: deny\n");
	struct ag_policy *p = load_ok(g);
	cr_assert_eq(decide_delete(p, "/srv/vault/a"), AG_DENY);
	cr_assert_eq(decide_delete(p, "/srv/keys/b"), AG_DENY);
	cr_assert_eq(decide_delete(p, "/srv/other"), AG_ALLOW);
	ag_policy_free(p);
	rmtree();
}

Test(layers, defaults_only_tighten)
{
	fresh();
	put("base.yaml", "version: 1\ndefaults: {exec: ask}\n");
	const char *f = put("p.yaml", "version: 1\nextends: base.yaml\ndefaults: {exec: allow}\n");
	load_err(f, f, "3:18", "looser than the ask set at");
	const char *g = put("q.yaml", "version: 1\nextends: base.yaml\ndefaults: {exec: deny}\n");
	struct ag_policy *p = load_ok(g);
	const char *rule;
	static const char *ls[] = {"ls", NULL};
	cr_assert_eq(decide_exec(p, "/bin/ls", ls, &rule), AG_DENY);
	ag_policy_free(p);
	rmtree();
}

Test(layers, extends_errors_are_located)
{
	fresh();
	const char *a = put("a.yaml", "version: 1\nextends: b.yaml\n");
	put("b.yaml", "version: 1\nextends: a.yaml\n");
	char err[1024];
	cr_assert_null(ag_policy_load_file(a, &ENV, err, sizeof err));
	cr_assert(strstr(err, "in a circle"), "%s", err);

	const char *m = put("m.yaml", "version: 1\nextends: missing.yaml\n");
	load_err(m, m, "2:10", "extends 'missing.yaml'");
	const char *n = put("n.yaml", "version: 1\nextends: [a, b]\n");
	load_err(n, n, "2:10", "extends takes one name");
	const char *u = put("u.yaml", "version: 1\nextends: builtin:strict\n");
	load_err(u, u, "2:10", "unknown built-in set");
	/* A syntax error in a file below is reported in that file. */
	put("broken.yaml", "version: 1\nrules: [\n");
	const char *t = put("t.yaml", "version: 1\nextends: broken.yaml\n");
	char bpath[256];
	snprintf(bpath, sizeof bpath, "%s/broken.yaml", dir);
	cr_assert_null(ag_policy_load_file(t, &ENV, err, sizeof err));
	cr_assert(strncmp(err, bpath, strlen(bpath)) == 0, "%s", err);
	rmtree();
}

Test(layers, a_text_alone_extends_only_the_builtin_set)
{
	char err[512];
	const char *ok = "version: 1\nextends: builtin:default\n";
	struct ag_policy *p = ag_policy_load("t.yaml", ok, strlen(ok), &ENV, err, sizeof err);
	cr_assert(p, "%s", err);
	cr_assert_eq(decide_delete(p, "/home/u/.ssh/id_rsa"), AG_DENY);
	ag_policy_free(p);
	const char *bad = "version: 1\nextends: other.yaml\n";
	cr_assert_null(ag_policy_load("t.yaml", bad, strlen(bad), &ENV, err, sizeof err));
	cr_assert(strncmp(err, "t.yaml:2:10: ", 13) == 0, "%s", err);
}

Test(layers, the_bundle_round_trips_and_refuses_damage)
{
	fresh();
	struct ag_rules_text t;
	char err[512];
	cr_assert_eq(ag_rules_resolve(put("p.yaml", PROJECT), &t, err, sizeof err), 0, "%s", err);
	cr_assert(ag_layers_is_bundle(t.text, t.len));
	cr_assert_eq(t.nlayers, 2);
	struct ag_policy *p = ag_policy_load("frozen", t.text, t.len, &ENV, err, sizeof err);
	cr_assert(p, "%s", err);
	cr_assert_eq(decide_delete(p, "/home/u/.ssh/id_rsa"), AG_DENY);
	ag_policy_free(p);
	/* Every cut of it is refused, none crashes. */
	for (size_t cut = 20; cut < t.len; cut += t.len / 97 + 1) {
		p = ag_policy_load("frozen", t.text, cut, &ENV, err, sizeof err);
		if (p)
			ag_policy_free(p);
	}
	struct ag_layer l[AG_LAYERS_MAX];
	cr_assert_eq(ag_layers_split(t.text, t.len - 1, l, AG_LAYERS_MAX), -1);
	cr_assert_eq(ag_layers_split(t.text, t.len, l, 1), -1);
	ag_rules_text_free(&t);

	/* One file extending nothing is frozen as itself; the built-in set
	 * alone is the built-in set. */
	const char *solo = put("solo.yaml", "version: 1\n");
	cr_assert_eq(ag_rules_resolve(solo, &t, err, sizeof err), 0);
	cr_assert(!ag_layers_is_bundle(t.text, t.len));
	cr_assert_str_eq(t.text, "version: 1\n");
	ag_rules_text_free(&t);
	cr_assert_eq(ag_rules_resolve("builtin", &t, err, sizeof err), 0);
	cr_assert(t.builtin);
	ag_rules_text_free(&t);
	rmtree();
}

Test(layers, lookup_order)
{
	fresh();
	char ws[128], xdg[128], out[4096], want[256];
	snprintf(ws, sizeof ws, "%s/ws", dir);
	snprintf(xdg, sizeof xdg, "%s/xdg", dir);
	mkdir(ws, 0755);
	mkdir(xdg, 0755);
	setenv("XDG_CONFIG_HOME", xdg, 1);

	cr_assert_eq(ag_rules_lookup(NULL, ws, out, sizeof out), 0);
	cr_assert_str_eq(out, "builtin");
	put("etc/rules.yaml", "version: 1\n");
	cr_assert_eq(ag_rules_lookup(NULL, ws, out, sizeof out), 0);
	snprintf(want, sizeof want, "%s/etc/rules.yaml", dir);
	cr_assert_str_eq(out, want);
	mkdir(strcat(strcpy(want, xdg), "/agentguard"), 0755);
	put("xdg/agentguard/rules.yaml", "version: 1\n");
	cr_assert_eq(ag_rules_lookup(NULL, ws, out, sizeof out), 0);
	snprintf(want, sizeof want, "%s/agentguard/rules.yaml", xdg);
	cr_assert_str_eq(out, want);
	put("ws/.agentguard.yaml", "version: 1\n");
	cr_assert_eq(ag_rules_lookup(NULL, ws, out, sizeof out), 0);
	snprintf(want, sizeof want, "%s/.agentguard.yaml", ws);
	cr_assert_str_eq(out, want);
	cr_assert_eq(ag_rules_lookup("/given.yaml", ws, out, sizeof out), 0);
	cr_assert_str_eq(out, "/given.yaml");
	rmtree();
}

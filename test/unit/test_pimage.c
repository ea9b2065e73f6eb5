/* The rules image (lib/pimage.c): a mapped image decides exactly as the
 * compiled rules do, holds no pointer out of itself, and is refused
 * whenever it is not this build's compile of the same inputs. */
#include <stdint.h>
#include <sys/mman.h>

#include "helpers.h"

static char dir[AG_PATH_MAX], img[AG_PATH_MAX + 16];
static struct ag_policy_env env;

static void setup(void)
{
	ut_mkdtemp(dir, sizeof dir);
	ut_fmt(img, sizeof img, "%s/s.img", dir);
	env = (struct ag_policy_env){.home = "/home/u", .workspace = "/home/u/proj",
				     .cwd = "/home/u/proj", .tmpdir = "/tmp"};
}

static void teardown(void)
{
	ut_rmrf(dir);
}

TestSuite(pimage, .init = setup, .fini = teardown);

static const char HASH[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static void write_builtin(void)
{
	char err[512];
	int rc = ag_policy_image_write(img, "builtin", ag_default_rules, ag_default_rules_len,
				       &env, HASH, NULL, err, sizeof err);
	cr_assert_eq(rc, 0, "image_write: %s", err);
}

static struct ag_policy *map_it(void)
{
	char h[65];
	struct ag_policy *p = ag_policy_image_map(img, &env, h, NULL);
	if (p)
		cr_assert_str_eq(h, HASH);
	return p;
}

struct range {
	uintptr_t lo, hi;
};

Test(pimage, decides_as_the_compiled_rules_do)
{
	char err[512];
	write_builtin();
	struct ag_policy *m = map_it();
	cr_assert_not_null(m);
	struct ag_policy *c = ag_policy_load("builtin", ag_default_rules, ag_default_rules_len,
					     &env, err, sizeof err);
	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(ag_policy_rule_count(m), ag_policy_rule_count(c));
	cr_assert_str_eq(ag_policy_workspace(m), ag_policy_workspace(c));

	static const char *const paths[] = {
		"/home/u/.ssh/id_ed25519", "/home/u/proj/src/main.c", "/home/u/proj/.git/index.lock",
		"/home/u/proj/node_modules/x/i.js", "/home/u/.aws/credentials", "/etc/passwd",
		"/tmp/x", "/home/u/.bashrc", "/home/u/proj/data/app.sqlite", "/usr/bin/ls",
	};
	static const char *const cmds[][6] = {
		{"terraform", "destroy", NULL}, {"terraform", "plan", "-destroy", NULL},
		{"git", "push", "--force", NULL}, {"kubectl", "delete", "ns", "prod", NULL},
		{"make", "-j2", NULL}, {"rm", "-rf", "/", NULL}, {"aws", "s3", "rb", "s3://b", NULL},
	};
	static const char *const sql[] = {"DROP TABLE users", "DELETE FROM t", "SELECT 1",
					  "UPDATE t SET a=1"};
	size_t n = 0;
	for (int k = 0; k < AG_OP_COUNT; k++) {
		for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
			for (size_t j = 0; j < sizeof cmds / sizeof *cmds; j++) {
				char prog[64];
				ut_fmt(prog, sizeof prog, "/usr/bin/%s", cmds[j][0]);
				struct ag_op op = {
					.kind = (enum ag_op_kind)k, .path = paths[i],
					.target = paths[(i + 1) % 10], .argv = cmds[j],
					.port = 443, .addr = "10.0.0.5", .host = "api.example.com",
					.sql = sql[j % 4], .sql_class = -1,
					.database = "/home/u/proj/data/app.sqlite",
					.caller = prog,
				};
				if (k == AG_OP_EXEC)
					op.path = prog;
				struct ag_verdict a, b;
				ag_decide(c, &op, &a);
				ag_decide(m, &op, &b);
				cr_assert_eq(a.action, b.action, "op %d %s %s", k, paths[i], cmds[j][0]);
				cr_assert_eq(!a.rule_id, !b.rule_id);
				if (a.rule_id)
					cr_assert_str_eq(a.rule_id, b.rule_id);
				cr_assert_eq(a.hard, b.hard);
				n++;
			}
		}
	}
	cr_assert_gt(n, 500);
	ag_policy_free(c);
	ag_policy_free(m);
}

/* Every word that looks like an address of this process must point into
 * the image: one into the library or the heap would be wrong in another
 * process. */
Test(pimage, holds_no_pointer_out_of_itself)
{
	write_builtin();
	struct ag_policy *m = map_it();
	cr_assert_not_null(m);
	struct range r[512];
	size_t nr = 0;
	uintptr_t ilo = 0, ihi = 0;
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	while (f && fgets(line, sizeof line, f) && nr < 512) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) != 2)
			continue;
		if (strstr(line, "/s.img")) {
			ilo = lo;
			ihi = hi;
		} else if (strchr(line, '/') || strstr(line, "[heap]") || strstr(line, "[stack]")) {
			/* Where a stray pointer would go: string literals in the
			 * binaries, the heap. Anonymous ranges are left out: under
			 * ASan they cover so much that pairs of ints look like
			 * addresses in them. */
			r[nr++] = (struct range){lo, hi};
		}
	}
	if (f)
		fclose(f);
	cr_assert(ilo && (uintptr_t)m >= ilo && (uintptr_t)m < ihi);
	size_t inside = 0;
	for (const uintptr_t *w = (const uintptr_t *)ilo; w < (const uintptr_t *)ihi; w++) {
		if (*w >= ilo && *w < ihi) {
			inside++;
			continue;
		}
		for (size_t i = 0; i < nr; i++)
			cr_assert(!(*w >= r[i].lo && *w < r[i].hi),
				  "word at +%#lx points out of the image, to %#lx",
				  (unsigned long)((uintptr_t)w - ilo), (unsigned long)*w);
	}
	cr_assert_gt(inside, 1000, "the scan saw the image's own pointers");
	ag_policy_free(m);
}

Test(pimage, other_inputs_compile_their_own)
{
	write_builtin();
	char h[65];
	struct ag_policy_env e = env;
	e.home = "/home/v";
	cr_assert_null(ag_policy_image_map(img, &e, h, NULL));
	e = env;
	e.tmpdir = "/var/tmp";
	cr_assert_null(ag_policy_image_map(img, &e, h, NULL));
	e = env;
	e.workspace = "/home/u/proj2";
	cr_assert_null(ag_policy_image_map(img, &e, h, NULL));
	struct ag_policy *p = map_it();
	cr_assert_not_null(p);
	/* Mapped once already: the address is taken, so a second map fails
	 * rather than replacing the first. */
	cr_assert_null(ag_policy_image_map(img, &env, h, NULL));
	ag_policy_free(p);
	cr_assert_not_null(p = map_it());
	ag_policy_free(p);
}

static void damage(off_t at, unsigned char x)
{
	int fd = open(img, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, &x, 1, at), 1);
	close(fd);
}

Test(pimage, a_damaged_or_loose_image_is_refused)
{
	struct stat st;
	write_builtin();
	cr_assert_eq(stat(img, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0400);

	chmod(img, 0620);
	cr_assert_null(map_it(), "group-writable");
	chmod(img, 0600);

	cr_assert_eq(truncate(img, st.st_size - 4096), 0);
	cr_assert_null(map_it(), "truncated");

	write_builtin();
	damage(0, 'X');
	cr_assert_null(map_it(), "magic");
	write_builtin();
	damage(8, 0x5a);   /* the layout id */
	cr_assert_null(map_it(), "layout");

	write_builtin();
	cr_assert_eq(unlink(img), 0);
	cr_assert_eq(symlink("/etc/passwd", img), 0);
	cr_assert_null(map_it(), "symlink");
}

Test(pimage, relative_inputs_make_no_image)
{
	char err[256];
	struct ag_policy_env e = env;
	e.tmpdir = "tmp";
	cr_assert_neq(ag_policy_image_write(img, "builtin", ag_default_rules,
					    ag_default_rules_len, &e, HASH, NULL, err, sizeof err), 0);
	cr_assert_neq(access(img, F_OK), 0);
}

Test(pimage, broken_rules_make_no_image)
{
	char err[256];
	static const char bad[] = "version: 1\nrules:\n  - {id: x, on: nope, action: deny}\n";
	cr_assert_neq(ag_policy_image_write(img, "t.yaml", bad, sizeof bad - 1, &env, HASH, NULL, err,
					    sizeof err), 0);
	cr_assert(strstr(err, "t.yaml:3:"), "%s", err);
	cr_assert_neq(access(img, F_OK), 0);
}

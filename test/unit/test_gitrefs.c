/* lib/gitrefs.c: which git commands move names, what a push really
 * forces (flags, aliases, -c, the environment, configuration text), the
 * configuration reader, and the refs record with its pins, read from a
 * repository laid out by hand (git's own file formats). */
#include <criterion/criterion.h>
#include <string.h>

#include "gitrefs.h"
#include "helpers.h"

#define V(...) ((const char *const[]){__VA_ARGS__, NULL})

/* top/rel with its directories, holding the formatted text. */
static __attribute__((format(printf, 3, 4))) void ut_writef(const char *top, const char *rel,
							     const char *fmt, ...)
{
	char path[AG_PATH_MAX], text[4096];
	va_list ap;

	ut_fmt(path, sizeof path, "%s/%s", top, rel);
	*strrchr(path, '/') = 0;
	cr_assert_eq(ag_mkdirs(path, 0755), 0, "%s", path);
	path[strlen(path)] = '/';
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	ut_write_str(path, text);
}

static void ut_mkdirs(const char *p)
{
	cr_assert_eq(ag_mkdirs(p, 0755), 0, "%s", p);
}

/* ---- commands ------------------------------------------------------------ */

Test(gitrefs_names, commands_that_move_names)
{
	cr_expect_eq(ag_git_names(V("git", "branch", "-D", "x")), AG_GIT_REFS);
	cr_expect_eq(ag_git_names(V("git", "branch", "--delete", "x")), AG_GIT_REFS);
	cr_expect_eq(ag_git_names(V("git", "-C", "/r", "branch", "-m", "a", "b")), AG_GIT_REFS);
	cr_expect_eq(ag_git_names(V("git", "stash", "drop")), AG_GIT_REFS);
	cr_expect_eq(ag_git_names(V("git", "stash", "clear")), AG_GIT_REFS);
	cr_expect_eq(ag_git_names(V("git", "-c", "a.b=1", "reset", "--hard", "HEAD~3")), AG_GIT_REFS);
	cr_expect_eq(ag_git_names(V("git", "rebase", "main")), AG_GIT_REFS);
	cr_expect_eq(ag_git_names(V("git", "tag", "-d", "v1")), AG_GIT_REFS);
	cr_expect_eq(ag_git_names(V("git", "update-ref", "-d", "refs/heads/x")), AG_GIT_REFS);
	cr_expect_eq(ag_git_names(V("git", "reflog", "expire", "--all")), AG_GIT_REFLOGS);
	cr_expect_eq(ag_git_names(V("git", "gc", "--prune=now")), AG_GIT_REFLOGS);
	cr_expect_eq(ag_git_names(V("git", "push", "origin", "main")), AG_GIT_PUSH);
	cr_expect_eq(ag_git_names(V("/usr/lib/git-core/git-send-pack", "--force", "r")), AG_GIT_PUSH);
	cr_expect_eq(ag_git_names(V("git-filter-repo", "--force")), AG_GIT_REFS);
}

Test(gitrefs_names, commands_that_move_nothing)
{
	cr_expect_eq(ag_git_names(V("git", "branch")), AG_GIT_NONE);
	cr_expect_eq(ag_git_names(V("git", "branch", "--list")), AG_GIT_NONE);
	cr_expect_eq(ag_git_names(V("git", "stash", "list")), AG_GIT_NONE);
	cr_expect_eq(ag_git_names(V("git", "tag", "v2")), AG_GIT_NONE);
	cr_expect_eq(ag_git_names(V("git", "status")), AG_GIT_NONE);
	cr_expect_eq(ag_git_names(V("git", "commit", "-m", "reset --hard")), AG_GIT_NONE);
	cr_expect_eq(ag_git_names(V("git", "reflog", "show")), AG_GIT_NONE);
	cr_expect_eq(ag_git_names(V("git", "-C", "/x")), AG_GIT_NONE);
	cr_expect_eq(ag_git_names(V("git")), AG_GIT_NONE);
}

Test(gitrefs_args, global_options)
{
	struct ag_git_args a;

	ag_git_args(V("git", "-C", "a", "-C", "b", "-c", "x.y=1", "--git-dir=/g", "--work-tree",
		      "/w", "--no-pager", "push"), &a);
	cr_expect_eq(a.sub, 11);
	cr_expect_eq(a.ncdir, 2);
	cr_expect_str_eq(a.cdir[1], "b");
	cr_expect_eq(a.ncfg, 1);
	cr_expect_str_eq(a.cfg[0], "x.y=1");
	cr_expect_str_eq(a.git_dir, "/g");
	cr_expect_str_eq(a.work_tree, "/w");
}

/* ---- forced pushes -------------------------------------------------------- */

static int forced(const char *const *argv, const char *const *envp, const char *cfg)
{
	char why[200];
	return ag_git_push_forced(argv, envp, cfg, cfg ? strlen(cfg) : 0, 0, why, sizeof why);
}

Test(gitrefs_push, by_flags_and_refspecs)
{
	cr_expect(forced(V("git", "push", "--force"), NULL, NULL));
	cr_expect(forced(V("git", "push", "-uf", "origin", "main"), NULL, NULL));
	cr_expect(forced(V("git", "push", "--force-with-lease=main", "origin"), NULL, NULL));
	cr_expect(forced(V("git", "push", "origin", "+main"), NULL, NULL));
	cr_expect(forced(V("git", "push", "origin", ":old"), NULL, NULL));
	cr_expect(forced(V("git", "push", "--mirror", "backup"), NULL, NULL));
	cr_expect(forced(V("git", "send-pack", "--force", "r", "main"), NULL, NULL));
	cr_expect(forced(V("git-send-pack", "r", "+main"), NULL, NULL));
	cr_expect_not(forced(V("git", "push", "origin", "main"), NULL, NULL));
	cr_expect_not(forced(V("git", "push", "-u", "origin", "feature"), NULL, NULL));
	cr_expect_not(forced(V("git", "send-pack", "r", "main"), NULL, NULL));
	cr_expect_not(forced(V("git", "pull", "--force"), NULL, NULL));
}

Test(gitrefs_push, by_configuration)
{
	const char *cfg =
		"[core]\n\tbare = false\n"
		"[remote \"origin\"]\n\turl = ../r.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
		"[remote \"backup\"]\n\tPush = \"+refs/heads/*:refs/heads/*\" ; forced\n";
	cr_expect(forced(V("git", "push", "backup"), NULL, cfg));
	cr_expect(forced(V("git", "push"), NULL, cfg));        /* which remote: unknown */
	cr_expect_not(forced(V("git", "push", "origin"), NULL, cfg));
	/* The command line's refspecs replace the configured ones. */
	cr_expect_not(forced(V("git", "push", "backup", "main"), NULL, cfg));
	cr_expect(forced(V("git", "push", "o"), NULL, "[remote \"o\"]\nmirror\n"));
	cr_expect(forced(V("git", "push", "o"), NULL, "[remote.o]\n  mirror = yes\n"));
	cr_expect_not(forced(V("git", "push", "o"), NULL,
			     "[remote \"o\"]\nmirror = true\nmirror = false\n"));
	/* A fetch refspec forces nothing on a push. */
	cr_expect_not(forced(V("git", "push", "origin"), NULL, cfg));
}

Test(gitrefs_push, by_c_and_the_environment)
{
	cr_expect(forced(V("git", "-c", "remote.origin.push=+refs/heads/*:refs/heads/*", "push",
			   "origin"), NULL, NULL));
	cr_expect(forced(V("git", "-c", "Remote.origin.MIRROR=true", "push", "origin"), NULL, NULL));
	cr_expect_not(forced(V("git", "-c", "remote.other.push=+x:x", "push", "origin"), NULL, NULL));
	cr_expect(forced(V("git", "push", "origin"),
			 V("GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=remote.origin.mirror",
			   "GIT_CONFIG_VALUE_0=true"), NULL));
	cr_expect(forced(V("git", "push", "origin"),
			 V("GIT_CONFIG_PARAMETERS='remote.origin.push'='+main:main'"), NULL));
	cr_expect(forced(V("git", "push", "origin"),
			 V("GIT_CONFIG_PARAMETERS='core.x=1' 'remote.origin.push=+main:main'"), NULL));
	cr_expect(forced(V("git", "--config-env", "remote.origin.push=P", "push", "origin"),
			 V("P=+main:main"), NULL));
	cr_expect_not(forced(V("git", "push", "origin"),
			     V("GIT_CONFIG_PARAMETERS='push.default'='current'"), NULL));
}

Test(gitrefs_push, by_aliases)
{
	cr_expect(forced(V("git", "p", "origin", "main"), NULL, "[alias]\n\tp = push --force\n"));
	cr_expect(forced(V("git", "-c", "alias.p=push -f", "p"), NULL, NULL));
	/* An alias of an alias. */
	cr_expect(forced(V("git", "a"), NULL, "[alias]\na = b origin\nb = push --mirror\n"));
	cr_expect(forced(V("git", "p", "+main"), NULL, "[alias]\np = push origin\n"));
	cr_expect_not(forced(V("git", "p", "main"), NULL, "[alias]\np = push origin\n"));
	/* A shell alias is judged when it runs its command. */
	cr_expect_not(forced(V("git", "p"), NULL, "[alias]\np = !git push -f\n"));
	cr_expect_not(forced(V("git", "st"), NULL, "[alias]\nst = status\n"));
}

Test(gitrefs_push, a_configuration_too_long_is_taken_as_forcing)
{
	const char *many[40] = {"git"};
	size_t n = 1;
	for (int i = 0; i < 17; i++) {
		many[n++] = "-c";
		many[n++] = "core.x=1";
	}
	many[n++] = "push";
	many[n] = NULL;
	cr_expect(ag_git_push_forced(many, NULL, NULL, 0, 0, NULL, 0));
	cr_expect(ag_git_push_forced(V("git", "push"), NULL, "", 0, 1, NULL, 0));
	cr_expect_not(ag_git_push_forced(V("git", "status"), NULL, "", 0, 1, NULL, 0));
}

/* ---- the configuration reader --------------------------------------------- */

struct seen {
	char text[1024];
};

static void collect(void *ctx, const char *key, const char *value)
{
	struct seen *s = ctx;
	size_t n = strlen(s->text);
	snprintf(s->text + n, sizeof s->text - n, "%s=%s|", key, value);
}

Test(gitrefs_config, sections_subsections_quotes_comments)
{
	struct seen s = {""};
	const char *t = "# c\n[Core]\n  Bare = false\n[remote \"Or\\\"ig\"]\n url = \"a b\" # x\n"
			"[branch.Main]\nremote=origin\n[x]\nflag\n";
	ag_git_config_each(t, strlen(t), collect, &s);
	cr_expect_str_eq(s.text, "core.bare=false|remote.Or\"ig.url=a b|branch.main.remote=origin|"
				 "x.flag=true|");
}

/* ---- a repository on disk ------------------------------------------------- */

#define A40 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B40 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define C40 "cccccccccccccccccccccccccccccccccccccccc"
#define D40 "dddddddddddddddddddddddddddddddddddddddd"

static void fake_repo(const char *top)
{
	ut_writef(top, ".git/HEAD", "ref: refs/heads/main\n");
	ut_writef(top, ".git/refs/heads/main", A40 "\n");
	ut_writef(top, ".git/refs/heads/topic/x", B40 "\n");
	ut_writef(top, ".git/refs/remotes/origin/main", C40 "\n");
	ut_writef(top, ".git/refs/heads/main.lock", D40 "\n");
	ut_writef(top, ".git/packed-refs", "# pack-refs with: peeled fully-peeled sorted\n"
		  D40 " refs/heads/main\n" D40 " refs/tags/v1\n^" C40 "\n");
	ut_writef(top, ".git/logs/refs/stash",
		  "0000000000000000000000000000000000000000 " C40 " a <a@b> 1 +0000\tWIP one\n"
		  C40 " " D40 " a <a@b> 2 +0000\tWIP two\n");
	ut_writef(top, ".git/objects/.keep", "%s", "");
}

static char *slurp_file(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	cr_assert(f, "%s", path);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	return buf;
}

Test(gitrefs_repo, found_from_a_subdirectory_and_through_a_gitfile)
{
	char top[AG_PATH_MAX], sub[AG_PATH_MAX];
	struct ag_git_args a;
	struct ag_git_repo r;

	ut_mkdtemp(top, sizeof top);
	fake_repo(top);
	ut_fmt(sub, sizeof sub, "%s/src/deep", top);
	ut_mkdirs(sub);
	ag_git_args(V("git", "status"), &a);
	cr_assert_eq(ag_git_find(&a, NULL, sub, &r), 0);
	cr_expect(strstr(r.gitdir, "/.git") && strcmp(r.gitdir, r.common) == 0);
	cr_expect_str_eq(r.worktree, top);
	/* A linked worktree: .git is a file, commondir leads back. */
	ut_writef(top, ".git/worktrees/wt/HEAD", "ref: refs/heads/topic/x\n");
	ut_writef(top, ".git/worktrees/wt/commondir", "../..\n");
	ut_writef(top, "wt/.git", "gitdir: %s/.git/worktrees/wt\n", top);
	ut_fmt(sub, sizeof sub, "%s/wt", top);
	cr_assert_eq(ag_git_find(&a, NULL, sub, &r), 0);
	cr_expect(strstr(r.gitdir, "/.git/worktrees/wt") != NULL);
	char want[AG_PATH_MAX];
	ut_fmt(want, sizeof want, "%s/.git", top);
	cr_expect_str_eq(r.common, want);
	/* -C and GIT_DIR. */
	ag_git_args(V("git", "-C", "/", "-C", top, "status"), &a);
	cr_assert_eq(ag_git_find(&a, NULL, "/", &r), 0);
	cr_expect_str_eq(r.worktree, top);
	ag_git_args(V("git", "status"), &a);
	char env[AG_PATH_MAX + 16];
	ut_fmt(env, sizeof env, "GIT_DIR=%s/.git", top);
	cr_assert_eq(ag_git_find(&a, V(env), "/", &r), 0);
	cr_expect_str_eq(r.gitdir, want);
	cr_expect_eq(ag_git_find(&a, NULL, "/", &r), -1);
	ut_rmrf(top);
}

Test(gitrefs_repo, record_and_pins)
{
	char top[AG_PATH_MAX], rec[AG_PATH_MAX], p[AG_PATH_MAX];
	static char scratch[32768];
	struct ag_git_args a;
	struct ag_git_repo r;

	ut_mkdtemp(top, sizeof top);
	fake_repo(top);
	ag_git_args(V("git", "branch", "-D", "topic/x"), &a);
	cr_assert_eq(ag_git_find(&a, NULL, top, &r), 0);
	ut_fmt(rec, sizeof rec, "%s/record", top);
	int fd = open(rec, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_eq(ag_git_record(&r, V("git", "branch", "-D", "topic/x"), AG_GIT_REFS, "s1", fd,
				   scratch, sizeof scratch), 0);
	close(fd);
	const char *t = slurp_file(rec);
	cr_expect(strncmp(t, "agentguard-git 1\n", 17) == 0, "%s", t);
	cr_expect(strstr(t, "\ncommand branch\n"), "%s", t);
	cr_expect(strstr(t, "\nhead ref: refs/heads/main\n"), "%s", t);
	/* The loose ref wins over packed-refs; the lock is no ref. */
	cr_expect(strstr(t, "\nref " A40 " refs/heads/main\n"), "%s", t);
	cr_expect_not(strstr(t, D40 " refs/heads/main"), "%s", t);
	cr_expect(strstr(t, "\nref " B40 " refs/heads/topic/x\n"), "%s", t);
	/* A branch command does not move tags or remote-tracking refs. */
	cr_expect_not(strstr(t, "refs/tags/v1"), "%s", t);
	cr_expect_not(strstr(t, "refs/remotes/"), "%s", t);
	cr_expect(strstr(t, "\nstash " C40 " " D40 " a <a@b> 2 +0000\tWIP two\n"), "%s", t);
	/* Pinned: what the record names, and the stash's entries. */
	const char *pins[] = {A40, B40, C40, D40};
	for (size_t i = 0; i < 4; i++) {
		ut_fmt(p, sizeof p, "%s/.git/refs/agentguard/s1/%s", top, pins[i]);
		cr_expect_eq(access(p, F_OK), 0, "%s", p);
	}
	/* A later record leaves the pins out of what it records. */
	fd = open(rec, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_eq(ag_git_record(&r, V("git", "tag", "-d", "v1"), AG_GIT_REFS, "s2", fd, scratch,
				   sizeof scratch), 0);
	close(fd);
	t = slurp_file(rec);
	cr_expect_not(strstr(t, "agentguard"  "/"), "%s", t);
	cr_expect(strstr(t, "\nref " D40 " refs/tags/v1\n"), "%s", t);
	/* A push records the tracking refs of its remote. */
	fd = open(rec, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_eq(ag_git_record(&r, V("git", "push", "-f", "origin", "main"), AG_GIT_PUSH, "s3",
				   fd, scratch, sizeof scratch), 0);
	close(fd);
	t = slurp_file(rec);
	cr_expect(strstr(t, "\nremote origin\n"), "%s", t);
	cr_expect(strstr(t, "\nref " C40 " refs/remotes/origin/main\n"), "%s", t);
	/* Too little room: refused, not overrun. */
	cr_expect_eq(ag_git_record(&r, NULL, AG_GIT_REFS, "s4", fd, scratch, 100), -1);
	ut_rmrf(top);
}

Test(gitrefs_repo, linked_worktrees_need_both_links)
{
	char top[AG_PATH_MAX], ws[AG_PATH_MAX], p[AG_PATH_MAX], root[AG_PATH_MAX];

	ut_mkdtemp(top, sizeof top);
	ut_fmt(ws, sizeof ws, "%s/repo", top);
	fake_repo(ws);
	ut_writef(top, "wt/.git", "gitdir: %s/.git/worktrees/wt\n", ws);
	ut_writef(top, "wt/src/a.c", "%s", "int x;\n");
	ut_fmt(p, sizeof p, "%s/wt/src/a.c", top);
	/* The .git file alone is not enough: the back link must name it. */
	cr_expect_eq(ag_git_linked_root(ws, p, root, sizeof root), 0);
	ut_writef(ws, ".git/worktrees/wt/gitdir", "%s/wt/.git\n", top);
	cr_expect_eq(ag_git_linked_root(ws, p, root, sizeof root), 1);
	ut_fmt(p, sizeof p, "%s/wt", top);
	cr_expect_str_eq(root, p);
	/* Another repository's worktree, or a path in the workspace, is not one. */
	ut_fmt(p, sizeof p, "%s/wt/src/a.c", top);
	cr_expect_eq(ag_git_linked_root("/elsewhere", p, root, sizeof root), 0);
	ut_fmt(p, sizeof p, "%s/src/x", ws);
	cr_expect_eq(ag_git_linked_root(ws, p, root, sizeof root), 0);
	/* A back link to another place. */
	ut_writef(ws, ".git/worktrees/wt/gitdir", "%s\n", "/somewhere/else/.git");
	ut_fmt(p, sizeof p, "%s/wt/src/a.c", top);
	cr_expect_eq(ag_git_linked_root(ws, p, root, sizeof root), 0);
	ut_rmrf(top);
}

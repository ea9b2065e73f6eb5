/* restore of a git record (gitrestore.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "gitrefs.h"
#include "gitrestore.h"

struct ref {
	char *name, *sha;
};

struct refs {
	struct ref *v;
	size_t n;
};

struct record {
	char *text;
	const char *gitdir, *common, *worktree, *command, *remote, *head;
	struct refs refs;
	char **stash;                /* logs/refs/stash lines, oldest first */
	size_t nstash;
};

static int refs_add(struct refs *l, const char *name, const char *sha)
{
	struct ref *v = realloc(l->v, (l->n + 1) * sizeof *v);
	if (!v)
		return -1;
	l->v = v;
	v[l->n].name = strdup(name);
	v[l->n].sha = strdup(sha);
	if (!v[l->n].name || !v[l->n].sha)
		return -1;
	l->n++;
	return 0;
}

static void refs_free(struct refs *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].sha);
	}
	free(l->v);
}

static const char *refs_get(const struct refs *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, name) == 0)
			return l->v[i].sha;
	return NULL;
}

static void record_free(struct record *r)
{
	free(r->text);
	free(r->refs.v);
	free(r->stash);
}

static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || st.st_size > (64 << 20)) {
		close(fd);
		errno = EFBIG;
		return NULL;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t n = 0;
	while (buf && n < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + n, (size_t)st.st_size - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	if (buf)
		buf[n] = 0;
	if (len)
		*len = n;
	return buf;
}

static int oid_ok(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");
	return (n == 40 || n == 64) && !s[n];
}

/* A ref name git would take, and nothing that could reach outside refs/. */
static int refname_ok(const char *s)
{
	return strncmp(s, "refs/", 5) == 0 && !strstr(s, "..") && !strpbrk(s, " \t\n~^:?*[\\") &&
	       s[strlen(s) - 1] != '/';
}

/* The record's lines; -1 (why) when it is not one. */
static int record_parse(const char *path, struct record *r, const char **why)
{
	memset(r, 0, sizeof *r);
	r->text = slurp(path, NULL);
	if (!r->text) {
		*why = "its record cannot be read from the store";
		return -1;
	}
	char *save = NULL;
	int first = 1;
	for (char *line = strtok_r(r->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');
		if (first) {
			if (strcmp(line, "agentguard-git 1") != 0) {
				*why = "its record is not a git record agentguard knows";
				return -1;
			}
			first = 0;
			continue;
		}
		if (!sp)
			continue;
		*sp = 0;
		char *v = sp + 1;
		if (strcmp(line, "gitdir") == 0)
			r->gitdir = v;
		else if (strcmp(line, "common") == 0)
			r->common = v;
		else if (strcmp(line, "worktree") == 0)
			r->worktree = v;
		else if (strcmp(line, "command") == 0)
			r->command = v;
		else if (strcmp(line, "remote") == 0)
			r->remote = v;
		else if (strcmp(line, "head") == 0)
			r->head = v;
		else if (strcmp(line, "ref") == 0) {
			char *nm = strchr(v, ' ');
			if (!nm)
				continue;
			*nm++ = 0;
			struct ref *x = realloc(r->refs.v, (r->refs.n + 1) * sizeof *x);
			if (!x)
				return -1;
			r->refs.v = x;
			x[r->refs.n++] = (struct ref){nm, v};
		} else if (strcmp(line, "stash") == 0) {
			char **x = realloc(r->stash, (r->nstash + 1) * sizeof *x);
			if (!x)
				return -1;
			r->stash = x;
			x[r->nstash++] = v;
		}
	}
	if (first || !r->gitdir || !r->common || !cli_plain_path(r->gitdir) ||
	    !cli_plain_path(r->common)) {
		*why = "its record names no repository";
		return -1;
	}
	return 0;
}

static void now_ref(void *ctx, const char *name, const char *sha)
{
	refs_add(ctx, name, sha);
}

/* git --git-dir=G ARGS..., with `in` on its stdin (NULL: none). Its exit
 * status, or -1. */
static int run_git(const char *gitdir, const char *const *args, const char *in)
{
	char flag[AG_PATH_MAX + 16];
	const char *argv[16];
	size_t n = 0;
	int p[2] = {-1, -1};

	snprintf(flag, sizeof flag, "--git-dir=%s", gitdir);
	argv[n++] = "git";
	argv[n++] = flag;
	for (; *args && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	if (in && pipe(p) < 0)
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (in) {
			dup2(p[0], 0);
			close(p[0]);
			close(p[1]);
		}
		execvp("git", (char *const *)argv);
		_exit(127);
	}
	if (in) {
		close(p[0]);
		size_t len = strlen(in), at = 0;
		while (at < len) {
			ssize_t k = write(p[1], in + at, len - at);
			if (k <= 0)
				break;
			at += (size_t)k;
		}
		close(p[1]);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void say(const struct git_restore *g, const char *verb, const char *gitdir,
		const char *what, const char *id)
{
	if (g->quiet && strcmp(verb, "failed") != 0)
		return;
	printf("%s ", verb);
	cli_put(stdout, gitdir);
	fputs(": ", stdout);
	cli_put(stdout, what);
	if (id) {
		fputs(" (", stdout);
		cli_put(stdout, id);
		fputc(')', stdout);
	}
	putchar('\n');
}

static int same_stash(const struct record *rec, const char *now)
{
	size_t i = 0;
	const char *p = now ? now : "";
	while (*p) {
		const char *e = strchr(p, '\n');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (i >= rec->nstash || strlen(rec->stash[i]) != l || strncmp(rec->stash[i], p, l))
			return 0;
		i++;
		p += l + (e ? 1 : 0);
	}
	return i == rec->nstash;
}

/* The stash's reflog as recorded: written beside it, then moved over it. */
static int put_stash_log(const struct record *rec)
{
	char path[AG_PATH_MAX], tmp[AG_PATH_MAX + 32];
	if (ag_fmt(path, sizeof path, "%s/logs/refs/stash", rec->common) < 0 ||
	    ag_fmt(tmp, sizeof tmp, "%s.agentguard-%d", path, (int)getpid()) < 0)
		return -1;
	if (!rec->nstash)
		return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
	char dir[AG_PATH_MAX];
	if (ag_fmt(dir, sizeof dir, "%s/logs/refs", rec->common) < 0 || ag_mkdirs(dir, 0755) < 0)
		return -1;
	FILE *f = fopen(tmp, "wx");
	if (!f)
		return -1;
	for (size_t i = 0; i < rec->nstash; i++)
		fprintf(f, "%s\n", rec->stash[i]);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* For a push: the command that puts each remote branch the push moved
 * back where it was, from the remote-tracking refs recorded and now. */
static void remote_back(struct git_restore *g, const struct record *rec, const struct refs *now,
			const char *id)
{
	for (size_t i = 0; i < rec->refs.n; i++) {
		const char *name = rec->refs.v[i].name, *was = rec->refs.v[i].sha;
		if (strncmp(name, "refs/remotes/", 13) != 0)
			continue;
		const char *rb = name + 13, *sl = strchr(rb, '/');
		if (!sl || strcmp(sl + 1, "HEAD") == 0 || !oid_ok(was))
			continue;
		const char *is = refs_get(now, name);
		if (is && strcmp(is, was) == 0)
			continue;
		char remote[256], lease[512], spec[512];
		snprintf(remote, sizeof remote, "%.*s", (int)(sl - rb), rb);
		if (remote[0] == '-' || sl[1] == '-') {
			/* Would be read as an option by git push. */
			say(g, "failed", rec->gitdir, "a remote-tracking ref of the record is not a "
			    "remote's branch", id);
			g->failed++;
			continue;
		}
		snprintf(lease, sizeof lease, "--force-with-lease=refs/heads/%s:%s", sl + 1,
			 is ? is : "");
		snprintf(spec, sizeof spec, "%s:refs/heads/%s", was, sl + 1);
		printf("the remote: git --git-dir=");
		cli_put_word(stdout, rec->gitdir);
		printf(" push ");
		cli_put_word(stdout, lease);
		putchar(' ');
		cli_put_word(stdout, remote);
		putchar(' ');
		cli_put_word(stdout, spec);
		printf("   (%s)\n", g->push ? "running it: --push" : "run it, or restore with --push");
		if (!g->push || g->dry_run)
			continue;
		const char *args[] = {"push", lease, remote, spec, NULL};
		int rc = run_git(rec->gitdir, args, NULL);
		char what[600];
		snprintf(what, sizeof what, "%s refs/heads/%s -> %.12s", remote, sl + 1, was);
		if (rc == 0) {
			say(g, "restored", rec->gitdir, what, id);
			g->restored++;
		} else {
			say(g, "failed", rec->gitdir, "git push did not put the remote back", id);
			g->failed++;
		}
	}
}

void git_restore_item(struct git_restore *g, const char *id, const char *record,
		      const char *gitdir)
{
	struct record rec;
	struct refs now = {0};
	const char *why = NULL;
	char *scratch = NULL, *in = NULL;
	size_t inlen = 0;
	FILE *mem = NULL;

	if (record_parse(record, &rec, &why) < 0 || strcmp(rec.gitdir, gitdir) != 0) {
		say(g, "failed", gitdir, why ? why : "its record is of another repository", id);
		g->failed++;
		goto out;
	}
	/* The record's own words about where refs and the worktree live are
	 * the session's: they must be what the repository says now. */
	struct ag_git_repo repo;
	struct ag_git_args ga;
	memset(&ga, 0, sizeof ga);
	ga.git_dir = rec.gitdir;
	if (ag_git_find(&ga, NULL, "/", &repo) < 0 || strcmp(repo.common, rec.common) != 0) {
		say(g, "failed", gitdir, "it is not a git repository now, or its record names "
		    "another one", id);
		g->failed++;
		goto out;
	}
	/* Its worktree: beside .git, or a linked one's back link. */
	char wt[AG_PATH_MAX] = "";
	size_t gl = strlen(rec.gitdir);
	if (gl > 5 && strcmp(rec.gitdir + gl - 5, "/.git") == 0) {
		snprintf(wt, sizeof wt, "%.*s", (int)(gl - 5), rec.gitdir);
	} else {
		char bl[AG_PATH_MAX + 8];
		snprintf(bl, sizeof bl, "%s/gitdir", rec.gitdir);
		char *t = slurp(bl, NULL);
		char *nl = t ? strrchr(t, '/') : NULL;
		if (nl && strcmp(nl, "/.git\n") == 0 && cli_plain_path(t)) {
			*nl = 0;
			snprintf(wt, sizeof wt, "%s", t);
		}
		free(t);
	}
	rec.worktree = rec.worktree && strcmp(rec.worktree, wt) == 0 ? rec.worktree : "-";
	scratch = malloc(32768);
	if (!scratch || ag_git_refs_each(&repo, scratch, 32768, now_ref, &now) < 0) {
		say(g, "failed", gitdir, "the repository's refs cannot be read now", id);
		g->failed++;
		goto out;
	}
	/* The refs that differ, as one transaction, each checked against what
	 * it is now. Remote-tracking refs mirror the remote: left to the push. */
	mem = open_memstream(&in, &inlen);
	long moves = 0;
	for (size_t i = 0; mem && i < rec.refs.n; i++) {
		const char *name = rec.refs.v[i].name, *was = rec.refs.v[i].sha;
		if (!refname_ok(name) || !oid_ok(was)) {
			say(g, "failed", gitdir, "its record holds a ref that is not one", id);
			g->failed++;
			goto out;
		}
		if (strncmp(name, "refs/remotes/", 13) == 0)
			continue;
		const char *is = refs_get(&now, name);
		if (is && strcmp(is, was) == 0)
			continue;
		fprintf(mem, "update %s %s %s\n", name, was,
			is && oid_ok(is) ? is : "0000000000000000000000000000000000000000");
		char what[600];
		snprintf(what, sizeof what, "%s -> %.12s%s", name, was, is ? "" : " (made again)");
		say(g, g->dry_run ? "would restore" : "restored", gitdir, what, id);
		moves++;
	}
	if (mem)
		fclose(mem);
	mem = NULL;
	const char *head_now = refs_get(&now, "HEAD");
	int head_moves = rec.head && (!head_now || strcmp(head_now, rec.head) != 0) &&
			 (strncmp(rec.head, "ref: ", 5) == 0 ? refname_ok(rec.head + 5)
							     : oid_ok(rec.head));
	char logp[AG_PATH_MAX];
	char *stash_now = ag_fmt(logp, sizeof logp, "%s/logs/refs/stash", rec.common) == 0
			  ? slurp(logp, NULL) : NULL;
	int stash_moves = !same_stash(&rec, stash_now);
	free(stash_now);
	if (head_moves)
		say(g, g->dry_run ? "would restore" : "restored", gitdir, "HEAD", id);
	if (stash_moves)
		say(g, g->dry_run ? "would restore" : "restored", gitdir, "the stash's entries", id);
	if (!g->dry_run && (moves || head_moves || stash_moves)) {
		/* What is there now is kept first, as a record of this restore. */
		if (g->u && undo_keep_git(g->u, &repo, rec.gitdir) < 0) {
			say(g, "failed", gitdir, "what the refs are now cannot be kept, so they are "
			    "left as they are", id);
			g->failed++;
			goto out;
		}
		static const char *const upd[] = {"update-ref", "--stdin", NULL};
		if (moves && run_git(rec.gitdir, upd, in) != 0) {
			say(g, "failed", gitdir, "git update-ref refused the transaction (a ref "
			    "moved meanwhile?): nothing was changed", id);
			g->failed++;
			goto out;
		}
		if (head_moves) {
			int hd = strncmp(rec.head, "ref: ", 5) == 0;
			const char *sym[] = {"symbolic-ref", "HEAD", rec.head + 5, NULL};
			const char *det[] = {"update-ref", "--no-deref", "HEAD", rec.head, NULL};
			if (run_git(rec.gitdir, hd ? sym : det, NULL) != 0) {
				say(g, "failed", gitdir, "HEAD could not be put back", id);
				g->failed++;
			}
		}
		/* After update-ref, which may have added an entry of its own. */
		if (stash_moves && put_stash_log(&rec) < 0) {
			say(g, "failed", gitdir, "the stash's entries could not be written back", id);
			g->failed++;
		}
		g->restored += moves + head_moves + stash_moves;
	} else if (!moves && !head_moves && !stash_moves && !g->quiet && !rec.remote &&
		   strcmp(rec.command ? rec.command : "", "push") != 0) {
		say(g, "unchanged", gitdir, "the refs are as recorded", id);
	}
	/* The index is git's scratch (never kept): where the checked-out
	 * commit was moved back (by this record, or by a session restore
	 * that put the ref files back first) and the index no longer matches
	 * it, it is made to match again; the files themselves are the
	 * session's snapshots. */
	if (!g->dry_run && (moves || head_moves || g->session) && rec.worktree &&
	    strcmp(rec.worktree, "-") != 0 && cli_plain_path(rec.worktree)) {
		char wt[AG_PATH_MAX + 16];
		snprintf(wt, sizeof wt, "--work-tree=%s", rec.worktree);
		const char *same[] = {wt, "diff-index", "--cached", "--quiet", "HEAD", NULL};
		const char *rst[] = {wt, "reset", "-q", NULL};
		if (run_git(rec.gitdir, same, NULL) == 1) {
			if (run_git(rec.gitdir, rst, NULL) != 0) {
				say(g, "failed", gitdir, "the index could not be made to match HEAD", id);
				g->failed++;
			} else {
				say(g, "restored", gitdir, "the index (it matches HEAD again)", id);
			}
		}
	}
	if (rec.command && (strcmp(rec.command, "push") == 0 || strcmp(rec.command, "send-pack") == 0))
		remote_back(g, &rec, &now, id);
out:
	if (mem)
		fclose(mem);
	free(in);
	free(scratch);
	refs_free(&now);
	record_free(&rec);
}

int git_record_show(const char *record, FILE *out)
{
	struct record rec;
	const char *why = NULL;

	if (record_parse(record, &rec, &why) < 0) {
		fprintf(out, "git record: %s\n", why ? why : "unreadable");
		record_free(&rec);
		return -1;
	}
	fprintf(out, "repository: ");
	cli_put(out, rec.worktree && strcmp(rec.worktree, "-") ? rec.worktree : rec.gitdir);
	fprintf(out, "\ncommand:    git ");
	cli_put(out, rec.command ? rec.command : "-");
	if (rec.remote) {
		fprintf(out, " (remote ");
		cli_put(out, rec.remote);
		fputc(')', out);
	}
	fprintf(out, "\nHEAD:       ");
	cli_put(out, rec.head ? rec.head : "-");
	fputc('\n', out);
	for (size_t i = 0; i < rec.refs.n; i++) {
		fprintf(out, "  %.12s  ", rec.refs.v[i].sha);
		cli_put(out, rec.refs.v[i].name);
		fputc('\n', out);
	}
	for (size_t i = 0; i < rec.nstash; i++) {
		const char *nw = strchr(rec.stash[rec.nstash - 1 - i], ' ');
		const char *msg = strchr(rec.stash[rec.nstash - 1 - i], '\t');
		fprintf(out, "  %.12s  stash@{%zu}", nw ? nw + 1 : "?", i);
		if (msg) {
			fputs("  ", out);
			cli_put(out, msg + 1);
		}
		fputc('\n', out);
	}
	fprintf(out, "pinned:     refs/agentguard/<id>/ keeps these commits from gc\n");
	record_free(&rec);
	return 0;
}

int git_record_diff(const char *record, FILE *out)
{
	struct record rec;
	struct refs now = {0};
	const char *why = NULL;
	struct ag_git_repo repo;
	int differ = 0, rc = -1;
	char *scratch = malloc(32768);

	memset(&rec, 0, sizeof rec);
	memset(&repo, 0, sizeof repo);
	if (!scratch || record_parse(record, &rec, &why) < 0) {
		fprintf(out, "git record: %s\n", why ? why : "unreadable");
		goto out;
	}
	snprintf(repo.gitdir, sizeof repo.gitdir, "%s", rec.gitdir);
	snprintf(repo.common, sizeof repo.common, "%s", rec.common);
	if (ag_git_refs_each(&repo, scratch, 32768, now_ref, &now) < 0) {
		fprintf(out, "the repository's refs cannot be read now\n");
		goto out;
	}
	const char *h = refs_get(&now, "HEAD");
	if (rec.head && (!h || strcmp(h, rec.head) != 0)) {
		fprintf(out, "HEAD: ");
		cli_put(out, rec.head);
		fprintf(out, " in the snapshot, ");
		cli_put(out, h ? h : "none");
		fprintf(out, " now\n");
		differ = 1;
	}
	for (size_t i = 0; i < rec.refs.n; i++) {
		const char *is = refs_get(&now, rec.refs.v[i].name);
		if (is && strcmp(is, rec.refs.v[i].sha) == 0)
			continue;
		cli_put(out, rec.refs.v[i].name);
		fprintf(out, ": %.12s in the snapshot, %s%.12s now\n", rec.refs.v[i].sha,
			is ? "" : "gone", is ? is : "");
		differ = 1;
	}
	if (!differ)
		fprintf(out, "the refs are as recorded\n");
	rc = differ;
out:
	free(scratch);
	refs_free(&now);
	record_free(&rec);
	return rc;
}

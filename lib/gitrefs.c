/* git's names from its files: commands, forced pushes, the refs record
 * (gitrefs.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gitrefs.h"

static const char *base_of(const char *s)
{
	const char *sl = strrchr(s, '/');
	return sl ? sl + 1 : s;
}

static int starts(const char *s, const char *pre)
{
	return strncmp(s, pre, strlen(pre)) == 0;
}

/* ---- arguments ----------------------------------------------------------- */

void ag_git_args(const char *const *argv, struct ag_git_args *a)
{
	static const char *const with_value[] = {"--namespace", "--super-prefix", "--exec-path",
						 "--list-cmds", NULL};
	memset(a, 0, sizeof *a);
	if (!argv || !argv[0])
		return;
	for (size_t i = 1; argv[i]; i++) {
		const char *s = argv[i];
		if (s[0] != '-') {
			a->sub = i;
			return;
		}
		if (strcmp(s, "-C") == 0 || strcmp(s, "-c") == 0 || strcmp(s, "--config-env") == 0 ||
		    strcmp(s, "--git-dir") == 0 || strcmp(s, "--work-tree") == 0) {
			if (!argv[i + 1])
				return;
			const char *v = argv[++i];
			if (strcmp(s, "-C") == 0) {
				if (a->ncdir < AG_GIT_MAX_OPTS)
					a->cdir[a->ncdir++] = v;
				else
					a->too_many = 1;
			} else if (strcmp(s, "-c") == 0) {
				if (a->ncfg < AG_GIT_MAX_OPTS)
					a->cfg[a->ncfg++] = v;
				else
					a->too_many = 1;
			} else if (strcmp(s, "--config-env") == 0) {
				/* NAME=VAR: the value is VAR's, from the environment. */
				if (a->ncfg < AG_GIT_MAX_OPTS) {
					a->cfg_env[a->ncfg] = 1;
					a->cfg[a->ncfg++] = v;
				} else {
					a->too_many = 1;
				}
			} else if (s[2] == 'g') {
				a->git_dir = v;
			} else {
				a->work_tree = v;
			}
			continue;
		}
		if (starts(s, "--git-dir=")) {
			a->git_dir = s + 10;
			continue;
		}
		if (starts(s, "--work-tree=")) {
			a->work_tree = s + 12;
			continue;
		}
		if (starts(s, "--config-env=")) {
			if (a->ncfg < AG_GIT_MAX_OPTS) {
				a->cfg_env[a->ncfg] = 1;
				a->cfg[a->ncfg++] = s + 13;
			} else
				a->too_many = 1;
			continue;
		}
		for (const char *const *w = with_value; *w; w++)
			if (strcmp(s, *w) == 0 && argv[i + 1] && strcmp(*w, "--exec-path") != 0)
				i++;
	}
}

/* The subcommand's name and the words after it (a git-foo helper is foo). */
static const char *subcommand(const char *const *argv, const char *const **rest,
			      struct ag_git_args *a)
{
	ag_git_args(argv, a);
	const char *b = base_of(argv[0]);
	if (starts(b, "git-") && b[4]) {
		*rest = argv + 1;
		return b + 4;
	}
	if (!a->sub)
		return NULL;
	*rest = argv + a->sub + 1;
	return argv[a->sub];
}

/* A word among rest that is one of the flags (`-x` also inside a cluster
 * of single-letter flags). */
static int has_flag(const char *const *rest, const char *shorts, const char *const *longs)
{
	for (; *rest; rest++) {
		const char *s = *rest;
		if (strcmp(s, "--") == 0)
			return 0;
		if (s[0] != '-' || !s[1])
			continue;
		if (s[1] == '-') {
			for (const char *const *l = longs; l && *l; l++)
				if (strcmp(s, *l) == 0)
					return 1;
			continue;
		}
		for (const char *q = s + 1; *q && shorts; q++)
			if (strchr(shorts, *q))
				return 1;
	}
	return 0;
}

static const char *first_word(const char *const *rest)
{
	for (; *rest; rest++)
		if ((*rest)[0] != '-')
			return *rest;
	return NULL;
}

enum ag_git_effect ag_git_names(const char *const *argv)
{
	struct ag_git_args a;
	const char *const *rest = NULL;

	if (!argv || !argv[0])
		return AG_GIT_NONE;
	const char *sub = subcommand(argv, &rest, &a);
	if (!sub)
		return AG_GIT_NONE;
	static const char *const always[] = {"reset", "checkout", "switch", "rebase",
					     "filter-branch", "filter-repo", "update-ref", NULL};
	for (const char *const *w = always; *w; w++)
		if (strcmp(sub, *w) == 0)
			return AG_GIT_REFS;
	if (strcmp(sub, "push") == 0 || strcmp(sub, "send-pack") == 0)
		return AG_GIT_PUSH;
	if (strcmp(sub, "gc") == 0 || strcmp(sub, "prune") == 0)
		return AG_GIT_REFLOGS;
	const char *w1 = first_word(rest);
	if (strcmp(sub, "reflog") == 0)
		return w1 && (strcmp(w1, "expire") == 0 || strcmp(w1, "delete") == 0)
		       ? AG_GIT_REFLOGS : AG_GIT_NONE;
	if (strcmp(sub, "stash") == 0)
		return w1 && (strcmp(w1, "drop") == 0 || strcmp(w1, "clear") == 0 ||
			      strcmp(w1, "pop") == 0) ? AG_GIT_REFS : AG_GIT_NONE;
	static const char *const branch_long[] = {"--delete", "--move", "--force", "--copy", NULL};
	if (strcmp(sub, "branch") == 0)
		return has_flag(rest, "dDmMfcC", branch_long) ? AG_GIT_REFS : AG_GIT_NONE;
	static const char *const tag_long[] = {"--delete", "--force", NULL};
	if (strcmp(sub, "tag") == 0)
		return has_flag(rest, "df", tag_long) ? AG_GIT_REFS : AG_GIT_NONE;
	return AG_GIT_NONE;
}

/* ---- configuration ------------------------------------------------------- */

#define KEY_MAX 256
#define VAL_MAX 512

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static int key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

void ag_git_config_each(const char *text, size_t len,
			void (*fn)(void *ctx, const char *key, const char *value), void *ctx)
{
	char sect[KEY_MAX] = "", key[KEY_MAX], val[VAL_MAX];
	size_t i = 0;

	while (i < len) {
		while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r'))
			i++;
		if (i < len && text[i] == '[') {
			/* [section "sub"] or [section.sub] */
			size_t n = 0;
			int quoted = 0;
			for (i++; i < len && text[i] != '\n'; i++) {
				char c = text[i];
				if (!quoted && c == ']')
					break;
				if (c == '"') {
					quoted = !quoted;
					if (quoted && n + 1 < sizeof sect)
						sect[n++] = '.';
					continue;
				}
				if (quoted && c == '\\' && i + 1 < len)
					c = text[++i];
				else if (!quoted && (c == ' ' || c == '\t'))
					continue;
				if (n + 1 < sizeof sect)
					sect[n++] = quoted ? c : lower(c);
			}
			sect[n] = 0;
		} else if (i < len && key_char(text[i])) {
			size_t n = strlen(sect);
			memcpy(key, sect, n);
			if (n + 1 < sizeof key)
				key[n++] = '.';
			for (; i < len && key_char(text[i]); i++)
				if (n + 1 < sizeof key)
					key[n++] = lower(text[i]);
			key[n] = 0;
			while (i < len && (text[i] == ' ' || text[i] == '\t'))
				i++;
			const char *value = "true";
			if (i < len && text[i] == '=') {
				size_t v = 0, trail = 0;
				int quoted = 0;
				for (i++; i < len && (text[i] == ' ' || text[i] == '\t'); i++)
					;
				for (; i < len && text[i] != '\n'; i++) {
					char c = text[i];
					if (!quoted && (c == '#' || c == ';'))
						break;
					if (c == '"') {
						quoted = !quoted;
						continue;
					}
					if (c == '\\' && i + 1 < len) {
						c = text[++i];
						c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
						if (c == '\n')
							continue;   /* a continued line */
					}
					if (v + 1 < sizeof val)
						val[v++] = c;
					trail = (!quoted && (c == ' ' || c == '\t' || c == '\r'))
						? trail + 1 : 0;
				}
				val[v - (trail < v ? trail : v)] = 0;
				value = val;
			}
			fn(ctx, key, value);
		}
		while (i < len && text[i] != '\n')
			i++;
		i++;
	}
}

/* Section and variable of a -c/environment key lowercased, the middle
 * (subsection) kept. */
static void canon_key(const char *k, size_t n, char *out)
{
	if (n >= KEY_MAX)
		n = KEY_MAX - 1;
	memcpy(out, k, n);
	out[n] = 0;
	char *first = strchr(out, '.'), *last = strrchr(out, '.');
	for (char *p = out; *p; p++)
		if (!first || p < first || p > last)
			*p = lower(*p);
}

struct cfg_src {
	const char *config;
	size_t config_len;
	const char *const *envp;
	const struct ag_git_args *a;
};

static const char *env_get(const char *const *envp, const char *name)
{
	size_t n = strlen(name);
	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* One setting "key=value" (or "key": true) from a -c word. */
static void one_setting(const char *s, void (*fn)(void *, const char *, const char *), void *ctx,
			const char *const *envp, int from_env_var)
{
	char key[KEY_MAX];
	const char *eq = strchr(s, '=');
	canon_key(s, eq ? (size_t)(eq - s) : strlen(s), key);
	const char *v = eq ? eq + 1 : "true";
	if (from_env_var)
		v = eq ? env_get(envp, eq + 1) : NULL;
	if (v)
		fn(ctx, key, v);
}

/* GIT_CONFIG_PARAMETERS: shell-quoted 'key'='value' (or 'key=value')
 * words separated by spaces, as git writes them for its children. */
static void parameters(const char *p, void (*fn)(void *, const char *, const char *), void *ctx)
{
	char word[KEY_MAX + VAL_MAX];
	while (p && *p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		size_t n = 0;
		long eq = -1;
		while (*p && *p != ' ') {
			if (*p == '\'') {
				for (p++; *p && *p != '\''; p++)
					if (n + 1 < sizeof word)
						word[n++] = *p;
				if (*p)
					p++;
			} else if (*p == '\\' && p[1]) {
				if (n + 1 < sizeof word)
					word[n++] = p[1];
				p += 2;
			} else {
				if (*p == '=' && eq < 0)
					eq = (long)n;
				if (n + 1 < sizeof word)
					word[n++] = *p;
				p++;
			}
		}
		word[n] = 0;
		char key[KEY_MAX];
		char *e = eq >= 0 ? word + eq : strchr(word, '=');
		canon_key(word, e ? (size_t)(e - word) : n, key);
		fn(ctx, key, e ? e + 1 : "true");
	}
}

/* Every setting, lowest precedence first: the files, then the
 * environment, then -c (git's own order). */
static void cfg_each(const struct cfg_src *src, void (*fn)(void *, const char *, const char *),
		     void *ctx)
{
	if (src->config)
		ag_git_config_each(src->config, src->config_len, fn, ctx);
	parameters(env_get(src->envp, "GIT_CONFIG_PARAMETERS"), fn, ctx);
	const char *count = env_get(src->envp, "GIT_CONFIG_COUNT");
	long nc = count ? strtol(count, NULL, 10) : 0;
	for (long i = 0; i < nc && i < 1000; i++) {
		char kn[48], vn[48], key[KEY_MAX];
		snprintf(kn, sizeof kn, "GIT_CONFIG_KEY_%ld", i);
		snprintf(vn, sizeof vn, "GIT_CONFIG_VALUE_%ld", i);
		const char *k = env_get(src->envp, kn), *v = env_get(src->envp, vn);
		if (!k)
			continue;
		canon_key(k, strlen(k), key);
		fn(ctx, key, v ? v : "");
	}
	for (unsigned i = 0; src->a && i < src->a->ncfg; i++) {
		one_setting(src->a->cfg[i], fn, ctx, src->envp, src->a->cfg_env[i]);
	}
}

/* ---- forced pushes ------------------------------------------------------- */

static int truthy(const char *v)
{
	static const char *const yes[] = {"true", "yes", "on", "1", NULL};
	for (const char *const *y = yes; *y; y++)
		if (strcasecmp(v, *y) == 0)
			return 1;
	return 0;
}

struct lookup {
	const char *want;          /* alias.NAME */
	char value[VAL_MAX];
	int found;
	const char *remote;        /* push: remote.<remote>.*, NULL: any */
	char why[160];
	int forced;
};

static void find_alias(void *ctx, const char *key, const char *value)
{
	struct lookup *l = ctx;
	if (strcmp(key, l->want) == 0) {
		snprintf(l->value, sizeof l->value, "%s", value);
		l->found = 1;
	}
}

/* remote.<name>.push with a `+` refspec, or remote.<name>.mirror. */
static void find_forcing(void *ctx, const char *key, const char *value)
{
	struct lookup *l = ctx;
	if (!starts(key, "remote."))
		return;
	const char *name = key + 7, *dot = strrchr(name, '.');
	if (!dot || dot == name)
		return;
	size_t nl = (size_t)(dot - name);
	if (l->remote && (strlen(l->remote) != nl || strncmp(l->remote, name, nl) != 0))
		return;
	if (strcmp(dot, ".push") == 0 && value[0] == '+') {
		snprintf(l->why, sizeof l->why, "%s = %s forces every push", key, value);
		l->forced = 1;
	} else if (strcmp(dot, ".mirror") == 0) {
		/* The last setting counts: mirror = false after true undoes it. */
		l->forced = truthy(value);
		if (l->forced)
			snprintf(l->why, sizeof l->why, "%s = %s makes it a mirror push", key, value);
	}
}

static int say(char *why, size_t whylen, const char *text)
{
	if (why && whylen)
		snprintf(why, whylen, "%s", text);
	return 1;
}

static int push_forced(const char *sub, const char *const *rest, const struct cfg_src *src,
		       char *why, size_t whylen)
{
	static const char *const push_long[] = {"--force", "--mirror", "--delete", "--prune",
						"--force-if-includes", NULL};
	static const char *const pack_long[] = {"--force", "--mirror", NULL};
	int pack = strcmp(sub, "send-pack") == 0;

	if (has_flag(rest, pack ? "f" : "fd", pack ? pack_long : push_long))
		return say(why, whylen, "it forces, deletes or mirrors by its flags");
	const char *remote = NULL;
	int refspecs = 0, dashdash = 0;
	for (const char *const *w = rest; *w; w++) {
		const char *s = *w;
		if (!dashdash && strcmp(s, "--") == 0) {
			dashdash = 1;
			continue;
		}
		if (!dashdash && s[0] == '-') {
			if (starts(s, "--force-with-lease"))
				return say(why, whylen, "it forces by its flags (--force-with-lease)");
			if ((strcmp(s, "-o") == 0 || strcmp(s, "--push-option") == 0 ||
			     strcmp(s, "--receive-pack") == 0 || strcmp(s, "--exec") == 0) && w[1])
				w++;
			continue;
		}
		if (!remote) {
			remote = s;
			continue;
		}
		refspecs = 1;
		if (s[0] == '+' || s[0] == ':')
			return say(why, whylen, "a refspec forces or deletes (+ or :)");
	}
	if (pack || refspecs)
		return 0;   /* the command line's refspecs replace the configured ones */
	struct lookup l = {.remote = remote};
	cfg_each(src, find_forcing, &l);
	if (l.forced)
		return say(why, whylen, l.why);
	return 0;
}

int ag_git_push_forced(const char *const *argv, const char *const *envp, const char *config,
		       size_t config_len, int config_cut, char *why, size_t whylen)
{
	struct ag_git_args a;
	const char *const *rest = NULL;

	if (!argv || !argv[0])
		return 0;
	const char *sub = subcommand(argv, &rest, &a);
	struct cfg_src src = {config, config_len, envp, &a};
	/* More -c than are read: what the rest say cannot be told. */
	if (a.too_many && sub && strcmp(sub, "push") == 0)
		return say(why, whylen, "it has more -C or -c options than agentguard reads");
	/* An alias runs another subcommand with its words first. */
	const char *words[64];
	char text[3][VAL_MAX];
	for (int depth = 0; sub && depth < 3; depth++) {
		if (strcmp(sub, "push") == 0 || strcmp(sub, "send-pack") == 0) {
			if (config_cut && strcmp(sub, "push") == 0)
				return say(why, whylen, "its configuration is too long to be read "
					   "whole, so whether it forces cannot be told");
			return push_forced(sub, rest, &src, why, whylen);
		}
		char want[KEY_MAX];
		struct lookup l = {.want = want};
		snprintf(want, sizeof want, "alias.%s", sub);
		cfg_each(&src, find_alias, &l);
		if (!l.found || l.value[0] == '!')
			return 0;   /* a shell alias: what it runs is judged when it runs */
		memcpy(text[depth], l.value, sizeof l.value);
		size_t n = 0;
		for (char *p = text[depth]; *p && n < 32;) {
			while (*p == ' ' || *p == '\t')
				*p++ = 0;
			if (!*p)
				break;
			char q = *p == '"' || *p == '\'' ? *p : 0;
			if (q)
				p++;
			words[n++] = p;
			while (*p && (q ? *p != q : (*p != ' ' && *p != '\t')))
				p++;
			if (q && *p)
				*p++ = 0;
		}
		if (!n)
			return 0;
		size_t m = 0;
		while (rest[m] && n + m < 63)
			m++;
		/* rest may point into words (a nested alias): move it first. */
		memmove(words + n, rest, m * sizeof *words);
		words[n + m] = NULL;
		sub = words[0];
		rest = words + 1;
	}
	return 0;
}

/* ---- reading files (no malloc) ------------------------------------------- */

/* The whole of a small file into buf (NUL-terminated); its length or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == cap - 1)
			break;
	}
	close(fd);
	buf[n] = 0;
	return (ssize_t)n;
}

static void chomp(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		s[--n] = 0;
}

static int is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0;
}

/* commondir of gitdir (a linked worktree's), else gitdir itself. */
static int set_common(struct ag_git_repo *r)
{
	char p[AG_PATH_MAX], t[AG_PATH_MAX];
	if (ag_fmt(p, sizeof p, "%s/commondir", r->gitdir) < 0)
		return -1;
	if (read_small(p, t, sizeof t) > 0) {
		chomp(t);
		return ag_path_lexical(r->gitdir, t, r->common, sizeof r->common);
	}
	memcpy(r->common, r->gitdir, sizeof r->common);
	return 0;
}

/* dir/.git as a directory, or as a file "gitdir: X" (a linked worktree, a
 * submodule): 0 with r->gitdir set, -1 if neither. */
static int git_at(const char *dir, struct ag_git_repo *r)
{
	char p[AG_PATH_MAX], t[AG_PATH_MAX];
	if (ag_fmt(p, sizeof p, "%s/.git", strcmp(dir, "/") ? dir : "") < 0)
		return -1;
	if (is_dir(p)) {
		memcpy(r->gitdir, p, sizeof r->gitdir);
		return 0;
	}
	if (read_small(p, t, sizeof t) > 8 && starts(t, "gitdir:")) {
		chomp(t);
		const char *g = t + 7;
		while (*g == ' ')
			g++;
		return ag_path_lexical(dir, g, r->gitdir, sizeof r->gitdir);
	}
	return -1;
}

int ag_git_find(const struct ag_git_args *a, const char *const *envp, const char *cwd,
		struct ag_git_repo *r)
{
	char dir[AG_PATH_MAX], next[AG_PATH_MAX];

	memset(r, 0, sizeof *r);
	if (!cwd || ag_path_lexical("/", cwd, dir, sizeof dir) < 0)
		return -1;
	for (unsigned i = 0; i < a->ncdir; i++) {
		if (!*a->cdir[i])
			continue;
		if (ag_path_lexical(dir, a->cdir[i], next, sizeof next) < 0)
			return -1;
		memcpy(dir, next, sizeof dir);
	}
	const char *gd = a->git_dir ? a->git_dir : env_get(envp, "GIT_DIR");
	const char *wt = a->work_tree ? a->work_tree : env_get(envp, "GIT_WORK_TREE");
	if (gd && *gd) {
		if (ag_path_lexical(dir, gd, r->gitdir, sizeof r->gitdir) < 0)
			return -1;
		if (!is_dir(r->gitdir)) {
			/* A .git file named as the git dir. */
			char t[AG_PATH_MAX];
			if (read_small(r->gitdir, t, sizeof t) > 8 && starts(t, "gitdir:")) {
				chomp(t);
				memcpy(next, r->gitdir, sizeof next);
				char *sl = strrchr(next, '/');
				if (sl)
					*sl = 0;
				if (ag_path_lexical(*next ? next : "/", t + 7 + strspn(t + 7, " "),
						    r->gitdir, sizeof r->gitdir) < 0)
					return -1;
			}
		}
		if (wt && ag_path_lexical(dir, wt, r->worktree, sizeof r->worktree) < 0)
			return -1;
	} else {
		for (;;) {
			if (git_at(dir, r) == 0) {
				memcpy(r->worktree, dir, sizeof r->worktree);
				break;
			}
			/* A bare repository: HEAD, objects and refs right here. */
			if (ag_fmt(next, sizeof next, "%s/HEAD", dir) == 0 && exists(next) &&
			    ag_fmt(next, sizeof next, "%s/objects", dir) == 0 && is_dir(next) &&
			    ag_fmt(next, sizeof next, "%s/refs", dir) == 0 && is_dir(next)) {
				memcpy(r->gitdir, dir, sizeof r->gitdir);
				break;
			}
			if (strcmp(dir, "/") == 0)
				return -1;
			char *sl = strrchr(dir, '/');
			if (sl == dir)
				sl[1] = 0;
			else
				*sl = 0;
		}
		if (wt && ag_path_lexical(dir, wt, r->worktree, sizeof r->worktree) < 0)
			return -1;
	}
	if (!is_dir(r->gitdir))
		return -1;
	return set_common(r);
}

int ag_git_linked_root(const char *workspace, const char *path, char *root, size_t rootlen)
{
	char d[AG_PATH_MAX], p[AG_PATH_MAX], t[AG_PATH_MAX], x[AG_PATH_MAX];
	size_t wl = workspace ? strlen(workspace) : 0;

	if (!wl || !path || path[0] != '/' || ag_fmt(d, sizeof d, "%s", path) < 0)
		return 0;
	for (;;) {
		char *sl = strrchr(d, '/');
		if (!sl || sl == d)
			return 0;
		*sl = 0;
		/* Not below the workspace itself: that is the workspace. */
		if (strncmp(d, workspace, wl) == 0 && (d[wl] == '/' || !d[wl]))
			return 0;
		if (ag_fmt(p, sizeof p, "%s/.git", d) < 0)
			return 0;
		if (read_small(p, t, sizeof t) < 0)
			continue;   /* no .git here (or a directory: another repository) */
		if (!starts(t, "gitdir:"))
			return 0;
		chomp(t);
		const char *g = t + 7 + strspn(t + 7, " ");
		if (ag_path_lexical(d, g, x, sizeof x) < 0)
			return 0;
		/* <workspace>/.git/worktrees/<name>, exactly. */
		if (strncmp(x, workspace, wl) != 0 || strncmp(x + wl, "/.git/worktrees/", 16) != 0 ||
		    !x[wl + 16] || strchr(x + wl + 16, '/'))
			return 0;
		/* And its back link names this worktree. */
		if (ag_fmt(t, sizeof t, "%s/gitdir", x) < 0 || read_small(t, x, sizeof x) <= 0)
			return 0;
		chomp(x);
		if (strcmp(x, p) != 0)
			return 0;
		return ag_fmt(root, rootlen, "%s", d) == 0;
	}
}

static size_t cat_file(const char *path, char *buf, size_t cap, int *cut)
{
	if (!cap)
		return 0;
	ssize_t n = read_small(path, buf, cap);
	if (n < 0)
		return 0;
	if ((size_t)n == cap - 1) {
		struct stat st;
		if (stat(path, &st) == 0 && (size_t)st.st_size > (size_t)n)
			*cut = 1;
	}
	buf[n] = '\n';   /* one file's last line ends before the next's first */
	return (size_t)n + 1 < cap ? (size_t)n + 1 : (size_t)n;
}

size_t ag_git_read_config(const struct ag_git_repo *r, const char *const *envp, char *buf,
			  size_t cap, int *cut)
{
	char p[AG_PATH_MAX];
	size_t n = 0;

	*cut = 0;
	const char *global = env_get(envp, "GIT_CONFIG_GLOBAL");
	const char *home = env_get(envp, "HOME");
	const char *xdg = env_get(envp, "XDG_CONFIG_HOME");
	/* Lowest precedence first, as git reads them. */
	if (global && *global) {
		n += cat_file(global, buf + n, cap - n, cut);
	} else {
		if (xdg && *xdg ? ag_fmt(p, sizeof p, "%s/git/config", xdg) == 0
			       : home && ag_fmt(p, sizeof p, "%s/.config/git/config", home) == 0)
			n += cat_file(p, buf + n, cap - n, cut);
		if (home && ag_fmt(p, sizeof p, "%s/.gitconfig", home) == 0)
			n += cat_file(p, buf + n, cap - n, cut);
	}
	if (r && ag_fmt(p, sizeof p, "%s/config", r->common) == 0)
		n += cat_file(p, buf + n, cap - n, cut);
	if (n < cap)
		buf[n] = 0;
	else if (cap)
		buf[cap - 1] = 0, *cut = 1;
	return n;
}

/* ---- refs ---------------------------------------------------------------- */

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

typedef void (*ref_fn)(void *ctx, const char *name, const char *sha);

#define DENTS 512
#define DEPTH 8

/* The loose refs under path (its name from `off` on is the ref name). */
static int walk_loose(char *path, size_t len, size_t cap, size_t off, char *dents, int depth,
		      ref_fn fn, void *ctx)
{
	char val[128];
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	for (;;) {
		long n = syscall(SYS_getdents64, fd, dents, DENTS);
		if (n <= 0)
			break;
		for (long at = 0; at < n;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(dents + at);
			at += d->d_reclen;
			const char *nm = d->d_name;
			if (nm[0] == '.' || strstr(nm, ".lock"))
				continue;
			size_t nl = strlen(nm);
			if (len + 1 + nl + 1 > cap)
				continue;
			path[len] = '/';
			memcpy(path + len + 1, nm, nl + 1);
			if (strcmp(path + off, "refs/agentguard") == 0) {
				path[len] = 0;
				continue;
			}
			if (d->d_type == DT_DIR || (d->d_type == DT_UNKNOWN && is_dir(path))) {
				if (depth < DEPTH) {
					/* Its own dents buffer: this one is still being read. */
					walk_loose(path, len + 1 + nl, cap, off, dents + DENTS,
						   depth + 1, fn, ctx);
				}
			} else if (read_small(path, val, sizeof val) > 0) {
				chomp(val);
				fn(ctx, path + off, val);
			}
			path[len] = 0;
		}
	}
	close(fd);
	return 0;
}

/* packed-refs, each ref that no loose file overrides. */
static void walk_packed(const char *common, char *path, size_t cap, char *line, size_t linecap,
			char *chunk, size_t chunkcap, ref_fn fn, void *ctx)
{
	if (ag_fmt(path, cap, "%s/packed-refs", common) < 0)
		return;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	size_t ll = 0;
	size_t clen = strlen(common);
	for (;;) {
		ssize_t n = read(fd, chunk, chunkcap);
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (chunk[i] != '\n') {
				if (ll + 1 < linecap)
					line[ll++] = chunk[i];
				continue;
			}
			line[ll] = 0;
			ll = 0;
			char *sp = strchr(line, ' ');
			if (line[0] == '#' || line[0] == '^' || !sp)
				continue;
			*sp = 0;
			const char *name = sp + 1;
			if (starts(name, "refs/agentguard/"))
				continue;
			/* A loose file of the same name is newer. */
			if (clen + 1 + strlen(name) + 1 <= cap) {
				memcpy(path, common, clen);
				path[clen] = '/';
				strcpy(path + clen + 1, name);
				if (exists(path))
					continue;
			}
			fn(ctx, name, line);
		}
	}
	close(fd);
}

/* scratch layout: path (AG_PATH_MAX), dents (DENTS * (DEPTH + 1)), line (512), chunk (512). */
#define SCRATCH_NEED (AG_PATH_MAX + DENTS * (DEPTH + 1) + 1024)

static int refs_each(const struct ag_git_repo *r, char *scratch, size_t scratchlen, ref_fn fn,
		     void *ctx)
{
	if (scratchlen < SCRATCH_NEED) {
		errno = ENOBUFS;
		return -1;
	}
	char *path = scratch, *dents = scratch + AG_PATH_MAX;
	char *line = dents + DENTS * (DEPTH + 1), *chunk = line + 512;
	char head[128];

	if (ag_fmt(path, AG_PATH_MAX, "%s/HEAD", r->gitdir) < 0)
		return -1;
	if (read_small(path, head, sizeof head) > 0) {
		chomp(head);
		fn(ctx, "HEAD", head);
	}
	size_t off = strlen(r->common) + 1;
	if (ag_fmt(path, AG_PATH_MAX, "%s/refs", r->common) < 0 ||
	    walk_loose(path, strlen(path), AG_PATH_MAX, off, dents, 0, fn, ctx) < 0)
		return -1;
	walk_packed(r->common, path, AG_PATH_MAX, line, 512, chunk, 512, fn, ctx);
	return 0;
}

int ag_git_refs_each(const struct ag_git_repo *r, char *scratch, size_t scratchlen,
		     void (*fn)(void *ctx, const char *name, const char *sha), void *ctx)
{
	return refs_each(r, scratch, scratchlen, fn, ctx);
}

/* ---- the record ---------------------------------------------------------- */

/* Which refs a command can change, and so are recorded and pinned. */
enum { SC_HEADS = 1, SC_TAGS = 2, SC_REMOTES = 4, SC_ALL = 8 };

struct rec {
	int fd;
	int err;
	unsigned scope;
	const char *remote;         /* SC_REMOTES: only refs/remotes/<remote>/ (NULL: all) */
	const struct ag_git_repo *r;
	const char *pin;
	char *pinpath;              /* AG_PATH_MAX */
	char out[1024];
	size_t n;
};

static void out_flush(struct rec *w)
{
	size_t at = 0;
	while (at < w->n && !w->err) {
		ssize_t k = write(w->fd, w->out + at, w->n - at);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			w->err = errno ? errno : EIO;
		else
			at += (size_t)k;
	}
	w->n = 0;
}

/* One line: the parts that are not NULL, separated by spaces. */
static void out(struct rec *w, const char *a, const char *b, const char *c)
{
	const char *parts[] = {a, b, c};
	int first = 1;
	for (int i = 0; i < 3; i++) {
		if (!parts[i])
			continue;
		size_t l = strlen(parts[i]);
		if (l + 2 > sizeof w->out) {
			w->err = ENAMETOOLONG;
			return;
		}
		if (w->n + l + 2 > sizeof w->out)
			out_flush(w);
		if (!first)
			w->out[w->n++] = ' ';
		first = 0;
		memcpy(w->out + w->n, parts[i], l);
		w->n += l;
	}
	w->out[w->n++] = '\n';
}

static int hex_oid(const char *s, size_t n)
{
	if (n != 40 && n != 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* Keep object sha reachable: refs/agentguard/<pin>/<sha>. */
static void pin(struct rec *w, const char *sha, size_t n)
{
	char oid[65];
	if (!w->pin || !hex_oid(sha, n) || strspn(sha, "0") >= n)
		return;
	memcpy(oid, sha, n);
	oid[n] = 0;
	if (ag_fmt(w->pinpath, AG_PATH_MAX, "%s/refs/agentguard/%s/%s", w->r->common, w->pin,
		   oid) < 0) {
		w->err = ENAMETOOLONG;
		return;
	}
	int fd = open(w->pinpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 && errno == ENOENT) {
		char *sl = strrchr(w->pinpath, '/');
		*sl = 0;
		char *sl2 = strrchr(w->pinpath, '/');
		*sl2 = 0;
		mkdir(w->pinpath, 0755);
		*sl2 = '/';
		mkdir(w->pinpath, 0755);
		*sl = '/';
		fd = open(w->pinpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	}
	if (fd < 0) {
		if (errno != EEXIST)
			w->err = errno;
		return;
	}
	oid[n] = '\n';
	if (write(fd, oid, n + 1) != (ssize_t)(n + 1))
		w->err = errno ? errno : EIO;
	close(fd);
}

static void rec_ref(void *ctx, const char *name, const char *val)
{
	struct rec *w = ctx;
	if (strcmp(name, "HEAD") == 0) {
		out(w, "head", val, NULL);
		if (!starts(val, "ref:"))
			pin(w, val, strlen(val));
		return;
	}
	int in = (w->scope & SC_ALL) || starts(name, "refs/heads/") ||
		 starts(name, "refs/stash") ||
		 ((w->scope & SC_TAGS) && starts(name, "refs/tags/"));
	if (!in && (w->scope & SC_REMOTES) && starts(name, "refs/remotes/")) {
		size_t rl = w->remote ? strlen(w->remote) : 0;
		in = !w->remote || (strncmp(name + 13, w->remote, rl) == 0 && name[13 + rl] == '/');
	}
	if (!in)
		return;
	if (starts(val, "ref:")) {
		const char *t = val + 4;
		while (*t == ' ')
			t++;
		out(w, "symref", t, name);
		return;
	}
	out(w, "ref", val, name);
	pin(w, val, strlen(val));
}

/* Each line of a reflog: pin its old and new object; `stash` lines also
 * go into the record. */
static void reflog_lines(struct rec *w, const char *path, char *line, size_t linecap,
			 char *chunk, size_t chunkcap, int stash)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	size_t ll = 0;
	for (;;) {
		ssize_t n = read(fd, chunk, chunkcap);
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (chunk[i] != '\n') {
				if (ll + 1 < linecap)
					line[ll++] = chunk[i];
				continue;
			}
			line[ll] = 0;
			size_t l1 = strcspn(line, " ");
			if (line[l1] == ' ') {
				const char *nw = line + l1 + 1;
				pin(w, line, l1);
				pin(w, nw, strcspn(nw, " "));
			}
			if (stash)
				out(w, "stash", line, NULL);
			ll = 0;
		}
	}
	close(fd);
}

/* Every reflog under dir (for gc, prune, reflog expire). */
static void reflogs_under(struct rec *w, char *path, size_t len, char *dents, int depth,
			  char *line, char *chunk)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	for (;;) {
		long n = syscall(SYS_getdents64, fd, dents, DENTS);
		if (n <= 0)
			break;
		for (long at = 0; at < n;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(dents + at);
			at += d->d_reclen;
			if (d->d_name[0] == '.')
				continue;
			size_t nl = strlen(d->d_name);
			if (len + 1 + nl + 1 > AG_PATH_MAX)
				continue;
			path[len] = '/';
			memcpy(path + len + 1, d->d_name, nl + 1);
			if (d->d_type == DT_DIR || (d->d_type == DT_UNKNOWN && is_dir(path))) {
				if (depth < DEPTH)
					reflogs_under(w, path, len + 1 + nl, dents + DENTS, depth + 1,
						      line, chunk);
			} else if (strcmp(path + len + 1, "stash") != 0 || !strstr(path, "/logs/refs/")) {
				reflog_lines(w, path, line, 512, chunk, 512, 0);
			}
			path[len] = 0;
		}
	}
	close(fd);
}

/* The remote a push goes to: its first word after the options. */
static const char *push_remote(const char *const *argv)
{
	struct ag_git_args a;
	const char *const *rest = NULL;
	const char *sub = subcommand(argv, &rest, &a);
	if (!sub)
		return NULL;
	for (; *rest; rest++) {
		const char *s = *rest;
		if (strcmp(s, "--") == 0)
			return rest[1];
		if (s[0] != '-')
			return s;
		if ((strcmp(s, "-o") == 0 || strcmp(s, "--push-option") == 0) && rest[1])
			rest++;
	}
	return NULL;
}

int ag_git_record(const struct ag_git_repo *r, const char *const *argv, enum ag_git_effect eff,
		  const char *pinid, int fd, char *scratch, size_t scratchlen)
{
	struct rec w = {.fd = fd, .r = r, .pin = pinid};
	struct ag_git_args a;
	const char *const *rest = NULL;

	if (scratchlen < SCRATCH_NEED + AG_PATH_MAX) {
		errno = ENOBUFS;
		return -1;
	}
	w.pinpath = scratch + SCRATCH_NEED;
	const char *sub = argv ? subcommand(argv, &rest, &a) : NULL;
	out(&w, "agentguard-git 1", NULL, NULL);
	out(&w, "gitdir", r->gitdir, NULL);
	out(&w, "common", r->common, NULL);
	out(&w, "worktree", r->worktree[0] ? r->worktree : "-", NULL);
	out(&w, "command", sub ? sub : "-", NULL);
	const char *remote = eff == AG_GIT_PUSH ? push_remote(argv) : NULL;
	/* A push names its remote by name or by URL; a URL's tracking refs
	 * are not told apart: all of them are recorded. */
	if (remote && (strchr(remote, '/') || strchr(remote, ':')))
		remote = NULL;
	if (remote)
		out(&w, "remote", remote, NULL);
	w.remote = remote;
	/* No command (restore keeping what it displaces): every name. */
	w.scope = !argv ? SC_ALL : eff == AG_GIT_PUSH ? SC_REMOTES : 0;
	static const char *const all[] = {"update-ref", "filter-branch", "filter-repo", NULL};
	for (const char *const *x = all; sub && *x; x++)
		if (strcmp(sub, *x) == 0)
			w.scope |= SC_ALL;
	if (sub && strcmp(sub, "tag") == 0)
		w.scope |= SC_TAGS;
	if (refs_each(r, scratch, SCRATCH_NEED, rec_ref, &w) < 0)
		return -1;
	char *path = scratch, *dents = scratch + AG_PATH_MAX;
	char *line = dents + DENTS * (DEPTH + 1), *chunk = line + 512;
	if (ag_fmt(path, AG_PATH_MAX, "%s/logs/refs/stash", r->common) == 0)
		reflog_lines(&w, path, line, 512, chunk, 512, 1);
	if (eff == AG_GIT_REFLOGS) {
		if (ag_fmt(path, AG_PATH_MAX, "%s/logs", r->common) == 0)
			reflogs_under(&w, path, strlen(path), dents, 0, line, chunk);
		if (strcmp(r->gitdir, r->common) != 0 &&
		    ag_fmt(path, AG_PATH_MAX, "%s/logs/HEAD", r->gitdir) == 0)
			reflog_lines(&w, path, line, 512, chunk, 512, 0);
	}
	out_flush(&w);
	if (w.err) {
		errno = w.err;
		return -1;
	}
	return 0;
}

/*
 * git's names, read straight from a repository's files (no git process):
 * which commands move or delete them, what a push really forces, and the
 * record of a repository's refs that the guard keeps before git runs one
 * of those commands (a snapshot of kind "git").
 *
 * The parsing half is pure (argv, environment and configuration text in,
 * answers out); the reading half uses only open/read/getdents/write, never
 * malloc: the exec hook runs it in vfork children.
 *
 * A record is text, one item a line:
 *
 *	agentguard-git 1
 *	gitdir /abs/repo/.git          the repository's git dir (HEAD lives here)
 *	common /abs/repo/.git          where refs/ and packed-refs live
 *	worktree /abs/repo             or "-" (bare)
 *	command rebase                 the subcommand that ran
 *	remote origin                  push: the remote it went to
 *	head ref: refs/heads/main      or "head <sha>" (detached)
 *	ref <sha> refs/heads/main      every ref but the pins
 *	stash <line of logs/refs/stash, as git wrote it>
 *
 * Every object a record names is kept reachable under
 * refs/agentguard/<snapshot id>/<sha> (loose ref files), so neither gc
 * nor reflog expire can prune it while the record exists.
 */
#ifndef AGENTGUARD_GITREFS_H
#define AGENTGUARD_GITREFS_H

#include <stddef.h>

#include "agentguard.h"

/* What a git command does to names (ag_git_names). */
enum ag_git_effect {
	AG_GIT_NONE = 0,     /* moves no names */
	AG_GIT_REFS,         /* moves or deletes refs: record them */
	AG_GIT_REFLOGS,      /* also drops reflog entries (gc, prune, reflog
	                        expire): the commits they name are kept too */
	AG_GIT_PUSH,         /* changes a remote: record its tracking refs */
};

/* git's global options before the subcommand (pure). */
#define AG_GIT_MAX_OPTS 16
struct ag_git_args {
	size_t sub;                       /* argv index of the subcommand, 0: none */
	const char *cdir[AG_GIT_MAX_OPTS];   /* -C DIR, in order */
	unsigned ncdir;
	const char *cfg[AG_GIT_MAX_OPTS];    /* -c NAME=VALUE, in order */
	unsigned char cfg_env[AG_GIT_MAX_OPTS];  /* --config-env NAME=VAR */
	unsigned ncfg;
	const char *git_dir, *work_tree;  /* --git-dir, --work-tree */
	int too_many;                     /* more -C or -c than fit: judged broken */
};
void ag_git_args(const char *const *argv, struct ag_git_args *a);

/* Pure: what the command (argv[0] git, or a git-* helper) does to names. */
enum ag_git_effect ag_git_names(const char *const *argv);

/* Pure: does this git command push with force, whatever says so: its own
 * flags and refspecs, an alias (alias.x = push -f), -c and the
 * environment's GIT_CONFIG_PARAMETERS / GIT_CONFIG_COUNT settings, or
 * the configuration text `config` (the repository's and the user's files,
 * concatenated): a `+` refspec in remote.<name>.push, remote.<name>.mirror,
 * git send-pack --force. `config_cut`: the text was too long to be read
 * whole (a push is then taken as forced: fail closed). Returns 1 and why
 * in `why` (if not NULL), else 0. */
int ag_git_push_forced(const char *const *argv, const char *const *envp, const char *config,
		       size_t config_len, int config_cut, char *why, size_t whylen);

/* Call fn for each "section.sub.key" = value of configuration text, in
 * order (names lowercased but for the subsection; a key without `=` is
 * "true"). Pure; includes are not followed. */
void ag_git_config_each(const char *text, size_t len,
			void (*fn)(void *ctx, const char *key, const char *value), void *ctx);

/* ---- reading a repository (no malloc) ------------------------------------ */

struct ag_git_repo {
	char gitdir[AG_PATH_MAX];   /* HEAD, logs/HEAD of this worktree */
	char common[AG_PATH_MAX];   /* refs/, packed-refs, config */
	char worktree[AG_PATH_MAX]; /* "" when bare or unknown */
};

/* The repository a git command with these args runs in: -C, --git-dir,
 * GIT_DIR, else found from cwd upward (a .git directory, or a .git file
 * of a linked worktree or submodule, and its commondir). 0, or -1 (not in
 * a repository). */
int ag_git_find(const struct ag_git_args *a, const char *const *envp, const char *cwd,
		struct ag_git_repo *r);

/* The configuration a push reads from files: the repository's config and
 * the user's ($GIT_CONFIG_GLOBAL, else ~/.gitconfig and
 * $XDG_CONFIG_HOME/git/config), concatenated into buf. Returns the length;
 * *cut is set when something did not fit. */
size_t ag_git_read_config(const struct ag_git_repo *r, const char *const *envp, char *buf,
			  size_t cap, int *cut);

/* Write the record of repository r to fd (see above), for a command argv
 * with effect eff, and pin what it names under refs/agentguard/<pin>/.
 * scratch: at least 8 KiB. 0, or -1 with errno. */
int ag_git_record(const struct ag_git_repo *r, const char *const *argv, enum ag_git_effect eff,
		  const char *pin, int fd, char *scratch, size_t scratchlen);

/* A linked worktree of the workspace's repository is part of the
 * workspace: path lies in the tree of a worktree whose git dir is
 * <workspace>/.git/worktrees/<name> and whose back link there (its
 * `gitdir` file) names it. Its top into root. 1, or 0. */
int ag_git_linked_root(const char *workspace, const char *path, char *root, size_t rootlen);

/* One ref of a record, or of a repository now (for restore). */
struct ag_git_ref {
	char name[256];
	char sha[65];
};
/* Each ref of repository r as it is now: fn(ctx, name, sha), HEAD first as
 * "HEAD" with sha "ref: refs/heads/x" when symbolic. Pins are left out. */
int ag_git_refs_each(const struct ag_git_repo *r, char *scratch, size_t scratchlen,
		     void (*fn)(void *ctx, const char *name, const char *sha), void *ctx);

#endif

/*
 * Starting programs (lib/hooks/exec.c): which file will run, whether it
 * will run without the library, and the environment the child must get so
 * that it stays in the session whatever the caller did to its own.
 *
 * Nothing here allocates or locks: it runs in vfork children.
 */
#ifndef AGENTGUARD_LAUNCH_H
#define AGENTGUARD_LAUNCH_H

#include <stddef.h>

#include "agentguard.h"

/* The file execvp would run for `file` (a name is searched in $PATH, a
 * path with a slash is taken as it is). 0, or -1 with errno. */
int ag_launch_resolve(const char *file, char *out, size_t outlen);

/* $PATH (glibc's default when unset), and its candidates for `file` one
 * by one, as execvp tries them: 1 with the next in cand, 0 at the end.
 * Start with *cursor = ag_search_path(). */
const char *ag_search_path(void);
int ag_path_next(const char **cursor, const char *file, char *cand, size_t cap);

/* Why `path` would run without the library ("static", "setuid", "setgid",
 * "capabilities"), or NULL when the loader will preload it. */
const char *ag_launch_unguarded(const char *path);

/* Set once at session start: the variables every child must carry
 * ("NAME=value", NULL-terminated) and this library's path. */
void ag_launch_set(const char *const *vars, const char *self, const char *self_as_given);

/* 1 when envp already carries the library and the session unchanged. */
int ag_launch_env_intact(char *const envp[]);

/* Sizes for the caller's stack buffers, then the child's environment:
 * envp without LD_PRELOAD and AGENTGUARD_*, plus the session's variables
 * and an LD_PRELOAD with this library first (other preloads kept). */
size_t ag_launch_env_slots(char *const envp[]);
size_t ag_launch_preload_len(char *const envp[]);
char *const *ag_launch_env_build(char *const envp[], const char **slots,
				 char *preload, size_t preload_len);

/* For system()/popen(), which read `environ`: put the session's variables
 * back into this process's environment if they were removed or changed. */
void ag_launch_repair_environ(void);

/* Stack storage and the child's envp in one statement, for exec hooks. */
#define AG_CHILD_ENV(envp, name)                                                   \
	int name##_ok = ag_launch_env_intact(envp);                                 \
	size_t name##_n = name##_ok ? 1 : ag_launch_env_slots(envp);               \
	size_t name##_pl = name##_ok ? 1 : ag_launch_preload_len(envp);            \
	const char *name##_slots[name##_n];                                         \
	char name##_pre[name##_pl];                                                 \
	char *const *name = name##_ok ? (envp)                                      \
		: ag_launch_env_build(envp, name##_slots, name##_pre, name##_pl)

#endif

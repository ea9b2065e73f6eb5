/*
 * A session: the rules, mode and workspace fixed when it starts, carried
 * to every child through the environment (the exec hooks put these back
 * into every child's environment, so nothing the agent does loosens them).
 *
 *   AGENTGUARD_SESSION    session id
 *   AGENTGUARD_STATE_DIR  absolute state dir (audit.db, spool/, snapshots/, rules/)
 *   AGENTGUARD_RULES      the session's frozen copy of its rules
 *                         (state_dir/rules/<sha256>.yaml), or "builtin"
 *   AGENTGUARD_MODE       autonomous | supervised
 *   AGENTGUARD_WORKSPACE  absolute workspace
 *   AGENTGUARD_HOME       the HOME that ~ and $HOME in rules meant at the start
 *                         (so changing HOME later moves no protection)
 *   AGENTGUARD_MONITOR    1: enforce is off (log "would deny"; only hard rules block)
 *   AGENTGUARD_GATE       under the kernel layer: where the library maps its
 *                         syscall gate (lib/gate.h); absent without it
 *   AGENTGUARD_COUNTERS   FD:DEV:INO, the session's counters file that
 *                         `agentguard run` (without the floor) leaves open
 *                         in the agent: a process that cannot open files in
 *                         the state dir (an agent's own sandbox) still
 *                         counts its denials there
 */
#ifndef AGENTGUARD_SESSION_H
#define AGENTGUARD_SESSION_H

#include "agentguard.h"

#define AG_SESSION_ID_MAX 40

struct ag_session {
	char id[AG_SESSION_ID_MAX];
	char state_dir[AG_PATH_MAX];
	char rules_path[AG_PATH_MAX];  /* frozen copy, or "builtin" */
	char rules_name[AG_PATH_MAX];  /* what the user named, for messages */
	char rules_hash[AG_HASH_HEX];
	char workspace[AG_PATH_MAX];
	char home[AG_PATH_MAX];
	enum ag_mode mode;
	int enforce;
	int64_t start_ns;
	char gate[24];                 /* "0x..." or "" (no kernel layer) */
	char floor[AG_PATH_MAX];       /* the Landlock floor's zone file, or "" */
	char key_file[AG_PATH_MAX];    /* the chain's key, or "" (STATE/key) */
	char counters[64];             /* "FD:DEV:INO": the session's counters, open
	                                  in every process (`run` without the floor),
	                                  or "" */
	struct ag_policy *policy;      /* owned */
	struct ag_own_names own;       /* from the rules image, while it is mapped */
};

struct ag_session_opts {
	const char *rules_file;  /* NULL: $AGENTGUARD_RULES, else built-in */
	const char *mode;        /* NULL: $AGENTGUARD_MODE, else the rules' */
	int monitor;             /* 1: enforce off */
	const char *state_dir;   /* NULL: $AGENTGUARD_STATE_DIR, else default */
	const char *workspace;   /* NULL: $AGENTGUARD_WORKSPACE, else rules', else cwd */
};

/* A session id as sessions make them: 1..39 of [A-Za-z0-9._-]. */
int ag_session_id_ok(const char *id);

/*
 * Start a new session: load and validate the rules, freeze a copy of them
 * into the state dir, fix mode and workspace, make an id. 0 on success;
 * -1 with "what is wrong" in err (rules errors are "file:line:col: ...").
 */
int ag_session_new(struct ag_session *s, const struct ag_session_opts *o,
		   char *err, size_t errlen);

/*
 * Join the session named by the environment. Returns 1 when joined, 0 when
 * the environment names no session, -1 when it names one that cannot be
 * loaded (message in err; the caller fails closed).
 */
int ag_session_from_env(struct ag_session *s, char *err, size_t errlen);

/* The same in two steps: ag_session_join reads only the environment (no
 * policy yet: s->policy is NULL); ag_session_load_policy compiles the
 * session's rules (0, or -1 with err). The library parses rules only when
 * a process first has something to decide: most never do. */
int ag_session_join(struct ag_session *s, char *err, size_t errlen);
int ag_session_load_policy(struct ag_session *s, char *err, size_t errlen);
/* Compile the session's rules once more into STATE/rules/ID.img, which
 * ag_session_load_policy in the session's processes maps instead of
 * compiling (lib/pimage.c), with the guard's own files resolved: the state
 * dir, s->key_file and lib, the library the session preloads. For the
 * session's starter; failing costs only speed. */
int ag_session_write_image(const struct ag_session *s, const char *lib, char *err,
			   size_t errlen);
/* Once the session is over: a process that outlived it compiles its own. */
void ag_session_drop_image(const struct ag_session *s);

/* Put the session's AGENTGUARD_* variables into this process's environment. */
void ag_session_setenv(const struct ag_session *s);

/* Fill a NULL-terminated list of "NAME=value" strings (storage in buf) with
 * the session's variables; used to rebuild a child's environment without
 * allocating. Returns the count, or -1 if buf is too small. */
int ag_session_env_strings(const struct ag_session *s, char *buf, size_t buflen,
			   const char **out, int outmax);

void ag_session_free(struct ag_session *s);

/*
 * Container-wide mode (the library loaded from /etc/ld.so.preload into a
 * process whose environment names no session): join the container's one
 * session, STATE/containers/<hash of boot id, pid namespace, its init's
 * start time and $AGENTGUARD_SESSION_KEY>, or start it when none is there
 * yet (race-free among processes starting at once). Returns 1 joined
 * (policy not loaded yet), 2 started (as ag_session_new; the caller
 * records it), 0 no container key here (the caller starts a session of its
 * own), -1 with err.
 */
int ag_session_container(struct ag_session *s, char *err, size_t errlen);

/*
 * Whether the container session of file DIR/NAME is over: 1 its init is
 * gone (the boot changed, or the viewer sees its pid namespace is empty,
 * or it runs in that container's next life), 0 it runs or the viewer
 * cannot tell, -1 not a container session file. Fills sid, *start_ns and
 * (when 1) why.
 */
int ag_container_over(const char *dir, const char *name, char *sid, size_t sidlen,
		      int64_t *start_ns, char *why, size_t whylen);

#endif

/*
 * What server pre-images share (sql_pq.c, sql_mysql.c): a store entry,
 * and the dump tool run into it as the guard's own child.
 */
#ifndef AGENTGUARD_PREIMAGE_H
#define AGENTGUARD_PREIMAGE_H

#include "guard.h"

/* -2 with c->why saying why (the statement is then denied): what a
 * snap_fn returns when it knows better than errno. */
int ag_pre_fail(struct ag_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define pre_fail ag_pre_fail

/* A new store entry of this kind in snap (id, store, abs; stage under
 * the floor, where it is written first): 0, or -1 with errno. */
int ag_preimage_store(struct ag_snapshot *snap, const char *kind);

/* Run argv (a fixed path, envp its whole environment) with its stdout
 * into snap's store entry after `head`, as the guard's own work; the
 * start of its stderr in err. The bytes kept; -1 with errno when the
 * entry cannot be made; -3 when the tool failed (err says why): nothing
 * is left in the store either way. A tool silent for AG_PREIMAGE_IDLE_MS
 * is killed (and has failed). */
#define AG_PREIMAGE_IDLE_MS 15000
long ag_preimage_run(struct ag_snapshot *snap, char *const argv[], char *const envp[],
		     const char *head, char *err, size_t errcap);

/* Run argv the same way, its output (up to cap - 1 bytes) into out: a
 * catalog query. 0, or -1 (err says why). */
int ag_preimage_capture(char *const argv[], char *const envp[], char *out, size_t cap, char *err,
			size_t errcap);

#endif

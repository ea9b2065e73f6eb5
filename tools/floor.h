/*
 * The Landlock floor (floor.c): what no process of an `agentguard run`
 * session can change at the kernel level, whatever code it runs — the
 * guard's own files, the snapshot store (append-only), what the hard rules
 * protect — and signals to the supervisor scoped away.
 */
#ifndef AGENTGUARD_TOOLS_FLOOR_H
#define AGENTGUARD_TOOLS_FLOOR_H

#include <stddef.h>

struct ag_session;

/*
 * In the supervisor, before the agent starts: derive the floor from the
 * session's compiled rules and the guard's own files, build the Landlock
 * ruleset, and write the zone file the library reads (AGENTGUARD_FLOOR)
 * into zone. Returns the ruleset's descriptor, or -1 (no floor: the
 * kernel offers no usable Landlock, or it cannot be built). Either way
 * `state` says what was laid and what was dropped, for the session row.
 */
int ag_floor_prepare(const struct ag_session *s, const char *lib, char *zone, size_t zonelen,
		     char *state, size_t statelen);

/* Make the session's counters (STATE/rules/SID.counters), which under the
 * floor only the supervisor writes. 0, or -1 with why in err. */
int ag_floor_counters(const struct ag_session *s, char *err, size_t errlen);

/* In the agent's process (no-new-privs set): lay it. 0, or -1 with errno. */
int ag_floor_apply(int ruleset);

#endif

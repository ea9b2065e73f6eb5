/* Writes the spool seed of the fuzz_spool corpus: a session, events with
 * and without a snapshot, a gap, a process record, as the runtime writes
 * them. Usage: mkseed_spool STATE_DIR (the spool lands in STATE_DIR/spool/). */
#include <stdio.h>
#include <string.h>

#include "spool.h"

int main(int argc, char **argv)
{
	static const char *const av[] = {"agent", "--flag", NULL};
	struct ag_spool sp;
	int64_t one = 1, t = 1000, mode = 0100644, size = 5;

	if (argc != 2)
		return 2;
	memset(&sp, 0, sizeof sp);
	sp.state_dir = argv[1];
	sp.session = "seed";
	sp.argv = av;
#define S(tag, s) {tag, (uint32_t)strlen(s), s}
	struct ag_field sess[] = {
		S(AG_T_SESSION, "seed"), {AG_T_ARGV | AG_FIELD_ARGV, 0, av},
		S(AG_T_MODE, "autonomous"), {AG_T_ENFORCE, 8, &one},
		S(AG_T_RULES, "builtin:default.yaml"), S(AG_T_RULES_HASH, "cafe"),
		S(AG_T_WORKSPACE, "/w"), S(AG_T_STATE_DIR, "/s"), {AG_T_START, 8, &t},
	};
	struct ag_field ev[] = {
		S(AG_T_OP, "delete"), S(AG_T_PATH, "/w/a.txt"), S(AG_T_DECISION, "snapshot"),
		{AG_T_ENFORCED, 8, &one}, S(AG_T_RULE, "workspace-snapshot"),
		S(AG_T_SNAP_ID, "snap1"), S(AG_T_KIND, "file"), {AG_T_MODE_BITS, 8, &mode},
		{AG_T_SIZE, 8, &size}, S(AG_T_SNAPSHOT, "/w/a.txt"), S(AG_T_STORE, "store/ab/cd"),
	};
	struct ag_field sql[] = {
		S(AG_T_OP, "sql"), S(AG_T_SQL, "DROP TABLE t"), S(AG_T_SQL_CLASS, "drop_table"),
		S(AG_T_DATABASE, "/w/app.db"), S(AG_T_DECISION, "deny"), {AG_T_ENFORCED, 8, &one},
		S(AG_T_REASON, "no"),
	};
	struct ag_field con[] = {
		S(AG_T_OP, "connect"), S(AG_T_HOST, "db.example.com"), S(AG_T_ADDRESS, "10.0.0.1"),
		{AG_T_PORT, 8, &size}, S(AG_T_DECISION, "allow"),
	};
	struct ag_field gap[] = {S(AG_T_WHAT, "3 decisions")};
#undef S
	if (ag_spool_append(&sp, AG_REC_SESSION, 0, t, 0, sess, 9, NULL) < 0 ||
	    ag_spool_append(&sp, AG_REC_EVENT, 0, t + 1, 5, ev, 11, NULL) < 0 ||
	    ag_spool_append(&sp, AG_REC_EVENT, -1, t + 2, 5, sql, 7, NULL) < 0 ||
	    ag_spool_append(&sp, AG_REC_EVENT, 0, t + 3, 5, con, 5, NULL) < 0 ||
	    ag_spool_append(&sp, AG_REC_GAP, 0, t + 4, 0, gap, 1, NULL) < 0) {
		perror("mkseed_spool");
		return 1;
	}
	puts(sp.path);
	return 0;
}

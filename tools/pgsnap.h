/*
 * Server pre-images (kind 'pgsql', taken by lib/hooks/sql_pq.c): put one
 * back, and say what one holds. A pre-image is a plain pg_dump of what a
 * statement destroyed; its record's path is the connection (libpq
 * keywords, no password) and its link_target what it holds: "table
 * SCHEMA.NAME...", "schema NAME..." or "database NAME" (names as
 * quote_ident gives them).
 */
#ifndef AGENTGUARD_PGSNAP_H
#define AGENTGUARD_PGSNAP_H

#include <stdio.h>

#include "undo.h"

struct pg_item {
	const char *id, *conninfo, *what, *file, *sha256;
};

/* Restore it: in one transaction, what is there now is moved aside (a
 * table into schema agentguard_displaced_SUFFIX, a schema or a database
 * renamed NAME_displaced_SUFFIX) and the dump is loaded; what was there is
 * also dumped into the restore's own session first (u), so that restoring
 * that undoes this. to_table: restore a one-table pre-image beside the
 * original, as that name in its schema, leaving the original alone.
 * Messages on stdout; 0 restored, -1 failed. */
int pg_restore_item(struct undo *u, const struct pg_item *it, const char *to_table, int dry_run);

/* What a pre-image holds: each table's row count and its first `lines`
 * rows (pg_dump's COPY text). 0, or -1 when it cannot be read. */
int pg_show(FILE *out, const char *file, long lines);

/* The same for MariaDB/MySQL pre-images (kind 'mysql'): put in place by one
 * atomic RENAME TABLE from a database the dump was loaded into first. */
int my_restore_item(struct undo *u, const struct pg_item *it, const char *to_table, int dry_run);
int my_show(FILE *out, const char *file, long lines);

#endif

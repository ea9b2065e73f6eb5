/* Spool ingest of a hostile file: the input is written as a spool into a
 * scratch state dir, read record by record (every field touched), then
 * moved into audit.db as `agentguard report` would, and measured as the
 * supervisor measures what it copies of a process's spool. Never a crash,
 * and never a read outside the file. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "fuzz.h"
#include "spool.h"

static char state[64];
static char spool[128];
static sqlite3 *db;
static unsigned iterations;
static volatile unsigned sink;   /* keeps the reads from being optimized out */

static int touch(void *ctx, const struct ag_spool_view *sv, const struct ag_rec_view *rv)
{
	unsigned sum = 0;

	(void)ctx;
	sum += (unsigned)strlen(sv->name) + sv->hdr->seq;
	for (int t = 0; t < AG_T_MAX; t++) {
		for (uint32_t i = 0; rv->field[t] && i < rv->flen[t]; i++)
			sum += rv->field[t][i];
		sum += (unsigned)ag_rec_int(rv, t);
	}
	sink += sum;
	return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(p) : unlink(p);
}

/* libFuzzer ends a timed run with exit(): leave nothing in /dev/shm. */
static void cleanup(void)
{
	if (db)
		ag_audit_close(db);
	nftw(state, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
	char err[512], dir[128];

	snprintf(state, sizeof state, "/dev/shm/agentguard-fuzz.%d", (int)getpid());
	snprintf(dir, sizeof dir, "%s/spool", state);
	if (mkdir(state, 0700) < 0 || mkdir(dir, 0700) < 0)
		abort();
	snprintf(spool, sizeof spool, "%s/fz.1.000000000000.spool", dir);
	db = ag_audit_open(state, 0, err, sizeof err);
	if (!db) {
		fprintf(stderr, "fuzz_spool: %s\n", err);
		abort();
	}
	atexit(cleanup);
}

/* A fresh log now and then, so that its size does not slow the run down. */
static void reopen(void)
{
	char path[128], err[512];

	ag_audit_close(db);
	for (const char *suf = ""; suf; suf = *suf ? (suf[1] == 'w' ? "-shm" : NULL) : "-wal") {
		snprintf(path, sizeof path, "%s/audit.db%s", state, suf);
		unlink(path);
	}
	db = ag_audit_open(state, 0, err, sizeof err);
	if (!db)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];

	if (!db)
		setup();
	if (++iterations % 2000 == 0)
		reopen();
	FILE *f = fopen(spool, "we");
	if (!f)
		abort();
	if (size && fwrite(data, size, 1, f) != 1)
		abort();
	fclose(f);
	ag_spool_read(spool, touch, NULL);
	/* What the supervisor takes from a process's mapping (tools/kernel.c):
	 * in a buffer of its own size, so a read past it is caught. */
	if (size > AG_SPOOL_HDR_SIZE) {
		size_t len = size - AG_SPOOL_HDR_SIZE;
		unsigned char *b = malloc(len);
		if (!b)
			abort();
		memcpy(b, data + AG_SPOOL_HDR_SIZE, len);
		if (ag_spool_committed(b, len, AG_SPOOL_HDR_SIZE) > len)
			abort();
		free(b);
	}
	if (ag_audit_ingest(db, state, 1, err, sizeof err) < 0 && !err[0])
		abort();   /* a failure must say why */
	unlink(spool);
	return 0;
}

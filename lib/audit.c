/*
 * audit.db: where decisions end up, chained so that a changed, deleted or
 * inserted row shows. Only the CLI opens it; guarded processes write
 * spools (spool.c) that ag_audit_ingest moves in here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <pwd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "session.h"
#include "snapshot.h"
#include "spool.h"

#define SCHEMA_VERSION "1"

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
	"CREATE TABLE IF NOT EXISTS sessions("
	" id TEXT PRIMARY KEY, argv TEXT, mode TEXT, enforce INTEGER, rules TEXT,"
	" rules_hash TEXT, workspace TEXT, state_dir TEXT, pid INTEGER,"
	" start_ns INTEGER, end_ns INTEGER, exit_status INTEGER, genesis TEXT,"
	" head TEXT, events INTEGER NOT NULL DEFAULT 0, halted INTEGER NOT NULL DEFAULT 0,"
	" kernel TEXT, floor TEXT, home TEXT, undoes TEXT, hostname TEXT, user TEXT,"
	" user_id INTEGER, container TEXT);"
	"CREATE TABLE IF NOT EXISTS events("
	" id INTEGER PRIMARY KEY, uid TEXT UNIQUE NOT NULL, time_ns INTEGER,"
	" session TEXT, pid INTEGER, ppid INTEGER, proc_start INTEGER, exe TEXT,"
	" argv TEXT, cwd TEXT, op TEXT, path TEXT, target TEXT, address TEXT,"
	" host TEXT, port INTEGER, sql TEXT, sql_class TEXT, database TEXT,"
	" rule TEXT, decision TEXT, enforced INTEGER, reason TEXT, errno INTEGER,"
	" snapshot TEXT, latency_ns INTEGER, unguarded TEXT, prev_hash TEXT, hash TEXT,"
	" layer TEXT);"
	"CREATE INDEX IF NOT EXISTS events_session ON events(session, id);"
	"CREATE TABLE IF NOT EXISTS snapshots("
	" id TEXT PRIMARY KEY, session TEXT, event_uid TEXT, kind TEXT, path TEXT,"
	" mode INTEGER, uid INTEGER, gid INTEGER, atime_ns INTEGER,"
	" mtime_ns INTEGER, size INTEGER, sha256 TEXT, link_target TEXT,"
	" store TEXT, created_ns INTEGER, restored_ns INTEGER,"
	" parent_atime_ns INTEGER, parent_mtime_ns INTEGER, rdev INTEGER, btime_ns INTEGER);"
	"CREATE INDEX IF NOT EXISTS snapshots_session ON snapshots(session, path);"
	"CREATE TABLE IF NOT EXISTS ends("
	" session TEXT, path TEXT, kind TEXT, mode INTEGER, size INTEGER, mtime_ns INTEGER,"
	" ctime_ns INTEGER, ino INTEGER, sha256 TEXT, link_target TEXT,"
	" PRIMARY KEY(session, path));"
	"CREATE TABLE IF NOT EXISTS gaps("
	" id INTEGER PRIMARY KEY, uid TEXT UNIQUE, session TEXT, time_ns INTEGER,"
	" pid INTEGER, what TEXT);"
	"CREATE TABLE IF NOT EXISTS marks("
	" id INTEGER PRIMARY KEY, session TEXT, kind TEXT, time_ns INTEGER,"
	" after_event INTEGER, events INTEGER, head TEXT, exit_status INTEGER);"
	"CREATE INDEX IF NOT EXISTS marks_session ON marks(session, kind);"
	"CREATE INDEX IF NOT EXISTS events_notable ON events(session, id) WHERE " AG_AUDIT_NOTABLE ";"
	"CREATE TABLE IF NOT EXISTS tallies("
	" session TEXT NOT NULL, op TEXT NOT NULL, decision TEXT NOT NULL, enforced INTEGER NOT NULL,"
	" layer TEXT NOT NULL, snap INTEGER NOT NULL, failed INTEGER NOT NULL, lost INTEGER NOT NULL,"
	" n INTEGER NOT NULL,"
	" PRIMARY KEY(session, op, decision, enforced, layer, snap, failed, lost)) WITHOUT ROWID;"
	"INSERT OR IGNORE INTO meta VALUES('schema', '" SCHEMA_VERSION "');";

static void seterr(char *err, size_t errlen, const char *fmt, const char *a,
		   const char *b)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, a, b ? b : "");
}

/* Columns added after a table was first made: logs written by an older
 * agentguard get them (NULL in old rows). */
static int add_columns(sqlite3 *db)
{
	static const char *const added[][2] = {
		{"snapshots", "rdev INTEGER"},
		{"events", "layer TEXT"},
		{"sessions", "kernel TEXT"},
		{"sessions", "floor TEXT"},
		{"sessions", "home TEXT"},
		{"snapshots", "btime_ns INTEGER"},
		{"sessions", "undoes TEXT"},
		{"sessions", "hostname TEXT"},
		{"sessions", "user TEXT"},
		{"sessions", "user_id INTEGER"},
		{"sessions", "container TEXT"},
	};

	for (size_t i = 0; i < sizeof added / sizeof added[0]; i++) {
		char q[160];
		sqlite3_stmt *st;
		size_t nl = strcspn(added[i][1], " ");
		snprintf(q, sizeof q, "SELECT %.*s FROM %s LIMIT 0", (int)nl, added[i][1],
			 added[i][0]);
		if (sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK) {
			sqlite3_finalize(st);
			continue;
		}
		snprintf(q, sizeof q, "ALTER TABLE %s ADD COLUMN %s", added[i][0], added[i][1]);
		if (sqlite3_exec(db, q, NULL, NULL, NULL) != SQLITE_OK)
			return -1;
	}
	return 0;
}

/* The tallies of one set of events, as SQL: how a log that predates them
 * gets them, and what verify compares them with. */
#define TALLY_OF_EVENTS(where) \
	"SELECT session, coalesce(op, ''), coalesce(decision, ''), coalesce(enforced, 1) <> 0," \
	" coalesce(layer, 'library'), snapshot IS NOT NULL, coalesce(errno, 0) > 0," \
	" coalesce(" AG_AUDIT_LOST ", 0), count(*) FROM events " where \
	" GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"

int ag_audit_has_tallies(sqlite3 *db)
{
	sqlite3_stmt *st;
	int have = 0;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM meta WHERE key = 'tallies'", -1, &st,
			       NULL) == SQLITE_OK) {
		have = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_finalize(st);
	}
	return have;
}

/* Once per log written before tallies: counted from its events (and its
 * sessions' event counts, which early logs did not keep, with them). */
static int add_tallies(sqlite3 *db)
{
	if (ag_audit_has_tallies(db))
		return 0;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	if (!ag_audit_has_tallies(db) &&
	    (sqlite3_exec(db, "DELETE FROM tallies;"
			  "INSERT INTO tallies " TALLY_OF_EVENTS("") ";"
			  "UPDATE sessions SET events = (SELECT count(*) FROM events e"
			  " WHERE e.session = sessions.id);"
			  "INSERT INTO meta VALUES('tallies', '1');", NULL, NULL, NULL) != SQLITE_OK)) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static int key_setup(sqlite3 *db, const char *state_dir, int writable, char *err, size_t errlen);
static void key_detach(sqlite3 *db);

sqlite3 *ag_audit_open(const char *state_dir, int readonly, char *err, size_t errlen)
{
	char path[AG_PATH_MAX];
	sqlite3 *db = NULL;
	int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;

	if (ag_fmt(path, sizeof path, "%s/audit.db", state_dir) < 0) {
		seterr(err, errlen, "state dir path too long: %s%s", state_dir, NULL);
		return NULL;
	}
	if (readonly && access(path, F_OK) != 0) {
		seterr(err, errlen, "no audit log at %s%s", path, NULL);
		return NULL;
	}
	if (!readonly && ag_mkdirs(state_dir, 0700) < 0) {
		seterr(err, errlen, "cannot create state dir %s: %s", state_dir, strerror(errno));
		return NULL;
	}
	/* SQLite would open a FIFO or a device and wait on it for good: the
	 * log and its companions are regular files or nothing. */
	static const char *const companion[] = {"", "-wal", "-shm", "-journal"};
	for (int i = 0; i < 4; i++) {
		char p[AG_PATH_MAX + 16];
		struct stat st;
		snprintf(p, sizeof p, "%s%s", path, companion[i]);
		if (lstat(p, &st) == 0 && !S_ISREG(st.st_mode) && !(i == 0 && S_ISLNK(st.st_mode))) {
			seterr(err, errlen, "%s is not a regular file: nothing was changed; move it "
			       "aside%s", p, NULL);
			return NULL;
		}
	}
	if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(db, 10000);
	/* The log's indexes outgrow SQLite's 2 MiB default within a few
	 * hundred thousand events; re-reading their pages is most of a big
	 * ingest's or report's time otherwise. Memory is taken as used. */
	sqlite3_exec(db, "PRAGMA cache_size=-65536", NULL, NULL, NULL);
	if (!readonly) {
		/* 16 KiB pages for a new log (an existing one keeps its own):
		 * ingest measured ~15% faster than with 4 KiB (fewer pages to
		 * split and to write to the WAL), for ~350 KiB of empty tables. */
		if (sqlite3_exec(db, "PRAGMA page_size=16384; PRAGMA journal_mode=WAL;"
				 " PRAGMA synchronous=NORMAL;",
				 NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK ||
		    add_columns(db) < 0 || add_tallies(db) < 0)
			goto fail;
	} else if (sqlite3_exec(db, "SELECT count(*) FROM sessions", NULL, NULL, NULL) != SQLITE_OK) {
		goto fail;
	}
	/* A log that can be written is always keyed; reading one only needs
	 * the key to verify it. */
	if (key_setup(db, state_dir, !readonly, err, errlen) < 0 && !readonly) {
		key_detach(db);
		sqlite3_close(db);
		return NULL;
	}
	return db;
fail:;
	int code = db ? sqlite3_errcode(db) : SQLITE_CANTOPEN;
	const char *msg = db ? sqlite3_errmsg(db) : "cannot open";
	if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
		seterr(err, errlen,
		       "audit log %s is damaged (%s): nothing was changed; move it aside to start a new one",
		       path, msg);
	else
		seterr(err, errlen, "cannot open audit log %s: %s", path, msg);
	sqlite3_close(db);
	return NULL;
}

void ag_audit_close(sqlite3 *db)
{
	key_detach(db);
	sqlite3_close(db);
}

/* ---- the chain's key -----------------------------------------------------
 * The chain is an HMAC-SHA256 chain keyed with a secret (ag_audit_key_path):
 * who edits the log without it cannot make the hashes agree again.
 * Processes of a session cannot change it, nor, where it lives in a quiet
 * directory, read it (tools/floor.c). */

#define KEY_LEN 32

static struct keyed {
	sqlite3 *db;
	unsigned char key[KEY_LEN];
	char id[17];                /* the first 16 hex digits of its sha256 */
	/* HMAC's two padded keys, already absorbed: each row's MAC starts
	 * from a copy instead of hashing them again (two blocks a row). */
	struct ag_sha256 inner, outer;
} keys[8];
static pthread_mutex_t keys_mu = PTHREAD_MUTEX_INITIALIZER;

/* $AGENTGUARD_KEY_FILE, else STATE/key; but root's default state dir lies
 * under /root, where every program makes files: the floor could only keep
 * a key there unreadable by making everything new in /root unreadable too.
 * Its key lives in /var/lib/agentguard instead. */
int ag_audit_key_path(const char *state_dir, char *out, size_t len)
{
	const char *e = getenv("AGENTGUARD_KEY_FILE");
	char def[AG_PATH_MAX];

	if (e && e[0] == '/')
		return ag_fmt(out, len, "%s", e);
	if (geteuid() == 0 && ag_default_state_dir(def, sizeof def) == 0 &&
	    strcmp(def, state_dir) == 0)
		return ag_fmt(out, len, "%s", AG_ROOT_KEY_FILE);
	return ag_fmt(out, len, "%s/key", state_dir);
}

/* A key left at STATE/key by an older agentguard, when the key now lives
 * elsewhere: moved there (linked, else copied), so the log keeps its key. */
static void key_move_old(const char *state_dir, const char *path)
{
	char old[AG_PATH_MAX], dir[AG_PATH_MAX];

	if (ag_fmt(old, sizeof old, "%s/key", state_dir) < 0 || strcmp(old, path) == 0 ||
	    access(old, F_OK) < 0 || ag_fmt(dir, sizeof dir, "%s", path) < 0)
		return;
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if (ag_mkdirs(dir, 0700) < 0)
			return;
	}
	if (link(old, path) == 0 || (errno == EXDEV && ag_copy_file(old, path, 0400) == 0))
		unlink(old);
}

static const struct keyed *key_of(sqlite3 *db)
{
	const struct keyed *k = NULL;

	pthread_mutex_lock(&keys_mu);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0] && !k; i++)
		if (keys[i].db == db)
			k = &keys[i];
	pthread_mutex_unlock(&keys_mu);
	return k;
}

static int unhex(const char *h, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(h + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

/* Read the key, or make it (create): 0, 1 (none, not made), -1. Made in a
 * temporary file and linked into place, so a reader never sees half. */
static int load_key(const char *state_dir, int create, unsigned char key[KEY_LEN],
		    char *err, size_t errlen)
{
	char path[AG_PATH_MAX], tmp[AG_PATH_MAX + 32], text[2 * KEY_LEN + 2];

	if (ag_audit_key_path(state_dir, path, sizeof path) < 0) {
		seterr(err, errlen, "the key's path is too long%s%s", "", NULL);
		return -1;
	}
	if (access(path, F_OK) < 0)
		key_move_old(state_dir, path);
	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			ssize_t n = read(fd, text, sizeof text);
			close(fd);
			if (n < 2 * KEY_LEN || unhex(text, key, KEY_LEN) < 0) {
				seterr(err, errlen, "the chain key %s is damaged%s", path, NULL);
				return -1;
			}
			return 0;
		}
		if (errno != ENOENT) {
			seterr(err, errlen, "cannot read the chain key %s: %s", path, strerror(errno));
			return -1;
		}
		if (!create)
			return 1;
		unsigned char k[KEY_LEN];
		if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k) {
			seterr(err, errlen, "no randomness for the chain key: %s%s", strerror(errno), NULL);
			return -1;
		}
		for (int i = 0; i < KEY_LEN; i++)
			snprintf(text + 2 * i, 3, "%02x", k[i]);
		text[2 * KEY_LEN] = '\n';
		char *slash = strrchr(path, '/');
		if (slash && slash != path) {
			*slash = 0;
			int made = ag_mkdirs(path, 0700);
			*slash = '/';
			if (made < 0) {
				seterr(err, errlen, "cannot make the chain key's directory for %s: %s",
				       path, strerror(errno));
				return -1;
			}
		}
		snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
		if (fd < 0) {
			seterr(err, errlen, "cannot make the chain key %s: %s", path, strerror(errno));
			return -1;
		}
		int ok = write(fd, text, 2 * KEY_LEN + 1) == 2 * KEY_LEN + 1 && fsync(fd) == 0;
		close(fd);
		if (ok && link(tmp, path) < 0 && errno != EEXIST)
			ok = 0;
		unlink(tmp);
		if (!ok) {
			seterr(err, errlen, "cannot make the chain key %s: %s", path, strerror(errno));
			return -1;
		}
	}
	seterr(err, errlen, "the chain key %s keeps changing%s", path, NULL);
	return -1;
}

static void key_attach(sqlite3 *db, const unsigned char key[KEY_LEN])
{
	char hex[AG_HASH_HEX];

	ag_sha256_buf_hex(key, KEY_LEN, hex);
	pthread_mutex_lock(&keys_mu);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if (keys[i].db)
			continue;
		keys[i].db = db;
		memcpy(keys[i].key, key, KEY_LEN);
		snprintf(keys[i].id, sizeof keys[i].id, "%.16s", hex);
		unsigned char ipad[64] = {0}, opad[64] = {0};
		memcpy(ipad, key, KEY_LEN);
		memcpy(opad, key, KEY_LEN);
		for (int j = 0; j < 64; j++) {
			ipad[j] ^= 0x36;
			opad[j] ^= 0x5c;
		}
		ag_sha256_init(&keys[i].inner);
		ag_sha256_update(&keys[i].inner, ipad, sizeof ipad);
		ag_sha256_init(&keys[i].outer);
		ag_sha256_update(&keys[i].outer, opad, sizeof opad);
		break;
	}
	pthread_mutex_unlock(&keys_mu);
}

static void key_detach(sqlite3 *db)
{
	pthread_mutex_lock(&keys_mu);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (keys[i].db == db)
			memset(&keys[i], 0, sizeof keys[i]);
	pthread_mutex_unlock(&keys_mu);
}

/* HMAC-SHA256 (RFC 2104) around the chain's own hashing. */
static void mac_begin(struct ag_sha256 *h, const struct keyed *k)
{
	if (k)
		*h = k->inner;
	else
		ag_sha256_init(h);
}

static void mac_end(struct ag_sha256 *h, const struct keyed *k, char out[AG_HASH_HEX])
{
	if (!k) {
		ag_sha256_hex(h, out);
		return;
	}
	unsigned char inner[32];
	ag_sha256_digest(h, inner);
	*h = k->outer;
	ag_sha256_update(h, inner, sizeof inner);
	ag_sha256_hex(h, out);
}

/* ---- the chain ---------------------------------------------------------- */

static void genesis_of(const char *session, char out[AG_HASH_HEX])
{
	struct ag_sha256 h;

	ag_sha256_init(&h);
	ag_sha256_update(&h, "agentguard session\n", 19);
	ag_sha256_update(&h, session, strlen(session));
	ag_sha256_hex(&h, out);
}

/* The columns an event's hash covers, in order. Verify reads them back by
 * these names, so this list is the definition of the chain. */
static const char *const chained[] = {
	"uid", "time_ns", "session", "pid", "ppid", "proc_start", "exe", "argv",
	"cwd", "op", "path", "target", "address", "host", "port", "sql",
	"sql_class", "database", "rule", "decision", "enforced", "reason",
	"errno", "snapshot", "latency_ns", "unguarded", "layer",
};
/* "layer" came later: absent (the library's rows) it adds nothing to the
 * hash, so rows written before it still verify. */
#define LAYER_COL (NCHAINED - 1)
#define NCHAINED ((int)(sizeof chained / sizeof chained[0]))

/* One column value as the hash sees it: NULL, an integer, or text. */
struct cval {
	int type;               /* SQLITE_NULL, SQLITE_INTEGER, SQLITE_TEXT */
	int64_t i;
	const char *s;
	size_t len;
};

/* What a row's hash reads, gathered into blocks: one nettle call per
 * kilobyte rather than five per column. */
struct hbuf {
	struct ag_sha256 *h;
	size_t n;
	char b[2048];
};

static void hput(struct hbuf *hb, const void *p, size_t len)
{
	if (hb->n + len > sizeof hb->b) {
		ag_sha256_update(hb->h, hb->b, hb->n);
		hb->n = 0;
		if (len > sizeof hb->b) {
			ag_sha256_update(hb->h, p, len);
			return;
		}
	}
	memcpy(hb->b + hb->n, p, len);
	hb->n += len;
}

/* Decimal, as printf's %lld / %zu would write it. */
static size_t put_dec(char *out, uint64_t u, int neg)
{
	char t[24];
	size_t n = 0, l = 0;

	do {
		t[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (neg)
		out[l++] = '-';
	while (n)
		out[l++] = t[--n];
	return l;
}

static void hash_event(const struct keyed *k, const char *prev, const struct cval *v,
		       char out[AG_HASH_HEX])
{
	static size_t namelen[NCHAINED];
	struct ag_sha256 h;
	struct hbuf hb;
	char num[24], pre[32];

	if (!namelen[0])
		for (int i = 0; i < NCHAINED; i++)
			namelen[i] = strlen(chained[i]);
	mac_begin(&h, k);
	hb.h = &h;
	hb.n = 0;
	hput(&hb, prev, strlen(prev));
	hput(&hb, "\n", 1);
	for (int i = 0; i < NCHAINED; i++) {
		/* name, then a length-prefixed value: no two rows hash alike. */
		hput(&hb, chained[i], namelen[i]);
		if (v[i].type == SQLITE_NULL && i == LAYER_COL)
			continue;
		if (v[i].type == SQLITE_NULL) {
			hput(&hb, "!\n", 2);
			continue;
		}
		const char *s = v[i].s;
		size_t len = v[i].len;
		if (v[i].type == SQLITE_INTEGER) {
			int64_t x = v[i].i;
			len = put_dec(num, x < 0 ? -(uint64_t)x : (uint64_t)x, x < 0);
			s = num;
		}
		pre[0] = ':';
		size_t pl = 1 + put_dec(pre + 1, len, 0);
		pre[pl++] = ':';
		hput(&hb, pre, pl);
		hput(&hb, s, len);
		hput(&hb, "\n", 1);
	}
	ag_sha256_update(&h, hb.b, hb.n);
	mac_end(&h, k, out);
}

/* ---- sessions ----------------------------------------------------------- */

static int exec1(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* Who and where: every session row says which machine, user and container
 * it ran on. Guarded processes write spools only this user can read in
 * (ingest refuses another uid's), so a session first seen in a spool ran
 * as the user that ingests it, on this machine. */
struct identity {
	char hostname[256], user[64], container[80];
	int64_t uid;
};

static struct identity me;
static pthread_once_t me_once = PTHREAD_ONCE_INIT;

static void identity_fill(void)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (gethostname(me.hostname, sizeof me.hostname - 1) < 0)
		me.hostname[0] = 0;
	me.uid = (int64_t)geteuid();
	if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &res) == 0 && res)
		snprintf(me.user, sizeof me.user, "%s", pw.pw_name);
	ag_container_id(me.container, sizeof me.container);
}

static const struct identity *identity(void)
{
	pthread_once(&me_once, identity_fill);
	return &me;
}

/* A mark in the export stream (tools/export.c): session start, end, halt,
 * placed after the newest event there is now. */
static int add_mark(sqlite3 *db, const char *session, const char *kind, int64_t t,
		    int has_exit, int exit_status)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db,
			       "INSERT INTO marks(session, kind, time_ns, after_event, events, head,"
			       " exit_status) SELECT ?1, ?2, ?3, (SELECT coalesce(max(id), 0) FROM events),"
			       " events, head, ?4 FROM sessions WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
		return -1;
	bind_text(st, 1, session);
	bind_text(st, 2, kind);
	sqlite3_bind_int64(st, 3, t);
	if (has_exit)
		sqlite3_bind_int(st, 4, exit_status);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	sqlite3_finalize(st);
	return rc;
}

/* Make sure a session row exists (a placeholder if its start was not seen
 * yet). Returns 0 or -1. */
static int ensure_session(sqlite3 *db, const char *id, int64_t start_ns)
{
	char g[AG_HASH_HEX];
	sqlite3_stmt *st;
	const struct identity *who = identity();
	int rc;

	genesis_of(id, g);
	if (sqlite3_prepare_v2(db,
			       "INSERT OR IGNORE INTO sessions(id, start_ns, genesis, head, hostname,"
			       " user, user_id, container) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, start_ns);
	bind_text(st, 3, g);
	bind_text(st, 4, g);
	bind_text(st, 5, who->hostname[0] ? who->hostname : NULL);
	bind_text(st, 6, who->user[0] ? who->user : NULL);
	sqlite3_bind_int64(st, 7, who->uid);
	bind_text(st, 8, who->container[0] ? who->container : NULL);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	int made = rc == 0 && sqlite3_changes(db) == 1;
	sqlite3_finalize(st);
	if (made && strcmp(id, AG_AUDIT_UNATTRIBUTED) != 0)
		rc = add_mark(db, id, "start", start_ns > 0 ? start_ns : ag_now_ns(), 0, 0);
	return rc;
}

/* Fill in the session row. From `agentguard run` (trusted: written before
 * the agent starts) every column; from a spool's header (written by the
 * session's own processes) only what is still unknown, so that no process
 * can move the workspace restore trusts, nor rename the rules. */
static int update_session(sqlite3 *db, const struct ag_session_info *s, int from_spool)
{
	sqlite3_stmt *st;
	int rc;

	if (ensure_session(db, s->id, s->start_ns) < 0)
		return -1;
	if (sqlite3_prepare_v2(db, from_spool ?
			       "UPDATE sessions SET argv=coalesce(argv, ?1), mode=coalesce(mode, ?2), "
			       "enforce=coalesce(enforce, ?3), rules=coalesce(rules, ?4), "
			       "rules_hash=coalesce(rules_hash, ?5), "
			       "workspace=coalesce(workspace, ?6), state_dir=coalesce(state_dir, ?7), "
			       "pid=coalesce(pid, ?8), start_ns=coalesce(start_ns, ?9) WHERE id=?12"
			       :
			       "UPDATE sessions SET argv=?1, mode=?2, enforce=?3, rules=?4, "
			       "rules_hash=?5, workspace=?6, state_dir=?7, pid=?8, start_ns=?9, "
			       "kernel=coalesce(?10, kernel), floor=coalesce(?11, floor), "
			       "home=coalesce(?13, home) WHERE id=?12",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	bind_text(st, 1, s->argv_json);
	bind_text(st, 2, s->mode);
	sqlite3_bind_int(st, 3, s->enforce);
	bind_text(st, 4, s->rules);
	bind_text(st, 5, s->rules_hash);
	bind_text(st, 6, s->workspace);
	bind_text(st, 7, s->state_dir);
	sqlite3_bind_int64(st, 8, s->pid);
	sqlite3_bind_int64(st, 9, s->start_ns);
	if (!from_spool) {
		bind_text(st, 10, s->kernel);
		bind_text(st, 11, s->floor);
		bind_text(st, 13, s->home);
	}
	bind_text(st, 12, s->id);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	sqlite3_finalize(st);
	return rc;
}

int ag_audit_session_begin(sqlite3 *db, const struct ag_session_info *s,
			   char *err, size_t errlen)
{
	if (update_session(db, s, 0) < 0) {
		seterr(err, errlen, "cannot record session %s: %s", s->id, sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

int ag_audit_session_end(sqlite3 *db, const char *id, int64_t end_ns,
			 int exit_status, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int rc = -1;
	int known = exit_status != AG_EXIT_UNKNOWN;

	if (sqlite3_prepare_v2(db, "UPDATE sessions SET end_ns=?, exit_status=? WHERE id=?",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, end_ns);
		if (known)
			sqlite3_bind_int(st, 2, exit_status);
		bind_text(st, 3, id);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
		sqlite3_finalize(st);
	}
	if (rc == 0)
		rc = add_mark(db, id, "end", end_ns, known, exit_status);
	if (rc < 0)
		seterr(err, errlen, "cannot record the end of session %s: %s", id,
		       sqlite3_errmsg(db));
	return rc;
}

int ag_audit_latest_session(sqlite3 *db, char *out, size_t outlen)
{
	sqlite3_stmt *st;
	int rc = -1;

	/* An agent's session before a restore's: a restore says what it did
	 * itself, and `report` after it is about what the agent did. */
	if (sqlite3_prepare_v2(db, "SELECT id FROM sessions ORDER BY coalesce(mode, '') = 'restore', "
			       "start_ns DESC, rowid DESC LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
		snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

/* ---- ingest ------------------------------------------------------------- */

/* One kind of event and how many of it this transaction added (see
 * tallies in audit.h); the strings point into g->tally_text. */
struct tally {
	const char *session, *op, *decision, *layer;
	int enforced, snap, failed, lost;
	long n;
};
#define TALLY_KINDS 32

struct ingest {
	sqlite3 *db;
	struct tally tally[TALLY_KINDS];
	int ntally;
	char tally_text[TALLY_KINDS * 4][AG_SESSION_ID_MAX];
	const char *state_dir;
	sqlite3_stmt *ins, *snap, *head_get, *head_set, *gap, *tally_add;
	/* the process the spool belongs to, from its PROC record */
	char *exe, *argv, *cwd;
	int64_t ppid;
	/* chain head of the session being appended to */
	char session[AG_SESSION_ID_MAX];
	char head[AG_HASH_HEX];
	/* Rows appended to g->session whose head and count the sessions row
	 * does not have yet: written once, before anything reads them
	 * (flush_head), not once a row. */
	long pending;
	char last_uid[300];         /* the event a SNAPSHOT record belongs to */
	const char *cur;            /* the session the spool's rows go to */
	long count;
	long bad;                   /* records left out here (a malformed session id) */
	unsigned long recs;
	int failed, interrupted;
	int halt_marked;            /* for g->session */
	/* Records of a spool below this offset are the supervisor's copy's
	 * (STATE/kspool), already read: the process may have changed them. */
	uint64_t skip_below;
};

static char *dup_field(const struct ag_rec_view *rv, int tag)
{
	if (!rv->field[tag])
		return NULL;
	char *s = malloc(rv->flen[tag] + 1);
	if (s) {
		memcpy(s, rv->field[tag], rv->flen[tag]);
		s[rv->flen[tag]] = 0;
	}
	return s;
}

/* NUL-separated words -> JSON array text (malloc'd). An argv cut at
 * AG_ARGV_MAX ends with an object, {"truncated_bytes": N,
 * "truncated_words": M}: every real word is a string, so the cut can
 * never be mistaken for (or forged by) an argument. */
static char *argv_json(const struct ag_rec_view *rv)
{
	const unsigned char *p = rv->field[AG_T_ARGV];
	uint32_t len = rv->flen[AG_T_ARGV];
	json_t *a = json_array();
	uint32_t i = 0;

	while (i < len) {
		const char *w = (const char *)p + i;
		size_t l = strnlen(w, len - i);
		json_array_append_new(a, json_stringn(w, l));
		i += (uint32_t)l + 1;
	}
	if (rv->field[AG_T_ARGV_CUT] && rv->flen[AG_T_ARGV_CUT] == 16) {
		int64_t cut[2];
		memcpy(cut, rv->field[AG_T_ARGV_CUT], 16);
		json_array_append_new(a, json_pack("{s:I,s:I}", "truncated_bytes", (json_int_t)cut[0],
						   "truncated_words", (json_int_t)cut[1]));
	}
	char *s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return s;
}

/* The session row's head and event count, brought up to what was
 * appended since the last flush. */
static int flush_head(struct ingest *g)
{
	if (!g->pending)
		return 0;
	sqlite3_reset(g->head_set);
	bind_text(g->head_set, 1, g->head);
	sqlite3_bind_int64(g->head_set, 2, g->pending);
	bind_text(g->head_set, 3, g->session);
	int rc = sqlite3_step(g->head_set) == SQLITE_DONE ? 0 : -1;
	sqlite3_reset(g->head_set);
	if (rc == 0)
		g->pending = 0;
	return rc;
}

/* A transaction of rows from one file begins: nothing is known of the
 * session rows, which another writer may have moved since. */
static void ingest_reset(struct ingest *g)
{
	g->count = g->bad = 0;
	g->failed = 0;
	g->pending = 0;
	g->ntally = 0;
	g->session[0] = g->head[0] = g->last_uid[0] = 0;
	free(g->exe); free(g->argv); free(g->cwd);
	g->exe = g->argv = g->cwd = NULL;
	g->ppid = 0;
}

static struct cval ts(const char *s);

/* Add n to one kind's tally. */
static int tally_upsert(struct ingest *g, const char *session, const struct cval *op,
		     const struct cval *dec, const struct cval *layer, int enforced, int snap,
		     int failed, int is_lost, long n)
{
	sqlite3_stmt *st = g->tally_add;

	sqlite3_reset(st);
	bind_text(st, 1, session);
	sqlite3_bind_text(st, 2, op->s, (int)op->len, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, dec->s, (int)dec->len, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 4, enforced);
	sqlite3_bind_text(st, 5, layer->s, (int)layer->len, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 6, snap);
	sqlite3_bind_int(st, 7, failed);
	sqlite3_bind_int(st, 8, is_lost);
	sqlite3_bind_int64(st, 9, n);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int flush_tallies(struct ingest *g)
{
	for (int i = 0; i < g->ntally; i++) {
		const struct tally *t = &g->tally[i];
		struct cval op = ts(t->op), dec = ts(t->decision), layer = ts(t->layer);
		if (tally_upsert(g, t->session, &op, &dec, &layer, t->enforced, t->snap, t->failed,
			      t->lost, t->n) < 0)
			return -1;
	}
	g->ntally = 0;
	return 0;
}

/* A copy of text (len bytes) in g->tally_text, or NULL when it is too
 * long to keep there. */
static const char *tally_str(struct ingest *g, int *used, const char *text, size_t len)
{
	if (*used >= TALLY_KINDS * 4 || len >= AG_SESSION_ID_MAX)
		return NULL;
	char *out = g->tally_text[(*used)++];
	memcpy(out, text, len);
	out[len] = 0;
	return out;
}

/* Positions in chained[] of the columns the tallies read. */
enum { COL_OP = 9, COL_SQL_CLASS = 16, COL_DATABASE = 17, COL_DECISION = 19,
       COL_ENFORCED = 20, COL_ERRNO = 22, COL_SNAPSHOT = 23 };

static int same(const char *a, const struct cval *v)
{
	return strlen(a) == v->len && memcmp(a, v->s, v->len) == 0;
}

static int is(const struct cval *v, const char *s)
{
	return v->type == SQLITE_TEXT && same(s, v);
}

/* AG_AUDIT_LOST of one row, in C (verify checks the two agree). */
static int lost(const struct cval *v)
{
	static const char *const changing[] = {
		"update", "delete", "update_all", "delete_all", "truncate", "drop_table",
		"drop_database", "alter_drop", "ddl",
	};
	const struct cval *dec = &v[COL_DECISION], *op = &v[COL_OP], *db = &v[COL_DATABASE];
	int allowing = is(dec, "allow") || is(dec, "log");

	if (!allowing || v[COL_SNAPSHOT].type != SQLITE_NULL ||
	    (v[COL_ERRNO].type == SQLITE_INTEGER && v[COL_ERRNO].i != 0))
		return 0;
	if (is(op, "sql")) {
		int changes = 0;
		for (size_t i = 0; i < sizeof changing / sizeof changing[0]; i++)
			changes |= is(&v[COL_SQL_CLASS], changing[i]);
		int file = db->type == SQLITE_TEXT && db->len > 0 && db->s[0] == '/';
		if (changes && !file && !is(db, ":memory:"))
			return 1;
	}
	return is(dec, "log") && (is(op, "delete") || is(op, "rename") || is(op, "truncate") ||
				  is(op, "write"));
}

/* Count one event in its kind. The strings are short (op, decision,
 * layer, a session id): one that is not goes in as it is, at once. */
static int tally(struct ingest *g, const char *session, const struct cval *op,
		 const struct cval *dec, const struct cval *layer, int enforced, int snap,
		 int failed, int is_lost)
{
	static const struct cval none = {.type = SQLITE_TEXT, .s = "", .len = 0};
	static const struct cval library = {.type = SQLITE_TEXT, .s = "library", .len = 7};
	op = op->type == SQLITE_NULL ? &none : op;
	dec = dec->type == SQLITE_NULL ? &none : dec;
	layer = layer->type == SQLITE_NULL ? &library : layer;
	for (int i = 0; i < g->ntally; i++) {
		struct tally *t = &g->tally[i];
		if (t->enforced == enforced && t->snap == snap && t->failed == failed &&
		    t->lost == is_lost && same(t->op, op) && same(t->decision, dec) &&
		    same(t->layer, layer) && strcmp(t->session, session) == 0) {
			t->n++;
			return 0;
		}
	}
	if (g->ntally == TALLY_KINDS && flush_tallies(g) < 0)
		return -1;
	int used = g->ntally * 4;   /* four free strings for each free kind */
	struct tally t = {
		.session = tally_str(g, &used, session, strlen(session)),
		.op = tally_str(g, &used, op->s, op->len),
		.decision = tally_str(g, &used, dec->s, dec->len),
		.layer = tally_str(g, &used, layer->s, layer->len),
		.enforced = enforced, .snap = snap, .failed = failed, .lost = is_lost, .n = 1,
	};
	if (t.session && t.op && t.decision && t.layer) {
		g->tally[g->ntally++] = t;
		return 0;
	}
	/* Too long to keep here: straight in. */
	return tally_upsert(g, session, op, dec, layer, enforced, snap, failed, is_lost, 1);
}

static int commit(struct ingest *g)
{
	return flush_head(g) < 0 || flush_tallies(g) < 0 ? -1 : exec1(g->db, "COMMIT");
}

static int load_head(struct ingest *g, const char *session, int64_t t)
{
	if (g->session[0] && strcmp(g->session, session) == 0)
		return 0;
	if (flush_head(g) < 0)
		return -1;
	g->halt_marked = 0;
	/* The placeholder is no run of its own: it must not become "the
	 * latest session" that report shows by default. */
	if (ensure_session(g->db, session, strcmp(session, AG_AUDIT_UNATTRIBUTED) ? t : 0) < 0)
		return -1;
	sqlite3_reset(g->head_get);
	bind_text(g->head_get, 1, session);
	if (sqlite3_step(g->head_get) != SQLITE_ROW)
		return -1;
	const unsigned char *h = sqlite3_column_text(g->head_get, 0);
	snprintf(g->head, sizeof g->head, "%s", h ? (const char *)h : "");
	snprintf(g->session, sizeof g->session, "%s", session);
	sqlite3_reset(g->head_get);
	return 0;
}

static struct cval tv(const unsigned char *s, uint32_t len)
{
	if (!s)
		return (struct cval){.type = SQLITE_NULL};
	return (struct cval){.type = SQLITE_TEXT, .s = (const char *)s, .len = len};
}

static struct cval ts(const char *s)
{
	return s ? (struct cval){.type = SQLITE_TEXT, .s = s, .len = strlen(s)}
		 : (struct cval){.type = SQLITE_NULL};
}

static struct cval iv(int64_t i)
{
	return (struct cval){.type = SQLITE_INTEGER, .i = i};
}

/* A snapshot's metadata, and the sha256 of what the store holds. */
static int insert_snapshot(struct ingest *g, const char *session, const char *uid,
			   const struct ag_rec_view *rv)
{
	const struct ag_rec *r = rv->rec;
	sqlite3_stmt *st;
	char *store = dup_field(rv, AG_T_STORE);
	char sha[AG_HASH_HEX] = "", abs[AG_PATH_MAX];
	if (store && ag_fmt(abs, sizeof abs, "%s/%s", g->state_dir, store) == 0) {
		struct stat stt;
		if (lstat(abs, &stt) == 0 && S_ISREG(stt.st_mode) &&
		    ag_sha256_file_hex(abs, sha) < 0)
			sha[0] = 0;
	}
	st = g->snap;
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, (const char *)rv->field[AG_T_SNAP_ID],
			  (int)rv->flen[AG_T_SNAP_ID], SQLITE_TRANSIENT);
	bind_text(st, 2, session);
	bind_text(st, 3, uid);
	sqlite3_bind_text(st, 4, (const char *)rv->field[AG_T_KIND],
			  (int)rv->flen[AG_T_KIND], SQLITE_TRANSIENT);
	if (rv->field[AG_T_SNAPSHOT])
		sqlite3_bind_text(st, 5, (const char *)rv->field[AG_T_SNAPSHOT],
				  (int)rv->flen[AG_T_SNAPSHOT], SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, 5);
	sqlite3_bind_int64(st, 6, ag_rec_int(rv, AG_T_MODE_BITS));
	sqlite3_bind_int64(st, 7, ag_rec_int(rv, AG_T_UID));
	sqlite3_bind_int64(st, 8, ag_rec_int(rv, AG_T_GID));
	sqlite3_bind_int64(st, 9, ag_rec_int(rv, AG_T_ATIME));
	sqlite3_bind_int64(st, 10, ag_rec_int(rv, AG_T_MTIME));
	sqlite3_bind_int64(st, 11, ag_rec_int(rv, AG_T_SIZE));
	bind_text(st, 12, sha[0] ? sha : NULL);
	if (rv->field[AG_T_LINK])
		sqlite3_bind_text(st, 13, (const char *)rv->field[AG_T_LINK],
				  (int)rv->flen[AG_T_LINK], SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, 13);
	bind_text(st, 14, store);
	sqlite3_bind_int64(st, 15, r->time_ns);
	if (rv->field[AG_T_PARENT_MTIME]) {
		sqlite3_bind_int64(st, 16, ag_rec_int(rv, AG_T_PARENT_ATIME));
		sqlite3_bind_int64(st, 17, ag_rec_int(rv, AG_T_PARENT_MTIME));
	} else {
		sqlite3_bind_null(st, 16);
		sqlite3_bind_null(st, 17);
	}
	if (rv->field[AG_T_RDEV])
		sqlite3_bind_int64(st, 18, ag_rec_int(rv, AG_T_RDEV));
	else
		sqlite3_bind_null(st, 18);
	if (rv->field[AG_T_BTIME])
		sqlite3_bind_int64(st, 19, ag_rec_int(rv, AG_T_BTIME));
	else
		sqlite3_bind_null(st, 19);
	int ok = sqlite3_step(st) == SQLITE_DONE;
	free(store);
	return ok ? 0 : -1;
}

static int ingest_event(struct ingest *g, const struct ag_spool_view *sv,
			const struct ag_rec_view *rv)
{
	const struct ag_rec *r = rv->rec;
	const char *session = g->cur;
	char uid[300], hash[AG_HASH_HEX];
	char *xargv = NULL;
	struct cval v[NCHAINED];
	int rc = -1;

	size_t ul = strlen(sv->name);
	if (ul > sizeof uid - 24)
		ul = sizeof uid - 24;
	memcpy(uid, sv->name, ul);
	uid[ul++] = ':';
	uid[ul + put_dec(uid + ul, r->seq, 0)] = 0;
	if (load_head(g, session, r->time_ns) < 0)
		return -1;

	if (rv->field[AG_T_ARGV])
		xargv = argv_json(rv);
#define F(tag) tv(rv->field[tag], rv->flen[tag])
	int k = 0;
	v[k++] = ts(uid);
	v[k++] = iv(r->time_ns);
	v[k++] = ts(session);
	v[k++] = iv(rv->field[AG_T_PID] ? ag_rec_int(rv, AG_T_PID) : sv->hdr->pid);
	v[k++] = iv(rv->field[AG_T_PPID] ? ag_rec_int(rv, AG_T_PPID) : g->ppid);
	v[k++] = iv(rv->field[AG_T_PROC_START] ? ag_rec_int(rv, AG_T_PROC_START)
				      : (int64_t)sv->hdr->proc_start);
	v[k++] = rv->field[AG_T_EXE] ? F(AG_T_EXE) : ts(g->exe);
	v[k++] = ts(xargv ? xargv : g->argv);
	v[k++] = rv->field[AG_T_CWD] ? F(AG_T_CWD) : ts(g->cwd);
	v[k++] = F(AG_T_OP);
	v[k++] = F(AG_T_PATH);
	v[k++] = F(AG_T_TARGET);
	v[k++] = F(AG_T_ADDRESS);
	v[k++] = F(AG_T_HOST);
	v[k++] = rv->field[AG_T_PORT] ? iv(ag_rec_int(rv, AG_T_PORT)) : tv(NULL, 0);
	v[k++] = F(AG_T_SQL);
	v[k++] = F(AG_T_SQL_CLASS);
	v[k++] = F(AG_T_DATABASE);
	v[k++] = F(AG_T_RULE);
	v[k++] = F(AG_T_DECISION);
	v[k++] = iv(ag_rec_int(rv, AG_T_ENFORCED));
	v[k++] = F(AG_T_REASON);
	v[k++] = r->err < 0 ? tv(NULL, 0) : iv(r->err);
	v[k++] = F(AG_T_SNAP_ID);
	v[k++] = iv(r->latency_ns);
	v[k++] = F(AG_T_UNGUARDED);
	v[k++] = F(AG_T_LAYER);
#undef F
	hash_event(key_of(g->db), g->head, v, hash);

	sqlite3_stmt *st = g->ins;
	sqlite3_reset(st);
	for (int i = 0; i < NCHAINED; i++) {
		if (v[i].type == SQLITE_NULL)
			sqlite3_bind_null(st, i + 1);
		else if (v[i].type == SQLITE_INTEGER)
			sqlite3_bind_int64(st, i + 1, v[i].i);
		else
			/* Static: the record, uid and head outlive the step. */
			sqlite3_bind_text(st, i + 1, v[i].s, (int)v[i].len, SQLITE_STATIC);
	}
	sqlite3_bind_text(st, NCHAINED + 1, g->head, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, NCHAINED + 2, hash, AG_HASH_HEX - 1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	if (sqlite3_changes(g->db) == 0) {
		/* Already in (a live spool ingested before): the chain has it. */
		rc = 0;
		goto out;
	}
	memcpy(g->head, hash, sizeof hash);
	g->pending++;
	if (tally(g, session, &v[COL_OP], &v[COL_DECISION], &v[LAYER_COL],
		  v[COL_ENFORCED].i != 0, v[COL_SNAPSHOT].type != SQLITE_NULL, r->err > 0,
		  lost(v)) < 0)
		goto out;
	/* The breaker's first denial marks the session halted in the stream. */
	if (rv->field[AG_T_REASON] && rv->flen[AG_T_REASON] >= 14 &&
	    memcmp(rv->field[AG_T_REASON], "session halted", 14) == 0 && !g->halt_marked) {
		sqlite3_stmt *hm;
		int seen_halt = 0;
		if (sqlite3_prepare_v2(g->db, "SELECT 1 FROM marks WHERE session=? AND kind='halt'",
				       -1, &hm, NULL) != SQLITE_OK)
			goto out;
		bind_text(hm, 1, session);
		seen_halt = sqlite3_step(hm) == SQLITE_ROW;
		sqlite3_finalize(hm);
		if (!seen_halt && (flush_head(g) < 0 ||
				   add_mark(g->db, session, "halt", r->time_ns, 0, 0) < 0))
			goto out;
		g->halt_marked = 1;
	}

	if (rv->field[AG_T_SNAP_ID] && rv->field[AG_T_KIND] &&
	    insert_snapshot(g, session, uid, rv) < 0)
		goto out;
	memcpy(g->last_uid, uid, strlen(uid) + 1);
	g->count++;
	rc = 0;
out:
	free(xargv);
	return rc;
}

/* Where warnings about the spool directory go, and who may cut an ingest
 * short (see audit.h). */
static void warn_stderr(const char *msg)
{
	fprintf(stderr, "agentguard: warning: %s\n", msg);
}

static void (*warn_fn)(const char *msg) = warn_stderr;
static int (*interrupt_fn)(void);

void ag_audit_set_warn(void (*fn)(const char *msg))
{
	warn_fn = fn ? fn : warn_stderr;
}

void ag_audit_set_interrupt(int (*fn)(void))
{
	interrupt_fn = fn;
}

static int interrupted(struct ingest *g)
{
	if (!g->interrupted && interrupt_fn && interrupt_fn())
		g->interrupted = 1;
	return g->interrupted;
}

static __attribute__((format(printf, 1, 2))) void warn(const char *fmt, ...)
{
	char msg[3 * AG_PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	warn_fn(msg);
}

static int add_gap(struct ingest *g, const char *uid, const char *session, int64_t t,
		   int64_t pid, const char *what)
{
	sqlite3_reset(g->gap);
	bind_text(g->gap, 1, uid);
	bind_text(g->gap, 2, session);
	sqlite3_bind_int64(g->gap, 3, t);
	sqlite3_bind_int64(g->gap, 4, pid);
	bind_text(g->gap, 5, what);
	return sqlite3_step(g->gap) == SQLITE_DONE ? 0 : -1;
}

static int ingest_rec(void *ctx, const struct ag_spool_view *sv, const struct ag_rec_view *rv)
{
	struct ingest *g = ctx;

	/* A big spool takes a while: a second ^C must not wait for its end. */
	if (++g->recs % 1024 == 0 && interrupted(g))
		return 1;
	if (rv->off < g->skip_below)
		return 0;
	switch (rv->rec->type) {
	case AG_REC_PROC:
		free(g->exe);
		free(g->argv);
		free(g->cwd);
		g->exe = dup_field(rv, AG_T_EXE);
		g->cwd = dup_field(rv, AG_T_CWD);
		g->argv = rv->field[AG_T_ARGV] ? argv_json(rv) : NULL;
		g->ppid = ag_rec_int(rv, AG_T_PPID);
		return 0;
	case AG_REC_SESSION: {
		char *id = dup_field(rv, AG_T_SESSION);
		if (!id || strlen(id) != rv->flen[AG_T_SESSION] || !ag_session_id_ok(id)) {
			/* A row under a made-up id would fail verify. */
			free(id);
			g->bad++;
			return 0;
		}
		char *mode = dup_field(rv, AG_T_MODE);
		char *rules = dup_field(rv, AG_T_RULES), *hash = dup_field(rv, AG_T_RULES_HASH);
		char *ws = dup_field(rv, AG_T_WORKSPACE), *sd = dup_field(rv, AG_T_STATE_DIR);
		char *argv = rv->field[AG_T_ARGV] ? argv_json(rv) : NULL;
		struct ag_session_info si = {
			.id = id, .argv_json = argv, .mode = mode,
			.enforce = (int)ag_rec_int(rv, AG_T_ENFORCE), .rules = rules,
			.rules_hash = hash, .workspace = ws, .state_dir = sd,
			.pid = sv->hdr->pid, .start_ns = ag_rec_int(rv, AG_T_START),
		};
		int rc = flush_head(g) < 0 ? -1 : update_session(g->db, &si, 1);
		free(id); free(mode); free(rules); free(hash); free(ws); free(sd); free(argv);
		return rc < 0 ? (g->failed = 1, -1) : 0;
	}
	case AG_REC_EVENT:
		if (ingest_event(g, sv, rv) < 0) {
			g->failed = 1;
			return -1;
		}
		return 0;
	case AG_REC_SNAPSHOT:
		if (rv->field[AG_T_SNAP_ID] && rv->field[AG_T_KIND] && g->last_uid[0] &&
		    insert_snapshot(g, g->cur, g->last_uid, rv) < 0) {
			g->failed = 1;
			return -1;
		}
		return 0;
	case AG_REC_GAP: {
		char *what = dup_field(rv, AG_T_WHAT), uid[300];
		/* Keyed like events: ingesting a live spool twice adds it once. */
		snprintf(uid, sizeof uid, "%s:%" PRIu64, sv->name, rv->rec->seq);
		int rc = add_gap(g, uid, g->cur, rv->rec->time_ns, sv->hdr->pid, what);
		free(what);
		return rc < 0 ? (g->failed = 1, -1) : 0;
	}
	default:
		return 0;
	}
}

/* A spool is finished when no process maps it any more: its writer exited,
 * was killed, or exec'd into a new image (which writes a new spool). Its
 * creator's pid is not enough: a fork child appends to its parent's spool
 * and may outlive it. So one pass over /proc marks each of our spools that
 * some process maps (by name: a writer in another mount namespace sees
 * another path). NULL if /proc cannot be read: then every spool counts as
 * live and nothing is deleted. names is sorted and not empty. */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static unsigned char *live_marks(char *const *names, size_t n)
{
	unsigned char *live = calloc(n, 1);
	DIR *proc = opendir("/proc");

	if (!live || !proc) {
		free(live);
		if (proc)
			closedir(proc);
		return NULL;
	}
	struct dirent *d;
	while ((d = readdir(proc))) {
		if (d->d_name[0] < '0' || d->d_name[0] > '9')
			continue;
		char path[300], line[AG_PATH_MAX + 256];
		if (ag_fmt(path, sizeof path, "/proc/%s/maps", d->d_name) < 0)
			continue;
		FILE *f = fopen(path, "re");
		if (!f)
			continue;   /* gone, or not ours to read */
		while (fgets(line, sizeof line, f)) {
			size_t l = strcspn(line, "\n");
			line[l] = 0;
			if (l > 10 && strcmp(line + l - 10, " (deleted)") == 0)
				line[l -= 10] = 0;
			char *base = strrchr(line, '/');
			if (!base || l < 6 || strcmp(line + l - 6, ".spool") != 0)
				continue;
			base++;
			char **hit = bsearch(&base, names, n, sizeof *names, cmp_str);
			if (hit)
				live[hit - names] = 1;
		}
		fclose(f);
	}
	closedir(proc);
	return live;
}

static int is_spool_name(const char *name)
{
	size_t n = strlen(name);
	return name[0] != '.' && n > 6 && strcmp(name + n - 6, ".spool") == 0;
}

/* The sorted *.spool names in the directory open on dfd; -1 on error. */
static long list_spools(int dfd, char ***out)
{
	int fd = dup(dfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	char **v = NULL;
	size_t n = 0, cap = 0;

	*out = NULL;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	struct dirent *d;
	while ((d = readdir(dir))) {
		if (!is_spool_name(d->d_name))
			continue;
		if (n == cap) {
			size_t c = cap ? cap * 2 : 64;
			char **nv = realloc(v, c * sizeof *v);
			if (!nv)
				break;
			v = nv;
			cap = c;
		}
		if ((v[n] = strdup(d->d_name)))
			n++;
	}
	closedir(dir);
	if (n > 1)
		qsort(v, n, sizeof *v, cmp_str);
	*out = v;
	return (long)n;
}

/* Where a file that is not a readable spool of ours is reported: the
 * session its name claims (<session>.<pid>.<random>.spool) when the log
 * knows that session, else the placeholder. */
static const char *claimed_session(struct ingest *g, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s", name);
	char *end = strrchr(buf, '.');
	for (int k = 0; k < 3 && end; k++) {
		*end = 0;
		end = k < 2 ? strrchr(buf, '.') : NULL;
	}
	if (ag_session_id_ok(buf)) {
		sqlite3_stmt *st;
		int known = 0;
		if (sqlite3_prepare_v2(g->db, "SELECT 1 FROM sessions WHERE id=?", -1, &st,
				       NULL) == SQLITE_OK) {
			bind_text(st, 1, buf);
			known = sqlite3_step(st) == SQLITE_ROW;
			sqlite3_finalize(st);
		}
		if (known)
			return buf;
	}
	return AG_AUDIT_UNATTRIBUTED;
}

/* Move name aside into spool/damaged/ (never over another file there);
 * the name it got into out, or -1 with errno. A symlink moves as itself:
 * what it points to is never touched. */
static int move_aside(int dfd, const char *name, char *out, size_t outlen)
{
	if (mkdirat(dfd, "damaged", 0700) < 0 && errno != EEXIST)
		return -1;
	int ddir = openat(dfd, "damaged", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ddir < 0)
		return -1;
	int rc = -1;
	for (int k = 0; k < 100; k++) {
		if (k)
			snprintf(out, outlen, "%s.%d", name, k);
		else
			snprintf(out, outlen, "%s", name);
		rc = renameat2(dfd, name, ddir, out, RENAME_NOREPLACE);
		if (rc == 0 || errno != EEXIST)
			break;
	}
	int e = errno;
	close(ddir);
	errno = e;
	return rc;
}

static const char *kind_of(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFLNK: return "a symbolic link";
	case S_IFDIR: return "a directory";
	case S_IFIFO: return "a FIFO";
	case S_IFSOCK: return "a socket";
	case S_IFCHR: return "a character device";
	case S_IFBLK: return "a block device";
	default: return "not a regular file";
	}
}

enum { SP_OK, SP_GONE, SP_ALIEN, SP_LEAVE };

/* Open a directory entry as a spool without ever blocking or following it:
 * SP_OK with fd and st, SP_GONE, SP_ALIEN (not a spool of ours: why says
 * what it is, it goes aside) or SP_LEAVE (cannot be read now: why). */
static int open_entry(int dfd, const char *name, uid_t owner, int *fd, struct stat *st,
		      char *why, size_t whylen)
{
	struct stat fst;

	*fd = -1;
	if (fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return SP_GONE;
		snprintf(why, whylen, "cannot be examined: %s", strerror(errno));
		return SP_LEAVE;
	}
	if (S_ISLNK(st->st_mode)) {
		char target[AG_PATH_MAX];
		ssize_t n = readlinkat(dfd, name, target, sizeof target - 1);
		target[n > 0 ? n : 0] = 0;
		snprintf(why, whylen, "is a symbolic link (to %s), not a spool: it was not followed",
			 target);
		return SP_ALIEN;
	}
	if (!S_ISREG(st->st_mode)) {
		snprintf(why, whylen, "is %s, not a spool file", kind_of(st->st_mode));
		return SP_ALIEN;
	}
	if (st->st_uid != owner && st->st_uid != geteuid()) {
		snprintf(why, whylen, "belongs to uid %u, not to the owner of the spool directory "
			 "(uid %u): not written by a guarded process", (unsigned)st->st_uid,
			 (unsigned)owner);
		return SP_ALIEN;
	}
	if (st->st_nlink != 1) {
		/* Ours have one name; another would be ingested twice, or be a
		 * file elsewhere (audit.db itself) under a spool's name. */
		snprintf(why, whylen, "has %lu names (a hard link), which no spool has",
			 (unsigned long)st->st_nlink);
		return SP_ALIEN;
	}
	if (st->st_size > AG_SPOOL_READ_MAX) {
		snprintf(why, whylen, "is %lld bytes, bigger than any spool",
			 (long long)st->st_size);
		return SP_ALIEN;
	}
	*fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (*fd < 0) {
		if (errno == ENOENT)
			return SP_GONE;
		snprintf(why, whylen, "cannot be opened: %s", strerror(errno));
		return SP_LEAVE;
	}
	if (fstat(*fd, &fst) < 0 || fst.st_dev != st->st_dev || fst.st_ino != st->st_ino ||
	    !S_ISREG(fst.st_mode)) {
		close(*fd);
		*fd = -1;
		snprintf(why, whylen, "changed while it was being opened");
		return SP_LEAVE;
	}
	*st = fst;
	return SP_OK;
}

/* "N bytes and M records could not be read" from what the reader found. */
static void damage_words(const struct ag_spool_damage *d, long bad, char *out, size_t len)
{
	int n = 0;

	out[0] = 0;
#define ADD(...) (n += snprintf(out + n, len > (size_t)n ? len - (size_t)n : 0, __VA_ARGS__))
	if (d->bytes)
		ADD("%s%" PRIu64 " bytes held no readable record", n ? "; " : "", d->bytes);
	if (d->records)
		ADD("%s%" PRIu64 " records were malformed or numbered twice", n ? "; " : "",
		    d->records);
	if (bad)
		ADD("%s%ld session records named no valid session", n ? "; " : "", bad);
	if (d->unfinished)
		ADD("%s%" PRIu64 " records were never completed by their writer", n ? "; " : "",
		    d->unfinished);
	if (d->missing)
		ADD("%sthe file ends %" PRIu64 " bytes short of what its header counts",
		    n ? "; " : "", d->missing);
	if (d->unmarked)
		ADD("%s%" PRIu64 " bytes of records lay past the end its header marks",
		    n ? "; " : "", d->unmarked);
#undef ADD
}

/* While ingesting, a busy audit.db is waited for (10 s, as everywhere)
 * only as long as nobody asks us to stop. */
static int busy_wait(void *ctx, int count)
{
	struct ingest *g = ctx;

	if (count >= 1000 || interrupted(g))
		return 0;
	usleep(10000);
	return 1;
}

/* The statements an ingest uses. */
static int prepare_ingest(struct ingest *g)
{
	sqlite3_busy_handler(g->db, busy_wait, g);
	return (sqlite3_prepare_v2(g->db,
			       "INSERT INTO events(uid, time_ns, session, pid, ppid, proc_start,"
			       " exe, argv, cwd, op, path, target, address, host, port, sql,"
			       " sql_class, database, rule, decision, enforced, reason, errno,"
			       " snapshot, latency_ns, unguarded, layer, prev_hash, hash) VALUES(?,?,?,?,?,"
			       "?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
			       /* Ingested before (a live spool read twice): left as it is. */
			       " ON CONFLICT(uid) DO NOTHING", -1, &g->ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(g->db,
			       "INSERT OR IGNORE INTO snapshots(id, session, event_uid, kind, path,"
			       " mode, uid, gid, atime_ns, mtime_ns, size, sha256, link_target,"
			       " store, created_ns, parent_atime_ns, parent_mtime_ns, rdev, btime_ns)"
			       " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
			       -1, &g->snap, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(g->db, "SELECT head FROM sessions WHERE id=?", -1, &g->head_get,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(g->db, "UPDATE sessions SET head=?1, events=events+?2 WHERE id=?3",
			       -1, &g->head_set, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(g->db, "INSERT OR IGNORE INTO gaps(uid, session, time_ns, pid, what)"
				   " VALUES(?,?,?,?,?)",
			       -1, &g->gap, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(g->db, "INSERT INTO tallies VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT"
			       " DO UPDATE SET n = n + excluded.n", -1, &g->tally_add,
			       NULL) != SQLITE_OK) ? -1 : 0;
}

/* The supervisor's copy of spool `name` (lib/guard.c hand_over), if there
 * is one: its records into the log, and *copied := where they end (0:
 * none). -1 if it cannot be read, or the log not written. */
static int ingest_copy(struct ingest *g, int kdfd, const char *name, uint64_t *copied)
{
	*copied = 0;
	if (kdfd < 0)
		return 0;
	int fd = openat(kdfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	struct ag_spool_hdr h;
	int rc = -1;
	if (pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h &&
	    memcmp(h.magic, AG_SPOOL_MAGIC, 8) == 0) {
		g->skip_below = 0;
		rc = ag_spool_read_fd(fd, name, ingest_rec, g, NULL);
		if (rc == 0)
			*copied = h.used;
	}
	close(fd);
	return g->failed ? -1 : rc;
}

/* Copies whose spool is gone (the supervisor's own records, or a spool
 * its process deleted): into the log by themselves once no one writes
 * them. */
static long ingest_orphans(struct ingest *g, int kdfd, char *const *spools, long nspools,
			   int all)
{
	char **names = NULL;
	long n = kdfd >= 0 ? list_spools(kdfd, &names) : 0, total = 0;

	if (n <= 0)
		return 0;
	unsigned char *live = live_marks(names, (size_t)n);
	for (long i = 0; i < n && total >= 0; i++) {
		const char *name = names[i];
		if (nspools && bsearch(&name, spools, (size_t)nspools, sizeof *spools, cmp_str))
			continue;   /* read with its spool */
		if ((!live || live[i]) && !all)
			continue;
		struct ag_spool_hdr h;
		int fd = openat(kdfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			continue;
		ssize_t hn = pread(fd, &h, sizeof h, 0);
		close(fd);
		if (exec1(g->db, "BEGIN IMMEDIATE") < 0) {
			total = -1;
			break;
		}
		ingest_reset(g);
		char claim[AG_SESSION_ID_MAX];
		g->cur = AG_AUDIT_UNATTRIBUTED;
		if (hn == (ssize_t)sizeof h && memchr(h.session, 0, sizeof h.session) &&
		    ag_session_id_ok(h.session)) {
			snprintf(claim, sizeof claim, "%s", h.session);
			g->cur = claim;
		}
		uint64_t copied;
		if (ingest_copy(g, kdfd, name, &copied) < 0 || commit(g) < 0) {
			exec1(g->db, "ROLLBACK");
			if (g->failed) {
				total = -1;
				break;
			}
			warn("kspool/%s could not be read; left where it is", name);
			continue;
		}
		total += g->count;
		if (live && !live[i] && all != AG_INGEST_COPY)
			unlinkat(kdfd, name, 0);
	}
	free(live);
	for (long i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return total;
}

long ag_audit_ingest(sqlite3 *db, const char *state_dir, int all, char *err, size_t errlen)
{
	char dir[AG_PATH_MAX];
	char **names = NULL;
	struct ingest g = {.db = db, .state_dir = state_dir};
	unsigned char *live = NULL;
	long total = 0, n = 0;
	int dfd = -1;
	struct stat dst;

	if (ag_fmt(dir, sizeof dir, "%s/kspool", state_dir) < 0)
		return 0;
	int kdfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (ag_fmt(dir, sizeof dir, "%s/spool", state_dir) < 0) {
		if (kdfd >= 0)
			close(kdfd);
		return 0;
	}
	/* The directory itself is not followed either: a link would have us
	 * move and delete files somewhere else. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0 && errno == ENOENT && kdfd >= 0) {
		n = 0;
		goto orphans;   /* the supervisor's records only */
	}
	if (dfd < 0) {
		if (kdfd >= 0)
			close(kdfd);
		if (errno == ENOENT)
			return 0;
		seterr(err, errlen, "cannot read the spool directory %s: %s (if it is a symlink "
		       "or a file, move it aside)", dir, strerror(errno == ELOOP ? ENOTDIR : errno));
		return -1;
	}
	if (fstat(dfd, &dst) < 0 || (n = list_spools(dfd, &names)) <= 0) {
		if (n < 0) {
			seterr(err, errlen, "cannot read the spool directory %s: %s", dir,
			       strerror(errno));
			close(dfd);
			if (kdfd >= 0)
				close(kdfd);
			return -1;
		}
		n = 0;
		goto orphans;
	}
	live = live_marks(names, (size_t)n);
	if (prepare_ingest(&g) < 0) {
		seterr(err, errlen, "cannot write the audit log: %s%s", sqlite3_errmsg(db), NULL);
		total = -1;
		goto out;
	}
	for (long i = 0; i < n && total >= 0; i++) {
		const char *name = names[i];
		int is_live = !live || live[i];
		if (is_live && !all)
			continue;
		if (interrupted(&g)) {
			seterr(err, errlen, "interrupted%s%s", "", NULL);
			total = -1;
			break;
		}
		char why[AG_PATH_MAX + 256], claim[256], aside[300] = "";
		struct ag_spool_damage dmg = {0};
		struct stat st;
		int fd;
		int what = open_entry(dfd, name, dst.st_uid, &fd, &st, why, sizeof why);
		if (what == SP_GONE)
			continue;
		if (what == SP_LEAVE) {
			warn("%s/%s %s; left where it is", dir, name, why);
			continue;
		}
		if (exec1(db, "BEGIN IMMEDIATE") < 0) {
			seterr(err, errlen, "cannot write the audit log: %s%s",
			       g.interrupted ? "interrupted" : sqlite3_errmsg(db), NULL);
			if (fd >= 0)
				close(fd);
			total = -1;
			break;
		}
		ingest_reset(&g);
		int rc = 0, header_ok = 0;
		if (what == SP_OK) {
			/* The session is fixed before the first row: one the header
			 * cannot name goes to the placeholder, never to "". */
			struct ag_spool_hdr h;
			ssize_t hn = pread(fd, &h, sizeof h, 0);
			g.cur = AG_AUDIT_UNATTRIBUTED;
			if (hn == (ssize_t)sizeof h && memchr(h.session, 0, sizeof h.session) &&
			    ag_session_id_ok(h.session)) {
				snprintf(claim, sizeof claim, "%s", h.session);
				g.cur = claim;
				header_ok = 1;
			}
			/* The supervisor's copy first: what it holds counts, not
			 * what the process may have made of it since. */
			uint64_t copied = 0;
			if (ingest_copy(&g, kdfd, name, &copied) < 0 && g.failed)
				rc = -1;
			g.skip_below = copied;
			if (rc == 0)
				rc = ag_spool_read_fd(fd, name, ingest_rec, &g, &dmg);
			g.skip_below = 0;
			if (rc < 0 && g.failed) {
				/* The log could not be written: handled below. */
			} else if (rc < 0) {
				what = errno == EINVAL || errno == EFBIG ? SP_ALIEN : SP_LEAVE;
				snprintf(why, sizeof why, "%s",
					 errno == EINVAL ? "is not a spool (it has no spool header)"
					 : errno == EFBIG ? "is bigger than any spool"
					 : strerror(errno));
			}
		}
		if (fd >= 0)
			close(fd);
		if (g.failed || g.interrupted) {
			seterr(err, errlen, "cannot write the audit log: %s%s",
			       g.interrupted ? "interrupted" : sqlite3_errmsg(db), NULL);
			exec1(db, "ROLLBACK");
			total = -1;
			break;
		}
		if (what == SP_LEAVE) {
			exec1(db, "ROLLBACK");
			warn("%s/%s could not be read (%s); left where it is", dir, name, why);
			continue;
		}
		char dmgtext[512];
		damage_words(&dmg, g.bad, dmgtext, sizeof dmgtext);
		/* A live spool's unfinished tail is not damage: it is judged once
		 * its writers are done. */
		int damaged = what == SP_ALIEN || (!is_live && (dmgtext[0] || !header_ok));
		if (damaged) {
			const char *sess = what == SP_ALIEN ? claimed_session(&g, name, claim, sizeof claim)
							    : g.cur;
			char gap[2 * AG_PATH_MAX + 1024], uid[400];
			int moved = all != AG_INGEST_COPY &&
				    move_aside(dfd, name, aside, sizeof aside) == 0;
			int e = all == AG_INGEST_COPY ? EROFS : errno;
			if (what == SP_ALIEN)
				snprintf(gap, sizeof gap, "spool/%s %s", name, why);
			else if (!header_ok)
				snprintf(gap, sizeof gap, "spool/%s names no valid session in its header: "
					 "its %ld events are filed under session %s%s%s", name, g.count,
					 AG_AUDIT_UNATTRIBUTED, dmgtext[0] ? "; " : "", dmgtext);
			else
				snprintf(gap, sizeof gap, "spool/%s is damaged: %s (its %ld readable "
					 "events are in the log)", name, dmgtext, g.count);
			size_t gl = strlen(gap);
			if (moved)
				snprintf(gap + gl, sizeof gap - gl, "; kept as spool/damaged/%s", aside);
			else
				snprintf(gap + gl, sizeof gap - gl, "; could not be moved aside (%s)",
					 strerror(e));
			/* One row per file, however often it is seen. */
			snprintf(uid, sizeof uid, "damaged:%s:%llu:%llu", name,
				 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
			if ((!strcmp(sess, AG_AUDIT_UNATTRIBUTED) && load_head(&g, sess, 0) < 0) ||
			    add_gap(&g, uid, sess, ag_now_ns(), 0, gap) < 0 || commit(&g) < 0) {
				seterr(err, errlen, "cannot write the audit log: %s%s", sqlite3_errmsg(db),
				       NULL);
				exec1(db, "ROLLBACK");
				if (moved) {
					/* The rows are not in: the file must be read again. */
					int ddir = openat(dfd, "damaged", O_RDONLY | O_DIRECTORY |
							  O_NOFOLLOW | O_CLOEXEC);
					if (ddir >= 0) {
						renameat2(ddir, aside, dfd, name, RENAME_NOREPLACE);
						close(ddir);
					}
				}
				total = -1;
				break;
			}
			total += g.count;
			warn("%s (recorded as a gap in session %s)", gap, sess);
			continue;
		}
		if (commit(&g) < 0) {
			seterr(err, errlen, "cannot write the audit log: %s%s", sqlite3_errmsg(db), NULL);
			exec1(db, "ROLLBACK");
			total = -1;
			break;
		}
		total += g.count;
		/* Committed: the spool has nothing the log lacks. Unless the
		 * name now means another file. */
		struct stat now;
		if (!is_live && all != AG_INGEST_COPY &&
		    fstatat(dfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
		    now.st_dev == st.st_dev && now.st_ino == st.st_ino) {
			unlinkat(dfd, name, 0);
			if (kdfd >= 0)
				unlinkat(kdfd, name, 0);
		}
	}
orphans:
	if (total >= 0 && kdfd >= 0) {
		if (!g.ins && prepare_ingest(&g) < 0) {
			seterr(err, errlen, "cannot write the audit log: %s%s", sqlite3_errmsg(db), NULL);
			total = -1;
		} else {
			long o = ingest_orphans(&g, kdfd, names, n, all);
			total = o < 0 ? -1 : total + o;
			if (o < 0)
				seterr(err, errlen, "cannot write the audit log: %s%s",
				       sqlite3_errmsg(db), NULL);
		}
	}
out:
	sqlite3_busy_timeout(db, 10000);
	free(live);
	sqlite3_finalize(g.ins);
	sqlite3_finalize(g.snap);
	sqlite3_finalize(g.head_get);
	sqlite3_finalize(g.head_set);
	sqlite3_finalize(g.gap);
	sqlite3_finalize(g.tally_add);
	free(g.exe); free(g.argv); free(g.cwd);
	for (long i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (dfd >= 0)
		close(dfd);
	if (kdfd >= 0)
		close(kdfd);
	return total;
}

/* ---- verify ------------------------------------------------------------- */

static char key_err[AG_PATH_MAX + 512];   /* why the last open found no key */

static const char *key_problem(sqlite3 *db)
{
	(void)db;
	return key_err[0] ? key_err : "no key was loaded";
}

static int meta_get(sqlite3 *db, const char *key, char *out, size_t len)
{
	sqlite3_stmt *st;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key=?", -1, &st, NULL) != SQLITE_OK)
		return -1;
	bind_text(st, 1, key);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
		snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

static int meta_set(sqlite3 *db, const char *key, const char *value)
{
	sqlite3_stmt *st;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta VALUES(?, ?)", -1, &st, NULL) !=
	    SQLITE_OK)
		return -1;
	bind_text(st, 1, key);
	bind_text(st, 2, value);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	sqlite3_finalize(st);
	return rc;
}

static int verify_session(sqlite3 *db, const struct keyed *k, const char *id,
			  const char *genesis, const char *head, char *msg, size_t msglen);

/* A log from before the chain was keyed: every session whose unkeyed
 * chain holds is chained again with the key. One that does not hold stays
 * as it is, and fails verify. */
static int rekey(sqlite3 *db, const struct keyed *k)
{
	sqlite3_stmt *ss, *ev, *up, *hd;
	char msg[256];
	int rc = -1;

	if (exec1(db, "BEGIN IMMEDIATE") < 0)
		return -1;
	char sql[1024];
	int n = snprintf(sql, sizeof sql, "SELECT id");
	for (int i = 0; i < NCHAINED; i++)
		n += snprintf(sql + n, sizeof sql - (size_t)n, ", %s", chained[i]);
	snprintf(sql + n, sizeof sql - (size_t)n, " FROM events WHERE session=? ORDER BY id");
	if (sqlite3_prepare_v2(db, "SELECT id, genesis, head FROM sessions", -1, &ss, NULL) != SQLITE_OK)
		goto rollback;
	if (sqlite3_prepare_v2(db, sql, -1, &ev, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "UPDATE events SET prev_hash=?, hash=? WHERE id=?", -1, &up,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "UPDATE sessions SET head=? WHERE id=?", -1, &hd, NULL) !=
		    SQLITE_OK) {
		sqlite3_finalize(ss);
		goto rollback;
	}
	rc = 0;
	while (rc == 0 && sqlite3_step(ss) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(ss, 0);
		if (!id || verify_session(db, NULL, id, (const char *)sqlite3_column_text(ss, 1),
					  (const char *)sqlite3_column_text(ss, 2), msg, sizeof msg))
			continue;
		char prev[AG_HASH_HEX], hash[AG_HASH_HEX];
		snprintf(prev, sizeof prev, "%s", (const char *)sqlite3_column_text(ss, 1));
		sqlite3_reset(ev);
		bind_text(ev, 1, id);
		while (rc == 0 && sqlite3_step(ev) == SQLITE_ROW) {
			struct cval v[NCHAINED];
			for (int i = 0; i < NCHAINED; i++) {
				int c = i + 1, t = sqlite3_column_type(ev, c);
				v[i] = t == SQLITE_NULL ? (struct cval){.type = SQLITE_NULL}
				     : t == SQLITE_INTEGER ? iv(sqlite3_column_int64(ev, c))
				     : (struct cval){.type = SQLITE_TEXT,
						     .s = (const char *)sqlite3_column_text(ev, c),
						     .len = (size_t)sqlite3_column_bytes(ev, c)};
			}
			hash_event(k, prev, v, hash);
			sqlite3_reset(up);
			bind_text(up, 1, prev);
			bind_text(up, 2, hash);
			sqlite3_bind_int64(up, 3, sqlite3_column_int64(ev, 0));
			rc = sqlite3_step(up) == SQLITE_DONE ? 0 : -1;
			snprintf(prev, sizeof prev, "%s", hash);
		}
		sqlite3_reset(hd);
		bind_text(hd, 1, prev);
		bind_text(hd, 2, id);
		if (rc == 0)
			rc = sqlite3_step(hd) == SQLITE_DONE ? 0 : -1;
	}
	sqlite3_finalize(ss);
	sqlite3_finalize(ev);
	sqlite3_finalize(up);
	sqlite3_finalize(hd);
	if (rc == 0 && meta_set(db, "chain_key", k->id) == 0 && exec1(db, "COMMIT") == 0)
		return 0;
rollback:
	exec1(db, "ROLLBACK");
	return -1;
}

static int key_setup(sqlite3 *db, const char *state_dir, int writable, char *err, size_t errlen)
{
	unsigned char key[KEY_LEN];
	char kept[64];
	/* A keyed log whose key is gone gets no new one: it is missing. */
	int keyed = meta_get(db, "chain_key", kept, sizeof kept) == 0;
	int r = load_key(state_dir, writable && !keyed, key, key_err, sizeof key_err);

	if (r != 0) {
		char path[AG_PATH_MAX];
		ag_audit_key_path(state_dir, path, sizeof path);
		if (r > 0)
			snprintf(key_err, sizeof key_err, "its key is missing: no %s (this log was "
				 "keyed with key %s)", path, keyed ? kept : "?");
		seterr(err, errlen, "%s%s", key_err, NULL);
		return -1;
	}
	key_err[0] = 0;
	key_attach(db, key);
	memset(key, 0, sizeof key);
	if (!writable)
		return 0;
	const struct keyed *k = key_of(db);
	if (keyed) {
		if (strcmp(kept, k->id) == 0)
			return 0;
		char path[AG_PATH_MAX];
		ag_audit_key_path(state_dir, path, sizeof path);
		snprintf(key_err, sizeof key_err, "the chain key %s (id %s) is not the one this log "
			 "was keyed with (id %s): it cannot be extended; put the key back, or "
			 "move audit.db aside to start a new log", path, k->id, kept);
		seterr(err, errlen, "%s%s", key_err, NULL);
		return -1;
	}
	if (rekey(db, k) < 0) {
		seterr(err, errlen, "cannot key the log's chain: %s%s", sqlite3_errmsg(db), NULL);
		return -1;
	}
	return 0;
}

static int verify_session(sqlite3 *db, const struct keyed *k, const char *id,
			  const char *genesis, const char *head, char *msg, size_t msglen)
{
	char sql[1024], expect[AG_HASH_HEX], got[AG_HASH_HEX];
	int n = snprintf(sql, sizeof sql, "SELECT id, prev_hash, hash");
	for (int i = 0; i < NCHAINED; i++)
		n += snprintf(sql + n, sizeof sql - (size_t)n, ", %s", chained[i]);
	snprintf(sql + n, sizeof sql - (size_t)n, " FROM events WHERE session=? ORDER BY id");

	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	bind_text(st, 1, id);
	snprintf(expect, sizeof expect, "%s", genesis ? genesis : "");
	char g[AG_HASH_HEX];
	genesis_of(id, g);
	int bad = 0;
	int64_t last = 0;
	if (!genesis || strcmp(genesis, g) != 0) {
		snprintf(msg, msglen, "session %s: its chain start was changed", id);
		bad = 1;
	}
	while (!bad && sqlite3_step(st) == SQLITE_ROW) {
		int64_t rowid = sqlite3_column_int64(st, 0);
		const char *prev = (const char *)sqlite3_column_text(st, 1);
		const char *hash = (const char *)sqlite3_column_text(st, 2);
		struct cval v[NCHAINED];
		for (int i = 0; i < NCHAINED; i++) {
			int c = i + 3, t = sqlite3_column_type(st, c);
			if (t == SQLITE_NULL)
				v[i] = (struct cval){.type = SQLITE_NULL};
			else if (t == SQLITE_INTEGER)
				v[i] = iv(sqlite3_column_int64(st, c));
			else
				v[i] = (struct cval){.type = SQLITE_TEXT,
						     .s = (const char *)sqlite3_column_text(st, c),
						     .len = (size_t)sqlite3_column_bytes(st, c)};
		}
		if (!prev || strcmp(prev, expect) != 0) {
			if (last)
				snprintf(msg, msglen,
					 "session %s: event %" PRId64 " does not follow event %" PRId64
					 " (a row between them was deleted, or this one was inserted)",
					 id, rowid, last);
			else
				snprintf(msg, msglen,
					 "session %s: event %" PRId64 " is not the first of its chain "
					 "(a row before it was deleted, or it was inserted)", id, rowid);
			bad = 1;
			break;
		}
		hash_event(k, prev, v, got);
		if (!hash || strcmp(hash, got) != 0) {
			snprintf(msg, msglen, "session %s: event %" PRId64 " was changed", id, rowid);
			bad = 1;
			break;
		}
		snprintf(expect, sizeof expect, "%s", hash);
		last = rowid;
	}
	sqlite3_finalize(st);
	if (!bad && (!head || strcmp(head, expect) != 0)) {
		if (last)
			snprintf(msg, msglen,
				 "session %s: rows after event %" PRId64
				 " were deleted (the chain ends short of the session's head)", id, last);
		else
			snprintf(msg, msglen, "session %s: its events were deleted", id);
		bad = 1;
	}
	return bad;
}

/* The session's tallies and event count are what its events add up to:
 * 0, or 1 with msg (they were edited, or ingest miscounted). */
static int check_tallies(sqlite3 *db, const char *id, char *msg, size_t msglen)
{
	static const char *const q[] = {
		("SELECT count(*) FROM (SELECT session, op, decision, enforced, layer, snap, failed,"
		 " lost, n FROM tallies WHERE session = ?1 EXCEPT "
		 TALLY_OF_EVENTS("WHERE session = ?1") ")"),
		("SELECT count(*) FROM (" TALLY_OF_EVENTS("WHERE session = ?1") " EXCEPT "
		 "SELECT session, op, decision, enforced, layer, snap, failed, lost, n FROM tallies"
		 " WHERE session = ?1)"),
		("SELECT (SELECT events FROM sessions WHERE id = ?1) IS NOT"
		 " (SELECT count(*) FROM events WHERE session = ?1)"),
	};

	if (!ag_audit_has_tallies(db))
		return 0;
	for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(db, q[i], -1, &st, NULL) != SQLITE_OK) {
			snprintf(msg, msglen, "cannot read the audit log: %s", sqlite3_errmsg(db));
			return 1;
		}
		bind_text(st, 1, id);
		int off = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) != 0;
		sqlite3_finalize(st);
		if (off) {
			snprintf(msg, msglen, "session %s: its %s not match its events (edited, or "
				 "miscounted: the events themselves are intact)", id,
				 i < 2 ? "tallies (what report and sessions count) do"
				       : "event count does");
			return 1;
		}
	}
	return 0;
}

int ag_audit_verify(sqlite3 *db, const char *session, char *msg, size_t msglen)
{
	sqlite3_stmt *st;
	int rc = 0;
	const struct keyed *k = key_of(db);

	if (!k) {
		snprintf(msg, msglen, "the chain cannot be checked: %s", key_problem(db));
		return 1;
	}
	char kept[64] = "";
	if (meta_get(db, "chain_key", kept, sizeof kept) == 0 && strcmp(kept, k->id) != 0) {
		snprintf(msg, msglen, "the chain was keyed with key %s, and the key now there is %s: "
			 "the key was replaced", kept, k->id);
		return 1;
	}

	if (sqlite3_prepare_v2(db,
			       session ? "SELECT id, genesis, head FROM sessions WHERE id=?"
				       : "SELECT id, genesis, head FROM sessions ORDER BY start_ns, rowid",
			       -1, &st, NULL) != SQLITE_OK) {
		snprintf(msg, msglen, "cannot read the audit log: %s", sqlite3_errmsg(db));
		return -1;
	}
	if (session)
		bind_text(st, 1, session);
	int seen = 0;
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		seen++;
		rc = verify_session(db, k, (const char *)sqlite3_column_text(st, 0),
				    (const char *)sqlite3_column_text(st, 1),
				    (const char *)sqlite3_column_text(st, 2), msg, msglen);
		if (rc == 0)
			rc = check_tallies(db, (const char *)sqlite3_column_text(st, 0), msg, msglen);
	}
	sqlite3_finalize(st);
	if (rc == 0 && session && !seen) {
		snprintf(msg, msglen, "no session %s in the audit log", session);
		return -1;
	}
	/* Events whose session row is gone cannot be checked against a head. */
	if (rc == 0 && !session &&
	    sqlite3_prepare_v2(db, "SELECT min(id), session FROM events WHERE session NOT IN "
				   "(SELECT id FROM sessions)", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
			snprintf(msg, msglen, "event %lld belongs to session %s, whose record was deleted",
				 (long long)sqlite3_column_int64(st, 0),
				 (const char *)sqlite3_column_text(st, 1));
			rc = 1;
		}
		sqlite3_finalize(st);
	}
	return rc;
}

/* ---- heads: the chain's anchors ------------------------------------------
 * At its end a session's head is appended to STATE/heads (out of the
 * session's reach under the floor), one JSON line: session, events, head,
 * key. That line anchors the first `events` events of the session: who
 * edits the log and chains it again cannot match a head kept elsewhere
 * (export them off the machine), even with the key. */

int ag_audit_write_head(sqlite3 *db, const char *state_dir, const char *session,
			char *err, size_t errlen)
{
	sqlite3_stmt *st;
	char path[AG_PATH_MAX];
	const struct keyed *k = key_of(db);

	if (ag_fmt(path, sizeof path, "%s/heads", state_dir) < 0 ||
	    sqlite3_prepare_v2(db, "SELECT head, events, end_ns FROM sessions WHERE id=?", -1, &st,
			       NULL) != SQLITE_OK) {
		seterr(err, errlen, "cannot read the head of session %s%s", session, NULL);
		return -1;
	}
	bind_text(st, 1, session);
	int rc = -1;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
		json_t *j = json_pack("{s:s,s:I,s:s,s:s,s:I}", "session", session, "events",
				      (json_int_t)sqlite3_column_int64(st, 1), "head",
				      (const char *)sqlite3_column_text(st, 0), "key",
				      k ? k->id : "", "end_ns",
				      (json_int_t)sqlite3_column_int64(st, 2));
		char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		int fd = line ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
				     0600) : -1;
		if (fd >= 0) {
			size_t n = strlen(line);
			line[n] = '\n';   /* json_dumps left room: its NUL */
			rc = write(fd, line, n + 1) == (ssize_t)(n + 1) ? 0 : -1;
			close(fd);
		}
		free(line);
	}
	sqlite3_finalize(st);
	if (rc < 0)
		seterr(err, errlen, "cannot write the head of session %s to %s", session, path);
	return rc;
}

int ag_audit_check_heads(sqlite3 *db, const char *file, char *msg, size_t msglen, long *checked)
{
	FILE *f = fopen(file, "re");
	sqlite3_stmt *st;
	long n = 0, at = 0;
	int bad = 0;

	*checked = 0;
	if (!f) {
		snprintf(msg, msglen, "cannot read the heads in %s: %s", file, strerror(errno));
		return -1;
	}
	/* The hash of the session's Nth event (1-based), in chain order. */
	if (sqlite3_prepare_v2(db, "SELECT hash FROM events WHERE session=?1 ORDER BY id "
				   "LIMIT 1 OFFSET ?2 - 1", -1, &st, NULL) != SQLITE_OK) {
		fclose(f);
		snprintf(msg, msglen, "cannot read the audit log: %s", sqlite3_errmsg(db));
		return -1;
	}
	sqlite3_stmt *ev;
	if (sqlite3_prepare_v2(db, "SELECT hash FROM events WHERE uid=?1", -1, &ev, NULL) !=
	    SQLITE_OK) {
		sqlite3_finalize(st);
		fclose(f);
		snprintf(msg, msglen, "cannot read the audit log: %s", sqlite3_errmsg(db));
		return -1;
	}
	char *big = NULL;
	size_t bigcap = 0;
	while (!bad && getline(&big, &bigcap, f) > 0) {
		const char *line = big;
		at++;
		json_error_t je;
		json_t *j = json_loads(line, 0, &je);
		const char *sid = json_string_value(json_object_get(j, "session"));
		const char *head = json_string_value(json_object_get(j, "head"));
		json_int_t events = json_integer_value(json_object_get(j, "events"));
		const char *uid = json_string_value(json_object_get(j, "uid"));
		const char *hash = json_string_value(json_object_get(j, "hash"));
		if (j && sid && uid && hash) {
			/* An exported event: the log must still hold it, as it was. */
			const char *got = NULL;
			sqlite3_reset(ev);
			bind_text(ev, 1, uid);
			if (sqlite3_step(ev) == SQLITE_ROW)
				got = (const char *)sqlite3_column_text(ev, 0);
			if (!got || strcmp(got, hash) != 0) {
				snprintf(msg, msglen, "session %s: event %s (%s:%ld) %s", sid, uid, file,
					 at, got ? "was changed and chained again"
					     : "is gone from the log");
				bad = 1;
			}
			n++;
		} else if (!j || !sid || !head) {
			snprintf(msg, msglen, "%s:%ld: not a session head", file, at);
			bad = 1;
		} else {
			char genesis[AG_HASH_HEX];
			genesis_of(sid, genesis);
			const char *got = NULL;
			sqlite3_reset(st);
			bind_text(st, 1, sid);
			sqlite3_bind_int64(st, 2, events);
			if (events == 0)
				got = genesis;
			else if (sqlite3_step(st) == SQLITE_ROW)
				got = (const char *)sqlite3_column_text(st, 0);
			if (!got || strcmp(got, head) != 0) {
				snprintf(msg, msglen, "session %s does not match the head kept for it "
					 "(%s:%ld): %s", sid, file, at,
					 got ? "its first events were changed and chained again"
					     : "its events are gone");
				bad = 1;
			}
			n++;
		}
		json_decref(j);
	}
	free(big);
	sqlite3_finalize(ev);
	sqlite3_finalize(st);
	fclose(f);
	*checked = n;
	return bad;
}

sqlite3 *ag_audit_open_copy(const char *state_dir, char *err, size_t errlen)
{
	char path[AG_PATH_MAX];
	sqlite3 *db = NULL, *src = NULL;
	struct stat st;

	if (ag_fmt(path, sizeof path, "%s/audit.db", state_dir) < 0) {
		seterr(err, errlen, "state dir path too long: %s%s", state_dir, NULL);
		return NULL;
	}
	if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK)
		goto fail;
	if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
		/* Immutable: it touches neither -shm nor -wal (which the guard
		 * protects), so it sees the log as of its last checkpoint. */
		char *uri = sqlite3_mprintf("file:%s?mode=ro&immutable=1", path);
		int rc = uri ? sqlite3_open_v2(uri, &src, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL)
			     : SQLITE_NOMEM;
		sqlite3_free(uri);
		sqlite3_backup *b = rc == SQLITE_OK ? sqlite3_backup_init(db, "main", src, "main") : NULL;
		if (b) {
			rc = sqlite3_backup_step(b, -1);
			sqlite3_backup_finish(b);
		}
		if (!b || rc != SQLITE_DONE) {
			int code = src ? sqlite3_errcode(src) : rc;
			seterr(err, errlen, code == SQLITE_CORRUPT || code == SQLITE_NOTADB
			       ? "audit log %s is damaged (%s): move it aside to start a new one"
			       : "cannot read audit log %s: %s", path,
			       src ? sqlite3_errmsg(src) : sqlite3_errstr(rc));
			sqlite3_close(src);
			sqlite3_close(db);
			return NULL;
		}
		sqlite3_close(src);
	}
	if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK || add_columns(db) < 0 ||
	    add_tallies(db) < 0)
		goto fail;
	/* The rows added here are chained like the log's, with its key when
	 * it can be read; a copy makes no key, but a log no key has touched
	 * yet (or none at all) gets a throwaway one for the copy's rows. */
	char kept[64];
	int keyed = meta_get(db, "chain_key", kept, sizeof kept) == 0;
	if (key_setup(db, state_dir, 0, err, errlen) < 0 && !keyed) {
		unsigned char key[KEY_LEN];
		if (getrandom(key, sizeof key, 0) == (ssize_t)sizeof key) {
			key_attach(db, key);
			key_err[0] = 0;
		}
		memset(key, 0, sizeof key);
	}
	if (!keyed && key_of(db) && rekey(db, key_of(db)) < 0)
		goto fail;
	if (ag_audit_ingest(db, state_dir, AG_INGEST_COPY, err, errlen) < 0) {
		ag_audit_close(db);
		return NULL;
	}
	return db;
fail:
	seterr(err, errlen, "cannot make a copy of audit log %s: %s", path,
	       db ? sqlite3_errmsg(db) : "out of memory");
	sqlite3_close(db);
	return NULL;
}

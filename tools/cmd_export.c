/*
 * agentguard export: the audit log as a stream for a collector off the
 * machine, each record exactly once across restarts.
 *
 * The stream is every event in log order (events.id, the order ingest
 * chained them) with the marks (session start, end, halt; marks table)
 * between them: a mark sits after the newest event there was when it was
 * written. The cursor "E:M" says the stream was delivered up to event E and
 * mark M; every record carries the cursor after it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "cli.h"

static const char help[] =
"Usage: agentguard export [--follow] [--after CURSOR] [--cursor-file FILE]\n"
"                         [--format jsonl|syslog|cef] [--to SINK] [--only WHAT]\n"
"\n"
"Write the audit log as a stream: every event (allow included, the field\n"
"names of `report --json`, \"type\": \"event\"), and the sessions' marks:\n"
"\"session_start\", \"session_end\" and \"session_halt\", each with the session's\n"
"event count and head hash at that point. Kept off the machine, those heads\n"
"and every event's hash are anchors: `agentguard verify --anchors FILE`\n"
"catches a log rewritten afterwards, even by someone holding the key.\n"
"\n"
"Every record carries \"cursor\" (E:M): the stream up to it. --after CURSOR\n"
"starts after it (an event id alone: after that event); --cursor-file\n"
"keeps it, written after each batch the sink took, so a collector killed and\n"
"started again goes on where it stopped (a saved cursor wins over --after).\n"
"\n"
"Options:\n"
"  --follow         keep going: move new spools into the log and write what\n"
"                   they add, about every --interval seconds (default 1)\n"
"  --format F       jsonl (default); syslog: RFC 5424 with the fields as\n"
"                   structured data [agentguard@32473 ...]; cef: ArcSight CEF;\n"
"                   otlp: OpenTelemetry logs, OTLP/JSON, a request per batch\n"
"                   (--to http://COLLECTOR:4318/v1/logs)\n"
"  --to SINK        - (stdout, default); FILE or file:FILE (appended; with\n"
"                   --cursor-file, a restart first cuts what was written after\n"
"                   the saved cursor); unix:PATH (a syslog socket such as\n"
"                   /dev/log); udp:HOST:PORT; tcp:HOST:PORT (syslog framed by\n"
"                   octet counts, RFC 6587); http://HOST[:PORT]/PATH (a POST per\n"
"                   batch, JSON Lines or one message a line, header\n"
"                   Idempotency-Key; retried until a 2xx)\n"
"  --only WHAT      write only these (comma-separated): deny, would-deny, ask,\n"
"                   allow, log, snapshot, start, end, halt; e.g. alerts:\n"
"                   --only deny,ask,halt (the cursor still passes the rest)\n"
"  --retries N      attempts per batch before giving up (default 10; the\n"
"                   cursor then stays before the batch)\n"
"  --batch N        records per batch (default 500)\n"
"  --until-end SID  stop once session SID's end has gone out (`run --alert`)\n"
"  --state-dir DIR  where audit.db lives\n";

enum { OPT_FOLLOW = 1, OPT_AFTER, OPT_CURSOR_FILE, OPT_FORMAT, OPT_TO, OPT_ONLY, OPT_RETRIES,
       OPT_BATCH, OPT_INTERVAL, OPT_UNTIL_END };

static const struct option options[] = {
	{ "follow", no_argument, NULL, OPT_FOLLOW },
	{ "after", required_argument, NULL, OPT_AFTER },
	{ "cursor-file", required_argument, NULL, OPT_CURSOR_FILE },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "to", required_argument, NULL, OPT_TO },
	{ "only", required_argument, NULL, OPT_ONLY },
	{ "retries", required_argument, NULL, OPT_RETRIES },
	{ "batch", required_argument, NULL, OPT_BATCH },
	{ "interval", required_argument, NULL, OPT_INTERVAL },
	{ "until-end", required_argument, NULL, OPT_UNTIL_END },
	{ NULL, 0, NULL, 0 },
};

enum fmt { FMT_JSONL, FMT_SYSLOG, FMT_CEF, FMT_OTLP };
enum sink_kind { SINK_STDOUT, SINK_FILE, SINK_UNIX, SINK_UDP, SINK_TCP, SINK_HTTP };

struct sink {
	enum sink_kind kind;
	char target[AG_PATH_MAX];    /* file or socket path, host */
	char port[16];
	char path[1024];             /* http: the request path */
	int fd;
	int stream;                  /* unix: a stream socket (not datagrams) */
};

struct cursor {
	long long e, m;
};

struct exporter {
	struct cli_db d;
	struct cli_opts co;
	struct cli_idents *ids;
	enum fmt fmt;
	struct sink sink;
	const char *cursor_file;
	char only[256];              /* ",deny,ask," or "" */
	long retries, batch;
	struct cursor at;
	const char *until_end;       /* a session whose end mark stops the export */
	int ended;
	char host[256];              /* this machine, for records without a session row */
	/* the batch being built: one message per record */
	char **msg;
	size_t nmsg, capmsg;
};

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

/* ---- sinks ---------------------------------------------------------------- */

static int parse_sink(const char *s, struct sink *k)
{
	memset(k, 0, sizeof *k);
	k->fd = -1;
	if (strcmp(s, "-") == 0) {
		k->kind = SINK_STDOUT;
		return 0;
	}
	const char *rest;
	if (strncmp(s, "unix:", 5) == 0) {
		k->kind = SINK_UNIX;
		return snprintf(k->target, sizeof k->target, "%s", s + 5) <
			       (int)sizeof(((struct sockaddr_un *)0)->sun_path) && s[5] ? 0 : -1;
	}
	if (strncmp(s, "http://", 7) == 0) {
		k->kind = SINK_HTTP;
		rest = s + 7;
		const char *slash = strchr(rest, '/');
		size_t hl = slash ? (size_t)(slash - rest) : strlen(rest);
		snprintf(k->path, sizeof k->path, "%s", slash ? slash : "/");
		char hp[300];
		if (hl == 0 || hl >= sizeof hp)
			return -1;
		memcpy(hp, rest, hl);
		hp[hl] = 0;
		char *colon = strrchr(hp, ':');
		snprintf(k->port, sizeof k->port, "%s", colon ? colon + 1 : "80");
		if (colon)
			*colon = 0;
		snprintf(k->target, sizeof k->target, "%s", hp);
		return k->target[0] ? 0 : -1;
	}
	if (strncmp(s, "udp:", 4) == 0 || strncmp(s, "tcp:", 4) == 0) {
		k->kind = s[0] == 'u' ? SINK_UDP : SINK_TCP;
		rest = s + 4;
		const char *colon = strrchr(rest, ':');
		if (!colon || colon == rest || !colon[1] ||
		    (size_t)(colon - rest) >= sizeof k->target)
			return -1;
		snprintf(k->target, sizeof k->target, "%.*s", (int)(colon - rest), rest);
		snprintf(k->port, sizeof k->port, "%s", colon + 1);
		return 0;
	}
	if (strncmp(s, "file:", 5) == 0)
		s += 5;
	if (!*s || strstr(s, "://"))
		return -1;
	k->kind = SINK_FILE;
	return snprintf(k->target, sizeof k->target, "%s", s) < (int)sizeof k->target ? 0 : -1;
}

static int connect_inet(const char *host, const char *port, int type)
{
	struct addrinfo hints = { .ai_socktype = type }, *res, *a;
	int fd = -1;

	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	for (a = res; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		struct timeval tv = { .tv_sec = 10 };
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	return fd;
}

static int sink_open(struct sink *k)
{
	if (k->fd >= 0 || k->kind == SINK_STDOUT || k->kind == SINK_HTTP)
		return 0;
	switch (k->kind) {
	case SINK_FILE:
		k->fd = open(k->target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		break;
	case SINK_UNIX: {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		size_t pl = strnlen(k->target, sizeof sa.sun_path);
		if (pl >= sizeof sa.sun_path)
			return -1;
		memcpy(sa.sun_path, k->target, pl);
		/* /dev/log is a datagram socket; some collectors listen on a stream. */
		for (int type = SOCK_DGRAM; k->fd < 0 && type; type = type == SOCK_DGRAM ? SOCK_STREAM : 0) {
			int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
			if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
				k->fd = fd;
				k->stream = type == SOCK_STREAM;
			} else if (fd >= 0) {
				close(fd);
			}
		}
		break;
	}
	case SINK_UDP:
		k->fd = connect_inet(k->target, k->port, SOCK_DGRAM);
		break;
	case SINK_TCP:
		k->fd = connect_inet(k->target, k->port, SOCK_STREAM);
		break;
	default:
		break;
	}
	return k->fd >= 0 ? 0 : -1;
}

static void sink_close(struct sink *k)
{
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == ENOTSOCK)
			w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The largest UDP payload over IPv4. */
#define DGRAM_MAX 65507

/* One POST of the batch; 0 when the receiver answered 2xx. */
static int http_post(struct exporter *x, const char *key)
{
	struct sink *k = &x->sink;
	size_t len = 0;

	for (size_t i = 0; i < x->nmsg; i++)
		len += strlen(x->msg[i]) + 1;
	int fd = connect_inet(k->target, k->port, SOCK_STREAM);
	if (fd < 0)
		return -1;
	char head[2048];
	int hl = snprintf(head, sizeof head,
			  "POST %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: agentguard-export\r\n"
			  "Content-Type: %s\r\nContent-Length: %zu\r\nIdempotency-Key: %s\r\n"
			  "Connection: close\r\n\r\n", k->path, k->target, k->port,
			  x->fmt == FMT_JSONL ? "application/x-ndjson"
			  : x->fmt == FMT_OTLP ? "application/json" : "text/plain; charset=utf-8",
			  len, key);
	int ok = hl > 0 && hl < (int)sizeof head && write_all(fd, head, (size_t)hl) == 0;
	for (size_t i = 0; ok && i < x->nmsg; i++)
		ok = write_all(fd, x->msg[i], strlen(x->msg[i])) == 0 && write_all(fd, "\n", 1) == 0;
	char resp[64] = "";
	size_t got = 0;
	while (ok && got < sizeof resp - 1) {
		ssize_t r = read(fd, resp + got, sizeof resp - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		if (memchr(resp, '\n', got))
			break;
	}
	close(fd);
	resp[got] = 0;
	int status = 0;
	return ok && sscanf(resp, "HTTP/%*d.%*d %d", &status) == 1 && status >= 200 &&
	       status < 300 ? 0 : -1;
}

/* The batch to the sink, once. */
static int sink_send_msgs(struct exporter *x, const char *key);
static char *otlp_request(struct exporter *x);

static int sink_send(struct exporter *x, const char *key)
{
	if (x->fmt != FMT_OTLP || !x->nmsg)
		return sink_send_msgs(x, key);
	/* One request of every record: sent as a batch of one message. */
	char *req = otlp_request(x);
	if (!req)
		return -1;
	char **msgs = x->msg;
	size_t n = x->nmsg;
	x->msg = &req;
	x->nmsg = 1;
	int rc = sink_send_msgs(x, key);
	x->msg = msgs;
	x->nmsg = n;
	free(req);
	return rc;
}

static int sink_send_msgs(struct exporter *x, const char *key)
{
	struct sink *k = &x->sink;

	if (k->kind == SINK_HTTP)
		return http_post(x, key);
	if (k->kind == SINK_STDOUT) {
		/* A reader that went away will not come back: no retry. */
		for (size_t i = 0; i < x->nmsg; i++)
			if (fputs(x->msg[i], stdout) < 0 || putchar('\n') < 0)
				return -2;
		return fflush(stdout) == 0 ? 0 : -2;
	}
	if (sink_open(k) < 0)
		return -1;
	for (size_t i = 0; i < x->nmsg; i++) {
		const char *m = x->msg[i];
		size_t n = strlen(m);
		int rc;
		if (k->kind == SINK_UDP || (k->kind == SINK_UNIX && !k->stream)) {
			/* One datagram a message: a long argv is cut to what UDP
			 * carries rather than stall the stream (the JSON Lines
			 * export keeps it whole). */
			if (n > DGRAM_MAX)
				n = DGRAM_MAX;
			rc = send(k->fd, m, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
		} else if (x->fmt == FMT_SYSLOG && k->kind != SINK_FILE) {
			/* RFC 6587 octet counting: a message may hold a newline. */
			char pre[32];
			int pl = snprintf(pre, sizeof pre, "%zu ", n);
			rc = write_all(k->fd, pre, (size_t)pl) == 0 ? write_all(k->fd, m, n) : -1;
		} else {
			rc = write_all(k->fd, m, n) == 0 ? write_all(k->fd, "\n", 1) : -1;
		}
		if (rc < 0) {
			sink_close(k);
			return -1;
		}
	}
	if (k->kind == SINK_FILE && fdatasync(k->fd) < 0)
		return -1;
	return 0;
}

/* ---- the cursor ----------------------------------------------------------- */

static int parse_cursor(const char *s, struct cursor *c, int *marks_known)
{
	char *end;

	errno = 0;
	c->e = strtoll(s, &end, 10);
	*marks_known = 0;
	c->m = 0;
	if (errno || end == s || c->e < 0)
		return -1;
	if (*end == ':') {
		const char *m = end + 1;
		c->m = strtoll(m, &end, 10);
		if (errno || end == m || c->m < 0)
			return -1;
		*marks_known = 1;
	}
	return *end ? -1 : 0;
}

/* The saved cursor, and for a file sink how long the file was then: 1 read,
 * 0 none, -1 unreadable. */
static int load_state(const char *file, struct cursor *c, long long *offset)
{
	FILE *f = fopen(file, "re");
	char buf[512];

	*offset = -1;
	if (!f)
		return errno == ENOENT ? 0 : -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	json_t *j = json_loads(buf, 0, NULL);
	const char *cur = json_string_value(json_object_get(j, "cursor"));
	int known, rc = cur && parse_cursor(cur, c, &known) == 0 && known ? 1 : -1;
	if (json_is_integer(json_object_get(j, "offset")))
		*offset = json_integer_value(json_object_get(j, "offset"));
	json_decref(j);
	return rc;
}

/* Written whole or not at all: a temporary file renamed over it. */
static int save_state(struct exporter *x)
{
	char tmp[AG_PATH_MAX + 16], cur[64];
	long long offset = -1;
	struct stat st;

	if (!x->cursor_file)
		return 0;
	if (x->sink.kind == SINK_FILE && x->sink.fd >= 0 && fstat(x->sink.fd, &st) == 0)
		offset = st.st_size;
	snprintf(cur, sizeof cur, "%lld:%lld", x->at.e, x->at.m);
	json_t *j = json_pack("{s:s}", "cursor", cur);
	if (offset >= 0)
		json_object_set_new(j, "offset", json_integer(offset));
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	snprintf(tmp, sizeof tmp, "%s.tmp", x->cursor_file);
	int fd = text ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
	int ok = fd >= 0 && write_all(fd, text, strlen(text)) == 0 && fsync(fd) == 0;
	if (fd >= 0)
		close(fd);
	free(text);
	if (!ok || rename(tmp, x->cursor_file) < 0) {
		cli_err("cannot save the cursor in %s: %s", x->cursor_file, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* ---- records -------------------------------------------------------------- */

static int wanted(const struct exporter *x, const char *what)
{
	char key[64];

	if (!x->only[0])
		return 1;
	snprintf(key, sizeof key, ",%s,", what);
	return strstr(x->only, key) != NULL;
}

/* A syslog SD-PARAM value: '"', '\' and ']' escaped (RFC 5424 6.3.3);
 * controls as \xNN, which a real backslash (written \\) cannot look like. */
static void sd_value(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\' || c == ']')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
}

/* A CEF header field escapes '|' and '\'; an extension value '=' and '\'. */
static void cef_text(FILE *f, const char *s, int header)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '\\' || (header ? c == '|' : c == '='))
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs(header ? " " : "\\n", f);
		else if (c == '\r')
			fputs(header ? " " : "\\r", f);
		else if (c < 0x20 || c == 0x7f)
			fputc(' ', f);
		else
			fputc(c, f);
	}
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The value of field k as text (numbers too); NULL when absent. */
static const char *jtext(json_t *o, const char *k, char *buf, size_t len)
{
	json_t *v = json_object_get(o, k);

	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
		return buf;
	}
	if (json_is_boolean(v))
		return json_is_true(v) ? "true" : "false";
	return NULL;
}

/* What the record is about, for alert filters, syslog's MSGID and CEF. */
static const char *record_kind(json_t *o)
{
	const char *type = jstr(o, "type");

	if (type && strcmp(type, "event") != 0)
		return type + 8;   /* "session_" */
	const char *d = jstr(o, "decision");
	if (d && strcmp(d, "deny") == 0 && json_is_false(json_object_get(o, "enforced")))
		return "would-deny";
	return d ? d : "?";
}

static int severity(const char *kind)
{
	/* syslog: crit, warning, notice, info */
	if (strcmp(kind, "halt") == 0)
		return 2;
	if (strcmp(kind, "deny") == 0)
		return 4;
	if (strcmp(kind, "ask") == 0 || strcmp(kind, "would-deny") == 0)
		return 5;
	return 6;
}

/* One line a human reads first: "deny delete /x by rm (rule r): reason". */
static void summary_line(FILE *f, json_t *o, const char *kind)
{
	char n[32];
	const char *type = jstr(o, "type");

	if (type && strcmp(type, "event") != 0) {
		fprintf(f, "session %s %s, %s events, head %s", jstr(o, "session") ? jstr(o, "session") : "?",
			kind, jtext(o, "events", n, sizeof n) ? n : "?",
			jstr(o, "head") ? jstr(o, "head") : "?");
		return;
	}
	const char *subj = jstr(o, "path");
	if (!subj)
		subj = jstr(o, "host") ? jstr(o, "host") : jstr(o, "address");
	if (jstr(o, "sql"))
		subj = jstr(o, "sql");
	fprintf(f, "%s %s %s by %s", kind, jstr(o, "op") ? jstr(o, "op") : "?", subj ? subj : "-",
		jstr(o, "exe") ? cli_base(jstr(o, "exe")) : "?");
	if (jstr(o, "rule"))
		fprintf(f, " (rule %s)", jstr(o, "rule"));
	if (jstr(o, "reason"))
		fprintf(f, ": %s", jstr(o, "reason"));
	if (jstr(o, "error"))
		fprintf(f, " [failed: %s]", jstr(o, "error"));
}

/* Structured-data and CEF keys, in this order: what a rule routes on. */
static const char *const fields[] = {
	"session", "id", "uid", "cursor", "op", "decision", "enforced", "outcome", "error",
	"rule", "path", "target", "address", "host", "port", "database", "sql_class", "sql",
	"exe", "pid", "ppid", "cwd", "snapshot", "layer", "unguarded", "hostname", "user",
	"user_id", "container", "events", "head", "hash", "exit_status", "time_ns",
};

static char *format_syslog(struct exporter *x, json_t *o, const char *kind)
{
	char *buf = NULL, t[64], n[64];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	json_int_t ns = json_integer_value(json_object_get(o, "time_ns"));

	if (!f)
		return NULL;
	/* TIMESTAMP allows six fraction digits at most (RFC 5424 6.2.3). */
	cli_fmt_rfc3339(ns, t, sizeof t);
	if (strlen(t) == 30)
		memmove(t + 26, t + 29, 2);
	const char *host = jstr(o, "hostname") ? jstr(o, "hostname") : x->host;
	fprintf(f, "<%d>1 %s ", 10 * 8 + severity(kind), t);
	/* HOSTNAME and MSGID are printable ASCII without spaces. */
	for (const char *p = host && *host ? host : "-"; *p && p - host < 255; p++)
		fputc(*p > 32 && *p < 127 ? *p : '_', f);
	fprintf(f, " agentguard %s ", jtext(o, "pid", n, sizeof n) ? n : "-");
	const char *msgid = strcmp(jstr(o, "type"), "event") ? jstr(o, "type") : kind;
	for (const char *p = msgid; *p; p++)
		fputc(*p == ' ' ? '_' : *p, f);
	fputs(" [agentguard@32473", f);
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		const char *v = jtext(o, fields[i], n, sizeof n);
		if (!v)
			continue;
		fprintf(f, " %s=\"", fields[i]);
		sd_value(f, v);
		fputc('"', f);
	}
	fputs("] ", f);
	summary_line(f, o, kind);
	fclose(f);
	/* A line per message for files; the summary's own newlines as spaces. */
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return buf;
}

static char *format_cef(struct exporter *x, json_t *o, const char *kind)
{
	static const char *const keys[][2] = {
		/* CEF key, our field */
		{"dvchost", "hostname"}, {"suser", "user"}, {"suid", "user_id"}, {"spid", "pid"},
		{"sproc", "exe"}, {"act", "decision"}, {"outcome", "outcome"}, {"filePath", "path"},
		{"dhost", "host"}, {"dst", "address"}, {"dpt", "port"}, {"msg", "reason"},
	};
	static const char *const custom[][2] = {
		{"cs1", "rule"}, {"cs2", "session"}, {"cs3", "hash"}, {"cs4", "cursor"},
		{"cs5", "sql"}, {"cs6", "error"},
	};
	char *buf = NULL, n[64];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	json_int_t ns = json_integer_value(json_object_get(o, "time_ns"));
	static const int sev[] = {9, 9, 9, 8, 7, 5, 3};   /* by syslog severity */

	if (!f)
		return NULL;
	fputs("CEF:0|agentguard|agentguard|1|", f);
	const char *op = jstr(o, "op") ? jstr(o, "op") : "session";
	cef_text(f, op, 1);
	fputc(':', f);
	cef_text(f, kind, 1);
	fputc('|', f);
	cef_text(f, kind, 1);
	fputc(' ', f);
	cef_text(f, op, 1);
	fprintf(f, "|%d|rt=%lld", sev[severity(kind)], (long long)(ns / 1000000));
	if (!jstr(o, "hostname") && x->host[0]) {
		fputs(" dvchost=", f);
		cef_text(f, x->host, 0);
	}
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		const char *v = jtext(o, keys[i][1], n, sizeof n);
		if (!v)
			continue;
		fprintf(f, " %s=", keys[i][0]);
		cef_text(f, v, 0);
	}
	for (size_t i = 0; i < sizeof custom / sizeof custom[0]; i++) {
		const char *v = jtext(o, custom[i][1], n, sizeof n);
		if (!v)
			continue;
		fprintf(f, " %sLabel=%s %s=", custom[i][0], custom[i][1], custom[i][0]);
		cef_text(f, v, 0);
	}
	fclose(f);
	return buf;
}

/* OpenTelemetry: a LogRecord of OTLP/JSON (the batch is wrapped in one
 * ExportLogsServiceRequest at sending). Fields under the semantic
 * conventions' names where there is one, else agentguard.NAME. */
static char *format_otlp(json_t *o, const char *kind)
{
	static const char *const semconv[][2] = {
		{"path", "file.path"}, {"pid", "process.pid"}, {"ppid", "process.parent_pid"},
		{"exe", "process.executable.path"}, {"cwd", "process.working_directory"},
		{"hostname", "host.name"}, {"user", "user.name"}, {"user_id", "user.id"},
		{"container", "container.id"}, {"host", "server.address"}, {"port", "server.port"},
		{"sql", "db.query.text"}, {"database", "db.namespace"}, {"error", "error.type"},
		{"session", "session.id"},
	};
	json_t *attrs = json_array(), *rec;
	const char *key;
	json_t *v;
	char *buf = NULL, ns[32];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	summary_line(f, o, kind);
	fclose(f);
	json_object_foreach(o, key, v) {
		char name[96];
		snprintf(name, sizeof name, "agentguard.%s", key);
		for (size_t i = 0; i < sizeof semconv / sizeof semconv[0]; i++)
			if (strcmp(key, semconv[i][0]) == 0)
				snprintf(name, sizeof name, "%s", semconv[i][1]);
		json_t *val = NULL;
		if (json_is_string(v)) {
			val = json_pack("{s:O}", "stringValue", v);
		} else if (json_is_integer(v)) {
			/* OTLP/JSON writes an int64 as a string. */
			snprintf(ns, sizeof ns, "%lld", (long long)json_integer_value(v));
			val = json_pack("{s:s}", "intValue", ns);
		} else if (json_is_boolean(v)) {
			val = json_pack("{s:O}", "boolValue", v);
		}
		if (!val) {   /* argv: the array as text */
			char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			val = json_pack("{s:s}", "stringValue", t ? t : "");
			free(t);
		}
		json_array_append_new(attrs, json_pack("{s:s,s:o}", "key", name, "value", val));
	}
	int sev = severity(kind);
	static const int otel[] = {21, 21, 17, 17, 13, 10, 9};   /* by syslog severity */
	static const char *const otel_text[] = {"FATAL", "FATAL", "ERROR", "ERROR", "WARN",
						"INFO2", "INFO"};
	snprintf(ns, sizeof ns, "%lld", (long long)json_integer_value(json_object_get(o, "time_ns")));
	rec = json_pack("{s:s,s:i,s:s,s:{s:s},s:o}", "timeUnixNano", ns, "severityNumber", otel[sev],
			"severityText", otel_text[sev], "body", "stringValue", buf ? buf : "",
			"attributes", attrs);
	free(buf);
	char *out = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
	json_decref(rec);
	return out;
}

/* The batch's records as one OTLP/JSON ExportLogsServiceRequest. */
static char *otlp_request(struct exporter *x)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	fputs("{\"resourceLogs\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
	      "\"value\":{\"stringValue\":\"agentguard\"}}]},\"scopeLogs\":[{\"scope\":"
	      "{\"name\":\"agentguard\"},\"logRecords\":[", f);
	for (size_t i = 0; i < x->nmsg; i++)
		fprintf(f, "%s%s", i ? "," : "", x->msg[i]);
	fputs("]}]}]}", f);
	fclose(f);
	return buf;
}

/* The record into the batch, formatted; 0 or -1. */
static int add_record(struct exporter *x, json_t *o)
{
	char cur[64];
	const char *kind = record_kind(o);

	snprintf(cur, sizeof cur, "%lld:%lld", x->at.e, x->at.m);
	json_object_set_new(o, "cursor", json_string(cur));
	if (!wanted(x, kind))
		return 0;
	char *m = x->fmt == FMT_SYSLOG ? format_syslog(x, o, kind)
		: x->fmt == FMT_CEF ? format_cef(x, o, kind)
		: x->fmt == FMT_OTLP ? format_otlp(o, kind)
		: json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!m)
		return -1;
	if (x->nmsg == x->capmsg) {
		size_t cap = x->capmsg ? 2 * x->capmsg : 64;
		char **v = realloc(x->msg, cap * sizeof *v);
		if (!v) {
			free(m);
			return -1;
		}
		x->msg = v;
		x->capmsg = cap;
	}
	x->msg[x->nmsg++] = m;
	return 0;
}

static json_t *mark_json(struct exporter *x, sqlite3_stmt *mk)
{
	if (x->until_end && cli_col(mk, 1) && cli_col(mk, 2) && strcmp(cli_col(mk, 2), "end") == 0 &&
	    strcmp(cli_col(mk, 1), x->until_end) == 0)
		x->ended = 1;
	char t[64], type[32];
	int64_t ns = sqlite3_column_int64(mk, 3);
	json_t *o = json_object();

	snprintf(type, sizeof type, "session_%s", cli_col(mk, 2) ? cli_col(mk, 2) : "?");
	json_object_set_new(o, "type", json_string(type));
	json_object_set_new(o, "session", cli_json_str(cli_col(mk, 1)));
	json_object_set_new(o, "time_ns", json_integer(ns));
	cli_fmt_rfc3339(ns, t, sizeof t);
	json_object_set_new(o, "time", json_string(t));
	json_object_set_new(o, "events", json_integer(sqlite3_column_int64(mk, 5)));
	if (cli_col(mk, 6))
		json_object_set_new(o, "head", cli_json_str(cli_col(mk, 6)));
	if (sqlite3_column_type(mk, 7) != SQLITE_NULL)
		json_object_set_new(o, "exit_status", json_integer(sqlite3_column_int64(mk, 7)));
	cli_ident_json(o, cli_ident_of(x->ids, cli_col(mk, 1)));
	return o;
}

static void batch_clear(struct exporter *x)
{
	for (size_t i = 0; i < x->nmsg; i++)
		free(x->msg[i]);
	x->nmsg = 0;
}

/* One batch: read, format, deliver (retrying), save the cursor. 1 when it
 * carried records, 0 when there was nothing new, -1 on failure. */
static int export_batch(struct exporter *x)
{
	sqlite3_stmt *ev = cli_prepare(&x->d, "SELECT " CLI_EVENT_COLS ", uid FROM events "
					      "WHERE id > ?1 ORDER BY id LIMIT ?2");
	sqlite3_stmt *mk = NULL;
	/* A log from before marks, opened read-only, has none. */
	if (sqlite3_prepare_v2(x->d.db, "SELECT id, session, kind, time_ns, after_event, events, "
			       "head, exit_status FROM marks WHERE id > ?1 ORDER BY id", -1, &mk,
			       NULL) != SQLITE_OK)
		mk = cli_prepare(&x->d, "SELECT 0, '', '', 0, 0, 0, '', 0 WHERE ?1 < 0");
	struct cursor start = x->at;
	long records = 0;
	int rc = -1;

	if (!ev || !mk)
		goto out;
	/* One read transaction: the events and marks of one moment. */
	sqlite3_exec(x->d.db, "BEGIN", NULL, NULL, NULL);
	cli_idents_free(x->ids);
	if (!(x->ids = cli_idents_load(&x->d)))
		goto rollback;
	sqlite3_bind_int64(ev, 1, x->at.e);
	sqlite3_bind_int64(ev, 2, x->batch);
	sqlite3_bind_int64(mk, 1, x->at.m);
	int have_mark = sqlite3_step(mk) == SQLITE_ROW;
	int step;
	while ((step = sqlite3_step(ev)) == SQLITE_ROW) {
		long long id = sqlite3_column_int64(ev, EV_ID);
		/* The marks written before this event was. */
		while (have_mark && sqlite3_column_int64(mk, 4) < id) {
			x->at.m = sqlite3_column_int64(mk, 0);
			json_t *o = mark_json(x, mk);
			int bad = add_record(x, o);
			json_decref(o);
			if (bad < 0)
				goto rollback;
			records++;
			have_mark = sqlite3_step(mk) == SQLITE_ROW;
		}
		x->at.e = id;
		json_t *o = json_object();
		json_object_set_new(o, "type", json_string("event"));
		json_t *e = cli_event_json(ev, cli_ident_of(x->ids, cli_col(ev, EV_SESSION)));
		json_object_update(o, e);
		json_decref(e);
		/* The event's own name, which no rewrite renumbers: an anchor. */
		json_object_set_new(o, "uid", cli_json_str(cli_col(ev, EV_NCOLS)));
		int bad = add_record(x, o);
		json_decref(o);
		if (bad < 0)
			goto rollback;
		records++;
	}
	if (step != SQLITE_DONE)
		goto rollback;
	/* A full batch may have more events before the next marks. */
	while (have_mark && (records < x->batch || sqlite3_column_int64(mk, 4) < x->at.e)) {
		x->at.m = sqlite3_column_int64(mk, 0);
		json_t *o = mark_json(x, mk);
		int bad = add_record(x, o);
		json_decref(o);
		if (bad < 0)
			goto rollback;
		records++;
		have_mark = sqlite3_step(mk) == SQLITE_ROW;
	}
	sqlite3_finalize(ev);
	sqlite3_finalize(mk);
	ev = mk = NULL;
	sqlite3_exec(x->d.db, "COMMIT", NULL, NULL, NULL);
	if (!records) {
		rc = 0;
		goto out;
	}
	if (x->nmsg) {
		char key[160];
		snprintf(key, sizeof key, "%lld:%lld-%lld:%lld", start.e, start.m, x->at.e, x->at.m);
		useconds_t wait = 100000;
		int sent = -1;
		for (long attempt = 0; attempt < x->retries && sent == -1 && !(stopping && attempt); attempt++) {
			if (attempt) {
				usleep(wait);
				wait = wait < 5000000 ? wait * 2 : wait;
			}
			sent = sink_send(x, key);
		}
		if (sent == -2) {
			if (errno != EPIPE)
				cli_err("cannot write to stdout: %s", strerror(errno));
			x->at = start;
			goto out;
		}
		if (sent < 0) {
			cli_err("the sink did not take records %s (after %ld attempts): the cursor "
				"stays at %lld:%lld", key, x->retries, start.e, start.m);
			x->at = start;
			goto out;
		}
	}
	rc = save_state(x) < 0 ? -1 : 1;
	goto out;
rollback:
	sqlite3_exec(x->d.db, "ROLLBACK", NULL, NULL, NULL);
	if (sqlite3_errcode(x->d.db) != SQLITE_OK && sqlite3_errcode(x->d.db) != SQLITE_ROW &&
	    sqlite3_errcode(x->d.db) != SQLITE_DONE)
		cli_db_error(&x->d, "cannot read the events");
	else
		cli_err("cannot format a record (out of memory?)");
	x->at = start;
out:
	batch_clear(x);
	sqlite3_finalize(ev);
	sqlite3_finalize(mk);
	return rc;
}

/* --after E: marks written before event E went out with it. */
static int marks_before(struct exporter *x, long long e, long long *m)
{
	sqlite3_stmt *st = NULL;
	*m = 0;
	if (sqlite3_prepare_v2(x->d.db, "SELECT coalesce(max(id), 0) FROM marks "
			       "WHERE after_event < ?1", -1, &st, NULL) != SQLITE_OK)
		return 0;   /* no marks table: none */
	sqlite3_bind_int64(st, 1, e);
	int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -1;
	*m = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc;
}

static int cmd_export(int argc, char **argv)
{
	struct exporter x = { .retries = 10, .batch = 500 };
	const char *after = NULL, *to = "-", *fmt = "jsonl";
	int c, status = CLI_OK, follow = 0;
	long interval = 1;

	optind = 0;
	while ((c = cli_getopt(argc, argv, options, &x.co, &status)) != -1) {
		switch (c) {
		case CLI_OPT_STOP:
			return status;
		case OPT_FOLLOW: follow = 1; break;
		case OPT_AFTER: after = optarg; break;
		case OPT_CURSOR_FILE: x.cursor_file = optarg; break;
		case OPT_FORMAT: fmt = optarg; break;
		case OPT_TO: to = optarg; break;
		case OPT_ONLY:
			if (snprintf(x.only, sizeof x.only, ",%s,", optarg) >= (int)sizeof x.only)
				return cli_usage("--only: too long");
			break;
		case OPT_RETRIES:
			if (cli_parse_long("--retries", optarg, 1, 1000000, &x.retries) < 0)
				return CLI_USAGE;
			break;
		case OPT_BATCH:
			if (cli_parse_long("--batch", optarg, 1, 100000, &x.batch) < 0)
				return CLI_USAGE;
			break;
		case OPT_INTERVAL:
			if (cli_parse_long("--interval", optarg, 1, 3600, &interval) < 0)
				return CLI_USAGE;
			break;
		case OPT_UNTIL_END: x.until_end = optarg; break;
		}
	}
	if (optind < argc)
		return cli_usage("unexpected argument '%s'", argv[optind]);
	if (strcmp(fmt, "jsonl") == 0 || strcmp(fmt, "json") == 0)
		x.fmt = FMT_JSONL;
	else if (strcmp(fmt, "syslog") == 0 || strcmp(fmt, "rfc5424") == 0)
		x.fmt = FMT_SYSLOG;
	else if (strcmp(fmt, "cef") == 0)
		x.fmt = FMT_CEF;
	else if (strcmp(fmt, "otlp") == 0)
		x.fmt = FMT_OTLP;
	else
		return cli_usage("--format is jsonl, syslog, cef or otlp, not '%s'", fmt);
	if (parse_sink(to, &x.sink) == 0 && x.fmt == FMT_OTLP && x.sink.kind != SINK_HTTP &&
	    x.sink.kind != SINK_STDOUT && x.sink.kind != SINK_FILE)
		return cli_usage("--format otlp goes to http://HOST:PORT/v1/logs (or stdout, a file)");
	if (parse_sink(to, &x.sink) < 0)
		return cli_usage("--to is -, FILE, file:FILE, unix:PATH, udp:HOST:PORT, tcp:HOST:PORT "
				 "or http://HOST[:PORT]/PATH, not '%s'", to);
	static const char *const kinds[] = {"deny", "would-deny", "ask", "allow", "log",
					    "snapshot", "start", "end", "halt"};
	for (char *p = x.only; *p;) {
		char *q = strchr(p + 1, ',');
		if (!q)
			break;
		size_t l = (size_t)(q - p - 1);
		int ok = l == 0;
		for (size_t i = 0; i < sizeof kinds / sizeof kinds[0] && !ok; i++)
			ok = strlen(kinds[i]) == l && strncmp(kinds[i], p + 1, l) == 0;
		if (!ok)
			return cli_usage("--only takes deny, would-deny, ask, allow, log, snapshot, "
					 "start, end and halt, not '%.*s'", (int)l, p + 1);
		p = q;
	}
	if (gethostname(x.host, sizeof x.host - 1) < 0)
		x.host[0] = 0;

	struct sigaction sa = { .sa_handler = on_stop };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A collector started with the machine waits for the first session. */
	char sd[AG_PATH_MAX], dbp[AG_PATH_MAX + 16];
	if (follow && !cli_guarded() && cli_state_dir(&x.co, sd, sizeof sd) == 0) {
		snprintf(dbp, sizeof dbp, "%s/audit.db", sd);
		while (!stopping && access(dbp, F_OK) < 0)
			usleep(200000);
		if (stopping)
			return CLI_OK;
	}
	if (cli_db_open(&x.d, &x.co, CLI_DB_READ) < 0)
		return CLI_FAIL;
	if (x.d.copy && x.cursor_file) {
		/* The copy numbers the spools' events itself; the log will
		 * number them otherwise once they are moved in. */
		cli_err("--state keeps a cursor into the log, and inside a guarded session the "
			"log is a copy whose newest events have no ids of the log's yet: run an "
			"exporter that resumes outside the session");
		cli_db_close(&x.d);
		return CLI_FAIL;
	}
	int rc = 0, known = 0;
	long long offset = -1;
	int saved = x.cursor_file ? load_state(x.cursor_file, &x.at, &offset) : 0;
	if (saved < 0) {
		cli_err("%s holds no cursor: move it aside, or pass --after", x.cursor_file);
		rc = -1;
	} else if (!saved && after) {
		if (parse_cursor(after, &x.at, &known) < 0) {
			cli_db_close(&x.d);
			return cli_usage("--after wants an event id or a cursor E:M, not '%s'", after);
		}
		if (!known)
			rc = marks_before(&x, x.at.e, &x.at.m);
	}
	/* What a killed exporter wrote to the file after its last saved
	 * cursor goes: from the cursor on it is written again. */
	if (rc == 0 && saved > 0 && offset >= 0 && x.sink.kind == SINK_FILE) {
		struct stat st;
		if (stat(x.sink.target, &st) == 0 && st.st_size > offset &&
		    truncate(x.sink.target, offset) < 0) {
			cli_err("cannot cut %s back to the saved cursor: %s", x.sink.target,
				strerror(errno));
			rc = -1;
		}
	}
	if (rc == 0 && x.sink.kind == SINK_FILE && sink_open(&x.sink) < 0) {
		cli_err("cannot open %s: %s", x.sink.target, strerror(errno));
		rc = -1;
	}
	while (rc == 0 && !stopping) {
		int more = export_batch(&x);
		if (more < 0) {
			rc = -1;
			break;
		}
		if (x.ended)
			break;
		if (more)
			continue;
		if (!follow)
			break;
		for (long i = 0; i < interval * 10 && !stopping; i++)
			usleep(100000);
		if (!stopping && (!x.d.readonly || x.d.copy)) {
			char err[512];
			if (ag_audit_ingest(x.d.db, x.d.state_dir, x.d.copy ? AG_INGEST_COPY : 0, err,
					    sizeof err) < 0)
				cli_warn("cannot move new events into the log yet: %s", err);
		}
	}
	sink_close(&x.sink);
	free(x.msg);
	cli_idents_free(x.ids);
	cli_db_close(&x.d);
	return rc < 0 ? CLI_FAIL : CLI_OK;
}

const struct cli_command cli_cmd_export = {
	.name = "export",
	.summary = "stream the audit log to a collector (JSON Lines, syslog, CEF) with a cursor",
	.help = help,
	.main = cmd_export,
};

/* ---- alerts ---------------------------------------------------------------
 * `run --alert SINK`: an exporter of the session's denials, asks and halt,
 * started from the log's present end, stopping after the session's end. */

int cli_alert_check(const char *sink, const char *format)
{
	struct sink k;

	if (strcmp(format, "jsonl") && strcmp(format, "syslog") && strcmp(format, "cef"))
		return -1;
	return parse_sink(sink, &k);
}

pid_t cli_alert_start(struct cli_db *d, const char *sink, const char *format,
		      const char *session)
{
	sqlite3_stmt *st = cli_prepare(d, "SELECT (SELECT coalesce(max(id), 0) FROM events),"
					  " (SELECT coalesce(max(id), 0) FROM marks)");
	char cur[64], exe[AG_PATH_MAX];

	if (!st)
		return -1;
	int ok = sqlite3_step(st) == SQLITE_ROW;
	snprintf(cur, sizeof cur, "%lld:%lld", (long long)sqlite3_column_int64(st, 0),
		 (long long)sqlite3_column_int64(st, 1));
	sqlite3_finalize(st);
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (!ok || n <= 0)
		return -1;
	exe[n] = 0;
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Not a process of the session: without the library and its session. */
	unsetenv("LD_PRELOAD");
	for (int again = 1; again;) {
		extern char **environ;
		again = 0;
		for (char **e = environ; e && *e; e++) {
			char name[128];
			size_t l = strcspn(*e, "=");
			if (strncmp(*e, "AGENTGUARD_", 11) || l >= sizeof name ||
			    strncmp(*e, "AGENTGUARD_KEY_FILE=", 20) == 0)
				continue;
			snprintf(name, sizeof name, "%.*s", (int)l, *e);
			unsetenv(name);
			again = 1;
			break;
		}
	}
	execl(exe, "agentguard", "export", "--follow", "--only", "deny,would-deny,ask,halt",
	      "--after", cur, "--until-end", session, "--format", format, "--to", sink,
	      "--state-dir", d->state_dir, (char *)NULL);
	_exit(127);
}

/* Its last records out (it stops by itself after the session's end). */
void cli_alert_stop(pid_t pid)
{
	int st;

	if (pid <= 0)
		return;
	for (int i = 0; i < 150; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD))
			return;
		usleep(100000);
	}
	cli_warn("the alert exporter did not finish in 15 s: stopped");
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
}

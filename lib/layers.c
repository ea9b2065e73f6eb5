/*
 * Which rule files a session uses, and the one text they are frozen as.
 *
 * A rule file may say `extends: builtin:default` or `extends: other.yaml`
 * (relative to its own directory); the managed file of the machine is laid
 * over whatever was chosen. Resolving happens once, where the session
 * starts (or `check`/`explain` run): the files found, lowest first, are
 * packed into one "layer bundle" that is frozen like a single rule file,
 * so a process joining the session never looks for files again, and the
 * session's rules are exactly what its start read even if the files
 * change. A single file that extends nothing is frozen as itself.
 *
 * Bundle format (text, so `cat` shows it):
 *   "agentguard-layers 1\n" then per layer, lowest first:
 *   "<namelen> <textlen> <m|->\n" <name> "\n" <text> "\n"
 * (m: the managed layer). policy.c reads it with ag_layers_split.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "agentguard.h"

#define MAGIC "agentguard-layers 1\n"

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int is_builtin(const char *s)
{
	return strcmp(s, "builtin") == 0 || strcmp(s, "builtin:default") == 0 ||
	       strcmp(s, "builtin:default.yaml") == 0;
}

/*
 * The value of a top-level `extends:` key, with its position. 0: none (or
 * the text is not a mapping of ours: the compiler will say what is wrong
 * with it, with the same position), 1: found, -1: it is not a string.
 */
int ag_rules_extends(const char *text, size_t len, char *out, size_t outlen, int *line,
		     int *col)
{
	yaml_parser_t ps;
	yaml_event_t ev;
	int depth = 0, want_key = 0, found = 0, rc = 0, map = 0;

	/* Most texts never say it: no second parse for them (a process that
	 * compiles the built-in set itself). */
	if (!memmem(text, len, "extends", 7))
		return 0;
	if (!yaml_parser_initialize(&ps))
		return 0;
	yaml_parser_set_input_string(&ps, (const unsigned char *)text, len);
	for (;;) {
		if (!yaml_parser_parse(&ps, &ev))
			break;
		yaml_event_type_t t = ev.type;
		int at_top = depth == 1;
		if (t == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (found) {
			*line = (int)ev.start_mark.line + 1;
			*col = (int)ev.start_mark.column + 1;
			if (t == YAML_SCALAR_EVENT && ev.data.scalar.length < outlen &&
			    strlen((const char *)ev.data.scalar.value) == ev.data.scalar.length) {
				memcpy(out, ev.data.scalar.value, ev.data.scalar.length + 1);
				rc = 1;
			} else {
				rc = -1;
			}
			yaml_event_delete(&ev);
			break;
		}
		if (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT) {
			if (at_top)
				want_key = !want_key;   /* a value */
			depth++;
			if (depth == 1) {
				map = t == YAML_MAPPING_START_EVENT;
				want_key = 1;
			}
		} else if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT) {
			depth--;
		} else if (t == YAML_SCALAR_EVENT && at_top && map) {
			if (want_key && strcmp((const char *)ev.data.scalar.value, "extends") == 0)
				found = 1;
			want_key = !want_key;
		}
		yaml_event_delete(&ev);
		if (depth == 0 && t == YAML_MAPPING_END_EVENT)
			break;
	}
	yaml_parser_delete(&ps);
	return rc;
}

struct chain {
	struct ag_layer l[AG_LAYERS_MAX];
	int n;
};

static void chain_free(struct chain *c)
{
	for (int i = 0; i < c->n; i++) {
		if (c->l[i].text != ag_default_rules)
			free((char *)c->l[i].text);
		free((char *)c->l[i].name);
	}
	c->n = 0;
}

/* Prepends (the chain is built from the top down). */
static int chain_push(struct chain *c, const char *name, const char *text, size_t len,
		      int managed)
{
	char *nm = strdup(name);

	if (!nm)
		return -1;
	memmove(&c->l[1], &c->l[0], (size_t)c->n * sizeof c->l[0]);
	c->l[0] = (struct ag_layer){.name = nm, .text = text, .len = len, .managed = managed};
	c->n++;
	return 0;
}

/* `top` and everything it extends, lowest first. */
static int follow(struct chain *c, const char *top, int managed, char *err, size_t errlen)
{
	char path[AG_PATH_MAX], real[AG_LAYERS_MAX][PATH_MAX];
	int nreal = 0;

	snprintf(path, sizeof path, "%s", top);
	for (;;) {
		if (is_builtin(path)) {
			if (managed) {
				seterr(err, errlen, "%s:1:1: the managed rules cannot extend another "
				       "set: they are laid over whatever a session chose", top);
				return -1;
			}
			return chain_push(c, "builtin:default.yaml", ag_default_rules,
					  ag_default_rules_len, 0);
		}
		if (c->n + 2 > AG_LAYERS_MAX) {
			seterr(err, errlen, "%s:1:1: rule files extend one another more than %d deep",
			       path, AG_LAYERS_MAX - 2);
			return -1;
		}
		size_t len = 0;
		char *text = ag_read_file(path, &len);
		if (!text) {
			seterr(err, errlen, "%s:1:1: cannot read the rule file: %s", path,
			       errno == EINVAL ? "not a regular file" : strerror(errno));
			return -1;
		}
		if (realpath(path, real[nreal])) {
			for (int i = 0; i < nreal; i++)
				if (strcmp(real[i], real[nreal]) == 0) {
					seterr(err, errlen, "%s:1:1: rule files extend one another in a "
					       "circle (this one again)", path);
					free(text);
					return -1;
				}
			nreal++;
		}
		if (chain_push(c, path, text, len, managed) < 0) {
			free(text);
			return -1;
		}
		char ext[AG_PATH_MAX];
		int line = 1, col = 1;
		int rc = ag_rules_extends(text, len, ext, sizeof ext, &line, &col);
		if (rc == 0)
			return 0;
		if (rc < 0) {
			seterr(err, errlen, "%s:%d:%d: extends takes one name: builtin:default or a "
			       "rule file", path, line, col);
			return -1;
		}
		if (managed && !is_builtin(ext)) {
			seterr(err, errlen, "%s:%d:%d: the managed rules cannot extend another file",
			       path, line, col);
			return -1;
		}
		if (managed)
			return 0;   /* over the chosen set, which includes the built-in one */
		char next[AG_PATH_MAX];
		if (is_builtin(ext) || ext[0] == '/') {
			snprintf(next, sizeof next, "%s", ext);
		} else if (!strncmp(ext, "builtin:", 8)) {
			seterr(err, errlen, "%s:%d:%d: unknown built-in set '%s' (there is "
			       "builtin:default)", path, line, col, ext);
			return -1;
		} else {
			const char *slash = strrchr(path, '/');
			int dl = slash ? (int)(slash - path) : 1;
			if (ag_fmt(next, sizeof next, "%.*s/%s", dl, slash ? path : ".", ext) < 0) {
				seterr(err, errlen, "%s:%d:%d: extends: path too long", path, line, col);
				return -1;
			}
		}
		if (access(next, F_OK) != 0 && !is_builtin(next)) {
			seterr(err, errlen, "%s:%d:%d: extends '%s': %s", path, line, col, ext,
			       strerror(errno));
			return -1;
		}
		snprintf(path, sizeof path, "%s", next);
	}
}

static int exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

const char *ag_rules_sysconfdir(void)
{
	const char *d = ag_getenv("AGENTGUARD_SYSCONFDIR");
	return d && d[0] == '/' ? d : "/etc/agentguard";
}

int ag_rules_lookup(const char *given, const char *workspace, char *out, size_t outlen)
{
	const char *xdg = ag_getenv("XDG_CONFIG_HOME"), *home = ag_getenv("HOME");

	if (given && *given)
		return ag_fmt(out, outlen, "%s", given) < 0 ? -1 : 0;
	if (workspace && *workspace && ag_fmt(out, outlen, "%s/.agentguard.yaml", workspace) == 0 &&
	    exists(out))
		return 0;
	if (((xdg && xdg[0] == '/' &&
	      ag_fmt(out, outlen, "%s/agentguard/rules.yaml", xdg) == 0) ||
	     (home && home[0] == '/' &&
	      ag_fmt(out, outlen, "%s/.config/agentguard/rules.yaml", home) == 0)) &&
	    exists(out))
		return 0;
	if (ag_fmt(out, outlen, "%s/rules.yaml", ag_rules_sysconfdir()) == 0 && exists(out))
		return 0;
	return ag_fmt(out, outlen, "builtin") < 0 ? -1 : 0;
}

int ag_rules_resolve(const char *top, struct ag_rules_text *out, char *err, size_t errlen)
{
	struct chain c = {.n = 0};
	char managed[AG_PATH_MAX];

	memset(out, 0, sizeof *out);
	if (err && errlen)
		err[0] = 0;
	if (follow(&c, top, 0, err, errlen) < 0)
		goto fail;
	/* The machine's managed rules, over everything. Present but unreadable
	 * is an error: a session must not start without them. */
	if (ag_fmt(managed, sizeof managed, "%s/managed.yaml", ag_rules_sysconfdir()) == 0 &&
	    exists(managed)) {
		struct chain m = {.n = 0};
		if (follow(&m, managed, 1, err, errlen) < 0) {
			chain_free(&m);
			goto fail;
		}
		c.l[c.n++] = m.l[0];
	}

	/* What sessions, logs and messages call it: the chosen file, then
	 * what is laid over it. */
	int top_i = c.n - 1 - (c.n > 1 && c.l[c.n - 1].managed);
	size_t nl = 0;
	nl += (size_t)snprintf(out->name, sizeof out->name, "%s", c.l[top_i].name);
	for (int i = top_i + 1; i < c.n && nl < sizeof out->name; i++)
		nl += (size_t)snprintf(out->name + nl, sizeof out->name - nl, " + %s",
				       c.l[i].name);
	out->nlayers = c.n;

	if (c.n == 1) {
		out->text = (char *)c.l[0].text;
		out->len = c.l[0].len;
		out->builtin = c.l[0].text == ag_default_rules;
		free((char *)c.l[0].name);
		return 0;
	}
	size_t cap = sizeof MAGIC;
	for (int i = 0; i < c.n; i++)
		cap += strlen(c.l[i].name) + c.l[i].len + 64;
	char *b = malloc(cap);
	if (!b) {
		seterr(err, errlen, "%s:1:1: out of memory", top);
		goto fail;
	}
	size_t off = (size_t)snprintf(b, cap, "%s", MAGIC);
	for (int i = 0; i < c.n; i++) {
		size_t l = strlen(c.l[i].name);
		off += (size_t)snprintf(b + off, cap - off, "%zu %zu %c\n", l, c.l[i].len,
					c.l[i].managed ? 'm' : '-');
		memcpy(b + off, c.l[i].name, l);
		off += l;
		b[off++] = '\n';
		memcpy(b + off, c.l[i].text, c.l[i].len);
		off += c.l[i].len;
		b[off++] = '\n';
	}
	b[off] = 0;
	out->text = b;
	out->len = off;
	chain_free(&c);
	return 0;
fail:
	chain_free(&c);
	return -1;
}

void ag_rules_text_free(struct ag_rules_text *t)
{
	if (t->text && t->text != ag_default_rules)
		free(t->text);
	t->text = NULL;
}

int ag_layers_is_bundle(const char *text, size_t len)
{
	return len >= sizeof MAGIC - 1 && memcmp(text, MAGIC, sizeof MAGIC - 1) == 0;
}

static int read_num(const char **p, const char *end, size_t *v, char stop)
{
	size_t n = 0;
	const char *s = *p;

	if (s >= end || *s < '0' || *s > '9')
		return -1;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (n > (SIZE_MAX - 9) / 10)
			return -1;
		n = n * 10 + (size_t)(*s - '0');
	}
	if (s >= end || *s != stop)
		return -1;
	*v = n;
	*p = s + 1;
	return 0;
}

int ag_layers_split(const char *text, size_t len, struct ag_layer *out, int max)
{
	const char *p = text + sizeof MAGIC - 1, *end = text + len;
	int n = 0;

	if (!ag_layers_is_bundle(text, len))
		return -1;
	while (p < end) {
		size_t nl, tl;
		if (n == max || read_num(&p, end, &nl, ' ') < 0 || read_num(&p, end, &tl, ' ') < 0 ||
		    end - p < 2 || (p[0] != 'm' && p[0] != '-') || p[1] != '\n')
			return -1;
		int managed = p[0] == 'm';
		p += 2;
		if ((size_t)(end - p) < nl + 1 || p[nl] != '\n')
			return -1;
		const char *name = p;
		p += nl + 1;
		if ((size_t)(end - p) < tl + 1 || p[tl] != '\n')
			return -1;
		out[n++] = (struct ag_layer){.name = name, .name_len = nl, .text = p, .len = tl,
					     .managed = managed};
		p += tl + 1;
	}
	return n;
}

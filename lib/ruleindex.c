/*
 * ruleindex: which of an op's rules can match a path, without asking each.
 *
 * Every path glob that is not a bare file name matches only subjects that
 * start with its literal prefix (match.c relies on it too). Cut back to a
 * whole directory, that prefix is a key: a subject can only match a rule
 * if one of the subject's leading directories (or the subject itself) is
 * one of the rule's keys. A decision hashes the subject's prefixes in one
 * pass and evaluates, in precedence order, only the rules found under
 * them and those that have no key (a bare-name glob, "/" with a wildcard,
 * no path at all). At 1,000 rules that is a handful of evaluations, not a thousand.
 *
 * Built once when the rules compile, in the policy's own memory (so it is
 * part of a session's image, pimage.c); never written afterwards.
 */
#include <stdint.h>
#include <string.h>

#include "policy_internal.h"

static uint32_t fnv_step(uint32_t h, unsigned char ch)
{
	return (h ^ ch) * 16777619u;
}

#define FNV0 2166136261u

/* The key of one glob: its length, or 0 (none: the rule is always asked). */
static size_t glob_key(const struct ag_glob *g)
{
	if (g->base || g->pat[0] != '/')
		return 0;
	size_t n = g->plen;
	if (g->shape != AG_GLOB_EXACT && g->shape != AG_GLOB_UNDER) {
		/* A wildcard follows: only the directories before it are sure. */
		while (n > 0 && g->pat[n - 1] != '/')
			n--;
	}
	while (n > 0 && g->pat[n - 1] == '/')
		n--;
	return n;   /* 0 for "/" itself: everything is under it */
}

static int indexable(enum ag_op_kind k)
{
	return k == AG_OP_DELETE || k == AG_OP_RENAME || k == AG_OP_TRUNCATE ||
	       k == AG_OP_WRITE || k == AG_OP_MODE || k == AG_OP_LINK || k == AG_OP_EXEC;
}

/* Execs are keyed by program name instead: a rule whose every `program:`
 * glob is a plain name matches only programs of those names. */
static const struct ag_globset *keyed_set(const struct ag_rule *r, enum ag_op_kind k)
{
	return k == AG_OP_EXEC ? &r->m.program : &r->m.path;
}

static size_t key_len(const struct ag_glob *g, enum ag_op_kind k)
{
	if (k != AG_OP_EXEC)
		return glob_key(g);
	return g->base && g->shape == AG_GLOB_EXACT ? strlen(g->pat) : 0;
}

/* Rule r's keys, or 0 when it must always be asked. */
static int rule_keys(const struct ag_rule *r, enum ag_op_kind k)
{
	const struct ag_globset *set = keyed_set(r, k);

	if (!(r->m.present & (k == AG_OP_EXEC ? AG_M_PROGRAM : AG_M_PATH)) || !set->n)
		return 0;
	for (size_t i = 0; i < set->n; i++)
		if (!key_len(&set->g[i], k))
			return 0;
	return 1;
}

static const struct ag_pkey *find(const struct ag_pindex *x, uint32_t h, const char *s,
				  size_t len)
{
	for (uint32_t i = h & x->mask;; i = (i + 1) & x->mask) {
		const struct ag_pkey *k = &x->slot[i];
		if (!k->key)
			return NULL;
		if (k->hash == h && k->len == len && memcmp(k->key, s, len) == 0)
			return k;
	}
}

static uint32_t hash_of(const char *s, size_t n)
{
	uint32_t h = FNV0;
	for (size_t i = 0; i < n; i++)
		h = fnv_step(h, (unsigned char)s[i]);
	return h;
}

/* One op's index, or NULL (too few rules to be worth it, or nothing to
 * key them by). */
static struct ag_pindex *build_one(const struct ag_rule *const *rs, size_t n,
				   enum ag_op_kind op, void *(*alloc)(void *, size_t), void *ctx,
				   int *oom)
{
	size_t nkeys = 0, nalways = 0;

	for (size_t p = 0; p < n; p++) {
		if (rule_keys(rs[p], op))
			nkeys += keyed_set(rs[p], op)->n;
		else
			nalways++;
	}
	if (!nkeys)
		return NULL;
	uint32_t slots = 16;
	while (slots < 2 * nkeys)
		slots <<= 1;
	struct ag_pindex *x = alloc(ctx, sizeof *x);
	struct ag_pkey *slot = alloc(ctx, slots * sizeof *slot);
	uint32_t *always = alloc(ctx, (nalways ? nalways : 1) * sizeof *always);
	/* Positions per key: at most one per glob, laid out key by key. */
	uint32_t *pos = alloc(ctx, nkeys * sizeof *pos);
	if (!x || !slot || !always || !pos) {
		*oom = 1;
		return NULL;
	}
	x->mask = slots - 1;
	x->slot = slot;
	x->always = always;
	/* First pass: the keys, and how many positions each holds. */
	for (size_t p = 0; p < n; p++) {
		if (!rule_keys(rs[p], op)) {
			always[x->nalways++] = (uint32_t)p;
			continue;
		}
		const struct ag_globset *set = keyed_set(rs[p], op);
		for (size_t i = 0; i < set->n; i++) {
			const struct ag_glob *g = &set->g[i];
			size_t len = key_len(g, op);
			uint32_t h = hash_of(g->pat, len);
			struct ag_pkey *k = (struct ag_pkey *)find(x, h, g->pat, len);
			if (!k) {
				uint32_t j = h & x->mask;
				while (slot[j].key)
					j = (j + 1) & x->mask;
				k = &slot[j];
				*k = (struct ag_pkey){.hash = h, .len = (uint32_t)len, .key = g->pat};
			}
			k->npos++;
		}
	}
	uint32_t at = 0;
	for (uint32_t j = 0; j < slots; j++)
		if (slot[j].key) {
			slot[j].pos = pos + at;
			at += slot[j].npos;
			slot[j].npos = 0;
		}
	/* Second pass: the positions, ascending within each key; a rule with
	 * two globs under one key is listed once. */
	for (size_t p = 0; p < n; p++) {
		if (!rule_keys(rs[p], op))
			continue;
		const struct ag_globset *set = keyed_set(rs[p], op);
		for (size_t i = 0; i < set->n; i++) {
			const struct ag_glob *g = &set->g[i];
			size_t len = key_len(g, op);
			struct ag_pkey *k = (struct ag_pkey *)find(x, hash_of(g->pat, len), g->pat,
								   len);
			uint32_t *kp = (uint32_t *)k->pos;
			if (!k->npos || kp[k->npos - 1] != p)
				kp[k->npos++] = (uint32_t)p;
		}
	}
	return x;
}

int ag_index_build(struct ag_policy *p, void *(*alloc)(void *, size_t), void *ctx)
{
	int oom = 0;

	for (int k = 0; k < AG_OP_COUNT; k++) {
		p->pindex[k] = NULL;
		if (indexable((enum ag_op_kind)k) && p->nbyop[k] >= AG_INDEX_MIN &&
		    p->nbyop[k] <= AG_INDEX_MAX)
			p->pindex[k] = build_one(p->byop[k], p->nbyop[k], (enum ag_op_kind)k, alloc,
						 ctx, &oom);
		if (oom)
			return -1;
	}
	return 0;
}

static void mark(uint64_t *bits, const uint32_t *pos, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		bits[pos[i] >> 6] |= 1ull << (pos[i] & 63);
}

/* Every leading directory of s, and s itself: "/a/b/c" looks up "/a",
 * "/a/b" and "/a/b/c". */
static void mark_subject(const struct ag_pindex *x, const char *s, uint64_t *bits)
{
	if (!s || s[0] != '/')
		return;
	uint32_t h = fnv_step(FNV0, '/');
	size_t i = 1;
	for (;; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch == '/' || ch == 0) && i > 1 && s[i - 1] != '/') {
			const struct ag_pkey *k = find(x, h, s, i);
			if (k)
				mark(bits, k->pos, k->npos);
		}
		if (!ch)
			break;
		h = fnv_step(h, ch);
	}
}

size_t ag_index_candidates(const struct ag_pindex *x, const char *path, const char *target,
			   uint64_t *bits, size_t n)
{
	size_t words = (n + 63) / 64;

	memset(bits, 0, words * sizeof *bits);
	mark(bits, x->always, x->nalways);
	mark_subject(x, path, bits);
	mark_subject(x, target, bits);
	return words;
}

size_t ag_index_named(const struct ag_pindex *x, const char *name, size_t len, uint64_t *bits,
		      size_t n)
{
	size_t words = (n + 63) / 64;

	memset(bits, 0, words * sizeof *bits);
	mark(bits, x->always, x->nalways);
	if (name) {
		const struct ag_pkey *k = find(x, hash_of(name, len), name, len);
		if (k)
			mark(bits, k->pos, k->npos);
	}
	return words;
}

/*
 * The glob matchers' cost and their agreement with a plain definition.
 *
 * Cost is measured in the matchers' own loop iterations (ag_match_steps),
 * never by the clock: a hostile rule must not turn one guarded unlink of a
 * deep path into seconds of work, and the bound asserted here is a small
 * multiple of |pattern| * |subject| for every pattern ag_glob_check accepts.
 * The elapsed time is printed for the record only.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentguard.h"
#include "policy_internal.h"

/* ---- the reference: the definition, written as directly as possible ----- */

/* One bracket expression at p (p[0] == '['), only the forms the random
 * generator below emits: [xy], [!xy], [x-y]. Returns its length. */
static size_t ref_class(const char *p, char c, int *hit)
{
	size_t i = 1;
	int neg = 0, in = 0;

	if (p[i] == '!') {
		neg = 1;
		i++;
	}
	while (p[i] != ']') {
		if (p[i + 1] == '-' && p[i + 2] != ']') {
			in |= c >= p[i] && c <= p[i + 2];
			i += 3;
		} else {
			in |= c == p[i];
			i++;
		}
	}
	*hit = in != neg;
	return i + 1;
}

/* One component: exponential backtracking, fine for tiny inputs. */
static int ref_seg(const char *p, size_t pn, const char *s, size_t sn)
{
	if (pn == 0)
		return sn == 0;
	if (p[0] == '*')
		return ref_seg(p + 1, pn - 1, s, sn) || (sn && ref_seg(p, pn, s + 1, sn - 1));
	if (!sn)
		return 0;
	if (p[0] == '?')
		return ref_seg(p + 1, pn - 1, s + 1, sn - 1);
	if (p[0] == '[') {
		int hit;
		size_t k = ref_class(p, s[0], &hit);
		return hit && ref_seg(p + k, pn - k, s + 1, sn - 1);
	}
	if (p[0] == '\\')
		return p[1] == s[0] && ref_seg(p + 2, pn - 2, s + 1, sn - 1);
	return p[0] == s[0] && ref_seg(p + 1, pn - 1, s + 1, sn - 1);
}

struct comps {
	const char *at[64];
	size_t len[64];
	size_t n;
};

static void split(const char *s, struct comps *c)
{
	c->n = 0;
	for (;;) {
		const char *e = strchrnul(s, '/');
		cr_assert_lt(c->n, 64);
		c->at[c->n] = s;
		c->len[c->n++] = (size_t)(e - s);
		if (!*e)
			return;
		s = e + 1;
	}
}

/* Component sequences: '**' takes zero or more components, every other
 * pattern component exactly one. */
static int ref_path(const struct comps *p, size_t i, const struct comps *s, size_t j)
{
	if (i == p->n)
		return j == s->n;
	if (p->len[i] == 2 && memcmp(p->at[i], "**", 2) == 0)
		return ref_path(p, i + 1, s, j) || (j < s->n && ref_path(p, i, s, j + 1));
	return j < s->n && ref_seg(p->at[i], p->len[i], s->at[j], s->len[j]) &&
	       ref_path(p, i + 1, s, j + 1);
}

static int ref_match(const char *pat, const char *path)
{
	struct comps p, s;
	split(pat, &p);
	split(path, &s);
	return ref_path(&p, 0, &s, 0);
}

/* xorshift64: the same sequence on every run, so a failure reproduces. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static void rand_pattern(char *out, size_t cap)
{
	static const char *const tok[] = {
		"a", "b", "a", "b", "*", "*", "?", "/", "/", "/**/", "**", "[ab]", "[!a]",
		"[a-b]", "\\*", "*a", "b*",
	};
	size_t n = 0, k = 1 + rnd(7);

	out[0] = 0;
	if (rnd(2))
		out[n++] = '/';
	out[n] = 0;
	for (size_t i = 0; i < k; i++) {
		const char *t = tok[rnd(sizeof tok / sizeof *tok)];
		if (n + strlen(t) + 1 >= cap)
			break;
		strcpy(out + n, t);
		n += strlen(t);
	}
}

static void rand_path(char *out, size_t cap)
{
	static const char alpha[] = "aab/*";
	size_t n = rnd(11);

	if (n >= cap)
		n = cap - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = alpha[rnd(sizeof alpha - 1)];
	out[n] = 0;
}

Test(glob_ref, agrees_with_the_definition)
{
	char pat[64], path[64];
	unsigned checked = 0, matched = 0;

	for (int i = 0; i < 200000; i++) {
		rand_pattern(pat, sizeof pat);
		if (ag_glob_check(pat))
			continue;
		rand_path(path, sizeof path);
		int want = ref_match(pat, path), got = ag_glob_match(pat, path);
		cr_assert_eq(got, want, "ag_glob_match(\"%s\", \"%s\") = %d, the definition says %d",
			     pat, path, got, want);
		checked++;
		matched += (unsigned)want;
	}
	/* The generator must exercise both outcomes, or the test proves little. */
	cr_assert_gt(checked, 100000);
	cr_assert_gt(matched, checked / 50, "only %u of %u matched", matched, checked);
}

Test(glob_ref, flat_agrees_with_the_definition)
{
	char pat[64], s[64];

	for (int i = 0; i < 100000; i++) {
		rand_pattern(pat, sizeof pat);
		if (ag_glob_check(pat) || strstr(pat, "/"))
			continue;
		rand_path(s, sizeof s);
		int want = ref_seg(pat, strlen(pat), s, strlen(s));
		cr_assert_eq(ag_glob_flat(pat, s, strlen(s), 0), want, "ag_glob_flat(\"%s\", \"%s\")",
			     pat, s);
	}
}

/* ---- cost ---------------------------------------------------------------- */

/* "/" + n components of `comp`, then "/" + `last` when not NULL. */
static char *deep_path(size_t n, const char *comp, const char *last)
{
	size_t cl = strlen(comp), ll = last ? strlen(last) + 1 : 0;
	char *s = malloc(n * (cl + 1) + ll + 1), *q = s;

	cr_assert_not_null(s);
	for (size_t i = 0; i < n; i++) {
		*q++ = '/';
		memcpy(q, comp, cl);
		q += cl;
	}
	if (last) {
		*q++ = '/';
		strcpy(q, last);
		q += ll - 1;
	}
	*q = 0;
	return s;
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Match, then check the steps taken against k * |pattern| * |subject|. */
static void bounded(const char *pat, const char *path, int want, unsigned long k)
{
	size_t pl = strlen(pat), sl = strlen(path);

	cr_assert_null(ag_glob_check(pat), "%s should be an accepted pattern", pat);
	ag_match_steps = 0;
	double t0 = now_ms();
	int got = ag_glob_match(pat, path);
	double ms = now_ms() - t0;
	unsigned long steps = ag_match_steps, limit = k * (pl + 1) * (sl + 1);
	fprintf(stderr, "glob cost: %-28.28s on %zu bytes: %lu steps (limit %lu), %.3f ms\n",
		pat, sl, steps, limit, ms);
	cr_assert_eq(got, want, "%s", pat);
	cr_assert_leq(steps, limit, "%s: %lu steps for %zu x %zu", pat, steps, pl, sl);
}

Test(glob_cost, many_double_stars_on_a_deep_path)
{
	/* 4,000 components: the 4th power of the depth was 2.5e14 steps. */
	char *miss = deep_path(4000, "a", "b");
	char *hit = deep_path(4000, "a", "c");

	bounded("/**/a/**/a/**/a/**/c", miss, 0, 4);
	bounded("/**/a/**/a/**/a/**/c", hit, 1, 4);
	bounded("/**/a/a/**/a/a/**/a/a/**/c", miss, 0, 4);
	bounded("/**/*/**/?/**/[a]/**/c", miss, 0, 4);
	bounded("**/a/**/a/**/a/**/a/c", miss, 0, 4);
	bounded("/**/a/**/b/**/a/**", miss, 0, 4);
	free(miss);
	free(hit);
}

Test(glob_cost, stars_in_components_on_a_deep_path)
{
	char *path = deep_path(4000, "aaaaaaaaaa", "aaaaaaaaab");

	bounded("/**/*a*a*a*b/**/*a*a*a*c", path, 0, 4);
	bounded("/**/*a*a*a*a*a*a*a*a*a*c", path, 0, 4);
	bounded("/**/*a*a*a*b", path, 1, 4);
	bounded("/**/[a][a]*[!x]*[b-c]/**/c", path, 0, 4);
	free(path);
}

Test(glob_cost, many_stars_in_one_long_component)
{
	size_t n = 40000;
	char *path = malloc(n + 2);
	cr_assert_not_null(path);
	path[0] = '/';
	memset(path + 1, 'a', n);
	path[n] = 'b';
	path[n + 1] = 0;

	bounded("/*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*c", path, 0, 4);
	bounded("/*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", path, 1, 4);
	bounded("/**/*aaaaaaaaaaaaaaaaaaaaaaaaac", path, 0, 4);
	free(path);
}

/* argv and host globs go through the same one-component matcher. */
Test(glob_cost, argv_and_host_globs)
{
	const char *yaml =
		"version: 1\n"
		"rules:\n"
		"  - {id: a, on: exec, args: ['*a*a*a*a*a*a*a*a*c', '-*a*a*a*c'], action: deny}\n"
		"  - {id: h, on: connect, host: ['*a*a*a*a*a*a*a*a*c.example'], action: deny}\n";
	static const struct ag_policy_env env = {
		.home = "/home/u", .workspace = "/w", .cwd = "/w", .tmpdir = "/tmp",
	};
	char err[256];
	struct ag_policy *p = ag_policy_load("t.yaml", yaml, strlen(yaml), &env, err, sizeof err);
	cr_assert_not_null(p, "%s", err);

	size_t n = 20000;
	char *arg = malloc(n + 1), *flag = malloc(n + 1);
	cr_assert(arg && flag);
	memset(arg, 'a', n);
	arg[n] = 0;
	memcpy(flag, arg, n + 1);
	flag[0] = '-';
	const char *argv[] = {"x", arg, flag, arg, flag, NULL};
	struct ag_op op = {.kind = AG_OP_EXEC, .path = "/bin/x", .argv = argv, .port = -1,
			   .sql_class = -1};
	struct ag_verdict v;

	ag_match_steps = 0;
	ag_decide(p, &op, &v);
	cr_assert_null(v.rule_id);
	/* Four arguments of n bytes, each against both ~18-byte globs. */
	unsigned long limit = 4ul * 4 * (18 + 1) * (n + 1) * 2;
	fprintf(stderr, "glob cost: argv: %lu steps (limit %lu)\n", ag_match_steps, limit);
	cr_assert_leq(ag_match_steps, limit);

	struct ag_op c = {.kind = AG_OP_CONNECT, .host = arg, .addr = "203.0.113.9",
			  .port = 443, .sql_class = -1};
	ag_match_steps = 0;
	ag_decide(p, &c, &v);
	cr_assert_null(v.rule_id);
	limit = 4ul * (28 + 1) * (n + 1);
	fprintf(stderr, "glob cost: host: %lu steps (limit %lu)\n", ag_match_steps, limit);
	cr_assert_leq(ag_match_steps, limit);
	free(arg);
	free(flag);
	ag_policy_free(p);
}

/*
 * decide: policy + operation -> verdict. Pure and allocation-free: the
 * policy is immutable and everything per-call lives on the stack, so any
 * number of threads (and signal handlers) may decide at once.
 */
#include <stdio.h>
#include <string.h>

#include "policy_internal.h"

static void verdict_default(const struct ag_policy *p, enum ag_op_kind k,
			    struct ag_verdict *v)
{
	v->action = p->defaults[k];
	v->rule_id = NULL;
	v->reason = p->default_reason[k];
	v->hard = 0;
	v->once = 0;
}

static void verdict_rule(const struct ag_rule *r, struct ag_verdict *v)
{
	v->action = r->action;
	v->rule_id = r->id;
	v->reason = r->reason;
	v->hard = r->hard;
	v->once = r->once;
}

/* No policy or an operation we cannot name: refuse rather than guess. */
static int invalid(const struct ag_policy *p, const struct ag_op *op, struct ag_verdict *v)
{
	if (p && op && (unsigned)op->kind < AG_OP_COUNT)
		return 0;
	v->action = AG_DENY;
	v->rule_id = NULL;
	v->reason = p ? "unknown operation" : "no policy is loaded";
	v->hard = 1;
	v->once = 0;
	return 1;
}

/* Room for the words unwrapping makes when the caller lends none. */
#define VIEWS_STACK 2048

static void view_op(const struct ag_op *op, const struct ag_view *v, struct ag_op *o)
{
	*o = *op;
	o->path = v->prog;
	o->argv = v->argv;
	if (v->where) {
		/* Run elsewhere: nothing is known of the file it is there. */
		o->real_path = NULL;
		o->unguarded = 0;
	}
}

/* Of the rules before `below`, the first that applies to this view of an
 * exec, among those the index names for its program; else `below`. */
static AG_NOINLINE size_t first_named(const struct ag_policy *p,
						    const struct ag_rule *const *rs,
						    struct ag_mctx *c, size_t below)
{
	uint64_t bits[AG_INDEX_MAX / 64];
	size_t words = ag_index_named(p->pindex[AG_OP_EXEC], c->prog.base, c->prog.blen, bits,
				      p->nbyop[AG_OP_EXEC]);

	for (size_t w = 0; w < words && w * 64 < below; w++)
		for (uint64_t b = bits[w]; b; b &= b - 1) {
			size_t i = w * 64 + (size_t)__builtin_ctzll(b);
			if (i >= below)
				return below;
			if (ag_rule_eval(rs[i], c, NULL) == AG_EVAL_APPLIES)
				return i;
		}
	return below;
}

/*
 * An exec: each command is judged on its own (the first rule, strictest
 * first, that applies to any of its views; else the default), and the
 * strictest of the commands' verdicts is the exec's. Never inlined: its
 * frame (views, perhaps a buffer) is paid only by execs.
 */
static AG_NOINLINE void decide_exec(const struct ag_policy *p,
						  const struct ag_op *op,
						  struct ag_verdict *v)
{
	char fallback[op->scratch ? 1 : VIEWS_STACK];
	struct ag_views vs;
	size_t best[AG_VIEWS_MAX];
	const struct ag_rule *const *rs = p->byop[AG_OP_EXEC];
	size_t nr = p->nbyop[AG_OP_EXEC];

	ag_views_build(op, &vs, op->scratch ? op->scratch : fallback,
		       op->scratch ? op->scratch_len : sizeof fallback);
	if (vs.broken) {
		v->action = AG_DENY;
		v->rule_id = "agentguard-command";
		v->reason = vs.broken;
		v->hard = 0;
		return;
	}
	for (unsigned k = 0; k < vs.ncmd; k++)
		best[k] = nr;
	for (unsigned i = 0; i < vs.n; i++) {
		struct ag_op o;
		struct ag_mctx c;
		size_t *b = &best[vs.v[i].cmd];
		view_op(op, &vs.v[i], &o);
		ag_mctx_init(&c, &o);
		if (p->pindex[AG_OP_EXEC]) {
			*b = first_named(p, rs, &c, *b);
			continue;
		}
		for (size_t r = 0; r < *b; r++)
			if (ag_rule_eval(rs[r], &c, NULL) == AG_EVAL_APPLIES) {
				*b = r;
				break;
			}
	}
	int have = 0;
	for (unsigned k = 0; k < vs.ncmd; k++) {
		struct ag_verdict one;
		if (best[k] < nr)
			verdict_rule(rs[best[k]], &one);
		else
			verdict_default(p, AG_OP_EXEC, &one);
		if (!have || one.action > v->action)
			*v = one;
		have = 1;
	}
	if (!have)
		verdict_default(p, AG_OP_EXEC, v);
}

/* Many rules: only those the index says can match, in the same order. */
static AG_NOINLINE void decide_indexed(const struct ag_policy *p,
						     struct ag_mctx *c, struct ag_verdict *v)
{
	enum ag_op_kind k = c->op->kind;
	const struct ag_rule *const *rs = p->byop[k];
	uint64_t bits[AG_INDEX_MAX / 64];
	size_t words = ag_index_candidates(p->pindex[k], c->path.s, c->target.s, bits,
					   p->nbyop[k]);

	for (size_t w = 0; w < words; w++)
		for (uint64_t b = bits[w]; b; b &= b - 1) {
			size_t i = w * 64 + (size_t)__builtin_ctzll(b);
			if (ag_rule_eval(rs[i], c, NULL) == AG_EVAL_APPLIES) {
				verdict_rule(rs[i], v);
				return;
			}
		}
	verdict_default(p, k, v);
}

void ag_decide(const struct ag_policy *p, const struct ag_op *op, struct ag_verdict *v)
{
	struct ag_mctx c;

	if (invalid(p, op, v))
		return;
	if (op->kind == AG_OP_EXEC) {
		decide_exec(p, op, v);
		return;
	}
	ag_mctx_init(&c, op);
	if (p->pindex[op->kind]) {
		decide_indexed(p, &c, v);
		return;
	}
	/* byop is ordered strictest first (file order within an action), so
	 * the first rule that applies is the one precedence picks. */
	const struct ag_rule *const *rs = p->byop[op->kind];
	for (size_t i = 0, n = p->nbyop[op->kind]; i < n; i++) {
		if (ag_rule_eval(rs[i], &c, NULL) == AG_EVAL_APPLIES) {
			verdict_rule(rs[i], v);
			return;
		}
	}
	verdict_default(p, op->kind, v);
}

int ag_decide_dir(const struct ag_policy *p, const struct ag_op *op, struct ag_verdict *v)
{
	struct ag_verdict tmp;
	struct ag_mctx c;

	if (invalid(p, op, &tmp) || !op->path || op->path[0] != '/')
		return 0;
	enum ag_op_kind k = op->kind;
	if (!ag_dir_kind(k) || p->nbyop[k] > AG_DIR_RULES)
		return 0;
	size_t dl = (size_t)(strrchr(op->path, '/') - op->path) + 1;
	if (!ag_plain_name(op->path + dl))
		return 0;   /* "D/", "D/." or "D/..": D itself, or above it */
	ag_mctx_init(&c, op);
	const struct ag_rule *const *rs = p->byop[k];
	for (size_t i = 0, n = p->nbyop[k]; i < n; i++) {
		int t = ag_rule_dir(rs[i], &c, op->path, dl);
		if (t == AG_TRI_DEPENDS)
			return 0;
		if (t == AG_TRI_YES) {
			verdict_rule(rs[i], v);
			return 1;
		}
	}
	verdict_default(p, k, v);
	return 1;
}

enum ag_eval ag_rule_eval_exec(const struct ag_rule *r, const struct ag_op *op, char *why,
			       size_t whycap)
{
	char buf[8192];
	struct ag_views vs;
	enum ag_eval best = AG_EVAL_NO;

	ag_views_build(op, &vs, buf, sizeof buf);
	if (why && whycap)
		why[0] = 0;
	for (unsigned i = 0; i < vs.n; i++) {
		char text[4096];
		struct ag_why w = {text, sizeof text, 0};
		struct ag_op o;
		struct ag_mctx c;
		text[0] = 0;
		view_op(op, &vs.v[i], &o);
		ag_mctx_init(&c, &o);
		if (vs.v[i].where)
			ag_why_add(&w, "what %s runs (%s): ", vs.v[i].where, vs.v[i].prog);
		else if (i > 0)
			ag_why_add(&w, "as %s: ", vs.v[i].prog);
		enum ag_eval e = ag_rule_eval(r, &c, why ? &w : NULL);
		if (e > best) {
			best = e;
			if (why && whycap)
				snprintf(why, whycap, "%s", text);
		}
		if (best == AG_EVAL_APPLIES)
			break;
	}
	return best;
}

void ag_explain(const struct ag_policy *p, const struct ag_op *op, ag_explain_fn fn,
		void *ctx, struct ag_verdict *v)
{
	struct ag_verdict dummy;
	struct ag_mctx c;
	const struct ag_rule *best = NULL;

	if (!v)
		v = &dummy;
	if (invalid(p, op, v))
		return;
	ag_mctx_init(&c, op);
	for (size_t i = 0; i < p->nrules; i++) {
		const struct ag_rule *r = &p->rules[i];
		char buf[8192];
		struct ag_why w = {buf, sizeof buf, 0};

		if (!(r->ops & AG_OPBIT(op->kind)))
			continue;
		buf[0] = 0;
		enum ag_eval e = op->kind == AG_OP_EXEC ? ag_rule_eval_exec(r, op, buf, sizeof buf)
							 : ag_rule_eval(r, &c, &w);
		if (e == AG_EVAL_NO)
			continue;
		if (fn) {
			/* `why` points into this frame: valid during the callback only. */
			struct ag_explain_item item = {
				.rule_id = r->id,
				.action = r->action,
				.reason = r->reason,
				.excepted = e == AG_EVAL_EXCEPTED,
				.why = buf,
			};
			fn(ctx, &item);
		}
		if (e == AG_EVAL_APPLIES && (!best || r->action > best->action))
			best = r;
	}
	if (op->kind == AG_OP_EXEC)
		ag_decide(p, op, v);
	else if (best)
		verdict_rule(best, v);
	else
		verdict_default(p, op->kind, v);
}

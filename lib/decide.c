/*
 * decide: policy + operation -> verdict. Pure and allocation-free: the
 * policy is immutable and everything per-call lives on the stack, so any
 * number of threads (and signal handlers) may decide at once.
 */
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

void ag_decide(const struct ag_policy *p, const struct ag_op *op, struct ag_verdict *v)
{
	struct ag_mctx c;

	if (invalid(p, op, v))
		return;
	ag_mctx_init(&c, op);
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
		enum ag_eval e = ag_rule_eval(r, &c, &w);
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
	if (best)
		verdict_rule(best, v);
	else
		verdict_default(p, op->kind, v);
}

/*
 * The compiled form of a rule set, shared by policy.c (which builds it),
 * match.c (which evaluates one rule's matchers) and decide.c. Nothing
 * outside those three files includes this.
 *
 * Everything a compiled policy holds lives in one arena owned by the
 * policy, so the structure is immutable after ag_policy_load returns and
 * can be read by any number of threads without locks.
 */
#ifndef AGENTGUARD_POLICY_INTERNAL_H
#define AGENTGUARD_POLICY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "agentguard.h"

#define AG_OPBIT(k) (1u << (k))
#define AG_ALL_OPS ((1u << AG_OP_COUNT) - 1)

/* Matcher kinds, as bits of ag_mset.present. */
enum {
	AG_M_PATH = 1u << 0,
	AG_M_PROGRAM = 1u << 1,
	AG_M_ARGS = 1u << 2,
	AG_M_UNGUARDED = 1u << 3,
	AG_M_HOST = 1u << 4,
	AG_M_CIDR = 1u << 5,
	AG_M_PORT = 1u << 6,
	AG_M_UNIX = 1u << 7,
	AG_M_CLASS = 1u << 8,
	AG_M_DATABASE = 1u << 9,
	AG_M_COMMAND = 1u << 10,
};

/* A glob over paths (or database names). `base`: the pattern has no '/',
 * so it is matched against the subject's last component only.
 *
 * Compiled with a shape so most subjects are decided by one memcmp:
 * every subject a glob matches starts with its literal prefix (pat[0,
 * plen)) and contains its longest literal fragment. */
enum ag_glob_shape {
	AG_GLOB_EXACT,   /* no wildcard: the subject is the prefix */
	AG_GLOB_UNDER,   /* P, then a final "**" component: P or anything below */
	AG_GLOB_SUFFIX,  /* "*LIT": ends with LIT (frag) */
	AG_GLOB_GENERAL,
};

struct ag_glob {
	const char *pat;   /* expanded, normalized, ready for matching */
	const char *orig;  /* as written, for messages */
	const char *list;  /* the @list it came from, or NULL */
	int base;
	enum ag_glob_shape shape;
	size_t plen;       /* literal prefix length */
	const char *frag;  /* a literal run every match contains, or NULL */
	size_t flen;
	uint64_t fmask;    /* the fragment's characters, see ag_subj.mask */
};

/* The globs of one matcher, with the literal prefix all of them share
 * (0 when any is a basename glob), checked once before any of them. */
struct ag_globset {
	const struct ag_glob *g;
	size_t n;
	size_t clen;       /* g[0].pat[0, clen) is common to all */
};

/* An IP network; IPv4 is kept as 4 bytes, never as a v4-mapped v6. */
struct ag_net {
	int v6;
	int prefix;
	unsigned char a[16];
};

struct ag_hostpat {
	int is_net;
	struct ag_net net;     /* is_net */
	const char *glob;      /* !is_net: case-insensitive, '*' crosses dots */
	const char *orig;
	const char *list;
};

struct ag_portrange {
	int lo, hi;
	const char *orig;
	const char *list;
};

/* One `args` entry: alternatives, any of which some argument must satisfy. */
struct ag_argalt {
	const char *glob;
	int flag;          /* matched against normalized flags, else positionals */
};
struct ag_argent {
	const struct ag_argalt *alts;
	size_t n;
	const char *orig;
};

/* One `command` entry: word patterns the first positional words of argv
 * must match in order (each word: alternatives, globs). */
struct ag_cmdword {
	const char *const *alts;
	size_t n;
};
struct ag_cmdent {
	const struct ag_cmdword *words;
	size_t n;
	const char *orig;
};

/* One set of matchers: a rule's own, or one `unless` mapping. */
struct ag_mset {
	unsigned present;      /* AG_M_* bits */
	unsigned ops;          /* ops every present matcher applies to */
	struct ag_globset path;
	struct ag_globset program;
	const struct ag_argent *args;
	size_t nargs;
	const struct ag_cmdent *cmd;     /* alternatives */
	size_t ncmd;
	/* Flags whose value is the next word (`-n prod`): skipped with it when
	 * positional words are counted for `command`. */
	const char *const *vflags;
	size_t nvflags;
	int unguarded;
	const struct ag_hostpat *host;
	size_t nhost;
	const struct ag_net *cidr;
	const char *const *cidr_orig;
	size_t ncidr;
	const struct ag_portrange *port;
	size_t nport;
	struct ag_globset unix_;
	uint32_t classes;      /* bit per enum ag_sql_class */
	struct ag_globset database;
};

struct ag_rule {
	const char *id;
	unsigned ops;          /* AG_OPBIT bits */
	enum ag_action action;
	const char *reason;
	int hard;
	int once;              /* snapshot: the first time per object per session */
	size_t index;          /* file order */
	int locked;            /* no other layer may override it */
	int layer;             /* the rule file that defined it (or overrode it) */
	const char *origin;    /* "file:line:col" of its definition (and what it overrides) */
	struct ag_mset m;
	const struct ag_mset *unless;
	size_t nunless;
	int uses_path;         /* some matcher set looks at the path subject */
	/* When every `program:` glob of the rule's own matchers is a plain
	 * name: a bit per name (ag_name_bit), so that a program named
	 * otherwise is passed over with one AND. All ones: no such filter. */
	uint64_t prog_names;
};

struct ag_arena_chunk;

/* ruleindex.c: an op's rules by the directories their path globs start
 * with (execs: by their programs' names). slot[] is open-addressed (key NULL: empty); pos are positions in
 * the op's byop list, ascending. */
struct ag_pkey {
	uint32_t hash, len;
	const char *key;       /* the directory, without a trailing '/' */
	const uint32_t *pos;
	uint32_t npos;
};

struct ag_pindex {
	uint32_t mask;
	const struct ag_pkey *slot;
	const uint32_t *always;   /* rules with no key: asked every time */
	uint32_t nalways;
};

/* Ops with fewer rules are scanned (cheaper than hashing the path); more
 * than the decision's bitmap holds are scanned too. */
#define AG_INDEX_MIN 16
#define AG_INDEX_MAX 4096

/* Fill p->pindex from p->byop, allocating with alloc(ctx, n) (zeroed). */
int ag_index_build(struct ag_policy *p, void *(*alloc)(void *, size_t), void *ctx);
/* The rules of the op that can match path or target, as bits over byop
 * positions (bits: (n + 63) / 64 words). Returns the number of words. */
size_t ag_index_candidates(const struct ag_pindex *x, const char *path, const char *target,
			   uint64_t *bits, size_t n);
/* The same for an exec of a program whose last component is name. */
size_t ag_index_named(const struct ag_pindex *x, const char *name, size_t len, uint64_t *bits,
		      size_t n);

struct ag_policy {
	struct ag_arena_chunk *arena;
	/* A policy mapped from a session's image (pimage.c): everything,
	 * this struct included, lies in [image, image + image_size). */
	void *image;
	size_t image_size;
	enum ag_mode mode;
	int enforce;
	const char *workspace;
	uint64_t max_snapshot_bytes;
	int denial_limit;
	enum ag_action defaults[AG_OP_COUNT];
	const char *default_reason[AG_OP_COUNT];
	const struct ag_rule *rules;  /* file order */
	size_t nrules;
	/* Per op, the rules on it, strictest action first and file order
	 * within one action: the first that applies decides. */
	const struct ag_rule *const *byop[AG_OP_COUNT];
	size_t nbyop[AG_OP_COUNT];
	const struct ag_pindex *pindex[AG_OP_COUNT];   /* NULL: scan byop */
	/* The rule files it was compiled from, lowest first. */
	const char *layer_name[AG_LAYERS_MAX];
	int layer_managed[AG_LAYERS_MAX];
	int nlayers;
};

/* Memory a policy is compiled into instead of its own arena: one
 * contiguous range, so that the whole policy can be written out and
 * mapped at the same address by another process. */
struct ag_region {
	unsigned char *base;
	size_t used, cap;
};

/* n zeroed bytes of r, aligned as malloc's; NULL when it is full. */
void *ag_region_alloc(struct ag_region *r, size_t n);

/* ag_policy_load, with everything (the struct too) allocated in region.
 * On error nothing in the region is to be used. */
struct ag_policy *ag_policy_load_in(const char *name, const char *text, size_t len,
				   const struct ag_policy_env *env, struct ag_region *region,
				   char *err, size_t errlen);

/* ---- match.c ------------------------------------------------------------- */

/* A string being matched, with what every glob needs computed once. */
struct ag_subj {
	const char *s;           /* NULL: no such subject (never matches) */
	size_t len;
	const char *base;        /* last component */
	size_t blen;
	/* Bit (c & 63) for each character c in s, computed on first use: a
	 * glob whose fragment has a character s lacks cannot match. */
	uint64_t mask;
	int have_mask;
};

/* What one evaluation knows about its operation, computed once per op
 * (some of it lazily) so that many rules can share it. On the stack. */
struct ag_mctx {
	const struct ag_op *op;
	struct ag_subj path;     /* delete/truncate: the file; rename: source */
	struct ag_subj target;   /* rename: target */
	struct ag_subj prog;     /* exec: the program; others: the caller */
	struct ag_subj unix_;
	struct ag_subj database;
	uint64_t prog_bit;       /* ag_name_bit of prog's last component; 0 until needed */
	int addr_state;          /* 0 unparsed, 1 parsed, -1 none / invalid */
	struct ag_net addr;
	int sql_class;           /* -2 not yet known */
};

void ag_mctx_init(struct ag_mctx *c, const struct ag_op *op);

/* One of 64 bits for a name: the rule prefilter's hash (never 0). */
static inline uint64_t ag_name_bit(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return 1ull << (h >> 26);
}

/* Where explain collects its human-readable text; NULL in decide. */
struct ag_why {
	char *buf;
	size_t cap, len;
};
void ag_why_add(struct ag_why *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* How a rule relates to an operation. */
enum ag_eval { AG_EVAL_NO, AG_EVAL_EXCEPTED, AG_EVAL_APPLIES };

/* Evaluate rule r against the op in c: its matchers, then `unless`; for
 * rename each of source and target on its own (either suffices). why may
 * be NULL; otherwise it receives the explanation of the subject that
 * decided the result. */
enum ag_eval ag_rule_eval(const struct ag_rule *r, struct ag_mctx *c,
			  struct ag_why *why);

/* Three-valued answers about every file directly in one directory. */
enum { AG_TRI_NO, AG_TRI_YES, AG_TRI_DEPENDS };

/* Whether rule r applies to every file "D/B" (B any name without '/') of
 * the op in c, to none, or it depends on B; d[0, dl) is "D/". */
int ag_rule_dir(const struct ag_rule *r, struct ag_mctx *c, const char *d, size_t dl);

/* ---- cmdview.c ----------------------------------------------------------- */

/* One name an exec's command goes by, with the argv it is judged with.
 * Views of one command share `cmd`: a rule that applies to any of them
 * applies to the command. */
#define AG_VIEWS_MAX 32
struct ag_view {
	const char *prog;           /* a path, or a bare name (run elsewhere) */
	const char *const *argv;
	unsigned cmd;
	const char *where;          /* NULL: the exec itself; "ssh", "sudo", ... */
};
struct ag_views {
	struct ag_view v[AG_VIEWS_MAX];
	unsigned n, ncmd;
	const char *broken;         /* not unwrapped whole: why (deny) */
	/* Where the words before the next command unwrapped start: among
	 * them its environment's assignments (`A=1 cmd`, env, sudo). */
	const char *const *assign_lo;
	const char *const *assign_at;   /* the command those assignments are for */
	char *buf;
	size_t cap, used;
};

/* The views of exec op: command 0 is the exec itself (its name, the file
 * behind a symlink, an interpreter's script, terraform's TF_CLI_ARGS), the
 * others what it runs out of the library's sight. Words it makes go into
 * buf. */
void ag_views_build(const struct ag_op *op, struct ag_views *vs, char *buf, size_t cap);

/* Rule r against every view of exec op (decide.c): the strongest result,
 * and in why (if not NULL) its explanation. For examples and explain. */
enum ag_eval ag_rule_eval_exec(const struct ag_rule *r, const struct ag_op *op, char *why,
			       size_t whycap);

/* Loop iterations of every glob match on this thread, for the tests that
 * check the matchers stay O(pattern * subject). */
extern __thread unsigned long ag_match_steps __attribute__((tls_model("initial-exec")));
#define AG_MATCH_STEP() (ag_match_steps++)

/* Glob over one string with no component structure: '*' matches any run
 * of characters including '/'. icase folds ASCII letters. */
int ag_glob_flat(const char *pat, const char *s, size_t slen, int icase);

/* Check a glob's syntax: 0 ok, else a static message. */
const char *ag_glob_check(const char *pat);

/* Fill a compiled glob's shape, prefix and fragment from g->pat and
 * g->base; then a set's common prefix. */
void ag_glob_shape(struct ag_glob *g);
void ag_globset_finish(struct ag_globset *set);

/* Parse "1.2.3.4", "fd00::1", optionally with "/prefix". 0 ok, -1 not an
 * address. A v4-mapped v6 address comes back as IPv4. */
int ag_net_parse(const char *s, struct ag_net *out, int allow_prefix);

#endif

/* The pipeline parser's private pieces, shared by pipelines/{diag,names,
 * yaml_tree,overrides,schema,config*}.c.
 *
 * Parsing goes text --libyaml--> a small tree of nodes (each with its 1-based
 * line:col, or the --set override it came from) --overrides--> the same tree
 * --validation--> struct kd_pipeline. Only yaml_tree.c calls libyaml. */
#ifndef KD_PIPELINE_IMPL_H
#define KD_PIPELINE_IMPL_H

#include "pipelines/kd_pipeline.h"

#include <math.h>
#include <stdarg.h>

/* ------------------------------------------------------------ the context */

/* What every stage of parsing reports into. */
struct kd_pctx {
    struct kd_diag *diag;
    const char *const *sets;    /* the overrides, for "--set X: ..." messages */
    size_t n_sets;
    size_t n_problems;          /* problems reported (even if diag ran out of memory) */
    int nomem;                  /* an allocation failed: the result is unusable */
};

/* Reports a problem at a position of the file, or, when set > 0, in the
 * override sets[set - 1] ("--set X: message", no position). */
void kd_pctx_report(struct kd_pctx *c, int set, int line, int col, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
void kd_pctx_vreport(struct kd_pctx *c, int set, int line, int col, const char *fmt, va_list ap);

/* Appends text as it is (no "path:line:col: " in front); 0 on success, -1
 * when out of memory. */
int kd_diag_push(struct kd_diag *d, int line, int col, const char *text);
/* Orders the items from index `from` on by position (items without one first), keeping the order
 * of items at the same position. */
void kd_diag_sort(struct kd_diag *d, size_t from);

/* ------------------------------------------------------------ name sets */

/* Names, each with a value (an index), in a hash table: a look-up costs the
 * same for 10 names as for 100,000, so validating N keys or N references
 * stays linear in N. Keys are borrowed: they must outlive the set. A zeroed
 * struct is an empty set. (pipelines/names.c) */
struct kd_names {
    const char **keys;
    size_t *vals;
    size_t n, cap;          /* cap: 0 or a power of two */
};
void kd_names_release(struct kd_names *s);
/* Adds key -> val unless key is present (then its first value stays):
 * 1 added, 0 already present, -1 out of memory. */
int kd_names_add(struct kd_names *s, const char *key, size_t val);
/* 1 and *val (may be NULL) set when key is present, 0 when not. */
int kd_names_find(const struct kd_names *s, const char *key, size_t *val);

/* ---------------------------------------------------------------- the tree */

enum kd_ykind {
    KD_Y_SCALAR = 0,
    KD_Y_MAP,
    KD_Y_SEQ,
    KD_Y_BAD            /* an alias: already reported, stays silent afterwards */
};

/* What a scalar resolves to (YAML 1.2 core schema; quoted scalars are strings). */
enum kd_ytype { KD_YT_NULL = 0, KD_YT_BOOL, KD_YT_INT, KD_YT_FLOAT, KD_YT_STR };

struct kd_ynode {
    enum kd_ykind kind;
    enum kd_ytype type;         /* scalars */
    int line, col;              /* 1-based start in the file; 0 when from an override */
    int set;                    /* 1 + index of the override that made this node; 0: the file */
    char *text;                 /* scalars: the value, NUL-terminated (may hold NULs) */
    size_t len;
    size_t n, cap;              /* MAP: pairs; SEQ: items */
    struct kd_ynode **keys;     /* MAP: scalar keys */
    struct kd_ynode **vals;     /* MAP: values; SEQ: items */
    struct kd_names *index;     /* MAP: key -> position, once it has a few keys; else NULL */
};

/* Parses text (one YAML document) into *root. Problems (syntax, encoding,
 * duplicate keys, anchors, aliases, tags, several documents, nesting too
 * deep) are reported into c; nodes are marked as coming from override `set`
 * (0 for the file). A file without a document gives *root == NULL and a
 * problem; with as_value (an override's value) it gives a null scalar
 * instead. Returns 0 when the tree is usable, -1 otherwise (*root is then
 * NULL). */
int kd_ytree_parse(struct kd_pctx *c, const char *text, size_t len, int set, int as_value,
                   struct kd_ynode **root);
void kd_ytree_free(struct kd_ynode *n);
struct kd_ynode *kd_ytree_new(enum kd_ykind kind, int line, int col, int set);
/* Appends a pair to a mapping (takes ownership); -1 on no memory (the nodes
 * are then freed). */
int kd_ytree_map_add(struct kd_ynode *map, struct kd_ynode *key, struct kd_ynode *val);
/* Index of key in map, or -1 (hashed: constant time). */
long kd_ytree_find(const struct kd_ynode *map, const char *key);
/* The value of key in map (NULL when absent or map is not a mapping); *keynode
 * (may be NULL) gets the key node. */
struct kd_ynode *kd_ytree_get(const struct kd_ynode *map, const char *key, struct kd_ynode **keynode);
/* A null scalar: the empty value, ~ or null. */
int kd_ytree_is_null(const struct kd_ynode *n);

/* Applies one override ("key.path=value", sets[i]) to the tree. */
void kd_overrides_apply(struct kd_pctx *c, struct kd_ynode *root, size_t i);

/* ------------------------------------------------------------ schema help */

/* Reports a problem at node n (its position, or its override; no position
 * when n is NULL). */
void kd_at(struct kd_pctx *c, const struct kd_ynode *n, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The numbers a key accepts: lo..hi, each end open (excluded) or closed; hi
 * may be INFINITY. Messages write it as "> 0", ">= 0" or "in [0, 1)". */
struct kd_range {
    double lo, hi;
    int lo_open, hi_open;
};
#define KD_RANGE_POSITIVE ((struct kd_range){.lo = 0, .hi = INFINITY, .lo_open = 1})        /* (0, inf) */
#define KD_RANGE_NONNEGATIVE ((struct kd_range){.lo = 0, .hi = INFINITY})                   /* [0, inf) */
#define KD_RANGE_AT_LEAST_ONE ((struct kd_range){.lo = 1, .hi = INFINITY})                  /* [1, inf) */
#define KD_RANGE_UNIT ((struct kd_range){.lo = 0, .hi = 1})                                 /* [0, 1] */
#define KD_RANGE_UNIT_BELOW_ONE ((struct kd_range){.lo = 0, .hi = 1, .hi_open = 1})         /* [0, 1) */
#define KD_RANGE_UNIT_ABOVE_ZERO ((struct kd_range){.lo = 0, .hi = 1, .lo_open = 1})        /* (0, 1] */

/* An enum another module owns (student/'s activations, optimizers...): the
 * owner's parser and names, and the order in which messages list the values
 * (the order docs/pipeline.md gives). */
struct kd_vocab {
    int (*from_name)(const char *name, int *out);   /* 0 and *out set, or -1 */
    const char *(*name)(int value);
    const int *order;
    size_t n;
};

/* Typed checks of a value; label names it in messages ("'epochs'", "each
 * item of 'hidden'"). 1 when valid (*out set), -1 when not (reported). */
int kd_val_int(struct kd_pctx *c, const struct kd_ynode *v, const char *label, long long lo, long long hi,
               long long *out);
int kd_val_num(struct kd_pctx *c, const struct kd_ynode *v, const char *label, struct kd_range range, double *out);
int kd_val_str(struct kd_pctx *c, const struct kd_ynode *v, const char *label, const char **out);
int kd_val_enum(struct kd_pctx *c, const struct kd_ynode *v, const char *label, const char *const *names, size_t n,
                int *out);

/* Typed look-ups of map[key]. Each returns 1 when the key is present and its
 * value is valid (*out set), 0 when the key is absent (*out untouched), and
 * -1 when the value is invalid (reported: type, range, allowed values). vn
 * (may be NULL) gets the value node. */
int kd_get_int(struct kd_pctx *c, const struct kd_ynode *map, const char *key, long long lo, long long hi,
               long long *out, const struct kd_ynode **vn);
/* A number (integer or not) in range. */
int kd_get_num(struct kd_pctx *c, const struct kd_ynode *map, const char *key, struct kd_range range, double *out,
               const struct kd_ynode **vn);
/* A value of an enum another module owns, parsed by that module. */
int kd_get_vocab(struct kd_pctx *c, const struct kd_ynode *map, const char *key, const struct kd_vocab *voc,
                 int *out, const struct kd_ynode **vn);
/* Any non-empty scalar, as text (borrowed from the tree). */
int kd_get_str(struct kd_pctx *c, const struct kd_ynode *map, const char *key, const char **out,
               const struct kd_ynode **vn);
/* One of names[0..n), as its index. */
int kd_get_enum(struct kd_pctx *c, const struct kd_ynode *map, const char *key, const char *const *names, size_t n,
                int *out, const struct kd_ynode **vn);
/* A name (letters, digits, '_', '-'; 1 to KD_PIPE_NAME_MAX - 1 of them). */
int kd_get_name(struct kd_pctx *c, const struct kd_ynode *map, const char *key, const char *what,
                char out[KD_PIPE_NAME_MAX], const struct kd_ynode **vn);
/* Checks that scalar node n is a valid name (reports "WHAT 'x' may only ..."). */
int kd_check_name(struct kd_pctx *c, const struct kd_ynode *n, const char *what);
/* Reports every key of map not in allowed[0..n) ("unknown key 'x' WHERE,
 * did you mean 'y'?"). */
void kd_check_keys(struct kd_pctx *c, const struct kd_ynode *map, const char *const *allowed, size_t n,
                   const char *where);
/* Reports "missing required key 'KEY' WHERE" at owner when key is absent;
 * returns whether it is present. */
int kd_require(struct kd_pctx *c, const struct kd_ynode *map, const char *key, const struct kd_ynode *owner,
               const char *where);
/* An empty mapping: what `key:` with no value means where a mapping is expected. */
extern const struct kd_ynode kd_empty_map;
/* The mapping in node, &kd_empty_map for an empty value; NULL after
 * reporting a value of another type ("WHAT must be a mapping, got ..."). */
const struct kd_ynode *kd_as_map(struct kd_pctx *c, const struct kd_ynode *node, const char *what);
/* Locale-independent strtod of a YAML number ("1e-3", ".inf"); 0 on success. */
int kd_parse_double(const char *s, double *out);

/* The candidate closest to word: a case-insensitive match or at most 2
 * edits (and fewer edits than the candidate has letters); NULL when none. */
const char *kd_suggest(const char *word, const char *const *cands, size_t n);
/* "a, b, c" (n items) into buf. */
void kd_join(char *buf, size_t size, const char *const *items, size_t n, const char *sep);
/* How a value is described after "got": "string 'ten'", "a list", ... */
void kd_describe(const struct kd_ynode *v, char *buf, size_t size);
/* 'text' shortened to fit a message, control characters shown as '?'. */
void kd_quote(const char *text, size_t len, char *buf, size_t size);

/* ------------------------------------------------------------ validation */

/* Tree -> struct kd_pipeline, one file per section: config.c (the top level,
 * references between sections, the API), config_data.c (datasets, splits),
 * config_models.c (models, teachers), config_stages.c (stages and their
 * order), config_active.c (a distill stage's select and reweight). */

/* Upper bound of a layer width or batch: keeps numbers sane and products
 * from overflowing. */
#define KD_CFG_MAX_WIDTH (1LL << 24)

enum kd_ref_kind { KD_REF_DATASET, KD_REF_MODEL, KD_REF_TEACHER };

/* Where a stage refers to things, for the checks that need the whole list. */
struct kd_stage_refs {
    const struct kd_ynode *name;        /* the `name:` value, or NULL */
    const struct kd_ynode *model;       /* train: model; distill: student; export: model */
    const struct kd_ynode *teacher;
    const struct kd_ynode *models[KD_PIPE_MAX_LIST];   /* evaluate */
    const struct kd_ynode *cand_model;  /* distill, label: `candidates: {model: ...}` */
};

/* The validator's state. */
struct kd_cfg {
    struct kd_pctx *c;
    struct kd_pipeline *p;
    const struct kd_ynode *root;
    struct kd_stage_refs *refs;              /* one per stage */
    const struct kd_ynode **teacher_model;   /* one per teacher: its `model:` value or NULL */
    /* name -> index in p->datasets, p->models, p->teachers; parts: name ->
     * index of the first split that has it (filled split by split) */
    struct kd_names datasets, parts, models, teachers;
};

/* strdup; NULL after marking the context out of memory. */
char *kd_cfg_strdup(struct kd_cfg *v, const char *s);
/* base/path, or path itself when it is absolute or base is "" or "."; malloc'ed. */
char *kd_cfg_join_path(struct kd_cfg *v, const char *base, const char *path);
struct kd_pos kd_pos_of(const struct kd_ynode *n);
/* "at line 12", or "set by --set" for what an override wrote. */
const char *kd_at_line(struct kd_pos pos, char *buf, size_t size);
void kd_copy_name(char dst[KD_PIPE_NAME_MAX], const char *src);
/* The list in node (an empty value is an empty list); NULL after reporting
 * a value of another type. */
const struct kd_ynode *kd_as_list(struct kd_pctx *c, const struct kd_ynode *node, const char *what);
/* Items of a list (0 for an empty value). */
size_t kd_list_len(const struct kd_ynode *list);
/* Checks that scalar node names an existing thing of the kind (datasets: with
 * the parts of the first n_splits splits); reports "unknown model 'x', did
 * you mean 'y'?" otherwise. 0 when it does, -1 when not. */
int kd_cfg_check_ref(struct kd_cfg *v, const struct kd_ynode *node, enum kd_ref_kind kind, size_t n_splits);
/* map[key] as a reference, copied into out: 1 valid, 0 absent, -1 invalid (reported). */
int kd_cfg_get_ref(struct kd_cfg *v, const struct kd_ynode *map, const char *key, enum kd_ref_kind kind,
                   size_t n_splits, char out[KD_PIPE_NAME_MAX], const struct kd_ynode **vn);
/* A YAML boolean (true/false): 1 set, 0 absent, -1 reported. */
int kd_get_bool(struct kd_cfg *v, const struct kd_ynode *map, const char *key, int *out);
/* map[key] as a path; relative paths are joined to base. */
int kd_cfg_get_path(struct kd_cfg *v, const struct kd_ynode *map, const char *key, const char *base, char **out);

/* The sections, in the order they are checked (each may refer to the ones before). */
void kd_config_datasets(struct kd_cfg *v);
void kd_config_splits(struct kd_cfg *v);
void kd_config_models(struct kd_cfg *v);
void kd_config_teachers(struct kd_cfg *v);
void kd_config_stages(struct kd_cfg *v);
/* The checks that pair models and teachers with data of their family and
 * the retrieval keys of train, label and evaluate stages (split,
 * negatives, table_lr, k; pipelines/config_retrieval.c). */
void kd_config_retrieval(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map);
/* Whether the dataset called name is a retrieval data set (beir or wordnet). */
int kd_config_retrieval_data(const struct kd_cfg *v, const char *name);
/* The active-distillation keys of a distill stage's map (select, reweight;
 * pipelines/config_active.c); dataset names may be parts of the first ns
 * splits; relative paths are resolved against the pipeline's folder. */
void kd_config_active(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map, size_t ns);
/* `select:` of a distill stage on a retrieval data set, after its split
 * (queries chosen for the pair teacher; pipelines/config_retrieval_select.c). */
/* `unlabelled` and `query_weights` of a distill stage on a retrieval data
 * set, after its alpha (pipelines/config_retrieval_queries.c). */
void kd_config_retrieval_queries(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map);
void kd_config_retrieval_select(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map);
/* The keys of a diagnose stage beyond model and data (n, seed, eps, centre,
 * method, at, targets; pipelines/config_diagnose.c). */
extern const char *const KD_DIAGNOSE_KEYS[];
extern const size_t KD_N_DIAGNOSE_KEYS;
/* train: `checkpoints: {every: N}`; distill: `follow: checkpoints`. */
void kd_config_checkpoints(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map);
void kd_config_diagnose(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *key,
                        const struct kd_ynode *map);

#endif

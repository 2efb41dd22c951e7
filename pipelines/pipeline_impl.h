/* The pipeline parser's private pieces, shared by pipelines/{diag,yaml_tree,
 * overrides,schema,config}.c.
 *
 * Parsing goes text --libyaml--> a small tree of nodes (each with its 1-based
 * line:col, or the --set override it came from) --overrides--> the same tree
 * --validation--> struct kd_pipeline. Only yaml_tree.c calls libyaml. */
#ifndef KD_PIPELINE_IMPL_H
#define KD_PIPELINE_IMPL_H

#include "pipelines/kd_pipeline.h"

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
/* Appends a pair to a mapping / an item to a list (takes ownership); -1 on
 * no memory (the nodes are then freed). */
int kd_ytree_map_add(struct kd_ynode *map, struct kd_ynode *key, struct kd_ynode *val);
int kd_ytree_seq_add(struct kd_ynode *seq, struct kd_ynode *item);
/* Index of key in map, or -1. */
long kd_ytree_find(const struct kd_ynode *map, const char *key);
/* The value of key in map (NULL when absent or map is not a mapping); *keynode
 * (may be NULL) gets the key node. */
struct kd_ynode *kd_ytree_get(const struct kd_ynode *map, const char *key, struct kd_ynode **keynode);
/* A null scalar: the empty value, ~ or null. */
int kd_ytree_is_null(const struct kd_ynode *n);
/* Marks n and everything below it as made by override `set`, without position. */
void kd_ytree_mark_set(struct kd_ynode *n, int set);

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

/* Typed checks of a value; label names it in messages ("'epochs'", "each
 * item of 'hidden'"). 1 when valid (*out set), -1 when not (reported). */
int kd_val_int(struct kd_pctx *c, const struct kd_ynode *v, const char *label, long long lo, long long hi,
               long long *out);
int kd_val_num(struct kd_pctx *c, const struct kd_ynode *v, const char *label, double lo, int lo_open, double hi,
               int hi_open, double *out);
int kd_val_str(struct kd_pctx *c, const struct kd_ynode *v, const char *label, const char **out);
int kd_val_enum(struct kd_pctx *c, const struct kd_ynode *v, const char *label, const char *const *names, size_t n,
                int *out);

/* Typed look-ups of map[key]. Each returns 1 when the key is present and its
 * value is valid (*out set), 0 when the key is absent (*out untouched), and
 * -1 when the value is invalid (reported: type, range, allowed values). vn
 * (may be NULL) gets the value node. */
int kd_get_int(struct kd_pctx *c, const struct kd_ynode *map, const char *key, long long lo, long long hi,
               long long *out, const struct kd_ynode **vn);
/* A number (integer or not) in the range lo..hi; lo_open/hi_open exclude the
 * bound; hi may be INFINITY. */
int kd_get_num(struct kd_pctx *c, const struct kd_ynode *map, const char *key, double lo, int lo_open, double hi,
               int hi_open, double *out, const struct kd_ynode **vn);
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

/* Edit distance (insertions, deletions, substitutions, transpositions). */
size_t kd_edit_distance(const char *a, const char *b);
/* The candidate closest to word: a case-insensitive match or at most 2
 * edits (and fewer edits than the candidate has letters); NULL when none. */
const char *kd_suggest(const char *word, const char *const *cands, size_t n);
/* "a, b, c" (n items) into buf. */
void kd_join(char *buf, size_t size, const char *const *items, size_t n, const char *sep);
/* How a value is described after "got": "string 'ten'", "a list", ... */
void kd_describe(const struct kd_ynode *v, char *buf, size_t size);
/* 'text' shortened to fit a message, control characters shown as '?'. */
void kd_quote(const char *text, size_t len, char *buf, size_t size);

/* The active-distillation keys of a distill stage's map (select, reweight;
 * pipelines/config_active.c); dir resolves relative paths. */
void kd_config_active(struct kd_pctx *c, struct kd_pipe_stage *s, const struct kd_ynode *map, const char *dir);

#endif

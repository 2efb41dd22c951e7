/* The validator's vocabulary: typed look-ups that report wrong types, ranges
 * and unknown values, unknown-key checks with "did you mean", and the small
 * text helpers the messages need. */
#include "pipelines/pipeline_impl.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void kd_describe(const struct kd_ynode *v, char *buf, size_t size)
{
    char q[64];
    if (!v) {
        snprintf(buf, size, "nothing");
        return;
    }
    switch (v->kind) {
    case KD_Y_MAP:
        snprintf(buf, size, "a mapping");
        return;
    case KD_Y_SEQ:
        snprintf(buf, size, "a list");
        return;
    case KD_Y_BAD:
        snprintf(buf, size, "an alias");
        return;
    case KD_Y_SCALAR:
        break;
    }
    kd_quote(v->text, v->len, q, sizeof q);
    switch (v->type) {
    case KD_YT_NULL:
        snprintf(buf, size, "an empty value");
        break;
    case KD_YT_BOOL:
        snprintf(buf, size, "boolean %s", v->text);
        break;
    case KD_YT_INT:
        snprintf(buf, size, "integer %s", v->text);
        break;
    case KD_YT_FLOAT:
        snprintf(buf, size, "number %s", v->text);
        break;
    case KD_YT_STR:
        snprintf(buf, size, "string %s", q);
        break;
    }
}

void kd_join(char *buf, size_t size, const char *const *items, size_t n, const char *sep)
{
    size_t o = 0;
    if (size)
        buf[0] = '\0';
    for (size_t i = 0; i < n && o + 1 < size; i++) {
        int w = snprintf(buf + o, size - o, "%s%s", i ? sep : "", items[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

/* Edit distance (insertions, deletions, substitutions, transpositions). */
static size_t edit_distance(const char *a, const char *b)
{
    /* Optimal string alignment over three rolling rows; long words are far
     * from every key anyway. */
    enum { MAX = 64 };
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAX || lb > MAX)
        return (size_t)-1 / 2;
    size_t rows[3][MAX + 1];
    size_t *pp = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t d = prev[j] + 1;
            if (cur[j - 1] + 1 < d)
                d = cur[j - 1] + 1;
            if (prev[j - 1] + cost < d)
                d = prev[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < d)
                d = pp[j - 2] + 1;
            cur[j] = d;
        }
        size_t *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

const char *kd_suggest(const char *word, const char *const *cands, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(word, cands[i]) == 0)
            return cands[i];
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(word, cands[i]);
        if (d < best_d && d < strlen(cands[i])) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}

int kd_parse_double(const char *s, double *out)
{
    const char *p = s;
    int neg = 0;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (strcasecmp(p, ".inf") == 0) {
        *out = neg ? -INFINITY : INFINITY;
        return 0;
    }
    if (strcasecmp(p, ".nan") == 0) {
        *out = NAN;
        return 0;
    }
    /* strtod follows LC_NUMERIC: hand it the locale's decimal point. */
    char buf[128];
    size_t n = strlen(s);
    if (n >= sizeof buf)
        return -1;
    memcpy(buf, s, n + 1);
    const char *dp = localeconv()->decimal_point;
    if (dp && dp[0] && dp[0] != '.' && !dp[1]) {
        char *dot = strchr(buf, '.');
        if (dot)
            *dot = dp[0];
    }
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end == buf || *end)
        return -1;
    *out = v;   /* ERANGE: +-HUGE_VAL or a denormal, which the range checks judge */
    return 0;
}

/* --------------------------------------------------------------- reports */

void kd_at(struct kd_pctx *c, const struct kd_ynode *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kd_pctx_vreport(c, n ? n->set : 0, n ? n->line : 0, n ? n->col : 0, fmt, ap);
    va_end(ap);
}

static void wrong_type(struct kd_pctx *c, const struct kd_ynode *v, const char *label, const char *want)
{
    char got[96];
    kd_describe(v, got, sizeof got);
    if (v->kind != KD_Y_BAD)   /* an alias was reported already */
        kd_at(c, v, "%s must be %s, got %s", label, want, got);
}

int kd_val_int(struct kd_pctx *c, const struct kd_ynode *v, const char *label, long long lo, long long hi,
               long long *out)
{
    if (v->kind != KD_Y_SCALAR || v->type != KD_YT_INT) {
        wrong_type(c, v, label, "an integer");
        return -1;
    }
    errno = 0;
    char *end;
    long long x = strtoll(v->text, &end, 10);
    if (errno == ERANGE || *end || x < lo || x > hi) {
        if (hi == LLONG_MAX)
            kd_at(c, v, "%s must be >= %lld, got %s", label, lo, v->text);
        else
            kd_at(c, v, "%s must be in [%lld, %lld], got %s", label, lo, hi, v->text);
        return -1;
    }
    *out = x;
    return 1;
}

static int val_num(struct kd_pctx *c, const struct kd_ynode *v, const char *label, struct kd_range range, double *out)
{
    double lo = range.lo, hi = range.hi;
    int lo_open = range.lo_open, hi_open = range.hi_open;
    double x;
    if (v->kind != KD_Y_SCALAR || (v->type != KD_YT_INT && v->type != KD_YT_FLOAT) ||
        kd_parse_double(v->text, &x)) {
        wrong_type(c, v, label, "a number");
        return -1;
    }
    if (!isfinite(x)) {
        kd_at(c, v, "%s must be a finite number, got %s", label, v->text);
        return -1;
    }
    if ((lo_open ? x <= lo : x < lo) || (hi_open ? x >= hi : x > hi)) {
        if (isinf(hi))
            kd_at(c, v, "%s must be %s %g, got %s", label, lo_open ? ">" : ">=", lo, v->text);
        else
            kd_at(c, v, "%s must be in %c%g, %g%c, got %s", label, lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']',
                  v->text);
        return -1;
    }
    *out = x;
    return 1;
}

int kd_val_str(struct kd_pctx *c, const struct kd_ynode *v, const char *label, const char **out)
{
    if (v->kind != KD_Y_SCALAR || v->type == KD_YT_NULL) {
        wrong_type(c, v, label, "a string");
        return -1;
    }
    if (v->len == 0) {
        kd_at(c, v, "%s must not be empty", label);
        return -1;
    }
    if (strlen(v->text) != v->len) {
        kd_at(c, v, "%s must not contain a NUL character", label);
        return -1;
    }
    *out = v->text;
    return 1;
}

int kd_val_enum(struct kd_pctx *c, const struct kd_ynode *v, const char *label, const char *const *names, size_t n,
                int *out)
{
    char list[256];
    kd_join(list, sizeof list, names, n, ", ");
    if (v->kind != KD_Y_SCALAR || v->type == KD_YT_NULL) {
        char want[300];
        snprintf(want, sizeof want, "one of %s", list);
        wrong_type(c, v, label, want);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(v->text, names[i]) == 0) {
            *out = (int)i;
            return 1;
        }
    char q[64];
    kd_quote(v->text, v->len, q, sizeof q);
    const char *s = kd_suggest(v->text, names, n);
    if (s)
        kd_at(c, v, "%s must be one of %s, got %s (did you mean '%s'?)", label, list, q, s);
    else
        kd_at(c, v, "%s must be one of %s, got %s", label, list, q);
    return -1;
}

/* A value of an enum another module owns, parsed by that module. */
static int val_vocab(struct kd_pctx *c, const struct kd_ynode *v, const char *label, const struct kd_vocab *voc,
                     int *out)
{
    if (v->kind == KD_Y_SCALAR && v->type != KD_YT_NULL && strlen(v->text) == v->len &&
        voc->from_name(v->text, out) == 0)
        return 1;
    /* Not a value the owner knows: the message lists the owner's names. */
    const char *names[16];
    size_t n = voc->n < 16 ? voc->n : 16;
    for (size_t i = 0; i < n; i++)
        names[i] = voc->name(voc->order[i]);
    int e;
    if (kd_val_enum(c, v, label, names, n, &e) <= 0)
        return -1;
    *out = voc->order[e];
    return 1;
}

/* The value of map[key] and its label "'key'"; NULL when absent. */
static const struct kd_ynode *lookup(const struct kd_ynode *map, const char *key, const struct kd_ynode **vn,
                                     char *label, size_t size)
{
    const struct kd_ynode *v = kd_ytree_get(map, key, NULL);
    if (vn)
        *vn = v;
    snprintf(label, size, "'%s'", key);
    return v;
}

int kd_get_int(struct kd_pctx *c, const struct kd_ynode *map, const char *key, long long lo, long long hi,
               long long *out, const struct kd_ynode **vn)
{
    char label[80];
    const struct kd_ynode *v = lookup(map, key, vn, label, sizeof label);
    return v ? kd_val_int(c, v, label, lo, hi, out) : 0;
}

int kd_get_num(struct kd_pctx *c, const struct kd_ynode *map, const char *key, struct kd_range range, double *out,
               const struct kd_ynode **vn)
{
    char label[80];
    const struct kd_ynode *v = lookup(map, key, vn, label, sizeof label);
    return v ? val_num(c, v, label, range, out) : 0;
}

int kd_get_str(struct kd_pctx *c, const struct kd_ynode *map, const char *key, const char **out,
               const struct kd_ynode **vn)
{
    char label[80];
    const struct kd_ynode *v = lookup(map, key, vn, label, sizeof label);
    return v ? kd_val_str(c, v, label, out) : 0;
}

int kd_get_enum(struct kd_pctx *c, const struct kd_ynode *map, const char *key, const char *const *names, size_t n,
                int *out, const struct kd_ynode **vn)
{
    char label[80];
    const struct kd_ynode *v = lookup(map, key, vn, label, sizeof label);
    return v ? kd_val_enum(c, v, label, names, n, out) : 0;
}

int kd_get_vocab(struct kd_pctx *c, const struct kd_ynode *map, const char *key, const struct kd_vocab *voc,
                 int *out, const struct kd_ynode **vn)
{
    char label[80];
    const struct kd_ynode *v = lookup(map, key, vn, label, sizeof label);
    return v ? val_vocab(c, v, label, voc, out) : 0;
}

int kd_check_name(struct kd_pctx *c, const struct kd_ynode *n, const char *what)
{
    char q[64];
    kd_quote(n->text, n->len, q, sizeof q);
    if (n->len >= KD_PIPE_NAME_MAX) {
        kd_at(c, n, "%s %s is longer than %d characters", what, q, KD_PIPE_NAME_MAX - 1);
        return -1;
    }
    for (size_t i = 0; i < n->len; i++) {
        char ch = n->text[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '-')) {
            kd_at(c, n, "%s %s may only contain letters, digits, '_' and '-'", what, q);
            return -1;
        }
    }
    return 0;
}

int kd_get_name(struct kd_pctx *c, const struct kd_ynode *map, const char *key, const char *what,
                char out[KD_PIPE_NAME_MAX], const struct kd_ynode **vn)
{
    const char *s;
    const struct kd_ynode *v;
    int rc = kd_get_str(c, map, key, &s, &v);
    if (vn)
        *vn = v;
    if (rc <= 0)
        return rc;
    if (kd_check_name(c, v, what))
        return -1;
    snprintf(out, KD_PIPE_NAME_MAX, "%s", s);
    return 1;
}

void kd_check_keys(struct kd_pctx *c, const struct kd_ynode *map, const char *const *allowed, size_t n,
                   const char *where)
{
    if (!map || map->kind != KD_Y_MAP)
        return;
    for (size_t i = 0; i < map->n; i++) {
        const struct kd_ynode *k = map->keys[i];
        size_t j = 0;
        while (j < n && strcmp(k->text, allowed[j]) != 0)
            j++;
        if (j < n)
            continue;
        char q[64];
        kd_quote(k->text, k->len, q, sizeof q);
        const char *s = kd_suggest(k->text, allowed, n);
        if (s) {
            kd_at(c, k, "unknown key %s %s, did you mean '%s'?", q, where, s);
        } else {
            char list[300];
            kd_join(list, sizeof list, allowed, n, ", ");
            kd_at(c, k, "unknown key %s %s (allowed: %s)", q, where, list);
        }
    }
}

int kd_require(struct kd_pctx *c, const struct kd_ynode *map, const char *key, const struct kd_ynode *owner,
               const char *where)
{
    if (kd_ytree_find(map, key) >= 0)
        return 1;
    kd_at(c, owner, "missing required key '%s' %s", key, where);
    return 0;
}

const struct kd_ynode kd_empty_map = {.kind = KD_Y_MAP};

const struct kd_ynode *kd_as_map(struct kd_pctx *c, const struct kd_ynode *node, const char *what)
{
    if (node->kind == KD_Y_MAP)
        return node;
    if (kd_ytree_is_null(node))
        return &kd_empty_map;
    if (node->kind != KD_Y_BAD) {
        char got[96];
        kd_describe(node, got, sizeof got);
        kd_at(c, node, "%s must be a mapping, got %s", what, got);
    }
    return NULL;
}

int kd_val_num(struct kd_pctx *c, const struct kd_ynode *v, const char *label, struct kd_range range, double *out)
{
    return val_num(c, v, label, range, out);
}

/* The data sections of a pipeline: `datasets:` (files and how to read them)
 * and `splits:` (named parts of a dataset). Checked like the rest of the
 * file (pipelines/config.c): every problem reported with its position. */
#include "pipelines/pipeline_impl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const DATASET_KEYS[] = {"features", "labels", "label_column", "scale", "limit",
                                           "beir",     "wordnet", "seed"};
/* The keys of a table of features, which a retrieval data set does not take. */
static const char *const TABLE_KEYS[] = {"labels", "label_column", "scale", "limit"};
static const char *const SCALES[] = {"none", "pixels", "standard"};     /* enum kd_scale_mode order */
static const char *const SPLIT_KEYS[] = {"from", "seed", "parts"};

/* ---------------------------------------------------------------- datasets */

/* The seed of a WordNet conversion that `--set datasets.NAME.beir=DIR`
 * replaced: said through the logger with the key's position, so that the
 * user sees the split they asked for is not the one DIR holds. */
static void warn_unused_seed(struct kd_cfg *v, const struct kd_pipe_dataset *ds, const struct kd_ynode *k,
                             const struct kd_ynode *val)
{
    char where[300];
    if (val && val->set > 0 && (size_t)val->set <= v->c->n_sets)   /* the key keeps its place in the file */
        snprintf(where, sizeof where, "--set %s", v->c->sets[val->set - 1]);
    else
        snprintf(where, sizeof where, "%s:%d:%d", v->c->diag->path, k->line, k->col);
    kd_log(KD_LOG_WARN,
           "%s: 'seed' of dataset '%s' is not used: 'beir' given by --set replaces its 'wordnet' source, and "
           "the folder is read as it is, with its own split of the queries",
           where, ds->name);
}

static void check_dataset(struct kd_cfg *v, struct kd_pipe_dataset *ds, const struct kd_ynode *key,
                          const struct kd_ynode *node)
{
    char where[KD_PIPE_NAME_MAX + 32], what[KD_PIPE_NAME_MAX + 32];
    snprintf(where, sizeof where, "in dataset '%s'", ds->name);
    snprintf(what, sizeof what, "dataset '%s'", ds->name);
    const struct kd_ynode *map = kd_as_map(v->c, node, what), *vn;
    long long x0;
    if (!map)
        return;
    kd_check_keys(v->c, map, DATASET_KEYS, N(DATASET_KEYS), where);
    struct kd_ynode *fk = NULL, *bk = NULL, *wk = NULL, *k;
    kd_ytree_get(map, "features", &fk);
    const struct kd_ynode *bv = kd_ytree_get(map, "beir", &bk);
    const struct kd_ynode *wv = kd_ytree_get(map, "wordnet", &wk);
    if (bk || wk) {
        /* a retrieval data set: a BEIR folder, made from WordNet when missing */
        if (fk)
            kd_at(v->c, fk, "dataset '%s' is a retrieval data set ('%s'): it takes no 'features'", ds->name,
                  bk ? "beir" : "wordnet");
        for (size_t i = 0; i < N(TABLE_KEYS); i++)
            if (kd_ytree_get(map, TABLE_KEYS[i], &k))
                kd_at(v->c, k, "'%s' is only for datasets of features, not for the retrieval data set '%s'",
                      TABLE_KEYS[i], ds->name);
        ds->wordnet_seed = 1;
        const char *s;
        /* `--set datasets.NAME.beir=DIR` on a file that converts WordNet
         * points the pipeline at another data set: DIR is read as it is,
         * never filled with WordNet (a mistyped DIR is an error, not a
         * WordNet conversion in an unexpected place). */
        int beir_overrides_wordnet = bv && bv->set && wv && !wv->set;
        if (wk && !beir_overrides_wordnet && kd_get_str(v->c, map, "wordnet", &s, NULL) > 0)
            ds->wordnet = strcmp(s, "default") == 0 ? kd_cfg_strdup(v, KD_WORDNET_DIR)
                                                    : kd_cfg_join_path(v, v->p->dir, s);
        if (kd_ytree_get(map, "seed", &k) && !wk)
            kd_at(v->c, k, "'seed' is only for a dataset converted from 'wordnet'");
        else if (kd_get_int(v->c, map, "seed", 0, LLONG_MAX, &x0, NULL) > 0)
            ds->wordnet_seed = (uint64_t)x0;
        /* A warning, not an error: the file is meant to run unchanged on
         * any BEIR folder given by --set, and its seed still matters to the
         * runs that convert WordNet. */
        if (k && wk && beir_overrides_wordnet)
            warn_unused_seed(v, ds, k, kd_ytree_get(map, "seed", NULL));
        if (bk) {
            kd_cfg_get_path(v, map, "beir", v->p->dir, &ds->beir);
        } else if (v->p->output) {
            char sub[KD_PIPE_NAME_MAX + 8];
            snprintf(sub, sizeof sub, "data/%s", ds->name);
            ds->beir = kd_cfg_join_path(v, v->p->output, sub);
        }
        return;
    }
    if (kd_ytree_get(map, "seed", &k))
        kd_at(v->c, k, "'seed' is only for a dataset converted from 'wordnet'");
    if (kd_require(v->c, map, "features", key, where))
        kd_cfg_get_path(v, map, "features", v->p->dir, &ds->features);
    kd_cfg_get_path(v, map, "labels", v->p->dir, &ds->labels);
    if ((vn = kd_ytree_get(map, "label_column", NULL))) {
        long long col;
        const char *s;
        if (vn->kind == KD_Y_SCALAR && vn->type == KD_YT_INT) {
            if (kd_val_int(v->c, vn, "'label_column'", 0, INT_MAX, &col) > 0)
                ds->label_column = kd_cfg_strdup(v, vn->text);
        } else if (vn->kind == KD_Y_SCALAR && vn->type == KD_YT_STR) {
            if (kd_val_str(v->c, vn, "'label_column'", &s) > 0)
                ds->label_column = kd_cfg_strdup(v, s);
        } else if (vn->kind != KD_Y_BAD) {
            char got[96];
            kd_describe(vn, got, sizeof got);
            kd_at(v->c, vn, "'label_column' must be a column name or a column index, got %s", got);
        }
    }
    int e;
    if (kd_get_enum(v->c, map, "scale", SCALES, N(SCALES), &e, NULL) > 0)
        ds->scale = (enum kd_scale_mode)e;
    long long x;
    if (kd_get_int(v->c, map, "limit", 0, LLONG_MAX, &x, NULL) > 0)
        ds->limit = (size_t)x;
}

void kd_config_datasets(struct kd_cfg *v)
{
    const struct kd_ynode *node = kd_ytree_get(v->root, "datasets", NULL);
    if (!node || !(node = kd_as_map(v->c, node, "'datasets'")) || !node->n)
        return;
    struct kd_pipeline *p = v->p;
    if (!(p->datasets = calloc(node->n, sizeof *p->datasets))) {
        v->c->nomem = 1;
        return;
    }
    p->n_datasets = node->n;
    for (size_t i = 0; i < node->n; i++) {
        struct kd_pipe_dataset *ds = &p->datasets[i];
        kd_copy_name(ds->name, node->keys[i]->text);
        ds->pos = kd_pos_of(node->keys[i]);
        kd_check_name(v->c, node->keys[i], "dataset name");
        if (kd_names_add(&v->datasets, ds->name, i) < 0)
            v->c->nomem = 1;
        check_dataset(v, ds, node->keys[i], node->vals[i]);
    }
}

/* ------------------------------------------------------------------ splits */

/* Whether a part name is taken, by a dataset or by a part of an earlier
 * split (the parts of one split are keys of one mapping, so distinct; a
 * split's parts join v->parts after it is checked). Reports the clash. */
static int part_clashes(struct kd_cfg *v, const struct kd_ynode *key)
{
    const struct kd_pipeline *p = v->p;
    char q[64], where[32];
    size_t i;
    kd_quote(key->text, key->len, q, sizeof q);
    if (kd_names_find(&v->datasets, key->text, &i)) {
        kd_at(v->c, key, "part %s clashes with dataset '%s' %s", q, p->datasets[i].name,
              kd_at_line(p->datasets[i].pos, where, sizeof where));
        return 1;
    }
    if (kd_names_find(&v->parts, key->text, &i)) {
        kd_at(v->c, key, "part %s is already a part of the split %s", q,
              kd_at_line(p->splits[i].pos, where, sizeof where));
        return 1;
    }
    return 0;
}

static void check_parts(struct kd_cfg *v, struct kd_pipe_split *sp, const struct kd_ynode *parts_key,
                        const struct kd_ynode *node)
{
    const struct kd_ynode *parts = kd_as_map(v->c, node, "'parts'");
    if (!parts)
        return;
    if (parts->n == 0) {
        kd_at(v->c, parts == &kd_empty_map ? parts_key : parts, "'parts' must name at least one part");
        return;
    }
    if (parts->n > KD_PIPE_MAX_PARTS) {
        kd_at(v->c, parts, "a split has at most %d parts, got %zu", KD_PIPE_MAX_PARTS, parts->n);
        return;
    }
    double fractions = 0;
    const struct kd_ynode *rest = NULL;
    for (size_t k = 0; k < parts->n; k++) {
        const struct kd_ynode *key = parts->keys[k], *val = parts->vals[k];
        kd_copy_name(sp->part_names[k], key->text);
        sp->part_pos[k] = kd_pos_of(key);
        if (!kd_check_name(v->c, key, "part name"))
            part_clashes(v, key);
        double x = 0;
        int ok = 0;
        if (val->kind == KD_Y_SCALAR && val->type == KD_YT_INT) {
            ok = kd_parse_double(val->text, &x) == 0 && x >= 1 && x < 9.0e15;
        } else if (val->kind == KD_Y_SCALAR && val->type == KD_YT_FLOAT) {
            ok = kd_parse_double(val->text, &x) == 0 && x > 0 && x < 1;
            if (ok)
                fractions += x;
        } else if (val->kind == KD_Y_SCALAR && val->type == KD_YT_STR && strcmp(val->text, "rest") == 0) {
            if (rest) {
                kd_at(v->c, val, "only one part of a split may be 'rest', and '%s' already is", rest->text);
                continue;
            }
            rest = key;
            x = -1;
            ok = 1;
        }
        if (!ok && val->kind != KD_Y_BAD) {
            char got[96], q[64];
            kd_describe(val, got, sizeof got);
            kd_quote(key->text, key->len, q, sizeof q);
            kd_at(v->c, val, "part %s must be a count (an integer >= 1), a fraction in (0, 1) or 'rest', got %s", q,
                  got);
        }
        sp->part_sizes[k] = x;
    }
    sp->n_parts = parts->n;
    if (fractions > 1 + 1e-9)
        kd_at(v->c, parts_key, "the fractions of this split add up to %g, more than the whole dataset", fractions);
}

void kd_config_splits(struct kd_cfg *v)
{
    const struct kd_ynode *node = kd_ytree_get(v->root, "splits", NULL);
    if (!node || !(node = kd_as_list(v->c, node, "'splits'")) || !kd_list_len(node))
        return;
    struct kd_pipeline *p = v->p;
    if (!(p->splits = calloc(node->n, sizeof *p->splits))) {
        v->c->nomem = 1;
        return;
    }
    for (size_t i = 0; i < node->n; i++) {
        struct kd_pipe_split *sp = &p->splits[i];
        const struct kd_ynode *item = node->vals[i], *map, *vn;
        struct kd_ynode *pk;
        sp->pos = kd_pos_of(item);
        p->n_splits = i + 1;   /* the parts of this split count from here on */
        if (!(map = kd_as_map(v->c, item, "a split")))
            continue;
        const char *where = "in a split";
        kd_check_keys(v->c, map, SPLIT_KEYS, N(SPLIT_KEYS), where);
        size_t di;
        if (kd_require(v->c, map, "from", map == &kd_empty_map ? item : map, where) &&
            kd_cfg_get_ref(v, map, "from", KD_REF_DATASET, i, sp->from, &vn) > 0 &&
            kd_names_find(&v->datasets, sp->from, &di) && kd_pipe_dataset_is_retrieval(&p->datasets[di]))
            kd_at(v->c, vn, "dataset '%s' is a retrieval data set: it has its own splits (train, dev, test), which "
                  "stages name with 'split'", sp->from);
        long long x;
        if (kd_get_int(v->c, map, "seed", 0, LLONG_MAX, &x, NULL) > 0) {
            sp->seed = (uint64_t)x;
            sp->has_seed = 1;
        }
        if (kd_require(v->c, map, "parts", map == &kd_empty_map ? item : map, where)) {
            const struct kd_ynode *parts = kd_ytree_get(map, "parts", &pk);
            check_parts(v, sp, pk, parts);
        }
        for (size_t k = 0; k < sp->n_parts; k++)
            if (kd_names_add(&v->parts, sp->part_names[k], i) < 0)
                v->c->nomem = 1;
    }
}


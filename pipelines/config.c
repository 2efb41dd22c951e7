/* The pipeline language: tree -> struct kd_pipeline, with every check that
 * needs no data file. docs/pipeline.md describes each key; the tables of
 * allowed keys and values below are the same lists. Every problem is
 * reported (not only the first); the struct is handed out only when there
 * is none. */
#include "pipelines/pipeline_impl.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The pipeline version this kd reads. */
#define KD_PIPE_VERSION 1

static const char *const TOP_KEYS[] = {"version", "name",   "seed",   "threads",  "output", "store",
                                       "datasets", "splits", "models", "teachers", "stages"};
static const char *const DATASET_KEYS[] = {"features", "labels", "label_column", "scale", "limit"};
static const char *const SCALES[] = {"none", "pixels", "standard"};     /* enum kd_scale_mode order */
static const char *const SPLIT_KEYS[] = {"from", "seed", "parts"};
static const char *const MODEL_KEYS[] = {"type", "hidden", "activation", "dropout", "init", "inputs", "classes"};
static const char *const MODEL_TYPES[] = {"mlp"};
static const char *const ACTIVATIONS[] = {"relu", "gelu", "tanh", "identity"};
static const char *const INITS[] = {"he", "xavier"};
static const char *const TEACHER_KEYS[] = {"kind", "model", "weights", "command", "batch", "timeout", "table"};
static const char *const TEACHER_KINDS[] = {"model", "exec", "table"}; /* enum kd_pipe_teacher_kind order */
/* Which teacher keys belong to which kind (besides `kind`). */
static const char *const TEACHER_KIND_OF_KEY[][2] = {
    {"model", "model"}, {"weights", "model"}, {"command", "exec"}, {"batch", "exec"},
    {"timeout", "exec"}, {"table", "table"},
};
static const char *const STAGE_KINDS[] = {"train", "label", "distill", "evaluate", "export"}; /* enum order */
static const char *const TRAIN_KEYS[] = {"name", "model", "data", "epochs", "batch", "optimizer", "schedule"};
static const char *const LABEL_KEYS[] = {"name", "teacher", "data"};
static const char *const DISTILL_KEYS[] = {"name",   "student",  "teacher",    "data",   "gold",
                                           "loss",   "temperature", "alpha",   "epochs", "batch",
                                           "optimizer", "schedule", "validation", "select", "reweight"};
static const char *const EVALUATE_KEYS[] = {"name", "models", "data", "teacher"};
static const char *const EXPORT_KEYS[] = {"name", "model", "formats", "path"};
static const char *const OPTIM_KEYS[] = {"kind", "lr", "momentum", "weight_decay", "clip"};
static const char *const OPTIMIZERS[] = {"sgd", "adam", "adamw"};
static const char *const SCHED_KEYS[] = {"kind", "warmup", "step_size", "gamma", "min_lr"};
static const char *const SCHEDULES[] = {"constant", "step", "cosine"};
static const char *const LOSSES[] = {"hinton", "soft_ce", "logit_mse", "hard"}; /* enum kd_distill_loss order */
static const char *const FORMATS[] = {"safetensors", "c"};

/* Upper bounds that only keep numbers sane (and products from overflowing). */
#define MAX_WIDTH (1LL << 24)
#define MAX_EPOCHS 1000000LL
#define MAX_THREADS 4096LL

enum ref_kind { REF_DATASET, REF_MODEL, REF_TEACHER };

/* Where a stage refers to things, for the checks that need the whole list. */
struct stage_refs {
    const struct kd_ynode *name;        /* the `name:` value, or NULL */
    const struct kd_ynode *model;       /* train: model; distill: student; export: model */
    const struct kd_ynode *teacher;
    const struct kd_ynode *models[KD_PIPE_MAX_LIST];   /* evaluate */
};

struct val {
    struct kd_pctx *c;
    struct kd_pipeline *p;
    const struct kd_ynode *root;
    struct stage_refs *refs;                 /* one per stage */
    const struct kd_ynode **teacher_model;   /* one per teacher: its `model:` value or NULL */
};


/* ---------------------------------------------------------------- helpers */

static char *dup_str(struct val *v, const char *s)
{
    char *d = strdup(s);
    if (!d)
        v->c->nomem = 1;
    return d;
}

static int is_absolute(const char *path)
{
    return path[0] == '/';
}

/* base/path, or path itself when it is absolute or base is "" or ".". */
static char *join_path(struct val *v, const char *base, const char *path)
{
    if (is_absolute(path) || !base || !base[0] || strcmp(base, ".") == 0)
        return dup_str(v, path);
    size_t nb = strlen(base), np = strlen(path);
    int slash = base[nb - 1] != '/';
    char *out = malloc(nb + (size_t)slash + np + 1);
    if (!out) {
        v->c->nomem = 1;
        return NULL;
    }
    memcpy(out, base, nb);
    if (slash)
        out[nb] = '/';
    memcpy(out + nb + (size_t)slash, path, np + 1);
    return out;
}

static struct kd_pos pos_of(const struct kd_ynode *n)
{
    struct kd_pos pos = {0, 0};
    if (n) {
        pos.line = n->line;
        pos.col = n->col;
    }
    return pos;
}

/* "at line 12", or "set by --set" for what an override wrote. */
static const char *at_line(struct kd_pos pos, char *buf, size_t size)
{
    if (pos.line > 0)
        snprintf(buf, size, "at line %d", pos.line);
    else
        snprintf(buf, size, "set by --set");
    return buf;
}

static void copy_name(char dst[KD_PIPE_NAME_MAX], const char *src)
{
    snprintf(dst, KD_PIPE_NAME_MAX, "%s", src);
}

static const struct kd_ynode *as_map(struct val *v, const struct kd_ynode *node, const char *what)
{
    return kd_as_map(v->c, node, what);
}

/* The list in node (an empty value is an empty list: *n_out = 0); NULL after
 * reporting a value of another type. */
static const struct kd_ynode *as_list(struct val *v, const struct kd_ynode *node, const char *what)
{
    if (node->kind == KD_Y_SEQ || kd_ytree_is_null(node))
        return node;
    if (node->kind != KD_Y_BAD) {
        char got[96];
        kd_describe(node, got, sizeof got);
        kd_at(v->c, node, "%s must be a list, got %s", what, got);
    }
    return NULL;
}

static size_t list_len(const struct kd_ynode *list)
{
    return list->kind == KD_Y_SEQ ? list->n : 0;
}

/* ------------------------------------------------------------- references */

static const char *ref_word(enum ref_kind kind)
{
    return kind == REF_DATASET ? "dataset" : kind == REF_MODEL ? "model" : "teacher";
}

/* The names a reference of this kind may use; datasets include the parts of
 * the first n_splits splits. Returns the count; *out is malloc'ed. */
static size_t ref_names(struct val *v, enum ref_kind kind, size_t n_splits, const char ***out)
{
    const struct kd_pipeline *p = v->p;
    size_t n = 0, cap = kind == REF_MODEL ? p->n_models : kind == REF_TEACHER ? p->n_teachers : p->n_datasets;
    if (kind == REF_DATASET)
        for (size_t i = 0; i < n_splits; i++)
            cap += p->splits[i].n_parts;
    const char **names = malloc((cap ? cap : 1) * sizeof *names);
    *out = names;
    if (!names) {
        v->c->nomem = 1;
        return 0;
    }
    if (kind == REF_MODEL) {
        for (size_t i = 0; i < p->n_models; i++)
            names[n++] = p->models[i].name;
    } else if (kind == REF_TEACHER) {
        for (size_t i = 0; i < p->n_teachers; i++)
            names[n++] = p->teachers[i].name;
    } else {
        for (size_t i = 0; i < p->n_datasets; i++)
            names[n++] = p->datasets[i].name;
        for (size_t i = 0; i < n_splits; i++)
            for (size_t k = 0; k < p->splits[i].n_parts; k++)
                names[n++] = p->splits[i].part_names[k];
    }
    /* A part that clashes with a dataset (reported) would be listed twice. */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < m && strcmp(names[j], names[i]) != 0)
            j++;
        if (j == m)
            names[m++] = names[i];
    }
    return m;
}

/* Checks that the scalar node names an existing thing of the kind; reports
 * "unknown model 'x', did you mean 'y'?" otherwise. */
static int check_ref(struct val *v, const struct kd_ynode *node, enum ref_kind kind, size_t n_splits)
{
    const char **names;
    size_t n = ref_names(v, kind, n_splits, &names);
    int found = 0;
    for (size_t i = 0; i < n && !found; i++)
        found = strcmp(names[i], node->text) == 0;
    if (!found && names) {
        const char *word = ref_word(kind);
        char q[64];
        kd_quote(node->text, node->len, q, sizeof q);
        const char *s = kd_suggest(node->text, names, n);
        if (s) {
            kd_at(v->c, node, "unknown %s %s, did you mean '%s'?", word, q, s);
        } else if (n == 0) {
            kd_at(v->c, node, "unknown %s %s: the pipeline defines no %ss", word, q, word);
        } else {
            char list[300];
            kd_join(list, sizeof list, names, n, ", ");
            kd_at(v->c, node, "unknown %s %s (%ss: %s)", word, q, word, list);
        }
    }
    free(names);
    return found ? 0 : -1;
}

/* map[key] as a reference: a string naming an existing thing; copied into
 * out. 1 valid, 0 absent, -1 invalid (reported). */
static int get_ref(struct val *v, const struct kd_ynode *map, const char *key, enum ref_kind kind, size_t n_splits,
                   char out[KD_PIPE_NAME_MAX], const struct kd_ynode **vn)
{
    const char *s;
    int rc = kd_get_str(v->c, map, key, &s, vn);
    if (rc <= 0)
        return rc;
    if (check_ref(v, *vn, kind, n_splits))
        return -1;
    copy_name(out, s);
    return 1;
}

/* map[key] as a path; relative paths are joined to base. */
static int get_path(struct val *v, const struct kd_ynode *map, const char *key, const char *base, char **out)
{
    const char *s;
    int rc = kd_get_str(v->c, map, key, &s, NULL);
    if (rc <= 0)
        return rc;
    free(*out);
    *out = join_path(v, base, s);
    return *out ? 1 : -1;
}

/* --------------------------------------------------------------- top level */

/* The file name without folder and extension, reduced to name characters. */
static void default_name(const char *path, char out[KD_PIPE_NAME_MAX])
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t n = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        n = (size_t)(dot - base);
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < KD_PIPE_NAME_MAX; i++) {
        char ch = base[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                 ch == '-';
        out[o++] = ok ? ch : '-';
    }
    out[o] = '\0';
    if (!o)
        copy_name(out, "pipeline");
}

/* Returns -1 when the file is for a newer kd: nothing else is checked then. */
static int check_top(struct val *v)
{
    struct kd_pipeline *p = v->p;
    const struct kd_ynode *root = v->root, *vn;
    long long x;
    p->version = KD_PIPE_VERSION;
    if (kd_get_int(v->c, root, "version", LLONG_MIN, LLONG_MAX, &x, &vn) > 0) {
        if (x > KD_PIPE_VERSION) {
            kd_at(v->c, vn, "pipeline version %lld needs a newer kd (this one reads version %d)", x,
                  KD_PIPE_VERSION);
            return -1;
        }
        if (x < 1)
            kd_at(v->c, vn, "'version' must be %d, got %lld", KD_PIPE_VERSION, x);
        p->version = (int)(x < 1 ? KD_PIPE_VERSION : x);
    }
    /* Only now: a newer file's keys are not unknown, just not known yet. */
    kd_check_keys(v->c, root, TOP_KEYS, N(TOP_KEYS), "at the top level");
    if (kd_get_name(v->c, root, "name", "pipeline name", p->name, NULL) <= 0)
        default_name(p->path, p->name);
    p->seed = 1;
    if (kd_get_int(v->c, root, "seed", 0, LLONG_MAX, &x, NULL) > 0)
        p->seed = (uint64_t)x;
    if (kd_get_int(v->c, root, "threads", 0, MAX_THREADS, &x, NULL) > 0)
        p->threads = (int)x;

    const char *s;
    if (kd_get_str(v->c, root, "output", &s, NULL) > 0) {
        p->output = dup_str(v, s);
    } else {
        char out[KD_PIPE_NAME_MAX + 8];
        snprintf(out, sizeof out, "runs/%s", p->name);
        p->output = dup_str(v, out);
    }
    if (kd_get_str(v->c, root, "store", &s, NULL) <= 0)
        s = "kd.db";
    if (p->output)
        p->store = join_path(v, p->output, s);
    return 0;
}

/* ---------------------------------------------------------------- datasets */

static void check_dataset(struct val *v, struct kd_pipe_dataset *ds, const struct kd_ynode *key,
                          const struct kd_ynode *node)
{
    char where[KD_PIPE_NAME_MAX + 32], what[KD_PIPE_NAME_MAX + 32];
    snprintf(where, sizeof where, "in dataset '%s'", ds->name);
    snprintf(what, sizeof what, "dataset '%s'", ds->name);
    const struct kd_ynode *map = as_map(v, node, what), *vn;
    if (!map)
        return;
    kd_check_keys(v->c, map, DATASET_KEYS, N(DATASET_KEYS), where);
    if (kd_require(v->c, map, "features", key, where))
        get_path(v, map, "features", v->p->dir, &ds->features);
    get_path(v, map, "labels", v->p->dir, &ds->labels);
    if ((vn = kd_ytree_get(map, "label_column", NULL))) {
        long long col;
        const char *s;
        if (vn->kind == KD_Y_SCALAR && vn->type == KD_YT_INT) {
            if (kd_val_int(v->c, vn, "'label_column'", 0, INT_MAX, &col) > 0)
                ds->label_column = dup_str(v, vn->text);
        } else if (vn->kind == KD_Y_SCALAR && vn->type == KD_YT_STR) {
            if (kd_val_str(v->c, vn, "'label_column'", &s) > 0)
                ds->label_column = dup_str(v, s);
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

static void check_datasets(struct val *v)
{
    const struct kd_ynode *node = kd_ytree_get(v->root, "datasets", NULL);
    if (!node || !(node = as_map(v, node, "'datasets'")) || !node->n)
        return;
    struct kd_pipeline *p = v->p;
    if (!(p->datasets = calloc(node->n, sizeof *p->datasets))) {
        v->c->nomem = 1;
        return;
    }
    p->n_datasets = node->n;
    for (size_t i = 0; i < node->n; i++) {
        struct kd_pipe_dataset *ds = &p->datasets[i];
        copy_name(ds->name, node->keys[i]->text);
        ds->pos = pos_of(node->keys[i]);
        kd_check_name(v->c, node->keys[i], "dataset name");
        check_dataset(v, ds, node->keys[i], node->vals[i]);
    }
}

/* ------------------------------------------------------------------ splits */

/* Whether a part name is taken, by a dataset or by a part of an earlier
 * split (the parts of one split are keys of one mapping, so distinct).
 * Reports the clash. */
static int part_clashes(struct val *v, const struct kd_ynode *key, size_t i)
{
    const struct kd_pipeline *p = v->p;
    char q[64], where[32];
    kd_quote(key->text, key->len, q, sizeof q);
    for (size_t d = 0; d < p->n_datasets; d++)
        if (strcmp(p->datasets[d].name, key->text) == 0) {
            kd_at(v->c, key, "part %s clashes with dataset '%s' %s", q, p->datasets[d].name,
                  at_line(p->datasets[d].pos, where, sizeof where));
            return 1;
        }
    for (size_t s = 0; s < i; s++)
        for (size_t j = 0; j < p->splits[s].n_parts; j++)
            if (strcmp(p->splits[s].part_names[j], key->text) == 0) {
                kd_at(v->c, key, "part %s is already a part of the split %s", q,
                      at_line(p->splits[s].pos, where, sizeof where));
                return 1;
            }
    return 0;
}

static void check_parts(struct val *v, struct kd_pipe_split *sp, size_t i, const struct kd_ynode *parts_key,
                        const struct kd_ynode *node)
{
    const struct kd_ynode *parts = as_map(v, node, "'parts'");
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
        copy_name(sp->part_names[k], key->text);
        sp->part_pos[k] = pos_of(key);
        if (!kd_check_name(v->c, key, "part name"))
            part_clashes(v, key, i);
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

static void check_splits(struct val *v)
{
    const struct kd_ynode *node = kd_ytree_get(v->root, "splits", NULL);
    if (!node || !(node = as_list(v, node, "'splits'")) || !list_len(node))
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
        sp->pos = pos_of(item);
        p->n_splits = i + 1;   /* the parts of this split count from here on */
        if (!(map = as_map(v, item, "a split")))
            continue;
        const char *where = "in a split";
        kd_check_keys(v->c, map, SPLIT_KEYS, N(SPLIT_KEYS), where);
        if (kd_require(v->c, map, "from", map == &kd_empty_map ? item : map, where))
            get_ref(v, map, "from", REF_DATASET, i, sp->from, &vn);
        long long x;
        if (kd_get_int(v->c, map, "seed", 0, LLONG_MAX, &x, NULL) > 0) {
            sp->seed = (uint64_t)x;
            sp->has_seed = 1;
        }
        if (kd_require(v->c, map, "parts", map == &kd_empty_map ? item : map, where)) {
            const struct kd_ynode *parts = kd_ytree_get(map, "parts", &pk);
            check_parts(v, sp, i, pk, parts);
        }
    }
}

/* ------------------------------------------------------------------ models */

static void check_model(struct val *v, struct kd_pipe_model *m, const struct kd_ynode *node)
{
    char where[KD_PIPE_NAME_MAX + 32], what[KD_PIPE_NAME_MAX + 32];
    snprintf(where, sizeof where, "in model '%s'", m->name);
    snprintf(what, sizeof what, "model '%s'", m->name);
    const struct kd_ynode *map = as_map(v, node, what), *vn;
    if (!map)
        return;
    kd_check_keys(v->c, map, MODEL_KEYS, N(MODEL_KEYS), where);
    int e;
    kd_get_enum(v->c, map, "type", MODEL_TYPES, N(MODEL_TYPES), &e, NULL);
    if ((vn = kd_ytree_get(map, "hidden", NULL)) && (vn = as_list(v, vn, "'hidden'"))) {
        if (list_len(vn) > KD_PIPE_MAX_HIDDEN) {
            kd_at(v->c, vn, "'hidden' has at most %d layers, got %zu", KD_PIPE_MAX_HIDDEN, vn->n);
        } else {
            m->n_hidden = list_len(vn);
            for (size_t i = 0; i < m->n_hidden; i++) {
                long long x;
                if (kd_val_int(v->c, vn->vals[i], "each layer of 'hidden'", 1, MAX_WIDTH, &x) > 0)
                    m->hidden[i] = (size_t)x;
            }
        }
    }
    if (kd_get_enum(v->c, map, "activation", ACTIVATIONS, N(ACTIVATIONS), &e, NULL) > 0)
        snprintf(m->activation, sizeof m->activation, "%s", ACTIVATIONS[e]);
    double d;
    if (kd_get_num(v->c, map, "dropout", 0, 0, 1, 1, &d, NULL) > 0)
        m->dropout = (float)d;
    if (kd_get_enum(v->c, map, "init", INITS, N(INITS), &e, NULL) > 0)
        snprintf(m->init, sizeof m->init, "%s", INITS[e]);
    long long x;
    struct kd_ynode *k;
    if (kd_get_int(v->c, map, "inputs", 1, MAX_WIDTH, &x, NULL) > 0) {
        m->inputs = (size_t)x;
        kd_ytree_get(map, "inputs", &k);
        m->inputs_pos = pos_of(k);
    }
    if (kd_get_int(v->c, map, "classes", 1, MAX_WIDTH, &x, NULL) > 0) {
        m->classes = (size_t)x;
        kd_ytree_get(map, "classes", &k);
        m->classes_pos = pos_of(k);
    }
}

static void check_models(struct val *v)
{
    const struct kd_ynode *node = kd_ytree_get(v->root, "models", NULL);
    if (!node || !(node = as_map(v, node, "'models'")) || !node->n)
        return;
    struct kd_pipeline *p = v->p;
    if (!(p->models = calloc(node->n, sizeof *p->models))) {
        v->c->nomem = 1;
        return;
    }
    p->n_models = node->n;
    for (size_t i = 0; i < node->n; i++) {
        struct kd_pipe_model *m = &p->models[i];
        copy_name(m->name, node->keys[i]->text);
        m->pos = pos_of(node->keys[i]);
        m->n_hidden = 1;
        m->hidden[0] = 256;
        snprintf(m->activation, sizeof m->activation, "relu");
        snprintf(m->init, sizeof m->init, "he");
        kd_check_name(v->c, node->keys[i], "model name");
        check_model(v, m, node->vals[i]);
    }
}

/* ---------------------------------------------------------------- teachers */

static void check_command(struct val *v, struct kd_pipe_teacher *t, const struct kd_ynode *vn)
{
    /* argv as a list, or a string split on blanks (no quoting: use a list
     * when an argument has a space). */
    size_t n = 0;
    char **argv = NULL;
    if (vn->kind == KD_Y_SCALAR && vn->type != KD_YT_NULL) {
        const char *s;
        if (kd_val_str(v->c, vn, "'command'", &s) <= 0)
            return;
        if (!(argv = calloc(strlen(s) / 2 + 2, sizeof *argv))) {
            v->c->nomem = 1;
            return;
        }
        const char *q = s;
        while (*q) {
            while (*q == ' ' || *q == '\t')
                q++;
            size_t len = strcspn(q, " \t");
            if (!len)
                break;
            if (!(argv[n] = strndup(q, len))) {
                v->c->nomem = 1;
                break;
            }
            n++;
            q += len;
        }
    } else if (vn->kind == KD_Y_SEQ || kd_ytree_is_null(vn)) {
        if (!(argv = calloc(vn->n + 1, sizeof *argv))) {
            v->c->nomem = 1;
            return;
        }
        for (size_t i = 0; i < vn->n; i++) {
            const char *s;
            if (kd_val_str(v->c, vn->vals[i], "each argument of 'command'", &s) <= 0)
                continue;
            if (!(argv[n] = strdup(s))) {
                v->c->nomem = 1;
                break;
            }
            n++;
        }
    } else if (vn->kind != KD_Y_BAD) {
        char got[96];
        kd_describe(vn, got, sizeof got);
        kd_at(v->c, vn, "'command' must be a list of arguments or a string, got %s", got);
        return;
    }
    t->command = argv;
    t->n_command = n;
    /* An empty list or string; a list of only bad arguments was reported. */
    if (n == 0 && !v->c->nomem && (vn->kind == KD_Y_SCALAR || vn->n == 0))
        kd_at(v->c, vn, "'command' must not be empty");
}

static void check_teacher(struct val *v, size_t ti, const struct kd_ynode *key, const struct kd_ynode *node)
{
    struct kd_pipe_teacher *t = &v->p->teachers[ti];
    char where[KD_PIPE_NAME_MAX + 32], what[KD_PIPE_NAME_MAX + 32];
    snprintf(where, sizeof where, "in teacher '%s'", t->name);
    snprintf(what, sizeof what, "teacher '%s'", t->name);
    const struct kd_ynode *map = as_map(v, node, what), *vn;
    if (!map)
        return;
    kd_check_keys(v->c, map, TEACHER_KEYS, N(TEACHER_KEYS), where);
    int kind;
    if (!kd_require(v->c, map, "kind", key, where) ||
        kd_get_enum(v->c, map, "kind", TEACHER_KINDS, N(TEACHER_KINDS), &kind, NULL) <= 0)
        return;   /* what belongs to the teacher depends on its kind */
    t->kind = (enum kd_pipe_teacher_kind)kind;
    for (size_t i = 0; i < map->n; i++)
        for (size_t j = 0; j < N(TEACHER_KIND_OF_KEY); j++)
            if (strcmp(map->keys[i]->text, TEACHER_KIND_OF_KEY[j][0]) == 0 &&
                strcmp(TEACHER_KIND_OF_KEY[j][1], TEACHER_KINDS[kind]) != 0)
                kd_at(v->c, map->keys[i], "'%s' is only for teachers of kind %s", TEACHER_KIND_OF_KEY[j][0],
                      TEACHER_KIND_OF_KEY[j][1]);
    struct kd_ynode *mk, *wk;
    long long x;
    double d;
    switch (t->kind) {
    case KD_PIPE_TEACHER_MODEL:
        kd_ytree_get(map, "model", &mk);
        kd_ytree_get(map, "weights", &wk);
        if (mk && wk) {
            kd_at(v->c, wk, "a teacher of kind model takes 'model' or 'weights', not both");
        } else if (!mk && !wk) {
            kd_at(v->c, key,
                  "teacher '%s' of kind model needs 'model' (a model a stage trains) or 'weights' (a safetensors file)",
                  t->name);
        } else if (mk) {
            t->model_pos = pos_of(mk);
            if (get_ref(v, map, "model", REF_MODEL, 0, t->model, &vn) > 0)
                v->teacher_model[ti] = vn;
        } else {
            t->model_pos = pos_of(wk);
            get_path(v, map, "weights", v->p->dir, &t->weights);
        }
        break;
    case KD_PIPE_TEACHER_EXEC:
        if (kd_require(v->c, map, "command", key, where))
            check_command(v, t, kd_ytree_get(map, "command", NULL));
        if (kd_get_int(v->c, map, "batch", 1, MAX_WIDTH, &x, NULL) > 0)
            t->batch = (size_t)x;
        if (kd_get_num(v->c, map, "timeout", 0, 1, INFINITY, 0, &d, NULL) > 0)
            t->timeout = d;
        break;
    case KD_PIPE_TEACHER_TABLE:
        kd_get_name(v->c, map, "table", "table name", t->table, NULL);
        break;
    }
}

static void check_teachers(struct val *v)
{
    const struct kd_ynode *node = kd_ytree_get(v->root, "teachers", NULL);
    if (!node || !(node = as_map(v, node, "'teachers'")) || !node->n)
        return;
    struct kd_pipeline *p = v->p;
    p->teachers = calloc(node->n, sizeof *p->teachers);
    v->teacher_model = calloc(node->n, sizeof *v->teacher_model);
    if (!p->teachers || !v->teacher_model) {
        v->c->nomem = 1;
        return;
    }
    p->n_teachers = node->n;
    for (size_t i = 0; i < node->n; i++) {
        struct kd_pipe_teacher *t = &p->teachers[i];
        copy_name(t->name, node->keys[i]->text);
        copy_name(t->table, t->name);
        t->pos = pos_of(node->keys[i]);
        t->batch = 256;
        t->timeout = 60;
        kd_check_name(v->c, node->keys[i], "teacher name");
        check_teacher(v, i, node->keys[i], node->vals[i]);
    }
}

/* ------------------------------------------------------------------ stages */

static void check_optimizer(struct val *v, struct kd_pipe_optim *o, const struct kd_ynode *node)
{
    const struct kd_ynode *map = as_map(v, node, "'optimizer'");
    if (!map)
        return;
    kd_check_keys(v->c, map, OPTIM_KEYS, N(OPTIM_KEYS), "in 'optimizer'");
    int kind = 1, rc = kd_get_enum(v->c, map, "kind", OPTIMIZERS, N(OPTIMIZERS), &kind, NULL);
    if (rc > 0)
        snprintf(o->kind, sizeof o->kind, "%s", OPTIMIZERS[kind]);
    double d;
    if (kd_get_num(v->c, map, "lr", 0, 1, INFINITY, 0, &d, NULL) > 0)
        o->lr = (float)d;
    if (kd_get_num(v->c, map, "momentum", 0, 0, 1, 1, &d, NULL) > 0)
        o->momentum = (float)d;
    struct kd_ynode *k;
    if (rc >= 0 && kind != 0 && kd_ytree_get(map, "momentum", &k))
        kd_at(v->c, k, "'momentum' is only for optimizer kind sgd");
    if (kd_get_num(v->c, map, "weight_decay", 0, 0, INFINITY, 0, &d, NULL) > 0)
        o->weight_decay = (float)d;
    if (kd_get_num(v->c, map, "clip", 0, 0, INFINITY, 0, &d, NULL) > 0)
        o->clip = (float)d;
}

static void check_schedule(struct val *v, struct kd_pipe_optim *o, const struct kd_ynode *key,
                           const struct kd_ynode *node)
{
    const struct kd_ynode *map = as_map(v, node, "'schedule'");
    if (!map)
        return;
    kd_check_keys(v->c, map, SCHED_KEYS, N(SCHED_KEYS), "in 'schedule'");
    int kind = 0, rc = kd_get_enum(v->c, map, "kind", SCHEDULES, N(SCHEDULES), &kind, NULL);
    if (rc > 0)
        snprintf(o->schedule, sizeof o->schedule, "%s", SCHEDULES[kind]);
    long long x;
    double d;
    if (kd_get_int(v->c, map, "warmup", 0, LLONG_MAX, &x, NULL) > 0)
        o->warmup = (uint64_t)x;
    if (kd_get_int(v->c, map, "step_size", 1, LLONG_MAX, &x, NULL) > 0)
        o->step_size = (uint64_t)x;
    if (kd_get_num(v->c, map, "gamma", 0, 1, 1, 0, &d, NULL) > 0)
        o->gamma = (float)d;
    if (kd_get_num(v->c, map, "min_lr", 0, 0, INFINITY, 0, &d, NULL) > 0)
        o->min_lr = (float)d;
    if (rc < 0)
        return;
    struct kd_ynode *k;
    if (kind != 1 && kd_ytree_get(map, "step_size", &k))
        kd_at(v->c, k, "'step_size' is only for schedule kind step");
    if (kind != 1 && kd_ytree_get(map, "gamma", &k))
        kd_at(v->c, k, "'gamma' is only for schedule kind step");
    if (kind != 2 && kd_ytree_get(map, "min_lr", &k))
        kd_at(v->c, k, "'min_lr' is only for schedule kind cosine");
    if (kind == 1 && !kd_ytree_get(map, "step_size", NULL))
        kd_at(v->c, map == &kd_empty_map ? key : map,
              "missing required key 'step_size' in 'schedule' (kind step needs it)");
}

/* epochs, batch, optimizer, schedule: the keys of stages that train. */
static void check_training(struct val *v, struct kd_pipe_stage *s, const struct kd_ynode *map)
{
    long long x;
    if (kd_get_int(v->c, map, "epochs", 1, MAX_EPOCHS, &x, NULL) > 0)
        s->epochs = (size_t)x;
    if (kd_get_int(v->c, map, "batch", 1, MAX_WIDTH, &x, NULL) > 0)
        s->batch = (size_t)x;
    struct kd_ynode *k;
    const struct kd_ynode *vn;
    if ((vn = kd_ytree_get(map, "optimizer", NULL)))
        check_optimizer(v, &s->optim, vn);
    if ((vn = kd_ytree_get(map, "schedule", &k)))
        check_schedule(v, &s->optim, k, vn);
}

static void stage_defaults(struct kd_pipe_stage *s, size_t i)
{
    snprintf(s->name, sizeof s->name, "%s-%zu", kd_stage_kind_name(s->kind), i);
    s->epochs = 10;
    s->batch = 256;
    snprintf(s->optim.kind, sizeof s->optim.kind, "adam");
    s->optim.lr = 1e-3f;
    snprintf(s->optim.schedule, sizeof s->optim.schedule, "constant");
    s->optim.gamma = 0.1f;
    s->loss = KD_DLOSS_HINTON;
    s->temperature = 4;
    s->alpha = 0.5f;
    s->format_safetensors = 1;
}

static void check_stage_body(struct val *v, size_t i, const struct kd_ynode *kkey, const struct kd_ynode *map)
{
    struct kd_pipe_stage *s = &v->p->stages[i];
    struct stage_refs *r = &v->refs[i];
    size_t ns = v->p->n_splits;
    const struct kd_ynode *vn;
    struct kd_ynode *k;
    char where[48];
    int vowel = s->kind == KD_STAGE_EVALUATE || s->kind == KD_STAGE_EXPORT;
    snprintf(where, sizeof where, "in %s %s stage", vowel ? "an" : "a", kd_stage_kind_name(s->kind));
    const char *const *keys = NULL;
    size_t n_keys = 0;
    switch (s->kind) {
    case KD_STAGE_TRAIN: keys = TRAIN_KEYS; n_keys = N(TRAIN_KEYS); break;
    case KD_STAGE_LABEL: keys = LABEL_KEYS; n_keys = N(LABEL_KEYS); break;
    case KD_STAGE_DISTILL: keys = DISTILL_KEYS; n_keys = N(DISTILL_KEYS); break;
    case KD_STAGE_EVALUATE: keys = EVALUATE_KEYS; n_keys = N(EVALUATE_KEYS); break;
    case KD_STAGE_EXPORT: keys = EXPORT_KEYS; n_keys = N(EXPORT_KEYS); break;
    }
    kd_check_keys(v->c, map, keys, n_keys, where);
    if (kd_get_name(v->c, map, "name", "stage name", s->name, &r->name) < 0)
        r->name = NULL;

    /* Required keys, in the order the kind lists them. */
    static const char *const required[][3] = {
        {"model", "data", NULL}, {"teacher", "data", NULL}, {"student", "teacher", "data"},
        {"models", "data", NULL}, {"model", NULL, NULL},
    };
    for (size_t j = 0; j < 3 && required[s->kind][j]; j++)
        kd_require(v->c, map, required[s->kind][j], kkey, where);

    const char *model_key = s->kind == KD_STAGE_DISTILL ? "student" : "model";
    if (s->kind != KD_STAGE_LABEL && s->kind != KD_STAGE_EVALUATE) {
        kd_ytree_get(map, model_key, &k);
        s->model_pos = pos_of(k);
        if (get_ref(v, map, model_key, REF_MODEL, ns, s->model, &vn) > 0)
            r->model = vn;
    }
    if (s->kind != KD_STAGE_EXPORT) {
        kd_ytree_get(map, "data", &k);
        s->data_pos = pos_of(k);
        get_ref(v, map, "data", REF_DATASET, ns, s->data, &vn);
    }
    if (s->kind == KD_STAGE_LABEL || s->kind == KD_STAGE_DISTILL || s->kind == KD_STAGE_EVALUATE) {
        kd_ytree_get(map, "teacher", &k);
        s->teacher_pos = pos_of(k);
        if (get_ref(v, map, "teacher", REF_TEACHER, ns, s->teacher, &vn) > 0)
            r->teacher = vn;
    }
    if (s->kind == KD_STAGE_TRAIN || s->kind == KD_STAGE_DISTILL)
        check_training(v, s, map);
    if (s->kind == KD_STAGE_DISTILL) {
        kd_ytree_get(map, "gold", &k);
        s->gold_pos = pos_of(k);
        get_ref(v, map, "gold", REF_DATASET, ns, s->gold, &vn);
        kd_ytree_get(map, "validation", &k);
        s->validation_pos = pos_of(k);
        get_ref(v, map, "validation", REF_DATASET, ns, s->validation, &vn);
        kd_config_active(v->c, s, map, v->p->dir);
        int e;
        double d;
        if (kd_get_enum(v->c, map, "loss", LOSSES, N(LOSSES), &e, NULL) > 0)
            s->loss = (enum kd_distill_loss)e;
        if (kd_get_num(v->c, map, "temperature", 0, 1, INFINITY, 0, &d, NULL) > 0)
            s->temperature = (float)d;
        if (kd_get_num(v->c, map, "alpha", 0, 0, 1, 0, &d, NULL) > 0)
            s->alpha = (float)d;
    }
    if (s->kind == KD_STAGE_EVALUATE && (vn = kd_ytree_get(map, "models", &k)) && (vn = as_list(v, vn, "'models'"))) {
        s->model_pos = pos_of(k);
        if (list_len(vn) == 0) {
            kd_at(v->c, kd_ytree_is_null(vn) ? k : vn, "'models' must name at least one model");
        } else if (vn->n > KD_PIPE_MAX_LIST) {
            kd_at(v->c, vn, "'models' names at most %d models, got %zu", KD_PIPE_MAX_LIST, vn->n);
        } else {
            for (size_t j = 0; j < vn->n; j++) {
                const char *name;
                if (kd_val_str(v->c, vn->vals[j], "each item of 'models'", &name) <= 0 ||
                    check_ref(v, vn->vals[j], REF_MODEL, ns))
                    continue;
                copy_name(s->models[s->n_models], name);
                r->models[s->n_models++] = vn->vals[j];
            }
        }
    }
    if (s->kind == KD_STAGE_EXPORT) {
        if ((vn = kd_ytree_get(map, "formats", &k)) && (vn = as_list(v, vn, "'formats'"))) {
            if (list_len(vn) == 0) {
                kd_at(v->c, kd_ytree_is_null(vn) ? k : vn, "'formats' must name at least one format");
            } else {
                s->format_safetensors = 0;
                for (size_t j = 0; j < vn->n; j++) {
                    int e;
                    if (kd_val_enum(v->c, vn->vals[j], "each item of 'formats'", FORMATS, N(FORMATS), &e) <= 0)
                        continue;
                    if (e == 0)
                        s->format_safetensors = 1;
                    else
                        s->format_c = 1;
                }
            }
        }
        const char *path;
        if (kd_get_str(v->c, map, "path", &path, NULL) <= 0)
            path = s->model[0] ? s->model : s->name;
        if (v->p->output)
            s->path = join_path(v, v->p->output, path);
    }
}

static void check_stage(struct val *v, size_t i, const struct kd_ynode *item)
{
    struct kd_pipe_stage *s = &v->p->stages[i];
    s->pos = pos_of(item);   /* the name stays empty until the kind is known */
    if (item->kind != KD_Y_MAP) {
        if (item->kind != KD_Y_BAD) {
            char got[96];
            kd_describe(item, got, sizeof got);
            kd_at(v->c, item, "a stage must be a mapping with one key, its kind (as in '- train: {...}'), got %s", got);
        }
        return;
    }
    if (item->n == 0) {
        kd_at(v->c, item, "a stage has one key, its kind (train, label, distill, evaluate or export), but this one "
              "is empty");
        return;
    }
    if (item->n != 1) {
        char list[256];
        const char *names[8];
        size_t n = item->n < 8 ? item->n : 8;
        for (size_t j = 0; j < n; j++)
            names[j] = item->keys[j]->text;
        kd_join(list, sizeof list, names, n, ", ");
        /* `- train:` then `model:` at the same indentation: a common slip. */
        int slip = 0;
        for (size_t j = 0; j < N(STAGE_KINDS); j++)
            if (strcmp(item->keys[0]->text, STAGE_KINDS[j]) == 0 && kd_ytree_is_null(item->vals[0]))
                slip = 1;
        kd_at(v->c, item,
              "a stage has one key, its kind (train, label, distill, evaluate or export), but this one has %zu: %s%s",
              item->n, list, slip ? " (are the stage's keys indented under its kind?)" : "");
        return;
    }
    const struct kd_ynode *kkey = item->keys[0];
    size_t k = 0;
    while (k < N(STAGE_KINDS) && strcmp(kkey->text, STAGE_KINDS[k]) != 0)
        k++;
    if (k == N(STAGE_KINDS)) {
        char q[64], list[128];
        kd_quote(kkey->text, kkey->len, q, sizeof q);
        const char *sug = kd_suggest(kkey->text, STAGE_KINDS, N(STAGE_KINDS));
        kd_join(list, sizeof list, STAGE_KINDS, N(STAGE_KINDS), ", ");
        if (sug)
            kd_at(v->c, kkey, "unknown stage kind %s, did you mean '%s'?", q, sug);
        else
            kd_at(v->c, kkey, "unknown stage kind %s (allowed: %s)", q, list);
        return;
    }
    s->kind = (enum kd_stage_kind)k;
    s->pos = pos_of(kkey);
    stage_defaults(s, i);
    char what[32];
    snprintf(what, sizeof what, "'%s'", STAGE_KINDS[k]);
    const struct kd_ynode *map = as_map(v, item->vals[0], what);
    if (map)
        check_stage_body(v, i, kkey, map);
}

/* The first stage that trains (train) or distills (distill) model `name`;
 * n when none. */
static size_t first_training(const struct kd_pipeline *p, const char *name)
{
    for (size_t i = 0; i < p->n_stages; i++)
        if ((p->stages[i].kind == KD_STAGE_TRAIN || p->stages[i].kind == KD_STAGE_DISTILL) &&
            strcmp(p->stages[i].model, name) == 0)
            return i;
    return p->n_stages;
}

/* Checks that need the whole list: unique stage names, and that every model
 * is trained before a stage evaluates or exports it or asks its teacher. */
static void check_order(struct val *v)
{
    const struct kd_pipeline *p = v->p;
    char where[32];
    for (size_t j = 1; j < p->n_stages; j++)
        for (size_t i = 0; i < j && p->stages[j].name[0]; i++)
            if (strcmp(p->stages[i].name, p->stages[j].name) == 0) {
                const struct kd_ynode *at = v->refs[j].name;
                if (at)
                    kd_at(v->c, at, "stage name '%s' is already used by the stage %s", p->stages[j].name,
                          at_line(p->stages[i].pos, where, sizeof where));
                else
                    kd_pctx_report(v->c, 0, p->stages[j].pos.line, p->stages[j].pos.col,
                                   "this stage's default name '%s' is already used by the stage %s; give it a 'name'",
                                   p->stages[j].name, at_line(p->stages[i].pos, where, sizeof where));
                break;
            }
    for (size_t t = 0; t < p->n_teachers; t++) {
        const struct kd_ynode *mv = v->teacher_model ? v->teacher_model[t] : NULL;
        if (mv && first_training(p, p->teachers[t].model) == p->n_stages)
            kd_at(v->c, mv, "teacher '%s' uses model '%s', which no stage trains; add a train stage for it, or give "
                  "'weights' instead", p->teachers[t].name, p->teachers[t].model);
    }
    for (size_t i = 0; i < p->n_stages; i++) {
        const struct kd_pipe_stage *s = &p->stages[i];
        const struct stage_refs *r = &v->refs[i];
        const struct kd_pipe_teacher *t = r->teacher ? kd_pipeline_teacher(p, s->teacher) : NULL;
        if (t && t->kind == KD_PIPE_TEACHER_MODEL && t->model[0]) {
            size_t j = first_training(p, t->model);
            if (j < p->n_stages && j >= i)
                kd_at(v->c, r->teacher, "teacher '%s' is used before its model '%s' is trained (by stage '%s' %s)",
                      t->name, t->model, p->stages[j].name, at_line(p->stages[j].pos, where, sizeof where));
        }
        const struct kd_ynode *models[KD_PIPE_MAX_LIST];
        const char *names[KD_PIPE_MAX_LIST];
        size_t n = 0;
        if (s->kind == KD_STAGE_EVALUATE)
            for (; n < s->n_models; n++) {
                models[n] = r->models[n];
                names[n] = s->models[n];
            }
        if (s->kind == KD_STAGE_EXPORT && r->model) {
            models[n] = r->model;
            names[n++] = s->model;
        }
        const char *verb = s->kind == KD_STAGE_EVALUATE ? "evaluated" : "exported";
        for (size_t m = 0; m < n; m++) {
            size_t j = first_training(p, names[m]);
            if (j == p->n_stages)
                kd_at(v->c, models[m], "model '%s' is %s but never trained: no train or distill stage names it",
                      names[m], verb);
            else if (j > i)
                kd_at(v->c, models[m], "model '%s' is %s before it is trained (by stage '%s' %s)", names[m], verb,
                      p->stages[j].name, at_line(p->stages[j].pos, where, sizeof where));
        }
    }
}

static void check_stages(struct val *v)
{
    struct kd_ynode *key;
    const struct kd_ynode *node = kd_ytree_get(v->root, "stages", &key);
    if (!kd_require(v->c, v->root, "stages", v->root, "at the top level") || !(node = as_list(v, node, "'stages'")))
        return;
    if (list_len(node) == 0) {
        kd_at(v->c, node->kind == KD_Y_SEQ ? node : key, "'stages' must list at least one stage");
        return;
    }
    struct kd_pipeline *p = v->p;
    p->stages = calloc(node->n, sizeof *p->stages);
    v->refs = calloc(node->n, sizeof *v->refs);
    if (!p->stages || !v->refs) {
        v->c->nomem = 1;
        return;
    }
    p->n_stages = node->n;
    for (size_t i = 0; i < node->n; i++)
        check_stage(v, i, node->vals[i]);
    check_order(v);
}

/* ------------------------------------------------------------------- API */

const char *kd_stage_kind_name(enum kd_stage_kind kind)
{
    return (unsigned)kind < N(STAGE_KINDS) ? STAGE_KINDS[kind] : "?";
}

const struct kd_pipe_model *kd_pipeline_model(const struct kd_pipeline *p, const char *name)
{
    for (size_t i = 0; p && name && i < p->n_models; i++)
        if (strcmp(p->models[i].name, name) == 0)
            return &p->models[i];
    return NULL;
}

const struct kd_pipe_teacher *kd_pipeline_teacher(const struct kd_pipeline *p, const char *name)
{
    for (size_t i = 0; p && name && i < p->n_teachers; i++)
        if (strcmp(p->teachers[i].name, name) == 0)
            return &p->teachers[i];
    return NULL;
}

void kd_pipeline_release(struct kd_pipeline *p)
{
    if (!p)
        return;
    free(p->path);
    free(p->text);
    free(p->dir);
    free(p->output);
    free(p->store);
    for (size_t i = 0; i < p->n_datasets; i++) {
        free(p->datasets[i].features);
        free(p->datasets[i].labels);
        free(p->datasets[i].label_column);
    }
    free(p->datasets);
    free(p->splits);
    free(p->models);
    for (size_t i = 0; i < p->n_teachers; i++) {
        free(p->teachers[i].weights);
        for (size_t j = 0; p->teachers[i].command && j < p->teachers[i].n_command; j++)
            free(p->teachers[i].command[j]);
        free(p->teachers[i].command);
    }
    free(p->teachers);
    for (size_t i = 0; i < p->n_stages; i++) {
        free(p->stages[i].path);
        free(p->stages[i].select.tgt_autoencoder);
    }
    free(p->stages);
    memset(p, 0, sizeof *p);
}

/* The folder part of path: "." when it has none. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

kd_status kd_pipeline_parse(const char *text, size_t len, const char *path, const char *const *sets, size_t n_sets,
                            struct kd_pipeline *p, struct kd_diag *diag)
{
    memset(p, 0, sizeof *p);
    const char *shown = path && path[0] ? path : "pipeline";
    snprintf(diag->path, sizeof diag->path, "%s", shown);
    size_t first_item = diag->n;
    struct kd_pctx c = {.diag = diag, .sets = sets, .n_sets = n_sets};
    struct val v = {.c = &c, .p = p};
    struct kd_ynode *root = NULL;

    p->path = strdup(shown);
    p->dir = dir_of(shown);
    p->text = malloc(len + 1);
    if (!p->path || !p->dir || !p->text) {
        c.nomem = 1;
        goto done;
    }
    memcpy(p->text, text, len);
    p->text[len] = '\0';

    if (kd_ytree_parse(&c, text, len, 0, 0, &root))
        goto done;
    if (root->kind != KD_Y_MAP) {
        char got[96];
        kd_describe(root, got, sizeof got);
        if (kd_ytree_is_null(root))
            kd_at(&c, NULL, "the file is empty: a pipeline needs at least 'stages'");
        else if (root->kind != KD_Y_BAD)
            kd_at(&c, root, "a pipeline must be a mapping of keys (version, name, datasets, ..., stages), got %s", got);
        goto done;
    }
    for (size_t i = 0; i < n_sets && !c.nomem; i++)
        kd_overrides_apply(&c, root, i);
    v.root = root;
    if (!c.nomem && check_top(&v) == 0) {
        check_datasets(&v);
        check_splits(&v);
        check_models(&v);
        check_teachers(&v);
        check_stages(&v);
    }
done:
    kd_ytree_free(root);
    free(v.refs);
    free(v.teacher_model);
    kd_diag_sort(diag, first_item);
    if (c.nomem) {
        kd_diag_add(diag, 0, 0, "out of memory");
        kd_pipeline_release(p);
        return KD_ERR_NOMEM;
    }
    if (c.n_problems) {
        kd_pipeline_release(p);
        return KD_ERR_CONFIG;
    }
    return KD_OK;
}

kd_status kd_pipeline_load(const char *path, const char *const *sets, size_t n_sets, struct kd_pipeline *p,
                           struct kd_diag *diag)
{
    memset(p, 0, sizeof *p);
    struct kd_error err = {0};
    char *text;
    size_t len;
    kd_status st = kd_read_file(path, &text, &len, &err);
    if (st) {
        snprintf(diag->path, sizeof diag->path, "%s", path);
        kd_diag_push(diag, 0, 0, err.msg);
        return st;
    }
    st = kd_pipeline_parse(text, len, path, sets, n_sets, p, diag);
    free(text);
    return st;
}

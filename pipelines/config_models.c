/* The sections that define networks and who answers: `models:` (the MLPs
 * stages train) and `teachers:` (a trained model, a program, or a table of
 * imported answers). Checked like the rest of the file (pipelines/config.c):
 * every problem reported with its position. The enums are parsed by the
 * modules that own them: activations and initialisations by student/,
 * teacher kinds by store/ (enum kd_teacher_kind). */
#include "pipelines/pipeline_impl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const MODEL_KEYS[] = {"type",    "hidden", "activation", "dropout",   "init",
                                         "inputs",  "classes", "buckets",   "dim",       "shared",
                                         "normalise", "score", "temperature", "featurizer", "bm25"};
static const char *const MODEL_TYPES[] = {"mlp", "dual", "cross"};   /* enum kd_pipe_model_type order */
/* The keys each type takes besides type, hidden and activation (which all take). */
static const char *const MLP_KEYS[] = {"dropout", "init", "inputs", "classes"};
static const char *const DUAL_KEYS[] = {"buckets", "dim", "shared", "normalise", "score", "temperature", "featurizer"};
static const char *const CROSS_KEYS[] = {"buckets", "dim", "shared", "bm25", "featurizer"};
static const char *const FEATURIZER_KEYS[] = {"words", "chars", "seed"};
static const char *const SCORES[] = {"dot", "cosine"};      /* enum kd_dual_score order */
static const char *const TEACHER_KEYS[] = {"kind", "model", "weights", "command", "batch", "timeout", "table",
                                            "answers"};
/* Which teacher keys belong to which kind (besides `kind`). */
static const char *const TEACHER_KIND_OF_KEY[][2] = {
    {"model", "model"}, {"weights", "model"}, {"command", "exec"}, {"batch", "exec"},
    {"timeout", "exec"}, {"table", "table"}, {"answers", "exec"},
};
static const char *const ANSWERS[] = {"scores", "embeddings"};

/* The owners' parsers and names behind struct kd_vocab. */
static int act_from_name(const char *s, int *out)
{
    enum kd_act a;
    if (kd_act_from_name(s, &a) != KD_OK)
        return -1;
    *out = (int)a;
    return 0;
}
static const char *act_name(int a) { return kd_act_name((enum kd_act)a); }
static int init_from_name(const char *s, int *out)
{
    enum kd_init i;
    if (kd_init_from_name(s, &i) != KD_OK)
        return -1;
    *out = (int)i;
    return 0;
}
static const char *init_name(int i) { return kd_init_name((enum kd_init)i); }
static int teacher_kind_from_name(const char *s, int *out)
{
    enum kd_teacher_kind k;
    struct kd_error unused;
    if (kd_teacher_kind_parse(s, &k, &unused) != KD_OK)
        return -1;
    *out = (int)k;
    return 0;
}
static const char *teacher_kind_name(int k)
{
    const char *s = kd_teacher_kind_name((enum kd_teacher_kind)k);
    return s ? s : "?";
}

/* In the order docs/pipeline.md lists them (the default first). */
static const int ACT_ORDER[] = {KD_ACT_RELU, KD_ACT_GELU, KD_ACT_TANH, KD_ACT_IDENTITY};
static const int INIT_ORDER[] = {KD_INIT_HE, KD_INIT_XAVIER};
static const int TEACHER_KIND_ORDER[] = {KD_TEACHER_MODEL, KD_TEACHER_EXEC, KD_TEACHER_TABLE};
static const struct kd_vocab ACTIVATIONS = {act_from_name, act_name, ACT_ORDER, N(ACT_ORDER)};
static const struct kd_vocab INITS = {init_from_name, init_name, INIT_ORDER, N(INIT_ORDER)};
static const struct kd_vocab TEACHER_KINDS = {teacher_kind_from_name, teacher_kind_name, TEACHER_KIND_ORDER,
                                              N(TEACHER_KIND_ORDER)};

/* ------------------------------------------------------------------ models */

/* Refuses a model too big to allocate here rather than half-way through a
 * run: counts the parameters with the sizes the file gives (an input or
 * output width that comes from the data counts as 1, so the count is a
 * lower bound then). */
static void check_params(struct kd_cfg *v, const struct kd_pipe_model *m, const struct kd_ynode *key)
{
    struct kd_mlp_config cfg = {0};
    cfg.sizes[cfg.n_sizes++] = m->inputs ? m->inputs : 1;
    for (size_t i = 0; i < m->n_hidden; i++)
        cfg.sizes[cfg.n_sizes++] = m->hidden[i];
    cfg.sizes[cfg.n_sizes++] = m->classes ? m->classes : 1;
    unsigned long long n = kd_mlp_config_params(&cfg);
    if (n > KD_PIPE_MAX_PARAMS)
        kd_at(v->c, key, "model '%s' has %s%llu parameters, more than kd's limit of %llu (2^31); make 'hidden' "
              "smaller", m->name, m->inputs && m->classes ? "" : "at least ", n, KD_PIPE_MAX_PARAMS);
}

/* featurizer: {words: N, chars: MIN-MAX | N | 0, seed: S} */
static void check_featurizer(struct kd_cfg *v, struct kd_pipe_model *m, const struct kd_ynode *node)
{
    const struct kd_ynode *map = kd_as_map(v->c, node, "'featurizer'"), *vn;
    if (!map)
        return;
    kd_check_keys(v->c, map, FEATURIZER_KEYS, N(FEATURIZER_KEYS), "in 'featurizer'");
    long long x;
    if (kd_get_int(v->c, map, "words", 0, 8, &x, NULL) > 0)
        m->text.word_ngrams = (unsigned)x;
    if (kd_get_int(v->c, map, "seed", 0, LLONG_MAX, &x, NULL) > 0)
        m->text.seed = (uint64_t)x;
    if ((vn = kd_ytree_get(map, "chars", NULL))) {
        unsigned lo = 0, hi = 0;
        int ok = 0;
        if (vn->kind == KD_Y_SCALAR && vn->type == KD_YT_INT) {
            ok = kd_val_int(v->c, vn, "'chars'", 0, 16, &x) > 0;
            lo = hi = (unsigned)x;
            if (!ok)
                return;
        } else if (vn->kind == KD_Y_SCALAR && vn->type == KD_YT_STR) {
            char tail;
            ok = sscanf(vn->text, "%u-%u%c", &lo, &hi, &tail) == 2 && lo >= 1 && lo <= hi && hi <= 16;
        }
        if (!ok && vn->kind != KD_Y_BAD) {
            char got[96];
            kd_describe(vn, got, sizeof got);
            kd_at(v->c, vn, "'chars' must be MIN-MAX character n-gram lengths with 1 <= MIN <= MAX <= 16 "
                  "(e.g. 3-5), one length, or 0 (none), got %s", got);
            return;
        }
        m->text.char_min = lo;
        m->text.char_max = hi;
    }
    if (m->text.word_ngrams == 0 && m->text.char_max == 0)
        kd_at(v->c, map == &kd_empty_map ? node : map, "the featurizer has no features: 'words' and 'chars' are both 0");
}

/* The keys of a dual encoder (type dual). */
static void check_dual(struct kd_cfg *v, struct kd_pipe_model *m, const struct kd_ynode *key,
                       const struct kd_ynode *map)
{
    long long x;
    double d;
    int b, e;
    kd_dual_config_init(&m->dual);
    kd_text_settings_init(&m->text);
    if (kd_get_int(v->c, map, "buckets", 1, 31, &x, NULL) > 0)
        m->text.log2_buckets = (unsigned)x;
    m->dual.buckets = 1u << m->text.log2_buckets;
    if (kd_get_int(v->c, map, "dim", 1, KD_CFG_MAX_WIDTH, &x, NULL) > 0)
        m->dual.E = (size_t)x;
    if (kd_get_bool(v, map, "shared", &b) > 0)
        m->dual.shared = b;
    if (kd_get_bool(v, map, "normalise", &b) > 0)
        m->dual.normalize = b;
    const struct kd_ynode *sv = NULL, *vn;
    if (kd_get_enum(v->c, map, "score", SCORES, N(SCORES), &e, &sv) > 0)
        m->dual.score = (enum kd_dual_score)e;
    if (kd_get_num(v->c, map, "temperature", KD_RANGE_POSITIVE, &d, NULL) > 0)
        m->dual.temperature = (float)d;
    struct kd_ynode *tk;
    if (m->dual.score != KD_SCORE_COSINE && kd_ytree_get(map, "temperature", &tk))
        kd_at(v->c, tk, "'temperature' is only for score cosine (a dot score has none)");
    if ((vn = kd_ytree_get(map, "featurizer", NULL)))
        check_featurizer(v, m, vn);
    if (m->n_hidden > KD_DUAL_MAX_LAYERS) {
        kd_at(v->c, key, "a dual encoder has at most %d dense layers per tower, model '%s' has %zu",
              KD_DUAL_MAX_LAYERS, m->name, m->n_hidden);
        return;
    }
    m->dual.n_layers = m->n_hidden;
    for (size_t i = 0; i < m->n_hidden; i++)
        m->dual.hidden[i] = m->hidden[i];
    m->dual.act = m->act;
    /* tables dominate: buckets x dim per tower */
    unsigned long long n = (unsigned long long)m->dual.buckets * m->dual.E * (m->dual.shared ? 1 : 2);
    if (n > KD_PIPE_MAX_PARAMS)
        kd_at(v->c, key, "model '%s' has at least %llu parameters, more than kd's limit of %llu (2^31); make "
              "'buckets' or 'dim' smaller", m->name, n, KD_PIPE_MAX_PARAMS);
}

/* The keys of a cross-encoder (type cross): the head is `hidden` then one
 * output, the score. */
static void check_cross(struct kd_cfg *v, struct kd_pipe_model *m, const struct kd_ynode *key,
                        const struct kd_ynode *map)
{
    long long x;
    int b;
    kd_cross_config_init(&m->cross);
    kd_text_settings_init(&m->text);
    if (kd_get_int(v->c, map, "buckets", 1, 31, &x, NULL) > 0)
        m->text.log2_buckets = (unsigned)x;
    m->cross.buckets = 1u << m->text.log2_buckets;
    if (kd_get_int(v->c, map, "dim", 1, KD_CFG_MAX_WIDTH, &x, NULL) > 0)
        m->cross.E = (size_t)x;
    if (kd_get_bool(v, map, "shared", &b) > 0)
        m->cross.shared = b;
    if (kd_get_bool(v, map, "bm25", &b) > 0)
        m->cross.use_bm25 = b;
    const struct kd_ynode *vn;
    if ((vn = kd_ytree_get(map, "featurizer", NULL)))
        check_featurizer(v, m, vn);
    if (m->n_hidden + 1 > KD_CROSS_MAX_LAYERS) {
        kd_at(v->c, kd_ytree_get(map, "hidden", NULL), "a cross-encoder's head has at most %d hidden layers (then "
              "its score), model '%s' has %zu", KD_CROSS_MAX_LAYERS - 1, m->name, m->n_hidden);
        return;
    }
    m->cross.n_layers = m->n_hidden + 1;
    for (size_t i = 0; i < m->n_hidden; i++)
        m->cross.hidden[i] = m->hidden[i];
    m->cross.hidden[m->n_hidden] = 1;
    m->cross.act = m->act;
    unsigned long long n = (unsigned long long)m->cross.buckets * m->cross.E * (m->cross.shared ? 1 : 2);
    if (n > KD_PIPE_MAX_PARAMS)
        kd_at(v->c, key, "model '%s' has at least %llu parameters, more than kd's limit of %llu (2^31); make "
              "'buckets' or 'dim' smaller", m->name, n, KD_PIPE_MAX_PARAMS);
}

/* A key that another type takes but this one does not: "'score' is only for
 * models of type dual". */
static void check_type_keys(struct kd_cfg *v, const struct kd_pipe_model *m, const struct kd_ynode *map)
{
    static const char *const *const keys[] = {MLP_KEYS, DUAL_KEYS, CROSS_KEYS};
    static const size_t n_keys[] = {N(MLP_KEYS), N(DUAL_KEYS), N(CROSS_KEYS)};
    for (size_t i = 0; i < map->n; i++) {
        const char *key = map->keys[i]->text;
        int mine = 0;
        char owners[64] = "";
        for (size_t t = 0; t < N(MODEL_TYPES); t++)
            for (size_t j = 0; j < n_keys[t]; j++)
                if (strcmp(key, keys[t][j]) == 0) {
                    if (t == (size_t)m->type)
                        mine = 1;
                    else
                        snprintf(owners + strlen(owners), sizeof owners - strlen(owners), "%s%s",
                                 owners[0] ? " and " : "", MODEL_TYPES[t]);
                }
        if (!mine && owners[0])
            kd_at(v->c, map->keys[i], "'%s' is only for models of type %s", key, owners);
    }
}

static void check_model(struct kd_cfg *v, struct kd_pipe_model *m, const struct kd_ynode *key,
                        const struct kd_ynode *node)
{
    char where[KD_PIPE_NAME_MAX + 32], what[KD_PIPE_NAME_MAX + 32];
    snprintf(where, sizeof where, "in model '%s'", m->name);
    snprintf(what, sizeof what, "model '%s'", m->name);
    const struct kd_ynode *map = kd_as_map(v->c, node, what), *vn;
    if (!map)
        return;
    kd_check_keys(v->c, map, MODEL_KEYS, N(MODEL_KEYS), where);
    int e, sizes_ok = 1;
    struct kd_ynode *k;
    if (kd_get_enum(v->c, map, "type", MODEL_TYPES, N(MODEL_TYPES), &e, NULL) > 0) {
        m->type = (enum kd_pipe_model_type)e;
        kd_ytree_get(map, "type", &k);
        m->type_pos = kd_pos_of(k);
    }
    check_type_keys(v, m, map);
    if (m->type == KD_MODEL_DUAL)
        m->n_hidden = 0;   /* a dual encoder has no dense layers unless told */
    if (m->type == KD_MODEL_CROSS)
        m->hidden[0] = 128;   /* the cross-encoder's head: 128, then the score */
    if ((vn = kd_ytree_get(map, "hidden", NULL)) && (vn = kd_as_list(v->c, vn, "'hidden'"))) {
        if (kd_list_len(vn) > KD_PIPE_MAX_HIDDEN) {
            kd_at(v->c, vn, "'hidden' has at most %d layers, got %zu", KD_PIPE_MAX_HIDDEN, vn->n);
            sizes_ok = 0;
        } else {
            m->n_hidden = kd_list_len(vn);
            for (size_t i = 0; i < m->n_hidden; i++) {
                long long x;
                if (kd_val_int(v->c, vn->vals[i], "each layer of 'hidden'", 1, KD_CFG_MAX_WIDTH, &x) > 0)
                    m->hidden[i] = (size_t)x;
                else
                    sizes_ok = 0;
            }
        }
    }
    if (kd_get_vocab(v->c, map, "activation", &ACTIVATIONS, &e, NULL) > 0)
        m->act = (enum kd_act)e;
    double d;
    if (kd_get_num(v->c, map, "dropout", KD_RANGE_UNIT_BELOW_ONE, &d, NULL) > 0)
        m->dropout = (float)d;
    if (kd_get_vocab(v->c, map, "init", &INITS, &e, NULL) > 0)
        m->init = (enum kd_init)e;
    if (m->type == KD_MODEL_DUAL) {
        if (sizes_ok)
            check_dual(v, m, key, map);
        return;
    }
    if (m->type == KD_MODEL_CROSS) {
        if (sizes_ok)
            check_cross(v, m, key, map);
        return;
    }
    long long x;
    if (kd_get_int(v->c, map, "inputs", 1, KD_CFG_MAX_WIDTH, &x, NULL) > 0) {
        m->inputs = (size_t)x;
        kd_ytree_get(map, "inputs", &k);
        m->inputs_pos = kd_pos_of(k);
    }
    if (kd_get_int(v->c, map, "classes", 1, KD_CFG_MAX_WIDTH, &x, NULL) > 0) {
        m->classes = (size_t)x;
        kd_ytree_get(map, "classes", &k);
        m->classes_pos = kd_pos_of(k);
    }
    if (sizes_ok)
        check_params(v, m, key);
}

void kd_config_models(struct kd_cfg *v)
{
    const struct kd_ynode *node = kd_ytree_get(v->root, "models", NULL);
    if (!node || !(node = kd_as_map(v->c, node, "'models'")) || !node->n)
        return;
    struct kd_pipeline *p = v->p;
    if (!(p->models = calloc(node->n, sizeof *p->models))) {
        v->c->nomem = 1;
        return;
    }
    p->n_models = node->n;
    for (size_t i = 0; i < node->n; i++) {
        struct kd_pipe_model *m = &p->models[i];
        kd_copy_name(m->name, node->keys[i]->text);
        m->pos = kd_pos_of(node->keys[i]);
        m->n_hidden = 1;
        m->hidden[0] = 256;
        m->act = KD_ACT_RELU;
        m->init = KD_INIT_HE;
        kd_check_name(v->c, node->keys[i], "model name");
        if (strcmp(m->name, KD_PIPE_BM25) == 0)
            kd_at(v->c, node->keys[i], "model name '%s' is reserved: evaluate stages use it for the BM25 baseline",
                  KD_PIPE_BM25);
        if (kd_names_add(&v->models, m->name, i) < 0)
            v->c->nomem = 1;
        check_model(v, m, node->keys[i], node->vals[i]);
    }
}

/* ---------------------------------------------------------------- teachers */

static void check_command(struct kd_cfg *v, struct kd_pipe_teacher *t, const struct kd_ynode *vn)
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

static void check_teacher(struct kd_cfg *v, size_t ti, const struct kd_ynode *key, const struct kd_ynode *node)
{
    struct kd_pipe_teacher *t = &v->p->teachers[ti];
    char where[KD_PIPE_NAME_MAX + 32], what[KD_PIPE_NAME_MAX + 32];
    snprintf(where, sizeof where, "in teacher '%s'", t->name);
    snprintf(what, sizeof what, "teacher '%s'", t->name);
    const struct kd_ynode *map = kd_as_map(v->c, node, what), *vn;
    if (!map)
        return;
    kd_check_keys(v->c, map, TEACHER_KEYS, N(TEACHER_KEYS), where);
    int kind;
    if (!kd_require(v->c, map, "kind", key, where) || kd_get_vocab(v->c, map, "kind", &TEACHER_KINDS, &kind, NULL) <= 0)
        return;   /* what belongs to the teacher depends on its kind */
    t->kind = (enum kd_teacher_kind)kind;
    for (size_t i = 0; i < map->n; i++)
        for (size_t j = 0; j < N(TEACHER_KIND_OF_KEY); j++)
            if (strcmp(map->keys[i]->text, TEACHER_KIND_OF_KEY[j][0]) == 0 &&
                strcmp(TEACHER_KIND_OF_KEY[j][1], kd_teacher_kind_name(t->kind)) != 0)
                kd_at(v->c, map->keys[i], "'%s' is only for teachers of kind %s", TEACHER_KIND_OF_KEY[j][0],
                      TEACHER_KIND_OF_KEY[j][1]);
    struct kd_ynode *mk, *wk;
    long long x;
    double d;
    switch (t->kind) {
    case KD_TEACHER_MODEL:
        kd_ytree_get(map, "model", &mk);
        kd_ytree_get(map, "weights", &wk);
        if (mk && wk) {
            kd_at(v->c, wk, "a teacher of kind model takes 'model' or 'weights', not both");
        } else if (!mk && !wk) {
            kd_at(v->c, key,
                  "teacher '%s' of kind model needs 'model' (a model a stage trains) or 'weights' (a safetensors file)",
                  t->name);
        } else if (mk) {
            t->model_pos = kd_pos_of(mk);
            if (kd_cfg_get_ref(v, map, "model", KD_REF_MODEL, 0, t->model, &vn) > 0)
                v->teacher_model[ti] = vn;
        } else {
            t->model_pos = kd_pos_of(wk);
            kd_cfg_get_path(v, map, "weights", v->p->dir, &t->weights);
        }
        break;
    case KD_TEACHER_EXEC:
        if (kd_require(v->c, map, "command", key, where))
            check_command(v, t, kd_ytree_get(map, "command", NULL));
        if (kd_get_int(v->c, map, "batch", 1, KD_CFG_MAX_WIDTH, &x, NULL) > 0)
            t->batch = (size_t)x;
        if (kd_get_num(v->c, map, "timeout", KD_RANGE_POSITIVE, &d, NULL) > 0)
            t->timeout = d;
        if (kd_get_enum(v->c, map, "answers", ANSWERS, N(ANSWERS), &kind, NULL) > 0)
            t->embeds = kind == 1;
        break;
    case KD_TEACHER_TABLE:
        kd_get_name(v->c, map, "table", "table name", t->table, NULL);
        break;
    }
}

void kd_config_teachers(struct kd_cfg *v)
{
    const struct kd_ynode *node = kd_ytree_get(v->root, "teachers", NULL);
    if (!node || !(node = kd_as_map(v->c, node, "'teachers'")) || !node->n)
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
        kd_copy_name(t->name, node->keys[i]->text);
        kd_copy_name(t->table, t->name);
        t->pos = kd_pos_of(node->keys[i]);
        t->batch = 256;
        t->timeout = 60;
        kd_check_name(v->c, node->keys[i], "teacher name");
        if (kd_names_add(&v->teachers, t->name, i) < 0)
            v->c->nomem = 1;
        check_teacher(v, i, node->keys[i], node->vals[i]);
    }
}


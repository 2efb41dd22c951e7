/* The keys of a diagnose stage: which examples (n, seed), how the complexity
 * is solved (eps, centre, method), which weights (at) and which targets
 * (`gold`, `{teacher, temperature}`). Checked like the rest of the file
 * (pipelines/config.c): every problem reported with its position. */
#include "pipelines/pipeline_impl.h"

#include <limits.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof *(a))

const char *const KD_DIAGNOSE_KEYS[] = {"name", "model", "data", "n", "seed", "eps", "centre", "method", "at",
                                        "targets"};
const size_t KD_N_DIAGNOSE_KEYS = N(KD_DIAGNOSE_KEYS);

static const char *const METHODS[] = {"auto", "cholesky", "cg"}; /* enum kd_solve_method order */
static const char *const AT[] = {"trained", "init"};
static const char *const TARGET_KEYS[] = {"teacher", "temperature", "checkpoints"};
static const char *const CHECKPOINTS[] = {"all"};

/* Most examples a diagnose stage draws: K and its factor take 16 n^2 bytes. */
#define MAX_N 1000000LL

static void check_temperatures(struct kd_cfg *v, struct kd_pipe_diag_target *t, const struct kd_ynode *node)
{
    if (node->kind == KD_Y_SCALAR) {
        if (kd_val_num(v->c, node, "'temperature'", KD_RANGE_POSITIVE, &t->temps[0]) > 0)
            t->n_temps = 1;
        return;
    }
    const struct kd_ynode *list = kd_as_list(v->c, node, "'temperature'");
    if (!list)
        return;
    if (kd_list_len(list) == 0) {
        kd_at(v->c, list, "'temperature' must list at least one temperature");
        return;
    }
    if (list->n > KD_PIPE_MAX_LIST) {
        kd_at(v->c, list, "'temperature' lists at most %d temperatures, got %zu", KD_PIPE_MAX_LIST, list->n);
        return;
    }
    t->n_temps = 0;
    for (size_t j = 0; j < list->n; j++) {
        double d;
        if (kd_val_num(v->c, list->vals[j], "each item of 'temperature'", KD_RANGE_POSITIVE, &d) > 0)
            t->temps[t->n_temps++] = d;
    }
}

/* A target is the teacher's class probabilities on the stage's rows: a
 * teacher that embeds texts, or whose model scores (query, document) pairs
 * or embeds them, has none, and would fail only when the stage runs. */
static void check_target_teacher(struct kd_cfg *v, const char *name, const struct kd_ynode *at)
{
    static const char *const TYPES[] = {"mlp", "dual encoder", "cross-encoder"}; /* enum kd_pipe_model_type order */
    size_t i, m;
    if (!kd_names_find(&v->teachers, name, &i))
        return;
    const struct kd_pipe_teacher *t = &v->p->teachers[i];
    if (t->kind == KD_TEACHER_EXEC && t->embeds)
        kd_at(v->c, at, "teacher '%s' embeds texts ('answers: embeddings'): a diagnose target needs a teacher that "
              "gives class probabilities for the rows of the stage's data", name);
    else if (t->kind == KD_TEACHER_MODEL && t->model[0] && kd_names_find(&v->models, t->model, &m) &&
             v->p->models[m].type != KD_MODEL_MLP)
        kd_at(v->c, at, "teacher '%s' uses model '%s', a %s: a diagnose target needs a teacher that gives class "
              "probabilities for the rows of the stage's data (a model of type mlp, an exec program or a table)",
              name, t->model, TYPES[v->p->models[m].type]);
}

static void check_target(struct kd_cfg *v, struct kd_pipe_diagnose *dg, const struct kd_ynode *item)
{
    struct kd_pipe_diag_target *t = &dg->targets[dg->n_targets];
    memset(t, 0, sizeof *t);
    t->pos = kd_pos_of(item);
    if (item->kind == KD_Y_SCALAR && item->type == KD_YT_STR && strcmp(item->text, "gold") == 0) {
        t->gold = 1;
        dg->n_targets++;
        return;
    }
    if (item->kind != KD_Y_MAP) {
        if (item->kind != KD_Y_BAD) {
            char got[96];
            kd_describe(item, got, sizeof got);
            kd_at(v->c, item, "each item of 'targets' must be gold or a mapping {teacher, temperature, checkpoints}, got %s", got);
        }
        return;
    }
    kd_check_keys(v->c, item, TARGET_KEYS, N(TARGET_KEYS), "in a target of 'targets'");
    if (!kd_require(v->c, item, "teacher", item, "in a target of 'targets'"))
        return;
    const struct kd_ynode *vn;
    if (kd_cfg_get_ref(v, item, "teacher", KD_REF_TEACHER, v->p->n_splits, t->teacher, &vn) <= 0)
        return;
    t->pos = kd_pos_of(vn);
    check_target_teacher(v, t->teacher, vn);
    t->temps[0] = 1;
    t->n_temps = 1;
    if ((vn = kd_ytree_get(item, "temperature", NULL)))
        check_temperatures(v, t, vn);
    int e;
    struct kd_ynode *k;
    if (kd_ytree_get(item, "checkpoints", &k)) {
        t->checkpoints_pos = kd_pos_of(k);
        if (kd_get_enum(v->c, item, "checkpoints", CHECKPOINTS, N(CHECKPOINTS), &e, NULL) > 0)
            t->checkpoints = 1;
    }
    if (t->n_temps)
        dg->n_targets++;
}

void kd_config_diagnose(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *key,
                        const struct kd_ynode *map)
{
    struct kd_pipe_diagnose *dg = &s->diagnose;
    dg->n = 2000;
    dg->eps = 1e-3;
    long long x;
    double d;
    int e;
    if (kd_get_int(v->c, map, "n", 1, MAX_N, &x, NULL) > 0)
        dg->n = (size_t)x;
    if (kd_get_int(v->c, map, "seed", 0, LLONG_MAX, &x, NULL) > 0) {
        dg->seed = (uint64_t)x;
        dg->has_seed = 1;
    }
    if (kd_get_num(v->c, map, "eps", KD_RANGE_NONNEGATIVE, &d, NULL) > 0)
        dg->eps = d;
    const struct kd_ynode *vn = kd_ytree_get(map, "centre", NULL);
    if (vn) {
        if (vn->kind == KD_Y_SCALAR && vn->type == KD_YT_BOOL) {
            dg->centre = vn->text[0] == 't' || vn->text[0] == 'T';
        } else if (vn->kind != KD_Y_BAD) {
            char got[96];
            kd_describe(vn, got, sizeof got);
            kd_at(v->c, vn, "'centre' must be true or false, got %s", got);
        }
    }
    const struct kd_ynode *mn = NULL;
    if (kd_get_enum(v->c, map, "method", METHODS, N(METHODS), &e, &mn) > 0) {
        dg->method = e;
        if (e == 2 && dg->eps <= 0)
            kd_at(v->c, mn, "method cg needs 'eps' > 0 (K alone may be singular)");
    }
    if (kd_get_enum(v->c, map, "at", AT, N(AT), &e, NULL) > 0)
        dg->at_init = e;
    struct kd_ynode *k;
    const struct kd_ynode *list = kd_ytree_get(map, "targets", &k);
    if (!kd_require(v->c, map, "targets", key, "in a diagnose stage") ||
        !(list = kd_as_list(v->c, list, "'targets'")))
        return;
    dg->targets_pos = kd_pos_of(k);
    if (kd_list_len(list) == 0) {
        kd_at(v->c, kd_ytree_is_null(list) ? k : list, "'targets' must list at least one target (gold or a teacher)");
        return;
    }
    if (list->n > KD_PIPE_MAX_LIST) {
        kd_at(v->c, list, "'targets' lists at most %d targets, got %zu", KD_PIPE_MAX_LIST, list->n);
        return;
    }
    for (size_t j = 0; j < list->n; j++)
        check_target(v, dg, list->vals[j]);
}

/* ------------------------------------------------------- teacher checkpoints */

static const char *const CHECKPOINT_KEYS[] = {"every"};
static const char *const FOLLOW[] = {"checkpoints"};

void kd_config_checkpoints(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map)
{
    struct kd_ynode *k;
    const struct kd_ynode *vn;
    if (s->kind == KD_STAGE_TRAIN && (vn = kd_ytree_get(map, "checkpoints", &k))) {
        s->checkpoints_pos = kd_pos_of(k);
        const struct kd_ynode *cm = kd_as_map(v->c, vn, "'checkpoints'");
        if (!cm)
            return;
        kd_check_keys(v->c, cm, CHECKPOINT_KEYS, N(CHECKPOINT_KEYS), "in 'checkpoints'");
        long long x;
        s->checkpoint_every = 1;
        if (kd_get_int(v->c, cm, "every", 1, 1000000, &x, NULL) > 0)
            s->checkpoint_every = (size_t)x;
    }
    if (s->kind == KD_STAGE_DISTILL && (vn = kd_ytree_get(map, "follow", &k))) {
        s->follow_pos = kd_pos_of(k);
        int e;
        if (kd_get_enum(v->c, map, "follow", FOLLOW, N(FOLLOW), &e, NULL) > 0) {
            s->follow = 1;
            if (kd_ytree_get(map, "select", NULL) || kd_ytree_get(map, "reweight", NULL))
                kd_at(v->c, k, "'follow' cannot be combined with 'select' or 'reweight'");
        }
    }
}

const struct kd_pipe_stage *kd_pipeline_checkpoints_of(const struct kd_pipeline *p, size_t before, const char *model)
{
    for (size_t j = before < p->n_stages ? before : p->n_stages; j-- > 0;) {
        const struct kd_pipe_stage *s = &p->stages[j];
        if ((s->kind == KD_STAGE_TRAIN || s->kind == KD_STAGE_DISTILL) && strcmp(s->model, model) == 0)
            return s->kind == KD_STAGE_TRAIN && s->checkpoint_every ? s : NULL;
    }
    return NULL;
}

size_t kd_pipeline_checkpoint_epoch(const struct kd_pipe_stage *train, size_t e)
{
    size_t E = train->epochs, k = train->checkpoint_every ? train->checkpoint_every : E;
    if (e >= E)
        return E;
    size_t c = e / k * k;
    return c ? c : (k < E ? k : E);
}

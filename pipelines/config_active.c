/* The keys of active distillation in a distill stage: `select:` (strategy,
 * budget, rounds, schedule, tgt, augment) and `reweight:`. Checked like the rest of the
 * file (pipelines/config.c): every problem reported with its position. */
#include "pipelines/pipeline_impl.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof *(a))

static const char *const SELECT_KEYS[] = {"strategy",   "budget", "rounds", "schedule",
                                          "epochs",     "weight_cap", "tgt", "augment"};
/* enum kd_select_kind order, then the two strategies that generate inputs */
static const char *const STRATEGIES[] = {"random", "entropy", "margin", "least-confidence",
                                         "iwes",   "iwes-two", "rad",   "tgt", "augment"};
#define N_PICKING (N(STRATEGIES) - 2)   /* the ones that only pick: a generating strategy's source */
#define STRATEGY_TGT N_PICKING
#define STRATEGY_AUGMENT (N_PICKING + 1)
static const char *const ROUND_SCHEDULES[] = {"warm", "retrain"};
static const char *const TGT_KEYS[] = {"mode",      "source",      "share",  "sigma",  "steps",
                                       "step_size", "autoencoder", "data",   "latent", "hidden", "epochs"};
static const char *const AUGMENT_KEYS[] = {"source", "share", "noise", "shift", "width"};
static const char *const TGT_MODES[] = {"random", "gradient"}; /* enum kd_tgt_mode order */
static const char *const REWEIGHT_KEYS[] = {"method", "bins", "smoothing", "temperature", "folds", "divide_k"};
/* enum kd_reweight_method order */
static const char *const REWEIGHT_METHODS[] = {"confidence", "debiased", "slam"};
static const char *const BOOLS[] = {"false", "true"};

static void check_tgt(struct kd_cfg *v, struct kd_pipe_select *sel, const struct kd_ynode *node, size_t ns)
{
    struct kd_pctx *c = v->c;
    const char *dir = v->p->dir;
    const struct kd_ynode *map = kd_as_map(c, node, "'tgt'");
    if (!map)
        return;
    kd_check_keys(c, map, TGT_KEYS, N(TGT_KEYS), "in 'tgt'");
    int e;
    long long x;
    double d;
    const char *text;
    const struct kd_ynode *vn;
    if (kd_get_enum(c, map, "mode", TGT_MODES, N(TGT_MODES), &e, NULL) > 0) {
        sel->tgt_mode = (enum kd_tgt_mode)e;
        sel->tgt_mode_set = 1;
    }
    /* The strategy that picks the pool examples TGT starts from (and labels). */
    if (kd_get_enum(c, map, "source", STRATEGIES, N_PICKING, &e, NULL) > 0)
        sel->strategy = (enum kd_select_kind)e;
    if (kd_get_num(c, map, "share", KD_RANGE_UNIT_ABOVE_ZERO, &d, NULL) > 0)
        sel->tgt_share = d;
    if (kd_get_num(c, map, "sigma", KD_RANGE_NONNEGATIVE, &d, NULL) > 0)
        sel->tgt_sigma = d;
    if (kd_get_int(c, map, "steps", 1, 1000, &x, NULL) > 0)
        sel->tgt_steps = (size_t)x;
    if (kd_get_num(c, map, "step_size", KD_RANGE_POSITIVE, &d, NULL) > 0)
        sel->tgt_step_size = d;
    if (kd_get_int(c, map, "latent", 1, 1 << 16, &x, NULL) > 0)
        sel->tgt_latent = (size_t)x;
    if (kd_get_int(c, map, "hidden", 1, 1 << 20, &x, NULL) > 0)
        sel->tgt_hidden = (size_t)x;
    if (kd_get_int(c, map, "epochs", 1, 100000, &x, NULL) > 0)
        sel->tgt_epochs = (size_t)x;
    struct kd_ynode *dk;
    if (kd_ytree_get(map, "data", &dk)) {
        sel->tgt_data_pos = kd_pos_of(dk);
        kd_cfg_get_ref(v, map, "data", KD_REF_DATASET, ns, sel->tgt_data, &vn);
        if (kd_ytree_get(map, "autoencoder", NULL))
            kd_at(c, dk, "'data' in 'tgt' trains the autoencoder and 'autoencoder' loads a trained one: give one of "
                         "them");
    }
    if (kd_get_str(c, map, "autoencoder", &text, &vn) > 0) {
        size_t nd = dir && text[0] != '/' && strcmp(dir, ".") != 0 ? strlen(dir) + 1 : 0;
        sel->tgt_autoencoder = malloc(nd + strlen(text) + 1);
        if (!sel->tgt_autoencoder) {
            c->nomem = 1;
            return;
        }
        if (nd)
            snprintf(sel->tgt_autoencoder, nd + strlen(text) + 1, "%s/%s", dir, text);
        else
            memcpy(sel->tgt_autoencoder, text, strlen(text) + 1);
    }
}

static void check_augment(struct kd_pctx *c, struct kd_pipe_select *sel, const struct kd_ynode *node)
{
    const struct kd_ynode *map = kd_as_map(c, node, "'augment'");
    if (!map)
        return;
    kd_check_keys(c, map, AUGMENT_KEYS, N(AUGMENT_KEYS), "in 'augment'");
    int e;
    long long x;
    double d;
    if (kd_get_enum(c, map, "source", STRATEGIES, N_PICKING, &e, NULL) > 0)
        sel->strategy = (enum kd_select_kind)e;
    if (kd_get_num(c, map, "share", KD_RANGE_UNIT_ABOVE_ZERO, &d, NULL) > 0)
        sel->aug_share = d;
    if (kd_get_num(c, map, "noise", KD_RANGE_NONNEGATIVE, &d, NULL) > 0)
        sel->aug_noise = d;
    if (kd_get_int(c, map, "shift", 0, 1 << 16, &x, NULL) > 0)
        sel->aug_shift = (size_t)x;
    if (kd_get_int(c, map, "width", 1, 1 << 24, &x, NULL) > 0)
        sel->aug_width = (size_t)x;
}

static void check_select(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *key,
                         const struct kd_ynode *node, size_t ns)
{
    struct kd_pctx *c = v->c;
    struct kd_pipe_select *sel = &s->select;
    const struct kd_ynode *map = kd_as_map(c, node, "'select'");
    if (!map)
        return;
    sel->on = 1;
    sel->pos = kd_pos_of(key);
    sel->strategy = KD_SELECT_MARGIN;
    sel->rounds = 5;
    sel->weight_cap = 10;
    sel->tgt_share = 0.5;
    sel->tgt_sigma = 0.5;
    sel->tgt_steps = 3;
    sel->tgt_step_size = 0.5;
    sel->tgt_latent = 32;
    sel->tgt_hidden = 256;
    sel->tgt_epochs = 10;
    sel->aug_share = 0.5;
    sel->aug_noise = 0.1;
    sel->aug_shift = 2;
    kd_check_keys(c, map, SELECT_KEYS, N(SELECT_KEYS), "in 'select'");
    int e;
    long long x;
    double d;
    const struct kd_ynode *vn;
    struct kd_ynode *k;
    if (kd_get_enum(c, map, "strategy", STRATEGIES, N(STRATEGIES), &e, &vn) > 0) {
        sel->strategy_pos = kd_pos_of(vn);
        if (e == (int)STRATEGY_TGT || e == (int)STRATEGY_AUGMENT) {
            sel->tgt = e == (int)STRATEGY_TGT;
            sel->augment = e == (int)STRATEGY_AUGMENT;
            sel->strategy = KD_SELECT_ENTROPY;   /* the sources, unless tgt/augment.source says otherwise */
        } else {
            sel->strategy = (enum kd_select_kind)e;
        }
    }
    if (kd_require(c, map, "budget", map == &kd_empty_map ? key : map, "in 'select'") &&
        kd_get_int(c, map, "budget", 1, LLONG_MAX / 4, &x, NULL) > 0)
        sel->budget = (size_t)x;
    const struct kd_ynode *rn = NULL;
    if (kd_get_int(c, map, "rounds", 1, 10000, &x, &rn) > 0)
        sel->rounds = (size_t)x;
    if (sel->budget && sel->rounds > sel->budget)
        kd_at(c, rn, "'rounds' (%zu) cannot exceed 'budget' (%zu): each round selects at least one example",
              sel->rounds, sel->budget);
    if (kd_get_enum(c, map, "schedule", ROUND_SCHEDULES, N(ROUND_SCHEDULES), &e, NULL) > 0)
        sel->retrain = e;
    if (kd_get_int(c, map, "epochs", 1, 1000000, &x, NULL) > 0)
        sel->round_epochs = (size_t)x;
    if (kd_get_num(c, map, "weight_cap", KD_RANGE_AT_LEAST_ONE, &d, NULL) > 0)
        sel->weight_cap = d;
    if ((vn = kd_ytree_get(map, "tgt", &k))) {
        sel->tgt_pos = kd_pos_of(k);
        if (!sel->tgt)
            kd_at(c, k, "'tgt' is only for strategy tgt");
        else
            check_tgt(v, sel, vn, ns);
    }
    if ((vn = kd_ytree_get(map, "augment", &k))) {
        sel->aug_pos = kd_pos_of(k);
        if (!sel->augment)
            kd_at(c, k, "'augment' is only for strategy augment");
        else
            check_augment(c, sel, vn);
    }
    if ((sel->tgt || sel->augment) && sel->budget && sel->rounds * 2 > sel->budget)
        kd_at(c, rn ? rn : map == &kd_empty_map ? key : map,
              "strategy %s needs a budget of at least 2 per round (a source and its generated input), got %zu for "
              "%zu rounds", sel->tgt ? "tgt" : "augment", sel->budget, sel->rounds);
}

static void check_reweight(struct kd_pctx *c, struct kd_pipe_stage *s, const struct kd_ynode *key,
                           const struct kd_ynode *node)
{
    struct kd_pipe_reweight *rw = &s->reweight;
    rw->method = KD_REWEIGHT_CONFIDENCE;
    rw->bins = 10;
    rw->smoothing = 1;
    rw->temperature = 1;
    rw->divide_k = KD_PIPE_SLAM_DIVIDE_K;
    rw->pos = kd_pos_of(key);
    if (node->kind == KD_Y_SCALAR && node->type == KD_YT_BOOL) {
        rw->on = strcmp(node->text, "true") == 0 || strcmp(node->text, "True") == 0 || strcmp(node->text, "TRUE") == 0;
        /* kd has no default method: none beat unweighted distillation in
         * every setting measured (docs/experiments/README.md). */
        if (rw->on)
            kd_at(c, node, "'reweight: true' must name its method: reweight: {method: confidence | debiased | slam} "
                           "(kd has no default method)");
        return;
    }
    const struct kd_ynode *map = node->kind == KD_Y_MAP || kd_ytree_is_null(node) ? kd_as_map(c, node, "'reweight'")
                                                                                 : NULL;
    if (!map) {
        if (node->kind != KD_Y_BAD) {
            char got[96];
            kd_describe(node, got, sizeof got);
            kd_at(c, node, "'reweight' must be true, false or a mapping {method, bins, ...}, got %s", got);
        }
        return;
    }
    rw->on = 1;
    kd_check_keys(c, map, REWEIGHT_KEYS, N(REWEIGHT_KEYS), "in 'reweight'");
    long long x;
    double d;
    if (kd_get_int(c, map, "bins", 1, 100000, &x, NULL) > 0)
        rw->bins = (size_t)x;
    if (kd_get_num(c, map, "smoothing", KD_RANGE_NONNEGATIVE, &d, NULL) > 0)
        rw->smoothing = d;
    int e;
    const struct kd_ynode *mn = NULL, *vn = NULL;
    if (!kd_require(c, map, "method", map == &kd_empty_map ? key : map, "in 'reweight'") ||
        kd_get_enum(c, map, "method", REWEIGHT_METHODS, N(REWEIGHT_METHODS), &e, &mn) <= 0)
        return;   /* the other keys depend on the method */
    rw->method = (enum kd_reweight_method)e;
    const char *method = kd_reweight_method_name(rw->method);
    if (kd_get_num(c, map, "temperature", KD_RANGE_POSITIVE, &d, &vn) > 0) {
        rw->temperature = d;
        if (rw->method != KD_REWEIGHT_DEBIASED)
            kd_at(c, vn, "'temperature' in 'reweight' is for method debiased (d(x)), not %s", method);
    }
    if (kd_get_int(c, map, "folds", 2, 1000, &x, &vn) > 0) {
        rw->folds = (size_t)x;
        if (rw->method != KD_REWEIGHT_DEBIASED)
            kd_at(c, vn, "'folds' in 'reweight' is for method debiased, not %s", method);
        else if (s->select.on)
            kd_at(c, vn, "'folds' in 'reweight' is for a stage without 'select' (in rounds, each pick is weighed "
                         "by the student of the round before, which has not seen it)");
    }
    if (kd_get_enum(c, map, "divide_k", BOOLS, N(BOOLS), &e, &vn) > 0) {
        rw->divide_k = e;
        if (rw->method != KD_REWEIGHT_SLAM)
            kd_at(c, vn, "'divide_k' in 'reweight' is for method slam, not %s", method);
    }
    rw->method_pos = kd_pos_of(mn ? mn : key);
}

void kd_config_active(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map, size_t ns)
{
    struct kd_pctx *c = v->c;
    struct kd_ynode *k;
    const struct kd_ynode *vn;
    if ((vn = kd_ytree_get(map, "select", &k)))
        check_select(v, s, k, vn, ns);
    if ((vn = kd_ytree_get(map, "reweight", &k)))
        check_reweight(c, s, k, vn);
    if (s->reweight.on && (vn = kd_ytree_get(map, "reweight", &k))) {
        struct kd_ynode *lk;
        const struct kd_ynode *ln = kd_ytree_get(map, "loss", &lk);
        if (s->reweight.method == KD_REWEIGHT_SLAM && ln && ln->kind == KD_Y_SCALAR && ln->text &&
            strcmp(ln->text, "logit_mse") == 0)
            kd_at(c, ln, "loss logit_mse has no probabilities for method slam to correct: use hard, hinton or "
                         "soft_ce");
        /* Without select, the reference student of debiased trains on gold
         * alone (or on the other folds); it needs the gold to train on. */
        if (s->reweight.method == KD_REWEIGHT_DEBIASED && !s->select.on && !s->reweight.folds &&
            !kd_ytree_get(map, "gold", NULL))
            kd_at(c, k, "method debiased needs 'gold': its reference student trains on the gold labels alone "
                        "(or give 'folds' for out-of-fold reference students)");
    }
    /* Both need the teacher's record on gold data; say so here rather than
     * half-way through a run. */
    if (!kd_ytree_get(map, "validation", NULL)) {
        if (s->reweight.on && kd_ytree_get(map, "reweight", &k))
            kd_at(c, k, "'reweight' needs 'validation': gold-labelled data on which the teacher's errors are counted");
        if (s->select.on && s->select.strategy == KD_SELECT_RAD && !s->select.tgt && !s->select.augment &&
            kd_ytree_get(map, "select", &k))
            kd_at(c, k, "strategy rad needs 'validation': gold-labelled data giving the teacher's error rate");
    }
}

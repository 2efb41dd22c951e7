/* The `stages:` list: each stage's keys by kind (train, label, distill,
 * evaluate, export), their optimizer and schedule, and the checks that need
 * the whole list (unique names, models trained before they are used).
 * Checked like the rest of the file (pipelines/config.c): every problem
 * reported with its position. Optimizers and schedules are parsed by
 * student/, which owns them. */
#include "pipelines/pipeline_impl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define MAX_EPOCHS 1000000LL

static const char *const STAGE_KINDS[] = {"train", "label", "distill", "evaluate", "export",
                                           "diagnose"}; /* enum order */
static const char *const TRAIN_KEYS[] = {"name",     "model",    "data",  "epochs",    "batch",    "optimizer",
                                         "schedule", "checkpoints", "split", "negatives", "table_lr", "k"};
static const char *const LABEL_KEYS[] = {"name", "teacher", "data", "split", "k", "candidates"};
static const char *const DISTILL_KEYS[] = {"name",   "student",  "teacher",    "data",   "gold",
                                           "loss",   "temperature", "alpha",   "epochs", "batch",
                                           "optimizer", "schedule", "validation", "select", "reweight",
                                           "follow", "split", "k", "negatives", "table_lr", "candidates",
                                           "match_queries", "match_documents", "frozen_documents",
                                           "unlabelled", "query_weights"};
static const char *const EVALUATE_KEYS[] = {"name", "models", "data", "teacher", "split", "k"};
static const char *const EXPORT_KEYS[] = {"name", "model", "formats", "path"};
static const char *const OPTIM_KEYS[] = {"kind", "lr", "momentum", "weight_decay", "clip"};
static const char *const SCHED_KEYS[] = {"kind", "warmup", "step_size", "gamma", "min_lr"};
static const char *const LOSSES[] = {"hinton", "soft_ce", "logit_mse", "hard"}; /* enum kd_distill_loss order */
static const char *const FORMATS[] = {"safetensors", "c", "onnx"};

/* The owners' parsers and names behind struct kd_vocab. */
static int optim_from_name(const char *s, int *out)
{
    enum kd_optim_kind k;
    if (kd_optim_from_name(s, &k) != KD_OK)
        return -1;
    *out = (int)k;
    return 0;
}
static const char *optim_name(int k) { return kd_optim_name((enum kd_optim_kind)k); }
static int sched_from_name(const char *s, int *out)
{
    enum kd_sched_kind k;
    if (kd_sched_from_name(s, &k) != KD_OK)
        return -1;
    *out = (int)k;
    return 0;
}
static const char *sched_name(int k) { return kd_sched_name((enum kd_sched_kind)k); }

/* In the order docs/pipeline.md lists them. */
static const int OPTIM_ORDER[] = {KD_OPTIM_SGD, KD_OPTIM_ADAM, KD_OPTIM_ADAMW};
static const int SCHED_ORDER[] = {KD_SCHED_CONSTANT, KD_SCHED_STEP, KD_SCHED_COSINE};
static const struct kd_vocab OPTIMIZERS = {optim_from_name, optim_name, OPTIM_ORDER, N(OPTIM_ORDER)};
static const struct kd_vocab SCHEDULES = {sched_from_name, sched_name, SCHED_ORDER, N(SCHED_ORDER)};

const char *kd_stage_kind_name(enum kd_stage_kind kind)
{
    return (unsigned)kind < N(STAGE_KINDS) ? STAGE_KINDS[kind] : "?";
}

/* ------------------------------------------------------------------ stages */

static void check_optimizer(struct kd_cfg *v, struct kd_pipe_optim *o, const struct kd_ynode *node)
{
    const struct kd_ynode *map = kd_as_map(v->c, node, "'optimizer'");
    if (!map)
        return;
    kd_check_keys(v->c, map, OPTIM_KEYS, N(OPTIM_KEYS), "in 'optimizer'");
    int kind = KD_OPTIM_ADAM, rc = kd_get_vocab(v->c, map, "kind", &OPTIMIZERS, &kind, NULL);
    if (rc > 0)
        o->kind = (enum kd_optim_kind)kind;
    double d;
    if (kd_get_num(v->c, map, "lr", KD_RANGE_POSITIVE, &d, NULL) > 0)
        o->lr = (float)d;
    if (kd_get_num(v->c, map, "momentum", KD_RANGE_UNIT_BELOW_ONE, &d, NULL) > 0)
        o->momentum = (float)d;
    struct kd_ynode *k;
    if (rc >= 0 && kind != KD_OPTIM_SGD && kd_ytree_get(map, "momentum", &k))
        kd_at(v->c, k, "'momentum' is only for optimizer kind sgd");
    if (kd_get_num(v->c, map, "weight_decay", KD_RANGE_NONNEGATIVE, &d, NULL) > 0)
        o->weight_decay = (float)d;
    if (kd_get_num(v->c, map, "clip", KD_RANGE_NONNEGATIVE, &d, NULL) > 0)
        o->clip = (float)d;
}

static void check_schedule(struct kd_cfg *v, struct kd_pipe_optim *o, const struct kd_ynode *key,
                           const struct kd_ynode *node)
{
    const struct kd_ynode *map = kd_as_map(v->c, node, "'schedule'");
    if (!map)
        return;
    kd_check_keys(v->c, map, SCHED_KEYS, N(SCHED_KEYS), "in 'schedule'");
    int kind = KD_SCHED_CONSTANT, rc = kd_get_vocab(v->c, map, "kind", &SCHEDULES, &kind, NULL);
    if (rc > 0)
        o->schedule = (enum kd_sched_kind)kind;
    long long x;
    double d;
    if (kd_get_int(v->c, map, "warmup", 0, LLONG_MAX, &x, NULL) > 0)
        o->warmup = (uint64_t)x;
    if (kd_get_int(v->c, map, "step_size", 1, LLONG_MAX, &x, NULL) > 0)
        o->step_size = (uint64_t)x;
    if (kd_get_num(v->c, map, "gamma", KD_RANGE_UNIT_ABOVE_ZERO, &d, NULL) > 0)
        o->gamma = (float)d;
    if (kd_get_num(v->c, map, "min_lr", KD_RANGE_NONNEGATIVE, &d, NULL) > 0)
        o->min_lr = (float)d;
    if (rc < 0)
        return;
    struct kd_ynode *k;
    if (kind != KD_SCHED_STEP && kd_ytree_get(map, "step_size", &k))
        kd_at(v->c, k, "'step_size' is only for schedule kind step");
    if (kind != KD_SCHED_STEP && kd_ytree_get(map, "gamma", &k))
        kd_at(v->c, k, "'gamma' is only for schedule kind step");
    if (kind != KD_SCHED_COSINE && kd_ytree_get(map, "min_lr", &k))
        kd_at(v->c, k, "'min_lr' is only for schedule kind cosine");
    if (kind == KD_SCHED_STEP && !kd_ytree_get(map, "step_size", NULL))
        kd_at(v->c, map == &kd_empty_map ? key : map,
              "missing required key 'step_size' in 'schedule' (kind step needs it)");
}

/* epochs, batch, optimizer, schedule: the keys of stages that train. */
static void check_training(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map)
{
    long long x;
    if (kd_get_int(v->c, map, "epochs", 1, MAX_EPOCHS, &x, NULL) > 0)
        s->epochs = (size_t)x;
    if (kd_get_int(v->c, map, "batch", 1, KD_CFG_MAX_WIDTH, &x, NULL) > 0)
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
    s->optim.kind = KD_OPTIM_ADAM;
    s->optim.lr = 1e-3f;
    s->optim.schedule = KD_SCHED_CONSTANT;
    s->optim.gamma = 0.1f;
    s->loss = KD_DLOSS_HINTON;
    s->temperature = 4;
    s->alpha = 0.5f;
    s->format_safetensors = 1;
    s->table_lr = 1e-2f;
}

static void check_stage_body(struct kd_cfg *v, size_t i, const struct kd_ynode *kkey, const struct kd_ynode *map)
{
    struct kd_pipe_stage *s = &v->p->stages[i];
    struct kd_stage_refs *r = &v->refs[i];
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
    case KD_STAGE_DIAGNOSE: keys = KD_DIAGNOSE_KEYS; n_keys = KD_N_DIAGNOSE_KEYS; break;
    }
    kd_check_keys(v->c, map, keys, n_keys, where);
    if (kd_get_name(v->c, map, "name", "stage name", s->name, &r->name) < 0)
        r->name = NULL;

    /* Required keys, in the order the kind lists them. */
    static const char *const required[][3] = {
        {"model", "data", NULL}, {"teacher", "data", NULL}, {"student", "teacher", "data"},
        {"models", "data", NULL}, {"model", NULL, NULL}, {"model", "data", NULL},
    };
    for (size_t j = 0; j < 3 && required[s->kind][j]; j++)
        kd_require(v->c, map, required[s->kind][j], kkey, where);

    const char *model_key = s->kind == KD_STAGE_DISTILL ? "student" : "model";
    if (s->kind != KD_STAGE_LABEL && s->kind != KD_STAGE_EVALUATE) {
        kd_ytree_get(map, model_key, &k);
        s->model_pos = kd_pos_of(k);
        if (kd_cfg_get_ref(v, map, model_key, KD_REF_MODEL, ns, s->model, &vn) > 0)
            r->model = vn;
    }
    if (s->kind != KD_STAGE_EXPORT) {
        kd_ytree_get(map, "data", &k);
        s->data_pos = kd_pos_of(k);
        kd_cfg_get_ref(v, map, "data", KD_REF_DATASET, ns, s->data, &vn);
    }
    if (s->kind == KD_STAGE_LABEL || s->kind == KD_STAGE_DISTILL || s->kind == KD_STAGE_EVALUATE) {
        kd_ytree_get(map, "teacher", &k);
        s->teacher_pos = kd_pos_of(k);
        if (kd_cfg_get_ref(v, map, "teacher", KD_REF_TEACHER, ns, s->teacher, &vn) > 0)
            r->teacher = vn;
    }
    if (s->kind == KD_STAGE_TRAIN || s->kind == KD_STAGE_DISTILL)
        check_training(v, s, map);
    if (s->kind == KD_STAGE_DISTILL) {
        kd_ytree_get(map, "gold", &k);
        s->gold_pos = kd_pos_of(k);
        kd_cfg_get_ref(v, map, "gold", KD_REF_DATASET, ns, s->gold, &vn);
        kd_ytree_get(map, "validation", &k);
        s->validation_pos = kd_pos_of(k);
        kd_cfg_get_ref(v, map, "validation", KD_REF_DATASET, ns, s->validation, &vn);
        /* on a retrieval data set `select:` chooses queries (pipelines/config_retrieval_select.c) */
        if (!kd_config_retrieval_data(v, s->data))
            kd_config_active(v, s, map, ns);
        int e;
        double d;
        /* on a retrieval data set the loss is a retrieval loss (pipelines/config_retrieval.c) */
        if (!kd_config_retrieval_data(v, s->data)) {
            if (kd_get_enum(v->c, map, "loss", LOSSES, N(LOSSES), &e, NULL) > 0)
                s->loss = (enum kd_distill_loss)e;
            if (kd_get_num(v->c, map, "temperature", KD_RANGE_POSITIVE, &d, NULL) > 0)
                s->temperature = (float)d;
            if (kd_get_num(v->c, map, "alpha", KD_RANGE_UNIT, &d, NULL) > 0)
                s->alpha = (float)d;
        }
    }
    if (s->kind == KD_STAGE_DIAGNOSE)
        kd_config_diagnose(v, s, kkey, map);
    if (s->kind == KD_STAGE_TRAIN || s->kind == KD_STAGE_DISTILL)
        kd_config_checkpoints(v, s, map);
    if (s->kind == KD_STAGE_EVALUATE && (vn = kd_ytree_get(map, "models", &k)) && (vn = kd_as_list(v->c, vn, "'models'"))) {
        s->model_pos = kd_pos_of(k);
        if (kd_list_len(vn) == 0) {
            kd_at(v->c, kd_ytree_is_null(vn) ? k : vn, "'models' must name at least one model");
        } else if (vn->n > KD_PIPE_MAX_LIST) {
            kd_at(v->c, vn, "'models' names at most %d models, got %zu", KD_PIPE_MAX_LIST, vn->n);
        } else {
            for (size_t j = 0; j < vn->n; j++) {
                const char *name;
                if (kd_val_str(v->c, vn->vals[j], "each item of 'models'", &name) <= 0 ||
                    (strcmp(name, KD_PIPE_BM25) != 0 && kd_cfg_check_ref(v, vn->vals[j], KD_REF_MODEL, ns)))
                    continue;
                kd_copy_name(s->models[s->n_models], name);
                r->models[s->n_models++] = vn->vals[j];
            }
        }
    }
    if (s->kind == KD_STAGE_EXPORT) {
        if ((vn = kd_ytree_get(map, "formats", &k)) && (vn = kd_as_list(v->c, vn, "'formats'"))) {
            if (kd_list_len(vn) == 0) {
                kd_at(v->c, kd_ytree_is_null(vn) ? k : vn, "'formats' must name at least one format");
            } else {
                s->format_safetensors = 0;
                for (size_t j = 0; j < vn->n; j++) {
                    int e;
                    if (kd_val_enum(v->c, vn->vals[j], "each item of 'formats'", FORMATS, N(FORMATS), &e) <= 0)
                        continue;
                    if (e == 0)
                        s->format_safetensors = 1;
                    else if (e == 1)
                        s->format_c = 1;
                    else
                        s->format_onnx = 1;
                }
            }
        }
        const char *path;
        if (kd_get_str(v->c, map, "path", &path, NULL) <= 0)
            path = s->model[0] ? s->model : s->name;
        if (v->p->output)
            s->path = kd_cfg_join_path(v, v->p->output, path);
    }
    kd_config_retrieval(v, s, map);
}

static void check_stage(struct kd_cfg *v, size_t i, const struct kd_ynode *item)
{
    struct kd_pipe_stage *s = &v->p->stages[i];
    s->pos = kd_pos_of(item);   /* the name stays empty until the kind is known */
    if (item->kind != KD_Y_MAP) {
        if (item->kind != KD_Y_BAD) {
            char got[96];
            kd_describe(item, got, sizeof got);
            kd_at(v->c, item, "a stage must be a mapping with one key, its kind (as in '- train: {...}'), got %s", got);
        }
        return;
    }
    if (item->n == 0) {
        kd_at(v->c, item, "a stage has one key, its kind (train, label, distill, evaluate, export or diagnose), but this one "
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
              "a stage has one key, its kind (train, label, distill, evaluate, export or diagnose), but this one has %zu: %s%s",
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
    s->pos = kd_pos_of(kkey);
    stage_defaults(s, i);
    char what[32];
    snprintf(what, sizeof what, "'%s'", STAGE_KINDS[k]);
    const struct kd_ynode *map = kd_as_map(v->c, item->vals[0], what);
    if (map)
        check_stage_body(v, i, kkey, map);
}

/* The first stage that trains (train) or distills (distill) model `name`
 * (trained: model name -> that stage); n when none. */
static size_t first_training(const struct kd_pipeline *p, const struct kd_names *trained, const char *name)
{
    size_t i;
    return kd_names_find(trained, name, &i) ? i : p->n_stages;
}

/* A diagnose stage's model is trained before it (unless `at: init`), and so
 * are the models of the teachers it takes targets from. */
static void check_diagnose_order(struct kd_cfg *v, size_t i, const struct kd_names *trained)
{
    const struct kd_pipeline *p = v->p;
    const struct kd_pipe_stage *s = &p->stages[i];
    char where[32];
    if (!s->diagnose.at_init && v->refs[i].model) {
        size_t j = first_training(p, trained, s->model);
        if (j == p->n_stages)
            kd_at(v->c, v->refs[i].model, "model '%s' is diagnosed but never trained: no train or distill stage names "
                  "it (for its initial weights, say 'at: init')", s->model);
        else if (j > i)
            kd_at(v->c, v->refs[i].model, "model '%s' is diagnosed before it is trained (by stage '%s' %s)", s->model,
                  p->stages[j].name, kd_at_line(p->stages[j].pos, where, sizeof where));
    }
    for (size_t k = 0; k < s->diagnose.n_targets; k++) {
        const struct kd_pipe_diag_target *t = &s->diagnose.targets[k];
        size_t ti;
        if (t->gold || !kd_names_find(&v->teachers, t->teacher, &ti))
            continue;
        const struct kd_pipe_teacher *te = &p->teachers[ti];
        if (t->checkpoints && (te->kind != KD_TEACHER_MODEL || !te->model[0] ||
                               !kd_pipeline_checkpoints_of(p, i, te->model)))
            kd_pctx_report(v->c, 0, t->checkpoints_pos.line, t->checkpoints_pos.col,
                           "'checkpoints: all' needs a teacher of kind model whose model a train stage before this "
                           "one trains with 'checkpoints:'; teacher '%s' has none", te->name);
        if (te->kind != KD_TEACHER_MODEL || !te->model[0])
            continue;
        size_t j = first_training(p, trained, te->model);
        if (j < p->n_stages && j >= i)
            kd_pctx_report(v->c, 0, t->pos.line, t->pos.col,
                           "teacher '%s' is used before its model '%s' is trained (by stage '%s' %s)", te->name,
                           te->model, p->stages[j].name, kd_at_line(p->stages[j].pos, where, sizeof where));
    }
}

/* `follow: checkpoints` needs a model teacher whose model a train stage
 * before this one trains with `checkpoints:`. */
static void check_follow(struct kd_cfg *v, size_t i, const struct kd_pipe_teacher *t)
{
    const struct kd_pipeline *p = v->p;
    const struct kd_pipe_stage *s = &p->stages[i];
    if (!t)
        return;
    if (t->kind != KD_TEACHER_MODEL || !t->model[0]) {
        kd_pctx_report(v->c, 0, s->follow_pos.line, s->follow_pos.col,
                       "'follow: checkpoints' needs a teacher of kind model with 'model:' (trained by a train stage "
                       "with 'checkpoints:'); teacher '%s' has none", t->name);
        return;
    }
    if (!kd_pipeline_checkpoints_of(p, i, t->model))
        kd_pctx_report(v->c, 0, s->follow_pos.line, s->follow_pos.col,
                       "'follow: checkpoints' needs checkpoints of model '%s': give the train stage that trains it "
                       "'checkpoints: {every: 1}'", t->model);
}

/* Checks that need the whole list: unique stage names, and that every model
 * is trained before a stage evaluates or exports it or asks its teacher. */
static void check_order(struct kd_cfg *v)
{
    const struct kd_pipeline *p = v->p;
    char where[32];
    /* stage name -> first stage with it; model name -> first stage training it */
    struct kd_names stage_names = {0}, trained = {0};
    for (size_t j = 0; j < p->n_stages; j++) {
        const struct kd_pipe_stage *s = &p->stages[j];
        if ((s->kind == KD_STAGE_TRAIN || s->kind == KD_STAGE_DISTILL) && s->model[0] &&
            kd_names_add(&trained, s->model, j) < 0)
            v->c->nomem = 1;
        if (!s->name[0])
            continue;
        size_t i;
        int added = kd_names_add(&stage_names, s->name, j);
        if (added < 0)
            v->c->nomem = 1;
        if (added != 0 || !kd_names_find(&stage_names, s->name, &i))
            continue;
        const struct kd_ynode *at = v->refs[j].name;
        if (at)
            kd_at(v->c, at, "stage name '%s' is already used by the stage %s", s->name,
                  kd_at_line(p->stages[i].pos, where, sizeof where));
        else
            kd_pctx_report(v->c, 0, s->pos.line, s->pos.col,
                           "this stage's default name '%s' is already used by the stage %s; give it a 'name'",
                           s->name, kd_at_line(p->stages[i].pos, where, sizeof where));
    }
    kd_names_release(&stage_names);
    for (size_t t = 0; t < p->n_teachers; t++) {
        const struct kd_ynode *mv = v->teacher_model ? v->teacher_model[t] : NULL;
        if (mv && first_training(p, &trained, p->teachers[t].model) == p->n_stages)
            kd_at(v->c, mv, "teacher '%s' uses model '%s', which no stage trains; add a train stage for it, or give "
                  "'weights' instead", p->teachers[t].name, p->teachers[t].model);
    }
    for (size_t i = 0; i < p->n_stages; i++) {
        const struct kd_pipe_stage *s = &p->stages[i];
        const struct kd_stage_refs *r = &v->refs[i];
        size_t ti;
        const struct kd_pipe_teacher *t =
            r->teacher && kd_names_find(&v->teachers, s->teacher, &ti) ? &p->teachers[ti] : NULL;
        if (t && t->kind == KD_TEACHER_MODEL && t->model[0]) {
            size_t j = first_training(p, &trained, t->model);
            if (j < p->n_stages && j >= i)
                kd_at(v->c, r->teacher, "teacher '%s' is used before its model '%s' is trained (by stage '%s' %s)",
                      t->name, t->model, p->stages[j].name, kd_at_line(p->stages[j].pos, where, sizeof where));
        }
        if (s->kind == KD_STAGE_DIAGNOSE)
            check_diagnose_order(v, i, &trained);
        if (s->kind == KD_STAGE_DISTILL && s->follow)
            check_follow(v, i, t);
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
        if ((s->kind == KD_STAGE_DISTILL || s->kind == KD_STAGE_LABEL) && r->cand_model && s->cand_model[0]) {
            models[n] = r->cand_model;
            names[n++] = s->cand_model;
        }
        const char *verb = s->kind == KD_STAGE_EVALUATE ? "evaluated"
                           : s->kind == KD_STAGE_EXPORT ? "exported" : "asked for candidates";
        for (size_t m = 0; m < n; m++) {
            if (strcmp(names[m], KD_PIPE_BM25) == 0)
                continue;   /* needs no training: the store's index */
            size_t j = first_training(p, &trained, names[m]);
            if (j == p->n_stages)
                kd_at(v->c, models[m], "model '%s' is %s but never trained: no train or distill stage names it",
                      names[m], verb);
            else if (j > i || (j == i && s->kind == KD_STAGE_DISTILL))
                kd_at(v->c, models[m], "model '%s' is %s before it is trained (by stage '%s' %s)", names[m], verb,
                      p->stages[j].name, kd_at_line(p->stages[j].pos, where, sizeof where));
        }
    }
    kd_names_release(&trained);
}

void kd_config_stages(struct kd_cfg *v)
{
    struct kd_ynode *key;
    const struct kd_ynode *node = kd_ytree_get(v->root, "stages", &key);
    if (!kd_require(v->c, v->root, "stages", v->root, "at the top level") || !(node = kd_as_list(v->c, node, "'stages'")))
        return;
    if (kd_list_len(node) == 0) {
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

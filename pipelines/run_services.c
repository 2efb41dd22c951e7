/* Runner services: what every stage of pipelines/stage_*.c uses and the
 * orderer (pipelines/run.c) needs: finding models and teachers, the datasets
 * a stage names, teachers opened and answering through the store, metrics,
 * saved models and artefacts, the per-epoch log, and a dry run's plan of
 * every stage kind (what it would do and ask the teachers). Nothing here
 * calls a stage: stages call these, never each other. */
#include "pipelines/run_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sampling/kd_sampling.h"
#include "store/kd_store.h"
#include "teacher/kd_teacher.h"

/* ------------------------------------------------------------- small tools */

kd_status kd_run_make_dirs(const char *path, struct kd_error *err)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return kd_error_set(err, KD_ERR_IO, "cannot create folder '%s': %s", buf, strerror(errno));
            *p = '/';
        }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return kd_error_set(err, KD_ERR_IO, "cannot create folder '%s': %s", buf, strerror(errno));
    return KD_OK;
}

struct run_model *kd_run_find_model(struct runner *r, const char *name)
{
    for (size_t i = 0; i < r->p->n_models; i++)
        if (strcmp(r->p->models[i].name, name) == 0)
            return &r->models[i];
    return NULL;
}

struct run_teacher *kd_run_find_teacher(struct runner *r, const char *name)
{
    for (size_t i = 0; i < r->p->n_teachers; i++)
        if (strcmp(r->p->teachers[i].name, name) == 0)
            return &r->teachers[i];
    return NULL;
}

/* The dataset a stage names, with its position for messages. */
kd_status kd_run_stage_data(struct runner *r, const struct kd_pipe_stage *s, const char *name, struct kd_pos pos,
                            int need_labels, struct kd_run_data **out, struct kd_error *err)
{
    char where[400];
    kd_run_where(r->p, pos, where, sizeof where);
    *out = kd_run_dataset(&r->data, name);
    if (!*out)
        return kd_error_set(err, KD_ERR_CONFIG, "%sstage '%s': unknown dataset '%s'", where, s->name, name);
    if (need_labels && !(*out)->ds.y)
        return kd_error_set(err, KD_ERR_CONFIG, "%sstage '%s' needs labels, but dataset '%s' has none", where, s->name,
                            name);
    if (kd_dataset_n(&(*out)->ds) == 0)
        return kd_error_set(err, KD_ERR_CONFIG, "%sstage '%s': dataset '%s' is empty", where, s->name, name);
    return KD_OK;
}

void kd_run_model_path(struct runner *r, const char *model, char *buf, size_t n)
{
    snprintf(buf, n, "%s/models/%s.safetensors", r->p->output, model);
}

kd_status kd_run_record_metric(struct runner *r, int64_t stage, const char *name, int64_t step, double value,
                               struct kd_error *err)
{
    if (!r->store || r->opt->dry_run)
        return KD_OK;
    struct kd_store_metric m = {name, step, value};
    return kd_store_put_metrics(r->store, r->run, stage, &m, 1, err);
}

/* Saves a trained model where later stages (and --resume) find it. */
kd_status kd_run_save_model(struct runner *r, const char *name, struct kd_mlp *net, struct kd_error *err)
{
    char path[1024];
    kd_run_model_path(r, name, path, sizeof path);
    struct kd_st_meta meta[2] = {{"pipeline", (char *)r->p->name}, {"model", (char *)name}};
    kd_status st = kd_mlp_save(net, path, meta, 2, err);
    if (!st) {
        struct kd_hash h;
        char hex[KD_HASH_HEX_LEN + 1];
        if (kd_hash_file(path, &h, NULL) == KD_OK) {
            kd_hash_hex(h, hex);
            st = kd_store_artefact(r->store, r->run, path, "safetensors", hex, err);
        }
    }
    return st;
}

/* ------------------------------------------------------------------ teachers */

static kd_status open_teacher(struct runner *r, const struct kd_pipe_stage *s, const char *name, size_t d,
                              struct run_teacher **out, struct kd_error *err);

/* Opens the teacher for inputs of width d (its model must be trained). In
 * an MPI job every rank opens its own, then they agree: a teacher that did
 * not start on one rank fails the stage on all (none waits for it). */
kd_status kd_run_open_teacher(struct runner *r, const struct kd_pipe_stage *s, const char *name, size_t d,
                              struct run_teacher **out, struct kd_error *err)
{
    return kd_run_dist_agree(r, open_teacher(r, s, name, d, out, err), err);
}

static kd_status open_teacher(struct runner *r, const struct kd_pipe_stage *s, const char *name, size_t d,
                              struct run_teacher **out, struct kd_error *err)
{
    char where[400];
    kd_run_where(r->p, s->teacher_pos, where, sizeof where);
    struct run_teacher *t = kd_run_find_teacher(r, name);
    if (!t)
        return kd_error_set(err, KD_ERR_CONFIG, "%sunknown teacher '%s'", where, name);
    *out = t;
    if (t->t) {
        if (t->t->d != d)
            return kd_error_set(err, KD_ERR_SHAPE, "%steacher '%s' takes %zu inputs, stage '%s' gives it %zu", where,
                                name, t->t->d, s->name, d);
        if (t->def->kind != KD_TEACHER_MODEL || !t->def->model[0] || t->t->net == kd_run_find_model(r, t->def->model)->net)
            return KD_OK;
        /* its model was retrained since: a new fingerprint */
        kd_teacher_close(t->t);
        t->t = NULL;
    }
    struct kd_teacher_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.name = t->def->name;
    spec.batch = t->def->batch;
    spec.timeout = t->def->timeout;
    kd_status st = KD_OK;
    switch (t->def->kind) {
    case KD_TEACHER_MODEL:
        spec.kind = KD_TEACHER_MODEL;
        if (t->def->model[0]) {
            struct run_model *m = kd_run_find_model(r, t->def->model);
            if (!m || !m->net)
                return kd_error_set(err, KD_ERR_CONFIG, "%steacher '%s': model '%s' is not trained yet", where, name,
                                    t->def->model);
            spec.net = m->net;
        } else {
            if (!t->loaded) {
                if ((st = kd_mlp_load(t->def->weights, &t->loaded, err)) != KD_OK)
                    return kd_error_prefix(err, "%steacher '%s'", where, name);
                if (t->loaded->scale.kind == KD_INPUT_UNSET)
                    kd_log(KD_LOG_INFO, "teacher '%s': %s does not record its input scaling (saved by an older kd); "
                                        "it gets the data as this pipeline scales it", name, t->def->weights);
            }
            spec.net = t->loaded;
        }
        break;
    case KD_TEACHER_EXEC:
        spec.kind = KD_TEACHER_EXEC;
        spec.argv = t->def->command;
        break;
    case KD_TEACHER_TABLE:
        spec.kind = KD_TEACHER_TABLE;
        spec.table = t->def->table[0] ? t->def->table : NULL;
        break;
    }
    st = kd_teacher_open(&spec, r->store, d, &t->t, err);
    if (st)
        return kd_error_prefix(err, "%sstage '%s'", where, s->name);
    return KD_OK;
}

const struct kd_tensor *kd_run_teacher_x(const struct kd_teacher *t, const struct kd_run_data *d)
{
    if (t->kind == KD_TEACHER_MODEL && t->net && t->net->scale.kind == KD_INPUT_UNSET)
        return &d->ds.x;
    return kd_run_raw(d);
}

/* The teacher's logits for a dataset, through the store; counts queries. */
kd_status kd_run_teacher_answers(struct runner *r, const struct kd_pipe_stage *s, struct run_teacher *t,
                                 struct kd_run_data *d, struct kd_tensor *out, struct kd_error *err)
{
    if (r->ranks > 1)
        return kd_run_dist_answers(r, s, t, d, out, err);
    kd_status st = kd_tensor_init(out, kd_dataset_n(&d->ds), t->t->c, err);
    if (st)
        return st;
    struct kd_label_stats ls;
    st = kd_teacher_label(t->t, kd_run_teacher_x(t->t, d), d->root, d->ds.rows, SIZE_MAX, out, &ls, r->opt->stop,
                          err);
    r->sum->queries += ls.queried;
    r->sum->cached += ls.cached;
    if (st) {
        kd_tensor_release(out);
        return kd_error_prefix(err, "stage '%s'", s->name);
    }
    kd_log(KD_LOG_INFO, "  teacher '%s' on '%s': %zu answers, %zu from the store, %zu asked", t->def->name, d->name,
           ls.total, ls.cached, ls.queried);
    return KD_OK;
}

/* ------------------------------------------------------- epochs, artefacts */

kd_status kd_run_on_epoch(void *ctx, struct kd_mlp *m, size_t epoch, double loss, struct kd_error *err)
{
    (void)m;
    struct kd_run_epoch_log *e = ctx;
    kd_log(KD_LOG_DEBUG, "  %s epoch %zu: loss %.4f", e->name, epoch + 1, loss);
    return kd_run_record_metric(e->r, e->stage, "train_loss", (int64_t)epoch + 1, loss, err);
}

kd_status kd_run_add_artefact(struct runner *r, const char *path, const char *format, struct kd_error *err)
{
    struct kd_hash h;
    char hex[KD_HASH_HEX_LEN + 1] = "";
    if (kd_hash_file(path, &h, NULL) == KD_OK)
        kd_hash_hex(h, hex);
    if (r->sum->n_artefacts < 16)
        snprintf(r->sum->artefacts[r->sum->n_artefacts++], sizeof r->sum->artefacts[0], "%s", path);
    kd_log(KD_LOG_INFO, "  wrote %s", path);
    return kd_store_artefact(r->store, r->run, path, format, hex[0] ? hex : NULL, err);
}

void kd_run_plan_line(struct runner *r, const char *fmt, ...)
{
    if (r->sum->n_lines >= KD_RUN_MAX_LINES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->sum->lines[r->sum->n_lines++], sizeof r->sum->lines[0], fmt, ap);
    va_end(ap);
}

/* How many answers a dry run can promise from the store for a teacher on a
 * dataset. Model teachers trained by this pipeline are judged by the model
 * file an earlier run saved: training is deterministic, so an unchanged
 * pipeline retrains the same teacher. */
void kd_run_plan_queries(struct runner *r, const struct kd_pipe_stage *s, const char *teacher, struct kd_run_data *d)
{
    size_t N = kd_dataset_n(&d->ds);
    /* An earlier stage of the plan asks the same teacher about the same data:
     * by then every answer is stored. */
    char key[2 * KD_PIPE_NAME_MAX + 2];
    snprintf(key, sizeof key, "%s/%s", teacher, d->name);
    for (size_t i = 0; i < r->n_planned; i++)
        if (strcmp(r->planned[i], key) == 0) {
            kd_run_plan_line(r, "    teacher '%s' on '%s': %zu inputs, all stored by an earlier stage", teacher, d->name, N);
            r->sum->cached += N;
            return;
        }
    if (r->n_planned < KD_RUN_MAX_LINES)
        snprintf(r->planned[r->n_planned++], sizeof r->planned[0], "%s", key);
    struct run_teacher *t = kd_run_find_teacher(r, teacher);
    struct kd_error err = {0};
    const char *why = "";
    size_t missing = N;
    if (!r->store) {
        why = " (no store yet)";
    } else if (t->def->kind == KD_TEACHER_EXEC) {
        struct kd_store_teacher found;
        if (kd_store_teacher_find(r->store, teacher, NULL, &found, &err) == KD_OK) {
            struct kd_teacher tmp;
            memset(&tmp, 0, sizeof tmp);
            tmp.store = r->store;
            tmp.id = found.id;
            tmp.d = kd_dataset_d(&d->ds);
            kd_store_width(r->store, found.id, KD_STORE_LOGITS, &tmp.c, &err);
            if (tmp.c == 0) {
                tmp.answer_kind = KD_STORE_PROBABILITIES;
                kd_store_width(r->store, found.id, KD_STORE_PROBABILITIES, &tmp.c, &err);
            }
            if (tmp.c && kd_teacher_count_missing(&tmp, kd_run_raw(d), &missing, &err) != KD_OK)
                missing = N;
            why = " (if the teacher's version is unchanged)";
        }
    } else {
        struct kd_mlp *net = NULL;
        if (t->def->kind == KD_TEACHER_MODEL) {
            char path[1024];
            if (t->def->model[0])
                kd_run_model_path(r, t->def->model, path, sizeof path);
            else
                snprintf(path, sizeof path, "%s", t->def->weights);
            if (kd_mlp_load(path, &net, &err) != KD_OK)
                net = NULL, why = " (teacher not trained yet)";
            else if (t->def->model[0])
                why = " (if the retrained teacher equals the saved one)";
        }
        if (net || t->def->kind == KD_TEACHER_TABLE) {
            struct kd_teacher_spec spec = {teacher, t->def->kind == KD_TEACHER_TABLE ? KD_TEACHER_TABLE : KD_TEACHER_MODEL,
                                           net, NULL, 0, 0, t->def->table[0] ? t->def->table : NULL, 1};
            struct kd_teacher *tt = NULL;
            if (kd_teacher_open(&spec, r->store, kd_dataset_d(&d->ds), &tt, &err) == KD_OK &&
                kd_teacher_count_missing(tt, kd_run_teacher_x(tt, d), &missing, &err) != KD_OK)
                missing = N;
            kd_teacher_close(tt);
        }
        kd_mlp_free(net);
    }
    kd_run_plan_line(r, "    teacher '%s' on '%s': %zu inputs, %zu cached, %zu new queries%s", teacher, d->name, N, N - missing,
              missing, why);
    r->sum->queries += missing;
    r->sum->cached += N - missing;
    (void)s;
}

/* A distill stage with `select:` or `reweight:` (pipelines/stage_active.c):
 * calibration, gold rows, and the budget's planned spend. */
static void plan_active(struct runner *r, const struct kd_pipe_stage *s)
{
    const struct kd_pipe_select *sel = &s->select;
    struct kd_run_data *d = kd_run_dataset(&r->data, s->data);
    struct kd_run_data *g = s->gold[0] ? kd_run_dataset(&r->data, s->gold) : NULL;
    struct kd_run_data *v = s->validation[0] ? kd_run_dataset(&r->data, s->validation) : NULL;
    if (v && (s->reweight.on || (sel->on && sel->strategy == KD_SELECT_RAD))) {
        kd_run_plan_line(r, "    calibration: the teacher answers '%s' (%zu examples) once, outside the budget",
                         v->name, kd_dataset_n(&v->ds));
        kd_run_plan_queries(r, s, s->teacher, v);
    }
    if (g)
        kd_run_plan_line(r, "    gold '%s': %zu examples trained on their own labels (no teacher queries)", g->name,
                         kd_dataset_n(&g->ds));
    if (s->reweight.on && v) {
        const struct kd_pipe_reweight *rw = &s->reweight;
        size_t bins = kd_calibration_bins(kd_dataset_n(&v->ds), rw->bins, KD_CALIBRATION_MIN_PER_BIN);
        const char *how = "weights alpha(x), computed once";
        if (rw->method == KD_REWEIGHT_SLAM)
            how = "the loss through the teacher's noise channel";
        else if (rw->method == KD_REWEIGHT_DEBIASED)
            how = sel->on      ? "weights from the student of the round before, computed once per pick"
                  : rw->folds ? "weights from out-of-fold reference students, computed once"
                              : "weights from a reference student trained on the gold rows, computed once";
        kd_run_plan_line(r, "    reweight: %s: %s; %zu confidence bins", kd_reweight_method_name(rw->method), how,
                         bins);
    }
    if (!d)
        return;
    if (!sel->on) {
        kd_run_plan_queries(r, s, s->teacher, d);
        return;
    }
    size_t N = kd_dataset_n(&d->ds);
    struct kd_budget b;
    struct kd_error ignore = {0};
    double share = sel->tgt ? sel->tgt_share : sel->augment ? sel->aug_share : 0.0;
    if (kd_budget_init(&b, sel->budget, kd_budget_with_generated(N, share), sel->rounds, &ignore))
        return; /* rounds >= 1 is checked when the pipeline is loaded */
    size_t budget = b.total;
    size_t epochs = sel->round_epochs ? sel->round_epochs : s->epochs;
    const struct run_teacher *t = NULL;
    for (size_t i = 0; i < r->p->n_teachers; i++)
        if (strcmp(r->teachers[i].def->name, s->teacher) == 0)
            t = &r->teachers[i];
    int gradient = sel->tgt_mode_set ? sel->tgt_mode == KD_TGT_GRADIENT : t && t->def->kind == KD_TEACHER_MODEL;
    if (sel->tgt)
        kd_run_plan_line(r, "    select: tgt (%s exploration, %.0f%% generated; sources by %s) in %zu rounds (%s), %zu "
                         "epochs each",
                         gradient ? "gradient" : "random", 100.0 * sel->tgt_share,
                         kd_select_name(sel->strategy), sel->rounds, sel->retrain ? "retrain" : "warm", epochs);
    else if (sel->augment)
        kd_run_plan_line(r, "    select: augment (shifts up to %zu pixels, noise %g, %.0f%% augmented; sources by %s) in "
                         "%zu rounds (%s), %zu epochs each",
                         sel->aug_shift, sel->aug_noise, 100.0 * sel->aug_share, kd_select_name(sel->strategy),
                         sel->rounds, sel->retrain ? "retrain" : "warm", epochs);
    else
        kd_run_plan_line(r, "    select: %s, %zu of '%s' (%zu examples) in %zu rounds (%s), %zu epochs each",
                         kd_select_name(sel->strategy), budget, d->name, N, sel->rounds,
                         sel->retrain ? "retrain" : "warm", epochs);
    kd_run_plan_line(r, "    teacher '%s': at most %zu new queries (the budget%s; answers already stored cost nothing)",
                     s->teacher, budget, kd_budget_capped(&b) ? ", capped by the pool's size" : "");
    if (sel->tgt && sel->tgt_data[0])
        kd_run_plan_line(r, "    autoencoder: trained on '%s'", sel->tgt_data);
    r->sum->queries += budget;
}

void kd_run_plan_stage(struct runner *r, size_t i, const struct kd_pipe_stage *s)
{
    struct kd_run_data *d = s->data[0] ? kd_run_dataset(&r->data, s->data) : NULL;
    size_t n = d ? kd_dataset_n(&d->ds) : 0;
    switch (s->kind) {
    case KD_STAGE_TRAIN:
        kd_run_plan_line(r, "%2zu. %s: train model '%s' on '%s' (%zu examples), %zu epochs", i + 1, s->name, s->model, s->data,
                  n, s->epochs);
        break;
    case KD_STAGE_LABEL:
        kd_run_plan_line(r, "%2zu. %s: label '%s' (%zu examples) with teacher '%s'", i + 1, s->name, s->data, n, s->teacher);
        if (d)
            kd_run_plan_queries(r, s, s->teacher, d);
        break;
    case KD_STAGE_DISTILL: {
        struct kd_run_data *g = s->gold[0] ? kd_run_dataset(&r->data, s->gold) : NULL;
        kd_run_plan_line(r, "%2zu. %s: distill student '%s' from teacher '%s' on '%s' (%zu examples)%s%s%s, %s loss, %zu epochs",
                  i + 1, s->name, s->model, s->teacher, s->data, n, g ? " + gold labels of '" : "", g ? s->gold : "",
                  g ? "'" : "",
                  kd_distill_loss_name(s->loss), s->epochs);
        if (s->select.on || s->reweight.on) {
            plan_active(r, s);
            break;
        }
        if (s->follow) {
            kd_run_plan_line(r, "    following the checkpoints of teacher '%s': each asked about the examples once",
                             s->teacher);
            break;
        }
        if (d)
            kd_run_plan_queries(r, s, s->teacher, d);
        if (g)
            kd_run_plan_queries(r, s, s->teacher, g);
        break;
    }
    case KD_STAGE_EVALUATE:
        kd_run_plan_line(r, "%2zu. %s: evaluate %zu model(s) on '%s' (%zu examples)", i + 1, s->name, s->n_models, s->data, n);
        if (d && s->teacher[0])
            kd_run_plan_queries(r, s, s->teacher, d);
        break;
    case KD_STAGE_EXPORT:
        kd_run_plan_line(r, "%2zu. %s: export model '%s' as%s%s%s", i + 1, s->name, s->model,
                         s->format_safetensors || (!s->format_c && !s->format_onnx) ? " safetensors" : "",
                         s->format_c ? " C source" : "", s->format_onnx ? " ONNX" : "");
        break;
    case KD_STAGE_DIAGNOSE:
        kd_run_plan_diagnose(r, i, s);
        break;
    }
}

/* ------------------------------------------------------ teacher checkpoints */

kd_status kd_run_checkpoint_answers(struct runner *r, const struct kd_pipe_stage *s, const char *teacher,
                                    const char *model, size_t epoch, struct kd_run_data *d, struct kd_tensor *out,
                                    struct kd_error *err)
{
    const struct run_teacher *rt = kd_run_find_teacher(r, teacher);
    if (!rt)
        return kd_error_set(err, KD_ERR_CONFIG, "stage '%s': unknown teacher '%s'", s->name, teacher);
    char path[1024], name[KD_PIPE_NAME_MAX + 32];
    kd_run_checkpoint_path(r, model, epoch, path, sizeof path);
    snprintf(name, sizeof name, "%s@epoch-%zu", teacher, epoch);
    struct kd_pipe_teacher def = *rt->def;
    snprintf(def.name, sizeof def.name, "%.*s", (int)sizeof def.name - 1, name);
    struct run_teacher t = {&def, NULL, NULL};
    kd_status st = kd_mlp_load(path, &t.loaded, err);
    if (st)
        return kd_error_prefix(err, "stage '%s': teacher checkpoint", s->name);
    struct kd_teacher_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.name = def.name;
    spec.kind = KD_TEACHER_MODEL;
    spec.net = t.loaded;
    if ((st = kd_teacher_open(&spec, r->store, kd_dataset_d(&d->ds), &t.t, err)))
        kd_error_prefix(err, "stage '%s'", s->name);
    else
        st = kd_run_teacher_answers(r, s, &t, d, out, err);
    kd_teacher_close(t.t);
    kd_mlp_free(t.loaded);
    return st;
}

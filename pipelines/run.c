/* The stage runner: data -> stages in order, every teacher answer through the
 * store, every stage recorded in the store so that a run can be resumed. */
#include "pipelines/run_impl.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/kd_store.h"
#include "teacher/kd_teacher.h"

/* ------------------------------------------------------------- small tools */

static kd_status make_dirs(const char *path, struct kd_error *err)
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

static struct run_teacher *find_teacher(struct runner *r, const char *name)
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

/* Opens the teacher for inputs of width d (its model must be trained). */
kd_status kd_run_open_teacher(struct runner *r, const struct kd_pipe_stage *s, const char *name, size_t d,
                              struct run_teacher **out, struct kd_error *err)
{
    char where[400];
    kd_run_where(r->p, s->teacher_pos, where, sizeof where);
    struct run_teacher *t = find_teacher(r, name);
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
            if (!t->loaded && (st = kd_mlp_load(t->def->weights, &t->loaded, err)) != KD_OK)
                return kd_error_prefix(err, "%steacher '%s'", where, name);
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

/* The teacher's logits for a dataset, through the store; counts queries. */
kd_status kd_run_teacher_answers(struct runner *r, const struct kd_pipe_stage *s, struct run_teacher *t,
                                 struct kd_run_data *d, struct kd_tensor *out, struct kd_error *err)
{
    kd_status st = kd_tensor_init(out, kd_dataset_n(&d->ds), t->t->c, err);
    if (st)
        return st;
    struct kd_label_stats ls;
    st = kd_teacher_label(t->t, &d->ds.x, d->root, d->ds.rows, SIZE_MAX, out, &ls, r->opt->stop, err);
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

/* ------------------------------------------------------------------- stages */

kd_status kd_run_on_epoch(void *ctx, struct kd_mlp *m, size_t epoch, double loss, struct kd_error *err)
{
    (void)m;
    struct kd_run_epoch_log *e = ctx;
    kd_log(KD_LOG_DEBUG, "  %s epoch %zu: loss %.4f", e->name, epoch + 1, loss);
    return kd_run_record_metric(e->r, e->stage, "train_loss", (int64_t)epoch + 1, loss, err);
}

static kd_status run_train(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
    struct kd_run_data *d;
    kd_status st = kd_run_stage_data(r, s, s->data, s->data_pos, 1, &d, err);
    if (st)
        return st;
    struct run_model *m = kd_run_find_model(r, s->model);
    kd_mlp_free(m->net);
    m->net = NULL;
    if ((st = kd_run_build_model(r->p, m->def, kd_dataset_d(&d->ds), d->ds.n_classes, r->p->seed, &m->net, err)))
        return st;
    struct kd_train_config tc;
    if ((st = kd_run_train_config(r->p, s, kd_dataset_n(&d->ds), &tc, err)))
        return st;
    struct kd_run_epoch_log el = {r, sid, s->name};
    tc.on_epoch = kd_run_on_epoch;
    tc.epoch_ctx = &el;
    tc.stop = r->opt->stop;
    struct kd_train_result res;
    if ((st = kd_mlp_train_ce(m->net, &d->ds.x, d->ds.y, NULL, &tc, &res, err)))
        return kd_error_prefix(err, "stage '%s'", s->name);
    kd_log(KD_LOG_INFO, "  model '%s' (%zu parameters) on '%s' (%zu examples): %zu epochs in %.1f s, loss %.4f",
           s->model, m->net->n_params, d->name, kd_dataset_n(&d->ds), res.epochs_done, res.seconds, res.last_loss);
    return kd_run_save_model(r, s->model, m->net, err);
}

static kd_status run_label(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
    struct kd_run_data *d;
    struct run_teacher *t;
    kd_status st = kd_run_stage_data(r, s, s->data, s->data_pos, 0, &d, err);
    if (!st)
        st = kd_run_open_teacher(r, s, s->teacher, kd_dataset_d(&d->ds), &t, err);
    if (st)
        return st;
    size_t before = r->sum->queries;
    struct kd_tensor v;
    if ((st = kd_run_teacher_answers(r, s, t, d, &v, err)))
        return st;
    if (d->ds.y) {
        /* The teacher's accuracy where the data happens to have labels (the
         * pool's labels are never used for training): a noise figure. */
        size_t right = 0, n = kd_dataset_n(&d->ds);
        for (size_t i = 0; i < n; i++)
            right += kd_argmax(kd_tensor_row(&v, i), v.cols) == (size_t)d->ds.y[i];
        kd_log(KD_LOG_INFO, "  teacher accuracy on '%s': %.4f", d->name, (double)right / (double)n);
        st = kd_run_record_metric(r, sid, "teacher_accuracy", -1, (double)right / (double)n, err);
    }
    if (!st)
        st = kd_run_record_metric(r, sid, "queries", -1, (double)(r->sum->queries - before), err);
    kd_tensor_release(&v);
    return st;
}

static kd_status run_distill(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
    if (s->select.on || s->reweight.on)
        return kd_run_active(r, s, sid, err);
    struct kd_run_data *d, *g = NULL;
    struct run_teacher *t;
    kd_status st = kd_run_stage_data(r, s, s->data, s->data_pos, 0, &d, err);
    if (!st && s->gold[0])
        st = kd_run_stage_data(r, s, s->gold, s->gold_pos, 1, &g, err);
    if (!st)
        st = kd_run_open_teacher(r, s, s->teacher, kd_dataset_d(&d->ds), &t, err);
    if (st)
        return st;
    size_t D = kd_dataset_d(&d->ds), C = t->t->c, nd = kd_dataset_n(&d->ds), ng = g ? kd_dataset_n(&g->ds) : 0;
    if (g && kd_dataset_d(&g->ds) != D) {
        char where[400];
        kd_run_where(r->p, s->gold_pos, where, sizeof where);
        return kd_error_set(err, KD_ERR_SHAPE, "%sgold dataset '%s' has %zu features, '%s' has %zu", where, g->name,
                            kd_dataset_d(&g->ds), d->name, D);
    }
    /* The training set: data rows (teacher only) then gold rows (teacher + label). */
    struct kd_tensor vd = {0}, vg = {0}, x = {0}, v = {0};
    int32_t *y = NULL;
    if ((st = kd_run_teacher_answers(r, s, t, d, &vd, err)))
        goto done;
    if (g && (st = kd_run_teacher_answers(r, s, t, g, &vg, err)))
        goto done;
    if ((st = kd_tensor_init(&x, nd + ng, D, err)) || (st = kd_tensor_init(&v, nd + ng, C, err)))
        goto done;
    y = malloc((nd + ng) * sizeof *y);
    if (!y) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        goto done;
    }
    memcpy(x.data, d->ds.x.data, nd * D * sizeof(float));
    memcpy(v.data, vd.data, nd * C * sizeof(float));
    for (size_t i = 0; i < nd; i++)
        y[i] = -1;
    if (g) {
        memcpy(x.data + nd * D, g->ds.x.data, ng * D * sizeof(float));
        memcpy(v.data + nd * C, vg.data, ng * C * sizeof(float));
        for (size_t i = 0; i < ng; i++)
            y[nd + i] = g->ds.y[i];
    }
    struct run_model *m = kd_run_find_model(r, s->model);
    kd_mlp_free(m->net);
    m->net = NULL;
    if ((st = kd_run_build_model(r->p, m->def, D, C, r->p->seed, &m->net, err)))
        goto done;
    struct kd_train_config tc;
    if ((st = kd_run_train_config(r->p, s, nd + ng, &tc, err)))
        goto done;
    char cp[1024];
    snprintf(cp, sizeof cp, "%s/checkpoints/%s.safetensors", r->p->output, s->name);
    struct kd_run_epoch_log el = {r, sid, s->name};
    tc.on_epoch = kd_run_on_epoch;
    tc.epoch_ctx = &el;
    tc.stop = r->opt->stop;
    tc.checkpoint = cp;
    tc.resume = r->opt->resume;
    struct kd_distill_config dc = {s->loss, s->temperature, s->alpha};
    struct kd_train_result res;
    if ((st = kd_mlp_train_distill(m->net, &x, &v, y, NULL, &dc, &tc, &res, err))) {
        kd_error_prefix(err, "stage '%s'", s->name);
        goto done;
    }
    kd_log(KD_LOG_INFO,
           "  student '%s' (%zu parameters) on %zu examples (%zu with gold labels), %s loss, T %g, alpha %g: "
           "%zu epochs in %.1f s%s, loss %.4f",
           s->model, m->net->n_params, nd + ng, ng, kd_distill_loss_name(s->loss), (double)s->temperature,
           (double)s->alpha, res.epochs_done, res.seconds, res.epochs_resumed ? " (resumed)" : "", res.last_loss);
    st = kd_run_save_model(r, s->model, m->net, err);
    if (!st)
        remove(cp); /* the stage is done: its checkpoint has served */
done:
    free(y);
    kd_tensor_release(&vd), kd_tensor_release(&vg), kd_tensor_release(&x), kd_tensor_release(&v);
    return st;
}

static kd_status run_evaluate(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
    struct kd_run_data *d;
    kd_status st = kd_run_stage_data(r, s, s->data, s->data_pos, 1, &d, err);
    if (st)
        return st;
    struct kd_tensor v = {0}, z = {0};
    struct run_teacher *t = NULL;
    size_t N = kd_dataset_n(&d->ds);
    if (s->teacher[0]) {
        if ((st = kd_run_open_teacher(r, s, s->teacher, kd_dataset_d(&d->ds), &t, err)) ||
            (st = kd_run_teacher_answers(r, s, t, d, &v, err)))
            return st;
        size_t right = 0;
        for (size_t i = 0; i < N; i++)
            right += kd_argmax(kd_tensor_row(&v, i), v.cols) == (size_t)d->ds.y[i];
        kd_log(KD_LOG_INFO, "  teacher '%s' on '%s': accuracy %.4f", s->teacher, d->name, (double)right / (double)N);
        char name[KD_PIPE_NAME_MAX + 32];
        snprintf(name, sizeof name, "teacher/%s/accuracy", s->teacher);
        if ((st = kd_run_record_metric(r, sid, name, -1, (double)right / (double)N, err)))
            goto done;
    }
    for (size_t k = 0; k < s->n_models; k++) {
        struct run_model *m = kd_run_find_model(r, s->models[k]);
        if (!m || !m->net) {
            st = kd_error_set(err, KD_ERR_CONFIG, "stage '%s': model '%s' is not trained", s->name, s->models[k]);
            goto done;
        }
        struct kd_eval ev;
        if ((st = kd_mlp_evaluate(m->net, &d->ds.x, d->ds.y, &ev, err))) {
            kd_error_prefix(err, "stage '%s', model '%s' on '%s'", s->name, s->models[k], d->name);
            goto done;
        }
        double agree = NAN;
        if (t) {
            if ((st = kd_tensor_init(&z, N, kd_mlp_out(m->net), err)) || (st = kd_mlp_predict(m->net, &d->ds.x, &z, err)))
                goto done_eval;
            size_t same = 0;
            if (z.cols == v.cols)
                for (size_t i = 0; i < N; i++)
                    same += kd_argmax(kd_tensor_row(&z, i), z.cols) == kd_argmax(kd_tensor_row(&v, i), v.cols);
            agree = z.cols == v.cols ? (double)same / (double)N : NAN;
            kd_tensor_release(&z);
        }
        kd_log(KD_LOG_INFO, "  model '%s' on '%s': accuracy %.4f, loss %.4f%s", s->models[k], d->name, ev.accuracy,
               ev.loss, t ? "" : "");
        if (r->sum->n_rows < KD_RUN_MAX_ROWS) {
            struct kd_run_eval_row *row = &r->sum->rows[r->sum->n_rows++];
            snprintf(row->stage, sizeof row->stage, "%s", s->name);
            snprintf(row->model, sizeof row->model, "%s", s->models[k]);
            snprintf(row->data, sizeof row->data, "%s", d->name);
            row->n = N;
            row->accuracy = ev.accuracy;
            row->loss = ev.loss;
            row->agreement = agree;
        }
        char name[KD_PIPE_NAME_MAX + 32];
        snprintf(name, sizeof name, "%s/accuracy", s->models[k]);
        st = kd_run_record_metric(r, sid, name, -1, ev.accuracy, err);
        if (!st && t) {
            snprintf(name, sizeof name, "%s/agreement", s->models[k]);
            st = kd_run_record_metric(r, sid, name, -1, agree, err);
        }
    done_eval:
        kd_eval_release(&ev);
        if (st)
            goto done;
    }
done:
    kd_tensor_release(&v);
    kd_tensor_release(&z);
    return st;
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

static kd_status run_export(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
    (void)sid;
    struct run_model *m = kd_run_find_model(r, s->model);
    if (!m || !m->net)
        return kd_error_set(err, KD_ERR_CONFIG, "stage '%s': model '%s' is not trained", s->name, s->model);
    char base[900], path[1024];
    snprintf(base, sizeof base, "%s", s->path ? s->path : s->model);
    char *slash = strrchr(base, '/');
    if (slash) {
        *slash = '\0';
        kd_status st = make_dirs(base, err);
        *slash = '/';
        if (st)
            return st;
    }
    kd_status st = KD_OK;
    if (s->format_safetensors || !s->format_c) {
        snprintf(path, sizeof path, "%s.safetensors", base);
        struct kd_st_meta meta[1] = {{"pipeline", (char *)r->p->name}};
        if ((st = kd_mlp_save(m->net, path, meta, 1, err)) || (st = kd_run_add_artefact(r, path, "safetensors", err)))
            return st;
    }
    if (s->format_c) {
        snprintf(path, sizeof path, "%s.c", base);
        char prefix[KD_PIPE_NAME_MAX + 8];
        snprintf(prefix, sizeof prefix, "kd_%s", s->model);
        for (char *c = prefix; *c; c++)
            if (*c == '-')
                *c = '_';
        if ((st = kd_mlp_export_c(m->net, path, prefix, err)) || (st = kd_run_add_artefact(r, path, "c", err)))
            return st;
    }
    return st;
}

/* --------------------------------------------------------- resume, dry run */

/* On resume, a stage finished by the interrupted run is not redone: its
 * trained model comes back from its file. */
static kd_status restore_stage(struct runner *r, const struct kd_pipe_stage *s, struct kd_error *err)
{
    if (s->kind != KD_STAGE_TRAIN && s->kind != KD_STAGE_DISTILL)
        return KD_OK;
    char path[1024];
    kd_run_model_path(r, s->model, path, sizeof path);
    struct run_model *m = kd_run_find_model(r, s->model);
    kd_mlp_free(m->net);
    m->net = NULL;
    kd_status st = kd_mlp_load(path, &m->net, err);
    if (st)
        kd_error_prefix(err, "cannot resume stage '%s' (remove --resume to start afresh)", s->name);
    return st;
}

void kd_run_plan_line(struct runner *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
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
    struct run_teacher *t = find_teacher(r, teacher);
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
            if (tmp.c && kd_teacher_count_missing(&tmp, &d->ds.x, &missing, &err) != KD_OK)
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
                kd_teacher_count_missing(tt, &d->ds.x, &missing, &err) != KD_OK)
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

static void plan_stage(struct runner *r, size_t i, const struct kd_pipe_stage *s)
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
            kd_run_active_plan(r, s);
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
        kd_run_plan_line(r, "%2zu. %s: export model '%s' as%s%s", i + 1, s->name, s->model,
                  s->format_safetensors || !s->format_c ? " safetensors" : "", s->format_c ? " C source" : "");
        break;
    }
}

/* ------------------------------------------------------------------ the run */

static kd_status record_examples(struct runner *r, struct kd_error *err)
{
    /* Every example the run loaded, with its gold label: what SQL joins
     * teacher answers against (docs/store.md). */
    kd_status st = KD_OK;
    for (size_t k = 0; k < r->data.n && !st; k++) {
        struct kd_run_data *d = &r->data.items[k];
        size_t n = kd_dataset_n(&d->ds);
        struct kd_store_example *ex = malloc((n ? n : 1) * sizeof *ex);
        if (!ex)
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            ex[i].dataset = d->root;
            ex[i].row = (int64_t)d->ds.rows[i];
            ex[i].key = kd_store_input_hash(kd_tensor_row(&d->ds.x, i), kd_dataset_d(&d->ds));
            ex[i].label = d->ds.y ? d->ds.y[i] : -1;
            ex[i].split = d->name;
        }
        /* A split's parts come after their source: the part's name wins as split. */
        st = kd_store_put_examples(r->store, ex, n, err);
        free(ex);
    }
    return st;
}

static kd_status run_stage(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
    switch (s->kind) {
    case KD_STAGE_TRAIN:
        return run_train(r, s, sid, err);
    case KD_STAGE_LABEL:
        return run_label(r, s, sid, err);
    case KD_STAGE_DISTILL:
        return run_distill(r, s, sid, err);
    case KD_STAGE_EVALUATE:
        return run_evaluate(r, s, sid, err);
    case KD_STAGE_EXPORT:
        return run_export(r, s, sid, err);
    }
    return kd_error_set(err, KD_ERR_UNSUPPORTED, "stage '%s' has an unknown kind", s->name);
}

kd_status kd_pipeline_run(const struct kd_pipeline *p, const struct kd_run_options *opt, struct kd_run_summary *sum,
                          struct kd_error *err)
{
    memset(sum, 0, sizeof *sum);
    double t0 = kd_time_now();
    struct runner r;
    memset(&r, 0, sizeof r);
    char *recorded = NULL;
    r.p = p;
    r.opt = opt;
    r.sum = sum;
    snprintf(sum->store, sizeof sum->store, "%s", p->store);
    snprintf(sum->output, sizeof sum->output, "%s", p->output);
    kd_blas_init_threads(p->threads);
    if (opt->quiet)
        kd_progress_set_quiet(1);
    r.models = calloc(p->n_models + 1, sizeof *r.models);
    r.teachers = calloc(p->n_teachers + 1, sizeof *r.teachers);
    kd_status st = r.models && r.teachers ? KD_OK : kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < p->n_models; i++)
        r.models[i].def = &p->models[i];
    for (size_t i = 0; !st && i < p->n_teachers; i++)
        r.teachers[i].def = &p->teachers[i];
    if (!st)
        st = kd_run_load_datasets(p, &r.data, err);
    if (st)
        goto done;
    kd_log(KD_LOG_INFO, "kd run %s: %zu datasets, %zu stages, store %s", p->name, r.data.n, p->n_stages, p->store);
    if (opt->dry_run) {
        struct kd_store_options so;
        kd_store_options_init(&so);
        so.read_only = 1;
        so.must_exist = 1;
        struct kd_error ignore = {0};
        if (kd_store_open(p->store, &so, &r.store, &ignore) != KD_OK)
            r.store = NULL;
        for (size_t i = 0; i < r.data.n; i++)
            kd_run_plan_line(&r, "data '%s': %zu examples x %zu features%s", r.data.items[i].name, kd_dataset_n(&r.data.items[i].ds),
                      kd_dataset_d(&r.data.items[i].ds), r.data.items[i].ds.y ? ", labelled" : "");
        for (size_t i = 0; i < p->n_stages; i++)
            plan_stage(&r, i, &p->stages[i]);
        goto done;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models", p->output);
    if ((st = make_dirs(dir, err)))
        goto done;
    snprintf(dir, sizeof dir, "%s/checkpoints", p->output);
    if ((st = make_dirs(dir, err)) || (st = kd_store_open(p->store, NULL, &r.store, err)))
        goto done;
    /* The run is recorded with the file's text and the overrides applied to
     * it: together they say what ran, and --resume matches both. */
    size_t len = strlen(p->text ? p->text : "") + 1;
    for (size_t i = 0; i < opt->n_sets; i++)
        len += strlen(opt->sets[i]) + 32;
    recorded = malloc(len);
    if (!recorded) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        goto done;
    }
    snprintf(recorded, len, "%s", p->text ? p->text : "");
    for (size_t i = 0; i < opt->n_sets; i++) {
        size_t at = strlen(recorded);
        snprintf(recorded + at, len - at, "%s# kd run --set %s\n", at && recorded[at - 1] != '\n' ? "\n" : "",
                 opt->sets[i]);
    }
    int64_t previous = 0;
    if (opt->resume && (st = kd_store_run_last_unfinished(r.store, recorded, &previous, err)))
        goto done;
    if (previous) {
        r.run = previous;
        st = kd_store_run_reopen(r.store, previous, err);
        kd_log(KD_LOG_INFO, "resuming run %lld", (long long)previous);
    } else {
        if (opt->resume)
            kd_log(KD_LOG_INFO, "nothing to resume: no unfinished run of this pipeline in %s; starting a new run", p->store);
        st = kd_store_run_begin(r.store, p->name, recorded, &r.run, err);
    }
    if (!st)
        st = record_examples(&r, err);
    sum->run_id = r.run;
    for (size_t i = 0; !st && i < p->n_stages; i++) {
        const struct kd_pipe_stage *s = &p->stages[i];
        int done_before = 0;
        if (previous && (st = kd_store_stage_finished(r.store, r.run, s->name, &done_before, err)))
            break;
        if (done_before) {
            kd_log(KD_LOG_INFO, "[%zu/%zu] %s: done in the interrupted run, skipped", i + 1, p->n_stages, s->name);
            st = restore_stage(&r, s, err);
            sum->stages_skipped++;
            continue;
        }
        kd_log(KD_LOG_INFO, "[%zu/%zu] %s (%s)", i + 1, p->n_stages, s->name, kd_stage_kind_name(s->kind));
        int64_t sid = 0;
        double ts = kd_time_now();
        if ((st = kd_store_stage_begin(r.store, r.run, s->name, (int64_t)i, -1, &sid, err)))
            break;
        st = run_stage(&r, s, sid, err);
        struct kd_error e2 = {0};
        enum kd_store_status ss = !st ? KD_STORE_OK : st == KD_ERR_INTERRUPTED ? KD_STORE_INTERRUPTED : KD_STORE_FAILED;
        kd_status st2 = kd_store_stage_finish(r.store, sid, ss, st ? err->msg : NULL, &e2);
        if (!st && st2) {
            st = st2;
            *err = e2;
        }
        if (!st)
            sum->stages_run++;
        kd_log(KD_LOG_DEBUG, "  %s: %.1f s", s->name, kd_time_now() - ts);
    }
    if (r.run) {
        struct kd_error e2 = {0};
        enum kd_store_status rs = !st ? KD_STORE_OK : st == KD_ERR_INTERRUPTED ? KD_STORE_INTERRUPTED : KD_STORE_FAILED;
        kd_status st2 = kd_store_run_finish(r.store, r.run, rs, st ? err->msg : NULL, &e2);
        if (!st && st2) {
            st = st2;
            *err = e2;
        }
    }
done:
    sum->seconds = kd_time_now() - t0;
    for (size_t i = 0; r.teachers && i < p->n_teachers; i++) {
        kd_teacher_close(r.teachers[i].t);
        kd_mlp_free(r.teachers[i].loaded);
    }
    for (size_t i = 0; r.models && i < p->n_models; i++)
        kd_mlp_free(r.models[i].net);
    free(r.models);
    free(r.teachers);
    kd_run_datasets_release(&r.data);
    kd_store_close(r.store);
    free(recorded);
    return st;
}

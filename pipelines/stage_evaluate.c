/* The evaluate stage: accuracy and loss of trained models on labelled data,
 * and with `teacher:` the teacher's accuracy and each model's agreement with
 * it; every figure in the store and in the run's summary. */
#include "pipelines/run_impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The features model `net` reads for d: d's own when it was scaled the way
 * the model was trained (or the model does not say), else d's raw features
 * scaled the model's way, in *own. */
static kd_status model_inputs(const struct kd_mlp *net, const struct kd_run_data *d, struct kd_tensor *own,
                              const struct kd_tensor **x, struct kd_error *err)
{
    *x = &d->ds.x;
    if (net->scale.kind == KD_INPUT_UNSET || kd_input_scale_equal(&net->scale, &d->scale))
        return KD_OK;
    const struct kd_tensor *raw = kd_run_raw(d);
    kd_status st = kd_tensor_init(own, raw->rows, raw->cols, err);
    if (st)
        return st;
    if (raw->rows)
        memcpy(own->data, raw->data, raw->rows * raw->cols * sizeof(float));
    if ((st = kd_input_scale_apply(&net->scale, own, err)))
        return st;
    kd_log(KD_LOG_INFO, "  '%s' is scaled (%s) otherwise than the model was trained (%s): the model's scaling is "
                        "applied to its raw features", d->name, kd_input_scale_name(d->scale.kind),
           kd_input_scale_name(net->scale.kind));
    *x = own;
    return KD_OK;
}

kd_status kd_run_stage_evaluate(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
    struct kd_run_data *d;
    kd_status st = kd_run_stage_data(r, s, s->data, s->data_pos, 1, &d, err);
    if (st)
        return st;
    struct kd_tensor v = {0}, z = {0}, own = {0};
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
        struct kd_eval ev = {0};
        const struct kd_tensor *x;
        if ((st = model_inputs(m->net, d, &own, &x, err)))
            goto done;
        if ((st = kd_mlp_evaluate(m->net, x, d->ds.y, &ev, err))) {
            kd_error_prefix(err, "stage '%s', model '%s' on '%s'", s->name, s->models[k], d->name);
            goto done;
        }
        double agree = NAN;
        if (t) {
            if ((st = kd_tensor_init(&z, N, kd_mlp_out(m->net), err)) || (st = kd_mlp_predict(m->net, x, &z, err)))
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
        kd_tensor_release(&own);
        if (st)
            goto done;
    }
done:
    kd_tensor_release(&v);
    kd_tensor_release(&z);
    kd_tensor_release(&own);
    return st;
}

/* The label stage: a teacher answers a whole dataset through the store, so
 * that later stages (and reruns) find every answer there. */
#include "pipelines/run_impl.h"

kd_status kd_run_stage_label(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
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

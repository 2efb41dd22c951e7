/* The train stage: a model of the pipeline learns the gold labels of a dataset
 * (cross-entropy) and is saved where later stages and --resume find it. */
#include "pipelines/run_impl.h"

kd_status kd_run_stage_train(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
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

/* The train stage: a model of the pipeline learns the gold labels of a dataset
 * (cross-entropy) and is saved where later stages and --resume find it. */
#include "pipelines/run_impl.h"

#include <stdio.h>

/* `checkpoints: {every: N}`: the model's weights after epochs N, 2N, ... and
 * the last, as output/checkpoints/<model>/epoch-<e>.safetensors, each an
 * artefact of the run: teachers that a distill stage follows, or a diagnose
 * stage measures. */
struct checkpoint_log {
    struct kd_run_epoch_log el;
    const struct kd_pipe_stage *s;
};

static kd_status on_epoch(void *ctx, struct kd_mlp *m, size_t epoch, double loss, struct kd_error *err)
{
    struct checkpoint_log *c = ctx;
    kd_status st = kd_run_on_epoch(&c->el, m, epoch, loss, err);
    size_t e = epoch + 1;
    if (st || !c->s->checkpoint_every || (e % c->s->checkpoint_every && e != c->s->epochs))
        return st;
    char path[1024];
    kd_run_checkpoint_path(c->el.r, c->s->model, e, path, sizeof path);
    struct kd_st_meta meta[2] = {{"pipeline", (char *)c->el.r->p->name}, {"model", (char *)c->s->model}};
    if ((st = kd_mlp_save(m, path, meta, 2, err)))
        return kd_error_prefix(err, "stage '%s': checkpoint of epoch %zu", c->s->name, e);
    return kd_run_add_artefact(c->el.r, path, "safetensors", err);
}

kd_status kd_run_stage_train(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
    struct kd_run_data *d;
    kd_status st = kd_run_stage_data(r, s, s->data, s->data_pos, 1, &d, err);
    if (st)
        return st;
    struct run_model *m = kd_run_find_model(r, s->model);
    kd_mlp_free(m->net);
    m->net = NULL;
    /* A class count the file gives is the truth: every label is checked
     * against it (naming the row), and a gold set that happens to miss the
     * last classes still trains a network with all of them. */
    size_t c = d->ds.n_classes;
    if (m->def->classes) {
        if ((st = kd_dataset_check_labels(&d->ds, m->def->classes, err))) {
            char where[400];
            kd_run_where(r->p, m->def->classes_pos, where, sizeof where);
            return kd_error_prefix(err, "%smodel '%s' has %zu outputs", where, m->def->name, m->def->classes);
        }
        c = m->def->classes;
    }
    if ((st = kd_run_build_model(r->p, m->def, kd_dataset_d(&d->ds), c, r->p->seed, &m->net, err)))
        return st;
    /* The model remembers the scaling of its training data (saved, exported, applied as a teacher). */
    if ((st = kd_input_scale_copy(&m->net->scale, &d->scale, err)))
        return st;
    struct kd_train_config tc;
    if ((st = kd_run_train_config(r->p, s, kd_dataset_n(&d->ds), &tc, err)))
        return st;
    kd_run_note_steps(s, kd_dataset_n(&d->ds), tc.batch, tc.epochs);
    struct checkpoint_log cl = {{r, sid, s->name}, s};
    if (s->checkpoint_every) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/checkpoints/%s", r->p->output, s->model);
        if ((st = kd_run_make_dirs(dir, err)))
            return st;
    }
    tc.on_epoch = on_epoch;
    tc.epoch_ctx = &cl;
    tc.stop = r->opt->stop;
    kd_run_dist_train(r, &tc);
    struct kd_train_result res;
    if ((st = kd_mlp_train_ce(m->net, &d->ds.x, d->ds.y, NULL, &tc, &res, err)))
        return kd_error_prefix(err, "stage '%s'", s->name);
    kd_log(KD_LOG_INFO, "  model '%s' (%zu parameters) on '%s' (%zu examples): %zu epochs in %.1f s, loss %.4f",
           s->model, m->net->n_params, d->name, kd_dataset_n(&d->ds), res.epochs_done, res.seconds, res.last_loss);
    return kd_run_save_model(r, s->model, m->net, err);
}

void kd_run_checkpoint_path(struct runner *r, const char *model, size_t e, char *buf, size_t n)
{
    snprintf(buf, n, "%s/checkpoints/%s/epoch-%zu.safetensors", r->p->output, model, e);
}

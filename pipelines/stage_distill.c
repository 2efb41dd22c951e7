/* The distill stage without selection or reweighting: the student learns
 * the teacher's answers on a dataset, plus the gold labels of `gold:` mixed
 * in by alpha (losses/), with a checkpoint per epoch so --resume continues
 * it. Stages with `select:` or `reweight:` are pipelines/stage_active.c. */
#include "pipelines/run_impl.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------- following teacher checkpoints */

/* The answers of teacher checkpoint `epoch` for d, then g, into v's rows
 * (nd + ng, C). */
static kd_status checkpoint_answers(struct runner *r, const struct kd_pipe_stage *s, const struct kd_pipe_stage *train,
                                    size_t epoch, struct kd_run_data *d, struct kd_run_data *g, struct kd_tensor *v,
                                    struct kd_error *err)
{
    struct kd_run_data *parts[2] = {d, g};
    size_t at = 0;
    kd_status st = KD_OK;
    for (size_t k = 0; k < 2 && parts[k] && !st; k++) {
        struct kd_tensor a = {0};
        if ((st = kd_run_checkpoint_answers(r, s, s->teacher, train->model, epoch, parts[k], &a, err)))
            break;
        if (a.cols != v->cols)
            st = kd_error_set(err, KD_ERR_SHAPE, "stage '%s': teacher checkpoint epoch-%zu gives %zu classes, not %zu",
                              s->name, epoch, a.cols, v->cols);
        else
            memcpy(v->data + at * v->cols, a.data, a.rows * a.cols * sizeof(float));
        at += a.rows;
        kd_tensor_release(&a);
    }
    return st;
}

/* After each epoch, the next epoch's targets: those of its checkpoint. */
struct follow_log {
    struct kd_run_epoch_log el;
    const struct kd_pipe_stage *s, *train;
    struct kd_run_data *d, *g;
    struct kd_tensor *v;      /* the training targets, read batch by batch: rewritten in place */
    size_t current;           /* the checkpoint epoch v holds */
};

static kd_status follow_epoch(void *ctx, struct kd_mlp *m, size_t epoch, double loss, struct kd_error *err)
{
    struct follow_log *f = ctx;
    kd_status st = kd_run_on_epoch(&f->el, m, epoch, loss, err);
    if (st || epoch + 1 >= f->s->epochs)
        return st;
    size_t next = kd_pipeline_checkpoint_epoch(f->train, epoch + 2);
    if (next == f->current)
        return KD_OK;
    f->current = next;
    kd_log(KD_LOG_INFO, "  epoch %zu learns from teacher checkpoint epoch-%zu", epoch + 2, next);
    return checkpoint_answers(f->el.r, f->s, f->train, next, f->d, f->g, f->v, err);
}

kd_status kd_run_stage_distill(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
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
    const struct kd_pipe_stage *train = NULL;
    if (s->follow) {
        /* Epoch 1's targets now, the others as training goes (follow_epoch). */
        train = kd_pipeline_checkpoints_of(r->p, (size_t)(s - r->p->stages), t->def->model);
        if (!train) {
            st = kd_error_set(err, KD_ERR_CONFIG, "stage '%s': no train stage saves checkpoints of '%s'", s->name,
                              t->def->model);
            goto done;
        }
    } else {
        if ((st = kd_run_teacher_answers(r, s, t, d, &vd, err)))
            goto done;
        if (g && (st = kd_run_teacher_answers(r, s, t, g, &vg, err)))
            goto done;
    }
    if ((st = kd_tensor_init(&x, nd + ng, D, err)) || (st = kd_tensor_init(&v, nd + ng, C, err)))
        goto done;
    y = malloc((nd + ng) * sizeof *y);
    if (!y) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        goto done;
    }
    memcpy(x.data, d->ds.x.data, nd * D * sizeof(float));
    if (train && (st = checkpoint_answers(r, s, train, kd_pipeline_checkpoint_epoch(train, 1), d, g, &v, err)))
        goto done;
    if (!train)
        memcpy(v.data, vd.data, nd * C * sizeof(float));
    for (size_t i = 0; i < nd; i++)
        y[i] = -1;
    if (g) {
        memcpy(x.data + nd * D, g->ds.x.data, ng * D * sizeof(float));
        if (!train)
            memcpy(v.data + nd * C, vg.data, ng * C * sizeof(float));
        for (size_t i = 0; i < ng; i++)
            y[nd + i] = g->ds.y[i];
    }
    struct run_model *m = kd_run_find_model(r, s->model);
    kd_mlp_free(m->net);
    m->net = NULL;
    if ((st = kd_run_build_model(r->p, m->def, D, C, r->p->seed, &m->net, err)))
        goto done;
    if ((st = kd_input_scale_copy(&m->net->scale, &d->scale, err)))
        goto done;
    struct kd_train_config tc;
    if ((st = kd_run_train_config(r->p, s, nd + ng, &tc, err)))
        goto done;
    kd_run_note_steps(s, nd + ng, tc.batch, tc.epochs);
    char cp[1024];
    /* rank 0's file on every rank of an MPI job: the one a resume reads */
    snprintf(cp, sizeof cp, "%s/checkpoints/%s.safetensors", r->home, s->name);
    struct kd_run_epoch_log el = {r, sid, s->name};
    tc.on_epoch = kd_run_on_epoch;
    tc.epoch_ctx = &el;
    tc.stop = r->opt->stop;
    tc.checkpoint = cp;
    tc.resume = r->opt->resume;
    kd_run_dist_train(r, &tc);
    struct follow_log fl = {{r, sid, s->name}, s, train, d, g, &v, train ? kd_pipeline_checkpoint_epoch(train, 1) : 0};
    if (train) {
        /* The targets change with the epoch, so a resumed stage starts again
         * (its answers come back from the store). */
        tc.on_epoch = follow_epoch;
        tc.epoch_ctx = &fl;
        tc.checkpoint = NULL;
        tc.resume = 0;
    }
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
    if (!st && r->rank == 0)
        remove(cp); /* the stage is done: its checkpoint has served */
done:
    free(y);
    kd_tensor_release(&vd), kd_tensor_release(&vg), kd_tensor_release(&x), kd_tensor_release(&v);
    return st;
}

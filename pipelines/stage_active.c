/* Active distillation: a distill stage with `select:` and/or `reweight:`.
 *
 *   calibration  the teacher answers the gold `validation:` data once; its
 *                error rate by confidence bin (reweight) and overall (rad)
 *   round 0      with `gold:`, the student first trains on the gold labels
 *   round r      the student scores the pool rows not chosen yet; the
 *                strategy picks (TGT: picks sources and generates from them);
 *                the teacher labels the picks through the store, charged to
 *                the budget only for what the store did not have; with
 *                `reweight`, the new picks are weighed once (debiased: by
 *                the student of the round before, which has not seen them);
 *                the student trains
 *
 * Without `select:` there is one round on the whole pool (reweighting alone;
 * debiased weights come from a reference student trained on the gold rows
 * or on the other folds). Every pick goes to the store's selections table,
 * every weight to example_weights once, at the first epoch it trains in
 * (docs/active.md). */
#include "pipelines/active_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The loss of a batch is losses/' kd_loss_distill_or_gold on the batch's
 * rows of the training set, gathered into workspaces of the round's batch
 * size (allocated once per round). */
struct loss_ctx {
    const struct train_set *ts;
    enum kd_distill_loss loss;
    float T;
    int slam, divide_k;  /* method slam: the loss through the teacher's noise channel */
    float *v, *w;        /* (batch, C), (batch) */
    int32_t *y;          /* (batch) */
    float *alpha;        /* (batch) slam */
    int32_t *k;          /* (batch) slam */
};

static double batch_loss(void *ctx, const float *logits, const size_t *idx, size_t B, size_t C, float *grad)
{
    struct loss_ctx *c = ctx;
    const struct train_set *ts = c->ts;
    for (size_t b = 0; b < B; b++) {
        size_t i = idx[b];
        memcpy(c->v + b * C, ts->v + i * C, C * sizeof(float));
        c->y[b] = ts->y[i];
        c->w[b] = ts->w[i];
        c->alpha[b] = ts->alpha[i];
        c->k[b] = ts->k[i];
    }
    if (c->slam) {
        struct kd_noise_channel ch = {c->alpha, c->k, c->divide_k};
        return kd_loss_slam(c->loss, logits, c->v, c->y, c->w, &ch, B, C, c->T, grad);
    }
    return kd_loss_distill_or_gold(c->loss, logits, c->v, c->y, c->w, B, C, c->T, grad);
}

/* ---------------------------------------------------------- reweighting */

/* Records the weights of the teacher-labelled rows in [from, to) as the
 * weights of epoch `epoch` (1-based, counted across rounds) in
 * example_weights, and their mean as mean_noise_weight. */
static kd_status store_weights(struct active *a, const float *nw, size_t from, size_t to, size_t epoch,
                               struct kd_error *err)
{
    struct train_set *ts = &a->ts;
    struct kd_store_weight *rec = calloc(to - from + 1, sizeof *rec);
    if (!rec)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    size_t n_rec = 0, n_zero = 0;
    double sum = 0.0;
    for (size_t i = from; i < to; i++) {
        if (ts->kind[i] == ROW_GOLD)
            continue;
        sum += nw[i - from];
        n_zero += nw[i - from] == 0.0f;
        rec[n_rec].key = ts->key[i];
        rec[n_rec].dataset = ts->kind[i] == ROW_POOL ? a->pool->root : NULL;
        rec[n_rec].row = ts->row[i];
        rec[n_rec].weight = ts->w[i];
        rec[n_rec].noise = ts->noise[i];
        n_rec++;
    }
    kd_status st = kd_store_put_weights(a->r->store, a->r->run, (int64_t)epoch, rec, n_rec, err);
    if (!st && n_rec)
        st = kd_run_record_metric(a->r, a->sid, "mean_noise_weight", (int64_t)epoch, sum / (double)n_rec, err);
    if (!st && n_rec)
        kd_log(KD_LOG_DEBUG, "  epoch %zu weights (%s): mean %.4f over %zu, %zu at 0", epoch,
               kd_reweight_method_name(a->s->reweight.method), sum / (double)n_rec, n_rec, n_zero);
    free(rec);
    return st;
}

/* Noise-aware methods (confidence, debiased, slam): weighs the rows
 * [from, to) once, when they join the training set, and records the
 * weights as those of epoch `epoch`, the first they train in. zref
 * (to - from, C): a reference student's logits on those rows, which has not
 * fitted them (debiased only; NULL otherwise). Gold rows keep weight 1. */
static kd_status weigh_rows(struct active *a, const struct kd_tensor *zref, size_t from, size_t to, size_t epoch,
                            struct kd_error *err)
{
    struct train_set *ts = &a->ts;
    const struct kd_pipe_reweight *rw = &a->s->reweight;
    if (!rw->on || to <= from)
        return KD_OK;
    size_t n = to - from, C = ts->C;
    struct kd_tensor v = kd_tensor_view(ts->v + from * C, n, C);
    float *nw = malloc(n * sizeof *nw);
    if (!nw)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    kd_status st = KD_OK;
    /* Over the ranks of an MPI job rank 0 alone weighs and records; the
     * others receive its weights below. */
    if (a->r->rank == 0) {
        switch (rw->method) {
        case KD_REWEIGHT_CONFIDENCE:
            kd_reweight_confidence(&a->cal, &v, nw, ts->noise + from);
            break;
        case KD_REWEIGHT_DEBIASED:
            if ((st = kd_reweight(&a->cal, &v, zref, rw->temperature, nw, ts->noise + from, err)))
                kd_error_prefix(err, "stage '%s'", a->s->name);
            break;
        case KD_REWEIGHT_SLAM:
            kd_slam_channel(&a->cal, &v, ts->alpha + from, ts->k + from, ts->noise + from);
            for (size_t i = 0; i < n; i++)
                nw[i] = 1.0f;
            break;
        }
        if (!st) {
            for (size_t i = from; i < to; i++) {
                if (ts->kind[i] == ROW_GOLD) {
                    ts->noise[i] = NAN;
                    ts->alpha[i] = 1.0f;
                    ts->w[i] = ts->iw[i];
                    nw[i - from] = 1.0f;
                } else {
                    ts->w[i] = ts->iw[i] * nw[i - from];
                }
            }
            st = store_weights(a, nw, from, to, epoch, err);
        }
    }
    st = kd_run_dist_rank0_done(a->r, st, err);
    if (!st)
        st = kd_active_share_weights(a, from, to, err);
    free(nw);
    return st;
}

/* weigh_rows for the rows from `first` on, with the logits of `ref` on
 * them as debiased's reference. */
static kd_status weigh_new(struct active *a, struct kd_mlp *ref, size_t first, struct kd_error *err)
{
    const struct kd_pipe_reweight *rw = &a->s->reweight;
    if (!rw->on || a->ts.n <= first)
        return KD_OK;
    struct kd_tensor z = {0};
    kd_status st = KD_OK;
    if (rw->method == KD_REWEIGHT_DEBIASED && a->r->rank == 0) {
        struct kd_tensor x = kd_tensor_view(a->ts.x + first * a->ts.D, a->ts.n - first, a->ts.D);
        if (!(st = kd_tensor_init(&z, a->ts.n - first, a->ts.C, err)))
            st = kd_mlp_predict(ref, &x, &z, err);
    }
    if (!st)
        st = weigh_rows(a, &z, first, a->ts.n, a->epoch + 1, err);
    else if (a->r->ranks > 1) /* rank 0's failure, for every rank */
        st = kd_run_dist_rank0_done(a->r, st, err);
    kd_tensor_release(&z);
    return st;
}

static kd_status on_epoch(void *ctx, struct kd_mlp *m, size_t epoch, double loss, struct kd_error *err)
{
    struct active *a = ctx;
    return kd_run_on_epoch(&a->log, m, a->epoch + epoch, loss, err);
}

/* Trains m on the first n rows of ts for `epochs` epochs (batch order
 * seeded by `round`), in this process alone. The main student's epochs are
 * logged (train_loss, counted across rounds); other students (iwes-two's
 * second, debiased's reference) only train. */
static kd_status train_rows_here(struct active *a, const struct train_set *ts, size_t n, struct kd_mlp *m,
                                 size_t round, size_t epochs, int main_student, const char *what, struct kd_error *err)
{
    const struct kd_pipe_stage *s = a->s;
    struct kd_train_config tc;
    kd_status st = kd_run_train_config(a->r->p, s, n, &tc, err);
    if (st)
        return st;
    tc.epochs = epochs;
    if (main_student && (round == 0 || !s->select.on)) /* its first training: gold alone, or the whole pool */
        kd_run_note_steps(s, n, tc.batch, epochs);
    size_t steps = (n + tc.batch - 1) / tc.batch;
    tc.sched.total_steps = steps * tc.epochs;
    tc.seed = kd_rng_derive(a->r->p->seed, KD_RNG_TRAIN_ROUND, round);
    tc.stop = a->r->opt->stop;
    char label[128];
    snprintf(label, sizeof label, "%s %s %zu", s->name, what, round);
    tc.label = label;
    if (main_student) {
        a->round_epochs = epochs;
        tc.on_epoch = on_epoch;
        tc.epoch_ctx = a;
    }
    const struct kd_pipe_reweight *rw = &s->reweight;
    struct loss_ctx lc = {ts, s->loss, s->temperature, rw->on && rw->method == KD_REWEIGHT_SLAM, rw->divide_k,
                          NULL, NULL, NULL, NULL, NULL};
    size_t bs = tc.batch ? tc.batch : 1; /* kd_mlp_train refuses 0 itself */
    lc.v = malloc(bs * ts->C * sizeof *lc.v);
    lc.w = malloc(bs * sizeof *lc.w);
    lc.y = malloc(bs * sizeof *lc.y);
    lc.alpha = malloc(bs * sizeof *lc.alpha);
    lc.k = malloc(bs * sizeof *lc.k);
    struct kd_tensor x = kd_tensor_view(ts->x, n, ts->D);
    struct kd_train_result res;
    if (!lc.v || !lc.w || !lc.y || !lc.alpha || !lc.k)
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for a batch of %zu", bs);
    else
        st = kd_mlp_train(m, &x, batch_loss, &lc, &tc, &res, err);
    free(lc.v), free(lc.w), free(lc.y), free(lc.alpha), free(lc.k);
    if (st)
        return kd_error_prefix(err, "stage '%s', %s %zu", s->name, what, round);
    return KD_OK;
}

/* train_rows_here on every rank of an MPI job at once: rank 0 trains, as
 * one process would, and its parameters go to every rank (the other ranks
 * only score the pool with them). Rank 0 alone rather than data-parallel:
 * the picks of the next round then come from exactly one process's
 * student, so 2 ranks pick what 1 process picks, and on 2 shared cores
 * data-parallel rounds were slower (docs/scale.md). */
static kd_status train_rows(struct active *a, const struct train_set *ts, size_t n, struct kd_mlp *m, size_t round,
                            size_t epochs, int main_student, const char *what, struct kd_error *err)
{
    struct runner *r = a->r;
    kd_status st = KD_OK;
    if (r->rank == 0)
        st = train_rows_here(a, ts, n, m, round, epochs, main_student, what, err);
    else if (main_student)
        a->round_epochs = epochs;
    if (r->ranks > 1 && !(st = kd_run_dist_rank0_done(r, st, err)))
        st = kd_active_share_student(a, m, err);
    if (!st && main_student)
        a->epoch += epochs;
    return st;
}

/* Trains m on the training set for `epochs` epochs (seeded per round). */
static kd_status train_round(struct active *a, struct kd_mlp *m, size_t round, size_t epochs, int main_student,
                             struct kd_error *err)
{
    return train_rows(a, &a->ts, a->ts.n, m, round, epochs, main_student, "round", err);
}

/* -------------------------------------------------------------- helpers */

/* The teacher's error rate on the validation data stands for its error on
 * inputs it has never seen (RAD's k, the calibration's bins): refused when
 * the teacher is a model of this pipeline that a train stage before this
 * one fitted on some of the same rows (same `datasets:` entry, same row).
 * A teacher loaded from weights carries no record of its data; its user
 * must hold the validation rows out (docs/active.md). */
static kd_status check_held_out(struct active *a, struct kd_error *err)
{
    const struct kd_pipeline *p = a->r->p;
    const struct kd_pipe_teacher *t = a->t->def;
    if (t->kind != KD_TEACHER_MODEL || !t->model[0])
        return KD_OK;
    const struct kd_dataset *v = &a->val->ds;
    size_t nv = kd_dataset_n(v), max_row = 0;
    for (size_t i = 0; i < nv; i++)
        max_row = v->rows[i] > max_row ? v->rows[i] : max_row;
    unsigned char *in_val = calloc(max_row + 1, 1);
    if (!in_val)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nv; i++)
        in_val[v->rows[i]] = 1;
    kd_status st = KD_OK;
    for (const struct kd_pipe_stage *s = p->stages; s < a->s && !st; s++) {
        if (s->kind != KD_STAGE_TRAIN || strcmp(s->model, t->model) != 0)
            continue;
        struct kd_run_data *d = kd_run_dataset(&a->r->data, s->data);
        if (!d || strcmp(d->root, a->val->root) != 0)
            continue;
        size_t shared = 0;
        for (size_t i = 0; i < kd_dataset_n(&d->ds); i++)
            shared += d->ds.rows[i] <= max_row && in_val[d->ds.rows[i]];
        if (shared) {
            char where[400];
            kd_run_where(p, a->s->validation_pos, where, sizeof where);
            st = kd_error_set(err, KD_ERR_CONFIG,
                              "%sstage '%s': teacher '%s' trained on %zu of the %zu examples of '%s' (stage '%s' on "
                              "'%s'): its error rate there is not its error on new inputs; validate on data the "
                              "teacher never trained on",
                              where, a->s->name, t->name, shared, nv, a->val->name, s->name, d->name);
        }
    }
    free(in_val);
    return st;
}

static kd_status calibrate(struct active *a, struct kd_error *err)
{
    const struct kd_pipe_stage *s = a->s;
    struct kd_tensor vv = {0};
    kd_status st = check_held_out(a, err);
    if (!st)
        st = kd_run_teacher_answers(a->r, s, a->t, a->val, &vv, err);
    if (st)
        return st;
    size_t n = kd_dataset_n(&a->val->ds), wrong = 0;
    for (size_t i = 0; i < n; i++)
        wrong += kd_argmax(kd_tensor_row(&vv, i), vv.cols) != (size_t)a->val->ds.y[i];
    a->teacher_error = (double)wrong / (double)n;
    kd_log(KD_LOG_INFO, "  teacher error on '%s': %.4f (%zu of %zu)", a->val->name, a->teacher_error, wrong, n);
    st = kd_run_record_metric(a->r, a->sid, "teacher_error", -1, a->teacher_error, err);
    if (!st && s->reweight.on) {
        /* At least 100 validation examples per bin: a bin's error rate from
         * fewer is mostly noise. */
        size_t bins = kd_calibration_bins(n, s->reweight.bins, KD_CALIBRATION_MIN_PER_BIN);
        if (bins < s->reweight.bins)
            kd_log(KD_LOG_INFO, "  calibration: %zu bins, not %zu: '%s' has %zu examples and each bin needs %d",
                   bins, s->reweight.bins, a->val->name, n, KD_CALIBRATION_MIN_PER_BIN);
        st = kd_calibration_fit(&vv, a->val->ds.y, bins, s->reweight.smoothing, &a->cal, err);
        if (st)
            kd_error_prefix(err, "stage '%s': calibration on '%s'", s->name, a->val->name);
        else
            a->have_cal = 1;
    }
    if (!st && a->have_cal) {
        /* The table the weights come from, in the log and in the store. */
        kd_log(KD_LOG_INFO, "  teacher calibration on '%s' (%zu bins, smoothing %g):", a->val->name, a->cal.n_bins,
               a->cal.smoothing);
        kd_log(KD_LOG_INFO, "    %-21s %8s %7s %8s %9s %5s", "confidence", "examples", "wrong", "p(error)",
               "accuracy", "top-k");
        for (size_t b = 0; b < a->cal.n_bins && !st; b++) {
            kd_log(KD_LOG_INFO, "    [%.6f, %.6f) %8zu %7zu %8.4f %9.4f %5zu", a->cal.lo[b], a->cal.hi[b],
                   a->cal.count[b], a->cal.errors[b], a->cal.error[b],
                   1.0 - (double)a->cal.errors[b] / (double)a->cal.count[b], a->cal.topk[b]);
            struct kd_store_metric m[6] = {
                {"calibration_lo", (int64_t)b, a->cal.lo[b]},
                {"calibration_hi", (int64_t)b, a->cal.hi[b]},
                {"calibration_count", (int64_t)b, (double)a->cal.count[b]},
                {"calibration_error", (int64_t)b, a->cal.error[b]},
                {"calibration_accuracy", (int64_t)b, 1.0 - (double)a->cal.errors[b] / (double)a->cal.count[b]},
                {"calibration_k", (int64_t)b, (double)a->cal.topk[b]}};
            st = kd_store_put_metrics(a->r->store, a->r->run, a->sid, m, 6, err);
        }
    }
    kd_tensor_release(&vv);
    return st;
}

static kd_status evaluate_round(struct active *a, struct kd_mlp *m, size_t round, struct kd_error *err)
{
    if (!a->val || a->r->rank != 0) /* over the ranks: rank 0 records it */
        return KD_OK;
    struct kd_eval ev = {0};
    kd_status st = kd_mlp_evaluate(m, &a->val->ds.x, a->val->ds.y, &ev, err);
    if (!st) {
        kd_log(KD_LOG_INFO, "    student accuracy on '%s': %.4f", a->val->name, ev.accuracy);
        st = kd_run_record_metric(a->r, a->sid, "round_accuracy", (int64_t)round, ev.accuracy, err);
    }
    kd_eval_release(&ev);
    return st;
}

/* ------------------------------------------------------------ the rounds */

static void round_state_release(struct round_state *rs)
{
    free(rs->chosen), free(rs->cand), free(rs->p), free(rs->q), free(rs->sel), free(rs->rec), free(rs->origins);
    free(rs->rows), free(rs->pool_index);
    kd_tensor_release(&rs->logits);
    kd_tensor_release(&rs->logits2);
}

/* Labels the picked pool rows and adds them to the training set. */
static kd_status label_picks(struct active *a, struct round_state *rs, size_t round, const char *strategy,
                             size_t n_sel, struct kd_error *err)
{
    struct kd_run_data *d = a->pool;
    size_t D = a->ts.D, C = a->ts.C;
    struct kd_tensor xs = {0}, vs = {0};
    kd_status st = kd_tensor_init(&xs, n_sel, D, err);
    if (!st)
        st = kd_tensor_init(&vs, n_sel, C, err);
    /* The teacher is asked about the rows as it takes them (raw, for any
     * teacher but an old model file); the student trains on d's scaled rows. */
    const struct kd_tensor *tx = kd_run_teacher_x(a->t->t, d);
    for (size_t i = 0; !st && i < n_sel; i++) {
        size_t row = rs->cand[rs->sel[i].index];
        memcpy(kd_tensor_row(&xs, i), kd_tensor_row(tx, row), D * sizeof(float));
        rs->rows[i] = d->ds.rows[row];
    }
    struct kd_label_stats ls = {0};
    /* a failure above goes to the hand-shake, where the other ranks wait */
    st = kd_active_label(a, st, &xs, rs->rows, kd_budget_left(&rs->budget), &vs, &ls, err);
    if ((st = kd_active_charge(a, &rs->budget, &ls, st, round, err)))
        goto done;
    if ((st = kd_active_ts_reserve(&a->ts, n_sel, err)))
        goto done;
    for (size_t i = 0; i < n_sel; i++) {
        const struct kd_selection *c = &rs->sel[i];
        size_t row = rs->cand[c->index];
        struct kd_hash key = kd_store_input_hash(kd_tensor_row(&xs, i), D);
        rs->rec[i] = (struct kd_store_selection){key, d->root, (int64_t)rs->rows[i], strategy, c->score,
                                                 c->probability, c->weight};
        kd_active_ts_add(&a->ts, kd_tensor_row(&d->ds.x, row), kd_tensor_row(&vs, i), -1, (float)c->weight, key,
                         (int64_t)rs->rows[i], ROW_POOL);
        rs->chosen[row] = 1;
        rs->pool_index[rs->n_chosen + i] = row;
    }
    rs->n_chosen += n_sel;
    if (a->r->rank == 0) /* the picks are recorded once, in rank 0's store */
        st = kd_store_put_selections(a->r->store, a->r->run, (int64_t)round, rs->rec, n_sel, err);
    kd_log(KD_LOG_INFO, "    %zu picked by %s: %zu asked, %zu from the store", n_sel, strategy, ls.queried, ls.cached);
done:
    kd_tensor_release(&xs);
    kd_tensor_release(&vs);
    return st;
}

static kd_status run_rounds(struct active *a, struct run_model *m, struct kd_error *err)
{
    const struct kd_pipe_stage *s = a->s;
    const struct kd_pipe_select *sel = &s->select;
    struct kd_run_data *d = a->pool;
    size_t N = kd_dataset_n(&d->ds), C = a->ts.C, R = sel->rounds;
    int two = sel->strategy == KD_SELECT_IWES_TWO, generating = sel->tgt || sel->augment;
    /* share of each round's queries spent on inputs made from its picks */
    double share = sel->tgt ? sel->tgt_share : sel->augment ? sel->aug_share : 0.0;
    struct round_state rs;
    memset(&rs, 0, sizeof rs);
    kd_status st = kd_budget_init(&rs.budget, sel->budget, kd_budget_with_generated(N, share), R, err);
    if (st)
        return kd_error_prefix(err, "stage '%s'", s->name);
    if (kd_budget_capped(&rs.budget) && !generating)
        kd_log(KD_LOG_INFO, "  budget: %zu queries asked for, capped to the %zu examples of '%s'", sel->budget, N,
               d->name);
    else if (kd_budget_capped(&rs.budget))
        kd_log(KD_LOG_INFO, "  budget: %zu queries asked for, capped to %zu: the %zu examples of '%s' and the %zu "
               "inputs made from them", sel->budget, rs.budget.total, N, d->name, rs.budget.total - N);
    size_t round_max = kd_budget_round_max(&rs.budget);
    struct kd_mlp *second = NULL;
    struct active_gen gen;
    memset(&gen, 0, sizeof gen);
    rs.chosen = calloc(N, 1);
    rs.cand = malloc(N * sizeof *rs.cand);
    rs.p = malloc(N * C * sizeof *rs.p);
    rs.q = two ? malloc(N * C * sizeof *rs.q) : NULL;
    rs.sel = malloc(round_max * sizeof *rs.sel);
    rs.rec = malloc(round_max * sizeof *rs.rec);
    rs.origins = malloc(round_max * sizeof *rs.origins);
    rs.rows = malloc(round_max * sizeof *rs.rows);
    rs.pool_index = malloc(N * sizeof *rs.pool_index);
    st = rs.chosen && rs.cand && rs.p && (!two || rs.q) && rs.sel && rs.rec && rs.origins && rs.rows && rs.pool_index
                       ? KD_OK
                       : kd_error_set(err, KD_ERR_NOMEM, "out of memory for the pool of %zu", N);
    if (!st)
        st = kd_tensor_init(&rs.logits, N, C, err);
    if (!st && two)
        st = kd_tensor_init(&rs.logits2, N, C, err);
    if (!st && two)
        st = kd_run_build_model(a->r->p, m->def, a->ts.D, C, kd_rng_derive(a->r->p->seed, KD_RNG_SECOND_STUDENT, 0), &second, err);
    if (!st && generating)
        st = kd_active_gen_open(a, &gen, err);
    if (st)
        goto done;
    size_t resumed = 0;
    if ((st = kd_active_restore_round(a, &rs, m, &second, &resumed, err)))
        goto done;
    int trained = resumed > 0;
    if (a->gold && !resumed) {
        /* Round 0: the gold labels alone, so that round 1 already has a
         * student to score the pool with. */
        kd_log(KD_LOG_INFO, "  round 0: the student learns the %zu gold labels of '%s'", kd_dataset_n(&a->gold->ds),
               a->gold->name);
        if ((st = train_round(a, m->net, 0, a->round_epochs, 1, err)))
            goto done;
        if (second && (st = train_round(a, second, 0, a->round_epochs, 0, err)))
            goto done;
        if ((st = evaluate_round(a, m->net, 0, err)))
            goto done;
        trained = 1;
    }
    size_t round_epochs = a->round_epochs;
    for (size_t round = resumed + 1; round <= R && rs.n_chosen < N; round++) {
        size_t quota = kd_budget_quota(&rs.budget, round, kd_budget_with_generated(N - rs.n_chosen, share));
        if (quota == 0)
            continue;
        size_t n_gen = generating ? (size_t)floor((double)quota * share + 0.5) : 0;
        if (n_gen >= quota)
            n_gen = quota - 1;
        size_t n_src = quota - n_gen;
        if (n_src > N - rs.n_chosen) {   /* rounding: never more sources than are left */
            n_src = N - rs.n_chosen;
            n_gen = quota - n_src;
        }
        /* An untrained student's scores say nothing: round 1 without gold
         * labels picks at random (kd's definition). */
        enum kd_select_kind kind = trained ? sel->strategy : KD_SELECT_RANDOM;
        kd_log(KD_LOG_INFO, "  round %zu/%zu: %s picks %zu of %zu unlabelled examples%s", round, R,
               kd_select_name(kind), n_src, N - rs.n_chosen, n_gen ? "" : "");
        size_t nc = 0;
        for (size_t i = 0; i < N; i++)
            if (!rs.chosen[i])
                rs.cand[nc++] = i;
        if (kind != KD_SELECT_RANDOM) {
            /* over the ranks: each scores its share, rank 0 gets them all */
            if ((st = kd_active_candidate_probs(a, m->net, &rs.logits, rs.cand, nc, rs.p, err)))
                goto done;
            if (two && (st = kd_active_candidate_probs(a, second, &rs.logits2, rs.cand, nc, rs.q, err)))
                goto done;
        }
        struct kd_select_config sc;
        kd_select_config_init(&sc);
        sc.kind = kind;
        sc.budget = n_src;
        sc.weight_cap = sel->weight_cap;
        sc.teacher_error = isnan(a->teacher_error) ? 0.0 : a->teacher_error;
        sc.seed = kd_rng_derive(a->r->p->seed, KD_RNG_SELECT, round);
        size_t n_sel = 0;
        if ((st = kd_active_select(a, &sc, rs.p, two ? rs.q : NULL, nc, C, rs.sel, &n_sel, err))) {
            kd_error_prefix(err, "stage '%s', round %zu", s->name, round);
            goto done;
        }
        size_t first_new = a->ts.n;
        if ((st = label_picks(a, &rs, round, kd_select_name(kind), n_sel, err)))
            goto done;
        if (n_gen && (st = kd_active_generate(a, &rs, &gen, m->net, round, n_sel, n_gen, err)))
            goto done;
        /* The frozen methods weigh this round's picks once, now; debiased's
         * reference is the student of the round before, which has not
         * trained on them (kd's definition). */
        if ((st = weigh_new(a, m->net, first_new, err)))
            goto done;
        if (sel->retrain) {
            kd_mlp_free(m->net);
            m->net = NULL;
            if ((st = kd_run_build_model(a->r->p, m->def, a->ts.D, C, a->r->p->seed, &m->net, err)) ||
                (st = kd_input_scale_copy(&m->net->scale, &a->pool->scale, err)))
                goto done;
        }
        if ((st = train_round(a, m->net, round, round_epochs, 1, err)))
            goto done;
        if (second && (st = train_round(a, second, round, round_epochs, 0, err)))
            goto done;
        trained = 1;
        kd_log(KD_LOG_INFO, "    %zu examples labelled so far, %zu of the %zu-query budget spent", a->ts.n,
               rs.budget.spent, sel->budget);
        struct kd_store_metric mt[2] = {{"round_examples", (int64_t)round, (double)a->ts.n},
                                        {"round_queries", (int64_t)round, (double)rs.budget.spent}};
        if ((st = kd_store_put_metrics(a->r->store, a->r->run, a->sid, mt, 2, err)))
            goto done;
        if ((st = evaluate_round(a, m->net, round, err)))
            goto done;
        if (!generating && (st = kd_active_save_round(a, rs.pool_index, m->net, second, round, rs.budget.spent, err)))
            goto done;
    }
    st = kd_active_gen_save(a, &gen, err);
    if (!st)
        st = kd_run_record_metric(a->r, a->sid, "queries", -1, (double)rs.budget.spent, err);
done:
    round_state_release(&rs);
    kd_mlp_free(second);
    kd_active_gen_release(&gen);
    return st;
}

/* Debiased without selection: the reference logits on the pool rows
 * [first, n) come from students that never trained on them: one trained
 * on the gold rows alone, or with `folds: K` K students, student f trained
 * on the gold rows and the pool rows outside fold f (row j of the pool is
 * in fold j mod K) and scoring fold f. The main student then trains afresh
 * on the frozen weights. Other methods weigh directly. */
static kd_status weigh_whole_pool(struct active *a, struct run_model *m, size_t first, struct kd_error *err)
{
    const struct kd_pipe_reweight *rw = &a->s->reweight;
    if (!rw->on || rw->method != KD_REWEIGHT_DEBIASED)
        return weigh_new(a, NULL, first, err);
    if (a->r->rank != 0) /* over the ranks: rank 0 weighs alone, the others receive its weights */
        return weigh_rows(a, NULL, first, a->ts.n, a->epoch + 1, err);
    struct train_set *ts = &a->ts;
    size_t n = ts->n - first, K = rw->folds ? rw->folds : 1, D = ts->D, C = ts->C;
    struct kd_tensor z = {0}, xf = {0}, zf = {0};
    struct train_set sub = {0};
    struct kd_mlp *ref = NULL;
    int weighed = 0;
    size_t *rows = malloc((n + 1) * sizeof *rows);
    kd_status st = rows ? kd_tensor_init(&z, n, C, err) : kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    if (st)
        goto done;
    double t0 = kd_time_now();
    for (size_t f = 0; f < K; f++) {
        /* The reference students start from their own initial weights:
         * index 1 + f of the second-student purpose (0 is iwes-two's). */
        if ((st = kd_run_build_model(a->r->p, m->def, D, C,
                                     kd_rng_derive(a->r->p->seed, KD_RNG_SECOND_STUDENT, 1 + f), &ref, err)))
            goto done;
        size_t nf = 0;
        if (!rw->folds) {
            if ((st = train_rows_here(a, ts, first, ref, 0, a->round_epochs, 0, "reference on gold", err)))
                goto done;
            for (size_t j = 0; j < n; j++)
                rows[nf++] = j;
        } else {
            sub.D = D;
            sub.C = C;
            sub.n = 0;
            if ((st = kd_active_ts_reserve(&sub, ts->n, err)))
                goto done;
            for (size_t i = 0; i < ts->n; i++) {
                if (i >= first && (i - first) % K == f)
                    rows[nf++] = i - first;
                else
                    kd_active_ts_copy_row(&sub, ts, i);
            }
            if ((st = train_rows_here(a, &sub, sub.n, ref, 0, a->round_epochs, 0, "reference for fold", err)))
                goto done;
        }
        kd_tensor_release(&xf);
        kd_tensor_release(&zf);
        if ((st = kd_tensor_init(&xf, nf, D, err)) || (st = kd_tensor_init(&zf, nf, C, err)))
            goto done;
        for (size_t j = 0; j < nf; j++)
            memcpy(kd_tensor_row(&xf, j), ts->x + (first + rows[j]) * D, D * sizeof(float));
        if ((st = kd_mlp_predict(ref, &xf, &zf, err)))
            goto done;
        for (size_t j = 0; j < nf; j++)
            memcpy(kd_tensor_row(&z, rows[j]), kd_tensor_row(&zf, j), C * sizeof(float));
        kd_mlp_free(ref);
        ref = NULL;
    }
    if (rw->folds)
        kd_log(KD_LOG_INFO, "  debiased weights from %zu out-of-fold reference students (%.1f s)", K,
               kd_time_now() - t0);
    else
        kd_log(KD_LOG_INFO, "  debiased weights from a reference student trained on the %zu gold rows (%.1f s)",
               first, kd_time_now() - t0);
    st = weigh_rows(a, &z, first, ts->n, a->epoch + 1, err);
    weighed = 1;
done:
    if (st && !weighed && a->r->ranks > 1) /* rank 0's failure, for every rank */
        st = kd_run_dist_rank0_done(a->r, st, err);
    free(rows);
    kd_mlp_free(ref);
    kd_active_ts_release(&sub);
    kd_tensor_release(&z);
    kd_tensor_release(&xf);
    kd_tensor_release(&zf);
    return st;
}

/* Reweighting without selection: the whole pool, one round. */
static kd_status run_whole_pool(struct active *a, struct run_model *m, struct kd_error *err)
{
    struct kd_run_data *d = a->pool;
    struct kd_tensor vd = {0};
    size_t first = a->ts.n;   /* the gold rows come first */
    kd_status st = kd_run_teacher_answers(a->r, a->s, a->t, d, &vd, err);
    if (!st)
        st = kd_active_ts_reserve(&a->ts, kd_dataset_n(&d->ds), err);
    if (st)
        goto done;
    const struct kd_tensor *tx = kd_run_teacher_x(a->t->t, d);
    for (size_t i = 0; i < kd_dataset_n(&d->ds); i++) {
        const float *x = kd_tensor_row(&d->ds.x, i);
        kd_active_ts_add(&a->ts, x, kd_tensor_row(&vd, i), -1, 1.0f, kd_store_input_hash(kd_tensor_row(tx, i), a->ts.D),
                         (int64_t)d->ds.rows[i], ROW_POOL);
    }
    st = weigh_whole_pool(a, m, first, err);
    if (!st)
        st = train_round(a, m->net, 1, a->round_epochs, 1, err);
done:
    kd_tensor_release(&vd);
    return st;
}

kd_status kd_run_stage_active(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
    struct active a;
    memset(&a, 0, sizeof a);
    a.r = r;
    a.s = s;
    a.sid = sid;
    a.teacher_error = NAN;
    a.log = (struct kd_run_epoch_log){r, sid, s->name};
    a.round_epochs = s->select.on && s->select.round_epochs ? s->select.round_epochs : s->epochs;
    kd_status st = kd_run_stage_data(r, s, s->data, s->data_pos, 0, &a.pool, err);
    if (!st && s->gold[0])
        st = kd_run_stage_data(r, s, s->gold, s->gold_pos, 1, &a.gold, err);
    if (!st && s->validation[0])
        st = kd_run_stage_data(r, s, s->validation, s->validation_pos, 1, &a.val, err);
    if (!st)
        st = kd_run_open_teacher(r, s, s->teacher, kd_dataset_d(&a.pool->ds), &a.t, err);
    if (st)
        return st;
    size_t D = kd_dataset_d(&a.pool->ds), C = a.t->t->c;
    struct kd_run_data *other[2] = {a.gold, a.val};
    struct kd_pos other_pos[2] = {s->gold_pos, s->validation_pos};
    for (int k = 0; k < 2; k++)
        if (other[k] && kd_dataset_d(&other[k]->ds) != D) {
            char where[400];
            kd_run_where(r->p, other_pos[k], where, sizeof where);
            return kd_error_set(err, KD_ERR_SHAPE, "%sdataset '%s' has %zu features, '%s' has %zu", where,
                                other[k]->name, kd_dataset_d(&other[k]->ds), a.pool->name, D);
        }
    a.ts.D = D;
    a.ts.C = C;
    if (s->select.on && s->select.tgt) {
        /* Refused before anything is asked of the teacher. */
        a.tgt_mode = s->select.tgt_mode_set ? s->select.tgt_mode : a.t->t->net ? KD_TGT_GRADIENT : KD_TGT_RANDOM;
        if (a.tgt_mode == KD_TGT_GRADIENT && !a.t->t->net) {
            char where[400];
            kd_run_where(r->p, s->select.tgt_pos, where, sizeof where);
            return kd_error_set(err, KD_ERR_CONFIG,
                                "%sstage '%s': TGT gradient exploration needs a kd network teacher (kind model); "
                                "teacher '%s' is not one: use tgt mode random",
                                where, s->name, a.t->def->name);
        }
    }
    struct run_model *m = kd_run_find_model(r, s->model);
    kd_mlp_free(m->net);
    m->net = NULL;
    if ((st = kd_run_build_model(r->p, m->def, D, C, r->p->seed, &m->net, err)) ||
        (st = kd_input_scale_copy(&m->net->scale, &a.pool->scale, err)))
        goto done;
    if (a.val && (s->reweight.on || (s->select.on && s->select.strategy == KD_SELECT_RAD)) &&
        (st = calibrate(&a, err)))
        goto done;
    if (a.gold) {
        size_t ng = kd_dataset_n(&a.gold->ds);
        if ((st = kd_active_ts_reserve(&a.ts, ng, err)))
            goto done;
        const struct kd_tensor *tx = kd_run_teacher_x(a.t->t, a.gold);
        for (size_t i = 0; i < ng; i++) {
            const float *x = kd_tensor_row(&a.gold->ds.x, i);
            kd_active_ts_add(&a.ts, x, NULL, a.gold->ds.y[i], 1.0f, kd_store_input_hash(kd_tensor_row(tx, i), D),
                             (int64_t)a.gold->ds.rows[i], ROW_GOLD);
        }
    }
    double t0 = kd_time_now();
    st = s->select.on ? run_rounds(&a, m, err) : run_whole_pool(&a, m, err);
    if (st)
        goto done;
    kd_log(KD_LOG_INFO, "  student '%s' (%zu parameters): %zu training examples (%zu gold), %s loss, T %g, in %.1f s",
           s->model, m->net->n_params, a.ts.n, a.gold ? kd_dataset_n(&a.gold->ds) : 0, kd_distill_loss_name(s->loss),
           (double)s->temperature, kd_time_now() - t0);
    st = kd_run_save_model(r, s->model, m->net, err);
    if (!st && s->select.on && r->rank == 0)
        kd_active_remove_round_files(&a); /* the stage is done: its rounds have served */
done:
    kd_active_ts_release(&a.ts);
    kd_calibration_release(&a.cal);
    return st;
}

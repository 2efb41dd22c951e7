/* The inputs an active stage makes rather than picks: strategy tgt (moves
 * in an autoencoder's latent space, sampling/tgt.c) and strategy augment
 * (shifts and pixel noise, sampling/augment.c). Each round, one input is
 * made from each of the round's source picks in turn; the teacher labels
 * it through the store (origin: its source) and it joins the training set
 * (docs/active.md). Over the ranks of an MPI job, rank 0 alone makes the
 * inputs and every rank receives them (pipelines/stage_active_dist.c). */
#include "pipelines/active_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

kd_status kd_active_charge(struct active *a, struct kd_budget *b, const struct kd_label_stats *ls, kd_status st,
                           size_t round, struct kd_error *err)
{
    kd_budget_charge(b, ls->queried);
    a->r->sum->queries += ls->queried;
    a->r->sum->cached += ls->cached;
    if (st)
        kd_error_prefix(err, "stage '%s', round %zu", a->s->name, round);
    return st;
}

/* The autoencoder TGT moves inputs with: the file `tgt.autoencoder`, or one
 * trained on `tgt.data` (default: the pool) and saved under the output's
 * models/ folder. */
static kd_status get_autoencoder(struct active *a, struct kd_autoencoder **ae, struct kd_error *err)
{
    const struct kd_pipe_select *sel = &a->s->select;
    char where[400];
    kd_run_where(a->r->p, sel->tgt_pos, where, sizeof where);
    kd_status st;
    if (sel->tgt_autoencoder) {
        if ((st = kd_autoencoder_load(sel->tgt_autoencoder, ae, err)))
            return kd_error_prefix(err, "%sstage '%s'", where, a->s->name);
        if ((*ae)->d != a->ts.D) {
            st = kd_error_set(err, KD_ERR_SHAPE, "%sstage '%s': autoencoder '%s' takes %zu inputs, '%s' has %zu",
                              where, a->s->name, sel->tgt_autoencoder, (*ae)->d, a->pool->name, a->ts.D);
            kd_autoencoder_free(*ae);
            *ae = NULL;
            return st;
        }
        kd_log(KD_LOG_INFO, "  autoencoder: %s (%zu -> %zu)", sel->tgt_autoencoder, (*ae)->d, (*ae)->e);
        return KD_OK;
    }
    struct kd_run_data *d = a->pool;
    if (sel->tgt_data[0]) {
        if ((st = kd_run_stage_data(a->r, a->s, sel->tgt_data, sel->tgt_data_pos, 0, &d, err)))
            return st;
        if (kd_dataset_d(&d->ds) != a->ts.D) {
            kd_run_where(a->r->p, sel->tgt_data_pos, where, sizeof where);
            return kd_error_set(err, KD_ERR_SHAPE, "%sstage '%s': the autoencoder's data '%s' has %zu features, '%s' "
                                "has %zu", where, a->s->name, d->name, kd_dataset_d(&d->ds), a->pool->name, a->ts.D);
        }
    }
    struct kd_autoencoder_config cfg;
    kd_autoencoder_config_init(&cfg);
    cfg.hidden = sel->tgt_hidden;
    cfg.latent = sel->tgt_latent;
    cfg.epochs = sel->tgt_epochs;
    cfg.seed = a->r->p->seed;
    cfg.stop = a->r->opt->stop;
    double mse = 0.0, t0 = kd_time_now();
    if ((st = kd_autoencoder_train(&d->ds.x, &cfg, ae, &mse, err)))
        return kd_error_prefix(err, "stage '%s': training the TGT autoencoder on '%s'", a->s->name, d->name);
    char path[1024];
    snprintf(path, sizeof path, "%s/models/%s-autoencoder.safetensors", a->r->p->output, a->s->name);
    kd_log(KD_LOG_INFO, "  autoencoder %zu -> %zu -> %zu trained on '%s' (%zu rows) in %.1f s (reconstruction MSE "
           "%.5f): %s", a->ts.D, cfg.hidden, cfg.latent, d->name, kd_dataset_n(&d->ds), kd_time_now() - t0, mse, path);
    if (!(st = kd_autoencoder_save(*ae, path, err)))
        st = kd_run_add_artefact(a->r, path, "autoencoder", err);
    if (!st)
        st = kd_run_record_metric(a->r, a->sid, "autoencoder_mse", -1, mse, err);
    return st;
}

kd_status kd_active_gen_open(struct active *a, struct active_gen *g, struct kd_error *err)
{
    memset(g, 0, sizeof *g);
    g->kept.owned = 1;
    const struct kd_pipe_select *sel = &a->s->select;
    if (sel->tgt) /* over the ranks, rank 0 alone moves inputs: it alone needs one */
        return kd_run_dist_rank0_done(a->r, a->r->rank == 0 ? get_autoencoder(a, &g->ae, err) : KD_OK, err);
    /* augment: noise is clamped to the range of the pool's features */
    const struct kd_tensor *x = &a->pool->ds.x;
    size_t n = x->rows * x->cols;
    g->lo = n ? x->data[0] : 0.0f;
    g->hi = g->lo;
    for (size_t i = 1; i < n; i++) {
        g->lo = x->data[i] < g->lo ? x->data[i] : g->lo;
        g->hi = x->data[i] > g->hi ? x->data[i] : g->hi;
    }
    return KD_OK;
}

void kd_active_gen_release(struct active_gen *g)
{
    kd_autoencoder_free(g->ae);
    free(g->kept.data);
    memset(g, 0, sizeof *g);
}

/* The strategy name generated inputs are recorded under. */
static const char *gen_strategy(const struct active *a)
{
    if (a->s->select.augment)
        return "augment";
    return a->tgt_mode == KD_TGT_GRADIENT ? "tgt-gradient" : "tgt-random";
}

/* gen (n_gen, D) from src (n_gen, D) by the stage's strategy; div (n_gen)
 * the teacher-student KL at each new input (TGT with a network teacher;
 * NaN otherwise). */
static kd_status make_inputs(struct active *a, struct active_gen *g, struct kd_mlp *student, size_t round,
                             const struct kd_tensor *src, struct kd_tensor *gen, double *div, struct kd_error *err)
{
    const struct kd_pipe_select *sel = &a->s->select;
    kd_status st;
    if (sel->augment) {
        struct kd_augment_config ac;
        kd_augment_config_init(&ac);
        ac.noise = sel->aug_noise;
        ac.shift = sel->aug_shift;
        ac.width = sel->aug_width;
        ac.lo = g->lo;
        ac.hi = g->hi;
        ac.fill = g->lo;
        ac.seed = kd_rng_derive(a->r->p->seed, KD_RNG_AUGMENT, round);
        for (size_t i = 0; i < src->rows; i++)
            div[i] = NAN;
        if ((st = kd_augment_generate(&ac, src, gen, err))) {
            char where[400];
            kd_run_where(a->r->p, sel->aug_pos.line ? sel->aug_pos : sel->strategy_pos, where, sizeof where);
            kd_error_prefix(err, "%sstage '%s', round %zu", where, a->s->name, round);
        }
        return st;
    }
    struct kd_tgt_config tc;
    kd_tgt_config_init(&tc);
    tc.mode = a->tgt_mode;
    tc.sigma = sel->tgt_sigma;
    tc.steps = sel->tgt_steps;
    tc.step_size = sel->tgt_step_size;
    tc.seed = kd_rng_derive(a->r->p->seed, KD_RNG_TGT, round);
    struct kd_mlp *tnet = a->t->t->net;   /* NULL for exec and table teachers */
    if ((st = kd_tgt_generate(g->ae, &tc, tnet, tnet ? student : NULL, src, gen, div, err)))
        kd_error_prefix(err, "stage '%s', round %zu", a->s->name, round);
    return st;
}

kd_status kd_active_generate(struct active *a, struct round_state *rs, struct active_gen *g, struct kd_mlp *student,
                             size_t round, size_t n_src, size_t n_gen, struct kd_error *err)
{
    struct kd_run_data *d = a->pool;
    size_t D = a->ts.D, C = a->ts.C;
    size_t first = a->ts.n - n_src;   /* the sources are the rows just added */
    struct kd_tensor src = {0}, gen = {0}, vg = {0}, ask = {0};
    double *div = malloc(n_gen * sizeof *div);
    kd_status st = div ? KD_OK : kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    if (!st)
        st = kd_tensor_init(&src, n_gen, D, err);
    if (!st)
        st = kd_tensor_init(&gen, n_gen, D, err);
    if (!st)
        st = kd_tensor_init(&vg, n_gen, C, err);
    /* Generated inputs live in the student's scaled space; a teacher of raw
     * inputs is asked about them mapped back (the inverse of the pool's scaling). */
    int raw_teacher = kd_run_teacher_x(a->t->t, d) != &d->ds.x;
    if (!st && raw_teacher)
        st = kd_tensor_init(&ask, n_gen, D, err);
    /* every rank has its buffers before rank 0 fills them */
    if ((st = kd_run_dist_agree(a->r, st, err)))
        goto done;
    const char *strategy = gen_strategy(a);
    if (a->r->rank == 0) {
        for (size_t i = 0; i < n_gen; i++)
            memcpy(kd_tensor_row(&src, i), a->ts.x + (first + i % n_src) * D, D * sizeof(float));
        st = make_inputs(a, g, student, round, &src, &gen, div, err);
        if (!st && raw_teacher) {
            memcpy(ask.data, gen.data, n_gen * D * sizeof(float));
            st = kd_input_scale_invert(&d->scale, &ask, err);
        }
    }
    if ((st = kd_active_share_generated(a, st, &gen, raw_teacher ? &ask : NULL, div, err)))
        goto done;
    for (size_t i = 0; i < n_gen; i++) {
        size_t j = first + i % n_src;
        rs->origins[i] = kd_store_origin_none();
        rs->origins[i].dataset = d->root;
        rs->origins[i].strategy = strategy;
        rs->origins[i].round = (int64_t)round;
        rs->origins[i].has_source = 1;
        rs->origins[i].source = a->ts.key[j];
        rs->origins[i].source_row = a->ts.row[j];
    }
    const struct kd_tensor *tx = raw_teacher ? &ask : &gen;
    struct kd_label_stats ls = {0};
    st = kd_active_label_generated(a, tx, rs->origins, kd_budget_left(&rs->budget), &vg, &ls, err);
    if ((st = kd_active_charge(a, &rs->budget, &ls, st, round, err)))
        goto done;
    if ((st = kd_active_ts_reserve(&a->ts, n_gen, err)))
        goto done;
    double mean_div = 0.0;
    for (size_t i = 0; i < n_gen; i++) {
        struct kd_hash key = kd_store_input_hash(kd_tensor_row(tx, i), D);
        double score = isnan(div[i]) ? 0.0 : div[i];
        mean_div += score;
        rs->rec[i] = (struct kd_store_selection){key, NULL, -1, strategy, score, 1.0, 1.0};
        kd_active_ts_add(&a->ts, kd_tensor_row(&gen, i), kd_tensor_row(&vg, i), -1, 1.0f, key, -1, ROW_GENERATED);
    }
    if (a->r->rank == 0) /* recorded once, in rank 0's store */
        st = kd_store_put_selections(a->r->store, a->r->run, (int64_t)round, rs->rec, n_gen, err);
    /* keep the generated inputs for the NPY artefact */
    if (!st) {
        size_t at = g->kept.rows;
        float *grown = realloc(g->kept.data, (at + n_gen) * D * sizeof(float));
        if (!grown) {
            st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        } else {
            /* as the teacher was asked (the file's units): the rows its selections and answers are keyed by */
            memcpy(grown + at * D, tx->data, n_gen * D * sizeof(float));
            g->kept.data = grown;
            g->kept.rows = at + n_gen;
            g->kept.cols = D;
        }
    }
    if (a->t->t->net && a->s->select.tgt)
        kd_log(KD_LOG_INFO, "    %zu generated by %s: %zu asked, %zu from the store, mean teacher-student KL %.4f",
               n_gen, strategy, ls.queried, ls.cached, mean_div / (double)n_gen);
    else
        kd_log(KD_LOG_INFO, "    %zu generated by %s: %zu asked, %zu from the store", n_gen, strategy, ls.queried,
               ls.cached);
done:
    free(div);
    kd_tensor_release(&src);
    kd_tensor_release(&gen);
    kd_tensor_release(&vg);
    kd_tensor_release(&ask);
    return st;
}

kd_status kd_active_gen_save(struct active *a, struct active_gen *g, struct kd_error *err)
{
    if (!g->kept.rows)
        return KD_OK;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s-generated.npy", a->r->p->output, a->s->name);
    struct kd_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.x = kd_tensor_view(g->kept.data, g->kept.rows, g->kept.cols);
    kd_status st = kd_data_save_npy(&ds, path, NULL, err);
    if (!st)
        st = kd_run_add_artefact(a->r, path, "npy", err);
    if (!st)
        kd_log(KD_LOG_INFO, "  %zu generated inputs: %s", g->kept.rows, path);
    return st;
}

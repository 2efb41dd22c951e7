/* Active distillation over the ranks of an MPI job (docs/scale.md,
 * "Selection and reweighting over ranks"). With one rank every function
 * here does what the stage did on its own: predict, kd_select,
 * kd_teacher_label, kd_teacher_label_origins.
 *
 * With N ranks, a round goes:
 *   scores     each rank predicts its share of the candidates (rows
 *              [nc k / N, nc (k + 1) / N) of them) with its copy of the
 *              student, the same network on every rank (rank 0's, see
 *              training below); the probabilities are gathered at rank 0
 *   selection  rank 0 alone runs kd_select (the seed of the round) and
 *              broadcasts the picks, so every rank adds the same rows
 *   labelling  the picks go through the sharded labelling of a label
 *              stage (kd_run_dist_label): rank 0 looks the store up, keeps
 *              to the budget, hands out the missing batches and stores the
 *              answers; every rank receives them and rank 0's counts
 *   generating (tgt, augment) rank 0 alone makes the round's inputs from
 *              its sources, as one process does (TGT's autoencoder is
 *              trained or loaded on rank 0 alone); the inputs are broadcast
 *              and labelled as the picks are, each answer recorded by rank 0
 *              with its origin (source, strategy, round)
 *   weights    rank 0 weighs the new rows and records them; the weights
 *              are broadcast (pipelines/stage_active.c)
 *   training   rank 0 trains the student as one process does, the other
 *              ranks wait (sleeping) and receive its parameters: the next
 *              round's scores come from one process's student, so the
 *              picks are exactly one process's (data-parallel training
 *              differs in the last bits, and the picks near a round's cut
 *              drift apart over rounds; docs/scale.md). */
#include "pipelines/active_impl.h"

#include <stdlib.h>
#include <string.h>

#include "dist/kd_dist.h"

/* Softmax rows of logits for the listed rows: p (n, C). */
static void probs_of_rows(const struct kd_tensor *logits, const size_t *rows, size_t n, float *p)
{
    size_t C = logits->cols;
    for (size_t i = 0; i < n; i++)
        kd_softmax(kd_tensor_row(logits, rows ? rows[i] : i), 1, C, 1.0f, p + i * C);
}

kd_status kd_active_candidate_probs(struct active *a, struct kd_mlp *net, struct kd_tensor *logits, const size_t *cand,
                                    size_t nc, float *p, struct kd_error *err)
{
    const struct kd_tensor *x = &a->pool->ds.x;
    struct runner *r = a->r;
    if (r->ranks <= 1) {
        kd_status st = kd_mlp_predict(net, x, logits, err);
        if (!st)
            probs_of_rows(logits, cand, nc, p);
        return st;
    }
    size_t R = (size_t)r->ranks, k = (size_t)r->rank, D = x->cols, C = logits->cols;
    size_t lo = nc * k / R, hi = nc * (k + 1) / R;
    size_t *at = malloc((R + 1) * sizeof *at);
    struct kd_tensor xs = {0}, zs = {0};
    kd_status st = at ? KD_OK : kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    if (!st && hi > lo) {
        if (!(st = kd_tensor_init(&xs, hi - lo, D, err)) && !(st = kd_tensor_init(&zs, hi - lo, C, err))) {
            for (size_t i = lo; i < hi; i++)
                memcpy(kd_tensor_row(&xs, i - lo), kd_tensor_row(x, cand[i]), D * sizeof(float));
            if (!(st = kd_mlp_predict(net, &xs, &zs, err)))
                probs_of_rows(&zs, NULL, hi - lo, p + lo * C);
        }
    }
    kd_tensor_release(&xs);
    kd_tensor_release(&zs);
    /* a rank that failed fails every rank, before the gather it would miss */
    st = kd_run_dist_agree(r, st, err);
    if (!st) {
        for (size_t j = 0; j <= R; j++)
            at[j] = nc * j / R * C * sizeof(float);
        st = kd_dist_gather(p, at, 0, err);
    }
    free(at);
    return st;
}

kd_status kd_active_select(struct active *a, const struct kd_select_config *sc, const float *p, const float *q,
                           size_t nc, size_t C, struct kd_selection *out, size_t *n_out, struct kd_error *err)
{
    struct runner *r = a->r;
    kd_status st = KD_OK;
    *n_out = 0;
    if (r->rank == 0)
        st = kd_select(sc, p, q, nc, C, out, n_out, err);
    if (r->ranks <= 1)
        return st;
    if ((st = kd_run_dist_outcome(r, st, err)))
        return st;
    uint64_t n = *n_out;
    if ((st = kd_dist_broadcast(&n, sizeof n, 0, err)))
        return st;
    if (n > sc->budget || n > nc)
        return kd_error_set(err, KD_ERR_ARG, "rank 0 picked %llu of %zu candidates (budget %zu)",
                            (unsigned long long)n, nc, sc->budget);
    *n_out = (size_t)n;
    return kd_dist_broadcast(out, *n_out * sizeof *out, 0, err);
}

kd_status kd_active_label(struct active *a, kd_status before, const struct kd_tensor *xs, const size_t *rows,
                          size_t max_queries, struct kd_tensor *vs, struct kd_label_stats *ls, struct kd_error *err)
{
    struct runner *r = a->r;
    if (r->ranks <= 1)
        return before ? before : kd_teacher_label(a->t->t, xs, a->pool->root, rows, max_queries, vs, ls, r->opt->stop,
                                                  err);
    char what[300];
    snprintf(what, sizeof what, "the %zu picks from '%s'", xs->rows, a->pool->name);
    kd_tensor_release(vs); /* kd_run_dist_label makes it */
    return kd_run_dist_label(r, before, a->t, what, xs, a->pool->root, rows, max_queries, vs, ls, err);
}

kd_status kd_active_share_generated(struct active *a, kd_status st, struct kd_tensor *gen, struct kd_tensor *ask,
                                    double *div, struct kd_error *err)
{
    struct runner *r = a->r;
    if (r->ranks <= 1)
        return st;
    /* the other ranks sleep while rank 0 generates (TGT's gradient steps) */
    if ((st = kd_run_dist_rank0_done(r, st, err)))
        return st;
    st = kd_dist_broadcast(gen->data, gen->rows * gen->cols * sizeof(float), 0, err);
    if (!st && ask)
        st = kd_dist_broadcast(ask->data, ask->rows * ask->cols * sizeof(float), 0, err);
    if (!st)
        st = kd_dist_broadcast(div, gen->rows * sizeof *div, 0, err);
    return st;
}

kd_status kd_active_label_generated(struct active *a, const struct kd_tensor *x, const struct kd_store_origin *origins,
                                    size_t max_queries, struct kd_tensor *v, struct kd_label_stats *ls,
                                    struct kd_error *err)
{
    struct runner *r = a->r;
    if (r->ranks <= 1)
        return kd_teacher_label_origins(a->t->t, x, origins, "generated", max_queries, v, ls, r->opt->stop, err);
    char what[300];
    snprintf(what, sizeof what, "the %zu inputs generated from '%s'", x->rows, a->pool->name);
    kd_tensor_release(v); /* kd_run_dist_label_origins makes it */
    return kd_run_dist_label_origins(r, KD_OK, a->t, what, x, origins, "generated", max_queries, v, ls, err);
}

kd_status kd_active_share_weights(struct active *a, size_t from, size_t to, struct kd_error *err)
{
    struct train_set *ts = &a->ts;
    if (a->r->ranks <= 1 || to <= from)
        return KD_OK;
    size_t n = to - from;
    kd_status st = kd_dist_broadcast(ts->w + from, n * sizeof *ts->w, 0, err);
    if (!st)
        st = kd_dist_broadcast(ts->noise + from, n * sizeof *ts->noise, 0, err);
    if (!st)
        st = kd_dist_broadcast(ts->alpha + from, n * sizeof *ts->alpha, 0, err);
    if (!st)
        st = kd_dist_broadcast(ts->k + from, n * sizeof *ts->k, 0, err);
    return st;
}

kd_status kd_active_share_student(struct active *a, struct kd_mlp *m, struct kd_error *err)
{
    if (a->r->ranks <= 1)
        return KD_OK;
    return kd_dist_broadcast(m->params, m->n_params * sizeof *m->params, 0, err);
}

kd_status kd_active_agree_round(struct active *a, size_t *round, const char *where, struct kd_error *err)
{
    struct runner *r = a->r;
    if (r->ranks <= 1)
        return KD_OK;
    uint64_t theirs = *round;
    kd_status st = kd_dist_broadcast(&theirs, sizeof theirs, 0, err);
    if (st)
        return st;
    double differ = theirs != (uint64_t)*round;
    if ((st = kd_dist_sum_doubles(&differ, 1, err)))
        return st;
    if (differ > 0)
        return kd_error_set(err, KD_ERR_IO,
                            "stage '%s': %.0f rank(s) found another finished round in %s than rank 0 (round %llu): "
                            "--resume over several ranks reads rank 0's files, so `output` must be on a file system "
                            "every rank sees",
                            a->s->name, differ, where, (unsigned long long)theirs);
    return KD_OK;
}

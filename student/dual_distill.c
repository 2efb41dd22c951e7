/* Distilling a teacher into a dual encoder: candidate lists with teacher
 * scores (the losses of losses/retrieval.c mixed with the gold in-batch
 * loss), EmbedDistill's embedding matching through a learned projection,
 * and the asymmetric mode where documents come from a frozen tower. */
#include "student/kd_student.h"
#include "student/student_impl.h"
#include "student/text_train.h"

#include "core/kd_core.h"
#include "losses/kd_losses.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void kd_dual_distill_config_init(struct kd_dual_distill_config *c)
{
    memset(c, 0, sizeof *c);
    kd_dual_train_config_init(&c->train);
    c->train.label = "distill dual encoder";
    kd_rank_distill_init(&c->loss);
    c->score_weight = 1.0f;
}

kd_status kd_dual_projection_init(struct kd_dual *m, size_t out, uint64_t seed, struct kd_error *err)
{
    if (out == 0 || out > (1u << 16))
        return kd_error_set(err, KD_ERR_ARG, "a projection's width must be 1 to %u, got %zu", 1u << 16, out);
    size_t n = out * (m->dim + 1);
    float *p = kd_calloc(n, sizeof(float)), *g = kd_calloc(n, sizeof(float));
    if (!p || !g) {
        kd_free(p);
        kd_free(g);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for a (%zu, %zu) projection", out, m->dim);
    }
    if (seed) {
        struct kd_rng rng;
        kd_rng_seed(&rng, seed);
        double a = sqrt(6.0 / (double)(out + m->dim));
        for (size_t i = 0; i < out * m->dim; i++)
            p[i] = (float)(a * (2.0 * kd_rng_uniform(&rng) - 1.0));
    }
    kd_free(m->proj);
    kd_free(m->proj_grad);
    m->proj = p;
    m->proj_grad = g;
    m->proj_out = out;
    return KD_OK;
}

static struct kd_dense proj_layer(const struct kd_dual *m)
{
    struct kd_dense l = {m->dim, m->proj_out, m->proj, m->proj + m->proj_out * m->dim, m->proj_grad,
                         m->proj_grad + m->proj_out * m->dim};
    return l;
}

void kd_dual_project(const struct kd_dual *m, const float *x, size_t B, float *y)
{
    struct kd_dense l = proj_layer(m);
    kd_dense_forward(&l, x, B, y); /* (B, proj_out) */
}

/* ------------------------------------------------------------ checks */

static kd_status check_inputs(const struct kd_dual *m, const struct kd_features *fq, const struct kd_features *fd,
                              const struct kd_cand_lists *cl, const struct kd_dual_distill_config *c,
                              struct kd_error *err)
{
    kd_status st;
    if (cl->n == 0 || cl->L == 0)
        return kd_error_set(err, KD_ERR_ARG, "no candidate lists to distil from (%zu lists of %zu)", cl->n, cl->L);
    if ((st = kd_rank_distill_check(&c->loss, err)) != KD_OK)
        return kd_error_prefix(err, "distillation loss");
    if (!(c->score_weight >= 0.0f) || !(c->lambda_q >= 0.0f) || !(c->lambda_d >= 0.0f))
        return kd_error_set(err, KD_ERR_ARG, "score_weight, lambda_q and lambda_d must be >= 0 (got %g, %g, %g)",
                            (double)c->score_weight, (double)c->lambda_q, (double)c->lambda_d);
    if (c->train.batch == 0)
        return kd_error_set(err, KD_ERR_ARG, "batch size must be at least 1");
    for (size_t i = 0; i < cl->n; i++) {
        if (cl->q[i] >= fq->n)
            return kd_error_set(err, KD_ERR_ARG, "list %zu names query text %zu of %zu", i, cl->q[i], fq->n);
        for (size_t j = 0; j < cl->L; j++)
            if (cl->doc[i * cl->L + j] >= fd->n)
                return kd_error_set(err, KD_ERR_ARG, "candidate %zu of list %zu names document text %zu of %zu", j, i,
                                    cl->doc[i * cl->L + j], fd->n);
    }
    if (c->teacher_q && c->teacher_q->rows != fq->n)
        return kd_error_set(err, KD_ERR_ARG, "teacher query embeddings have %zu rows for %zu query texts",
                            c->teacher_q->rows, fq->n);
    if (c->teacher_d && !c->frozen_docs && c->teacher_d->rows != fd->n)
        return kd_error_set(err, KD_ERR_ARG, "teacher document embeddings have %zu rows for %zu document texts",
                            c->teacher_d->rows, fd->n);
    if (c->teacher_q && c->teacher_d && !c->frozen_docs && c->teacher_q->cols != c->teacher_d->cols)
        return kd_error_set(err, KD_ERR_ARG, "teacher query and document embeddings differ in width (%zu, %zu)",
                            c->teacher_q->cols, c->teacher_d->cols);
    if (c->frozen_docs) {
        if (!m->cfg.shared)
            return kd_error_set(err, KD_ERR_ARG,
                                "an asymmetric student (frozen documents) trains one tower: give it shared towers");
        if (c->frozen_docs->rows != fd->n || c->frozen_docs->cols != m->dim)
            return kd_error_set(err, KD_ERR_ARG, "frozen document embeddings are (%zu, %zu); the student needs (%zu, %zu)",
                                c->frozen_docs->rows, c->frozen_docs->cols, fd->n, m->dim);
    }
    return KD_OK;
}

/* ------------------------------------------------------------ training */

struct ws {
    size_t *qidx, *didx;
    float *t, *w, *S, *dS, *dout, *dfrozen;   /* dfrozen: gathered frozen document rows (Bd, O) */
    int8_t *rel;
    int32_t *gold;
    float *x, *px, *dpx, *dx, *y, *wd;       /* embedding matching, (Bq + Bd) rows */
};

static void ws_release(struct ws *w)
{
    free(w->qidx);
    free(w->didx);
    free(w->rel);
    free(w->gold);
    kd_free(w->t);
    kd_free(w->w);
    kd_free(w->S);
    kd_free(w->dS);
    kd_free(w->dout);
    kd_free(w->dfrozen);
    kd_free(w->x);
    kd_free(w->px);
    kd_free(w->dpx);
    kd_free(w->dx);
    kd_free(w->y);
    kd_free(w->wd);
}

static int ws_alloc(struct ws *w, size_t bs, size_t L, size_t O, size_t Et)
{
    size_t Bd = bs * L, R = bs + Bd;
    memset(w, 0, sizeof *w);
    w->qidx = malloc(bs * sizeof *w->qidx);
    w->didx = malloc(Bd * sizeof *w->didx);
    w->rel = malloc(Bd);
    w->gold = malloc(bs * sizeof *w->gold);
    w->t = kd_alloc(Bd, sizeof(float));
    w->w = kd_alloc(bs, sizeof(float));
    w->S = kd_alloc(bs * Bd, sizeof(float));
    w->dS = kd_alloc(bs * Bd, sizeof(float));
    w->dout = kd_alloc(R * O, sizeof(float));
    w->dfrozen = kd_alloc(Bd * O, sizeof(float));
    int ok = w->qidx && w->didx && w->rel && w->gold && w->t && w->w && w->S && w->dS && w->dout &&
             w->dfrozen;
    if (ok && Et) {
        w->x = kd_alloc(R * O, sizeof(float));
        w->px = kd_alloc(R * Et, sizeof(float));
        w->dpx = kd_alloc(R * Et, sizeof(float));
        w->dx = kd_alloc(R * O, sizeof(float));
        w->y = kd_alloc(R * Et, sizeof(float));
        w->wd = kd_alloc(Bd, sizeof(float));
        ok = w->x && w->px && w->dpx && w->dx && w->y && w->wd;
    }
    return ok;
}

static float score_scale(const struct kd_dual *m)
{
    return m->cfg.score == KD_SCORE_COSINE ? 1.0f / m->cfg.temperature : 1.0f;
}

/* EmbedDistill's terms for the batch's Rq query rows q and Rd document rows
 * d (O wide; either count may be 0): their loss; dL/d outputs added into
 * dq (Rq, O) and dd (Rd, O) and, with a projection, its gradient
 * (overwritten). Teacher rows are those of w->qidx and w->didx. */
static double embed_terms(struct kd_dual *m, const struct kd_dual_distill_config *c, struct ws *w, const float *q,
                          size_t Rq, const float *d, size_t Rd, size_t L, float *dq, float *dd)
{
    size_t O = m->dim, Et = m->proj_out ? m->proj_out : O, R = Rq + Rd;
    double loss = 0.0;
    if (Rq)
        memcpy(w->x, q, Rq * O * sizeof(float));
    if (Rd)
        memcpy(w->x + Rq * O, d, Rd * O * sizeof(float));
    for (size_t i = 0; i < Rq; i++)
        memcpy(w->y + i * Et, kd_tensor_row(c->teacher_q, w->qidx[i]), Et * sizeof(float));
    for (size_t j = 0; j < Rd; j++) {
        memcpy(w->y + (Rq + j) * Et, kd_tensor_row(c->teacher_d, w->didx[j]), Et * sizeof(float));
        w->wd[j] = w->w[j / L]; /* a candidate weighs as its query */
    }
    const float *px = w->x;
    if (m->proj_out) {
        kd_dual_project(m, w->x, R, w->px); /* (R, Et) */
        px = w->px;
    }
    if (Rq) {
        loss += (double)c->lambda_q * kd_loss_embed_l2(px, w->y, w->w, Rq, Et, w->dpx);
        for (size_t i = 0; i < Rq * Et; i++)
            w->dpx[i] *= c->lambda_q;
    }
    if (Rd) {
        float *g = w->dpx + Rq * Et;
        loss += (double)c->lambda_d * kd_loss_embed_l2(px + Rq * Et, w->y + Rq * Et, w->wd, Rd, Et, g);
        for (size_t i = 0; i < Rd * Et; i++)
            g[i] *= c->lambda_d;
    }
    const float *dx = w->dpx;
    if (m->proj_out) {
        struct kd_dense l = proj_layer(m);
        kd_dense_backward(&l, w->x, w->dpx, R, w->dx); /* gw (Et, O), gb (Et), dx (R, O) */
        dx = w->dx;
    }
    for (size_t i = 0; i < Rq * O; i++)
        dq[i] += dx[i];
    for (size_t i = 0; i < Rd * O; i++)
        dd[i] += dx[Rq * O + i];
    return loss;
}

kd_status kd_dual_distill(struct kd_dual *m, const struct kd_features *fq, const struct kd_features *fd,
                          const struct kd_cand_lists *cl, const struct kd_dual_distill_config *c,
                          struct kd_train_result *result, struct kd_error *err)
{
    kd_status st;
    if ((st = kd_embedbag_check(&kd_dual_tower(m, KD_SIDE_QUERY)->bag, fq, "queries", err)) != KD_OK ||
        (!c->frozen_docs && (st = kd_embedbag_check(&kd_dual_tower(m, KD_SIDE_DOC)->bag, fd, "documents", err))) ||
        (st = check_inputs(m, fq, fd, cl, c, err)) != KD_OK)
        return st;
    const struct kd_dual_train_config *tc = &c->train;
    const char *label = tc->label ? tc->label : "distill dual encoder";
    int frozen = c->frozen_docs != NULL;
    int match_q = c->teacher_q && c->lambda_q > 0.0f, match_d = !frozen && c->teacher_d && c->lambda_d > 0.0f;
    size_t N = cl->n, L = cl->L, bs = tc->batch < N ? tc->batch : N, O = m->dim, Et = 0;
    if (match_q || match_d) {
        Et = match_q ? c->teacher_q->cols : c->teacher_d->cols;
        if (Et != O && m->proj_out != Et && (st = kd_dual_projection_init(m, Et, kd_rng_derive(tc->seed, KD_RNG_PROJECTION, 0), err)))
            return st;
        if (Et == O && m->proj_out && m->proj_out != Et)
            return kd_error_set(err, KD_ERR_ARG, "the model's projection is %zu wide; the teacher's embeddings are %zu",
                                m->proj_out, Et);
    }
    /* the longest text times the batch bounds the distinct rows a step touches */
    size_t rows_q = 0, rows_d = 0;
    for (size_t i = 0; i < fq->n; i++)
        if (fq->offsets[i + 1] - fq->offsets[i] > rows_q)
            rows_q = fq->offsets[i + 1] - fq->offsets[i];
    for (size_t i = 0; i < fd->n; i++)
        if (fd->offsets[i + 1] - fd->offsets[i] > rows_d)
            rows_d = fd->offsets[i + 1] - fd->offsets[i];
    rows_q = rows_q * bs < m->cfg.buckets ? rows_q * bs : m->cfg.buckets;
    rows_d = frozen ? 0 : (rows_d * bs * L < m->cfg.buckets ? rows_d * bs * L : m->cfg.buckets);
    if ((st = kd_dual_reserve(m, bs, frozen ? 0 : bs * L, rows_q, rows_d, err)) != KD_OK)
        return st;

    struct ws w;
    struct kd_text_walk walk;
    struct kd_text_optim opt;
    struct kd_optim popt;
    memset(&opt, 0, sizeof opt);
    memset(&popt, 0, sizeof popt);
    size_t n_tables = m->cfg.shared ? 1 : 2;
    double t0 = kd_time_now(), mean = 0.0;
    int ws_ok = ws_alloc(&w, bs, L, O, Et);
    if ((st = kd_text_walk_open(&walk, N, bs, tc->epochs, tc->seed, tc->stop, label, err)))
        goto done;
    if (!ws_ok) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for distillation buffers");
        goto done;
    }
    if ((st = kd_text_optim_init(&opt, &tc->optim, &tc->table, &tc->sched, m->n_params, n_tables, m->cfg.buckets,
                                 m->cfg.E, err)) != KD_OK ||
        (m->proj_out && Et && (st = kd_optim_init(&popt, &tc->optim, m->proj_out * (O + 1), err)) != KD_OK))
        goto done;
    float *tables[2] = {m->tower[0].bag.w, m->tower[1].bag.w};
    const struct kd_sparse_grad *sg[2] = {&m->pass[0].sg, &m->pass[1].sg};
    float a = score_scale(m);
    int more = 0;
    for (walk.epoch = 0; walk.epoch < tc->epochs; walk.epoch++) {
        kd_text_walk_epoch(&walk);
        while ((more = kd_text_walk_next(&walk, &st, err)) > 0) {
            size_t B = walk.B, Bd = B * L;
            for (size_t i = 0; i < B; i++) {
                size_t p = walk.perm[walk.off + i];
                w.qidx[i] = cl->q[p];
                w.w[i] = cl->w ? cl->w[p] : 1.0f;
                w.gold[i] = -1;
                for (size_t j = 0; j < L; j++) {
                    w.didx[i * L + j] = cl->doc[p * L + j];
                    w.t[i * L + j] = cl->t[p * L + j];
                    w.rel[i * L + j] = cl->rel ? cl->rel[p * L + j] : 0;
                    if (w.gold[i] < 0 && w.rel[i * L + j] > 0)
                        w.gold[i] = (int32_t)(i * L + j);
                }
            }
            const float *q, *d, *S;
            if (!frozen) {
                S = kd_dual_forward(m, fq, w.qidx, B, fd, w.didx, Bd); /* (B, Bd) */
                if (!S) {
                    st = kd_error_set(err, KD_ERR_NOMEM, "out of memory in the forward pass");
                    goto done;
                }
                kd_dual_outputs(m, &q, &d);
            } else {
                /* only the query tower runs; documents are rows of the frozen table */
                if (!kd_dual_forward(m, fq, w.qidx, B, fd, w.didx, 0)) {
                    st = kd_error_set(err, KD_ERR_NOMEM, "out of memory in the forward pass");
                    goto done;
                }
                kd_dual_outputs(m, &q, &d);
                for (size_t j = 0; j < Bd; j++)
                    memcpy(w.dfrozen + j * O, kd_tensor_row(c->frozen_docs, w.didx[j]), O * sizeof(float));
                d = w.dfrozen;
                kd_sgemm(0, 1, B, Bd, O, a, q, O, d, O, 0.0f, w.S, Bd); /* (B, Bd) */
                S = w.S;
            }
            double loss = 0.0;
            memset(w.dout, 0, (B + Bd) * O * sizeof(float));
            if (c->score_weight > 0.0f) {
                loss = (double)c->score_weight *
                       kd_loss_rank_distill_inbatch(&c->loss, S, Bd, w.t, w.rel, w.gold, w.w, B, L, w.dS);
                float sa = a * c->score_weight;
                kd_sgemm(0, 0, B, O, Bd, sa, w.dS, Bd, d, O, 0.0f, w.dout, O); /* (B, O) = dS D */
                if (!frozen)
                    kd_sgemm(1, 0, Bd, O, B, sa, w.dS, Bd, q, O, 0.0f, w.dout + B * O, O); /* (Bd, O) = dS^T Q */
            }
            if (match_q || match_d)
                loss += embed_terms(m, c, &w, q, match_q ? B : 0, d, match_d ? Bd : 0, L, w.dout, w.dout + B * O);
            kd_dual_backward_outputs(m, w.dout);
            if ((st = kd_student_impl_check_loss(loss, walk.epoch, walk.step, err)))
                goto done;
            float lr = kd_text_optim_step(&opt, walk.step, m->params, m->grads, tables, sg);
            if (popt.n)
                kd_optim_step(&popt, m->proj, m->proj_grad, lr);
            kd_text_walk_done(&walk, loss);
        }
        if (more < 0)
            goto done;
        mean = walk.sum / (double)N;
        if ((st = kd_student_impl_check_dual(m, walk.epoch, err)))
            goto done;
        kd_log(KD_LOG_DEBUG, "%s epoch %zu: loss %.5f", label, walk.epoch + 1, mean);
    }
done:
    kd_student_impl_train_result(result, mean, walk.epoch, 0, N, t0);
    kd_text_walk_close(&walk);
    kd_text_optim_release(&opt);
    kd_optim_release(&popt);
    ws_release(&w);
    return st;
}

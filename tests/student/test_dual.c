/* student: the dual encoder against finite differences, its encodings, and
 * training with in-batch negatives on a task it must learn. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "losses/kd_losses.h"
#include "retrieval_test.h"
#include "student/kd_student.h"

#define NQ 4
#define ND 6

struct fixture {
    struct kd_dual *m;
    struct kd_features fq, fd;
    size_t qidx[NQ], didx[ND];
    float c[NQ * ND]; /* L = sum c_ij S_ij */
};

static double score_loss(struct fixture *x)
{
    const float *S = kd_dual_forward(x->m, &x->fq, x->qidx, NQ, &x->fd, x->didx, ND);
    cr_assert(S);
    double l = 0.0;
    for (size_t i = 0; i < NQ * ND; i++)
        l += (double)x->c[i] * S[i];
    return l;
}

/* Central difference of L along one float parameter, with the step the
 * float actually took. */
static double fd_at(struct fixture *x, float *p)
{
    float save = *p, up_v = save + 1e-3f, down_v = save - 1e-3f;
    *p = up_v;
    double up = score_loss(x);
    *p = down_v;
    double down = score_loss(x);
    *p = save;
    return (up - down) / ((double)up_v - (double)down_v);
}

static double worst_seen = 0.0;

static void check(const char *what, double fd, double an)
{
    double e = fabs(fd - an);
    if (e > worst_seen)
        worst_seen = e;
    cr_assert(e < 2e-3 + 1e-2 * fabs(fd), "%s: finite difference %g, analytic %g", what, fd, an);
}

static void check_config(const char *name, int shared, enum kd_dual_score score, int normalize, size_t n_layers,
                         const size_t *hidden, enum kd_act act)
{
    struct kd_error err = {0};
    struct kd_dual_config cfg;
    kd_dual_config_init(&cfg);
    cfg.buckets = 24;
    cfg.E = 5;
    cfg.shared = shared;
    cfg.score = score;
    cfg.temperature = 0.5f;
    cfg.normalize = normalize;
    cfg.n_layers = n_layers;
    cfg.act = act;
    for (size_t l = 0; l < n_layers; l++)
        cfg.hidden[l] = hidden[l];
    struct fixture x;
    memset(&x, 0, sizeof x);
    cr_assert_eq(kd_dual_new(&cfg, 11, &x.m, &err), KD_OK, "%s", err.msg);
    struct kd_rng r;
    kd_rng_seed(&r, 12);
    random_features(&x.fq, 5, 24, 4, 0, &r);
    random_features(&x.fd, 8, 24, 5, 1, &r); /* document text 0 is empty */
    size_t qi[NQ] = {0, 2, 4, 2}, di[ND] = {1, 0, 3, 3, 7, 5};
    memcpy(x.qidx, qi, sizeof qi);
    memcpy(x.didx, di, sizeof di);
    for (size_t i = 0; i < NQ * ND; i++)
        x.c[i] = (float)kd_rng_normal(&r);
    for (size_t i = 0; i < x.m->n_params; i++)
        x.m->params[i] += 0.1f * (float)kd_rng_normal(&r); /* biases off zero */
    score_loss(&x);
    kd_dual_backward(x.m, x.c);
    /* copy the analytic gradients: the finite differences overwrite the workspace */
    size_t np = x.m->n_params, nt = shared ? 1 : 2;
    float *gd = malloc((np + 1) * sizeof *gd);
    memcpy(gd, x.m->grads, np * sizeof *gd);
    struct kd_sparse_grad sg[2];
    for (size_t t = 0; t < nt; t++) {
        const struct kd_sparse_grad *s = &x.m->pass[t].sg;
        cr_assert_eq(kd_sparse_grad_init(&sg[t], 24, 5, 24, &err), KD_OK);
        sg[t].n = s->n;
        memcpy(sg[t].rows, s->rows, s->n * sizeof *s->rows);
        memcpy(sg[t].g, s->g, s->n * 5 * sizeof *s->g);
        cr_assert_gt(s->n, 0);
    }
    char what[96];
    for (size_t i = 0; i < np; i++) {
        snprintf(what, sizeof what, "%s: dense parameter %zu", name, i);
        check(what, fd_at(&x, &x.m->params[i]), gd[i]);
    }
    for (size_t t = 0; t < nt; t++) {
        float *table = x.m->tower[t].bag.w;
        for (uint32_t row = 0; row < 24; row++) {
            int k = -1;
            for (size_t j = 0; j < sg[t].n; j++)
                if (sg[t].rows[j] == row)
                    k = (int)j;
            for (size_t e = 0; e < 5; e++) {
                snprintf(what, sizeof what, "%s: table %zu row %u col %zu%s", name, t, row, e,
                         k < 0 ? " (untouched)" : "");
                check(what, fd_at(&x, &table[row * 5 + e]), k < 0 ? 0.0 : sg[t].g[k * 5 + e]);
            }
        }
        kd_sparse_grad_release(&sg[t]);
    }
    free(gd);
    kd_features_release(&x.fq);
    kd_features_release(&x.fd);
    kd_dual_free(x.m);
}

Test(student, dual_encoder_score_gradients_match_finite_differences)
{
    size_t two[2] = {6, 4}, one[1] = {7};
    worst_seen = 0.0;
    check_config("separate dot bag only", 0, KD_SCORE_DOT, 0, 0, NULL, KD_ACT_RELU);
    check_config("separate dot tanh normalised", 0, KD_SCORE_DOT, 1, 2, two, KD_ACT_TANH);
    check_config("shared cosine linear", 1, KD_SCORE_COSINE, 0, 1, one, KD_ACT_RELU);
    check_config("shared dot gelu", 1, KD_SCORE_DOT, 0, 2, two, KD_ACT_GELU);
    check_config("separate cosine gelu", 0, KD_SCORE_COSINE, 1, 2, two, KD_ACT_GELU);
    fprintf(stderr, "dual encoder: largest |finite difference - analytic| = %.3g\n", worst_seen);
}

Test(student, dual_encode_gives_the_embeddings_the_scores_are_made_of)
{
    struct kd_error err = {0};
    struct kd_dual_config cfg;
    kd_dual_config_init(&cfg);
    cfg.buckets = 100;
    cfg.E = 16;
    cfg.n_layers = 2;
    cfg.hidden[0] = 12;
    cfg.hidden[1] = 8;
    cfg.score = KD_SCORE_COSINE;
    cfg.temperature = 0.1f;
    struct kd_dual *m;
    cr_assert_eq(kd_dual_new(&cfg, 3, &m, &err), KD_OK);
    cr_assert_eq(kd_dual_dim(m), 8);
    struct kd_rng r;
    kd_rng_seed(&r, 4);
    struct kd_features fq = {0}, fd = {0};
    random_features(&fq, 7, 100, 6, 0, &r);
    random_features(&fd, 1500, 100, 9, 1, &r); /* more than one encoding batch */
    struct kd_tensor Q, D;
    kd_tensor_init(&Q, 7, 8, &err);
    kd_tensor_init(&D, 1500, 8, &err);
    cr_assert_eq(kd_dual_encode(m, KD_SIDE_QUERY, &fq, &Q, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dual_encode(m, KD_SIDE_DOC, &fd, &D, &err), KD_OK, "%s", err.msg);
    size_t qi[7] = {0, 1, 2, 3, 4, 5, 6}, di[5] = {0, 1, 700, 1200, 1499};
    const float *S = kd_dual_forward(m, &fq, qi, 7, &fd, di, 5);
    for (size_t i = 0; i < 7; i++) {
        cr_assert(fabs(kd_sdot(8, kd_tensor_row(&Q, i), kd_tensor_row(&Q, i)) - 1.0) < 1e-5, "cosine: unit rows");
        for (size_t j = 0; j < 5; j++) {
            double want = kd_sdot(8, kd_tensor_row(&Q, i), kd_tensor_row(&D, di[j])) / 0.1;
            cr_assert(fabs(S[i * 5 + j] - want) < 1e-4, "S[%zu][%zu] %g, from encodings %g", i, j, S[i * 5 + j], want);
        }
    }
    struct kd_tensor bad;
    kd_tensor_init(&bad, 7, 9, &err);
    cr_assert_eq(kd_dual_encode(m, KD_SIDE_QUERY, &fq, &bad, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "embeddings need a (7, 8) tensor, got (7, 9)");
    kd_tensor_release(&bad);
    kd_tensor_release(&Q);
    kd_tensor_release(&D);
    kd_features_release(&fq);
    kd_features_release(&fd);
    kd_dual_free(m);
}

/* A task a bag of words solves: document i has 8 ids of its own, query i
 * shares 3 of them and adds 2 random ids; the pairs are (i, i). */
static void make_task(struct kd_features *fq, struct kd_features *fd, size_t n, uint32_t K, struct kd_rng *r)
{
    fd->n = fq->n = n;
    fd->buckets = fq->buckets = K;
    fd->offsets = malloc((n + 1) * sizeof(size_t));
    fq->offsets = malloc((n + 1) * sizeof(size_t));
    fd->ids = malloc(n * 8 * sizeof(uint32_t));
    fq->ids = malloc(n * 5 * sizeof(uint32_t));
    fd->offsets[0] = fq->offsets[0] = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < 8; j++)
            fd->ids[i * 8 + j] = (uint32_t)kd_rng_below(r, K);
        for (size_t j = 0; j < 3; j++)
            fq->ids[i * 5 + j] = fd->ids[i * 8 + 2 * j];
        for (size_t j = 3; j < 5; j++)
            fq->ids[i * 5 + j] = (uint32_t)kd_rng_below(r, K);
        fd->offsets[i + 1] = (i + 1) * 8;
        fq->offsets[i + 1] = (i + 1) * 5;
    }
    fd->nnz = n * 8;
    fq->nnz = n * 5;
}

static double mrr_of(struct kd_dual *m, const struct kd_features *fq, const struct kd_features *fd)
{
    struct kd_error err = {0};
    size_t n = fq->n, O = kd_dual_dim(m), k = 10;
    struct kd_tensor Q, D;
    kd_tensor_init(&Q, n, O, &err);
    kd_tensor_init(&D, fd->n, O, &err);
    cr_assert_eq(kd_dual_encode(m, KD_SIDE_QUERY, fq, &Q, &err), KD_OK);
    cr_assert_eq(kd_dual_encode(m, KD_SIDE_DOC, fd, &D, &err), KD_OK);
    size_t *idx = malloc(n * k * sizeof *idx), *off = malloc((n + 1) * sizeof *off), *doc = malloc(n * sizeof *doc);
    float *sc = malloc(n * k * sizeof *sc);
    int32_t *rel = malloc(n * sizeof *rel);
    cr_assert_eq(kd_search_topk(&Q, &D, k, idx, sc, &err), KD_OK);
    for (size_t i = 0; i < n; i++) {
        off[i] = i;
        doc[i] = i;
        rel[i] = 1;
    }
    off[n] = n;
    struct kd_qrels_view qv = {n, off, doc, rel};
    struct kd_rank_metrics rm;
    cr_assert_eq(kd_rank_evaluate(idx, k, &qv, &rm, &err), KD_OK);
    double mrr = rm.mean[KD_RM_MRR10];
    kd_rank_metrics_release(&rm);
    free(idx);
    free(off);
    free(doc);
    free(sc);
    free(rel);
    kd_tensor_release(&Q);
    kd_tensor_release(&D);
    return mrr;
}

static void train_and_check(int shared, enum kd_dual_score score, size_t n_layers, size_t H, double want)
{
    struct kd_error err = {0};
    struct kd_rng r;
    kd_rng_seed(&r, 21);
    struct kd_features fq = {0}, fd = {0};
    size_t n = 400;
    make_task(&fq, &fd, n, 4096, &r);
    struct kd_dual_config cfg;
    kd_dual_config_init(&cfg);
    cfg.buckets = 4096;
    cfg.E = 32;
    cfg.shared = shared;
    cfg.score = score;
    cfg.temperature = 0.1f;
    cfg.n_layers = n_layers;
    cfg.hidden[0] = 32;
    struct kd_dual *m;
    cr_assert_eq(kd_dual_new(&cfg, 1, &m, &err), KD_OK);
    size_t *q = malloc(n * sizeof *q), *d = malloc(n * sizeof *d), *hard = malloc((n * H + 1) * sizeof *hard);
    for (size_t i = 0; i < n; i++) {
        q[i] = d[i] = i;
        for (size_t h = 0; h < H; h++)
            hard[i * H + h] = (i + 1 + h) % n;
    }
    struct kd_pairs pairs = {q, d, n, H ? hard : NULL, H};
    double before = mrr_of(m, &fq, &fd);
    struct kd_dual_train_config tc;
    kd_dual_train_config_init(&tc);
    tc.epochs = 15;
    tc.batch = 32;
    struct kd_train_result res;
    cr_assert_eq(kd_dual_train(m, &fq, &fd, &pairs, &tc, &res, &err), KD_OK, "%s", err.msg);
    double after = mrr_of(m, &fq, &fd);
    fprintf(stderr, "dual training (shared %d, %s, %zu layers, %zu hard): MRR@10 %.3f -> %.3f, loss %.3f, %.0f pairs/s\n",
            shared, kd_dual_score_name(score), n_layers, H, before, after, res.last_loss, res.examples_per_s);
    cr_assert_gt(after, want, "MRR@10 after training %g (before %g)", after, before);
    free(q);
    free(d);
    free(hard);
    kd_features_release(&fq);
    kd_features_release(&fd);
    kd_dual_free(m);
}

Test(student, dual_encoder_learns_matching_texts_with_in_batch_negatives, .timeout = 120)
{
    train_and_check(1, KD_SCORE_COSINE, 0, 0, 0.9);
    train_and_check(0, KD_SCORE_DOT, 1, 0, 0.8);
    train_and_check(0, KD_SCORE_COSINE, 1, 2, 0.8);
}

Test(student, dual_train_refuses_pairs_naming_missing_texts)
{
    struct kd_error err = {0};
    struct kd_rng r;
    kd_rng_seed(&r, 2);
    struct kd_features fq = {0}, fd = {0};
    make_task(&fq, &fd, 5, 64, &r);
    struct kd_dual_config cfg;
    kd_dual_config_init(&cfg);
    cfg.buckets = 64;
    cfg.E = 4;
    struct kd_dual *m;
    cr_assert_eq(kd_dual_new(&cfg, 1, &m, &err), KD_OK);
    size_t q[2] = {0, 1}, d[2] = {0, 9};
    struct kd_pairs p = {q, d, 2, NULL, 0};
    struct kd_dual_train_config tc;
    kd_dual_train_config_init(&tc);
    cr_assert_eq(kd_dual_train(m, &fq, &fd, &p, &tc, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "pair 1 names document text 9 of 5");
    kd_features_release(&fq);
    kd_features_release(&fd);
    kd_dual_free(m);
}

/* The dual encoder's loop stops on a loss that is not finite, as the MLP's
 * does: a table of NaN makes the first step's scores, and so its loss, NaN. */
Test(student, dual_train_stops_with_a_message_when_the_loss_is_not_finite)
{
    struct kd_error err = {0};
    struct kd_rng r;
    kd_rng_seed(&r, 3);
    struct kd_features fq = {0}, fd = {0};
    make_task(&fq, &fd, 8, 64, &r);
    struct kd_dual_config cfg;
    kd_dual_config_init(&cfg);
    cfg.buckets = 64;
    cfg.E = 4;
    cfg.score = KD_SCORE_DOT;
    struct kd_dual *m;
    cr_assert_eq(kd_dual_new(&cfg, 1, &m, &err), KD_OK);
    for (size_t i = 0; i < (size_t)cfg.buckets * cfg.E; i++)
        m->tower[0].bag.w[i] = NAN;
    size_t q[4] = {0, 1, 2, 3}, d[4] = {0, 1, 2, 3};
    struct kd_pairs p = {q, d, 4, NULL, 0};
    struct kd_dual_train_config tc;
    kd_dual_train_config_init(&tc);
    tc.batch = 4;
    cr_assert_eq(kd_dual_train(m, &fq, &fd, &p, &tc, NULL, &err), KD_ERR_DIVERGED);
    cr_expect_str_eq(err.msg, "training diverged: the loss is nan in epoch 1, step 1 (lower the learning rate, or "
                              "look for huge or non-finite input values)");
    kd_features_release(&fq);
    kd_features_release(&fd);
    kd_dual_free(m);
}

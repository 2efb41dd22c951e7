/* cross: the cross-encoder -- its lexical signals by hand, gradients by
 * finite differences, training lists, training on a toy task, re-ranking,
 * and safetensors round trips and refusals. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/kd_data.h"
#include "retrieval_test.h"
#include "student/kd_student.h"

/* Random texts: `all` features, `words` a prefix-free subset standing for
 * the word ids, titles a few of the words. */
struct toy {
    struct kd_features q_all, q_words, d_all, d_words, d_title;
    struct kd_cross_side qs, ds;
};

static void toy_init(struct toy *t, size_t nq, size_t nd, uint32_t buckets, uint64_t seed)
{
    struct kd_rng r;
    kd_rng_seed(&r, seed);
    random_features(&t->q_all, nq, buckets, 12, 1, &r);
    random_features(&t->q_words, nq, buckets, 5, 0, &r);
    random_features(&t->d_all, nd, buckets, 16, 0, &r);
    random_features(&t->d_words, nd, buckets, 7, 0, &r);
    random_features(&t->d_title, nd, buckets, 2, 0, &r);
    struct kd_error err = {0};
    cr_assert_eq(kd_cross_side_init(&t->qs, &t->q_all, &t->q_words, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_cross_side_init(&t->ds, &t->d_all, &t->d_words, &t->d_title, &err), KD_OK, "%s", err.msg);
}

static void toy_release(struct toy *t)
{
    kd_cross_side_release(&t->qs);
    kd_cross_side_release(&t->ds);
    kd_features_release(&t->q_all);
    kd_features_release(&t->q_words);
    kd_features_release(&t->d_all);
    kd_features_release(&t->d_words);
    kd_features_release(&t->d_title);
}

static struct kd_cross *make_model(uint32_t buckets, size_t E, int shared, enum kd_act act, uint64_t seed)
{
    struct kd_error err = {0};
    struct kd_cross_config cfg;
    kd_cross_config_init(&cfg);
    cfg.buckets = buckets;
    cfg.E = E;
    cfg.n_layers = 2;
    cfg.hidden[0] = 8;
    cfg.hidden[1] = 1;
    cfg.act = act;
    cfg.shared = shared;
    struct kd_cross *m;
    cr_assert_eq(kd_cross_new(&cfg, seed, &m, &err), KD_OK, "%s", err.msg);
    struct kd_rng r;
    kd_rng_seed(&r, seed + 100);
    for (size_t i = 0; i < m->head->n_params; i++)
        m->head->params[i] += 0.1f * (float)kd_rng_normal(&r); /* non-zero biases */
    return m;
}

TestSuite(cross);

Test(cross, signals_match_a_hand_count)
{
    /* query words {1, 2, 3, 4} in order 1 2 3 4; document words 9 2 3 7 1, title {9, 1};
     * all features: query {1, 2, 3, 4, 20, 21}, document {2, 3, 20, 30, 31, 32, 33, 34} */
    static const int qa[] = {1, 2, 3, 4, 20, 21, 21, -1}, qw[] = {1, 2, 3, 4, -1};
    static const int da[] = {2, 3, 20, 30, 31, 32, 33, 34, -1}, dw[] = {9, 2, 3, 7, 1, -1}, dt[] = {9, 1, -1};
    const int *qa_[] = {qa}, *qw_[] = {qw}, *da_[] = {da}, *dw_[] = {dw}, *dt_[] = {dt};
    struct kd_features fqa, fqw, fda, fdw, fdt;
    features_from(&fqa, qa_, 1, 64);
    features_from(&fqw, qw_, 1, 64);
    features_from(&fda, da_, 1, 64);
    features_from(&fdw, dw_, 1, 64);
    features_from(&fdt, dt_, 1, 64);
    struct kd_error err = {0};
    struct kd_cross_side qs, ds;
    cr_assert_eq(kd_cross_side_init(&qs, &fqa, &fqw, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_cross_side_init(&ds, &fda, &fdw, &fdt, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(qs.off_all[1], 6, "the repeated id 21 counts once");
    struct kd_cross *m = make_model(64, 4, 1, KD_ACT_RELU, 1);
    for (int i = 0; i < 64; i++)
        m->idf[i] = 1.0f + (float)i / 10.0f; /* idf(w) = 1 + w / 10 */
    m->idf_max = 7.3f;
    float s[KD_CROSS_SIGNALS];
    kd_cross_signals(m, &qs, 0, &ds, 0, 4.0f, s);
    double idf_q = 1.1 + 1.2 + 1.3 + 1.4, idf_qd = 1.1 + 1.2 + 1.3, idf_d = 1.9 + 1.2 + 1.3 + 1.7 + 1.1;
    float want[KD_CROSS_SIGNALS] = {
        3.0f / 4.0f,                     /* words 1, 2, 3 of 4 */
        (float)(idf_qd / idf_q),         /* idf-weighted */
        3.0f / 6.0f,                     /* all features 2, 3, 20 of the query's 6 */
        3.0f / 8.0f,                     /* of the document's 8 */
        (float)log1p(1.0),               /* the bigram "2 3" */
        1.0f / 2.0f,                     /* title {9, 1}: 1 in the query */
        (float)(1.1 / (1.9 + 1.1)),      /* idf-weighted */
        (float)(idf_qd / idf_d),         /* idf(Wq & Wd) / idf(Wd) */
        (float)((1.2 + 1.3) / idf_q),    /* shared words outside the title: 2, 3 */
        2.0f / 4.0f,                     /* counted */
        (float)log1p(4.0),               /* |Wq| */
        (float)log1p(5.0),               /* |Wd| */
        (float)log1p(4.0),               /* bm25 4 */
        1.3f / 7.3f,                     /* the rarest shared gloss word, 3 */
    };
    for (int i = 0; i < KD_CROSS_SIGNALS; i++)
        cr_expect_float_eq(s[i], want[i], 1e-6, "signal %d: %g, expected %g", i, (double)s[i], (double)want[i]);
    kd_cross_signals(m, &qs, 0, &ds, 0, -2.0f, s);
    cr_expect_eq(s[12], 0.0f, "a negative bm25 score gives 0");
    m->cfg.use_bm25 = 0;
    kd_cross_signals(m, &qs, 0, &ds, 0, 4.0f, s);
    cr_expect_eq(s[12], 0.0f, "bm25 unused");
    kd_cross_free(m);
    kd_cross_side_release(&qs);
    kd_cross_side_release(&ds);
    kd_features_release(&fqa);
    kd_features_release(&fqw);
    kd_features_release(&fda);
    kd_features_release(&fdw);
    kd_features_release(&fdt);
}

Test(cross, side_refuses_mismatched_features)
{
    struct toy t;
    toy_init(&t, 3, 4, 32, 1);
    struct kd_cross_side s;
    struct kd_error err = {0};
    cr_assert_eq(kd_cross_side_init(&s, &t.q_all, &t.d_words, NULL, &err), KD_ERR_ARG);
    cr_expect_str_eq(err.msg, "the texts' features (3) and word features (4) differ in count");
    cr_assert_eq(kd_cross_side_init(&s, &t.d_all, &t.d_words, &t.q_words, &err), KD_ERR_ARG);
    cr_expect_str_eq(err.msg, "the texts (4) and the title word features (3) differ in count");
    kd_cross_side_release(&s);
    kd_cross_side_release(NULL);
    toy_release(&t);
}

/* L = sum_i c_i s_i over a batch of pairs, for finite differences. */
static double linear_loss(struct kd_cross *m, struct toy *t, const size_t *qi, const size_t *di, const float *bm25,
                          size_t B, const float *c)
{
    const float *s = kd_cross_forward(m, &t->qs, qi, &t->ds, di, bm25, B);
    cr_assert(s);
    double L = 0.0;
    for (size_t i = 0; i < B; i++)
        L += (double)c[i] * s[i];
    return L;
}

static void check_gradients(int shared)
{
    struct toy t;
    toy_init(&t, 5, 7, 32, 3);
    struct kd_cross *m = make_model(32, 4, shared, KD_ACT_TANH, 5);
    struct kd_error err = {0};
    cr_assert_eq(kd_cross_reserve(m, 6, 1000, &err), KD_OK, "%s", err.msg);
    size_t qi[] = {0, 1, 2, 3, 4, 1}, di[] = {0, 1, 2, 3, 4, 6}, B = 6;
    float bm25[] = {1.0f, 2.0f, 0.0f, 5.0f, 0.5f, 3.0f}, c[] = {0.7f, -1.1f, 0.4f, 1.3f, -0.6f, 0.9f};
    linear_loss(m, &t, qi, di, bm25, B, c);
    kd_cross_backward(m, c);
    /* the head's weights */
    const float h = 1e-2f;
    size_t n = m->head->n_params;
    float *g = malloc(n * sizeof *g);
    memcpy(g, m->head->grads, n * sizeof *g);
    for (size_t p = 0; p < n; p += 7) {
        float keep = m->head->params[p];
        m->head->params[p] = keep + h;
        double lp = linear_loss(m, &t, qi, di, bm25, B, c);
        m->head->params[p] = keep - h;
        double lm = linear_loss(m, &t, qi, di, bm25, B, c);
        m->head->params[p] = keep;
        double fd = (lp - lm) / (2.0 * h);
        cr_expect(fabs(fd - g[p]) <= 2e-3 + 2e-2 * fabs(fd), "head param %zu: analytic %g, numeric %g", p,
                  (double)g[p], fd);
    }
    free(g);
    /* the tables' rows the batch touched: run backward again to refresh the sparse gradients */
    linear_loss(m, &t, qi, di, bm25, B, c);
    kd_cross_backward(m, c);
    size_t checked = 0;
    for (int tb = 0; tb < (shared ? 1 : 2); tb++) {
        struct kd_sparse_grad *sg = &m->sg[tb];
        cr_assert(sg->n > 0);
        size_t nrows = sg->n;
        uint32_t *rows = malloc(nrows * sizeof *rows);
        float *gr = malloc(nrows * m->cfg.E * sizeof *gr);
        memcpy(rows, sg->rows, nrows * sizeof *rows);
        memcpy(gr, sg->g, nrows * m->cfg.E * sizeof *gr);
        for (size_t k = 0; k < nrows; k += 3)
            for (size_t e = 0; e < m->cfg.E; e++) {
                float *w = m->bag[tb].w + (size_t)rows[k] * m->cfg.E + e, keep = *w;
                *w = keep + h;
                double lp = linear_loss(m, &t, qi, di, bm25, B, c);
                *w = keep - h;
                double lm = linear_loss(m, &t, qi, di, bm25, B, c);
                *w = keep;
                double fd = (lp - lm) / (2.0 * h), an = gr[k * m->cfg.E + e];
                cr_expect(fabs(fd - an) <= 2e-3 + 2e-2 * fabs(fd), "table %d row %u col %zu: analytic %g, numeric %g",
                          tb, (unsigned)rows[k], e, an, fd);
                checked++;
            }
        free(rows);
        free(gr);
    }
    cr_expect(checked >= 20, "only %zu table entries checked", checked);
    kd_cross_free(m);
    toy_release(&t);
}

Test(cross, gradients_match_finite_differences_shared_table) { check_gradients(1); }
Test(cross, gradients_match_finite_differences_separate_tables) { check_gradients(0); }

Test(cross, lists_put_the_positive_first_and_skip_relevant_candidates)
{
    /* query 0 relevant to docs 5 and 7; query 1 to doc 2 */
    size_t off[] = {0, 2, 3}, doc[] = {5, 7, 2};
    int32_t rel[] = {1, 1, 1};
    struct kd_qrels_view qv = {2, off, doc, rel};
    size_t queries[] = {10, 11};
    int64_t cand[] = {7, 1, 5, 3, -1, /* query 0 */ 4, 6, -1, -1, -1};
    float bm[] = {9, 8, 7, 6, NAN, 5, 4, NAN, NAN, NAN};
    struct kd_rng r;
    kd_rng_seed(&r, 1);
    struct kd_cross_lists l;
    struct kd_error err = {0};
    cr_assert_eq(kd_cross_lists_build(&qv, queries, cand, bm, 5, 20, 3, &r, &l, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(l.n, 3);
    cr_assert_eq(l.L, 3);
    size_t want0[] = {5, 1, 3}, want1[] = {7, 1, 3};
    float bm0[] = {7, 8, 6}, bm1[] = {9, 8, 6};
    for (int j = 0; j < 3; j++) {
        cr_expect_eq(l.docs[j], want0[j]);
        cr_expect_eq(l.docs[3 + j], want1[j]);
        cr_expect_eq(l.bm25[j], bm0[j]);
        cr_expect_eq(l.bm25[3 + j], bm1[j]);
    }
    cr_expect_eq(l.query[0], 10);
    cr_expect_eq(l.query[2], 11);
    /* query 1: its positive is not a candidate (gets the lowest candidate score), 4 and 6 */
    cr_expect_eq(l.docs[6], 2);
    cr_expect_eq(l.bm25[6], 4);
    cr_expect_eq(l.docs[7], 4);
    cr_expect_eq(l.docs[8], 6);
    kd_cross_lists_release(&l);
    /* candidates run short: random documents, never a relevant one */
    cr_assert_eq(kd_cross_lists_build(&qv, queries, cand, NULL, 5, 8, 6, &r, &l, &err), KD_OK, "%s", err.msg);
    cr_expect_null(l.bm25);
    for (size_t i = 0; i < 2; i++)
        for (size_t j = 1; j < 6; j++) {
            size_t x = l.docs[i * 6 + j];
            cr_expect(x < 8 && x != 5 && x != 7, "list %zu slot %zu holds %zu", i, j, x);
        }
    kd_cross_lists_release(&l);
    cr_expect_eq(kd_cross_lists_build(&qv, queries, cand, bm, 5, 20, 1, &r, &l, &err), KD_ERR_ARG);
    cr_expect_str_eq(err.msg, "a training list needs a positive and at least one negative, got L = 1");
}

/* A toy task only lexical matching solves: query i's relevant document
 * holds its words; each list's negatives hold other words. */
static void toy_task(struct kd_features *qa, struct kd_features *qw, struct kd_features *da, struct kd_features *dw,
                     size_t n)
{
    struct kd_rng r;
    kd_rng_seed(&r, 77);
    int **qt = malloc(n * sizeof *qt), **dt = malloc(n * sizeof *dt);
    for (size_t i = 0; i < n; i++) {
        qt[i] = malloc(5 * sizeof **qt);
        dt[i] = malloc(7 * sizeof **dt);
        for (int j = 0; j < 4; j++)
            qt[i][j] = (int)kd_rng_below(&r, 4096);
        qt[i][4] = -1;
        dt[i][0] = qt[i][0];
        dt[i][1] = qt[i][1];
        for (int j = 2; j < 6; j++)
            dt[i][j] = (int)kd_rng_below(&r, 4096);
        dt[i][6] = -1;
    }
    features_from(qa, (const int *const *)qt, n, 4096);
    features_from(qw, (const int *const *)qt, n, 4096);
    features_from(da, (const int *const *)dt, n, 4096);
    features_from(dw, (const int *const *)dt, n, 4096);
    for (size_t i = 0; i < n; i++) {
        free(qt[i]);
        free(dt[i]);
    }
    free(qt);
    free(dt);
}

/* Trains the toy model; poison fills the table with NaN first. The head's
 * ReLU maps the NaN features to 0, so the loss stays finite: training must
 * still stop with KD_ERR_DIVERGED after the first epoch, when the weights are
 * looked at (*out is then NULL). */
static void train_toy(uint64_t seed, int poison, struct kd_cross **out, double *mrr)
{
    size_t n = 200, k = 10;
    struct kd_features qa, qw, da, dw;
    toy_task(&qa, &qw, &da, &dw, n);
    struct kd_error err = {0};
    struct kd_cross_side qs, ds;
    cr_assert_eq(kd_cross_side_init(&qs, &qa, &qw, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_cross_side_init(&ds, &da, &dw, NULL, &err), KD_OK, "%s", err.msg);
    struct kd_cross *m = make_model(4096, 8, 1, KD_ACT_RELU, seed);
    kd_cross_fit_idf(m, &ds);
    /* candidates: the relevant document among 9 others, in a shuffled order */
    size_t *off = malloc((n + 1) * sizeof *off), *doc = malloc(n * sizeof *doc), *queries = malloc(n * sizeof *queries);
    int32_t *rel = malloc(n * sizeof *rel);
    int64_t *cand = malloc(n * k * sizeof *cand);
    struct kd_rng r;
    kd_rng_seed(&r, 5);
    for (size_t i = 0; i < n; i++) {
        off[i] = i;
        doc[i] = i;
        rel[i] = 1;
        queries[i] = i;
        size_t at = (size_t)kd_rng_below(&r, k);
        for (size_t j = 0; j < k; j++)
            cand[i * k + j] = j == at ? (int64_t)i : (int64_t)((i + 1 + j * 17) % n);
    }
    off[n] = n;
    struct kd_qrels_view qv = {n, off, doc, rel};
    struct kd_cross_lists lists;
    cr_assert_eq(kd_cross_lists_build(&qv, queries, cand, NULL, k, n, 6, &r, &lists, &err), KD_OK, "%s", err.msg);
    struct kd_cross_train_config tc;
    kd_cross_train_config_init(&tc);
    tc.epochs = 8;
    tc.batch = 16;
    tc.seed = seed;
    tc.optim.lr = 3e-3f;
    struct kd_train_result res;
    if (poison) {
        for (size_t i = 0; i < (size_t)m->cfg.buckets * m->cfg.E; i++)
            m->bag[0].w[i] = NAN;
        cr_assert_eq(kd_cross_train(m, &qs, &ds, &lists, &tc, &res, &err), KD_ERR_DIVERGED);
        cr_expect_str_eq(err.msg, "training diverged: a weight is nan after epoch 1 (lower the learning rate, or look "
                                  "for huge or non-finite input values)");
        cr_expect_eq(res.epochs_done, 0);
        kd_cross_free(m);
        m = NULL;
    } else {
        cr_assert_eq(kd_cross_train(m, &qs, &ds, &lists, &tc, &res, &err), KD_OK, "%s", err.msg);
        cr_expect_eq(res.epochs_done, 8);
    }
    if (!m)
        goto release;
    size_t *ranked = malloc(n * k * sizeof *ranked);
    float *scores = malloc(n * k * sizeof *scores);
    cr_assert_eq(kd_cross_rerank(m, &qs, queries, &ds, cand, NULL, n, k, ranked, scores, &err), KD_OK, "%s",
                 err.msg);
    struct kd_rank_metrics rm;
    cr_assert_eq(kd_rank_evaluate(ranked, k, &qv, &rm, &err), KD_OK, "%s", err.msg);
    *mrr = rm.mean[KD_RM_MRR10];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 1; j < k; j++)
            cr_assert(scores[i * k + j - 1] >= scores[i * k + j]);
    kd_rank_metrics_release(&rm);
    free(ranked);
    free(scores);
release:
    kd_cross_lists_release(&lists);
    free(off);
    free(doc);
    free(queries);
    free(rel);
    free(cand);
    kd_cross_side_release(&qs);
    kd_cross_side_release(&ds);
    kd_features_release(&qa);
    kd_features_release(&qw);
    kd_features_release(&da);
    kd_features_release(&dw);
    *out = m;
}

Test(cross, training_learns_lexical_matching_and_is_seeded)
{
    struct kd_cross *a, *b;
    double mrr_a, mrr_b;
    train_toy(3, 0, &a, &mrr_a);
    train_toy(3, 0, &b, &mrr_b);
    cr_expect_gt(mrr_a, 0.95, "MRR@10 %g after training", mrr_a);
    cr_expect_eq(mrr_a, mrr_b);
    cr_expect_eq(memcmp(a->head->params, b->head->params, a->head->n_params * sizeof(float)), 0,
                 "same seed, same weights");
    cr_expect_eq(memcmp(a->bag[0].w, b->bag[0].w, (size_t)a->cfg.buckets * a->cfg.E * sizeof(float)), 0);
    kd_cross_free(a);
    kd_cross_free(b);
}

/* The cross-encoder's loop stops on weights that are not finite, as the MLP's does. */
Test(cross, training_stops_with_a_message_when_a_weight_is_not_finite)
{
    struct kd_cross *m;
    double mrr = 0;
    train_toy(3, 1, &m, &mrr);
    cr_expect_null(m);
}

Test(cross, rerank_sorts_scores_keeps_ties_in_candidate_order_and_pads)
{
    struct toy t;
    toy_init(&t, 3, 6, 32, 9);
    struct kd_cross *m = make_model(32, 4, 1, KD_ACT_RELU, 2);
    struct kd_error err = {0};
    size_t queries[] = {1, 2}, k = 5;
    int64_t cand[] = {0, 3, 5, 1, -1, 4, 4, -1, -1, -1}; /* query 2: document 4 twice, a tie */
    size_t ranked[10];
    float scores[10];
    cr_assert_eq(kd_cross_rerank(m, &t.qs, queries, &t.ds, cand, NULL, 2, k, ranked, scores, &err), KD_OK, "%s",
                 err.msg);
    size_t qi[] = {1, 1, 1, 1}, di[] = {0, 3, 5, 1};
    float s[4];
    cr_assert_eq(kd_cross_score(m, &t.qs, qi, &t.ds, di, NULL, 4, s, &err), KD_OK, "%s", err.msg);
    for (size_t j = 0; j < 4; j++) {
        int found = 0;
        for (size_t c = 0; c < 4; c++)
            if (ranked[j] == di[c]) {
                cr_expect_eq(scores[j], s[c], "document %zu", di[c]);
                found = 1;
            }
        cr_expect(found);
        if (j)
            cr_expect(scores[j - 1] >= scores[j]);
    }
    cr_expect_eq(ranked[4], SIZE_MAX);
    cr_expect(isinf(scores[4]) && scores[4] < 0);
    cr_expect_eq(ranked[5], 4);
    cr_expect_eq(ranked[6], 4);
    cr_expect_eq(ranked[7], SIZE_MAX);
    int64_t bad[] = {0, 9, -1, -1, -1, 0, -1, -1, -1, -1};
    cr_expect_eq(kd_cross_rerank(m, &t.qs, queries, &t.ds, bad, NULL, 2, k, ranked, NULL, &err), KD_ERR_ARG);
    cr_expect_str_eq(err.msg, "candidate 1 of query 0 names document 9 of 6");
    kd_cross_free(m);
    toy_release(&t);
}

Test(cross, config_check_names_the_field)
{
    struct kd_cross_config c;
    kd_cross_config_init(&c);
    struct kd_error err = {0};
    cr_expect_eq(kd_cross_config_check(&c, &err), KD_OK);
    c.hidden[1] = 2;
    cr_expect_eq(kd_cross_config_check(&c, &err), KD_ERR_ARG);
    cr_expect_str_eq(err.msg, "the head's last layer gives the score: its width must be 1, got 2");
    kd_cross_config_init(&c);
    c.n_layers = 0;
    cr_expect_eq(kd_cross_config_check(&c, &err), KD_ERR_ARG);
    cr_expect_str_eq(err.msg, "the head has 1 to 4 dense layers, got 0");
    kd_cross_config_init(&c);
    c.E = 0;
    cr_expect_eq(kd_cross_config_check(&c, &err), KD_ERR_ARG);
    cr_expect_str_eq(err.msg, "embedding_dim must be 1 to 4096, got 0");
}

/* ------------------------------------------------------------ save, load */

static char dir[64], path[128], path2[128];

static void setup_dir(void)
{
    strcpy(dir, "/tmp/kd-cross-XXXXXX");
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ce.safetensors", dir);
    snprintf(path2, sizeof path2, "%s/bad.safetensors", dir);
}

static void teardown_dir(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(cross_io, .init = setup_dir, .fini = teardown_dir);

static void round_trip(int shared)
{
    struct toy t;
    toy_init(&t, 4, 6, 32, 4);
    struct kd_cross *m = make_model(32, 4, shared, KD_ACT_GELU, 8);
    kd_cross_fit_idf(m, &t.ds);
    m->cfg.use_bm25 = 0;
    struct kd_error err = {0};
    const char *fz = "kd-text-v1 buckets=5 seed=1 words=2 chars=3-5";
    cr_assert_eq(kd_cross_save(m, path, fz, &err), KD_OK, "%s", err.msg);
    struct kd_cross *l;
    char *fz2;
    cr_assert_eq(kd_cross_load(path, &l, &fz2, &err), KD_OK, "%s", err.msg);
    cr_expect_str_eq(fz2, fz);
    free(fz2);
    cr_expect_eq(l->cfg.E, 4);
    cr_expect_eq(l->cfg.shared, shared);
    cr_expect_eq(l->cfg.use_bm25, 0);
    cr_expect_eq(l->cfg.act, KD_ACT_GELU);
    cr_expect_eq(l->cfg.n_layers, 2);
    cr_expect_eq(l->cfg.hidden[0], 8);
    for (int tb = 0; tb < (shared ? 1 : 2); tb++)
        cr_expect_eq(memcmp(l->bag[tb].w, m->bag[tb].w, 32 * 4 * sizeof(float)), 0, "table %d", tb);
    cr_expect_eq(memcmp(l->head->params, m->head->params, m->head->n_params * sizeof(float)), 0);
    cr_expect_eq(memcmp(l->idf, m->idf, 32 * sizeof(float)), 0);
    cr_expect_eq(l->idf_max, m->idf_max);
    size_t qi[] = {0, 1, 2, 3, 3}, di[] = {5, 4, 3, 2, 1};
    float bm[] = {1, 2, 3, 4, 5}, s1[5], s2[5];
    cr_assert_eq(kd_cross_score(m, &t.qs, qi, &t.ds, di, bm, 5, s1, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_cross_score(l, &t.qs, qi, &t.ds, di, bm, 5, s2, &err), KD_OK, "%s", err.msg);
    cr_expect_eq(memcmp(s1, s2, sizeof s1), 0, "scores identical after the round trip");
    kd_cross_free(l);
    kd_cross_free(m);
    toy_release(&t);
}

Test(cross_io, round_trip_is_exact_shared) { round_trip(1); }
Test(cross_io, round_trip_is_exact_separate) { round_trip(0); }

/* Writes path2: the tensors of a small model plus metadata, with one key
 * replaced (value NULL: left out) and an optional extra tensor. */
static void write_bad(const char *key, const char *value, const char *extra_tensor)
{
    struct kd_cross *m = make_model(16, 2, 1, KD_ACT_RELU, 1);
    struct kd_error err = {0};
    cr_assert_eq(kd_cross_save(m, path, "", &err), KD_OK, "%s", err.msg);
    struct kd_safetensors sf;
    cr_assert_eq(kd_safetensors_read(path, &sf, &err), KD_OK, "%s", err.msg);
    struct kd_st_writer w;
    kd_st_writer_init(&w);
    float *copies[16];
    size_t nc = 0;
    for (size_t i = 0; i < sf.n_tensors; i++) {
        const struct kd_st_tensor *t = &sf.tensors[i];
        size_t n = 1;
        for (int d = 0; d < t->ndim; d++)
            n *= (size_t)t->shape[d];
        float *c = malloc(n * sizeof *c);
        cr_assert_eq(kd_safetensors_copy_f32(&sf, t->name, c, n, 0, NULL, &err), KD_OK, "%s", err.msg);
        copies[nc++] = c;
        cr_assert_eq(kd_st_writer_add(&w, t->name, KD_DTYPE_F32, t->ndim, t->shape, c, &err), KD_OK);
    }
    static float extra[4] = {0};
    uint64_t shape[1] = {4};
    if (extra_tensor)
        cr_assert_eq(kd_st_writer_add(&w, extra_tensor, KD_DTYPE_F32, 1, shape, extra, &err), KD_OK);
    for (size_t i = 0; i < sf.n_meta; i++) {
        const char *k = sf.meta[i].key, *v = sf.meta[i].value;
        if (key && strcmp(k, key) == 0) {
            if (!value)
                continue;
            v = value;
        }
        cr_assert_eq(kd_st_writer_meta(&w, k, v, &err), KD_OK);
    }
    cr_assert_eq(kd_st_writer_save(&w, path2, &err), KD_OK, "%s", err.msg);
    kd_st_writer_release(&w);
    for (size_t i = 0; i < nc; i++)
        free(copies[i]);
    kd_safetensors_release(&sf);
    kd_cross_free(m);
}

static void expect_refused(const char *want_suffix)
{
    struct kd_cross *l = (struct kd_cross *)1;
    struct kd_error err = {0};
    cr_expect_neq(kd_cross_load(path2, &l, NULL, &err), KD_OK);
    cr_expect_null(l);
    char want[512];
    snprintf(want, sizeof want, "'%s'%s", path2, want_suffix);
    cr_expect_str_eq(err.msg, want);
}

Test(cross_io, load_refuses_inconsistent_files)
{
    write_bad("kd_format", "dual_encoder", NULL);
    expect_refused(" is not a kd cross-encoder (kd_format is 'dual_encoder', expected 'cross_encoder')");
    write_bad("use_bm25", NULL, NULL);
    expect_refused(" has no 'use_bm25' in its metadata; kd needs it to rebuild the model");
    write_bad("signals", "13", NULL);
    expect_refused(": metadata signals '13' does not match this kd's 14 lexical signals (the file comes from another "
                   "kd version)");
    write_bad("hidden", "8,1,", NULL);
    expect_refused(": metadata hidden '8,1,' ends with a comma");
    write_bad(NULL, NULL, "doc.bag.weight");
    expect_refused(" holds tensor 'doc.bag.weight' that its metadata (hidden '8,1', shared 1) does not explain");
    write_bad("embedding_dim", "3", NULL);
    struct kd_cross *l;
    struct kd_error err = {0};
    cr_expect_neq(kd_cross_load(path2, &l, NULL, &err), KD_OK);
    char want[256];
    snprintf(want, sizeof want, "'%s': tensor 'query.bag.weight' has shape [16, 2], expected [16, 3]", path2);
    cr_expect_str_eq(err.msg, want);
    write_bad("hidden", "8,2", NULL);
    cr_expect_eq(kd_cross_load(path2, &l, NULL, &err), KD_ERR_ARG);
    cr_expect(strstr(err.msg, "its width must be 1, got 2") != NULL, "%s", err.msg);
}

/* student: exact top-k search against a full sort, and the retrieval metrics
 * against values worked out by hand. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "student/kd_student.h"

struct cand {
    double s;
    size_t i;
};

/* best first: higher score, then lower index */
static int cmp_cand(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Top-k of every query by scoring all documents in double and sorting. With
 * integer-valued data every score is exact in float too, so the lists must
 * agree entry for entry, ties included. */
static void check_against_sort(size_t Q, size_t N, size_t E, size_t k, int small_ints, uint64_t seed)
{
    struct kd_error err = {0};
    struct kd_rng r;
    kd_rng_seed(&r, seed);
    struct kd_tensor q, d;
    kd_tensor_init(&q, Q, E, &err);
    kd_tensor_init(&d, N, E, &err);
    for (size_t i = 0; i < Q * E; i++)
        q.data[i] = small_ints ? (float)((int)kd_rng_below(&r, 3) - 1) : (float)kd_rng_normal(&r);
    for (size_t i = 0; i < N * E; i++)
        d.data[i] = small_ints ? (float)((int)kd_rng_below(&r, 3) - 1) : (float)kd_rng_normal(&r);
    size_t *idx = malloc(Q * k * sizeof *idx);
    float *sc = malloc(Q * k * sizeof *sc);
    cr_assert_eq(kd_search_topk(&q, &d, k, idx, sc, &err), KD_OK, "%s", err.msg);
    struct cand *all = malloc(N * sizeof *all);
    size_t ties = 0;
    for (size_t i = 0; i < Q; i++) {
        for (size_t j = 0; j < N; j++) {
            all[j].s = kd_sdot(E, kd_tensor_row(&q, i), kd_tensor_row(&d, j));
            all[j].i = j;
        }
        qsort(all, N, sizeof *all, cmp_cand);
        for (size_t r2 = 0; r2 < k; r2++) {
            size_t got = idx[i * k + r2];
            if (r2 >= N) {
                cr_assert(got == SIZE_MAX && sc[i * k + r2] == -INFINITY, "query %zu slot %zu past N", i, r2);
                continue;
            }
            if ((r2 > 0 && all[r2].s == all[r2 - 1].s) || (r2 + 1 < N && all[r2 + 1].s == all[r2].s))
                ties++; /* a tie inside the list or at its cut */
            if (small_ints) {
                cr_assert_eq(got, all[r2].i, "query %zu rank %zu: search %zu (%g), sort %zu (%g)", i, r2 + 1, got,
                             sc[i * k + r2], all[r2].i, all[r2].s);
                cr_assert(sc[i * k + r2] == (float)all[r2].s);
            } else {
                /* float rounding may swap documents whose scores differ by less than it */
                cr_assert(fabs(sc[i * k + r2] - all[r2].s) < 1e-4, "query %zu rank %zu", i, r2 + 1);
                if (got != all[r2].i)
                    cr_assert(fabs(all[r2].s - kd_sdot(E, kd_tensor_row(&q, i), kd_tensor_row(&d, got))) < 1e-4);
            }
        }
    }
    if (small_ints)
        cr_assert_gt(ties, 0, "the integer data should produce ties");
    free(all);
    free(idx);
    free(sc);
    kd_tensor_release(&q);
    kd_tensor_release(&d);
}

Test(student, search_equals_a_full_sort_with_ties_going_to_the_lower_index)
{
    /* 700 queries and 1,300 documents cross the 512 x 512 blocks */
    check_against_sort(700, 1300, 6, 10, 1, 1);
    check_against_sort(5, 50, 3, 50, 1, 2);  /* k = N */
    check_against_sort(3, 7, 4, 12, 1, 3);   /* k > N */
    check_against_sort(40, 3000, 16, 100, 0, 4);
    check_against_sort(17, 1025, 8, 1, 1, 5); /* k = 1, a partial last block */
}

Test(student, search_refuses_mismatched_widths_and_k_zero)
{
    struct kd_error err = {0};
    struct kd_tensor q, d;
    kd_tensor_init(&q, 2, 3, &err);
    kd_tensor_init(&d, 4, 5, &err);
    size_t idx[2];
    float sc[2];
    cr_assert_eq(kd_search_topk(&q, &d, 1, idx, sc, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "queries have width 3, documents 5");
    cr_assert_eq(kd_search_topk(&q, &q, 0, idx, sc, &err), KD_ERR_ARG);
    kd_tensor_release(&q);
    kd_tensor_release(&d);
}

/* ------------------------------------------------------------ metrics */

#define X SIZE_MAX

Test(student, metrics_match_values_worked_out_by_hand)
{
    /* query 0: grades doc3 = 2, doc5 = 1, doc7 = 0 (judged not relevant)
     * query 1: only a non-relevant judgment: skipped
     * query 2: doc0 = 1, doc9 = 1, doc11 = 3; doc11 ranked 12th, doc0 not retrieved
     * query 3: doc4 = 1, a list shorter than k (ended by SIZE_MAX) that misses it */
    size_t off[5] = {0, 3, 4, 7, 8};
    size_t doc[8] = {3, 5, 7, 2, 0, 9, 11, 4};
    int32_t rel[8] = {2, 1, 0, 0, 1, 1, 3, 1};
    struct kd_qrels_view qv = {4, off, doc, rel};
    enum { K = 12 };
    size_t ranked[4][K] = {
        {5, 3, 1, 7, 20, 21, 22, 23, 24, 25, 26, 27},
        {2, 1, 0, 3, 4, 5, 6, 7, 8, 9, 10, 12},
        {2, 4, 9, 30, 31, 32, 33, 34, 35, 36, 37, 11},
        {1, 2, X, X, X, X, X, X, X, X, X, X},
    };
    struct kd_rank_metrics rm;
    struct kd_error err = {0};
    cr_assert_eq(kd_rank_evaluate(&ranked[0][0], K, &qv, &rm, &err), KD_OK);
    cr_assert_eq(rm.n_evaluated, 3);
    cr_assert_eq(rm.n_skipped, 1);
    double *p0 = rm.per_query, *p1 = rm.per_query + 4, *p2 = rm.per_query + 8, *p3 = rm.per_query + 12;
    /* q0: DCG = 1/log2(2) + 2/log2(3); IDCG = 2/log2(2) + 1/log2(3) */
    double l3 = log2(3.0);
    cr_assert_float_eq(p0[KD_RM_NDCG10], (1 + 2 / l3) / (2 + 1 / l3), 1e-12);
    cr_assert_float_eq(p0[KD_RM_NDCG10], 0.859719, 1e-6);
    cr_assert_eq(p0[KD_RM_MRR10], 1.0);
    cr_assert_eq(p0[KD_RM_RECALL10], 1.0);
    cr_assert_eq(p0[KD_RM_RECALL100], 1.0);
    for (int m = 0; m < KD_RM_COUNT; m++)
        cr_assert(isnan(p1[m]), "a query without relevant documents has no value");
    /* q2: doc9 at rank 3: DCG = 1/log2(4) = 0.5; IDCG = 3 + 1/log2(3) + 1/log2(4) */
    cr_assert_float_eq(p2[KD_RM_NDCG10], 0.5 / (3 + 1 / l3 + 0.5), 1e-12);
    cr_assert_float_eq(p2[KD_RM_NDCG10], 0.121038, 1e-6);
    cr_assert_float_eq(p2[KD_RM_MRR10], 1.0 / 3, 1e-12);
    cr_assert_float_eq(p2[KD_RM_RECALL10], 1.0 / 3, 1e-12);
    cr_assert_float_eq(p2[KD_RM_RECALL100], 2.0 / 3, 1e-12);
    for (int m = 0; m < KD_RM_COUNT; m++)
        cr_assert_eq(p3[m], 0.0);
    cr_assert_float_eq(rm.mean[KD_RM_NDCG10], (p0[0] + p2[0]) / 3, 1e-12);
    cr_assert_float_eq(rm.mean[KD_RM_MRR10], (1 + 1.0 / 3) / 3, 1e-12);
    cr_assert_float_eq(rm.mean[KD_RM_RECALL100], (1 + 2.0 / 3) / 3, 1e-12);
    cr_assert_str_eq(kd_rank_metric_name(KD_RM_RECALL100), "recall@100");
    kd_rank_metrics_release(&rm);
}

Test(student, metrics_follow_the_search_tie_break)
{
    /* one query, four documents; docs 1 and 2 tie for first place; the
     * relevant one is doc 2, so the lower index (1) comes first and the
     * relevant document is second: MRR 1/2, nDCG 1/log2(3) */
    struct kd_error err = {0};
    float qv[2] = {1, 0}, dv[8] = {0.5f, 0, 1, 0, 1, 5, -1, 0};
    struct kd_tensor q = kd_tensor_view(qv, 1, 2), d = kd_tensor_view(dv, 4, 2);
    size_t idx[4];
    float sc[4];
    cr_assert_eq(kd_search_topk(&q, &d, 4, idx, sc, &err), KD_OK);
    cr_assert(idx[0] == 1 && idx[1] == 2 && idx[2] == 0 && idx[3] == 3);
    size_t off[2] = {0, 1}, doc[1] = {2};
    int32_t rel[1] = {1};
    struct kd_qrels_view qr = {1, off, doc, rel};
    struct kd_rank_metrics rm;
    cr_assert_eq(kd_rank_evaluate(idx, 4, &qr, &rm, &err), KD_OK);
    cr_assert_float_eq(rm.mean[KD_RM_MRR10], 0.5, 1e-12);
    cr_assert_float_eq(rm.mean[KD_RM_NDCG10], 1 / log2(3.0), 1e-12);
    kd_rank_metrics_release(&rm);
}

Test(student, ndcg_counts_only_the_ten_best_grades_in_the_ideal_ranking)
{
    /* twelve relevant documents of grade 1 and the first ten retrieved: nDCG 1, recall@10 10/12 */
    size_t off[2] = {0, 12}, doc[12], ranked[12];
    int32_t rel[12];
    for (size_t i = 0; i < 12; i++) {
        doc[i] = i;
        rel[i] = 1;
        ranked[i] = i < 10 ? i : 100 + i;
    }
    struct kd_qrels_view qv = {1, off, doc, rel};
    struct kd_rank_metrics rm;
    struct kd_error err = {0};
    cr_assert_eq(kd_rank_evaluate(ranked, 12, &qv, &rm, &err), KD_OK);
    cr_assert_float_eq(rm.mean[KD_RM_NDCG10], 1.0, 1e-12);
    cr_assert_float_eq(rm.mean[KD_RM_RECALL10], 10.0 / 12, 1e-12);
    kd_rank_metrics_release(&rm);
}

/* Choosing retrieval queries: the margin and entropy scores of a student's
 * candidate scores against values worked out by hand and against a naive
 * reference (softmax written out, then -sum p log p), and the top-b and
 * random choices over them. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/kd_sampling.h"

Test(sampling, retrieval_margin_is_minus_the_gap_between_the_top_two)
{
    /* top two 3 and 2.5 (the order in the list does not matter): -0.5;
     * a tie at the top: 0; a single candidate: 0 */
    const float s[] = {1.0f, 3.0f, 2.5f, -4.0f, 7.0f, 7.0f, 6.0f, 0.0f};
    double sc[2];
    kd_retrieval_select_scores(KD_SELECT_MARGIN, s, 2, 4, 1.0, sc);
    cr_assert_float_eq(sc[0], -0.5, 1e-12);
    cr_assert_float_eq(sc[1], 0.0, 1e-12);
    const float one[] = {5.0f};
    kd_retrieval_select_scores(KD_SELECT_MARGIN, one, 1, 1, 1.0, sc);
    cr_assert_eq(sc[0], 0.0);
}

Test(sampling, retrieval_entropy_matches_hand_values)
{
    /* s = (0, ln 3), T = 1: p = (1/4, 3/4), H = -(1/4 ln 1/4 + 3/4 ln 3/4)
     * = 0.5623351446188083; the same p from s = (0, 2 ln 3) at T = 2; four
     * equal scores: ln 4; one candidate far ahead: ~0 */
    const float s1[] = {0.0f, (float)log(3.0)};
    const float s2[] = {0.0f, (float)(2.0 * log(3.0))};
    const float s3[] = {2.0f, 2.0f, 2.0f, 2.0f};
    const float s4[] = {0.0f, 1000.0f};
    double h;
    kd_retrieval_select_scores(KD_SELECT_ENTROPY, s1, 1, 2, 1.0, &h);
    cr_assert_float_eq(h, 0.5623351446188083, 1e-7);
    kd_retrieval_select_scores(KD_SELECT_ENTROPY, s2, 1, 2, 2.0, &h);
    cr_assert_float_eq(h, 0.5623351446188083, 1e-7);
    kd_retrieval_select_scores(KD_SELECT_ENTROPY, s3, 1, 4, 0.5, &h);
    cr_assert_float_eq(h, log(4.0), 1e-12);
    kd_retrieval_select_scores(KD_SELECT_ENTROPY, s4, 1, 2, 1.0, &h);
    cr_assert(h >= 0.0 && h < 1e-12, "H %g", h);
}

/* The naive reference: p = exp(s / T) / sum, H = -sum p log p. */
static double naive_entropy(const float *s, size_t L, double T)
{
    double Z = 0.0, h = 0.0;
    for (size_t j = 0; j < L; j++)
        Z += exp((double)s[j] / T);
    for (size_t j = 0; j < L; j++) {
        double p = exp((double)s[j] / T) / Z;
        h -= p > 0.0 ? p * log(p) : 0.0;
    }
    return h;
}

static double naive_margin(const float *s, size_t L)
{
    /* sort a copy, descending */
    float c[64];
    memcpy(c, s, L * sizeof *c);
    for (size_t a = 0; a < L; a++)
        for (size_t b = a + 1; b < L; b++)
            if (c[b] > c[a]) {
                float t = c[a];
                c[a] = c[b];
                c[b] = t;
            }
    return -((double)c[0] - (double)c[1]);
}

Test(sampling, retrieval_scores_match_a_naive_reference)
{
    enum { N = 50, L = 20 };
    float *s = malloc(N * L * sizeof *s);
    double sc[N];
    cr_assert(s);
    struct kd_rng rng;
    kd_rng_seed(&rng, 7);
    for (size_t i = 0; i < N * L; i++)
        s[i] = (float)(kd_rng_uniform(&rng) * 6.0 - 3.0);
    const double temps[] = {0.3, 1.0, 4.0};
    for (size_t t = 0; t < 3; t++) {
        kd_retrieval_select_scores(KD_SELECT_ENTROPY, s, N, L, temps[t], sc);
        for (size_t i = 0; i < N; i++)
            cr_assert_float_eq(sc[i], naive_entropy(s + i * L, L, temps[t]), 1e-9, "list %zu T %g", i, temps[t]);
    }
    kd_retrieval_select_scores(KD_SELECT_MARGIN, s, N, L, 1.0, sc);
    for (size_t i = 0; i < N; i++)
        cr_assert_float_eq(sc[i], naive_margin(s + i * L, L), 1e-12, "list %zu", i);
    free(s);
}

Test(sampling, retrieval_margin_picks_the_smallest_gaps_ties_to_the_lower_index)
{
    /* gaps: 2, 0.5, 1, 0.5, 3 -> picks 1 and 3 (tied, lower first), then 2 */
    const float s[] = {4, 2, 0, 1.5f, 1, 0, 3, 2, 0, 9, 8.5f, 0, 3, 0, 0};
    struct kd_selection out[3];
    size_t n = 0;
    struct kd_error err = {0};
    cr_assert_eq(kd_retrieval_select(KD_SELECT_MARGIN, 3, 1.0, 1, s, 5, 3, out, &n, &err), KD_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(out[0].index, 1);
    cr_assert_eq(out[1].index, 3);
    cr_assert_eq(out[2].index, 2);
    cr_assert_float_eq(out[0].score, -0.5, 1e-12);
    cr_assert_float_eq(out[2].score, -1.0, 1e-12);
    cr_assert_eq(out[0].probability, 1.0);
    cr_assert_eq(out[0].weight, 1.0);
}

Test(sampling, retrieval_entropy_picks_the_flattest_lists)
{
    /* list 2 is flat (ln 3), list 0 nearly so, list 1 peaked */
    const float s[] = {1, 1.2f, 0.9f, 10, 0, 0, 5, 5, 5};
    struct kd_selection out[2];
    size_t n = 0;
    struct kd_error err = {0};
    cr_assert_eq(kd_retrieval_select(KD_SELECT_ENTROPY, 2, 1.0, 1, s, 3, 3, out, &n, &err), KD_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(out[0].index, 2);
    cr_assert_eq(out[1].index, 0);
    cr_assert_float_eq(out[0].score, log(3.0), 1e-9);
}

Test(sampling, retrieval_random_draws_distinct_queries_and_caps_at_n)
{
    struct kd_selection out[10];
    size_t n = 0;
    struct kd_error err = {0};
    cr_assert_eq(kd_retrieval_select(KD_SELECT_RANDOM, 4, 1.0, 3, NULL, 10, 0, out, &n, &err), KD_OK);
    cr_assert_eq(n, 4);
    unsigned char seen[10] = {0};
    for (size_t i = 0; i < n; i++) {
        cr_assert(out[i].index < 10 && !seen[out[i].index]);
        seen[out[i].index] = 1;
        cr_assert_float_eq(out[i].probability, 0.4, 1e-12);
    }
    /* the same seed, the same draw; a budget beyond n takes all */
    struct kd_selection again[10];
    size_t m = 0;
    cr_assert_eq(kd_retrieval_select(KD_SELECT_RANDOM, 4, 1.0, 3, NULL, 10, 0, again, &m, &err), KD_OK);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(again[i].index, out[i].index);
    cr_assert_eq(kd_retrieval_select(KD_SELECT_RANDOM, 20, 1.0, 3, NULL, 10, 0, out, &n, &err), KD_OK);
    cr_assert_eq(n, 10);
}

Test(sampling, retrieval_select_refuses_bad_arguments)
{
    const float s[] = {1, 2};
    struct kd_selection out[1];
    size_t n = 5;
    struct kd_error err = {0};
    cr_assert_eq(kd_retrieval_select(KD_SELECT_IWES, 1, 1.0, 1, s, 1, 2, out, &n, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "strategy iwes does not choose queries (expected random, margin or entropy)");
    cr_assert_eq(n, 0);
    cr_assert_eq(kd_retrieval_select(KD_SELECT_ENTROPY, 1, 0.0, 1, s, 1, 2, out, &n, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "the entropy's temperature must be positive, got 0");
    cr_assert_eq(kd_retrieval_select(KD_SELECT_MARGIN, 1, 1.0, 1, s, 1, 0, out, &n, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "candidate lists of length 0 carry no score");
    cr_assert(kd_retrieval_select_supported(KD_SELECT_RANDOM) && kd_retrieval_select_supported(KD_SELECT_MARGIN) &&
              kd_retrieval_select_supported(KD_SELECT_ENTROPY) && !kd_retrieval_select_supported(KD_SELECT_RAD));
}

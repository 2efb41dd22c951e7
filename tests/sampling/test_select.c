/* selection: scores against hand-computed values, picks against pools built
 * so the answer is known, sampling frequencies against pi by Monte Carlo,
 * and RAD against a naive reference of kd's definition. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/kd_sampling.h"

static void assert_distinct(const size_t *idx, size_t m, size_t n)
{
    unsigned char *seen = calloc(n, 1);
    cr_assert(seen);
    for (size_t t = 0; t < m; t++) {
        cr_assert(idx[t] < n, "index %zu out of range %zu", idx[t], n);
        cr_assert(!seen[idx[t]], "index %zu chosen twice", idx[t]);
        seen[idx[t]] = 1;
    }
    free(seen);
}

static void assert_distinct_selection(const struct kd_selection *out, size_t m, size_t n)
{
    size_t *idx = malloc((m ? m : 1) * sizeof *idx);
    cr_assert(idx);
    for (size_t t = 0; t < m; t++)
        idx[t] = out[t].index;
    assert_distinct(idx, m, n);
    free(idx);
}

static double sum(const double *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return s;
}

/* Random rows of probabilities (N, C) with varied sharpness. */
static void random_probs(float *p, size_t N, size_t C, uint64_t seed)
{
    struct kd_rng r;
    kd_rng_seed(&r, seed);
    for (size_t i = 0; i < N; i++) {
        double sharp = 0.2 + 6.0 * kd_rng_uniform(&r), z = 0.0, e[64];
        for (size_t c = 0; c < C; c++)
            z += e[c] = exp(sharp * kd_rng_normal(&r));
        for (size_t c = 0; c < C; c++)
            p[i * C + c] = (float)(e[c] / z);
    }
}

/* ------------------------------------------------------------ names, config */

Test(sampling, select_names_round_trip_through_parse)
{
    for (int k = 0; k < KD_SELECT_N_KINDS; k++) {
        enum kd_select_kind got = KD_SELECT_RANDOM;
        struct kd_error err = {0};
        cr_assert_eq(kd_select_parse(kd_select_name((enum kd_select_kind)k), &got, &err), KD_OK);
        cr_assert_eq((int)got, k);
    }
    cr_assert_str_eq(kd_select_name(KD_SELECT_LEAST_CONFIDENCE), "least-confidence");
    cr_assert_str_eq(kd_select_name(KD_SELECT_IWES_TWO), "iwes-two");
}

Test(sampling, select_parse_rejects_an_unknown_name_listing_the_choices)
{
    enum kd_select_kind got;
    struct kd_error err = {0};
    cr_assert_eq(kd_select_parse("foo", &got, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "unknown selection strategy 'foo' (expected random, entropy, margin, "
                              "least-confidence, iwes, iwes-two, rad)");
}

Test(sampling, select_config_defaults_are_margin_cap_ten_seed_one)
{
    struct kd_select_config c;
    memset(&c, 0xAB, sizeof c);
    kd_select_config_init(&c);
    cr_assert_eq(c.kind, KD_SELECT_MARGIN);
    cr_assert_eq(c.budget, 0);
    cr_assert_eq(c.weight_cap, 10.0);
    cr_assert_eq(c.teacher_error, 0.0);
    cr_assert_eq(c.seed, 1);
}

/* ------------------------------------------------------------------ scores */

Test(sampling, scores_equal_hand_computed_values)
{
    /* Row 0 (1/2, 1/4, 1/4): H = 1.5 ln 2. Row 1 (1, 0, 0): every score 0
     * (0 log 0 = 0). Row 2 (0.6, 0.3, 0.1). */
    const float p[] = {0.5f, 0.25f, 0.25f, 1.0f, 0.0f, 0.0f, 0.6f, 0.3f, 0.1f};
    const float q[] = {0.8f, 0.1f, 0.1f, 1.0f, 0.0f, 0.0f, 0.6f, 0.3f, 0.1f};
    double s[3];
    double h2 = -(0.6 * log(0.6) + 0.3 * log(0.3) + 0.1 * log(0.1));

    kd_select_scores(KD_SELECT_ENTROPY, p, NULL, 3, 3, s);
    cr_assert_float_eq(s[0], 1.5 * log(2.0), 1e-12);
    cr_assert_eq(s[1], 0.0);
    cr_assert_float_eq(s[2], h2, 1e-7);

    kd_select_scores(KD_SELECT_MARGIN, p, NULL, 3, 3, s);
    cr_assert_float_eq(s[0], 0.75, 1e-12);
    cr_assert_eq(s[1], 0.0);
    cr_assert_float_eq(s[2], 0.7, 1e-7);

    kd_select_scores(KD_SELECT_RAD, p, NULL, 3, 3, s); /* gain = the margin score */
    cr_assert_float_eq(s[0], 0.75, 1e-12);
    cr_assert_float_eq(s[2], 0.7, 1e-7);

    kd_select_scores(KD_SELECT_LEAST_CONFIDENCE, p, NULL, 3, 3, s);
    cr_assert_float_eq(s[0], 0.5, 1e-12);
    cr_assert_eq(s[1], 0.0);
    cr_assert_float_eq(s[2], 0.4, 1e-7);

    kd_select_scores(KD_SELECT_IWES, p, NULL, 3, 3, s);
    cr_assert_float_eq(s[0], 1.5 * log(2.0) / log(3.0), 1e-12);
    cr_assert_eq(s[1], 0.0);
    cr_assert_float_eq(s[2], h2 / log(3.0), 1e-7);

    /* Row 0: |1/2 ln 1/2 - 0.8 ln 0.8| + 2 |1/4 ln 1/4 - 0.1 ln 0.1|, over ln 3. */
    kd_select_scores(KD_SELECT_IWES_TWO, p, q, 3, 3, s);
    double d0 = fabs(0.5 * log(0.5) - 0.8 * log(0.8)) + 2.0 * fabs(0.25 * log(0.25) - 0.1 * log(0.1));
    cr_assert_float_eq(s[0], d0 / log(3.0), 1e-7);
    cr_assert_eq(s[1], 0.0);
    cr_assert_eq(s[2], 0.0);

    kd_select_scores(KD_SELECT_RANDOM, p, NULL, 3, 3, s);
    cr_assert(s[0] == 0.0 && s[1] == 0.0 && s[2] == 0.0);
}

Test(sampling, iwes_two_score_is_zero_for_identical_students)
{
    float p[200 * 10];
    double s[200];
    random_probs(p, 200, 10, 5);
    kd_select_scores(KD_SELECT_IWES_TWO, p, p, 200, 10, s);
    for (size_t i = 0; i < 200; i++)
        cr_assert_eq(s[i], 0.0, "row %zu: %g", i, s[i]);
}

Test(sampling, iwes_two_score_is_capped_at_one)
{
    /* Students sure of disjoint halves: sum = 2 ln 3 > ln 6, so P = 1. */
    const float p[] = {1 / 3.f, 1 / 3.f, 1 / 3.f, 0, 0, 0};
    const float q[] = {0, 0, 0, 1 / 3.f, 1 / 3.f, 1 / 3.f};
    double s;
    kd_select_scores(KD_SELECT_IWES_TWO, p, q, 1, 6, &s);
    cr_assert_eq(s, 1.0);
}

Test(sampling, uniform_row_has_iwes_score_one)
{
    const float p[] = {0.25f, 0.25f, 0.25f, 0.25f};
    double s;
    kd_select_scores(KD_SELECT_IWES, p, NULL, 1, 4, &s);
    cr_assert_float_eq(s, 1.0, 1e-12);
}

/* ------------------------------------------------- deterministic strategies */

enum { POOL_N = 50, POOL_C = 4 };

/* Confident rows everywhere but 19 (uniform), 7 and 33 (less sure), in that
 * order of uncertainty under entropy, margin and least confidence alike. */
static void uncertain_pool(float *p)
{
    for (size_t i = 0; i < POOL_N; i++) {
        float *r = p + i * POOL_C;
        r[0] = 0.97f, r[1] = r[2] = r[3] = 0.01f;
    }
    const float u19[] = {0.25f, 0.25f, 0.25f, 0.25f}, u7[] = {0.1f, 0.4f, 0.3f, 0.2f},
                u33[] = {0.1f, 0.1f, 0.2f, 0.6f};
    memcpy(p + 19 * POOL_C, u19, sizeof u19);
    memcpy(p + 7 * POOL_C, u7, sizeof u7);
    memcpy(p + 33 * POOL_C, u33, sizeof u33);
}

Test(sampling, uncertainty_kinds_pick_the_most_uncertain_rows_best_first)
{
    float p[POOL_N * POOL_C];
    uncertain_pool(p);
    const enum kd_select_kind kinds[] = {KD_SELECT_ENTROPY, KD_SELECT_MARGIN, KD_SELECT_LEAST_CONFIDENCE};
    for (int k = 0; k < 3; k++) {
        struct kd_select_config cfg;
        kd_select_config_init(&cfg);
        cfg.kind = kinds[k];
        cfg.budget = 5;
        struct kd_selection out[5];
        size_t n = 0;
        struct kd_error err = {0};
        double s[POOL_N];
        kd_select_scores(kinds[k], p, NULL, POOL_N, POOL_C, s);
        cr_assert_eq(kd_select(&cfg, p, NULL, POOL_N, POOL_C, out, &n, &err), KD_OK, "%s", err.msg);
        cr_assert_eq(n, 5);
        /* The three uncertain rows, then the tied confident rows from index 0. */
        const size_t want[] = {19, 7, 33, 0, 1};
        for (int t = 0; t < 5; t++) {
            cr_assert_eq(out[t].index, want[t], "%s pick %d: row %zu", kd_select_name(kinds[k]), t, out[t].index);
            cr_assert_eq(out[t].score, s[want[t]]);
            cr_assert_eq(out[t].probability, 1.0);
            cr_assert_eq(out[t].weight, 1.0);
        }
    }
}

Test(sampling, budget_at_least_pool_size_takes_every_row_with_probability_one)
{
    float p[POOL_N * POOL_C];
    uncertain_pool(p);
    for (int k = 0; k < KD_SELECT_N_KINDS; k++) {
        struct kd_select_config cfg;
        kd_select_config_init(&cfg);
        cfg.kind = (enum kd_select_kind)k;
        cfg.budget = POOL_N + 7;
        cfg.weight_cap = 4.0;
        cfg.teacher_error = 0.3;
        struct kd_selection out[POOL_N + 7];
        size_t n = 0;
        struct kd_error err = {0};
        cr_assert_eq(kd_select(&cfg, p, p, POOL_N, POOL_C, out, &n, &err), KD_OK, "%s", err.msg);
        cr_assert_eq(n, POOL_N, "%s", kd_select_name(cfg.kind));
        assert_distinct_selection(out, n, POOL_N);
        for (size_t t = 0; t < n; t++) {
            cr_assert_eq(out[t].probability, 1.0, "%s", kd_select_name(cfg.kind));
            cr_assert_eq(out[t].weight, 1.0, "%s", kd_select_name(cfg.kind));
        }
    }
}

Test(sampling, zero_budget_chooses_nothing)
{
    float p[POOL_N * POOL_C];
    uncertain_pool(p);
    struct kd_select_config cfg;
    kd_select_config_init(&cfg);
    cfg.kind = KD_SELECT_IWES;
    struct kd_selection out[1];
    size_t n = 99;
    struct kd_error err = {0};
    cr_assert_eq(kd_select(&cfg, p, NULL, POOL_N, POOL_C, out, &n, &err), KD_OK);
    cr_assert_eq(n, 0);
}

/* ------------------------------------------------------------------ random */

Test(sampling, random_is_distinct_reproducible_by_seed_and_uniform)
{
    enum { N = 10, B = 3, DRAWS = 3000 };
    struct kd_select_config cfg;
    kd_select_config_init(&cfg);
    cfg.kind = KD_SELECT_RANDOM;
    cfg.budget = B;
    struct kd_selection a[B], b[B];
    size_t na, nb, count[N] = {0};
    struct kd_error err = {0};
    for (uint64_t seed = 1; seed <= DRAWS; seed++) {
        cfg.seed = seed;
        cr_assert_eq(kd_select(&cfg, NULL, NULL, N, 0, a, &na, &err), KD_OK, "%s", err.msg);
        cr_assert_eq(kd_select(&cfg, NULL, NULL, N, 0, b, &nb, &err), KD_OK);
        cr_assert_eq(na, B);
        cr_assert_eq(memcmp(a, b, sizeof a), 0, "seed %llu is not reproducible", (unsigned long long)seed);
        assert_distinct_selection(a, na, N);
        for (int t = 0; t < B; t++) {
            cr_assert_eq(a[t].probability, 0.3);
            cr_assert_eq(a[t].weight, 1.0);
            cr_assert_eq(a[t].score, 0.0);
            count[a[t].index]++;
        }
    }
    /* Each row: 900 expected, standard error sqrt(3000 * 0.3 * 0.7) = 25. */
    for (int i = 0; i < N; i++)
        cr_assert(fabs((double)count[i] - 900.0) < 5 * 25.1, "row %d chosen %zu times of 3000 (900 expected)", i,
                  count[i]);
    /* Different seeds give different draws. */
    cfg.seed = 1;
    kd_select(&cfg, NULL, NULL, N, 0, a, &na, &err);
    cfg.seed = 2;
    kd_select(&cfg, NULL, NULL, N, 0, b, &nb, &err);
    cr_assert_neq(memcmp(a, b, sizeof a), 0);
}

/* ------------------------------------------------- inclusion probabilities */

Test(sampling, inclusion_probabilities_cap_at_one_and_share_the_rest)
{
    /* Uncapped l = 2/15 gives the first row 4/3; capped, the rest share 1. */
    const double s[] = {10, 1, 1, 1, 1, 1};
    double pi[6];
    kd_inclusion_probabilities(s, 6, 2.0, pi);
    cr_assert_eq(pi[0], 1.0);
    for (int i = 1; i < 6; i++)
        cr_assert_float_eq(pi[i], 0.2, 1e-15);

    /* No cap binds: proportional, pi = 2 s / 10. */
    const double s2[] = {1, 2, 3, 4};
    kd_inclusion_probabilities(s2, 4, 2.0, pi);
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(pi[i], 0.2 * s2[i], 1e-15);

    /* A chain of caps: 8 (l = 4/17) and 4 (l = 1/3) capped, then l = 2/5. */
    const double s3[] = {8, 4, 2, 1, 1, 1};
    const double want3[] = {1, 1, 0.8, 0.4, 0.4, 0.4};
    kd_inclusion_probabilities(s3, 6, 4.0, pi);
    for (int i = 0; i < 6; i++)
        cr_assert_float_eq(pi[i], want3[i], 1e-15, "pi[%d] = %.17g", i, pi[i]);
}

Test(sampling, inclusion_probabilities_floor_zero_scores_and_spread_all_zero_uniformly)
{
    /* Zero scores get 1e-6 of the largest: l (1 + 3e-6) = 1. */
    const double s[] = {1, 0, 0, 0};
    double pi[4];
    kd_inclusion_probabilities(s, 4, 1.0, pi);
    cr_assert_float_eq(pi[0], 1.0 / (1.0 + 3e-6), 1e-15);
    for (int i = 1; i < 4; i++)
        cr_assert_float_eq(pi[i], 1e-6 / (1.0 + 3e-6), 1e-18);

    const double z[] = {0, 0, 0, 0};
    kd_inclusion_probabilities(z, 4, 3.0, pi);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pi[i], 0.75);

    kd_inclusion_probabilities(s, 4, 4.0, pi);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pi[i], 1.0);
}

Test(sampling, inclusion_probabilities_sum_to_budget_and_follow_the_scores)
{
    enum { N = 5000 };
    static double s[N], pi[N];
    struct kd_rng r;
    kd_rng_seed(&r, 11);
    for (size_t i = 0; i < N; i++) /* heavy-tailed, so some rows are capped */
        s[i] = pow(kd_rng_uniform(&r), 8.0);
    kd_inclusion_probabilities(s, N, 1500.0, pi);
    cr_assert_float_eq(sum(pi, N), 1500.0, 1e-9);
    double l = -1.0;
    size_t capped = 0;
    for (size_t i = 0; i < N; i++) {
        cr_assert(pi[i] > 0.0 && pi[i] <= 1.0);
        if (pi[i] == 1.0) {
            capped++;
            continue;
        }
        if (s[i] < 1e-6) /* floored */
            continue;
        if (l < 0.0)
            l = pi[i] / s[i];
        cr_assert_float_eq(pi[i] / s[i], l, 1e-12 * l, "row %zu not proportional", i);
    }
    cr_assert(capped > 0, "the test pool should cap some rows");
    /* Every capped row scores at least 1 / l, every other one below it. */
    for (size_t i = 0; i < N; i++)
        cr_assert((pi[i] == 1.0) == (s[i] * l >= 1.0 - 1e-12), "row %zu", i);
}

/* ---------------------------------------------------------------------- IWeS */

Test(sampling, iwes_weights_are_capped_inverse_probabilities)
{
    enum { N = 400, C = 5, B = 60 };
    static float p[N * C], q[N * C];
    random_probs(p, N, C, 3);
    random_probs(q, N, C, 4);
    const enum kd_select_kind kinds[] = {KD_SELECT_IWES, KD_SELECT_IWES_TWO};
    for (int k = 0; k < 2; k++) {
        double s[N], pi[N];
        kd_select_scores(kinds[k], p, q, N, C, s);
        kd_inclusion_probabilities(s, N, B, pi);
        struct kd_select_config cfg;
        kd_select_config_init(&cfg);
        cfg.kind = kinds[k];
        cfg.budget = B;
        cfg.weight_cap = 3.0;
        cfg.seed = 42;
        struct kd_selection out[B];
        size_t n = 0;
        struct kd_error err = {0};
        cr_assert_eq(kd_select(&cfg, p, q, N, C, out, &n, &err), KD_OK, "%s", err.msg);
        cr_assert_eq(n, B);
        assert_distinct_selection(out, n, N);
        int some_capped = 0;
        for (size_t t = 0; t < n; t++) {
            size_t i = out[t].index;
            cr_assert_eq(out[t].score, s[i]);
            cr_assert_eq(out[t].probability, pi[i]);
            cr_assert_eq(out[t].weight, fmin(1.0 / pi[i], 3.0));
            some_capped |= out[t].weight == 3.0;
        }
        cr_assert(some_capped, "%s: no weight reached the cap", kd_select_name(kinds[k]));
    }
}

Test(sampling, iwes_probabilities_are_proportional_to_normalised_entropy)
{
    enum { N = 300, C = 10 };
    static float p[N * C];
    double s[N], pi[N];
    random_probs(p, N, C, 8);
    kd_select_scores(KD_SELECT_IWES, p, NULL, N, C, s);
    kd_inclusion_probabilities(s, N, 30.0, pi);
    cr_assert_float_eq(sum(pi, N), 30.0, 1e-10);
    double l = -1.0;
    for (size_t i = 0; i < N; i++) {
        /* normalised entropy by hand */
        double h = 0.0;
        for (size_t c = 0; c < C; c++)
            if (p[i * C + c] > 0.0f)
                h -= p[i * C + c] * log(p[i * C + c]);
        cr_assert_float_eq(s[i], h / log((double)C), 1e-12);
        if (pi[i] < 1.0) {
            if (l < 0.0)
                l = pi[i] / s[i];
            cr_assert_float_eq(pi[i], l * s[i], 1e-12);
        }
    }
}

/* ------------------------------------------------------- systematic sampling */

Test(sampling, systematic_sampling_frequencies_match_pi)
{
    enum { N = 8, DRAWS = 20000 };
    /* sum 4; row 0 is certain, row 2 impossible */
    const double pi[N] = {1.0, 0.9, 0.0, 0.5, 0.3, 0.2, 0.6, 0.5};
    size_t out[N], count[N] = {0};
    struct kd_rng r;
    kd_rng_seed(&r, 2024);
    for (int d = 0; d < DRAWS; d++) {
        size_t m = kd_sample_systematic(pi, N, &r, out);
        cr_assert_eq(m, 4);
        assert_distinct(out, m, N);
        for (size_t t = 0; t < m; t++)
            count[out[t]]++;
    }
    cr_assert_eq(count[0], DRAWS);
    cr_assert_eq(count[2], 0);
    for (int i = 0; i < N; i++) {
        double f = (double)count[i] / DRAWS, se = sqrt(pi[i] * (1.0 - pi[i]) / DRAWS);
        cr_assert(fabs(f - pi[i]) <= 4.0 * se + 1e-12, "row %d: frequency %.4f, pi %.2f (se %.4f)", i, f, pi[i],
                  se);
    }
}

Test(sampling, systematic_sampling_returns_exactly_m_despite_rounding)
{
    /* 0.1 thirty times sums to 3 only up to rounding; likewise 1/3 and 1/7. */
    double tenth[30], third[9], seventh[21];
    for (int i = 0; i < 30; i++)
        tenth[i] = 0.1;
    for (int i = 0; i < 9; i++)
        third[i] = 1.0 / 3.0;
    for (int i = 0; i < 21; i++)
        seventh[i] = 1.0 / 7.0;
    size_t out[30];
    struct kd_rng r;
    kd_rng_seed(&r, 9);
    for (int d = 0; d < 2000; d++) {
        size_t m = kd_sample_systematic(tenth, 30, &r, out);
        cr_assert_eq(m, 3);
        assert_distinct(out, m, 30);
        m = kd_sample_systematic(third, 9, &r, out);
        cr_assert_eq(m, 3);
        assert_distinct(out, m, 9);
        m = kd_sample_systematic(seventh, 21, &r, out);
        cr_assert_eq(m, 3);
        assert_distinct(out, m, 21);
    }
}

Test(sampling, systematic_sampling_draws_the_budget_from_a_large_pool)
{
    enum { N = 60000, B = 1000 };
    static double s[N], pi[N];
    static size_t out[N];
    struct kd_rng r;
    kd_rng_seed(&r, 77);
    for (size_t i = 0; i < N; i++)
        s[i] = kd_rng_uniform(&r) * kd_rng_uniform(&r);
    kd_inclusion_probabilities(s, N, B, pi);
    for (int d = 0; d < 5; d++) {
        size_t m = kd_sample_systematic(pi, N, &r, out);
        cr_assert_eq(m, B);
        assert_distinct(out, m, N);
    }
}

/* -------------------------------------------------------------------- RAD */

/* The reference for kd's RAD definition: for every support of the top m
 * gains, water-fill pi = min(1, c / g) by repeated capping, score
 * sum pi g - k max pi g, keep the best (smallest m on ties). O(n^3). */
static void rad_reference(const double *g_in, size_t n, size_t b, double k, double *pi)
{
    double *g = malloc(n * sizeof *g), *best = calloc(n, sizeof *best), *cur = malloc(n * sizeof *cur);
    size_t *ord = malloc(n * sizeof *ord);
    cr_assert(g && best && cur && ord);
    for (size_t i = 0; i < n; i++) {
        g[i] = g_in[i] > 1e-9 ? g_in[i] : 1e-9;
        ord[i] = i;
    }
    for (size_t a = 1; a < n; a++) /* insertion sort: descending, stable, so ties keep the lower index first */
        for (size_t z = a; z > 0 && g[ord[z]] > g[ord[z - 1]]; z--) {
            size_t t = ord[z];
            ord[z] = ord[z - 1];
            ord[z - 1] = t;
        }
    double best_obj = 0.0;
    for (size_t m = b; m <= n; m++) {
        for (size_t i = 0; i < n; i++)
            cur[i] = 0.0;
        char capped[512] = {0};
        for (;;) {
            double mass = (double)b, w = 0.0;
            for (size_t t = 0; t < m; t++)
                if (capped[t])
                    mass -= 1.0;
                else
                    w += 1.0 / g[ord[t]];
            double c = mass / w;
            int changed = 0;
            for (size_t t = 0; t < m; t++)
                if (!capped[t] && c / g[ord[t]] > 1.0) {
                    capped[t] = 1;
                    changed = 1;
                }
            if (!changed) {
                for (size_t t = 0; t < m; t++)
                    cur[ord[t]] = capped[t] ? 1.0 : c / g[ord[t]];
                break;
            }
        }
        double gain = 0.0, mx = 0.0;
        for (size_t i = 0; i < n; i++) {
            gain += cur[i] * g[i];
            mx = fmax(mx, cur[i] * g[i]);
        }
        double obj = gain - k * mx;
        if (m == b || obj > best_obj + 1e-12 * fmax(1.0, fabs(best_obj))) {
            best_obj = obj;
            memcpy(best, cur, n * sizeof *best);
        }
    }
    memcpy(pi, best, n * sizeof *pi);
    free(g), free(best), free(cur), free(ord);
}

Test(sampling, rad_matches_hand_computed_distributions)
{
    /* g = (1, .5, .5, .25), b = 1. Objective (m - k) c with c = 1 / sum 1/g:
     * k = 0.9: m = 1..4 give 0.1, 1.1/3, 2.1/5, 3.1/9, so m = 3, c = 1/5. */
    const double g[] = {0.5, 1.0, 0.25, 0.5};
    double pi[4];
    kd_rad_distribution(g, 4, 1, 0.9, pi);
    cr_assert_float_eq(pi[0], 0.4, 1e-15);
    cr_assert_float_eq(pi[1], 0.2, 1e-15);
    cr_assert_eq(pi[2], 0.0);
    cr_assert_float_eq(pi[3], 0.4, 1e-15);
    /* k = 0.5: every m up to 3 scores 1/2; the smallest wins: the top row. */
    kd_rad_distribution(g, 4, 1, 0.5, pi);
    cr_assert(pi[0] == 0.0 && pi[1] == 1.0 && pi[2] == 0.0 && pi[3] == 0.0);
}

Test(sampling, rad_caps_a_low_gain_row_when_equal_shares_would_exceed_one)
{
    /* g = (1, .5, .01), b = 2, k = 1.5: top-2 scores 1.5 - 1.5 = 0; the whole
     * pool would need c = 2 / 103 > .01, so the last row is capped at 1 and
     * the others share the remaining 1 with pi g = 1/3: 2/3 + .01 - .5. */
    const double g[] = {0.01, 1.0, 0.5};
    double pi[3];
    kd_rad_distribution(g, 3, 2, 1.5, pi);
    cr_assert_eq(pi[0], 1.0);
    cr_assert_float_eq(pi[1], 1.0 / 3.0, 1e-15);
    cr_assert_float_eq(pi[2], 2.0 / 3.0, 1e-15);
    /* k = 1: top-2 (0.5) beats the capped spread (0.343). */
    kd_rad_distribution(g, 3, 2, 1.0, pi);
    cr_assert(pi[0] == 0.0 && pi[1] == 1.0 && pi[2] == 1.0);
}

Test(sampling, rad_with_no_adversary_is_the_top_b_gains)
{
    enum { N = 200, B = 17 };
    double g[N], pi[N];
    struct kd_rng r;
    kd_rng_seed(&r, 5);
    for (size_t i = 0; i < N; i++)
        g[i] = kd_rng_uniform(&r);
    kd_rad_distribution(g, N, B, 0.0, pi);
    size_t chosen = 0;
    double lowest_in = INFINITY, highest_out = -INFINITY;
    for (size_t i = 0; i < N; i++) {
        cr_assert(pi[i] == 0.0 || pi[i] == 1.0, "pi[%zu] = %.17g", i, pi[i]);
        if (pi[i] == 1.0) {
            chosen++;
            lowest_in = fmin(lowest_in, g[i]);
        } else {
            highest_out = fmax(highest_out, g[i]);
        }
    }
    cr_assert_eq(chosen, B);
    cr_assert(lowest_in > highest_out);
}

Test(sampling, rad_equalises_pi_times_gain_over_its_support)
{
    enum { N = 300, B = 20 };
    double g[N], pi[N];
    struct kd_rng r;
    kd_rng_seed(&r, 6);
    for (size_t i = 0; i < N; i++) /* gains in [0.3, 1]: no row needs a cap */
        g[i] = 0.3 + 0.7 * kd_rng_uniform(&r);
    const double ks[] = {1.0, 4.0, 10.0};
    for (int t = 0; t < 3; t++) {
        kd_rad_distribution(g, N, B, ks[t], pi);
        cr_assert_float_eq(sum(pi, N), (double)B, 1e-9);
        double c = -1.0, lowest_in = INFINITY, highest_out = -INFINITY;
        size_t support = 0;
        for (size_t i = 0; i < N; i++) {
            cr_assert(pi[i] >= 0.0 && pi[i] <= 1.0);
            if (pi[i] == 0.0) {
                highest_out = fmax(highest_out, g[i]);
                continue;
            }
            support++;
            lowest_in = fmin(lowest_in, g[i]);
            if (c < 0.0)
                c = pi[i] * g[i];
            cr_assert_float_eq(pi[i] * g[i], c, 1e-9 * c, "k %g row %zu: pi g %.17g, c %.17g", ks[t], i,
                               pi[i] * g[i], c);
        }
        cr_assert(lowest_in > highest_out, "k %g: the support is not the top gains", ks[t]);
        cr_assert(support > B, "k %g: support %zu, the test wants a spread", ks[t], support);
    }
}

Test(sampling, rad_spreads_over_more_rows_as_the_adversary_grows)
{
    enum { N = 300, B = 20 };
    double g[N], pi[N];
    struct kd_rng r;
    kd_rng_seed(&r, 7);
    for (size_t i = 0; i < N; i++)
        g[i] = kd_rng_uniform(&r);
    const double ks[] = {0.0, 1.0, 3.0, 8.0, 20.0};
    size_t last = 0;
    for (int t = 0; t < 5; t++) {
        kd_rad_distribution(g, N, B, ks[t], pi);
        size_t support = 0;
        for (size_t i = 0; i < N; i++)
            support += pi[i] > 0.0;
        cr_assert(t == 0 ? support == B : support > last, "k %g: support %zu after %zu", ks[t], support, last);
        last = support;
    }
}

Test(sampling, rad_agrees_with_a_naive_reference)
{
    struct kd_rng r;
    kd_rng_seed(&r, 12);
    for (int trial = 0; trial < 200; trial++) {
        size_t n = 2 + (size_t)kd_rng_below(&r, 40);
        size_t b = 1 + (size_t)kd_rng_below(&r, n - 1);
        double k = (double)b * kd_rng_uniform(&r);
        double g[64], pi[64], ref[64];
        for (size_t i = 0; i < n; i++) {
            double u = kd_rng_uniform(&r);
            /* mix of spread gains, ties and near-zero gains (which force caps) */
            g[i] = trial % 3 == 0 ? u * u * u : (trial % 3 == 1 ? floor(u * 4.0) / 4.0 : u);
        }
        kd_rad_distribution(g, n, b, k, pi);
        rad_reference(g, n, b, k, ref);
        cr_assert_float_eq(sum(pi, n), (double)b, 1e-9);
        for (size_t i = 0; i < n; i++)
            cr_assert_float_eq(pi[i], ref[i], 1e-9, "trial %d (n %zu, b %zu, k %g) row %zu: %.17g, reference %.17g",
                               trial, n, b, k, i, pi[i], ref[i]);
    }
}

Test(sampling, rad_selection_carries_gain_and_probability)
{
    enum { N = 500, C = 10, B = 40 };
    static float p[N * C];
    random_probs(p, N, C, 13);
    double g[N], pi[N];
    kd_select_scores(KD_SELECT_RAD, p, NULL, N, C, g);
    kd_rad_distribution(g, N, B, B * 0.2, pi);
    struct kd_select_config cfg;
    kd_select_config_init(&cfg);
    cfg.kind = KD_SELECT_RAD;
    cfg.budget = B;
    cfg.teacher_error = 0.2;
    struct kd_selection out[B];
    size_t n = 0;
    struct kd_error err = {0};
    cr_assert_eq(kd_select(&cfg, p, NULL, N, C, out, &n, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(n, B);
    assert_distinct_selection(out, n, N);
    for (size_t t = 0; t < n; t++) {
        size_t i = out[t].index;
        cr_assert(pi[i] > 0.0);
        cr_assert_eq(out[t].score, g[i]);
        cr_assert_eq(out[t].probability, pi[i]);
        cr_assert_eq(out[t].weight, 1.0);
    }
}

/* ------------------------------------------------------------- bad input */

Test(sampling, select_rejects_a_weight_cap_below_one)
{
    struct kd_select_config cfg;
    kd_select_config_init(&cfg);
    cfg.kind = KD_SELECT_IWES;
    cfg.budget = 1;
    cfg.weight_cap = 0.5;
    float p[] = {0.5f, 0.5f};
    struct kd_selection out[1];
    size_t n = 7;
    struct kd_error err = {0};
    cr_assert_eq(kd_select(&cfg, p, NULL, 1, 2, out, &n, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "selection weight cap 0.5 is below 1");
    cr_assert_eq(n, 0);
}

Test(sampling, select_rejects_a_teacher_error_outside_zero_one)
{
    struct kd_select_config cfg;
    kd_select_config_init(&cfg);
    cfg.kind = KD_SELECT_RAD;
    cfg.budget = 1;
    cfg.teacher_error = 1.5;
    float p[] = {0.5f, 0.5f};
    struct kd_selection out[1];
    size_t n;
    struct kd_error err = {0};
    cr_assert_eq(kd_select(&cfg, p, NULL, 1, 2, out, &n, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "teacher error rate 1.5 is outside [0, 1]");
    cfg.teacher_error = NAN;
    cr_assert_eq(kd_select(&cfg, p, NULL, 1, 2, out, &n, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "teacher error rate nan is outside [0, 1]");
}

Test(sampling, select_rejects_missing_probabilities)
{
    struct kd_select_config cfg;
    kd_select_config_init(&cfg);
    cfg.kind = KD_SELECT_IWES_TWO;
    cfg.budget = 1;
    float p[] = {0.5f, 0.5f};
    struct kd_selection out[1];
    size_t n;
    struct kd_error err = {0};
    cr_assert_eq(kd_select(&cfg, p, NULL, 1, 2, out, &n, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "selection strategy 'iwes-two' needs a second student's probabilities");
    cfg.kind = KD_SELECT_ENTROPY;
    cr_assert_eq(kd_select(&cfg, NULL, NULL, 1, 2, out, &n, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "selection strategy 'entropy' needs the student's probabilities");
    cr_assert_eq(kd_select(&cfg, p, NULL, 1, 0, out, &n, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "selection strategy 'entropy' needs at least one class");
    cfg.kind = (enum kd_select_kind)42;
    cr_assert_eq(kd_select(&cfg, p, NULL, 1, 2, out, &n, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "unknown selection strategy 42");
}

/* ------------------------------------------------------------------- scale */

Test(sampling, every_kind_draws_distinct_rows_from_sixty_thousand)
{
    enum { N = 60000, C = 10, B = 2000 };
    static float p[N * C], q[N * C];
    static struct kd_selection out[B];
    random_probs(p, N, C, 21);
    random_probs(q, N, C, 22);
    for (int k = 0; k < KD_SELECT_N_KINDS; k++) {
        struct kd_select_config cfg;
        kd_select_config_init(&cfg);
        cfg.kind = (enum kd_select_kind)k;
        cfg.budget = B;
        cfg.teacher_error = 0.1;
        size_t n = 0;
        struct kd_error err = {0};
        cr_assert_eq(kd_select(&cfg, p, q, N, C, out, &n, &err), KD_OK, "%s", err.msg);
        cr_assert_eq(n, B, "%s", kd_select_name(cfg.kind));
        assert_distinct_selection(out, n, N);
    }
    /* Speed is not asserted here: these take milliseconds each at -O3. */
}

/* Choosing which pool rows to send to the teacher (docs/methods.md section 3): the
 * student's uncertainty scores, the deterministic top-b strategies, IWeS
 * inclusion probabilities, the RAD distribution and systematic sampling. */
#include "sampling/kd_sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const select_names[KD_SELECT_N_KINDS] = {"random",           "entropy", "margin",
                                                            "least-confidence", "iwes",    "iwes-two",
                                                            "rad"};

const char *kd_select_name(enum kd_select_kind kind)
{
    return (unsigned)kind < KD_SELECT_N_KINDS ? select_names[kind] : "?";
}

kd_status kd_select_parse(const char *name, enum kd_select_kind *out, struct kd_error *err)
{
    for (int i = 0; i < KD_SELECT_N_KINDS; i++)
        if (strcmp(name, select_names[i]) == 0) {
            *out = (enum kd_select_kind)i;
            return KD_OK;
        }
    return kd_error_set(err, KD_ERR_ARG,
                        "unknown selection strategy '%s' (expected random, entropy, margin, least-confidence, "
                        "iwes, iwes-two, rad)",
                        name);
}

void kd_select_config_init(struct kd_select_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = KD_SELECT_MARGIN;
    cfg->budget = 0;
    cfg->weight_cap = 10.0;
    cfg->teacher_error = 0.0;
    cfg->seed = 1;
}

/* ------------------------------------------------------------------ scores */

/* p log p with 0 log 0 = 0; a negative (malformed) probability counts as 0
 * rather than producing a NaN that would poison every later comparison. */
static double plogp(float pf)
{
    double p = (double)pf;
    return p > 0.0 ? p * log(p) : 0.0;
}

static double entropy_row(const float *p, size_t C)
{
    double h = 0.0;
    for (size_t c = 0; c < C; c++)
        h -= plogp(p[c]);
    return h;
}

/* The two largest entries (p2 = 0 when C == 1). */
static void top_two(const float *p, size_t C, double *p1, double *p2)
{
    double a = -INFINITY, b = -INFINITY;
    for (size_t c = 0; c < C; c++) {
        double v = (double)p[c];
        if (v > a) {
            b = a;
            a = v;
        } else if (v > b) {
            b = v;
        }
    }
    *p1 = C > 0 ? a : 0.0;
    *p2 = C > 1 ? b : 0.0;
}

/* A probability: rounding in p (float rows summing to 1 only up to ~1e-7)
 * can push H / log C a hair outside [0, 1]. */
static double clamp01(double x) { return x < 0.0 ? 0.0 : (x > 1.0 ? 1.0 : x); }

void kd_select_scores(enum kd_select_kind kind, const float *p, const float *q, size_t N, size_t C,
                      double *score)
{
    double log_c = C >= 2 ? log((double)C) : 0.0;
    for (size_t i = 0; i < N; i++) {
        const float *pi = p ? p + i * C : NULL;
        double s = 0.0, p1, p2;
        switch (kind) {
        case KD_SELECT_ENTROPY:
            s = entropy_row(pi, C);
            break;
        case KD_SELECT_MARGIN:
        case KD_SELECT_RAD: /* RAD's gain is the margin score: 1 - (p1 - p2) */
            top_two(pi, C, &p1, &p2);
            s = 1.0 - (p1 - p2);
            break;
        case KD_SELECT_LEAST_CONFIDENCE:
            top_two(pi, C, &p1, &p2);
            s = 1.0 - p1;
            break;
        case KD_SELECT_IWES:
            /* One class carries no uncertainty: P = 0 rather than 0 / log 1. */
            s = C >= 2 ? clamp01(entropy_row(pi, C) / log_c) : 0.0;
            break;
        case KD_SELECT_IWES_TWO:
            /* kd's definition of "the absolute difference of the entropy terms
             * of two independently initialised students" (Citovsky et al.
             * 2023, arXiv 2301.12052): the per-class entropy terms are
             * compared, not the two totals, so two students that are equally
             * unsure about different classes still disagree. */
            if (C >= 2 && q) {
                const float *qi = q + i * C;
                for (size_t c = 0; c < C; c++)
                    s += fabs(plogp(pi[c]) - plogp(qi[c]));
                s = clamp01(s / log_c);
            }
            break;
        case KD_SELECT_RANDOM:
        default:
            break;
        }
        score[i] = s;
    }
}

/* ------------------------------------------------- inclusion probabilities */

static int cmp_double_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* A score usable as a weight: NaN and negatives count as 0. */
static double nonneg(double x) { return x > 0.0 ? x : 0.0; }

void kd_inclusion_probabilities(const double *s, size_t n, double b, double *pi)
{
    if (n == 0)
        return;
    if (!(b > 0.0)) {
        for (size_t i = 0; i < n; i++)
            pi[i] = 0.0;
        return;
    }
    if (b >= (double)n) {
        for (size_t i = 0; i < n; i++)
            pi[i] = 1.0;
        return;
    }
    double smax = 0.0;
    for (size_t i = 0; i < n; i++)
        if (nonneg(s[i]) > smax)
            smax = nonneg(s[i]);
    if (smax <= 0.0) { /* nothing to tell the rows apart */
        for (size_t i = 0; i < n; i++)
            pi[i] = b / (double)n;
        return;
    }
    double floor_s = 1e-6 * smax;

    /* pi doubles as the sorted (descending) copy of the floored scores t, so
     * the function needs no memory of its own. With the j largest capped at 1
     * the rest get l = (b - j) / sum_{i >= j} t_i; the answer is the smallest
     * j in [0, ceil(b) - 1] with (b - j) t_j <= sum_{i >= j} t_i (0-based).
     * That condition only turns from false to true as j grows (its slack
     * changes by (b - j - 1)(t_j - t_{j+1}) >= 0), so one pass from the end,
     * accumulating the tail smallest first, finds it. */
    for (size_t i = 0; i < n; i++)
        pi[i] = fmax(nonneg(s[i]), floor_s);
    qsort(pi, n, sizeof *pi, cmp_double_desc);
    size_t j = (size_t)ceil(b) - 1; /* b < n, so j <= n - 1; the condition holds here */
    double tail = 0.0;                /* sum_{i >= j} t_i */
    for (size_t i = n; i-- > j;)
        tail += pi[i];
    while (j > 0) {
        double wider = tail + pi[j - 1];
        if ((b - (double)(j - 1)) * pi[j - 1] > wider)
            break;
        tail = wider;
        j--;
    }
    double l = (b - (double)j) / tail;
    for (size_t i = 0; i < n; i++)
        pi[i] = fmin(1.0, l * fmax(nonneg(s[i]), floor_s));
}

/* -------------------------------------------------------------------- RAD */

/* Gains are floored so that 1 / g is finite for a row the student is sure
 * of (p1 = 1, p2 = 0). */
static double rad_gain(double g) { return g > 1e-9 ? g : 1e-9; }

/* RAD, kd's definition after Baykal et al. 2023 (arXiv 2210.01213).
 *
 * Gains sorted descending g_1 >= ... >= g_n. For a support of the top m rows
 * (b <= m <= n) kd water-fills pi_i = min(1, c / g_i) with sum pi = b: the
 * high-gain rows share pi_i g_i = c, and only when c / g_i would exceed 1 (a
 * row whose gain is below c) is that row capped at pi = 1. When no cap binds
 * this is the equal-pi*g distribution c = b / sum_{i<=m} 1/g_i, and the
 * worst case of the header, sum pi g - k max pi g, is (m - k) c: the
 * adversary's k spoiled picks are worth c each whichever it takes. With caps
 * the same objective is (u - k) c + sum of the capped gains (u uncapped
 * rows; max pi g is still c since capped rows have g <= c). m = b is the
 * top-b rows with pi = 1. kd takes the m with the largest objective, the
 * smallest m on ties (relative 1e-12), so k = 0 gives exactly the top-b
 * rows and a larger k spreads the budget over more rows.
 *
 * Finding c for each m: with u uncapped rows (u >= m - b + 1, since a capped
 * row takes a whole unit of the b), c = (b - (m - u)) / W(u), W(u) =
 * sum_{i<=u} 1/g_i, and the right u is the largest with
 * (b - m + u) / g_u <= W(u). As m grows c only falls, so u never shrinks:
 * one pointer walks u up while m walks up, O(n) after the sort. */
void kd_rad_distribution(const double *g, size_t n, size_t b, double k, double *pi)
{
    if (n == 0)
        return;
    if (b == 0 || b >= n) {
        for (size_t i = 0; i < n; i++)
            pi[i] = b == 0 ? 0.0 : 1.0;
        return;
    }
    if (!(k > 0.0))
        k = 0.0;

    /* pi holds the sorted gains (1-based g_i is pi[i - 1]) until the end. */
    for (size_t i = 0; i < n; i++)
        pi[i] = rad_gain(g[i]);
    qsort(pi, n, sizeof *pi, cmp_double_desc);

    size_t u = 0;           /* uncapped rows of the current support */
    double W = 0.0;         /* sum_{i<=u} 1/g_i */
    double G_u = 0.0;       /* sum_{i<=u} g_i */
    double G_m = 0.0;       /* sum_{i<=m} g_i */
    size_t best_m = b;
    double best_c = 0.0, best_obj = 0.0;
    double bd = (double)b;
    for (size_t i = 0; i < b - 1; i++)
        G_m += pi[i];
    for (size_t m = b; m <= n; m++) {
        G_m += pi[m - 1];
        size_t lo = m - b + 1;
        while (u < lo) { /* the smallest u allowed always holds */
            W += 1.0 / pi[u];
            G_u += pi[u];
            u++;
        }
        while (u < m) {
            double g_next = pi[u];
            double W_next = W + 1.0 / g_next;
            if ((bd - (double)m + (double)(u + 1)) / g_next > W_next)
                break;
            W = W_next;
            G_u += g_next;
            u++;
        }
        double c = (bd - (double)(m - u)) / W;
        double obj = ((double)u - k) * c + (G_m - G_u);
        if (m == b || obj > best_obj + 1e-12 * fmax(1.0, fabs(best_obj))) {
            best_obj = obj;
            best_m = m;
            best_c = c;
        }
    }

    /* The support: every gain above the m-th, then rows equal to it in
     * index order (ties to the lower index, as for the deterministic kinds). */
    double thr = pi[best_m - 1];
    size_t above = 0;
    for (size_t i = 0; i < best_m; i++)
        if (pi[i] > thr)
            above++;
    size_t ties_left = best_m - above;
    for (size_t i = 0; i < n; i++) {
        double gi = rad_gain(g[i]);
        int in = gi > thr;
        if (!in && gi == thr && ties_left > 0) {
            in = 1;
            ties_left--;
        }
        /* m = b is the top-b rows: exactly 1, not c / g_i rounded. */
        pi[i] = !in ? 0.0 : (best_m == b ? 1.0 : fmin(1.0, best_c / gi));
    }
}

/* ------------------------------------------------------ systematic sampling */

size_t kd_sample_systematic(const double *pi, size_t n, struct kd_rng *rng, size_t *out)
{
    if (n == 0)
        return 0;
    double total = 0.0;
    size_t ones = 0;
    for (size_t i = 0; i < n; i++) {
        if (pi[i] >= 1.0)
            ones++;
        else if (pi[i] > 0.0)
            total += pi[i];
    }
    size_t m = ones + (size_t)floor(total + 0.5);
    if (m > n)
        m = n;
    size_t need = m - ones; /* picks among the fractional rows */

    for (size_t i = 0; i < n; i++)
        out[i] = i;
    kd_rng_shuffle(rng, out, n);
    double u = kd_rng_uniform(rng);

    /* Rows with pi = 1 are taken outright rather than through the running
     * sum: each would cover a whole unit of it, so removing them shifts the
     * other rows by whole units and changes nothing, and it keeps rounding
     * in the sum from ever skipping one. A picked row is swapped to the
     * front, so out stays a permutation and the unpicked rows remain at the
     * back for the guard below. */
    size_t w = 0, j = 0;
    double cum = 0.0;
    for (size_t t = 0; t < n; t++) {
        size_t i = out[t];
        int take = 0;
        if (pi[i] >= 1.0) {
            take = 1;
        } else if (pi[i] > 0.0) {
            cum += pi[i];
            /* One pick per row: a row never crosses two of u, u + 1, ...
             * unless rounding says so, and then the next row takes it. */
            if (j < need && cum > u + (double)j) {
                take = 1;
                j++;
            }
        }
        if (take) {
            out[t] = out[w];
            out[w++] = i;
        }
    }
    /* Rounding can leave the running sum just short of u + need - 1; the
     * unpicked row with the largest pi takes the missing pick, so the count
     * is always exactly m. */
    while (w < m) {
        size_t best = w;
        for (size_t t = w + 1; t < n; t++)
            if (pi[out[t]] > pi[out[best]])
                best = t;
        size_t i = out[best];
        out[best] = out[w];
        out[w++] = i;
    }
    return m;
}

/* ------------------------------------------------------------------ select */

struct scored {
    double score;
    size_t index;
};

/* Highest score first, NaN last, ties to the lower index. */
static int cmp_scored(const void *a, const void *b)
{
    const struct scored *x = a, *y = b;
    int xn = isnan(x->score), yn = isnan(y->score);
    if (xn != yn)
        return xn - yn;
    if (!xn && x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

kd_status kd_select(const struct kd_select_config *cfg, const float *p, const float *q, size_t N, size_t C,
                    struct kd_selection *out, size_t *n_out, struct kd_error *err)
{
    *n_out = 0;
    if ((unsigned)cfg->kind >= KD_SELECT_N_KINDS)
        return kd_error_set(err, KD_ERR_ARG, "unknown selection strategy %d", (int)cfg->kind);
    if (!(cfg->weight_cap >= 1.0))
        return kd_error_set(err, KD_ERR_ARG, "selection weight cap %g is below 1", cfg->weight_cap);
    if (!(cfg->teacher_error >= 0.0 && cfg->teacher_error <= 1.0))
        return kd_error_set(err, KD_ERR_ARG, "teacher error rate %g is outside [0, 1]", cfg->teacher_error);
    enum kd_select_kind kind = cfg->kind;
    if (kind != KD_SELECT_RANDOM && N > 0) {
        if (C == 0)
            return kd_error_set(err, KD_ERR_ARG, "selection strategy '%s' needs at least one class",
                                kd_select_name(kind));
        if (!p)
            return kd_error_set(err, KD_ERR_ARG, "selection strategy '%s' needs the student's probabilities",
                                kd_select_name(kind));
        if (kind == KD_SELECT_IWES_TWO && !q)
            return kd_error_set(err, KD_ERR_ARG,
                                "selection strategy 'iwes-two' needs a second student's probabilities");
    }
    size_t b = cfg->budget < N ? cfg->budget : N;
    if (b == 0)
        return KD_OK;

    kd_status rc = KD_OK;
    double *score = malloc(N * sizeof *score);
    double *pi = NULL;
    size_t *idx = NULL;
    struct scored *sorted = NULL;
    if (!score) {
        rc = kd_error_set(err, KD_ERR_NOMEM, "out of memory scoring %zu candidate rows", N);
        goto done;
    }
    kd_select_scores(kind, p, q, N, C, score);
    struct kd_rng rng;
    kd_rng_seed(&rng, cfg->seed);

    switch (kind) {
    case KD_SELECT_RANDOM:
        idx = malloc(N * sizeof *idx);
        if (!idx) {
            rc = kd_error_set(err, KD_ERR_NOMEM, "out of memory choosing from %zu candidate rows", N);
            goto done;
        }
        for (size_t i = 0; i < N; i++)
            idx[i] = i;
        /* Partial Fisher-Yates: the first b slots are a uniform draw. */
        for (size_t i = 0; i < b; i++) {
            size_t r = i + (size_t)kd_rng_below(&rng, N - i), t = idx[i];
            idx[i] = idx[r];
            idx[r] = t;
            out[i] = (struct kd_selection){idx[i], score[idx[i]], (double)b / (double)N, 1.0};
        }
        break;
    case KD_SELECT_ENTROPY:
    case KD_SELECT_MARGIN:
    case KD_SELECT_LEAST_CONFIDENCE:
        sorted = malloc(N * sizeof *sorted);
        if (!sorted) {
            rc = kd_error_set(err, KD_ERR_NOMEM, "out of memory ranking %zu candidate rows", N);
            goto done;
        }
        for (size_t i = 0; i < N; i++)
            sorted[i] = (struct scored){score[i], i};
        qsort(sorted, N, sizeof *sorted, cmp_scored);
        for (size_t i = 0; i < b; i++)
            out[i] = (struct kd_selection){sorted[i].index, sorted[i].score, 1.0, 1.0};
        break;
    case KD_SELECT_IWES:
    case KD_SELECT_IWES_TWO:
    case KD_SELECT_RAD: {
        pi = malloc(N * sizeof *pi);
        idx = malloc(N * sizeof *idx);
        if (!pi || !idx) {
            rc = kd_error_set(err, KD_ERR_NOMEM, "out of memory sampling from %zu candidate rows", N);
            goto done;
        }
        if (kind == KD_SELECT_RAD)
            kd_rad_distribution(score, N, b, (double)b * cfg->teacher_error, pi);
        else
            kd_inclusion_probabilities(score, N, (double)b, pi);
        size_t m = kd_sample_systematic(pi, N, &rng, idx);
        if (m > b) /* sum pi is b up to rounding, so m == b; never write past out */
            m = b;
        for (size_t t = 0; t < m; t++) {
            size_t i = idx[t];
            double w = 1.0;
            if (kind != KD_SELECT_RAD)
                w = fmin(1.0 / pi[i], cfg->weight_cap);
            out[t] = (struct kd_selection){i, score[i], pi[i], w};
        }
        b = m;
        break;
    }
    }
    *n_out = b;

done:
    free(score);
    free(pi);
    free(idx);
    free(sorted);
    return rc;
}

/* Choosing which queries' candidate lists go to a pair teacher
 * (docs/retrieval.md, "Choosing the queries"): the student's uncertainty
 * about a query, read from its scores s (L) of the query's L candidates,
 *
 *   margin   -(s1 - s2), s1 >= s2 its two highest scores: the smaller the
 *            gap between its top two candidates, the higher the score
 *   entropy  H(softmax(s / T)) = -sum_j p_j log p_j over the list
 *   random   0 (the picks are drawn uniformly)
 *
 * and the top-b choice over those scores. */
#include "sampling/kd_sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double list_margin(const float *s, size_t L)
{
    double a = -INFINITY, b = -INFINITY;
    for (size_t j = 0; j < L; j++) {
        double v = (double)s[j];
        if (v > a) {
            b = a;
            a = v;
        } else if (v > b) {
            b = v;
        }
    }
    return L >= 2 ? -(a - b) : 0.0;
}

/* Entropy of softmax(s / T), shifted by the maximum so that no exp
 * overflows: with z_j = (s_j - max) / T and Z = sum exp(z_j),
 * H = log Z - sum_j exp(z_j) z_j / Z. */
static double list_entropy(const float *s, size_t L, double T)
{
    if (L < 2)
        return 0.0;
    double mx = -INFINITY;
    for (size_t j = 0; j < L; j++)
        mx = (double)s[j] > mx ? (double)s[j] : mx;
    double Z = 0.0, ez = 0.0;
    for (size_t j = 0; j < L; j++) {
        double z = ((double)s[j] - mx) / T, e = exp(z);
        Z += e;
        ez += e * z;
    }
    double h = log(Z) - ez / Z;
    return h > 0.0 ? h : 0.0;   /* rounding can leave -1e-16 for a one-hot list */
}

void kd_retrieval_select_scores(enum kd_select_kind kind, const float *s, size_t n, size_t L, double T,
                                double *score)
{
    for (size_t i = 0; i < n; i++) {
        const float *si = s ? s + i * L : NULL;
        switch (kind) {
        case KD_SELECT_MARGIN:
            score[i] = list_margin(si, L);
            break;
        case KD_SELECT_ENTROPY:
            score[i] = list_entropy(si, L, T);
            break;
        default:
            score[i] = 0.0;
            break;
        }
    }
}

int kd_retrieval_select_supported(enum kd_select_kind kind)
{
    return kind == KD_SELECT_RANDOM || kind == KD_SELECT_MARGIN || kind == KD_SELECT_ENTROPY;
}

struct ranked {
    double score;
    size_t index;
};

/* Highest score first, ties to the lower index. */
static int cmp_ranked(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->score != y->score)
        return (x->score < y->score) - (x->score > y->score);
    return (x->index > y->index) - (x->index < y->index);
}

kd_status kd_retrieval_select(enum kd_select_kind kind, size_t budget, double T, uint64_t seed, const float *s,
                              size_t n, size_t L, struct kd_selection *out, size_t *n_out, struct kd_error *err)
{
    *n_out = 0;
    if (!kd_retrieval_select_supported(kind))
        return kd_error_set(err, KD_ERR_ARG, "strategy %s does not choose queries (expected random, margin or "
                            "entropy)", kd_select_name(kind));
    if (kind == KD_SELECT_ENTROPY && !(T > 0.0 && isfinite(T)))
        return kd_error_set(err, KD_ERR_ARG, "the entropy's temperature must be positive, got %g", T);
    if (kind != KD_SELECT_RANDOM && L == 0)
        return kd_error_set(err, KD_ERR_ARG, "candidate lists of length 0 carry no score");
    size_t b = budget < n ? budget : n;
    if (kind == KD_SELECT_RANDOM) {
        struct kd_select_config sc;
        kd_select_config_init(&sc);
        sc.kind = KD_SELECT_RANDOM;
        sc.budget = b;
        sc.seed = seed;
        return kd_select(&sc, NULL, NULL, n, 1, out, n_out, err);
    }
    struct ranked *r = malloc((n ? n : 1) * sizeof *r);
    double *sc = malloc((n ? n : 1) * sizeof *sc);
    if (!r || !sc) {
        free(r);
        free(sc);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for %zu query scores", n);
    }
    kd_retrieval_select_scores(kind, s, n, L, T, sc);
    for (size_t i = 0; i < n; i++) {
        /* a NaN score (a student gone astray) ranks last rather than anywhere */
        r[i].score = isnan(sc[i]) ? -INFINITY : sc[i];
        r[i].index = i;
    }
    qsort(r, n, sizeof *r, cmp_ranked);
    for (size_t i = 0; i < b; i++)
        out[i] = (struct kd_selection){r[i].index, sc[r[i].index], 1.0, 1.0};
    *n_out = b;
    free(r);
    free(sc);
    return KD_OK;
}

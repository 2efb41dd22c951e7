/*
 * Noise-aware reweighting: the teacher's error rate against its confidence,
 * measured on gold validation data, turned into per-example weights or a
 * noise channel (docs/methods.md section 5).
 *
 *   p(x) = smoothed error rate of the teacher in the equal-mass confidence
 *          bin of x, confidence = max softmax(v) at temperature 1;
 *          alpha(x) = 1 - p(x)
 *   k(x) = the smallest k with the gold label in the teacher's top k on
 *          >= 90% of the bin's validation examples, at least 2 (SLaM)
 *   confidence: w(x) = alpha(x)
 *   debiased (kd's definition after Iliopoulos et al. 2022, arXiv
 *   2210.06711), with z the logits of a reference student that has not
 *   fitted x:
 *   d(x) = CE(z, t2) / CE(z, t), t / t2 the teacher's first / second class
 *   w(x) = (1 - p - p d) / (1 - 2p), clipped to [0, 1]; 0 when p >= 1/2
 *
 * The weight is the backward-corrected loss of a binary flip between t and
 * t2 written as a factor on the loss of t: when the teacher is wrong with
 * probability p, the unbiased loss is ((1 - p) L(t) - p L(t2)) / (1 - 2p),
 * and dividing by L(t) gives w. Negative corrected losses are clipped to 0
 * (the example is ignored rather than pushed away from t), and weights above
 * 1 to 1 (kd never trusts a teacher label more than a gold one).
 */
#include "sampling/kd_sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Largest entry, ties to the lower index; with `skip` < n that entry is
 * passed over (the teacher's second choice). NaN entries never win, so a
 * row with NaNs still yields an index in range. */
static size_t argmax_skip(const float *x, size_t n, size_t skip)
{
    size_t best = n;
    for (size_t c = 0; c < n; c++) {
        if (c == skip)
            continue;
        if (best == n || x[c] > x[best] || (isnan(x[best]) && !isnan(x[c])))
            best = c;
    }
    return best == n ? 0 : best;
}

/* max_c softmax(v)_c = 1 / sum_c exp(v_c - max), in double so that a
 * confident row does not round to exactly 1 before it has to. */
static double row_confidence(const float *v, size_t C)
{
    double m = v[0];
    for (size_t c = 1; c < C; c++)
        if ((double)v[c] > m)
            m = v[c];
    double s = 0.0;
    for (size_t c = 0; c < C; c++)
        s += exp((double)v[c] - m);
    return 1.0 / s;
}

/* log sum_c exp(z_c), max-subtracted; CE(z, c) is this minus z_c. Returned
 * as the max m and log sum exp(z - m) separately, so CE(z, c) =
 * lse - (z_c - m) is exactly 0 for the largest class when the other terms
 * underflow (kd_reweight relies on seeing that 0). */
static void logsumexp(const float *z, size_t C, double *m, double *lse)
{
    double mx = z[0];
    for (size_t c = 1; c < C; c++)
        if ((double)z[c] > mx)
            mx = z[c];
    double s = 0.0;
    for (size_t c = 0; c < C; c++)
        s += exp((double)z[c] - mx);
    *m = mx;
    *lse = log(s);
}

struct conf_row {
    double conf;
    int wrong;
    size_t rank;    /* classes the teacher ranks above the gold label (0: right) */
};

static int cmp_conf(const void *a, const void *b)
{
    double x = ((const struct conf_row *)a)->conf, y = ((const struct conf_row *)b)->conf;
    return (x > y) - (x < y);
}

kd_status kd_calibration_fit(const struct kd_tensor *v, const int32_t *y, size_t n_bins, double smoothing,
                             struct kd_calibration *cal, struct kd_error *err)
{
    /* Zeroed first so that kd_calibration_release is safe after a failure. */
    memset(cal, 0, sizeof *cal);
    size_t N = v->rows, C = v->cols;
    if (N == 0)
        return kd_error_set(err, KD_ERR_ARG, "calibration needs at least one validation example");
    if (n_bins == 0)
        return kd_error_set(err, KD_ERR_ARG, "calibration needs at least one bin");
    if (!(smoothing >= 0.0) || isinf(smoothing))
        return kd_error_set(err, KD_ERR_ARG, "laplace smoothing must be a number >= 0, got %g", smoothing);
    if (C == 0)
        return kd_error_set(err, KD_ERR_ARG, "teacher logits have no classes");
    for (size_t i = 0; i < N; i++)
        if (y[i] < 0 || (size_t)y[i] >= C)
            return kd_error_set(err, KD_ERR_ARG, "label %d of validation row %zu is outside the teacher's %zu classes",
                                (int)y[i], i, C);
    /* A NaN confidence cannot be sorted or binned; say which row has it. */
    for (size_t i = 0; i < N; i++) {
        const float *vi = kd_tensor_row(v, i);
        for (size_t c = 0; c < C; c++)
            if (!isfinite(vi[c]))
                return kd_error_set(err, KD_ERR_ARG, "teacher logit %zu of validation row %zu is %g", c, i,
                                    (double)vi[c]);
    }

    /* Never more bins than rows: each extra bin would be empty, and
     * capping keeps the loop below O(N) whatever the caller asked. */
    size_t nb = n_bins < N ? n_bins : N;
    kd_status st = KD_OK;
    struct conf_row *rows = malloc(N * sizeof *rows);
    cal->lo = malloc(nb * sizeof *cal->lo);
    cal->hi = malloc(nb * sizeof *cal->hi);
    cal->count = malloc(nb * sizeof *cal->count);
    cal->errors = malloc(nb * sizeof *cal->errors);
    cal->error = malloc(nb * sizeof *cal->error);
    cal->topk = malloc(nb * sizeof *cal->topk);
    size_t *hist = calloc(C + 1, sizeof *hist);
    if (!rows || !cal->lo || !cal->hi || !cal->count || !cal->errors || !cal->error || !cal->topk || !hist) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for a calibration of %zu rows", N);
        goto done;
    }
    size_t total_errors = 0;
    for (size_t i = 0; i < N; i++) {
        const float *vi = kd_tensor_row(v, i);
        rows[i].conf = row_confidence(vi, C);
        rows[i].wrong = argmax_skip(vi, C, C) != (size_t)y[i];
        /* Ties rank the gold label after the classes before it, as
         * argmax_skip breaks them, so rank 0 is exactly "right". */
        size_t rank = 0;
        for (size_t c = 0; c < C; c++)
            rank += vi[c] > vi[y[i]] || (vi[c] == vi[y[i]] && c < (size_t)y[i]);
        rows[i].rank = rank;
        total_errors += (size_t)rows[i].wrong;
    }
    qsort(rows, N, sizeof *rows, cmp_conf);

    /* Bin b nominally ends at rank floor((b + 1) N / nb), computed as
     * (b + 1) q + floor((b + 1) r / nb) with a running remainder so that
     * nothing overflows. A bin's end is pushed past a run of equal
     * confidences so a tie never straddles two bins; a later bin whose
     * nominal end the push has already passed is empty and dropped. */
    size_t q = N / nb, r = N % nb, nominal = 0, rem = 0, start = 0, k = 0;
    for (size_t b = 0; b < nb && start < N; b++) {
        nominal += q;
        rem += r;
        if (rem >= nb) {
            rem -= nb;
            nominal++;
        }
        if (nominal <= start)
            continue;
        size_t end = nominal;
        while (end < N && rows[end].conf == rows[end - 1].conf)
            end++;
        size_t errs = 0;
        for (size_t i = start; i < end; i++)
            errs += (size_t)rows[i].wrong;
        cal->count[k] = end - start;
        cal->errors[k] = errs;
        cal->error[k] = ((double)errs + smoothing) / ((double)(end - start) + 2.0 * smoothing);
        /* SLaM's k: the smallest k with rank < k on >= 90% of the bin,
         * counted in integers (10 * hits >= 9 * count) so that 90% of 10
         * is exactly 9. At least 2: a wrong answer needs a class to go to. */
        memset(hist, 0, (C + 1) * sizeof *hist);
        for (size_t i = start; i < end; i++)
            hist[rows[i].rank]++;
        size_t kk = 0, hits = 0;
        while (kk < C && 10 * hits < 9 * (end - start))
            hits += hist[kk++];
        cal->topk[k] = kk < 2 ? (C < 2 ? C : 2) : kk;
        /* Boundaries halfway between neighbouring bins' confidences. The
         * midpoint of two adjacent doubles can round down onto the lower
         * one, which would then belong to the upper bin; use the upper
         * value itself in that case, as a bin holds [lo, hi). */
        cal->lo[k] = 0.0;
        if (k > 0) {
            double a = rows[start - 1].conf, c = rows[start].conf, mid = a + (c - a) / 2.0;
            cal->lo[k] = mid > a ? mid : c;
            cal->hi[k - 1] = cal->lo[k];
        }
        k++;
        start = end;
    }
    cal->hi[k - 1] = 1.0;
    cal->n_bins = k;
    cal->smoothing = smoothing;
    cal->overall_error = (double)total_errors / (double)N;

done:
    free(rows);
    free(hist);
    if (st != KD_OK)
        kd_calibration_release(cal);
    return st;
}

void kd_calibration_release(struct kd_calibration *cal)
{
    if (!cal)
        return;
    free(cal->lo);
    free(cal->hi);
    free(cal->count);
    free(cal->errors);
    free(cal->error);
    free(cal->topk);
    memset(cal, 0, sizeof *cal);
}

size_t kd_calibration_bins(size_t n, size_t requested, size_t min_per_bin)
{
    size_t most = min_per_bin ? n / min_per_bin : n;
    size_t b = requested < most ? requested : most;
    return b ? b : 1;
}

const char *kd_reweight_method_name(enum kd_reweight_method method)
{
    static const char *const names[] = {"confidence", "debiased", "slam"};
    return (unsigned)method < KD_REWEIGHT_N_METHODS ? names[method] : "?";
}

/* The bin of `confidence`, as kd_calibration_error finds it. */
static size_t find_bin(const struct kd_calibration *cal, double confidence)
{
    if (isnan(confidence))
        return cal->n_bins;
    size_t a = 0, b = cal->n_bins;   /* answer in [a, b) */
    while (b - a > 1) {
        size_t m = a + (b - a) / 2;
        if (cal->lo[m] <= confidence)
            a = m;
        else
            b = m;
    }
    return a;
}

size_t kd_calibration_topk(const struct kd_calibration *cal, double confidence)
{
    if (cal->n_bins == 0 || !cal->topk)
        return 2;
    size_t b = find_bin(cal, confidence);
    /* A NaN confidence has no bin: the widest k of the table. */
    if (b == cal->n_bins) {
        size_t k = 2;
        for (size_t i = 0; i < cal->n_bins; i++)
            k = cal->topk[i] > k ? cal->topk[i] : k;
        return k;
    }
    return cal->topk[b];
}

void kd_reweight_confidence(const struct kd_calibration *cal, const struct kd_tensor *v, float *w, double *noise)
{
    for (size_t i = 0; i < v->rows; i++) {
        double p = kd_calibration_error(cal, row_confidence(kd_tensor_row(v, i), v->cols));
        w[i] = (float)(p <= 0.0 ? 1.0 : p >= 1.0 ? 0.0 : 1.0 - p);
        if (noise)
            noise[i] = p;
    }
}

void kd_slam_channel(const struct kd_calibration *cal, const struct kd_tensor *v, float *alpha, int32_t *k,
                     double *noise)
{
    for (size_t i = 0; i < v->rows; i++) {
        double conf = row_confidence(kd_tensor_row(v, i), v->cols);
        double p = kd_calibration_error(cal, conf);
        alpha[i] = (float)(p <= 0.0 ? 1.0 : p >= 1.0 ? 0.0 : 1.0 - p);
        k[i] = (int32_t)kd_calibration_topk(cal, conf);
        if (noise)
            noise[i] = p;
    }
}

/* The bin is the last one whose lo is <= confidence, so bin b holds
 * [lo[b], lo[b + 1]) = [lo[b], hi[b]); values below 0 fall in the first bin
 * and values of 1 or more in the last. A NaN confidence has no bin; kd
 * answers with the overall error rate, the table's best guess without one. */
double kd_calibration_error(const struct kd_calibration *cal, double confidence)
{
    if (cal->n_bins == 0)
        return 0.0;
    size_t b = find_bin(cal, confidence);
    return b == cal->n_bins ? cal->overall_error : cal->error[b];
}

/* p = 0 (a teacher never wrong here) trusts the label fully whatever d is,
 * even an infinite or NaN one; a negative p is read as 0. With p > 0 a d
 * that is NaN or infinite (the student's loss on t underflowed to 0, or its
 * logits are not finite) gives 0: the corrected loss is unbounded below. */
double kd_reweight_formula(double p, double d)
{
    if (isnan(p) || p >= 0.5)
        return 0.0;
    if (p <= 0.0)
        return 1.0;
    if (!isfinite(d))
        return 0.0;
    double w = (1.0 - p - p * d) / (1.0 - 2.0 * p);
    if (w < 0.0)
        return 0.0;
    if (w > 1.0)
        return 1.0;
    return w;
}

kd_status kd_reweight(const struct kd_calibration *cal, const struct kd_tensor *v, const struct kd_tensor *z,
                      double temperature, float *w, double *noise, struct kd_error *err)
{
    if (v->rows != z->rows || v->cols != z->cols)
        return kd_error_set(err, KD_ERR_SHAPE,
                            "reweighting: teacher logits are (%zu, %zu) but student logits are (%zu, %zu)", v->rows,
                            v->cols, z->rows, z->cols);
    if (!(temperature > 0.0) || isinf(temperature))
        return kd_error_set(err, KD_ERR_ARG, "reweighting: temperature must be a number > 0, got %g", temperature);
    size_t N = v->rows, C = v->cols;
    if (N == 0)
        return KD_OK;
    /* z / T, one row at a time, multiplied by the float 1/T as the runner
     * always did so that weights stay bit for bit what they were. */
    float *zt = NULL, inv = (float)(1.0 / temperature);
    if (temperature != 1.0 && !(zt = malloc(C * sizeof *zt)))
        return kd_error_set(err, KD_ERR_NOMEM, "reweighting: out of memory for %zu classes", C);
    for (size_t i = 0; i < N; i++) {
        const float *vi = kd_tensor_row(v, i), *zi = kd_tensor_row(z, i);
        if (zt) {
            for (size_t c = 0; c < C; c++)
                zt[c] = zi[c] * inv;
            zi = zt;
        }
        double p = kd_calibration_error(cal, row_confidence(vi, C));
        /* With one class t2 = t, both losses are 0 and d is +inf below. */
        size_t t = argmax_skip(vi, C, C), t2 = C > 1 ? argmax_skip(vi, C, t) : t;
        double m, lse;
        logsumexp(zi, C, &m, &lse);
        double ce_t = lse - ((double)zi[t] - m), ce_t2 = lse - ((double)zi[t2] - m);
        /* CE(z, t) = 0 means the student puts all of its float mass on t:
         * the ratio is unbounded, and the formula decides what that means. */
        double d = ce_t == 0.0 ? INFINITY : ce_t2 / ce_t;
        w[i] = (float)kd_reweight_formula(p, d);
        if (noise)
            noise[i] = p;
    }
    free(zt);
    return KD_OK;
}

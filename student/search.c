/* Exact top-k inner-product search: blocked GEMM plus a min-heap per query. */
#include "student/kd_student.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Query and document block sizes: a (QB, NB) block of scores is 1 MB, small
 * enough to stay in cache while the heaps read it, large enough for the GEMM
 * to run near its peak. */
#define SEARCH_QB 512
#define SEARCH_NB 512
/* Scores tested at once against the worst kept before any is looked at. */
#define SCAN_CHUNK 64

/* a ranks below b: a lower score, or the same score and a higher index */
static inline int worse(float sa, size_t ia, float sb, size_t ib)
{
    return sa < sb || (sa == sb && ia > ib);
}

/* A min-heap of k (score, index) pairs whose root is the worst kept. */
static void sift_down(float *s, size_t *ix, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && worse(s[l], ix[l], s[w], ix[w]))
            w = l;
        if (r < n && worse(s[r], ix[r], s[w], ix[w]))
            w = r;
        if (w == i)
            return;
        float ts = s[i];
        s[i] = s[w];
        s[w] = ts;
        size_t ti = ix[i];
        ix[i] = ix[w];
        ix[w] = ti;
        i = w;
    }
}

static void sift_up(float *s, size_t *ix, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!worse(s[i], ix[i], s[p], ix[p]))
            return;
        float ts = s[i];
        s[i] = s[p];
        s[p] = ts;
        size_t ti = ix[i];
        ix[i] = ix[p];
        ix[p] = ti;
        i = p;
    }
}

kd_status kd_search_topk(const struct kd_tensor *q, const struct kd_tensor *docs, size_t k, size_t *idx,
                         float *scores, struct kd_error *err)
{
    size_t Q = q->rows, N = docs->rows, E = q->cols;
    if (docs->cols != E)
        return kd_error_set(err, KD_ERR_SHAPE, "queries have width %zu, documents %zu", E, docs->cols);
    if (k == 0)
        return kd_error_set(err, KD_ERR_ARG, "top-k search needs k >= 1");
    size_t QB = Q < SEARCH_QB ? Q : SEARCH_QB, NB = N < SEARCH_NB ? N : SEARCH_NB;
    float *blk = kd_alloc(QB * NB + 1, sizeof(float)); /* (QB, NB) */
    size_t *fill = calloc(QB ? QB : 1, sizeof *fill);            /* entries in each query's heap */
    if (!blk || !fill) {
        kd_free(blk);
        free(fill);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for a %zu x %zu score block", QB, NB);
    }
    for (size_t q0 = 0; q0 < Q; q0 += QB) {
        size_t nq = Q - q0 < QB ? Q - q0 : QB;
        memset(fill, 0, nq * sizeof *fill);
        for (size_t d0 = 0; d0 < N; d0 += NB) {
            size_t nd = N - d0 < NB ? N - d0 : NB;
            kd_sgemm(0, 1, nq, nd, E, 1.0f, kd_tensor_row(q, q0), E, kd_tensor_row(docs, d0), E, 0.0f, blk,
                     nd); /* (nq, nd) */
            for (size_t i = 0; i < nq; i++) {
                float *hs = scores + (q0 + i) * k;
                size_t *hi = idx + (q0 + i) * k, n = fill[i];
                const float *row = blk + i * nd;
                size_t j = 0;
                /* fill the heap first; documents come in increasing index */
                for (; j < nd && n < k; j++) {
                    if (isnan(row[j]))
                        continue;
                    hs[n] = row[j];
                    hi[n] = d0 + j;
                    sift_up(hs, hi, n);
                    n++;
                }
                /* then a document enters only by beating the worst kept: an
                 * equal score loses, as its index is higher */
                float worst = n ? hs[0] : -INFINITY;
                while (j < nd) {
                    /* Most chunks hold no candidate: test them with one
                     * vectorised OR of comparisons, and walk only the others. */
                    size_t end = nd - j < SCAN_CHUNK ? nd : j + SCAN_CHUNK;
                    int any = 0;
                    for (size_t t = j; t < end; t++)
                        any |= row[t] > worst;
                    for (size_t t = j; any && t < end; t++)
                        if (row[t] > worst) {
                            hs[0] = row[t];
                            hi[0] = d0 + t;
                            sift_down(hs, hi, k, 0);
                            worst = hs[0];
                        }
                    j = end;
                }
                fill[i] = n;
            }
        }
        /* Heap to a sorted list, best first: pop the worst to the back. */
        for (size_t i = 0; i < nq; i++) {
            float *hs = scores + (q0 + i) * k;
            size_t *hi = idx + (q0 + i) * k, n = fill[i];
            for (size_t m = n; m > 1; m--) {
                float ts = hs[0];
                hs[0] = hs[m - 1];
                hs[m - 1] = ts;
                size_t ti = hi[0];
                hi[0] = hi[m - 1];
                hi[m - 1] = ti;
                sift_down(hs, hi, m - 1, 0);
            }
            for (size_t m = n; m < k; m++) {
                hs[m] = -INFINITY;
                hi[m] = SIZE_MAX;
            }
        }
    }
    kd_free(blk);
    free(fill);
    return KD_OK;
}

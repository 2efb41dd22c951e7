/* Helpers shared by the retrieval tests: hashed features built by hand. */
#ifndef KD_TEST_RETRIEVAL_H
#define KD_TEST_RETRIEVAL_H

#include <criterion/criterion.h>
#include <stdlib.h>

#include "data/kd_data.h"

/* n texts of 0..maxlen random ids below buckets (text 0 empty when
 * with_empty); ids may repeat inside a text. Release with kd_features_release. */
static inline void random_features(struct kd_features *f, size_t n, uint32_t buckets, size_t maxlen,
                                   int with_empty, struct kd_rng *r)
{
    f->n = n;
    f->buckets = buckets;
    f->offsets = malloc((n + 1) * sizeof *f->offsets);
    f->ids = malloc((n * maxlen + 1) * sizeof *f->ids);
    cr_assert(f->offsets && f->ids);
    f->offsets[0] = 0;
    size_t nnz = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = (with_empty && i == 0) ? 0 : 1 + (size_t)kd_rng_below(r, maxlen);
        for (size_t j = 0; j < len; j++)
            f->ids[nnz++] = (uint32_t)kd_rng_below(r, buckets);
        f->offsets[i + 1] = nnz;
    }
    f->nnz = nnz;
}

/* Features from a list of texts written as id arrays terminated by -1. */
static inline void features_from(struct kd_features *f, const int *const *texts, size_t n, uint32_t buckets)
{
    size_t nnz = 0;
    for (size_t i = 0; i < n; i++)
        for (const int *p = texts[i]; *p >= 0; p++)
            nnz++;
    f->n = n;
    f->buckets = buckets;
    f->offsets = malloc((n + 1) * sizeof *f->offsets);
    f->ids = malloc((nnz + 1) * sizeof *f->ids);
    cr_assert(f->offsets && f->ids);
    f->offsets[0] = 0;
    nnz = 0;
    for (size_t i = 0; i < n; i++) {
        for (const int *p = texts[i]; *p >= 0; p++)
            f->ids[nnz++] = (uint32_t)*p;
        f->offsets[i + 1] = nnz;
    }
    f->nnz = nnz;
}

#endif

/* core: BLAS wrappers against the naive reference, RNG, hashing, errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kd_core.h"

static void fill(struct kd_rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(2.0 * kd_rng_uniform(r) - 1.0);
}

/* Every transpose case, odd sizes, padded leading dimensions, beta != 0. */
Test(core, sgemm_matches_naive_reference_in_every_transpose_case)
{
    struct kd_rng r;
    kd_rng_seed(&r, 7);
    const size_t M = 37, N = 29, K = 53, pad = 3;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            size_t arows = ta ? K : M, acols = ta ? M : K, lda = acols + pad;
            size_t brows = tb ? N : K, bcols = tb ? K : N, ldb = bcols + pad, ldc = N + pad;
            float *A = kd_alloc(arows * lda, sizeof(float)), *B = kd_alloc(brows * ldb, sizeof(float));
            float *C1 = kd_alloc(M * ldc, sizeof(float)), *C2 = kd_alloc(M * ldc, sizeof(float));
            fill(&r, A, arows * lda);
            fill(&r, B, brows * ldb);
            fill(&r, C1, M * ldc);
            memcpy(C2, C1, M * ldc * sizeof(float));
            kd_sgemm(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, -0.5f, C1, ldc);
            kd_sgemm_ref(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, -0.5f, C2, ldc);
            for (size_t i = 0; i < M; i++)
                for (size_t j = 0; j < N; j++)
                    cr_assert(fabsf(C1[i * ldc + j] - C2[i * ldc + j]) < 1e-4f,
                              "ta=%d tb=%d C[%zu,%zu]: %g vs %g", ta, tb, i, j, C1[i * ldc + j], C2[i * ldc + j]);
            /* padding columns are untouched */
            for (size_t i = 0; i < M; i++)
                for (size_t j = N; j < ldc; j++)
                    cr_assert_eq(C1[i * ldc + j], C2[i * ldc + j]);
            kd_free(A), kd_free(B), kd_free(C1), kd_free(C2);
        }
}

Test(core, sgemm_with_beta_zero_ignores_nan_in_output)
{
    float A[4] = {1, 2, 3, 4}, B[4] = {1, 0, 0, 1}, C[4] = {NAN, NAN, NAN, NAN};
    kd_sgemm(0, 0, 2, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 2);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(C[i], A[i]);
}

Test(core, matmul_rejects_shapes_that_do_not_fit_with_both_shapes_in_the_message)
{
    struct kd_error err = {0};
    struct kd_tensor a, b, c;
    kd_tensor_init(&a, 2, 3, &err);
    kd_tensor_init(&b, 4, 5, &err);
    kd_tensor_init(&c, 2, 5, &err);
    cr_assert_eq(kd_matmul(&a, 0, &b, 0, 1.0f, 0.0f, &c, &err), KD_ERR_SHAPE);
    cr_assert(strstr(err.msg, "(2, 3) x (4, 5)"), "%s", err.msg);
    cr_assert_eq(kd_matmul(&a, 0, &b, 1, 1.0f, 0.0f, &c, &err), KD_ERR_SHAPE); /* (2,3)(5,4) */
    kd_tensor_release(&a), kd_tensor_release(&b), kd_tensor_release(&c);
}

Test(core, dgemm_matches_a_hand_computed_product)
{
    double A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {7, 8, 9, 10, 11, 12}, C[4];
    kd_dgemm(0, 0, 2, 2, 3, 1.0, A, 3, B, 2, 0.0, C, 2); /* (2,3)(3,2) */
    cr_assert_eq(C[0], 58.0);
    cr_assert_eq(C[1], 64.0);
    cr_assert_eq(C[2], 139.0);
    cr_assert_eq(C[3], 154.0);
}

Test(core, rng_same_seed_same_stream_different_seed_different_stream)
{
    struct kd_rng a, b, c;
    kd_rng_seed(&a, 123);
    kd_rng_seed(&b, 123);
    kd_rng_seed(&c, 124);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = kd_rng_u64(&a);
        cr_assert_eq(x, kd_rng_u64(&b));
        differ += x != kd_rng_u64(&c);
    }
    cr_assert_gt(differ, 990);
}

Test(core, rng_uniform_and_normal_have_the_right_moments)
{
    struct kd_rng r;
    kd_rng_seed(&r, 5);
    const int n = 200000;
    double s = 0, s2 = 0, u = 0;
    for (int i = 0; i < n; i++) {
        double x = kd_rng_normal(&r), v = kd_rng_uniform(&r);
        cr_assert(v >= 0.0 && v < 1.0);
        s += x, s2 += x * x, u += v;
    }
    cr_assert(fabs(s / n) < 0.01, "normal mean %g", s / n);
    cr_assert(fabs(s2 / n - 1.0) < 0.02, "normal variance %g", s2 / n);
    cr_assert(fabs(u / n - 0.5) < 0.005, "uniform mean %g", u / n);
}

/* The bulk mask draws what n calls of kd_rng_uniform draw, in order, and
 * leaves the generator where they leave it. */
Test(core, rng_dropout_mask_matches_a_uniform_draw_per_value)
{
    /* exact binary fractions and not, the ends, and a p between two
     * values of the 2^-53 grid */
    double ps[] = {0.0, 0.25, 0.3, 0.5, 0.999, 1.0, 0x1.8p-53, -0.5};
    size_t ns[] = {0, 1, 7, 1000};
    float mask[1000];
    for (size_t a = 0; a < sizeof ps / sizeof *ps; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++) {
            struct kd_rng fast, ref;
            kd_rng_seed(&fast, 31 + a);
            kd_rng_seed(&ref, 31 + a);
            float keep = ps[a] < 1.0 ? (float)(1.0 / (1.0 - ps[a])) : 0.0f;
            kd_rng_dropout_mask(&fast, ps[a], keep, mask, ns[b]);
            size_t dropped = 0;
            for (size_t i = 0; i < ns[b]; i++) {
                float want = kd_rng_uniform(&ref) < ps[a] ? 0.0f : keep;
                cr_assert(memcmp(&mask[i], &want, sizeof want) == 0, "p %g, value %zu of %zu: %g, expected %g",
                          ps[a], i, ns[b], (double)mask[i], (double)want);
                dropped += mask[i] == 0.0f;
            }
            for (int i = 0; i < 4; i++)
                cr_assert_eq(fast.s[i], ref.s[i], "p %g, n %zu: state word %d differs", ps[a], ns[b], i);
            double share = ps[a] < 0.0 ? 0.0 : ps[a];
            if (ns[b] == 1000)
                cr_assert(fabs((double)dropped / 1000.0 - share) < 0.05, "p %g: %zu of 1000 dropped", ps[a],
                          dropped);
        }
}

Test(core, rng_below_is_in_range_and_covers_it)
{
    struct kd_rng r;
    kd_rng_seed(&r, 9);
    int seen[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint64_t v = kd_rng_below(&r, 7);
        cr_assert_lt(v, 7);
        seen[v]++;
    }
    for (int i = 0; i < 7; i++)
        cr_assert(seen[i] > 850 && seen[i] < 1150, "value %d seen %d times", i, seen[i]);
}

Test(core, shuffle_is_a_permutation_and_depends_on_the_seed)
{
    size_t a[100], b[100];
    int seen[100] = {0};
    for (size_t i = 0; i < 100; i++)
        a[i] = b[i] = i;
    struct kd_rng r1, r2;
    kd_rng_seed(&r1, 1);
    kd_rng_seed(&r2, 2);
    kd_rng_shuffle(&r1, a, 100);
    kd_rng_shuffle(&r2, b, 100);
    for (size_t i = 0; i < 100; i++)
        seen[a[i]]++;
    for (size_t i = 0; i < 100; i++)
        cr_assert_eq(seen[i], 1);
    cr_assert(memcmp(a, b, sizeof a) != 0);
}

Test(core, hash_is_stable_and_hex_and_bytes_round_trip)
{
    struct kd_hash h1 = kd_hash_bytes("kd", 2), h2 = kd_hash_bytes("kd", 2), h3 = kd_hash_bytes("kD", 2);
    cr_assert(kd_hash_equal(h1, h2));
    cr_assert(!kd_hash_equal(h1, h3));
    char hex[KD_HASH_HEX_LEN + 1];
    kd_hash_hex(h1, hex);
    cr_assert_eq(strlen(hex), 32);
    unsigned char bytes[16];
    kd_hash_to_bytes(h1, bytes);
    cr_assert(kd_hash_equal(kd_hash_from_bytes(bytes), h1));
    /* streaming over pieces equals one shot */
    struct kd_hasher hs;
    cr_assert_eq(kd_hasher_init(&hs, NULL), KD_OK);
    kd_hasher_update(&hs, "k", 1);
    kd_hasher_update(&hs, "d", 1);
    cr_assert(kd_hash_equal(kd_hasher_digest(&hs), h1));
    kd_hasher_release(&hs);
}

Test(core, hash_file_of_missing_file_names_the_file)
{
    struct kd_error err = {0};
    struct kd_hash h;
    cr_assert_eq(kd_hash_file("/nonexistent/weights.bin", &h, &err), KD_ERR_IO);
    cr_assert(strstr(err.msg, "cannot open '/nonexistent/weights.bin'"), "%s", err.msg);
}

Test(core, error_prefix_puts_context_in_front)
{
    struct kd_error err = {0};
    kd_error_set(&err, KD_ERR_FORMAT, "bad byte at %d", 12);
    kd_error_prefix(&err, "reading '%s'", "x.idx");
    cr_assert_str_eq(err.msg, "reading 'x.idx': bad byte at 12");
    cr_assert_eq(err.status, KD_ERR_FORMAT);
    cr_assert_eq(kd_error_set(NULL, KD_ERR_IO, "ignored"), KD_ERR_IO);
}

Test(core, format_double_round_trips)
{
    double vals[] = {0.1, 1.0 / 3.0, 1e-300, -2.5e17, 3.0};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        char buf[40];
        kd_format_double(buf, sizeof buf, vals[i]);
        cr_assert_eq(strtod(buf, NULL), vals[i], "%s", buf);
    }
}

Test(core, read_file_returns_contents_and_names_missing_files)
{
    struct kd_error err = {0};
    char *buf;
    size_t n;
    cr_assert_eq(kd_read_file("/nonexistent/x.yaml", &buf, &n, &err), KD_ERR_IO);
    cr_assert(strstr(err.msg, "/nonexistent/x.yaml"));
    char path[] = "/tmp/kd-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("hello", f);
    fclose(f);
    cr_assert_eq(kd_read_file(path, &buf, &n, &err), KD_OK);
    cr_assert_eq(n, 5);
    cr_assert_str_eq(buf, "hello");
    free(buf);
    remove(path);
}

Test(core, rng_derive_gives_every_purpose_its_own_stream_in_the_same_round)
{
    /* Selection and TGT once drew the same stream in the same round (both
     * seed * 1000003 + round): every pair of purposes must differ. */
    enum kd_rng_purpose all[] = {KD_RNG_TRAIN_ROUND, KD_RNG_SELECT, KD_RNG_TGT, KD_RNG_SECOND_STUDENT,
                                 KD_RNG_AUTOENCODER_DECODER, KD_RNG_DROPOUT};
    size_t n = sizeof all / sizeof all[0];
    for (uint64_t seed = 0; seed < 64; seed++)
        for (uint64_t index = 0; index < 64; index++)
            for (size_t a = 0; a < n; a++)
                for (size_t b = a + 1; b < n; b++)
                    cr_assert_neq(kd_rng_derive(seed, all[a], index), kd_rng_derive(seed, all[b], index),
                                  "purposes %d and %d, seed %llu, index %llu", (int)all[a], (int)all[b],
                                  (unsigned long long)seed, (unsigned long long)index);
    /* and the streams themselves differ, not only their seeds */
    struct kd_rng s, t;
    kd_rng_seed(&s, kd_rng_derive(1, KD_RNG_SELECT, 1));
    kd_rng_seed(&t, kd_rng_derive(1, KD_RNG_TGT, 1));
    cr_assert_neq(kd_rng_u64(&s), kd_rng_u64(&t));
}

Test(core, rng_derive_is_deterministic_and_moves_with_seed_and_index)
{
    cr_assert_eq(kd_rng_derive(7, KD_RNG_SELECT, 3), kd_rng_derive(7, KD_RNG_SELECT, 3));
    cr_assert_neq(kd_rng_derive(7, KD_RNG_SELECT, 3), kd_rng_derive(8, KD_RNG_SELECT, 3));
    cr_assert_neq(kd_rng_derive(7, KD_RNG_SELECT, 3), kd_rng_derive(7, KD_RNG_SELECT, 4));
    /* the frozen formula of training rounds: recorded runs keep their numbers */
    cr_assert_eq(kd_rng_derive(1, KD_RNG_TRAIN_ROUND, 0), 1);
    cr_assert_eq(kd_rng_derive(1, KD_RNG_TRAIN_ROUND, 5), 1 + 5 * 7919);
}

/* kd_grow: room for element n, doubling from 16, contents kept. */
Test(core, grow_makes_room_for_the_next_element_and_keeps_the_contents)
{
    int *a = NULL;
    size_t cap = 0;
    for (size_t n = 0; n < 100; n++) {
        cr_assert_eq(KD_GROW(a, cap, n), 1);
        cr_assert_gt(cap, n);
        a[n] = (int)n * 3;
    }
    cr_expect_eq(cap, 128, "16, 32, 64, 128");
    for (size_t n = 0; n < 100; n++)
        cr_assert_eq(a[n], (int)n * 3);
    size_t before = cap;
    cr_assert_eq(KD_GROW(a, cap, 5), 1, "room already");
    cr_expect_eq(cap, before);
    free(a);
    /* a size that cannot be allocated leaves the array as it was */
    char *b = NULL;
    size_t bc = 0;
    cr_assert_eq(kd_grow((void **)&b, &bc, 0, SIZE_MAX / 2), 0);
    cr_expect_null(b);
    cr_expect_eq(bc, 0);
}

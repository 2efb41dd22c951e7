/* core: the thread pool (kd_pool_*) and the hand-over of the cores between
 * it and OpenBLAS (kd_blas_hold_single). */
#include <criterion/criterion.h>
#include <string.h>

#include "core/kd_core.h"

struct marks {
    size_t hits[16];
    size_t seen_n[16];
    size_t sum[16]; /* of worker w's share of 0..999 */
};

static void mark(void *ctx, size_t w, size_t n)
{
    struct marks *m = ctx;
    m->hits[w]++;
    m->seen_n[w] = n;
    size_t lo, hi;
    kd_pool_range(1000, 16, w, n, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        m->sum[w] += i;
}

Test(core, a_pool_runs_every_worker_once_per_run_and_stops_cleanly)
{
    struct kd_error err = {0};
    for (size_t n = 1; n <= 9; n += 4) {
        struct kd_pool *p;
        cr_assert_eq(kd_pool_new(n, &p, &err), KD_OK, "%s", err.msg);
        cr_assert_eq(kd_pool_size(p), n);
        struct marks m;
        memset(&m, 0, sizeof m);
        for (int r = 0; r < 200; r++)
            kd_pool_run(p, mark, &m);
        size_t total = 0;
        for (size_t w = 0; w < n; w++) {
            cr_assert_eq(m.hits[w], 200, "pool of %zu, worker %zu ran %zu times", n, w, m.hits[w]);
            cr_assert_eq(m.seen_n[w], n);
            total += m.sum[w];
        }
        cr_assert_eq(total, 200 * (999 * 1000 / 2), "the ranges cover 0..999 once each");
        for (size_t w = n; w < 16; w++)
            cr_assert_eq(m.hits[w], 0);
        kd_pool_free(p);
    }
    /* freed without ever running */
    struct kd_pool *p;
    cr_assert_eq(kd_pool_new(3, &p, &err), KD_OK);
    kd_pool_free(p);
    kd_pool_free(NULL);
    /* no pool: the caller alone */
    struct marks m;
    memset(&m, 0, sizeof m);
    kd_pool_run(NULL, mark, &m);
    cr_assert_eq(m.hits[0], 1);
    cr_assert_eq(m.seen_n[0], 1);
    cr_assert_eq(kd_pool_size(NULL), 1);
}

/* Each worker writes its slot, waits at the barrier, then reads every
 * slot: the values of this round, never the last one's. */
struct rounds {
    struct kd_pool *p;
    size_t round;
    size_t slot[16];
    size_t wrong[16];
};

static void write_wait_read(void *ctx, size_t w, size_t n)
{
    struct rounds *r = ctx;
    for (size_t phase = 0; phase < 3; phase++) {
        size_t want = r->round * 3 + phase + 1;
        r->slot[w] = want;
        kd_pool_barrier(r->p);
        for (size_t u = 0; u < n; u++)
            r->wrong[w] += r->slot[u] != want;
        /* nobody writes the next phase's value before all have read */
        kd_pool_barrier(r->p);
    }
}

Test(core, a_pool_barrier_lets_no_worker_past_before_all_arrive)
{
    struct kd_error err = {0};
    for (size_t n = 1; n <= 5; n += 2) {
        struct rounds r;
        memset(&r, 0, sizeof r);
        cr_assert_eq(kd_pool_new(n, &r.p, &err), KD_OK, "%s", err.msg);
        for (r.round = 0; r.round < 300; r.round++)
            kd_pool_run(r.p, write_wait_read, &r);
        for (size_t w = 0; w < n; w++)
            cr_assert_eq(r.wrong[w], 0, "pool of %zu: worker %zu read %zu stale slots", n, w, r.wrong[w]);
        kd_pool_free(r.p);
    }
    /* no pool: returns at once */
    kd_pool_barrier(NULL);
}

Test(core, pool_ranges_are_aligned_contiguous_and_in_order)
{
    for (size_t n = 0; n < 300; n += 7)
        for (size_t T = 1; T <= 5; T++) {
            size_t prev = 0;
            for (size_t w = 0; w < T; w++) {
                size_t lo, hi;
                kd_pool_range(n, 16, w, T, &lo, &hi);
                cr_assert_eq(lo, prev, "n %zu, %zu workers, worker %zu", n, T, w);
                cr_assert_leq(lo, hi);
                cr_assert(lo % 16 == 0 || lo == n);
                prev = hi;
            }
            cr_assert_eq(prev, n);
        }
    size_t lo, hi;
    kd_pool_range(5, 0, 1, 2, &lo, &hi); /* align 0 is 1 */
    cr_assert_eq(lo, 2);
    cr_assert_eq(hi, 5);
}

Test(core, a_pool_of_no_threads_or_too_many_is_an_error)
{
    struct kd_error err = {0};
    struct kd_pool *p = (struct kd_pool *)&err;
    cr_assert_eq(kd_pool_new(0, &p, &err), KD_ERR_ARG);
    cr_assert_null(p);
    cr_assert_str_eq(err.msg, "a thread pool needs 1 to 1024 threads, got 0");
    cr_assert_eq(kd_pool_new(KD_POOL_MAX + 1, &p, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "a thread pool needs 1 to 1024 threads, got 1025");
}

Test(core, holding_blas_at_one_thread_nests_and_restores_the_count)
{
    kd_blas_set_threads(3);
    kd_blas_hold_single();
    cr_assert_eq(kd_blas_get_threads(), 3, "the count to come back to");
    kd_blas_hold_single();
    kd_blas_release_single();
    cr_assert_eq(kd_blas_get_threads(), 3);
    kd_blas_set_threads(2); /* while held: what release restores */
    cr_assert_eq(kd_blas_get_threads(), 2);
    kd_blas_release_single();
    cr_assert_eq(kd_blas_get_threads(), 2);
    kd_blas_release_single(); /* one too many: nothing */
    cr_assert_eq(kd_blas_get_threads(), 2);
    kd_blas_set_threads(1);
}

/* A (M, K) B (K, NN) for each worker's own A and C. */
enum { GM = 67, GK = 45, GN = 33, GW = 4 };
static float ga[GW][GM * GK], gb[GK * GN], gc[GW][GM * GN], gref[GW][GM * GN];

static void gemm_job(void *ctx, size_t w, size_t n)
{
    (void)ctx, (void)n;
    kd_sgemm(0, 0, GM, GN, GK, 1.0f, ga[w], GK, gb, GN, 0.0f, gc[w], GN);
}

Test(core, sgemm_from_several_threads_at_once_with_blas_held_at_one)
{
    /* OpenBLAS (pthreads build) at one thread, called from every worker at
     * once: each result must be the one computed alone */
    struct kd_rng r;
    kd_rng_seed(&r, 2);
    for (size_t i = 0; i < GK * GN; i++)
        gb[i] = (float)kd_rng_normal(&r);
    for (size_t w = 0; w < GW; w++) {
        for (size_t i = 0; i < GM * GK; i++)
            ga[w][i] = (float)kd_rng_normal(&r);
        kd_sgemm(0, 0, GM, GN, GK, 1.0f, ga[w], GK, gb, GN, 0.0f, gref[w], GN);
    }
    struct kd_pool *p;
    struct kd_error err = {0};
    cr_assert_eq(kd_pool_new(GW, &p, &err), KD_OK);
    kd_blas_hold_single();
    for (int rep = 0; rep < 50; rep++) {
        memset(gc, 0, sizeof gc);
        kd_pool_run(p, gemm_job, NULL);
        cr_assert_eq(memcmp(gc, gref, sizeof gc), 0, "round %d", rep);
    }
    kd_blas_release_single();
    kd_pool_free(p);
}

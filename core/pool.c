/* A small pool of persistent threads that run one function together
 * (kd_pool_run), and the hand-over of the cores between it and OpenBLAS's
 * own threads (kd_blas_hold_single). */
#include "core/kd_core.h"

#include <pthread.h>
#include <stdlib.h>

struct kd_pool {
    pthread_mutex_t mu;
    pthread_cond_t go, done, bar;
    pthread_t *threads;     /* n - 1 of them: the caller is worker 0 */
    size_t n, started;
    uint64_t gen;           /* bumped by each kd_pool_run */
    size_t pending;         /* workers of this generation still running */
    int quit;
    size_t bar_waiting;     /* workers in kd_pool_barrier */
    uint64_t bar_gen;       /* bumped each time all of them have arrived */
    kd_pool_fn fn;
    void *ctx;
};

struct worker_arg {
    struct kd_pool *p;
    size_t id;
};

static void *worker(void *arg)
{
    struct kd_pool *p = ((struct worker_arg *)arg)->p;
    size_t id = ((struct worker_arg *)arg)->id;
    free(arg);
    pthread_mutex_lock(&p->mu);
    uint64_t seen = 0; /* not p->gen: a run may already have begun */
    for (;;) {
        /* blocks (no spinning) until the next kd_pool_run or the end */
        while (p->gen == seen && !p->quit)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->quit)
            break;
        seen = p->gen;
        kd_pool_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);
        fn(ctx, id, p->n);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* kd_pool_limit_threads: threads that may still start (0: no limit) */
static size_t thread_limit;

void kd_pool_limit_threads(size_t n) { thread_limit = n; }

kd_status kd_pool_new(size_t n, struct kd_pool **out, struct kd_error *err)
{
    *out = NULL;
    if (n < 1 || n > KD_POOL_MAX)
        return kd_error_set(err, KD_ERR_ARG, "a thread pool needs 1 to %d threads, got %zu", KD_POOL_MAX, n);
    struct kd_pool *p = calloc(1, sizeof *p);
    if (!p)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for a thread pool");
    p->n = n;
    if (pthread_mutex_init(&p->mu, NULL)) {
        free(p);
        return kd_error_set(err, KD_ERR_NOMEM, "cannot create a mutex for a thread pool");
    }
    int go = pthread_cond_init(&p->go, NULL) == 0;
    int done = go && pthread_cond_init(&p->done, NULL) == 0;
    int bar = done && pthread_cond_init(&p->bar, NULL) == 0;
    if (!bar) {
        if (done)
            pthread_cond_destroy(&p->done);
        if (go)
            pthread_cond_destroy(&p->go);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return kd_error_set(err, KD_ERR_NOMEM, "cannot create condition variables for a thread pool");
    }
    if (n > 1 && !(p->threads = calloc(n - 1, sizeof *p->threads))) {
        kd_pool_free(p);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for a thread pool");
    }
    for (size_t i = 1; i < n; i++) {
        struct worker_arg *a = malloc(sizeof *a);
        if (a) {
            a->p = p;
            a->id = i;
        }
        if (!a || (thread_limit && i > thread_limit) || pthread_create(&p->threads[i - 1], NULL, worker, a)) {
            free(a);
            kd_pool_free(p);
            return kd_error_set(err, KD_ERR_NOMEM, "cannot start thread %zu of a pool of %zu", i + 1, n);
        }
        p->started = i;
    }
    *out = p;
    return KD_OK;
}

size_t kd_pool_size(const struct kd_pool *p) { return p ? p->n : 1; }

void kd_pool_run(struct kd_pool *p, kd_pool_fn fn, void *ctx)
{
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->pending = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    pthread_mutex_lock(&p->mu);
    while (p->pending)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void kd_pool_barrier(struct kd_pool *p)
{
    if (!p || p->n == 1)
        return;
    pthread_mutex_lock(&p->mu);
    uint64_t gen = p->bar_gen;
    if (++p->bar_waiting == p->n) {
        /* the last to arrive lets the others go */
        p->bar_waiting = 0;
        p->bar_gen++;
        pthread_cond_broadcast(&p->bar);
    } else {
        while (p->bar_gen == gen)
            pthread_cond_wait(&p->bar, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
}

void kd_pool_free(struct kd_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->bar);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void kd_pool_range(size_t n, size_t align, size_t worker, size_t n_workers, size_t *lo, size_t *hi)
{
    if (align < 1)
        align = 1;
    size_t blocks = (n + align - 1) / align;
    size_t b0 = blocks * worker / n_workers, b1 = blocks * (worker + 1) / n_workers;
    *lo = b0 * align < n ? b0 * align : n;
    *hi = b1 * align < n ? b1 * align : n;
}

/* ------------------------------------------------- kd's threads and BLAS's */

static enum kd_threads_split split_policy = KD_SPLIT_AUTO;

void kd_threads_set_split(enum kd_threads_split s) { split_policy = s; }
enum kd_threads_split kd_threads_get_split(void) { return split_policy; }

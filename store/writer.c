/* kd_store_writer: answers gathered from many small teacher batches and
 * stored in a few big transactions (a big put costs little more than a
 * small one into a big store; see kd_store_put), either by the caller or,
 * after kd_store_writer_background, by a thread of the writer's own with
 * its own connection to the file, while the caller computes its next
 * batch. */
#include "store/store_impl.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* Answers gathered for one put. */
struct wbuf {
    struct kd_hash *keys;         /* (cap) */
    float *vec;                   /* (cap, d) */
    struct kd_store_origin *orig; /* (cap); strings point into strings[] */
    size_t n, cap;
    char **strings; /* copies of the origins' strings */
    size_t n_strings, cap_strings;
};

struct kd_store_writer {
    struct kd_store *st;
    int64_t teacher;
    enum kd_store_kind kind;
    size_t d, max_rows;
    double max_seconds;
    struct wbuf buf;  /* what add gathers */
    double t_first;   /* kd_time_now() of the oldest buffered answer */
    size_t added;     /* new answers stored since the last flush */
    /* In the background (bg = 1), the thread stores `back` through bst;
     * busy, stop, the result of its last put (bg_status, bg_err,
     * bg_added) and back itself while busy are guarded by mu. A put that
     * failed leaves its answers in back, for the caller to take back into
     * buf (bg_wait). */
    int bg;
    size_t hold_max; /* rows add gathers while the thread is busy */
    struct kd_store *bst;
    struct wbuf back;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int busy, stop;
    kd_status bg_status;
    struct kd_error bg_err;
    size_t bg_added;
    size_t bg_puts;   /* puts the thread committed, since new */
};

kd_status kd_store_writer_new(struct kd_store *st, int64_t teacher, enum kd_store_kind kind,
                              size_t d, size_t max_rows, double max_seconds,
                              struct kd_store_writer **out, struct kd_error *err)
{
    *out = NULL;
    if (!kd_store_kind_name(kind))
        return kd_error_set(err, KD_ERR_ARG, "unknown answer kind %d", (int)kind);
    if (d == 0 || max_rows == 0 || !(max_seconds >= 0))
        return kd_error_set(err, KD_ERR_ARG,
                            "a store writer needs a width, max_rows > 0 and max_seconds >= 0");
    size_t width = 0;
    kd_status s = kd_store_width(st, teacher, kind, &width, err);
    if (s)
        return s;
    if (width && width != d)
        return kd_error_set(err, KD_ERR_SHAPE,
                            "the %s of teacher %lld in label store '%s' have width %zu, not %zu",
                            kd_store_kind_name(kind), (long long)teacher, kd_store_path(st), width,
                            d);
    struct kd_store_writer *w = calloc(1, sizeof *w);
    if (!w)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for a store writer");
    w->st = st;
    w->teacher = teacher;
    w->kind = kind;
    w->d = d;
    w->max_rows = max_rows;
    w->max_seconds = max_seconds;
    *out = w;
    return KD_OK;
}

/* A copy of s owned by b (NULL for NULL); the same text is kept once,
 * since a batch's origins share their dataset and strategy. */
static const char *intern(struct wbuf *b, const char *s, int *failed)
{
    if (!s)
        return NULL;
    for (size_t i = b->n_strings; i-- > 0;)
        if (!strcmp(b->strings[i], s))
            return b->strings[i];
    if (b->n_strings == b->cap_strings) {
        size_t cap = b->cap_strings ? 2 * b->cap_strings : 8;
        char **ns = realloc(b->strings, cap * sizeof *ns);
        if (!ns) {
            *failed = 1;
            return NULL;
        }
        b->strings = ns;
        b->cap_strings = cap;
    }
    char *c = strdup(s);
    if (!c) {
        *failed = 1;
        return NULL;
    }
    b->strings[b->n_strings++] = c;
    return c;
}

/* Empties b, keeping its memory. */
static void buf_drop(struct wbuf *b)
{
    for (size_t i = 0; i < b->n_strings; i++)
        free(b->strings[i]);
    b->n_strings = 0;
    b->n = 0;
}

static void buf_free(struct wbuf *b)
{
    buf_drop(b);
    free(b->strings);
    free(b->keys);
    free(b->vec);
    free(b->orig);
}

/* Appends n answers (keys, answers (n, d), origins or NULL) to b, copying
 * the origins' strings. */
static kd_status buf_append(struct kd_store_writer *w, struct wbuf *b, const struct kd_hash *keys,
                            size_t n, const float *answers, const struct kd_store_origin *origins,
                            struct kd_error *err)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n)
            cap *= 2;
        struct kd_hash *k = realloc(b->keys, cap * sizeof *k);
        if (k)
            b->keys = k;
        float *v = realloc(b->vec, cap * w->d * sizeof *v);
        if (v)
            b->vec = v;
        struct kd_store_origin *o = realloc(b->orig, cap * sizeof *o);
        if (o)
            b->orig = o;
        if (!k || !v || !o)
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory buffering %zu answers", b->n + n);
        b->cap = cap;
    }
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        struct kd_store_origin o = origins ? origins[i] : kd_store_origin_none();
        o.dataset = intern(b, o.dataset, &failed);
        o.strategy = intern(b, o.strategy, &failed);
        b->orig[b->n + i] = o;
    }
    if (failed)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory buffering %zu answers", b->n + n);
    memcpy(b->keys + b->n, keys, n * sizeof *keys);
    memcpy(b->vec + b->n * w->d, answers, n * w->d * sizeof(float));
    b->n += n;
    return KD_OK;
}

static kd_status buf_put(struct kd_store_writer *w, struct kd_store *st, struct wbuf *b,
                         size_t *got, struct kd_error *err)
{
    *got = 0;
    return kd_store_put(st, w->teacher, w->kind, b->keys, b->n, w->d, b->vec, b->orig, got, err);
}

/* ------------------------------------------------------------ background */

static void *bg_main(void *arg)
{
    struct kd_store_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->busy && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->busy)
            break;
        pthread_mutex_unlock(&w->mu);
        struct kd_error e = {0};
        size_t got = 0;
        kd_status s = buf_put(w, w->bst, &w->back, &got, &e);
        if (!s)
            buf_drop(&w->back);
        pthread_mutex_lock(&w->mu);
        if (s && !w->bg_status) {
            w->bg_status = s;
            w->bg_err = e;
        }
        w->bg_added += got;
        w->bg_puts += !s;
        w->busy = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Waits until the thread has stored what it was given; returns the result
 * of its puts since the last call (the first failure, in err). The answers
 * of a put that failed go back into buf, as in the caller's thread: the
 * next hand-off or flush tries them again, free drops them with a warning. */
static kd_status bg_wait(struct kd_store_writer *w, struct kd_error *err)
{
    pthread_mutex_lock(&w->mu);
    while (w->busy)
        pthread_cond_wait(&w->cv, &w->mu);
    kd_status s = w->bg_status;
    if (s)
        kd_error_set(err, s, "%s", w->bg_err.msg);
    w->bg_status = KD_OK;
    w->added += w->bg_added;
    w->bg_added = 0;
    pthread_mutex_unlock(&w->mu);
    if (s && w->back.n) {
        struct kd_error e = {0};
        if (buf_append(w, &w->buf, w->back.keys, w->back.n, w->back.vec, w->back.orig, &e))
            kd_log(KD_LOG_WARN, "label store '%s': %zu answers of a failed put were dropped: %s",
                   kd_store_path(w->st), w->back.n, e.msg);
        buf_drop(&w->back);
    }
    return s;
}

static int bg_busy(struct kd_store_writer *w)
{
    pthread_mutex_lock(&w->mu);
    int busy = w->busy;
    pthread_mutex_unlock(&w->mu);
    return busy;
}

/* Hands what add gathered to the thread, once it is done with the last. */
static kd_status bg_hand_off(struct kd_store_writer *w, struct kd_error *err)
{
    kd_status s = bg_wait(w, err);
    if (s || w->buf.n == 0)
        return s;
    struct wbuf t = w->back;
    pthread_mutex_lock(&w->mu);
    w->back = w->buf;
    w->busy = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    w->buf = t;
    return KD_OK;
}

kd_status kd_store_writer_background(struct kd_store_writer *w, struct kd_error *err)
{
    if (w->bg)
        return KD_OK;
    kd_status s = kd_store_impl_writable(w->st, "storing answers in the background", err);
    if (s)
        return s;
    if ((s = kd_store_impl_open_again(w->st, &w->bst, err)))
        return s;
    if (pthread_mutex_init(&w->mu, NULL)) {
        kd_store_close(w->bst);
        w->bst = NULL;
        return kd_error_set(err, KD_ERR_NOMEM, "cannot start a background store writer");
    }
    if (pthread_cond_init(&w->cv, NULL)) {
        pthread_mutex_destroy(&w->mu);
        kd_store_close(w->bst);
        w->bst = NULL;
        return kd_error_set(err, KD_ERR_NOMEM, "cannot start a background store writer");
    }
    /* The thread takes no asynchronous signal: Ctrl-C and the like reach
     * the caller's threads, whose blocking calls they are meant to end. */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int failed = pthread_create(&w->thread, NULL, bg_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (failed) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        kd_store_close(w->bst);
        w->bst = NULL;
        return kd_error_set(err, KD_ERR_NOMEM, "cannot start a background store writer thread");
    }
    /* While the thread stores, add goes on gathering, up to 8 times
     * max_rows and 256 MiB of answers (at least max_rows): the next put is
     * then bigger, and shares a put's fixed costs (its commit, its run of
     * keys, the runs it merges) among more answers, so the writer keeps up
     * with a teacher faster than single puts of max_rows. */
    size_t cap_bytes = (size_t)256 << 20, per_row = w->d * sizeof(float);
    w->hold_max = 8 * w->max_rows;
    if (w->hold_max > cap_bytes / per_row)
        w->hold_max = cap_bytes / per_row;
    if (w->hold_max < w->max_rows)
        w->hold_max = w->max_rows;
    w->bg = 1;
    return KD_OK;
}

/* ------------------------------------------------------------------ common */

/* Stores what add gathered: here, or in the background thread. */
static kd_status put_buffer(struct kd_store_writer *w, struct kd_error *err)
{
    if (w->bg)
        return bg_hand_off(w, err);
    if (w->buf.n == 0)
        return KD_OK;
    size_t got = 0;
    kd_status s = buf_put(w, w->st, &w->buf, &got, err);
    if (s)
        return s;
    w->added += got;
    buf_drop(&w->buf);
    return KD_OK;
}

kd_status kd_store_writer_add(struct kd_store_writer *w, const struct kd_hash *keys, size_t n,
                              const float *answers, const struct kd_store_origin *origins,
                              struct kd_error *err)
{
    if (n == 0)
        return KD_OK;
    kd_status s = kd_store_impl_check_answers(w->kind, n, w->d, answers, err);
    if (s)
        return s;
    struct wbuf *b = &w->buf;
    size_t before = b->n;
    if ((s = buf_append(w, b, keys, n, answers, origins, err)))
        return s;
    double now = kd_time_now();
    if (before == 0)
        w->t_first = now;
    if (b->n >= w->max_rows || now - w->t_first >= w->max_seconds) {
        if (w->bg && b->n < w->hold_max && bg_busy(w))
            return KD_OK; /* the thread is storing: gather more meanwhile */
        return put_buffer(w, err);
    }
    return KD_OK;
}

kd_status kd_store_writer_flush(struct kd_store_writer *w, size_t *n_added, struct kd_error *err)
{
    kd_status s;
    if (w->bg) {
        /* A put of the thread's that failed since the last call is tried
         * again here with everything gathered since (bg_wait put its
         * answers back into buf): what the store can take now, it takes.
         * The earlier failure is returned only if this one fails too. */
        struct kd_error earlier = {0};
        if (bg_wait(w, &earlier))
            kd_log(KD_LOG_WARN, "label store '%s': a put in the background failed (%s); trying its answers again",
                   kd_store_path(w->st), earlier.msg);
        s = bg_hand_off(w, err);
        if (!s)
            s = bg_wait(w, err);
    } else {
        s = put_buffer(w, err);
    }
    if (s)
        return s;
    if (n_added)
        *n_added = w->added;
    w->added = 0;
    return KD_OK;
}

size_t kd_store_writer_background_puts(struct kd_store_writer *w)
{
    if (!w || !w->bg)
        return 0;
    pthread_mutex_lock(&w->mu);
    size_t n = w->bg_puts;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void kd_store_writer_free(struct kd_store_writer *w)
{
    if (!w)
        return;
    if (w->bg) {
        pthread_mutex_lock(&w->mu);
        w->stop = 1;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
        if (w->bg_status)
            kd_log(KD_LOG_WARN, "label store '%s': %s", kd_store_path(w->st), w->bg_err.msg);
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        kd_store_close(w->bst);
    }
    size_t left = w->buf.n + (w->bg && w->bg_status ? w->back.n : 0);
    if (left > 0)
        kd_log(KD_LOG_WARN, "label store '%s': %zu buffered answers were not stored",
               kd_store_path(w->st), left);
    buf_free(&w->buf);
    buf_free(&w->back);
    free(w);
}

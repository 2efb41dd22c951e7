/* The runner across the ranks of an MPI job (dist/; docs/scale.md).
 *
 * Every rank runs the same pipeline, stage after stage. Rank 0 owns the
 * run: the store, the outputs, every decision that depends on the store
 * (--resume, what the teacher must still be asked). The other ranks write
 * into a folder of their own (output/ranks/rank-K, with their own store
 * that nobody reads) and help:
 *   - labelling: rank 0 looks the store up and hands the missing batches
 *     out (kd_teacher_label_farm); each rank asks its own teacher and sends
 *     the answers back; rank 0 alone stores them, then every rank receives
 *     the complete answers;
 *   - training: each rank takes its shard of every global batch and the
 *     gradients are summed over the ranks (student/train.c, tc.reduce).
 *
 * Messages between rank 0 and a helper during labelling (tags below):
 *   0 -> k  WORK   header {id, n} and n row numbers (uint64) of the data
 *                  set every rank loaded alike        (at most DEPTH out per helper)
 *   k -> 0  ANSWER header {id, n} and n*C floats
 *   k -> 0  FAIL   header {id, 0} and the error text
 *   0 -> k  DONE   (no more work)     k -> 0  BYE (after its last answer)
 * then a broadcast of the outcome (status and message) and, when it went
 * well, of all N*C answers. Per answer, 8 bytes go out to a helper and 4*C
 * come back, then 4*C go to every rank: never the inputs themselves. */
#include "pipelines/run_impl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dist/kd_dist.h"

enum { TAG_WORK = 1, TAG_ANSWER, TAG_FAIL, TAG_DONE, TAG_BYE, TAG_GO };

/* Batches out with each helper at once: two, so that a helper has the next
 * batch when it sends an answer while rank 0 is busy with its own. */
#define DEPTH 2

struct head {
    uint64_t id, n;
};

struct farm {
    struct runner *r;
    size_t d, c, bs;
    int *out_with;              /* (ranks) batches out with each helper */
    unsigned char *buf;         /* one message */
    size_t cap;
};

static kd_status farm_submit(void *ctx, size_t id, const size_t *rows, const float *x, size_t n, struct kd_error *err)
{
    (void)x; /* every helper has the data: the row numbers say which */
    struct farm *f = ctx;
    int best = 0;
    for (int k = 1; k < f->r->ranks; k++)
        if (f->out_with[k] < DEPTH && (!best || f->out_with[k] < f->out_with[best]))
            best = k;
    if (!best)
        return kd_error_set(err, KD_ERR_ARG, "no free helper for batch %zu", id);
    struct head h = {id, n};
    memcpy(f->buf, &h, sizeof h);
    for (size_t i = 0; i < n; i++) {
        uint64_t row = rows[i];
        memcpy(f->buf + sizeof h + i * sizeof row, &row, sizeof row);
    }
    kd_status st = kd_dist_send(best, TAG_WORK, f->buf, sizeof h + n * sizeof(uint64_t), err);
    if (!st)
        f->out_with[best]++;
    return st;
}

/* Waits for a message from rank `from` (or any), looking at the stop flag
 * every 0.2 ms so that Ctrl-C (or mpirun's SIGTERM when a rank dies) is
 * heard, and sleeping in between rather than spinning in MPI: a waiting
 * rank leaves the core to the ranks that work. With `patient`, the sleeps
 * double up to 2 ms: for long waits (rank 0 training alone), where 5,000
 * wake-ups a second would take from the rank that works. */
static kd_status wait_message_every(struct runner *r, int from, int patient, struct kd_dist_msg *m,
                                    struct kd_error *err)
{
    long pause = 200000;
    for (;;) {
        int got = 0;
        kd_status st = kd_dist_probe(from, KD_DIST_ANY, 0, m, &got, err);
        if (st || got)
            return st;
        if (r->opt->stop && *r->opt->stop)
            return kd_error_set(err, KD_ERR_INTERRUPTED, "interrupted while waiting for the other ranks");
        struct timespec ts = {0, pause};
        nanosleep(&ts, NULL);
        if (patient && pause < 2000000)
            pause *= 2;
    }
}

static kd_status wait_message(struct runner *r, int from, struct kd_dist_msg *m, struct kd_error *err)
{
    return wait_message_every(r, from, 0, m, err);
}

static kd_status farm_collect(void *ctx, int block, int *got, size_t *id, float *out, size_t max_rows, size_t *n,
                              struct kd_error *err)
{
    struct farm *f = ctx;
    struct kd_dist_msg m;
    kd_status st = block ? wait_message(f->r, KD_DIST_ANY, &m, err) : kd_dist_probe(KD_DIST_ANY, KD_DIST_ANY, 0, &m, got, err);
    if (st || (!block && !*got))
        return st;
    *got = 1;
    if (m.bytes > f->cap || m.bytes < sizeof(struct head)) {
        /* taken off the queue all the same, or the drain after this error
         * would find the same message again at every look */
        void *junk = malloc(m.bytes ? m.bytes : 1);
        struct kd_error ignore = {0};
        if (junk)
            (void)kd_dist_recv(&m, junk, &ignore);
        free(junk);
        return kd_error_set(err, KD_ERR_TEACHER, "rank %d sent a message of %zu bytes (tag %d)", m.from, m.bytes, m.tag);
    }
    if ((st = kd_dist_recv(&m, f->buf, err)))
        return st;
    struct head h;
    memcpy(&h, f->buf, sizeof h);
    f->out_with[m.from]--;
    if (m.tag == TAG_FAIL) {
        size_t len = m.bytes - sizeof h;
        return kd_error_set(err, KD_ERR_TEACHER, "rank %d: %.*s", m.from, (int)len, (const char *)f->buf + sizeof h);
    }
    if (m.tag != TAG_ANSWER || h.n > max_rows || m.bytes != sizeof h + h.n * f->c * sizeof(float))
        return kd_error_set(err, KD_ERR_TEACHER, "rank %d sent a malformed answer (tag %d, %zu bytes)", m.from, m.tag,
                            m.bytes);
    memcpy(out, f->buf + sizeof h, h.n * f->c * sizeof(float));
    *id = (size_t)h.id;
    *n = (size_t)h.n;
    return KD_OK;
}

/* Tells every helper there is no more work and takes what they still send
 * until each says BYE (answers of batches out when the work stopped are
 * dropped: they were never stored). */
static kd_status release_helpers(struct farm *f, struct kd_error *err)
{
    kd_status st = KD_OK;
    for (int k = 1; k < f->r->ranks && !st; k++)
        st = kd_dist_send(k, TAG_DONE, "", 0, err);
    for (int left = f->r->ranks - 1; left > 0 && !st;) {
        struct kd_dist_msg m;
        int got = 0;
        if ((st = kd_dist_probe(KD_DIST_ANY, KD_DIST_ANY, 1, &m, &got, err)))
            break;
        if (m.bytes > f->cap)
            return kd_error_set(err, KD_ERR_TEACHER, "rank %d sent a message of %zu bytes", m.from, m.bytes);
        if ((st = kd_dist_recv(&m, f->buf, err)))
            break;
        left -= m.tag == TAG_BYE;
    }
    return st;
}

/* A helper's part: answers rank 0's batches (rows of x) with its own
 * teacher until DONE. */
static kd_status serve(struct farm *f, struct run_teacher *t, const struct kd_tensor *x, struct kd_error *err)
{
    kd_status st = KD_OK, failed = KD_OK;
    struct kd_error ferr = {0};
    float *answers = kd_alloc(f->bs * f->c, sizeof(float)), *inputs = kd_alloc(f->bs * f->d, sizeof(float));
    if (!answers || !inputs) {
        kd_free(answers), kd_free(inputs);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for teacher batches");
    }
    for (;;) {
        struct kd_dist_msg m;
        if ((st = wait_message(f->r, 0, &m, err)))
            break;
        if (m.bytes > f->cap) {
            st = kd_error_set(err, KD_ERR_TEACHER, "rank 0 sent a message of %zu bytes", m.bytes);
            break;
        }
        if ((st = kd_dist_recv(&m, f->buf, err)))
            break;
        if (m.tag == TAG_DONE) {
            st = kd_dist_send(0, TAG_BYE, "", 0, err);
            break;
        }
        struct head h;
        memcpy(&h, f->buf, sizeof h);
        /* rank 0 has stopped (a fault, Ctrl-C): the batches still queued
         * here are dropped unasked, never answered for nothing */
        struct kd_dist_msg done;
        int stopped = 0;
        if ((st = kd_dist_probe(0, TAG_DONE, 0, &done, &stopped, err)))
            break;
        if (stopped)
            continue;
        if (!failed && (h.n > f->bs || m.bytes != sizeof h + h.n * sizeof(uint64_t)))
            failed = kd_error_set(&ferr, KD_ERR_TEACHER, "a malformed batch from rank 0 (%zu bytes)", m.bytes);
        for (size_t i = 0; !failed && i < h.n; i++) {
            uint64_t row;
            memcpy(&row, f->buf + sizeof h + i * sizeof row, sizeof row);
            if (row >= x->rows)
                failed = kd_error_set(&ferr, KD_ERR_TEACHER, "rank 0 asked about row %llu of %zu",
                                      (unsigned long long)row, x->rows);
            else
                memcpy(inputs + i * f->d, kd_tensor_row(x, (size_t)row), f->d * sizeof(float));
        }
        if (!failed)
            failed = kd_teacher_ask(t->t, inputs, (size_t)h.n, answers, &ferr);
        if (failed) {
            /* rank 0 stops handing out work at the first failure */
            size_t len = strlen(ferr.msg);
            memcpy(f->buf + sizeof h, ferr.msg, len);
            st = kd_dist_send(0, TAG_FAIL, f->buf, sizeof h + len, err);
        } else {
            memcpy(f->buf + sizeof h, answers, h.n * f->c * sizeof(float));
            st = kd_dist_send(0, TAG_ANSWER, f->buf, sizeof h + h.n * f->c * sizeof(float), err);
        }
        if (st)
            break;
    }
    kd_free(answers), kd_free(inputs);
    return st;
}

/* What every rank must agree on before a labelling: the teacher (by its
 * fingerprint: a model teacher trained on every rank must be the same
 * network) and the data's size. */
struct agree {
    char fingerprint[KD_HASH_HEX_LEN + 1];
    uint64_t n, d, c, batch;
    struct kd_hash data;         /* of the inputs' bytes: helpers get row numbers */
};

/* kd_run_dist_label and kd_run_dist_label_origins: origins (N) when the
 * caller gives each input's origin (rank 0's are read), else dataset and
 * rows make them. */
static kd_status dist_label(struct runner *r, kd_status before, struct run_teacher *t, const char *what,
                            const struct kd_tensor *x, const char *dataset, const size_t *rows,
                            const struct kd_store_origin *origins, size_t max_queries, struct kd_tensor *out,
                            struct kd_label_stats *ls, struct kd_error *err)
{
    *ls = (struct kd_label_stats){0, 0, 0};
    /* the hand-shake: a rank that failed on its way here says so first */
    kd_status st = kd_run_dist_agree(r, before, err);
    if (st)
        return st;
    size_t N = x->rows, D = x->cols, C = t->t->c;
    struct agree mine, theirs;
    memset(&mine, 0, sizeof mine); /* padding included: the bytes are compared */
    snprintf(mine.fingerprint, sizeof mine.fingerprint, "%s", t->t->fingerprint);
    mine.n = N, mine.d = D, mine.c = C, mine.batch = t->t->batch;
    mine.data = kd_hash_bytes(x->data, N * D * sizeof(float));
    theirs = mine;
    st = kd_dist_broadcast(&theirs, sizeof theirs, 0, err);
    if (st)
        return st;
    double differ = memcmp(&mine, &theirs, sizeof mine) != 0;
    if ((st = kd_dist_sum_doubles(&differ, 1, err)))
        return st;
    if (differ > 0) {
        r->sum->failed_everywhere = 1;   /* every rank has the sum: each returns */
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' or %s on %.0f rank(s) differs from rank 0's: every rank must run the same "
                            "teacher on the same data",
                            t->def->name, what, differ);
    }
    if ((st = kd_tensor_init(out, N, C, err)))
        return st;
    struct farm f = {r, D, C, t->t->batch ? t->t->batch : 1, calloc((size_t)r->ranks, sizeof(int)), NULL, 0};
    f.cap = sizeof(struct head) + f.bs * (C * sizeof(float) > sizeof(uint64_t) ? C * sizeof(float) : sizeof(uint64_t)) +
            KD_ERROR_MSG_MAX;
    f.buf = malloc(f.cap);
    if (!f.out_with || !f.buf) {
        free(f.out_with), free(f.buf);
        kd_tensor_release(out);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for teacher batches");
    }
    /* The outcome every rank returns: rank 0's, with its counts (the budget
     * every rank keeps is charged by them). */
    struct {
        int32_t status;
        uint64_t total, cached, queried;
        char msg[KD_ERROR_MSG_MAX];
    } outcome;
    memset(&outcome, 0, sizeof outcome);
    if (r->rank == 0) {
        struct kd_teacher_farm farm = {&f, (size_t)(r->ranks - 1) * DEPTH, farm_submit, farm_collect};
        st = origins ? kd_teacher_label_farm_origins(t->t, x, origins, dataset, max_queries, out, ls, r->opt->stop,
                                                     &farm, err)
                     : kd_teacher_label_farm(t->t, x, dataset, rows, max_queries, out, ls, r->opt->stop, &farm, err);
        struct kd_error e2 = {0};
        kd_status st2 = release_helpers(&f, &e2);
        if (!st && st2)
            st = st2, *err = e2;
        outcome.status = (int32_t)st;
        outcome.total = ls->total, outcome.cached = ls->cached, outcome.queried = ls->queried;
        if (st)
            snprintf(outcome.msg, sizeof outcome.msg, "%s", err->msg);
    } else {
        st = serve(&f, t, x, err);
    }
    free(f.out_with), free(f.buf);
    if (st && r->rank != 0) {
        kd_tensor_release(out); /* this rank's own failure: the CLI ends the job */
        return st;
    }
    kd_status bst = kd_dist_broadcast(&outcome, sizeof outcome, 0, err);
    if (!bst && !outcome.status)
        bst = kd_dist_broadcast(out->data, N * C * sizeof(float), 0, err);
    if (bst) {
        kd_tensor_release(out);
        return bst;
    }
    ls->total = (size_t)outcome.total, ls->cached = (size_t)outcome.cached, ls->queried = (size_t)outcome.queried;
    if (outcome.status) {
        /* rank 0's failure, broadcast: every rank returns it, none waits
         * (a helper whose own serve() failed returned above, before the
         * broadcast, and ends the job through the CLI) */
        r->sum->failed_everywhere = 1;
        kd_tensor_release(out);
        if (r->rank != 0)
            kd_error_set(err, (kd_status)outcome.status, "%s", outcome.msg);
        return (kd_status)outcome.status;
    }
    return KD_OK;
}

kd_status kd_run_dist_label(struct runner *r, kd_status before, struct run_teacher *t, const char *what,
                            const struct kd_tensor *x, const char *dataset, const size_t *rows, size_t max_queries,
                            struct kd_tensor *out, struct kd_label_stats *ls, struct kd_error *err)
{
    return dist_label(r, before, t, what, x, dataset, rows, NULL, max_queries, out, ls, err);
}

kd_status kd_run_dist_label_origins(struct runner *r, kd_status before, struct run_teacher *t, const char *what,
                                    const struct kd_tensor *x, const struct kd_store_origin *origins,
                                    const char *label, size_t max_queries, struct kd_tensor *out,
                                    struct kd_label_stats *ls, struct kd_error *err)
{
    return dist_label(r, before, t, what, x, label, NULL, origins, max_queries, out, ls, err);
}

kd_status kd_run_dist_answers(struct runner *r, const struct kd_pipe_stage *s, struct run_teacher *t,
                              struct kd_run_data *d, struct kd_tensor *out, struct kd_error *err)
{
    /* what the teacher is sent: raw features for exec teachers and models that
     * record their scaling, as kd_run_teacher_answers does on one process */
    const struct kd_tensor *x = kd_run_teacher_x(t->t, d);
    char what[300];
    snprintf(what, sizeof what, "dataset '%s'", d->name);
    struct kd_label_stats ls;
    double t0 = kd_time_now();
    kd_status st = kd_run_dist_label(r, KD_OK, t, what, x, d->root, d->ds.rows, SIZE_MAX, out, &ls, err);
    if (r->rank == 0) {
        r->sum->queries += ls.queried;
        r->sum->cached += ls.cached;
    }
    if (st)
        return kd_error_prefix(err, "stage '%s'", s->name);
    kd_log(KD_LOG_INFO, "  teacher '%s' on '%s' over %d ranks: %zu answers, %zu from the store, %zu asked (%.0f/s)",
           t->def->name, d->name, r->ranks, ls.total, ls.cached, ls.queried, ls.queried / (kd_time_now() - t0 + 1e-9));
    return KD_OK;
}

/* A status and message of rank 0 for every rank: what rank 0 alone decided
 * (a selection) and how it went. */
kd_status kd_run_dist_outcome(struct runner *r, kd_status st, struct kd_error *err)
{
    if (r->ranks <= 1)
        return st;
    struct {
        int32_t status;
        char msg[KD_ERROR_MSG_MAX];
    } outcome;
    memset(&outcome, 0, sizeof outcome);
    if (r->rank == 0) {
        outcome.status = (int32_t)st;
        if (st)
            snprintf(outcome.msg, sizeof outcome.msg, "%s", err->msg);
    }
    kd_status bst = kd_dist_broadcast(&outcome, sizeof outcome, 0, err);
    if (bst)
        return bst;
    if (outcome.status)
        r->sum->failed_everywhere = 1;   /* every rank has it and returns it */
    if (outcome.status && r->rank != 0)
        kd_error_set(err, (kd_status)outcome.status, "%s", outcome.msg);
    return (kd_status)outcome.status;
}

kd_status kd_run_dist_agree(struct runner *r, kd_status st, struct kd_error *err)
{
    if (r->ranks <= 1)
        return st;
    /* how many ranks failed, and whether rank 0 is one of them */
    double failed[2] = {st != KD_OK, r->rank == 0 && st != KD_OK};
    struct kd_error e2 = {0};
    kd_status bst = kd_dist_sum_doubles(failed, 2, &e2);
    if (bst) {
        *err = e2;
        return bst;
    }
    if (failed[0] == 0)
        return KD_OK;
    r->sum->failed_everywhere = 1;
    if (failed[1] > 0)   /* rank 0's message on every rank */
        return kd_run_dist_outcome(r, st, err);
    if (st)
        return st;
    return kd_error_set(err, KD_ERR_IO, "%.0f other rank(s) failed (each prints its message)", failed[0]);
}

kd_status kd_run_dist_rank0_done(struct runner *r, kd_status st, struct kd_error *err)
{
    if (r->ranks <= 1)
        return st;
    /* The helpers wait for a GO message sleeping between looks (as they
     * wait for work), not in a collective, which would keep their cores
     * busy while rank 0 works. */
    kd_status mst = KD_OK;
    struct kd_error merr = {0};
    if (r->rank == 0) {
        for (int k = 1; k < r->ranks && !mst; k++)
            mst = kd_dist_send(k, TAG_GO, "", 0, &merr);
    } else {
        struct kd_dist_msg m;
        char none[1];
        mst = wait_message_every(r, 0, 1, &m, &merr);
        if (!mst && (m.tag != TAG_GO || m.bytes != 0))
            mst = kd_error_set(&merr, KD_ERR_ARG, "rank 0 sent a message with tag %d (%zu bytes) where it should "
                               "have said it was done", m.tag, m.bytes);
        if (!mst)
            mst = kd_dist_recv(&m, none, &merr);
    }
    if (mst) {
        *err = merr; /* the CLI ends the job */
        return mst;
    }
    return kd_run_dist_outcome(r, st, err);
}

/* ------------------------------------------------- data-parallel training */

static kd_status sum_over_ranks(void *ctx, float *buf, size_t n, struct kd_error *err)
{
    (void)ctx;
    return kd_dist_sum_floats(buf, n, err);
}

void kd_run_dist_train(struct runner *r, struct kd_train_config *tc)
{
    if (r->ranks <= 1)
        return;
    tc->shard = (size_t)r->rank;
    tc->shards = (size_t)r->ranks;
    tc->reduce = sum_over_ranks;
    tc->reduce_ctx = NULL;
}

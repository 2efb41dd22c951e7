/* The exec protocol's text kinds (docs/teacher-protocol.md, "Pair scores
 * and text embeddings"): a program that scores (query, document) pairs, or
 * one that embeds texts. The process, the time-outs, the line limit, the
 * answer and every fault are the ones of the feature kind (teacher/exec.c,
 * whose helpers teacher_impl.h shares); only the hello, the ready line's
 * KIND and the batch payload differ. Texts go length-prefixed: a line with
 * the byte counts, then the bytes as they are, so a text may hold any byte
 * (newlines, tabs, quotes) and a reader needs no escaping. */
#include "teacher/teacher_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

/* What each kind says in the hello, expects in the ready line, and calls an
 * item of a batch in messages. */
static const char *hello_word(enum kd_store_kind kind) { return kind == KD_STORE_SCORE ? "pairs" : "texts"; }
static const char *ready_word(enum kd_store_kind kind) { return kind == KD_STORE_SCORE ? "score" : "embedding"; }
static const char *item_word(enum kd_store_kind kind) { return kind == KD_STORE_SCORE ? "pairs" : "texts"; }

static void text_init(struct kd_exec *t, const char *name, double timeout)
{
    memset(t, 0, sizeof *t);
    t->fd = -1;
    t->pid = -1;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->timeout = timeout > 0 ? timeout : 60.0;
}

static kd_status check_kind(const char *name, enum kd_store_kind kind, struct kd_error *err)
{
    if (kind != KD_STORE_SCORE && kind != KD_STORE_EMBEDDING)
        return kd_error_set(err, KD_ERR_ARG, "teacher '%s': a text teacher answers scores or embeddings, not %s",
                            name, kd_store_kind_name(kind) ? kd_store_kind_name(kind) : "?");
    return KD_OK;
}

static kd_status text_handshake(struct kd_exec *t, enum kd_store_kind kind, struct kd_error *err);

kd_status kd_exec_start_text(struct kd_exec *t, const char *name, char *const *argv, enum kd_store_kind kind,
                             double timeout, struct kd_error *err)
{
    text_init(t, name, timeout);
    kd_status st = check_kind(name, kind, err);
    if (st)
        return st;
    if (!argv || !argv[0] || !argv[0][0])
        return kd_error_set(err, KD_ERR_ARG, "teacher '%s' has no command", name);
    if ((st = kd_exec_impl_spawn(t, argv, err)))
        return st;
    return text_handshake(t, kind, err);
}

kd_status kd_exec_attach_text(struct kd_exec *t, const char *name, int fd, enum kd_store_kind kind, double timeout,
                              struct kd_error *err)
{
    text_init(t, name, timeout);
    kd_status st = check_kind(name, kind, err);
    if (st) {
        close(fd);
        return st;
    }
    t->fd = fd;
    return text_handshake(t, kind, err);
}

/* The hello and the ready line on t->fd: the same for a started process and
 * an attached descriptor. */
static kd_status text_handshake(struct kd_exec *t, enum kd_store_kind kind, struct kd_error *err)
{
    const char *name = t->name;
    double deadline = kd_time_now() + t->timeout;
    char line[KD_EXEC_LINE_MAX + 1];
    int n = snprintf(line, sizeof line, "kd-teacher 1 %s\n", hello_word(kind));
    enum kd_exec_io r = kd_exec_impl_write(t->fd, line, (size_t)n, deadline);
    if (r == KD_EXEC_IO_TIMEOUT) {
        kd_exec_impl_kill(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' did not read its hello within %g s (it does not read its standard input); "
                            "stopped it",
                            name, t->timeout);
    }
    if (r == KD_EXEC_IO_OK)
        r = kd_exec_impl_read_line(t->fd, line, deadline);
    if (r == KD_EXEC_IO_TIMEOUT) {
        kd_exec_impl_kill(t);
        return kd_error_set(err, KD_ERR_TEACHER, "teacher '%s' was not ready within %g s; stopped it", name,
                            t->timeout);
    }
    char ex[128];
    if (r == KD_EXEC_IO_LONG) {
        kd_exec_impl_excerpt(line, ex, sizeof ex);
        kd_exec_impl_kill(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' sent a ready line longer than %d bytes ('%s'); a protocol line is at most %d "
                            "bytes (docs/teacher-protocol.md)",
                            name, KD_EXEC_LINE_MAX, ex, KD_EXEC_LINE_MAX);
    }
    if (r != KD_EXEC_IO_OK)
        return kd_exec_impl_died(t, "before it was ready", err);

    unsigned long long w = 0;
    char word[32] = "";
    int consumed = 0;
    const char *expected = kind == KD_STORE_SCORE ? "ready 1 score [version]" : "ready E embedding [version]";
    if (sscanf(line, "ready %llu %31s%n", &w, word, &consumed) != 2 || w == 0 || w > (1u << 24)) {
        kd_exec_impl_excerpt(line, ex, sizeof ex);
        kd_exec_impl_kill(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' sent '%s' instead of its ready line; expected '%s' "
                            "(docs/teacher-protocol.md)",
                            name, ex, expected);
    }
    if (strcmp(word, ready_word(kind)) != 0) {
        kd_exec_impl_excerpt(word, ex, sizeof ex);
        kd_exec_impl_kill(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' answers '%s', kd asked it for %s ('kd-teacher 1 %s'); expected '%s' "
                            "(docs/teacher-protocol.md)",
                            name, ex, kind == KD_STORE_SCORE ? "pair scores" : "text embeddings", hello_word(kind),
                            expected);
    }
    if (kind == KD_STORE_SCORE && w != 1) {
        kd_exec_impl_kill(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' declared %llu scores per pair in its ready line; a pair teacher answers one "
                            "('ready 1 score [version]')",
                            name, w);
    }
    const char *v = line + consumed;
    while (*v == ' ')
        v++;
    /* the version goes into the fingerprint: cut, two versions could share one */
    if (strlen(v) >= sizeof t->version) {
        kd_exec_impl_excerpt(v, ex, sizeof ex);
        kd_exec_impl_kill(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' sent a version text of %zu bytes in its ready line ('%s'); the version is "
                            "at most %zu bytes (docs/teacher-protocol.md)",
                            name, strlen(v), ex, sizeof t->version - 1);
    }
    t->c = (size_t)w;
    t->d = 0;
    snprintf(t->version, sizeof t->version, "%s", v);
    return KD_OK;
}

/* A batch's request in memory: "batch N\n", then per item its byte counts
 * on a line and its bytes. */
struct request {
    char *buf;
    size_t len, cap;
};

static int put(struct request *q, const void *p, size_t n)
{
    if (q->len + n > q->cap) {
        size_t cap = q->cap ? q->cap : 4096;
        while (cap < q->len + n)
            cap *= 2;
        char *b = realloc(q->buf, cap);
        if (!b)
            return -1;
        q->buf = b;
        q->cap = cap;
    }
    memcpy(q->buf + q->len, p, n);
    q->len += n;
    return 0;
}

/* "batch N" (head), or an item's byte counts: "A" or "A B" (b not NULL). */
static int put_counts(struct request *q, const char *head, size_t a, const size_t *b)
{
    char line[64];
    int n = head ? snprintf(line, sizeof line, "%s %zu\n", head, a)
            : b  ? snprintf(line, sizeof line, "%zu %zu\n", a, *b)
                 : snprintf(line, sizeof line, "%zu\n", a);
    return put(q, line, (size_t)n);
}

/* Sends the request and reads "answer N" and N x t->c floats into out: the
 * faults and their messages are kd_exec_request's, with `unit` (pairs,
 * texts) naming the batch's items. */
static kd_status exchange(struct kd_exec *t, const struct request *q, size_t n, const char *unit, float *out,
                          struct kd_error *err)
{
    size_t batch = t->batches + 1;
    char when[96];
    snprintf(when, sizeof when, "before answering batch %zu (%zu %s)", batch, n, unit);
    double deadline = kd_time_now() + t->timeout;
    enum kd_exec_io r = kd_exec_impl_write(t->fd, q->buf, q->len, deadline);
    if (r == KD_EXEC_IO_TIMEOUT) {
        kd_exec_impl_kill(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' did not read batch %zu (%zu %s) within %g s (it stopped reading its "
                            "standard input); stopped it",
                            t->name, batch, n, unit, t->timeout);
    }
    char line[KD_EXEC_LINE_MAX + 1];
    if (r == KD_EXEC_IO_OK)
        r = kd_exec_impl_read_line(t->fd, line, deadline);
    if (r == KD_EXEC_IO_TIMEOUT) {
        kd_exec_impl_kill(t);
        return kd_error_set(err, KD_ERR_TEACHER, "teacher '%s' did not answer batch %zu (%zu %s) within %g s; stopped it",
                            t->name, batch, n, unit, t->timeout);
    }
    char ex[128];
    if (r == KD_EXEC_IO_LONG) {
        kd_exec_impl_excerpt(line, ex, sizeof ex);
        kd_exec_impl_kill(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' sent a line longer than %d bytes instead of an answer to batch %zu ('%s'); a "
                            "protocol line is at most %d bytes (docs/teacher-protocol.md)",
                            t->name, KD_EXEC_LINE_MAX, batch, ex, KD_EXEC_LINE_MAX);
    }
    if (r != KD_EXEC_IO_OK)
        return kd_exec_impl_died(t, when, err);
    if (strncmp(line, "error", 5) == 0 && (line[5] == ' ' || line[5] == '\0')) {
        const char *msg = line[5] ? line + 6 : "(no message)";
        kd_status st = kd_error_set(err, KD_ERR_TEACHER, "teacher '%s' reported an error on batch %zu: %s", t->name,
                                    batch, msg);
        kd_exec_impl_kill(t);
        return st;
    }
    unsigned long long rows = 0;
    char tail = 0;
    if (sscanf(line, "answer %llu%c", &rows, &tail) != 1) {
        kd_exec_impl_excerpt(line, ex, sizeof ex);
        kd_exec_impl_kill(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' sent garbage instead of an answer to batch %zu: '%s' (expected 'answer %zu')",
                            t->name, batch, ex, n);
    }
    if (rows != n) {
        kd_exec_impl_kill(t);
        return kd_error_set(err, KD_ERR_TEACHER, "teacher '%s' answered %llu rows to batch %zu of %zu %s", t->name,
                            rows, batch, n, unit);
    }
    size_t want = n * t->c * sizeof(float), got = 0;
    r = kd_exec_impl_read(t->fd, out, want, deadline, &got);
    if (r == KD_EXEC_IO_TIMEOUT) {
        kd_exec_impl_kill(t);
        return kd_error_set(err, KD_ERR_TEACHER,
                            "teacher '%s' sent %zu of %zu bytes of its answer to batch %zu within %g s; stopped it",
                            t->name, got, want, batch, t->timeout);
    }
    if (r != KD_EXEC_IO_OK) {
        char w[160];
        snprintf(w, sizeof w, "after sending %zu of %zu bytes of its answer to batch %zu", got, want, batch);
        return kd_exec_impl_died(t, w, err);
    }
    for (size_t i = 0; i < n * t->c; i++)
        if (!isfinite(out[i])) {
            kd_exec_impl_kill(t);
            return kd_error_set(err, KD_ERR_TEACHER,
                                "teacher '%s' answered batch %zu with a non-finite value at row %zu, column %zu",
                                t->name, batch, i / t->c + 1, i % t->c + 1);
        }
    t->batches++;
    return KD_OK;
}

kd_status kd_exec_request_pairs(struct kd_exec *t, const struct kd_store_pair *pairs, size_t n, float *scores,
                                struct kd_error *err)
{
    if (t->fd < 0)
        return kd_error_set(err, KD_ERR_TEACHER, "teacher '%s' is not running", t->name);
    struct request q = {0};
    int bad = put_counts(&q, "batch", n, NULL);
    for (size_t i = 0; i < n && !bad; i++) {
        const char *a = pairs[i].query ? pairs[i].query : "", *b = pairs[i].doc ? pairs[i].doc : "";
        size_t la = strlen(a), lb = strlen(b);
        bad = put_counts(&q, NULL, la, &lb) || put(&q, a, la) || put(&q, b, lb);
    }
    kd_status st = bad ? kd_error_set(err, KD_ERR_NOMEM, "out of memory for a batch of %zu pairs", n)
                       : exchange(t, &q, n, item_word(KD_STORE_SCORE), scores, err);
    free(q.buf);
    return st;
}

kd_status kd_exec_request_texts(struct kd_exec *t, const char *const *texts, size_t n, float *out,
                                struct kd_error *err)
{
    if (t->fd < 0)
        return kd_error_set(err, KD_ERR_TEACHER, "teacher '%s' is not running", t->name);
    struct request q = {0};
    int bad = put_counts(&q, "batch", n, NULL);
    for (size_t i = 0; i < n && !bad; i++) {
        const char *a = texts[i] ? texts[i] : "";
        size_t la = strlen(a);
        bad = put_counts(&q, NULL, la, NULL) || put(&q, a, la);
    }
    kd_status st = bad ? kd_error_set(err, KD_ERR_NOMEM, "out of memory for a batch of %zu texts", n)
                       : exchange(t, &q, n, item_word(KD_STORE_EMBEDDING), out, err);
    free(q.buf);
    return st;
}

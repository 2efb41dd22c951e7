/* Fuzzes the exec protocol's text kinds (teacher/exec_pairs.c): a teacher
 * of pair scores ("kd-teacher 1 pairs", "ready 1 score") or of text
 * embeddings ("kd-teacher 1 texts", "ready E embedding"). The ready line,
 * answer and error lines and answer payloads go through the code
 * kd_exec_start_text and kd_exec_request_pairs / kd_exec_request_texts run
 * for a real teacher process; the teacher's whole output comes from the
 * input through one end of a socketpair (kd_exec_attach_text), so no process
 * is started.
 * Input: one byte b (b & 1: 0 pair scores, 1 text embeddings; items per
 * batch N = 1 + ((b >> 1) & 7); b & 0x10: one item of each batch is a
 * 5,000-byte text, so the request outgrows its first buffer), then what the
 * teacher writes. */
#include <math.h>
#include <sys/socket.h>

#include "fuzz/fuzz_util.h"
#include "teacher/kd_teacher.h"

#define MAX_BATCHES 16
#define LONG_TEXT 5000

/* What kd sends does not depend on the input; texts with the bytes that
 * matter to a length-prefixed framing (newlines, tabs, digits, UTF-8). */
static const char *const TEXTS[] = {
    "sloping land\nbeside water", "a financial\tinstitution", "", "12 34\n", "café au lait", "batch 3\nanswer 1\n",
    "x", NULL,
};
static char long_text[LONG_TEXT + 1];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    kd_fuzz_quiet();
    memset(long_text, 'w', LONG_TEXT);
    return 0;
}

/* What a refused teacher promises: a message, and a closed socket, so that
 * every later request fails without reading. */
static void check_refused(struct kd_exec *t, const struct kd_error *err)
{
    if (err->status != KD_ERR_TEACHER || !err->msg[0] || t->fd != -1)
        abort();
}

/* Reads away what kd sent to the teacher so far, as a teacher would: 16
 * batches with a 5,000-byte text each would fill the socket, and kd would
 * wait for the teacher to read until its time-out. kd writes each message
 * whole before it reads: what it sent must start with `head` (the hello, or
 * "batch N"). */
static void drain(int fd, const char *head)
{
    static char scratch[65536];
    size_t got = 0, want = strlen(head);
    ssize_t k;
    while ((k = recv(fd, scratch + got, sizeof scratch - got, MSG_DONTWAIT)) > 0) {
        got += (size_t)k;
        if (got >= want) {
            if (head && memcmp(scratch, head, want) != 0)
                abort();
            head = NULL;
            got = 0;
        }
    }
    if (head)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum kd_store_kind kind = (data[0] & 1) ? KD_STORE_EMBEDDING : KD_STORE_SCORE;
    size_t n = 1 + ((data[0] >> 1) & 7);
    int with_long = (data[0] & 0x10) != 0;
    data++, size--;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        perror("socketpair");
        abort();
    }
    /* the whole teacher output must fit in the socket: -max_len keeps it
     * small; what kd sends is read away after every batch (drain) */
    int buf = (int)size + 65536;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    size_t done = 0;
    while (done < size) {
        ssize_t k = send(sv[1], data + done, size - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k <= 0) {
            fprintf(stderr, "fuzz_exec_text: %zu-byte input does not fit in a socket; lower -max_len\n", size);
            abort();
        }
        done += (size_t)k;
    }
    shutdown(sv[1], SHUT_WR);

    const char *texts[8];
    struct kd_store_pair pairs[8];
    size_t ntexts = sizeof TEXTS / sizeof TEXTS[0];
    for (size_t i = 0; i < n; i++) {
        texts[i] = with_long && i == n / 2 ? long_text : TEXTS[i % ntexts];
        pairs[i] = (struct kd_store_pair){
            .query_id = NULL, .doc_id = NULL, .query = TEXTS[(i + 3) % ntexts], .doc = texts[i]};
    }

    struct kd_exec t;
    struct kd_error err = {0};
    kd_status ready = kd_exec_attach_text(&t, "fuzz", sv[0], kind, 5.0, &err);
    drain(sv[1], kind == KD_STORE_SCORE ? "kd-teacher 1 pairs\n" : "kd-teacher 1 texts\n");
    if (ready == KD_OK) {
        /* the ready line's promises: one score per pair, 1 <= E <= 2^24, a
         * version that fits */
        if (t.c < 1 || t.c > (1u << 24) || (kind == KD_STORE_SCORE && t.c != 1) || t.fd < 0 ||
            strlen(t.version) >= sizeof t.version)
            abort();
        float out[8 * 64];
        float *big = NULL;
        /* an embedding width may reach 2^24; the answers' memory is the
         * caller's (N x E), so keep the harness's share of it bounded */
        if (t.c * n > sizeof out / sizeof out[0] && t.c * n <= (1u << 22))
            big = malloc(t.c * n * sizeof(float));
        float *dst = big ? big : out;
        for (int b = 0; b < MAX_BATCHES && (big || t.c * n <= sizeof out / sizeof out[0]); b++) {
            kd_status st = kind == KD_STORE_SCORE ? kd_exec_request_pairs(&t, pairs, n, dst, &err)
                                                  : kd_exec_request_texts(&t, texts, n, dst, &err);
            char batch[32];
            snprintf(batch, sizeof batch, "batch %zu\n", n);
            drain(sv[1], batch);
            if (st != KD_OK) {
                check_refused(&t, &err);
                break;
            }
            /* an accepted answer: every value finite, the batch counted */
            for (size_t i = 0; i < n * t.c; i++)
                if (!isfinite(dst[i]))
                    abort();
            if (t.batches != (size_t)b + 1)
                abort();
        }
        free(big);
    } else {
        check_refused(&t, &err);
    }
    kd_exec_stop(&t);
    close(sv[1]);
    return 0;
}

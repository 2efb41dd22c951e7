/* teacher: the exec protocol over an attached socket (kd_exec_attach and,
 * for the pair-scoring and text-embedding kinds, kd_exec_attach_text), fed
 * from memory as the fuzz harnesses fuzz/fuzz_exec.c and
 * fuzz/fuzz_exec_text.c feed it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "teacher/kd_teacher.h"

/* A socketpair whose far end has written `out` (n bytes) and closed its
 * writing side; *peer is that far end (close it after the test). */
static int feed(const void *out, size_t n, int *peer)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(send(sv[1], out, n, MSG_NOSIGNAL), (ssize_t)n);
    shutdown(sv[1], SHUT_WR);
    *peer = sv[1];
    return sv[0];
}

Test(teacher, exec_attach_reads_the_protocol_from_a_socket)
{
    char buf[256];
    size_t n = 0;
    const char *ready = "ready 2 probabilities mem-v1\nanswer 1\n";
    memcpy(buf, ready, strlen(ready));
    n = strlen(ready);
    float ans[2] = {0.25f, 0.75f};
    memcpy(buf + n, ans, sizeof ans);
    n += sizeof ans;
    int peer;
    int fd = feed(buf, n, &peer);
    struct kd_exec t;
    struct kd_error err = {0};
    cr_assert_eq(kd_exec_attach(&t, "mem", fd, 3, 5, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(t.c, 2);
    cr_assert_eq(t.probabilities, 1);
    cr_assert_str_eq(t.version, "mem-v1");
    float x[3] = {1, 2, 3}, y[2];
    cr_assert_eq(kd_exec_request(&t, x, 1, y, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(y[0], 0.25f);
    cr_assert_eq(y[1], 0.75f);
    /* kd sent the hello and the batch, as to a teacher process */
    char sent[64] = "";
    ssize_t k = recv(peer, sent, sizeof sent - 1, MSG_DONTWAIT);
    cr_assert_gt(k, 0);
    cr_assert(strncmp(sent, "kd-teacher 1 inputs 3\nbatch 1\n", 30) == 0, "%.30s", sent);
    /* the stream ended: the next batch is the early-end fault */
    cr_assert_eq(kd_exec_request(&t, x, 1, y, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'mem' closed its output before answering batch 2 (1 rows)");
    kd_exec_stop(&t);
    close(peer);
}

Test(teacher, exec_attach_refuses_a_bad_ready_line_and_closes_the_socket)
{
    int peer;
    int fd = feed("ready 0 logits\n", 15, &peer);
    struct kd_exec t;
    struct kd_error err = {0};
    cr_assert_eq(kd_exec_attach(&t, "mem", fd, 1, 5, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'mem' sent 'ready 0 logits' instead of its ready line; expected 'ready C "
                              "logits|probabilities [version]' (docs/teacher-protocol.md)");
    cr_assert_eq(t.fd, -1);
    kd_exec_stop(&t); /* a failed teacher: nothing to do */
    close(peer);
}

/* What kd sent to the far end so far, as a string (n bytes in *len). */
static void sent_bytes(int peer, char *buf, size_t cap, size_t *len)
{
    ssize_t k = recv(peer, buf, cap - 1, MSG_DONTWAIT);
    cr_assert_gt(k, 0);
    buf[k] = '\0';
    *len = (size_t)k;
}

Test(teacher, exec_attach_text_scores_pairs_from_a_socket)
{
    char buf[256];
    const char *head = "ready 1 score mem-cross v1\nanswer 2\n";
    size_t n = strlen(head);
    memcpy(buf, head, n);
    float ans[2] = {2.5f, -1.0f};
    memcpy(buf + n, ans, sizeof ans);
    n += sizeof ans;
    int peer;
    int fd = feed(buf, n, &peer);
    struct kd_exec t;
    struct kd_error err = {0};
    cr_assert_eq(kd_exec_attach_text(&t, "mem", fd, KD_STORE_SCORE, 5, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(t.c, 1);
    cr_assert_eq(t.pid, -1);
    cr_assert_str_eq(t.version, "mem-cross v1");
    struct kd_store_pair pairs[2] = {{"q1", "d1", "bank", "river\nbank"}, {NULL, NULL, NULL, "x"}};
    float s[2];
    cr_assert_eq(kd_exec_request_pairs(&t, pairs, 2, s, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(s[0], 2.5f);
    cr_assert_eq(s[1], -1.0f);
    /* the hello, then the batch: byte counts and the texts as they are (ids
     * not sent, a NULL text empty) */
    char sent[128];
    size_t len;
    sent_bytes(peer, sent, sizeof sent, &len);
    const char *want = "kd-teacher 1 pairs\nbatch 2\n4 10\nbankriver\nbank0 1\nx";
    cr_assert_eq(len, strlen(want), "%s", sent);
    cr_assert_str_eq(sent, want);
    cr_assert_eq(kd_exec_request_pairs(&t, pairs, 2, s, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'mem' closed its output before answering batch 2 (2 pairs)");
    cr_assert_eq(kd_exec_request_pairs(&t, pairs, 2, s, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'mem' is not running");
    kd_exec_stop(&t);
    close(peer);
}

Test(teacher, exec_attach_text_embeds_texts_from_a_socket)
{
    char buf[256];
    const char *head = "ready 3 embedding\nanswer 2\n";
    size_t n = strlen(head);
    memcpy(buf, head, n);
    float ans[6] = {1, 2, 3, 4, 5, 6};
    memcpy(buf + n, ans, sizeof ans);
    n += sizeof ans;
    int peer;
    int fd = feed(buf, n, &peer);
    struct kd_exec t;
    struct kd_error err = {0};
    cr_assert_eq(kd_exec_attach_text(&t, "mem", fd, KD_STORE_EMBEDDING, 5, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(t.c, 3);
    cr_assert_str_eq(t.version, "");
    const char *texts[2] = {"a\tb\n", ""};
    float y[6];
    cr_assert_eq(kd_exec_request_texts(&t, texts, 2, y, &err), KD_OK, "%s", err.msg);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(y[i], (float)(i + 1));
    char sent[128];
    size_t len;
    sent_bytes(peer, sent, sizeof sent, &len);
    cr_assert_str_eq(sent, "kd-teacher 1 texts\nbatch 2\n4\na\tb\n0\n");
    kd_exec_stop(&t);
    close(peer);
}

Test(teacher, exec_attach_text_of_a_feature_kind_is_refused_and_closes_the_socket)
{
    int peer;
    int fd = feed("ready 1 score\n", 14, &peer);
    struct kd_exec t;
    struct kd_error err = {0};
    cr_assert_eq(kd_exec_attach_text(&t, "mem", fd, KD_STORE_LOGITS, 5, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "teacher 'mem': a text teacher answers scores or embeddings, not logits");
    cr_assert_eq(t.fd, -1);
    errno = 0;
    cr_assert_eq(fcntl(fd, F_GETFD), -1, "the descriptor was left open");
    cr_assert_eq(errno, EBADF);
    kd_exec_stop(&t);
    close(peer);
}

/* The ready line `ready` is refused for `kind` with message `want`; the
 * socket is closed. */
static void refused_ready(const char *ready, enum kd_store_kind kind, const char *want)
{
    int peer;
    int fd = feed(ready, strlen(ready), &peer);
    struct kd_exec t;
    struct kd_error err = {0};
    cr_assert_eq(kd_exec_attach_text(&t, "mem", fd, kind, 5, &err), KD_ERR_TEACHER, "%s", ready);
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(t.fd, -1);
    kd_exec_stop(&t);
    close(peer);
}

Test(teacher, exec_attach_text_refuses_bad_ready_lines_with_their_messages)
{
    refused_ready("ready -1 score\n", KD_STORE_SCORE,
                  "teacher 'mem' sent 'ready -1 score' instead of its ready line; expected 'ready 1 score "
                  "[version]' (docs/teacher-protocol.md)");
    refused_ready("ready 16777217 embedding\n", KD_STORE_EMBEDDING,
                  "teacher 'mem' sent 'ready 16777217 embedding' instead of its ready line; expected 'ready E "
                  "embedding [version]' (docs/teacher-protocol.md)");
    refused_ready("ready 2 logits\n", KD_STORE_EMBEDDING,
                  "teacher 'mem' answers 'logits', kd asked it for text embeddings ('kd-teacher 1 texts'); "
                  "expected 'ready E embedding [version]' (docs/teacher-protocol.md)");
    refused_ready("ready 1 score", KD_STORE_SCORE, "teacher 'mem' closed its output before it was ready");
}

Test(teacher, exec_attach_text_refuses_a_short_embedding_payload)
{
    const char head[] = "ready 4 embedding\nanswer 1\n\0\0\x80\x3f";
    int peer;
    int fd = feed(head, sizeof head - 1, &peer);
    struct kd_exec t;
    struct kd_error err = {0};
    cr_assert_eq(kd_exec_attach_text(&t, "mem", fd, KD_STORE_EMBEDDING, 5, &err), KD_OK, "%s", err.msg);
    const char *texts[1] = {"x"};
    float y[4];
    cr_assert_eq(kd_exec_request_texts(&t, texts, 1, y, &err), KD_ERR_TEACHER);
    cr_assert_str_eq(err.msg, "teacher 'mem' closed its output after sending 4 of 16 bytes of its answer to batch 1");
    kd_exec_stop(&t);
    close(peer);
}

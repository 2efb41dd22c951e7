/* teacher: the exec protocol over an attached socket (kd_exec_attach), fed
 * from memory as the fuzz harness fuzz/fuzz_exec.c feeds it. */
#include <criterion/criterion.h>
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

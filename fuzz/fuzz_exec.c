/* Fuzzes the exec teacher protocol reader: the ready line, answer and error
 * lines, answer payloads (row counts, truncation, non-finite values, line
 * limits), with the code kd_exec_start and kd_exec_request run for a real
 * teacher process. The teacher's whole output comes from the input, through
 * one end of a socketpair (kd_exec_attach), so no process is started.
 * Input: one byte choosing the input width D = 1 + (b & 7) and the rows per
 * batch N = 1 + ((b >> 3) & 7), then what the teacher writes. */
#include <sys/socket.h>

#include "fuzz/fuzz_util.h"
#include "teacher/kd_teacher.h"

#define MAX_BATCHES 16

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    kd_fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t d = 1 + (data[0] & 7), n = 1 + ((data[0] >> 3) & 7);
    data++, size--;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        perror("socketpair");
        abort();
    }
    /* the whole teacher output must fit in the socket: -max_len keeps it small */
    int buf = (int)size + 65536;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    size_t done = 0;
    while (done < size) {
        ssize_t k = send(sv[1], data + done, size - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k <= 0) {
            fprintf(stderr, "fuzz_exec: %zu-byte input does not fit in a socket; lower -max_len\n", size);
            abort();
        }
        done += (size_t)k;
    }
    shutdown(sv[1], SHUT_WR);
    struct kd_exec t;
    struct kd_error err = {0};
    if (kd_exec_attach(&t, "fuzz", sv[0], d, 5.0, &err) == KD_OK) {
        float x[8 * 8] = {0}, out[8 * 64];
        float *big = NULL;
        /* a ready line may claim up to 2^24 classes; the answers' memory is
         * the caller's (N x C), so keep the harness's share of it bounded */
        if (t.c * n > sizeof out / sizeof out[0] && t.c * n <= (1u << 22))
            big = malloc(t.c * n * sizeof(float));
        for (int b = 0; b < MAX_BATCHES && (big || t.c * n <= sizeof out / sizeof out[0]); b++)
            if (kd_exec_request(&t, x, n, big ? big : out, &err) != KD_OK)
                break;
        free(big);
    }
    kd_exec_stop(&t);
    close(sv[1]);
    return 0;
}

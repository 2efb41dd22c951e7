/*
 * kd teachers: one interface over three kinds, every answer through the
 * label store.
 *
 *   model  a kd network (trained by a pipeline stage or loaded from safetensors)
 *   exec   any program speaking the exec protocol on its stdin/stdout
 *          (docs/teacher-protocol.md; examples/teacher_numpy.py)
 *   table  answers imported into the store beforehand (kd store import)
 *
 * This header has two layers. The exec process (kd_exec_*) only speaks the
 * protocol. kd_teacher wraps a kind with a fingerprint, registers it in the
 * store, and answers requests from the store first, asking the teacher only
 * for what is missing and storing each answered batch in one transaction, so
 * that a fault or a kill loses at most the batch in flight.
 */
#ifndef KD_TEACHER_H
#define KD_TEACHER_H

#include "core/kd_core.h"

/* ------------------------------------------------------- the exec protocol */

/* A running exec teacher. Protocol version 1 (all lines end in '\n'):
 *   kd      -> teacher  "kd-teacher 1 inputs D"
 *   teacher -> kd       "ready C KIND [VERSION TEXT]"   KIND: logits | probabilities
 *   then for each batch:
 *   kd      -> teacher  "batch N" and N*D float32 little-endian values
 *   teacher -> kd       "answer N" and N*C float32 little-endian values
 *                   or  "error MESSAGE" (kd stops with that message)
 *   at the end:
 *   kd      -> teacher  "end", then closes the teacher's stdin and waits.
 * The teacher's stderr is kd's stderr. */
struct kd_exec {
    char name[64];          /* for messages */
    int pid;
    int fd;                 /* kd's end of the socket pair */
    size_t d, c;            /* input and output widths */
    int probabilities;      /* the teacher answers probabilities, not logits */
    char version[256];      /* the teacher's VERSION TEXT (may be empty) */
    double timeout;         /* seconds for the handshake and each batch */
    size_t batches;         /* batches answered so far */
};

/* Starts argv[0] (looked up on PATH) with argv, sends the hello for inputs
 * of width d and reads the ready line within `timeout` seconds. */
kd_status kd_exec_start(struct kd_exec *t, const char *name, char *const *argv, size_t d, double timeout,
                        struct kd_error *err);
/* Sends x (n, d) and reads the answers into out (n, c). Each fault has its
 * own message naming the teacher and the batch: a crash or early exit (with
 * the exit status or signal), a hang past the time-out (the process is
 * killed), garbage instead of the answer line, an answer with the wrong row
 * count, a truncated payload, an "error" line. After a fault the process is
 * stopped and further calls fail. */
kd_status kd_exec_request(struct kd_exec *t, const float *x, size_t n, float *out, struct kd_error *err);
/* Sends "end", closes, waits up to the time-out, then kills. Accepts a
 * never-started or already-failed teacher. */
void kd_exec_stop(struct kd_exec *t);

#endif

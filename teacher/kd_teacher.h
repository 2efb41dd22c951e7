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
 * for what is missing and committing the answers every 50,000 or every
 * second (and on any stop), so that a fault keeps every answer received and
 * a kill loses at most the answers of about the last second.
 */
#ifndef KD_TEACHER_H
#define KD_TEACHER_H

#include <signal.h>

#include "core/kd_core.h"
#include "store/kd_store.h"
#include "student/kd_student.h"

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
 * The teacher's stderr is kd's stderr. A line from the teacher longer than
 * KD_EXEC_LINE_MAX bytes (without its '\n') is refused, and so is a VERSION
 * TEXT longer than 255 bytes. */
#define KD_EXEC_LINE_MAX 4096
struct kd_exec {
    char name[64];          /* for messages */
    int pid;
    int fd;                 /* kd's end of the socket pair */
    size_t d, c;            /* input and output widths */
    int probabilities;      /* the teacher answers probabilities, not logits */
    char version[256];      /* the teacher's VERSION TEXT (may be empty) */
    double timeout;         /* seconds for the handshake and for each batch, from
                               its first byte sent to its last byte answered */
    size_t batches;         /* batches answered so far */
};

/* Starts argv[0] (looked up on PATH) with argv, sends the hello for inputs
 * of width d and reads the ready line within `timeout` seconds. */
kd_status kd_exec_start(struct kd_exec *t, const char *name, char *const *argv, size_t d, double timeout,
                        struct kd_error *err);
/* As kd_exec_start, over a stream socket `fd` already connected to a
 * teacher (no process: t->pid stays -1): sends the hello and reads the ready
 * line with the same code and the same limits. Takes ownership of fd (closed
 * on failure or by kd_exec_stop). Tests and the fuzz harness feed the
 * protocol from memory through one end of a socketpair. */
kd_status kd_exec_attach(struct kd_exec *t, const char *name, int fd, size_t d, double timeout,
                         struct kd_error *err);
/* Sends x (n, d) and reads the answers into out (n, c). Each fault has its
 * own message naming the teacher and the batch: a crash or early exit (with
 * the exit status or signal), a hang past the time-out (the process is
 * killed), a teacher that stops reading its input (the time-out bounds
 * every write too), garbage or an over-long line instead of the answer
 * line, an answer with the wrong row
 * count, a truncated payload, an "error" line. After a fault the process is
 * stopped and further calls fail. */
kd_status kd_exec_request(struct kd_exec *t, const float *x, size_t n, float *out, struct kd_error *err);
/* Sends "end", closes, waits up to the time-out, then kills. Accepts a
 * never-started or already-failed teacher. */
void kd_exec_stop(struct kd_exec *t);

/* ------------------------------------------------------- teachers, stored */

/* What a teacher is; kind and the fields of that kind. */
struct kd_teacher_spec {
    const char *name;               /* the teacher's name in the store */
    enum kd_teacher_kind kind;      /* KD_TEACHER_MODEL, _EXEC or _TABLE (store/kd_store.h) */
    struct kd_mlp *net;             /* model: the network, borrowed for the teacher's life */
    char *const *argv;              /* exec: the command, NULL-terminated */
    size_t batch;                   /* exec and model: inputs per request (0: 256 exec, 1024 model) */
    double timeout;                 /* exec: seconds per request (0: 60) */
    const char *table;              /* table: the teacher's name in the store (NULL: name) */
    int lookup_only;                /* model: find the teacher in the store instead of
                                       registering it (a read-only store; KD_ERR_NOT_FOUND
                                       when this fingerprint was never registered) */
};

/* An open teacher: registered in the store under its fingerprint. */
struct kd_teacher {
    char name[64];
    enum kd_teacher_kind kind;
    struct kd_mlp *net;
    struct kd_exec exec;
    int exec_running;
    size_t batch;
    struct kd_store *store;         /* borrowed */
    int64_t id;                     /* in the store */
    char fingerprint[KD_HASH_HEX_LEN + 1];
    enum kd_store_kind answer_kind; /* logits, or probabilities (exec/table teachers may answer those) */
    size_t d, c;                    /* input width, classes */
};

/* Opens a teacher for inputs of width d, registering it in `store`.
 * Fingerprints: model, XXH3-128 of the weights and architecture; exec, of
 * the command line and the VERSION text of the teacher's ready line (so the
 * exec teacher is started here); table, the fingerprint of the newest
 * teacher of that name in the store (KD_ERR_NOT_FOUND when it has none:
 * import answers with `kd store import` first). Free with kd_teacher_close. */
kd_status kd_teacher_open(const struct kd_teacher_spec *spec, struct kd_store *store, size_t d,
                          struct kd_teacher **out, struct kd_error *err);
/* Stops an exec teacher; accepts NULL. */
void kd_teacher_close(struct kd_teacher *t);

struct kd_label_stats {
    size_t total;    /* inputs asked about */
    size_t cached;   /* answered from the store */
    size_t queried;  /* sent to the teacher (and now stored) */
};

/* The teacher's answers for the rows of x (N, d) as logits (N, C) in out
 * (probabilities are turned into log-probabilities, which a softmax maps
 * back to the same distribution). Answers come from the store when present;
 * the missing inputs go to the teacher in batches, and the answers are
 * committed to the store as soon as 50,000 are gathered or the oldest is a
 * second old, and when the work ends or stops: a fault or an interruption
 * keeps every answer received, a kill loses only what was not committed
 * (the last batch and the second after it). At most max_queries inputs are sent to the
 * teacher: when more are missing, nothing is asked and the result is
 * KD_ERR_BUDGET saying how many. dataset and rows (N; may be NULL) are
 * recorded as each answer's origin. stop (may be NULL) ends the work at a
 * batch boundary with KD_ERR_INTERRUPTED. A table teacher with missing
 * inputs is an error saying how many are missing. */
kd_status kd_teacher_label(struct kd_teacher *t, const struct kd_tensor *x, const char *dataset,
                           const size_t *rows, size_t max_queries, struct kd_tensor *out,
                           struct kd_label_stats *stats, volatile sig_atomic_t *stop, struct kd_error *err);

/* As kd_teacher_label, with each input's origin given (origins, N): for
 * inputs that are not rows of one dataset, e.g. TGT's generated inputs with
 * their source example, strategy and round. `what` names the inputs in
 * messages and the progress bar. */
kd_status kd_teacher_label_origins(struct kd_teacher *t, const struct kd_tensor *x,
                                   const struct kd_store_origin *origins, const char *what, size_t max_queries,
                                   struct kd_tensor *out, struct kd_label_stats *stats,
                                   volatile sig_atomic_t *stop, struct kd_error *err);

/* How many of the rows of x the store cannot answer yet for this teacher
 * (what labelling them would cost). */
kd_status kd_teacher_count_missing(struct kd_teacher *t, const struct kd_tensor *x, size_t *missing,
                                   struct kd_error *err);

#endif

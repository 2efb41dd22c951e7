/*
 * kd dist: scale-out over Open MPI. Every MPI call of kd is in this folder;
 * it knows nothing but core. The rest of kd sees ranks, a barrier, sums of
 * float buffers, broadcasts and tagged point-to-point messages of bytes.
 *
 *     struct kd_error err = {0};
 *     kd_dist_init(&argc, &argv, &err);       // MPI_Init only under mpirun
 *     if (kd_dist_rank() == 0) ... ;          // 0 .. kd_dist_size() - 1
 *     kd_dist_sum_floats(grads, n, &err);     // every rank gets the sum
 *     kd_dist_finalize();
 *
 * Two builds, chosen by the Makefile: dist/mpi.c (MPI=1, linked with
 * libmpi) and dist/serial.c (MPI=0: one rank, no messages). Even with MPI
 * built in, kd_dist_init starts MPI only when mpirun (or another PMI/PMIx
 * launcher) started the process: a plain `kd run` is one rank and never
 * touches MPI, so it runs exactly as a kd built without it.
 *
 * Every call but kd_dist_init and the queries is collective or matched:
 * the ranks must make the same collective calls in the same order. MPI
 * errors come back as KD_ERR_IO with MPI's text, never as an abort.
 */
#ifndef KD_DIST_H
#define KD_DIST_H

#include "core/kd_core.h"

/* A source or tag that matches any, for kd_dist_probe. */
#define KD_DIST_ANY (-1)

/* 1 when this kd was built with MPI (dist/mpi.c), 0 for dist/serial.c. */
int kd_dist_built_with_mpi(void);
/* How many processes the launcher started (its environment:
 * OMPI_COMM_WORLD_SIZE or PMI_SIZE), 1 when none did; in both builds and
 * without starting MPI. */
int kd_dist_launched_size(void);
/* Starts MPI when the process was launched by mpirun (or a PMI/PMIx
 * launcher); otherwise, or in the serial build, this process is rank 0 of
 * 1. Safe to call more than once. */
kd_status kd_dist_init(int *argc, char ***argv, struct kd_error *err);
/* Ends MPI if kd_dist_init started it; accepts being called without it. */
void kd_dist_finalize(void);
/* Ends every rank of the job at once (MPI_Abort) with exit status code; a
 * plain exit(code) without MPI. For the CLI only: a rank that fails while
 * the others wait in a collective would otherwise leave them hanging. */
void kd_dist_abort(int code);
int kd_dist_rank(void);
int kd_dist_size(void);

kd_status kd_dist_barrier(struct kd_error *err);
/* buf (n) becomes the element-wise sum of every rank's buf (in place). */
kd_status kd_dist_sum_floats(float *buf, size_t n, struct kd_error *err);
/* As kd_dist_sum_floats for doubles (counts and losses). */
kd_status kd_dist_sum_doubles(double *buf, size_t n, struct kd_error *err);
/* Every rank's buf (bytes) becomes root's. */
kd_status kd_dist_broadcast(void *buf, size_t bytes, int root, struct kd_error *err);
/* Gathers the parts of buf at root: rank k holds bytes [at[k], at[k + 1])
 * of buf (at: kd_dist_size() + 1 offsets, the same on every rank) and root's
 * buf receives every rank's part in place; the other ranks' buf is left as
 * it is. The whole buffer is at most INT_MAX bytes (MPI counts are ints). */
kd_status kd_dist_gather(void *buf, const size_t *at, int root, struct kd_error *err);

/* A message waiting to be received. */
struct kd_dist_msg {
    int from, tag;
    size_t bytes;
};
/* Sends bytes of buf to rank `to` with tag (>= 0). Returns at once, never
 * waiting for the receiver: dist sends a copy of buf and frees it once
 * delivered (kd_dist_finalize waits for what is still under way). */
kd_status kd_dist_send(int to, int tag, const void *buf, size_t bytes, struct kd_error *err);
/* Looks for a message from `from` with `tag` (either KD_DIST_ANY). block:
 * waits for one; else *got = 0 when none is waiting. */
kd_status kd_dist_probe(int from, int tag, int block, struct kd_dist_msg *msg, int *got, struct kd_error *err);
/* Receives the message msg describes (from kd_dist_probe) into buf, which
 * holds at least msg->bytes. */
kd_status kd_dist_recv(const struct kd_dist_msg *msg, void *buf, struct kd_error *err);

#endif

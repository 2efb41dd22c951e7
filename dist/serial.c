/* dist without MPI (the Makefile's MPI=0): one rank, nothing to send.
 * Collectives over one rank leave their buffers as they are. */
#include "dist/kd_dist.h"

#include <stdlib.h>

int kd_dist_built_with_mpi(void) { return 0; }

kd_status kd_dist_init(int *argc, char ***argv, struct kd_error *err)
{
    (void)argc, (void)argv, (void)err;
    return KD_OK;
}

void kd_dist_finalize(void) {}

void kd_dist_abort(int code) { exit(code); }

int kd_dist_rank(void) { return 0; }

int kd_dist_size(void) { return 1; }

kd_status kd_dist_barrier(struct kd_error *err)
{
    (void)err;
    return KD_OK;
}

kd_status kd_dist_sum_floats(float *buf, size_t n, struct kd_error *err)
{
    (void)buf, (void)n, (void)err;
    return KD_OK;
}

kd_status kd_dist_sum_doubles(double *buf, size_t n, struct kd_error *err)
{
    (void)buf, (void)n, (void)err;
    return KD_OK;
}

kd_status kd_dist_broadcast(void *buf, size_t bytes, int root, struct kd_error *err)
{
    (void)buf, (void)bytes;
    if (root != 0)
        return kd_error_set(err, KD_ERR_ARG, "broadcast from rank %d: this kd has one rank (built without MPI)", root);
    return KD_OK;
}

kd_status kd_dist_gather(void *buf, const size_t *at, int root, struct kd_error *err)
{
    (void)buf, (void)at;
    if (root != 0)
        return kd_error_set(err, KD_ERR_ARG, "gather at rank %d: this kd has one rank (built without MPI)", root);
    return KD_OK;
}

static kd_status no_peers(struct kd_error *err)
{
    return kd_error_set(err, KD_ERR_UNSUPPORTED,
                        "no other rank to exchange messages with: this kd has one rank (built without MPI)");
}

kd_status kd_dist_send(int to, int tag, const void *buf, size_t bytes, struct kd_error *err)
{
    (void)tag, (void)buf, (void)bytes;
    (void)to;
    return no_peers(err);
}

kd_status kd_dist_probe(int from, int tag, int block, struct kd_dist_msg *msg, int *got, struct kd_error *err)
{
    (void)tag, (void)msg;
    *got = 0;
    if (!block)
        return KD_OK;
    (void)from;
    return no_peers(err);
}

kd_status kd_dist_recv(const struct kd_dist_msg *msg, void *buf, struct kd_error *err)
{
    (void)buf, (void)msg;
    return no_peers(err);
}

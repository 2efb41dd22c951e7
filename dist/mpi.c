/* dist over MPI (the Makefile's MPI=1): the only file of kd that calls MPI.
 * MPI starts only when a launcher started the process, so a plain `kd`
 * never pays for it (Open MPI's singleton start forks a daemon). */
#include "dist/kd_dist.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

static int started;          /* kd_dist_init called MPI_Init */
static int rank, size = 1;

/* Sends under way: MPI_Isend of a copy, freed once delivered, so that a
 * sender never waits for its receiver to get round to it. */
struct sending {
    MPI_Request req;
    void *copy;
};
static struct sending *sends;
static size_t n_sends, cap_sends;

int kd_dist_built_with_mpi(void) { return 1; }

/* The environment a launcher sets: Open MPI's mpirun, PMIx, PMI (MPICH, Slurm). */
static int launched(void)
{
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

static kd_status mpi_failed(int rc, const char *what, struct kd_error *err)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error %d", rc);
    return kd_error_set(err, KD_ERR_IO, "rank %d of %d: %s failed: %s", rank, size, what, text);
}

kd_status kd_dist_init(int *argc, char ***argv, struct kd_error *err)
{
    int already = 0;
    MPI_Initialized(&already);
    if (already || !launched())
        return KD_OK;
    /* Waiting ranks yield their core instead of spinning, unless the user
     * chose otherwise: kd's ranks often share cores with their teachers and
     * other jobs, and its messages are milliseconds apart. */
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
    /* kd runs threads of its own beside MPI (the training pool, the store's
     * background writer), and only the main thread calls MPI: FUNNELED. */
    int provided = MPI_THREAD_SINGLE;
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS)
        return kd_error_set(err, KD_ERR_IO, "MPI_Init_thread failed (error %d)", rc);
    started = 1;
    if (provided < MPI_THREAD_FUNNELED) {
        MPI_Finalize();
        started = 0;
        return kd_error_set(err, KD_ERR_IO,
                            "this MPI library supports no threads beside MPI's own (MPI_THREAD_SINGLE), and kd runs "
                            "worker threads while MPI is up: build kd against an MPI with thread support, or "
                            "with make MPI=0");
    }
    /* errors come back to kd as codes, not as MPI's default abort */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return KD_OK;
}

/* Frees the copies of the sends delivered (all of them when wait). */
static int reap(int wait)
{
    int rc = MPI_SUCCESS;
    size_t kept = 0;
    for (size_t i = 0; i < n_sends; i++) {
        int done = 1, r;
        if (wait)
            r = MPI_Wait(&sends[i].req, MPI_STATUS_IGNORE);
        else
            r = MPI_Test(&sends[i].req, &done, MPI_STATUS_IGNORE);
        if (r != MPI_SUCCESS)
            rc = r;
        if (done)
            free(sends[i].copy);
        else
            sends[kept++] = sends[i];
    }
    n_sends = kept;
    return rc;
}

void kd_dist_finalize(void)
{
    if (!started)
        return;
    reap(1);
    free(sends);
    sends = NULL;
    n_sends = cap_sends = 0;
    int done = 0;
    MPI_Finalized(&done);
    if (!done)
        MPI_Finalize();
    started = 0;
    rank = 0, size = 1;
}

void kd_dist_abort(int code)
{
    if (started && size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

int kd_dist_rank(void) { return rank; }

int kd_dist_size(void) { return size; }

kd_status kd_dist_barrier(struct kd_error *err)
{
    if (size == 1)
        return KD_OK;
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? KD_OK : mpi_failed(rc, "a barrier", err);
}

/* MPI counts are ints: big buffers go in pieces of at most INT_MAX / 8 elements. */
#define CHUNK ((size_t)INT_MAX / 8)

kd_status kd_dist_sum_floats(float *buf, size_t n, struct kd_error *err)
{
    for (size_t at = 0; size > 1 && at < n; at += CHUNK) {
        int k = (int)(n - at < CHUNK ? n - at : CHUNK);
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + at, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_failed(rc, "a sum of floats over the ranks", err);
    }
    return KD_OK;
}

kd_status kd_dist_sum_doubles(double *buf, size_t n, struct kd_error *err)
{
    for (size_t at = 0; size > 1 && at < n; at += CHUNK) {
        int k = (int)(n - at < CHUNK ? n - at : CHUNK);
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + at, k, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_failed(rc, "a sum of doubles over the ranks", err);
    }
    return KD_OK;
}

kd_status kd_dist_broadcast(void *buf, size_t bytes, int root, struct kd_error *err)
{
    if (root < 0 || root >= size)
        return kd_error_set(err, KD_ERR_ARG, "broadcast from rank %d: the job has ranks 0 to %d", root, size - 1);
    for (size_t at = 0; size > 1 && at < bytes; at += CHUNK) {
        int k = (int)(bytes - at < CHUNK ? bytes - at : CHUNK);
        int rc = MPI_Bcast((char *)buf + at, k, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_failed(rc, "a broadcast", err);
    }
    return KD_OK;
}

kd_status kd_dist_gather(void *buf, const size_t *at, int root, struct kd_error *err)
{
    if (root < 0 || root >= size)
        return kd_error_set(err, KD_ERR_ARG, "gather at rank %d: the job has ranks 0 to %d", root, size - 1);
    if (size == 1)
        return KD_OK;
    if (at[size] > INT_MAX)
        return kd_error_set(err, KD_ERR_ARG, "a gather of %zu bytes: MPI gathers at most %d bytes at once", at[size],
                            INT_MAX);
    int *counts = malloc(2 * (size_t)size * sizeof *counts);
    if (!counts)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for a gather over %d ranks", size);
    int *displs = counts + size;
    for (int k = 0; k < size; k++) {
        if (at[k + 1] < at[k]) {
            free(counts);
            return kd_error_set(err, KD_ERR_ARG, "a gather whose part %d ends (%zu) before it starts (%zu)", k,
                                at[k + 1], at[k]);
        }
        counts[k] = (int)(at[k + 1] - at[k]);
        displs[k] = (int)at[k];
    }
    char *mine = (char *)buf + at[rank];
    int rc = rank == root ? MPI_Gatherv(MPI_IN_PLACE, 0, MPI_BYTE, buf, counts, displs, MPI_BYTE, root, MPI_COMM_WORLD)
                          : MPI_Gatherv(mine, counts[rank], MPI_BYTE, NULL, NULL, NULL, MPI_BYTE, root, MPI_COMM_WORLD);
    free(counts);
    return rc == MPI_SUCCESS ? KD_OK : mpi_failed(rc, "a gather", err);
}

static kd_status check_peer(int peer, struct kd_error *err)
{
    if (peer < 0 || peer >= size || peer == rank)
        return kd_error_set(err, KD_ERR_ARG, "rank %d cannot exchange messages with rank %d (the job has ranks 0 to %d)",
                            rank, peer, size - 1);
    return KD_OK;
}

kd_status kd_dist_send(int to, int tag, const void *buf, size_t bytes, struct kd_error *err)
{
    kd_status st = check_peer(to, err);
    if (st)
        return st;
    if (bytes > INT_MAX || tag < 0)
        return kd_error_set(err, KD_ERR_ARG, "a message of %zu bytes with tag %d cannot be sent (at most %d bytes, tag >= 0)",
                            bytes, tag, INT_MAX);
    int rc = reap(0);
    if (rc != MPI_SUCCESS)
        return mpi_failed(rc, "an earlier send", err);
    if (n_sends == cap_sends) {
        size_t cap = cap_sends ? 2 * cap_sends : 16;
        struct sending *ns = realloc(sends, cap * sizeof *ns);
        if (!ns)
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory for a message of %zu bytes", bytes);
        sends = ns, cap_sends = cap;
    }
    void *copy = malloc(bytes ? bytes : 1);
    if (!copy)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for a message of %zu bytes", bytes);
    memcpy(copy, buf, bytes);
    rc = MPI_Isend(copy, (int)bytes, MPI_BYTE, to, tag, MPI_COMM_WORLD, &sends[n_sends].req);
    if (rc != MPI_SUCCESS) {
        free(copy);
        return mpi_failed(rc, "a send", err);
    }
    sends[n_sends++].copy = copy;
    return KD_OK;
}

kd_status kd_dist_probe(int from, int tag, int block, struct kd_dist_msg *msg, int *got, struct kd_error *err)
{
    *got = 0;
    if (!started && !block)
        return KD_OK; /* alone: nothing can be waiting */
    if (from != KD_DIST_ANY || !started) {
        kd_status st = check_peer(from, err);
        if (st)
            return st;
    }
    reap(0); /* also lets MPI move the sends under way along */
    MPI_Status s;
    int flag = 1, rc;
    int src = from == KD_DIST_ANY ? MPI_ANY_SOURCE : from, tg = tag == KD_DIST_ANY ? MPI_ANY_TAG : tag;
    if (block)
        rc = MPI_Probe(src, tg, MPI_COMM_WORLD, &s);
    else
        rc = MPI_Iprobe(src, tg, MPI_COMM_WORLD, &flag, &s);
    if (rc != MPI_SUCCESS)
        return mpi_failed(rc, "a probe for messages", err);
    if (!flag)
        return KD_OK;
    int count = 0;
    MPI_Get_count(&s, MPI_BYTE, &count);
    msg->from = s.MPI_SOURCE;
    msg->tag = s.MPI_TAG;
    msg->bytes = (size_t)count;
    *got = 1;
    return KD_OK;
}

kd_status kd_dist_recv(const struct kd_dist_msg *msg, void *buf, struct kd_error *err)
{
    kd_status st = check_peer(msg->from, err);
    if (st)
        return st;
    int rc = MPI_Recv(buf, (int)msg->bytes, MPI_BYTE, msg->from, msg->tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    return rc == MPI_SUCCESS ? KD_OK : mpi_failed(rc, "a receive", err);
}

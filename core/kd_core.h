/*
 * kd core: errors, logging and progress, float32 tensors, the BLAS calls,
 * a seeded RNG, content hashing and the safetensors file format.
 *
 * Everything else in kd stands on this header; it knows nothing of the rest.
 *
 *     struct kd_error err = {0};
 *     struct kd_tensor a, b, c;
 *     if (kd_tensor_init(&a, 4, 3, &err) || kd_tensor_init(&b, 3, 2, &err) ||
 *         kd_tensor_init(&c, 4, 2, &err))
 *         kd_log(KD_LOG_ERROR, "%s", err.msg);
 *     kd_matmul(&a, 0, &b, 0, 1.0f, 0.0f, &c);      // (4, 2) = (4, 3) (3, 2)
 *     kd_tensor_release(&a); ...
 */
#ifndef KD_CORE_H
#define KD_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define KD_VERSION "0.4.0"

/* ------------------------------------------------------------------ errors */

/* Status codes are appended, never renumbered. */
typedef enum kd_status {
    KD_OK = 0,
    KD_ERR_NOMEM = 1,       /* allocation failed */
    KD_ERR_IO = 2,          /* open/read/write/close failed (errno text in msg) */
    KD_ERR_FORMAT = 3,      /* a file's content is malformed */
    KD_ERR_ARG = 4,         /* a caller or user passed a bad value */
    KD_ERR_SHAPE = 5,       /* tensor shapes do not fit together */
    KD_ERR_UNSUPPORTED = 6, /* valid but not handled (e.g. a dtype) */
    KD_ERR_STORE = 7,       /* the SQLite label store failed */
    KD_ERR_CONFIG = 8,      /* a pipeline file is invalid */
    KD_ERR_TEACHER = 9,     /* a teacher failed to answer */
    KD_ERR_INTERRUPTED = 10,/* stopped on request (Ctrl-C) */
    KD_ERR_NOT_FOUND = 11,  /* a named thing does not exist */
    KD_ERR_BUDGET = 12,     /* a teacher-query budget would be exceeded */
    KD_ERR_DIVERGED = 13    /* training diverged: the loss is not finite */
} kd_status;

#define KD_ERROR_MSG_MAX 1024

/* What failed and where. Filled by the function that fails; callers may add
 * context in front with kd_error_prefix. */
struct kd_error {
    kd_status status;
    char msg[KD_ERROR_MSG_MAX];
};

/* Sets err (which may be NULL) to status and a printf-style message and
 * returns status, so a failing path can be `return kd_error_set(...)`. */
kd_status kd_error_set(struct kd_error *err, kd_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Puts "context: " in front of the message already in err; returns err->status. */
kd_status kd_error_prefix(struct kd_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void kd_error_clear(struct kd_error *err);
/* A short lower-case name for a status ("i/o error", "format error", ...). */
const char *kd_status_name(kd_status status);

/* ----------------------------------------------------------------- logging */

enum kd_log_level { KD_LOG_ERROR = 0, KD_LOG_WARN = 1, KD_LOG_INFO = 2, KD_LOG_DEBUG = 3 };

/* Messages at or below the level are written to stderr (default INFO). */
void kd_log_set_level(enum kd_log_level level);
enum kd_log_level kd_log_get_level(void);
void kd_log(enum kd_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---------------------------------------------------------------- progress */

/* A one-line progress bar on stderr for long work: done/total, rate, ETA and a
 * caller-supplied status text (e.g. the current loss). Redrawn at most ~10
 * times a second. Quiet when stderr is not a terminal, when
 * kd_progress_set_quiet(1) was called, or when KD_PROGRESS=0. */
struct kd_progress {
    char label[64];
    uint64_t total, done;
    double t_start, t_last_draw;
    int active;
    int drawn;
};

void kd_progress_set_quiet(int quiet);
int kd_progress_get_quiet(void);
void kd_progress_begin(struct kd_progress *p, const char *label, uint64_t total);
/* status may be NULL. */
void kd_progress_update(struct kd_progress *p, uint64_t done, const char *status);
/* Clears the bar line (if one was drawn). */
void kd_progress_end(struct kd_progress *p);

/* Wall-clock seconds from a monotonic clock. */
double kd_time_now(void);

/* ----------------------------------------------------------------- tensors */

/* A float32 row-major matrix (a vector is rows == 1 or cols == 1).
 * `owned` says whether kd_tensor_release frees data. */
struct kd_tensor {
    float *data;
    size_t rows, cols;
    int owned;
};

/* Allocates a zeroed rows x cols tensor (64-byte aligned). */
kd_status kd_tensor_init(struct kd_tensor *t, size_t rows, size_t cols, struct kd_error *err);
/* A borrowed view over caller memory; release does not free it. */
struct kd_tensor kd_tensor_view(float *data, size_t rows, size_t cols);
/* Frees owned data and zeroes the struct; accepts NULL. */
void kd_tensor_release(struct kd_tensor *t);
/* Pointer to row i. */
static inline float *kd_tensor_row(const struct kd_tensor *t, size_t i) { return t->data + i * t->cols; }
/* Aligned allocation helpers (64 bytes); kd_free accepts NULL. Size 0 gives a
 * valid pointer. Sizes are checked for overflow (n * size). */
void *kd_alloc(size_t n, size_t size);
void *kd_calloc(size_t n, size_t size);
void kd_free(void *p);
/* As kd_calloc (zeroed), for large tables read at random rows (embedding
 * tables and their optimizer moments): the block is 2 MB-aligned and the
 * kernel is asked for transparent huge pages (madvise), so a random row costs
 * a cache miss and not also a TLB miss. Free with kd_free_large (not kd_free),
 * which accepts NULL. */
void *kd_calloc_large(size_t n, size_t size);
void kd_free_large(void *p);

/* -------------------------------------------------------------------- BLAS */

/* The only place kd calls BLAS. Row-major throughout.
 *   C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C
 * op(X) is X when trans is 0 and X^T when it is 1; lda/ldb/ldc are row strides
 * of the stored matrices. */
void kd_sgemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
              const float *A, size_t lda, const float *B, size_t ldb, float beta,
              float *C, size_t ldc);
/* The naive triple loop (double accumulation), the test oracle for kd_sgemm. */
void kd_sgemm_ref(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
                  const float *A, size_t lda, const float *B, size_t ldb, float beta,
                  float *C, size_t ldc);
/* Tensor form: checks shapes; KD_ERR_SHAPE when they do not fit. */
kd_status kd_matmul(const struct kd_tensor *A, int trans_a, const struct kd_tensor *B, int trans_b,
                    float alpha, float beta, struct kd_tensor *C, struct kd_error *err);
/* y += alpha * x (n floats). */
void kd_saxpy(size_t n, float alpha, const float *x, float *y);
/* Dot product in double precision. */
double kd_sdot(size_t n, const float *x, const float *y);
/* float64 C = alpha op(A) op(B) + beta C, for the NTK. */
void kd_dgemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, double alpha,
              const double *A, size_t lda, const double *B, size_t ldb, double beta,
              double *C, size_t ldc);
/* Threads used by BLAS; n <= 0 means "leave as is". Reads KD_THREADS when
 * kd_blas_init_threads is called with n <= 0 and the variable is set. */
void kd_blas_set_threads(int n);
int kd_blas_get_threads(void);
void kd_blas_init_threads(int n);
/* OpenBLAS at one thread while kd's own pool (below) runs the GEMMs on
 * each of its threads; release restores the count. Nested and concurrent
 * holds count: the count comes back when the last is released, and in
 * between kd_blas_get_threads returns (and kd_blas_set_threads changes) the
 * count to come back to. */
void kd_blas_hold_single(void);
void kd_blas_release_single(void);

/* ------------------------------------------------------------ thread pool */

/* n persistent threads that run one function together (core/pool.c): the
 * caller is worker 0, n - 1 threads wait on a condition variable between
 * runs (they never spin). */
#define KD_POOL_MAX 1024
struct kd_pool;
typedef void (*kd_pool_fn)(void *ctx, size_t worker, size_t n_workers);
/* KD_ERR_ARG when n is 0 or above KD_POOL_MAX; KD_ERR_NOMEM when a thread
 * cannot start. n = 1 starts no thread. */
kd_status kd_pool_new(size_t n, struct kd_pool **out, struct kd_error *err);
/* fn(ctx, w, n) on every worker w in [0, n) at once; returns when all
 * have returned. A NULL pool runs fn(ctx, 0, 1) on the caller. One run at a
 * time per pool. */
void kd_pool_run(struct kd_pool *p, kd_pool_fn fn, void *ctx);
size_t kd_pool_size(const struct kd_pool *p); /* 1 for NULL */
/* Inside a run of p: returns once every worker of the run has called it,
 * so that work after it sees everything written before it by any worker.
 * Every worker must call it the same number of times in a run; waits on a
 * condition variable (one wake-up instead of the two of ending the run and
 * starting another). A NULL pool or a pool of 1 returns at once. */
void kd_pool_barrier(struct kd_pool *p);
/* Stops and joins the threads; accepts NULL. */
void kd_pool_free(struct kd_pool *p);
/* For tests of the fallbacks: from now on at most n threads of a pool start
 * (0: no limit), later ones fail as pthread_create does under a process
 * limit (KD_ERR_NOMEM from kd_pool_new). Not thread-safe; set it before
 * starting pools. */
void kd_pool_limit_threads(size_t n);
/* Worker w's share [lo, hi) of n items in blocks of `align` (contiguous,
 * in order, sizes differing by at most one block; empty when n is small). */
void kd_pool_range(size_t n, size_t align, size_t worker, size_t n_workers, size_t *lo, size_t *hi);

/* Who runs the threads of a network's training and inference (student/):
 * KD_SPLIT_KD      kd's pool with OpenBLAS at one thread: each GEMM
 *                  split by batch rows, or by output columns where the
 *                  weights are much bigger than the batch's operand
 *                  (batches of 128 rows or more);
 * KD_SPLIT_BLAS    OpenBLAS's threads inside each GEMM, the rest on one;
 * KD_SPLIT_AUTO    by network size (student/mlp_threads.c). Process-wide. */
enum kd_threads_split { KD_SPLIT_AUTO = 0, KD_SPLIT_KD, KD_SPLIT_BLAS };
void kd_threads_set_split(enum kd_threads_split s);
enum kd_threads_split kd_threads_get_split(void);

/* ------------------------------------------------------------------ LAPACK */

/* OpenBLAS's bundled LAPACK, row-major, float64 (the NTK's solves). Each
 * returns LAPACK's info: 0 on success, < 0 for a bad argument, > 0 as said
 * (-1000 when a workspace could not be allocated).
 *
 * Cholesky of a symmetric positive-definite A (n, n), in place: on return
 * the lower triangle holds L with A = L L^T; the strict upper triangle is
 * left as it was. info k > 0: the leading minor of order k is not positive
 * definite (A is singular or indefinite). */
int kd_dpotrf(size_t n, double *A, size_t lda);
/* Solves A X = B with L from kd_dpotrf. B holds the nrhs right-hand sides as
 * rows, (nrhs, n) with row stride ldb >= n, and is overwritten by X. */
int kd_dpotrs(size_t n, size_t nrhs, const double *L, size_t lda, double *B, size_t ldb);
/* The eigenvalues of a symmetric A (n, n) into w (n), ascending. Reads the
 * lower triangle and destroys it. info k > 0: k off-diagonals did not
 * converge. */
int kd_dsyev(size_t n, double *A, size_t lda, double *w);

/* --------------------------------------------------------------------- RNG */

/* xoshiro256** seeded through splitmix64: the same seed gives the same
 * stream on every machine. */
struct kd_rng {
    uint64_t s[4];
    int has_spare;
    double spare;
};

void kd_rng_seed(struct kd_rng *r, uint64_t seed);
uint64_t kd_rng_u64(struct kd_rng *r);
/* Uniform in [0, 1). */
double kd_rng_uniform(struct kd_rng *r);
/* Uniform integer in [0, n), unbiased; n > 0. */
uint64_t kd_rng_below(struct kd_rng *r, uint64_t n);
/* Standard normal (Box-Muller, spare value kept). */
double kd_rng_normal(struct kd_rng *r);
/* Fisher-Yates shuffle of idx[0..n). */
void kd_rng_shuffle(struct kd_rng *r, size_t *idx, size_t n);
/* A dropout mask: mask[i] = 0 when draw i, kd_rng_uniform(r) < p, falls
 * below p, else keep, for i in [0, n) in order. The same draws and the same
 * final state as n calls of kd_rng_uniform, without a call per value (the
 * generator stays in registers). */
void kd_rng_dropout_mask(struct kd_rng *r, double p, float keep, float *mask, size_t n);

/* What a derived seed is for. Each sub-stream of a run has its own purpose,
 * so no two of them draw the same numbers. Values are appended, never
 * renumbered (they enter the derivation). */
enum kd_rng_purpose {
    KD_RNG_TRAIN_ROUND = 0,      /* batch order of active round `index` (0: the gold-only round) */
    KD_RNG_SELECT,               /* selection draws (random, IWeS, RAD) of round `index` */
    KD_RNG_TGT,                  /* TGT's exploration noise in round `index` */
    KD_RNG_SECOND_STUDENT,       /* initial weights of IWeS-two's second student (index 0) */
    KD_RNG_AUTOENCODER_DECODER,  /* initial weights of an autoencoder's decoder (index 0) */
    KD_RNG_AUGMENT,              /* shifts and noise of the augmented inputs of active round `index` */
    KD_RNG_CROSS_NEGATIVES,      /* random negatives topping up a cross-encoder's training lists (index 0) */
    KD_RNG_PROJECTION,           /* initial weights of a dual encoder's EmbedDistill projection (index 0) */
    KD_RNG_DROPOUT,              /* an MLP's dropout masks of training step `index` */
    KD_RNG_LIST_RANDOM           /* random corpus documents in query `index`'s distillation list */
};

/* The seed of sub-stream `index` of `purpose` under a run's seed: every
 * seed kd derives goes through here, never through its own formula.
 * Different (purpose, index) pairs give unrelated seeds (splitmix64
 * finalisers over seed, purpose and index), so, e.g., selection and TGT in
 * the same round draw different streams. One exception, frozen:
 * KD_RNG_TRAIN_ROUND is seed + 7919 * index, the formula active rounds
 * have always used, so that recorded runs keep their numbers. */
uint64_t kd_rng_derive(uint64_t seed, enum kd_rng_purpose purpose, uint64_t index);

/* ----------------------------------------------------------------- hashing */

/* A 128-bit content hash (XXH3-128 from libxxhash). */
struct kd_hash {
    uint64_t hi, lo;
};
#define KD_HASH_HEX_LEN 32

struct kd_hash kd_hash_bytes(const void *data, size_t len);
/* Writes 32 lower-case hex digits and a NUL into out (33 bytes). */
void kd_hash_hex(struct kd_hash h, char out[KD_HASH_HEX_LEN + 1]);
/* The 16 bytes, big-endian hi then lo (a stable key layout). */
void kd_hash_to_bytes(struct kd_hash h, unsigned char out[16]);
struct kd_hash kd_hash_from_bytes(const unsigned char in[16]);
int kd_hash_equal(struct kd_hash a, struct kd_hash b);

/* Streaming hash for files and composite keys. */
struct kd_hasher {
    void *state; /* XXH3_state_t, owned */
};
kd_status kd_hasher_init(struct kd_hasher *h, struct kd_error *err);
void kd_hasher_update(struct kd_hasher *h, const void *data, size_t len);
struct kd_hash kd_hasher_digest(const struct kd_hasher *h);
void kd_hasher_release(struct kd_hasher *h);
/* Hash of a whole file's bytes. */
kd_status kd_hash_file(const char *path, struct kd_hash *out, struct kd_error *err);

/* ------------------------------------------------------------- safetensors */

/* safetensors: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "value", ...}}, then the data. Offsets are relative
 * to the start of the data section. */
enum kd_dtype {
    KD_DTYPE_F32 = 0,
    KD_DTYPE_F64,
    KD_DTYPE_F16,
    KD_DTYPE_BF16,
    KD_DTYPE_I64,
    KD_DTYPE_I32,
    KD_DTYPE_I16,
    KD_DTYPE_I8,
    KD_DTYPE_U8,
    KD_DTYPE_BOOL,
    KD_DTYPE_U16,
    KD_DTYPE_U32,
    KD_DTYPE_U64
};
/* "F32", "I64", ...; NULL for an unknown value. */
const char *kd_dtype_name(enum kd_dtype dtype);
/* Bytes per element. */
size_t kd_dtype_size(enum kd_dtype dtype);

#define KD_ST_MAX_DIMS 8

struct kd_st_tensor {
    char *name;
    enum kd_dtype dtype;
    int ndim;
    uint64_t shape[KD_ST_MAX_DIMS];
    uint64_t begin, end;        /* byte offsets into data */
};

struct kd_st_meta {
    char *key, *value;
};

/* A whole safetensors file in memory. */
struct kd_safetensors {
    struct kd_st_tensor *tensors;
    size_t n_tensors;
    struct kd_st_meta *meta;
    size_t n_meta;
    unsigned char *data;        /* the data section */
    uint64_t data_len;
};

/* Reads and validates the file: the header length against the file size,
 * JSON syntax, every tensor's dtype, shape and offsets (in range, matching
 * the shape's byte size, not overlapping, covering the data section without
 * gaps). Every failure is a KD_ERR_FORMAT/KD_ERR_IO/KD_ERR_UNSUPPORTED with
 * the path and what is wrong; never an out-of-bounds read. */
kd_status kd_safetensors_read(const char *path, struct kd_safetensors *st, struct kd_error *err);
void kd_safetensors_release(struct kd_safetensors *st);
/* NULL when absent. */
const struct kd_st_tensor *kd_safetensors_find(const struct kd_safetensors *st, const char *name);
/* NULL when absent. */
const char *kd_safetensors_meta(const struct kd_safetensors *st, const char *key);
/* Copies tensor `name` into out (n floats), checking that it is F32 and has
 * exactly n elements; with ndim/shape non-NULL also checks the shape.
 * Errors name the file's tensor and the expected and found shape. Every
 * value must be finite: kd loads weights with this, and a NaN weight would
 * only show later as a NaN loss, so the first NaN or infinity is
 * KD_ERR_FORMAT naming the tensor and its index. */
kd_status kd_safetensors_copy_f32(const struct kd_safetensors *st, const char *name, float *out,
                                  size_t n, int ndim, const uint64_t *shape, struct kd_error *err);

/* Collects tensors (borrowed pointers; they must live until save) and
 * metadata, then writes the file atomically (temporary file + rename), with
 * fflush/fsync/fclose checked. Tensors are written in the order added. */
struct kd_st_writer {
    struct kd_st_tensor *tensors;
    const void **ptrs;
    size_t n, cap;
    struct kd_st_meta *meta;
    size_t n_meta, cap_meta;
};
void kd_st_writer_init(struct kd_st_writer *w);
kd_status kd_st_writer_add(struct kd_st_writer *w, const char *name, enum kd_dtype dtype, int ndim,
                           const uint64_t *shape, const void *data, struct kd_error *err);
kd_status kd_st_writer_meta(struct kd_st_writer *w, const char *key, const char *value,
                            struct kd_error *err);
kd_status kd_st_writer_save(const struct kd_st_writer *w, const char *path, struct kd_error *err);
void kd_st_writer_release(struct kd_st_writer *w);

/* ------------------------------------------------------------------- misc */

/* Room for element n of an array *arr of *cap elements of size sz: when n
 * reaches *cap, doubles *cap (16 at first) and reallocates. 1 when there
 * is room, 0 when out of memory (then *arr and *cap are unchanged). */
int kd_grow(void **arr, size_t *cap, size_t n, size_t sz);
#define KD_GROW(arr, cap, n) kd_grow((void **)&(arr), &(cap), (n), sizeof *(arr))

/* Reads a whole file into a NUL-terminated heap buffer (free with free()). */
kd_status kd_read_file(const char *path, char **out, size_t *len, struct kd_error *err);
/* Formats a double so that it round-trips (%.17g, C locale independent of
 * the process locale for '.'), into buf of size n. */
void kd_format_double(char *buf, size_t n, double v);

/* ----------------------------------------------------- sparse text features */

/* Hashed text features of n texts in CSR layout: text i owns the bucket ids
 * ids[offsets[i] .. offsets[i + 1]); every id is < buckets. The featuriser
 * in data/ (fastText-style word and character n-grams, hashed) fills it;
 * the embedding bag in student/ reads it. Owned; free with kd_features_release. */
struct kd_features {
    uint32_t *ids;          /* (nnz) */
    size_t *offsets;        /* (n + 1); offsets[0] = 0, offsets[n] = nnz */
    size_t n, nnz;
    uint32_t buckets;       /* 2^k */
};
/* Frees both arrays and zeroes the struct; accepts NULL. */
void kd_features_release(struct kd_features *f);

/* ------------------------------------------------------------ text hashes */

/* Keys of teacher answers about texts (retrieval). Both hash a
 * length-prefixed encoding, each length as 8 bytes little-endian followed
 * by the UTF-8 bytes, so that no two different inputs share an encoding:
 *
 *     kd_hash_text(t)    = XXH3-128( le64(len t) t )
 *     kd_hash_pair(q, d) = XXH3-128( le64(len q) q le64(len d) d )
 *
 * ("ab", "c") and ("a", "bc") differ, and a text never collides with a
 * pair by construction. In Python, with the xxhash package:
 *     enc = lambda b: struct.pack('<Q', len(b)) + b
 *     xxhash.xxh3_128(enc(q.encode()) + enc(d.encode())).hexdigest()
 * gives kd_hash_hex(kd_hash_pair(q, ..., d, ...)). Texts are bytes: hash
 * exactly the text the teacher reads. */
struct kd_hash kd_hash_text(const void *text, size_t len);
struct kd_hash kd_hash_pair(const void *query, size_t query_len, const void *doc, size_t doc_len);

#endif /* KD_CORE_H */

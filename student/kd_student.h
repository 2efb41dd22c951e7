/*
 * kd student: dense layers, activations, dropout, MLP classifiers, their
 * optimizers and learning-rate schedules, the training loop, evaluation, and
 * safetensors save/load with PyTorch names and shapes. For retrieval, the
 * text models (embedding bag, dual encoders, search, metrics, cross-encoder)
 * are declared in kd_student_text.h, included at the end of this file.
 *
 *     struct kd_mlp_config cfg;
 *     kd_mlp_config_init(&cfg);                       // ReLU, He init, no dropout
 *     size_t sizes[] = {784, 256, 10};
 *     kd_mlp_config_set_sizes(&cfg, sizes, 3);
 *     struct kd_mlp *m = NULL;
 *     kd_mlp_new(&cfg, 42, &m, &err);
 *     struct kd_train_config tc;
 *     kd_train_config_init(&tc);                      // Adam 1e-3, batch 256, 10 epochs
 *     kd_mlp_train_ce(m, &train.x, train.y, NULL, &tc, NULL, &err);
 *     struct kd_eval ev = {0};
 *     kd_mlp_evaluate(m, &test.x, test.y, &ev, &err);  // ev.accuracy
 *     kd_mlp_save(m, "student.safetensors", NULL, 0, &err);
 *     kd_eval_release(&ev); kd_mlp_free(m);
 *
 * Every batch goes through the network as GEMMs (core's kd_sgemm); the
 * workspaces are allocated once for the largest batch. A linear layer's
 * weight is stored (out, in) row-major, PyTorch's layout, so y = x W^T + b.
 * Training and kd_mlp_predict use kd_blas_get_threads() threads: kd's own
 * pool, each thread a slice of the batch rows (OpenBLAS held at one thread
 * meanwhile), or OpenBLAS's threads inside each GEMM, whichever
 * kd_threads_get_split (core) picks (student/mlp_threads.c). Same seed,
 * thread count and split give the same weights, bit for bit; another count
 * or split gives the same up to the order of float sums (dropout masks do
 * not depend on either).
 */
#ifndef KD_STUDENT_H
#define KD_STUDENT_H

#include <signal.h>

#include "core/kd_core.h"
#include "losses/kd_losses.h"

/* ------------------------------------------------------------- activations */

enum kd_act { KD_ACT_IDENTITY = 0, KD_ACT_RELU, KD_ACT_GELU, KD_ACT_TANH };

/* "identity", "relu", "gelu", "tanh". */
const char *kd_act_name(enum kd_act act);
/* The activation called name (one of kd_act_name's): KD_OK and *out set, or
 * KD_ERR_ARG without a message (the caller words it; kd_act_parse does). */
kd_status kd_act_from_name(const char *name, enum kd_act *out);
/* KD_ERR_ARG naming the value and the allowed ones when unknown. */
kd_status kd_act_parse(const char *name, enum kd_act *out, struct kd_error *err);
/* y = f(x), n elements; y may equal x. GELU is the exact erf form (PyTorch's default). */
void kd_act_forward(enum kd_act act, const float *x, float *y, size_t n);
/* dx = dy * f'(x) where x is the pre-activation; dx may equal dy. */
void kd_act_backward(enum kd_act act, const float *x, const float *dy, float *dx, size_t n);

/* ------------------------------------------------------------ dense layers */

/* A borrowed view of one linear layer's parameters and gradients. */
struct kd_dense {
    size_t in, out;
    float *w, *b;   /* (out, in), (out) */
    float *gw, *gb; /* same shapes */
};
/* y (B, out) = x (B, in) W^T + b. */
void kd_dense_forward(const struct kd_dense *l, const float *x, size_t B, float *y);
/* From dy (B, out): gw = dy^T x, gb = column sums of dy (both overwritten);
 * dx (B, in) = dy W when dx is not NULL. */
void kd_dense_backward(const struct kd_dense *l, const float *x, const float *dy, size_t B, float *dx);

/* ----------------------------------------------------------------- the MLP */

#define KD_MLP_MAX_LAYERS 16

enum kd_init { KD_INIT_HE = 0, KD_INIT_XAVIER };
/* "he", "xavier". */
const char *kd_init_name(enum kd_init init);
/* KD_OK and *out set, or KD_ERR_ARG (no message) when name is not one of those. */
kd_status kd_init_from_name(const char *name, enum kd_init *out);

struct kd_mlp_config {
    size_t n_sizes;                          /* layers + 1: input, hidden..., output */
    size_t sizes[KD_MLP_MAX_LAYERS + 1];
    enum kd_act act;                         /* between hidden layers; the output is linear */
    float dropout;                           /* after each hidden activation, in [0, 1) */
    enum kd_init init;
};

void kd_mlp_config_init(struct kd_mlp_config *cfg);
/* KD_ERR_ARG when n < 2, n > KD_MLP_MAX_LAYERS + 1 or a size is 0. */
kd_status kd_mlp_config_set_sizes(struct kd_mlp_config *cfg, const size_t *sizes, size_t n,
                                  struct kd_error *err);
/* Weights and biases of a network of cfg's sizes: sum over layers of
 * (in * out + out). */
size_t kd_mlp_config_params(const struct kd_mlp_config *cfg);
/* Parses "784-256-10" (also "784,256,10"). */
kd_status kd_mlp_config_parse_sizes(struct kd_mlp_config *cfg, const char *text, struct kd_error *err);

/* ------------------------------------------------------ input scaling */

/* How a model's inputs were scaled when it was trained, kept with the model
 * (student/input_scale.c) so that every consumer (kd eval, kd predict, a
 * model teacher, the C and ONNX exports) applies it to raw inputs:
 *   none      x' = x
 *   pixels    x' = x / 255
 *   standard  x' = (x - mean[j]) * inv_std[j], per feature j, in float32; the
 *             training statistics (a feature constant in the training data
 *             has inv_std 1, so it becomes x - mean there).
 * KD_INPUT_UNSET is a model saved before kd recorded this (a file without
 * the metadata key `input_scale`): nothing is applied, and callers keep
 * their old defaults (docs/onnx.md, "Input scaling"). */
enum kd_input_scale_kind { KD_INPUT_UNSET = 0, KD_INPUT_NONE, KD_INPUT_PIXELS, KD_INPUT_STANDARD };

struct kd_input_scale {
    enum kd_input_scale_kind kind;
    size_t d;                        /* standard: the width of mean and inv_std */
    float *mean, *inv_std;           /* standard: (d) each, owned; NULL otherwise */
};

/* "unset", "none", "pixels", "standard". */
const char *kd_input_scale_name(enum kd_input_scale_kind kind);
/* *s becomes kind (with copies of mean and inv_std (d) for standard; they
 * are ignored otherwise). The old contents are released. KD_ERR_ARG when a
 * standard scaling has d = 0 or a value that is not finite. */
kd_status kd_input_scale_set(struct kd_input_scale *s, enum kd_input_scale_kind kind, const float *mean,
                             const float *inv_std, size_t d, struct kd_error *err);
/* dst becomes a copy of src (dst's old contents released). */
kd_status kd_input_scale_copy(struct kd_input_scale *dst, const struct kd_input_scale *src, struct kd_error *err);
/* Frees the vectors and makes *s unset; accepts NULL. */
void kd_input_scale_release(struct kd_input_scale *s);
/* 1 when a and b scale every input the same way (unset counts as none). */
int kd_input_scale_equal(const struct kd_input_scale *a, const struct kd_input_scale *b);
/* Applies s to the rows of x (N, D) in place. KD_ERR_SHAPE when a standard
 * scaling has another width than x. Unset and none do nothing. */
kd_status kd_input_scale_apply(const struct kd_input_scale *s, struct kd_tensor *x, struct kd_error *err);
/* The inverse, x = x' / inv_std + mean (x' * 255 for pixels), in place: for
 * inputs made in the scaled space (TGT's generated examples) that a teacher
 * of raw inputs must see. Exact only up to float rounding. */
kd_status kd_input_scale_invert(const struct kd_input_scale *s, struct kd_tensor *x, struct kd_error *err);
/* Safetensors metadata: `input_scale` = the kind's name and, for standard,
 * `input_mean` and `input_inv_std` = D comma-separated floats written with 9
 * significant digits (they read back bit for bit). Adds them to w (nothing
 * for unset). KD_ERR_UNSUPPORTED past KD_INPUT_SCALE_MAX_META features. */
#define KD_INPUT_SCALE_MAX_META 1000000
kd_status kd_input_scale_write_meta(const struct kd_input_scale *s, struct kd_st_writer *w, struct kd_error *err);
/* Reads those keys back from a file's metadata for a model of d inputs:
 * no `input_scale` key is KD_INPUT_UNSET. Errors name path and the key. */
kd_status kd_input_scale_read_meta(struct kd_input_scale *s, const struct kd_safetensors *st, size_t d,
                                   const char *path, struct kd_error *err);

struct kd_mlp {
    struct kd_mlp_config cfg;
    size_t n_layers;
    struct kd_dense layers[KD_MLP_MAX_LAYERS];
    float *params, *grads;   /* one allocation each: layer 0 w, b, layer 1 w, b, ... */
    size_t n_params;
    /* workspace for batches up to max_batch */
    size_t max_batch, max_width;
    float *pre[KD_MLP_MAX_LAYERS];  /* (B, out_l) pre-activations; the last are the logits */
    float *act[KD_MLP_MAX_LAYERS];  /* (B, out_l) activations after dropout (hidden layers) */
    float *mask[KD_MLP_MAX_LAYERS]; /* (B, out_l) dropout scale 0 or 1/(1-p); NULL when off */
    float *dbuf[2];                 /* (B, max_width) backward scratch */
    const float *input;             /* the last forward's input, borrowed */
    size_t last_batch;
    int last_train;
    /* How its inputs were scaled in training (saved, exported, applied by
     * kd eval, kd predict and model teachers); last, so that the fields
     * above keep their offsets for programs built against kd 0.2. */
    struct kd_input_scale scale;
    /* kd_mlp_predict's threads, started by its first call that uses kd's
     * pool and kept for the next ones (a model teacher predicts a batch at
     * a time); stopped by kd_mlp_free, or replaced when the thread count
     * changes. pool_failed: the thread count at which they could not start
     * (the calls then run on the caller's thread without trying again).
     * pool_pid: the process that started them; a child forked since does
     * not have them and starts its own (student/mlp_threads.c). */
    struct kd_pool *pool;
    size_t pool_failed;
    long pool_pid;
};

/* Allocates a network with initial weights drawn from `seed` (He: N(0, 2/in),
 * Xavier: U(+-sqrt(6/(in+out))); biases 0). Free with kd_mlp_free. */
kd_status kd_mlp_new(const struct kd_mlp_config *cfg, uint64_t seed, struct kd_mlp **out,
                     struct kd_error *err);
void kd_mlp_free(struct kd_mlp *m);
/* Makes the workspace hold batches of up to B examples (done by forward too). */
kd_status kd_mlp_reserve(struct kd_mlp *m, size_t B, struct kd_error *err);
/* Logits (B, C) for x (B, D), in the network's workspace (valid until the next
 * forward). train = 1 applies dropout with rng. x is borrowed until backward.
 * NULL only when the workspace cannot be allocated. */
const float *kd_mlp_forward(struct kd_mlp *m, const float *x, size_t B, int train, struct kd_rng *rng);
/* Gradients of the loss whose dL/dlogits is dlogits (B, C), for the last
 * forward's batch, into m->grads (overwritten). */
void kd_mlp_backward(struct kd_mlp *m, const float *dlogits, size_t B);
/* As kd_mlp_backward, and also dL/dx (B, D) for the last forward's input into dx (may be NULL: then it is
 * kd_mlp_backward). dx is overwritten and must not overlap the workspace, dlogits or the forward's input. */
void kd_mlp_backward_input(struct kd_mlp *m, const float *dlogits, size_t B, float *dx);
/* Logits for a whole dataset, in batches: out must be (N, C). Over kd's
 * pool, its threads are kept in m for the next call (m->pool). */
kd_status kd_mlp_predict(struct kd_mlp *m, const struct kd_tensor *x, struct kd_tensor *out,
                         struct kd_error *err);
static inline size_t kd_mlp_in(const struct kd_mlp *m) { return m->cfg.sizes[0]; }
static inline size_t kd_mlp_out(const struct kd_mlp *m) { return m->cfg.sizes[m->cfg.n_sizes - 1]; }

/* safetensors with names layers.<i>.weight (out, in) and layers.<i>.bias (out),
 * metadata kd_format=mlp, sizes, activation, dropout, kd_version, the input
 * scaling (kd_input_scale_write_meta; nothing when unset), and any extra
 * key/value pairs given (extra may be NULL when n_extra is 0). */
kd_status kd_mlp_save(const struct kd_mlp *m, const char *path, const struct kd_st_meta *extra,
                      size_t n_extra, struct kd_error *err);
/* Reads a file written by kd_mlp_save (or any file with those names, shapes
 * and metadata); errors name the file and the tensor at fault. */
kd_status kd_mlp_load(const char *path, struct kd_mlp **out, struct kd_error *err);
/* Checks, before a network of cfg's sizes is allocated for it, that file f
 * holds each layer's weight (out, in) and bias (out) as <prefix>layers.<l>.*
 * (prefix "" for kd_mlp_load's names): sizes read from metadata cannot make
 * kd allocate more than the file's tensors hold. KD_ERR_NOT_FOUND or
 * KD_ERR_SHAPE naming the tensor. */
kd_status kd_mlp_check_tensors(const struct kd_mlp_config *cfg, const struct kd_safetensors *f,
                               const char *prefix, struct kd_error *err);

/* Writes a self-contained C source file (C99)
 * that needs nothing but the C standard library (<math.h> only for tanh and
 * gelu), holding the weights as `static const float` arrays and the functions
 *     void <prefix>_logits(const float *x, float *logits);   x (D), logits (C)
 *     int  <prefix>_predict(const float *x);                 argmax class
 * plus <PREFIX>_INPUTS / <PREFIX>_CLASSES macros. A model that records its
 * input scaling (pixels, standard) takes raw x: <prefix>_logits scales a copy
 * first (standard with the arrays <prefix>_mean and <prefix>_inv_std), in
 * kd_input_scale_apply's float operations. Floats are written with
 * 9 significant digits, so the compiled network reproduces kd's weights
 * exactly. prefix must be a C identifier (KD_ERR_ARG otherwise); the file is
 * written atomically (temporary file, then rename). (student/export_c.c) */
kd_status kd_mlp_export_c(const struct kd_mlp *m, const char *path, const char *prefix,
                          struct kd_error *err);

/* ONNX (opset KD_ONNX_OPSET, IR version 7), written through protobuf-c from
 * Debian's onnx.proto (student/export_onnx.c). One input "input" float32
 * (batch, D): the raw features when the model records its input scaling
 * (the graph starts with Div by 255 for pixels, or Sub input_scale.mean and
 * Mul input_scale.inv_std for standard, and says so in the metadata key
 * input_scale), else the features exactly as kd_mlp_forward takes them; outputs
 * "logits" and "probabilities" (softmax) float32 (batch, C). Each layer is a
 * Gemm with transB = 1 over the PyTorch-layout weights "layers.<i>.weight"
 * (out, in) and "layers.<i>.bias"; GELU is composed from Erf. Metadata:
 * kd_format=mlp, kd_version, sizes, activation. Written atomically;
 * KD_ERR_ARG when a weight is not finite. */
#define KD_ONNX_OPSET 13
kd_status kd_mlp_export_onnx(const struct kd_mlp *m, const char *path, struct kd_error *err);

/* ------------------------------------------------------------- optimizers */

enum kd_optim_kind { KD_OPTIM_SGD = 0, KD_OPTIM_ADAM, KD_OPTIM_ADAMW };

struct kd_optim_config {
    enum kd_optim_kind kind;
    float lr;             /* base rate; the schedule scales it */
    float momentum;       /* SGD */
    float beta1, beta2, eps;
    float weight_decay;   /* SGD/Adam: added to the gradient (L2); AdamW: decoupled */
    float clip_norm;      /* clip the global gradient norm to this; 0 = off */
};
/* Adam, lr 1e-3, betas 0.9/0.999, eps 1e-8, no decay, no clipping. */
void kd_optim_config_init(struct kd_optim_config *cfg);
/* "sgd", "adam", "adamw". */
const char *kd_optim_name(enum kd_optim_kind kind);
/* KD_OK and *out set, or KD_ERR_ARG (no message) when name is not one of those. */
kd_status kd_optim_from_name(const char *name, enum kd_optim_kind *out);
kd_status kd_optim_parse(const char *name, enum kd_optim_kind *out, struct kd_error *err);

/* Optimizer state over n parameters (PyTorch's update rules). */
struct kd_optim {
    struct kd_optim_config cfg;
    size_t n;
    float *m, *v;   /* momentum / first and second moments */
    uint64_t t;     /* steps taken */
};
kd_status kd_optim_init(struct kd_optim *o, const struct kd_optim_config *cfg, size_t n,
                        struct kd_error *err);
/* One update of params from grads at learning rate lr (clipping grads first
 * when clip_norm > 0; grads may be modified). */
void kd_optim_step(struct kd_optim *o, float *params, float *grads, float lr);
void kd_optim_release(struct kd_optim *o);
/* Scales grads so their L2 norm is at most max_norm; returns the norm before. */
double kd_grad_clip(float *grads, size_t n, double max_norm);

/* Learning-rate schedules, by optimizer step. */
enum kd_sched_kind { KD_SCHED_CONSTANT = 0, KD_SCHED_STEP, KD_SCHED_COSINE };
struct kd_schedule {
    enum kd_sched_kind kind;
    uint64_t warmup_steps;  /* linear from lr/warmup to lr (any kind) */
    uint64_t step_size;     /* STEP: multiply by gamma every step_size steps */
    float gamma;
    uint64_t total_steps;   /* COSINE: from lr at the end of warm-up to min_lr here */
    float min_lr;
};
void kd_schedule_init(struct kd_schedule *s); /* constant, no warm-up */
float kd_schedule_lr(const struct kd_schedule *s, float base_lr, uint64_t step);
/* "constant", "step", "cosine". */
const char *kd_sched_name(enum kd_sched_kind kind);
/* KD_OK and *out set, or KD_ERR_ARG (no message) when name is not one of those. */
kd_status kd_sched_from_name(const char *name, enum kd_sched_kind *out);
kd_status kd_sched_parse(const char *name, enum kd_sched_kind *out, struct kd_error *err);

/* ------------------------------------------------------------ training loop */

/* The loss of one batch: logits (B, C) for the examples idx[0..B) of the
 * training set; writes dL/dlogits into grad (B, C) and returns the loss. */
typedef double (*kd_batch_loss_fn)(void *ctx, const float *logits, const size_t *idx, size_t B,
                                   size_t C, float *grad);
/* Called after each epoch (0-based); a non-OK status stops training with it. */
typedef kd_status (*kd_epoch_fn)(void *ctx, struct kd_mlp *m, size_t epoch, double mean_loss,
                                 struct kd_error *err);

struct kd_train_config {
    size_t epochs, batch;
    struct kd_optim_config optim;
    struct kd_schedule sched;
    uint64_t seed;                   /* shuffling and dropout (masks: KD_RNG_DROPOUT of the step) */
    const char *label;               /* progress bar text */
    volatile sig_atomic_t *stop;     /* set to non-zero (e.g. by SIGINT) to stop at a batch boundary */
    kd_epoch_fn on_epoch;            /* may be NULL */
    void *epoch_ctx;
    /* When set, the weights, optimizer state, RNG and epoch are saved to this
     * safetensors file after every epoch; with resume = 1 a checkpoint found
     * there (of the same architecture) is loaded first and training goes on
     * from the epoch after it, giving the same weights as an uninterrupted run. */
    const char *checkpoint;
    int resume;
    /* Data-parallel training over `shards` processes (pipelines/ plugs in
     * the ranks of an MPI job, dist/). Every process holds the whole data
     * set and draws the same shuffle; of each global batch of B rows this
     * one computes rows [B*shard/shards, B*(shard+1)/shards), its loss
     * gradient scaled by its share of B so that `reduce` (which sums a buffer
     * over the processes, in place) gives the global batch's mean gradient;
     * every process then takes the same optimizer step. The result is one
     * process's at the same batch and seed up to the order of float sums,
     * dropout included: a row's masks depend only on the seed, the step and
     * its row of the global batch. Only shard 0 saves the checkpoint. shards 0 or 1: one process, as without them. */
    size_t shard, shards;
    kd_status (*reduce)(void *ctx, float *buf, size_t n, struct kd_error *err);
    void *reduce_ctx;
};
/* 10 epochs, batch 256, Adam 1e-3, constant schedule, seed 1. */
void kd_train_config_init(struct kd_train_config *tc);

struct kd_train_result {
    double last_loss;        /* mean loss of the last epoch */
    size_t epochs_done;      /* counting those restored from a checkpoint */
    size_t epochs_resumed;   /* epochs restored from a checkpoint */
    double seconds;
    double examples_per_s;
};

/* Trains m on the rows of x (N, D) with the loss `fn`. Shuffles every epoch,
 * runs the last partial batch too. Stops with KD_ERR_INTERRUPTED when *stop
 * becomes non-zero; calls tc->on_epoch after each epoch. result may be NULL. */
kd_status kd_mlp_train(struct kd_mlp *m, const struct kd_tensor *x, kd_batch_loss_fn fn, void *fn_ctx,
                       const struct kd_train_config *tc, struct kd_train_result *result,
                       struct kd_error *err);
/* The common case: softmax cross-entropy on labels y, per-example weights w
 * (N) or NULL. */
kd_status kd_mlp_train_ce(struct kd_mlp *m, const struct kd_tensor *x, const int32_t *y, const float *w,
                          const struct kd_train_config *tc, struct kd_train_result *result,
                          struct kd_error *err);

/* Distillation: teacher logits v (N, C) aligned with the rows of x; gold
 * labels y (N, -1 where an example has none) or NULL; weights w (N) or NULL.
 * The loss is kd_loss_distill (losses/kd_losses.h) with temperature T and
 * gold mixing alpha. */
struct kd_distill_config {
    enum kd_distill_loss loss;
    float temperature, alpha;
};
kd_status kd_mlp_train_distill(struct kd_mlp *m, const struct kd_tensor *x, const struct kd_tensor *v,
                               const int32_t *y, const float *w, const struct kd_distill_config *dc,
                               const struct kd_train_config *tc, struct kd_train_result *result,
                               struct kd_error *err);

/* ---------------------------------------------------------------- evaluation */

struct kd_eval {
    size_t n, n_classes;
    double loss;          /* mean cross-entropy */
    double accuracy;      /* fraction correct */
    size_t *confusion;    /* (C, C): row = true class, column = predicted; owned */
};
/* y labels must be in [0, C). */
kd_status kd_mlp_evaluate(struct kd_mlp *m, const struct kd_tensor *x, const int32_t *y,
                          struct kd_eval *out, struct kd_error *err);
void kd_eval_release(struct kd_eval *e);

/* the text models: embedding bag, dual encoder, search, metrics, cross-encoder */
#include "student/kd_student_text.h"

#endif

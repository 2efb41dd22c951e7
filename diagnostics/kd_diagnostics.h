/*
 * kd diagnostics: the empirical neural tangent kernel (NTK) of an MLP student
 * and the supervision complexity of targets with respect to it: how hard a
 * set of targets (gold labels, a teacher's probabilities) is for this student
 * to fit. docs/methods.md section 8 has the maths.
 *
 *     struct kd_targets gold = {0}, soft = {0};
 *     kd_targets_onehot(&gold, "gold", labels, n, 10, &err);
 *     kd_targets_softmax(&soft, "teacher T=4", logits, n, 10, 4.0, &err);
 *     struct kd_targets all[2] = {gold, soft};
 *     struct kd_complexity_config cc;
 *     kd_complexity_config_init(&cc);                 // eps 1e-3, method auto
 *     struct kd_complexity res[2];
 *     kd_complexity_compute(student, &x, all, 2, &cc, res, &err);   // x (n, D)
 *     printf("%s %.4g\n", res[1].targets, res[1].complexity);
 *     kd_targets_release(&gold); kd_targets_release(&soft);
 *
 * With theta the student's parameters and f_c(x) its logits (dropout off):
 *   J_{i,c}  = d f_c(x_i) / d theta
 *   K_ij     = sum_c < J_{i,c}, J_{j,c} >           class-summed NTK (n, n)
 *   K_full   = J J^T, rows ordered (i, c)             full NTK (n C, n C)
 * Neither ever builds J: the kernel comes from per-layer GEMMs over
 * activations and back-propagated vectors ("structured derivatives"), and
 * the kernel-vector product K v from one vector-Jacobian and one
 * Jacobian-vector pass, for conjugate gradients when K is too big to hold.
 *
 * Inputs are borrowed float32 (n, D) rows; kernels and targets are float64.
 * Nothing here keeps state between calls except a struct kd_ntk_op; none of
 * it is thread-safe on the same student (BLAS threads do the parallel work).
 */
#ifndef KD_DIAGNOSTICS_H
#define KD_DIAGNOSTICS_H

#include "core/kd_core.h"
#include "student/kd_student.h"

/* --------------------------------------------------------------- the NTK */

/* The precision of the kernel's Gram GEMMs (A A^T and D D^T, the bulk of the
 * work). Activations and back-propagated vectors are always computed in
 * float64 from the float32 weights, and K accumulates in float64.
 * KD_NTK_F32 rounds the GEMM inputs to float32: 1.6 to 1.8 times as fast,
 * K within about 1e-6 relative and complexities within a few 1e-5 (measured;
 * docs/methods.md section 8). */
enum kd_ntk_precision { KD_NTK_F64 = 0, KD_NTK_F32 };

struct kd_ntk_config {
    enum kd_ntk_precision precision;
    size_t block;      /* examples per block; 0: the most that fit mem_budget */
    size_t mem_budget; /* bytes for the per-block activations and vectors (K not counted) */
};
/* float64, block chosen from a 2 GiB budget. */
void kd_ntk_config_init(struct kd_ntk_config *cfg);

/* What a kernel computation did (for benchmarks and reports). */
struct kd_ntk_stats {
    size_t block;        /* examples per block */
    size_t passes;       /* block forward+backward passes (blocks are recomputed when n > block) */
    double gemm_flops;   /* 2 M N K summed over every GEMM (forward, backward and Gram) */
    double gram_flops;   /* the Gram GEMMs alone */
    double seconds;
};

/* The class-summed empirical NTK of m on the n rows of x (n, D) into K
 * (n, n), float64 row-major, exactly symmetric. KD_ERR_ARG for n = 0,
 * KD_ERR_SHAPE when D is not the network's input width, KD_ERR_NOMEM when
 * the blocks do not fit.
 * stats may be NULL. m is not changed (its dropout is ignored). */
kd_status kd_ntk_kernel(const struct kd_mlp *m, const struct kd_tensor *x, const struct kd_ntk_config *cfg,
                        double *K, struct kd_ntk_stats *stats, struct kd_error *err);
/* The full NTK into K (n C, n C), entry ((i, c), (j, c')) at row i C + c,
 * column j C + c'. Same errors. */
kd_status kd_ntk_kernel_full(const struct kd_mlp *m, const struct kd_tensor *x, const struct kd_ntk_config *cfg,
                             double *K, struct kd_ntk_stats *stats, struct kd_error *err);

/* The NTK as an operator over n inputs, for products without K. Holds a
 * float64 copy of the weights and per-block workspace (block examples at a
 * time); x is borrowed for the operator's life; m may change or go after
 * kd_ntk_op_new. Free with kd_ntk_op_free. */
struct kd_ntk_op;
kd_status kd_ntk_op_new(const struct kd_mlp *m, const struct kd_tensor *x, size_t block, struct kd_ntk_op **out,
                        struct kd_error *err);
void kd_ntk_op_free(struct kd_ntk_op *op);
/* |theta|, n, C. */
size_t kd_ntk_op_params(const struct kd_ntk_op *op);
size_t kd_ntk_op_n(const struct kd_ntk_op *op);
size_t kd_ntk_op_classes(const struct kd_ntk_op *op);
/* g (|theta|) = J^T v for v (n, C): the gradient of sum_{i,c} v_ic f_c(x_i),
 * in kd's parameter order (layer 0 weight (out, in), bias, layer 1, ...). */
void kd_ntk_op_vjp(struct kd_ntk_op *op, const double *v, double *g);
/* out (n, C) = J u for u (|theta|) in kd's parameter order: the directional
 * derivative of every logit along u (forward mode). */
void kd_ntk_op_jvp(struct kd_ntk_op *op, const double *u, double *out);
/* kv (n) = K v for the class-summed kernel: sum_c J_c (J_c^T v), one
 * vector-Jacobian and one Jacobian-vector pass over C tangents at once. */
void kd_ntk_op_apply(struct kd_ntk_op *op, const double *v, double *kv);
/* kv (m, n) = K v for the m vectors v (m, n), several per pass (bigger
 * GEMMs, shared forward passes); the same numbers as m kd_ntk_op_apply. */
void kd_ntk_op_apply_many(struct kd_ntk_op *op, size_t m, const double *v, double *kv);
/* diag (n) = the diagonal of the class-summed K (one forward and backward). */
void kd_ntk_op_diag(struct kd_ntk_op *op, double *diag);

/* ---------------------------------------------------------------- targets */

#define KD_TARGETS_NAME_MAX 128

/* Targets Y (n, C) float64, owned, with the name every report carries. */
struct kd_targets {
    char name[KD_TARGETS_NAME_MAX];
    double *y; /* (n, C) */
    size_t n, C;
};
/* One-hot rows of labels (n), each in [0, C): KD_ERR_ARG naming the row otherwise. */
kd_status kd_targets_onehot(struct kd_targets *t, const char *name, const int32_t *labels, size_t n, size_t C,
                            struct kd_error *err);
/* softmax(logits / T) rows of logits (n, C); T > 0 and finite. */
kd_status kd_targets_softmax(struct kd_targets *t, const char *name, const float *logits, size_t n, size_t C,
                             double T, struct kd_error *err);
/* A copy of any matrix y (n, C). */
kd_status kd_targets_copy(struct kd_targets *t, const char *name, const double *y, size_t n, size_t C,
                          struct kd_error *err);
/* Frees y and zeroes the struct; accepts NULL. */
void kd_targets_release(struct kd_targets *t);

/* ----------------------------------------------------- supervision complexity */

enum kd_solve_method { KD_SOLVE_AUTO = 0, KD_SOLVE_CHOLESKY, KD_SOLVE_CG };
/* "auto", "cholesky", "cg". */
const char *kd_solve_method_name(enum kd_solve_method m);
kd_status kd_solve_method_parse(const char *name, enum kd_solve_method *out, struct kd_error *err);

struct kd_complexity_config {
    double eps;                  /* ridge: (K + eps I); >= 0, and > 0 for CG */
    int centre;                  /* subtract 1/C from every entry of Y first */
    enum kd_solve_method method; /* auto: Cholesky up to cholesky_max_n, CG beyond */
    size_t cholesky_max_n;       /* default 20000 (K and its factor: 16 n^2 bytes, 6.4 GB) */
    double cg_tol;               /* stop at ||(K + eps I) x - y|| <= tol ||y||; default 1e-6 */
    size_t cg_max_iter;          /* per target column; default 500 */
    struct kd_ntk_config ntk;    /* how K is built (Cholesky) */
};
/* eps 1e-3, not centred, auto, 20000, 1e-6, 500, kd_ntk_config_init. */
void kd_complexity_config_init(struct kd_complexity_config *cfg);

/* One set of targets' figures, and how they were obtained. */
struct kd_complexity {
    char targets[KD_TARGETS_NAME_MAX];
    size_t n, C;
    double eps;
    int centred;
    enum kd_solve_method method; /* CHOLESKY or CG: the one used */
    size_t iterations;           /* CG: the most over Y's columns; 0 for Cholesky */
    double residual;             /* the largest relative residual ||(K + eps I) x - y|| / ||y|| over columns
                                    (Cholesky: computed; CG: the recurrence's) */
    int converged;               /* CG reached cg_tol in every column (Cholesky: 1) */
    double complexity;           /* tr(Y^T (K + eps I)^-1 Y) */
    double trace_k;              /* tr K */
    double adjusted;             /* sqrt(complexity tr K) / n */
};

/* Complexity of each of the n_targets targets with a given class-summed K
 * (n, n), by one Cholesky factorisation of K + eps I (K is not changed).
 * Errors: KD_ERR_ARG for n = 0, eps < 0 or NaN, or K + eps I not positive
 * definite (with the failing order and advice); KD_ERR_SHAPE for targets
 * whose n differs. out holds n_targets records. */
kd_status kd_complexity_cholesky(const double *K, size_t n, const struct kd_targets *t, size_t n_targets,
                                 const struct kd_complexity_config *cfg, struct kd_complexity *out,
                                 struct kd_error *err);
/* The same by preconditioned (Jacobi) conjugate gradients with op's
 * products, never forming K. eps must be > 0. */
kd_status kd_complexity_cg(struct kd_ntk_op *op, const struct kd_targets *t, size_t n_targets,
                           const struct kd_complexity_config *cfg, struct kd_complexity *out, struct kd_error *err);
/* The whole job: picks the method (cfg->method), builds K or the operator for
 * m on the n rows of x (n, D), and fills out[0 .. n_targets). */
kd_status kd_complexity_compute(const struct kd_mlp *m, const struct kd_tensor *x, const struct kd_targets *t,
                                size_t n_targets, const struct kd_complexity_config *cfg, struct kd_complexity *out,
                                struct kd_error *err);

#endif /* KD_DIAGNOSTICS_H */

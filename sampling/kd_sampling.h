/*
 * kd sampling: spending teacher queries where they teach most, and
 * correcting for a teacher's mistakes (docs/active.md; the maths in
 * docs/methods.md sections 3, 4 and 5).
 *
 *   selection (select.c)   score the unlabelled pool with the student and
 *                          choose a batch: random, entropy, margin, least
 *                          confidence, IWeS (one and two models), RAD
 *   reweighting (reweight.c) the teacher's error rate against its confidence
 *                          on gold validation data, turned into per-example
 *                          weights (confidence, debiased) or SLaM's noise
 *                          channel (alpha, top-k) for losses/ kd_loss_slam
 *   TGT (autoencoder.c, tgt.c) an MLP autoencoder over the pool (or a
 *                          larger unlabelled set) and new inputs made by
 *                          moving pool examples in its latent space, at
 *                          random or up the teacher-student divergence
 *   augmentation (augment.c) new inputs made from pool images by a random
 *                          shift and pixel noise: the baseline TGT is
 *                          measured against
 *
 *     double *score = ...;                     // N
 *     struct kd_select_config sc;
 *     kd_select_config_init(&sc);              // margin, weight cap 10
 *     sc.kind = KD_SELECT_IWES;
 *     sc.budget = 1000;
 *     kd_select(&sc, probs, NULL, N, C, picks, &n_picked, &err);
 *
 *   retrieval queries (retrieval_select.c) which queries' candidate lists
 *                          a pair teacher scores: the student's margin
 *                          between its top two candidates or the entropy
 *                          of its softmax over the list
 *   label budget (budget.c) the teacher queries an active stage may
 *                          spend, its quota per round and the ledger
 *
 * Nothing here touches the store or a teacher: the pipeline runner
 * (pipelines/stage_active.c) labels what these functions choose and records
 * the choices. Probabilities are float rows summing to 1; scores, sampling
 * probabilities and weights are double.
 */
#ifndef KD_SAMPLING_H
#define KD_SAMPLING_H

#include <signal.h>

#include "core/kd_core.h"
#include "student/kd_student.h"

/* ------------------------------------------------------------- selection */

enum kd_select_kind {
    KD_SELECT_RANDOM = 0,
    KD_SELECT_ENTROPY,           /* H(p) = -sum_c p_c log p_c */
    KD_SELECT_MARGIN,            /* 1 - (p1 - p2), p1 >= p2 the two largest */
    KD_SELECT_LEAST_CONFIDENCE,  /* 1 - p1 */
    KD_SELECT_IWES,              /* IWeS, one model: P = H(p) / log C */
    KD_SELECT_IWES_TWO,          /* IWeS, two models: sum_c |p_c log p_c - q_c log q_c| / log C, at most 1 */
    KD_SELECT_RAD                /* RAD: gain 1 - (p1 - p2), robust to k corrupted picks */
};
#define KD_SELECT_N_KINDS 7
/* "random", "entropy", "margin", "least-confidence", "iwes", "iwes-two", "rad" */
const char *kd_select_name(enum kd_select_kind kind);
/* KD_ERR_ARG naming the accepted names when `name` is none of them. */
kd_status kd_select_parse(const char *name, enum kd_select_kind *out, struct kd_error *err);

/* The strategy's score of each of N rows of the student's probabilities p
 * (N, C), as written beside each kind above (random: 0). q (N, C) is a
 * second, independently initialised student's probabilities, read by
 * KD_SELECT_IWES_TWO only (may be NULL otherwise). 0 log 0 is 0. */
void kd_select_scores(enum kd_select_kind kind, const float *p, const float *q, size_t N, size_t C,
                      double *score);

struct kd_select_config {
    enum kd_select_kind kind;
    size_t budget;          /* examples to choose */
    double weight_cap;      /* IWeS: w = min(1 / probability, cap); >= 1 (default 10) */
    double teacher_error;   /* RAD: the teacher's error rate on validation data, in [0, 1] */
    uint64_t seed;          /* random, IWeS, RAD draws */
};
/* margin, budget 0, cap 10, teacher error 0, seed 1 */
void kd_select_config_init(struct kd_select_config *cfg);

/* One chosen row. */
struct kd_selection {
    size_t index;           /* row of the candidates */
    double score;           /* kd_select_scores of the row (RAD: its gain) */
    double probability;     /* probability it had of being chosen */
    double weight;          /* importance weight for the loss (1 but for IWeS) */
};

/* Chooses min(budget, N) of N candidate rows, from the student's
 * probabilities p (N, C) (q as for kd_select_scores), into out (budget
 * entries), *n_out set; out is in order of choice (best first for the
 * deterministic kinds). The kinds:
 *   random            uniform without replacement; probability budget/N
 *   entropy, margin, least-confidence
 *                     the budget highest scores, ties to the lower index;
 *                     probability 1
 *   iwes, iwes-two    kd's definition: the raw P of docs/methods.md section 3 is
 *                     scaled to inclusion probabilities pi = min(1, l * P)
 *                     with sum pi = budget (kd_inclusion_probabilities), and
 *                     exactly `budget` rows are drawn with those
 *                     probabilities (kd_sample_systematic);
 *                     weight = min(1 / pi, cap)
 *   rad               pi from kd_rad_distribution with
 *                     k = budget * teacher_error, drawn the same way
 * Every choice is a distinct row. KD_ERR_ARG for a cap below 1 or a teacher
 * error outside [0, 1]. */
kd_status kd_select(const struct kd_select_config *cfg, const float *p, const float *q, size_t N, size_t C,
                    struct kd_selection *out, size_t *n_out, struct kd_error *err);

/* pi_i = min(1, l * s_i) with l chosen so that sum pi = b, for scores
 * s_i >= 0 (n of them). Rows with s_i = 0 get a small floor (kd's
 * definition: 1e-6 of the largest score) so every row has a chance and a
 * finite weight; when b >= n every pi is 1. */
void kd_inclusion_probabilities(const double *s, size_t n, double b, double *pi);

/* RAD (kd's definition, after Baykal et al. 2023, docs/methods.md section 3):
 * the inclusion probabilities pi (n) over gains g (n, in [0, 1]) that
 * maximise the worst-case gain sum pi_i g_i - k * max_i pi_i g_i when an
 * adversary spoils k of the b picks. Over the chosen support (the top-m
 * gains, m >= b) pi_i g_i is the same constant, so the adversary gains
 * nothing by choosing; m is the best such support, found after one sort
 * (O(n log n)). sum pi = min(b, n); every pi <= 1. With k = 0 it is the
 * top-b gains. */
void kd_rad_distribution(const double *g, size_t n, size_t b, double k, double *pi);

/* Systematic sampling (Madow): with sum pi = m (an integer up to
 * rounding), returns exactly m distinct indices into out (n), index i
 * included with probability pi_i. The rows are visited in an order
 * shuffled by rng, so which rows fall together is random. */
size_t kd_sample_systematic(const double *pi, size_t n, struct kd_rng *rng, size_t *out);

/* ---------------------------------------------- choosing retrieval queries */

/* Which queries' candidate lists go to a pair teacher (sampling/retrieval_select.c),
 * from the student's scores s (n, L) of each query's L candidates:
 *   KD_SELECT_MARGIN   score -(s1 - s2), s1 >= s2 the list's two highest
 *                      scores (a small gap: an uncertain student ranks high)
 *   KD_SELECT_ENTROPY  score H(softmax(s_i / T)) over the list, natural log
 *   KD_SELECT_RANDOM   score 0
 * A list of fewer than 2 candidates scores 0. Other kinds score 0 (they do
 * not choose queries: kd_retrieval_select_supported). */
void kd_retrieval_select_scores(enum kd_select_kind kind, const float *s, size_t n, size_t L, double T,
                                double *score);
/* 1 for random, margin and entropy. */
int kd_retrieval_select_supported(enum kd_select_kind kind);
/* Chooses min(budget, n) of n queries into out (budget entries), *n_out
 * set: random draws uniformly without replacement (seeded, probability
 * budget / n, as kd_select); margin and entropy take the highest scores
 * above, ties to the lower index, probability 1. Weights are 1. s may be
 * NULL for random. KD_ERR_ARG for another kind, a temperature <= 0 for
 * entropy, or L = 0. */
kd_status kd_retrieval_select(enum kd_select_kind kind, size_t budget, double T, uint64_t seed, const float *s,
                              size_t n, size_t L, struct kd_selection *out, size_t *n_out, struct kd_error *err);

/* ---------------------------------------------------------- label budget */

/* The teacher queries an active stage may spend over its rounds, and what it
 * spent. Only answers the teacher really gave are charged (the store's
 * answers are free):
 *
 *     struct kd_budget b;
 *     kd_budget_init(&b, 10000, N, 5, &err);          // capped to the pool N
 *     for (size_t r = 1; r <= 5; r++) {
 *         size_t quota = kd_budget_quota(&b, r, N - labelled);
 *         ... pick quota examples, label at most kd_budget_left(&b) ...
 *         kd_budget_charge(&b, queried);
 *     }
 */
struct kd_budget {
    size_t requested;       /* the budget as the pipeline asks it */
    size_t total;           /* min(requested, pool): what can be spent */
    size_t rounds;          /* R >= 1 */
    size_t spent;           /* queries charged so far */
};
/* KD_ERR_ARG for rounds = 0. */
kd_status kd_budget_init(struct kd_budget *b, size_t requested, size_t pool, size_t rounds, struct kd_error *err);
/* 1 when the pool is smaller than the requested budget (the run says so). */
int kd_budget_capped(const struct kd_budget *b);
/* Examples round `round` (1-based, <= R) may pick: total / R, plus one for
 * the first total % R rounds, at most `unlabelled`; 0 outside 1..R. */
size_t kd_budget_quota(const struct kd_budget *b, size_t round, size_t unlabelled);
/* The largest quota of any round, ceil(total / R): sizes per-round buffers. */
size_t kd_budget_round_max(const struct kd_budget *b);
/* Queries still allowed, total - spent (0 once spent reaches total). */
size_t kd_budget_left(const struct kd_budget *b);
/* Records `queried` teacher answers as spent. */
void kd_budget_charge(struct kd_budget *b, size_t queried);
/* The teacher queries n pool examples can take when a share s in [0, 1) of
 * every round's picks is generated from them (TGT, augmentation): the
 * sources are (1 - s) of the picks, so floor(n / (1 - s)) in all. Pass it
 * as the pool of kd_budget_init and as the unlabelled count of
 * kd_budget_quota. s = 0 gives n. */
size_t kd_budget_with_generated(size_t n, double share);

/* ------------------------------------------------- noise-aware reweighting */

/* kd's noise-aware methods (docs/methods.md section 5), all from the same
 * calibration table:
 *   confidence  w(x) = alpha(x) = 1 - p(x), the teacher's accuracy in the
 *               confidence bin of x
 *   debiased    w(x) = clip((1 - p - p d) / (1 - 2p), 0, 1), computed once,
 *               d from a reference student that has not fitted x (kd_reweight)
 *   slam        no weight: the student's probabilities pass through the
 *               teacher's noise channel in the loss (losses/, kd_loss_slam),
 *               with alpha(x) and k(x) from kd_slam_channel
 * (kd's first weight, debiased recomputed every epoch on the student being
 * trained, is gone: it lost 1 to 5 points wherever it was measured.) */
enum kd_reweight_method {
    KD_REWEIGHT_CONFIDENCE = 0,
    KD_REWEIGHT_DEBIASED,
    KD_REWEIGHT_SLAM
};
#define KD_REWEIGHT_N_METHODS 3
/* "confidence", "debiased", "slam" */
const char *kd_reweight_method_name(enum kd_reweight_method method);

/* The calibration set's least examples per bin (kd's definition, after
 * docs/methods.md section 5: a bin's error rate from fewer is too noisy). */
#define KD_CALIBRATION_MIN_PER_BIN 100

/* The bins a calibration of n examples gets when `requested` are asked for:
 * at most n / min_per_bin, at least 1. */
size_t kd_calibration_bins(size_t n, size_t requested, size_t min_per_bin);

/* The teacher's error rate against its confidence (max softmax probability)
 * on gold validation data, in equal-mass bins. */
struct kd_calibration {
    size_t n_bins;
    double smoothing;       /* Laplace: error = (errors + s) / (count + 2 s) */
    double *lo, *hi;        /* (n_bins) confidence range of each bin; bins cover [0, 1] */
    size_t *count, *errors; /* (n_bins) validation examples and teacher mistakes per bin */
    double *error;          /* (n_bins) smoothed error rate per bin */
    size_t *topk;           /* (n_bins) SLaM's k: the smallest k with the gold label in the teacher's
                             * top k on >= 90% of the bin's examples, at least 2 (at most C) */
    double overall_error;   /* unsmoothed, all bins */
};

/* Fits the table from teacher logits v (N, C) and gold labels y (N) with
 * n_bins equal-mass bins (fewer when N is smaller or confidences tie)
 * and Laplace smoothing s >= 0. KD_ERR_ARG for N = 0, n_bins = 0, a label
 * outside [0, C) (naming its row) or s < 0. Release with
 * kd_calibration_release. */
kd_status kd_calibration_fit(const struct kd_tensor *v, const int32_t *y, size_t n_bins, double smoothing,
                             struct kd_calibration *cal, struct kd_error *err);
void kd_calibration_release(struct kd_calibration *cal);
/* The error rate p(x) of the bin holding `confidence`. */
double kd_calibration_error(const struct kd_calibration *cal, double confidence);

/* k(x) of the bin holding `confidence` (see struct kd_calibration). */
size_t kd_calibration_topk(const struct kd_calibration *cal, double confidence);

/* confidence weights: w (N) = 1 - p(x) of the bin of the teacher's
 * confidence on each row of v (N, C); p into noise (N, may be NULL).
 * A perfect teacher (every p 0) gives 1 everywhere. */
void kd_reweight_confidence(const struct kd_calibration *cal, const struct kd_tensor *v, float *w, double *noise);

/* SLaM's noise channel per row of v (N, C): alpha (N) = 1 - p(x) and k (N) =
 * kd_calibration_topk of the teacher's confidence; p into noise (N, may be
 * NULL). losses/ kd_loss_slam reads them. */
void kd_slam_channel(const struct kd_calibration *cal, const struct kd_tensor *v, float *alpha, int32_t *k,
                     double *noise);

/* docs/methods.md section 5, step 2: w = (1 - p - p d) / (1 - 2p) clipped to
 * [0, 1]; 0 when p >= 1/2. */
double kd_reweight_formula(double p, double d);

/* Debiasing weights for N examples from teacher logits v (N, C) and a
 * reference student's logits z (N, C), from a student that has not fitted
 * these rows (method debiased): p = kd_calibration_error of the
 * teacher's confidence, t / t2 the teacher's first / second class,
 * d = CE(z / T, t2) / CE(z / T, t) with T = temperature (1: the definition
 * as written; a stage's distillation T compares the losses where a soft
 * loss trains), w = formula(p, d) into w (N); p into noise (N, may be
 * NULL). KD_ERR_SHAPE when v and z differ in shape, KD_ERR_ARG for a
 * temperature that is not a finite number > 0. */
kd_status kd_reweight(const struct kd_calibration *cal, const struct kd_tensor *v, const struct kd_tensor *z,
                      double temperature, float *w, double *noise, struct kd_error *err);

/* ------------------------------------------------------------------- TGT */

/* An MLP autoencoder: encoder D -> hidden -> E and decoder E -> hidden -> D
 * (ReLU inside, linear latent and output). Decoded inputs are clamped to the
 * per-feature range [lo, hi] of the data it was trained on, so generated
 * inputs stay inside the data range. */
struct kd_autoencoder {
    struct kd_mlp *enc, *dec;
    size_t d, e;
    float *lo, *hi;         /* (D) data range */
    float *z_std;           /* (E) standard deviation of each latent over the training data */
};

struct kd_autoencoder_config {
    size_t hidden, latent;  /* default 256, 32 */
    size_t epochs, batch;   /* default 10, 256 */
    float lr;               /* Adam, default 1e-3 */
    uint64_t seed;
    volatile sig_atomic_t *stop;   /* may be NULL: KD_ERR_INTERRUPTED at a batch boundary */
};
void kd_autoencoder_config_init(struct kd_autoencoder_config *cfg);

/* Trains an autoencoder on the rows of x (N, D) with mean squared error;
 * *mse (may be NULL) gets the last epoch's mean reconstruction error per
 * feature. Free with kd_autoencoder_free. */
kd_status kd_autoencoder_train(const struct kd_tensor *x, const struct kd_autoencoder_config *cfg,
                               struct kd_autoencoder **out, double *mse, struct kd_error *err);
void kd_autoencoder_free(struct kd_autoencoder *ae);
/* One safetensors file: encoder.layers.<i>.{weight,bias}, decoder.layers.<i>.{weight,bias},
 * lo, hi, z_std; metadata kd_format=autoencoder. Written atomically. */
kd_status kd_autoencoder_save(const struct kd_autoencoder *ae, const char *path, struct kd_error *err);
/* Reads a file written by kd_autoencoder_save; errors name the file and
 * what is wrong with it. */
kd_status kd_autoencoder_load(const char *path, struct kd_autoencoder **out, struct kd_error *err);
/* z (N, E) = Enc(x); x (N, D). z must be initialised to (N, E). */
kd_status kd_autoencoder_encode(struct kd_autoencoder *ae, const struct kd_tensor *x, struct kd_tensor *z,
                                struct kd_error *err);
/* x (N, D) = clamp(Dec(z), lo, hi); x must be initialised to (N, D). */
kd_status kd_autoencoder_decode(struct kd_autoencoder *ae, const struct kd_tensor *z, struct kd_tensor *x,
                                struct kd_error *err);

/* KL(softmax(teacher(x)) || softmax(student(x))) for B rows of x (B, D)
 * into kl (B); with dx (B, D) non-NULL also its gradient with respect to x.
 * Uses both networks' workspaces. */
kd_status kd_tgt_divergence(struct kd_mlp *teacher, struct kd_mlp *student, const float *x, size_t B, double *kl,
                            float *dx, struct kd_error *err);

enum kd_tgt_mode {
    KD_TGT_RANDOM = 0,      /* z' = z + sigma * z_std * eps, eps ~ N(0, I): any teacher */
    KD_TGT_GRADIENT         /* steps of ascent on the divergence through the decoder: a kd network teacher */
};
const char *kd_tgt_mode_name(enum kd_tgt_mode mode);   /* "random", "gradient" */

struct kd_tgt_config {
    enum kd_tgt_mode mode;
    double sigma;           /* random: noise in units of each latent's std (default 0.5) */
    size_t steps;           /* gradient: ascent steps (default 3) */
    double step_size;       /* gradient: length of each step in latent-std units (default 0.5) */
    uint64_t seed;
};
void kd_tgt_config_init(struct kd_tgt_config *cfg);

/* One new input per row of src (N, D) into out (N, D, initialised by the
 * caller): encode, move in latent space as cfg says, decode (clamped to the
 * data range). The gradient mode needs the teacher and student networks
 * (KD_ERR_ARG naming what is missing otherwise); divergence (N, may be
 * NULL) gets the teacher-student KL at each generated input when both
 * networks are given (NaN otherwise). */
kd_status kd_tgt_generate(struct kd_autoencoder *ae, const struct kd_tgt_config *cfg, struct kd_mlp *teacher,
                          struct kd_mlp *student, const struct kd_tensor *src, struct kd_tensor *out,
                          double *divergence, struct kd_error *err);

/* ---------------------------------------------------------- augmentation */

/* New inputs from images by the two plain moves TGT is compared with: a
 * shift by (dx, dy), each uniform in [-shift, shift], with the uncovered
 * pixels set to `fill`, then Gaussian noise of standard deviation `noise`
 * on every pixel, clamped to [lo, hi]. A row of D = width * height
 * features is an image in row-major order (one channel). */
struct kd_augment_config {
    double noise;           /* pixel noise sd (default 0.1) */
    size_t shift;           /* largest shift in pixels, each axis (default 2) */
    size_t width;           /* image width; 0: sqrt(D), D must be a square (default 0) */
    float fill;             /* value of the pixels a shift uncovers (default 0) */
    float lo, hi;           /* clamp range (default 0, 1: pixels scaled to [0, 1]) */
    uint64_t seed;
};
void kd_augment_config_init(struct kd_augment_config *cfg);

/* One augmented input per row of src (N, D) into out (N, D, initialised by
 * the caller); each row draws dx, dy, then D normals, from one stream seeded
 * by cfg->seed (the same rows in the same order give the same outputs).
 * KD_ERR_ARG for a negative or non-finite noise, lo > hi, or a width that
 * does not divide D (D not a square when width is 0); KD_ERR_SHAPE for an
 * out of another shape. */
kd_status kd_augment_generate(const struct kd_augment_config *cfg, const struct kd_tensor *src, struct kd_tensor *out,
                              struct kd_error *err);

#endif

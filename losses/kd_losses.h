/*
 * kd losses: classification and distillation losses with their gradients
 * with respect to the student's logits, and per-example weights.
 *
 *     float grad[B * C];                                  // (B, C)
 *     double loss = kd_loss_softmax_ce(logits, y, NULL, B, C, grad);
 *
 * Conventions shared by every loss here:
 *  - logits are (B, C) row-major float32; teacher logits likewise.
 *  - w is NULL (every weight 1) or B per-example weights; a loss is the
 *    weighted mean  (1/B) sum_i w_i l_i  -- divided by B, not by sum w, so
 *    that importance weights (IWeS) keep their meaning.
 *  - grad may be NULL; otherwise it receives dL/dlogits (B, C), overwritten.
 *  - Softmaxes subtract the row maximum; log-softmax is computed as
 *    z - max - log(sum exp(z - max)), so large logits neither overflow nor
 *    lose the small probabilities.
 * The maths is written out in docs/methods.md section 2 (Hinton et al.
 * 2015, arXiv 1503.02531).
 */
#ifndef KD_LOSSES_H
#define KD_LOSSES_H

#include "core/kd_core.h"

/* Row-wise softmax of z / T into p (B, C); p may equal z. */
void kd_softmax(const float *z, size_t B, size_t C, float T, float *p);
/* Row-wise log-softmax of z / T into lp (B, C); lp may equal z. */
void kd_log_softmax(const float *z, size_t B, size_t C, float T, float *lp);

/* Cross-entropy with gold labels y (B) in [0, C):
 *   l_i = -log softmax(z_i)_{y_i};  dl_i/dz_i = softmax(z_i) - onehot(y_i). */
double kd_loss_softmax_ce(const float *logits, const int32_t *y, const float *w, size_t B, size_t C,
                          float *grad);

/* Soft-label cross-entropy against target probabilities q (B, C) rows summing to 1:
 *   l_i = -sum_c q_ic log softmax(z_i / T)_c,   dl_i/dz_i = (softmax(z_i/T) - q_i) / T.
 * Same gradient as KL(q || softmax(z/T)); the loss differs by q's entropy. */
double kd_loss_soft_ce(const float *logits, const float *q, const float *w, size_t B, size_t C, float T,
                       float *grad);

/* Hinton distillation. v: teacher logits (B, C); y gold labels or NULL (then
 * alpha is taken as 1):
 *   l_i = alpha T^2 KL(softmax_T(v_i) || softmax_T(z_i)) + (1 - alpha) CE(y_i, softmax(z_i))
 *   dl_i/dz_i = alpha T (softmax_T(z_i) - softmax_T(v_i)) + (1 - alpha)(softmax(z_i) - onehot(y_i))
 * w weighs the whole l_i. */
double kd_loss_hinton(const float *logits, const float *teacher_logits, const int32_t *y, const float *w,
                      size_t B, size_t C, float T, float alpha, float *grad);

/* Logit matching (the high-temperature limit): l_i = (1/C) sum_c (z_ic - v_ic)^2 / 2,
 * dl_i/dz_ic = (z_ic - v_ic) / C. */
double kd_loss_logit_mse(const float *logits, const float *teacher_logits, const float *w, size_t B,
                         size_t C, float *grad);

/* Hard-label distillation: cross-entropy with the teacher's argmax as label. */
double kd_loss_hard_distill(const float *logits, const float *teacher_logits, const float *w, size_t B,
                            size_t C, float *grad);

/* The distillation losses a pipeline can choose, combined per example with
 * gold labels where they exist (alpha_i = alpha for an example with a gold
 * label, 1 without):
 *   l_i = alpha_i * L_teacher(z_i, v_i) + (1 - alpha_i) * CE(y_i, softmax(z_i))
 * with L_teacher:
 *   HINTON     T^2 KL(softmax_T(v) || softmax_T(z))
 *   SOFT_CE    T^2 soft-label cross-entropy against softmax_T(v) (KL's gradient)
 *   LOGIT_MSE  the logit MSE above (T unused)
 *   HARD       cross-entropy with the teacher's argmax (T unused) */
enum kd_distill_loss { KD_DLOSS_HINTON = 0, KD_DLOSS_SOFT_CE, KD_DLOSS_LOGIT_MSE, KD_DLOSS_HARD };
const char *kd_distill_loss_name(enum kd_distill_loss loss);

/* The combined loss above for a batch. y may be NULL (no gold labels) and a
 * label < 0 means "no gold label for this example". */
double kd_loss_distill(enum kd_distill_loss loss, const float *logits, const float *teacher_logits,
                       const int32_t *y, const float *w, size_t B, size_t C, float T, float alpha, float *grad);

/* The loss of active-distillation rounds (kd's definition, docs/methods.md):
 * each row learns from one source only. A row with a gold label (y_i >= 0)
 * was never sent to the teacher, so there is nothing for alpha to mix:
 *   l_i = CE(y_i, softmax(z_i))                  when y_i >= 0
 *   l_i = L_teacher(z_i, v_i)  (as above)        otherwise
 * and the batch loss is (1/B) sum_i w_i l_i. y may be NULL (no gold rows);
 * teacher rows of gold rows are not read. logits, teacher_logits, grad are
 * (B, C); y and w (B). */
double kd_loss_distill_or_gold(enum kd_distill_loss loss, const float *logits, const float *teacher_logits,
                               const int32_t *y, const float *w, size_t B, size_t C, float T, float *grad);

/* SLaM forward correction (Kontonis et al. 2023, arXiv 2302.03806; kd's
 * definition, docs/methods.md section 5.3). The student's probabilities s
 * pass through the teacher's noise channel before the loss:
 *   u_c  = alpha s_c + b m_c (1 - s_c),  b = (1 - alpha) / (k - 1) (divide_k) or 1 - alpha
 *   s~_c = u_c / sum_j u_j
 * m = indicator of the teacher's top-k classes (largest logits, ties to the
 * lower class). The formula as the paper writes it sums to 1 only when
 * k = C or the student's mass lies in the top k; kd divides by the sum so
 * that s~ is always a distribution. With alpha = 1 (or k < 2) s~ = s.
 * alpha (B) and k (B) per example come from sampling/ kd_slam_channel. */
struct kd_noise_channel {
    const float *alpha;     /* (B) the teacher's accuracy in the bin of x, in [0, 1] */
    const int32_t *k;       /* (B) the teacher's top-k that holds the gold label */
    int divide_k;           /* 1: b = (1 - alpha) / (k - 1); 0: b = 1 - alpha (SLaM's experiments) */
};

/* s~ (C) for one row: s (C) the student's probabilities, v (C) the teacher's
 * logits (its top k give m). */
void kd_slam_probs(const double *s, const float *v, double alpha, size_t k, int divide_k, size_t C, double *out);

/* The loss of active rounds with SLaM: gold rows (y_i >= 0) as in
 * kd_loss_distill_or_gold; a teacher row learns
 *   HARD       CE(onehot(argmax v), s~),       s = softmax(z)
 *   HINTON     T^2 KL(softmax_T(v) || s~),     s = softmax(z / T)
 *   SOFT_CE    T^2 CE(softmax_T(v), s~),       s = softmax(z / T)
 * with the gradient through s~ and the softmax:
 *   dl/ds_j = (alpha - b m_j) (1 / sum u - q_j / u_j),
 *   dl/dz_i = (scale / T) s_i (dl/ds_i - sum_j s_j dl/ds_j)
 * (scale T^2 for the soft losses, 1 for HARD). LOGIT_MSE has no
 * probabilities to correct: the pipeline refuses it; here it is trained
 * uncorrected. The batch loss is (1/B) sum_i w_i l_i; shapes as
 * kd_loss_distill_or_gold, ch->alpha and ch->k (B). */
double kd_loss_slam(enum kd_distill_loss loss, const float *logits, const float *teacher_logits, const int32_t *y,
                    const float *w, const struct kd_noise_channel *ch, size_t B, size_t C, float T, float *grad);

/* Index of the largest of x[0..n); the first one on ties. */
size_t kd_argmax(const float *x, size_t n);

/* ---------------------------------------------------------- ranking losses */

/* Scores of Bq queries against Bd documents, S (Bq, Bd) row-major: the
 * losses below compare each query's row of scores with what should come
 * first. (losses/rank.c) */

/* In-batch softmax cross-entropy (contrastive, with the batch's other
 * documents as negatives): pos[i] is query i's positive column (pos NULL:
 * column i, the diagonal, so Bd >= Bq), every other column a negative:
 *   l_i = -log softmax(S_i)_{pos_i} = logsumexp(S_i) - S_{i,pos_i}
 *   dl_i/dS_ij = softmax(S_i)_j - [j == pos_i]
 * Weighted mean over queries as above (w NULL or (Bq)). */
double kd_loss_inbatch_softmax(const float *scores, const int32_t *pos, const float *w, size_t Bq, size_t Bd,
                               float *grad);

/* ------------------------------------------------- retrieval distillation */

/* A dual-encoder student learning from a teacher's scores over each query's
 * candidate list (losses/retrieval.c; docs/methods.md, "Cross-encoder to
 * dual-encoder"). Per query: L candidates with teacher scores t (L), student
 * scores s (L) and relevance rel (L, 1 = relevant, 0 = not; NULL for every
 * query, or a row without a 1: the candidate the teacher scores highest,
 * the first on ties, is taken as the one positive, so unlabelled queries
 * learn from the teacher alone). P = the positives, N = the others.
 *   MSE          (1/L) sum_j (s_j - t_j)^2
 *   MARGIN_MSE   mean over pairs (p in P, n in N') of ((s_p - s_n) - (t_p - t_n))^2,
 *                N' = the first `negatives` of N in list order (0: all of N);
 *                negatives = 1 is Hofstaetter et al.'s triple form
 *   LISTWISE_KL  T^2 KL(softmax(t / T) || softmax(s / T)), gradient T (softmax(s/T) - softmax(t/T))
 *   M3SE         (1/L) [ sum_{i in P} ((s_i - s_j*) - (t_i - t_j*))^2 + sum_{j in N} max(0, s_j - s_j*)^2 ],
 *                j* = the negative the teacher scores highest (first on ties)
 * A list without negatives has loss 0 under MARGIN_MSE and M3SE. */
enum kd_rank_loss { KD_RLOSS_MSE = 0, KD_RLOSS_MARGIN_MSE, KD_RLOSS_LISTWISE_KL, KD_RLOSS_M3SE };
#define KD_RLOSS_COUNT 4
/* "mse", "margin_mse", "listwise_kl", "m3se" */
const char *kd_rank_loss_name(enum kd_rank_loss loss);
/* KD_ERR_ARG naming the choices when name is none of the above. */
kd_status kd_rank_loss_parse(const char *name, enum kd_rank_loss *out, struct kd_error *err);

struct kd_rank_distill {
    enum kd_rank_loss loss;
    float T;              /* LISTWISE_KL temperature (> 0) */
    size_t negatives;     /* MARGIN_MSE negatives per positive, 0 = all */
    float alpha;          /* kd_loss_rank_distill_inbatch: weight of the teacher term, in [0, 1] */
};
/* MSE, T 1, every negative, alpha 1. */
void kd_rank_distill_init(struct kd_rank_distill *c);
/* KD_ERR_ARG naming the field when T or alpha is out of range. */
kd_status kd_rank_distill_check(const struct kd_rank_distill *c, struct kd_error *err);

/* The loss above for B lists: s, t (B, L), rel (B, L) or NULL, w (B) or NULL.
 * Batch loss (1/B) sum_i w_i l_i; grad (B, L) = dL/ds (overwritten) or NULL. */
double kd_loss_rank_distill(const struct kd_rank_distill *c, const float *s, const float *t, const int8_t *rel,
                            const float *w, size_t B, size_t L, float *grad);

/* The same mixed with the gold in-batch loss, over the student's scores of
 * the B queries against all B * L candidates of the batch, S (B, Bd) with
 * Bd >= B * L and query i's own list in columns [i L, i L + L):
 *   l_i = a_i Ldistill(S_i[iL .. iL + L), t_i) + (1 - a_i) inbatch(S_i, gold_i)
 * inbatch as kd_loss_inbatch_softmax (every other column a negative), a_i =
 * alpha when gold_i >= 0 and 1 when gold_i < 0 or gold is NULL (no gold
 * label: the teacher is the only signal). Batch loss (1/B) sum_i w_i l_i;
 * grad (B, Bd) or NULL. */
double kd_loss_rank_distill_inbatch(const struct kd_rank_distill *c, const float *S, size_t Bd, const float *t,
                                    const int8_t *rel, const int32_t *gold, const float *w, size_t B, size_t L,
                                    float *grad);

/* EmbedDistill's embedding matching (Kim et al. 2023): the unsquared L2
 * distance between the student's (projected) embedding x_i and the teacher's
 * y_i, x, y (B, E):
 *   l_i = ||x_i - y_i||_2,   dl_i/dx_i = (x_i - y_i) / ||x_i - y_i||  (0 where x_i = y_i)
 * Batch loss (1/B) sum_i w_i l_i; grad (B, E) = dL/dx or NULL. */
double kd_loss_embed_l2(const float *x, const float *y, const float *w, size_t B, size_t E, float *grad);

#endif

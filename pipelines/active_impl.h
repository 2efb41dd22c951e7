/* Active distillation's private pieces, shared by pipelines/stage_active.c
 * (the rounds), pipelines/active_set.c (the growing training set) and
 * pipelines/stage_active_resume.c (saving and restoring a finished round). */
#ifndef KD_ACTIVE_IMPL_H
#define KD_ACTIVE_IMPL_H

#include "pipelines/run_impl.h"
#include "sampling/kd_sampling.h"
#include "store/kd_store.h"

enum row_kind { ROW_POOL = 0, ROW_GENERATED, ROW_GOLD };

/* The examples the student trains on, growing round by round. */
struct train_set {
    size_t n, cap, D, C;
    float *x;             /* (cap, D) */
    float *v;             /* (cap, C) teacher logits (zeros for gold rows) */
    int32_t *y;           /* gold label, -1 for teacher-labelled rows */
    float *iw;            /* importance weight from the selection (IWeS), else 1 */
    float *w;             /* the weight in the loss: iw times the noise weight */
    double *noise;        /* estimated teacher error p(x); NaN where not estimated */
    float *alpha;         /* slam: the teacher's accuracy alpha(x) (1 for gold rows) */
    int32_t *k;           /* slam: the top-k of the teacher's noise channel */
    struct kd_hash *key;
    int64_t *row;         /* row in its dataset, -1 for generated inputs */
    unsigned char *kind;  /* enum row_kind */
};

void kd_active_ts_release(struct train_set *ts);
/* Room for `more` rows beyond ts->n. */
kd_status kd_active_ts_reserve(struct train_set *ts, size_t more, struct kd_error *err);
/* Appends one row (reserved): v NULL for gold rows; weight iw, noise unknown. */
void kd_active_ts_add(struct train_set *ts, const float *x, const float *v, int32_t y, float iw, struct kd_hash key,
                      int64_t row, enum row_kind kind);
/* Copies row i of `from` to the end of `to` (reserved). */
void kd_active_ts_copy_row(struct train_set *to, const struct train_set *from, size_t i);

struct active {
    struct runner *r;
    const struct kd_pipe_stage *s;
    int64_t sid;
    struct run_teacher *t;
    struct kd_run_data *pool, *gold, *val;
    struct train_set ts;
    struct kd_calibration cal;
    int have_cal;
    double teacher_error;       /* on validation; NaN when not measured */
    size_t epoch;               /* epochs trained so far in the stage (weights are stored per epoch) */
    size_t round_epochs;
    enum kd_tgt_mode tgt_mode;  /* tgt.mode, or by default gradient for a kd network teacher, random otherwise */
    struct kd_run_epoch_log log;
};

struct round_state {
    unsigned char *chosen;      /* (N pool) picked in an earlier round */
    size_t n_chosen;
    size_t *cand;               /* (N) rows not chosen yet */
    float *p, *q;               /* (N, C) student / second student probabilities of the candidates */
    struct kd_selection *sel;   /* (budget of a round) */
    struct kd_store_selection *rec;
    struct kd_store_origin *origins;
    size_t *rows;               /* dataset rows of the picks */
    size_t *pool_index;         /* (N) pool row of each pick, in the order they joined (n_chosen of them) */
    struct kd_tensor logits, logits2;
    struct kd_budget budget;    /* quotas per round and the queries charged (sampling/) */
};

/* Charges what a label call asked to budget b and the run's counts (even
 * when it failed part-way: those answers are stored, and were paid for) and
 * names the round in an error. Returns st. */
kd_status kd_active_charge(struct active *a, struct kd_budget *b, const struct kd_label_stats *ls, kd_status st,
                           size_t round, struct kd_error *err);

/* The generator of a stage with strategy tgt or augment
 * (pipelines/active_generate.c): opened once before round 1 (TGT: its
 * autoencoder loaded or trained), it makes one input from each of a round's
 * sources in turn and keeps them for the NPY artefact. */
struct active_gen {
    struct kd_autoencoder *ae;  /* tgt */
    float lo, hi;               /* augment: the range of the pool's features */
    struct kd_tensor kept;      /* (n, D) every input made so far */
};
kd_status kd_active_gen_open(struct active *a, struct active_gen *g, struct kd_error *err);
/* Makes n_gen inputs from the n_src rows last added to the training set,
 * has the teacher label them and adds them (records the selections). */
kd_status kd_active_generate(struct active *a, struct round_state *rs, struct active_gen *g, struct kd_mlp *student,
                             size_t round, size_t n_src, size_t n_gen, struct kd_error *err);
/* The inputs made, as <output>/<stage>-generated.npy (none: nothing written). */
kd_status kd_active_gen_save(struct active *a, struct active_gen *g, struct kd_error *err);
void kd_active_gen_release(struct active_gen *g);

/* After a finished round: the student, iwes-two's second student and the
 * round's state under <output>/checkpoints/ (stage_active_resume.c). */
kd_status kd_active_save_round(struct active *a, const size_t *pool_index, struct kd_mlp *student, struct kd_mlp *second,
                               size_t round, size_t spent, struct kd_error *err);
/* On --resume: the last finished round of this stage, or *done = 0. */
kd_status kd_active_restore_round(struct active *a, struct round_state *rs, struct run_model *m, struct kd_mlp **second,
                                  size_t *done, struct kd_error *err);
void kd_active_remove_round_files(const struct active *a);

/* Over the ranks of an MPI job (pipelines/stage_active_dist.c; with one
 * rank each does what one process does). Every rank calls each of them. */
/* The student's probabilities (nc, C) of the candidate pool rows cand into
 * p: with one rank through logits (the whole pool, N x C); with several,
 * each rank predicts its share of the candidates and rank 0's p receives
 * them all (the other ranks' p holds only their share). */
kd_status kd_active_candidate_probs(struct active *a, struct kd_mlp *net, struct kd_tensor *logits, const size_t *cand,
                                    size_t nc, float *p, struct kd_error *err);
/* kd_select decided on rank 0 (p, q there) and its picks broadcast. */
kd_status kd_active_select(struct active *a, const struct kd_select_config *sc, const float *p, const float *q,
                           size_t nc, size_t C, struct kd_selection *out, size_t *n_out, struct kd_error *err);
/* The teacher's answers vs (initialised) for the pool inputs xs (rows: their
 * dataset rows), at most max_queries asked; over the ranks, one store writer
 * (kd_run_dist_label) and rank 0's counts in ls on every rank. before: how
 * the caller's preparation went (KD_OK, or its failure, message in err):
 * a failure on any rank fails every rank here, none waiting for another. */
kd_status kd_active_label(struct active *a, kd_status before, const struct kd_tensor *xs, const size_t *rows,
                          size_t max_queries, struct kd_tensor *vs, struct kd_label_stats *ls, struct kd_error *err);
/* The inputs rank 0 generated (gen, and ask: what the teacher is sent when
 * it takes raw inputs, else NULL) and their divergences div (gen->rows) on
 * every rank, all allocated alike on every rank; st is rank 0's status of
 * generating them (its failure, with rank 0's message, on every rank). */
kd_status kd_active_share_generated(struct active *a, kd_status st, struct kd_tensor *gen, struct kd_tensor *ask,
                                    double *div, struct kd_error *err);
/* The teacher's answers v (initialised) for generated inputs x, each stored
 * with its origin (origins, x->rows), at most max_queries asked; over the
 * ranks through the one store writer (kd_run_dist_label_origins) with rank
 * 0's counts in ls on every rank. */
kd_status kd_active_label_generated(struct active *a, const struct kd_tensor *x, const struct kd_store_origin *origins,
                                    size_t max_queries, struct kd_tensor *v, struct kd_label_stats *ls,
                                    struct kd_error *err);
/* Rank 0's weights, noise and slam channel of training rows [from, to) on
 * every rank. */
kd_status kd_active_share_weights(struct active *a, size_t from, size_t to, struct kd_error *err);
/* Rank 0's parameters of m on every rank (after rank 0 trained it alone). */
kd_status kd_active_share_student(struct active *a, struct kd_mlp *m, struct kd_error *err);
/* On --resume: that every rank found the same finished round (*round) in
 * rank 0's files at `where`. */
kd_status kd_active_agree_round(struct active *a, size_t *round, const char *where, struct kd_error *err);

#endif

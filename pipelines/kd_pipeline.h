/*
 * kd pipelines: the YAML pipeline language (every libyaml call of kd lives in
 * this folder), its validation, and the stage runner.
 *
 *     struct kd_pipeline p;
 *     struct kd_diag diag;
 *     kd_diag_init(&diag);
 *     const char *sets[] = {"seed=3"};
 *     if (kd_pipeline_load("pipelines/examples/fashion-mnist.yaml", sets, 1, &p, &diag) != KD_OK)
 *         for (size_t i = 0; i < diag.n; i++)
 *             fprintf(stderr, "%s\n", diag.items[i].text);  // "file:line:col: message"
 *     ...
 *     kd_pipeline_release(&p);
 *     kd_diag_release(&diag);
 *
 * The language is documented key by key in docs/pipeline.md. Positions are
 * 1-based (libyaml counts from 0; people count from 1).
 */
#ifndef KD_PIPELINE_H
#define KD_PIPELINE_H

#include <signal.h>

#include "core/kd_core.h"
#include "data/kd_data.h"
#include "losses/kd_losses.h"
#include "sampling/kd_sampling.h"
#include "store/kd_store.h"
#include "student/kd_student.h"
#include "teacher/kd_teacher.h"

/* ------------------------------------------------------------ diagnostics */

/* Every problem found, not only the first: each with its position. */
struct kd_diag_item {
    int line, col;          /* 1-based; 0 when the problem has no position */
    char text[512];         /* "path:line:col: message" ready to print */
};
struct kd_diag {
    struct kd_diag_item *items;
    size_t n, cap;
    char path[256];         /* the file the positions refer to */
};
void kd_diag_init(struct kd_diag *d);
void kd_diag_release(struct kd_diag *d);
/* Appends "path:line:col: message". */
void kd_diag_add(struct kd_diag *d, int line, int col, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* ---------------------------------------------------------- configuration */

struct kd_pos {
    int line, col;          /* of the key (or list item) in the file; 1-based */
};

#define KD_PIPE_NAME_MAX 64
#define KD_PIPE_MAX_HIDDEN 16
#define KD_PIPE_MAX_PARTS 8
#define KD_PIPE_MAX_LIST 16
/* Most parameters (weights and biases) a model may have: 2^31, 8 GiB of
 * float32 weights before gradients and optimizer state. Checked at
 * validation with the sizes the file gives, and again when the data gives
 * the rest. */
#define KD_PIPE_MAX_PARAMS (1ULL << 31)

enum kd_scale_mode { KD_SCALE_NONE = 0, KD_SCALE_PIXELS, KD_SCALE_STANDARD };

/* datasets: NAME: {features, labels, label_column, scale, limit} */
struct kd_pipe_dataset {
    char name[KD_PIPE_NAME_MAX];
    struct kd_pos pos;
    char *features;          /* path, resolved against the pipeline's folder */
    char *labels;            /* path or NULL */
    char *label_column;      /* CSV label column (name or index text) or NULL */
    enum kd_scale_mode scale;
    size_t limit;            /* first N rows only; 0 = all */
    /* A retrieval data set (features is then NULL): `beir: DIR`, and/or
     * `wordnet: DIR | default` with `seed`, which converts WordNet into
     * the BEIR folder (default OUTPUT/data/NAME) when it has no corpus. */
    char *beir;              /* resolved against the pipeline's folder, or NULL */
    char *wordnet;           /* WordNet's dict folder, or NULL */
    uint64_t wordnet_seed;   /* the converter's query split (default 1) */
};
/* A `datasets:` entry that is a BEIR data set (or becomes one). */
static inline int kd_pipe_dataset_is_retrieval(const struct kd_pipe_dataset *d)
{
    return d && (d->beir || d->wordnet);
}

/* splits: - {from, seed, parts: {NAME: count | fraction | rest}} */
struct kd_pipe_split {
    struct kd_pos pos;
    char from[KD_PIPE_NAME_MAX];
    uint64_t seed;
    int has_seed;            /* else the pipeline seed */
    size_t n_parts;
    char part_names[KD_PIPE_MAX_PARTS][KD_PIPE_NAME_MAX];
    double part_sizes[KD_PIPE_MAX_PARTS];   /* >= 1: a count; in (0, 1): a fraction; -1: rest */
    struct kd_pos part_pos[KD_PIPE_MAX_PARTS];
};

enum kd_pipe_model_type { KD_MODEL_MLP = 0, KD_MODEL_DUAL, KD_MODEL_CROSS };

/* models: NAME: {type: mlp, hidden: [..], activation, dropout, init, inputs, classes}
 *             | {type: dual, buckets, dim, hidden, activation, shared, normalise, score,
 *                temperature, featurizer: {words, chars, seed}}
 *             | {type: cross, buckets, dim, hidden, activation, shared, bm25, featurizer} */
struct kd_pipe_model {
    char name[KD_PIPE_NAME_MAX];
    struct kd_pos pos;
    enum kd_pipe_model_type type;
    struct kd_pos type_pos;
    struct kd_dual_config dual;      /* type dual (hidden and activation copied in) */
    struct kd_cross_config cross;    /* type cross (hidden and activation copied in, then the output 1) */
    struct kd_text_settings text;    /* dual, cross: the featuriser (buckets = the tables' rows' log2) */
    size_t n_hidden;
    size_t hidden[KD_PIPE_MAX_HIDDEN];
    enum kd_act act;         /* student/'s names: relu, gelu, tanh, identity (default relu) */
    float dropout;
    enum kd_init init;       /* he, xavier (default he) */
    size_t inputs, classes;  /* 0 = from the data; otherwise checked against it */
    struct kd_pos inputs_pos, classes_pos;
};

/* teachers: NAME: {kind: model, model | weights} | {kind: exec, command, batch, timeout, answers}
 *                 | {kind: table, table} */
struct kd_pipe_teacher {
    char name[KD_PIPE_NAME_MAX];
    struct kd_pos pos;
    enum kd_teacher_kind kind;      /* KD_TEACHER_MODEL, _EXEC, _TABLE (store/kd_store.h) */
    char model[KD_PIPE_NAME_MAX];   /* kind model: a models: entry trained by a stage, or "" */
    char *weights;                  /* kind model: a safetensors file, or NULL */
    char **command;                 /* kind exec: argv, NULL-terminated */
    size_t n_command;
    size_t batch;                   /* kind exec: examples per request (default 256) */
    double timeout;                 /* kind exec: seconds per request (default 60) */
    int embeds;                     /* kind exec: `answers: embeddings`, a text teacher (EmbedDistill);
                                       0 (`answers: scores`, the default): it answers what the stage asks */
    char table[KD_PIPE_NAME_MAX];   /* kind table: teacher name in the store (default: NAME) */
    struct kd_pos model_pos;
};

struct kd_pipe_optim {
    enum kd_optim_kind kind;        /* sgd, adam, adamw (default adam) */
    float lr, momentum, weight_decay, clip;
    enum kd_sched_kind schedule;    /* constant, step, cosine (default constant) */
    uint64_t warmup, step_size;
    float gamma, min_lr;
};

enum kd_stage_kind {
    KD_STAGE_TRAIN = 0,   /* supervised training of a model on gold labels */
    KD_STAGE_LABEL,       /* ask a teacher about a dataset, through the store */
    KD_STAGE_DISTILL,     /* train a student on teacher answers (+ gold labels) */
    KD_STAGE_EVALUATE,    /* accuracy, agreement with a teacher */
    KD_STAGE_EXPORT,      /* safetensors, C source */
    KD_STAGE_DIAGNOSE     /* supervision complexity of targets for a student (docs/pipeline.md) */
    /* later issues append */
};

/* enum kd_distill_loss (KD_DLOSS_HINTON, ...) comes from losses/kd_losses.h */

/* distill: select: {...}: active distillation. The stage spends `budget`
 * selections of pool examples in `rounds` rounds; each round the student
 * scores the pool, the strategy picks, the teacher labels the picks through
 * the store, the weights are recomputed and the student trains (docs/active.md). */
struct kd_pipe_select {
    int on;
    struct kd_pos pos;                 /* of the `select` key */
    enum kd_select_kind strategy;
    int tgt;                           /* strategy: tgt (strategy then picks TGT's sources) */
    size_t budget, rounds;
    int retrain;                       /* schedule: retrain (1) or warm (0, default) */
    size_t round_epochs;               /* epochs per round (default: the stage's epochs) */
    double weight_cap;                 /* IWeS (default 10) */
    /* tgt: {...} */
    enum kd_tgt_mode tgt_mode;         /* default gradient for a model teacher, random otherwise */
    int tgt_mode_set;
    double tgt_share;                  /* share of each round's picks that are generated (default 0.5) */
    double tgt_sigma, tgt_step_size;
    size_t tgt_steps;
    char *tgt_autoencoder;             /* a saved autoencoder to use; NULL: train one on tgt_data */
    char tgt_data[KD_PIPE_NAME_MAX];   /* the dataset the autoencoder trains on; "": the stage's pool */
    struct kd_pos tgt_data_pos;
    size_t tgt_latent, tgt_hidden, tgt_epochs;
    struct kd_pos strategy_pos, tgt_pos;
    /* strategy: augment, augment: {...} (sampling/ kd_augment_generate) */
    int augment;                       /* strategy: augment (strategy then picks the images to augment) */
    double aug_share;                  /* share of each round's picks that are augmented (default 0.5) */
    double aug_noise;                  /* pixel noise sd (default 0.1) */
    size_t aug_shift, aug_width;       /* largest shift in pixels (default 2); image width (0: square) */
    struct kd_pos aug_pos;
    /* On a retrieval data set (pipelines/config_retrieval_select.c): the
     * budget and quotas count queries; strategy random, margin or entropy */
    double list_temperature;           /* entropy: softmax(s / T) over a list (default 1) */
    int has_dev;                       /* validation: a held-out split measured after each round */
    enum kd_beir_split dev;
};

/* distill: reweight: {method, ...}: noise-aware weights (or a noise channel) from the
 * teacher's calibration on the stage's `validation:` data. */
struct kd_pipe_reweight {
    int on;
    struct kd_pos pos;
    enum kd_reweight_method method;    /* sampling/kd_sampling.h; required (kd has no default method) */
    size_t bins;                       /* default 10, fewer when validation has < 100 examples per bin */
    double smoothing;                  /* Laplace, default 1 */
    double temperature;                /* debiased, epoch: the student's softmax in d(x) (default 1) */
    size_t folds;                      /* debiased: out-of-fold reference students (0: gold-only reference) */
    struct kd_pos method_pos;
    int divide_k;                      /* slam: the channel's 1/(k - 1) factor (default KD_PIPE_SLAM_DIVIDE_K) */
};
/* slam's default for the 1/(k - 1) factor (the noisy-teacher experiment,
 * docs/experiments/README.md, says why). */
#define KD_PIPE_SLAM_DIVIDE_K 1

/* ---- diagnose stage (pipelines/config_diagnose.c, pipelines/stage_diagnose.c) ---- */

/* One target source of a diagnose stage: `gold`, or `{teacher: T,
 * temperature: [..]}` (one set of targets per temperature, default [1]). */
struct kd_pipe_diag_target {
    struct kd_pos pos;
    int gold;                          /* 1: the data's one-hot labels */
    char teacher[KD_PIPE_NAME_MAX];    /* else a teachers: entry */
    size_t n_temps;
    double temps[KD_PIPE_MAX_LIST];
    int checkpoints;                   /* `checkpoints: all`: every saved checkpoint of the teacher's
                                          model (then the final weights are not measured) */
    struct kd_pos checkpoints_pos;
};

/* diagnose: {model, data, n, seed, eps, centre, method, at, targets}. */
struct kd_pipe_diagnose {
    size_t n;                          /* examples drawn from data (default 2000; all when fewer) */
    uint64_t seed;                     /* which examples (default: the pipeline seed) */
    int has_seed;
    double eps;                        /* ridge (default 1e-3) */
    int centre;                        /* subtract 1/C from targets (default false) */
    int method;                        /* enum kd_solve_method (diagnostics/): 0 auto, 1 cholesky, 2 cg */
    int at_init;                       /* at: init (fresh weights, the pipeline seed) | trained (default) */
    size_t n_targets;
    struct kd_pipe_diag_target targets[KD_PIPE_MAX_LIST];
    struct kd_pos targets_pos;
};

struct kd_pipe_stage {
    enum kd_stage_kind kind;
    struct kd_pos pos;
    char name[KD_PIPE_NAME_MAX];    /* optional `name:`; default "<kind>-<index>" */
    /* train, distill */
    char model[KD_PIPE_NAME_MAX];   /* train: model; distill: student */
    char data[KD_PIPE_NAME_MAX];    /* train/label/distill/evaluate: dataset */
    char gold[KD_PIPE_NAME_MAX];    /* distill: optional labelled dataset mixed in */
    char teacher[KD_PIPE_NAME_MAX]; /* label/distill; evaluate: optional, for agreement */
    size_t epochs, batch;
    struct kd_pipe_optim optim;
    enum kd_distill_loss loss;
    enum kd_rank_loss rank_loss;    /* distill on a retrieval data set: the retrieval loss */
    float temperature, alpha;       /* on a retrieval data set: listwise_kl's temperature (default 1)
                                       and the teacher's weight against gold (default 1) */
    char validation[KD_PIPE_NAME_MAX]; /* distill: gold-labelled data for reweight and rad */
    struct kd_pipe_select select;   /* distill: active distillation when select.on */
    struct kd_pipe_reweight reweight;
    /* evaluate */
    size_t n_models;
    char models[KD_PIPE_MAX_LIST][KD_PIPE_NAME_MAX];
    /* retrieval (a dual model or bm25 on a BEIR data set) */
    enum kd_beir_split split;       /* train: default train; evaluate: default test */
    size_t negatives;               /* train: BM25 hard negatives per pair (dual, default 0) or per
                                       list (cross, default 31); distill (dual): Margin-MSE's
                                       negatives per positive (default 0: all) */
    float table_lr;                 /* train: the embedding tables' sparse Adam rate (default 1e-2) */
    size_t k;                       /* evaluate: depth of the ranking and the run file (default 100);
                                       train (cross), label, distill (dual): BM25 candidates per
                                       query (default 100) */
    /* distill, label (retrieval): `candidates:` beyond BM25's top k, appended
     * to each query's list: `random` documents of the corpus drawn per query
     * from the pipeline's seed, and the first `from_model` documents dual
     * encoder `cand_model` (trained by an earlier stage) retrieves that BM25's
     * top k lacks. 0 and "" when absent. */
    size_t cand_random, cand_from_model;
    char cand_model[KD_PIPE_NAME_MAX];
    /* distill from a teacher whose model is a dual encoder (EmbedDistill):
     * the weights of the query and document embedding matching (default 1
     * each), and frozen_docs: the student is a query tower over the
     * teacher's own document embeddings (asymmetric mode). */
    float match_q, match_d;
    int frozen_docs;
    /* distill (retrieval), pipelines/retrieval_queries.c: `unlabelled:
     * unjudged` adds the data set's queries that no qrels file mentions,
     * which learn from the teacher's scores alone (unlabelled_pos: the key's
     * value); `query_weights:` weighs each query's list: weight_file's
     * weight of the query (1 when the file gives none, or without a file),
     * times weight_unlabelled for an unlabelled query. weighted: the stage
     * has `query_weights`. */
    int unlabelled, weighted;
    struct kd_pos unlabelled_pos;
    float weight_unlabelled;
    char *weight_file;
    /* export */
    int format_safetensors, format_c, format_onnx;
    char *path;                     /* export: output base path (default: output/<model>) */
    struct kd_pipe_diagnose diagnose;  /* diagnose: model is the student, data the inputs */
    /* ---- teacher checkpoints (pipelines/config_diagnose.c) ---- */
    size_t checkpoint_every;        /* train: `checkpoints: {every: N}` epochs; 0 = none */
    int follow;                     /* distill: `follow: checkpoints`: epoch e learns from the teacher's
                                       checkpoint of epoch e (or the nearest earlier one) */
    struct kd_pos checkpoints_pos, follow_pos;
    /* positions of the reference-carrying keys, for shape and reference errors */
    struct kd_pos model_pos, data_pos, gold_pos, teacher_pos, validation_pos;
};

struct kd_pipeline {
    char *path;              /* the file */
    char *text;              /* the file's text as read (recorded in the store) */
    char *dir;               /* folder of the file: relative paths resolve against it */
    char name[KD_PIPE_NAME_MAX];
    int version;
    uint64_t seed;
    int threads;             /* 0 = KD_THREADS or all cores */
    char *output;            /* output folder */
    char *store;             /* label store path (relative: under output) */
    struct kd_pipe_dataset *datasets;
    size_t n_datasets;
    struct kd_pipe_split *splits;
    size_t n_splits;
    struct kd_pipe_model *models;
    size_t n_models;
    struct kd_pipe_teacher *teachers;
    size_t n_teachers;
    struct kd_pipe_stage *stages;
    size_t n_stages;
};

/* Reads, parses and validates a pipeline file, after applying the
 * overrides `sets` ("key.path=value", e.g. "seed=3",
 * "stages.2.distill.temperature=8", "models.student.hidden=[64,64]").
 * Every problem found goes into diag (with its position) and the call
 * returns KD_ERR_CONFIG when there is at least one; p is then released. */
kd_status kd_pipeline_load(const char *path, const char *const *sets, size_t n_sets,
                           struct kd_pipeline *p, struct kd_diag *diag);
/* Same from text in memory (path used for messages and relative paths). */
kd_status kd_pipeline_parse(const char *text, size_t len, const char *path, const char *const *sets,
                            size_t n_sets, struct kd_pipeline *p, struct kd_diag *diag);
void kd_pipeline_release(struct kd_pipeline *p);

/* Look-ups by name; NULL when absent. */
const struct kd_pipe_model *kd_pipeline_model(const struct kd_pipeline *p, const char *name);
const struct kd_pipe_teacher *kd_pipeline_teacher(const struct kd_pipeline *p, const char *name);
const char *kd_stage_kind_name(enum kd_stage_kind kind);
/* The last train stage before stage `before` that trains `model` with
 * `checkpoints:`, or NULL: where a teacher's checkpoints come from. */
const struct kd_pipe_stage *kd_pipeline_checkpoints_of(const struct kd_pipeline *p, size_t before, const char *model);
/* The saved checkpoint epoch (1-based) a follower at epoch e (1-based) uses:
 * the checkpoint of epoch e, or the nearest earlier one, or (before the first)
 * the first. A train stage of E epochs saves every N epochs and at epoch E. */
size_t kd_pipeline_checkpoint_epoch(const struct kd_pipe_stage *train, size_t e);

/* ------------------------------------------------------------- the runner */

struct kd_run_options {
    int resume;                     /* continue the last unfinished run of this pipeline */
    int dry_run;                    /* plan only: sizes and teacher queries, no work */
    int quiet;                      /* no progress bars */
    volatile sig_atomic_t *stop;    /* set by a SIGINT handler: stop at a batch boundary */
    const char *const *sets;        /* the --set overrides the pipeline was loaded with: */
    size_t n_sets;                  /* recorded with its text, so a resume matches them too */
};

#define KD_RUN_MAX_ROWS 64
#define KD_RUN_MAX_LINES 128

/* One model's result in an evaluate stage. */
struct kd_run_eval_row {
    char stage[KD_PIPE_NAME_MAX], model[KD_PIPE_NAME_MAX], data[KD_PIPE_NAME_MAX];
    size_t n;
    double accuracy, loss;
    double agreement;               /* with the stage's teacher; NaN without one */
    int retrieval;                  /* a retrieval row: n queries, rank[] instead of accuracy */
    double rank[KD_RM_COUNT];       /* nDCG@10, MRR@10, Recall@10, Recall@100 */
};

/* What a run did, for the CLI's summary (or what it would do, for a dry run:
 * the plan's lines). */
struct kd_run_summary {
    int64_t run_id;
    char store[512], output[512];
    size_t queries, cached;         /* teacher queries made, answers served by the store */
    size_t stages_run, stages_skipped;
    double seconds;
    struct kd_run_eval_row rows[KD_RUN_MAX_ROWS];
    size_t n_rows;
    char artefacts[16][512];
    size_t n_artefacts;
    char lines[KD_RUN_MAX_LINES][256];  /* dry run: the plan, one line each */
    size_t n_lines;
    int failed_everywhere;          /* MPI: the failure reached every rank, each returns it (no rank waits) */
};

/* Runs (or, with dry_run, plans) a validated pipeline: loads its data, opens
 * its store, runs the stages in order and records the run in the store.
 * Errors name the stage and, where a key of the file is at fault, its
 * file:line:col. KD_ERR_INTERRUPTED when *stop was set (the run is recorded
 * as interrupted and `--resume` continues it). The BLAS thread count and
 * the quiet-progress switch it sets are restored before it returns, on
 * every path; the thread count it ran with is recorded with the run (the
 * run-level metric `blas_threads`: results depend on it). */
kd_status kd_pipeline_run(const struct kd_pipeline *p, const struct kd_run_options *opt,
                          struct kd_run_summary *sum, struct kd_error *err);

/* ------------------------------------------- retrieval (pipelines/retrieval.c) */

/* What the runner's retrieval stages and the CLI (kd search, kd eval) share. */

/* The name evaluate stages use for the BM25 baseline (not a `models:` entry). */
#define KD_PIPE_BM25 "bm25"

/* A document's text as the dual encoder reads it: its title, a space and
 * its text. n_docs strings; free with kd_retrieval_texts_free; NULL when out
 * of memory. */
char **kd_retrieval_doc_texts(const struct kd_beir *b);
void kd_retrieval_texts_free(char **texts, size_t n);
/* Features of every document of b (title and text). */
kd_status kd_retrieval_featurize_docs(const struct kd_text_settings *ts, const struct kd_beir *b,
                                      struct kd_features *out, struct kd_error *err);

/* A loaded split's judgements as the metrics read them: its n distinct
 * queries (indices into b's queries, in qrels order) and a CSR view over
 * them. Release with kd_retrieval_split_release. */
struct kd_retrieval_split {
    enum kd_beir_split split;
    size_t n;
    size_t *queries;               /* (n) */
    size_t *offsets, *doc;         /* (n + 1), (rows) */
    int32_t *rel;                  /* (rows) */
    struct kd_qrels_view view;
};
kd_status kd_retrieval_split_init(const struct kd_beir *b, enum kd_beir_split split, struct kd_retrieval_split *out,
                                  struct kd_error *err);
void kd_retrieval_split_release(struct kd_retrieval_split *s);
/* Unlabelled queries (pipelines/retrieval_queries.c): the queries of b that
 * no loaded qrels file mentions (b->query_judged 0), in b's order, as a
 * split whose rows hold no judgement (marked `split`). Release as above. */
kd_status kd_retrieval_split_unjudged(const struct kd_beir *b, enum kd_beir_split split,
                                      struct kd_retrieval_split *out, struct kd_error *err);
/* a's queries with their judgements, then b's: out (a->n + b->n), marked
 * as a's split. */
kd_status kd_retrieval_split_concat(const struct kd_retrieval_split *a, const struct kd_retrieval_split *b,
                                    struct kd_retrieval_split *out, struct kd_error *err);
/* The weight of each query of sp into w (sp->n): `unlabelled` for rows
 * i >= n_labelled and 1 for the others, times the weight that the file at
 * path (NULL: none) gives the query. The file: one `query-id<TAB>weight`
 * per line, an optional first line `query-id<TAB>weight`, blank lines
 * skipped, `\r\n` accepted; a weight is a finite number >= 0; a query not
 * in it keeps its weight. Errors name the file, line and column: a line
 * without two fields, a weight that is not such a number, an id
 * queries.jsonl lacks or that is not among sp's queries, an id given twice. */
kd_status kd_retrieval_query_weights(const char *path, const struct kd_beir *b, const struct kd_retrieval_split *sp,
                                     size_t n_labelled, float unlabelled, float *w, struct kd_error *err);

/* The dual encoder on a split: documents and the split's queries encoded
 * (features by ts), exact top k (0: 100), the metrics into *out (release
 * with kd_rank_metrics_release) and, when run_path is not NULL, a TREC run
 * file tagged tag. */
kd_status kd_retrieval_eval_dual(struct kd_dual *m, const struct kd_text_settings *ts, const struct kd_beir *b,
                                 enum kd_beir_split split, size_t k, const char *run_path, const char *tag,
                                 struct kd_rank_metrics *out, struct kd_error *err);
/* The same with the documents encoded by dm's document tower (features by
 * dts): a query tower served with another model's document index
 * (asymmetric EmbedDistill); dm NULL is kd_retrieval_eval_dual. */
kd_status kd_retrieval_eval_dual_docs(struct kd_dual *m, const struct kd_text_settings *ts, struct kd_dual *dm,
                                      const struct kd_text_settings *dts, const struct kd_beir *b,
                                      enum kd_beir_split split, size_t k, const char *run_path, const char *tag,
                                      struct kd_rank_metrics *out, struct kd_error *err);
/* Metrics (kd_rank_evaluate) of ranked (sp->n, k) lists of the split's
 * queries (document indices, SIZE_MAX past the end) into *out, and with
 * run_path a TREC run file of them (scores (n, k), tag). */
kd_status kd_retrieval_finish_ranking(const struct kd_beir *b, const struct kd_retrieval_split *sp,
                                      const size_t *ranked, const float *scores, size_t k, const char *run_path,
                                      const char *tag, struct kd_rank_metrics *out, struct kd_error *err);
/* b's corpus indexed in the store as corpus `corpus` (kept when unchanged). */
kd_status kd_retrieval_index(struct kd_store *st, const char *corpus, const struct kd_beir *b, int *built,
                             struct kd_error *err);
/* The same with BM25 from the store's index of b's corpus (kd_retrieval_index). */
kd_status kd_retrieval_eval_bm25(struct kd_store *st, const char *corpus, const struct kd_beir *b,
                                 enum kd_beir_split split, size_t k, const char *run_path, const char *tag,
                                 struct kd_rank_metrics *out, struct kd_error *err);
/* Trains m on the relevant pairs of a split: in-batch negatives and, with
 * negatives > 0, that many BM25 hard negatives per pair (the best-ranked
 * documents not judged relevant, from the store's index `corpus`). */
kd_status kd_retrieval_train_dual(struct kd_dual *m, const struct kd_text_settings *ts, const struct kd_beir *b,
                                  enum kd_beir_split split, size_t negatives, struct kd_store *st,
                                  const char *corpus, const struct kd_dual_train_config *tc,
                                  struct kd_train_result *res, struct kd_error *err);

/* -------------- re-ranking, cross-encoders, pair teachers (pipelines/retrieval_cross.c) */

/* BM25's top k of each query of a split: what a cross-encoder trains its
 * negatives from, what a pair teacher scores, what evaluation re-ranks.
 * Row i is the split's query i (sp->queries order). */
struct kd_retrieval_candidates {
    size_t n, k;
    size_t *queries;               /* (n) indices into b's queries */
    int64_t *docs;                 /* (n, k) document indices, best first, then -1 */
    float *bm25;                   /* (n, k) their -bm25() scores, then NaN */
};
/* BM25 top k of every query of sp from the store's index `corpus`
 * (kd_retrieval_index first), in slices between which *stop ends the work
 * (KD_ERR_INTERRUPTED); a progress bar. Release with
 * kd_retrieval_candidates_release. */
kd_status kd_retrieval_candidates_init(struct kd_store *st, const char *corpus, const struct kd_beir *b,
                                       const struct kd_retrieval_split *sp, size_t k, volatile sig_atomic_t *stop,
                                       struct kd_retrieval_candidates *out, struct kd_error *err);
void kd_retrieval_candidates_release(struct kd_retrieval_candidates *c);
/* How many (query, document) candidates c holds (entries >= 0). */
size_t kd_retrieval_candidates_count(const struct kd_retrieval_candidates *c);

/* What kd's cross-encoder reads of a data set (student/kd_student.h, "the
 * cross-encoder"): features of every query and document with the model's
 * settings ts, their word unigrams, the titles' word unigrams, and the id
 * sets. b is borrowed for the data's life. */
struct kd_retrieval_cross_data {
    const struct kd_beir *b;
    struct kd_text_settings text;
    struct kd_features q_all, q_words, d_all, d_words, t_words;
    struct kd_cross_side qs, ds;   /* row = b's query / document index */
};
kd_status kd_retrieval_cross_data_init(const struct kd_text_settings *ts, const struct kd_beir *b,
                                       struct kd_retrieval_cross_data *out, struct kd_error *err);
void kd_retrieval_cross_data_release(struct kd_retrieval_cross_data *cd);

/* Fits m's idf on the corpus and trains it on the relevant pairs of sp:
 * one list per (query, relevant document), that document then `negatives`
 * of the query's candidates c (for sp's queries) not judged relevant
 * (kd_cross_lists_build; random documents when too few; seeded by
 * tc->seed). */
kd_status kd_retrieval_train_cross(struct kd_cross *m, const struct kd_retrieval_cross_data *cd,
                                   const struct kd_retrieval_split *sp, const struct kd_retrieval_candidates *c,
                                   size_t negatives, const struct kd_cross_train_config *tc,
                                   struct kd_train_result *res, struct kd_error *err);
/* The model's score of every candidate of c into scores (n, k), NaN past
 * each list's end (the BM25 signal from c). */
kd_status kd_retrieval_cross_scores(struct kd_cross *m, const struct kd_retrieval_cross_data *cd,
                                    const struct kd_retrieval_candidates *c, float *scores, struct kd_error *err);

/* Each list of c sorted by scores (n, k): ranked (n, k) gets the document
 * indices best first (a tie keeps the candidates' order; NaN ranks last),
 * SIZE_MAX past the list's end; ranked_scores (n, k) (may be NULL) their
 * scores, -INFINITY past the end. */
kd_status kd_retrieval_rerank(const struct kd_retrieval_candidates *c, const float *scores, size_t *ranked,
                              float *ranked_scores, struct kd_error *err);
/* kd_retrieval_rerank then kd_retrieval_finish_ranking: the metrics of the
 * candidates of sp's queries re-ranked by scores (Recall@100 counts the
 * first k = c->k, so it is the candidates' own). */
kd_status kd_retrieval_eval_rerank(const struct kd_beir *b, const struct kd_retrieval_split *sp,
                                   const struct kd_retrieval_candidates *c, const float *scores, const char *run_path,
                                   const char *tag, struct kd_rank_metrics *out, struct kd_error *err);

/* A pair teacher's scores of every candidate of c into scores (n, k), NaN
 * past each list's end, through the store (kd_pair_teacher_score: answers
 * found there are not asked again; the pairs recorded under corpus with
 * their ids; a document read as kd_teacher_doc_text). */
kd_status kd_retrieval_teacher_scores(struct kd_pair_teacher *t, const char *corpus, const struct kd_beir *b,
                                      const struct kd_retrieval_candidates *c, size_t max_queries, float *scores,
                                      struct kd_label_stats *stats, volatile sig_atomic_t *stop,
                                      struct kd_error *err);

/* Labelled candidate lists: what retrieval distillation trains on. For the
 * split's query i (c->queries[i]), the documents c->docs[i * k ..] with
 * their BM25 scores and the teacher's scores teacher[i * k ..] (NaN past
 * the list's end). A rerun asks the teacher nothing: every score comes from
 * the store (docs/retrieval.md, "Teacher scores for distillation"). c is
 * borrowed; release with kd_retrieval_lists_release. */
struct kd_retrieval_lists {
    const struct kd_retrieval_candidates *c;
    float *teacher;                /* (n, k) */
};
kd_status kd_retrieval_lists_init(struct kd_pair_teacher *t, const char *corpus, const struct kd_beir *b,
                                  const struct kd_retrieval_candidates *c, size_t max_queries,
                                  struct kd_retrieval_lists *out, struct kd_label_stats *stats,
                                  volatile sig_atomic_t *stop, struct kd_error *err);
void kd_retrieval_lists_release(struct kd_retrieval_lists *l);

/* kd's cross-encoder as a pair teacher (a kd_pair_score_fn over this
 * context): it scores pairs of cd's data set, found by their ids, and reads
 * each pair's BM25 signal from candidates c (a pair outside its query's
 * candidates gets the query's lowest candidate score, as in training); a
 * query without candidates in c is an error. m, cd borrowed. Release with
 * kd_retrieval_cross_teacher_release. */
struct kd_retrieval_cross_teacher {
    struct kd_cross *m;
    const struct kd_retrieval_cross_data *cd;
    size_t cap;
    uint64_t *keys;                /* query * n_docs + doc, UINT64_MAX empty */
    float *vals;                   /* their BM25 scores */
    float *floor;                  /* (b's queries) lowest candidate score, NaN: no candidates */
};
kd_status kd_retrieval_cross_teacher_init(struct kd_retrieval_cross_teacher *t, struct kd_cross *m,
                                          const struct kd_retrieval_cross_data *cd,
                                          const struct kd_retrieval_candidates *c, struct kd_error *err);
void kd_retrieval_cross_teacher_release(struct kd_retrieval_cross_teacher *t);
kd_status kd_retrieval_cross_teacher_score(void *ctx, const struct kd_store_pair *pairs, size_t n, float *scores,
                                           struct kd_error *err);

#endif

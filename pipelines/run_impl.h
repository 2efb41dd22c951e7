/* The stage runner's private pieces.
 *
 * Who calls whom (no circles):
 *   run.c           the orderer: kd_pipeline_run -> the stage entry points
 *                   below and the services
 *   stage_*.c       one file per stage kind -> services only (and the
 *                   modules: sampling/, losses/, student/, teacher/, store/)
 *   run_services.c  finding models and teachers, opening teachers, teacher
 *                   answers through the store, metrics, artefacts, the
 *                   epoch log, the dry run's plan -> run_data.c
 *   run_data.c      datasets, building models, training settings -> modules
 */
#ifndef KD_RUN_IMPL_H
#define KD_RUN_IMPL_H

#include "data/kd_data.h"
#include "pipelines/kd_pipeline.h"
#include "student/kd_student.h"
#include "teacher/kd_teacher.h"

/* A dataset of the pipeline by name: a `datasets:` entry or a split part. */
struct kd_run_data {
    char name[KD_PIPE_NAME_MAX];
    char root[KD_PIPE_NAME_MAX];        /* the `datasets:` entry its rows come from */
    struct kd_dataset ds;               /* the features kd's networks read: scaled as `scale:` says */
    struct kd_tensor raw;               /* the features as in the file, owned, when ds is scaled and
                                           a stage reads it; empty otherwise: use kd_run_raw */
    struct kd_hash *keys;               /* (N) hashes of the raw rows of a scaled dataset no stage
                                           reads (it keeps no raw copy), owned; else NULL */
    struct kd_input_scale scale;        /* what was applied to ds (kind none: nothing) */
    const struct kd_pipe_dataset *def;  /* NULL for split parts */
    struct kd_pos pos;                  /* where it is defined */
};

/* d's features as in its file: what exec and table teachers are sent and
 * what every answer, example and selection is keyed by. For the datasets
 * stages read (a scaled dataset no stage reads has only d->keys). */
static inline const struct kd_tensor *kd_run_raw(const struct kd_run_data *d)
{
    return d->raw.data ? &d->raw : &d->ds.x;
}

/* Fewer optimizer steps per epoch than this get a warning in the run log. */
#define KD_RUN_FEW_STEPS 5

struct kd_run_datasets {
    struct kd_run_data *items;
    size_t n;
};

/* Loads every dataset of the pipeline, cuts the splits, and scales each as
 * its `scale:` says, keeping the raw features: pixels divides by 255;
 * standard uses one set of statistics per input width, fitted on the
 * training data (the datasets train and distill stages learn from) and
 * applied to every standard dataset of that width. Errors carry the
 * position of the definition at fault. */
kd_status kd_run_load_datasets(const struct kd_pipeline *p, struct kd_run_datasets *out, struct kd_error *err);
void kd_run_datasets_release(struct kd_run_datasets *d);
struct kd_run_data *kd_run_dataset(struct kd_run_datasets *d, const char *name);

/* "file:line:col: " for messages about a key of the pipeline. */
void kd_run_where(const struct kd_pipeline *p, struct kd_pos pos, char *buf, size_t n);

/* The network a `models:` entry describes, for inputs d and c classes.
 * Explicit `inputs:`/`classes:` must agree with d and c (errors point at them). */
kd_status kd_run_build_model(const struct kd_pipeline *p, const struct kd_pipe_model *m, size_t d, size_t c,
                             uint64_t seed, struct kd_mlp **out, struct kd_error *err);

/* A warning in the run log when n examples at `batch` make fewer than
 * KD_RUN_FEW_STEPS optimizer steps per epoch (150 gold labels at the
 * default batch of 256 are one step). */
void kd_run_note_steps(const struct kd_pipe_stage *s, size_t n_examples, size_t batch, size_t epochs);

/* Training settings from a stage (epochs, batch, optimizer, schedule). */
/* A stage's optimizer and learning-rate schedule (defaults kept where the
 * stage leaves them unset), the schedule's length from n_examples per epoch. */
void kd_run_optim_settings(const struct kd_pipe_stage *s, size_t n_examples, size_t batch, size_t epochs,
                           struct kd_optim_config *optim, struct kd_schedule *sched);
kd_status kd_run_train_config(const struct kd_pipeline *p, const struct kd_pipe_stage *s, size_t n_examples,
                              struct kd_train_config *tc, struct kd_error *err);

/* ------------------------------------- runner services (pipelines/run_services.c) */

struct run_model {
    const struct kd_pipe_model *def;
    struct kd_mlp *net;          /* NULL until a stage trains it */
    struct kd_dual *dual;        /* type dual: NULL until a stage trains it */
    struct kd_cross *cross;      /* type cross: NULL until a stage trains it */
    struct run_model *docs_from; /* dual distilled with frozen_documents: the teacher whose
                                    document tower serves its queries; else NULL */
};

/* The model whose document tower encodes m's documents: m's docs_from (set
 * to a model with a document tower of its own, kd_run_docs_from), else m. */
static inline const struct run_model *kd_run_doc_model(const struct run_model *m)
{
    return m->docs_from ? m->docs_from : m;
}
/* What docs_from becomes for a student distilled from teacher tm with
 * frozen_documents: the model whose document tower tm itself serves with,
 * so that docs_from never names a model without one. */
static inline struct run_model *kd_run_docs_from(struct run_model *tm)
{
    return tm && tm->docs_from ? tm->docs_from : tm;
}

/* A retrieval data set of the pipeline, loaded when a stage first needs it
 * (pipelines/stage_retrieval.c). */
struct run_beir {
    int loaded, indexed;         /* read; its corpus indexed in the store (for BM25) */
    struct kd_beir b;
    char name[KD_PIPE_NAME_MAX]; /* the dataset's name: its corpus's name in the store */
    /* kept for the later stages of the run (pipelines/stage_cross.c): each
     * split's judgements and its BM25 candidates (k of them), and what the
     * cross-encoder reads of the data set with one featuriser */
    int has_split[KD_BEIR_N_SPLITS];
    struct kd_retrieval_split sp[KD_BEIR_N_SPLITS];
    struct kd_retrieval_candidates cand[KD_BEIR_N_SPLITS];
    struct kd_retrieval_cross_data *cd;
    /* `unlabelled: unjudged` (pipelines/retrieval_queries.c): the queries
     * no qrels file names, and each split's judged queries followed by
     * them, with their BM25 candidates (mixed_cand: of mixed_k) */
    int has_unjudged, has_mixed[KD_BEIR_N_SPLITS];
    struct kd_retrieval_split unjudged, mixed[KD_BEIR_N_SPLITS];
    struct kd_retrieval_candidates unjudged_cand, mixed_cand[KD_BEIR_N_SPLITS];
};

struct run_teacher {
    const struct kd_pipe_teacher *def;
    struct kd_teacher *t;        /* opened on first use */
    struct kd_mlp *loaded;       /* kind model with weights: the loaded network, owned */
};

struct runner {
    const struct kd_pipeline *p;
    const struct kd_run_options *opt;
    struct kd_run_summary *sum;
    struct kd_run_datasets data;
    struct kd_store *store;
    int64_t run;
    struct run_model *models;
    struct run_teacher *teachers;
    struct run_beir *beir;       /* one per `datasets:` entry */
    /* An MPI job (pipelines/run_dist.c): this process is rank `rank` of
     * `ranks` (1 without mpirun). Ranks other than 0 write under
     * output/ranks/rank-K; `home` is rank 0's output folder, where every
     * rank reads models and checkpoints back on --resume. */
    int rank, ranks;
    const char *home;
    /* dry run: "teacher/dataset" pairs an earlier stage of the plan asks about */
    char planned[KD_RUN_MAX_LINES][2 * KD_PIPE_NAME_MAX + 2];
    size_t n_planned;
    /* dry run on retrieval data: the texts or pairs earlier stages will have
     * stored, a set per teacher (pipelines/plan_retrieval.c) */
    struct run_plan_set *plan_sets;
    size_t n_plan_sets;
};

/* A dry run's questions to one teacher (ns: "embed/T", or "pairs/T/DATA",
 * with "/k" when the teacher's version depends on BM25's depth): their keys,
 * sorted. */
struct run_plan_set {
    char ns[2 * KD_PIPE_NAME_MAX + 40];
    struct kd_hash *keys;
    size_t n;
};
void kd_run_plan_sets_free(struct runner *r);

struct run_model *kd_run_find_model(struct runner *r, const char *name);
struct run_teacher *kd_run_find_teacher(struct runner *r, const char *name);
/* mkdir -p */
kd_status kd_run_make_dirs(const char *path, struct kd_error *err);
/* The dataset a stage names (need_labels: it must have labels); errors at pos. */
kd_status kd_run_stage_data(struct runner *r, const struct kd_pipe_stage *s, const char *name, struct kd_pos pos,
                            int need_labels, struct kd_run_data **out, struct kd_error *err);
/* The teacher `name` opened for inputs of width d (its model must be trained). */
kd_status kd_run_open_teacher(struct runner *r, const struct kd_pipe_stage *s, const char *name, size_t d,
                              struct run_teacher **out, struct kd_error *err);
/* What teacher t is sent about d: the raw features (kd_run_raw) for exec and
 * table teachers and for model teachers that record their input scaling
 * (they scale each batch themselves); d's scaled features for a model file
 * saved before kd recorded the scaling. */
const struct kd_tensor *kd_run_teacher_x(const struct kd_teacher *t, const struct kd_run_data *d);
/* The teacher's logits (N, C) for all of dataset d, through the store; counts
 * the run's queries. out is initialised here. */
kd_status kd_run_teacher_answers(struct runner *r, const struct kd_pipe_stage *s, struct run_teacher *t,
                                 struct kd_run_data *d, struct kd_tensor *out, struct kd_error *err);
/* kd_run_teacher_answers in an MPI job of r->ranks > 1 (pipelines/run_dist.c):
 * every rank calls it; rank 0 stores, the others answer batches for it, and
 * every rank gets all the answers. */
kd_status kd_run_dist_answers(struct runner *r, const struct kd_pipe_stage *s, struct run_teacher *t,
                              struct kd_run_data *d, struct kd_tensor *out, struct kd_error *err);
/* The teacher's logits (N, C) for the rows of x (what t is sent; rows in
 * `dataset`, as kd_teacher_label records them) over the ranks of an MPI
 * job: every rank calls it with the same x; rank 0 looks the store up,
 * keeps to max_queries and stores, the others answer the batches it hands
 * out, and every rank gets all the answers and rank 0's counts in ls.
 * `what` names the inputs in messages ("dataset 'pool'"). Errors carry no
 * stage name. out is initialised here. before is the caller's status on its
 * way here (KD_OK, or a failure with its message in err; x, t and rows are
 * then not read): every rank returns an error when any of them failed
 * (kd_run_dist_agree). */
kd_status kd_run_dist_label(struct runner *r, kd_status before, struct run_teacher *t, const char *what,
                            const struct kd_tensor *x, const char *dataset, const size_t *rows, size_t max_queries,
                            struct kd_tensor *out, struct kd_label_stats *ls, struct kd_error *err);
/* kd_run_dist_label for inputs that are not rows of one dataset (generated
 * by TGT or augment): rank 0 records each answer with its origin in
 * origins (N, read on rank 0 only), as kd_teacher_label_origins does;
 * `label` names them in the teacher's messages and progress ("generated"). */
kd_status kd_run_dist_label_origins(struct runner *r, kd_status before, struct run_teacher *t, const char *what,
                                    const struct kd_tensor *x, const struct kd_store_origin *origins,
                                    const char *label, size_t max_queries, struct kd_tensor *out,
                                    struct kd_label_stats *ls, struct kd_error *err);
/* The hand-shake of every rank of an MPI job at a point all of them reach:
 * st is how this rank's work up to here went (its message in err). KD_OK
 * on every rank when it went well everywhere; otherwise an error on every
 * rank, so that none waits for a failed one: rank 0's status and message
 * when rank 0 failed, else each failed rank its own and the others
 * KD_ERR_IO ("N other rank(s) failed"); r->sum->failed_everywhere is
 * then set. st itself with one rank. */
kd_status kd_run_dist_agree(struct runner *r, kd_status st, struct kd_error *err);
/* Rank 0's status st (and its message in err) on every rank of an MPI job,
 * for what rank 0 alone did; st itself with one rank. */
kd_status kd_run_dist_outcome(struct runner *r, kd_status st, struct kd_error *err);
/* As kd_run_dist_outcome after work that rank 0 did alone (training an
 * active stage's student): the other ranks wait for it sleeping, leaving
 * their cores to rank 0. */
kd_status kd_run_dist_rank0_done(struct runner *r, kd_status st, struct kd_error *err);
/* Makes tc data-parallel over the ranks of an MPI job (nothing with one). */
void kd_run_dist_train(struct runner *r, struct kd_train_config *tc);
kd_status kd_run_record_metric(struct runner *r, int64_t stage, const char *name, int64_t step, double value,
                               struct kd_error *err);
/* Saves a trained model where later stages (and --resume) find it. */
kd_status kd_run_save_model(struct runner *r, const char *name, struct kd_mlp *net, struct kd_error *err);
void kd_run_model_path(struct runner *r, const char *model, char *buf, size_t n);
/* output/checkpoints/<model>/epoch-<e>.safetensors (e 1-based; pipelines/stage_train.c). */
void kd_run_checkpoint_path(struct runner *r, const char *model, size_t e, char *buf, size_t n);
/* The logits (N, C) of teacher checkpoint `epoch` of `model` for all of d,
 * through the store: the checkpoint is a model teacher of its own, named
 * "<teacher>@epoch-<e>" and keyed by its fingerprint. out is initialised here. */
kd_status kd_run_checkpoint_answers(struct runner *r, const struct kd_pipe_stage *s, const char *teacher,
                                    const char *model, size_t epoch, struct kd_run_data *d, struct kd_tensor *out,
                                    struct kd_error *err);
kd_status kd_run_add_artefact(struct runner *r, const char *path, const char *format, struct kd_error *err);

/* The per-epoch callback of training stages: logs and records train_loss. */
struct kd_run_epoch_log {
    struct runner *r;
    int64_t stage;
    const char *name;
};
kd_status kd_run_on_epoch(void *ctx, struct kd_mlp *m, size_t epoch, double loss, struct kd_error *err);

/* Dry run: one line of the plan; what a teacher would be asked about a dataset. */
void kd_run_plan_line(struct runner *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void kd_run_plan_queries(struct runner *r, const struct kd_pipe_stage *s, const char *teacher, struct kd_run_data *d);
/* Dry run: the lines of stage i of the plan, with what its teachers would
 * be asked (the planned spend of an active stage's budget). */
void kd_run_plan_stage(struct runner *r, size_t i, const struct kd_pipe_stage *s);

/* ------------------------------------------- stages (pipelines/stage_*.c) */

/* Each runs one stage of its kind; sid is the stage's row in the store. */
kd_status kd_run_stage_train(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err);
kd_status kd_run_stage_label(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err);
/* A distill stage without `select:` or `reweight:`. */
kd_status kd_run_stage_distill(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err);
/* A distill stage with `select:` or `reweight:`: rounds of select -> label ->
 * reweight -> train, every choice and weight recorded in the store. */
kd_status kd_run_stage_active(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err);
kd_status kd_run_stage_evaluate(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err);
kd_status kd_run_stage_export(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err);
/* diagnose (pipelines/stage_diagnose.c): the stage, and its dry-run plan lines. */
kd_status kd_run_stage_diagnose(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err);
void kd_run_plan_diagnose(struct runner *r, size_t i, const struct kd_pipe_stage *s);

/* ------------------------------- retrieval stages (pipelines/stage_retrieval.c) */

/* Whether a stage works on a retrieval data set (a dual encoder, a
 * cross-encoder, bm25 or a pair teacher; a distill stage into a dual encoder). */
int kd_run_is_retrieval(const struct runner *r, const struct kd_pipe_stage *s);
/* The retrieval data set a stage names, read (and converted from WordNet)
 * on first use; with `index`, its corpus indexed in the store for BM25. */
kd_status kd_run_stage_beir(struct runner *r, const struct kd_pipe_stage *s, int index, struct run_beir **out,
                            struct kd_error *err);
/* train of a dual encoder; evaluate on a retrieval data set; export of a dual encoder. */
kd_status kd_run_stage_train_dual(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err);
kd_status kd_run_stage_evaluate_retrieval(struct runner *r, const struct kd_pipe_stage *s, int64_t sid,
                                          struct kd_error *err);
kd_status kd_run_stage_export_dual(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err);
/* distill on a retrieval data set (pipelines/stage_retrieval_distill.c): a
 * dual encoder from a pair teacher's scores of BM25's top k, through the store. */
kd_status kd_run_stage_distill_dual(struct runner *r, const struct kd_pipe_stage *s, int64_t sid,
                                    struct kd_error *err);
/* The same with `select:` (pipelines/stage_retrieval_select.c): the
 * queries whose lists the teacher scores are chosen in rounds by the
 * student being trained, within a budget of queries. */
kd_status kd_run_stage_distill_dual_select(struct runner *r, const struct kd_pipe_stage *s, int64_t sid,
                                           struct kd_error *err);
/* Dry run: what such a stage would choose and ask. */
void kd_run_plan_retrieval_select(struct runner *r, const struct kd_pipe_stage *s);
/* A dual encoder's weights into the run's models folder (the file --resume
 * reads), recorded as an artefact. */
kd_status kd_run_save_dual(struct runner *r, const char *model, const struct kd_dual *dual,
                           const struct kd_text_settings *ts, struct kd_error *err);
/* Dry run: the plan lines of a retrieval stage. */
void kd_run_plan_retrieval(struct runner *r, size_t i, const struct kd_pipe_stage *s);
/* Dry run (pipelines/plan_retrieval.c): the plan lines of what the teacher
 * of a label, distill or evaluate stage on a retrieval data set would be asked, added
 * to the summary's counts. */
void kd_run_plan_retrieval_queries(struct runner *r, const struct kd_pipe_stage *s);
/* Dry run: BM25's top k of the split as this run or an earlier one kept
 * them (OUTPUT/cache), into out (release it); 0 when none is kept. Never
 * searches nor writes. */
/* As kd_run_candidates_kept for any list of queries sp (the unjudged ones):
 * only what an earlier run kept on disk. */
int kd_run_candidates_kept_of(struct runner *r, struct run_beir *rb, const struct kd_retrieval_split *sp, size_t k,
                              struct kd_retrieval_candidates *out);
/* out = a's candidates, then b's (same k); out's earlier contents released. */
kd_status kd_run_concat_candidates(const struct kd_retrieval_candidates *a, const struct kd_retrieval_candidates *b,
                                   struct kd_retrieval_candidates *out, struct kd_error *err);
int kd_run_candidates_kept(struct runner *r, struct run_beir *rb, enum kd_beir_split split, size_t k,
                           struct kd_retrieval_candidates *out);
/* --resume: a finished dual-encoder training stage's model back from its file. */
kd_status kd_run_restore_dual(struct runner *r, const struct kd_pipe_stage *s, struct kd_error *err);
void kd_run_beir_release(struct runner *r);

/* ------------- cross-encoders and pair teachers (pipelines/stage_cross.c) */

/* A split's judgements, kept for the run. */
kd_status kd_run_split(struct run_beir *rb, enum kd_beir_split split, const struct kd_retrieval_split **out,
                       struct kd_error *err);
/* BM25's top k for every query of a split, computed once per run (the
 * first stage that needs them) and kept for the later stages. */
kd_status kd_run_candidates(struct runner *r, struct run_beir *rb, enum kd_beir_split split, size_t k,
                            const struct kd_retrieval_candidates **out, struct kd_error *err);
/* The same for the queries of sp into *c (kept by the caller: searched again
 * only when c holds another k; the file cache as above); label names sp in
 * the log. */
kd_status kd_run_candidates_of(struct runner *r, struct run_beir *rb, const struct kd_retrieval_split *sp,
                               const char *label, size_t k, struct kd_retrieval_candidates *c, struct kd_error *err);
/* The queries a retrieval distill (or label) stage works on
 * (pipelines/retrieval_queries.c): its split's judged queries, then with
 * `unlabelled: unjudged` the data set's queries no qrels file mentions
 * (rows without judgements); *n_labelled = the split's. Kept in rb. */
kd_status kd_run_stage_split(struct runner *r, struct run_beir *rb, const struct kd_pipe_stage *s,
                             const struct kd_retrieval_split **sp, size_t *n_labelled, struct kd_error *err);
/* BM25's top k of those queries, row i for row i of the stage's split. */
kd_status kd_run_stage_bm25(struct runner *r, struct run_beir *rb, const struct kd_pipe_stage *s, size_t k,
                            const struct kd_retrieval_candidates **c, struct kd_error *err);
/* A stage's queries before any work: KD_ERR_CONFIG when the split has none
 * to learn from (with `unlabelled`, neither judged nor unjudged ones), or
 * `unlabelled: unjudged` finds none. */
kd_status kd_run_check_queries(const struct kd_pipe_stage *s, const struct run_beir *rb,
                               const struct kd_retrieval_split *sp, size_t n_labelled, struct kd_error *err);
/* The lists a stage trains on: KD_ERR_CONFIG when alpha < 1 asks for gold
 * that no list has (only unlabelled queries, or none of their candidates
 * judged relevant) in a stage with `unlabelled`, or every weight is 0.
 * w (n) or NULL. */
kd_status kd_run_check_lists(const struct kd_pipe_stage *s, size_t n, size_t unlabelled, size_t golds,
                             const float *w, struct kd_error *err);
/* Dry run: the plan line counting a distill stage's labelled and
 * unlabelled queries (the data set is read when beir_dir holds it). */
void kd_run_plan_stage_queries(struct runner *r, const struct kd_pipe_stage *s, const char *beir_dir);
/* The weight of each row of the stage's split sp (`query_weights`), in
 * *w (sp->n, free() it); *w NULL when the stage has no query_weights. */
kd_status kd_run_stage_weights(const struct kd_pipe_stage *s, const struct run_beir *rb,
                               const struct kd_retrieval_split *sp, size_t n_labelled, float **w,
                               struct kd_error *err);
/* A pair teacher of the pipeline opened for a stage on rb, with the
 * candidates c it will score (a kd cross-encoder reads its BM25 signal
 * from them); closed by kd_run_pair_teacher_close. */
struct run_pair_teacher {
    struct kd_pair_teacher *t;
    struct kd_cross *loaded;                 /* kind model with weights: owned */
    struct kd_retrieval_cross_data *cd;      /* borrowed from rb, or owned (own_cd) */
    int own_cd;
    struct kd_retrieval_cross_teacher ct;    /* kind model: the scoring context */
};
kd_status kd_run_pair_teacher_open(struct runner *r, const struct kd_pipe_stage *s, const char *name,
                                   struct run_beir *rb, const struct kd_retrieval_candidates *c,
                                   struct run_pair_teacher *out, struct kd_error *err);
void kd_run_pair_teacher_close(struct run_pair_teacher *pt);
/* The lists stage s (label or distill) has its teacher score: BM25's top
 * s->k of its split, plus `candidates:`'s model and random documents (then
 * in *own, released by the caller with kd_retrieval_candidates_release
 * after lists), scored by the stage's teacher through the store
 * (pipelines/retrieval_lists.c). */
kd_status kd_run_stage_lists(struct runner *r, const struct kd_pipe_stage *s, struct kd_retrieval_candidates *own,
                             struct kd_retrieval_lists *lists, struct kd_label_stats *ls, struct kd_error *err);
/* The candidates alone: *bm BM25's (the run's), *c the lists (bm or own). */
kd_status kd_run_stage_candidates(struct runner *r, const struct kd_pipe_stage *s,
                                  struct kd_retrieval_candidates *own, const struct kd_retrieval_candidates **bm,
                                  const struct kd_retrieval_candidates **c, struct kd_error *err);
/* EmbedDistill's dual-encoder teacher tm on the lists c of split sp: its
 * document embeddings ed (n_docs, Et), query embeddings eq (sp->n, Et) and
 * its scores of the lists (lists->c = c) (pipelines/retrieval_embed.c). */
kd_status kd_run_embed_teacher(const struct kd_pipe_stage *s, struct run_model *tm,
                               struct run_beir *rb, const struct kd_retrieval_split *sp,
                               const struct kd_retrieval_candidates *c, struct kd_retrieval_lists *lists,
                               struct kd_tensor *eq, struct kd_tensor *ed, struct kd_error *err);
/* EmbedDistill's exec teacher (kind exec, `answers: embeddings`): as
 * kd_run_embed_teacher, its embeddings of the corpus (ed) and of the split's
 * queries (eq) through the store (kd_text_teacher_embed: a rerun asks
 * nothing), and its scores of the lists, the dot products of the two. */
kd_status kd_run_embed_exec(struct runner *r, const struct kd_pipe_stage *s, struct run_beir *rb,
                            const struct kd_retrieval_split *sp, const struct kd_retrieval_candidates *c,
                            struct kd_retrieval_lists *lists, struct kd_tensor *eq, struct kd_tensor *ed,
                            struct kd_error *err);
/* The stage's teacher when it is an exec teacher that embeds texts, or NULL. */
const struct kd_pipe_teacher *kd_run_embed_exec_def(const struct runner *r, const struct kd_pipe_stage *s);
/* The dual encoder a distill stage's teacher uses (EmbedDistill), or NULL. */
struct run_model *kd_run_dual_teacher(struct runner *r, const struct kd_pipe_stage *s);
kd_status kd_run_stage_train_cross(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err);
/* label on a retrieval data set: the teacher scores BM25's top k of every query of the split. */
kd_status kd_run_stage_label_pairs(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err);
/* The metrics of BM25's top k of the stage's split re-ranked by cross-encoder
 * model `name` (teacher 0) or pair teacher `name` (teacher 1), with the run file. */
kd_status kd_run_eval_rerank(struct runner *r, const struct kd_pipe_stage *s, struct run_beir *rb, const char *name,
                             int teacher, const char *run_path, struct kd_rank_metrics *out, struct kd_error *err);
kd_status kd_run_restore_cross(struct runner *r, const struct kd_pipe_stage *s, struct kd_error *err);
kd_status kd_run_export_cross(struct runner *r, const struct kd_pipe_stage *s, const char *path, struct kd_error *err);

#endif

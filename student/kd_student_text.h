/*
 * kd student, the text models: the embedding bag over hashed text features
 * with sparse gradients and sparse optimizers, dual encoders and their
 * distillation (retrieval losses, EmbedDistill), exact top-k search,
 * retrieval metrics and the cross-encoder. Part of kd_student.h, which
 * includes this file at its end: include either.
 */
#ifndef KD_STUDENT_TEXT_H
#define KD_STUDENT_TEXT_H

#include "student/kd_student.h"

/* ----------------------------------------------------------- embedding bag */

/* A table of hashed-feature embeddings (torch.nn.EmbeddingBag, mode "mean"):
 * the vector of text i is the mean of the rows of its bucket ids
 *   out_i (E) = (1 / n_i) sum_{j in text i} W[ids_j]
 * (a repeated id counts as often as it occurs). A text with no ids gives the
 * zero vector, as EmbeddingBag does for an empty bag. Training touches only
 * the rows a batch uses: the gradient is sparse (unique rows plus one
 * gradient row each), and the sparse optimizers below update only those rows,
 * so a step costs what the batch's texts cost, not what the table costs. */
struct kd_embedbag {
    uint32_t buckets;
    size_t E;
    float *w;               /* (buckets, E), owned */
};
/* Allocates the table with rows drawn N(0, 1/E) from rng (a mean of a few
 * rows then starts with a norm near 1 or less). Release with kd_embedbag_release. */
kd_status kd_embedbag_init(struct kd_embedbag *bag, uint32_t buckets, size_t E, struct kd_rng *rng,
                           struct kd_error *err);
void kd_embedbag_release(struct kd_embedbag *bag);

/* out (B, E) = mean-pooled rows for texts idx[0..B) of f (idx NULL: texts
 * 0..B-1). Ids must be < bag->buckets (the caller checks once, with
 * kd_embedbag_check). */
void kd_embedbag_forward(const struct kd_embedbag *bag, const struct kd_features *f, const size_t *idx,
                         size_t B, float *out);
/* KD_ERR_ARG naming the text and the id when an id is >= buckets, or when the
 * CSR offsets are not non-decreasing up to nnz. */
kd_status kd_embedbag_check(const struct kd_embedbag *bag, const struct kd_features *f, const char *what,
                            struct kd_error *err);

/* A sparse gradient of a (buckets, E) table: rows[0..n) distinct, in
 * first-touch order, with their gradient rows g (n, E). slot maps a bucket to
 * its place in rows (or -1), so accumulation needs no search and no sort. */
struct kd_sparse_grad {
    size_t n, cap, E;
    uint32_t buckets;
    uint32_t *rows;         /* (cap) */
    float *g;               /* (cap, E) */
    int32_t *slot;          /* (buckets) */
};
/* Room for up to cap distinct rows (at most buckets). */
kd_status kd_sparse_grad_init(struct kd_sparse_grad *sg, uint32_t buckets, size_t E, size_t cap,
                              struct kd_error *err);
void kd_sparse_grad_release(struct kd_sparse_grad *sg);
/* Forgets the rows (cost: the rows held, not the table). */
void kd_sparse_grad_clear(struct kd_sparse_grad *sg);
/* Upper bound of the distinct rows that texts idx[0..B) of f touch (their id
 * count, capped at buckets). */
size_t kd_embedbag_rows_bound(const struct kd_features *f, const size_t *idx, size_t B, uint32_t buckets);
/* Accumulates dL/dW for the forward of texts idx[0..B) from dout (B, E):
 *   dW[ids_j] += dout_i / n_i  for every id j of text i
 * into sg (which is not cleared first, so several passes can add up).
 * The caller reserves room: sg->cap must be >= the distinct rows in sg
 * afterwards (kd_embedbag_rows_bound gives a bound). */
void kd_embedbag_backward(const struct kd_features *f, const size_t *idx, size_t B, const float *dout,
                          struct kd_sparse_grad *sg);

/* Sparse optimizers over a (buckets, E) table: SGD (p -= lr g on the rows
 * touched) and Adam as torch.optim.SparseAdam ("lazy" Adam): only the touched
 * rows' moments are updated, with the bias correction of the table's step
 * count t:
 *   m_r = b1 m_r + (1 - b1) g_r;  v_r = b2 v_r + (1 - b2) g_r^2
 *   p_r -= lr sqrt(1 - b2^t) / (1 - b1^t) * m_r / (sqrt(v_r) + eps)
 * Momentum, weight decay and clipping are not supported for sparse
 * gradients (KD_ERR_ARG), as in PyTorch. */
struct kd_sparse_optim {
    struct kd_optim_config cfg;
    uint32_t buckets;
    size_t E;
    float *m, *v;           /* (buckets, E) Adam moments; NULL for SGD */
    uint64_t t;
};
kd_status kd_sparse_optim_init(struct kd_sparse_optim *o, const struct kd_optim_config *cfg, uint32_t buckets,
                               size_t E, struct kd_error *err);
/* Updates the rows of table (buckets, E) listed in sg at rate lr. */
void kd_sparse_optim_step(struct kd_sparse_optim *o, float *table, const struct kd_sparse_grad *sg, float lr);
void kd_sparse_optim_release(struct kd_sparse_optim *o);

/* ------------------------------------------------------------ dual encoder */

/* Two towers, query and document, each
 *   embedding bag (buckets, E) -> dense layers (optional) -> L2 norm (optional)
 * and a score s(q, d) = <q, d> (KD_SCORE_DOT) or cos(q, d) / temperature
 * (KD_SCORE_COSINE: the outputs are L2-normalised whatever `normalize` says).
 * Dense layers: hidden[0..n_layers) are the output widths; the activation
 * follows every layer but the last, which is linear. Shared towers are one
 * set of parameters used for both sides.
 *
 *     struct kd_dual_config cfg;
 *     kd_dual_config_init(&cfg);                  // 2^18 buckets, E 64, no layers, dot
 *     struct kd_dual *m;
 *     kd_dual_new(&cfg, 42, &m, &err);
 *     struct kd_dual_train_config tc;
 *     kd_dual_train_config_init(&tc);
 *     struct kd_pairs p = {qi, di, n, NULL, 0};  // gold (query, document) pairs
 *     kd_dual_train(m, &queries, &docs, &p, &tc, NULL, &err);
 *     kd_dual_encode(m, KD_SIDE_DOC, &docs, &doc_emb, &err);   // (N, kd_dual_dim(m))
 *     kd_dual_free(m);
 */
#define KD_DUAL_MAX_LAYERS 8

enum kd_dual_score { KD_SCORE_DOT = 0, KD_SCORE_COSINE };
enum kd_side { KD_SIDE_QUERY = 0, KD_SIDE_DOC = 1 };

const char *kd_dual_score_name(enum kd_dual_score s); /* "dot", "cosine" */
kd_status kd_dual_score_parse(const char *name, enum kd_dual_score *out, struct kd_error *err);

struct kd_dual_config {
    uint32_t buckets;                        /* table rows (the featuriser's 2^k) */
    size_t E;                                /* embedding width */
    size_t n_layers;                         /* dense layers per tower, 0 to KD_DUAL_MAX_LAYERS */
    size_t hidden[KD_DUAL_MAX_LAYERS];       /* their output widths */
    enum kd_act act;                         /* between dense layers */
    int normalize;                           /* L2-normalise each tower's output */
    enum kd_dual_score score;
    float temperature;                       /* KD_SCORE_COSINE: scores are cos / temperature */
    int shared;                              /* one tower for both sides */
};
/* 2^18 buckets, E 64, no dense layers, ReLU, no normalisation, dot, temperature 0.05, separate towers. */
void kd_dual_config_init(struct kd_dual_config *cfg);
/* KD_ERR_ARG naming the field when a setting is out of range. */
kd_status kd_dual_config_check(const struct kd_dual_config *cfg, struct kd_error *err);

/* One tower's parameters: its table and views of its dense layers in the
 * model's params/grads. */
struct kd_tower {
    struct kd_embedbag bag;
    size_t n_layers;
    struct kd_dense layers[KD_DUAL_MAX_LAYERS];
};

/* The workspace of one pass through a tower for up to `cap` rows. A pass can
 * hold two segments (queries then documents, when the towers are shared, so
 * the two sides go through the dense layers as one GEMM). */
struct kd_tower_pass {
    size_t cap, rows;
    float *bag;                         /* (cap, E) pooled embeddings */
    float *pre[KD_DUAL_MAX_LAYERS];     /* (cap, out_l) */
    float *act[KD_DUAL_MAX_LAYERS];     /* (cap, out_l), hidden layers */
    float *out;                         /* (rows, O) tower outputs: points at normed, the last
                                           layer's pre-activations or bag */
    float *normed;                      /* (cap, O) when normalising */
    float *inv_norm;                    /* (cap) 1 / ||x|| before normalisation */
    float *dout, *dbuf[2];              /* (cap, max width) backward scratch */
    size_t n_seg;
    struct { const struct kd_features *f; const size_t *idx; size_t row0, n; } seg[2];
    struct kd_sparse_grad sg;           /* the table's gradient after backward */
};

struct kd_dual {
    struct kd_dual_config cfg;
    struct kd_tower tower[2];           /* query, document; tower[1] unused when shared */
    float *params, *grads;              /* dense layers of both towers, one allocation each */
    size_t n_params;
    size_t dim;                         /* O: output width (E or the last hidden width) */
    /* workspace (kd_dual_reserve): passes[0] queries (or both sides when
     * shared), passes[1] documents; scores (Bq, Bd) and dscores */
    struct kd_tower_pass pass[2];
    size_t max_q, max_d, rows_cap[2];
    float *scores, *dqd;                /* (Bq, Bd); (Bq + Bd, O) dL/d outputs, queries then documents */
    size_t last_q, last_d;
    /* EmbedDistill's projection into the teacher's space (student/dual_distill.c),
     * saved with the model: proj = weight (proj_out, O) then bias (proj_out);
     * NULL and 0 without one. Not used to score. */
    float *proj, *proj_grad;
    size_t proj_out;
};

/* Builds a model with weights drawn from seed (tables N(0, 1/E), dense layers
 * He or Xavier as the MLP, biases 0). Free with kd_dual_free. */
kd_status kd_dual_new(const struct kd_dual_config *cfg, uint64_t seed, struct kd_dual **out,
                      struct kd_error *err);
void kd_dual_free(struct kd_dual *m);
static inline size_t kd_dual_dim(const struct kd_dual *m) { return m->dim; }
/* The tower a side uses (the query tower for both when shared). */
static inline struct kd_tower *kd_dual_tower(struct kd_dual *m, enum kd_side side)
{
    return m->cfg.shared ? &m->tower[0] : &m->tower[side];
}
/* Workspace for batches of up to Bq queries and Bd documents whose texts
 * touch at most rows_q / rows_d distinct table rows (the sparse gradients'
 * room; kd_embedbag_rows_bound). Done once before training. */
kd_status kd_dual_reserve(struct kd_dual *m, size_t Bq, size_t Bd, size_t rows_q, size_t rows_d,
                          struct kd_error *err);
/* Scores S (Bq, Bd) of queries qidx[0..Bq) of fq against documents
 * didx[0..Bd) of fd, in the workspace (valid until the next forward). The
 * features and index arrays are borrowed until backward. Within the reserved
 * sizes, no allocation. */
const float *kd_dual_forward(struct kd_dual *m, const struct kd_features *fq, const size_t *qidx, size_t Bq,
                             const struct kd_features *fd, const size_t *didx, size_t Bd);
/* From dL/dS (Bq, Bd) of the last forward: dense gradients into m->grads
 * (overwritten) and each table's sparse gradient into m->pass[p].sg (cleared
 * first; with shared towers pass[0] holds the only one). */
void kd_dual_backward(struct kd_dual *m, const float *dscores);
/* The tower outputs of the last forward: q (Bq, O) and d (Bd, O), in the
 * workspace (valid until the next forward). */
void kd_dual_outputs(const struct kd_dual *m, const float **q, const float **d);
/* Backward from dL/d outputs directly, dout (Bq + Bd, O): queries, then
 * documents (for losses on the embeddings themselves); gradients as
 * kd_dual_backward. kd_dual_backward is this with dout = the score GEMMs'. */
void kd_dual_backward_outputs(struct kd_dual *m, const float *dout);
/* Embeddings (f->n, O) of every text of f through one side's tower, in
 * batches of up to 1024 (own workspace, allocated once per call). */
kd_status kd_dual_encode(struct kd_dual *m, enum kd_side side, const struct kd_features *f,
                         struct kd_tensor *out, struct kd_error *err);

/* Gold training pairs: query texts q[i] of the query features with their
 * relevant document texts d[i]; optionally n_hard hard negatives per pair,
 * hard (n, n_hard) document texts, appended to the batch's documents. */
struct kd_pairs {
    const size_t *q, *d;
    size_t n;
    const size_t *hard;
    size_t n_hard;
};

struct kd_dual_train_config {
    size_t epochs, batch;            /* batch: pairs per step */
    struct kd_optim_config optim;    /* dense layers (Adam, AdamW or SGD) */
    struct kd_optim_config table;    /* tables: sparse Adam or sparse SGD */
    struct kd_schedule sched;        /* scales both rates */
    uint64_t seed;                   /* shuffling */
    const char *label;               /* progress bar text */
    volatile sig_atomic_t *stop;     /* non-zero: stop at a batch boundary */
};
/* 5 epochs, batch 128, Adam 1e-3 for the layers, sparse Adam 1e-2 for the tables, seed 1. */
void kd_dual_train_config_init(struct kd_dual_train_config *tc);
/* Trains with in-batch negatives: each step takes `batch` pairs (shuffled
 * every epoch with tc->seed), scores every query against the batch's
 * documents -- its positives, then the hard negatives -- and minimises
 * kd_loss_inbatch_softmax (losses/kd_losses.h) with each query's positive on
 * the diagonal. A document that is also another query's positive in the same
 * batch counts as a negative for it (as in the usual in-batch training).
 * Workspaces are allocated once, before the first step. */
kd_status kd_dual_train(struct kd_dual *m, const struct kd_features *fq, const struct kd_features *fd,
                        const struct kd_pairs *pairs, const struct kd_dual_train_config *tc,
                        struct kd_train_result *result, struct kd_error *err);

/* safetensors with PyTorch-style names and shapes:
 *   query.bag.weight [buckets, E]            (an nn.EmbeddingBag table)
 *   query.layers.<i>.weight [out, in], query.layers.<i>.bias [out]
 *   doc.bag.weight ...                       (absent when the towers are shared)
 * metadata: kd_format=dual_encoder, kd_version, buckets, embedding_dim,
 * hidden ("256,128" or ""), activation, normalize (0/1), score (dot/cosine),
 * temperature, shared (0/1), and featurizer = the caller's featuriser settings
 * string (may be NULL: then ""). (student/dual_io.c) */
kd_status kd_dual_save(const struct kd_dual *m, const char *path, const char *featurizer, struct kd_error *err);
/* Reads a file written by kd_dual_save; refuses, naming the file and what is
 * wrong, a missing or bad setting, a tensor of the wrong shape, a missing
 * tensor and a tensor the settings do not explain. When featurizer is not
 * NULL it receives a copy of the featuriser settings (free with free()). */
kd_status kd_dual_load(const char *path, struct kd_dual **out, char **featurizer, struct kd_error *err);

/* One tower of a dual encoder as an ONNX model (opset KD_ONNX_OPSET). Inputs,
 * padded to the longest text of the batch:
 *   ids   int64 (batch, length)   each text's bucket ids, in the featuriser's
 *                                 order, then any valid id (0) as padding
 *   mask  float32 (batch, length) 1 for a feature, 0 for padding
 * For texts featurised into kd_features (ids, offsets): row i holds
 * ids[offsets[i] .. offsets[i + 1]) and mask 1 over that many columns.
 * Output "embedding" float32 (batch, O): kd_dual_encode's rows (mean of the
 * table rows, dense layers, L2 normalisation when the model normalises).
 * featurizer (the settings line kd_dual_load returns; may be NULL) goes into
 * the metadata with the model's settings. With shared towers both sides give
 * the same graph. Written atomically. (student/export_onnx.c) */
kd_status kd_dual_export_onnx(const struct kd_dual *m, enum kd_side side, const char *featurizer,
                              const char *path, struct kd_error *err);

/* ------------------------------------------ dual-encoder distillation */

/* Training a dual encoder from a teacher (student/dual_distill.c;
 * docs/methods.md "Cross-encoder to dual-encoder" and "EmbedDistill"):
 * each query comes with a list of L candidate documents and the teacher's
 * scores for them; the student learns the losses of losses/kd_losses.h
 * (kd_loss_rank_distill_inbatch), optionally plus EmbedDistill's embedding
 * matching against a dual-encoder teacher's embeddings.
 *
 *     struct kd_cand_lists cl = {n, L, q, doc, t, rel, NULL};
 *     struct kd_dual_distill_config dc;
 *     kd_dual_distill_config_init(&dc);
 *     dc.loss.loss = KD_RLOSS_M3SE;
 *     kd_dual_distill(student, &queries, &docs, &cl, &dc, NULL, &err);
 */
struct kd_cand_lists {
    size_t n, L;            /* lists, candidates per list */
    const size_t *q;        /* (n) query texts */
    const size_t *doc;      /* (n, L) candidate document texts */
    const float *t;         /* (n, L) the teacher's scores */
    const int8_t *rel;      /* (n, L) 1 = relevant (gold), 0 = not; NULL: no gold at all */
    const float *w;         /* (n) per-query weights, or NULL (all 1) */
};

struct kd_dual_distill_config {
    struct kd_dual_train_config train;  /* epochs, batch (lists per step), optimizers, seed */
    struct kd_rank_distill loss;        /* the score loss, its parameters and alpha (gold mix) */
    float score_weight;                 /* weight of the score loss; 0 = embedding matching only */
    /* EmbedDistill: teacher embeddings of every query text (fq->n, Et) and
     * every document text (fd->n, Et), or NULL; lambda_q, lambda_d weigh
     * mean ||P(E_s(x)) - E_t(x)||_2 over the batch's queries and candidates.
     * P is the model's projection (created (Et, O) from the training seed when
     * Et != O and the model has none; the identity when Et == O and none). */
    const struct kd_tensor *teacher_q, *teacher_d;
    float lambda_q, lambda_d;
    /* Asymmetric EmbedDistill: the documents' embeddings (fd->n, O) from a
     * frozen document tower (the teacher's, kd_dual_encode): never
     * recomputed nor changed; only the student's (shared) tower trains, as
     * the query tower. teacher_d and lambda_d are then not used. */
    const struct kd_tensor *frozen_docs;
};
/* kd_dual_train_config_init's training settings, kd_rank_distill_init's
 * loss, score weight 1, no embedding matching, no frozen documents. */
void kd_dual_distill_config_init(struct kd_dual_distill_config *c);

/* Gives m a projection (out, O) from its embeddings into a teacher's space,
 * Xavier-uniform weights from seed (zero weights when seed is 0), bias 0;
 * replaces one it had. */
kd_status kd_dual_projection_init(struct kd_dual *m, size_t out, uint64_t seed, struct kd_error *err);
/* y (B, proj_out) = x (B, O) P^T + b. */
void kd_dual_project(const struct kd_dual *m, const float *x, size_t B, float *y);

/* Trains m on the candidate lists: each step takes `batch` lists (shuffled
 * every epoch), scores every query against all the batch's candidates (its
 * own list at columns [i L, i L + L), the others as in-batch negatives; its
 * first relevant candidate is its gold column) and minimises
 *   score_weight * kd_loss_rank_distill_inbatch + lambda_q * Lq + lambda_d * Ld.
 * Refuses (KD_ERR_ARG, naming the list, candidate or tensor) an index out of
 * range, teacher embeddings of the wrong number of rows, frozen documents
 * of the wrong shape or with separate towers, and bad loss settings. */
kd_status kd_dual_distill(struct kd_dual *m, const struct kd_features *fq, const struct kd_features *fd,
                          const struct kd_cand_lists *lists, const struct kd_dual_distill_config *c,
                          struct kd_train_result *result, struct kd_error *err);

/* ------------------------------------------------------------ exact search */

/* Exact top-k by inner product: for each query row of q (Q, E), the k
 * documents of docs (N, E) with the largest scores q_i . d_j, best first.
 * Ties go to the lower document index, so the result is one well-defined
 * list; NaN scores are never returned. When k > N the slots past N hold
 * idx SIZE_MAX and score -INFINITY. Computed by blocks of queries x blocks of
 * documents, each one GEMM (core's kd_sgemm, threaded by OpenBLAS), then a
 * per-query min-heap of size k over the block's scores.
 * idx (Q, k) and scores (Q, k) are the caller's. (student/search.c) */
kd_status kd_search_topk(const struct kd_tensor *q, const struct kd_tensor *docs, size_t k, size_t *idx,
                         float *scores, struct kd_error *err);

/* ------------------------------------------------------ retrieval metrics */

/* Relevance judgments in CSR layout: query i judged the documents
 * doc[offsets[i] .. offsets[i + 1]) with grades rel[...]; a grade <= 0 is
 * "judged not relevant". Document ids are the indices the search returns. */
struct kd_qrels_view {
    size_t n_queries;
    const size_t *offsets;      /* (n_queries + 1) */
    const size_t *doc;
    const int32_t *rel;
};

enum { KD_RM_NDCG10 = 0, KD_RM_MRR10, KD_RM_RECALL10, KD_RM_RECALL100, KD_RM_COUNT };

/* Means over the queries with at least one relevant (grade > 0) document;
 * per_query (n_queries, KD_RM_COUNT) holds each query's values, NaN for a
 * query without relevant documents (owned; kd_rank_metrics_release). */
struct kd_rank_metrics {
    double mean[KD_RM_COUNT];
    size_t n_evaluated, n_skipped;
    double *per_query;
};
/* ranked (n_queries, k): each query's documents best first (as
 * kd_search_topk returns them; SIZE_MAX ends a short list; with k < 100,
 * Recall@100 counts the k returned). Definitions,
 * trec_eval's (ndcg_cut, recip_rank, recall cut at 10 and 100):
 *   nDCG@10   DCG@10 / IDCG@10 with gain = grade (not 2^grade - 1) and
 *             discount log2(rank + 1); the ideal ranking sorts all the
 *             query's judged documents by grade
 *   MRR@10    1 / rank of the first relevant document in the top 10, else 0
 *   Recall@k  relevant documents in the top k / relevant documents
 * (student/rank_metrics.c) */
kd_status kd_rank_evaluate(const size_t *ranked, size_t k, const struct kd_qrels_view *qrels,
                           struct kd_rank_metrics *out, struct kd_error *err);
void kd_rank_metrics_release(struct kd_rank_metrics *rm);
const char *kd_rank_metric_name(int metric); /* "ndcg@10", "mrr@10", "recall@10", "recall@100" */

/* ----------------------------------------------------------- cross-encoder */

/* A cross-encoder: it reads a query and a document together and gives the
 * pair one score, so it cannot index documents ahead of time, but it sees
 * what a dual encoder cannot: which words of the query the document holds.
 * kd trains it on gold qrels with BM25 hard negatives and uses it as the
 * teacher of the dual-encoder student (docs/retrieval.md, "The
 * cross-encoder"). For a pair (q, d), with bag() the mean-pooled embedding
 * bag of all the text's hashed features:
 *
 *   u = bag_q(q), v = bag_d(d)                          (E), (E)
 *   x = [u, v, u * v, |u - v|, signals(q, d)]           (4E + KD_CROSS_SIGNALS)
 *   s = MLP(x)                                          dense layers, the last to 1
 *
 * signals() are lexical-match features computed from both texts' ids at once
 * (W = distinct word-unigram ids, T = the document title's, A = all
 * distinct feature ids, idf from kd_cross_fit_idf):
 *   0 |Wq & Wd| / |Wq|               1 idf(Wq & Wd) / idf(Wq)
 *   2 |Aq & Ad| / |Aq|               3 |Aq & Ad| / |Ad|
 *   4 log(1 + shared word bigrams)   5 |T & Wq| / |T|
 *   6 idf(T & Wq) / idf(T)           7 idf(Wq & Wd) / idf(Wd)
 *   8 idf(Wq & Wd - T) / idf(Wq)     9 |Wq & Wd - T| / |Wq|
 *  10 log(1 + |Wq|)                 11 log(1 + |Wd|)
 *  12 log(1 + max(0, bm25)) when the model uses BM25 (else 0)
 *  13 max idf of a word in Wq & Wd - T, / max idf
 * (idf(S) = sum of idf over S; an empty denominator gives 0.) Signals 8, 9
 * and 13 leave out the title: in a data set where every candidate's title
 * names the query's word (WordNet), the gloss is where senses differ.
 *
 *     struct kd_cross_config cfg;
 *     kd_cross_config_init(&cfg);                  // 2^18 buckets, E 32, 128-1 head
 *     struct kd_cross *m;
 *     kd_cross_new(&cfg, 42, &m, &err);
 *     struct kd_cross_side qs, ds;                 // features plus sorted id sets
 *     kd_cross_side_init(&qs, &q_all, &q_words, NULL, &err);
 *     kd_cross_side_init(&ds, &d_all, &d_words, &d_title_words, &err);
 *     kd_cross_fit_idf(m, &ds);
 *     kd_cross_train(m, &qs, &ds, &lists, &tc, NULL, &err);
 *     kd_cross_rerank(m, &qs, &ds, queries, cand, bm25, n, k, ranked, NULL, &err);
 *     kd_cross_save(m, "ce.safetensors", settings_line, &err);
 *
 * Features: `all` is kd_featurize with the model's settings; `words` the
 * same texts with the settings' buckets and seed but words=1 chars=0 (word
 * unigram ids in the order of the text); for documents, `title_words` the
 * titles alone featurised like `words` (NULL when the data has no titles).
 * A document's `all` and `words` read its title and text together (title,
 * a space, text). (student/cross.c, student/cross_io.c) */
#define KD_CROSS_SIGNALS 14
#define KD_CROSS_MAX_LAYERS 4

struct kd_cross_config {
    uint32_t buckets;                       /* table rows (the featuriser's 2^k) */
    size_t E;                               /* embedding width */
    size_t n_layers;                        /* dense layers of the head, 1 to KD_CROSS_MAX_LAYERS */
    size_t hidden[KD_CROSS_MAX_LAYERS];     /* their widths; the last must be 1 */
    enum kd_act act;                        /* between the head's layers */
    int shared;                             /* one table for queries and documents */
    int use_bm25;                           /* signal 12 reads the pair's BM25 score */
};
/* 2^18 buckets, E 32, head 128-1, ReLU, shared table, BM25 used. */
void kd_cross_config_init(struct kd_cross_config *cfg);
/* KD_ERR_ARG naming the field when a setting is out of range. */
kd_status kd_cross_config_check(const struct kd_cross_config *cfg, struct kd_error *err);

/* One set of texts as the cross-encoder reads it: the features (borrowed,
 * they must outlive the side) and the sorted distinct id sets the signals
 * intersect (owned). */
struct kd_cross_side {
    const struct kd_features *all, *words, *title_words;   /* title_words may be NULL */
    size_t n;                                             /* texts */
    uint32_t *set_all, *set_words, *set_title;            /* sorted distinct ids, CSR */
    size_t *off_all, *off_words, *off_title;              /* (n + 1) each; off_title NULL without titles */
};
/* Builds the id sets. all and words must hold the same number of texts (and
 * title_words too when given), else KD_ERR_ARG. Release with
 * kd_cross_side_release (accepts NULL and a zeroed side). */
kd_status kd_cross_side_init(struct kd_cross_side *s, const struct kd_features *all, const struct kd_features *words,
                             const struct kd_features *title_words, struct kd_error *err);
void kd_cross_side_release(struct kd_cross_side *s);

struct kd_cross {
    struct kd_cross_config cfg;
    struct kd_embedbag bag[2];          /* query, document; bag[1] unused when shared */
    struct kd_mlp *head;                /* (4E + KD_CROSS_SIGNALS) -> ... -> 1 */
    float *idf;                         /* (buckets) word weights; 1 until kd_cross_fit_idf */
    float idf_max;
    /* workspace for up to max_pairs pairs (kd_cross_reserve) */
    size_t max_pairs;
    float *u, *v, *x, *dx, *du, *dv;    /* (B, E), (B, E), (B, D), (B, D), (B, E), (B, E) */
    struct kd_sparse_grad sg[2];        /* the tables' gradients after backward (sg[0] only when shared) */
    const struct kd_features *last_q, *last_d;
    const size_t *last_qi, *last_di;
    size_t last_n;
};
/* The head's input width 4E + KD_CROSS_SIGNALS. */
static inline size_t kd_cross_input_dim(const struct kd_cross *m) { return 4 * m->cfg.E + KD_CROSS_SIGNALS; }

/* Tables drawn N(0, 1/E) from seed, the head as kd_mlp_new (He init),
 * idf all 1. Free with kd_cross_free. */
kd_status kd_cross_new(const struct kd_cross_config *cfg, uint64_t seed, struct kd_cross **out, struct kd_error *err);
void kd_cross_free(struct kd_cross *m);
/* idf(w) = log((N + 1) / (df(w) + 1)) + 1 over the N documents' word ids
 * (distinct per document), for the signals. Part of the model: saved with it. */
void kd_cross_fit_idf(struct kd_cross *m, const struct kd_cross_side *docs);
/* Workspace for batches of up to B pairs, with sparse gradients of room for
 * `rows` distinct table rows each (capped at buckets; 0: no backward). */
kd_status kd_cross_reserve(struct kd_cross *m, size_t B, size_t rows, struct kd_error *err);
/* The 14 signals of one pair (KD_CROSS_SIGNALS floats into out); bm25 is
 * the pair's -bm25() candidate score (ignored unless cfg.use_bm25). */
void kd_cross_signals(const struct kd_cross *m, const struct kd_cross_side *q, size_t qi,
                      const struct kd_cross_side *d, size_t di, float bm25, float *out);
/* Scores (B) of pairs (qi[i], di[i]), bm25 (B) or NULL (read as 0), in the
 * workspace (valid until the next forward); sides borrowed until backward.
 * NULL only when the workspace cannot be allocated. Ids must be < buckets
 * (kd_cross_score checks them). */
const float *kd_cross_forward(struct kd_cross *m, const struct kd_cross_side *q, const size_t *qi,
                              const struct kd_cross_side *d, const size_t *di, const float *bm25, size_t B);
/* From dL/ds (B) of the last forward: the head's gradients into
 * m->head->grads (overwritten) and the tables' into m->sg (cleared first). */
void kd_cross_backward(struct kd_cross *m, const float *dscores);
/* Scores of n pairs into scores (n), in batches of up to 1024; bm25 (n) or NULL. */
kd_status kd_cross_score(struct kd_cross *m, const struct kd_cross_side *q, const size_t *qi,
                         const struct kd_cross_side *d, const size_t *di, const float *bm25, size_t n,
                         float *scores, struct kd_error *err);
/* Re-ranks candidates: for query i (text queries[i]), the documents
 * cand[i * k .. i * k + k) (indices into d, best first, -1 ends the list; as
 * kd_store_corpus_search gives them, with their scores bm25 (n, k) or NULL)
 * are scored and written to ranked (n, k) best first (ties keep the
 * candidates' order), SIZE_MAX past the list's end, ready for
 * kd_rank_evaluate; scores (n, k) may be NULL, else the matching scores
 * (-INFINITY past the end). */
kd_status kd_cross_rerank(struct kd_cross *m, const struct kd_cross_side *q, const size_t *queries,
                          const struct kd_cross_side *d, const int64_t *cand, const float *bm25, size_t n, size_t k,
                          size_t *ranked, float *scores, struct kd_error *err);

/* Training lists: list i is query text query[i] with the documents
 * docs[i * L .. i * L + L), its positive first, then L - 1 negatives;
 * bm25 (n, L) their candidate scores, or NULL. */
struct kd_cross_lists {
    size_t n, L;
    size_t *query;          /* (n) */
    size_t *docs;           /* (n, L) */
    float *bm25;            /* (n, L) or NULL */
};
/* Builds lists from gold judgements and BM25 candidates: for each query i
 * of qrels (text queries[i]) and each of its relevant documents, a list of
 * that document and the first L - 1 candidates of cand (n_queries, k) that
 * are not relevant to the query, topped up with documents drawn from rng
 * below n_docs when the candidates run short (bm25 0). A positive missing
 * from the candidates gets the lowest candidate score. Owned; release with
 * kd_cross_lists_release. */
kd_status kd_cross_lists_build(const struct kd_qrels_view *qrels, const size_t *queries, const int64_t *cand,
                               const float *bm25, size_t k, size_t n_docs, size_t L, struct kd_rng *rng,
                               struct kd_cross_lists *out, struct kd_error *err);
void kd_cross_lists_release(struct kd_cross_lists *l);

struct kd_cross_train_config {
    size_t epochs, batch;            /* batch: lists per step */
    struct kd_optim_config optim;    /* the head (Adam, AdamW or SGD) */
    struct kd_optim_config table;    /* the tables: sparse Adam or sparse SGD */
    struct kd_schedule sched;        /* scales both rates */
    uint64_t seed;                   /* shuffling */
    const char *label;               /* progress bar text */
    volatile sig_atomic_t *stop;     /* non-zero: stop at a batch boundary */
};
/* 4 epochs, batch 32 lists, Adam 1e-3 for the head, sparse Adam 1e-2 for the tables, seed 1. */
void kd_cross_train_config_init(struct kd_cross_train_config *tc);
/* Listwise softmax cross-entropy: each list's scores s (L) against its
 * positive in column 0, l = logsumexp(s) - s_0 (kd_loss_inbatch_softmax with
 * pos 0), mean over the batch's lists; the lists shuffled every epoch with
 * tc->seed. A step is one forward of batch x L pairs. Workspaces are
 * allocated once, before the first step. */
kd_status kd_cross_train(struct kd_cross *m, const struct kd_cross_side *q, const struct kd_cross_side *d,
                         const struct kd_cross_lists *lists, const struct kd_cross_train_config *tc,
                         struct kd_train_result *result, struct kd_error *err);

/* safetensors with PyTorch-style names and shapes:
 *   query.bag.weight [buckets, E], doc.bag.weight (absent when shared)
 *   head.layers.<i>.weight [out, in], head.layers.<i>.bias [out]
 *   idf [buckets]
 * metadata: kd_format=cross_encoder, kd_version, buckets, embedding_dim,
 * hidden ("128,1"), activation, shared, use_bm25, signals (14), and
 * featurizer = the caller's settings line (kd_text_settings_format; NULL
 * gives ""). (student/cross_io.c) */
kd_status kd_cross_save(const struct kd_cross *m, const char *path, const char *featurizer, struct kd_error *err);
/* Reads a file kd_cross_save wrote; refuses, naming the file and what is
 * wrong, another kd_format, a missing or bad setting, a signal count other
 * than this kd's, a missing tensor or one of the wrong shape, and a tensor
 * the settings do not explain. featurizer (may be NULL) receives a copy of
 * the settings line (free with free()). */
kd_status kd_cross_load(const char *path, struct kd_cross **out, char **featurizer, struct kd_error *err);

#endif

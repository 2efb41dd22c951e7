/* Retrieval work shared by the runner's stages and the CLI (`kd search`,
 * `kd eval`, `kd encode`): a BEIR split's judgements as a CSR view, a dual
 * encoder trained on gold pairs with in-batch and BM25 hard negatives, and
 * the evaluation of a dual encoder (exact search) or of BM25 (the store's
 * FTS5 index) with nDCG@10 / MRR@10 / Recall@10 / Recall@100 and a TREC run
 * file. Nothing here prints; errors name the data set and split. */
#include "pipelines/kd_pipeline.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ texts */

char **kd_retrieval_doc_texts(const struct kd_beir *b)
{
    char **t = calloc(b->n_docs ? b->n_docs : 1, sizeof *t);
    for (size_t i = 0; t && i < b->n_docs; i++) {
        const char *title = b->doc_titles[i] ? b->doc_titles[i] : "", *text = b->doc_texts[i];
        size_t nt = strlen(title), nx = strlen(text);
        if (!(t[i] = malloc(nt + nx + 2))) {
            kd_retrieval_texts_free(t, i);
            return NULL;
        }
        /* title then text, one space between: what both towers read of a document */
        memcpy(t[i], title, nt);
        size_t at = nt;
        if (nt && nx)
            t[i][at++] = ' ';
        memcpy(t[i] + at, text, nx + 1);
    }
    return t;
}

void kd_retrieval_texts_free(char **texts, size_t n)
{
    for (size_t i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
}

/* ------------------------------------------------------------------ splits */

kd_status kd_retrieval_split_init(const struct kd_beir *b, enum kd_beir_split split, struct kd_retrieval_split *out,
                                  struct kd_error *err)
{
    memset(out, 0, sizeof *out);
    const struct kd_beir_qrels *q = &b->qrels[split];
    if (!q->loaded)
        return kd_error_set(err, KD_ERR_ARG, "split '%s' was not loaded", kd_beir_split_name(split));
    out->split = split;
    out->queries = malloc((q->n_queries ? q->n_queries : 1) * sizeof *out->queries);
    out->offsets = malloc((q->n_queries + 1) * sizeof *out->offsets);
    out->doc = malloc((q->n ? q->n : 1) * sizeof *out->doc);
    out->rel = malloc((q->n ? q->n : 1) * sizeof *out->rel);
    if (!out->queries || !out->offsets || !out->doc || !out->rel) {
        kd_retrieval_split_release(out);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    }
    /* rows are sorted by query: one CSR row per distinct query */
    size_t n = 0;
    for (size_t r = 0; r < q->n; r++) {
        if (r == 0 || q->rows[r].query != q->rows[r - 1].query) {
            out->queries[n] = q->rows[r].query;
            out->offsets[n++] = r;
        }
        out->doc[r] = q->rows[r].doc;
        out->rel[r] = q->rows[r].score;
    }
    out->offsets[n] = q->n;
    out->n = n;
    out->view.n_queries = n;
    out->view.offsets = out->offsets;
    out->view.doc = out->doc;
    out->view.rel = out->rel;
    return KD_OK;
}

void kd_retrieval_split_release(struct kd_retrieval_split *s)
{
    if (!s)
        return;
    free(s->queries);
    free(s->offsets);
    free(s->doc);
    free(s->rel);
    memset(s, 0, sizeof *s);
}

/* ----------------------------------------------------------------- ranking */

kd_status kd_retrieval_finish_ranking(const struct kd_beir *b, const struct kd_retrieval_split *sp, const size_t *ranked,
                                const float *scores, size_t k, const char *run_path, const char *tag,
                                struct kd_rank_metrics *out, struct kd_error *err)
{
    kd_status st = kd_rank_evaluate(ranked, k, &sp->view, out, err);
    if (st || !run_path)
        return st;
    const char **qids = malloc((sp->n ? sp->n : 1) * sizeof *qids);
    if (!qids) {
        kd_rank_metrics_release(out);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < sp->n; i++)
        qids[i] = b->query_ids[sp->queries[i]];
    st = kd_trec_write_run(run_path, qids, sp->n, (const char *const *)b->doc_ids, b->n_docs, ranked, scores, k,
                           tag, err);
    free(qids);
    if (st)
        kd_rank_metrics_release(out);
    return st;
}

kd_status kd_retrieval_featurize_docs(const struct kd_text_settings *ts, const struct kd_beir *b,
                                      struct kd_features *out, struct kd_error *err)
{
    char **texts = kd_retrieval_doc_texts(b);
    if (!texts)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    kd_status st = kd_featurize(ts, (const char *const *)texts, NULL, b->n_docs, 0, out, err);
    kd_retrieval_texts_free(texts, b->n_docs);
    return st;
}

kd_status kd_retrieval_eval_dual(struct kd_dual *m, const struct kd_text_settings *ts, const struct kd_beir *b,
                                 enum kd_beir_split split, size_t k, const char *run_path, const char *tag,
                                 struct kd_rank_metrics *out, struct kd_error *err)
{
    return kd_retrieval_eval_dual_docs(m, ts, NULL, NULL, b, split, k, run_path, tag, out, err);
}

kd_status kd_retrieval_eval_dual_docs(struct kd_dual *m, const struct kd_text_settings *ts, struct kd_dual *dm,
                                      const struct kd_text_settings *dts, const struct kd_beir *b,
                                      enum kd_beir_split split, size_t k, const char *run_path, const char *tag,
                                      struct kd_rank_metrics *out, struct kd_error *err)
{
    if (!dm) {
        dm = m;
        dts = ts;
    }
    if (kd_dual_dim(dm) != kd_dual_dim(m))
        return kd_error_set(err, KD_ERR_ARG, "queries of %zu numbers cannot be scored against documents of %zu",
                            kd_dual_dim(m), kd_dual_dim(dm));
    memset(out, 0, sizeof *out);
    struct kd_retrieval_split sp;
    struct kd_features fd = {0}, fq = {0};
    struct kd_tensor ed = {0}, eq = {0};
    size_t *ranked = NULL;
    float *scores = NULL;
    const char **qt = NULL;
    kd_status st = kd_retrieval_split_init(b, split, &sp, err);
    if (st)
        return st;
    if (k == 0)
        k = 100;
    if (!(qt = malloc((sp.n ? sp.n : 1) * sizeof *qt)) || !(ranked = malloc((sp.n ? sp.n : 1) * k * sizeof *ranked)) ||
        !(scores = malloc((sp.n ? sp.n : 1) * k * sizeof *scores))) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < sp.n; i++)
        qt[i] = b->query_texts[sp.queries[i]];
    if (!b->n_docs || !sp.n) {
        st = kd_error_set(err, KD_ERR_ARG, "nothing to rank: %zu documents, %zu queries in split '%s'", b->n_docs,
                          sp.n, kd_beir_split_name(split));
        goto done;
    }
    if ((st = kd_retrieval_featurize_docs(dts, b, &fd, err)) || (st = kd_featurize(ts, qt, NULL, sp.n, 0, &fq, err)) ||
        (st = kd_tensor_init(&ed, b->n_docs, kd_dual_dim(m), err)) ||
        (st = kd_tensor_init(&eq, sp.n, kd_dual_dim(m), err)) ||
        (st = kd_dual_encode(dm, KD_SIDE_DOC, &fd, &ed, err)) || (st = kd_dual_encode(m, KD_SIDE_QUERY, &fq, &eq, err)))
        goto done;
    if ((st = kd_search_topk(&eq, &ed, k, ranked, scores, err)))
        goto done;
    st = kd_retrieval_finish_ranking(b, &sp, ranked, scores, k, run_path, tag, out, err);
done:
    kd_features_release(&fd);
    kd_features_release(&fq);
    kd_tensor_release(&ed);
    kd_tensor_release(&eq);
    free(ranked);
    free(scores);
    free(qt);
    kd_retrieval_split_release(&sp);
    return st;
}

kd_status kd_retrieval_index(struct kd_store *st, const char *corpus, const struct kd_beir *b, int *built,
                             struct kd_error *err)
{
    return kd_store_corpus_index(st, corpus, (const char *const *)b->doc_ids, (const char *const *)b->doc_titles,
                                 (const char *const *)b->doc_texts, b->n_docs, built, err);
}

/* BM25 top k of texts[0..n) as document indices (SIZE_MAX past the matches)
 * and scores (-INFINITY there). */
static kd_status bm25_topk(struct kd_store *st, const char *corpus, const char *const *texts, size_t n, size_t k,
                           size_t *ranked, float *scores, volatile sig_atomic_t *stop, struct kd_error *err)
{
    int64_t *docs = malloc((n ? n : 1) * k * sizeof *docs);
    size_t *counts = malloc((n ? n : 1) * sizeof *counts);
    kd_status s = docs && counts ? KD_OK : kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    /* in slices, between which a Ctrl-C stops */
    for (size_t at = 0; !s && at < n; at += 1024) {
        size_t m = n - at < 1024 ? n - at : 1024;
        if (stop && *stop) {
            s = kd_error_set(err, KD_ERR_INTERRUPTED, "interrupted");
            break;
        }
        s = kd_store_corpus_search(st, corpus, texts + at, m, k, docs + at * k, scores + at * k, counts + at, err);
    }
    for (size_t i = 0; !s && i < n * k; i++) {
        ranked[i] = docs[i] < 0 ? SIZE_MAX : (size_t)docs[i];
        if (docs[i] < 0)
            scores[i] = -INFINITY;
    }
    free(docs);
    free(counts);
    return s;
}

kd_status kd_retrieval_eval_bm25(struct kd_store *st, const char *corpus, const struct kd_beir *b,
                                 enum kd_beir_split split, size_t k, const char *run_path, const char *tag,
                                 struct kd_rank_metrics *out, struct kd_error *err)
{
    memset(out, 0, sizeof *out);
    struct kd_retrieval_split sp;
    kd_status s = kd_retrieval_split_init(b, split, &sp, err);
    if (s)
        return s;
    if (k == 0)
        k = 100;
    const char **qt = malloc((sp.n ? sp.n : 1) * sizeof *qt);
    size_t *ranked = malloc((sp.n ? sp.n : 1) * k * sizeof *ranked);
    float *scores = malloc((sp.n ? sp.n : 1) * k * sizeof *scores);
    if (!qt || !ranked || !scores) {
        s = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < sp.n; i++)
        qt[i] = b->query_texts[sp.queries[i]];
    if ((s = bm25_topk(st, corpus, qt, sp.n, k, ranked, scores, NULL, err)))
        goto done;
    s = kd_retrieval_finish_ranking(b, &sp, ranked, scores, k, run_path, tag, out, err);
done:
    free(qt);
    free(ranked);
    free(scores);
    kd_retrieval_split_release(&sp);
    return s;
}

/* ---------------------------------------------------------------- training */

kd_status kd_retrieval_train_dual(struct kd_dual *m, const struct kd_text_settings *ts, const struct kd_beir *b,
                                  enum kd_beir_split split, size_t negatives, struct kd_store *st,
                                  const char *corpus, const struct kd_dual_train_config *tc,
                                  struct kd_train_result *res, struct kd_error *err)
{
    struct kd_retrieval_split sp;
    kd_status s = kd_retrieval_split_init(b, split, &sp, err);
    if (s)
        return s;
    struct kd_features fd = {0}, fq = {0};
    size_t *pq = NULL, *pd = NULL, *hard = NULL, *ranked = NULL;
    float *scores = NULL;
    const char **qt = NULL;
    size_t n_pairs = 0;
    for (size_t r = 0; r < sp.offsets[sp.n]; r++)
        n_pairs += sp.rel[r] > 0;
    if (n_pairs == 0) {
        s = kd_error_set(err, KD_ERR_ARG, "split '%s' has no relevant (query, document) pair to train on",
                         kd_beir_split_name(split));
        goto done;
    }
    if (negatives && !st) {
        s = kd_error_set(err, KD_ERR_ARG, "BM25 hard negatives need a store with the corpus index");
        goto done;
    }
    pq = malloc(n_pairs * sizeof *pq);
    pd = malloc(n_pairs * sizeof *pd);
    qt = malloc(sp.n * sizeof *qt);
    if (!pq || !pd || !qt) {
        s = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* query features are indexed by the split's query number i, not b's */
    size_t n = 0;
    for (size_t i = 0; i < sp.n; i++) {
        qt[i] = b->query_texts[sp.queries[i]];
        for (size_t r = sp.offsets[i]; r < sp.offsets[i + 1]; r++)
            if (sp.rel[r] > 0) {
                pq[n] = i;
                pd[n++] = sp.doc[r];
            }
    }
    if (negatives) {
        /* BM25's best documents that are not judged relevant for the query;
         * short lists are filled with random documents (seeded). */
        size_t k = negatives + 8;
        hard = malloc(n_pairs * negatives * sizeof *hard);
        ranked = malloc(sp.n * k * sizeof *ranked);
        scores = malloc(sp.n * k * sizeof *scores);
        if (!hard || !ranked || !scores) {
            s = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
            goto done;
        }
        if ((s = bm25_topk(st, corpus, qt, sp.n, k, ranked, scores, tc->stop, err)))
            goto done;
        struct kd_rng rng;
        kd_rng_seed(&rng, tc->seed ^ 0x6e656761746976ULL);
        for (size_t p = 0; p < n_pairs; p++) {
            size_t i = pq[p], got = 0;
            for (size_t j = 0; j < k && got < negatives && ranked[i * k + j] != SIZE_MAX; j++) {
                size_t d = ranked[i * k + j];
                int relevant = 0;
                for (size_t r = sp.offsets[i]; r < sp.offsets[i + 1]; r++)
                    relevant |= sp.doc[r] == d && sp.rel[r] > 0;
                if (!relevant)
                    hard[p * negatives + got++] = d;
            }
            while (got < negatives)
                hard[p * negatives + got++] = (size_t)kd_rng_below(&rng, b->n_docs);
        }
    }
    if ((s = kd_retrieval_featurize_docs(ts, b, &fd, err)) || (s = kd_featurize(ts, qt, NULL, sp.n, 0, &fq, err)))
        goto done;
    struct kd_pairs pairs = {pq, pd, n_pairs, hard, hard ? negatives : 0};
    s = kd_dual_train(m, &fq, &fd, &pairs, tc, res, err);
done:
    kd_features_release(&fd);
    kd_features_release(&fq);
    free(pq);
    free(pd);
    free(hard);
    free(ranked);
    free(scores);
    free(qt);
    kd_retrieval_split_release(&sp);
    return s;
}

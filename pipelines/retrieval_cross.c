/* Re-ranking work shared by the runner's retrieval stages: BM25 candidate
 * lists of a split, what kd's cross-encoder reads of a data set, training
 * it on gold lists with BM25 negatives, scoring candidates with it or with
 * any pair teacher through the store, and re-ranking the candidates by
 * those scores for the metrics and a TREC run file. Nothing here prints;
 * errors name the data set and split. */
#include "pipelines/kd_pipeline.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- candidates */

kd_status kd_retrieval_candidates_init(struct kd_store *st, const char *corpus, const struct kd_beir *b,
                                       const struct kd_retrieval_split *sp, size_t k, volatile sig_atomic_t *stop,
                                       struct kd_retrieval_candidates *out, struct kd_error *err)
{
    memset(out, 0, sizeof *out);
    if (k == 0)
        return kd_error_set(err, KD_ERR_ARG, "BM25 candidates: k must be at least 1");
    size_t n = sp->n;
    out->n = n;
    out->k = k;
    out->queries = malloc((n ? n : 1) * sizeof *out->queries);
    out->docs = malloc((n ? n : 1) * k * sizeof *out->docs);
    out->bm25 = malloc((n ? n : 1) * k * sizeof *out->bm25);
    const char **qt = malloc((n ? n : 1) * sizeof *qt);
    size_t *counts = malloc((n ? n : 1) * sizeof *counts);
    kd_status s = out->queries && out->docs && out->bm25 && qt && counts
                      ? KD_OK
                      : kd_error_set(err, KD_ERR_NOMEM, "out of memory for %zu x %zu candidates", n, k);
    for (size_t i = 0; !s && i < n; i++) {
        out->queries[i] = sp->queries[i];
        qt[i] = b->query_texts[sp->queries[i]];
    }
    /* in slices, between which a Ctrl-C stops and the progress bar moves */
    struct kd_progress pg;
    kd_progress_begin(&pg, "BM25 candidates", n);
    for (size_t at = 0; !s && at < n; at += 512) {
        size_t m = n - at < 512 ? n - at : 512;
        if (stop && *stop) {
            s = kd_error_set(err, KD_ERR_INTERRUPTED, "interrupted");
            break;
        }
        s = kd_store_corpus_search(st, corpus, qt + at, m, k, out->docs + at * k, out->bm25 + at * k, counts + at,
                                   err);
        kd_progress_update(&pg, at + m, NULL);
    }
    kd_progress_end(&pg);
    free(qt);
    free(counts);
    if (s)
        kd_retrieval_candidates_release(out);
    return s;
}

void kd_retrieval_candidates_release(struct kd_retrieval_candidates *c)
{
    if (!c)
        return;
    free(c->queries);
    free(c->docs);
    free(c->bm25);
    memset(c, 0, sizeof *c);
}

size_t kd_retrieval_candidates_count(const struct kd_retrieval_candidates *c)
{
    size_t total = 0;
    for (size_t i = 0; i < c->n * c->k; i++)
        total += c->docs[i] >= 0;
    return total;
}

/* ------------------------------------------------- what the cross-encoder reads */

kd_status kd_retrieval_cross_data_init(const struct kd_text_settings *ts, const struct kd_beir *b,
                                       struct kd_retrieval_cross_data *out, struct kd_error *err)
{
    memset(out, 0, sizeof *out);
    out->b = b;
    out->text = *ts;
    struct kd_text_settings ws = *ts;   /* word unigrams in text order, same buckets and seed */
    ws.word_ngrams = 1;
    ws.char_min = ws.char_max = 0;
    char **dt = kd_retrieval_doc_texts(b);
    if (!dt)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    const char *const *qt = (const char *const *)b->query_texts;
    kd_status s;
    if ((s = kd_featurize(ts, qt, NULL, b->n_queries, 0, &out->q_all, err)) ||
        (s = kd_featurize(&ws, qt, NULL, b->n_queries, 0, &out->q_words, err)) ||
        (s = kd_featurize(ts, (const char *const *)dt, NULL, b->n_docs, 0, &out->d_all, err)) ||
        (s = kd_featurize(&ws, (const char *const *)dt, NULL, b->n_docs, 0, &out->d_words, err)) ||
        (s = kd_featurize(&ws, (const char *const *)b->doc_titles, NULL, b->n_docs, 0, &out->t_words, err)) ||
        (s = kd_cross_side_init(&out->qs, &out->q_all, &out->q_words, NULL, err)) ||
        (s = kd_cross_side_init(&out->ds, &out->d_all, &out->d_words, &out->t_words, err)))
        kd_retrieval_cross_data_release(out);
    kd_retrieval_texts_free(dt, b->n_docs);
    return s;
}

void kd_retrieval_cross_data_release(struct kd_retrieval_cross_data *cd)
{
    if (!cd)
        return;
    kd_cross_side_release(&cd->qs);
    kd_cross_side_release(&cd->ds);
    kd_features_release(&cd->q_all);
    kd_features_release(&cd->q_words);
    kd_features_release(&cd->d_all);
    kd_features_release(&cd->d_words);
    kd_features_release(&cd->t_words);
    memset(cd, 0, sizeof *cd);
}

/* ------------------------------------------------------- the cross-encoder */

kd_status kd_retrieval_train_cross(struct kd_cross *m, const struct kd_retrieval_cross_data *cd,
                                   const struct kd_retrieval_split *sp, const struct kd_retrieval_candidates *c,
                                   size_t negatives, const struct kd_cross_train_config *tc,
                                   struct kd_train_result *res, struct kd_error *err)
{
    if (c->n != sp->n)
        return kd_error_set(err, KD_ERR_ARG, "%zu candidate lists for %zu queries", c->n, sp->n);
    size_t pairs = 0;
    for (size_t r = 0; r < sp->offsets[sp->n]; r++)
        pairs += sp->rel[r] > 0;
    if (pairs == 0)
        return kd_error_set(err, KD_ERR_ARG, "split '%s' has no relevant (query, document) pair to train on",
                            kd_beir_split_name(sp->split));
    kd_cross_fit_idf(m, &cd->ds);
    struct kd_rng rng;
    kd_rng_seed(&rng, kd_rng_derive(tc->seed, KD_RNG_CROSS_NEGATIVES, 0));
    struct kd_cross_lists lists;
    kd_status s = kd_cross_lists_build(&sp->view, sp->queries, c->docs, m->cfg.use_bm25 ? c->bm25 : NULL, c->k,
                                       cd->b->n_docs, negatives + 1, &rng, &lists, err);
    if (s)
        return s;
    s = kd_cross_train(m, &cd->qs, &cd->ds, &lists, tc, res, err);
    kd_cross_lists_release(&lists);
    return s;
}

kd_status kd_retrieval_cross_scores(struct kd_cross *m, const struct kd_retrieval_cross_data *cd,
                                    const struct kd_retrieval_candidates *c, float *scores, struct kd_error *err)
{
    size_t total = kd_retrieval_candidates_count(c);
    size_t *qi = malloc((total ? total : 1) * sizeof *qi), *di = malloc((total ? total : 1) * sizeof *di);
    float *bm = malloc((total ? total : 1) * sizeof *bm), *s = malloc((total ? total : 1) * sizeof *s);
    kd_status st = qi && di && bm && s ? KD_OK : kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    size_t t = 0;
    for (size_t i = 0; !st && i < c->n; i++)
        for (size_t j = 0; j < c->k && c->docs[i * c->k + j] >= 0; j++, t++) {
            qi[t] = c->queries[i];
            di[t] = (size_t)c->docs[i * c->k + j];
            bm[t] = c->bm25[i * c->k + j];
        }
    if (!st)
        st = kd_cross_score(m, &cd->qs, qi, &cd->ds, di, m->cfg.use_bm25 ? bm : NULL, total, s, err);
    t = 0;
    for (size_t i = 0; !st && i < c->n; i++)
        for (size_t j = 0; j < c->k; j++)
            scores[i * c->k + j] = c->docs[i * c->k + j] >= 0 ? s[t++] : NAN;
    free(qi);
    free(di);
    free(bm);
    free(s);
    return st;
}

/* ------------------------------------------------------------ re-ranking */

struct ranked_item {
    float score;
    size_t pos;
};

/* Higher first; NaN lowest; ties keep the candidates' order. */
static int cmp_ranked(const void *a, const void *b)
{
    const struct ranked_item *x = a, *y = b;
    if (x->score > y->score)
        return -1;
    if (x->score < y->score)
        return 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

kd_status kd_retrieval_rerank(const struct kd_retrieval_candidates *c, const float *scores, size_t *ranked,
                              float *ranked_scores, struct kd_error *err)
{
    struct ranked_item *items = malloc((c->k ? c->k : 1) * sizeof *items);
    if (!items)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < c->n; i++) {
        const int64_t *cand = c->docs + i * c->k;
        size_t n = 0;
        for (; n < c->k && cand[n] >= 0; n++) {
            float s = scores[i * c->k + n];
            items[n].score = isnan(s) ? -INFINITY : s;
            items[n].pos = n;
        }
        qsort(items, n, sizeof *items, cmp_ranked);
        for (size_t j = 0; j < c->k; j++) {
            ranked[i * c->k + j] = j < n ? (size_t)cand[items[j].pos] : SIZE_MAX;
            if (ranked_scores)
                ranked_scores[i * c->k + j] = j < n ? items[j].score : -INFINITY;
        }
    }
    free(items);
    return KD_OK;
}

kd_status kd_retrieval_eval_rerank(const struct kd_beir *b, const struct kd_retrieval_split *sp,
                                   const struct kd_retrieval_candidates *c, const float *scores, const char *run_path,
                                   const char *tag, struct kd_rank_metrics *out, struct kd_error *err)
{
    memset(out, 0, sizeof *out);
    if (c->n != sp->n)
        return kd_error_set(err, KD_ERR_ARG, "%zu candidate lists for %zu queries", c->n, sp->n);
    size_t *ranked = malloc((c->n ? c->n : 1) * c->k * sizeof *ranked);
    float *rs = malloc((c->n ? c->n : 1) * c->k * sizeof *rs);
    kd_status s = ranked && rs ? KD_OK : kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    if (!s)
        s = kd_retrieval_rerank(c, scores, ranked, rs, err);
    if (!s)
        s = kd_retrieval_finish_ranking(b, sp, ranked, rs, c->k, run_path, tag, out, err);
    free(ranked);
    free(rs);
    return s;
}

/* ---------------------------------------------------------- pair teachers */

kd_status kd_retrieval_teacher_scores(struct kd_pair_teacher *t, const char *corpus, const struct kd_beir *b,
                                      const struct kd_retrieval_candidates *c, size_t max_queries, float *scores,
                                      struct kd_label_stats *stats, volatile sig_atomic_t *stop, struct kd_error *err)
{
    size_t total = kd_retrieval_candidates_count(c);
    struct kd_store_pair *pairs = malloc((total ? total : 1) * sizeof *pairs);
    float *s = malloc((total ? total : 1) * sizeof *s);
    char **dt = NULL;
    size_t n_dt = 0;
    kd_status st = pairs && s ? KD_OK : kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    /* the document text a pair teacher reads: only the candidates' (a
     * corpus may be much larger than its candidates) */
    if (!st) {
        dt = calloc(b->n_docs ? b->n_docs : 1, sizeof *dt);
        if (!dt)
            st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        else
            n_dt = b->n_docs;
    }
    size_t p = 0;
    for (size_t i = 0; !st && i < c->n; i++)
        for (size_t j = 0; j < c->k && c->docs[i * c->k + j] >= 0; j++, p++) {
            size_t d = (size_t)c->docs[i * c->k + j], q = c->queries[i];
            if (!dt[d] && !(dt[d] = kd_teacher_doc_text(b->doc_titles[d], b->doc_texts[d]))) {
                st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
                break;
            }
            pairs[p] = (struct kd_store_pair){b->query_ids[q], b->doc_ids[d], b->query_texts[q], dt[d]};
        }
    if (!st)
        st = kd_pair_teacher_score(t, corpus, pairs, total, max_queries, s, stats, stop, err);
    p = 0;
    for (size_t i = 0; !st && i < c->n; i++)
        for (size_t j = 0; j < c->k; j++)
            scores[i * c->k + j] = c->docs[i * c->k + j] >= 0 ? s[p++] : NAN;
    kd_retrieval_texts_free(dt, n_dt);
    free(pairs);
    free(s);
    return st;
}

kd_status kd_retrieval_lists_init(struct kd_pair_teacher *t, const char *corpus, const struct kd_beir *b,
                                  const struct kd_retrieval_candidates *c, size_t max_queries,
                                  struct kd_retrieval_lists *out, struct kd_label_stats *stats,
                                  volatile sig_atomic_t *stop, struct kd_error *err)
{
    memset(out, 0, sizeof *out);
    out->c = c;
    if (!(out->teacher = malloc((c->n ? c->n : 1) * c->k * sizeof *out->teacher)))
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    kd_status s = kd_retrieval_teacher_scores(t, corpus, b, c, max_queries, out->teacher, stats, stop, err);
    if (s)
        kd_retrieval_lists_release(out);
    return s;
}

void kd_retrieval_lists_release(struct kd_retrieval_lists *l)
{
    if (!l)
        return;
    free(l->teacher);
    memset(l, 0, sizeof *l);
}

/* ------------------------------------- kd's cross-encoder as a pair teacher */

/* The BM25 signal of pair (q, d): an open-addressing map from q * n_docs + d
 * to the candidate score, and each query's lowest candidate score. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

kd_status kd_retrieval_cross_teacher_init(struct kd_retrieval_cross_teacher *t, struct kd_cross *m,
                                          const struct kd_retrieval_cross_data *cd,
                                          const struct kd_retrieval_candidates *c, struct kd_error *err)
{
    memset(t, 0, sizeof *t);
    t->m = m;
    t->cd = cd;
    size_t total = kd_retrieval_candidates_count(c), cap = 16;
    while (cap < 2 * total)
        cap *= 2;
    size_t nq = cd->b->n_queries;
    t->cap = cap;
    t->keys = malloc(cap * sizeof *t->keys);
    t->vals = malloc(cap * sizeof *t->vals);
    t->floor = malloc((nq ? nq : 1) * sizeof *t->floor);
    if (!t->keys || !t->vals || !t->floor) {
        kd_retrieval_cross_teacher_release(t);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < cap; i++)
        t->keys[i] = UINT64_MAX;
    for (size_t q = 0; q < nq; q++)
        t->floor[q] = NAN;   /* not among the candidates' queries */
    uint64_t nd = cd->b->n_docs;
    for (size_t i = 0; i < c->n; i++) {
        size_t q = c->queries[i];
        t->floor[q] = 0.0f;
        for (size_t j = 0; j < c->k && c->docs[i * c->k + j] >= 0; j++) {
            uint64_t key = (uint64_t)q * nd + (uint64_t)c->docs[i * c->k + j];
            size_t h = mix(key) & (cap - 1);
            while (t->keys[h] != UINT64_MAX && t->keys[h] != key)
                h = (h + 1) & (cap - 1);
            t->keys[h] = key;
            t->vals[h] = c->bm25[i * c->k + j];
            t->floor[q] = c->bm25[i * c->k + j];   /* best first: the last is the lowest */
        }
    }
    return KD_OK;
}

void kd_retrieval_cross_teacher_release(struct kd_retrieval_cross_teacher *t)
{
    if (!t)
        return;
    free(t->keys);
    free(t->vals);
    free(t->floor);
    memset(t, 0, sizeof *t);
}

kd_status kd_retrieval_cross_teacher_score(void *ctx, const struct kd_store_pair *pairs, size_t n, float *scores,
                                           struct kd_error *err)
{
    struct kd_retrieval_cross_teacher *t = ctx;
    const struct kd_beir *b = t->cd->b;
    size_t *qi = malloc((n ? n : 1) * sizeof *qi), *di = malloc((n ? n : 1) * sizeof *di);
    float *bm = malloc((n ? n : 1) * sizeof *bm);
    kd_status s = qi && di && bm ? KD_OK : kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !s && i < n; i++) {
        /* kd's cross-encoder reads a document's title apart from its text,
         * so it scores pairs of its data set, found by their ids */
        if (!pairs[i].query_id || !kd_beir_find_query(b, pairs[i].query_id, &qi[i]) || !pairs[i].doc_id ||
            !kd_beir_find_doc(b, pairs[i].doc_id, &di[i])) {
            s = kd_error_set(err, KD_ERR_ARG, "the cross-encoder scores pairs of its data set by their ids; "
                             "pair %zu ('%s', '%s') is not one", i, pairs[i].query_id ? pairs[i].query_id : "",
                             pairs[i].doc_id ? pairs[i].doc_id : "");
            break;
        }
        if (isnan(t->floor[qi[i]])) {
            s = kd_error_set(err, KD_ERR_ARG, "the cross-encoder has no BM25 candidates for query '%s'",
                             pairs[i].query_id);
            break;
        }
        uint64_t key = (uint64_t)qi[i] * b->n_docs + di[i];
        size_t h = mix(key) & (t->cap - 1);
        while (t->keys[h] != UINT64_MAX && t->keys[h] != key)
            h = (h + 1) & (t->cap - 1);
        bm[i] = t->keys[h] == key ? t->vals[h] : t->floor[qi[i]];
    }
    if (!s)
        s = kd_cross_score(t->m, &t->cd->qs, qi, &t->cd->ds, di, t->m->cfg.use_bm25 ? bm : NULL, n, scores, err);
    free(qi);
    free(di);
    free(bm);
    return s;
}

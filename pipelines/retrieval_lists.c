/* The candidate lists a label or distill stage has its pair teacher score on
 * a retrieval data set (docs/retrieval.md, "Candidates beyond BM25"): per
 * query of the split, BM25's top k (kept for the run, pipelines/stage_cross.c),
 * then the first `from_model` documents a dual encoder trained by an earlier
 * stage retrieves from the whole corpus that BM25's top k lacks, then
 * `random` documents of the corpus drawn for that query from the pipeline's
 * seed. Each list holds distinct documents; a query whose BM25 list is
 * short keeps it short (its extra candidates follow BM25's, then -1). The
 * teacher scores them through the store as every answer: it is opened on
 * BM25's candidates (kd's cross-encoder reads the pair's BM25 signal from
 * them, the floor of the query's top k for a pair outside it), so a pair
 * scored before is read, never asked again. */
#include "pipelines/run_impl.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int in_list(const int64_t *row, size_t n, int64_t d)
{
    for (size_t j = 0; j < n; j++)
        if (row[j] == d)
            return 1;
    return 0;
}

/* ranked (n, depth): model's ranking of the split's queries over the corpus. */
static kd_status model_ranking(struct runner *r, const struct kd_pipe_stage *s, struct run_beir *rb,
                               const struct kd_retrieval_split *sp, size_t depth, size_t **ranked,
                               struct kd_error *err)
{
    struct run_model *m = kd_run_find_model(r, s->cand_model);
    if (!m || !m->dual)
        return kd_error_set(err, KD_ERR_CONFIG, "stage '%s': model '%s' of 'candidates' is not trained", s->name,
                            s->cand_model);
    struct kd_features fd = {0}, fq = {0};
    struct kd_tensor ed = {0}, eq = {0};
    const struct kd_beir *b = &rb->b;
    const char **qt = malloc((sp->n ? sp->n : 1) * sizeof *qt);
    float *scores = malloc((sp->n ? sp->n : 1) * depth * sizeof *scores);
    *ranked = malloc((sp->n ? sp->n : 1) * depth * sizeof **ranked);
    kd_status st = qt && scores && *ranked ? KD_OK : kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < sp->n; i++)
        qt[i] = b->query_texts[sp->queries[i]];
    double t0 = kd_time_now();
    /* a student distilled with frozen_documents has no document tower of its
     * own: its documents are its teacher's */
    const struct run_model *dm = kd_run_doc_model(m);
    if (!st && !((st = kd_retrieval_featurize_docs(&dm->def->text, b, &fd, err)) ||
                 (st = kd_featurize(&m->def->text, qt, NULL, sp->n, 0, &fq, err)) ||
                 (st = kd_tensor_init(&ed, b->n_docs, kd_dual_dim(m->dual), err)) ||
                 (st = kd_tensor_init(&eq, sp->n, kd_dual_dim(m->dual), err)) ||
                 (st = kd_dual_encode(dm->dual, KD_SIDE_DOC, &fd, &ed, err)) ||
                 (st = kd_dual_encode(m->dual, KD_SIDE_QUERY, &fq, &eq, err))))
        st = kd_search_topk(&eq, &ed, depth, *ranked, scores, err);
    if (!st)
        kd_log(KD_LOG_INFO, "  model '%s' retrieved its top %zu of %zu documents for %zu queries in %.1f s",
               s->cand_model, depth, b->n_docs, sp->n, kd_time_now() - t0);
    kd_features_release(&fd);
    kd_features_release(&fq);
    kd_tensor_release(&ed);
    kd_tensor_release(&eq);
    free(qt);
    free(scores);
    if (st) {
        free(*ranked);
        *ranked = NULL;
        kd_error_prefix(err, "stage '%s', the candidates of model '%s'", s->name, s->cand_model);
    }
    return st;
}

/* out: bm's lists with the stage's extra candidates appended. */
static kd_status extend(struct runner *r, const struct kd_pipe_stage *s, struct run_beir *rb,
                        const struct kd_retrieval_split *sp, const struct kd_retrieval_candidates *bm,
                        struct kd_retrieval_candidates *out, struct kd_error *err)
{
    size_t kb = bm->k, nm = s->cand_model[0] ? s->cand_from_model : 0, nr = s->cand_random;
    size_t L = kb + nm + nr, depth = nm + kb, n = bm->n, nd = rb->b.n_docs;
    size_t *ranked = NULL;
    memset(out, 0, sizeof *out);
    out->n = n;
    out->k = L;
    out->queries = malloc((n ? n : 1) * sizeof *out->queries);
    out->docs = malloc((n ? n : 1) * L * sizeof *out->docs);
    out->bm25 = malloc((n ? n : 1) * L * sizeof *out->bm25);
    if (!out->queries || !out->docs || !out->bm25)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    kd_status st = KD_OK;
    if (nd < L && nr)
        return kd_error_set(err, KD_ERR_CONFIG, "stage '%s': lists of %zu candidates (%zu random) need more "
                            "documents than the %zu of '%s'", s->name, L, nr, nd, rb->name);
    if (nm && (st = model_ranking(r, s, rb, sp, depth, &ranked, err)))
        return st;
    memcpy(out->queries, bm->queries, n * sizeof *out->queries);
    for (size_t i = 0; i < n; i++) {
        int64_t *row = out->docs + i * L;
        float *b25 = out->bm25 + i * L;
        size_t m = 0;
        for (size_t j = 0; j < kb && bm->docs[i * kb + j] >= 0; j++, m++) {
            row[m] = bm->docs[i * kb + j];
            b25[m] = bm->bm25[i * kb + j];
        }
        size_t base = m, added = 0;
        for (size_t j = 0; j < depth && added < nm && ranked[i * depth + j] != SIZE_MAX; j++) {
            int64_t d = (int64_t)ranked[i * depth + j];
            if (!in_list(row, base, d)) {
                row[m] = d;
                b25[m++] = NAN;
                added++;
            }
        }
        if (nr) {
            struct kd_rng g;
            kd_rng_seed(&g, kd_rng_derive(r->p->seed, KD_RNG_LIST_RANDOM, bm->queries[i]));
            for (size_t a = 0; a < nr;) {
                int64_t d = (int64_t)kd_rng_below(&g, nd);
                if (!in_list(row, m, d)) {
                    row[m] = d;
                    b25[m++] = NAN;
                    a++;
                }
            }
        }
        for (; m < L; m++) {
            row[m] = -1;
            b25[m] = NAN;
        }
    }
    free(ranked);
    return KD_OK;
}

kd_status kd_run_stage_candidates(struct runner *r, const struct kd_pipe_stage *s,
                                  struct kd_retrieval_candidates *own, const struct kd_retrieval_candidates **bm,
                                  const struct kd_retrieval_candidates **c, struct kd_error *err)
{
    struct run_beir *rb;
    const struct kd_retrieval_split *sp;
    memset(own, 0, sizeof *own);
    kd_status st = kd_run_stage_beir(r, s, 1, &rb, err);
    if (!st)
        st = kd_run_stage_split(r, rb, s, &sp, NULL, err);
    if (!st)
        st = kd_run_stage_bm25(r, rb, s, s->k, bm, err);
    if (st)
        return st;
    *c = *bm;
    if (s->cand_random || (s->cand_model[0] && s->cand_from_model)) {
        if ((st = extend(r, s, rb, sp, *bm, own, err))) {
            kd_retrieval_candidates_release(own);
            return st;
        }
        *c = own;
    }
    return KD_OK;
}

kd_status kd_run_stage_lists(struct runner *r, const struct kd_pipe_stage *s, struct kd_retrieval_candidates *own,
                             struct kd_retrieval_lists *lists, struct kd_label_stats *ls, struct kd_error *err)
{
    struct run_beir *rb;
    const struct kd_retrieval_candidates *bm, *c;
    kd_status st = kd_run_stage_beir(r, s, 1, &rb, err);
    if (!st)
        st = kd_run_stage_candidates(r, s, own, &bm, &c, err);
    if (st)
        return st;
    struct run_pair_teacher pt;
    if ((st = kd_run_pair_teacher_open(r, s, s->teacher, rb, bm, &pt, err))) {
        kd_retrieval_candidates_release(own);
        return st;
    }
    memset(ls, 0, sizeof *ls);
    st = kd_retrieval_lists_init(pt.t, rb->name, &rb->b, c, SIZE_MAX, lists, ls, r->opt->stop, err);
    r->sum->queries += ls->queried;
    r->sum->cached += ls->cached;
    kd_run_pair_teacher_close(&pt);
    if (st) {
        kd_retrieval_candidates_release(own);
        kd_error_prefix(err, "stage '%s', teacher '%s' on '%s'", s->name, s->teacher, rb->name);
    }
    return st;
}

struct run_model *kd_run_dual_teacher(struct runner *r, const struct kd_pipe_stage *s)
{
    const struct kd_pipe_teacher *t = kd_pipeline_teacher(r->p, s->teacher);
    if (!t || t->kind != KD_TEACHER_MODEL || !t->model[0])
        return NULL;
    struct run_model *m = kd_run_find_model(r, t->model);
    return m && m->def->type == KD_MODEL_DUAL ? m : NULL;
}

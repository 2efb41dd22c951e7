/* The cross-encoder and pair teachers in pipelines: a train stage trains a
 * `type: cross` model on a split's gold judgements with negatives from
 * BM25's top k; a label stage has a pair teacher (the cross-encoder, an
 * exec program or a table) score BM25's top k of every query of a split
 * through the store; evaluate stages re-rank BM25's top k with a
 * cross-encoder or a pair teacher. BM25's candidates of a split are
 * computed once per run and kept for the later stages. The work itself is
 * pipelines/retrieval_cross.c. */
#include "pipelines/run_impl.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------- kept for the run */

kd_status kd_run_split(struct run_beir *rb, enum kd_beir_split split, const struct kd_retrieval_split **out,
                       struct kd_error *err)
{
    if (!rb->has_split[split]) {
        kd_status st = kd_retrieval_split_init(&rb->b, split, &rb->sp[split], err);
        if (st)
            return st;
        rb->has_split[split] = 1;
    }
    *out = &rb->sp[split];
    return KD_OK;
}

/* BM25's candidates are a pure function of the corpus's index (its
 * fingerprint covers the tokenizer, every id and text), the query texts
 * and k, and the top k of a query is the first k of its top K for K > k:
 * OUTPUT/cache/bm25-<XXH3-128 of the index and the queries>.bin keeps the
 * deepest search of a split for the next stage or run of the pipeline
 * (another seed, a resume, a smaller k), which then reads it, or its
 * prefix, instead of searching again. The file: the line
 * "kd-bm25-candidates 2 N K", then docs (N, K) int64 and scores (N, K)
 * float32, little-endian as in memory; written to a temporary name and
 * renamed, so a reader never sees half of one. A file that does not match
 * is searched again and replaced, and so is a shallower one. */
#define CACHE_MAGIC "kd-bm25-candidates 2"

static kd_status cache_path(struct runner *r, struct run_beir *rb, const struct kd_retrieval_split *sp, char *path,
                            size_t n, struct kd_error *err)
{
    struct kd_store_corpus c;
    kd_status st = kd_store_corpus_find(r->store, rb->name, &c, err);
    if (st)
        return st;
    struct kd_hasher h;
    if ((st = kd_hasher_init(&h, err)))
        return st;
    kd_hasher_update(&h, c.fingerprint, strlen(c.fingerprint) + 1);
    uint64_t nq = sp->n;
    kd_hasher_update(&h, &nq, sizeof nq);
    for (size_t i = 0; i < sp->n; i++) {
        const char *q = rb->b.query_texts[sp->queries[i]];
        kd_hasher_update(&h, q, strlen(q) + 1);
    }
    char hex[KD_HASH_HEX_LEN + 1];
    kd_hash_hex(kd_hasher_digest(&h), hex);
    kd_hasher_release(&h);
    snprintf(path, n, "%s/cache/bm25-%s.bin", r->p->output, hex);
    return KD_OK;
}

/* c = the first k candidates of each query of src (src->k >= k). 0 when out of memory. */
static int take_prefix(const struct kd_retrieval_candidates *src, size_t k, struct kd_retrieval_candidates *c)
{
    size_t n = src->n;
    memset(c, 0, sizeof *c);
    c->n = n;
    c->k = k;
    c->queries = malloc((n ? n : 1) * sizeof *c->queries);
    c->docs = malloc((n ? n : 1) * k * sizeof *c->docs);
    c->bm25 = malloc((n ? n : 1) * k * sizeof *c->bm25);
    if (!c->queries || !c->docs || !c->bm25) {
        kd_retrieval_candidates_release(c);
        return 0;
    }
    memcpy(c->queries, src->queries, n * sizeof *c->queries);
    for (size_t i = 0; i < n; i++) {
        memcpy(c->docs + i * k, src->docs + i * src->k, k * sizeof *c->docs);
        memcpy(c->bm25 + i * k, src->bm25 + i * src->k, k * sizeof *c->bm25);
    }
    return 1;
}

/* 1 when every row of docs (n rows of K) holds document indices below
 * n_docs, then only -1 (the padding of a query with fewer matches). */
static int rows_valid(const int64_t *docs, size_t n, size_t K, size_t n_docs)
{
    for (size_t i = 0; i < n; i++) {
        int padding = 0;
        for (size_t j = 0; j < K; j++) {
            int64_t d = docs[i * K + j];
            if (d == -1)
                padding = 1;
            else if (d < 0 || padding || (size_t)d >= n_docs)
                return 0;
        }
    }
    return 1;
}

/* The file's candidates when it holds at least k per query: its first k
 * (1). 0 when there is no file or a shallower one; -1 when it is damaged
 * (its size, its header, or a document index out of the corpus's n_docs or
 * after a row's padding: read as is, it would send readers out of bounds). */
static int cache_read(const char *path, const struct kd_retrieval_split *sp, size_t n_docs, size_t k,
                      struct kd_retrieval_candidates *c)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char want[96], line[96];
    size_t K = 0;
    snprintf(want, sizeof want, CACHE_MAGIC " %zu ", sp->n);
    int ok = fgets(line, sizeof line, f) && strncmp(line, want, strlen(want)) == 0;
    if (ok) {
        char tail[96];
        snprintf(tail, sizeof tail, "%s", line + strlen(want));
        char *end;
        unsigned long long kk = strtoull(tail, &end, 10);
        ok = end != tail && strcmp(end, "\n") == 0 && kk > 0 && kk <= 1000000;
        if (ok && kk < k) {
            fclose(f);
            return 0;   /* shallower: searched again, deeper */
        }
        K = (size_t)kk;
    }
    struct kd_retrieval_candidates all = {0};
    all.n = sp->n;
    all.k = K;
    if (ok) {
        all.queries = malloc((sp->n ? sp->n : 1) * sizeof *all.queries);
        all.docs = malloc((sp->n ? sp->n : 1) * K * sizeof *all.docs);
        all.bm25 = malloc((sp->n ? sp->n : 1) * K * sizeof *all.bm25);
        ok = all.queries && all.docs && all.bm25 && fread(all.docs, sizeof *all.docs, sp->n * K, f) == sp->n * K &&
             fread(all.bm25, sizeof *all.bm25, sp->n * K, f) == sp->n * K && fgetc(f) == EOF;
    }
    fclose(f);
    ok = ok && rows_valid(all.docs, sp->n, K, n_docs);
    if (!ok) {
        kd_retrieval_candidates_release(&all);
        return -1;
    }
    memcpy(all.queries, sp->queries, sp->n * sizeof *all.queries);
    ok = K == k ? (*c = all, 1) : take_prefix(&all, k, c);
    if (!ok || K != k)
        kd_retrieval_candidates_release(&all);
    return ok;   /* 0: out of memory, searched again */
}

static kd_status cache_write(struct runner *r, const char *path, const struct kd_retrieval_candidates *c,
                             struct kd_error *err)
{
    char dir[1024], tmp[1300];
    snprintf(dir, sizeof dir, "%s/cache", r->p->output);
    kd_status st = kd_run_make_dirs(dir, err);
    if (st)
        return st;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return kd_error_set(err, KD_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
    int ok = fprintf(f, CACHE_MAGIC " %zu %zu\n", c->n, c->k) > 0 &&
             fwrite(c->docs, sizeof *c->docs, c->n * c->k, f) == c->n * c->k &&
             fwrite(c->bm25, sizeof *c->bm25, c->n * c->k, f) == c->n * c->k;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return kd_error_set(err, KD_ERR_IO, "cannot write '%s': %s", path, strerror(e));
    }
    return KD_OK;
}

int kd_run_candidates_kept_of(struct runner *r, struct run_beir *rb, const struct kd_retrieval_split *sp, size_t k,
                              struct kd_retrieval_candidates *out)
{
    struct kd_error err = {0};
    char path[1200];
    memset(out, 0, sizeof *out);
    return r->store && cache_path(r, rb, sp, path, sizeof path, &err) == KD_OK &&
           cache_read(path, sp, rb->b.n_docs, k, out) > 0;
}

int kd_run_candidates_kept(struct runner *r, struct run_beir *rb, enum kd_beir_split split, size_t k,
                           struct kd_retrieval_candidates *out)
{
    const struct kd_retrieval_split *sp;
    struct kd_error err = {0};
    char path[1200];
    memset(out, 0, sizeof *out);
    if (kd_run_split(rb, split, &sp, &err))
        return 0;
    const struct kd_retrieval_candidates *c = &rb->cand[split];
    if (c->docs && c->k >= k)
        return take_prefix(c, k, out);
    return r->store && cache_path(r, rb, sp, path, sizeof path, &err) == KD_OK && cache_read(path, sp, rb->b.n_docs, k, out) > 0;
}

kd_status kd_run_candidates_of(struct runner *r, struct run_beir *rb, const struct kd_retrieval_split *sp,
                               const char *label, size_t k, struct kd_retrieval_candidates *c, struct kd_error *err)
{
    kd_status st;
    if (c->docs && c->k > k) {   /* a deeper search of this run: its prefix */
        struct kd_retrieval_candidates p;
        if (!take_prefix(c, k, &p))
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        kd_retrieval_candidates_release(c);
        *c = p;
    }
    if (!c->docs || c->k != k) {
        kd_retrieval_candidates_release(c);
        char path[1200];
        if ((st = cache_path(r, rb, sp, path, sizeof path, err)))
            return st;
        int got = cache_read(path, sp, rb->b.n_docs, k, c);
        if (got > 0) {
            kd_log(KD_LOG_INFO, "  BM25 top %zu of %zu queries of '%s' (%s) read from %s", k, c->n, rb->name, label,
                   path);
        } else {
            if (got < 0)
                kd_log(KD_LOG_WARN, "BM25 candidates of '%s' (%s) in %s are damaged: searching again", rb->name,
                       label, path);
            double t0 = kd_time_now();
            if ((st = kd_retrieval_candidates_init(r->store, rb->name, &rb->b, sp, k, r->opt->stop, c, err)))
                return kd_error_prefix(err, "BM25 candidates of '%s' (%s)", rb->name, label);
            kd_log(KD_LOG_INFO, "  BM25 top %zu of %zu queries of '%s' (%s) in %.1f s", k, c->n, rb->name, label,
                   kd_time_now() - t0);
            if ((st = cache_write(r, path, c, err)))   /* none, a damaged one or a shallower one */
                return st;
        }
    }
    return KD_OK;
}

kd_status kd_run_candidates(struct runner *r, struct run_beir *rb, enum kd_beir_split split, size_t k,
                            const struct kd_retrieval_candidates **out, struct kd_error *err)
{
    const struct kd_retrieval_split *sp;
    kd_status st = kd_run_split(rb, split, &sp, err);
    if (!st)
        st = kd_run_candidates_of(r, rb, sp, kd_beir_split_name(split), k, &rb->cand[split], err);
    if (!st)
        *out = &rb->cand[split];
    return st;
}

static int same_text(const struct kd_text_settings *a, const struct kd_text_settings *b)
{
    char x[KD_TEXT_SETTINGS_MAX], y[KD_TEXT_SETTINGS_MAX];
    kd_text_settings_format(a, x);
    kd_text_settings_format(b, y);
    return strcmp(x, y) == 0;
}

/* What the cross-encoder reads of rb's data set with featuriser ts: kept in
 * rb for one featuriser (the common case), else built for the caller
 * (*owned = 1: release and free it). */
static kd_status cross_data(struct run_beir *rb, const struct kd_text_settings *ts,
                            struct kd_retrieval_cross_data **out, int *owned, struct kd_error *err)
{
    *owned = 0;
    if (rb->cd && same_text(&rb->cd->text, ts)) {
        *out = rb->cd;
        return KD_OK;
    }
    struct kd_retrieval_cross_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    kd_status st = kd_retrieval_cross_data_init(ts, &rb->b, cd, err);
    if (st) {
        free(cd);
        return st;
    }
    if (!rb->cd) {
        rb->cd = cd;
    } else {
        *owned = 1;
    }
    *out = cd;
    return KD_OK;
}

static void cross_data_drop(struct kd_retrieval_cross_data *cd, int owned)
{
    if (!owned)
        return;
    kd_retrieval_cross_data_release(cd);
    free(cd);
}

/* --------------------------------------------------------------- training */

kd_status kd_run_stage_train_cross(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
    struct run_model *m = kd_run_find_model(r, s->model);
    struct run_beir *rb;
    const struct kd_retrieval_split *sp;
    const struct kd_retrieval_candidates *c;
    struct kd_retrieval_cross_data *cd;
    int owned = 0;
    kd_status st = kd_run_stage_beir(r, s, 1, &rb, err);
    if (!st)
        st = kd_run_split(rb, s->split, &sp, err);
    if (!st)
        st = kd_run_candidates(r, rb, s->split, s->k, &c, err);
    if (!st)
        st = cross_data(rb, &m->def->text, &cd, &owned, err);
    if (st)
        return kd_error_prefix(err, "stage '%s'", s->name);
    kd_cross_free(m->cross);
    m->cross = NULL;
    if ((st = kd_cross_new(&m->def->cross, r->p->seed, &m->cross, err))) {
        cross_data_drop(cd, owned);
        return kd_error_prefix(err, "stage '%s': model '%s'", s->name, s->model);
    }
    struct kd_cross_train_config tc;
    kd_cross_train_config_init(&tc);
    tc.epochs = s->epochs;
    tc.batch = s->batch;
    tc.seed = r->p->seed;
    tc.label = s->name;
    tc.stop = r->opt->stop;
    tc.table.lr = s->table_lr;
    size_t lists = 0;
    for (size_t i = 0; i < sp->offsets[sp->n]; i++)
        lists += sp->rel[i] > 0;
    kd_run_optim_settings(s, lists, tc.batch, tc.epochs, &tc.optim, &tc.sched);
    struct kd_train_result res;
    st = kd_retrieval_train_cross(m->cross, cd, sp, c, s->negatives, &tc, &res, err);
    cross_data_drop(cd, owned);
    if (st)
        return kd_error_prefix(err, "stage '%s', model '%s' on '%s' (%s)", s->name, s->model, s->data,
                               kd_beir_split_name(s->split));
    kd_log(KD_LOG_INFO, "  cross-encoder '%s' on '%s' (%s: %zu lists of 1 + %zu): %zu epochs in %.1f s, loss %.4f",
           s->model, s->data, kd_beir_split_name(s->split), lists, s->negatives, res.epochs_done, res.seconds,
           res.last_loss);
    if ((st = kd_run_record_metric(r, sid, "train_loss", (int64_t)res.epochs_done, res.last_loss, err)))
        return st;
    char path[1024], feat[KD_TEXT_SETTINGS_MAX];
    kd_run_model_path(r, s->model, path, sizeof path);
    kd_text_settings_format(&m->def->text, feat);
    if ((st = kd_cross_save(m->cross, path, feat, err)))
        return st;
    struct kd_hash h;
    char hex[KD_HASH_HEX_LEN + 1];
    if (kd_hash_file(path, &h, NULL) == KD_OK) {
        kd_hash_hex(h, hex);
        st = kd_store_artefact(r->store, r->run, path, "safetensors", hex, err);
    }
    return st;
}

kd_status kd_run_restore_cross(struct runner *r, const struct kd_pipe_stage *s, struct kd_error *err)
{
    char path[1024];
    kd_run_model_path(r, s->model, path, sizeof path);
    struct run_model *m = kd_run_find_model(r, s->model);
    kd_cross_free(m->cross);
    m->cross = NULL;
    kd_status st = kd_cross_load(path, &m->cross, NULL, err);
    if (st)
        kd_error_prefix(err, "cannot resume stage '%s' (remove --resume to start afresh)", s->name);
    return st;
}

kd_status kd_run_export_cross(struct runner *r, const struct kd_pipe_stage *s, const char *path, struct kd_error *err)
{
    struct run_model *m = kd_run_find_model(r, s->model);
    char feat[KD_TEXT_SETTINGS_MAX];
    kd_text_settings_format(&m->def->text, feat);
    return kd_cross_save(m->cross, path, feat, err);
}

/* ----------------------------------------------------------- pair teachers */

/* The fingerprint of kd's cross-encoder as a teacher: its file, its
 * featuriser, and, when it reads BM25, the corpus's index and the depth of
 * the candidates its BM25 signal comes from (a pair outside them reads its
 * query's lowest candidate score). */
static kd_status cross_fingerprint(struct runner *r, const char *path, const struct kd_cross *m, const char *feat,
                                   const char *corpus, size_t k, char fp[KD_HASH_HEX_LEN + 1], char *arch,
                                   size_t n_arch, struct kd_error *err)
{
    struct kd_store_corpus c;
    kd_status st = kd_store_corpus_find(r->store, corpus, &c, err);
    if (st)
        return st;
    if (m->cfg.use_bm25)
        snprintf(arch, n_arch, "kd cross-encoder; %s; bm25 of corpus %s, top %zu", feat, c.fingerprint, k);
    else
        snprintf(arch, n_arch, "kd cross-encoder; %s", feat);
    return kd_teacher_file_fingerprint(path, arch, fp, err);
}

kd_status kd_run_pair_teacher_open(struct runner *r, const struct kd_pipe_stage *s, const char *name,
                                   struct run_beir *rb, const struct kd_retrieval_candidates *c,
                                   struct run_pair_teacher *out, struct kd_error *err)
{
    memset(out, 0, sizeof *out);
    char where[400];
    kd_run_where(r->p, s->teacher_pos, where, sizeof where);
    const struct kd_pipe_teacher *def = kd_pipeline_teacher(r->p, name);
    if (!def)
        return kd_error_set(err, KD_ERR_CONFIG, "%sunknown teacher '%s'", where, name);
    struct kd_pair_teacher_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.name = def->name;
    char fp[KD_HASH_HEX_LEN + 1], arch[512], feat[KD_TEXT_SETTINGS_MAX];
    kd_status st = KD_OK;
    switch (def->kind) {
    case KD_TEACHER_MODEL: {
        char path[1024];
        struct kd_cross *m;
        struct kd_text_settings ts;
        if (def->model[0]) {
            struct run_model *rm = kd_run_find_model(r, def->model);
            if (!rm || !rm->cross)
                return kd_error_set(err, KD_ERR_CONFIG, "%steacher '%s': model '%s' is not trained yet", where, name,
                                    def->model);
            m = rm->cross;
            ts = rm->def->text;
            kd_run_model_path(r, def->model, path, sizeof path);
        } else {
            char *line = NULL;
            snprintf(path, sizeof path, "%s", def->weights);
            if ((st = kd_cross_load(path, &out->loaded, &line, err)) ||
                (st = kd_text_settings_parse(line ? line : "", &ts, err))) {
                free(line);
                kd_run_pair_teacher_close(out);
                return kd_error_prefix(err, "%steacher '%s'", where, name);
            }
            free(line);
            m = out->loaded;
        }
        kd_text_settings_format(&ts, feat);
        if ((st = cross_data(rb, &ts, &out->cd, &out->own_cd, err)) ||
            (st = kd_retrieval_cross_teacher_init(&out->ct, m, out->cd, c, err)) ||
            (st = cross_fingerprint(r, path, m, feat, rb->name, c->k, fp, arch, sizeof arch, err)))
            break;
        spec.kind = KD_TEACHER_MODEL;
        spec.score = kd_retrieval_cross_teacher_score;
        spec.ctx = &out->ct;
        spec.fingerprint = fp;
        spec.config = arch;
        break;
    }
    case KD_TEACHER_EXEC:
        spec.kind = KD_TEACHER_EXEC;
        spec.argv = def->command;
        spec.batch = def->batch;
        spec.timeout = def->timeout;
        break;
    case KD_TEACHER_TABLE:
        spec.kind = KD_TEACHER_TABLE;
        spec.table = def->table[0] ? def->table : NULL;
        break;
    }
    if (!st)
        st = kd_pair_teacher_open(&spec, r->store, &out->t, err);
    if (st) {
        kd_run_pair_teacher_close(out);
        return kd_error_prefix(err, "%sstage '%s', teacher '%s'", where, s->name, name);
    }
    return KD_OK;
}

void kd_run_pair_teacher_close(struct run_pair_teacher *pt)
{
    if (!pt)
        return;
    kd_pair_teacher_close(pt->t);
    kd_retrieval_cross_teacher_release(&pt->ct);
    cross_data_drop(pt->cd, pt->own_cd);
    kd_cross_free(pt->loaded);
    memset(pt, 0, sizeof *pt);
}

/* The teacher's scores of c through the store, counted in the run's summary. */
static kd_status teacher_lists(struct runner *r, const struct kd_pipe_stage *s, const char *teacher,
                               struct run_beir *rb, const struct kd_retrieval_candidates *c,
                               struct kd_retrieval_lists *lists, struct kd_label_stats *ls, struct kd_error *err)
{
    struct run_pair_teacher pt;
    kd_status st = kd_run_pair_teacher_open(r, s, teacher, rb, c, &pt, err);
    if (st)
        return st;
    memset(ls, 0, sizeof *ls);
    st = kd_retrieval_lists_init(pt.t, rb->name, &rb->b, c, SIZE_MAX, lists, ls, r->opt->stop, err);
    r->sum->queries += ls->queried;
    r->sum->cached += ls->cached;
    kd_run_pair_teacher_close(&pt);
    if (st)
        kd_error_prefix(err, "stage '%s', teacher '%s' on '%s'", s->name, teacher, rb->name);
    return st;
}

kd_status kd_run_stage_label_pairs(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
    struct kd_retrieval_lists lists;
    struct kd_retrieval_candidates own;
    struct kd_label_stats ls;
    kd_status st = kd_run_stage_lists(r, s, &own, &lists, &ls, err);
    if (st)
        return st;
    const struct kd_retrieval_candidates *c = lists.c;
    if (c == &own)
        kd_log(KD_LOG_INFO, "  teacher '%s' on BM25's top %zu, %zu from model '%s' and %zu random documents of %zu "
               "queries of '%s' (%s): %zu pairs, %zu from the store, %zu asked", s->teacher, s->k,
               s->cand_model[0] ? s->cand_from_model : 0, s->cand_model[0] ? s->cand_model : "-", s->cand_random,
               c->n, s->data, kd_beir_split_name(s->split), ls.total, ls.cached, ls.queried);
    else
        kd_log(KD_LOG_INFO, "  teacher '%s' on BM25's top %zu of %zu queries of '%s' (%s): %zu pairs, %zu from the "
               "store, %zu asked", s->teacher, c->k, c->n, s->data, kd_beir_split_name(s->split), ls.total,
               ls.cached, ls.queried);
    kd_retrieval_lists_release(&lists);
    kd_retrieval_candidates_release(&own);
    if ((st = kd_run_record_metric(r, sid, "pairs", -1, (double)ls.total, err)) ||
        (st = kd_run_record_metric(r, sid, "cached", -1, (double)ls.cached, err)))
        return st;
    return kd_run_record_metric(r, sid, "queries", -1, (double)ls.queried, err);
}

/* ------------------------------------------------------------- evaluation */

kd_status kd_run_eval_rerank(struct runner *r, const struct kd_pipe_stage *s, struct run_beir *rb, const char *name,
                             int teacher, const char *run_path, struct kd_rank_metrics *out, struct kd_error *err)
{
    memset(out, 0, sizeof *out);
    const struct kd_retrieval_split *sp;
    const struct kd_retrieval_candidates *c;
    kd_status st = kd_run_split(rb, s->split, &sp, err);
    if (!st)
        st = kd_run_candidates(r, rb, s->split, s->k, &c, err);
    if (st)
        return st;
    float *scores = NULL;
    struct kd_retrieval_lists lists = {0};
    if (teacher) {
        struct kd_label_stats ls;
        if ((st = teacher_lists(r, s, name, rb, c, &lists, &ls, err)))
            return st;
        kd_log(KD_LOG_INFO, "  teacher '%s': %zu pairs, %zu from the store, %zu asked", name, ls.total, ls.cached,
               ls.queried);
        scores = lists.teacher;
    } else {
        struct run_model *m = kd_run_find_model(r, name);
        if (!m || !m->cross)
            return kd_error_set(err, KD_ERR_CONFIG, "stage '%s': model '%s' is not trained", s->name, name);
        struct kd_retrieval_cross_data *cd;
        int owned;
        if ((st = cross_data(rb, &m->def->text, &cd, &owned, err)))
            return st;
        if (!(scores = malloc((c->n ? c->n : 1) * c->k * sizeof *scores)))
            st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        else
            st = kd_retrieval_cross_scores(m->cross, cd, c, scores, err);
        cross_data_drop(cd, owned);
    }
    if (!st)
        st = kd_retrieval_eval_rerank(&rb->b, sp, c, scores, run_path, name, out, err);
    if (teacher)
        kd_retrieval_lists_release(&lists);
    else
        free(scores);
    return st;
}

/* The retrieval stages: train a dual encoder on a BEIR split's gold pairs
 * (in-batch negatives, BM25 hard negatives), evaluate dual encoders and the
 * BM25 baseline on a split (metrics in the store, a TREC run file in the
 * output folder), export a dual encoder with its featuriser settings
 * (distill on a retrieval data set: pipelines/stage_retrieval_distill.c). A
 * retrieval data set is read when a stage first needs it; a `wordnet:`
 * source is converted into its BEIR folder first when that has no corpus.
 * The work itself is pipelines/retrieval.c, which the CLI shares. */
#include "pipelines/run_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/kd_store.h"

/* --------------------------------------------------------------- helpers */

static const struct kd_pipe_dataset *dataset_def(const struct kd_pipeline *p, const char *name, size_t *index)
{
    for (size_t i = 0; i < p->n_datasets; i++)
        if (strcmp(p->datasets[i].name, name) == 0) {
            if (index)
                *index = i;
            return &p->datasets[i];
        }
    return NULL;
}

int kd_run_is_retrieval(const struct runner *r, const struct kd_pipe_stage *s)
{
    const struct kd_pipeline *p = r->p;
    if (s->kind == KD_STAGE_EXPORT || s->kind == KD_STAGE_TRAIN) {
        const struct kd_pipe_model *m = kd_pipeline_model(p, s->model);
        return m && m->type != KD_MODEL_MLP;
    }
    if (s->kind == KD_STAGE_EVALUATE || s->kind == KD_STAGE_LABEL || s->kind == KD_STAGE_DISTILL)
        return kd_pipe_dataset_is_retrieval(dataset_def(p, s->data, NULL));
    return 0;
}

void kd_run_beir_release(struct runner *r)
{
    for (size_t i = 0; r->beir && i < r->p->n_datasets; i++) {
        struct run_beir *rb = &r->beir[i];
        for (int j = 0; j < KD_BEIR_N_SPLITS; j++) {
            kd_retrieval_split_release(&rb->sp[j]);
            kd_retrieval_candidates_release(&rb->cand[j]);
            kd_retrieval_split_release(&rb->mixed[j]);
            kd_retrieval_candidates_release(&rb->mixed_cand[j]);
        }
        kd_retrieval_split_release(&rb->unjudged);
        kd_retrieval_candidates_release(&rb->unjudged_cand);
        kd_retrieval_cross_data_release(rb->cd);
        free(rb->cd);
        kd_beir_release(&rb->b);
    }
    free(r->beir);
    r->beir = NULL;
}

/* The splits the stages of the pipeline ask of dataset `name` in folder
 * dir; with `unlabelled: unjudged` every split whose qrels file exists, so
 * that the queries none of them mentions are known. */
static unsigned wanted_splits(const struct kd_pipeline *p, const char *name, const char *dir)
{
    unsigned want = 0;
    for (size_t i = 0; i < p->n_stages; i++)
        if (strcmp(p->stages[i].data, name) == 0) {
            want |= KD_BEIR_WANT(p->stages[i].split);
            for (int j = 0; p->stages[i].unlabelled && j < KD_BEIR_N_SPLITS; j++) {
                char path[1100];
                snprintf(path, sizeof path, "%s/qrels/%s.tsv", dir, kd_beir_split_name((enum kd_beir_split)j));
                if (access(path, F_OK) == 0)
                    want |= KD_BEIR_WANT(j);
            }
            if (p->stages[i].select.on && p->stages[i].select.has_dev)   /* measured after every round */
                want |= KD_BEIR_WANT(p->stages[i].select.dev);
        }
    return want;
}

static int has_corpus(const char *dir)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/corpus.jsonl", dir);
    return access(path, F_OK) == 0;
}

/* The retrieval data set a stage names, read (and converted) on first use;
 * with `index` its corpus is indexed in the store for BM25 too. */
kd_status kd_run_stage_beir(struct runner *r, const struct kd_pipe_stage *s, int index, struct run_beir **out,
                            struct kd_error *err)
{
    size_t i;
    const struct kd_pipe_dataset *def = dataset_def(r->p, s->data, &i);
    char where[400];
    kd_run_where(r->p, s->data_pos, where, sizeof where);
    if (!kd_pipe_dataset_is_retrieval(def))
        return kd_error_set(err, KD_ERR_CONFIG, "%sstage '%s': '%s' is not a retrieval data set", where, s->name,
                            s->data);
    struct run_beir *rb = &r->beir[i];
    kd_status st = KD_OK;
    if (!rb->loaded) {
        kd_run_where(r->p, def->pos, where, sizeof where);
        if (def->wordnet && !has_corpus(def->beir)) {
            struct kd_wordnet_options o;
            struct kd_wordnet_stats ws;
            kd_wordnet_options_init(&o);
            o.wordnet_dir = def->wordnet;
            o.out_dir = def->beir;
            o.seed = def->wordnet_seed;
            kd_log(KD_LOG_INFO, "  converting WordNet (%s) into %s", def->wordnet, def->beir);
            if ((st = kd_run_make_dirs(def->beir, err)) || (st = kd_wordnet_convert(&o, &ws, err)))
                return kd_error_prefix(err, "%sdataset '%s'", where, def->name);
            kd_log(KD_LOG_INFO, "  %zu documents, %zu queries (train %zu, dev %zu, test %zu)", ws.docs, ws.queries,
                   ws.split[KD_BEIR_TRAIN], ws.split[KD_BEIR_DEV], ws.split[KD_BEIR_TEST]);
        }
        struct kd_beir_stats bs;
        if ((st = kd_beir_load(def->beir, wanted_splits(r->p, def->name, def->beir), &rb->b, &bs, err)))
            return kd_error_prefix(err, "%sdataset '%s'", where, def->name);
        rb->loaded = 1;
        snprintf(rb->name, sizeof rb->name, "%s", def->name);
        kd_log(KD_LOG_INFO, "  dataset '%s': %zu documents, %zu queries (%s)", def->name, bs.docs, bs.queries,
               def->beir);
    }
    if (index && !rb->indexed) {
        int built = 0;
        if ((st = kd_retrieval_index(r->store, def->name, &rb->b, &built, err)))
            return kd_error_prefix(err, "stage '%s': indexing the corpus of '%s'", s->name, def->name);
        rb->indexed = 1;
        kd_log(KD_LOG_INFO, "  BM25 index of '%s' %s", def->name, built ? "built" : "already in the store");
    }
    *out = rb;
    return KD_OK;
}

/* Through kd_run_stage_beir, for the stages that need only the data. */
static kd_status stage_beir(struct runner *r, const struct kd_pipe_stage *s, int index, struct kd_beir **out,
                            struct kd_error *err)
{
    struct run_beir *rb;
    kd_status st = kd_run_stage_beir(r, s, index, &rb, err);
    if (!st)
        *out = &rb->b;
    return st;
}

/* -------------------------------------------------------------------- train */

kd_status kd_run_stage_train_dual(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
    struct run_model *m = kd_run_find_model(r, s->model);
    struct kd_beir *b;
    kd_status st = stage_beir(r, s, s->negatives > 0, &b, err);
    if (st)
        return st;
    kd_dual_free(m->dual);
    m->dual = NULL;
    m->docs_from = NULL;
    if ((st = kd_dual_new(&m->def->dual, r->p->seed, &m->dual, err)))
        return kd_error_prefix(err, "stage '%s': model '%s'", s->name, s->model);
    struct kd_dual_train_config tc;
    kd_dual_train_config_init(&tc);
    tc.epochs = s->epochs;
    tc.batch = s->batch;
    tc.seed = r->p->seed;
    tc.label = s->name;
    tc.stop = r->opt->stop;
    tc.table.lr = s->table_lr;
    size_t pairs = 0;
    for (size_t k = 0; k < b->qrels[s->split].n; k++)
        pairs += b->qrels[s->split].rows[k].score > 0;
    kd_run_optim_settings(s, pairs, tc.batch, tc.epochs, &tc.optim, &tc.sched);
    struct kd_train_result res;
    if ((st = kd_retrieval_train_dual(m->dual, &m->def->text, b, s->split, s->negatives, r->store, s->data, &tc,
                                      &res, err)))
        return kd_error_prefix(err, "stage '%s', model '%s' on '%s' (%s)", s->name, s->model, s->data,
                               kd_beir_split_name(s->split));
    kd_log(KD_LOG_INFO, "  dual encoder '%s' on '%s' (%s: %zu pairs, %zu BM25 negatives each): %zu epochs in %.1f s, "
           "loss %.4f", s->model, s->data, kd_beir_split_name(s->split), pairs, s->negatives, res.epochs_done,
           res.seconds, res.last_loss);
    if ((st = kd_run_record_metric(r, sid, "train_loss", (int64_t)res.epochs_done, res.last_loss, err)))
        return st;
    return kd_run_save_dual(r, s->model, m->dual, &m->def->text, err);
}

kd_status kd_run_save_dual(struct runner *r, const char *model, const struct kd_dual *dual,
                           const struct kd_text_settings *ts, struct kd_error *err)
{
    char path[1024], feat[KD_TEXT_SETTINGS_MAX];
    kd_run_model_path(r, model, path, sizeof path);
    kd_text_settings_format(ts, feat);
    kd_status st = kd_dual_save(dual, path, feat, err);
    if (st)
        return st;
    struct kd_hash h;
    char hex[KD_HASH_HEX_LEN + 1];
    if (kd_hash_file(path, &h, NULL) == KD_OK) {
        kd_hash_hex(h, hex);
        st = kd_store_artefact(r->store, r->run, path, "safetensors", hex, err);
    }
    return st;
}

kd_status kd_run_restore_dual(struct runner *r, const struct kd_pipe_stage *s, struct kd_error *err)
{
    if (s->kind != KD_STAGE_TRAIN && s->kind != KD_STAGE_DISTILL)
        return KD_OK;   /* only train and distill stages give retrieval models weights */
    if (kd_pipeline_model(r->p, s->model)->type == KD_MODEL_CROSS)
        return kd_run_restore_cross(r, s, err);
    char path[1024];
    kd_run_model_path(r, s->model, path, sizeof path);
    struct run_model *m = kd_run_find_model(r, s->model);
    kd_dual_free(m->dual);
    m->dual = NULL;
    kd_status st = kd_dual_load(path, &m->dual, NULL, err);
    if (st)
        kd_error_prefix(err, "cannot resume stage '%s' (remove --resume to start afresh)", s->name);
    /* a query tower distilled over a teacher's frozen documents is served with them */
    m->docs_from = s->kind == KD_STAGE_DISTILL && s->frozen_docs ? kd_run_docs_from(kd_run_dual_teacher(r, s)) : NULL;
    return st;
}

/* ----------------------------------------------------------------- evaluate */

kd_status kd_run_stage_evaluate_retrieval(struct runner *r, const struct kd_pipe_stage *s, int64_t sid,
                                          struct kd_error *err)
{
    /* BM25, a cross-encoder or a pair teacher (which re-rank BM25's top k) need the index */
    int bm25 = s->teacher[0] != 0;
    for (size_t k = 0; k < s->n_models; k++) {
        struct run_model *m = kd_run_find_model(r, s->models[k]);
        bm25 |= strcmp(s->models[k], KD_PIPE_BM25) == 0 || (m && m->def->type == KD_MODEL_CROSS);
    }
    struct run_beir *rb;
    kd_status st = kd_run_stage_beir(r, s, bm25, &rb, err);
    if (st)
        return st;
    struct kd_beir *b = &rb->b;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/runs", r->p->output);
    if ((st = kd_run_make_dirs(dir, err)))
        return st;
    const char *split = kd_beir_split_name(s->split);
    /* the models, then the teacher (whose figures are named teacher/NAME) */
    size_t n = s->n_models + (s->teacher[0] != 0);
    for (size_t k = 0; k < n && !st; k++) {
        int teacher = k == s->n_models;
        const char *name = teacher ? s->teacher : s->models[k];
        char label[KD_PIPE_NAME_MAX + 16], path[1200];
        snprintf(label, sizeof label, "%s%s", teacher ? "teacher/" : "", name);
        snprintf(path, sizeof path, "%s/%s.%s%s.run", dir, s->name, teacher ? "teacher-" : "", name);
        struct kd_rank_metrics rm;
        struct run_model *m = teacher ? NULL : kd_run_find_model(r, name);
        if (teacher) {
            st = kd_run_eval_rerank(r, s, rb, name, 1, path, &rm, err);
        } else if (strcmp(name, KD_PIPE_BM25) == 0) {
            /* BM25's own order of the candidates the run keeps (later
             * re-rankers of this split and k reuse them) */
            const struct kd_retrieval_candidates *c;
            const struct kd_retrieval_split *sp;
            if (!(st = kd_run_split(rb, s->split, &sp, err)) && !(st = kd_run_candidates(r, rb, s->split, s->k, &c, err)))
                st = kd_retrieval_eval_rerank(b, sp, c, c->bm25, path, name, &rm, err);
        } else if (m && m->def->type == KD_MODEL_CROSS) {
            st = kd_run_eval_rerank(r, s, rb, name, 0, path, &rm, err);
        } else {
            if (!m || !m->dual)
                return kd_error_set(err, KD_ERR_CONFIG, "stage '%s': model '%s' is not trained", s->name, name);
            st = kd_retrieval_eval_dual_docs(m->dual, &m->def->text, m->docs_from ? m->docs_from->dual : NULL,
                                             m->docs_from ? &m->docs_from->def->text : NULL, b, s->split, s->k,
                                             path, name, &rm, err);
        }
        if (st)
            return kd_error_prefix(err, "stage '%s', %s '%s' on '%s' (%s)", s->name, teacher ? "teacher" : "model",
                                   name, s->data, split);
        kd_log(KD_LOG_INFO, "  %s on '%s' (%s, %zu queries%s): nDCG@10 %.4f, MRR@10 %.4f, Recall@10 %.4f, "
               "Recall@100 %.4f", label, s->data, split, rm.n_evaluated,
               teacher || (m && m->def->type == KD_MODEL_CROSS) ? ", re-ranking BM25's top k" : "",
               rm.mean[KD_RM_NDCG10], rm.mean[KD_RM_MRR10], rm.mean[KD_RM_RECALL10], rm.mean[KD_RM_RECALL100]);
        if (r->sum->n_rows < KD_RUN_MAX_ROWS) {
            struct kd_run_eval_row *row = &r->sum->rows[r->sum->n_rows++];
            memset(row, 0, sizeof *row);
            snprintf(row->stage, sizeof row->stage, "%s", s->name);
            snprintf(row->model, sizeof row->model, "%.63s", label);
            snprintf(row->data, sizeof row->data, "%.50s/%s", s->data, split);
            row->n = rm.n_evaluated;
            row->retrieval = 1;
            row->accuracy = row->loss = row->agreement = NAN;
            for (int j = 0; j < KD_RM_COUNT; j++)
                row->rank[j] = rm.mean[j];
        }
        for (int j = 0; j < KD_RM_COUNT && !st; j++) {
            char metric[KD_PIPE_NAME_MAX + 64];
            snprintf(metric, sizeof metric, "%s/%s/%s", label, split, kd_rank_metric_name(j));
            st = kd_run_record_metric(r, sid, metric, -1, rm.mean[j], err);
        }
        kd_rank_metrics_release(&rm);
        if (!st)
            st = kd_run_add_artefact(r, path, "trec", err);
    }
    return st;
}

/* ------------------------------------------------------------------- export */

kd_status kd_run_stage_export_dual(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
    (void)sid;
    struct run_model *m = kd_run_find_model(r, s->model);
    if (!m || (!m->dual && !m->cross))
        return kd_error_set(err, KD_ERR_CONFIG, "stage '%s': model '%s' is not trained", s->name, s->model);
    char base[900], path[1024], feat[KD_TEXT_SETTINGS_MAX];
    snprintf(base, sizeof base, "%s", s->path ? s->path : s->model);
    char *slash = strrchr(base, '/');
    kd_status st = KD_OK;
    if (slash) {
        *slash = '\0';
        st = kd_run_make_dirs(base, err);
        *slash = '/';
        if (st)
            return st;
    }
    snprintf(path, sizeof path, "%s.safetensors", base);
    kd_text_settings_format(&m->def->text, feat);
    if (m->cross)
        st = kd_run_export_cross(r, s, path, err);
    else
        st = kd_dual_save(m->dual, path, feat, err);
    if (st)
        return st;
    return kd_run_add_artefact(r, path, "safetensors", err);
}

/* ------------------------------------------------------------------ dry run */

/* ", 30 from model 'dual' and 20 random documents", or "". */
static void plan_candidates(const struct kd_pipe_stage *s, char *buf, size_t n)
{
    buf[0] = '\0';
    if (s->cand_model[0] && s->cand_from_model && s->cand_random)
        snprintf(buf, n, ", %zu from model '%s' and %zu random documents", s->cand_from_model, s->cand_model,
                 s->cand_random);
    else if (s->cand_model[0] && s->cand_from_model)
        snprintf(buf, n, " and %zu from model '%s'", s->cand_from_model, s->cand_model);
    else if (s->cand_random)
        snprintf(buf, n, " and %zu random documents", s->cand_random);
}

void kd_run_plan_retrieval(struct runner *r, size_t i, const struct kd_pipe_stage *s)
{
    char cand[KD_PIPE_NAME_MAX + 96];
    const struct kd_pipe_dataset *def = dataset_def(r->p, s->data, NULL);
    const char *src = def ? def->beir : "?";
    int convert = def && def->wordnet && !has_corpus(def->beir);
    for (size_t j = 0; j < i; j++)   /* the first stage that reads it converts it */
        convert &= strcmp(r->p->stages[j].data, s->data) != 0;
    switch (s->kind) {
    case KD_STAGE_TRAIN: {
        const struct kd_pipe_model *m = kd_pipeline_model(r->p, s->model);
        char feat[KD_TEXT_SETTINGS_MAX] = "";
        if (m)
            kd_text_settings_format(&m->text, feat);
        if (m && m->type == KD_MODEL_CROSS)
            kd_run_plan_line(r, "%2zu. %s: train cross-encoder '%s' on '%s' (%s split of %s%s), lists of each "
                             "relevant document and %zu negatives from BM25's top %zu, %zu epochs, batch %zu lists, "
                             "features %s", i + 1, s->name, s->model, s->data, kd_beir_split_name(s->split), src,
                             convert ? ", converted from WordNet first" : "", s->negatives, s->k, s->epochs,
                             s->batch, feat);
        else
            kd_run_plan_line(r, "%2zu. %s: train dual encoder '%s' on '%s' (%s split of %s%s), in-batch + %zu BM25 "
                             "negatives, %zu epochs, batch %zu, features %s", i + 1, s->name, s->model, s->data,
                             kd_beir_split_name(s->split), src, convert ? ", converted from WordNet first" : "",
                             s->negatives, s->epochs, s->batch, feat);
        break;
    }
    case KD_STAGE_DISTILL: {
        plan_candidates(s, cand, sizeof cand);
        char how[160];
        if (kd_run_embed_exec_def(r, s))
            snprintf(how, sizeof how, "scored by the embedding teacher (dot products, stored), "
                     "embeddings matched (queries %g, documents %g)", s->match_q, s->match_d);
        else if (!kd_run_dual_teacher(r, s))
            snprintf(how, sizeof how, "scored through the store");
        else if (s->frozen_docs)
            snprintf(how, sizeof how, "scored by the dual-encoder teacher, query embeddings matched (weight %g), "
                     "its document embeddings frozen", s->match_q);
        else
            snprintf(how, sizeof how, "scored by the dual-encoder teacher, embeddings matched (queries %g, "
                     "documents %g)", s->match_q, s->match_d);
        kd_run_plan_line(r, "%2zu. %s: distill dual encoder '%s' from teacher '%s' on '%s' (%s split of %s%s): "
                         "BM25's top %zu%s of every query %s, %s loss, %zu epochs, batch %zu lists", i + 1, s->name,
                         s->model, s->teacher, s->data, kd_beir_split_name(s->split), src,
                         convert ? ", converted from WordNet first" : "", s->k, cand, how,
                         kd_rank_loss_name(s->rank_loss), s->epochs, s->batch);
        if (def && !convert)
            kd_run_plan_stage_queries(r, s, def->beir);
        else
            kd_run_plan_line(r, "    queries: the %s split's judged ones%s, counted once WordNet is converted",
                             kd_beir_split_name(s->split), s->unlabelled ? " and the unjudged ones" : "");
        if (s->select.on)
            kd_run_plan_retrieval_select(r, s);
        else
            kd_run_plan_retrieval_queries(r, s);
        break;
    }
    case KD_STAGE_LABEL:
        plan_candidates(s, cand, sizeof cand);
        kd_run_plan_line(r, "%2zu. %s: teacher '%s' scores BM25's top %zu%s of every query of '%s' (%s split of "
                         "%s%s) through the store", i + 1, s->name, s->teacher, s->k, cand, s->data,
                         kd_beir_split_name(s->split), src, convert ? ", converted from WordNet first" : "");
        kd_run_plan_retrieval_queries(r, s);
        break;
    case KD_STAGE_EVALUATE: {
        char list[KD_PIPE_MAX_LIST * (KD_PIPE_NAME_MAX + 2)];
        const char *names[KD_PIPE_MAX_LIST];
        for (size_t k = 0; k < s->n_models; k++)
            names[k] = s->models[k];
        list[0] = '\0';
        for (size_t k = 0; k < s->n_models; k++) {
            size_t at = strlen(list);
            snprintf(list + at, sizeof list - at, "%s%s", k ? ", " : "", names[k]);
        }
        if (s->teacher[0]) {
            size_t at = strlen(list);
            snprintf(list + at, sizeof list - at, "%steacher %s (re-ranking BM25)", at ? ", " : "", s->teacher);
        }
        kd_run_plan_line(r, "%2zu. %s: rank '%s' (%s split of %s%s) with %s: top %zu, nDCG@10, MRR@10, Recall@10, "
                         "Recall@100, run files in %s/runs", i + 1, s->name, s->data, kd_beir_split_name(s->split),
                         src, convert ? ", converted from WordNet first" : "", list, s->k, r->p->output);
        if (s->teacher[0])
            kd_run_plan_retrieval_queries(r, s);
        break;
    }
    case KD_STAGE_EXPORT:
        kd_run_plan_line(r, "%2zu. %s: export %s '%s' as safetensors (featuriser settings in its metadata)", i + 1,
                         s->name, kd_pipeline_model(r->p, s->model)->type == KD_MODEL_CROSS ? "cross-encoder"
                                                                                           : "dual encoder",
                         s->model);
        break;
    default:
        break;
    }
}

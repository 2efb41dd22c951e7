/* distill on a retrieval data set: a dual encoder learns from a pair
 * teacher's scores of BM25's top k candidates of every query of a split,
 * plus the `candidates:` a dual encoder retrieves and random documents
 * (docs/retrieval.md, "Distilling a dual encoder in a pipeline"). The
 * candidate lists and the teacher's scores come from kd_run_stage_lists:
 * a pair the teacher has scored before (a label stage with the same teacher,
 * split and k, or an earlier run) is read from the store; a pair it has not
 * scored is asked once, through the store, as a label stage asks it. The
 * model is trained by kd_dual_distill with the stage's loss and saved like
 * a dual-encoder train stage's, so evaluate, export and --resume treat both
 * alike. A teacher whose model is a dual encoder (EmbedDistill) scores the
 * lists itself and gives its embeddings to match (kd_run_embed_teacher);
 * with frozen_documents its document embeddings are the student's. An exec
 * teacher that embeds texts does the same through the store
 * (kd_run_embed_exec), without frozen_documents. */
#include "pipelines/run_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/kd_store.h"

/* The training lists: the queries whose BM25 list is full (k candidates,
 * each scored by the teacher), their documents, scores and gold marks (a
 * candidate judged relevant in the split's qrels). */
struct dlists {
    size_t n, L;
    size_t *q;          /* (n) rows of the query features */
    size_t *src;        /* (n) the list's row in the split */
    size_t *doc;        /* (n, L) */
    float *t;           /* (n, L) */
    int8_t *rel;        /* (n, L) */
    const char **qt;    /* (n) the query texts, for the features */
    float *w;           /* (n) the lists' weights (query_weights), or NULL */
    size_t short_lists; /* queries left out: fewer than k candidates */
    size_t unlabelled;  /* lists of queries without judgements (src >= n_labelled) */
};

static void dlists_release(struct dlists *d)
{
    free(d->q);
    free(d->src);
    free(d->doc);
    free(d->t);
    free(d->rel);
    free(d->qt);
    free(d->w);
    memset(d, 0, sizeof *d);
}

static int judged_relevant(const struct kd_retrieval_split *sp, size_t i, int64_t doc)
{
    for (size_t r = sp->offsets[i]; r < sp->offsets[i + 1]; r++)
        if ((int64_t)sp->doc[r] == doc && sp->rel[r] > 0)
            return 1;
    return 0;
}

/* w (sp->n) the weight of each query of the split, or NULL; rows from
 * n_labelled on are unlabelled queries. */
static kd_status build_lists(const struct kd_beir *b, const struct kd_retrieval_split *sp, size_t n_labelled,
                             const float *w, const struct kd_retrieval_lists *l, struct dlists *out,
                             struct kd_error *err)
{
    const struct kd_retrieval_candidates *c = l->c;
    size_t L = c->k, n = 0;
    memset(out, 0, sizeof *out);
    out->L = L;
    if (c->n != sp->n)
        return kd_error_set(err, KD_ERR_ARG, "the candidates of %zu queries do not match the split's %zu", c->n,
                            sp->n);
    size_t cap = c->n ? c->n : 1;
    out->q = malloc(cap * sizeof *out->q);
    out->src = malloc(cap * sizeof *out->src);
    out->qt = malloc(cap * sizeof *out->qt);
    out->doc = malloc(cap * L * sizeof *out->doc);
    out->t = malloc(cap * L * sizeof *out->t);
    out->rel = malloc(cap * L * sizeof *out->rel);
    out->w = w ? malloc(cap * sizeof *out->w) : NULL;
    if (!out->q || !out->src || !out->qt || !out->doc || !out->t || !out->rel || (w && !out->w))
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < c->n; i++) {
        if (c->queries[i] != sp->queries[i])
            return kd_error_set(err, KD_ERR_ARG, "candidate list %zu is not the split's query %zu", i, i);
        int full = 1;
        for (size_t j = 0; j < L; j++)
            full &= c->docs[i * L + j] >= 0 && isfinite(l->teacher[i * L + j]);
        if (!full) {
            out->short_lists++;
            continue;
        }
        for (size_t j = 0; j < L; j++) {
            out->doc[n * L + j] = (size_t)c->docs[i * L + j];
            out->t[n * L + j] = l->teacher[i * L + j];
            out->rel[n * L + j] = (int8_t)judged_relevant(sp, i, c->docs[i * L + j]);
        }
        if (w)
            out->w[n] = w[i];
        out->unlabelled += i >= n_labelled;
        out->q[n] = n;
        out->src[n] = i;
        out->qt[n++] = b->query_texts[c->queries[i]];
    }
    out->n = n;
    return KD_OK;
}

kd_status kd_run_stage_distill_dual(struct runner *r, const struct kd_pipe_stage *s, int64_t sid,
                                    struct kd_error *err)
{
    struct run_model *m = kd_run_find_model(r, s->model);
    struct run_beir *rb;
    const struct kd_retrieval_split *sp;
    struct kd_retrieval_lists lists = {0};
    struct kd_retrieval_candidates own = {0};
    struct kd_label_stats ls;
    struct dlists dl = {0};
    struct kd_features fq = {0}, fd = {0};
    /* EmbedDistill: the dual-encoder teacher's embeddings of the split's
     * queries and of the corpus, and of the lists' queries (rows of fq) */
    struct run_model *tm = kd_run_dual_teacher(r, s);
    int ex = kd_run_embed_exec_def(r, s) != NULL; /* or an exec program's */
    struct kd_tensor teq = {0}, ted = {0}, tq = {0};
    const char *split = kd_beir_split_name(s->split);
    size_t n_lab = 0;
    float *qw = NULL;
    if (s->select.on) { /* queries chosen in rounds (pipelines/stage_retrieval_select.c) */
        if (tm || ex || s->cand_random || s->cand_from_model) /* refused at the select key when read from YAML */
            return kd_error_set(err, KD_ERR_CONFIG, "stage '%s': 'select' chooses queries whose BM25 lists a pair "
                                "teacher scores; it does not combine with %s yet", s->name,
                                tm || ex ? "an embedding teacher (EmbedDistill)" : "'candidates'");
        return kd_run_stage_distill_dual_select(r, s, sid, err);
    }
    kd_status st = kd_run_stage_beir(r, s, 1, &rb, err);
    if (!st)
        st = kd_run_stage_split(r, rb, s, &sp, &n_lab, err);
    if (!st)
        st = kd_run_check_queries(s, rb, sp, n_lab, err);
    if (!st)
        st = kd_run_stage_weights(s, rb, sp, n_lab, &qw, err);
    /* before any teacher call: labelled queries may bring gold (whether their
     * lists hold it is known once built), weights must leave something */
    if (!st)
        st = kd_run_check_lists(s, sp->n, sp->n - n_lab, n_lab, qw, err);
    if (!st && !tm && !ex) {
        st = kd_run_stage_lists(r, s, &own, &lists, &ls, err);
    } else if (!st && ex) {
        const struct kd_retrieval_candidates *bm, *c;
        if (!(st = kd_run_stage_candidates(r, s, &own, &bm, &c, err)) &&
            (st = kd_run_embed_exec(r, s, rb, sp, c, &lists, &teq, &ted, err)))
            kd_retrieval_candidates_release(&own);
    } else if (!st) {
        const struct kd_retrieval_candidates *bm, *c;
        if (!tm->dual)
            st = kd_error_set(err, KD_ERR_CONFIG, "stage '%s': teacher '%s': model '%s' is not trained yet",
                              s->name, s->teacher, tm->def->name);
        else if (!(st = kd_run_stage_candidates(r, s, &own, &bm, &c, err)) &&
            (st = kd_run_embed_teacher(s, tm, rb, sp, c, &lists, &teq, &ted, err)))
            kd_retrieval_candidates_release(&own);
    }
    if (st) {
        free(qw);
        return st;
    }
    if ((st = build_lists(&rb->b, sp, n_lab, qw, &lists, &dl, err))) {
        kd_error_prefix(err, "stage '%s' on '%s' (%s)", s->name, s->data, split);
        goto done;
    }
    if (dl.n == 0) {
        st = kd_error_set(err, KD_ERR_CONFIG, "stage '%s': no query of '%s' (%s) has %zu BM25 candidates to "
                          "distill on (%zu lists are shorter); lower 'k'", s->name, s->data, split, s->k,
                          dl.short_lists);
        goto done;
    }
    size_t golds = 0;
    for (size_t i = 0; i < dl.n; i++) {
        int any = 0;
        for (size_t j = 0; j < dl.L; j++)
            any |= dl.rel[i * dl.L + j];
        golds += (size_t)any;
    }
    if ((st = kd_run_check_lists(s, dl.n, dl.unlabelled, golds, dl.w, err)))
        goto done;
    kd_dual_free(m->dual);
    m->dual = NULL;
    m->docs_from = NULL; /* set again below if this student's documents are its teacher's */
    if ((st = kd_dual_new(&m->def->dual, r->p->seed, &m->dual, err))) {
        kd_error_prefix(err, "stage '%s': model '%s'", s->name, s->model);
        goto done;
    }
    if ((st = kd_retrieval_featurize_docs(&m->def->text, &rb->b, &fd, err)) ||
        (st = kd_featurize(&m->def->text, dl.qt, NULL, dl.n, 0, &fq, err)))
        goto done;
    struct kd_dual_distill_config dc;
    kd_dual_distill_config_init(&dc);
    dc.train.epochs = s->epochs;
    dc.train.batch = s->batch;
    dc.train.seed = r->p->seed;
    dc.train.label = s->name;
    dc.train.stop = r->opt->stop;
    dc.train.table.lr = s->table_lr;
    kd_run_optim_settings(s, dl.n, dc.train.batch, dc.train.epochs, &dc.train.optim, &dc.train.sched);
    dc.loss.loss = s->rank_loss;
    dc.loss.T = s->temperature;
    dc.loss.negatives = s->negatives;
    dc.loss.alpha = s->alpha;
    if (tm || ex) {
        size_t Et = teq.cols;
        if ((st = kd_tensor_init(&tq, dl.n, Et, err)))
            goto done;
        for (size_t i = 0; i < dl.n; i++)
            memcpy(tq.data + i * Et, teq.data + dl.src[i] * Et, Et * sizeof *tq.data);
        dc.teacher_q = &tq;
        dc.lambda_q = s->match_q;
        if (s->frozen_docs) {
            dc.frozen_docs = &ted;
        } else {
            dc.teacher_d = &ted;
            dc.lambda_d = s->match_d;
        }
    }
    struct kd_cand_lists cl = {dl.n, dl.L, dl.q, dl.doc, dl.t, dl.rel, dl.w};
    struct kd_train_result res;
    if ((st = kd_dual_distill(m->dual, &fq, &fd, &cl, &dc, &res, err))) {
        kd_error_prefix(err, "stage '%s', model '%s' on '%s' (%s)", s->name, s->model, s->data, split);
        goto done;
    }
    m->docs_from = tm && s->frozen_docs ? kd_run_docs_from(tm) : NULL;
    kd_log(KD_LOG_INFO, "  dual encoder '%s' distilled from teacher '%s' on '%s' (%s: %zu lists of %zu candidates, "
           "%zu of unlabelled queries, %zu with a relevant one, %zu shorter lists left out), %s loss%s: %zu epochs in "
           "%.1f s, loss %.4f", s->model, s->teacher, s->data, split, dl.n, dl.L, dl.unlabelled, golds,
           dl.short_lists, kd_rank_loss_name(s->rank_loss),
           !tm && !ex ? "" : s->frozen_docs ? " and query embedding matching, the teacher's documents frozen"
                                     : " and embedding matching", res.epochs_done, res.seconds, res.last_loss);
    if ((st = kd_run_record_metric(r, sid, "train_loss", (int64_t)res.epochs_done, res.last_loss, err)) ||
        (st = kd_run_record_metric(r, sid, "lists", -1, (double)dl.n, err)) ||
        (st = kd_run_record_metric(r, sid, "lists_with_gold", -1, (double)golds, err)) ||
        (st = kd_run_record_metric(r, sid, "lists_unlabelled", -1, (double)dl.unlabelled, err)) ||
        (st = kd_run_record_metric(r, sid, "lists_short", -1, (double)dl.short_lists, err)))
        goto done;
    st = kd_run_save_dual(r, s->model, m->dual, &m->def->text, err);
done:
    free(qw);
    kd_features_release(&fq);
    kd_features_release(&fd);
    kd_tensor_release(&teq);
    kd_tensor_release(&ted);
    kd_tensor_release(&tq);
    dlists_release(&dl);
    kd_retrieval_lists_release(&lists);
    kd_retrieval_candidates_release(&own);
    return st;
}

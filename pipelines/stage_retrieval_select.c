/* A distill stage on a retrieval data set with `select:`: the pair teacher
 * scores the candidate lists of the queries the student chooses, within a
 * budget of queries (docs/retrieval.md, "Choosing the queries").
 *
 *   pool     the queries of the stage's split whose BM25 list holds k
 *            candidates (shorter lists are left out, as without select)
 *   round r  the student scores the candidates of every query not chosen
 *            yet; the strategy picks the round's quota (round 1, with no
 *            trained student, picks at random); the teacher scores the
 *            picks' lists through the store (a pair it scored before is
 *            read, not asked); the picks go to the selections table; the
 *            student trains on every list chosen so far (schedule warm:
 *            on from its weights, retrain: from its initial weights);
 *            with `validation:`, it is measured on that split
 *
 * The budget counts queries whose lists go to the teacher, stored or not;
 * the pairs asked and read from the store are counted beside it. After
 * every round the student and the picks are saved under
 * <output>/checkpoints/, so --resume continues after the last finished
 * round, reading the picks' scores back from the store. */
#include "pipelines/run_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sampling/kd_sampling.h"
#include "store/kd_store.h"

struct rsel {
    struct runner *r;
    const struct kd_pipe_stage *s;
    int64_t sid;
    struct run_model *m;
    struct run_beir *rb;
    const struct kd_retrieval_split *sp;
    const struct kd_retrieval_candidates *c;
    size_t N, L, short_lists;
    size_t n_labelled;         /* rows of c from this on are unlabelled queries */
    float *qw;                 /* (c->n) each row's weight (query_weights), or NULL */
    float *w;                  /* (N) the chosen lists' weights, in order, with qw */
    size_t *pool;              /* (N) row of c (the split's query number) of each pool query */
    const char **qt;           /* (N) their texts */
    struct kd_features fq, fd; /* the pool's queries, every document */
    unsigned char *chosen;     /* (N) */
    size_t n_chosen;
    size_t *order;             /* (N) pool index of each pick, in the order they joined */
    /* the chosen lists, in the same order */
    size_t *doc;               /* (N, L) */
    float *t;                  /* (N, L) */
    int8_t *rel;               /* (N, L) */
    struct kd_budget budget;
    size_t asked, cached;      /* pairs */
    size_t epochs_done;
    size_t saved;              /* the last round saved under checkpoints/ (0: none) */
    struct run_pair_teacher pt;
    int pt_open;
};

static void rsel_release(struct rsel *a)
{
    free(a->qw), free(a->w);
    free(a->pool), free(a->qt), free(a->chosen), free(a->order), free(a->doc), free(a->t), free(a->rel);
    kd_features_release(&a->fq);
    kd_features_release(&a->fd);
    if (a->pt_open)
        kd_run_pair_teacher_close(&a->pt);
}

static int relevant(const struct kd_retrieval_split *sp, size_t i, int64_t doc)
{
    for (size_t r = sp->offsets[i]; r < sp->offsets[i + 1]; r++)
        if ((int64_t)sp->doc[r] == doc && sp->rel[r] > 0)
            return 1;
    return 0;
}

/* The pool: the split's queries with a full list of k candidates and a
 * weight above 0 (a weight-0 query would spend budget and teach nothing). */
static kd_status build_pool(struct rsel *a, struct kd_error *err)
{
    const struct kd_retrieval_candidates *c = a->c;
    size_t n = c->n ? c->n : 1, L = a->L;
    a->pool = malloc(n * sizeof *a->pool);
    a->qt = malloc(n * sizeof *a->qt);
    a->chosen = calloc(n, 1);
    a->order = malloc(n * sizeof *a->order);
    a->doc = malloc(n * L * sizeof *a->doc);
    a->t = malloc(n * L * sizeof *a->t);
    a->rel = malloc(n * L * sizeof *a->rel);
    a->w = a->qw ? malloc(n * sizeof *a->w) : NULL;
    if (!a->pool || !a->qt || !a->chosen || !a->order || !a->doc || !a->t || !a->rel || (a->qw && !a->w))
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for the %zu queries of the pool", c->n);
    for (size_t i = 0; i < c->n; i++) {
        if (a->qw && !(a->qw[i] > 0.0f))
            continue;
        int full = 1;
        for (size_t j = 0; j < L; j++)
            full &= c->docs[i * L + j] >= 0;
        if (!full) {
            a->short_lists++;
            continue;
        }
        a->qt[a->N] = a->rb->b.query_texts[c->queries[i]];
        a->pool[a->N++] = i;
    }
    return KD_OK;
}

/* The teacher's scores of the lists of picks[0..n) (pool indices), through
 * the store, appended to the chosen lists. */
static kd_status label_picks(struct rsel *a, const size_t *picks, size_t n, struct kd_error *err)
{
    const struct kd_retrieval_candidates *c = a->c;
    size_t L = a->L;
    struct kd_retrieval_candidates sub = {n, L, malloc((n ? n : 1) * sizeof(size_t)),
                                          malloc((n ? n : 1) * L * sizeof(int64_t)),
                                          malloc((n ? n : 1) * L * sizeof(float))};
    struct kd_retrieval_lists lists = {0};
    struct kd_label_stats ls = {0};
    kd_status st = KD_OK;
    if (!sub.queries || !sub.docs || !sub.bm25) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for %zu lists", n);
        goto done;
    }
    for (size_t p = 0; p < n; p++) {
        size_t i = a->pool[picks[p]];
        sub.queries[p] = c->queries[i];
        memcpy(sub.docs + p * L, c->docs + i * L, L * sizeof *sub.docs);
        memcpy(sub.bm25 + p * L, c->bm25 + i * L, L * sizeof *sub.bm25);
    }
    st = kd_retrieval_lists_init(a->pt.t, a->rb->name, &a->rb->b, &sub, SIZE_MAX, &lists, &ls, a->r->opt->stop, err);
    /* what was asked is stored and paid for, even when the call failed part-way */
    a->r->sum->queries += ls.queried;
    a->r->sum->cached += ls.cached;
    a->asked += ls.queried;
    a->cached += ls.cached;
    if (st) {
        kd_error_prefix(err, "stage '%s', teacher '%s' on '%s'", a->s->name, a->s->teacher, a->rb->name);
        goto done;
    }
    for (size_t p = 0; p < n; p++) {
        size_t at = a->n_chosen, i = a->pool[picks[p]];
        for (size_t j = 0; j < L; j++) {
            float t = lists.teacher[p * L + j];
            if (!isfinite(t)) {
                st = kd_error_set(err, KD_ERR_ARG, "stage '%s': teacher '%s' gave no finite score for candidate %zu "
                                  "of query '%s'", a->s->name, a->s->teacher, j + 1,
                                  a->rb->b.query_ids[c->queries[i]]);
                goto done;
            }
            a->doc[at * L + j] = (size_t)c->docs[i * L + j];
            a->t[at * L + j] = t;
            a->rel[at * L + j] = (int8_t)relevant(a->sp, i, c->docs[i * L + j]);
        }
        if (a->w)
            a->w[at] = a->qw[i];
        a->order[at] = picks[p];
        a->chosen[picks[p]] = 1;
        a->n_chosen++;
    }
done:
    kd_retrieval_lists_release(&lists);
    free(sub.queries), free(sub.docs), free(sub.bm25);
    return st;
}

/* The student's scores (n, L) of the candidates of the pool queries cand[0..n). */
static kd_status student_scores(struct rsel *a, const size_t *cand, size_t n, float *s, struct kd_error *err)
{
    struct kd_dual *m = a->m->dual;
    struct kd_tensor eq = {0}, ed = {0};
    size_t O = kd_dual_dim(m), L = a->L;
    kd_status st = kd_tensor_init(&eq, a->N, O, err);
    if (!st)
        st = kd_tensor_init(&ed, a->fd.n, O, err);
    if (!st)
        st = kd_dual_encode(m, KD_SIDE_QUERY, &a->fq, &eq, err);
    if (!st)
        st = kd_dual_encode(m, KD_SIDE_DOC, &a->fd, &ed, err);
    if (!st) {
        /* the scores the losses see: cos / temperature for a cosine model */
        float scale = m->cfg.score == KD_SCORE_COSINE ? 1.0f / m->cfg.temperature : 1.0f;
        for (size_t x = 0; x < n; x++) {
            const float *q = kd_tensor_row(&eq, cand[x]);
            const int64_t *docs = a->c->docs + a->pool[cand[x]] * L;
            for (size_t j = 0; j < L; j++) {
                const float *d = kd_tensor_row(&ed, (size_t)docs[j]);
                float dot = 0.0f;
                for (size_t o = 0; o < O; o++)
                    dot += q[o] * d[o];
                s[x * L + j] = scale * dot;
            }
        }
    }
    kd_tensor_release(&eq);
    kd_tensor_release(&ed);
    return st;
}

/* Trains the student on the n_chosen lists (seeded by the round). */
static kd_status train_round(struct rsel *a, size_t round, size_t epochs, struct kd_train_result *res,
                             struct kd_error *err)
{
    const struct kd_pipe_stage *s = a->s;
    struct kd_dual_distill_config dc;
    kd_dual_distill_config_init(&dc);
    dc.train.epochs = epochs;
    dc.train.batch = s->batch;
    dc.train.seed = kd_rng_derive(a->r->p->seed, KD_RNG_TRAIN_ROUND, round);
    char label[128];
    snprintf(label, sizeof label, "%s round %zu", s->name, round);
    dc.train.label = label;
    dc.train.stop = a->r->opt->stop;
    dc.train.table.lr = s->table_lr;
    kd_run_optim_settings(s, a->n_chosen, dc.train.batch, dc.train.epochs, &dc.train.optim, &dc.train.sched);
    dc.loss.loss = s->rank_loss;
    dc.loss.T = s->temperature;
    dc.loss.negatives = s->negatives;
    dc.loss.alpha = s->alpha;
    struct kd_cand_lists cl = {a->n_chosen, a->L, a->order, a->doc, a->t, a->rel, a->w};
    kd_status st = kd_dual_distill(a->m->dual, &a->fq, &a->fd, &cl, &dc, res, err);
    if (st)
        return kd_error_prefix(err, "stage '%s', round %zu", s->name, round);
    a->epochs_done += res->epochs_done;
    return KD_OK;
}

/* ------------------------------------------------------ rounds on disk */

static void round_paths(const struct rsel *a, size_t round, char *student, char *state, size_t n)
{
    const char *out = a->r->p->output, *name = a->s->name;
    if (student)
        snprintf(student, n, "%s/checkpoints/%s-round-%zu.safetensors", out, name, round);
    if (state)
        snprintf(state, n, "%s/checkpoints/%s-round-state.safetensors", out, name);
}

/* The student of round `round` (in a file named by the round), then the
 * state that names it: the picks in order, the run, round, epochs, pairs
 * asked and read. The previous round's student goes once the state points
 * past it, so a crash at any point leaves a consistent pair or none. */
static kd_status save_round(struct rsel *a, size_t round, struct kd_error *err)
{
    char student[1024], state[1024], prev[1024], feat[KD_TEXT_SETTINGS_MAX];
    round_paths(a, round, student, state, sizeof student);
    kd_text_settings_format(&a->m->def->text, feat);
    kd_status st = kd_dual_save(a->m->dual, student, feat, err);
    float *col = malloc((a->n_chosen ? a->n_chosen : 1) * sizeof *col);
    if (!st && !col)
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < a->n_chosen; i++)
        col[i] = (float)a->order[i];   /* exact: the pool is checked below 2^24 */
    char run[32], rnd[32], ep[32], asked[32], cached[32];
    snprintf(run, sizeof run, "%lld", (long long)a->r->run);
    snprintf(rnd, sizeof rnd, "%zu", round);
    snprintf(ep, sizeof ep, "%zu", a->epochs_done);
    snprintf(asked, sizeof asked, "%zu", a->asked);
    snprintf(cached, sizeof cached, "%zu", a->cached);
    struct kd_st_writer w;
    kd_st_writer_init(&w);
    uint64_t shape[1] = {a->n_chosen};
    if (!st)
        st = kd_st_writer_add(&w, "pool_index", KD_DTYPE_F32, 1, shape, col, err);
    const char *meta[][2] = {{"kd_format", "retrieval-select-round"}, {"run", run}, {"round", rnd},
                             {"epochs", ep}, {"pairs_asked", asked}, {"pairs_cached", cached}};
    for (size_t i = 0; !st && i < sizeof meta / sizeof *meta; i++)
        st = kd_st_writer_meta(&w, meta[i][0], meta[i][1], err);
    if (!st)
        st = kd_st_writer_save(&w, state, err);
    kd_st_writer_release(&w);
    free(col);
    if (!st && a->saved && a->saved != round) {
        round_paths(a, a->saved, prev, NULL, sizeof prev);
        remove(prev);
    }
    if (!st)
        a->saved = round;
    if (st)
        kd_error_prefix(err, "stage '%s', round %zu: saving the round", a->s->name, round);
    return st;
}

static void remove_round_files(const struct rsel *a)
{
    char student[1024], state[1024];
    round_paths(a, a->saved, student, state, sizeof student);
    remove(student);
    remove(state);
}

/* On --resume: the last finished round of this stage in this run (*done,
 * 0 when there is none), its picks' lists read back through the store and
 * its student loaded. */
static kd_status restore_round(struct rsel *a, size_t *done, struct kd_error *err)
{
    *done = 0;
    char student[1024], state[1024];
    round_paths(a, 0, NULL, state, sizeof state);
    if (!a->r->opt->resume || access(state, R_OK) != 0)
        return KD_OK;
    struct kd_safetensors f = {0};
    struct kd_error ignored = {0};
    struct kd_dual *net = NULL;
    float *col = NULL;
    size_t *picks = NULL;
    kd_status st = KD_OK;
    if (kd_safetensors_read(state, &f, &ignored))
        goto done;
    const char *run = kd_safetensors_meta(&f, "run"), *rnd = kd_safetensors_meta(&f, "round");
    const struct kd_st_tensor *t0 = kd_safetensors_find(&f, "pool_index");
    if (!run || !rnd || strtoll(run, NULL, 10) != (long long)a->r->run || !t0 || t0->ndim != 1)
        goto done;
    size_t round = (size_t)strtoull(rnd, NULL, 10), n = (size_t)t0->shape[0];
    round_paths(a, round, student, NULL, sizeof student);
    if (round == 0 || n > a->N || kd_dual_load(student, &net, NULL, &ignored) ||
        net->n_params != a->m->dual->n_params)
        goto done;
    col = malloc((n ? n : 1) * sizeof *col);
    picks = malloc((n ? n : 1) * sizeof *picks);
    if (!col || !picks) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (kd_safetensors_copy_f32(&f, "pool_index", col, n, 0, NULL, &ignored))
        goto done;
    for (size_t j = 0; j < n; j++) {
        if (!(col[j] >= 0.0f) || (size_t)col[j] >= a->N || a->chosen[(size_t)col[j]])
            goto done;   /* not this pool's state */
        picks[j] = (size_t)col[j];
        a->chosen[picks[j]] = 1;
    }
    memset(a->chosen, 0, a->N);
    size_t asked0 = a->asked;
    if ((st = label_picks(a, picks, n, err)))
        goto done;
    kd_budget_charge(&a->budget, n);
    const char *ep = kd_safetensors_meta(&f, "epochs"), *pa = kd_safetensors_meta(&f, "pairs_asked"),
               *pc = kd_safetensors_meta(&f, "pairs_cached");
    a->epochs_done = ep ? (size_t)strtoull(ep, NULL, 10) : 0;
    size_t again = a->asked - asked0;
    /* the pairs of the finished rounds count as they were counted then */
    a->asked = pa ? (size_t)strtoull(pa, NULL, 10) + again : a->asked;
    a->cached = pc ? (size_t)strtoull(pc, NULL, 10) : a->cached;
    kd_dual_free(a->m->dual);
    a->m->dual = net;
    net = NULL;
    *done = round;
    a->saved = round;
    kd_log(KD_LOG_INFO, "  resuming after round %zu: %zu queries restored, %zu pairs asked again; student from %s",
           round, n, again, student);
done:
    if (!*done && !st) {
        memset(a->chosen, 0, a->N);
        kd_log(KD_LOG_INFO, "  no finished round of stage '%s' to resume from; it starts at round 1", a->s->name);
    }
    kd_safetensors_release(&f);
    kd_dual_free(net);
    free(col);
    free(picks);
    return st;
}

/* ------------------------------------------------------------ the rounds */

static kd_status measure_round(struct rsel *a, size_t round, struct kd_error *err)
{
    const struct kd_pipe_select *sel = &a->s->select;
    if (!sel->has_dev)
        return KD_OK;
    struct kd_rank_metrics rm;
    kd_status st = kd_retrieval_eval_dual(a->m->dual, &a->m->def->text, &a->rb->b, sel->dev, 100, NULL, NULL, &rm,
                                          err);
    if (st)
        return kd_error_prefix(err, "stage '%s', round %zu: measuring on the %s split", a->s->name, round,
                               kd_beir_split_name(sel->dev));
    kd_log(KD_LOG_INFO, "    student on the %s split: nDCG@10 %.4f, MRR@10 %.4f, Recall@100 %.4f",
           kd_beir_split_name(sel->dev), rm.mean[KD_RM_NDCG10], rm.mean[KD_RM_MRR10], rm.mean[KD_RM_RECALL100]);
    struct kd_store_metric mt[3] = {{"round_ndcg@10", (int64_t)round, rm.mean[KD_RM_NDCG10]},
                                    {"round_mrr@10", (int64_t)round, rm.mean[KD_RM_MRR10]},
                                    {"round_recall@100", (int64_t)round, rm.mean[KD_RM_RECALL100]}};
    kd_rank_metrics_release(&rm);
    return kd_store_put_metrics(a->r->store, a->r->run, a->sid, mt, 3, err);
}

static kd_status run_rounds(struct rsel *a, struct kd_error *err)
{
    const struct kd_pipe_stage *s = a->s;
    const struct kd_pipe_select *sel = &s->select;
    size_t N = a->N, L = a->L, R = sel->rounds;
    size_t epochs = sel->round_epochs ? sel->round_epochs : s->epochs;
    kd_status st = kd_budget_init(&a->budget, sel->budget, N, R, err);
    if (st)
        return kd_error_prefix(err, "stage '%s'", s->name);
    if (kd_budget_capped(&a->budget))
        kd_log(KD_LOG_INFO, "  budget: %zu queries asked for, capped to the %zu queries with %zu candidates", sel->budget,
               N, L);
    size_t qmax = kd_budget_round_max(&a->budget) + 1;
    size_t *cand = malloc((N ? N : 1) * sizeof *cand), *picks = malloc(qmax * sizeof *picks);
    float *sc = malloc((N ? N : 1) * L * sizeof *sc);
    struct kd_selection *chosen = malloc(qmax * sizeof *chosen);
    struct kd_store_selection *rec = malloc(qmax * sizeof *rec);
    if (!cand || !picks || !sc || !chosen || !rec) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for the pool of %zu queries", N);
        goto done;
    }
    size_t resumed = 0;
    if ((st = restore_round(a, &resumed, err)))
        goto done;
    for (size_t round = resumed + 1; round <= R && a->n_chosen < N; round++) {
        size_t quota = kd_budget_quota(&a->budget, round, N - a->n_chosen);
        if (quota == 0)
            continue;
        /* an untrained student's scores say nothing: round 1 picks at random */
        enum kd_select_kind kind = round == 1 ? KD_SELECT_RANDOM : sel->strategy;
        kd_log(KD_LOG_INFO, "  round %zu/%zu: %s picks %zu of %zu queries not chosen yet", round, R,
               kd_select_name(kind), quota, N - a->n_chosen);
        size_t nc = 0;
        for (size_t i = 0; i < N; i++)
            if (!a->chosen[i])
                cand[nc++] = i;
        if (kind != KD_SELECT_RANDOM && (st = student_scores(a, cand, nc, sc, err)))
            goto done;
        size_t n_sel = 0;
        if ((st = kd_retrieval_select(kind, quota, sel->list_temperature,
                                      kd_rng_derive(a->r->p->seed, KD_RNG_SELECT, round),
                                      kind == KD_SELECT_RANDOM ? NULL : sc, nc, L, chosen, &n_sel, err))) {
            kd_error_prefix(err, "stage '%s', round %zu", s->name, round);
            goto done;
        }
        for (size_t x = 0; x < n_sel; x++)
            picks[x] = cand[chosen[x].index];
        size_t asked0 = a->asked, cached0 = a->cached;
        if ((st = label_picks(a, picks, n_sel, err)))
            goto done;
        kd_budget_charge(&a->budget, n_sel);
        for (size_t x = 0; x < n_sel; x++) {
            size_t q = a->c->queries[a->pool[picks[x]]];
            const char *text = a->rb->b.query_texts[q];
            rec[x] = (struct kd_store_selection){kd_hash_text(text, strlen(text)), a->rb->name, (int64_t)q,
                                                 kd_select_name(kind), chosen[x].score, chosen[x].probability,
                                                 chosen[x].weight};
        }
        if ((st = kd_store_put_selections(a->r->store, a->r->run, (int64_t)round, rec, n_sel, err)))
            goto done;
        kd_log(KD_LOG_INFO, "    %zu queries picked by %s: %zu pairs asked, %zu from the store", n_sel,
               kd_select_name(kind), a->asked - asked0, a->cached - cached0);
        if (sel->retrain) {
            kd_dual_free(a->m->dual);
            a->m->dual = NULL;
            if ((st = kd_dual_new(&a->m->def->dual, a->r->p->seed, &a->m->dual, err)))
                goto done;
        }
        struct kd_train_result res;
        if ((st = train_round(a, round, epochs, &res, err)))
            goto done;
        kd_log(KD_LOG_INFO, "    %zu lists so far, %zu of the %zu-query budget spent; %zu epochs, loss %.4f",
               a->n_chosen, a->budget.spent, sel->budget, res.epochs_done, res.last_loss);
        struct kd_store_metric mt[5] = {{"round_queries", (int64_t)round, (double)a->budget.spent},
                                        {"round_pairs", (int64_t)round, (double)(a->n_chosen * L)},
                                        {"round_pairs_asked", (int64_t)round, (double)a->asked},
                                        {"round_pairs_cached", (int64_t)round, (double)a->cached},
                                        {"train_loss", (int64_t)a->epochs_done, res.last_loss}};
        if ((st = kd_store_put_metrics(a->r->store, a->r->run, a->sid, mt, 5, err)) ||
            (st = measure_round(a, round, err)) || (st = save_round(a, round, err)))
            goto done;
    }
done:
    free(cand), free(picks), free(sc), free(chosen), free(rec);
    return st;
}

kd_status kd_run_stage_distill_dual_select(struct runner *r, const struct kd_pipe_stage *s, int64_t sid,
                                           struct kd_error *err)
{
    struct rsel a;
    memset(&a, 0, sizeof a);
    a.r = r;
    a.s = s;
    a.sid = sid;
    a.m = kd_run_find_model(r, s->model);
    a.L = s->k;
    const char *split = kd_beir_split_name(s->split);
    kd_status st = kd_run_stage_beir(r, s, 1, &a.rb, err);
    if (!st)
        st = kd_run_stage_split(r, a.rb, s, &a.sp, &a.n_labelled, err);
    if (!st)
        st = kd_run_check_queries(s, a.rb, a.sp, a.n_labelled, err);
    if (!st)
        st = kd_run_stage_weights(s, a.rb, a.sp, a.n_labelled, &a.qw, err);
    if (!st) /* every weight 0 leaves no pool: say why */
        st = kd_run_check_lists(s, a.sp->n, a.sp->n - a.n_labelled, a.n_labelled, a.qw, err);
    if (!st)
        st = kd_run_stage_bm25(r, a.rb, s, s->k, &a.c, err);
    if (!st)
        st = build_pool(&a, err);
    if (st)
        goto done;
    if (a.N == 0) {
        st = kd_error_set(err, KD_ERR_CONFIG, "stage '%s': no query of '%s' (%s) has %zu BM25 candidates to "
                          "distill on (%zu lists are shorter); lower 'k'", s->name, s->data, split, s->k,
                          a.short_lists);
        goto done;
    }
    if (a.N >= (size_t)1 << 24) {
        st = kd_error_set(err, KD_ERR_UNSUPPORTED, "stage '%s': 'select' handles at most 16,777,215 queries, '%s' "
                          "(%s) has %zu", s->name, s->data, split, a.N);
        goto done;
    }
    if ((st = kd_run_pair_teacher_open(r, s, s->teacher, a.rb, a.c, &a.pt, err)))
        goto done;
    a.pt_open = 1;
    kd_dual_free(a.m->dual);
    a.m->dual = NULL;
    a.m->docs_from = NULL; /* a new student with document and query towers of its own */
    if ((st = kd_dual_new(&a.m->def->dual, r->p->seed, &a.m->dual, err))) {
        kd_error_prefix(err, "stage '%s': model '%s'", s->name, s->model);
        goto done;
    }
    if ((st = kd_retrieval_featurize_docs(&a.m->def->text, &a.rb->b, &a.fd, err)) ||
        (st = kd_featurize(&a.m->def->text, a.qt, NULL, a.N, 0, &a.fq, err)))
        goto done;
    size_t pool_unl = 0;
    float *pw = a.qw ? malloc(a.N * sizeof *pw) : NULL;
    if (a.qw && !pw) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < a.N; i++) {
        pool_unl += a.pool[i] >= a.n_labelled;
        if (pw)
            pw[i] = a.qw[a.pool[i]];
    }
    /* before any teacher call: labelled queries may bring gold (whether their
     * lists hold it is known once picked), weights must leave something */
    st = kd_run_check_lists(s, a.N, pool_unl, a.N - pool_unl, pw, err);
    free(pw);
    if (st)
        goto done;
    kd_log(KD_LOG_INFO, "  select: %s, %zu queries of %zu (%zu unlabelled) in %zu rounds (%zu lists shorter than %zu "
           "left out)", kd_select_name(s->select.strategy), s->select.budget < a.N ? s->select.budget : a.N, a.N,
           pool_unl, s->select.rounds, a.short_lists, a.L);
    double t0 = kd_time_now();
    if ((st = run_rounds(&a, err)))
        goto done;
    size_t golds = 0, unl = 0;
    for (size_t i = 0; i < a.n_chosen; i++) {
        int any = 0;
        for (size_t j = 0; j < a.L; j++)
            any |= a.rel[i * a.L + j];
        golds += (size_t)any;
        unl += a.pool[a.order[i]] >= a.n_labelled;
    }
    kd_log(KD_LOG_INFO, "  dual encoder '%s' distilled from teacher '%s' on the lists of %zu chosen queries of '%s' "
           "(%s, %zu unlabelled, %zu with a relevant candidate), %s loss: %zu pairs asked, %zu from the store, %.1f s",
           s->model, s->teacher, a.n_chosen, s->data, split, unl, golds, kd_rank_loss_name(s->rank_loss), a.asked, a.cached,
           kd_time_now() - t0);
    if ((st = kd_run_record_metric(r, sid, "queries", -1, (double)a.budget.spent, err)) ||
        (st = kd_run_record_metric(r, sid, "pairs_asked", -1, (double)a.asked, err)) ||
        (st = kd_run_record_metric(r, sid, "lists", -1, (double)a.n_chosen, err)) ||
        (st = kd_run_record_metric(r, sid, "lists_with_gold", -1, (double)golds, err)) ||
        (st = kd_run_record_metric(r, sid, "lists_unlabelled", -1, (double)unl, err)) ||
        (st = kd_run_record_metric(r, sid, "lists_short", -1, (double)a.short_lists, err)))
        goto done;
    if (!(st = kd_run_save_dual(r, s->model, a.m->dual, &a.m->def->text, err)))
        remove_round_files(&a);
done:
    rsel_release(&a);
    return st;
}

void kd_run_plan_retrieval_select(struct runner *r, const struct kd_pipe_stage *s)
{
    const struct kd_pipe_select *sel = &s->select;
    char extra[160] = "";
    if (sel->strategy == KD_SELECT_ENTROPY)
        snprintf(extra, sizeof extra, " (softmax temperature %g)", sel->list_temperature);
    kd_run_plan_line(r, "    select: %zu queries of the %s split in %zu rounds of about %zu, round 1 at random, then "
                     "by %s%s; the teacher scores at most %zu pairs (BM25's top %zu of each), fewer when the store "
                     "has them", sel->budget, kd_beir_split_name(s->split), sel->rounds,
                     (sel->budget + sel->rounds - 1) / sel->rounds, kd_select_name(sel->strategy), extra,
                     sel->budget * s->k, s->k);
    if (sel->has_dev)
        kd_run_plan_line(r, "    after each round the student ranks the whole corpus for the %s split's queries",
                         kd_beir_split_name(sel->dev));
}

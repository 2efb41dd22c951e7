/* The retrieval side of the stage checks: a dual encoder or a
 * cross-encoder trains and is evaluated on a retrieval data set, an MLP on
 * a table of features; a teacher of a retrieval data set scores (query,
 * document) pairs, so a model teacher there is a cross-encoder; BM25 ranks
 * a retrieval data set; a distill stage there trains a dual encoder from a
 * pair teacher's scores with a retrieval loss; and the retrieval keys
 * (split, negatives, table_lr, k, candidates) belong to retrieval work
 * only. Every problem reported with
 * its position, like the rest of the file (pipelines/config.c). */
#include "pipelines/pipeline_impl.h"

#include <stdio.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const SPLITS[] = {"train", "dev", "test"};   /* enum kd_beir_split order */
static const char *const TYPE_NAMES[] = {"mlp", "dual", "cross"};  /* enum kd_pipe_model_type order */

/* The model called name, or NULL (unknown: reported elsewhere). */
static const struct kd_pipe_model *model_of(const struct kd_cfg *v, const char *name)
{
    size_t i;
    return name[0] && kd_names_find(&v->models, name, &i) ? &v->p->models[i] : NULL;
}

/* Whether the dataset called name is a retrieval data set (split parts never are). */
int kd_config_retrieval_data(const struct kd_cfg *v, const char *name)
{
    size_t i;
    return name[0] && kd_names_find(&v->datasets, name, &i) && kd_pipe_dataset_is_retrieval(&v->p->datasets[i]);
}

/* The model behind the stage's teacher when it is a model teacher with
 * `model:`, else NULL. */
static const struct kd_pipe_model *teacher_model(const struct kd_cfg *v, const struct kd_pipe_stage *s)
{
    size_t i;
    if (!s->teacher[0] || !kd_names_find(&v->teachers, s->teacher, &i))
        return NULL;
    const struct kd_pipe_teacher *t = &v->p->teachers[i];
    return t->kind == KD_TEACHER_MODEL ? model_of(v, t->model) : NULL;
}

/* 1 when the stage's teacher is an exec program that embeds texts
 * (`answers: embeddings`). */
static int teacher_embeds(const struct kd_cfg *v, const struct kd_pipe_stage *s)
{
    size_t i;
    if (!s->teacher[0] || !kd_names_find(&v->teachers, s->teacher, &i))
        return 0;
    return v->p->teachers[i].kind == KD_TEACHER_EXEC && v->p->teachers[i].embeds;
}

/* The stage's teacher against its data: a pair-scoring model on retrieval
 * data, a classifier on tables. */
static void check_teacher_family(struct kd_cfg *v, const struct kd_pipe_stage *s, int retr)
{
    const struct kd_pipe_model *tm = teacher_model(v, s);
    const struct kd_ynode *at = v->refs[s - v->p->stages].teacher;
    if (at && teacher_embeds(v, s) && !(retr && s->kind == KD_STAGE_DISTILL))
        kd_at(v->c, at, "teacher '%s' embeds texts ('answers: embeddings'): only a distill stage on a retrieval data "
              "set learns from embeddings (EmbedDistill); this %s stage on '%s' needs a teacher that %s", s->teacher,
              kd_stage_kind_name(s->kind), s->data, retr ? "scores (query, document) pairs" : "labels its rows");
    if (!tm || !at)
        return;
    if (retr && tm->type == KD_MODEL_DUAL && s->kind == KD_STAGE_DISTILL)
        return;   /* EmbedDistill: a dual-encoder teacher's scores and embeddings */
    if (retr && tm->type != KD_MODEL_CROSS)
        kd_at(v->c, at, "teacher '%s' uses model '%s' (type %s): on a retrieval data set a teacher scores (query, "
              "document) pairs, so its model must be a cross-encoder (type cross)", s->teacher, tm->name,
              TYPE_NAMES[tm->type]);
    else if (!retr && tm->type == KD_MODEL_CROSS)
        kd_at(v->c, at, "teacher '%s' uses model '%s', a cross-encoder: it scores retrieval data sets, and '%s' is a "
              "table of features", s->teacher, tm->name, s->data);
}

/* Keys that only some work takes: "'k' is only for ...". */
static void refuse_keys(struct kd_cfg *v, const struct kd_ynode *map, const char *const *keys, size_t n,
                        const char *only_for)
{
    struct kd_ynode *k;
    for (size_t i = 0; i < n; i++)
        if (kd_ytree_get(map, keys[i], &k))
            kd_at(v->c, k, "'%s' is only for %s", keys[i], only_for);
}

static void check_train(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map, int retr)
{
    static const char *const keys[] = {"split", "negatives", "table_lr", "k"};
    const struct kd_pipe_model *m = model_of(v, s->model);
    const struct kd_ynode *dv = kd_ytree_get(map, "data", NULL);
    s->split = KD_BEIR_TRAIN;
    if (!m || !s->data[0])
        return;
    if (m->type != KD_MODEL_MLP && !retr)
        kd_at(v->c, dv, "model '%s' is a %s: it trains on a retrieval data set ('beir' or 'wordnet'), and '%s' is "
              "a table of features", m->name, m->type == KD_MODEL_DUAL ? "dual encoder" : "cross-encoder", s->data);
    else if (m->type == KD_MODEL_MLP && retr)
        kd_at(v->c, dv, "dataset '%s' is a retrieval data set: model '%s' (type mlp) cannot train on it; use a "
              "model of type dual or cross", s->data, m->name);
    if (m->type == KD_MODEL_MLP) {
        refuse_keys(v, map, keys, N(keys), "training a dual encoder or a cross-encoder");
        return;
    }
    int e;
    long long x;
    double d;
    if (kd_get_enum(v->c, map, "split", SPLITS, N(SPLITS), &e, NULL) > 0)
        s->split = (enum kd_beir_split)e;
    if (kd_get_num(v->c, map, "table_lr", KD_RANGE_POSITIVE, &d, NULL) > 0)
        s->table_lr = (float)d;
    if (m->type == KD_MODEL_DUAL) {
        if (kd_get_int(v->c, map, "negatives", 0, 1024, &x, NULL) > 0)
            s->negatives = (size_t)x;
        refuse_keys(v, map, keys + 3, 1, "training a cross-encoder (a dual encoder's BM25 negatives are the best "
                    "'negatives' documents)");
        return;
    }
    /* a cross-encoder: lists of the positive and `negatives` of BM25's top k */
    s->negatives = 31;
    s->k = 100;
    if (kd_get_int(v->c, map, "negatives", 1, 1023, &x, NULL) > 0)
        s->negatives = (size_t)x;
    if (kd_get_int(v->c, map, "k", 1, 10000, &x, NULL) > 0)
        s->k = (size_t)x;
}

static void check_evaluate(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map, int retr)
{
    static const char *const keys[] = {"split", "k"};
    s->split = KD_BEIR_TEST;
    s->k = 100;
    if (!s->data[0])
        return;
    int e;
    long long x;
    if (!retr) {
        refuse_keys(v, map, keys, N(keys), "evaluating on a retrieval data set");
    } else {
        if (kd_get_enum(v->c, map, "split", SPLITS, N(SPLITS), &e, NULL) > 0)
            s->split = (enum kd_beir_split)e;
        if (kd_get_int(v->c, map, "k", 10, 10000, &x, NULL) > 0)
            s->k = (size_t)x;
    }
    check_teacher_family(v, s, retr);
    for (size_t j = 0; j < s->n_models; j++) {
        const struct kd_ynode *item = v->refs[s - v->p->stages].models[j];
        if (strcmp(s->models[j], KD_PIPE_BM25) == 0) {
            if (!retr)
                kd_at(v->c, item, "'%s' ranks the documents of a retrieval data set, and '%s' is a table of "
                      "features", KD_PIPE_BM25, s->data);
            continue;
        }
        const struct kd_pipe_model *mj = model_of(v, s->models[j]);
        if (mj && mj->type != KD_MODEL_MLP && !retr)
            kd_at(v->c, item, "model '%s' is a %s: it is evaluated on a retrieval data set, and '%s' is a table of "
                  "features", mj->name, mj->type == KD_MODEL_DUAL ? "dual encoder" : "cross-encoder", s->data);
        else if (mj && mj->type == KD_MODEL_MLP && retr)
            kd_at(v->c, item, "model '%s' (type mlp) cannot be evaluated on the retrieval data set '%s'", mj->name,
                  s->data);
    }
}

/* `candidates:` of a label or distill stage on a retrieval data set:
 * {bm25: N, random: N, model: NAME, from_model: N}. bm25 is the stage's k
 * (one of the two); the list of a query is BM25's top k, then the first
 * from_model documents model NAME (a dual encoder) retrieves that BM25
 * did not, then `random` documents of the corpus. */
static void check_candidates(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map)
{
    static const char *const KEYS[] = {"bm25", "random", "model", "from_model"};
    struct kd_ynode *key, *kk;
    if (!kd_ytree_get(map, "candidates", &key))
        return;
    const struct kd_ynode *cm = kd_as_map(v->c, kd_ytree_get(map, "candidates", NULL), "'candidates'");
    if (!cm)
        return;
    kd_check_keys(v->c, cm, KEYS, N(KEYS), "in 'candidates'");
    long long x;
    const struct kd_ynode *vn;
    if (kd_get_int(v->c, cm, "bm25", 1, 10000, &x, &vn) > 0) {
        s->k = (size_t)x;
        if (kd_ytree_get(map, "k", &kk))
            kd_at(v->c, vn, "'candidates.bm25' and 'k' both give the number of BM25 candidates; keep one");
    }
    if (kd_get_int(v->c, cm, "random", 0, 10000, &x, NULL) > 0)
        s->cand_random = (size_t)x;
    const struct kd_ynode *mv = NULL, *fv = NULL;
    int has_model = kd_cfg_get_ref(v, cm, "model", KD_REF_MODEL, 0, s->cand_model, &mv);
    if (mv)
        v->refs[s - v->p->stages].cand_model = mv;
    int has_from = kd_get_int(v->c, cm, "from_model", 1, 10000, &x, &fv);
    if (has_from > 0)
        s->cand_from_model = (size_t)x;
    if (has_model > 0) {
        const struct kd_pipe_model *m = model_of(v, s->cand_model);
        if (m && m->type != KD_MODEL_DUAL)
            kd_at(v->c, mv, "model '%s' is a%s: the candidates of 'candidates.model' are what a dual encoder "
                  "(type dual) retrieves from the whole corpus", m->name,
                  m->type == KD_MODEL_MLP ? "n MLP" : " cross-encoder");
        if (!has_from)
            kd_at(v->c, mv, "'candidates.model' needs 'from_model': how many of the documents it retrieves to add "
                  "to each list");
    } else if (!has_model && has_from > 0) {
        kd_at(v->c, fv, "'candidates.from_model' needs 'model': the dual encoder whose retrieved documents are "
              "added");
    }
}

static size_t dual_width(const struct kd_pipe_model *m)
{
    return m->dual.n_layers ? m->dual.hidden[m->dual.n_layers - 1] : m->dual.E;
}

/* EmbedDistill's keys: match_queries, match_documents, frozen_documents,
 * for a distill stage whose teacher's model is a dual encoder. */
static void check_embed(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map)
{
    static const char *const keys[] = {"match_queries", "match_documents", "frozen_documents"};
    const struct kd_pipe_model *tm = teacher_model(v, s);
    int ex = teacher_embeds(v, s);
    s->match_q = s->match_d = 1;
    s->frozen_docs = 0;
    if (!ex && (!tm || tm->type != KD_MODEL_DUAL)) {
        struct kd_ynode *k;
        for (size_t i = 0; i < N(keys); i++)
            if (kd_ytree_get(map, keys[i], &k))
                kd_at(v->c, k, "'%s' is only for a teacher whose model is a dual encoder or an exec teacher with "
                      "'answers: embeddings' (EmbedDistill); teacher '%s' %s%s%s", keys[i], s->teacher,
                      tm ? "uses model '" : "is neither", tm ? tm->name : "",
                      tm ? (tm->type == KD_MODEL_CROSS ? "', a cross-encoder" : "', an MLP") : "");
        return;
    }
    double d;
    int b;
    const struct kd_ynode *fv = NULL, *dv = NULL;
    if (kd_get_num(v->c, map, "match_queries", KD_RANGE_NONNEGATIVE, &d, NULL) > 0)
        s->match_q = (float)d;
    if (kd_get_num(v->c, map, "match_documents", KD_RANGE_NONNEGATIVE, &d, &dv) > 0)
        s->match_d = (float)d;
    if (kd_get_bool(v, map, "frozen_documents", &b) > 0)
        s->frozen_docs = b;
    fv = kd_ytree_get(map, "frozen_documents", NULL);
    if (ex && s->frozen_docs) {
        /* the student's documents would be the program's embeddings, which
         * evaluation and search could not compute for it */
        kd_at(v->c, fv, "'frozen_documents: true' needs a teacher whose model is a dual encoder, whose document "
              "tower evaluation then uses; teacher '%s' is an exec program: let the student learn its documents "
              "(drop the key, 'match_documents' matches them)", s->teacher);
        return;
    }
    const struct kd_pipe_model *m = model_of(v, s->model);
    if (!s->frozen_docs || !m || m->type != KD_MODEL_DUAL)
        return;
    if (dv)
        kd_at(v->c, dv, "'match_documents' has nothing to match with 'frozen_documents: true': the student's "
              "documents are the teacher's own embeddings");
    if (!m->dual.shared)
        kd_at(v->c, fv, "'frozen_documents: true' trains the student's one tower as the query tower: model '%s' has "
              "two (shared: false)", m->name);
    if (dual_width(m) != dual_width(tm))
        kd_at(v->c, fv, "'frozen_documents: true' scores the student's queries against the teacher's document "
              "embeddings: model '%s' gives %zu numbers and the teacher's model '%s' %zu (make its last 'hidden' "
              "width or 'dim' %zu)", m->name, dual_width(m), tm->name, dual_width(tm), dual_width(tm));
    if (m->dual.score != tm->dual.score)
        kd_at(v->c, fv, "'frozen_documents: true' needs the student's score (%s) to be the teacher's (%s)",
              kd_dual_score_name(m->dual.score), kd_dual_score_name(tm->dual.score));
}

static void check_label(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map, int retr)
{
    static const char *const keys[] = {"split", "k", "candidates"};
    s->split = KD_BEIR_TRAIN;
    s->k = 100;
    if (!s->data[0])
        return;
    check_teacher_family(v, s, retr);
    if (!retr) {
        refuse_keys(v, map, keys, N(keys), "labelling a retrieval data set");
        return;
    }
    int e;
    long long x;
    if (kd_get_enum(v->c, map, "split", SPLITS, N(SPLITS), &e, NULL) > 0)
        s->split = (enum kd_beir_split)e;
    if (kd_get_int(v->c, map, "k", 1, 10000, &x, NULL) > 0)
        s->k = (size_t)x;
    check_candidates(v, s, map);
}

/* distill: an MLP student learns from a classifier on a table of features
 * (pipelines/config_stages.c); a dual encoder learns from a pair teacher's
 * scores of BM25's top k on a retrieval data set, with a retrieval loss. */
static void check_distill(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map, int retr)
{
    static const char *const rkeys[] = {"split", "k", "negatives", "table_lr", "candidates", "match_queries",
                                        "match_documents", "frozen_documents", "unlabelled", "query_weights"};
    static const char *const mkeys[] = {"gold", "validation", "reweight", "follow"};
    static const char *const RLOSSES[] = {"mse", "margin_mse", "listwise_kl", "m3se"}; /* enum kd_rank_loss order */
    const struct kd_pipe_model *m = model_of(v, s->model);
    if (!retr) {
        if (m && m->type == KD_MODEL_DUAL && s->data[0])
            kd_at(v->c, kd_ytree_get(map, "student", NULL), "model '%s' is a dual encoder: it is distilled on a "
                  "retrieval data set ('beir' or 'wordnet'), and '%s' is a table of features", m->name, s->data);
        else if (m && m->type == KD_MODEL_CROSS)
            kd_at(v->c, kd_ytree_get(map, "student", NULL), "model '%s' is a cross-encoder: distill stages train "
                  "MLP students (on tables) and dual encoders (on retrieval data sets)", m->name);
        if (s->data[0])
            refuse_keys(v, map, rkeys, N(rkeys), "distilling into a dual encoder on a retrieval data set");
        check_teacher_family(v, s, 0);
        return;
    }
    if (m && m->type != KD_MODEL_DUAL)
        kd_at(v->c, kd_ytree_get(map, "student", NULL), "model '%s' is a%s: on the retrieval data set '%s' a distill "
              "stage trains a dual encoder (type dual) from a pair teacher's scores", m->name,
              m->type == KD_MODEL_MLP ? "n MLP" : " cross-encoder", s->data);
    refuse_keys(v, map, mkeys, N(mkeys), "distilling an MLP on a table of features");
    check_teacher_family(v, s, 1);
    s->split = KD_BEIR_TRAIN;
    s->k = 100;
    s->negatives = 0;
    s->temperature = 1;
    s->alpha = 1;
    s->rank_loss = KD_RLOSS_LISTWISE_KL;
    int e;
    long long x;
    double d;
    if (kd_get_enum(v->c, map, "loss", RLOSSES, N(RLOSSES), &e, NULL) > 0)
        s->rank_loss = (enum kd_rank_loss)e;
    if (kd_get_enum(v->c, map, "split", SPLITS, N(SPLITS), &e, NULL) > 0)
        s->split = (enum kd_beir_split)e;
    if (kd_get_int(v->c, map, "k", 2, 10000, &x, NULL) > 0)
        s->k = (size_t)x;
    check_candidates(v, s, map);
    check_embed(v, s, map);
    struct kd_ynode *ck;
    if (s->k + s->cand_random + s->cand_from_model < 2 && kd_ytree_get(map, "candidates", &ck))
        kd_at(v->c, ck, "a list of %zu candidate: distilling needs at least 2 per query (BM25's, 'random' and "
              "'from_model' together)", s->k + s->cand_random + s->cand_from_model);
    if (kd_get_num(v->c, map, "table_lr", KD_RANGE_POSITIVE, &d, NULL) > 0)
        s->table_lr = (float)d;
    if (kd_get_num(v->c, map, "alpha", KD_RANGE_UNIT, &d, NULL) > 0)
        s->alpha = (float)d;
    struct kd_ynode *key;
    if (kd_get_num(v->c, map, "temperature", KD_RANGE_POSITIVE, &d, NULL) > 0)
        s->temperature = (float)d;
    if (kd_ytree_get(map, "temperature", &key) && s->rank_loss != KD_RLOSS_LISTWISE_KL)
        kd_at(v->c, key, "'temperature' is only for loss listwise_kl (this stage's loss is %s)",
              RLOSSES[s->rank_loss]);
    if (kd_get_int(v->c, map, "negatives", 0, 10000, &x, NULL) > 0)
        s->negatives = (size_t)x;
    if (kd_ytree_get(map, "negatives", &key) && s->rank_loss != KD_RLOSS_MARGIN_MSE)
        kd_at(v->c, key, "'negatives' is only for loss margin_mse (this stage's loss is %s)",
              RLOSSES[s->rank_loss]);
    kd_config_retrieval_queries(v, s, map);  /* unlabelled queries, per-query weights */
    kd_config_retrieval_select(v, s, map);   /* queries for the teacher, in rounds */
    const struct kd_pipe_model *tm = teacher_model(v, s);
    struct kd_ynode *sel;
    if (s->select.on && kd_ytree_get(map, "select", &sel) &&
        (kd_ytree_get(map, "candidates", NULL) || (tm && tm->type == KD_MODEL_DUAL) || teacher_embeds(v, s)))
        kd_at(v->c, sel, "'select' chooses queries whose BM25 lists a pair teacher scores; it does not combine with "
              "%s yet", kd_ytree_get(map, "candidates", NULL) ? "'candidates'"
              : teacher_embeds(v, s) ? "an embedding teacher (EmbedDistill)" : "a dual-encoder teacher (EmbedDistill)");
}

void kd_config_retrieval(struct kd_cfg *v, struct kd_pipe_stage *s, const struct kd_ynode *map)
{
    const struct kd_ynode *dv = kd_ytree_get(map, "data", NULL);
    int retr = kd_config_retrieval_data(v, s->data);
    const struct kd_pipe_model *m = model_of(v, s->model);
    switch (s->kind) {
    case KD_STAGE_TRAIN:
        check_train(v, s, map, retr);
        break;
    case KD_STAGE_EVALUATE:
        check_evaluate(v, s, map, retr);
        break;
    case KD_STAGE_LABEL:
        check_label(v, s, map, retr);
        break;
    case KD_STAGE_DIAGNOSE:
        if (retr)
            kd_at(v->c, dv, "dataset '%s' is a retrieval data set: diagnose stages take a table of features",
                  s->data);
        if (m && m->type != KD_MODEL_MLP)
            kd_at(v->c, kd_ytree_get(map, "model", NULL), "model '%s' is a %s: diagnose stages measure MLP students",
                  m->name, m->type == KD_MODEL_DUAL ? "dual encoder" : "cross-encoder");
        break;
    case KD_STAGE_DISTILL:
        check_distill(v, s, map, retr);
        break;
    case KD_STAGE_EXPORT:
        if (m && m->type != KD_MODEL_MLP && (s->format_c || s->format_onnx)) {
            const struct kd_ynode *fv = kd_ytree_get(map, "formats", NULL);
            for (size_t j = 0; fv && j < kd_list_len(fv); j++)
                if (fv->vals[j]->kind == KD_Y_SCALAR &&
                    (strcmp(fv->vals[j]->text, "c") == 0 || strcmp(fv->vals[j]->text, "onnx") == 0))
                    kd_at(v->c, fv->vals[j], "model '%s' is a %s: a pipeline exports it as safetensors only%s",
                          m->name, m->type == KD_MODEL_DUAL ? "dual encoder" : "cross-encoder",
                          m->type == KD_MODEL_DUAL ? " (kd export --tower writes a tower as ONNX)" : "");
        }
        break;
    }
}

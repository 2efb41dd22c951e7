/* A dry run's count of what the teacher of a label, distill or evaluate
 * stage on a retrieval data set would be asked (docs/pipeline.md, "label"):
 * an embedding teacher (exec, `answers: embeddings`) embeds every document
 * of the corpus and every query of the split; a pair teacher (a
 * cross-encoder, an exec program or a table) scores BM25's top k of every
 * query of the split, plus the stage's extra candidates. Each question is
 * looked up in the store under the teacher registered last with its name,
 * as a classification stage's plan does, and each distinct missing text or
 * pair counts once, as the run sends it: once in the whole plan, since the
 * first stage that asks it stores it for the later ones (per teacher: an
 * embedding per text; a pair per data set, and per BM25 depth for a
 * cross-encoder whose version includes it). Nothing is written: the BEIR folder
 * is read as it is (a folder still to be converted from WordNet cannot be
 * counted), the corpus is not indexed, and BM25's lists are those an
 * earlier run kept (OUTPUT/cache), never searched here. */
#include "pipelines/run_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/kd_store.h"

static int cmp_hash(const void *a, const void *b) { return memcmp(a, b, sizeof(struct kd_hash)); }

/* The number of distinct keys among keys[idx[i]] for i < n. */
static size_t distinct(const struct kd_hash *keys, const size_t *idx, size_t n)
{
    if (n == 0)
        return 0;
    struct kd_hash *k = malloc(n * sizeof *k);
    if (!k)
        return n;   /* out of memory: every one counted, an upper bound */
    for (size_t i = 0; i < n; i++)
        k[i] = keys[idx ? idx[i] : i];
    qsort(k, n, sizeof *k, cmp_hash);
    size_t u = 1;
    for (size_t i = 1; i < n; i++)
        u += memcmp(&k[i], &k[i - 1], sizeof *k) != 0;
    free(k);
    return u;
}

/* The teacher registered last under name in the run's store; 0 when none. */
static int64_t stored_teacher(const struct runner *r, const char *name)
{
    struct kd_store_teacher found;
    struct kd_error err = {0};
    if (!r->store || kd_store_teacher_find(r->store, name, NULL, &found, &err) != KD_OK)
        return 0;
    return found.id;
}

/* The set of questions earlier stages of the plan ask the teacher of
 * namespace ns; NULL when out of memory (then nothing is subtracted). */
static struct run_plan_set *plan_set(struct runner *r, const char *ns)
{
    for (size_t i = 0; i < r->n_plan_sets; i++)
        if (strcmp(r->plan_sets[i].ns, ns) == 0)
            return &r->plan_sets[i];
    struct run_plan_set *g = realloc(r->plan_sets, (r->n_plan_sets + 1) * sizeof *g);
    if (!g)
        return NULL;
    r->plan_sets = g;
    g = &r->plan_sets[r->n_plan_sets++];
    memset(g, 0, sizeof *g);
    snprintf(g->ns, sizeof g->ns, "%s", ns);
    return g;
}

void kd_run_plan_sets_free(struct runner *r)
{
    for (size_t i = 0; i < r->n_plan_sets; i++)
        free(r->plan_sets[i].keys);
    free(r->plan_sets);
    r->plan_sets = NULL;
    r->n_plan_sets = 0;
}

/* Takes out of miss[0..*missing) the questions an earlier stage asks (in
 * set: stored by the time this stage runs), then adds the rest to set, so
 * that a later stage does not count them again. Returns how many were
 * taken out. */
static size_t subtract_planned(struct run_plan_set *set, const struct kd_hash *keys, size_t *miss,
                               size_t *missing)
{
    if (!set)
        return 0;
    size_t kept = 0;
    for (size_t i = 0; i < *missing; i++)
        if (!set->n || !bsearch(&keys[miss[i]], set->keys, set->n, sizeof *set->keys, cmp_hash))
            miss[kept++] = miss[i];
    size_t taken = *missing - kept;
    *missing = kept;
    struct kd_hash *g = kept ? realloc(set->keys, (set->n + kept) * sizeof *g) : NULL;
    if (g) {
        set->keys = g;
        for (size_t i = 0; i < kept; i++)
            g[set->n++] = keys[miss[i]];
        qsort(g, set->n, sizeof *g, cmp_hash);
    }
    return taken;
}

static void count(struct runner *r, size_t asked, size_t cached)
{
    r->sum->queries += asked;
    r->sum->cached += cached;
}

/* Every document and the split's queries, through the store as embeddings. */
static void plan_texts(struct runner *r, const struct kd_pipe_stage *s, const struct run_beir *rb,
                       const struct kd_retrieval_split *sp, const char *ns)
{
    const struct kd_beir *b = &rb->b;
    size_t nd = b->n_docs, n = nd + sp->n, missing = n, new = n, earlier = 0;
    struct kd_hash *keys = malloc((n ? n : 1) * sizeof *keys);
    size_t *miss = malloc((n ? n : 1) * sizeof *miss);
    char **dt = kd_retrieval_doc_texts(b);
    const char *why = r->store ? "" : " (no store yet)";
    if (keys && miss && dt) {
        for (size_t i = 0; i < nd; i++)
            keys[i] = kd_hash_text(dt[i], strlen(dt[i]));
        for (size_t i = 0; i < sp->n; i++) {
            const char *q = b->query_texts[sp->queries[i]];
            keys[nd + i] = kd_hash_text(q, strlen(q));
        }
        int64_t id = stored_teacher(r, s->teacher);
        size_t E = 0;
        struct kd_error err = {0};
        if (id && kd_store_width(r->store, id, KD_STORE_EMBEDDING, &E, &err) == KD_OK && E &&
            kd_store_lookup(r->store, id, KD_STORE_EMBEDDING, keys, n, E, NULL, NULL, miss, &missing, &err) == KD_OK)
            why = " (if the teacher's version is unchanged)";
        else
            for (size_t i = 0; i < n; i++)
                miss[i] = i, missing = n;
        /* an embedding is the text's, whatever the split or the data set */
        earlier = subtract_planned(plan_set(r, ns), keys, miss, &missing);
        new = distinct(keys, miss, missing);
    }
    char also[64] = "";
    if (earlier)
        snprintf(also, sizeof also, " (%zu of them stored by an earlier stage)", earlier);
    kd_run_plan_line(r, "    teacher '%s' on '%s': %zu texts (%zu documents, %zu queries), %zu cached%s, %zu new "
                     "queries%s", s->teacher, s->data, n, nd, sp->n, n - missing, also, new, why);
    count(r, new, n - missing);
    kd_retrieval_texts_free(dt, nd);
    free(keys);
    free(miss);
}

/* The namespace of a pair teacher's questions: the store's teacher (a
 * table's own name) and the data set, and BM25's depth when the teacher's
 * version depends on it (kd's cross-encoder reading BM25; one loaded from
 * weights is not read by the plan, so its depth counts too: at worst its
 * pairs are counted again). */
static void pairs_ns(const struct runner *r, const struct kd_pipe_stage *s, char *ns, size_t n)
{
    const struct kd_pipe_teacher *def = kd_pipeline_teacher(r->p, s->teacher);
    const char *name = def && def->kind == KD_TEACHER_TABLE && def->table[0] ? def->table : s->teacher;
    int depth = 0;
    if (def && def->kind == KD_TEACHER_MODEL) {
        const struct kd_pipe_model *m = def->model[0] ? kd_pipeline_model(r->p, def->model) : NULL;
        depth = !def->model[0] || !m || m->cross.use_bm25;
    }
    if (depth)
        snprintf(ns, n, "pairs/%s/%s/%zu", name, s->data, s->k);
    else
        snprintf(ns, n, "pairs/%s/%s", name, s->data);
}

/* BM25's lists (as an earlier run kept them) of the split, scored as pairs. */
static void plan_pairs(struct runner *r, const struct kd_pipe_stage *s, struct run_beir *rb,
                       const struct kd_retrieval_split *sp, const char *ns)
{
    const struct kd_beir *b = &rb->b;
    size_t extra = s->cand_random + (s->cand_model[0] ? s->cand_from_model : 0);
    char more[160] = "";
    if (extra)
        snprintf(more, sizeof more, "; and at most %zu pairs of the %zu extra candidates of each query", sp->n * extra,
                 extra);
    struct kd_retrieval_candidates c = {0}, unj = {0};
    int kept = kd_run_candidates_kept(r, rb, s->split, s->k, &c);
    if (kept && s->unlabelled) {
        /* `unlabelled: unjudged`: the unjudged queries' lists too, as the run asks them */
        struct kd_error err = {0};
        struct kd_retrieval_candidates both = {0};
        kept = kd_run_candidates_kept_of(r, rb, &rb->unjudged, s->k, &unj) &&
               kd_run_concat_candidates(&c, &unj, &both, &err) == KD_OK;
        kd_retrieval_candidates_release(&unj);
        kd_retrieval_candidates_release(&c);
        c = both;
    }
    if (!kept) {
        kd_retrieval_candidates_release(&c);
        size_t most = sp->n * (s->k + extra);
        kd_run_plan_line(r, "    teacher '%s' on '%s': at most %zu pairs (%zu quer%s x %zu candidates); which ones, "
                         "and how many are stored, is known once BM25 has ranked the %s split (no earlier run kept "
                         "its top %zu)", s->teacher, s->data, most, sp->n, sp->n == 1 ? "y" : "ies", s->k + extra,
                         kd_beir_split_name(s->split), s->k);
        count(r, most, 0);
        return;
    }
    /* each query's candidates up to its first -1, as they are filled below */
    size_t n = 0;
    for (size_t i = 0; i < c.n; i++)
        for (size_t j = 0; j < c.k && c.docs[i * c.k + j] >= 0; j++)
            n++;
    size_t missing = n, new = n, earlier = 0;
    struct kd_store_pair *pairs = malloc((n ? n : 1) * sizeof *pairs);
    struct kd_hash *keys = malloc((n ? n : 1) * sizeof *keys);
    size_t *miss = malloc((n ? n : 1) * sizeof *miss);
    char **dt = kd_retrieval_doc_texts(b);
    const char *why = r->store ? "" : " (no store yet)";
    const struct kd_pipe_teacher *def = kd_pipeline_teacher(r->p, s->teacher);
    const char *name = def && def->kind == KD_TEACHER_TABLE && def->table[0] ? def->table : s->teacher;
    if (pairs && keys && miss && dt) {
        size_t p = 0;
        for (size_t i = 0; i < c.n; i++)
            for (size_t j = 0; j < c.k && c.docs[i * c.k + j] >= 0; j++, p++) {
                size_t d = (size_t)c.docs[i * c.k + j], q = c.queries[i];
                pairs[p] = (struct kd_store_pair){b->query_ids[q], b->doc_ids[d], b->query_texts[q], dt[d]};
                keys[p] = kd_store_pair_key(&pairs[p]);
            }
        int64_t id = stored_teacher(r, name);
        struct kd_error err = {0};
        if (id && kd_store_lookup_pair_scores(r->store, id, pairs, n, NULL, NULL, miss, &missing, &err) == KD_OK)
            why = " (if the teacher's version is unchanged)";
        else
            for (size_t i = 0; i < n; i++)
                miss[i] = i, missing = n;
        earlier = subtract_planned(plan_set(r, ns), keys, miss, &missing);
        new = distinct(keys, miss, missing);
    }
    char also[64] = "";
    if (earlier)
        snprintf(also, sizeof also, " (%zu of them stored by an earlier stage)", earlier);
    kd_run_plan_line(r, "    teacher '%s' on '%s': %zu pairs of BM25's top %zu, %zu cached%s, %zu new queries%s%s",
                     s->teacher, s->data, n, s->k, n - missing, also, new, why, more);
    count(r, new + sp->n * extra, n - missing);
    kd_retrieval_texts_free(dt, b->n_docs);
    free(pairs);
    free(keys);
    free(miss);
    kd_retrieval_candidates_release(&c);
}

void kd_run_plan_retrieval_queries(struct runner *r, const struct kd_pipe_stage *s)
{
    const struct kd_pipe_dataset *def = NULL;
    for (size_t i = 0; i < r->p->n_datasets; i++)
        if (strcmp(r->p->datasets[i].name, s->data) == 0)
            def = &r->p->datasets[i];
    struct run_model *tm = kd_run_dual_teacher(r, s);
    if (tm) {
        kd_run_plan_line(r, "    teacher '%s' (dual encoder '%s') embeds the corpus and the queries itself: no "
                         "questions through the store", s->teacher, tm->def->name);
        return;
    }
    char corpus[1100];
    snprintf(corpus, sizeof corpus, "%s/corpus.jsonl", def && def->beir ? def->beir : "");
    struct run_beir *rb;
    const struct kd_retrieval_split *sp;
    struct kd_error err = {0};
    if (!def || !def->beir || access(corpus, F_OK) != 0 || kd_run_stage_beir(r, s, 0, &rb, &err) != KD_OK ||
        kd_run_stage_split(r, rb, s, &sp, NULL, &err) != KD_OK) {
        kd_run_plan_line(r, "    teacher '%s' on '%s': its questions are counted once %s holds the data set%s%s",
                         s->teacher, s->data, def && def->beir ? def->beir : "its folder",
                         err.msg[0] ? ": " : def && def->wordnet ? " (the run converts WordNet into it first)" : "",
                         err.msg);
        return;
    }
    if (kd_run_embed_exec_def(r, s)) {
        char ns[sizeof r->plan_sets[0].ns];
        snprintf(ns, sizeof ns, "embed/%s", s->teacher);
        plan_texts(r, s, rb, sp, ns);
    } else {
        char ns[sizeof r->plan_sets[0].ns];
        pairs_ns(r, s, ns, sizeof ns);
        plan_pairs(r, s, rb, sp, ns);
    }
}

/* The queries a retrieval distill stage learns from (docs/retrieval.md,
 * "Unlabelled queries and query weights"): its split's judged queries and,
 * with `unlabelled: unjudged`, the data set's queries that no qrels file
 * mentions. Those have no judgement, so their lists learn from the
 * teacher's scores alone; they are asked of the teacher, through the store,
 * like the others. `query_weights:` weighs each query's list (a weight per
 * query from a file, and one for every unlabelled query). The run keeps the
 * unjudged queries, the mixed split and their BM25 candidates in run_beir,
 * so later stages reuse them. */
#include "pipelines/run_impl.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------- splits */

static kd_status split_alloc(struct kd_retrieval_split *out, size_t n, size_t rows, struct kd_error *err)
{
    out->queries = malloc((n ? n : 1) * sizeof *out->queries);
    out->offsets = malloc((n + 1) * sizeof *out->offsets);
    out->doc = malloc((rows ? rows : 1) * sizeof *out->doc);
    out->rel = malloc((rows ? rows : 1) * sizeof *out->rel);
    if (!out->queries || !out->offsets || !out->doc || !out->rel) {
        kd_retrieval_split_release(out);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for a split of %zu queries", n);
    }
    out->n = n;
    out->view.n_queries = n;
    out->view.offsets = out->offsets;
    out->view.doc = out->doc;
    out->view.rel = out->rel;
    return KD_OK;
}

kd_status kd_retrieval_split_unjudged(const struct kd_beir *b, enum kd_beir_split split,
                                      struct kd_retrieval_split *out, struct kd_error *err)
{
    memset(out, 0, sizeof *out);
    size_t n = 0;
    for (size_t q = 0; q < b->n_queries; q++)
        n += b->query_judged && !b->query_judged[q];
    kd_status st = split_alloc(out, n, 0, err);
    if (st)
        return st;
    out->split = split;
    n = 0;
    for (size_t q = 0; q < b->n_queries; q++)
        if (b->query_judged && !b->query_judged[q]) {
            out->offsets[n] = 0;
            out->queries[n++] = q;
        }
    out->offsets[n] = 0;
    return KD_OK;
}

kd_status kd_retrieval_split_concat(const struct kd_retrieval_split *a, const struct kd_retrieval_split *b,
                                    struct kd_retrieval_split *out, struct kd_error *err)
{
    memset(out, 0, sizeof *out);
    size_t ra = a->offsets[a->n], rb = b->offsets[b->n];
    kd_status st = split_alloc(out, a->n + b->n, ra + rb, err);
    if (st)
        return st;
    out->split = a->split;
    memcpy(out->queries, a->queries, a->n * sizeof *out->queries);
    memcpy(out->queries + a->n, b->queries, b->n * sizeof *out->queries);
    memcpy(out->offsets, a->offsets, a->n * sizeof *out->offsets);
    for (size_t i = 0; i <= b->n; i++)
        out->offsets[a->n + i] = ra + b->offsets[i];
    memcpy(out->doc, a->doc, ra * sizeof *out->doc);
    memcpy(out->doc + ra, b->doc, rb * sizeof *out->doc);
    memcpy(out->rel, a->rel, ra * sizeof *out->rel);
    memcpy(out->rel + ra, b->rel, rb * sizeof *out->rel);
    return KD_OK;
}

/* ------------------------------------------------------- weights file */

kd_status kd_retrieval_query_weights(const char *path, const struct kd_beir *b, const struct kd_retrieval_split *sp,
                                     size_t n_labelled, float unlabelled, float *w, struct kd_error *err)
{
    for (size_t i = 0; i < sp->n; i++)
        w[i] = i >= n_labelled ? unlabelled : 1.0f;
    if (!path)
        return KD_OK;
    FILE *f = fopen(path, "r");
    if (!f)
        return kd_error_set(err, KD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    /* the line that gave each row its weight (0: none yet); a row lookup
     * table from b's query index, so a file of N lines is read in O(N) */
    size_t *seen = calloc(sp->n ? sp->n : 1, sizeof *seen);
    size_t *row = malloc((b->n_queries ? b->n_queries : 1) * sizeof *row);
    char *line = NULL;
    size_t cap = 0, no = 0;
    ssize_t len;
    kd_status st = KD_OK;
    if (!seen || !row) {
        st = kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (size_t q = 0; q < b->n_queries; q++)
        row[q] = SIZE_MAX;
    for (size_t i = 0; i < sp->n; i++)
        row[sp->queries[i]] = i;
    while ((len = getline(&line, &cap, f)) >= 0) {
        no++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        if ((size_t)len != strlen(line)) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: a NUL byte in the line", path, no);
            goto done;
        }
        if (no == 1 && strcmp(line, "query-id\tweight") == 0)
            continue;
        size_t fields = 1;
        for (char *c = line; *c; c++)
            fields += *c == '\t';
        if (fields != 2) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: expected 2 tab-separated fields (query-id, weight), "
                              "found %zu", path, no, fields);
            goto done;
        }
        char *tab = strchr(line, '\t'), *end;
        *tab = '\0';
        const char *id = line, *val = tab + 1;
        size_t col = (size_t)(val - line) + 1, q;
        errno = 0;
        double v = strtod(val, &end);
        if (!*val || *end || errno == ERANGE || !isfinite(v) || v < 0.0 || v > FLT_MAX) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu:%zu: expected a weight >= 0 (a finite number), found '%s'",
                              path, no, col, val);
            goto done;
        }
        if (!*id) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu:1: empty query-id", path, no);
            goto done;
        }
        if (!kd_beir_find_query(b, id, &q)) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu:1: unknown query-id '%s' (not in queries.jsonl)", path, no,
                              id);
            goto done;
        }
        size_t i = row[q];
        if (i == SIZE_MAX) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu:1: query '%s' is not one of the stage's queries (the %s "
                              "split's judged queries%s)", path, no, id, kd_beir_split_name(sp->split),
                              n_labelled < sp->n ? " and the unlabelled ones" : "");
            goto done;
        }
        if (seen[i]) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu:1: query '%s' given again (first on line %zu)", path, no, id,
                              seen[i]);
            goto done;
        }
        seen[i] = no;
        w[i] *= (float)v;
        if (!isfinite(w[i])) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: unlabelled query '%s' weighs %g times %g (its "
                              "'unlabelled' weight), above the largest weight a float holds (%g)", path, no, id, v,
                              (double)unlabelled, (double)FLT_MAX);
            goto done;
        }
    }
    if (ferror(f))
        st = kd_error_set(err, KD_ERR_IO, "%s: read error: %s", path, strerror(errno));
done:
    free(line);
    free(seen);
    free(row);
    fclose(f);
    return st;
}

/* ------------------------------------------------------- the run side */

kd_status kd_run_stage_split(struct runner *r, struct run_beir *rb, const struct kd_pipe_stage *s,
                             const struct kd_retrieval_split **sp, size_t *n_labelled, struct kd_error *err)
{
    (void)r;
    const struct kd_retrieval_split *lab;
    kd_status st = kd_run_split(rb, s->split, &lab, err);
    if (st)
        return st;
    if (n_labelled)
        *n_labelled = lab->n;
    if (!s->unlabelled) {
        *sp = lab;
        return KD_OK;
    }
    if (!rb->has_unjudged) {
        if ((st = kd_retrieval_split_unjudged(&rb->b, s->split, &rb->unjudged, err)))
            return st;
        rb->has_unjudged = 1;
    }
    if (!rb->has_mixed[s->split]) {
        if ((st = kd_retrieval_split_concat(lab, &rb->unjudged, &rb->mixed[s->split], err)))
            return st;
        rb->has_mixed[s->split] = 1;
    }
    *sp = &rb->mixed[s->split];
    return KD_OK;
}

kd_status kd_run_concat_candidates(const struct kd_retrieval_candidates *a, const struct kd_retrieval_candidates *b,
                                   struct kd_retrieval_candidates *out, struct kd_error *err)
{
    size_t n = a->n + b->n, k = a->k;
    kd_retrieval_candidates_release(out);
    out->n = n;
    out->k = k;
    out->queries = malloc((n ? n : 1) * sizeof *out->queries);
    out->docs = malloc((n ? n : 1) * k * sizeof *out->docs);
    out->bm25 = malloc((n ? n : 1) * k * sizeof *out->bm25);
    if (!out->queries || !out->docs || !out->bm25) {
        kd_retrieval_candidates_release(out);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for the candidates of %zu queries", n);
    }
    memcpy(out->queries, a->queries, a->n * sizeof *out->queries);
    memcpy(out->queries + a->n, b->queries, b->n * sizeof *out->queries);
    memcpy(out->docs, a->docs, a->n * k * sizeof *out->docs);
    memcpy(out->docs + a->n * k, b->docs, b->n * k * sizeof *out->docs);
    memcpy(out->bm25, a->bm25, a->n * k * sizeof *out->bm25);
    memcpy(out->bm25 + a->n * k, b->bm25, b->n * k * sizeof *out->bm25);
    return KD_OK;
}

kd_status kd_run_stage_bm25(struct runner *r, struct run_beir *rb, const struct kd_pipe_stage *s, size_t k,
                            const struct kd_retrieval_candidates **c, struct kd_error *err)
{
    const struct kd_retrieval_split *sp;
    const struct kd_retrieval_candidates *lab;
    kd_status st = kd_run_stage_split(r, rb, s, &sp, NULL, err);
    if (!st)
        st = kd_run_candidates(r, rb, s->split, k, &lab, err);
    if (st)
        return st;
    if (!s->unlabelled) {
        *c = lab;
        return KD_OK;
    }
    struct kd_retrieval_candidates *mc = &rb->mixed_cand[s->split];
    if (mc->docs && mc->k == k && mc->n == sp->n) {
        *c = mc;
        return KD_OK;
    }
    /* the judged queries' candidates are the split's (shared with every
     * stage on it and cached on disk); the unjudged ones are searched (or
     * read from the cache) once */
    if ((st = kd_run_candidates_of(r, rb, &rb->unjudged, "unlabelled queries", k, &rb->unjudged_cand, err)) ||
        (st = kd_run_concat_candidates(lab, &rb->unjudged_cand, mc, err)))
        return st;
    *c = mc;
    return KD_OK;
}

kd_status kd_run_stage_weights(const struct kd_pipe_stage *s, const struct run_beir *rb,
                               const struct kd_retrieval_split *sp, size_t n_labelled, float **w,
                               struct kd_error *err)
{
    *w = NULL;
    if (!s->weighted)
        return KD_OK;
    if (!(*w = malloc((sp->n ? sp->n : 1) * sizeof **w)))
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for %zu query weights", sp->n);
    kd_status st = kd_retrieval_query_weights(s->weight_file, &rb->b, sp, n_labelled, s->weight_unlabelled, *w, err);
    if (st) {
        free(*w);
        *w = NULL;
        kd_error_prefix(err, "stage '%s', 'query_weights'", s->name);
    }
    return st;
}

kd_status kd_run_check_queries(const struct kd_pipe_stage *s, const struct run_beir *rb,
                               const struct kd_retrieval_split *sp, size_t n_labelled, struct kd_error *err)
{
    const char *split = kd_beir_split_name(s->split);
    if (s->unlabelled && sp->n == n_labelled)
        return kd_error_set(err, KD_ERR_CONFIG, "stage '%s': 'unlabelled: unjudged' finds no query of '%s' that no "
                            "qrels file mentions: each of its %zu queries is judged in qrels/ (drop the key, or add "
                            "queries without judgements to queries.jsonl)", s->name, rb->name, rb->b.n_queries);
    if (sp->n == 0)
        return kd_error_set(err, KD_ERR_CONFIG, "stage '%s': the %s split of '%s' has no queries (qrels/%s.tsv judges "
                            "no document relevant)%s", s->name, split, rb->name, split,
                            s->unlabelled ? "" : "; 'unlabelled: unjudged' adds the queries no qrels file mentions");
    return KD_OK;
}

kd_status kd_run_check_lists(const struct kd_pipe_stage *s, size_t n, size_t unlabelled, size_t golds,
                             const float *w, struct kd_error *err)
{
    if (s->unlabelled && s->alpha < 1.0f && golds == 0)
        return kd_error_set(err, KD_ERR_CONFIG, "stage '%s': alpha %g mixes in the gold in-batch loss, but none of "
                            "its %zu lists has a candidate judged relevant (%zu of them are unlabelled queries): "
                            "give alpha: 1 to learn from the teacher alone", s->name, (double)s->alpha, n, unlabelled);
    int any = 0;
    for (size_t i = 0; w && i < n && !any; i++)
        any = w[i] > 0.0f;
    if (w && !any)
        return kd_error_set(err, KD_ERR_CONFIG, "stage '%s': every one of its %zu lists weighs 0 ('query_weights'): "
                            "nothing to learn from", s->name, n);
    return KD_OK;
}

void kd_run_plan_stage_queries(struct runner *r, const struct kd_pipe_stage *s, const char *beir_dir)
{
    char path[1100], weights[160] = "";
    if (s->weighted)
        snprintf(weights, sizeof weights, "; each list weighs %s%s", s->weight_file ? "its query's weight in " : "",
                 s->weight_file ? s->weight_file : "1");
    if (s->weighted && s->unlabelled)
        snprintf(weights + strlen(weights), sizeof weights - strlen(weights), ", times %g for an unlabelled query",
                 (double)s->weight_unlabelled);
    snprintf(path, sizeof path, "%s/corpus.jsonl", beir_dir);
    if (access(path, F_OK) != 0) {
        kd_run_plan_line(r, "    queries: the %s split's judged ones%s, counted once the data set is there%s",
                         kd_beir_split_name(s->split), s->unlabelled ? " and the unjudged ones" : "", weights);
        return;
    }
    struct run_beir *rb;
    const struct kd_retrieval_split *sp;
    size_t n_lab = 0;
    struct kd_error err = {0};
    if (kd_run_stage_beir(r, s, 0, &rb, &err) || kd_run_stage_split(r, rb, s, &sp, &n_lab, &err)) {
        kd_run_plan_line(r, "    queries: cannot count them: %s", err.msg);
        return;
    }
    kd_run_plan_line(r, "    queries: %zu labelled (the %s split's judged ones) and %zu unlabelled (%s)%s", n_lab,
                     kd_beir_split_name(s->split), sp->n - n_lab,
                     s->unlabelled ? "in no qrels file: the teacher's scores alone" : "'unlabelled' not set", weights);
}

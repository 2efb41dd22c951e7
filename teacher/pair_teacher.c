/* Pair and text teachers through the store: fingerprints, look-ups, the
 * distinct missing answers asked in batches, the answers stored as they
 * come (kd_teacher's discipline, teacher/teacher.c, for retrieval). */
#include "teacher/kd_teacher.h"
#include "teacher/teacher_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Answers are committed when this many are pending or the oldest is this
 * old (as kd_teacher_label's writer): one transaction per batch would
 * rewrite most of a big store's pages each time. */
#define COMMIT_ROWS 50000
#define COMMIT_SECONDS 1.0

static void fingerprint_exec(char *const *argv, const char *version, char out[KD_HASH_HEX_LEN + 1])
{
    struct kd_hasher h;
    if (kd_hasher_init(&h, NULL) != KD_OK) {
        snprintf(out, KD_HASH_HEX_LEN + 1, "0");
        return;
    }
    for (size_t i = 0; argv[i]; i++)
        kd_hasher_update(&h, argv[i], strlen(argv[i]) + 1); /* the NUL separates arguments */
    kd_hasher_update(&h, "\n", 1);
    kd_hasher_update(&h, version, strlen(version));
    kd_hash_hex(kd_hasher_digest(&h), out);
    kd_hasher_release(&h);
}

/* "CMD ARG... (version: V)", for the teachers table. */
static void exec_config(char *const *argv, const char *version, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; argv[i] && at + 2 < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%s", i ? " " : "", argv[i]);
    if (at < n)
        snprintf(buf + at, n - at, " (version: %s)", version[0] ? version : "none");
}

static kd_status check_fingerprint(const char *name, const char *fp, struct kd_error *err)
{
    if (!fp || !fp[0])
        return kd_error_set(err, KD_ERR_ARG, "model teacher '%s' has no fingerprint", name);
    return KD_OK;
}

/* ------------------------------------------------ distinct missing answers */

struct keyed {
    struct kd_hash key;
    size_t idx;
};

static int keyed_cmp(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    if (x->key.hi != y->key.hi)
        return x->key.hi < y->key.hi ? -1 : 1;
    if (x->key.lo != y->key.lo)
        return x->key.lo < y->key.lo ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int size_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Splits missing[0..n_missing) (input order) into the inputs to ask,
 * ask[0..*n_ask) (the first of each distinct key, in input order), and the
 * repeats, dup[2 j] answered as dup[2 j + 1], j < *n_dup. dup has room for
 * 2 n_missing. */
static kd_status distinct(const struct kd_hash *keys, const size_t *missing, size_t n_missing, size_t *ask,
                          size_t *n_ask, size_t *dup, size_t *n_dup, struct kd_error *err)
{
    *n_ask = *n_dup = 0;
    struct keyed *k = malloc((n_missing ? n_missing : 1) * sizeof *k);
    if (!k)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory sorting %zu inputs", n_missing);
    for (size_t i = 0; i < n_missing; i++)
        k[i] = (struct keyed){keys[missing[i]], missing[i]};
    qsort(k, n_missing, sizeof *k, keyed_cmp);
    for (size_t i = 0; i < n_missing; i++) {
        if (i && kd_hash_equal(k[i].key, k[i - 1].key)) {
            dup[2 * *n_dup] = k[i].idx;
            /* the representative is the first of the run: the last asked */
            dup[2 * *n_dup + 1] = ask[*n_ask - 1];
            (*n_dup)++;
        } else {
            ask[(*n_ask)++] = k[i].idx;
        }
    }
    free(k);
    qsort(ask, *n_ask, sizeof *ask, size_cmp);
    return KD_OK;
}

char *kd_teacher_doc_text(const char *title, const char *text)
{
    title = title ? title : "";
    text = text ? text : "";
    size_t a = strlen(title), b = strlen(text);
    char *out = malloc(a + b + 2);
    if (!out)
        return NULL;
    if (a) {
        memcpy(out, title, a);
        out[a++] = ' ';
    }
    memcpy(out + a, text, b + 1);
    return out;
}

/* ------------------------------------------------------------ pair teachers */

kd_status kd_pair_teacher_open(const struct kd_pair_teacher_spec *spec, struct kd_store *store,
                               struct kd_pair_teacher **out, struct kd_error *err)
{
    *out = NULL;
    struct kd_pair_teacher *t = calloc(1, sizeof *t);
    if (!t)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    snprintf(t->name, sizeof t->name, "%s", spec->name);
    t->kind = spec->kind;
    t->store = store;
    t->exec.fd = t->exec.pid = -1;
    char config[1024] = "";
    kd_status st = KD_OK;
    switch (spec->kind) {
    case KD_TEACHER_MODEL:
        if (!spec->score) {
            st = kd_error_set(err, KD_ERR_ARG, "model teacher '%s' has no scoring function", spec->name);
            break;
        }
        if ((st = check_fingerprint(spec->name, spec->fingerprint, err)))
            break;
        t->score = spec->score;
        t->ctx = spec->ctx;
        t->batch = spec->batch ? spec->batch : 1024;
        snprintf(t->fingerprint, sizeof t->fingerprint, "%s", spec->fingerprint);
        snprintf(config, sizeof config, "%s", spec->config ? spec->config : "pair-scoring model");
        break;
    case KD_TEACHER_EXEC:
        t->batch = spec->batch ? spec->batch : 256;
        if ((st = kd_exec_start_text(&t->exec, spec->name, spec->argv, KD_STORE_SCORE, spec->timeout, err)))
            break;
        t->exec_running = 1;
        fingerprint_exec(spec->argv, t->exec.version, t->fingerprint);
        exec_config(spec->argv, t->exec.version, config, sizeof config);
        break;
    case KD_TEACHER_TABLE: {
        const char *table = spec->table ? spec->table : spec->name;
        struct kd_store_teacher found;
        if ((st = kd_store_teacher_find(store, table, NULL, &found, err))) {
            kd_error_prefix(err, "table teacher '%s' (import its scores with kd store import --pairs)", spec->name);
            break;
        }
        t->id = found.id;
        snprintf(t->fingerprint, sizeof t->fingerprint, "%s", found.fingerprint);
        *out = t;
        return KD_OK;
    }
    default:
        st = kd_error_set(err, KD_ERR_ARG, "teacher '%s' has an unknown kind", spec->name);
    }
    if (!st)
        st = kd_store_teacher_register(store, t->name, t->kind, t->fingerprint, config, &t->id, err);
    if (st) {
        kd_pair_teacher_close(t);
        return st;
    }
    *out = t;
    return KD_OK;
}

void kd_pair_teacher_close(struct kd_pair_teacher *t)
{
    if (!t)
        return;
    if (t->exec_running)
        kd_exec_stop(&t->exec);
    free(t);
}

/* Pairs scored but not yet stored. */
struct pending {
    struct kd_store_pair *pairs;
    float *scores;
    size_t n;
    double oldest;
};

static kd_status pending_flush(struct kd_pair_teacher *t, const char *corpus, struct pending *p,
                               struct kd_error *err)
{
    if (!p->n)
        return KD_OK;
    kd_status st = kd_store_put_pair_scores(t->store, t->id, corpus, p->pairs, p->n, p->scores, NULL, err);
    if (!st)
        p->n = 0;
    return st;
}

kd_status kd_pair_teacher_score(struct kd_pair_teacher *t, const char *corpus, const struct kd_store_pair *pairs,
                                size_t n, size_t max_queries, float *scores, struct kd_label_stats *stats,
                                volatile sig_atomic_t *stop, struct kd_error *err)
{
    struct kd_label_stats s = {n, 0, 0};
    if (stats)
        *stats = s;
    if (n == 0)
        return KD_OK;
    struct kd_hash *keys = malloc(n * sizeof *keys);
    unsigned char *found = malloc(n);
    size_t *missing = malloc(n * sizeof *missing), *ask = malloc(n * sizeof *ask);
    size_t *dup = malloc(2 * n * sizeof *dup); /* (repeat, the pair asked in its place) */
    struct kd_store_pair *seen = NULL, *bp = NULL;
    float *bs = NULL;
    struct pending pend = {0};
    size_t n_missing = 0, n_ask = 0, n_dup = 0;
    kd_status st = KD_OK;
    if (!keys || !found || !missing || !ask || !dup) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for %zu pairs", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        keys[i] = kd_store_pair_key(pairs + i);
    if ((st = kd_store_lookup_pair_scores(t->store, t->id, pairs, n, scores, found, missing, &n_missing, err)))
        goto done;
    s.cached = n - n_missing;
    /* the pairs answered from the store are recorded under this corpus's
     * ids too, so SQL by ids sees every pair a run used */
    if (corpus && s.cached) {
        if (!(seen = malloc(s.cached * sizeof *seen))) {
            st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for %zu pairs", n);
            goto done;
        }
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (found[i])
                seen[k++] = pairs[i];
        if ((st = kd_store_put_pair_ids(t->store, corpus, seen, k, err)))
            goto done;
    }
    if (n_missing && t->kind == KD_TEACHER_TABLE) {
        const struct kd_store_pair *m = pairs + missing[0];
        st = kd_error_set(err, KD_ERR_NOT_FOUND,
                          "table teacher '%s' has no score for %zu of the %zu pairs (first missing: query '%s', "
                          "document '%s'); import them with kd store import --pairs",
                          t->name, n_missing, n, m->query_id ? m->query_id : "?", m->doc_id ? m->doc_id : "?");
        goto done;
    }
    if ((st = distinct(keys, missing, n_missing, ask, &n_ask, dup, &n_dup, err)))
        goto done;
    if (n_ask > max_queries) {
        st = kd_error_set(err, KD_ERR_BUDGET, "scoring %zu pairs with teacher '%s' needs %zu new queries, the budget "
                          "allows %zu", n, t->name, n_ask, max_queries);
        goto done;
    }
    size_t B = t->batch, cap = n_ask < COMMIT_ROWS + B ? n_ask : COMMIT_ROWS + B;
    bp = malloc((B ? B : 1) * sizeof *bp);
    bs = malloc((B ? B : 1) * sizeof *bs);
    pend.pairs = malloc((cap ? cap : 1) * sizeof *pend.pairs);
    pend.scores = malloc((cap ? cap : 1) * sizeof *pend.scores);
    if (!bp || !bs || !pend.pairs || !pend.scores) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for teacher batches");
        goto done;
    }
    struct kd_progress prog;
    char label[96];
    snprintf(label, sizeof label, "score %s", corpus ? corpus : "pairs");
    kd_progress_begin(&prog, label, n_ask);
    for (size_t off = 0; off < n_ask; off += B) {
        if (stop && *stop) {
            st = kd_error_set(err, KD_ERR_INTERRUPTED, "scoring interrupted after %zu of %zu pairs (all stored)",
                              s.queried, n_ask);
            break;
        }
        size_t b = n_ask - off < B ? n_ask - off : B;
        for (size_t i = 0; i < b; i++)
            bp[i] = pairs[ask[off + i]];
        st = t->kind == KD_TEACHER_EXEC ? kd_exec_request_pairs(&t->exec, bp, b, bs, err)
                                        : t->score(t->ctx, bp, b, bs, err);
        if (st)
            break;
        if (!pend.n)
            pend.oldest = kd_time_now();
        for (size_t i = 0; i < b; i++) {
            scores[ask[off + i]] = bs[i];
            pend.pairs[pend.n] = bp[i];
            pend.scores[pend.n++] = bs[i];
        }
        s.queried += b;
        kd_progress_update(&prog, s.queried, NULL);
        if ((pend.n >= COMMIT_ROWS || kd_time_now() - pend.oldest >= COMMIT_SECONDS) &&
            (st = pending_flush(t, corpus, &pend, err)))
            break;
    }
    kd_progress_end(&prog);
    {
        /* whatever happened, keep what the teacher answered */
        struct kd_error ferr = {0};
        kd_status fst = pending_flush(t, corpus, &pend, st ? &ferr : err);
        if (fst && !st)
            st = fst;
        else if (fst)
            kd_log(KD_LOG_WARN, "could not store the last scores of teacher '%s': %s", t->name, ferr.msg);
    }
    if (st)
        goto done;
    for (size_t j = 0; j < n_dup; j++)
        scores[dup[2 * j]] = scores[dup[2 * j + 1]];
    /* repeats (possibly under other ids) are recorded too */
    if (corpus && n_dup) {
        free(seen);
        if (!(seen = malloc(n_dup * sizeof *seen))) {
            st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for %zu pairs", n);
            goto done;
        }
        for (size_t j = 0; j < n_dup; j++)
            seen[j] = pairs[dup[2 * j]];
        st = kd_store_put_pair_ids(t->store, corpus, seen, n_dup, err);
    }
done:
    if (stats)
        *stats = s;
    free(keys);
    free(found);
    free(missing);
    free(ask);
    free(dup);
    free(seen);
    free(bp);
    free(bs);
    free(pend.pairs);
    free(pend.scores);
    return st;
}

/* ------------------------------------------------------------ text teachers */

/* The dual encoder's architecture and featuriser, for the teachers table and
 * the fingerprint. */
static void dual_config(const struct kd_dual *m, const struct kd_text_settings *text, enum kd_side side,
                        char *buf, size_t n)
{
    char hidden[256] = "";
    for (size_t i = 0; i < m->cfg.n_layers; i++) {
        size_t at = strlen(hidden);
        snprintf(hidden + at, sizeof hidden - at, i ? ",%zu" : "%zu", m->cfg.hidden[i]);
    }
    char feat[KD_TEXT_SETTINGS_MAX];
    kd_text_settings_format(text, feat);
    snprintf(buf, n,
             "dual encoder, %s tower: buckets=%u E=%zu hidden=%s activation=%s normalize=%d score=%s "
             "temperature=%.9g shared=%d; %s",
             side == KD_SIDE_QUERY ? "query" : "doc", m->cfg.buckets, m->cfg.E, hidden, kd_act_name(m->cfg.act),
             m->cfg.normalize, kd_dual_score_name(m->cfg.score), (double)m->cfg.temperature, m->cfg.shared, feat);
}

kd_status kd_teacher_file_fingerprint(const char *path, const char *architecture, char out[KD_HASH_HEX_LEN + 1],
                                      struct kd_error *err)
{
    struct kd_hash fh;
    kd_status st = kd_hash_file(path, &fh, err);
    if (st)
        return st;
    char hex[KD_HASH_HEX_LEN + 1];
    kd_hash_hex(fh, hex);
    struct kd_hasher h;
    if ((st = kd_hasher_init(&h, err)))
        return st;
    const char *tag = "kd-model-file-v1\n";
    kd_hasher_update(&h, tag, strlen(tag));
    kd_hasher_update(&h, hex, strlen(hex));
    kd_hasher_update(&h, "\n", 1);
    kd_hasher_update(&h, architecture, strlen(architecture));
    kd_hash_hex(kd_hasher_digest(&h), out);
    kd_hasher_release(&h);
    return KD_OK;
}

static kd_status open_dual(struct kd_text_teacher *t, const struct kd_text_teacher_spec *spec, char *config,
                           size_t cap, struct kd_error *err)
{
    if (spec->side != KD_SIDE_QUERY && spec->side != KD_SIDE_DOC)
        return kd_error_set(err, KD_ERR_ARG, "teacher '%s': the side must be query or doc", spec->name);
    char *feat = NULL;
    kd_status st = kd_dual_load(spec->model_path, &t->dual, &feat, err);
    if (!st && (!feat || !feat[0]))
        st = kd_error_set(err, KD_ERR_FORMAT, "dual encoder '%s' has no featuriser settings in its metadata",
                          spec->model_path);
    if (!st && (st = kd_text_settings_parse(feat, &t->text, err)))
        kd_error_prefix(err, "dual encoder '%s'", spec->model_path);
    free(feat);
    if (st)
        return st;
    t->side = spec->side;
    t->dim = kd_dual_dim(t->dual);
    dual_config(t->dual, &t->text, t->side, config, cap);
    /* the weights file and the architecture: the same file read as the
     * other tower, or with other features, is another teacher */
    if ((st = kd_teacher_file_fingerprint(spec->model_path, config, t->fingerprint, err)))
        return st;
    size_t at = strlen(config);
    snprintf(config + at, cap - at, " (%s)", spec->model_path);
    return KD_OK;
}

kd_status kd_text_teacher_open(const struct kd_text_teacher_spec *spec, struct kd_store *store,
                               struct kd_text_teacher **out, struct kd_error *err)
{
    *out = NULL;
    struct kd_text_teacher *t = calloc(1, sizeof *t);
    if (!t)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    snprintf(t->name, sizeof t->name, "%s", spec->name);
    t->kind = spec->kind;
    t->store = store;
    t->exec.fd = t->exec.pid = -1;
    char config[1024] = "";
    kd_status st = KD_OK;
    switch (spec->kind) {
    case KD_TEACHER_MODEL:
        t->batch = spec->batch ? spec->batch : 1024;
        if (spec->model_path) {
            st = open_dual(t, spec, config, sizeof config, err);
            break;
        }
        if (!spec->embed || !spec->dim) {
            st = kd_error_set(err, KD_ERR_ARG, "model teacher '%s' has neither a model file nor an embedder",
                              spec->name);
            break;
        }
        if ((st = check_fingerprint(spec->name, spec->fingerprint, err)))
            break;
        t->embed = spec->embed;
        t->ctx = spec->ctx;
        t->dim = spec->dim;
        snprintf(t->fingerprint, sizeof t->fingerprint, "%s", spec->fingerprint);
        snprintf(config, sizeof config, "%s", spec->config ? spec->config : "text-embedding model");
        break;
    case KD_TEACHER_EXEC:
        t->batch = spec->batch ? spec->batch : 256;
        if ((st = kd_exec_start_text(&t->exec, spec->name, spec->argv, KD_STORE_EMBEDDING, spec->timeout, err)))
            break;
        t->exec_running = 1;
        t->dim = t->exec.c;
        fingerprint_exec(spec->argv, t->exec.version, t->fingerprint);
        exec_config(spec->argv, t->exec.version, config, sizeof config);
        break;
    case KD_TEACHER_TABLE: {
        const char *table = spec->table ? spec->table : spec->name;
        struct kd_store_teacher found;
        if ((st = kd_store_teacher_find(store, table, NULL, &found, err))) {
            kd_error_prefix(err, "table teacher '%s'", spec->name);
            break;
        }
        t->id = found.id;
        snprintf(t->fingerprint, sizeof t->fingerprint, "%s", found.fingerprint);
        if ((st = kd_store_width(store, t->id, KD_STORE_EMBEDDING, &t->dim, err)))
            break;
        if (!t->dim) {
            st = kd_error_set(err, KD_ERR_NOT_FOUND, "table teacher '%s' has no embeddings in the store '%s'",
                              spec->name, kd_store_path(store));
            break;
        }
        *out = t;
        return KD_OK;
    }
    default:
        st = kd_error_set(err, KD_ERR_ARG, "teacher '%s' has an unknown kind", spec->name);
    }
    if (!st)
        st = kd_store_teacher_register(store, t->name, t->kind, t->fingerprint, config, &t->id, err);
    if (st) {
        kd_text_teacher_close(t);
        return st;
    }
    *out = t;
    return KD_OK;
}

void kd_text_teacher_close(struct kd_text_teacher *t)
{
    if (!t)
        return;
    if (t->exec_running)
        kd_exec_stop(&t->exec);
    kd_dual_free(t->dual);
    free(t);
}

/* Embeddings (n, dim) of n texts straight from the teacher. */
static kd_status embed(struct kd_text_teacher *t, const char *const *texts, size_t n, float *out,
                       struct kd_error *err)
{
    if (t->kind == KD_TEACHER_EXEC)
        return kd_exec_request_texts(&t->exec, texts, n, out, err);
    if (!t->dual)
        return t->embed(t->ctx, texts, n, out, err);
    struct kd_features f = {0};
    kd_status st = kd_featurize(&t->text, texts, NULL, n, 0, &f, err);
    if (!st) {
        struct kd_tensor o = kd_tensor_view(out, n, t->dim);
        st = kd_dual_encode(t->dual, t->side, &f, &o, err);
    }
    kd_features_release(&f);
    return st;
}

kd_status kd_text_teacher_embed(struct kd_text_teacher *t, const char *const *texts, size_t n, size_t max_queries,
                                struct kd_tensor *out, struct kd_label_stats *stats, volatile sig_atomic_t *stop,
                                struct kd_error *err)
{
    struct kd_label_stats s = {n, 0, 0};
    if (stats)
        *stats = s;
    size_t E = t->dim;
    if (out->rows != n || out->cols != E)
        return kd_error_set(err, KD_ERR_SHAPE, "teacher '%s' embeddings need a (%zu, %zu) tensor, got (%zu, %zu)",
                            t->name, n, E, out->rows, out->cols);
    if (n == 0)
        return KD_OK;
    struct kd_hash *keys = malloc(n * sizeof *keys), *bkeys = NULL;
    size_t *missing = malloc(n * sizeof *missing), *ask = malloc(n * sizeof *ask);
    size_t *dup = malloc(2 * n * sizeof *dup);
    const char **bt = NULL;
    float *by = NULL;
    struct kd_store_writer *writer = NULL;
    size_t n_missing = 0, n_ask = 0, n_dup = 0;
    kd_status st = KD_OK;
    if (!keys || !missing || !ask || !dup) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for %zu texts", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const char *x = texts[i] ? texts[i] : "";
        keys[i] = kd_hash_text(x, strlen(x));
    }
    if ((st = kd_store_lookup(t->store, t->id, KD_STORE_EMBEDDING, keys, n, E, out->data, NULL, missing,
                              &n_missing, err)))
        goto done;
    s.cached = n - n_missing;
    if (n_missing && t->kind == KD_TEACHER_TABLE) {
        char ex[64];
        snprintf(ex, sizeof ex, "%.40s%s", texts[missing[0]] ? texts[missing[0]] : "",
                 texts[missing[0]] && strlen(texts[missing[0]]) > 40 ? "..." : "");
        st = kd_error_set(err, KD_ERR_NOT_FOUND,
                          "table teacher '%s' has no embedding for %zu of the %zu texts (first missing: text %zu, "
                          "'%s')",
                          t->name, n_missing, n, missing[0], ex);
        goto done;
    }
    if ((st = distinct(keys, missing, n_missing, ask, &n_ask, dup, &n_dup, err)))
        goto done;
    if (n_ask > max_queries) {
        st = kd_error_set(err, KD_ERR_BUDGET, "embedding %zu texts with teacher '%s' needs %zu new queries, the "
                          "budget allows %zu", n, t->name, n_ask, max_queries);
        goto done;
    }
    size_t B = t->batch;
    bt = malloc(B * sizeof *bt);
    bkeys = malloc(B * sizeof *bkeys);
    by = kd_alloc(B * E, sizeof(float));
    if (!bt || !bkeys || !by) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for teacher batches");
        goto done;
    }
    if ((st = kd_teacher_impl_writer(t->store, t->id, KD_STORE_EMBEDDING, E, COMMIT_ROWS, COMMIT_SECONDS,
                                     t->store_inline || !n_ask, t->name, &writer, err)))
        goto done;
    struct kd_progress prog;
    kd_progress_begin(&prog, "embed texts", n_ask);
    for (size_t off = 0; off < n_ask; off += B) {
        if (stop && *stop) {
            st = kd_error_set(err, KD_ERR_INTERRUPTED, "embedding interrupted after %zu of %zu texts (all stored)",
                              s.queried, n_ask);
            break;
        }
        size_t b = n_ask - off < B ? n_ask - off : B;
        for (size_t i = 0; i < b; i++) {
            bt[i] = texts[ask[off + i]] ? texts[ask[off + i]] : "";
            bkeys[i] = keys[ask[off + i]];
        }
        if ((st = embed(t, bt, b, by, err)))
            break;
        double t0 = kd_time_now();
        st = kd_store_writer_add(writer, bkeys, b, by, NULL, err);
        t->store_wait += kd_time_now() - t0;
        if (st)
            break;
        for (size_t i = 0; i < b; i++)
            memcpy(kd_tensor_row(out, ask[off + i]), by + i * E, E * sizeof(float));
        s.queried += b;
        kd_progress_update(&prog, s.queried, NULL);
    }
    kd_progress_end(&prog);
    {
        /* whatever happened, keep what the teacher answered */
        struct kd_error ferr = {0};
        double t0 = kd_time_now();
        kd_status fst = kd_store_writer_flush(writer, NULL, st ? &ferr : err);
        t->store_wait += kd_time_now() - t0;
        if (fst && !st)
            st = fst;
        else if (fst)
            kd_log(KD_LOG_WARN, "could not store the last embeddings of teacher '%s': %s", t->name, ferr.msg);
    }
    if (st)
        goto done;
    for (size_t j = 0; j < n_dup; j++)
        memcpy(kd_tensor_row(out, dup[2 * j]), kd_tensor_row(out, dup[2 * j + 1]), E * sizeof(float));
done:
    if (stats)
        *stats = s;
    free(keys);
    free(bkeys);
    free(missing);
    free(ask);
    free(dup);
    free(bt);
    kd_free(by);
    kd_store_writer_free(writer);
    return st;
}

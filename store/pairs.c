/* Pair answers: teacher scores of (query, document) pairs, keyed by the
 * hash of both texts, with the ids each pair hash stands for kept in the
 * pairs table; and the import of a TSV table of pair scores. */
#include "store/store_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

struct kd_hash kd_store_pair_key(const struct kd_store_pair *p)
{
    const char *q = p->query ? p->query : "", *d = p->doc ? p->doc : "";
    return kd_hash_pair(q, strlen(q), d, strlen(d));
}

static struct kd_hash *pair_keys(const struct kd_store_pair *pairs, size_t n)
{
    struct kd_hash *keys = malloc((n ? n : 1) * sizeof *keys);
    if (keys)
        for (size_t i = 0; i < n; i++)
            keys[i] = kd_store_pair_key(pairs + i);
    return keys;
}

/* Records which ids the n pair hashes stand for, in one transaction. A
 * (corpus, query_id, doc_id) recorded before is pointed at its new hash:
 * the ids now name these texts. */
static kd_status put_pair_ids(struct kd_store *st, const char *corpus,
                              const struct kd_store_pair *pairs, const struct kd_hash *keys,
                              size_t n, struct kd_error *err)
{
    char purpose[KD_STORE_NAME_MAX + 64];
    snprintf(purpose, sizeof purpose, "recording %zu pairs of corpus '%s'", n, corpus);
    sqlite3_stmt *q = NULL;
    kd_status s = kd_store_impl_begin_write(st, purpose, err);
    if (s)
        return s;
    if ((s = kd_store_impl_prepare(st,
                           "INSERT OR REPLACE INTO pairs (corpus, query_id, doc_id, hash_hi, "
                           "hash_lo) VALUES (?1, ?2, ?3, ?4, ?5)",
                           purpose, &q, err)))
        goto fail;
    sqlite3_bind_text(q, 1, corpus, -1, SQLITE_STATIC);
    for (size_t i = 0; i < n; i++) {
        if (!pairs[i].query_id || !pairs[i].doc_id)
            continue;
        sqlite3_bind_text(q, 2, pairs[i].query_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, pairs[i].doc_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 4, store_i64(keys[i].hi));
        sqlite3_bind_int64(q, 5, store_i64(keys[i].lo));
        int rc = sqlite3_step(q);
        sqlite3_reset(q);
        if (rc != SQLITE_DONE) {
            s = kd_store_impl_fail(st, rc, purpose, err);
            goto fail;
        }
    }
    sqlite3_finalize(q);
    return kd_store_impl_commit(st, purpose, err);
fail:
    sqlite3_finalize(q);
    kd_store_impl_rollback(st);
    return s;
}

static kd_status check_corpus(const char *corpus, struct kd_error *err)
{
    if (!corpus || !corpus[0] || strlen(corpus) >= KD_STORE_NAME_MAX)
        return kd_error_set(err, KD_ERR_ARG, "a corpus name must be 1 to %d bytes",
                            KD_STORE_NAME_MAX - 1);
    return KD_OK;
}

kd_status kd_store_put_pair_ids(struct kd_store *st, const char *corpus,
                                const struct kd_store_pair *pairs, size_t n, struct kd_error *err)
{
    kd_status s = check_corpus(corpus, err);
    if (s || n == 0)
        return s;
    if (!pairs)
        return kd_error_set(err, KD_ERR_ARG, "kd_store_put_pair_ids: no pairs given");
    struct kd_hash *keys = pair_keys(pairs, n);
    if (!keys)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory recording %zu pairs", n);
    s = put_pair_ids(st, corpus, pairs, keys, n, err);
    free(keys);
    return s;
}

kd_status kd_store_put_pair_scores(struct kd_store *st, int64_t teacher, const char *corpus,
                                   const struct kd_store_pair *pairs, size_t n,
                                   const float *scores, size_t *n_added, struct kd_error *err)
{
    if (n_added)
        *n_added = 0;
    if (n == 0)
        return KD_OK;
    if (!pairs || !scores)
        return kd_error_set(err, KD_ERR_ARG, "kd_store_put_pair_scores: no pairs or scores given");
    kd_status s;
    if (corpus && (s = check_corpus(corpus, err)))
        return s;
    /* the checks kd_store_put makes, before the ids are recorded */
    if ((s = kd_store_impl_check_answers(KD_STORE_SCORE, n, 1, scores, err)))
        return s;
    struct kd_hash *keys = pair_keys(pairs, n);
    if (!keys)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory storing %zu pair scores", n);
    if (!corpus || !(s = put_pair_ids(st, corpus, pairs, keys, n, err)))
        s = kd_store_put(st, teacher, KD_STORE_SCORE, keys, n, 1, scores, NULL, n_added, err);
    free(keys);
    return s;
}

kd_status kd_store_lookup_pair_scores(struct kd_store *st, int64_t teacher,
                                      const struct kd_store_pair *pairs, size_t n, float *scores,
                                      unsigned char *found, size_t *missing, size_t *n_missing,
                                      struct kd_error *err)
{
    if (n_missing)
        *n_missing = 0;
    if (n == 0)
        return KD_OK;
    if (!pairs)
        return kd_error_set(err, KD_ERR_ARG, "kd_store_lookup_pair_scores: no pairs given");
    struct kd_hash *keys = pair_keys(pairs, n);
    if (!keys)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory looking up %zu pair scores", n);
    kd_status s = kd_store_lookup(st, teacher, KD_STORE_SCORE, keys, n, 1, scores, found, missing,
                                  n_missing, err);
    free(keys);
    return s;
}

/* ------------------------------------------------------------- TSV import */

/* Pairs are stored in batches of this many lines. */
#define IMPORT_BATCH 65536

/* One data line split in place: query id, doc id, score. */
struct tsv_line {
    char *qid, *did;
    float score;
};

/* Splits line (no newline) into its fields; *is_header = 1 for a first
 * line whose score field is not a number. */
static kd_status parse_line(const char *path, size_t lineno, char *line, struct tsv_line *out,
                            int *is_header, struct kd_error *err)
{
    char *f[3];
    size_t nf = 0;
    char *p = line;
    *is_header = 0;
    for (;;) {
        char *tab = strchr(p, '\t');
        if (nf < 3)
            f[nf] = p;
        nf++;
        if (!tab)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    if (nf != 3)
        return kd_error_set(err, KD_ERR_FORMAT,
                            "%s:%zu: expected 3 tab-separated fields (query-id, corpus-id, score), "
                            "found %zu",
                            path, lineno, nf);
    for (int i = 0; i < 2; i++)
        if (!f[i][0])
            return kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: the %s field is empty", path, lineno,
                                i ? "corpus-id" : "query-id");
    char *end;
    double v = strtod(f[2], &end);
    int number = end != f[2] && *end == '\0';
    if (!number && lineno == 1) {
        *is_header = 1;
        return KD_OK;
    }
    if (!number)
        return kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: expected a score (a number), found '%.40s'",
                            path, lineno, f[2]);
    if (!isfinite(v) || fabs(v) > 3.4028234663852886e38)
        return kd_error_set(err, KD_ERR_FORMAT,
                            "%s:%zu: expected a finite float32 score, found '%.40s'", path, lineno,
                            f[2]);
    out->qid = f[0];
    out->did = f[1];
    out->score = (float)v;
    return KD_OK;
}

/* Reads the next line into *line (without \n or \r\n); 0 at the end. */
static int next_line(FILE *f, char **line, size_t *cap, size_t *len)
{
    ssize_t got = getline(line, cap, f);
    if (got < 0)
        return 0;
    size_t n = (size_t)got;
    if (n && (*line)[n - 1] == '\n')
        (*line)[--n] = '\0';
    if (n && (*line)[n - 1] == '\r')
        (*line)[--n] = '\0';
    *len = n;
    return 1;
}

/* The texts of one line's ids; KD_ERR_FORMAT for an unknown id. */
static kd_status line_texts(const char *path, size_t lineno, const struct tsv_line *l,
                            const struct kd_store_pair_texts *texts, struct kd_store_pair *pair,
                            char **qcopy, struct kd_error *err)
{
    const char *qt = texts->query_text(texts->ctx, l->qid);
    if (!qt)
        return kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: unknown query id '%.100s'", path, lineno,
                            l->qid);
    /* the query's text must survive the document lookup */
    free(*qcopy);
    if (!(*qcopy = strdup(qt)))
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory reading '%s'", path);
    const char *dt = texts->doc_text(texts->ctx, l->did);
    if (!dt)
        return kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: unknown corpus id '%.100s'", path, lineno,
                            l->did);
    pair->query_id = l->qid;
    pair->doc_id = l->did;
    pair->query = *qcopy;
    pair->doc = dt;
    return KD_OK;
}

/* One batch of parsed lines with its own copies of the ids. */
struct batch {
    struct kd_store_pair *pairs;
    struct kd_hash *keys;
    float *scores;
    char **ids; /* 2 per pair */
    size_t n;
};

static void batch_clear(struct batch *b)
{
    for (size_t i = 0; i < 2 * b->n; i++)
        free(b->ids[i]);
    b->n = 0;
}

/* Stores a batch: ids first, then the scores (see kd_store_put_pair_scores). */
static kd_status batch_store(struct kd_store *st, int64_t teacher, const char *corpus,
                             struct batch *b, size_t *added, struct kd_error *err)
{
    size_t n_added = 0;
    kd_status s = put_pair_ids(st, corpus, b->pairs, b->keys, b->n, err);
    if (!s)
        s = kd_store_put(st, teacher, KD_STORE_SCORE, b->keys, b->n, 1, b->scores, NULL, &n_added,
                         err);
    *added += n_added;
    batch_clear(b);
    return s;
}

kd_status kd_store_import_pair_scores(struct kd_store *st, const char *path, const char *name,
                                      const char *fingerprint, const char *corpus,
                                      const struct kd_store_pair_texts *texts,
                                      struct kd_store_pair_import *out, struct kd_error *err)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!path || !name || !corpus || !texts || !texts->query_text || !texts->doc_text)
        return kd_error_set(err, KD_ERR_ARG,
                            "kd_store_import_pair_scores: a path, teacher name, corpus and the "
                            "texts behind the ids are needed");
    kd_status s = check_corpus(corpus, err);
    if (s)
        return s;
    char *line = NULL, *qcopy = NULL;
    size_t cap = 0, len, lineno = 0, rows = 0, added = 0;
    struct batch b = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return kd_error_set(err, KD_ERR_IO, "cannot open '%s': %s", path, strerror(errno));

    /* Pass 1: check every line before storing any. */
    while (next_line(f, &line, &cap, &len)) {
        lineno++;
        if (!len)
            continue;
        struct tsv_line l;
        struct kd_store_pair pair;
        int header;
        if ((s = parse_line(path, lineno, line, &l, &header, err)))
            goto out;
        if (header)
            continue;
        if ((s = line_texts(path, lineno, &l, texts, &pair, &qcopy, err)))
            goto out;
        rows++;
    }
    if (ferror(f)) {
        s = kd_error_set(err, KD_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
        goto out;
    }

    char fp[KD_STORE_FINGERPRINT_MAX + 1];
    if (fingerprint) {
        snprintf(fp, sizeof fp, "%s", fingerprint);
    } else {
        struct kd_hash fh;
        if ((s = kd_hash_file(path, &fh, err)))
            goto out;
        kd_hash_hex(fh, fp);
    }
    int64_t teacher;
    char config[4200];
    snprintf(config, sizeof config, "pair scores imported from '%.4000s'", path);
    if ((s = kd_store_teacher_register(st, name, KD_TEACHER_TABLE, fp, config, &teacher, err)))
        goto out;
    if (out) {
        out->teacher = teacher;
        snprintf(out->fingerprint, sizeof out->fingerprint, "%s", fp);
    }

    /* Pass 2: the same lines again, stored in batches. */
    size_t bn = rows < IMPORT_BATCH ? (rows ? rows : 1) : IMPORT_BATCH;
    b.pairs = malloc(bn * sizeof *b.pairs);
    b.keys = malloc(bn * sizeof *b.keys);
    b.scores = malloc(bn * sizeof *b.scores);
    b.ids = malloc(bn * 2 * sizeof *b.ids);
    if (!b.pairs || !b.keys || !b.scores || !b.ids) {
        s = kd_error_set(err, KD_ERR_NOMEM, "out of memory importing '%s'", path);
        goto out;
    }
    rewind(f);
    lineno = 0;
    while (next_line(f, &line, &cap, &len)) {
        lineno++;
        if (!len)
            continue;
        struct tsv_line l;
        struct kd_store_pair pair;
        int header;
        if ((s = parse_line(path, lineno, line, &l, &header, err)))
            goto out;
        if (header)
            continue;
        if ((s = line_texts(path, lineno, &l, texts, &pair, &qcopy, err)))
            goto out;
        size_t i = b.n;
        b.keys[i] = kd_store_pair_key(&pair);
        b.scores[i] = l.score;
        b.ids[2 * i] = strdup(l.qid);
        b.ids[2 * i + 1] = strdup(l.did);
        b.n++;
        if (!b.ids[2 * i] || !b.ids[2 * i + 1]) {
            s = kd_error_set(err, KD_ERR_NOMEM, "out of memory importing '%s'", path);
            goto out;
        }
        b.pairs[i].query_id = b.ids[2 * i];
        b.pairs[i].doc_id = b.ids[2 * i + 1];
        b.pairs[i].query = b.pairs[i].doc = NULL; /* the key is made */
        if (b.n == bn && (s = batch_store(st, teacher, corpus, &b, &added, err)))
            goto out;
    }
    if (ferror(f)) {
        s = kd_error_set(err, KD_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
        goto out;
    }
    if (b.n && (s = batch_store(st, teacher, corpus, &b, &added, err)))
        goto out;
    if (out) {
        out->rows = rows;
        out->added = added;
    }
out:
    if (b.ids)
        batch_clear(&b);
    free(b.pairs);
    free(b.keys);
    free(b.scores);
    free(b.ids);
    free(line);
    free(qcopy);
    fclose(f);
    return s;
}

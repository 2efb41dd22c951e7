/* BM25 candidates: a corpus indexed into an SQLite FTS5 table of its own,
 * rebuilt only when the corpus's fingerprint changes, and top-k searches of
 * many query texts in one read transaction. Query texts are never parsed as
 * FTS5 syntax: they are tokenised by the index's own tokenizer (through
 * FTS5's C API) and each term is quoted. */
#include "store/store_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Hashed in front of the documents, so that a new tokenizer (or a new way
 * of laying out the index) re-indexes every corpus. */
#define FTS_LAYOUT "kd corpus index 1: (title, text) contentless fts5 " KD_STORE_FTS_TOKENIZER

static kd_status check_corpus_name(const char *name, struct kd_error *err)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= KD_STORE_NAME_MAX)
        return kd_error_set(err, KD_ERR_ARG, "a corpus name must be 1 to %d bytes, got %zu",
                            KD_STORE_NAME_MAX - 1, n);
    return KD_OK;
}

static void hash_prefixed(struct kd_hasher *h, const char *s)
{
    size_t len = s ? strlen(s) : 0;
    unsigned char n[8];
    for (int i = 0; i < 8; i++)
        n[i] = (unsigned char)((uint64_t)len >> (8 * i));
    kd_hasher_update(h, n, sizeof n);
    if (len)
        kd_hasher_update(h, s, len);
}

/* XXH3-128 over the layout, n, and each document's id, title and text,
 * each length-prefixed (le64), in order. */
static kd_status corpus_fingerprint(const char *const *ids, const char *const *titles,
                                    const char *const *texts, size_t n,
                                    char out[KD_HASH_HEX_LEN + 1], struct kd_error *err)
{
    struct kd_hasher h;
    kd_status s = kd_hasher_init(&h, err);
    if (s)
        return s;
    hash_prefixed(&h, FTS_LAYOUT);
    unsigned char nb[8];
    for (int i = 0; i < 8; i++)
        nb[i] = (unsigned char)((uint64_t)n >> (8 * i));
    kd_hasher_update(&h, nb, sizeof nb);
    for (size_t i = 0; i < n; i++) {
        hash_prefixed(&h, ids[i]);
        hash_prefixed(&h, titles ? titles[i] : NULL);
        hash_prefixed(&h, texts ? texts[i] : NULL);
    }
    kd_hash_hex(kd_hasher_digest(&h), out);
    kd_hasher_release(&h);
    return KD_OK;
}

/* The corpus row by name; *found = 0 when absent. */
static kd_status corpus_get(struct kd_store *st, const char *name, struct kd_store_corpus *c,
                            int *found, const char *purpose, struct kd_error *err)
{
    sqlite3_stmt *q = NULL;
    *found = 0;
    kd_status s = kd_store_impl_prepare(st,
                                "SELECT id, n_docs, fingerprint, indexed_at, (SELECT count(*) FROM "
                                "sqlite_master WHERE name IN (corpora.fts_table, "
                                "'corpus_vocab_' || corpora.id)) FROM corpora WHERE name = ?1",
                                purpose, &q, err);
    if (s)
        return s;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        memset(c, 0, sizeof *c);
        c->id = sqlite3_column_int64(q, 0);
        snprintf(c->name, sizeof c->name, "%s", name);
        c->n_docs = sqlite3_column_int64(q, 1);
        const unsigned char *fp = sqlite3_column_text(q, 2);
        snprintf(c->fingerprint, sizeof c->fingerprint, "%s", fp ? (const char *)fp : "");
        c->indexed_at = sqlite3_column_double(q, 3);
        /* a corpus whose FTS table is gone (dropped by hand) counts as
         * changed: it is indexed again */
        if (sqlite3_column_int(q, 4) != 2)
            c->fingerprint[0] = '\0';
        *found = 1;
    } else if (rc != SQLITE_DONE) {
        s = kd_store_impl_fail(st, rc, purpose, err);
    }
    sqlite3_finalize(q);
    return s;
}

/* KD_ERR_NOT_FOUND for an unknown corpus, naming the ones there are. */
static kd_status corpus_unknown(struct kd_store *st, const char *name, struct kd_error *err)
{
    char known[512] = "";
    size_t len = 0;
    int n = 0;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT name FROM corpora ORDER BY name", -1, &q, NULL) ==
        SQLITE_OK)
        while (sqlite3_step(q) == SQLITE_ROW && len + 8 < sizeof known) {
            const char *c = (const char *)sqlite3_column_text(q, 0);
            int w = snprintf(known + len, sizeof known - len, "%s'%s'", n ? ", " : "", c ? c : "");
            if (w < 0 || (size_t)w >= sizeof known - len) {
                snprintf(known + len, sizeof known - len, ", ...");
                break;
            }
            len += (size_t)w;
            n++;
        }
    sqlite3_finalize(q);
    if (!n)
        return kd_error_set(err, KD_ERR_NOT_FOUND,
                            "label store '%s' has no corpus '%s' (no corpus is indexed yet)",
                            st->path, name);
    return kd_error_set(err, KD_ERR_NOT_FOUND, "label store '%s' has no corpus '%s' (it has %s)",
                        st->path, name, known);
}

kd_status kd_store_corpus_find(struct kd_store *st, const char *name, struct kd_store_corpus *out,
                               struct kd_error *err)
{
    kd_status s = check_corpus_name(name, err);
    if (s)
        return s;
    int found;
    if ((s = corpus_get(st, name, out, &found, "reading a corpus", err)))
        return s;
    return found ? KD_OK : corpus_unknown(st, name, err);
}

/* ------------------------------------------------------------------ indexing */

static kd_status step_done(struct kd_store *st, sqlite3_stmt *q, const char *purpose,
                           struct kd_error *err)
{
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    return rc == SQLITE_DONE ? KD_OK : kd_store_impl_fail(st, rc, purpose, err);
}

kd_status kd_store_corpus_index(struct kd_store *st, const char *name, const char *const *ids,
                                const char *const *titles, const char *const *texts, size_t n,
                                int *built, struct kd_error *err)
{
    if (built)
        *built = 0;
    kd_status s = check_corpus_name(name, err);
    if (s)
        return s;
    if (n && !ids)
        return kd_error_set(err, KD_ERR_ARG, "corpus '%s': no document ids given", name);
    for (size_t i = 0; i < n; i++)
        if (!ids[i] || !ids[i][0])
            return kd_error_set(err, KD_ERR_ARG,
                                "corpus '%s': document %zu has no id; nothing was indexed", name, i);
    if ((uint64_t)n > (uint64_t)INT64_MAX)
        return kd_error_set(err, KD_ERR_ARG, "corpus '%s' is too large", name);
    char fp[KD_HASH_HEX_LEN + 1];
    if ((s = corpus_fingerprint(ids, titles, texts, n, fp, err)))
        return s;

    char purpose[KD_STORE_NAME_MAX + 64];
    snprintf(purpose, sizeof purpose, "indexing corpus '%s' (%zu documents)", name, n);
    sqlite3_stmt *ins_fts = NULL, *ins_doc = NULL, *q = NULL;
    struct kd_store_corpus old;
    int found;
    char sql[512], table[64];
    int64_t id = 0;
    /* The common case, an unchanged corpus, needs no write lock (and works
     * on a store opened read-only). */
    if ((s = kd_store_impl_begin_read(st, purpose, err)))
        return s;
    s = corpus_get(st, name, &old, &found, purpose, err);
    kd_store_impl_rollback(st);
    if (s)
        return s;
    if (found && !strcmp(old.fingerprint, fp))
        return KD_OK;
    /* changed or new: look again under the write lock (another process may
     * have just indexed it) */
    if ((s = kd_store_impl_begin_write(st, purpose, err)))
        return s;
    if ((s = corpus_get(st, name, &old, &found, purpose, err)))
        goto fail;
    if (found && !strcmp(old.fingerprint, fp)) {
        /* unchanged: keep the index (end the transaction without writing) */
        kd_store_impl_rollback(st);
        return KD_OK;
    }
    if (found) {
        id = old.id;
        snprintf(sql, sizeof sql,
                 "DROP TABLE IF EXISTS corpus_vocab_%lld; DROP TABLE IF EXISTS corpus_fts_%lld",
                 (long long)id, (long long)id);
        if ((s = kd_store_impl_exec(st, sql, purpose, err)) ||
            (s = kd_store_impl_prepare(st, "DELETE FROM corpus_docs WHERE corpus_id = ?1", purpose, &q,
                               err)))
            goto fail;
        sqlite3_bind_int64(q, 1, id);
        if ((s = step_done(st, q, purpose, err)))
            goto fail;
        sqlite3_finalize(q);
        q = NULL;
        if ((s = kd_store_impl_prepare(st,
                               "UPDATE corpora SET n_docs = ?2, fingerprint = ?3, tokenizer = ?4, "
                               "indexed_at = ?5 WHERE id = ?1",
                               purpose, &q, err)))
            goto fail;
        sqlite3_bind_int64(q, 1, id);
    } else {
        if ((s = kd_store_impl_prepare(st,
                               "INSERT INTO corpora (name, n_docs, fingerprint, tokenizer, "
                               "indexed_at, fts_table) VALUES (?6, ?2, ?3, ?4, ?5, '')",
                               purpose, &q, err)))
            goto fail;
        sqlite3_bind_text(q, 6, name, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(q, 2, (int64_t)n);
    sqlite3_bind_text(q, 3, fp, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, KD_STORE_FTS_TOKENIZER, -1, SQLITE_STATIC);
    sqlite3_bind_double(q, 5, kd_store_impl_now());
    if ((s = step_done(st, q, purpose, err)))
        goto fail;
    sqlite3_finalize(q);
    q = NULL;
    if (!found)
        id = sqlite3_last_insert_rowid(st->db);
    /* The table is named by the corpus's id, never by its name: no
     * user text ever reaches the SQL. */
    snprintf(table, sizeof table, "corpus_fts_%lld", (long long)id);
    snprintf(sql, sizeof sql,
             "UPDATE corpora SET fts_table = '%s' WHERE id = %lld;"
             "CREATE VIRTUAL TABLE %s USING fts5(title, text, content = '', tokenize = '%s');"
             "CREATE VIRTUAL TABLE corpus_vocab_%lld USING fts5vocab(%s, row)",
             table, (long long)id, table, KD_STORE_FTS_TOKENIZER, (long long)id, table);
    if ((s = kd_store_impl_exec(st, sql, purpose, err)))
        goto fail;
    snprintf(sql, sizeof sql, "INSERT INTO %s (rowid, title, text) VALUES (?1, ?2, ?3)", table);
    if ((s = kd_store_impl_prepare(st, sql, purpose, &ins_fts, err)) ||
        (s = kd_store_impl_prepare(st, "INSERT INTO corpus_docs (corpus_id, idx, doc_id) VALUES (?1, ?2, ?3)",
                           purpose, &ins_doc, err)))
        goto fail;
    sqlite3_bind_int64(ins_doc, 1, id);
    for (size_t i = 0; i < n; i++) {
        const char *title = titles && titles[i] ? titles[i] : "";
        const char *text = texts && texts[i] ? texts[i] : "";
        sqlite3_bind_int64(ins_fts, 1, (int64_t)i);
        sqlite3_bind_text(ins_fts, 2, title, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins_fts, 3, text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins_doc, 2, (int64_t)i);
        sqlite3_bind_text(ins_doc, 3, ids[i], -1, SQLITE_STATIC);
        if ((s = step_done(st, ins_fts, purpose, err)) || (s = step_done(st, ins_doc, purpose, err)))
            goto fail;
    }
    sqlite3_finalize(ins_fts);
    sqlite3_finalize(ins_doc);
    ins_fts = ins_doc = NULL;
    /* One b-tree segment per term instead of the many that incremental
     * merging leaves: queries read one posting list per term. */
    snprintf(sql, sizeof sql, "INSERT INTO %s (%s) VALUES ('optimize')", table, table);
    if ((s = kd_store_impl_exec(st, sql, purpose, err)) || (s = kd_store_impl_commit(st, purpose, err)))
        goto fail;
    if (built)
        *built = 1;
    kd_log(KD_LOG_INFO, "label store '%s': indexed corpus '%s' (%zu documents)", st->path, name, n);
    return KD_OK;
fail:
    sqlite3_finalize(q);
    sqlite3_finalize(ins_fts);
    sqlite3_finalize(ins_doc);
    kd_store_impl_rollback(st);
    return s;
}

/* ------------------------------------------------------------------ queries */

/* FTS5's tokenizer of the index, for turning query text into terms. */
struct query_tokenizer {
    fts5_api *fts5;
    fts5_tokenizer api;
    Fts5Tokenizer *tok;
};

static kd_status tokenizer_open(struct kd_store *st, struct query_tokenizer *t,
                                const char *purpose, struct kd_error *err)
{
    memset(t, 0, sizeof *t);
    fts5_api *api = NULL;
    sqlite3_stmt *q = NULL;
    kd_status s = kd_store_impl_prepare(st, "SELECT fts5(?1)", purpose, &q, err);
    if (s)
        return s;
    sqlite3_bind_pointer(q, 1, (void *)&api, "fts5_api_ptr", NULL);
    sqlite3_step(q);
    sqlite3_finalize(q);
    void *ctx = NULL;
    /* KD_STORE_FTS_TOKENIZER, split into the tokenizer and its arguments */
    const char *args[] = {"unicode61", "remove_diacritics", "2"};
    if (!api || api->iVersion < 2 || api->xFindTokenizer(api, "porter", &ctx, &t->api) != SQLITE_OK ||
        t->api.xCreate(ctx, args, 3, &t->tok) != SQLITE_OK)
        return kd_error_set(err, KD_ERR_STORE,
                            "label store '%s': the SQLite library has no FTS5 tokenizer '%s' (%s)",
                            st->path, KD_STORE_FTS_TOKENIZER, purpose);
    t->fts5 = api;
    return KD_OK;
}

/* ------------------------------------------------------------------ ranking */

/* kd_bm25(fts_table, ctx): FTS5's bm25() with its formula and constants,
 * computed from what kd already has: the idf of each term (the document
 * counts the query was pruned with) and every document's length, read once
 * per search. bm25() itself counts each term's documents again for every
 * query and looks each matching row's length up in the index: four times
 * slower for the same numbers (the tests compare the two). */
struct bm25_ctx {
    const double *idf; /* (n_idf), idf of phrase i of the MATCH expression */
    size_t n_idf;
    const uint32_t *len; /* (n_len) tokens in row i, title and text */
    int64_t n_len;
    double avgdl; /* < 0: not read yet for this query */
};
#define BM25_K1 1.2
#define BM25_B 0.75

static void kd_bm25(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *out, int n_val,
                    sqlite3_value **val)
{
    struct bm25_ctx *c = n_val == 1 ? sqlite3_value_pointer(val[0], "kd_bm25") : NULL;
    if (!c) {
        sqlite3_result_error(out, "kd_bm25: no context", -1);
        return;
    }
    if (c->avgdl < 0) {
        sqlite3_int64 rows = 0, tokens = 0;
        if (api->xRowCount(fts, &rows) != SQLITE_OK ||
            api->xColumnTotalSize(fts, -1, &tokens) != SQLITE_OK) {
            sqlite3_result_error(out, "kd_bm25: cannot read the index's totals", -1);
            return;
        }
        c->avgdl = rows > 0 ? (double)tokens / (double)rows : 1.0;
    }
    sqlite3_int64 rowid = api->xRowid(fts);
    double d;
    if (rowid >= 0 && rowid < c->n_len) {
        d = (double)c->len[rowid];
    } else {
        int n = 0;
        api->xColumnSize(fts, -1, &n);
        d = (double)n;
    }
    /* the expression as FTS5 writes it, so that the doubles are the same */
    double norm = BM25_K1 * (1 - BM25_B + BM25_B * d / c->avgdl), score = 0.0;
    int n_phrases = api->xPhraseCount(fts);
    for (int i = 0; i < n_phrases && (size_t)i < c->n_idf; i++) {
        Fts5PhraseIter it;
        int col, off, tf = 0;
        for (api->xPhraseFirst(fts, i, &it, &col, &off); col >= 0; api->xPhraseNext(fts, &it, &col, &off))
            tf++;
        if (tf)
            score += c->idf[i] * (tf * (BM25_K1 + 1.0)) / (tf + norm);
    }
    sqlite3_result_double(out, -score); /* lower is better, as bm25() */
}

/* Registers kd_bm25 on the store's connection once (FTS5 also declares the
 * name to SQLite, which is how a second call knows). */
static kd_status bm25_register(struct kd_store *st, fts5_api *api, const char *purpose,
                               struct kd_error *err)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT kd_bm25()", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_finalize(q);
        return KD_OK;
    }
    sqlite3_finalize(q);
    int rc = api->xCreateFunction(api, "kd_bm25", NULL, kd_bm25, NULL);
    return rc == SQLITE_OK ? KD_OK : kd_store_impl_fail(st, rc, purpose, err);
}

/* Reads an SQLite varint (FTS5's docsize record); 0 on a bad one. */
static size_t get_varint32(const unsigned char *p, size_t n, uint32_t *v)
{
    uint64_t r = 0;
    for (size_t i = 0; i < n && i < 9; i++) {
        if (i == 8) {
            *v = (uint32_t)((r << 8) | p[i]);
            return 9;
        }
        r = (r << 7) | (p[i] & 0x7f);
        if (!(p[i] & 0x80)) {
            *v = (uint32_t)r;
            return i + 1;
        }
    }
    return 0;
}

/* Every row's length in tokens, from the FTS5 table's docsize records:
 * *len (n_docs) is malloc'ed; rows without a record get 0 (kd_bm25 then
 * asks FTS5). */
static kd_status load_lengths(struct kd_store *st, int64_t corpus, int64_t n_docs, uint32_t **len,
                              const char *purpose, struct kd_error *err)
{
    char sql[128];
    sqlite3_stmt *q = NULL;
    *len = calloc(n_docs > 0 ? (size_t)n_docs : 1, sizeof **len);
    if (!*len)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
    snprintf(sql, sizeof sql, "SELECT id, sz FROM corpus_fts_%lld_docsize", (long long)corpus);
    kd_status s = kd_store_impl_prepare(st, sql, purpose, &q, err);
    if (s)
        return s;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0);
        const unsigned char *b = sqlite3_column_blob(q, 1);
        size_t nb = (size_t)sqlite3_column_bytes(q, 1), off = 0;
        uint32_t total = 0, v, used;
        if (id < 0 || id >= n_docs)
            continue;
        while (b && off < nb && (used = (uint32_t)get_varint32(b + off, nb - off, &v))) {
            total += v;
            off += used;
        }
        (*len)[id] = total;
    }
    if (rc != SQLITE_DONE)
        s = kd_store_impl_fail(st, rc, purpose, err);
    sqlite3_finalize(q);
    return s;
}

static void tokenizer_close(struct query_tokenizer *t)
{
    if (t->tok)
        t->api.xDelete(t->tok);
    t->tok = NULL;
}

/* The terms of one query, each distinct (stemmed) term once with the span
 * of query text it came from, then the MATCH expression made of them:
 * "span1" OR "span2" ..., each span quoted, so that FTS5 tokenises it to
 * exactly that term and nothing in it is syntax. */
struct query_terms {
    const char *text;
    char *terms; /* the stemmed terms, each NUL-terminated */
    size_t terms_len, terms_cap;
    size_t *span; /* (start, end) of term i in text */
    int64_t *hits; /* the number of documents with term i */
    double *idf;   /* the idf of the terms kept, in order */
    size_t n, span_cap, hits_cap, idf_cap;
    char *match;
    size_t match_len, match_cap;
    int oom;
};

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

static int on_token(void *ctx, int tflags, const char *tok, int n_tok, int start, int end)
{
    struct query_terms *m = ctx;
    (void)tflags;
    if (n_tok <= 0 || end <= start || m->n >= KD_STORE_FTS_MAX_TERMS)
        return SQLITE_OK;
    for (size_t off = 0; off < m->terms_len;) {
        size_t l = strlen(m->terms + off);
        if (l == (size_t)n_tok && !memcmp(m->terms + off, tok, l))
            return SQLITE_OK;
        off += l + 1;
    }
    if (grow((void **)&m->terms, &m->terms_cap, m->terms_len + (size_t)n_tok + 1, 1) ||
        grow((void **)&m->span, &m->span_cap, 2 * m->n + 2, sizeof *m->span) ||
        grow((void **)&m->hits, &m->hits_cap, m->n + 1, sizeof *m->hits) ||
        grow((void **)&m->idf, &m->idf_cap, m->n + 1, sizeof *m->idf)) {
        m->oom = 1;
        return SQLITE_NOMEM;
    }
    memcpy(m->terms + m->terms_len, tok, (size_t)n_tok);
    m->terms_len += (size_t)n_tok;
    m->terms[m->terms_len++] = '\0';
    m->span[2 * m->n] = (size_t)start;
    m->span[2 * m->n + 1] = (size_t)end;
    m->n++;
    return SQLITE_OK;
}

/* Appends term i, quoted, to the MATCH expression. */
static int match_add(struct query_terms *m, size_t i)
{
    size_t a = m->span[2 * i], b = m->span[2 * i + 1];
    if (grow((void **)&m->match, &m->match_cap, m->match_len + 2 * (b - a) + 8, 1))
        return -1;
    if (m->match_len) {
        memcpy(m->match + m->match_len, " OR ", 4);
        m->match_len += 4;
    }
    m->match[m->match_len++] = '"';
    /* a unicode61 token never holds a double quote, but should one, doubling
     * it keeps it inside the string */
    for (const char *c = m->text + a; c < m->text + b; c++) {
        if (*c == '"')
            m->match[m->match_len++] = '"';
        m->match[m->match_len++] = *c;
    }
    m->match[m->match_len++] = '"';
    m->match[m->match_len] = '\0';
    return 0;
}

static void query_terms_release(struct query_terms *m)
{
    free(m->terms);
    free(m->span);
    free(m->hits);
    free(m->idf);
    free(m->match);
}

kd_status kd_store_corpus_search(struct kd_store *st, const char *name, const char *const *queries,
                                 size_t n_queries, size_t k, int64_t *docs, float *scores,
                                 size_t *counts, struct kd_error *err)
{
    kd_status s = check_corpus_name(name, err);
    if (s)
        return s;
    if (n_queries == 0)
        return KD_OK;
    if (!queries || !counts || (k && !docs))
        return kd_error_set(err, KD_ERR_ARG, "kd_store_corpus_search: no queries or outputs given");
    if (k > (size_t)INT32_MAX)
        return kd_error_set(err, KD_ERR_ARG, "corpus '%s': k = %zu is too large", name, k);
    for (size_t i = 0; i < n_queries; i++) {
        counts[i] = 0;
        for (size_t j = 0; j < k; j++) {
            docs[i * k + j] = -1;
            if (scores)
                scores[i * k + j] = NAN;
        }
    }
    if (k == 0)
        return KD_OK;
    char purpose[KD_STORE_NAME_MAX + 64];
    snprintf(purpose, sizeof purpose, "searching corpus '%s' for %zu queries", name, n_queries);
    struct query_tokenizer tk = {0};
    struct query_terms m = {0};
    sqlite3_stmt *q = NULL, *df = NULL;
    uint32_t *lengths = NULL;
    struct kd_store_corpus c;
    int found, rc;
    char sql[256];
    if ((s = kd_store_impl_begin_read(st, purpose, err)))
        return s;
    if ((s = corpus_get(st, name, &c, &found, purpose, err)))
        goto fail;
    if (!found) {
        s = corpus_unknown(st, name, err);
        goto fail;
    }
    if (!c.fingerprint[0]) {
        s = kd_error_set(err, KD_ERR_STORE,
                         "label store '%s': the index of corpus '%s' is missing; index the corpus "
                         "again",
                         st->path, name);
        goto fail;
    }
    /* kd_bm25 is bm25(); rowid breaks ties */
    snprintf(sql, sizeof sql,
             "SELECT rowid, kd_bm25(corpus_fts_%lld, ?3) AS r FROM corpus_fts_%lld "
             "WHERE corpus_fts_%lld MATCH ?1 ORDER BY r, rowid LIMIT ?2",
             (long long)c.id, (long long)c.id, (long long)c.id);
    if ((s = tokenizer_open(st, &tk, purpose, err)) ||
        (s = bm25_register(st, tk.fts5, purpose, err)) ||
        (s = load_lengths(st, c.id, c.n_docs, &lengths, purpose, err)) ||
        (s = kd_store_impl_prepare(st, sql, purpose, &q, err)))
        goto fail;
    snprintf(sql, sizeof sql, "SELECT doc FROM corpus_vocab_%lld WHERE term = ?1", (long long)c.id);
    if ((s = kd_store_impl_prepare(st, sql, purpose, &df, err)))
        goto fail;
    struct bm25_ctx bm = {NULL, 0, lengths, c.n_docs, -1.0};
    sqlite3_bind_int64(q, 2, (int64_t)k);
    for (size_t i = 0; i < n_queries; i++) {
        const char *text = queries[i] ? queries[i] : "";
        size_t len = strlen(text);
        if (len > (size_t)INT32_MAX) {
            s = kd_error_set(err, KD_ERR_ARG, "corpus '%s': query %zu is too long (%zu bytes)",
                             name, i, len);
            goto fail;
        }
        m.text = text;
        m.n = m.terms_len = m.match_len = 0;
        rc = tk.api.xTokenize(tk.tok, &m, FTS5_TOKENIZE_QUERY, text, (int)len, on_token);
        if (m.oom || rc != SQLITE_OK) {
            s = m.oom ? kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose)
                      : kd_store_impl_fail(st, rc, purpose, err);
            goto fail;
        }
        /* Terms in no document change nothing: left out. Terms in half the
         * documents or more get idf 1e-6 from bm25(), so they change no
         * score by more than about 1e-5, but their long posting lists would
         * make the query read most of the index: left out too... */
        const char *term = m.terms;
        int64_t *hits = m.hits;
        for (size_t t = 0; t < m.n; t++, term += strlen(term) + 1) {
            sqlite3_bind_text(df, 1, term, -1, SQLITE_STATIC);
            hits[t] = 0;
            if ((rc = sqlite3_step(df)) == SQLITE_ROW)
                hits[t] = sqlite3_column_int64(df, 0);
            sqlite3_reset(df);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
                s = kd_store_impl_fail(st, rc, purpose, err);
                goto fail;
            }
        }
        /* ... unless the query has no other term: then they are its only
         * ranking signal */
        int rare = 0;
        for (size_t t = 0; t < m.n; t++)
            rare |= hits[t] > 0 && 2 * hits[t] < c.n_docs;
        size_t kept = 0;
        for (size_t t = 0; t < m.n; t++)
            if (hits[t] > 0 && (!rare || 2 * hits[t] < c.n_docs)) {
                if (match_add(&m, t)) {
                    s = kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
                    goto fail;
                }
                /* bm25()'s idf, in the order of the MATCH phrases */
                double n = (double)c.n_docs, h = (double)hits[t];
                double idf = log((n - h + 0.5) / (h + 0.5));
                m.idf[kept++] = idf > 0 ? idf : 1e-6;
            }
        if (!m.match_len)
            continue; /* no term: no candidates */
        bm.idf = m.idf;
        bm.n_idf = kept;
        bm.avgdl = -1.0;
        sqlite3_bind_text(q, 1, m.match, (int)m.match_len, SQLITE_STATIC);
        sqlite3_bind_pointer(q, 3, &bm, "kd_bm25", NULL);
        size_t j = 0;
        while (j < k && (rc = sqlite3_step(q)) == SQLITE_ROW) {
            docs[i * k + j] = sqlite3_column_int64(q, 0);
            if (scores)
                scores[i * k + j] = (float)-sqlite3_column_double(q, 1);
            j++;
        }
        if (j == k)
            rc = SQLITE_DONE;
        sqlite3_reset(q);
        if (rc != SQLITE_DONE) {
            s = kd_store_impl_fail(st, rc, purpose, err);
            goto fail;
        }
        counts[i] = j;
    }
    sqlite3_finalize(q);
    sqlite3_finalize(df);
    tokenizer_close(&tk);
    query_terms_release(&m);
    free(lengths);
    return kd_store_impl_commit(st, purpose, err);
fail:
    sqlite3_finalize(q);
    sqlite3_finalize(df);
    tokenizer_close(&tk);
    query_terms_release(&m);
    free(lengths);
    kd_store_impl_rollback(st);
    if (counts)
        memset(counts, 0, n_queries * sizeof *counts);
    return s;
}

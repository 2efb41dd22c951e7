/* BEIR retrieval data sets: corpus.jsonl, queries.jsonl and qrels/<split>.tsv.
 * Each JSON line is checked for UTF-8 first (so the message can point at the
 * byte) and then parsed with Jansson; ids go into hash indices as they are
 * read, so that duplicates are caught on the spot and qrels rows are
 * resolved in O(1). Strings live in one arena owned by the result. */
#include "data/data_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kd_beir_impl {
    struct kd_arena strings;
    struct kd_str_index docs, queries;
};

static const char *const split_names[KD_BEIR_N_SPLITS] = {"train", "dev", "test"};

const char *kd_beir_split_name(enum kd_beir_split split)
{
    return (unsigned)split < KD_BEIR_N_SPLITS ? split_names[split] : "?";
}

kd_status kd_beir_split_parse(const char *name, enum kd_beir_split *split, struct kd_error *err)
{
    for (int s = 0; s < KD_BEIR_N_SPLITS; s++)
        if (!strcmp(name, split_names[s])) {
            *split = (enum kd_beir_split)s;
            return KD_OK;
        }
    return kd_error_set(err, KD_ERR_ARG, "unknown split '%s': expected train, dev or test", name);
}

/* Lines of a text file, one at a time, numbered from 1, without '\n' or
 * "\r\n"; a UTF-8 byte order mark on the first line is dropped. */
struct lines {
    FILE *f;
    const char *path;
    char *buf;
    size_t cap;
    size_t no;
};

static kd_status lines_open(struct lines *l, const char *path, struct kd_error *err)
{
    memset(l, 0, sizeof *l);
    l->path = path;
    l->f = fopen(path, "rb");
    if (!l->f)
        return kd_error_set(err, KD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return KD_OK;
}

/* 1 and the line in *s, *len; 0 at the end of the file; -1 on a read error
 * (err set). */
static int lines_next(struct lines *l, char **s, size_t *len, struct kd_error *err)
{
    errno = 0;
    ssize_t n = getline(&l->buf, &l->cap, l->f);
    if (n < 0) {
        if (ferror(l->f)) {
            kd_error_set(err, errno == ENOMEM ? KD_ERR_NOMEM : KD_ERR_IO, "%s:%zu: cannot read: %s",
                         l->path, l->no + 1, strerror(errno ? errno : EIO));
            return -1;
        }
        return 0;
    }
    l->no++;
    char *p = l->buf;
    size_t k = (size_t)n;
    if (k && p[k - 1] == '\n')
        k--;
    if (k && p[k - 1] == '\r')
        k--;
    p[k] = '\0';
    if (l->no == 1 && k >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
        p += 3;
        k -= 3;
    }
    *s = p;
    *len = k;
    return 1;
}

static void lines_close(struct lines *l)
{
    if (l->f)
        fclose(l->f);
    free(l->buf);
    memset(l, 0, sizeof *l);
}

static int is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return 0;
    return 1;
}

/* A value as it appears in a message: quoted, cut when long. */
static void quoted(char *buf, size_t n, const char *s, size_t len)
{
    if (len > 60)
        snprintf(buf, n, "'%.60s...'", s);
    else
        snprintf(buf, n, "'%.*s'", (int)len, s);
}

/* Growable arrays of string pointers, kept in step. */
struct table {
    char **cols[3];
    size_t *line;           /* (n) line of each entry, for duplicate messages */
    size_t n, cap;
    int ncols;
};

static kd_status table_grow(struct table *t, const char *path, struct kd_error *err)
{
    if (t->n < t->cap)
        return KD_OK;
    size_t cap = t->cap ? t->cap * 2 : 1024;
    for (int c = 0; c < t->ncols; c++) {
        char **p = realloc(t->cols[c], cap * sizeof *p);
        if (!p)
            return kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory after %zu lines", path, t->n);
        t->cols[c] = p;
    }
    size_t *ln = realloc(t->line, cap * sizeof *ln);
    if (!ln)
        return kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory after %zu lines", path, t->n);
    t->line = ln;
    t->cap = cap;
    return KD_OK;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

/* Reads a JSON-lines file of objects into t: column 0 the _id, then the
 * string fields named in `fields` (optional ones become "" when missing or
 * null). The ids go into ix. */
static kd_status read_jsonl(const char *path, struct table *t, const char *const *fields,
                            const int *required, int nfields, struct kd_arena *arena,
                            struct kd_str_index *ix, struct kd_error *err)
{
    kd_status st = KD_OK;
    struct lines l;
    json_t *obj = NULL;
    char *s;
    size_t len;
    int r;
    if ((st = lines_open(&l, path, err)))
        return st;
    while ((r = lines_next(&l, &s, &len, err)) > 0) {
        if (is_blank(s, len))
            continue;
        size_t ok = kd_utf8_valid_prefix(s, len);
        if (ok < len) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu:%zu: invalid UTF-8 (byte 0x%02x)", path,
                              l.no, ok + 1, (unsigned)(unsigned char)s[ok]);
            goto done;
        }
        json_error_t je;
        json_decref(obj);
        obj = json_loadb(s, len, 0, &je);
        if (!obj) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu:%d: invalid JSON: %s", path, l.no,
                              je.column, je.text);
            goto done;
        }
        if (!json_is_object(obj)) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: expected a JSON object, found %s", path,
                              l.no, json_kind(obj));
            goto done;
        }
        if ((st = table_grow(t, path, err)))
            goto done;
        size_t i = t->n;
        /* The id: a string, or an integer as some converters write it. */
        json_t *id = json_object_get(obj, "_id");
        char num[32];
        const char *ids;
        size_t idlen;
        if (!id) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: missing _id", path, l.no);
            goto done;
        } else if (json_is_string(id)) {
            ids = json_string_value(id);
            idlen = json_string_length(id);
        } else if (json_is_integer(id)) {
            snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
            ids = num;
            idlen = strlen(num);
        } else {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: _id must be a string, found %s", path,
                              l.no, json_kind(id));
            goto done;
        }
        if (idlen == 0 || is_blank(ids, idlen)) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: empty _id", path, l.no);
            goto done;
        }
        /* Ids are written into TSV files and run files: a tab or newline in
         * one would corrupt them. */
        if (strcspn(ids, "\t\r\n") < idlen) {
            char q[80];
            quoted(q, sizeof q, ids, idlen);
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: _id %s contains a tab or line break",
                              path, l.no, q);
            goto done;
        }
        if (!(t->cols[0][i] = kd_arena_strndup(arena, ids, idlen)))
            goto nomem;
        for (int c = 0; c < nfields; c++) {
            json_t *v = json_object_get(obj, fields[c]);
            const char *val = "";
            size_t vlen = 0;
            if (v && json_is_string(v)) {
                val = json_string_value(v);
                vlen = json_string_length(v);
                /* Jansson refuses \u0000 in strings, so strlen == vlen. */
            } else if ((!v || json_is_null(v)) && required[c]) {
                st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: missing %s", path, l.no, fields[c]);
                goto done;
            } else if (v && !json_is_null(v)) {
                st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: %s must be a string, found %s",
                                  path, l.no, fields[c], json_kind(v));
                goto done;
            }
            if (!(t->cols[c + 1][i] = kd_arena_strndup(arena, val, vlen)))
                goto nomem;
        }
        t->line[i] = l.no;
        size_t dup;
        if ((st = kd_str_index_add(ix, t->cols[0], i, &dup, err))) {
            kd_error_prefix(err, "%s:%zu", path, l.no);
            goto done;
        }
        if (dup != KD_STR_INDEX_NONE) {
            char q[80];
            quoted(q, sizeof q, ids, idlen);
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: duplicate _id %s (first on line %zu)",
                              path, l.no, q, t->line[dup]);
            goto done;
        }
        t->n++;
    }
    if (r < 0)
        st = err ? err->status : KD_ERR_IO;
    goto done;
nomem:
    st = kd_error_set(err, KD_ERR_NOMEM, "%s:%zu: out of memory", path, l.no);
done:
    json_decref(obj);
    lines_close(&l);
    return st;
}

/* A qrels row with its position in the file, so that sorting can keep the
 * last of repeated pairs. */
struct row {
    uint32_t query, doc;
    int32_t score;
    uint32_t pad;
    size_t seq;
};

static int row_cmp(const void *pa, const void *pb)
{
    const struct row *a = pa, *b = pb;
    if (a->query != b->query)
        return a->query < b->query ? -1 : 1;
    if (a->doc != b->doc)
        return a->doc < b->doc ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static kd_status read_qrels(const char *path, struct kd_beir *b, struct kd_beir_qrels *out, unsigned bit,
                            size_t *n_rows, size_t *n_skipped, size_t *n_dups,
                            struct kd_error *err)
{
    kd_status st = KD_OK;
    struct lines l;
    struct row *rows = NULL;
    size_t n = 0, cap = 0;
    char *s;
    size_t len;
    int r;
    if ((st = lines_open(&l, path, err)))
        return st;
    r = lines_next(&l, &s, &len, err);
    if (r < 0) {
        st = err ? err->status : KD_ERR_IO;
        goto done;
    }
    if (r == 0) {
        st = kd_error_set(err, KD_ERR_FORMAT,
                          "%s: empty file: expected the header 'query-id<TAB>corpus-id<TAB>score'",
                          path);
        goto done;
    }
    if (strcmp(s, "query-id\tcorpus-id\tscore") != 0) {
        char q[80];
        quoted(q, sizeof q, s, len);
        st = kd_error_set(err, KD_ERR_FORMAT,
                          "%s:1: expected the header 'query-id<TAB>corpus-id<TAB>score', found %s",
                          path, q);
        goto done;
    }
    while ((r = lines_next(&l, &s, &len, err)) > 0) {
        if (is_blank(s, len))
            continue;
        char *f[3];
        size_t nf = 0;
        for (char *p = s;; nf++) {
            char *tab = strchr(p, '\t');
            if (nf < 3)
                f[nf] = p;
            if (!tab) {
                nf++;
                break;
            }
            *tab = '\0';
            p = tab + 1;
        }
        if (nf != 3) {
            st = kd_error_set(err, KD_ERR_FORMAT,
                              "%s:%zu: expected 3 tab-separated fields (query-id, corpus-id, "
                              "score), found %zu",
                              path, l.no, nf);
            goto done;
        }
        size_t q = kd_str_index_find(&b->impl->queries, b->query_ids, f[0], strlen(f[0]));
        if (q == KD_STR_INDEX_NONE) {
            char qq[80];
            quoted(qq, sizeof qq, f[0], strlen(f[0]));
            st = kd_error_set(err, KD_ERR_FORMAT,
                              "%s:%zu:1: unknown query-id %s (not in queries.jsonl)", path, l.no,
                              qq);
            goto done;
        }
        size_t d = kd_str_index_find(&b->impl->docs, b->doc_ids, f[1], strlen(f[1]));
        if (d == KD_STR_INDEX_NONE) {
            char qq[80];
            quoted(qq, sizeof qq, f[1], strlen(f[1]));
            st = kd_error_set(err, KD_ERR_FORMAT,
                              "%s:%zu:2: unknown corpus-id %s (not in corpus.jsonl)", path, l.no,
                              qq);
            goto done;
        }
        char *end;
        errno = 0;
        long v = strtol(f[2], &end, 10);
        if (end == f[2] || *end || errno || v < INT32_MIN || v > INT32_MAX) {
            char qq[80];
            quoted(qq, sizeof qq, f[2], strlen(f[2]));
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu:3: expected an integer score, found %s",
                              path, l.no, qq);
            goto done;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 1024;
            struct row *nr = realloc(rows, nc * sizeof *nr);
            if (!nr) {
                st = kd_error_set(err, KD_ERR_NOMEM, "%s:%zu: out of memory", path, l.no);
                goto done;
            }
            rows = nr;
            cap = nc;
        }
        rows[n] = (struct row){(uint32_t)q, (uint32_t)d, (int32_t)v, 0, n};
        n++;
    }
    if (r < 0) {
        st = err ? err->status : KD_ERR_IO;
        goto done;
    }
    *n_rows = n;
    for (size_t i = 0; i < n; i++)   /* named by this file, whatever its score */
        b->query_judged[rows[i].query] |= (uint8_t)bit;
    if (n)
        qsort(rows, n, sizeof *rows, row_cmp);
    /* Keep the last row of each pair, then drop queries without a score
     * > 0, in place: kept rows only ever move to lower positions. */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && rows[i + 1].query == rows[i].query && rows[i + 1].doc == rows[i].doc) {
            (*n_dups)++;
            continue;
        }
        rows[m++] = rows[i];
    }
    size_t k = 0;
    for (size_t i = 0; i < m;) {
        size_t j = i;
        int relevant = 0;
        while (j < m && rows[j].query == rows[i].query)
            relevant |= rows[j++].score > 0;
        if (relevant) {
            for (size_t t = i; t < j; t++)
                rows[k++] = rows[t];
            out->n_queries++;
        } else {
            (*n_skipped)++;
        }
        i = j;
    }
    out->rows = malloc((k ? k : 1) * sizeof *out->rows);
    if (!out->rows) {
        st = kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (size_t i = 0; i < k; i++)
        out->rows[i] = (struct kd_beir_qrel){rows[i].query, rows[i].doc, rows[i].score};
    out->n = k;
    out->loaded = 1;
done:
    free(rows);
    lines_close(&l);
    return st;
}

void kd_beir_release(struct kd_beir *b)
{
    if (!b)
        return;
    free(b->doc_ids);
    free(b->doc_titles);
    free(b->doc_texts);
    free(b->query_ids);
    free(b->query_texts);
    free(b->query_judged);
    for (int s = 0; s < KD_BEIR_N_SPLITS; s++)
        free(b->qrels[s].rows);
    if (b->impl) {
        kd_arena_release(&b->impl->strings);
        kd_str_index_release(&b->impl->docs);
        kd_str_index_release(&b->impl->queries);
        free(b->impl);
    }
    memset(b, 0, sizeof *b);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

kd_status kd_beir_load(const char *dir, unsigned splits, struct kd_beir *out,
                       struct kd_beir_stats *stats, struct kd_error *err)
{
    kd_status st = KD_OK;
    struct table docs = {.ncols = 3}, queries = {.ncols = 2};
    char *path = NULL;
    struct kd_beir_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    memset(out, 0, sizeof *out);
    if (!dir || splits > KD_BEIR_ALL)
        return kd_error_set(err, KD_ERR_ARG, "load beir: missing directory or bad split set");
    out->impl = calloc(1, sizeof *out->impl);
    if (!out->impl)
        return kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory", dir);
    if ((st = kd_str_index_init(&out->impl->docs, 1024, err)) ||
        (st = kd_str_index_init(&out->impl->queries, 1024, err)))
        goto done;

    static const char *const doc_fields[] = {"title", "text"};
    static const int doc_required[] = {0, 1};
    if (!(path = join(dir, "corpus.jsonl")))
        goto nomem;
    if ((st = read_jsonl(path, &docs, doc_fields, doc_required, 2, &out->impl->strings,
                         &out->impl->docs, err)))
        goto done;
    out->doc_ids = docs.cols[0];
    out->doc_titles = docs.cols[1];
    out->doc_texts = docs.cols[2];
    out->n_docs = docs.n;
    docs.cols[0] = docs.cols[1] = docs.cols[2] = NULL;

    static const char *const query_fields[] = {"text"};
    static const int query_required[] = {1};
    free(path);
    if (!(path = join(dir, "queries.jsonl")))
        goto nomem;
    if ((st = read_jsonl(path, &queries, query_fields, query_required, 1, &out->impl->strings,
                         &out->impl->queries, err)))
        goto done;
    out->query_ids = queries.cols[0];
    out->query_texts = queries.cols[1];
    out->n_queries = queries.n;
    queries.cols[0] = queries.cols[1] = NULL;
    stats->docs = out->n_docs;
    stats->queries = out->n_queries;
    if (!(out->query_judged = calloc(out->n_queries ? out->n_queries : 1, 1)))
        goto nomem;

    for (int s = 0; s < KD_BEIR_N_SPLITS; s++) {
        if (!(splits & KD_BEIR_WANT(s)))
            continue;
        char name[32];
        snprintf(name, sizeof name, "qrels/%s.tsv", split_names[s]);
        free(path);
        if (!(path = join(dir, name)))
            goto nomem;
        if ((st = read_qrels(path, out, &out->qrels[s], KD_BEIR_WANT(s), &stats->rows[s], &stats->skipped[s],
                             &stats->duplicates[s], err)))
            goto done;
    }
    goto done;
nomem:
    st = kd_error_set(err, KD_ERR_NOMEM, "%s: out of memory", dir);
done:
    for (int c = 0; c < 3; c++) {
        free(docs.cols[c]);
        free(queries.cols[c]);
    }
    free(docs.line);
    free(queries.line);
    free(path);
    if (st)
        kd_beir_release(out);
    return st;
}

int kd_beir_find_doc(const struct kd_beir *b, const char *id, size_t *index)
{
    if (!b->impl)
        return 0;
    size_t i = kd_str_index_find(&b->impl->docs, b->doc_ids, id, strlen(id));
    if (i == KD_STR_INDEX_NONE)
        return 0;
    *index = i;
    return 1;
}

int kd_beir_find_query(const struct kd_beir *b, const char *id, size_t *index)
{
    if (!b->impl)
        return 0;
    size_t i = kd_str_index_find(&b->impl->queries, b->query_ids, id, strlen(id));
    if (i == KD_STR_INDEX_NONE)
        return 0;
    *index = i;
    return 1;
}

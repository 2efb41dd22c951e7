/* Fuzzes the BEIR loader (kd_beir_load: corpus.jsonl and queries.jsonl,
 * JSON, UTF-8, ids, the qrels header, rows, scores and id look-ups) as
 * `kd search --beir`, `kd store` and pipeline retrieval data sets call it.
 * Input: one byte choosing the split (b % 3: train, dev, test; the qrels
 * file is asked for unless b & 0x80, which loads corpus and queries only,
 * as `kd store` does), then corpus.jsonl, KDFZ, queries.jsonl, KDFZ, the
 * qrels file. A missing part is an empty file. The files go into a fresh
 * directory under $TMPDIR (or /dev/shm), removed after each input.
 *
 * An accepted data set must keep the loader's promises (data/kd_data.h):
 * ids non-empty, unique, found by kd_beir_find_*, without tab or line
 * break; every string valid UTF-8; qrels indices in range, rows sorted by
 * (query, document) without repeated pairs, n_queries the number of
 * distinct queries, each of which has a relevant (score > 0) row. */
#include <sys/stat.h>

#include "fuzz/fuzz_split.h"

static char base[200];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    kd_fuzz_quiet();
    const char *tmp = getenv("TMPDIR");
    struct stat sb;
    if (!tmp || !tmp[0])
        tmp = stat("/dev/shm", &sb) == 0 ? "/dev/shm" : "/tmp";
    snprintf(base, sizeof base, "%s/kd-fuzz-beir.XXXXXX", tmp);
    return 0;
}

static void put(const char *dir, const char *name, const uint8_t *data, size_t n)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

static void gone(const char *dir, const char *name)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (unlink(path) != 0 && rmdir(path) != 0) {
        perror(path);
        abort();
    }
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static int utf8_ok(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        unsigned c = *s, n;
        uint32_t cp;
        if (c < 0x80) {
            s++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3, cp = c & 0x07;
        } else {
            return 0;
        }
        for (unsigned k = 1; k <= n; k++) {
            if ((s[k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[k] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        s += n + 1;
    }
    return 1;
}

static void check_ids(char **ids, size_t n, const struct kd_beir *b,
                      int (*find)(const struct kd_beir *, const char *, size_t *))
{
    for (size_t i = 0; i < n; i++) {
        size_t at;
        if (!ids[i] || !ids[i][0] || strpbrk(ids[i], "\t\r\n") || !utf8_ok(ids[i]))
            abort();
        /* unique: the index finds this very row */
        if (!find(b, ids[i], &at) || at != i)
            abort();
    }
}

static void check_texts(char **texts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!texts[i] || !utf8_ok(texts[i]))
            abort();
}

static void check(const struct kd_beir *b, unsigned splits)
{
    check_ids(b->doc_ids, b->n_docs, b, kd_beir_find_doc);
    check_ids(b->query_ids, b->n_queries, b, kd_beir_find_query);
    check_texts(b->doc_titles, b->n_docs);
    check_texts(b->doc_texts, b->n_docs);
    check_texts(b->query_texts, b->n_queries);
    size_t at;
    if (kd_beir_find_doc(b, "", &at) || kd_beir_find_query(b, "", &at))
        abort();
    for (int s = 0; s < KD_BEIR_N_SPLITS; s++) {
        const struct kd_beir_qrels *q = &b->qrels[s];
        if (!(splits & KD_BEIR_WANT(s))) {
            if (q->loaded || q->rows || q->n)
                abort();
            continue;
        }
        if (!q->loaded)
            abort();
        size_t distinct = 0;
        int relevant = 0;
        for (size_t r = 0; r < q->n; r++) {
            const struct kd_beir_qrel *x = &q->rows[r];
            if (x->query >= b->n_queries || x->doc >= b->n_docs)
                abort();
            int first = r == 0 || q->rows[r - 1].query != x->query;
            if (!first && q->rows[r - 1].doc >= x->doc)
                abort(); /* unsorted or a repeated pair */
            if (r > 0 && q->rows[r - 1].query > x->query)
                abort();
            if (first) {
                if (r > 0 && !relevant)
                    abort(); /* the previous query had no relevant row */
                distinct++;
                relevant = 0;
            }
            relevant |= x->score > 0;
        }
        if ((q->n && !relevant) || distinct != q->n_queries)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum kd_beir_split split = (enum kd_beir_split)(data[0] % 3);
    unsigned splits = data[0] & 0x80 ? 0 : KD_BEIR_WANT(split);
    const uint8_t *part[3] = {data + 1, NULL, NULL};
    size_t len[3] = {0, 0, 0};
    kd_fuzz_split(data + 1, size - 1, &len[0], &part[1], &len[1]);
    if (part[1])
        kd_fuzz_split(part[1], len[1], &len[1], &part[2], &len[2]);

    char dir[sizeof base];
    memcpy(dir, base, sizeof base);
    if (!mkdtemp(dir)) {
        perror(dir);
        abort();
    }
    char qrels[64];
    snprintf(qrels, sizeof qrels, "qrels/%s.tsv", kd_beir_split_name(split));
    char qdir[300];
    snprintf(qdir, sizeof qdir, "%s/qrels", dir);
    if (mkdir(qdir, 0700) != 0) {
        perror(qdir);
        abort();
    }
    put(dir, "corpus.jsonl", part[0], len[0]);
    put(dir, "queries.jsonl", part[1], len[1]);
    put(dir, qrels, part[2], len[2]);

    struct kd_beir b;
    struct kd_beir_stats stats;
    struct kd_error err = {0};
    if (kd_beir_load(dir, splits, &b, &stats, &err) == KD_OK) {
        check(&b, splits);
        if (stats.docs != b.n_docs || stats.queries != b.n_queries)
            abort();
    } else if (b.impl || b.doc_ids || b.query_ids || !err.msg[0]) {
        abort(); /* a failed load leaves *out empty, with a message */
    }
    kd_beir_release(&b);

    gone(dir, qrels);
    gone(dir, "qrels");
    gone(dir, "corpus.jsonl");
    gone(dir, "queries.jsonl");
    if (rmdir(dir) != 0) {
        perror(dir);
        abort();
    }
    return 0;
}

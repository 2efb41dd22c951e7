/* Fuzzes importing a table of pair scores: kd_store_import_pair_scores
 * (`kd store import --pairs`: lines query-id, corpus-id, score; the optional
 * header; blank lines, CRLF; the fields, the float32 score, the ids looked up
 * in the data set) into a fresh label store per input, then the same file a
 * second time.
 *
 * Input: the TSV file itself (a memfd). The ids a data set would give are
 * played by a rule: a query id is known when it starts with 'q' or 'Q', a
 * corpus id when it starts with 'd' or 'D', and the text behind an id is the
 * id in lower case, so that "q1" and "Q1" are two ids of one text (one pair
 * key). The store is a copy of an empty store made once (a real file in a
 * private folder under $TMPDIR or /dev/shm: SQLite puts -wal and -shm files
 * next to it).
 *
 * An accepted file must keep the import's promises (store/kd_store.h): no
 * more new answers than rows read, and importing it again adds nothing and
 * reads as many rows; a refused file leaves a message. */
#include <ctype.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "fuzz/fuzz_util.h"
#include "store/kd_store.h"

static char dir[256], db[300], wal[310], shm[310];
static char *empty_store; /* the bytes of a freshly created store */
static size_t empty_len;

static void cleanup(void)
{
    unlink(db), unlink(wal), unlink(shm);
    rmdir(dir);
    free(empty_store);
}

static void write_db(void)
{
    unlink(wal), unlink(shm);
    FILE *f = fopen(db, "wb");
    if (!f || fwrite(empty_store, 1, empty_len, f) != empty_len || fclose(f) != 0) {
        perror(db);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    kd_fuzz_quiet();
    const char *tmp = getenv("TMPDIR");
    struct stat sb;
    if (!tmp || !tmp[0])
        tmp = stat("/dev/shm", &sb) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/kd-fuzz-pairs-%ld", tmp, (long)getpid());
    if (mkdir(dir, 0700) != 0 && stat(dir, &sb) != 0) {
        perror(dir);
        abort();
    }
    snprintf(db, sizeof db, "%s/kd.db", dir);
    snprintf(wal, sizeof wal, "%s-wal", db);
    snprintf(shm, sizeof shm, "%s-shm", db);
    atexit(cleanup);
    /* one empty store, created by kd; every input starts from its bytes */
    unlink(db), unlink(wal), unlink(shm);
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    if (kd_store_open(db, NULL, &st, &err) != KD_OK) {
        fprintf(stderr, "fuzz_pairs: %s\n", err.msg);
        abort();
    }
    kd_store_close(st);
    /* kd's 64 KiB pages make the empty store megabytes; copied per input,
     * that was most of the time: the same schema in 512-byte pages */
    sqlite3 *h;
    if (sqlite3_open(db, &h) != SQLITE_OK ||
        sqlite3_exec(h, "PRAGMA journal_mode=DELETE; PRAGMA page_size=512; VACUUM", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_close(h) != SQLITE_OK) {
        fprintf(stderr, "fuzz_pairs: %s\n", sqlite3_errmsg(h));
        abort();
    }
    if (kd_read_file(db, &empty_store, &empty_len, &err) != KD_OK) {
        fprintf(stderr, "fuzz_pairs: %s\n", err.msg);
        abort();
    }
    return 0;
}

/* The id in lower case, or NULL when the id is not of this side. */
struct texts {
    char buf[2][4096];
};

static const char *id_text(char *buf, const char *id, char side)
{
    if (tolower((unsigned char)id[0]) != side)
        return NULL;
    size_t i = 0;
    for (; id[i] && i + 1 < 4096; i++)
        buf[i] = (char)tolower((unsigned char)id[i]);
    buf[i] = '\0';
    return buf;
}

static const char *query_text(void *ctx, const char *id) { return id_text(((struct texts *)ctx)->buf[0], id, 'q'); }
static const char *doc_text(void *ctx, const char *id) { return id_text(((struct texts *)ctx)->buf[1], id, 'd'); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = kd_fuzz_memfile("pairs.tsv", data, size, path, sizeof path);
    write_db();
    struct kd_store_options o;
    kd_store_options_init(&o);
    o.must_exist = 1;
    o.busy_timeout_ms = 0;
    o.cache_mb = 2;
    struct kd_store *st = NULL;
    struct kd_error err = {0};
    if (kd_store_open(db, &o, &st, &err) != KD_OK) {
        fprintf(stderr, "fuzz_pairs: %s\n", err.msg);
        abort();
    }
    struct texts tx;
    const struct kd_store_pair_texts texts = {query_text, doc_text, &tx};
    struct kd_store_pair_import a, b;
    if (kd_store_import_pair_scores(st, path, "fuzz", NULL, "corpus", &texts, &a, &err) == KD_OK) {
        if (a.added > a.rows)
            abort();
        /* the same file again: the same teacher, every pair known */
        if (kd_store_import_pair_scores(st, path, "fuzz", NULL, "corpus", &texts, &b, &err) != KD_OK ||
            b.added != 0 || b.rows != a.rows || b.teacher != a.teacher)
            abort();
    } else if (!err.msg[0]) {
        abort();
    }
    kd_store_close(st);
    close(fd);
    return 0;
}

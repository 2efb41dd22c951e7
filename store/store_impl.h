/* Private to store/: the open store, its prepared statements, error
 * mapping and the little-endian vector helpers shared by the store's files.
 *
 * Naming: a function or table shared between the store's files but not part
 * of its API is called kd_store_impl_<name> (so that every symbol libkd.a exports
 * carries kd_ and none collides with a program's own store_* names);
 * static and static inline helpers keep short names. */
#ifndef KD_STORE_IMPL_H
#define KD_STORE_IMPL_H

#include "store/kd_store.h"

#include <sqlite3.h>
#include <string.h>

/* The schema (schema.c): kd_store_impl_migrations[v], NULL-terminated SQL
 * statements, takes a store from schema version v to v + 1 (version 0 is an
 * empty file); kd_store_impl_tables names the tables of the current version, to
 * recognise a kd store whose user_version was lost. */
extern const char *const *const kd_store_impl_migrations[KD_STORE_SCHEMA_VERSION];
#define STORE_N_KD_TABLES 12
extern const char *const kd_store_impl_tables[STORE_N_KD_TABLES];

/* Statements used on hot or repeated paths: prepared once per handle (on
 * first use) and reset after each use. The SQL text is in store.c. */
enum store_stmt {
    S_TEACHER_BY_ID,
    S_WIDTH_GET,
    S_WIDTH_SET,
    S_ANSWER_PUT,
    S_ANSWER_BY_ID,
    S_ANSWER_KEY_BY_ID,
    S_ANSWER_COUNT,
    S_RUNS_LIST,
    S_RUN_PUT,
    S_RUN_DROP,
    S_KEYS_SEEK,
    S_KEYS_RUN,
    S_KEYS_PUT,
    S_KEYS_DROP,
    S_EXAMPLE_PUT,
    S_METRIC_PUT,
    S_SELECTION_PUT,
    S_WEIGHT_PUT,
    S_N_STMTS
};

/* Runs of the key directory kept in memory by a handle (keys.c). */
struct kd_store_impl_keycache;

struct kd_store {
    sqlite3 *db;
    char *path;
    int read_only;
    int busy_timeout_ms;
    struct kd_store_options opt; /* as opened (a background writer opens the file again) */
    sqlite3_stmt *stmt[S_N_STMTS];
    struct kd_store_impl_keycache *keycache; /* NULL until a lookup makes one */
};

/* The statement, prepared if needed, reset and with its bindings cleared. */
kd_status kd_store_impl_stmt(struct kd_store *st, enum store_stmt id, sqlite3_stmt **out,
                     struct kd_error *err);
/* Prepares sql (a one-off statement; finalize it) with a purpose for errors. */
kd_status kd_store_impl_prepare(struct kd_store *st, const char *sql, const char *purpose,
                        sqlite3_stmt **out, struct kd_error *err);
/* Runs SQL text without results. */
kd_status kd_store_impl_exec(struct kd_store *st, const char *sql, const char *purpose,
                     struct kd_error *err);

/* Fills err from an SQLite result code: the file, what kd was doing
 * (purpose, e.g. "storing a batch of 100 answers"), SQLite's message and
 * what to do about it. Returns the kd status. */
kd_status kd_store_impl_fail(struct kd_store *st, int rc, const char *purpose, struct kd_error *err);

/* Write transactions start with BEGIN IMMEDIATE so that a busy store is
 * waited for at the start (with the busy time-out) rather than failing on
 * the first write. kd_store_impl_rollback is safe when no transaction is open. */
kd_status kd_store_impl_begin_write(struct kd_store *st, const char *purpose, struct kd_error *err);
kd_status kd_store_impl_begin_read(struct kd_store *st, const char *purpose, struct kd_error *err);
kd_status kd_store_impl_commit(struct kd_store *st, const char *purpose, struct kd_error *err);
void kd_store_impl_rollback(struct kd_store *st);

/* KD_ERR_STORE when the store was opened read-only. */
kd_status kd_store_impl_writable(struct kd_store *st, const char *purpose, struct kd_error *err);

/* Checks n answers of width d before they are stored: the width (1 to
 * 2^24, 1 for scores), finite values, probabilities that sum to 1. */
kd_status kd_store_impl_check_answers(enum kd_store_kind kind, size_t n, size_t d, const float *answers,
                              struct kd_error *err);

/* KD_ERR_ARG unless kind is a known answer kind. */
kd_status kd_store_impl_check_kind(enum kd_store_kind kind, struct kd_error *err);
/* The teacher's name and fingerprint for messages ("teacher 'x' (abcd...)");
 * KD_ERR_NOT_FOUND when there is no such id. */
kd_status kd_store_impl_teacher_label(struct kd_store *st, int64_t teacher, char *buf, size_t n, struct kd_error *err);
/* The stored width of (teacher, kind); 0 when none. */
kd_status kd_store_impl_width_get(struct kd_store *st, int64_t teacher, enum kd_store_kind kind, size_t *d,
                          struct kd_error *err);

/* Unix time in seconds (UTC wall clock). */
double kd_store_impl_now(void);

/* The key halves as stored: the hash's 64-bit halves reinterpreted as
 * signed integers (SQLite integers are signed), hi first. */
static inline int64_t store_i64(uint64_t v)
{
    int64_t r;
    memcpy(&r, &v, sizeof r);
    return r;
}
static inline uint64_t store_u64(int64_t v)
{
    uint64_t r;
    memcpy(&r, &v, sizeof r);
    return r;
}

static inline int store_host_is_le(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}
/* Hints the CPU to load the cache line at p soon. A batch is written (or
 * read) in key order, which is a random order over the caller's arrays, so
 * each row's answer and origin are cache misses (kd_store_put's own
 * waiting on them was a fifth of a put's CPU time in a profile of
 * bench_store's puts). */
#if defined(__GNUC__) || defined(__clang__)
#define STORE_PREFETCH(p) __builtin_prefetch(p)
#else
#define STORE_PREFETCH(p) ((void)(p))
#endif
/* How many rows ahead of the one being written the prefetch looks. */
#define STORE_PREFETCH_AHEAD 8

/* A batch's keys as stored (signed halves) with their positions in the
 * caller's arrays. kd_store_impl_sorted_keys sorts them by key, then
 * position (so among equal keys the caller's first comes first); NULL when
 * out of memory. */
struct kd_store_impl_keyed {
    int64_t hi, lo;
    size_t i;
};
struct kd_store_impl_keyed *kd_store_impl_sorted_keys(const struct kd_hash *keys, size_t n);

/* The key directory (keys.c): answer ids by key, for one (teacher, kind).
 * An entry of answer_keys, and the entries found for a batch: cand k is
 * order[k] of the sorted batch, id an answer row that may hold it (the
 * caller checks the row's key; the directory is a hint). */
#define KD_STORE_KEYS_PER_BLOCK 512
struct kd_store_impl_key {
    int64_t hi, lo, id;
};
struct kd_store_impl_cand {
    size_t k;
    int64_t id;
};
struct kd_store_impl_cands {
    struct kd_store_impl_cand *v; /* sorted by id, then k */
    size_t n, cap;
};
/* Every entry of every run of (teacher, kind) whose key is one of the
 * sorted order[0..n), into c (emptied first; grown as needed). */
kd_status kd_store_impl_keys_find(struct kd_store *st, int64_t teacher, int kind,
                                  const struct kd_store_impl_keyed *order, size_t n, struct kd_store_impl_cands *c,
                                  const char *purpose, struct kd_error *err);
void kd_store_impl_cands_release(struct kd_store_impl_cands *c);
/* The directory against answers (kd store check): blocks that are not
 * whole sorted entries ending at their key, runs whose blocks do not add
 * up to their count, answers no entry lists (kd would not find them), and
 * entries whose answer is gone or changed (left by SQL deletes: harmless,
 * the directory is checked on use). */
struct kd_store_impl_keys_report {
    int64_t bad_blocks, bad_runs, unlisted, stale;
};
kd_status kd_store_impl_keys_check(struct kd_store *st, struct kd_store_impl_keys_report *r, const char *purpose,
                                   struct kd_error *err);
/* Frees a handle's key cache (kd_store_close); the entries it holds. */
void kd_store_impl_keycache_free(struct kd_store *st);
int64_t kd_store_impl_keys_cached(const struct kd_store *st);
/* Adds the entries e[0..n), sorted by key then id, as a new run (merging
 * runs, see keys.c). In the caller's write transaction. */
kd_status kd_store_impl_keys_add(struct kd_store *st, int64_t teacher, int kind, const struct kd_store_impl_key *e,
                                 size_t n, const char *purpose, struct kd_error *err);
/* The whole directory made again from answers, one run per (teacher,
 * kind). In the caller's write transaction. */
kd_status kd_store_impl_keys_rebuild(struct kd_store *st, const char *purpose, struct kd_error *err);

/* n floats to/from little-endian bytes (a copy on little-endian hosts). */
void kd_store_impl_vec_to_le(const float *src, size_t n, unsigned char *dst);
void kd_store_impl_vec_from_le(const void *src, size_t n, float *dst);

/* The double nearest the shortest decimal that reads back as the float v
 * (0.7f gives 0.7, not 0.699999988079071): how a float32 is shown to people
 * in REAL columns. And the double d cleaned of binary noise at 15 digits. */
double kd_store_impl_float_decimal(float v);
double kd_store_impl_clean_double(double d);

/* Registers kd's SQL functions (kd_vec_json...) on a connection. */
int kd_store_impl_register_functions(sqlite3 *db);

/* A second connection to st's file, with st's options, for a thread of
 * the same process (the background writer): as kd_store_open, without
 * reading the file's header through a descriptor of its own, whose close
 * would drop the POSIX locks SQLite holds on the file for st. */
kd_status kd_store_impl_open_again(const struct kd_store *st, struct kd_store **out, struct kd_error *err);

#endif /* KD_STORE_IMPL_H */

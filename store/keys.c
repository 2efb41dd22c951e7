/* The key directory: how kd finds a stored answer from its key.
 *
 * answers is a rowid table (schema version 3): a put appends its rows at
 * the end of the table, whatever their keys, instead of writing each at its
 * place in a B-tree ordered by key (the pages a put into a big store then
 * rewrites were most of its cost). Keys are found through answer_keys:
 * each put adds its keys as a sorted run, (hash_hi, hash_lo, answer id)
 * entries packed 512 to a blob, one row per block, keyed by the block's
 * last key; answer_runs has each run's entry count. Runs are merged as
 * they come, like a binary counter: a new run absorbs the newest run while
 * that run is not bigger than it, so a (teacher, kind) has about log2 of
 * (its answers / a put's) runs, and each entry is rewritten about that
 * many times (24 bytes each time).
 *
 * A run never changes once written, so the handle that writes or reads
 * one keeps its entries in memory (up to 256 MiB): a put checks its keys
 * and merges runs without reading blocks.
 *
 * The directory is a hint, checked on every use: an entry counts only when
 * the row with its id has its key (rows deleted or changed with SQL leave
 * entries behind, and a deleted id can come back for another answer).
 * kd_store_impl_keys_rebuild makes it again from answers (migration,
 * kd store vacuum). */
#include "store/store_impl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#define ENTRY_BYTES 24
/* More runs than this for one (teacher, kind) is damage (a healthy store
 * has a few dozen at most, RUNS_SOFT_MAX below). */
#define RUNS_MAX 4096
/* A put merges the newest run whatever its size while there are this many
 * (puts of ever smaller size would otherwise add a run each). */
#define RUNS_SOFT_MAX 64
/* A rebuild writes a run per this many entries (its memory). */
#define REBUILD_RUN (1u << 22)

static int64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int b = 7; b >= 0; b--)
        v = v << 8 | p[b];
    return store_i64(v);
}

static void put64(unsigned char *p, int64_t v)
{
    uint64_t u = store_u64(v);
    for (int b = 0; b < 8; b++, u >>= 8)
        p[b] = (unsigned char)u;
}

static int key_cmp(int64_t ahi, int64_t alo, int64_t bhi, int64_t blo)
{
    if (ahi != bhi)
        return ahi < bhi ? -1 : 1;
    return alo < blo ? -1 : alo > blo;
}

static int entry_cmp(const struct kd_store_impl_key *a, const struct kd_store_impl_key *b)
{
    int c = key_cmp(a->hi, a->lo, b->hi, b->lo);
    return c ? c : (a->id < b->id ? -1 : a->id > b->id);
}

static kd_status damaged(struct kd_store *st, const char *what, struct kd_error *err)
{
    return kd_error_set(err, KD_ERR_STORE,
                        "label store '%s' is damaged: its key directory (answer_keys) has %s; run "
                        "'kd store check %s', and 'kd store vacuum %s' to make the directory again",
                        st->path, what, st->path, st->path);
}

/* The directory statement id, prepared, with (teacher, kind) bound as ?1
 * and ?2 and, when run > 0 (runs are numbered from 1), run as ?3. */
static kd_status dir_stmt(struct kd_store *st, enum store_stmt id, int64_t teacher, int kind, int64_t run,
                          sqlite3_stmt **q, struct kd_error *err)
{
    kd_status s = kd_store_impl_stmt(st, id, q, err);
    if (s)
        return s;
    sqlite3_bind_int64(*q, 1, teacher);
    sqlite3_bind_int(*q, 2, kind);
    if (run > 0)
        sqlite3_bind_int64(*q, 3, run);
    return KD_OK;
}

/* The runs of (teacher, kind), oldest first. A run never changes once
 * written (a merge writes a new one): its number, count and checksum (a
 * hash of its entries) identify its content, for the cache below. */
struct run {
    int64_t run, n, sum;
};

static kd_status list_runs(struct kd_store *st, int64_t teacher, int kind, struct run **out, size_t *n_out,
                           int64_t *max_run, const char *purpose, struct kd_error *err)
{
    *out = NULL;
    *n_out = 0;
    *max_run = 0;
    sqlite3_stmt *q;
    kd_status s = dir_stmt(st, S_RUNS_LIST, teacher, kind, 0, &q, err);
    if (s)
        return s;
    struct run *r = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 16;
            struct run *nr = nc <= RUNS_MAX ? realloc(r, nc * sizeof *nr) : NULL;
            if (!nr) {
                sqlite3_reset(q);
                free(r);
                return nc > RUNS_MAX ? damaged(st, "more than 4096 runs (answer_runs) for one teacher", err)
                                     : kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
            }
            r = nr;
            cap = nc;
        }
        r[n].run = sqlite3_column_int64(q, 0);
        r[n].n = sqlite3_column_int64(q, 1);
        r[n].sum = sqlite3_column_int64(q, 2);
        if (r[n].run > *max_run)
            *max_run = r[n].run;
        n++;
    }
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) {
        free(r);
        return kd_store_impl_fail(st, rc, purpose, err);
    }
    *out = r;
    *n_out = n;
    return KD_OK;
}

static void cache_prune(struct kd_store *st, int64_t teacher, int kind, const struct run *runs, size_t n_runs);

/* The runs the file lists now, the cache kept to them. */
static kd_status current_runs(struct kd_store *st, int64_t teacher, int kind, struct run **runs, size_t *n_runs,
                              int64_t *max_run, const char *purpose, struct kd_error *err)
{
    kd_status s = list_runs(st, teacher, kind, runs, n_runs, max_run, purpose, err);
    if (!s)
        cache_prune(st, teacher, kind, *runs, *n_runs);
    return s;
}

static int add_cand(struct kd_store_impl_cands *c, size_t k, int64_t id)
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 1024;
        struct kd_store_impl_cand *nv = realloc(c->v, nc * sizeof *nv);
        if (!nv)
            return -1;
        c->v = nv;
        c->cap = nc;
    }
    c->v[c->n].k = k;
    c->v[c->n].id = id;
    c->n++;
    return 0;
}

/* First entry of e[lo, hi) (m entries of a block) not below (khi, klo). */
static size_t lower_bound(const unsigned char *e, size_t lo, size_t hi, int64_t khi, int64_t klo)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const unsigned char *p = e + mid * ENTRY_BYTES;
        if (key_cmp(get64(p), get64(p + 8), khi, klo) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The candidates of one run for the sorted keys. Each block is found by
 * one seek (the first block whose last key is at or after the key) and
 * serves every following key up to its last. */
static kd_status find_in_run(struct kd_store *st, int64_t teacher, int kind, int64_t run,
                             const struct kd_store_impl_keyed *order, size_t n, struct kd_store_impl_cands *c,
                             const char *purpose, struct kd_error *err)
{
    sqlite3_stmt *q;
    kd_status s = dir_stmt(st, S_KEYS_SEEK, teacher, kind, run, &q, err);
    if (s)
        return s;
    size_t k = 0;
    while (k < n) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 4, order[k].hi);
        sqlite3_bind_int64(q, 5, order[k].lo);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            break; /* every key left is past this run's last */
        if (rc != SQLITE_ROW) {
            sqlite3_reset(q);
            return kd_store_impl_fail(st, rc, purpose, err);
        }
        int bytes = sqlite3_column_bytes(q, 0);
        const unsigned char *e = sqlite3_column_blob(q, 0);
        if (!e || bytes <= 0 || bytes % ENTRY_BYTES) {
            sqlite3_reset(q);
            return damaged(st, "a block whose length is not a whole number of entries", err);
        }
        size_t m = (size_t)bytes / ENTRY_BYTES, pos = 0;
        const unsigned char *last = e + (m - 1) * ENTRY_BYTES;
        int64_t lhi = get64(last), llo = get64(last + 8);
        if (key_cmp(order[k].hi, order[k].lo, lhi, llo) > 0) {
            sqlite3_reset(q);
            return damaged(st, "a block whose entries do not end at its key", err);
        }
        for (; k < n && key_cmp(order[k].hi, order[k].lo, lhi, llo) <= 0; k++) {
            pos = lower_bound(e, pos, m, order[k].hi, order[k].lo);
            for (size_t j = pos; j < m; j++) {
                const unsigned char *p = e + j * ENTRY_BYTES;
                if (get64(p) != order[k].hi || get64(p + 8) != order[k].lo)
                    break;
                if (add_cand(c, k, get64(p + 16))) {
                    sqlite3_reset(q);
                    return kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
                }
            }
        }
    }
    sqlite3_reset(q);
    return KD_OK;
}

/* --------------------------------------------------------- reading runs */

/* Every entry of a run, in order (for a merge). */
static kd_status load_run(struct kd_store *st, int64_t teacher, int kind, const struct run *r,
                          struct kd_store_impl_key **out, size_t *n_out, const char *purpose,
                          struct kd_error *err)
{
    *out = NULL;
    *n_out = 0;
    if (r->n <= 0)
        return damaged(st, "a run of no entries", err);
    struct kd_store_impl_key *e = malloc((size_t)r->n * sizeof *e);
    if (!e)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
    sqlite3_stmt *q;
    kd_status s = dir_stmt(st, S_KEYS_RUN, teacher, kind, r->run, &q, err);
    if (s) {
        free(e);
        return s;
    }
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        int bytes = sqlite3_column_bytes(q, 0);
        const unsigned char *b = sqlite3_column_blob(q, 0);
        size_t m = bytes > 0 ? (size_t)bytes / ENTRY_BYTES : 0;
        if (!b || bytes <= 0 || bytes % ENTRY_BYTES || n + m > (size_t)r->n) {
            sqlite3_reset(q);
            free(e);
            return damaged(st,
                           n + m > (size_t)r->n ? "a run whose blocks do not hold its count of entries"
                                                : "a block whose length is not a whole number of entries",
                           err);
        }
        for (size_t j = 0; j < m; j++, n++) {
            e[n].hi = get64(b + j * ENTRY_BYTES);
            e[n].lo = get64(b + j * ENTRY_BYTES + 8);
            e[n].id = get64(b + j * ENTRY_BYTES + 16);
        }
    }
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) {
        free(e);
        return kd_store_impl_fail(st, rc, purpose, err);
    }
    if (n != (size_t)r->n) {
        free(e);
        return damaged(st, "a run whose blocks do not hold its count of entries", err);
    }
    *out = e;
    *n_out = n;
    return KD_OK;
}

/* a (na) and b (nb), both sorted, merged into a new array. */
static struct kd_store_impl_key *merge(const struct kd_store_impl_key *a, size_t na,
                                       const struct kd_store_impl_key *b, size_t nb)
{
    struct kd_store_impl_key *m = malloc((na + nb) * sizeof *m);
    if (!m)
        return NULL;
    size_t i = 0, j = 0, k = 0;
    while (i < na && j < nb)
        m[k++] = entry_cmp(&a[i], &b[j]) <= 0 ? a[i++] : b[j++];
    while (i < na)
        m[k++] = a[i++];
    while (j < nb)
        m[k++] = b[j++];
    return m;
}

static int cand_cmp(const void *pa, const void *pb)
{
    const struct kd_store_impl_cand *a = pa, *b = pb;
    if (a->id != b->id)
        return a->id < b->id ? -1 : 1;
    return a->k < b->k ? -1 : a->k > b->k;
}

/* First entry of e[lo, hi) not below (khi, klo). */
static size_t lower_bound_mem(const struct kd_store_impl_key *e, size_t lo, size_t hi, int64_t khi, int64_t klo)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(e[mid].hi, e[mid].lo, khi, klo) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void find_in_array(const struct kd_store_impl_key *e, size_t m, const struct kd_store_impl_keyed *order,
                          size_t n, struct kd_store_impl_cands *c, int *nomem)
{
    size_t pos = 0;
    for (size_t k = 0; k < n && !*nomem; k++) {
        pos = lower_bound_mem(e, pos, m, order[k].hi, order[k].lo);
        for (size_t j = pos; j < m && e[j].hi == order[k].hi && e[j].lo == order[k].lo; j++)
            if (add_cand(c, k, e[j].id)) {
                *nomem = 1;
                break;
            }
    }
}

/* ---------------------------------------------------------------- the cache */

/* Runs read or written by this handle, kept in memory (runs never change,
 * so a cached run stays right for as long as the file lists it): a put
 * then checks its keys and merges runs without reading blocks, and
 * lookups of many keys search memory. At most KEYCACHE_MAX_BYTES of
 * entries; a run that does not fit is read block by block. */
#define KEYCACHE_MAX_BYTES ((size_t)256 << 20)
/* A run is read into the cache when a batch has at least one key per this
 * many of its entries (it would read nearly every block anyway). */
#define KEYCACHE_DENSITY 512

struct kd_store_impl_cached_run {
    int64_t teacher, run, n, sum;
    int kind;
    struct kd_store_impl_key *e;
};

struct kd_store_impl_keycache {
    struct kd_store_impl_cached_run *v;
    size_t n, cap, bytes;
};

int64_t kd_store_impl_keys_cached(const struct kd_store *st)
{
    return st->keycache ? (int64_t)(st->keycache->bytes / sizeof(struct kd_store_impl_key)) : 0;
}

static void cache_drop_at(struct kd_store_impl_keycache *kc, size_t i)
{
    kc->bytes -= (size_t)kc->v[i].n * sizeof(struct kd_store_impl_key);
    free(kc->v[i].e);
    memmove(kc->v + i, kc->v + i + 1, (kc->n - i - 1) * sizeof *kc->v);
    kc->n--;
}

void kd_store_impl_keycache_free(struct kd_store *st)
{
    struct kd_store_impl_keycache *kc = st->keycache;
    if (!kc)
        return;
    while (kc->n)
        cache_drop_at(kc, kc->n - 1);
    free(kc->v);
    free(kc);
    st->keycache = NULL;
}

static const struct kd_store_impl_cached_run *cache_get(const struct kd_store *st, int64_t teacher, int kind,
                                                        const struct run *r)
{
    const struct kd_store_impl_keycache *kc = st->keycache;
    for (size_t i = 0; kc && i < kc->n; i++)
        if (kc->v[i].teacher == teacher && kc->v[i].kind == kind && kc->v[i].run == r->run && kc->v[i].n == r->n &&
            kc->v[i].sum == r->sum)
            return &kc->v[i];
    return NULL;
}

/* Drops the cached runs of (teacher, kind) that the file no longer lists
 * as they were (merged away, or another process's rebuild). */
static void cache_prune(struct kd_store *st, int64_t teacher, int kind, const struct run *runs, size_t n_runs)
{
    struct kd_store_impl_keycache *kc = st->keycache;
    for (size_t i = kc ? kc->n : 0; i-- > 0;) {
        if (kc->v[i].teacher != teacher || kc->v[i].kind != kind)
            continue;
        int listed = 0;
        for (size_t r = 0; r < n_runs && !listed; r++)
            listed = runs[r].run == kc->v[i].run && runs[r].n == kc->v[i].n && runs[r].sum == kc->v[i].sum;
        if (!listed)
            cache_drop_at(kc, i);
    }
}

/* Takes e (the run r's n entries, malloc'ed) into the cache, making room
 * by dropping the runs cached first; frees e when it cannot be kept.
 * Returns the cached run or NULL. */
static const struct kd_store_impl_cached_run *cache_put(struct kd_store *st, int64_t teacher, int kind,
                                                        const struct run *r, struct kd_store_impl_key *e)
{
    size_t bytes = (size_t)r->n * sizeof *e;
    if (bytes > KEYCACHE_MAX_BYTES || (!st->keycache && !(st->keycache = calloc(1, sizeof *st->keycache)))) {
        free(e);
        return NULL;
    }
    struct kd_store_impl_keycache *kc = st->keycache;
    while (kc->n && kc->bytes + bytes > KEYCACHE_MAX_BYTES)
        cache_drop_at(kc, 0);
    if (kc->n == kc->cap) {
        size_t nc = kc->cap ? 2 * kc->cap : 16;
        struct kd_store_impl_cached_run *nv = realloc(kc->v, nc * sizeof *nv);
        if (!nv) {
            free(e);
            return NULL;
        }
        kc->v = nv;
        kc->cap = nc;
    }
    struct kd_store_impl_cached_run *c = &kc->v[kc->n++];
    c->teacher = teacher;
    c->kind = kind;
    c->run = r->run;
    c->n = r->n;
    c->sum = r->sum;
    c->e = e;
    kc->bytes += bytes;
    return c;
}

/* The run's entries from the cache, read into it first when the batch
 * (n keys) is dense enough; NULL to read blocks instead. */
static kd_status cached_run(struct kd_store *st, int64_t teacher, int kind, const struct run *r, size_t n,
                            const struct kd_store_impl_cached_run **out, const char *purpose, struct kd_error *err)
{
    *out = cache_get(st, teacher, kind, r);
    if (*out || n * KEYCACHE_DENSITY < (size_t)r->n || (size_t)r->n * sizeof(struct kd_store_impl_key) > KEYCACHE_MAX_BYTES)
        return KD_OK;
    struct kd_store_impl_key *e;
    size_t m;
    kd_status s = load_run(st, teacher, kind, r, &e, &m, purpose, err);
    if (!s)
        *out = cache_put(st, teacher, kind, r, e);
    return s;
}

kd_status kd_store_impl_keys_find(struct kd_store *st, int64_t teacher, int kind,
                                  const struct kd_store_impl_keyed *order, size_t n, struct kd_store_impl_cands *c,
                                  const char *purpose, struct kd_error *err)
{
    c->n = 0;
    struct run *runs;
    size_t n_runs;
    int64_t max_run;
    kd_status s = current_runs(st, teacher, kind, &runs, &n_runs, &max_run, purpose, err);
    if (s)
        return s;
    int nomem = 0;
    for (size_t r = 0; !s && !nomem && r < n_runs; r++) {
        const struct kd_store_impl_cached_run *cr;
        if ((s = cached_run(st, teacher, kind, &runs[r], n, &cr, purpose, err)))
            break;
        if (cr)
            find_in_array(cr->e, (size_t)cr->n, order, n, c, &nomem);
        else
            s = find_in_run(st, teacher, kind, runs[r].run, order, n, c, purpose, err);
    }
    free(runs);
    if (!s && nomem)
        s = kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
    if (!s && c->n > 1)
        qsort(c->v, c->n, sizeof *c->v, cand_cmp);
    return s;
}

void kd_store_impl_cands_release(struct kd_store_impl_cands *c)
{
    free(c->v);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------ writing runs */

static kd_status drop_run(struct kd_store *st, int64_t teacher, int kind, int64_t run, const char *purpose,
                          struct kd_error *err)
{
    const enum store_stmt ids[2] = {S_KEYS_DROP, S_RUN_DROP};
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *q;
        kd_status s = dir_stmt(st, ids[i], teacher, kind, run, &q, err);
        if (s)
            return s;
        int rc = sqlite3_step(q);
        sqlite3_reset(q);
        if (rc != SQLITE_DONE)
            return kd_store_impl_fail(st, rc, purpose, err);
    }
    return KD_OK;
}

/* Writes e[0..n) (sorted) as run number run. */
static kd_status write_run(struct kd_store *st, int64_t teacher, int kind, const struct run *r,
                           const struct kd_store_impl_key *e, const char *purpose, struct kd_error *err)
{
    unsigned char *buf = NULL;
    size_t cap = 0;
    sqlite3_stmt *q;
    kd_status s = dir_stmt(st, S_KEYS_PUT, teacher, kind, r->run, &q, err);
    if (s)
        return s;
    size_t n = (size_t)r->n;
    for (size_t b = 0; b < n;) {
        size_t m = n - b < KD_STORE_KEYS_PER_BLOCK ? n - b : KD_STORE_KEYS_PER_BLOCK;
        /* the entries of one key (an answer deleted with SQL and stored
         * again) stay in one block: a search looks in one block a key */
        while (b + m < n && e[b + m].hi == e[b + m - 1].hi && e[b + m].lo == e[b + m - 1].lo)
            m++;
        if (m > cap) {
            unsigned char *nb = m * ENTRY_BYTES <= (size_t)INT_MAX ? realloc(buf, m * ENTRY_BYTES) : NULL;
            if (!nb) {
                free(buf);
                sqlite3_clear_bindings(q);
                return kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
            }
            buf = nb;
            cap = m;
        }
        for (size_t j = 0; j < m; j++) {
            put64(buf + j * ENTRY_BYTES, e[b + j].hi);
            put64(buf + j * ENTRY_BYTES + 8, e[b + j].lo);
            put64(buf + j * ENTRY_BYTES + 16, e[b + j].id);
        }
        sqlite3_bind_int64(q, 4, e[b + m - 1].hi);
        sqlite3_bind_int64(q, 5, e[b + m - 1].lo);
        sqlite3_bind_int64(q, 6, (int64_t)m);
        sqlite3_bind_blob(q, 7, buf, (int)(m * ENTRY_BYTES), SQLITE_STATIC);
        int rc = sqlite3_step(q);
        sqlite3_reset(q);
        if (rc != SQLITE_DONE) {
            free(buf);
            sqlite3_clear_bindings(q);
            return kd_store_impl_fail(st, rc, purpose, err);
        }
        b += m;
    }
    free(buf);
    sqlite3_clear_bindings(q);
    if ((s = dir_stmt(st, S_RUN_PUT, teacher, kind, r->run, &q, err)))
        return s;
    sqlite3_bind_int64(q, 4, r->n);
    sqlite3_bind_int64(q, 5, r->sum);
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    return rc == SQLITE_DONE ? KD_OK : kd_store_impl_fail(st, rc, purpose, err);
}

/* The checksum that, with its number and count, identifies a run's
 * content. */
static int64_t run_sum(const struct kd_store_impl_key *e, size_t n)
{
    return store_i64(kd_hash_bytes(e, n * sizeof *e).lo);
}

kd_status kd_store_impl_keys_add(struct kd_store *st, int64_t teacher, int kind, const struct kd_store_impl_key *e,
                                 size_t n, const char *purpose, struct kd_error *err)
{
    if (n == 0)
        return KD_OK;
    struct run *runs;
    size_t n_runs;
    int64_t max_run;
    kd_status s = current_runs(st, teacher, kind, &runs, &n_runs, &max_run, purpose, err);
    if (s)
        return s;
    const struct kd_store_impl_key *cur = e;
    struct kd_store_impl_key *owned = NULL;
    size_t n_cur = n;
    /* the binary counter: the newest run joins the new one while it is
     * not bigger (or while there are RUNS_SOFT_MAX runs) */
    while (n_runs > 0 && ((size_t)runs[n_runs - 1].n <= n_cur || n_runs >= RUNS_SOFT_MAX)) {
        const struct run *last = &runs[n_runs - 1];
        const struct kd_store_impl_cached_run *cr = cache_get(st, teacher, kind, last);
        struct kd_store_impl_key *loaded = NULL;
        size_t n_old = (size_t)last->n;
        if (!cr && (s = load_run(st, teacher, kind, last, &loaded, &n_old, purpose, err)))
            goto out;
        struct kd_store_impl_key *m = merge(cr ? cr->e : loaded, n_old, cur, n_cur);
        free(loaded);
        if (!m) {
            s = kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
            goto out;
        }
        if ((s = drop_run(st, teacher, kind, last->run, purpose, err))) {
            free(m);
            goto out;
        }
        free(owned);
        cur = owned = m;
        n_cur += n_old;
        n_runs--;
    }
    struct run made = {max_run + 1, (int64_t)n_cur, run_sum(cur, n_cur)};
    if ((s = write_run(st, teacher, kind, &made, cur, purpose, err)))
        goto out;
    /* kept for the next put's check and merge (a rolled-back put's run is
     * never listed: it is pruned) */
    cache_prune(st, teacher, kind, runs, n_runs);
    if (!owned && (owned = malloc(n_cur * sizeof *owned)))
        memcpy(owned, cur, n_cur * sizeof *owned);
    if (owned)
        cache_put(st, teacher, kind, &made, owned);
    owned = NULL;
out:
    free(owned);
    free(runs);
    return s;
}

/* -------------------------------------------------------------- rebuilding */

kd_status kd_store_impl_keys_rebuild(struct kd_store *st, const char *purpose, struct kd_error *err)
{
    kd_status s = kd_store_impl_exec(st, "DELETE FROM answer_keys; DELETE FROM answer_runs", purpose, err);
    sqlite3_stmt *q = NULL;
    if (s || (s = kd_store_impl_prepare(st,
                                        "SELECT teacher_id, kind, hash_hi, hash_lo, answer_id FROM answers "
                                        "ORDER BY teacher_id, kind, hash_hi, hash_lo, answer_id",
                                        purpose, &q, err)))
        return s;
    struct kd_store_impl_key *e = NULL;
    size_t n = 0, cap = 0;
    int64_t teacher = 0;
    int kind = 0, rc;
    int64_t run_no = 1;
    for (;;) {
        rc = sqlite3_step(q);
        int row = rc == SQLITE_ROW;
        int64_t t = row ? sqlite3_column_int64(q, 0) : 0;
        int k = row ? sqlite3_column_int(q, 1) : 0;
        if (n > 0 && (!row || t != teacher || k != kind || n == REBUILD_RUN)) {
            /* rows come sorted: each piece is a run (numbered from 1 for
             * each teacher and kind, the oldest first) */
            struct run made = {run_no, (int64_t)n, run_sum(e, n)};
            if ((s = write_run(st, teacher, kind, &made, e, purpose, err)))
                break;
            run_no = row && t == teacher && k == kind ? run_no + 1 : 1;
            n = 0;
        }
        if (!row)
            break;
        teacher = t;
        kind = k;
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 4096;
            struct kd_store_impl_key *ne = realloc(e, nc * sizeof *ne);
            if (!ne) {
                s = kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
                break;
            }
            e = ne;
            cap = nc;
        }
        e[n].hi = sqlite3_column_int64(q, 2);
        e[n].lo = sqlite3_column_int64(q, 3);
        e[n].id = sqlite3_column_int64(q, 4);
        n++;
    }
    if (!s && rc != SQLITE_DONE)
        s = kd_store_impl_fail(st, rc, purpose, err);
    sqlite3_finalize(q);
    free(e);
    return s;
}

/* ---------------------------------------------------------------- checking */

struct tk_key {
    int64_t teacher, kind, hi, lo, id;
};

static int tk_cmp(const void *pa, const void *pb)
{
    const struct tk_key *a = pa, *b = pb;
    const int64_t x[5] = {a->teacher, a->kind, a->hi, a->lo, a->id}, y[5] = {b->teacher, b->kind, b->hi, b->lo, b->id};
    for (int i = 0; i < 5; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

static int tk_push(struct tk_key **v, size_t *n, size_t *cap, struct tk_key k)
{
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 4096;
        struct tk_key *nv = realloc(*v, nc * sizeof *nv);
        if (!nv)
            return -1;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = k;
    return 0;
}

/* Every directory entry (checking each block on the way) or every answer
 * row, as (teacher, kind, key, id), sorted. */
static kd_status collect(struct kd_store *st, int entries, struct tk_key **out, size_t *n_out,
                         struct kd_store_impl_keys_report *r, const char *purpose, struct kd_error *err)
{
    const char *sql = entries ? "SELECT k.teacher_id, k.kind, k.run, k.last_hi, k.last_lo, k.n, k.keys, "
                                "(SELECT r.n FROM answer_runs r WHERE r.teacher_id = k.teacher_id AND "
                                "r.kind = k.kind AND r.run = k.run) FROM answer_keys k "
                                "ORDER BY k.teacher_id, k.kind, k.run, k.last_hi, k.last_lo"
                              : "SELECT teacher_id, kind, hash_hi, hash_lo, answer_id FROM answers";
    sqlite3_stmt *q;
    kd_status s = kd_store_impl_prepare(st, sql, purpose, &q, err);
    if (s)
        return s;
    struct tk_key *v = NULL;
    size_t n = 0, cap = 0;
    int64_t prev_t = 0, prev_k = 0, prev_run = 0, in_run = 0, run_n = -1, prev_hi = 0, prev_lo = 0;
    int rc, first = 1;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct tk_key k = {sqlite3_column_int64(q, 0), sqlite3_column_int64(q, 1), 0, 0, 0};
        if (!entries) {
            k.hi = sqlite3_column_int64(q, 2);
            k.lo = sqlite3_column_int64(q, 3);
            k.id = sqlite3_column_int64(q, 4);
            if (tk_push(&v, &n, &cap, k))
                goto nomem;
            continue;
        }
        int64_t run = sqlite3_column_int64(q, 2);
        int new_run = first || k.teacher != prev_t || k.kind != prev_k || run != prev_run;
        if (new_run) {
            if (!first && in_run != run_n)
                r->bad_runs++;
            in_run = 0;
            run_n = sqlite3_column_type(q, 7) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, 7);
            prev_t = k.teacher;
            prev_k = k.kind;
            prev_run = run;
            first = 0;
        }
        int bytes = sqlite3_column_bytes(q, 6);
        const unsigned char *b = sqlite3_column_blob(q, 6);
        size_t m = bytes > 0 ? (size_t)bytes / ENTRY_BYTES : 0;
        int bad = !b || bytes <= 0 || bytes % ENTRY_BYTES || (int64_t)m != sqlite3_column_int64(q, 5);
        /* after the run's block before it: a key's entries in one block */
        if (!bad && !new_run && key_cmp(get64(b), get64(b + 8), prev_hi, prev_lo) <= 0)
            bad = 1;
        for (size_t j = 0; !bad && j < m; j++) {
            const unsigned char *p = b + j * ENTRY_BYTES;
            k.hi = get64(p);
            k.lo = get64(p + 8);
            k.id = get64(p + 16);
            if (j > 0 && key_cmp(get64(p - ENTRY_BYTES), get64(p - ENTRY_BYTES + 8), k.hi, k.lo) > 0)
                bad = 1;
            if (j + 1 == m && (k.hi != sqlite3_column_int64(q, 3) || k.lo != sqlite3_column_int64(q, 4)))
                bad = 1;
        }
        prev_hi = sqlite3_column_int64(q, 3);
        prev_lo = sqlite3_column_int64(q, 4);
        if (bad) {
            r->bad_blocks++;
            continue;
        }
        for (size_t j = 0; j < m; j++) {
            const unsigned char *p = b + j * ENTRY_BYTES;
            k.hi = get64(p);
            k.lo = get64(p + 8);
            k.id = get64(p + 16);
            if (tk_push(&v, &n, &cap, k))
                goto nomem;
        }
        in_run += (int64_t)m;
    }
    if (entries && !first && in_run != run_n)
        r->bad_runs++;
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        free(v);
        return kd_store_impl_fail(st, rc, purpose, err);
    }
    if (n > 1)
        qsort(v, n, sizeof *v, tk_cmp);
    *out = v;
    *n_out = n;
    return KD_OK;
nomem:
    sqlite3_finalize(q);
    free(v);
    return kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
}

kd_status kd_store_impl_keys_check(struct kd_store *st, struct kd_store_impl_keys_report *r, const char *purpose,
                                   struct kd_error *err)
{
    memset(r, 0, sizeof *r);
    struct tk_key *e = NULL, *a = NULL;
    size_t ne = 0, na = 0;
    kd_status s = collect(st, 1, &e, &ne, r, purpose, err);
    if (!s)
        s = collect(st, 0, &a, &na, r, purpose, err);
    if (!s) {
        size_t i = 0, j = 0;
        while (i < ne || j < na) {
            int c = i == ne ? 1 : j == na ? -1 : tk_cmp(&e[i], &a[j]);
            if (c == 0)
                i++, j++;
            else if (c < 0)
                r->stale++, i++;
            else
                r->unlisted++, j++;
        }
        /* runs without blocks */
        sqlite3_stmt *q;
        if (!(s = kd_store_impl_prepare(st,
                                        "SELECT count(*) FROM answer_runs r WHERE NOT EXISTS (SELECT 1 FROM "
                                        "answer_keys k WHERE k.teacher_id = r.teacher_id AND k.kind = r.kind "
                                        "AND k.run = r.run)",
                                        purpose, &q, err))) {
            int rc = sqlite3_step(q);
            if (rc == SQLITE_ROW)
                r->bad_runs += sqlite3_column_int64(q, 0);
            else
                s = kd_store_impl_fail(st, rc, purpose, err);
            sqlite3_finalize(q);
        }
    }
    free(e);
    free(a);
    return s;
}

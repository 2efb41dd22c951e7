/* Answer and teacher kinds, the teachers' answers (put, lookup, count,
 * iterate) and the examples (inputs with their gold labels). The teachers
 * themselves are in teachers.c. */
#include "store/store_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Answers wider than this are refused: 16M floats is 64 MiB per row. */
/* Rows a put gathers before it writes them (see kd_store_put). */
#define STORE_PUT_CHUNK 64
#define STORE_MAX_DIM ((size_t)1 << 24)

static const char *const kind_names[KD_STORE_N_KINDS] = {"logits", "probabilities", "score",
                                                         "embedding"};
static const char *const teacher_kind_names[3] = {"model", "exec", "table"};

const char *kd_store_kind_name(enum kd_store_kind kind)
{
    return (unsigned)kind < KD_STORE_N_KINDS ? kind_names[kind] : NULL;
}

kd_status kd_store_kind_parse(const char *s, enum kd_store_kind *out, struct kd_error *err)
{
    for (int k = 0; k < KD_STORE_N_KINDS; k++)
        if (s && !strcmp(s, kind_names[k])) {
            *out = (enum kd_store_kind)k;
            return KD_OK;
        }
    return kd_error_set(err, KD_ERR_ARG,
                        "unknown answer kind '%s' (expected logits, probabilities, score or "
                        "embedding)",
                        s ? s : "");
}

const char *kd_teacher_kind_name(enum kd_teacher_kind kind)
{
    return (unsigned)kind < 3 ? teacher_kind_names[kind] : NULL;
}

kd_status kd_teacher_kind_parse(const char *s, enum kd_teacher_kind *out, struct kd_error *err)
{
    for (int k = 0; k < 3; k++)
        if (s && !strcmp(s, teacher_kind_names[k])) {
            *out = (enum kd_teacher_kind)k;
            return KD_OK;
        }
    return kd_error_set(err, KD_ERR_ARG, "unknown teacher kind '%s' (expected model, exec or table)",
                        s ? s : "");
}

struct kd_hash kd_store_input_hash(const float *x, size_t d)
{
    if (store_host_is_le())
        return kd_hash_bytes(x, d * sizeof(float));
    /* Big-endian hosts hash the little-endian bytes, so keys agree across
     * machines; the streaming hash equals the one-shot hash. */
    struct kd_hasher h;
    if (kd_hasher_init(&h, NULL) != KD_OK)
        return kd_hash_bytes(x, d * sizeof(float));
    unsigned char buf[1024];
    for (size_t i = 0; i < d; i += sizeof buf / 4) {
        size_t m = d - i < sizeof buf / 4 ? d - i : sizeof buf / 4;
        kd_store_impl_vec_to_le(x + i, m, buf);
        kd_hasher_update(&h, buf, m * 4);
    }
    struct kd_hash out = kd_hasher_digest(&h);
    kd_hasher_release(&h);
    return out;
}

struct kd_store_origin kd_store_origin_none(void)
{
    struct kd_store_origin o;
    memset(&o, 0, sizeof o);
    o.row = -1;
    o.round = -1;
    o.source_row = -1;
    return o;
}

kd_status kd_store_impl_check_kind(enum kd_store_kind kind, struct kd_error *err)
{
    if ((unsigned)kind >= KD_STORE_N_KINDS)
        return kd_error_set(err, KD_ERR_ARG, "unknown answer kind %d", (int)kind);
    return KD_OK;
}

kd_status kd_store_count(struct kd_store *st, int64_t teacher, enum kd_store_kind kind, int64_t *n,
                         struct kd_error *err)
{
    kd_status s = kd_store_impl_check_kind(kind, err);
    sqlite3_stmt *q;
    if (s || (s = kd_store_impl_stmt(st, S_ANSWER_COUNT, &q, err)))
        return s;
    sqlite3_bind_int64(q, 1, teacher);
    sqlite3_bind_int(q, 2, (int)kind);
    int rc = sqlite3_step(q);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_reset(q);
    return rc == SQLITE_ROW ? KD_OK : kd_store_impl_fail(st, rc, "counting answers", err);
}

/* ------------------------------------------------------------------ answers */

/* Key order as in the table (signed halves), then input order, so that a
 * batch is written (or read) in one sweep through the B-tree and, among
 * duplicate keys, the first in the batch is inserted first. */
static int keyed_cmp(const void *pa, const void *pb)
{
    const struct kd_store_impl_keyed *a = pa, *b = pb;
    if (a->hi != b->hi)
        return a->hi < b->hi ? -1 : 1;
    if (a->lo != b->lo)
        return a->lo < b->lo ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* A key's top `bits` bits as a bucket number, in signed key order. */
static size_t key_bucket(int64_t hi, int bits)
{
    return (size_t)((store_u64(hi) ^ ((uint64_t)1 << 63)) >> (64 - bits));
}

static void insertion_sort(struct kd_store_impl_keyed *k, size_t n)
{
    for (size_t a = 1; a < n; a++) {
        struct kd_store_impl_keyed x = k[a];
        size_t b = a;
        for (; b > 0 && keyed_cmp(&k[b - 1], &x) > 0; b--)
            k[b] = k[b - 1];
        k[b] = x;
    }
}

/* The keys with their input positions, in keyed_cmp order. Content hashes
 * are uniform, so a counting sort on the top bits (about one bucket per two
 * keys, at most 2^16 buckets; stable: input order kept within a bucket)
 * leaves a handful of keys per bucket to sort by comparison, a fraction of
 * qsort's time. Keys that are not uniform only make buckets bigger. */
struct kd_store_impl_keyed *kd_store_impl_sorted_keys(const struct kd_hash *keys, size_t n)
{
    struct kd_store_impl_keyed *k = malloc((n ? n : 1) * sizeof *k);
    if (!k)
        return NULL;
    int bits = 8;
    while (bits < 16 && ((size_t)2 << bits) < n)
        bits++;
    if (n < 512) {
        for (size_t i = 0; i < n; i++) {
            k[i].hi = store_i64(keys[i].hi);
            k[i].lo = store_i64(keys[i].lo);
            k[i].i = i;
        }
        qsort(k, n, sizeof *k, keyed_cmp);
        return k;
    }
    size_t nb = (size_t)1 << bits;
    size_t *start = calloc(nb + 1, sizeof *start);
    if (!start) {
        free(k);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        start[key_bucket(store_i64(keys[i].hi), bits) + 1]++;
    for (size_t b = 0; b < nb; b++)
        start[b + 1] += start[b];
    for (size_t i = 0; i < n; i++) {
        struct kd_store_impl_keyed *e = &k[start[key_bucket(store_i64(keys[i].hi), bits)]++];
        e->hi = store_i64(keys[i].hi);
        e->lo = store_i64(keys[i].lo);
        e->i = i;
    }
    /* start[b] is now the end of bucket b, the start of bucket b + 1 */
    for (size_t b = 0, from = 0; b < nb; from = start[b], b++) {
        size_t m = start[b] - from;
        if (m > 32)
            qsort(k + from, m, sizeof *k, keyed_cmp);
        else if (m > 1)
            insertion_sort(k + from, m);
    }
    free(start);
    return k;
}

struct scalars {
    int64_t class_; /* -1: none */
    double confidence, entropy, margin, score, norm; /* NaN: none (stored as NULL) */
};

/* The columns a person queries, from one answer v (d). */
static void compute_scalars(enum kd_store_kind kind, const float *v, size_t d, struct scalars *s)
{
    s->class_ = -1;
    s->confidence = s->entropy = s->margin = s->score = NAN;
    double sq = 0;
    for (size_t j = 0; j < d; j++)
        sq += (double)v[j] * (double)v[j];
    s->norm = sqrt(sq);
    if (kind == KD_STORE_SCORE) {
        s->score = kd_store_impl_float_decimal(v[0]);
        s->norm = fabs(s->score);
        return;
    }
    if (kind == KD_STORE_EMBEDDING)
        return;
    size_t top = 0;
    for (size_t j = 1; j < d; j++)
        if (v[j] > v[top])
            top = j;
    s->class_ = (int64_t)top;
    double p1 = 0, p2 = 0, h = 0;
    if (kind == KD_STORE_LOGITS) {
        /* softmax p_j = exp(v_j - m) / Z with m the max; entropy
         * H = -sum p_j log p_j = log Z - sum p_j (v_j - m). */
        double m = v[top], z = 0, ev = 0, e2 = 0;
        for (size_t j = 0; j < d; j++) {
            double x = (double)v[j] - m, e = exp(x);
            z += e;
            ev += e * x;
            if (j != top && e > e2)
                e2 = e;
        }
        p1 = 1.0 / z;
        p2 = e2 / z;
        h = log(z) - ev / z;
    } else {
        /* the probabilities as the decimals they stand for (0.7, not
         * 0.699999988), so that confidence and margin read as expected */
        size_t second = top;
        for (size_t j = 0; j < d; j++) {
            double p = v[j];
            if (p > 0)
                h -= p * log(p);
            if (j != top && (second == top || v[j] > v[second]))
                second = j;
        }
        p1 = kd_store_impl_float_decimal(v[top]);
        p2 = second != top ? kd_store_impl_float_decimal(v[second]) : 0.0;
        s->confidence = p1;
        s->entropy = h > 0 ? h : 0.0;
        s->margin = d > 1 ? kd_store_impl_clean_double(p1 - p2) : 1.0;
        return;
    }
    s->confidence = p1;
    s->entropy = h > 0 ? h : 0.0;
    s->margin = d > 1 ? p1 - p2 : 1.0;
}

/* Everything checked before a transaction starts. */
kd_status kd_store_impl_check_answers(enum kd_store_kind kind, size_t n, size_t d, const float *answers,
                               struct kd_error *err)
{
    const char *kn = kind_names[kind];
    if (d == 0 || d > STORE_MAX_DIM)
        return kd_error_set(err, KD_ERR_ARG, "cannot store %s of width %zu (1 to %zu)", kn, d,
                            STORE_MAX_DIM);
    if (kind == KD_STORE_SCORE && d != 1)
        return kd_error_set(err, KD_ERR_SHAPE, "a score is one number; got answers of width %zu", d);
    for (size_t i = 0; i < n; i++) {
        const float *v = answers + i * d;
        double sum = 0;
        for (size_t j = 0; j < d; j++) {
            if (!isfinite(v[j]))
                return kd_error_set(err, KD_ERR_ARG,
                                    "cannot store %s: answer %zu of the batch has a non-finite value "
                                    "(%g) at position %zu; nothing of this batch was stored",
                                    kn, i, (double)v[j], j);
            if (kind == KD_STORE_PROBABILITIES && v[j] < 0)
                return kd_error_set(err, KD_ERR_ARG,
                                    "cannot store probabilities: answer %zu of the batch has a "
                                    "negative value (%g) at position %zu; nothing of this batch "
                                    "was stored (logits?)",
                                    i, (double)v[j], j);
            sum += v[j];
        }
        if (kind == KD_STORE_PROBABILITIES && fabs(sum - 1.0) > 1e-3)
            return kd_error_set(err, KD_ERR_ARG,
                                "cannot store probabilities: answer %zu of the batch sums to %.6g, "
                                "not 1; nothing of this batch was stored (logits?)",
                                i, sum);
    }
    return KD_OK;
}

static void bind_opt_text(sqlite3_stmt *q, int col, const char *s)
{
    if (s)
        sqlite3_bind_text(q, col, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, col);
}

static void bind_opt_int(sqlite3_stmt *q, int col, int64_t v, int present)
{
    if (present)
        sqlite3_bind_int64(q, col, v);
    else
        sqlite3_bind_null(q, col);
}

static void bind_opt_real(sqlite3_stmt *q, int col, double v)
{
    if (isnan(v))
        sqlite3_bind_null(q, col);
    else
        sqlite3_bind_double(q, col, v);
}

/* Which of the sorted batch order (n keys) are stored: done[order[k].i]
 * is set for each key whose candidate row (c, from the key directory)
 * holds it, the oldest such row when there are several; vec copies that
 * row's answer (d floats) into out + order[k].i * d (out may be NULL). */
static kd_status resolve(struct kd_store *st, int64_t teacher, enum kd_store_kind kind,
                         const struct kd_store_impl_keyed *order, const struct kd_store_impl_cands *c, int vec,
                         float *out, size_t d, unsigned char *done, const char *purpose, struct kd_error *err)
{
    sqlite3_stmt *q;
    kd_status s = kd_store_impl_stmt(st, vec ? S_ANSWER_BY_ID : S_ANSWER_KEY_BY_ID, &q, err);
    if (s)
        return s;
    for (size_t j = 0; j < c->n; j++) {
        const struct kd_store_impl_keyed *key = &order[c->v[j].k];
        if (done[key->i])
            continue;
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, c->v[j].id);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_DONE)
            continue; /* deleted since (the directory is a hint) */
        if (rc != SQLITE_ROW) {
            sqlite3_reset(q);
            return kd_store_impl_fail(st, rc, purpose, err);
        }
        if (sqlite3_column_int64(q, 0) != teacher || sqlite3_column_int(q, 1) != (int)kind ||
            sqlite3_column_int64(q, 2) != key->hi || sqlite3_column_int64(q, 3) != key->lo)
            continue; /* an id used again, or a row changed with SQL */
        if (vec) {
            int bytes = sqlite3_column_bytes(q, 4);
            const void *blob = sqlite3_column_blob(q, 4);
            if ((size_t)bytes != d * sizeof(float) || !blob) {
                sqlite3_reset(q);
                return kd_error_set(err, KD_ERR_STORE,
                                    "label store '%s' is damaged: a stored answer has %d bytes "
                                    "where %zu floats (%zu bytes) belong; run 'kd store check %s'",
                                    st->path, bytes, d, d * sizeof(float), st->path);
            }
            if (out)
                kd_store_impl_vec_from_le(blob, d, out + key->i * d);
        }
        done[key->i] = 1;
    }
    sqlite3_reset(q);
    return KD_OK;
}

/* The rows of the sorted batch not marked in skip (by input position):
 * their positions in order, in key order. */
static size_t rows_to_add(const struct kd_store_impl_keyed *order, size_t n, unsigned char *skip, size_t *add)
{
    size_t m = 0;
    for (size_t k = 0; k < n; k++) {
        /* a key repeated in the batch: its first answer (sorted first) */
        if (k > 0 && order[k].hi == order[k - 1].hi && order[k].lo == order[k - 1].lo)
            skip[order[k].i] = 1;
        if (!skip[order[k].i])
            add[m++] = k;
    }
    return m;
}

kd_status kd_store_put(struct kd_store *st, int64_t teacher, enum kd_store_kind kind,
                       const struct kd_hash *keys, size_t n, size_t d, const float *answers,
                       const struct kd_store_origin *origins, size_t *n_added, struct kd_error *err)
{
    if (n_added)
        *n_added = 0;
    kd_status s = kd_store_impl_check_kind(kind, err);
    if (s)
        return s;
    if (n == 0)
        return KD_OK;
    if (!keys || !answers)
        return kd_error_set(err, KD_ERR_ARG, "kd_store_put: no keys or answers given");
    if ((s = kd_store_impl_check_answers(kind, n, d, answers, err)))
        return s;
    char purpose[96];
    snprintf(purpose, sizeof purpose, "storing a batch of %zu %s", n, kind_names[kind]);
    struct kd_store_impl_keyed *order = kd_store_impl_sorted_keys(keys, n);
    unsigned char *le = store_host_is_le() ? NULL : malloc(d * sizeof(float));
    unsigned char *skip = calloc(n, 1);
    size_t *add = malloc(n * sizeof *add);
    struct kd_store_impl_key *fresh = malloc(n * sizeof *fresh);
    struct kd_store_impl_cands cands = {0};
    if (!order || (!le && !store_host_is_le()) || !skip || !add || !fresh) {
        s = kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
        goto out;
    }
    char who[KD_STORE_NAME_MAX + 64];
    size_t width = 0;
    sqlite3_stmt *q;
    int rc;
    if ((s = kd_store_impl_begin_write(st, purpose, err)))
        goto out;
    if ((s = kd_store_impl_teacher_label(st, teacher, who, sizeof who, err)) ||
        (s = kd_store_impl_width_get(st, teacher, kind, &width, err)))
        goto fail;
    if (width && width != d) {
        s = kd_error_set(err, KD_ERR_SHAPE,
                         "%s gave %s of width %zu, but its %s in label store '%s' have width %zu; "
                         "a teacher's output width is fixed (register a changed teacher with a new "
                         "fingerprint); nothing of this batch was stored",
                         who, kind_names[kind], d, kind_names[kind], st->path, width);
        goto fail;
    }
    if (!width) {
        if ((s = kd_store_impl_stmt(st, S_WIDTH_SET, &q, err)))
            goto fail;
        sqlite3_bind_int64(q, 1, teacher);
        sqlite3_bind_int(q, 2, (int)kind);
        sqlite3_bind_int64(q, 3, (int64_t)d);
        rc = sqlite3_step(q);
        sqlite3_reset(q);
        if (rc != SQLITE_DONE) {
            s = kd_store_impl_fail(st, rc, purpose, err);
            goto fail;
        }
    }
    /* an answer stored for a key stays: those keys are skipped (checked
     * even without a width, which SQL may have deleted) */
    if ((s = kd_store_impl_keys_find(st, teacher, (int)kind, order, n, &cands, purpose, err)) ||
        (s = resolve(st, teacher, kind, order, &cands, 0, NULL, d, skip, purpose, err)))
        goto fail;
    size_t n_add = rows_to_add(order, n, skip, add);
    if ((s = kd_store_impl_stmt(st, S_ANSWER_PUT, &q, err)))
        goto fail;
    /* Bindings that stay for the whole batch. */
    sqlite3_bind_int64(q, 1, teacher);
    sqlite3_bind_int(q, 2, (int)kind);
    sqlite3_bind_int64(q, 3, (int64_t)d);
    sqlite3_bind_int64(q, 4, (int64_t)kd_store_impl_now());
    /* Rows go in key order, a random order over the caller's arrays, each
     * appended at the end of answers. A short gather pass per chunk (the
     * scalars and origins of the next STORE_PUT_CHUNK rows, with prefetches
     * ahead) takes the cache misses in a tight loop, where the CPU overlaps
     * them, instead of one by one between SQLite calls (store_impl.h,
     * STORE_PREFETCH). */
    struct scalars sc[STORE_PUT_CHUNK];
    struct kd_store_origin og[STORE_PUT_CHUNK];
    for (size_t a0 = 0; a0 < n_add; a0 += STORE_PUT_CHUNK) {
        size_t m = n_add - a0 < STORE_PUT_CHUNK ? n_add - a0 : STORE_PUT_CHUNK;
        for (size_t j = 0; j < m; j++) {
            if (a0 + j + STORE_PREFETCH_AHEAD < n_add) {
                size_t ia = order[add[a0 + j + STORE_PREFETCH_AHEAD]].i;
                STORE_PREFETCH(answers + ia * d);
                STORE_PREFETCH(answers + ia * d + d - 1);
                if (origins)
                    STORE_PREFETCH(origins + ia);
            }
            size_t i = order[add[a0 + j]].i;
            compute_scalars(kind, answers + i * d, d, &sc[j]);
            if (origins)
                og[j] = origins[i];
        }
        for (size_t j = 0; j < m; j++) {
            const struct kd_store_impl_keyed *key = &order[add[a0 + j]];
            const float *v = answers + key->i * d;
            sqlite3_bind_int64(q, 5, key->hi);
            sqlite3_bind_int64(q, 6, key->lo);
            if (le) {
                kd_store_impl_vec_to_le(v, d, le);
                sqlite3_bind_blob(q, 7, le, (int)(d * sizeof(float)), SQLITE_STATIC);
            } else {
                sqlite3_bind_blob(q, 7, v, (int)(d * sizeof(float)), SQLITE_STATIC);
            }
            bind_opt_int(q, 8, sc[j].class_, sc[j].class_ >= 0);
            bind_opt_real(q, 9, sc[j].confidence);
            bind_opt_real(q, 10, sc[j].entropy);
            bind_opt_real(q, 11, sc[j].margin);
            bind_opt_real(q, 12, sc[j].score);
            bind_opt_real(q, 13, sc[j].norm);
            const struct kd_store_origin *o = origins ? &og[j] : NULL;
            bind_opt_text(q, 14, o ? o->dataset : NULL);
            bind_opt_int(q, 15, o ? o->row : 0, o && o->row >= 0);
            bind_opt_int(q, 16, o ? store_i64(o->source.hi) : 0, o && o->has_source);
            bind_opt_int(q, 17, o ? store_i64(o->source.lo) : 0, o && o->has_source);
            bind_opt_int(q, 18, o ? o->source_row : 0, o && o->has_source && o->source_row >= 0);
            bind_opt_text(q, 19, o ? o->strategy : NULL);
            bind_opt_int(q, 20, o ? o->round : 0, o && o->round >= 0);
            rc = sqlite3_step(q);
            sqlite3_reset(q);
            if (rc != SQLITE_DONE) {
                sqlite3_clear_bindings(q);
                s = kd_store_impl_fail(st, rc, purpose, err);
                goto fail;
            }
            fresh[a0 + j].hi = key->hi;
            fresh[a0 + j].lo = key->lo;
            fresh[a0 + j].id = sqlite3_last_insert_rowid(st->db);
        }
    }
    sqlite3_clear_bindings(q);
    /* appended in key order: the ids rise with the keys, as a run needs */
    if ((s = kd_store_impl_keys_add(st, teacher, (int)kind, fresh, n_add, purpose, err)))
        goto fail;
    if ((s = kd_store_impl_commit(st, purpose, err)))
        goto out;
    if (n_added)
        *n_added = n_add;
    goto out;
fail:
    kd_store_impl_rollback(st);
out:
    kd_store_impl_cands_release(&cands);
    free(order);
    free(le);
    free(skip);
    free(add);
    free(fresh);
    return s;
}

kd_status kd_store_lookup(struct kd_store *st, int64_t teacher, enum kd_store_kind kind,
                          const struct kd_hash *keys, size_t n, size_t d, float *out,
                          unsigned char *found, size_t *missing, size_t *n_missing,
                          struct kd_error *err)
{
    if (n_missing)
        *n_missing = 0;
    kd_status s = kd_store_impl_check_kind(kind, err);
    if (s)
        return s;
    if (n == 0)
        return KD_OK;
    if (!keys)
        return kd_error_set(err, KD_ERR_ARG, "kd_store_lookup: no keys given");
    char purpose[96];
    snprintf(purpose, sizeof purpose, "looking up %zu %s", n, kind_names[kind]);
    unsigned char *have = found ? found : malloc(n);
    struct kd_store_impl_keyed *order = NULL;
    struct kd_store_impl_cands cands = {0};
    if (!have)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
    memset(have, 0, n);
    size_t width = 0;
    if ((s = kd_store_impl_begin_read(st, purpose, err)))
        goto out;
    if ((s = kd_store_impl_width_get(st, teacher, kind, &width, err)))
        goto fail;
    if (width && width != d) {
        char who[KD_STORE_NAME_MAX + 64];
        if ((s = kd_store_impl_teacher_label(st, teacher, who, sizeof who, err)) == KD_OK)
            s = kd_error_set(err, KD_ERR_SHAPE,
                             "%s has %s of width %zu in label store '%s'; the lookup asked for "
                             "width %zu",
                             who, kind_names[kind], width, st->path, d);
        goto fail;
    }
    if (!width) {
        /* Nothing stored yet; still refuse an unknown teacher. */
        char who[KD_STORE_NAME_MAX + 64];
        if ((s = kd_store_impl_teacher_label(st, teacher, who, sizeof who, err)))
            goto fail;
    } else {
        if (!(order = kd_store_impl_sorted_keys(keys, n))) {
            s = kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
            goto fail;
        }
        /* the candidates in id order: the rows are read in the order they
         * were appended */
        if ((s = kd_store_impl_keys_find(st, teacher, (int)kind, order, n, &cands, purpose, err)) ||
            (s = resolve(st, teacher, kind, order, &cands, 1, out, d, have, purpose, err)))
            goto fail;
    }
    if ((s = kd_store_impl_commit(st, purpose, err)))
        goto out;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!have[i]) {
            if (missing)
                missing[m] = i;
            m++;
        }
    if (n_missing)
        *n_missing = m;
    goto out;
fail:
    kd_store_impl_rollback(st);
    if (found)
        memset(found, 0, n);
out:
    kd_store_impl_cands_release(&cands);
    free(order);
    if (have != found)
        free(have);
    return s;
}

kd_status kd_store_each_answer(struct kd_store *st, int64_t teacher, enum kd_store_kind kind,
                               kd_store_answer_fn fn, void *ctx, struct kd_error *err)
{
    kd_status s = kd_store_impl_check_kind(kind, err);
    if (s)
        return s;
    const char *purpose = "reading answers";
    sqlite3_stmt *q = NULL;
    float *vec = NULL;
    size_t cap = 0;
    if ((s = kd_store_impl_begin_read(st, purpose, err)))
        return s;
    if ((s = kd_store_impl_prepare(st,
                           "SELECT hash_hi, hash_lo, dim, vec, class, confidence, entropy, margin, "
                           "score, norm, dataset, row, source_hi, source_lo, source_row, strategy, "
                           "round, created_at FROM answers WHERE teacher_id = ?1 AND kind = ?2 "
                           "ORDER BY dataset IS NULL, dataset, row, hash_hi, hash_lo",
                           purpose, &q, err)))
        goto fail;
    sqlite3_bind_int64(q, 1, teacher);
    sqlite3_bind_int(q, 2, (int)kind);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct kd_store_answer a;
        memset(&a, 0, sizeof a);
        a.key.hi = store_u64(sqlite3_column_int64(q, 0));
        a.key.lo = store_u64(sqlite3_column_int64(q, 1));
        a.d = (size_t)sqlite3_column_int64(q, 2);
        int bytes = sqlite3_column_bytes(q, 3);
        const void *blob = sqlite3_column_blob(q, 3);
        if (a.d == 0 || (size_t)bytes != a.d * sizeof(float) || !blob) {
            s = kd_error_set(err, KD_ERR_STORE,
                             "label store '%s' is damaged: a stored answer has %d bytes for %zu "
                             "floats; run 'kd store check %s'",
                             st->path, bytes, a.d, st->path);
            goto fail;
        }
        if (a.d > cap) {
            float *nv = realloc(vec, a.d * sizeof *nv);
            if (!nv) {
                s = kd_error_set(err, KD_ERR_NOMEM, "out of memory %s", purpose);
                goto fail;
            }
            vec = nv;
            cap = a.d;
        }
        kd_store_impl_vec_from_le(blob, a.d, vec);
        a.vec = vec;
        a.class_ = sqlite3_column_type(q, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, 4);
        double *reals[5] = {&a.confidence, &a.entropy, &a.margin, &a.score, &a.norm};
        for (int c = 0; c < 5; c++)
            *reals[c] = sqlite3_column_type(q, 5 + c) == SQLITE_NULL ? NAN
                                                                     : sqlite3_column_double(q, 5 + c);
        a.origin = kd_store_origin_none();
        a.origin.dataset = (const char *)sqlite3_column_text(q, 10);
        if (sqlite3_column_type(q, 11) != SQLITE_NULL)
            a.origin.row = sqlite3_column_int64(q, 11);
        if (sqlite3_column_type(q, 12) != SQLITE_NULL) {
            a.origin.has_source = 1;
            a.origin.source.hi = store_u64(sqlite3_column_int64(q, 12));
            a.origin.source.lo = store_u64(sqlite3_column_int64(q, 13));
            if (sqlite3_column_type(q, 14) != SQLITE_NULL)
                a.origin.source_row = sqlite3_column_int64(q, 14);
        }
        a.origin.strategy = (const char *)sqlite3_column_text(q, 15);
        if (sqlite3_column_type(q, 16) != SQLITE_NULL)
            a.origin.round = sqlite3_column_int64(q, 16);
        a.created_at = sqlite3_column_int64(q, 17);
        if (fn(ctx, &a))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        s = kd_store_impl_fail(st, rc, purpose, err);
        goto fail;
    }
    sqlite3_finalize(q);
    free(vec);
    return kd_store_impl_commit(st, purpose, err);
fail:
    sqlite3_finalize(q);
    free(vec);
    kd_store_impl_rollback(st);
    return s;
}

/* ----------------------------------------------------------------- examples */

kd_status kd_store_put_examples(struct kd_store *st, const struct kd_store_example *ex, size_t n,
                                struct kd_error *err)
{
    if (n == 0)
        return KD_OK;
    for (size_t i = 0; i < n; i++)
        if (!ex[i].dataset || ex[i].row < 0)
            return kd_error_set(err, KD_ERR_ARG,
                                "example %zu of the batch has no dataset or row; nothing of this "
                                "batch was recorded",
                                i);
    char purpose[64];
    snprintf(purpose, sizeof purpose, "recording %zu examples", n);
    kd_status s = kd_store_impl_begin_write(st, purpose, err);
    sqlite3_stmt *q;
    if (s)
        return s;
    if ((s = kd_store_impl_stmt(st, S_EXAMPLE_PUT, &q, err)))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_text(q, 1, ex[i].dataset, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, ex[i].row);
        sqlite3_bind_int64(q, 3, store_i64(ex[i].key.hi));
        sqlite3_bind_int64(q, 4, store_i64(ex[i].key.lo));
        bind_opt_int(q, 5, ex[i].label, ex[i].label >= 0);
        bind_opt_text(q, 6, ex[i].split);
        int rc = sqlite3_step(q);
        sqlite3_reset(q);
        if (rc != SQLITE_DONE) {
            s = kd_store_impl_fail(st, rc, purpose, err);
            goto fail;
        }
    }
    sqlite3_clear_bindings(q);
    return kd_store_impl_commit(st, purpose, err);
fail:
    kd_store_impl_rollback(st);
    return s;
}

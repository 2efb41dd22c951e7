/* Hashed text features, fastText-style, as defined in data/kd_data.h.
 *
 * No allocation per n-gram: a text is lowered once into a scratch buffer
 * laid out so that every key is a contiguous run of bytes once the byte in
 * front of it is overwritten with the key's kind ('w' or 'c'); the byte is
 * put back after hashing. Batches are cut into contiguous ranges of texts:
 * every thread counts its texts, one prefix sum places them, every thread
 * fills its range, so the result is the same for any number of threads. */
#include "data/data_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
/* The hash of short keys is most of the work: inlined, XXH3 on a 4-byte key
 * costs a few instructions instead of a call into the shared library. The
 * results are the library's, bit for bit (same header, same algorithm). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#define KD_TEXT_VERSION "kd-text-v1"
#define KD_TEXT_MAX_WORDS 8
#define KD_TEXT_MAX_CHARS 16

void kd_text_settings_init(struct kd_text_settings *s)
{
    s->log2_buckets = 18;
    s->seed = 1;
    s->word_ngrams = 2;
    s->char_min = 3;
    s->char_max = 5;
}

kd_status kd_text_settings_check(const struct kd_text_settings *s, struct kd_error *err)
{
    if (s->log2_buckets < 1 || s->log2_buckets > 31)
        return kd_error_set(err, KD_ERR_ARG, "text features: log2 buckets must be 1 to 31, not %u",
                            s->log2_buckets);
    if (s->word_ngrams > KD_TEXT_MAX_WORDS)
        return kd_error_set(err, KD_ERR_ARG,
                            "text features: word n-grams must be 0 (off) to %d, not %u",
                            KD_TEXT_MAX_WORDS, s->word_ngrams);
    int chars_off = s->char_min == 0 && s->char_max == 0;
    if (!chars_off && (s->char_min < 1 || s->char_min > s->char_max ||
                       s->char_max > KD_TEXT_MAX_CHARS))
        return kd_error_set(err, KD_ERR_ARG,
                            "text features: character n-grams %u-%u: need 1 <= min <= max <= %d "
                            "(or 0-0 for none)",
                            s->char_min, s->char_max, KD_TEXT_MAX_CHARS);
    if (chars_off && s->word_ngrams == 0)
        return kd_error_set(err, KD_ERR_ARG,
                            "text features: neither word nor character n-grams are on");
    return KD_OK;
}

void kd_text_settings_format(const struct kd_text_settings *s, char out[KD_TEXT_SETTINGS_MAX])
{
    char chars[32];
    if (s->char_min == 0 && s->char_max == 0)
        snprintf(chars, sizeof chars, "0");
    else
        snprintf(chars, sizeof chars, "%u-%u", s->char_min, s->char_max);
    snprintf(out, KD_TEXT_SETTINGS_MAX, KD_TEXT_VERSION " buckets=%u seed=%" PRIu64 " words=%u chars=%s",
             s->log2_buckets, s->seed, s->word_ngrams, chars);
}

/* Digits only (no sign, no spaces), at most `max`. */
static int parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    if (len == 0 || len > 20)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    if (v > max)
        return 0;
    *out = v;
    return 1;
}

kd_status kd_text_settings_parse(const char *str, struct kd_text_settings *out,
                                 struct kd_error *err)
{
    static const char *const keys[] = {"buckets", "seed", "words", "chars"};
    struct kd_text_settings s = {0};
    int seen[4] = {0};
    const char *p = str;
    while (*p == ' ')
        p++;
    size_t vl = strcspn(p, " ");
    if (vl != strlen(KD_TEXT_VERSION) || strncmp(p, KD_TEXT_VERSION, vl) != 0) {
        if (vl > 8 && strncmp(p, "kd-text-", 8) == 0)
            return kd_error_set(err, KD_ERR_FORMAT,
                                "text settings '%s': version '%.*s' is not supported (this kd "
                                "reads " KD_TEXT_VERSION ")",
                                str, (int)vl, p);
        return kd_error_set(err, KD_ERR_FORMAT,
                            "text settings '%s': expected '" KD_TEXT_VERSION "' first", str);
    }
    p += vl;
    for (;;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        size_t tl = strcspn(p, " ");
        const char *eq = memchr(p, '=', tl);
        if (!eq)
            return kd_error_set(err, KD_ERR_FORMAT,
                                "text settings '%s': expected key=value, found '%.*s'", str,
                                (int)tl, p);
        size_t kl = (size_t)(eq - p);
        const char *v = eq + 1;
        size_t vlen = tl - kl - 1;
        int k = -1;
        for (int j = 0; j < 4; j++)
            if (kl == strlen(keys[j]) && strncmp(p, keys[j], kl) == 0)
                k = j;
        if (k < 0)
            return kd_error_set(err, KD_ERR_FORMAT,
                                "text settings '%s': unknown setting '%.*s' (expected buckets, "
                                "seed, words, chars)",
                                str, (int)kl, p);
        if (seen[k]++)
            return kd_error_set(err, KD_ERR_FORMAT, "text settings '%s': %s is given twice", str,
                                keys[k]);
        uint64_t a = 0, b = 0;
        int ok = 0;
        const char *expect = "";
        switch (k) {
        case 0:
            ok = parse_uint(v, vlen, 31, &a) && a >= 1;
            s.log2_buckets = (unsigned)a;
            expect = "an integer from 1 to 31 (log2 of the bucket count)";
            break;
        case 1:
            ok = parse_uint(v, vlen, UINT64_MAX, &s.seed);
            expect = "an unsigned 64-bit integer";
            break;
        case 2:
            ok = parse_uint(v, vlen, KD_TEXT_MAX_WORDS, &a);
            s.word_ngrams = (unsigned)a;
            expect = "an integer from 0 (off) to 8";
            break;
        case 3: {
            const char *dash = memchr(v, '-', vlen);
            if (!dash)
                ok = vlen == 1 && v[0] == '0';
            else
                ok = parse_uint(v, (size_t)(dash - v), KD_TEXT_MAX_CHARS, &a) &&
                     parse_uint(dash + 1, vlen - (size_t)(dash - v) - 1, KD_TEXT_MAX_CHARS, &b) &&
                     a >= 1 && a <= b;
            s.char_min = (unsigned)a;
            s.char_max = (unsigned)b;
            expect = "MIN-MAX with 1 <= MIN <= MAX <= 16, or 0 for none";
            break;
        }
        }
        if (!ok)
            return kd_error_set(err, KD_ERR_FORMAT,
                                "text settings '%s': %s must be %s, found '%.*s'", str, keys[k],
                                expect, (int)vlen, v);
        p += tl;
    }
    for (int j = 0; j < 4; j++)
        if (!seen[j])
            return kd_error_set(err, KD_ERR_FORMAT, "text settings '%s': %s is missing", str,
                                keys[j]);
    if (s.word_ngrams == 0 && s.char_min == 0)
        return kd_error_set(err, KD_ERR_FORMAT,
                            "text settings '%s': words=0 and chars=0 leave no features", str);
    *out = s;
    return KD_OK;
}

/* ---------------------------------------------------------- the features */

static inline int is_word_byte(unsigned char c)
{
    return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static inline int is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

/* n-grams of n = lo..hi items in a sequence of m items. */
static size_t ngrams(size_t m, unsigned lo, unsigned hi)
{
    size_t total = 0;
    for (unsigned n = lo; n <= hi; n++)
        if (m >= n)
            total += m - n + 1;
    return total;
}

size_t kd_featurize_count(const struct kd_text_settings *s, const char *text, size_t len)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t words = 0, total = 0;
    int chars = s->char_max > 0;
    for (size_t i = 0; i < len;) {
        if (!is_word_byte(t[i])) {
            i++;
            continue;
        }
        size_t m = 2; /* the markers */
        while (i < len && is_word_byte(t[i])) {
            m += !is_cont(t[i]);
            i++;
        }
        words++;
        if (chars)
            total += ngrams(m, s->char_min, s->char_max);
    }
    if (s->word_ngrams)
        total += ngrams(words, 1, s->word_ngrams);
    return total;
}

/* Bytes of scratch featurise() needs for a text of len bytes: the lowered
 * words with one byte in front ("w" + words joined by spaces) and one
 * marked word with one byte in front. */
static size_t scratch_size(size_t len) { return 2 * len + 8; }

static inline uint32_t bucket(const unsigned char *key, size_t n, uint64_t seed, uint32_t mask)
{
    return (uint32_t)XXH3_64bits_withSeed(key, n, seed) & mask;
}

static size_t featurise(const struct kd_text_settings *s, const unsigned char *t, size_t len,
                        uint32_t *ids, unsigned char *scratch)
{
    const uint32_t mask = (uint32_t)(((uint64_t)1 << s->log2_buckets) - 1);
    const uint64_t seed = s->seed;
    const unsigned wn = s->word_ngrams, cmin = s->char_min, cmax = s->char_max;
    unsigned char *w = scratch;               /* "w" word " " word ... */
    unsigned char *mk = scratch + len + 2;    /* "?<word>" */
    size_t starts[KD_TEXT_MAX_WORDS];         /* offsets in w of the last wn words */
    size_t nw = 0, at = 1, k = 0;
    w[0] = 'w';
    mk[0] = 0; /* saved and restored around each n-gram starting at '<' */
    for (size_t i = 0; i < len;) {
        if (!is_word_byte(t[i])) {
            i++;
            continue;
        }
        if (nw)
            w[at++] = ' ';
        size_t ws = at;
        for (; i < len && is_word_byte(t[i]); i++)
            w[at++] = (unsigned char)(t[i] >= 'A' && t[i] <= 'Z' ? t[i] + 32 : t[i]);
        size_t we = at;
        if (wn) {
            starts[nw % KD_TEXT_MAX_WORDS] = ws;
            for (unsigned n = 1; n <= wn && n <= nw + 1; n++) {
                size_t from = starts[(nw + 1 - n) % KD_TEXT_MAX_WORDS];
                unsigned char save = w[from - 1];
                w[from - 1] = 'w';
                ids[k++] = bucket(w + from - 1, we - from + 1, seed, mask);
                w[from - 1] = save;
            }
        }
        nw++;
        if (!cmax)
            continue;
        /* The marked word, lowered, after one spare byte. */
        size_t m = we - ws;
        mk[1] = '<';
        memcpy(mk + 2, w + ws, m);
        mk[m + 2] = '>';
        size_t end = m + 3; /* mk[1 .. end) is "<word>" */
        for (size_t p = 1; p < end; p++) {
            if (p > 1 && is_cont(mk[p]))
                continue;
            size_t e = p;
            for (unsigned n = 1; n <= cmax; n++) {
                /* e moves to the end of the n-th character from p. */
                e++;
                while (e < end && is_cont(mk[e]))
                    e++;
                if (n >= cmin) {
                    unsigned char save = mk[p - 1];
                    mk[p - 1] = 'c';
                    ids[k++] = bucket(mk + p - 1, e - p + 1, seed, mask);
                    mk[p - 1] = save;
                }
                if (e >= end)
                    break;
            }
        }
    }
    return k;
}

size_t kd_featurize_text(const struct kd_text_settings *s, const char *text, size_t len,
                         uint32_t *ids)
{
    unsigned char stack[4104];
    unsigned char *scratch = stack;
    if (scratch_size(len) > sizeof stack && !(scratch = malloc(scratch_size(len))))
        return (size_t)-1;
    size_t k = featurise(s, (const unsigned char *)text, len, ids, scratch);
    if (scratch != stack)
        free(scratch);
    return k;
}

/* One thread's share of a batch. */
struct job {
    const struct kd_text_settings *s;
    const char *const *texts;
    const size_t *lens;
    size_t lo, hi;            /* texts [lo, hi) */
    struct kd_features *out;
    int fill;                 /* 0: count into offsets[i + 1]; 1: write ids */
    int failed;               /* out of memory */
};

static size_t text_len(const struct job *j, size_t i)
{
    return j->lens ? j->lens[i] : strlen(j->texts[i]);
}

static void *run_job(void *arg)
{
    struct job *j = arg;
    if (!j->fill) {
        for (size_t i = j->lo; i < j->hi; i++)
            j->out->offsets[i + 1] = kd_featurize_count(j->s, j->texts[i], text_len(j, i));
        return NULL;
    }
    unsigned char *scratch = NULL;
    size_t cap = 0;
    for (size_t i = j->lo; i < j->hi; i++) {
        size_t len = text_len(j, i);
        if (scratch_size(len) > cap) {
            size_t nc = scratch_size(len) > 2 * cap ? scratch_size(len) : 2 * cap;
            unsigned char *ns = realloc(scratch, nc);
            if (!ns) {
                j->failed = 1;
                break;
            }
            scratch = ns;
            cap = nc;
        }
        featurise(j->s, (const unsigned char *)j->texts[i], len, j->out->ids + j->out->offsets[i],
                  scratch);
    }
    free(scratch);
    return NULL;
}

/* Runs the jobs, on threads when there are several; 0 when threads could
 * not be started (the caller then runs them itself). */
static void run_all(struct job *jobs, int nt)
{
    pthread_t tid[64];
    int started[64] = {0};
    for (int t = 1; t < nt; t++)
        started[t] = pthread_create(&tid[t], NULL, run_job, &jobs[t]) == 0;
    run_job(&jobs[0]);
    for (int t = 1; t < nt; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            run_job(&jobs[t]); /* no thread to be had: do it here */
    }
}

kd_status kd_featurize(const struct kd_text_settings *s, const char *const *texts,
                       const size_t *lens, size_t n, int threads, struct kd_features *out,
                       struct kd_error *err)
{
    kd_status st;
    memset(out, 0, sizeof *out);
    if ((st = kd_text_settings_check(s, err)))
        return st;
    if (threads <= 0) /* kd's one thread setting (KD_THREADS, `threads:`) */
        threads = kd_blas_get_threads();
    if (threads > 64)
        threads = 64;
    /* Below a few thousand texts a thread costs more than it saves. */
    size_t per = 4096;
    if ((size_t)threads > (n + per - 1) / per)
        threads = (int)((n + per - 1) / per);
    if (threads < 1)
        threads = 1;
    out->offsets = malloc((n + 1) * sizeof *out->offsets);
    if (!out->offsets)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for the features of %zu texts", n);
    out->n = n;
    out->buckets = (uint32_t)1 << s->log2_buckets;
    out->offsets[0] = 0;
    struct job jobs[64];
    for (int t = 0; t < threads; t++)
        jobs[t] = (struct job){s, texts, lens, n * (size_t)t / (size_t)threads,
                               n * (size_t)(t + 1) / (size_t)threads, out, 0, 0};
    run_all(jobs, threads);
    for (size_t i = 0; i < n; i++)
        out->offsets[i + 1] += out->offsets[i];
    out->nnz = out->offsets[n];
    out->ids = malloc((out->nnz ? out->nnz : 1) * sizeof *out->ids);
    if (!out->ids) {
        size_t nnz = out->nnz;
        kd_features_release(out);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for %zu text features", nnz);
    }
    for (int t = 0; t < threads; t++)
        jobs[t].fill = 1;
    run_all(jobs, threads);
    for (int t = 0; t < threads; t++)
        if (jobs[t].failed) {
            kd_features_release(out);
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory featurising %zu texts", n);
        }
    return KD_OK;
}

/* A dictd dictionary (NAME.index and NAME.dict.dz) turned into a BEIR data
 * set for reverse-dictionary retrieval: find the entry from its definition
 * (kd_data.h says what the documents, queries and judgements are).
 *
 * The index (dictd(8), dictfmt(1)) has one line per headword:
 *     headword TAB offset TAB length [TAB headword as shown]
 * offset and length are dictd base64 numbers (digits A-Z a-z 0-9 + / worth
 * 0 to 63, the most significant first, no padding) locating the entry in the
 * uncompressed .dict data. Several headwords share an entry by giving the
 * same offset and length. */
#include "data/data_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void kd_dictd_options_init(struct kd_dictd_options *o)
{
    o->index_path = NULL;
    o->dict_path = NULL;
    o->out_dir = NULL;
    o->seed = 1;
    o->dev_frac = 0.1;
    o->test_frac = 0.1;
    o->min_words = 3;
}

struct headword {
    const char *text;        /* as shown, into the index buffer */
    size_t len;
    uint64_t off, len_data;  /* the entry's bytes in the data */
    size_t line;             /* 1-based line of the index */
};

struct entry {
    uint64_t off, len;
    size_t first, n;         /* its headwords: hw[first .. first + n) */
    char *id, *title, *text, *def;
};

/* Everything the conversion collects; arrays grow by doubling. */
struct dd {
    struct kd_arena strings;
    char *index, *data;
    size_t data_len;
    struct headword *hw;
    size_t n_hw, cap_hw;
    struct entry *ent;
    size_t n_ent;
    char **query_texts;      /* per query */
    size_t *query_entry;     /* the entry whose offset names the query */
    size_t n_queries;
    size_t *entry_query;     /* per entry: its query, or KD_STR_INDEX_NONE */
    struct kd_str_index queries;
};


static int is_word(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

static unsigned char fold(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static int same_folded(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fold((unsigned char)a[i]) != fold((unsigned char)b[i]))
            return 0;
    return 1;
}

static size_t count_words(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += is_word(*p) && (p == (const unsigned char *)s || !is_word(p[-1]));
    return n;
}

/* A dictd base64 number; 0 when s is empty, too long for 60 bits or holds
 * another character. */
static int b64_number(const char *s, uint64_t *v)
{
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s);
    if (n == 0 || n > 10)
        return 0;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        const char *d = s[i] ? strchr(digits, s[i]) : NULL;
        if (!d)
            return 0;
        x = x * 64 + (uint64_t)(d - digits);
    }
    *v = x;
    return 1;
}

static kd_status slurp(const char *path, char **buf, size_t *len, struct kd_error *err)
{
    struct kd_data_reader r;
    kd_status st = kd_data_reader_open(&r, path, err);
    if (st)
        return st;
    /* A gzip stream cut short is an error of the reader. */
    st = kd_data_reader_slurp(&r, buf, len, err);
    kd_data_reader_close(&r);
    return st;
}

/* Splits the index into headwords, each checked against the data's size. */
static kd_status read_index(struct dd *d, const char *path, const char *dict_path,
                            struct kd_error *err)
{
    size_t len = 0;
    kd_status st = slurp(path, &d->index, &len, err);
    if (st)
        return st;
    char *p = d->index, *end = d->index + len;
    size_t line = 0;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        char *s = p;
        p = nl ? nl + 1 : end;
        line++;
        if (e > s && e[-1] == '\r')
            e--;
        *e = '\0';
        if (strlen(s) != (size_t)(e - s))
            return kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: a NUL byte in the line", path, line);
        size_t nf = 1;
        for (const char *c = s; c < e; c++)
            nf += *c == '\t';
        if (nf != 3 && nf != 4)
            return kd_error_set(err, KD_ERR_FORMAT,
                                "%s:%zu: expected 3 or 4 tab-separated fields (headword, offset, "
                                "length, headword as shown), found %zu",
                                path, line, nf);
        char *f[4] = {s, NULL, NULL, NULL};
        size_t k = 0;
        for (char *c = s; c < e; c++)
            if (*c == '\t') {
                *c = '\0';
                f[++k] = c + 1;
            }
        if (strncmp(f[0], "00-database-", 12) == 0 || strncmp(f[0], "00database", 10) == 0)
            continue;
        const char *shown = nf == 4 ? f[3] : f[0];
        size_t n = strlen(shown);
        if (n == 0)
            return kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: empty headword", path, line);
        if (kd_utf8_valid_prefix(shown, n) != n)
            return kd_error_set(err, KD_ERR_FORMAT,
                                "%s:%zu: the headword is not valid UTF-8 (at byte %zu)", path, line,
                                kd_utf8_valid_prefix(shown, n) + 1);
        uint64_t off, dlen;
        const char *bad = !b64_number(f[1], &off) ? "offset" : !b64_number(f[2], &dlen) ? "length" : NULL;
        if (bad)
            return kd_error_set(err, KD_ERR_FORMAT,
                                "%s:%zu: the %s '%s' is not a dictd base64 number (1 to 10 of "
                                "A-Z a-z 0-9 + /)",
                                path, line, bad, bad[0] == 'o' ? f[1] : f[2]);
        if (off > d->data_len || dlen > d->data_len - off)
            return kd_error_set(err, KD_ERR_FORMAT,
                                "%s:%zu: the entry of '%s' (bytes %llu to %llu) ends past the end "
                                "of %s (%zu bytes uncompressed)",
                                path, line, shown, (unsigned long long)off,
                                (unsigned long long)off + (unsigned long long)dlen, dict_path,
                                d->data_len);
        if (!KD_GROW(d->hw, d->cap_hw, d->n_hw))
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        d->hw[d->n_hw++] = (struct headword){shown, n, off, dlen, line};
    }
    if (d->n_hw == 0)
        return kd_error_set(err, KD_ERR_FORMAT, "%s has no entries", path);
    return KD_OK;
}

static int hw_cmp(const void *pa, const void *pb)
{
    const struct headword *a = pa, *b = pb;
    if (a->off != b->off)
        return a->off < b->off ? -1 : 1;
    return a->line < b->line ? -1 : a->line > b->line;
}

/* s[0..n) with every run of spaces and control characters made one space,
 * trimmed, into the arena. */
static char *normalise(struct kd_arena *a, char *scratch, const char *s, size_t n)
{
    size_t k = 0;
    int space = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f) {
            space = 1;
            continue;
        }
        if (space && k)
            scratch[k++] = ' ';
        space = 0;
        scratch[k++] = (char)c;
    }
    return kd_arena_strndup(a, scratch, k);
}

static int hw_longer(const void *pa, const void *pb)
{
    const struct headword *const *a = pa, *const *b = pb;
    return (*a)->len > (*b)->len ? -1 : (*a)->len < (*b)->len;
}

/* The definition without the entry's headwords (whole words, ASCII case
 * ignored, the longest first), normalised again. */
static char *strip_headwords(struct dd *d, const struct entry *e, const char *def, char *scratch,
                             char *scratch2, const struct headword **by_len)
{
    for (size_t h = 0; h < e->n; h++)
        by_len[h] = &d->hw[e->first + h];
    qsort(by_len, e->n, sizeof *by_len, hw_longer);
    size_t n = strlen(def), k = 0;
    for (size_t i = 0; i < n;) {
        size_t skip = 0;
        for (size_t h = 0; h < e->n && !skip; h++) {
            const struct headword *w = by_len[h];
            if (w->len > n - i || !same_folded(def + i, w->text, w->len))
                continue;
            int start_ok = i == 0 || !is_word((unsigned char)def[i - 1]) ||
                           !is_word((unsigned char)w->text[0]);
            int end_ok = i + w->len == n || !is_word((unsigned char)def[i + w->len]) ||
                         !is_word((unsigned char)w->text[w->len - 1]);
            if (start_ok && end_ok)
                skip = w->len;
        }
        if (skip) {
            scratch2[k++] = ' ';
            i += skip;
        } else {
            scratch2[k++] = def[i++];
        }
    }
    return normalise(&d->strings, scratch, scratch2, k);
}

static int blank_line(const char *s, const char *e)
{
    for (; s < e; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r')
            return 0;
    return 1;
}

/* One entry's title, text and definition. */
static kd_status build_entry(struct dd *d, struct entry *e, char *scratch, char *scratch2,
                             const struct headword **by_len, const char *index_path,
                             const char *dict_path, struct kd_error *err)
{
    const char *s = d->data + e->off, *end = s + e->len;
    size_t valid = kd_utf8_valid_prefix(s, e->len);
    if (valid != e->len)
        return kd_error_set(err, KD_ERR_FORMAT,
                            "%s: the entry of '%s' (%s:%zu) is not valid UTF-8 at byte %llu",
                            dict_path, d->hw[e->first].text, index_path, d->hw[e->first].line,
                            (unsigned long long)(e->off + valid));
    char id[32];
    snprintf(id, sizeof id, "e%llu", (unsigned long long)e->off);
    if (!(e->id = kd_arena_strndup(&d->strings, id, strlen(id))))
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    size_t tl = 0;
    for (size_t h = 0; h < e->n; h++) {
        const struct headword *w = &d->hw[e->first + h];
        if (h) {
            memcpy(scratch2 + tl, ", ", 2);
            tl += 2;
        }
        memcpy(scratch2 + tl, w->text, w->len);
        tl += w->len;
    }
    if (!(e->title = normalise(&d->strings, scratch, scratch2, tl)))
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");

    /* The heading: lines up to the first blank one, when the first is a
     * headword. */
    const char *nl = memchr(s, '\n', e->len);
    const char *l0 = s, *l1 = nl ? nl : end;
    while (l0 < l1 && (*l0 == ' ' || *l0 == '\t'))
        l0++;
    while (l1 > l0 && (l1[-1] == ' ' || l1[-1] == '\t' || l1[-1] == '\r'))
        l1--;
    int heading = 0;
    for (size_t h = 0; h < e->n && !heading; h++)
        heading = d->hw[e->first + h].len == (size_t)(l1 - l0) &&
                  same_folded(l0, d->hw[e->first + h].text, (size_t)(l1 - l0));
    const char *p = s;
    int in_para = 0;
    const char *def_start = NULL, *def_end = NULL;
    while (p < end) {
        const char *n2 = memchr(p, '\n', (size_t)(end - p));
        const char *le = n2 ? n2 : end;
        int blank = blank_line(p, le);
        if (heading) {
            if (blank)
                heading = 0;
        } else if (!def_start) {
            if (!blank)
                def_start = p, in_para = 1;
        } else if (in_para && blank) {
            def_end = p;
            in_para = 0;
            break;
        }
        p = n2 ? n2 + 1 : end;
    }
    if (!def_start)
        def_start = def_end = end;
    else if (!def_end)
        def_end = end;
    char *def = normalise(&d->strings, scratch, def_start, (size_t)(def_end - def_start));
    if (!def || !(e->text = normalise(&d->strings, scratch, def_end, (size_t)(end - def_end))))
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    if (!(e->def = strip_headwords(d, e, def, scratch, scratch2, by_len)))
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    return KD_OK;
}

/* Groups the headwords into entries and builds each one. */
static kd_status make_entries(struct dd *d, const char *index_path, const char *dict_path,
                              struct kd_error *err)
{
    qsort(d->hw, d->n_hw, sizeof *d->hw, hw_cmp);
    size_t cap = 1, longest = 0, most = 0;
    for (size_t i = 0; i < d->n_hw; i++) {
        const struct headword *w = &d->hw[i];
        if (i && w->off == d->hw[i - 1].off) {
            size_t j = i - 1;
            while (j && d->hw[j - 1].off == w->off)
                j--;
            if (w->len_data != d->hw[j].len_data)
                return kd_error_set(err, KD_ERR_FORMAT,
                                    "%s:%zu: the entry at byte %llu is %llu bytes long here but "
                                    "%llu bytes long on line %zu",
                                    index_path, w->line, (unsigned long long)w->off,
                                    (unsigned long long)w->len_data,
                                    (unsigned long long)d->hw[j].len_data, d->hw[j].line);
        } else {
            cap++;
        }
    }
    if (!(d->ent = calloc(cap, sizeof *d->ent)))
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    size_t title = 0; /* the current entry's title, ", " after every headword */
    for (size_t i = 0; i < d->n_hw; i++) {
        struct headword *w = &d->hw[i];
        if (!i || w->off != d->hw[i - 1].off) {
            d->ent[d->n_ent++] = (struct entry){.off = w->off, .len = w->len_data, .first = i};
            title = 0;
        }
        struct entry *e = &d->ent[d->n_ent - 1];
        e->n++;
        if (e->n > most)
            most = e->n;
        title += w->len + 2;
        if (title > longest)
            longest = title;
        if (e->len + 1 > longest)
            longest = (size_t)e->len + 1;
    }
    /* Scratch for the longest entry or title; the definition only shrinks. */
    kd_status st = KD_OK;
    char *scratch = malloc(longest + 1), *scratch2 = malloc(longest + 1);
    const struct headword **by_len = malloc(most * sizeof *by_len);
    if (!scratch || !scratch2 || !by_len)
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < d->n_ent && !st; i++)
        st = build_entry(d, &d->ent[i], scratch, scratch2, by_len, index_path, dict_path, err);
    free(scratch);
    free(scratch2);
    free(by_len);
    return st;
}

/* One query per distinct definition with enough words. */
static kd_status make_queries(struct dd *d, size_t min_words, struct kd_dictd_stats *stats,
                              struct kd_error *err)
{
    kd_status st;
    d->query_texts = malloc((d->n_ent + 1) * sizeof *d->query_texts);
    d->query_entry = malloc((d->n_ent + 1) * sizeof *d->query_entry);
    d->entry_query = malloc((d->n_ent + 1) * sizeof *d->entry_query);
    if (!d->query_texts || !d->query_entry || !d->entry_query)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    if ((st = kd_str_index_init(&d->queries, d->n_ent, err)))
        return st;
    for (size_t i = 0; i < d->n_ent; i++) {
        struct entry *e = &d->ent[i];
        d->entry_query[i] = KD_STR_INDEX_NONE;
        if (count_words(e->def) < (min_words ? min_words : 1)) {
            stats->short_defs++;
            continue;
        }
        size_t q = d->n_queries, dup;
        d->query_texts[q] = e->def;
        d->query_entry[q] = i;
        if ((st = kd_str_index_add(&d->queries, d->query_texts, q, &dup, err)))
            return st;
        if (dup != KD_STR_INDEX_NONE) {
            stats->merged++;
            d->entry_query[i] = dup;
        } else {
            d->entry_query[i] = q;
            d->n_queries++;
        }
    }
    return KD_OK;
}

/* The rows kd_beir_write_dir writes: a document per entry; a query per
 * distinct definition, named by its first entry's offset; a judgement per
 * entry that has a query, in offset order (a merged query's judgements
 * follow its entries' order). */
static void dd_doc(void *ctx, size_t i, const char *v[3])
{
    const struct dd *d = ctx;
    v[0] = d->ent[i].id;
    v[1] = d->ent[i].title;
    v[2] = d->ent[i].text;
}

static void dd_query(void *ctx, size_t q, char *idbuf, size_t idcap, const char *v[3])
{
    const struct dd *d = ctx;
    const struct entry *e = &d->ent[d->query_entry[q]];
    snprintf(idbuf, idcap, "q%llu", (unsigned long long)e->off);
    v[0] = idbuf;
    v[1] = d->query_texts[q];
    v[2] = d->hw[e->first].text;
}

static int dd_judged(void *ctx, size_t k, size_t *q, size_t *doc)
{
    const struct dd *d = ctx;
    *q = d->entry_query[k];
    *doc = k;
    return *q != KD_STR_INDEX_NONE;
}

static void dd_release(struct dd *d)
{
    kd_arena_release(&d->strings);
    free(d->index);
    free(d->data);
    free(d->hw);
    free(d->ent);
    free(d->query_texts);
    free(d->query_entry);
    free(d->entry_query);
    kd_str_index_release(&d->queries);
}

kd_status kd_dictd_convert(const struct kd_dictd_options *o, struct kd_dictd_stats *stats,
                           struct kd_error *err)
{
    kd_status st = KD_OK;
    struct dd d = {0};
    struct kd_dictd_stats local;
    unsigned char *split = NULL;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!o || !o->index_path || !o->dict_path || !o->out_dir)
        return kd_error_set(err, KD_ERR_ARG, "dictd: missing the index, the dictionary or the "
                                             "output directory");
    if (!(o->dev_frac >= 0 && o->test_frac >= 0 && o->dev_frac + o->test_frac <= 1))
        return kd_error_set(err, KD_ERR_ARG,
                            "dictd: dev and test shares %g and %g must be >= 0 with a sum <= 1",
                            o->dev_frac, o->test_frac);
    if ((st = slurp(o->dict_path, &d.data, &d.data_len, err)) ||
        (st = read_index(&d, o->index_path, o->dict_path, err)) ||
        (st = make_entries(&d, o->index_path, o->dict_path, err)) ||
        (st = make_queries(&d, o->min_words, stats, err)))
        goto done;
    stats->headwords = d.n_hw;
    stats->docs = d.n_ent;

    /* The split: shuffle, then test, dev, and the rest for train. */
    size_t nq = d.n_queries;
    if ((st = kd_beir_assign_splits(nq, o->seed, o->dev_frac, o->test_frac, &split, stats->split, err)))
        goto done;
    double qwords = 0, dwords = 0;
    for (size_t q = 0; q < nq; q++)
        qwords += (double)count_words(d.query_texts[q]);
    for (size_t i = 0; i < d.n_ent; i++)
        dwords += (double)count_words(d.ent[i].text);
    stats->queries = nq;
    stats->query_words = nq ? qwords / (double)nq : 0.0;
    stats->doc_words = d.n_ent ? dwords / (double)d.n_ent : 0.0;

    struct kd_beir_rows rows = {d.n_ent, nq, d.n_ent, &d, dd_doc, dd_query, dd_judged};
    st = kd_beir_write_dir(o->out_dir, &rows, split, err);
done:
    free(split);
    dd_release(&d);
    return st;
}

/* WordNet's database files turned into a BEIR data set (see kd_data.h for
 * what the documents, queries and judgements are).
 *
 * A data line (wndb(5)) reads
 *     offset lex_filenum ss_type w_cnt word lex_id [word lex_id ...] p_cnt
 *     [pointers...] [frames...] | gloss
 * with w_cnt in hexadecimal; only the words and the gloss are used. The
 * gloss is "definition; "example"; "example" - attribution": quoted
 * segments are examples (an attribution after the closing quote is
 * dropped), the rest is the definition. Lines starting with spaces are the
 * licence at the top of each file. */
#include "data/data_impl.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void kd_wordnet_options_init(struct kd_wordnet_options *o)
{
    o->wordnet_dir = KD_WORDNET_DIR;
    o->out_dir = NULL;
    o->seed = 1;
    o->dev_frac = 0.1;
    o->test_frac = 0.1;
}

struct synset {
    char *id, *title, *def;
    size_t first_word, n_words;   /* into words[] */
};

struct word {
    char *text;                   /* as shown: spaces for underscores */
    size_t lemma;                 /* into the lemma table */
};

struct example {
    size_t synset, number;        /* number: 1-based within the gloss */
    char *text;
};

struct pair {
    size_t query, synset;
};

/* Everything the conversion collects; arrays grow by doubling. */
struct wn {
    struct kd_arena strings;
    struct synset *syn;
    size_t n_syn, cap_syn;
    struct word *words;
    size_t n_words, cap_words;
    struct example *ex;
    size_t n_ex, cap_ex;
    char **lemma_keys;            /* "n:bank", lower case */
    size_t *lemma_senses;
    size_t n_lemmas, cap_lemmas;
    struct kd_str_index lemmas;
    char **query_texts;
    char **query_ids;
    const char **query_words;
    size_t *query_senses;
    size_t n_queries, cap_queries;
    struct kd_str_index queries;
    struct pair *pairs;
    size_t n_pairs, cap_pairs;
};


static char *next_token(char **p)
{
    char *s = *p;
    while (*s == ' ')
        s++;
    if (!*s)
        return NULL;
    char *e = s;
    while (*e && *e != ' ')
        e++;
    if (*e)
        *e++ = '\0';
    *p = e;
    return s;
}

static int all_of(const char *s, size_t len, int (*cls)(int))
{
    if (strlen(s) != len)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!cls((unsigned char)s[i]))
            return 0;
    return 1;
}

static void trim(char **s, char **e)
{
    while (*s < *e && isspace((unsigned char)**s))
        (*s)++;
    while (*e > *s && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

/* The lemma table's entry for (pos, word), made on first sight. */
static kd_status lemma_of(struct wn *w, char pos, const char *word, size_t *out,
                          struct kd_error *err)
{
    char key[512];
    size_t n = (size_t)snprintf(key, sizeof key, "%c:%s", pos, word);
    if (n >= sizeof key)
        n = sizeof key - 1;
    for (size_t i = 2; i < n; i++)
        key[i] = (char)tolower((unsigned char)key[i]);
    size_t at = kd_str_index_find(&w->lemmas, w->lemma_keys, key, n);
    if (at != KD_STR_INDEX_NONE) {
        *out = at;
        return KD_OK;
    }
    if (w->n_lemmas == w->cap_lemmas) {
        size_t nc = w->cap_lemmas ? w->cap_lemmas * 2 : 1024;
        char **k = realloc(w->lemma_keys, nc * sizeof *k);
        if (k)
            w->lemma_keys = k;
        size_t *c = realloc(w->lemma_senses, nc * sizeof *c);
        if (c)
            w->lemma_senses = c;
        if (!k || !c)
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        w->cap_lemmas = nc;
    }
    size_t i = w->n_lemmas;
    if (!(w->lemma_keys[i] = kd_arena_strndup(&w->strings, key, n)))
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    w->lemma_senses[i] = 0;
    size_t dup;
    kd_status st = kd_str_index_add(&w->lemmas, w->lemma_keys, i, &dup, err);
    if (st)
        return st;
    w->n_lemmas++;
    *out = i;
    return KD_OK;
}

/* Splits a gloss into its definition (segments joined by "; ") and its
 * quoted examples, which are added to w->ex for synset `syn`. */
static kd_status split_gloss(struct wn *w, char *g, size_t syn, char **def, struct kd_error *err)
{
    size_t glen = strlen(g);
    /* Segments are joined by "; " where the gloss may have had one ';'
     * ("a;b;c" gives "a; b; c"): at most two bytes out per byte in. */
    char *d = malloc(2 * glen + 1);
    if (!d)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    size_t dn = 0, number = 0;
    char *p = g, *end = g + glen;
    while (p < end) {
        while (p < end && (isspace((unsigned char)*p) || *p == ';'))
            p++;
        if (p >= end)
            break;
        char *s, *e;
        if (*p == '"') {
            s = p + 1;
            char *q = memchr(s, '"', (size_t)(end - s));
            e = q ? q : end;
            /* What follows the closing quote up to the next ';' is an
             * attribution ("- William James"). */
            char *semi = q ? memchr(q, ';', (size_t)(end - q)) : NULL;
            p = semi ? semi + 1 : end;
            trim(&s, &e);
            if (e > s) {
                if (!KD_GROW(w->ex, w->cap_ex, w->n_ex))
                    goto nomem;
                char *t = kd_arena_strndup(&w->strings, s, (size_t)(e - s));
                if (!t)
                    goto nomem;
                w->ex[w->n_ex++] = (struct example){syn, ++number, t};
            }
            continue;
        }
        /* A definition segment ends at a ';' outside quotes. */
        s = p;
        int inq = 0;
        while (p < end && (inq || *p != ';')) {
            inq ^= *p == '"';
            p++;
        }
        e = p;
        trim(&s, &e);
        /* A few definitions end with an example after a colon:
         * 'the act of ...: "he sent Smith in for Jones"'. */
        if (e - s > 4 && e[-1] == '"') {
            char *open = memchr(s, '"', (size_t)(e - 1 - s));
            while (open && memchr(open + 1, '"', (size_t)(e - 2 - open)))
                open = memchr(open + 1, '"', (size_t)(e - 1 - open - 1));
            if (open && open - s >= 2 && open[-1] == ' ' && open[-2] == ':') {
                char *xs = open + 1, *xe = e - 1;
                trim(&xs, &xe);
                if (xe > xs) {
                    if (!KD_GROW(w->ex, w->cap_ex, w->n_ex))
                        goto nomem;
                    char *t = kd_arena_strndup(&w->strings, xs, (size_t)(xe - xs));
                    if (!t)
                        goto nomem;
                    w->ex[w->n_ex++] = (struct example){syn, ++number, t};
                }
                e = open - 2;
                trim(&s, &e);
            }
        }
        if (e > s) {
            if (dn) {
                memcpy(d + dn, "; ", 2);
                dn += 2;
            }
            memcpy(d + dn, s, (size_t)(e - s));
            dn += (size_t)(e - s);
        }
    }
    *def = kd_arena_strndup(&w->strings, d, dn);
    free(d);
    if (!*def)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    return KD_OK;
nomem:
    free(d);
    return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
}

static int is_xdigit_(int c) { return isxdigit(c); }
static int is_digit_(int c) { return isdigit(c); }

/* Reads one data file: its synsets, their words and examples. */
static kd_status read_data(struct wn *w, const char *dir, const char *name, char pos,
                           struct kd_error *err)
{
    kd_status st = KD_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/data.%s", dir, name);
    char *buf = NULL;
    size_t len = 0;
    if ((st = kd_read_file(path, &buf, &len, err)))
        return st;
    size_t line = 0;
    char *p = buf, *end = buf + len;
    /* An offset is the line's byte offset in the file: they increase. */
    char prev_off[9] = "", after[80];
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        char *s = p;
        p = nl ? nl + 1 : end;
        line++;
        if (e > s && e[-1] == '\r')
            e--;
        *e = '\0';
        if (*s == ' ' || *s == '\0')
            continue; /* the licence, or a blank line */
        char *gloss = strstr(s, " | ");
        if (gloss) {
            *gloss = '\0';
            gloss += 3;
        } else {
            gloss = e; /* no gloss: an empty one */
        }
        char *cur = s;
        char *off = next_token(&cur), *lex = next_token(&cur), *type = next_token(&cur);
        char *wcnt = next_token(&cur);
        const char *what = NULL, *found = "";
        snprintf(after, sizeof after, "a synset offset after the previous line's %s", prev_off);
        if (!off || !all_of(off, 8, is_digit_))
            what = "an 8-digit synset offset", found = off ? off : "";
        else if (!lex || !all_of(lex, 2, is_digit_))
            what = "a 2-digit lexicographer file number", found = lex ? lex : "";
        else if (!type || strlen(type) != 1 || !strchr("nvasr", type[0]) ||
                 (type[0] == 's' ? 'a' : type[0]) != pos)
            what = "the synset type of this file", found = type ? type : "";
        else if (!wcnt || !all_of(wcnt, 2, is_xdigit_) || strtoul(wcnt, NULL, 16) == 0)
            what = "a 2-digit hexadecimal word count", found = wcnt ? wcnt : "";
        else if (strcmp(off, prev_off) <= 0) /* the _id of a synset: one per offset */
            what = after, found = off;
        if (what) {
            st = kd_error_set(err, KD_ERR_FORMAT, "%s:%zu: expected %s, found '%s'", path, line,
                              what, found);
            goto done;
        }
        memcpy(prev_off, off, sizeof prev_off);
        size_t nw = strtoul(wcnt, NULL, 16);
        if (!KD_GROW(w->syn, w->cap_syn, w->n_syn))
            goto nomem;
        size_t si = w->n_syn;
        struct synset *sy = &w->syn[si];
        char id[16];
        snprintf(id, sizeof id, "%c%s", pos, off);
        if (!(sy->id = kd_arena_strndup(&w->strings, id, strlen(id))))
            goto nomem;
        sy->first_word = w->n_words;
        sy->n_words = nw;
        size_t title_len = 0;
        for (size_t k = 0; k < nw; k++) {
            char *word = next_token(&cur), *lexid = next_token(&cur);
            if (!word || !lexid || !all_of(lexid, 1, is_xdigit_)) {
                st = kd_error_set(err, KD_ERR_FORMAT,
                                  "%s:%zu: expected %zu words with their lexical ids, found %zu",
                                  path, line, nw, k);
                goto done;
            }
            /* Adjectives may carry a syntactic marker: "galore(ip)". */
            char *paren = strchr(word, '(');
            if (paren && paren > word && word[strlen(word) - 1] == ')')
                *paren = '\0';
            for (char *c = word; *c; c++)
                if (*c == '_')
                    *c = ' ';
            if (!KD_GROW(w->words, w->cap_words, w->n_words))
                goto nomem;
            struct word *wd = &w->words[w->n_words];
            if (!(wd->text = kd_arena_strndup(&w->strings, word, strlen(word))))
                goto nomem;
            if ((st = lemma_of(w, pos, word, &wd->lemma, err)))
                goto done;
            w->lemma_senses[wd->lemma]++;
            w->n_words++;
            title_len += strlen(word) + 2;
        }
        /* Title: the words, ", "-separated. */
        char *title = malloc(title_len + 1);
        if (!title)
            goto nomem;
        size_t tn = 0;
        for (size_t k = 0; k < nw; k++) {
            const char *t = w->words[sy->first_word + k].text;
            tn += (size_t)sprintf(title + tn, "%s%s", k ? ", " : "", t);
        }
        sy->title = kd_arena_strndup(&w->strings, title, tn);
        free(title);
        if (!sy->title)
            goto nomem;
        if ((st = split_gloss(w, gloss, si, &sy->def, err)))
            goto done;
        w->n_syn++;
    }
    goto done;
nomem:
    st = kd_error_set(err, KD_ERR_NOMEM, "%s:%zu: out of memory", path, line);
done:
    free(buf);
    return st;
}

/* 1 when `stem` occurs in `text` (both lower case) at the start of a word. */
static int occurs(const char *text, const char *stem)
{
    if (!*stem)
        return 0;
    for (const char *q = strstr(text, stem); q; q = strstr(q + 1, stem))
        if (q == text || !isalnum((unsigned char)q[-1]))
            return 1;
    return 0;
}

/* The word of synset sy that example `text` illustrates (see kd_data.h). */
static const struct word *example_word(const struct wn *w, const struct synset *sy,
                                       const char *text, int *matched)
{
    char low[2048], stem[512];
    snprintf(low, sizeof low, "%s", text);
    for (char *c = low; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    for (size_t k = 0; k < sy->n_words; k++) {
        const struct word *wd = &w->words[sy->first_word + k];
        snprintf(stem, sizeof stem, "%s", wd->text);
        size_t n = strlen(stem);
        for (size_t i = 0; i < n; i++)
            stem[i] = (char)tolower((unsigned char)stem[i]);
        if (n > 3 && stem[n - 1] == 'e')
            stem[n - 1] = '\0';
        if (occurs(low, stem)) {
            *matched = 1;
            return wd;
        }
    }
    *matched = 0;
    return &w->words[sy->first_word];
}

static kd_status make_queries(struct wn *w, struct kd_wordnet_stats *stats, struct kd_error *err)
{
    kd_status st;
    if ((st = kd_str_index_init(&w->queries, w->n_ex, err)))
        return st;
    for (size_t i = 0; i < w->n_ex; i++) {
        const struct example *ex = &w->ex[i];
        const struct synset *sy = &w->syn[ex->synset];
        int matched;
        const struct word *wd = example_word(w, sy, ex->text, &matched);
        size_t senses = w->lemma_senses[wd->lemma];
        if (senses < 2) {
            stats->single_sense++;
            continue;
        }
        size_t q = kd_str_index_find(&w->queries, w->query_texts, ex->text, strlen(ex->text));
        if (q != KD_STR_INDEX_NONE) {
            /* The same sentence in another synset: one more relevant
             * document for the query (once per synset). */
            stats->merged++;
            int have = 0;
            for (size_t k = 0; k < w->n_pairs && !have; k++)
                have = w->pairs[k].query == q && w->pairs[k].synset == ex->synset;
            if (have)
                continue;
        } else {
            if (w->n_queries == w->cap_queries) {
                size_t nc = w->cap_queries ? w->cap_queries * 2 : 1024;
                char **a = realloc(w->query_texts, nc * sizeof *a);
                if (a)
                    w->query_texts = a;
                char **b = realloc(w->query_ids, nc * sizeof *b);
                if (b)
                    w->query_ids = b;
                const char **c = realloc(w->query_words, nc * sizeof *c);
                if (c)
                    w->query_words = c;
                size_t *d = realloc(w->query_senses, nc * sizeof *d);
                if (d)
                    w->query_senses = d;
                if (!a || !b || !c || !d)
                    return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
                w->cap_queries = nc;
            }
            q = w->n_queries;
            char id[64];
            snprintf(id, sizeof id, "%s-%zu", sy->id, ex->number);
            w->query_texts[q] = ex->text;
            if (!(w->query_ids[q] = kd_arena_strndup(&w->strings, id, strlen(id))))
                return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
            w->query_words[q] = wd->text;
            w->query_senses[q] = senses;
            size_t dup;
            if ((st = kd_str_index_add(&w->queries, w->query_texts, q, &dup, err)))
                return st;
            w->n_queries++;
            stats->unmatched += !matched;
        }
        if (!KD_GROW(w->pairs, w->cap_pairs, w->n_pairs))
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        w->pairs[w->n_pairs++] = (struct pair){q, ex->synset};
    }
    return KD_OK;
}

static int pair_cmp(const void *pa, const void *pb)
{
    const struct pair *a = pa, *b = pb;
    if (a->query != b->query)
        return a->query < b->query ? -1 : 1;
    return a->synset < b->synset ? -1 : a->synset > b->synset;
}

/* The rows kd_beir_write_dir writes: a document per synset, a query per
 * example text, a judgement per (query, synset) pair. */
static void wn_doc(void *ctx, size_t i, const char *v[3])
{
    const struct wn *w = ctx;
    v[0] = w->syn[i].id;
    v[1] = w->syn[i].title;
    v[2] = w->syn[i].def;
}

static void wn_query(void *ctx, size_t q, char *idbuf, size_t idcap, const char *v[3])
{
    const struct wn *w = ctx;
    (void)idbuf, (void)idcap;
    v[0] = w->query_ids[q];
    v[1] = w->query_texts[q];
    v[2] = w->query_words[q];
}

static int wn_judged(void *ctx, size_t k, size_t *q, size_t *d)
{
    const struct wn *w = ctx;
    *q = w->pairs[k].query;
    *d = w->pairs[k].synset;
    return 1;
}

static void wn_release(struct wn *w)
{
    kd_arena_release(&w->strings);
    free(w->syn);
    free(w->words);
    free(w->ex);
    free(w->lemma_keys);
    free(w->lemma_senses);
    kd_str_index_release(&w->lemmas);
    free(w->query_texts);
    free(w->query_ids);
    free(w->query_words);
    free(w->query_senses);
    kd_str_index_release(&w->queries);
    free(w->pairs);
}

kd_status kd_wordnet_convert(const struct kd_wordnet_options *o, struct kd_wordnet_stats *stats,
                             struct kd_error *err)
{
    kd_status st = KD_OK;
    struct wn w = {0};
    struct kd_wordnet_stats local;
    unsigned char *split = NULL;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!o || !o->wordnet_dir || !o->out_dir)
        return kd_error_set(err, KD_ERR_ARG, "wordnet: missing the WordNet or the output directory");
    if (!(o->dev_frac >= 0 && o->test_frac >= 0 && o->dev_frac + o->test_frac <= 1))
        return kd_error_set(err, KD_ERR_ARG,
                            "wordnet: dev and test shares %g and %g must be >= 0 with a sum <= 1",
                            o->dev_frac, o->test_frac);
    if ((st = kd_str_index_init(&w.lemmas, 1 << 16, err)))
        goto done;
    static const char *const files[] = {"noun", "verb", "adj", "adv"};
    static const char pos[] = {'n', 'v', 'a', 'r'};
    for (int f = 0; f < 4; f++)
        if ((st = read_data(&w, o->wordnet_dir, files[f], pos[f], err)))
            goto done;
    stats->docs = w.n_syn;
    stats->examples = w.n_ex;
    if ((st = make_queries(&w, stats, err)))
        goto done;
    if (w.n_pairs)
        qsort(w.pairs, w.n_pairs, sizeof *w.pairs, pair_cmp);

    /* The split: shuffle, then test, dev, and the rest for train. */
    size_t nq = w.n_queries;
    if ((st = kd_beir_assign_splits(nq, o->seed, o->dev_frac, o->test_frac, &split, stats->split, err)))
        goto done;
    double senses = 0;
    for (size_t q = 0; q < nq; q++)
        senses += (double)w.query_senses[q];
    stats->queries = nq;
    stats->mean_senses = nq ? senses / (double)nq : 0.0;

    struct kd_beir_rows rows = {w.n_syn, nq, w.n_pairs, &w, wn_doc, wn_query, wn_judged};
    st = kd_beir_write_dir(o->out_dir, &rows, split, err);
done:
    free(split);
    wn_release(&w);
    return st;
}

/* data: hashed text features: the settings line and its parser, the exact
 * keys of the definition, thread-count independence, and equality with the
 * numpy reference (scripts/features_numpy.py) on a few hundred real texts. */
#include "beir_test.h"

#include <xxhash.h>

static struct kd_text_settings settings(unsigned log2, uint64_t seed, unsigned words,
                                        unsigned cmin, unsigned cmax)
{
    return (struct kd_text_settings){log2, seed, words, cmin, cmax};
}

/* The features of one NUL-terminated text, through the batch API. */
static struct kd_features one(const struct kd_text_settings *s, const char *text)
{
    struct kd_features f;
    struct kd_error err = {0};
    cr_assert_eq(kd_featurize(s, &text, NULL, 1, 1, &f, &err), KD_OK, "%s", err.msg);
    return f;
}

static void expect_same(const struct kd_text_settings *a, const struct kd_text_settings *b)
{
    cr_assert_eq(a->log2_buckets, b->log2_buckets);
    cr_assert_eq(a->seed, b->seed);
    cr_assert_eq(a->word_ngrams, b->word_ngrams);
    cr_assert_eq(a->char_min, b->char_min);
    cr_assert_eq(a->char_max, b->char_max);
}

static uint32_t key_id(const char *key, size_t len, uint64_t seed, unsigned log2)
{
    return (uint32_t)(XXH3_64bits_withSeed(key, len, seed) & ((1u << log2) - 1));
}

Test(data, text_settings_default_line_and_round_trip)
{
    struct kd_text_settings s, back;
    struct kd_error err = {0};
    char line[KD_TEXT_SETTINGS_MAX];
    kd_text_settings_init(&s);
    kd_text_settings_format(&s, line);
    cr_assert_str_eq(line, "kd-text-v1 buckets=18 seed=1 words=2 chars=3-5");
    cr_assert_eq(kd_text_settings_parse(line, &back, &err), KD_OK, "%s", err.msg);
    expect_same(&s, &back);

    s = settings(31, UINT64_MAX, 0, 1, 16);
    kd_text_settings_format(&s, line);
    cr_assert_str_eq(line, "kd-text-v1 buckets=31 seed=18446744073709551615 words=0 chars=1-16");
    cr_assert_eq(kd_text_settings_parse(line, &back, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(back.seed, UINT64_MAX);
    cr_assert_eq(back.char_max, 16);

    s = settings(10, 0, 3, 0, 0);
    kd_text_settings_format(&s, line);
    cr_assert_str_eq(line, "kd-text-v1 buckets=10 seed=0 words=3 chars=0");
    cr_assert_eq(kd_text_settings_parse("  kd-text-v1 chars=0  words=3 seed=0 buckets=10 ", &back,
                                        &err),
                 KD_OK, "any order, any spacing: %s", err.msg);
    expect_same(&s, &back);
}

static void expect_parse_error(const char *line, const char *msg)
{
    struct kd_text_settings s = settings(5, 5, 5, 5, 5);
    struct kd_error err = {0};
    cr_assert_eq(kd_text_settings_parse(line, &s, &err), KD_ERR_FORMAT, "accepted '%s'", line);
    cr_assert_str_eq(err.msg, msg);
    cr_assert_eq(s.log2_buckets, 5, "settings are only written on success");
}

Test(data, text_settings_parser_refuses_unknown_or_malformed_settings)
{
    expect_parse_error("buckets=18 seed=1 words=2 chars=3-5",
                       "text settings 'buckets=18 seed=1 words=2 chars=3-5': expected "
                       "'kd-text-v1' first");
    expect_parse_error("kd-text-v2 buckets=18",
                       "text settings 'kd-text-v2 buckets=18': version 'kd-text-v2' is not "
                       "supported (this kd reads kd-text-v1)");
    expect_parse_error("kd-text-v1 buckets=18 seed=1 words=2 chars=3-5 lower=1",
                       "text settings 'kd-text-v1 buckets=18 seed=1 words=2 chars=3-5 lower=1': "
                       "unknown setting 'lower' (expected buckets, seed, words, chars)");
    expect_parse_error("kd-text-v1 buckets=18 seed=1 words=2",
                       "text settings 'kd-text-v1 buckets=18 seed=1 words=2': chars is missing");
    expect_parse_error("kd-text-v1 buckets=18 seed=1 words=2 chars=3-5 seed=2",
                       "text settings 'kd-text-v1 buckets=18 seed=1 words=2 chars=3-5 seed=2': "
                       "seed is given twice");
    expect_parse_error("kd-text-v1 buckets=32 seed=1 words=2 chars=3-5",
                       "text settings 'kd-text-v1 buckets=32 seed=1 words=2 chars=3-5': buckets "
                       "must be an integer from 1 to 31 (log2 of the bucket count), found '32'");
    expect_parse_error("kd-text-v1 buckets=18 seed=-1 words=2 chars=3-5",
                       "text settings 'kd-text-v1 buckets=18 seed=-1 words=2 chars=3-5': seed "
                       "must be an unsigned 64-bit integer, found '-1'");
    expect_parse_error("kd-text-v1 buckets=18 seed=18446744073709551616 words=2 chars=3-5",
                       "text settings 'kd-text-v1 buckets=18 seed=18446744073709551616 words=2 "
                       "chars=3-5': seed must be an unsigned 64-bit integer, found "
                       "'18446744073709551616'");
    expect_parse_error("kd-text-v1 buckets=18 seed=1 words=9 chars=3-5",
                       "text settings 'kd-text-v1 buckets=18 seed=1 words=9 chars=3-5': words "
                       "must be an integer from 0 (off) to 8, found '9'");
    expect_parse_error("kd-text-v1 buckets=18 seed=1 words=2 chars=5-3",
                       "text settings 'kd-text-v1 buckets=18 seed=1 words=2 chars=5-3': chars "
                       "must be MIN-MAX with 1 <= MIN <= MAX <= 16, or 0 for none, found '5-3'");
    expect_parse_error("kd-text-v1 buckets=18 seed=1 words=2 chars=",
                       "text settings 'kd-text-v1 buckets=18 seed=1 words=2 chars=': chars must "
                       "be MIN-MAX with 1 <= MIN <= MAX <= 16, or 0 for none, found ''");
    expect_parse_error("kd-text-v1 buckets 18",
                       "text settings 'kd-text-v1 buckets 18': expected key=value, found "
                       "'buckets'");
    expect_parse_error("kd-text-v1 buckets=18 seed=1 words=0 chars=0",
                       "text settings 'kd-text-v1 buckets=18 seed=1 words=0 chars=0': words=0 "
                       "and chars=0 leave no features");
}

Test(data, text_settings_check_names_the_bad_field)
{
    struct kd_error err = {0};
    struct kd_text_settings s = settings(0, 1, 2, 3, 5);
    struct kd_features f;
    const char *t = "x";
    cr_assert_eq(kd_featurize(&s, &t, NULL, 1, 1, &f, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "text features: log2 buckets must be 1 to 31, not 0");
    s = settings(18, 1, 2, 0, 5);
    cr_assert_eq(kd_text_settings_check(&s, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "text features: character n-grams 0-5: need 1 <= min <= max <= 16 "
                              "(or 0-0 for none)");
}

Test(data, features_are_the_hashed_keys_of_the_definition)
{
    /* Words "hi" and "yo" (case and punctuation gone); per word: its word
     * n-grams, then the 3-grams of "<hi>" and "<yo>". */
    struct kd_text_settings s = settings(20, 7, 2, 3, 3);
    struct kd_features f = one(&s, "Hi, YO!");
    const char *keys[] = {"whi", "c<hi", "chi>", "wyo", "whi yo", "c<yo", "cyo>"};
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.nnz, 7);
    cr_assert_eq(f.offsets[1], 7);
    cr_assert_eq(f.buckets, 1u << 20);
    for (int k = 0; k < 7; k++)
        cr_assert_eq(f.ids[k], key_id(keys[k], strlen(keys[k]), 7, 20), "feature %d (%s)", k,
                     keys[k]);
    kd_features_release(&f);
}

Test(data, features_keep_utf8_whole_and_fold_only_ascii)
{
    /* "Élan" is 4 characters, 5 bytes; É is not folded; "<Élan>" has 6
     * characters, so 2-grams: 5, and the whole marked word is one 6-gram. */
    struct kd_text_settings s = settings(16, 3, 1, 2, 6);
    struct kd_features f = one(&s, "\xc3\x89LAN\xe2\x80\x94x");
    /* The em dash (U+2014) is made of bytes >= 0x80: part of the word. */
    cr_assert_eq(f.nnz, 1 + (7 + 6 + 5 + 4 + 3), "one word of 6 characters, marked 8");
    kd_features_release(&f);
    s = settings(16, 3, 1, 2, 2);
    f = one(&s, "\xc3\x89lan");
    const char *w = "w\xc3\x89lan";
    cr_assert_eq(f.nnz, 1 + 5);
    cr_assert_eq(f.ids[0], key_id(w, strlen(w), 3, 16));
    const char *c2[] = {"c<\xc3\x89", "c\xc3\x89l", "cla", "can", "cn>"};
    for (int k = 0; k < 5; k++)
        cr_assert_eq(f.ids[1 + k], key_id(c2[k], strlen(c2[k]), 3, 16), "2-gram %d", k);
    kd_features_release(&f);
    s = settings(16, 3, 0, 6, 6);
    f = one(&s, "\xc3\x89lan");
    const char *whole = "c<\xc3\x89lan>";
    cr_assert_eq(f.nnz, 1);
    cr_assert_eq(f.ids[0], key_id(whole, strlen(whole), 3, 16), "the whole marked word");
    kd_features_release(&f);
}

Test(data, features_repeat_and_count_exactly)
{
    struct kd_text_settings s;
    kd_text_settings_init(&s);
    const char *texts[] = {"", "  ,;  ", "a", "the the", "x y z w"};
    struct kd_features f;
    struct kd_error err = {0};
    cr_assert_eq(kd_featurize(&s, texts, NULL, 5, 1, &f, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(f.offsets[1] - f.offsets[0], 0, "an empty text has no features");
    cr_assert_eq(f.offsets[2] - f.offsets[1], 0, "nor has one without words");
    cr_assert_eq(f.offsets[3] - f.offsets[2], 2, "'a': the word and '<a>'");
    /* "the the": w the, <th the he>, w the, w the the, <th the he> */
    size_t b = f.offsets[3];
    cr_assert_eq(f.offsets[4] - b, 2 * (1 + 6) + 1);
    cr_assert_eq(f.ids[b], f.ids[b + 7], "a repeated word counts twice");
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(f.offsets[i + 1] - f.offsets[i],
                     kd_featurize_count(&s, texts[i], strlen(texts[i])));
    kd_features_release(&f);
    kd_features_release(&f);
    kd_features_release(NULL);
}

Test(data, features_do_not_depend_on_the_thread_count)
{
    enum { N = 20000 };
    char **texts = malloc(N * sizeof *texts);
    struct kd_rng rng;
    kd_rng_seed(&rng, 3);
    for (int i = 0; i < N; i++) {
        size_t len = kd_rng_below(&rng, 200);
        texts[i] = malloc(len + 1);
        for (size_t k = 0; k < len; k++) {
            /* Letters, spaces and now and then a high byte. */
            uint64_t r = kd_rng_below(&rng, 40);
            texts[i][k] = r < 26 ? (char)('a' + r) : r < 36 ? ' ' : (char)(0x80 + r);
        }
        texts[i][len] = '\0';
    }
    struct kd_text_settings s;
    kd_text_settings_init(&s);
    struct kd_features a, b;
    struct kd_error err = {0};
    cr_assert_eq(kd_featurize(&s, (const char *const *)texts, NULL, N, 1, &a, &err), KD_OK);
    cr_assert_eq(kd_featurize(&s, (const char *const *)texts, NULL, N, 3, &b, &err), KD_OK);
    cr_assert_eq(a.nnz, b.nnz);
    cr_assert_eq(memcmp(a.offsets, b.offsets, (N + 1) * sizeof *a.offsets), 0);
    cr_assert_eq(memcmp(a.ids, b.ids, a.nnz * sizeof *a.ids), 0);
    for (size_t k = 0; k < a.nnz; k++)
        cr_assert_lt(a.ids[k], a.buckets);
    /* The single-text call gives the same ids. */
    uint32_t *ids = malloc((a.offsets[5] - a.offsets[4] + 1) * sizeof *ids);
    cr_assert_eq(kd_featurize_text(&s, texts[4], strlen(texts[4]), ids),
                 a.offsets[5] - a.offsets[4]);
    cr_assert_eq(memcmp(ids, a.ids + a.offsets[4], (a.offsets[5] - a.offsets[4]) * sizeof *ids), 0);
    free(ids);
    kd_features_release(&a);
    kd_features_release(&b);
    for (int i = 0; i < N; i++)
        free(texts[i]);
    free(texts);
}

Test(data, features_of_a_long_text_match_the_short_path)
{
    /* Past the 4 KiB stack scratch of kd_featurize_text. */
    size_t len = 9000;
    char *t = malloc(len + 1);
    for (size_t k = 0; k < len; k++)
        t[k] = k % 7 == 6 ? ' ' : (char)('a' + k % 26);
    t[len] = '\0';
    struct kd_text_settings s;
    kd_text_settings_init(&s);
    struct kd_features f = one(&s, t);
    uint32_t *ids = malloc(f.nnz * sizeof *ids);
    cr_assert_eq(kd_featurize_text(&s, t, len, ids), f.nnz);
    cr_assert_eq(memcmp(ids, f.ids, f.nnz * sizeof *ids), 0);
    free(ids);
    free(t);
    kd_features_release(&f);
}

/* The fixture's lines, as the script reads them. */
static size_t read_lines(const char *path, char **buf, char ***lines, size_t **lens)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(*buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    size_t count = 0;
    for (long i = 0; i < n; i++)
        count += (*buf)[i] == '\n';
    *lines = malloc((count + 1) * sizeof **lines);
    *lens = malloc((count + 1) * sizeof **lens);
    size_t k = 0;
    char *p = *buf, *end = *buf + n;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        (*lines)[k] = p;
        (*lens)[k] = (size_t)(e - p) - (e > p && e[-1] == '\r');
        k++;
        p = nl ? nl + 1 : end;
    }
    return k;
}

static void *read_raw(const char *path, size_t *bytes)
{
    char *buf = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_read_file(path, &buf, bytes, &err), KD_OK, "%s", err.msg);
    return buf;
}

static void crosscheck(const char *root, const char *line)
{
    struct kd_text_settings s;
    struct kd_error err = {0};
    cr_assert_eq(kd_text_settings_parse(line, &s, &err), KD_OK, "%s", err.msg);
    char texts[512], cmd[2048];
    snprintf(texts, sizeof texts, "%s/tests/data/fixtures/texts.txt", root);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/features_numpy.py --settings '%s' %s %s %s",
             root, line, texts, beir_path("ids.u32"), beir_path("offsets.u64"));
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);

    char *buf, **lines;
    size_t *lens;
    size_t n = read_lines(texts, &buf, &lines, &lens);
    cr_assert_gt(n, 250);
    struct kd_features f;
    cr_assert_eq(kd_featurize(&s, (const char *const *)lines, lens, n, 2, &f, &err), KD_OK, "%s",
                 err.msg);
    size_t ib, ob;
    uint32_t *ids = read_raw(beir_path("ids.u32"), &ib);
    uint64_t *off = read_raw(beir_path("offsets.u64"), &ob);
    cr_assert_eq(ob, (n + 1) * 8);
    for (size_t i = 0; i <= n; i++)
        cr_assert_eq(off[i], f.offsets[i], "text %zu (line %zu): offsets differ", i, i + 1);
    cr_assert_eq(ib, f.nnz * 4);
    for (size_t k = 0; k < f.nnz; k++)
        cr_assert_eq(ids[k], f.ids[k], "feature %zu differs", k);
    free(ids);
    free(off);
    kd_features_release(&f);
    free(buf);
    free(lines);
    free(lens);
}

Test(data, features_equal_the_numpy_reference_on_real_texts, .init = beir_setup,
     .fini = beir_teardown)
{
    const char *root = kd_root();
    if (system("/usr/bin/python3 -c 'import xxhash, numpy' 2>/dev/null") != 0)
        cr_skip_test("python3-xxhash or python3-numpy is not installed");
    crosscheck(root, "kd-text-v1 buckets=18 seed=1 words=2 chars=3-5");
    crosscheck(root, "kd-text-v1 buckets=12 seed=987654321 words=3 chars=1-6");
    crosscheck(root, "kd-text-v1 buckets=20 seed=0 words=0 chars=2-2");
    crosscheck(root, "kd-text-v1 buckets=7 seed=5 words=1 chars=0");
}

/* data: a dictd dictionary to BEIR on a tiny made-up dictionary
 * (tests/data/fixtures/dictd: tiny.index, tiny.dict and the same data
 * gzip-compressed in tiny.dict.dz): what becomes a document, a query, a
 * judgement; what is dropped or merged; dictd's base64 numbers; the message
 * of every malformed input. */
#include "beir_test.h"

static char *slurp(const char *path)
{
    char *buf = NULL;
    size_t len;
    struct kd_error err = {0};
    cr_assert_eq(kd_read_file(path, &buf, &len, &err), KD_OK, "%s", err.msg);
    return buf;
}

static void expect_line(const char *text, const char *line)
{
    char want[1024];
    snprintf(want, sizeof want, "%s\n", line);
    cr_assert_not_null(strstr(text, want), "missing line: %s\nin:\n%s", line, text);
}

static kd_status convert(const char *index, const char *dict, struct kd_dictd_stats *stats,
                         struct kd_error *err)
{
    struct kd_dictd_options o;
    kd_dictd_options_init(&o);
    o.index_path = index;
    o.dict_path = dict;
    o.out_dir = beir_path("out");
    return kd_dictd_convert(&o, stats, err);
}

static void fixture(char *index, char *dict, size_t n, const char *dict_name)
{
    snprintf(index, n, "%s/tests/data/fixtures/dictd/tiny.index", kd_root());
    snprintf(dict, n, "%s/tests/data/fixtures/dictd/%s", kd_root(), dict_name);
}

Test(data, dictd_fixture_gives_entries_definitions_and_judgements, .init = beir_setup,
     .fini = beir_teardown)
{
    char index[512], dict[512];
    fixture(index, dict, sizeof index, "tiny.dict.dz");
    struct kd_dictd_stats st;
    struct kd_error err = {0};
    cr_assert_eq(convert(index, dict, &st, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(st.headwords, 14, "16 lines, two of them the database's own");
    cr_assert_eq(st.docs, 13, "cache and cache memory share an entry");
    cr_assert_eq(st.short_defs, 1, "store's 'See {cache}.' has two words");
    cr_assert_eq(st.merged, 1, "foo and bar have the same definition");
    cr_assert_eq(st.queries, 11);
    cr_assert_eq(st.split[KD_BEIR_TEST], 1);
    cr_assert_eq(st.split[KD_BEIR_DEV], 1);
    cr_assert_eq(st.split[KD_BEIR_TRAIN], 9);
    /* Words of the 11 queries, counted by hand below ("<memory>" is one,
     * "n." is one): 12 + 8 + 7 + 6 + 12 + 9 + 11 + 9 + 10 + 7 + 7. */
    cr_assert_float_eq(st.query_words, 98.0 / 11.0, 1e-12);
    /* Words of the 13 document texts: 10 (cache: "2020-01-01" is three) + 6
     * (bit) + 3 (bar) + 5 (café) + 3 (compiler). */
    cr_assert_float_eq(st.doc_words, 27.0 / 13.0, 1e-12);

    char *corpus = slurp(beir_path("out/corpus.jsonl"));
    /* The heading lines dropped; the paragraphs after the definition joined. */
    expect_line(corpus, "{\"_id\": \"e93\", \"title\": \"cache, cache memory\", \"text\": \"A cache "
                        "hit avoids the slow path. (2020-01-01)\"}");
    expect_line(corpus, "{\"_id\": \"e351\", \"title\": \"store\", \"text\": \"\"}");
    /* The fourth field is the headword as shown. */
    expect_line(corpus, "{\"_id\": \"e484\", \"title\": \"AT&T\", \"text\": \"\"}");
    /* No heading (its first line is not a headword): the definition is
     * the first paragraph, all of it. */
    expect_line(corpus, "{\"_id\": \"e536\", \"title\": \"widget\", \"text\": \"\"}");
    expect_line(corpus, "{\"_id\": \"e603\", \"title\": \"caf\xc3\xa9\", \"text\": \"The "
                        "na\xc3\xafve visitor orders tea.\"}");
    cr_assert_null(strstr(corpus, "00-database"));
    cr_assert_null(strstr(corpus, "made-up dictionary"));
    free(corpus);

    char *queries = slurp(beir_path("out/queries.jsonl"));
    /* "Cache memory" goes whole (the longest headword first, case ignored). */
    expect_line(queries, "{\"_id\": \"q93\", \"text\": \"<memory> A small fast memory holding "
                         "recent data; sits near the processor.\", \"word\": \"cache\"}");
    /* Whole words only: "bitmap" stays. */
    expect_line(queries, "{\"_id\": \"q263\", \"text\": \"A binary digit; a bitmap holds many "
                         "values.\", \"word\": \"bit\"}");
    expect_line(queries, "{\"_id\": \"q484\", \"text\": \"A telephone company; Labs made Unix.\", "
                         "\"word\": \"AT&T\"}");
    expect_line(queries, "{\"_id\": \"q536\", \"text\": \", n. A small gadget whose name is not "
                         "known. It is a .\", \"word\": \"widget\"}");
    /* A tab inside the definition is a space. */
    expect_line(queries, "{\"_id\": \"q603\", \"text\": \"A small place that serves coffee, not a "
                         "bar.\", \"word\": \"caf\xc3\xa9\"}");
    cr_assert_null(strstr(queries, "q351"), "store has no query");
    cr_assert_null(strstr(queries, "q417"), "bar's definition is foo's query");
    free(queries);

    /* It loads; the merged query has foo and bar as relevant. */
    struct kd_beir b;
    struct kd_beir_stats bs;
    cr_assert_eq(kd_beir_load(beir_path("out"), KD_BEIR_ALL, &b, &bs, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(b.n_docs, 13);
    cr_assert_eq(b.n_queries, 11);
    size_t q, d1, d2, rel = 0, total = 0;
    cr_assert(kd_beir_find_query(&b, "q375", &q));
    cr_assert(kd_beir_find_doc(&b, "e375", &d1));
    cr_assert(kd_beir_find_doc(&b, "e417", &d2));
    for (int s = 0; s < KD_BEIR_N_SPLITS; s++) {
        total += b.qrels[s].n_queries;
        cr_assert_eq(bs.skipped[s], 0);
        for (size_t r = 0; r < b.qrels[s].n; r++)
            if (b.qrels[s].rows[r].query == q) {
                cr_assert(b.qrels[s].rows[r].doc == d1 || b.qrels[s].rows[r].doc == d2);
                rel++;
            }
    }
    cr_assert_eq(total, 11, "every query is in exactly one split");
    cr_assert_eq(rel, 2);
    kd_beir_release(&b);
}

Test(data, dictd_plain_and_gzip_dictionaries_give_the_same_files, .init = beir_setup,
     .fini = beir_teardown)
{
    char index[512], dict[512];
    struct kd_error err = {0};
    const char *files[] = {"out/corpus.jsonl", "out/queries.jsonl", "out/qrels/train.tsv",
                           "out/qrels/dev.tsv", "out/qrels/test.tsv"};
    char *gz[5];
    fixture(index, dict, sizeof index, "tiny.dict.dz");
    cr_assert_eq(convert(index, dict, NULL, &err), KD_OK, "%s", err.msg);
    for (int k = 0; k < 5; k++)
        gz[k] = slurp(beir_path(files[k]));
    fixture(index, dict, sizeof index, "tiny.dict");
    cr_assert_eq(convert(index, dict, NULL, &err), KD_OK, "%s", err.msg);
    for (int k = 0; k < 5; k++) {
        char *raw = slurp(beir_path(files[k]));
        cr_assert_str_eq(raw, gz[k], "%s", files[k]);
        free(raw);
        free(gz[k]);
    }
}

Test(data, dictd_split_follows_the_seed, .init = beir_setup, .fini = beir_teardown)
{
    char index[512], dict[512];
    fixture(index, dict, sizeof index, "tiny.dict");
    struct kd_dictd_options o;
    kd_dictd_options_init(&o);
    o.index_path = index;
    o.dict_path = dict;
    o.out_dir = beir_path("out");
    struct kd_error err = {0};
    cr_assert_eq(kd_dictd_convert(&o, NULL, &err), KD_OK, "%s", err.msg);
    char *a = slurp(beir_path("out/qrels/test.tsv"));
    cr_assert_eq(kd_dictd_convert(&o, NULL, &err), KD_OK, "%s", err.msg);
    char *b = slurp(beir_path("out/qrels/test.tsv"));
    cr_assert_str_eq(a, b, "same seed, same split");
    int differs = 0;
    for (o.seed = 2; o.seed < 12 && !differs; o.seed++) {
        cr_assert_eq(kd_dictd_convert(&o, NULL, &err), KD_OK, "%s", err.msg);
        char *c = slurp(beir_path("out/qrels/test.tsv"));
        differs = strcmp(a, c) != 0;
        free(c);
    }
    cr_assert(differs, "other seeds give other splits");
    free(a);
    free(b);
    /* min_words: with 8, the definitions of 7 words or fewer are dropped
     * (store, foo, bar, AT&T, daemon, pixel), and nothing is merged. */
    o.seed = 1;
    o.min_words = 8;
    struct kd_dictd_stats st;
    cr_assert_eq(kd_dictd_convert(&o, &st, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(st.queries, 7);
    cr_assert_eq(st.short_defs, 6);
    cr_assert_eq(st.merged, 0);
}

/* Writes beir_dir/x.index (ni bytes of index) and beir_dir/x.dict (n bytes
 * of dict). */
static void write_pair_n(const char *index, size_t ni, const char *dict, size_t n)
{
    FILE *f = fopen(beir_path("x.index"), "wb");
    cr_assert_not_null(f);
    fwrite(index, 1, ni, f);
    fclose(f);
    f = fopen(beir_path("x.dict"), "wb");
    cr_assert_not_null(f);
    fwrite(dict, 1, n, f);
    fclose(f);
}

static void write_pair(const char *index, const char *dict, size_t n)
{
    write_pair_n(index, strlen(index), dict, n);
}

/* Large offsets: "+/" is 62 * 64 + 63 = 4031; the entry after 4031 bytes of
 * filler is document e4031. */
Test(data, dictd_base64_numbers_use_every_digit, .init = beir_setup, .fini = beir_teardown)
{
    static char dict[4100];
    memset(dict, '.', 4031);
    const char *entry = "word\n\n   Nine digits: 0 1 2 3 4 5 6 7 8.\n";
    memcpy(dict + 4031, entry, strlen(entry));
    char index[64];
    cr_assert_eq(strlen(entry), 41, "41 is 'p' in base64");
    snprintf(index, sizeof index, "word\t+/\tp\n");
    write_pair(index, dict, 4031 + strlen(entry));
    struct kd_error err = {0};
    struct kd_dictd_stats st;
    cr_assert_eq(convert(beir_path("x.index"), beir_path("x.dict"), &st, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(st.docs, 1);
    cr_assert_eq(st.queries, 1);
    char *q = slurp(beir_path("out/queries.jsonl"));
    cr_assert_str_eq(q, "{\"_id\": \"q4031\", \"text\": \"Nine digits: 0 1 2 3 4 5 6 7 8.\", "
                        "\"word\": \"word\"}\n");
    free(q);
}

static void expect_error_n(const char *index, size_t ni, const char *dict, size_t n,
                           const char *msg)
{
    write_pair_n(index, ni, dict, n);
    struct kd_error err = {0};
    cr_assert_eq(convert(beir_path("x.index"), beir_path("x.dict"), NULL, &err), KD_ERR_FORMAT,
                 "accepted: %s", index);
    char want[1024];
    snprintf(want, sizeof want, msg, beir_dir, beir_dir);
    cr_assert_str_eq(err.msg, want);
    struct stat sb;
    cr_assert_neq(stat(beir_path("out/corpus.jsonl"), &sb), 0, "nothing is written");
}

static void expect_error(const char *index, const char *dict, size_t n, const char *msg)
{
    expect_error_n(index, strlen(index), dict, n, msg);
}

#define ENTRY "word\n\n   A short made-up definition.\n"

Test(data, dictd_broken_index_lines_name_file_and_line, .init = beir_setup,
     .fini = beir_teardown)
{
    /* ENTRY is 37 bytes: "l" in base64. */
    const size_t n = strlen(ENTRY);
    cr_assert_eq(n, 37);
    expect_error("word\tA\tl\nother\tA\n", ENTRY, n,
                 "%s/x.index:2: expected 3 or 4 tab-separated fields (headword, offset, length, "
                 "headword as shown), found 2");
    expect_error("word\tA\tl\tw\tx\n", ENTRY, n,
                 "%s/x.index:1: expected 3 or 4 tab-separated fields (headword, offset, length, "
                 "headword as shown), found 5");
    expect_error("word\tA!\tl\n", ENTRY, n,
                 "%s/x.index:1: the offset 'A!' is not a dictd base64 number (1 to 10 of A-Z a-z "
                 "0-9 + /)");
    expect_error("word\tA\t\n", ENTRY, n,
                 "%s/x.index:1: the length '' is not a dictd base64 number (1 to 10 of A-Z a-z "
                 "0-9 + /)");
    expect_error("word\tAAAAAAAAAAA\tl\n", ENTRY, n,
                 "%s/x.index:1: the offset 'AAAAAAAAAAA' is not a dictd base64 number (1 to 10 "
                 "of A-Z a-z 0-9 + /)");
    expect_error("word\tA\tm\n", ENTRY, n,
                 "%s/x.index:1: the entry of 'word' (bytes 0 to 38) ends past the end of "
                 "%s/x.dict (37 bytes uncompressed)");
    expect_error("word\t//////////\tA\n", ENTRY, n,
                 "%s/x.index:1: the entry of 'word' (bytes 1152921504606846975 to "
                 "1152921504606846975) ends past the end of %s/x.dict (37 bytes uncompressed)");
    expect_error("\tA\tl\n", ENTRY, n, "%s/x.index:1: empty headword");
    expect_error("word\tA\tl\t\n", ENTRY, n, "%s/x.index:1: empty headword");
    expect_error("w\xc3(rd\tA\tl\n", ENTRY, n,
                 "%s/x.index:1: the headword is not valid UTF-8 (at byte 2)");
    static const char nul[] = "00-database-short\tA\tB\nword\tA\tl\nwor\0d\tA\tl\n";
    expect_error_n(nul, sizeof nul - 1, ENTRY, n,
                 "%s/x.index:3: a NUL byte in the line");
    expect_error("word\tA\tl\nwords\tA\tk\n", ENTRY, n,
                 "%s/x.index:2: the entry at byte 0 is 36 bytes long here but 37 bytes long on "
                 "line 1");
    expect_error("00-database-short\tA\tl\n00databaseurl\tA\tB\n", ENTRY, n,
                 "%s/x.index has no entries");
    expect_error("", ENTRY, n, "%s/x.index has no entries");
}

Test(data, dictd_broken_entries_and_files_are_named, .init = beir_setup, .fini = beir_teardown)
{
    /* Invalid UTF-8 at byte 5 of the data: the entry's headword and line. */
    expect_error("00-database-url\tA\tB\nword\tA\tJ\n", "word\n\xff\n\n\n\n", 10,
                 "%s/x.dict: the entry of 'word' (%s/x.index:2) is not valid UTF-8 at byte 5");
    /* A gzip stream cut short. */
    char index[512], dict[512];
    fixture(index, dict, sizeof index, "tiny.dict.dz");
    FILE *f = fopen(dict, "rb");
    cr_assert_not_null(f);
    char gz[2048];
    size_t n = fread(gz, 1, sizeof gz, f);
    fclose(f);
    cr_assert_gt(n, 100);
    f = fopen(beir_path("cut.dict.dz"), "wb");
    fwrite(gz, 1, n / 2, f);
    fclose(f);
    struct kd_error err = {0};
    cr_assert_eq(convert(index, beir_path("cut.dict.dz"), NULL, &err), KD_ERR_FORMAT);
    char want[1024];
    snprintf(want, sizeof want, "%s/cut.dict.dz: truncated gzip stream: it ends after 420 bytes "
             "of data", beir_dir);
    cr_assert_str_eq(err.msg, want);
    /* Missing files. */
    cr_assert_eq(convert(index, beir_path("none.dict"), NULL, &err), KD_ERR_IO);
    snprintf(want, sizeof want, "%s/none.dict: cannot open: No such file or directory",
             beir_dir);
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(convert(beir_path("none.index"), dict, NULL, &err), KD_ERR_IO);
    snprintf(want, sizeof want, "%s/none.index: cannot open: No such file or directory",
             beir_dir);
    cr_assert_str_eq(err.msg, want);
    /* Options. */
    struct kd_dictd_options o;
    kd_dictd_options_init(&o);
    cr_assert_eq(kd_dictd_convert(&o, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "dictd: missing the index, the dictionary or the output directory");
    o.index_path = index, o.dict_path = dict, o.out_dir = beir_path("out");
    o.test_frac = 0.7, o.dev_frac = 0.5;
    cr_assert_eq(kd_dictd_convert(&o, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "dictd: dev and test shares 0.5 and 0.7 must be >= 0 with a sum <= 1");
}

Test(data, dictd_real_foldoc_conversion_loads_without_errors, .init = beir_setup,
     .fini = beir_teardown)
{
    const char *index = "/usr/share/dictd/foldoc.index", *dict = "/usr/share/dictd/foldoc.dict.dz";
    struct stat sb;
    if (stat(index, &sb) != 0 || stat(dict, &sb) != 0)
        cr_skip_test("FOLDOC is not installed (apt-get install dict-foldoc)");
    struct kd_dictd_stats st;
    struct kd_error err = {0};
    cr_assert_eq(convert(index, dict, &st, &err), KD_OK, "%s", err.msg);
    cr_assert_gt(st.docs, 10000);
    cr_assert_gt(st.queries, 10000);
    struct kd_beir b;
    struct kd_beir_stats bs;
    cr_assert_eq(kd_beir_load(beir_path("out"), KD_BEIR_ALL, &b, &bs, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(b.n_docs, st.docs);
    cr_assert_eq(b.n_queries, st.queries);
    for (int s = 0; s < KD_BEIR_N_SPLITS; s++) {
        cr_assert_eq(b.qrels[s].n_queries, st.split[s]);
        cr_assert_eq(bs.skipped[s], 0);
        cr_assert_eq(bs.duplicates[s], 0);
    }
    kd_beir_release(&b);
}

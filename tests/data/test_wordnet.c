/* data: WordNet to BEIR on a tiny wndb fixture (what becomes a document, a
 * query, a judgement; what is dropped or merged), its messages for broken
 * lines, the atomic line writer, and the real conversion loading cleanly. */
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
    cr_assert_not_null(strstr(text, want), "missing line: %s", line);
}

static void convert(const char *wordnet, struct kd_wordnet_stats *stats)
{
    struct kd_wordnet_options o;
    kd_wordnet_options_init(&o);
    o.wordnet_dir = wordnet;
    o.out_dir = beir_dir;
    struct kd_error err = {0};
    cr_assert_eq(kd_wordnet_convert(&o, stats, &err), KD_OK, "%s", err.msg);
}

Test(data, wordnet_fixture_gives_senses_examples_and_judgements, .init = beir_setup,
     .fini = beir_teardown)
{
    char wn[512];
    snprintf(wn, sizeof wn, "%s/tests/data/fixtures/wordnet", kd_root());
    struct kd_wordnet_stats st;
    convert(wn, &st);
    cr_assert_eq(st.docs, 13);
    cr_assert_eq(st.examples, 16);
    cr_assert_eq(st.single_sense, 2, "solitude and able have one sense each");
    cr_assert_eq(st.merged, 1, "'he wrote a play' is in both senses of play");
    cr_assert_eq(st.queries, 13);
    cr_assert_eq(st.split[KD_BEIR_TEST], 1);
    cr_assert_eq(st.split[KD_BEIR_DEV], 1);
    cr_assert_eq(st.split[KD_BEIR_TRAIN], 11);
    cr_assert_float_eq(st.mean_senses, 2.0, 1e-12);
    cr_assert_eq(st.unmatched, 1, "'he sent Smith in for Jones' does not say substitution");

    char *corpus = slurp(beir_path("corpus.jsonl"));
    expect_line(corpus, "{\"_id\": \"n00001000\", \"title\": \"bank, depository financial "
                        "institution\", \"text\": \"a financial institution that accepts "
                        "deposits\"}");
    expect_line(corpus, "{\"_id\": \"n00006000\", \"title\": \"substitution\", \"text\": \"the "
                        "act of putting one thing in the place of another\"}");
    expect_line(corpus, "{\"_id\": \"n00007000\", \"title\": \"substitution\", \"text\": "
                        "\"(chemistry) the replacement of one atom by another (as in the phrase "
                        "\\\"atom swap\\\")\"}");
    expect_line(corpus, "{\"_id\": \"a00200000\", \"title\": \"handy, ready to hand\", \"text\": "
                        "\"easy to reach\"}");
    expect_line(corpus, "{\"_id\": \"r00400000\", \"title\": \"a cappella\", \"text\": \"without "
                        "musical accompaniment\"}");
    char *queries = slurp(beir_path("queries.jsonl"));
    expect_line(queries, "{\"_id\": \"n00004000-2\", \"text\": \"the play is the thing\", "
                         "\"word\": \"play\"}");
    expect_line(queries, "{\"_id\": \"n00006000-1\", \"text\": \"he sent Smith in for Jones\", "
                         "\"word\": \"substitution\"}");
    expect_line(queries, "{\"_id\": \"v00010000-2\", \"text\": \"The patient is breathing\", "
                         "\"word\": \"breathe\"}");
    cr_assert_null(strstr(queries, "solitude"));
    cr_assert_null(strstr(queries, "able to swim"));
    free(corpus);
    free(queries);

    /* It loads; the merged query has both senses of "play" as relevant. */
    struct kd_beir b;
    struct kd_beir_stats bs;
    struct kd_error err = {0};
    cr_assert_eq(kd_beir_load(beir_dir, KD_BEIR_ALL, &b, &bs, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(b.n_docs, 13);
    cr_assert_eq(b.n_queries, 13);
    size_t q, d1, d2, rel = 0;
    cr_assert(kd_beir_find_query(&b, "n00004000-1", &q));
    cr_assert(kd_beir_find_doc(&b, "n00004000", &d1));
    cr_assert(kd_beir_find_doc(&b, "n00005000", &d2));
    size_t total = 0;
    for (int s = 0; s < KD_BEIR_N_SPLITS; s++) {
        total += b.qrels[s].n_queries;
        cr_assert_eq(bs.skipped[s], 0);
        for (size_t r = 0; r < b.qrels[s].n; r++)
            if (b.qrels[s].rows[r].query == q) {
                cr_assert(b.qrels[s].rows[r].doc == d1 || b.qrels[s].rows[r].doc == d2);
                rel++;
            }
    }
    cr_assert_eq(total, 13, "every query is in exactly one split");
    cr_assert_eq(rel, 2);
    kd_beir_release(&b);
}

Test(data, wordnet_split_follows_the_seed, .init = beir_setup, .fini = beir_teardown)
{
    char wn[512];
    snprintf(wn, sizeof wn, "%s/tests/data/fixtures/wordnet", kd_root());
    struct kd_wordnet_stats st;
    convert(wn, &st);
    char *a = slurp(beir_path("qrels/test.tsv"));
    convert(wn, &st);
    char *b = slurp(beir_path("qrels/test.tsv"));
    cr_assert_str_eq(a, b, "same seed, same split");
    struct kd_wordnet_options o;
    kd_wordnet_options_init(&o);
    o.wordnet_dir = wn;
    o.out_dir = beir_dir;
    int differs = 0;
    struct kd_error err = {0};
    for (o.seed = 2; o.seed < 12 && !differs; o.seed++) {
        cr_assert_eq(kd_wordnet_convert(&o, &st, &err), KD_OK, "%s", err.msg);
        char *c = slurp(beir_path("qrels/test.tsv"));
        differs = strcmp(a, c) != 0;
        free(c);
    }
    cr_assert(differs, "other seeds give other splits");
    free(a);
    free(b);
}

/* Writes the four data files into beir_dir/wn with the given noun file. */
static const char *broken_wordnet(const char *noun)
{
    mkdir(beir_path("wn"), 0755);
    const char *names[] = {"wn/data.noun", "wn/data.verb", "wn/data.adj", "wn/data.adv"};
    for (int k = 0; k < 4; k++) {
        FILE *f = fopen(beir_path(names[k]), "w");
        cr_assert_not_null(f);
        fputs(k == 0 ? noun : "", f);
        fclose(f);
    }
    return beir_path("wn");
}

static void expect_wordnet_error(const char *noun, const char *suffix)
{
    struct kd_wordnet_options o;
    kd_wordnet_options_init(&o);
    o.wordnet_dir = broken_wordnet(noun);
    o.out_dir = beir_path("out");
    struct kd_error err = {0};
    cr_assert_eq(kd_wordnet_convert(&o, NULL, &err), KD_ERR_FORMAT, "%s", err.msg);
    char want[512];
    snprintf(want, sizeof want, "%s/wn/data.noun:%s", beir_dir, suffix);
    cr_assert_str_eq(err.msg, want);
    struct stat sb;
    cr_assert_neq(stat(beir_path("out"), &sb), 0, "nothing is written");
}

Test(data, wordnet_broken_lines_name_file_and_line, .init = beir_setup, .fini = beir_teardown)
{
    expect_wordnet_error("  licence\n0000100x 06 n 01 bank 0 000 | x\n",
                         "2: expected an 8-digit synset offset, found '0000100x'");
    expect_wordnet_error("00001000 06 v 01 bank 0 000 | x\n",
                         "1: expected the synset type of this file, found 'v'");
    expect_wordnet_error("00001000 06 n 0g bank 0 000 | x\n",
                         "1: expected a 2-digit hexadecimal word count, found '0g'");
    expect_wordnet_error("00001000 06 n 03 bank 0 | x\n",
                         "1: expected 3 words with their lexical ids, found 1");
}

/* fuzz/corpus/wordnet/regress-duplicate-offset: two synsets at one offset
 * made two documents with one _id, a corpus kd_beir_load refuses. */
Test(data, wordnet_repeated_or_decreasing_offsets_are_refused, .init = beir_setup,
     .fini = beir_teardown)
{
    expect_wordnet_error("00001000 06 n 01 bank 0 000 | a; \"the bank\"\n"
                         "00001000 06 n 01 bank 1 000 | b; \"a bank\"\n",
                         "2: expected a synset offset after the previous line's 00001000, "
                         "found '00001000'");
    expect_wordnet_error("  licence\n00002000 06 n 01 bank 0 000 | a\n"
                         "00001000 06 n 01 bank 1 000 | b\n",
                         "3: expected a synset offset after the previous line's 00002000, "
                         "found '00001000'");
}

/* fuzz/corpus/wordnet/regress-tight-semicolons: definition segments are
 * joined by "; " where the gloss had a lone ';', so the definition can be
 * longer than the gloss; it was written into a buffer of the gloss's size
 * (a heap overflow under AddressSanitizer). */
Test(data, wordnet_definitions_separated_by_bare_semicolons_are_joined_whole, .init = beir_setup,
     .fini = beir_teardown)
{
    struct kd_wordnet_stats st;
    convert(broken_wordnet("00001000 06 n 01 bank 0 000 | a;b;c;d;e;f;\"the bank\";g\n"), &st);
    struct kd_beir b;
    struct kd_error err = {0};
    cr_assert_eq(kd_beir_load(beir_dir, KD_BEIR_ALL, &b, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(b.n_docs, 1);
    cr_assert_str_eq(b.doc_texts[0], "a; b; c; d; e; f; g");
    kd_beir_release(&b);
}

Test(data, wordnet_missing_file_is_named, .init = beir_setup, .fini = beir_teardown)
{
    struct kd_wordnet_options o;
    kd_wordnet_options_init(&o);
    o.wordnet_dir = beir_dir;
    o.out_dir = beir_path("out");
    struct kd_error err = {0};
    cr_assert_eq(kd_wordnet_convert(&o, NULL, &err), KD_ERR_IO);
    char want[512];
    snprintf(want, sizeof want, "cannot open '%s/data.noun': No such file or directory", beir_dir);
    cr_assert_str_eq(err.msg, want);
}

Test(data, wordnet_real_conversion_loads_without_errors, .init = beir_setup,
     .fini = beir_teardown)
{
    struct stat sb;
    if (stat(KD_WORDNET_DIR "/data.noun", &sb) != 0)
        cr_skip_test("WordNet is not installed (apt-get install wordnet-base)");
    struct kd_wordnet_stats st;
    convert(KD_WORDNET_DIR, &st);
    cr_assert_gt(st.docs, 100000);
    cr_assert_gt(st.queries, 30000);
    cr_assert_gt(st.mean_senses, 2.0);
    struct kd_beir b;
    struct kd_beir_stats bs;
    struct kd_error err = {0};
    cr_assert_eq(kd_beir_load(beir_dir, KD_BEIR_ALL, &b, &bs, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(b.n_docs, st.docs);
    cr_assert_eq(b.n_queries, st.queries);
    for (int s = 0; s < KD_BEIR_N_SPLITS; s++) {
        cr_assert_eq(b.qrels[s].n_queries, st.split[s]);
        cr_assert_eq(bs.skipped[s], 0);
        cr_assert_eq(bs.duplicates[s], 0);
    }
    kd_beir_release(&b);
}

Test(data, line_writer_escapes_json_and_refuses_bad_tsv, .init = beir_setup,
     .fini = beir_teardown)
{
    struct kd_line_writer w;
    struct kd_error err = {0};
    const char *path = beir_path("x.jsonl");
    cr_assert_eq(kd_line_writer_open(&w, path, &err), KD_OK, "%s", err.msg);
    const char *keys[] = {"_id", "text"};
    const char *vals[] = {"a\"b", "tab\there\nline \\ caf\xc3\xa9 \x01"};
    cr_assert_eq(kd_line_writer_json(&w, 2, keys, vals, &err), KD_OK, "%s", err.msg);
    const char *bad[] = {"x", "caf\xe9"};
    cr_assert_eq(kd_line_writer_json(&w, 2, keys, bad, &err), KD_ERR_ARG);
    char want[512];
    snprintf(want, sizeof want, "%s: the value of 'text' is not valid UTF-8", path);
    cr_assert_str_eq(err.msg, want);
    struct stat sb;
    cr_assert_neq(stat(path, &sb), 0, "nothing is visible before commit");
    cr_assert_eq(kd_line_writer_commit(&w, &err), KD_OK, "%s", err.msg);
    kd_line_writer_close(&w);
    char *text = slurp(path);
    cr_assert_str_eq(text, "{\"_id\": \"a\\\"b\", \"text\": \"tab\\there\\nline \\\\ caf\xc3\xa9 "
                           "\\u0001\"}\n");
    free(text);

    const char *tpath = beir_path("x.tsv");
    cr_assert_eq(kd_line_writer_open(&w, tpath, &err), KD_OK, "%s", err.msg);
    const char *f[] = {"q1", "d\t1", "1"};
    cr_assert_eq(kd_line_writer_tsv(&w, 3, f, &err), KD_ERR_ARG);
    snprintf(want, sizeof want, "%s: field 2 ('d\t1') holds a tab or a line break", tpath);
    cr_assert_str_eq(err.msg, want);
    kd_line_writer_close(&w); /* discarded: no file, no temporary left */
    cr_assert_neq(stat(tpath, &sb), 0);
    kd_line_writer_close(NULL);
}

Test(data, kd_convert_wordnet_writes_a_beir_directory, .init = beir_setup, .fini = beir_teardown)
{
    const char *kd = getenv("KD_BIN");
    if (!kd)
        cr_skip_test("KD_BIN not set (run through make test)");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s convert wordnet --wordnet %s/tests/data/fixtures/wordnet --seed 3 --out %s/set "
             ">%s 2>&1",
             kd, kd_root(), beir_dir, beir_path("log"));
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char *log = slurp(beir_path("log"));
    cr_assert_not_null(strstr(log, "13 documents (senses), 13 queries (train 11, dev 1, test 1)"),
                       "%s", log);
    free(log);
    struct kd_beir b;
    struct kd_error err = {0};
    cr_assert_eq(kd_beir_load(beir_path("set"), KD_BEIR_ALL, &b, NULL, &err), KD_OK, "%s", err.msg);
    kd_beir_release(&b);

    snprintf(cmd, sizeof cmd, "%s convert wordnet --seed -1 --out %s/x 2>%s", kd, beir_dir,
             beir_path("log"));
    cr_assert_eq(WEXITSTATUS(system(cmd)), 2);
    log = slurp(beir_path("log"));
    cr_assert_str_eq(log, "kd: convert: --seed expects an integer in [0, 9000000000000000], got '-1'\n");
    free(log);
}

/* data: BEIR loading (corpus, queries, qrels per split), what it counts,
 * and the exact file:line messages for broken files. */
#include "beir_test.h"

#define CORPUS                                                                                 \
    "{\"_id\": \"d1\", \"title\": \"T1\", \"text\": \"one\"}\n"                                   \
    "{\"_id\": \"d2\", \"text\": \"two\"}\n"
#define QUERIES "{\"_id\": \"q1\", \"text\": \"first\"}\n{\"_id\": \"q2\", \"text\": \"second\"}\n"
#define HEADER "query-id\tcorpus-id\tscore\n"
#define TRAIN HEADER "q1\td1\t1\n"

/* Writes the three files of a set wanting the train split only. */
static void make_set(const char *corpus, const char *queries, const char *train)
{
    beir_write("corpus.jsonl", corpus);
    beir_write("queries.jsonl", queries);
    beir_write("qrels/train.tsv", train);
}

/* Loads beir_dir, which must fail with `status` and exactly the message
 * beir_dir + "/" + suffix. */
static void expect_load_error(unsigned splits, kd_status status, const char *suffix)
{
    struct kd_error err = {0};
    struct kd_beir b;
    kd_status st = kd_beir_load(beir_dir, splits, &b, NULL, &err);
    char want[512];
    snprintf(want, sizeof want, "%s/%s", beir_dir, suffix);
    cr_assert_eq(st, status, "status %d, expected %d; msg: %s", (int)st, (int)status, err.msg);
    cr_assert_str_eq(err.msg, want);
    cr_assert_null(b.doc_ids);
    cr_assert_null(b.impl);
    kd_beir_release(&b);
}

static void expect_broken(const char *corpus, const char *queries, const char *train,
                          const char *suffix)
{
    make_set(corpus, queries, train);
    expect_load_error(KD_BEIR_WANT(KD_BEIR_TRAIN), KD_ERR_FORMAT, suffix);
}

Test(data, beir_fixture_loads_with_ids_titles_texts_and_sorted_qrels)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/data/fixtures/beir-mini", kd_root());
    struct kd_error err = {0};
    struct kd_beir b;
    struct kd_beir_stats stats;
    cr_assert_eq(kd_beir_load(dir, KD_BEIR_ALL, &b, &stats, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(b.n_docs, 4, "the blank line is skipped");
    cr_assert_str_eq(b.doc_ids[3], "4", "an integer _id becomes its decimal string");
    cr_assert_str_eq(b.doc_titles[0], "Bank");
    cr_assert_str_eq(b.doc_titles[2], "", "a missing title is empty");
    cr_assert_str_eq(b.doc_titles[3], "", "a null title is empty");
    cr_assert_str_eq(b.doc_texts[2], "caf\xc3\xa9 au lait, cr\xc3\xa8me br\xc3\xbbl\xc3\xa9" "e");
    cr_assert_eq(b.n_queries, 4);
    cr_assert_str_eq(b.query_texts[3], "o\xc3\xb9 est le caf\xc3\xa9 ?");

    size_t i = 99;
    cr_assert(kd_beir_find_doc(&b, "d2", &i));
    cr_assert_eq(i, 1);
    cr_assert(kd_beir_find_query(&b, "q4", &i));
    cr_assert_eq(i, 3);
    cr_assert_not(kd_beir_find_doc(&b, "q1", &i));
    cr_assert_not(kd_beir_find_doc(&b, "d", &i), "a prefix of an id is not the id");

    /* train: q1 (d1 1, d2 0), q2 (d2 2); q3 has only zeros: skipped. */
    const struct kd_beir_qrels *tr = &b.qrels[KD_BEIR_TRAIN];
    cr_assert(tr->loaded);
    cr_assert_eq(stats.rows[KD_BEIR_TRAIN], 5);
    cr_assert_eq(stats.skipped[KD_BEIR_TRAIN], 1);
    cr_assert_eq(tr->n, 3);
    cr_assert_eq(tr->n_queries, 2);
    cr_assert_eq(tr->rows[0].query, 0);
    cr_assert_eq(tr->rows[0].doc, 0);
    cr_assert_eq(tr->rows[0].score, 1);
    cr_assert_eq(tr->rows[1].doc, 1);
    cr_assert_eq(tr->rows[1].score, 0, "judged-not-relevant rows of a kept query stay");
    cr_assert_eq(tr->rows[2].query, 1);
    cr_assert_eq(tr->rows[2].score, 2);

    /* dev (CRLF lines): q4-d3 given twice, the last row wins; sorted by doc. */
    const struct kd_beir_qrels *dev = &b.qrels[KD_BEIR_DEV];
    cr_assert_eq(stats.duplicates[KD_BEIR_DEV], 1);
    cr_assert_eq(dev->n, 2);
    cr_assert_eq(dev->rows[0].doc, 2);
    cr_assert_eq(dev->rows[0].score, 2);
    cr_assert_eq(dev->rows[1].doc, 3);
    cr_assert_eq(b.qrels[KD_BEIR_TEST].n, 1);
    cr_assert_eq(stats.docs, 4);
    cr_assert_eq(stats.queries, 4);
    kd_beir_release(&b);
    kd_beir_release(&b);
    kd_beir_release(NULL);
}

Test(data, beir_split_names_round_trip)
{
    struct kd_error err = {0};
    enum kd_beir_split s;
    for (int k = 0; k < KD_BEIR_N_SPLITS; k++) {
        cr_assert_eq(kd_beir_split_parse(kd_beir_split_name((enum kd_beir_split)k), &s, &err),
                     KD_OK);
        cr_assert_eq((int)s, k);
    }
    cr_assert_eq(kd_beir_split_parse("valid", &s, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "unknown split 'valid': expected train, dev or test");
}

Test(data, beir_split_not_asked_for_may_be_missing, .init = beir_setup, .fini = beir_teardown)
{
    make_set(CORPUS, QUERIES, TRAIN);
    struct kd_error err = {0};
    struct kd_beir b;
    cr_assert_eq(kd_beir_load(beir_dir, KD_BEIR_WANT(KD_BEIR_TRAIN), &b, NULL, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_not(b.qrels[KD_BEIR_TEST].loaded);
    cr_assert_null(b.qrels[KD_BEIR_TEST].rows);
    kd_beir_release(&b);
    expect_load_error(KD_BEIR_WANT(KD_BEIR_TEST), KD_ERR_IO,
                      "qrels/test.tsv: cannot open: No such file or directory");
}

Test(data, beir_missing_corpus_names_the_file, .init = beir_setup, .fini = beir_teardown)
{
    expect_load_error(0, KD_ERR_IO, "corpus.jsonl: cannot open: No such file or directory");
}

Test(data, beir_invalid_json_names_line_and_column, .init = beir_setup, .fini = beir_teardown)
{
    expect_broken("{\"_id\": \"d1\", \"text\": \"one\"}\n{\"_id\": \"d2\", \"text\": }\n", QUERIES,
                  TRAIN, "corpus.jsonl:2:23: invalid JSON: unexpected token near '}'");
    expect_broken(CORPUS, "{\"_id\": \"q1\", \"text\": \"a\"} x\n", TRAIN,
                  "queries.jsonl:1:28: invalid JSON: end of file expected near 'x'");
    expect_broken(CORPUS, "[\"q1\", \"a\"]\n", TRAIN,
                  "queries.jsonl:1: expected a JSON object, found an array");
}

Test(data, beir_invalid_utf8_names_the_byte, .init = beir_setup, .fini = beir_teardown)
{
    expect_broken("{\"_id\": \"d1\", \"text\": \"caf\xe9\"}\n", QUERIES, TRAIN,
                  "corpus.jsonl:1:27: invalid UTF-8 (byte 0xe9)");
    /* An encoded surrogate (CESU-8) is not UTF-8 either. */
    expect_broken(CORPUS, "\n{\"_id\": \"q1\", \"text\": \"\xed\xa0\x80\"}\n", TRAIN,
                  "queries.jsonl:2:24: invalid UTF-8 (byte 0xed)");
}

Test(data, beir_bad_ids_and_fields_are_named, .init = beir_setup, .fini = beir_teardown)
{
    expect_broken("{\"title\": \"x\", \"text\": \"one\"}\n", QUERIES, TRAIN,
                  "corpus.jsonl:1: missing _id");
    expect_broken("{\"_id\": \"\", \"text\": \"one\"}\n", QUERIES, TRAIN,
                  "corpus.jsonl:1: empty _id");
    expect_broken("{\"_id\": [1], \"text\": \"one\"}\n", QUERIES, TRAIN,
                  "corpus.jsonl:1: _id must be a string, found an array");
    expect_broken("{\"_id\": \"a\\tb\", \"text\": \"one\"}\n", QUERIES, TRAIN,
                  "corpus.jsonl:1: _id 'a\tb' contains a tab or line break");
    expect_broken(CORPUS "{\"_id\": \"d3\", \"title\": \"no text\"}\n", QUERIES, TRAIN,
                  "corpus.jsonl:3: missing text");
    expect_broken(CORPUS, "{\"_id\": \"q1\", \"text\": 7}\n", TRAIN,
                  "queries.jsonl:1: text must be a string, found an integer");
    expect_broken("{\"_id\": \"d1\", \"title\": false, \"text\": \"one\"}\n", QUERIES, TRAIN,
                  "corpus.jsonl:1: title must be a string, found a boolean");
}

Test(data, beir_duplicate_id_names_both_lines, .init = beir_setup, .fini = beir_teardown)
{
    expect_broken(CORPUS, QUERIES "{\"_id\": \"q1\", \"text\": \"again\"}\n", TRAIN,
                  "queries.jsonl:3: duplicate _id 'q1' (first on line 1)");
    expect_broken(CORPUS "{\"_id\": 7, \"text\": \"x\"}\n{\"_id\": \"7\", \"text\": \"y\"}\n",
                  QUERIES, TRAIN, "corpus.jsonl:4: duplicate _id '7' (first on line 3)");
}

Test(data, beir_qrels_errors_name_line_and_field, .init = beir_setup, .fini = beir_teardown)
{
    expect_broken(CORPUS, QUERIES, "qid\tdocid\tscore\nq1\td1\t1\n",
                  "qrels/train.tsv:1: expected the header 'query-id<TAB>corpus-id<TAB>score', "
                  "found 'qid\tdocid\tscore'");
    expect_broken(CORPUS, QUERIES, "",
                  "qrels/train.tsv: empty file: expected the header "
                  "'query-id<TAB>corpus-id<TAB>score'");
    expect_broken(CORPUS, QUERIES, HEADER "q1\td1\t1\nq3\td1\t1\n",
                  "qrels/train.tsv:3:1: unknown query-id 'q3' (not in queries.jsonl)");
    expect_broken(CORPUS, QUERIES, HEADER "q1\td9\t1\n",
                  "qrels/train.tsv:2:2: unknown corpus-id 'd9' (not in corpus.jsonl)");
    expect_broken(CORPUS, QUERIES, HEADER "q1\td1\t1.5\n",
                  "qrels/train.tsv:2:3: expected an integer score, found '1.5'");
    expect_broken(CORPUS, QUERIES, HEADER "q1\td1\t\n",
                  "qrels/train.tsv:2:3: expected an integer score, found ''");
    expect_broken(CORPUS, QUERIES, HEADER "q1 d1 1\n",
                  "qrels/train.tsv:2: expected 3 tab-separated fields (query-id, corpus-id, "
                  "score), found 1");
    expect_broken(CORPUS, QUERIES, HEADER "q1\td1\t1\t0\n",
                  "qrels/train.tsv:2: expected 3 tab-separated fields (query-id, corpus-id, "
                  "score), found 4");
}

Test(data, beir_query_without_relevant_document_is_skipped_and_counted,
     .init = beir_setup, .fini = beir_teardown)
{
    make_set(CORPUS, QUERIES, HEADER "q2\td1\t0\nq1\td2\t-1\nq1\td1\t3\n");
    struct kd_error err = {0};
    struct kd_beir b;
    struct kd_beir_stats stats;
    cr_assert_eq(kd_beir_load(beir_dir, KD_BEIR_WANT(KD_BEIR_TRAIN), &b, &stats, &err), KD_OK,
                 "%s", err.msg);
    cr_assert_eq(stats.skipped[KD_BEIR_TRAIN], 1);
    cr_assert_eq(b.qrels[KD_BEIR_TRAIN].n, 2);
    cr_assert_eq(b.qrels[KD_BEIR_TRAIN].n_queries, 1);
    cr_assert_eq(b.qrels[KD_BEIR_TRAIN].rows[1].score, -1);
    kd_beir_release(&b);
}

Test(data, beir_many_ids_load_and_resolve, .init = beir_setup, .fini = beir_teardown)
{
    /* Enough ids to make the indices grow several times. */
    enum { N = 20000 };
    FILE *c = fopen(beir_path("corpus.jsonl"), "w");
    FILE *q = fopen(beir_path("queries.jsonl"), "w");
    mkdir(beir_path("qrels"), 0755);
    FILE *t = fopen(beir_path("qrels/test.tsv"), "w");
    cr_assert(c && q && t);
    fputs(HEADER, t);
    for (int i = 0; i < N; i++) {
        fprintf(c, "{\"_id\": \"doc%d\", \"text\": \"text %d\"}\n", i, i);
        fprintf(q, "{\"_id\": \"%d\", \"text\": \"query %d\"}\n", i, i);
        fprintf(t, "%d\tdoc%d\t1\n", i, (i * 7919) % N);
    }
    cr_assert_eq(fclose(c) | fclose(q) | fclose(t), 0);
    struct kd_error err = {0};
    struct kd_beir b;
    cr_assert_eq(kd_beir_load(beir_dir, KD_BEIR_WANT(KD_BEIR_TEST), &b, NULL, &err), KD_OK, "%s",
                 err.msg);
    cr_assert_eq(b.qrels[KD_BEIR_TEST].n, N);
    for (int i = 0; i < N; i += 97) {
        const struct kd_beir_qrel *r = &b.qrels[KD_BEIR_TEST].rows[i];
        cr_assert_eq(r->query, (uint32_t)i);
        cr_assert_eq(r->doc, (uint32_t)((i * 7919) % N));
    }
    kd_beir_release(&b);
}

Test(data, beir_marks_each_query_with_the_loaded_splits_whose_qrels_name_it)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/data/fixtures/beir-mini", kd_root());
    struct kd_error err = {0};
    struct kd_beir b;
    cr_assert_eq(kd_beir_load(dir, KD_BEIR_ALL, &b, NULL, &err), KD_OK, "%s", err.msg);
    /* q1 train; q2 train and test; q3 train with scores 0 only (its rows
     * are dropped, but the file names it); q4 dev */
    const uint8_t want[4] = {KD_BEIR_WANT(KD_BEIR_TRAIN), KD_BEIR_WANT(KD_BEIR_TRAIN) | KD_BEIR_WANT(KD_BEIR_TEST),
                             KD_BEIR_WANT(KD_BEIR_TRAIN), KD_BEIR_WANT(KD_BEIR_DEV)};
    for (size_t q = 0; q < 4; q++)
        cr_assert_eq(b.query_judged[q], want[q], "query %s: %u", b.query_ids[q], b.query_judged[q]);
    kd_beir_release(&b);
    /* a split that is not loaded marks nothing */
    cr_assert_eq(kd_beir_load(dir, KD_BEIR_WANT(KD_BEIR_TRAIN), &b, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(b.query_judged[1], KD_BEIR_WANT(KD_BEIR_TRAIN));
    cr_assert_eq(b.query_judged[3], 0, "q4 is named by dev.tsv only, which was not read");
    kd_beir_release(&b);
}

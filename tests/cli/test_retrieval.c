/* cli: kd search, kd encode and kd eval of a dual encoder, through the kd
 * binary in $KD_BIN (skipped when it is not set), on BEIR's mini fixture
 * (tests/data/fixtures/beir-mini) with a small dual encoder saved by the
 * test; every bad input exits non-zero with the message tested here. The
 * numpy scripts reproduce kd encode's embeddings from the model file alone. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/cli/cli_test.h"


#include "data/kd_data.h"
#include "student/kd_student.h"

#define MINI "tests/data/fixtures/beir-mini"

static char dir[64], model[128], mlp[128];

/* A temporary folder with a dual encoder (featuriser settings in its
 * metadata) and an MLP, both untrained: the commands' behaviour, not their
 * quality, is under test. */
static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/kd-cli-XXXXXX");
    cr_assert(mkdtemp(dir));
    struct kd_error err = {0};
    struct kd_dual_config cfg;
    kd_dual_config_init(&cfg);
    cfg.buckets = 1u << 10;
    cfg.E = 8;
    cfg.n_layers = 1;
    cfg.hidden[0] = 6;
    cfg.act = KD_ACT_TANH;
    cfg.normalize = 1;
    struct kd_dual *m;
    cr_assert_eq(kd_dual_new(&cfg, 5, &m, &err), KD_OK, "%s", err.msg);
    snprintf(model, sizeof model, "%s/de.safetensors", dir);
    cr_assert_eq(kd_dual_save(m, model, "kd-text-v1 buckets=10 seed=2 words=2 chars=3-5", &err), KD_OK, "%s",
                 err.msg);
    kd_dual_free(m);
    struct kd_mlp_config mc;
    kd_mlp_config_init(&mc);
    const size_t sizes[] = {4, 3};
    cr_assert_eq(kd_mlp_config_set_sizes(&mc, sizes, 2, &err), KD_OK);
    struct kd_mlp *net;
    cr_assert_eq(kd_mlp_new(&mc, 1, &net, &err), KD_OK);
    snprintf(mlp, sizeof mlp, "%s/mlp.safetensors", dir);
    cr_assert_eq(kd_mlp_save(net, mlp, NULL, 0, &err), KD_OK, "%s", err.msg);
    kd_mlp_free(net);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[0])
        (void)!system(cmd);
}

TestSuite(cli_retrieval, .init = setup, .fini = teardown, .timeout = 60);

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

Test(cli_retrieval, help_explains_search_encode_and_eval_of_a_dual_encoder_with_an_example)
{
    kd_bin();
    const char *cmds[][3] = {{"search", "--help", NULL}, {"encode", "--help", NULL}, {"eval", model, "--help"}};
    const char *usage[] = {"usage: kd search MODEL --beir DIR", "usage: kd encode MODEL --texts FILE",
                           "usage: kd eval DUAL_MODEL --beir DIR"};
    for (size_t i = 0; i < 3; i++) {
        char *out;
        cr_assert_eq(kd(&out, cmds[i][0], cmds[i][1], cmds[i][2], NULL), 0, "%s", out);
        cr_assert(strstr(out, usage[i]), "%s", out);
        cr_assert(strstr(out, "\nexample:\n  kd "), "%s", out);
        for (char *line = out; *line;) {
            char *end = strchr(line, '\n');
            size_t len = end ? (size_t)(end - line) : strlen(line);
            cr_assert_leq(len, 80, "a line of %zu characters: %.*s", len, (int)len, line);
            line = end ? end + 1 : line + len;
        }
        free(out);
    }
    char *out;
    cr_assert_eq(kd(&out, "search", "--help", NULL), 0);
    cr_assert(strstr(out, "  --split NAME          the qrels split to rank: train, dev or test\n"
                          "                        (default test)\n"), "%s", out);
    cr_assert(strstr(out, "--store FILE"), "%s", out);
    free(out);
}

Test(cli_retrieval, search_prints_the_metrics_and_writes_a_trec_run_file)
{
    kd_bin();
    char run[128], *out;
    path_in(run, sizeof run, "t.run");
    cr_assert_eq(kd(&out, "search", model, "--beir", MINI, "--split", "dev", "--run", run, "--tag", "x", NULL), 0, "%s",
                 out);
    char want[512];
    snprintf(want, sizeof want, "%s on " MINI " (dev, 1 queries): nDCG@10 ", model);
    cr_assert_eq(strncmp(out, want, strlen(want)), 0, "%s", out);
    cr_assert(strstr(out, "  MRR@10 ") && strstr(out, "  Recall@10 ") && strstr(out, "  Recall@100 "), "%s", out);
    snprintf(want, sizeof want, "run file: %s (top 100, tag x)\n", run);
    cr_assert(strstr(out, want), "%s", out);
    free(out);
    /* every document of the corpus, ranked for the dev query */
    FILE *f = fopen(run, "r");
    cr_assert(f);
    char line[256];
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        char qid[16], q0[4], doc[16], tag[8];
        int rank;
        float score;
        cr_assert_eq(sscanf(line, "%15s %3s %15s %d %f %7s", qid, q0, doc, &rank, &score, tag), 6, "%s", line);
        cr_assert_str_eq(qid, "q4");
        cr_assert_eq(rank, ++lines);
        cr_assert_str_eq(tag, "x");
    }
    fclose(f);
    cr_assert_eq(lines, 4);
    /* kd eval of a dual encoder is the same evaluation */
    cr_assert_eq(kd(&out, "eval", model, "--beir", MINI, "--split", "dev", NULL), 0, "%s", out);
    snprintf(want, sizeof want, "%s on " MINI " (dev, 1 queries): nDCG@10 ", model);
    cr_assert_eq(strncmp(out, want, strlen(want)), 0, "%s", out);
    free(out);
}

Test(cli_retrieval, bm25_ranks_without_a_model_and_a_store_keeps_its_index)
{
    kd_bin();
    char db[128], *out;
    path_in(db, sizeof db, "bm25.db");
    cr_assert_eq(kd(&out, "search", "--bm25", "--beir", MINI, "--store", db, NULL), 0, "%s", out);
    cr_assert(strstr(out, "bm25 on " MINI " (test, 1 queries): nDCG@10 1.0000  MRR@10 1.0000  Recall@10 1.0000  "
                          "Recall@100 1.0000\n"), "%s", out);
    free(out);
    cr_assert_eq(access(db, R_OK), 0, "the store with the index stays");
    cr_assert_eq(kd(&out, "search", "--bm25", "--beir", MINI, "--store", db, "--query", "river water", NULL), 0, "%s",
                 out);
    cr_assert(strstr(out, "  1  d2 "), "%s", out);
    cr_assert(strstr(out, "Bank: sloping land beside a body of water\n"), "%s", out);
    free(out);
}

Test(cli_retrieval, a_typed_query_prints_the_top_documents_with_their_text)
{
    kd_bin();
    char *out;
    cr_assert_eq(kd(&out, "search", model, "--beir", MINI, "--query", "bank of the river", "--k", "2", NULL), 0, "%s",
                 out);
    /* two lines: rank, id, score, title: text */
    int lines = 0;
    for (char *p = out; (p = strchr(p, '\n')); p++)
        lines++;
    cr_assert_eq(lines, 2, "%s", out);
    cr_assert_eq(strncmp(out, "  1  ", 5), 0, "%s", out);
    cr_assert(strstr(out, "\n  2  "), "%s", out);
    free(out);
}

Test(cli_retrieval, bad_input_is_refused_with_a_message_that_says_what_is_wrong)
{
    kd_bin();
    char notthere[128];
    path_in(notthere, sizeof notthere, "nope");
    struct {
        const char *args[10];
        int status;
        const char *msg;
    } bad[] = {
        {{"search", model, NULL}, 2, "kd: search: no BEIR directory given (--beir DIR)\n"},
        {{"search", "--beir", MINI, NULL}, 2, "kd: search: no model given (or --bm25 for the BM25 baseline)\n"},
        {{"search", model, "--bm25", "--beir", MINI, NULL}, 2, "kd: search: give a model or --bm25, not both\n"},
        {{"search", model, "--beir", MINI, "--split", "tset", NULL}, 2,
         "kd: search: unknown split 'tset': expected train, dev or test\n"},
        {{"search", model, "--beir", MINI, "--query", " ", NULL}, 2, "kd: search: the query is empty\n"},
        {{"search", model, "--beir", MINI, "--query", "?!", NULL}, 1,
         "kd: the query '?!' has no words to search with\n"},
        {{"search", model, "--beir", MINI, "--store", "x.db", NULL}, 2, "kd: search: --store is for --bm25\n"},
        {{"search", model, "--beir", MINI, "--query", "x", "--run", "r", NULL}, 2,
         "kd: search: --run writes the ranking of a split; it does not go with --query\n"},
        {{"search", model, "--beir", notthere, NULL}, 1, NULL},
        {{"search", mlp, "--beir", MINI, NULL}, 1, NULL},
        {{"eval", model, NULL}, 2, "kd: eval: no BEIR directory given (--beir DIR)\n"},
        {{"eval", mlp, "--beir", MINI, NULL}, 1, NULL},
        {{"encode", model, "--out", "x.npy", NULL}, 2, "kd: encode: no texts given (--texts FILE)\n"},
        {{"encode", model, "--texts", MINI "/queries.jsonl", NULL}, 2, "kd: encode: no output given (--out FILE.npy)\n"},
        {{"encode", model, "--texts", MINI "/queries.jsonl", "--side", "both", "--out", "x.npy", NULL}, 2,
         "kd: encode: unknown side 'both' (query or doc)\n"},
        {{"encode", model, "--texts", notthere, "--out", "x.npy", NULL}, 1, NULL},
        {{"encode", "--texts", MINI "/queries.jsonl", "--out", "x.npy", NULL}, 2, "kd: encode: no model given\n"},
    };
    char want[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char **a = bad[i].args;
        const char *msg = bad[i].msg;
        if (!msg) {
            if (i == 8)
                snprintf(want, sizeof want, "kd: BEIR directory '%s': No such file or directory\n", notthere);
            else if (i == 9 || i == 11)
                snprintf(want, sizeof want, "kd: '%s' is not a kd dual encoder (kd_format is 'mlp', expected "
                         "'dual_encoder')\n", mlp);
            else
                snprintf(want, sizeof want, "kd: cannot open '%s': No such file or directory\n", notthere);
            msg = want;
        }
        char *out;
        int st = kd(&out, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], NULL);
        cr_assert_eq(st, bad[i].status, "case %zu: status %d: %s", i, st, out);
        cr_assert_eq(strncmp(out, msg, strlen(msg)), 0, "case %zu: want\n%s\ngot\n%s", i, msg, out);
        free(out);
    }
}

Test(cli_retrieval, encode_writes_one_row_per_text_and_the_numpy_scripts_reproduce_it_from_the_file_alone)
{
    kd_bin();
    char texts[128], npy[128], cmd[2048], *out;
    path_in(texts, sizeof texts, "texts.txt");
    path_in(npy, sizeof npy, "e.npy");
    FILE *f = fopen(texts, "w");
    cr_assert(f);
    /* case, UTF-8, punctuation only, an empty line, digits */
    fputs("He cashed a CHECK at the bank\ncaf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9" "e\n?!\n\nroute 66, 1999\n", f);
    fclose(f);
    for (int side = 0; side < 2; side++) {
        const char *s = side ? "doc" : "query";
        cr_assert_eq(kd(&out, "encode", model, "--texts", texts, "--side", s, "--out", npy, NULL), 0, "%s", out);
        char want[512];
        snprintf(want, sizeof want, "%s: 5 texts x 6 dims (%s tower of %s)\n", npy, s, model);
        cr_assert_str_eq(out, want);
        free(out);
        struct kd_dataset ds;
        struct kd_error err = {0};
        cr_assert_eq(kd_data_load_npy(npy, NULL, &ds, &err), KD_OK, "%s", err.msg);
        cr_assert_eq(kd_dataset_n(&ds), 5);
        cr_assert_eq(kd_dataset_d(&ds), 6);
        kd_dataset_release(&ds);
        if (system("/usr/bin/python3 -c 'import numpy, xxhash' 2>/dev/null") != 0)
            cr_skip_test("numpy or python3-xxhash is not installed");
        const char *root = getenv("KD_ROOT") ? getenv("KD_ROOT") : ".";
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/encode_numpy.py %s %s --side %s --compare %s --tol 1e-5",
                 root, model, texts, s, npy);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
    }
    /* JSON lines: "text", and on the doc side "title" before it, as kd search reads a corpus */
    cr_assert_eq(kd(&out, "encode", model, "--texts", MINI "/corpus.jsonl", "--side", "doc", "--out", npy, NULL), 0,
                 "%s", out);
    free(out);
    struct kd_dataset ds;
    struct kd_error err = {0};
    cr_assert_eq(kd_data_load_npy(npy, NULL, &ds, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_dataset_n(&ds), 4, "the blank line is skipped");
    kd_dataset_release(&ds);
}

Test(cli_retrieval, kd_run_of_a_retrieval_pipeline_exits_0_and_prints_the_metrics_table)
{
    kd_bin();
    char path[128], text[1024], *out;
    path_in(path, sizeof path, "p.yaml");
    const char *root = getenv("KD_ROOT") ? getenv("KD_ROOT") : ".";
    snprintf(text, sizeof text,
             "output: %s/out\n"
             "datasets:\n  mini: {beir: %s/" MINI "}\n"
             "models:\n  de: {type: dual, buckets: 10, dim: 8, featurizer: {words: 1, chars: 3-3}}\n"
             "stages:\n"
             "  - train: {model: de, data: mini, epochs: 2, batch: 2, negatives: 1}\n"
             "  - evaluate: {models: [bm25, de], data: mini, split: dev, k: 10}\n",
             dir, root);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    int st = kd(&out, "run", "--quiet", path, NULL);
    cr_assert_eq(st, 0, "status %d: %s", st, out);
    cr_assert(strstr(out, "stage          model          data            queries  nDCG@10   MRR@10 Recall@10 "
                          "Recall@100\n"), "%s", out);
    cr_assert(strstr(out, "evaluate-1     bm25           mini/dev              1   "), "%s", out);
    cr_assert(strstr(out, "evaluate-1     de             mini/dev              1   "), "%s", out);
    free(out);
}

/* kd convert: turns a public resource into a data set kd reads; today
 * WordNet into a BEIR retrieval data set. The option parsing is kept to
 * this file on purpose. */
#include "cli/kd_cli.h"

#include "data/kd_data.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char convert_usage[] =
    "usage: kd convert wordnet [--wordnet DIR] [--seed N] --out DIR\n"
    "\n"
    "Turns WordNet (Debian's wordnet-base) into a BEIR retrieval data set for\n"
    "word-sense retrieval: a document is one sense of a word (its synonyms as\n"
    "the title, its definition as the text); a query is a usage example\n"
    "quoted in a definition, for a word with several senses; the relevant\n"
    "document is the sense the example belongs to. Writes DIR/corpus.jsonl,\n"
    "DIR/queries.jsonl and DIR/qrels/{train,dev,test}.tsv (80/10/10 of the\n"
    "queries, shuffled with the seed); `kd` reads DIR wherever a BEIR\n"
    "directory is asked for.\n"
    "\n"
    "  --wordnet DIR   WordNet's database files data.noun, data.verb, data.adj,\n"
    "                  data.adv (default " KD_WORDNET_DIR ")\n"
    "  --seed N        seed of the train/dev/test split (default 1)\n"
    "  --out DIR       the directory to write (created when missing; files in\n"
    "                  it are replaced atomically)\n"
    "\n"
    "example:\n"
    "  kd convert wordnet --out data/wordnet\n";

/* "--name value" or "--name=value" at argv[*i]: the value, advancing *i;
 * NULL when argv[*i] is something else; *missing set when the value is. */
static const char *opt(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

int kd_cmd_convert(int argc, char **argv)
{
    struct kd_wordnet_options o;
    kd_wordnet_options_init(&o);
    const char *what = NULL, *s;
    int missing = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(convert_usage, stdout);
            return 0;
        } else if ((s = opt(argc, argv, &i, "--wordnet", &missing))) {
            o.wordnet_dir = s;
        } else if ((s = opt(argc, argv, &i, "--out", &missing))) {
            o.out_dir = s;
        } else if ((s = opt(argc, argv, &i, "--seed", &missing))) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(s, &end, 10);
            if (!*s || *end || errno || s[0] == '-') {
                fprintf(stderr, "kd: convert: --seed expects a non-negative integer, got '%s'\n", s);
                return 2;
            }
            o.seed = (uint64_t)v;
        } else if (missing) {
            fprintf(stderr, "kd: convert: %s needs a value\n", a);
            return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "kd: convert: unknown option '%s' (see kd convert --help)\n", a);
            return 2;
        } else if (!what) {
            what = a;
        } else {
            fprintf(stderr, "kd: convert: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!what || !o.out_dir) {
        fputs(convert_usage, stderr);
        return 2;
    }
    if (strcmp(what, "wordnet") != 0) {
        fprintf(stderr, "kd: convert: unknown source '%s' (kd converts: wordnet)\n", what);
        return 2;
    }
    struct kd_error err = {0};
    struct kd_wordnet_stats st;
    if (kd_wordnet_convert(&o, &st, &err))
        return kd_cli_fail(&err);
    printf("%s: %zu documents (senses), %zu queries (train %zu, dev %zu, test %zu); "
           "%.2f senses per query word on average\n",
           o.out_dir, st.docs, st.queries, st.split[KD_BEIR_TRAIN], st.split[KD_BEIR_DEV],
           st.split[KD_BEIR_TEST], st.mean_senses);
    printf("examples in the glosses: %zu; dropped (word with one sense): %zu; merged "
           "(same sentence in several senses): %zu; not naming their word: %zu\n",
           st.examples, st.single_sense, st.merged, st.unmatched);
    return 0;
}

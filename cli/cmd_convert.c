/* kd convert: turns a public resource into a data set kd reads; today
 * WordNet into a BEIR retrieval data set. */
#include "cli/kd_cli.h"

#include "data/kd_data.h"

#include <string.h>

int kd_cmd_convert(int argc, char **argv)
{
    struct kd_wordnet_options o;
    kd_wordnet_options_init(&o);
    const char *args[1];
    size_t n_args;
    const struct kd_cli_option opts[] = {
        {.name = "--wordnet", .kind = KD_CLI_STRING, .dest = &o.wordnet_dir, .arg = "DIR",
         .help = "WordNet's database files data.noun, data.verb, data.adj,\ndata.adv"},
        {.name = "--seed", .kind = KD_CLI_U64, .dest = &o.seed, .lo = 0, .hi = 9e15,
         .arg = "N", .help = "seed of the train/dev/test split"},
        {.name = "--out", .kind = KD_CLI_STRING, .dest = &o.out_dir, .arg = "DIR",
         .help = "the directory to write (created when missing; files in\nit are replaced atomically); required"},
        {0}};
    const struct kd_cli_command cmd = {
        .name = "convert",
        .synopsis = "wordnet [--wordnet DIR] [--seed N] --out DIR",
        .about = "Turns WordNet (Debian's wordnet-base) into a BEIR retrieval data set for\n"
                 "word-sense retrieval: a document is one sense of a word (its synonyms as\n"
                 "the title, its definition as the text); a query is a usage example\n"
                 "quoted in a definition, for a word with several senses; the relevant\n"
                 "document is the sense the example belongs to. Writes DIR/corpus.jsonl,\n"
                 "DIR/queries.jsonl and DIR/qrels/{train,dev,test}.tsv (80/10/10 of the\n"
                 "queries, shuffled with the seed); kd reads DIR wherever a BEIR\n"
                 "directory is asked for.\n",
        .options = opts,
        .max_args = 1,
        .example = "kd convert wordnet --out data/wordnet\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    if (n_args == 0)
        return kd_cli_usage_error(&cmd, "no source given (kd converts: wordnet)");
    if (strcmp(args[0], "wordnet") != 0)
        return kd_cli_usage_error(&cmd, "unknown source '%s' (kd converts: wordnet)", args[0]);
    if (!o.out_dir)
        return kd_cli_usage_error(&cmd, "--out is required");
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

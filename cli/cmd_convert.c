/* kd convert: turns a public resource into a data set kd reads; today
 * WordNet, or a dictionary in the dictd format, into a BEIR retrieval data
 * set. */
#include "cli/kd_cli.h"

#include "data/kd_data.h"

#include <string.h>

/* kd convert dictd: argv[0] is "dictd". */
static int convert_dictd(int argc, char **argv)
{
    struct kd_dictd_options o;
    kd_dictd_options_init(&o);
    const struct kd_cli_option opts[] = {
        {.name = "--index", .kind = KD_CLI_STRING, .dest = &o.index_path, .arg = "FILE",
         .help = "the dictionary's index, e.g.\n/usr/share/dictd/foldoc.index; required"},
        {.name = "--dict", .kind = KD_CLI_STRING, .dest = &o.dict_path, .arg = "FILE",
         .help = "its entries, dictzip (.dict.dz), gzip or plain\n(.dict); required"},
        {.name = "--min-words", .kind = KD_CLI_SIZE, .dest = &o.min_words, .lo = 1, .hi = 1e6,
         .arg = "N", .help = "words a definition needs, its headwords removed,\nto be a query"},
        {.name = "--seed", .kind = KD_CLI_U64, .dest = &o.seed, .lo = 0, .hi = 9e15,
         .arg = "N", .help = "seed of the train/dev/test split"},
        {.name = "--out", .kind = KD_CLI_STRING, .dest = &o.out_dir, .arg = "DIR",
         .help = "the directory to write (created when missing; files in\nit are replaced atomically); required"},
        {0}};
    const struct kd_cli_command cmd = {
        .name = "convert dictd",
        .synopsis = "--index FILE --dict FILE [--min-words N] [--seed N]\n"
                    "                        --out DIR",
        .about = "Turns a dictionary in the dictd format (Debian's dict-foldoc, dict-gcide,\n"
                 "dict-jargon, ...) into a BEIR retrieval data set for reverse-dictionary\n"
                 "retrieval: a document is one entry (its headwords as the title, its\n"
                 "paragraphs after the first as the text); a query is an entry's first\n"
                 "paragraph, its definition, with the entry's headwords removed; the\n"
                 "relevant document is that entry. Writes DIR/corpus.jsonl,\n"
                 "DIR/queries.jsonl and DIR/qrels/{train,dev,test}.tsv (80/10/10 of the\n"
                 "queries, shuffled with the seed).\n",
        .options = opts,
        .max_args = 0,
        .example = "kd convert dictd --index /usr/share/dictd/foldoc.index \\\n"
                   "    --dict /usr/share/dictd/foldoc.dict.dz --out data/foldoc\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != KD_CLI_GO)
        return rc;
    if (!o.index_path)
        return kd_cli_usage_error(&cmd, "--index is required");
    if (!o.dict_path)
        return kd_cli_usage_error(&cmd, "--dict is required");
    if (!o.out_dir)
        return kd_cli_usage_error(&cmd, "--out is required");
    struct kd_error err = {0};
    struct kd_dictd_stats st;
    if (kd_dictd_convert(&o, &st, &err))
        return kd_cli_fail(&err);
    printf("%s: %zu documents (entries, %zu headwords), %zu queries (train %zu, dev %zu, test "
           "%zu)\n",
           o.out_dir, st.docs, st.headwords, st.queries, st.split[KD_BEIR_TRAIN],
           st.split[KD_BEIR_DEV], st.split[KD_BEIR_TEST]);
    printf("definitions too short: %zu; merged (same definition in several entries): %zu; "
           "words per query %.1f, per document text %.1f on average\n",
           st.short_defs, st.merged, st.query_words, st.doc_words);
    return 0;
}

int kd_cmd_convert(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "dictd") == 0)
        return convert_dictd(argc - 1, argv + 1);

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
        .synopsis = "wordnet [--wordnet DIR] [--seed N] --out DIR\n"
                    "       kd convert dictd --index FILE --dict FILE [--min-words N] [--seed N]\n"
                    "                        --out DIR",
        .about = "Turns WordNet (Debian's wordnet-base) into a BEIR retrieval data set for\n"
                 "word-sense retrieval: a document is one sense of a word (its synonyms as\n"
                 "the title, its definition as the text); a query is a usage example\n"
                 "quoted in a definition, for a word with several senses; the relevant\n"
                 "document is the sense the example belongs to. Writes DIR/corpus.jsonl,\n"
                 "DIR/queries.jsonl and DIR/qrels/{train,dev,test}.tsv (80/10/10 of the\n"
                 "queries, shuffled with the seed); kd reads DIR wherever a BEIR\n"
                 "directory is asked for.\n"
                 "\n"
                 "`kd convert dictd` turns a dictionary in the dictd format into a\n"
                 "reverse-dictionary retrieval data set (kd convert dictd --help).\n",
        .options = opts,
        .max_args = 1,
        .example = "kd convert wordnet --out data/wordnet\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    if (n_args == 0)
        return kd_cli_usage_error(&cmd, "no source given (kd converts: wordnet, dictd)");
    if (strcmp(args[0], "wordnet") != 0)
        return kd_cli_usage_error(&cmd, "unknown source '%s' (kd converts: wordnet, dictd)", args[0]);
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

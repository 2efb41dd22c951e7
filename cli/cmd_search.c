/* kd search, kd encode, and kd eval of a dual encoder: retrieval with a
 * saved dual encoder (or BM25) over a BEIR directory. The featuriser
 * settings come from the model file's metadata, so a model is always fed
 * the features it was trained on. The work is pipelines/retrieval.c, which
 * the pipeline runner shares. */
#include "cli/kd_cli.h"

#include "pipelines/kd_pipeline.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------- helpers */

int kd_cli_is_dual_model(const char *path)
{
    /* The header only: a safetensors file starts with its JSON header's
     * length (u64, little-endian); kd_dual_load validates the rest. */
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    unsigned char len8[8];
    int dual = 0;
    if (fread(len8, 1, 8, f) == 8) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = n << 8 | len8[i];
        char *h = n > 0 && n < (1u << 24) ? malloc(n + 1) : NULL;
        if (h && fread(h, 1, n, f) == n) {
            h[n] = '\0';
            dual = strstr(h, "\"dual_encoder\"") != NULL;
        }
        free(h);
    }
    fclose(f);
    return dual;
}

/* A dual encoder and the featuriser settings saved with it. */
static kd_status load_dual(const char *path, struct kd_dual **m, struct kd_text_settings *ts, struct kd_error *err)
{
    char *feat = NULL;
    kd_status st = kd_dual_load(path, m, &feat, err);
    if (st)
        return st;
    if (!feat || !feat[0])
        st = kd_error_set(err, KD_ERR_FORMAT, "'%s' has no featuriser settings in its metadata ('featurizer'): "
                          "kd cannot tell which features it reads", path);
    else if ((st = kd_text_settings_parse(feat, ts, err)))
        kd_error_prefix(err, "'%s'", path);
    free(feat);
    if (st) {
        kd_dual_free(*m);
        *m = NULL;
    }
    return st;
}

/* A BEIR folder that exists, before the loader's per-file messages. */
static kd_status check_dir(const char *dir, struct kd_error *err)
{
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return kd_error_set(err, KD_ERR_IO, "BEIR directory '%s': %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return kd_error_set(err, KD_ERR_ARG, "BEIR directory '%s' is not a directory", dir);
    return KD_OK;
}

static void print_metrics(const char *what, const char *dir, const char *split, const struct kd_rank_metrics *rm)
{
    printf("%s on %s (%s, %zu queries): nDCG@10 %.4f  MRR@10 %.4f  Recall@10 %.4f  Recall@100 %.4f\n", what, dir,
           split, rm->n_evaluated, rm->mean[KD_RM_NDCG10], rm->mean[KD_RM_MRR10], rm->mean[KD_RM_RECALL10],
           rm->mean[KD_RM_RECALL100]);
}

/* The store BM25 reads: --store, or a temporary one removed afterwards. */
static kd_status open_bm25_store(const char *path, char tmp[64], struct kd_store **st, struct kd_error *err)
{
    tmp[0] = '\0';
    if (!path) {
        const char *base = getenv("TMPDIR");
        snprintf(tmp, 64, "%.40s/kd-bm25-XXXXXX", base && base[0] ? base : "/tmp");
        int fd = mkstemp(tmp);
        if (fd < 0)
            return kd_error_set(err, KD_ERR_IO, "cannot create a temporary store: %s", strerror(errno));
        close(fd);
        unlink(tmp);   /* kd_store_open creates it as a store */
        path = tmp;
    }
    return kd_store_open(path, NULL, st, err);
}

static void remove_tmp_store(const char *tmp)
{
    if (!tmp[0])
        return;
    char p[80];
    unlink(tmp);
    snprintf(p, sizeof p, "%s-wal", tmp);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", tmp);
    unlink(p);
}

/* A name that is safe as a TREC tag: the model file's base name without
 * extension (white space becomes '_'). */
static void default_tag(const char *model, char *tag, size_t n)
{
    const char *base = strrchr(model, '/') ? strrchr(model, '/') + 1 : model;
    snprintf(tag, n, "%s", base);
    char *dot = strrchr(tag, '.');
    if (dot && dot != tag)
        *dot = '\0';
    for (char *c = tag; *c; c++)
        if (*c == ' ' || *c == '\t' || *c == '\n' || *c == '\r')
            *c = '_';
    if (!tag[0])
        snprintf(tag, n, "kd");
}

/* ---------------------------------------------------------- kd search */

struct search_args {
    const char *model, *beir, *split, *run, *tag, *query, *store;
    size_t k;
    int bm25;
};

static int only_spaces(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return 0;
    return 1;
}

/* One query typed on the command line: its top documents, with their text. */
static int search_one(const struct search_args *a, struct kd_beir *b, struct kd_dual *m,
                      const struct kd_text_settings *ts, struct kd_store *store, struct kd_error *err)
{
    size_t k = a->k ? a->k : 10;
    if (k > b->n_docs)
        k = b->n_docs;
    size_t *ranked = malloc((k ? k : 1) * sizeof *ranked);
    float *scores = malloc((k ? k : 1) * sizeof *scores);
    int64_t *docs = malloc((k ? k : 1) * sizeof *docs);
    struct kd_features fd = {0}, fq = {0};
    struct kd_tensor ed = {0}, eq = {0};
    kd_status st = ranked && scores && docs ? KD_OK : kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    if (!st && m) {
        const char *q = a->query;
        if (!(st = kd_featurize(ts, &q, NULL, 1, 0, &fq, err)) && fq.nnz == 0)
            st = kd_error_set(err, KD_ERR_ARG, "the query '%s' has no words to search with", a->query);
        if (!st && !(st = kd_retrieval_featurize_docs(ts, b, &fd, err)) &&
            !(st = kd_tensor_init(&ed, b->n_docs, kd_dual_dim(m), err)) &&
            !(st = kd_tensor_init(&eq, 1, kd_dual_dim(m), err)) && !(st = kd_dual_encode(m, KD_SIDE_DOC, &fd, &ed, err)) &&
            !(st = kd_dual_encode(m, KD_SIDE_QUERY, &fq, &eq, err)))
            st = kd_search_topk(&eq, &ed, k, ranked, scores, err);
    } else if (!st) {
        size_t found = 0;
        st = kd_store_corpus_search(store, "beir", &a->query, 1, k, docs, scores, &found, err);
        for (size_t i = 0; !st && i < k; i++)
            ranked[i] = i < found ? (size_t)docs[i] : SIZE_MAX;
        if (!st && found == 0)
            printf("no document shares a term with the query\n");
    }
    for (size_t i = 0; !st && i < k && ranked[i] != SIZE_MAX; i++) {
        size_t d = ranked[i];
        const char *title = b->doc_titles[d], *text = b->doc_texts[d];
        char shown[161];
        snprintf(shown, sizeof shown, "%s%s%s", title, title[0] ? ": " : "", text);
        if (strlen(shown) == sizeof shown - 1)
            memcpy(shown + sizeof shown - 4, "...", 3);
        printf("%3zu  %-12s %9.4f  %s\n", i + 1, b->doc_ids[d], scores[i], shown);
    }
    kd_features_release(&fd);
    kd_features_release(&fq);
    kd_tensor_release(&ed);
    kd_tensor_release(&eq);
    free(ranked);
    free(scores);
    free(docs);
    return st ? kd_cli_fail(err) : 0;
}

static int run_search(const struct kd_cli_command *cmd, struct search_args *a)
{
    if (!a->beir)
        return kd_cli_usage_error(cmd, "no BEIR directory given (--beir DIR)");
    if (a->bm25 && a->model)
        return kd_cli_usage_error(cmd, "give a model or --bm25, not both");
    if (!a->bm25 && !a->model)
        return kd_cli_usage_error(cmd, "no model given (or --bm25 for the BM25 baseline)");
    if (a->store && !a->bm25)
        return kd_cli_usage_error(cmd, "--store is for --bm25");
    if (a->query && only_spaces(a->query))
        return kd_cli_usage_error(cmd, "the query is empty");
    if (a->query && a->run)
        return kd_cli_usage_error(cmd, "--run writes the ranking of a split; it does not go with --query");
    enum kd_beir_split split = KD_BEIR_TEST;
    struct kd_error err = {0};
    if (kd_beir_split_parse(a->split, &split, &err))
        return kd_cli_usage_error(cmd, "%s", err.msg);
    struct kd_dual *m = NULL;
    struct kd_text_settings ts;
    struct kd_beir b = {0};
    struct kd_store *store = NULL;
    struct kd_rank_metrics rm = {0};
    char tmp[64] = "", tag[128];
    int rc = 1;
    kd_status st = check_dir(a->beir, &err);
    if (!st && a->model)
        st = load_dual(a->model, &m, &ts, &err);
    if (!st)
        st = kd_beir_load(a->beir, a->query ? 0 : KD_BEIR_WANT(split), &b, NULL, &err);
    if (!st && a->bm25) {
        int built = 0;
        if (!(st = open_bm25_store(a->store, tmp, &store, &err)))
            st = kd_retrieval_index(store, "beir", &b, &built, &err);
    }
    if (st) {
        rc = kd_cli_fail(&err);
        goto done;
    }
    if (a->query) {
        rc = search_one(a, &b, m, &ts, store, &err);
        goto done;
    }
    if (!b.qrels[split].n_queries) {
        err.status = KD_ERR_ARG;
        snprintf(err.msg, sizeof err.msg, "%s/qrels/%s.tsv has no query with a relevant document", a->beir,
                 kd_beir_split_name(split));
        rc = kd_cli_fail(&err);
        goto done;
    }
    if (a->tag)
        snprintf(tag, sizeof tag, "%s", a->tag);
    else
        default_tag(a->bm25 ? "bm25" : a->model, tag, sizeof tag);
    size_t k = a->k ? a->k : 100;
    st = a->bm25 ? kd_retrieval_eval_bm25(store, "beir", &b, split, k, a->run, tag, &rm, &err)
                 : kd_retrieval_eval_dual(m, &ts, &b, split, k, a->run, tag, &rm, &err);
    if (st) {
        rc = kd_cli_fail(&err);
        goto done;
    }
    print_metrics(a->bm25 ? "bm25" : a->model, a->beir, kd_beir_split_name(split), &rm);
    if (a->run)
        printf("run file: %s (top %zu, tag %s)\n", a->run, k, tag);
    rc = 0;
done:
    kd_rank_metrics_release(&rm);
    kd_store_close(store);
    remove_tmp_store(tmp);
    kd_beir_release(&b);
    kd_dual_free(m);
    return rc;
}

#define SEARCH_OPTIONS(a)                                                                                          \
    {.name = "--beir", .kind = KD_CLI_STRING, .dest = &(a).beir, .arg = "DIR",                                     \
     .help = "a BEIR directory (corpus.jsonl, queries.jsonl, qrels/)"},                                    \
    {.name = "--split", .kind = KD_CLI_STRING, .dest = &(a).split, .arg = "NAME",                                  \
     .help = "the qrels split to rank: train, dev or test"},                                             \
    {.name = "--k", .kind = KD_CLI_SIZE, .dest = &(a).k, .lo = 1, .hi = 10000, .arg = "N",                        \
     .help = "documents ranked per query", .def = "100 (10 with --query)"},                                        \
    {.name = "--run", .kind = KD_CLI_STRING, .dest = &(a).run, .arg = "FILE",                                      \
     .help = "write the ranking as a TREC run file, one line per\n"                                      \
             "document: qid Q0 docid rank score tag", .def = "none"},                 \
    {.name = "--tag", .kind = KD_CLI_STRING, .dest = &(a).tag, .arg = "T",                                         \
     .help = "the run file's tag column", .def = "the model file's name, or bm25"},                                \
    {.name = "--bm25", .kind = KD_CLI_FLAG, .dest = &(a).bm25,                                                     \
     .help = "rank with BM25 (SQLite FTS5) instead of a model"},                                                   \
    {.name = "--store", .kind = KD_CLI_STRING, .dest = &(a).store, .arg = "FILE",                                  \
     .help = "with --bm25: a label store that keeps the corpus\n"                                     \
             "index, so the next search reuses it", .def = "a temporary store, removed afterwards"}

int kd_cmd_search(int argc, char **argv)
{
    struct search_args a = {.split = "test"};
    const char *args[1];
    size_t n_args = 0;
    const struct kd_cli_option opts[] = {
        SEARCH_OPTIONS(a),
        {.name = "--query", .kind = KD_CLI_STRING, .dest = &a.query, .arg = "TEXT",
         .help = "rank the corpus for this one query and print the top\ndocuments with their text"},
        {0}};
    const struct kd_cli_command cmd = {
        .name = "search",
        .synopsis = "MODEL --beir DIR [--split test] [--k 100] [--run FILE]\n"
                    "       kd search MODEL --beir DIR --query TEXT [--k 10]\n"
                    "       kd search --bm25 --beir DIR [--store FILE] [...]",
        .about = "Exact search with a dual encoder (safetensors written by kd; its featuriser\n"
                 "settings are read from the file): every document of the BEIR directory is\n"
                 "encoded (title and text), then each query of the split, and the top k\n"
                 "documents by score are found exactly (one GEMM per block, no index).\n"
                 "Prints nDCG@10, MRR@10, Recall@10 and Recall@100 (trec_eval's definitions)\n"
                 "and, with --run, writes the ranking as a TREC run file.\n"
                 "With --query, ranks the corpus for one query and prints the top documents:\n"
                 "rank, id, score, title and text.\n"
                 "With --bm25 instead of a model, BM25 ranks (the SQLite FTS5 index kd uses\n"
                 "for candidates; porter stemming, k1 1.2, b 0.75).\n",
        .options = opts,
        .max_args = 1,
        .example = "kd search runs/wordnet-retrieval/dual.safetensors \\\n"
                   "      --beir runs/wordnet-retrieval/data/wn --run test.run\n"
                   "kd search dual.safetensors --beir wn --query \"he sat on the bank of the river\"\n"
                   "kd search --bm25 --beir wn --split dev --store wn.db\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    a.model = n_args ? args[0] : NULL;
    return run_search(&cmd, &a);
}

/* kd eval MODEL --beir DIR: a dual encoder's retrieval metrics. */
int kd_cmd_eval_retrieval(int argc, char **argv)
{
    struct search_args a = {.split = "test"};
    const char *args[1];
    size_t n_args = 0;
    const struct kd_cli_option opts[] = {SEARCH_OPTIONS(a), {0}};
    const struct kd_cli_command cmd = {
        .name = "eval",
        .synopsis = "DUAL_MODEL --beir DIR [--split test] [--k 100] [--run FILE]",
        .about = "A dual encoder (kd_format dual_encoder in its metadata) is evaluated by\n"
                 "retrieval on a BEIR directory: nDCG@10, MRR@10, Recall@10, Recall@100 on\n"
                 "the split, as kd search prints them. (An MLP takes kd eval's other options.)\n",
        .options = opts,
        .max_args = 1,
        .example = "kd eval dual.safetensors --beir runs/wordnet-retrieval/data/wn --split dev\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    a.model = n_args ? args[0] : NULL;
    return run_search(&cmd, &a);
}

/* ---------------------------------------------------------- kd encode */

int kd_cmd_encode(int argc, char **argv)
{
    const char *texts_path = NULL, *side = "query", *out = NULL, *args[1];
    size_t n_args = 0;
    const struct kd_cli_option opts[] = {
        {.name = "--texts", .kind = KD_CLI_STRING, .dest = &texts_path, .arg = "FILE",
         .help = "JSON lines with \"text\" (on the doc side \"title\" too,\n"
                 "read as title, space, text, as kd search reads a\n"
                 "corpus), or one text per line; required"},
        {.name = "--side", .kind = KD_CLI_STRING, .dest = &side, .arg = "SIDE",
         .help = "the tower: query or doc"},
        {.name = "--out", .kind = KD_CLI_STRING, .dest = &out, .arg = "FILE",
         .help = "the embeddings, float32 NPY (texts, dim); required"},
        {0}};
    const struct kd_cli_command cmd = {
        .name = "encode",
        .synopsis = "MODEL --texts FILE [--side query|doc] --out FILE.npy",
        .about = "Embeds texts with a saved dual encoder: each text is featurised with the\n"
                 "settings saved in the model's metadata (kd-text-v1: hashed word and\n"
                 "character n-grams) and goes through the query or the document tower.\n"
                 "Row i of the NPY is the embedding of text i.\n",
        .options = opts,
        .max_args = 1,
        .example = "kd encode dual.safetensors --texts queries.jsonl --out q.npy\n"
                   "kd encode dual.safetensors --texts corpus.jsonl --side doc --out d.npy\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    if (n_args == 0)
        return kd_cli_usage_error(&cmd, "no model given");
    if (!texts_path)
        return kd_cli_usage_error(&cmd, "no texts given (--texts FILE)");
    if (!out)
        return kd_cli_usage_error(&cmd, "no output given (--out FILE.npy)");
    enum kd_side s;
    if (strcmp(side, "query") == 0)
        s = KD_SIDE_QUERY;
    else if (strcmp(side, "doc") == 0)
        s = KD_SIDE_DOC;
    else
        return kd_cli_usage_error(&cmd, "unknown side '%s' (query or doc)", side);
    struct kd_error err = {0};
    struct kd_dual *m = NULL;
    struct kd_text_settings ts;
    struct kd_features f = {0};
    struct kd_dataset ds = {0};
    char **texts = NULL;
    size_t n = 0;
    kd_status st = load_dual(args[0], &m, &ts, &err);
    if (!st)
        st = kd_data_load_texts(texts_path, s == KD_SIDE_DOC, &texts, &n, &err);
    if (!st)
        st = kd_featurize(&ts, (const char *const *)texts, NULL, n, 0, &f, &err);
    if (!st)
        st = kd_dataset_init(&ds, n, kd_dual_dim(m), 0, &err);
    if (!st)
        st = kd_dual_encode(m, s, &f, &ds.x, &err);
    if (!st)
        st = kd_data_save_npy(&ds, out, NULL, &err);
    if (!st)
        printf("%s: %zu texts x %zu dims (%s tower of %s)\n", out, n, kd_dual_dim(m), side, args[0]);
    kd_data_texts_free(texts, n);
    kd_features_release(&f);
    kd_dataset_release(&ds);
    kd_dual_free(m);
    return st ? kd_cli_fail(&err) : 0;
}

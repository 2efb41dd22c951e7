/*
 * kd data: datasets (features plus optional integer labels), their loaders
 * (IDX raw or gzip, CSV, NPY), scaling and deterministic seeded splits; for
 * retrieval, BEIR directories (corpus, queries, qrels), hashed text
 * features and the WordNet converter (see the sections at the end, and
 * docs/retrieval.md).
 *
 *     struct kd_dataset train = {0};
 *     struct kd_error err = {0};
 *     if (kd_data_load_idx("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
 *                          "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz",
 *                          &train, &err))
 *         kd_log(KD_LOG_ERROR, "%s", err.msg);
 *     kd_data_scale_unit(&train, 0.0f, 255.0f);      // pixels to [0, 1]
 *     ...
 *     kd_dataset_release(&train);
 *
 * Every loader error names the file and, where it applies, the row and
 * column (1-based, as a person counts) and what was expected.
 */
#ifndef KD_DATA_H
#define KD_DATA_H

#include "core/kd_core.h"

/* The most classes a labelled dataset may have: every loader refuses a
 * label >= KD_DATA_MAX_CLASSES, naming the file, the row and the value. A
 * stray huge label would otherwise silently make a network with that many
 * outputs (the class count is inferred as the largest label + 1). */
#define KD_DATA_MAX_CLASSES 65536

/* N examples of D float32 features, optional labels in [0, n_classes).
 * `rows` maps example i to its row in the file it was loaded from, so that a
 * split subset still knows where each example came from. */
struct kd_dataset {
    struct kd_tensor x;     /* (N, D), owned */
    int32_t *y;             /* (N) or NULL when unlabelled, owned */
    size_t *rows;           /* (N) original row numbers (0-based), owned */
    size_t n_classes;       /* max label + 1, or 0 when unlabelled */
    char source[256];       /* file the examples came from, for messages/store */
};

static inline size_t kd_dataset_n(const struct kd_dataset *ds) { return ds->x.rows; }
static inline size_t kd_dataset_d(const struct kd_dataset *ds) { return ds->x.cols; }

/* Frees everything and zeroes the struct; accepts NULL. */
void kd_dataset_release(struct kd_dataset *ds);

/* Checks every label against a class count given by the user (a model's
 * `classes:`, a command-line option) rather than inferred from the labels:
 * KD_ERR_FORMAT naming the dataset's source, the example's row in its file
 * (1-based, ds->rows; for CSV the data row, not counting the header) and the
 * label, e.g. "train.csv: row 7 has label 12, but there are 10 classes
 * (labels 0 to 9)". KD_ERR_ARG when n_classes is 0 or above
 * KD_DATA_MAX_CLASSES. An unlabelled dataset passes. ds is not changed. */
kd_status kd_dataset_check_labels(const struct kd_dataset *ds, size_t n_classes, struct kd_error *err);

/* Allocates N x D features (zeroed), labels when `labelled`, rows = 0..N-1. */
kd_status kd_dataset_init(struct kd_dataset *ds, size_t n, size_t d, int labelled,
                          struct kd_error *err);

/* IDX (the MNIST format): magic 0x00 0x00 type ndim, big-endian dims, data.
 * Reads raw files or gzip (detected by magic bytes, not by name). Images of
 * any ndim >= 1 become rows of prod(dims[1..]) features; unsigned-byte,
 * signed-byte, short, int, float and double element types are accepted.
 * labels_path may be NULL; otherwise it must be a 1-D IDX of the same count,
 * every label in [0, KD_DATA_MAX_CLASSES).
 * Features are the raw values as float (no scaling). */
kd_status kd_data_load_idx(const char *images_path, const char *labels_path,
                           struct kd_dataset *ds, struct kd_error *err);

/* CSV of numbers. */
struct kd_csv_options {
    char delimiter;         /* default ',' when 0 */
    int header;             /* -1 auto-detect (first row has a non-number), 0 no, 1 yes */
    const char *label_name; /* label column by header name, or NULL */
    int label_index;        /* label column by 0-based index; -1 for none (default
                               when label_name is NULL and this is -1) */
};
/* Sets defaults: ',', auto header, no label column. */
void kd_csv_options_init(struct kd_csv_options *o);
/* Every non-label field must parse as a finite number; the label field as an
 * integer in [0, KD_DATA_MAX_CLASSES). Errors say "path:row:column: expected
 * a number, found 'abc'"; rows with a different number of fields are errors
 * too. */
kd_status kd_data_load_csv(const char *path, const struct kd_csv_options *opt,
                           struct kd_dataset *ds, struct kd_error *err);

/* NPY (version 1.0, 2.0, 3.0): C-order float32, float64 or uint8 arrays of
 * ndim 1 (N x 1) or more (rows of prod(shape[1..])); labels_path may be NULL
 * or an NPY of integer type (int8/16/32/64, uint8/16/32) with N elements,
 * every label in [0, KD_DATA_MAX_CLASSES).
 * Fortran order, other dtypes, big-endian and truncated data are errors. */
kd_status kd_data_load_npy(const char *path, const char *labels_path,
                           struct kd_dataset *ds, struct kd_error *err);

/* Writes x as float32 NPY (and y as int32 NPY when labels_path is not NULL). */
kd_status kd_data_save_npy(const struct kd_dataset *ds, const char *path,
                           const char *labels_path, struct kd_error *err);

/* Loads by file extension: .csv, .npy, anything else (including .gz) as IDX. */
kd_status kd_data_load(const char *path, const char *labels_path,
                       const struct kd_csv_options *csv, struct kd_dataset *ds,
                       struct kd_error *err);

/* x = (x - lo) / (hi - lo): e.g. 0, 255 for pixels. */
void kd_data_scale_unit(struct kd_dataset *ds, float lo, float hi);

/* Per-feature standardisation: fit on one dataset, apply to others. */
struct kd_scaler {
    float *mean, *inv_std;  /* (D), owned */
    size_t d;
};
kd_status kd_scaler_fit(struct kd_scaler *s, const struct kd_dataset *ds, struct kd_error *err);
/* The same fitted on the union of n datasets of one width (each example
 * counted once per dataset it is in): a pipeline's training data spread
 * over several named sets. KD_ERR_SHAPE when widths differ, KD_ERR_ARG when
 * they hold no example. A feature constant over all of them (min == max)
 * gets inv_std 1, so scaling maps it to 0 there and never divides by 0. */
kd_status kd_scaler_fit_many(struct kd_scaler *s, const struct kd_dataset *const *ds, size_t n,
                             struct kd_error *err);
/* KD_ERR_SHAPE when widths differ. Constant features get inv_std 1. */
kd_status kd_scaler_apply(const struct kd_scaler *s, struct kd_dataset *ds, struct kd_error *err);
void kd_scaler_release(struct kd_scaler *s);

/* A new dataset holding copies of the listed examples (rows carried over). */
kd_status kd_dataset_subset(const struct kd_dataset *src, const size_t *idx, size_t n,
                            struct kd_dataset *out, struct kd_error *err);

/* Deterministic split: shuffles 0..N-1 with `seed`, then cuts consecutive
 * parts of counts[0], counts[1], ... examples (the sum must be <= N; a count
 * of KD_SPLIT_REST takes whatever is left, at most once). out[] receives
 * n_parts datasets. Same seed, same parts, on every machine. */
#define KD_SPLIT_REST ((size_t)-1)
kd_status kd_data_split(const struct kd_dataset *src, uint64_t seed, const size_t *counts,
                        size_t n_parts, struct kd_dataset *out, struct kd_error *err);
/* Fractions in [0,1] summing to <= 1 (within 1e-9), turned into counts by
 * floor, the remainder going to the last part when the sum is 1. */
kd_status kd_data_split_frac(const struct kd_dataset *src, uint64_t seed, const double *fracs,
                             size_t n_parts, struct kd_dataset *out, struct kd_error *err);

/* ------------------------------------------------------------ text features */

/* struct kd_features (hashed text features, CSR) is a core type
 * (core/kd_core.h): the featuriser here fills it, student/'s embedding bag
 * reads it. */

/* ------------------------------------------------------ retrieval data: BEIR */

/* A retrieval data set in the BEIR layout, as published (MS MARCO, NQ, ...):
 *
 *     DIR/corpus.jsonl       {"_id": "d1", "title": "...", "text": "..."} per line
 *     DIR/queries.jsonl      {"_id": "q1", "text": "..."} per line
 *     DIR/qrels/train.tsv    query-id<TAB>corpus-id<TAB>score, after that header
 *     DIR/qrels/dev.tsv, DIR/qrels/test.tsv
 *
 *     struct kd_beir b;
 *     struct kd_beir_stats stats;
 *     if (kd_beir_load("msmarco", KD_BEIR_WANT(KD_BEIR_DEV), &b, &stats, &err)) ...
 *     const struct kd_beir_qrels *dev = &b.qrels[KD_BEIR_DEV];
 *     for (size_t r = 0; r < dev->n; r++)
 *         use(b.query_texts[dev->rows[r].query], b.doc_texts[dev->rows[r].doc]);
 *     kd_beir_release(&b);
 *
 * Every error names the file and the line (and column where there is one):
 * invalid JSON, invalid UTF-8, a missing, empty or duplicate `_id`, a
 * missing `text`, a qrels header other than `query-id corpus-id score`, a
 * row without three fields, a score that is not an integer, an id the
 * corpus or the queries do not have. Extra JSON keys (e.g. "metadata") are
 * ignored; `_id` may be a JSON string or integer; a missing or null title
 * is "". Blank lines are skipped. Loading is linear in the size of the
 * files (ids are found through hash indices). */
enum kd_beir_split { KD_BEIR_TRAIN = 0, KD_BEIR_DEV = 1, KD_BEIR_TEST = 2 };
#define KD_BEIR_N_SPLITS 3
#define KD_BEIR_WANT(split) (1u << (split))
#define KD_BEIR_ALL 7u

/* One relevance judgement: indices into the queries and the corpus. */
struct kd_beir_qrel {
    uint32_t query, doc;
    int32_t score;          /* > 0 relevant (graded), <= 0 judged not relevant */
};

/* One split's judgements, sorted by query then document. A query that
 * appears only with scores <= 0 has no relevant document: its rows are
 * dropped and it is counted in kd_beir_stats.skipped. A (query, document)
 * pair given twice keeps the row read last (as a Python dict would). */
struct kd_beir_qrels {
    struct kd_beir_qrel *rows;  /* (n), owned */
    size_t n;
    size_t n_queries;           /* distinct queries in rows */
    int loaded;                 /* 1 when this split was asked for and read */
};

struct kd_beir_impl;
struct kd_beir {
    size_t n_docs;              /* N */
    char **doc_ids;             /* (N) */
    char **doc_titles;          /* (N), "" when the file has none */
    char **doc_texts;           /* (N) */
    size_t n_queries;           /* Q */
    char **query_ids;           /* (Q) */
    char **query_texts;         /* (Q) */
    /* (Q) KD_BEIR_WANT bits of the loaded splits whose qrels file names the
     * query in any row (a score <= 0, a dropped or repeated row too): 0 for
     * a query no loaded qrels file mentions */
    uint8_t *query_judged;
    struct kd_beir_qrels qrels[KD_BEIR_N_SPLITS];
    struct kd_beir_impl *impl;  /* the strings and the id indices, owned */
};

/* What loading found, for logs and reports. */
struct kd_beir_stats {
    size_t docs, queries;
    size_t rows[KD_BEIR_N_SPLITS];       /* qrels rows read (after the header) */
    size_t skipped[KD_BEIR_N_SPLITS];    /* queries without a relevant document */
    size_t duplicates[KD_BEIR_N_SPLITS]; /* rows repeating a (query, doc) pair */
};

/* "train", "dev", "test". */
const char *kd_beir_split_name(enum kd_beir_split split);
/* The split called `name`; KD_ERR_ARG naming the three otherwise. */
kd_status kd_beir_split_parse(const char *name, enum kd_beir_split *split, struct kd_error *err);

/* Reads dir's corpus and queries and the qrels of the splits in `splits`
 * (KD_BEIR_WANT bits; a split not asked for may be absent). stats may be
 * NULL. On failure *out is empty (release is still allowed). Free with
 * kd_beir_release. */
kd_status kd_beir_load(const char *dir, unsigned splits, struct kd_beir *out,
                       struct kd_beir_stats *stats, struct kd_error *err);
/* Frees everything and zeroes the struct; accepts NULL. */
void kd_beir_release(struct kd_beir *b);
/* The index of the document / query with this id: 1 and *index when
 * found, 0 otherwise. O(1). */
int kd_beir_find_doc(const struct kd_beir *b, const char *id, size_t *index);
int kd_beir_find_query(const struct kd_beir *b, const char *id, size_t *index);

/* ---------------------------------------------------------- a file of texts */

/* The texts of a file, as `kd encode --texts` reads it: JSON lines, each an
 * object with a string "text" (on the document side, doc_side != 0, a string
 * "title" goes first with a space between, as a BEIR corpus is read; blank
 * lines skipped), when the first non-blank character of the file is '{';
 * otherwise one text per line (blank lines are empty texts; no text after a
 * final line break; a text ends at a NUL byte). CRLF line ends are read as
 * LF. *out gets n_out strings, freed with kd_data_texts_free. Errors:
 * KD_ERR_IO for a file that cannot be read, KD_ERR_FORMAT naming path:line
 * (and the column of invalid JSON) for a line that is not such an object,
 * KD_ERR_ARG for a file without texts. */
kd_status kd_data_load_texts(const char *path, int doc_side, char ***out, size_t *n_out,
                             struct kd_error *err);
/* Frees n texts and the array; accepts NULL. */
void kd_data_texts_free(char **texts, size_t n);

/* ------------------------------------------------ text featurisation (hashed) */

/* fastText-style features without a vocabulary, defined byte for byte so
 * that any reader (scripts/features_numpy.py) reproduces them:
 *
 *   1. Lower case: the bytes A-Z become a-z; every other byte is kept as is
 *      (non-ASCII letters are not case-folded: "É" stays "É").
 *   2. Words: maximal runs of word bytes, which are the ASCII letters and
 *      digits and every byte >= 0x80 (so UTF-8 sequences stay whole); every
 *      other byte (space, punctuation, control) separates words.
 *   3. For each word i in order:
 *      a. word n-grams ending at word i, n = 1 .. words: the key is "w"
 *         followed by words i-n+1 .. i joined by one space;
 *      b. character n-grams of the marked word "<" word ">", whose
 *         characters start at every byte that is not a UTF-8 continuation
 *         byte (0x80-0xBF): for each start character in order, n = min ..
 *         max characters (while they fit), the key is "c" followed by the
 *         n-gram's bytes (the whole "<word>" counts when it is short enough).
 *   4. id = XXH3_64bits_withSeed(key, seed) & (2^log2_buckets - 1).
 *
 * Repeated n-grams are kept (a word said twice weighs twice under mean
 * pooling, as in fastText); a text without words has no features. */
struct kd_text_settings {
    unsigned log2_buckets;  /* 1 .. 31: the table has 2^log2_buckets rows */
    uint64_t seed;          /* XXH3 seed */
    unsigned word_ngrams;   /* 0 (no word features) .. 8 */
    unsigned char_min;      /* 0 with char_max 0: no character features; */
    unsigned char_max;      /* otherwise 1 <= char_min <= char_max <= 16 */
};

/* The defaults: 2^18 buckets, seed 1, word 1-2-grams, character 3-5-grams. */
void kd_text_settings_init(struct kd_text_settings *s);
/* KD_ERR_ARG with a message when a field is out of range or no feature is on. */
kd_status kd_text_settings_check(const struct kd_text_settings *s, struct kd_error *err);

/* The settings as one short line, e.g.
 * "kd-text-v1 buckets=18 seed=1 words=2 chars=3-5" ("chars=0" when off), to
 * store beside a model. Needs at most KD_TEXT_SETTINGS_MAX bytes. */
#define KD_TEXT_SETTINGS_MAX 96
void kd_text_settings_format(const struct kd_text_settings *s, char out[KD_TEXT_SETTINGS_MAX]);
/* Reads such a line: "kd-text-v1" then each of buckets, seed, words and
 * chars exactly once, in any order, separated by spaces. Unknown or
 * repeated keys, malformed or out-of-range values, another version are
 * KD_ERR_FORMAT with a message quoting the culprit; *s is only written on
 * success. */
kd_status kd_text_settings_parse(const char *str, struct kd_text_settings *s,
                                 struct kd_error *err);

/* How many features text[0..len) has (settings checked by the caller). */
size_t kd_featurize_count(const struct kd_text_settings *s, const char *text, size_t len);
/* Writes the features of text[0..len) into ids (room for
 * kd_featurize_count of them); returns that count. Allocates only for texts
 * longer than 2 KiB (KD_ERR_NOMEM is then reported as (size_t)-1). */
size_t kd_featurize_text(const struct kd_text_settings *s, const char *text, size_t len,
                         uint32_t *ids);
/* Features of n texts into *out (CSR; release with kd_features_release).
 * lens may be NULL (texts are then NUL-terminated). threads <= 0 uses as
 * many threads as BLAS does (kd_blas_get_threads: KD_THREADS or the
 * pipeline's `threads:`); small batches use fewer. The result does not depend
 * on the number of threads. */
kd_status kd_featurize(const struct kd_text_settings *s, const char *const *texts,
                       const size_t *lens, size_t n, int threads, struct kd_features *out,
                       struct kd_error *err);

/* ------------------------------------------- text files written atomically */

/* JSON-lines and TSV files written line by line into a temporary file next
 * to `path` and renamed over it by commit, so a reader never sees half a
 * file and a failed run leaves the old one in place:
 *
 *     struct kd_line_writer w;
 *     const char *keys[] = {"_id", "text"}, *vals[] = {"q1", "a \"quoted\" text"};
 *     if (kd_line_writer_open(&w, "out/queries.jsonl", &err) ||
 *         kd_line_writer_json(&w, 2, keys, vals, &err) || kd_line_writer_commit(&w, &err)) ...
 *     kd_line_writer_close(&w);       // after commit, or to discard
 */
struct kd_line_writer {
    FILE *f;
    char *path, *tmp;       /* owned */
    int committed;
};
kd_status kd_line_writer_open(struct kd_line_writer *w, const char *path, struct kd_error *err);
/* One line: a JSON object of n string fields in the given order, escaped by
 * Jansson; a value that is not valid UTF-8 is KD_ERR_ARG naming the key. */
kd_status kd_line_writer_json(struct kd_line_writer *w, size_t n, const char *const *keys,
                              const char *const *values, struct kd_error *err);
/* One line of n tab-separated fields; a field holding a tab or a line
 * break is KD_ERR_ARG (TSV has no quoting). */
kd_status kd_line_writer_tsv(struct kd_line_writer *w, size_t n, const char *const *fields,
                             struct kd_error *err);
/* Flushes, syncs, closes and renames the file into place. */
kd_status kd_line_writer_commit(struct kd_line_writer *w, struct kd_error *err);
/* Removes the temporary file unless committed, frees; accepts NULL. */
void kd_line_writer_close(struct kd_line_writer *w);

/* ------------------------------------------------ WordNet as a BEIR data set */

/* Word-sense retrieval from WordNet's database files (Debian's wordnet-base,
 * format in `man 5 wndb`): document = one synset (title: its words, text: its
 * gloss definition without the quoted examples; _id: the part of speech
 * letter n, v, a or r and the 8-digit offset, e.g. "n02787772"); query = one
 * quoted usage example from a gloss, kept verbatim (_id: the synset's _id,
 * "-" and the example's number, e.g. "n02787772-1"; an extra "word" key names
 * the word it illustrates); relevant = the synset the example belongs to.
 *
 * Only examples of words with several senses (several synsets of the same
 * part of speech) are queries: the other senses of the word are the hard
 * negatives, and the corpus has them all. The word of an example is the
 * first of the synset's words found at the start of a word of the example
 * (case-insensitive, a final "e" dropped so that "breathe" finds
 * "breathing"); when none is found, the synset's first word. An example
 * given verbatim in several synsets is one query with all of them relevant.
 * Queries are shuffled with the seed and cut into test, dev and train. */
#define KD_WORDNET_DIR "/usr/share/wordnet"

struct kd_wordnet_options {
    const char *wordnet_dir;    /* holds data.noun, data.verb, data.adj, data.adv */
    const char *out_dir;        /* created when missing, with qrels/ */
    uint64_t seed;              /* the split's shuffle */
    double dev_frac, test_frac; /* shares of the queries (floor); train gets the rest */
};
/* KD_WORDNET_DIR, no out_dir, seed 1, 0.1 and 0.1. */
void kd_wordnet_options_init(struct kd_wordnet_options *o);

struct kd_wordnet_stats {
    size_t docs;                        /* synsets */
    size_t examples;                    /* quoted examples in the glosses */
    size_t single_sense;                /* examples dropped: their word has one sense */
    size_t merged;                      /* examples merged into an identical query */
    size_t unmatched;                   /* kept examples not containing any synset word */
    size_t queries;                     /* written */
    size_t split[KD_BEIR_N_SPLITS];     /* queries per split */
    double mean_senses;                 /* senses of the query word, mean over queries */
};

/* Reads the four data files and writes out_dir/corpus.jsonl, queries.jsonl
 * and qrels/{train,dev,test}.tsv (each atomically). stats may be NULL.
 * Malformed lines are KD_ERR_FORMAT with path:line. */
kd_status kd_wordnet_convert(const struct kd_wordnet_options *o, struct kd_wordnet_stats *stats,
                             struct kd_error *err);

/* ------------------------------------------ dictd dictionaries as BEIR data */

/* A "reverse dictionary" task from a dictionary in the dictd format (Debian's
 * dict-foldoc, dict-gcide, dict-jargon, ...: NAME.index and NAME.dict.dz).
 * The index has one line per headword, "headword TAB offset TAB length" with
 * an optional fourth field, the headword as shown (dictfmt's
 * --index-keep-orig); offset and length locate the entry in the uncompressed
 * .dict data and are numbers in dictd's base64 digits
 * (A-Z a-z 0-9 + /, worth 0 to 63, the most significant first). Headwords
 * starting with "00-database-" or "00database" are the database's own
 * information and are skipped. The .dict file is read raw or gzip (dictzip
 * is gzip).
 *
 * entry = the text at one offset (several headwords may share it);
 * document = one entry: _id "e" and the decimal offset, title = its
 * headwords (as shown, index order, joined by ", "), text = the entry's
 * paragraphs after the first (whitespace runs made one space, paragraphs
 * joined by a space). The entry's leading lines up to its first blank line
 * are dropped when the first of them is one of its headwords (dictfmt writes
 * the headwords there), ignoring ASCII case.
 * query = the entry's first paragraph (its definition) with every
 * occurrence of its headwords removed (whole words, ASCII case ignored, the
 * longest first), when it keeps at least min_words words (a word: a run of
 * ASCII letters and digits and non-ASCII bytes); _id "q" and the offset, an
 * extra key "word" naming the entry's first headword. relevant = the entry
 * (score 1). Definitions that become the same query text are one query with
 * all their entries relevant. Queries are shuffled with the seed and cut
 * into test, dev and train, as for WordNet. */
struct kd_dictd_options {
    const char *index_path;     /* NAME.index */
    const char *dict_path;      /* NAME.dict.dz or NAME.dict */
    const char *out_dir;        /* created when missing, with qrels/ */
    uint64_t seed;              /* the split's shuffle */
    double dev_frac, test_frac; /* shares of the queries (floor); train gets the rest */
    size_t min_words;           /* words a query needs once its headwords are removed */
};
/* No paths, seed 1, 0.1 and 0.1, min_words 3. */
void kd_dictd_options_init(struct kd_dictd_options *o);

struct kd_dictd_stats {
    size_t headwords;                   /* index lines read, but the database's own */
    size_t docs;                        /* entries (distinct offsets) */
    size_t short_defs;                  /* entries without a query: too few words left */
    size_t merged;                      /* definitions merged into an identical query */
    size_t queries;                     /* written */
    size_t split[KD_BEIR_N_SPLITS];     /* queries per split */
    double query_words;                 /* words per query, mean */
    double doc_words;                   /* words per document text, mean */
};

/* Reads the index and the dictionary and writes out_dir/corpus.jsonl,
 * queries.jsonl and qrels/{train,dev,test}.tsv (each atomically). stats may
 * be NULL. A malformed index line is KD_ERR_FORMAT with index_path:line; an
 * entry past the end of the data or not valid UTF-8 names its headword and
 * index line. */
kd_status kd_dictd_convert(const struct kd_dictd_options *o, struct kd_dictd_stats *stats,
                           struct kd_error *err);

/* The Fashion-MNIST files shipped by Debian's dataset-fashion-mnist. */
#define KD_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* ------------------------------------------------------------- CSV writing */

/* RFC 4180 CSV written field by field: text is quoted when it holds a comma,
 * a quote or a line break; numbers are written in the C locale.
 *
 *     struct kd_csv_writer w;
 *     if (kd_csv_writer_open(&w, "out.csv", &err))
 *         return err.status;
 *     kd_csv_write_text(&w, "name");
 *     kd_csv_write_float(&w, 0.1f);          // "0.1"
 *     kd_csv_end_row(&w);
 *     return kd_csv_writer_close(&w, &err);  // a failed write shows here
 */
struct kd_csv_writer {
    FILE *f;
    const char *path; /* borrowed, for messages */
    int at_start;     /* no field written on this row yet */
};
/* Creates (or truncates) path; KD_ERR_IO "cannot create 'path': ..." */
kd_status kd_csv_writer_open(struct kd_csv_writer *w, const char *path, struct kd_error *err);
/* One field; NULL writes an empty field. */
void kd_csv_write_text(struct kd_csv_writer *w, const char *s);
void kd_csv_write_int(struct kd_csv_writer *w, long long v);
/* The shortest decimal (6 to 9 digits) that reads back as the same float32. */
void kd_csv_write_float(struct kd_csv_writer *w, float v);
void kd_csv_end_row(struct kd_csv_writer *w);
/* Closes the file; KD_ERR_IO "cannot write 'path': ..." when any write or the
 * close failed. Accepts a writer whose open failed. */
kd_status kd_csv_writer_close(struct kd_csv_writer *w, struct kd_error *err);

/* Float32 vectors keyed by input, as `kd store export` writes them: header
 * input_hash,dataset,row[,class],v0,...,v(d-1); input_hash in hex, class the
 * index of the row's largest value. All arrays are borrowed. */
struct kd_keyed_rows {
    const float *vec;             /* (n, d); unused when d is 0 */
    const struct kd_hash *keys;   /* (n) */
    const char *const *datasets;  /* (n) or NULL; NULL entries: empty field */
    const int64_t *rows;          /* (n) or NULL; negative: empty field */
    const unsigned char *present; /* (n) or NULL; 0: empty class and values */
    size_t n, d;
    int with_class;               /* write the class column */
};
kd_status kd_data_save_keyed_csv(const char *path, const struct kd_keyed_rows *t, struct kd_error *err);

/* A model's outputs p (N, C) as CSV: header row,class,p0,...,p(C-1); row is
 * rows[i] (the example's row in its file; i when rows is NULL), class the
 * index of the largest p. */
kd_status kd_data_save_predictions_csv(const char *path, const struct kd_tensor *p, const size_t *rows,
                                       struct kd_error *err);

/* ---------------------------------------------------------- TREC run files */

/* Writes a TREC run file that trec_eval reads, one line per retrieved document:
 *   qid Q0 docid rank score tag
 * ranks from 1 in list order, scores with 9 significant digits (a float32
 * round-trips). ranked/scores are (n_queries, k) best first, as
 * kd_search_topk returns them; an index SIZE_MAX ends a query's list. qids
 * (n_queries) and docids (indexed by ranked) are borrowed strings; an id or
 * tag that is empty or holds white space is refused (KD_ERR_ARG), as it would
 * shift trec_eval's columns. Note that trec_eval re-sorts each query by score
 * and breaks ties by docid, not by the rank column. (data/trec.c) */
kd_status kd_trec_write_run(const char *path, const char *const *qids, size_t n_queries,
                            const char *const *docids, size_t n_docs, const size_t *ranked,
                            const float *scores, size_t k, const char *tag, struct kd_error *err);

#endif /* KD_DATA_H */

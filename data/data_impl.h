/*
 * Private to data/: a byte reader over raw or gzip files (zlib detects which
 * from the magic bytes), element decoding for the binary formats, and small
 * dataset helpers shared by the loaders.
 *
 * The reader keeps the path so that every error it reports names the file,
 * and counts the decompressed bytes it has handed out so that truncation
 * messages can say how much data there really was.
 */
#ifndef KD_DATA_IMPL_H
#define KD_DATA_IMPL_H

#include <zlib.h>

#include "data/kd_data.h"

struct kd_data_reader {
    gzFile gz;
    const char *path;     /* borrowed, for messages */
    uint64_t file_size;   /* bytes on disk (compressed size for gzip) */
    uint64_t pos;         /* decompressed bytes consumed so far */
    int cut_short;        /* a gzip stream ended before its end marker */
};

/* Opens path for reading; KD_ERR_IO with strerror when it cannot. */
kd_status kd_data_reader_open(struct kd_data_reader *r, const char *path, struct kd_error *err);
/* Reads up to n bytes into buf; *got < n only at the end of the data (a cut
 * gzip stream sets cut_short). Decompression errors are KD_ERR_FORMAT. */
kd_status kd_data_reader_read(struct kd_data_reader *r, void *buf, size_t n, size_t *got,
                              struct kd_error *err);
/* 1 when the file is not gzip (valid once something was read). */
int kd_data_reader_is_raw(struct kd_data_reader *r);
/* Reads the whole rest of the file into a NUL-terminated heap buffer (free
 * with free()). */
kd_status kd_data_reader_slurp(struct kd_data_reader *r, char **out, size_t *len,
                               struct kd_error *err);
/* Before allocating for `expected` bytes of payload: for raw files the size
 * on disk already tells whether the data is truncated or followed by garbage,
 * so bogus headers are caught without allocating what they declare. */
kd_status kd_data_reader_precheck(struct kd_data_reader *r, uint64_t expected, struct kd_error *err);
/* After the payload: any byte left is trailing garbage. */
kd_status kd_data_reader_expect_end(struct kd_data_reader *r, uint64_t expected,
                                    struct kd_error *err);
/* "path: truncated data: expected N bytes of data, found M" (with a note
 * when the gzip stream itself was cut). */
kd_status kd_data_reader_truncated(struct kd_data_reader *r, uint64_t expected, uint64_t found,
                                   struct kd_error *err);
/* After allocating for `expected` bytes failed: a gzip file's header may
 * declare far more data than the file holds, so count what is really there;
 * the truncation error replaces the out-of-memory one when it is short.
 * Returns the status that stands. */
kd_status kd_data_reader_explain_nomem(struct kd_data_reader *r, uint64_t expected,
                                       struct kd_error *err);
/* Accepts a reader that was never opened. */
void kd_data_reader_close(struct kd_data_reader *r);

/* Element types of the binary formats: IDX is big-endian, NPY little. */
enum kd_data_elem {
    KD_ELEM_U8,
    KD_ELEM_I8,
    KD_ELEM_I16BE,
    KD_ELEM_I32BE,
    KD_ELEM_F32BE,
    KD_ELEM_F64BE,
    KD_ELEM_I16LE,
    KD_ELEM_I32LE,
    KD_ELEM_I64LE,
    KD_ELEM_U16LE,
    KD_ELEM_U32LE,
    KD_ELEM_F32LE,
    KD_ELEM_F64LE
};

size_t kd_data_elem_size(enum kd_data_elem e);
int kd_data_elem_is_float(enum kd_data_elem e);

/* Reads n * d elements into x (n rows of d floats), in chunks. Non-finite
 * values (or doubles beyond float32 range) are KD_ERR_FORMAT naming the item
 * and feature; too little data is the truncation error. */
kd_status kd_data_read_features(struct kd_data_reader *r, enum kd_data_elem e, size_t n, size_t d,
                                float *x, struct kd_error *err);
/* Reads n integer labels into y; negative values and values >=
 * KD_DATA_MAX_CLASSES are KD_ERR_FORMAT naming the item (1-based). */
kd_status kd_data_read_labels(struct kd_data_reader *r, enum kd_data_elem e, size_t n, int32_t *y,
                              struct kd_error *err);

/* An (n, d) dataset whose feature memory is allocated but not zeroed (the
 * loader overwrites every value); rows = 0..n-1; labels when labelled. */
kd_status kd_data_alloc(struct kd_dataset *ds, size_t n, size_t d, int labelled, const char *path,
                        struct kd_error *err);
/* Copies path into ds->source, cut to fit. */
void kd_data_set_source(struct kd_dataset *ds, const char *path);
/* max label + 1 (0 for no labels). */
size_t kd_data_count_classes(const int32_t *y, size_t n);


/* ------------------------------------------------- strings (data/strings.c) */

/* Text loaders keep millions of short strings: they live in big blocks that
 * never move (pointers into them stay valid), freed all at once. */
struct kd_arena_block;
struct kd_arena {
    struct kd_arena_block *head;
};
/* A NUL-terminated copy of s[0..len) in the arena; NULL when out of memory. */
char *kd_arena_strndup(struct kd_arena *a, const char *s, size_t len);
/* Frees every block; accepts NULL and a zeroed arena. */
void kd_arena_release(struct kd_arena *a);

/* Open-addressing hash index from strings to their position in an array the
 * caller owns (keys[i] is the string of index i): O(1) look-ups, so loading
 * N ids costs O(N). The index stores positions and 32-bit hash tags, never
 * the strings; every call is given the current keys array. At most
 * UINT32_MAX - 1 entries. */
struct kd_str_index {
    uint64_t *slots;   /* (mask + 1): tag << 32 | (index + 1), 0 = empty */
    size_t mask, n;
};
#define KD_STR_INDEX_NONE ((size_t)-1)
/* An empty index sized for about `expected` entries (it grows past that). */
kd_status kd_str_index_init(struct kd_str_index *ix, size_t expected, struct kd_error *err);
/* The index whose key equals s[0..len), or KD_STR_INDEX_NONE. */
size_t kd_str_index_find(const struct kd_str_index *ix, char *const *keys, const char *s,
                         size_t len);
/* Adds index i (keys[i] is its string). When an equal key is already
 * present nothing is added and *dup receives its index; otherwise *dup is
 * KD_STR_INDEX_NONE. KD_ERR_NOMEM when growing fails. */
kd_status kd_str_index_add(struct kd_str_index *ix, char *const *keys, size_t i, size_t *dup,
                           struct kd_error *err);
void kd_str_index_release(struct kd_str_index *ix);

/* Length of the valid UTF-8 prefix of s[0..len) (== len when all of it is
 * valid): no overlong forms, no surrogates, nothing above U+10FFFF. */
size_t kd_utf8_valid_prefix(const char *s, size_t len);

/* ------------------------------------------ converters' output (data/beir_write.c) */

/* The split of each of nq queries: shuffled by seed, the first test_frac
 * of them test, the next dev_frac dev, the rest train. *split (nq values of
 * enum kd_beir_split, free with free()); counts: queries per split. */
kd_status kd_beir_assign_splits(size_t nq, uint64_t seed, double dev_frac, double test_frac, unsigned char **split,
                                size_t counts[KD_BEIR_N_SPLITS], struct kd_error *err);
/* What a converter writes, read through callbacks over its own tables:
 * document i's id, title and text; query q's id (written into idbuf when it
 * is made on the fly), text and word; judgement k (of n_judged), which may
 * be skipped (0) or names query *q and document *d (relevance 1). */
struct kd_beir_rows {
    size_t n_docs, n_queries, n_judged;
    void *ctx;
    void (*doc)(void *ctx, size_t i, const char *v[3]);
    void (*query)(void *ctx, size_t q, char *idbuf, size_t idcap, const char *v[3]);
    int (*judged)(void *ctx, size_t k, size_t *q, size_t *d);
};
/* Creates out and out/qrels when missing and writes corpus.jsonl,
 * queries.jsonl and qrels/{train,dev,test}.tsv (judgements of the queries
 * whose split[q] is that split), each replaced whole (kd_line_writer). */
kd_status kd_beir_write_dir(const char *out, const struct kd_beir_rows *rows, const unsigned char *split,
                            struct kd_error *err);

#endif /* KD_DATA_IMPL_H */

/*
 * kd store: the label store. One SQLite file caches every teacher answer kd
 * has paid for, and records what each run did (stages, metrics, selected
 * examples, example weights, exported files), so that a rerun never asks a
 * teacher twice and a person can question the file with plain `sqlite3`.
 * Every SQL statement of kd lives in this module.
 *
 *     struct kd_store *st = NULL;
 *     struct kd_error err = {0};
 *     int64_t teacher;
 *     if (kd_store_open("runs/fmnist/kd.db", NULL, &st, &err) ||
 *         kd_store_teacher_register(st, "mlp-1024", KD_TEACHER_MODEL, fingerprint_hex,
 *                                   "hidden: 1024-1024", &teacher, &err))
 *         goto fail;
 *     // keys[i] = kd_store_input_hash(x + i * D, D) for the B inputs (B, D)
 *     size_t n_missing;
 *     if (kd_store_lookup(st, teacher, KD_STORE_LOGITS, keys, B, C, logits, NULL,
 *                         missing, &n_missing, &err))          // logits (B, C)
 *         goto fail;
 *     // ask the teacher for the n_missing inputs listed in missing[], then
 *     if (kd_store_put(st, teacher, KD_STORE_LOGITS, new_keys, n_missing, C, new_logits,
 *                      NULL, NULL, &err))
 *         goto fail;
 *     kd_store_close(st);
 *
 * Files and durability. The store is one SQLite file (kd's default is kd.db
 * in the run directory) in WAL mode with synchronous=NORMAL: each put is
 * one transaction, and a process killed at any moment (kill -9) loses at most
 * the put in flight; the file always passes PRAGMA integrity_check. The WAL
 * (path-wal) can need several times the file's size on disk while writing
 * (docs/store.md, "Disk space"). Several
 * processes may read and write one store at the same time: writers take
 * turns, waiting up to the busy time-out (10 s by default) for each other.
 * One handle must not be used by two threads at once.
 *
 * Errors. Every failure is a status with a message that names the file and
 * what to do: KD_ERR_STORE for SQLite failures (the purpose of the statement,
 * SQLite's message; a full disk, a lock held too long, a read-only or
 * damaged file each get their own wording), KD_ERR_FORMAT for a file that is
 * not a kd label store or is from a newer kd, KD_ERR_SHAPE for an answer
 * width that does not match the teacher's, KD_ERR_ARG for bad values,
 * KD_ERR_NOT_FOUND for an unknown teacher. A failed put or record function
 * rolls its transaction back: what was stored before stays as it was. The
 * store never prints (warnings go through kd_log) and never exits.
 *
 * Schema (version 3, in PRAGMA user_version; docs/store.md has every column
 * and example queries). An input is identified by the XXH3-128 hash of its
 * float32 features as the teacher receives them, kept as two signed 64-bit
 * integers (hash_hi, hash_lo: the hash's high and low halves) and shown as
 * 32 hex digits (kd_hash_hex) in input_hash: a generated column of the
 * small tables, a column of the view teacher_answers (answers itself has
 * no generated columns: SQLite computes them on every insert). Times are
 * Unix seconds (UTC): datetime(created_at, 'unixepoch') shows them. An
 * older schema is migrated on open (version 1 is the first); a newer one
 * is refused, naming the kd version it needs (meta.kd_version_needed).
 *
 *   meta(key, value)                    created_by, kd_version_needed
 *   teachers(id, name, kind, fingerprint, config, created_at)
 *       one row per (name, fingerprint): a changed teacher is a new teacher,
 *       its earlier answers are kept but never served for it
 *   teacher_outputs(teacher_id, kind, dim, kind_name)
 *       the width of each kind of answer, fixed by the first put
 *   answers(answer_id, teacher_id, kind, hash_hi, hash_lo, dim, vec, class,
 *           confidence, entropy, margin, score, norm, dataset, row, source_hi,
 *           source_lo, source_row, strategy, round, created_at)
 *       one answer per (teacher_id, kind, hash_hi, hash_lo), appended
 *       (answer_id grows); no index on the key: kd finds answers through
 *       answer_keys; vec is dim float32 little-endian; kind 0 logits,
 *       1 probabilities, 2 score, 3 embedding
 *   answer_keys(teacher_id, kind, run, last_hi, last_lo, n, keys),
 *   answer_runs(teacher_id, kind, run, n, sum)
 *       the key directory (version 3; store/keys.c): sorted runs of
 *       (hash_hi, hash_lo, answer_id) entries in blocks of 512
 *   kinds(id, name)                     the four kinds by name
 *   teacher_answers                     a view: answers with teacher (name),
 *       fingerprint, kind_name, input_hash and source_hash (hex) in front
 *   examples(dataset, row, hash_hi, hash_lo, label, split, input_hash)
 *       the inputs a run loaded, with their gold label when known
 *   runs(id, name, pipeline, pipeline_hash, status, message, kd_version,
 *        started_at, finished_at)
 *   stages(id, run_id, position, name, round, status, message, started_at,
 *          finished_at)
 *   metrics(id, run_id, stage_id, step, name, value, created_at)
 *   selections(run_id, round, hash_hi, hash_lo, dataset, row, strategy,
 *              score, probability, weight, input_hash)
 *   example_weights(run_id, epoch, hash_hi, hash_lo, dataset, row, weight,
 *                   noise, input_hash)
 *   artefacts(id, run_id, path, format, hash, created_at)
 *   corpora, corpus_docs, corpus_fts_<id>, corpus_vocab_<id>, pairs,
 *   pair_scores: retrieval (version 2), in the last section of this file
 *
 * SQL functions registered on every connection kd opens (so inside
 * `kd store sql`, not in the stock sqlite3 shell): kd_vec_len(v),
 * kd_vec_json(v), kd_vec_get(v, i), kd_vec_argmax(v), kd_vec_max(v),
 * kd_vec_norm(v), kd_vec_softmax(v), kd_vec_dot(a, b), kd_vec_cosine(a, b).
 */
#ifndef KD_STORE_H
#define KD_STORE_H

#include "core/kd_core.h"

#include <stdint.h>

/* The schema version this kd writes (PRAGMA user_version). */
#define KD_STORE_SCHEMA_VERSION 3

/* ------------------------------------------------------------------ opening */

struct kd_store; /* an open store; opaque */

struct kd_store_options {
    int read_only;       /* never write: no creation, no migration (default 0) */
    int must_exist;      /* KD_ERR_NOT_FOUND instead of creating a new file (0) */
    int busy_timeout_ms; /* how long to wait for another process's lock (10000) */
    int cache_mb;        /* SQLite page cache (64) */
    int64_t max_pages;   /* > 0: cap the file at this many pages; tests use it to
                            simulate a full disk (0: no cap) */
};

/* Sets the defaults shown above. */
void kd_store_options_init(struct kd_store_options *o);

/* Opens the store at path (opt NULL: defaults), creating it when absent
 * (unless must_exist or read_only) and migrating an older schema. A file
 * that is not SQLite, an SQLite file with other tables, a damaged file or a
 * store from a newer kd (the message names the kd version it needs) is
 * refused, as is a read-only file or directory when writing is wanted
 * (the message says which and what to do). *out is NULL on failure; close
 * a store with kd_store_close. */
kd_status kd_store_open(const char *path, const struct kd_store_options *opt, struct kd_store **out,
                        struct kd_error *err);
/* Finishes statements and closes the file; accepts NULL. */
void kd_store_close(struct kd_store *st);
/* The path given to kd_store_open. */
const char *kd_store_path(const struct kd_store *st);

/* ------------------------------------------------------------------ teachers */

enum kd_teacher_kind { KD_TEACHER_MODEL = 0, KD_TEACHER_EXEC = 1, KD_TEACHER_TABLE = 2 };

/* "model", "exec", "table"; NULL for an unknown value. */
const char *kd_teacher_kind_name(enum kd_teacher_kind kind);
/* Parses one of those names; KD_ERR_ARG (naming the choices) otherwise. */
kd_status kd_teacher_kind_parse(const char *s, enum kd_teacher_kind *out, struct kd_error *err);

#define KD_STORE_NAME_MAX 256        /* teacher names: 1..255 bytes */
#define KD_STORE_FINGERPRINT_MAX 128 /* fingerprints: 1..128 hex digits */

struct kd_store_teacher {
    int64_t id;
    char name[KD_STORE_NAME_MAX];
    enum kd_teacher_kind kind;
    char fingerprint[KD_STORE_FINGERPRINT_MAX + 1]; /* lower-case hex */
    double created_at;                              /* Unix seconds */
};

/* The teacher (name, fingerprint): its id in *id, created when new.
 * fingerprint is a hex string the caller computes over everything that
 * changes the teacher's answers (upper case is stored as lower case);
 * config is free text kept for people (may be NULL). Registering a name
 * with a new fingerprint gives a new id, so answers of the old version are
 * never served for the new one (they stay in the file; kd_log says so at
 * INFO level). The same name and fingerprint with another kind is
 * KD_ERR_ARG. */
kd_status kd_store_teacher_register(struct kd_store *st, const char *name, enum kd_teacher_kind kind,
                                    const char *fingerprint, const char *config, int64_t *id,
                                    struct kd_error *err);
/* The teacher called name with that fingerprint, or, when fingerprint is
 * NULL, the one registered last under that name. KD_ERR_NOT_FOUND (listing
 * the names the store knows) when there is none. */
kd_status kd_store_teacher_find(struct kd_store *st, const char *name, const char *fingerprint,
                                struct kd_store_teacher *out, struct kd_error *err);

/* ------------------------------------------------------------------- answers */

enum kd_store_kind {
    KD_STORE_LOGITS = 0,        /* class scores before softmax, (C) */
    KD_STORE_PROBABILITIES = 1, /* class probabilities, (C), each row sums to 1 */
    KD_STORE_SCORE = 2,         /* one number, e.g. a query-document relevance, (1) */
    KD_STORE_EMBEDDING = 3      /* a vector, (E) */
};
#define KD_STORE_N_KINDS 4

/* "logits", "probabilities", "score", "embedding"; NULL for an unknown value. */
const char *kd_store_kind_name(enum kd_store_kind kind);
/* Parses one of those names; KD_ERR_ARG (naming the choices) otherwise. */
kd_status kd_store_kind_parse(const char *s, enum kd_store_kind *out, struct kd_error *err);

/* The key of an input: XXH3-128 over its D float32 features as
 * little-endian bytes, i.e. kd_hash_bytes(x, D * sizeof(float)) on a
 * little-endian machine. Hash exactly what the teacher receives (after any
 * scaling), so the same input always finds its answer. */
struct kd_hash kd_store_input_hash(const float *x, size_t d);

/* Where an input came from; every field is optional. A dataset example has
 * dataset and row; a generated one (e.g. by TGT exploration) has the
 * strategy, the round, and the example it was made from (source, with
 * has_source set, and its row in dataset as source_row). */
struct kd_store_origin {
    const char *dataset;   /* dataset name, NULL when unknown */
    int64_t row;           /* 0-based row in dataset, -1 when none */
    const char *strategy;  /* generating strategy, NULL for dataset rows */
    int64_t round;         /* selection round, -1 when none */
    int has_source;        /* source and source_row are set */
    struct kd_hash source; /* the example this one was generated from */
    int64_t source_row;    /* its row in dataset, -1 when unknown */
};
/* An origin with every field absent (row, round, source_row = -1). */
struct kd_store_origin kd_store_origin_none(void);

/* Stores n answers of width d (answers (n, d), row i for keys[i]) by
 * `teacher` in one transaction. origins is NULL or n entries.
 * Answers already in the store are kept as they are and the new ones for
 * the same key are ignored (the first answer wins; a rerun never overwrites
 * one); duplicate keys inside the batch likewise keep the first. *n_added
 * (may be NULL) receives how many were new.
 * Checked before anything is written: the teacher exists; d matches the
 * width this teacher's earlier answers of this kind have (the first put
 * fixes it; KD_ERR_SHAPE gives both widths); scores have d = 1; every value
 * is finite; probabilities are >= 0 and sum to 1 within 1e-3.
 * The store computes, for logits (through a softmax) and probabilities:
 * class (argmax), confidence (top probability), entropy (nats), margin (top
 * minus second probability, 1 for d = 1); for scores: score; for every
 * kind: norm (L2 of the stored vector).
 * A put appends its rows (schema version 3), so its cost does not grow
 * with the store, but each put is a transaction with its own commit and run
 * of keys: into a teacher with 10^6 answers of 10 floats, one core stores
 * about 600,000 answers/s in puts of 100,000, 240,000/s in puts of 10,000
 * and 185,000/s in puts of 1,000 (bench/bench_store.c). A fast teacher
 * should gather answers and put every second or so, not every request:
 * kd_store_writer does that. */
kd_status kd_store_put(struct kd_store *st, int64_t teacher, enum kd_store_kind kind,
                       const struct kd_hash *keys, size_t n, size_t d, const float *answers,
                       const struct kd_store_origin *origins, size_t *n_added, struct kd_error *err);

/* Looks up the n keys' answers of `teacher` and kind, in one read
 * transaction. For a key that is present, row i of out (n, d) receives the
 * answer and found[i] = 1; for a missing key found[i] = 0 and row i of out
 * is left as it was. out, found and missing may each be NULL. missing
 * (room for n) receives the indices of the missing keys in input order,
 * *n_missing (may be NULL) their count. When the teacher has no answers of
 * this kind yet every key is missing; when it has, d must be their width
 * (KD_ERR_SHAPE otherwise). */
kd_status kd_store_lookup(struct kd_store *st, int64_t teacher, enum kd_store_kind kind,
                          const struct kd_hash *keys, size_t n, size_t d, float *out,
                          unsigned char *found, size_t *missing, size_t *n_missing,
                          struct kd_error *err);

/* A writer gathers the answers of one teacher and kind and stores them in
 * one put when it holds max_rows of them, or when an add comes max_seconds
 * or more after the oldest one it holds, and on kd_store_writer_flush. A
 * killed process loses at most what the writer holds; buffered answers are
 * not seen by lookups until they are stored.
 *     kd_store_writer_new(st, teacher, KD_STORE_LOGITS, C, 100000, 1.0, &w, &err);
 *     for each teacher batch: kd_store_writer_add(w, keys, B, logits, origins, &err);
 *     kd_store_writer_flush(w, NULL, &err);
 *     kd_store_writer_free(w);
 * Values are checked (finite, probabilities summing to 1) on add, the width
 * against the store on new and on each put. Strings of origins are copied. */
struct kd_store_writer;
kd_status kd_store_writer_new(struct kd_store *st, int64_t teacher, enum kd_store_kind kind,
                              size_t d, size_t max_rows, double max_seconds,
                              struct kd_store_writer **out, struct kd_error *err);
/* Buffers n answers (answers (n, d)); may store what is buffered first.
 * On a failed put the answers stay buffered (flush again, or free). */
kd_status kd_store_writer_add(struct kd_store_writer *w, const struct kd_hash *keys, size_t n,
                              const float *answers, const struct kd_store_origin *origins,
                              struct kd_error *err);
/* Stores what is buffered; *n_added (may be NULL) counts the new answers
 * stored by this writer since the last flush. */
kd_status kd_store_writer_flush(struct kd_store_writer *w, size_t *n_added, struct kd_error *err);
/* Makes the writer store in a thread of its own, through a second
 * connection to the store's file (opened with the same options): an add
 * that fills the buffer hands it to the thread and returns at once, so the
 * caller computes its next batch while the last is being stored. While the
 * thread is busy, adds go on gathering, up to 8 times max_rows (and at most
 * 256 MiB of answers); only then does an add wait. Bigger puts cost about
 * what small ones do in a big store, so the writer keeps pace with a fast
 * teacher. A failed put of the thread is returned by the next add that
 * hands over, or by flush, and its answers go back into the buffer (as
 * when a put fails in the caller's thread); flush tries them again, with
 * what was gathered since, and returns the earlier failure only if that
 * fails too; free drops what is left, with a warning. A killed
 * process loses at most the put in progress and what was gathered
 * meanwhile. The thread blocks asynchronous signals. The caller's own
 * handle sees answers once their put is committed; flush waits for that.
 * Call before the first add. */
kd_status kd_store_writer_background(struct kd_store_writer *w, struct kd_error *err);
/* The puts the background thread has committed since the writer was made
 * (0 for a writer that stores in the caller's thread). */
size_t kd_store_writer_background_puts(struct kd_store_writer *w);
/* Frees the writer, dropping answers still buffered (flush first; a
 * background writer first finishes the put it is doing); accepts NULL. */
void kd_store_writer_free(struct kd_store_writer *w);

/* How many answers of this kind the teacher has in the store. */
kd_status kd_store_count(struct kd_store *st, int64_t teacher, enum kd_store_kind kind, int64_t *n,
                         struct kd_error *err);
/* The width of the teacher's answers of this kind; 0 when it has none yet. */
kd_status kd_store_width(struct kd_store *st, int64_t teacher, enum kd_store_kind kind, size_t *d,
                         struct kd_error *err);

/* One stored answer, as handed to a kd_store_each_answer callback. Pointers
 * are valid during the call only. Absent values: class -1, NaN reals,
 * NULL strings, row/round/source_row -1. */
struct kd_store_answer {
    struct kd_hash key;
    size_t d;
    const float *vec; /* (d) */
    int64_t class_;
    double confidence, entropy, margin, score, norm;
    struct kd_store_origin origin;
    int64_t created_at;
};
/* Returns 0 to go on, non-zero to stop early (not an error). */
typedef int (*kd_store_answer_fn)(void *ctx, const struct kd_store_answer *a);
/* Calls fn for every answer of the teacher and kind, ordered by dataset and
 * row (answers without a dataset last), then by key. */
kd_status kd_store_each_answer(struct kd_store *st, int64_t teacher, enum kd_store_kind kind,
                               kd_store_answer_fn fn, void *ctx, struct kd_error *err);

/* ------------------------------------------------------- examples (gold) */

/* An input a run loaded: its dataset and row, content hash, gold label
 * (-1 when unlabelled) and split ("gold", "pool", "test"...; may be NULL). */
struct kd_store_example {
    const char *dataset;
    int64_t row;
    struct kd_hash key;
    int64_t label;
    const char *split;
};
/* Records n examples in one transaction; a (dataset, row) recorded before
 * is replaced (its hash, label and split updated). */
kd_status kd_store_put_examples(struct kd_store *st, const struct kd_store_example *ex, size_t n,
                                struct kd_error *err);

/* ------------------------------------------------------------- run registry */

enum kd_store_status {
    KD_STORE_RUNNING = 0,
    KD_STORE_OK = 1,
    KD_STORE_FAILED = 2,
    KD_STORE_INTERRUPTED = 3
};
/* "running", "ok", "failed", "interrupted"; NULL for an unknown value. */
const char *kd_store_status_name(enum kd_store_status status);

/* Starts a run (status running, started now, this kd's version): name may be
 * NULL; pipeline is the pipeline's text, hashed (XXH3-128, hex) by the store
 * into pipeline_hash. */
kd_status kd_store_run_begin(struct kd_store *st, const char *name, const char *pipeline,
                             int64_t *run, struct kd_error *err);
/* Ends a run with status (not RUNNING) and an optional message (e.g. the
 * error that stopped it); finished now. */
kd_status kd_store_run_finish(struct kd_store *st, int64_t run, enum kd_store_status status,
                              const char *message, struct kd_error *err);

/* Starts stage `name` of a run at 0-based position (its place in the
 * run's order, unique per run) in selection round `round` (-1: none). */
kd_status kd_store_stage_begin(struct kd_store *st, int64_t run, const char *name, int64_t position,
                               int64_t round, int64_t *stage, struct kd_error *err);
kd_status kd_store_stage_finish(struct kd_store *st, int64_t stage, enum kd_store_status status,
                                const char *message, struct kd_error *err);

/* A measured value at a step (epoch, batch, round... -1: none). */
struct kd_store_metric {
    const char *name;
    int64_t step;
    double value;
};
/* Records n metrics of a run (and stage; 0 for none) in one transaction. */
kd_status kd_store_put_metrics(struct kd_store *st, int64_t run, int64_t stage,
                               const struct kd_store_metric *m, size_t n, struct kd_error *err);

/* An example a selection strategy picked: its key and where it is from,
 * the strategy's score, the probability it had of being sampled (1 for a
 * deterministic pick) and its importance weight. */
struct kd_store_selection {
    struct kd_hash key;
    const char *dataset; /* may be NULL */
    int64_t row;         /* -1 when none */
    const char *strategy;
    double score, probability, weight;
};
/* Records the n examples selected in `round` of a run in one transaction;
 * recording a key again for the same run and round replaces it. */
kd_status kd_store_put_selections(struct kd_store *st, int64_t run, int64_t round,
                                  const struct kd_store_selection *sel, size_t n,
                                  struct kd_error *err);

/* The training weight of an example and the estimated probability that its
 * teacher label is wrong (noise) behind it (NaN: not estimated). */
struct kd_store_weight {
    struct kd_hash key;
    const char *dataset; /* may be NULL */
    int64_t row;         /* -1 when none */
    double weight, noise;
};
/* Records the n weights used in `epoch` of a run in one transaction;
 * recording a key again for the same run and epoch replaces it. */
kd_status kd_store_put_weights(struct kd_store *st, int64_t run, int64_t epoch,
                               const struct kd_store_weight *w, size_t n, struct kd_error *err);

/* Resuming (store/resume.c). The newest run of this pipeline text (same
 * hash) whose status is not ok; *run = 0 when there is none. */
kd_status kd_store_run_last_unfinished(struct kd_store *st, const char *pipeline, int64_t *run,
                                       struct kd_error *err);
/* Marks a run as running again and forgets its unfinished stages (their rows
 * and metrics), so that they can be begun again at their positions. */
kd_status kd_store_run_reopen(struct kd_store *st, int64_t run, struct kd_error *err);
/* *finished = 1 when the run has a stage of that name with status ok. */
kd_status kd_store_stage_finished(struct kd_store *st, int64_t run, const char *name, int *finished,
                                  struct kd_error *err);

/* Records a file a run wrote: its path, format ("safetensors", "onnx",
 * "c"...) and content hash (hex, may be NULL). */
kd_status kd_store_artefact(struct kd_store *st, int64_t run, const char *path, const char *format,
                            const char *hash, struct kd_error *err);

/* ------------------------------------------ reading a run back (store/run_read.c) */

/* What a run recorded, read back in one read transaction for `kd report`
 * (and anyone who wants the run without writing SQL). Strings and arrays
 * are owned by the record; release it with kd_store_run_record_release.
 * Absent values: NaN reals, -1 integers, NULL strings.
 *
 *     struct kd_store_run_record rec;
 *     if (kd_store_run_read(st, 3, &rec, &err))
 *         goto fail;   // KD_ERR_NOT_FOUND names the runs the store has
 *     for (size_t i = 0; i < rec.n_metrics; i++)
 *         if (!strcmp(rec.metrics[i].name, "round_accuracy")) ...
 *     kd_store_run_record_release(&rec);
 */
struct kd_store_run_stage {
    int64_t id, position, round; /* round -1: none */
    char *name;
    enum kd_store_status status;
    char *message;                   /* NULL when none */
    double started_at, finished_at;  /* Unix seconds; finished_at NaN while running */
};
struct kd_store_run_metric {
    int64_t stage;    /* index into the record's stages, -1 for the run's own */
    int64_t step;     /* -1: none */
    char *name;
    double value;
};
/* One selected example and what is known of it: the class the teacher
 * answered (argmax of its stored logits or probabilities, any teacher; -1
 * when the store has no such answer) and its gold label (the examples
 * table; -1 when unknown). */
struct kd_store_run_pick {
    int64_t round, row; /* row -1: not a dataset row (generated) */
    char *strategy;
    double score, probability, weight;
    int64_t teacher_class, label;
};
struct kd_store_run_weight {
    int64_t epoch;
    double weight, noise; /* noise NaN: not estimated */
};
struct kd_store_run_artefact {
    char *path, *format;
};
struct kd_store_run_record {
    int64_t id;
    char *name;                /* NULL when unnamed */
    enum kd_store_status status;
    char *message;             /* NULL when none */
    char *pipeline;            /* the pipeline's text as recorded ("" when none) */
    char *pipeline_hash, *kd_version;
    double started_at, finished_at;
    struct kd_store_run_stage *stages;       /* by position */
    size_t n_stages;
    struct kd_store_run_metric *metrics;     /* by stage, name, step, in recording order */
    size_t n_metrics;
    struct kd_store_run_pick *picks;         /* by round, then score, highest first */
    size_t n_picks;
    struct kd_store_run_weight *weights;     /* by epoch */
    size_t n_weights;
    struct kd_store_run_artefact *artefacts; /* in recording order */
    size_t n_artefacts;
};
/* Every run id of the store, oldest first, in *ids (malloc'ed: free it;
 * NULL when there is none) and their count in *n. */
kd_status kd_store_run_ids(struct kd_store *st, int64_t **ids, size_t *n, struct kd_error *err);
/* Reads run `run` into out (zeroed first; released on failure).
 * KD_ERR_NOT_FOUND when the store has no such run: the message lists the
 * run ids it has. */
kd_status kd_store_run_read(struct kd_store *st, int64_t run, struct kd_store_run_record *out,
                            struct kd_error *err);
/* Frees everything the record owns and zeroes it; accepts NULL. */
void kd_store_run_record_release(struct kd_store_run_record *r);

/* ------------------------------------------------------- inspection, upkeep */

/* Answers of one teacher and kind, for kd_store_stats. */
struct kd_store_stat_row {
    struct kd_store_teacher teacher;
    int has_answers;         /* 0: a teacher with no answers (kind, dim, n unset) */
    enum kd_store_kind kind;
    size_t dim;
    int64_t n;
};
struct kd_store_stat_run {
    int64_t id;
    char name[KD_STORE_NAME_MAX]; /* "" when unnamed */
    enum kd_store_status status;
    double started_at, finished_at; /* finished_at NaN while running */
    int64_t stages, selections;
};
struct kd_store_stats {
    int schema_version;
    int64_t file_bytes, wal_bytes; /* the main file and its -wal file */
    int64_t page_size;
    int64_t teachers, answers, examples, runs;
    int64_t runs_by_status[4]; /* indexed by enum kd_store_status */
    struct kd_store_stat_row *rows; /* per teacher and kind, by teacher id */
    size_t n_rows;
    struct kd_store_stat_run *recent; /* the last runs, newest first */
    size_t n_recent;
};
/* Fills s (release with kd_store_stats_release); up to max_runs recent runs. */
kd_status kd_store_stats(struct kd_store *st, size_t max_runs, struct kd_store_stats *s,
                         struct kd_error *err);
void kd_store_stats_release(struct kd_store_stats *s);

/* A value of a query result, for kd_store_sql. */
enum kd_sql_type { KD_SQL_NULL = 0, KD_SQL_INTEGER, KD_SQL_REAL, KD_SQL_TEXT, KD_SQL_BLOB };
struct kd_sql_value {
    enum kd_sql_type type;
    int64_t i;
    double r;
    const char *text; /* NUL-terminated; for INTEGER and REAL too, as SQLite prints them */
    const void *blob;
    size_t len;       /* bytes of text or blob */
};
struct kd_sql_row {
    int statement;  /* 0-based index of the statement in the SQL text */
    int64_t row;    /* 0-based row within that statement's result */
    int n_cols;
    const char *const *names;
    const struct kd_sql_value *values;
};
/* Returns 0 to go on, non-zero to stop (kd_store_sql then returns KD_OK). */
typedef int (*kd_store_row_fn)(void *ctx, const struct kd_sql_row *row);

/* Runs the SQL text (one or more statements) with kd's SQL functions and
 * calls fn (may be NULL) for each result row; *changes (may be NULL)
 * receives the rows changed by INSERT/UPDATE/DELETE. On a store opened
 * read_only, a statement that writes fails with SQLite's message.
 * Errors quote the statement and where in it SQLite stopped. */
kd_status kd_store_sql(struct kd_store *st, const char *sql, kd_store_row_fn fn, void *ctx,
                       int64_t *changes, struct kd_error *err);

/* A store's health, for kd_store_check. */
struct kd_store_check {
    int ok;                /* no problem found */
    int schema_version;
    int64_t answers;
    int64_t stale_keys;    /* key directory entries whose answer was deleted or changed
                            * with SQL: not a problem (kd checks each entry it uses);
                            * kd store vacuum drops them */
    char **problems;       /* n_problems messages, owned */
    size_t n_problems;
};
/* PRAGMA integrity_check, foreign_key_check, each answer's vector
 * length against its dim and its teacher's width, and the key directory
 * against the answers (every answer listed, every block whole). Problems found are in
 * c (not an error); release with kd_store_check_release. */
kd_status kd_store_check(struct kd_store *st, struct kd_store_check *c, struct kd_error *err);
void kd_store_check_release(struct kd_store_check *c);

/* Checkpoints the WAL into the file, makes the key directory again from
 * the answers, and rebuilds the file without free pages (VACUUM); *before and *after (may be NULL) get the sizes in bytes,
 * -wal file included. Needs no other process using the store. */
kd_status kd_store_vacuum(struct kd_store *st, int64_t *before, int64_t *after,
                          struct kd_error *err);

/* ---------------------------------------------------- import and export */

/* Answers computed elsewhere (`kd store import`): row i of answers is the
 * teacher's answer to row i of inputs. All pointers are borrowed. */
struct kd_store_import {
    const char *teacher;             /* name; registered as a table teacher when new */
    const char *fingerprint;         /* its version, e.g. the hash of the answers file */
    const char *config;              /* free text kept with the teacher, or NULL */
    enum kd_store_kind kind;
    const struct kd_tensor *inputs;  /* (N, D) exactly as kd will give them to the
                                        teacher: each row is hashed (kd_store_input_hash) */
    const struct kd_tensor *answers; /* (N, d) */
    const char *dataset;             /* the inputs' dataset name, or NULL */
    const size_t *rows;              /* (N) each input's row in its file; NULL: 0..N-1 */
    const int32_t *labels;           /* (N) gold labels, recorded as examples; or NULL */
};
struct kd_store_import_result {
    int64_t teacher; /* its id */
    size_t added;    /* answers new to the store (the others were kept as they were) */
    size_t labels;   /* gold labels recorded */
};
/* Registers the teacher and stores the answers in transactions of 100,000
 * (a progress bar on stderr), then the labels. After a failure the batches
 * stored before it stay, and the message says how many answers that is.
 * KD_ERR_SHAPE when inputs and answers have different row counts; the value
 * checks are kd_store_put's. */
kd_status kd_store_import(struct kd_store *st, const struct kd_store_import *im,
                          struct kd_store_import_result *res, struct kd_error *err);

/* A teacher's answers of one kind gathered in memory (`kd store export`).
 * Owned; release with kd_store_answer_set_release. */
struct kd_store_answer_set {
    float *vec;             /* (n, d); NaN rows where found[i] is 0 */
    struct kd_hash *keys;   /* (n) */
    char **datasets;        /* (n) each malloc'ed, or NULL when unknown */
    int64_t *rows;          /* (n) rows in their dataset, -1 when unknown */
    unsigned char *found;   /* (n) from kd_store_answers_for; NULL from _all */
    size_t n, d, n_missing; /* n_missing: rows of found 0 */
};
/* Frees the arrays and zeroes the set; accepts NULL. */
void kd_store_answer_set_release(struct kd_store_answer_set *s);
/* Every answer of width d (kd_store_width) of the teacher and kind, ordered
 * as kd_store_each_answer orders them. */
kd_status kd_store_answers_all(struct kd_store *st, int64_t teacher, enum kd_store_kind kind, size_t d,
                               struct kd_store_answer_set *out, struct kd_error *err);
/* One entry per row of inputs (N, D), in their order: the answer to the row
 * (hashed as kd_store_input_hash does), or NaN and found[i] = 0 when the
 * store has none. dataset (may be NULL) and rows (NULL: 0..N-1) label the
 * entries. A missing answer is not an error: see out->n_missing. */
kd_status kd_store_answers_for(struct kd_store *st, int64_t teacher, enum kd_store_kind kind, size_t d,
                               const struct kd_tensor *inputs, const char *dataset, const size_t *rows,
                               struct kd_store_answer_set *out, struct kd_error *err);

/* ---------------------------------------------------------------- retrieval */

/* Retrieval (store/fts.c, store/pairs.c; schema version 2): BM25
 * candidates from an SQLite FTS5 index of a corpus, and teacher answers
 * about (query, document) pairs and texts.
 *
 *     // the corpus: ids[i], titles[i] (may be NULL), texts[i], i < N
 *     int built;
 *     kd_store_corpus_index(st, "scifact", ids, titles, texts, N, &built, &err);
 *     int64_t docs[Q * 100];  float bm25[Q * 100];  size_t found[Q];
 *     kd_store_corpus_search(st, "scifact", queries, Q, 100, docs, bm25, found, &err);
 *     // query q's candidates: docs[q * 100 + j] for j < found[q], best first;
 *     // each is an index into ids/titles/texts as given to the index call
 *
 * Tables (docs/store.md has every column and example queries):
 *   corpora(id, name, n_docs, fingerprint, tokenizer, fts_table, indexed_at)
 *   corpus_docs(corpus_id, idx, doc_id)  idx is the document's rowid in fts_table
 *   corpus_fts_<id>                      FTS5, contentless: (title, text)
 *   corpus_vocab_<id>                    its fts5vocab table (term, doc, cnt)
 *   pairs(corpus, query_id, doc_id, hash_hi, hash_lo, pair_hash)
 *   pair_scores                          a view: pair score answers by ids
 *
 * The index. One FTS5 table per corpus, tokenizer KD_STORE_FTS_TOKENIZER:
 * Unicode 6.1 word characters (letters, digits), case folded, diacritics
 * removed (remove_diacritics 2), then the Porter stemmer (English). A
 * document's title and text are two columns with equal weight, so bm25()
 * sees them as one text. The index stores no text (contentless): kd keeps
 * the corpus where it loaded it from. */
#define KD_STORE_FTS_TOKENIZER "porter unicode61 remove_diacritics 2"
/* A query uses at most this many distinct terms (the first ones). */
#define KD_STORE_FTS_MAX_TERMS 1024

struct kd_store_corpus {
    int64_t id;
    char name[KD_STORE_NAME_MAX];
    int64_t n_docs;
    char fingerprint[KD_HASH_HEX_LEN + 1]; /* see kd_store_corpus_index */
    double indexed_at;                     /* Unix seconds */
};

/* Indexes the n documents (ids[i], titles[i], texts[i]) as corpus `name`,
 * unless the store already holds an index of exactly these documents: the
 * corpus's fingerprint, XXH3-128 over the tokenizer and every id, title
 * and text in order, decides. *built (may be NULL) is 1 when the index was
 * (re)built, 0 when the stored one was kept. A changed corpus (any text,
 * id, or the order) replaces the old index of that name; other corpora are
 * untouched. titles may be NULL, and any title or text entry NULL (read as
 * ""); every id must be given. One write transaction: 100,000 short
 * documents take a few seconds. */
kd_status kd_store_corpus_index(struct kd_store *st, const char *name, const char *const *ids,
                                const char *const *titles, const char *const *texts, size_t n,
                                int *built, struct kd_error *err);

/* The corpus called name; KD_ERR_NOT_FOUND (listing the corpora the store
 * has) when there is none. */
kd_status kd_store_corpus_find(struct kd_store *st, const char *name, struct kd_store_corpus *out,
                               struct kd_error *err);

/* BM25 top k of corpus `name` for each of the n_queries query texts, in one
 * read transaction. For query q, counts[q] (<= k) documents matched: row q
 * of docs (n_queries, k) holds their indices (0-based, in the order the
 * corpus was indexed), best first, then -1; row q of scores (n_queries, k)
 * their scores, then NaN. scores may be NULL.
 *
 * A score is -bm25(): FTS5's bm25() is lower-is-better (negative for a
 * match), kd's candidate scores are higher-is-better. bm25 uses k1 = 1.2,
 * b = 0.75, and idf = log((N - n + 0.5) / (n + 0.5)) clamped to 1e-6, so a
 * term found in half the documents or more scores almost nothing. Ties
 * are broken by the smaller index.
 *
 * A query text is never read as FTS5 query syntax: it is split into terms
 * by the index's own tokenizer and each distinct term is quoted, the terms
 * OR-ed ("cat" OR "sat"), so quotes, parentheses, AND/OR/NOT/NEAR, *, ^
 * and column: in it are plain text. A query without a term (empty, only
 * punctuation) has no candidates; NULL is the empty query. */
kd_status kd_store_corpus_search(struct kd_store *st, const char *name, const char *const *queries,
                                 size_t n_queries, size_t k, int64_t *docs, float *scores,
                                 size_t *counts, struct kd_error *err);

/* Pair answers. A teacher that reads a query and a document together (a
 * cross-encoder) answers with a score: kind KD_STORE_SCORE, width 1, keyed
 * by kd_hash_pair(query text, document text). A teacher that embeds texts
 * answers with kind KD_STORE_EMBEDDING keyed by kd_hash_text(text); one
 * that embeds queries and documents differently is two teachers (e.g.
 * "e5-query" and "e5-doc"). Keys hash the texts the teacher reads, so the
 * same pair in another data set, or under other ids, finds its answer. */
struct kd_store_pair {
    const char *query_id; /* the query's id in its data set (NULL: none) */
    const char *doc_id;   /* the document's id in the corpus (NULL: none) */
    const char *query;    /* the query text the teacher reads */
    const char *doc;      /* the document text the teacher reads */
};
/* kd_hash_pair over the pair's two texts (NULL reads as ""). */
struct kd_hash kd_store_pair_key(const struct kd_store_pair *p);

/* Stores the scores of n pairs (scores (n), score i for pairs[i]) by
 * `teacher`, as kd_store_put of KD_STORE_SCORE with d = 1 (the first answer
 * for a pair wins, *n_added counts the new ones), and records in the pairs
 * table, under corpus (may be NULL: not recorded), which ids each pair
 * hash stands for, so that SQL can ask by ids (the pair_scores view). The
 * ids are recorded first, in a transaction of their own: a process killed
 * between the two keeps ids without scores, never scores without ids. */
kd_status kd_store_put_pair_scores(struct kd_store *st, int64_t teacher, const char *corpus,
                                   const struct kd_store_pair *pairs, size_t n,
                                   const float *scores, size_t *n_added, struct kd_error *err);

/* Records under corpus which ids the n pairs' hashes stand for (what
 * kd_store_put_pair_scores does before storing), in one transaction: for
 * pairs whose scores a lookup found, e.g. the same texts under a new data
 * set name, so that SQL by ids sees them too. Pairs without both ids are
 * skipped; ids recorded before are pointed at the new texts' hash. */
kd_status kd_store_put_pair_ids(struct kd_store *st, const char *corpus,
                                const struct kd_store_pair *pairs, size_t n, struct kd_error *err);

/* Looks up the scores of n pairs by `teacher`, as kd_store_lookup with
 * d = 1: scores (n) and found (n) may be NULL; missing (room for n) gets
 * the indices of the pairs to ask the teacher about, *n_missing their
 * count. */
kd_status kd_store_lookup_pair_scores(struct kd_store *st, int64_t teacher,
                                      const struct kd_store_pair *pairs, size_t n, float *scores,
                                      unsigned char *found, size_t *missing, size_t *n_missing,
                                      struct kd_error *err);

/* The texts behind ids, for kd_store_import_pair_scores: each returns the
 * text (valid until the next call) or NULL for an unknown id. */
struct kd_store_pair_texts {
    const char *(*query_text)(void *ctx, const char *query_id);
    const char *(*doc_text)(void *ctx, const char *doc_id);
    void *ctx;
};

struct kd_store_pair_import {
    int64_t teacher;                        /* the teacher's id */
    char fingerprint[KD_STORE_FINGERPRINT_MAX + 1];
    size_t rows;                            /* scores read */
    size_t added;                           /* new answers stored */
};

/* Imports a table of pair scores: a TSV file of lines query-id, corpus-id,
 * score (tab-separated; an optional header line whose score field is not a
 * number, e.g. BEIR's "query-id corpus-id score"; blank lines skipped) as
 * the answers of teacher `name` (kind table, registered with fingerprint,
 * or when fingerprint is NULL the XXH3-128 of the file), scored pairs of
 * corpus `corpus`. texts gives the texts behind the ids: the keys hash the
 * texts. The whole file is checked before anything is stored; a bad line
 * is KD_ERR_FORMAT naming path:line (a wrong number of fields, a score
 * that is not a finite float, an unknown query or document id). A pair
 * listed twice keeps its first score. out (may be NULL) gets the teacher,
 * its fingerprint and the counts. */
kd_status kd_store_import_pair_scores(struct kd_store *st, const char *path, const char *name,
                                      const char *fingerprint, const char *corpus,
                                      const struct kd_store_pair_texts *texts,
                                      struct kd_store_pair_import *out, struct kd_error *err);

#endif /* KD_STORE_H */

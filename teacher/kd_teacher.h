/*
 * kd teachers: one interface over three kinds, every answer through the
 * label store.
 *
 *   model  a kd network (trained by a pipeline stage or loaded from safetensors)
 *   exec   any program speaking the exec protocol on its stdin/stdout
 *          (docs/teacher-protocol.md; examples/teacher_numpy.py)
 *   table  answers imported into the store beforehand (kd store import)
 *
 * Retrieval has two more interfaces over the same kinds, at the end of this
 * header: pair teachers (scores of (query, document) text pairs) and text
 * teachers (embeddings of texts), keyed by the hash of the texts.
 *
 * This header has two layers. The exec process (kd_exec_*) only speaks the
 * protocol. kd_teacher wraps a kind with a fingerprint, registers it in the
 * store, and answers requests from the store first, asking the teacher only
 * for what is missing and committing the answers every 50,000 or every
 * second (and on any stop), so that a fault keeps every answer received and
 * a kill loses at most the answers of about the last second.
 */
#ifndef KD_TEACHER_H
#define KD_TEACHER_H

#include <signal.h>

#include "core/kd_core.h"
#include "data/kd_data.h"
#include "store/kd_store.h"
#include "student/kd_student.h"

/* ------------------------------------------------------- the exec protocol */

/* A running exec teacher. Protocol version 1 (all lines end in '\n'):
 *   kd      -> teacher  "kd-teacher 1 inputs D"
 *   teacher -> kd       "ready C KIND [VERSION TEXT]"   KIND: logits | probabilities
 *   then for each batch:
 *   kd      -> teacher  "batch N" and N*D float32 little-endian values
 *   teacher -> kd       "answer N" and N*C float32 little-endian values
 *                   or  "error MESSAGE" (kd stops with that message)
 *   at the end:
 *   kd      -> teacher  "end", then closes the teacher's stdin and waits.
 * The teacher's stderr is kd's stderr. A line from the teacher longer than
 * KD_EXEC_LINE_MAX bytes (without its '\n') is refused, and so is a VERSION
 * TEXT longer than 255 bytes. */
#define KD_EXEC_LINE_MAX 4096
struct kd_exec {
    char name[64];          /* for messages */
    int pid;
    int fd;                 /* kd's end of the socket pair */
    size_t d, c;            /* input and output widths */
    int probabilities;      /* the teacher answers probabilities, not logits */
    char version[256];      /* the teacher's VERSION TEXT (may be empty) */
    double timeout;         /* seconds for the handshake and for each batch, from
                               its first byte sent to its last byte answered */
    size_t batches;         /* batches answered so far */
};

/* Starts argv[0] (looked up on PATH) with argv, sends the hello for inputs
 * of width d and reads the ready line within `timeout` seconds. */
kd_status kd_exec_start(struct kd_exec *t, const char *name, char *const *argv, size_t d, double timeout,
                        struct kd_error *err);
/* As kd_exec_start, over a stream socket `fd` already connected to a
 * teacher (no process: t->pid stays -1): sends the hello and reads the ready
 * line with the same code and the same limits. Takes ownership of fd (closed
 * on failure or by kd_exec_stop). Tests and the fuzz harness feed the
 * protocol from memory through one end of a socketpair. */
kd_status kd_exec_attach(struct kd_exec *t, const char *name, int fd, size_t d, double timeout,
                         struct kd_error *err);
/* Sends x (n, d) and reads the answers into out (n, c). Each fault has its
 * own message naming the teacher and the batch: a crash or early exit (with
 * the exit status or signal), a hang past the time-out (the process is
 * killed), a teacher that stops reading its input (the time-out bounds
 * every write too), garbage or an over-long line instead of the answer
 * line, an answer with the wrong row
 * count, a truncated payload, an "error" line. After a fault the process is
 * stopped and further calls fail. */
kd_status kd_exec_request(struct kd_exec *t, const float *x, size_t n, float *out, struct kd_error *err);
/* Sends "end", closes, waits up to the time-out, then kills. Accepts a
 * never-started or already-failed teacher. */
void kd_exec_stop(struct kd_exec *t);

/* ------------------------------------------------------- teachers, stored */

/* What a teacher is; kind and the fields of that kind. */
struct kd_teacher_spec {
    const char *name;               /* the teacher's name in the store */
    enum kd_teacher_kind kind;      /* KD_TEACHER_MODEL, _EXEC or _TABLE (store/kd_store.h) */
    struct kd_mlp *net;             /* model: the network, borrowed for the teacher's life */
    char *const *argv;              /* exec: the command, NULL-terminated */
    size_t batch;                   /* exec and model: inputs per request (0: 256 exec, 1024 model) */
    double timeout;                 /* exec: seconds per request (0: 60) */
    const char *table;              /* table: the teacher's name in the store (NULL: name) */
    int lookup_only;                /* model: find the teacher in the store instead of
                                       registering it (a read-only store; KD_ERR_NOT_FOUND
                                       when this fingerprint was never registered) */
};

/* An open teacher: registered in the store under its fingerprint. */
struct kd_teacher {
    char name[64];
    enum kd_teacher_kind kind;
    struct kd_mlp *net;
    struct kd_exec exec;
    int exec_running;
    size_t batch;
    struct kd_store *store;         /* borrowed */
    int64_t id;                     /* in the store */
    char fingerprint[KD_HASH_HEX_LEN + 1];
    enum kd_store_kind answer_kind; /* logits, or probabilities (exec/table teachers may answer those) */
    size_t d, c;                    /* input width, classes */
    int store_inline;               /* 1: labelling stores answers in its own thread;
                                       0 (kd_teacher_open's default): in the store
                                       writer's thread (docs/store.md) */
    double store_wait;              /* seconds labelling has spent handing answers to
                                       the store and waiting for it (final flushes
                                       included), since open */
    size_t background_puts;         /* commits made by the store writer's thread,
                                       since open (0 when store_inline) */
};

/* Opens a teacher for inputs of width d, registering it in `store`.
 * Inputs: exec and table teachers get the inputs exactly as given (the
 * runner gives the raw values of the data file); a model teacher whose
 * network records its input scaling (kd_input_scale) scales each batch
 * itself, as it was trained, so it too is given raw inputs; one without the
 * record (an old file) is given what it was trained on. Answers are keyed by
 * the hash of the inputs as given.
 * Fingerprints: model, XXH3-128 of the weights, architecture and recorded
 * input scaling; exec, of
 * the command line and the VERSION text of the teacher's ready line (so the
 * exec teacher is started here); table, the fingerprint of the newest
 * teacher of that name in the store (KD_ERR_NOT_FOUND when it has none:
 * import answers with `kd store import` first). Free with kd_teacher_close. */
kd_status kd_teacher_open(const struct kd_teacher_spec *spec, struct kd_store *store, size_t d,
                          struct kd_teacher **out, struct kd_error *err);
/* Stops an exec teacher; accepts NULL. */
void kd_teacher_close(struct kd_teacher *t);

struct kd_label_stats {
    size_t total;    /* inputs asked about */
    size_t cached;   /* answered from the store */
    size_t queried;  /* answered by the teacher and handed to the store (all
                        stored, unless storing them is what failed) */
};

/* The teacher's answers for the rows of x (N, d) as logits (N, C) in out
 * (probabilities are turned into log-probabilities, which a softmax maps
 * back to the same distribution). Answers come from the store when present;
 * the missing inputs go to the teacher in batches, and the answers are
 * committed to the store as soon as 50,000 are gathered or the oldest is a
 * second old, and when the work ends or stops: a fault or an interruption
 * keeps every answer received, a kill loses only what was not committed
 * (the last batch and the second after it). At most max_queries inputs are sent to the
 * teacher: when more are missing, nothing is asked and the result is
 * KD_ERR_BUDGET saying how many. dataset and rows (N; may be NULL) are
 * recorded as each answer's origin. stop (may be NULL) ends the work at a
 * batch boundary with KD_ERR_INTERRUPTED. A table teacher with missing
 * inputs is an error saying how many are missing. */
kd_status kd_teacher_label(struct kd_teacher *t, const struct kd_tensor *x, const char *dataset,
                           const size_t *rows, size_t max_queries, struct kd_tensor *out,
                           struct kd_label_stats *stats, volatile sig_atomic_t *stop, struct kd_error *err);

/* As kd_teacher_label, with each input's origin given (origins, N): for
 * inputs that are not rows of one dataset, e.g. TGT's generated inputs with
 * their source example, strategy and round. `what` names the inputs in
 * messages and the progress bar. */
kd_status kd_teacher_label_origins(struct kd_teacher *t, const struct kd_tensor *x,
                                   const struct kd_store_origin *origins, const char *what, size_t max_queries,
                                   struct kd_tensor *out, struct kd_label_stats *stats,
                                   volatile sig_atomic_t *stop, struct kd_error *err);

/* Answers for n inputs x (n, d) straight from the teacher into out (n, C),
 * in the teacher's own kind (t->answer_kind: logits or probabilities), with
 * no store look-up and nothing stored: for helpers that answer batches on
 * behalf of a process that owns the store (kd_teacher_label_farm). A table
 * teacher cannot be asked (KD_ERR_UNSUPPORTED). x is raw input and is
 * overwritten: a model teacher that records its input scaling scales it in
 * place. */
kd_status kd_teacher_ask(struct kd_teacher *t, float *x, size_t n, float *out, struct kd_error *err);

/* Helpers that answer batches for kd_teacher_label_farm (pipelines/ plugs
 * in the ranks of an MPI job, dist/): up to `slots` batches are out with
 * them at once. submit hands batch `id` to a free helper: its n inputs x
 * (n, d), which are rows `rows` (n) of the tensor being labelled (a helper
 * that holds that tensor too needs only the row numbers);
 * collect gives back an answered batch: *got = 0 when none is ready and
 * block is 0, else *id and its *n rows (at most max_rows) of answers in the
 * teacher's kind into out (n, C). A helper's failure is collect's error. */
struct kd_teacher_farm {
    void *ctx;
    size_t slots;
    kd_status (*submit)(void *ctx, size_t id, const size_t *rows, const float *x, size_t n, struct kd_error *err);
    kd_status (*collect)(void *ctx, int block, int *got, size_t *id, float *out, size_t max_rows, size_t *n,
                         struct kd_error *err);
};

/* As kd_teacher_label, with batches shared between this process's teacher
 * and the farm's helpers. This process alone decides what is missing,
 * checks the budget and writes the store, so "never ask twice" and the
 * budget hold however many helpers there are; a helper's batch is stored
 * when it comes back. After a fault (this teacher's or a helper's) the
 * batches out with helpers are still waited for and stored; after a stop
 * (Ctrl-C) only those already back are, and the rest are lost. */
kd_status kd_teacher_label_farm(struct kd_teacher *t, const struct kd_tensor *x, const char *dataset,
                                const size_t *rows, size_t max_queries, struct kd_tensor *out,
                                struct kd_label_stats *stats, volatile sig_atomic_t *stop,
                                const struct kd_teacher_farm *farm, struct kd_error *err);

/* kd_teacher_label_farm for inputs with their origins given, as
 * kd_teacher_label_origins records them (TGT's and augment's generated
 * inputs over the ranks of an MPI job); the farm's row numbers are rows of x. */
kd_status kd_teacher_label_farm_origins(struct kd_teacher *t, const struct kd_tensor *x,
                                        const struct kd_store_origin *origins, const char *what, size_t max_queries,
                                        struct kd_tensor *out, struct kd_label_stats *stats,
                                        volatile sig_atomic_t *stop, const struct kd_teacher_farm *farm,
                                        struct kd_error *err);

/* How many of the rows of x the store cannot answer yet for this teacher
 * (what labelling them would cost). */
kd_status kd_teacher_count_missing(struct kd_teacher *t, const struct kd_tensor *x, size_t *missing,
                                   struct kd_error *err);

/* ------------------------------------------- pair and text teachers, stored */

/* Teachers about texts (retrieval; docs/teacher-protocol.md, "Pair scores
 * and text embeddings"; docs/store.md, "Pair answers"): a pair teacher
 * scores (query, document) pairs, kind KD_STORE_SCORE keyed by
 * kd_store_pair_key; a text teacher embeds texts, kind KD_STORE_EMBEDDING
 * keyed by kd_hash_text. Like kd_teacher, each looks the store up first,
 * asks only for what is missing (each distinct text or pair once), and
 * stores the answers as they come, so a rerun never asks twice.
 *
 *     char *argv[] = {"/usr/bin/python3", "examples/pair_teacher_numpy.py", NULL};
 *     struct kd_pair_teacher_spec spec = {.name = "overlap", .kind = KD_TEACHER_EXEC, .argv = argv};
 *     struct kd_pair_teacher *t;
 *     kd_pair_teacher_open(&spec, store, &t, &err);
 *     // pairs[i] = {query_id, doc_id, query text, doc text}, i < N
 *     kd_pair_teacher_score(t, "scifact", pairs, N, SIZE_MAX, scores, &stats, &stop, &err);
 *     kd_pair_teacher_close(t);
 *
 * The exec kinds (teacher/exec_pairs.c): the same process, time-outs, line
 * limit and faults as kd_exec_start, with another hello and ready line.
 *   kd      -> teacher  "kd-teacher 1 pairs"       or "kd-teacher 1 texts"
 *   teacher -> kd       "ready 1 score [VERSION]"  or "ready E embedding [VERSION]"
 *   kd      -> teacher  "batch N", then per pair "QLEN DLEN" and the QLEN bytes
 *                       of the query and the DLEN bytes of the document
 *                       (per text: "LEN" and its LEN bytes), no separator
 *   teacher -> kd       "answer N" and N (pairs) or N*E (texts) float32 values,
 *                       or "error MESSAGE" */

/* Starts argv[0] as a teacher of pair scores (kind KD_STORE_SCORE, hello
 * "pairs"; t->c = 1) or text embeddings (KD_STORE_EMBEDDING, hello "texts";
 * t->c = E from the ready line) and reads its ready line within `timeout`
 * seconds (0: 60). A ready line of another kind is refused, naming it.
 * Stop with kd_exec_stop. */
kd_status kd_exec_start_text(struct kd_exec *t, const char *name, char *const *argv, enum kd_store_kind kind,
                             double timeout, struct kd_error *err);
/* As kd_exec_start_text, over a stream socket `fd` already connected to a
 * teacher (no process: t->pid stays -1), as kd_exec_attach is to
 * kd_exec_start: the same hello, ready line, limits and messages. Takes
 * ownership of fd (closed on failure or by kd_exec_stop). Tests and the fuzz
 * harness fuzz/fuzz_exec_text.c feed the protocol from memory. */
kd_status kd_exec_attach_text(struct kd_exec *t, const char *name, int fd, enum kd_store_kind kind, double timeout,
                              struct kd_error *err);
/* Sends the n pairs' texts (ids are not sent; NULL texts are empty) and
 * reads one score per pair into scores (n). Faults as kd_exec_request,
 * the batch counted in pairs. */
kd_status kd_exec_request_pairs(struct kd_exec *t, const struct kd_store_pair *pairs, size_t n, float *scores,
                                struct kd_error *err);
/* Sends n texts and reads their embeddings into out (n, t->c). */
kd_status kd_exec_request_texts(struct kd_exec *t, const char *const *texts, size_t n, float *out,
                                struct kd_error *err);

/* The text a pair or text teacher reads for a BEIR document: the title, a
 * space and the text, or the text alone when the title is empty or NULL
 * (as BEIR's own re-ranking joins them). Pair keys hash this text, so every
 * caller must build it here: `kd store import --pairs`, the pipelines, the
 * cross-encoder. Returns a malloc'ed string (free()), NULL when out of
 * memory. */
char *kd_teacher_doc_text(const char *title, const char *text);

/* The hooks a model teacher plugs in: score n pairs into scores (n), or
 * embed n texts into out (n, dim). ctx is the caller's. A pair-scoring kd
 * model (the cross-encoder) is a kd_pair_score_fn, its fingerprint and its
 * config in a kd_pair_teacher_spec of kind KD_TEACHER_MODEL. */
/* The fingerprint of a model teacher read from a file: XXH3-128 (hex) of
 * the file's XXH3-128 and `architecture`, a text naming everything else
 * that changes the answers (layer sizes, featuriser settings, the side of
 * a dual encoder). Plugging a pair-scoring model in (e.g. the
 * cross-encoder, student/cross.c) is then:
 *
 *     static kd_status ce_score(void *m, const struct kd_store_pair *p, size_t n, float *s,
 *                               struct kd_error *err)
 *     { ... score the n pairs' texts with model m into s (n) ... }
 *     char fp[KD_HASH_HEX_LEN + 1];
 *     kd_teacher_file_fingerprint("ce.safetensors", arch, fp, &err);
 *     struct kd_pair_teacher_spec spec = {.name = "ce", .kind = KD_TEACHER_MODEL,
 *                                         .score = ce_score, .ctx = m, .fingerprint = fp,
 *                                         .config = arch};
 */
kd_status kd_teacher_file_fingerprint(const char *path, const char *architecture, char out[KD_HASH_HEX_LEN + 1],
                                      struct kd_error *err);

typedef kd_status (*kd_pair_score_fn)(void *ctx, const struct kd_store_pair *pairs, size_t n, float *scores,
                                      struct kd_error *err);
typedef kd_status (*kd_text_embed_fn)(void *ctx, const char *const *texts, size_t n, float *out,
                                      struct kd_error *err);

struct kd_pair_teacher_spec {
    const char *name;              /* the teacher's name in the store */
    enum kd_teacher_kind kind;     /* KD_TEACHER_MODEL, _EXEC or _TABLE */
    char *const *argv;             /* exec: the command, NULL-terminated */
    double timeout;                /* exec: seconds per batch (0: 60) */
    size_t batch;                  /* exec and model: pairs per request (0: 256 exec, 1024 model) */
    const char *table;             /* table: the teacher's name in the store (NULL: name) */
    kd_pair_score_fn score;        /* model: scores pairs */
    void *ctx;                     /* model: score's context, borrowed for the teacher's life */
    const char *fingerprint;       /* model: hex over everything that changes its scores
                                      (e.g. the XXH3-128 of its weights file and architecture) */
    const char *config;            /* model: free text for people (may be NULL) */
};

struct kd_pair_teacher {
    char name[64];
    enum kd_teacher_kind kind;
    struct kd_exec exec;
    int exec_running;
    kd_pair_score_fn score;
    void *ctx;
    size_t batch;
    struct kd_store *store;        /* borrowed */
    int64_t id;                    /* in the store */
    char fingerprint[KD_STORE_FINGERPRINT_MAX + 1];
};

/* Opens a pair teacher, registered in `store`. Fingerprints: exec, XXH3-128
 * of the command line and the VERSION of its ready line (the program is
 * started here); model, spec->fingerprint; table, the newest teacher of
 * that name in the store (KD_ERR_NOT_FOUND when none: import its scores
 * with kd_store_import_pair_scores first). Close with kd_pair_teacher_close. */
kd_status kd_pair_teacher_open(const struct kd_pair_teacher_spec *spec, struct kd_store *store,
                               struct kd_pair_teacher **out, struct kd_error *err);
/* Stops an exec teacher and frees; accepts NULL. */
void kd_pair_teacher_close(struct kd_pair_teacher *t);

/* The teacher's scores of the n pairs into scores (n). Scores come from
 * the store when present; the missing pairs (each distinct pair of texts
 * once) go to the teacher in batches, and the answers are stored with
 * kd_store_put_pair_scores every 50,000 or every second, and when the work
 * ends or stops (a fault or Ctrl-C keeps every score received). corpus
 * (may be NULL: nothing recorded) names the data set the ids are from:
 * every pair with both ids, scored now or found in the store, is recorded
 * in the store's pairs table, so SQL by ids (the pair_scores view) sees
 * them all. stats counts pairs (cached: from the store; queried: sent).
 * More than max_queries pairs to send is KD_ERR_BUDGET, nothing asked; stop
 * (may be NULL) ends the work at a batch boundary with KD_ERR_INTERRUPTED.
 * A table teacher answers from the store only: a missing pair is
 * KD_ERR_NOT_FOUND naming how many and the first one's ids. */
kd_status kd_pair_teacher_score(struct kd_pair_teacher *t, const char *corpus, const struct kd_store_pair *pairs,
                                size_t n, size_t max_queries, float *scores, struct kd_label_stats *stats,
                                volatile sig_atomic_t *stop, struct kd_error *err);

struct kd_text_teacher_spec {
    const char *name;              /* the teacher's name in the store */
    enum kd_teacher_kind kind;     /* KD_TEACHER_MODEL, _EXEC or _TABLE */
    char *const *argv;             /* exec: the command, NULL-terminated */
    double timeout;                /* exec: seconds per batch (0: 60) */
    size_t batch;                  /* exec and model: texts per request (0: 256 exec, 1024 model) */
    const char *table;             /* table: the teacher's name in the store (NULL: name) */
    /* model, either a dual encoder saved by kd_dual_save ... */
    const char *model_path;        /* its safetensors file: loaded, with its featuriser settings */
    enum kd_side side;             /* the tower that embeds: KD_SIDE_QUERY or KD_SIDE_DOC */
    /* ... or any embedder (model_path NULL) */
    kd_text_embed_fn embed;
    void *ctx;                     /* borrowed for the teacher's life */
    size_t dim;                    /* its embedding width */
    const char *fingerprint;       /* hex over everything that changes its embeddings */
    const char *config;            /* free text for people (may be NULL) */
};

struct kd_text_teacher {
    char name[64];
    enum kd_teacher_kind kind;
    struct kd_exec exec;
    int exec_running;
    kd_text_embed_fn embed;
    void *ctx;
    struct kd_dual *dual;          /* owned, from model_path */
    struct kd_text_settings text;  /* the dual encoder's featuriser */
    enum kd_side side;
    size_t batch;
    struct kd_store *store;        /* borrowed */
    int64_t id;
    char fingerprint[KD_STORE_FINGERPRINT_MAX + 1];
    size_t dim;                    /* E */
    int store_inline;              /* as in struct kd_teacher */
    double store_wait;             /* as in struct kd_teacher */
};

/* Opens a text teacher, registered in `store`. Fingerprints: exec as for
 * pair teachers; model_path, XXH3-128 of the file's hash, the architecture
 * (buckets, E, layers, activation, normalisation, score, shared towers),
 * the featuriser settings and the side; another embedder, spec->fingerprint;
 * table, the newest teacher of that name (its embedding width from the
 * store). Close with kd_text_teacher_close. */
kd_status kd_text_teacher_open(const struct kd_text_teacher_spec *spec, struct kd_store *store,
                               struct kd_text_teacher **out, struct kd_error *err);
void kd_text_teacher_close(struct kd_text_teacher *t);

/* The embeddings of n texts into out (n, t->dim), through the store as
 * kd_pair_teacher_score does (keys kd_hash_text; answers committed every
 * 50,000 or every second; max_queries, stats, stop, and table teachers
 * likewise). */
kd_status kd_text_teacher_embed(struct kd_text_teacher *t, const char *const *texts, size_t n, size_t max_queries,
                                struct kd_tensor *out, struct kd_label_stats *stats, volatile sig_atomic_t *stop,
                                struct kd_error *err);

#endif

/* The label store's schema: the SQL of each version and the steps that
 * migrate a store from one version to the next (store.c runs them). */
#include "store/store_impl.h"

#define KIND_NAME_SQL                                                                          \
    "CASE kind WHEN 0 THEN 'logits' WHEN 1 THEN 'probabilities' WHEN 2 THEN 'score' "          \
    "WHEN 3 THEN 'embedding' END"
#define HEX_SQL(hi, lo) "printf('%016x%016x', " hi ", " lo ")"
#define STATUS_CHECK "CHECK (status IN ('running', 'ok', 'failed', 'interrupted'))"
/* answers has no generated columns (SQLite computes them on every insert,
 * which costs a sixth of the insert rate); this view has them. */
#define TEACHER_ANSWERS_VIEW                                                                           \
    "CREATE VIEW teacher_answers AS SELECT t.name AS teacher, t.fingerprint AS fingerprint, "          \
    "k.name AS kind_name, " HEX_SQL("a.hash_hi", "a.hash_lo") " AS input_hash, "                       \
    "CASE WHEN a.source_hi IS NOT NULL THEN " HEX_SQL("a.source_hi", "a.source_lo") " END "           \
    "AS source_hash, a.* FROM answers a JOIN teachers t ON t.id = a.teacher_id "                       \
    "JOIN kinds k ON k.id = a.kind;\n"
/* A pair's scores: pairs first, answers probed by their key (version 3:
 * through an automatic index SQLite builds for the query). */
#define PAIR_SCORES_VIEW                                                                               \
    "CREATE VIEW pair_scores AS SELECT t.name AS teacher, t.fingerprint AS fingerprint, "              \
    "p.corpus AS corpus, p.query_id AS query_id, p.doc_id AS doc_id, a.score AS score, "               \
    "p.pair_hash AS pair_hash, a.teacher_id AS teacher_id, a.created_at AS created_at "                \
    "FROM pairs p CROSS JOIN teachers t CROSS JOIN answers a WHERE a.teacher_id = t.id "               \
    "AND a.kind = 2 AND a.hash_hi = p.hash_hi AND a.hash_lo = p.hash_lo;\n"

/* The columns of answers but the last (created_at), in every version. */
#define ANSWER_COLUMN_DEFS                                                                             \
    "    teacher_id  INTEGER NOT NULL REFERENCES teachers (id),\n" \
    "    kind        INTEGER NOT NULL,\n" \
    "    hash_hi     INTEGER NOT NULL,\n" \
    "    hash_lo     INTEGER NOT NULL,\n" \
    "    dim         INTEGER NOT NULL,\n" \
    "    vec         BLOB NOT NULL,\n" \
    "    class       INTEGER,\n" \
    "    confidence  REAL,\n" \
    "    entropy     REAL,\n" \
    "    margin      REAL,\n" \
    "    score       REAL,\n" \
    "    norm        REAL,\n" \
    "    dataset     TEXT,\n" \
    "    row         INTEGER,\n" \
    "    source_hi   INTEGER,\n" \
    "    source_lo   INTEGER,\n" \
    "    source_row  INTEGER,\n" \
    "    strategy    TEXT,\n" \
    "    round       INTEGER,\n"

/* Version 1, the first. answers is keyed (teacher, kind, hash) so that one
 * teacher's answers are clustered (exports and counts are range scans, and
 * a batch only touches that teacher's pages) and every key column is an
 * integer. No CHECK constraints or generated columns on answers: the store
 * validates a batch before its transaction, and both cost time per row. */
static const char *const schema_v1[] = {
    "CREATE TABLE meta (\n"
    "    key   TEXT PRIMARY KEY,\n"
    "    value TEXT NOT NULL\n"
    ") WITHOUT ROWID;\n",
    "CREATE TABLE teachers (\n"
    "    id          INTEGER PRIMARY KEY,\n"
    "    name        TEXT NOT NULL,\n"
    "    kind        TEXT NOT NULL CHECK (kind IN ('model', 'exec', 'table')),\n"
    "    fingerprint TEXT NOT NULL,\n"
    "    config      TEXT NOT NULL DEFAULT '',\n"
    "    created_at  REAL NOT NULL,\n"
    "    UNIQUE (name, fingerprint)\n"
    ");\n",
    "CREATE TABLE teacher_outputs (\n"
    "    teacher_id INTEGER NOT NULL REFERENCES teachers (id),\n"
    "    kind       INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 3),\n"
    "    dim        INTEGER NOT NULL CHECK (dim > 0),\n"
    "    kind_name  TEXT AS (" KIND_NAME_SQL ") VIRTUAL,\n"
    "    PRIMARY KEY (teacher_id, kind)\n"
    ") WITHOUT ROWID;\n",
    "CREATE TABLE answers (\n"
    ANSWER_COLUMN_DEFS "    created_at  INTEGER NOT NULL,\n"
    "    PRIMARY KEY (teacher_id, kind, hash_hi, hash_lo)\n"
    ") WITHOUT ROWID;\n",
    "CREATE TABLE examples (\n"
    "    dataset    TEXT NOT NULL,\n"
    "    row        INTEGER NOT NULL,\n"
    "    hash_hi    INTEGER NOT NULL,\n"
    "    hash_lo    INTEGER NOT NULL,\n"
    "    label      INTEGER,\n"
    "    split      TEXT,\n"
    "    input_hash TEXT AS (" HEX_SQL("hash_hi", "hash_lo") ") VIRTUAL,\n"
    "    PRIMARY KEY (dataset, row)\n"
    ") WITHOUT ROWID;\n",
    "CREATE INDEX examples_by_hash ON examples (hash_hi, hash_lo);\n",
    "CREATE TABLE kinds (\n"
    "    id   INTEGER PRIMARY KEY,\n"
    "    name TEXT NOT NULL UNIQUE\n"
    ");\n",
    "INSERT INTO kinds (id, name) VALUES (0, 'logits'), (1, 'probabilities'), (2, 'score'), "
    "(3, 'embedding');\n",
    TEACHER_ANSWERS_VIEW,
    "CREATE TABLE runs (\n"
    "    id            INTEGER PRIMARY KEY,\n"
    "    name          TEXT,\n"
    "    pipeline      TEXT NOT NULL,\n"
    "    pipeline_hash TEXT NOT NULL,\n"
    "    status        TEXT NOT NULL " STATUS_CHECK ",\n"
    "    message       TEXT,\n"
    "    kd_version    TEXT NOT NULL,\n"
    "    started_at    REAL NOT NULL,\n"
    "    finished_at   REAL\n"
    ");\n",
    "CREATE TABLE stages (\n"
    "    id          INTEGER PRIMARY KEY,\n"
    "    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,\n"
    "    position    INTEGER NOT NULL,\n"
    "    name        TEXT NOT NULL,\n"
    "    round       INTEGER,\n"
    "    status      TEXT NOT NULL " STATUS_CHECK ",\n"
    "    message     TEXT,\n"
    "    started_at  REAL NOT NULL,\n"
    "    finished_at REAL,\n"
    "    UNIQUE (run_id, position)\n"
    ");\n",
    "CREATE TABLE metrics (\n"
    "    id         INTEGER PRIMARY KEY,\n"
    "    run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,\n"
    "    stage_id   INTEGER REFERENCES stages (id) ON DELETE CASCADE,\n"
    "    step       INTEGER,\n"
    "    name       TEXT NOT NULL,\n"
    "    value      REAL,\n"
    "    created_at REAL NOT NULL\n"
    ");\n",
    "CREATE INDEX metrics_by_run ON metrics (run_id, name, step);\n",
    "CREATE INDEX metrics_by_stage ON metrics (stage_id);\n",
    "CREATE TABLE selections (\n"
    "    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,\n"
    "    round       INTEGER NOT NULL,\n"
    "    hash_hi     INTEGER NOT NULL,\n"
    "    hash_lo     INTEGER NOT NULL,\n"
    "    dataset     TEXT,\n"
    "    row         INTEGER,\n"
    "    strategy    TEXT NOT NULL,\n"
    "    score       REAL,\n"
    "    probability REAL,\n"
    "    weight      REAL,\n"
    "    input_hash  TEXT AS (" HEX_SQL("hash_hi", "hash_lo") ") VIRTUAL,\n"
    "    PRIMARY KEY (run_id, round, hash_hi, hash_lo)\n"
    ") WITHOUT ROWID;\n",
    "CREATE TABLE example_weights (\n"
    "    run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,\n"
    "    epoch      INTEGER NOT NULL,\n"
    "    hash_hi    INTEGER NOT NULL,\n"
    "    hash_lo    INTEGER NOT NULL,\n"
    "    dataset    TEXT,\n"
    "    row        INTEGER,\n"
    "    weight     REAL NOT NULL,\n"
    "    noise      REAL,\n"
    "    input_hash TEXT AS (" HEX_SQL("hash_hi", "hash_lo") ") VIRTUAL,\n"
    "    PRIMARY KEY (run_id, epoch, hash_hi, hash_lo)\n"
    ") WITHOUT ROWID;\n",
    "CREATE TABLE artefacts (\n"
    "    id         INTEGER PRIMARY KEY,\n"
    "    run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,\n"
    "    path       TEXT NOT NULL,\n"
    "    format     TEXT NOT NULL,\n"
    "    hash       TEXT,\n"
    "    created_at REAL NOT NULL\n"
    ");\n",
    "CREATE INDEX artefacts_by_run ON artefacts (run_id);\n",
    NULL,
};

/* Version 2: retrieval (store/fts.c, store/pairs.c). Only new tables, so a
 * version-1 file migrates in place. Each corpus's FTS5 index is a table of
 * its own, corpus_fts_<id>, made when the corpus is indexed: bm25() needs
 * per-corpus document counts and lengths. pairs says which (query,
 * document) ids a pair hash stands for; pair answers themselves are rows of
 * answers (kind score or embedding) keyed by that hash. */
static const char *const schema_v2[] = {
    "CREATE TABLE corpora (\n"
    "    id          INTEGER PRIMARY KEY,\n"
    "    name        TEXT NOT NULL UNIQUE,\n"
    "    n_docs      INTEGER NOT NULL,\n"
    "    fingerprint TEXT NOT NULL,\n"
    "    tokenizer   TEXT NOT NULL,\n"
    "    fts_table   TEXT NOT NULL,\n"
    "    indexed_at  REAL NOT NULL\n"
    ");\n",
    "CREATE TABLE corpus_docs (\n"
    "    corpus_id INTEGER NOT NULL REFERENCES corpora (id) ON DELETE CASCADE,\n"
    "    idx       INTEGER NOT NULL,\n"
    "    doc_id    TEXT NOT NULL,\n"
    "    PRIMARY KEY (corpus_id, idx)\n"
    ") WITHOUT ROWID;\n",
    "CREATE TABLE pairs (\n"
    "    corpus    TEXT NOT NULL,\n"
    "    query_id  TEXT NOT NULL,\n"
    "    doc_id    TEXT NOT NULL,\n"
    "    hash_hi   INTEGER NOT NULL,\n"
    "    hash_lo   INTEGER NOT NULL,\n"
    "    pair_hash TEXT AS (" HEX_SQL("hash_hi", "hash_lo") ") VIRTUAL,\n"
    "    PRIMARY KEY (corpus, query_id, doc_id)\n"
    ") WITHOUT ROWID;\n",
    PAIR_SCORES_VIEW,
    NULL,
};

/* Version 3: answers appended, found through a key directory (keys.c).
 * answers becomes a rowid table with an explicit id (VACUUM keeps explicit
 * ids; the directory points at them), its rows copied in key order; store.c
 * then makes the directory from them (kd_store_impl_keys_rebuild). A put
 * appends its rows at the end of the table instead of writing each at its
 * key's place, which rewrote most of a big store's pages on every put. The
 * views naming answers are dropped before and made again after. */
#define ANSWER_COLUMNS                                                                                 \
    "teacher_id, kind, hash_hi, hash_lo, dim, vec, class, confidence, entropy, margin, score, norm, "  \
    "dataset, row, source_hi, source_lo, source_row, strategy, round, created_at"
static const char *const schema_v3[] = {
    "DROP VIEW teacher_answers;\n",
    "DROP VIEW pair_scores;\n",
    "CREATE TABLE answers_v3 (\n"
    "    answer_id   INTEGER PRIMARY KEY,\n"
    ANSWER_COLUMN_DEFS "    created_at  INTEGER NOT NULL\n"
    ");\n",
    "INSERT INTO answers_v3 (" ANSWER_COLUMNS ") SELECT " ANSWER_COLUMNS " FROM answers "
    "ORDER BY teacher_id, kind, hash_hi, hash_lo;\n",
    "DROP TABLE answers;\n",
    "ALTER TABLE answers_v3 RENAME TO answers;\n",
    /* the runs of each (teacher, kind) (n entries; sum, a hash of them,
     * tells a run's content apart) and their blocks of entries (hash_hi,
     * hash_lo, answer id: three little-endian 64-bit integers, sorted), each
     * block keyed by its last key */
    "CREATE TABLE answer_runs (\n"
    "    teacher_id INTEGER NOT NULL,\n"
    "    kind       INTEGER NOT NULL,\n"
    "    run        INTEGER NOT NULL,\n"
    "    n          INTEGER NOT NULL,\n"
    "    sum        INTEGER NOT NULL,\n"
    "    PRIMARY KEY (teacher_id, kind, run)\n"
    ") WITHOUT ROWID;\n",
    "CREATE TABLE answer_keys (\n"
    "    teacher_id INTEGER NOT NULL,\n"
    "    kind       INTEGER NOT NULL,\n"
    "    run        INTEGER NOT NULL,\n"
    "    last_hi    INTEGER NOT NULL,\n"
    "    last_lo    INTEGER NOT NULL,\n"
    "    n          INTEGER NOT NULL,\n"
    "    keys       BLOB NOT NULL,\n"
    "    PRIMARY KEY (teacher_id, kind, run, last_hi, last_lo)\n"
    ") WITHOUT ROWID;\n",
    TEACHER_ANSWERS_VIEW,
    PAIR_SCORES_VIEW,
    NULL,
};

/* kd_store_impl_migrations[v] (statements, NULL-terminated) takes a store from schema
 * version v to v + 1; version 0 is an empty file. A new version appends its
 * step here, bumps KD_STORE_SCHEMA_VERSION, sets KD_VERSION_NEEDED (store.c)
 * to the kd release that introduces it, and lists its new tables below. */
const char *const *const kd_store_impl_migrations[KD_STORE_SCHEMA_VERSION] = {schema_v1, schema_v2, schema_v3};

/* The tables every version has (version 2 adds corpora, corpus_docs and
 * pairs; store.c tells the versions apart by corpora). */
const char *const kd_store_impl_tables[STORE_N_KD_TABLES] = {"meta",     "teachers",   "teacher_outputs", "answers",
                                                         "examples", "kinds",      "runs",            "stages",
                                                         "metrics",  "selections", "example_weights", "artefacts"};

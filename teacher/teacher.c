/* Teachers through the label store: fingerprints, cache look-ups, batched
 * queries of the missing inputs, each batch stored before the next. */
#include "teacher/kd_teacher.h"
#include "teacher/teacher_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


static void fingerprint_model(const struct kd_mlp *m, char out[KD_HASH_HEX_LEN + 1])
{
    struct kd_hasher h;
    if (kd_hasher_init(&h, NULL) != KD_OK) {
        snprintf(out, KD_HASH_HEX_LEN + 1, "0");
        return;
    }
    const char *tag = "kd-mlp-v1";
    kd_hasher_update(&h, tag, strlen(tag));
    kd_hasher_update(&h, m->cfg.sizes, m->cfg.n_sizes * sizeof m->cfg.sizes[0]);
    const char *act = kd_act_name(m->cfg.act);
    kd_hasher_update(&h, act, strlen(act));
    kd_hasher_update(&h, m->params, m->n_params * sizeof(float));
    /* A model that records its input scaling takes raw inputs and scales them
     * itself, so its answers depend on the scaling too. A model without the
     * record (saved before kd kept it) hashes as it always did, so stores
     * made then still answer for it. */
    if (m->scale.kind != KD_INPUT_UNSET) {
        const char *sc = kd_input_scale_name(m->scale.kind);
        kd_hasher_update(&h, "input_scale", 11);
        kd_hasher_update(&h, sc, strlen(sc));
        if (m->scale.kind == KD_INPUT_STANDARD) {
            kd_hasher_update(&h, m->scale.mean, m->scale.d * sizeof(float));
            kd_hasher_update(&h, m->scale.inv_std, m->scale.d * sizeof(float));
        }
    }
    kd_hash_hex(kd_hasher_digest(&h), out);
    kd_hasher_release(&h);
}

static void fingerprint_exec(char *const *argv, const char *version, char out[KD_HASH_HEX_LEN + 1])
{
    struct kd_hasher h;
    if (kd_hasher_init(&h, NULL) != KD_OK) {
        snprintf(out, KD_HASH_HEX_LEN + 1, "0");
        return;
    }
    for (size_t i = 0; argv[i]; i++)
        kd_hasher_update(&h, argv[i], strlen(argv[i]) + 1); /* the NUL separates arguments */
    kd_hasher_update(&h, "\n", 1);
    kd_hasher_update(&h, version, strlen(version));
    kd_hash_hex(kd_hasher_digest(&h), out);
    kd_hasher_release(&h);
}

static void command_text(char *const *argv, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; argv[i] && at + 2 < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%s", i ? " " : "", argv[i]);
}

kd_status kd_teacher_open(const struct kd_teacher_spec *spec, struct kd_store *store, size_t d,
                          struct kd_teacher **out, struct kd_error *err)
{
    *out = NULL;
    struct kd_teacher *t = calloc(1, sizeof *t);
    if (!t)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    snprintf(t->name, sizeof t->name, "%s", spec->name);
    t->kind = spec->kind;
    t->store = store;
    t->d = d;
    t->exec.fd = -1;
    t->exec.pid = -1;
    t->answer_kind = KD_STORE_LOGITS;
    char config[1024] = "";
    kd_status st = KD_OK;
    switch (spec->kind) {
    case KD_TEACHER_MODEL:
        if (!spec->net) {
            st = kd_error_set(err, KD_ERR_ARG, "teacher '%s' has no network", spec->name);
            break;
        }
        if (kd_mlp_in(spec->net) != d) {
            st = kd_error_set(err, KD_ERR_SHAPE, "teacher '%s' takes %zu inputs, the data has %zu features",
                              spec->name, kd_mlp_in(spec->net), d);
            break;
        }
        t->net = spec->net;
        t->c = kd_mlp_out(spec->net);
        t->batch = spec->batch ? spec->batch : 1024;
        fingerprint_model(t->net, t->fingerprint);
        {
            char sizes[256] = "";
            for (size_t i = 0; i < t->net->cfg.n_sizes; i++) {
                size_t at = strlen(sizes);
                snprintf(sizes + at, sizeof sizes - at, i ? "-%zu" : "%zu", t->net->cfg.sizes[i]);
            }
            snprintf(config, sizeof config, "mlp %s %s", sizes, kd_act_name(t->net->cfg.act));
        }
        break;
    case KD_TEACHER_EXEC:
        t->batch = spec->batch ? spec->batch : 256;
        st = kd_exec_start(&t->exec, spec->name, spec->argv, d, spec->timeout, err);
        if (st)
            break;
        t->exec_running = 1;
        t->c = t->exec.c;
        t->answer_kind = t->exec.probabilities ? KD_STORE_PROBABILITIES : KD_STORE_LOGITS;
        fingerprint_exec(spec->argv, t->exec.version, t->fingerprint);
        command_text(spec->argv, config, sizeof config);
        {
            size_t at = strlen(config);
            snprintf(config + at, sizeof config - at, " (version: %s)", t->exec.version[0] ? t->exec.version : "none");
        }
        break;
    case KD_TEACHER_TABLE: {
        const char *table = spec->table ? spec->table : spec->name;
        struct kd_store_teacher found;
        st = kd_store_teacher_find(store, table, NULL, &found, err);
        if (st) {
            kd_error_prefix(err, "table teacher '%s' (import its answers with kd store import)", spec->name);
            break;
        }
        t->id = found.id;
        snprintf(t->fingerprint, sizeof t->fingerprint, "%.32s", found.fingerprint);
        size_t w = 0;
        if ((st = kd_store_width(store, t->id, KD_STORE_LOGITS, &w, err)))
            break;
        if (w == 0) {
            if ((st = kd_store_width(store, t->id, KD_STORE_PROBABILITIES, &w, err)))
                break;
            t->answer_kind = KD_STORE_PROBABILITIES;
        }
        if (w == 0) {
            st = kd_error_set(err, KD_ERR_NOT_FOUND,
                              "table teacher '%s' has no logits or probabilities in the store '%s'", spec->name,
                              kd_store_path(store));
            break;
        }
        t->c = w;
        *out = t;
        return KD_OK; /* already registered: nothing to add */
    }
    }
    if (!st && spec->lookup_only) {
        struct kd_store_teacher found;
        st = kd_store_teacher_find(store, t->name, t->fingerprint, &found, err);
        t->id = found.id;
    } else if (!st) {
        st = kd_store_teacher_register(store, t->name, t->kind, t->fingerprint, config, &t->id, err);
    }
    if (st) {
        kd_teacher_close(t);
        return st;
    }
    *out = t;
    return KD_OK;
}

void kd_teacher_close(struct kd_teacher *t)
{
    if (!t)
        return;
    if (t->exec_running)
        kd_exec_stop(&t->exec);
    free(t);
}

/* Answers for n inputs (n, d) straight from the teacher, into out (n, c). */
static kd_status ask(struct kd_teacher *t, float *x, size_t n, float *out, struct kd_error *err)
{
    if (t->kind == KD_TEACHER_EXEC)
        return kd_exec_request(&t->exec, x, n, out, err);
    /* x is the batch buffer of label_inputs (a copy): a model scales its raw
     * inputs the way it was trained, in place. */
    struct kd_tensor xt = kd_tensor_view(x, n, t->d), ot = kd_tensor_view(out, n, t->c);
    kd_status st = kd_input_scale_apply(&t->net->scale, &xt, err);
    return st ? st : kd_mlp_predict(t->net, &xt, &ot, err);
}

static kd_status hash_rows(const struct kd_tensor *x, struct kd_hash **keys, struct kd_error *err)
{
    *keys = malloc((x->rows ? x->rows : 1) * sizeof **keys);
    if (!*keys)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory hashing %zu inputs", x->rows);
    for (size_t i = 0; i < x->rows; i++)
        (*keys)[i] = kd_store_input_hash(kd_tensor_row(x, i), x->cols);
    return KD_OK;
}

kd_status kd_teacher_count_missing(struct kd_teacher *t, const struct kd_tensor *x, size_t *missing,
                                   struct kd_error *err)
{
    struct kd_hash *keys;
    kd_status st = hash_rows(x, &keys, err);
    if (st)
        return st;
    st = kd_store_lookup(t->store, t->id, t->answer_kind, keys, x->rows, t->c, NULL, NULL, NULL, missing, err);
    free(keys);
    return st;
}

kd_status kd_teacher_ask(struct kd_teacher *t, float *x, size_t n, float *out, struct kd_error *err)
{
    if (t->kind == KD_TEACHER_TABLE)
        return kd_error_set(err, KD_ERR_UNSUPPORTED, "table teacher '%s' answers from the store only", t->name);
    return ask(t, x, n, out, err);
}

/* One labelling job: the rows still missing, cut into batches of bs. */
struct job {
    struct kd_teacher *t;
    const struct kd_tensor *x;
    const char *dataset;
    const size_t *rows;
    const struct kd_store_origin *origins_in;
    const struct kd_hash *keys;
    const size_t *missing;
    size_t n_missing, bs;
    struct kd_hash *bkeys;           /* (bs) */
    struct kd_store_origin *origins; /* (bs) */
    struct kd_store_writer *writer;
    struct kd_tensor *out;
    size_t stored;                   /* answers given to the writer */
    double store_wait;               /* seconds spent in the writer's add */
};

static size_t batch_rows(const struct job *j, size_t b)
{
    size_t off = b * j->bs;
    return j->n_missing - off < j->bs ? j->n_missing - off : j->bs;
}

/* The inputs of batch b into bx (B, d). */
static void batch_inputs(const struct job *j, size_t b, float *bx)
{
    size_t off = b * j->bs, B = batch_rows(j, b), d = j->t->d;
    for (size_t i = 0; i < B; i++)
        memcpy(bx + i * d, kd_tensor_row(j->x, j->missing[off + i]), d * sizeof(float));
}

/* Batch b's answers by (B, C): to the store writer and into out. */
static kd_status batch_store(struct job *j, size_t b, const float *by, struct kd_error *err)
{
    size_t off = b * j->bs, B = batch_rows(j, b), C = j->t->c;
    for (size_t i = 0; i < B; i++) {
        size_t r = j->missing[off + i];
        j->bkeys[i] = j->keys[r];
        if (j->origins_in) {
            j->origins[i] = j->origins_in[r];
        } else {
            j->origins[i] = kd_store_origin_none();
            j->origins[i].dataset = j->dataset;
            j->origins[i].row = j->rows ? (int64_t)j->rows[r] : (int64_t)r;
        }
    }
    double t0 = kd_time_now();
    kd_status st = kd_store_writer_add(j->writer, j->bkeys, B, by, j->origins, err);
    j->store_wait += kd_time_now() - t0;
    if (st)
        return st;
    for (size_t i = 0; i < B; i++)
        memcpy(kd_tensor_row(j->out, j->missing[off + i]), by + i * C, C * sizeof(float));
    j->stored += B;
    return KD_OK;
}

/* One answered batch from the farm: waits for it when block. */
static kd_status farm_collect(struct job *j, const struct kd_teacher_farm *farm, int block, float *by, int *got,
                              size_t nb, struct kd_error *err)
{
    size_t id = 0, n = 0;
    kd_status st = farm->collect(farm->ctx, block, got, &id, by, j->bs, &n, err);
    if (st || !*got)
        return st;
    if (id >= nb || n != batch_rows(j, id))
        return kd_error_set(err, KD_ERR_TEACHER, "teacher '%s': a helper answered batch %zu with %zu rows (expected %zu)",
                            j->t->name, id, n, id < nb ? batch_rows(j, id) : 0);
    return batch_store(j, id, by, err);
}

kd_status kd_teacher_impl_writer(struct kd_store *st, int64_t teacher, enum kd_store_kind kind, size_t d,
                                 size_t max_rows, double max_seconds, int store_inline, const char *name,
                                 struct kd_store_writer **out, struct kd_error *err)
{
    kd_status s = kd_store_writer_new(st, teacher, kind, d, max_rows, max_seconds, out, err);
    if (s || store_inline)
        return s;
    struct kd_error why = {0};
    if (kd_store_writer_background(*out, &why))
        kd_log(KD_LOG_DEBUG, "teacher '%s': answers are stored in the labelling thread (%s)", name, why.msg);
    return KD_OK;
}

/* kd_teacher_label, kd_teacher_label_origins and kd_teacher_label_farm:
 * origins_in (N) when the caller gives each input's origin, else dataset
 * and rows make them; farm (may be NULL) takes batches besides this
 * process's own teacher. */
static kd_status label_inputs(struct kd_teacher *t, const struct kd_tensor *x, const char *dataset, const size_t *rows,
                              const struct kd_store_origin *origins_in, size_t max_queries, struct kd_tensor *out,
                              struct kd_label_stats *stats, volatile sig_atomic_t *stop,
                              const struct kd_teacher_farm *farm, struct kd_error *err)
{
    size_t N = x->rows, C = t->c;
    struct kd_label_stats s = {N, 0, 0};
    if (x->cols != t->d)
        return kd_error_set(err, KD_ERR_SHAPE, "teacher '%s' takes %zu inputs, dataset '%s' has %zu features", t->name,
                            t->d, dataset ? dataset : "?", x->cols);
    if (out->rows != N || out->cols != C)
        return kd_error_set(err, KD_ERR_SHAPE, "teacher '%s' answers need a (%zu, %zu) tensor, got (%zu, %zu)", t->name,
                            N, C, out->rows, out->cols);
    struct kd_hash *keys = NULL, *bkeys = NULL;
    size_t *missing = malloc((N ? N : 1) * sizeof *missing), n_missing = 0;
    float *bx = NULL, *by = NULL;
    struct kd_store_origin *origins = NULL;
    struct kd_store_writer *writer = NULL;
    kd_status st = missing ? hash_rows(x, &keys, err) : kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    if (st)
        goto done;
    st = kd_store_lookup(t->store, t->id, t->answer_kind, keys, N, C, out->data, NULL, missing, &n_missing, err);
    if (st)
        goto done;
    s.cached = N - n_missing;
    if (n_missing && t->kind == KD_TEACHER_TABLE) {
        st = kd_error_set(err, KD_ERR_NOT_FOUND,
                          "table teacher '%s' has no answer for %zu of the %zu inputs of dataset '%s' (first missing: "
                          "row %zu); import them with kd store import",
                          t->name, n_missing, N, dataset ? dataset : "?", rows ? rows[missing[0]] : missing[0]);
        goto done;
    }
    if (n_missing > max_queries) {
        st = kd_error_set(err, KD_ERR_BUDGET,
                          "labelling dataset '%s' with teacher '%s' needs %zu new queries, the budget allows %zu",
                          dataset ? dataset : "?", t->name, n_missing, max_queries);
        goto done;
    }
    size_t bs = t->batch ? t->batch : 1; /* a table teacher has none: nothing is asked */
    bx = kd_alloc(bs * t->d, sizeof(float));
    by = kd_alloc(bs * C, sizeof(float));
    bkeys = malloc(bs * sizeof *bkeys);
    origins = malloc(bs * sizeof *origins);
    if (!bx || !by || !bkeys || !origins) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for teacher batches");
        goto done;
    }
    /* Answers are gathered by a store writer and committed every 50,000 or
     * every second: one transaction per teacher batch would rewrite most of a
     * large store's pages each time. The writer stores in its own thread
     * (unless t->store_inline) while the teacher answers the next batches;
     * while a commit runs it gathers up to 400,000 for the next. A fault or
     * Ctrl-C flushes what arrived first; kill -9 loses what was not
     * committed (docs/store.md). */
    if ((st = kd_teacher_impl_writer(t->store, t->id, t->answer_kind, C, 50000, 1.0,
                                     t->store_inline || !n_missing, t->name, &writer, err)) != KD_OK)
        goto done;
    struct job j = {t, x, dataset, rows, origins_in, keys, missing, n_missing, bs, bkeys, origins, writer, out, 0, 0};
    struct kd_progress prog;
    char label[96];
    snprintf(label, sizeof label, "label %s", dataset ? dataset : "");
    kd_progress_begin(&prog, label, n_missing);
    /* Batches in order: the farm's free slots first, then one for this
     * process's own teacher; answers that came back meanwhile are stored
     * between, and at the end the last ones are waited for. Only this
     * process writes to the store. */
    size_t nb = (n_missing + bs - 1) / bs, next = 0, out_there = 0;
    for (;;) {
        if (stop && *stop) {
            st = kd_error_set(err, KD_ERR_INTERRUPTED,
                              "labelling interrupted after %zu of %zu queries (all stored%s)", j.stored, n_missing,
                              out_there ? "; the batches out with helpers are lost" : "");
            break;
        }
        int got = 1;
        while (farm && out_there && got && !st) {
            st = farm_collect(&j, farm, 0, by, &got, nb, err);
            out_there -= got ? 1 : 0; /* answered or failed, it is back */
        }
        while (farm && !st && out_there < farm->slots && next < nb) {
            batch_inputs(&j, next, bx);
            if (!(st = farm->submit(farm->ctx, next, missing + next * bs, bx, batch_rows(&j, next), err)))
                next++, out_there++;
        }
        if (st)
            break;
        if (next < nb) {
            size_t B = batch_rows(&j, next);
            batch_inputs(&j, next, bx);
            if ((st = ask(t, bx, B, by, err)) || (st = batch_store(&j, next, by, err)))
                break;
            next++;
        } else if (out_there) {
            st = farm_collect(&j, farm, 1, by, &got, nb, err);
            out_there -= got ? 1 : 0;
            if (st)
                break;
        } else {
            break;
        }
        s.queried = j.stored;
        kd_progress_update(&prog, s.queried, NULL);
    }
    kd_progress_end(&prog);
    /* A fault: the batches out with helpers still come back (answered, or
     * failed), and every answer is kept. A stop: only those already back. */
    int stopping = stop && *stop;
    while (st && farm && out_there) {
        struct kd_error ignore = {0};
        int got = 0;
        kd_status cst = farm_collect(&j, farm, !stopping, by, &got, nb, &ignore);
        if (!got)
            break;
        out_there--;
        (void)cst; /* another helper's failure: the first one is reported */
    }
    s.queried = j.stored;
    {
        /* whatever happened, keep what the teacher answered */
        struct kd_error ferr = {0};
        double t0 = kd_time_now();
        kd_status fst = kd_store_writer_flush(writer, NULL, st ? &ferr : err);
        t->store_wait += j.store_wait + (kd_time_now() - t0);
        if (fst && !st)
            st = fst;
        else if (fst && st == KD_ERR_INTERRUPTED)
            /* the stop's message said "all stored": it was not */
            kd_error_set(err, KD_ERR_INTERRUPTED,
                         "labelling interrupted after %zu of %zu queries; the answers not yet committed could not "
                         "be stored: %s",
                         j.stored, n_missing, ferr.msg);
        else if (fst)
            kd_log(KD_LOG_WARN, "could not store the last answers: %s", ferr.msg);
    }
    if (st)
        goto done;
    if (t->answer_kind == KD_STORE_PROBABILITIES)
        for (size_t i = 0; i < N * C; i++)
            out->data[i] = logf(out->data[i] > 1e-30f ? out->data[i] : 1e-30f);
done:
    if (stats)
        *stats = s;
    free(keys);
    free(bkeys);
    free(missing);
    free(origins);
    t->background_puts += kd_store_writer_background_puts(writer);
    kd_store_writer_free(writer);
    kd_free(bx);
    kd_free(by);
    return st;
}

kd_status kd_teacher_label(struct kd_teacher *t, const struct kd_tensor *x, const char *dataset,
                           const size_t *rows, size_t max_queries, struct kd_tensor *out,
                           struct kd_label_stats *stats, volatile sig_atomic_t *stop, struct kd_error *err)
{
    return label_inputs(t, x, dataset, rows, NULL, max_queries, out, stats, stop, NULL, err);
}

kd_status kd_teacher_label_origins(struct kd_teacher *t, const struct kd_tensor *x,
                                   const struct kd_store_origin *origins, const char *what, size_t max_queries,
                                   struct kd_tensor *out, struct kd_label_stats *stats,
                                   volatile sig_atomic_t *stop, struct kd_error *err)
{
    return label_inputs(t, x, what, NULL, origins, max_queries, out, stats, stop, NULL, err);
}

kd_status kd_teacher_label_farm(struct kd_teacher *t, const struct kd_tensor *x, const char *dataset,
                                const size_t *rows, size_t max_queries, struct kd_tensor *out,
                                struct kd_label_stats *stats, volatile sig_atomic_t *stop,
                                const struct kd_teacher_farm *farm, struct kd_error *err)
{
    if (t->kind == KD_TEACHER_TABLE)
        farm = NULL; /* nothing to ask */
    return label_inputs(t, x, dataset, rows, NULL, max_queries, out, stats, stop, farm, err);
}

kd_status kd_teacher_label_farm_origins(struct kd_teacher *t, const struct kd_tensor *x,
                                        const struct kd_store_origin *origins, const char *what, size_t max_queries,
                                        struct kd_tensor *out, struct kd_label_stats *stats,
                                        volatile sig_atomic_t *stop, const struct kd_teacher_farm *farm,
                                        struct kd_error *err)
{
    if (t->kind == KD_TEACHER_TABLE)
        farm = NULL; /* nothing to ask */
    return label_inputs(t, x, what, NULL, origins, max_queries, out, stats, stop, farm, err);
}

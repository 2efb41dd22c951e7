/* The runner's data: load each dataset of a pipeline, scale it, cut splits. */
#include "pipelines/run_impl.h"

#include <stdlib.h>
#include <string.h>

void kd_run_where(const struct kd_pipeline *p, struct kd_pos pos, char *buf, size_t n)
{
    if (pos.line > 0)
        snprintf(buf, n, "%s:%d:%d: ", p->path ? p->path : "pipeline", pos.line, pos.col);
    else
        snprintf(buf, n, "%s: ", p->path ? p->path : "pipeline");
}

struct kd_run_data *kd_run_dataset(struct kd_run_datasets *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->items[i].name, name) == 0)
            return &d->items[i];
    return NULL;
}

void kd_run_datasets_release(struct kd_run_datasets *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        kd_dataset_release(&d->items[i].ds);
        kd_tensor_release(&d->items[i].raw);
        free(d->items[i].keys);
        kd_input_scale_release(&d->items[i].scale);
    }
    free(d->items);
    d->items = NULL;
    d->n = 0;
}

static kd_status load_one(const struct kd_pipeline *p, const struct kd_pipe_dataset *def, struct kd_dataset *ds,
                          struct kd_error *err)
{
    struct kd_csv_options csv;
    kd_csv_options_init(&csv);
    if (def->label_column) {
        char *end;
        long v = strtol(def->label_column, &end, 10);
        if (*end == '\0' && end != def->label_column && v >= 0)
            csv.label_index = (int)v;
        else
            csv.label_name = def->label_column;
    }
    char where[400];
    kd_run_where(p, def->pos, where, sizeof where);
    kd_status st = kd_data_load(def->features, def->labels, &csv, ds, err);
    if (st) {
        kd_error_prefix(err, "%sdataset '%s'", where, def->name);
        return st;
    }
    if (def->limit && def->limit < kd_dataset_n(ds)) {
        /* Keep the first rows: a cheap way to try a pipeline on a slice. */
        size_t *idx = malloc(def->limit * sizeof *idx);
        struct kd_dataset cut;
        if (!idx)
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < def->limit; i++)
            idx[i] = i;
        st = kd_dataset_subset(ds, idx, def->limit, &cut, err);
        free(idx);
        if (st)
            return st;
        kd_dataset_release(ds);
        *ds = cut;
    }
    return st;
}

/* The `scale:` of the `datasets:` entry d's rows come from. */
static enum kd_scale_mode scale_mode(const struct kd_pipeline *p, const struct kd_run_data *d)
{
    for (size_t i = 0; i < p->n_datasets; i++)
        if (!strcmp(p->datasets[i].name, d->root))
            return p->datasets[i].scale;
    return KD_SCALE_NONE;
}

/* Whether a train or distill stage of an MLP trains on dataset `name`
 * (its `data`, or a distill stage's `gold`): the training data. */
static int is_training_data(const struct kd_pipeline *p, const char *name)
{
    for (size_t i = 0; i < p->n_stages; i++) {
        const struct kd_pipe_stage *s = &p->stages[i];
        if (s->kind == KD_STAGE_TRAIN) {
            const struct kd_pipe_model *m = kd_pipeline_model(p, s->model);
            if (m && m->type == KD_MODEL_MLP && !strcmp(s->data, name))
                return 1;
        } else if (s->kind == KD_STAGE_DISTILL && (!strcmp(s->data, name) || !strcmp(s->gold, name))) {
            return 1;
        }
    }
    return 0;
}

/* `scale: standard` for every dataset of width D: one set of statistics,
 * fitted on the training data of that width (the datasets train and distill
 * stages learn from), applied to all of them (validation, test, pool). When
 * no stage trains on data of that width, each dataset is fitted on itself,
 * as before kd fitted on training data. */
static kd_status fit_standard(const struct kd_pipeline *p, struct kd_run_datasets *out, size_t D,
                              struct kd_error *err)
{
    const struct kd_dataset **train = malloc((out->n ? out->n : 1) * sizeof *train);
    if (!train)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    size_t n_train = 0;
    char names[256] = "";
    for (size_t i = 0; i < out->n; i++) {
        struct kd_run_data *d = &out->items[i];
        if (scale_mode(p, d) != KD_SCALE_STANDARD || kd_dataset_d(&d->ds) != D || !is_training_data(p, d->name))
            continue;
        train[n_train++] = &d->ds;
        size_t at = strlen(names);
        snprintf(names + at, sizeof names - at, "%s'%s'", at ? ", " : "", d->name);
    }
    kd_status st = KD_OK;
    struct kd_scaler sc = {0};
    if (n_train) {
        st = kd_scaler_fit_many(&sc, train, n_train, err);
        if (!st)
            kd_log(KD_LOG_INFO, "scale: standard statistics of %zu features fitted on the training data %s", D, names);
    }
    for (size_t i = 0; i < out->n && !st; i++) {
        struct kd_run_data *d = &out->items[i];
        if (scale_mode(p, d) != KD_SCALE_STANDARD || kd_dataset_d(&d->ds) != D || d->scale.kind != KD_INPUT_UNSET)
            continue;
        if (!n_train) {
            kd_log(KD_LOG_INFO, "scale: no stage trains on data of %zu features; dataset '%s' is standardised "
                                "with its own statistics", D, d->name);
            kd_scaler_release(&sc);
            if ((st = kd_scaler_fit(&sc, &d->ds, err)))
                break;
        }
        st = kd_input_scale_set(&d->scale, KD_INPUT_STANDARD, sc.mean, sc.inv_std, sc.d, err);
    }
    kd_scaler_release(&sc);
    free(train);
    return st;
}

/* Whether a stage reads dataset `name` (its data, gold or validation). */
static int is_used(const struct kd_pipeline *p, const char *name)
{
    for (size_t i = 0; i < p->n_stages; i++) {
        const struct kd_pipe_stage *s = &p->stages[i];
        if (!strcmp(s->data, name) || !strcmp(s->gold, name) || !strcmp(s->validation, name))
            return 1;
    }
    return 0;
}

/* Keeps the raw features (what exec and table teachers get, and what answers
 * are keyed by) of each scaled dataset a stage reads, and scales the copy
 * that kd's networks read. A scaled dataset no stage reads (typically the
 * source of a split) keeps only the hashes of its raw rows, for the store's
 * examples: a copy of its features would double its memory for nothing. */
static kd_status scale_all(const struct kd_pipeline *p, struct kd_run_datasets *out, struct kd_error *err)
{
    kd_status st = KD_OK;
    for (size_t i = 0; i < out->n && !st; i++) {
        struct kd_run_data *d = &out->items[i];
        enum kd_scale_mode mode = scale_mode(p, d);
        if (mode == KD_SCALE_STANDARD && d->scale.kind == KD_INPUT_UNSET)
            st = fit_standard(p, out, kd_dataset_d(&d->ds), err);
        else if (mode != KD_SCALE_STANDARD)
            st = kd_input_scale_set(&d->scale, mode == KD_SCALE_PIXELS ? KD_INPUT_PIXELS : KD_INPUT_NONE, NULL, NULL,
                                    0, err);
    }
    for (size_t i = 0; i < out->n && !st; i++) {
        struct kd_run_data *d = &out->items[i];
        if (d->scale.kind == KD_INPUT_NONE)
            continue;
        size_t N = kd_dataset_n(&d->ds), D = kd_dataset_d(&d->ds);
        if (is_used(p, d->name)) {
            if ((st = kd_tensor_init(&d->raw, N, D, err)))
                break;
            if (N > 0 && D > 0)
                memcpy(d->raw.data, d->ds.x.data, N * D * sizeof(float));
        } else {
            if (!(d->keys = malloc((N ? N : 1) * sizeof *d->keys))) {
                st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
                break;
            }
            for (size_t r = 0; r < N; r++)
                d->keys[r] = kd_store_input_hash(kd_tensor_row(&d->ds.x, r), D);
        }
        st = kd_input_scale_apply(&d->scale, &d->ds.x, err);
    }
    return st;
}

kd_status kd_run_load_datasets(const struct kd_pipeline *p, struct kd_run_datasets *out, struct kd_error *err)
{
    memset(out, 0, sizeof *out);
    size_t total = p->n_datasets;
    for (size_t i = 0; i < p->n_splits; i++)
        total += p->splits[i].n_parts;
    out->items = calloc(total ? total : 1, sizeof *out->items);
    if (!out->items)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    kd_status st = KD_OK;
    for (size_t i = 0; i < p->n_datasets && !st; i++) {
        if (kd_pipe_dataset_is_retrieval(&p->datasets[i]))
            continue;   /* read by the stages that need it (pipelines/stage_retrieval.c) */
        struct kd_run_data *d = &out->items[out->n];
        snprintf(d->name, sizeof d->name, "%s", p->datasets[i].name);
        snprintf(d->root, sizeof d->root, "%s", p->datasets[i].name);
        d->def = &p->datasets[i];
        d->pos = p->datasets[i].pos;
        st = load_one(p, &p->datasets[i], &d->ds, err);
        if (!st)
            out->n++;
    }
    for (size_t i = 0; i < p->n_splits && !st; i++) {
        const struct kd_pipe_split *sp = &p->splits[i];
        char where[400];
        kd_run_where(p, sp->pos, where, sizeof where);
        struct kd_run_data *src = kd_run_dataset(out, sp->from);
        if (!src) {
            st = kd_error_set(err, KD_ERR_CONFIG, "%ssplit of unknown dataset '%s'", where, sp->from);
            break;
        }
        size_t n = kd_dataset_n(&src->ds), counts[KD_PIPE_MAX_PARTS], sum = 0;
        for (size_t k = 0; k < sp->n_parts; k++) {
            double v = sp->part_sizes[k];
            counts[k] = v < 0 ? KD_SPLIT_REST : v < 1 ? (size_t)(v * (double)n) : (size_t)v;
            if (counts[k] != KD_SPLIT_REST)
                sum += counts[k];
        }
        if (sum > n) {
            st = kd_error_set(err, KD_ERR_CONFIG, "%sthe parts of this split ask for %zu examples, dataset '%s' has %zu",
                              where, sum, sp->from, n);
            break;
        }
        struct kd_dataset parts[KD_PIPE_MAX_PARTS];
        st = kd_data_split(&src->ds, sp->has_seed ? sp->seed : p->seed, counts, sp->n_parts, parts, err);
        if (st) {
            kd_error_prefix(err, "%ssplit of '%s'", where, sp->from);
            break;
        }
        for (size_t k = 0; k < sp->n_parts; k++) {
            struct kd_run_data *d = &out->items[out->n++];
            snprintf(d->name, sizeof d->name, "%s", sp->part_names[k]);
            snprintf(d->root, sizeof d->root, "%s", src->root);
            d->ds = parts[k];
            d->pos = sp->part_pos[k];
            /* The part keeps its source's name so stored origins say where it came from. */
            snprintf(d->ds.source, sizeof d->ds.source, "%s", src->ds.source);
        }
    }
    if (!st)
        st = scale_all(p, out, err);
    if (st)
        kd_run_datasets_release(out);
    return st;
}

kd_status kd_run_build_model(const struct kd_pipeline *p, const struct kd_pipe_model *m, size_t d, size_t c,
                             uint64_t seed, struct kd_mlp **out, struct kd_error *err)
{
    char where[400];
    if (m->inputs && m->inputs != d) {
        kd_run_where(p, m->inputs_pos, where, sizeof where);
        return kd_error_set(err, KD_ERR_SHAPE, "%smodel '%s' takes %zu inputs, but its data has %zu features", where,
                            m->name, m->inputs, d);
    }
    if (m->classes && m->classes != c) {
        kd_run_where(p, m->classes_pos, where, sizeof where);
        return kd_error_set(err, KD_ERR_SHAPE, "%smodel '%s' has %zu outputs, but its targets have %zu classes", where,
                            m->name, m->classes, c);
    }
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    size_t sizes[KD_PIPE_MAX_HIDDEN + 2], n = 0;
    sizes[n++] = d;
    for (size_t i = 0; i < m->n_hidden; i++)
        sizes[n++] = m->hidden[i];
    sizes[n++] = c;
    kd_run_where(p, m->pos, where, sizeof where);
    kd_status st = kd_mlp_config_set_sizes(&cfg, sizes, n, err);
    if (st)
        return kd_error_prefix(err, "%smodel '%s'", where, m->name);
    /* Validation bounded what the file gives; the data's widths come only now. */
    size_t n_params = kd_mlp_config_params(&cfg);
    if (n_params > KD_PIPE_MAX_PARAMS)
        return kd_error_set(err, KD_ERR_ARG, "%smodel '%s' has %zu parameters with its data's %zu inputs and %zu "
                            "classes, more than kd's limit of %llu (2^31); make 'hidden' smaller", where, m->name,
                            n_params, d, c, (unsigned long long)KD_PIPE_MAX_PARAMS);
    cfg.act = m->act;
    cfg.dropout = m->dropout;
    cfg.init = m->init;
    return kd_mlp_new(&cfg, seed, out, err);
}

void kd_run_optim_settings(const struct kd_pipe_stage *s, size_t n_examples, size_t batch, size_t epochs,
                           struct kd_optim_config *optim, struct kd_schedule *sched)
{
    const struct kd_pipe_optim *o = &s->optim;
    optim->kind = o->kind;
    sched->kind = o->schedule;
    if (o->lr > 0)
        optim->lr = o->lr;
    optim->momentum = o->momentum;
    optim->weight_decay = o->weight_decay;
    optim->clip_norm = o->clip;
    sched->warmup_steps = o->warmup;
    sched->step_size = o->step_size;
    if (o->gamma > 0)
        sched->gamma = o->gamma;
    sched->min_lr = o->min_lr;
    sched->total_steps = batch ? (n_examples + batch - 1) / batch * epochs : 0;
}

kd_status kd_run_train_config(const struct kd_pipeline *p, const struct kd_pipe_stage *s, size_t n_examples,
                              struct kd_train_config *tc, struct kd_error *err)
{
    kd_train_config_init(tc);
    tc->epochs = s->epochs;
    tc->batch = s->batch ? s->batch : 256;
    tc->seed = p->seed;
    tc->label = s->name;
    (void)err;   /* nothing left to fail: validation parsed the optimizer and schedule */
    kd_run_optim_settings(s, n_examples, tc->batch, tc->epochs, &tc->optim, &tc->sched);
    return KD_OK;
}

void kd_run_note_steps(const struct kd_pipe_stage *s, size_t n_examples, size_t batch, size_t epochs)
{
    /* Small gold sets are common: one step per epoch trains far less than
     * the epoch count suggests, and nothing else in the log would say so. */
    size_t steps = batch ? (n_examples + batch - 1) / batch : 0;
    if (n_examples && steps < KD_RUN_FEW_STEPS)
        kd_log(KD_LOG_WARN, "stage '%s': %zu examples at batch %zu make only %zu optimizer step%s per epoch (%zu in "
                            "all over %zu epochs); give the stage a smaller 'batch' or more 'epochs' if the model "
                            "underfits",
               s->name, n_examples, batch, steps, steps == 1 ? "" : "s", steps * epochs, epochs);
}

/* kd_pipeline_run: the orderer. It loads the data, opens the store, records
 * the run, and runs the stages in order (or plans them, for a dry run),
 * skipping what an interrupted run finished. The work of each stage kind is
 * in its own file (pipelines/stage_*.c); what they share is
 * pipelines/run_services.c. */
#include "pipelines/run_impl.h"

#include <stdlib.h>
#include <string.h>

#include "dist/kd_dist.h"
#include "store/kd_store.h"
#include "teacher/kd_teacher.h"

/* ------------------------------------------------------------------ resume */

/* On resume, a stage finished by the interrupted run is not redone: its
 * trained model comes back from its file. */
static kd_status restore_stage(struct runner *r, const struct kd_pipe_stage *s, struct kd_error *err)
{
    if (s->kind != KD_STAGE_TRAIN && s->kind != KD_STAGE_DISTILL)
        return KD_OK;
    if (kd_run_is_retrieval(r, s))
        return kd_run_restore_dual(r, s, err);
    char path[1024];
    /* every rank reads rank 0's file: the model every rank trained alike */
    snprintf(path, sizeof path, "%s/models/%s.safetensors", r->home, s->model);
    struct run_model *m = kd_run_find_model(r, s->model);
    kd_mlp_free(m->net);
    m->net = NULL;
    kd_status st = kd_mlp_load(path, &m->net, err);
    if (st)
        kd_error_prefix(err, "cannot resume stage '%s' (remove --resume to start afresh)", s->name);
    return st;
}

/* ------------------------------------------------------------------ the run */

static kd_status record_examples(struct runner *r, struct kd_error *err)
{
    /* Every example the run loaded, with its gold label: what SQL joins
     * teacher answers against (docs/store.md). */
    kd_status st = KD_OK;
    for (size_t k = 0; k < r->data.n && !st; k++) {
        struct kd_run_data *d = &r->data.items[k];
        size_t n = kd_dataset_n(&d->ds);
        struct kd_store_example *ex = malloc((n ? n : 1) * sizeof *ex);
        if (!ex)
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            ex[i].dataset = d->root;
            ex[i].row = (int64_t)d->ds.rows[i];
            ex[i].key = d->keys ? d->keys[i]
                                : kd_store_input_hash(kd_tensor_row(kd_run_raw(d), i), kd_dataset_d(&d->ds));
            ex[i].label = d->ds.y ? d->ds.y[i] : -1;
            ex[i].split = d->name;
        }
        /* A split's parts come after their source: the part's name wins as split. */
        st = kd_store_put_examples(r->store, ex, n, err);
        free(ex);
    }
    return st;
}

static kd_status run_stage(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
    if (kd_run_is_retrieval(r, s))
        switch (s->kind) {
        case KD_STAGE_TRAIN:
            if (kd_pipeline_model(r->p, s->model)->type == KD_MODEL_CROSS)
                return kd_run_stage_train_cross(r, s, sid, err);
            return kd_run_stage_train_dual(r, s, sid, err);
        case KD_STAGE_LABEL:
            return kd_run_stage_label_pairs(r, s, sid, err);
        case KD_STAGE_DISTILL:
            return kd_run_stage_distill_dual(r, s, sid, err);
        case KD_STAGE_EVALUATE:
            return kd_run_stage_evaluate_retrieval(r, s, sid, err);
        case KD_STAGE_EXPORT:
            return kd_run_stage_export_dual(r, s, sid, err);
        default:
            break;
        }
    switch (s->kind) {
    case KD_STAGE_TRAIN:
        return kd_run_stage_train(r, s, sid, err);
    case KD_STAGE_LABEL:
        return kd_run_stage_label(r, s, sid, err);
    case KD_STAGE_DISTILL:
        /* select -> label -> reweight -> train in rounds, or one plain pass */
        if (s->select.on || s->reweight.on)
            return kd_run_stage_active(r, s, sid, err);
        return kd_run_stage_distill(r, s, sid, err);
    case KD_STAGE_EVALUATE:
        return kd_run_stage_evaluate(r, s, sid, err);
    case KD_STAGE_EXPORT:
        return kd_run_stage_export(r, s, sid, err);
    case KD_STAGE_DIAGNOSE:
        return kd_run_stage_diagnose(r, s, sid, err);
    }
    return kd_error_set(err, KD_ERR_UNSUPPORTED, "stage '%s' has an unknown kind", s->name);
}

/* In an MPI job, the stages that do not yet run over several ranks. */
static kd_status check_ranks(struct runner *r, struct kd_error *err)
{
    for (size_t i = 0; r->ranks > 1 && i < r->p->n_stages; i++) {
        const struct kd_pipe_stage *s = &r->p->stages[i];
        /* select: and reweight: run over ranks, tgt and augment included
         * (pipelines/stage_active_dist.c) */
        if (kd_run_is_retrieval(r, s))
            return kd_error_set(err, KD_ERR_UNSUPPORTED,
                                "stage '%s' is a retrieval stage, which does not run over %d MPI ranks yet: run this "
                                "pipeline without mpirun (docs/scale.md)",
                                s->name, r->ranks);
    }
    return KD_OK;
}

/* A yes/no of rank 0 for every rank (a decision taken from rank 0's store). */
static kd_status rank0_says(struct runner *r, int *flag, struct kd_error *err)
{
    if (r->ranks == 1)
        return KD_OK;
    int32_t v = *flag;
    kd_status st = kd_dist_broadcast(&v, sizeof v, 0, err);
    *flag = v;
    return st;
}

kd_status kd_pipeline_run(const struct kd_pipeline *p, const struct kd_run_options *opt, struct kd_run_summary *sum,
                          struct kd_error *err)
{
    memset(sum, 0, sizeof *sum);
    double t0 = kd_time_now();
    struct runner r;
    memset(&r, 0, sizeof r);
    char *recorded = NULL;
    r.p = p;
    r.opt = opt;
    r.sum = sum;
    r.rank = kd_dist_rank();
    r.ranks = kd_dist_size();
    r.home = p->output;
    snprintf(sum->store, sizeof sum->store, "%s", p->store);
    snprintf(sum->output, sizeof sum->output, "%s", p->output);
    /* A helper rank writes its outputs and its store (read by nobody) in a
     * folder of its own, so that rank 0's files have one writer. */
    struct kd_pipeline helper;
    char helper_out[1024], helper_store[1100];
    if (r.rank > 0 && !opt->dry_run) {
        helper = *p;
        snprintf(helper_out, sizeof helper_out, "%s/ranks/rank-%d", p->output, r.rank);
        snprintf(helper_store, sizeof helper_store, "%s/kd.db", helper_out);
        helper.output = helper_out;
        helper.store = helper_store;
        r.p = p = &helper;
    }
    /* Process-wide settings this run changes, given back on every path
     * (a library caller's own settings are not ours to keep). */
    int saved_threads = kd_blas_get_threads(), saved_quiet = kd_progress_get_quiet();
    kd_blas_init_threads(p->threads);
    if (opt->quiet)
        kd_progress_set_quiet(1);
    r.models = calloc(p->n_models + 1, sizeof *r.models);
    r.teachers = calloc(p->n_teachers + 1, sizeof *r.teachers);
    r.beir = calloc(p->n_datasets + 1, sizeof *r.beir);
    kd_status st = r.models && r.teachers && r.beir ? KD_OK : kd_error_set(err, KD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < p->n_models; i++)
        r.models[i].def = &p->models[i];
    for (size_t i = 0; !st && i < p->n_teachers; i++)
        r.teachers[i].def = &p->teachers[i];
    if (!st)
        st = check_ranks(&r, err);
    if (!st)
        st = kd_run_load_datasets(p, &r.data, err);
    if (st)
        goto done;
    kd_log(KD_LOG_INFO, "kd run %s: %zu datasets, %zu stages, store %s", p->name, r.data.n, p->n_stages, p->store);
    if (opt->dry_run) {
        struct kd_store_options so;
        kd_store_options_init(&so);
        so.read_only = 1;
        so.must_exist = 1;
        struct kd_error ignore = {0};
        if (kd_store_open(p->store, &so, &r.store, &ignore) != KD_OK)
            r.store = NULL;
        for (size_t i = 0; i < r.data.n; i++)
            kd_run_plan_line(&r, "data '%s': %zu examples x %zu features%s", r.data.items[i].name, kd_dataset_n(&r.data.items[i].ds),
                      kd_dataset_d(&r.data.items[i].ds), r.data.items[i].ds.y ? ", labelled" : "");
        for (size_t i = 0; i < p->n_stages; i++)
            if (kd_run_is_retrieval(&r, &p->stages[i]))
                kd_run_plan_retrieval(&r, i, &p->stages[i]);
            else
                kd_run_plan_stage(&r, i, &p->stages[i]);
        goto done;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models", p->output);
    if ((st = kd_run_make_dirs(dir, err)))
        goto done;
    snprintf(dir, sizeof dir, "%s/checkpoints", p->output);
    if ((st = kd_run_make_dirs(dir, err)) || (st = kd_store_open(p->store, NULL, &r.store, err)))
        goto done;
    /* The run is recorded with the file's text and the overrides applied to
     * it: together they say what ran, and --resume matches both. */
    size_t len = strlen(p->text ? p->text : "") + 1;
    for (size_t i = 0; i < opt->n_sets; i++)
        len += strlen(opt->sets[i]) + 32;
    recorded = malloc(len);
    if (!recorded) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        goto done;
    }
    snprintf(recorded, len, "%s", p->text ? p->text : "");
    for (size_t i = 0; i < opt->n_sets; i++) {
        size_t at = strlen(recorded);
        snprintf(recorded + at, len - at, "%s# kd run --set %s\n", at && recorded[at - 1] != '\n' ? "\n" : "",
                 opt->sets[i]);
    }
    int64_t previous = 0;
    if (opt->resume && (st = kd_store_run_last_unfinished(r.store, recorded, &previous, err)))
        goto done;
    /* --resume is rank 0's decision; a helper continues its own record of
     * the run when it has one */
    int resuming = previous != 0;
    if ((st = rank0_says(&r, &resuming, err)))
        goto done;
    if (!resuming)
        previous = 0;
    if (previous) {
        r.run = previous;
        st = kd_store_run_reopen(r.store, previous, err);
        kd_log(KD_LOG_INFO, "resuming run %lld", (long long)previous);
    } else {
        if (opt->resume)
            kd_log(KD_LOG_INFO, "nothing to resume: no unfinished run of this pipeline in %s; starting a new run", p->store);
        st = kd_store_run_begin(r.store, p->name, recorded, &r.run, err);
    }
    /* Float sums, and so results, depend on how many threads BLAS splits
     * them over: the run says what it ran with (docs/pipeline.md). */
    if (!st)
        st = kd_run_record_metric(&r, 0, "blas_threads", -1, (double)kd_blas_get_threads(), err);
    if (!st && r.rank == 0)
        st = record_examples(&r, err);
    sum->run_id = r.run;
    for (size_t i = 0; !st && i < p->n_stages; i++) {
        const struct kd_pipe_stage *s = &p->stages[i];
        int done_before = 0;
        if (resuming && r.rank == 0 && (st = kd_store_stage_finished(r.store, r.run, s->name, &done_before, err)))
            break;
        if (resuming && (st = rank0_says(&r, &done_before, err)))
            break;
        if (done_before) {
            kd_log(KD_LOG_INFO, "[%zu/%zu] %s: done in the interrupted run, skipped", i + 1, p->n_stages, s->name);
            st = restore_stage(&r, s, err);
            sum->stages_skipped++;
            continue;
        }
        kd_log(KD_LOG_INFO, "[%zu/%zu] %s (%s)", i + 1, p->n_stages, s->name, kd_stage_kind_name(s->kind));
        int64_t sid = 0;
        double ts = kd_time_now();
        if ((st = kd_store_stage_begin(r.store, r.run, s->name, (int64_t)i, -1, &sid, err)))
            break;
        size_t asked_before = sum->queries, served_before = sum->cached;
        st = run_stage(&r, s, sid, err);
        /* What the stage cost in teacher queries, for kd report: asked of
         * the teacher, and answered from the store instead. */
        if (!st && (sum->queries != asked_before || sum->cached != served_before)) {
            struct kd_store_metric q[2] = {{"teacher_queries", -1, (double)(sum->queries - asked_before)},
                                           {"store_answers", -1, (double)(sum->cached - served_before)}};
            st = kd_store_put_metrics(r.store, r.run, sid, q, 2, err);
        }
        struct kd_error e2 = {0};
        enum kd_store_status ss = !st ? KD_STORE_OK : st == KD_ERR_INTERRUPTED ? KD_STORE_INTERRUPTED : KD_STORE_FAILED;
        kd_status st2 = kd_store_stage_finish(r.store, sid, ss, st ? err->msg : NULL, &e2);
        if (!st && st2) {
            st = st2;
            *err = e2;
        }
        if (!st)
            sum->stages_run++;
        kd_log(KD_LOG_DEBUG, "  %s: %.1f s", s->name, kd_time_now() - ts);
    }
    if (r.run) {
        struct kd_error e2 = {0};
        enum kd_store_status rs = !st ? KD_STORE_OK : st == KD_ERR_INTERRUPTED ? KD_STORE_INTERRUPTED : KD_STORE_FAILED;
        kd_status st2 = kd_store_run_finish(r.store, r.run, rs, st ? err->msg : NULL, &e2);
        if (!st && st2) {
            st = st2;
            *err = e2;
        }
    }
done:
    sum->seconds = kd_time_now() - t0;
    for (size_t i = 0; r.teachers && i < p->n_teachers; i++) {
        kd_teacher_close(r.teachers[i].t);
        kd_mlp_free(r.teachers[i].loaded);
    }
    for (size_t i = 0; r.models && i < p->n_models; i++) {
        kd_mlp_free(r.models[i].net);
        kd_dual_free(r.models[i].dual);
        kd_cross_free(r.models[i].cross);
    }
    kd_run_beir_release(&r);
    kd_run_plan_sets_free(&r);
    free(r.models);
    free(r.teachers);
    kd_run_datasets_release(&r.data);
    kd_store_close(r.store);
    free(recorded);
    kd_blas_set_threads(saved_threads);
    kd_progress_set_quiet(saved_quiet);
    return st;
}

/* The diagnose stage: supervision complexity of each target source (gold
 * labels, a teacher's probabilities at each temperature) with respect to a
 * model's empirical NTK on n examples of a dataset (diagnostics/,
 * docs/methods.md section 8). Every figure goes into the store as a metric
 * of the stage (names in docs/pipeline.md) and into the run log as a table. */
#include "pipelines/run_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diagnostics/kd_diagnostics.h"

/* The train stage whose checkpoints target k measures, or NULL. */
static const struct kd_pipe_stage *checkpoints_of(const struct runner *r, const struct kd_pipe_stage *s,
                                                  const struct kd_pipe_diag_target *t)
{
    const struct run_teacher *rt = t->checkpoints ? kd_run_find_teacher((struct runner *)r, t->teacher) : NULL;
    return rt ? kd_pipeline_checkpoints_of(r->p, (size_t)(s - r->p->stages), rt->def->model) : NULL;
}

/* How many checkpoints a train stage saves: epochs N, 2N, ... and the last. */
static size_t n_checkpoints(const struct kd_pipe_stage *train)
{
    return train->epochs / train->checkpoint_every + (train->epochs % train->checkpoint_every != 0);
}

/* The saved epoch of checkpoint j (0-based). */
static size_t checkpoint_epoch(const struct kd_pipe_stage *train, size_t j)
{
    size_t e = (j + 1) * train->checkpoint_every;
    return e < train->epochs ? e : train->epochs;
}

/* The target count of a stage: one for gold, one per teacher temperature
 * (and checkpoint). */
static size_t count_targets(const struct runner *r, const struct kd_pipe_stage *s)
{
    const struct kd_pipe_diagnose *dg = &s->diagnose;
    size_t n = 0;
    for (size_t k = 0; k < dg->n_targets; k++) {
        const struct kd_pipe_stage *train = checkpoints_of(r, s, &dg->targets[k]);
        n += dg->targets[k].gold ? 1 : dg->targets[k].n_temps * (train ? n_checkpoints(train) : 1);
    }
    return n;
}

static int needs_gold(const struct kd_pipe_diagnose *dg)
{
    for (size_t k = 0; k < dg->n_targets; k++)
        if (dg->targets[k].gold)
            return 1;
    return 0;
}

/* Records one figure as "<what>/<targets>" (or "diagnose/<what>"). */
static kd_status record(struct runner *r, int64_t sid, const char *what, const char *targets, double value,
                        struct kd_error *err)
{
    char name[KD_TARGETS_NAME_MAX + 32];
    snprintf(name, sizeof name, "%s/%s", targets ? what : "diagnose", targets ? targets : what);
    return kd_run_record_metric(r, sid, name, -1, value, err);
}

kd_status kd_run_stage_diagnose(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
    const struct kd_pipe_diagnose *dg = &s->diagnose;
    struct kd_run_data *d;
    kd_status st = kd_run_stage_data(r, s, s->data, s->data_pos, needs_gold(dg), &d, err);
    if (st)
        return st;
    struct run_model *m = kd_run_find_model(r, s->model);
    struct kd_mlp *fresh = NULL, *net = m ? m->net : NULL;
    size_t D = kd_dataset_d(&d->ds);
    if (m && dg->at_init) {
        /* The weights a train stage of this model starts from (the pipeline seed). */
        size_t c = m->def->classes ? m->def->classes : d->ds.n_classes;
        if ((st = kd_run_build_model(r->p, m->def, D, c, r->p->seed, &fresh, err)))
            return st;
        net = fresh;
    }
    if (!net)
        return kd_error_set(err, KD_ERR_CONFIG, "stage '%s': model '%s' is not trained", s->name, s->model);
    char where[400];
    kd_run_where(r->p, s->data_pos, where, sizeof where);
    if (kd_mlp_in(net) != D) {
        kd_mlp_free(fresh);
        return kd_error_set(err, KD_ERR_SHAPE, "%sstage '%s': model '%s' takes %zu inputs, '%s' has %zu", where,
                            s->name, s->model, kd_mlp_in(net), d->name, D);
    }
    size_t C = kd_mlp_out(net), n = dg->n < kd_dataset_n(&d->ds) ? dg->n : kd_dataset_n(&d->ds);
    size_t n_sets = count_targets(r, s), n_done = 0;
    struct kd_run_data sub;
    memset(&sub, 0, sizeof sub);
    struct kd_targets *targets = calloc(n_sets, sizeof *targets);
    struct kd_complexity *res = calloc(n_sets, sizeof *res);
    struct kd_tensor logits = {0};
    if (!targets || !res) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* The same draw as `kd diagnose --n N --seed S` on the same data. */
    snprintf(sub.name, sizeof sub.name, "%s", d->name);
    snprintf(sub.root, sizeof sub.root, "%s", d->root);
    {
        size_t counts[1] = {n};
        uint64_t seed = dg->has_seed ? dg->seed : r->p->seed;
        if ((st = kd_data_split(&d->ds, seed, counts, 1, &sub.ds, err)))
            goto done;
        if (d->raw.data) {
            /* The same draw of the raw features: teachers are asked about those. */
            struct kd_dataset raw = d->ds, cut;
            raw.x = d->raw;
            if ((st = kd_data_split(&raw, seed, counts, 1, &cut, err)))
                goto done;
            sub.raw = cut.x;
            cut.x = (struct kd_tensor){0};
            kd_dataset_release(&cut);
        }
        if ((st = kd_input_scale_copy(&sub.scale, &d->scale, err)))
            goto done;
    }
    for (size_t k = 0; k < dg->n_targets; k++) {
        const struct kd_pipe_diag_target *t = &dg->targets[k];
        if (t->gold) {
            if ((st = kd_targets_onehot(&targets[n_done], "gold", sub.ds.y, n, C, err))) {
                kd_error_prefix(err, "%sstage '%s', gold labels of '%s'", where, s->name, d->name);
                goto done;
            }
            n_done++;
            continue;
        }
        const struct kd_pipe_stage *train = checkpoints_of(r, s, t);
        size_t n_cp = train ? n_checkpoints(train) : 1;
        for (size_t c = 0; c < n_cp; c++) {
            char source[KD_PIPE_NAME_MAX + 32];
            if (train) {
                const struct run_teacher *rt = kd_run_find_teacher(r, t->teacher);
                size_t e = checkpoint_epoch(train, c);
                snprintf(source, sizeof source, "%s@epoch-%zu", t->teacher, e);
                if ((st = kd_run_checkpoint_answers(r, s, t->teacher, rt->def->model, e, &sub, &logits, err)))
                    goto done;
            } else {
                struct run_teacher *rt;
                snprintf(source, sizeof source, "%s", t->teacher);
                if ((st = kd_run_open_teacher(r, s, t->teacher, D, &rt, err)) ||
                    (st = kd_run_teacher_answers(r, s, rt, &sub, &logits, err)))
                    goto done;
            }
            if (logits.cols != C) {
                st = kd_error_set(err, KD_ERR_SHAPE, "stage '%s': teacher '%s' gives %zu classes, model '%s' %zu",
                                  s->name, source, logits.cols, s->model, C);
                goto done;
            }
            for (size_t j = 0; j < t->n_temps; j++) {
                char name[KD_TARGETS_NAME_MAX];
                snprintf(name, sizeof name, "teacher-%s/T=%g", source, t->temps[j]);
                if ((st = kd_targets_softmax(&targets[n_done], name, logits.data, n, C, t->temps[j], err)))
                    goto done;
                n_done++;
            }
            kd_tensor_release(&logits);
        }
    }
    struct kd_complexity_config cc;
    kd_complexity_config_init(&cc);
    cc.eps = dg->eps;
    cc.centre = dg->centre;
    cc.method = (enum kd_solve_method)dg->method;
    double t0 = kd_time_now();
    if ((st = kd_complexity_compute(net, &sub.ds.x, targets, n_sets, &cc, res, err))) {
        kd_error_prefix(err, "stage '%s'", s->name);
        goto done;
    }
    double seconds = kd_time_now() - t0;
    kd_log(KD_LOG_INFO, "  model '%s'%s on %zu examples of '%s': eps %g, %s, %s, tr K %.6g, %.1f s", s->model,
           dg->at_init ? " at init" : "", n, d->name, dg->eps, dg->centre ? "centred" : "not centred",
           kd_solve_method_name(res[0].method), res[0].trace_k, seconds);
    kd_log(KD_LOG_INFO, "  %-28s %14s %10s %9s", "targets", "complexity", "adjusted", "residual");
    for (size_t k = 0; k < n_sets; k++)
        kd_log(KD_LOG_INFO, "  %-28s %14.6g %10.6g %9.2g%s", res[k].targets, res[k].complexity, res[k].adjusted,
               res[k].residual, res[k].converged ? "" : "  (CG did not converge)");
    st = record(r, sid, "n", NULL, (double)n, err);
    if (!st)
        st = record(r, sid, "eps", NULL, dg->eps, err);
    if (!st)
        st = record(r, sid, "centred", NULL, dg->centre, err);
    if (!st)
        st = record(r, sid, "method", NULL, (double)res[0].method, err);
    if (!st)
        st = record(r, sid, "at_init", NULL, dg->at_init, err);
    if (!st)
        st = record(r, sid, "trace_k", NULL, res[0].trace_k, err);
    if (!st)
        st = record(r, sid, "seconds", NULL, seconds, err);
    for (size_t k = 0; k < n_sets && !st; k++) {
        st = record(r, sid, "complexity", res[k].targets, res[k].complexity, err);
        if (!st)
            st = record(r, sid, "adjusted", res[k].targets, res[k].adjusted, err);
        if (!st)
            st = record(r, sid, "residual", res[k].targets, res[k].residual, err);
    }
done:
    for (size_t k = 0; targets && k < n_sets; k++)
        kd_targets_release(&targets[k]);
    free(targets);
    free(res);
    kd_tensor_release(&logits);
    kd_dataset_release(&sub.ds);
    kd_tensor_release(&sub.raw);
    kd_input_scale_release(&sub.scale);
    kd_mlp_free(fresh);
    return st;
}

void kd_run_plan_diagnose(struct runner *r, size_t i, const struct kd_pipe_stage *s)
{
    const struct kd_pipe_diagnose *dg = &s->diagnose;
    struct kd_run_data *d = kd_run_dataset(&r->data, s->data);
    size_t n = d && kd_dataset_n(&d->ds) < dg->n ? kd_dataset_n(&d->ds) : dg->n;
    kd_run_plan_line(r, "%2zu. %s: diagnose model '%s'%s on %zu examples of '%s': %zu target sets, eps %g, method %s",
                     i + 1, s->name, s->model, dg->at_init ? " at init" : "", n, s->data, count_targets(r, s), dg->eps,
                     dg->method == 1 ? "cholesky" : dg->method == 2 ? "cg" : "auto");
    for (size_t k = 0; k < dg->n_targets; k++)
        if (!dg->targets[k].gold)
            kd_run_plan_line(r, "    teacher '%s' asked about at most %zu examples of '%s' (the rest from the store)",
                             dg->targets[k].teacher, n, s->data);
}

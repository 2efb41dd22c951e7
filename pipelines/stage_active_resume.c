/* Active distillation: saving a finished round and restoring it on --resume. */
#include "pipelines/active_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* After each finished round the stage saves, under <output>/checkpoints/,
 * the student (<stage>-round.safetensors, and iwes-two's second student in
 * <stage>-round-second.safetensors) and the round's state
 * (<stage>-round-state.safetensors): the pool row of every teacher-labelled
 * example in the order it joined, its importance weight, weight, noise (-1
 * where not estimated) and slam channel, and in the metadata the run, the round, the epochs trained
 * and the queries spent. The same picks and weights are in the store
 * (selections, example_weights), which has no column saying which stage
 * wrote them; the state file does. Each file is written atomically, the
 * state last but one and the student last, and both carry the round: a
 * mismatch means the round was not finished and the stage starts afresh.
 * Rounds are seeded by their index, so a resumed stage picks and trains as
 * an uninterrupted one would. TGT's generated inputs are not kept: a TGT
 * stage restarts from round 1. */
struct round_file {
    char student[1024], second[1024], state[1024];
};

static void round_files(const struct active *a, struct round_file *f)
{
    /* rank 0's files on every rank of an MPI job: rank 0 writes them, and on
     * --resume every rank reads them */
    const char *out = a->r->home, *name = a->s->name;
    snprintf(f->student, sizeof f->student, "%s/checkpoints/%s-round.safetensors", out, name);
    snprintf(f->second, sizeof f->second, "%s/checkpoints/%s-round-second.safetensors", out, name);
    snprintf(f->state, sizeof f->state, "%s/checkpoints/%s-round-state.safetensors", out, name);
}

void kd_active_remove_round_files(const struct active *a)
{
    struct round_file f;
    round_files(a, &f);
    remove(f.student), remove(f.second), remove(f.state);
}

/* The state's float columns, in file order. */
enum { RS_ROW = 0, RS_IW, RS_W, RS_NOISE, RS_ALPHA, RS_K, RS_N };
static const char *const RS_NAMES[RS_N] = {"pool_row", "importance", "weight", "noise", "alpha", "k"};

kd_status kd_active_save_round(struct active *a, const size_t *pool_index, struct kd_mlp *student, struct kd_mlp *second,
                               size_t round, size_t spent, struct kd_error *err)
{
    const struct train_set *ts = &a->ts;
    if (a->r->rank != 0)
        return KD_OK; /* one writer: every rank holds the same round */
    struct round_file f;
    round_files(a, &f);
    size_t n = 0;
    for (size_t i = 0; i < ts->n; i++)
        n += ts->kind[i] == ROW_POOL;
    float *col = malloc((RS_N * n + 1) * sizeof *col);
    if (!col)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for the round's state");
    size_t j = 0;
    for (size_t i = 0; i < ts->n; i++) {
        if (ts->kind[i] != ROW_POOL)
            continue;
        /* pool rows < 2^24 are exact in a float32 */
        col[RS_ROW * n + j] = (float)pool_index[j];
        col[RS_IW * n + j] = ts->iw[i];
        col[RS_W * n + j] = ts->w[i];
        /* NaN (not estimated, as without reweight:) is saved as -1: the
         * reader refuses tensors holding NaN */
        col[RS_NOISE * n + j] = isnan(ts->noise[i]) ? -1.0f : (float)ts->noise[i];
        col[RS_ALPHA * n + j] = ts->alpha[i];
        col[RS_K * n + j] = (float)ts->k[i];
        j++;
    }
    char run[32], rnd[32], ep[32], sp[32];
    snprintf(run, sizeof run, "%lld", (long long)a->r->run);
    snprintf(rnd, sizeof rnd, "%zu", round);
    snprintf(ep, sizeof ep, "%zu", a->epoch);
    snprintf(sp, sizeof sp, "%zu", spent);
    struct kd_st_writer w;
    kd_st_writer_init(&w);
    uint64_t shape[1] = {n};
    kd_status st = KD_OK;
    for (int c = 0; c < RS_N && !st; c++)
        st = kd_st_writer_add(&w, RS_NAMES[c], KD_DTYPE_F32, 1, shape, col + (size_t)c * n, err);
    if (!st)
        st = kd_st_writer_meta(&w, "kd_format", "active-round", err);
    if (!st)
        st = kd_st_writer_meta(&w, "run", run, err);
    if (!st)
        st = kd_st_writer_meta(&w, "round", rnd, err);
    if (!st)
        st = kd_st_writer_meta(&w, "epoch", ep, err);
    if (!st)
        st = kd_st_writer_meta(&w, "spent", sp, err);
    if (!st)
        st = kd_st_writer_save(&w, f.state, err);
    kd_st_writer_release(&w);
    free(col);
    struct kd_st_meta meta[2] = {{"run", run}, {"round", rnd}};
    if (!st && second)
        st = kd_mlp_save(second, f.second, meta, 2, err);
    if (!st)
        st = kd_mlp_save(student, f.student, meta, 2, err);
    if (st)
        kd_error_prefix(err, "stage '%s', round %zu: saving the round", a->s->name, round);
    return st;
}

/* The round a file written by save_round holds for this run, 0 when it is
 * missing, of another run or unreadable (the stage then starts afresh). */
static size_t file_round(const struct active *a, const struct kd_safetensors *f)
{
    const char *run = kd_safetensors_meta(f, "run"), *round = kd_safetensors_meta(f, "round");
    if (!run || !round || strtoll(run, NULL, 10) != (long long)a->r->run)
        return 0;
    return (size_t)strtoull(round, NULL, 10);
}

/* On --resume: restores the last finished round of this stage (see above)
 * into the training set, the round state and the students, and returns its
 * number in *done (0: nothing to resume, start at round 1). The picks'
 * teacher answers come from the store, so nothing is asked. */
kd_status kd_active_restore_round(struct active *a, struct round_state *rs, struct run_model *m, struct kd_mlp **second,
                                size_t *done, struct kd_error *err)
{
    *done = 0;
    if (!a->r->opt->resume || a->s->select.tgt || a->s->select.augment)
        return KD_OK;
    struct round_file f;
    round_files(a, &f);
    struct kd_safetensors state = {0}, stud = {0};
    struct kd_error ignored = {0};
    struct kd_mlp *net = NULL, *net2 = NULL;
    struct kd_tensor xs = {0}, vs = {0};
    float *col = NULL;
    size_t *rows = NULL;
    kd_status st = KD_OK;
    /* Anything unusable leaves round at 0: the stage starts afresh. Over the
     * ranks of an MPI job every rank reads rank 0's files and they check
     * that they found the same round before asking the teacher together. */
    size_t round = 0, n = 0, N = kd_dataset_n(&a->pool->ds), D = a->ts.D, C = a->ts.C;
    if (access(f.state, R_OK) != 0 || access(f.student, R_OK) != 0)
        goto decide;
    if (kd_safetensors_read(f.state, &state, &ignored) || kd_safetensors_read(f.student, &stud, &ignored))
        goto decide;
    round = file_round(a, &state);
    if (round == 0 || file_round(a, &stud) != round) {
        round = 0;
        goto decide;
    }
    const struct kd_st_tensor *t0 = kd_safetensors_find(&state, RS_NAMES[0]);
    if (!t0 || t0->ndim != 1) {
        round = 0;
        goto decide;
    }
    n = (size_t)t0->shape[0];
    col = malloc((RS_N * n + 1) * sizeof *col);
    rows = malloc((n + 1) * sizeof *rows);
    if (!col || !rows) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
        round = 0;
        goto decide;
    }
    for (int c = 0; c < RS_N && round; c++)
        if (kd_safetensors_copy_f32(&state, RS_NAMES[c], col + (size_t)c * n, n, 0, NULL, &ignored))
            round = 0;
    for (size_t j = 0; j < n && round; j++) {
        float r = col[RS_ROW * n + j];
        if (!(r >= 0.0f) || (size_t)r >= N || rs->chosen[(size_t)r])
            round = 0;   /* not this pool's state */
        else
            rs->chosen[(size_t)r] = 1;
    }
    if (round && (kd_mlp_load(f.student, &net, &ignored) || net->n_params != m->net->n_params))
        round = 0;
    if (round && *second && (kd_mlp_load(f.second, &net2, &ignored) || net2->n_params != (*second)->n_params))
        round = 0;
decide:;
    char where[1100];
    snprintf(where, sizeof where, "%s/checkpoints", a->r->home);
    kd_status agreed = kd_active_agree_round(a, &round, where, err);
    if (st || (st = agreed) || !round)
        goto done;
    /* The picks' answers, from the store (a failure here goes to the
     * hand-shake of kd_active_label, where the other ranks wait). */
    if (!(st = kd_tensor_init(&xs, n, D, err)))
        st = kd_tensor_init(&vs, n, C, err);
    const struct kd_run_data *d = a->pool;
    const struct kd_tensor *tx = kd_run_teacher_x(a->t->t, d);   /* what the teacher was asked */
    for (size_t j = 0; !st && j < n; j++) {
        size_t r = (size_t)col[RS_ROW * n + j];
        memcpy(kd_tensor_row(&xs, j), kd_tensor_row(tx, r), D * sizeof(float));
        rows[j] = d->ds.rows[r];
    }
    struct kd_label_stats ls = {0};
    st = kd_active_label(a, st, &xs, rows, kd_budget_left(&rs->budget), &vs, &ls, err);
    a->r->sum->queries += ls.queried;
    a->r->sum->cached += ls.cached;
    if (st) {
        kd_error_prefix(err, "stage '%s': restoring round %zu", a->s->name, round);
        goto done;
    }
    if ((st = kd_active_ts_reserve(&a->ts, n, err)))
        goto done;
    for (size_t j = 0; j < n; j++) {
        size_t i = a->ts.n;
        kd_active_ts_add(&a->ts, kd_tensor_row(&d->ds.x, (size_t)col[RS_ROW * n + j]), kd_tensor_row(&vs, j), -1,
                         col[RS_IW * n + j], kd_store_input_hash(kd_tensor_row(&xs, j), D), (int64_t)rows[j],
                         ROW_POOL);
        a->ts.w[i] = col[RS_W * n + j];
        a->ts.noise[i] = col[RS_NOISE * n + j] < 0.0f ? NAN : col[RS_NOISE * n + j];
        a->ts.alpha[i] = col[RS_ALPHA * n + j];
        a->ts.k[i] = (int32_t)col[RS_K * n + j];
        rs->pool_index[rs->n_chosen++] = (size_t)col[RS_ROW * n + j];
    }
    const char *ep = kd_safetensors_meta(&state, "epoch"), *sp = kd_safetensors_meta(&state, "spent");
    a->epoch = ep ? (size_t)strtoull(ep, NULL, 10) : 0;
    kd_budget_charge(&rs->budget, sp ? (size_t)strtoull(sp, NULL, 10) : 0);
    kd_mlp_free(m->net);
    m->net = net;
    net = NULL;
    if (net2) {
        kd_mlp_free(*second);
        *second = net2;
        net2 = NULL;
    }
    *done = round;
    kd_log(KD_LOG_INFO, "  resuming after round %zu: %zu picks and their weights restored, %zu asked again; student "
                        "from %s", round, n, ls.queried, f.student);
done:
    if (!*done && !st) {
        /* Nothing usable: start afresh, with whatever was restored undone. */
        memset(rs->chosen, 0, kd_dataset_n(&a->pool->ds));
        kd_log(KD_LOG_INFO, "  no finished round of stage '%s' to resume from; it starts at round 1", a->s->name);
    }
    kd_safetensors_release(&state);
    kd_safetensors_release(&stud);
    kd_mlp_free(net);
    kd_mlp_free(net2);
    kd_tensor_release(&xs);
    kd_tensor_release(&vs);
    free(col);
    free(rows);
    return st;
}

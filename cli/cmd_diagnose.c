/* kd diagnose: supervision complexity of gold labels and teachers' targets
 * with respect to a student's empirical NTK, as one table. */
#include "cli/kd_cli.h"

#include "data/kd_data.h"
#include "diagnostics/kd_diagnostics.h"
#include "store/kd_store.h"
#include "student/kd_student.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEACHERS 16
#define MAX_TEMPS 16

struct teacher_list {
    const char *path[MAX_TEACHERS];
    size_t n;
};

static kd_status add_teacher(const char *value, void *dest, struct kd_error *err)
{
    struct teacher_list *t = dest;
    if (t->n == MAX_TEACHERS)
        return kd_error_set(err, KD_ERR_ARG, "at most %d --teacher options", MAX_TEACHERS);
    t->path[t->n++] = value;
    return KD_OK;
}

struct temp_list {
    double t[MAX_TEMPS];
    size_t n;
};

/* "1,2,4": every value > 0; may be given more than once. */
static kd_status add_temperatures(const char *value, void *dest, struct kd_error *err)
{
    struct temp_list *l = dest;
    const char *p = value;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !(v > 0.0) || !isfinite(v))
            return kd_error_set(err, KD_ERR_ARG, "--temperature expects numbers > 0 separated by commas, got '%s'",
                                value);
        if (l->n == MAX_TEMPS)
            return kd_error_set(err, KD_ERR_ARG, "at most %d temperatures", MAX_TEMPS);
        l->t[l->n++] = v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return kd_error_set(err, KD_ERR_ARG, "--temperature expects numbers > 0 separated by commas, got '%s'",
                                value);
    }
    return KD_OK;
}

static kd_status parse_method(const char *value, void *dest, struct kd_error *err)
{
    return kd_solve_method_parse(value, dest, err);
}

static kd_status parse_precision(const char *value, void *dest, struct kd_error *err)
{
    enum kd_ntk_precision *p = dest;
    if (!strcmp(value, "f64") || !strcmp(value, "float64"))
        *p = KD_NTK_F64;
    else if (!strcmp(value, "f32") || !strcmp(value, "float32"))
        *p = KD_NTK_F32;
    else
        return kd_error_set(err, KD_ERR_ARG, "--precision must be f64 or f32, got '%s'", value);
    return KD_OK;
}

/* Records the figures in the store at path as a run named "kd diagnose"
 * (its text: the command line) with one stage "diagnose", metrics named as a
 * pipeline's diagnose stage names them (docs/pipeline.md). */
static kd_status record(const char *path, int argc, char **argv, const struct kd_complexity *res, size_t n_res,
                        double seconds, struct kd_error *err)
{
    struct kd_store *st = NULL;
    char text[4096] = "";
    for (int i = 0; i < argc; i++) {
        size_t at = strlen(text);
        snprintf(text + at, sizeof text - at, "%s%s", i ? " " : "", argv[i]);
    }
    int64_t run = 0, stage = 0;
    kd_status rc = kd_store_open(path, NULL, &st, err);
    if (!rc)
        rc = kd_store_run_begin(st, "kd diagnose", text, &run, err);
    if (!rc)
        rc = kd_store_stage_begin(st, run, "diagnose", 0, -1, &stage, err);
    char names[6 + 3 * 64][KD_TARGETS_NAME_MAX + 16];
    struct kd_store_metric m[6 + 3 * 64];
    size_t k = 0;
    const char *setting[] = {"diagnose/n", "diagnose/eps", "diagnose/centred", "diagnose/method", "diagnose/trace_k",
                             "diagnose/seconds"};
    double value[] = {(double)res[0].n, res[0].eps, res[0].centred, (double)res[0].method, res[0].trace_k, seconds};
    for (size_t j = 0; j < 6; j++, k++)
        m[k] = (struct kd_store_metric){setting[j], -1, value[j]};
    for (size_t j = 0; j < n_res && k + 3 <= sizeof m / sizeof *m; j++) {
        snprintf(names[k], sizeof names[k], "complexity/%s", res[j].targets);
        m[k] = (struct kd_store_metric){names[k], -1, res[j].complexity};
        k++;
        snprintf(names[k], sizeof names[k], "adjusted/%s", res[j].targets);
        m[k] = (struct kd_store_metric){names[k], -1, res[j].adjusted};
        k++;
        snprintf(names[k], sizeof names[k], "residual/%s", res[j].targets);
        m[k] = (struct kd_store_metric){names[k], -1, res[j].residual};
        k++;
    }
    if (!rc)
        rc = kd_store_put_metrics(st, run, stage, m, k, err);
    if (stage) {
        struct kd_error e2 = {0};
        kd_store_stage_finish(st, stage, rc ? KD_STORE_FAILED : KD_STORE_OK, rc ? err->msg : NULL, &e2);
    }
    if (run) {
        struct kd_error e2 = {0};
        kd_store_run_finish(st, run, rc ? KD_STORE_FAILED : KD_STORE_OK, rc ? err->msg : NULL, &e2);
    }
    kd_store_close(st);
    return rc;
}

static void sizes_text(const struct kd_mlp *m, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < m->cfg.n_sizes && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%zu", i ? "-" : "", m->cfg.sizes[i]);
}

int kd_cmd_diagnose(int argc, char **argv)
{
    const char *x = NULL, *y = NULL, *scale = NULL, *store = NULL, *args[1];
    size_t n_args, n = 2000;
    uint64_t seed = 1;
    int threads = 0, at_init = 0;
    uint64_t init_seed = 1;
    struct teacher_list teachers = {0};
    struct temp_list temps = {0};
    struct kd_complexity_config cc;
    kd_complexity_config_init(&cc);
    const struct kd_cli_option opts[] = {
        {.help = "inputs:"},
        {.name = "--data", .kind = KD_CLI_STRING, .dest = &x, .arg = "FILE",
         .help = "features: IDX (raw or .gz), CSV or NPY", .def = "Fashion-MNIST's training set"},
        {.name = "--labels", .kind = KD_CLI_STRING, .dest = &y, .arg = "FILE",
         .help = "gold labels (IDX or NPY): the one-hot targets"},
        {.name = "--scale", .kind = KD_CLI_STRING, .dest = &scale, .arg = "MODE",
         .help = "pixels (x/255) or none; replaces the scaling MODEL\nrecords",
         .def = "MODEL's; old files: pixels for FMNIST"},
        {.name = "--n", .kind = KD_CLI_SIZE, .dest = &n, .lo = 1, .hi = 1e7, .arg = "N",
         .help = "examples drawn from the data (all when there are fewer)"},
        {.name = "--seed", .kind = KD_CLI_U64, .dest = &seed, .lo = 0, .hi = 9e15, .arg = "N",
         .help = "which examples are drawn"},
        {.name = "--at-init", .kind = KD_CLI_FLAG, .dest = &at_init,
         .help = "the kernel of MODEL's architecture at a fresh He\ninitialisation (--init-seed) instead of its weights"},
        {.name = "--init-seed", .kind = KD_CLI_U64, .dest = &init_seed, .lo = 0, .hi = 9e15, .arg = "N",
         .help = "--at-init: the initial weights' seed"},
        {.help = "targets:"},
        {.name = "--teacher", .kind = KD_CLI_CALL, .dest = &teachers, .parse = add_teacher, .arg = "MODEL",
         .help = "a teacher MLP (safetensors) whose probabilities are\ntargets; repeat for several", .def = ""},
        {.name = "--temperature", .kind = KD_CLI_CALL, .dest = &temps, .parse = add_temperatures, .arg = "T,T,...",
         .help = "teacher temperatures: softmax(logits / T)", .def = "1"},
        {.name = "--centre", .kind = KD_CLI_FLAG, .dest = &cc.centre, .help = "subtract 1/C from every target"},
        {.help = "solve:"},
        {.name = "--eps", .kind = KD_CLI_DOUBLE, .dest = &cc.eps, .lo = 0, .hi = 1e12, .arg = "X",
         .help = "ridge: complexity = tr(Y^T (K + eps I)^-1 Y)"},
        {.name = "--method", .kind = KD_CLI_CALL, .dest = &cc.method, .parse = parse_method, .arg = "NAME",
         .help = "auto (Cholesky up to --cholesky-max, CG beyond),\ncholesky, cg", .def = "auto"},
        {.name = "--cholesky-max", .kind = KD_CLI_SIZE, .dest = &cc.cholesky_max_n, .lo = 1, .hi = 1e6, .arg = "N",
         .help = "auto: the largest n solved by Cholesky (K and its factor\ntake 16 n^2 bytes)"},
        {.name = "--cg-tol", .kind = KD_CLI_DOUBLE, .dest = &cc.cg_tol, .lo = 1e-16, .hi = 1, .arg = "X",
         .help = "CG: relative residual to reach"},
        {.name = "--cg-iter", .kind = KD_CLI_SIZE, .dest = &cc.cg_max_iter, .lo = 1, .hi = 1e7, .arg = "N",
         .help = "CG: most iterations per target column"},
        {.name = "--precision", .kind = KD_CLI_CALL, .dest = &cc.ntk.precision, .parse = parse_precision,
         .arg = "P", .help = "the kernel's Gram GEMMs: f64 or f32", .def = "f64"},
        {.name = "--store", .kind = KD_CLI_STRING, .dest = &store, .arg = "FILE",
         .help = "also record the figures in this store, as a run\n'kd diagnose' (metric names as in docs/pipeline.md)"},
        {.name = "--threads", .kind = KD_CLI_INT, .dest = &threads, .lo = 1, .hi = 1024, .arg = "N",
         .help = "BLAS threads", .def = "KD_THREADS or all cores"},
        {0}};
    const struct kd_cli_command cmd = {
        .name = "diagnose",
        .synopsis = "MODEL [options]",
        .about = "Supervision complexity of targets with respect to a student's empirical NTK\n"
                 "(class-summed, at the student's weights in MODEL): gold one-hot labels and\n"
                 "teachers' probabilities at each temperature. Lower means easier to fit.\n"
                 "adjusted = sqrt(complexity * tr K) / n. Without --data it uses Fashion-MNIST.\n",
        .options = opts,
        .max_args = 1,
        .example = "kd diagnose student.safetensors --teacher teacher.safetensors \\\n    --temperature 1,2,4\n"
                   "kd diagnose student.safetensors --data x.npy --labels y.npy --n 500 \\\n    --eps 1e-2 --centre\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    if (n_args == 0)
        return kd_cli_usage_error(&cmd, "no model given");
    const char *def_scale = "none";
    if (!x) {
        x = KD_FASHION_MNIST_DIR "/train-images-idx3-ubyte.gz";
        y = KD_FASHION_MNIST_DIR "/train-labels-idx1-ubyte.gz";
        def_scale = "pixels";
    }
    if (!y && teachers.n == 0)
        return kd_cli_usage_error(&cmd, "no targets: give --labels, --teacher or both");
    if (temps.n == 0)
        temps.t[temps.n++] = 1.0;
    kd_blas_init_threads(threads);

    struct kd_error err = {0};
    struct kd_dataset all = {0}, ds = {0};
    struct kd_tensor raw = {0}, tx = {0};   /* the draw as in the file; a teacher's own scaling of it */
    int apply = 0;
    struct kd_mlp *m = NULL, *teacher = NULL;
    struct kd_targets *targets = NULL;
    struct kd_complexity *res = NULL;
    struct kd_tensor logits = {0};
    size_t n_targets = 0;
    const char *model = args[0];
    rc = 1;
    kd_status st = kd_mlp_load(model, &m, &err);
    if (!st && at_init) {
        struct kd_mlp *fresh = NULL;
        if (!(st = kd_mlp_new(&m->cfg, init_seed, &fresh, &err)) &&
            !(st = kd_input_scale_copy(&fresh->scale, &m->scale, &err))) {
            kd_mlp_free(m);
            m = fresh;
        } else {
            kd_mlp_free(fresh);
        }
    }
    /* The student's recorded scaling, unless --scale replaces it. */
    if (!st)
        scale = kd_cli_choose_scale(model, m, scale, def_scale, &apply);
    if (!st)
        st = kd_cli_load(x, y, NULL, scale, &all, &err);
    if (st)
        goto done;
    if (kd_dataset_d(&all) != kd_mlp_in(m)) {
        st = kd_error_set(&err, KD_ERR_SHAPE, "'%s' takes %zu features, '%s' has %zu", model, kd_mlp_in(m), x,
                          kd_dataset_d(&all));
        goto done;
    }
    size_t C = kd_mlp_out(m);
    if (all.y && (st = kd_dataset_check_labels(&all, C, &err)))
        goto done;
    if (n > kd_dataset_n(&all))
        n = kd_dataset_n(&all);
    {
        size_t counts[1] = {n};
        if ((st = kd_data_split(&all, seed, counts, 1, &ds, &err)))
            goto done;
    }
    if (apply) {
        if ((st = kd_tensor_init(&raw, n, ds.x.cols, &err)))
            goto done;
        memcpy(raw.data, ds.x.data, n * ds.x.cols * sizeof(float));
        if ((st = kd_input_scale_apply(&m->scale, &ds.x, &err)))
            goto done;
    }
    targets = calloc(1 + teachers.n * temps.n, sizeof *targets);
    res = calloc(1 + teachers.n * temps.n, sizeof *res);
    if (!targets || !res) {
        st = kd_error_set(&err, KD_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (ds.y && (st = kd_targets_onehot(&targets[n_targets++], "gold", ds.y, n, C, &err)))
        goto done;
    for (size_t k = 0; k < teachers.n; k++) {
        if ((st = kd_mlp_load(teachers.path[k], &teacher, &err)))
            goto done;
        if (kd_mlp_in(teacher) != kd_mlp_in(m) || kd_mlp_out(teacher) != C) {
            st = kd_error_set(&err, KD_ERR_SHAPE, "teacher '%s' maps %zu features to %zu classes; the student %zu to %zu",
                              teachers.path[k], kd_mlp_in(teacher), kd_mlp_out(teacher), kd_mlp_in(m), C);
            goto done;
        }
        /* A teacher that records another scaling than the student's scales the raw draw its own way. */
        const struct kd_tensor *in = &ds.x;
        if (apply && teacher->scale.kind != KD_INPUT_UNSET && !kd_input_scale_equal(&teacher->scale, &m->scale)) {
            kd_tensor_release(&tx);
            if ((st = kd_tensor_init(&tx, n, raw.cols, &err)))
                goto done;
            memcpy(tx.data, raw.data, n * raw.cols * sizeof(float));
            if ((st = kd_input_scale_apply(&teacher->scale, &tx, &err)))
                goto done;
            in = &tx;
        }
        if ((st = kd_tensor_init(&logits, n, C, &err)) || (st = kd_mlp_predict(teacher, in, &logits, &err)))
            goto done;
        for (size_t j = 0; j < temps.n; j++) {
            char name[KD_TARGETS_NAME_MAX];
            snprintf(name, sizeof name, "%s T=%g", teachers.path[k], temps.t[j]);
            if ((st = kd_targets_softmax(&targets[n_targets++], name, logits.data, n, C, temps.t[j], &err)))
                goto done;
        }
        kd_tensor_release(&logits);
        kd_mlp_free(teacher);
        teacher = NULL;
    }
    char sizes[256];
    sizes_text(m, sizes, sizeof sizes);
    printf("kd diagnose: %s (%s, %s, %zu parameters%s) on %zu examples of %s (seed %llu)\n", model, sizes,
           kd_act_name(m->cfg.act), m->n_params, at_init ? ", at a fresh initialisation" : "", n, x,
           (unsigned long long)seed);
    printf("             class-summed NTK, %s Gram GEMMs, eps %g, targets %s, %d BLAS threads\n",
           cc.ntk.precision == KD_NTK_F32 ? "float32" : "float64", cc.eps, cc.centre ? "centred (- 1/C)" : "as given",
           kd_blas_get_threads());
    fflush(stdout);
    double t0 = kd_time_now();
    if ((st = kd_complexity_compute(m, &ds.x, targets, n_targets, &cc, res, &err)))
        goto done;
    size_t w = 7;
    for (size_t k = 0; k < n_targets; k++)
        if (strlen(res[k].targets) > w)
            w = strlen(res[k].targets);
    printf("\n%-*s %7s %9s %-9s %6s %9s %14s %10s\n", (int)w, "targets", "n", "eps", "method", "iter", "residual",
           "complexity", "adjusted");
    for (size_t k = 0; k < n_targets; k++) {
        const struct kd_complexity *r = &res[k];
        printf("%-*s %7zu %9.3g %-9s %6zu %9.2g %14.6g %10.6g%s\n", (int)w, r->targets, r->n, r->eps,
               kd_solve_method_name(r->method), r->iterations, r->residual, r->complexity, r->adjusted,
               r->converged ? "" : "  (CG did not converge: raise --cg-iter or --eps)");
    }
    double seconds = kd_time_now() - t0;
    printf("\ntr K = %.6g; %.1f s\n", res[0].trace_k, seconds);
    if (store && (st = record(store, argc, argv, res, n_targets, seconds, &err)))
        goto done;
    if (store)
        printf("recorded in %s\n", store);
    rc = 0;
done:
    if (st)
        rc = kd_cli_fail(&err);
    for (size_t k = 0; k < n_targets; k++)
        kd_targets_release(&targets[k]);
    free(targets);
    free(res);
    kd_tensor_release(&logits);
    kd_tensor_release(&raw);
    kd_tensor_release(&tx);
    kd_mlp_free(teacher);
    kd_mlp_free(m);
    kd_dataset_release(&all);
    kd_dataset_release(&ds);
    return rc;
}

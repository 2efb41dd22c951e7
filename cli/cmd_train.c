/* kd train / kd eval: MLP classifiers on labelled data. */
#include "cli/kd_cli.h"

#include "data/kd_data.h"
#include "student/kd_student.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct data_opts {
    const char *x, *y, *test_x, *test_y, *label_column, *scale;
};

/* Loads train (and test, if named) and scales both the same way; what was
 * applied goes into *applied when it is not NULL (the model keeps it). */
static kd_status load_data(const struct data_opts *o, struct kd_dataset *train, struct kd_dataset *test,
                           struct kd_input_scale *applied, struct kd_error *err)
{
    if (strcmp(o->scale, "pixels") && strcmp(o->scale, "standard") && strcmp(o->scale, "none"))
        return kd_error_set(err, KD_ERR_ARG, "--scale must be pixels, standard or none, got '%s'", o->scale);
    const char *first = !strcmp(o->scale, "standard") ? "none" : o->scale;
    kd_status st = kd_cli_load(o->x, o->y, o->label_column, first, train, err);
    if (!st && o->test_x)
        st = kd_cli_load(o->test_x, o->test_y, o->label_column, first, test, err);
    if (st)
        return st;
    if (!train->y)
        return kd_error_set(err, KD_ERR_ARG, "'%s' has no labels: give --train-labels or --label-column", o->x);
    if (o->test_x && !test->y)
        return kd_error_set(err, KD_ERR_ARG, "'%s' has no labels: give --test-labels or --label-column",
                            o->test_x);
    if (o->test_x && kd_dataset_d(test) != kd_dataset_d(train))
        return kd_error_set(err, KD_ERR_SHAPE, "test data has %zu features, training data %zu",
                            kd_dataset_d(test), kd_dataset_d(train));
    if (!strcmp(o->scale, "standard")) {
        /* Fitted on the training set only, then applied to both. */
        struct kd_scaler sc = {0};
        st = kd_scaler_fit(&sc, train, err);
        if (!st)
            st = kd_scaler_apply(&sc, train, err);
        if (!st && o->test_x)
            st = kd_scaler_apply(&sc, test, err);
        if (!st && applied)
            st = kd_input_scale_set(applied, KD_INPUT_STANDARD, sc.mean, sc.inv_std, sc.d, err);
        kd_scaler_release(&sc);
    } else if (applied) {
        st = kd_input_scale_set(applied, strcmp(o->scale, "pixels") ? KD_INPUT_NONE : KD_INPUT_PIXELS, NULL, NULL,
                                0, err);
    }
    return st;
}

struct epoch_report {
    struct kd_dataset *test;
    int quiet;
    double t0;
};

static kd_status report_epoch(void *ctx, struct kd_mlp *m, size_t epoch, double loss, struct kd_error *err)
{
    struct epoch_report *r = ctx;
    if (r->quiet)
        return KD_OK;
    if (r->test && r->test->y) {
        struct kd_eval ev;
        kd_status st = kd_mlp_evaluate(m, &r->test->x, r->test->y, &ev, err);
        if (st)
            return st;
        printf("epoch %3zu  train loss %.4f  test loss %.4f  test accuracy %.4f  (%.1f s)\n", epoch + 1, loss,
               ev.loss, ev.accuracy, kd_time_now() - r->t0);
        kd_eval_release(&ev);
    } else {
        printf("epoch %3zu  train loss %.4f  (%.1f s)\n", epoch + 1, loss, kd_time_now() - r->t0);
    }
    fflush(stdout);
    return KD_OK;
}

int kd_cmd_train(int argc, char **argv)
{
    struct data_opts d = {0};
    const char *hidden = "256", *act = "relu", *init = "he", *optim = "adam", *sched = "constant", *out = NULL;
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    double dropout = 0.0;
    int threads = 0, quiet = 0;
    const struct kd_cli_option opts[] = {
        {.help = "data:"},
        {.name = "--train", .kind = KD_CLI_STRING, .dest = &d.x, .arg = "FILE",
         .help = "training features: IDX (raw or .gz), CSV or NPY", .def = "Fashion-MNIST's training set"},
        {.name = "--train-labels", .kind = KD_CLI_STRING, .dest = &d.y, .arg = "FILE",
         .help = "training labels (IDX or NPY; CSV takes --label-column)"},
        {.name = "--test", .kind = KD_CLI_STRING, .dest = &d.test_x, .arg = "FILE",
         .help = "evaluation features (optional)", .def = "Fashion-MNIST's test set, without --train"},
        {.name = "--test-labels", .kind = KD_CLI_STRING, .dest = &d.test_y, .arg = "FILE",
         .help = "evaluation labels"},
        {.name = "--label-column", .kind = KD_CLI_STRING, .dest = &d.label_column, .arg = "NAME|N",
         .help = "CSV label column, by header name or 0-based index"},
        {.name = "--scale", .kind = KD_CLI_STRING, .dest = &d.scale, .arg = "MODE",
         .help = "pixels (x/255), standard (fit on train), none; the\n"
                 "model records it, and kd eval, kd predict and the\n"
                 "exports apply it to raw inputs",
         .def = "pixels for Fashion-MNIST, none otherwise"},
        {.help = "network:"},
        {.name = "--hidden", .kind = KD_CLI_STRING, .dest = &hidden, .arg = "SIZES",
         .help = "hidden widths, e.g. 256 or 1024-1024 (0: none); input\n"
                 "and output widths come from the data"},
        {.name = "--act", .kind = KD_CLI_STRING, .dest = &act, .arg = "NAME",
         .help = "relu, gelu, tanh, identity"},
        {.name = "--dropout", .kind = KD_CLI_DOUBLE, .dest = &dropout, .lo = 0, .hi = 0.99, .arg = "P",
         .help = "after each hidden layer, in [0, 0.99]"},
        {.name = "--init", .kind = KD_CLI_STRING, .dest = &init, .arg = "NAME", .help = "he or xavier"},
        {.help = "training:"},
        {.name = "--epochs", .kind = KD_CLI_SIZE, .dest = &tc.epochs, .lo = 0, .hi = 1e6, .arg = "N",
         .help = "passes over the training data"},
        {.name = "--batch", .kind = KD_CLI_SIZE, .dest = &tc.batch, .lo = 1, .hi = 1e6, .arg = "N",
         .help = "examples per step"},
        {.name = "--seed", .kind = KD_CLI_U64, .dest = &tc.seed, .lo = 0, .hi = 9e15, .arg = "N",
         .help = "initialisation, shuffling and dropout"},
        {.name = "--optim", .kind = KD_CLI_STRING, .dest = &optim, .arg = "NAME", .help = "sgd, adam, adamw"},
        {.name = "--lr", .kind = KD_CLI_FLOAT, .dest = &tc.optim.lr, .lo = 0, .hi = 100, .arg = "X",
         .help = "learning rate"},
        {.name = "--momentum", .kind = KD_CLI_FLOAT, .dest = &tc.optim.momentum, .lo = 0, .hi = 1, .arg = "X",
         .help = "sgd's momentum"},
        {.name = "--weight-decay", .kind = KD_CLI_FLOAT, .dest = &tc.optim.weight_decay, .lo = 0, .hi = 10,
         .arg = "X", .help = "L2 penalty (decoupled with adamw)"},
        {.name = "--clip", .kind = KD_CLI_FLOAT, .dest = &tc.optim.clip_norm, .lo = 0, .hi = 1e9, .arg = "X",
         .help = "clip the gradient's norm to X (0: off)"},
        {.name = "--schedule", .kind = KD_CLI_STRING, .dest = &sched, .arg = "NAME",
         .help = "learning rate schedule: constant, step, cosine"},
        {.name = "--warmup", .kind = KD_CLI_U64, .dest = &tc.sched.warmup_steps, .lo = 0, .hi = 1e12,
         .arg = "STEPS", .help = "linear warm-up steps"},
        {.name = "--step-size", .kind = KD_CLI_U64, .dest = &tc.sched.step_size, .lo = 1, .hi = 1e12,
         .arg = "STEPS", .help = "step: multiply the rate by --gamma every STEPS",
         .def = "none: the rate stays constant"},
        {.name = "--gamma", .kind = KD_CLI_FLOAT, .dest = &tc.sched.gamma, .lo = 0, .hi = 1, .arg = "X",
         .help = "step: the factor"},
        {.name = "--min-lr", .kind = KD_CLI_FLOAT, .dest = &tc.sched.min_lr, .lo = 0, .hi = 100, .arg = "X",
         .help = "cosine: the final rate"},
        {.help = "output:"},
        {.name = "--out", .kind = KD_CLI_STRING, .dest = &out, .arg = "FILE",
         .help = "save the weights as safetensors (PyTorch names)"},
        {.name = "--threads", .kind = KD_CLI_INT, .dest = &threads, .lo = 1, .hi = 1024, .arg = "N",
         .help = "threads (kd's pool for the MLP, OpenBLAS's elsewhere)", .def = "KD_THREADS or all cores"},
        {.name = "--quiet", .kind = KD_CLI_FLAG, .dest = &quiet, .help = "no progress bars or per-epoch lines"},
        {0}};
    const struct kd_cli_command cmd = {
        .name = "train",
        .synopsis = "[options]",
        .about = "Trains an MLP classifier with softmax cross-entropy and reports test accuracy.\n"
                 "Without --train it uses Fashion-MNIST from Debian's dataset-fashion-mnist.\n",
        .options = opts,
        .example = "kd train --hidden 1024-1024 --dropout 0.2 --epochs 10 --out mlp.safetensors\n"
                   "kd train --train x.csv --label-column label --scale standard --epochs 30\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != KD_CLI_GO)
        return rc;
    if (!d.x) {
        d.x = KD_FASHION_MNIST_DIR "/train-images-idx3-ubyte.gz";
        d.y = KD_FASHION_MNIST_DIR "/train-labels-idx1-ubyte.gz";
        if (!d.test_x) {
            d.test_x = KD_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz";
            d.test_y = KD_FASHION_MNIST_DIR "/t10k-labels-idx1-ubyte.gz";
        }
        if (!d.scale)
            d.scale = "pixels";
    }
    if (!d.scale)
        d.scale = "none";
    kd_blas_init_threads(threads);
    if (quiet)
        kd_progress_set_quiet(1);

    struct kd_error err = {0};
    struct kd_dataset train = {0}, test = {0};
    struct kd_mlp *m = NULL;
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    rc = 1;
    struct kd_input_scale applied = {0};
    kd_status st = load_data(&d, &train, &test, &applied, &err);
    if (st)
        goto done;
    {
        char sizes[256];
        size_t C = train.n_classes;
        if (d.test_x && test.n_classes > C)
            C = test.n_classes;
        snprintf(sizes, sizeof sizes, "%zu-%s-%zu", kd_dataset_d(&train), hidden, C);
        if (!strcmp(hidden, "0") || !strcmp(hidden, "none"))
            snprintf(sizes, sizeof sizes, "%zu-%zu", kd_dataset_d(&train), C);
        if ((st = kd_mlp_config_parse_sizes(&cfg, sizes, &err)) || (st = kd_act_parse(act, &cfg.act, &err)) ||
            (st = kd_optim_parse(optim, &tc.optim.kind, &err)) ||
            (st = kd_sched_parse(sched, &tc.sched.kind, &err))) {
            rc = 2;
            goto done;
        }
        if (kd_init_from_name(init, &cfg.init) != KD_OK) {
            st = kd_error_set(&err, KD_ERR_ARG, "--init must be he or xavier, got '%s'", init);
            rc = 2;
            goto done;
        }
        cfg.dropout = (float)dropout;
        size_t steps_per_epoch = (kd_dataset_n(&train) + tc.batch - 1) / tc.batch;
        tc.sched.total_steps = steps_per_epoch * tc.epochs;
        if ((st = kd_mlp_new(&cfg, tc.seed, &m, &err)))
            goto done;
        /* The model remembers its scaling: kd eval, kd predict and the exports apply it to raw inputs. */
        m->scale = applied;
        memset(&applied, 0, sizeof applied);
        printf("kd train: %zu examples of %zu features, %zu classes; network %s (%s, dropout %g), %zu parameters\n",
               kd_dataset_n(&train), kd_dataset_d(&train), C, sizes, kd_act_name(cfg.act), dropout, m->n_params);
        printf("          %s lr %g, batch %zu, %zu epochs, seed %llu, %d threads\n",
               kd_optim_name(tc.optim.kind), (double)tc.optim.lr, tc.batch, tc.epochs,
               (unsigned long long)tc.seed, kd_blas_get_threads());
        fflush(stdout);
    }
    struct epoch_report rep = {d.test_x ? &test : NULL, quiet, kd_time_now()};
    tc.on_epoch = report_epoch;
    tc.epoch_ctx = &rep;
    tc.stop = &interrupted;
    signal(SIGINT, on_sigint);
    struct kd_train_result res;
    st = kd_mlp_train_ce(m, &train.x, train.y, NULL, &tc, &res, &err);
    signal(SIGINT, SIG_DFL);
    if (st)
        goto done;
    printf("trained %zu epochs in %.1f s (%.0f examples/s)\n", res.epochs_done, res.seconds, res.examples_per_s);
    if (d.test_x) {
        struct kd_eval ev;
        if ((st = kd_mlp_evaluate(m, &test.x, test.y, &ev, &err)))
            goto done;
        printf("test: %zu examples, loss %.4f, accuracy %.4f (%zu errors)\n", ev.n, ev.loss, ev.accuracy,
               ev.n - (size_t)(ev.accuracy * (double)ev.n + 0.5));
        kd_eval_release(&ev);
    }
    if (out) {
        if ((st = kd_mlp_save(m, out, NULL, 0, &err)))
            goto done;
        printf("saved %s\n", out);
    }
    rc = 0;
done:
    if (st)
        rc = rc == 2 ? (kd_cli_fail(&err), 2) : kd_cli_fail(&err);
    kd_mlp_free(m);
    kd_input_scale_release(&applied);
    kd_dataset_release(&train);
    kd_dataset_release(&test);
    return rc;
}

int kd_cmd_eval(int argc, char **argv)
{
    /* A dual encoder (by its metadata) or --beir: retrieval metrics instead. */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--beir") || !strncmp(argv[i], "--beir=", 7) ||
            (argv[i][0] != '-' && strcmp(argv[i - 1], "--data") && strcmp(argv[i - 1], "--labels") &&
             strcmp(argv[i - 1], "--scale") && kd_cli_is_dual_model(argv[i])))
            return kd_cmd_eval_retrieval(argc, argv);
    const char *x = NULL, *y = NULL, *scale = NULL, *args[1];
    size_t n_args;
    int confusion = 0;
    const struct kd_cli_option opts[] = {
        {.name = "--data", .kind = KD_CLI_STRING, .dest = &x, .arg = "FILE",
         .help = "features: IDX (raw or .gz), CSV or NPY", .def = "Fashion-MNIST's test set"},
        {.name = "--labels", .kind = KD_CLI_STRING, .dest = &y, .arg = "FILE", .help = "labels (IDX or NPY)"},
        {.name = "--scale", .kind = KD_CLI_STRING, .dest = &scale, .arg = "MODE",
         .help = "pixels (x/255), standard (fit on this data), none;\n"
                 "replaces the scaling the model records",
         .def = "the model's; old files: pixels for FMNIST"},
        {.name = "--confusion", .kind = KD_CLI_FLAG, .dest = &confusion,
         .help = "print the confusion matrix (rows: true class)"},
        {0}};
    const struct kd_cli_command cmd = {
        .name = "eval",
        .synopsis = "MODEL [--data FILE --labels FILE] [--scale MODE] [--confusion]",
        .about = "Evaluates a saved MLP (safetensors from kd train) on labelled data and prints\n"
                 "loss and accuracy. Without --data it uses the Fashion-MNIST test set.\n"
                 "A dual encoder is evaluated by retrieval instead: kd eval DUAL --beir DIR\n"
                 "(see kd eval DUAL --help, and kd search --help).\n",
        .options = opts,
        .max_args = 1,
        .example = "kd eval mlp.safetensors --confusion\n"
                   "kd eval mlp.safetensors --data x.npy --labels y.npy --scale none\n",
    };
    int rc = kd_cli_parse(&cmd, argc, argv, args, &n_args);
    if (rc != KD_CLI_GO)
        return rc;
    if (n_args == 0)
        return kd_cli_usage_error(&cmd, "no model given");
    const char *model = args[0];
    const char *def_scale = "none";
    if (!x) {
        x = KD_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz";
        y = KD_FASHION_MNIST_DIR "/t10k-labels-idx1-ubyte.gz";
        def_scale = "pixels";
    }
    struct kd_error err = {0};
    struct kd_dataset ds = {0}, none = {0};
    struct kd_mlp *m = NULL;
    struct kd_eval ev = {0};
    rc = 1;
    kd_status st = kd_mlp_load(model, &m, &err);
    int apply = 0;
    if (!st)
        scale = kd_cli_choose_scale(model, m, scale, def_scale, &apply);
    struct data_opts d = {x, y, NULL, NULL, NULL, scale};
    if (!st)
        st = load_data(&d, &ds, &none, NULL, &err);
    if (!st && apply)
        st = kd_input_scale_apply(&m->scale, &ds.x, &err);
    if (!st)
        st = kd_mlp_evaluate(m, &ds.x, ds.y, &ev, &err);
    if (st) {
        rc = kd_cli_fail(&err);
        goto done;
    }
    printf("%s on %s: %zu examples, loss %.4f, accuracy %.4f\n", model, x, ev.n, ev.loss, ev.accuracy);
    if (confusion) {
        printf("confusion (row = true class, column = predicted):\n");
        for (size_t r = 0; r < ev.n_classes; r++) {
            printf("%4zu:", r);
            for (size_t c = 0; c < ev.n_classes; c++)
                printf(" %5zu", ev.confusion[r * ev.n_classes + c]);
            printf("\n");
        }
    }
    rc = 0;
done:
    kd_eval_release(&ev);
    kd_mlp_free(m);
    kd_dataset_release(&ds);
    return rc;
}

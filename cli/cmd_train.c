/* kd train / kd eval: MLP classifiers on labelled data. */
#include "cli/kd_cli.h"

#include "data/kd_data.h"
#include "student/kd_student.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const char train_usage[] =
    "usage: kd train [options]\n"
    "\n"
    "Trains an MLP classifier with softmax cross-entropy and reports test accuracy.\n"
    "Without --train it uses Fashion-MNIST from Debian's dataset-fashion-mnist.\n"
    "\n"
    "data:\n"
    "  --train FILE           training features: IDX (raw or .gz), CSV or NPY\n"
    "  --train-labels FILE    training labels (IDX or NPY; CSV takes --label-column)\n"
    "  --test FILE, --test-labels FILE   evaluation data (optional)\n"
    "  --label-column NAME|N  CSV label column, by header name or 0-based index\n"
    "  --scale MODE           pixels (x/255), standard (fit on train), none\n"
    "                         (default: pixels for Fashion-MNIST, none otherwise)\n"
    "network:\n"
    "  --hidden SIZES         hidden widths, e.g. 256 or 1024-1024 (default 256);\n"
    "                         input and output widths come from the data\n"
    "  --act NAME             relu, gelu, tanh, identity (default relu)\n"
    "  --dropout P            after each hidden layer, in [0, 1) (default 0)\n"
    "  --init NAME            he or xavier (default he)\n"
    "training:\n"
    "  --epochs N (10)  --batch N (256)  --seed N (1)\n"
    "  --optim NAME           sgd, adam, adamw (default adam)\n"
    "  --lr X (0.001)  --momentum X (0)  --weight-decay X (0)  --clip X (0: off)\n"
    "  --schedule NAME        constant, step, cosine (default constant)\n"
    "  --warmup STEPS (0)  --step-size STEPS  --gamma X (0.1)  --min-lr X (0)\n"
    "output:\n"
    "  --out FILE             save the weights as safetensors (PyTorch names)\n"
    "  --threads N            BLAS threads (default: KD_THREADS or all cores)\n"
    "  --quiet                no progress bars or per-epoch lines\n"
    "\n"
    "example:\n"
    "  kd train --hidden 1024-1024 --dropout 0.2 --epochs 10 --out mlp.safetensors\n";

static const char eval_usage[] =
    "usage: kd eval MODEL [--data FILE --labels FILE] [--scale MODE] [--confusion]\n"
    "\n"
    "Evaluates a saved MLP (safetensors from kd train) on labelled data and prints\n"
    "loss and accuracy; --confusion adds the confusion matrix (rows: true class).\n"
    "Without --data it uses the Fashion-MNIST test set (scaled as pixels).\n";

static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct data_opts {
    const char *x, *y, *test_x, *test_y, *label_column, *scale;
};

/* Loads train (and test, if named) and scales both the same way. */
static kd_status load_data(const struct data_opts *o, struct kd_dataset *train, struct kd_dataset *test,
                           struct kd_error *err)
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
        kd_scaler_release(&sc);
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
    double v, dropout = 0.0;
    int threads = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *s;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(train_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--train"))) {
            d.x = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--train-labels"))) {
            d.y = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--test"))) {
            d.test_x = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--test-labels"))) {
            d.test_y = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--label-column"))) {
            d.label_column = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--scale"))) {
            d.scale = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--hidden"))) {
            hidden = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--act"))) {
            act = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--init"))) {
            init = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--optim"))) {
            optim = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--schedule"))) {
            sched = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--out"))) {
            out = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--dropout"))) {
            if (!kd_cli_parse_num(a, s, 0, 0.99, &dropout))
                return 2;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--epochs"))) {
            if (!kd_cli_parse_num("--epochs", s, 0, 1e6, &v))
                return 2;
            tc.epochs = (size_t)v;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--batch"))) {
            if (!kd_cli_parse_num("--batch", s, 1, 1e6, &v))
                return 2;
            tc.batch = (size_t)v;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--seed"))) {
            if (!kd_cli_parse_num("--seed", s, 0, 9e15, &v))
                return 2;
            tc.seed = (uint64_t)v;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--lr"))) {
            if (!kd_cli_parse_num("--lr", s, 0, 100, &v))
                return 2;
            tc.optim.lr = (float)v;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--momentum"))) {
            if (!kd_cli_parse_num("--momentum", s, 0, 1, &v))
                return 2;
            tc.optim.momentum = (float)v;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--weight-decay"))) {
            if (!kd_cli_parse_num("--weight-decay", s, 0, 10, &v))
                return 2;
            tc.optim.weight_decay = (float)v;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--clip"))) {
            if (!kd_cli_parse_num("--clip", s, 0, 1e9, &v))
                return 2;
            tc.optim.clip_norm = (float)v;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--warmup"))) {
            if (!kd_cli_parse_num("--warmup", s, 0, 1e12, &v))
                return 2;
            tc.sched.warmup_steps = (uint64_t)v;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--step-size"))) {
            if (!kd_cli_parse_num("--step-size", s, 1, 1e12, &v))
                return 2;
            tc.sched.step_size = (uint64_t)v;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--gamma"))) {
            if (!kd_cli_parse_num("--gamma", s, 0, 1, &v))
                return 2;
            tc.sched.gamma = (float)v;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--min-lr"))) {
            if (!kd_cli_parse_num("--min-lr", s, 0, 100, &v))
                return 2;
            tc.sched.min_lr = (float)v;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--threads"))) {
            if (!kd_cli_parse_num("--threads", s, 1, 1024, &v))
                return 2;
            threads = (int)v;
        } else {
            fprintf(stderr, "kd: train: unknown option '%s' (see kd train --help)\n", a);
            return 2;
        }
    }
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
    int rc = 1;
    kd_status st = load_data(&d, &train, &test, &err);
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
        printf("kd train: %zu examples of %zu features, %zu classes; network %s (%s, dropout %g), %zu parameters\n",
               kd_dataset_n(&train), kd_dataset_d(&train), C, sizes, kd_act_name(cfg.act), dropout, m->n_params);
        printf("          %s lr %g, batch %zu, %zu epochs, seed %llu, %d BLAS threads\n",
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
    kd_dataset_release(&train);
    kd_dataset_release(&test);
    return rc;
}

int kd_cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *x = NULL, *y = NULL, *scale = NULL;
    int confusion = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *s;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(eval_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--confusion")) {
            confusion = 1;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--data"))) {
            x = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--labels"))) {
            y = s;
        } else if ((s = kd_cli_opt_value(argc, argv, &i, "--scale"))) {
            scale = s;
        } else if (a[0] == '-') {
            fprintf(stderr, "kd: eval: unknown option '%s' (see kd eval --help)\n", a);
            return 2;
        } else if (!model) {
            model = a;
        } else {
            fprintf(stderr, "kd: eval: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!model) {
        fputs(eval_usage, stderr);
        return 2;
    }
    if (!x) {
        x = KD_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz";
        y = KD_FASHION_MNIST_DIR "/t10k-labels-idx1-ubyte.gz";
        if (!scale)
            scale = "pixels";
    }
    struct data_opts d = {x, y, NULL, NULL, NULL, scale ? scale : "none"};
    struct kd_error err = {0};
    struct kd_dataset ds = {0}, none = {0};
    struct kd_mlp *m = NULL;
    struct kd_eval ev = {0};
    int rc = 1;
    kd_status st = kd_mlp_load(model, &m, &err);
    if (!st)
        st = load_data(&d, &ds, &none, &err);
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

/* student: real data. A small MLP on a Fashion-MNIST slice, and the saved
 * weights checked by an independent numpy implementation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/kd_data.h"
#include "student/kd_student.h"

#define FM KD_FASHION_MNIST_DIR

static int have_fashion(void) { return access(FM "/train-images-idx3-ubyte.gz", R_OK) == 0; }

static struct kd_mlp *train_slice(size_t n, size_t epochs)
{
    struct kd_dataset all = {0}, slice = {0};
    struct kd_error err = {0};
    cr_assert_eq(kd_data_load_idx(FM "/train-images-idx3-ubyte.gz", FM "/train-labels-idx1-ubyte.gz", &all, &err),
                 KD_OK, "%s", err.msg);
    size_t counts[1] = {n};
    cr_assert_eq(kd_data_split(&all, 1, counts, 1, &slice, &err), KD_OK);
    kd_data_scale_unit(&slice, 0.0f, 255.0f);
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    kd_mlp_config_parse_sizes(&cfg, "784-64-10", NULL);
    struct kd_mlp *m;
    cr_assert_eq(kd_mlp_new(&cfg, 1, &m, &err), KD_OK);
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    tc.epochs = epochs;
    cr_assert_eq(kd_mlp_train_ce(m, &slice.x, slice.y, NULL, &tc, NULL, &err), KD_OK, "%s", err.msg);
    kd_dataset_release(&all);
    kd_dataset_release(&slice);
    return m;
}

Test(student, mlp_learns_fashion_mnist_from_a_slice)
{
    if (!have_fashion())
        cr_skip_test("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
    struct kd_mlp *m = train_slice(6000, 5);
    struct kd_dataset test = {0};
    struct kd_error err = {0};
    cr_assert_eq(kd_data_load_idx(FM "/t10k-images-idx3-ubyte.gz", FM "/t10k-labels-idx1-ubyte.gz", &test, &err),
                 KD_OK);
    kd_data_scale_unit(&test, 0.0f, 255.0f);
    struct kd_eval ev;
    cr_assert_eq(kd_mlp_evaluate(m, &test.x, test.y, &ev, &err), KD_OK);
    /* 6,000 images, 5 epochs: about 0.82 here; far above chance (0.10) */
    cr_assert_gt(ev.accuracy, 0.78, "test accuracy %g", ev.accuracy);
    kd_eval_release(&ev);
    kd_dataset_release(&test);
    kd_mlp_free(m);
}

Test(student, saved_weights_give_the_same_logits_in_numpy, .timeout = 120)
{
    const char *kd = getenv("KD_BIN"), *root = getenv("KD_ROOT");
    if (!have_fashion())
        cr_skip_test("Fashion-MNIST is not installed");
    if (!kd || !root)
        cr_skip_test("KD_BIN/KD_ROOT not set (run through make test)");
    if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0)
        cr_skip_test("numpy is not installed for /usr/bin/python3 (apt-get install python3-numpy)");
    struct kd_mlp *m = train_slice(3000, 2);
    char dir[] = "/tmp/kd-test-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[64], cmd[1024];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    struct kd_error err = {0};
    cr_assert_eq(kd_mlp_save(m, path, NULL, 0, &err), KD_OK, "%s", err.msg);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/crosscheck_numpy.py %s %s --n 100 --kd %s --tol 1e-5",
             root, path, FM "/t10k-images-idx3-ubyte.gz", kd);
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "crosscheck failed: %s", cmd);
    remove(path);
    rmdir(dir);
    kd_mlp_free(m);
}

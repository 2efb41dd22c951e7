/* A program that uses kd as a library, built outside kd's tree:
 *
 *     cc -std=c11 -Wall -Wextra -Wpedantic fashion.c $(pkg-config --cflags --libs kd) -o fashion
 *     ./fashion [FASHION_MNIST_DIR]
 *
 * It trains a small MLP on 2,000 Fashion-MNIST images, reports its accuracy on
 * 1,000 test images, saves and reloads the model, and predicts the classes of
 * the first five test images. Fashion-MNIST is Debian's dataset-fashion-mnist. */
#include <kd/data/kd_data.h>
#include <kd/student/kd_student.h>

#include <stdio.h>

static const char *const names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/* n images of one Fashion-MNIST file pair, pixels scaled to [0, 1]. */
static kd_status load(const char *dir, const char *set, size_t n, struct kd_dataset *out, struct kd_error *err)
{
    char images[512], labels[512];
    snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", dir, set);
    snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", dir, set);
    struct kd_dataset all = {0};
    kd_status st = kd_data_load_idx(images, labels, &all, err);
    if (!st)
        st = kd_data_split(&all, 1, &n, 1, out, err);
    if (!st)
        kd_data_scale_unit(out, 0.0f, 255.0f);
    kd_dataset_release(&all);
    return st;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : KD_FASHION_MNIST_DIR;
    struct kd_error err = {0};
    struct kd_dataset train = {0}, test = {0};
    struct kd_mlp *m = NULL, *back = NULL;
    struct kd_eval ev = {0};
    struct kd_tensor logits = {0};
    struct kd_mlp_config cfg;
    struct kd_train_config tc;
    const size_t sizes[] = {784, 64, 10};
    kd_status st;

    printf("kd %s\n", KD_VERSION);
    if ((st = load(dir, "train", 2000, &train, &err)) || (st = load(dir, "t10k", 1000, &test, &err)))
        goto done;
    kd_mlp_config_init(&cfg);
    if ((st = kd_mlp_config_set_sizes(&cfg, sizes, 3, &err)) || (st = kd_mlp_new(&cfg, 42, &m, &err)))
        goto done;
    kd_train_config_init(&tc);
    tc.epochs = 5;
    tc.label = "fashion";
    if ((st = kd_mlp_train_ce(m, &train.x, train.y, NULL, &tc, NULL, &err)))
        goto done;
    if ((st = kd_mlp_evaluate(m, &test.x, test.y, &ev, &err)))
        goto done;
    printf("trained 784-64-10 on %zu images: test accuracy %.3f on %zu images\n", train.x.rows, ev.accuracy, ev.n);
    if ((st = kd_mlp_save(m, "fashion.safetensors", NULL, 0, &err)) ||
        (st = kd_mlp_load("fashion.safetensors", &back, &err)))
        goto done;
    if ((st = kd_tensor_init(&logits, test.x.rows, kd_mlp_out(back), &err)) ||
        (st = kd_mlp_predict(back, &test.x, &logits, &err)))
        goto done;
    for (size_t i = 0; i < 5; i++) {
        size_t k = kd_argmax(kd_tensor_row(&logits, i), kd_mlp_out(back));
        printf("test image %zu: predicted %-11s true %s\n", i, names[k], names[test.y[i]]);
    }
done:
    if (st)
        fprintf(stderr, "fashion: %s\n", err.msg);
    kd_tensor_release(&logits);
    kd_eval_release(&ev);
    kd_mlp_free(back);
    kd_mlp_free(m);
    kd_dataset_release(&train);
    kd_dataset_release(&test);
    return st ? 1 : 0;
}

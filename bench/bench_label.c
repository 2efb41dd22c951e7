/* bench_label: what the label store costs a fast teacher, end to end.
 *
 * Labels the 60,000 Fashion-MNIST training images with a 784-256-10 MLP
 * teacher (kd_teacher_label, as kd run's label stages do; a fresh store
 * each time), once with the store writer in the labelling thread
 * (store_inline) and once in the background (the default), alternating,
 * R times each. Prints for each run and as medians: wall time, CPU time of
 * the process (all threads, user + system), and how long labelling spent
 * handing answers to the store and waiting for it (t->store_wait).
 * --prefill P first stores P answers of other inputs for the same teacher
 * (puts of 100,000, not timed), so that labelling commits into a store of
 * that size, where a commit rewrites most of the teacher's pages.
 *
 *   build/bench/bench_label [--repeat R] [--threads T] [--dir DIR] [--hidden H]
 *                           [--prefill P]
 *
 * T: BLAS threads of the teacher (default 1). DIR: where the stores go
 * (default /tmp).
 */
#include "data/kd_data.h"
#include "store/kd_store.h"
#include "bench/store_util.h"
#include "student/kd_student.h"
#include "teacher/kd_teacher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void die(const char *what, const struct kd_error *err)
{
    fprintf(stderr, "bench_label: %s: %s\n", what, err->msg);
    exit(1);
}

struct result {
    double wall, cpu, wait;
};

/* P answers of random keys (none an image's) for the teacher, in puts of
 * 100,000. */
static void prefill(struct kd_store *st, const struct kd_teacher *t, size_t P)
{
    enum { PUT = 100000 };
    static struct kd_hash keys[PUT];
    static float a[PUT * 10];
    struct kd_rng rng;
    kd_rng_seed(&rng, 99);
    struct kd_error err = {0};
    for (size_t done = 0; done < P; done += PUT) {
        size_t n = P - done < PUT ? P - done : PUT;
        for (size_t i = 0; i < n; i++) {
            keys[i].hi = kd_rng_u64(&rng);
            keys[i].lo = kd_rng_u64(&rng);
            for (size_t c = 0; c < 10; c++)
                a[i * 10 + c] = (float)kd_rng_uniform(&rng);
        }
        if (kd_store_put(st, t->id, KD_STORE_LOGITS, keys, n, 10, a, NULL, NULL, &err))
            die("prefilling the store", &err);
    }
}

/* One labelling of x into a fresh store at path. */
static struct result label_once(const char *path, struct kd_mlp *net, const struct kd_dataset *ds, int store_inline,
                                size_t P)
{
    struct kd_error err = {0};
    remove_store(path);
    struct kd_store *st = NULL;
    if (kd_store_open(path, NULL, &st, &err))
        die("opening the store", &err);
    struct kd_teacher_spec spec = {.name = "mlp", .kind = KD_TEACHER_MODEL, .net = net};
    struct kd_teacher *t = NULL;
    if (kd_teacher_open(&spec, st, ds->x.cols, &t, &err))
        die("opening the teacher", &err);
    t->store_inline = store_inline;
    prefill(st, t, P);
    struct kd_tensor out;
    if (kd_tensor_init(&out, ds->x.rows, t->c, &err))
        die("allocating", &err);
    struct kd_label_stats ls;
    double w0 = kd_time_now(), c0 = cpu_now();
    if (kd_teacher_label(t, &ds->x, "train", ds->rows, SIZE_MAX, &out, &ls, NULL, &err))
        die("labelling", &err);
    struct result r = {kd_time_now() - w0, cpu_now() - c0, t->store_wait};
    if (ls.queried != ds->x.rows) {
        fprintf(stderr, "bench_label: %zu of %zu asked\n", ls.queried, ds->x.rows);
        exit(1);
    }
    kd_tensor_release(&out);
    kd_teacher_close(t);
    kd_store_close(st);
    remove_store(path);
    return r;
}

int main(int argc, char **argv)
{
    int repeat = 3, threads = 1;
    size_t hidden = 256, P = 0;
    const char *dir = "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--hidden") && i + 1 < argc)
            hidden = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--prefill") && i + 1 < argc)
            P = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else {
            fprintf(stderr, "usage: bench_label [--repeat R] [--threads T] [--hidden H] [--dir DIR] [--prefill P]\n");
            return 2;
        }
    }
    if (repeat < 1 || repeat > 50 || threads < 1 || hidden < 1) {
        fprintf(stderr, "bench_label: --repeat 1..50, --threads >= 1, --hidden >= 1\n");
        return 2;
    }
    kd_progress_set_quiet(1);
    kd_log_set_level(KD_LOG_WARN);
    kd_blas_set_threads(threads);
    struct kd_error err = {0};
    struct kd_dataset ds;
    if (kd_data_load_idx(KD_FASHION_MNIST_DIR "/train-images-idx3-ubyte.gz", NULL, &ds, &err))
        die("loading Fashion-MNIST", &err);
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    size_t sizes[] = {ds.x.cols, hidden, 10};
    struct kd_mlp *net = NULL;
    if (kd_mlp_config_set_sizes(&cfg, sizes, 3, &err) || kd_mlp_new(&cfg, 1, &net, &err))
        die("making the teacher", &err);
    char path[4096];
    snprintf(path, sizeof path, "%s/bench_label_%d.db", dir, (int)getpid());
    printf("bench_label: %zu Fashion-MNIST images, teacher %zu-%zu-10 MLP (%d BLAS thread%s), store %s holding "
           "%zu answers before\n",
           ds.x.rows, ds.x.cols, hidden, threads, threads == 1 ? "" : "s", path, P);
    double wall[2][50], cpu[2][50], wait[2][50];
    const char *name[2] = {"in the labelling thread", "in the background"};
    for (int r = 0; r < repeat; r++)
        for (int k = 0; k < 2; k++) {
            int mode = (r % 2) ? 1 - k : k; /* alternate which goes first */
            struct result x = label_once(path, net, &ds, mode == 0, P);
            wall[mode][r] = x.wall;
            cpu[mode][r] = x.cpu;
            wait[mode][r] = x.wait;
            printf("  run %d, writer %-24s wall %6.2f s  cpu %6.2f s  waiting for the store %6.2f s  %8.0f answers/s\n",
                   r + 1, name[mode], x.wall, x.cpu, x.wait, (double)ds.x.rows / x.wall);
            fflush(stdout);
        }
    for (int mode = 0; mode < 2; mode++) {
        double w = median(wall[mode], repeat), c = median(cpu[mode], repeat), s = median(wait[mode], repeat);
        printf("median of %d, writer %-24s wall %6.2f s  cpu %6.2f s  waiting for the store %6.2f s  %8.0f answers/s\n",
               repeat, name[mode], w, c, s, (double)ds.x.rows / w);
    }
    double la[3];
    if (getloadavg(la, 3) == 3)
        printf("load average at the end: %.2f %.2f %.2f\n", la[0], la[1], la[2]);
    kd_mlp_free(net);
    kd_dataset_release(&ds);
    return 0;
}

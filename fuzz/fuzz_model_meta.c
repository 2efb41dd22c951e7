/* Fuzzes the safetensors files kd reads besides the three model kinds of
 * the safetensors harness, and what each does with its metadata strings:
 *
 *   b & 1 == 0: kd_autoencoder_load (the TGT sampler's `autoencoder:` file
 *       of a pipeline): kd_format, encoder_sizes, decoder_sizes, activation,
 *       then the layers, lo, hi and z_std; an accepted autoencoder encodes
 *       and decodes one row;
 *   b & 1 == 1: a training checkpoint (kd_mlp_train with checkpoint and
 *       resume, as `kd train --checkpoint F --resume` and pipeline stages
 *       with resume call it): epoch, step, optim_t, rng, n_params, then
 *       params, optim.m and optim.v, for a 2-3-2 network with Adam and
 *       ((b >> 1) & 3) + 1 epochs on 4 rows; training then goes on and
 *       writes its own checkpoint over the file.
 *
 * Input: the byte, then the file. The file is written into a private folder
 * under $TMPDIR (or /dev/shm): a checkpoint is replaced by a rename beside it.
 * A refused file must leave a message; an accepted checkpoint must count
 * the epochs it restored among those done, and all asked for as done. */
#include <dirent.h>
#include <sys/stat.h>

#include "fuzz/fuzz_util.h"
#include "sampling/kd_sampling.h"
#include "student/kd_student.h"

static char dir[256], file[300];

/* Removes every file of the folder (the input, a checkpoint's temporary). */
static void empty_dir(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char p[600];
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
}

static void cleanup(void)
{
    empty_dir();
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    kd_fuzz_quiet();
    const char *tmp = getenv("TMPDIR");
    struct stat sb;
    if (!tmp || !tmp[0])
        tmp = stat("/dev/shm", &sb) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/kd-fuzz-model-meta-%ld", tmp, (long)getpid());
    if (mkdir(dir, 0700) != 0 && stat(dir, &sb) != 0) {
        perror(dir);
        abort();
    }
    snprintf(file, sizeof file, "%s/f.safetensors", dir);
    atexit(cleanup);
    return 0;
}

static void put(const uint8_t *data, size_t n)
{
    FILE *f = fopen(file, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(file);
        abort();
    }
}

static void autoencoder(void)
{
    struct kd_autoencoder *ae = NULL;
    struct kd_error err = {0};
    if (kd_autoencoder_load(file, &ae, &err) != KD_OK) {
        if (!err.msg[0] || ae)
            abort();
        return;
    }
    /* the widths it declares: x (1, D) -> z (1, E) -> x (1, D) */
    size_t d = ae->d, e = ae->e;
    struct kd_tensor x = {0}, z = {0};
    if (kd_tensor_init(&x, 1, d, &err) || kd_tensor_init(&z, 1, e, &err))
        abort();
    for (size_t j = 0; j < d; j++)
        x.data[j] = 0.5f;
    if (kd_autoencoder_encode(ae, &x, &z, &err) != KD_OK || kd_autoencoder_decode(ae, &z, &x, &err) != KD_OK)
        abort();
    kd_tensor_release(&x);
    kd_tensor_release(&z);
    kd_autoencoder_free(ae);
}

static void checkpoint(unsigned epochs)
{
    struct kd_error err = {0};
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    const size_t sizes[] = {2, 3, 2};
    struct kd_mlp *m = NULL;
    if (kd_mlp_config_set_sizes(&cfg, sizes, 3, &err) || kd_mlp_new(&cfg, 1, &m, &err))
        abort();
    struct kd_tensor x = {0};
    if (kd_tensor_init(&x, 4, 2, &err))
        abort();
    const int32_t y[4] = {0, 1, 1, 0};
    for (size_t i = 0; i < 8; i++)
        x.data[i] = (float)(i % 3) - 1.0f;
    struct kd_train_config tc;
    kd_train_config_init(&tc);
    tc.epochs = epochs;
    tc.batch = 2;
    tc.checkpoint = file;
    tc.resume = 1;
    tc.label = NULL;
    struct kd_train_result r;
    /* Finite weights are not checked after training: finite but huge ones
     * (1e31) in a checkpoint train on to NaN, as a too-large learning rate
     * would (docs/fuzzing.md, "Not fuzzed yet"). */
    if (kd_mlp_train_ce(m, &x, y, NULL, &tc, &r, &err) == KD_OK) {
        if (r.epochs_done < r.epochs_resumed || r.epochs_done < epochs)
            abort();
    } else if (!err.msg[0]) {
        abort();
    }
    kd_tensor_release(&x);
    kd_mlp_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned b = data[0];
    put(data + 1, size - 1);
    if (b & 1)
        checkpoint(((b >> 1) & 3) + 1);
    else
        autoencoder();
    empty_dir();
    return 0;
}

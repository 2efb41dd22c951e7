/* Fuzzes the safetensors reader (header length, JSON header, dtypes, shapes,
 * offsets, coverage of the data section) and what kd does with a file it
 * accepted: copying F32 tensors out (finite-value check) and loading it as
 * an MLP (`kd predict --model`, teacher kind model with weights:). */
#include "fuzz/fuzz_util.h"
#include "student/kd_student.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    kd_fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = kd_fuzz_memfile("st", data, size, path, sizeof path);
    struct kd_error err = {0};
    struct kd_safetensors st;
    memset(&st, 0, sizeof st);
    if (kd_safetensors_read(path, &st, &err) == KD_OK) {
        /* an accepted file's promises: offsets in range, sizes as declared */
        for (size_t i = 0; i < st.n_tensors; i++) {
            const struct kd_st_tensor *t = &st.tensors[i];
            if (t->begin > t->end || t->end > st.data_len)
                abort();
            if (kd_safetensors_find(&st, t->name) == NULL)
                abort();
            if (t->dtype == KD_DTYPE_F32) {
                size_t n = (size_t)(t->end - t->begin) / sizeof(float);
                float *out = malloc(n ? n * sizeof(float) : 1);
                if (out)
                    (void)kd_safetensors_copy_f32(&st, t->name, out, n, t->ndim, t->shape, &err);
                free(out);
            }
        }
        for (size_t i = 0; i < st.n_meta; i++)
            (void)kd_safetensors_meta(&st, st.meta[i].key);
        kd_safetensors_release(&st);
        struct kd_mlp *m = NULL;
        if (kd_mlp_load(path, &m, &err) == KD_OK) {
            /* one forward pass: the loaded shapes must fit together */
            struct kd_tensor x, y;
            if (kd_tensor_init(&x, 1, kd_mlp_in(m), &err) == KD_OK) {
                if (kd_tensor_init(&y, 1, kd_mlp_out(m), &err) == KD_OK) {
                    (void)kd_mlp_predict(m, &x, &y, &err);
                    kd_tensor_release(&y);
                }
                kd_tensor_release(&x);
            }
            kd_mlp_free(m);
        }
    }
    close(fd);
    return 0;
}

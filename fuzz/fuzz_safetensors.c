/* Fuzzes the safetensors reader (header length, JSON header, dtypes, shapes,
 * offsets, coverage of the data section) and what kd does with a file it
 * accepted: copying F32 tensors out (finite-value check) and loading it as
 * an MLP (`kd predict --model`, teacher kind model with weights:), as a dual
 * encoder (`kd search`, `kd encode`) and as a cross-encoder, whose metadata
 * (widths, flags, the featuriser's settings line) is parsed too. */
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
        struct kd_dual *de = NULL;
        char *feat = NULL;
        if (kd_dual_load(path, &de, &feat, &err) == KD_OK) {
            /* one text's embedding: the loaded tower's shapes must fit */
            uint32_t id = 0;
            size_t off[2] = {0, 1};
            struct kd_features f = {&id, off, 1, 1, kd_dual_tower(de, KD_SIDE_QUERY)->bag.buckets};
            struct kd_tensor e;
            memset(&e, 0, sizeof e);
            (void)kd_dual_encode(de, KD_SIDE_QUERY, &f, &e, &err);
            kd_tensor_release(&e);
            kd_dual_free(de);
        }
        free(feat);
        feat = NULL;
        struct kd_cross *ce = NULL;
        if (kd_cross_load(path, &ce, &feat, &err) == KD_OK)
            kd_cross_free(ce);
        free(feat);
    }
    close(fd);
    return 0;
}

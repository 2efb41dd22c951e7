/* MLP weights as safetensors, with PyTorch's names and (out, in) shapes so a
 * stack of torch.nn.Linear in a ModuleList called `layers` loads them as is. */
#include "student/kd_student.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* "[a, b]": a shape as kd_safetensors_copy_f32's messages write it. */
static const char *shape_text(char *buf, size_t cap, int ndim, const uint64_t *shape)
{
    size_t at = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%" PRIu64, i ? ", " : "", shape[i]);
    if (at < cap)
        snprintf(buf + at, cap - at, "]");
    return buf;
}

kd_status kd_mlp_check_tensors(const struct kd_mlp_config *cfg, const struct kd_safetensors *f,
                               const char *prefix, struct kd_error *err)
{
    for (size_t l = 0; l + 1 < cfg->n_sizes; l++)
        for (int bias = 0; bias < 2; bias++) {
            char name[64];
            snprintf(name, sizeof name, "%slayers.%zu.%s", prefix, l, bias ? "bias" : "weight");
            const struct kd_st_tensor *t = kd_safetensors_find(f, name);
            const uint64_t want[2] = {cfg->sizes[l + 1], cfg->sizes[l]};
            int ndim = bias ? 1 : 2;
            if (!t)
                return kd_error_set(err, KD_ERR_NOT_FOUND, "no tensor '%s' in the file (it has %zu tensors)",
                                    name, f->n_tensors);
            if (t->dtype != KD_DTYPE_F32)
                continue; /* the copy says so; its bytes are in the file */
            if (t->ndim != ndim || t->shape[0] != want[0] || (!bias && t->shape[1] != want[1])) {
                char have[160], need[64];
                return kd_error_set(err, KD_ERR_SHAPE, "tensor '%s' has shape %s, expected %s", name,
                                    shape_text(have, sizeof have, t->ndim, t->shape),
                                    shape_text(need, sizeof need, ndim, want));
            }
        }
    return KD_OK;
}

kd_status kd_mlp_save(const struct kd_mlp *m, const char *path, const struct kd_st_meta *extra,
                      size_t n_extra, struct kd_error *err)
{
    struct kd_st_writer w;
    kd_st_writer_init(&w);
    char names[KD_MLP_MAX_LAYERS][2][48];
    uint64_t shapes[KD_MLP_MAX_LAYERS][2][2];
    kd_status st = KD_OK;
    for (size_t l = 0; l < m->n_layers && !st; l++) {
        const struct kd_dense *L = &m->layers[l];
        snprintf(names[l][0], sizeof names[l][0], "layers.%zu.weight", l);
        snprintf(names[l][1], sizeof names[l][1], "layers.%zu.bias", l);
        shapes[l][0][0] = L->out;
        shapes[l][0][1] = L->in;
        shapes[l][1][0] = L->out;
        st = kd_st_writer_add(&w, names[l][0], KD_DTYPE_F32, 2, shapes[l][0], L->w, err);
        if (!st)
            st = kd_st_writer_add(&w, names[l][1], KD_DTYPE_F32, 1, shapes[l][1], L->b, err);
    }
    char sizes[KD_MLP_MAX_LAYERS * 12 + 1] = "", num[24];
    for (size_t i = 0; i < m->cfg.n_sizes; i++) {
        snprintf(num, sizeof num, i ? ",%zu" : "%zu", m->cfg.sizes[i]);
        strcat(sizes, num);
    }
    char dropout[40];
    kd_format_double(dropout, sizeof dropout, (double)m->cfg.dropout);
    if (!st)
        st = kd_st_writer_meta(&w, "kd_format", "mlp", err);
    if (!st)
        st = kd_st_writer_meta(&w, "kd_version", KD_VERSION, err);
    if (!st)
        st = kd_st_writer_meta(&w, "sizes", sizes, err);
    if (!st)
        st = kd_st_writer_meta(&w, "activation", kd_act_name(m->cfg.act), err);
    if (!st)
        st = kd_st_writer_meta(&w, "dropout", dropout, err);
    if (!st)
        st = kd_input_scale_write_meta(&m->scale, &w, err);
    for (size_t i = 0; i < n_extra && !st; i++)
        st = kd_st_writer_meta(&w, extra[i].key, extra[i].value, err);
    if (!st)
        st = kd_st_writer_save(&w, path, err);
    kd_st_writer_release(&w);
    return st;
}

kd_status kd_mlp_load(const char *path, struct kd_mlp **out, struct kd_error *err)
{
    *out = NULL;
    struct kd_safetensors st_file;
    memset(&st_file, 0, sizeof st_file);
    struct kd_mlp *m = NULL;
    kd_status st = kd_safetensors_read(path, &st_file, err);
    if (st)
        return st;
    const char *fmt = kd_safetensors_meta(&st_file, "kd_format");
    const char *sizes = kd_safetensors_meta(&st_file, "sizes");
    const char *act = kd_safetensors_meta(&st_file, "activation");
    const char *dropout = kd_safetensors_meta(&st_file, "dropout");
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    if (fmt && strcmp(fmt, "mlp") != 0) {
        st = kd_error_set(err, KD_ERR_FORMAT, "'%s' holds a kd '%s' model, not an MLP", path, fmt);
        goto done;
    }
    if (!sizes) {
        st = kd_error_set(err, KD_ERR_FORMAT,
                          "'%s' has no 'sizes' in its metadata; kd needs it to rebuild the MLP", path);
        goto done;
    }
    if ((st = kd_mlp_config_parse_sizes(&cfg, sizes, err)) != KD_OK ||
        (act && (st = kd_act_parse(act, &cfg.act, err)) != KD_OK)) {
        kd_error_prefix(err, "'%s' metadata", path);
        goto done;
    }
    if (dropout)
        cfg.dropout = strtof(dropout, NULL);
    if (!(cfg.dropout >= 0.0f && cfg.dropout < 1.0f))
        cfg.dropout = 0.0f;
    if ((st = kd_mlp_check_tensors(&cfg, &st_file, "", err)) != KD_OK ||
        (st = kd_mlp_new(&cfg, 0, &m, err)) != KD_OK)
        goto done;
    for (size_t l = 0; l < m->n_layers; l++) {
        struct kd_dense *L = &m->layers[l];
        char name[48];
        uint64_t wshape[2] = {L->out, L->in}, bshape[1] = {L->out};
        snprintf(name, sizeof name, "layers.%zu.weight", l);
        if ((st = kd_safetensors_copy_f32(&st_file, name, L->w, L->out * L->in, 2, wshape, err)) != KD_OK)
            goto done;
        snprintf(name, sizeof name, "layers.%zu.bias", l);
        if ((st = kd_safetensors_copy_f32(&st_file, name, L->b, L->out, 1, bshape, err)) != KD_OK)
            goto done;
    }
    if ((st = kd_input_scale_read_meta(&m->scale, &st_file, kd_mlp_in(m), path, err)) != KD_OK)
        goto done;
    *out = m;
    m = NULL;
done:
    if (st && !strstr(err ? err->msg : "", path))
        kd_error_prefix(err, "%s", path);
    kd_mlp_free(m);
    kd_safetensors_release(&st_file);
    return st;
}

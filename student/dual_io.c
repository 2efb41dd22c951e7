/* Dual encoders as safetensors, with PyTorch-style names and shapes: a tower
 * is an nn.EmbeddingBag called `bag` and an nn.ModuleList of nn.Linear called
 * `layers`, under the prefix `query.` or `doc.`. */
#include "student/kd_student.h"
#include "student/student_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const prefixes[2] = {"query", "doc"};

kd_status kd_dual_save(const struct kd_dual *m, const char *path, const char *featurizer, struct kd_error *err)
{
    const struct kd_dual_config *c = &m->cfg;
    struct kd_st_writer w;
    kd_st_writer_init(&w);
    size_t n_towers = c->shared ? 1 : 2;
    char names[2][1 + 2 * KD_DUAL_MAX_LAYERS][48];
    uint64_t shapes[2][1 + 2 * KD_DUAL_MAX_LAYERS][2];
    kd_status st = KD_OK;
    for (size_t t = 0; t < n_towers && !st; t++) {
        const struct kd_tower *T = &m->tower[t];
        snprintf(names[t][0], sizeof names[t][0], "%s.bag.weight", prefixes[t]);
        shapes[t][0][0] = T->bag.buckets;
        shapes[t][0][1] = T->bag.E;
        st = kd_st_writer_add(&w, names[t][0], KD_DTYPE_F32, 2, shapes[t][0], T->bag.w, err);
        for (size_t l = 0; l < T->n_layers && !st; l++) {
            const struct kd_dense *L = &T->layers[l];
            char *wn = names[t][1 + 2 * l], *bn = names[t][2 + 2 * l];
            snprintf(wn, 48, "%s.layers.%zu.weight", prefixes[t], l);
            snprintf(bn, 48, "%s.layers.%zu.bias", prefixes[t], l);
            shapes[t][1 + 2 * l][0] = L->out;
            shapes[t][1 + 2 * l][1] = L->in;
            shapes[t][2 + 2 * l][0] = L->out;
            st = kd_st_writer_add(&w, wn, KD_DTYPE_F32, 2, shapes[t][1 + 2 * l], L->w, err);
            if (!st)
                st = kd_st_writer_add(&w, bn, KD_DTYPE_F32, 1, shapes[t][2 + 2 * l], L->b, err);
        }
    }
    uint64_t pw[2] = {m->proj_out, m->dim}, pb[1] = {m->proj_out};
    if (!st && m->proj_out) {
        st = kd_st_writer_add(&w, "proj.weight", KD_DTYPE_F32, 2, pw, m->proj, err);
        if (!st)
            st = kd_st_writer_add(&w, "proj.bias", KD_DTYPE_F32, 1, pb, m->proj + m->proj_out * m->dim, err);
    }
    char hidden[KD_DUAL_MAX_LAYERS * 12 + 1] = "", buckets[24], E[24], temp[40], proj[24];
    snprintf(proj, sizeof proj, "%zu", m->proj_out);
    kd_student_impl_meta_widths_format(c->hidden, c->n_layers, hidden, sizeof hidden);
    snprintf(buckets, sizeof buckets, "%u", (unsigned)c->buckets);
    snprintf(E, sizeof E, "%zu", c->E);
    kd_format_double(temp, sizeof temp, (double)c->temperature);
    const char *meta[][2] = {
        {"kd_format", "dual_encoder"},
        {"kd_version", KD_VERSION},
        {"buckets", buckets},
        {"embedding_dim", E},
        {"hidden", hidden},
        {"activation", kd_act_name(c->act)},
        {"normalize", c->normalize ? "1" : "0"},
        {"score", kd_dual_score_name(c->score)},
        {"temperature", temp},
        {"shared", c->shared ? "1" : "0"},
        {"featurizer", featurizer ? featurizer : ""},
        {"projection", proj},
    };
    for (size_t i = 0; i < sizeof meta / sizeof *meta && !st; i++)
        st = kd_st_writer_meta(&w, meta[i][0], meta[i][1], err);
    if (!st)
        st = kd_st_writer_save(&w, path, err);
    kd_st_writer_release(&w);
    return st;
}

/* The architecture from the metadata; errors name the key and the value. */
static kd_status read_config(const struct kd_safetensors *sf, const char *path, struct kd_dual_config *c,
                             struct kd_error *err)
{
    kd_dual_config_init(c);
    const char *fmt = kd_safetensors_meta(sf, "kd_format");
    if (!fmt || strcmp(fmt, "dual_encoder") != 0)
        return kd_error_set(err, KD_ERR_FORMAT, "'%s' is not a kd dual encoder (kd_format is '%s', expected 'dual_encoder')",
                            path, fmt ? fmt : "missing");
    const char *keys[] = {"buckets", "embedding_dim", "hidden", "activation", "normalize", "score", "temperature",
                          "shared"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!kd_safetensors_meta(sf, keys[i]))
            return kd_error_set(err, KD_ERR_FORMAT, "'%s' has no '%s' in its metadata; kd needs it to rebuild the model",
                                path, keys[i]);
    unsigned long long v;
    const char *s = kd_safetensors_meta(sf, "buckets");
    if (!kd_student_impl_meta_uint(s, 1, UINT32_MAX, &v))
        return kd_error_set(err, KD_ERR_FORMAT, "'%s': metadata buckets '%s' is not a count of 1 to %u", path, s,
                            (unsigned)UINT32_MAX);
    c->buckets = (uint32_t)v;
    s = kd_safetensors_meta(sf, "embedding_dim");
    if (!kd_student_impl_meta_uint(s, 1, 1u << 16, &v))
        return kd_error_set(err, KD_ERR_FORMAT, "'%s': metadata embedding_dim '%s' is not a width of 1 to %u", path, s,
                            1u << 16);
    c->E = (size_t)v;
    s = kd_safetensors_meta(sf, "hidden");
    kd_status hst = kd_student_impl_meta_widths(path, s, KD_DUAL_MAX_LAYERS, "256,128", c->hidden, &c->n_layers, err);
    if (hst)
        return hst;
    kd_status st;
    if ((st = kd_act_parse(kd_safetensors_meta(sf, "activation"), &c->act, err)) != KD_OK ||
        (st = kd_dual_score_parse(kd_safetensors_meta(sf, "score"), &c->score, err)) != KD_OK)
        return kd_error_prefix(err, "'%s' metadata", path);
    s = kd_safetensors_meta(sf, "normalize");
    if (!kd_student_impl_meta_flag(s, &c->normalize))
        return kd_error_set(err, KD_ERR_FORMAT, "'%s': metadata normalize '%s' must be 0 or 1", path, s);
    s = kd_safetensors_meta(sf, "shared");
    if (!kd_student_impl_meta_flag(s, &c->shared))
        return kd_error_set(err, KD_ERR_FORMAT, "'%s': metadata shared '%s' must be 0 or 1", path, s);
    s = kd_safetensors_meta(sf, "temperature");
    char *end;
    double t = strtod(s, &end);
    if (end == s || *end || !(t > 0.0) || !isfinite(t))
        return kd_error_set(err, KD_ERR_FORMAT, "'%s': metadata temperature '%s' is not a positive number", path, s);
    c->temperature = (float)t;
    if ((st = kd_dual_config_check(c, err)) != KD_OK)
        return kd_error_prefix(err, "'%s' metadata", path);
    return KD_OK;
}

kd_status kd_dual_load(const char *path, struct kd_dual **out, char **featurizer, struct kd_error *err)
{
    *out = NULL;
    if (featurizer)
        *featurizer = NULL;
    struct kd_safetensors sf;
    memset(&sf, 0, sizeof sf);
    struct kd_dual *m = NULL;
    kd_status st = kd_safetensors_read(path, &sf, err);
    if (st)
        return st;
    struct kd_dual_config c;
    if ((st = read_config(&sf, path, &c, err)) != KD_OK)
        goto done;
    if ((st = kd_dual_create(&c, 0, 0, &m, err)) != KD_OK) /* no random draws: the file overwrites them */
        goto done;
    size_t n_towers = c.shared ? 1 : 2, expected = 0;
    for (size_t t = 0; t < n_towers; t++) {
        struct kd_tower *T = &m->tower[t];
        char name[48];
        uint64_t shape[2] = {T->bag.buckets, T->bag.E};
        snprintf(name, sizeof name, "%s.bag.weight", prefixes[t]);
        if ((st = kd_safetensors_copy_f32(&sf, name, T->bag.w, (size_t)T->bag.buckets * T->bag.E, 2, shape, err)))
            goto tensor;
        expected++;
        for (size_t l = 0; l < T->n_layers; l++) {
            struct kd_dense *L = &T->layers[l];
            uint64_t ws[2] = {L->out, L->in}, bs[1] = {L->out};
            snprintf(name, sizeof name, "%s.layers.%zu.weight", prefixes[t], l);
            if ((st = kd_safetensors_copy_f32(&sf, name, L->w, L->out * L->in, 2, ws, err)))
                goto tensor;
            snprintf(name, sizeof name, "%s.layers.%zu.bias", prefixes[t], l);
            if ((st = kd_safetensors_copy_f32(&sf, name, L->b, L->out, 1, bs, err)))
                goto tensor;
            expected += 2;
        }
    }
    const char *ps = kd_safetensors_meta(&sf, "projection");
    unsigned long long pv = 0;
    if (ps && !kd_student_impl_meta_uint(ps, 0, 1u << 16, &pv)) {
        st = kd_error_set(err, KD_ERR_FORMAT, "'%s': metadata projection '%s' is not a width of 0 to %u", path, ps,
                          1u << 16);
        goto done;
    }
    if (pv) {
        if ((st = kd_dual_projection_init(m, (size_t)pv, 0, err)) != KD_OK)
            goto done;
        uint64_t ws[2] = {pv, m->dim}, bs[1] = {pv};
        if ((st = kd_safetensors_copy_f32(&sf, "proj.weight", m->proj, (size_t)pv * m->dim, 2, ws, err)) ||
            (st = kd_safetensors_copy_f32(&sf, "proj.bias", m->proj + (size_t)pv * m->dim, (size_t)pv, 1, bs, err)))
            goto tensor;
        expected += 2;
    }
    if (sf.n_tensors != expected) {
        /* name one tensor the settings do not explain */
        for (size_t i = 0; i < sf.n_tensors; i++) {
            const char *n = sf.tensors[i].name;
            int known = pv && (strcmp(n, "proj.weight") == 0 || strcmp(n, "proj.bias") == 0);
            for (size_t t = 0; t < n_towers && !known; t++) {
                char name[48];
                snprintf(name, sizeof name, "%s.bag.weight", prefixes[t]);
                known = strcmp(n, name) == 0;
                for (size_t l = 0; l < c.n_layers && !known; l++) {
                    snprintf(name, sizeof name, "%s.layers.%zu.weight", prefixes[t], l);
                    known = strcmp(n, name) == 0;
                    snprintf(name, sizeof name, "%s.layers.%zu.bias", prefixes[t], l);
                    known = known || strcmp(n, name) == 0;
                }
            }
            if (!known) {
                st = kd_error_set(err, KD_ERR_FORMAT,
                                  "'%s' holds tensor '%s' that its metadata (hidden '%s', shared %d) does not explain",
                                  path, n, kd_safetensors_meta(&sf, "hidden"), c.shared);
                goto done;
            }
        }
    }
    if (featurizer) {
        const char *fz = kd_safetensors_meta(&sf, "featurizer");
        *featurizer = strdup(fz ? fz : "");
        if (!*featurizer) {
            st = kd_error_set(err, KD_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    *out = m;
    m = NULL;
    goto done;
tensor:
    kd_error_prefix(err, "'%s'", path);
done:
    kd_dual_free(m);
    kd_safetensors_release(&sf);
    return st;
}

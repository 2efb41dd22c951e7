/* Cross-encoders as safetensors, with PyTorch-style names and shapes: the
 * tables are nn.EmbeddingBag weights (`query.bag`, `doc.bag`), the head an
 * nn.ModuleList of nn.Linear called `head.layers`, and `idf` the word weights
 * the lexical signals use. */
#include "student/student_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 48

kd_status kd_cross_save(const struct kd_cross *m, const char *path, const char *featurizer, struct kd_error *err)
{
    const struct kd_cross_config *c = &m->cfg;
    struct kd_st_writer w;
    kd_st_writer_init(&w);
    char names[2 * KD_CROSS_MAX_LAYERS][NAME_MAX_LEN];
    uint64_t shapes[2 + 2 * KD_CROSS_MAX_LAYERS][2];
    kd_status st = KD_OK;
    const char *bag_names[2] = {"query.bag.weight", "doc.bag.weight"};
    for (int t = 0; t < (c->shared ? 1 : 2) && !st; t++) {
        shapes[t][0] = c->buckets;
        shapes[t][1] = c->E;
        st = kd_st_writer_add(&w, bag_names[t], KD_DTYPE_F32, 2, shapes[t], m->bag[t].w, err);
    }
    const struct kd_mlp *h = m->head;
    for (size_t l = 0; l < h->n_layers && !st; l++) {
        const struct kd_dense *L = &h->layers[l];
        snprintf(names[2 * l], NAME_MAX_LEN, "head.layers.%zu.weight", l);
        snprintf(names[2 * l + 1], NAME_MAX_LEN, "head.layers.%zu.bias", l);
        shapes[2 + 2 * l][0] = L->out;
        shapes[2 + 2 * l][1] = L->in;
        shapes[3 + 2 * l][0] = L->out;
        st = kd_st_writer_add(&w, names[2 * l], KD_DTYPE_F32, 2, shapes[2 + 2 * l], L->w, err);
        if (!st)
            st = kd_st_writer_add(&w, names[2 * l + 1], KD_DTYPE_F32, 1, shapes[3 + 2 * l], L->b, err);
    }
    uint64_t idf_shape[1] = {c->buckets};
    if (!st)
        st = kd_st_writer_add(&w, "idf", KD_DTYPE_F32, 1, idf_shape, m->idf, err);
    char hidden[KD_CROSS_MAX_LAYERS * 12 + 1] = "", buckets[24], E[24], signals[24];
    kd_student_impl_meta_widths_format(c->hidden, c->n_layers, hidden, sizeof hidden);
    snprintf(buckets, sizeof buckets, "%u", (unsigned)c->buckets);
    snprintf(E, sizeof E, "%zu", c->E);
    snprintf(signals, sizeof signals, "%d", KD_CROSS_SIGNALS);
    const char *meta[][2] = {
        {"kd_format", "cross_encoder"},
        {"kd_version", KD_VERSION},
        {"buckets", buckets},
        {"embedding_dim", E},
        {"hidden", hidden},
        {"activation", kd_act_name(c->act)},
        {"shared", c->shared ? "1" : "0"},
        {"use_bm25", c->use_bm25 ? "1" : "0"},
        {"signals", signals},
        {"featurizer", featurizer ? featurizer : ""},
    };
    for (size_t i = 0; i < sizeof meta / sizeof *meta && !st; i++)
        st = kd_st_writer_meta(&w, meta[i][0], meta[i][1], err);
    if (!st)
        st = kd_st_writer_save(&w, path, err);
    kd_st_writer_release(&w);
    return st;
}

/* The architecture from the metadata; errors name the file, the key and the value. */
static kd_status read_config(const struct kd_safetensors *sf, const char *path, struct kd_cross_config *c,
                             struct kd_error *err)
{
    kd_cross_config_init(c);
    const char *fmt = kd_safetensors_meta(sf, "kd_format");
    if (!fmt || strcmp(fmt, "cross_encoder") != 0)
        return kd_error_set(err, KD_ERR_FORMAT,
                            "'%s' is not a kd cross-encoder (kd_format is '%s', expected 'cross_encoder')", path,
                            fmt ? fmt : "missing");
    const char *keys[] = {"buckets", "embedding_dim", "hidden", "activation", "shared", "use_bm25", "signals"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!kd_safetensors_meta(sf, keys[i]))
            return kd_error_set(err, KD_ERR_FORMAT,
                                "'%s' has no '%s' in its metadata; kd needs it to rebuild the model", path, keys[i]);
    unsigned long long v;
    const char *s = kd_safetensors_meta(sf, "signals");
    if (!kd_student_impl_meta_uint(s, 0, 1u << 16, &v) || v != KD_CROSS_SIGNALS)
        return kd_error_set(err, KD_ERR_FORMAT,
                            "'%s': metadata signals '%s' does not match this kd's %d lexical signals "
                            "(the file comes from another kd version)",
                            path, s, KD_CROSS_SIGNALS);
    s = kd_safetensors_meta(sf, "buckets");
    if (!kd_student_impl_meta_uint(s, 1, UINT32_MAX, &v))
        return kd_error_set(err, KD_ERR_FORMAT, "'%s': metadata buckets '%s' is not a count of 1 to %u", path, s,
                            (unsigned)UINT32_MAX);
    c->buckets = (uint32_t)v;
    s = kd_safetensors_meta(sf, "embedding_dim");
    if (!kd_student_impl_meta_uint(s, 1, 1u << 12, &v))
        return kd_error_set(err, KD_ERR_FORMAT, "'%s': metadata embedding_dim '%s' is not a width of 1 to %u", path,
                            s, 1u << 12);
    c->E = (size_t)v;
    s = kd_safetensors_meta(sf, "hidden");
    kd_status hst = kd_student_impl_meta_widths(path, s, KD_CROSS_MAX_LAYERS, "128,1", c->hidden, &c->n_layers, err);
    if (hst)
        return hst;
    kd_status st;
    if ((st = kd_act_parse(kd_safetensors_meta(sf, "activation"), &c->act, err)) != KD_OK)
        return kd_error_prefix(err, "'%s' metadata", path);
    s = kd_safetensors_meta(sf, "shared");
    if (!kd_student_impl_meta_flag(s, &c->shared))
        return kd_error_set(err, KD_ERR_FORMAT, "'%s': metadata shared '%s' must be 0 or 1", path, s);
    s = kd_safetensors_meta(sf, "use_bm25");
    if (!kd_student_impl_meta_flag(s, &c->use_bm25))
        return kd_error_set(err, KD_ERR_FORMAT, "'%s': metadata use_bm25 '%s' must be 0 or 1", path, s);
    if ((st = kd_cross_config_check(c, err)) != KD_OK)
        return kd_error_prefix(err, "'%s' metadata", path);
    return KD_OK;
}

/* 1 when name is a tensor the configuration explains. */
static int known_tensor(const struct kd_cross_config *c, const char *name)
{
    if (strcmp(name, "query.bag.weight") == 0 || strcmp(name, "idf") == 0)
        return 1;
    if (!c->shared && strcmp(name, "doc.bag.weight") == 0)
        return 1;
    for (size_t l = 0; l < c->n_layers; l++) {
        char w[NAME_MAX_LEN], b[NAME_MAX_LEN];
        snprintf(w, sizeof w, "head.layers.%zu.weight", l);
        snprintf(b, sizeof b, "head.layers.%zu.bias", l);
        if (strcmp(name, w) == 0 || strcmp(name, b) == 0)
            return 1;
    }
    return 0;
}

kd_status kd_cross_load(const char *path, struct kd_cross **out, char **featurizer, struct kd_error *err)
{
    *out = NULL;
    if (featurizer)
        *featurizer = NULL;
    struct kd_safetensors sf;
    memset(&sf, 0, sizeof sf);
    struct kd_cross *m = NULL;
    kd_status st = kd_safetensors_read(path, &sf, err);
    if (st)
        return st;
    struct kd_cross_config c;
    if ((st = read_config(&sf, path, &c, err)) != KD_OK)
        goto done;
    /* every tensor present must be one the settings explain, before any is copied */
    for (size_t i = 0; i < sf.n_tensors; i++)
        if (!known_tensor(&c, sf.tensors[i].name)) {
            st = kd_error_set(err, KD_ERR_FORMAT,
                              "'%s' holds tensor '%s' that its metadata (hidden '%s', shared %d) does not explain",
                              path, sf.tensors[i].name, kd_safetensors_meta(&sf, "hidden"), c.shared);
            goto done;
        }
    if ((st = kd_cross_new(&c, 0, &m, err)) != KD_OK)
        goto done;
    const char *bag_names[2] = {"query.bag.weight", "doc.bag.weight"};
    for (int t = 0; t < (c.shared ? 1 : 2); t++) {
        uint64_t shape[2] = {c.buckets, c.E};
        if ((st = kd_safetensors_copy_f32(&sf, bag_names[t], m->bag[t].w, (size_t)c.buckets * c.E, 2, shape, err)))
            goto tensor;
    }
    for (size_t l = 0; l < m->head->n_layers; l++) {
        struct kd_dense *L = &m->head->layers[l];
        uint64_t ws[2] = {L->out, L->in}, bs[1] = {L->out};
        char name[NAME_MAX_LEN];
        snprintf(name, sizeof name, "head.layers.%zu.weight", l);
        if ((st = kd_safetensors_copy_f32(&sf, name, L->w, L->out * L->in, 2, ws, err)))
            goto tensor;
        snprintf(name, sizeof name, "head.layers.%zu.bias", l);
        if ((st = kd_safetensors_copy_f32(&sf, name, L->b, L->out, 1, bs, err)))
            goto tensor;
    }
    uint64_t is[1] = {c.buckets};
    if ((st = kd_safetensors_copy_f32(&sf, "idf", m->idf, c.buckets, 1, is, err)))
        goto tensor;
    m->idf_max = 0.0f;
    for (uint32_t i = 0; i < c.buckets; i++) {
        if (!(m->idf[i] > 0.0f)) {
            st = kd_error_set(err, KD_ERR_FORMAT, "'%s': idf[%u] is %g; word weights must be positive", path,
                              (unsigned)i, (double)m->idf[i]);
            goto done;
        }
        if (m->idf[i] > m->idf_max)
            m->idf_max = m->idf[i];
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
    kd_cross_free(m);
    kd_safetensors_release(&sf);
    return st;
}

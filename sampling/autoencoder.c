/* The MLP autoencoder TGT explores with (docs/methods.md section 4): encoder
 * D -> hidden -> E and decoder E -> hidden -> D, ReLU inside, trained
 * jointly on mean squared reconstruction error with Adam. */
#include "sampling/kd_sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void kd_autoencoder_config_init(struct kd_autoencoder_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->hidden = 256;
    cfg->latent = 32;
    cfg->epochs = 10;
    cfg->batch = 256;
    cfg->lr = 1e-3f;
    cfg->seed = 1;
    cfg->stop = NULL;
}

void kd_autoencoder_free(struct kd_autoencoder *ae)
{
    if (!ae)
        return;
    kd_mlp_free(ae->enc);
    kd_mlp_free(ae->dec);
    free(ae->lo);
    free(ae->hi);
    free(ae->z_std);
    free(ae);
}

/* An empty autoencoder with both networks built from the size lists (weights
 * drawn from seed; load overwrites them) and lo/hi/z_std allocated. */
static kd_status ae_alloc(const struct kd_mlp_config *enc_cfg, const struct kd_mlp_config *dec_cfg, uint64_t seed,
                          struct kd_autoencoder **out, struct kd_error *err)
{
    *out = NULL;
    struct kd_autoencoder *ae = calloc(1, sizeof *ae);
    if (!ae)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory creating an autoencoder");
    ae->d = enc_cfg->sizes[0];
    ae->e = enc_cfg->sizes[enc_cfg->n_sizes - 1];
    kd_status st = kd_mlp_new(enc_cfg, seed, &ae->enc, err);
    /* A different stream for the decoder, so the two do not start as mirror images of one draw. */
    if (!st)
        st = kd_mlp_new(dec_cfg, kd_rng_derive(seed, KD_RNG_AUTOENCODER_DECODER, 0), &ae->dec, err);
    if (st) {
        kd_autoencoder_free(ae);
        return st;
    }
    ae->lo = malloc(ae->d * sizeof(float));
    ae->hi = malloc(ae->d * sizeof(float));
    ae->z_std = malloc(ae->e * sizeof(float));
    if (!ae->lo || !ae->hi || !ae->z_std) {
        kd_autoencoder_free(ae);
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory creating an autoencoder");
    }
    *out = ae;
    return KD_OK;
}

static void ae_configs(size_t D, size_t H, size_t E, struct kd_mlp_config *enc, struct kd_mlp_config *dec)
{
    kd_mlp_config_init(enc);
    kd_mlp_config_init(dec);
    size_t se[3] = {D, H, E}, sd[3] = {E, H, D};
    enc->n_sizes = dec->n_sizes = 3;
    memcpy(enc->sizes, se, sizeof se);
    memcpy(dec->sizes, sd, sizeof sd);
    enc->act = dec->act = KD_ACT_RELU;
}

/* z_std = the standard deviation of each latent over the rows of x, floored
 * at 1e-6 so that dividing by it (TGT's latent-std units) is always safe.
 * Two passes in double over the stored codes: no cancellation. */
static kd_status latent_spread(struct kd_autoencoder *ae, const struct kd_tensor *x, struct kd_error *err)
{
    size_t N = x->rows, E = ae->e;
    struct kd_tensor z = {0};
    double *mean = calloc(E, sizeof *mean), *var = calloc(E, sizeof *var);
    kd_status st = KD_OK;
    if (!mean || !var) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory measuring the latent spread");
        goto done;
    }
    if ((st = kd_tensor_init(&z, N, E, err)) != KD_OK || (st = kd_autoencoder_encode(ae, x, &z, err)) != KD_OK)
        goto done;
    for (size_t i = 0; i < N; i++)
        for (size_t e = 0; e < E; e++)
            mean[e] += z.data[i * E + e];
    for (size_t e = 0; e < E; e++)
        mean[e] /= (double)N;
    for (size_t i = 0; i < N; i++)
        for (size_t e = 0; e < E; e++) {
            double d = z.data[i * E + e] - mean[e];
            var[e] += d * d;
        }
    for (size_t e = 0; e < E; e++) {
        double sd = sqrt(var[e] / (double)N);
        ae->z_std[e] = sd > 1e-6 ? (float)sd : 1e-6f;
    }
done:
    kd_tensor_release(&z);
    free(mean);
    free(var);
    return st;
}

kd_status kd_autoencoder_train(const struct kd_tensor *x, const struct kd_autoencoder_config *cfg,
                               struct kd_autoencoder **out, double *mse, struct kd_error *err)
{
    *out = NULL;
    size_t N = x->rows, D = x->cols, H = cfg->hidden, E = cfg->latent, bs = cfg->batch;
    if (N == 0 || D == 0)
        return kd_error_set(err, KD_ERR_ARG, "no data to train the autoencoder on (%zu rows of %zu features)", N,
                            D);
    if (H == 0 || E == 0)
        return kd_error_set(err, KD_ERR_ARG, "autoencoder hidden and latent sizes must be at least 1, got %zu and %zu",
                            H, E);
    if (bs == 0)
        return kd_error_set(err, KD_ERR_ARG, "autoencoder batch size must be at least 1");
    if (!(cfg->lr > 0.0f) || !isfinite(cfg->lr))
        return kd_error_set(err, KD_ERR_ARG, "autoencoder learning rate must be a positive number, got %g",
                            (double)cfg->lr);
    if (bs > N)
        bs = N;
    struct kd_mlp_config ecfg, dcfg;
    ae_configs(D, H, E, &ecfg, &dcfg);
    struct kd_autoencoder *ae = NULL;
    struct kd_optim oe = {0}, od = {0};
    size_t *idx = NULL;
    float *xb = NULL, *g = NULL, *dz = NULL;
    double mean = NAN; /* no epoch run: no error to report */
    kd_status st = ae_alloc(&ecfg, &dcfg, cfg->seed, &ae, err);
    if (st)
        return st;

    /* The data range, which decoding clamps to; a NaN here would make every clamp NaN. */
    for (size_t j = 0; j < D; j++)
        ae->lo[j] = ae->hi[j] = x->data[j];
    for (size_t i = 0; i < N; i++) {
        const float *row = kd_tensor_row(x, i);
        for (size_t j = 0; j < D; j++) {
            if (!isfinite(row[j])) {
                st = kd_error_set(err, KD_ERR_ARG, "feature %zu of example %zu is %g; the autoencoder needs finite "
                                  "numbers", j, i, (double)row[j]);
                goto done;
            }
            if (row[j] < ae->lo[j])
                ae->lo[j] = row[j];
            if (row[j] > ae->hi[j])
                ae->hi[j] = row[j];
        }
    }

    struct kd_optim_config oc;
    kd_optim_config_init(&oc);
    oc.lr = cfg->lr;
    if ((st = kd_optim_init(&oe, &oc, ae->enc->n_params, err)) != KD_OK ||
        (st = kd_optim_init(&od, &oc, ae->dec->n_params, err)) != KD_OK ||
        (st = kd_mlp_reserve(ae->enc, bs, err)) != KD_OK || (st = kd_mlp_reserve(ae->dec, bs, err)) != KD_OK)
        goto done;
    idx = malloc(N * sizeof *idx);
    xb = kd_alloc(bs * D, sizeof(float));
    g = kd_alloc(bs * D, sizeof(float));
    dz = kd_alloc(bs * E, sizeof(float));
    if (!idx || !xb || !g || !dz) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for autoencoder training buffers");
        goto done;
    }
    struct kd_rng rng;
    kd_rng_seed(&rng, cfg->seed);
    struct kd_progress prog;
    for (size_t epoch = 0; epoch < cfg->epochs; epoch++) {
        char label[64];
        snprintf(label, sizeof label, "autoencoder %zu/%zu", epoch + 1, cfg->epochs);
        kd_progress_begin(&prog, label, N);
        for (size_t i = 0; i < N; i++)
            idx[i] = i;
        kd_rng_shuffle(&rng, idx, N);
        double sum = 0.0; /* squared error over the epoch */
        for (size_t off = 0; off < N; off += bs) {
            if (cfg->stop && *cfg->stop) {
                kd_progress_end(&prog);
                st = kd_error_set(err, KD_ERR_INTERRUPTED, "autoencoder training interrupted in epoch %zu",
                                  epoch + 1);
                goto done;
            }
            size_t B = N - off < bs ? N - off : bs;
            for (size_t i = 0; i < B; i++)
                memcpy(xb + i * D, kd_tensor_row(x, idx[off + i]), D * sizeof(float));
            /* The decoder borrows the encoder's output as its input: the
             * encoder is not run again before both backward passes. */
            const float *z = kd_mlp_forward(ae->enc, xb, B, 0, NULL);  /* (B, E) */
            const float *r = kd_mlp_forward(ae->dec, z, B, 0, NULL);   /* (B, D), unclamped */
            double batch_sq = 0.0;
            float scale = 2.0f / (float)(B * D); /* d mean((r - x)^2) / dr */
            for (size_t k = 0; k < B * D; k++) {
                float diff = r[k] - xb[k];
                batch_sq += (double)diff * (double)diff;
                g[k] = scale * diff;
            }
            sum += batch_sq;
            kd_mlp_backward_input(ae->dec, g, B, dz); /* dz (B, E) */
            kd_mlp_backward(ae->enc, dz, B);
            kd_optim_step(&od, ae->dec->params, ae->dec->grads, cfg->lr);
            kd_optim_step(&oe, ae->enc->params, ae->enc->grads, cfg->lr);
            char status[48];
            snprintf(status, sizeof status, "mse %.5f", batch_sq / (double)(B * D));
            kd_progress_update(&prog, off + B, status);
        }
        kd_progress_end(&prog);
        mean = sum / ((double)N * (double)D);
        kd_log(KD_LOG_DEBUG, "autoencoder epoch %zu: mse %.6f", epoch + 1, mean);
    }
    if ((st = latent_spread(ae, x, err)) != KD_OK)
        goto done;
    if (mse)
        *mse = mean;
    *out = ae;
    ae = NULL;
done:
    kd_autoencoder_free(ae);
    kd_optim_release(&oe);
    kd_optim_release(&od);
    free(idx);
    kd_free(xb);
    kd_free(g);
    kd_free(dz);
    return st;
}

/* "784,256,32" */
static void sizes_text(const struct kd_mlp_config *c, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < c->n_sizes && used < n; i++) {
        int w = snprintf(buf + used, n - used, i ? ",%zu" : "%zu", c->sizes[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

kd_status kd_autoencoder_save(const struct kd_autoencoder *ae, const char *path, struct kd_error *err)
{
    struct kd_st_writer w;
    kd_st_writer_init(&w);
    /* The writer borrows names and shapes until save: keep them all alive here. */
    char names[2][KD_MLP_MAX_LAYERS][2][48];
    uint64_t shapes[2][KD_MLP_MAX_LAYERS][2][2];
    const struct kd_mlp *nets[2] = {ae->enc, ae->dec};
    const char *prefix[2] = {"encoder", "decoder"};
    kd_status st = KD_OK;
    for (int k = 0; k < 2; k++)
        for (size_t l = 0; l < nets[k]->n_layers && !st; l++) {
            const struct kd_dense *L = &nets[k]->layers[l];
            snprintf(names[k][l][0], sizeof names[k][l][0], "%s.layers.%zu.weight", prefix[k], l);
            snprintf(names[k][l][1], sizeof names[k][l][1], "%s.layers.%zu.bias", prefix[k], l);
            shapes[k][l][0][0] = L->out;
            shapes[k][l][0][1] = L->in;
            shapes[k][l][1][0] = L->out;
            st = kd_st_writer_add(&w, names[k][l][0], KD_DTYPE_F32, 2, shapes[k][l][0], L->w, err);
            if (!st)
                st = kd_st_writer_add(&w, names[k][l][1], KD_DTYPE_F32, 1, shapes[k][l][1], L->b, err);
        }
    uint64_t dshape[1] = {ae->d}, eshape[1] = {ae->e};
    if (!st)
        st = kd_st_writer_add(&w, "lo", KD_DTYPE_F32, 1, dshape, ae->lo, err);
    if (!st)
        st = kd_st_writer_add(&w, "hi", KD_DTYPE_F32, 1, dshape, ae->hi, err);
    if (!st)
        st = kd_st_writer_add(&w, "z_std", KD_DTYPE_F32, 1, eshape, ae->z_std, err);
    char es[KD_MLP_MAX_LAYERS * 12 + 1], ds[KD_MLP_MAX_LAYERS * 12 + 1];
    sizes_text(&ae->enc->cfg, es, sizeof es);
    sizes_text(&ae->dec->cfg, ds, sizeof ds);
    if (!st)
        st = kd_st_writer_meta(&w, "kd_format", "autoencoder", err);
    if (!st)
        st = kd_st_writer_meta(&w, "kd_version", KD_VERSION, err);
    if (!st)
        st = kd_st_writer_meta(&w, "encoder_sizes", es, err);
    if (!st)
        st = kd_st_writer_meta(&w, "decoder_sizes", ds, err);
    if (!st)
        st = kd_st_writer_meta(&w, "activation", kd_act_name(ae->enc->cfg.act), err);
    if (!st)
        st = kd_st_writer_save(&w, path, err);
    kd_st_writer_release(&w);
    return st;
}

kd_status kd_autoencoder_load(const char *path, struct kd_autoencoder **out, struct kd_error *err)
{
    *out = NULL;
    struct kd_safetensors f;
    memset(&f, 0, sizeof f);
    struct kd_autoencoder *ae = NULL;
    kd_status st = kd_safetensors_read(path, &f, err);
    if (st)
        return st;
    const char *fmt = kd_safetensors_meta(&f, "kd_format");
    const char *es = kd_safetensors_meta(&f, "encoder_sizes"), *ds = kd_safetensors_meta(&f, "decoder_sizes");
    const char *act = kd_safetensors_meta(&f, "activation");
    struct kd_mlp_config ecfg, dcfg;
    kd_mlp_config_init(&ecfg);
    kd_mlp_config_init(&dcfg);
    if (!fmt || strcmp(fmt, "autoencoder") != 0) {
        if (fmt)
            st = kd_error_set(err, KD_ERR_FORMAT, "'%s' holds a kd '%s' model, not an autoencoder", path, fmt);
        else
            st = kd_error_set(err, KD_ERR_FORMAT, "'%s' is not a kd autoencoder (no kd_format in its metadata)",
                              path);
        goto done;
    }
    if (!es || !ds) {
        st = kd_error_set(err, KD_ERR_FORMAT,
                          "'%s' has no '%s' in its metadata; kd needs it to rebuild the autoencoder", path,
                          es ? "decoder_sizes" : "encoder_sizes");
        goto done;
    }
    if ((st = kd_mlp_config_parse_sizes(&ecfg, es, err)) != KD_OK ||
        (st = kd_mlp_config_parse_sizes(&dcfg, ds, err)) != KD_OK ||
        (act && ((st = kd_act_parse(act, &ecfg.act, err)) != KD_OK ||
                 (st = kd_act_parse(act, &dcfg.act, err)) != KD_OK))) {
        kd_error_prefix(err, "'%s' metadata", path);
        goto done;
    }
    if (ecfg.sizes[0] != dcfg.sizes[dcfg.n_sizes - 1] || ecfg.sizes[ecfg.n_sizes - 1] != dcfg.sizes[0]) {
        st = kd_error_set(err, KD_ERR_FORMAT,
                          "'%s': encoder sizes %s and decoder sizes %s do not fit together (the encoder's output "
                          "must be the decoder's input and the decoder's output the encoder's input)",
                          path, es, ds);
        goto done;
    }
    if ((st = kd_mlp_check_tensors(&ecfg, &f, "encoder.", err)) != KD_OK ||
        (st = kd_mlp_check_tensors(&dcfg, &f, "decoder.", err)) != KD_OK ||
        (st = ae_alloc(&ecfg, &dcfg, 0, &ae, err)) != KD_OK)
        goto done;
    struct kd_mlp *nets[2] = {ae->enc, ae->dec};
    const char *prefix[2] = {"encoder", "decoder"};
    for (int k = 0; k < 2; k++)
        for (size_t l = 0; l < nets[k]->n_layers; l++) {
            struct kd_dense *L = &nets[k]->layers[l];
            char name[48];
            uint64_t wshape[2] = {L->out, L->in}, bshape[1] = {L->out};
            snprintf(name, sizeof name, "%s.layers.%zu.weight", prefix[k], l);
            if ((st = kd_safetensors_copy_f32(&f, name, L->w, L->out * L->in, 2, wshape, err)) != KD_OK)
                goto done;
            snprintf(name, sizeof name, "%s.layers.%zu.bias", prefix[k], l);
            if ((st = kd_safetensors_copy_f32(&f, name, L->b, L->out, 1, bshape, err)) != KD_OK)
                goto done;
        }
    uint64_t dshape[1] = {ae->d}, eshape[1] = {ae->e};
    if ((st = kd_safetensors_copy_f32(&f, "lo", ae->lo, ae->d, 1, dshape, err)) != KD_OK ||
        (st = kd_safetensors_copy_f32(&f, "hi", ae->hi, ae->d, 1, dshape, err)) != KD_OK ||
        (st = kd_safetensors_copy_f32(&f, "z_std", ae->z_std, ae->e, 1, eshape, err)) != KD_OK)
        goto done;
    *out = ae;
    ae = NULL;
done:
    if (st && !strstr(err ? err->msg : "", path))
        kd_error_prefix(err, "%s", path);
    kd_autoencoder_free(ae);
    kd_safetensors_release(&f);
    return st;
}

kd_status kd_autoencoder_encode(struct kd_autoencoder *ae, const struct kd_tensor *x, struct kd_tensor *z,
                                struct kd_error *err)
{
    if (x->cols != ae->d)
        return kd_error_set(err, KD_ERR_SHAPE, "the autoencoder takes %zu features, the data has %zu", ae->d,
                            x->cols);
    if (z->rows != x->rows || z->cols != ae->e)
        return kd_error_set(err, KD_ERR_SHAPE, "encoding %zu rows needs a (%zu, %zu) tensor, got (%zu, %zu)",
                            x->rows, x->rows, ae->e, z->rows, z->cols);
    return kd_mlp_predict(ae->enc, x, z, err);
}

kd_status kd_autoencoder_decode(struct kd_autoencoder *ae, const struct kd_tensor *z, struct kd_tensor *x,
                                struct kd_error *err)
{
    if (z->cols != ae->e)
        return kd_error_set(err, KD_ERR_SHAPE, "the autoencoder's latent space has %zu dimensions, the codes have %zu",
                            ae->e, z->cols);
    if (x->rows != z->rows || x->cols != ae->d)
        return kd_error_set(err, KD_ERR_SHAPE, "decoding %zu rows needs a (%zu, %zu) tensor, got (%zu, %zu)",
                            z->rows, z->rows, ae->d, x->rows, x->cols);
    kd_status st = kd_mlp_predict(ae->dec, z, x, err);
    if (st)
        return st;
    for (size_t i = 0; i < x->rows; i++) {
        float *row = kd_tensor_row(x, i);
        for (size_t j = 0; j < ae->d; j++)
            row[j] = row[j] < ae->lo[j] ? ae->lo[j] : row[j] > ae->hi[j] ? ae->hi[j] : row[j];
    }
    return KD_OK;
}

/* sampling: the TGT autoencoder and exploration in its latent space, on
 * small synthetic data (20 features in (0, 1) driven by 3 hidden factors). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sampling/kd_sampling.h"

enum { TGT_N = 600, TGT_D = 20, TGT_C = 5 };

/* x_j = 0.5 + 0.45 tanh(sum_k A_jk s_k + b_j), s ~ N(0, I_3): a 3-dimensional
 * manifold a 4-dimensional latent space can hold. */
static void make_data(struct kd_tensor *x, size_t N, uint64_t seed)
{
    struct kd_error err = {0};
    cr_assert_eq(kd_tensor_init(x, N, TGT_D, &err), KD_OK);
    struct kd_rng r;
    kd_rng_seed(&r, 1234); /* the same manifold for every seed */
    double A[TGT_D][3], b[TGT_D];
    for (int j = 0; j < TGT_D; j++) {
        for (int k = 0; k < 3; k++)
            A[j][k] = 0.8 * kd_rng_normal(&r);
        b[j] = 0.3 * kd_rng_normal(&r);
    }
    kd_rng_seed(&r, seed);
    for (size_t i = 0; i < N; i++) {
        double s[3] = {kd_rng_normal(&r), kd_rng_normal(&r), kd_rng_normal(&r)};
        for (int j = 0; j < TGT_D; j++) {
            double a = A[j][0] * s[0] + A[j][1] * s[1] + A[j][2] * s[2] + b[j];
            x->data[i * TGT_D + j] = (float)(0.5 + 0.45 * tanh(a));
        }
    }
}

static void small_config(struct kd_autoencoder_config *cfg)
{
    kd_autoencoder_config_init(cfg);
    cfg->hidden = 32;
    cfg->latent = 4;
    cfg->epochs = 40;
    cfg->batch = 32;
    cfg->lr = 3e-3f;
    cfg->seed = 7;
}

static struct kd_autoencoder *train_small(const struct kd_tensor *x, double *mse)
{
    struct kd_autoencoder_config cfg;
    small_config(&cfg);
    struct kd_autoencoder *ae = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_autoencoder_train(x, &cfg, &ae, mse, &err), KD_OK, "%s", err.msg);
    cr_assert_not_null(ae);
    return ae;
}

static struct kd_mlp *net(size_t D, size_t C, enum kd_act act, uint64_t seed)
{
    struct kd_error err = {0};
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    size_t sizes[] = {D, 16, C};
    cr_assert_eq(kd_mlp_config_set_sizes(&cfg, sizes, 3, &err), KD_OK);
    cfg.act = act;
    struct kd_mlp *m = NULL;
    cr_assert_eq(kd_mlp_new(&cfg, seed, &m, &err), KD_OK, "%s", err.msg);
    /* larger weights than He init, so teacher and student disagree clearly */
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] *= 2.0f;
    return m;
}

/* Naive KL(softmax(v) || softmax(z)) of one row. */
static double naive_kl(const float *v, const float *z, size_t C)
{
    double sv = 0, sz = 0;
    for (size_t c = 0; c < C; c++) {
        sv += exp(v[c]);
        sz += exp(z[c]);
    }
    double k = 0;
    for (size_t c = 0; c < C; c++) {
        double p = exp(v[c]) / sv, q = exp(z[c]) / sz;
        k += p * log(p / q);
    }
    return k;
}

Test(sampling, tgt_names_and_defaults)
{
    cr_assert_str_eq(kd_tgt_mode_name(KD_TGT_RANDOM), "random");
    cr_assert_str_eq(kd_tgt_mode_name(KD_TGT_GRADIENT), "gradient");
    struct kd_tgt_config t;
    kd_tgt_config_init(&t);
    cr_assert(t.mode == KD_TGT_RANDOM && t.sigma == 0.5 && t.steps == 3 && t.step_size == 0.5);
    struct kd_autoencoder_config a;
    kd_autoencoder_config_init(&a);
    cr_assert(a.hidden == 256 && a.latent == 32 && a.epochs == 10 && a.batch == 256 && a.lr == 1e-3f && !a.stop);
}

Test(sampling, autoencoder_training_lowers_reconstruction_error_well_below_the_data_variance)
{
    struct kd_tensor x;
    make_data(&x, TGT_N, 1);
    double var = 0.0;
    for (size_t j = 0; j < TGT_D; j++) {
        double m = 0, s = 0;
        for (size_t i = 0; i < TGT_N; i++)
            m += x.data[i * TGT_D + j];
        m /= TGT_N;
        for (size_t i = 0; i < TGT_N; i++)
            s += (x.data[i * TGT_D + j] - m) * (x.data[i * TGT_D + j] - m);
        var += s / TGT_N;
    }
    var /= TGT_D; /* mean per-feature variance: the error of predicting the mean */
    double mse = -1;
    struct kd_autoencoder *ae = train_small(&x, &mse);
    cr_assert(mse >= 0 && mse < 0.1 * var, "training mse %g, data variance %g", mse, var);
    /* and the clamped reconstruction of the data, measured independently */
    struct kd_error err = {0};
    struct kd_tensor z, r;
    cr_assert_eq(kd_tensor_init(&z, TGT_N, 4, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&r, TGT_N, TGT_D, &err), KD_OK);
    cr_assert_eq(kd_autoencoder_encode(ae, &x, &z, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_autoencoder_decode(ae, &z, &r, &err), KD_OK, "%s", err.msg);
    double rec = 0;
    for (size_t k = 0; k < TGT_N * TGT_D; k++)
        rec += (r.data[k] - x.data[k]) * (double)(r.data[k] - x.data[k]);
    rec /= TGT_N * TGT_D;
    cr_assert(rec < 0.1 * var, "reconstruction mse %g, data variance %g", rec, var);
    /* z_std is the population standard deviation of each latent over the data */
    for (size_t e = 0; e < 4; e++) {
        double m = 0, s = 0;
        for (size_t i = 0; i < TGT_N; i++)
            m += z.data[i * 4 + e];
        m /= TGT_N;
        for (size_t i = 0; i < TGT_N; i++)
            s += (z.data[i * 4 + e] - m) * (z.data[i * 4 + e] - m);
        double sd = sqrt(s / TGT_N);
        cr_assert(fabs(ae->z_std[e] - sd) < 1e-4 * sd + 1e-6, "z_std[%zu] %g, naive %g", e, ae->z_std[e], sd);
    }
    kd_tensor_release(&z);
    kd_tensor_release(&r);
    kd_tensor_release(&x);
    kd_autoencoder_free(ae);
}

Test(sampling, decoded_inputs_stay_inside_the_per_feature_data_range)
{
    struct kd_tensor x;
    make_data(&x, TGT_N, 2);
    struct kd_autoencoder *ae = train_small(&x, NULL);
    for (size_t j = 0; j < TGT_D; j++) {
        float lo = x.data[j], hi = x.data[j];
        for (size_t i = 0; i < TGT_N; i++) {
            lo = fminf(lo, x.data[i * TGT_D + j]);
            hi = fmaxf(hi, x.data[i * TGT_D + j]);
        }
        cr_assert(ae->lo[j] == lo && ae->hi[j] == hi, "feature %zu range [%g, %g], want [%g, %g]", j, ae->lo[j],
                  ae->hi[j], lo, hi);
    }
    /* codes far outside anything seen in training */
    struct kd_error err = {0};
    struct kd_tensor z, r;
    cr_assert_eq(kd_tensor_init(&z, 50, 4, &err), KD_OK);
    cr_assert_eq(kd_tensor_init(&r, 50, TGT_D, &err), KD_OK);
    struct kd_rng rng;
    kd_rng_seed(&rng, 3);
    for (size_t k = 0; k < 200; k++)
        z.data[k] = (float)(20.0 * kd_rng_normal(&rng));
    cr_assert_eq(kd_autoencoder_decode(ae, &z, &r, &err), KD_OK, "%s", err.msg);
    int clamped = 0;
    for (size_t i = 0; i < 50; i++)
        for (size_t j = 0; j < TGT_D; j++) {
            float v = r.data[i * TGT_D + j];
            cr_assert(v >= ae->lo[j] && v <= ae->hi[j], "row %zu feature %zu: %g outside [%g, %g]", i, j, v,
                      ae->lo[j], ae->hi[j]);
            clamped += v == ae->lo[j] || v == ae->hi[j];
        }
    cr_assert(clamped > 0, "such codes should hit the clamp somewhere");
    kd_tensor_release(&z);
    kd_tensor_release(&r);
    kd_tensor_release(&x);
    kd_autoencoder_free(ae);
}

static void generate(struct kd_autoencoder *ae, const struct kd_tgt_config *cfg, struct kd_mlp *t,
                     struct kd_mlp *s, const struct kd_tensor *src, struct kd_tensor *out, double *div)
{
    struct kd_error err = {0};
    cr_assert_eq(kd_tgt_generate(ae, cfg, t, s, src, out, div, &err), KD_OK, "%s", err.msg);
}

Test(sampling, generated_inputs_stay_inside_the_data_range_in_both_modes)
{
    struct kd_tensor x, out;
    struct kd_error err = {0};
    make_data(&x, 300, 3);
    cr_assert_eq(kd_tensor_init(&out, 300, TGT_D, &err), KD_OK);
    struct kd_autoencoder *ae = train_small(&x, NULL);
    struct kd_mlp *t = net(TGT_D, TGT_C, KD_ACT_TANH, 11), *s = net(TGT_D, TGT_C, KD_ACT_RELU, 12);
    struct kd_tgt_config cfg;
    kd_tgt_config_init(&cfg);
    for (int mode = 0; mode < 2; mode++) {
        cfg.mode = mode ? KD_TGT_GRADIENT : KD_TGT_RANDOM;
        cfg.sigma = 3.0;      /* far moves */
        cfg.step_size = 2.0;
        cfg.steps = 3;
        generate(ae, &cfg, t, s, &x, &out, NULL);
        for (size_t i = 0; i < 300; i++)
            for (size_t j = 0; j < TGT_D; j++) {
                float v = out.data[i * TGT_D + j];
                cr_assert(v >= ae->lo[j] && v <= ae->hi[j], "%s: row %zu feature %zu: %g outside [%g, %g]",
                          kd_tgt_mode_name(cfg.mode), i, j, v, ae->lo[j], ae->hi[j]);
            }
    }
    kd_mlp_free(t);
    kd_mlp_free(s);
    kd_tensor_release(&out);
    kd_tensor_release(&x);
    kd_autoencoder_free(ae);
}

Test(sampling, autoencoder_round_trips_through_a_file_bit_for_bit)
{
    char dir[] = "/tmp/kd-test-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/ae.safetensors", dir);
    struct kd_tensor x;
    make_data(&x, 200, 4);
    struct kd_autoencoder_config cfg;
    small_config(&cfg);
    cfg.epochs = 3;
    struct kd_autoencoder *ae = NULL, *back = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_autoencoder_train(&x, &cfg, &ae, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_autoencoder_save(ae, path, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_autoencoder_load(path, &back, &err), KD_OK, "%s", err.msg);
    cr_assert(back->d == TGT_D && back->e == 4);
    cr_assert_eq(memcmp(ae->lo, back->lo, TGT_D * sizeof(float)), 0);
    cr_assert_eq(memcmp(ae->hi, back->hi, TGT_D * sizeof(float)), 0);
    cr_assert_eq(memcmp(ae->z_std, back->z_std, 4 * sizeof(float)), 0);
    struct kd_tensor z1, z2, r1, r2;
    kd_tensor_init(&z1, 200, 4, &err);
    kd_tensor_init(&z2, 200, 4, &err);
    kd_tensor_init(&r1, 200, TGT_D, &err);
    kd_tensor_init(&r2, 200, TGT_D, &err);
    cr_assert_eq(kd_autoencoder_encode(ae, &x, &z1, &err), KD_OK);
    cr_assert_eq(kd_autoencoder_encode(back, &x, &z2, &err), KD_OK);
    cr_assert_eq(memcmp(z1.data, z2.data, 200 * 4 * sizeof(float)), 0, "codes differ after save + load");
    cr_assert_eq(kd_autoencoder_decode(ae, &z1, &r1, &err), KD_OK);
    cr_assert_eq(kd_autoencoder_decode(back, &z1, &r2, &err), KD_OK);
    cr_assert_eq(memcmp(r1.data, r2.data, 200 * TGT_D * sizeof(float)), 0, "decodings differ after save + load");
    /* the file's layout: PyTorch (out, in) weights and the metadata */
    struct kd_safetensors st;
    cr_assert_eq(kd_safetensors_read(path, &st, &err), KD_OK, "%s", err.msg);
    const struct kd_st_tensor *w = kd_safetensors_find(&st, "decoder.layers.1.weight");
    cr_assert(w && w->ndim == 2 && w->shape[0] == TGT_D && w->shape[1] == 32);
    cr_assert_not_null(kd_safetensors_find(&st, "encoder.layers.0.bias"));
    cr_assert_str_eq(kd_safetensors_meta(&st, "kd_format"), "autoencoder");
    cr_assert_str_eq(kd_safetensors_meta(&st, "encoder_sizes"), "20,32,4");
    cr_assert_str_eq(kd_safetensors_meta(&st, "decoder_sizes"), "4,32,20");
    kd_safetensors_release(&st);
    kd_tensor_release(&z1);
    kd_tensor_release(&z2);
    kd_tensor_release(&r1);
    kd_tensor_release(&r2);
    kd_tensor_release(&x);
    kd_autoencoder_free(ae);
    kd_autoencoder_free(back);
    remove(path);
    rmdir(dir);
}

Test(sampling, autoencoder_load_refuses_non_finite_weights_naming_the_tensor)
{
    char dir[] = "/tmp/kd-test-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[64], want[256];
    snprintf(path, sizeof path, "%s/ae.safetensors", dir);
    struct kd_tensor x;
    make_data(&x, 200, 4);
    struct kd_autoencoder_config cfg;
    small_config(&cfg);
    cfg.epochs = 1;
    struct kd_autoencoder *ae = NULL, *back = NULL;
    struct kd_error err = {0};
    cr_assert_eq(kd_autoencoder_train(&x, &cfg, &ae, NULL, &err), KD_OK, "%s", err.msg);
    ae->dec->layers[0].b[3] = NAN;
    cr_assert_eq(kd_autoencoder_save(ae, path, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_autoencoder_load(path, &back, &err), KD_ERR_FORMAT);
    cr_assert_null(back);
    snprintf(want, sizeof want,
             "%s: tensor 'decoder.layers.0.bias' holds nan at index 3; weights must be finite numbers", path);
    cr_assert_str_eq(err.msg, want);
    kd_tensor_release(&x);
    kd_autoencoder_free(ae);
    remove(path);
    rmdir(dir);
}

Test(sampling, autoencoder_load_rejects_a_file_that_is_not_an_autoencoder_naming_it)
{
    char dir[] = "/tmp/kd-test-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[64], want[256];
    snprintf(path, sizeof path, "%s/mlp.safetensors", dir);
    struct kd_error err = {0};
    struct kd_mlp *m = net(TGT_D, TGT_C, KD_ACT_RELU, 1);
    cr_assert_eq(kd_mlp_save(m, path, NULL, 0, &err), KD_OK, "%s", err.msg);
    struct kd_autoencoder *ae = (struct kd_autoencoder *)&err; /* must be reset to NULL */
    cr_assert_eq(kd_autoencoder_load(path, &ae, &err), KD_ERR_FORMAT);
    cr_assert_null(ae);
    snprintf(want, sizeof want, "'%s' holds a kd 'mlp' model, not an autoencoder", path);
    cr_assert_str_eq(err.msg, want);
    /* no kd_format at all */
    struct kd_st_writer wr;
    kd_st_writer_init(&wr);
    float v[2] = {1, 2};
    uint64_t shape[1] = {2};
    kd_st_writer_add(&wr, "lo", KD_DTYPE_F32, 1, shape, v, NULL);
    cr_assert_eq(kd_st_writer_save(&wr, path, &err), KD_OK, "%s", err.msg);
    kd_st_writer_release(&wr);
    cr_assert_eq(kd_autoencoder_load(path, &ae, &err), KD_ERR_FORMAT);
    snprintf(want, sizeof want, "'%s' is not a kd autoencoder (no kd_format in its metadata)", path);
    cr_assert_str_eq(err.msg, want);
    kd_mlp_free(m);
    remove(path);
    rmdir(dir);
}

Test(sampling, divergence_matches_the_naive_kl_and_its_gradient_matches_finite_differences)
{
    enum { B = 3, D = 6, C = 4 };
    struct kd_mlp *t = net(D, C, KD_ACT_TANH, 21), *s = net(D, C, KD_ACT_GELU, 22);
    struct kd_rng r;
    kd_rng_seed(&r, 5);
    float x[B * D], dx[B * D];
    for (int i = 0; i < B * D; i++)
        x[i] = (float)kd_rng_normal(&r);
    double kl[B];
    struct kd_error err = {0};
    cr_assert_eq(kd_tgt_divergence(t, s, x, B, kl, dx, &err), KD_OK, "%s", err.msg);
    for (int i = 0; i < B; i++) {
        float v[C], z[C];
        memcpy(v, kd_mlp_forward(t, x + i * D, 1, 0, NULL), sizeof v);
        memcpy(z, kd_mlp_forward(s, x + i * D, 1, 0, NULL), sizeof z);
        double want = naive_kl(v, z, C);
        cr_assert(fabs(kl[i] - want) < 1e-6 + 1e-5 * want, "row %d: kl %g, naive %g", i, kl[i], want);
        cr_assert(want > 1e-3, "the networks should disagree (row %d kl %g)", i, want);
    }
    double h = 1e-3;
    for (int k = 0; k < B * D; k++) {
        float save = x[k];
        double up[B], down[B];
        x[k] = (float)(save + h);
        kd_tgt_divergence(t, s, x, B, up, NULL, &err);
        x[k] = (float)(save - h);
        kd_tgt_divergence(t, s, x, B, down, NULL, &err);
        x[k] = save;
        double fd = 0;
        for (int i = 0; i < B; i++)
            fd += (up[i] - down[i]) / (2 * h);
        cr_assert(fabs(fd - dx[k]) < 2e-3 + 1e-2 * fabs(fd), "x[%d]: analytic %g, finite difference %g", k, dx[k],
                  fd);
    }
    kd_mlp_free(t);
    kd_mlp_free(s);
}

Test(sampling, divergence_in_chunks_equals_row_by_row)
{
    enum { B = 300, D = 6, C = 4 }; /* more rows than one chunk */
    struct kd_mlp *t = net(D, C, KD_ACT_TANH, 31), *s = net(D, C, KD_ACT_RELU, 32);
    float *x = malloc(B * D * sizeof(float)), *dx = malloc(B * D * sizeof(float)), dx1[D];
    double *kl = malloc(B * sizeof(double)), kl1;
    struct kd_rng r;
    kd_rng_seed(&r, 6);
    for (int i = 0; i < B * D; i++)
        x[i] = (float)kd_rng_normal(&r);
    struct kd_error err = {0};
    cr_assert_eq(kd_tgt_divergence(t, s, x, B, kl, dx, &err), KD_OK, "%s", err.msg);
    int rows[] = {0, 255, 256, 299};
    for (int n = 0; n < 4; n++) {
        int i = rows[n];
        cr_assert_eq(kd_tgt_divergence(t, s, x + i * D, 1, &kl1, dx1, &err), KD_OK);
        cr_assert(fabs(kl1 - kl[i]) < 1e-5 * (1 + kl1), "row %d: %g vs %g", i, kl1, kl[i]);
        for (int j = 0; j < D; j++)
            cr_assert(fabsf(dx1[j] - dx[i * D + j]) < 1e-4f * (1 + fabsf(dx1[j])), "row %d feature %d", i, j);
    }
    free(x);
    free(dx);
    free(kl);
    kd_mlp_free(t);
    kd_mlp_free(s);
}

Test(sampling, one_small_gradient_step_raises_the_divergence)
{
    struct kd_tensor x, base, moved;
    struct kd_error err = {0};
    make_data(&x, 200, 5);
    kd_tensor_init(&base, 200, TGT_D, &err);
    kd_tensor_init(&moved, 200, TGT_D, &err);
    struct kd_autoencoder *ae = train_small(&x, NULL);
    struct kd_mlp *t = net(TGT_D, TGT_C, KD_ACT_TANH, 41), *s = net(TGT_D, TGT_C, KD_ACT_RELU, 42);
    double d0[200], d1[200];
    struct kd_tgt_config cfg;
    kd_tgt_config_init(&cfg);
    cfg.sigma = 0.0; /* the unperturbed reconstruction */
    generate(ae, &cfg, t, s, &x, &base, d0);
    cfg.mode = KD_TGT_GRADIENT;
    cfg.steps = 1;
    cfg.step_size = 0.05;
    generate(ae, &cfg, t, s, &x, &moved, d1);
    double m0 = 0, m1 = 0;
    int up = 0;
    for (int i = 0; i < 200; i++) {
        m0 += d0[i];
        m1 += d1[i];
        up += d1[i] > d0[i];
    }
    cr_assert(m1 > m0, "mean KL %g after the step, %g before", m1 / 200, m0 / 200);
    cr_assert(up >= 180, "KL rose on %d of 200 rows", up);
    /* more steps climb further */
    cfg.steps = 3;
    cfg.step_size = 0.5;
    generate(ae, &cfg, t, s, &x, &moved, d1);
    double m3 = 0;
    for (int i = 0; i < 200; i++)
        m3 += d1[i];
    cr_assert(m3 > m1, "mean KL %g after 3 steps of 0.5, %g after one of 0.05", m3 / 200, m1 / 200);
    kd_mlp_free(t);
    kd_mlp_free(s);
    kd_tensor_release(&x);
    kd_tensor_release(&base);
    kd_tensor_release(&moved);
    kd_autoencoder_free(ae);
}

Test(sampling, random_mode_with_zero_sigma_reproduces_the_reconstruction)
{
    struct kd_tensor x, z, r, out;
    struct kd_error err = {0};
    make_data(&x, 300, 6);
    kd_tensor_init(&z, 300, 4, &err);
    kd_tensor_init(&r, 300, TGT_D, &err);
    kd_tensor_init(&out, 300, TGT_D, &err);
    struct kd_autoencoder *ae = train_small(&x, NULL);
    cr_assert_eq(kd_autoencoder_encode(ae, &x, &z, &err), KD_OK);
    cr_assert_eq(kd_autoencoder_decode(ae, &z, &r, &err), KD_OK);
    struct kd_tgt_config cfg;
    kd_tgt_config_init(&cfg);
    cfg.sigma = 0.0;
    generate(ae, &cfg, NULL, NULL, &x, &out, NULL);
    /* The same rows through GEMMs of other batch sizes may round differently: compare closely, not bitwise. */
    for (size_t k = 0; k < 300 * TGT_D; k++)
        cr_assert(fabsf(out.data[k] - r.data[k]) < 1e-5f, "element %zu: %g vs %g", k, out.data[k], r.data[k]);
    /* sigma > 0 moves them, reproducibly for one seed */
    struct kd_tensor again;
    kd_tensor_init(&again, 300, TGT_D, &err);
    cfg.sigma = 1.0;
    generate(ae, &cfg, NULL, NULL, &x, &out, NULL);
    generate(ae, &cfg, NULL, NULL, &x, &again, NULL);
    cr_assert_eq(memcmp(out.data, again.data, 300 * TGT_D * sizeof(float)), 0);
    double moved = 0;
    for (size_t k = 0; k < 300 * TGT_D; k++)
        moved += fabs(out.data[k] - r.data[k]);
    cr_assert(moved / (300 * TGT_D) > 1e-2, "mean move %g", moved / (300 * TGT_D));
    kd_tensor_release(&again);
    kd_tensor_release(&x);
    kd_tensor_release(&z);
    kd_tensor_release(&r);
    kd_tensor_release(&out);
    kd_autoencoder_free(ae);
}

Test(sampling, divergence_is_nan_unless_both_networks_are_given)
{
    struct kd_tensor x, out;
    struct kd_error err = {0};
    make_data(&x, 20, 7);
    kd_tensor_init(&out, 20, TGT_D, &err);
    struct kd_autoencoder_config acfg;
    small_config(&acfg);
    acfg.epochs = 1;
    struct kd_autoencoder *ae = NULL;
    cr_assert_eq(kd_autoencoder_train(&x, &acfg, &ae, NULL, &err), KD_OK, "%s", err.msg);
    struct kd_mlp *s = net(TGT_D, TGT_C, KD_ACT_RELU, 51), *t = net(TGT_D, TGT_C, KD_ACT_TANH, 52);
    struct kd_tgt_config cfg;
    kd_tgt_config_init(&cfg);
    double div[20];
    generate(ae, &cfg, NULL, s, &x, &out, div);
    for (int i = 0; i < 20; i++)
        cr_assert(isnan(div[i]));
    generate(ae, &cfg, NULL, NULL, &x, &out, div);
    for (int i = 0; i < 20; i++)
        cr_assert(isnan(div[i]));
    generate(ae, &cfg, t, s, &x, &out, div);
    for (int i = 0; i < 20; i++) {
        float v[TGT_C], z[TGT_C];
        memcpy(v, kd_mlp_forward(t, kd_tensor_row(&out, i), 1, 0, NULL), sizeof v);
        memcpy(z, kd_mlp_forward(s, kd_tensor_row(&out, i), 1, 0, NULL), sizeof z);
        double want = naive_kl(v, z, TGT_C);
        cr_assert(fabs(div[i] - want) < 1e-6 + 1e-5 * want, "row %d: %g vs naive %g", i, div[i], want);
    }
    kd_mlp_free(s);
    kd_mlp_free(t);
    kd_tensor_release(&x);
    kd_tensor_release(&out);
    kd_autoencoder_free(ae);
}

Test(sampling, gradient_mode_without_networks_names_what_is_missing)
{
    struct kd_tensor x, out;
    struct kd_error err = {0};
    make_data(&x, 10, 8);
    kd_tensor_init(&out, 10, TGT_D, &err);
    struct kd_autoencoder_config acfg;
    small_config(&acfg);
    acfg.epochs = 1;
    struct kd_autoencoder *ae = NULL;
    cr_assert_eq(kd_autoencoder_train(&x, &acfg, &ae, NULL, &err), KD_OK, "%s", err.msg);
    struct kd_mlp *s = net(TGT_D, TGT_C, KD_ACT_RELU, 61);
    struct kd_tgt_config cfg;
    kd_tgt_config_init(&cfg);
    cfg.mode = KD_TGT_GRADIENT;
    cr_assert_eq(kd_tgt_generate(ae, &cfg, NULL, s, &x, &out, NULL, &err), KD_ERR_ARG);
    const char *want = "TGT gradient exploration needs a kd network teacher and student";
    char full[200];
    snprintf(full, sizeof full, "%s (the teacher is missing)", want);
    cr_assert_str_eq(err.msg, full);
    cr_assert_eq(kd_tgt_generate(ae, &cfg, s, NULL, &x, &out, NULL, &err), KD_ERR_ARG);
    snprintf(full, sizeof full, "%s (the student is missing)", want);
    cr_assert_str_eq(err.msg, full);
    cr_assert_eq(kd_tgt_generate(ae, &cfg, NULL, NULL, &x, &out, NULL, &err), KD_ERR_ARG);
    snprintf(full, sizeof full, "%s (both are missing)", want);
    cr_assert_str_eq(err.msg, full);
    double kl[10];
    cr_assert_eq(kd_tgt_divergence(NULL, s, x.data, 10, kl, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "the teacher-student divergence needs both networks (the teacher is missing)");
    kd_mlp_free(s);
    kd_tensor_release(&x);
    kd_tensor_release(&out);
    kd_autoencoder_free(ae);
}

Test(sampling, shape_mismatches_are_reported_with_both_sizes)
{
    struct kd_tensor x, out, narrow, z;
    struct kd_error err = {0};
    make_data(&x, 10, 9);
    kd_tensor_init(&out, 10, TGT_D, &err);
    kd_tensor_init(&narrow, 10, TGT_D - 1, &err);
    kd_tensor_init(&z, 10, 3, &err);
    struct kd_autoencoder_config acfg;
    small_config(&acfg);
    acfg.epochs = 1;
    struct kd_autoencoder *ae = NULL;
    cr_assert_eq(kd_autoencoder_train(&x, &acfg, &ae, NULL, &err), KD_OK, "%s", err.msg);
    struct kd_mlp *t = net(TGT_D, TGT_C, KD_ACT_TANH, 71), *s = net(TGT_D, TGT_C, KD_ACT_RELU, 72);
    struct kd_mlp *t19 = net(TGT_D - 1, TGT_C, KD_ACT_TANH, 73), *s4 = net(TGT_D, TGT_C - 1, KD_ACT_RELU, 74);
    struct kd_tgt_config cfg;
    kd_tgt_config_init(&cfg);
    cfg.mode = KD_TGT_GRADIENT;
    cr_assert_eq(kd_tgt_generate(ae, &cfg, t, s, &narrow, &out, NULL, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "the source examples have 19 features, the autoencoder takes 20");
    cr_assert_eq(kd_tgt_generate(ae, &cfg, t, s, &x, &narrow, NULL, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "generated inputs need a (10, 20) tensor, got (10, 19)");
    cr_assert_eq(kd_tgt_generate(ae, &cfg, t19, s, &x, &out, NULL, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "the teacher network takes 19 features, the autoencoder's inputs have 20");
    cr_assert_eq(kd_tgt_generate(ae, &cfg, t, t19, &x, &out, NULL, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "the student network takes 19 features, the autoencoder's inputs have 20");
    cr_assert_eq(kd_tgt_generate(ae, &cfg, t, s4, &x, &out, NULL, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "the teacher network has 5 classes, the student network 4");
    double kl[10];
    cr_assert_eq(kd_tgt_divergence(t, t19, x.data, 10, kl, NULL, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "the teacher network takes 20 features, the student network 19");
    cr_assert_eq(kd_autoencoder_encode(ae, &narrow, &z, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "the autoencoder takes 20 features, the data has 19");
    cr_assert_eq(kd_autoencoder_encode(ae, &x, &z, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "encoding 10 rows needs a (10, 4) tensor, got (10, 3)");
    cr_assert_eq(kd_autoencoder_decode(ae, &z, &out, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "the autoencoder's latent space has 4 dimensions, the codes have 3");
    kd_mlp_free(t);
    kd_mlp_free(s);
    kd_mlp_free(t19);
    kd_mlp_free(s4);
    kd_tensor_release(&x);
    kd_tensor_release(&out);
    kd_tensor_release(&narrow);
    kd_tensor_release(&z);
    kd_autoencoder_free(ae);
}

Test(sampling, autoencoder_training_rejects_bad_settings_and_stops_on_request)
{
    struct kd_tensor x, empty = {0};
    struct kd_error err = {0};
    make_data(&x, 50, 10);
    struct kd_autoencoder_config cfg;
    small_config(&cfg);
    struct kd_autoencoder *ae = NULL;
    cr_assert_eq(kd_autoencoder_train(&empty, &cfg, &ae, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "no data to train the autoencoder on (0 rows of 0 features)");
    cfg.latent = 0;
    cr_assert_eq(kd_autoencoder_train(&x, &cfg, &ae, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "autoencoder hidden and latent sizes must be at least 1, got 32 and 0");
    small_config(&cfg);
    cfg.batch = 0;
    cr_assert_eq(kd_autoencoder_train(&x, &cfg, &ae, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "autoencoder batch size must be at least 1");
    small_config(&cfg);
    x.data[3 * TGT_D + 2] = NAN;
    cr_assert_eq(kd_autoencoder_train(&x, &cfg, &ae, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "feature 2 of example 3 is nan; the autoencoder needs finite numbers");
    x.data[3 * TGT_D + 2] = 0.5f;
    volatile sig_atomic_t stop = 1;
    cfg.stop = &stop;
    cr_assert_eq(kd_autoencoder_train(&x, &cfg, &ae, NULL, &err), KD_ERR_INTERRUPTED);
    cr_assert_str_eq(err.msg, "autoencoder training interrupted in epoch 1");
    cr_assert_null(ae);
    kd_tensor_release(&x);
}

/* An autoencoder built by hand whose codes are the first E = 3 features:
 * Enc(x) = x[0:3], Dec(z) = (z, 0, 0, 0), through ReLU pairs
 * relu(t) - relu(-t) = t, exact in float. The latent moves then show in
 * the output as they are. */
static struct kd_autoencoder *identity_ae(void)
{
    struct kd_tensor x;
    struct kd_error err = {0};
    kd_tensor_init(&x, 4, 6, &err);
    struct kd_autoencoder_config cfg;
    kd_autoencoder_config_init(&cfg);
    cfg.hidden = 6;
    cfg.latent = 3;
    cfg.epochs = 0;
    struct kd_autoencoder *ae = NULL;
    cr_assert_eq(kd_autoencoder_train(&x, &cfg, &ae, NULL, &err), KD_OK, "%s", err.msg);
    kd_tensor_release(&x);
    struct kd_mlp *nets[2] = {ae->enc, ae->dec};
    for (int k = 0; k < 2; k++) {
        struct kd_mlp *m = nets[k];
        memset(m->params, 0, m->n_params * sizeof(float));
        struct kd_dense *L0 = &m->layers[0], *L1 = &m->layers[1];
        for (size_t j = 0; j < 3; j++) {
            L0->w[j * L0->in + j] = 1.0f;        /* hidden j     = relu(t_j) */
            L0->w[(3 + j) * L0->in + j] = -1.0f; /* hidden 3 + j = relu(-t_j) */
            L1->w[j * L1->in + j] = 1.0f;
            L1->w[j * L1->in + 3 + j] = -1.0f;
        }
    }
    const float sd[3] = {0.5f, 1.0f, 2.0f};
    memcpy(ae->z_std, sd, sizeof sd);
    for (size_t j = 0; j < 6; j++) {
        ae->lo[j] = -100.0f;
        ae->hi[j] = 100.0f;
    }
    return ae;
}

Test(sampling, a_gradient_step_moves_step_size_latent_stds_up_the_scaled_gradient)
{
    enum { N = 8, D = 6, E = 3, C = 4 };
    struct kd_autoencoder *ae = identity_ae();
    struct kd_mlp *t = net(D, C, KD_ACT_TANH, 81), *s = net(D, C, KD_ACT_GELU, 82);
    struct kd_tensor x, out;
    struct kd_error err = {0};
    kd_tensor_init(&x, N, D, &err);
    kd_tensor_init(&out, N, D, &err);
    struct kd_rng r;
    kd_rng_seed(&r, 9);
    for (size_t k = 0; k < N * D; k++)
        x.data[k] = (float)kd_rng_normal(&r);
    /* the gradient at Dec(Enc(x)) = (x[0:3], 0, 0, 0) */
    float x0[N * D], g[N * D];
    memset(x0, 0, sizeof x0);
    for (size_t i = 0; i < N; i++)
        memcpy(x0 + i * D, x.data + i * D, E * sizeof(float));
    double kl[N];
    cr_assert_eq(kd_tgt_divergence(t, s, x0, N, kl, g, &err), KD_OK, "%s", err.msg);
    struct kd_tgt_config cfg;
    kd_tgt_config_init(&cfg);
    cfg.mode = KD_TGT_GRADIENT;
    cfg.steps = 1;
    cfg.step_size = 0.3;
    generate(ae, &cfg, t, s, &x, &out, NULL);
    for (size_t i = 0; i < N; i++) {
        double n2 = 0, rms = 0;
        for (size_t e = 0; e < E; e++)
            n2 += pow(ae->z_std[e] * g[i * D + e], 2);
        for (size_t e = 0; e < E; e++) {
            double du = (out.data[i * D + e] - x0[i * D + e]) / ae->z_std[e]; /* move in latent-std units */
            double want = 0.3 * sqrt(3.0) * ae->z_std[e] * ae->z_std[e] * g[i * D + e] / sqrt(n2);
            cr_assert(fabs(out.data[i * D + e] - x0[i * D + e] - want) < 1e-4, "row %zu latent %zu: moved %g, want %g",
                      i, e, out.data[i * D + e] - x0[i * D + e], want);
            rms += du * du;
        }
        cr_assert(fabs(sqrt(rms / E) - 0.3) < 1e-4, "row %zu: rms move %g latent stds", i, sqrt(rms / E));
        for (size_t j = E; j < D; j++)
            cr_assert(out.data[i * D + j] == 0.0f);
    }
    kd_mlp_free(t);
    kd_mlp_free(s);
    kd_tensor_release(&x);
    kd_tensor_release(&out);
    kd_autoencoder_free(ae);
}

Test(sampling, random_exploration_adds_sigma_latent_stds_of_seeded_normal_noise)
{
    enum { N = 5, D = 6, E = 3 };
    struct kd_autoencoder *ae = identity_ae();
    struct kd_tensor x, out;
    struct kd_error err = {0};
    kd_tensor_init(&x, N, D, &err);
    kd_tensor_init(&out, N, D, &err);
    for (size_t k = 0; k < N * D; k++)
        x.data[k] = (float)k / 10.0f;
    struct kd_tgt_config cfg;
    kd_tgt_config_init(&cfg);
    cfg.sigma = 0.7;
    cfg.seed = 99;
    generate(ae, &cfg, NULL, NULL, &x, &out, NULL);
    struct kd_rng r;
    kd_rng_seed(&r, 99);
    for (size_t i = 0; i < N; i++)
        for (size_t e = 0; e < E; e++) {
            double want = x.data[i * D + e] + 0.7 * ae->z_std[e] * kd_rng_normal(&r);
            cr_assert(fabs(out.data[i * D + e] - want) < 1e-5, "row %zu latent %zu: %g, want %g", i, e,
                      out.data[i * D + e], want);
        }
    kd_tensor_release(&x);
    kd_tensor_release(&out);
    kd_autoencoder_free(ae);
}

Test(sampling, rows_with_zero_gradient_stay_put)
{
    /* The same network as teacher and student: KL is 0 everywhere, so is its gradient. */
    enum { N = 4, D = 6, C = 4 };
    struct kd_autoencoder *ae = identity_ae();
    struct kd_mlp *t = net(D, C, KD_ACT_TANH, 91);
    struct kd_tensor x, out;
    struct kd_error err = {0};
    kd_tensor_init(&x, N, D, &err);
    kd_tensor_init(&out, N, D, &err);
    for (size_t k = 0; k < N * D; k++)
        x.data[k] = 0.25f * (float)k - 2.0f;
    struct kd_tgt_config cfg;
    kd_tgt_config_init(&cfg);
    cfg.mode = KD_TGT_GRADIENT;
    double d[N];
    generate(ae, &cfg, t, t, &x, &out, d);
    for (size_t i = 0; i < N; i++) {
        cr_assert(d[i] == 0.0);
        for (size_t j = 0; j < D; j++)
            cr_assert(out.data[i * D + j] == (j < 3 ? x.data[i * D + j] : 0.0f), "row %zu feature %zu moved", i, j);
    }
    kd_mlp_free(t);
    kd_tensor_release(&x);
    kd_tensor_release(&out);
    kd_autoencoder_free(ae);
}

/* fuzz/corpus/model_meta/regress-ae-huge-sizes (its first byte chooses the
 * autoencoder): sizes 100000-100000-1 in the metadata of a file holding a
 * 2-3-1 encoder made kd allocate 40 GB before reading a weight. */
Test(sampling, autoencoder_sizes_the_file_does_not_hold_are_refused_before_allocating)
{
    const char *root = getenv("KD_ROOT");
    char src[4096], dir[] = "/tmp/kd-test-XXXXXX", path[64], want[256];
    snprintf(src, sizeof src, "%s/fuzz/corpus/model_meta/regress-ae-huge-sizes", root ? root : ".");
    char *bytes;
    size_t len;
    struct kd_error err = {0};
    cr_assert_eq(kd_read_file(src, &bytes, &len, &err), KD_OK, "%s", err.msg);
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ae.safetensors", dir);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(bytes + 1, 1, len - 1, f), len - 1);
    cr_assert_eq(fclose(f), 0);
    free(bytes);
    struct kd_autoencoder *ae = NULL;
    cr_assert_eq(kd_autoencoder_load(path, &ae, &err), KD_ERR_SHAPE, "%s", err.msg);
    snprintf(want, sizeof want, "%s: tensor 'encoder.layers.0.weight' has shape [3, 2], expected [100000, 100000]",
             path);
    cr_assert_str_eq(err.msg, want);
    cr_assert_null(ae);
    remove(path);
    rmdir(dir);
}

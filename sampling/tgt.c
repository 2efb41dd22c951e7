/* TGT, teacher-guided training: new inputs made by moving pool examples in an
 * autoencoder's latent space, where the student most disagrees with the
 * teacher. This is kd's definition following Zaheer et al. 2022 (arXiv
 * 2208.06825), as docs/methods.md section 4 fixes it:
 *
 *   z = Enc(x)
 *   random:    z' = z + sigma * z_std (.) eps,  eps ~ N(0, I)
 *   gradient:  `steps` ascent steps on D(z) = KL(softmax(h(x)) || softmax(f(x))), x = clamp(Dec(z), lo, hi)
 *   x' = clamp(Dec(z'), lo, hi)
 *
 * Both moves are measured in latent-std units, u_e = z_e / z_std_e, so one
 * sigma or step size means the same on every latent whatever its spread.
 * The gradient step is normalised steepest ascent in u:
 *
 *   g_u = z_std (.) dD/dz                        (the gradient in u coordinates)
 *   u  += step_size * sqrt(E) * g_u / ||g_u||_2
 *   i.e. z += step_size * sqrt(E) * z_std (.) z_std (.) dD/dz / ||z_std (.) dD/dz||_2
 *
 * so every step moves z by step_size latent standard deviations per
 * dimension in root-mean-square (step size 0.5: half a std), however large or
 * small the gradient; only its direction is used. Rows whose gradient is zero
 * (e.g. every decoded feature pinned by the clamp) stay put.
 *
 * The clamp is part of the map being climbed: the gradient is taken at the
 * clamped x, and the components where the raw decoder output lies outside
 * [lo, hi] are zeroed (the clamp's derivative there is 0).
 */
#include "sampling/kd_sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows per pass through the networks: bounds the workspaces whatever N is. */
#define TGT_CHUNK 256

const char *kd_tgt_mode_name(enum kd_tgt_mode mode)
{
    switch (mode) {
    case KD_TGT_RANDOM:
        return "random";
    case KD_TGT_GRADIENT:
        return "gradient";
    }
    return "?";
}

void kd_tgt_config_init(struct kd_tgt_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->mode = KD_TGT_RANDOM;
    cfg->sigma = 0.5;
    cfg->steps = 3;
    cfg->step_size = 0.5;
    cfg->seed = 1;
}

/* out (C) = log softmax(v), max-subtracted, in double. */
static void log_softmax(const float *v, size_t C, double *out)
{
    double mx = v[0];
    for (size_t c = 1; c < C; c++)
        if (v[c] > mx)
            mx = v[c];
    double s = 0.0;
    for (size_t c = 0; c < C; c++)
        s += exp((double)v[c] - mx);
    double lse = mx + log(s);
    for (size_t c = 0; c < C; c++)
        out[c] = (double)v[c] - lse;
}

static const char *missing_net(const struct kd_mlp *teacher, const struct kd_mlp *student)
{
    return !teacher && !student ? "both are missing" : !teacher ? "the teacher is missing" : "the student is missing";
}

kd_status kd_tgt_divergence(struct kd_mlp *teacher, struct kd_mlp *student, const float *x, size_t B, double *kl,
                            float *dx, struct kd_error *err)
{
    if (!teacher || !student)
        return kd_error_set(err, KD_ERR_ARG, "the teacher-student divergence needs both networks (%s)",
                            missing_net(teacher, student));
    size_t D = kd_mlp_in(teacher), C = kd_mlp_out(teacher);
    if (kd_mlp_in(student) != D)
        return kd_error_set(err, KD_ERR_SHAPE, "the teacher network takes %zu features, the student network %zu", D,
                            kd_mlp_in(student));
    if (kd_mlp_out(student) != C)
        return kd_error_set(err, KD_ERR_SHAPE, "the teacher network has %zu classes, the student network %zu", C,
                            kd_mlp_out(student));
    if (B == 0)
        return KD_OK;
    if (teacher == student) {
        /* KL(p || p) = 0 everywhere; one workspace cannot hold both forwards anyway. */
        if (kl)
            for (size_t i = 0; i < B; i++)
                kl[i] = 0.0;
        if (dx)
            memset(dx, 0, B * D * sizeof *dx);
        return KD_OK;
    }
    size_t chunk = B < TGT_CHUNK ? B : TGT_CHUNK;
    kd_status st = KD_OK;
    double *lp = malloc(2 * C * sizeof *lp), *lq = lp ? lp + C : NULL;
    float *gv = NULL, *gz = NULL, *dxt = NULL;
    if (dx) {
        gv = kd_alloc(chunk * C, sizeof(float));
        gz = kd_alloc(chunk * C, sizeof(float));
        dxt = kd_alloc(chunk * D, sizeof(float));
    }
    if (!lp || (dx && (!gv || !gz || !dxt))) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for the teacher-student divergence");
        goto done;
    }
    for (size_t off = 0; off < B; off += chunk) {
        size_t Bc = B - off < chunk ? B - off : chunk;
        const float *xc = x + off * D;
        /* Two different networks: each keeps its own forward for its own backward. */
        const float *v = kd_mlp_forward(teacher, xc, Bc, 0, NULL); /* (Bc, C) */
        const float *z = v ? kd_mlp_forward(student, xc, Bc, 0, NULL) : NULL; /* (Bc, C) */
        if (!z) {
            st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for network workspaces of %zu rows", Bc);
            goto done;
        }
        for (size_t i = 0; i < Bc; i++) {
            log_softmax(v + i * C, C, lp);
            log_softmax(z + i * C, C, lq);
            double k = 0.0;
            for (size_t c = 0; c < C; c++)
                k += exp(lp[c]) * (lp[c] - lq[c]);
            if (kl)
                kl[off + i] = k;
            if (!dx)
                continue;
            /* dKL/dv = p ((log p - log q) - KL), dKL/dz = q - p */
            for (size_t c = 0; c < C; c++) {
                double p = exp(lp[c]), q = exp(lq[c]);
                gv[i * C + c] = (float)(p * ((lp[c] - lq[c]) - k));
                gz[i * C + c] = (float)(q - p);
            }
        }
        if (dx) {
            float *dxc = dx + off * D;
            kd_mlp_backward_input(teacher, gv, Bc, dxt);
            kd_mlp_backward_input(student, gz, Bc, dxc);
            kd_saxpy(Bc * D, 1.0f, dxt, dxc);
        }
    }
done:
    free(lp);
    kd_free(gv);
    kd_free(gz);
    kd_free(dxt);
    return st;
}

static void clamp_rows(const float *raw, size_t B, size_t D, const float *lo, const float *hi, float *out)
{
    for (size_t i = 0; i < B; i++)
        for (size_t j = 0; j < D; j++) {
            float v = raw[i * D + j];
            out[i * D + j] = v < lo[j] ? lo[j] : v > hi[j] ? hi[j] : v;
        }
}

kd_status kd_tgt_generate(struct kd_autoencoder *ae, const struct kd_tgt_config *cfg, struct kd_mlp *teacher,
                          struct kd_mlp *student, const struct kd_tensor *src, struct kd_tensor *out,
                          double *divergence, struct kd_error *err)
{
    size_t N = src->rows, D = ae->d, E = ae->e;
    if (cfg->mode != KD_TGT_RANDOM && cfg->mode != KD_TGT_GRADIENT)
        return kd_error_set(err, KD_ERR_ARG, "unknown TGT mode %d (expected random or gradient)", (int)cfg->mode);
    if (src->cols != D)
        return kd_error_set(err, KD_ERR_SHAPE, "the source examples have %zu features, the autoencoder takes %zu",
                            src->cols, D);
    if (out->rows != N || out->cols != D)
        return kd_error_set(err, KD_ERR_SHAPE, "generated inputs need a (%zu, %zu) tensor, got (%zu, %zu)", N, D,
                            out->rows, out->cols);
    if (cfg->mode == KD_TGT_GRADIENT && (!teacher || !student))
        return kd_error_set(err, KD_ERR_ARG, "TGT gradient exploration needs a kd network teacher and student (%s)",
                            missing_net(teacher, student));
    if (cfg->mode == KD_TGT_RANDOM && !(cfg->sigma >= 0.0 && isfinite(cfg->sigma)))
        return kd_error_set(err, KD_ERR_ARG, "TGT sigma must be a non-negative number, got %g", cfg->sigma);
    if (cfg->mode == KD_TGT_GRADIENT && !(cfg->step_size >= 0.0 && isfinite(cfg->step_size)))
        return kd_error_set(err, KD_ERR_ARG, "TGT step size must be a non-negative number, got %g", cfg->step_size);
    if (teacher && kd_mlp_in(teacher) != D)
        return kd_error_set(err, KD_ERR_SHAPE,
                            "the teacher network takes %zu features, the autoencoder's inputs have %zu",
                            kd_mlp_in(teacher), D);
    if (student && kd_mlp_in(student) != D)
        return kd_error_set(err, KD_ERR_SHAPE,
                            "the student network takes %zu features, the autoencoder's inputs have %zu",
                            kd_mlp_in(student), D);
    if (teacher && student && kd_mlp_out(teacher) != kd_mlp_out(student))
        return kd_error_set(err, KD_ERR_SHAPE, "the teacher network has %zu classes, the student network %zu",
                            kd_mlp_out(teacher), kd_mlp_out(student));
    if (N == 0)
        return KD_OK;
    int both = teacher && student;
    size_t chunk = N < TGT_CHUNK ? N : TGT_CHUNK;
    kd_status st = KD_OK;
    float *zb = kd_alloc(chunk * E, sizeof(float)), *gz = kd_alloc(chunk * E, sizeof(float));
    float *xc = kd_alloc(chunk * D, sizeof(float)), *gx = kd_alloc(chunk * D, sizeof(float));
    if (!zb || !gz || !xc || !gx) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for TGT buffers");
        goto done;
    }
    /* One stream over the rows in order: the noise does not depend on the chunking. */
    struct kd_rng rng;
    kd_rng_seed(&rng, cfg->seed);
    const double root_e = sqrt((double)E);
    for (size_t off = 0; off < N; off += chunk) {
        size_t Bc = N - off < chunk ? N - off : chunk;
        const float *z = kd_mlp_forward(ae->enc, kd_tensor_row(src, off), Bc, 0, NULL); /* (Bc, E) */
        if (!z) {
            st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for the encoder's workspace of %zu rows", Bc);
            goto done;
        }
        memcpy(zb, z, Bc * E * sizeof *zb);
        if (cfg->mode == KD_TGT_RANDOM) {
            for (size_t i = 0; i < Bc; i++)
                for (size_t e = 0; e < E; e++)
                    zb[i * E + e] += (float)(cfg->sigma * ae->z_std[e] * kd_rng_normal(&rng));
        } else {
            for (size_t s = 0; s < cfg->steps; s++) {
                const float *raw = kd_mlp_forward(ae->dec, zb, Bc, 0, NULL); /* (Bc, D), unclamped */
                if (!raw) {
                    st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for the decoder's workspace of %zu rows", Bc);
                    goto done;
                }
                clamp_rows(raw, Bc, D, ae->lo, ae->hi, xc);
                /* Runs only the teacher and student: the decoder's forward (raw, and its input zb) stays valid. */
                if ((st = kd_tgt_divergence(teacher, student, xc, Bc, NULL, gx, err)) != KD_OK)
                    goto done;
                for (size_t i = 0; i < Bc; i++)
                    for (size_t j = 0; j < D; j++) {
                        float r = raw[i * D + j];
                        if (r < ae->lo[j] || r > ae->hi[j])
                            gx[i * D + j] = 0.0f;
                    }
                kd_mlp_backward_input(ae->dec, gx, Bc, gz); /* (Bc, E) */
                for (size_t i = 0; i < Bc; i++) {
                    float *zi = zb + i * E;
                    const float *gi = gz + i * E;
                    double n2 = 0.0;
                    for (size_t e = 0; e < E; e++) {
                        double gu = (double)ae->z_std[e] * gi[e];
                        n2 += gu * gu;
                    }
                    if (!(n2 > 0.0) || !isfinite(n2))
                        continue;
                    double scale = cfg->step_size * root_e / sqrt(n2);
                    for (size_t e = 0; e < E; e++) {
                        double sd = ae->z_std[e];
                        zi[e] += (float)(scale * sd * sd * gi[e]);
                    }
                }
            }
        }
        const float *raw = kd_mlp_forward(ae->dec, zb, Bc, 0, NULL);
        if (!raw) {
            st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for the decoder's workspace of %zu rows", Bc);
            goto done;
        }
        clamp_rows(raw, Bc, D, ae->lo, ae->hi, kd_tensor_row(out, off));
        if (divergence) {
            if (both) {
                if ((st = kd_tgt_divergence(teacher, student, kd_tensor_row(out, off), Bc, divergence + off, NULL,
                                            err)) != KD_OK)
                    goto done;
            } else {
                for (size_t i = 0; i < Bc; i++)
                    divergence[off + i] = NAN;
            }
        }
    }
done:
    kd_free(zb);
    kd_free(gz);
    kd_free(xc);
    kd_free(gx);
    return st;
}

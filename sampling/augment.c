/* Teacher-labelled augmentation: new inputs made from pool images by a
 * random shift and pixel noise. It is the plain way of giving a student more
 * than its pool, so TGT (tgt.c) is measured against it
 * (docs/experiments/tgt-pays.md). kd's definition:
 *
 *   dx, dy ~ uniform integers in [-shift, shift]
 *   x'[r][c] = x[r - dy][c - dx] where that pixel exists, fill otherwise
 *   x'      = clamp(x' + noise * eps, lo, hi),  eps ~ N(0, I)
 */
#include "sampling/kd_sampling.h"

#include <math.h>
#include <string.h>

void kd_augment_config_init(struct kd_augment_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->noise = 0.1;
    cfg->shift = 2;
    cfg->width = 0;
    cfg->fill = 0.0f;
    cfg->lo = 0.0f;
    cfg->hi = 1.0f;
    cfg->seed = 1;
}

/* The width of a D-feature image: cfg->width, or sqrt(D) when it is 0 and D
 * is a square; 0 when neither works. */
static size_t image_width(const struct kd_augment_config *cfg, size_t D)
{
    if (cfg->width)
        return D % cfg->width == 0 ? cfg->width : 0;
    size_t w = (size_t)llround(sqrt((double)D));
    return w * w == D ? w : 0;
}

kd_status kd_augment_generate(const struct kd_augment_config *cfg, const struct kd_tensor *src, struct kd_tensor *out,
                              struct kd_error *err)
{
    size_t N = src->rows, D = src->cols;
    if (!(cfg->noise >= 0.0) || !isfinite(cfg->noise))
        return kd_error_set(err, KD_ERR_ARG, "augmentation noise must be a non-negative number, got %g", cfg->noise);
    if (!(cfg->lo <= cfg->hi))
        return kd_error_set(err, KD_ERR_ARG, "augmentation range [%g, %g] is empty", (double)cfg->lo,
                            (double)cfg->hi);
    size_t W = image_width(cfg, D);
    if (!W) {
        if (cfg->width)
            return kd_error_set(err, KD_ERR_ARG,
                                "augmentation: inputs of %zu features are not images of width %zu (%zu is not a "
                                "multiple of it)",
                                D, cfg->width, D);
        return kd_error_set(err, KD_ERR_ARG,
                            "augmentation: inputs of %zu features are not square images; give the image width", D);
    }
    if (out->rows != N || out->cols != D)
        return kd_error_set(err, KD_ERR_SHAPE, "augmented inputs need a (%zu, %zu) tensor, got (%zu, %zu)", N, D,
                            out->rows, out->cols);
    size_t H = D / W;
    long s = (long)cfg->shift;
    struct kd_rng rng;
    kd_rng_seed(&rng, cfg->seed);
    for (size_t i = 0; i < N; i++) {
        const float *x = kd_tensor_row(src, i);
        float *y = kd_tensor_row(out, i);
        long dx = (long)kd_rng_below(&rng, (uint64_t)(2 * s + 1)) - s;
        long dy = (long)kd_rng_below(&rng, (uint64_t)(2 * s + 1)) - s;
        for (size_t r = 0; r < H; r++)
            for (size_t c = 0; c < W; c++) {
                long sr = (long)r - dy, sc = (long)c - dx;
                float v = sr >= 0 && sr < (long)H && sc >= 0 && sc < (long)W ? x[(size_t)sr * W + (size_t)sc]
                                                                             : cfg->fill;
                v += (float)(cfg->noise * kd_rng_normal(&rng));
                y[r * W + c] = v < cfg->lo ? cfg->lo : v > cfg->hi ? cfg->hi : v;
            }
    }
    return KD_OK;
}

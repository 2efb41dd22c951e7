/* xoshiro256** (Blackman and Vigna), seeded through splitmix64, so one seed
 * gives one stream on every machine. */
#include "core/kd_core.h"

#include <math.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* splitmix64's finaliser: a bijection of 64-bit words that mixes every
 * input bit into every output bit. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t kd_rng_derive(uint64_t seed, enum kd_rng_purpose purpose, uint64_t index)
{
    if (purpose == KD_RNG_TRAIN_ROUND)
        return seed + 7919 * index; /* frozen: the main job's numbers depend on it */
    /* purpose first, then index: for one seed, two purposes start from
     * different words (mix64 is a bijection) before the index moves them. */
    uint64_t h = mix64(seed + 0x9e3779b97f4a7c15ULL);
    h = mix64(h ^ ((uint64_t)purpose + 1) * 0xd1b54a32d192ed03ULL);
    return mix64(h + (index + 1) * 0x9e3779b97f4a7c15ULL);
}

void kd_rng_seed(struct kd_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    r->has_spare = 0;
    r->spare = 0.0;
}

uint64_t kd_rng_u64(struct kd_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void kd_rng_dropout_mask(struct kd_rng *r, double p, float keep, float *mask, size_t n)
{
    /* kd_rng_u64 on a local copy of the state: the loop keeps it in
     * registers (one call per value cost 4% of a training step of
     * 784-1024-1024-10 with dropout) */
    uint64_t s0 = r->s[0], s1 = r->s[1], s2 = r->s[2], s3 = r->s[3];
    /* kd_rng_uniform(r) < p is k 2^-53 < p for k the top 53 bits, that is
     * k < p 2^53 (scaling by a power of two is exact), that is k < ceil(p
     * 2^53) for the integer k: one integer compare a value */
    double scaled = ceil(p * 0x1.0p53);
    uint64_t below = scaled > 0.0 ? (scaled < 0x1.0p53 ? (uint64_t)scaled : (uint64_t)1 << 53) : 0;
    /* keep's bits or none (+0.0f) by an integer mask: a branch on a draw
     * is mispredicted at random, and this loop took twice as long with it */
    uint32_t keep_bits;
    memcpy(&keep_bits, &keep, sizeof keep_bits);
    for (size_t i = 0; i < n; i++) {
        uint64_t x = rotl(s1 * 5, 7) * 9;
        uint64_t t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = rotl(s3, 45);
        uint32_t bits = keep_bits & (0u - (uint32_t)((x >> 11) >= below));
        memcpy(&mask[i], &bits, sizeof bits);
    }
    r->s[0] = s0;
    r->s[1] = s1;
    r->s[2] = s2;
    r->s[3] = s3;
}

double kd_rng_uniform(struct kd_rng *r)
{
    /* The top 53 bits give every double in [0, 1) on a 2^-53 grid. */
    return (double)(kd_rng_u64(r) >> 11) * 0x1.0p-53;
}

uint64_t kd_rng_below(struct kd_rng *r, uint64_t n)
{
    /* Rejection on the low end removes modulo bias. */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = kd_rng_u64(r);
        if (x >= threshold)
            return x % n;
    }
}

double kd_rng_normal(struct kd_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1, u2;
    do
        u1 = kd_rng_uniform(r);
    while (u1 <= 0.0);
    u2 = kd_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    double th = 6.283185307179586476925 * u2;
    r->spare = rad * sin(th);
    r->has_spare = 1;
    return rad * cos(th);
}

void kd_rng_shuffle(struct kd_rng *r, size_t *idx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)kd_rng_below(r, i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

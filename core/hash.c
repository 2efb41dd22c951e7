/* Content hashing with XXH3-128 (libxxhash): fast, stable across machines. */
#include "core/kd_core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
/* For XXH3_state_t on the stack (kd_hash_pair hashes without allocating). */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

struct kd_hash kd_hash_bytes(const void *data, size_t len)
{
    XXH128_hash_t h = XXH3_128bits(data, len);
    struct kd_hash out = {h.high64, h.low64};
    return out;
}

void kd_hash_hex(struct kd_hash h, char out[KD_HASH_HEX_LEN + 1])
{
    snprintf(out, KD_HASH_HEX_LEN + 1, "%016llx%016llx", (unsigned long long)h.hi,
             (unsigned long long)h.lo);
}

void kd_hash_to_bytes(struct kd_hash h, unsigned char out[16])
{
    for (int i = 0; i < 8; i++) {
        out[i] = (unsigned char)(h.hi >> (56 - 8 * i));
        out[8 + i] = (unsigned char)(h.lo >> (56 - 8 * i));
    }
}

struct kd_hash kd_hash_from_bytes(const unsigned char in[16])
{
    struct kd_hash h = {0, 0};
    for (int i = 0; i < 8; i++) {
        h.hi = (h.hi << 8) | in[i];
        h.lo = (h.lo << 8) | in[8 + i];
    }
    return h;
}

int kd_hash_equal(struct kd_hash a, struct kd_hash b) { return a.hi == b.hi && a.lo == b.lo; }

kd_status kd_hasher_init(struct kd_hasher *h, struct kd_error *err)
{
    XXH3_state_t *s = XXH3_createState();
    if (!s)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory creating a hash state");
    XXH3_128bits_reset(s);
    h->state = s;
    return KD_OK;
}

void kd_hasher_update(struct kd_hasher *h, const void *data, size_t len)
{
    XXH3_128bits_update((XXH3_state_t *)h->state, data, len);
}

struct kd_hash kd_hasher_digest(const struct kd_hasher *h)
{
    XXH128_hash_t d = XXH3_128bits_digest((const XXH3_state_t *)h->state);
    struct kd_hash out = {d.high64, d.low64};
    return out;
}

void kd_hasher_release(struct kd_hasher *h)
{
    if (!h)
        return;
    XXH3_freeState((XXH3_state_t *)h->state);
    h->state = NULL;
}

kd_status kd_hash_file(const char *path, struct kd_hash *out, struct kd_error *err)
{
    struct kd_hasher h = {0};
    kd_status st = kd_hasher_init(&h, err);
    if (st)
        return st;
    FILE *f = fopen(path, "rb");
    if (!f) {
        st = kd_error_set(err, KD_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
        goto done;
    }
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        kd_hasher_update(&h, buf, n);
    if (ferror(f)) {
        st = kd_error_set(err, KD_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
        goto done;
    }
    *out = kd_hasher_digest(&h);
done:
    if (f)
        fclose(f);
    kd_hasher_release(&h);
    return st;
}

/* le64(len) then the bytes, into a running XXH3-128. */
static void update_prefixed(XXH3_state_t *s, const void *data, size_t len)
{
    unsigned char n[8];
    uint64_t v = (uint64_t)len;
    for (int i = 0; i < 8; i++)
        n[i] = (unsigned char)(v >> (8 * i));
    XXH3_128bits_update(s, n, sizeof n);
    if (len)
        XXH3_128bits_update(s, data, len);
}

struct kd_hash kd_hash_text(const void *text, size_t len)
{
    XXH3_state_t s;
    XXH3_INITSTATE(&s);
    XXH3_128bits_reset(&s);
    update_prefixed(&s, text, len);
    XXH128_hash_t h = XXH3_128bits_digest(&s);
    struct kd_hash out = {h.high64, h.low64};
    return out;
}

struct kd_hash kd_hash_pair(const void *query, size_t query_len, const void *doc, size_t doc_len)
{
    XXH3_state_t s;
    XXH3_INITSTATE(&s);
    XXH3_128bits_reset(&s);
    update_prefixed(&s, query, query_len);
    update_prefixed(&s, doc, doc_len);
    XXH128_hash_t h = XXH3_128bits_digest(&s);
    struct kd_hash out = {h.high64, h.low64};
    return out;
}

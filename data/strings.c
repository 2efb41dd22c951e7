/* String storage for the text loaders: an arena of big blocks, a hash index
 * from ids to positions, and a UTF-8 check that says where the bad byte is. */
#include "data/data_impl.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* Big enough that malloc is called once per many thousand strings. */
#define KD_ARENA_BLOCK ((size_t)1 << 22)

struct kd_arena_block {
    struct kd_arena_block *next;
    size_t used, cap;
    char data[];
};

char *kd_arena_strndup(struct kd_arena *a, const char *s, size_t len)
{
    struct kd_arena_block *b = a->head;
    if (!b || b->cap - b->used < len + 1) {
        size_t cap = len + 1 > KD_ARENA_BLOCK ? len + 1 : KD_ARENA_BLOCK;
        struct kd_arena_block *nb = malloc(sizeof *nb + cap);
        if (!nb)
            return NULL;
        nb->used = 0;
        nb->cap = cap;
        /* A string larger than a block gets a block of its own, kept behind
         * the current one so that the current one's free space still serves. */
        if (b && cap > KD_ARENA_BLOCK) {
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->head = nb;
        }
        b = nb;
    }
    char *p = b->data + b->used;
    memcpy(p, s, len);
    p[len] = '\0';
    b->used += len + 1;
    return p;
}

void kd_arena_release(struct kd_arena *a)
{
    if (!a)
        return;
    struct kd_arena_block *b = a->head;
    while (b) {
        struct kd_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

static uint64_t str_hash(const char *s, size_t len) { return XXH3_64bits(s, len); }

kd_status kd_str_index_init(struct kd_str_index *ix, size_t expected, struct kd_error *err)
{
    size_t cap = 16;
    while (cap < expected * 2) /* load factor at most 1/2 */
        cap *= 2;
    ix->slots = calloc(cap, sizeof *ix->slots);
    ix->mask = cap - 1;
    ix->n = 0;
    if (!ix->slots)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for an index of %zu ids", expected);
    return KD_OK;
}

size_t kd_str_index_find(const struct kd_str_index *ix, char *const *keys, const char *s, size_t len)
{
    uint64_t h = str_hash(s, len);
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t at = (size_t)h & ix->mask;; at = (at + 1) & ix->mask) {
        uint64_t v = ix->slots[at];
        if (!v)
            return KD_STR_INDEX_NONE;
        if ((uint32_t)(v >> 32) != tag)
            continue;
        size_t i = (size_t)(uint32_t)v - 1;
        if (strncmp(keys[i], s, len) == 0 && keys[i][len] == '\0')
            return i;
    }
}

static void place(uint64_t *slots, size_t mask, uint64_t h, uint64_t v)
{
    size_t at = (size_t)h & mask;
    while (slots[at])
        at = (at + 1) & mask;
    slots[at] = v;
}

kd_status kd_str_index_add(struct kd_str_index *ix, char *const *keys, size_t i, size_t *dup,
                           struct kd_error *err)
{
    *dup = KD_STR_INDEX_NONE;
    if (i >= UINT32_MAX - 1)
        return kd_error_set(err, KD_ERR_UNSUPPORTED, "more than %u ids", UINT32_MAX - 2);
    size_t len = strlen(keys[i]);
    size_t found = kd_str_index_find(ix, keys, keys[i], len);
    if (found != KD_STR_INDEX_NONE) {
        *dup = found;
        return KD_OK;
    }
    if ((ix->n + 1) * 2 > ix->mask + 1) {
        /* Double: every entry is hashed again from its key, which costs O(n)
         * per doubling and so O(1) amortised per entry. */
        size_t cap = (ix->mask + 1) * 2;
        uint64_t *ns = calloc(cap, sizeof *ns);
        if (!ns)
            return kd_error_set(err, KD_ERR_NOMEM, "out of memory growing an index of %zu ids",
                                ix->n);
        for (size_t k = 0; k <= ix->mask; k++) {
            uint64_t v = ix->slots[k];
            if (!v)
                continue;
            const char *key = keys[(uint32_t)v - 1];
            place(ns, cap - 1, str_hash(key, strlen(key)), v);
        }
        free(ix->slots);
        ix->slots = ns;
        ix->mask = cap - 1;
    }
    uint64_t h = str_hash(keys[i], len);
    place(ix->slots, ix->mask, h, (h >> 32) << 32 | (uint64_t)(i + 1));
    ix->n++;
    return KD_OK;
}

void kd_str_index_release(struct kd_str_index *ix)
{
    if (!ix)
        return;
    free(ix->slots);
    memset(ix, 0, sizeof *ix);
}

size_t kd_utf8_valid_prefix(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF)
            n = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            if (c == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else
            return i;
        if (i + n > len || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k < n; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
        i += n;
    }
    return len;
}

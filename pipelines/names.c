/* Name sets: open addressing with linear probing over FNV-1a hashes. */
#include "pipelines/pipeline_impl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_name(const char *s)
{
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

void kd_names_release(struct kd_names *s)
{
    if (!s)
        return;
    free(s->keys);
    free(s->vals);
    memset(s, 0, sizeof *s);
}

/* The slot of key, or the empty slot where it would go. */
static size_t slot_of(const struct kd_names *s, const char *key)
{
    size_t mask = s->cap - 1, i = (size_t)hash_name(key) & mask;
    while (s->keys[i] && strcmp(s->keys[i], key) != 0)
        i = (i + 1) & mask;
    return i;
}

/* Doubles the table (or makes the first one); -1 when out of memory. */
static int grow(struct kd_names *s)
{
    size_t cap = s->cap ? s->cap * 2 : 16;
    struct kd_names t = {calloc(cap, sizeof *t.keys), malloc(cap * sizeof *t.vals), 0, cap};
    if (!t.keys || !t.vals) {
        kd_names_release(&t);
        return -1;
    }
    for (size_t i = 0; i < s->cap; i++)
        if (s->keys[i]) {
            size_t j = slot_of(&t, s->keys[i]);
            t.keys[j] = s->keys[i];
            t.vals[j] = s->vals[i];
            t.n++;
        }
    kd_names_release(s);
    *s = t;
    return 0;
}

int kd_names_add(struct kd_names *s, const char *key, size_t val)
{
    /* At most half full: probes stay short. */
    if (2 * (s->n + 1) > s->cap && grow(s))
        return -1;
    size_t i = slot_of(s, key);
    if (s->keys[i])
        return 0;
    s->keys[i] = key;
    s->vals[i] = val;
    s->n++;
    return 1;
}

int kd_names_find(const struct kd_names *s, const char *key, size_t *val)
{
    if (!s || !s->cap)
        return 0;
    size_t i = slot_of(s, key);
    if (!s->keys[i])
        return 0;
    if (val)
        *val = s->vals[i];
    return 1;
}

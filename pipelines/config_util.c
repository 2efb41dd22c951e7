/* What the section files of the pipeline language share: copies and paths
 * owned by the pipeline, positions for messages, lists, and references from
 * one section to another (a stage naming a model, a split naming a dataset),
 * checked with a did-you-mean. The section files (config_*.c) and config.c
 * call down into this file; it calls none of them. */
#include "pipelines/pipeline_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *kd_cfg_strdup(struct kd_cfg *v, const char *s)
{
    char *d = strdup(s);
    if (!d)
        v->c->nomem = 1;
    return d;
}

char *kd_cfg_join_path(struct kd_cfg *v, const char *base, const char *path)
{
    if (path[0] == '/' || !base || !base[0] || strcmp(base, ".") == 0)
        return kd_cfg_strdup(v, path);
    size_t nb = strlen(base), np = strlen(path);
    int slash = base[nb - 1] != '/';
    char *out = malloc(nb + (size_t)slash + np + 1);
    if (!out) {
        v->c->nomem = 1;
        return NULL;
    }
    memcpy(out, base, nb);
    if (slash)
        out[nb] = '/';
    memcpy(out + nb + (size_t)slash, path, np + 1);
    return out;
}

struct kd_pos kd_pos_of(const struct kd_ynode *n)
{
    struct kd_pos pos = {0, 0};
    if (n) {
        pos.line = n->line;
        pos.col = n->col;
    }
    return pos;
}

const char *kd_at_line(struct kd_pos pos, char *buf, size_t size)
{
    if (pos.line > 0)
        snprintf(buf, size, "at line %d", pos.line);
    else
        snprintf(buf, size, "set by --set");
    return buf;
}

void kd_copy_name(char dst[KD_PIPE_NAME_MAX], const char *src)
{
    snprintf(dst, KD_PIPE_NAME_MAX, "%s", src);
}

const struct kd_ynode *kd_as_list(struct kd_pctx *c, const struct kd_ynode *node, const char *what)
{
    if (node->kind == KD_Y_SEQ || kd_ytree_is_null(node))
        return node;
    if (node->kind != KD_Y_BAD) {
        char got[96];
        kd_describe(node, got, sizeof got);
        kd_at(c, node, "%s must be a list, got %s", what, got);
    }
    return NULL;
}

size_t kd_list_len(const struct kd_ynode *list)
{
    return list->kind == KD_Y_SEQ ? list->n : 0;
}

/* ------------------------------------------------------------- references */

static const char *ref_word(enum kd_ref_kind kind)
{
    return kind == KD_REF_DATASET ? "dataset" : kind == KD_REF_MODEL ? "model" : "teacher";
}

/* Whether name is a thing of the kind; datasets include the parts of the
 * first n_splits splits. Hashed: constant time. */
static int ref_exists(const struct kd_cfg *v, enum kd_ref_kind kind, size_t n_splits, const char *name)
{
    size_t split;
    if (kind == KD_REF_MODEL)
        return kd_names_find(&v->models, name, NULL);
    if (kind == KD_REF_TEACHER)
        return kd_names_find(&v->teachers, name, NULL);
    return kd_names_find(&v->datasets, name, NULL) || (kd_names_find(&v->parts, name, &split) && split < n_splits);
}

/* The names a reference of this kind may use, for a message: each once, in
 * the order of the file. Returns the count; *out is malloc'ed. */
static size_t ref_names(struct kd_cfg *v, enum kd_ref_kind kind, size_t n_splits, const char ***out)
{
    const struct kd_pipeline *p = v->p;
    size_t n = 0, cap = kind == KD_REF_MODEL ? p->n_models : kind == KD_REF_TEACHER ? p->n_teachers : p->n_datasets;
    if (kind == KD_REF_DATASET)
        for (size_t i = 0; i < n_splits; i++)
            cap += p->splits[i].n_parts;
    const char **names = malloc((cap ? cap : 1) * sizeof *names);
    *out = names;
    if (!names) {
        v->c->nomem = 1;
        return 0;
    }
    if (kind == KD_REF_MODEL) {
        for (size_t i = 0; i < p->n_models; i++)
            names[n++] = p->models[i].name;
    } else if (kind == KD_REF_TEACHER) {
        for (size_t i = 0; i < p->n_teachers; i++)
            names[n++] = p->teachers[i].name;
    } else {
        for (size_t i = 0; i < p->n_datasets; i++)
            names[n++] = p->datasets[i].name;
        for (size_t i = 0; i < n_splits; i++)
            for (size_t k = 0; k < p->splits[i].n_parts; k++)
                names[n++] = p->splits[i].part_names[k];
    }
    /* A part that clashes with a dataset (reported) would be listed twice. */
    struct kd_names seen = {0};
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int added = kd_names_add(&seen, names[i], i);
        if (added < 0) {
            v->c->nomem = 1;
            break;
        }
        if (added)
            names[m++] = names[i];
    }
    kd_names_release(&seen);
    return m;
}

int kd_cfg_check_ref(struct kd_cfg *v, const struct kd_ynode *node, enum kd_ref_kind kind, size_t n_splits)
{
    if (ref_exists(v, kind, n_splits, node->text))
        return 0;
    const char **names;
    size_t n = ref_names(v, kind, n_splits, &names);
    if (names) {
        const char *word = ref_word(kind);
        char q[64];
        kd_quote(node->text, node->len, q, sizeof q);
        const char *s = kd_suggest(node->text, names, n);
        if (s) {
            kd_at(v->c, node, "unknown %s %s, did you mean '%s'?", word, q, s);
        } else if (n == 0) {
            kd_at(v->c, node, "unknown %s %s: the pipeline defines no %ss", word, q, word);
        } else {
            char list[300];
            kd_join(list, sizeof list, names, n, ", ");
            kd_at(v->c, node, "unknown %s %s (%ss: %s)", word, q, word, list);
        }
    }
    free(names);
    return -1;
}

int kd_cfg_get_ref(struct kd_cfg *v, const struct kd_ynode *map, const char *key, enum kd_ref_kind kind,
                   size_t n_splits, char out[KD_PIPE_NAME_MAX], const struct kd_ynode **vn)
{
    const char *s;
    int rc = kd_get_str(v->c, map, key, &s, vn);
    if (rc <= 0)
        return rc;
    if (kd_cfg_check_ref(v, *vn, kind, n_splits))
        return -1;
    kd_copy_name(out, s);
    return 1;
}

int kd_cfg_get_path(struct kd_cfg *v, const struct kd_ynode *map, const char *key, const char *base, char **out)
{
    const char *s;
    int rc = kd_get_str(v->c, map, key, &s, NULL);
    if (rc <= 0)
        return rc;
    free(*out);
    *out = kd_cfg_join_path(v, base, s);
    return *out ? 1 : -1;
}

/* A YAML boolean (true/false): 1 set, 0 absent, -1 reported. */
int kd_get_bool(struct kd_cfg *v, const struct kd_ynode *map, const char *key, int *out)
{
    const struct kd_ynode *vn = kd_ytree_get(map, key, NULL);
    if (!vn)
        return 0;
    if (vn->kind == KD_Y_SCALAR && vn->type == KD_YT_BOOL) {
        *out = vn->text[0] == 't' || vn->text[0] == 'T';
        return 1;
    }
    if (vn->kind != KD_Y_BAD) {
        char got[96];
        kd_describe(vn, got, sizeof got);
        kd_at(v->c, vn, "'%s' must be true or false, got %s", key, got);
    }
    return -1;
}

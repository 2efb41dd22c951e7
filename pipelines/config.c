/* The pipeline language: tree -> struct kd_pipeline, with every check that
 * needs no data file. This file checks the top level and holds the API; each
 * section has its file, and the helpers they share (names, positions,
 * references between sections) are in config_util.c (see
 * pipelines/pipeline_impl.h). docs/pipeline.md describes each key; the tables
 * of allowed keys and values are the same lists. Every problem is reported
 * (not only the first); the struct is handed out only when there is none. */
#include "pipelines/pipeline_impl.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The pipeline version this kd reads. */
#define KD_PIPE_VERSION 1

static const char *const TOP_KEYS[] = {"version", "name",   "seed",   "threads",  "output", "store",
                                       "datasets", "splits", "models", "teachers", "stages"};

#define MAX_THREADS 4096LL

/* --------------------------------------------------------------- top level */

/* The file name without folder and extension, reduced to name characters. */
static void default_name(const char *path, char out[KD_PIPE_NAME_MAX])
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t n = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        n = (size_t)(dot - base);
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < KD_PIPE_NAME_MAX; i++) {
        char ch = base[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                 ch == '-';
        out[o++] = ok ? ch : '-';
    }
    out[o] = '\0';
    if (!o)
        kd_copy_name(out, "pipeline");
}

/* Returns -1 when the file is for a newer kd: nothing else is checked then. */
static int check_top(struct kd_cfg *v)
{
    struct kd_pipeline *p = v->p;
    const struct kd_ynode *root = v->root, *vn;
    long long x;
    p->version = KD_PIPE_VERSION;
    if (kd_get_int(v->c, root, "version", LLONG_MIN, LLONG_MAX, &x, &vn) > 0) {
        if (x > KD_PIPE_VERSION) {
            kd_at(v->c, vn, "pipeline version %lld needs a newer kd (this one reads version %d)", x,
                  KD_PIPE_VERSION);
            return -1;
        }
        if (x < 1)
            kd_at(v->c, vn, "'version' must be %d, got %lld", KD_PIPE_VERSION, x);
        p->version = (int)(x < 1 ? KD_PIPE_VERSION : x);
    }
    /* Only now: a newer file's keys are not unknown, just not known yet. */
    kd_check_keys(v->c, root, TOP_KEYS, N(TOP_KEYS), "at the top level");
    if (kd_get_name(v->c, root, "name", "pipeline name", p->name, NULL) <= 0)
        default_name(p->path, p->name);
    p->seed = 1;
    if (kd_get_int(v->c, root, "seed", 0, LLONG_MAX, &x, NULL) > 0)
        p->seed = (uint64_t)x;
    if (kd_get_int(v->c, root, "threads", 0, MAX_THREADS, &x, NULL) > 0)
        p->threads = (int)x;

    const char *s;
    if (kd_get_str(v->c, root, "output", &s, NULL) > 0) {
        p->output = kd_cfg_strdup(v, s);
    } else {
        char out[KD_PIPE_NAME_MAX + 8];
        snprintf(out, sizeof out, "runs/%s", p->name);
        p->output = kd_cfg_strdup(v, out);
    }
    if (kd_get_str(v->c, root, "store", &s, NULL) <= 0)
        s = "kd.db";
    if (p->output)
        p->store = kd_cfg_join_path(v, p->output, s);
    return 0;
}

/* ------------------------------------------------------------------- API */

const struct kd_pipe_model *kd_pipeline_model(const struct kd_pipeline *p, const char *name)
{
    for (size_t i = 0; p && name && i < p->n_models; i++)
        if (strcmp(p->models[i].name, name) == 0)
            return &p->models[i];
    return NULL;
}

const struct kd_pipe_teacher *kd_pipeline_teacher(const struct kd_pipeline *p, const char *name)
{
    for (size_t i = 0; p && name && i < p->n_teachers; i++)
        if (strcmp(p->teachers[i].name, name) == 0)
            return &p->teachers[i];
    return NULL;
}

void kd_pipeline_release(struct kd_pipeline *p)
{
    if (!p)
        return;
    free(p->path);
    free(p->text);
    free(p->dir);
    free(p->output);
    free(p->store);
    for (size_t i = 0; i < p->n_datasets; i++) {
        free(p->datasets[i].features);
        free(p->datasets[i].labels);
        free(p->datasets[i].label_column);
        free(p->datasets[i].beir);
        free(p->datasets[i].wordnet);
    }
    free(p->datasets);
    free(p->splits);
    free(p->models);
    for (size_t i = 0; i < p->n_teachers; i++) {
        free(p->teachers[i].weights);
        for (size_t j = 0; p->teachers[i].command && j < p->teachers[i].n_command; j++)
            free(p->teachers[i].command[j]);
        free(p->teachers[i].command);
    }
    free(p->teachers);
    for (size_t i = 0; i < p->n_stages; i++) {
        free(p->stages[i].path);
        free(p->stages[i].weight_file);
        free(p->stages[i].select.tgt_autoencoder);
    }
    free(p->stages);
    memset(p, 0, sizeof *p);
}

/* The folder part of path: "." when it has none. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

kd_status kd_pipeline_parse(const char *text, size_t len, const char *path, const char *const *sets, size_t n_sets,
                            struct kd_pipeline *p, struct kd_diag *diag)
{
    memset(p, 0, sizeof *p);
    const char *shown = path && path[0] ? path : "pipeline";
    snprintf(diag->path, sizeof diag->path, "%s", shown);
    size_t first_item = diag->n;
    struct kd_pctx c = {.diag = diag, .sets = sets, .n_sets = n_sets};
    struct kd_cfg v = {.c = &c, .p = p};
    struct kd_ynode *root = NULL;

    p->path = strdup(shown);
    p->dir = dir_of(shown);
    p->text = malloc(len + 1);
    if (!p->path || !p->dir || !p->text) {
        c.nomem = 1;
        goto done;
    }
    memcpy(p->text, text, len);
    p->text[len] = '\0';

    if (kd_ytree_parse(&c, text, len, 0, 0, &root))
        goto done;
    if (root->kind != KD_Y_MAP) {
        char got[96];
        kd_describe(root, got, sizeof got);
        if (kd_ytree_is_null(root))
            kd_at(&c, NULL, "the file is empty: a pipeline needs at least 'stages'");
        else if (root->kind != KD_Y_BAD)
            kd_at(&c, root, "a pipeline must be a mapping of keys (version, name, datasets, ..., stages), got %s", got);
        goto done;
    }
    for (size_t i = 0; i < n_sets && !c.nomem; i++)
        kd_overrides_apply(&c, root, i);
    v.root = root;
    if (!c.nomem && check_top(&v) == 0) {
        kd_config_datasets(&v);
        kd_config_splits(&v);
        kd_config_models(&v);
        kd_config_teachers(&v);
        kd_config_stages(&v);
    }
done:
    kd_ytree_free(root);
    free(v.refs);
    free(v.teacher_model);
    kd_names_release(&v.datasets);
    kd_names_release(&v.parts);
    kd_names_release(&v.models);
    kd_names_release(&v.teachers);
    kd_diag_sort(diag, first_item);
    if (c.nomem) {
        kd_diag_add(diag, 0, 0, "out of memory");
        kd_pipeline_release(p);
        return KD_ERR_NOMEM;
    }
    if (c.n_problems) {
        kd_pipeline_release(p);
        return KD_ERR_CONFIG;
    }
    return KD_OK;
}

kd_status kd_pipeline_load(const char *path, const char *const *sets, size_t n_sets, struct kd_pipeline *p,
                           struct kd_diag *diag)
{
    memset(p, 0, sizeof *p);
    struct kd_error err = {0};
    char *text;
    size_t len;
    kd_status st = kd_read_file(path, &text, &len, &err);
    if (st) {
        snprintf(diag->path, sizeof diag->path, "%s", path);
        kd_diag_push(diag, 0, 0, err.msg);
        return st;
    }
    st = kd_pipeline_parse(text, len, path, sets, n_sets, p, diag);
    free(text);
    return st;
}

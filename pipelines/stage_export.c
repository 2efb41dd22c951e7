/* The export stage: a trained model written as safetensors, a C source file
 * and/or ONNX, each recorded as an artefact of the run. Each carries the
 * model's input scaling, so each takes raw inputs. */
#include "pipelines/run_impl.h"

#include <string.h>

kd_status kd_run_stage_export(struct runner *r, const struct kd_pipe_stage *s, int64_t sid, struct kd_error *err)
{
    (void)sid;
    struct run_model *m = kd_run_find_model(r, s->model);
    if (!m || !m->net)
        return kd_error_set(err, KD_ERR_CONFIG, "stage '%s': model '%s' is not trained", s->name, s->model);
    char base[900], path[1024];
    snprintf(base, sizeof base, "%s", s->path ? s->path : s->model);
    char *slash = strrchr(base, '/');
    if (slash) {
        *slash = '\0';
        kd_status st = kd_run_make_dirs(base, err);
        *slash = '/';
        if (st)
            return st;
    }
    kd_status st = KD_OK;
    if (s->format_safetensors || (!s->format_c && !s->format_onnx)) {
        snprintf(path, sizeof path, "%s.safetensors", base);
        struct kd_st_meta meta[1] = {{"pipeline", (char *)r->p->name}};
        if ((st = kd_mlp_save(m->net, path, meta, 1, err)) || (st = kd_run_add_artefact(r, path, "safetensors", err)))
            return st;
    }
    if (s->format_c) {
        snprintf(path, sizeof path, "%s.c", base);
        char prefix[KD_PIPE_NAME_MAX + 8];
        snprintf(prefix, sizeof prefix, "kd_%s", s->model);
        for (char *c = prefix; *c; c++)
            if (*c == '-')
                *c = '_';
        if ((st = kd_mlp_export_c(m->net, path, prefix, err)) || (st = kd_run_add_artefact(r, path, "c", err)))
            return st;
    }
    if (s->format_onnx) {
        snprintf(path, sizeof path, "%s.onnx", base);
        if ((st = kd_mlp_export_onnx(m->net, path, err)) || (st = kd_run_add_artefact(r, path, "onnx", err)))
            return st;
    }
    return st;
}

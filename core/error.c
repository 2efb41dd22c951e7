/* Error records: one message per failure, context added in front by callers. */
#include "core/kd_core.h"

#include <stdarg.h>
#include <string.h>

kd_status kd_error_set(struct kd_error *err, kd_status status, const char *fmt, ...)
{
    if (!err)
        return status;
    err->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return status;
}

kd_status kd_error_prefix(struct kd_error *err, const char *fmt, ...)
{
    if (!err)
        return KD_OK;
    char prefix[KD_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Build "prefix: old" by hand: the result is cut at the buffer's end. */
    char old[KD_ERROR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    size_t np = strlen(prefix), no = strlen(old), cap = sizeof err->msg - 1, at = 0;
    for (size_t i = 0; i < np && at < cap; i++)
        err->msg[at++] = prefix[i];
    for (const char *sep = ": "; *sep && at < cap; sep++)
        err->msg[at++] = *sep;
    for (size_t i = 0; i < no && at < cap; i++)
        err->msg[at++] = old[i];
    err->msg[at] = '\0';
    return err->status;
}

void kd_error_clear(struct kd_error *err)
{
    if (!err)
        return;
    err->status = KD_OK;
    err->msg[0] = '\0';
}

const char *kd_status_name(kd_status status)
{
    switch (status) {
    case KD_OK: return "ok";
    case KD_ERR_NOMEM: return "out of memory";
    case KD_ERR_IO: return "i/o error";
    case KD_ERR_FORMAT: return "format error";
    case KD_ERR_ARG: return "invalid argument";
    case KD_ERR_SHAPE: return "shape mismatch";
    case KD_ERR_UNSUPPORTED: return "unsupported";
    case KD_ERR_STORE: return "label store error";
    case KD_ERR_CONFIG: return "invalid pipeline";
    case KD_ERR_TEACHER: return "teacher error";
    case KD_ERR_INTERRUPTED: return "interrupted";
    case KD_ERR_NOT_FOUND: return "not found";
    case KD_ERR_BUDGET: return "budget exceeded";
    case KD_ERR_DIVERGED: return "training diverged";
    }
    return "unknown error";
}

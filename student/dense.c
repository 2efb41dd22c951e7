/* A linear layer as two GEMMs each way: y = x W^T + b, W stored (out, in). */
#include "student/kd_student.h"

#include <string.h>

void kd_dense_forward(const struct kd_dense *l, const float *x, size_t B, float *y)
{
    /* Seed y with the bias, then let the GEMM accumulate onto it (beta = 1). */
    for (size_t i = 0; i < B; i++)
        memcpy(y + i * l->out, l->b, l->out * sizeof *y);
    kd_sgemm(0, 1, B, l->out, l->in, 1.0f, x, l->in, l->w, l->in, 1.0f, y, l->out); /* (B, out) */
}

void kd_dense_backward(const struct kd_dense *l, const float *x, const float *dy, size_t B, float *dx)
{
    kd_sgemm(1, 0, l->out, l->in, B, 1.0f, dy, l->out, x, l->in, 0.0f, l->gw, l->in); /* (out, in) */
    memset(l->gb, 0, l->out * sizeof *l->gb);
    for (size_t i = 0; i < B; i++) {
        const float *row = dy + i * l->out;
        for (size_t j = 0; j < l->out; j++)
            l->gb[j] += row[j];
    }
    if (dx)
        kd_sgemm(0, 0, B, l->in, l->out, 1.0f, dy, l->out, l->w, l->in, 0.0f, dx, l->in); /* (B, in) */
}

/* Supervision complexity tr(Y^T (K + eps I)^-1 Y) of targets Y: by Cholesky
 * on a formed K, or by conjugate gradients on the NTK operator. */
#include "diagnostics/kd_diagnostics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- targets */

void kd_targets_release(struct kd_targets *t)
{
    if (!t)
        return;
    kd_free(t->y);
    memset(t, 0, sizeof *t);
}

static kd_status targets_alloc(struct kd_targets *t, const char *name, size_t n, size_t C, struct kd_error *err)
{
    memset(t, 0, sizeof *t);
    if (n == 0 || C == 0)
        return kd_error_set(err, KD_ERR_ARG, "targets '%s' are empty (%zu rows, %zu columns)", name ? name : "",
                            n, C);
    snprintf(t->name, sizeof t->name, "%s", name ? name : "targets");
    t->y = kd_calloc(n * C, sizeof *t->y);
    if (!t->y)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for targets '%s' (%zu x %zu)", t->name, n, C);
    t->n = n;
    t->C = C;
    return KD_OK;
}

kd_status kd_targets_onehot(struct kd_targets *t, const char *name, const int32_t *labels, size_t n, size_t C,
                            struct kd_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || (size_t)labels[i] >= C)
            return kd_error_set(err, KD_ERR_ARG, "targets '%s': row %zu has label %d, outside 0 to %zu",
                                name ? name : "", i + 1, (int)labels[i], C ? C - 1 : 0);
    kd_status st = targets_alloc(t, name, n, C, err);
    if (st)
        return st;
    for (size_t i = 0; i < n; i++)
        t->y[i * C + (size_t)labels[i]] = 1.0;
    return KD_OK;
}

kd_status kd_targets_softmax(struct kd_targets *t, const char *name, const float *logits, size_t n, size_t C,
                             double T, struct kd_error *err)
{
    if (!(T > 0.0) || !isfinite(T))
        return kd_error_set(err, KD_ERR_ARG, "targets '%s': the temperature must be > 0, got %g", name ? name : "",
                            T);
    kd_status st = targets_alloc(t, name, n, C, err);
    if (st)
        return st;
    for (size_t i = 0; i < n; i++) {
        const float *z = logits + i * C;
        double *y = t->y + i * C, mx = -INFINITY, s = 0.0;
        for (size_t c = 0; c < C; c++)
            if ((double)z[c] / T > mx)
                mx = (double)z[c] / T;
        for (size_t c = 0; c < C; c++)
            s += (y[c] = exp((double)z[c] / T - mx));
        for (size_t c = 0; c < C; c++)
            y[c] /= s;
    }
    return KD_OK;
}

kd_status kd_targets_copy(struct kd_targets *t, const char *name, const double *y, size_t n, size_t C,
                          struct kd_error *err)
{
    kd_status st = targets_alloc(t, name, n, C, err);
    if (!st)
        memcpy(t->y, y, n * C * sizeof *y);
    return st;
}

/* ---------------------------------------------------------------- options */

static const char *const method_names[] = {"auto", "cholesky", "cg"};

const char *kd_solve_method_name(enum kd_solve_method m)
{
    return (unsigned)m < 3 ? method_names[m] : "?";
}

kd_status kd_solve_method_parse(const char *name, enum kd_solve_method *out, struct kd_error *err)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, method_names[i])) {
            *out = (enum kd_solve_method)i;
            return KD_OK;
        }
    return kd_error_set(err, KD_ERR_ARG, "unknown solve method '%s' (expected auto, cholesky or cg)", name);
}

void kd_complexity_config_init(struct kd_complexity_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->eps = 1e-3;
    cfg->centre = 0;
    cfg->method = KD_SOLVE_AUTO;
    cfg->cholesky_max_n = 20000;
    cfg->cg_tol = 1e-6;
    cfg->cg_max_iter = 500;
    kd_ntk_config_init(&cfg->ntk);
}

/* Y as the solver sees it: (C, n), one target column per row (LAPACK's
 * column-major right-hand sides), centred when asked. */
static double *targets_columns(const struct kd_targets *t, int centre)
{
    double *yt = kd_alloc(t->n * t->C, sizeof *yt);
    if (!yt)
        return NULL;
    double shift = centre ? 1.0 / (double)t->C : 0.0;
    for (size_t i = 0; i < t->n; i++)
        for (size_t c = 0; c < t->C; c++)
            yt[c * t->n + i] = t->y[i * t->C + c] - shift;
    return yt;
}

static kd_status check_targets(size_t n, const struct kd_targets *t, size_t n_targets,
                               const struct kd_complexity_config *cfg, struct kd_error *err)
{
    if (n == 0)
        return kd_error_set(err, KD_ERR_ARG, "no inputs: supervision complexity needs n >= 1");
    if (!(cfg->eps >= 0.0) || !isfinite(cfg->eps))
        return kd_error_set(err, KD_ERR_ARG, "eps must be >= 0, got %g", cfg->eps);
    for (size_t k = 0; k < n_targets; k++) {
        if (!t[k].y || t[k].C == 0)
            return kd_error_set(err, KD_ERR_ARG, "targets '%s' are empty", t[k].name);
        if (t[k].n != n)
            return kd_error_set(err, KD_ERR_SHAPE, "targets '%s' have %zu rows, but the kernel is over %zu inputs",
                                t[k].name, t[k].n, n);
        for (size_t i = 0; i < t[k].n * t[k].C; i++)
            if (!isfinite(t[k].y[i]))
                return kd_error_set(err, KD_ERR_ARG, "targets '%s': row %zu column %zu is not finite", t[k].name,
                                    i / t[k].C + 1, i % t[k].C + 1);
    }
    return KD_OK;
}

static void record_init(struct kd_complexity *r, const struct kd_targets *t, const struct kd_complexity_config *cfg,
                        enum kd_solve_method method, double trace)
{
    memset(r, 0, sizeof *r);
    snprintf(r->targets, sizeof r->targets, "%s", t->name);
    r->n = t->n;
    r->C = t->C;
    r->eps = cfg->eps;
    r->centred = cfg->centre != 0;
    r->method = method;
    r->trace_k = trace;
    r->converged = 1;
}

static void record_finish(struct kd_complexity *r)
{
    double p = r->complexity * r->trace_k;
    r->adjusted = p > 0.0 ? sqrt(p) / (double)r->n : 0.0;
}

static double dot(size_t n, const double *a, const double *b)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* --------------------------------------------------------------- Cholesky */

kd_status kd_complexity_cholesky(const double *K, size_t n, const struct kd_targets *t, size_t n_targets,
                                 const struct kd_complexity_config *cfg, struct kd_complexity *out,
                                 struct kd_error *err)
{
    kd_status st = check_targets(n, t, n_targets, cfg, err);
    if (st)
        return st;
    double *L = kd_alloc(n * n, sizeof *L), *x = NULL, *y = NULL, *r = NULL;
    if (!L)
        return kd_error_set(err, KD_ERR_NOMEM, "out of memory for the Cholesky factor (%zu x %zu)", n, n);
    double trace = 0.0;
    memcpy(L, K, n * n * sizeof *L);
    for (size_t i = 0; i < n; i++) {
        trace += K[i * n + i];
        L[i * n + i] += cfg->eps;
    }
    int info = kd_dpotrf(n, L, n);
    if (info > 0) {
        st = kd_error_set(err, KD_ERR_ARG,
                          "K + eps I is not positive definite (eps = %g; Cholesky failed at order %d of %zu): the "
                          "kernel is singular or nearly so; use a larger eps (e.g. 1e-3 times the mean of diag K, "
                          "%g)",
                          cfg->eps, info, n, 1e-3 * trace / (double)n);
        goto done;
    }
    if (info < 0) {
        st = kd_error_set(err, KD_ERR_ARG, "LAPACK dpotrf rejected argument %d", -info);
        goto done;
    }
    for (size_t k = 0; k < n_targets; k++) {
        size_t C = t[k].C;
        struct kd_complexity *res = &out[k];
        record_init(res, &t[k], cfg, KD_SOLVE_CHOLESKY, trace);
        y = targets_columns(&t[k], cfg->centre);
        x = kd_alloc(C * n, sizeof *x);
        r = kd_alloc(C * n, sizeof *r);
        if (!y || !x || !r) {
            st = kd_error_set(err, KD_ERR_NOMEM, "out of memory solving for targets '%s'", t[k].name);
            goto done;
        }
        memcpy(x, y, C * n * sizeof *x);
        if ((info = kd_dpotrs(n, C, L, n, x, n)) != 0) {
            st = kd_error_set(err, KD_ERR_ARG, "LAPACK dpotrs rejected argument %d", -info);
            goto done;
        }
        /* residual (K + eps I) x - y, all columns at once: R (C, n) = X K (K symmetric) */
        kd_dgemm(0, 0, C, n, n, 1.0, x, n, K, n, 0.0, r, n);
        for (size_t c = 0; c < C; c++) {
            double *xc = x + c * n, *yc = y + c * n, *rc = r + c * n, rr = 0.0;
            for (size_t i = 0; i < n; i++) {
                double e = rc[i] + cfg->eps * xc[i] - yc[i];
                rr += e * e;
            }
            double yy = dot(n, yc, yc);
            double rel = yy > 0.0 ? sqrt(rr / yy) : sqrt(rr);
            if (rel > res->residual)
                res->residual = rel;
            res->complexity += dot(n, yc, xc);
        }
        record_finish(res);
        kd_free(x);
        kd_free(y);
        kd_free(r);
        x = y = r = NULL;
    }
done:
    kd_free(L);
    kd_free(x);
    kd_free(y);
    kd_free(r);
    return st;
}

/* --------------------------------------------------------------------- CG */

/* Preconditioned CG on the columns of one target at once, in lockstep: each
 * iteration applies K to every column still short of the tolerance in one
 * kd_ntk_op_apply_many; a column that has converged keeps its x. */
struct cg_ws {
    double *x, *r, *z, *p, *pa, *apa, *rz, *yy, *rel;
    size_t *it, *active;
};

static void cg_ws_release(struct cg_ws *w)
{
    double **d[] = {&w->x, &w->r, &w->z, &w->p, &w->pa, &w->apa, &w->rz, &w->yy, &w->rel};
    for (size_t i = 0; i < sizeof d / sizeof *d; i++) {
        kd_free(*d[i]);
        *d[i] = NULL;
    }
    kd_free(w->it);
    kd_free(w->active);
    w->it = w->active = NULL;
}

static int cg_ws_alloc(struct cg_ws *w, size_t m, size_t n)
{
    memset(w, 0, sizeof *w);
    double **big[] = {&w->x, &w->r, &w->z, &w->p, &w->pa, &w->apa};
    for (size_t i = 0; i < sizeof big / sizeof *big; i++)
        if (!(*big[i] = kd_alloc(m * n, sizeof(double))))
            return -1;
    w->rz = kd_alloc(m, sizeof(double));
    w->yy = kd_alloc(m, sizeof(double));
    w->rel = kd_alloc(m, sizeof(double));
    w->it = kd_alloc(m, sizeof(size_t));
    w->active = kd_alloc(m, sizeof(size_t));
    return w->rz && w->yy && w->rel && w->it && w->active ? 0 : -1;
}

/* Solves (K + eps I) x = y for the m columns of y (m, n) into w->x. */
static void cg_solve(struct kd_ntk_op *op, const double *y, size_t m, size_t n, const double *diag,
                     const struct kd_complexity_config *cfg, struct cg_ws *w)
{
    memset(w->x, 0, m * n * sizeof *w->x);
    for (size_t k = 0; k < m; k++) {
        const double *yk = y + k * n;
        double *r = w->r + k * n, *z = w->z + k * n, *p = w->p + k * n;
        w->yy[k] = dot(n, yk, yk);
        w->it[k] = 0;
        w->rel[k] = w->yy[k] > 0.0 ? 1.0 : 0.0;
        memcpy(r, yk, n * sizeof *r);
        for (size_t i = 0; i < n; i++)
            p[i] = z[i] = r[i] / diag[i];
        w->rz[k] = dot(n, r, z);
    }
    for (size_t iter = 0; iter < cfg->cg_max_iter; iter++) {
        size_t na = 0;
        for (size_t k = 0; k < m; k++)
            if (w->rel[k] > cfg->cg_tol)
                w->active[na++] = k;
        if (na == 0)
            break;
        for (size_t q = 0; q < na; q++)
            memcpy(w->pa + q * n, w->p + w->active[q] * n, n * sizeof *w->pa);
        kd_ntk_op_apply_many(op, na, w->pa, w->apa);
        for (size_t q = 0; q < na; q++) {
            size_t k = w->active[q];
            double *x = w->x + k * n, *r = w->r + k * n, *z = w->z + k * n, *p = w->p + k * n;
            double *ap = w->apa + q * n;
            for (size_t i = 0; i < n; i++)
                ap[i] += cfg->eps * p[i];
            double alpha = w->rz[k] / dot(n, p, ap);
            for (size_t i = 0; i < n; i++) {
                x[i] += alpha * p[i];
                r[i] -= alpha * ap[i];
                z[i] = r[i] / diag[i];
            }
            w->it[k]++;
            w->rel[k] = sqrt(dot(n, r, r) / w->yy[k]);
            double rz_new = dot(n, r, z), beta = rz_new / w->rz[k];
            w->rz[k] = rz_new;
            for (size_t i = 0; i < n; i++)
                p[i] = z[i] + beta * p[i];
        }
    }
}

kd_status kd_complexity_cg(struct kd_ntk_op *op, const struct kd_targets *t, size_t n_targets,
                           const struct kd_complexity_config *cfg, struct kd_complexity *out, struct kd_error *err)
{
    size_t n = kd_ntk_op_n(op);
    kd_status st = check_targets(n, t, n_targets, cfg, err);
    if (st)
        return st;
    if (!(cfg->eps > 0.0))
        return kd_error_set(err, KD_ERR_ARG,
                            "conjugate gradients need eps > 0 (K itself may be singular), got eps = %g", cfg->eps);
    double *diag = kd_alloc(n, sizeof *diag), *y = NULL;
    struct cg_ws w;
    memset(&w, 0, sizeof w);
    if (!diag) {
        st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for conjugate gradients over %zu inputs", n);
        goto done;
    }
    kd_ntk_op_diag(op, diag);
    double trace = 0.0;
    for (size_t i = 0; i < n; i++) {
        trace += diag[i];
        diag[i] += cfg->eps; /* the Jacobi preconditioner: diag(K + eps I) */
    }
    for (size_t k = 0; k < n_targets; k++) {
        struct kd_complexity *res = &out[k];
        size_t m = t[k].C;
        record_init(res, &t[k], cfg, KD_SOLVE_CG, trace);
        if (!(y = targets_columns(&t[k], cfg->centre)) || cg_ws_alloc(&w, m, n)) {
            st = kd_error_set(err, KD_ERR_NOMEM, "out of memory for conjugate gradients on targets '%s'", t[k].name);
            goto done;
        }
        cg_solve(op, y, m, n, diag, cfg, &w);
        for (size_t c = 0; c < m; c++) {
            if (w.rel[c] > cfg->cg_tol)
                res->converged = 0;
            if (w.rel[c] > res->residual)
                res->residual = w.rel[c];
            if (w.it[c] > res->iterations)
                res->iterations = w.it[c];
            res->complexity += dot(n, y + c * n, w.x + c * n);
        }
        record_finish(res);
        kd_free(y);
        y = NULL;
        cg_ws_release(&w);
    }
done:
    kd_free(diag);
    kd_free(y);
    cg_ws_release(&w);
    return st;
}

/* ------------------------------------------------------------- the whole job */

kd_status kd_complexity_compute(const struct kd_mlp *m, const struct kd_tensor *x, const struct kd_targets *t,
                                size_t n_targets, const struct kd_complexity_config *cfg, struct kd_complexity *out,
                                struct kd_error *err)
{
    size_t n = x->rows;
    kd_status st = check_targets(n, t, n_targets, cfg, err);
    if (st)
        return st;
    enum kd_solve_method method = cfg->method;
    if (method == KD_SOLVE_AUTO)
        method = n <= cfg->cholesky_max_n ? KD_SOLVE_CHOLESKY : KD_SOLVE_CG;
    if (method == KD_SOLVE_CG) {
        struct kd_ntk_op *op = NULL;
        if ((st = kd_ntk_op_new(m, x, 0, &op, err)))
            return st;
        st = kd_complexity_cg(op, t, n_targets, cfg, out, err);
        kd_ntk_op_free(op);
        return st;
    }
    double *K = kd_alloc(n * n, sizeof *K);
    if (!K)
        return kd_error_set(err, KD_ERR_NOMEM,
                            "out of memory for the %zu x %zu kernel (%.1f GB); use the cg method for large n", n, n,
                            8e-9 * (double)n * (double)n);
    st = kd_ntk_kernel(m, x, &cfg->ntk, K, NULL, err);
    if (!st)
        st = kd_complexity_cholesky(K, n, t, n_targets, cfg, out, err);
    kd_free(K);
    return st;
}

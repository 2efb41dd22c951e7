/* diagnostics: the structured NTK, the operator and the complexity solves
 * against explicit per-example Jacobians built by a naive float64 backprop. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diagnostics/kd_diagnostics.h"

/* A small network with random weights and biases away from zero. */
static struct kd_mlp *tiny(const size_t *sizes, size_t n_sizes, enum kd_act act, uint64_t seed)
{
    struct kd_error err = {0};
    struct kd_mlp_config cfg;
    kd_mlp_config_init(&cfg);
    cr_assert_eq(kd_mlp_config_set_sizes(&cfg, sizes, n_sizes, &err), KD_OK, "%s", err.msg);
    cfg.act = act;
    struct kd_mlp *m = NULL;
    cr_assert_eq(kd_mlp_new(&cfg, seed, &m, &err), KD_OK, "%s", err.msg);
    struct kd_rng r;
    kd_rng_seed(&r, seed + 100);
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] += 0.1f * (float)kd_rng_normal(&r);
    return m;
}

static struct kd_tensor inputs(size_t n, size_t D, uint64_t seed)
{
    struct kd_tensor x;
    cr_assert_eq(kd_tensor_init(&x, n, D, NULL), KD_OK);
    struct kd_rng r;
    kd_rng_seed(&r, seed);
    for (size_t i = 0; i < n * D; i++)
        x.data[i] = (float)kd_rng_normal(&r);
    return x;
}

static double f_act(enum kd_act a, double z)
{
    switch (a) {
    case KD_ACT_RELU: return z > 0 ? z : 0;
    case KD_ACT_GELU: return 0.5 * z * (1 + erf(z / sqrt(2.0)));
    case KD_ACT_TANH: return tanh(z);
    default: return z;
    }
}

static double df_act(enum kd_act a, double z)
{
    switch (a) {
    case KD_ACT_RELU: return z > 0 ? 1 : 0;
    case KD_ACT_GELU: return 0.5 * (1 + erf(z / sqrt(2.0))) + z * exp(-0.5 * z * z) / sqrt(2 * M_PI);
    case KD_ACT_TANH: return 1 - tanh(z) * tanh(z);
    default: return 1;
    }
}

/* The explicit Jacobian J (n C, |theta|), row i C + c = d f_c(x_i) / d theta in
 * kd's parameter order, by scalar loops (no BLAS): the test's oracle. */
static double *explicit_jacobian(const struct kd_mlp *m, const struct kd_tensor *x)
{
    size_t L = m->n_layers, C = kd_mlp_out(m), n = x->rows, P = m->n_params;
    double *J = calloc(n * C * P, sizeof *J);
    double a[KD_MLP_MAX_LAYERS + 1][64], z[KD_MLP_MAX_LAYERS][64], delta[64], prev[64];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < x->cols; j++)
            a[0][j] = x->data[i * x->cols + j];
        for (size_t l = 0; l < L; l++) {
            const struct kd_dense *Ly = &m->layers[l];
            for (size_t o = 0; o < Ly->out; o++) {
                double s = Ly->b[o];
                for (size_t j = 0; j < Ly->in; j++)
                    s += (double)Ly->w[o * Ly->in + j] * a[l][j];
                z[l][o] = s;
                a[l + 1][o] = l + 1 < L ? f_act(m->cfg.act, s) : s;
            }
        }
        for (size_t c = 0; c < C; c++) {
            double *row = J + (i * C + c) * P;
            for (size_t o = 0; o < C; o++)
                delta[o] = o == c;
            for (size_t l = L; l-- > 0;) {
                const struct kd_dense *Ly = &m->layers[l];
                size_t off = (size_t)(Ly->w - m->params);
                for (size_t o = 0; o < Ly->out; o++) {
                    for (size_t j = 0; j < Ly->in; j++)
                        row[off + o * Ly->in + j] = delta[o] * a[l][j];
                    row[off + Ly->out * Ly->in + o] = delta[o];
                }
                if (l == 0)
                    break;
                for (size_t j = 0; j < Ly->in; j++) {
                    double s = 0;
                    for (size_t o = 0; o < Ly->out; o++)
                        s += delta[o] * (double)Ly->w[o * Ly->in + j];
                    prev[j] = s * df_act(m->cfg.act, z[l - 1][j]);
                }
                memcpy(delta, prev, Ly->in * sizeof *delta);
            }
        }
    }
    return J;
}

/* K_full = J J^T and the class sum, naively. */
static void explicit_kernels(const double *J, size_t n, size_t C, size_t P, double *K, double *Kf)
{
    for (size_t r = 0; r < n * C; r++)
        for (size_t s = 0; s < n * C; s++) {
            double acc = 0;
            for (size_t p = 0; p < P; p++)
                acc += J[r * P + p] * J[s * P + p];
            if (Kf)
                Kf[r * n * C + s] = acc;
            if (K && r % C == s % C)
                K[(r / C) * n + s / C] += acc;
        }
}

static double max_rel(const double *a, const double *b, size_t len)
{
    double scale = 0, diff = 0;
    for (size_t i = 0; i < len; i++) {
        if (fabs(b[i]) > scale)
            scale = fabs(b[i]);
        if (fabs(a[i] - b[i]) > diff)
            diff = fabs(a[i] - b[i]);
    }
    return diff / (scale > 0 ? scale : 1);
}

Test(diagnostics, explicit_jacobian_oracle_matches_kd_float32_backprop)
{
    size_t sizes[] = {5, 7, 6, 3};
    struct kd_mlp *m = tiny(sizes, 4, KD_ACT_TANH, 1);
    struct kd_tensor x = inputs(4, 5, 2);
    double *J = explicit_jacobian(m, &x);
    for (size_t i = 0; i < 4; i++)
        for (size_t c = 0; c < 3; c++) {
            float dl[3] = {0, 0, 0};
            dl[c] = 1;
            kd_mlp_forward(m, x.data + i * 5, 1, 0, NULL);
            kd_mlp_backward(m, dl, 1);
            for (size_t p = 0; p < m->n_params; p++)
                cr_assert(fabs(J[(i * 3 + c) * m->n_params + p] - m->grads[p]) < 1e-5,
                          "example %zu class %zu param %zu: oracle %g, kd %g", i, c, p,
                          J[(i * 3 + c) * m->n_params + p], (double)m->grads[p]);
        }
    free(J);
    kd_tensor_release(&x);
    kd_mlp_free(m);
}

static void check_structured(enum kd_act act, const size_t *sizes, size_t n_sizes, size_t n, size_t block)
{
    struct kd_error err = {0};
    struct kd_mlp *m = tiny(sizes, n_sizes, act, 3);
    struct kd_tensor x = inputs(n, sizes[0], 4);
    size_t C = kd_mlp_out(m), P = m->n_params;
    double *J = explicit_jacobian(m, &x);
    double *Ke = calloc(n * n, sizeof *Ke), *Kfe = calloc(n * C * n * C, sizeof *Kfe);
    explicit_kernels(J, n, C, P, Ke, Kfe);
    double *K = malloc(n * n * sizeof *K), *Kf = malloc(n * C * n * C * sizeof *Kf);
    struct kd_ntk_config cfg;
    kd_ntk_config_init(&cfg);
    cfg.block = block;
    cr_assert_eq(kd_ntk_kernel(m, &x, &cfg, K, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_ntk_kernel_full(m, &x, &cfg, Kf, NULL, &err), KD_OK, "%s", err.msg);
    double r1 = max_rel(K, Ke, n * n), r2 = max_rel(Kf, Kfe, n * C * n * C);
    cr_log_info("%s block %zu: class-summed max rel diff %.3g, full %.3g", kd_act_name(act), block, r1, r2);
    cr_assert(r1 < 1e-12, "%s block %zu: class-summed kernel off by %g relative", kd_act_name(act), block, r1);
    cr_assert(r2 < 1e-12, "%s block %zu: full kernel off by %g relative", kd_act_name(act), block, r2);
    /* float32 Gram GEMMs */
    cfg.precision = KD_NTK_F32;
    cr_assert_eq(kd_ntk_kernel(m, &x, &cfg, K, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_ntk_kernel_full(m, &x, &cfg, Kf, NULL, &err), KD_OK, "%s", err.msg);
    r1 = max_rel(K, Ke, n * n);
    r2 = max_rel(Kf, Kfe, n * C * n * C);
    cr_assert(r1 < 1e-5 && r2 < 1e-5, "%s float32: off by %g / %g relative", kd_act_name(act), r1, r2);
    free(J);
    free(Ke);
    free(Kfe);
    free(K);
    free(Kf);
    kd_tensor_release(&x);
    kd_mlp_free(m);
}

Test(diagnostics, structured_kernel_equals_explicit_jacobian_products_for_each_activation)
{
    size_t sizes[] = {5, 7, 6, 3};
    enum kd_act acts[] = {KD_ACT_IDENTITY, KD_ACT_RELU, KD_ACT_GELU, KD_ACT_TANH};
    for (size_t a = 0; a < 4; a++) {
        check_structured(acts[a], sizes, 4, 9, 0); /* one block */
        check_structured(acts[a], sizes, 4, 9, 4); /* blocks of 4, 4, 1: recomputed pairs */
    }
}

Test(diagnostics, structured_kernel_handles_a_linear_model_and_one_class)
{
    size_t lin[] = {4, 3}, one[] = {4, 5, 1};
    check_structured(KD_ACT_RELU, lin, 2, 6, 0);
    check_structured(KD_ACT_TANH, one, 3, 6, 2);
}

Test(diagnostics, structured_kernel_is_right_across_gram_tiles)
{
    /* n = 1100 crosses the 1024-example tile of the class-summed Gram and the
     * 512-example tile of the full one (C = 2), with blocks of 700 */
    size_t sizes[] = {3, 4, 2};
    check_structured(KD_ACT_TANH, sizes, 3, 1100, 700);
}

Test(diagnostics, full_kernel_with_many_classes_sums_to_the_class_summed_one)
{
    /* C = 300 makes the full kernel's tile 3 examples */
    size_t sizes[] = {3, 4, 300}, n = 8, C = 300;
    struct kd_error err = {0};
    struct kd_mlp *m = tiny(sizes, 3, KD_ACT_GELU, 21);
    struct kd_tensor x = inputs(n, 3, 22);
    double *K = malloc(n * n * sizeof *K), *Kf = malloc(n * C * n * C * sizeof *Kf), Ks[64] = {0};
    struct kd_ntk_config cfg;
    kd_ntk_config_init(&cfg);
    cfg.block = 5;
    cr_assert_eq(kd_ntk_kernel(m, &x, &cfg, K, NULL, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_ntk_kernel_full(m, &x, &cfg, Kf, NULL, &err), KD_OK, "%s", err.msg);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            for (size_t c = 0; c < C; c++)
                Ks[i * n + j] += Kf[(i * C + c) * n * C + j * C + c];
    cr_assert(max_rel(Ks, K, n * n) < 1e-12, "off by %g", max_rel(Ks, K, n * n));
    for (size_t r = 0; r < n * C; r += 7)
        for (size_t s = 0; s < n * C; s += 5)
            cr_assert(Kf[r * n * C + s] == Kf[s * n * C + r]);
    free(K);
    free(Kf);
    kd_tensor_release(&x);
    kd_mlp_free(m);
}

Test(diagnostics, operator_products_equal_the_explicit_jacobian)
{
    size_t sizes[] = {5, 7, 6, 3}, n = 7, C = 3;
    struct kd_error err = {0};
    struct kd_mlp *m = tiny(sizes, 4, KD_ACT_GELU, 5);
    struct kd_tensor x = inputs(n, 5, 6);
    size_t P = m->n_params;
    double *J = explicit_jacobian(m, &x);
    double *Ke = calloc(n * n, sizeof *Ke);
    explicit_kernels(J, n, C, P, Ke, NULL);
    struct kd_ntk_op *op = NULL;
    cr_assert_eq(kd_ntk_op_new(m, &x, 3, &op, &err), KD_OK, "%s", err.msg);
    cr_assert_eq(kd_ntk_op_params(op), P);
    double v[21], g[512], ge[512] = {0}, u[512], ju[21], jue[21] = {0}, vv[7], kv[7], kve[7] = {0}, dg[7];
    cr_assert(P <= 512);
    struct kd_rng r;
    kd_rng_seed(&r, 7);
    for (size_t i = 0; i < n * C; i++)
        v[i] = kd_rng_normal(&r);
    for (size_t p = 0; p < P; p++)
        u[p] = kd_rng_normal(&r);
    for (size_t i = 0; i < n; i++)
        vv[i] = kd_rng_normal(&r);
    for (size_t rr = 0; rr < n * C; rr++)
        for (size_t p = 0; p < P; p++) {
            ge[p] += J[rr * P + p] * v[rr];
            jue[rr] += J[rr * P + p] * u[p];
        }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            kve[i] += Ke[i * n + j] * vv[j];
    kd_ntk_op_vjp(op, v, g);
    kd_ntk_op_jvp(op, u, ju);
    kd_ntk_op_apply(op, vv, kv);
    kd_ntk_op_diag(op, dg);
    cr_assert(max_rel(g, ge, P) < 1e-12, "J^T v off by %g", max_rel(g, ge, P));
    cr_assert(max_rel(ju, jue, n * C) < 1e-12, "J u off by %g", max_rel(ju, jue, n * C));
    cr_assert(max_rel(kv, kve, n) < 1e-12, "K v off by %g", max_rel(kv, kve, n));
    for (size_t i = 0; i < n; i++)
        cr_assert(fabs(dg[i] - Ke[i * n + i]) < 1e-12 * fabs(Ke[i * n + i]), "diag %zu: %g vs %g", i, dg[i],
                  Ke[i * n + i]);
    /* 20 vectors at once: more than one pass of at most 16 */
    double V[20 * 7], KV[20 * 7];
    for (size_t i = 0; i < 20 * n; i++)
        V[i] = kd_rng_normal(&r);
    kd_ntk_op_apply_many(op, 20, V, KV);
    for (size_t k = 0; k < 20; k++) {
        kd_ntk_op_apply(op, V + k * n, kv);
        cr_assert(max_rel(KV + k * n, kv, n) < 1e-13, "vector %zu of 20 off by %g", k, max_rel(KV + k * n, kv, n));
    }
    kd_ntk_op_free(op);
    free(J);
    free(Ke);
    kd_tensor_release(&x);
    kd_mlp_free(m);
}

Test(diagnostics, kernel_is_symmetric_and_positive_semidefinite)
{
    size_t sizes[] = {6, 8, 4}, n = 20; /* n > |theta| / C is not needed: K = J J^T is PSD anyway */
    struct kd_error err = {0};
    struct kd_mlp *m = tiny(sizes, 3, KD_ACT_RELU, 8);
    struct kd_tensor x = inputs(n, 6, 9);
    double K[400], A[400], w[20];
    cr_assert_eq(kd_ntk_kernel(m, &x, NULL, K, NULL, &err), KD_OK, "%s", err.msg);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            cr_assert(K[i * n + j] == K[j * n + i], "K[%zu][%zu] != K[%zu][%zu]", i, j, j, i);
    memcpy(A, K, sizeof A);
    cr_assert_eq(kd_dsyev(n, A, n, w), 0);
    cr_log_info("NTK eigenvalues: smallest %.3g, largest %.3g", w[0], w[n - 1]);
    cr_assert(w[0] >= -1e-10 * w[n - 1], "smallest eigenvalue %g (largest %g)", w[0], w[n - 1]);
    kd_tensor_release(&x);
    kd_mlp_free(m);
}

/* ------------------------------------------------------------- complexity */

Test(diagnostics, complexity_of_kernel_eigenvectors_is_worked_by_hand)
{
    /* K = [[2, 1], [1, 2]]: eigenvalues 3 ([1, 1]) and 1 ([1, -1]). */
    struct kd_error err = {0};
    double K[4] = {2, 1, 1, 2}, y1[2] = {1, 1}, y2[4] = {1, 1, 1, -1};
    struct kd_targets t[2];
    memset(t, 0, sizeof t);
    cr_assert_eq(kd_targets_copy(&t[0], "v1", y1, 2, 1, &err), KD_OK);
    cr_assert_eq(kd_targets_copy(&t[1], "v1 and v2", y2, 2, 2, &err), KD_OK);
    struct kd_complexity_config cfg;
    kd_complexity_config_init(&cfg);
    cfg.eps = 0.5;
    struct kd_complexity res[2];
    cr_assert_eq(kd_complexity_cholesky(K, 2, t, 2, &cfg, res, &err), KD_OK, "%s", err.msg);
    /* y^T (K + eps)^-1 y = |y|^2 / (lambda + eps) along an eigenvector */
    cr_assert(fabs(res[0].complexity - 2.0 / 3.5) < 1e-14, "%.17g", res[0].complexity);
    cr_assert(fabs(res[1].complexity - (2.0 / 3.5 + 2.0 / 1.5)) < 1e-14, "%.17g", res[1].complexity);
    cr_assert(fabs(res[0].trace_k - 4.0) < 1e-15);
    cr_assert(fabs(res[0].adjusted - sqrt(2.0 / 3.5 * 4.0) / 2.0) < 1e-14);
    cr_assert_str_eq(res[1].targets, "v1 and v2");
    cr_assert_eq(res[1].method, KD_SOLVE_CHOLESKY);
    cr_assert(res[1].residual < 1e-14 && res[1].eps == 0.5 && res[1].n == 2 && res[1].C == 2);
    /* centring subtracts 1/C = 1/2: [0.5, 0.5, 0.5, -1.5] -> columns [.5, .5] and [.5, -1.5] */
    cfg.centre = 1;
    cr_assert_eq(kd_complexity_cholesky(K, 2, &t[1], 1, &cfg, res, &err), KD_OK, "%s", err.msg);
    /* [.5,.5] = .5 v1; [.5,-1.5] = -.5 v1 + v2: |.|^2 along v1 = .5 each, v2 part 2 */
    double want = 0.5 / 3.5 + (0.5 / 3.5 + 2.0 / 1.5);
    cr_assert(fabs(res[0].complexity - want) < 1e-14, "%.17g vs %.17g", res[0].complexity, want);
    cr_assert(res[0].centred);
    kd_targets_release(&t[0]);
    kd_targets_release(&t[1]);
}

Test(diagnostics, cg_agrees_with_cholesky)
{
    size_t sizes[] = {6, 10, 8, 4}, n = 40;
    struct kd_error err = {0};
    struct kd_mlp *m = tiny(sizes, 4, KD_ACT_TANH, 10);
    struct kd_tensor x = inputs(n, 6, 11);
    int32_t labels[40];
    for (size_t i = 0; i < n; i++)
        labels[i] = (int32_t)(i % 4);
    float logits[160];
    struct kd_rng r;
    kd_rng_seed(&r, 12);
    for (size_t i = 0; i < 160; i++)
        logits[i] = 2.0f * (float)kd_rng_normal(&r);
    struct kd_targets t[2];
    memset(t, 0, sizeof t);
    cr_assert_eq(kd_targets_onehot(&t[0], "gold", labels, n, 4, &err), KD_OK);
    cr_assert_eq(kd_targets_softmax(&t[1], "teacher T=2", logits, n, 4, 2.0, &err), KD_OK);
    struct kd_complexity_config cfg;
    kd_complexity_config_init(&cfg);
    cfg.eps = 1e-2;
    cfg.cg_tol = 1e-10;
    struct kd_complexity ch[2], cg[2];
    cfg.method = KD_SOLVE_CHOLESKY;
    cr_assert_eq(kd_complexity_compute(m, &x, t, 2, &cfg, ch, &err), KD_OK, "%s", err.msg);
    cfg.method = KD_SOLVE_CG;
    cr_assert_eq(kd_complexity_compute(m, &x, t, 2, &cfg, cg, &err), KD_OK, "%s", err.msg);
    for (int k = 0; k < 2; k++) {
        double rel = fabs(cg[k].complexity - ch[k].complexity) / ch[k].complexity;
        cr_log_info("%s: cholesky %.12g, cg %.12g (%zu iterations), rel diff %.3g", ch[k].targets, ch[k].complexity,
                    cg[k].complexity, cg[k].iterations, rel);
        cr_assert(rel < 1e-8, "%s: cholesky %.17g, cg %.17g", ch[k].targets, ch[k].complexity, cg[k].complexity);
        cr_assert(fabs(cg[k].trace_k - ch[k].trace_k) < 1e-10 * ch[k].trace_k);
        cr_assert(cg[k].converged && cg[k].method == KD_SOLVE_CG && cg[k].iterations > 0);
        cr_assert(ch[k].method == KD_SOLVE_CHOLESKY && ch[k].residual < 1e-8);
    }
    kd_targets_release(&t[0]);
    kd_targets_release(&t[1]);
    kd_tensor_release(&x);
    kd_mlp_free(m);
}

Test(diagnostics, softmax_targets_sum_to_one_and_flatten_with_temperature)
{
    struct kd_error err = {0};
    float z[3] = {2.0f, 0.0f, -1.0f};
    struct kd_targets a = {0}, b = {0};
    cr_assert_eq(kd_targets_softmax(&a, "T=1", z, 1, 3, 1.0, &err), KD_OK);
    cr_assert_eq(kd_targets_softmax(&b, "T=100", z, 1, 3, 100.0, &err), KD_OK);
    cr_assert(fabs(a.y[0] + a.y[1] + a.y[2] - 1.0) < 1e-15);
    cr_assert(fabs(a.y[0] - exp(2.0) / (exp(2.0) + 1.0 + exp(-1.0))) < 1e-15);
    cr_assert(fabs(b.y[0] - 1.0 / 3.0) < 0.02 && fabs(b.y[2] - 1.0 / 3.0) < 0.02);
    kd_targets_release(&a);
    kd_targets_release(&b);
    kd_targets_release(NULL);
}

/* ------------------------------------------------------------- bad inputs */

Test(diagnostics, bad_inputs_give_clear_messages)
{
    struct kd_error err = {0};
    size_t sizes[] = {3, 4, 2};
    struct kd_mlp *m = tiny(sizes, 3, KD_ACT_RELU, 13);
    struct kd_tensor x = inputs(2, 5, 14), empty = {0};
    empty.cols = 3;
    double K[16];
    cr_assert_eq(kd_ntk_kernel(m, &x, NULL, K, NULL, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "the network takes 3 features, the inputs have 5");
    cr_assert_eq(kd_ntk_kernel(m, &empty, NULL, K, NULL, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "no inputs: the NTK needs at least one example (n = 0)");
    struct kd_ntk_op *op = NULL;
    cr_assert_eq(kd_ntk_op_new(m, &empty, 0, &op, &err), KD_ERR_ARG);
    cr_assert_null(op);

    int32_t bad[2] = {0, 2};
    struct kd_targets t = {0};
    cr_assert_eq(kd_targets_onehot(&t, "gold", bad, 2, 2, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "targets 'gold': row 2 has label 2, outside 0 to 1");
    float z[2] = {0, 1};
    cr_assert_eq(kd_targets_softmax(&t, "teacher", z, 1, 2, 0.0, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "targets 'teacher': the temperature must be > 0, got 0");

    /* a singular kernel (rank one) with eps = 0 */
    double ones[4] = {1, 1, 1, 1}, y[2] = {1, 0};
    cr_assert_eq(kd_targets_copy(&t, "y", y, 2, 1, &err), KD_OK);
    struct kd_complexity_config cfg;
    kd_complexity_config_init(&cfg);
    struct kd_complexity res;
    cfg.eps = 0.0;
    cr_assert_eq(kd_complexity_cholesky(ones, 2, &t, 1, &cfg, &res, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "K + eps I is not positive definite (eps = 0; Cholesky failed at order 2 of 2): the "
                              "kernel is singular or nearly so; use a larger eps (e.g. 1e-3 times the mean of diag K, "
                              "0.001)");
    cfg.eps = -1.0;
    cr_assert_eq(kd_complexity_cholesky(ones, 2, &t, 1, &cfg, &res, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "eps must be >= 0, got -1");
    cfg.eps = 1e-3;
    cr_assert_eq(kd_complexity_cholesky(ones, 3, &t, 1, &cfg, &res, &err), KD_ERR_SHAPE);
    cr_assert_str_eq(err.msg, "targets 'y' have 2 rows, but the kernel is over 3 inputs");
    cr_assert_eq(kd_complexity_cholesky(ones, 0, &t, 1, &cfg, &res, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "no inputs: supervision complexity needs n >= 1");

    struct kd_tensor x2 = inputs(2, 3, 15);
    cr_assert_eq(kd_ntk_op_new(m, &x2, 0, &op, &err), KD_OK, "%s", err.msg);
    cfg.eps = 0.0;
    cr_assert_eq(kd_complexity_cg(op, &t, 1, &cfg, &res, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "conjugate gradients need eps > 0 (K itself may be singular), got eps = 0");
    kd_ntk_op_free(op);

    enum kd_solve_method meth;
    cr_assert_eq(kd_solve_method_parse("lu", &meth, &err), KD_ERR_ARG);
    cr_assert_str_eq(err.msg, "unknown solve method 'lu' (expected auto, cholesky or cg)");
    cr_assert_eq(kd_solve_method_parse("cg", &meth, &err), KD_OK);
    cr_assert_eq(meth, KD_SOLVE_CG);
    kd_targets_release(&t);
    kd_tensor_release(&x);
    kd_tensor_release(&x2);
    kd_mlp_free(m);
}

Test(diagnostics, core_lapack_wrappers_factor_solve_and_find_eigenvalues_row_major)
{
    /* A = [[4, 2], [2, 3]] = L L^T with L = [[2, 0], [1, sqrt 2]]; eigenvalues (7 -+ sqrt 17) / 2 */
    double A[4] = {4, 2, 2, 3}, B[4] = {2, 1, 0, 1}, w[2];
    cr_assert_eq(kd_dpotrf(2, A, 2), 0);
    cr_assert(fabs(A[0] - 2) < 1e-15 && fabs(A[2] - 1) < 1e-15 && fabs(A[3] - sqrt(2.0)) < 1e-15,
              "L = [[%g, .], [%g, %g]]", A[0], A[2], A[3]);
    cr_assert_eq(kd_dpotrs(2, 2, A, 2, B, 2), 0); /* right-hand sides as rows: [2, 1] and [0, 1] */
    cr_assert(fabs(B[0] - 0.5) < 1e-15 && fabs(B[1]) < 1e-15, "x1 = [%g, %g]", B[0], B[1]);
    cr_assert(fabs(B[2] + 0.25) < 1e-15 && fabs(B[3] - 0.5) < 1e-15, "x2 = [%g, %g]", B[2], B[3]);
    double S[4] = {4, 2, 2, 3}, sing[4] = {1, 1, 1, 1};
    cr_assert_eq(kd_dsyev(2, S, 2, w), 0);
    cr_assert(fabs(w[0] - (7 - sqrt(17.0)) / 2) < 1e-14 && fabs(w[1] - (7 + sqrt(17.0)) / 2) < 1e-14);
    cr_assert_eq(kd_dpotrf(2, sing, 2), 2); /* singular: the order-2 minor fails */
}

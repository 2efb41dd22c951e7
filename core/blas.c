/* The one file that calls BLAS (OpenBLAS's CBLAS). */
#include "core/kd_core.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>

void kd_sgemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
              const float *A, size_t lda, const float *B, size_t ldb, float beta,
              float *C, size_t ldc)
{
    if (M == 0 || N == 0)
        return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C,
                (blasint)ldc);
}

void kd_dgemm(int trans_a, int trans_b, size_t M, size_t N, size_t K, double alpha,
              const double *A, size_t lda, const double *B, size_t ldb, double beta,
              double *C, size_t ldc)
{
    if (M == 0 || N == 0)
        return;
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C,
                (blasint)ldc);
}

void kd_sgemm_ref(int trans_a, int trans_b, size_t M, size_t N, size_t K, float alpha,
                  const float *A, size_t lda, const float *B, size_t ldb, float beta,
                  float *C, size_t ldc)
{
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            double acc = 0.0;
            for (size_t k = 0; k < K; k++) {
                float a = trans_a ? A[k * lda + i] : A[i * lda + k];
                float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
                acc += (double)a * (double)b;
            }
            /* beta == 0 must ignore C, as BLAS does (C may hold NaN). */
            double c = beta == 0.0f ? 0.0 : (double)beta * (double)C[i * ldc + j];
            C[i * ldc + j] = (float)((double)alpha * acc + c);
        }
}

kd_status kd_matmul(const struct kd_tensor *A, int trans_a, const struct kd_tensor *B, int trans_b,
                    float alpha, float beta, struct kd_tensor *C, struct kd_error *err)
{
    size_t M = trans_a ? A->cols : A->rows, K = trans_a ? A->rows : A->cols;
    size_t Kb = trans_b ? B->cols : B->rows, N = trans_b ? B->rows : B->cols;
    if (K != Kb || C->rows != M || C->cols != N)
        return kd_error_set(err, KD_ERR_SHAPE,
                            "matmul shapes do not fit: (%zu, %zu)%s x (%zu, %zu)%s -> (%zu, %zu)", A->rows,
                            A->cols, trans_a ? "^T" : "", B->rows, B->cols, trans_b ? "^T" : "", C->rows,
                            C->cols);
    kd_sgemm(trans_a, trans_b, M, N, K, alpha, A->data, A->cols, B->data, B->cols, beta, C->data, C->cols);
    return KD_OK;
}

void kd_saxpy(size_t n, float alpha, const float *x, float *y)
{
    cblas_saxpy((blasint)n, alpha, x, 1, y, 1);
}

double kd_sdot(size_t n, const float *x, const float *y)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++)
        acc += (double)x[i] * (double)y[i];
    return acc;
}

/* kd_blas_hold_single's count of holds and the thread count to restore */
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static int hold_depth, hold_saved;

void kd_blas_set_threads(int n)
{
    if (n <= 0)
        return;
    pthread_mutex_lock(&hold_mu);
    if (hold_depth)
        hold_saved = n;
    else
        openblas_set_num_threads(n);
    pthread_mutex_unlock(&hold_mu);
}

int kd_blas_get_threads(void)
{
    pthread_mutex_lock(&hold_mu);
    int n = hold_depth ? hold_saved : openblas_get_num_threads();
    pthread_mutex_unlock(&hold_mu);
    return n;
}

void kd_blas_hold_single(void)
{
    pthread_mutex_lock(&hold_mu);
    if (hold_depth++ == 0) {
        hold_saved = openblas_get_num_threads();
        openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&hold_mu);
}

void kd_blas_release_single(void)
{
    pthread_mutex_lock(&hold_mu);
    if (hold_depth > 0 && --hold_depth == 0)
        openblas_set_num_threads(hold_saved);
    pthread_mutex_unlock(&hold_mu);
}

void kd_blas_init_threads(int n)
{
    if (n <= 0) {
        const char *env = getenv("KD_THREADS");
        if (env && *env)
            n = atoi(env);
    }
    kd_blas_set_threads(n);
}

/* ------------------------------------------------------------------ LAPACK */

/* OpenBLAS bundles LAPACK and exports its Fortran symbols; Debian ships no
 * LAPACKE header with it, so the three routines kd needs are declared here.
 * The trailing size_t arguments are the hidden lengths of the character
 * arguments that gfortran-compiled routines expect. Fortran is column-major:
 * a row-major symmetric matrix is the same matrix, and its row-major lower
 * triangle is the column-major upper one, hence uplo 'U' below. */
extern void dpotrf_(const char *uplo, const blasint *n, double *a, const blasint *lda, blasint *info, size_t);
extern void dpotrs_(const char *uplo, const blasint *n, const blasint *nrhs, const double *a, const blasint *lda,
                    double *b, const blasint *ldb, blasint *info, size_t);
extern void dsyev_(const char *jobz, const char *uplo, const blasint *n, double *a, const blasint *lda, double *w,
                   double *work, const blasint *lwork, blasint *info, size_t, size_t);

int kd_dpotrf(size_t n, double *A, size_t lda)
{
    if (n == 0)
        return 0;
    blasint bn = (blasint)n, bl = (blasint)lda, info = 0;
    dpotrf_("U", &bn, A, &bl, &info, 1);
    return (int)info;
}

int kd_dpotrs(size_t n, size_t nrhs, const double *L, size_t lda, double *B, size_t ldb)
{
    if (n == 0 || nrhs == 0)
        return 0;
    blasint bn = (blasint)n, br = (blasint)nrhs, bl = (blasint)lda, bb = (blasint)ldb, info = 0;
    dpotrs_("U", &bn, &br, L, &bl, B, &bb, &info, 1);
    return (int)info;
}

int kd_dsyev(size_t n, double *A, size_t lda, double *w)
{
    if (n == 0)
        return 0;
    blasint bn = (blasint)n, bl = (blasint)lda, info = 0, lwork = -1;
    double query = 0.0;
    dsyev_("N", "U", &bn, A, &bl, w, &query, &lwork, &info, 1, 1); /* workspace size query */
    if (info)
        return (int)info;
    lwork = (blasint)query;
    double *work = kd_alloc((size_t)lwork, sizeof *work);
    if (!work)
        return -1000;
    dsyev_("N", "U", &bn, A, &bl, w, work, &lwork, &info, 1, 1);
    kd_free(work);
    return (int)info;
}

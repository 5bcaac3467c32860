#pragma once
// The LAPACK and BLAS routines the kernels call (Fortran symbols of the system's LAPACK; with
// Debian's OpenBLAS alternative they run on OpenBLAS's OpenMP pool, whose size follows
// at::set_num_threads: ThreadCount). Declared only in builds with RECVAE_HAVE_LAPACK.
#ifdef RECVAE_HAVE_LAPACK
extern "C" {
/// Cholesky factorisation of a double SPD matrix.
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);
/// Inverse of a double SPD matrix from its Cholesky factor.
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info);
/// Cholesky factorisation of a float SPD matrix.
void spotrf_(const char* uplo, const int* n, float* a, const int* lda, int* info);
/// Inverse of a float SPD matrix from its Cholesky factor.
void spotri_(const char* uplo, const int* n, float* a, const int* lda, int* info);
/// Solves with a float Cholesky factor.
void spotrs_(const char* uplo, const int* n, const int* nrhs, const float* a, const int* lda, float* b, const int* ldb,
             int* info);
/// Float symmetric rank-k update C = alpha A^T A + beta C (or A A^T).
void ssyrk_(const char* uplo, const char* trans, const int* n, const int* k, const float* alpha, const float* a,
            const int* lda, const float* beta, float* c, const int* ldc);
}
#endif

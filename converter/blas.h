// The quantizer's BLAS calls, behind small wrappers with row-major [rows][cols] arrays (OpenBLAS,
// which picks its kernels for the CPU at run time; Debian's reference libblas is far slower).
#pragma once

#include <cstdint>
#include <vector>

namespace trit::blas {

// c[m][n] = a[m][k] * b[n][k]^T (each row of b is one output's weights): outputs of a layer.
void rows_times_weights(const float* a, int64_t m, int64_t k, const float* b, int64_t n, float* c);
// c[k][n] = a[m][k]^T * b[m][n]: inputs against targets (X^T T).
void inputs_times_targets(const float* a, int64_t m, int64_t k, const float* b, int64_t n, float* c);
// H = a^T a in double ([k][k], both triangles), a [m][k] floats: the Gram matrix.
std::vector<double> gram(const float* a, int64_t m, int64_t k);
// While one lives, OpenBLAS runs in the calling thread: for calls made from inside oneTBB's
// tasks, beside which OpenBLAS's own threads would spin. Restores the thread count after.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas();
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int saved_;
};

// c[m][n] += alpha * a[m][k] * b[k][n], doubles with leading dimensions lda, ldb, ldc.
void dgemm_add(int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b, int64_t ldb,
               double* c, int64_t ldc);

}  // namespace trit::blas

// The quantizer's BLAS calls, behind small wrappers with row-major [rows][cols] arrays (OpenBLAS,
// which picks its kernels for the CPU at run time; Debian's reference libblas is far slower).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "trit/types.h"

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

// C = op(A) op(B) + beta C (row-major; op transposes when asked), as single-threaded sgemm calls
// (the caller holds a SingleThreadedBlas) on blocks of C's columns (or of its rows when it has
// few columns) over oneTBB's threads. The blocks are fixed by the shapes, never by the thread
// count, so every element of C is computed the same way whatever the threads. Every extent
// below 2^31 (sgemm takes int).
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc);

// The output pixels [ox0, ox1) whose tap kx reads inside the input along x.
std::pair<int32_t, int32_t> inside(int32_t out_w, int32_t in_w, int32_t stride, int32_t pad, int32_t kx);

// The columns of one image x [C][H][W]: row r = (c, ky, kx) holds the OH * OW taps of the output
// pixels, at cols + r * stride (padded taps 0).
void im2col(Shape3 in, Shape3 out, const Window& w, const float* x, float* cols, int64_t stride);

}  // namespace trit::blas

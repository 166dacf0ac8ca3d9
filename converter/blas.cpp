#include "blas.h"

#include <cblas.h>

namespace trit::blas {

void rows_times_weights(const float* a, int64_t m, int64_t k, const float* b, int64_t n, float* c) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              1.0f, a, static_cast<int>(k), b, static_cast<int>(k), 0.0f, c, static_cast<int>(n));
}

void inputs_times_targets(const float* a, int64_t m, int64_t k, const float* b, int64_t n, float* c) {
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(k), static_cast<int>(n), static_cast<int>(m),
              1.0f, a, static_cast<int>(k), b, static_cast<int>(n), 0.0f, c, static_cast<int>(n));
}

std::vector<double> gram(const float* a, int64_t m, int64_t k) {
  std::vector<float> hf(static_cast<size_t>(k * k), 0.0f);
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(k), static_cast<int>(m), 1.0f, a,
              static_cast<int>(k), 0.0f, hf.data(), static_cast<int>(k));
  std::vector<double> h(hf.size());
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i; j < k; ++j) h[i * k + j] = h[j * k + i] = hf[i * k + j];
  return h;
}

SingleThreadedBlas::SingleThreadedBlas() : saved_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
SingleThreadedBlas::~SingleThreadedBlas() { openblas_set_num_threads(saved_); }

void dgemm_add(int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b, int64_t ldb,
               double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), 1.0, c, static_cast<int>(ldc));
}

}  // namespace trit::blas

// Adam (Kingma and Ba, arXiv:1412.6980): the optimizer of block reconstruction. Moments in
// double; the parameters it updates are floats.
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

namespace trit::recon {

class Adam {
 public:
  Adam(size_t size, double lr, double b1 = 0.9, double b2 = 0.999, double eps = 1e-8)
      : lr_(lr), b1_(b1), b2_(b2), eps_(eps), m_(size, 0.0), v_(size, 0.0) {}

  // One step on params with gradients g (the same size as the optimizer).
  void step(std::span<float> params, std::span<const float> g) {
    ++t_;
    const double c1 = 1 - std::pow(b1_, double(t_)), c2 = 1 - std::pow(b2_, double(t_));
    double* m = m_.data();
    double* v = v_.data();
    float* p = params.data();
    const float* gp = g.data();
    const double b1 = b1_, b2 = b2_, lr = lr_, eps = eps_;
    const size_t n = params.size();
    for (size_t j = 0; j < n; ++j) {  // vectorizes where the unit is built with -fno-math-errno
      m[j] = b1 * m[j] + (1 - b1) * gp[j];
      v[j] = b2 * v[j] + (1 - b2) * double(gp[j]) * gp[j];
      p[j] -= static_cast<float>(lr * (m[j] / c1) / (std::sqrt(v[j] / c2) + eps));
    }
  }

 private:
  double lr_, b1_, b2_, eps_;
  std::vector<double> m_, v_;
  int64_t t_ = 0;
};

}  // namespace trit::recon

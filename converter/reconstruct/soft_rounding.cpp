#include "soft_rounding.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "trit/error.h"
#include "trit/weight_codes.h"

namespace trit::recon {
namespace {

constexpr double kZeta = 1.1, kGamma = -0.1;
// V where h(V) = 0.02: sigmoid(V) = 0.1.
const float kStart = static_cast<float>(std::log(0.1 / 0.9));
// Beyond +-kFlat h is clamped: sigmoid(2.45) = 0.9206 > 11/12, where (zeta - gamma) sg + gamma
// reaches 1 (and 1 - 0.9206 < 1/12 below, where it reaches 0): h is exactly 0 or 1 and h' = 0.
constexpr float kFlat = 2.45f;

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace

SoftRounding::SoftRounding(const Graph& g, const Node& n, const std::vector<float>& given) {
  const Weights& w = n.weights;
  encoding_ = w.encoding;
  if (encoding_ == WeightEncoding::Float32) fail("cannot learn the rounding of layer '{}': it is float32", n.name);
  o_ = w.shape[0];
  k_ = int64_t{w.shape[1]} * w.shape[2] * w.shape[3];
  max_scale_ = max_cluster_scale(encoding_);
  base_ = unpack_codes(w, w.codes.as<uint8_t>(), n.name);
  const auto scales = w.scales.as<uint8_t>();
  const auto exps = w.scale_exponents.as<int8_t>();
  exponents_.assign(exps.begin(), exps.end());
  alpha0_.resize(scales.size());
  cluster_.resize(base_.size());
  step_.resize(base_.size());
  v_.assign(base_.size(), kStart);
  s_.assign(scales.size(), 0.0f);
  const int32_t top = max_code(encoding_);
  const auto [o_n, i_n, kh, kw] = w.shape;
  for (int32_t o = 0; o < o_n; ++o)
    for (int32_t i = 0; i < i_n; ++i)
      for (int32_t ky = 0; ky < kh; ++ky)
        for (int32_t kx = 0; kx < kw; ++kx) {
          const int64_t j = ((int64_t{o} * i_n + i) * kh + ky) * kw + kx;
          const int64_t c = cluster_of(w, o, i, ky, kx);
          cluster_[j] = static_cast<int32_t>(c);
          alpha0_[c] = std::ldexp(double(scales[c]), -exps[o]);
          const double target = given[j] / alpha0_[c];
          int32_t d = target >= base_[j] ? 1 : -1;
          if (base_[j] + d > top || base_[j] + d < -top) d = -d;
          step_[j] = static_cast<int8_t>(d);
        }
  const auto b = n.bias.as<int32_t>();
  const int32_t f_in = g.tensors[n.inputs[0]].exponent;
  bias_.resize(o_);
  for (int32_t o = 0; o < o_; ++o) bias_[o] = static_cast<float>(std::ldexp(double(b[o]), -(f_in + exps[o])));
}

double SoftRounding::h(float v) const { return std::clamp(sigmoid(v) * (kZeta - kGamma) + kGamma, 0.0, 1.0); }

double SoftRounding::alpha(int64_t c) const { return alpha0_[c] * std::exp(double(s_[c])); }

void SoftRounding::weights(bool hard, float* w) {
  const auto n = static_cast<int64_t>(base_.size());
  if (hard) {
    for (int64_t j = 0; j < n; ++j)
      w[j] = static_cast<float>(alpha(cluster_[j]) * (base_[j] + (h(v_[j]) >= 0.5 ? step_[j] : 0)));
    return;
  }
  h_.resize(base_.size());
  dh_.resize(base_.size());
  std::vector<double> a(s_.size());
  for (size_t c = 0; c < s_.size(); ++c) a[c] = alpha(static_cast<int64_t>(c));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 8192), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t j = r.begin(); j < r.end(); ++j) {
      if (std::abs(v_[j]) > kFlat) {  // h clamped to 0 or 1, h' = 0: what the exact sums give, without exp
        const bool one = v_[j] > 0;
        h_[j] = one ? 1.0f : 0.0f;
        dh_[j] = 0.0f;
        w[j] = static_cast<float>(a[cluster_[j]] * (base_[j] + (one ? double(step_[j]) : 0.0)));
        continue;
      }
      const double sg = sigmoid(v_[j]);
      const double raw = sg * (kZeta - kGamma) + kGamma;
      h_[j] = static_cast<float>(std::clamp(raw, 0.0, 1.0));
      dh_[j] = raw > 0 && raw < 1 ? static_cast<float>((kZeta - kGamma) * sg * (1 - sg)) : 0.0f;
      w[j] = static_cast<float>(a[cluster_[j]] * (base_[j] + step_[j] * double(h_[j])));
    }
  });
}

void SoftRounding::backward(const float* dw, float* dv, float* ds) const {
  const auto n = static_cast<int64_t>(base_.size());
  std::vector<double> a(s_.size());
  for (size_t c = 0; c < s_.size(); ++c) a[c] = alpha(static_cast<int64_t>(c));
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 8192), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t j = r.begin(); j < r.end(); ++j) dv[j] = static_cast<float>(dw[j] * a[cluster_[j]] * step_[j] * dh_[j]);
  });
  // dW/ds = W, summed per cluster (in order: the same sums whatever the threads).
  std::vector<double> ds_sum(s_.size(), 0.0);
  for (int64_t j = 0; j < n; ++j) ds_sum[cluster_[j]] += dw[j] * a[cluster_[j]] * (base_[j] + step_[j] * double(h_[j]));
  for (size_t c = 0; c < s_.size(); ++c) ds[c] = static_cast<float>(ds_sum[c]);
}

double SoftRounding::regularizer(double beta, double lambda, float* dv) const {
  const auto n = static_cast<int64_t>(base_.size());
  std::vector<double> part(static_cast<size_t>((n + 8191) / 8192), 0.0);
  tbb::parallel_for(int64_t{0}, static_cast<int64_t>(part.size()), [&](int64_t b) {
    double total = 0;
    for (int64_t j = b * 8192; j < std::min(n, (b + 1) * 8192); ++j) {
      const double u = 2.0 * h_[j] - 1, au = std::abs(u);
      if (au == 1 && dh_[j] == 0) continue;  // clamped to 0 or 1: 1 - 1^beta = 0, no gradient
      const double p = au > 0 ? std::exp2(beta * std::log2(au)) : 0.0;  // |2h - 1|^beta
      total += 1 - p;
      if (dh_[j] > 0 && au > 0) {
        // d/dh (1 - |2h - 1|^beta) = -2 beta |2h - 1|^(beta - 1) sign(2h - 1)
        const double dreg = -2 * beta * (p / au) * (u > 0 ? 1 : -1);
        dv[j] += static_cast<float>(lambda * dreg * dh_[j]);
      }
    }
    part[b] = total;
  });
  double total = 0;
  for (double x : part) total += x;  // block by block, in order
  return lambda * total;
}

double SoftRounding::flipped() const {
  int64_t n = 0;
  for (float v : v_) n += h(v) >= 0.5;
  return base_.empty() ? 0.0 : double(n) / double(base_.size());
}

quant::QuantizedLayer SoftRounding::result() const {
  quant::QuantizedLayer q;
  q.codes.resize(base_.size());
  for (size_t j = 0; j < base_.size(); ++j) q.codes[j] = static_cast<int8_t>(base_[j] + (h(v_[j]) >= 0.5 ? step_[j] : 0));
  q.exponents = exponents_;
  q.scales.resize(s_.size());
  for (size_t c = 0; c < s_.size(); ++c) {
    // The cluster's exponent: that of its output channel (clusters are numbered channel-major).
    const int64_t o = static_cast<int64_t>(c) * o_ / static_cast<int64_t>(s_.size());
    const double m = std::nearbyint(std::ldexp(alpha(static_cast<int64_t>(c)), exponents_[o]));
    q.scales[c] = static_cast<uint8_t>(std::clamp(m, 1.0, double(max_scale_)));
  }
  return q;
}

}  // namespace trit::recon

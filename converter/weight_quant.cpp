#include "weight_quant.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "blas.h"
#include "trit/error.h"

namespace trit::quant {
namespace {

// Columns in the order they are quantized, and the clusters of that order (the same for every
// row). Channels clusters are not contiguous in [I][KH][KW] order, so their columns are visited
// tap-major: position j = tap * I + i holds column i * taps + tap.
struct Layout {
  int32_t o = 0, k = 0;
  std::vector<int32_t> perm;                     // position -> column
  std::vector<std::pair<int32_t, int32_t>> clusters;  // [begin, end) positions
};

Layout layout(const std::array<int32_t, 4>& shape, const LayerSpec& spec) {
  const auto [o, in, kh, kw] = shape;
  const int32_t taps = kh * kw;
  Layout l;
  l.o = o;
  l.k = in * taps;
  l.perm.resize(l.k);
  if (spec.encoding == WeightEncoding::Int8PerChannel) {
    std::iota(l.perm.begin(), l.perm.end(), 0);
    l.clusters.push_back({0, l.k});
    return l;
  }
  const int32_t n = std::clamp(spec.cluster, 1, in);
  if (spec.shape == ClusterShape::Kernels) {
    std::iota(l.perm.begin(), l.perm.end(), 0);
    for (int32_t i0 = 0; i0 < in; i0 += n) l.clusters.push_back({i0 * taps, std::min(i0 + n, in) * taps});
  } else {
    for (int32_t t = 0; t < taps; ++t)
      for (int32_t i = 0; i < in; ++i) l.perm[t * in + i] = i * taps + t;
    for (int32_t t = 0; t < taps; ++t)
      for (int32_t i0 = 0; i0 < in; i0 += n) l.clusters.push_back({t * in + i0, t * in + std::min(i0 + n, in)});
  }
  return l;
}

// The real scale of a cluster's values (before the mantissa is rounded), and its threshold.
TernaryParams cluster_params(std::span<const double> v, const LayerSpec& spec) {
  if (spec.encoding == WeightEncoding::TernaryClustered) return ternary_params(v, spec.threshold);
  double top = 0;
  for (double x : v) top = std::max(top, std::abs(x));
  return {0.0, top / max_code(spec.encoding)};
}

// The quantizer of one cluster, fixed when the cluster starts: integer mantissa, its real value
// m * 2^-e, and the ternary threshold.
struct ClusterQuant {
  int32_t mantissa = 1;
  double scale = 0, delta = 0;
  int32_t code(double x, WeightEncoding e) const {
    if (e == WeightEncoding::TernaryClustered) return std::abs(x) > delta ? (x > 0 ? 1 : -1) : 0;
    const int32_t top = max_code(e);
    return static_cast<int32_t>(std::clamp(std::nearbyint(x / scale), -double(top), double(top)));
  }
};

ClusterQuant make_cluster(std::span<const double> v, const LayerSpec& spec, int32_t exponent) {
  const TernaryParams p = cluster_params(v, spec);
  ClusterQuant q;
  q.mantissa = static_cast<int32_t>(
      std::clamp(std::nearbyint(std::ldexp(p.alpha, exponent)), 1.0, double(max_cluster_scale(spec.encoding))));
  q.scale = std::ldexp(double(q.mantissa), -exponent);
  q.delta = p.delta;
  return q;
}

// Per-row exponent: the largest e with max_c alpha_c * 2^e <= the largest mantissa, from the
// weights before any compensation.
std::vector<int8_t> row_exponents(const std::vector<double>& w, const Layout& l, const LayerSpec& spec) {
  std::vector<int8_t> e(l.o);
  std::vector<double> v;
  for (int32_t o = 0; o < l.o; ++o) {
    double top = 0;
    for (const auto& [b, end] : l.clusters) {
      v.assign(w.begin() + int64_t{o} * l.k + b, w.begin() + int64_t{o} * l.k + end);
      top = std::max(top, cluster_params(v, spec).alpha);
    }
    double ex = top > 0 ? std::floor(std::log2(max_cluster_scale(spec.encoding) / top)) : 0.0;
    if (!spec.exponent_cap.empty()) ex = std::min(ex, double(spec.exponent_cap[o]));
    e[o] = static_cast<int8_t>(std::clamp(ex, -32.0, 32.0));
  }
  return e;
}

// The shared loop of both methods. w: [O][K] in position order. u: upper Cholesky factor of
// H^-1 in position order (K x K), or empty for round to nearest.
QuantizedLayer quantize_positions(std::vector<double> w, const std::vector<float>& original, const Layout& l,
                                  const LayerSpec& spec, const std::vector<double>& u) {
  const int32_t o_n = l.o, k = l.k;
  const auto cpr = static_cast<int32_t>(l.clusters.size());
  QuantizedLayer q;
  q.exponents = row_exponents(w, l, spec);
  q.scales.assign(static_cast<size_t>(o_n) * cpr, 1);
  std::vector<int8_t> codes(static_cast<size_t>(o_n) * k);
  std::vector<double> deq(static_cast<size_t>(o_n) * k);

  // Blocks of whole clusters, at least 128 columns wide: updates inside a block are rank-1, the
  // rest of the matrix is updated once per block (one matrix product).
  std::vector<std::pair<int32_t, int32_t>> blocks;  // cluster index ranges
  for (int32_t c = 0; c < cpr;) {
    int32_t e = c;
    while (e < cpr && (e == c || l.clusters[e - 1].second - l.clusters[c].first < 128)) ++e;
    blocks.push_back({c, e});
    c = e;
  }
  std::vector<ClusterQuant> cq(o_n);
  std::vector<double> err, v;
  for (const auto& [c0, c1] : blocks) {
    const int32_t b0 = l.clusters[c0].first, b1 = l.clusters[c1 - 1].second, width = b1 - b0;
    err.assign(static_cast<size_t>(o_n) * width, 0.0);
    for (int32_t c = c0; c < c1; ++c) {
      const auto [cb, ce] = l.clusters[c];
      for (int32_t o = 0; o < o_n; ++o) {
        v.assign(w.begin() + int64_t{o} * k + cb, w.begin() + int64_t{o} * k + ce);
        cq[o] = make_cluster(v, spec, q.exponents[o]);
        q.scales[static_cast<size_t>(o) * cpr + c] = static_cast<uint8_t>(cq[o].mantissa);
      }
      for (int32_t j = cb; j < ce; ++j)
        for (int32_t o = 0; o < o_n; ++o) {
          double* row = w.data() + int64_t{o} * k;
          const int32_t code = cq[o].code(row[j], spec.encoding);
          const double value = code * cq[o].scale;
          codes[int64_t{o} * k + j] = static_cast<int8_t>(code);
          deq[int64_t{o} * k + j] = value;
          if (u.empty()) continue;
          const double e = (row[j] - value) / u[int64_t{j} * k + j];
          err[int64_t{o} * width + (j - b0)] = e;
          const double* urow = u.data() + int64_t{j} * k;
          for (int32_t t = j + 1; t < b1; ++t) row[t] -= e * urow[t];
        }
    }
    // w[:, b1:] -= err * u[b0:b1, b1:]
    if (!u.empty() && b1 < k)
      blas::dgemm_add(o_n, k - b1, width, -1.0, err.data(), width, u.data() + int64_t{b0} * k + b1, k, w.data() + b1, k);
  }

  // Back to [I][KH][KW] column order.
  q.codes.resize(codes.size());
  q.dequantized.resize(codes.size());
  double num = 0, den = 0;
  int64_t zeros = 0;
  for (int32_t o = 0; o < o_n; ++o)
    for (int32_t j = 0; j < k; ++j) {
      const int64_t dst = int64_t{o} * k + l.perm[j], src = int64_t{o} * k + j;
      q.codes[dst] = codes[src];
      q.dequantized[dst] = static_cast<float>(deq[src]);
      zeros += codes[src] == 0;
      const double d = original[dst] - deq[src];
      num += d * d;
      den += double(original[dst]) * original[dst];
    }
  q.weight_error = den > 0 ? std::sqrt(num / den) : 0.0;
  q.zero_share = double(zeros) / double(codes.size());
  return q;
}

std::vector<double> permuted(std::span<const float> w, const Layout& l) {
  std::vector<double> out(w.size());
  for (int32_t o = 0; o < l.o; ++o)
    for (int32_t j = 0; j < l.k; ++j) out[int64_t{o} * l.k + j] = w[int64_t{o} * l.k + l.perm[j]];
  return out;
}

}  // namespace

TernaryParams ternary_params(std::span<const double> w, Threshold threshold) {
  const size_t n = w.size();
  if (n == 0) return {};
  std::vector<double> a(n);
  for (size_t i = 0; i < n; ++i) a[i] = std::abs(w[i]);
  if (threshold == Threshold::Twn) {
    const double delta = 0.7 * std::accumulate(a.begin(), a.end(), 0.0) / double(n);
    double sum = 0;
    size_t kept = 0;
    for (double x : a)
      if (x > delta) {
        sum += x;
        ++kept;
      }
    return {delta, kept ? sum / double(kept) : 0.0};
  }
  std::sort(a.begin(), a.end(), std::greater<>());
  double s = 0, best = -1, best_s = 0;
  size_t best_k = 0;
  for (size_t k = 1; k <= n; ++k) {
    s += a[k - 1];
    const double score = s * s / double(k);
    if (score > best) {
      best = score;
      best_k = k;
      best_s = s;
    }
  }
  if (best <= 0) return {0.0, 0.0};
  const double next = best_k < n ? a[best_k] : 0.0;
  return {(a[best_k - 1] + next) / 2, best_s / double(best_k)};
}

QuantizedLayer quantize_rtn(std::span<const float> w, const std::array<int32_t, 4>& shape, const LayerSpec& spec) {
  const Layout l = layout(shape, spec);
  return quantize_positions(permuted(w, l), {w.begin(), w.end()}, l, spec, {});
}

QuantizedLayer quantize_gptq(std::span<const float> w, const std::array<int32_t, 4>& shape, const LayerSpec& spec,
                             std::vector<double> h, double damp) {
  const Layout l = layout(shape, spec);
  const int32_t k = l.k;
  if (h.size() != static_cast<size_t>(k) * k) fail("quantize_gptq: H has {} entries for {} columns", h.size(), k);
  std::vector<double> wp = permuted(w, l);
  // H in position order; dead inputs (never non-zero) get weight 0 and a unit diagonal.
  std::vector<double> hp(h.size());
  for (int32_t a = 0; a < k; ++a)
    for (int32_t b = 0; b < k; ++b) hp[int64_t{a} * k + b] = h[int64_t{l.perm[a]} * k + l.perm[b]];
  h.clear();
  double mean_diag = 0;
  for (int32_t a = 0; a < k; ++a) {
    double& d = hp[int64_t{a} * k + a];
    if (d <= 0) {
      d = 1;
      for (int32_t o = 0; o < l.o; ++o) wp[int64_t{o} * k + a] = 0;
    }
    mean_diag += d / k;
  }
  // U: upper Cholesky factor of (H + lambda I)^-1, raising the damping until H is positive
  // definite. H is symmetric, so its row-major array is also its column-major one: LAPACK works
  // column-major on the lower triangle (no transposes), and the lower factor L2 of H^-1 = L2 L2^T,
  // read back row-major, is U = L2^T.
  std::vector<double> u;
  for (double lambda = damp * mean_diag;; lambda *= 10) {
    u = hp;
    for (int32_t a = 0; a < k; ++a) u[int64_t{a} * k + a] += lambda;
    if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', k, u.data(), k) == 0 &&
        LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', k, u.data(), k) == 0 &&
        LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', k, u.data(), k) == 0)
      break;
    if (lambda > 1e6 * (mean_diag + 1)) fail("quantize_gptq: the Gram matrix stays singular after damping");
  }
  // Row-major view: the upper triangle holds U; clear what LAPACK left below it.
  for (int32_t a = 0; a < k; ++a)
    for (int32_t b = 0; b < a; ++b) u[int64_t{a} * k + b] = 0;
  return quantize_positions(std::move(wp), {w.begin(), w.end()}, l, spec, u);
}

std::vector<float> refit_to_inputs(std::span<const float> w, int32_t o, int32_t k, const std::vector<double>& h,
                                   const std::vector<double>& xt, double damp) {
  if (h.size() != size_t(k) * k || xt.size() != size_t(k) * o || w.size() != size_t(o) * k)
    fail("refit_to_inputs: sizes do not match {} x {}", o, k);
  std::vector<double> a = h;
  double mean_diag = 0;
  for (int32_t j = 0; j < k; ++j) mean_diag += std::max(a[int64_t{j} * k + j], 0.0) / k;
  const double lambda = damp * mean_diag + 1e-12;
  std::vector<double> b(xt);  // [K][O]
  for (int32_t j = 0; j < k; ++j) {
    a[int64_t{j} * k + j] += lambda;
    for (int32_t r = 0; r < o; ++r) b[int64_t{j} * o + r] += lambda * w[int64_t{r} * k + j];
  }
  // H + lambda I is positive definite for lambda > 0; should rounding say otherwise, w stays.
  if (LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', k, o, a.data(), k, b.data(), o) != 0)
    return {w.begin(), w.end()};
  std::vector<float> v(w.size());
  for (int32_t r = 0; r < o; ++r)
    for (int32_t j = 0; j < k; ++j) v[int64_t{r} * k + j] = static_cast<float>(b[int64_t{j} * o + r]);
  return v;
}

}  // namespace trit::quant

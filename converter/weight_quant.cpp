#include "weight_quant.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include <tbb/parallel_for.h>

#include "blas.h"
#include "trit/error.h"
#include "vectorize_clones.h"

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

// A layer's quantization in position order (Layout): codes and their values [O][K], the
// mantissas per row and cluster, the exponent per row.
struct Positions {
  std::vector<int8_t> codes;
  std::vector<double> deq;
  std::vector<uint8_t> scales;
  std::vector<int8_t> exponents;
};

// a x = b for a symmetric positive definite n x n (row-major), from x's start value. Up to
// n <= kExactScales: LAPACK's Cholesky solve (dposv), exact; larger (a Channels layout has K / N
// clusters a row): conjugate gradients preconditioned by the diagonal, at most kScaleIterations
// steps, each of which lowers (x - x*)^T a (x - x*). False if a is not positive definite. a is
// left as it was (the Cholesky solve factors a copy of its lower triangle).
constexpr int32_t kExactScales = 256, kScaleIterations = 48;
bool solve_scales(const std::vector<double>& a, const std::vector<double>& b, std::vector<double>& x, int32_t n) {
  auto at = [&](int32_t i, int32_t j) { return a[int64_t{i} * n + j]; };
  if (n <= kExactScales) {
    std::vector<double> factor(a);
    x = b;
    return LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', n, 1, factor.data(), n, x.data(), 1) == 0;
  }
  // In 8 running sums (the compiler vectorizes them; one sum waited on each addition before),
  // combined in a fixed order: the same bits on every machine.
  auto times_a = [&](const std::vector<double>& v, std::vector<double>& out) {
    constexpr int32_t kSums = 8;
    for (int32_t i = 0; i < n; ++i) {
      const double* row = a.data() + int64_t{i} * n;
      double s[kSums] = {};
      int32_t j = 0;
      for (; j + kSums <= n; j += kSums)
        for (int32_t l = 0; l < kSums; ++l) s[l] += row[j + l] * v[j + l];
      double t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
      for (; j < n; ++j) t += row[j] * v[j];
      out[i] = t;
    }
  };
  for (int32_t i = 0; i < n; ++i)
    if (!(at(i, i) > 0)) return false;
  std::vector<double> r(n), z(n), p(n), ap(n);
  times_a(x, ap);
  double rz = 0, first = 0;
  for (int32_t i = 0; i < n; ++i) {
    r[i] = b[i] - ap[i];
    z[i] = r[i] / at(i, i);
    p[i] = z[i];
    rz += r[i] * z[i];
  }
  first = rz;
  for (int32_t it = 0; it < kScaleIterations && rz > 1e-24 * first; ++it) {
    times_a(p, ap);
    double pap = 0;
    for (int32_t i = 0; i < n; ++i) pap += p[i] * ap[i];
    if (!(pap > 0)) return false;
    const double step = rz / pap;
    double next = 0;
    for (int32_t i = 0; i < n; ++i) {
      x[i] += step * p[i];
      r[i] -= step * ap[i];
      z[i] = r[i] / at(i, i);
      next += r[i] * z[i];
    }
    for (int32_t i = 0; i < n; ++i) p[i] = z[i] + (next / rz) * p[i];
    rz = next;
  }
  return true;
}

// The scale refit's rows are taken kRefitLanes at a time, side by side.
constexpr int32_t kRefitLanes = 16;

// For clusters c < m of one row of hd (h, position order), and kRefitLanes rows' codes side by
// side (codes [k][kRefitLanes]): dots[c][r] = sum over the positions j of cluster c of
// codes[j][r] h[j], summed in position order from 0. The lanes are rows, so the compiler
// vectorizes across them without reordering any sum (and with -ffp-contract=off, fuses no
// multiply-add): the same bits on every instruction set.
TRIT_VECTORIZE_CLONES
void cluster_dots(const double* __restrict codes, const double* __restrict h,
                  const std::pair<int32_t, int32_t>* __restrict clusters, int32_t m, double* __restrict dots) {
  // GCC's vector extension: element-wise operations (each lane's sum in its own order), two
  // SSE2 or one AVX2 register a vector.
  typedef double Lanes4 __attribute__((vector_size(32)));
  constexpr int32_t kVectors = kRefitLanes / 4;
  for (int32_t c = 0; c < m; ++c) {
    Lanes4 sum[kVectors] = {};
    for (int32_t j = clusters[c].first; j < clusters[c].second; ++j) {
      const Lanes4 hj = {h[j], h[j], h[j], h[j]};
      for (int32_t v = 0; v < kVectors; ++v) {
        Lanes4 t;
        std::memcpy(&t, codes + int64_t{j} * kRefitLanes + 4 * v, sizeof t);
        sum[v] += t * hj;
      }
    }
    std::memcpy(dots + int64_t{c} * kRefitLanes, sum, sizeof sum);
  }
}

// x^T a x - 2 x^T b: a row's error (w0 - T x)^T hd (w0 - T x) less w0^T hd w0, which the
// comparison below does not need (a = T^T hd T, n x n and symmetric; b = T^T hd w0).
double scale_error(const std::vector<double>& a, const std::vector<double>& b, const std::vector<double>& x, int32_t n) {
  double e = 0;
  for (int32_t d = 0; d < n; ++d) {
    double ax = 0;
    for (int32_t f = 0; f < n; ++f) ax += a[int64_t{d} * n + f] * x[f];
    e += x[d] * (ax - 2 * b[d]);
  }
  return e;
}

// After the codes are chosen (position order): each row's cluster scales refitted to the
// layer's output, alpha = argmin (w0 - T alpha)^T hd (w0 - T alpha) with T the row's codes
// spread per cluster (clusters with no nonzero code keep their scale), then rounded to
// mantissas, the row's exponent lowered where a mantissa would pass the largest. A row takes
// the refit only where, so rounded, it lowers that error (measured through A and b: w0^T hd w0
// cancels). Rows are independent (any threads, the same result). They are taken kRefitLanes at
// a time, so that each of hd's rows is read from memory once for all of them (hd holds k^2
// doubles: 170 MB at k = 4608) and their sums run in the vector lanes; the block holds
// kRefitLanes systems of n^2 doubles (n active clusters: 170 MB at n = 1152, the largest here).
void refit_positions(Positions& q, const Layout& l, const LayerSpec& spec, const std::vector<double>& hd,
                     const std::vector<double>& w0) {
  const int32_t o_n = l.o, k = l.k;
  const auto cpr = static_cast<int32_t>(l.clusters.size());
  const int32_t top = max_cluster_scale(spec.encoding);
  std::vector<double> hw(static_cast<size_t>(o_n) * k, 0.0);  // w0 hd (hd is symmetric)
  blas::dgemm_add(o_n, k, k, 1.0, w0.data(), k, hd.data(), k, hw.data(), k);
  std::vector<int32_t> cluster_of(k);
  for (int32_t c = 0; c < cpr; ++c)
    std::fill(cluster_of.begin() + l.clusters[c].first, cluster_of.begin() + l.clusters[c].second, c);
  // A row's system: its active clusters (those with a nonzero code; index[c] their place),
  // A = T^T hd T (its lower triangle summed, then mirrored), b = T^T hd w0.
  struct Row {
    std::vector<int32_t> active, index;
    std::vector<double> a, b;
  };
  const blas::SingleThreadedBlas single_threaded_blas;  // dposv below runs inside oneTBB's tasks
  tbb::parallel_for(0, (o_n + kRefitLanes - 1) / kRefitLanes, [&](int32_t block) {
    const int32_t o0 = block * kRefitLanes, o1 = std::min(o_n, o0 + kRefitLanes);
    std::vector<Row> rows(o1 - o0);
    std::vector<double> codes(static_cast<size_t>(k) * kRefitLanes, 0.0);  // [k][lane]
    for (int32_t o = o0; o < o1; ++o) {
      Row& r = rows[o - o0];
      const int8_t* t = q.codes.data() + int64_t{o} * k;
      r.index.assign(cpr, -1);
      for (int32_t c = 0; c < cpr; ++c) {
        if (std::none_of(t + l.clusters[c].first, t + l.clusters[c].second, [](int8_t v) { return v != 0; })) continue;
        r.index[c] = static_cast<int32_t>(r.active.size());
        r.active.push_back(c);
      }
      const auto n = static_cast<int64_t>(r.active.size());
      r.a.assign(n * n, 0.0);
      r.b.assign(n, 0.0);
      for (int32_t j = 0; j < k; ++j) codes[int64_t{j} * kRefitLanes + (o - o0)] = t[j];
    }
    // Position by position, hd's row i against every row's codes of every cluster up to i's
    // own, added to the rows with a nonzero code at i: each dot in its cluster's position order
    // from 0, zero codes adding zeros, so these are the sums over the nonzero codes alone.
    std::vector<double> dots(static_cast<size_t>(cpr) * kRefitLanes);
    for (int32_t i = 0; i < k; ++i) {
      bool needed = false;
      for (int32_t o = o0; o < o1; ++o) needed |= q.codes[int64_t{o} * k + i] != 0;
      if (!needed) continue;
      cluster_dots(codes.data(), hd.data() + int64_t{i} * k, l.clusters.data(), cluster_of[i] + 1, dots.data());
      for (int32_t o = o0; o < o1; ++o) {
        const int8_t ti = q.codes[int64_t{o} * k + i];
        if (ti == 0) continue;
        Row& r = rows[o - o0];
        const auto n = static_cast<int64_t>(r.active.size());
        const int32_t d_i = r.index[cluster_of[i]];
        double* arow = r.a.data() + d_i * n;
        r.b[d_i] += ti * hw[int64_t{o} * k + i];
        for (int32_t d = 0; d <= d_i; ++d) arow[d] += ti * dots[int64_t{r.active[d]} * kRefitLanes + (o - o0)];
      }
    }
    for (int32_t o = o0; o < o1; ++o) {
      Row& r = rows[o - o0];
      const auto n = static_cast<int32_t>(r.active.size());
      if (n == 0) continue;
      for (int32_t d = 0; d < n; ++d)
        for (int32_t e = 0; e < d; ++e) r.a[int64_t{e} * n + d] = r.a[int64_t{d} * n + e];
      std::vector<double> x(n), rounded(n);
      for (int32_t d = 0; d < n; ++d) x[d] = std::ldexp(double(q.scales[int64_t{o} * cpr + r.active[d]]), -q.exponents[o]);
      const double before = scale_error(r.a, r.b, x, n);
      if (!solve_scales(r.a, r.b, x, n)) continue;
      double largest = 0;
      for (double v : x) largest = std::max(largest, v);
      int32_t ex = q.exponents[o];
      while (ex > -32 && std::nearbyint(std::ldexp(largest, ex)) > top) --ex;
      std::vector<uint8_t> mantissas(cpr);
      for (int32_t c = 0; c < cpr; ++c) {
        const int32_t d = r.index[c];
        const double alpha = d >= 0 ? x[d] : std::ldexp(double(q.scales[int64_t{o} * cpr + c]), -q.exponents[o]);
        mantissas[c] = static_cast<uint8_t>(std::clamp(std::nearbyint(std::ldexp(alpha, ex)), 1.0, double(top)));
        if (d >= 0) rounded[d] = std::ldexp(double(mantissas[c]), -ex);
      }
      if (!(scale_error(r.a, r.b, rounded, n) < before)) continue;
      std::copy(mantissas.begin(), mantissas.end(), q.scales.begin() + int64_t{o} * cpr);
      q.exponents[o] = static_cast<int8_t>(ex);
      for (int32_t c = 0; c < cpr; ++c)
        for (int32_t j = l.clusters[c].first; j < l.clusters[c].second; ++j)
          q.deq[int64_t{o} * k + j] = q.codes[int64_t{o} * k + j] * std::ldexp(double(mantissas[c]), -ex);
    }
  });
}

// The shared loop of both methods. w: [O][K] in position order. u: upper Cholesky factor of
// H^-1 in position order (K x K), or empty for round to nearest.
Positions choose_codes(std::vector<double> w, const Layout& l, const LayerSpec& spec, const std::vector<double>& u) {
  const int32_t o_n = l.o, k = l.k;
  const auto cpr = static_cast<int32_t>(l.clusters.size());
  Positions q;
  q.exponents = row_exponents(w, l, spec);
  q.scales.assign(static_cast<size_t>(o_n) * cpr, 1);
  q.codes.resize(static_cast<size_t>(o_n) * k);
  q.deq.resize(static_cast<size_t>(o_n) * k);
  std::vector<int8_t>& codes = q.codes;
  std::vector<double>& deq = q.deq;

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

  return q;
}

// Back to [I][KH][KW] column order, with the weight error against `original` ([O][K] columns).
QuantizedLayer in_columns(const Positions& p, std::span<const float> original, const Layout& l) {
  const int32_t o_n = l.o, k = l.k;
  QuantizedLayer q;
  q.scales = p.scales;
  q.exponents = p.exponents;
  q.codes.resize(p.codes.size());
  q.dequantized.resize(p.codes.size());
  double num = 0, den = 0;
  int64_t zeros = 0;
  for (int32_t o = 0; o < o_n; ++o)
    for (int32_t j = 0; j < k; ++j) {
      const int64_t dst = int64_t{o} * k + l.perm[j], src = int64_t{o} * k + j;
      q.codes[dst] = p.codes[src];
      q.dequantized[dst] = static_cast<float>(p.deq[src]);
      zeros += p.codes[src] == 0;
      const double d = original[dst] - p.deq[src];
      num += d * d;
      den += double(original[dst]) * original[dst];
    }
  q.weight_error = den > 0 ? std::sqrt(num / den) : 0.0;
  q.zero_share = p.codes.empty() ? 0.0 : double(zeros) / double(p.codes.size());
  return q;
}

std::vector<double> permuted(std::span<const float> w, const Layout& l) {
  std::vector<double> out(w.size());
  for (int32_t o = 0; o < l.o; ++o)
    for (int32_t j = 0; j < l.k; ++j) out[int64_t{o} * l.k + j] = w[int64_t{o} * l.k + l.perm[j]];
  return out;
}

// H in position order; dead inputs (never non-zero) get weight 0 in wp and a unit diagonal.
// mean_diag: the mean of that diagonal.
std::vector<double> positioned_gram(const std::vector<double>& h, const Layout& l, std::vector<double>& wp,
                                    double& mean_diag) {
  const int32_t k = l.k;
  std::vector<double> hp(h.size());
  for (int32_t a = 0; a < k; ++a)
    for (int32_t b = 0; b < k; ++b) hp[int64_t{a} * k + b] = h[int64_t{l.perm[a]} * k + l.perm[b]];
  mean_diag = 0;
  for (int32_t a = 0; a < k; ++a) {
    double& d = hp[int64_t{a} * k + a];
    if (d <= 0) {
      d = 1;
      for (int32_t o = 0; o < l.o; ++o) wp[int64_t{o} * k + a] = 0;
    }
    mean_diag += d / k;
  }
  return hp;
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
  return in_columns(choose_codes(permuted(w, l), l, spec, {}), w, l);
}

QuantizedLayer quantize_gptq(std::span<const float> w, const std::array<int32_t, 4>& shape, const LayerSpec& spec,
                             std::vector<double> h, double damp) {
  const Layout l = layout(shape, spec);
  const int32_t k = l.k;
  if (h.size() != static_cast<size_t>(k) * k) fail("quantize_gptq: H has {} entries for {} columns", h.size(), k);
  std::vector<double> wp = permuted(w, l);
  double mean_diag = 0;
  std::vector<double> hp = positioned_gram(h, l, wp, mean_diag);
  h.clear();
  // U: upper Cholesky factor of (H + lambda I)^-1, raising the damping until H is positive
  // definite. H is symmetric, so its row-major array is also its column-major one: LAPACK works
  // column-major on the lower triangle (no transposes), and the lower factor L2 of H^-1 = L2 L2^T,
  // read back row-major, is U = L2^T.
  std::vector<double> u;
  double lambda = damp * mean_diag;
  for (;; lambda *= 10) {
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
  for (int32_t a = 0; a < k; ++a) hp[int64_t{a} * k + a] += lambda;  // the H that U factors
  Positions p = choose_codes(wp, l, spec, u);
  refit_positions(p, l, spec, hp, wp);
  return in_columns(p, w, l);
}

void refit_scales(QuantizedLayer& q, std::span<const float> w, const std::array<int32_t, 4>& shape, const LayerSpec& spec,
                  const std::vector<double>& h, double damp) {
  const Layout l = layout(shape, spec);
  const int32_t k = l.k;
  if (h.size() != static_cast<size_t>(k) * k || w.size() != static_cast<size_t>(l.o) * k || q.codes.size() != w.size())
    fail("refit_scales: sizes do not match {} x {}", l.o, k);
  std::vector<double> wp = permuted(w, l);
  double mean_diag = 0;
  std::vector<double> hp = positioned_gram(h, l, wp, mean_diag);
  for (int32_t a = 0; a < k; ++a) hp[int64_t{a} * k + a] += damp * mean_diag;
  Positions p;
  p.scales = q.scales;
  p.exponents = q.exponents;
  p.codes.resize(q.codes.size());
  p.deq.resize(q.codes.size());
  for (int32_t o = 0; o < l.o; ++o)
    for (int32_t j = 0; j < k; ++j) {
      p.codes[int64_t{o} * k + j] = q.codes[int64_t{o} * k + l.perm[j]];
      p.deq[int64_t{o} * k + j] = q.dequantized[int64_t{o} * k + l.perm[j]];
    }
  refit_positions(p, l, spec, hp, wp);
  q = in_columns(p, w, l);
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

double refit_damping(const LayerSpec& spec, int64_t k, int64_t rows) {
  const bool coarse = spec.encoding == WeightEncoding::TernaryClustered && spec.cluster > 4;
  return coarse ? kRefitDampCoarse : kRefitDampRatio * double(k) / double(std::max<int64_t>(rows, 1));
}

}  // namespace trit::quant

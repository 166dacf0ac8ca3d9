#include "exponents.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_reduce.h>

#include <algorithm>
#include <cmath>

namespace trit {

void assign_types(Graph& g) {
  const Metadata& m = g.metadata;
  bool non_negative = true;
  for (size_t c = 0; c < m.mean.size(); ++c) non_negative &= m.mean[c] <= 0;  // (0 - mean) / scale >= 0
  g.tensors[g.inputs[0]].type = non_negative ? ElementType::UInt8 : ElementType::Int8;
  std::vector<bool> is_output(g.tensors.size(), false);
  for (int32_t t : g.outputs) is_output[t] = true;
  for (const Node& n : g.nodes) {
    Tensor& out = g.tensors[n.outputs[0]];
    const Tensor& in = g.tensors[n.inputs[0]];
    switch (n.op) {
      case OpCode::Conv:
      case OpCode::FullyConnected:
        out.type = is_output[n.outputs[0]] ? ElementType::Int32
                   : n.activation == Activation::Relu ? ElementType::UInt8 : ElementType::Int8;
        break;
      case OpCode::Add: out.type = n.activation == Activation::Relu ? ElementType::UInt8 : ElementType::Int8; break;
      case OpCode::Relu: out.type = ElementType::UInt8; break;
      default: out.type = in.type; break;
    }
  }
}

namespace {

// The largest magnitude in v, or `start` when larger: in lanes that the compiler vectorizes, over
// oneTBB's threads (a maximum is the same in any order).
float peak_of(std::span<const float> v, float start) {
  constexpr int64_t kLanes = 16;
  const int64_t n = static_cast<int64_t>(v.size());
  return tbb::parallel_reduce(
      tbb::blocked_range<int64_t>(0, n, 65536), start,
      [&](const tbb::blocked_range<int64_t>& r, float top) {
        float lane[kLanes] = {};
        int64_t j = r.begin();
        for (; j + kLanes <= r.end(); j += kLanes)
          for (int64_t l = 0; l < kLanes; ++l) lane[l] = std::max(lane[l], std::abs(v[j + l]));
        for (; j < r.end(); ++j) top = std::max(top, std::abs(v[j]));
        for (float x : lane) top = std::max(top, x);
        return top;
      },
      [](float a, float b) { return std::max(a, b); });
}

}  // namespace

void ExponentSample::add(std::span<const float> v, int64_t offset, int64_t total) {
  const int64_t stride = std::max<int64_t>(1, total / 262144);
  peak = peak_of(v, peak);
  // The values at global positions that are multiples of the stride.
  for (int64_t j = (stride - offset % stride) % stride; j < static_cast<int64_t>(v.size()); j += stride)
    values.push_back(v[j]);
}

void ExponentSample::add_channels_last(std::span<const float> v, Shape3 s, int64_t offset, int64_t total) {
  const int64_t stride = std::max<int64_t>(1, total / 262144);
  peak = peak_of(v, peak);
  const int64_t elements = s.size(), plane = int64_t{s.h} * s.w;
  for (int64_t j = (stride - offset % stride) % stride; j < static_cast<int64_t>(v.size()); j += stride) {
    const int64_t image = j / elements, c = j % elements / plane, pixel = j % plane;
    values.push_back(v[image * elements + pixel * s.c + c]);
  }
}

int32_t choose_exponent(const ExponentSample& s, Range r, bool lse) {
  if (!(s.peak > 0)) return 0;
  const int32_t top = static_cast<int32_t>(std::clamp(std::floor(std::log2(r.hi / double(s.peak))), -32.0, 32.0));
  if (!lse) return top;
  int32_t best = top;
  double best_err = INFINITY;
  for (int32_t f = top; f <= std::min(top + 8, 32); ++f) {
    double err = 0;
    for (float x : s.values) {
      const double m = std::clamp(std::floor(std::ldexp(double(x), f) + 0.5), double(r.lo), double(r.hi));
      const double d = x - std::ldexp(m, -f);
      err += d * d;
    }
    if (err < best_err) {
      best_err = err;
      best = f;
    }
  }
  return best;
}

}  // namespace trit

// IntExecutor's dynamic fixed point (int_executor.h): each 8-bit activation's exponent chosen per
// image from the values themselves, the paper's title. One image at a time, on the reference.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "int_executor.h"
#include "int_ref.h"
#include "requant.h"

namespace trit {

namespace {

// The largest exponent f in [-32, 32] for which every value v (of exponent `from`, one per
// channel group) rounds into [lo, hi] and every shift from - f lies in [-24, 62]. `from` holds
// each channel's exponent; lo_v/hi_v each channel's extreme values.
int32_t fitting_exponent(const std::vector<int32_t>& from, const std::vector<int64_t>& lo_v,
                         const std::vector<int64_t>& hi_v, int32_t lo, int32_t hi) {
  for (int32_t f = 32; f > -32; --f) {
    bool fits = true;
    for (size_t c = 0; c < from.size() && fits; ++c) {
      const int32_t s = from[c] - f;
      fits = s >= -24 && s <= 62 && rq::round_shift(hi_v[c], s) <= hi && rq::round_shift(lo_v[c], s) >= lo;
    }
    if (fits) return f;
  }
  return -32;
}

// A layer (Conv or fully connected, integer weights) on one image whose input has exponent
// f_in instead of the stored one: raw accumulators, the bias shifted to the actual input scale,
// then the largest output exponent that holds every value (int32 outputs keep theirs). Writes
// dst and returns the output's exponent.
int32_t dynamic_layer(const Graph& g, const Node& n, const PreparedLayer& p, const std::vector<int32_t>& input,
                      int32_t f_in, std::vector<int32_t>& dst) {
  const Tensor& in_t = g.tensors[n.inputs[0]];
  const Tensor& out_t = g.tensors[n.outputs[0]];
  const Range r = range_of(out_t.type);
  const int32_t lo = output_range(n, out_t).lo;
  const int64_t out_n = out_t.elements();
  const int32_t o_n = out_t.shape[0];
  const int64_t plane = out_n / o_n;
  // Raw accumulators: multiplier 1, no bias, no shift, the whole int32 range.
  const iref::Requant raw{std::vector<int32_t>(o_n, 1), std::vector<int32_t>(o_n, 0), std::vector<int64_t>(o_n, 0),
                          std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()};
  std::vector<int32_t> acc(out_n);
  iref::conv2d(input.data(), shape3(in_t), p.packed.data(), n.window, raw, acc.data(), shape3(out_t), 0, o_n);
  const auto e = n.weights.scale_exponents.as<int8_t>();
  const int32_t shift_in = in_t.exponent - f_in;  // stored bias scale -> actual
  std::vector<int64_t> v(out_n), lo_v(o_n, INT64_MAX), hi_v(o_n, INT64_MIN);
  std::vector<int32_t> from(o_n);
  for (int32_t o = 0; o < o_n; ++o) {
    const int64_t bias = rq::round_shift(p.bias[o], shift_in);
    from[o] = f_in + e[o];
    for (int64_t j = 0; j < plane; ++j) {
      const int64_t x = int64_t{acc[o * plane + j]} * p.multiplier[o] + bias;
      v[o * plane + j] = x;
      lo_v[o] = std::min(lo_v[o], x);
      hi_v[o] = std::max(hi_v[o], x);
    }
  }
  const int32_t f_out =
      out_t.type == ElementType::Int32 ? out_t.exponent : fitting_exponent(from, lo == 0 ? std::vector<int64_t>(o_n, 0) : lo_v, hi_v, lo, r.hi);
  for (int32_t o = 0; o < o_n; ++o)
    for (int64_t j = 0; j < plane; ++j)
      dst[o * plane + j] = rq::saturate(rq::round_shift(v[o * plane + j], from[o] - f_out), lo, r.hi);
  return f_out;
}

}  // namespace

// One image with exponents chosen per tensor as it is written (see the constructor's comment).
std::vector<int32_t> IntExecutor::run_dynamic(std::span<const int32_t> image) const {
  const Graph& g = *graph_;
  std::vector<std::vector<int32_t>> values(g.tensors.size());
  std::vector<int32_t> exps(g.tensors.size());
  for (size_t t = 0; t < g.tensors.size(); ++t) exps[t] = g.tensors[t].exponent;
  values[g.inputs[0]].assign(image.begin(), image.end());
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    const Node& n = g.nodes[ni];
    const int32_t in = n.inputs[0], out = n.outputs[0];
    const Tensor& out_t = g.tensors[out];
    const int64_t out_n = out_t.elements();
    const Range r = range_of(out_t.type);
    const int32_t lo = output_range(n, out_t).lo;
    std::vector<int32_t>& dst = values[out];
    dst.resize(out_n);
    switch (n.op) {
      case OpCode::Conv:
      case OpCode::FullyConnected: {
        const PreparedLayer& p = layers_[ni];
        if (p.is_float) {  // a float layer keeps its calibrated output exponent
          Graph view;
          view.tensors = {g.tensors[in], out_t};
          view.tensors[0].exponent = exps[in];
          Node node = n;
          node.inputs = {0};
          node.outputs = {1};
          run_int_node(view, node, &p, 1, {values[in].data()}, dst.data());
          break;
        }
        exps[out] = dynamic_layer(g, n, p, values[in], exps[in], dst);
        break;
      }
      case OpCode::Add: {
        const int32_t b = n.inputs[1];
        const int32_t f = std::max(exps[in], exps[b]);
        std::vector<int64_t> sum(out_n);
        int64_t smin = INT64_MAX, smax = INT64_MIN;
        for (int64_t j = 0; j < out_n; ++j) {
          sum[j] = rq::round_shift(values[in][j], exps[in] - f) + rq::round_shift(values[b][j], exps[b] - f);
          smin = std::min(smin, sum[j]);
          smax = std::max(smax, sum[j]);
        }
        exps[out] = fitting_exponent({f}, {lo == 0 ? 0 : smin}, {smax}, lo, r.hi);
        for (int64_t j = 0; j < out_n; ++j) dst[j] = rq::saturate(rq::round_shift(sum[j], f - exps[out]), lo, r.hi);
        break;
      }
      case OpCode::AveragePool:
      case OpCode::GlobalAveragePool: {
        // A mean never exceeds the largest input: fit the input's extremes.
        const auto [mn, mx] = std::minmax_element(values[in].begin(), values[in].end());
        exps[out] = std::clamp(fitting_exponent({exps[in]}, {std::min<int64_t>(*mn, 0)}, {*mx}, r.lo, r.hi), exps[in] - 24, exps[in] + 24);
        [[fallthrough]];
      }
      default: {
        if (n.op == OpCode::MaxPool || n.op == OpCode::Flatten || n.op == OpCode::Relu) exps[out] = exps[in];
        // Run the node with the actual exponents in a graph view of one tensor pair.
        Graph view;
        view.tensors = {g.tensors[in], out_t};
        view.tensors[0].exponent = exps[in];
        view.tensors[1].exponent = exps[out];
        Node node = n;
        node.inputs = {0};
        node.outputs = {1};
        run_int_node(view, node, nullptr, 1, {values[in].data()}, dst.data());
        break;
      }
    }
    for (int32_t t : n.inputs)
      if (last_use_[t] == ni) std::vector<int32_t>().swap(values[t]);
  }
  // The caller reads the output at its stored exponent.
  const int32_t o = g.outputs[0];
  std::vector<int32_t> result = std::move(values[o]);
  if (exps[o] != g.tensors[o].exponent)
    for (int32_t& m : result)
      m = rq::saturate(rq::round_shift(m, exps[o] - g.tensors[o].exponent), std::numeric_limits<int32_t>::min(),
                       std::numeric_limits<int32_t>::max());
  return result;
}

}  // namespace trit

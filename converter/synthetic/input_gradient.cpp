#include "input_gradient.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <limits>

#include "float_ref.h"
#include "reconstruct/ops.h"
#include "trit/error.h"

namespace trit::synth {
namespace {

recon::ConvShape conv_shape(const Graph& g, const Node& n) {
  const Tensor& in = g.tensors[n.inputs[0]];
  const Tensor& out = g.tensors[n.outputs[0]];
  if (n.op == OpCode::FullyConnected)
    return {{static_cast<int32_t>(in.elements()), 1, 1}, {static_cast<int32_t>(out.elements()), 1, 1}, Window{}};
  return {shape3(in), shape3(out), n.window};
}

const float* bias_of(const Node& n) { return n.bias.empty() ? nullptr : n.bias.as<float>().data(); }

// Calls f(iy, ix) for every tap of output (oy, ox)'s pooling window that lies inside the input.
template <typename F>
void for_taps(const Window& w, Shape3 is, int32_t oy, int32_t ox, F&& f) {
  for (int32_t ky = 0; ky < w.kernel_h; ++ky) {
    const int32_t iy = oy * w.stride_h - w.pad_top + ky;
    if (iy < 0 || iy >= is.h) continue;
    for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
      const int32_t ix = ox * w.stride_w - w.pad_left + kx;
      if (ix >= 0 && ix < is.w) f(iy, ix);
    }
  }
}

// Runs f(j) for j in [0, n) over oneTBB's threads.
template <typename F>
void each(size_t n, F&& f) {
  tbb::parallel_for(tbb::blocked_range<size_t>(0, n, 32768), [&](const tbb::blocked_range<size_t>& r) {
    for (size_t j = r.begin(); j < r.end(); ++j) f(j);
  });
}

}  // namespace

InputGradient::InputGradient(const Graph& g) : g_(g) {
  if (g.inputs.size() != 1 || g.outputs.size() != 1) fail("synthetic calibration needs a graph with one input and one output");
  for (const Node& n : g.nodes)
    if (has_weights(n) && n.weights.encoding != WeightEncoding::Float32)
      fail("synthetic calibration needs float32 weights; layer '{}' has {}", n.name, to_string(n.weights.encoding));
  value_.resize(g.tensors.size());
  grad_.resize(g.tensors.size());
  pre_.resize(g.nodes.size());
  pre_seed_.resize(g.nodes.size());
}

void InputGradient::forward(std::span<const float> x, int32_t batch) {
  batch_ = batch;
  const Tensor& input = g_.input();
  if (static_cast<int64_t>(x.size()) != input.elements() * batch) fail("InputGradient::forward: input of the wrong size");
  value_[g_.inputs[0]].assign(x.begin(), x.end());
  for (size_t ni = 0; ni < g_.nodes.size(); ++ni) {
    const Node& n = g_.nodes[ni];
    const Tensor& out_t = g_.tensors[n.outputs[0]];
    const int64_t out_n = out_t.elements(), in_n = g_.tensors[n.inputs[0]].elements();
    std::vector<float>& y = value_[n.outputs[0]];
    y.resize(static_cast<size_t>(out_n * batch));
    const float* x0 = value_[n.inputs[0]].data();
    switch (n.op) {
      case OpCode::Conv:
      case OpCode::FullyConnected:
        recon::conv_forward(conv_shape(g_, n), x0, batch, n.weights.codes.as<float>().data(), bias_of(n), y.data());
        break;
      case OpCode::Add: {
        const float* x1 = value_[n.inputs[1]].data();
        each(y.size(), [&](size_t j) { y[j] = x0[j] + x1[j]; });
        break;
      }
      case OpCode::MaxPool:
      case OpCode::AveragePool:
      case OpCode::GlobalAveragePool: {
        const Shape3 is = shape3(g_.tensors[n.inputs[0]]), os = shape3(out_t);
        tbb::parallel_for(0, batch, [&](int32_t im) {
          const float* in = x0 + im * in_n;
          float* out = y.data() + im * out_n;
          if (n.op == OpCode::MaxPool) ref::max_pool(in, is, n.window, out, os);
          else if (n.op == OpCode::AveragePool) ref::average_pool(in, is, n.window, n.count_include_pad, out, os);
          else ref::global_average_pool(in, is, out);
        });
        break;
      }
      case OpCode::Flatten:
      case OpCode::Relu:
        std::copy_n(x0, y.size(), y.begin());
        break;
    }
    const bool relu = n.op == OpCode::Relu || n.activation == Activation::Relu;
    if (relu && n.op != OpCode::Relu) pre_[ni] = y;
    if (relu) each(y.size(), [&](size_t j) { y[j] = std::max(y[j], 0.0f); });
  }
  for (auto& seed : pre_seed_) std::vector<float>().swap(seed);
  // Gradients are allocated as they are first written, and freed once read (backward).
  for (auto& gt : grad_) std::vector<float>().swap(gt);
}

std::vector<float>& InputGradient::grad(int32_t tensor) {
  if (grad_[tensor].empty()) grad_[tensor].assign(value_[tensor].size(), 0.0f);
  return grad_[tensor];
}

std::span<const float> InputGradient::output() const { return value_[g_.outputs[0]]; }

std::span<const float> InputGradient::before_activation(size_t node) const {
  return pre_[node].empty() ? std::span<const float>(value_[g_.nodes[node].outputs[0]]) : std::span<const float>(pre_[node]);
}

std::span<float> InputGradient::output_seed() { return grad(g_.outputs[0]); }

std::span<float> InputGradient::before_activation_seed(size_t node) {
  if (pre_[node].empty()) return grad(g_.nodes[node].outputs[0]);
  if (pre_seed_[node].empty()) pre_seed_[node].assign(pre_[node].size(), 0.0f);
  return pre_seed_[node];
}

void InputGradient::backward(std::span<float> dx) {
  const int32_t batch = batch_;
  for (size_t ni = g_.nodes.size(); ni-- > 0;) {
    const Node& n = g_.nodes[ni];
    const Tensor& out_t = g_.tensors[n.outputs[0]];
    const int64_t out_n = out_t.elements(), in_n = g_.tensors[n.inputs[0]].elements();
    // dz: the gradient before the activation (the output's, through the ReLU, plus the seed).
    std::vector<float> dz = std::move(grad(n.outputs[0]));
    std::vector<float>().swap(grad_[n.outputs[0]]);
    if (n.op == OpCode::Relu || n.activation == Activation::Relu) {
      const std::vector<float>& z = n.op == OpCode::Relu ? value_[n.inputs[0]] : pre_[ni];
      const float* seed = pre_seed_[ni].empty() ? nullptr : pre_seed_[ni].data();
      each(dz.size(), [&](size_t j) { dz[j] = (z[j] > 0 ? dz[j] : 0.0f) + (seed ? seed[j] : 0.0f); });
    }
    std::vector<float>().swap(pre_[ni]);
    std::vector<float>().swap(pre_seed_[ni]);
    float* g0 = grad(n.inputs[0]).data();
    switch (n.op) {
      case OpCode::Conv:
      case OpCode::FullyConnected:
        recon::conv_backward(conv_shape(g_, n), nullptr, batch, n.weights.codes.as<float>().data(), dz.data(), g0, nullptr,
                             nullptr);
        break;
      case OpCode::Add: {
        float* g1 = grad(n.inputs[1]).data();
        each(dz.size(), [&](size_t j) { g0[j] += dz[j]; });
        each(dz.size(), [&](size_t j) { g1[j] += dz[j]; });
        break;
      }
      case OpCode::MaxPool:
      case OpCode::AveragePool:
      case OpCode::GlobalAveragePool: {
        const Shape3 is = shape3(g_.tensors[n.inputs[0]]), os = shape3(out_t);
        const float* x0 = value_[n.inputs[0]].data();
        tbb::parallel_for(0, batch, [&](int32_t im) {
          const float* in = x0 + im * in_n;
          const float* d = dz.data() + im * out_n;
          float* gi = g0 + im * in_n;
          if (n.op == OpCode::GlobalAveragePool) {
            const int64_t plane = int64_t{is.h} * is.w;
            for (int32_t c = 0; c < is.c; ++c)
              for (int64_t j = 0; j < plane; ++j) gi[c * plane + j] += d[c] / static_cast<float>(plane);
            return;
          }
          for (int32_t c = 0; c < is.c; ++c)
            for (int32_t oy = 0; oy < os.h; ++oy)
              for (int32_t ox = 0; ox < os.w; ++ox) {
                const float dv = d[(int64_t{c} * os.h + oy) * os.w + ox];
                const int64_t base = int64_t{c} * is.h * is.w;
                if (n.op == OpCode::MaxPool) {
                  // The first tap that holds the maximum takes the gradient.
                  int64_t best = -1;
                  float best_v = -std::numeric_limits<float>::infinity();
                  for_taps(n.window, is, oy, ox, [&](int32_t iy, int32_t ix) {
                    const int64_t at = base + int64_t{iy} * is.w + ix;
                    if (best < 0 || in[at] > best_v) best = at, best_v = in[at];
                  });
                  gi[best] += dv;
                } else {
                  const float share = dv / static_cast<float>(ref::average_pool_divisor(is, n.window, n.count_include_pad, oy, ox));
                  for_taps(n.window, is, oy, ox, [&](int32_t iy, int32_t ix) { gi[base + int64_t{iy} * is.w + ix] += share; });
                }
              }
        });
        break;
      }
      case OpCode::Flatten:
      case OpCode::Relu:
        each(dz.size(), [&](size_t j) { g0[j] += dz[j]; });
        break;
    }
  }
  const std::vector<float>& gin = grad(g_.inputs[0]);
  std::copy(gin.begin(), gin.end(), dx.begin());
}

}  // namespace trit::synth

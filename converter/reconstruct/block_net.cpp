#include "block_net.h"

#include <algorithm>

#include "ops.h"

namespace trit::recon {
namespace {

ConvShape conv_shape(const Graph& g, const Node& n) {
  ConvShape s{shape3(g.tensors[n.inputs[0]]), shape3(g.tensors[n.outputs[0]]), Window{}};
  if (n.op == OpCode::Conv) s.window = n.window;
  return s;
}

}  // namespace

BlockNet::BlockNet(const Graph& g, const Segment& seg, const std::map<size_t, std::vector<float>>& given) : g_(g), seg_(seg) {
  for (size_t ni = seg.begin; ni < seg.end; ++ni) {
    const Node& n = g.nodes[ni];
    if (has_weights(n) && n.weights.encoding != WeightEncoding::Float32)
      soft_.emplace(ni, std::make_unique<SoftRounding>(g, n, given.at(ni)));
  }
}

const std::vector<float>& BlockNet::forward(const std::vector<float>& x, int32_t batch, bool hard, Keep keep) {
  batch_ = batch;
  // Buffers persist from one batch to the next: only their sizes change.
  value_.resize(g_.tensors.size());
  pre_.resize(g_.tensors.size());
  pass_.resize(g_.tensors.size());
  value_[seg_.input] = x;
  for (size_t ni = seg_.begin; ni < seg_.end; ++ni) run(ni, hard, keep);
  return value_[seg_.output];
}

void BlockNet::run(size_t ni, bool hard, Keep keep) {
  const Node& n = g_.nodes[ni];
  const int32_t t = n.outputs[0];
  const Tensor& out = g_.tensors[t];
  const int64_t size = out.elements() * batch_;
  std::vector<float>& z = pre_[t];
  z.resize(static_cast<size_t>(size));
  const bool relu = n.activation == Activation::Relu || n.op == OpCode::Relu;
  if (n.op == OpCode::Add) {
    const auto& a = value_[n.inputs[0]];
    const auto& b = value_[n.inputs[1]];
    for (int64_t j = 0; j < size; ++j) z[j] = a[j] + b[j];
  } else if (n.op == OpCode::Relu) {
    std::copy_n(value_[n.inputs[0]].begin(), size, z.begin());  // same exponent: the ReLU alone, below
  } else {
    std::vector<float>& w = weights_[ni];
    std::vector<float> bias;
    if (const auto it = soft_.find(ni); it != soft_.end()) {
      w.resize(static_cast<size_t>(it->second->outputs() * it->second->columns()));
      it->second->weights(hard, w.data());
      bias = it->second->bias();
    } else {  // kept in float
      const auto fw = n.weights.codes.as<float>();
      w.assign(fw.begin(), fw.end());
      const auto fb = n.bias.as<float>();
      bias.assign(fb.begin(), fb.end());
    }
    conv_forward(conv_shape(g_, n), value_[n.inputs[0]].data(), batch_, w.data(), bias.data(), z.data());
  }
  std::vector<uint8_t>& pass = pass_[t];
  pass.resize(z.size());
  std::vector<float>& q = value_[t];
  q.resize(z.size());
  if (ni + 1 == seg_.end || n.op == OpCode::Relu) {  // the block's output, or a ReLU alone: in float
    const float* zp = z.data();
    float* qp = q.data();
    uint8_t* pp = pass.data();
    for (int64_t j = 0; j < size; ++j) {
      pp[j] = !relu || zp[j] > 0;
      qp[j] = relu ? std::max(zp[j], 0.0f) : zp[j];
    }
    return;
  }
  std::vector<uint64_t> bits;
  if (keep.mode == Keep::All) bits.assign(static_cast<size_t>((size + 63) / 64), ~uint64_t{0});
  if (keep.mode == Keep::Random) {
    bits.resize(static_cast<size_t>((size + 63) / 64));
    random_bits(keep.seed ^ (0xA24BAED4963EE407ull * (ni + 1)), size, keep.p, bits.data());
  }
  const Range r = output_range(n, out);
  activate(z.data(), size, out.exponent, r.lo, r.hi, relu, bits.empty() ? nullptr : bits.data(), q.data(), pass.data());
}

void BlockNet::backward(const std::vector<float>& dout) {
  grad_.resize(g_.tensors.size());
  for (size_t ni = seg_.begin; ni < seg_.end; ++ni) {  // the block's tensors, each collecting from its readers
    const int32_t t = g_.nodes[ni].outputs[0];
    grad_[t].assign(value_[t].size(), 0.0f);
  }
  grad_[seg_.output] = dout;
  std::vector<float> dz;
  for (size_t ni = seg_.end; ni-- > seg_.begin;) {
    const Node& n = g_.nodes[ni];
    const int32_t t = n.outputs[0];
    // Through this node's activation (its rounding's straight-through mask, its ReLU).
    dz.resize(grad_[t].size());
    activate_backward(grad_[t].data(), pass_[t].data(), static_cast<int64_t>(dz.size()), dz.data());
    if (n.op == OpCode::Add || n.op == OpCode::Relu) {
      for (int32_t in : n.inputs)
        if (in != seg_.input) {
          float* gi = grad_[in].data();
          const float* d = dz.data();
          for (size_t j = 0; j < dz.size(); ++j) gi[j] += d[j];
        }
      continue;
    }
    Grads& gr = grads_[ni];
    gr.dw.assign(weights_[ni].size(), 0.0f);
    gr.db.assign(n.weights.shape[0], 0.0f);
    const int32_t in = n.inputs[0];
    conv_backward(conv_shape(g_, n), value_[in].data(), batch_, weights_[ni].data(), dz.data(),
                  in == seg_.input ? nullptr : grad_[in].data(), gr.dw.data(), gr.db.data());
  }
}

}  // namespace trit::recon

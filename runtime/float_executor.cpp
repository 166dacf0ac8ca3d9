#include "float_executor.h"

#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>

#include "float_ref.h"
#include "int8/table.h"
#include "trit/error.h"

namespace trit {

FloatExecutor::FloatExecutor(std::shared_ptr<const Graph> graph) : graph_(std::move(graph)) {
  for (const Node& n : graph_->nodes)
    if (has_weights(n) && n.weights.encoding != WeightEncoding::Float32)
      fail("cannot run layer '{}' in float: its weights are {}, not float32", n.name,
           to_string(n.weights.encoding));
  packed_.resize(graph_->nodes.size());
  for (size_t i = 0; i < graph_->nodes.size(); ++i) {
    const Node& n = graph_->nodes[i];
    if (n.op == OpCode::Conv) {
      const auto& s = n.weights.shape;
      packed_[i] = ref::pack_conv_weights(n.weights.codes.as<float>().data(), s[0], s[1], s[2], s[3]);
    }
  }
  last_use_.assign(graph_->tensors.size(), graph_->nodes.size());
  for (size_t i = 0; i < graph_->nodes.size(); ++i)
    for (int32_t t : graph_->nodes[i].inputs) last_use_[t] = i;
  for (int32_t t : graph_->outputs) last_use_[t] = SIZE_MAX;
}

void run_float_node(const Graph& g, const Node& n, const float* packed, int32_t batch,
                    const std::vector<const float*>& inputs, float* out) {
  const Tensor& in_t = g.tensors[n.inputs[0]];
  const Tensor& out_t = g.tensors[n.outputs[0]];
  const int64_t in_n = in_t.elements(), out_n = out_t.elements();
  const float* in = inputs[0];
  const Shape3 is = shape3(in_t), os = shape3(out_t);
  switch (n.op) {
    case OpCode::Conv:
    case OpCode::FullyConnected: {
      const float* w = n.op == OpCode::Conv ? packed : n.weights.codes.as<float>().data();
      const float* b = n.bias.as<float>().data();
      // The reference's convolution as the chosen kernel path computes it (the same bits, TRIT_ISA
      // or the best this CPU runs). Split over images and blocks of output channels; each task
      // writes its own channels.
      static const auto conv_f32 = k8::table_for(k8::select_isa()).conv_f32;
      tbb::parallel_for(tbb::blocked_range2d<int32_t>(0, batch, 1, 0, os.c, 64),
                        [&](const tbb::blocked_range2d<int32_t>& r) {
                          for (int32_t im = r.rows().begin(); im < r.rows().end(); ++im) {
                            if (n.op == OpCode::Conv)
                              conv_f32(in + im * in_n, is, w, b, n.window, n.activation, out + im * out_n, os,
                                          r.cols().begin(), r.cols().end());
                            else
                              ref::fully_connected(in + im * in_n, is.c, w, b, n.activation, out + im * out_n,
                                                   r.cols().begin(), r.cols().end());
                          }
                        });
      break;
    }
    case OpCode::Add: ref::add(in, inputs[1], out_n * batch, n.activation, out); break;
    case OpCode::Relu: ref::relu(in, out_n * batch, out); break;
    case OpCode::Flatten: std::copy(in, in + in_n * batch, out); break;
    case OpCode::MaxPool:
    case OpCode::AveragePool:
    case OpCode::GlobalAveragePool:
      tbb::parallel_for(0, batch, [&](int32_t im) {
        const float* src = in + im * in_n;
        float* dst = out + im * out_n;
        if (n.op == OpCode::MaxPool) ref::max_pool(src, is, n.window, dst, os);
        else if (n.op == OpCode::AveragePool) ref::average_pool(src, is, n.window, n.count_include_pad, dst, os);
        else ref::global_average_pool(src, is, dst);
      });
      break;
  }
}

std::vector<float> FloatExecutor::run(std::span<const float> input, int32_t batch) const {
  const Graph& g = *graph_;
  const int64_t in_elems = g.input().elements();
  if (batch < 1 || static_cast<int64_t>(input.size()) != in_elems * batch)
    fail("cannot run model: {} input values for a batch of {} images of {} values", input.size(), batch,
         in_elems);
  std::vector<std::vector<float>> values(g.tensors.size());
  values[g.inputs[0]].assign(input.begin(), input.end());
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    const Node& n = g.nodes[ni];
    std::vector<const float*> ins;
    for (int32_t t : n.inputs) ins.push_back(values[t].data());
    std::vector<float>& out = values[n.outputs[0]];
    out.resize(g.tensors[n.outputs[0]].elements() * batch);
    run_float_node(g, n, packed_[ni].data(), batch, ins, out.data());
    for (int32_t t : n.inputs)
      if (last_use_[t] == ni) std::vector<float>().swap(values[t]);
  }
  return std::move(values[g.outputs[0]]);
}

}  // namespace trit

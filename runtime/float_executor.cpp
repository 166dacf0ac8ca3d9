#include "float_executor.h"

#include <tbb/blocked_range.h>
#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>

#include "float_gemm.h"
#include "float_ref.h"
#include "int8/table.h"
#include "trit/error.h"

namespace trit {

FloatExecutor::FloatExecutor(std::shared_ptr<const Graph> graph, FloatPath path)
    : graph_(std::move(graph)), path_(path) {
  for (const Node& n : graph_->nodes)
    if (has_weights(n) && n.weights.encoding != WeightEncoding::Float32)
      fail("cannot run layer '{}' in float: its weights are {}, not float32", n.name,
           to_string(n.weights.encoding));
  packed_.resize(graph_->nodes.size());
  for (size_t i = 0; i < graph_->nodes.size(); ++i) {
    const Node& n = graph_->nodes[i];
    if (n.op == OpCode::Conv && path == FloatPath::Reference) {
      const auto& s = n.weights.shape;
      packed_[i] = ref::pack_conv_weights(n.weights.codes.as<float>().data(), s[0], s[1], s[2], s[3]);
    }
  }
  last_use_.assign(graph_->tensors.size(), graph_->nodes.size());
  for (size_t i = 0; i < graph_->nodes.size(); ++i)
    for (int32_t t : graph_->nodes[i].inputs) last_use_[t] = i;
  for (int32_t t : graph_->outputs) last_use_[t] = SIZE_MAX;
  if (path == FloatPath::Gemm) blas::prepare_single_threaded_blas();
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
    case OpCode::Add:
      tbb::parallel_for(tbb::blocked_range<int64_t>(0, out_n * batch, 16384), [&](const tbb::blocked_range<int64_t>& r) {
        ref::add(in + r.begin(), inputs[1] + r.begin(), static_cast<int64_t>(r.size()), n.activation, out + r.begin());
      });
      break;
    case OpCode::Relu: ref::relu(in, out_n * batch, out); break;
    case OpCode::Flatten: std::copy(in, in + in_n * batch, out); break;
    case OpCode::MaxPool:
    case OpCode::AveragePool:
    case OpCode::GlobalAveragePool:
      // Images x blocks of channels (a pool reads and writes each channel's plane alone).
      tbb::parallel_for(tbb::blocked_range2d<int32_t>(0, batch, 1, 0, is.c, 8), [&](const tbb::blocked_range2d<int32_t>& r) {
        const int32_t c0 = r.cols().begin(), cn = r.cols().end() - c0;
        const Shape3 ib{cn, is.h, is.w}, ob{cn, os.h, os.w};
        for (int32_t im = r.rows().begin(); im < r.rows().end(); ++im) {
          const float* src = in + im * in_n + c0 * int64_t{is.h} * is.w;
          float* dst = out + im * out_n + c0 * int64_t{os.h} * os.w;
          if (n.op == OpCode::MaxPool) ref::max_pool(src, ib, n.window, dst, ob);
          else if (n.op == OpCode::AveragePool) ref::average_pool(src, ib, n.window, n.count_include_pad, dst, ob);
          else ref::global_average_pool(src, ib, dst);
        }
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
  // Each tensor's values, freed after its last reader; the input is read where it lies. Nothing
  // is zero-filled: every kernel writes all of its output.
  std::vector<std::unique_ptr<float[]>> owned(g.tensors.size());
  std::vector<const float*> values(g.tensors.size());
  values[g.inputs[0]] = input.data();
  std::unique_ptr<float[]> scratch;  // the Gemm path's columns and products, grown to the largest layer
  int64_t scratch_size = 0;
  std::vector<const float*> ins;
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    const Node& n = g.nodes[ni];
    ins.clear();
    for (int32_t t : n.inputs) ins.push_back(values[t]);
    const int32_t o = n.outputs[0];
    owned[o] = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(g.tensors[o].elements() * batch));
    values[o] = owned[o].get();
    if (path_ == FloatPath::Gemm && has_weights(n)) {
      const Shape3 is = shape3(g.tensors[n.inputs[0]]), os = shape3(g.tensors[o]);
      const float* w = n.weights.codes.as<float>().data();
      const float* b = n.bias.as<float>().data();
      if (n.op == OpCode::FullyConnected) {
        blas::fully_connected(ins[0], batch, is.c, w, b, n.activation, owned[o].get(), os.c);
      } else {
        const int64_t need = blas::conv2d_scratch(is, os, n.window, batch);
        if (need > scratch_size) scratch = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(scratch_size = need));
        blas::conv2d(ins[0], is, batch, w, b, n.window, n.activation, owned[o].get(), os, scratch.get());
      }
    } else {
      run_float_node(g, n, packed_[ni].data(), batch, ins, owned[o].get());
    }
    for (int32_t t : n.inputs)
      if (last_use_[t] == ni) owned[t].reset();
  }
  const int32_t out = g.outputs[0];
  return std::vector<float>(values[out], values[out] + g.tensors[out].elements() * batch);
}

}  // namespace trit

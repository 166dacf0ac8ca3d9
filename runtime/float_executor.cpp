#include "float_executor.h"

#include <tbb/blocked_range.h>
#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>

#include "float_nhwc.h"
#include "float_ref.h"
#include "trit/error.h"
#include "trit/model_file.h"

namespace trit {

FloatExecutor::FloatExecutor(std::shared_ptr<const Graph> graph, FloatPath path, k8::Isa isa)
    : graph_(std::move(graph)), path_(path), table_(&k8::table_for(isa)) {
  for (const Node& n : graph_->nodes)
    if (has_weights(n) && n.weights.encoding != WeightEncoding::Float32)
      fail("cannot run layer '{}' in float: its weights are {}, not float32", n.name,
           to_string(n.weights.encoding));
  prepared_.resize(graph_->nodes.size());
  for (size_t i = 0; i < graph_->nodes.size(); ++i) {
    const Node& n = graph_->nodes[i];
    if (!has_weights(n)) continue;
    const auto& s = n.weights.shape;
    const float* w = n.weights.codes.as<float>().data();
    Prepared& p = prepared_[i];
    if (path == FloatPath::Reference && n.op == OpCode::Conv) p.layer.weights = ref::pack_conv_weights(w, s[0], s[1], s[2], s[3]);
    if (path == FloatPath::Fused) p.layer = prepare_fused_layer(*graph_, n, *table_);
    // The executor holds its own copy: the file's pages go back to the OS as it goes (a fully
    // connected layer on the reference path reads them again from the file).
    release_file_pages(*graph_, n.weights.codes);
  }
  if (path == FloatPath::Fused) fuse_adds();
  last_use_.assign(graph_->tensors.size(), graph_->nodes.size());
  for (size_t i = 0; i < graph_->nodes.size(); ++i)
    for (int32_t t : graph_->nodes[i].inputs) last_use_[t] = i;
  for (int32_t t : graph_->outputs) last_use_[t] = SIZE_MAX;
  release_file_pages(*graph_);  // what preparing read beside the weights
}

// An Add fused into the convolution that makes its later operand: the convolution (no
// activation of its own, read by the Add alone) adds the earlier operand in its epilogue, takes the
// Add's activation and writes the Add's output; the Add does nothing.
void FloatExecutor::fuse_adds() {
  const Graph& g = *graph_;
  std::vector<int32_t> producer(g.tensors.size(), -1), readers(g.tensors.size(), 0);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    producer[g.nodes[i].outputs[0]] = static_cast<int32_t>(i);
    for (int32_t t : g.nodes[i].inputs) ++readers[t];
  }
  for (int32_t t : g.outputs) ++readers[t];
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& add = g.nodes[i];
    if (add.op != OpCode::Add) continue;
    const int32_t t0 = add.inputs[0], t1 = add.inputs[1];
    const bool later_is_0 = producer[t0] > producer[t1];
    const int32_t made = later_is_0 ? t0 : t1, other = later_is_0 ? t1 : t0, p = producer[made];
    if (p < 0 || t0 == t1) continue;
    const Node& conv = g.nodes[p];
    if (conv.op != OpCode::Conv || conv.activation != Activation::None || readers[made] != 1) continue;
    prepared_[p].residual = other;
    prepared_[p].writes = add.outputs[0];
    prepared_[p].act = add.activation;
    prepared_[i].fused_away = true;
  }
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

FusedLayer prepare_fused_layer(const Graph& g, const Node& n, const k8::KernelTable& table) {
  // A convolution's taps are its kernel rows (FmaConv): a row's kernel_w * channels values lie
  // side by side in the padded input.
  const auto& s = n.weights.shape;
  const bool conv = n.op == OpCode::Conv;
  const int32_t kh = conv ? s[2] : 1, kw = conv ? s[3] : 1;
  FusedLayer f;
  f.weights = k8::pack_fma_weights(n.weights.codes.as<float>().data(), s[0], s[1], kh, kw, table.f32_block);
  f.bias = k8::pad_fma_bias(n.bias.as<float>().data(), s[0], table.f32_block);
  f.taps = conv ? k8::fma_taps(shape3(g.tensors[n.inputs[0]]), n.window) : std::vector<int64_t>{0};
  return f;
}

void run_fused_layer(const Graph& g, const Node& n, const FusedLayer& layer, const k8::KernelTable& table, int32_t batch,
                     const float* in, const float* residual, Activation act, float* out, std::vector<float>& scratch) {
  const Shape3 is = shape3(g.tensors[n.inputs[0]]), os = shape3(g.tensors[n.outputs[0]]);
  k8::FmaConv L;
  if (n.op == OpCode::FullyConnected) {  // one pixel an image, one tap
    L.c = static_cast<int32_t>(n.weights.shape[1]);
    L.o = os.c;
    L.image_step = L.c;
    L.tap_offset = layer.taps.data();
  } else {
    const Window& w = n.window;
    L = k8::fma_conv(is, os, w, layer.taps);
    if (w.pad_top || w.pad_left || w.pad_bottom || w.pad_right) {  // zeros around each image
      scratch.resize(static_cast<size_t>(batch * L.image_step));
      float* padded = scratch.data();
      tbb::parallel_for(0, batch, [&](int32_t im) { k8::pad_nhwc(in + im * is.size(), is, w, padded + im * L.image_step); });
      in = padded;
    }
  }
  L.act = act;
  L.residual = residual;
  const int64_t pixels = int64_t{batch} * L.pixels, piece = k8::fma_piece(pixels), pieces = (pixels + piece - 1) / piece;
  const int32_t blocks = k8::fma_blocks(L.o, table.f32_block);
  tbb::parallel_for(tbb::blocked_range2d<int64_t, int32_t>(0, pieces, 1, 0, blocks, 1),
                    [&](const tbb::blocked_range2d<int64_t, int32_t>& r) {
                      table.conv_f32_fma(L, in, layer.weights.data(), layer.bias.data(), out, r.rows().begin() * piece,
                                         std::min(pixels, r.rows().end() * piece), r.cols().begin(), r.cols().end());
                    });
}

FloatNodes::FloatNodes(const Graph& g, size_t begin, size_t end)
    : g_(g), table_(k8::table_for(k8::select_isa())), layers_(end) {
  for (size_t ni = begin; ni < end; ++ni)
    if (has_weights(g.nodes[ni])) layers_[ni] = prepare_fused_layer(g, g.nodes[ni], table_);
}

void FloatNodes::run(size_t ni, int32_t batch, const std::vector<const float*>& inputs, Activation act, float* out,
                     std::vector<float>& scratch) const {
  const Node& n = g_.nodes[ni];
  run_fused_node(g_, n, layers_[ni], table_, batch, inputs, nullptr, has_weights(n) ? act : n.activation, out, scratch);
}

void run_fused_node(const Graph& g, const Node& n, const FusedLayer& layer, const k8::KernelTable& table, int32_t batch,
                    const std::vector<const float*>& ins, const float* residual, Activation act, float* out,
                    std::vector<float>& scratch) {
  const Shape3 is = shape3(g.tensors[n.inputs[0]]), os = shape3(g.tensors[n.outputs[0]]);
  const float* in = ins[0];
  switch (n.op) {
    case OpCode::Conv:
    case OpCode::FullyConnected:
      run_fused_layer(g, n, layer, table, batch, in, residual, act, out, scratch);
      break;
    case OpCode::MaxPool:
    case OpCode::AveragePool:
      tbb::parallel_for(tbb::blocked_range2d<int32_t>(0, batch, 1, 0, os.h, 4), [&](const tbb::blocked_range2d<int32_t>& r) {
        for (int32_t im = r.rows().begin(); im < r.rows().end(); ++im) {
          const float* src = in + im * is.size();
          float* dst = out + im * os.size();
          if (n.op == OpCode::MaxPool) k8::max_pool_nhwc(src, is, n.window, dst, os, r.cols().begin(), r.cols().end());
          else k8::average_pool_nhwc(src, is, n.window, n.count_include_pad, dst, os, r.cols().begin(), r.cols().end());
        }
      });
      break;
    case OpCode::GlobalAveragePool:
      tbb::parallel_for(0, batch, [&](int32_t im) { k8::global_average_pool_nhwc(in + im * is.size(), is, out + im * os.size()); });
      break;
    case OpCode::Flatten:  // the reference's order: channels first
      k8::nhwc_to_nchw(in, batch, is, out);
      break;
    case OpCode::Add:
    case OpCode::Relu:  // elementwise: any layout
      run_float_node(g, n, nullptr, batch, ins, out);
      break;
  }
}

float* FloatBuffers::take(size_t floats) {
  Buffer* best = nullptr;
  for (Buffer& b : buffers_)
    if (!b.used && b.size >= floats && (!best || b.size < best->size)) best = &b;
  if (!best) best = &buffers_.emplace_back(Buffer{std::make_unique_for_overwrite<float[]>(floats), floats, false});
  best->used = true;
  return best->data.get();
}

void FloatBuffers::give(const float* p) {
  for (Buffer& b : buffers_)
    if (b.data.get() == p) b.used = false;
}

std::vector<float> FloatExecutor::run(std::span<const float> input, int32_t batch) const {
  FloatBuffers buffers;
  return run(input, batch, buffers);
}

std::vector<float> FloatExecutor::run(std::span<const float> input, int32_t batch, FloatBuffers& buffers) const {
  const Graph& g = *graph_;
  const int64_t in_elems = g.input().elements();
  if (batch < 1 || static_cast<int64_t>(input.size()) != in_elems * batch)
    fail("cannot run model: {} input values for a batch of {} images of {} values", input.size(), batch,
         in_elems);
  // Each tensor's values, given back after its last reader; the input is read where it lies
  // (reference) or copied to [N][H][W][C] (fused). Nothing is zero-filled: every kernel writes
  // all of its output.
  std::vector<float*> owned(g.tensors.size(), nullptr);
  std::vector<const float*> values(g.tensors.size());
  values[g.inputs[0]] = input.data();
  std::vector<const float*> ins;
  const bool fused = path_ == FloatPath::Fused;
  if (fused) {
    owned[g.inputs[0]] = buffers.take(static_cast<size_t>(in_elems * batch));
    k8::nchw_to_nhwc(input.data(), batch, shape3(g.input()), owned[g.inputs[0]]);
    values[g.inputs[0]] = owned[g.inputs[0]];
  }
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    const Node& n = g.nodes[ni];
    const Prepared& p = prepared_[ni];
    if (!p.fused_away) {
      ins.clear();
      for (int32_t t : n.inputs) ins.push_back(values[t]);
      const int32_t o = p.writes >= 0 ? p.writes : n.outputs[0];
      values[o] = owned[o] = buffers.take(static_cast<size_t>(g.tensors[o].elements() * batch));
      if (fused)
        run_fused_node(g, n, p.layer, *table_, batch, ins, p.residual >= 0 ? values[p.residual] : nullptr,
                       p.writes >= 0 ? p.act : n.activation, owned[o], buffers.padded);
      else run_float_node(g, n, p.layer.weights.data(), batch, ins, owned[o]);
    }
    for (int32_t t : n.inputs)
      if (last_use_[t] == ni && owned[t]) buffers.give(std::exchange(owned[t], nullptr));
  }
  const int32_t out = g.outputs[0];
  std::vector<float> result(static_cast<size_t>(g.tensors[out].elements() * batch));
  if (fused) k8::nhwc_to_nchw(values[out], batch, shape3(g.tensors[out]), result.data());
  else std::copy(values[out], values[out] + result.size(), result.begin());
  buffers.give(owned[out]);
  return result;
}

}  // namespace trit

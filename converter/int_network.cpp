#include "int_network.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <functional>

#include "quantized_io.h"
#include "trit/error.h"

namespace trit {

struct IntNetwork::Layer {
  std::shared_ptr<const Graph> one;      // the layer alone, for the engine
  std::unique_ptr<Engine> engine;        // integer layers
  std::unique_ptr<Workspace> workspace;
  PreparedLayer reference;               // a layer kept in float
};

IntNetwork::IntNetwork(const Graph& g, const FloatStatistics& fs, int32_t chunk)
    : g_(g), fs_(fs), chunk_(chunk), layers_(g.nodes.size()), kept_(g.tensors.size()) {}

namespace {

// 8-bit values to bytes (u8, or s8's two's complement byte) and back, over the threads.
void in_blocks(size_t n, const std::function<void(size_t, size_t)>& f) {
  tbb::parallel_for(tbb::blocked_range<size_t>(0, n, 65536), [&](const tbb::blocked_range<size_t>& r) { f(r.begin(), r.end()); });
}
std::vector<uint8_t> to_bytes(const std::vector<int32_t>& v) {
  std::vector<uint8_t> bytes(v.size());
  in_blocks(v.size(), [&](size_t j0, size_t j1) {
    for (size_t j = j0; j < j1; ++j) bytes[j] = static_cast<uint8_t>(v[j]);
  });
  return bytes;
}
void from_bytes(const std::vector<uint8_t>& bytes, bool is_signed, std::vector<int32_t>& v) {
  v.resize(bytes.size());
  in_blocks(bytes.size(), [&](size_t j0, size_t j1) {
    if (is_signed)
      for (size_t j = j0; j < j1; ++j) v[j] = static_cast<int8_t>(bytes[j]);
    else
      for (size_t j = j0; j < j1; ++j) v[j] = bytes[j];
  });
}

}  // namespace

IntNetwork::~IntNetwork() = default;

IntChunk IntNetwork::load(int32_t tensor, int64_t first, int64_t count) const {
  IntChunk c;
  c.first = first;
  c.count = count;
  c.values.resize(g_.tensors.size());
  const Tensor& t = g_.tensors[tensor];
  if (tensor == g_.inputs[0]) {
    const int32_t h = t.shape[1], w = t.shape[2];
    std::vector<Image> images(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      images[i].width = w;
      images[i].height = h;
      images[i].pixels.resize(static_cast<size_t>(fs_.fitted->record_bytes()));
      fs_.fitted->read(first + i, 1, images[i].pixels.data());
    }
    c.values[tensor] = quantize_images(g_, images);
    return c;
  }
  if (tensor != trunk_tensor_) fail("quantize: segment input '{}' was not kept", t.name);
  std::vector<uint8_t> bytes(static_cast<size_t>(count * trunk_->record_bytes()));
  trunk_->read(first, count, bytes.data());
  from_bytes(bytes, t.type == ElementType::Int8, c.values[tensor]);
  return c;
}

void IntNetwork::prepare(size_t ni) {
  const Node& n = g_.nodes[ni];
  auto layer = std::make_unique<Layer>();
  auto one = std::make_shared<Graph>();
  one->tensors = {g_.tensors[n.inputs[0]], g_.tensors[n.outputs[0]]};
  one->nodes.push_back(n);
  one->nodes[0].inputs = {0};
  one->nodes[0].outputs = {1};
  one->inputs = {0};
  one->outputs = {1};
  if (Engine::unsupported_reason(*one).empty()) {
    layer->engine = std::make_unique<Engine>(one);
    layer->workspace = std::make_unique<Workspace>(*layer->engine, chunk_);
  } else {
    layer->reference = prepare_layer(g_, n);
  }
  layer->one = std::move(one);
  layers_[ni] = std::move(layer);
}

void IntNetwork::run(size_t ni, IntChunk& c, bool cache) {
  const Node& n = g_.nodes[ni];
  const int32_t out = n.outputs[0];
  Kept& kept = kept_[out];
  const bool int8 = g_.tensors[out].type != ElementType::Int32;
  if (cache && int8 && kept.records && c.first + c.count <= kept.images) {
    std::vector<uint8_t> bytes(static_cast<size_t>(c.count * kept.records->record_bytes()));
    kept.records->read(c.first, c.count, bytes.data());
    from_bytes(bytes, g_.tensors[out].type == ElementType::Int8, c.values[out]);
    return;
  }
  std::vector<int32_t>& y = c.values[out];
  y.resize(static_cast<size_t>(g_.tensors[out].elements() * c.count));
  if (!has_weights(n)) {
    std::vector<const int32_t*> ins;
    for (int32_t t : n.inputs) ins.push_back(c.values[t].data());
    run_int_node(g_, n, nullptr, static_cast<int32_t>(c.count), ins, y.data());
    keep_output(out, c, cache && int8);
    return;
  }
  Layer& layer = *layers_[ni];
  if (layer.engine) layer.engine->run_into(*layer.workspace, c.values[n.inputs[0]], y);
  else run_int_node(g_, n, &layer.reference, static_cast<int32_t>(c.count), {c.values[n.inputs[0]].data()}, y.data());
  keep_output(out, c, cache && int8);
}

void IntNetwork::keep_output(int32_t t, const IntChunk& c, bool cache) {
  Kept& kept = kept_[t];
  if (!cache || c.first != kept.images) return;  // chunks in order from the first image only
  if (!kept.records) kept.records = std::make_unique<ImageRecords>(g_.tensors[t].elements());
  kept.records->write(c.first, c.count, to_bytes(c.values[t]).data());
  kept.images = c.first + c.count;
}

void IntNetwork::forget() {
  for (Kept& k : kept_) k = Kept{};
}

void IntNetwork::keep(int32_t tensor, const IntChunk& c) {
  if (next_tensor_ != tensor) {
    next_ = std::make_unique<ImageRecords>(g_.tensors[tensor].elements());
    next_tensor_ = tensor;
  }
  next_->write(c.first, c.count, to_bytes(c.values[tensor]).data());
}

void IntNetwork::end_segment() {
  forget();
  trunk_ = std::move(next_);
  trunk_tensor_ = next_tensor_;
  next_tensor_ = -1;
}

}  // namespace trit

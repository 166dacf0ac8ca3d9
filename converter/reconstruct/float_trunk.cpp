#include "float_trunk.h"

#include <algorithm>

#include "float_executor.h"
#include "float_nhwc.h"
#include "trit/error.h"

namespace trit::recon {

FloatTrunk::FloatTrunk(const Graph& g, const FloatStatistics& fs, int32_t count, int32_t chunk) : g_(g), chunk_(chunk) {
  const int64_t n = std::min<int64_t>(count, fs.images);
  for (int64_t j = 0; j < n; ++j) images_.push_back(j * fs.images / n);
  const Tensor& input = g.input();
  in_tensor_ = g.inputs[0];
  in_ = std::make_unique<ImageRecords>(input.elements() * static_cast<int64_t>(sizeof(float)));
  Image im;
  im.height = input.shape[1];
  im.width = input.shape[2];
  im.pixels.resize(static_cast<size_t>(fs.fitted->record_bytes()));
  std::vector<float> x(static_cast<size_t>(input.elements()));
  for (int64_t j = 0; j < n; ++j) {
    fs.fitted->read(images_[j], 1, im.pixels.data());
    normalize(im, g.metadata, x);
    in_->write(j, 1, x.data());
  }
}

void FloatTrunk::run(const Segment& seg) {
  if (seg.input != in_tensor_) fail("reconstruct: the float trunk holds another tensor than segment input '{}'", g_.tensors[seg.input].name);
  out_ = std::make_unique<ImageRecords>(g_.tensors[seg.output].elements() * static_cast<int64_t>(sizeof(float)));
  out_tensor_ = seg.output;
  const FloatNodes nodes(g_, seg.begin, seg.end);
  FloatBuffers buffers;  // the tensors, [N][H][W][C]; the records hold [N][C][H][W]
  const Shape3 in_shape = shape3(g_.tensors[seg.input]), out_shape = shape3(g_.tensors[seg.output]);
  std::vector<float> io;
  for (int64_t first = 0; first < size(); first += chunk_) {
    const int64_t count = std::min<int64_t>(chunk_, size() - first);
    std::vector<float*> values(g_.tensors.size(), nullptr);
    io.resize(static_cast<size_t>(in_shape.size() * count));
    in_->read(first, count, io.data());
    values[seg.input] = buffers.take(io.size());
    k8::nchw_to_nhwc(io.data(), static_cast<int32_t>(count), in_shape, values[seg.input]);
    for (size_t ni = seg.begin; ni < seg.end; ++ni) {
      const Node& n = g_.nodes[ni];
      std::vector<const float*> ins;
      for (int32_t t : n.inputs) ins.push_back(values[t]);
      float* y = values[n.outputs[0]] = buffers.take(static_cast<size_t>(g_.tensors[n.outputs[0]].elements() * count));
      nodes.run(ni, static_cast<int32_t>(count), ins, n.activation, y, buffers.padded);
    }
    io.resize(static_cast<size_t>(out_shape.size() * count));
    k8::nhwc_to_nchw(values[seg.output], static_cast<int32_t>(count), out_shape, io.data());
    out_->write(first, count, io.data());
    for (float* v : values)
      if (v) buffers.give(v);
  }
}

void FloatTrunk::next() {
  in_ = std::move(out_);
  in_tensor_ = out_tensor_;
}

}  // namespace trit::recon

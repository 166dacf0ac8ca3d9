#include "quantized_io.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "trit/error.h"

namespace trit {

std::vector<int32_t> quantize_images(const Graph& g, std::span<const Image> images) {
  const Tensor& in = g.input();
  const Metadata& m = g.metadata;
  const Range r = range_of(in.type);
  const size_t channels = static_cast<size_t>(in.shape[0]);
  // The table, in double: the same bits on every machine.
  std::vector<std::array<int32_t, 256>> lut(channels);
  for (size_t c = 0; c < channels; ++c)
    for (int p = 0; p < 256; ++p) {
      const double v = (p - static_cast<double>(m.mean[c])) / m.scale[c];
      lut[c][p] = static_cast<int32_t>(std::clamp(std::floor(std::ldexp(v, in.exponent) + 0.5),
                                                  static_cast<double>(r.lo), static_cast<double>(r.hi)));
    }
  const size_t plane = static_cast<size_t>(in.shape[1]) * in.shape[2];
  std::vector<int32_t> out(images.size() * channels * plane);
  for (size_t im = 0; im < images.size(); ++im) {
    const Image& img = images[im];
    if (img.width != in.shape[2] || img.height != in.shape[1] || img.pixels.size() != plane * 3)
      fail("cannot quantize a {}x{} image ({} bytes) for a {}x{} input", img.width, img.height, img.pixels.size(),
           in.shape[2], in.shape[1]);
    for (size_t c = 0; c < channels; ++c) {
      const size_t src = m.channel_order == ChannelOrder::BGR ? 2 - c : c;
      int32_t* dst = out.data() + (im * channels + c) * plane;
      for (size_t p = 0; p < plane; ++p) {
        const uint8_t* px = img.pixels.data() + p * 3;
        // A one-channel model reads the rounded mean of R, G and B.
        const int v = channels == 3 ? px[src] : (px[0] + px[1] + px[2] + 1) / 3;
        dst[p] = lut[c][v];
      }
    }
  }
  return out;
}

std::vector<int32_t> quantize_tensor(const Graph& g, std::span<const float> values) {
  const Tensor& in = g.input();
  const Range r = range_of(in.type);
  std::vector<int32_t> q(values.size());
  for (size_t j = 0; j < values.size(); ++j) {
    if (std::isnan(values[j])) fail("cannot run model: input value {} is NaN", j);
    q[j] = static_cast<int32_t>(std::clamp(std::floor(std::ldexp(static_cast<double>(values[j]), in.exponent) + 0.5),
                                           double(r.lo), double(r.hi)));
  }
  return q;
}

std::vector<float> dequantize(std::span<const int32_t> values, int32_t exponent) {
  std::vector<float> out(values.size());
  for (size_t j = 0; j < values.size(); ++j) out[j] = static_cast<float>(std::ldexp(static_cast<double>(values[j]), -exponent));
  return out;
}

}  // namespace trit

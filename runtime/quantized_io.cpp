#include "quantized_io.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "trit/error.h"

namespace trit {

namespace {

// floor((pixel - mean) / scale * 2^f + 0.5), saturated, per channel and pixel value, in double:
// the same bits on every machine.
std::vector<std::array<int32_t, 256>> input_table(const Graph& g) {
  const Tensor& in = g.input();
  const Metadata& m = g.metadata;
  const Range r = range_of(in.type);
  std::vector<std::array<int32_t, 256>> lut(static_cast<size_t>(in.shape[0]));
  for (size_t c = 0; c < lut.size(); ++c)
    for (int p = 0; p < 256; ++p) {
      const double v = (p - static_cast<double>(m.mean[c])) / m.scale[c];
      lut[c][p] = static_cast<int32_t>(std::clamp(std::floor(std::ldexp(v, in.exponent) + 0.5),
                                                  static_cast<double>(r.lo), static_cast<double>(r.hi)));
    }
  return lut;
}

// One fitted image's pixels to the input's integers.
void quantize_one(const Graph& g, const std::vector<std::array<int32_t, 256>>& lut, const uint8_t* pixels, int32_t* out) {
  const Tensor& in = g.input();
  const size_t channels = lut.size();
  const size_t plane = static_cast<size_t>(in.shape[1]) * in.shape[2];
  for (size_t c = 0; c < channels; ++c) {
    const size_t src = g.metadata.channel_order == ChannelOrder::BGR ? 2 - c : c;
    int32_t* dst = out + c * plane;
    for (size_t p = 0; p < plane; ++p) {
      const uint8_t* px = pixels + p * 3;
      // A one-channel model reads the rounded mean of R, G and B.
      const int v = channels == 3 ? px[src] : (px[0] + px[1] + px[2] + 1) / 3;
      dst[p] = lut[c][v];
    }
  }
}

}  // namespace

std::vector<int32_t> quantize_images(const Graph& g, std::span<const Image> images) {
  const Tensor& in = g.input();
  const auto lut = input_table(g);
  const size_t plane = static_cast<size_t>(in.shape[1]) * in.shape[2];
  std::vector<int32_t> out(images.size() * lut.size() * plane);
  for (size_t im = 0; im < images.size(); ++im) {
    const Image& img = images[im];
    if (img.width != in.shape[2] || img.height != in.shape[1] || img.pixels.size() != plane * 3)
      fail("cannot quantize a {}x{} image ({} bytes) for a {}x{} input", img.width, img.height, img.pixels.size(),
           in.shape[2], in.shape[1]);
    quantize_one(g, lut, img.pixels.data(), out.data() + im * lut.size() * plane);
  }
  return out;
}

std::vector<int32_t> quantize_pixels(const Graph& g, std::span<const uint8_t> rgb, int64_t images) {
  const Tensor& in = g.input();
  const auto lut = input_table(g);
  const size_t plane = static_cast<size_t>(in.shape[1]) * in.shape[2];
  if (images < 1 || rgb.size() != static_cast<size_t>(images) * plane * 3)
    fail("cannot quantize {} bytes as {} images of {}x{} pixels", rgb.size(), images, in.shape[2], in.shape[1]);
  std::vector<int32_t> out(static_cast<size_t>(images) * lut.size() * plane);
  for (int64_t im = 0; im < images; ++im)
    quantize_one(g, lut, rgb.data() + im * plane * 3, out.data() + im * lut.size() * plane);
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

#include "float_nhwc.h"

#include <algorithm>
#include <limits>

#include "float_ref.h"

namespace trit::k8 {

int32_t fma_blocks(int32_t o, int32_t block) { return (o + block - 1) / block; }

std::vector<float> pack_fma_weights(const float* w, int32_t o, int32_t c, int32_t kh, int32_t kw, int32_t block) {
  std::vector<float> p(static_cast<size_t>(fma_blocks(o, block)) * block * c * kh * kw, 0.0f);
  for (int32_t ch = 0; ch < o; ++ch) {
    const int32_t b = ch / block, l = ch % block;
    for (int32_t i = 0; i < c; ++i)
      for (int32_t ky = 0; ky < kh; ++ky)
        for (int32_t kx = 0; kx < kw; ++kx)
          p[((int64_t{b} * kh + ky) * kw * c + int64_t{kx} * c + i) * block + l] = w[((int64_t{ch} * c + i) * kh + ky) * kw + kx];
  }
  return p;
}

int64_t fma_piece(int64_t pixels) {
  const int64_t pieces = (pixels + kFmaPiece - 1) / kFmaPiece, even = (pixels + pieces - 1) / pieces;
  return (even + kFmaTile - 1) / kFmaTile * kFmaTile;
}

Shape3 fma_padded(Shape3 in, const Window& w) {
  return {in.c, in.h + w.pad_top + w.pad_bottom, in.w + w.pad_left + w.pad_right};
}

std::vector<int64_t> fma_taps(Shape3 in, const Window& w) {
  std::vector<int64_t> taps;
  for (int32_t ky = 0; ky < w.kernel_h; ++ky) taps.push_back(int64_t{ky} * fma_padded(in, w).w * in.c);
  return taps;
}

FmaConv fma_conv(Shape3 in, Shape3 out, const Window& w, const std::vector<int64_t>& taps) {
  const Shape3 p = fma_padded(in, w);
  FmaConv L;
  L.c = w.kernel_w * in.c;
  L.o = out.c;
  L.ow = out.w;
  L.pixels = out.h * out.w;
  L.image_step = p.size();
  L.row_step = int64_t{w.stride_h} * p.w * in.c;
  L.pixel_step = int64_t{w.stride_w} * in.c;
  L.taps = static_cast<int32_t>(taps.size());
  L.tap_offset = taps.data();
  return L;
}

std::vector<float> pad_fma_bias(const float* bias, int32_t o, int32_t block) {
  std::vector<float> p(static_cast<size_t>(fma_blocks(o, block)) * block, 0.0f);
  if (bias) std::copy(bias, bias + o, p.begin());
  return p;
}

namespace {

// y [cols][rows] = x [rows][cols] transposed, in tiles of 32 x 32 (each tile's rows and columns
// stay in L1).
void transpose(const float* x, int64_t rows, int64_t cols, float* y) {
  constexpr int64_t kT = 32;
  for (int64_t i0 = 0; i0 < rows; i0 += kT)
    for (int64_t j0 = 0; j0 < cols; j0 += kT) {
      const int64_t i1 = std::min(rows, i0 + kT), j1 = std::min(cols, j0 + kT);
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < j1; ++j) y[j * rows + i] = x[i * cols + j];
    }
}

}  // namespace

void nchw_to_nhwc(const float* x, int32_t n, Shape3 s, float* y) {
  for (int32_t im = 0; im < n; ++im) transpose(x + im * s.size(), s.c, int64_t{s.h} * s.w, y + im * s.size());
}

void nhwc_to_nchw(const float* x, int32_t n, Shape3 s, float* y) {
  for (int32_t im = 0; im < n; ++im) transpose(x + im * s.size(), int64_t{s.h} * s.w, s.c, y + im * s.size());
}

void pad_nhwc(const float* x, Shape3 s, const Window& w, float* y) {
  const int32_t hp = s.h + w.pad_top + w.pad_bottom, wp = s.w + w.pad_left + w.pad_right;
  std::fill_n(y, int64_t{hp} * wp * s.c, 0.0f);
  for (int32_t r = 0; r < s.h; ++r)
    std::copy_n(x + int64_t{r} * s.w * s.c, int64_t{s.w} * s.c,
                y + ((int64_t{r} + w.pad_top) * wp + w.pad_left) * s.c);
}

namespace {

// The input pixels inside output pixel (y, x)'s window, in (ky, kx) order, as the reference walks
// them: f(first channel of the pixel).
template <class F>
void taps_inside(const float* in, Shape3 is, const Window& w, int32_t y, int32_t x, F f) {
  for (int32_t ky = 0; ky < w.kernel_h; ++ky) {
    const int32_t iy = y * w.stride_h - w.pad_top + ky;
    if (iy < 0 || iy >= is.h) continue;
    for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
      const int32_t ix = x * w.stride_w - w.pad_left + kx;
      if (ix >= 0 && ix < is.w) f(in + (int64_t{iy} * is.w + ix) * is.c);
    }
  }
}

}  // namespace

void max_pool_nhwc(const float* in, Shape3 is, const Window& w, float* out, Shape3 os, int32_t y0, int32_t y1) {
  for (int32_t y = y0; y < y1; ++y)
    for (int32_t x = 0; x < os.w; ++x) {
      float* dst = out + (int64_t{y} * os.w + x) * os.c;
      std::fill_n(dst, is.c, -std::numeric_limits<float>::infinity());
      taps_inside(in, is, w, y, x, [&](const float* src) {
        for (int32_t c = 0; c < is.c; ++c) dst[c] = std::max(dst[c], src[c]);
      });
    }
}

void average_pool_nhwc(const float* in, Shape3 is, const Window& w, bool count_include_pad, float* out, Shape3 os,
                       int32_t y0, int32_t y1) {
  for (int32_t y = y0; y < y1; ++y)
    for (int32_t x = 0; x < os.w; ++x) {
      float* dst = out + (int64_t{y} * os.w + x) * os.c;
      std::fill_n(dst, is.c, 0.0f);
      taps_inside(in, is, w, y, x, [&](const float* src) {
        for (int32_t c = 0; c < is.c; ++c) dst[c] += src[c];
      });
      const auto divisor = static_cast<float>(ref::average_pool_divisor(is, w, count_include_pad, y, x));
      for (int32_t c = 0; c < is.c; ++c) dst[c] /= divisor;
    }
}

void global_average_pool_nhwc(const float* in, Shape3 is, float* out) {
  const int64_t plane = int64_t{is.h} * is.w;
  std::vector<double> sum(static_cast<size_t>(is.c), 0.0);
  for (int64_t p = 0; p < plane; ++p)
    for (int32_t c = 0; c < is.c; ++c) sum[c] += in[p * is.c + c];
  for (int32_t c = 0; c < is.c; ++c) out[c] = static_cast<float>(sum[c] / static_cast<double>(plane));
}

}  // namespace trit::k8

// A layer's calibration sample: the rows its weights multiply, at a strided sample of output
// pixels over every calibration image, and the float network's outputs there. The statistics
// every weight fit works from. The set of pixels is fixed by the number of images, so the sample
// can be gathered image chunk by image chunk (the quantizer streams) and comes out the same.
//
// Pixels: position p = image * OH * OW + y * OW + x over all N images; at most max_rows of them:
// with stride = ceil(N * OH * OW / max_rows), row r's pixel lies in [r * stride, (r + 1) *
// stride), at an offset drawn from a hash of r. (Not at the window's start: a stride that is a
// multiple of the width would sample one column only, as 32 did on a 32 x 32 map.) A row is the
// im2col of the layer's input at that pixel: K = C * KH * KW values in [I][KH][KW] order (the
// weights' column order), padded taps 0. A fully connected layer is a 1x1 convolution of its
// [K, 1, 1] input.
#pragma once

#include <cstdint>
#include <vector>

#include "trit/graph.h"

namespace trit {

struct SamplePlan {
  int64_t plane = 1;      // OH * OW
  int64_t stride = 1;     // positions per sampled one
  int64_t rows = 0;       // sampled positions
  int64_t positions = 0;  // N * OH * OW
  // Row r's position (increasing with r).
  int64_t position(int64_t r) const;
  // The sampled rows whose pixels lie in images [begin, end): rows [first, last).
  std::pair<int64_t, int64_t> rows_in(int64_t begin, int64_t end) const;
};
SamplePlan sample_plan(int64_t images, Shape3 out, int64_t max_rows);

// The rows sampled for a layer of k weight columns (max_rows above): 32 a column, for the Gram
// matrix and the weight refit (weight_quant.h) are estimated from them, at least 16384, and at
// most 2^27 / k, so that one layer's sample holds at most 512 MB of floats.
int64_t sample_rows(int64_t k);

struct LayerSample {
  std::vector<float> cols;  // [rows][k]
  int64_t rows = 0, k = 0;
};

// Writes into s (sized rows x k) the rows of images [begin, begin + count), whose layer input
// is x ([count][C][H][W] integers of exponent f, taken as the reals m * 2^-f).
void gather_rows(const SamplePlan& plan, const std::vector<int32_t>& x, int32_t exponent, Shape3 in, const Window& window,
                 Shape3 out, int64_t begin, int64_t count, LayerSample& s);
// The values of y ([count][O][OH * OW], or channels_last: [count][OH * OW][O]) of images
// [begin, begin + count) at the sampled pixels, as rows [first, last) of [rows][O], written to
// dst + first * O.
template <typename T>
void gather_pixels(const SamplePlan& plan, const T* y, int32_t channels, int64_t begin, int64_t count, T* dst,
                   bool channels_last) {
  const auto [first, last] = plan.rows_in(begin, begin + count);
  const int64_t channel_step = channels_last ? 1 : plan.plane, pixel_step = channels_last ? channels : 1;
  for (int64_t r = first; r < last; ++r) {
    const int64_t p = plan.position(r), im = p / plan.plane - begin, pix = p % plan.plane;
    const T* src = y + im * channels * plan.plane + pix * pixel_step;
    for (int32_t o = 0; o < channels; ++o) dst[r * channels + o] = src[o * channel_step];
  }
}

}  // namespace trit

// A layer's calibration sample: the rows its weights multiply, at a strided sample of output
// pixels, and what the float network gives there. The statistics every weight fit works from.
//
// Pixels: position p = image * OH * OW + y * OW + x over the batch; at most max_rows of them,
// p = r * stride with stride = ceil(positions / max_rows). A row is the im2col of the layer's
// input at that pixel: K = C * KH * KW values in [I][KH][KW] order (the weights' column order),
// padded taps 0. A fully connected layer is a 1x1 convolution of its [K, 1, 1] input.
#pragma once

#include <cstdint>
#include <vector>

#include "trit/graph.h"

namespace trit {

struct LayerSample {
  std::vector<float> cols;  // [rows][k]
  int64_t rows = 0, k = 0, stride = 1;
  int64_t plane = 1;        // OH * OW: position p is image p / plane, pixel p % plane
};

// The rows of input x ([batch][C][H][W] reals) for a layer with this window and output shape.
LayerSample sample_rows(const std::vector<float>& x, Shape3 in, const Window& window, Shape3 out, int32_t batch,
                        int32_t max_rows);
// A [batch][O][OH * OW] tensor at the sample's pixels, as [rows][O].
std::vector<float> at_sampled_pixels(const LayerSample& s, const std::vector<float>& y, int32_t channels);

}  // namespace trit

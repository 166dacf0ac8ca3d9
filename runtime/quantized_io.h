// The two ends of the integer pipeline: real values in, integers of the input's exponent; the
// final integers out, real values for the caller. The only floating point an integer model runs.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "trit/graph.h"
#include "trit/image.h"

namespace trit {

// The input quantizer: fitted images (the input's size) to the input tensor's integers,
// [N][C][H][W]: floor((pixel - mean) / scale * 2^f + 0.5), saturated to the input's type, through
// a table per channel computed in double (the same bits on every machine). Throws trit::Error for
// an image of another size.
std::vector<int32_t> quantize_images(const Graph& graph, std::span<const Image> images);
// The same on `images` fitted images packed one after another (N x H x W x 3 bytes).
std::vector<int32_t> quantize_pixels(const Graph& graph, std::span<const uint8_t> rgb, int64_t images);
// Normalized real values (what normalize() writes) to the input's integers: floor(x * 2^f + 0.5),
// saturated; a NaN is refused with trit::Error.
std::vector<int32_t> quantize_tensor(const Graph& graph, std::span<const float> values);
// Integers of exponent f to real values, exactly: m * 2^-f (e.g. the logits).
std::vector<float> dequantize(std::span<const int32_t> values, int32_t exponent);

}  // namespace trit

// Activation types and exponents: step 2 of the quantizer (quantize.h).
//
// Types: a tensor after a ReLU (fused, or a Relu op) is u8, others s8; MaxPool and Flatten keep
// their input's type; a graph output written by a layer is int32. The graph input is u8 when the
// preprocessing can give no negative value (every mean <= 0), else s8.
// Exponents: value = m * 2^-f with m = saturate(floor(x * 2^f + 0.5)), as the integer pipeline
// rounds. f is the exponent with the least squared error over a sample of the tensor's float
// calibration values (lse), or the largest that holds the largest magnitude (max).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "trit/graph.h"

namespace trit {

// Sets the element type of every tensor of g (exponents are chosen later).
void assign_types(Graph& g);

// A strided sample of a tensor's calibration values (every max(1, floor(n / 262144))-th of its
// n values over all images: fewer than 512 K), and their exact peak magnitude.
struct ExponentSample {
  std::vector<float> values;
  float peak = 0;
  // Values [offset, offset + v.size()) of the tensor's `total` ([N][C][H][W] over all images),
  // given in order (image chunk after image chunk): the sample is the same however the images
  // are chunked.
  void add(std::span<const float> v, int64_t offset, int64_t total);
  // The same values held channels last: v is whole images of shape s as [N][H][W][C]; offset
  // and total count positions in [N][C][H][W], so the sample is the one add() takes.
  void add_channels_last(std::span<const float> v, Shape3 s, int64_t offset, int64_t total);
  void add(std::span<const float> v) { add(v, 0, static_cast<int64_t>(v.size())); }
};

// The exponent in [-32, 32] for values of the sample in the range r (see above).
int32_t choose_exponent(const ExponentSample& sample, Range r, bool least_squared_error);

}  // namespace trit

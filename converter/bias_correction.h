// Bias correction: step 3 of the quantizer, after a layer's weights are quantized.
//
// Per output channel, the shift d of the bias that makes the quantized layer's pre-activation
// output yq match the float layer's yf, both [rows][channels] at the sampled pixels:
//   - before a ReLU: the mean of relu(yq + d) equals the mean of relu(yf). Solved exactly: with
//     yq sorted in decreasing order, mean relu(yq + d) = (S_k + k d) / rows while the k largest
//     are the positive ones (S_k their sum), so d = (rows * target - S_k) / k for the k whose
//     interval holds it. A channel whose float output is never positive gets d = -max yq - 1.
//   - elsewhere: d is the mean of yf - yq.
// (Correcting the mean before the ReLU instead made ternary ResNet-50 worse.)
#pragma once

#include <cstdint>
#include <vector>

namespace trit {

std::vector<double> bias_shifts(const std::vector<float>& yf, const std::vector<float>& yq, int32_t channels,
                                int64_t rows, bool relu);

}  // namespace trit

#include "bias_correction.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <functional>

namespace trit {

std::vector<double> bias_shifts(const std::vector<float>& yf, const std::vector<float>& yq, int32_t channels,
                                int64_t rows, bool relu) {
  std::vector<double> shift(channels, 0.0);
  tbb::parallel_for(0, channels, [&](int32_t c) {
    const double count = double(rows);
    if (!relu) {
      double d = 0;
      for (int64_t j = 0; j < rows; ++j) d += yf[j * channels + c] - yq[j * channels + c];
      shift[c] = d / count;
      return;
    }
    double target = 0;
    std::vector<double> a(static_cast<size_t>(rows));
    for (int64_t j = 0; j < rows; ++j) {
      target += std::max(yf[j * channels + c], 0.0f);
      a[j] = yq[j * channels + c];
    }
    std::sort(a.begin(), a.end(), std::greater<>());
    if (!(target > 0)) {
      shift[c] = -a[0] - 1;
      return;
    }
    double sum = 0;  // S_k, the sum of the k largest
    for (int64_t k = 1; k <= rows; ++k) {
      sum += a[k - 1];
      const double d = (target - sum) / double(k);  // target here is rows * mean
      const double next = k < rows ? a[k] : -INFINITY;
      if (a[k - 1] + d > 0 && next + d <= 0) {
        shift[c] = d;
        return;
      }
    }
  });
  return shift;
}

}  // namespace trit

#include "layer_sample.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

namespace trit {

SamplePlan sample_plan(int64_t images, Shape3 out, int32_t max_rows) {
  SamplePlan p;
  p.plane = int64_t{out.h} * out.w;
  const int64_t positions = images * p.plane;
  p.stride = std::max<int64_t>(1, (positions + max_rows - 1) / max_rows);
  p.rows = (positions + p.stride - 1) / p.stride;
  return p;
}

std::pair<int64_t, int64_t> SamplePlan::rows_in(int64_t begin, int64_t end) const {
  // Row r is sampled at position r * stride: the first r with r * stride >= begin * plane.
  const int64_t first = (begin * plane + stride - 1) / stride;
  const int64_t last = std::min(rows, (end * plane + stride - 1) / stride);
  return {std::min(first, last), last};
}

void gather_rows(const SamplePlan& plan, const std::vector<int32_t>& x, int32_t exponent, Shape3 is, const Window& w,
                 Shape3 os, int64_t begin, int64_t count, LayerSample& s) {
  const float unit = static_cast<float>(std::ldexp(1.0, -exponent));
  const auto [first, last] = plan.rows_in(begin, begin + count);
  tbb::parallel_for(first, last, [&](int64_t row) {
    const int64_t p = row * plan.stride;
    const int64_t im = p / plan.plane - begin, y = p / os.w % os.h, xo = p % os.w;
    float* dst = s.cols.data() + row * s.k;
    for (int32_t i = 0; i < is.c; ++i)
      for (int32_t ky = 0; ky < w.kernel_h; ++ky)
        for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
          const int64_t iy = y * w.stride_h - w.pad_top + ky, ix = xo * w.stride_w - w.pad_left + kx;
          float v = 0.0f;
          if (iy >= 0 && iy < is.h && ix >= 0 && ix < is.w)
            v = static_cast<float>(x[((im * is.c + i) * is.h + iy) * is.w + ix]) * unit;
          dst[(int64_t{i} * w.kernel_h + ky) * w.kernel_w + kx] = v;
        }
  });
}

}  // namespace trit

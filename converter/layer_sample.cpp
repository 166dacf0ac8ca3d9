#include "layer_sample.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

namespace trit {

int64_t sample_rows(int64_t k) { return std::min(std::max<int64_t>(16384, 32 * k), (int64_t{1} << 27) / std::max<int64_t>(k, 1)); }

SamplePlan sample_plan(int64_t images, Shape3 out, int64_t max_rows) {
  SamplePlan p;
  p.plane = int64_t{out.h} * out.w;
  p.positions = images * p.plane;
  p.stride = std::max<int64_t>(1, (p.positions + max_rows - 1) / max_rows);
  p.rows = (p.positions + p.stride - 1) / p.stride;
  return p;
}

int64_t SamplePlan::position(int64_t r) const {
  uint64_t x = static_cast<uint64_t>(r) * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;  // splitmix64
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  const int64_t start = r * stride, window = std::min(stride, positions - start);
  return start + static_cast<int64_t>(x % static_cast<uint64_t>(window));
}

std::pair<int64_t, int64_t> SamplePlan::rows_in(int64_t begin, int64_t end) const {
  // The first row at or past a position: row p / stride, or the next one when its sample falls
  // before p in its window.
  auto first_at = [&](int64_t p) {
    int64_t r = p / stride;
    if (r < rows && position(r) < p) ++r;
    return std::min(r, rows);
  };
  return {first_at(begin * plane), first_at(end * plane)};
}

void gather_rows(const SamplePlan& plan, const std::vector<int32_t>& x, int32_t exponent, Shape3 is, const Window& w,
                 Shape3 os, int64_t begin, int64_t count, LayerSample& s) {
  const float unit = static_cast<float>(std::ldexp(1.0, -exponent));
  const auto [first, last] = plan.rows_in(begin, begin + count);
  tbb::parallel_for(first, last, [&](int64_t row) {
    const int64_t p = plan.position(row);
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

#include "layer_sample.h"

#include <tbb/parallel_for.h>

#include <algorithm>

namespace trit {

LayerSample sample_rows(const std::vector<float>& x, Shape3 is, const Window& w, Shape3 os, int32_t batch,
                        int32_t max_rows) {
  LayerSample r;
  r.k = int64_t{is.c} * w.kernel_h * w.kernel_w;
  r.plane = int64_t{os.h} * os.w;
  const int64_t positions = int64_t{batch} * r.plane;
  r.stride = std::max<int64_t>(1, (positions + max_rows - 1) / max_rows);
  r.rows = (positions + r.stride - 1) / r.stride;
  r.cols.assign(static_cast<size_t>(r.rows * r.k), 0.0f);
  tbb::parallel_for(int64_t{0}, r.rows, [&](int64_t row) {
    const int64_t p = row * r.stride;
    const int64_t im = p / r.plane, y = p / os.w % os.h, xo = p % os.w;
    float* dst = r.cols.data() + row * r.k;
    for (int32_t i = 0; i < is.c; ++i)
      for (int32_t ky = 0; ky < w.kernel_h; ++ky)
        for (int32_t kx = 0; kx < w.kernel_w; ++kx) {
          const int64_t iy = y * w.stride_h - w.pad_top + ky, ix = xo * w.stride_w - w.pad_left + kx;
          if (iy < 0 || iy >= is.h || ix < 0 || ix >= is.w) continue;
          dst[(int64_t{i} * w.kernel_h + ky) * w.kernel_w + kx] = x[((im * is.c + i) * is.h + iy) * is.w + ix];
        }
  });
  return r;
}

std::vector<float> at_sampled_pixels(const LayerSample& s, const std::vector<float>& y, int32_t channels) {
  std::vector<float> out(static_cast<size_t>(s.rows) * channels);
  for (int64_t r = 0; r < s.rows; ++r) {
    const int64_t p = r * s.stride, im = p / s.plane, pix = p % s.plane;
    for (int32_t o = 0; o < channels; ++o) out[r * channels + o] = y[(im * channels + o) * s.plane + pix];
  }
  return out;
}

}  // namespace trit

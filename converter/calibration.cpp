#include "calibration.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <filesystem>

#include "trit/error.h"

namespace trit {

namespace fs = std::filesystem;

Image ImageFiles::fitted(size_t i, const Metadata& metadata, int32_t height, int32_t width) const {
  return fit_to_input(decode_image(paths_[i]), metadata, height, width);
}

std::vector<std::string> list_images(const std::string& dir, int32_t count) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("cannot calibrate: '{}' is not a folder", dir);
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && is_image_file(e.path().string())) files.push_back(e.path().string());
  if (ec) fail("cannot calibrate: cannot list '{}': {}", dir, ec.message());
  std::sort(files.begin(), files.end());
  if (files.empty()) fail("cannot calibrate: '{}' holds no JPEG, PNG or BMP images", dir);
  if (count > 0 && files.size() > static_cast<size_t>(count)) files.resize(count);
  return files;
}

CalibrationBatch load_calibration(const CalibrationSource& source, size_t begin, size_t end, const Graph& g) {
  const Tensor& input = g.input();
  const int64_t n = input.elements();
  CalibrationBatch b;
  b.fitted.resize(end - begin);
  b.normalized.resize(static_cast<size_t>(n) * (end - begin));
  tbb::parallel_for(begin, end, [&](size_t i) {
    Image& im = b.fitted[i - begin];
    im = source.fitted(i, g.metadata, input.shape[1], input.shape[2]);
    normalize(im, g.metadata, std::span(b.normalized).subspan((i - begin) * n, n));
  });
  return b;
}

}  // namespace trit

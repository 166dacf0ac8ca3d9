#include "calibration.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "trit/error.h"

namespace trit {

namespace fs = std::filesystem;

Image ImageFiles::original(size_t i) const { return decode_image(paths_[i]); }

Image ImageFiles::fitted(size_t i, const Metadata& metadata, int32_t height, int32_t width) const {
  return fit_to_input(original(i), metadata, height, width);
}

AugmentedViews::AugmentedViews(std::unique_ptr<CalibrationSource> base, int32_t views, uint64_t seed)
    : base_(std::move(base)), views_(views), seed_(seed) {
  if (views < 1) fail("cannot calibrate on {} views of each image", views);
}

std::string AugmentedViews::name(size_t i) const {
  const size_t v = i % static_cast<size_t>(views_);
  const std::string base = base_->name(i / static_cast<size_t>(views_));
  return v == 0 ? base : fmt::format("{}#view{}", base, v);
}

Image AugmentedViews::fitted(size_t i, const Metadata& metadata, int32_t height, int32_t width) const {
  const size_t image = i / static_cast<size_t>(views_), view = i % static_cast<size_t>(views_);
  if (view == 0) return base_->fitted(image, metadata, height, width);
  const Image im = base_->original(image);
  // A generator of its own per image and view: the same view whichever thread asks, in any order.
  std::seed_seq seq{static_cast<uint32_t>(seed_), static_cast<uint32_t>(seed_ >> 32), static_cast<uint32_t>(image),
                    static_cast<uint32_t>(image >> 32), static_cast<uint32_t>(view)};
  std::mt19937_64 rng(seq);
  std::uniform_real_distribution<double> area(0.2, 1.0), log_ratio(std::log(3.0 / 4.0), std::log(4.0 / 3.0)), unit(0, 1);
  const double total = double(im.width) * im.height;
  int32_t w = im.width, h = im.height;  // torchvision's RandomResizedCrop: ten tries, then the whole image
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double a = area(rng) * total, r = std::exp(log_ratio(rng));
    const auto cw = static_cast<int32_t>(std::lround(std::sqrt(a * r))), ch = static_cast<int32_t>(std::lround(std::sqrt(a / r)));
    if (cw >= 1 && ch >= 1 && cw <= im.width && ch <= im.height) {
      w = cw;
      h = ch;
      break;
    }
  }
  const auto left = static_cast<int32_t>(unit(rng) * (im.width - w + 1)), top = static_cast<int32_t>(unit(rng) * (im.height - h + 1));
  Image out = resize_bilinear(crop(im, std::min(left, im.width - w), std::min(top, im.height - h), w, h), width, height);
  if (unit(rng) < 0.5)
    for (int32_t y = 0; y < out.height; ++y)
      for (int32_t x = 0; x < out.width / 2; ++x)
        for (int32_t c = 0; c < 3; ++c)
          std::swap(out.pixels[(size_t(y) * out.width + x) * 3 + c], out.pixels[(size_t(y) * out.width + out.width - 1 - x) * 3 + c]);
  return out;
}

std::vector<std::string> list_images(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("cannot calibrate: '{}' is not a folder", dir);
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && is_image_file(e.path().string())) files.push_back(e.path().string());
  if (ec) fail("cannot calibrate: cannot list '{}': {}", dir, ec.message());
  std::sort(files.begin(), files.end());
  if (files.empty()) fail("cannot calibrate: '{}' holds no JPEG, PNG or BMP images", dir);
  return files;
}

namespace {

std::vector<std::string> read_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("cannot read the calibration list '{}': {}", path, std::strerror(errno));
  std::vector<std::string> files;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) files.push_back(line);
  if (in.bad()) fail("cannot read the calibration list '{}': read error", path);
  if (files.empty()) fail("cannot calibrate: the list '{}' names no image", path);
  return files;
}

}  // namespace

std::unique_ptr<CalibrationSource> make_calibration(const CalibrationSpec& spec) {
  if (!spec.dir.empty() + !spec.list.empty() + (spec.images != nullptr) != 1)
    fail("cannot calibrate: give one of a folder, a list of images or synthetic images");
  if (spec.shard_n < 1 || spec.shard_k < 1 || spec.shard_k > spec.shard_n)
    fail("cannot calibrate on shard {}/{}: it must be K/N with 1 <= K <= N", spec.shard_k, spec.shard_n);
  const size_t all = spec.images ? spec.images->size() : 0;
  // The selection: every shard_n-th from shard_k, the first `count` of those.
  auto chosen = [&](size_t n) {
    std::vector<size_t> index;
    for (size_t i = static_cast<size_t>(spec.shard_k - 1); i < n; i += static_cast<size_t>(spec.shard_n)) index.push_back(i);
    if (spec.count > 0 && index.size() > static_cast<size_t>(spec.count)) index.resize(static_cast<size_t>(spec.count));
    if (index.empty()) fail("cannot calibrate: shard {}/{} of {} images is empty", spec.shard_k, spec.shard_n, n);
    return index;
  };
  std::unique_ptr<CalibrationSource> source;
  if (spec.images) {
    auto images = std::make_shared<std::vector<Image>>();
    for (size_t i : chosen(all)) images->push_back((*spec.images)[i]);
    source = std::make_unique<ImageList>(std::move(images), "synthetic-");
  } else {
    const std::vector<std::string> paths = spec.dir.empty() ? read_list(spec.list) : list_images(spec.dir);
    std::vector<std::string> files;
    for (size_t i : chosen(paths.size())) files.push_back(paths[i]);
    source = std::make_unique<ImageFiles>(std::move(files));
  }
  if (spec.augment == 1) return source;
  return std::make_unique<AugmentedViews>(std::move(source), spec.augment, spec.seed);
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

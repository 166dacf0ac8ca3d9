// Calibration images: step 1 of the quantizer (quantize.h).
//
// A CalibrationSource is an ordered set of images. Image i is the same every time it is asked
// for (from any thread), so the quantizer may stream the set in chunks, several times, and get
// one model. Sources:
//   - ImageFiles: image files, decoded when asked for;
//   - AugmentedViews: K views of each image of another source: the image itself, then K - 1
//     random resized crops (area 0.2 to 1 of the image, aspect ratio 3/4 to 4/3, resized to the
//     model's input) each flipped left to right with probability 1/2, seeded per image and view;
//   - ImageList: images held in memory (synthetic calibration, synthetic/synthesize.h, makes
//     them), fitted as files are.
// CalibrationSpec says which, from trit-convert's options.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "trit/error.h"
#include "trit/graph.h"
#include "trit/image.h"

namespace trit {

class CalibrationSource {
 public:
  virtual ~CalibrationSource() = default;
  virtual size_t size() const = 0;
  // A name for reports (a file name, with the view for augmented ones).
  virtual std::string name(size_t i) const = 0;
  // Image i fitted to an input of height x width under the metadata's preprocessing.
  virtual Image fitted(size_t i, const Metadata& metadata, int32_t height, int32_t width) const = 0;
  // Image i as it is, before any preprocessing (augmentation starts from it).
  virtual Image original(size_t i) const = 0;
};

class ImageFiles : public CalibrationSource {
 public:
  explicit ImageFiles(std::vector<std::string> paths) : paths_(std::move(paths)) {}
  size_t size() const override { return paths_.size(); }
  std::string name(size_t i) const override { return paths_[i]; }
  Image fitted(size_t i, const Metadata& metadata, int32_t height, int32_t width) const override;
  Image original(size_t i) const override;

 private:
  std::vector<std::string> paths_;
};

class ImageList : public CalibrationSource {
 public:
  ImageList(std::shared_ptr<const std::vector<Image>> images, std::string prefix)
      : images_(std::move(images)), prefix_(std::move(prefix)) {}
  size_t size() const override { return images_->size(); }
  std::string name(size_t i) const override { return fmt::format("{}{}", prefix_, i); }
  Image fitted(size_t i, const Metadata& metadata, int32_t height, int32_t width) const override {
    return fit_to_input((*images_)[i], metadata, height, width);
  }
  Image original(size_t i) const override { return (*images_)[i]; }

 private:
  std::shared_ptr<const std::vector<Image>> images_;
  std::string prefix_;
};

class AugmentedViews : public CalibrationSource {
 public:
  AugmentedViews(std::unique_ptr<CalibrationSource> base, int32_t views, uint64_t seed);
  size_t size() const override { return base_->size() * static_cast<size_t>(views_); }
  std::string name(size_t i) const override;
  Image fitted(size_t i, const Metadata& metadata, int32_t height, int32_t width) const override;
  Image original(size_t i) const override { return base_->original(i / static_cast<size_t>(views_)); }

 private:
  std::unique_ptr<CalibrationSource> base_;
  int32_t views_;
  uint64_t seed_;
};

// Which calibration images, as trit-convert's options give them: the image files of a folder in
// name order, or the files a list names (one path a line, in its order), or images in memory
// (exactly one of the three); then every n-th from
// the k-th (shard k/n: two folds are 1/2 and 2/2, as scripts/eval_imagenet.py --shard takes
// them); then the first `count` (0: all); then `augment` views of each.
struct CalibrationSpec {
  std::string dir, list;
  int32_t count = 50;
  int32_t shard_k = 1, shard_n = 1;
  int32_t augment = 1;
  uint64_t seed = 1;
  std::shared_ptr<const std::vector<Image>> images;  // instead of dir or list; named "synthetic-0", ...
};
// Throws trit::Error when the folder or list cannot be read, or selects no image.
std::unique_ptr<CalibrationSource> make_calibration(const CalibrationSpec& spec);

// The image files of a folder in name order. Throws trit::Error when the folder cannot be
// listed or holds no image.
std::vector<std::string> list_images(const std::string& dir);

// Images [begin, end) of a source for graph g, fitted (in parallel) and normalized
// ([N][C][H][W] floats, normalize()).
struct CalibrationBatch {
  std::vector<Image> fitted;
  std::vector<float> normalized;
};
CalibrationBatch load_calibration(const CalibrationSource& source, size_t begin, size_t end, const Graph& g);

}  // namespace trit

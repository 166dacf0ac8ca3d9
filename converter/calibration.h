// Calibration images: step 1 of the quantizer (quantize.h).
//
// A CalibrationSource is an ordered set of images, each already fitted to the model's input
// (resized and centre-cropped as the model's metadata says). Image i is the same every time it
// is asked for, so the quantizer may read the set in chunks, several times, and get one model.
// Sources: the first K image files of a folder in name order (ImageFiles); others (a list of
// files, augmented views of another source, images a generator makes) implement the same three
// calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "trit/graph.h"
#include "trit/image.h"

namespace trit {

class CalibrationSource {
 public:
  virtual ~CalibrationSource() = default;
  virtual size_t size() const = 0;
  // A name for reports (a file name).
  virtual std::string name(size_t i) const = 0;
  // Image i fitted to an input of height x width under the metadata's preprocessing. May run on
  // several threads at once.
  virtual Image fitted(size_t i, const Metadata& metadata, int32_t height, int32_t width) const = 0;
};

// Image files, decoded when asked for.
class ImageFiles : public CalibrationSource {
 public:
  explicit ImageFiles(std::vector<std::string> paths) : paths_(std::move(paths)) {}
  size_t size() const override { return paths_.size(); }
  std::string name(size_t i) const override { return paths_[i]; }
  Image fitted(size_t i, const Metadata& metadata, int32_t height, int32_t width) const override;

 private:
  std::vector<std::string> paths_;
};

// The first `count` image files of a folder in name order (all when count <= 0). Throws
// trit::Error when the folder cannot be listed or holds no image.
std::vector<std::string> list_images(const std::string& dir, int32_t count);

// Images [begin, end) of a source for graph g, fitted (decoded in parallel) and normalized
// ([N][C][H][W] floats, normalize()).
struct CalibrationBatch {
  std::vector<Image> fitted;
  std::vector<float> normalized;
};
CalibrationBatch load_calibration(const CalibrationSource& source, size_t begin, size_t end, const Graph& g);

}  // namespace trit

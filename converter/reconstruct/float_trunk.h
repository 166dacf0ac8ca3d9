// The float network's tensors at the trunk for the reconstruction sample: the block inputs and
// targets of reconstruct.h. A bounded sample of the calibration images (images spread evenly
// over them); the float network runs over it one residual segment at a time, beside the
// quantizer, and its tensors live in spill files (one record per image), two at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "float_pass.h"
#include "residual_blocks.h"
#include "spill_file.h"
#include "trit/graph.h"

namespace trit::recon {

class FloatTrunk {
 public:
  // The sample: `count` images of the float pass's, spread evenly (all when there are fewer).
  FloatTrunk(const Graph& float_graph, const FloatStatistics& fs, int32_t count, int32_t chunk);

  int64_t size() const { return static_cast<int64_t>(images_.size()); }
  // The calibration image of sample image j.
  int64_t image(int64_t j) const { return images_[j]; }
  // Runs segment seg of the float network over the sample: its input is what the last segment
  // left (the normalized images at first), its output what input() reads after next().
  void run(const Segment& seg);
  void read_input(int64_t j, float* out) const { in_->read(j, 1, out); }
  void read_output(int64_t j, float* out) const { out_->read(j, 1, out); }
  // The output becomes the next segment's input.
  void next();

 private:
  const Graph& g_;
  int32_t chunk_;
  std::vector<int64_t> images_;
  std::unique_ptr<ImageRecords> in_, out_;
  int32_t in_tensor_ = -1, out_tensor_ = -1;
};

}  // namespace trit::recon

// The integer network over chunks of calibration images, as the quantizer builds it: step 3 of
// quantize.h, streamed.
//
// The quantizer goes through the graph a residual segment at a time (residual_blocks.h). A
// segment's input is the integer network's tensor at the trunk, for every image: the quantized
// images for the first segment, a spill file of 8-bit values (one record per image) for the
// others. Within a segment, nodes run on one chunk of images at a time, each layer on the fast
// kernels once it has been emitted (an Engine of that one layer, prepared once; bit for bit the
// integer reference), a layer kept in float on the reference, other nodes on the reference.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine.h"
#include "float_pass.h"
#include "int_node.h"
#include "spill_file.h"
#include "trit/graph.h"

namespace trit {

// One chunk of images: each tensor's int32 values for images [first, first + count).
struct IntChunk {
  int64_t first = 0, count = 0;
  std::vector<std::vector<int32_t>> values;  // per tensor
};

class IntNetwork {
 public:
  // g: the integer graph being made (types and exponents set); fs: the float pass (the fitted
  // images); chunk: the most images a chunk holds.
  IntNetwork(const Graph& g, const FloatStatistics& fs, int32_t chunk);
  ~IntNetwork();

  // The segment's input for images [first, first + count): from the images for the graph input,
  // else from the trunk the last end_segment() kept.
  IntChunk load(int32_t tensor, int64_t first, int64_t count) const;
  // Runs node ni over the chunk (a layer must have been prepared). With `cache`, the node's
  // output is kept for every image (8-bit values in a spill file) the first time, and read back
  // after: within a segment each node then runs once per image, not once per later layer.
  // forget() drops what was kept (the segment's end, or layers that changed).
  void run(size_t ni, IntChunk& chunk, bool cache = false);
  void forget();
  // Prepares layer ni as the graph now holds it, for every later run.
  void prepare(size_t ni);
  // Keeps tensor t of the chunk as the next segment's input (8-bit values, one record an image).
  void keep(int32_t tensor, const IntChunk& chunk);
  // The tensor keep() wrote becomes what load() reads.
  void end_segment();

 private:
  struct Layer;
  const Graph& g_;
  const FloatStatistics& fs_;
  int32_t chunk_;
  std::vector<std::unique_ptr<Layer>> layers_;  // per node
  int32_t trunk_tensor_ = -1, next_tensor_ = -1;
  std::unique_ptr<ImageRecords> trunk_, next_;
  struct Kept {
    std::unique_ptr<ImageRecords> records;
    int64_t images = 0;  // kept so far (chunks come in order)
  };
  std::vector<Kept> kept_;  // per tensor
  void keep_output(int32_t tensor, const IntChunk& chunk, bool cache);
};

}  // namespace trit

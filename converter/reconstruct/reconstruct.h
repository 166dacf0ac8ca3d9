// Block-wise reconstruction (trit-convert --reconstruct): after the layer-wise pass has made a
// residual block's layers integer, their weights' rounding, cluster scales and biases are
// optimized together so that the block's output on the quantized network's inputs follows the
// float block's output (BRECQ, arXiv:2102.05426), with activations quantized to their 8-bit
// exponents (QDrop, arXiv:2203.05740, can leave a share of them in float while optimizing;
// off by default: on ResNet-8, rates of 0.05 to 0.5 left the held-out SQNR and cross-entropy
// where they were; on ResNet-50 at 0.5, two folds, ternary N=4 kernels top-1 -0.4 +- 0.7 and
// N=64 -1.4 +- 1.3, cross-entropy at fitted T +0.010 and +0.068, for 10-13 % more time). The
// result is rounded back to the file's codes, integer mantissas and exponents, and emitted like
// any layer: the format, the integer pipeline and its reference do not change.
//
// Per block (a residual segment holding ternary or int4 layers, residual_blocks.h):
//   loss = mean over images and pixels of the sum over channels of (out - target)^2
//          + lambda * sum over weights of 1 - |2 h - 1|^beta      (soft_rounding.h)
// with beta annealed from 20 to 2 after a warm-up without the regularizer, Adam on V, the
// log-scales and the biases, minibatches of the bounded sample (the held-back images excluded).
// Every element of the output weighs the same (BRECQ's Fisher weights, from the float network's
// cross-entropy gradient, did worse on ResNet-50: docs/quantization.md).
// Constant learning rates (a cosine decay did not help on ResNet-8). The block's error is measured at the start and
// every 100 iterations (and the last) on held-back images (relative: sum of squared errors over
// the target's, hard rounding, every activation quantized): the checkpoint with the lowest
// held-back error is what the block keeps (the layer-wise result when none is lower). Training
// and held-back errors are printed at the start, at the last iteration and at the checkpoint kept.
//
// Deterministic: one seed and one thread count give one model (minibatches and QDrop's bits are
// drawn from hashes of the seed, the block and the iteration).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "residual_blocks.h"
#include "trit/graph.h"

namespace trit::recon {

struct ReconstructOptions {
  // 1,000: against 500 on ResNet-50's two folds, ternary N=4 kernels top-1 +1.8 +- 0.8 and
  // cross-entropy at fitted T -0.039 +- 0.017; N=64 +0.4 +- 1.4 and -0.043 +- 0.028, the logit
  // SQNR +0.1 and +0.3 dB; twice the time (about 18 minutes a fold on 2 AVX-512 cores). The
  // first blocks gain most: the rounding gets more iterations before the regularizer closes it.
  int32_t iterations = 1000;
  int32_t batch = 4;          // ResNet-8: the held-out SQNR of 8 (at 500 iterations) for half the work
  // The bounded sample, spread over the calibration images. 512 rather than 256: ResNet-50
  // calibrated on the 500 sample photos and scored on 1,000 others (imagenette-1000), ternary
  // N=64 kernels: logit SQNR +0.41 +- 0.04 dB, cross-entropy -0.094 +- 0.017, top-1 +1.5 +- 0.9
  // (N=4: +0.40 +- 0.04 dB, -0.017 +- 0.012, -0.3 +- 0.7); 3-4 % more time, up to 0.12 GB more
  // peak memory. Stage 5's blocks (7 x 7 pixels an image) overfit 224 training photos within
  // 100-300 iterations; with twice as many they gain for longer.
  int32_t images = 512;
  int32_t held_out_every = 8; // every 8th photo of the sample is held back (with its views)
  double drop = 0;            // QDrop: the probability that an activation stays in float
  // The rounding regularizer's weight. 0.01 (BRECQ's) was worse on ResNet-50's stage 2; 1.0
  // lowered the held-back error after each block of stages 2-3 by 2-35 % (the first block gains,
  // which at 0.1 keeps its layer-wise codes) but not the logits': ternary N=4 kernels, two folds,
  // top-1 -0.4 +- 0.9, cross-entropy +0.013 +- 0.013, SQNR unchanged (13.0 dB). ResNet-8 from
  // 0.03 to 10: within one or two standard errors.
  double lambda = 0.1;
  double warmup = 0.2;        // share of the iterations before the regularizer starts
  // Adam moves a variable by at most about its learning rate per iteration, and a weight's
  // rounding variable starts at V = -2.2 (h = 0.02, soft_rounding.h): its code flips only once V
  // has crossed 0. At 1e-2 that took over 200 iterations of one sign, and the regularizer, from
  // the first fifth on, pushes back: 0 to 0.3 % of ResNet-50's codes changed in 500 iterations,
  // so the rounding hardly moved. At 5e-2, 1 to 9 % of a block's codes change in stages 2-4.
  // Two folds, held-out logit SQNR, 1e-2 -> 5e-2: ResNet-8 14.8 -> 15.4 dB at N=4 kernels
  // (0.1 and 0.2 as 5e-2), 13.9 -> 14.6 at N=16; ResNet-50 N=4 kernels 12.8 -> 12.9 (README).
  double lr_rounding = 5e-2, lr_scale = 3e-3, lr_bias = 3e-3;
  uint64_t seed = 1;
};

// A block's data over the sample: per image j, the quantized network's block input (integers of
// the input tensor's exponent), and the float network's block input and output.
class BlockData {
 public:
  virtual ~BlockData() = default;
  virtual int64_t images() const = 0;
  // The photo image j was made from: --augment's views of one photo share it, and come one after
  // the other in the sample (split_sample holds back whole photos).
  virtual int64_t photo(int64_t j) const = 0;
  virtual void quantized_input(int64_t j, int32_t* out) const = 0;
  virtual void float_input(int64_t j, float* out) const = 0;
  virtual void float_output(int64_t j, float* out) const = 0;
};

struct BlockResult {
  std::string name;  // the block's last node
  int32_t layers = 0;
  double train_start = 0, train_end = 0, held_start = 0, held_end = 0;  // at the start and the checkpoint kept
  // At the last iteration, whether kept or not: training far below held back there is
  // overfitting; both above the start, a rounding the schedule had not yet closed.
  double train_last = 0, held_last = 0;
  double flipped = 0;  // share of weights whose code changed
  int32_t best_iteration = 0;  // the checkpoint kept: the lowest held-back error (0: the layer-wise result)
  bool kept = true;    // false: no checkpoint improved on the layer-wise result, which stays
  std::vector<std::pair<int32_t, double>> curve;  // (iteration, held-back error)
  double seconds = 0;
  std::string skipped;  // why the block was not reconstructed, or empty
};

// The sample's images in order, split into those the optimization trains on and those held back
// to measure it: every held_out_every-th photo of the sample (counted in the order photos first
// appear) is held back with all its views. Without --augment that is every held_out_every-th image.
struct SampleSplit {
  std::vector<int64_t> train, held;
};
SampleSplit split_sample(const BlockData& data, int32_t held_out_every);

// Progress: called at the start, every 100 iterations and at the end.
using BlockProgress = std::function<void(const BlockResult& so_far, int32_t iteration, double train, double held)>;

// Whether a segment can be reconstructed: it holds ternary or int4 layers, and only Conv, fully
// connected, Add and Relu nodes. Returns the reason it cannot, or empty.
std::string cannot_reconstruct(const Graph& g, const Segment& seg);

// Optimizes the layers of segment `seg` of g and writes them back into g. given: per layer
// node, the float weights its layer-wise quantization started from ([O][K]).
BlockResult reconstruct_block(Graph& g, const Segment& seg, const std::map<size_t, std::vector<float>>& given,
                              const BlockData& data, const ReconstructOptions& options, uint64_t block_seed,
                              const BlockProgress& progress = {});

}  // namespace trit::recon

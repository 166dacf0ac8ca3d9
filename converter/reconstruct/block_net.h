// A residual block as a differentiable network over a batch of real-valued tensors: the
// forward and backward passes of block reconstruction (reconstruct.h).
//
// Forward, node by node as the integer pipeline computes them, in float: a layer's output is
// conv(x, W) + b with W its learned-rounding weights (soft_rounding.h; a layer kept in float uses
// its float weights), an Add's is the sum; each node's output then takes its activation as the
// integer pipeline leaves it (ops.h activate: the ReLU, the rounding to the tensor's exponent and
// the saturation), except elements QDrop keeps in float. The block's last node is left before its
// rounding: the loss compares it with the float block's output. Backward: straight-through
// gradients for the rounding, the exact ones for everything else.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "residual_blocks.h"
#include "soft_rounding.h"
#include "trit/graph.h"

namespace trit::recon {

class BlockNet {
 public:
  // The layers of seg in g (integer, as emitted); given: per layer, the float weights its
  // layer-wise quantization started from.
  BlockNet(const Graph& g, const Segment& seg, const std::map<size_t, std::vector<float>>& given);

  std::map<size_t, std::unique_ptr<SoftRounding>>& layers() { return soft_; }

  // Which activations QDrop keeps in float: none, all, or each with probability p from a seed.
  struct Keep {
    enum Mode { None, All, Random } mode = None;
    uint64_t seed = 0;
    double p = 0;
  };
  // The block's output for a batch whose input is x (reals, [N][C][H][W]). hard: the rounding
  // as it will be.
  const std::vector<float>& forward(const std::vector<float>& x, int32_t batch, bool hard, Keep keep);
  // From dL/d(output) of the last forward: dL/dW and dL/db of every layer (grads()).
  void backward(const std::vector<float>& dout);

  struct Grads {
    std::vector<float> dw, db;
  };
  Grads& grads(size_t node) { return grads_[node]; }

 private:
  void run(size_t ni, bool hard, Keep keep);

  const Graph& g_;
  const Segment& seg_;
  int32_t batch_ = 0;
  std::map<size_t, std::unique_ptr<SoftRounding>> soft_;
  std::vector<std::vector<float>> value_, pre_, grad_;  // per tensor: after, before its activation
  std::vector<std::vector<uint8_t>> pass_;
  std::map<size_t, std::vector<float>> weights_;
  std::map<size_t, Grads> grads_;
};

}  // namespace trit::recon

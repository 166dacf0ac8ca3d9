// The whole float network as a function of its input, forward and backward over a batch: what
// synthetic calibration (synthesize.h) differentiates to shape images. Weights are constants
// here; only dL/d(input) is computed.
//
// Forward keeps every tensor of the batch ([N][C][H][W] floats, one image's shape from the graph)
// and, for a node with a fused ReLU, its output before the ReLU. Backward starts from the seeds a
// loss wrote: dL/d(graph output) and dL/d(a node's output before its activation), for any nodes,
// and returns dL/d(input). Convolutions and fully connected layers go through the converter's
// im2col and sgemm (reconstruct/ops.h: OpenBLAS, results independent of the thread count);
// pooling, adds, ReLU and flatten are loops here. Every op of trit's Graph is covered.
//
// Memory: about (sum of the graph's tensor sizes + those before a ReLU) x batch x 4 bytes
// (ResNet-50 at 224 x 224: about 100 MB an image), plus one convolution's columns.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "trit/graph.h"

namespace trit::synth {

class InputGradient {
 public:
  // g: a float graph (float32 weights, one input, one output); it must outlive this object.
  // Throws trit::Error when a layer's weights are not float32.
  explicit InputGradient(const Graph& g);

  // Runs the network on x [batch][C][H][W] (the graph input's shape) and clears every seed.
  void forward(std::span<const float> x, int32_t batch);
  int32_t batch() const { return batch_; }

  // After forward: the graph output ([batch][K] logits), and a node's output before its fused
  // ReLU ([batch][C][H][W]; the output itself for nodes without one).
  std::span<const float> output() const;
  std::span<const float> before_activation(size_t node) const;

  // Seeds to add to before backward (zero after forward, allocated when first asked for; the
  // same shapes as above).
  std::span<float> output_seed();
  std::span<float> before_activation_seed(size_t node);

  // dL/d(input) for the seeds, [batch][C][H][W] into dx (overwritten). Once per forward: it
  // frees the tensors before activations as it goes.
  void backward(std::span<float> dx);

 private:
  std::vector<float>& grad(int32_t tensor);  // allocated (zero) on first use

  const Graph& g_;
  int32_t batch_ = 0;
  std::vector<std::vector<float>> value_, grad_;  // per tensor
  std::vector<std::vector<float>> pre_;       // per node with a fused ReLU (empty otherwise)
  std::vector<std::vector<float>> pre_seed_;  // per node with a fused ReLU and a seed (empty otherwise)
};

}  // namespace trit::synth

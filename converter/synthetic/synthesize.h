// Synthetic calibration images: photos the network itself describes, for quantizing without any
// real photo (ZeroQ, arXiv:2001.00281; the class targets, jitter and flips of DeepInversion,
// arXiv:1912.08795).
//
// Each folded batch norm remembers the per-channel mean and standard deviation its Conv's output
// had over the training data (onnx_import.h, BatchNormStatistics). Starting from seeded noise,
// groups of `batch` images are optimized with Adam, by gradient descent through the float network
// (input_gradient.h), to minimize
//   L = (1 / B) sum over batch norms b of ( ||mean_b - mu_b||_2 + ||std_b - sigma_b||_2 )
//       + class_weight * cross-entropy(logits, each image's class target)
//       + smoothness * mean over canvas pixels of the squared differences to the right and
//         lower neighbours (in units of 64 pixel levels)
// where mean_b and std_b are the group's statistics of that Conv's output (over images and
// pixels; std with 1e-8 added to the variance) and each image's class target is drawn from the
// seed. Each step views the images through a random window of the canvas (wrapping at its edges)
// and flips the group left to right with probability 1/2. A first coarse phase may show the
// network each 2 x 2 average of the view instead, at half the resolution (DeepInversion's
// multi-resolution setting: the same steps for a quarter of the work).
//
// Images are kept on a canvas whose centre crop is what the model sees (the size that
// fit_to_input, image.h, leaves unresized: resize_shorter x resize_shorter when the metadata
// resizes to at least the input, else the input's size), as pixels p = 127.5 + 64 v in [0, 255]
// of the variables v, so that saved PNG files are calibration photos like any other. The
// metadata's preprocessing maps pixels to the network's input. One seed and one thread count give
// the same images.
//
// Cost (ResNet-50, groups of 16, 2 cores with AVX-512): 2.25 s a step at 224 x 224, 0.66 s at
// 112 x 112; 64 images at the defaults about 15 minutes. Memory: the network's tensors for one
// group (input_gradient.h), about 3 GB for ResNet-50; it does not grow with the count.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "onnx_import.h"
#include "trit/graph.h"
#include "trit/image.h"

namespace trit::synth {

struct SynthesisOptions {
  int32_t count = 64;        // images
  int32_t batch = 16;        // images optimized together (their statistics are the group's)
  // Adam steps per group. The first coarse_share of them show the network each 2 x 2 average of
  // the view (the network at half the input's size: a quarter of the work), where the graph can
  // take it; the rest the view itself.
  int32_t iterations = 200;
  double coarse_share = 0.75;
  double lr = 0.2;           // Adam's step, in units of v (64 pixel levels)
  double class_weight = 0.3;
  double smoothness = 1.0;
  uint64_t seed = 1;
};

// What the optimization reached, for reports: the batch-norm term of L over all groups (mean
// of the groups' values), at the first step at the input's resolution and at the last, and the
// seconds it took.
struct SynthesisReport {
  double start_loss = 0, end_loss = 0;
  double seconds = 0;
};

// Progress: group (0-based) of groups, iteration of iterations, the batch-norm term now.
using SynthesisProgress = std::function<void(int32_t group, int32_t groups, int32_t iteration, int32_t iterations, double loss)>;

// g: the float graph as imported (its metadata set: preprocessing decides the pixels), with the
// batch-norm statistics the import kept. Throws trit::Error with one line when g has no batch
// norms to match, or the options are not usable.
std::vector<Image> synthesize(const Graph& g, const std::vector<BatchNormStatistics>& batch_norms,
                              const SynthesisOptions& options, SynthesisReport* report = nullptr,
                              const SynthesisProgress& progress = {});

// Writes images as dir/synthetic-0000.png, ... (dir is created; existing files of those names are
// replaced only when force, and none is written when one would be refused). Throws trit::Error
// naming the file that cannot be written.
void save_images(const std::vector<Image>& images, const std::string& dir, bool force);
// The checks save_images makes before it writes anything, for `count` images: to run before the
// images are made.
void check_can_save(const std::string& dir, size_t count, bool force);

}  // namespace trit::synth

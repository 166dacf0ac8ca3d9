// The quantization pipeline of trit-convert: float Graph + calibration images -> integer Graph.
//
//  1. Calibration: the first K images of a folder (sorted by name), fitted and normalized as the
//     model's metadata says, run through the float reference.
//  2. Activation exponents: each tensor's power-of-two exponent, from the float activations:
//     the exponent with the least squared error (default) or the largest that holds the largest
//     magnitude. Tensors after a ReLU are u8, others s8; MaxPool, Flatten and Relu keep their
//     input's exponent; a graph output written by a Conv or fully connected layer is int32.
//  3. Layers in network order, each seeing the calibration activations of the integer network
//     before it (run with the integer reference, the arithmetic that ships): weights quantized
//     by round to nearest or error compensation (weight_quant.h; before compensation, where the
//     sample holds at least 2 pixels per weight column, the float weights are refitted so that
//     the layer on the integer network's inputs reproduces the float network's outputs:
//     refit_to_inputs), then the bias corrected per channel (after a ReLU: the mean after the
//     ReLU matches the float network's, solved exactly; elsewhere: the mean error is removed),
//     then the layer runs in integer for the next.
//  4. With min_replaced (automatic mixed precision), steps 1-3 run twice: the first pass makes
//     every layer it may ternary and measures each one's error; the second keeps at int4 the
//     layers that lose most per multiplication they give back (choose_int4_layers).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "trit/graph.h"
#include "weight_quant.h"

namespace trit {

struct QuantizeOptions {
  WeightEncoding encoding = WeightEncoding::TernaryClustered;
  int32_t cluster = 4;  // 0: the whole input (one scale per output channel and cluster shape)
  ClusterShape shape = ClusterShape::Kernels;
  bool gptq = true;     // false: round to nearest (the paper's method)
  quant::Threshold threshold = quant::Threshold::Exact;
  bool bias_correction = true;
  bool keep_first_8bit = true;
  bool keep_last_8bit = true;
  std::map<std::string, WeightEncoding> layers;  // per-layer encodings, by node name
  std::string calib_dir;
  int32_t calib_count = 50;
  bool lse_exponents = true;  // false: the largest magnitude decides
  int32_t max_rows = 16384;   // im2col rows sampled per layer for the Gram matrix
  // Automatic mixed precision (ternary only; 0: off): a first pass converts every layer it may
  // as ternary and measures what each one adds (LayerReport::added_error); the second keeps at
  // int4 the layers that lose most per multiplication given back, while the share of
  // multiplications replaced stays at least min_replaced (choose_int4_layers).
  double min_replaced = 0;
};

struct LayerReport {
  std::string name;
  WeightEncoding encoding;
  int32_t cluster = 0;
  ClusterShape shape = ClusterShape::Kernels;
  double zero_share = 0, weight_error = 0;
  // The layer's pre-activation output on the quantized network's inputs against the float
  // layer's on the float network's, at the sampled pixels: ||yq - yf|| / ||yf||.
  double output_error = 0;
  // What quantizing this layer's weights adds by itself: ||X_q (v - q)|| / ||yf|| at the same
  // pixels, X_q the quantized network's inputs, v the weights the quantizer was given (refitted
  // or float), q the quantized ones. 0 for a layer kept in float.
  double added_error = 0;
  // For a layer whose output reaches a residual Add through single consumers (a branch of a
  // block), the power of what it feeds into the Add over the power of the Add's output on the
  // float network (the share of the trunk its noise rides on); 1 for the others.
  double trunk_share = 1;
  // The integer network's actual output tensor (after requantization, saturation and the
  // activation) against the float network's, over every calibration value: signal-to-
  // quantization-noise ratio in dB, cosine similarity, and the share of values at the type's
  // saturation limit (u8: 255; s8: -128 or 127; int32 outputs: 0).
  double sqnr_db = 0, cosine = 0, saturated = 0;
  int64_t macs = 0, multiplications = 0;  // per image; multiplications left after clustering
  int64_t bytes = 0;                      // codes, scales, exponents and bias in the file
  std::string note;                       // e.g. a shorter last cluster
};

struct QuantizeReport {
  std::vector<LayerReport> layers;
  std::vector<std::string> calibration_images;
  double replaced_share() const;  // share of multiplications replaced by additions
  std::string json() const;
};

// Progress: called once per layer with its report and the index of the layer among them; pass
// is 0 for a single pass, 1 or 2 for the two of --min-replaced.
using Progress = std::function<void(int pass, size_t index, size_t count, const LayerReport& layer, double seconds)>;

// `graph` has float32 weights and its final metadata (preprocessing is what calibration uses).
// Throws trit::Error with the reason (no images, unknown layer name, a bias out of range...).
Graph quantize(const Graph& graph, const QuantizeOptions& options, QuantizeReport* report,
               const Progress& progress = {});

// The layers of a ternary conversion's report to keep at int4 so that the share of
// multiplications replaced stays >= min_replaced: candidates are its ternary layers not named in
// `fixed` (the user's --layer choices), taken greedily by added_error^2 * trunk_share (the noise
// power a layer puts on the residual trunk, relative to the trunk's signal) per multiplication
// they give back (noise powers add up; a layer that does not fit the remaining budget is skipped
// for a smaller one). Throws if the report itself replaces less than min_replaced.
std::vector<std::string> choose_int4_layers(const QuantizeReport& ternary, double min_replaced,
                                            const std::map<std::string, WeightEncoding>& fixed);

// The first `count` image files of a folder in name order (jpg, jpeg, png, bmp).
std::vector<std::string> list_images(const std::string& dir, int32_t count);

}  // namespace trit

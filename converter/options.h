// trit-convert's command line: its options as given, and their translation into what the
// converter does (the metadata of the model it writes, and the quantizer's options). Kept apart
// from main.cpp so that tests check the translation and its errors without running a conversion.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

#include "quantize_options.h"
#include "trit/graph.h"

namespace trit {

// The options as the user gave them (defaults as documented by add_options).
struct ConvertArgs {
  std::string input, output, preset, labels;
  std::vector<float> mean, scale;
  bool bgr = false, force = false;
  int resize = -1;  // -1: the preset's (or the import's)
  std::string weights = "float", cluster = "4", cluster_shape = "kernels", method, threshold = "exact";
  std::string keep = "first,last", calib, calib_list, calib_shard = "1/1", report, exponents = "lse";
  std::vector<std::string> layers;  // NAME=ENCODING
  int calib_count = 50, augment = 1;
  int synthetic_iters = 200, synthetic_batch = 16;  // --calib synthetic (synthetic/synthesize.h)
  std::string synthetic_save;
  uint64_t seed = 1;
  bool reconstruct = false;
  // --reconstruct-iters, -batch, -images and -qdrop write into it: the defaults are
  // ReconstructOptions' own (reconstruct.h), stated once there; its seed is --seed's.
  recon::ReconstructOptions reconstruction;
  double min_replaced = 0;
  bool bias_correction = true;
};

// Registers every option of trit-convert on app, writing into args.
void add_convert_options(CLI::App& app, ConvertArgs& args);

// The preprocessing and labels the options set on an imported model's metadata: the preset
// first, then --mean, --scale, --bgr, --resize and --labels over it. Throws trit::Error for an
// unknown preset or a label file that cannot be read.
void apply_metadata_options(const ConvertArgs& args, Metadata& metadata);

// The quantizer's options, or nothing for --weights float. Throws trit::Error with one line for
// options that contradict each other or cannot be read (--min-replaced without ternary weights,
// integer weights without --calib or --calib-list, --reconstruct with float weights, a bad
// --cluster, --calib-shard, --keep-8bit or --layer, --calib synthetic with --calib-count 0 or
// --synthetic-save without it). With --calib synthetic the calibration spec names no folder:
// convert() gives it the images it makes.
std::optional<QuantizeOptions> quantize_options(const ConvertArgs& args);

// A weight encoding by its name on the command line: float, int8, int4, ternary.
WeightEncoding encoding_named(const std::string& name);

}  // namespace trit

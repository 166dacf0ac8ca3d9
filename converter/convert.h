// One conversion, as trit-convert runs it and trit.convert() (Python) calls it: read the ONNX
// model, set its metadata from the options, quantize it when the weights are integer, write the
// model (and the report). The command line's parsing stays in options.h; what it prints as it
// goes comes back through the callbacks.
#pragma once

#include <functional>
#include <string>

#include "onnx_import.h"
#include "options.h"
#include "quantize.h"
#include "synthetic/synthesize.h"

namespace trit {

struct ConvertCallbacks {
  std::function<void(const std::string& line)> note;             // "reading ...", "calibrating on ..."
  std::function<void(int64_t done, int64_t total)> float_images;  // the float network's pass
  Progress layer;                                                 // each layer, as quantize.h calls it
  recon::BlockProgress block;                                     // --reconstruct, each block
  synth::SynthesisProgress synthetic;                             // --calib synthetic, each step
};

struct ConvertResult {
  ImportStats stats;
  size_t nodes = 0, labels = 0;
  bool quantized = false;
  QuantizeReport report;  // when quantized
};

// The lines trit-convert prints for a layer (pass: 0 for a single pass, 1 or 2 for
// --min-replaced's, which get a heading before their first layer) and for a block's progress
// (BlockProgress's arguments). Python's progress callback receives the same text.
std::string layer_line(int pass, int passes, size_t i, size_t n, const LayerReport& l, double seconds);
std::string block_line(const recon::BlockResult& b, int32_t iteration, double train, double held);

// `options` is what the user gave (the command line, with argv, or its words from Python).
// Throws trit::Error with one line; writes no file then (and never replaces one unless --force).
ConvertResult convert(const ConvertArgs& args, const std::string& options, const ConvertCallbacks& callbacks);

}  // namespace trit

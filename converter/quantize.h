// The quantization pipeline of trit-convert: float Graph + calibration images -> integer Graph.
// Each step lives in a file named after it:
//
//  1. Calibration images (calibration.h): the first K images of a folder in name order, fitted
//     and normalized as the model's metadata says, run through the float network (float_pass.h).
//  2. Activation types and exponents (exponents.h): tensors after a ReLU are u8, others s8, a
//     graph output written by a layer int32; each exponent from the float network's values, with
//     the least squared error (default) or the largest that holds the largest magnitude.
//     MaxPool, Flatten and Relu keep their input's exponent.
//  3. Layers in network order, the float and the integer network side by side, each layer seeing
//     the calibration activations of the integer network before it (the arithmetic that ships):
//     a. its calibration sample (layer_sample.h): im2col rows of the integer network's input at
//        a strided sample of output pixels, and the float network's outputs there;
//     b. its weights (weight_quant.h): refitted so that the layer on the integer network's
//        inputs reproduces the float network's outputs (where the sample holds at least 2 pixels
//        per weight column), then quantized with error compensation (GPTQ), or round to nearest
//        (the paper's method);
//     c. its bias corrected per channel (bias_correction.h);
//     d. emitted as the file holds it (emit.h), run in integer for the next layers, and reported
//        (report.h).
//  4. With min_replaced (automatic mixed precision, mixed_precision.h), steps 1-3 run twice: the
//     first pass makes every layer it may ternary and measures each one's error; the second keeps
//     at int4 the layers that lose most per multiplication they give back.
#pragma once

#include <functional>

#include "quantize_options.h"
#include "report.h"
#include "trit/graph.h"

namespace trit {

// Progress: called once per layer with its report and the index of the layer among them; pass
// and passes are 0 for a single pass; with --min-replaced, pass runs from 1 to passes: the
// measuring passes (all ternary at the cluster size asked, then at N=2 and N=1 where smaller),
// then the final one.
using Progress =
    std::function<void(int pass, int passes, size_t index, size_t count, const LayerReport& layer, double seconds)>;

// `graph` has float32 weights and its final metadata (preprocessing is what calibration uses).
// Throws trit::Error with the reason (no images, unknown layer name, a bias out of range...).
Graph quantize(const Graph& graph, const QuantizeOptions& options, QuantizeReport* report,
               const Progress& progress = {});

}  // namespace trit

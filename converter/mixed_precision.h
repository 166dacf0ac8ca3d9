// What each layer costs, and automatic mixed precision under a budget of multiplications
// (trit-convert --min-replaced).
//
// A layer's cost follows from the shapes alone, before any calibration: its encoding under the
// options (--layer, else --keep-8bit for the first and last layer, else the target), its cluster
// size, its multiply-accumulates per image and the multiplications left of them (ternary: one
// per cluster, output and pixel; the others: all of them).
//
// Mixed precision: a first all-ternary pass measures what each layer's quantization adds
// (LayerReport::added_error) and the share of the residual trunk its branch carries
// (trunk_share); choose_int4_layers then keeps at int4 the layers with the most noise on the
// trunk per multiplication int4 gives back, while the share replaced stays above the budget.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "quantize_options.h"
#include "report.h"
#include "trit/graph.h"

namespace trit {

struct LayerCost {
  WeightEncoding encoding = WeightEncoding::Float32;
  int32_t cluster = 0;
  int64_t macs = 0, multiplications = 0;
};
// Node ni of g must be a layer.
LayerCost layer_cost(const Graph& g, size_t ni, const QuantizeOptions& options);

// The layers of a ternary conversion's report to keep at int4 so that the share of
// multiplications replaced stays >= min_replaced: candidates are its ternary layers not named in
// `fixed` (the user's --layer choices), taken greedily by added_error^2 * trunk_share (the noise
// power a layer puts on the residual trunk, relative to the trunk's signal) per multiplication
// they give back (noise powers add up; a layer that does not fit the remaining budget is skipped
// for a smaller one). Throws if the report itself replaces less than min_replaced.
std::vector<std::string> choose_int4_layers(const QuantizeReport& ternary, double min_replaced,
                                            const std::map<std::string, WeightEncoding>& fixed);

}  // namespace trit

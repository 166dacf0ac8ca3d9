// What each layer costs, and automatic mixed precision under a budget of multiplications
// (trit-convert --min-replaced).
//
// A layer's cost follows from the shapes alone, before any calibration: its encoding under the
// options (--layer, else --keep-8bit for the first and last layer, else the target), its cluster
// size, its multiply-accumulates per image and the multiplications left of them (ternary: one
// per cluster, output and pixel; the others: all of them).
//
// Mixed precision: all-ternary passes, at the cluster size asked and at the smaller N=2 and
// N=1, measure what each layer's quantization adds (LayerReport::added_error) and the share of
// the residual trunk its branch carries (trunk_share); choose_promotions then moves the layers
// with the most noise on the trunk per multiplication given back to a smaller cluster or to
// int4, while the share replaced stays above the budget.
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

// What --min-replaced does with one ternary layer in the final pass.
struct Promotion {
  std::string name;
  WeightEncoding encoding = WeightEncoding::Int4Clustered;  // or TernaryClustered, smaller clusters
  int32_t cluster = 0;                                     // the ternary cluster size (int4: 0)
  double added_error = 0;  // what the layer added in the first pass
};

// The promotions that keep the share of multiplications replaced >= min_replaced. passes[0] is
// the all-ternary conversion at the cluster size asked; passes[1..] the same at smaller ones
// (each ternary layer's LayerReport::cluster says which). Each candidate (a ternary layer of
// passes[0] not named in `fixed`, the user's --layer choices) may move to any option with less
// noise: a smaller cluster (its measured added_error, its multiplications) or int4 (counted as
// adding nothing, every multiplication back). The noise a layer puts on the trunk is
// added_error^2 * trunk_share (noise powers add up); greedily, the move with the most noise
// taken off per multiplication given back goes first, from wherever the layer stands (a move
// that does not fit the remaining budget is skipped for a smaller one); ties in network order.
// Returned in the order chosen, one per layer (its final option). Throws if passes[0] itself
// replaces less than min_replaced.
std::vector<Promotion> choose_promotions(const std::vector<QuantizeReport>& passes, double min_replaced,
                                         const std::map<std::string, WeightEncoding>& fixed);

}  // namespace trit

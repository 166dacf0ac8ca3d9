#include "mixed_precision.h"

#include <algorithm>

#include "trit/error.h"

namespace trit {

LayerCost layer_cost(const Graph& g, size_t ni, const QuantizeOptions& opt) {
  size_t first = g.nodes.size(), last = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (has_weights(g.nodes[i])) {
      first = std::min(first, i);
      last = i;
    }
  const Node& n = g.nodes[ni];
  const auto [o_n, i_n, kh, kw] = n.weights.shape;
  const Shape3 os = shape3(g.tensors[n.outputs[0]]);
  const int64_t plane = int64_t{os.h} * os.w;
  LayerCost c;
  const auto it = opt.layers.find(n.name);
  c.encoding = it != opt.layers.end() ? it->second
               : ((ni == first && opt.keep_first_8bit) || (ni == last && opt.keep_last_8bit)) ? WeightEncoding::Int8PerChannel
                                                                                             : opt.encoding;
  c.cluster = opt.cluster <= 0 ? i_n : std::min(opt.cluster, i_n);
  c.macs = int64_t{o_n} * plane * i_n * kh * kw;
  const int64_t groups = (i_n + c.cluster - 1) / c.cluster;
  c.multiplications = c.encoding != WeightEncoding::TernaryClustered ? c.macs
                      : opt.shape == ClusterShape::Kernels         ? int64_t{o_n} * plane * groups
                                                                   : int64_t{o_n} * plane * kh * kw * groups;
  return c;
}

std::vector<std::string> choose_int4_layers(const QuantizeReport& ternary, double min_replaced,
                                            const std::map<std::string, WeightEncoding>& fixed) {
  double macs = 0;
  for (const LayerReport& l : ternary.layers) macs += double(l.macs);
  const double replaced = ternary.replaced_share();
  if (replaced < min_replaced)
    fail("--min-replaced {:.1f}% cannot be met: with every layer it may make ternary, the model replaces {:.1f}% "
         "of its multiplications", 100 * min_replaced, 100 * replaced);
  // Noise power on the trunk per multiplication given back, largest first; ties in network order.
  std::vector<const LayerReport*> candidates;
  for (const LayerReport& l : ternary.layers)
    if (l.encoding == WeightEncoding::TernaryClustered && !fixed.contains(l.name) && l.macs > l.multiplications)
      candidates.push_back(&l);
  auto gain = [](const LayerReport* l) {
    return l->added_error * l->added_error * l->trunk_share / double(l->macs - l->multiplications);
  };
  std::stable_sort(candidates.begin(), candidates.end(), [&](auto* a, auto* b) { return gain(a) > gain(b); });
  // Multiplications that may come back (a share given as the report's own rounds to it).
  double budget = (replaced - min_replaced) * macs + 1e-9 * macs;
  std::vector<std::string> chosen;
  for (const LayerReport* l : candidates) {
    const double cost = double(l->macs - l->multiplications);
    if (cost > budget) continue;
    budget -= cost;
    chosen.push_back(l->name);
  }
  return chosen;
}

}  // namespace trit

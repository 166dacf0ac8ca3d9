#include "mixed_precision.h"

#include <algorithm>
#include <cmath>

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
  const auto own = opt.layer_clusters.find(n.name);
  const int32_t cluster = own != opt.layer_clusters.end() ? own->second : opt.cluster;
  c.cluster = cluster <= 0 ? i_n : std::min(cluster, i_n);
  c.macs = int64_t{o_n} * plane * i_n * kh * kw;
  const int64_t groups = (i_n + c.cluster - 1) / c.cluster;
  c.multiplications = c.encoding != WeightEncoding::TernaryClustered ? c.macs
                      : opt.shape == ClusterShape::Kernels         ? int64_t{o_n} * plane * groups
                                                                   : int64_t{o_n} * plane * kh * kw * groups;
  return c;
}

std::vector<Promotion> choose_promotions(const std::vector<QuantizeReport>& passes, double min_replaced,
                                         const std::map<std::string, WeightEncoding>& fixed) {
  const QuantizeReport& ternary = passes.at(0);
  double macs = 0;
  for (const LayerReport& l : ternary.layers) macs += double(l.macs);
  const double replaced = ternary.replaced_share();
  if (replaced < min_replaced)
    fail("--min-replaced {:.1f}% cannot be met: with every layer it may make ternary, the model replaces {:.1f}% "
         "of its multiplications", 100 * min_replaced, 100 * replaced);
  // Each candidate's options: where it stands (index 0), smaller clusters, int4.
  struct Option {
    WeightEncoding encoding;
    int32_t cluster;
    double noise, multiplications;
  };
  struct Candidate {
    const LayerReport* layer;
    std::vector<Option> options;
    size_t at = 0;
  };
  std::vector<Candidate> candidates;
  for (const LayerReport& l : ternary.layers) {
    if (l.encoding != WeightEncoding::TernaryClustered || fixed.contains(l.name) || l.macs <= l.multiplications) continue;
    Candidate c{&l, {{WeightEncoding::TernaryClustered, l.cluster, l.added_error * l.added_error * l.trunk_share,
                      double(l.multiplications)}}};
    for (size_t p = 1; p < passes.size(); ++p)
      for (const LayerReport& s : passes[p].layers)
        if (s.name == l.name && s.encoding == WeightEncoding::TernaryClustered && s.cluster < l.cluster)
          c.options.push_back({s.encoding, s.cluster, s.added_error * s.added_error * l.trunk_share, double(s.multiplications)});
    c.options.push_back({WeightEncoding::Int4Clustered, 0, 0.0, double(l.macs)});
    candidates.push_back(std::move(c));
  }
  // Multiplications that may come back (a share given as the report's own rounds to it).
  double budget = (replaced - min_replaced) * macs + 1e-9 * macs;
  std::vector<size_t> order;  // candidates in the order they last moved
  for (;;) {
    size_t best_c = 0, best_o = 0;
    double best = -1;
    for (size_t ci = 0; ci < candidates.size(); ++ci) {
      const Candidate& c = candidates[ci];
      const Option& now = c.options[c.at];
      for (size_t oi = 0; oi < c.options.size(); ++oi) {
        const Option& o = c.options[oi];
        const double cost = o.multiplications - now.multiplications;
        if (o.noise >= now.noise || cost > budget) continue;
        const double gain = cost > 0 ? (now.noise - o.noise) / cost : INFINITY;
        if (gain > best) best = gain, best_c = ci, best_o = oi;
      }
    }
    if (best < 0) break;
    Candidate& c = candidates[best_c];
    budget -= c.options[best_o].multiplications - c.options[c.at].multiplications;
    c.at = best_o;
    std::erase(order, best_c);
    order.push_back(best_c);
  }
  std::vector<Promotion> chosen;
  for (size_t ci : order) {
    const Candidate& c = candidates[ci];
    const Option& o = c.options[c.at];
    chosen.push_back({c.layer->name, o.encoding, o.cluster, c.layer->added_error});
  }
  return chosen;
}

}  // namespace trit

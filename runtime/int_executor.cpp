#include "int_executor.h"

#include "integer_graph.h"
#include "quantized_io.h"
#include "trit/error.h"

namespace trit {

IntExecutor::IntExecutor(std::shared_ptr<const Graph> graph, bool dynamic_exponents)
    : graph_(std::move(graph)), dynamic_(dynamic_exponents) {
  const Graph& g = *graph_;
  check_integer_graph(g);
  layers_.resize(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (has_weights(g.nodes[i])) layers_[i] = prepare_layer(g, g.nodes[i]);
  last_use_.assign(g.tensors.size(), g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (int32_t t : g.nodes[i].inputs) last_use_[t] = i;
  for (int32_t t : g.outputs) last_use_[t] = SIZE_MAX;
}

std::vector<int32_t> IntExecutor::run(std::span<const int32_t> input, int32_t batch) const {
  const Graph& g = *graph_;
  const int64_t in_elems = g.input().elements();
  if (batch < 1 || static_cast<int64_t>(input.size()) != in_elems * batch)
    fail("cannot run model: {} input values for a batch of {} images of {} values", input.size(), batch, in_elems);
  if (dynamic_) {
    std::vector<int32_t> out;
    for (int32_t im = 0; im < batch; ++im) {
      const auto one = run_dynamic(input.subspan(im * in_elems, in_elems));
      out.insert(out.end(), one.begin(), one.end());
    }
    return out;
  }
  std::vector<std::vector<int32_t>> values(g.tensors.size());
  values[g.inputs[0]].assign(input.begin(), input.end());
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    const Node& n = g.nodes[ni];
    std::vector<const int32_t*> ins;
    for (int32_t t : n.inputs) ins.push_back(values[t].data());
    std::vector<int32_t>& out = values[n.outputs[0]];
    out.resize(g.tensors[n.outputs[0]].elements() * batch);
    run_int_node(g, n, has_weights(n) ? &layers_[ni] : nullptr, batch, ins, out.data());
    for (int32_t t : n.inputs)
      if (last_use_[t] == ni) std::vector<int32_t>().swap(values[t]);
  }
  return std::move(values[g.outputs[0]]);
}

std::vector<float> IntExecutor::classify(std::span<const Image> images) const {
  return dequantize(run(quantize_images(*graph_, images), static_cast<int32_t>(images.size())), graph_->output().exponent);
}

}  // namespace trit

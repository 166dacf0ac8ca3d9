#include "integer_graph.h"

#include <cstdlib>

#include "trit/error.h"

namespace trit {

bool is_integer_model(const Graph& g) { return g.input().type != ElementType::Float32; }

void check_integer_graph(const Graph& g) {
  if (!is_integer_model(g)) fail("cannot prepare an integer executor: the model's input is float32");
  for (const Tensor& t : g.tensors)
    if (t.type == ElementType::Float32)
      fail("cannot prepare the integer model: tensor '{}' is float32", t.name);
  if (g.input().type == ElementType::Int32) fail("cannot prepare the integer model: its input is int32, not 8-bit");
  for (const Node& n : g.nodes)
    for (int32_t t : n.inputs)
      if (g.tensors[t].type == ElementType::Int32)
        fail("cannot prepare the integer model: node '{}' reads the int32 tensor '{}'", n.name, g.tensors[t].name);
  for (const Node& n : g.nodes) {
    const Tensor& in = g.tensors[n.inputs[0]];
    const Tensor& out = g.tensors[n.outputs[0]];
    if (has_weights(n)) {
      continue;  // prepare_layer checks layers
    } else if (n.op == OpCode::MaxPool || n.op == OpCode::Flatten || n.op == OpCode::Relu) {
      if (in.exponent != out.exponent)
        fail("cannot prepare the integer model: node '{}' ({}) must keep its input's exponent", n.name, to_string(n.op));
    } else if (n.op == OpCode::Add) {
      for (int32_t t : n.inputs)
        if (std::abs(g.tensors[t].exponent - out.exponent) > 24)
          fail("cannot prepare the integer model: node '{}' rescales by more than 2^24", n.name);
    } else if (std::abs(in.exponent - out.exponent) > 24) {
      fail("cannot prepare the integer model: node '{}' rescales by more than 2^24", n.name);
    }
  }
}

}  // namespace trit

#include "trit/graph.h"

namespace trit {

int64_t Tensor::elements() const {
  int64_t n = 1;
  for (int32_t d : shape) n *= d;
  return n;
}

Shape3 shape3(const Tensor& t) {
  return t.shape.size() == 3 ? Shape3{t.shape[0], t.shape[1], t.shape[2]} : Shape3{t.shape[0], 1, 1};
}

bool has_weights(const Node& n) { return n.op == OpCode::Conv || n.op == OpCode::FullyConnected; }

Range output_range(const Node& n, const Tensor& out) {
  return output_range(out.type, n.activation == Activation::Relu || n.op == OpCode::Relu);
}

}  // namespace trit

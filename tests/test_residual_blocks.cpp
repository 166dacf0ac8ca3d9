// The walks over residual structure (converter/residual_blocks.h) on the generated ResNet-18 and
// ResNet-101 (tests/make_resnet_family.py): segments at the trunk, and where each layer joins it.
#include <doctest/doctest.h>

#include <algorithm>

#include "helpers.h"
#include "onnx_import.h"
#include "residual_blocks.h"

using namespace trit;

namespace {

void check_family(int depth, int blocks) {
  const auto path = test::testdata() / "family" / fmt::format("resnet{}.onnx", depth);
  REQUIRE_MESSAGE(std::filesystem::exists(path), "tests/make_resnet_family.py did not run");
  const Graph g = import_onnx(path.string());
  const std::vector<Segment> segs = residual_segments(g);
  REQUIRE(!segs.empty());
  // Contiguous, covering every node, each reading what the one before it leaves.
  CHECK(segs.front().begin == 0);
  CHECK(segs.front().input == g.inputs[0]);
  CHECK(segs.back().end == g.nodes.size());
  CHECK(segs.back().output == g.outputs[0]);
  int residual = 0;
  for (size_t s = 0; s < segs.size(); ++s) {
    CAPTURE(s);
    CHECK(segs[s].begin < segs[s].end);
    if (s > 0) {
      CHECK(segs[s].begin == segs[s - 1].end);
      CHECK(segs[s].input == segs[s - 1].output);
    }
    CHECK(g.nodes[segs[s].end - 1].outputs[0] == segs[s].output);
    // Nothing inside a segment reads a tensor written before it other than its input.
    for (size_t i = segs[s].begin; i < segs[s].end; ++i)
      for (int32_t t : g.nodes[i].inputs) {
        bool inside = t == segs[s].input;
        for (size_t j = segs[s].begin; j < i; ++j) inside = inside || g.nodes[j].outputs[0] == t;
        CHECK(inside);
      }
    if (segs[s].residual) {
      ++residual;
      CHECK(g.nodes[segs[s].end - 1].op == OpCode::Add);  // the ReLU is fused into it
    } else {
      CHECK(segs[s].end - segs[s].begin == 1);  // stem and head: one node each
    }
  }
  CHECK(residual == blocks);

  // Every layer of a block joins its block's Add; the classifier and the stem join nothing.
  const std::vector<BranchJoin> joins = branch_joins(g);
  int joined = 0;
  for (const Segment& s : segs)
    for (size_t i = s.begin; i < s.end; ++i) {
      if (!has_weights(g.nodes[i])) continue;
      CAPTURE(g.nodes[i].name);
      if (!s.residual) {
        CHECK(joins[i].add_node == -1);
        continue;
      }
      ++joined;
      CHECK(joins[i].add_node == static_cast<int32_t>(s.end - 1));
      const auto& add_inputs = g.nodes[s.end - 1].inputs;
      CHECK(std::find(add_inputs.begin(), add_inputs.end(), joins[i].entering) != add_inputs.end());
    }
  CHECK(joined > 2 * blocks);
}

}  // namespace

TEST_CASE("ResNet-18: a stem, 8 basic blocks and a head, each layer joining its block's Add") { check_family(18, 8); }

TEST_CASE("ResNet-101: 33 bottleneck blocks") { check_family(101, 33); }

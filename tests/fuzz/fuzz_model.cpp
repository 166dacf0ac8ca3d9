// Fuzz target: a model file, from bytes to a prepared session and one run, with its weights
// expanded and packed (which must agree).
// Built with libFuzzer by scripts/fuzz.sh; replayed over tests/fuzz/model/ by the tests.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "trit/error.h"
#include "trit/model_file.h"
#include "trit/session.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::byte> bytes(size);
  if (size) std::memcpy(bytes.data(), data, size);
  try {
    auto graph = std::make_shared<const trit::Graph>(trit::load_model_bytes(std::move(bytes), "fuzz.trit"));
    // The harness bounds its own time: graphs whose tensors or layers are large take too long per
    // input to fuzz (they are valid, just slow), so they stop after loading.
    int64_t elements = 0, macs = 0;
    for (const auto& t : graph->tensors) elements += t.elements();
    for (const auto& n : graph->nodes) macs += n.weights.count() * graph->tensors[n.outputs[0]].elements();
    if (elements > (int64_t{1} << 20) || macs > (int64_t{1} << 24) || graph->input().shape.size() != 3) return 0;
    // Expanded weights, then packed (Model::Options::packed_weights): the same answers.
    std::vector<float> x(static_cast<size_t>(graph->input().elements()), 0.25f);
    trit::Model::Options options;
    trit::Session session(trit::Model::from_graph(graph, options));
    const std::vector<float> expanded = session.logits_from_tensor(x);
    if (!session.model().is_integer()) return 0;  // (a float model's logits may hold NaN)
    options.packed_weights = true;
    trit::Session packed(trit::Model::from_graph(graph, options));
    if (packed.logits_from_tensor(x) != expanded) __builtin_trap();
  } catch (const trit::Error&) {
  }
  return 0;
}

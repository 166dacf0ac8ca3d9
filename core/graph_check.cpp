#include "trit/graph_check.h"

#include <cmath>

#include "trit/error.h"
#include "trit/weight_codes.h"

namespace trit {
namespace {

constexpr int32_t kMaxDim = 1 << 24;
constexpr int64_t kMaxElements = int64_t{1} << 31;
constexpr int32_t kMaxWindow = 1024;  // kernel, stride and pad bound

std::string shape_str(const std::vector<int32_t>& s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}

struct Checker {
  const Graph& g;
  const std::string& ctx;

  [[noreturn]] void bad(const std::string& why) const { fail("{}: {}", ctx, why); }

  void tensor_index(int32_t t, const std::string& who) const {
    if (t < 0 || static_cast<size_t>(t) >= g.tensors.size())
      bad(fmt::format("{} names tensor {}, but there are {}", who, t, g.tensors.size()));
  }

  void tensors() const {
    if (g.tensors.empty()) bad("the graph has no tensors");
    for (const Tensor& t : g.tensors) {
      if (t.shape.size() != 1 && t.shape.size() != 3)
        bad(fmt::format("tensor '{}' has rank {}; only [C] and [C, H, W] are supported", t.name,
                        t.shape.size()));
      int64_t n = 1;
      for (int32_t d : t.shape) {
        if (d < 1 || d > kMaxDim)
          bad(fmt::format("tensor '{}' has dimension {} outside [1, {}]", t.name, d, kMaxDim));
        n *= d;  // at most 3 factors below 2^24 each after the check above: no int64 overflow
        if (n >= kMaxElements)
          bad(fmt::format("tensor '{}' shape {} has 2^31 elements or more", t.name,
                          shape_str(t.shape)));
      }
      const int ti = static_cast<int>(t.type);
      if (ti < 0 || ti > 3) bad(fmt::format("tensor '{}' has unknown element type {}", t.name, ti));
      if (t.exponent < -32 || t.exponent > 32)
        bad(fmt::format("tensor '{}' exponent {} is outside [-32, 32]", t.name, t.exponent));
    }
  }

  void window(const Node& n) const {
    const Window& w = n.window;
    for (int32_t v : {w.kernel_h, w.kernel_w, w.stride_h, w.stride_w})
      if (v < 1 || v > kMaxWindow)
        bad(fmt::format("node '{}': kernel and stride must lie in [1, {}]", n.name, kMaxWindow));
    if (w.pad_top < 0 || w.pad_bottom < 0 || w.pad_top >= w.kernel_h || w.pad_bottom >= w.kernel_h ||
        w.pad_left < 0 || w.pad_right < 0 || w.pad_left >= w.kernel_w || w.pad_right >= w.kernel_w)
      bad(fmt::format("node '{}': pads must lie in [0, kernel - 1]", n.name));
  }

  void expect_shape(const Node& n, const Tensor& out, const std::vector<int32_t>& want) const {
    if (out.shape != want)
      bad(fmt::format("node '{}' ({}) output '{}' has shape {}, but its inputs give {}", n.name,
                      to_string(n.op), out.name, shape_str(out.shape), shape_str(want)));
  }

  void finite(const Blob& b, const std::string& what, const Node& n) const {
    for (float v : b.as<float>())
      if (!std::isfinite(v)) bad(fmt::format("node '{}': {} holds a value that is not finite", n.name, what));
  }

  void weights(const Node& n, int32_t out_channels, int32_t in_channels, int32_t kh, int32_t kw) const {
    const Weights& w = n.weights;
    const std::array<int32_t, 4> want{out_channels, in_channels, kh, kw};
    if (w.shape != want)
      bad(fmt::format("node '{}': weights have shape [{}], expected [{}]", n.name,
                      fmt::join(w.shape, ", "), fmt::join(want, ", ")));
    const int e = static_cast<int>(w.encoding);
    if (e < 0 || e > 3) bad(fmt::format("node '{}': unknown weight encoding {}", n.name, e));
    const int64_t code_bytes = weight_code_bytes(w.encoding, w.count());
    if (w.codes.size != static_cast<uint64_t>(code_bytes))
      bad(fmt::format("node '{}': {} weights take {} bytes, the model has {}", n.name,
                      to_string(w.encoding), code_bytes, w.codes.size));
    if (w.encoding == WeightEncoding::Float32) {
      finite(w.codes, "weights", n);
    } else {
      if (w.encoding != WeightEncoding::Int8PerChannel &&
          (w.cluster_size < 1 || w.cluster_size > in_channels))
        bad(fmt::format("node '{}': cluster size {} is outside [1, {}]", n.name, w.cluster_size,
                        in_channels));
      const int cs = static_cast<int>(w.cluster_shape);
      if (cs < 0 || cs > 1) bad(fmt::format("node '{}': unknown cluster shape {}", n.name, cs));
      const int64_t clusters = cluster_count(w);
      if (w.scales.size != static_cast<uint64_t>(clusters))
        bad(fmt::format("node '{}': {} clusters need {} scale bytes, the model has {}", n.name,
                        clusters, clusters, w.scales.size));
      for (std::byte s : std::span(w.scales.data, w.scales.size))
        if (s == std::byte{0} || static_cast<uint8_t>(s) > 127)
          bad(fmt::format("node '{}': a cluster scale is outside [1, 127]", n.name));
      if (w.scale_exponents.size != static_cast<uint64_t>(out_channels))
        bad(fmt::format("node '{}': scale exponents take {} bytes, the model has {}", n.name,
                        out_channels, w.scale_exponents.size));
      for (std::byte s : std::span(w.scale_exponents.data, w.scale_exponents.size)) {
        const int v = static_cast<int8_t>(s);
        if (v < -32 || v > 32)
          bad(fmt::format("node '{}': scale exponent {} is outside [-32, 32]", n.name, v));
      }
    }
    if (n.bias.size != static_cast<uint64_t>(out_channels) * 4)
      bad(fmt::format("node '{}': bias takes {} bytes, the model has {}", n.name,
                      int64_t{out_channels} * 4, n.bias.size));
    if (w.encoding == WeightEncoding::Float32) finite(n.bias, "bias", n);
  }

  void node(const Node& n, std::vector<bool>& written) const {
    const int op = static_cast<int>(n.op);
    if (op < 0 || op > 7) bad(fmt::format("node '{}' has unknown op code {}", n.name, op));
    const size_t want_inputs = n.op == OpCode::Add ? 2 : 1;
    if (n.inputs.size() != want_inputs || n.outputs.size() != 1)
      bad(fmt::format("node '{}' ({}) has {} inputs and {} outputs; it takes {} and 1", n.name,
                      to_string(n.op), n.inputs.size(), n.outputs.size(), want_inputs));
    for (int32_t t : n.inputs) {
      tensor_index(t, fmt::format("node '{}' input", n.name));
      if (!written[t])
        bad(fmt::format("node '{}' reads tensor '{}' before any node writes it", n.name,
                        g.tensors[t].name));
    }
    const int32_t o = n.outputs[0];
    tensor_index(o, fmt::format("node '{}' output", n.name));
    if (written[o])
      bad(fmt::format("node '{}' writes tensor '{}', which is already written", n.name, g.tensors[o].name));
    written[o] = true;

    const Tensor& in = g.tensors[n.inputs[0]];
    const Tensor& out = g.tensors[o];
    const int act = static_cast<int>(n.activation);
    if (act < 0 || act > 1) bad(fmt::format("node '{}' has unknown activation {}", n.name, act));
    auto need_rank3 = [&] {
      if (in.shape.size() != 3)
        bad(fmt::format("node '{}' ({}) needs a [C, H, W] input, '{}' is {}", n.name,
                        to_string(n.op), in.name, shape_str(in.shape)));
    };
    switch (n.op) {
      case OpCode::Conv: {
        need_rank3();
        window(n);
        const int32_t oh = n.window.out_h(in.shape[1]), ow = n.window.out_w(in.shape[2]);
        if (oh < 1 || ow < 1) bad(fmt::format("node '{}': the window does not fit the input", n.name));
        if (out.shape.empty()) bad(fmt::format("node '{}': output has no shape", n.name));
        expect_shape(n, out, {out.shape[0], oh, ow});
        weights(n, out.shape[0], in.shape[0], n.window.kernel_h, n.window.kernel_w);
        break;
      }
      case OpCode::MaxPool:
      case OpCode::AveragePool: {
        need_rank3();
        window(n);
        const int32_t oh = n.window.out_h(in.shape[1]), ow = n.window.out_w(in.shape[2]);
        if (oh < 1 || ow < 1) bad(fmt::format("node '{}': the window does not fit the input", n.name));
        expect_shape(n, out, {in.shape[0], oh, ow});
        break;
      }
      case OpCode::Add: {
        const Tensor& b = g.tensors[n.inputs[1]];
        if (b.shape != in.shape)
          bad(fmt::format("node '{}' (Add) adds {} to {}; shapes must be equal", n.name,
                          shape_str(in.shape), shape_str(b.shape)));
        expect_shape(n, out, in.shape);
        break;
      }
      case OpCode::Relu: expect_shape(n, out, in.shape); break;
      case OpCode::GlobalAveragePool:
        need_rank3();
        expect_shape(n, out, {in.shape[0], 1, 1});
        break;
      case OpCode::Flatten:
        expect_shape(n, out, {static_cast<int32_t>(in.elements())});
        break;
      case OpCode::FullyConnected:
        if (in.shape.size() != 1)
          bad(fmt::format("node '{}' (FullyConnected) needs a [K] input, '{}' is {}", n.name,
                          in.name, shape_str(in.shape)));
        if (out.shape.size() != 1)
          bad(fmt::format("node '{}' (FullyConnected) output '{}' must be [O]", n.name, out.name));
        weights(n, out.shape[0], in.shape[0], 1, 1);
        break;
    }
    if (n.op != OpCode::Conv && n.op != OpCode::FullyConnected &&
        (!n.weights.codes.empty() || !n.bias.empty()))
      bad(fmt::format("node '{}' ({}) carries weights it cannot use", n.name, to_string(n.op)));
  }

  // Names and labels end up in messages and printed results: no control characters.
  void printable(const std::string& text, const std::string& what) const {
    for (const char c : text)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        bad(fmt::format("{} holds a control character (byte 0x{:02x})", what, static_cast<unsigned char>(c)));
  }

  void strings() const {
    for (size_t t = 0; t < g.tensors.size(); ++t) printable(g.tensors[t].name, fmt::format("tensor {}'s name", t));
    for (size_t n = 0; n < g.nodes.size(); ++n) printable(g.nodes[n].name, fmt::format("node {}'s name", n));
    for (size_t l = 0; l < g.metadata.labels.size(); ++l) {
      printable(g.metadata.labels[l].wnid, fmt::format("label {}", l));
      printable(g.metadata.labels[l].name, fmt::format("label {}", l));
    }
    printable(g.metadata.source, "the source");
    printable(g.metadata.converter_version, "the converter version");
    printable(g.metadata.converter_options, "the converter options");
  }

  void metadata() const {
    const Metadata& m = g.metadata;
    const Tensor& in = g.input();
    if (in.shape.size() != 3) bad(fmt::format("the input '{}' must be [C, H, W]", in.name));
    const size_t c = static_cast<size_t>(in.shape[0]);
    if (m.mean.size() != c || m.scale.size() != c)
      bad(fmt::format("metadata has {} means and {} scales for {} input channels", m.mean.size(),
                      m.scale.size(), c));
    for (float v : m.mean)
      if (!std::isfinite(v)) bad("metadata mean is not finite");
    for (float v : m.scale)
      if (!std::isfinite(v) || v <= 0) bad(fmt::format("metadata scale {} is not a positive number", v));
    const int ord = static_cast<int>(m.channel_order);
    if (ord < 0 || ord > 1) bad(fmt::format("metadata channel order {} is unknown", ord));
    if (m.channel_order == ChannelOrder::BGR && c != 3) bad("BGR channel order needs 3 input channels");
    if (m.resize_shorter < 0 || m.resize_shorter > 65536)
      bad(fmt::format("metadata resize {} is outside [0, 65536]", m.resize_shorter));
    if (m.resize_shorter != 0 && m.resize_shorter < std::max(in.shape[1], in.shape[2]))
      bad(fmt::format("metadata resize {} is smaller than the input {}x{}", m.resize_shorter,
                      in.shape[1], in.shape[2]));
    if (!m.labels.empty() && static_cast<int64_t>(m.labels.size()) != g.output().elements())
      bad(fmt::format("metadata has {} labels for {} outputs", m.labels.size(), g.output().elements()));
  }

  void run() const {
    strings();
    tensors();
    if (g.inputs.size() != 1) bad(fmt::format("the graph has {} inputs; trit models have 1", g.inputs.size()));
    if (g.outputs.empty()) bad("the graph has no outputs");
    std::vector<bool> written(g.tensors.size(), false);
    for (int32_t t : g.inputs) {
      tensor_index(t, "graph input");
      written[t] = true;
    }
    for (const Node& n : g.nodes) node(n, written);
    for (int32_t t : g.outputs) {
      tensor_index(t, "graph output");
      if (!written[t]) bad(fmt::format("graph output '{}' is never written", g.tensors[t].name));
    }
    metadata();
  }
};

}  // namespace

void check_graph(const Graph& graph, const std::string& context) {
  Checker{graph, context}.run();
}

}  // namespace trit

#include "onnx_import.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "trit/error.h"
#include "trit/graph_check.h"

namespace trit {
namespace {

using onnx::AttributeProto;
using onnx::NodeProto;
using onnx::TensorProto;

// A constant: an initializer or a Constant node's value, as float or int64 values.
struct Constant {
  std::vector<int64_t> dims;
  std::vector<float> f;
  std::vector<int64_t> i;
  bool is_float = true;
  int64_t size() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
};

// What a node being built holds before it becomes Blobs.
struct PendingWeights {
  std::vector<float> w;     // [O][I][KH][KW]
  std::vector<float> bias;  // [O]
};

class Importer {
 public:
  Importer(const std::string& name, ImportStats* stats) : name_(name), stats_(stats) {}

  Graph run(const onnx::ModelProto& model) {
    const onnx::GraphProto& graph = model.graph();
    for (const auto& opset : model.opset_import())
      if ((opset.domain().empty() || opset.domain() == "ai.onnx") && opset.version() < 7)
        bad(fmt::format("opset {} is older than 7, which trit reads", opset.version()));
    for (const TensorProto& t : graph.initializer()) constants_[t.name()] = constant(t);
    count_readers(graph);
    input(graph);
    for (int i = 0; i < graph.node_size(); ++i) node(graph.node(i), i);
    for (const auto& out : graph.output()) {
      auto it = values_.find(out.name());
      if (it == values_.end()) bad(fmt::format("graph output '{}' is not computed by any node", out.name()));
      g_.outputs.push_back(it->second);
    }
    if (g_.outputs.empty()) bad("the graph has no outputs");
    finish();
    preprocessing(model);
    return std::move(g_);
  }

 private:
  std::string name_;
  ImportStats* stats_;
  Graph g_;
  std::vector<PendingWeights> pending_;       // one per g_.nodes entry
  std::map<std::string, Constant> constants_;
  std::map<std::string, int32_t> values_;     // ONNX value name -> tensor index
  std::map<std::string, int> readers_;        // ONNX value name -> reading nodes (+1 if a graph output)
  std::vector<int32_t> producer_;             // tensor index -> node index, or -1

  [[noreturn]] void bad(const std::string& why) const { fail("cannot import ONNX '{}': {}", name_, why); }
  [[noreturn]] void bad(const NodeProto& n, const std::string& why) const {
    bad(fmt::format("node '{}' (op {}): {}", n.name(), n.op_type(), why));
  }

  Constant constant(const TensorProto& t) const {
    Constant c;
    for (int64_t d : t.dims()) {
      if (d < 0 || d > (int64_t{1} << 31)) bad(fmt::format("tensor '{}' has dimension {}", t.name(), d));
      c.dims.push_back(d);
    }
    int64_t n = 1;
    for (int64_t d : c.dims) {
      n *= d;
      if (n > (int64_t{1} << 31)) bad(fmt::format("tensor '{}' has too many elements", t.name()));
    }
    if (t.data_location() == TensorProto::EXTERNAL)
      bad(fmt::format("tensor '{}' keeps its data in an external file, which trit does not read", t.name()));
    const bool raw = t.has_raw_data();
    if (t.data_type() == TensorProto::FLOAT) {
      if (raw) {
        if (t.raw_data().size() != static_cast<size_t>(n) * 4)
          bad(fmt::format("tensor '{}' has {} bytes of data for {} floats", t.name(), t.raw_data().size(), n));
        c.f.resize(n);
        std::memcpy(c.f.data(), t.raw_data().data(), t.raw_data().size());
      } else {
        if (t.float_data_size() != n)
          bad(fmt::format("tensor '{}' has {} values for {} elements", t.name(), t.float_data_size(), n));
        c.f.assign(t.float_data().begin(), t.float_data().end());
      }
    } else if (t.data_type() == TensorProto::INT64) {
      c.is_float = false;
      if (raw) {
        if (t.raw_data().size() != static_cast<size_t>(n) * 8)
          bad(fmt::format("tensor '{}' has {} bytes of data for {} int64s", t.name(), t.raw_data().size(), n));
        c.i.resize(n);
        std::memcpy(c.i.data(), t.raw_data().data(), t.raw_data().size());
      } else {
        if (t.int64_data_size() != n)
          bad(fmt::format("tensor '{}' has {} values for {} elements", t.name(), t.int64_data_size(), n));
        c.i.assign(t.int64_data().begin(), t.int64_data().end());
      }
    } else {
      c.is_float = false;  // other types are kept by name only; any use of them is refused
    }
    return c;
  }

  void count_readers(const onnx::GraphProto& graph) {
    for (const NodeProto& n : graph.node())
      for (const std::string& in : n.input()) ++readers_[in];
    for (const auto& out : graph.output()) ++readers_[out.name()];
  }

  void input(const onnx::GraphProto& graph) {
    const onnx::ValueInfoProto* in = nullptr;
    for (const auto& v : graph.input())
      if (!constants_.count(v.name())) {
        if (in) bad(fmt::format("the graph has more than one input ('{}', '{}')", in->name(), v.name()));
        in = &v;
      }
    if (!in) bad("the graph has no input");
    const auto& type = in->type();
    if (!type.has_tensor_type() || type.tensor_type().elem_type() != TensorProto::FLOAT)
      bad(fmt::format("input '{}' must be a float32 tensor", in->name()));
    const auto& shape = type.tensor_type().shape();
    if (shape.dim_size() != 4) bad(fmt::format("input '{}' must be [N, C, H, W]", in->name()));
    std::vector<int32_t> chw;
    for (int d = 1; d < 4; ++d) {
      const auto& dim = shape.dim(d);
      if (!dim.has_dim_value() || dim.dim_value() < 1 || dim.dim_value() > (1 << 24))
        bad(fmt::format("input '{}' dimension {} must be a fixed positive size", in->name(), d));
      chw.push_back(static_cast<int32_t>(dim.dim_value()));
    }
    g_.inputs.push_back(add_tensor(in->name(), chw, -1));
  }

  int32_t add_tensor(const std::string& name, std::vector<int32_t> shape, int32_t producer) {
    g_.tensors.push_back(Tensor{name, std::move(shape)});
    producer_.push_back(producer);
    const auto index = static_cast<int32_t>(g_.tensors.size() - 1);
    values_[name] = index;
    return index;
  }

  // The tensor an input names; constants are refused where a computed tensor is needed.
  int32_t value(const NodeProto& n, int i) const {
    if (i >= n.input_size() || n.input(i).empty()) bad(n, fmt::format("input {} is missing", i));
    auto it = values_.find(n.input(i));
    if (it == values_.end()) {
      if (constants_.count(n.input(i))) bad(n, fmt::format("input '{}' is a constant; trit needs a computed tensor here", n.input(i)));
      bad(n, fmt::format("input '{}' is not computed before this node", n.input(i)));
    }
    return it->second;
  }

  const Constant* find_constant(const NodeProto& n, int i) const {
    if (i >= n.input_size() || n.input(i).empty()) return nullptr;
    auto it = constants_.find(n.input(i));
    return it == constants_.end() ? nullptr : &it->second;
  }

  const Constant& float_constant(const NodeProto& n, int i, const char* what) const {
    const Constant* c = find_constant(n, i);
    if (!c) bad(n, fmt::format("{} must be a constant (an initializer)", what));
    if (!c->is_float) bad(n, fmt::format("{} must be float32", what));
    return *c;
  }

  static const AttributeProto* attr(const NodeProto& n, const char* key) {
    for (const auto& a : n.attribute())
      if (a.name() == key) return &a;
    return nullptr;
  }
  int64_t attr_int(const NodeProto& n, const char* key, int64_t def) const {
    const AttributeProto* a = attr(n, key);
    return a ? a->i() : def;
  }
  float attr_float(const NodeProto& n, const char* key, float def) const {
    const AttributeProto* a = attr(n, key);
    return a ? a->f() : def;
  }
  std::vector<int64_t> attr_ints(const NodeProto& n, const char* key) const {
    const AttributeProto* a = attr(n, key);
    return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : std::vector<int64_t>{};
  }
  std::string attr_string(const NodeProto& n, const char* key, const char* def) const {
    const AttributeProto* a = attr(n, key);
    return a ? a->s() : def;
  }

  const std::string& output_name(const NodeProto& n) const {
    if (n.output_size() < 1 || n.output(0).empty()) bad(n, "it has no output");
    for (int i = 1; i < n.output_size(); ++i)
      if (!n.output(i).empty() && readers_.count(n.output(i)))
        bad(n, fmt::format("its extra output '{}' is used, which trit does not support", n.output(i)));
    if (values_.count(n.output(0)) || constants_.count(n.output(0)))
      bad(n, fmt::format("output '{}' is already defined", n.output(0)));
    return n.output(0);
  }

  int readers(const std::string& value) const {
    auto it = readers_.find(value);
    return it == readers_.end() ? 0 : it->second;
  }

  // Node that produced tensor t, when that node can still absorb a following op: its output is
  // read by exactly one node, and it is not a graph output.
  Node* absorbing_producer(int32_t t) {
    const int32_t p = producer_[t];
    if (p < 0 || readers(g_.tensors[t].name) != 1) return nullptr;
    return &g_.nodes[p];
  }

  // The window of a Conv or pool from kernel_shape, strides, pads, auto_pad and dilations.
  Window window(const NodeProto& n, const Tensor& in, int64_t kh, int64_t kw) const {
    const auto strides = attr_ints(n, "strides");
    const auto pads = attr_ints(n, "pads");
    const auto dilations = attr_ints(n, "dilations");
    for (int64_t d : dilations)
      if (d != 1) bad(n, fmt::format("dilation {} is not supported", d));
    if (!strides.empty() && strides.size() != 2) bad(n, "strides must have 2 values");
    if (!pads.empty() && pads.size() != 4) bad(n, "pads must have 4 values");
    Window w;
    auto narrow = [&](int64_t v, const char* what) {
      if (v < 0 || v > 1024) bad(n, fmt::format("{} {} is outside [0, 1024]", what, v));
      return static_cast<int32_t>(v);
    };
    w.kernel_h = narrow(kh, "kernel");
    w.kernel_w = narrow(kw, "kernel");
    w.stride_h = narrow(strides.empty() ? 1 : strides[0], "stride");
    w.stride_w = narrow(strides.empty() ? 1 : strides[1], "stride");
    if (w.kernel_h < 1 || w.kernel_w < 1 || w.stride_h < 1 || w.stride_w < 1)
      bad(n, "kernel and strides must be at least 1");
    const std::string auto_pad = attr_string(n, "auto_pad", "NOTSET");
    if (auto_pad == "NOTSET") {
      if (!pads.empty()) {
        w.pad_top = narrow(pads[0], "pad");
        w.pad_left = narrow(pads[1], "pad");
        w.pad_bottom = narrow(pads[2], "pad");
        w.pad_right = narrow(pads[3], "pad");
      }
    } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      auto same = [&](int32_t size, int32_t k, int32_t s, int32_t& a, int32_t& b) {
        const int32_t out = (size + s - 1) / s;
        const int32_t total = std::max(0, (out - 1) * s + k - size);
        a = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
        b = total - a;
      };
      same(in.shape[1], w.kernel_h, w.stride_h, w.pad_top, w.pad_bottom);
      same(in.shape[2], w.kernel_w, w.stride_w, w.pad_left, w.pad_right);
    } else if (auto_pad != "VALID") {
      bad(n, fmt::format("auto_pad '{}' is not supported", auto_pad));
    }
    if (w.pad_top >= w.kernel_h || w.pad_bottom >= w.kernel_h || w.pad_left >= w.kernel_w ||
        w.pad_right >= w.kernel_w)
      bad(n, "pads as large as the kernel are not supported");
    if (w.out_h(in.shape[1]) < 1 || w.out_w(in.shape[2]) < 1)
      bad(n, fmt::format("the {}x{} window does not fit the {}x{} input", w.kernel_h, w.kernel_w,
                         in.shape[1], in.shape[2]));
    return w;
  }

  void need_rank3(const NodeProto& n, const Tensor& t) const {
    if (t.shape.size() != 3) bad(n, fmt::format("input '{}' must be [N, C, H, W]", t.name));
  }

  int32_t emit(Node node, const std::string& out, std::vector<int32_t> shape, PendingWeights w = {}) {
    const auto index = static_cast<int32_t>(g_.nodes.size());
    node.outputs = {add_tensor(out, std::move(shape), index)};
    g_.nodes.push_back(std::move(node));
    pending_.push_back(std::move(w));
    return index;
  }

  void alias(const std::string& out, int32_t t) {
    g_.tensors[t].name = out;
    values_[out] = t;
  }

  void node(const NodeProto& n, int index) {
    const std::string& op = n.op_type();
    if (!n.domain().empty() && n.domain() != "ai.onnx") bad(n, fmt::format("domain '{}' is not supported", n.domain()));
    NodeProto named = n;
    if (named.name().empty()) named.set_name(fmt::format("{}_{}", op, index));
    if (op == "Constant") return constant_node(named);
    const std::string& out = output_name(named);
    Node node;
    node.name = named.name();
    if (op == "Conv") return conv(named, out, node);
    if (op == "BatchNormalization") return batch_norm(named, out);
    if (op == "Relu") return relu(named, out, node);
    if (op == "Add") return add(named, out, node);
    if (op == "MaxPool" || op == "AveragePool") return pool(named, out, node);
    if (op == "GlobalAveragePool") {
      const int32_t x = value(named, 0);
      need_rank3(named, g_.tensors[x]);
      node.op = OpCode::GlobalAveragePool;
      node.inputs = {x};
      emit(std::move(node), out, {g_.tensors[x].shape[0], 1, 1});
      return;
    }
    if (op == "Flatten") {
      if (attr_int(named, "axis", 1) != 1) bad(named, "only axis 1 is supported");
      return flatten(named, out, node);
    }
    if (op == "Reshape") return reshape(named, out, node);
    if (op == "Gemm" || op == "MatMul") return fully_connected(named, out, node);
    bad(named, "this operator is not supported");
  }

  void constant_node(const NodeProto& n) {
    const AttributeProto* v = attr(n, "value");
    if (!v || !v->has_t()) bad(n, "only a Constant with a 'value' tensor is supported");
    if (n.output_size() != 1) bad(n, "it must have one output");
    constants_[n.output(0)] = constant(v->t());
  }

  void conv(const NodeProto& n, const std::string& out, Node& node) {
    const int32_t x = value(n, 0);
    const Tensor& in = g_.tensors[x];
    need_rank3(n, in);
    const int64_t group = attr_int(n, "group", 1);
    if (group != 1) bad(n, fmt::format("group {} is not supported", group));
    const Constant& w = float_constant(n, 1, "the weight");
    if (w.dims.size() != 4) bad(n, "the weight must be [O, I, KH, KW]");
    if (w.dims[1] != in.shape[0])
      bad(n, fmt::format("the weight has {} input channels, the input has {}", w.dims[1], in.shape[0]));
    if (w.dims[0] < 1 || w.dims[0] > (1 << 24)) bad(n, "the weight has no output channels");
    const auto kernel = attr_ints(n, "kernel_shape");
    if (!kernel.empty() && (kernel.size() != 2 || kernel[0] != w.dims[2] || kernel[1] != w.dims[3]))
      bad(n, "kernel_shape disagrees with the weight");
    node.op = OpCode::Conv;
    node.inputs = {x};
    node.window = window(n, in, w.dims[2], w.dims[3]);
    const auto o = static_cast<int32_t>(w.dims[0]);
    node.weights.shape = {o, in.shape[0], node.window.kernel_h, node.window.kernel_w};
    PendingWeights p{w.f, std::vector<float>(o, 0.0f)};
    if (const Constant* b = find_constant(n, 2)) {
      if (!b->is_float || b->size() != o) bad(n, fmt::format("the bias must be {} floats", o));
      p.bias = b->f;
    } else if (n.input_size() > 2 && !n.input(2).empty()) {
      bad(n, "the bias must be a constant");
    }
    emit(std::move(node), out, {o, node.window.out_h(in.shape[1]), node.window.out_w(in.shape[2])}, std::move(p));
  }

  void batch_norm(const NodeProto& n, const std::string& out) {
    const int32_t x = value(n, 0);
    Node* conv = absorbing_producer(x);
    if (!conv || conv->op != OpCode::Conv || conv->activation != Activation::None)
      bad(n, "it does not follow a Conv whose only reader it is, so it cannot be folded");
    if (attr_int(n, "training_mode", 0) != 0) bad(n, "training mode is not supported");
    const double eps = attr_float(n, "epsilon", 1e-5f);
    const int32_t o = conv->weights.shape[0];
    const Constant* parts[4];
    const char* names[4] = {"scale", "bias", "mean", "variance"};
    for (int i = 0; i < 4; ++i) {
      parts[i] = &float_constant(n, i + 1, names[i]);
      if (parts[i]->size() != o) bad(n, fmt::format("{} must have {} values", names[i], o));
    }
    PendingWeights& p = pending_[producer_[x]];
    const int64_t per_filter = static_cast<int64_t>(p.w.size()) / o;
    for (int32_t c = 0; c < o; ++c) {
      const double var = parts[3]->f[c];
      if (!(var + eps > 0)) bad(n, fmt::format("variance + epsilon of channel {} is not positive", c));
      // y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta, in double, rounded once.
      const double k = parts[0]->f[c] / std::sqrt(var + eps);
      for (int64_t j = 0; j < per_filter; ++j) {
        float& wv = p.w[c * per_filter + j];
        wv = static_cast<float>(wv * k);
      }
      p.bias[c] = static_cast<float>((p.bias[c] - parts[2]->f[c]) * k + parts[1]->f[c]);
    }
    alias(out, x);
    if (!stats_) return;
    ++stats_->folded_batch_norms;
    // A second batch norm on the same Conv describes the first one's output: it replaces it.
    auto& bns = stats_->batch_norms;
    if (bns.empty() || bns.back().node != producer_[x]) bns.push_back({producer_[x], {}, {}});
    BatchNormStatistics& s = bns.back();
    s.mean.assign(parts[1]->f.begin(), parts[1]->f.end());
    s.stddev.resize(o);
    for (int32_t c = 0; c < o; ++c) {
      const double var = std::max(double{parts[3]->f[c]}, 0.0);
      s.stddev[c] = static_cast<float>(std::abs(parts[0]->f[c]) * std::sqrt(var / (var + eps)));
    }
  }

  void relu(const NodeProto& n, const std::string& out, Node& node) {
    const int32_t x = value(n, 0);
    Node* p = absorbing_producer(x);
    if (p && (p->op == OpCode::Conv || p->op == OpCode::Add || p->op == OpCode::FullyConnected) &&
        p->activation == Activation::None) {
      p->activation = Activation::Relu;
      alias(out, x);
      if (stats_) ++stats_->fused_relus;
      return;
    }
    node.op = OpCode::Relu;
    node.inputs = {x};
    emit(std::move(node), out, g_.tensors[x].shape);
  }

  void add(const NodeProto& n, const std::string& out, Node& node) {
    if (n.input_size() != 2) bad(n, "Add takes two inputs");
    // A constant added to a Conv or fully connected output becomes its bias.
    for (int k = 0; k < 2; ++k) {
      const Constant* c = find_constant(n, k);
      if (!c) continue;
      const int32_t x = value(n, 1 - k);
      Node* p = absorbing_producer(x);
      if (!p || (p->op != OpCode::Conv && p->op != OpCode::FullyConnected) || p->activation != Activation::None)
        bad(n, "adding a constant is supported only as the bias of a Conv, Gemm or MatMul");
      const int32_t o = p->weights.shape[0];
      int64_t non_unit = 0;
      for (int64_t d : c->dims) non_unit += d != 1 && d != o;
      if (!c->is_float || c->size() != o || non_unit)
        bad(n, fmt::format("the constant must hold one value per channel ({})", o));
      // Per channel: dims like [O], [1, O] (fully connected) or [1, O, 1, 1] (Conv, NCHW).
      const bool channel_axis_ok = p->op == OpCode::FullyConnected
                                       ? c->dims.back() == o
                                       : (c->dims.size() >= 3 && c->dims[c->dims.size() - 3] == o);
      if (!channel_axis_ok && o != 1) bad(n, "the constant does not broadcast along the channels");
      PendingWeights& w = pending_[producer_[x]];
      for (int32_t i = 0; i < o; ++i) w.bias[i] += c->f[i];
      if (stats_ && !stats_->batch_norms.empty() && stats_->batch_norms.back().node == producer_[x])
        for (int32_t i = 0; i < o; ++i) stats_->batch_norms.back().mean[i] += c->f[i];
      alias(out, x);
      if (stats_) ++stats_->folded_biases;
      return;
    }
    const int32_t a = value(n, 0), b = value(n, 1);
    if (g_.tensors[a].shape != g_.tensors[b].shape)
      bad(n, fmt::format("inputs '{}' and '{}' have different shapes; broadcasting is not supported",
                         g_.tensors[a].name, g_.tensors[b].name));
    node.op = OpCode::Add;
    node.inputs = {a, b};
    emit(std::move(node), out, g_.tensors[a].shape);
  }

  void pool(const NodeProto& n, const std::string& out, Node& node) {
    const int32_t x = value(n, 0);
    const Tensor& in = g_.tensors[x];
    need_rank3(n, in);
    if (attr_int(n, "ceil_mode", 0) != 0) bad(n, "ceil_mode 1 is not supported");
    const auto kernel = attr_ints(n, "kernel_shape");
    if (kernel.size() != 2) bad(n, "kernel_shape must have 2 values");
    node.op = n.op_type() == "MaxPool" ? OpCode::MaxPool : OpCode::AveragePool;
    node.inputs = {x};
    node.window = window(n, in, kernel[0], kernel[1]);
    node.count_include_pad = attr_int(n, "count_include_pad", 0) != 0;
    emit(std::move(node), out, {in.shape[0], node.window.out_h(in.shape[1]), node.window.out_w(in.shape[2])});
  }

  void flatten(const NodeProto& n, const std::string& out, Node& node) {
    const int32_t x = value(n, 0);
    const Tensor& in = g_.tensors[x];
    if (in.shape.size() == 1) return alias(out, x);
    node.op = OpCode::Flatten;
    node.inputs = {x};
    emit(std::move(node), out, {static_cast<int32_t>(in.elements())});
  }

  void reshape(const NodeProto& n, const std::string& out, Node& node) {
    const int32_t x = value(n, 0);
    const Constant* shape = find_constant(n, 1);
    if (!shape || shape->is_float || shape->i.size() != 2)
      bad(n, "only a Reshape to a constant [N, K] shape (a flatten) is supported");
    const int64_t k = shape->i[1], elements = g_.tensors[x].elements();
    const int64_t batch = shape->i[0];
    if (!((k == -1 || k == elements) && (batch == -1 || batch == 0 || batch == 1 || k == elements)))
      bad(n, fmt::format("the reshape to [{}, {}] is not a flatten of {} values per image", batch, k, elements));
    flatten(n, out, node);
  }

  void fully_connected(const NodeProto& n, const std::string& out, Node& node) {
    const bool gemm = n.op_type() == "Gemm";
    const int32_t x = value(n, 0);
    const Tensor& in = g_.tensors[x];
    if (in.shape.size() != 1) bad(n, fmt::format("input '{}' must be [N, K]; flatten it first", in.name));
    const int32_t k = in.shape[0];
    if (gemm && attr_int(n, "transA", 0) != 0) bad(n, "transA is not supported");
    const bool trans_b = gemm && attr_int(n, "transB", 0) != 0;
    const float alpha = gemm ? attr_float(n, "alpha", 1.0f) : 1.0f;
    const float beta = gemm ? attr_float(n, "beta", 1.0f) : 1.0f;
    const Constant& b = float_constant(n, 1, "the weight");
    if (b.dims.size() != 2) bad(n, "the weight must be 2-D");
    const int64_t rows = trans_b ? b.dims[1] : b.dims[0], o = trans_b ? b.dims[0] : b.dims[1];
    if (rows != k) bad(n, fmt::format("the weight takes {} inputs, the input has {}", rows, k));
    if (o < 1 || o > (1 << 24)) bad(n, "the weight has no outputs");
    PendingWeights p;
    p.w.resize(static_cast<size_t>(o) * k);
    for (int64_t r = 0; r < o; ++r)
      for (int64_t c = 0; c < k; ++c)
        p.w[r * k + c] = alpha * (trans_b ? b.f[r * k + c] : b.f[c * o + r]);
    p.bias.assign(o, 0.0f);
    if (gemm && n.input_size() > 2 && !n.input(2).empty()) {
      const Constant& c = float_constant(n, 2, "C");
      if (c.size() != o && c.size() != 1) bad(n, fmt::format("C must hold {} values", o));
      for (int64_t r = 0; r < o; ++r) p.bias[r] = beta * c.f[c.size() == 1 ? 0 : r];
    }
    node.op = OpCode::FullyConnected;
    node.inputs = {x};
    node.weights.shape = {static_cast<int32_t>(o), k, 1, 1};
    emit(std::move(node), out, {static_cast<int32_t>(o)}, std::move(p));
  }

  // The metadata_props keys of onnx_import.h.
  void preprocessing(const onnx::ModelProto& model) {
    Metadata& m = g_.metadata;
    const size_t channels = m.mean.size();
    // A value as an error message shows it: on one line, at most 60 characters.
    auto shown = [](std::string text) {
      if (text.size() > 60) text = text.substr(0, 57) + "...";
      for (char& ch : text)
        if (static_cast<unsigned char>(ch) < 32) ch = '?';
      return text;
    };
    auto floats = [&](const std::string& key, const std::string& text) {
      std::vector<float> v;
      size_t at = 0;
      while (at <= text.size()) {
        const size_t comma = std::min(text.find(',', at), text.size());
        const std::string word = text.substr(at, comma - at);
        char* end = nullptr;
        const float f = std::strtof(word.c_str(), &end);
        if (word.empty() || *end != '\0' || !std::isfinite(f))
          bad(fmt::format("metadata '{}' = '{}': '{}' is not a number", key, shown(text), shown(word)));
        v.push_back(f);
        at = comma + 1;
      }
      if (v.size() != channels)
        bad(fmt::format("metadata '{}' = '{}' has {} values for {} input channels", key, shown(text), v.size(), channels));
      return v;
    };
    for (const auto& prop : model.metadata_props()) {
      const std::string& key = prop.key();
      const std::string& value = prop.value();
      if (key == "trit.channel_order") {
        if (value != "RGB" && value != "BGR")
          bad(fmt::format("metadata '{}' = '{}' is not RGB or BGR", key, shown(value)));
        m.channel_order = value == "BGR" ? ChannelOrder::BGR : ChannelOrder::RGB;
      } else if (key == "trit.mean") {
        m.mean = floats(key, value);
      } else if (key == "trit.scale") {
        m.scale = floats(key, value);
        for (float f : m.scale)
          if (!(f > 0)) bad(fmt::format("metadata '{}' = '{}': every divisor must be > 0", key, shown(value)));
      } else if (key == "trit.resize_shorter") {
        char* end = nullptr;
        const long r = std::strtol(value.c_str(), &end, 10);
        if (value.empty() || *end != '\0' || r < 0 || r > 65536)
          bad(fmt::format("metadata '{}' = '{}' is not a size in [0, 65536]", key, shown(value)));
        m.resize_shorter = static_cast<int32_t>(r);
      } else {
        continue;
      }
      if (stats_) stats_->preprocessing = true;
    }
  }

  void finish() {
    int64_t params = 0;
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      Node& node = g_.nodes[i];
      if (node.op != OpCode::Conv && node.op != OpCode::FullyConnected) continue;
      params += static_cast<int64_t>(pending_[i].w.size() + pending_[i].bias.size());
      node.weights.encoding = WeightEncoding::Float32;
      node.weights.codes = Blob::from_vector(std::move(pending_[i].w));
      node.bias = Blob::from_vector(std::move(pending_[i].bias));
    }
    if (stats_) stats_->parameters = params;
    const auto c = static_cast<size_t>(g_.input().shape[0]);
    g_.metadata.mean.assign(c, 0.0f);
    g_.metadata.scale.assign(c, 1.0f);
    g_.metadata.source = name_;
    check_graph(g_, fmt::format("cannot import ONNX '{}'", name_));
  }
};

}  // namespace

Graph import_onnx_bytes(const std::string& bytes, const std::string& name, ImportStats* stats) {
  onnx::ModelProto model;
  if (!model.ParseFromString(bytes))
    fail("cannot import ONNX '{}': not an ONNX model (the protobuf does not parse)", name);
  return Importer(name, stats).run(model);
}

Graph import_onnx(const std::string& path, ImportStats* stats) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail("cannot import ONNX '{}': no such file", path);
  if (!std::filesystem::is_regular_file(path, ec)) fail("cannot import ONNX '{}': not a regular file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot import ONNX '{}': {}", path, std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) fail("cannot import ONNX '{}': read error", path);
  return import_onnx_bytes(buffer.str(), path, stats);
}

}  // namespace trit

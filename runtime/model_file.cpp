#include "trit/model_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "trit/error.h"
#include "trit/graph_check.h"
#include "trit_generated.h"

static_assert(std::endian::native == std::endian::little, "trit files are little-endian");

namespace trit {
namespace {

constexpr uint64_t kAlign = 64;

uint64_t align_up(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

// ---- writing -------------------------------------------------------------------------------

struct Writer {
  flatbuffers::FlatBufferBuilder fbb{1 << 16};
  std::vector<std::byte> data;  // the data section

  fb::Blob blob(const Blob& b) {
    if (b.empty()) return fb::Blob(0, 0);
    const uint64_t offset = align_up(data.size());
    data.resize(offset + b.size);
    std::memcpy(data.data() + offset, b.data, b.size);
    return fb::Blob(offset, b.size);
  }

  flatbuffers::Offset<fb::Weights> weights(const Weights& w) {
    const fb::Blob codes = blob(w.codes), scales = blob(w.scales), exps = blob(w.scale_exponents);
    auto shape = fbb.CreateVector(w.shape.data(), w.shape.size());
    fb::WeightsBuilder b(fbb);
    b.add_encoding(static_cast<fb::WeightEncoding>(w.encoding));
    b.add_shape(shape);
    b.add_codes(&codes);
    b.add_cluster_size(w.cluster_size);
    b.add_cluster_shape(static_cast<fb::ClusterShape>(w.cluster_shape));
    b.add_scales(&scales);
    b.add_scale_exponents(&exps);
    return b.Finish();
  }

  flatbuffers::Offset<fb::Node> node(const Node& n) {
    auto name = fbb.CreateString(n.name);
    auto inputs = fbb.CreateVector(n.inputs);
    auto outputs = fbb.CreateVector(n.outputs);
    const Window& w = n.window;
    const auto act = static_cast<fb::Activation>(n.activation);
    fb::OpOptions type = fb::OpOptions::NONE;
    flatbuffers::Offset<void> options;
    switch (n.op) {
      case OpCode::Conv:
        type = fb::OpOptions::ConvOptions;
        options = fb::CreateConvOptions(fbb, w.kernel_h, w.kernel_w, w.stride_h, w.stride_w,
                                        w.pad_top, w.pad_left, w.pad_bottom, w.pad_right, act)
                      .Union();
        break;
      case OpCode::MaxPool:
      case OpCode::AveragePool:
        type = fb::OpOptions::PoolOptions;
        options = fb::CreatePoolOptions(fbb, w.kernel_h, w.kernel_w, w.stride_h, w.stride_w,
                                        w.pad_top, w.pad_left, w.pad_bottom, w.pad_right,
                                        n.count_include_pad)
                      .Union();
        break;
      case OpCode::Add:
        type = fb::OpOptions::AddOptions;
        options = fb::CreateAddOptions(fbb, act).Union();
        break;
      case OpCode::FullyConnected:
        type = fb::OpOptions::FullyConnectedOptions;
        options = fb::CreateFullyConnectedOptions(fbb, act).Union();
        break;
      default: break;
    }
    flatbuffers::Offset<fb::Weights> weights_offset;
    if (has_weights(n)) weights_offset = weights(n.weights);
    const fb::Blob bias = blob(n.bias);
    fb::NodeBuilder b(fbb);
    b.add_name(name);
    b.add_op(static_cast<fb::OpCode>(n.op));
    b.add_inputs(inputs);
    b.add_outputs(outputs);
    if (type != fb::OpOptions::NONE) {
      b.add_options_type(type);
      b.add_options(options);
    }
    if (has_weights(n)) b.add_weights(weights_offset);
    b.add_bias(&bias);
    return b.Finish();
  }

  flatbuffers::Offset<fb::Metadata> metadata(const Metadata& m) {
    std::vector<flatbuffers::Offset<fb::Label>> labels;
    for (const Label& l : m.labels)
      labels.push_back(fb::CreateLabelDirect(fbb, l.wnid.c_str(), l.name.c_str()));
    return fb::CreateMetadataDirect(fbb, static_cast<fb::ChannelOrder>(m.channel_order), &m.mean,
                                    &m.scale, m.resize_shorter, &labels, m.source.c_str(),
                                    m.converter_version.c_str(), m.converter_options.c_str());
  }

  std::vector<std::byte> write(const Graph& g) {
    std::vector<flatbuffers::Offset<fb::Tensor>> tensors;
    for (const Tensor& t : g.tensors)
      tensors.push_back(fb::CreateTensorDirect(fbb, t.name.c_str(), &t.shape,
                                               static_cast<fb::ElementType>(t.type), t.exponent));
    std::vector<flatbuffers::Offset<fb::Node>> nodes;
    for (const Node& n : g.nodes) nodes.push_back(node(n));
    auto meta = metadata(g.metadata);
    auto root = fb::CreateModelDirect(fbb, kFormatVersion, &tensors, &nodes, &g.inputs, &g.outputs, meta);
    fbb.FinishSizePrefixed(root, fb::ModelIdentifier());

    const uint64_t head = fbb.GetSize();  // includes the 4-byte size prefix
    const uint64_t start = align_up(head);
    std::vector<std::byte> out(start + data.size());
    std::memcpy(out.data(), fbb.GetBufferPointer(), head);
    std::memcpy(out.data() + start, data.data(), data.size());
    return out;
  }
};

// ---- reading -------------------------------------------------------------------------------

struct Mapping {
  const std::byte* data = nullptr;
  size_t size = 0;
  std::vector<std::byte> owned;  // used instead of a mapping for in-memory bytes
  ~Mapping() {
    if (owned.empty() && data != nullptr) munmap(const_cast<std::byte*>(data), size);
  }
};

struct Reader {
  std::shared_ptr<const Mapping> file;
  std::string ctx;
  const std::byte* section = nullptr;  // the data section
  uint64_t section_size = 0;

  [[noreturn]] void bad(const std::string& why) const { fail("{}: {}", ctx, why); }

  Blob blob(const fb::Blob* b, const std::string& what) const {
    if (b == nullptr || b->size() == 0) return {};
    const uint64_t off = b->offset(), size = b->size();
    // Overflow-safe: compare against what is left rather than off + size.
    if (off > section_size || size > section_size - off)
      bad(fmt::format("{} data [{}, {}) lies outside the data section (size {})", what, off,
                      off > UINT64_MAX - size ? UINT64_MAX : off + size, section_size));
    if (off % kAlign != 0) bad(fmt::format("{} data offset {} is not a multiple of 64", what, off));
    Blob out;
    out.owner = file;
    out.data = section + off;
    out.size = size;
    return out;
  }

  static std::vector<int32_t> ints(const flatbuffers::Vector<int32_t>* v) {
    return v ? std::vector<int32_t>(v->begin(), v->end()) : std::vector<int32_t>{};
  }
  // Strings end up in messages and printed labels: control characters (a newline would split
  // a one-line error, an escape sequence would drive a terminal) are refused, not echoed.
  std::string str(const flatbuffers::String* s, const std::string& what) const {
    if (s == nullptr) return {};
    for (const char c : s->string_view())
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        bad(fmt::format("{} holds a control character (byte 0x{:02x})", what, static_cast<unsigned char>(c)));
    return s->str();
  }
  static std::vector<float> floats(const flatbuffers::Vector<float>* v) {
    return v ? std::vector<float>(v->begin(), v->end()) : std::vector<float>{};
  }

  template <typename Options>
  static Window window(const Options* o) {
    Window w;
    w.kernel_h = o->kernel_h();
    w.kernel_w = o->kernel_w();
    w.stride_h = o->stride_h();
    w.stride_w = o->stride_w();
    w.pad_top = o->pad_top();
    w.pad_left = o->pad_left();
    w.pad_bottom = o->pad_bottom();
    w.pad_right = o->pad_right();
    return w;
  }

  Node node(const fb::Node* f, size_t index) const {
    Node n;
    n.name = f->name() ? str(f->name(), fmt::format("node {}'s name", index)) : fmt::format("node{}", index);
    n.op = static_cast<OpCode>(f->op());
    n.inputs = ints(f->inputs());
    n.outputs = ints(f->outputs());
    auto missing = [&](const char* what) {
      bad(fmt::format("node '{}' ({}) has no {}", n.name, to_string(n.op), what));
    };
    switch (n.op) {
      case OpCode::Conv: {
        const auto* o = f->options_as_ConvOptions();
        if (!o) missing("ConvOptions");
        n.window = window(o);
        n.activation = static_cast<Activation>(o->activation());
        break;
      }
      case OpCode::MaxPool:
      case OpCode::AveragePool: {
        const auto* o = f->options_as_PoolOptions();
        if (!o) missing("PoolOptions");
        n.window = window(o);
        n.count_include_pad = o->count_include_pad();
        break;
      }
      case OpCode::Add: {
        const auto* o = f->options_as_AddOptions();
        if (!o) missing("AddOptions");
        n.activation = static_cast<Activation>(o->activation());
        break;
      }
      case OpCode::FullyConnected: {
        const auto* o = f->options_as_FullyConnectedOptions();
        if (!o) missing("FullyConnectedOptions");
        n.activation = static_cast<Activation>(o->activation());
        break;
      }
      default: break;  // unknown op codes are named by check_graph
    }
    if (const fb::Weights* w = f->weights()) {
      const auto shape = ints(w->shape());
      if (shape.size() != 4) bad(fmt::format("node '{}': weights shape must have 4 dimensions", n.name));
      std::copy(shape.begin(), shape.end(), n.weights.shape.begin());
      n.weights.encoding = static_cast<WeightEncoding>(w->encoding());
      n.weights.cluster_size = w->cluster_size();
      n.weights.cluster_shape = static_cast<ClusterShape>(w->cluster_shape());
      n.weights.codes = blob(w->codes(), fmt::format("node '{}' weights", n.name));
      n.weights.scales = blob(w->scales(), fmt::format("node '{}' scales", n.name));
      n.weights.scale_exponents = blob(w->scale_exponents(), fmt::format("node '{}' scale exponents", n.name));
    } else if (has_weights(n)) {
      missing("weights");
    }
    n.bias = blob(f->bias(), fmt::format("node '{}' bias", n.name));
    return n;
  }

  Graph read() {
    const std::byte* bytes = file->data;
    const uint64_t size = file->size;
    if (size < 8) bad(fmt::format("the file has {} bytes, too few for a trit model", size));
    uint32_t fb_size;
    std::memcpy(&fb_size, bytes, 4);
    if (fb_size > size - 4)
      bad(fmt::format("the header says {} bytes of model description, the file has {}", fb_size, size - 4));
    if (uint64_t{fb_size} + 4 >= FLATBUFFERS_MAX_BUFFER_SIZE)
      bad(fmt::format("the model description of {} bytes exceeds the FlatBuffers limit of 2 GB", fb_size));
    if (!flatbuffers::BufferHasIdentifier(bytes, fb::ModelIdentifier(), /*size_prefixed=*/true))
      bad("not a trit model (identifier 'TRIT' missing)");
    flatbuffers::Verifier::Options opts;
    opts.max_depth = 32;
    opts.max_tables = 10'000'000;
    flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t*>(bytes), 4 + fb_size, opts);
    if (!fb::VerifySizePrefixedModelBuffer(verifier))
      bad("the model description is corrupt (FlatBuffers verification failed)");
    const fb::Model* m = fb::GetSizePrefixedModel(bytes);
    if (m->version() > kFormatVersion || m->version() == 0)
      bad(fmt::format("format version {} is not supported (this build reads 1 to {})", m->version(),
                      kFormatVersion));
    const uint64_t start = align_up(uint64_t{4} + fb_size);
    section = bytes + std::min<uint64_t>(start, size);
    section_size = start <= size ? size - start : 0;

    Graph g;
    if (m->tensors())
      for (const fb::Tensor* t : *m->tensors()) {
        Tensor x;
        x.name = str(t->name(), fmt::format("tensor {}'s name", g.tensors.size()));
        x.shape = ints(t->shape());
        x.type = static_cast<ElementType>(t->type());
        x.exponent = t->exponent();
        g.tensors.push_back(std::move(x));
      }
    if (m->nodes())
      for (size_t i = 0; i < m->nodes()->size(); ++i) g.nodes.push_back(node(m->nodes()->Get(i), i));
    g.inputs = ints(m->inputs());
    g.outputs = ints(m->outputs());
    if (const fb::Metadata* md = m->metadata()) {
      g.metadata.channel_order = static_cast<ChannelOrder>(md->channel_order());
      g.metadata.mean = floats(md->mean());
      g.metadata.scale = floats(md->scale());
      g.metadata.resize_shorter = md->resize_shorter();
      if (md->labels())
        for (const fb::Label* l : *md->labels())
          g.metadata.labels.push_back({str(l->wnid(), fmt::format("label {}", g.metadata.labels.size())),
                                       str(l->name(), fmt::format("label {}", g.metadata.labels.size()))});
      g.metadata.source = str(md->source(), "the source");
      g.metadata.converter_version = str(md->converter_version(), "the converter version");
      g.metadata.converter_options = str(md->converter_options(), "the converter options");
    } else {
      bad("the model has no metadata");
    }
    check_graph(g, ctx);
    if (file->owned.empty() && file->data != nullptr) {
      g.file.owner = file;
      g.file.data = file->data;
      g.file.size = file->size;
    }
    return g;
  }
};

}  // namespace

std::vector<std::byte> serialize_model(const Graph& graph) {
  check_graph(graph, "cannot write model");
  return Writer{}.write(graph);
}

void save_model(const Graph& graph, const std::string& path, bool overwrite) {
  const std::vector<std::byte> bytes = serialize_model(graph);
  std::error_code ec;
  if (!overwrite && std::filesystem::exists(path, ec))
    fail("cannot write model '{}': the file exists (pass --force to replace it)", path);
  // Write beside it, then rename: a failed write never leaves a half model under the name.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("cannot write model '{}': {}", path, std::strerror(errno));
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      const int e = errno;
      std::filesystem::remove(tmp, ec);
      fail("cannot write model '{}': {}", path, std::strerror(e));
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    const std::string why = ec.message();
    std::filesystem::remove(tmp, ec);
    fail("cannot write model '{}': {}", path, why);
  }
}

Graph load_model(const std::string& path) {
  const std::string ctx = fmt::format("cannot load model '{}'", path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: {}", ctx, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    fail("{}: {}", ctx, std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", ctx);
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > kMaxModelBytes) {
    ::close(fd);
    fail("{}: the file has {} bytes, more than the limit of {}", ctx, size, kMaxModelBytes);
  }
  auto mapping = std::make_shared<Mapping>();
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      fail("{}: cannot map the file: {}", ctx, std::strerror(e));
    }
    mapping->data = static_cast<const std::byte*>(p);
    mapping->size = size;
  }
  ::close(fd);
  return Reader{mapping, ctx}.read();
}

Graph load_model_bytes(std::vector<std::byte> bytes, const std::string& name) {
  auto mapping = std::make_shared<Mapping>();
  // Copy into storage aligned like a mapping, so Blobs are 64-byte aligned as in a file.
  mapping->owned.resize(bytes.size() + kAlign);
  auto* base = mapping->owned.data();
  const auto shift = (kAlign - reinterpret_cast<uintptr_t>(base) % kAlign) % kAlign;
  if (!bytes.empty()) std::memcpy(base + shift, bytes.data(), bytes.size());
  mapping->data = base + shift;
  mapping->size = bytes.size();
  return Reader{mapping, fmt::format("cannot load model '{}'", name)}.read();
}

namespace {

// [begin, begin + size) of the mapped file, widened to whole pages (the mapping starts on one).
void release_range(const Graph& graph, uintptr_t begin, size_t size) {
  const auto file = reinterpret_cast<uintptr_t>(graph.file.data);
  if (graph.file.empty() || size == 0 || begin < file || begin + size > file + graph.file.size) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t first = begin / page * page, end = (begin + size + page - 1) / page * page;
  // A read-only private mapping never written: dropped pages are read again from the file.
  ::madvise(reinterpret_cast<void*>(first), end - first, MADV_DONTNEED);
}

}  // namespace

void release_file_pages(const Graph& graph) {
  release_range(graph, reinterpret_cast<uintptr_t>(graph.file.data), graph.file.size);
}

void release_file_pages(const Graph& graph, const Blob& blob) {
  release_range(graph, reinterpret_cast<uintptr_t>(blob.data), blob.size);
}

}  // namespace trit

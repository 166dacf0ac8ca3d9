#include "reconstruct.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <memory>
#include <numeric>
#include <random>

#include "blas.h"
#include "adam.h"
#include "block_net.h"
#include "emit.h"
#include "ops.h"
#include "soft_rounding.h"
#include "trit/error.h"

namespace trit::recon {
namespace {

// A batch of the sample: the block's input (quantized, or mixed with the float one by QDrop's
// bits: keep, Random or None) and the float target.
struct Batch {
  std::vector<float> x, target;
};

Batch load_batch(const Graph& g, const Segment& seg, const BlockData& data, const std::vector<int64_t>& images,
                 const BlockNet::Keep& keep) {
  const Tensor& in = g.tensors[seg.input];
  const int64_t in_n = in.elements(), out_n = g.tensors[seg.output].elements();
  const auto count = static_cast<int64_t>(images.size());
  Batch b;
  b.x.resize(static_cast<size_t>(in_n * count));
  b.target.resize(static_cast<size_t>(out_n * count));
  std::vector<int32_t> q(static_cast<size_t>(in_n));
  std::vector<float> f(static_cast<size_t>(in_n));
  const bool mixed = keep.mode == BlockNet::Keep::Random;
  std::vector<uint64_t> bits;
  if (mixed) {
    bits.resize(static_cast<size_t>((in_n * count + 63) / 64));
    random_bits(keep.seed, in_n * count, keep.p, bits.data());
  }
  const float unit = std::ldexp(1.0f, -in.exponent);
  for (int64_t i = 0; i < count; ++i) {
    data.quantized_input(images[i], q.data());
    if (mixed) data.float_input(images[i], f.data());
    for (int64_t j = 0; j < in_n; ++j) {
      const int64_t e = i * in_n + j;
      b.x[e] = mixed && (bits[e >> 6] >> (e & 63) & 1) ? f[j] : static_cast<float>(q[j]) * unit;
    }
    data.float_output(images[i], b.target.data() + i * out_n);
  }
  return b;
}

// Relative error of the hard block over images (every activation quantized).
double evaluate(BlockNet& net, const Graph& g, const Segment& seg, const BlockData& data, const std::vector<int64_t>& images,
                int32_t batch) {
  double err = 0, sig = 0;
  for (size_t i = 0; i < images.size(); i += static_cast<size_t>(batch)) {
    const std::vector<int64_t> part(images.begin() + static_cast<std::ptrdiff_t>(i),
                                    images.begin() + static_cast<std::ptrdiff_t>(std::min(images.size(), i + batch)));
    const Batch b = load_batch(g, seg, data, part, {});
    const std::vector<float>& out = net.forward(b.x, static_cast<int32_t>(part.size()), true, {});
    for (size_t j = 0; j < out.size(); ++j) {
      err += (double(out[j]) - b.target[j]) * (double(out[j]) - b.target[j]);
      sig += double(b.target[j]) * b.target[j];
    }
  }
  return sig > 0 ? err / sig : 0.0;
}

// The variables of every layer, to come back to.
struct Snapshot {
  std::map<size_t, std::vector<float>> v, s, b;
};
Snapshot snapshot(BlockNet& net) {
  Snapshot s;
  for (auto& [ni, l] : net.layers()) {
    s.v[ni] = l->v();
    s.s[ni] = l->log_scale();
    s.b[ni] = l->bias();
  }
  return s;
}
void restore(BlockNet& net, const Snapshot& s) {
  for (auto& [ni, l] : net.layers()) {
    l->v() = s.v.at(ni);
    l->log_scale() = s.s.at(ni);
    l->bias() = s.b.at(ni);
  }
}

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t x = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return (x ^ (x >> 31)) | 1;  // odd: the seeds every model so far was converted with
}

}  // namespace

std::string cannot_reconstruct(const Graph& g, const Segment& seg) {
  bool low_bit = false;
  for (size_t ni = seg.begin; ni < seg.end; ++ni) {
    const Node& n = g.nodes[ni];
    if (n.op != OpCode::Conv && n.op != OpCode::FullyConnected && n.op != OpCode::Add && n.op != OpCode::Relu)
      return fmt::format("it holds a {} ('{}')", to_string(n.op), n.name);
    if (g.tensors[n.outputs[0]].type == ElementType::Int32) return "it writes the int32 logits";
    low_bit = low_bit || (has_weights(n) && (n.weights.encoding == WeightEncoding::TernaryClustered ||
                                             n.weights.encoding == WeightEncoding::Int4Clustered));
  }
  return low_bit ? "" : "it holds no ternary or int4 layer";
}

SampleSplit split_sample(const BlockData& data, int32_t held_out_every) {
  SampleSplit split;
  for (int64_t j = 0, rank = -1, last = -1; j < data.images(); ++j) {  // rank: the photo's among the sample's
    if (data.photo(j) != last) ++rank, last = data.photo(j);
    (rank % held_out_every == held_out_every - 1 ? split.held : split.train).push_back(j);
  }
  return split;
}

BlockResult reconstruct_block(Graph& g, const Segment& seg, const std::map<size_t, std::vector<float>>& given,
                              const BlockData& data, const ReconstructOptions& opt, uint64_t block_seed,
                              const BlockProgress& progress) {
  const auto start = std::chrono::steady_clock::now();
  const blas::SingleThreadedBlas single_threaded_blas;  // for the block
  BlockResult res;
  res.name = g.nodes[seg.end - 1].name;
  BlockNet net(g, seg, given);
  res.layers = static_cast<int32_t>(net.layers().size());
  const auto [train, held] = split_sample(data, opt.held_out_every);
  if (static_cast<int64_t>(train.size()) < opt.batch)
    fail("cannot reconstruct: {} training images, fewer than a batch of {}", train.size(), opt.batch);
  // The training error printed at the start and end: on 2 x held + 8 training images spread
  // evenly over them (the first ones would be the views of the first few photos).
  const size_t n_eval = std::min<size_t>(train.size(), held.size() * 2 + 8);
  std::vector<int64_t> train_eval(n_eval);
  for (size_t k = 0; k < n_eval; ++k) train_eval[k] = train[k * train.size() / n_eval];
  res.train_start = evaluate(net, g, seg, data, train_eval, opt.batch);
  res.held_start = held.empty() ? 0.0 : evaluate(net, g, seg, data, held, opt.batch);
  res.curve.push_back({0, res.held_start});
  if (progress) progress(res, 0, res.train_start, res.held_start);
  double best_held = res.held_start;
  Snapshot best = snapshot(net);

  // Adam per variable group.
  struct Opt {
    Adam v, s, b;
  };
  std::map<size_t, Opt> adam;
  for (auto& [ni, l] : net.layers())
    adam.emplace(ni, Opt{Adam(l->v().size(), opt.lr_rounding), Adam(l->log_scale().size(), opt.lr_scale),
                         Adam(l->bias().size(), opt.lr_bias)});
  std::mt19937_64 rng(mix(opt.seed, block_seed));
  std::vector<int64_t> order = train;
  size_t cursor = order.size();
  const int32_t warm = static_cast<int32_t>(opt.warmup * opt.iterations);
  const Shape3 out_shape = shape3(g.tensors[seg.output]);
  const double pixels = double(out_shape.h) * out_shape.w;
  for (int32_t it = 1; it <= opt.iterations; ++it) {
    std::vector<int64_t> batch;
    for (int32_t i = 0; i < opt.batch; ++i) {
      if (cursor == order.size()) {
        std::shuffle(order.begin(), order.end(), rng);
        cursor = 0;
      }
      batch.push_back(order[cursor++]);
    }
    BlockNet::Keep keep;
    if (opt.drop > 0) keep = {BlockNet::Keep::Random, mix(mix(opt.seed, block_seed), static_cast<uint64_t>(it)), opt.drop};
    const Batch b = load_batch(g, seg, data, batch, keep);
    const std::vector<float>& out = net.forward(b.x, opt.batch, false, keep);
    // d/d(out) of the mean over images and pixels of the sum over channels of squared errors.
    std::vector<float> dout(out.size());
    const double scale = 2.0 / (double(opt.batch) * pixels);
    for (size_t j = 0; j < out.size(); ++j) dout[j] = static_cast<float>(scale * (double(out[j]) - b.target[j]));
    net.backward(dout);
    const double beta = it <= warm ? 0.0 : 20.0 - 18.0 * double(it - warm) / double(std::max(1, opt.iterations - warm));
    for (auto& [ni, l] : net.layers()) {
      BlockNet::Grads& gr = net.grads(ni);
      std::vector<float> dv(l->v().size()), ds(l->log_scale().size());
      l->backward(gr.dw.data(), dv.data(), ds.data());
      if (it > warm) l->regularizer(beta, opt.lambda, dv.data());
      Opt& a = adam.at(ni);
      a.v.step(l->v(), dv);
      a.s.step(l->log_scale(), ds);
      a.b.step(l->bias(), gr.db);
    }
    if (it % 100 == 0 || it == opt.iterations) {
      const double h = held.empty() ? 0.0 : evaluate(net, g, seg, data, held, opt.batch);
      res.curve.push_back({it, h});
      if (!held.empty() && h < best_held) {
        best_held = h;
        best = snapshot(net);
        res.best_iteration = it;
      }
      if (it < opt.iterations && progress) progress(res, it, NAN, h);
    }
  }
  res.train_last = evaluate(net, g, seg, data, train_eval, opt.batch);
  res.held_last = held.empty() ? res.train_last : res.curve.back().second;
  // The variables at the checkpoint where the held-back error was lowest (the layer-wise start
  // when none improved on it).
  const bool last_kept = held.empty() || res.best_iteration == opt.iterations;
  if (!last_kept) restore(net, best);
  res.train_end = last_kept ? res.train_last : evaluate(net, g, seg, data, train_eval, opt.batch);
  res.held_end = last_kept ? res.held_last : evaluate(net, g, seg, data, held, opt.batch);
  double flipped = 0;
  int64_t weights = 0;
  for (auto& [ni, l] : net.layers()) {
    flipped += l->flipped() * double(l->v().size());
    weights += static_cast<int64_t>(l->v().size());
  }
  res.flipped = weights > 0 ? flipped / double(weights) : 0.0;
  res.kept = res.best_iteration > 0 || held.empty();
  if (res.kept)
    for (auto& [ni, l] : net.layers()) {
      Node& n = g.nodes[ni];
      const quant::QuantizedLayer q = l->result();
      LayerEmission e{n.weights.encoding, n.weights.cluster_size, n.weights.cluster_shape, &q, {}, nullptr};
      for (float bias : l->bias()) e.bias.push_back(bias);
      emit_layer(g, n, e);
    }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (progress) progress(res, opt.iterations, res.train_end, res.held_end);
  return res;
}

}  // namespace trit::recon

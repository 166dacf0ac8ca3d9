#include "synthesize.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <optional>
#include <random>

#include "blas.h"
#include "input_gradient.h"
#include "reconstruct/adam.h"
#include "reconstruct/ops.h"
#include "trit/error.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>

namespace trit::synth {
namespace {

constexpr float kMid = 127.5f, kUnit = 64.0f;  // pixel = kMid + kUnit * v
constexpr float kVMax = kMid / kUnit;           // v in [-kVMax, kVMax]: pixels in [0, 255]

// The canvas whose centre crop fit_to_input leaves unresized (synthesize.h).
std::pair<int32_t, int32_t> canvas_size(const Metadata& m, int32_t h, int32_t w) {
  if (m.resize_shorter > 0 && m.resize_shorter >= std::max(h, w)) return {m.resize_shorter, m.resize_shorter};
  return {h, w};
}

// The batch-norm term of L for the current forward, and its gradient written into the seeds.
double batch_norm_loss(InputGradient& net, const Graph& g, const std::vector<BatchNormStatistics>& bns) {
  const int32_t batch = net.batch();
  double total = 0;
  const double per_norm = 1.0 / static_cast<double>(bns.size());
  for (const BatchNormStatistics& bn : bns) {
    const Shape3 s = shape3(g.tensors[g.nodes[bn.node].outputs[0]]);
    const int64_t plane = int64_t{s.h} * s.w, image = s.size();
    const double n = static_cast<double>(plane) * batch;
    std::span<const float> z = net.before_activation(bn.node);
    std::vector<double> mean(s.c), sd(s.c);
    tbb::parallel_for(0, s.c, [&](int32_t c) {
      double sum = 0, sq = 0;
      for (int32_t b = 0; b < batch; ++b) {
        // 16 float lanes a plane (vectorized), then double.
        const float* p = z.data() + b * image + c * plane;
        float s16[16] = {}, q16[16] = {};
        int64_t j = 0;
        for (; j + 16 <= plane; j += 16)
          for (int l = 0; l < 16; ++l) s16[l] += p[j + l], q16[l] += p[j + l] * p[j + l];
        for (; j < plane; ++j) sum += p[j], sq += double{p[j]} * p[j];
        for (int l = 0; l < 16; ++l) sum += s16[l], sq += q16[l];
      }
      mean[c] = sum / n;
      sd[c] = std::sqrt(std::max(sq / n - mean[c] * mean[c], 0.0) + 1e-8);
    });
    double dm2 = 0, ds2 = 0;
    for (int32_t c = 0; c < s.c; ++c) {
      dm2 += (mean[c] - bn.mean[c]) * (mean[c] - bn.mean[c]);
      ds2 += (sd[c] - bn.stddev[c]) * (sd[c] - bn.stddev[c]);
    }
    const double dm = std::sqrt(dm2), ds = std::sqrt(ds2);
    total += per_norm * (dm + ds);
    // d||mean - mu|| / dz = (mean_c - mu_c) / dm / n; d||sd - sigma|| / dz = (sd_c - sigma_c) / ds (z - mean_c) / (sd_c n).
    std::span<float> seed = net.before_activation_seed(bn.node);
    tbb::parallel_for(0, s.c, [&](int32_t c) {
      const double gm = dm > 0 ? (mean[c] - bn.mean[c]) / dm : 0.0;
      const double gs = ds > 0 ? (sd[c] - bn.stddev[c]) / ds / sd[c] : 0.0;
      const auto a = static_cast<float>(per_norm * (gm - gs * mean[c]) / n), k = static_cast<float>(per_norm * gs / n);
      for (int32_t b = 0; b < batch; ++b) {
        const float* p = z.data() + b * image + c * plane;
        float* d = seed.data() + b * image + c * plane;
        for (int64_t j = 0; j < plane; ++j) d[j] += a + k * p[j];
      }
    });
  }
  return total;
}

// Cross-entropy of the logits against each image's target, averaged over the batch; its
// gradient times weight is added to the output's seed.
double class_loss(InputGradient& net, const std::vector<int32_t>& targets, double weight) {
  const int32_t batch = net.batch();
  std::span<const float> logits = net.output();
  std::span<float> seed = net.output_seed();
  const size_t k = logits.size() / static_cast<size_t>(batch);
  double total = 0;
  for (int32_t b = 0; b < batch; ++b) {
    const float* l = logits.data() + b * k;
    const double top = *std::max_element(l, l + k);
    double sum = 0;
    for (size_t j = 0; j < k; ++j) sum += std::exp(l[j] - top);
    total += -(l[targets[b]] - top - std::log(sum)) / batch;
    for (size_t j = 0; j < k; ++j)
      seed[b * k + j] += static_cast<float>(weight * (std::exp(l[j] - top) / sum - (int32_t(j) == targets[b])) / batch);
  }
  return total;
}

// The smoothness prior: weight times the mean over pixels of the squared differences between
// neighbours (right and below) of each plane of v [planes][h][w], its gradient added to dv.
double smoothness_loss(const std::vector<float>& v, int32_t planes, int32_t h, int32_t w, double weight,
                       std::vector<float>& dv) {
  const auto k = static_cast<float>(2 * weight / (double(planes) * h * w));
  std::vector<double> sums(planes);
  tbb::parallel_for(0, planes, [&](int32_t p) {
    const float* x = v.data() + int64_t{p} * h * w;
    float* d = dv.data() + int64_t{p} * h * w;
    double sum = 0;
    for (int32_t y = 0; y < h; ++y)
      for (int32_t i = 0; i < w; ++i) {
        const int64_t at = int64_t{y} * w + i;
        if (i + 1 < w) {
          const float e = x[at + 1] - x[at];
          sum += e * e;
          d[at + 1] += k * e;
          d[at] -= k * e;
        }
        if (y + 1 < h) {
          const float e = x[at + w] - x[at];
          sum += e * e;
          d[at + w] += k * e;
          d[at] -= k * e;
        }
      }
    sums[p] = sum;
  });
  return weight * std::accumulate(sums.begin(), sums.end(), 0.0) / (double(planes) * h * w);
}

// g with its input h x w and every tensor's shape to match; nullopt when some layer cannot take
// it (a fully connected layer that would read another length, a window that no longer fits).
std::optional<Graph> at_resolution(const Graph& g, int32_t h, int32_t w) {
  Graph r = g;
  std::vector<int32_t>& in = r.tensors[r.inputs[0]].shape;
  in = {in[0], h, w};
  for (const Node& n : r.nodes) {
    const std::vector<int32_t>& x = r.tensors[n.inputs[0]].shape;
    std::vector<int32_t>& y = r.tensors[n.outputs[0]].shape;
    const auto elements = std::accumulate(x.begin(), x.end(), int64_t{1}, std::multiplies<>());
    switch (n.op) {
      case OpCode::Conv:
      case OpCode::MaxPool:
      case OpCode::AveragePool:
        if (x.size() != 3 || n.window.out_h(x[1]) < 1 || n.window.out_w(x[2]) < 1) return std::nullopt;
        y = {n.op == OpCode::Conv ? n.weights.shape[0] : x[0], n.window.out_h(x[1]), n.window.out_w(x[2])};
        break;
      case OpCode::GlobalAveragePool:
        y = {x[0], 1, 1};
        break;
      case OpCode::Flatten:
        y = {static_cast<int32_t>(elements)};
        break;
      case OpCode::FullyConnected:
        if (elements != n.weights.shape[1]) return std::nullopt;
        break;
      case OpCode::Add:
        if (x != r.tensors[n.inputs[1]].shape) return std::nullopt;
        y = x;
        break;
      case OpCode::Relu:
        y = x;
        break;
    }
  }
  return r;
}

}  // namespace

std::vector<Image> synthesize(const Graph& g, const std::vector<BatchNormStatistics>& bns, const SynthesisOptions& o,
                              SynthesisReport* report, const SynthesisProgress& progress) {
  if (bns.empty())
    fail("cannot make synthetic calibration images: the model has no batch normalization to take statistics from "
         "(calibrate on photos with --calib DIR)");
  if (o.count < 1 || o.batch < 1 || o.iterations < 1 || !(o.coarse_share >= 0 && o.coarse_share < 1))
    fail("synthetic calibration needs at least one image, a batch of one and one iteration (got {}, {}, {})", o.count,
         o.batch, o.iterations);
  const auto start = std::chrono::steady_clock::now();
  const Shape3 in = shape3(g.input());
  const Metadata& m = g.metadata;
  if ((in.c != 3 && in.c != 1) || m.mean.size() != size_t(in.c) || m.scale.size() != size_t(in.c))
    fail("synthetic calibration needs a model of 1 or 3 input channels with their preprocessing");
  const auto [sh, sw] = canvas_size(m, in.h, in.w);
  const int64_t canvas = int64_t{in.c} * sh * sw;
  const blas::SingleThreadedBlas single_threaded_blas;
  InputGradient fine(g);
  // The coarse phase: the network on each 2 x 2 average of the view (DeepInversion's
  // multi-resolution start), where the graph takes half the input's size.
  std::optional<Graph> half;
  const auto coarse_steps = static_cast<int32_t>(o.iterations * o.coarse_share);
  if (coarse_steps > 0 && in.h % 2 == 0 && in.w % 2 == 0) half = at_resolution(g, in.h / 2, in.w / 2);
  std::optional<InputGradient> coarse;
  if (half) coarse.emplace(*half);
  const int32_t coarse_its = coarse ? coarse_steps : 0, total_its = o.iterations;
  const auto classes = static_cast<int32_t>(g.output().elements());

  std::mt19937_64 rng(o.seed);
  std::vector<int32_t> order(classes);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);

  std::vector<Image> images;
  const int32_t groups = (o.count + o.batch - 1) / o.batch;
  double start_sum = 0, end_sum = 0;
  for (int32_t group = 0; group < groups; ++group) {
    const int32_t first = group * o.batch, batch = std::min(o.batch, o.count - first);
    std::vector<float> v(static_cast<size_t>(canvas * batch)), dv(v.size());
    std::normal_distribution<float> noise(0.0f, 1.0f);
    for (float& x : v) x = std::clamp(noise(rng), -kVMax, kVMax);
    std::vector<int32_t> targets(batch);
    for (int32_t b = 0; b < batch; ++b) targets[b] = order[(first + b) % classes];
    recon::Adam adam(v.size(), o.lr);
    std::vector<float> x, dx;
    const int32_t jy = std::max((sh - in.h) / 2, in.h / 16), jx = std::max((sw - in.w) / 2, in.w / 16);
    double loss = 0;
    for (int32_t it = 0; it < total_its; ++it) {
      const int32_t f = it < coarse_its ? 2 : 1;  // input pixels per network pixel, each way
      InputGradient& net = f == 2 ? *coarse : fine;
      const int32_t h = in.h / f, w = in.w / f;
      const int32_t oy = (sh - in.h) / 2 + std::uniform_int_distribution<int32_t>(-jy, jy)(rng);
      const int32_t ox = (sw - in.w) / 2 + std::uniform_int_distribution<int32_t>(-jx, jx)(rng);
      const bool flip = std::uniform_int_distribution<int32_t>(0, 1)(rng);
      // Pixel (y, x) of the view of image b, channel c, is canvas element at(b, c, y, x).
      auto at = [&](int32_t b, int32_t c, int32_t y, int32_t xx) {
        const int32_t cy = ((oy + y) % sh + sh) % sh, cx = ((ox + (flip ? in.w - 1 - xx : xx)) % sw + sw) % sw;
        return ((int64_t{b} * in.c + c) * sh + cy) * sw + cx;
      };
      x.resize(static_cast<size_t>(int64_t{in.c} * h * w * batch));
      dx.resize(x.size());
      const float share = 1.0f / static_cast<float>(f * f);
      tbb::parallel_for(0, batch, [&](int32_t b) {
        for (int32_t c = 0; c < in.c; ++c)
          for (int32_t y = 0; y < h; ++y)
            for (int32_t xx = 0; xx < w; ++xx) {
              float sum = 0;
              for (int32_t dy = 0; dy < f; ++dy)
                for (int32_t dxx = 0; dxx < f; ++dxx) sum += v[at(b, c, y * f + dy, xx * f + dxx)];
              x[((int64_t{b} * in.c + c) * h + y) * w + xx] = (kMid + kUnit * sum * share - m.mean[c]) / m.scale[c];
            }
      });
      net.forward(x, batch);
      loss = batch_norm_loss(net, f == 2 ? *half : g, bns);
      if (o.class_weight > 0) class_loss(net, targets, o.class_weight);
      if (it == coarse_its) start_sum += loss;  // the first step at full resolution
      if (progress) progress(group, groups, it, total_its, loss);
      net.backward(dx);
      std::fill(dv.begin(), dv.end(), 0.0f);
      tbb::parallel_for(0, batch, [&](int32_t b) {
        for (int32_t c = 0; c < in.c; ++c) {
          const float k = kUnit * share / m.scale[c];
          for (int32_t y = 0; y < h; ++y)
            for (int32_t xx = 0; xx < w; ++xx) {
              const float d = dx[((int64_t{b} * in.c + c) * h + y) * w + xx] * k;
              for (int32_t dy = 0; dy < f; ++dy)
                for (int32_t dxx = 0; dxx < f; ++dxx) dv[at(b, c, y * f + dy, xx * f + dxx)] += d;
            }
        }
      });
      if (o.smoothness > 0) smoothness_loss(v, batch * in.c, sh, sw, o.smoothness, dv);
      adam.step(v, dv);
      for (float& e : v) e = std::clamp(e, -kVMax, kVMax);
    }
    end_sum += loss;
    for (int32_t b = 0; b < batch; ++b) {
      Image im;
      im.width = sw;
      im.height = sh;
      im.pixels.resize(static_cast<size_t>(sw) * sh * 3);
      for (int32_t c = 0; c < 3; ++c) {
        // RGB channel c holds model channel c (c's mirror for BGR; the only one for gray).
        const int32_t mc = in.c == 1 ? 0 : m.channel_order == ChannelOrder::BGR ? 2 - c : c;
        const float* plane = v.data() + (int64_t{b} * in.c + mc) * sh * sw;
        for (int64_t j = 0; j < int64_t{sh} * sw; ++j)
          im.pixels[j * 3 + c] = static_cast<uint8_t>(std::clamp(std::lround(kMid + kUnit * plane[j]), 0L, 255L));
      }
      images.push_back(std::move(im));
    }
  }
  if (report) {
    report->start_loss = start_sum / groups;
    report->end_loss = end_sum / groups;
    report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return images;
}

std::string image_path(const std::string& dir, size_t i) {
  return (std::filesystem::path(dir) / fmt::format("synthetic-{:04}.png", i)).string();
}

void check_can_save(const std::string& dir, size_t count, bool force) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec))
    fail("cannot write synthetic images to '{}': not a folder", dir);
  if (force) return;
  for (size_t i = 0; i < count; ++i)
    if (std::filesystem::exists(image_path(dir, i), ec))
      fail("cannot write '{}': the file exists (pass --force to replace it)", image_path(dir, i));
}

void save_images(const std::vector<Image>& images, const std::string& dir, bool force) {
  check_can_save(dir, images.size(), force);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("cannot write synthetic images to '{}': {}", dir, ec.message());
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string path = image_path(dir, i);
    std::vector<uint8_t> bytes;
    const Image& im = images[i];
    const int ok = stbi_write_png_to_func(
        [](void* context, void* data, int size) {
          auto* out = static_cast<std::vector<uint8_t>*>(context);
          out->insert(out->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
        },
        &bytes, im.width, im.height, 3, im.pixels.data(), im.width * 3);
    if (!ok) fail("cannot write '{}': PNG encoding failed", path);
    // Beside it, then renamed: an interrupted run leaves no half-written image under the name.
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
      if (!out) {
        std::filesystem::remove(tmp, ec);
        fail("cannot write '{}': {}", path, std::strerror(errno));
      }
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) fail("cannot write '{}': {}", path, ec.message());
  }
}

}  // namespace trit::synth

#include "options.h"

#include <algorithm>

#include "metadata_options.h"
#include "trit/error.h"

namespace trit {
namespace {

int parse_int(const std::string& s, const char* what) {
  size_t used = 0;
  int v = 0;
  try {
    v = std::stoi(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size() || s.empty()) fail("{} '{}' is not a number", what, s);
  return v;
}

}  // namespace

void add_convert_options(CLI::App& app, ConvertArgs& a) {
  app.add_option("input", a.input, "ONNX model")->required();
  app.add_option("-o,--output", a.output, "trit model to write")->required();
  app.add_option("--preset", a.preset, "preprocessing preset: keras-resnet50, torchvision or raw");
  app.add_option("--mean", a.mean, "per-channel mean in pixel units, model channel order")->delimiter(',');
  app.add_option("--scale", a.scale, "per-channel divisor, model channel order")->delimiter(',');
  app.add_flag("--bgr", a.bgr, "the model takes BGR channel order");
  app.add_option("--resize", a.resize, "resize the shorter side to this before the centre crop (0: straight to the input)");
  app.add_option("--labels", a.labels, "class labels, one a line: 'wnid name' or 'name'");
  app.add_flag("-f,--force", a.force, "replace the output file if it exists");
  // Quantization (converter/quantize.h).
  app.add_option("--weights", a.weights, "float, int8, int4 or ternary")
      ->check(CLI::IsMember({"float", "int8", "int4", "ternary"}));
  app.add_option("--cluster", a.cluster, "cluster size N: 1, 2, 4, ..., 64, or full");
  app.add_option("--cluster-shape", a.cluster_shape, "kernels (N input channels x all taps) or channels (N input channels at one tap)")
      ->check(CLI::IsMember({"kernels", "channels"}));
  app.add_option("--method", a.method, "rtn (the paper's round to nearest) or gptq (error compensation; the default with --calib)")
      ->check(CLI::IsMember({"rtn", "gptq"}));
  app.add_option("--threshold", a.threshold, "ternary threshold: twn (0.7 mean |w|) or exact (least squares)")
      ->check(CLI::IsMember({"twn", "exact"}));
  app.add_flag("--bias-correction,!--no-bias-correction", a.bias_correction,
               "per-channel bias correction on the calibration images (default on)");
  app.add_option("--keep-8bit", a.keep, "layers kept at int8: first,last (default), first, last or none");
  app.add_option("--layer", a.layers, "NAME=int8|int4|ternary|float: one layer's encoding (repeatable)");
  auto* calib = app.add_option("--calib", a.calib,
                                "folder of calibration images (taken in name order), or 'synthetic': images made from the "
                                "model's batch-norm statistics, no photo needed");
  app.add_option("--calib-list", a.calib_list, "file naming the calibration images, one path a line")->excludes(calib);
  app.add_option("--calib-shard", a.calib_shard,
                 "K/N: every N-th calibration image from the K-th (two folds: 1/2 and 2/2, as eval_imagenet.py --shard)");
  app.add_option("--calib-count", a.calib_count, "calibration images: the first N after --calib-shard (default 50; 0: all)")
      ->check(CLI::Range(0, 100000000));
  app.add_option("--augment", a.augment, "K views of each calibration image: itself and K - 1 random resized crops and flips")
      ->check(CLI::Range(1, 1000));
  app.add_option("--seed", a.seed, "seed of the augmented views, synthetic images and reconstruction");
  app.add_option("--synthetic-iters", a.synthetic_iters, "--calib synthetic: optimization steps per group of images, the first three quarters at half resolution (default 200)")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--synthetic-batch", a.synthetic_batch, "--calib synthetic: images optimized together (default 16)")
      ->check(CLI::Range(1, 4096));
  app.add_option("--synthetic-save", a.synthetic_save,
                 "--calib synthetic: also write the images as PNG files into this folder (reuse them with --calib DIR)");
  app.add_flag("--reconstruct", a.reconstruct,
               "after the layer-wise pass, optimize each residual block's rounding, scales and biases (slow)");
  const recon::ReconstructOptions r;
  app.add_option("--reconstruct-iters", a.reconstruction.iterations, fmt::format("iterations per block (default {})", r.iterations));
  app.add_option("--reconstruct-batch", a.reconstruction.batch, fmt::format("images per iteration (default {})", r.batch));
  app.add_option("--reconstruct-images", a.reconstruction.images,
                 fmt::format("calibration images reconstruction uses, spread over them, every {}th held back (default {})",
                             r.held_out_every, r.images));
  app.add_option("--reconstruct-qdrop", a.reconstruction.drop,
                 fmt::format("QDrop: the probability that an activation stays in float while optimizing (default {})",
                             r.drop))
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--exponents", a.exponents, "activation exponents: lse (least squared error) or max")
      ->check(CLI::IsMember({"lse", "max"}));
  app.add_option("--min-replaced", a.min_replaced,
                 "ternary: give the layers that lose most smaller clusters (N=2, N=1) or int4 while at least this "
                 "share of multiplications (e.g. 0.8) stays replaced by additions (up to four passes)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--report", a.report, "write the conversion report as JSON");
}

void apply_metadata_options(const ConvertArgs& a, Metadata& m) {
  if (!a.preset.empty()) apply_preset(a.preset, m);
  if (!a.mean.empty()) m.mean = a.mean;
  if (!a.scale.empty()) m.scale = a.scale;
  if (a.bgr) m.channel_order = ChannelOrder::BGR;
  if (a.resize >= 0) m.resize_shorter = a.resize;
  if (!a.labels.empty()) m.labels = read_labels(a.labels);
}

WeightEncoding encoding_named(const std::string& name) {
  if (name == "int8") return WeightEncoding::Int8PerChannel;
  if (name == "int4") return WeightEncoding::Int4Clustered;
  if (name == "ternary") return WeightEncoding::TernaryClustered;
  if (name == "float") return WeightEncoding::Float32;
  fail("unknown weight encoding '{}' (float, int8, int4, ternary)", name);
}

std::optional<QuantizeOptions> quantize_options(const ConvertArgs& a) {
  if (a.min_replaced > 0 && a.weights != "ternary")
    fail("--min-replaced needs ternary weights: it keeps the ternary layers that lose most at int4");
  if (a.reconstruct && a.weights == "float")
    fail("--reconstruct needs ternary or int4 weights: float weights have no rounding to learn");
  if (a.weights == "float") return std::nullopt;
  QuantizeOptions q;
  q.encoding = encoding_named(a.weights);
  if (a.cluster == "full") {
    q.cluster = 0;
  } else {
    q.cluster = parse_int(a.cluster, "--cluster");
    if (q.cluster < 1 || q.cluster > 65536) fail("--cluster {} is outside [1, 65536]", q.cluster);
  }
  q.shape = a.cluster_shape == "channels" ? ClusterShape::Channels : ClusterShape::Kernels;
  if (a.calib.empty() && a.calib_list.empty())
    fail("--weights {} needs calibration images: pass --calib DIR or --calib-list FILE", a.weights);
  q.gptq = a.method != "rtn";
  q.threshold = a.threshold == "twn" ? quant::Threshold::Twn : quant::Threshold::Exact;
  q.bias_correction = a.bias_correction;
  const std::string& keep = a.keep;
  if (keep != "first,last" && keep != "last,first" && keep != "first" && keep != "last" && keep != "none")
    fail("--keep-8bit '{}' is not one of first,last, first, last, none", keep);
  q.keep_first_8bit = keep.find("first") != std::string::npos;
  q.keep_last_8bit = keep.find("last") != std::string::npos;
  for (const std::string& spec : a.layers) {
    const size_t eq = spec.rfind('=');
    if (eq == std::string::npos || eq == 0) fail("--layer '{}' is not NAME=ENCODING", spec);
    q.layers[spec.substr(0, eq)] = encoding_named(spec.substr(eq + 1));
  }
  const bool synthetic = a.calib == "synthetic";
  if (synthetic && a.calib_count < 1)
    fail("--calib synthetic needs --calib-count N (N >= 1): the number of images to make");
  if (!synthetic && !a.synthetic_save.empty()) fail("--synthetic-save needs --calib synthetic");
  if (!synthetic) q.calibration.dir = a.calib;
  q.calibration.list = a.calib_list;
  q.calibration.count = a.calib_count;
  const size_t slash = a.calib_shard.find('/');
  if (slash == std::string::npos) fail("--calib-shard '{}' is not K/N", a.calib_shard);
  q.calibration.shard_k = parse_int(a.calib_shard.substr(0, slash), "--calib-shard's K");
  q.calibration.shard_n = parse_int(a.calib_shard.substr(slash + 1), "--calib-shard's N");
  if (q.calibration.shard_n < 1 || q.calibration.shard_k < 1 || q.calibration.shard_k > q.calibration.shard_n)
    fail("--calib-shard {} is not K/N with 1 <= K <= N", a.calib_shard);
  q.calibration.augment = a.augment;
  q.calibration.seed = a.seed;
  // Reconstruction skips blocks without a ternary or int4 layer: on int8 it measured nothing
  // (ResNet-8, two folds: 32.6 -> 32.7 dB), so asking for it there is a mistake, not a no-op.
  const auto low_bit = [](WeightEncoding e) {
    return e == WeightEncoding::TernaryClustered || e == WeightEncoding::Int4Clustered;
  };
  const bool any_low_bit = low_bit(q.encoding) || std::any_of(q.layers.begin(), q.layers.end(), [&](const auto& l) {
                             return low_bit(l.second);
                           });
  if (a.reconstruct && !any_low_bit)
    fail("--reconstruct needs ternary or int4 weights: int8 layers are left as the layer-wise pass made them "
         "(pass --weights ternary or int4, or --layer NAME=ternary)");
  q.reconstruct = a.reconstruct;
  q.reconstruction = a.reconstruction;
  q.reconstruction.seed = a.seed;
  if (a.reconstruct && a.reconstruction.iterations < 1)
    fail("--reconstruct-iters {} is not a number of iterations (1 or more)", a.reconstruction.iterations);
  if (a.reconstruct && a.reconstruction.batch < 1) fail("--reconstruct-batch {} is not a batch size (1 or more)", a.reconstruction.batch);
  q.lse_exponents = a.exponents == "lse";
  q.min_replaced = a.min_replaced;
  return q;
}

}  // namespace trit

// trit-convert's command line translated (converter/options.h): what each option becomes, and the
// one-line errors of options that contradict each other.
#include <doctest/doctest.h>

#include "options.h"
#include "trit/error.h"

using namespace trit;

namespace {

// Parses a command line (without the program name) as trit-convert does.
ConvertArgs parse(std::vector<std::string> argv) {
  CLI::App app;
  ConvertArgs args;
  add_convert_options(app, args);
  std::vector<std::string> reversed(argv.rbegin(), argv.rend());  // CLI11 takes them in reverse
  app.parse(reversed);
  return args;
}

std::string error_of(const std::vector<std::string>& argv) {
  try {
    quantize_options(parse(argv));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("the defaults: float weights, nothing to quantize") {
  const ConvertArgs a = parse({"m.onnx", "-o", "m.trit"});
  CHECK(a.input == "m.onnx");
  CHECK(a.output == "m.trit");
  CHECK_FALSE(quantize_options(a).has_value());
}

TEST_CASE("--reconstruct without its other options gives the reconstruction's own defaults") {
  const auto q = quantize_options(parse({"m.onnx", "-o", "m.trit", "--weights", "ternary", "--calib", "photos", "--reconstruct"}));
  REQUIRE(q.has_value());
  const recon::ReconstructOptions defaults;
  CHECK(q->reconstruct);
  CHECK(q->reconstruction.iterations == defaults.iterations);
  CHECK(q->reconstruction.batch == defaults.batch);
  CHECK(q->reconstruction.images == defaults.images);
  CHECK(q->reconstruction.drop == defaults.drop);
  CHECK(q->reconstruction.seed == defaults.seed);
}

TEST_CASE("quantization options become the quantizer's") {
  const auto q = quantize_options(parse({"m.onnx", "-o", "m.trit", "--weights", "ternary", "--cluster", "16", "--cluster-shape",
                                         "channels", "--calib", "photos", "--calib-count", "7", "--method", "rtn",
                                         "--threshold", "twn", "--no-bias-correction", "--keep-8bit", "last", "--layer",
                                         "conv1=int4", "--layer", "fc=float", "--exponents", "max", "--min-replaced", "0.8"}));
  REQUIRE(q.has_value());
  CHECK(q->encoding == WeightEncoding::TernaryClustered);
  CHECK(q->cluster == 16);
  CHECK(q->shape == ClusterShape::Channels);
  CHECK(q->calibration.dir == "photos");
  CHECK(q->calibration.count == 7);
  CHECK_FALSE(q->gptq);
  CHECK(q->threshold == quant::Threshold::Twn);
  CHECK_FALSE(q->bias_correction);
  CHECK_FALSE(q->keep_first_8bit);
  CHECK(q->keep_last_8bit);
  CHECK(q->layers.at("conv1") == WeightEncoding::Int4Clustered);
  CHECK(q->layers.at("fc") == WeightEncoding::Float32);
  CHECK_FALSE(q->lse_exponents);
  CHECK(q->min_replaced == doctest::Approx(0.8));

  const auto l = quantize_options(parse({"m.onnx", "-o", "m.trit", "--weights", "int4", "--calib-list", "photos.txt",
                                         "--calib-shard", "2/3", "--calib-count", "0", "--augment", "10", "--seed", "7"}));
  REQUIRE(l.has_value());
  CHECK(l->calibration.dir.empty());
  CHECK(l->calibration.list == "photos.txt");
  CHECK(l->calibration.shard_k == 2);
  CHECK(l->calibration.shard_n == 3);
  CHECK(l->calibration.count == 0);
  CHECK(l->calibration.augment == 10);
  CHECK(l->calibration.seed == 7);
  CHECK_THROWS_AS(parse({"m.onnx", "-o", "m.trit", "--calib", "a", "--calib-list", "b"}), CLI::ExcludesError);

  const auto d = quantize_options(parse({"m.onnx", "-o", "m.trit", "--weights", "int8", "--calib", "x", "--cluster", "full"}));
  REQUIRE(d.has_value());
  CHECK(d->encoding == WeightEncoding::Int8PerChannel);
  CHECK(d->cluster == 0);
  CHECK(d->gptq);
  CHECK(d->bias_correction);
  CHECK(d->keep_first_8bit);
  CHECK(d->keep_last_8bit);
  CHECK(d->calibration.count == 50);
}

TEST_CASE("options that cannot work together are one-line errors") {
  const std::vector<std::string> base{"m.onnx", "-o", "m.trit"};
  auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> v = base;
    v.insert(v.end(), more.begin(), more.end());
    return error_of(v);
  };
  CHECK(with({"--weights", "int8"}) == "--weights int8 needs calibration images: pass --calib DIR or --calib-list FILE");
  CHECK(with({"--weights", "int8", "--calib", "x", "--calib-shard", "3/2"}) == "--calib-shard 3/2 is not K/N with 1 <= K <= N");
  CHECK(with({"--weights", "int8", "--calib", "x", "--calib-shard", "half"}) == "--calib-shard 'half' is not K/N");
  CHECK(with({"--weights", "int8", "--calib", "x", "--min-replaced", "0.5"}).starts_with("--min-replaced needs ternary weights"));
  CHECK(with({"--min-replaced", "0.5"}).starts_with("--min-replaced needs ternary weights"));
  CHECK(with({"--weights", "ternary", "--calib", "x", "--cluster", "four"}) == "--cluster 'four' is not a number");
  CHECK(with({"--weights", "ternary", "--calib", "x", "--cluster", "0"}) == "--cluster 0 is outside [1, 65536]");
  CHECK(with({"--weights", "ternary", "--calib", "x", "--keep-8bit", "middle"}) ==
        "--keep-8bit 'middle' is not one of first,last, first, last, none");
  CHECK(with({"--weights", "ternary", "--calib", "x", "--layer", "conv1"}) == "--layer 'conv1' is not NAME=ENCODING");
  CHECK(with({"--weights", "ternary", "--calib", "x", "--layer", "conv1=int2"}) ==
        "unknown weight encoding 'int2' (float, int8, int4, ternary)");
  // What CLI11 checks itself: the choices of --weights and a share in [0, 1].
  CHECK_THROWS_AS(parse({"m.onnx", "-o", "m.trit", "--weights", "int2"}), CLI::ValidationError);
  CHECK_THROWS_AS(parse({"m.onnx", "-o", "m.trit", "--min-replaced", "1.5"}), CLI::ValidationError);
}

TEST_CASE("preprocessing options apply over the preset") {
  Metadata m;
  apply_metadata_options(parse({"m.onnx", "-o", "m.trit", "--preset", "torchvision", "--mean", "1,2,3", "--resize", "0"}), m);
  CHECK(m.channel_order == ChannelOrder::RGB);
  CHECK(m.mean == std::vector<float>{1, 2, 3});
  CHECK(m.scale == std::vector<float>{58.395f, 57.12f, 57.375f});
  CHECK(m.resize_shorter == 0);
  Metadata k;
  apply_metadata_options(parse({"m.onnx", "-o", "m.trit", "--preset", "keras-resnet50"}), k);
  CHECK(k.channel_order == ChannelOrder::BGR);
  CHECK(k.resize_shorter == 256);
  Metadata bad;
  CHECK_THROWS_AS(apply_metadata_options(parse({"m.onnx", "-o", "m.trit", "--preset", "caffe"}), bad), Error);
}

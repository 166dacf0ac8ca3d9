// quantize() end to end on data every checkout has: the fuzzers' tiny ResNet-shaped ONNX graph
// and tiny images (tests/fuzz/make_seeds.py), so that the quantizer is checked without
// ../shared. Every encoding: the report adds up, the integer model follows the float one, the
// fast kernels equal the integer reference bit for bit, and one conversion is one model; and
// --min-replaced's passes and a float first layer, which ResNet-8 checks only with ../shared.
#include <doctest/doctest.h>

#include "calibration.h"
#include "engine.h"
#include "float_executor.h"
#include "helpers.h"
#include "int_executor.h"
#include "onnx_import.h"
#include "quantize.h"
#include "quantized_io.h"
#include "trit/model_file.h"

using namespace trit;

namespace {

struct Tiny {
  Graph graph;
  std::string images;  // calibration folder
};

Tiny tiny() {
  const auto dir = test::testdata() / "fuzz";
  REQUIRE_MESSAGE(std::filesystem::exists(dir / "onnx" / "tiny.onnx"), "tests/fuzz/make_seeds.py did not run");
  Tiny t{import_onnx((dir / "onnx" / "tiny.onnx").string()), (dir / "image").string()};
  t.graph.metadata.mean = {127, 127, 127};
  t.graph.metadata.scale = {64, 64, 64};
  return t;
}

std::vector<Image> calibration_images(const Tiny& t) {
  std::vector<Image> out;
  for (const auto& f : list_images(t.images))
    out.push_back(fit_to_input(decode_image(f), t.graph.metadata, t.graph.input().shape[1], t.graph.input().shape[2]));
  return out;
}

// The float model's logits on the images.
std::vector<float> float_logits(const Tiny& t, const std::vector<Image>& images) {
  std::vector<float> x(images.size() * t.graph.input().elements());
  for (size_t i = 0; i < images.size(); ++i)
    normalize(images[i], t.graph.metadata, std::span(x).subspan(i * t.graph.input().elements(), t.graph.input().elements()));
  return FloatExecutor(std::make_shared<const Graph>(t.graph)).run(x, static_cast<int32_t>(images.size()));
}

double sqnr_db(const std::vector<float>& want, const std::vector<float>& got) {
  double signal = 0, noise = 0;
  for (size_t j = 0; j < want.size(); ++j) {
    signal += double(want[j]) * want[j];
    noise += (double(got[j]) - want[j]) * (double(got[j]) - want[j]);
  }
  return 10 * std::log10(signal / noise);
}

}  // namespace

TEST_CASE("the tiny graph quantizes in every encoding, and the integer model follows the float one") {
  const Tiny t = tiny();
  const auto images = calibration_images(t);
  REQUIRE(images.size() == 5);  // png, jpg, bmp, gray.png, rgba.png (gif and ppm are not read)
  const auto want = float_logits(t, images);
  for (auto enc : {WeightEncoding::Int8PerChannel, WeightEncoding::Int4Clustered, WeightEncoding::TernaryClustered}) {
    const std::string name = to_string(enc);
    CAPTURE(name);
    QuantizeOptions q;
    q.encoding = enc;
    q.cluster = 2;
    q.calibration.dir = t.images;
    q.calibration.count = 0;  // all of them
    QuantizeReport report;
    const Graph g = quantize(t.graph, q, &report);
    // The report: one line per layer, the first and the last int8, the others as asked.
    REQUIRE(report.layers.size() == 4);
    CHECK(report.calibration_images.size() == 5);
    CHECK(report.layers.front().encoding == WeightEncoding::Int8PerChannel);
    CHECK(report.layers.back().encoding == WeightEncoding::Int8PerChannel);
    for (size_t l = 1; l + 1 < report.layers.size(); ++l) CHECK(report.layers[l].encoding == enc);
    CHECK((enc == WeightEncoding::TernaryClustered) == (report.replaced_share() > 0));
    for (const LayerReport& l : report.layers) {
      CAPTURE(l.name);
      CHECK(l.macs > 0);
      CHECK(l.bytes > 0);
      CHECK(l.output_error >= 0);
      CHECK(l.cosine > 0.5);
      CHECK(l.sqnr_db > (enc == WeightEncoding::TernaryClustered ? 3.0 : 10.0));
    }
    // The integer model, on the fast kernels and on the reference, against float: the same bits
    // on both, and logits near the float ones.
    const auto model = std::make_shared<const Graph>(load_model_bytes(serialize_model(g), "tiny.trit"));
    const IntExecutor ref(model);
    const auto input = quantize_images(*model, images);
    const auto ints = ref.run(input, static_cast<int32_t>(images.size()));
    const Engine engine(model);
    Workspace ws(engine, static_cast<int32_t>(images.size()));
    CHECK(engine.run(ws, input) == ints);
    const double sqnr = sqnr_db(want, dequantize(ints, model->output().exponent));
    MESSAGE(name << ": logit SQNR against float " << sqnr << " dB on its 5 calibration images");
    CHECK(sqnr > (enc == WeightEncoding::TernaryClustered ? 3.0 : 15.0));
    // One conversion, one model.
    CHECK(serialize_model(quantize(t.graph, q, nullptr)) == serialize_model(g));
  }
}

TEST_CASE("the tiny graph under --min-replaced and with a float first layer: the integer model runs the same bits on both paths") {
  const Tiny t = tiny();
  const auto images = calibration_images(t);
  QuantizeOptions q;
  q.cluster = 2;
  q.calibration.dir = t.images;
  q.calibration.count = 0;
  QuantizeReport all_ternary;
  quantize(t.graph, q, &all_ternary);
  const double full = all_ternary.replaced_share();
  REQUIRE(full > 0);
  const auto same_bits = [&](const Graph& g) {
    const auto model = std::make_shared<const Graph>(load_model_bytes(serialize_model(g), "tiny.trit"));
    const auto input = quantize_images(*model, images);
    const Engine engine(model);
    Workspace ws(engine, static_cast<int32_t>(images.size()));
    CHECK(engine.run(ws, input) == IntExecutor(model).run(input, static_cast<int32_t>(images.size())));
    return model;
  };

  // A budget half of what all-ternary replaces: some middle layers go to int4, the share stays
  // at least the budget, and every layer is one of the two encodings (first and last int8).
  q.min_replaced = full / 2;
  QuantizeReport mixed;
  const auto m = same_bits(quantize(t.graph, q, &mixed));
  CHECK(mixed.replaced_share() >= q.min_replaced);
  CHECK(mixed.replaced_share() < full);
  for (size_t l = 1; l + 1 < mixed.layers.size(); ++l)
    CHECK((mixed.layers[l].encoding == WeightEncoding::TernaryClustered ||
           mixed.layers[l].encoding == WeightEncoding::Int4Clustered));

  // The first layer left in float: the file keeps its float weights and the rest is integer;
  // it runs on the integer reference (the fast kernels refuse it, naming the layer), and its
  // logits follow the float model's as the all-integer ones do.
  q.min_replaced = 0;
  const std::string first = all_ternary.layers.front().name;
  q.layers[first] = WeightEncoding::Float32;
  const auto f = std::make_shared<const Graph>(load_model_bytes(serialize_model(quantize(t.graph, q, nullptr)), "f.trit"));
  CHECK(f->nodes[0].weights.encoding == WeightEncoding::Float32);
  const std::string refusal = "'" + first + "' is kept in float32";
  CHECK_THROWS_WITH(Engine{f}, doctest::Contains(refusal.c_str()));
  const auto n = static_cast<int32_t>(images.size());
  const double sqnr = sqnr_db(float_logits(t, images),
                              dequantize(IntExecutor(f).run(quantize_images(*f, images), n), f->output().exponent));
  MESSAGE("float first layer: logit SQNR against float " << sqnr << " dB");
  CHECK(sqnr > 3.0);
}

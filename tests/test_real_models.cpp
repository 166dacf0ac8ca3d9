// Whole networks: the ResNet family built by tests/make_resnet_family.py, the real CIFAR-10
// ResNet-8 and the real ImageNet ResNet-50 (when scripts/fetch_resnet50.sh could fetch it).
#include <doctest/doctest.h>

#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>

#include "helpers.h"
#include "metadata_options.h"
#include "onnx_import.h"
#include "mixed_precision.h"
#include "quantize.h"
#include "synthetic/synthesize.h"
#include "int8/table.h"
#include "engine.h"
#include "trit/error.h"
#include "float_executor.h"
#include "int_executor.h"
#include "quantized_io.h"
#include "trit/image.h"
#include "trit/model_file.h"

using namespace trit;
namespace fs = std::filesystem;

namespace {

// ONNX -> .trit bytes -> loaded model, as trit-convert and a user would go.
std::shared_ptr<const Graph> convert(const fs::path& onnx, const std::string& preset = "",
                                     const fs::path& labels = {}) {
  Graph g = import_onnx(onnx.string());
  if (!preset.empty()) apply_preset(preset, g.metadata);
  if (!labels.empty()) g.metadata.labels = read_labels(labels.string());
  return std::make_shared<const Graph>(load_model_bytes(serialize_model(g), onnx.filename().string()));
}

// The fast kernels on every path this CPU runs, and on 1 and 2 threads, give the integer
// reference's outputs bit for bit on these images (one batch, and the first image alone).
void check_engine_matches_reference(const std::shared_ptr<const Graph>& model, const std::vector<fs::path>& files) {
  const Graph& g = *model;
  std::vector<Image> images;
  for (const auto& f : files)
    images.push_back(fit_to_input(decode_image(f.string()), g.metadata, g.input().shape[1], g.input().shape[2]));
  const IntExecutor exec(model);
  const auto input = quantize_images(g, images);
  const auto batch = static_cast<int32_t>(images.size());
  const auto want = exec.run(input, batch);
  const int64_t per_image = g.output().elements();
  for (k8::Isa isa : {k8::Isa::Ref, k8::Isa::Avx2, k8::Isa::Avx512Vnni, k8::Isa::Amx}) {
    if (!k8::isa_supported(isa)) {
      MESSAGE("not run: this CPU cannot run the " << std::string(k8::to_string(isa)) << " path");
      continue;
    }
    const std::string name = k8::to_string(isa);
    CAPTURE(name);
    const Engine engine(model, name);
    for (int threads : {1, 2}) {
      CAPTURE(threads);
      tbb::task_arena(threads).execute([&] {
        Workspace all(engine, batch), one(engine, 1);
        CHECK(engine.run(all, input) == want);
        const auto first = engine.run(one, std::span(input).first(static_cast<size_t>(g.input().elements())));
        CHECK(std::equal(first.begin(), first.end(), want.begin()));
        CHECK(first.size() == static_cast<size_t>(per_image));
      });
      if (isa == k8::Isa::Ref) break;  // the scalar path is slow; one thread count suffices
    }
  }
}

int argmax(std::span<const float> v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

// The logits of each image file ([file][class]), through decode, preprocessing and the executor.
template <typename Executor>
std::vector<float> logits_of(const Executor& exec, const std::vector<fs::path>& files) {
  const Graph& g = exec.graph();
  const int64_t n = g.input().elements();
  std::vector<float> all;
  constexpr size_t kBatch = 8;
  for (size_t start = 0; start < files.size(); start += kBatch) {
    const size_t count = std::min(kBatch, files.size() - start);
    std::vector<Image> images(count);
    tbb::parallel_for(size_t{0}, count, [&](size_t i) {
      images[i] = fit_to_input(decode_image(files[start + i].string()), g.metadata, g.input().shape[1], g.input().shape[2]);
    });
    std::vector<float> logits;
    if constexpr (std::is_same_v<Executor, IntExecutor>) {
      logits = exec.classify(images);
    } else {
      std::vector<float> x(count * n);
      for (size_t i = 0; i < count; ++i) normalize(images[i], g.metadata, std::span(x).subspan(i * n, n));
      logits = exec.run(x, static_cast<int32_t>(count));
    }
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

// Top-1 index of each image file.
template <typename Executor>
std::vector<int> classify(const Executor& exec, const std::vector<fs::path>& files) {
  const int64_t classes = exec.graph().output().elements();
  const std::vector<float> logits = logits_of(exec, files);
  std::vector<int> top(files.size());
  for (size_t i = 0; i < files.size(); ++i) top[i] = argmax(std::span(logits).subspan(i * classes, classes));
  return top;
}

// The photos whose float32 top-1 class ../shared/data/README.md names.
const std::map<std::string, std::string> kPhotoLabels = {
    {"parrot.jpg", "macaw"},       {"hot_dog.jpg", "hotdog"},
    {"cat.bmp", "Egyptian cat"},   {"bird.bmp", "chickadee"},
    {"owl.jpg", "great grey owl"}, {"grace_hopper.bmp", "military uniform"},
    {"missvickie_potato_chips.bmp", "packet"}};

std::vector<fs::path> labelled_photos(const fs::path& data) {
  std::vector<fs::path> photos;
  for (const auto& [file, label] : kPhotoLabels) photos.push_back(data / "photos" / file);
  return photos;
}

// Whether scripts/fetch_resnet50.sh has fetched the real ResNet-50.
bool resnet50_fetched() {
  const auto models = test::source_dir() / "models";
  return fs::exists(models / "resnet50.onnx") && fs::exists(models / "resnet50.labels.txt");
}

// The real ResNet-50 that scripts/fetch_resnet50.sh writes, converted.
std::shared_ptr<const Graph> fetched_resnet50() {
  const auto models = test::source_dir() / "models";
  return convert(models / "resnet50.onnx", "keras-resnet50", models / "resnet50.labels.txt");
}

// The 1000 CIFAR-10 photos with their class indices, in class then name order.
void cifar_photos(const fs::path& dir, std::vector<fs::path>& files, std::vector<int>& labels) {
  const char* classes[] = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  for (int c = 0; c < 10; ++c) {
    std::vector<fs::path> in_class;
    for (const auto& e : fs::directory_iterator(dir / "cifar10-test-1000" / classes[c])) in_class.push_back(e.path());
    std::sort(in_class.begin(), in_class.end());
    for (const auto& p : in_class) {
      files.push_back(p);
      labels.push_back(c);
    }
  }
}

void compare_family(int depth) {
  const auto dir = test::testdata() / "family";
  const auto name = fmt::format("resnet{}", depth);
  REQUIRE_MESSAGE(fs::exists(dir / (name + ".onnx")), "tests/make_resnet_family.py did not run");
  const auto model = convert(dir / (name + ".onnx"));
  const auto x = test::read_binary<float>(dir / (name + ".input.bin"));
  const auto want = test::read_binary<float>(dir / (name + ".logits.bin"));
  // Both float paths: the reference and the fused one.
  for (const FloatPath path : {FloatPath::Reference, FloatPath::Fused}) {
    const auto got = FloatExecutor(model, path).run(x, 2);
    REQUIRE(got.size() == want.size());
    // numpy computed in float64; we compute in float32 over up to 104 layers.
    float scale = 0, worst = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      scale = std::max(scale, std::abs(want[i]));
      worst = std::max(worst, std::abs(got[i] - want[i]));
    }
    const std::string which = path == FloatPath::Fused ? "fused" : "reference";
    MESSAGE(name << ", " << which << ": largest logit difference from numpy " << worst << " (largest logit " << scale << ")");
    CHECK(worst <= 1e-4f * scale);
    for (int b = 0; b < 2; ++b)
      CHECK(argmax(std::span(got).subspan(b * 1000, 1000)) == argmax(std::span(want).subspan(b * 1000, 1000)));
  }
}

}  // namespace

TEST_CASE("ResNet-18 (basic blocks) matches its numpy forward pass") { compare_family(18); }

TEST_CASE("ResNet-101 (bottlenecks, stride in the 3x3) matches its numpy forward pass") { compare_family(101); }

TEST_CASE("the real CIFAR-10 ResNet-8: reference logits and top-1") {
  TRIT_REQUIRE_SHARED(data);
  const auto dir = data / "resnet8-cifar10";
  const auto model = convert(dir / "resnet8.onnx", "raw");
  const FloatExecutor exec(model);
  // Ten decoded images, uint8 [10][32][32][3] RGB, against the reference logits.
  const auto pixels = test::read_binary<uint8_t>(dir / "reference_pixels_first10_u8_nhwc.bin");
  REQUIRE(pixels.size() == 10 * 32 * 32 * 3);
  std::vector<float> x(10 * 3 * 32 * 32);
  for (int i = 0; i < 10; ++i) {
    Image img{32, 32, std::vector<uint8_t>(pixels.begin() + i * 3072, pixels.begin() + (i + 1) * 3072)};
    normalize(img, model->metadata, std::span(x).subspan(i * 3072, 3072));
  }
  const auto logits = exec.run(x, 10);
  std::ifstream ref(dir / "reference_logits_first10.txt");
  float worst = 0;
  for (int i = 0; i < 10; ++i) {
    std::string file;
    ref >> file;
    for (int c = 0; c < 10; ++c) {
      float want;
      ref >> want;
      worst = std::max(worst, std::abs(logits[i * 10 + c] - want));
    }
  }
  MESSAGE("ResNet-8: largest difference from the reference logits " << worst);
  CHECK(worst <= 1e-4f);

  // Top-1 on the 1000 test photos (JPEG; decoders may differ by 1 in a pixel).
  std::vector<fs::path> files;
  std::vector<int> labels;
  cifar_photos(dir, files, labels);
  REQUIRE(files.size() == 1000);
  const auto top = classify(exec, files);
  int correct = 0;
  for (size_t i = 0; i < files.size(); ++i) correct += top[i] == labels[i];
  MESSAGE("ResNet-8 float32 top-1 on the 1000 CIFAR-10 photos: " << correct / 10.0 << " % (" << correct
                                                                << "/1000; reference 75.1 %)");
  CHECK(correct >= 740);

  // The fused path: the reference logits within 1e-4, and the float reference's answers (a photo
  // whose two best classes lie within rounding of each other could differ: none here).
  const FloatExecutor fast(model, FloatPath::Fused);
  const auto fast_logits = fast.run(x, 10);
  float fast_worst = 0;
  for (size_t i = 0; i < logits.size(); ++i) fast_worst = std::max(fast_worst, std::abs(fast_logits[i] - logits[i]));
  MESSAGE("ResNet-8: largest difference between the fused path and the float reference " << fast_worst);
  CHECK(fast_worst <= 1e-4f);
  CHECK(classify(fast, files) == top);
}

namespace {

// A calibration folder: links to photos 0090-0094 of each CIFAR-10 class.
fs::path cifar_calibration(const fs::path& dir) {
  const fs::path cal = fs::temp_directory_path() / fmt::format("trit-cifar-calib-{}", ::getpid());
  fs::create_directories(cal);
  for (const auto& c : fs::directory_iterator(dir / "cifar10-test-1000")) {
    if (!c.is_directory()) continue;  // labels.txt
    for (const char* f : {"0090", "0091", "0092", "0093", "0094"})
      fs::create_symlink(c.path() / (std::string(f) + ".jpg"), cal / (c.path().filename().string() + "_" + f + ".jpg"));
  }
  return cal;
}

// The CIFAR-10 ResNet-8 in float, its 1000 photos and labels, float32's answers, and a
// calibration folder of 50 of them (removed with it).
struct ResNet8 {
  std::shared_ptr<const Graph> float_model;
  std::vector<fs::path> files;
  std::vector<int> labels, float_top;
  fs::path calibration;

  explicit ResNet8(const fs::path& data) {
    const auto dir = data / "resnet8-cifar10";
    float_model = convert(dir / "resnet8.onnx", "raw");
    cifar_photos(dir, files, labels);
    float_top = classify(FloatExecutor(float_model), files);
    calibration = cifar_calibration(dir);
  }
  ~ResNet8() { fs::remove_all(calibration); }
  int top1(const std::vector<int>& top) const {
    int correct = 0;
    for (size_t i = 0; i < files.size(); ++i) correct += top[i] == labels[i];
    return correct;
  }
  QuantizeOptions options(WeightEncoding enc) const {
    QuantizeOptions q;
    q.encoding = enc;
    q.calibration.dir = calibration.string();
    return q;
  }
};

}  // namespace

TEST_CASE("the real CIFAR-10 ResNet-8, quantized: int8 keeps its accuracy, ternary is reported") {
  TRIT_REQUIRE_SHARED(data);
  const ResNet8 r8(data);
  for (auto enc : {WeightEncoding::Int8PerChannel, WeightEncoding::TernaryClustered}) {
    QuantizeReport report;
    const Graph g = quantize(*r8.float_model, r8.options(enc), &report);
    // Through the file format, as a user loads it.
    auto model = std::make_shared<const Graph>(load_model_bytes(serialize_model(g), "r8-int.trit"));
    const IntExecutor exec(model);
    const auto top = classify(exec, r8.files);
    check_engine_matches_reference(model, std::vector<fs::path>(r8.files.begin(), r8.files.begin() + 8));
    int agree = 0;
    for (size_t i = 0; i < r8.files.size(); ++i) agree += top[i] == r8.float_top[i];
    MESSAGE("ResNet-8 " << std::string(to_string(enc)) << ": top-1 " << r8.top1(top) / 10.0 << " % (float32 "
                        << r8.top1(r8.float_top) / 10.0 << " %), agreement " << agree / 10.0
                        << " %, multiplications replaced " << 100 * report.replaced_share() << " %");
    if (enc == WeightEncoding::Int8PerChannel) {
      CHECK(r8.top1(top) >= r8.top1(r8.float_top) - 10);  // within 1 point
      CHECK(agree >= 960);
    } else {
      CHECK(r8.top1(top) >= 400);  // far above chance (10 %); this small network loses much to ternary
    }
    // The classifier has 50 rows (one per photo) for its 64 inputs, too few to refit each weight:
    // it is refitted by one gain, which leaves its logits on the calibration photos at float32's
    // scale: the least-squares scale of float32's logits on the integer model's, each class's
    // mean set apart, is 1 (without the gain: 1.001 for int8, 1.092 for ternary, whose layers
    // shrink what the classifier sees).
    CHECK(report.layers.back().note.find("refitted by one gain") != std::string::npos);
    std::vector<fs::path> calibration(fs::directory_iterator(r8.calibration), fs::directory_iterator());
    std::sort(calibration.begin(), calibration.end());
    const std::vector<float> qz = logits_of(exec, calibration), fz = logits_of(FloatExecutor(r8.float_model), calibration);
    const size_t classes = 10, photos = calibration.size();
    double cross = 0, power = 0;
    for (size_t c = 0; c < classes; ++c) {
      double mq = 0, mf = 0;
      for (size_t i = 0; i < photos; ++i) {
        mq += qz[i * classes + c] / double(photos);
        mf += fz[i * classes + c] / double(photos);
      }
      for (size_t i = 0; i < photos; ++i) {
        cross += (qz[i * classes + c] - mq) * (fz[i * classes + c] - mf);
        power += (qz[i * classes + c] - mq) * (qz[i * classes + c] - mq);
      }
    }
    MESSAGE("least-squares scale of the logits against float32's on the calibration photos: " << cross / power);
    CHECK(std::abs(cross / power - 1) < 0.01);
    // Dynamic exponents, chosen from each tensor at run time, do about as well as calibrated ones.
    const auto dyn = classify(IntExecutor(model, true), r8.files);
    MESSAGE("ResNet-8 " << std::string(to_string(enc)) << " with dynamic exponents: top-1 " << r8.top1(dyn) / 10.0 << " %");
    CHECK(std::abs(r8.top1(dyn) - r8.top1(top)) <= 30);
    // The same bits on one and on two threads.
    std::vector<Image> images;
    for (int i = 0; i < 8; ++i) images.push_back(decode_image(r8.files[i * 100].string()));
    std::vector<float> one, two;
    tbb::task_arena(1).execute([&] { one = exec.classify(images); });
    tbb::task_arena(2).execute([&] { two = exec.classify(images); });
    CHECK(one == two);
  }
}

TEST_CASE("the real CIFAR-10 ResNet-8, --min-replaced: the final pass applies what the measuring passes chose") {
  TRIT_REQUIRE_SHARED(data);
  const ResNet8 r8(data);
  QuantizeReport ternary_report;
  const auto ternary = std::make_shared<const Graph>(quantize(*r8.float_model, r8.options(WeightEncoding::TernaryClustered), &ternary_report));
  const int ternary_top1 = r8.top1(classify(IntExecutor(ternary), r8.files));
  QuantizeOptions q = r8.options(WeightEncoding::TernaryClustered);
  q.min_replaced = 0.85;
  QuantizeReport report;
  std::vector<std::pair<int, size_t>> passes;
  std::map<int, QuantizeReport> measured;  // what each pass reported, by pass
  auto g = std::make_shared<const Graph>(load_model_bytes(
      serialize_model(quantize(*r8.float_model, q, &report,
                               [&](int pass, int count, size_t i, size_t, const LayerReport& l, double) {
                                 CHECK(count == 4);  // N=4, N=2, N=1, final
                                 passes.push_back({pass, i});
                                 measured[pass].layers.push_back(l);
                               })),
      "r8-mixed.trit"));
  // The first pass's measures: every ternary layer added some error; branches of residual
  // blocks carry a measured share of their trunk, the classifier none to share.
  int branches = 0;
  for (const LayerReport& l : ternary_report.layers) {
    if (l.encoding == WeightEncoding::TernaryClustered) CHECK(l.added_error > 0);
    CHECK(l.trunk_share > 0);
    branches += l.trunk_share != 1;
  }
  CHECK(branches >= 6);
  CHECK(ternary_report.layers.back().trunk_share == 1);
  // The first measuring pass is the all-ternary conversion; the final pass applies exactly
  // what choose_promotions makes of the three measuring passes.
  REQUIRE(measured.size() == 4);
  CHECK(measured[1].replaced_share() == ternary_report.replaced_share());
  for (size_t i = 0; i < ternary_report.layers.size(); ++i)
    CHECK(measured[1].layers[i].added_error == ternary_report.layers[i].added_error);
  const auto chosen = choose_promotions({measured[1], measured[2], measured[3]}, 0.85, {});
  REQUIRE(!chosen.empty());
  CHECK(passes.size() == 4 * ternary_report.layers.size());
  CHECK(passes.front() == std::pair<int, size_t>{1, 0});
  CHECK(passes.back() == std::pair<int, size_t>{4, ternary_report.layers.size() - 1});
  CHECK(report.replaced_share() >= 0.85);
  CHECK(report.replaced_share() < ternary_report.replaced_share());
  int smaller = 0;
  for (const Promotion& c : chosen) {
    const auto it = std::find_if(report.layers.begin(), report.layers.end(), [&](const LayerReport& l) { return l.name == c.name; });
    REQUIRE(it != report.layers.end());
    CHECK(it->encoding == c.encoding);
    if (c.encoding == WeightEncoding::TernaryClustered) CHECK(it->cluster == c.cluster);
    smaller += c.encoding == WeightEncoding::TernaryClustered;
    CHECK(it->note.find("by --min-replaced") != std::string::npos);
  }
  for (const LayerReport& l : report.layers) {
    const bool promoted = std::any_of(chosen.begin(), chosen.end(), [&](const Promotion& c) { return c.name == l.name; });
    if (!promoted) CHECK(l.encoding == ternary_report.layers[&l - report.layers.data()].encoding);
  }
  check_engine_matches_reference(g, std::vector<fs::path>(r8.files.begin(), r8.files.begin() + 8));
  const auto top = classify(IntExecutor(g), r8.files);
  MESSAGE("ResNet-8 ternary with " << chosen.size() - smaller << " layers at int4 and " << smaller
                                   << " with smaller clusters (--min-replaced 0.85): top-1 " << r8.top1(top) / 10.0
                                   << " % (all ternary " << ternary_top1 / 10.0 << " %), multiplications replaced "
                                   << 100 * report.replaced_share() << " %");
  CHECK(r8.top1(top) >= 400);
  // Asking for more than all-ternary replaces is an error that says so, before any calibration
  // (the share follows from the shapes: no images are read).
  q.min_replaced = 0.99;
  q.calibration.dir = (fs::path(TRIT_TESTDATA_DIR) / "no such folder").string();
  CHECK_THROWS_WITH_AS(quantize(*r8.float_model, q, nullptr), doctest::Contains("cannot be met"), Error);
}

TEST_CASE("the real CIFAR-10 ResNet-8, reconstructed: each block follows float more closely on held-back photos, and one seed gives one model") {
  TRIT_REQUIRE_SHARED(data);
  const ResNet8 r8(data);
  // 200 calibration photos (every 5th of the 1000), 25 of them held back from the optimization.
  QuantizeOptions q = r8.options(WeightEncoding::TernaryClustered);
  q.calibration.dir.clear();
  const fs::path list = r8.calibration / "list.txt";
  {
    std::ofstream out(list);
    for (size_t i = 0; i < r8.files.size(); i += 5) out << r8.files[i].string() << "\n";
  }
  q.calibration.list = list.string();
  q.calibration.count = 0;
  QuantizeReport layer_wise;
  const auto plain = std::make_shared<const Graph>(quantize(*r8.float_model, q, &layer_wise));
  q.reconstruct = true;
  q.reconstruction.iterations = 200;
  q.reconstruction.images = 200;
  QuantizeReport report;
  const Graph g = quantize(*r8.float_model, q, &report);
  REQUIRE(report.blocks.size() == 3);
  double start = 0, end = 0, most_flipped = 0;
  int improved = 0;
  for (const recon::BlockResult& b : report.blocks) {
    CAPTURE(b.name);
    MESSAGE("ResNet-8 block " << b.name << ": relative error on held-back photos " << b.held_start << " -> " << b.held_end
                              << " (iteration " << b.best_iteration << "), on training photos " << b.train_start << " -> "
                              << b.train_end << ", " << 100 * b.flipped << " % of codes changed");
    CHECK(b.layers >= 2);
    CHECK(b.held_end <= b.held_start);  // the kept checkpoint is never worse on them
    CHECK(b.held_end <= b.held_last);   // nor than the last iteration, which it was chosen among
    CHECK(b.held_last == b.curve.back().second);
    if (b.best_iteration == 200) CHECK(b.train_end == b.train_last);
    improved += b.kept && b.held_end < 0.97 * b.held_start && b.train_end < b.train_start;
    start += b.held_start;
    end += b.held_end;
    most_flipped = std::max(most_flipped, b.flipped);
  }
  CHECK(improved >= 2);
  // The rounding is learned, not only the scales and biases: some codes change (at the rounding
  // variables' former learning rate, 1e-2, none did here; at 5e-2, 2.3 % of the first block's).
  CHECK(most_flipped > 0.01);
  // The layer-wise start already has least-squares cluster scales (weight_quant.h, refit_scales):
  // what is left to gain is the rounding's and the biases' (5.9 % of the error here).
  CHECK(end < 0.97 * start);
  // What ships: the fast kernels equal the reference on it; the layer-wise report's layers.
  auto model = std::make_shared<const Graph>(load_model_bytes(serialize_model(g), "r8-rec.trit"));
  check_engine_matches_reference(model, std::vector<fs::path>(r8.files.begin(), r8.files.begin() + 8));
  CHECK(report.layers.size() == layer_wise.layers.size());
  CHECK(report.replaced_share() == layer_wise.replaced_share());
  const auto top = classify(IntExecutor(model), r8.files), plain_top = classify(IntExecutor(plain), r8.files);
  MESSAGE("ResNet-8 ternary N=4 kernels on 200 photos: top-1 " << r8.top1(plain_top) / 10.0 << " % layer-wise, "
                                                                << r8.top1(top) / 10.0 << " % reconstructed (float32 "
                                                                << r8.top1(r8.float_top) / 10.0 << " %)");
  // One seed and one thread count: one model, to the byte.
  q.reconstruction.iterations = 40;
  std::vector<std::byte> first, second;
  tbb::task_arena(2).execute([&] { first = serialize_model(quantize(*r8.float_model, q, nullptr)); });
  tbb::task_arena(2).execute([&] { second = serialize_model(quantize(*r8.float_model, q, nullptr)); });
  CHECK(first == second);
  q.reconstruction.seed = 2;
  CHECK(serialize_model(quantize(*r8.float_model, q, nullptr)) != first);
}

TEST_CASE("the real CIFAR-10 ResNet-8 in int8 with its first layer left in float") {
  TRIT_REQUIRE_SHARED(data);
  const ResNet8 r8(data);
  QuantizeOptions q = r8.options(WeightEncoding::Int8PerChannel);
  q.layers["stem.conv"] = WeightEncoding::Float32;
  auto mixed = std::make_shared<const Graph>(load_model_bytes(serialize_model(quantize(*r8.float_model, q, nullptr)), "mixed"));
  CHECK(mixed->nodes[0].weights.encoding == WeightEncoding::Float32);
  const auto top = classify(IntExecutor(mixed), r8.files);
  MESSAGE("ResNet-8 int8 with a float first layer: top-1 " << r8.top1(top) / 10.0 << " %");
  CHECK(r8.top1(top) >= r8.top1(r8.float_top) - 10);
}

TEST_CASE("the real ImageNet ResNet-50 in int8 and int4 keeps the photos' top-1 labels") {
  TRIT_REQUIRE_SHARED(data);
  if (!resnet50_fetched()) TRIT_SKIP("models/resnet50.onnx is absent (scripts/fetch_resnet50.sh fetches it)");
  const auto float_model = fetched_resnet50();
  const auto photos = labelled_photos(data);
  for (auto enc : {WeightEncoding::Int8PerChannel, WeightEncoding::Int4Clustered}) {
    QuantizeOptions q;
    q.encoding = enc;
    q.calibration.dir = (data / "imagenet-sample").string();
    q.calibration.count = 32;
    const auto model = std::make_shared<const Graph>(quantize(*float_model, q, nullptr));
    const auto top = classify(IntExecutor(model), photos);
    check_engine_matches_reference(model, std::vector<fs::path>(photos.begin(), photos.begin() + 3));
    size_t i = 0;
    for (const auto& [file, label] : kPhotoLabels) {
      const std::string encoding = to_string(enc);
      CAPTURE(encoding);
      CAPTURE(file);
      CHECK(model->metadata.labels[top[i++]].name == label);
    }
  }
}

TEST_CASE("the real ImageNet ResNet-50: the photos, and top-1 on the 500-photo sample") {
  TRIT_REQUIRE_SHARED(data);
  if (!resnet50_fetched()) TRIT_SKIP("models/resnet50.onnx is absent (scripts/fetch_resnet50.sh fetches it)");
  const auto model = fetched_resnet50();
  const FloatExecutor exec(model);
  const auto& labels = model->metadata.labels;

  // The photos on the float reference; the sample on the fused path, what a Session runs (five
  // times faster; its top five classes were the reference's on every photo of the sample).
  const auto photos = labelled_photos(data);
  const auto top = classify(exec, photos);
  size_t i = 0;
  for (const auto& [file, label] : kPhotoLabels) {
    CAPTURE(file);
    CHECK(labels[top[i++]].name == label);
  }

  // The 500-photo sample: the label is the file name's WordNet id prefix.
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(data / "imagenet-sample")) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() == 500);
  const auto predicted = classify(FloatExecutor(model, FloatPath::Fused), files);
  int correct = 0;
  for (size_t k = 0; k < files.size(); ++k)
    correct += files[k].filename().string().rfind(labels[predicted[k]].wnid + "_", 0) == 0;
  MESSAGE("ResNet-50 float32 top-1 on the 500-photo ImageNet sample: " << correct / 5.0 << " % (" << correct
                                                                       << "/500)");
  CHECK(correct >= 440);  // 88 %
}

TEST_CASE("the real ImageNet ResNet-50 carries its preprocessing from the fetch script to the model") {
  if (!resnet50_fetched()) TRIT_SKIP("models/resnet50.onnx is absent (scripts/fetch_resnet50.sh fetches it)");
  // scripts/fetch_resnet50.sh -> metadata_props -> the import -> a saved and loaded model: the
  // Keras preset's preprocessing, with no preset given.
  ImportStats stats;
  const Graph g = import_onnx((test::source_dir() / "models" / "resnet50.onnx").string(), &stats);
  CHECK(stats.preprocessing);
  const Graph loaded = load_model_bytes(serialize_model(g), "resnet50");
  Metadata keras;
  apply_preset("keras-resnet50", keras);
  CHECK(loaded.metadata.channel_order == keras.channel_order);
  CHECK(loaded.metadata.mean == keras.mean);
  CHECK(loaded.metadata.scale == keras.scale);
  CHECK(loaded.metadata.resize_shorter == keras.resize_shorter);
  CHECK(stats.batch_norms.size() == 53);
}

TEST_CASE("the real ImageNet ResNet-50 in int8 from four synthetic images names the photos as float32 does") {
  TRIT_REQUIRE_SHARED(data);
  if (!resnet50_fetched()) TRIT_SKIP("models/resnet50.onnx is absent (scripts/fetch_resnet50.sh fetches it)");
  const auto models = test::source_dir() / "models";
  ImportStats stats;
  Graph g = import_onnx((models / "resnet50.onnx").string(), &stats);
  apply_preset("keras-resnet50", g.metadata);  // (an ONNX file fetched before the metadata lacks it)
  g.metadata.labels = read_labels((models / "resnet50.labels.txt").string());
  synth::SynthesisOptions o;
  o.count = 4;
  o.batch = 4;
  o.iterations = 24;  // a few seconds; the conversion's default is 200
  synth::SynthesisReport report;
  auto images = std::make_shared<const std::vector<Image>>(synth::synthesize(g, stats.batch_norms, o, &report));
  MESSAGE("batch-norm loss " << report.start_loss << " -> " << report.end_loss << " in " << report.seconds << " s");
  QuantizeOptions q;
  q.encoding = WeightEncoding::Int8PerChannel;
  q.calibration.images = images;
  q.calibration.count = 0;
  const auto model = std::make_shared<const Graph>(quantize(g, q, nullptr));
  const auto float_model = std::make_shared<const Graph>(load_model_bytes(serialize_model(g), "resnet50"));
  const auto photos = labelled_photos(data);
  CHECK(classify(IntExecutor(model), photos) == classify(FloatExecutor(float_model), photos));
}

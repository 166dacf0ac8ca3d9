// The embedding API (trit/session.h, trit.h): sessions on many threads, lifetimes, allocations
// during a run, and the C API's errors.
#include <doctest/doctest.h>

#include <tbb/task_arena.h>

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <new>
#include <thread>

#include "helpers.h"
#include "int8/layer.h"
#include "trit.h"
#include "trit/error.h"
#include "int_executor.h"
#include "quantized_io.h"
#include "trit/model_file.h"
#include "trit/session.h"

// Counts heap allocations while `counting` is set, on any thread: operator new, and (outside
// the sanitizers, which replace them themselves) malloc, calloc, realloc, aligned_alloc,
// posix_memalign and memalign, so that an arena or scratch buffer allocated during a run shows.
// live_bytes: the bytes the plain forms of operator new hold at any time.
namespace {
std::atomic<bool> counting{false};
std::atomic<int64_t> allocations{0};
std::atomic<int64_t> live_bytes{0};
void count_one() {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TRIT_COUNT_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TRIT_COUNT_MALLOC 0
#endif
#endif
#ifndef TRIT_COUNT_MALLOC
#define TRIT_COUNT_MALLOC 1
#endif

#if TRIT_COUNT_MALLOC
// glibc's own entry points, under the names it exports for exactly this (interposing malloc).
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
void* malloc(size_t n) {
  count_one();
  return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) {
  count_one();
  return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
  count_one();
  return __libc_realloc(p, n);
}
void* aligned_alloc(size_t align, size_t n) {
  count_one();
  return __libc_memalign(align, n);
}
void* memalign(size_t align, size_t n) {
  count_one();
  return __libc_memalign(align, n);
}
int posix_memalign(void** out, size_t align, size_t n) {
  count_one();
  *out = __libc_memalign(align, n);
  return *out ? 0 : ENOMEM;
}
void free(void* p) { __libc_free(p); }
}
#endif

// This file's operator new and delete are malloc and free, which GCC cannot see through.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

// Every plain form is replaced, so that what one form allocates another frees consistently
// (AddressSanitizer checks that).
namespace {
void* counted(size_t size) noexcept {
  if (!TRIT_COUNT_MALLOC) count_one();  // else malloc counts it
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p) live_bytes.fetch_add(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  return p;
}
void release(void* p) noexcept {
  if (p) live_bytes.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  std::free(p);
}
}  // namespace
void* operator new(size_t size) {
  if (void* p = counted(size)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t size) {
  if (void* p = counted(size)) return p;
  throw std::bad_alloc();
}
void* operator new(size_t size, const std::nothrow_t&) noexcept { return counted(size); }
void* operator new[](size_t size, const std::nothrow_t&) noexcept { return counted(size); }
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, size_t) noexcept { release(p); }
void operator delete[](void* p, size_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }

using namespace trit;

namespace {

std::shared_ptr<const Model> small_model(uint32_t seed, int variant = 0) {
  std::mt19937 rng(seed);
  return Model::from_graph(test::integer_graph(rng, variant), {});
}

Image random_image(int32_t w, int32_t h, std::mt19937& rng) {
  Image im;
  im.width = w;
  im.height = h;
  im.pixels.resize(static_cast<size_t>(w) * h * 3);
  std::uniform_int_distribution<int> d(0, 255);
  for (auto& p : im.pixels) p = static_cast<uint8_t>(d(rng));
  return im;
}

}  // namespace

TEST_CASE("many sessions on one model, on 8 threads, agree with a single-threaded run and leave no memory behind") {
  const auto model = small_model(11, 2);
  CHECK(model->engine_name() != "integer reference");
  std::mt19937 rng(3);
  const Tensor& in = model->graph().input();
  const int64_t classes = model->classes();
  std::vector<std::vector<int32_t>> inputs, want;
  {
    Session one(model);
    for (int i = 0; i < 16; ++i) {
      inputs.push_back(test::random_input(in, 1, rng));
      want.emplace_back(classes);
      tbb::task_arena(1).execute([&] { one.run_into(inputs.back(), want.back()); });
    }
  }
  // 8 threads x 200 runs; each thread makes a new session every 25 runs. Twice: the heap holds
  // the same bytes after each round as before the first (nothing leaks, nothing accumulates).
  std::atomic<int> mismatches{0}, runs{0};
  const int64_t before = live_bytes.load();
  for (int round = 0; round < 2; ++round) {
    {
      std::vector<std::thread> threads;
      for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
          std::unique_ptr<Session> s;
          std::vector<int32_t> out(classes);
          for (int i = 0; i < 200; ++i) {
            if (i % 25 == 0) s = std::make_unique<Session>(model);
            const size_t k = static_cast<size_t>(t * 7 + i) % inputs.size();
            s->run_into(inputs[k], out);
            if (out != want[k]) ++mismatches;
            ++runs;
          }
        });
      for (auto& th : threads) th.join();
    }
    CHECK(live_bytes.load() == before);
  }
  CHECK(runs == 3200);
  CHECK(mismatches == 0);
}

TEST_CASE("a model outlives its sessions, whichever handle goes first") {
  auto model = small_model(12);
  std::mt19937 rng(4);
  const auto input = test::random_input(model->graph().input(), 2, rng);
  const auto want = IntExecutor(std::make_shared<const Graph>(model->graph())).run(input, 2);
  Session session(model, 2);
  std::weak_ptr<const Model> weak = model;
  model.reset();  // the session holds the model now
  REQUIRE_FALSE(weak.expired());
  std::vector<int32_t> out(want.size());
  session.run_into(input, out);
  CHECK(out == want);
  session = Session(small_model(13));  // the first model goes with its last session
  CHECK(weak.expired());
}

TEST_CASE("a run allocates nothing once the session is warm") {
  const auto model = small_model(14, 1);
  Session session(model, 2);
  std::mt19937 rng(5);
  const auto input = test::random_input(model->graph().input(), 2, rng);
  std::vector<int32_t> out(2 * static_cast<size_t>(model->classes()));
  tbb::task_arena arena(1);
  arena.execute([&] {
    session.run_into(input, out);  // warm: per-thread scratch
    allocations = 0;
    counting = true;
    for (int i = 0; i < 5; ++i) session.run_into(input, out);
    counting = false;
  });
  CHECK(allocations == 0);
  // The counter sees an arena's allocation (aligned_alloc, in the kernels' library) too.
  counting = true;
  { const k8::AlignedBytes arena_like(4096); }
  counting = false;
  CHECK(allocations == (TRIT_COUNT_MALLOC ? 1 : 0));
}

TEST_CASE("sessions take images and tensors, and give the top classes with labels") {
  const auto model = small_model(15, 3);
  Session session(model, 2);
  std::mt19937 rng(6);
  const Image a = random_image(40, 30, rng), b = random_image(9, 11, rng);
  const auto both = session.logits(std::vector<Image>{a, b});
  const auto first = session.logits(a);
  REQUIRE(first.size() == static_cast<size_t>(model->classes()));
  CHECK(std::equal(first.begin(), first.end(), both.begin()));
  // The same image as a normalized tensor.
  const Image fitted = fit_to_input(a, model->graph().metadata, model->height(), model->width());
  std::vector<float> x(model->graph().input().elements());
  normalize(fitted, model->graph().metadata, x);
  CHECK(session.logits_from_tensor(x) == first);
  const auto top = session.classify(a, 3);
  REQUIRE(top.size() == 3);
  CHECK(top[0].logit == *std::max_element(first.begin(), first.end()));
  CHECK(top[0].probability >= top[1].probability);
  CHECK(top[1].probability >= top[2].probability);
  CHECK(top[0].label == std::to_string(top[0].index));  // no labels in this model
  CHECK_THROWS_WITH_AS(session.logits(std::vector<Image>{a, b, a}), "cannot run 3 images in a session for at most 2", Error);
  CHECK_THROWS_AS(session.logits_from_tensor(std::vector<float>(5)), Error);
}

TEST_CASE("the C API reports errors instead of crashing") {
  trit_model* model = nullptr;
  CHECK(trit_model_load(nullptr, &model) == TRIT_INVALID_ARGUMENT);
  CHECK(trit_model_load("x.trit", nullptr) == TRIT_INVALID_ARGUMENT);
  CHECK(trit_model_load("/nonexistent/m.trit", &model) == TRIT_ERROR);
  CHECK(model == nullptr);
  CHECK(std::string(trit_last_error()).find("/nonexistent/m.trit") != std::string::npos);
  trit_session* session = nullptr;
  CHECK(trit_session_create(nullptr, &session) == TRIT_INVALID_ARGUMENT);
  CHECK(trit_model_classes(nullptr) == -1);
  CHECK(trit_model_label(nullptr, 0) == nullptr);
  trit_model_free(nullptr);
  trit_session_free(nullptr);

  // A real file, written by the library.
  std::mt19937 rng(8);
  const auto g = test::integer_graph(rng, 0);
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("trit-capi-{}", ::getpid());
  std::filesystem::create_directories(dir);
  const auto path = (dir / "m.trit").string();
  save_model(*g, path, true);
  REQUIRE(trit_model_load(path.c_str(), &model) == TRIT_OK);
  CHECK(trit_model_classes(model) == 7);
  int32_t c = 0, h = 0, w = 0;
  CHECK(trit_model_input(model, &c, &h, &w) == 0);
  CHECK((c == 3 && h == 11 && w == 9));
  CHECK(trit_model_label(model, 7) == nullptr);
  REQUIRE(trit_session_create(model, &session) == TRIT_OK);
  trit_model_free(model);  // the session keeps what it needs

  std::vector<uint8_t> rgb(20 * 16 * 3, 77);
  std::vector<float> logits(7);
  CHECK(trit_logits_rgb(session, rgb.data(), 20, 16, logits.data(), logits.size()) == TRIT_OK);
  // Packed weights: the same logits; unknown flags refused.
  {
    trit_model* packed = nullptr;
    trit_session* packed_session = nullptr;
    CHECK(trit_model_load_flags(path.c_str(), 2, &packed) == TRIT_INVALID_ARGUMENT);
    REQUIRE(trit_model_load_flags(path.c_str(), TRIT_LOAD_PACKED_WEIGHTS, &packed) == TRIT_OK);
    REQUIRE(trit_session_create(packed, &packed_session) == TRIT_OK);
    std::vector<float> packed_logits(7);
    CHECK(trit_logits_rgb(packed_session, rgb.data(), 20, 16, packed_logits.data(), 7) == TRIT_OK);
    CHECK(packed_logits == logits);
    trit_session_free(packed_session);
    trit_model_free(packed);
  }
  CHECK(trit_logits_rgb(session, rgb.data(), 20, 16, logits.data(), 3) == TRIT_INVALID_ARGUMENT);
  CHECK(trit_logits_rgb(session, rgb.data(), 0, 16, logits.data(), 7) == TRIT_INVALID_ARGUMENT);
  CHECK(trit_logits_rgb(session, nullptr, 20, 16, logits.data(), 7) == TRIT_INVALID_ARGUMENT);
  int32_t classes[2];
  float probs[2];
  CHECK(trit_classify_file(session, (dir / "missing.png").string().c_str(), 2, classes, probs) == TRIT_ERROR);
  CHECK(std::string(trit_last_error()).find("missing.png") != std::string::npos);
  CHECK(trit_classify_file(session, dir.string().c_str(), 2, classes, probs) == TRIT_ERROR);  // a directory
  CHECK(trit_classify_file(session, path.c_str(), 0, classes, probs) == TRIT_INVALID_ARGUMENT);
  trit_session_free(session);
  std::filesystem::remove_all(dir);
}

// Calibration sources (converter/calibration.h): which images a folder, a list, a shard and a
// count select, and augmented views, the same for a seed whichever thread asks.
#include <doctest/doctest.h>

#include <tbb/parallel_for.h>

#include <fstream>

#include "calibration.h"
#include "helpers.h"
#include "trit/error.h"

using namespace trit;

namespace {

// The fuzz seeds' tiny images (tests/fuzz/make_seeds.py): five that decode_image reads, a GIF
// and a PPM that it does not.
std::filesystem::path seed_images() {
  const auto dir = test::testdata() / "fuzz" / "image";
  REQUIRE_MESSAGE(std::filesystem::exists(dir / "tiny.png"), "tests/fuzz/make_seeds.py did not run");
  return dir;
}

std::vector<std::string> names(const CalibrationSource& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size(); ++i) out.push_back(std::filesystem::path(s.name(i)).filename().string());
  return out;
}

}  // namespace

TEST_CASE("a folder's images in name order, then a shard, then a count") {
  CalibrationSpec spec;
  spec.dir = seed_images().string();
  spec.count = 0;
  // gif and ppm are not read; the others in name order.
  const std::vector<std::string> all{"tiny.bmp", "tiny.gray.png", "tiny.jpg", "tiny.png", "tiny.rgba.png"};
  CHECK(names(*make_calibration(spec)) == all);
  spec.shard_k = 2;
  spec.shard_n = 2;
  CHECK(names(*make_calibration(spec)) == std::vector<std::string>{"tiny.gray.png", "tiny.png"});
  spec.shard_k = 1;
  CHECK(names(*make_calibration(spec)) == std::vector<std::string>{"tiny.bmp", "tiny.jpg", "tiny.rgba.png"});
  spec.count = 2;
  CHECK(names(*make_calibration(spec)) == std::vector<std::string>{"tiny.bmp", "tiny.jpg"});
  // Two folds cover the folder once.
  spec.count = 0;
  size_t covered = 0;
  for (int k = 1; k <= 2; ++k) {
    spec.shard_k = k;
    covered += make_calibration(spec)->size();
  }
  CHECK(covered == all.size());
}

TEST_CASE("a list file names the images, in its order, and bad folders, lists and shards are one-line errors") {
  const auto dir = seed_images();
  const auto list = std::filesystem::temp_directory_path() / fmt::format("trit-calib-list-{}.txt", ::getpid());
  {
    std::ofstream out(list);
    out << (dir / "tiny.png").string() << "\n\n" << (dir / "tiny.bmp").string() << "\n";
  }
  CalibrationSpec spec;
  spec.list = list.string();
  CHECK(names(*make_calibration(spec)) == std::vector<std::string>{"tiny.png", "tiny.bmp"});
  spec.shard_k = 3;
  spec.shard_n = 2;
  CHECK_THROWS_WITH_AS(make_calibration(spec), "cannot calibrate on shard 3/2: it must be K/N with 1 <= K <= N", Error);
  spec.shard_k = 3;
  spec.shard_n = 5;
  CHECK_THROWS_WITH_AS(make_calibration(spec), doctest::Contains("shard 3/5 of 2 images is empty"), Error);
  std::filesystem::remove(list);
  spec = {};
  spec.list = list.string();
  CHECK_THROWS_WITH_AS(make_calibration(spec), doctest::Contains("cannot read the calibration list"), Error);
  spec = {};
  spec.dir = (dir / "nowhere").string();
  CHECK_THROWS_WITH_AS(make_calibration(spec), doctest::Contains("is not a folder"), Error);
}

TEST_CASE("augmented views: the image itself first, then seeded crops and flips, the same from any thread") {
  CalibrationSpec spec;
  spec.dir = seed_images().string();
  spec.count = 2;
  spec.augment = 4;
  const auto source = make_calibration(spec);
  REQUIRE(source->size() == 8);
  CHECK(names(*source)[0] == "tiny.bmp");
  CHECK(names(*source)[1] == "tiny.bmp#view1");
  Metadata m;
  m.mean = {0, 0, 0};
  m.scale = {1, 1, 1};
  m.resize_shorter = 16;
  const auto plain = make_calibration(CalibrationSpec{spec.dir, "", 2, 1, 1, 1, 1, nullptr});
  CHECK(source->fitted(0, m, 12, 12).pixels == plain->fitted(0, m, 12, 12).pixels);  // view 0: the image
  CHECK(source->fitted(4, m, 12, 12).pixels == plain->fitted(1, m, 12, 12).pixels);
  // Every view the input's size; the views of one image differ; the same seed, the same views,
  // computed in parallel or not; another seed, others.
  std::vector<Image> once(8), again(8);
  for (size_t i = 0; i < 8; ++i) once[i] = source->fitted(i, m, 12, 12);
  tbb::parallel_for(size_t{0}, size_t{8}, [&](size_t i) { again[i] = source->fitted(i, m, 12, 12); });
  for (size_t i = 0; i < 8; ++i) {
    CAPTURE(i);
    CHECK(once[i].width == 12);
    CHECK(once[i].height == 12);
    CHECK(once[i].pixels == again[i].pixels);
  }
  CHECK(once[1].pixels != once[2].pixels);
  CHECK(once[1].pixels != once[0].pixels);
  spec.seed = 2;
  const auto other = make_calibration(spec);
  CHECK(other->fitted(1, m, 12, 12).pixels != once[1].pixels);
}

// Decoding and preprocessing: exact agreement with PIL, and clear errors.
#include <doctest/doctest.h>

#include <fstream>
#include <random>

#include "helpers.h"
#include "trit/error.h"
#include "trit/image.h"

using namespace trit;

TEST_CASE("decode, resize and centre crop equal PIL's bit for bit") {
  TRIT_REQUIRE_SHARED(data);
  const auto ref = test::testdata() / "pil";
  REQUIRE_MESSAGE(std::filesystem::exists(ref / "cat.bmp.sizes"), "tests/make_pil_reference.py did not run");
  Metadata m;
  m.resize_shorter = 256;
  for (const char* name : {"cat.bmp", "grace_hopper.bmp"}) {
    CAPTURE(name);
    std::ifstream sizes(ref / (std::string(name) + ".sizes"));
    int w[4], h[4];
    for (int i = 0; i < 4; ++i) sizes >> w[i] >> h[i];
    const Image decoded = decode_image((data / "photos" / name).string());
    const Image results[4] = {decoded, fit_to_input(decoded, m, 224, 224), resize_bilinear(decoded, 97, 61),
                              resize_bilinear(decoded, decoded.width * 3 / 2, decoded.height * 3 / 2)};
    const char* kinds[4] = {"decoded", "fit", "odd", "up"};
    for (int i = 0; i < 4; ++i) {
      CAPTURE(kinds[i]);
      const auto want = test::read_binary<uint8_t>(ref / (std::string(name) + "." + kinds[i] + ".rgb"));
      REQUIRE(results[i].width == w[i]);
      REQUIRE(results[i].height == h[i]);
      REQUIRE(results[i].pixels.size() == want.size());
      size_t differ = 0;
      for (size_t j = 0; j < want.size(); ++j) differ += results[i].pixels[j] != want[j];
      CHECK_MESSAGE(differ == 0, differ << " of " << want.size() << " values differ from PIL");
    }
  }
}

TEST_CASE("fitting resizes only the centre crop's window, with the whole resize's bits") {
  // A thin image makes a huge resized image around a small crop (fuzzing found a 55-byte BMP of
  // 194074 x 5 pixels: 9.9 million x 256 after resizing); only the window is computed.
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> d(0, 255);
  Metadata m;
  m.resize_shorter = 256;
  for (auto [w, h] : {std::pair{1500, 6}, std::pair{7, 900}, std::pair{333, 250}, std::pair{260, 256}}) {
    CAPTURE(w);
    CAPTURE(h);
    Image im{w, h, std::vector<uint8_t>(static_cast<size_t>(w) * h * 3)};
    for (auto& p : im.pixels) p = static_cast<uint8_t>(d(rng));
    const int64_t longer = int64_t{256} * std::max(w, h) / std::min(w, h);
    const Image whole = w <= h ? resize_bilinear(im, 256, static_cast<int32_t>(longer))
                               : resize_bilinear(im, static_cast<int32_t>(longer), 256);
    CHECK(fit_to_input(im, m, 224, 224).pixels == center_crop(whole, 224, 224).pixels);
  }
  Image bomb{194074, 5, std::vector<uint8_t>(194074 * 5 * 3, 9)};
  CHECK(fit_to_input(bomb, m, 224, 224).pixels == std::vector<uint8_t>(224 * 224 * 3, 9));
  Image line{1 << 24, 1, std::vector<uint8_t>(size_t{3} << 24, 1)};
  CHECK_THROWS_WITH(fit_to_input(line, m, 224, 224),
                    "cannot fit a 16777216x1 image: with its shorter side resized to 256 the longer one would be 4294967296");
}

TEST_CASE("normalize follows the metadata's channel order, mean and scale") {
  Image img{2, 1, {10, 20, 30, 40, 50, 60}};
  Metadata m;
  m.channel_order = ChannelOrder::BGR;
  m.mean = {1, 2, 3};
  m.scale = {1, 2, 4};
  std::vector<float> out(6);
  normalize(img, m, out);
  // Channel 0 is blue: (30 - 1) / 1, (60 - 1) / 1; channel 1 green: (20-2)/2, (50-2)/2; red: (10-3)/4...
  CHECK(out == std::vector<float>{29, 59, 9, 24, 1.75f, 9.25f});
}

TEST_CASE("a 1x1 image is stretched to the input, and thin images still fill the crop") {
  Image one{1, 1, {200, 100, 50}};
  Metadata m;
  m.resize_shorter = 256;
  const Image fitted = fit_to_input(one, m, 224, 224);
  CHECK(fitted.width == 224);
  CHECK(fitted.height == 224);
  CHECK(fitted.pixels[0] == 200);
  CHECK(fitted.pixels[224 * 224 * 3 - 1] == 50);
  Image thin{1000, 3, std::vector<uint8_t>(9000, 7)};
  const Image t = fit_to_input(thin, m, 224, 224);
  CHECK(t.width == 224);
  CHECK(t.height == 224);
}

TEST_CASE("images that cannot be read get one-line errors") {
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("trit-img-{}", ::getpid());
  std::filesystem::create_directories(dir);
  const auto empty = dir / "empty.jpg";
  std::ofstream(empty).close();
  CHECK_THROWS_WITH_AS(decode_image(empty.string()), doctest::Contains("empty.jpg': the file is empty"), Error);
  CHECK_THROWS_WITH_AS(decode_image(dir.string()), doctest::Contains("not a regular file"), Error);
  CHECK_THROWS_WITH_AS(decode_image((dir / "missing.png").string()),
                       doctest::Contains("missing.png': No such file or directory"), Error);
  const auto junk = dir / "junk.png";
  std::ofstream(junk) << "this is not an image";
  CHECK_THROWS_WITH_AS(decode_image(junk.string()), doctest::Contains("cannot read image '"), Error);
  // A PNG header claiming 12000 x 12000 pixels is refused before any pixel is decoded.
  const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                         0, 0, 0x2e, 0xe0, 0, 0, 0x2e, 0xe0, 8, 2, 0, 0, 0, 0, 0, 0, 0};
  CHECK_THROWS_WITH_AS(decode_image_bytes(png, "bomb.png"),
                       "cannot read image 'bomb.png': 12000x12000 pixels exceed the limit of 134217728", Error);
  CHECK_THROWS_WITH_AS(decode_image_bytes(png, "bomb.png", 1000), doctest::Contains("exceed the limit of 1000"), Error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a truncated JPEG is refused with a clear error") {
  TRIT_REQUIRE_SHARED(data);
  std::ifstream in(data / "photos" / "parrot.jpg", std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK_NOTHROW(decode_image_bytes(bytes, "whole.jpg"));
  for (size_t len : {size_t{2}, size_t{100}, bytes.size() / 3, bytes.size() - 2}) {
    CAPTURE(len);
    CHECK_THROWS_WITH_AS(decode_image_bytes(std::span(bytes).first(len), "cut.jpg"),
                         doctest::Contains("cannot read image 'cut.jpg': the JPEG data ends before its end-of-image marker"),
                         Error);
  }
}

TEST_CASE("a 30000 x 30000 PNG header and a zero-size one get clear errors") {
  uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                   0, 0, 0x75, 0x30, 0, 0, 0x75, 0x30, 8, 2, 0, 0, 0, 0, 0, 0, 0};
  CHECK_THROWS_WITH_AS(decode_image_bytes(png, "huge.png"),
                       "cannot read image 'huge.png': 30000x30000 pixels exceed the limit of 134217728", Error);
  png[18] = png[19] = 0;
  CHECK_THROWS_WITH_AS(decode_image_bytes(png, "empty.png"), "cannot read image 'empty.png': the image has no pixels", Error);
}

// Fuzz target: image decoding and preprocessing (resize, crop, normalize).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "trit/error.h"
#include "trit/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    // A small pixel cap keeps each input fast; the cap itself is under test.
    const trit::Image image = trit::decode_image_bytes(std::span(data, size), "fuzz.img", int64_t{1} << 20);
    trit::Metadata m;
    m.mean = {124, 116, 104};
    m.scale = {58, 57, 57};
    m.resize_shorter = 40;
    const trit::Image fitted = trit::fit_to_input(image, m, 32, 32);
    std::vector<float> x(3 * 32 * 32);
    trit::normalize(fitted, m, x);
  } catch (const trit::Error&) {
  }
  return 0;
}

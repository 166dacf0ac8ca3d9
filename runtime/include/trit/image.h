// Images: decoding (stb_image: JPEG, PNG and BMP only) and the preprocessing a model's metadata
// asks for.
//
// Preprocessing, in order (the torchvision / PIL evaluation recipe):
//   1. resize so the shorter side is metadata.resize_shorter (the longer side is scaled and
//      truncated, as torchvision does), with antialiased bilinear filtering as PIL computes it:
//      a triangle filter stretched by the downscale factor, horizontal pass first, each pass
//      rounded to 8 bits; when resize_shorter is 0 the image is resized straight to the input;
//   2. centre crop to the input's height and width (offsets rounded as torchvision rounds);
//   3. x = (pixel - mean[c]) / scale[c] in the model's channel order (RGB or BGR), C, H, W.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "trit/graph.h"

namespace trit {

// 8-bit RGB, rows top to bottom, pixels interleaved: pixels.size() == width * height * 3.
struct Image {
  int32_t width = 0;
  int32_t height = 0;
  std::vector<uint8_t> pixels;
};

// Images larger than this many pixels are refused before they are decoded.
inline constexpr int64_t kDefaultMaxPixels = int64_t{1} << 27;  // 134 M pixels, 402 MB as RGB

// Whether decode_image reads files of this name: the extensions .jpg, .jpeg, .png and .bmp, in
// any case. (The tools list folders with it.)
bool is_image_file(const std::string& path);

// Grayscale becomes three equal channels; alpha is dropped. Throws trit::Error
// "cannot read image '<path>': <reason>".
Image decode_image(const std::string& path, int64_t max_pixels = kDefaultMaxPixels);
Image decode_image_bytes(std::span<const uint8_t> bytes, const std::string& name,
                         int64_t max_pixels = kDefaultMaxPixels);

// Antialiased bilinear resize, as PIL's Image.resize(BILINEAR) computes it.
Image resize_bilinear(const Image& image, int32_t width, int32_t height);
// The centre width x height window; the image must be at least that large.
Image center_crop(const Image& image, int32_t width, int32_t height);
// The width x height window at (left, top), which must lie inside the image.
Image crop(const Image& image, int32_t left, int32_t top, int32_t width, int32_t height);
// Steps 1 and 2 above for a model with input [C, H, W].
Image fit_to_input(const Image& image, const Metadata& metadata, int32_t height, int32_t width);
// Step 3: writes C*H*W floats to out; the image must already be the input's size.
void normalize(const Image& image, const Metadata& metadata, std::span<float> out);
// The same on width * height * 3 bytes of RGB pixels (rows top to bottom) held elsewhere.
void normalize(std::span<const uint8_t> rgb, int32_t width, int32_t height, const Metadata& metadata, std::span<float> out);

}  // namespace trit

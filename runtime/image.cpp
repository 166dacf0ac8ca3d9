#include "trit/image.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "trit/error.h"

#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO  // we read files ourselves, so a directory or a FIFO gets a clear error
#define STBI_FAILURE_USERMSG
// Only the formats trit reads: fewer decoders, fewer bugs to inherit (fuzzing found an integer
// overflow in stb's PNM header parser; its GIF, PSD, TGA, HDR and PIC decoders are out too).
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#include <stb/stb_image.h>

namespace trit {
namespace {

// One pass of PIL's resampling along one axis (Pillow's Resample.c, 8 bits per channel): for
// each output index, a window of input indices and coefficients in fixed point with 22
// fractional bits. Replicated exactly, so trit's preprocessing equals PIL's bit for bit.
constexpr int kPrecisionBits = 32 - 8 - 2;

struct Taps {
  std::vector<int32_t> first, count;
  std::vector<int32_t> coeffs;  // count.size() * stride
  int32_t stride = 0;
};

// The taps of output indices [begin, end) of a resampling from `in` to `out` (entry i - begin).
Taps make_taps(int32_t in, int32_t out, int32_t begin, int32_t end) {
  const double scale = static_cast<double>(in) / out;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;  // bilinear: a triangle of radius 1
  Taps t;
  t.stride = static_cast<int32_t>(std::ceil(support)) * 2 + 1;
  const int32_t n_out = end - begin;
  t.first.resize(n_out);
  t.count.resize(n_out);
  t.coeffs.assign(static_cast<size_t>(n_out) * t.stride, 0);
  std::vector<double> k(t.stride);
  for (int32_t o = 0; o < n_out; ++o) {
    const int32_t i = begin + o;
    const double center = (i + 0.5) * scale;
    const int32_t lo = std::max(static_cast<int32_t>(center - support + 0.5), 0);
    const int32_t n = std::min(std::min(static_cast<int32_t>(center + support + 0.5), in) - lo, t.stride);
    double sum = 0.0;
    for (int32_t j = 0; j < n; ++j) {
      const double x = std::abs((j + lo - center + 0.5) / filterscale);
      k[j] = x < 1.0 ? 1.0 - x : 0.0;
      sum += k[j];
    }
    t.first[o] = lo;
    t.count[o] = n;
    for (int32_t j = 0; j < n; ++j) {
      const double v = (sum != 0.0 ? k[j] / sum : k[j]) * (1 << kPrecisionBits);
      t.coeffs[static_cast<size_t>(o) * t.stride + j] = static_cast<int32_t>(v < 0 ? v - 0.5 : v + 0.5);
    }
  }
  return t;
}

// Accumulators start at one half (round to nearest); at most 255 * 2^22 * (1 + rounding) < 2^31.
uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

// Walks a JPEG's marker segments before stb sees it, and refuses what Debian's stb_image (2.27)
// mishandles: a Huffman table of more than 256 codes (stb writes past its table: found by
// fuzzing, tests/fuzz/image/crash-9814...), and a file without an end-of-image marker (stb
// decodes a truncated file by filling the rest). Entropy-coded data after a scan is skipped to
// the next marker (0xFF followed by neither 0x00, a restart marker, nor another 0xFF).
void check_jpeg(std::span<const uint8_t> b, const std::string& ctx) {
  const size_t n = b.size();
  size_t i = 2;
  while (i < n) {
    if (b[i] != 0xFF) fail("{}: corrupt JPEG (no marker at byte {})", ctx, i);
    while (i < n && b[i] == 0xFF) ++i;  // fill bytes
    if (i >= n) break;
    const uint8_t marker = b[i++];
    if (marker == 0xD9) return;  // end of image
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;
    if (i + 2 > n) break;
    const size_t len = size_t{b[i]} << 8 | b[i + 1];
    if (len < 2) fail("{}: corrupt JPEG (a segment of length {})", ctx, len);
    if (i + len > n) break;
    if (marker == 0xC4) {  // Huffman tables: class/id, 16 counts, the symbols
      for (size_t p = i + 2; p < i + len;) {
        if (p + 17 > i + len) fail("{}: corrupt JPEG (a Huffman table is cut short)", ctx);
        size_t codes = 0;
        for (size_t k = 1; k <= 16; ++k) codes += b[p + k];
        if (codes > 256) fail("{}: corrupt JPEG (a Huffman table of {} codes; at most 256)", ctx, codes);
        p += 17 + codes;
        if (p > i + len) fail("{}: corrupt JPEG (a Huffman table is cut short)", ctx);
      }
    }
    i += len;
    if (marker == 0xDA) {  // a scan: skip its entropy-coded data
      while (i + 1 < n && !(b[i] == 0xFF && b[i + 1] != 0x00 && b[i + 1] != 0xFF && (b[i + 1] < 0xD0 || b[i + 1] > 0xD7)))
        ++i;
      if (i + 1 >= n) break;
    }
  }
  fail("{}: the JPEG data ends before its end-of-image marker (a truncated file?)", ctx);
}

// Walks a PNG's chunks up to the first image data chunk, and refuses one of length zero: Debian's
// stb_image (2.27) then copies zero bytes to a null pointer (undefined behaviour; found by
// fuzzing, tests/fuzz/image/crash-cb5a...). Lengths that run past the file are left to stb.
void check_png(std::span<const uint8_t> b, const std::string& ctx) {
  auto be32 = [&](size_t at) {
    return uint32_t{b[at]} << 24 | uint32_t{b[at + 1]} << 16 | uint32_t{b[at + 2]} << 8 | b[at + 3];
  };
  for (size_t i = 8; i + 8 <= b.size();) {
    const uint32_t len = be32(i);
    if (std::equal(b.begin() + i + 4, b.begin() + i + 8, "IDAT")) {
      if (len == 0) fail("{}: corrupt PNG (its first image data chunk is empty)", ctx);
      return;
    }
    if (len > b.size() - i - 8) return;
    i += 12 + size_t{len};
  }
}

}  // namespace

Image decode_image_bytes(std::span<const uint8_t> bytes, const std::string& name, int64_t max_pixels) {
  const std::string ctx = fmt::format("cannot read image '{}'", name);
  if (bytes.empty()) fail("{}: the file is empty", ctx);
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) fail("{}: the file is larger than 2 GB", ctx);
  const auto len = static_cast<int>(bytes.size());
  int w = 0, h = 0, channels = 0;
  // PNG: the size from the header, before stb (which refuses very large PNGs with a reason that
  // later format probes overwrite: "unknown image type").
  static constexpr uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() >= 24 && std::equal(kPng, kPng + 8, bytes.begin()) && std::equal(bytes.begin() + 12, bytes.begin() + 16, "IHDR")) {
    auto be32 = [&](size_t at) {
      return uint64_t{bytes[at]} << 24 | uint64_t{bytes[at + 1]} << 16 | uint64_t{bytes[at + 2]} << 8 | bytes[at + 3];
    };
    const uint64_t pw = be32(16), ph = be32(20);
    if (pw == 0 || ph == 0) fail("{}: the image has no pixels", ctx);
    if (pw > uint64_t{1} << 31 || ph > uint64_t{1} << 31 || pw * ph > static_cast<uint64_t>(max_pixels))
      fail("{}: {}x{} pixels exceed the limit of {}", ctx, pw, ph, max_pixels);
    check_png(bytes, ctx);
  }
  // A JPEG to stb: fill bytes 0xFF, then the start-of-image marker 0xD8.
  size_t soi = 0;
  while (soi < bytes.size() && bytes[soi] == 0xFF) ++soi;
  if (soi > 0 && soi < bytes.size() && bytes[soi] == 0xD8) check_jpeg(bytes.subspan(soi - 1), ctx);
  if (!stbi_info_from_memory(bytes.data(), len, &w, &h, &channels))
    fail("{}: {}", ctx, stbi_failure_reason() ? stbi_failure_reason() : "unknown image format");
  if (w < 1 || h < 1) fail("{}: the image has no pixels", ctx);
  if (int64_t{w} * h > max_pixels)
    fail("{}: {}x{} pixels exceed the limit of {}", ctx, w, h, max_pixels);
  unsigned char* data = stbi_load_from_memory(bytes.data(), len, &w, &h, &channels, 3);
  if (data == nullptr) fail("{}: {}", ctx, stbi_failure_reason() ? stbi_failure_reason() : "decoding failed");
  Image image;
  image.width = w;
  image.height = h;
  image.pixels.assign(data, data + static_cast<size_t>(w) * h * 3);
  stbi_image_free(data);
  return image;
}

bool is_image_file(const std::string& path) {
  const size_t dot = path.rfind('.');
  if (dot == std::string::npos || path.find('/', dot) != std::string::npos) return false;
  std::string ext = path.substr(dot + 1);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == "jpg" || ext == "jpeg" || ext == "png" || ext == "bmp";
}

Image decode_image(const std::string& path, int64_t max_pixels) {
  const std::string ctx = fmt::format("cannot read image '{}'", path);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("{}: {}", ctx, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail("{}: not a regular file", ctx);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: {}", ctx, std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("{}: read error", ctx);
  return decode_image_bytes(bytes, path, max_pixels);
}

// Images come from callers too (the embedding API): their size must match their pixels.
static void check_image(const Image& im) {
  if (im.width < 1 || im.height < 1 || im.pixels.size() != static_cast<size_t>(im.width) * im.height * 3)
    fail("cannot use a {}x{} image with {} bytes of pixels (RGB needs {})", im.width, im.height, im.pixels.size(),
         static_cast<int64_t>(im.width) * im.height * 3);
}

namespace {

// The window [left, left + out_w) x [top, top + out_h) of src resized to width x height, equal to
// resizing the whole image and cropping it, bit for bit: each output pixel of a separable pass
// depends only on its own taps, so only the window's columns (horizontal pass) over the source
// rows that the window's rows read (vertical pass) are computed. A thin image's resize (a
// 200000 x 5 BMP is 55 bytes) costs the window, not the 10 million x 256 image around it.
Image resize_window(const Image& src, int32_t width, int32_t height, int32_t left, int32_t top, int32_t out_w,
                    int32_t out_h) {
  constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);
  // Source rows the vertical pass reads (all of them when the height does not change).
  const bool same_h = height == src.height;
  const Taps ty = same_h ? Taps{} : make_taps(src.height, height, top, top + out_h);
  const int32_t row0 = same_h ? top : ty.first[0];
  const int32_t row1 = same_h ? top + out_h : ty.first[out_h - 1] + ty.count[out_h - 1];
  // Horizontal pass, rounded to 8 bits, then vertical pass, as PIL orders them.
  Image mid;
  mid.width = out_w;
  mid.height = row1 - row0;
  mid.pixels.resize(static_cast<size_t>(out_w) * mid.height * 3);
  const Taps tx = width == src.width ? Taps{} : make_taps(src.width, width, left, left + out_w);
  for (int32_t y = row0; y < row1; ++y) {
    const uint8_t* row = src.pixels.data() + static_cast<size_t>(y) * src.width * 3;
    uint8_t* dst = mid.pixels.data() + static_cast<size_t>(y - row0) * out_w * 3;
    if (width == src.width) {
      std::memcpy(dst, row + static_cast<size_t>(left) * 3, static_cast<size_t>(out_w) * 3);
      continue;
    }
    for (int32_t x = 0; x < out_w; ++x) {
      const int32_t* k = tx.coeffs.data() + static_cast<size_t>(x) * tx.stride;
      int32_t acc[3] = {kHalf, kHalf, kHalf};
      for (int32_t j = 0; j < tx.count[x]; ++j)
        for (int c = 0; c < 3; ++c) acc[c] += row[(tx.first[x] + j) * 3 + c] * k[j];
      for (int c = 0; c < 3; ++c) dst[x * 3 + c] = clip8(acc[c]);
    }
  }
  if (same_h) return mid;
  Image out;
  out.width = out_w;
  out.height = out_h;
  out.pixels.resize(static_cast<size_t>(out_w) * out_h * 3);
  const size_t row_len = static_cast<size_t>(out_w) * 3;
  std::vector<int32_t> acc(row_len);
  for (int32_t y = 0; y < out_h; ++y) {
    std::fill(acc.begin(), acc.end(), kHalf);
    const int32_t* k = ty.coeffs.data() + static_cast<size_t>(y) * ty.stride;
    for (int32_t j = 0; j < ty.count[y]; ++j) {
      const uint8_t* row = mid.pixels.data() + static_cast<size_t>(ty.first[y] + j - row0) * row_len;
      for (size_t e = 0; e < row_len; ++e) acc[e] += row[e] * k[j];
    }
    uint8_t* dst = out.pixels.data() + static_cast<size_t>(y) * row_len;
    for (size_t e = 0; e < row_len; ++e) dst[e] = clip8(acc[e]);
  }
  return out;
}

// torchvision's centre crop offset: int(round((size - crop) / 2.0)), round half to even.
int32_t crop_offset(int32_t size, int32_t crop) { return static_cast<int32_t>(std::nearbyint((size - crop) / 2.0)); }

}  // namespace

Image resize_bilinear(const Image& src, int32_t width, int32_t height) {
  check_image(src);
  if (width < 1 || height < 1) fail("cannot resize an image to {}x{}", width, height);
  return resize_window(src, width, height, 0, 0, width, height);
}

Image center_crop(const Image& image, int32_t width, int32_t height) {
  check_image(image);
  if (width > image.width || height > image.height)
    fail("cannot crop a {}x{} image to {}x{}", image.width, image.height, width, height);
  return crop(image, crop_offset(image.width, width), crop_offset(image.height, height), width, height);
}

Image crop(const Image& image, int32_t left, int32_t top, int32_t width, int32_t height) {
  check_image(image);
  if (left < 0 || top < 0 || width < 1 || height < 1 || int64_t{left} + width > image.width ||
      int64_t{top} + height > image.height)
    fail("cannot crop {}x{} at ({}, {}) from a {}x{} image", width, height, left, top, image.width, image.height);
  Image out;
  out.width = width;
  out.height = height;
  out.pixels.resize(static_cast<size_t>(width) * height * 3);
  for (int32_t y = 0; y < height; ++y)
    std::memcpy(out.pixels.data() + static_cast<size_t>(y) * width * 3,
                image.pixels.data() + (static_cast<size_t>(top + y) * image.width + left) * 3,
                static_cast<size_t>(width) * 3);
  return out;
}

Image fit_to_input(const Image& image, const Metadata& m, int32_t height, int32_t width) {
  check_image(image);
  if (m.resize_shorter == 0) {
    if (image.width == width && image.height == height) return image;
    return resize_bilinear(image, width, height);
  }
  const int32_t s = m.resize_shorter;
  const int64_t longer = int64_t{s} * std::max(image.width, image.height) / std::min(image.width, image.height);
  if (longer > INT32_MAX)
    fail("cannot fit a {}x{} image: with its shorter side resized to {} the longer one would be {}", image.width,
         image.height, s, longer);
  int32_t w = s, h = s;
  (image.width <= image.height ? h : w) = static_cast<int32_t>(longer);
  // A very thin image cannot give a crop of the input's size; stretch what is missing.
  w = std::max(w, width);
  h = std::max(h, height);
  if (w == image.width && h == image.height) return center_crop(image, width, height);
  return resize_window(image, w, h, crop_offset(w, width), crop_offset(h, height), width, height);
}

void normalize(const Image& image, const Metadata& m, std::span<float> out) {
  check_image(image);
  normalize(image.pixels, image.width, image.height, m, out);
}

void normalize(std::span<const uint8_t> rgb, int32_t width, int32_t height, const Metadata& m, std::span<float> out) {
  const size_t plane = static_cast<size_t>(width) * height;
  const size_t channels = m.mean.size();
  if (width < 1 || height < 1 || rgb.size() != plane * 3)
    fail("cannot normalize {} bytes as a {}x{} RGB image", rgb.size(), width, height);
  if (out.size() != plane * channels || (channels != 3 && channels != 1))
    fail("cannot normalize a {}x{} image into {} values for {} channels", width, height, out.size(), channels);
  for (size_t c = 0; c < channels; ++c) {
    // Model channel c reads RGB channel src (BGR reverses the order); a one-channel model reads
    // the mean of R, G and B.
    const size_t src = m.channel_order == ChannelOrder::BGR ? 2 - c : c;
    const float mean = m.mean[c], scale = m.scale[c];
    float* dst = out.data() + c * plane;
    for (size_t p = 0; p < plane; ++p) {
      const uint8_t* px = rgb.data() + p * 3;
      const float v = channels == 3 ? px[src] : (px[0] + px[1] + px[2]) / 3.0f;
      dst[p] = (v - mean) / scale;
    }
  }
}

}  // namespace trit

#include "trit/weight_codes.h"

#include "trit/error.h"

namespace trit {

int32_t max_code(WeightEncoding e) {
  switch (e) {
    case WeightEncoding::Int8PerChannel: return 127;
    case WeightEncoding::Int4Clustered: return 7;
    case WeightEncoding::TernaryClustered: return 1;
    case WeightEncoding::Float32: break;
  }
  return 0;
}

int32_t max_cluster_scale(WeightEncoding e) { return e == WeightEncoding::Int4Clustered ? 18 : 127; }

int64_t weight_code_bytes(WeightEncoding encoding, int64_t count) {
  switch (encoding) {
    case WeightEncoding::Float32: return count * 4;
    case WeightEncoding::Int8PerChannel: return count;
    case WeightEncoding::Int4Clustered: return (count + 1) / 2;
    case WeightEncoding::TernaryClustered: return (count + 3) / 4;
  }
  return -1;
}

int64_t cluster_count(const WeightLayout& w) {
  const int64_t o = w.shape[0], i = w.shape[1], taps = int64_t{w.shape[2]} * w.shape[3];
  if (w.encoding == WeightEncoding::Int8PerChannel) return o;
  if (w.cluster_size < 1) return 0;
  const int64_t per_filter = (i + w.cluster_size - 1) / w.cluster_size;
  return w.cluster_shape == ClusterShape::Kernels ? o * per_filter : o * taps * per_filter;
}

std::vector<uint8_t> pack_codes(WeightEncoding e, std::span<const int8_t> codes) {
  std::vector<uint8_t> out;
  switch (e) {
    case WeightEncoding::Int8PerChannel:
      out.assign(codes.begin(), codes.end());
      break;
    case WeightEncoding::Int4Clustered:
      out.assign((codes.size() + 1) / 2, 0);
      for (size_t j = 0; j < codes.size(); ++j)
        out[j / 2] |= static_cast<uint8_t>((codes[j] & 0xF) << (4 * (j % 2)));
      break;
    case WeightEncoding::TernaryClustered:
      out.assign((codes.size() + 3) / 4, 0);
      for (size_t j = 0; j < codes.size(); ++j) {
        const uint8_t bits = codes[j] == 0 ? 0 : codes[j] > 0 ? 1 : 2;
        out[j / 4] |= static_cast<uint8_t>(bits << (2 * (j % 4)));
      }
      break;
    case WeightEncoding::Float32:
      fail("pack_codes: float32 weights have no integer codes");
  }
  return out;
}

std::vector<int8_t> unpack_codes(const WeightLayout& w, std::span<const uint8_t> bytes, const std::string& layer) {
  const auto n = static_cast<size_t>(w.count());
  if (static_cast<int64_t>(bytes.size()) < weight_code_bytes(w.encoding, w.count()))
    fail("layer '{}': {} bytes of codes for {} weights", layer, bytes.size(), n);
  std::vector<int8_t> codes(n);
  for (size_t j = 0; j < n; ++j) {
    int32_t v = 0;
    switch (w.encoding) {
      case WeightEncoding::Int8PerChannel:
        v = static_cast<int8_t>(bytes[j]);
        if (v == -128) fail("layer '{}': int8 weight code -128 is outside [-127, 127]", layer);
        break;
      case WeightEncoding::Int4Clustered:
        v = (bytes[j / 2] >> (4 * (j % 2))) & 0xF;
        if (v >= 8) v -= 16;
        if (v == -8) fail("layer '{}': int4 weight code -8 is outside [-7, 7]", layer);
        break;
      case WeightEncoding::TernaryClustered: {
        const int bits = (bytes[j / 4] >> (2 * (j % 4))) & 3;
        if (bits == 3) fail("layer '{}': ternary weight code 3 is invalid", layer);
        v = bits == 0 ? 0 : bits == 1 ? 1 : -1;
        break;
      }
      case WeightEncoding::Float32:
        fail("layer '{}': float32 weights have no integer codes", layer);
    }
    codes[j] = static_cast<int8_t>(v);
  }
  return codes;
}

int64_t cluster_of(const WeightLayout& w, int32_t o, int32_t i, int32_t ky, int32_t kx) {
  if (w.encoding == WeightEncoding::Int8PerChannel) return o;
  const int64_t per = (int64_t{w.shape[1]} + w.cluster_size - 1) / w.cluster_size;
  if (w.cluster_shape == ClusterShape::Kernels) return o * per + i / w.cluster_size;
  const int64_t tap = (int64_t{o} * w.shape[2] + ky) * w.shape[3] + kx;
  return tap * per + i / w.cluster_size;
}

}  // namespace trit

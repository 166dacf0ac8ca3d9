#include "int8/prepare.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

#include "trit/error.h"

namespace trit::k8 {
namespace {

// L.compact (and L.nr, L.blocks) from the layer's codes and cluster scales, laid out as
// pack_weights lays out W: both packed through the path's own pack_weights, then read element by
// element. One block of nr output channels at a time: every path's layout is block after block
// ([blocks][nr * k] elements, the last block's missing channels 0), and nr depends on o alone, so
// a block packed alone (nr channels, or o when there is one block) is that block of the whole
// layout; a path that answered otherwise leaves the layer expanded. The transient memory is then
// four blocks' bytes, not four times the layer's (which set infer's peak on ResNet-50).
// Leaves L as it was when a group of the layout mixes clusters, or when the compact form is no
// smaller than the expanded layout.
void make_compact(ConvLayer& L, const iref::LayerWeights& w, const KernelTable& table) {
  const WeightLayout& wt = w.layout;
  const auto [o_n, i_n, kh, kw] = wt.shape;
  ConvLayer shape;  // pack_weights reads a layer's o and k only: nr and blocks from a k = group probe
  shape.o = L.o;
  shape.k = table.group;
  {
    const std::vector<int8_t> probe(static_cast<size_t>(shape.o) * shape.k, 0);
    table.pack_weights(shape, probe.data());
  }
  const int32_t nr = shape.nr, block_o = shape.blocks == 1 ? L.o : nr;
  // Block b's codes or scales as a [block_o][(ky, kx, c)] matrix, packed.
  std::vector<int8_t> m;
  auto packed_block = [&](int32_t b, bool scales) {
    m.assign(static_cast<size_t>(block_o) * L.k, 0);
    for (int32_t j = 0; j < block_o && b * nr + j < o_n; ++j) {
      const int32_t o = b * nr + j;
      for (int32_t i = 0; i < i_n; ++i)
        for (int32_t ky = 0; ky < kh; ++ky)
          for (int32_t kx = 0; kx < kw; ++kx)
            m[int64_t{j} * L.k + (ky * kw + kx) * L.cs + i] =
                scales ? static_cast<int8_t>(w.scales[cluster_of(wt, o, i, ky, kx)])  // in [1, 127]
                       : w.codes[((int64_t{o} * i_n + i) * kh + ky) * kw + kx];
    }
    ConvLayer P;
    P.o = block_o;
    P.k = L.k;
    table.pack_weights(P, m.data());
    return P;
  };
  CompactWeights c;
  c.bits = wt.encoding == WeightEncoding::TernaryClustered ? 2 : 4;
  c.nr = nr;
  c.group = table.group;
  const int64_t row_n = int64_t{nr} * c.group, block_rows = L.k / c.group;
  const int64_t elements = int64_t{shape.blocks} * nr * L.k;
  c.rows = int64_t{shape.blocks} * block_rows;
  c.codes.assign(static_cast<size_t>(elements * c.bits / 8), 0);
  c.row_scale.resize(static_cast<size_t>(c.rows));
  std::unordered_map<std::string, uint32_t> distinct;  // scale row (nr bytes) -> its index
  std::string row(static_cast<size_t>(nr), '\0');
  for (int32_t b = 0; b < shape.blocks; ++b) {
    const ConvLayer packed_code = packed_block(b, false), packed_scale = packed_block(b, true);
    if (packed_code.nr != nr || packed_code.blocks != 1 || packed_code.k != L.k) return;
    c.elem_bytes = static_cast<int32_t>(packed_code.weights.size() / (int64_t{nr} * L.k));
    auto element = [&](const ConvLayer& P, int64_t e) -> int32_t {
      if (c.elem_bytes == 1) return reinterpret_cast<const int8_t*>(P.weights.data())[e];
      return reinterpret_cast<const int16_t*>(P.weights.data())[e];
    };
    for (int64_t br = 0; br < block_rows; ++br) {
      const int64_t r = b * block_rows + br;
      for (int32_t j = 0; j < nr; ++j) {
        // The group's scale: that of its nonzero codes (one, or the group mixes clusters and the
        // layer stays expanded), else any of its scales (zero codes expand to 0 whatever it is).
        int32_t nonzero = 0, any = 0;
        for (int32_t t = 0; t < c.group; ++t) {
          const int64_t be = br * row_n + int64_t{j} * c.group + t, e = r * row_n + int64_t{j} * c.group + t;
          const int32_t k = element(packed_code, be), s = element(packed_scale, be);
          any = std::max(any, s);
          if (k != 0) {
            if (nonzero != 0 && nonzero != s) return;
            nonzero = s;
          }
          const uint32_t bits = c.bits == 2 ? (k > 0 ? 1u : k < 0 ? 2u : 0u) : static_cast<uint32_t>(k) & 15u;
          c.codes[static_cast<size_t>(e * c.bits / 8)] |= static_cast<uint8_t>(bits << (e * c.bits % 8));
        }
        row[j] = static_cast<char>(nonzero != 0 ? nonzero : any);
      }
      const auto [it, added] = distinct.emplace(row, static_cast<uint32_t>(distinct.size()));
      if (added) c.scale_rows.insert(c.scale_rows.end(), row.begin(), row.end());
      c.row_scale[static_cast<size_t>(r)] = it->second;
    }
  }
  if (c.bytes() >= c.expanded_bytes()) return;
  L.nr = nr;
  L.blocks = shape.blocks;
  L.compact = std::move(c);
}

}  // namespace

ConvLayer prepare_conv(const ConvSpec& spec, const KernelTable& table, const std::string& name) {
  const iref::Requant& rq = *spec.requant;
  const WeightLayout& wt = spec.weights.layout;
  const auto [o_n, i_n, kh, kw] = wt.shape;
  ConvLayer L;
  L.c = spec.in.c;
  L.cs = channel_stride(L.c);
  L.h = spec.in.h;
  L.w = spec.in.w;
  L.o = o_n;
  L.out_int32 = spec.out_int32;
  L.ocs = L.out_int32 ? o_n : channel_stride(o_n);
  L.oh = spec.out.h;
  L.ow = spec.out.w;
  L.window = spec.window;
  if (int64_t{kh} * kw * L.cs > 65536)
    fail("cannot prepare layer '{}' for the fast kernels: {} taps per output exceed 65536", name, int64_t{kh} * kw * L.cs);
  L.k = kh * kw * L.cs;
  L.in_signed = spec.in_signed;
  L.in_xor = L.in_signed && !spec.in_biased ? 0x80 : 0;
  L.in_zero = L.in_signed ? 0x80 : 0;
  const Window& w = L.window;
  L.direct = kh == 1 && kw == 1 && w.stride_h == 1 && w.stride_w == 1 && w.pad_top == 0 && w.pad_left == 0 &&
             w.pad_bottom == 0 && w.pad_right == 0 && L.in_xor == 0;
  L.tap_lda = int64_t{w.stride_w} * L.cs;
  for (int32_t ky = 0; ky < kh; ++ky) L.tap_offsets.push_back(int64_t{ky} * L.w * L.cs);
  // W = code * cluster scale (1 for int8 per channel), straight from the codes: checked and
  // summed per channel first, then (unless the layer stays packed) written as W[o][(ky, kx, c)]
  // for pack_weights. No intermediate copy of the whole layer: prepare's peak memory is the
  // codes and W, or the codes and a few blocks when packed.
  std::vector<int64_t> sum(o_n, 0), abs_sum(o_n, 0);
  const bool per_channel = wt.encoding == WeightEncoding::Int8PerChannel;
  const auto codes = spec.weights.codes;
  const auto scales = spec.weights.scales;
  auto for_each_weight = [&](auto&& f) {
    for (int32_t o = 0; o < o_n; ++o)
      for (int32_t i = 0; i < i_n; ++i)
        for (int32_t ky = 0; ky < kh; ++ky)
          for (int32_t kx = 0; kx < kw; ++kx) {
            const int32_t code = codes[((int64_t{o} * i_n + i) * kh + ky) * kw + kx];
            f(o, int64_t{o} * L.k + (ky * kw + kx) * L.cs + i,
              per_channel ? code : code * int32_t{scales[cluster_of(wt, o, i, ky, kx)]});
          }
  };
  for_each_weight([&](int32_t o, int64_t, int32_t v) {
    if (v < -127 || v > 127)
      fail("cannot prepare layer '{}' for the fast kernels: weight {} of output {} does not fit 8 bits", name, v, o);
    sum[o] += v;
    abs_sum[o] += std::abs(v);
  });
  // Packed first (it never allocates the expanded layout), W's layout where it does not apply.
  if (spec.packed && (wt.encoding == WeightEncoding::TernaryClustered || wt.encoding == WeightEncoding::Int4Clustered))
    make_compact(L, spec.weights, table);
  if (L.compact.bits == 0) {
    std::vector<int8_t> wk(static_cast<size_t>(o_n) * L.k, 0);
    for_each_weight([&](int32_t, int64_t at, int32_t v) { wk[at] = static_cast<int8_t>(v); });
    table.pack_weights(L, wk.data());
  }
  const size_t padded = static_cast<size_t>(L.blocks) * L.nr;
  L.mult.assign(padded, 0);
  L.bias.assign(padded, 0);
  L.shl.assign(padded, 0);
  L.shr.assign(padded, 0);
  L.vmin.assign(padded, std::numeric_limits<int64_t>::min());
  L.vmax.assign(padded, std::numeric_limits<int64_t>::max());
  for (int32_t o = 0; o < o_n; ++o) {
    const int32_t s = rq.shift[o];
    L.mult[o] = rq.multiplier[o];
    // The s8 input's +128 and the rounding constant, folded (layer.h).
    L.bias[o] = rq.bias[o] - (L.in_signed ? 128 * sum[o] * rq.multiplier[o] : 0) + (s > 0 ? int64_t{1} << (s - 1) : 0);
    if (s >= 0) {
      L.shr[o] = s;
    } else {
      L.shl[o] = -s;
      L.vmin[o] = -(int64_t{1} << 33);
      L.vmax[o] = int64_t{1} << 33;
      L.shifts_right = false;
    }
  }
  L.lo = rq.lo;
  L.hi = rq.hi;
  L.fits32 = L.shifts_right;
  L.unit_mult = true;
  for (int32_t o = 0; o < o_n; ++o) {
    L.fits32 = L.fits32 && 255 * abs_sum[o] * L.mult[o] + std::abs(L.bias[o]) < (int64_t{1} << 31);
    L.unit_mult = L.unit_mult && L.mult[o] == 1;
  }
  if (L.fits32) {
    L.mult32.assign(L.mult.begin(), L.mult.end());
    L.bias32.assign(L.bias.begin(), L.bias.end());
    L.shr32.assign(L.shr.begin(), L.shr.end());
  }
  return L;
}

}  // namespace trit::k8

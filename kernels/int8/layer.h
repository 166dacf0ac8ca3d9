// The fast integer pipeline's data: 8-bit activation tensors and prepared layers.
//
// These kernels compute exactly what the integer reference (int_ref.h) computes, on a layout
// made for vectors. Every path (ref, avx2, avx512vnni, amx) equals iref bit for bit; the tests sweep
// shapes and whole models to hold them to it.
//
// Activation layout: a batch of 8-bit tensors is NHWC bytes with a channel stride
// cs = round_up(C, 4): element (n, y, x, c) lives at ((n * H + y) * W + x) * cs + c. Channels
// [C, cs) are padding and hold 0 (every kernel that writes a tensor writes them). u8 tensors
// hold their value; s8 tensors hold the int8 value's two's-complement byte, except an s8 graph
// input that only convolutions read, which holds value + 128 ("biased", so that kernels read
// it in place). The graph's int32 outputs are NHWC int32 with stride C (no padding).
//
// A convolution or fully connected layer is a GEMM over rows m = (n, oy, ox) of the output and
// columns o, with K = KH * KW * cs taps in the order (ky, kx, c). Weights are int8: every
// encoding expands exactly to W = code * cluster scale in [-127, 127] (trit/weight_codes.h), the padded
// channels' weights are 0. The kernels read u8 inputs: an s8 input is read as a + 128 (its
// byte XOR 0x80), and the offset's contribution, -128 * sum_k W[o][k], is folded into the
// bias at prepare time, so the inner loop never sees it. Zero padding of the window reads the
// input's zero: 0 for u8, 128 for a shifted s8.
//
// Rows reach the dot products two ways. Gathered: a tile's rows are copied (im2col) into
// scratch, K contiguous bytes each. In place (implicit GEMM): when a tile's rows lie in one
// output row, every tap of theirs falls inside the input, and the input needs no XOR, row r's
// taps of kernel row ky are kw * cs contiguous bytes at base + tap_offsets[ky] + r * tap_lda,
// already in K order; the kernels then read the input itself.
//
// A residual add fused into the epilogue (ConvLayer::residual, kept by a ResNet block's last
// convolution): the byte the epilogue below gives for (m, o) is not stored but goes on through
// the add node it feeds, add(byte, r) with r the residual tensor's byte at the same (m, o)
// (AddParams add: a is this layer's output, b the residual), exactly as that node would compute
// it on the stored bytes; the result, in [add.lo, add.hi], is what the layer writes. The residual
// has the output's layout; the output may be the residual itself (every path reads an element
// before it writes it, within one call). Padded channels stay 0 (add(0, 0) is 0 for any params).
//
// Bounds: accumulators are exact in int32: sum_k W * a' with |W| <= 127, a' <= 255 and
// K <= 2^16 (checked at prepare) stays below 127 * 255 * 2^16 < 2^31.
//
// Epilogue (requant.h, rewritten with the offsets folded): for output channel o,
//     v = acc * mult[o] + bias[o]                       (int64; bias includes the rounding 2^(s-1))
//     v = clamp(v, vmin[o], vmax[o]) << shl[o] >> shr[o]   (one of shl, shr is 0)
//     out = clamp(v, lo, hi)
// which equals rq::requantize(acc_true, multiplier, bias_true, s, lo, hi): for s > 0 the
// rounding constant sits in bias and shr = s; for s <= 0, shl = -s and [vmin, vmax] =
// [-2^33, 2^33], which changes no result after the final clamp to 32 bits but keeps the shift
// from overflowing. For s > 0, [vmin, vmax] is the whole int64 range.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "trit/types.h"

namespace trit::k8 {

constexpr int32_t channel_stride(int32_t c) { return (c + 3) & ~3; }

// Bytes aligned to 64, for packed weights and activations. Move-only.
class AlignedBytes {
 public:
  AlignedBytes() = default;
  explicit AlignedBytes(size_t size);
  std::byte* data() { return data_.get(); }
  const std::byte* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(std::byte* p) const;
  };
  std::unique_ptr<std::byte[], Free> data_;
  size_t size_ = 0;
};

enum class Isa : int32_t { Ref = 0, Avx2 = 1, Avx512Vnni = 2, Amx = 3 };

// A ternary or int4 layer's weights kept packed (Model::Options::packed_weights): the path's
// packed layout (ConvLayer::weights, as pack_weights writes it) with each element replaced by its
// code, and the cluster scales beside, from which expand() rebuilds that layout bit for bit.
//
// The packed layout is a sequence of rows of nr * g elements: g consecutive elements (the path's
// KernelTable::group: a VNNI quad, an AVX2 pair) of each of nr output channels. Within a row,
// every element of output j that has a nonzero code has one scale s_j (a cluster never splits a
// group: clusters of a multiple of g input channels, or all of a channel's taps); an element is
// code * s_j, stored as int8 or int16 as the path stores weights (elem_bytes).
//   codes: `bits` per element in layout order, lowest bits first: 2 for ternary (0 -> 0,
//          1 -> +1, 2 -> -1, the file's code), 4 for int4 (two's complement).
//   scale_rows: distinct rows of nr scales (the same clusters recur across taps and rows);
//          row r's scales are scale_rows[row_scale[r] * nr, +nr). Padding scales are 0.
// Kept only where it is smaller than the expanded layout (never on the ref path, whose rows of
// one channel would need an index per 4 weights).
struct CompactWeights {
  int32_t bits = 0;        // 2 or 4; 0: the layer is expanded (ConvLayer::weights holds it)
  int32_t nr = 0;          // output channels per row (the layer's nr)
  int32_t group = 0;       // g
  int32_t elem_bytes = 0;  // 1 (int8) or 2 (int16)
  int64_t rows = 0;
  std::vector<uint8_t> codes;
  std::vector<uint32_t> row_scale;
  std::vector<uint8_t> scale_rows;
  // Bytes of the layout expand() writes, and bytes held here.
  int64_t expanded_bytes() const { return rows * nr * group * elem_bytes; }
  int64_t bytes() const {
    return static_cast<int64_t>(codes.size() + row_scale.size() * sizeof(uint32_t) + scale_rows.size());
  }
};

// out[j] = clamp(round_shift((a[j] << la) + (b[j] << lb), s), lo, hi) over 8-bit values, the
// reference's add with F - fa = la, F - fb = lb, F - fo = s. la, lb in [0, 24]; s in [-24, 48].
struct AddParams {
  bool a_signed, b_signed, out_signed;
  int32_t la, lb, s, lo, hi;
};

// One convolution or fully connected layer, prepared for one kernel path (prepare_conv).
struct ConvLayer {
  // Input [H, W, cs] per image and output [oh, ow, ocs] per image (ocs = o for int32 output).
  int32_t c = 0, cs = 0, h = 0, w = 0;
  int32_t o = 0, ocs = 0, oh = 0, ow = 0;
  Window window;
  int32_t k = 0;            // KH * KW * cs, a multiple of 4
  bool in_signed = false;   // the input is s8: kernels read value + 128 (bias folded)
  uint8_t in_xor = 0;       // 0x80 when the s8 input is stored unbiased: byte ^ 0x80 = value + 128
  uint8_t in_zero = 0;      // the byte a padded tap reads: 0, or 0x80 for s8
  int64_t tap_lda = 0;      // in place: bytes from one row's input to the next row's (stride_w * cs)
  std::vector<int64_t> tap_offsets;  // in place: per kernel row ky, ky * w * cs
  bool out_int32 = false;   // writes int32 (a graph output), else bytes
  bool direct = false;      // 1x1, stride 1, no pads, u8 input: A rows are the input itself
  bool shifts_right = true; // every channel has shl == 0 and the whole-range clamp
  int32_t nr = 0;           // output channels per packed block (the path's)
  int32_t blocks = 0;       // ceil(o / nr)
  AlignedBytes weights;     // the path's packed layout (empty when compact)
  CompactWeights compact;   // packed weights: expanded per run into a buffer the caller owns
  // Epilogue, per output channel, padded to blocks * nr with zeros (padded channels write 0).
  std::vector<int64_t> mult, bias, vmin, vmax, shl, shr;
  int32_t lo = 0, hi = 255;
  // The same epilogue in int32, when it is exact there: every shift >= 0 and, for every
  // channel, 255 * sum_k |W[o][k]| * mult + |bias| < 2^31 (so acc * mult + bias cannot
  // overflow; an arithmetic shift by 31 or more of such a value is its floor, as in int64).
  // unit_mult: every mult is 1 (clustered weights), so kernels may skip the multiplication.
  bool fits32 = false, unit_mult = false;
  std::vector<int32_t> mult32, bias32, shr32;
  // The fused residual add (above): conv() then reads the residual tensor and writes add's bytes.
  bool residual = false;
  AddParams add{};
};

// Pools over NHWC bytes of one image. is_signed: the tensor is s8.
struct PoolParams {
  int32_t cs, h, w, oh, ow;
  Window window;
  bool is_signed, count_include_pad;
  int32_t fi, fo, lo, hi;  // average pools: exponents in and out, output range
};

}  // namespace trit::k8

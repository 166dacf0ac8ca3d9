// Requantization: the one definition of trit's rounding and saturation.
//
// Every integer path (the scalar reference, AVX2, AVX-512 VNNI) calls or mirrors exactly these
// functions; a kernel that rounds differently is wrong.
//
// Scheme: a layer's int32 accumulator `acc` holds the value acc * 2^-(f_in + e_o), where f_in is
// the input's exponent and e_o the weights' exponent of output channel o. The output m (exponent
// f_out) is
//     m = saturate(round_shift(acc * multiplier_o + bias_o, shift_o), lo, hi)
//     shift_o = f_in + e_o - f_out
// with multiplier_o the channel's integer scale (int8 weights; 1 for clustered weights, whose
// scales are applied inside the sum), bias_o at the accumulator's scale, and [lo, hi] the output
// type's range ([0, 255] for u8, which is also where a fused ReLU clips; [-128, 127] for s8).
//
// Bounds: |acc| < 2^31 (see int_ref.h), multiplier in [1, 127], |bias| < 2^31, so
// acc * multiplier + bias stays below 2^39 in int64; shift in [-24, 62].
//
// These are always inlined: the x86/ translation units include this header with AVX-512 flags,
// and an out-of-line copy (a weak symbol) compiled there could be the one the linker keeps
// for every caller. tests check the x86/ objects define no weak symbols.
#pragma once

#include <cstdint>

#define TRIT_INLINE [[gnu::always_inline]] inline

namespace trit::rq {

// Round half up (toward +infinity), then shift: floor((v + 2^(s-1)) / 2^s) for s > 0 (arithmetic
// shift right of a negative int64 is floor in C++20); for s <= 0 a left shift by -s, exact while
// the result stays within +-2^62 and saturated beyond (every caller saturates to 32 bits after,
// so the clamp changes no result). Defined for every s and every |v| < 2^61; s > 62 gives 0.
TRIT_INLINE constexpr int64_t round_shift(int64_t v, int32_t s) {
  constexpr int64_t kLimit = int64_t{1} << 62;
  if (s > 62) return 0;
  if (s > 0) return (v + (int64_t{1} << (s - 1))) >> s;
  if (v == 0 || s == 0) return v;
  if (s < -61 || (v > 0 ? v > (kLimit >> -s) : -v > (kLimit >> -s))) return v > 0 ? kLimit : -kLimit;
  return v * (int64_t{1} << -s);
}

TRIT_INLINE constexpr int32_t saturate(int64_t v, int32_t lo, int32_t hi) {
  return static_cast<int32_t>(v < lo ? lo : v > hi ? hi : v);
}

TRIT_INLINE constexpr int32_t requantize(int64_t acc, int32_t multiplier, int64_t bias, int32_t shift, int32_t lo,
                             int32_t hi) {
  return saturate(round_shift(acc * multiplier + bias, shift), lo, hi);
}

// Rounded division for averages: round half up of num / den, den > 0.
TRIT_INLINE constexpr int64_t round_div(int64_t num, int64_t den) {
  const int64_t q = num / den, r = num % den;  // C++ truncates toward zero
  // Compare 2r with den on the right side of zero.
  if (r >= 0) return 2 * r >= den ? q + 1 : q;
  return -2 * r > den ? q - 1 : q;
}

// An average, rescaled: round(sum * 2^(fo - fi) / count), exactly, count > 0, |fo - fi| <= 24.
TRIT_INLINE constexpr int64_t rescaled_mean(int64_t sum, int64_t count, int32_t fi, int32_t fo) {
  return fo >= fi ? round_div(sum * (int64_t{1} << (fo - fi)), count) : round_div(sum, count * (int64_t{1} << (fi - fo)));
}

}  // namespace trit::rq

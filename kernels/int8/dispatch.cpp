#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <cstdlib>
#include <cstring>
#include <new>

#include "int8/table.h"
#include "trit/error.h"

namespace trit::k8 {

AlignedBytes::AlignedBytes(size_t size) : size_(size) {
  const size_t rounded = (size + 63) / 64 * 64;
  void* p = rounded == 0 ? nullptr : std::aligned_alloc(64, rounded);
  if (rounded != 0 && p == nullptr) throw std::bad_alloc();
  if (p != nullptr) std::memset(p, 0, rounded);
  data_.reset(static_cast<std::byte*>(p));
}

void AlignedBytes::Free::operator()(std::byte* p) const { std::free(p); }

const char* to_string(Isa isa) {
  switch (isa) {
    case Isa::Ref: return "ref";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512Vnni: return "avx512vnni";
    case Isa::Amx: return "amx";
  }
  return "?";
}

namespace {

struct CpuFeatures {
  bool avx2 = false, avx512vnni = false, amx = false;
};

// CPUID says what the core implements; XGETBV says which register state the OS saves. AVX2
// needs XMM and YMM state (XCR0 bits 1, 2); AVX-512 also the opmask and ZMM state (bits 5-7);
// AMX also the tile configuration and data (bits 17, 18), and on Linux the process's permission
// to use the tile data, asked once here (arch_prctl ARCH_REQ_XCOMP_PERM; without it the first
// tile instruction faults). The amx path runs the avx512vnni path's code beside the tiles.
CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid(1, a, b, c, d);
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12);
  if (!osxsave) return f;
  uint32_t xcr0_lo, xcr0_hi;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool ymm_state = (xcr0_lo & 0x6) == 0x6, zmm_state = (xcr0_lo & 0xe6) == 0xe6;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5), bmi2 = b & (1u << 8);
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17), avx512bw = b & (1u << 30),
             avx512vl = b & (1u << 31), vnni = c & (1u << 11);
  f.avx2 = ymm_state && avx2 && fma && bmi2;
  f.avx512vnni = f.avx2 && zmm_state && avx512f && avx512dq && avx512bw && avx512vl && vnni;
  const bool amx_tile = d & (1u << 24), amx_int8 = d & (1u << 25), tile_state = (xcr0_lo & 0x60000) == 0x60000;
#if defined(__linux__)
  constexpr long kReqXcompPerm = 0x1023, kXtileData = 18;
  f.amx = f.avx512vnni && amx_tile && amx_int8 && tile_state && syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) == 0;
#endif
#endif
  return f;
}

const CpuFeatures& features() {
  static const CpuFeatures f = detect();
  return f;
}

}  // namespace

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Ref: return true;
    case Isa::Avx2: return features().avx2 && avx2_table() != nullptr;
    case Isa::Avx512Vnni: return features().avx512vnni && avx512vnni_table() != nullptr;
    case Isa::Amx: return features().amx && amx_table() != nullptr;
  }
  return false;
}

Isa parse_isa(const char* text) {
  for (Isa isa : {Isa::Ref, Isa::Avx2, Isa::Avx512Vnni, Isa::Amx})
    if (std::strcmp(text, to_string(isa)) == 0) return isa;
  fail("unknown instruction set '{}': expected ref, avx2, avx512vnni or amx", text);
}

const KernelTable& table_for(Isa isa) {
  if (!isa_supported(isa)) fail("instruction set '{}' is not available on this CPU", to_string(isa));
  switch (isa) {
    case Isa::Avx2: return *avx2_table();
    case Isa::Avx512Vnni: return *avx512vnni_table();
    case Isa::Amx: return *amx_table();
    case Isa::Ref: break;
  }
  return ref_table();
}

Isa select_isa() {
  if (const char* forced = std::getenv("TRIT_ISA"); forced != nullptr && *forced != '\0') {
    const Isa isa = parse_isa(forced);
    if (!isa_supported(isa)) fail("TRIT_ISA={}: this CPU cannot run it", forced);
    return isa;
  }
  for (Isa isa : {Isa::Amx, Isa::Avx512Vnni, Isa::Avx2})
    if (isa_supported(isa)) return isa;
  return Isa::Ref;
}

}  // namespace trit::k8

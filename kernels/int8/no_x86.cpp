// Builds for other architectures: no x86 paths; the ref path runs.
#include "int8/table.h"

namespace trit::k8 {
const KernelTable* avx2_table() { return nullptr; }
const KernelTable* avx512vnni_table() { return nullptr; }
const KernelTable* amx_table() { return nullptr; }
}  // namespace trit::k8

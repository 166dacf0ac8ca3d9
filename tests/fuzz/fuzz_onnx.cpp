// Fuzz target: the ONNX import (protobuf parsing, graph checks, batch-norm folding).
#include <cstddef>
#include <cstdint>
#include <string>

#include "onnx_import.h"
#include "trit/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    trit::import_onnx_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz.onnx");
  } catch (const trit::Error&) {
  }
  return 0;
}

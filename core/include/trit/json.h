// JSON string quoting for the tools' output (infer --json, trit-eval --json, conversion reports).
// Shared by the tools and the converter; not part of the installed API.
#pragma once

#include <string>

#include <fmt/format.h>

namespace trit {

// s as a JSON string literal: quotes and backslashes escaped, control characters as \uXXXX.
inline std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += {'\\', static_cast<char>(c)};
    else if (c < 0x20) out += fmt::format("\\u{:04x}", c);
    else out += static_cast<char>(c);
  }
  return out + "\"";
}

}  // namespace trit

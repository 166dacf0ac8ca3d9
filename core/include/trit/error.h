// trit::Error: the one exception type that crosses the library boundary.
//
// Every failure that depends on input (a model file, an image, an ONNX graph, an option) is
// thrown as trit::Error with a one-line message of one shape:
//   "<what was being done> '<the thing>': <the reason>"
// e.g. "cannot load model 'x.trit': tensor 'conv1.w' data [1024, 9000) lies outside the file".
// Internal invariants use assert; nothing aborts on a condition that input can cause.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace trit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws trit::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace trit

// NpyWriter: a float32 array written to a NumPy .npy file (format version 1.0) row by row, so
// that nothing but the current rows is held. numpy.load reads it as an array of the shape given
// to the constructor, C order, little-endian float32 ('<f4').
//
// Invariants: the header (magic, version, a Python dict literal padded with spaces to a multiple
// of 64 bytes, ending in '\n') is written first; append() then adds values in C order; finish()
// checks that exactly the product of the shape's dimensions was appended and that the stream is
// good, and fails (trit::Error, naming the file) otherwise. A file not finished is removed by
// the destructor: a run that fails leaves no array that looks whole. Floats are written as they
// lie in memory, which is '<f4' on the little-endian machines trit builds for (checked below).
#pragma once

#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "trit/error.h"

static_assert(std::endian::native == std::endian::little, "NpyWriter writes floats as they lie in memory");

class NpyWriter {
 public:
  NpyWriter(std::string path, const std::vector<size_t>& shape) : path_(std::move(path)), out_(path_, std::ios::binary) {
    if (!out_) trit::fail("cannot write '{}': {}", path_, std::strerror(errno));
    expected_ = 1;
    std::string dims;  // "3, 4"; a single dimension is written "3," as Python's tuple is
    for (size_t d : shape) {
      expected_ *= d;
      dims += (dims.empty() ? "" : ", ") + std::to_string(d);
    }
    if (shape.size() == 1) dims += ',';
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
    const size_t unpadded = 10 + header.size() + 1;  // magic, version, length, dict, '\n'
    header.append((64 - unpadded % 64) % 64, ' ');
    header += '\n';
    const uint16_t length = static_cast<uint16_t>(header.size());
    out_.write("\x93NUMPY\x01\x00", 8);
    const char len[2] = {static_cast<char>(length & 0xff), static_cast<char>(length >> 8)};
    out_.write(len, 2);
    out_.write(header.data(), static_cast<std::streamsize>(header.size()));
  }

  NpyWriter(const NpyWriter&) = delete;
  NpyWriter& operator=(const NpyWriter&) = delete;

  ~NpyWriter() {
    if (!finished_) {
      out_.close();
      std::error_code ec;
      std::filesystem::remove(path_, ec);
    }
  }

  void append(std::span<const float> values) {
    out_.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size_bytes()));
    written_ += values.size();
  }

  void finish() {
    if (written_ != expected_) trit::fail("cannot write '{}': {} values for a shape of {}", path_, written_, expected_);
    out_.close();
    if (!out_) trit::fail("cannot write '{}': write error", path_);
    finished_ = true;
  }

 private:
  std::string path_;
  std::ofstream out_;
  size_t expected_ = 0, written_ = 0;
  bool finished_ = false;
};

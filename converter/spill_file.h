// Data the quantizer streams through but must not hold in memory: per-image tensors between
// residual blocks, and per-layer samples of the float network. An unnamed temporary file
// (O_TMPFILE in $TMPDIR, else /tmp) written and read at byte offsets with pwrite/pread: it
// leaves no file behind however the process ends, its pages live in the page cache rather than
// in the process, and disjoint ranges may be written and read from several threads at once.
#pragma once

#include <cstddef>
#include <cstdint>

namespace trit {

class SpillFile {
 public:
  SpillFile();  // throws trit::Error when no temporary file can be made
  ~SpillFile();
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;

  // Throw trit::Error on a failed or short transfer (a full disk, say).
  void write(int64_t offset, const void* data, size_t bytes);
  void read(int64_t offset, void* data, size_t bytes) const;

 private:
  int fd_ = -1;
};

// Fixed-size records, one per image: record i at offset i * record_bytes.
class ImageRecords {
 public:
  explicit ImageRecords(int64_t record_bytes) : record_bytes_(record_bytes) {}
  void write(int64_t first, int64_t count, const void* data) {
    file_.write(first * record_bytes_, data, static_cast<size_t>(count * record_bytes_));
  }
  void read(int64_t first, int64_t count, void* data) const {
    file_.read(first * record_bytes_, data, static_cast<size_t>(count * record_bytes_));
  }
  int64_t record_bytes() const { return record_bytes_; }

 private:
  int64_t record_bytes_;
  SpillFile file_;
};

}  // namespace trit

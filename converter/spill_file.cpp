#include "spill_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "trit/error.h"

namespace trit {

SpillFile::SpillFile() {
  const char* env = std::getenv("TMPDIR");
  const std::string dir = env != nullptr && *env != '\0' ? env : "/tmp";
  fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd_ < 0) {  // a file system without O_TMPFILE: a named file, unlinked at once
    std::string path = dir + "/trit-spill-XXXXXX";
    fd_ = ::mkostemp(path.data(), O_CLOEXEC);
    if (fd_ >= 0) ::unlink(path.c_str());
  }
  if (fd_ < 0) fail("cannot make a temporary file in '{}': {}", dir, std::strerror(errno));
}

SpillFile::~SpillFile() {
  if (fd_ >= 0) ::close(fd_);
}

void SpillFile::write(int64_t offset, const void* data, size_t bytes) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::pwrite(fd_, p, bytes, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("cannot write {} bytes to the temporary file: {}", bytes, n < 0 ? std::strerror(errno) : "no space");
    p += n;
    offset += n;
    bytes -= static_cast<size_t>(n);
  }
}

void SpillFile::read(int64_t offset, void* data, size_t bytes) const {
  char* p = static_cast<char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::pread(fd_, p, bytes, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("cannot read {} bytes of the temporary file at {}: {}", bytes, offset, n < 0 ? std::strerror(errno) : "past its end");
    p += n;
    offset += n;
    bytes -= static_cast<size_t>(n);
  }
}

}  // namespace trit

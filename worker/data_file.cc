#include "worker/data_file.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ps {
namespace {

// Closes a gzFile on scope exit.
class GzCloser {
 public:
  explicit GzCloser(gzFile file) : file_(file) {}
  GzCloser(const GzCloser&) = delete;
  GzCloser& operator=(const GzCloser&) = delete;
  ~GzCloser() { gzclose(file_); }

 private:
  gzFile file_;
};

}  // namespace

absl::StatusOr<std::string> ReadDataFile(const std::string& path) {
  struct stat kind;
  if (::stat(path.c_str(), &kind) == 0 && !S_ISREG(kind.st_mode)) {
    // /dev/zero, a pipe, a directory: no end to read to.
    return absl::InvalidArgumentError(absl::StrCat("data file '", path, "' is not a regular file"));
  }
  // zlib reads a file without the gzip magic bytes as-is ("transparent"
  // mode), so one code path serves plain and compressed files.
  errno = 0;
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int error = errno != 0 ? errno : ENOMEM;  // zlib leaves errno 0 only on OOM.
    return absl::ErrnoToStatus(error, absl::StrCat("cannot open data file '", path, "'"));
  }
  GzCloser closer(file);
  gzbuffer(file, 1 << 17);

  std::string contents;
  struct stat st;
  // The on-disk size: exact for plain files, a lower bound for gzip ones.
  if (::stat(path.c_str(), &st) == 0 && st.st_size > 0) {
    contents.reserve(static_cast<size_t>(st.st_size));
  }
  constexpr size_t kChunk = 1 << 20;
  size_t size = 0;
  while (true) {
    if (contents.size() < size + kChunk) {
      contents.resize(std::max(size + kChunk, contents.capacity()));
    }
    errno = 0;
    const int n = gzread(file, contents.data() + size, static_cast<unsigned>(kChunk));
    if (n > 0) {
      size += static_cast<size_t>(n);
      if (size > static_cast<size_t>(kMaxDataFileBytes)) {
        return absl::ResourceExhaustedError(absl::StrCat(
            path, ": more than ", kMaxDataFileBytes >> 30,
            " GiB of data (after decompression); split it into several files or shards"));
      }
      continue;
    }
    int zerror = Z_OK;
    const char* message = gzerror(file, &zerror);
    if (n == 0 && zerror == Z_OK) break;  // End of file.
    if (zerror == Z_ERRNO) {
      return absl::ErrnoToStatus(errno, absl::StrCat("cannot read data file '", path, "'"));
    }
    if (zerror == Z_BUF_ERROR) {
      // zlib's report of a gzip stream cut short (gzread returns 0 then).
      return absl::DataLossError(absl::StrCat(path, ": truncated gzip data"));
    }
    return absl::DataLossError(absl::StrCat(path, ": corrupt gzip data: ", message));
  }
  contents.resize(size);
  return contents;
}

}  // namespace ps

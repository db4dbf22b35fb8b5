// Small file-system helpers. Thread-safe (no shared state).
#ifndef PS_COMMON_FILE_UTIL_H_
#define PS_COMMON_FILE_UTIL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ps {

// Largest file ReadWholeFile reads unless told otherwise.
inline constexpr int64_t kMaxReadBytes = int64_t{4} << 30;

// mkdir -p; new directories get mode 0700.
absl::Status MakeDirs(const std::string& dir);
// Writes `contents` to `path` atomically (temporary file, mode 0600, + rename).
absl::Status WriteFileAtomically(const std::string& path, const std::string& contents);
// A regular file's contents; larger than `max_bytes`, a device or a pipe:
// an error naming the file (and the limit), without reading it.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path,
                                          int64_t max_bytes = kMaxReadBytes);

}  // namespace ps

#endif  // PS_COMMON_FILE_UTIL_H_

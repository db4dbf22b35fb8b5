// Small file-system helpers. Thread-safe (no shared state).
#ifndef PS_COMMON_FILE_UTIL_H_
#define PS_COMMON_FILE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ps {

// mkdir -p.
absl::Status MakeDirs(const std::string& dir);
// Writes `contents` to `path` atomically (temporary file + rename).
absl::Status WriteFileAtomically(const std::string& path, const std::string& contents);
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

}  // namespace ps

#endif  // PS_COMMON_FILE_UTIL_H_

// Reads a whole data file into memory, decompressing it on the fly when it is
// gzip-compressed. Compression is detected from the content (the gzip magic
// bytes 1f 8b), never from the file name, so "train.csv" may be gzipped and
// "x.gz" may be plain.
//
// Thread-safety: the function keeps no shared state and may be called
// concurrently. Ownership: the returned string owns the contents.
#ifndef PS_WORKER_DATA_FILE_H_
#define PS_WORKER_DATA_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace ps {

// Largest data file read (decompressed): a bound on what a bad path or a
// gzip bomb can make a worker allocate.
inline constexpr int64_t kMaxDataFileBytes = int64_t{32} << 30;

// Returns the contents of `path`, gunzipped if it is a gzip file.
// Errors: "cannot open data file '<path>': <strerror>" with errno mapped by
// absl::ErrnoToStatus (NotFound for a missing file), the same for read errors
// ("cannot read data file ..."), and DataLoss "<path>: corrupt gzip data: ..."
// or "<path>: truncated gzip data" for a damaged compressed file; a path that
// is not a regular file (a device, a pipe) and more than kMaxDataFileBytes
// are errors naming the file.
absl::StatusOr<std::string> ReadDataFile(const std::string& path);

}  // namespace ps

#endif  // PS_WORKER_DATA_FILE_H_

// Reads LIBSVM text data ("label idx:val idx:val ... [# comment]") into an
// in-memory CSR (compressed sparse row) Dataset.
//
// Feature indices are kept exactly as written (LIBSVM files are 1-based); each
// row's indices must be strictly increasing. Every parse error is reported as
// one line "<source>:<line>: <what>" so a bad file can be fixed directly.
//
// Thread-safety: the functions are pure and may be called concurrently; a
// Dataset is a plain value (const access from many threads is safe).
// Ownership: the returned Dataset owns all of its arrays.
#ifndef PS_WORKER_LIBSVM_READER_H_
#define PS_WORKER_LIBSVM_READER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace ps {

// Rows in CSR form: row r has features indices[k], values[k] for k in
// [row_offsets[r], row_offsets[r+1]). Every reader uses 1-based feature
// indices (index 0 is never used), so models treat all readers alike.
struct Dataset {
  std::vector<float> labels;          // One per row.
  std::vector<uint64_t> row_offsets;  // rows() + 1 entries, starting at 0.
  std::vector<uint64_t> indices;      // Feature indices as written in the file.
  std::vector<float> values;          // Parallel to indices.
  uint64_t max_index = 0;             // Largest feature index seen; 0 if none.
  // Names of features 1..n when the source has them (CSV header):
  // feature_names[i] names index i + 1. Empty for LIBSVM and IDX.
  std::vector<std::string> feature_names;

  size_t rows() const { return labels.size(); }
};

struct LibsvmOptions {
  // If true, labels must be 0 or 1; -1 and +1 are accepted and mapped to 0
  // and 1. If false, any finite label is kept as written.
  bool binary_labels = true;
  // 0: no limit; otherwise a feature index above it is an error.
  uint64_t max_feature_index = 0;
};

// Reads and parses the whole file at `path`; errors name `path` as the source.
// Returns NotFound "cannot open data file '<path>': <strerror>" for a missing
// file (other I/O errors map errno the same way), InvalidArgument for a parse
// error or a file with no examples.
absl::StatusOr<Dataset> ReadLibsvm(const std::string& path, const LibsvmOptions& options = {});

// Parses LIBSVM `text`; `source_name` prefixes error messages. Blank and
// comment-only lines are skipped. Returns InvalidArgument on the first
// malformed line (bad label or feature, non-finite value, non-increasing or
// too large index, qid: token) or if there is no example at all.
absl::StatusOr<Dataset> ParseLibsvm(std::string_view text, std::string_view source_name,
                                    const LibsvmOptions& options = {});

}  // namespace ps

#endif  // PS_WORKER_LIBSVM_READER_H_

// Reads CSV data with a header row into the in-memory CSR Dataset of
// worker/libsvm_reader.h, so models treat CSV and LIBSVM data alike.
//
// One column, named in CsvOptions::label_column, holds the label; every other
// column is a feature, in header order: the j-th feature column (0-based) gets
// feature index j + 1 (index 0 is never used, as with LIBSVM files), and its
// header name is Dataset::feature_names[j]. CSV rows are dense: every cell is
// stored in the CSR row, a present zero included. A missing feature cell
// (empty, "NA", "N/A", "NaN" or "?", any case) is stored as a NaN value so
// that preprocessing can fill it; a missing label is an error.
//
// Syntax (RFC 4180): fields may be quoted with '"', a quoted field may hold
// the delimiter, newlines and '""' for a quote; blanks around fields and "\r"
// line ends are ignored, as are blank lines and a UTF-8 byte order mark.
// Labels and features must be numbers (std::from_chars syntax, optional '+').
// The file may be gzip-compressed (see worker/data_file.h).
//
// Every parse error is reported as one line "<source>:<line>: <what>", where
// <line> is the line on which the offending row starts.
//
// Thread-safety: the functions are pure and may be called concurrently.
// Ownership: the returned Dataset owns all of its arrays.
#ifndef PS_WORKER_CSV_READER_H_
#define PS_WORKER_CSV_READER_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "worker/libsvm_reader.h"

namespace ps {

struct CsvOptions {
  // Header name of the label column. Required.
  std::string label_column;
  char delimiter = ',';
  // If true, labels must be 0 or 1.
  bool binary_labels = false;
  // If > 0, labels must be integers in [0, num_classes).
  int num_classes = 0;
};

// Reads and parses the whole file at `path`; errors name `path` as the source.
// I/O errors as for ReadDataFile ("cannot open data file '<path>': ...",
// NotFound for a missing file); parse errors as for ParseCsv.
absl::StatusOr<Dataset> ReadCsv(const std::string& path, const CsvOptions& options);

// Parses CSV `text`; `source_name` prefixes error messages. Returns
// InvalidArgument for bad options (no label_column, negative num_classes, a
// delimiter that is '"' or a line end), an empty file, a bad header (empty or
// duplicate names, no label column), a ragged row, a missing or bad label, a
// cell that is not a number (infinities included), a malformed quoted field,
// or a file with a header but no rows.
absl::StatusOr<Dataset> ParseCsv(std::string_view text, std::string_view source_name,
                                 const CsvOptions& options);

}  // namespace ps

#endif  // PS_WORKER_CSV_READER_H_

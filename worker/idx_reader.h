// Reads image classification data in the IDX format of MNIST and
// Fashion-MNIST into the in-memory CSR Dataset of worker/libsvm_reader.h.
//
// IDX is big-endian: a 4-byte magic (0x00000803 for unsigned-byte images with
// the dimensions count, rows, cols; 0x00000801 for unsigned-byte labels with
// the dimension count), one 4-byte size per dimension, then the bytes. Either
// file may be gzip-compressed (detected from its first bytes, see
// worker/data_file.h), as Debian's dataset-fashion-mnist package ships them.
//
// Each image becomes one row whose features are its pixels in row-major
// order: pixel p (0-based) gets feature index p + 1, as LIBSVM and CSV data
// are 1-based, and value pixel * IdxOptions::scale. Zero pixels are omitted
// (CSR). The label is the class id, as a float.
//
// Thread-safety: the function is pure and may be called concurrently.
// Ownership: the returned Dataset owns all of its arrays.
#ifndef PS_WORKER_IDX_READER_H_
#define PS_WORKER_IDX_READER_H_

#include <string>

#include "absl/status/statusor.h"
#include "worker/libsvm_reader.h"

namespace ps {

struct IdxOptions {
  // A feature's value is pixel * scale; must be finite and > 0.
  float scale = 1.0f / 255.0f;
};

// Reads the images and labels files. Errors name the offending file:
// "cannot open data file '<file>': <strerror>" (NotFound if missing),
// DataLoss for damaged gzip data, and InvalidArgument for
// "<file>: bad IDX magic 0x... (expected 0x00000803 for images)",
// "<file>: truncated: expected N pixel bytes, got M" (likewise for the header
// and the label bytes), trailing bytes after the data, no images, and
// "<images>: N images, but <labels> has M labels".
absl::StatusOr<Dataset> ReadIdx(const std::string& images_path, const std::string& labels_path,
                                const IdxOptions& options = {});

// The same from the files' (decompressed) bytes; the paths name them in errors.
absl::StatusOr<Dataset> ParseIdxPair(const std::string& image_bytes, const std::string& images_path,
                                     const std::string& label_bytes, const std::string& labels_path,
                                     const IdxOptions& options = {});

}  // namespace ps

#endif  // PS_WORKER_IDX_READER_H_

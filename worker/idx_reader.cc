#include "worker/idx_reader.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/data_file.h"

namespace ps {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // Unsigned bytes, 3 dimensions.
constexpr uint32_t kLabelsMagic = 0x00000801;  // Unsigned bytes, 1 dimension.

uint32_t BigEndian32(std::string_view bytes, size_t offset) {
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(bytes[i])); };
  return b(offset) << 24 | b(offset + 1) << 16 | b(offset + 2) << 8 | b(offset + 3);
}

// One IDX file of unsigned bytes: its dimensions and a view of its data.
struct IdxArray {
  std::vector<uint32_t> dims;
  std::string_view data;
};

// Checks the header of `bytes` (the contents of `path`) against `magic`
// (which also gives the number of dimensions) and the data size against the
// dimensions. `what` names the array ("images"), `unit` its bytes ("pixel").
absl::StatusOr<IdxArray> ParseIdx(std::string_view bytes, const std::string& path, uint32_t magic,
                                  const char* what, const char* unit) {
  const size_t num_dims = magic & 0xff;
  const size_t header_size = 4 + 4 * num_dims;
  if (bytes.size() >= 4 && BigEndian32(bytes, 0) != magic) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: bad IDX magic 0x%08x (expected 0x%08x for %s)", path,
                        BigEndian32(bytes, 0), magic, what));
  }
  if (bytes.size() < header_size) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated: expected a ", header_size,
                                                   "-byte IDX header, got ", bytes.size(),
                                                   " bytes"));
  }
  IdxArray array;
  uint64_t expected = 1;
  for (size_t d = 0; d < num_dims; ++d) {
    array.dims.push_back(BigEndian32(bytes, 4 + 4 * d));
    // Three 32-bit factors may overflow 64 bits; such a file cannot be real.
    if (__builtin_mul_overflow(expected, uint64_t{array.dims.back()}, &expected)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": IDX dimensions too large to be real"));
    }
  }
  array.data = bytes.substr(header_size);
  if (array.data.size() < expected) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated: expected ", expected, " ",
                                                   unit, " bytes, got ", array.data.size()));
  }
  if (array.data.size() > expected) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", array.data.size() - expected,
                                                   " unexpected bytes after the ", expected, " ",
                                                   unit, " bytes"));
  }
  return array;
}

}  // namespace

absl::StatusOr<Dataset> ReadIdx(const std::string& images_path, const std::string& labels_path,
                                const IdxOptions& options) {
  if (!std::isfinite(options.scale) || options.scale <= 0.0f) {
    return absl::InvalidArgumentError(
        absl::StrCat("IDX options: scale is ", options.scale, " (must be finite and > 0)"));
  }
  absl::StatusOr<std::string> image_bytes = ReadDataFile(images_path);
  if (!image_bytes.ok()) return image_bytes.status();
  absl::StatusOr<std::string> label_bytes = ReadDataFile(labels_path);
  if (!label_bytes.ok()) return label_bytes.status();
  return ParseIdxPair(*image_bytes, images_path, *label_bytes, labels_path, options);
}

absl::StatusOr<Dataset> ParseIdxPair(const std::string& image_bytes, const std::string& images_path,
                                     const std::string& label_bytes, const std::string& labels_path,
                                     const IdxOptions& options) {
  absl::StatusOr<IdxArray> images =
      ParseIdx(image_bytes, images_path, kImagesMagic, "images", "pixel");
  if (!images.ok()) return images.status();
  absl::StatusOr<IdxArray> labels =
      ParseIdx(label_bytes, labels_path, kLabelsMagic, "labels", "label");
  if (!labels.ok()) return labels.status();

  const uint64_t num_images = images->dims[0];
  if (num_images != labels->dims[0]) {
    return absl::InvalidArgumentError(absl::StrCat(images_path, ": ", num_images, " images, but ",
                                                   labels_path, " has ", labels->dims[0],
                                                   " labels"));
  }
  if (num_images == 0) {
    return absl::InvalidArgumentError(absl::StrCat(images_path, ": no images"));
  }
  const uint64_t pixels_per_image = uint64_t{images->dims[1]} * images->dims[2];

  Dataset data;
  uint64_t nonzero = 0;
  for (char pixel : images->data) nonzero += pixel != 0;
  data.labels.reserve(num_images);
  data.row_offsets.reserve(num_images + 1);
  data.indices.reserve(nonzero);
  data.values.reserve(nonzero);
  data.row_offsets.push_back(0);
  const auto* pixels = reinterpret_cast<const uint8_t*>(images->data.data());
  for (uint64_t r = 0; r < num_images; ++r) {
    const uint8_t* image = pixels + r * pixels_per_image;
    for (uint64_t p = 0; p < pixels_per_image; ++p) {
      if (image[p] == 0) continue;
      data.indices.push_back(p + 1);
      data.values.push_back(static_cast<float>(image[p]) * options.scale);
      if (p + 1 > data.max_index) data.max_index = p + 1;
    }
    data.labels.push_back(static_cast<float>(static_cast<uint8_t>(labels->data[r])));
    data.row_offsets.push_back(data.indices.size());
  }
  return data;
}

}  // namespace ps

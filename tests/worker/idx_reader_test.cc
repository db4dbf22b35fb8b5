#include "worker/idx_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace ps {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatEq;
using ::testing::HasSubstr;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

void AppendBigEndian32(uint32_t v, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

std::string IdxImages(uint32_t n, uint32_t rows, uint32_t cols,
                      const std::vector<uint8_t>& pixels) {
  std::string out;
  AppendBigEndian32(0x00000803, &out);
  AppendBigEndian32(n, &out);
  AppendBigEndian32(rows, &out);
  AppendBigEndian32(cols, &out);
  out.append(pixels.begin(), pixels.end());
  return out;
}

std::string IdxLabels(const std::vector<uint8_t>& labels) {
  std::string out;
  AppendBigEndian32(0x00000801, &out);
  AppendBigEndian32(static_cast<uint32_t>(labels.size()), &out);
  out.append(labels.begin(), labels.end());
  return out;
}

std::string TempPath(const std::string& name) {
  return testing::TempDir() + "/idx_reader_test_" + name;
}

// Writes `bytes` to a file under TempDir() and returns its path.
std::string WriteRaw(const std::string& name, const std::string& bytes) {
  const std::string path = TempPath(name);
  FILE* f = std::fopen(path.c_str(), "wb");
  EXPECT_NE(f, nullptr) << path;
  if (f == nullptr) return path;
  EXPECT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
  return path;
}

std::string WriteGzip(const std::string& name, const std::string& bytes) {
  const std::string path = TempPath(name);
  gzFile gz = gzopen(path.c_str(), "wb");
  EXPECT_NE(gz, nullptr) << path;
  if (gz == nullptr) return path;
  EXPECT_EQ(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  EXPECT_EQ(gzclose(gz), Z_OK);
  return path;
}

// Three 2x2 images: pixels in row-major order.
const std::vector<uint8_t> kPixels = {
    0,   255, 0, 51,  // Image 0: pixels 1 and 3.
    0,   0,   0, 0,   // Image 1: blank.
    102, 0,   0, 255  // Image 2: pixels 0 and 3.
};
const std::vector<uint8_t> kLabels = {7, 0, 9};

void ExpectSmallDataset(const Dataset& data) {
  EXPECT_EQ(data.rows(), 3u);
  EXPECT_THAT(data.labels, ElementsAre(7.0f, 0.0f, 9.0f));
  EXPECT_THAT(data.row_offsets, ElementsAre(0u, 2u, 2u, 4u));
  EXPECT_THAT(data.indices, ElementsAre(2u, 4u, 1u, 4u));  // Pixel p -> index p + 1.
  EXPECT_THAT(data.values, ElementsAre(FloatEq(1.0f), FloatEq(0.2f), FloatEq(0.4f), FloatEq(1.0f)));
  EXPECT_EQ(data.max_index, 4u);
  EXPECT_TRUE(data.feature_names.empty());
}

TEST(ReadIdx, RawFiles) {
  const std::string images = WriteRaw("raw-images", IdxImages(3, 2, 2, kPixels));
  const std::string labels = WriteRaw("raw-labels", IdxLabels(kLabels));
  absl::StatusOr<Dataset> data = ReadIdx(images, labels);
  ASSERT_TRUE(data.ok()) << data.status();
  ExpectSmallDataset(*data);
}

TEST(ReadIdx, GzippedFilesDetectedByContentNotName) {
  // A gzipped file without ".gz" and a plain one with it: both must read.
  const std::string images = WriteGzip("gz-images", IdxImages(3, 2, 2, kPixels));
  const std::string labels = WriteRaw("plain-labels.gz", IdxLabels(kLabels));
  absl::StatusOr<Dataset> data = ReadIdx(images, labels);
  ASSERT_TRUE(data.ok()) << data.status();
  ExpectSmallDataset(*data);
}

TEST(ReadIdx, Scale) {
  const std::string images = WriteRaw("scale-images", IdxImages(3, 2, 2, kPixels));
  const std::string labels = WriteRaw("scale-labels", IdxLabels(kLabels));
  IdxOptions options;
  options.scale = 1.0f;
  absl::StatusOr<Dataset> data = ReadIdx(images, labels, options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_THAT(data->values, ElementsAre(255.0f, 51.0f, 102.0f, 255.0f));
  options.scale = 0.0f;
  EXPECT_EQ(ReadIdx(images, labels, options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ReadIdx, BadMagic) {
  const std::string labels = WriteRaw("magic-labels", IdxLabels(kLabels));
  std::string bytes = IdxImages(3, 2, 2, kPixels);
  bytes[2] = 0;
  bytes[3] = 0;
  const std::string images = WriteRaw("magic-images", bytes);
  absl::Status s = ReadIdx(images, labels).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), images + ": bad IDX magic 0x00000000 (expected 0x00000803 for images)");
  // Files swapped: the labels' magic is wrong for images and vice versa.
  EXPECT_EQ(Msg(ReadIdx(labels, labels).status()),
            labels + ": bad IDX magic 0x00000801 (expected 0x00000803 for images)");
  const std::string good_images = WriteRaw("magic-good-images", IdxImages(3, 2, 2, kPixels));
  EXPECT_EQ(Msg(ReadIdx(good_images, good_images).status()),
            good_images + ": bad IDX magic 0x00000803 (expected 0x00000801 for labels)");
}

TEST(ReadIdx, Truncated) {
  const std::string labels = WriteRaw("trunc-labels", IdxLabels(kLabels));
  std::string bytes = IdxImages(3, 2, 2, kPixels);
  bytes.resize(bytes.size() - 5);
  const std::string images = WriteRaw("trunc-images", bytes);
  absl::Status s = ReadIdx(images, labels).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), images + ": truncated: expected 12 pixel bytes, got 7");

  const std::string header_only = WriteRaw("trunc-header", IdxImages(3, 2, 2, {}).substr(0, 9));
  EXPECT_EQ(Msg(ReadIdx(header_only, labels).status()),
            header_only + ": truncated: expected a 16-byte IDX header, got 9 bytes");
  const std::string empty = WriteRaw("trunc-empty", "");
  EXPECT_EQ(Msg(ReadIdx(empty, labels).status()),
            empty + ": truncated: expected a 16-byte IDX header, got 0 bytes");

  const std::string good_images = WriteRaw("trunc-good-images", IdxImages(3, 2, 2, kPixels));
  const std::string short_labels = WriteRaw("trunc-short-labels", IdxLabels(kLabels).substr(0, 10));
  EXPECT_EQ(Msg(ReadIdx(good_images, short_labels).status()),
            short_labels + ": truncated: expected 3 label bytes, got 2");

  std::string long_bytes = IdxImages(3, 2, 2, kPixels) + "xx";
  const std::string long_images = WriteRaw("trunc-long-images", long_bytes);
  EXPECT_EQ(Msg(ReadIdx(long_images, labels).status()),
            long_images + ": 2 unexpected bytes after the 12 pixel bytes");
}

TEST(ReadIdx, TruncatedGzipIsDataLoss) {
  const std::string labels = WriteRaw("gztrunc-labels", IdxLabels(kLabels));
  const std::string full = WriteGzip("gztrunc-full", IdxImages(3, 2, 2, kPixels));
  FILE* f = std::fopen(full.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::string compressed(4096, '\0');
  compressed.resize(std::fread(compressed.data(), 1, compressed.size(), f));
  std::fclose(f);
  ASSERT_GT(compressed.size(), 20u);
  const std::string cut = WriteRaw("gztrunc-cut", compressed.substr(0, compressed.size() - 10));
  absl::Status s = ReadIdx(cut, labels).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(s.message(), cut + ": truncated gzip data");

  std::string corrupt = compressed;
  corrupt[12] ^= 0x55;  // Inside the deflate data, just after the 10-byte gzip header.
  const std::string bad = WriteRaw("gztrunc-corrupt", corrupt);
  EXPECT_EQ(ReadIdx(bad, labels).status().code(), absl::StatusCode::kDataLoss);
}

TEST(ReadIdx, CountMismatch) {
  const std::string images = WriteRaw("count-images", IdxImages(3, 2, 2, kPixels));
  const std::string labels = WriteRaw("count-labels", IdxLabels({1, 2}));
  absl::Status s = ReadIdx(images, labels).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), images + ": 3 images, but " + labels + " has 2 labels");
}

TEST(ReadIdx, NoImages) {
  const std::string images = WriteRaw("none-images", IdxImages(0, 2, 2, {}));
  const std::string labels = WriteRaw("none-labels", IdxLabels({}));
  EXPECT_EQ(Msg(ReadIdx(images, labels).status()), images + ": no images");
}

TEST(ReadIdx, NotReadable) {
  const std::string labels = WriteRaw("unreadable-labels", IdxLabels(kLabels));
  absl::Status s = ReadIdx("/nonexistent/dir/images", labels).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(),
            "cannot open data file '/nonexistent/dir/images': No such file or directory");
  const std::string images = WriteRaw("unreadable-images", IdxImages(3, 2, 2, kPixels));
  EXPECT_THAT(Msg(ReadIdx(images, testing::TempDir()).status()),
              HasSubstr("data file '" + testing::TempDir() + "'"));
}

// Debian's dataset-fashion-mnist package, installed by deploy/setup.sh on
// every machine of the project, ships the test set: 10000 28x28 images, 1000
// of each of the 10 classes.
TEST(ReadIdx, ReadsFashionMnistTestSet) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  const std::string images = dir + "/t10k-images-idx3-ubyte.gz";
  const std::string labels = dir + "/t10k-labels-idx1-ubyte.gz";
  ASSERT_TRUE(std::filesystem::exists(images))
      << images << " is missing: run deploy/setup.sh (package dataset-fashion-mnist)";
  absl::StatusOr<Dataset> data = ReadIdx(images, labels);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->rows(), 10000u);
  EXPECT_LE(data->max_index, 784u);
  EXPECT_GT(data->max_index, 700u);
  ASSERT_EQ(data->row_offsets.size(), data->rows() + 1);
  EXPECT_EQ(data->row_offsets.back(), data->indices.size());
  EXPECT_EQ(data->indices.size(), data->values.size());
  std::map<float, int> per_class;
  for (float label : data->labels) ++per_class[label];
  ASSERT_EQ(per_class.size(), 10u);
  for (const auto& [label, count] : per_class) {
    EXPECT_EQ(label, static_cast<float>(static_cast<int>(label)));
    EXPECT_GE(label, 0.0f);
    EXPECT_LE(label, 9.0f);
    EXPECT_EQ(count, 1000) << "class " << label;
  }
  for (float v : data->values) {
    ASSERT_GT(v, 0.0f);
    ASSERT_LE(v, 1.0f);
  }
}

}  // namespace
}  // namespace ps

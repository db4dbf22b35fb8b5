#include "common/model_io.h"

#include <cstring>
#include <fstream>

#include "common/sealed_file.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(ModelIo, RoundTripsAndDumpsSortedText) {
  const std::string dir = ::testing::TempDir() + "/model_io_rt";
  ASSERT_EQ(system(("rm -rf " + dir + " && mkdir -p " + dir).c_str()), 0);
  std::vector<TableSpec> tables(2);
  tables[0].id = 0;
  tables[0].name = "w";
  tables[0].dim = 2;
  tables[1].id = 1;
  tables[1].name = "b";
  tables[1].dim = 1;
  ASSERT_TRUE(WriteManifest(dir, 2, tables).ok());
  ASSERT_TRUE(WritePartitionFile(dir, 0, {TableRows{0, 2, {9, 3}, {1, 2, 3, 4}}}).ok());
  ASSERT_TRUE(WritePartitionFile(dir, 1, {TableRows{1, 1, {0}, {0.5f}}}).ok());
  auto model = ReadModel(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(DumpModelText(*model), "w 3 3 4\nw 9 1 2\nb 0 0.5\n");
}

TEST(ModelIo, EmptyPartitionsHaveNoFileAndOthersMust) {
  const std::string dir = ::testing::TempDir() + "/model_io_empty";
  ASSERT_EQ(system(("rm -rf " + dir + " && mkdir -p " + dir).c_str()), 0);
  std::vector<TableSpec> tables(1);
  tables[0].name = "w";
  // Partitions 0-2, 4 and 6 are empty; 3 and 5 have rows.
  ASSERT_TRUE(WriteManifest(dir, 7, tables, {0, 0, 0, 2, 0, 1, 0}).ok());
  std::ifstream in(dir + "/MANIFEST");
  std::string manifest((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(manifest.find("\nempty 0-2 4 6\n"), std::string::npos) << manifest;
  ASSERT_TRUE(WritePartitionFile(dir, 3, {TableRows{0, 1, {7, 8}, {1, 2}}}).ok());
  // A stale file of an empty partition (an older save's) is not read.
  ASSERT_TRUE(WritePartitionFile(dir, 4, {TableRows{0, 1, {99}, {9}}}).ok());
  auto missing = ReadModel(dir);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("part-00005.bin"), std::string::npos)
      << missing.status();
  ASSERT_TRUE(WritePartitionFile(dir, 5, {TableRows{0, 1, {5}, {0.5f}}}).ok());
  auto model = ReadModel(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(DumpModelText(*model), "w 5 0.5\nw 7 1\nw 8 2\n");
}

TEST(ModelIo, CorruptPartFileIsNamed) {
  const std::string dir = ::testing::TempDir() + "/model_io_bad";
  ASSERT_EQ(system(("rm -rf " + dir + " && mkdir -p " + dir).c_str()), 0);
  std::vector<TableSpec> tables(1);
  tables[0].name = "w";
  ASSERT_TRUE(WriteManifest(dir, 1, tables).ok());
  ASSERT_TRUE(WritePartitionFile(dir, 0, {TableRows{0, 1, {1, 2}, {1, 2}}}).ok());
  // Truncate the file.
  const std::string part = dir + "/part-00000.bin";
  std::ifstream in(part, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(part, std::ios::binary) << data.substr(0, data.size() - 3);
  auto model = ReadModel(dir);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(model.status().message().find("part-00000.bin"), std::string::npos);
}

TEST(ModelIo, MissingManifest) {
  auto model = ReadModel(::testing::TempDir() + "/no-such-model");
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace ps

namespace ps {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void Spit(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

std::string SmallModel(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/" + name;
  EXPECT_EQ(system(("rm -rf " + dir + " && mkdir -p " + dir).c_str()), 0);
  std::vector<TableSpec> tables(1);
  tables[0].name = "w";
  tables[0].dim = 2;
  EXPECT_TRUE(WriteManifest(dir, 1, tables).ok());
  EXPECT_TRUE(WritePartitionFile(dir, 0, {TableRows{0, 2, {1, 2, 3}, {1, 2, 3, 4, 5, 6}}}).ok());
  return dir;
}

// Every single flipped byte of a part file or of the MANIFEST is an error
// naming the file, never a (wrong) model.
TEST(ModelIoIntegrity, EveryFlippedByteIsAnErrorNamingTheFile) {
  const std::string dir = SmallModel("model_io_flip");
  const auto good = ReadModel(dir);
  ASSERT_TRUE(good.ok()) << good.status();
  for (const std::string file : {"/part-00000.bin", "/MANIFEST"}) {
    const std::string path = dir + file;
    const std::string original = Slurp(path);
    for (size_t i = 0; i < original.size(); ++i) {
      for (unsigned char bit : {0x01, 0x80}) {
        std::string flipped = original;
        flipped[i] = static_cast<char>(flipped[i] ^ bit);
        Spit(path, flipped);
        auto model = ReadModel(dir);
        ASSERT_FALSE(model.ok()) << file << ": byte " << i << " flipped, still read";
        EXPECT_NE(model.status().message().find(path), std::string::npos) << model.status();
      }
    }
    Spit(path, "");
    EXPECT_FALSE(ReadModel(dir).ok()) << file << " empty";
    Spit(path, original);
  }
  EXPECT_TRUE(ReadModel(dir).ok());
}

// A part claiming 2^36 rows (its checksum made to fit) is refused before
// anything that size is allocated.
TEST(ModelIoIntegrity, SizesInAPartAreCheckedAgainstItsBytes) {
  const std::string dir = SmallModel("model_io_claim");
  const std::string path = dir + "/part-00000.bin";
  auto contents = Unseal(path, Slurp(path));
  ASSERT_TRUE(contents.ok()) << contents.status();
  std::string forged = *contents;
  const uint64_t rows = uint64_t{1} << 36;
  // magic(8) partition(4) count(4) | id(4) dim(4) n(8)
  std::memcpy(forged.data() + 24, &rows, sizeof(rows));
  Spit(path, Seal(forged));
  auto model = ReadModel(dir);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("claims 68719476736 rows"), std::string::npos)
      << model.status();
}

TEST(SealedFile, EncryptedFilesNeedTheirKeyAndDetectTampering) {
  const std::string dir = ::testing::TempDir() + "/sealed_enc";
  ASSERT_EQ(system(("rm -rf " + dir + " && mkdir -p " + dir).c_str()), 0);
  const std::string key = dir + "/data.key";
  Spit(key, "ps-data-key " + std::string(64, 'a') + "\n");
  const std::string other = dir + "/other.key";
  Spit(other, "ps-data-key " + std::string(64, 'b') + "\n");
  ASSERT_TRUE(SetEncryptionKeyFile(key, "test").ok());
  const std::string path = dir + "/f";
  ASSERT_TRUE(WriteSealedFile(path, "the model's rows").ok());
  EXPECT_EQ(Slurp(path).find("model"), std::string::npos) << "written in the clear";
  auto back = ReadSealedFile(path, 1 << 20);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, "the model's rows");
  std::string tampered = Slurp(path);
  tampered[20] ^= 1;
  Spit(dir + "/g", tampered);
  EXPECT_EQ(ReadSealedFile(dir + "/g", 1 << 20).status().code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(SetEncryptionKeyFile(other, "test").ok());
  EXPECT_EQ(ReadSealedFile(path, 1 << 20).status().code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(SetEncryptionKeyFile("", "test").ok());
  auto no_key = ReadSealedFile(path, 1 << 20);
  EXPECT_EQ(no_key.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(no_key.status().message().find("encryption_key_file"), std::string::npos);
  EXPECT_FALSE(SetEncryptionKeyFile(dir + "/missing.key", "security.encryption_key_file").ok());
}

}  // namespace
}  // namespace ps

namespace ps {
namespace {

// A table with no rows in a partition (found by fuzz_model: a zero-length
// copy into an empty vector).
TEST(ModelIoIntegrity, ATableWithNoRowsReads) {
  const std::string dir = ::testing::TempDir() + "/model_io_empty_table";
  ASSERT_EQ(system(("rm -rf " + dir + " && mkdir -p " + dir).c_str()), 0);
  std::vector<TableSpec> tables(1);
  tables[0].name = "w";
  ASSERT_TRUE(WriteManifest(dir, 1, tables).ok());
  ASSERT_TRUE(WritePartitionFile(dir, 0, {TableRows{0, 1, {}, {}}}).ok());
  auto model = ReadModel(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_TRUE(model->tables[0].rows.empty());
}

}  // namespace
}  // namespace ps

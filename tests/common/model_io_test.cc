#include "common/model_io.h"

#include <fstream>

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

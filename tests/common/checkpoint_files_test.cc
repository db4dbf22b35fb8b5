// Checkpoint files are checked on load (issue 9): an empty, corrupt or stale
// partition file and a damaged latest checkpoint are errors naming the file,
// never a resumed wrong state.
#include <cstdlib>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/checkpoint.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

void Spit(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

// A complete checkpoint of 2 partitions in root/epoch-N (value v in its
// first table), as the scheduler and the servers write it.
void WriteCheckpoint(const std::string& root, int n, float v) {
  const std::string dir = CheckpointDir(root, n);
  ASSERT_TRUE(MakeDirs(dir).ok());
  rpc::CheckpointManifest manifest;
  for (int p = 0; p < 2; ++p) {
    rpc::PartitionState state;
    state.set_partition(p);
    auto* t = state.add_tables();
    t->add_keys(7);
    t->add_rows(v);
    std::string sha;
    ASSERT_TRUE(WritePartitionState(dir, state, &sha).ok());
    manifest.add_files(absl::StrCat("partition-0000", p, ".state"));
    manifest.add_sha256(sha);
  }
  manifest.set_epochs_done(n);
  manifest.set_num_partitions(2);
  ASSERT_TRUE(WriteCheckpointManifest(dir, manifest).ok());
}

std::string Root(const std::string& name) {
  const std::string root = ::testing::TempDir() + "/" + name;
  EXPECT_EQ(system(("rm -rf " + root).c_str()), 0);
  return root;
}

TEST(CheckpointFiles, AnEmptyCorruptOrStalePartitionFileIsRefused) {
  const std::string root = Root("ckpt_files");
  WriteCheckpoint(root, 1, 1.0f);
  WriteCheckpoint(root, 2, 2.0f);
  const std::string dir = CheckpointDir(root, 2);
  auto good = ReadPartitionState(dir, 1);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->tables(0).rows(0), 2.0f);
  const std::string path = PartitionStatePath(dir, 1);
  const std::string original = *ReadWholeFile(path);
  // Stale: the same partition's file from the checkpoint before.
  Spit(path, *ReadWholeFile(PartitionStatePath(CheckpointDir(root, 1), 1)));
  auto stale = ReadPartitionState(dir, 1);
  ASSERT_FALSE(stale.ok());
  EXPECT_TRUE(absl::StrContains(stale.status().message(), "stale or replaced")) << stale.status();
  EXPECT_TRUE(absl::StrContains(stale.status().message(), path)) << stale.status();
  Spit(path, "");
  EXPECT_FALSE(ReadPartitionState(dir, 1).ok());
  std::string flipped = original;
  flipped[flipped.size() / 2] ^= 0x10;
  Spit(path, flipped);
  EXPECT_EQ(ReadPartitionState(dir, 1).status().code(), absl::StatusCode::kDataLoss);
  Spit(path, original);
  EXPECT_TRUE(ReadPartitionState(dir, 1).ok());
}

TEST(CheckpointFiles, ADamagedLatestCheckpointIsAnErrorAnUnfinishedOneIsSkipped) {
  const std::string root = Root("ckpt_latest");
  WriteCheckpoint(root, 1, 1.0f);
  WriteCheckpoint(root, 2, 2.0f);
  auto latest = FindLatestCheckpoint(root);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->manifest.epochs_done(), 2);
  // Writing epoch-3 was cut short: no manifest yet. The latest is epoch-2.
  ASSERT_TRUE(MakeDirs(CheckpointDir(root, 3)).ok());
  latest = FindLatestCheckpoint(root);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->manifest.epochs_done(), 2);
  // A damaged manifest is not skipped without a word.
  const std::string manifest = CheckpointDir(root, 2) + "/manifest";
  std::string bytes = *ReadWholeFile(manifest);
  bytes[3] ^= 0x01;
  Spit(manifest, bytes);
  latest = FindLatestCheckpoint(root);
  ASSERT_FALSE(latest.ok());
  EXPECT_TRUE(absl::StrContains(latest.status().message(), CheckpointDir(root, 2) + " is damaged"))
      << latest.status();
  EXPECT_TRUE(absl::StrContains(latest.status().message(), "remove it")) << latest.status();
}

}  // namespace
}  // namespace ps

// Placement on made-up shard maps: the initial map, a dead server's
// partitions promoted to their complete backups in a new term, backups
// refilled on the least loaded servers, what is lost without a copy.
#include "scheduler/placement.h"

#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::testing::ElementsAre;

// Every backup complete.
void SyncAll(rpc::ClusterView* view) {
  for (rpc::Placement& pl : *view->mutable_placement()) {
    *pl.mutable_synced_backups() = pl.backups();
  }
}

// Copies per server (primary or backup).
std::map<int, int> Copies(const rpc::ClusterView& view) {
  std::map<int, int> n;
  for (const rpc::Placement& pl : view.placement()) {
    ++n[pl.primary()];
    for (int b : pl.backups()) ++n[b];
  }
  return n;
}

TEST(Placement, TheInitialMapSpreadsPrimariesAndBackupsRoundRobin) {
  rpc::ClusterView view;
  PlaceInitially(6, 3, 2, "", &view);
  ASSERT_EQ(view.placement_size(), 6);
  EXPECT_THAT(view.partition_owner(), ElementsAre(0, 1, 2, 0, 1, 2));
  for (int p = 0; p < 6; ++p) {
    EXPECT_THAT(view.placement(p).backups(), ElementsAre((p + 1) % 3));
    EXPECT_EQ(view.placement(p).epoch(), 1);
    EXPECT_TRUE(view.placement(p).restore_from().empty());
  }
  EXPECT_THAT(Copies(view), (std::map<int, int>{{0, 4}, {1, 4}, {2, 4}}));
  PlaceInitially(4, 2, 1, "/ckpt/epoch-3", &view);  // a resumed job
  ASSERT_EQ(view.placement_size(), 4);
  EXPECT_EQ(view.placement(3).restore_from(), "/ckpt/epoch-3");
  EXPECT_EQ(view.placement(3).restore_epoch(), 1);
  EXPECT_EQ(view.placement(3).backups_size(), 0);
}

TEST(Placement, ADeadPrimaryIsReplacedByALiveCompleteBackupInANewTerm) {
  rpc::ClusterView view;
  PlaceInitially(6, 3, 3, "", &view);
  SyncAll(&view);
  // Partition 0: primary 0, backups 1 and 2; server 1 is dead too.
  const auto alive = [](int32_t r) { return r != 0 && r != 1; };
  EXPECT_TRUE(PartitionsLostWithout(view, 0, alive).empty());
  EXPECT_EQ(PartitionsOf(view, 0), "primary of 2, backup of 4");
  const int promoted = PromoteBackupsOf(&view, 0, alive);
  EXPECT_EQ(promoted, 2);
  const rpc::Placement& p0 = view.placement(0);
  EXPECT_EQ(p0.primary(), 2) << "backup 1 is dead: the next complete one";
  EXPECT_EQ(view.partition_owner(0), 2);
  EXPECT_EQ(p0.epoch(), 2);
  EXPECT_EQ(p0.synced_backups_size(), 0) << "no copy counts as complete in the new term";
  EXPECT_THAT(p0.backups(), ElementsAre(1));
  for (const rpc::Placement& pl : view.placement()) {
    EXPECT_NE(pl.primary(), 0);
    for (int b : pl.backups()) EXPECT_NE(b, 0);
  }
  EXPECT_EQ(PartitionsOf(view, 0), "primary of 0, backup of 0");
}

TEST(Placement, APartitionWithoutACompleteLiveCopyIsLost) {
  rpc::ClusterView view;
  PlaceInitially(4, 2, 2, "", &view);
  // Partition 0's backup is still copying; partition 2's is complete.
  view.mutable_placement(2)->add_synced_backups(1);
  const auto alive = [](int32_t r) { return r != 0; };
  EXPECT_THAT(PartitionsLostWithout(view, 0, alive), ElementsAre(0));
  const auto none = [](int32_t) { return false; };
  EXPECT_THAT(PartitionsLostWithout(view, 0, none), ElementsAre(0, 2));
}

TEST(Placement, BackupsAreRefilledOnTheLeastLoadedServersNeverTwiceOnOne) {
  rpc::ClusterView view;
  PlaceInitially(6, 3, 2, "", &view);
  SyncAll(&view);
  const auto alive = [](int32_t r) { return r != 1; };
  PromoteBackupsOf(&view, 1, alive);
  // Server 1 gone, standby 3 joined holding nothing: it takes the new copies.
  const int placed = RefillBackups(&view, 1, {0, 2, 3});
  EXPECT_EQ(placed, 4);
  for (const rpc::Placement& pl : view.placement()) {
    ASSERT_EQ(pl.backups_size(), 1);
    EXPECT_NE(pl.backups(0), pl.primary());
  }
  const std::map<int, int> copies = Copies(view);
  EXPECT_EQ(copies.count(1), 0u);
  EXPECT_EQ(copies.at(3), 4);
  // Two copies wanted on two servers: one backup each, not more.
  rpc::ClusterView small;
  PlaceInitially(2, 2, 1, "", &small);
  EXPECT_EQ(RefillBackups(&small, 2, {0, 1}), 2);
  for (const rpc::Placement& pl : small.placement()) EXPECT_EQ(pl.backups_size(), 1);
  EXPECT_EQ(RefillBackups(&small, 0, {0, 1}), 0);
}

}  // namespace
}  // namespace ps

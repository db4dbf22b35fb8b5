// The rebalancer on a made-up shard map and traffic: a hot server's
// partitions move to the coolest (after the imbalance is seen twice), the
// map flips only once the target holds a complete copy, a draining server
// is emptied, and the moves survive a restart through the state.
#include "scheduler/rebalancer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/placement.h"

namespace ps {
namespace {

config::ClusterSection Cluster(int interval_ms) {
  config::ClusterSection c;
  c.set_replication(1);
  c.set_rebalance_interval_ms(interval_ms);
  c.set_rebalance_threshold(1.25);
  return c;
}

// Server 0 carries all the traffic: 4 partitions of 1,000 B/s each.
void HotServerZero(Rebalancer* r, const rpc::ClusterView& view) {
  std::map<uint32_t, uint64_t> bytes;
  for (int p = 0; p < view.placement_size(); ++p) {
    if (view.placement(p).primary() == 0) bytes[p] = 1000;
  }
  r->ReportTraffic(view, 0, bytes, 1.0);
  r->ReportTraffic(view, 0, bytes, 1.0);
}

int PrimaryOf(const rpc::ClusterView& view, int32_t rank) {
  int n = 0;
  for (const rpc::Placement& pl : view.placement()) n += pl.primary() == rank;
  return n;
}

TEST(Rebalancer, AHotServersPartitionsMoveOnceTheTargetHoldsACompleteCopy) {
  rpc::ClusterView view;
  PlaceInitially(8, 2, 1, "", &view);
  Rebalancer r(Cluster(100));
  HotServerZero(&r, view);
  const Rebalancer::Servers servers{{0, 1}, {}, {0, 1}};
  int refills = 0;
  auto refill = [&] { ++refills; };
  absl::Time now = absl::UnixEpoch() + absl::Hours(1);
  r.Step(now, servers, &view, refill);  // the imbalance seen once: nothing yet
  EXPECT_TRUE(r.idle());
  now += absl::Milliseconds(150);
  r.Step(now, servers, &view, refill);  // twice: moves start
  ASSERT_FALSE(r.idle());
  EXPECT_THAT(r.Describe(), ::testing::HasSubstr("server 0 -> 1"));
  // About half the gap: 2 of server 0's 4 partitions (of 1,000 B/s each).
  int copying = 0;
  for (const rpc::Placement& pl : view.placement()) {
    if (pl.primary() == 0 && Holds(pl.backups(), 1)) ++copying;
  }
  EXPECT_EQ(copying, 2);
  const uint64_t before = view.version();
  now += absl::Milliseconds(10);
  r.Step(now, servers, &view, refill);
  EXPECT_EQ(PrimaryOf(view, 1), 4) << "no flip before the copy is complete";
  // The targets report complete copies: the map flips in a new term.
  for (rpc::Placement& pl : *view.mutable_placement()) {
    if (Holds(pl.backups(), 1)) pl.add_synced_backups(1);
  }
  now += absl::Milliseconds(10);
  r.Step(now, servers, &view, refill);
  EXPECT_TRUE(r.idle());
  EXPECT_EQ(PrimaryOf(view, 0), 2);
  EXPECT_EQ(PrimaryOf(view, 1), 6);
  EXPECT_EQ(r.migrations(), 2u);
  EXPECT_GT(view.version(), before);
  EXPECT_EQ(refills, 1);
  for (int p = 0; p < view.placement_size(); ++p) {
    EXPECT_EQ(view.partition_owner(p), view.placement(p).primary());
    if (view.placement(p).primary() == 1 && view.placement(p).epoch() > 1) {
      EXPECT_EQ(view.placement(p).backups_size(), 0) << "the old primary keeps no copy";
    }
  }
}

TEST(Rebalancer, ADrainingServerIsEmptiedAndMovesSurviveARestart) {
  rpc::ClusterView view;
  PlaceInitially(6, 3, 1, "", &view);
  Rebalancer r(Cluster(0));  // no balancing by load: only the drain
  const Rebalancer::Servers servers{{0, 1}, {2}, {0, 1, 2}};
  absl::Time now = absl::UnixEpoch() + absl::Hours(1);
  r.Step(now, servers, &view, [] {});
  ASSERT_FALSE(r.idle());
  // A restarted scheduler carries the moves on.
  rpc::SchedulerState state;
  r.Save(&state);
  EXPECT_EQ(state.moves_size() + state.planned_size(), 2);
  Rebalancer again(Cluster(0));
  again.Load(state, now);
  for (rpc::Placement& pl : *view.mutable_placement()) {
    for (int32_t b : pl.backups()) pl.add_synced_backups(b);
  }
  again.Step(now + absl::Milliseconds(10), servers, &view, [] {});
  EXPECT_EQ(PrimaryOf(view, 2), 0);
  EXPECT_EQ(PrimaryOf(view, 0) + PrimaryOf(view, 1), 6);
  EXPECT_EQ(again.migrations(), 2u);
}

TEST(Rebalancer, AMoveWhoseTargetDiedOrWasFailedOverIsDropped) {
  rpc::ClusterView view;
  PlaceInitially(4, 2, 1, "", &view);
  Rebalancer r(Cluster(0));
  r.Step(absl::UnixEpoch(), {{0}, {1}, {0, 1}}, &view, [] {});  // drain 1 onto 0
  ASSERT_FALSE(r.idle());
  // Server 0 dies before any copy completes: nowhere to go.
  r.Step(absl::UnixEpoch() + absl::Seconds(1), {{}, {1}, {1}}, &view, [] {});
  EXPECT_EQ(PrimaryOf(view, 1), 2);
  EXPECT_EQ(r.migrations(), 0u);
}

}  // namespace
}  // namespace ps

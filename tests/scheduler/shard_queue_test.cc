// ShardQueue (scheduler/shard_queue.h): each shard once per epoch, a dead
// worker's shard first, workers that disagree on the data refused, and the
// state file round trip.
#include "scheduler/shard_queue.h"

#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(ShardQueue, EachShardOncePerEpochTheLastOneShorter) {
  ShardQueue q(100);
  ASSERT_TRUE(q.SetExamples(0, 250).ok());
  std::vector<std::pair<uint64_t, uint64_t>> got;
  while (auto s = q.Next(0)) {
    EXPECT_EQ(s->index, got.size());
    got.emplace_back(s->begin, s->end);
  }
  EXPECT_EQ(got, (std::vector<std::pair<uint64_t, uint64_t>>{{0, 100}, {100, 200}, {200, 250}}));
  EXPECT_FALSE(q.Next(0).has_value());
  // Another epoch starts from its first shard.
  ASSERT_TRUE(q.SetExamples(1, 250).ok());
  auto first = q.Next(1);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->begin, 0u);
  // An epoch nobody told the size of has nothing to hand out.
  EXPECT_FALSE(q.Next(7).has_value());
}

TEST(ShardQueue, ADeadWorkersShardGoesFirst) {
  ShardQueue q(100);
  ASSERT_TRUE(q.SetExamples(0, 300).ok());
  auto a = q.Next(0);
  ASSERT_TRUE(a.has_value());
  q.Requeue(0, a->begin, a->end);
  auto again = q.Next(0);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->index, a->index);
  EXPECT_EQ(again->begin, a->begin);
  EXPECT_EQ(again->end, a->end);
  auto next = q.Next(0);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->index, 1u);
}

TEST(ShardQueue, WorkersWithDifferentDataAreRefused) {
  ShardQueue q(100);
  EXPECT_TRUE(absl::StrContains(q.SetExamples(0, 0).message(), "no training examples"));
  ASSERT_TRUE(q.SetExamples(0, 250).ok());
  const absl::Status s = q.SetExamples(0, 251);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "251 training examples in epoch 1, another 250")) << s;
  EXPECT_TRUE(q.SetExamples(1, 251).ok()) << "another epoch may differ (resampling)";
}

TEST(ShardQueue, TheStateFileCarriesItOn) {
  ShardQueue q(100);
  ASSERT_TRUE(q.SetExamples(0, 500).ok());
  auto a = q.Next(0);
  auto b = q.Next(0);
  ASSERT_TRUE(a && b);
  q.Requeue(0, a->begin, a->end);
  rpc::SchedulerState state;
  q.Save(&state);
  ShardQueue restored(100);
  restored.Load(state);
  // The requeued shard, then the shards not handed out yet, and nothing twice.
  std::set<uint32_t> rest;
  while (auto s = restored.Next(0)) EXPECT_TRUE(rest.insert(s->index).second) << s->index;
  EXPECT_EQ(rest, (std::set<uint32_t>{a->index, 2, 3, 4}));
  EXPECT_FALSE(restored.SetExamples(0, 499).ok()) << "the epoch's size is kept";
}

}  // namespace
}  // namespace ps

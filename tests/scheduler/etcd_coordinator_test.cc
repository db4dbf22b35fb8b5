// EtcdCoordinator against a real etcd (tests/etcd_util.h): who leads, the
// fencing of state writes by the leader key, a standby taking over once the
// leader's lease expires (never before the leader stopped acting), and a
// leader cut off from etcd stopping by itself.
#include "scheduler/etcd_coordinator.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/etcd_util.h"
#include "tests/test_util.h"

namespace ps {
namespace {

using ::testing::HasSubstr;

class EtcdCoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = testing::EtcdServer::Start(testing::NewTempDir("etcd"));
    ASSERT_TRUE(started.ok()) << started.status();
    etcd_ = std::move(*started);
  }

  std::unique_ptr<EtcdCoordinator> Make(const std::string& me, absl::Duration lease,
                                        const std::string& job = "job") {
    auto client = EtcdClient::Create(etcd_->endpoint(), "cluster.etcd_endpoints");
    EXPECT_TRUE(client.ok()) << client.status();
    return std::make_unique<EtcdCoordinator>(std::move(*client),
                                             EtcdCoordinator::Options{"/ps-test/", job, me, lease});
  }

  static rpc::SchedulerState StateWithFailure(const std::string& failure) {
    rpc::SchedulerState s;
    s.mutable_job()->mutable_job()->set_name("job");
    s.set_failure(failure);
    return s;
  }

  std::unique_ptr<testing::EtcdServer> etcd_;
};

TEST_F(EtcdCoordinatorTest, OneLeadsAndTheOtherIsToldWho) {
  auto a = Make("a:1", absl::Seconds(5));
  auto b = Make("b:2", absl::Seconds(5));
  std::string leader;
  auto led = a->TryLead(&leader);
  ASSERT_TRUE(led.ok()) << led.status();
  EXPECT_TRUE(*led);
  EXPECT_TRUE(a->Leading());
  EXPECT_GT(a->term(), 0);
  led = b->TryLead(&leader);
  ASSERT_TRUE(led.ok()) << led.status();
  EXPECT_FALSE(*led);
  EXPECT_EQ(leader, "a:1");
  EXPECT_FALSE(b->Leading());
  EXPECT_EQ(b->term(), 0);
  // Another job's scheduler is not in the way.
  auto other = Make("c:3", absl::Seconds(5), "other-job");
  led = other->TryLead(&leader);
  ASSERT_TRUE(led.ok()) << led.status();
  EXPECT_TRUE(*led);
}

TEST_F(EtcdCoordinatorTest, StateWritesAreFencedByTheLeaderKey) {
  auto a = Make("a:1", absl::Seconds(5));
  std::string leader;
  ASSERT_TRUE(*a->TryLead(&leader));
  ASSERT_TRUE(a->WriteState(StateWithFailure("written by a")).ok());
  auto read = a->ReadState();
  ASSERT_TRUE(read.ok() && read->has_value()) << read.status();
  EXPECT_EQ((*read)->failure(), "written by a");

  // The leader key disappears (as when the lease expired in etcd while the
  // leader was away): the old leader's next write is refused and it stops.
  auto raw = EtcdClient::Create(etcd_->endpoint(), "test");
  ASSERT_TRUE(raw.ok());
  ASSERT_TRUE((*raw)->DeletePrefix(a->leader_key(), absl::Seconds(5)).ok());
  auto b = Make("b:2", absl::Seconds(5));
  ASSERT_TRUE(*b->TryLead(&leader));
  absl::Status stale = a->WriteState(StateWithFailure("written by a after b took over"));
  EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition) << stale;
  EXPECT_THAT(stale.message(), HasSubstr("another scheduler leads job 'job'"));
  EXPECT_FALSE(a->Leading());
  read = b->ReadState();
  ASSERT_TRUE(read.ok() && read->has_value());
  EXPECT_EQ((*read)->failure(), "written by a") << "a fenced write went through";
  ASSERT_TRUE(b->WriteState(StateWithFailure("written by b")).ok());
  read = a->ReadState();
  EXPECT_EQ((*read)->failure(), "written by b");
}

TEST_F(EtcdCoordinatorTest, AStandbyTakesOverOnlyAfterTheLeaderStoppedActing) {
  const absl::Duration lease = absl::Seconds(2);
  auto a = Make("a:1", lease);
  std::string leader;
  ASSERT_TRUE(*a->TryLead(&leader));
  // The leader renews: it still leads after more than one lease.
  const absl::Time led_at = absl::Now();
  while (absl::Now() - led_at < lease + absl::Milliseconds(500)) {
    ASSERT_TRUE(a->Leading()) << "the leader did not renew its lease";
    absl::SleepFor(absl::Milliseconds(100));  // observation period, not synchronization
  }
  auto b = Make("b:2", lease);
  // The leader's process dies: it renews no more (no resignation).
  const absl::Time a_until = absl::Now() + a->LeadLeft();
  a.reset();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::vector<std::string> seen;
  while (true) {
    auto led = b->TryLead(&leader);
    ASSERT_TRUE(led.ok()) << led.status();
    if (*led) break;
    if (seen.empty() || seen.back() != leader) seen.push_back(leader);
    ASSERT_LT(absl::Now(), deadline) << "the standby never took over";
    absl::SleepFor(absl::Milliseconds(50));  // poll period, bounded by the deadline
  }
  const absl::Time took_over = absl::Now();
  EXPECT_TRUE(b->Leading());
  EXPECT_THAT(seen, ::testing::ElementsAre("a:1"));
  // Fencing: the standby leads only once the old leader has stopped acting.
  EXPECT_GT(took_over, a_until);
  std::cout << "standby took over " << absl::FormatDuration(took_over - a_until)
            << " after the old leader stopped acting (lease " << absl::FormatDuration(lease) << ")"
            << std::endl;
}

TEST_F(EtcdCoordinatorTest, AResigningLeaderHandsOverAtOnce) {
  auto a = Make("a:1", absl::Seconds(30));
  auto b = Make("b:2", absl::Seconds(30));
  std::string leader;
  ASSERT_TRUE(*a->TryLead(&leader));
  ASSERT_FALSE(*b->TryLead(&leader));
  a->Resign();
  EXPECT_FALSE(a->Leading());
  auto led = b->TryLead(&leader);
  ASSERT_TRUE(led.ok()) << led.status();
  EXPECT_TRUE(*led) << "the resigned leader's key is still there: " << leader;
}

TEST_F(EtcdCoordinatorTest, ALeaderCutOffFromEtcdStopsBeforeItsLeaseEnds) {
  const absl::Duration lease = absl::Seconds(2);
  auto a = Make("a:1", lease);
  std::string leader;
  ASSERT_TRUE(*a->TryLead(&leader));
  ASSERT_TRUE(a->Leading());
  etcd_.reset();  // etcd gone: no renewal succeeds
  // What is left of the lead is less than the lease by the margin (a fifth).
  const absl::Duration left = a->LeadLeft();
  const absl::Time stopped_by = absl::Now() + left;
  EXPECT_LE(left, lease - lease / 5);
  const absl::Time deadline = absl::Now() + 2 * lease;
  while (a->Leading()) {
    ASSERT_LT(absl::Now(), deadline) << "a leader cut off from etcd went on leading";
    absl::SleepFor(absl::Milliseconds(10));  // poll period, bounded by the deadline
  }
  // It stopped when its lead ran out, without a renewal stretching it (one
  // would have added more than a second).
  EXPECT_LE(absl::Now(), stopped_by + absl::Milliseconds(100 * testing::SlowFactor()));
  absl::Status write = a->WriteState(StateWithFailure("x"));
  EXPECT_EQ(write.code(), absl::StatusCode::kFailedPrecondition) << write;
}

TEST(EtcdClientTest, BadEndpointsAndAnUnreachableEtcdAreClearErrors) {
  auto bad = EtcdClient::Create("localhost", "cluster.etcd_endpoints");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("cluster.etcd_endpoints: 'localhost'"));
  bad = EtcdClient::Create(" , ", "cluster.etcd_endpoints");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("required"));
  bad = EtcdClient::Create("https://127.0.0.1:2379", "cluster.etcd_endpoints");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("TLS to etcd is not supported"));

  const std::string nobody = absl::StrCat("127.0.0.1:", testing::UnusedPort());
  auto client = EtcdClient::Create("http://" + nobody + "/", "cluster.etcd_endpoints");
  ASSERT_TRUE(client.ok()) << client.status();
  EtcdCoordinator c(std::move(*client), {"/ps/", "job", "me:1", absl::Seconds(2)});
  std::string leader;
  auto led = c.TryLead(&leader);
  ASSERT_FALSE(led.ok());
  EXPECT_THAT(led.status().message(), HasSubstr("etcd at " + nobody));
  EXPECT_FALSE(c.Leading());
}

}  // namespace
}  // namespace ps

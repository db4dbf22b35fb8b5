// cluster.coordinator: etcd through real processes and a real etcd:
//  - a leading scheduler killed with kill -9 mid-training, its standby
//    (ps_scheduler --standby, on its own port) takes the job over from the
//    state in etcd once the lease expires; the members move to it by
//    themselves; the job ends with the model of a run without the kill, bit
//    for bit, and no scheduler state file was ever written;
//  - a second leader for the same job is refused, naming the one that leads;
//    a job whose state in etcd is still running is not started over by
//    accident.
#include <signal.h>

#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/etcd_util.h"
#include "tests/model_util.h"
#include "tests/test_util.h"
#include "tools/process_group.h"

namespace ps {
namespace {

using ::ps::testing::BinDir;
using ::ps::testing::JsonNumber;
using ::ps::testing::MaxModelDifference;
using ::ps::testing::NewTempDir;
using ::ps::testing::ReadFile;
using ::ps::testing::SourceDir;
using ::ps::testing::WaitForText;
using ::testing::HasSubstr;

const char kConfig[] = "examples/spambase_lr.yaml";

std::vector<std::string> JobSets() {
  return {"cluster.heartbeat_interval_ms=100",
          absl::StrCat("cluster.heartbeat_timeout_ms=", 1000 * testing::SlowFactor()),
          "train.epochs=12", "train.progress_interval_ms=0"};
}

std::vector<std::string> WithSets(std::vector<std::string> argv,
                                  const std::vector<std::string>& sets) {
  for (const std::string& s : sets) {
    argv.push_back("--set");
    argv.push_back(s);
  }
  return argv;
}

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    out_ = NewTempDir("coordinator");
    auto started = testing::EtcdServer::Start(out_ + "/etcd");
    ASSERT_TRUE(started.ok()) << started.status();
    etcd_ = std::move(*started);
  }

  // ps_scheduler for the job in out_ with etcd, listening on a port of its
  // choosing (written to `port_file`).
  std::vector<std::string> Scheduler(const std::string& port_file,
                                     const std::vector<std::string>& extra = {}) {
    std::vector<std::string> sets = JobSets();
    sets.insert(sets.end(),
                {"job.output_dir=" + out_, "cluster.coordinator=etcd",
                 "cluster.etcd_endpoints=" + etcd_->endpoint(), "cluster.etcd_lease_seconds=2"});
    std::vector<std::string> argv = WithSets(
        {BinDir() + "/ps_scheduler", "--config", SourceDir() + "/" + kConfig, "--host", "127.0.0.1",
         "--port", "0", "--port_file", port_file, testing::TokenFlag("scheduler")},
        sets);
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  std::string out_;
  std::unique_ptr<testing::EtcdServer> etcd_;
};

TEST_F(CoordinatorTest, AStandbyTakesAKilledLeadersJobOverWithTheSameModel) {
  const std::string baseline = NewTempDir("coordinator-baseline");
  auto full = testing::RunCommand(
      WithSets({BinDir() + "/ps_launch", "--config", SourceDir() + "/" + kConfig},
               [&] {
                 auto sets = JobSets();
                 sets.push_back("job.output_dir=" + baseline);
                 return sets;
               }()),
      absl::Seconds(120));
  ASSERT_EQ(full.exit_code, 0) << full.output;

  ProcessGroup group;
  auto leader = group.Spawn({"leader", Scheduler(out_ + "/port1"), out_ + "/scheduler-1.log"});
  ASSERT_TRUE(leader.ok());
  auto port1 = WaitForPortFile(out_ + "/port1", &group, *leader, absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(port1.ok()) << port1.status() << ReadFile(out_ + "/scheduler-1.log");
  ASSERT_TRUE(WaitForText(out_ + "/scheduler-1.log", "leads job", absl::Now() + absl::Seconds(30)))
      << ReadFile(out_ + "/scheduler-1.log");
  auto standby = group.Spawn(
      {"standby", Scheduler(out_ + "/port2", {"--standby"}), out_ + "/scheduler-2.log"});
  ASSERT_TRUE(standby.ok());
  auto port2 = WaitForPortFile(out_ + "/port2", &group, *standby, absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(port2.ok()) << port2.status() << ReadFile(out_ + "/scheduler-2.log");
  // The members know both; they reach whichever leads.
  const std::string schedulers = absl::StrCat("127.0.0.1:", *port1, ",127.0.0.1:", *port2);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(group
                    .Spawn({absl::StrCat("server-", i),
                            {BinDir() + "/ps_server", "--scheduler", schedulers,
                             testing::TokenFlag("server")},
                            absl::StrCat(out_, "/server-", i, ".log")})
                    .ok());
  }
  for (int i = 0; i < 2; ++i) {
    std::vector<std::string> argv = {BinDir() + "/ps_worker", "--scheduler", schedulers,
                                     testing::TokenFlag("worker")};
    if (i == 0) argv.insert(argv.end(), {"--iteration_delay_ms", "10"});
    ASSERT_TRUE(
        group.Spawn({absl::StrCat("worker-", i), argv, absl::StrCat(out_, "/worker-", i, ".log")})
            .ok());
  }
  ASSERT_TRUE(WaitForText(out_ + "/scheduler-1.log", "epoch 3/12", absl::Now() + absl::Seconds(60)))
      << ReadFile(out_ + "/scheduler-1.log");
  group.Signal(*leader, SIGKILL);
  const absl::Time killed = absl::Now();
  auto dead = group.WaitAny(absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(dead.ok() && dead->name == "leader") << "the leader did not die alone";
  // Its machine is lost with it: nothing of its state is on its disk.
  EXPECT_FALSE(std::filesystem::exists(out_ + "/scheduler.state"));

  ASSERT_TRUE(WaitForText(out_ + "/scheduler-2.log", "taken over from the state in etcd",
                          absl::Now() + absl::Seconds(30)))
      << ReadFile(out_ + "/scheduler-2.log");
  std::cout << "the standby took the job over " << absl::FormatDuration(absl::Now() - killed)
            << " after the leader was killed (lease 2 s)" << std::endl;

  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (group.size() > 0) {
    auto exit = group.WaitAny(deadline);
    ASSERT_TRUE(exit.ok()) << "the job hung after the take-over: "
                           << ReadFile(out_ + "/scheduler-2.log");
    EXPECT_EQ(exit->code, 0) << exit->name << ": "
                             << ReadFile(exit->name == "standby"
                                             ? out_ + "/scheduler-2.log"
                                             : out_ + "/" + exit->name + ".log");
  }
  const double diff = MaxModelDifference(baseline + "/model", out_ + "/model");
  std::cout << "max abs difference per weight, leader killed vs not: " << diff << std::endl;
  EXPECT_EQ(diff, 0.0);
  EXPECT_EQ(JsonNumber(ReadFile(out_ + "/metrics.json"), "{", "epochs"), 12);
  EXPECT_FALSE(std::filesystem::exists(out_ + "/scheduler.state"));
}

TEST_F(CoordinatorTest, ASecondLeaderIsRefusedAndARunningJobIsNotStartedOver) {
  ProcessGroup group;
  auto leader = group.Spawn({"leader", Scheduler(out_ + "/port1"), out_ + "/scheduler-1.log"});
  ASSERT_TRUE(leader.ok());
  auto port1 = WaitForPortFile(out_ + "/port1", &group, *leader, absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(port1.ok()) << port1.status() << ReadFile(out_ + "/scheduler-1.log");
  ASSERT_TRUE(WaitForText(out_ + "/scheduler-1.log", "leads job", absl::Now() + absl::Seconds(30)));

  auto second = testing::RunCommand(Scheduler(out_ + "/port2"), absl::Seconds(30));
  EXPECT_EQ(second.exit_code, 1) << second.output;
  EXPECT_THAT(second.output,
              HasSubstr(absl::StrCat("already has a scheduler, at 127.0.0.1:", *port1)));
  EXPECT_THAT(second.output, HasSubstr("--standby"));

  // The leader dies; its lease expires; the job (waiting for members) is
  // still in etcd: a plain start refuses to start it over.
  group.Signal(*leader, SIGKILL);
  ASSERT_TRUE(group.WaitAny(absl::Now() + absl::Seconds(10)).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  testing::CommandResult third;
  do {
    third = testing::RunCommand(Scheduler(out_ + "/port3"), absl::Seconds(30));
    // Until the lease expires, the dead leader still holds the key.
  } while (third.output.find("already has a scheduler") != std::string::npos &&
           absl::Now() < deadline);
  EXPECT_EQ(third.exit_code, 1) << third.output;
  EXPECT_THAT(third.output, HasSubstr("still running, whose scheduler stopped"));
  EXPECT_THAT(third.output, HasSubstr("--restore"));
  // --resume (ps_launch's job.max_restarts) starts it over from a
  // checkpoint instead: past the state in etcd, it finds none here.
  auto resumed = testing::RunCommand(Scheduler(out_ + "/port4", {"--resume"}), absl::Seconds(30));
  EXPECT_EQ(resumed.exit_code, 1) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("--resume starts it over from its latest checkpoint"));
  EXPECT_THAT(resumed.output, HasSubstr("--resume: "));

  // Without etcd in the config, --standby is refused.
  auto no_etcd = testing::RunCommand(
      WithSets({BinDir() + "/ps_scheduler", "--config", SourceDir() + "/" + kConfig, "--standby",
                testing::TokenFlag("scheduler")},
               {"job.output_dir=" + out_ + "/plain"}),
      absl::Seconds(30));
  EXPECT_EQ(no_etcd.exit_code, 1) << no_etcd.output;
  EXPECT_THAT(no_etcd.output, HasSubstr("--standby needs cluster.coordinator: etcd"));
}

}  // namespace
}  // namespace ps

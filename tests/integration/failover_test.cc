// Fault tolerance through real processes (issue 4): kill -9 or freeze a
// primary server mid-training with replication 2 and a standby, and check
// that nothing changes: the BSP job's final model is bit for bit that of the
// same job run without the failure, no acknowledged update is lost or applied
// twice, and a frozen old primary cannot acknowledge a write after it was
// replaced.
#include <signal.h>

#include <algorithm>
#include <iostream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/partitioning.h"
#include "common/rpc.h"
#include "common/scheduler_client.h"
#include "common/tables.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/ps.grpc.pb.h"
#include "tests/auth_util.h"
#include "tests/model_util.h"
#include "tests/test_util.h"
#include "tools/process_group.h"

namespace ps {
namespace {

using ::ps::testing::BinDir;
using ::ps::testing::JsonNumber;
using ::ps::testing::ListeningPorts;
using ::ps::testing::MaxModelDifference;
using ::ps::testing::NewTempDir;
using ::ps::testing::ReadFile;
using ::ps::testing::SourceDir;
using ::ps::testing::WaitForText;
using ::testing::HasSubstr;

// BSP spambase, 2 servers + 1 standby, every partition on 2 of them; fast
// heartbeats; one worker slowed so that there is time to act mid-training.
const std::vector<std::string> kReplicated = {
    "cluster.replication=2",       "cluster.standby_servers=1",
    "cluster.standby_workers=1",   "cluster.heartbeat_interval_ms=100",
    absl::StrCat("cluster.heartbeat_timeout_ms=", 1000 * testing::SlowFactor()),
    "train.epochs=12"};
const std::vector<std::string> kSlow = {"--worker_delay", "0:4"};

std::vector<std::string> LaunchArgs(const std::string& out) {
  std::vector<std::string> argv = {BinDir() + "/ps_launch", "--config",
                                   SourceDir() + "/examples/spambase_lr.yaml", "--set",
                                   "job.output_dir=" + out};
  for (const std::string& s : kReplicated) {
    argv.push_back("--set");
    argv.push_back(s);
  }
  argv.insert(argv.end(), kSlow.begin(), kSlow.end());
  return argv;
}

// The job's active (not standby) processes of `binary` (ps_server, ps_worker).
std::vector<int> Active(const std::string& out, const std::string& binary) {
  return testing::JobProcesses(testing::SchedulerAddress(out + "/logs"), binary, /*standby=*/false);
}
std::vector<int> ActiveServers(const std::string& out) { return Active(out, "ps_server"); }

// The job without any failure: the model the failure runs must reproduce.
std::string Baseline() {
  const std::string out = NewTempDir("failover-baseline");
  auto r = testing::RunCommand(LaunchArgs(out), absl::Seconds(120));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return out;
}

TEST(Failover, KilledPrimaryServerLeavesTheBspModelUnchanged) {
  const std::string baseline = Baseline();
  const std::string out = NewTempDir("failover-kill");
  ProcessGroup group;
  ASSERT_TRUE(group.Spawn({"launcher", LaunchArgs(out), out + ".log"}).ok());
  ASSERT_TRUE(WaitForText(out + ".log", "epoch 3/12", absl::Now() + absl::Seconds(60)))
      << ReadFile(out + ".log");
  const std::vector<int> servers = ActiveServers(out);
  ASSERT_EQ(servers.size(), 2u);
  ASSERT_EQ(kill(servers[0], SIGKILL), 0);
  auto exit = group.WaitAny(absl::Now() + absl::Seconds(120));
  ASSERT_TRUE(exit.ok()) << "the job hung after a server died";
  const std::string log = ReadFile(out + ".log");
  ASSERT_EQ(exit->code, 0) << log;
  EXPECT_THAT(log, HasSubstr("partitions promoted to a backup"));
  const double diff = MaxModelDifference(baseline + "/model", out + "/model");
  std::cout << "max abs difference per weight after a killed primary: " << diff << std::endl;
  EXPECT_EQ(diff, 0.0) << "BSP sums in rank order: the failover must not change a bit";
}

// DESIGN.md section 4: a standby worker takes over the dead worker's rank,
// data position and clock, so the BSP result does not change.
TEST(Failover, KilledWorkerReplacedByAStandbyLeavesTheBspModelUnchanged) {
  const std::string baseline = Baseline();
  const std::string out = NewTempDir("failover-worker");
  ProcessGroup group;
  ASSERT_TRUE(group.Spawn({"launcher", LaunchArgs(out), out + ".log"}).ok());
  ASSERT_TRUE(WaitForText(out + ".log", "epoch 3/12", absl::Now() + absl::Seconds(60)))
      << ReadFile(out + ".log");
  const std::vector<int> workers = Active(out, "ps_worker");
  ASSERT_EQ(workers.size(), 2u);
  ASSERT_EQ(kill(workers[1], SIGKILL), 0);
  auto exit = group.WaitAny(absl::Now() + absl::Seconds(120));
  ASSERT_TRUE(exit.ok()) << "the job hung after a worker died";
  const std::string log = ReadFile(out + ".log");
  ASSERT_EQ(exit->code, 0) << log;
  EXPECT_THAT(log, HasSubstr("standby worker node"));
  const double diff = MaxModelDifference(baseline + "/model", out + "/model");
  std::cout << "max abs difference per weight after a killed worker: " << diff << std::endl;
  EXPECT_EQ(diff, 0.0);
}

// psctl checkpoint: a checkpoint at the end of the current epoch, on demand.
TEST(Failover, PsctlCheckpointWritesOneAtTheNextEpochEnd) {
  const std::string out = NewTempDir("psctl-checkpoint");
  ProcessGroup group;
  ASSERT_TRUE(group.Spawn({"launcher", LaunchArgs(out), out + ".log"}).ok());
  ASSERT_TRUE(WaitForText(out + ".log", "epoch 2/12", absl::Now() + absl::Seconds(60)))
      << ReadFile(out + ".log");
  auto r = testing::RunCommand(
      {BinDir() + "/psctl", "--scheduler", testing::SchedulerAddress(out + "/logs"),
       "--token_file=" + out + "/auth/job.token", "checkpoint"},
      absl::Seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const size_t at = r.output.find("checkpoint written: ");
  ASSERT_NE(at, std::string::npos) << r.output;
  const std::string dir = r.output.substr(at + 20, r.output.find(' ', at + 20) - at - 20);
  EXPECT_FALSE(ReadFile(dir + "/manifest").empty()) << dir;
  auto exit = group.WaitAny(absl::Now() + absl::Seconds(120));
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->code, 0) << ReadFile(out + ".log");
}

// A push sent to a primary frozen with SIGSTOP, which the scheduler then
// replaces: once thawed, the old primary must not acknowledge it (its backup,
// now the primary, refuses the old epoch's forward), it must step down, and
// the write must not reach the model.
TEST(Failover, FrozenOldPrimaryCannotAcknowledgeAfterItWasReplaced) {
  const std::string baseline = Baseline();
  const std::string out = NewTempDir("failover-freeze");
  ProcessGroup group;
  ASSERT_TRUE(group.Spawn({"launcher", LaunchArgs(out), out + ".log"}).ok());
  ASSERT_TRUE(WaitForText(out + ".log", "epoch 3/12", absl::Now() + absl::Seconds(60)))
      << ReadFile(out + ".log");
  testing::UseAdminCredentials(out + "/auth/job.token");
  SchedulerClient scheduler(testing::SchedulerAddress(out + "/logs"));
  auto view = scheduler.GetView();
  ASSERT_TRUE(view.ok()) << view.status();

  // Which server is the victim, and a weight key it is primary of.
  const std::vector<int> servers = ActiveServers(out);
  ASSERT_EQ(servers.size(), 2u);
  const std::vector<int> ports = ListeningPorts(servers[0]);
  ASSERT_FALSE(ports.empty());
  int rank = -1;
  for (const rpc::ServerInfo& s : view->servers()) {
    for (int p : ports) {
      if (s.address() == absl::StrCat("127.0.0.1:", p)) rank = s.rank();
    }
  }
  ASSERT_GE(rank, 0) << "no server in the view listens on the victim's ports";
  const int partitions = view->partition_owner_size();
  uint64_t key = 0;
  while (view->partition_owner(PartitionOf(kLrWeights, key, partitions)) != rank) ++key;

  ASSERT_EQ(kill(servers[0], SIGSTOP), 0);
  // The write waits in the frozen server's socket.
  rpc::PushRequest push;
  push.set_worker(1000);  // not a worker of the job: applied at once if at all
  push.set_incarnation(7);
  push.set_seq(1);
  push.set_map_version(view->version());
  push.set_num_examples(1);
  rpc::TableSlice* slice = push.add_slices();
  slice->set_table(kLrWeights);
  slice->add_keys(key);
  slice->add_values(1e4f);  // would wreck the model if it got in
  grpc::Status push_status;
  std::thread writer([&] {
    auto stub = rpc::ParameterServer::NewStub(MakeChannel(view->servers(rank).address()));
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(60)));
    rpc::PushResponse resp;
    push_status = stub->Push(&ctx, push, &resp);
  });
  // Replaced: the view marks it dead and every partition has a live primary.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  bool replaced = false;
  while (!replaced && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));  // poll period, bounded by the deadline
    auto v = scheduler.GetView();
    if (!v.ok() || !v->servers(rank).dead()) continue;
    // ... and the new primaries have adopted that view.
    int primaries = 0;
    for (const rpc::ServerInfo& s : v->servers()) {
      if (s.dead()) continue;
      auto stub = rpc::ParameterServer::NewStub(MakeChannel(s.address()));
      grpc::ClientContext ctx;
      ctx.set_deadline(DeadlineIn(absl::Seconds(2)));
      rpc::StatsResponse stats;
      if (stub->Stats(&ctx, rpc::StatsRequest(), &stats).ok()) primaries += stats.partitions_primary();
    }
    replaced = primaries == partitions;
  }
  ASSERT_EQ(kill(servers[0], SIGCONT), 0);
  writer.join();
  ASSERT_TRUE(replaced) << "the frozen server was not replaced";
  EXPECT_FALSE(push_status.ok()) << "a replaced primary acknowledged a write";
  std::cout << "the old primary answered: " << push_status.error_code() << " "
            << push_status.error_message() << std::endl;

  auto exit = group.WaitAny(absl::Now() + absl::Seconds(120));
  ASSERT_TRUE(exit.ok()) << "the job hung after a server froze";
  const std::string log = ReadFile(out + ".log");
  ASSERT_EQ(exit->code, 0) << log;
  std::string stepped_down;
  for (int i = 0; i < 3; ++i) stepped_down += ReadFile(absl::StrCat(out, "/logs/server-", i, ".log"));
  EXPECT_THAT(stepped_down, HasSubstr("stepping down"));
  const double diff = MaxModelDifference(baseline + "/model", out + "/model");
  std::cout << "max abs difference per weight after a frozen primary: " << diff << std::endl;
  EXPECT_EQ(diff, 0.0);
}

// Exactly once: ps_bench counts +1 pushes per key while two servers are
// killed one after the other (each after the copies the first failover made
// are complete); every key must equal its acknowledged pushes.
TEST(Failover, CountsStayExactUnderServerKills) {
  const std::string out = NewTempDir("failover-count");
  const std::string config = out + "/count.yaml";
  testing::WriteFile(config, absl::StrCat(R"(job:
  name: count
  mode: asp
  output_dir: )", out, R"(/job
cluster:
  num_servers: 3
  num_workers: 1
  replication: 2
  standby_servers: 2
  heartbeat_interval_ms: 100
  heartbeat_timeout_ms: )", 1000 * testing::SlowFactor(), R"(
model:
  type: benchmark
optimizer:
  type: sgd
  learning_rate: 1
data:
  format: libsvm
  train_path: )", SourceDir(), "/data/spambase/train.libsvm\n"));
  ProcessGroup group;
  ASSERT_TRUE(group
                  .Spawn({"bench",
                          {BinDir() + "/ps_bench", "--config", config, "--count_seconds", "8"},
                          out + "/bench.log"})
                  .ok());
  ASSERT_TRUE(WaitForText(out + "/bench.log", "counting for", absl::Now() + absl::Seconds(60)))
      << ReadFile(out + "/bench.log");
  const std::string address = testing::SchedulerAddress(out + "/job/logs");
  testing::UseAdminCredentials(out + "/job/auth/job.token");
  SchedulerClient scheduler(address);
  // Fully replicated: every partition's backups all hold a complete copy.
  auto fully_replicated = [&] {
    auto v = scheduler.GetView();
    if (!v.ok()) return false;
    for (const rpc::Placement& pl : v->placement()) {
      if (pl.backups_size() != 1 || pl.synced_backups_size() != 1) return false;
    }
    return true;
  };
  int kills = 0;
  std::string killed_address;  // of the last server killed
  for (int round = 0; round < 2; ++round) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    // The scheduler has seen the last kill (a new map), and then every
    // partition is fully replicated again.
    while (!killed_address.empty()) {
      auto v = scheduler.GetView();
      bool noticed = v.ok();
      for (int i = 0; v.ok() && i < v->servers_size(); ++i) {
        if (v->servers(i).address() == killed_address && !v->servers(i).dead()) noticed = false;
      }
      if (noticed) break;
      ASSERT_LT(absl::Now(), deadline) << "the kill was not noticed";
      absl::SleepFor(absl::Milliseconds(20));  // poll period, bounded by the deadline
    }
    while (!fully_replicated()) {
      ASSERT_LT(absl::Now(), deadline) << "partitions stayed under-replicated";
      absl::SleepFor(absl::Milliseconds(20));  // poll period, bounded by the deadline
    }
    absl::SleepFor(absl::Seconds(1));  // let the count run between kills (not a synchronization)
    const std::vector<int> servers = testing::JobProcesses(address, "ps_server");
    ASSERT_GE(servers.size(), 2u);
    const std::vector<int> ports = testing::ListeningPorts(servers[0]);
    auto before = scheduler.GetView();
    ASSERT_TRUE(before.ok()) << before.status();
    killed_address.clear();
    for (const rpc::ServerInfo& info : before->servers()) {
      for (int port : ports) {
        if (absl::EndsWith(info.address(), absl::StrCat(":", port))) killed_address = info.address();
      }
    }
    ASSERT_FALSE(killed_address.empty()) << "server pid " << servers[0] << " is not in the map";
    ASSERT_EQ(kill(servers[0], SIGKILL), 0);
    ++kills;
    std::cout << "killed server pid " << servers[0] << std::endl;
  }
  auto exit = group.WaitAny(absl::Now() + absl::Seconds(120));
  ASSERT_TRUE(exit.ok()) << "ps_bench hung";
  const std::string log = ReadFile(out + "/bench.log");
  ASSERT_EQ(exit->code, 0) << log;
  const size_t at = log.find("exactly-once check: ");
  ASSERT_NE(at, std::string::npos) << log;
  const std::string json = log.substr(at);
  std::cout << json.substr(0, json.find('\n')) << std::endl;
  EXPECT_EQ(kills, 2);
  EXPECT_EQ(JsonNumber(json, "{", "lost"), 0);
  EXPECT_EQ(JsonNumber(json, "{", "duplicated"), 0);
  EXPECT_EQ(JsonNumber(json, "{", "failed"), 0);
  EXPECT_GT(JsonNumber(json, "{", "acked"), 100);
}

}  // namespace
}  // namespace ps

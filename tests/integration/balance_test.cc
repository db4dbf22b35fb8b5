// Load balancing through real processes (issue 4, item 7): a skewed load is
// spread by moving partitions while pushes go on, a server that joins a
// running job receives partitions, and `psctl drain` empties a server so that
// killing it afterwards costs nothing. ps_bench's exactly-once check runs
// throughout: every key must equal its acknowledged pushes.
#include <signal.h>

#include <algorithm>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/rpc.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/scheduler.grpc.pb.h"
#include "tests/auth_util.h"
#include "tests/test_util.h"
#include "tools/process_group.h"

namespace ps {
namespace {

using ::ps::testing::BinDir;
using ::ps::testing::JsonNumber;
using ::ps::testing::NewTempDir;
using ::ps::testing::ReadFile;
using ::ps::testing::SourceDir;
using ::ps::testing::WaitForText;
using ::testing::HasSubstr;

// A counting job (ps_bench is its worker) on `servers` servers.
struct CountJob {
  std::string out;
  ProcessGroup group;
  std::string scheduler;

  void Start(int servers, int replication, double seconds, const std::vector<std::string>& flags) {
    out = NewTempDir("balance");
    const std::string config = out + "/count.yaml";
    testing::WriteFile(config, absl::StrCat(R"(job:
  name: count
  mode: asp
  output_dir: )", out, R"(/job
cluster:
  num_servers: )", servers, R"(
  num_workers: 1
  replication: )", replication, R"(
  heartbeat_interval_ms: 100
  heartbeat_timeout_ms: )", 1000 * testing::SlowFactor(), R"(
  rebalance_interval_ms: 500
model:
  type: benchmark
optimizer:
  type: sgd
  learning_rate: 1
data:
  format: libsvm
  train_path: )", SourceDir(), "/data/spambase/train.libsvm\n"));
    std::vector<std::string> argv = {BinDir() + "/ps_bench", "--config", config, "--count_seconds",
                                     absl::StrCat(seconds)};
    argv.insert(argv.end(), flags.begin(), flags.end());
    ASSERT_TRUE(group.Spawn({"bench", argv, out + "/bench.log"}).ok());
    ASSERT_TRUE(WaitForText(out + "/bench.log", "counting for", absl::Now() + absl::Seconds(60)))
        << ReadFile(out + "/bench.log");
    scheduler = testing::SchedulerAddress(out + "/job/logs");
    testing::UseAdminCredentials(out + "/job/auth/job.token");
  }

  absl::StatusOr<rpc::JobStatus> Status() const {
    auto stub = rpc::Scheduler::NewStub(MakeChannel(scheduler));
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(5)));
    rpc::JobStatus s;
    grpc::Status st = stub->Status(&ctx, rpc::StatusRequest(), &s);
    if (!st.ok()) return absl::UnavailableError(st.error_message());
    return s;
  }

  // Waits for ps_bench; checks the exactly-once figures; returns its JSON line.
  std::string Finish() {
    const absl::Time deadline = absl::Now() + absl::Seconds(120);
    auto exit = group.WaitAny(deadline);
    while (exit.ok() && exit->name != "bench") exit = group.WaitAny(deadline);  // a server we added
    EXPECT_TRUE(exit.ok()) << "ps_bench hung";
    const std::string log = ReadFile(out + "/bench.log");
    if (!exit.ok()) return "";
    EXPECT_EQ(exit->code, 0) << log;
    const size_t at = log.find("exactly-once check: ");
    EXPECT_NE(at, std::string::npos) << log;
    if (at == std::string::npos) return "";
    const std::string json = log.substr(at, log.find('\n', at) - at);
    std::cout << json << std::endl;
    EXPECT_EQ(JsonNumber(json, "{", "lost"), 0);
    EXPECT_EQ(JsonNumber(json, "{", "duplicated"), 0);
    EXPECT_EQ(JsonNumber(json, "{", "failed"), 0);
    EXPECT_GT(JsonNumber(json, "{", "acked"), 100);
    return json;
  }
};

// The busiest server's share of the load (NaN before any load is reported).
double HottestShare(const rpc::JobStatus& s) {
  double total = 0, most = 0;
  for (const rpc::MemberStatus& m : s.members()) {
    if (m.role() != rpc::SERVER || m.state() == "dead") continue;
    total += m.load_bytes_per_s();
    most = std::max(most, m.load_bytes_per_s());
  }
  return total > 0 ? most / total : NAN;
}

std::string Loads(const rpc::JobStatus& s) {
  std::string out;
  for (const rpc::MemberStatus& m : s.members()) {
    if (m.role() != rpc::SERVER) continue;
    absl::StrAppend(&out, absl::StrFormat(" server %d: %.0f B/s, %d partitions;", m.rank(),
                                          m.load_bytes_per_s(), m.partitions_primary()));
  }
  return out;
}

TEST(Balance, SkewedLoadIsSpreadByMovingPartitions) {
  CountJob job;
  job.Start(2, 1, 8, {"--count_skew"});
  // Before: every counted key lives on server 0.
  double before = NAN, after = NAN;
  std::string before_text, after_text;
  uint32_t migrations = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(7);
  while (absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));  // sampling period of the load figures
    auto s = job.Status();
    if (!s.ok() || s->state() != rpc::RUNNING) continue;
    const double share = HottestShare(*s);
    if (std::isnan(share)) continue;
    if (std::isnan(before)) {
      before = share;
      before_text = Loads(*s);
    }
    after = share;
    after_text = Loads(*s);
    migrations = s->migrations();
  }
  std::cout << "before:" << before_text << "\nafter:" << after_text << "\nmigrations: " << migrations
            << std::endl;
  EXPECT_GT(before, 0.9);
  EXPECT_LT(after, 0.7);
  EXPECT_GE(migrations, 1u);
  job.Finish();
}

TEST(Balance, AServerJoiningARunningJobReceivesPartitions) {
  CountJob job;
  job.Start(2, 1, 10, {});
  // A third server joins (as a standby: it holds nothing at first).
  ASSERT_TRUE(job.group
                  .Spawn({"late-server",
                          {BinDir() + "/ps_server", "--scheduler", job.scheduler, "--standby",
                           "--token_file=" + job.out + "/job/auth/server.token"},
                          job.out + "/late-server.log"})
                  .ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(8);
  uint32_t partitions = 0;
  std::string loads;
  while (partitions == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));  // poll period, bounded by the deadline
    auto s = job.Status();
    if (!s.ok()) continue;
    for (const rpc::MemberStatus& m : s->members()) {
      if (m.role() == rpc::SERVER && m.rank() == 2) partitions = m.partitions_primary();
    }
    loads = Loads(*s);
  }
  std::cout << "after the join:" << loads << std::endl;
  EXPECT_GT(partitions, 0u) << "the new server got no partition";
  job.Finish();
}

TEST(Balance, DrainedServerCanBeKilledWithoutAFailover) {
  CountJob job;
  job.Start(3, 2, 8, {});
  auto drain =
      testing::RunCommand({BinDir() + "/psctl", "--scheduler", job.scheduler,
                           "--token_file=" + job.out + "/job/auth/job.token", "drain", "0"},
                          absl::Seconds(60));
  ASSERT_EQ(drain.exit_code, 0) << drain.output;
  EXPECT_THAT(drain.output, HasSubstr("is drained"));
  auto s = job.Status();
  ASSERT_TRUE(s.ok());
  for (const rpc::Placement& pl : s->view().placement()) {
    EXPECT_NE(pl.primary(), 0);
    for (int b : pl.backups()) EXPECT_NE(b, 0);
  }
  // Server 0 holds nothing: killing it changes nothing for the count.
  std::string server0;
  for (const rpc::MemberStatus& m : s->members()) {
    if (m.role() == rpc::SERVER && m.rank() == 0) server0 = m.address();
  }
  for (int p : testing::JobProcesses(job.scheduler, "ps_server")) {
    for (int port : testing::ListeningPorts(p)) {
      if (server0 == absl::StrCat("127.0.0.1:", port)) {
        ASSERT_EQ(kill(p, SIGKILL), 0);
      }
    }
  }
  const std::string json = job.Finish();
  EXPECT_LT(JsonNumber(json, "{", "longest_stall_ms"), 1000) << "a drained server's death stalled pushes";
}

}  // namespace
}  // namespace ps

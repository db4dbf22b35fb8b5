// Checkpoints and restarts through real processes (issue 4):
//  - a BSP job killed whole (kill -9 of its launcher, so of every process)
//    after a checkpoint and restarted with --resume ends with the model of
//    the same job run without interruption, bit for bit;
//  - with replication 1, a server killed mid-training has its partitions
//    restored from the latest checkpoint on the standby and the job finishes
//    (the updates since the checkpoint are lost, and the log says so);
//  - a scheduler killed with kill -9 mid-training and restarted with
//    --restore on the same port: training goes on meanwhile, the members keep
//    their node ids, the job finishes with the uninterrupted job's model.
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/rpc.h"
#include "common/scheduler_client.h"
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
using ::ps::testing::MaxModelDifference;
using ::ps::testing::NewTempDir;
using ::ps::testing::ProcessesMentioning;
using ::ps::testing::ReadFile;
using ::ps::testing::SourceDir;
using ::ps::testing::WaitForText;
using ::testing::HasSubstr;

std::vector<std::string> Sets(const std::vector<std::string>& sets) {
  std::vector<std::string> argv;
  for (const std::string& s : sets) {
    argv.push_back("--set");
    argv.push_back(s);
  }
  return argv;
}

std::vector<std::string> LaunchArgs(const std::string& config, const std::string& out,
                                    const std::vector<std::string>& sets,
                                    const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {BinDir() + "/ps_launch", "--config", SourceDir() + "/" + config,
                                   "--set", "job.output_dir=" + out};
  for (const std::string& s : Sets(sets)) argv.push_back(s);
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

// Waits until no process mentions `needle` (the processes of a killed job).
bool AllGone(const std::string& needle, absl::Time deadline) {
  while (!ProcessesMentioning(needle).empty()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));  // poll period, bounded by the deadline
  }
  return true;
}

// Waits up to 60 s for the job in `out` to complete its checkpoint after
// epoch `epoch`.
bool WaitForCheckpoint(const std::string& out, int epoch) {
  const std::string manifest = absl::StrCat(out, "/checkpoints/epoch-", epoch, "/manifest");
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (!std::filesystem::exists(manifest)) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));  // poll period, bounded by the deadline
  }
  return true;
}

// The line of `log` holding `needle` (empty if none).
std::string LineWith(const std::string& log, const std::string& needle) {
  const size_t at = log.find(needle);
  if (at == std::string::npos) return "";
  const size_t begin = log.rfind('\n', at) + 1;
  return log.substr(begin, log.find('\n', at) - begin);
}

// BSP spambase with standardization (so the statistics tables are in the
// checkpoint too), a checkpoint every 2 epochs; worker 0 slowed so that the
// job is still running when it is killed.
const char kConfig[] = "examples/spambase_standardized.yaml";
const std::vector<std::string> kCheckpointed = {"train.epochs=10", "checkpoint.every_epochs=2",
                                                "train.progress_interval_ms=0"};
const std::vector<std::string> kSlow = {"--worker_delay", "0:4"};

TEST(Checkpoint, AResumedBspJobEndsWithTheUninterruptedJobsModel) {
  const std::string baseline = NewTempDir("ckpt-baseline");
  auto full =
      testing::RunCommand(LaunchArgs(kConfig, baseline, kCheckpointed, kSlow), absl::Seconds(120));
  ASSERT_EQ(full.exit_code, 0) << full.output;
  const std::string line = LineWith(full.output, "checkpoint after epoch 2:");
  EXPECT_FALSE(line.empty()) << full.output;
  std::cout << "checkpoint: " << line.substr(line.find("checkpoint after")) << std::endl;

  // The same job, killed whole once the checkpoint after epoch 4 is complete.
  const std::string out = NewTempDir("ckpt-killed");
  {
    ProcessGroup group;
    auto launcher =
        group.Spawn({"launcher", LaunchArgs(kConfig, out, kCheckpointed, kSlow), out + ".log"});
    ASSERT_TRUE(launcher.ok());
    ASSERT_TRUE(WaitForCheckpoint(out, 4)) << ReadFile(out + ".log");
    const std::string address = testing::SchedulerAddress(out + "/logs");
    group.Signal(*launcher, SIGKILL);  // its children die with it (PR_SET_PDEATHSIG)
    ASSERT_TRUE(AllGone(address, absl::Now() + absl::Seconds(10)))
        << "processes of the killed job remain";
  }
  ASSERT_FALSE(std::filesystem::exists(out + "/metrics.json"))
      << "the job ended before it was killed";
  std::cout << "killed after the checkpoint of epoch 4; on disk:";
  for (const auto& e : std::filesystem::directory_iterator(out + "/checkpoints")) {
    std::cout << " " << e.path().filename().string();
  }
  std::cout << std::endl;

  auto resumed = testing::RunCommand(LaunchArgs(kConfig, out, kCheckpointed, {"--resume"}),
                                     absl::Seconds(120));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("resuming from checkpoint"));
  const double diff = MaxModelDifference(baseline + "/model", out + "/model");
  std::cout << "max abs difference per weight, resumed vs uninterrupted: " << diff << std::endl;
  EXPECT_EQ(diff, 0.0) << "BSP with the same data order and clocks must give the same bits";
  // The history goes back to epoch 1 (carried in the checkpoint).
  const std::string metrics = ReadFile(out + "/metrics.json");
  EXPECT_EQ(JsonNumber(metrics, "{", "epochs"), 10);
  EXPECT_THAT(metrics, HasSubstr("{\"epoch\": 1,"));
}

// job.max_restarts: the job's scheduler killed after the checkpoint of epoch
// 4 fails the job; ps_launch starts it again from that checkpoint by itself,
// and it ends with the uninterrupted job's model, bit for bit.
TEST(Checkpoint, AFailedJobRestartsFromItsCheckpointByMaxRestarts) {
  const std::string baseline = NewTempDir("restarts-baseline");
  auto full =
      testing::RunCommand(LaunchArgs(kConfig, baseline, kCheckpointed, kSlow), absl::Seconds(120));
  ASSERT_EQ(full.exit_code, 0) << full.output;

  const std::string out = NewTempDir("restarts");
  std::vector<std::string> sets = kCheckpointed;
  sets.push_back("job.max_restarts=1");
  ProcessGroup group;
  auto launcher = group.Spawn({"launcher", LaunchArgs(kConfig, out, sets, kSlow), out + ".log"});
  ASSERT_TRUE(launcher.ok());
  ASSERT_TRUE(WaitForCheckpoint(out, 4)) << ReadFile(out + ".log");
  int killed = 0;
  for (int pid : ProcessesMentioning(out)) {
    if (ReadFile(absl::StrCat("/proc/", pid, "/cmdline")).find("ps_scheduler") == std::string::npos) {
      continue;
    }
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    ++killed;
  }
  ASSERT_EQ(killed, 1) << "the job's scheduler was not found";
  auto exit = group.WaitAny(absl::Now() + absl::Seconds(120));
  ASSERT_TRUE(exit.ok()) << exit.status();
  const std::string log = ReadFile(out + ".log");
  ASSERT_EQ(exit->code, 0) << log;
  EXPECT_THAT(log, HasSubstr("restart 1 of 1 (job.max_restarts), from " + out + "/checkpoints/epoch-"));
  // The scheduler of the second attempt resumed (not a start from scratch,
  // which would end with the same bits too).
  EXPECT_THAT(log, HasSubstr("resuming from checkpoint " + out + "/checkpoints/epoch-")) << log;
  EXPECT_THAT(ReadFile(out + "/audit.log"), HasSubstr("job_restarted"));
  EXPECT_TRUE(std::filesystem::exists(out + "/logs-attempt-1/server-0.log"))
      << "the failed attempt's logs are kept";
  const double diff = MaxModelDifference(baseline + "/model", out + "/model");
  EXPECT_EQ(diff, 0.0) << "the restarted BSP job must end with the same bits";
  EXPECT_EQ(JsonNumber(ReadFile(out + "/metrics.json"), "{", "epochs"), 10);
}

TEST(Checkpoint, WithReplication1ADeadServersPartitionsComeBackFromTheCheckpoint) {
  const std::string out = NewTempDir("ckpt-r1");
  ProcessGroup group;
  const std::vector<std::string> sets = {
      "cluster.replication=1",
      "cluster.standby_servers=1",
      "cluster.heartbeat_interval_ms=100",
      absl::StrCat("cluster.heartbeat_timeout_ms=", 1000 * testing::SlowFactor()),
      "train.epochs=12",
      "checkpoint.every_epochs=2",
      "train.progress_interval_ms=0"};
  ASSERT_TRUE(group
                  .Spawn({"launcher", LaunchArgs("examples/spambase_lr.yaml", out, sets, kSlow),
                          out + ".log"})
                  .ok());
  ASSERT_TRUE(
      WaitForText(out + ".log", "checkpoint after epoch 4", absl::Now() + absl::Seconds(60)))
      << ReadFile(out + ".log");
  // An active (not standby) server.
  int victim = 0;
  for (int p : testing::JobProcesses(testing::SchedulerAddress(out + "/logs"), "ps_server",
                                     /*standby=*/false)) {
    victim = p;
  }
  ASSERT_GT(victim, 0);
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  auto exit = group.WaitAny(absl::Now() + absl::Seconds(120));
  ASSERT_TRUE(exit.ok()) << "the job hung after a server died";
  const std::string log = ReadFile(out + ".log");
  ASSERT_EQ(exit->code, 0) << log;
  const std::string lost = LineWith(log, "are lost");
  ASSERT_FALSE(lost.empty()) << log;
  EXPECT_THAT(lost, HasSubstr("error"));
  EXPECT_THAT(lost, HasSubstr("updates since epoch"));
  std::cout << lost.substr(0, 160) << "..." << std::endl;
  const double accuracy = JsonNumber(ReadFile(out + "/metrics.json"), "\"test\"", "accuracy");
  std::cout << "test accuracy after the restore: " << accuracy << std::endl;
  EXPECT_GT(accuracy, 0.9);
}

TEST(SchedulerRestart, AKilledSchedulerRestoredOnItsPortFinishesTheJobWithTheSameModel) {
  const std::string config = SourceDir() + "/examples/spambase_lr.yaml";
  const std::vector<std::string> sets = {
      "cluster.heartbeat_interval_ms=100",
      absl::StrCat("cluster.heartbeat_timeout_ms=", 1000 * testing::SlowFactor()),
      "train.epochs=12", "train.progress_interval_ms=0"};
  const std::string baseline = NewTempDir("restart-baseline");
  auto full = testing::RunCommand(LaunchArgs("examples/spambase_lr.yaml", baseline, sets),
                                  absl::Seconds(120));
  ASSERT_EQ(full.exit_code, 0) << full.output;

  // The job started by hand, so the scheduler can die alone.
  const std::string out = NewTempDir("restart");
  std::vector<std::string> scheduler = {BinDir() + "/ps_scheduler",
                                        "--config",
                                        config,
                                        "--host",
                                        "127.0.0.1",
                                        "--set",
                                        "job.output_dir=" + out,
                                        testing::TokenFlag("scheduler")};
  for (const std::string& s : Sets(sets)) scheduler.push_back(s);
  ProcessGroup group;
  std::vector<std::string> first = scheduler;
  first.insert(first.end(), {"--port", "0", "--port_file", out + "/port"});
  auto first_pid = group.Spawn({"scheduler", first, out + "/scheduler-1.log"});
  ASSERT_TRUE(first_pid.ok());
  auto port = WaitForPortFile(out + "/port", &group, *first_pid, absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(port.ok()) << port.status();
  const std::string address = absl::StrCat("127.0.0.1:", *port);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(
        group
            .Spawn({absl::StrCat("server-", i),
                    {BinDir() + "/ps_server", "--scheduler", address, testing::TokenFlag("server")},
                    absl::StrCat(out, "/server-", i, ".log")})
            .ok());
  }
  for (int i = 0; i < 2; ++i) {
    std::vector<std::string> argv = {BinDir() + "/ps_worker", "--scheduler", address,
                                     testing::TokenFlag("worker")};
    if (i == 0) argv.insert(argv.end(), {"--iteration_delay_ms", "10"});
    ASSERT_TRUE(
        group.Spawn({absl::StrCat("worker-", i), argv, absl::StrCat(out, "/worker-", i, ".log")})
            .ok());
  }
  ASSERT_TRUE(WaitForText(out + "/scheduler-1.log", "epoch 3/12", absl::Now() + absl::Seconds(60)))
      << ReadFile(out + "/scheduler-1.log");
  testing::UseAdminCredentials(testing::TokenPath("admin"));
  SchedulerClient client(address);
  auto view = client.GetView();
  ASSERT_TRUE(view.ok()) << view.status();
  auto pushes = [&] {
    uint64_t n = 0;
    for (const rpc::ServerInfo& s : view->servers()) {
      auto stub = rpc::ParameterServer::NewStub(MakeChannel(s.address()));
      grpc::ClientContext ctx;
      ctx.set_deadline(DeadlineIn(absl::Seconds(2)));
      rpc::StatsResponse stats;
      if (stub->Stats(&ctx, rpc::StatsRequest(), &stats).ok()) n += stats.pushes_applied();
    }
    return n;
  };
  // Kill it while the workers are in an epoch (pushes are going on).
  const uint64_t at_eval = pushes();
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (pushes() == at_eval) {
    ASSERT_LT(absl::Now(), deadline) << "training did not go on after epoch 3";
    absl::SleepFor(absl::Milliseconds(2));  // poll period, bounded by the deadline
  }
  group.Signal(*first_pid, SIGKILL);
  const absl::Time killed = absl::Now();
  auto dead = group.WaitAny(absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(dead.ok() && dead->name == "scheduler") << "the scheduler did not die alone";
  // Training goes on without it to the end of epoch 4, where the workers
  // wait at the barrier: every worker pushes to every server once per clock.
  const std::string train = ReadFile(SourceDir() + "/data/spambase/train.libsvm");
  const uint64_t rows = std::count(train.begin(), train.end(), '\n');
  const uint64_t epoch_pushes = 2 * 2 * ((rows + 2 * 32 - 1) / (2 * 32));  // batch 32, 2 workers
  const uint64_t at_kill = pushes();
  deadline = absl::Now() + absl::Seconds(30);
  while (pushes() < 4 * epoch_pushes) {
    ASSERT_LT(absl::Now(), deadline) << "training stopped with the scheduler: " << pushes()
                                     << " of " << 4 * epoch_pushes << " pushes";
    absl::SleepFor(absl::Milliseconds(2));  // poll period, bounded by the deadline
  }
  std::cout << "pushes applied while the scheduler was down: " << pushes() - at_kill
            << " (to the end of epoch 4, whose barrier then waits for the scheduler)" << std::endl;

  // Restored on the port it had (from its state file).
  std::vector<std::string> second = scheduler;
  second.insert(second.end(), {"--restore", "--port_file", out + "/port2"});
  auto second_pid = group.Spawn({"scheduler", second, out + "/scheduler-2.log"});
  ASSERT_TRUE(second_pid.ok());
  auto port2 =
      WaitForPortFile(out + "/port2", &group, *second_pid, absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(port2.ok()) << port2.status() << ReadFile(out + "/scheduler-2.log");
  EXPECT_EQ(*port2, *port);
  std::cout << "scheduler down for " << absl::FormatDuration(absl::Now() - killed)
            << " (kill -9 to the restored scheduler listening)" << std::endl;

  deadline = absl::Now() + absl::Seconds(120);
  while (group.size() > 0) {
    auto exit = group.WaitAny(deadline);
    ASSERT_TRUE(exit.ok()) << "the job hung after the scheduler restarted: "
                           << ReadFile(out + "/scheduler-2.log");
    EXPECT_EQ(exit->code, 0) << exit->name << ": "
                             << ReadFile(exit->name == "scheduler"
                                             ? out + "/scheduler-2.log"
                                             : out + "/" + exit->name + ".log");
  }
  EXPECT_THAT(ReadFile(out + "/scheduler-2.log"), HasSubstr("restored the scheduler's state"));
  const double diff = MaxModelDifference(baseline + "/model", out + "/model");
  std::cout << "max abs difference per weight, scheduler restarted vs not: " << diff << std::endl;
  EXPECT_EQ(diff, 0.0);
  EXPECT_EQ(JsonNumber(ReadFile(out + "/metrics.json"), "{", "epochs"), 12);
  EXPECT_FALSE(std::filesystem::exists(out + "/scheduler.state"))
      << "a finished job leaves no state";
}

TEST(Checkpoint, ResumeOrRestoreWithNothingToStartFromIsAClearError) {
  const std::string out = NewTempDir("ckpt-nothing");
  const std::vector<std::string> base = {BinDir() + "/ps_scheduler",
                                         "--config",
                                         SourceDir() + "/examples/spambase_lr.yaml",
                                         "--port",
                                         "0",
                                         "--set",
                                         "job.output_dir=" + out,
                                         testing::TokenFlag("scheduler")};
  std::vector<std::string> resume = base;
  resume.push_back("--resume");
  auto r = testing::RunCommand(resume, absl::Seconds(30));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("--resume: no complete checkpoint in '" + out + "/checkpoints'"));
  std::vector<std::string> restore = base;
  restore.push_back("--restore");
  r = testing::RunCommand(restore, absl::Seconds(30));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("--restore: cannot open '" + out + "/scheduler.state'"));
}

}  // namespace
}  // namespace ps

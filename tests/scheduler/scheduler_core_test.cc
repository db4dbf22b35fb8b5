// SchedulerCore without gRPC: ranks, barriers, the shard queue, evaluation
// merging and failure detection.
#include "scheduler/scheduler_core.h"

#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/checkpoint.h"
#include "common/clock.h"
#include "common/file_util.h"
#include "common/sealed_file.h"
#include "gtest/gtest.h"
#include "proto/ps.grpc.pb.h"

namespace ps {
namespace {

config::JobConfig Job(int servers, int workers) {
  config::JobConfig job;
  job.mutable_cluster()->set_num_servers(servers);
  job.mutable_cluster()->set_num_workers(workers);
  job.mutable_cluster()->set_num_partitions(6);
  job.mutable_data()->set_shard_size(100);
  job.mutable_job()->set_output_dir(::testing::TempDir());
  return job;
}

uint32_t Register(SchedulerCore& core, rpc::Role role, int expect_rank) {
  rpc::RegisterRequest req;
  req.set_role(role);
  if (role == rpc::SERVER) req.set_address("127.0.0.1:1");
  auto resp = core.Register(req);
  EXPECT_TRUE(resp.ok()) << resp.status();
  EXPECT_EQ(resp->rank(), expect_rank);
  return resp->node_id();
}

struct BarrierResult {
  std::optional<absl::StatusOr<rpc::ClusterView>> result;
  void Arrive(SchedulerCore& core, uint32_t node, const std::string& name) {
    rpc::BarrierRequest req;
    req.set_node_id(node);
    req.set_name(name);
    core.Barrier(req, [this](absl::StatusOr<rpc::BarrierResponse> r) {
      if (r.ok()) {
        result = r->view();
      } else {
        result = r.status();
      }
    });
  }
};

TEST(SchedulerCore, RanksInRegistrationOrderAndNoMoreThanTheJobAsks) {
  SchedulerCore core(Job(2, 1), absl::Now());
  Register(core, rpc::SERVER, 0);
  Register(core, rpc::WORKER, 0);
  Register(core, rpc::SERVER, 1);
  rpc::RegisterRequest extra;
  extra.set_role(rpc::WORKER);
  EXPECT_EQ(core.Register(extra).status().code(), absl::StatusCode::kFailedPrecondition);
  const rpc::ClusterView view = core.View();
  EXPECT_EQ(view.state(), rpc::RUNNING);
  ASSERT_EQ(view.partition_owner_size(), 6);
  std::set<int> owners(view.partition_owner().begin(), view.partition_owner().end());
  EXPECT_EQ(owners, (std::set<int>{0, 1}));  // spread over both servers
}

TEST(SchedulerCore, StartBarrierWaitsForEveryServerAndWorker) {
  SchedulerCore core(Job(1, 2), absl::Now());
  const uint32_t s = Register(core, rpc::SERVER, 0);
  const uint32_t w0 = Register(core, rpc::WORKER, 0);
  BarrierResult a, b, c;
  a.Arrive(core, s, "start");
  b.Arrive(core, w0, "start");
  EXPECT_FALSE(a.result.has_value());
  const uint32_t w1 = Register(core, rpc::WORKER, 1);
  EXPECT_FALSE(a.result.has_value());
  c.Arrive(core, w1, "start");
  ASSERT_TRUE(a.result.has_value() && b.result.has_value() && c.result.has_value());
  EXPECT_TRUE(a.result->ok());
  EXPECT_EQ((*c.result)->live_workers_size(), 2);
  // Barriers answer with the view's version, state and live workers only
  // (the client fetches the rest when it lacks that version).
  const rpc::ClusterView view = core.View();
  EXPECT_EQ((*c.result)->version(), view.version());
  EXPECT_EQ((*c.result)->state(), view.state());
  EXPECT_EQ((*c.result)->partition_owner_size(), 0);
  EXPECT_GT(view.partition_owner_size(), 0);
}

TEST(SchedulerCore, ShardQueueHandsOutEachShardOncePerEpoch) {
  SchedulerCore core(Job(1, 2), absl::Now());
  Register(core, rpc::SERVER, 0);
  const uint32_t w0 = Register(core, rpc::WORKER, 0);
  const uint32_t w1 = Register(core, rpc::WORKER, 1);
  for (int epoch = 0; epoch < 2; ++epoch) {
    uint64_t covered = 0;
    std::set<uint32_t> shards;
    for (int i = 0;; ++i) {
      rpc::NextShardRequest req;
      req.set_node_id(i % 2 ? w1 : w0);
      req.set_epoch(epoch);
      req.set_train_examples(250);
      auto resp = core.NextShard(req);
      ASSERT_TRUE(resp.ok());
      if (!resp->has_shard()) break;
      EXPECT_TRUE(shards.insert(resp->shard()).second);
      covered += resp->end() - resp->begin();
    }
    EXPECT_EQ(covered, 250u);
    EXPECT_EQ(shards.size(), 3u);
  }
  rpc::NextShardRequest other;
  other.set_node_id(w0);
  other.set_train_examples(300);
  EXPECT_EQ(core.NextShard(other).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SchedulerCore, EvaluationIsMergedOverWorkersBeforeMetrics) {
  SchedulerCore core(Job(1, 2), absl::Now());
  Register(core, rpc::SERVER, 0);
  const uint32_t w0 = Register(core, rpc::WORKER, 0);
  const uint32_t w1 = Register(core, rpc::WORKER, 1);
  // Alone, each half has AUC 1 or only one class; merged, the ranking has one
  // inversion out of 4 pairs: AUC 0.75. An average of per-worker AUCs would differ.
  rpc::SubmitEvalRequest a;
  a.set_node_id(w0);
  for (float s : {0.9f, 0.2f}) a.add_scores(s);
  for (float l : {1.0f, 0.0f}) a.add_labels(l);
  rpc::SubmitEvalRequest b;
  b.set_node_id(w1);
  for (float s : {0.3f, 0.6f}) b.add_scores(s);
  for (float l : {1.0f, 0.0f}) b.add_labels(l);
  ASSERT_TRUE(core.SubmitEval(a).ok());
  ASSERT_TRUE(core.SubmitEval(b).ok());
  // The result is in metrics.json at the end; here, check via a bad submit
  // that the epoch's parts were consumed (a new epoch-0 part starts over).
  rpc::SubmitEvalRequest bad;
  bad.set_node_id(w0);
  bad.add_scores(0.5f);
  EXPECT_EQ(core.SubmitEval(bad).code(), absl::StatusCode::kInvalidArgument);
}

TEST(SchedulerCore, SilentWorkerIsDroppedAndTheOthersGoOn) {
  config::JobConfig job = Job(1, 2);
  job.mutable_cluster()->set_heartbeat_timeout_ms(1000);
  const absl::Time t0 = absl::Now();
  SchedulerCore core(job, t0);
  const uint32_t s = Register(core, rpc::SERVER, 0);
  const uint32_t w0 = Register(core, rpc::WORKER, 0);
  Register(core, rpc::WORKER, 1);
  // Worker 1 takes a shard, then goes silent.
  rpc::NextShardRequest shard;
  shard.set_node_id(w0 + 1);
  shard.set_epoch(0);
  shard.set_train_examples(150);
  auto taken = core.NextShard(shard);
  ASSERT_TRUE(taken.ok() && taken->has_shard());
  BarrierResult waiting;
  waiting.Arrive(core, w0, "epoch-0");  // waits for worker 1
  for (uint32_t node : {s, w0}) {
    rpc::HeartbeatRequest hb;
    hb.set_node_id(node);
    ASSERT_TRUE(core.Heartbeat(hb, absl::Now() + absl::Seconds(5)).ok());
  }
  EXPECT_FALSE(core.Poll(t0 + absl::Milliseconds(500)));
  EXPECT_FALSE(waiting.result.has_value());
  core.Poll(absl::Now() + absl::Seconds(5));  // worker 1 has been silent for 5 s
  EXPECT_EQ(core.state(), rpc::RUNNING);
  ASSERT_TRUE(waiting.result.has_value()) << "the barrier no longer waits for the dead worker";
  ASSERT_TRUE(waiting.result->ok());
  EXPECT_EQ((*waiting.result)->live_workers_size(), 1);
  // Its shard is handed out again.
  shard.set_node_id(w0);
  auto again = core.NextShard(shard);
  ASSERT_TRUE(again.ok() && again->has_shard());
  EXPECT_EQ(again->begin(), taken->begin());
  EXPECT_EQ(again->end(), taken->end());
}

TEST(SchedulerCore, SilentServerFailsTheJobAndReleasesBarriersWithAnError) {
  config::JobConfig job = Job(1, 1);
  job.mutable_cluster()->set_heartbeat_timeout_ms(1000);
  SchedulerCore core(job, absl::Now());
  Register(core, rpc::SERVER, 0);
  const uint32_t w = Register(core, rpc::WORKER, 0);
  BarrierResult waiting;
  waiting.Arrive(core, w, "end");  // held until the model is saved
  rpc::HeartbeatRequest hb;
  hb.set_node_id(w);
  ASSERT_TRUE(core.Heartbeat(hb, absl::Now() + absl::Seconds(5)).ok());
  core.Poll(absl::Now() + absl::Seconds(5));
  EXPECT_EQ(core.state(), rpc::FAILED);
  EXPECT_NE(core.failure().find("server 0 at 127.0.0.1:1 sent no heartbeat"), std::string::npos)
      << core.failure();
  ASSERT_TRUE(waiting.result.has_value());
  EXPECT_EQ(waiting.result->status().code(), absl::StatusCode::kAborted);
}

std::string FreshPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/", name, "-", getpid(), "-", absl::ToUnixNanos(absl::Now()));
}

rpc::NextShardRequest ShardRequest(uint32_t node, uint64_t id) {
  rpc::NextShardRequest req;
  req.set_node_id(node);
  req.set_epoch(0);
  req.set_train_examples(250);
  req.set_request_id(id);
  return req;
}

TEST(SchedulerCore, ARestartedSchedulerCarriesOnFromTheStateFile) {
  const config::JobConfig job = Job(1, 2);
  const std::string path = FreshPath("scheduler.state");
  SchedulerCore first(job, absl::Now(), SchedulerCore::Options{path});
  const uint32_t s = Register(first, rpc::SERVER, 0);
  const uint32_t w0 = Register(first, rpc::WORKER, 0);
  const uint32_t w1 = Register(first, rpc::WORKER, 1);
  BarrierResult lost;
  lost.Arrive(first, w0, "epoch-0");  // its call dies with the scheduler
  auto handed = first.NextShard(ShardRequest(w1, 7));
  ASSERT_TRUE(handed.ok() && handed->has_shard());
  const uint64_t version = first.View().version();

  // The view is in its own file, written once per version.
  auto bytes = ReadSealedFile(path, kMaxStateFileBytes);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  rpc::SchedulerState raw;
  ASSERT_TRUE(raw.ParseFromString(*bytes));
  EXPECT_EQ(raw.view_file_version(), version);
  EXPECT_FALSE(raw.has_view());
  auto read = ReadSchedulerState(path);
  ASSERT_TRUE(read.ok()) << read.status();
  const rpc::SchedulerState& state = *read;
  EXPECT_EQ(state.view().version(), version);
  EXPECT_EQ(state.view().partition_owner_size(), first.View().partition_owner_size());
  SchedulerCore second(job, absl::Now(), SchedulerCore::Options{path});
  ASSERT_TRUE(second.Restore(state, absl::Now()).ok());

  // Members keep their node ids; the map version moves on.
  EXPECT_GT(second.View().version(), version);
  EXPECT_EQ(second.View().live_workers_size(), 2);
  for (uint32_t node : {s, w0, w1}) {
    rpc::HeartbeatRequest hb;
    hb.set_node_id(node);
    auto resp = second.Heartbeat(hb, absl::Now());
    ASSERT_TRUE(resp.ok());
    EXPECT_TRUE(resp->known()) << node;
  }
  // A retried NextShard gets the shard it was handed before; the queue goes on.
  auto retried = second.NextShard(ShardRequest(w1, 7));
  ASSERT_TRUE(retried.ok());
  EXPECT_EQ(retried->begin(), handed->begin());
  EXPECT_EQ(retried->end(), handed->end());
  auto next = second.NextShard(ShardRequest(w0, 1));
  ASSERT_TRUE(next.ok() && next->has_shard());
  EXPECT_EQ(next->begin(), handed->end());
  // Worker 0 arrived at epoch-0 before the restart: worker 1 completes it.
  BarrierResult again, last;
  again.Arrive(second, w0, "epoch-0");
  EXPECT_FALSE(again.result.has_value());
  last.Arrive(second, w1, "epoch-0");
  ASSERT_TRUE(again.result.has_value() && last.result.has_value());
  EXPECT_TRUE(last.result->ok());
  // A finished job leaves nothing to restore.
  second.RemoveStateFile();
  EXPECT_FALSE(ReadWholeFile(path).ok());
}

// Barriers cost one state write each (at their release, not per arrival),
// and a released barrier keeps only its name in the state, never who
// arrived. Released barriers are never forgotten: a standby taking over a
// rank in BSP replays them all, and each answers it at once.
TEST(SchedulerCore, BarriersAreWrittenWhenReleasedAndAnswerLateArrivals) {
  const config::JobConfig job = Job(1, 2);
  const std::string path = FreshPath("barriers.state");
  SchedulerCore core(job, absl::Now(), SchedulerCore::Options{path});
  Register(core, rpc::SERVER, 0);
  const uint32_t w0 = Register(core, rpc::WORKER, 0);
  const uint32_t w1 = Register(core, rpc::WORKER, 1);
  auto barriers_in_state = [&] {
    auto read = ReadSchedulerState(path);
    EXPECT_TRUE(read.ok()) << read.status();
    std::map<std::string, int> arrived;  // name -> arrivals written
    for (const auto& r : read->barriers()) arrived[r.name()] = r.arrived_size();
    return arrived;
  };
  for (int k = 0; k < 40; ++k) {
    BarrierResult a, b;
    a.Arrive(core, w0, absl::StrCat("bench-", k));
    b.Arrive(core, w1, absl::StrCat("bench-", k));
    ASSERT_TRUE(a.result.has_value() && b.result.has_value()) << k;
  }
  std::map<std::string, int> written = barriers_in_state();
  EXPECT_EQ(written.size(), 40u);
  for (const auto& [name, arrivals] : written) EXPECT_EQ(arrivals, 0) << name;
  // An arrival alone is not written.
  BarrierResult half;
  half.Arrive(core, w0, "bench-40");
  EXPECT_FALSE(half.result.has_value());
  EXPECT_FALSE(barriers_in_state().contains("bench-40"));
  // Late arrivals (a replaying standby, a call re-sent after a restart) at
  // released barriers, old or recent, are answered at once.
  for (const char* name : {"bench-0", "bench-38"}) {
    BarrierResult late;
    late.Arrive(core, w1, name);
    ASSERT_TRUE(late.result.has_value()) << name;
    EXPECT_TRUE(late.result->ok()) << name;
  }
}

// A job resumed from a (made-up) checkpoint: its partitions load from it at
// the start, and with replication 1 a dead server's partitions are placed on
// the standby, which loads them from it too, instead of failing the job.
TEST(SchedulerCore, WithACheckpointADeadServersPartitionsGoToTheStandby) {
  config::JobConfig job = Job(2, 1);
  job.mutable_cluster()->set_heartbeat_timeout_ms(1000);
  job.mutable_train()->set_epochs(5);
  SchedulerCore core(job, absl::Now());
  FoundCheckpoint found;
  found.dir = "/checkpoints/epoch-2";
  found.manifest.set_epochs_done(2);
  found.manifest.set_next_clock(40);
  *found.manifest.mutable_job() = job;
  ASSERT_TRUE(core.ResumeFrom(found).ok());
  Register(core, rpc::SERVER, 0);
  const uint32_t s1 = Register(core, rpc::SERVER, 1);
  rpc::RegisterRequest worker;
  worker.set_role(rpc::WORKER);
  auto w = core.Register(worker);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->start_epoch(), 2);
  EXPECT_EQ(w->start_clock(), 40);
  rpc::RegisterRequest standby;
  standby.set_role(rpc::SERVER);
  standby.set_standby(true);
  standby.set_address("127.0.0.1:2");
  ASSERT_TRUE(core.Register(standby).ok());
  const rpc::ClusterView resumed = core.View();
  for (const rpc::Placement& pl : resumed.placement()) {
    EXPECT_EQ(pl.restore_from(), found.dir);
    EXPECT_FALSE(pl.restore_rejoin());
  }
  for (uint32_t node : {s1, w->node_id(), s1 + 2}) {
    rpc::HeartbeatRequest hb;
    hb.set_node_id(node);
    ASSERT_TRUE(core.Heartbeat(hb, absl::Now() + absl::Seconds(5)).ok());
  }
  core.Poll(absl::Now() + absl::Seconds(5));  // server 0 has been silent for 5 s
  ASSERT_EQ(core.state(), rpc::RUNNING) << core.failure();
  const rpc::ClusterView view = core.View();
  for (int p = 0; p < view.placement_size(); ++p) {
    const rpc::Placement& pl = view.placement(p);
    EXPECT_NE(pl.primary(), 0);
    if (p % 2 == 0) {  // were on server 0
      EXPECT_EQ(pl.primary(), 2);
      EXPECT_EQ(pl.epoch(), 2u);
      EXPECT_EQ(pl.restore_from(), found.dir);
      EXPECT_TRUE(pl.restore_rejoin());
    }
  }
}

TEST(SchedulerCore, ResumingNeedsACompatibleCheckpointWithEpochsLeft) {
  config::JobConfig job = Job(1, 1);
  job.mutable_train()->set_epochs(3);
  SchedulerCore core(job, absl::Now());
  FoundCheckpoint found;
  found.dir = "/checkpoints/epoch-3";
  found.manifest.set_epochs_done(3);
  *found.manifest.mutable_job() = job;
  EXPECT_EQ(core.ResumeFrom(found).code(), absl::StatusCode::kFailedPrecondition);
  found.manifest.set_epochs_done(1);
  found.manifest.mutable_job()->mutable_cluster()->set_num_partitions(7);
  const absl::Status s = core.ResumeFrom(found);
  EXPECT_NE(s.message().find("partitions"), absl::string_view::npos) << s;
}

// Heartbeats from `nodes` at `when`; servers report their backups complete.
void Beat(SchedulerCore& core, const std::vector<uint32_t>& nodes, absl::Time when) {
  for (uint32_t node : nodes) {
    rpc::HeartbeatRequest hb;
    hb.set_node_id(node);
    for (uint32_t p = 0; p < 6; ++p) hb.add_synced_partitions(p);
    ASSERT_TRUE(core.Heartbeat(hb, when).ok());
  }
}

// A job with `replication` copies of each partition, a 1 s heartbeat
// timeout and no rebalancing (the failover tests below).
config::JobConfig ReplicatedJob(int servers, int workers, int replication) {
  config::JobConfig job = Job(servers, workers);
  job.mutable_cluster()->set_heartbeat_interval_ms(100);
  job.mutable_cluster()->set_heartbeat_timeout_ms(1000);
  job.mutable_cluster()->set_replication(replication);
  job.mutable_cluster()->set_rebalance_interval_ms(0);
  return job;
}

TEST(SchedulerCore, DeadServerIsReplacedByItsBackupsInANewEpoch) {
  SchedulerCore core(ReplicatedJob(2, 1, 2), absl::Now());
  const uint32_t s0 = Register(core, rpc::SERVER, 0);
  const uint32_t s1 = Register(core, rpc::SERVER, 1);
  const uint32_t w = Register(core, rpc::WORKER, 0);
  rpc::RegisterRequest standby;
  standby.set_role(rpc::SERVER);
  standby.set_address("127.0.0.1:3");
  standby.set_standby(true);
  auto sb = core.Register(standby);
  ASSERT_TRUE(sb.ok());
  EXPECT_EQ(sb->rank(), 2);
  const rpc::ClusterView before = core.View();
  ASSERT_EQ(before.placement_size(), 6);
  for (const rpc::Placement& pl : before.placement()) {
    EXPECT_EQ(pl.backups_size(), 1);
    EXPECT_NE(pl.backups(0), pl.primary());
    EXPECT_EQ(pl.epoch(), 1u);
  }
  Beat(core, {s0, s1, sb->node_id(), w}, absl::Now());
  // Server 0 goes silent.
  Beat(core, {s1, sb->node_id(), w}, absl::Now() + absl::Seconds(5));
  core.Poll(absl::Now() + absl::Seconds(5));
  ASSERT_EQ(core.state(), rpc::RUNNING) << core.failure();
  const rpc::ClusterView after = core.View();
  EXPECT_GT(after.version(), before.version());
  EXPECT_TRUE(after.servers(0).dead());
  for (int p = 0; p < 6; ++p) {
    const rpc::Placement& pl = after.placement(p);
    EXPECT_EQ(pl.primary(), 1) << "partition " << p;
    EXPECT_EQ(after.partition_owner(p), 1);
    ASSERT_EQ(pl.backups_size(), 1);
    EXPECT_EQ(pl.backups(0), 2) << "the standby takes the new copies";
    EXPECT_EQ(pl.epoch(), before.placement(p).primary() == 0 ? 2u : 1u) << "partition " << p;
  }
  // The dead server is told it was replaced.
  rpc::HeartbeatRequest hb;
  hb.set_node_id(s0);
  auto told = core.Heartbeat(hb, absl::Now() + absl::Seconds(6));
  ASSERT_TRUE(told.ok());
  EXPECT_FALSE(told->known());
}

// A new primary term: the other backups' copies are of the old term until
// the new primary's snapshot reaches them, and count as complete only once
// they report it (servers report a backup complete for the view's epoch).
TEST(SchedulerCore, AfterAPromotionTheOtherBackupsCountOnlyOnceTheyReportTheNewTerm) {
  SchedulerCore core(ReplicatedJob(3, 1, 3), absl::Now());
  const uint32_t s0 = Register(core, rpc::SERVER, 0);
  const uint32_t s1 = Register(core, rpc::SERVER, 1);
  const uint32_t s2 = Register(core, rpc::SERVER, 2);
  const uint32_t w = Register(core, rpc::WORKER, 0);
  Beat(core, {s0, s1, s2, w}, absl::Now());
  const rpc::ClusterView before = core.View();
  for (const rpc::Placement& pl : before.placement()) ASSERT_EQ(pl.synced_backups_size(), 2);
  // Server 0 goes silent: its partitions get new primaries in a new term.
  Beat(core, {s1, s2, w}, absl::Now() + absl::Seconds(5));
  core.Poll(absl::Now() + absl::Seconds(5));
  ASSERT_EQ(core.state(), rpc::RUNNING) << core.failure();
  int promoted = 0;
  const rpc::ClusterView after = core.View();
  for (const rpc::Placement& pl : after.placement()) {
    if (pl.epoch() == 1) continue;
    ++promoted;
    EXPECT_EQ(pl.backups_size(), 1);
    EXPECT_EQ(pl.synced_backups_size(), 0) << "a copy of the old term counted as complete";
  }
  EXPECT_GT(promoted, 0);
  // Once the backups report the new term's copy, they count again.
  Beat(core, {s1, s2, w}, absl::Now() + absl::Seconds(5));
  const rpc::ClusterView reported = core.View();
  for (const rpc::Placement& pl : reported.placement()) EXPECT_EQ(pl.synced_backups_size(), 1);
}

TEST(SchedulerCore, BackupStillCopyingIsNotPromoted) {
  config::JobConfig job = Job(2, 1);
  job.mutable_cluster()->set_heartbeat_timeout_ms(1000);
  job.mutable_cluster()->set_replication(2);
  SchedulerCore core(job, absl::Now());
  const uint32_t s0 = Register(core, rpc::SERVER, 0);
  const uint32_t s1 = Register(core, rpc::SERVER, 1);
  const uint32_t w = Register(core, rpc::WORKER, 0);
  // Server 1 never reports a complete copy; then server 0 dies.
  rpc::HeartbeatRequest hb;
  hb.set_node_id(s1);
  ASSERT_TRUE(core.Heartbeat(hb, absl::Now() + absl::Seconds(5)).ok());
  hb.set_node_id(w);
  ASSERT_TRUE(core.Heartbeat(hb, absl::Now() + absl::Seconds(5)).ok());
  (void)s0;
  core.Poll(absl::Now() + absl::Seconds(5));
  EXPECT_EQ(core.state(), rpc::FAILED);
  EXPECT_NE(core.failure().find("no other complete replica"), std::string::npos) << core.failure();
}

TEST(SchedulerCore, StandbyWorkerTakesOverTheRankOfADeadWorker) {
  config::JobConfig job = Job(1, 2);
  job.mutable_cluster()->set_heartbeat_timeout_ms(1000);
  SchedulerCore core(job, absl::Now());
  const uint32_t s = Register(core, rpc::SERVER, 0);
  const uint32_t w0 = Register(core, rpc::WORKER, 0);
  const uint32_t w1 = Register(core, rpc::WORKER, 1);
  rpc::RegisterRequest reg;
  reg.set_role(rpc::WORKER);
  reg.set_standby(true);
  auto spare = core.Register(reg);
  auto spare2 = core.Register(reg);
  ASSERT_TRUE(spare.ok() && spare2.ok());
  EXPECT_EQ(spare->rank(), -1);
  // Worker 1 arrives at a barrier, then dies; so does the second standby.
  BarrierResult b0, b1;
  b1.Arrive(core, w1, "epoch-0");
  Beat(core, {s, w0, spare->node_id()}, absl::Now() + absl::Seconds(5));
  core.Poll(absl::Now() + absl::Seconds(5));
  ASSERT_EQ(core.state(), rpc::RUNNING);
  EXPECT_EQ(core.View().live_workers_size(), 2) << "rank 1 stays live: the standby has it";
  rpc::HeartbeatRequest hb;
  hb.set_node_id(spare->node_id());
  auto resp = core.Heartbeat(hb, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->rank(), 1);
  // The dead worker's arrival no longer counts: the barrier waits for its successor.
  b0.Arrive(core, w0, "epoch-0");
  EXPECT_FALSE(b0.result.has_value());
  BarrierResult b2;
  b2.Arrive(core, spare->node_id(), "epoch-0");
  ASSERT_TRUE(b0.result.has_value());
  EXPECT_TRUE(b0.result->ok());
  // The dead second standby held no rank.
  hb.set_node_id(spare2->node_id());
  resp = core.Heartbeat(hb, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(resp.ok());
  EXPECT_FALSE(resp->known());
}

}  // namespace
}  // namespace ps

namespace ps {
namespace {

// A SchedulerCore whose time is a FakeClock the test moves.
struct OnAFakeClock {
  static SchedulerCore::Options WithClock(const Clock* clock) {
    SchedulerCore::Options options;
    options.clock = clock;
    return options;
  }
  explicit OnAFakeClock(const config::JobConfig& job) : core(job, clock.Now(), WithClock(&clock)) {}
  FakeClock clock;
  SchedulerCore core;
};

// Failure detection on a clock the test moves (scheduler/liveness.h): a
// scheduler that hears from nobody for 20 s (its own link cut) fails
// nothing over, not even a server a client reported and a probe could not
// reach; once it hears from everyone again, one silent server is failed
// over as before.
TEST(SchedulerCore, ASchedulerCutOffFromMostMembersFailsNothingOverButAMinorityIsFailedOver) {
  config::JobConfig job = ReplicatedJob(2, 2, 2);
  job.mutable_cluster()->set_heartbeat_timeout_ms(5000);
  OnAFakeClock t(job);
  FakeClock& clock = t.clock;
  SchedulerCore& core = t.core;
  const uint32_t s0 = Register(core, rpc::SERVER, 0);
  const uint32_t s1 = Register(core, rpc::SERVER, 1);
  const uint32_t w0 = Register(core, rpc::WORKER, 0);
  const uint32_t w1 = Register(core, rpc::WORKER, 1);
  Beat(core, {s0, s1, w0, w1}, clock.Now());
  const rpc::ClusterView before = core.View();
  for (int i = 0; i < 200; ++i) {  // 20 s, polled every 100 ms
    clock.Advance(absl::Milliseconds(100));
    if (i == 100) core.Suspect(w0, 0, "connection refused");  // a worker's report, mid-cut
    core.Poll(clock.Now());
    ASSERT_EQ(core.state(), rpc::RUNNING) << core.failure();
  }
  const rpc::ClusterView during = core.View();
  EXPECT_EQ(during.version(), before.version()) << "a view change while cut off";
  for (const rpc::ServerInfo& s : during.servers()) EXPECT_FALSE(s.dead()) << s.rank();
  EXPECT_EQ(during.live_workers_size(), 2);
  // The link is back; then server 0 alone stops.
  for (int i = 0; i < 80; ++i) {  // 8 s
    clock.Advance(absl::Milliseconds(100));
    if (i % 5 == 0)
      Beat(core, i < 10 ? std::vector<uint32_t>{s0, s1, w0, w1} : std::vector<uint32_t>{s1, w0, w1},
           clock.Now());
    core.Poll(clock.Now());
  }
  ASSERT_EQ(core.state(), rpc::RUNNING) << core.failure();
  const rpc::ClusterView after = core.View();
  EXPECT_GT(after.version(), before.version());
  EXPECT_TRUE(after.servers(0).dead());
  EXPECT_FALSE(after.servers(1).dead());
  for (int p = 0; p < 6; ++p) EXPECT_EQ(after.partition_owner(p), 1) << "partition " << p;
  EXPECT_EQ(after.live_workers_size(), 2);
}

}  // namespace
}  // namespace ps

namespace ps {
namespace {

// A server that answers the scheduler's probe (Stats) and nothing else.
class ProbeAnswerer final : public rpc::ParameterServer::Service {
 public:
  ProbeAnswerer() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~ProbeAnswerer() override { server_->Shutdown(); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  grpc::Status Stats(grpc::ServerContext*, const rpc::StatsRequest*, rpc::StatsResponse*) override {
    return grpc::Status::OK;
  }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// Servers 0 and 1 at `address`, then workers 0 and 1: their node ids.
std::vector<uint32_t> RegisterTwoAndTwo(SchedulerCore& core, const std::string& address) {
  std::vector<uint32_t> members;
  for (int rank = 0; rank < 2; ++rank) {
    rpc::RegisterRequest req;
    req.set_role(rpc::SERVER);
    req.set_address(address);
    auto resp = core.Register(req);
    EXPECT_TRUE(resp.ok()) << resp.status();
    EXPECT_EQ(resp->rank(), rank);
    members.push_back(resp->node_id());
  }
  for (int rank = 0; rank < 2; ++rank) members.push_back(Register(core, rpc::WORKER, rank));
  return members;
}

// A worker that cannot reach server 0 while the scheduler can (a link cut
// between the two only): once its calls have failed for a heartbeat
// timeout, server 0 is failed over; a worker that reports every server is
// the one with the bad link, and the servers stay.
TEST(SchedulerCore, AServerCutOffFromOneWorkerIsFailedOverAfterATimeoutOfReports) {
  ProbeAnswerer answerer;
  ASSERT_NE(answerer.address(), "127.0.0.1:0");
  for (const bool reports_both : {true, false}) {
    OnAFakeClock t(ReplicatedJob(2, 2, 2));  // 1 s timeout
    FakeClock& clock = t.clock;
    SchedulerCore& core = t.core;
    const std::vector<uint32_t> members = RegisterTwoAndTwo(core, answerer.address());
    const uint32_t w0 = members[2];
    const uint64_t version = core.View().version();
    // Worker 0 reports server 0 (and server 1 too, in the first round)
    // every 300 ms; everyone heartbeats.
    bool dead = false;
    absl::Duration reported;
    for (int i = 0; i < 10 && !dead; ++i) {
      Beat(core, members, clock.Now());
      core.Suspect(w0, 0, "connect: No route to host", reported);
      if (reports_both) core.Suspect(w0, 1, "connect: No route to host", reported);
      core.Poll(clock.Now());
      dead = core.View().servers(0).dead();
      if (!dead) {
        clock.Advance(absl::Milliseconds(300));
        reported += absl::Milliseconds(300);
      }
    }
    ASSERT_EQ(core.state(), rpc::RUNNING) << core.failure();
    if (reports_both) {
      EXPECT_FALSE(dead) << "a worker reporting every server failed one over";
      EXPECT_EQ(core.View().version(), version);
      continue;
    }
    ASSERT_TRUE(dead) << "server 0 was never failed over";
    EXPECT_GE(reported, absl::Seconds(1)) << "failed over before a heartbeat timeout of reports";
    EXPECT_LE(reported, absl::Milliseconds(1500));
    const rpc::ClusterView after = core.View();
    for (int p = 0; p < 6; ++p) EXPECT_EQ(after.partition_owner(p), 1) << "partition " << p;
  }
}

}  // namespace
}  // namespace ps

namespace ps {
namespace {

// What does not move a server a worker reports while the scheduler reaches
// it: reports of calls failing for less than a heartbeat timeout (a blip, a
// slow call), however many; and a scheduler that is itself cut off.
TEST(SchedulerCore, ShortFailuresAndAnIsolatedSchedulerMoveNoServer) {
  ProbeAnswerer answerer;
  OnAFakeClock t(ReplicatedJob(2, 2, 2));  // 1 s timeout
  FakeClock& clock = t.clock;
  SchedulerCore& core = t.core;
  const std::vector<uint32_t> members = RegisterTwoAndTwo(core, answerer.address());
  const uint32_t w0 = members[2];
  const uint64_t version = core.View().version();
  // 5 s of blips: every call fails for 0.5 s, then goes through.
  for (int i = 0; i < 20; ++i) {
    clock.Advance(absl::Milliseconds(250));
    Beat(core, members, clock.Now());
    core.Suspect(w0, 0, "Deadline Exceeded", absl::Milliseconds(500));
    core.Poll(clock.Now());
  }
  EXPECT_EQ(core.View().version(), version) << "blips moved a server";
  // The scheduler hears from nobody (it notices after half a timeout);
  // then worker 0's reports of a long failure arrive all the same.
  clock.Advance(absl::Milliseconds(750));
  core.Poll(clock.Now());
  for (int i = 0; i < 12; ++i) {
    clock.Advance(absl::Milliseconds(250));
    core.Suspect(w0, 0, "Deadline Exceeded", absl::Seconds(5));
    core.Poll(clock.Now());
  }
  ASSERT_EQ(core.state(), rpc::RUNNING) << core.failure();
  EXPECT_EQ(core.View().version(), version) << "a server moved while the scheduler was cut off";
}

}  // namespace
}  // namespace ps

// ServerCore without gRPC: the consistency gate, BSP aggregation, dedupe.
#include "server/server_core.h"

#include <unistd.h>

#include <atomic>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/checkpoint.h"
#include "common/partitioning.h"
#include "common/sync.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/optimizer.h"
#include "server/partition.h"

namespace ps {
namespace {

config::JobConfig Job(config::Mode mode, int staleness = 2) {
  config::JobConfig job;
  job.mutable_job()->set_mode(mode);
  job.mutable_job()->set_staleness(staleness);
  job.mutable_cluster()->set_num_partitions(8);
  job.mutable_optimizer()->set_type(config::SGD);
  job.mutable_optimizer()->set_learning_rate(1.0f);
  job.mutable_job()->set_output_dir(absl::StrCat(::testing::TempDir(), "/server-core-", getpid()));
  return job;
}

rpc::ClusterView View(int workers) {
  rpc::ClusterView view;
  view.set_version(1);
  for (int p = 0; p < 8; ++p) view.add_partition_owner(0);
  for (int w = 0; w < workers; ++w) view.add_live_workers(w);
  return view;
}

rpc::PushRequest PushOf(int worker, std::optional<int64_t> clock, uint64_t key, float grad,
                        uint64_t seq, uint64_t examples = 1) {
  rpc::PushRequest req;
  req.set_worker(worker);
  req.set_incarnation(1);
  req.set_seq(seq);
  if (clock) req.set_clock(*clock);
  req.set_num_examples(examples);
  auto* s = req.add_slices();
  s->set_table(kLrWeights);
  s->add_keys(key);
  s->add_values(grad);
  return req;
}

// Push and Tick complete at once here (no backups), so they are waited on
// with a deadline only for safety.
absl::StatusOr<bool> PushNow(ServerCore& core, const rpc::PushRequest& req) {
  rpc::PushResponse resp;
  Notification done;
  absl::Status status;
  core.Push(&req, &resp, absl::Now() + absl::Seconds(30), [&](absl::Status s) {
    status = s;
    done.Notify();
  });
  if (!done.WaitForNotificationWithTimeout(absl::Seconds(30))) return absl::DeadlineExceededError("push");
  if (!status.ok()) return status;
  return resp.duplicate();
}

absl::Status TickNow(ServerCore& core, int worker, int64_t clock) {
  rpc::TickRequest req;
  req.set_worker(worker);
  req.set_clock(clock);
  Notification done;
  absl::Status status;
  core.Tick(req, absl::Now() + absl::Seconds(30), [&](absl::Status s) {
    status = s;
    done.Notify();
  });
  if (!done.WaitForNotificationWithTimeout(absl::Seconds(30))) return absl::DeadlineExceededError("tick");
  return status;
}

// A pull whose completion the test can observe.
struct PendingPull {
  rpc::PullRequest req;
  rpc::PullResponse resp;
  std::optional<absl::Status> status;

  PendingPull(uint64_t key, std::optional<int64_t> clock, int worker = 0) {
    req.set_worker(worker);
    if (clock) req.set_clock(*clock);
    auto* s = req.add_slices();
    s->set_table(kLrWeights);
    s->add_keys(key);
  }
  void Start(ServerCore& core, absl::Duration timeout = absl::Seconds(30)) {
    core.Pull(&req, &resp, absl::Now() + timeout, [this](absl::Status s) { status = s; });
  }
  float value() const { return resp.slices(0).values(0); }
};

TEST(ServerCore, AspAppliesAtOnceAndPullsNeverWait) {
  ServerCore core(Job(config::ASP), 0);
  core.UpdateView(View(2));
  ASSERT_TRUE(PushNow(core, PushOf(0, std::nullopt, 5, 0.5f, 1)).ok());
  PendingPull pull(5, 100);
  pull.Start(core);
  ASSERT_TRUE(pull.status.has_value());
  EXPECT_TRUE(pull.status->ok());
  EXPECT_FLOAT_EQ(pull.value(), -0.5f);
}

TEST(ServerCore, RequestsBeforeAViewAreUnavailable) {
  ServerCore core(Job(config::ASP), 0);
  EXPECT_EQ(PushNow(core, PushOf(0, std::nullopt, 5, 0.5f, 1)).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(ServerCore, BspAveragesAClockOverAllWorkersBeforeAnyReadSeesIt) {
  ServerCore core(Job(config::BSP), 0);
  core.UpdateView(View(2));
  // Worker 0: 3 examples with gradient sum 3; worker 1: 1 example, sum 5.
  ASSERT_TRUE(PushNow(core, PushOf(0, 0, 7, 3.0f, 1, /*examples=*/3)).ok());
  PendingPull early(7, 1);
  early.Start(core);
  EXPECT_FALSE(early.status.has_value()) << "clock 0 is not complete: the read must wait";
  ASSERT_TRUE(PushNow(core, PushOf(1, 0, 7, 5.0f, 1, /*examples=*/1)).ok());
  ASSERT_TRUE(early.status.has_value());
  ASSERT_TRUE(early.status->ok());
  EXPECT_FLOAT_EQ(early.value(), -(3.0f + 5.0f) / 4.0f);  // one step, averaged over 4 examples
}

TEST(ServerCore, BspClosesTheClocksAWorkerJumpedOverAtOnce) {
  // Clocks may jump far (a worker's clock is allowed up to 2^62): the empty
  // clocks between are closed as one, not one at a time (that looped for
  // hours; found by fuzz_data_frame). Worker 0 pushes at 0 and then at
  // 2^40; worker 1 at 0 and 2^40 + 1: clock 0 is applied, then everything
  // up to 2^40, whose push is applied alone.
  ServerCore core(Job(config::BSP), 0);
  core.UpdateView(View(2));
  const int64_t far = int64_t{1} << 40;
  ASSERT_TRUE(PushNow(core, PushOf(0, 0, 7, 1.0f, 1)).ok());
  ASSERT_TRUE(PushNow(core, PushOf(1, 0, 7, 3.0f, 1)).ok());
  ASSERT_TRUE(PushNow(core, PushOf(0, far, 7, 4.0f, 2)).ok());
  PendingPull before(7, far);
  before.Start(core);
  EXPECT_FALSE(before.status.has_value()) << "worker 1 has not covered the clocks below 2^40";
  ASSERT_TRUE(PushNow(core, PushOf(1, far + 1, 7, 8.0f, 2)).ok());
  ASSERT_TRUE(before.status.has_value());
  ASSERT_TRUE(before.status->ok());
  EXPECT_FLOAT_EQ(before.value(), -2.0f);  // clock 0: (1 + 3) / 2
  PendingPull after(7, far + 1);
  after.Start(core);
  ASSERT_TRUE(after.status.has_value());
  EXPECT_FLOAT_EQ(after.value(), -6.0f);  // and clock 2^40: 4 / 1
}

TEST(ServerCore, BspRejectsClockedPushesFromNonMembers) {
  ServerCore core(Job(config::BSP), 0);
  core.UpdateView(View(2));
  EXPECT_EQ(PushNow(core, PushOf(9, 0, 7, 1.0f, 1)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ServerCore, PushesWithoutClockApplyAtOnceEvenInBsp) {
  // Statistics pushes carry no clock: they are not training steps.
  ServerCore core(Job(config::BSP), 0);
  core.UpdateView(View(2));
  ASSERT_TRUE(PushNow(core, PushOf(0, std::nullopt, 7, 1.0f, 1)).ok());
  PendingPull pull(7, std::nullopt);
  pull.Start(core);
  ASSERT_TRUE(pull.status.has_value());
  EXPECT_FLOAT_EQ(pull.value(), -1.0f);
}

TEST(ServerCore, BspRetryOfAnAppliedClockIsADuplicate) {
  ServerCore core(Job(config::BSP), 0);
  core.UpdateView(View(1));
  auto first = PushNow(core, PushOf(0, 0, 7, 1.0f, 1));
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(*first);
  auto retry = PushNow(core, PushOf(0, 0, 7, 1.0f, 1));
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(*retry);
  PendingPull pull(7, 1);
  pull.Start(core);
  ASSERT_TRUE(pull.status.has_value());
  EXPECT_FLOAT_EQ(pull.value(), -1.0f);
}

// Worker 1 pushed clock 0 to partition A and died before its push reached
// partition B (another server in a real job). Worker 0's push of clock 0
// completes the clock on A, which applies it. The standby that takes over
// rank 1 resumes at clock 0 (B still waits for it) and must read the model
// its predecessor read, the one before clock 0, on A too: the gradient it
// sends B is computed from it. A serving the model after clock 0 made the
// job's final model depend on when the worker was killed.
TEST(ServerCore, BspStandbyRedoingAPartlyPushedClockReadsThePredecessorsModel) {
  ServerCore core(Job(config::BSP), 0);
  core.UpdateView(View(2));
  const uint64_t ka = 7;
  uint64_t kb = 8;
  while (PartitionOf(kLrWeights, kb, 8) == PartitionOf(kLrWeights, ka, 8)) ++kb;
  const uint32_t pa = PartitionOf(kLrWeights, ka, 8), pb = PartitionOf(kLrWeights, kb, 8);
  auto push = [&](int worker, uint64_t incarnation, std::vector<uint32_t> partitions,
                  std::vector<std::pair<uint64_t, float>> grads) {
    rpc::PushRequest req;
    req.set_worker(worker);
    req.set_incarnation(incarnation);
    req.set_seq(1);
    req.set_clock(0);
    req.set_num_examples(1);
    auto* s = req.add_slices();
    s->set_table(kLrWeights);
    for (auto [key, g] : grads) {
      s->add_keys(key);
      s->add_values(g);
    }
    for (uint32_t p : partitions) req.add_partitions(p);
    return PushNow(core, req);
  };
  PendingPull a0(ka, 0, 1), b0(kb, 0, 1);
  a0.Start(core);
  b0.Start(core);
  ASSERT_TRUE(a0.status.has_value() && a0.status->ok());
  ASSERT_TRUE(b0.status.has_value() && b0.status->ok());
  const float va = a0.value(), vb = b0.value();

  ASSERT_TRUE(push(1, 1, {pa}, {{ka, 1.0f}}).ok());  // the dead worker's part that arrived
  ASSERT_TRUE(push(0, 1, {pa, pb}, {{ka, 2.0f}, {kb, 3.0f}}).ok());
  // The standby (a new incarnation of rank 1) redoes clock 0.
  PendingPull a(ka, 0, 1), b(kb, 0, 1);
  a.Start(core);
  b.Start(core);
  ASSERT_TRUE(a.status.has_value() && a.status->ok());
  ASSERT_TRUE(b.status.has_value() && b.status->ok());
  EXPECT_EQ(a.value(), va) << "clock 0 is applied on A, but the redo of clock 0 must not see it";
  EXPECT_EQ(b.value(), vb);
  auto redo = push(1, 2, {pa, pb}, {{ka, 1.0f}, {kb, 4.0f}});
  ASSERT_TRUE(redo.ok());
  EXPECT_FALSE(*redo) << "B takes it";

  // Clock 0 is complete everywhere: A kept the predecessor's contribution.
  PendingPull a1(ka, 1, 0), b1(kb, 1, 0);
  a1.Start(core);
  b1.Start(core);
  ASSERT_TRUE(a1.status.has_value() && a1.status->ok());
  ASSERT_TRUE(b1.status.has_value() && b1.status->ok());
  EXPECT_FLOAT_EQ(a1.value(), va - (1.0f + 2.0f) / 2.0f);
  EXPECT_FLOAT_EQ(b1.value(), vb - (3.0f + 4.0f) / 2.0f);
  // A pull at clock 1 (the normal case) sees clock 0.
  PendingPull again(ka, 1, 1);
  again.Start(core);
  ASSERT_TRUE(again.status.has_value() && again.status->ok());
  EXPECT_FLOAT_EQ(again.value(), va - 1.5f);
}

// The values from before the last applied clock are partition state: a
// backup replaying the ops and a move target installing a snapshot serve a
// pull at that clock as the primary does.
TEST(Partition, ValuesBeforeTheLastClockGoToBackupsAndMoveTargets) {
  const config::JobConfig job = Job(config::BSP);
  const std::vector<TableSpec> tables = TablesForJob(job);
  std::vector<std::unique_ptr<Optimizer>> optimizers;
  for (const TableSpec& t : tables) optimizers.push_back(MakeOptimizer(t));
  struct Sink : OpSink {
    bool Replicating(int) const override { return true; }
    void Enqueue(int, rpc::ReplicaOp op) override { ops.push_back(std::move(op)); }
    std::vector<rpc::ReplicaOp> ops;
  } sink;
  Partition primary(0, &tables, &optimizers, 1), backup(0, &tables, &optimizers, 1),
      target(0, &tables, &optimizers, 1);
  auto read = [](Partition& part, std::optional<int64_t> clock) {
    rpc::PullRequest req;
    auto* s = req.add_slices();
    s->set_table(kLrWeights);
    s->add_keys(7);
    rpc::PullResponse resp;
    resp.add_slices()->mutable_values()->Add(0.0f);
    part.Read(req, {KeyRef{0, 0}}, &resp, clock);
    return resp.slices(0).values(0);
  };
  const float initial = read(primary, std::nullopt);
  const std::vector<int32_t> live = {0, 1};
  const rpc::PushRequest w1 = PushOf(1, 0, 7, 1.0f, 1), w0 = PushOf(0, 0, 7, 2.0f, 1);
  primary.Push(w1, AllKeys(w1), /*buffer=*/true, live, &sink);
  primary.Push(w0, AllKeys(w0), /*buffer=*/true, live, &sink);  // applies clock 0
  for (const rpc::ReplicaOp& op : sink.ops) {
    ASSERT_EQ(backup.ApplyOp(op, 0), Partition::OpResult::kApplied);
  }
  ASSERT_EQ(target.Install(primary.State(), 0), Partition::InstallResult::kInstalled);
  for (Partition* part : {&primary, &backup, &target}) {
    EXPECT_EQ(read(*part, 0), initial);
    EXPECT_EQ(read(*part, 1), initial - 1.5f);
    EXPECT_EQ(read(*part, std::nullopt), initial - 1.5f);
  }
  // The next clock replaces them.
  const rpc::PushRequest n1 = PushOf(1, 1, 7, 1.0f, 2), n0 = PushOf(0, 1, 7, 1.0f, 2);
  primary.Push(n1, AllKeys(n1), true, live, nullptr);
  primary.Push(n0, AllKeys(n0), true, live, nullptr);
  EXPECT_EQ(read(primary, 1), initial - 1.5f);
  EXPECT_EQ(read(primary, 0), initial - 2.5f) << "two clocks back: only the current model is kept";
}
TEST(ServerCore, SspReadWaitsForTheSlowestWithinStaleness) {
  ServerCore core(Job(config::SSP, /*staleness=*/2), 0);
  core.UpdateView(View(2));
  // Worker 0 runs ahead to clock 3; worker 1 is still at clock 0.
  for (int c = 0; c < 3; ++c) ASSERT_TRUE(PushNow(core, PushOf(0, c, 1, 0.0f, c + 1)).ok());
  PendingPull ahead(1, 3, 0);
  ahead.Start(core);
  EXPECT_FALSE(ahead.status.has_value()) << "3 - 0 > staleness 2";
  ASSERT_TRUE(PushNow(core, PushOf(1, 0, 1, 0.0f, 1)).ok());  // worker 1 finishes clock 0
  ASSERT_TRUE(ahead.status.has_value());
  EXPECT_TRUE(ahead.status->ok());
  EXPECT_EQ(core.Stats().max_staleness_served(), 2);
  EXPECT_EQ(core.Stats().pulls_parked(), 1u);
}

TEST(ServerCore, TickReleasesWaitingReaders) {
  ServerCore core(Job(config::SSP, 0), 0);
  core.UpdateView(View(2));
  PendingPull pull(1, 1, 0);
  pull.Start(core);
  EXPECT_FALSE(pull.status.has_value());
  ASSERT_TRUE(TickNow(core, 0, 1).ok());
  EXPECT_FALSE(pull.status.has_value());
  ASSERT_TRUE(TickNow(core, 1, 1).ok());
  EXPECT_TRUE(pull.status.has_value());
}

TEST(ServerCore, ParkedPullFailsAtItsDeadlineAndOnShutdown) {
  ServerCore core(Job(config::SSP, 0), 0);
  core.UpdateView(View(2));
  PendingPull a(1, 5), b(1, 5);
  a.Start(core, absl::Milliseconds(1));
  b.Start(core, absl::Hours(1));
  core.ExpireParked(absl::Now() + absl::Seconds(1));
  ASSERT_TRUE(a.status.has_value());
  EXPECT_EQ(a.status->code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(b.status.has_value());
  core.Shutdown();
  ASSERT_TRUE(b.status.has_value());
  EXPECT_EQ(b.status->code(), absl::StatusCode::kUnavailable);
}

TEST(ServerCore, MalformedPushChangesNothing) {
  ServerCore core(Job(config::ASP), 0);
  core.UpdateView(View(1));
  rpc::PushRequest req = PushOf(0, std::nullopt, 2, 1.0f, 1);
  req.mutable_slices(0)->add_keys(3);  // two keys, one value
  EXPECT_EQ(PushNow(core, req).status().code(), absl::StatusCode::kInvalidArgument);
  PendingPull pull(2, std::nullopt);
  pull.Start(core);
  EXPECT_FLOAT_EQ(pull.value(), 0.0f);
}

// Server 1 as the backup of every partition (primary: server 0) at `epoch`.
rpc::ClusterView BackupView(uint64_t version, uint64_t epoch) {
  rpc::ClusterView view;
  view.set_version(version);
  for (int p = 0; p < 8; ++p) {
    view.add_partition_owner(0);
    rpc::Placement* pl = view.add_placement();
    pl->set_primary(0);
    pl->add_backups(1);
    pl->set_epoch(epoch);
  }
  view.add_live_workers(0);
  return view;
}

rpc::ReplicaOp ApplyOp(uint64_t epoch, uint64_t lsn, uint64_t key, float grad, uint64_t seq) {
  rpc::ReplicaOp op;
  op.set_partition(PartitionOf(kLrWeights, key, 8));
  op.set_epoch(epoch);
  op.set_lsn(lsn);
  op.set_kind(rpc::ReplicaOp::APPLY);
  *op.mutable_push() = PushOf(0, std::nullopt, key, grad, seq);
  return op;
}

TEST(ServerCore, BackupAppliesOpsInOrderAndRefusesAnOlderEpoch) {
  ServerCore backup(Job(config::ASP), /*rank=*/1);
  backup.UpdateView(BackupView(1, /*epoch=*/2));
  const uint64_t key = 5;
  const int p = PartitionOf(kLrWeights, key, 8);
  rpc::ReplicateRequest req;
  *req.add_ops() = ApplyOp(2, 1, key, 1.0f, 1);
  *req.add_ops() = ApplyOp(2, 2, key, 1.0f, 2);
  *req.add_ops() = ApplyOp(2, 2, key, 1.0f, 2);  // sent twice: applied once
  rpc::ReplicateResponse resp;
  ASSERT_TRUE(backup.Replicate(req, &resp).ok());
  EXPECT_EQ(resp.fenced_size(), 0);
  EXPECT_EQ(backup.Stats().replica_ops_applied(), 2u);

  // The old primary (epoch 1) is refused: no split brain.
  rpc::ReplicateRequest old;
  *old.add_ops() = ApplyOp(1, 3, key, 100.0f, 3);
  rpc::ReplicateResponse old_resp;
  ASSERT_TRUE(backup.Replicate(old, &old_resp).ok());
  ASSERT_EQ(old_resp.fenced_size(), 1);
  EXPECT_EQ(old_resp.fenced(0), static_cast<uint32_t>(p));
  EXPECT_EQ(backup.Stats().replica_ops_applied(), 2u);

  // An op past a gap asks for a fresh snapshot instead of being applied.
  rpc::ReplicateRequest gap;
  *gap.add_ops() = ApplyOp(2, 5, key, 1.0f, 5);
  rpc::ReplicateResponse gap_resp;
  ASSERT_TRUE(backup.Replicate(gap, &gap_resp).ok());
  ASSERT_EQ(gap_resp.resync_size(), 1);
  EXPECT_EQ(backup.Stats().replica_ops_applied(), 2u);

  // Promoted (epoch 3): it serves the two applied updates, not the refused one.
  rpc::ClusterView promoted = BackupView(2, 3);
  for (int q = 0; q < 8; ++q) {
    promoted.set_partition_owner(q, 1);
    promoted.mutable_placement(q)->set_primary(1);
    promoted.mutable_placement(q)->clear_backups();
  }
  backup.UpdateView(promoted);
  PendingPull pull(key, std::nullopt);
  pull.Start(backup);
  ASSERT_TRUE(pull.status.has_value() && pull.status->ok());
  EXPECT_FLOAT_EQ(pull.value(), -2.0f);  // sgd, lr 1: two gradients of 1
}

TEST(ServerCore, APrimaryWithAStaleViewStepsDownOnANewerEpochsCopy) {
  ServerCore core(Job(config::ASP), /*rank=*/0);
  core.UpdateView(View(1));  // primary of everything (no placement: epoch 1)
  const uint64_t key = 5;
  const uint32_t p = PartitionOf(kLrWeights, key, 8);
  // A copy from our own epoch or older: the sender is stale.
  rpc::ReplicateRequest old;
  *old.add_ops() = ApplyOp(1, 1, key, 1.0f, 1);
  rpc::ReplicateResponse old_resp;
  ASSERT_TRUE(core.Replicate(old, &old_resp).ok());
  ASSERT_EQ(old_resp.fenced_size(), 1);
  EXPECT_EQ(old_resp.fenced(0), p);
  // From a newer epoch: our view is stale; we stop acting as its primary.
  rpc::ReplicateRequest newer;
  *newer.add_ops() = ApplyOp(2, 1, key, 1.0f, 1);
  rpc::ReplicateResponse newer_resp;
  ASSERT_TRUE(core.Replicate(newer, &newer_resp).ok());
  ASSERT_EQ(newer_resp.resync_size(), 1);
  EXPECT_EQ(newer_resp.resync(0), p);
  EXPECT_EQ(PushNow(core, PushOf(0, std::nullopt, key, 1.0f, 9)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(core.Stats().replica_ops_applied(), 0u);
}

TEST(ServerCore, MalformedReplicationIsRefusedWithAClearError) {
  ServerCore backup(Job(config::ASP), /*rank=*/1);
  backup.UpdateView(BackupView(1, 1));
  rpc::ReplicateRequest wrong_partition;
  rpc::ReplicaOp op = ApplyOp(1, 1, 5, 1.0f, 1);
  op.set_partition((op.partition() + 1) % 8);
  *wrong_partition.add_ops() = op;
  rpc::ReplicateResponse resp;
  absl::Status s = backup.Replicate(wrong_partition, &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("of another partition"));

  rpc::ReplicateRequest bad_snapshot;
  rpc::PartitionState* state = bad_snapshot.add_installs();
  state->set_partition(0);
  state->set_epoch(1);
  rpc::PartitionState::Table* t = state->add_tables();
  t->set_table(kLrWeights);
  t->add_keys(1);  // one key, no rows
  s = backup.Replicate(bad_snapshot, &resp);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("malformed"));
}

TEST(ServerCore, KeysOfPartitionsOwnedElsewhereAreRefused) {
  ServerCore core(Job(config::ASP), /*rank=*/1);  // View places everything on server 0
  core.UpdateView(View(1));
  EXPECT_EQ(PushNow(core, PushOf(0, std::nullopt, 2, 1.0f, 1)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace ps

namespace ps {
namespace {

// Several workers push and pull concurrently (each on its own thread, as the
// gRPC threads would); with ThreadSanitizer this exercises every lock. In BSP
// every key must end at exactly -lr * (sum of all gradients) / examples per
// clock: here each worker pushes gradient 1 for 1 example per clock, so each
// clock moves every key by -1.
TEST(ServerCoreConcurrency, BspWorkersInParallelGiveTheExactModel) {
  constexpr int kWorkers = 4, kClocks = 50, kKeys = 32;
  ServerCore core(Job(config::BSP), 0);
  core.UpdateView(View(kWorkers));
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&, w] {
      for (int c = 0; c < kClocks; ++c) {
        rpc::PullRequest pull;
        pull.set_worker(w);
        pull.set_clock(c);
        auto* ps = pull.add_slices();
        ps->set_table(kLrWeights);
        for (int k = 0; k < kKeys; ++k) ps->add_keys(k);
        rpc::PullResponse resp;
        Notification done;
        absl::Status status;
        core.Pull(&pull, &resp, absl::Now() + absl::Seconds(30), [&](absl::Status s) {
          status = s;
          done.Notify();
        });
        if (!done.WaitForNotificationWithTimeout(absl::Seconds(30)) || !status.ok()) {
          ++errors;
          return;
        }
        for (float v : resp.slices(0).values()) {
          if (v != -static_cast<float>(c)) ++errors;  // every read sees exactly c steps
        }
        rpc::PushRequest push;
        push.set_worker(w);
        push.set_incarnation(1);
        push.set_seq(c + 1);
        push.set_clock(c);
        push.set_num_examples(1);
        auto* s = push.add_slices();
        s->set_table(kLrWeights);
        for (int k = 0; k < kKeys; ++k) {
          s->add_keys(k);
          s->add_values(1.0f);
        }
        if (!PushNow(core, push).ok()) ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(core.Stats().pushes_applied(), static_cast<uint64_t>(kWorkers * kClocks));
}

TEST(ServerCoreConcurrency, SspWorkersInParallelStayWithinStaleness) {
  constexpr int kWorkers = 4, kClocks = 100;
  ServerCore core(Job(config::SSP, 1), 0);
  core.UpdateView(View(kWorkers));
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&, w] {
      for (int c = 0; c < kClocks; ++c) {
        PendingPull pull(w, c, w);
        Notification done;
        pull.req.set_worker(w);
        core.Pull(&pull.req, &pull.resp, absl::Now() + absl::Seconds(30),
                  [&](absl::Status s) {
                    if (!s.ok()) ++errors;
                    done.Notify();
                  });
        if (!done.WaitForNotificationWithTimeout(absl::Seconds(30))) ++errors;
        // A worker covers every partition each clock (as the kv client does).
        rpc::PushRequest push = PushOf(w, c, w, 0.5f, c + 1);
        for (int p = 0; p < 8; ++p) push.add_partitions(p);
        if (!PushNow(core, push).ok()) ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_LE(core.Stats().max_staleness_served(), 1);
}

// A view with placement (primary 0, no backups) whose partitions load from
// checkpoint `dir`, if given.
rpc::ClusterView PlacedView(int workers, const std::string& dir = "", bool rejoin = false) {
  rpc::ClusterView view = View(workers);
  for (int p = 0; p < 8; ++p) {
    rpc::Placement* pl = view.add_placement();
    pl->set_primary(0);
    pl->set_epoch(1);
    pl->set_restore_from(dir);
    pl->set_restore_epoch(1);
    pl->set_restore_rejoin(rejoin);
  }
  return view;
}

// Two workers train clocks 0 and 1 of a BSP job on key 7; the servers'
// state is checkpointed into a fresh directory, which is returned.
std::string TrainTwoClocksAndCheckpoint(ServerCore& core) {
  for (int64_t c = 0; c < 2; ++c) {
    for (int w = 0; w < 2; ++w) {
      rpc::PushRequest push = PushOf(w, c, 7, 1.0f + w + c, c + 1);
      for (int p = 0; p < 8; ++p) push.add_partitions(p);
      EXPECT_TRUE(PushNow(core, push).ok());
    }
  }
  // A fresh checkpoint directory of the job (servers write only there).
  static int next = 1;
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "/server-core-", getpid(), "/checkpoints/epoch-",
                   absl::ToUnixNanos(absl::Now()) % 100000000 * 10 + next++ % 10);
  auto written = core.Checkpoint(dir);
  EXPECT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->partitions_size(), 8);
  EXPECT_EQ(written->next_clock(), 2);
  // The scheduler's part: the manifest that makes the checkpoint complete.
  rpc::CheckpointManifest manifest;
  manifest.set_epochs_done(1);
  manifest.set_num_partitions(8);
  for (int p = 0; p < 8; ++p) {
    manifest.add_files(absl::StrFormat("partition-%05d.state", p));
    manifest.add_sha256(written->sha256(p));
  }
  EXPECT_TRUE(WriteCheckpointManifest(dir, manifest).ok());
  return dir;
}

// A BSP job's server trained two clocks and checkpointed: the checkpoint's
// directory, and key 7's value read at clock 2 before it.
struct TwoClocks {
  std::string dir;
  float value = 0;
};
TwoClocks CheckpointedTwoClocks() {
  ServerCore before(Job(config::BSP), 0);
  before.UpdateView(PlacedView(2));
  TwoClocks out;
  out.dir = TrainTwoClocksAndCheckpoint(before);
  PendingPull read(7, 2);
  read.Start(before);
  EXPECT_TRUE(read.status.has_value() && read.status->ok());
  if (read.status.has_value() && read.status->ok()) out.value = read.value();
  return out;
}

// Worker w's push of clock 2: `grad` on key 7, w + 1 examples, every partition.
void PushClock2(ServerCore& core, int w, float grad) {
  rpc::PushRequest push = PushOf(w, 2, 7, grad, 3, /*examples=*/w + 1);
  for (int p = 0; p < 8; ++p) push.add_partitions(p);
  ASSERT_TRUE(PushNow(core, push).ok());
}

TEST(ServerCore, APartitionLoadedFromACheckpointServesWhatWasWritten) {
  const TwoClocks before = CheckpointedTwoClocks();
  ServerCore after(Job(config::BSP), 0);
  after.UpdateView(PlacedView(2, before.dir));
  // Clocks 0 and 1 are applied in the checkpoint: a read at clock 2 is served at once.
  PendingPull pull(7, 2);
  pull.Start(after);
  ASSERT_TRUE(pull.status.has_value());
  ASSERT_TRUE(pull.status->ok()) << *pull.status;
  EXPECT_EQ(pull.value(), before.value);
  // ... and clock 2 is aggregated as before the checkpoint. (Worker 0 reads
  // clock 3 once it pushed clock 2, as trainers do: a read moves the
  // reader's clock on a restored partition.)
  PushClock2(after, 0, 1.0f);
  PendingPull later(7, 3);
  later.Start(after);
  EXPECT_FALSE(later.status.has_value());
  PushClock2(after, 1, 2.0f);
  ASSERT_TRUE(later.status.has_value() && later.status->ok());
  EXPECT_FLOAT_EQ(later.value(), before.value - 1.0f);  // (1 + 2) / (1 + 2 examples)
}

// The trainer's prefetch: worker 0 reads clock 3 while its push of clock 2
// is still in flight. On a restored partition a read moves the reader's
// clock; a read sent ahead moves it only as far as its acked_clock, so the
// push that follows still counts.
TEST(ServerCore, AReadSentAheadOfItsPushLeavesThePushCountingOnARestoredPartition) {
  const TwoClocks before = CheckpointedTwoClocks();
  ServerCore after(Job(config::BSP), 0);
  after.UpdateView(PlacedView(2, before.dir));
  PendingPull ahead(7, 3, /*worker=*/0);
  ahead.req.set_acked_clock(2);
  ahead.Start(after);
  EXPECT_FALSE(ahead.status.has_value()) << "served before clock 2 was pushed";
  PushClock2(after, 1, 2.0f);
  EXPECT_FALSE(ahead.status.has_value()) << "clock 2 closed without worker 0's push";
  PushClock2(after, 0, 1.0f);
  ASSERT_TRUE(ahead.status.has_value() && ahead.status->ok());
  EXPECT_FLOAT_EQ(ahead.value(), before.value - 1.0f);  // (1 + 2) / (1 + 2 examples)

  // An acked_clock without a clock, or below zero, is malformed.
  PendingPull bad(7, 3);
  bad.req.set_acked_clock(-1);
  bad.Start(after);
  ASSERT_TRUE(bad.status.has_value());
  EXPECT_EQ(bad.status->code(), absl::StatusCode::kInvalidArgument);
  after.Shutdown();
}

TEST(ServerCore, ARestoredPartitionWaitsForStaleClocksOnlyWhenResuming) {
  ServerCore before(Job(config::BSP), 0);
  before.UpdateView(PlacedView(2));
  const std::string dir = TrainTwoClocksAndCheckpoint(before);

  // Resuming the job: the workers start at the checkpoint's clock, so a read
  // at clock 5 waits for clocks 2..4 of both workers.
  ServerCore resumed(Job(config::BSP), 0);
  resumed.UpdateView(PlacedView(2, dir));
  PendingPull waits(7, 5, /*worker=*/0);
  waits.Start(resumed, absl::Milliseconds(200));
  EXPECT_FALSE(waits.status.has_value());

  // Restored mid-job (every replica died): the workers are past the
  // checkpoint and worker 1's pushes of clocks 2..4 went to the dead
  // primary; worker 0 reading at 5 must not wait for them.
  ServerCore restored(Job(config::BSP), 0);
  restored.UpdateView(PlacedView(2, dir, /*rejoin=*/true));
  PendingPull served(7, 5, /*worker=*/0);
  served.Start(restored);
  ASSERT_TRUE(served.status.has_value());
  EXPECT_TRUE(served.status->ok()) << *served.status;
  // Once worker 1 is heard from, it counts again: clock 5 waits for it.
  PendingPull from_one(7, 5, /*worker=*/1);
  from_one.Start(restored);
  ASSERT_TRUE(from_one.status.has_value());
  rpc::PushRequest push = PushOf(0, 5, 7, 1.0f, 10);
  for (int p = 0; p < 8; ++p) push.add_partitions(p);
  ASSERT_TRUE(PushNow(restored, push).ok());
  PendingPull next(7, 6, /*worker=*/0);
  next.Start(restored, absl::Milliseconds(200));
  EXPECT_FALSE(next.status.has_value()) << "clock 5 closed without worker 1";
  // The parked pulls end here, while they are still alive.
  restored.Shutdown();
  resumed.Shutdown();
}

TEST(ServerCore, AMissingCheckpointFileIsReportedAndThePartitionNotTakenUp) {
  ServerCore core(Job(config::BSP), 0);
  std::string reported;
  core.SetFailureReporter([&](const std::string& m) { reported = m; });
  core.UpdateView(PlacedView(2, ::testing::TempDir() + "/no-such-checkpoint"));
  EXPECT_NE(reported.find("cannot load partition"), std::string::npos) << reported;
  EXPECT_EQ(core.Stats().partitions_primary(), 0u);
}

// The clock floor (server/clock_floor.h): pushes that cover every partition
// of the server raise it instead of visiting the partitions they have no
// keys for.

// A key of partition `p` (of the test job's 8).
uint64_t KeyIn(int p, uint64_t after = 0) {
  for (uint64_t k = after;; ++k) {
    if (PartitionOf(kLrWeights, k, 8) == p) return k;
  }
}

// A clocked push of `grads` (key -> gradient) covering every partition of
// the server (map version 1), as workers send them.
rpc::PushRequest PushAll(int worker, int64_t clock, const std::map<uint64_t, float>& grads,
                         uint64_t seq, uint64_t examples, uint64_t map_version = 1) {
  rpc::PushRequest req;
  req.set_worker(worker);
  req.set_incarnation(1);
  req.set_seq(seq);
  req.set_clock(clock);
  req.set_num_examples(examples);
  req.set_map_version(map_version);
  req.set_all_partitions(true);
  auto* s = req.add_slices();
  s->set_table(kLrWeights);
  for (const auto& [key, grad] : grads) {
    s->add_keys(key);
    s->add_values(grad);
  }
  return req;
}

// Pulls `keys` at `clock` and returns their values (the pull must not wait).
std::vector<float> PullValues(ServerCore& core, const std::vector<uint64_t>& keys, int64_t clock) {
  rpc::PullRequest req;
  req.set_worker(0);
  req.set_clock(clock);
  auto* s = req.add_slices();
  s->set_table(kLrWeights);
  for (uint64_t k : keys) s->add_keys(k);
  rpc::PullResponse resp;
  std::optional<absl::Status> status;
  core.Pull(&req, &resp, absl::Now() + absl::Seconds(30), [&](absl::Status st) { status = st; });
  EXPECT_TRUE(status.has_value()) << "the pull at clock " << clock << " waited";
  if (!status.has_value()) {
    core.Shutdown();  // ends it while resp is alive
    return {};
  }
  EXPECT_TRUE(status->ok()) << *status;
  return {resp.slices(0).values().begin(), resp.slices(0).values().end()};
}

TEST(ServerCore, APartitionAWorkerPassedThroughTheFloorStillCountsItsExamples) {
  // Worker 0 pushes a key of partition 1, worker 1 a key of partition 2:
  // each partition sees one worker's push only, yet its clock must be scaled
  // by both workers' examples (32 + 16), as when every worker sends every
  // key (with zero gradients where it has none): the same bits.
  const uint64_t a = KeyIn(1), b = KeyIn(2);
  auto run = [&](bool zeros) {
    ServerCore core(Job(config::BSP), 0);
    core.UpdateView(View(2));
    for (int64_t clock = 0; clock < 3; ++clock) {
      std::map<uint64_t, float> g0{{a, 0.75f + clock}}, g1{{b, -0.5f * (clock + 1)}};
      if (zeros) {
        g0[b] = 0.0f;
        g1[a] = 0.0f;
      }
      EXPECT_TRUE(PushNow(core, PushAll(0, clock, g0, clock + 1, 32)).ok());
      EXPECT_TRUE(PushNow(core, PushAll(1, clock, g1, clock + 1, 16)).ok());
    }
    std::vector<float> values = PullValues(core, {a, b}, 3);
    core.Shutdown();
    return values;
  };
  const std::vector<float> lazy = run(false), full = run(true);
  ASSERT_EQ(lazy.size(), 2u);
  EXPECT_EQ(lazy, full);
  // And not 0.75/32 (worker 1's examples left out).
  EXPECT_NEAR(lazy[0], -(0.75 + 1.75 + 2.75) / 48, 1e-6);
}

TEST(ServerCore, TheFloorOpensReadsAndSurvivesAViewChange) {
  ServerCore core(Job(config::SSP, /*staleness=*/0), 0);
  core.UpdateView(View(2));
  const uint64_t a = KeyIn(3);
  // Worker 1's pushes never touch partition 3: only the floor moves its clock there.
  ASSERT_TRUE(PushNow(core, PushAll(0, 0, {{a, 1.0f}}, 1, 1)).ok());
  ASSERT_TRUE(PushNow(core, PushAll(1, 0, {{KeyIn(5), 1.0f}}, 1, 1)).ok());
  EXPECT_EQ(PullValues(core, {a}, 1).size(), 1u);
  // A new view (partitions 6 and 7 move away) ends the era: the clocks the
  // floor gave partition 3 are folded into it, not lost.
  rpc::ClusterView next = View(2);
  next.set_version(2);
  next.set_partition_owner(6, 1);
  next.set_partition_owner(7, 1);
  core.UpdateView(next);
  EXPECT_EQ(PullValues(core, {a}, 1).size(), 1u);
  // A push of the old map covers other partitions than "all" means now.
  EXPECT_EQ(PushNow(core, PushAll(0, 1, {{a, 1.0f}}, 2, 1)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(PushNow(core, PushAll(0, 1, {{a, 1.0f}}, 2, 1, /*map_version=*/2)).ok());
  ASSERT_TRUE(PushNow(core, PushAll(1, 1, {}, 2, 1, /*map_version=*/2)).ok());
  EXPECT_EQ(PullValues(core, {a}, 2).size(), 1u);
  // Ticks raise the floor too.
  ASSERT_TRUE(TickNow(core, 0, 100).ok());
  ASSERT_TRUE(TickNow(core, 1, 100).ok());
  EXPECT_EQ(PullValues(core, {a, KeyIn(4)}, 100).size(), 2u);
  PendingPull ahead(a, 101);
  ahead.Start(core, absl::Milliseconds(100));
  EXPECT_FALSE(ahead.status.has_value()) << "a read ahead of every worker was served";
  core.Shutdown();
}

TEST(ServerCore, APushThatClaimsAllPartitionsMustNotListThem) {
  ServerCore core(Job(config::BSP), 0);
  core.UpdateView(View(1));
  rpc::PushRequest push = PushAll(0, 0, {{KeyIn(0), 1.0f}}, 1, 1);
  push.add_partitions(0);
  EXPECT_EQ(PushNow(core, push).status().code(), absl::StatusCode::kInvalidArgument);
  core.Shutdown();
}

}  // namespace
}  // namespace ps

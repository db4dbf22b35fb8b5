// The scheduler's state and logic, without its transport: registration and
// ranks, heartbeats and liveness, the versioned cluster view (shard map +
// live workers), named barriers, the per-epoch data-shard queue, evaluation
// merging, early stopping (the best model saved on the servers' side), job
// progress and the job's end (model save, metrics.json, report.html);
// checkpoints (taken while every worker waits at the barrier ending an
// epoch) and resuming from one; the state file a restarted scheduler
// carries on from.
//
// Thread-safety: every method is thread-safe; mu_ guards all state. Barrier
// completions and RPCs to servers run outside mu_.
#ifndef PS_SCHEDULER_SCHEDULER_CORE_H_
#define PS_SCHEDULER_SCHEDULER_CORE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/checkpoint.h"
#include "common/clock.h"
#include "common/evaluation.h"
#include "common/sync.h"
#include "proto/checkpoint.pb.h"
#include "proto/job_config.pb.h"
#include "proto/scheduler.pb.h"
#include "scheduler/eval_book.h"
#include "scheduler/job_outputs.h"
#include "scheduler/liveness.h"
#include "scheduler/placement.h"
#include "scheduler/rebalancer.h"
#include "scheduler/shard_queue.h"

namespace ps {

// Reads a scheduler state file (SaveStateLocked's), with the view file it
// names (SchedulerState.view_file_version) put back into its `view`.
absl::StatusOr<rpc::SchedulerState> ReadSchedulerState(const std::string& path);
// The view file of a state file, for view version `version`.
std::string ViewFilePath(const std::string& state_path, uint64_t version);

class SchedulerCore {
 public:
  using BarrierDone = std::function<void(absl::StatusOr<rpc::BarrierResponse>)>;

  struct Options {
    // The state file, rewritten (atomically) on every change that matters
    // for a restart; empty: none.
    std::string state_path;
    // Instead of the state file: called (under the core's lock) with the
    // whole state, its view included, on every such change
    // (cluster.coordinator: etcd). An error is logged; the job goes on.
    std::function<absl::Status(const rpc::SchedulerState&)> save_state;
    // Called (under the core's lock: keep it short) when a barrier is
    // released, with how long its first arrival waited.
    std::function<void(const std::string& barrier, absl::Duration waited)> barrier_waited;
    // Whether this scheduler may still act (cluster.coordinator: etcd: while
    // it leads); Poll does nothing, and starts no model save, checkpoint or
    // end of the job, once it says no. Empty: always.
    std::function<bool()> may_act;
    // The control plane's time (failure detection, barriers, progress);
    // tests inject a FakeClock. RPC deadlines stay on the real clock.
    const Clock* clock = Clock::Real();
  };

  // `job` has absolute paths; `start` is when the scheduler started.
  SchedulerCore(const config::JobConfig& job, absl::Time start, Options options);
  SchedulerCore(const config::JobConfig& job, absl::Time start);

  // Before serving: the job resumes from checkpoint `found` (servers load
  // their partitions from it, workers start at the epoch after it).
  // FAILED_PRECONDITION if the checkpoint does not fit the job.
  absl::Status ResumeFrom(const FoundCheckpoint& found);
  // Before serving: carries on from the state file of a scheduler of this
  // job that stopped (members keep their node ids; barrier calls in flight
  // are re-sent by their callers).
  absl::Status Restore(const rpc::SchedulerState& state, absl::Time now);
  // Where the scheduler listens (kept in the state file).
  void SetListenAddress(const std::string& host, int port);
  // Deletes the state file (the scheduler exits for good).
  void RemoveStateFile();
  // The latest complete checkpoint (empty: none yet).
  std::string latest_checkpoint() const;

  absl::StatusOr<rpc::RegisterResponse> Register(const rpc::RegisterRequest& req);
  absl::StatusOr<rpc::HeartbeatResponse> Heartbeat(const rpc::HeartbeatRequest& req, absl::Time now);
  rpc::ClusterView View() const;
  rpc::JobStatus Status(absl::Time now) const;
  // Calls `done` once every participant arrived (maybe before returning).
  void Barrier(const rpc::BarrierRequest& req, BarrierDone done);
  absl::StatusOr<rpc::NextShardResponse> NextShard(const rpc::NextShardRequest& req);
  absl::Status SubmitEval(const rpc::SubmitEvalRequest& req);
  void Fail(const std::string& message);
  // This scheduler stopped leading (cluster.coordinator: etcd): every
  // parked barrier call is answered UNAVAILABLE (its caller re-sends it to
  // the next scheduler); nothing else changes.
  void AbandonWaiters();
  // Fail, reported by member `node_id`, which is exiting.
  void FailFrom(uint32_t node_id, const std::string& message);
  absl::Status Leave(uint32_t node_id);
  // Member `reporter` (a node id) could not reach server `rank` (its calls
  // have failed for `failing_for`, and a probe of its own went unanswered):
  // Poll probes the server soon and fails it over if it does not answer.
  // If it answers but a worker has failed to reach it, and no other server,
  // for a heartbeat timeout, the link between the two is cut: the server is
  // failed over all the same when each of its partitions has a complete
  // copy elsewhere.
  void Suspect(uint32_t reporter, int32_t rank, const std::string& error,
               absl::Duration failing_for = absl::ZeroDuration());
  // Starts emptying server `rank` (psctl drain); returns the partition
  // copies it still holds (0: drained, it may be stopped).
  absl::StatusOr<uint32_t> Drain(int32_t rank);
  // psctl checkpoint: a checkpoint at the end of the current epoch. Returns
  // the latest complete one and whether the requested one is still to come.
  absl::StatusOr<rpc::TakeCheckpointResponse> RequestCheckpoint(bool request);

  // Waits up to `timeout` for work for Poll (a model to save, the job's end).
  void WaitForWork(absl::Duration timeout);

  // One step of the scheduler's loop: liveness, progress lines, saving the
  // best model, the job's end.
  // Returns true once the scheduler may exit (job over and members gone, or
  // given up waiting for them).
  bool Poll(absl::Time now);

  rpc::JobState state() const;
  std::string failure() const;
  // The core's clock (Options.clock): what callers pass as `now`.
  absl::Time Now() const { return clock_->Now(); }

 private:
  struct Node {
    uint32_t id = 0;
    rpc::Role role = rpc::ROLE_UNSPECIFIED;
    int32_t rank = -1;
    std::string address;
    std::string metrics_address;
    std::string data_address;  // servers: the TCP data plane's (maybe none)
    // When it was last heard from, once liveness_ no longer tracks it (dead
    // or gone), for Status.
    absl::Time last_heard = absl::InfinitePast();
    bool left = false;
    bool dead = false;  // stopped heartbeating; the job went on without it
    bool standby = false;  // a server that registered as a standby
    bool draining = false;  // psctl drain: its partitions move elsewhere
    absl::Time last_load_report;
    // The data shard this worker is on (SSP/ASP); requeued if it dies.
    int32_t shard_epoch = -1;
    uint64_t shard_begin = 0, shard_end = 0;
    // The last NextShard answered, for a retry after a scheduler restart.
    uint64_t shard_request_id = 0;
    rpc::NextShardResponse shard_response;
    // Worker progress, from heartbeats.
    uint64_t samples_done = 0;
    int32_t epoch = 0;
    double loss_sum = 0;
    uint64_t epoch_samples = 0;
  };
  bool MayAct() const { return !options_.may_act || options_.may_act(); }
  struct BarrierState {
    std::set<uint32_t> arrived;
    std::vector<BarrierDone> waiting;
    bool released = false;
    bool stop = false;  // someone voted to stop (or early stopping decided)
    absl::Time first_arrival;  // for Options.barrier_waited
  };

  size_t ParticipantsLocked(const std::string& barrier) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What the job's outputs are made of (scheduler/job_outputs.h).
  JobRecord RecordLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return JobRecord{&job_, &eval_book_.history(), train_examples_, eval_book_.saved_best_epoch()};
  }
  // Releases `name` if complete; moves its waiters into `ready`.
  // A barrier's answer carries the view's version, state, message and live
  // workers only (BarrierResponse.view_omitted).
  void BarrierViewLocked(rpc::BarrierResponse* resp) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeReleaseLocked(const std::string& name, std::vector<BarrierDone>* ready)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void BuildViewLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddServerInfoLocked(const Node& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A server died: its partitions' backups are promoted (new epoch) and new
  // backups are placed, standbys first. Returns false (the job failed) if a
  // partition has no replica left.
  // `why` completes "server R at ADDR ...".
  bool ServerDiedLocked(Node& node, const std::string& why, std::vector<BarrierDone>* aborted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Probes the servers clients reported (a short Stats call) and fails over
  // those that do not answer. Runs without mu_.
  void ProbeSuspects(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  bool ServerDeadLocked(int rank) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stops tracking a member that died or left (keeping when it was last
  // heard from in node.last_heard).
  void ForgetLocked(Node& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Server `rank` answered a probe: fails it over if a worker has failed to
  // reach it, and only it, for a heartbeat timeout, the scheduler is not cut
  // off itself, and nothing is lost by moving its partitions to their
  // backups.
  void CutFromAWorkerLocked(int32_t rank, absl::Time now, std::vector<BarrierDone>* aborted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How long a worker that had a server failed over for a cut link is not
  // believed about another one (a worker with a bad link of its own would
  // otherwise move one server after the other).
  absl::Duration CutMemory() const {
    return absl::Milliseconds(job_.cluster().rpc_timeout_ms()) +
           absl::Milliseconds(job_.cluster().heartbeat_timeout_ms());
  }
  // Gives every partition short of replication-1 backups new ones on the
  // live servers holding the fewest copies. Returns how many were placed.
  int RefillBackupsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Load balancing (scheduler/rebalancer.h), from Poll.
  void BalanceLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const Node* ServerLocked(int rank) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A worker died: the job goes on without it (its shard is requeued, it
  // leaves the live set, barriers and evaluations stop waiting for it).
  // Collects barrier waiters now released.
  void WorkerDiedLocked(Node& node, absl::Duration silent,
                        std::vector<std::pair<BarrierDone, rpc::BarrierResponse>>* ready,
                        std::vector<BarrierDone>* aborted) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Merges an epoch's evaluation parts once every live worker's is in.
  absl::Status FinishEval(int32_t epoch) ABSL_LOCKS_EXCLUDED(mu_);
  void FailLocked(const std::string& message, std::vector<BarrierDone>* aborted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Asks every server to write its partitions into `dir`; returns the keys
  // written and the servers' counters as JSON. Runs without mu_.
  absl::StatusOr<uint64_t> SaveModel(const std::string& dir, std::string* server_stats);
  // Saves the model (or keeps the best one), writes metrics.json and
  // report.html. Runs without mu_.
  absl::Status FinishJob();

  // Checkpoints. The epoch (0-based) whose checkpoint is taken when barrier
  // `name` completes, or -1: "eval-E" when workers evaluate after every
  // epoch (so the evaluation is in the checkpoint's history), else
  // "epoch-E"; every checkpoint.every_epochs epochs, never after the last.
  int32_t CheckpointEpochLocked(const std::string& name, const BarrierState& b) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string CheckpointBarrierLocked(int32_t epoch) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Has every primary write its partitions, then writes the manifest.
  // Runs without mu_.
  absl::StatusOr<rpc::CheckpointManifest> WriteCheckpoint(int32_t epoch, const std::string& dir)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Partitions left without any replica by the death of a server: placed on
  // the live servers holding the least (standbys first), which load them
  // from the latest checkpoint. REQUIRES: latest_checkpoint_ not empty.
  // `who_why` names the server and how it died, for the log line.
  void RestoreLostLocked(const std::vector<int>& lost, const std::string& who_why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  rpc::ProgressRecord ProgressLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LoadProgressLocked(const rpc::ProgressRecord& progress) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes the state file if anything changed since it was last written.
  void SaveStateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const config::JobConfig job_;
  const Options options_;
  const Clock* const clock_;
  absl::Time created_;

  mutable Mutex mu_;
  rpc::JobState state_ ABSL_GUARDED_BY(mu_) = rpc::WAITING;
  std::string failure_ ABSL_GUARDED_BY(mu_);
  std::map<uint32_t, Node> nodes_ ABSL_GUARDED_BY(mu_);
  // When each member not dead and not gone was last heard from; which to
  // declare dead (none while the scheduler seems cut off from a majority).
  Liveness liveness_ ABSL_GUARDED_BY(mu_);
  uint32_t next_node_id_ ABSL_GUARDED_BY(mu_) = 1;
  int32_t servers_registered_ ABSL_GUARDED_BY(mu_) = 0;
  int32_t workers_registered_ ABSL_GUARDED_BY(mu_) = 0;
  int32_t standbys_registered_ ABSL_GUARDED_BY(mu_) = 0;
  // Servers reported unreachable, to probe; and when each was last probed.
  std::map<int32_t, std::string> suspects_ ABSL_GUARDED_BY(mu_);
  std::map<int32_t, absl::Time> probed_ ABSL_GUARDED_BY(mu_);
  // The latest report, per (live worker's node id, server rank), that the
  // worker could not reach the server: when, for how long its calls had
  // been failing, the error. And when each worker last had a server failed
  // over for a cut link (CutMemory).
  struct Unreachable {
    absl::Time reported;
    absl::Duration failing_for;
    std::string error;
  };
  std::map<std::pair<uint32_t, int32_t>, Unreachable> unreachable_ ABSL_GUARDED_BY(mu_);
  std::map<uint32_t, absl::Time> cut_by_ ABSL_GUARDED_BY(mu_);
  // Traffic per partition, partition moves (scheduler/rebalancer.h).
  Rebalancer rebalancer_ ABSL_GUARDED_BY(mu_);
  // Counters for psctl and /metrics (JobStatus), since this process started.
  uint32_t server_failovers_ ABSL_GUARDED_BY(mu_) = 0, promotions_ ABSL_GUARDED_BY(mu_) = 0,
                             worker_takeovers_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t shards_done_ ABSL_GUARDED_BY(mu_) = 0;
  rpc::ClusterView view_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, BarrierState> barriers_ ABSL_GUARDED_BY(mu_);
  // The data-shard queue (scheduler/shard_queue.h).
  ShardQueue shards_ ABSL_GUARDED_BY(mu_);
  uint64_t train_examples_ ABSL_GUARDED_BY(mu_) = 0;
  // Evaluations, the history, early stopping (scheduler/eval_book.h).
  EvalBook eval_book_ ABSL_GUARDED_BY(mu_);
  CondVar work_cv_;  // signalled when Poll has work
  absl::Time started_ ABSL_GUARDED_BY(mu_);       // start barrier released
  absl::Time finished_ ABSL_GUARDED_BY(mu_);      // end barrier complete
  bool end_pending_ ABSL_GUARDED_BY(mu_) = false;  // end barrier complete, job not finished yet
  absl::Time over_at_ ABSL_GUARDED_BY(mu_);       // when DONE/FAILED was reached
  absl::Time last_progress_ ABSL_GUARDED_BY(mu_);
  // Checkpoints: the latest complete one and its epochs done; the epoch
  // whose checkpoint Poll is to write (its barrier waits), epochs tried.
  std::string latest_checkpoint_ ABSL_GUARDED_BY(mu_);
  int32_t latest_checkpoint_epochs_ ABSL_GUARDED_BY(mu_) = 0;
  int32_t checkpoint_pending_ ABSL_GUARDED_BY(mu_) = -1;
  bool checkpoint_requested_ ABSL_GUARDED_BY(mu_) = false;  // psctl checkpoint
  std::set<int32_t> checkpoint_tried_ ABSL_GUARDED_BY(mu_);
  // A resumed job: the checkpoint the servers load at the start, where the
  // workers start, training seconds before the resume.
  std::string resume_dir_ ABSL_GUARDED_BY(mu_);
  int32_t start_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t start_clock_ ABSL_GUARDED_BY(mu_) = 0;
  double resumed_seconds_ ABSL_GUARDED_BY(mu_) = 0;
  // State file: where we listen, something changed since the last write,
  // and, after a restore, barriers and evaluations to look at again.
  std::string host_ ABSL_GUARDED_BY(mu_);
  int port_ ABSL_GUARDED_BY(mu_) = 0;
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t saved_view_version_ ABSL_GUARDED_BY(mu_) = 0;  // every view change is saved too
  // The version of the view file the state file names (0: none written).
  uint64_t view_file_version_ ABSL_GUARDED_BY(mu_) = 0;
  // The view changed without a new version (complete backups, from load
  // reports): its file is rewritten at the next save.
  bool view_file_stale_ ABSL_GUARDED_BY(mu_) = false;
  bool recheck_ ABSL_GUARDED_BY(mu_) = false;
  bool state_write_failed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ps

#endif  // PS_SCHEDULER_SCHEDULER_CORE_H_

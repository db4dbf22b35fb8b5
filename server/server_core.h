// The parameter server without its transport: validates requests, routes keys
// to the partitions it is primary of, applies pushes (at once, or per clock in
// BSP), gates pulls by the consistency mode (DESIGN.md section 4), forwards
// every change to the partitions' backups and acknowledges a push or tick only
// once they applied it (section 6), and replays a primary's forwards where it
// is a backup.
//
// Clocks are counted per partition (a worker covers every partition once per
// clock), so they are part of a partition's replicated state:
//   bsp: a pull at clock c is served once every partition it reads applied
//        every clock < c, with the model of exactly those clocks (also where
//        c is applied: a standby redoing it, Partition::Read); a partition
//        applies clock c, summing the pushes over workers in rank order, once
//        every live worker covered it;
//   ssp: served once, on each partition it reads, min live clock >= c - s;
//   asp: served at once.
// A pull that cannot be served yet is parked and finished later by the
// thread whose push, tick or view change opens its gate (no thread blocks on
// it), or failed when its deadline passes.
//
// A clocked push that lists every partition this server is primary of
// raises its worker's clock floor once (clock_floor.h) instead of visiting
// the partitions it has no keys for; it still visits those that ask for it
// (buffered BSP pushes, rejoining) or have backups (their backups learn
// clocks from ops). A view change ends the floor's era.
//
// Thread-safety: all methods are thread-safe. Lock order: view_mu_ (one view
// change at a time) -> a partition's lock -> the replicator's lock, and the
// clock floor's lock (a leaf); gate_mu_ (roles, epochs, live workers, parked
// pulls) is never held while taking any other lock or finishing a call.
#ifndef PS_SERVER_SERVER_CORE_H_
#define PS_SERVER_SERVER_CORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "common/tables.h"
#include "proto/job_config.pb.h"
#include "proto/ps.pb.h"
#include "proto/scheduler.pb.h"
#include "server/clock_floor.h"
#include "server/optimizer.h"
#include "server/partition.h"
#include "server/replicator.h"

namespace ps {

class ServerCore {
 public:
  // A finished call reports its status here exactly once.
  using Done = std::function<void(absl::Status)>;

  ServerCore(const config::JobConfig& job, int rank);
  ~ServerCore();

  // Called (without locks) when a request carries a newer map version than
  // this server's view, or a backup refused this server's forwards: the
  // owner should fetch the view and call UpdateView.
  void SetViewRefresher(std::function<void()> refresh);
  // Called (from a replication thread) when a backup cannot be reached, so
  // the owner can tell the scheduler before its heartbeat timeout.
  void SetPeerReporter(std::function<void(int rank, const std::string& error)> report);

  // Called (without locks) when this server cannot take up a partition the
  // view gives it, e.g. its checkpoint file is missing: the job cannot go on.
  void SetFailureReporter(std::function<void(const std::string& message)> report);

  // Adopts a newer cluster view: this server's roles per partition (primary,
  // backup, neither), epochs, backups to feed, live workers. Older or equal
  // versions are ignored. A partition it becomes primary of with a
  // Placement.restore_from is loaded from that checkpoint first.
  void UpdateView(const rpc::ClusterView& view);
  uint64_t view_version() const;
  // Partitions this server is backup of and holds a copy of (its snapshot
  // is in), for the heartbeat: only such backups may be promoted.
  std::vector<uint32_t> SyncedBackups() const;
  // Traffic per partition since the last call (for the heartbeat): the
  // scheduler balances load with it.
  std::vector<rpc::PartitionLoad> TakeLoad();

  // Applies (or buffers) the push on the partitions it covers; `done` runs
  // once their backups applied it too (maybe before returning).
  // `req` and `resp` must live until `done`.
  void Push(const rpc::PushRequest* req, rpc::PushResponse* resp, absl::Time deadline, Done done);

  // Fills `resp` and calls `done` once the consistency gate allows, maybe
  // before returning, maybe later from another thread; by `deadline` at the
  // latest (DEADLINE_EXCEEDED). `req` and `resp` must live until `done`.
  void Pull(const rpc::PullRequest* req, rpc::PullResponse* resp, absl::Time deadline, Done done);

  // The lowest next clock of `worker` over the partitions this server is
  // primary of.
  int64_t WorkerClock(int32_t worker) const;

  // Moves a worker's clock on every partition this server is primary of.
  void Tick(const rpc::TickRequest& req, absl::Time deadline, Done done);

  // Backup side: installs snapshots and replays ops from a primary.
  absl::Status Replicate(const rpc::ReplicateRequest& req, rpc::ReplicateResponse* resp);

  // Writes this server's partitions of the model into `dir`, which must be
  // one of the job's model directories (common/paths.h: anything else is
  // PERMISSION_DENIED and nothing is written).
  absl::StatusOr<rpc::SaveModelResponse> SaveModel(const std::string& dir);
  // Writes the whole state of every partition this server is primary of
  // into checkpoint directory `dir` (common/checkpoint.h), which must be
  // <checkpoint root>/epoch-N.
  absl::StatusOr<rpc::CheckpointResponse> Checkpoint(const std::string& dir);
  rpc::StatsResponse Stats() const;

  // For /metrics, cumulative since the start.
  struct Traffic {
    uint64_t push_requests = 0, push_bytes = 0, pull_requests = 0, pull_bytes = 0;
  };
  std::vector<Traffic> PartitionTraffic() const;  // per partition
  // Served pulls that carried a clock, by staleness (reader clock - slowest
  // live worker's clock): [s] for s < kStalenessBuckets - 1, the last for
  // that and more.
  static constexpr int kStalenessBuckets = 9;
  std::vector<uint64_t> StalenessCounts() const;
  size_t ParkedPulls() const;
  uint64_t ReplicationPending() const { return replicator_.Pending(); }

  // Fails parked pulls and unacknowledged pushes whose deadline passed.
  // Call periodically.
  void ExpireParked(absl::Time now);
  // Fails every parked pull and waiting push (UNAVAILABLE) and refuses new ones.
  void Shutdown();

 private:
  enum Role : int8_t { kNone = 0, kPrimary = 1, kBackup = 2 };
  struct Parked {
    const rpc::PullRequest* req;
    rpc::PullResponse* resp;
    int64_t clock;
    absl::Time deadline;
    Done done;
    std::vector<int> partitions;
    bool waited = false;
    // The gate version at which it was last found closed (0: never checked).
    uint64_t closed_at = 0;
  };
  // Keys of a request grouped by partition.
  using Routing = std::map<int, std::vector<KeyRef>>;

  // The roles a request was checked against, with the clock floor's era
  // they belong to and how many primaries they name.
  struct RoleView {
    std::vector<Role> role;
    uint64_t version = 0;       // of the view they come from
    bool stepped_down = false;  // a partition was given up since that view (Fenced)
    uint64_t era = 0;
    int primaries = 0;
  };
  // Checks tables, sizes, values, the map version and that this server is
  // primary of every key's partition; groups keys by partition. `roles`
  // (if set) receives the roles it checked against.
  template <typename Request>
  absl::StatusOr<Routing> Route(const Request& req, bool with_values, RoleView* roles = nullptr)
      ABSL_LOCKS_EXCLUDED(gate_mu_);
  // The role table changed (view_mu_ held): a new era of the clock floor.
  // Folds the old era's floors into the partitions that were primary in
  // `old_role`, then has those primary in `new_role` follow the new one.
  void NewFloorEra(uint64_t era, const std::vector<Role>& old_role,
                   const std::vector<Role>& new_role) ABSL_EXCLUSIVE_LOCKS_REQUIRED(view_mu_);
  absl::Status CheckMapVersion(uint64_t version) ABSL_LOCKS_EXCLUDED(gate_mu_);
  absl::Status Serve(const rpc::PullRequest& req, rpc::PullResponse* resp);
  // Serves the parked pulls whose gates are open. Every caller that may have
  // opened gates (a clock moved, the view or a role changed) passes
  // `fresh_only` false, which starts a new gate version; a pull's arrival
  // passes true: then pulls found closed at the current version are not
  // checked again (each arriving pull re-checked every parked one: with W
  // workers, W^2 checks per clock and partition).
  void WakeParked(bool fresh_only = false) ABSL_LOCKS_EXCLUDED(gate_mu_);
  // After a BSP push or tick that visited `visited` with the live workers
  // `live`: if the live workers changed meanwhile, closes those partitions'
  // clocks again with the new list. Whether a clock closed.
  bool CloseAgainIfLiveChanged(const std::vector<int32_t>& live,
                               const std::vector<std::pair<int, uint64_t>>& visited)
      ABSL_LOCKS_EXCLUDED(gate_mu_);
  // Counts a request's keys and bytes per partition.
  template <typename Request>
  void CountLoad(const Request& req, const Routing& routing);
  // A backup refused our forwards for p: step down as its primary.
  void Fenced(int partition);
  void Resync(int partition, int backup);
  std::vector<int32_t> LiveWorkers() const ABSL_LOCKS_EXCLUDED(gate_mu_);
  // Loads partition p from checkpoint `dir` as its primary in `epoch`;
  // `rejoin`: the workers are past the checkpoint (Partition::Rejoin).
  absl::Status Restore(int partition, const std::string& dir, uint64_t epoch, bool rejoin);

  const config::JobConfig job_;
  const int rank_;
  const config::Mode mode_;
  const int staleness_;
  const int num_partitions_;
  const std::vector<TableSpec> tables_;
  std::vector<std::unique_ptr<Optimizer>> optimizers_;
  ClockFloor floor_;
  // Per partition: Partition::kVisitSelf | kVisitServer (set before a
  // partition's backups take its state, cleared once it has none).
  std::unique_ptr<std::atomic<uint8_t>[]> visit_flags_;
  std::vector<std::unique_ptr<Partition>> partitions_;  // all P; only those with a role are used
  Replicator replicator_;

  Mutex view_mu_;  // one view change at a time
  uint64_t last_era_ ABSL_GUARDED_BY(view_mu_) = 0;

  mutable Mutex gate_mu_;
  std::function<void()> refresh_ ABSL_GUARDED_BY(gate_mu_);
  std::function<void(int, const std::string&)> report_peer_ ABSL_GUARDED_BY(gate_mu_);
  std::function<void(const std::string&)> report_failure_ ABSL_GUARDED_BY(gate_mu_);
  uint64_t view_version_ ABSL_GUARDED_BY(gate_mu_) = 0;
  std::vector<Role> role_ ABSL_GUARDED_BY(gate_mu_);
  uint64_t era_ ABSL_GUARDED_BY(gate_mu_) = 0;   // the clock floor's era of role_
  int primaries_ ABSL_GUARDED_BY(gate_mu_) = 0;  // partitions role_ makes primary
  // Fenced gave up a partition since the last view: role_ is not the view's.
  bool stepped_down_ ABSL_GUARDED_BY(gate_mu_) = false;
  std::vector<uint64_t> epoch_ ABSL_GUARDED_BY(gate_mu_);  // per partition, from the view
  // Epoch of the last snapshot installed per partition (0: none). A backup
  // holds a complete copy once it has one of the view's epoch.
  std::vector<uint64_t> installed_epoch_ ABSL_GUARDED_BY(gate_mu_);
  // Partitions loaded from a checkpoint in this primary term. Their worker
  // clocks are those of the checkpoint, behind the workers' when every
  // replica died mid-job, so a pull at clock c here first moves the puller's
  // clock to c: a worker pulls at c only once its pushes of every clock
  // below c were acknowledged (by this partition's previous primary), so the
  // gate never waits for pushes that will not come again. A pull sent ahead
  // of its push of c - 1 says so (PullRequest.acked_clock): it moves the
  // clock only that far, or the push in flight would be taken as done.
  std::vector<bool> restored_ ABSL_GUARDED_BY(gate_mu_);
  std::vector<int32_t> live_workers_ ABSL_GUARDED_BY(gate_mu_);
  bool shut_down_ ABSL_GUARDED_BY(gate_mu_) = false;
  std::vector<Parked> parked_ ABSL_GUARDED_BY(gate_mu_);
  bool waking_ ABSL_GUARDED_BY(gate_mu_) = false;  // a thread is checking parked pulls
  bool rewake_ ABSL_GUARDED_BY(gate_mu_) = false;  // ... and must check again
  uint64_t gate_version_ ABSL_GUARDED_BY(gate_mu_) = 1;  // see WakeParked
  int64_t max_staleness_ ABSL_GUARDED_BY(gate_mu_) = 0;

  // Per partition, since the last TakeLoad.
  std::unique_ptr<std::atomic<uint64_t>[]> load_requests_, load_bytes_;
  // Per partition, since the start: push requests, push bytes, pull
  // requests, pull bytes (4 per partition).
  std::unique_ptr<std::atomic<uint64_t>[]> traffic_;
  std::atomic<uint64_t> staleness_counts_[kStalenessBuckets] = {};
  std::atomic<uint64_t> pushes_applied_{0}, pushes_duplicate_{0}, pulls_served_{0},
      pulls_parked_{0}, replica_ops_applied_{0};
};

}  // namespace ps

#endif  // PS_SERVER_SERVER_CORE_H_

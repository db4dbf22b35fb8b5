// The parameter server without its transport: validates requests, routes keys
// to partitions, applies pushes (at once, or per clock in BSP) and gates pulls
// by the consistency mode (DESIGN.md section 4):
//   bsp: a pull at clock c is served once every clock < c is applied; the
//        pushes of clock c are summed over all live workers in rank order and
//        applied in one optimizer step when the last one arrives;
//   ssp: a pull at clock c is served once min live clock >= c - staleness;
//   asp: pulls are served at once.
// A pull that cannot be served yet is parked and finished later by the
// thread whose push or tick opens the gate (no thread blocks on it), or
// failed when its deadline passes.
//
// Thread-safety: all methods are thread-safe. gate_mu_ guards clocks, the
// view and parked pulls; each Partition has its own lock. gate_mu_ is never
// held while a partition lock is taken or a parked pull is finished.
#ifndef PS_SERVER_SERVER_CORE_H_
#define PS_SERVER_SERVER_CORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/sync.h"
#include "absl/time/time.h"
#include "common/tables.h"
#include "proto/job_config.pb.h"
#include "proto/ps.pb.h"
#include "proto/scheduler.pb.h"
#include "server/optimizer.h"
#include "server/partition.h"

namespace ps {

class ServerCore {
 public:
  // A finished pull reports its status here exactly once.
  using PullDone = std::function<void(absl::Status)>;

  ServerCore(const config::JobConfig& job, int rank);

  // Adopts a newer cluster view: which partitions this server owns, which
  // workers are live. Older or equal versions are ignored.
  void UpdateView(const rpc::ClusterView& view);

  // Returns whether the push was a duplicate (already applied everywhere).
  absl::StatusOr<bool> Push(const rpc::PushRequest& req);

  // Fills `resp` and calls `done` once the consistency gate allows, maybe
  // before returning, maybe later from another thread; by `deadline` at the
  // latest (DEADLINE_EXCEEDED). `req` and `resp` must live until `done`.
  void Pull(const rpc::PullRequest* req, rpc::PullResponse* resp, absl::Time deadline,
            PullDone done);

  absl::Status Tick(int32_t worker, int64_t clock);
  absl::StatusOr<rpc::SaveModelResponse> SaveModel(const std::string& dir);
  rpc::StatsResponse Stats() const;

  // Fails parked pulls whose deadline passed. Call periodically.
  void ExpireParked(absl::Time now);
  // Fails every parked pull (UNAVAILABLE) and refuses new ones.
  void Shutdown();

 private:
  struct Parked {
    const rpc::PullRequest* req;
    rpc::PullResponse* resp;
    int64_t clock;
    absl::Time deadline;
    PullDone done;
  };
  // Keys of a request grouped by partition.
  using Routing = std::map<int, std::vector<KeyRef>>;

  // Checks tables, sizes, values and ownership; groups keys by partition.
  template <typename Request>
  absl::StatusOr<Routing> Route(const Request& req, bool with_values) const
      ABSL_LOCKS_EXCLUDED(gate_mu_);
  int64_t MinClockLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(gate_mu_);
  bool GateOpenLocked(int64_t clock) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(gate_mu_);
  // Moves parked pulls whose gate is open into `ready`.
  void TakeReadyLocked(std::vector<Parked>* ready) ABSL_EXCLUSIVE_LOCKS_REQUIRED(gate_mu_);
  absl::Status Serve(const rpc::PullRequest& req, rpc::PullResponse* resp);
  // BSP: applies every complete clock, in order, then serves ready pulls.
  void AdvanceAndServe() ABSL_LOCKS_EXCLUDED(gate_mu_);

  const config::JobConfig job_;
  const int rank_;
  const config::Mode mode_;
  const int staleness_;
  const int num_partitions_;
  const std::vector<TableSpec> tables_;
  std::vector<std::unique_ptr<Optimizer>> optimizers_;
  std::vector<std::unique_ptr<Partition>> partitions_;  // all P; only owned ones are used

  mutable Mutex gate_mu_;
  uint64_t view_version_ ABSL_GUARDED_BY(gate_mu_) = 0;
  std::vector<bool> owned_ ABSL_GUARDED_BY(gate_mu_);
  std::vector<int32_t> live_workers_ ABSL_GUARDED_BY(gate_mu_);
  // Next clock of each worker: it has pushed every clock below this one.
  absl::flat_hash_map<int32_t, int64_t> next_clock_ ABSL_GUARDED_BY(gate_mu_);
  // Chunks received per (worker, clock), until the worker's clock completes.
  std::map<std::pair<int32_t, int64_t>, std::set<uint32_t>> chunks_ ABSL_GUARDED_BY(gate_mu_);
  // BSP: examples behind each worker's push per clock not yet applied.
  std::map<int64_t, std::map<int32_t, uint64_t>> examples_ ABSL_GUARDED_BY(gate_mu_);
  int64_t applied_clock_ ABSL_GUARDED_BY(gate_mu_) = 0;  // BSP: clocks < this are applied
  bool applying_ ABSL_GUARDED_BY(gate_mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(gate_mu_) = false;
  std::vector<Parked> parked_ ABSL_GUARDED_BY(gate_mu_);
  int64_t max_staleness_ ABSL_GUARDED_BY(gate_mu_) = 0;

  std::atomic<uint64_t> pushes_applied_{0}, pushes_duplicate_{0}, pulls_served_{0},
      pulls_parked_{0};
};

}  // namespace ps

#endif  // PS_SERVER_SERVER_CORE_H_

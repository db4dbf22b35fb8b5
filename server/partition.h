// One partition's share of every table and everything else that must move
// with it when it is replicated, migrated or checkpointed: values and
// optimizer slots, the exactly-once table (last applied seq per worker
// incarnation), every worker's clock here, the BSP pushes of clocks not yet
// applied, the values the last applied clock changed as they were before it,
// the epoch of its primary and the sequence number (lsn) of the last
// operation applied.
//
// Every change is an operation with the next lsn. On the primary an
// operation is decided and applied; when an OpSink is given, the operation
// is handed to it (under the partition's lock, so in lsn order) for the
// backups, which replay it with ApplyOp and end up bit-identical.
//
// A primary partition may follow its server's clock floor (clock_floor.h):
// pushes with no keys here then raise the floor instead of visiting, and the
// partition reads a worker's clock as the higher of its own and the floor's
// (NextLocked). It folds the floor into its own clocks whenever its state
// leaves it (State) and when the era ends (FoldFloor). While it has BSP
// pushes buffered or is rejoining, it asks to be visited by every push
// (`visit_flag`, bit kVisitSelf): the server then treats it as before.
//
// Thread-safety: every method takes the partition's own mutex; different
// partitions never share a lock. OpSink::Enqueue is called with that mutex
// held and must not call back into the partition. The server core never holds
// its gate lock while calling in here. The clock floor's lock is taken inside
// the partition's.
#ifndef PS_SERVER_PARTITION_H_
#define PS_SERVER_PARTITION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "common/model_io.h"
#include "common/sync.h"
#include "common/tables.h"
#include "proto/ps.pb.h"
#include "server/clock_floor.h"
#include "server/optimizer.h"
#include "server/row_store.h"

namespace ps {

// A key inside a request: slices[slice].keys[index].
struct KeyRef {
  uint32_t slice;
  uint32_t index;
};

// Identity of a pushing process for deduplication.
struct PusherId {
  int32_t worker;
  uint64_t incarnation;
  template <typename H>
  friend H AbslHashValue(H h, const PusherId& p) {
    return H::combine(std::move(h), p.worker, p.incarnation);
  }
  bool operator==(const PusherId& o) const {
    return worker == o.worker && incarnation == o.incarnation;
  }
};

// Receives a primary's operations for its backups.
class OpSink {
 public:
  virtual ~OpSink() = default;
  // Whether partition p has backups (if not, no op is built).
  virtual bool Replicating(int partition) const = 0;
  virtual void Enqueue(int partition, rpc::ReplicaOp op) = 0;
};

class Partition {
 public:
  // Bits of the visit flag: the partition needs every push's visit
  // (kVisitSelf, set by the partition) or the server wants it visited
  // (kVisitServer, e.g. it has backups).
  static constexpr uint8_t kVisitSelf = 1;
  static constexpr uint8_t kVisitServer = 2;

  // `tables[i].id == i`; `optimizers[i]` belongs to tables[i]. Both outlive
  // this, as do `floor` and `visit_flag` if given (without a floor the
  // partition never follows one).
  Partition(int id, const std::vector<TableSpec>* tables,
            const std::vector<std::unique_ptr<Optimizer>>* optimizers, uint64_t seed,
            ClockFloor* floor = nullptr, std::atomic<uint8_t>* visit_flag = nullptr);

  int id() const { return id_; }

  struct PushResult {
    bool fresh = false;        // false: (worker, incarnation, seq) was applied here already
    bool clock_moved = false;  // a worker's clock or the applied clock moved
    bool applied_moved = false;  // BSP: the applied clock moved (only that opens a BSP read)
    uint64_t lsn = 0;          // the partition's lsn afterwards
  };
  // A push's part for this partition (`refs`, maybe none): deduplicated,
  // then applied at once scaled by 1 / its example count, or in BSP
  // (`buffer`) kept for its clock; with a clock, the worker's clock here
  // moves past it. In BSP, every clock that all `live` workers covered is
  // then applied (CloseClocks).
  PushResult Push(const rpc::PushRequest& req, absl::Span<const KeyRef> refs, bool buffer,
                  absl::Span<const int32_t> live, OpSink* sink);

  // BSP: applies, in order, every clock that all `live` workers covered: the
  // buffered pushes summed over workers in rank order, in double, scaled by
  // 1 / the clock's examples, one optimizer step per key.
  PushResult CloseClocks(absl::Span<const int32_t> live, OpSink* sink);

  // `worker`'s clock here becomes max(current, clock); then, in BSP
  // (`close`), CloseClocks.
  PushResult Tick(int32_t worker, int64_t clock, bool close, absl::Span<const int32_t> live,
                  OpSink* sink);

  struct Gate {
    int64_t applied_clock = 0;  // BSP: clocks below this are applied
    int64_t min_clock = 0;      // slowest live worker's next clock (INT64_MAX: none)
    // False when GateState stopped at a live worker still at the applied
    // clock (so applied_clock is exact, and min_clock is that worker's
    // clock: at least the slowest one's).
    bool min_exact = true;
  };
  // `need_min` false: it may stop at the first worker found holding the
  // applied clock (O(1) while one does, instead of O(live workers)).
  Gate GateState(absl::Span<const int32_t> live, bool need_min = true) const;
  // `worker`'s next clock here (0 if it never pushed).
  int64_t NextClock(int32_t worker) const;

  // Copies the values of the referenced keys into `resp` (whose slices are
  // sized like the request's), creating missing keys with their initializer.
  // BSP (`bsp_clock`, the pull's clock c): the model with exactly the clocks
  // below c applied, also where c is applied already, i.e. the values from
  // before c. That happens only to a standby redoing the clock c its
  // predecessor died in: the partitions its predecessor's push reached
  // applied c, and the gradient the standby computes for the others must be
  // the one its predecessor computed. (Its predecessor pushed c + 1 nowhere,
  // so no partition is further ahead.)
  void Read(const rpc::PullRequest& req, absl::Span<const KeyRef> refs, rpc::PullResponse* resp,
            std::optional<int64_t> bsp_clock = std::nullopt);

  enum class OpResult { kApplied, kDuplicate, kFenced, kGap };
  // Backup: replays a primary's op. Refused (kFenced) if its epoch is older
  // than the newest this partition knows, including `view_epoch`.
  OpResult ApplyOp(const rpc::ReplicaOp& op, uint64_t view_epoch);

  // Everything, for a new replica or a checkpoint; `under_lock` (if set) runs
  // with the state taken and the lock still held, so that no op slips
  // between the snapshot and what `under_lock` sets up.
  rpc::PartitionState State(const std::function<void(const rpc::PartitionState&)>& under_lock = {});
  // Replaces everything. Refused if its epoch is older than the newest this
  // partition knows, including `view_epoch`, or if it is malformed.
  enum class InstallResult { kInstalled, kFenced, kMalformed };
  InstallResult Install(const rpc::PartitionState& state, uint64_t view_epoch);

  // After a mid-job restore from a checkpoint: the workers' clocks here are
  // the checkpoint's, behind the workers' own. Until a worker pushes or
  // ticks here, it does not hold back clocks (BSP) or reads (SSP): its
  // pushes of clocks this partition's dead primary had acknowledged will
  // never come again, and waiting for them could deadlock the job. The
  // contributions this lets through without it are part of what the restore
  // loses.
  void Rejoin();

  // From now on, workers' clocks here are at least the floor of `era`
  // (every push that raises it in that era covers this partition).
  void FollowFloor(uint64_t era);
  // Era `era` ended with `floors`: folds them into this partition's clocks
  // (if it followed that era) and stops following.
  void FoldFloor(uint64_t era, absl::Span<const std::pair<int32_t, int64_t>> floors);

  // The primary's epoch, stamped on the ops it sends from now on.
  void SetEpoch(uint64_t epoch);
  uint64_t lsn() const;

  // The values (not the slots) of every key, per table, sorted by key.
  std::vector<TableRows> Snapshot() const;
  uint64_t num_keys() const;
  // Bytes the stored rows and their indexes hold (not the BSP buffers).
  size_t StoreBytes() const;

 private:
  // One worker's gradients for one clock: (table, key) and dim floats each.
  struct Buffered {
    std::vector<std::pair<uint32_t, uint64_t>> keys;
    std::vector<float> grads;
    float lr_scale = 1.0f;
    uint64_t examples = 0;
  };

  int stride(uint32_t table) const;
  // The floor of `worker` if this partition follows the current era, else 0.
  int64_t FloorLocked(int32_t worker) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `worker`'s next clock here: its own or the floor's, the higher.
  int64_t NextLocked(int32_t worker) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Raises the workers' own clocks to `floors`; a worker that passed a
  // buffered clock that way gets that clock's part it never sent here (no
  // keys: its example count and scale, from the floor's record).
  void FoldLocked(absl::Span<const std::pair<int32_t, int64_t>> floors)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Before clock `clock` is applied: the same for every worker past it.
  void CompleteClockLocked(int64_t clock) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets or clears kVisitSelf: buffered pushes or rejoining.
  void UpdateVisitFlagLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  float* RowLocked(uint32_t table, uint64_t key, uint32_t** step) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True if seq was seen; else records it.
  bool SeenLocked(const rpc::PushRequest& req) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool PushLocked(const rpc::PushRequest& req, absl::Span<const KeyRef> refs, bool buffer)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool TickLocked(int32_t worker, int64_t clock) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether `worker`'s clock counts for closing clocks and gating reads.
  bool CountsLocked(int32_t worker) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !rejoining_ || rejoined_.count(worker) > 0;
  }
  void ApplyClockLocked(int64_t clock) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool CloseClocksLocked(absl::Span<const int32_t> live, OpSink* sink)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitLocked(OpSink* sink, rpc::ReplicaOp op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int id_;
  const std::vector<TableSpec>* const tables_;
  const std::vector<std::unique_ptr<Optimizer>>* const optimizers_;
  const uint64_t seed_;
  ClockFloor* const floor_;
  std::atomic<uint8_t>* const visit_flag_;

  mutable Mutex mu_;
  uint64_t following_ ABSL_GUARDED_BY(mu_) = 0;  // the floor's era it follows (0: none)
  // Per table: key -> dim values, then the optimizer's slots, and a step.
  std::vector<RowStore> data_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<PusherId, uint64_t> last_seq_ ABSL_GUARDED_BY(mu_);
  // Next clock of each worker here: it covered every clock below (with the
  // floor, NextLocked, it may be further).
  std::map<int32_t, int64_t> next_clock_ ABSL_GUARDED_BY(mu_);
  // clock -> worker rank -> gradients (BSP only).
  std::map<int64_t, std::map<int32_t, Buffered>> pending_ ABSL_GUARDED_BY(mu_);
  int64_t applied_clock_ ABSL_GUARDED_BY(mu_) = 0;
  // Where in the live workers CloseClocksLocked or GateState found one
  // holding the applied clock last: they look there first (a hint; any
  // index is safe).
  mutable size_t holder_hint_ ABSL_GUARDED_BY(mu_) = 0;
  // BSP: per table, the keys clock `before_clock_` changed -> their values
  // before it (dim floats at index * dim in before_values_), for Read.
  int64_t before_clock_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<absl::flat_hash_map<uint64_t, uint32_t>> before_index_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<float>> before_values_ ABSL_GUARDED_BY(mu_);
  // ApplyClockLocked's scratch, kept between clocks so that a clock
  // allocates nothing once they have grown: per table, the clock's keys in
  // first-seen order, an open-addressing index of them (0: empty, else
  // position + 1), and each key's first and last contribution; the
  // contributions (a buffered gradient row and the next one of the same key,
  // in rank order); one key's sources and a range's sums and gradient.
  struct ClockIndex {
    std::vector<uint32_t> slots;
    std::vector<uint64_t> keys;
    std::vector<uint32_t> first, last;
  };
  struct Contribution {
    const float* grad;
    uint32_t next;
  };
  std::vector<ClockIndex> clock_index_ ABSL_GUARDED_BY(mu_);
  std::vector<Contribution> contributions_ ABSL_GUARDED_BY(mu_);
  std::vector<const float*> clock_sources_ ABSL_GUARDED_BY(mu_);
  std::vector<double> clock_sum_ ABSL_GUARDED_BY(mu_);
  std::vector<float> clock_grad_ ABSL_GUARDED_BY(mu_);
  std::vector<size_t> clock_counts_ ABSL_GUARDED_BY(mu_);  // keys per table
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t lsn_ ABSL_GUARDED_BY(mu_) = 0;
  bool rejoining_ ABSL_GUARDED_BY(mu_) = false;  // see Rejoin
  std::set<int32_t> rejoined_ ABSL_GUARDED_BY(mu_);
};

// Every key of every slice of `push`.
std::vector<KeyRef> AllKeys(const rpc::PushRequest& push);

}  // namespace ps

#endif  // PS_SERVER_PARTITION_H_

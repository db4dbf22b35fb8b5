// One partition's share of every table: the values and optimizer slots of the
// keys that hash to it, its exactly-once table (last applied seq per worker
// incarnation) and, in BSP, the pushes of clocks not yet applied.
//
// Thread-safety: every method takes the partition's own mutex; different
// partitions never share a lock, so pushes and pulls on different partitions
// run in parallel. Callers must not hold other locks that a partition's
// callers take in the opposite order (the server core never holds its gate
// lock while calling in here).
#ifndef PS_SERVER_PARTITION_H_
#define PS_SERVER_PARTITION_H_

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/sync.h"
#include "absl/types/span.h"
#include "common/model_io.h"
#include "common/tables.h"
#include "proto/ps.pb.h"
#include "server/optimizer.h"

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

class Partition {
 public:
  // `tables[i].id == i`; `optimizers[i]` belongs to tables[i]. Both outlive this.
  Partition(int id, const std::vector<TableSpec>* tables,
            const std::vector<std::unique_ptr<Optimizer>>* optimizers, uint64_t seed);

  int id() const { return id_; }

  // Copies the values of the referenced keys into `resp` (whose slices are
  // sized like the request's), creating missing keys with their initializer.
  void Read(const rpc::PullRequest& req, absl::Span<const KeyRef> refs, rpc::PullResponse* resp);

  // Applies the referenced gradients at once, each scaled by `scale` (1 / the
  // push's example count). Returns false (and changes nothing) if this
  // partition already applied (worker, incarnation, seq).
  bool ApplyPush(const rpc::PushRequest& req, absl::Span<const KeyRef> refs, double scale);

  // BSP: keeps the referenced gradients for req.clock() until ApplyClock.
  // Returns false if this partition already has (worker, incarnation, seq).
  bool BufferPush(const rpc::PushRequest& req, absl::Span<const KeyRef> refs);

  // BSP: sums the buffered gradients of `clock` over workers in rank order,
  // scales by `scale` (1 / the clock's global example count) and takes one
  // optimizer step per key. Drops the buffer.
  void ApplyClock(int64_t clock, double scale);

  // The values (not the slots) of every key, per table.
  std::vector<TableRows> Snapshot() const;
  uint64_t num_keys() const;

 private:
  struct TableData {
    absl::flat_hash_map<uint64_t, uint32_t> index;  // key -> row
    std::vector<float> rows;                        // row r at r * stride: dim values, then slots
    std::vector<uint32_t> steps;                    // per row
    std::vector<uint64_t> keys;                     // per row
  };
  // One worker's gradients for one clock: (table, key) and dim floats each.
  struct Buffered {
    std::vector<std::pair<uint32_t, uint64_t>> keys;
    std::vector<float> grads;
    float lr_scale = 1.0f;
  };

  int stride(uint32_t table) const;
  float* RowLocked(uint32_t table, uint64_t key, uint32_t** step) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True if seq was seen; else records it.
  bool SeenLocked(const rpc::PushRequest& req) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int id_;
  const std::vector<TableSpec>* const tables_;
  const std::vector<std::unique_ptr<Optimizer>>* const optimizers_;
  const uint64_t seed_;

  mutable Mutex mu_;
  std::vector<TableData> data_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<PusherId, uint64_t> last_seq_ ABSL_GUARDED_BY(mu_);
  // clock -> worker rank -> gradients (BSP only).
  std::map<int64_t, std::map<int32_t, Buffered>> pending_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_SERVER_PARTITION_H_

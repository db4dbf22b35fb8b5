// A server's clock floor: what a clocked push tells the partitions it has no
// keys for, without visiting them.
//
// A clocked push lists every partition its server is primary of (a worker's
// clock must move on each, or BSP clocks would never close and SSP reads
// would wait). Visiting thousands of partitions per push cost more than the
// push itself (issue 10: spambase LR 7x slower with 8,192 partitions than
// with 64). Instead, a push that covers every primary partition of the
// server raises its worker's floor here once: every partition that has been
// primary since the era began has that worker's clock at least that high.
// Partitions read the floor when they need a clock (Partition::FollowFloor);
// an era ends whenever the server's set of primaries changes, and then the
// old era's floor is folded into the partitions that followed it.
//
// BSP pushes also leave their example count and learning-rate scale for
// their clock here (a short ring per worker), so that a partition that
// buffers a clock some workers passed without visiting it still scales the
// sum by every worker's examples, as if their empty parts had been buffered.
// Workers are at most a clock or two apart in BSP (nobody pulls clock c + 1
// before every worker pushed c), so 64 clocks are plenty.
//
// Thread-safety: mu_ guards everything; it is a leaf lock (taken inside a
// partition's lock, never the other way round).
#ifndef PS_SERVER_CLOCK_FLOOR_H_
#define PS_SERVER_CLOCK_FLOOR_H_

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/sync.h"

namespace ps {

class ClockFloor {
 public:
  // Eras are numbered from 1; 0 is "none".
  uint64_t era() const {
    MutexLock lock(&mu_);
    return era_;
  }

  // Raises `worker`'s floor to at least `next`, if `era` is the current era.
  // Returns false (nothing raised) if it is not; `*moved`: the floor rose.
  bool Raise(uint64_t era, int32_t worker, int64_t next, bool* moved) {
    MutexLock lock(&mu_);
    *moved = false;
    if (era != era_ || era == 0) return false;
    int64_t& floor = floor_[worker];
    if (next > floor) {
      floor = next;
      *moved = true;
    }
    return true;
  }

  // `worker`'s floor in `era` (0 if `era` is not the current one).
  int64_t Get(uint64_t era, int32_t worker) const {
    MutexLock lock(&mu_);
    if (era != era_ || era == 0) return 0;
    auto it = floor_.find(worker);
    return it == floor_.end() ? 0 : it->second;
  }
  // Every worker's floor in `era` (none if it is not the current one).
  std::vector<std::pair<int32_t, int64_t>> All(uint64_t era) const {
    MutexLock lock(&mu_);
    if (era != era_ || era == 0) return {};
    return {floor_.begin(), floor_.end()};
  }

  // Begins era `era` (greater than the current one) with no floor; returns
  // the floors of the era that ended, for folding.
  std::vector<std::pair<int32_t, int64_t>> NewEra(uint64_t era) {
    MutexLock lock(&mu_);
    std::vector<std::pair<int32_t, int64_t>> old(floor_.begin(), floor_.end());
    floor_.clear();
    era_ = era;
    return old;
  }

  // A BSP push of `worker` at `clock`: its example count and scale.
  void Record(int32_t worker, int64_t clock, uint64_t examples, float lr_scale) {
    MutexLock lock(&mu_);
    Entry& e = ring_[worker][static_cast<uint64_t>(clock) % kRing];
    e.clock = clock;
    e.examples = examples;
    e.lr_scale = lr_scale;
  }
  // What Record left for (worker, clock), if it is still there.
  bool Recorded(int32_t worker, int64_t clock, uint64_t* examples, float* lr_scale) const {
    MutexLock lock(&mu_);
    auto it = ring_.find(worker);
    if (it == ring_.end()) return false;
    const Entry& e = it->second[static_cast<uint64_t>(clock) % kRing];
    if (e.clock != clock) return false;
    *examples = e.examples;
    *lr_scale = e.lr_scale;
    return true;
  }

 private:
  static constexpr uint64_t kRing = 64;
  struct Entry {
    int64_t clock = -1;
    uint64_t examples = 0;
    float lr_scale = 1.0f;
  };
  mutable Mutex mu_;
  uint64_t era_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<int32_t, int64_t> floor_ ABSL_GUARDED_BY(mu_);  // worker -> next clock
  // Only live workers' pushes are recorded and raise floors (ServerCore::Push).
  absl::flat_hash_map<int32_t, std::array<Entry, kRing>> ring_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_SERVER_CLOCK_FLOOR_H_

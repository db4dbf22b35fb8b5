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
// Thread-safety: mu_ (a leaf lock, taken inside a partition's) serializes
// raising floors, starting eras and the record; floors and the era are
// atomics that partitions read without it.
#ifndef PS_SERVER_CLOCK_FLOOR_H_
#define PS_SERVER_CLOCK_FLOOR_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/sync.h"

namespace ps {

class ClockFloor {
 public:
  // Floors are kept for worker ranks below `max_workers` (others are never
  // raised: their pushes visit every partition).
  explicit ClockFloor(int max_workers)
      : max_workers_(max_workers), floor_(new std::atomic<int64_t>[max_workers]) {
    for (int w = 0; w < max_workers_; ++w) floor_[w].store(0);
  }

  // Eras are numbered from 1; 0 is "none".
  uint64_t era() const { return era_.load(); }

  // Raises `worker`'s floor to at least `next`, if `era` is the current era
  // and the rank has a floor. Returns false (nothing raised) otherwise;
  // `*moved`: the floor rose.
  bool Raise(uint64_t era, int32_t worker, int64_t next, bool* moved) {
    MutexLock lock(&mu_);
    *moved = false;
    if (era != era_.load() || era == 0 || worker < 0 || worker >= max_workers_) return false;
    if (next > floor_[worker].load()) {
      floor_[worker].store(next);
      *moved = true;
    }
    return true;
  }

  // `worker`'s floor in `era` (0 if `era` is not the current one). Lock-free:
  // partitions read it for every live worker whenever they check clocks.
  int64_t Get(uint64_t era, int32_t worker) const {
    if (era == 0 || worker < 0 || worker >= max_workers_ || era != era_.load()) return 0;
    return floor_[worker].load();
  }
  // Every raised floor of `era` (none if it is not the current one).
  std::vector<std::pair<int32_t, int64_t>> All(uint64_t era) const {
    std::vector<std::pair<int32_t, int64_t>> out;
    if (era == 0 || era != era_.load()) return out;
    for (int w = 0; w < max_workers_; ++w) {
      const int64_t f = floor_[w].load();
      if (f > 0) out.emplace_back(w, f);
    }
    return out;
  }

  // Begins era `era` (greater than the current one) with no floor; returns
  // the floors of the era that ended, for folding.
  std::vector<std::pair<int32_t, int64_t>> NewEra(uint64_t era) {
    MutexLock lock(&mu_);
    std::vector<std::pair<int32_t, int64_t>> old;
    for (int w = 0; w < max_workers_; ++w) {
      const int64_t f = floor_[w].exchange(0);
      if (f > 0) old.emplace_back(w, f);
    }
    era_.store(era);
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
  const int max_workers_;
  // Written under mu_ (Raise, NewEra), read without it (Get, All). The
  // loads and stores are sequentially consistent: a partition sets its
  // visit flag and then reads a floor, a push raises a floor and then reads
  // the flag, and one of the two must see the other's write.
  std::unique_ptr<std::atomic<int64_t>[]> floor_;  // worker rank -> next clock
  std::atomic<uint64_t> era_{0};
  mutable Mutex mu_;
  // Only live workers' pushes are recorded (ServerCore::Push).
  absl::flat_hash_map<int32_t, std::array<Entry, kRing>> ring_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_SERVER_CLOCK_FLOOR_H_

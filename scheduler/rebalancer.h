// Load balancing (DESIGN.md section 7): partitions move off a server that
// carries more than cluster.rebalance_threshold times the mean traffic, and
// off a server being drained (psctl drain). A move of partition p from its
// primary to server `to`: `to` joins p's backups, gets a snapshot and the
// tail, and once it reports a complete copy the map flips (new epoch). At
// most 4 moves are in flight; the rest wait in a queue.
//
// Thread-safety: none; SchedulerCore holds it under its own lock and passes
// in the view it changes.
#ifndef PS_SCHEDULER_REBALANCER_H_
#define PS_SCHEDULER_REBALANCER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "proto/checkpoint.pb.h"
#include "proto/job_config.pb.h"
#include "proto/scheduler.pb.h"

namespace ps {

class Rebalancer {
 public:
  struct Move {
    int partition = 0;
    int from = 0;
    int to = 0;
    absl::Time started;
  };
  // The servers as the core sees them now.
  struct Servers {
    std::set<int32_t> eligible;  // live, not draining, not leaving: may take partitions
    std::set<int32_t> draining;  // live and draining: to be emptied (in rank order)
    std::set<int32_t> alive;     // not dead: a move to one goes on
  };

  explicit Rebalancer(const config::ClusterSection& cluster);

  // A server's heartbeat: the bytes pushed and pulled per partition it is
  // primary of, over `seconds`; kept as a moving average of bytes/s.
  void ReportTraffic(const rpc::ClusterView& view, int32_t server,
                     const std::map<uint32_t, uint64_t>& bytes, double seconds);
  // Partition p's primary traffic, bytes/s (0 if unknown).
  double load(int p) const { return p < static_cast<int>(load_.size()) ? load_[p] : 0.0; }

  // One step (SchedulerCore::Poll): flips moves whose target holds a
  // complete copy, gives up moves that did not catch up in 30 s, plans the
  // moves that empty draining servers and, every rebalance_interval_ms, one
  // batch off the busiest server if it was over the threshold twice in a
  // row. Changes `view` (with new versions); calls `refill` after a flip or
  // after draining servers' backups were dropped, to place new backups.
  void Step(absl::Time now, const Servers& servers, rpc::ClusterView* view,
            const std::function<void()>& refill);

  // Partition moves completed since the start (psctl, /metrics).
  uint32_t migrations() const { return migrations_; }
  bool idle() const { return moves_.empty() && planned_.empty(); }
  // "partition P: server A -> B, ..." for the moves in flight (psctl).
  std::string Describe() const;

  // Moves in flight and planned, and the count, in/from the scheduler's state.
  void Save(rpc::SchedulerState* state) const;
  void Load(const rpc::SchedulerState& state, absl::Time now);

 private:
  // Traffic per eligible server, over the partitions it is primary of.
  std::map<int, double> ServerLoads(const rpc::ClusterView& view,
                                    const std::set<int32_t>& eligible) const;
  void Start(int partition, int to, absl::Time now, rpc::ClusterView* view);
  void Advance(absl::Time now, const Servers& servers, rpc::ClusterView* view,
               const std::function<void()>& refill);
  static bool Alive(const Servers& servers, int32_t rank) { return servers.alive.count(rank) > 0; }

  const int replication_;
  const int interval_ms_;
  const double threshold_;
  std::vector<double> load_;   // per partition, bytes/s
  std::map<int, Move> moves_;  // in flight, by partition
  std::deque<Move> planned_;   // to start, a few at a time
  uint32_t migrations_ = 0;
  // Waits for an imbalance seen this many checks in a row, and does not move
  // a partition again soon after it moved (no thrashing on bursty load).
  int imbalanced_checks_ = 0;
  std::map<int, absl::Time> moved_at_;
  absl::Time last_balance_;
};

}  // namespace ps

#endif  // PS_SCHEDULER_REBALANCER_H_

// The primary's side of replication (DESIGN.md section 6): per backup server
// a channel with a queue and one sender thread that forwards the queued
// snapshots and ops in order, one Replicate RPC at a time (whatever queued
// up while one was in flight goes in the next: group commit), retrying until
// the backup acknowledges or leaves the partition's placement. Tracks, per
// partition and backup, the last lsn acknowledged, and completes waiters
// (pushes and ticks to acknowledge) once every current backup of each of
// their partitions has applied their ops.
//
// Thread-safety: all methods are thread-safe; mu_ guards everything.
// Enqueue and AddBackup are called with a partition's lock held (that keeps
// each partition's ops in lsn order); mu_ never calls back into a partition
// with mu_ held. Callbacks (waiters, fenced, resync) run without mu_.
#ifndef PS_SERVER_REPLICATOR_H_
#define PS_SERVER_REPLICATOR_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "proto/ps.pb.h"
#include "server/partition.h"

namespace ps {

class Replicator : public OpSink {
 public:
  using Done = std::function<void(absl::Status)>;
  struct Callbacks {
    // A backup refused partition p's ops: a newer primary exists.
    std::function<void(int partition)> fenced;
    // A backup needs a fresh snapshot of partition p.
    std::function<void(int partition, int backup)> resync;
    // Forwards to server `rank` keep failing (called from its sender thread).
    std::function<void(int rank, const std::string& error)> unreachable;
  };

  Replicator(int self_rank, int num_partitions, absl::Duration rpc_timeout, Callbacks callbacks);
  ~Replicator() override;  // stops the sender threads

  // The address of server `rank`; a channel is created on first use.
  void SetAddress(int rank, const std::string& address);

  // This server is (or stops being) primary of p. Stopping fails p's waiters
  // with FAILED_PRECONDITION and drops its queued items.
  void SetPrimary(int partition, bool primary);
  // Removes a backup of p (dead or moved): waiters stop waiting for it.
  void RemoveBackup(int partition, int backup);
  // Adds (or re-syncs) a backup of p starting from `state`; call with p's
  // lock held, so that every op after the snapshot follows it.
  void AddBackup(int partition, int backup, const rpc::PartitionState& state);
  std::vector<int> Backups(int partition) const;

  // OpSink, called with p's lock held.
  bool Replicating(int partition) const override;
  void Enqueue(int partition, rpc::ReplicaOp op) override;

  // Calls `done` once, for every (partition, lsn), all current backups of the
  // partition acknowledged that lsn (at once if none has backups); fails with
  // FAILED_PRECONDITION if this server stops being primary of one of them, or
  // DEADLINE_EXCEEDED at `deadline`.
  void WhenReplicated(std::vector<std::pair<int, uint64_t>> needs, absl::Time deadline, Done done);

  // Fails waiters whose deadline passed. Call periodically.
  void Expire(absl::Time now);
  // Fails every waiter (UNAVAILABLE) and stops the senders.
  void Shutdown();

  struct Counters {
    uint64_t ops_sent = 0;
    uint64_t snapshots_sent = 0;
    uint64_t rpcs = 0;
    uint64_t rpc_failures = 0;
  };
  Counters counters() const;
  // Snapshots and ops queued or in flight to backups, not yet acknowledged
  // (the replication lag, for /metrics).
  uint64_t Pending() const;

 private:
  struct Item {
    int partition;
    uint64_t lsn;
    size_t bytes;
    bool install;
    rpc::PartitionState state;  // install
    rpc::ReplicaOp op;          // else
  };
  struct Channel {
    int rank = 0;
    std::string address;
    std::deque<Item> queue;
    size_t in_flight = 0;  // items of the Replicate call under way
    CondVar cv;
    std::thread thread;
  };
  struct Waiter {
    std::vector<std::pair<int, uint64_t>> needs;
    absl::Time deadline;
    Done done;
  };

  void Run(Channel* channel);
  Channel* ChannelLocked(int rank) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool SatisfiedLocked(const Waiter& w) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves satisfied waiters into `ready`, failed ones into `failed`.
  void CollectLocked(std::vector<Done>* ready, std::vector<Done>* failed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropQueuedLocked(int partition, int backup) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int self_rank_;
  const absl::Duration rpc_timeout_;
  const Callbacks callbacks_;

  mutable Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<bool> primary_ ABSL_GUARDED_BY(mu_);
  // partition -> backup rank -> last lsn it acknowledged (0 until its snapshot is in).
  std::vector<std::map<int, uint64_t>> acked_ ABSL_GUARDED_BY(mu_);
  // partition -> backup -> the lsn of its pending snapshot (acks below it do not count).
  std::vector<std::map<int, uint64_t>> installing_ ABSL_GUARDED_BY(mu_);
  std::map<int, std::string> addresses_ ABSL_GUARDED_BY(mu_);
  std::map<int, std::unique_ptr<Channel>> channels_ ABSL_GUARDED_BY(mu_);
  std::vector<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  Counters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_SERVER_REPLICATOR_H_

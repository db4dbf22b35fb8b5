// The scheduler's leadership and state in etcd (cluster.coordinator: etcd).
//
// Keys, under cluster.etcd_prefix + job.name:
//   /leader  the leading scheduler's address, bound to its lease;
//   /state   the scheduler's state (rpc::SchedulerState, its view included).
// A scheduler leads once it creates /leader (a transaction that succeeds
// only if the key is absent); the key's create revision is its term. It
// renews its lease every lease/4. Fencing: every state write is a
// transaction that succeeds only while /leader still has this term, and the
// leader stops acting (Leading) a margin before its lease could expire,
// counted on the monotonic clock from when it sent its last successful
// renewal, so it has stopped before etcd lets a standby take the key. A
// state write that fails ends the leadership too: the scheduler must not
// act on a state a successor would not see.
//
// Thread-safety: every method is thread-safe; mu_ guards the lease, the term
// and the leading deadline. A thread renews the lease while leading.
#ifndef PS_SCHEDULER_ETCD_COORDINATOR_H_
#define PS_SCHEDULER_ETCD_COORDINATOR_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "proto/checkpoint.pb.h"
#include "scheduler/etcd_client.h"

namespace ps {

class EtcdCoordinator {
 public:
  struct Options {
    std::string prefix;  // cluster.etcd_prefix
    std::string job;     // job.name
    std::string me;      // this scheduler's address (the leader key's value)
    absl::Duration lease = absl::Seconds(5);
  };
  EtcdCoordinator(std::unique_ptr<EtcdClient> client, Options options);
  // Stops renewing (without resigning: the lease runs out).
  ~EtcdCoordinator();

  // Tries once to lead. true: this process leads (and renews its lease);
  // false: another does, its address in *leader.
  absl::StatusOr<bool> TryLead(std::string* leader);
  // Who leads now: the leader key's value, or nullopt if nobody does.
  absl::StatusOr<std::optional<std::string>> Leader();
  // Whether this process may act as the leader now.
  bool Leading() const ABSL_LOCKS_EXCLUDED(mu_) { return LeadLeft() > absl::ZeroDuration(); }
  // How long it may still act as the leader without another renewal (zero
  // if it never led, or lost the lead).
  absl::Duration LeadLeft() const ABSL_LOCKS_EXCLUDED(mu_);
  // The leader key's create revision while leading (a fencing token), else 0.
  int64_t term() const ABSL_LOCKS_EXCLUDED(mu_);

  // The job's state, nullopt if etcd has none.
  absl::StatusOr<std::optional<rpc::SchedulerState>> ReadState();
  // Writes the state, if this process still leads: retries while etcd is
  // unreachable, for at most what is left of the lead when it starts.
  // Any failure ends the lead (Leading() is false from then on): the
  // scheduler must stop acting. FAILED_PRECONDITION if another scheduler may
  // lead.
  absl::Status WriteState(const rpc::SchedulerState& state);
  // Gives the lead up (if this process ever led): revokes the lease, which
  // deletes the leader key.
  void Resign() ABSL_LOCKS_EXCLUDED(mu_);

  std::string job_prefix() const { return key_ + "/"; }
  std::string leader_key() const { return key_ + "/leader"; }
  std::string state_key() const { return key_ + "/state"; }
  std::string endpoint() const { return client_->endpoint(); }

 private:
  using Steady = std::chrono::steady_clock;
  void RenewLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // How long before the lease's end the leader stops acting.
  absl::Duration Margin() const;
  void LoseLocked(const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::unique_ptr<EtcdClient> client_;
  const Options options_;
  const std::string key_;
  mutable Mutex mu_;
  int64_t lease_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration granted_ ABSL_GUARDED_BY(mu_);
  int64_t term_ ABSL_GUARDED_BY(mu_) = 0;
  // Until when this process may act as the leader (monotonic clock);
  // Steady::time_point::min() if it never led or lost the lead.
  Steady::time_point leading_until_ ABSL_GUARDED_BY(mu_) = Steady::time_point::min();
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  CondVar stop_cv_;      // signalled when stop_ is set
  std::thread renewer_;  // started once, under mu_; joined without it
};

}  // namespace ps

#endif  // PS_SCHEDULER_ETCD_COORDINATOR_H_

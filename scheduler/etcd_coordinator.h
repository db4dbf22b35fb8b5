// The scheduler's leadership and state in etcd (cluster.coordinator: etcd).
//
// Keys, under cluster.etcd_prefix + job.name:
//   /leader  the leading scheduler's address, bound to its lease;
//   /state   the scheduler's state (rpc::SchedulerState, its view included).
// A scheduler leads once it creates /leader (a transaction that succeeds
// only if the key is absent); the key's create revision is its term. It
// renews its lease every lease/4. Fencing: every state write is a
// transaction that succeeds only while /leader still has this term, and the
// leader stops acting (LeadingUntil) a margin before its lease could expire,
// counted from when it sent its last successful renewal, so it has stopped
// before etcd lets a standby take the key.
//
// Thread-safety: every method is thread-safe; mu_ guards the lease, the term
// and the leading deadline. A thread renews the lease while leading.
#ifndef PS_SCHEDULER_ETCD_COORDINATOR_H_
#define PS_SCHEDULER_ETCD_COORDINATOR_H_

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
  // Waits until this process leads (a standby): looks at the leader key
  // every lease/4 and tries to lead when it is gone; `observe` hears of
  // each leader it sees (for the log). Returns CANCELLED once `stop` says so.
  absl::Status WaitToLead(const std::function<bool()>& stop,
                          const std::function<void(const std::string&)>& observe);
  // Until when this process may act as the leader: InfinitePast if it never
  // led, or lost the key.
  absl::Time LeadingUntil() const ABSL_LOCKS_EXCLUDED(mu_);
  bool Leading() const { return absl::Now() < LeadingUntil(); }
  // The leader key's create revision while leading (a fencing token), else 0.
  int64_t term() const ABSL_LOCKS_EXCLUDED(mu_);

  // The job's state, nullopt if etcd has none.
  absl::StatusOr<std::optional<rpc::SchedulerState>> ReadState();
  // Writes the state, if this process still leads: retries while etcd is
  // unreachable, until LeadingUntil. FAILED_PRECONDITION once another
  // scheduler may lead (this one must stop acting: Leading() is false from
  // then on).
  absl::Status WriteState(const rpc::SchedulerState& state);
  // Gives the leadership up: deletes the leader key, revokes the lease.
  void Resign() ABSL_LOCKS_EXCLUDED(mu_);

  std::string job_prefix() const { return key_ + "/"; }
  std::string leader_key() const { return key_ + "/leader"; }
  std::string state_key() const { return key_ + "/state"; }
  std::string endpoint() const { return client_->endpoint(); }

 private:
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
  absl::Time leading_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread renewer_;
};

}  // namespace ps

#endif  // PS_SCHEDULER_ETCD_COORDINATOR_H_

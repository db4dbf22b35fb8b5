// Failure detection for the scheduler: when each member (server, worker,
// standby) was last heard from, and which of them to declare dead.
//
// Partition-aware: a member silent past cluster.heartbeat_timeout_ms is
// declared dead only while the scheduler hears from a majority of the
// members. When most of them fall silent at once, the likelier story is
// that the scheduler's own link is cut, and a failover decided from the
// wrong side of a partition would wreck a healthy cluster; so the scheduler
// suspects itself and decides nothing until it hears from a majority again.
// Then the time the cut lasted is not counted against anyone (what a
// member was silent before it still is). If the silence lasts longer than
// `isolation_limit` (cluster.scheduler_timeout_ms: by then the
// members have given up on the scheduler), the silent members are taken
// for gone after all.
//
// "Falling silent at once": members are quiet once silent for half the
// timeout, so when a link is cut, every member is quiet well before the
// first one (whose heartbeat phase came first) is overdue.
//
// Not thread-safe: its owner's lock guards it (SchedulerCore::mu_).
#ifndef PS_SCHEDULER_LIVENESS_H_
#define PS_SCHEDULER_LIVENESS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace ps {

class Liveness {
 public:
  Liveness(absl::Duration timeout, absl::Duration isolation_limit)
      : timeout_(timeout), isolation_limit_(isolation_limit) {}

  // A member was heard from (a registration, a heartbeat, a barrier call);
  // a member not yet tracked starts being.
  void Heard(uint32_t member, absl::Time now);
  // Stops tracking a member (it left, or was declared dead); returns when
  // it was last heard from (InfinitePast if it was not tracked).
  absl::Time Forget(uint32_t member);
  // Every tracked member gets a fresh timeout from `now` (the job starts
  // running, a restarted scheduler carries on).
  void Restart(absl::Time now);

  bool tracked(uint32_t member) const { return last_heard_.contains(member); }
  // Since when the member is silent (zero if not tracked).
  absl::Duration SilentFor(uint32_t member, absl::Time now) const;

  // The members to declare dead now: silent past the timeout, while the
  // scheduler hears from a majority (or has been cut off longer than the
  // isolation limit). Logs when the scheduler starts and stops suspecting
  // itself. Does not forget them: the caller does, as it handles each.
  std::vector<uint32_t> Overdue(absl::Time now);

  // Whether more than half of the members were heard from within `d`. A
  // failed probe is trusted only then: right after the scheduler's own link
  // dropped, before anyone is quiet enough to count, it is not.
  bool MajorityHeardWithin(absl::Time now, absl::Duration d) const;

  // Whether the scheduler currently suspects its own link: no failover
  // decision (a member declared dead, a server failed over because a probe
  // went unanswered) should be taken.
  bool isolated() const { return isolated_since_ != absl::InfiniteFuture(); }

 private:
  const absl::Duration timeout_;
  const absl::Duration isolation_limit_;
  std::map<uint32_t, absl::Time> last_heard_;  // by node id
  // Since when a majority is quiet (InfiniteFuture: it is not).
  absl::Time isolated_since_ = absl::InfiniteFuture();
  bool gave_up_ = false;  // past the isolation limit (logged once)
};

}  // namespace ps

#endif  // PS_SCHEDULER_LIVENESS_H_

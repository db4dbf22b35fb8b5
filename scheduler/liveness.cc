#include "scheduler/liveness.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/time/time.h"

namespace ps {

void Liveness::Heard(uint32_t member, absl::Time now) {
  // Assigned, not maxed: after a step back of the wall clock a member's
  // time follows it instead of staying in the future.
  last_heard_[member] = now;
}

absl::Time Liveness::Forget(uint32_t member) {
  auto it = last_heard_.find(member);
  if (it == last_heard_.end()) return absl::InfinitePast();
  const absl::Time t = it->second;
  last_heard_.erase(it);
  return t;
}

bool Liveness::MajorityHeardWithin(absl::Time now, absl::Duration d) const {
  size_t heard = 0;
  for (const auto& [member, t] : last_heard_) heard += now - t <= d;
  return 2 * heard > last_heard_.size();
}

void Liveness::Restart(absl::Time now) {
  for (auto& [member, t] : last_heard_) t = now;
  isolated_since_ = absl::InfiniteFuture();
  gave_up_ = false;
}

absl::Duration Liveness::SilentFor(uint32_t member, absl::Time now) const {
  auto it = last_heard_.find(member);
  return it == last_heard_.end() ? absl::ZeroDuration()
                                 : std::max(absl::ZeroDuration(), now - it->second);
}

std::vector<uint32_t> Liveness::Overdue(absl::Time now) {
  std::vector<uint32_t> overdue;
  size_t quiet = 0;
  for (const auto& [member, t] : last_heard_) {
    const absl::Duration silent = now - t;
    if (silent > timeout_ / 2) ++quiet;
    if (silent > timeout_) overdue.push_back(member);
  }
  const size_t members = last_heard_.size();
  if (members >= 2 && 2 * quiet > members) {
    if (!isolated()) {
      isolated_since_ = now;
      spdlog::warn(
          "the scheduler hears from only {} of {} members: it suspects its own network and "
          "declares nobody dead until it hears from a majority again (at most {}, "
          "cluster.scheduler_timeout_ms)",
          members - quiet, members, absl::FormatDuration(isolation_limit_));
    }
    if (now - isolated_since_ <= isolation_limit_) return {};
    if (!gave_up_) {
      gave_up_ = true;
      spdlog::error(
          "{} of {} members have been silent for {}, longer than members wait for the scheduler "
          "(cluster.scheduler_timeout_ms): the scheduler takes them for gone",
          quiet, members, absl::FormatDuration(now - isolated_since_));
    }
    return overdue;
  }
  if (isolated()) {
    // A majority is back. Nobody is declared dead for the cut: the time it
    // lasted does not count against anyone, but what a member was silent
    // before it (a member that died before the cut) still does, so that
    // a link that keeps flapping cannot hide a dead member for good.
    const absl::Duration cut = now - isolated_since_;
    spdlog::info(
        "the scheduler hears from {} of {} members again after {}: failure detection resumes, "
        "the cut not counted against anyone",
        members - quiet, members, absl::FormatDuration(cut));
    for (auto& [member, t] : last_heard_) t = std::min(now, t + cut);
    isolated_since_ = absl::InfiniteFuture();
    gave_up_ = false;
    return {};
  }
  return overdue;
}

}  // namespace ps

#include "scheduler/liveness.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/time/time.h"

namespace ps {

void Liveness::Heard(uint32_t member, absl::Time now) {
  absl::Time& t = last_heard_[member];
  t = std::max(t, now);
}

void Liveness::Forget(uint32_t member) { last_heard_.erase(member); }

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
    // A majority is back: whoever is still silent gets a full timeout from
    // now, as after a restart; nobody is declared dead for the cut.
    spdlog::info(
        "the scheduler hears from {} of {} members again after {}: failure detection resumes, "
        "every member with a fresh timeout",
        members - quiet, members, absl::FormatDuration(now - isolated_since_));
    Restart(now);
    return {};
  }
  return overdue;
}

}  // namespace ps

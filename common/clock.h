// Time as the control plane sees it, injected so that failure detection
// can be tested with a clock the test moves (FakeClock) instead of real
// waits. Deadlines of RPCs stay on the real clock (absl::Now).
#ifndef PS_COMMON_CLOCK_H_
#define PS_COMMON_CLOCK_H_

#include <atomic>
#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ps {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // The real clock (absl::Now); never destroyed.
  static const Clock* Real();
};

// A clock that moves only when told. Thread-safe (an atomic).
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::UnixEpoch() + absl::Hours(24 * 365 * 50))
      : nanos_(absl::ToUnixNanos(start)) {}
  absl::Time Now() const override { return absl::FromUnixNanos(nanos_.load()); }
  void Advance(absl::Duration d) { nanos_.fetch_add(absl::ToInt64Nanoseconds(d)); }

 private:
  std::atomic<int64_t> nanos_;
};

inline const Clock* Clock::Real() {
  struct RealClock : Clock {
    absl::Time Now() const override { return absl::Now(); }
  };
  static const RealClock* const real = new RealClock;
  return real;
}

}  // namespace ps

#endif  // PS_COMMON_CLOCK_H_

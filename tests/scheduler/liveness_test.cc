// Liveness (scheduler/liveness.h) with a clock the test moves: who is
// declared dead, and that nobody is while most members fall silent at once.
#include "scheduler/liveness.h"

#include <algorithm>
#include <vector>

#include "common/clock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

constexpr absl::Duration kTimeout = absl::Seconds(5);
constexpr absl::Duration kLimit = absl::Seconds(60);

// Members 1..n heard from every `interval`, each at its own phase, up to
// (not including) `until`; the clock ends at `until`.
void BeatUntil(Liveness& l, FakeClock& clock, int n, absl::Time until,
               const std::vector<uint32_t>& silent = {}) {
  const absl::Duration step = absl::Milliseconds(100);
  while (clock.Now() + step <= until) {
    clock.Advance(step);
    const int64_t tick = absl::ToUnixMillis(clock.Now()) / 100;
    for (uint32_t m = 1; m <= static_cast<uint32_t>(n); ++m) {
      if (std::find(silent.begin(), silent.end(), m) != silent.end()) continue;
      if (tick % 5 == m % 5) l.Heard(m, clock.Now());  // every 500 ms, phases apart
    }
    EXPECT_TRUE(l.Overdue(clock.Now()).empty());
  }
}

TEST(Liveness, AMinorityGoingSilentIsDeclaredDeadAfterTheTimeout) {
  FakeClock clock;
  Liveness l(kTimeout, kLimit);
  for (uint32_t m = 1; m <= 5; ++m) l.Heard(m, clock.Now());
  const absl::Time cut = clock.Now() + absl::Seconds(3);
  BeatUntil(l, clock, 5, cut);
  // Members 2 and 4 (two of five) stop.
  BeatUntil(l, clock, 5, cut + kTimeout - absl::Milliseconds(500), {2, 4});
  std::vector<uint32_t> dead;
  for (int i = 0; i < 20 && dead.size() < 2; ++i) {
    clock.Advance(absl::Milliseconds(100));
    for (uint32_t m : {1u, 3u, 5u}) l.Heard(m, clock.Now());
    for (uint32_t m : l.Overdue(clock.Now())) {
      EXPECT_GT(l.SilentFor(m, clock.Now()), kTimeout) << "declared dead before the timeout";
      dead.push_back(m);
      l.Forget(m);
    }
  }
  EXPECT_EQ(dead, (std::vector<uint32_t>{2, 4}));
  EXPECT_FALSE(l.isolated());
}

// The scheduler's own link is cut: every member falls silent at once, each
// heartbeat phase expiring at its own time. Nobody is declared dead, and
// when the link comes back everyone has a fresh timeout.
TEST(Liveness, AMajorityGoingSilentAtOnceIsNoFailover) {
  FakeClock clock;
  Liveness l(kTimeout, kLimit);
  for (uint32_t m = 1; m <= 5; ++m) l.Heard(m, clock.Now());
  BeatUntil(l, clock, 5, clock.Now() + absl::Seconds(3));
  // 20 s of silence from all: checked every 100 ms.
  for (int i = 0; i < 200; ++i) {
    clock.Advance(absl::Milliseconds(100));
    ASSERT_TRUE(l.Overdue(clock.Now()).empty()) << "after " << (i + 1) * 100 << " ms";
  }
  EXPECT_TRUE(l.isolated());
  // The link returns: three members are heard first, then the others only
  // later, each within a timeout of the return.
  for (uint32_t m : {1u, 2u, 3u}) l.Heard(m, clock.Now());
  EXPECT_TRUE(l.Overdue(clock.Now()).empty());
  EXPECT_FALSE(l.isolated());
  clock.Advance(kTimeout - absl::Milliseconds(100));
  for (uint32_t m : {1u, 2u, 3u, 4u}) l.Heard(m, clock.Now());
  EXPECT_TRUE(l.Overdue(clock.Now()).empty()) << "member 5 has a full timeout from the return";
  clock.Advance(absl::Milliseconds(200));
  for (uint32_t m : {1u, 2u, 3u, 4u}) l.Heard(m, clock.Now());
  EXPECT_EQ(l.Overdue(clock.Now()), (std::vector<uint32_t>{5}))
      << "a member still silent a timeout after the return is dead";
}

// Half is not a majority: with two members, one silent is declared dead.
TEST(Liveness, OneOfTwoIsAMinority) {
  FakeClock clock;
  Liveness l(kTimeout, kLimit);
  l.Heard(1, clock.Now());
  l.Heard(2, clock.Now());
  clock.Advance(kTimeout + absl::Milliseconds(1));
  l.Heard(1, clock.Now());
  EXPECT_EQ(l.Overdue(clock.Now()), (std::vector<uint32_t>{2}));
  // Both silent: the scheduler suspects itself.
  clock.Advance(kTimeout * 2);
  EXPECT_TRUE(l.Overdue(clock.Now()).empty());
  EXPECT_TRUE(l.isolated());
}

// A silence longer than members wait for the scheduler: they are gone.
TEST(Liveness, SilentPastTheIsolationLimitIsGone) {
  FakeClock clock;
  Liveness l(kTimeout, kLimit);
  for (uint32_t m = 1; m <= 3; ++m) l.Heard(m, clock.Now());
  clock.Advance(kTimeout);
  EXPECT_TRUE(l.Overdue(clock.Now()).empty());
  EXPECT_TRUE(l.isolated());
  clock.Advance(kLimit);
  EXPECT_TRUE(l.Overdue(clock.Now()).empty()) << "not yet past the limit";
  clock.Advance(absl::Milliseconds(1));
  EXPECT_EQ(l.Overdue(clock.Now()), (std::vector<uint32_t>{1, 2, 3}));
}

TEST(Liveness, RestartGivesEveryoneAFreshTimeoutAndForgottenMembersDoNotCount) {
  FakeClock clock;
  Liveness l(kTimeout, kLimit);
  for (uint32_t m = 1; m <= 3; ++m) l.Heard(m, clock.Now());
  clock.Advance(absl::Seconds(30));
  l.Restart(clock.Now());
  EXPECT_EQ(l.SilentFor(1, clock.Now()), absl::ZeroDuration());
  l.Forget(3);
  EXPECT_FALSE(l.tracked(3));
  clock.Advance(kTimeout + absl::Milliseconds(1));
  l.Heard(1, clock.Now());
  // 1 of 2 silent (member 3 no longer counts): a minority.
  EXPECT_EQ(l.Overdue(clock.Now()), (std::vector<uint32_t>{2}));
  // A heartbeat from the past does not move a member's time back.
  l.Heard(1, clock.Now() - absl::Seconds(10));
  EXPECT_EQ(l.SilentFor(1, clock.Now()), absl::ZeroDuration());
}

}  // namespace
}  // namespace ps

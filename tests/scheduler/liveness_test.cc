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
// when the link comes back the cut does not count against anyone.
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
  // The link returns: three members are heard first; member 5 never is.
  // It is declared dead, but not for the cut: only once it has been silent
  // a timeout outside it (it was quiet for about half a timeout before the
  // scheduler suspected itself).
  const absl::Time back = clock.Now();
  std::vector<uint32_t> dead;
  while (dead.empty() && clock.Now() - back < 2 * kTimeout) {
    for (uint32_t m : {1u, 2u, 3u, 4u}) l.Heard(m, clock.Now());
    dead = l.Overdue(clock.Now());
    EXPECT_FALSE(l.isolated());
    if (dead.empty()) clock.Advance(absl::Milliseconds(100));
  }
  EXPECT_EQ(dead, (std::vector<uint32_t>{5}));
  EXPECT_GE(clock.Now() - back, kTimeout / 2) << "a member declared dead for the cut";
  EXPECT_LE(clock.Now() - back, kTimeout);
}

// A link that keeps flapping (3 s down, 1 s up) cannot hide a member that
// died before it: the cuts do not count, the time between them does.
TEST(Liveness, AFlappingLinkDoesNotHideADeadMember) {
  FakeClock clock;
  Liveness l(kTimeout, kLimit);
  for (uint32_t m = 1; m <= 5; ++m) l.Heard(m, clock.Now());
  const absl::Time start = clock.Now();
  std::vector<uint32_t> dead;
  while (dead.empty() && clock.Now() - start < absl::Seconds(120)) {
    clock.Advance(absl::Milliseconds(100));
    const bool up = (clock.Now() - start) % absl::Seconds(4) >= absl::Seconds(3);
    if (up) {
      for (uint32_t m : {1u, 2u, 3u, 4u}) l.Heard(m, clock.Now());  // 5 died at the start
    }
    dead = l.Overdue(clock.Now());
  }
  EXPECT_EQ(dead, (std::vector<uint32_t>{5})) << "after " << (clock.Now() - start);
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
  // A clock stepped back is followed (the member's time is not kept in
  // the future), and Forget tells when a member was last heard from.
  l.Heard(1, clock.Now() - absl::Seconds(10));
  EXPECT_EQ(l.SilentFor(1, clock.Now()), absl::Seconds(10));
  EXPECT_EQ(l.Forget(1), clock.Now() - absl::Seconds(10));
  EXPECT_EQ(l.Forget(1), absl::InfinitePast());
}

}  // namespace
}  // namespace ps

namespace ps {
namespace {

TEST(Liveness, MajorityHeardWithin) {
  FakeClock clock;
  Liveness l(kTimeout, kLimit);
  for (uint32_t m = 1; m <= 4; ++m) l.Heard(m, clock.Now());
  clock.Advance(absl::Seconds(1));
  l.Heard(1, clock.Now());
  l.Heard(2, clock.Now());
  EXPECT_FALSE(l.MajorityHeardWithin(clock.Now(), absl::Milliseconds(500))) << "2 of 4";
  l.Heard(3, clock.Now());
  EXPECT_TRUE(l.MajorityHeardWithin(clock.Now(), absl::Milliseconds(500))) << "3 of 4";
  EXPECT_TRUE(l.MajorityHeardWithin(clock.Now(), absl::Seconds(1))) << "all within 1 s";
}

}  // namespace
}  // namespace ps

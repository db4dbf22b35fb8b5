// The project's synchronization primitives: Mutex, MutexLock,
// ReleasableMutexLock, CondVar, Notification, with Abseil's interfaces.
//
// Normal builds use Abseil's types as they are. ThreadSanitizer builds
// (PS_TSAN, set by -DPS_SANITIZE=thread) get thin wrappers over std::mutex and
// std::condition_variable instead: Debian's Abseil is not built with TSAN, so
// TSAN cannot see absl::Mutex and would report every guarded access as a
// race, while it understands the pthread calls under std::mutex.
#ifndef PS_COMMON_SYNC_H_
#define PS_COMMON_SYNC_H_

#include <cstdlib>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#ifdef PS_TSAN
#include <chrono>
#include <condition_variable>
#include <mutex>
#endif

namespace ps {

#ifndef PS_TSAN

using Mutex = absl::Mutex;
using MutexLock = absl::MutexLock;
using ReleasableMutexLock = absl::ReleasableMutexLock;
using CondVar = absl::CondVar;
using Notification = absl::Notification;

#else

class CondVar;

class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class ABSL_SCOPED_LOCKABLE ReleasableMutexLock {
 public:
  explicit ReleasableMutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~ReleasableMutexLock() ABSL_UNLOCK_FUNCTION() {
    if (mu_ != nullptr) mu_->Unlock();
  }
  void Release() ABSL_UNLOCK_FUNCTION() {
    mu_->Unlock();
    mu_ = nullptr;
  }
  ReleasableMutexLock(const ReleasableMutexLock&) = delete;
  ReleasableMutexLock& operator=(const ReleasableMutexLock&) = delete;

 private:
  Mutex* mu_;
};

class CondVar {
 public:
  // REQUIRES: mu is held.
  void Wait(Mutex* mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // Returns true on timeout.
  bool WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool timed_out =
        cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout)) == std::cv_status::timeout;
    lock.release();
    return timed_out;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

class Notification {
 public:
  void Notify() {
    MutexLock lock(&mu_);
    notified_ = true;
    cv_.SignalAll();
  }
  bool HasBeenNotified() {
    MutexLock lock(&mu_);
    return notified_;
  }
  void WaitForNotification() {
    MutexLock lock(&mu_);
    while (!notified_) cv_.Wait(&mu_);
  }
  bool WaitForNotificationWithTimeout(absl::Duration timeout) {
    const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
    MutexLock lock(&mu_);
    while (!notified_) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds(0)) break;
      cv_.WaitWithTimeout(&mu_, absl::FromChrono(left));
    }
    return notified_;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  bool notified_ = false;
};

#endif  // PS_TSAN

// Abseil's Mutex as Debian builds it (without NDEBUG) checks every lock
// acquisition against a process-wide graph of lock orders (deadlock
// detection): a global lock and hash lookups per Lock, a third of a server's
// time on 8,192 partitions (ps_bench --server). The daemons call this at
// start: detection stays off unless PS_MUTEX_DEADLOCK_DETECTION=1, which
// deploy/test.sh sets for the test suite (whose ThreadSanitizer run checks
// lock order as well).
inline void ConfigureMutexDeadlockDetection() {
  const char* on = std::getenv("PS_MUTEX_DEADLOCK_DETECTION");
  absl::SetMutexDeadlockDetectionMode(on != nullptr && std::string_view(on) == "1"
                                          ? absl::OnDeadlockCycle::kAbort
                                          : absl::OnDeadlockCycle::kIgnore);
}

}  // namespace ps

#endif  // PS_COMMON_SYNC_H_

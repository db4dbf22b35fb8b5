// A member's heartbeat thread: every interval it sends a heartbeat (filled
// in by the caller, e.g. with progress) and watches for the end of the job
// from outside: the job failed, the scheduler is unreachable for longer than
// lost_after, or this process got SIGINT/SIGTERM. Then it calls on_end once,
// on the heartbeat thread. Used by workers and ps_bench.
// Thread-safety: construct and destroy on one thread; `fill` and `on_end`
// run on the heartbeat thread.
#ifndef PS_COMMON_HEARTBEAT_H_
#define PS_COMMON_HEARTBEAT_H_

#include <functional>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "common/scheduler_client.h"
#include "common/sync.h"

namespace ps {

class Heartbeat {
 public:
  enum class End { kJobFailed, kSchedulerLost, kSignal };
  using Fill = std::function<void(rpc::HeartbeatRequest*)>;
  using OnEnd = std::function<void(End end, const std::string& why)>;

  // `client` must outlive this object.
  Heartbeat(SchedulerClient* client, uint32_t node_id, absl::Duration interval,
            absl::Duration lost_after, Fill fill, OnEnd on_end);
  // Stops the thread and waits for it.
  ~Heartbeat();

  // From now on, `on_view` runs (on the heartbeat thread) with the
  // scheduler's view version whenever it is newer than the last one seen.
  void OnNewView(std::function<void(uint64_t version)> on_view) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop();

  SchedulerClient* const client_;
  const uint32_t node_id_;
  const absl::Duration interval_, lost_after_;
  const Fill fill_;
  const OnEnd on_end_;
  Notification stop_;
  Mutex mu_;
  std::function<void(uint64_t)> on_view_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace ps

#endif  // PS_COMMON_HEARTBEAT_H_

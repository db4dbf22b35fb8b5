// A client of the Scheduler service, shared by servers, workers and tools.
// Every call carries a deadline. Thread-safe (gRPC stubs are).
#ifndef PS_COMMON_SCHEDULER_CLIENT_H_
#define PS_COMMON_SCHEDULER_CLIENT_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "proto/job_config.pb.h"
#include "proto/scheduler.grpc.pb.h"

namespace ps {

class SchedulerClient {
 public:
  // `address`: host:port, or several, comma-separated (a leading scheduler
  // and its standbys, cluster.coordinator: etcd): a call that finds one
  // unavailable moves the client to the next.
  explicit SchedulerClient(const std::string& address, absl::Duration rpc_timeout = absl::Seconds(10));

  // A client for a --scheduler flag's value; an error names the flag when it
  // is empty, not host:port (or a comma-separated list of them), or a host
  // does not resolve within `wait`.
  static absl::StatusOr<std::unique_ptr<SchedulerClient>> ForFlag(const std::string& address,
                                                                  absl::Duration wait);

  // A random id for this process start (RegisterRequest.incarnation).
  static uint64_t NewIncarnation();

  // The scheduler address calls go to now.
  std::string address() const ABSL_LOCKS_EXCLUDED(mu_);
  // Adds scheduler addresses to try (the job's cluster.scheduler_address and
  // cluster.scheduler_standbys, once registered); known ones are skipped.
  void AddAddresses(const std::vector<std::string>& addresses) ABSL_LOCKS_EXCLUDED(mu_);
  // AddAddresses of cluster.scheduler_address (unless its port is 0) and
  // cluster.scheduler_standbys.
  void AddAddressesOf(const config::ClusterSection& cluster) ABSL_LOCKS_EXCLUDED(mu_);

  // NextShard and SubmitEval retry for this long while the scheduler is
  // unreachable (it may be restarting; both are safe to repeat). Default 0:
  // one attempt. Call before use.
  void SetRetryWindow(absl::Duration window) { retry_window_ = window; }
  // Told how long each barrier (Barrier, Vote) waited, once released (for
  // /metrics). Call before use.
  void SetBarrierObserver(
      std::function<void(const std::string& name, absl::Duration waited)> observe) {
    barrier_observer_ = std::move(observe);
  }

  // Registers, retrying while the scheduler is unreachable, for at most
  // `wait` (then UNAVAILABLE naming the address and how long it waited).
  absl::StatusOr<rpc::RegisterResponse> Register(const rpc::RegisterRequest& req, absl::Duration wait);

  // Waits at barrier `name` until released. Re-arrives after each RPC
  // deadline; fails if the scheduler is unreachable or unresponsive for
  // longer than `lost_after`, or the job failed (ABORTED with its message).
  absl::StatusOr<rpc::ClusterView> Barrier(uint32_t node_id, const std::string& name,
                                           absl::Duration lost_after);
  // The same, with the stop vote and decision (BarrierRequest.want_stop,
  // BarrierResponse.stop).
  absl::StatusOr<rpc::BarrierResponse> Vote(uint32_t node_id, const std::string& name,
                                            bool want_stop, absl::Duration lost_after);

  // For workers: barriers "start" then "ready" (released once every server has
  // adopted the cluster view). Returns the view.
  absl::StatusOr<rpc::ClusterView> WaitForStart(uint32_t node_id, absl::Duration lost_after);

  // `timeout`: at most the client's RPC timeout.
  absl::StatusOr<rpc::HeartbeatResponse> Heartbeat(
      const rpc::HeartbeatRequest& req, absl::Duration timeout = absl::InfiniteDuration());
  absl::StatusOr<rpc::ClusterView> GetView();
  // Gives the request an id (NextShardRequest.request_id) that its retries share.
  absl::StatusOr<rpc::NextShardResponse> NextShard(const rpc::NextShardRequest& req);
  absl::Status SubmitEval(const rpc::SubmitEvalRequest& req);
  absl::Status Fail(uint32_t node_id, const std::string& message);
  absl::Status Leave(uint32_t node_id);
  // Reports that server `rank` could not be reached.
  absl::Status Suspect(uint32_t node_id, int32_t rank, const std::string& error,
                       absl::Duration failing_for = absl::ZeroDuration());

 private:
  const absl::Duration rpc_timeout_;
  absl::Duration retry_window_ = absl::ZeroDuration();
  std::function<void(const std::string&, absl::Duration)> barrier_observer_;
  std::atomic<uint64_t> next_request_id_{1};
  // What a deadline means to Reconnect.
  enum class OnDeadline {
    kNothing,        // a barrier's: it waited, as it should
    kNextScheduler,  // the scheduler did not answer: try the next, if several
    kFreshChannel,   // Register (waits for a connection): a fresh channel even with one
  };
  // After a call failed as UNAVAILABLE: a fresh channel for the next call,
  // to the next address if there are several; after a deadline as
  // `on_deadline` says. `used`: the stub the call went through (only the
  // first call failing on a channel replaces it).
  void Reconnect(const grpc::Status& status, const std::shared_ptr<rpc::Scheduler::Stub>& used,
                 OnDeadline on_deadline = OnDeadline::kNothing) ABSL_LOCKS_EXCLUDED(mu_);
  std::shared_ptr<rpc::Scheduler::Stub> Stub() ABSL_LOCKS_EXCLUDED(mu_);

  // The whole view of a barrier's version (BarrierResponse.view_omitted):
  // the last one fetched, else GetView.
  absl::StatusOr<rpc::ClusterView> WholeView(const rpc::ClusterView& light)
      ABSL_LOCKS_EXCLUDED(mu_);

  mutable Mutex mu_;
  std::vector<std::string> addresses_ ABSL_GUARDED_BY(mu_);
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;  // the address stub_ goes to
  std::shared_ptr<rpc::Scheduler::Stub> stub_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const rpc::ClusterView> last_view_ ABSL_GUARDED_BY(mu_);
  absl::Time renewed_ ABSL_GUARDED_BY(mu_);  // when stub_ was last replaced
};

}  // namespace ps

#endif  // PS_COMMON_SCHEDULER_CLIENT_H_

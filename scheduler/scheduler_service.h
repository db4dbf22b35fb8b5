// The Scheduler gRPC service: checks the caller (common/auth.h), decodes,
// calls SchedulerCore, finishes. Barrier calls are parked (no thread blocks)
// until released. Thread-safe.
//
// Who may call what: Register with a server's or worker's role key (the
// answer carries the member's ticket); Heartbeat, Barrier, Fail, Leave,
// Suspect: members, for their own node id; NextShard, SubmitEval: workers,
// for their own node id; GetView: members and admins; Status, Drain,
// TakeCheckpoint: admins (psctl) only.
#ifndef PS_SCHEDULER_SCHEDULER_SERVICE_H_
#define PS_SCHEDULER_SCHEDULER_SERVICE_H_

#include <atomic>
#include <deque>
#include <functional>

#include "absl/time/time.h"
#include "common/auth.h"
#include "common/sync.h"
#include "proto/scheduler.grpc.pb.h"
#include "scheduler/scheduler_core.h"

namespace ps {

class SchedulerService final : public rpc::Scheduler::CallbackService {
 public:
  // `signer` (the job's, from the job secret) signs members' tickets and
  // checks role keys; null with security.insecure (every call is allowed).
  // A null `core`: a standby scheduler, which answers every call UNAVAILABLE
  // (members then try the next scheduler address) until Lead.
  SchedulerService(SchedulerCore* core, const TicketSigner* signer,
                   const config::SecuritySection& security);
  // The standby took the job over: calls go to `core` while `leading` says
  // so (cluster.coordinator: etcd: while the lease holds), UNAVAILABLE after.
  // Call once, before any call can see `core`'s absence end.
  void Lead(SchedulerCore* core, std::function<bool()> leading);

  const Authorizer& authorizer() const { return auth_; }

  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* ctx, const rpc::RegisterRequest* req,
                                     rpc::RegisterResponse* resp) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const rpc::HeartbeatRequest* req,
                                      rpc::HeartbeatResponse* resp) override;
  grpc::ServerUnaryReactor* GetView(grpc::CallbackServerContext* ctx, const rpc::GetViewRequest* req,
                                    rpc::ClusterView* resp) override;
  grpc::ServerUnaryReactor* Barrier(grpc::CallbackServerContext* ctx, const rpc::BarrierRequest* req,
                                    rpc::BarrierResponse* resp) override;
  grpc::ServerUnaryReactor* NextShard(grpc::CallbackServerContext* ctx,
                                      const rpc::NextShardRequest* req,
                                      rpc::NextShardResponse* resp) override;
  grpc::ServerUnaryReactor* SubmitEval(grpc::CallbackServerContext* ctx,
                                       const rpc::SubmitEvalRequest* req,
                                       rpc::SubmitEvalResponse* resp) override;
  grpc::ServerUnaryReactor* Fail(grpc::CallbackServerContext* ctx, const rpc::FailRequest* req,
                                 rpc::FailResponse* resp) override;
  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx, const rpc::StatusRequest* req,
                                   rpc::JobStatus* resp) override;
  grpc::ServerUnaryReactor* Leave(grpc::CallbackServerContext* ctx, const rpc::LeaveRequest* req,
                                  rpc::LeaveResponse* resp) override;
  grpc::ServerUnaryReactor* TakeCheckpoint(grpc::CallbackServerContext* ctx,
                                       const rpc::TakeCheckpointRequest* req,
                                       rpc::TakeCheckpointResponse* resp) override;
  grpc::ServerUnaryReactor* Drain(grpc::CallbackServerContext* ctx, const rpc::DrainRequest* req,
                                  rpc::DrainResponse* resp) override;
  grpc::ServerUnaryReactor* Suspect(grpc::CallbackServerContext* ctx, const rpc::SuspectRequest* req,
                                    rpc::SuspectResponse* resp) override;

 private:
  // RESOURCE_EXHAUSTED past security.limits.registrations_per_minute.
  bool AdmitRegistration(absl::Time now);

  // The core while this scheduler leads, else null.
  SchedulerCore* Leading() const;
  grpc::Status NotLeading() const;
  // Finishes with `result`'s status, moving its value into *resp when OK;
  // with UNAVAILABLE instead if this scheduler stopped leading meanwhile (a
  // deposed leader answers nothing: its successor may not know of it).
  template <typename T>
  grpc::ServerUnaryReactor* FinishWith(grpc::CallbackServerContext* ctx, absl::StatusOr<T> result,
                                       T* resp) {
    if (result.ok() && Leading() != nullptr) *resp = std::move(*result);
    return FinishWith(ctx, result.status());
  }
  grpc::ServerUnaryReactor* FinishWith(grpc::CallbackServerContext* ctx,
                                       const absl::Status& status);

  std::atomic<SchedulerCore*> core_;
  // Set by Lead before core_ (read only after loading core_).
  std::function<bool()> leading_;
  const TicketSigner* const signer_;
  const int registrations_per_minute_;
  Authorizer auth_{"scheduler"};
  Mutex mu_;
  std::deque<absl::Time> registrations_ ABSL_GUARDED_BY(mu_);  // within the last minute
};

}  // namespace ps

#endif  // PS_SCHEDULER_SCHEDULER_SERVICE_H_

// The Scheduler gRPC service: decodes, calls SchedulerCore, finishes.
// Barrier calls are parked (no thread blocks) until released. Thread-safe.
#ifndef PS_SCHEDULER_SCHEDULER_SERVICE_H_
#define PS_SCHEDULER_SCHEDULER_SERVICE_H_

#include "proto/scheduler.grpc.pb.h"
#include "scheduler/scheduler_core.h"

namespace ps {

class SchedulerService final : public rpc::Scheduler::CallbackService {
 public:
  explicit SchedulerService(SchedulerCore* core) : core_(core) {}

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
  SchedulerCore* const core_;
};

}  // namespace ps

#endif  // PS_SCHEDULER_SCHEDULER_SERVICE_H_

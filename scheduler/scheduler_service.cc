#include "scheduler/scheduler_service.h"

#include "absl/time/clock.h"
#include "common/rpc.h"

namespace ps {
namespace {

// Finishes with `result`'s status, moving its value into *resp when OK.
template <typename T>
grpc::ServerUnaryReactor* FinishWith(grpc::CallbackServerContext* ctx, absl::StatusOr<T> result,
                                     T* resp) {
  auto* reactor = ctx->DefaultReactor();
  if (result.ok()) *resp = std::move(*result);
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

grpc::ServerUnaryReactor* FinishWith(grpc::CallbackServerContext* ctx, const absl::Status& status) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* SchedulerService::Register(grpc::CallbackServerContext* ctx,
                                                     const rpc::RegisterRequest* req,
                                                     rpc::RegisterResponse* resp) {
  return FinishWith(ctx, core_->Register(*req), resp);
}

grpc::ServerUnaryReactor* SchedulerService::Heartbeat(grpc::CallbackServerContext* ctx,
                                                      const rpc::HeartbeatRequest* req,
                                                      rpc::HeartbeatResponse* resp) {
  return FinishWith(ctx, core_->Heartbeat(*req, absl::Now()), resp);
}

grpc::ServerUnaryReactor* SchedulerService::GetView(grpc::CallbackServerContext* ctx,
                                                    const rpc::GetViewRequest*,
                                                    rpc::ClusterView* resp) {
  return FinishWith(ctx, absl::StatusOr<rpc::ClusterView>(core_->View()), resp);
}

grpc::ServerUnaryReactor* SchedulerService::Barrier(grpc::CallbackServerContext* ctx,
                                                    const rpc::BarrierRequest* req,
                                                    rpc::BarrierResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  core_->Barrier(*req, [reactor, resp](absl::StatusOr<rpc::BarrierResponse> result) {
    if (result.ok()) *resp = std::move(*result);
    reactor->Finish(ToGrpcStatus(result.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* SchedulerService::NextShard(grpc::CallbackServerContext* ctx,
                                                      const rpc::NextShardRequest* req,
                                                      rpc::NextShardResponse* resp) {
  return FinishWith(ctx, core_->NextShard(*req), resp);
}

grpc::ServerUnaryReactor* SchedulerService::SubmitEval(grpc::CallbackServerContext* ctx,
                                                       const rpc::SubmitEvalRequest* req,
                                                       rpc::SubmitEvalResponse*) {
  return FinishWith(ctx, core_->SubmitEval(*req));
}

grpc::ServerUnaryReactor* SchedulerService::Fail(grpc::CallbackServerContext* ctx,
                                                 const rpc::FailRequest* req, rpc::FailResponse*) {
  core_->FailFrom(req->node_id(), req->message());
  return FinishWith(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* SchedulerService::Status(grpc::CallbackServerContext* ctx,
                                                   const rpc::StatusRequest*, rpc::JobStatus* resp) {
  return FinishWith(ctx, absl::StatusOr<rpc::JobStatus>(core_->Status(absl::Now())), resp);
}

grpc::ServerUnaryReactor* SchedulerService::TakeCheckpoint(grpc::CallbackServerContext* ctx,
                                                       const rpc::TakeCheckpointRequest* req,
                                                       rpc::TakeCheckpointResponse* resp) {
  auto r = core_->RequestCheckpoint(req->request());
  if (r.ok()) *resp = *r;
  return FinishWith(ctx, r.status());
}

grpc::ServerUnaryReactor* SchedulerService::Drain(grpc::CallbackServerContext* ctx,
                                                  const rpc::DrainRequest* req,
                                                  rpc::DrainResponse* resp) {
  auto left = core_->Drain(req->server_rank());
  if (left.ok()) resp->set_partitions_left(*left);
  return FinishWith(ctx, left.status());
}

grpc::ServerUnaryReactor* SchedulerService::Suspect(grpc::CallbackServerContext* ctx,
                                                    const rpc::SuspectRequest* req,
                                                    rpc::SuspectResponse*) {
  core_->Suspect(req->server_rank(), req->error());
  return FinishWith(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* SchedulerService::Leave(grpc::CallbackServerContext* ctx,
                                                  const rpc::LeaveRequest* req, rpc::LeaveResponse*) {
  return FinishWith(ctx, core_->Leave(req->node_id()));
}

}  // namespace ps

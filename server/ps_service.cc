#include "server/ps_service.h"

#include "absl/time/clock.h"
#include "common/rpc.h"

namespace ps {
namespace {

const grpc::Status kNotReady(grpc::StatusCode::UNAVAILABLE, "server is starting");

}  // namespace

ServerCore::Done PsService::Finisher(grpc::ServerUnaryReactor* reactor, bool push) const {
  if (!observer_) {
    return [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); };
  }
  return [reactor, push, observer = &observer_, start = absl::Now()](absl::Status status) {
    (*observer)(push, absl::Now() - start, status);
    reactor->Finish(ToGrpcStatus(status));
  };
}

grpc::ServerUnaryReactor* PsService::Push(grpc::CallbackServerContext* ctx,
                                          const rpc::PushRequest* req, rpc::PushResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  ServerCore* core = core_.load(std::memory_order_acquire);
  if (core == nullptr) {
    reactor->Finish(kNotReady);
    return reactor;
  }
  core->Push(req, resp, absl::FromChrono(ctx->deadline()), Finisher(reactor, /*push=*/true));
  return reactor;
}

grpc::ServerUnaryReactor* PsService::Pull(grpc::CallbackServerContext* ctx,
                                          const rpc::PullRequest* req, rpc::PullResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  ServerCore* core = core_.load(std::memory_order_acquire);
  if (core == nullptr) {
    reactor->Finish(kNotReady);
    return reactor;
  }
  const absl::Time deadline = absl::FromChrono(ctx->deadline());
  core->Pull(req, resp, deadline, Finisher(reactor, /*push=*/false));
  return reactor;
}

grpc::ServerUnaryReactor* PsService::Tick(grpc::CallbackServerContext* ctx,
                                          const rpc::TickRequest* req, rpc::TickResponse*) {
  auto* reactor = ctx->DefaultReactor();
  ServerCore* core = core_.load(std::memory_order_acquire);
  if (core == nullptr) {
    reactor->Finish(kNotReady);
    return reactor;
  }
  core->Tick(*req, absl::FromChrono(ctx->deadline()),
             [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); });
  return reactor;
}

grpc::ServerUnaryReactor* PsService::SaveModel(grpc::CallbackServerContext* ctx,
                                               const rpc::SaveModelRequest* req,
                                               rpc::SaveModelResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  ServerCore* core = core_.load(std::memory_order_acquire);
  if (core == nullptr) {
    reactor->Finish(kNotReady);
    return reactor;
  }
  auto saved = core->SaveModel(req->dir());
  if (saved.ok()) *resp = *saved;
  reactor->Finish(ToGrpcStatus(saved.status()));
  return reactor;
}

grpc::ServerUnaryReactor* PsService::WorkerClock(grpc::CallbackServerContext* ctx,
                                                 const rpc::WorkerClockRequest* req,
                                                 rpc::WorkerClockResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  ServerCore* core = core_.load(std::memory_order_acquire);
  if (core == nullptr) {
    reactor->Finish(kNotReady);
    return reactor;
  }
  resp->set_next_clock(core->WorkerClock(req->worker()));
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* PsService::Checkpoint(grpc::CallbackServerContext* ctx,
                                                const rpc::CheckpointRequest* req,
                                                rpc::CheckpointResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  ServerCore* core = core_.load(std::memory_order_acquire);
  if (core == nullptr) {
    reactor->Finish(kNotReady);
    return reactor;
  }
  auto written = core->Checkpoint(req->dir());
  if (written.ok()) *resp = *written;
  reactor->Finish(ToGrpcStatus(written.status()));
  return reactor;
}

grpc::ServerUnaryReactor* PsService::Replicate(grpc::CallbackServerContext* ctx,
                                               const rpc::ReplicateRequest* req,
                                               rpc::ReplicateResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  ServerCore* core = core_.load(std::memory_order_acquire);
  reactor->Finish(core == nullptr ? kNotReady : ToGrpcStatus(core->Replicate(*req, resp)));
  return reactor;
}

grpc::ServerUnaryReactor* PsService::Stats(grpc::CallbackServerContext* ctx,
                                           const rpc::StatsRequest*, rpc::StatsResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  ServerCore* core = core_.load(std::memory_order_acquire);
  if (core == nullptr) {
    reactor->Finish(kNotReady);
    return reactor;
  }
  *resp = core->Stats();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace ps

#include "server/ps_service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/rpc.h"

namespace ps {
namespace {

const grpc::Status kNotReady(grpc::StatusCode::UNAVAILABLE, "server is starting");

constexpr rpc::Principal kWorker = rpc::PRINCIPAL_WORKER;
constexpr rpc::Principal kServer = rpc::PRINCIPAL_SERVER;
constexpr rpc::Principal kScheduler = rpc::PRINCIPAL_SCHEDULER;
constexpr rpc::Principal kAdmin = rpc::PRINCIPAL_ADMIN;

}  // namespace

ServerCore* PsService::Admit(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor,
                             const char* method, std::initializer_list<rpc::Principal> allowed,
                             Bind bind, int64_t id) {
  ServerCore* core = core_.load(std::memory_order_acquire);
  if (core == nullptr) {
    reactor->Finish(kNotReady);
    return nullptr;
  }
  if (grpc::Status denied = auth_.Check(*ctx, method, allowed, bind, id); !denied.ok()) {
    reactor->Finish(denied);
    return nullptr;
  }
  return core;
}

grpc::Status PsService::CheckSlices(
    const std::string& peer, const char* method, size_t bytes,
    const google::protobuf::RepeatedPtrField<rpc::TableSlice>& slices, bool with_values) {
  Caller caller;
  caller.peer = peer;
  if (bytes > static_cast<size_t>(limits_.max_message_bytes())) {
    return auth_.Refuse(
        peer, method, caller, grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("the request is ", bytes, " bytes; security.limits.max_message_bytes is ",
                     limits_.max_message_bytes()));
  }
  if (slices.size() > limits_.max_tables_per_request()) {
    return auth_.Refuse(peer, method, caller, grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("the request has ", slices.size(),
                                     " table slices; security.limits.max_tables_per_request is ",
                                     limits_.max_tables_per_request()));
  }
  int64_t keys = 0;
  for (const rpc::TableSlice& slice : slices) {
    keys += slice.keys_size();
    if (with_values && static_cast<int64_t>(slice.values_size()) >
                           static_cast<int64_t>(slice.keys_size()) * limits_.max_values_per_key()) {
      return auth_.Refuse(
          peer, method, caller, grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("table ", slice.table(), ": ", slice.values_size(), " values for ",
                       slice.keys_size(), " keys; security.limits.max_values_per_key is ",
                       limits_.max_values_per_key()));
    }
  }
  if (keys > limits_.max_keys_per_request()) {
    return auth_.Refuse(
        peer, method, caller, grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("the request has ", keys, " keys; security.limits.max_keys_per_request is ",
                     limits_.max_keys_per_request()));
  }
  return grpc::Status::OK;
}

grpc::Status PsService::WriteStatus(grpc::CallbackServerContext* ctx, const char* method,
                                    const absl::Status& status) {
  if (status.code() != absl::StatusCode::kPermissionDenied) return ToGrpcStatus(status);
  // A directory outside the job's (common/paths.h): audited and counted.
  Caller caller;
  caller.principal = kScheduler;
  return auth_.Refuse(*ctx, method, caller, grpc::StatusCode::PERMISSION_DENIED, std::string(status.message()));
}

ServerCore::Done PsService::Observed(bool push, ServerCore::Done done) const {
  if (!observer_) return done;
  return [done = std::move(done), push, observer = &observer_,
          start = absl::Now()](absl::Status status) {
    (*observer)(push, absl::Now() - start, status);
    done(std::move(status));
  };
}

ServerCore::Done PsService::Finisher(grpc::ServerUnaryReactor* reactor, bool push) const {
  return Observed(push, [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); });
}

absl::StatusOr<ServerCore*> PsService::AdmitData(
    std::string_view ticket, const std::string& peer, const char* method, int32_t worker,
    size_t bytes, const google::protobuf::RepeatedPtrField<rpc::TableSlice>& slices,
    bool with_values) {
  ServerCore* core = core_.load(std::memory_order_acquire);
  if (core == nullptr) return FromGrpcStatus(kNotReady);
  if (grpc::Status s =
          auth_.CheckTicket(ticket, peer, method, {kWorker}, Bind::kWorkerRank, worker);
      !s.ok()) {
    return FromGrpcStatus(s);
  }
  if (grpc::Status s = CheckSlices(peer, method, bytes, slices, with_values); !s.ok()) {
    return FromGrpcStatus(s);
  }
  return core;
}

void PsService::DataPush(std::string_view ticket, const std::string& peer, size_t bytes,
                         const rpc::PushRequest* req, rpc::PushResponse* resp, absl::Time deadline,
                         ServerCore::Done done) {
  auto core = AdmitData(ticket, peer, "Push", req->worker(), bytes, req->slices(), true);
  if (!core.ok()) return done(core.status());
  (*core)->Push(req, resp, deadline, Observed(/*push=*/true, std::move(done)));
}

void PsService::DataPull(std::string_view ticket, const std::string& peer, size_t bytes,
                         const rpc::PullRequest* req, rpc::PullResponse* resp, absl::Time deadline,
                         ServerCore::Done done) {
  auto core = AdmitData(ticket, peer, "Pull", req->worker(), bytes, req->slices(), false);
  if (!core.ok()) return done(core.status());
  (*core)->Pull(req, resp, deadline, Observed(/*push=*/false, std::move(done)));
}

grpc::Status PsService::DataHello(std::string_view ticket, const std::string& peer) {
  return auth_.CheckTicket(ticket, peer, "DataHello", {kWorker});
}

grpc::ServerUnaryReactor* PsService::Push(grpc::CallbackServerContext* ctx,
                                          const rpc::PushRequest* req, rpc::PushResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  ServerCore* core = Admit(ctx, reactor, "Push", {kWorker}, Bind::kWorkerRank, req->worker());
  if (core == nullptr) return reactor;
  if (grpc::Status s = CheckSlices(ctx->peer(), "Push", req->ByteSizeLong(), req->slices(), true);
      !s.ok()) {
    reactor->Finish(s);
    return reactor;
  }
  core->Push(req, resp, absl::FromChrono(ctx->deadline()), Finisher(reactor, /*push=*/true));
  return reactor;
}

grpc::ServerUnaryReactor* PsService::Pull(grpc::CallbackServerContext* ctx,
                                          const rpc::PullRequest* req, rpc::PullResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  ServerCore* core = Admit(ctx, reactor, "Pull", {kWorker}, Bind::kWorkerRank, req->worker());
  if (core == nullptr) return reactor;
  if (grpc::Status s = CheckSlices(ctx->peer(), "Pull", req->ByteSizeLong(), req->slices(), false);
      !s.ok()) {
    reactor->Finish(s);
    return reactor;
  }
  const absl::Time deadline = absl::FromChrono(ctx->deadline());
  core->Pull(req, resp, deadline, Finisher(reactor, /*push=*/false));
  return reactor;
}

grpc::ServerUnaryReactor* PsService::Tick(grpc::CallbackServerContext* ctx,
                                          const rpc::TickRequest* req, rpc::TickResponse*) {
  auto* reactor = ctx->DefaultReactor();
  ServerCore* core = Admit(ctx, reactor, "Tick", {kWorker}, Bind::kWorkerRank, req->worker());
  if (core == nullptr) return reactor;
  core->Tick(*req, absl::FromChrono(ctx->deadline()),
             [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); });
  return reactor;
}

grpc::ServerUnaryReactor* PsService::SaveModel(grpc::CallbackServerContext* ctx,
                                               const rpc::SaveModelRequest* req,
                                               rpc::SaveModelResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  ServerCore* core = Admit(ctx, reactor, "SaveModel", {kScheduler});
  if (core == nullptr) return reactor;
  auto saved = core->SaveModel(req->dir());
  if (saved.ok()) *resp = *saved;
  reactor->Finish(WriteStatus(ctx, "SaveModel", saved.status()));
  return reactor;
}

grpc::ServerUnaryReactor* PsService::WorkerClock(grpc::CallbackServerContext* ctx,
                                                 const rpc::WorkerClockRequest* req,
                                                 rpc::WorkerClockResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  ServerCore* core =
      Admit(ctx, reactor, "WorkerClock", {kWorker}, Bind::kWorkerRank, req->worker());
  if (core == nullptr) return reactor;
  resp->set_next_clock(core->WorkerClock(req->worker()));
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* PsService::Checkpoint(grpc::CallbackServerContext* ctx,
                                                const rpc::CheckpointRequest* req,
                                                rpc::CheckpointResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  ServerCore* core = Admit(ctx, reactor, "Checkpoint", {kScheduler});
  if (core == nullptr) return reactor;
  auto written = core->Checkpoint(req->dir());
  if (written.ok()) *resp = *written;
  reactor->Finish(WriteStatus(ctx, "Checkpoint", written.status()));
  return reactor;
}

grpc::ServerUnaryReactor* PsService::Replicate(grpc::CallbackServerContext* ctx,
                                               const rpc::ReplicateRequest* req,
                                               rpc::ReplicateResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  ServerCore* core =
      Admit(ctx, reactor, "Replicate", {kServer}, Bind::kServerRank, req->from_rank());
  if (core == nullptr) return reactor;
  reactor->Finish(ToGrpcStatus(core->Replicate(*req, resp)));
  return reactor;
}

grpc::ServerUnaryReactor* PsService::Stats(grpc::CallbackServerContext* ctx,
                                           const rpc::StatsRequest*, rpc::StatsResponse* resp) {
  auto* reactor = ctx->DefaultReactor();
  ServerCore* core = Admit(ctx, reactor, "Stats", {kScheduler, kAdmin});
  if (core == nullptr) return reactor;
  *resp = core->Stats();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace ps

#include "scheduler/scheduler_service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/audit.h"
#include "common/rpc.h"

namespace ps {
namespace {

grpc::ServerUnaryReactor* Refused(grpc::CallbackServerContext* ctx, const grpc::Status& status) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

constexpr rpc::Principal kWorker = rpc::PRINCIPAL_WORKER;
constexpr rpc::Principal kServer = rpc::PRINCIPAL_SERVER;
constexpr rpc::Principal kAdmin = rpc::PRINCIPAL_ADMIN;
constexpr rpc::Principal kScheduler = rpc::PRINCIPAL_SCHEDULER;

}  // namespace

// Checks the caller of this handler; finishes the call when refused.
#define PS_AUTHORIZE(method, bind, id, ...)                                              \
  Caller caller;                                                                         \
  if (grpc::Status denied = auth_.Check(*ctx, method, {__VA_ARGS__}, bind, id, &caller); \
      !denied.ok()) {                                                                    \
    return Refused(ctx, denied);                                                         \
  }                                                                                      \
  SchedulerCore* const core = Leading();                                                 \
  if (core == nullptr) return Refused(ctx, NotLeading());

SchedulerService::SchedulerService(SchedulerCore* core, const TicketSigner* signer,
                                   const config::SecuritySection& security)
    : core_(core),
      signer_(signer),
      registrations_per_minute_(security.limits().registrations_per_minute()) {
  if (signer == nullptr) {
    auth_.SetInsecure();
  } else {
    auth_.SetSigner(signer);
    if (TransportIsMutualTls()) auth_.SetMutualTls();
    auto verifier = TicketVerifier::Create(signer->public_key());
    if (verifier.ok()) auth_.SetVerifier(std::move(*verifier));
  }
}

void SchedulerService::Lead(SchedulerCore* core, std::function<bool()> leading) {
  leading_ = std::move(leading);
  core_.store(core, std::memory_order_release);
}

SchedulerCore* SchedulerService::Leading() const {
  SchedulerCore* core = core_.load(std::memory_order_acquire);
  if (core == nullptr || (leading_ && !leading_())) return nullptr;
  return core;
}

grpc::Status SchedulerService::NotLeading() const {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      core_.load(std::memory_order_acquire) == nullptr
                          ? "this scheduler is a standby: it has not taken the job over"
                          : "this scheduler no longer leads the job");
}

grpc::ServerUnaryReactor* SchedulerService::FinishWith(grpc::CallbackServerContext* ctx,
                                                       const absl::Status& status) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(Leading() != nullptr ? ToGrpcStatus(status) : NotLeading());
  return reactor;
}

bool SchedulerService::AdmitRegistration(absl::Time now) {
  MutexLock lock(&mu_);
  while (!registrations_.empty() && now - registrations_.front() >= absl::Minutes(1)) {
    registrations_.pop_front();
  }
  if (static_cast<int>(registrations_.size()) >= registrations_per_minute_) return false;
  registrations_.push_back(now);
  return true;
}

grpc::ServerUnaryReactor* SchedulerService::Register(grpc::CallbackServerContext* ctx,
                                                     const rpc::RegisterRequest* req,
                                                     rpc::RegisterResponse* resp) {
  const rpc::Principal wanted = req->role() == rpc::SERVER   ? kServer
                                : req->role() == rpc::WORKER ? kWorker
                                                             : rpc::PRINCIPAL_UNSPECIFIED;
  if (wanted == rpc::PRINCIPAL_UNSPECIFIED) {
    return FinishWith(ctx, absl::InvalidArgumentError("Register: role must be SERVER or WORKER"));
  }
  if (grpc::Status denied = auth_.CheckRoleKey(*ctx, "Register", wanted); !denied.ok()) {
    return Refused(ctx, denied);
  }
  SchedulerCore* const core = Leading();
  if (core == nullptr) return Refused(ctx, NotLeading());
  if (!AdmitRegistration(absl::Now())) {
    Caller caller;
    caller.principal = wanted;
    return Refused(
        ctx, auth_.Refuse(*ctx, "Register", caller, grpc::StatusCode::RESOURCE_EXHAUSTED,
                          absl::StrCat("more than security.limits.registrations_per_minute (",
                                       registrations_per_minute_, ") registrations in a minute")));
  }
  auto registered = core->Register(*req);
  if (registered.ok() && signer_ != nullptr) {
    rpc::TicketClaims claims;
    claims.set_principal(wanted);
    claims.set_node_id(registered->node_id());
    claims.set_rank(registered->rank());
    claims.set_incarnation(req->incarnation());
    registered->set_ticket(signer_->Sign(claims));
    registered->set_ticket_key(signer_->public_key());
  }
  return FinishWith(ctx, std::move(registered), resp);
}

grpc::ServerUnaryReactor* SchedulerService::Heartbeat(grpc::CallbackServerContext* ctx,
                                                      const rpc::HeartbeatRequest* req,
                                                      rpc::HeartbeatResponse* resp) {
  PS_AUTHORIZE("Heartbeat", Bind::kNode, req->node_id(), kWorker, kServer);
  auto beat = core->Heartbeat(*req, core->Now());
  if (beat.ok() && signer_ != nullptr && beat->known() && beat->rank() != caller.rank) {
    // A standby took over a rank: its ticket must say so for the servers.
    rpc::TicketClaims claims;
    claims.set_principal(caller.principal);
    claims.set_node_id(req->node_id());
    claims.set_rank(beat->rank());
    claims.set_incarnation(caller.incarnation);
    beat->set_ticket(signer_->Sign(claims));
  }
  return FinishWith(ctx, std::move(beat), resp);
}

grpc::ServerUnaryReactor* SchedulerService::GetView(grpc::CallbackServerContext* ctx,
                                                    const rpc::GetViewRequest*,
                                                    rpc::ClusterView* resp) {
  PS_AUTHORIZE("GetView", Bind::kNone, 0, kWorker, kServer, kAdmin, kScheduler);
  return FinishWith(ctx, absl::StatusOr<rpc::ClusterView>(core->View()), resp);
}

grpc::ServerUnaryReactor* SchedulerService::Barrier(grpc::CallbackServerContext* ctx,
                                                    const rpc::BarrierRequest* req,
                                                    rpc::BarrierResponse* resp) {
  PS_AUTHORIZE("Barrier", Bind::kNode, req->node_id(), kWorker, kServer);
  auto* reactor = ctx->DefaultReactor();
  core->Barrier(*req, [this, reactor, resp](absl::StatusOr<rpc::BarrierResponse> result) {
    if (Leading() == nullptr) {
      reactor->Finish(NotLeading());  // deposed while the call waited
      return;
    }
    if (result.ok()) *resp = std::move(*result);
    reactor->Finish(ToGrpcStatus(result.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* SchedulerService::NextShard(grpc::CallbackServerContext* ctx,
                                                      const rpc::NextShardRequest* req,
                                                      rpc::NextShardResponse* resp) {
  PS_AUTHORIZE("NextShard", Bind::kNode, req->node_id(), kWorker);
  return FinishWith(ctx, core->NextShard(*req), resp);
}

grpc::ServerUnaryReactor* SchedulerService::SubmitEval(grpc::CallbackServerContext* ctx,
                                                       const rpc::SubmitEvalRequest* req,
                                                       rpc::SubmitEvalResponse*) {
  PS_AUTHORIZE("SubmitEval", Bind::kNode, req->node_id(), kWorker);
  return FinishWith(ctx, core->SubmitEval(*req));
}

grpc::ServerUnaryReactor* SchedulerService::Fail(grpc::CallbackServerContext* ctx,
                                                 const rpc::FailRequest* req, rpc::FailResponse*) {
  PS_AUTHORIZE("Fail", Bind::kNode, req->node_id(), kWorker, kServer);
  core->FailFrom(req->node_id(), req->message());
  return FinishWith(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* SchedulerService::Status(grpc::CallbackServerContext* ctx,
                                                   const rpc::StatusRequest*, rpc::JobStatus* resp) {
  PS_AUTHORIZE("Status", Bind::kNone, 0, kAdmin);
  return FinishWith(ctx, absl::StatusOr<rpc::JobStatus>(core->Status(core->Now())), resp);
}

grpc::ServerUnaryReactor* SchedulerService::TakeCheckpoint(grpc::CallbackServerContext* ctx,
                                                       const rpc::TakeCheckpointRequest* req,
                                                       rpc::TakeCheckpointResponse* resp) {
  PS_AUTHORIZE("TakeCheckpoint", Bind::kNone, 0, kAdmin);
  if (req->request()) Audit("checkpoint_requested", {{"by", caller.peer}});
  auto r = core->RequestCheckpoint(req->request());
  if (r.ok()) *resp = *r;
  return FinishWith(ctx, r.status());
}

grpc::ServerUnaryReactor* SchedulerService::Drain(grpc::CallbackServerContext* ctx,
                                                  const rpc::DrainRequest* req,
                                                  rpc::DrainResponse* resp) {
  PS_AUTHORIZE("Drain", Bind::kNone, 0, kAdmin);
  Audit("drain_requested",
        {{"server_rank", absl::StrCat(req->server_rank())}, {"by", caller.peer}});
  auto left = core->Drain(req->server_rank());
  if (left.ok()) resp->set_partitions_left(*left);
  return FinishWith(ctx, left.status());
}

grpc::ServerUnaryReactor* SchedulerService::Suspect(grpc::CallbackServerContext* ctx,
                                                    const rpc::SuspectRequest* req,
                                                    rpc::SuspectResponse*) {
  PS_AUTHORIZE("Suspect", Bind::kNode, req->node_id(), kWorker, kServer);
  core->Suspect(req->node_id(), req->server_rank(), req->error(),
                absl::Milliseconds(std::min<uint64_t>(req->failing_ms(), uint64_t{1} << 40)));
  return FinishWith(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* SchedulerService::Leave(grpc::CallbackServerContext* ctx,
                                                  const rpc::LeaveRequest* req, rpc::LeaveResponse*) {
  PS_AUTHORIZE("Leave", Bind::kNode, req->node_id(), kWorker, kServer);
  return FinishWith(ctx, core->Leave(req->node_id()));
}

#undef PS_AUTHORIZE

}  // namespace ps

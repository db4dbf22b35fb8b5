// The ParameterServer gRPC service: checks the caller (common/auth.h) and
// the request's size against security.limits, decodes, calls ServerCore,
// finishes. Until a core is attached (after registration) every call is
// UNAVAILABLE. Thread-safe.
//
// Who may call what: Push, Pull, Tick, WorkerClock: workers, for their own
// rank; Replicate: servers; SaveModel, Checkpoint: the scheduler; Stats: the
// scheduler and admins. A refused call changes nothing and is audited.
#ifndef PS_SERVER_PS_SERVICE_H_
#define PS_SERVER_PS_SERVICE_H_

#include <atomic>
#include <functional>

#include "common/auth.h"
#include "proto/job_config.pb.h"
#include "proto/ps.grpc.pb.h"
#include "server/server_core.h"

namespace ps {

class PsService final : public rpc::ParameterServer::CallbackService {
 public:
  // Configure before Attach: SetInsecure, or SetVerifier with the job's key.
  Authorizer& authorizer() { return auth_; }
  // `core` must outlive the service's gRPC server. Call once.
  void Attach(ServerCore* core, const config::LimitsSection& limits) {
    limits_ = limits;
    core_.store(core, std::memory_order_release);
  }
  // Told of every finished push and pull (for /metrics), on the finishing
  // thread. Set before the gRPC server starts.
  using Observer =
      std::function<void(bool push, absl::Duration latency, const absl::Status& status)>;
  void SetObserver(Observer observer) { observer_ = std::move(observer); }

  // The TCP data plane's calls (server/data_plane.h), with the same checks
  // and core calls as Push and Pull: `ticket` is the one the connection's
  // hello carried, `bytes` the request's encoded size. `done` runs once.
  void DataPush(std::string_view ticket, const std::string& peer, size_t bytes,
                const rpc::PushRequest* req, rpc::PushResponse* resp, absl::Time deadline,
                ServerCore::Done done);
  void DataPull(std::string_view ticket, const std::string& peer, size_t bytes,
                const rpc::PullRequest* req, rpc::PullResponse* resp, absl::Time deadline,
                ServerCore::Done done);
  // A data-plane connection's hello: a worker's ticket (anything when insecure).
  grpc::Status DataHello(std::string_view ticket, const std::string& peer);

  grpc::ServerUnaryReactor* Push(grpc::CallbackServerContext* ctx, const rpc::PushRequest* req,
                                 rpc::PushResponse* resp) override;
  grpc::ServerUnaryReactor* Pull(grpc::CallbackServerContext* ctx, const rpc::PullRequest* req,
                                 rpc::PullResponse* resp) override;
  grpc::ServerUnaryReactor* Tick(grpc::CallbackServerContext* ctx, const rpc::TickRequest* req,
                                 rpc::TickResponse* resp) override;
  grpc::ServerUnaryReactor* SaveModel(grpc::CallbackServerContext* ctx,
                                      const rpc::SaveModelRequest* req,
                                      rpc::SaveModelResponse* resp) override;
  grpc::ServerUnaryReactor* WorkerClock(grpc::CallbackServerContext* ctx,
                                        const rpc::WorkerClockRequest* req,
                                        rpc::WorkerClockResponse* resp) override;
  grpc::ServerUnaryReactor* Checkpoint(grpc::CallbackServerContext* ctx,
                                       const rpc::CheckpointRequest* req,
                                       rpc::CheckpointResponse* resp) override;
  grpc::ServerUnaryReactor* Replicate(grpc::CallbackServerContext* ctx,
                                      const rpc::ReplicateRequest* req,
                                      rpc::ReplicateResponse* resp) override;
  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* ctx, const rpc::StatsRequest* req,
                                  rpc::StatsResponse* resp) override;

 private:
  // The core if the call may go on; else finishes it (not ready, refused).
  ServerCore* Admit(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor,
                    const char* method, std::initializer_list<rpc::Principal> allowed,
                    Bind bind = Bind::kNone, int64_t id = 0);
  // A data-plane request's checks (ticket, rank, limits): the core, or why not.
  absl::StatusOr<ServerCore*> AdmitData(
      std::string_view ticket, const std::string& peer, const char* method, int32_t worker,
      size_t bytes, const google::protobuf::RepeatedPtrField<rpc::TableSlice>& slices,
      bool with_values);
  // INVALID_ARGUMENT / RESOURCE_EXHAUSTED if `slices` exceed the limits.
  grpc::Status CheckSlices(const std::string& peer, const char* method, size_t bytes,
                           const google::protobuf::RepeatedPtrField<rpc::TableSlice>& slices,
                           bool with_values);
  // The status of a SaveModel/Checkpoint; a refused directory is audited.
  grpc::Status WriteStatus(grpc::CallbackServerContext* ctx, const char* method, const absl::Status& status);
  // Wraps `done` with the observer's report.
  ServerCore::Done Observed(bool push, ServerCore::Done done) const;
  // Wraps `reactor`'s finish with the observer's report.
  ServerCore::Done Finisher(grpc::ServerUnaryReactor* reactor, bool push) const;

  Authorizer auth_{"server"};
  config::LimitsSection limits_;  // written before core_ is published, then read-only
  std::atomic<ServerCore*> core_{nullptr};
  Observer observer_;
};

}  // namespace ps

#endif  // PS_SERVER_PS_SERVICE_H_

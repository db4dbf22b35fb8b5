// The ParameterServer gRPC service: decodes, calls ServerCore, finishes.
// Until a core is attached (after registration) every call is UNAVAILABLE.
// Thread-safe.
#ifndef PS_SERVER_PS_SERVICE_H_
#define PS_SERVER_PS_SERVICE_H_

#include <atomic>
#include <functional>

#include "proto/ps.grpc.pb.h"
#include "server/server_core.h"

namespace ps {

class PsService final : public rpc::ParameterServer::CallbackService {
 public:
  // `core` must outlive the service's gRPC server. Call once.
  void Attach(ServerCore* core) { core_.store(core, std::memory_order_release); }
  // Told of every finished push and pull (for /metrics), on the finishing
  // thread. Set before the gRPC server starts.
  using Observer =
      std::function<void(bool push, absl::Duration latency, const absl::Status& status)>;
  void SetObserver(Observer observer) { observer_ = std::move(observer); }

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
  // Wraps `reactor`'s finish with the observer's report.
  ServerCore::Done Finisher(grpc::ServerUnaryReactor* reactor, bool push) const;

  std::atomic<ServerCore*> core_{nullptr};
  Observer observer_;
};

}  // namespace ps

#endif  // PS_SERVER_PS_SERVICE_H_

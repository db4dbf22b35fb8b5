// The one place that builds gRPC channels and servers (message limits,
// keepalive, no port sharing) and converts between absl::Status and
// grpc::Status. Include only from *_service.cc, clients and *_main.cc.
#ifndef PS_COMMON_RPC_H_
#define PS_COMMON_RPC_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ps {

// Largest message either side accepts (requests are chunked well below).
inline constexpr int kMaxMessageBytes = 512 << 20;

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);

// A running gRPC server and the port it bound.
struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

// Binds host:port (port 0 picks a free one) and starts serving `services`.
// Fails with a clear error if the port is taken (port sharing is disabled).
absl::StatusOr<RunningServer> StartGrpcServer(const std::string& host, int port,
                                              const std::vector<grpc::Service*>& services);

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// A deadline for a client context, `timeout` from now.
std::chrono::system_clock::time_point DeadlineIn(absl::Duration timeout);

}  // namespace ps

#endif  // PS_COMMON_RPC_H_

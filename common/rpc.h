// The one place that builds gRPC channels and servers (message limits,
// keepalive, no port sharing, credentials, TLS) and converts between
// absl::Status and grpc::Status. Include only from *_service.cc, clients and
// *_main.cc.
#ifndef PS_COMMON_RPC_H_
#define PS_COMMON_RPC_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/job_config.pb.h"

// Transport security, for every process (launchers pass them on).
ABSL_DECLARE_FLAG(std::string, tls_ca);
ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);
ABSL_DECLARE_FLAG(bool, tls_mutual);
ABSL_DECLARE_FLAG(int, max_message_bytes);

namespace ps {

class CallCredentials;

// Largest message a client accepts (replies; requests are chunked well
// below). What servers accept is --max_message_bytes.
inline constexpr int kMaxMessageBytes = 512 << 20;

// PEM files of security.tls. Empty: plaintext.
struct TlsFiles {
  std::string ca, cert, key;
  bool mutual = false;
};

// Makes every later channel and server of this process use TLS with these
// files (read and checked here: errors name the flag and the file). Call
// from main before any channel or server exists.
absl::Status SetTransportSecurity(const TlsFiles& files);
// The same from --tls_ca/--tls_cert/--tls_key/--tls_mutual (nothing when all
// are empty).
absl::Status SetTransportSecurityFromFlags();
bool TransportIsTls();
bool TransportIsMutualTls();
// security.tls with "{role}" in cert and key replaced by `role`.
TlsFiles TlsFilesForRole(const config::TlsSection& tls, const std::string& role);

// A channel to `address` whose calls carry `credentials` (default: the
// process's, common/auth.h).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           std::shared_ptr<CallCredentials> credentials);

// A running gRPC server and the port it bound.
struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

struct ServerLimits {
  int max_message_bytes = 64 << 20;  // default of --max_message_bytes
  int max_streams_per_peer = 256;
};

// Binds host:port (port 0 picks a free one) and starts serving `services`.
// Fails with a clear error if the port is taken (port sharing is disabled).
// A non-loopback bind without TLS logs a warning (once per process).
absl::StatusOr<RunningServer> StartGrpcServer(const std::string& host, int port,
                                              const std::vector<grpc::Service*>& services,
                                              const ServerLimits& limits = ServerLimits());
// Limits from --max_message_bytes.
ServerLimits ServerLimitsFromFlags();

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// A deadline for a client context, `timeout` from now.
std::chrono::system_clock::time_point DeadlineIn(absl::Duration timeout);

}  // namespace ps

#endif  // PS_COMMON_RPC_H_

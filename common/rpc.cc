#include "common/rpc.h"

#include <grpcpp/support/client_interceptor.h>

#include <atomic>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/auth.h"
#include "common/file_util.h"
#include "common/net.h"
#include "common/sync.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, tls_ca, "", "PEM file of the CA that signed every node's certificate (TLS)");
ABSL_FLAG(std::string, tls_cert, "", "PEM file of this process's certificate (TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM file of this process's private key (TLS)");
ABSL_FLAG(bool, tls_mutual, false,
          "require a client certificate signed by --tls_ca (its OU is the caller's role)");
ABSL_FLAG(int, max_message_bytes, 64 << 20,
          "largest request this process's gRPC server reads (security.limits.max_message_bytes)");

namespace ps {
namespace {

Mutex tls_mu;
TlsFiles* tls_files ABSL_GUARDED_BY(tls_mu) = nullptr;  // PEM contents, once set
std::atomic<bool> warned_plaintext{false};

// Adds the credentials' metadata to every call of a channel.
class CredentialsInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit CredentialsInterceptor(std::shared_ptr<CallCredentials> credentials)
      : credentials_(std::move(credentials)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      credentials_->AppendTo(methods->GetSendInitialMetadata());
    }
    methods->Proceed();
  }

 private:
  const std::shared_ptr<CallCredentials> credentials_;
};

class CredentialsInterceptorFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit CredentialsInterceptorFactory(std::shared_ptr<CallCredentials> credentials)
      : credentials_(std::move(credentials)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new CredentialsInterceptor(credentials_);
  }

 private:
  const std::shared_ptr<CallCredentials> credentials_;
};

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag, const char* marker) {
  auto text = ReadWholeFile(path, 1 << 20);
  if (!text.ok())
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", text.status().message()));
  if (text->find(marker) == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": '", path, "' is not a PEM file (no '", marker, "')"));
  }
  return *text;
}

bool IsLoopbackHost(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host == "[::1]" ||
         host.rfind("127.", 0) == 0;
}

}  // namespace

absl::Status SetTransportSecurity(const TlsFiles& files) {
  if (files.ca.empty() && files.cert.empty() && files.key.empty()) {
    if (files.mutual)
      return absl::InvalidArgumentError("--tls_mutual needs --tls_ca, --tls_cert and --tls_key");
    return absl::OkStatus();
  }
  if (files.ca.empty() || files.cert.empty() || files.key.empty()) {
    return absl::InvalidArgumentError("TLS needs all of --tls_ca, --tls_cert and --tls_key");
  }
  TlsFiles pem;
  pem.mutual = files.mutual;
  auto ca = ReadPem(files.ca, "--tls_ca", "-----BEGIN CERTIFICATE-----");
  if (!ca.ok()) return ca.status();
  auto cert = ReadPem(files.cert, "--tls_cert", "-----BEGIN CERTIFICATE-----");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(files.key, "--tls_key", "PRIVATE KEY-----");
  if (!key.ok()) return key.status();
  pem.ca = std::move(*ca);
  pem.cert = std::move(*cert);
  pem.key = std::move(*key);
  MutexLock lock(&tls_mu);
  if (tls_files == nullptr) tls_files = new TlsFiles;
  *tls_files = std::move(pem);
  return absl::OkStatus();
}

absl::Status SetTransportSecurityFromFlags() {
  return SetTransportSecurity(TlsFiles{absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_tls_cert),
                                       absl::GetFlag(FLAGS_tls_key),
                                       absl::GetFlag(FLAGS_tls_mutual)});
}

bool TransportIsTls() {
  MutexLock lock(&tls_mu);
  return tls_files != nullptr;
}

bool TransportIsMutualTls() {
  MutexLock lock(&tls_mu);
  return tls_files != nullptr && tls_files->mutual;
}

TlsFiles TlsFilesForRole(const config::TlsSection& tls, const std::string& role) {
  const auto fill = [&](std::string path) {
    for (size_t at; (at = path.find("{role}")) != std::string::npos;) path.replace(at, 6, role);
    return path;
  };
  return TlsFiles{tls.ca(), fill(tls.cert()), fill(tls.key()), tls.mutual()};
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  return MakeChannel(address, ProcessCredentials());
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           std::shared_ptr<CallCredentials> credentials) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  // Reconnect quickly after a peer restarts (the default backoff reaches
  // minutes). Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC also uses it as the
  // connect timeout, and a short one fails handshakes on a loaded machine.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Each channel gets its own connection, so parallel clients do not share one.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::shared_ptr<grpc::ChannelCredentials> transport;
  {
    MutexLock lock(&tls_mu);
    if (tls_files != nullptr) {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = tls_files->ca;
      ssl.pem_private_key = tls_files->key;  // presented when the server asks (mutual TLS)
      ssl.pem_cert_chain = tls_files->cert;
      transport = grpc::SslCredentials(ssl);
    } else {
      transport = grpc::InsecureChannelCredentials();
    }
  }
  if (credentials == nullptr) return grpc::CreateCustomChannel(address, transport, args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<CredentialsInterceptorFactory>(std::move(credentials)));
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, transport, args,
                                                                 std::move(interceptors));
}

ServerLimits ServerLimitsFromFlags() {
  ServerLimits limits;
  limits.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  return limits;
}

absl::StatusOr<RunningServer> StartGrpcServer(const std::string& host, int port,
                                              const std::vector<grpc::Service*>& services,
                                              const ServerLimits& limits) {
  grpc::ServerBuilder builder;
  RunningServer running;
  const std::string address = absl::StrCat(host, ":", port);
  std::shared_ptr<grpc::ServerCredentials> transport;
  {
    MutexLock lock(&tls_mu);
    if (tls_files != nullptr) {
      grpc::SslServerCredentialsOptions ssl(
          tls_files->mutual ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                            : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
      ssl.pem_root_certs = tls_files->ca;
      ssl.pem_key_cert_pairs.push_back({tls_files->key, tls_files->cert});
      transport = grpc::SslServerCredentials(ssl);
    } else {
      transport = grpc::InsecureServerCredentials();
      if (!IsLoopbackHost(host) && !warned_plaintext.exchange(true)) {
        spdlog::warn(
            "listening on {} without TLS: anyone on the network can read this job's traffic "
            "(set security.tls, or --tls_ca/--tls_cert/--tls_key)",
            address);
      }
    }
  }
  builder.AddListeningPort(address, transport, &running.port);
  builder.SetMaxReceiveMessageSize(limits.max_message_bytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, limits.max_streams_per_peer);
  for (grpc::Service* service : services) builder.RegisterService(service);
  running.server = builder.BuildAndStart();
  if (running.server == nullptr || running.port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, ": ", WhyCannotBind(host, port)));
  }
  return running;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::chrono::system_clock::time_point DeadlineIn(absl::Duration timeout) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout);
}

}  // namespace ps

// Credentials and their checks (proto/auth.proto; docs/ARCHITECTURE.md,
// "Security").
//
// The job secret (32 random bytes) is held by the scheduler and the admins
// (psctl, ps_launch). From it come the role keys, HMAC-SHA256(secret, role),
// which servers and workers hold, and the job's Ed25519 key pair, whose
// private half only the secret's holders can derive. A member shows its role
// key once, at Register; the scheduler answers with a ticket (its principal,
// node id and rank, signed); every later call carries the ticket, and each
// service checks it against the method's roles and the rank or node id the
// request speaks for. Servers hold only the public key: they can check a
// worker's ticket but not make one.
//
// Include only from *_service.cc, clients and *_main.cc (gRPC headers).
#ifndef PS_COMMON_AUTH_H_
#define PS_COMMON_AUTH_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/sync.h"
#include "proto/auth.pb.h"

// The file of this process's credential (default: $PS_TOKEN_FILE).
ABSL_DECLARE_FLAG(std::string, token_file);

namespace ps {

// --token_file, or $PS_TOKEN_FILE when the flag is empty ("" if neither).
std::string TokenFileFromFlags();

// What a --token_file holds.
enum class TokenKind { kJob, kServer, kWorker };

struct Token {
  TokenKind kind = TokenKind::kJob;
  std::string secret;  // 32 raw bytes: the job secret, or the role's key
};

// Largest token file read (a token is one line of 80 characters).
inline constexpr int64_t kMaxTokenFileBytes = 4096;

// Reads a token file: one line "ps-job-secret HEX", "ps-server-key HEX" or
// "ps-worker-key HEX" (64 hex digits). Refuses a file that its group or others
// may read or write (group-read is accepted for a file another user owns in
// this process's group: a Kubernetes Secret volume with fsGroup), one larger than
// kMaxTokenFileBytes, not a regular file, or malformed; the error names the file and the flag,
// never the contents.
absl::StatusOr<Token> ReadTokenFile(const std::string& path,
                                    const std::string& flag = "--token_file");

// Makes a fresh job secret (OpenSSL's RAND_bytes) and writes job.token,
// server.token and worker.token (mode 0600) into `dir` (made, mode 0700).
absl::Status WriteTokenFiles(const std::string& dir);
// The same for the job secret in token file `job_token` (a copy of it
// becomes dir/job.token).
absl::Status WriteTokenFilesFrom(const std::string& job_token, const std::string& dir);

// The role key of a server or worker for `job_secret` (32 raw bytes).
std::string RoleKey(const std::string& job_secret, rpc::Principal principal);

// "worker", "server", "scheduler", "admin" ("anonymous" for unspecified).
std::string PrincipalName(rpc::Principal principal);

// Signs tickets with the job's Ed25519 key and recognizes role keys.
// Thread-safe (immutable after Create).
class TicketSigner {
 public:
  static absl::StatusOr<std::unique_ptr<TicketSigner>> Create(const std::string& job_secret);
  ~TicketSigner();
  TicketSigner(const TicketSigner&) = delete;
  TicketSigner& operator=(const TicketSigner&) = delete;

  // A serialized rpc::Ticket over `claims` (issued_unix_ms set here).
  std::string Sign(rpc::TicketClaims claims) const;
  // The public key (32 raw bytes) that checks these tickets.
  const std::string& public_key() const { return public_key_; }
  // Which role key `presented` is: SERVER, WORKER, or UNSPECIFIED.
  rpc::Principal RoleOfKey(std::string_view presented) const;

 private:
  TicketSigner() = default;
  void* key_ = nullptr;  // EVP_PKEY*
  std::string public_key_;
  std::string server_key_;
  std::string worker_key_;
};

// Checks tickets against the job's public key. A ticket checked once is
// remembered (a signature check costs ~50 us; a lookup well under 1 us).
// Thread-safe.
class TicketVerifier {
 public:
  static absl::StatusOr<std::unique_ptr<TicketVerifier>> Create(const std::string& public_key);
  ~TicketVerifier();
  TicketVerifier(const TicketVerifier&) = delete;
  TicketVerifier& operator=(const TicketVerifier&) = delete;

  // The claims of a valid ticket; UNAUTHENTICATED naming what is wrong.
  absl::StatusOr<rpc::TicketClaims> Verify(std::string_view ticket) const;

 private:
  TicketVerifier() = default;
  void* key_ = nullptr;  // EVP_PKEY*
  static constexpr size_t kMaxCached = 4096;
  mutable Mutex mu_;
  mutable absl::flat_hash_map<std::string, rpc::TicketClaims> cache_ ABSL_GUARDED_BY(mu_);
};

// What a process presents on its calls: its role key (for Register) and,
// once registered, its ticket. The channels of common/rpc.h add them to
// every call. Thread-safe.
class CallCredentials {
 public:
  // An empty key stops sending one (a member drops its role key once it has
  // a ticket, so that its peers never see it).
  void SetRoleKey(const std::string& key);
  void SetTicket(const std::string& ticket);
  bool HasTicket() const;
  std::string ticket() const;
  // Appends the call's metadata: "authorization: Bearer HEX" with a role
  // key, "x-ps-ticket-bin" with a ticket.
  void AppendTo(std::multimap<std::string, std::string>* metadata) const;
  // The same on one call's context (channels made without the interceptor).
  void AddTo(grpc::ClientContext* ctx) const;

 private:
  mutable Mutex mu_;
  std::string bearer_ ABSL_GUARDED_BY(mu_);
  std::string ticket_ ABSL_GUARDED_BY(mu_);
};

// The credentials MakeChannel(address) uses: set once by main() before any
// channel is made (none: calls carry no credential).
void SetProcessCredentials(std::shared_ptr<CallCredentials> credentials);
std::shared_ptr<CallCredentials> ProcessCredentials();

// Loads --token_file into the process's credentials: for a role key, as the
// bearer key; for the job secret, also a self-signed ticket of `principal`
// (the scheduler's own, or an admin's). Returns the token. An empty path is
// NOT_FOUND with `hint` (how to get one, or security.insecure).
absl::StatusOr<Token> LoadProcessCredentials(const std::string& path, rpc::Principal principal);

// For servers and workers, from main: TLS from the --tls_* flags, then
// --token_file (if given) as `principal`'s credentials. An error names the
// flag.
absl::Status InitMemberSecurity(rpc::Principal principal);
// After Register: keeps the ticket (and drops the role key), or checks that
// the job is insecure when the scheduler sent none.
absl::Status AdoptTicket(const std::string& ticket, bool job_insecure);

// Who made a call, as the service's checks found it.
struct Caller {
  rpc::Principal principal = rpc::PRINCIPAL_UNSPECIFIED;
  uint32_t node_id = 0;
  int32_t rank = -1;
  uint64_t incarnation = 0;
  std::string peer;  // the transport's address of the caller
};

// What a request speaks for, which the caller's ticket must match.
enum class Bind {
  kNone,
  kNode,        // the request's node_id must be the ticket's
  kWorkerRank,  // the request's worker rank must be the ticket's (workers)
  kServerRank,  // the request's server rank must be the ticket's (servers)
};

// Decides each call of one service: authenticates its ticket (or role key),
// checks the method's roles and binding, and audits and counts every
// refusal. Thread-safe.
class Authorizer {
 public:
  explicit Authorizer(std::string service) : service_(std::move(service)) {}

  // Configure before the service takes calls (or, for servers, before the
  // core is attached): either insecure, or a verifier (and, on the
  // scheduler, the signer for role keys).
  void SetInsecure();
  void SetVerifier(std::unique_ptr<TicketVerifier> verifier);
  void SetSigner(const TicketSigner* signer);  // not owned; outlives this
  // Mutual TLS: a caller's role is also its client certificate's OU; a
  // member registers with its certificate alone (no role key), and a ticket
  // is honoured only over a certificate of the same role.
  void SetMutualTls();
  bool insecure() const;

  // OK (filling *caller) or UNAUTHENTICATED / PERMISSION_DENIED.
  grpc::Status Check(const grpc::CallbackServerContext& ctx, const char* method,
                     std::initializer_list<rpc::Principal> allowed, Bind bind = Bind::kNone,
                     int64_t id = 0, Caller* caller = nullptr);
  // The same for a transport without gRPC (the TCP data plane, which runs
  // only without TLS): the ticket as the caller sent it, and its address.
  grpc::Status CheckTicket(std::string_view ticket, const std::string& peer, const char* method,
                           std::initializer_list<rpc::Principal> allowed, Bind bind = Bind::kNone,
                           int64_t id = 0, Caller* caller = nullptr);
  // Register: the role key of `wanted` (SERVER or WORKER) in "authorization".
  grpc::Status CheckRoleKey(const grpc::CallbackServerContext& ctx, const char* method,
                            rpc::Principal wanted);
  // Refuses a call for another reason (a limit): audited and counted alike.
  grpc::Status Refuse(const grpc::CallbackServerContext& ctx, const char* method,
                      const Caller& caller, grpc::StatusCode code, const std::string& why);

  grpc::Status Refuse(const std::string& peer, const char* method, const Caller& caller,
                      grpc::StatusCode code, const std::string& why);

  // Refused calls so far, by (method, status code name).
  std::map<std::pair<std::string, std::string>, uint64_t> Refusals() const;

 private:
  // `ctx`: the gRPC call's, for its client certificate (null: no TLS).
  grpc::Status CheckClaims(const grpc::CallbackServerContext* ctx, const std::string& peer,
                           std::string_view ticket, const char* method,
                           std::initializer_list<rpc::Principal> allowed, Bind bind, int64_t id,
                           Caller* caller);
  grpc::Status Deny(const std::string& peer, const char* method, const Caller& caller,
                    grpc::StatusCode code, const std::string& why);

  const std::string service_;
  mutable Mutex mu_;
  bool insecure_ ABSL_GUARDED_BY(mu_) = false;
  bool mutual_tls_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<const TicketVerifier> verifier_ ABSL_GUARDED_BY(mu_);
  const TicketSigner* signer_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::map<std::pair<std::string, std::string>, uint64_t> refusals_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_COMMON_AUTH_H_

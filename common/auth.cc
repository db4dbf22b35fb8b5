#include "common/auth.h"

#include <fcntl.h>
#include <grpc/grpc_security_constants.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/flags/flag.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/audit.h"
#include "common/file_util.h"
#include "common/rpc.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, token_file, "",
          "file with this process's credential, mode 0600 (default: $PS_TOKEN_FILE); ps_launch "
          "makes one per role, `psctl keygen DIR` for a hand-started cluster");

namespace ps {

std::string TokenFileFromFlags() {
  std::string path = absl::GetFlag(FLAGS_token_file);
  if (path.empty()) {
    const char* env = std::getenv("PS_TOKEN_FILE");
    if (env != nullptr) path = env;
  }
  return path;
}

namespace {

constexpr size_t kSecretBytes = 32;
constexpr char kTicketHeader[] = "x-ps-ticket-bin";
constexpr char kBearerPrefix[] = "Bearer ";

const char* KindWord(TokenKind kind) {
  switch (kind) {
    case TokenKind::kJob:
      return "ps-job-secret";
    case TokenKind::kServer:
      return "ps-server-key";
    case TokenKind::kWorker:
      return "ps-worker-key";
  }
  return "";
}

std::string Hmac(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

absl::Status WriteSecretFile(const std::string& path, const std::string& contents) {
  const std::string tmp = path + ".tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return absl::InternalError(absl::StrCat("cannot write '", tmp, "': ", strerror(errno)));
  const bool ok =
      fchmod(fd, 0600) == 0 &&
      write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size()) &&
      fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot write '", path, "': ", strerror(errno)));
  }
  return absl::OkStatus();
}

std::string_view Metadata(const grpc::CallbackServerContext& ctx, std::string_view key) {
  const auto& md = ctx.client_metadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return {};
  return std::string_view(it->second.data(), it->second.size());
}

// The role (OU) of the caller's client certificate, or UNSPECIFIED.
rpc::Principal CertificateRole(const grpc::CallbackServerContext& ctx) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (auth == nullptr) return rpc::PRINCIPAL_UNSPECIFIED;
  for (const grpc::string_ref& subject :
       auth->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME)) {
    for (absl::string_view part :
         absl::StrSplit(absl::string_view(subject.data(), subject.size()), ',')) {
      part = absl::StripAsciiWhitespace(part);
      if (!absl::ConsumePrefix(&part, "OU=")) continue;
      for (rpc::Principal p : {rpc::PRINCIPAL_WORKER, rpc::PRINCIPAL_SERVER,
                               rpc::PRINCIPAL_SCHEDULER, rpc::PRINCIPAL_ADMIN}) {
        if (part == PrincipalName(p)) return p;
      }
    }
  }
  return rpc::PRINCIPAL_UNSPECIFIED;
}

}  // namespace

absl::StatusOr<Token> ReadTokenFile(const std::string& path, const std::string& flag) {
  if (path.empty()) return absl::NotFoundError(absl::StrCat(flag, " is empty"));
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat(flag, ": cannot open '", path, "': ", strerror(errno)));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(flag, ": '", path, "' is not a regular file"));
  }
  // Only its owner may read it; group-read is accepted only for a file
  // someone else owns in our group (a Kubernetes Secret volume with fsGroup).
  const bool group_read_ok = st.st_uid != geteuid() && st.st_gid == getegid();
  if ((st.st_mode & 027) != 0 || ((st.st_mode & 040) != 0 && !group_read_ok)) {
    close(fd);
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s: '%s' has mode %04o: a token file must not be readable or writable by its group "
        "or others (chmod 600 '%s')",
        flag, path, st.st_mode & 07777, path));
  }
  if (st.st_size > kMaxTokenFileBytes) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(flag, ": '", path, "' is ", st.st_size,
                                                   " bytes; a token file has at most ",
                                                   kMaxTokenFileBytes));
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  const ssize_t n = read(fd, text.data(), text.size());
  close(fd);
  if (n != static_cast<ssize_t>(text.size())) {
    return absl::InternalError(absl::StrCat(flag, ": cannot read '", path, "'"));
  }
  const absl::string_view line = absl::StripAsciiWhitespace(text);
  std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
  const std::string malformed = absl::StrCat(
      flag, ": '", path,
      "' is not a token file (one line: ps-job-secret, ps-server-key or ps-worker-key, then 64 hex "
      "digits; `psctl keygen DIR` makes them)");
  if (words.size() != 2 || words[1].size() != 2 * kSecretBytes)
    return absl::InvalidArgumentError(malformed);
  Token token;
  bool known = false;
  for (TokenKind kind : {TokenKind::kJob, TokenKind::kServer, TokenKind::kWorker}) {
    if (words[0] == KindWord(kind)) {
      token.kind = kind;
      known = true;
    }
  }
  for (char c : words[1]) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) known = false;
  }
  if (!known) return absl::InvalidArgumentError(malformed);
  token.secret = absl::HexStringToBytes(words[1]);
  return token;
}

namespace {

absl::Status WriteTokenFilesForSecret(const std::string& dir, const std::string& secret) {
  if (absl::Status s = MakeDirs(dir); !s.ok()) return s;
  if (chmod(dir.c_str(), 0700) != 0) {
    return absl::InternalError(absl::StrCat("cannot chmod '", dir, "': ", strerror(errno)));
  }
  const std::pair<const char*, std::string> files[] = {
      {"job.token",
       absl::StrCat(KindWord(TokenKind::kJob), " ", absl::BytesToHexString(secret), "\n")},
      {"server.token",
       absl::StrCat(KindWord(TokenKind::kServer), " ",
                    absl::BytesToHexString(RoleKey(secret, rpc::PRINCIPAL_SERVER)), "\n")},
      {"worker.token",
       absl::StrCat(KindWord(TokenKind::kWorker), " ",
                    absl::BytesToHexString(RoleKey(secret, rpc::PRINCIPAL_WORKER)), "\n")},
  };
  for (const auto& [name, contents] : files) {
    if (absl::Status s = WriteSecretFile(absl::StrCat(dir, "/", name), contents); !s.ok()) return s;
  }
  // A key for files at rest (security.encryption_key_file), independent of
  // the secret; kept if there already is one (files it encrypted stay readable).
  const std::string data_key = absl::StrCat(dir, "/data.key");
  if (access(data_key.c_str(), F_OK) != 0) {
    std::string key(kSecretBytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), kSecretBytes) != 1) {
      return absl::InternalError("OpenSSL's RAND_bytes failed: cannot make a data key");
    }
    if (absl::Status s = WriteSecretFile(
            data_key, absl::StrCat("ps-data-key ", absl::BytesToHexString(key), "\n"));
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteTokenFiles(const std::string& dir) {
  std::string secret(kSecretBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(secret.data()), kSecretBytes) != 1) {
    return absl::InternalError("OpenSSL's RAND_bytes failed: cannot make a job secret");
  }
  return WriteTokenFilesForSecret(dir, secret);
}

absl::Status WriteTokenFilesFrom(const std::string& job_token, const std::string& dir) {
  auto token = ReadTokenFile(job_token);
  if (!token.ok()) return token.status();
  if (token->kind != TokenKind::kJob) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--token_file: '", job_token, "' is a member's key, not the job secret (job.token)"));
  }
  return WriteTokenFilesForSecret(dir, token->secret);
}

std::string RoleKey(const std::string& job_secret, rpc::Principal principal) {
  return Hmac(job_secret, absl::StrCat("ps-role-key:", PrincipalName(principal)));
}

std::string PrincipalName(rpc::Principal principal) {
  switch (principal) {
    case rpc::PRINCIPAL_WORKER:
      return "worker";
    case rpc::PRINCIPAL_SERVER:
      return "server";
    case rpc::PRINCIPAL_SCHEDULER:
      return "scheduler";
    case rpc::PRINCIPAL_ADMIN:
      return "admin";
    default:
      return "anonymous";
  }
}

// --- TicketSigner ---

absl::StatusOr<std::unique_ptr<TicketSigner>> TicketSigner::Create(const std::string& job_secret) {
  if (job_secret.size() != kSecretBytes)
    return absl::InvalidArgumentError("a job secret is 32 bytes");
  std::unique_ptr<TicketSigner> signer(new TicketSigner);
  const std::string seed = Hmac(job_secret, "ps-ticket-signing-key");
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), 32);
  if (key == nullptr) return absl::InternalError("OpenSSL cannot make an Ed25519 key");
  signer->key_ = key;
  unsigned char pub[32];
  size_t len = sizeof(pub);
  if (EVP_PKEY_get_raw_public_key(key, pub, &len) != 1 || len != 32) {
    return absl::InternalError("OpenSSL cannot derive the Ed25519 public key");
  }
  signer->public_key_.assign(reinterpret_cast<char*>(pub), len);
  signer->server_key_ = RoleKey(job_secret, rpc::PRINCIPAL_SERVER);
  signer->worker_key_ = RoleKey(job_secret, rpc::PRINCIPAL_WORKER);
  return signer;
}

TicketSigner::~TicketSigner() { EVP_PKEY_free(static_cast<EVP_PKEY*>(key_)); }

std::string TicketSigner::Sign(rpc::TicketClaims claims) const {
  claims.set_issued_unix_ms(absl::ToUnixMillis(absl::Now()));
  rpc::Ticket ticket;
  ticket.set_claims(claims.SerializeAsString());
  unsigned char sig[64];
  size_t sig_len = sizeof(sig);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      ctx != nullptr &&
      EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(key_)) == 1 &&
      EVP_DigestSign(ctx, sig, &sig_len,
                     reinterpret_cast<const unsigned char*>(ticket.claims().data()),
                     ticket.claims().size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (ok) ticket.set_signature(reinterpret_cast<char*>(sig), sig_len);
  return ticket.SerializeAsString();
}

rpc::Principal TicketSigner::RoleOfKey(std::string_view presented) const {
  // Both compared, in constant time, whatever matches.
  const bool server = ConstantTimeEqual(presented, server_key_);
  const bool worker = ConstantTimeEqual(presented, worker_key_);
  if (server) return rpc::PRINCIPAL_SERVER;
  if (worker) return rpc::PRINCIPAL_WORKER;
  return rpc::PRINCIPAL_UNSPECIFIED;
}

// --- TicketVerifier ---

absl::StatusOr<std::unique_ptr<TicketVerifier>> TicketVerifier::Create(
    const std::string& public_key) {
  if (public_key.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("the job's ticket key is ", public_key.size(), " bytes, not 32"));
  }
  std::unique_ptr<TicketVerifier> verifier(new TicketVerifier);
  verifier->key_ = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(public_key.data()), 32);
  if (verifier->key_ == nullptr) return absl::InternalError("OpenSSL cannot load the Ed25519 key");
  return verifier;
}

TicketVerifier::~TicketVerifier() { EVP_PKEY_free(static_cast<EVP_PKEY*>(key_)); }

absl::StatusOr<rpc::TicketClaims> TicketVerifier::Verify(std::string_view raw) const {
  if (raw.size() > 1024) return absl::UnauthenticatedError("the ticket is too long");
  {
    MutexLock lock(&mu_);
    auto it = cache_.find(absl::string_view(raw.data(), raw.size()));
    if (it != cache_.end()) return it->second;
  }
  rpc::Ticket ticket;
  if (!ticket.ParseFromArray(raw.data(), static_cast<int>(raw.size())) ||
      ticket.signature().size() != 64) {
    return absl::UnauthenticatedError("the ticket is malformed");
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      ctx != nullptr &&
      EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(key_)) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(ticket.signature().data()),
                       ticket.signature().size(),
                       reinterpret_cast<const unsigned char*>(ticket.claims().data()),
                       ticket.claims().size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) return absl::UnauthenticatedError("the ticket's signature is not this job's");
  rpc::TicketClaims claims;
  if (!claims.ParseFromString(ticket.claims()))
    return absl::UnauthenticatedError("the ticket is malformed");
  MutexLock lock(&mu_);
  if (cache_.size() >= kMaxCached) cache_.clear();
  cache_.emplace(std::string(raw), claims);
  return claims;
}

// --- CallCredentials ---

void CallCredentials::SetRoleKey(const std::string& key) {
  MutexLock lock(&mu_);
  bearer_ = key.empty() ? "" : absl::StrCat(kBearerPrefix, absl::BytesToHexString(key));
}

void CallCredentials::SetTicket(const std::string& ticket) {
  MutexLock lock(&mu_);
  ticket_ = ticket;
}

bool CallCredentials::HasTicket() const {
  MutexLock lock(&mu_);
  return !ticket_.empty();
}

std::string CallCredentials::ticket() const {
  MutexLock lock(&mu_);
  return ticket_;
}

void CallCredentials::AppendTo(std::multimap<std::string, std::string>* metadata) const {
  MutexLock lock(&mu_);
  if (!bearer_.empty()) metadata->emplace("authorization", bearer_);
  if (!ticket_.empty()) metadata->emplace(kTicketHeader, ticket_);
}

void CallCredentials::AddTo(grpc::ClientContext* ctx) const {
  MutexLock lock(&mu_);
  if (!bearer_.empty()) ctx->AddMetadata("authorization", bearer_);
  if (!ticket_.empty()) ctx->AddMetadata(kTicketHeader, ticket_);
}

namespace {
Mutex process_credentials_mu;
std::shared_ptr<CallCredentials>* process_credentials ABSL_GUARDED_BY(process_credentials_mu) =
    nullptr;
}  // namespace

void SetProcessCredentials(std::shared_ptr<CallCredentials> credentials) {
  MutexLock lock(&process_credentials_mu);
  if (process_credentials == nullptr) process_credentials = new std::shared_ptr<CallCredentials>;
  *process_credentials = std::move(credentials);
}

std::shared_ptr<CallCredentials> ProcessCredentials() {
  MutexLock lock(&process_credentials_mu);
  return process_credentials == nullptr ? nullptr : *process_credentials;
}

absl::StatusOr<Token> LoadProcessCredentials(const std::string& path, rpc::Principal principal) {
  auto token = ReadTokenFile(path);
  if (!token.ok()) return token.status();
  auto credentials = std::make_shared<CallCredentials>();
  switch (token->kind) {
    case TokenKind::kJob: {
      auto signer = TicketSigner::Create(token->secret);
      if (!signer.ok()) return signer.status();
      rpc::TicketClaims claims;
      claims.set_principal(principal);
      credentials->SetTicket((*signer)->Sign(claims));
      break;
    }
    case TokenKind::kServer:
    case TokenKind::kWorker:
      credentials->SetRoleKey(token->secret);
      break;
  }
  // A member given the job secret (one file for a whole hand-started
  // cluster) registers with its role's key.
  if (token->kind == TokenKind::kJob &&
      (principal == rpc::PRINCIPAL_SERVER || principal == rpc::PRINCIPAL_WORKER)) {
    credentials->SetRoleKey(RoleKey(token->secret, principal));
    credentials->SetTicket("");
  }
  SetProcessCredentials(std::move(credentials));
  return token;
}

absl::Status InitMemberSecurity(rpc::Principal principal) {
  if (absl::Status s = SetTransportSecurityFromFlags(); !s.ok()) return s;
  const std::string path = TokenFileFromFlags();
  if (path.empty()) return absl::OkStatus();  // only a security.insecure job lets it in
  auto token = LoadProcessCredentials(path, principal);
  if (!token.ok()) return token.status();
  const bool fits = token->kind == TokenKind::kJob ||
                    (token->kind == TokenKind::kServer && principal == rpc::PRINCIPAL_SERVER) ||
                    (token->kind == TokenKind::kWorker && principal == rpc::PRINCIPAL_WORKER);
  if (!fits) {
    return absl::InvalidArgumentError(
        absl::StrCat("--token_file: '", path, "' is not a ", PrincipalName(principal), "'s key"));
  }
  return absl::OkStatus();
}

absl::Status AdoptTicket(const std::string& ticket, bool job_insecure) {
  std::shared_ptr<CallCredentials> credentials = ProcessCredentials();
  if (ticket.empty()) {
    if (!job_insecure) return absl::UnauthenticatedError("the scheduler sent no ticket");
    spdlog::warn("security.insecure is set: this job accepts calls without a credential");
    return absl::OkStatus();
  }
  if (credentials == nullptr)
    return absl::FailedPreconditionError("no credentials to keep the ticket in");
  credentials->SetTicket(ticket);
  credentials->SetRoleKey("");
  return absl::OkStatus();
}

// --- Authorizer ---

void Authorizer::SetInsecure() {
  MutexLock lock(&mu_);
  insecure_ = true;
}

void Authorizer::SetVerifier(std::unique_ptr<TicketVerifier> verifier) {
  MutexLock lock(&mu_);
  verifier_ = std::move(verifier);
}

void Authorizer::SetSigner(const TicketSigner* signer) {
  MutexLock lock(&mu_);
  signer_ = signer;
}

void Authorizer::SetMutualTls() {
  MutexLock lock(&mu_);
  mutual_tls_ = true;
}

bool Authorizer::insecure() const {
  MutexLock lock(&mu_);
  return insecure_;
}

grpc::Status Authorizer::Deny(const std::string& peer, const char* method, const Caller& caller,
                              grpc::StatusCode code, const std::string& why) {
  const char* code_name = code == grpc::StatusCode::UNAUTHENTICATED      ? "UNAUTHENTICATED"
                          : code == grpc::StatusCode::PERMISSION_DENIED  ? "PERMISSION_DENIED"
                          : code == grpc::StatusCode::RESOURCE_EXHAUSTED ? "RESOURCE_EXHAUSTED"
                          : code == grpc::StatusCode::INVALID_ARGUMENT   ? "INVALID_ARGUMENT"
                                                                         : "OTHER";
  {
    MutexLock lock(&mu_);
    ++refusals_[{method, code_name}];
  }
  AuditFields fields = {{"service", service_}, {"method", method},
                        {"peer", peer},        {"principal", PrincipalName(caller.principal)},
                        {"code", code_name},   {"why", why}};
  if (caller.principal != rpc::PRINCIPAL_UNSPECIFIED) {
    fields.emplace_back("node_id", absl::StrCat(caller.node_id));
    fields.emplace_back("rank", absl::StrCat(caller.rank));
  }
  AuditRefusal(fields);
  return grpc::Status(code, absl::StrCat(method, ": ", why));
}

grpc::Status Authorizer::Check(const grpc::CallbackServerContext& ctx, const char* method,
                               std::initializer_list<rpc::Principal> allowed, Bind bind, int64_t id,
                               Caller* caller) {
  return CheckClaims(&ctx, ctx.peer(), Metadata(ctx, kTicketHeader), method, allowed, bind, id,
                     caller);
}

grpc::Status Authorizer::CheckTicket(std::string_view ticket, const std::string& peer,
                                     const char* method,
                                     std::initializer_list<rpc::Principal> allowed, Bind bind,
                                     int64_t id, Caller* caller) {
  return CheckClaims(nullptr, peer, ticket, method, allowed, bind, id, caller);
}

grpc::Status Authorizer::CheckClaims(const grpc::CallbackServerContext* ctx,
                                     const std::string& peer, std::string_view ticket,
                                     const char* method,
                                     std::initializer_list<rpc::Principal> allowed, Bind bind,
                                     int64_t id, Caller* caller) {
  Caller who;
  who.peer = peer;
  std::shared_ptr<const TicketVerifier> verifier;
  bool mutual;
  {
    MutexLock lock(&mu_);
    if (insecure_) {
      if (caller != nullptr) *caller = who;
      return grpc::Status::OK;
    }
    verifier = verifier_;
    mutual = mutual_tls_;
  }
  if (verifier == nullptr)
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "not ready to check credentials yet");
  if (ticket.empty()) {
    return Deny(who.peer, method, who, grpc::StatusCode::UNAUTHENTICATED,
                "no credential (every call needs this job's ticket; see --token_file)");
  }
  auto claims = verifier->Verify(ticket);
  if (!claims.ok()) {
    return Deny(who.peer, method, who, grpc::StatusCode::UNAUTHENTICATED,
                std::string(claims.status().message()));
  }
  who.principal = claims->principal();
  who.node_id = claims->node_id();
  who.rank = claims->rank();
  who.incarnation = claims->incarnation();
  if (mutual) {
    // Only a TLS transport has a certificate (the TCP data plane runs
    // without TLS only).
    const rpc::Principal cert = ctx == nullptr ? rpc::PRINCIPAL_UNSPECIFIED : CertificateRole(*ctx);
    if (cert != who.principal) {
      return Deny(who.peer, method, who, grpc::StatusCode::PERMISSION_DENIED,
                  absl::StrCat("the client certificate is a ", PrincipalName(cert),
                               "'s (OU), the ticket a ", PrincipalName(who.principal), "'s"));
    }
  }
  bool role_ok = false;
  for (rpc::Principal p : allowed) role_ok = role_ok || p == who.principal;
  if (!role_ok) {
    std::string roles;
    for (rpc::Principal p : allowed)
      absl::StrAppend(&roles, roles.empty() ? "" : " or ", PrincipalName(p));
    return Deny(who.peer, method, who, grpc::StatusCode::PERMISSION_DENIED,
                absl::StrCat("a ", PrincipalName(who.principal), "'s credential may not call it (",
                             roles, " only)"));
  }
  if (bind == Bind::kNode &&
      (who.principal == rpc::PRINCIPAL_WORKER || who.principal == rpc::PRINCIPAL_SERVER) &&
      static_cast<int64_t>(who.node_id) != id) {
    return Deny(who.peer, method, who, grpc::StatusCode::PERMISSION_DENIED,
                absl::StrCat("node ", who.node_id, " may not speak for node ", id));
  }
  if (bind == Bind::kWorkerRank && who.principal == rpc::PRINCIPAL_WORKER && who.rank != id) {
    return Deny(who.peer, method, who, grpc::StatusCode::PERMISSION_DENIED,
                absl::StrCat("worker rank ", who.rank, " may not speak for worker rank ", id));
  }
  if (bind == Bind::kServerRank && who.principal == rpc::PRINCIPAL_SERVER && who.rank != id) {
    return Deny(who.peer, method, who, grpc::StatusCode::PERMISSION_DENIED,
                absl::StrCat("server rank ", who.rank, " may not speak for server rank ", id));
  }
  if (caller != nullptr) *caller = who;
  return grpc::Status::OK;
}

grpc::Status Authorizer::CheckRoleKey(const grpc::CallbackServerContext& ctx, const char* method,
                                      rpc::Principal wanted) {
  Caller who;
  who.peer = ctx.peer();
  const TicketSigner* signer;
  bool mutual;
  {
    MutexLock lock(&mu_);
    if (insecure_) return grpc::Status::OK;
    signer = signer_;
    mutual = mutual_tls_;
  }
  if (signer == nullptr)
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "not ready to check credentials yet");
  const std::string_view raw_bearer = Metadata(ctx, "authorization");
  if (mutual && raw_bearer.empty()) {
    // The certificate is the credential.
    who.principal = CertificateRole(ctx);
    if (who.principal == wanted) return grpc::Status::OK;
    return Deny(who.peer, method, who, grpc::StatusCode::PERMISSION_DENIED,
                absl::StrCat("the client certificate is a ", PrincipalName(who.principal),
                             "'s (OU); it may not register as a ", PrincipalName(wanted)));
  }
  absl::string_view bearer(raw_bearer.data(), raw_bearer.size());
  if (bearer.empty()) {
    return Deny(who.peer, method, who, grpc::StatusCode::UNAUTHENTICATED,
                "no credential (a server or worker registers with its role key: --token_file)");
  }
  if (!absl::ConsumePrefix(&bearer, kBearerPrefix) || bearer.size() != 2 * kSecretBytes) {
    return Deny(who.peer, method, who, grpc::StatusCode::UNAUTHENTICATED,
                "the credential is malformed");
  }
  for (char c : bearer) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return Deny(who.peer, method, who, grpc::StatusCode::UNAUTHENTICATED,
                  "the credential is malformed");
    }
  }
  who.principal = signer->RoleOfKey(absl::HexStringToBytes(bearer));
  if (who.principal == rpc::PRINCIPAL_UNSPECIFIED) {
    return Deny(who.peer, method, who, grpc::StatusCode::UNAUTHENTICATED,
                "the credential is not this job's");
  }
  if (who.principal != wanted) {
    return Deny(who.peer, method, who, grpc::StatusCode::PERMISSION_DENIED,
                absl::StrCat("a ", PrincipalName(who.principal), "'s key may not register as a ",
                             PrincipalName(wanted)));
  }
  return grpc::Status::OK;
}

grpc::Status Authorizer::Refuse(const grpc::CallbackServerContext& ctx, const char* method,
                                const Caller& caller, grpc::StatusCode code,
                                const std::string& why) {
  return Deny(ctx.peer(), method, caller, code, why);
}

grpc::Status Authorizer::Refuse(const std::string& peer, const char* method, const Caller& caller,
                                grpc::StatusCode code, const std::string& why) {
  return Deny(peer, method, caller, code, why);
}

std::map<std::pair<std::string, std::string>, uint64_t> Authorizer::Refusals() const {
  MutexLock lock(&mu_);
  return refusals_;
}

}  // namespace ps

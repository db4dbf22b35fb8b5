#include "scheduler/etcd_client.h"

#include <grpcpp/grpcpp.h>

#include <climits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/net.h"
#include "common/rpc.h"

namespace ps {
namespace {

// etcd's own request limit is 1.5 MiB by default (--max-request-bytes).
constexpr int kMaxMessageBytes = 64 << 20;

std::shared_ptr<grpc::Channel> PlainChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(const std::string& endpoints,
                                                               const std::string& field) {
  std::vector<std::string> list;
  for (absl::string_view part : absl::StrSplit(endpoints, ',', absl::SkipWhitespace())) {
    std::string address(absl::StripAsciiWhitespace(part));
    absl::string_view view = address;
    if (absl::StartsWith(view, "https://")) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": '", address, "': TLS to etcd is not supported yet; give its plain client URL"));
    }
    absl::ConsumePrefix(&view, "http://");  // etcd's spelling of a client URL
    address = std::string(absl::StripSuffix(view, "/"));
    std::string host;
    int port;
    if (absl::Status s = ParseHostPort(address, field, &host, &port); !s.ok()) return s;
    if (port == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": '", address, "' has no port (etcd's client port, e.g. 2379)"));
    }
    list.push_back(address);
  }
  if (list.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field,
                     ": required with cluster.coordinator: etcd (host:port of etcd's "
                     "client endpoints, comma-separated)"));
  }
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(list)));
}

EtcdClient::EtcdClient(std::vector<std::string> endpoints) : endpoints_(std::move(endpoints)) {
  auto stubs = std::make_shared<Stubs>();
  auto channel = PlainChannel(endpoints_[0]);
  stubs->kv = etcdserverpb::KV::NewStub(channel);
  stubs->lease = etcdserverpb::Lease::NewStub(channel);
  stubs_ = std::move(stubs);
}

std::string EtcdClient::endpoint() const {
  MutexLock lock(&mu_);
  return endpoints_[current_];
}

std::shared_ptr<EtcdClient::Stubs> EtcdClient::Current() const {
  MutexLock lock(&mu_);
  return stubs_;
}

absl::Status EtcdClient::Failed(const grpc::Status& status, const std::shared_ptr<Stubs>& used,
                                const char* what) {
  std::string endpoint;
  {
    MutexLock lock(&mu_);
    endpoint = endpoints_[current_];
    // A deadline too: a member that drops packets times calls out.
    if ((status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) &&
        used == stubs_ && endpoints_.size() > 1) {
      current_ = (current_ + 1) % endpoints_.size();
      auto stubs = std::make_shared<Stubs>();
      auto channel = PlainChannel(endpoints_[current_]);
      stubs->kv = etcdserverpb::KV::NewStub(channel);
      stubs->lease = etcdserverpb::Lease::NewStub(channel);
      stubs_ = std::move(stubs);
    }
  }
  const absl::Status s = FromGrpcStatus(status);
  return absl::Status(s.code(), absl::StrCat("etcd at ", endpoint, ": ", what, ": ", s.message()));
}

absl::StatusOr<std::optional<etcdserverpb::KeyValue>> EtcdClient::Get(const std::string& key,
                                                                      absl::Duration timeout) {
  auto stubs = Current();
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(timeout));
  etcdserverpb::RangeRequest req;
  req.set_key(key);
  etcdserverpb::RangeResponse resp;
  grpc::Status s = stubs->kv->Range(&ctx, req, &resp);
  if (!s.ok()) return Failed(s, stubs, "get");
  if (resp.kvs_size() == 0) return std::nullopt;
  return std::move(*resp.mutable_kvs(0));
}

absl::Status EtcdClient::Put(const std::string& key, const std::string& value,
                             absl::Duration timeout) {
  auto stubs = Current();
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(timeout));
  etcdserverpb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  etcdserverpb::PutResponse resp;
  grpc::Status s = stubs->kv->Put(&ctx, req, &resp);
  if (!s.ok()) return Failed(s, stubs, "put");
  return absl::OkStatus();
}

absl::Status EtcdClient::DeletePrefix(const std::string& prefix, absl::Duration timeout) {
  auto stubs = Current();
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(timeout));
  etcdserverpb::DeleteRangeRequest req;
  req.set_key(prefix);
  // The range end of a prefix: the prefix with its last byte incremented.
  std::string end = prefix;
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (end.empty()) {
    end = std::string(1, '\0');  // every key
  } else {
    end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  }
  req.set_range_end(end);
  etcdserverpb::DeleteRangeResponse resp;
  grpc::Status s = stubs->kv->DeleteRange(&ctx, req, &resp);
  if (!s.ok()) return Failed(s, stubs, "delete");
  return absl::OkStatus();
}

absl::StatusOr<etcdserverpb::TxnResponse> EtcdClient::Txn(const etcdserverpb::TxnRequest& request,
                                                          absl::Duration timeout) {
  auto stubs = Current();
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(timeout));
  etcdserverpb::TxnResponse resp;
  grpc::Status s = stubs->kv->Txn(&ctx, request, &resp);
  if (!s.ok()) return Failed(s, stubs, "transaction");
  return resp;
}

absl::StatusOr<std::pair<int64_t, absl::Duration>> EtcdClient::Grant(absl::Duration ttl,
                                                                     absl::Duration timeout) {
  auto stubs = Current();
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(timeout));
  etcdserverpb::LeaseGrantRequest req;
  req.set_ttl(std::max<int64_t>(1, absl::ToInt64Seconds(ttl)));
  etcdserverpb::LeaseGrantResponse resp;
  grpc::Status s = stubs->lease->LeaseGrant(&ctx, req, &resp);
  if (!s.ok()) return Failed(s, stubs, "lease grant");
  if (!resp.error().empty()) {
    return absl::UnavailableError(
        absl::StrCat("etcd at ", endpoint(), ": lease grant: ", resp.error()));
  }
  return std::make_pair(resp.id(), absl::Seconds(resp.ttl()));
}

absl::Status EtcdClient::Revoke(int64_t lease, absl::Duration timeout) {
  auto stubs = Current();
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(timeout));
  etcdserverpb::LeaseRevokeRequest req;
  req.set_id(lease);
  etcdserverpb::LeaseRevokeResponse resp;
  grpc::Status s = stubs->lease->LeaseRevoke(&ctx, req, &resp);
  if (!s.ok()) return Failed(s, stubs, "lease revoke");
  return absl::OkStatus();
}

absl::StatusOr<absl::Duration> EtcdClient::KeepAliveOnce(int64_t lease, absl::Duration timeout) {
  auto stubs = Current();
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(timeout));
  auto stream = stubs->lease->LeaseKeepAlive(&ctx);
  etcdserverpb::LeaseKeepAliveRequest req;
  req.set_id(lease);
  etcdserverpb::LeaseKeepAliveResponse resp;
  const bool sent = stream->Write(req) && stream->WritesDone();
  const bool read = sent && stream->Read(&resp);
  grpc::Status s = stream->Finish();
  if (!s.ok()) return Failed(s, stubs, "lease keep-alive");
  if (!read) {
    return absl::UnavailableError(
        absl::StrCat("etcd at ", endpoint(), ": lease keep-alive: no answer"));
  }
  return absl::Seconds(resp.ttl());
}

}  // namespace ps

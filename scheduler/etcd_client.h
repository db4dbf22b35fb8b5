// A small client of etcd's v3 API (proto/etcd.proto) over gRPC: the calls the
// scheduler needs to keep its state and its leadership in etcd
// (cluster.coordinator: etcd). Every call carries a deadline; a call that
// fails as UNAVAILABLE or times out moves the client to the next endpoint.
//
// The channel is plain (etcd's client URLs are http://): etcd's TLS and
// authentication are not supported yet.
//
// Thread-safety: every method is thread-safe (mu_ guards the endpoint in use
// and its stubs).
#ifndef PS_SCHEDULER_ETCD_CLIENT_H_
#define PS_SCHEDULER_ETCD_CLIENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "proto/etcd.grpc.pb.h"

namespace ps {

class EtcdClient {
 public:
  // `endpoints`: host:port, comma-separated; an error names `field` (the
  // config field or flag that holds them) and what is wrong.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(const std::string& endpoints,
                                                            const std::string& field);

  // The value of `key` with its revisions, or nullopt if absent.
  absl::StatusOr<std::optional<etcdserverpb::KeyValue>> Get(const std::string& key,
                                                            absl::Duration timeout);
  absl::Status Put(const std::string& key, const std::string& value, absl::Duration timeout);
  // Deletes every key starting with `prefix`.
  absl::Status DeletePrefix(const std::string& prefix, absl::Duration timeout);
  absl::StatusOr<etcdserverpb::TxnResponse> Txn(const etcdserverpb::TxnRequest& request,
                                                absl::Duration timeout);
  // A new lease of `ttl` (whole seconds; etcd may raise it to its minimum).
  // Returns its id and the TTL granted.
  absl::StatusOr<std::pair<int64_t, absl::Duration>> Grant(absl::Duration ttl,
                                                           absl::Duration timeout);
  absl::Status Revoke(int64_t lease, absl::Duration timeout);
  // Renews `lease` once; returns its TTL from now (zero: the lease is gone).
  absl::StatusOr<absl::Duration> KeepAliveOnce(int64_t lease, absl::Duration timeout);

  // The endpoint calls go to now.
  std::string endpoint() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit EtcdClient(std::vector<std::string> endpoints);
  struct Stubs {
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  };
  std::shared_ptr<Stubs> Current() const ABSL_LOCKS_EXCLUDED(mu_);
  // After `status`: UNAVAILABLE moves to the next endpoint. Returns the
  // status as absl's, naming the endpoint and `what`.
  absl::Status Failed(const grpc::Status& status, const std::shared_ptr<Stubs>& used,
                      const char* what) ABSL_LOCKS_EXCLUDED(mu_);

  const std::vector<std::string> endpoints_;
  mutable Mutex mu_;
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<Stubs> stubs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_SCHEDULER_ETCD_CLIENT_H_

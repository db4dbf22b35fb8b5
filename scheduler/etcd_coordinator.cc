#include "scheduler/etcd_coordinator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"

namespace ps {
namespace {

constexpr absl::Duration kCallTimeout = absl::Seconds(2);

std::chrono::steady_clock::duration ToSteady(absl::Duration d) {
  return absl::ToChronoNanoseconds(d);
}

}  // namespace

EtcdCoordinator::EtcdCoordinator(std::unique_ptr<EtcdClient> client, Options options)
    : client_(std::move(client)),
      options_(std::move(options)),
      key_(options_.prefix + options_.job) {}

EtcdCoordinator::~EtcdCoordinator() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
    stop_cv_.SignalAll();
  }
  if (renewer_.joinable()) renewer_.join();
}

absl::Duration EtcdCoordinator::Margin() const {
  // A fifth of the lease, at least 200 ms: covers the scheduler's loop
  // period (50 ms) and a call in flight when the deadline passes.
  return std::max(absl::Milliseconds(200), options_.lease / 5);
}

absl::Duration EtcdCoordinator::LeadLeft() const {
  MutexLock lock(&mu_);
  if (leading_until_ == Steady::time_point::min()) return absl::ZeroDuration();
  return std::max(absl::ZeroDuration(), absl::FromChrono(leading_until_ - Steady::now()));
}

int64_t EtcdCoordinator::term() const {
  MutexLock lock(&mu_);
  return leading_until_ == Steady::time_point::min() ? 0 : term_;
}

void EtcdCoordinator::LoseLocked(const std::string& why) {
  if (leading_until_ == Steady::time_point::min()) return;
  leading_until_ = Steady::time_point::min();
  spdlog::error("this scheduler no longer leads job '{}' (term {}): {}", options_.job, term_, why);
}

absl::StatusOr<std::optional<std::string>> EtcdCoordinator::Leader() {
  auto kv = client_->Get(leader_key(), kCallTimeout);
  if (!kv.ok()) return kv.status();
  if (!kv->has_value()) return std::nullopt;
  return (*kv)->value();
}

absl::StatusOr<bool> EtcdCoordinator::TryLead(std::string* leader) {
  {
    MutexLock lock(&mu_);
    if (renewer_.joinable()) return absl::FailedPreconditionError("TryLead: already led once");
  }
  // The lease is counted from before it is asked for.
  const Steady::time_point asked = Steady::now();
  auto granted = client_->Grant(options_.lease, kCallTimeout);
  if (!granted.ok()) return granted.status();
  const auto [lease, ttl] = *granted;
  etcdserverpb::TxnRequest txn;
  etcdserverpb::Compare* absent = txn.add_compare();
  absent->set_result(etcdserverpb::Compare::EQUAL);
  absent->set_target(etcdserverpb::Compare::CREATE);
  absent->set_key(leader_key());
  absent->set_create_revision(0);
  etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
  put->set_key(leader_key());
  put->set_value(options_.me);
  put->set_lease(lease);
  txn.add_failure()->mutable_request_range()->set_key(leader_key());
  auto done = client_->Txn(txn, kCallTimeout);
  if (!done.ok() || !done->succeeded()) {
    // Not ours (or not known to be): give the lease back; if the put did go
    // through, the key goes with the lease.
    (void)client_->Revoke(lease, kCallTimeout);
    if (!done.ok()) return done.status();
    // The failure branch's range, if etcd sent it (an answer without one
    // names nobody rather than crash).
    *leader = done->responses_size() > 0 && done->responses(0).response_range().kvs_size() > 0
                  ? done->responses(0).response_range().kvs(0).value()
                  : "";
    return false;
  }
  if (ttl > options_.lease) {
    // etcd raised it to its minimum: a standby takes over later than the
    // config says (cluster.scheduler_timeout_ms was checked against it).
    spdlog::warn(
        "etcd granted a lease of {} instead of cluster.etcd_lease_seconds ({}): its "
        "minimum lease is longer",
        absl::FormatDuration(ttl), absl::FormatDuration(options_.lease));
  }
  MutexLock lock(&mu_);
  lease_ = lease;
  granted_ = ttl;
  term_ = done->header().revision();  // the revision that created the key
  leading_until_ = asked + ToSteady(std::min(ttl, options_.lease) - Margin());
  renewer_ = std::thread([this] { RenewLoop(); });
  spdlog::info("this scheduler leads job '{}' (etcd {}, term {}, lease {}s)", options_.job,
               client_->endpoint(), term_, absl::ToInt64Seconds(ttl));
  return true;
}

void EtcdCoordinator::RenewLoop() {
  const absl::Duration period = options_.lease / 4;
  MutexLock lock(&mu_);
  while (!stop_ && leading_until_ != Steady::time_point::min()) {
    // The renewal period (woken early by a stop).
    const Steady::time_point next = Steady::now() + ToSteady(period);
    while (!stop_ && Steady::now() < next) {
      stop_cv_.WaitWithTimeout(&mu_, absl::FromChrono(next - Steady::now()));
    }
    if (stop_ || leading_until_ == Steady::time_point::min()) break;
    const int64_t lease = lease_;
    mu_.Unlock();
    const Steady::time_point sent = Steady::now();
    auto ttl = client_->KeepAliveOnce(lease, std::min(period, kCallTimeout));
    mu_.Lock();
    if (leading_until_ == Steady::time_point::min()) break;
    if (Steady::now() >= leading_until_) {
      // Too late even if this renewal went through: the process has
      // stopped acting, and the lead is not picked up again.
      LoseLocked("its lease could not be renewed in time");
      break;
    }
    if (!ttl.ok()) {
      spdlog::warn("cannot renew the scheduler's lease: {} (it leads for {} more)",
                   std::string(ttl.status().message()),
                   absl::FormatDuration(absl::FromChrono(leading_until_ - Steady::now())));
      continue;
    }
    if (*ttl <= absl::ZeroDuration()) {
      LoseLocked("its lease expired in etcd");
      break;
    }
    leading_until_ = std::max(
        leading_until_, sent + ToSteady(std::min({*ttl, granted_, options_.lease}) - Margin()));
  }
}

absl::StatusOr<std::optional<rpc::SchedulerState>> EtcdCoordinator::ReadState() {
  auto kv = client_->Get(state_key(), kCallTimeout);
  if (!kv.ok()) return kv.status();
  if (!kv->has_value()) return std::nullopt;
  rpc::SchedulerState state;
  if (!state.ParseFromString((*kv)->value()) || !state.has_job()) {
    return absl::DataLossError(absl::StrCat("etcd key ", state_key(), " at ", client_->endpoint(),
                                            " does not hold a scheduler state"));
  }
  return state;
}

absl::Status EtcdCoordinator::WriteState(const rpc::SchedulerState& state) {
  int64_t term;
  Steady::time_point until;
  {
    MutexLock lock(&mu_);
    if (leading_until_ == Steady::time_point::min() || Steady::now() >= leading_until_) {
      return absl::FailedPreconditionError("this scheduler does not lead");
    }
    term = term_;
    until = leading_until_;  // fixed now: renewals do not stretch the retries
  }
  std::string bytes;
  if (!state.SerializeToString(&bytes)) {
    MutexLock lock(&mu_);
    LoseLocked("its state could not be serialized");
    return absl::InternalError("cannot serialize the scheduler's state");
  }
  etcdserverpb::TxnRequest txn;
  etcdserverpb::Compare* ours = txn.add_compare();
  ours->set_result(etcdserverpb::Compare::EQUAL);
  ours->set_target(etcdserverpb::Compare::CREATE);
  ours->set_key(leader_key());
  ours->set_create_revision(term);
  etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
  put->set_key(state_key());
  put->set_value(std::move(bytes));
  absl::Status last;
  while (true) {
    const absl::Duration left = absl::FromChrono(until - Steady::now());
    if (left <= absl::ZeroDuration()) {
      const std::string why =
          last.ok() ? "its lease ran out"
                    : absl::StrCat(
                          "its state could not be written to etcd before its lease ran "
                          "out: ",
                          last.message());
      MutexLock lock(&mu_);
      LoseLocked(why);
      return absl::FailedPreconditionError(
          absl::StrCat("the scheduler's state was not written: ", why));
    }
    auto done = client_->Txn(txn, std::min(left, kCallTimeout));
    if (done.ok() && done->succeeded()) return absl::OkStatus();
    if (done.ok()) {
      MutexLock lock(&mu_);
      LoseLocked("its leader key is gone or another scheduler's");
      return absl::FailedPreconditionError(absl::StrCat("another scheduler leads job '",
                                                        options_.job, "' (etcd key ", leader_key(),
                                                        " is not this scheduler's)"));
    }
    last = done.status();
    if (last.code() != absl::StatusCode::kUnavailable &&
        last.code() != absl::StatusCode::kDeadlineExceeded) {
      // E.g. the state is larger than etcd's --max-request-bytes: no
      // successor could carry on from what this scheduler does next.
      MutexLock lock(&mu_);
      LoseLocked(absl::StrCat("its state could not be written to etcd: ", last.message()));
      return last;
    }
    absl::SleepFor(absl::Milliseconds(100));  // retry backoff while etcd is unreachable
  }
}

void EtcdCoordinator::Resign() {
  int64_t lease;
  {
    MutexLock lock(&mu_);
    if (lease_ == 0) return;  // never led
    lease = lease_;
    lease_ = 0;
    leading_until_ = Steady::time_point::min();
    stop_ = true;
    stop_cv_.SignalAll();
  }
  if (renewer_.joinable()) renewer_.join();
  // Revoking the lease deletes the leader key bound to it.
  if (absl::Status s = client_->Revoke(lease, kCallTimeout); !s.ok()) {
    spdlog::warn(
        "could not give up the lead in etcd (a standby takes over when the lease "
        "expires): {}",
        std::string(s.message()));
  }
}

}  // namespace ps

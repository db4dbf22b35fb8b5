#include "common/scheduler_client.h"

#include <unistd.h>

#include <algorithm>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/audit.h"
#include "common/auth.h"
#include "common/net.h"
#include "common/rpc.h"

namespace ps {

SchedulerClient::SchedulerClient(const std::string& address, absl::Duration rpc_timeout)
    : rpc_timeout_(rpc_timeout) {
  for (absl::string_view a : absl::StrSplit(address, ',', absl::SkipWhitespace())) {
    addresses_.emplace_back(absl::StripAsciiWhitespace(a));
  }
  if (addresses_.empty()) addresses_.push_back(address);
  stub_ = rpc::Scheduler::NewStub(MakeChannel(addresses_[0]));
}

std::string SchedulerClient::address() const {
  MutexLock lock(&mu_);
  return addresses_[current_];
}

void SchedulerClient::AddAddresses(const std::vector<std::string>& addresses) {
  MutexLock lock(&mu_);
  for (const std::string& a : addresses) {
    if (!a.empty() && std::find(addresses_.begin(), addresses_.end(), a) == addresses_.end()) {
      addresses_.push_back(a);
    }
  }
}

std::shared_ptr<rpc::Scheduler::Stub> SchedulerClient::Stub() {
  MutexLock lock(&mu_);
  return stub_;
}

void SchedulerClient::Reconnect(const grpc::Status& status,
                                const std::shared_ptr<rpc::Scheduler::Stub>& used,
                                OnDeadline on_deadline) {
  // gRPC 1.51's pick_first leaves a channel whose server went away in
  // TRANSIENT_FAILURE, failing every call at once, and its subchannel idle
  // after the backoff: it tries to connect again only when the resolver
  // speaks, seconds later (resetting the backoff or asking for a connection
  // does not move it). A restarted scheduler must hear from its members
  // within a heartbeat timeout, so a fresh channel connects at the next call
  // (at most every 100 ms).
  // With several addresses (a leader and standbys) the next one is tried: a
  // standby answers UNAVAILABLE until it takes the job over.
  const bool deadline = status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
      !(deadline && on_deadline != OnDeadline::kNothing)) {
    return;
  }
  MutexLock lock(&mu_);
  // Only the first of the calls that failed on a channel replaces it: the
  // others (in flight on the same one) must not move the client on again.
  if (used != stub_) return;
  // A deadline moves on only to another scheduler (a lost host drops
  // packets: its calls time out instead of being refused), except for
  // Register's.
  if (deadline && on_deadline == OnDeadline::kNextScheduler && addresses_.size() < 2) return;
  const absl::Time now = absl::Now();
  if (now - renewed_ < absl::Milliseconds(100)) return;
  renewed_ = now;
  current_ = (current_ + 1) % addresses_.size();
  stub_ = rpc::Scheduler::NewStub(MakeChannel(addresses_[current_]));
}

void SchedulerClient::AddAddressesOf(const config::ClusterSection& cluster) {
  std::vector<std::string> addresses;
  if (!absl::EndsWith(cluster.scheduler_address(), ":0")) {
    addresses.push_back(cluster.scheduler_address());
  }
  addresses.insert(addresses.end(), cluster.scheduler_standbys().begin(),
                   cluster.scheduler_standbys().end());
  AddAddresses(addresses);
}

absl::StatusOr<std::unique_ptr<SchedulerClient>> SchedulerClient::ForFlag(
    const std::string& address, absl::Duration wait) {
  if (address.empty()) {
    return absl::InvalidArgumentError("--scheduler is required (host:port of the scheduler)");
  }
  for (absl::string_view one : absl::StrSplit(address, ',', absl::SkipWhitespace())) {
    std::string host;
    int port;
    if (absl::Status s = ParseHostPort(std::string(absl::StripAsciiWhitespace(one)), "--scheduler",
                                       &host, &port);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = ResolveHost(host, "--scheduler", wait); !s.ok()) return s;
  }
  return std::make_unique<SchedulerClient>(address);
}

uint64_t SchedulerClient::NewIncarnation() {
  return (static_cast<uint64_t>(std::random_device{}()) << 32) ^ static_cast<uint64_t>(getpid());
}

absl::StatusOr<rpc::RegisterResponse> SchedulerClient::Register(const rpc::RegisterRequest& req,
                                                                absl::Duration wait) {
  const absl::Time give_up = absl::Now() + wait;
  absl::Duration backoff = absl::Milliseconds(50);
  while (true) {
    grpc::ClientContext ctx;
    const absl::Duration left = give_up - absl::Now();
    ctx.set_deadline(DeadlineIn(std::max(absl::Milliseconds(100), std::min(left, rpc_timeout_))));
    // One scheduler: wait for it to come up, within the deadline. Several:
    // fail fast on one that does not listen, and try the next.
    bool several;
    {
      MutexLock lock(&mu_);
      several = addresses_.size() > 1;
    }
    ctx.set_wait_for_ready(!several);
    rpc::RegisterResponse resp;
    const auto stub = Stub();
    grpc::Status s = stub->Register(&ctx, req, &resp);
    if (s.ok()) return resp;
    const bool retry = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                       s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (!retry) return FromGrpcStatus(s);
    if (absl::Now() + backoff >= give_up) {
      std::string tried;
      {
        MutexLock lock(&mu_);
        tried = absl::StrJoin(addresses_, ", ");
      }
      return absl::UnavailableError(absl::StrCat("cannot reach the scheduler at ", tried,
                                                 " within ", absl::FormatDuration(wait), ": ",
                                                 s.error_message()));
    }
    Reconnect(s, stub, OnDeadline::kFreshChannel);
    absl::SleepFor(backoff);  // retry backoff, not synchronization
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
}

absl::StatusOr<rpc::ClusterView> SchedulerClient::Barrier(uint32_t node_id, const std::string& name,
                                                          absl::Duration lost_after) {
  auto resp = Vote(node_id, name, false, lost_after);
  if (!resp.ok()) return resp.status();
  return resp->view();
}

absl::StatusOr<rpc::BarrierResponse> SchedulerClient::Vote(uint32_t node_id,
                                                           const std::string& name, bool want_stop,
                                                           absl::Duration lost_after) {
  rpc::BarrierRequest req;
  req.set_node_id(node_id);
  req.set_name(name);
  req.set_want_stop(want_stop);
  const absl::Time start = absl::Now();
  absl::Time last_contact = start;
  while (true) {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(rpc_timeout_));
    rpc::BarrierResponse resp;
    const auto stub = Stub();
    grpc::Status s = stub->Barrier(&ctx, req, &resp);
    if (s.ok()) {
      if (barrier_observer_) barrier_observer_(name, absl::Now() - start);
      if (resp.view_omitted()) {
        auto whole = WholeView(resp.view());
        if (!whole.ok()) return whole.status();
        *resp.mutable_view() = std::move(*whole);
        resp.set_view_omitted(false);
      }
      return resp;
    }
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      // A held call does not prove the scheduler alive (a frozen one holds it
      // too): ask it something quick, and give up after lost_after.
      grpc::ClientContext probe;
      probe.set_deadline(DeadlineIn(std::min(rpc_timeout_, absl::Seconds(2))));
      rpc::ClusterView view;
      const auto probe_stub = Stub();
      const grpc::Status answered = probe_stub->GetView(&probe, rpc::GetViewRequest(), &view);
      if (answered.ok()) {
        last_contact = absl::Now();
        continue;
      }
      // Unanswered: with several schedulers, try the next.
      Reconnect(answered, probe_stub, OnDeadline::kNextScheduler);
    } else if (s.error_code() != grpc::StatusCode::UNAVAILABLE) {
      return FromGrpcStatus(s);
    }
    Reconnect(s, stub);
    if (absl::Now() - last_contact > lost_after) {
      return absl::UnavailableError(absl::StrCat("lost the scheduler at ", address(),
                                                 " while at barrier '", name,
                                                 "': ", s.error_message()));
    }
    absl::SleepFor(absl::Milliseconds(100));  // retry backoff
  }
}

absl::StatusOr<rpc::ClusterView> SchedulerClient::WholeView(const rpc::ClusterView& light) {
  {
    MutexLock lock(&mu_);
    if (last_view_ != nullptr && last_view_->version() == light.version()) return *last_view_;
  }
  // Not yet seen: the scheduler's current view (that version or newer).
  auto view = GetView();
  if (!view.ok()) return view.status();
  if (view->version() < light.version()) {
    return absl::InternalError(absl::StrCat("the scheduler sent view version ", view->version(),
                                            " after a barrier at version ", light.version()));
  }
  MutexLock lock(&mu_);
  last_view_ = std::make_shared<const rpc::ClusterView>(*view);
  return view;
}

absl::StatusOr<rpc::ClusterView> SchedulerClient::WaitForStart(uint32_t node_id,
                                                               absl::Duration lost_after) {
  auto view = Barrier(node_id, "start", lost_after);
  if (!view.ok()) return view;
  return Barrier(node_id, "ready", lost_after);
}

#define PS_SCHEDULER_UNARY(Method, Request, Response)  \
  grpc::ClientContext ctx;                             \
  ctx.set_deadline(DeadlineIn(rpc_timeout_));          \
  Response resp;                                       \
  const auto stub = Stub();                            \
  grpc::Status s = stub->Method(&ctx, Request, &resp); \
  if (!s.ok()) {                                       \
    Reconnect(s, stub, OnDeadline::kNextScheduler);    \
    return FromGrpcStatus(s);                          \
  }

absl::StatusOr<rpc::HeartbeatResponse> SchedulerClient::Heartbeat(const rpc::HeartbeatRequest& req,
                                                                  absl::Duration timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(std::min(timeout, rpc_timeout_)));
  rpc::HeartbeatResponse resp;
  const auto stub = Stub();
  grpc::Status s = stub->Heartbeat(&ctx, req, &resp);
  if (!s.ok()) {
    Reconnect(s, stub, OnDeadline::kNextScheduler);
    return FromGrpcStatus(s);
  }
  if (!resp.ticket().empty()) {
    // Our rank changed (a standby took one over): later calls speak for it.
    if (std::shared_ptr<CallCredentials> c = ProcessCredentials()) c->SetTicket(resp.ticket());
  }
  return resp;
}

absl::StatusOr<rpc::ClusterView> SchedulerClient::GetView() {
  // With several schedulers, a call that found one not leading (or gone)
  // tries the others for up to the RPC timeout: a barrier's view comes from
  // here, and a leader that is only slow moved the client to a standby.
  const absl::Time give_up = absl::Now() + rpc_timeout_;
  while (true) {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(std::max(absl::Milliseconds(100), give_up - absl::Now())));
    rpc::ClusterView resp;
    const auto stub = Stub();
    const grpc::Status s = stub->GetView(&ctx, rpc::GetViewRequest(), &resp);
    if (s.ok()) return resp;
    Reconnect(s, stub, OnDeadline::kNextScheduler);
    bool several;
    {
      MutexLock lock(&mu_);
      several = addresses_.size() > 1;
    }
    if (!several || s.error_code() != grpc::StatusCode::UNAVAILABLE ||
        absl::Now() + absl::Milliseconds(100) >= give_up) {
      return FromGrpcStatus(s);
    }
    absl::SleepFor(absl::Milliseconds(100));  // retry backoff: the next scheduler
  }
}

namespace {

// Calls `call` (one attempt, returning its grpc::Status) until it succeeds,
// fails otherwise than with UNAVAILABLE, or `window` has passed.
template <typename Call>
grpc::Status WithRetries(absl::Duration window, Call call) {
  const absl::Time give_up = absl::Now() + window;
  absl::Duration backoff = absl::Milliseconds(50);
  while (true) {
    grpc::Status s = call();
    if (s.ok() || s.error_code() != grpc::StatusCode::UNAVAILABLE || absl::Now() + backoff >= give_up) {
      return s;
    }
    absl::SleepFor(backoff);  // retry backoff while the scheduler is away
    backoff = std::min(backoff * 2, absl::Seconds(1));
  }
}

}  // namespace

absl::StatusOr<rpc::NextShardResponse> SchedulerClient::NextShard(const rpc::NextShardRequest& in) {
  rpc::NextShardRequest req = in;
  if (req.request_id() == 0) req.set_request_id(next_request_id_.fetch_add(1));
  rpc::NextShardResponse resp;
  grpc::Status s = WithRetries(retry_window_, [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(rpc_timeout_));
    const auto stub = Stub();
    grpc::Status status = stub->NextShard(&ctx, req, &resp);
    Reconnect(status, stub, OnDeadline::kNextScheduler);
    return status;
  });
  if (!s.ok()) return FromGrpcStatus(s);
  return resp;
}

absl::Status SchedulerClient::SubmitEval(const rpc::SubmitEvalRequest& req) {
  rpc::SubmitEvalResponse resp;
  grpc::Status s = WithRetries(retry_window_, [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(rpc_timeout_));
    const auto stub = Stub();
    grpc::Status status = stub->SubmitEval(&ctx, req, &resp);
    Reconnect(status, stub, OnDeadline::kNextScheduler);
    return status;
  });
  if (!s.ok()) return FromGrpcStatus(s);
  return absl::OkStatus();
}

absl::Status SchedulerClient::Fail(uint32_t node_id, const std::string& message) {
  rpc::FailRequest req;
  req.set_node_id(node_id);
  // Protobuf refuses to send a string that is not UTF-8 (a data file's bytes
  // in an error message); the scheduler must still hear why.
  req.set_message(ValidUtf8(message.size() > 64 * 1024 ? message.substr(0, 64 * 1024) : message));
  PS_SCHEDULER_UNARY(Fail, req, rpc::FailResponse);
  return absl::OkStatus();
}

absl::Status SchedulerClient::Leave(uint32_t node_id) {
  rpc::LeaveRequest req;
  req.set_node_id(node_id);
  PS_SCHEDULER_UNARY(Leave, req, rpc::LeaveResponse);
  return absl::OkStatus();
}

absl::Status SchedulerClient::Suspect(uint32_t node_id, int32_t rank, const std::string& error,
                                      absl::Duration failing_for) {
  rpc::SuspectRequest req;
  req.set_node_id(node_id);
  req.set_server_rank(rank);
  req.set_error(ValidUtf8(error));
  req.set_failing_ms(static_cast<uint64_t>(
      std::max<int64_t>(0, absl::ToInt64Milliseconds(failing_for))));
  // Advisory, and sent from a retry loop: a slow or unreachable scheduler
  // must not hold the retries up for long.
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(std::min(rpc_timeout_, absl::Seconds(1))));
  rpc::SuspectResponse resp;
  const auto stub = Stub();
  grpc::Status s = stub->Suspect(&ctx, req, &resp);
  if (!s.ok()) {
    Reconnect(s, stub);
    return FromGrpcStatus(s);
  }
  return absl::OkStatus();
}

#undef PS_SCHEDULER_UNARY

}  // namespace ps

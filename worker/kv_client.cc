#include "worker/kv_client.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/auth.h"
#include "common/partitioning.h"
#include "common/rpc.h"
#include "spdlog/spdlog.h"

namespace ps {
namespace {

// Completion state shared with gRPC callbacks; heap-held so a late callback
// never touches a dead stack frame.
struct Pending {
  Mutex mu;
  CondVar cv;
  size_t left ABSL_GUARDED_BY(mu) = 0;
};

template <typename Req, typename Resp>
struct Call {
  int server = 0;
  std::vector<int> partitions;
  Req req;
  Resp resp;
  std::unique_ptr<grpc::ClientContext> ctx;
  absl::Time deadline;
  // Set when the call went over the TCP data plane instead of gRPC.
  std::shared_ptr<DataConnection> data;
  uint64_t data_id = 0;
  grpc::Status status;
  // The float32 values of req's slices (each counts its own in raw_values),
  // in slice order: spans of the caller's tables or of `staging`. The data
  // plane sends them from there; a gRPC call first moves them into req.
  frame::ValueSpans tail;
  std::vector<float> staging;
};

// Puts a call's tail into its request's slices (for gRPC, which has no
// split bodies).
template <typename Req>
void JoinTail(Req* req, frame::ValueSpans* tail) {
  size_t next = 0;
  for (rpc::TableSlice& slice : *req->mutable_slices()) {
    size_t left = slice.raw_values();
    slice.clear_raw_values();
    while (left > 0 && next < tail->size()) {
      const absl::Span<const float> span = (*tail)[next++];
      slice.mutable_values()->Add(span.begin(), span.end());
      left -= std::min(left, span.size());
    }
  }
  tail->clear();
}

// Starts `c` on `data` if there is one, else through `grpc_start`.
template <typename C, typename Done, typename GrpcStart>
void StartOn(std::shared_ptr<DataConnection> data, frame::Kind kind, C* c, Done done,
             GrpcStart grpc_start) {
  if (data == nullptr) {
    JoinTail(&c->req, &c->tail);
    return grpc_start(std::move(done));
  }
  c->data = std::move(data);
  c->data_id = c->data->Start(kind, c->req, c->tail, &c->resp, c->deadline, std::move(done));
}

// Starts every call with `start(call, done)` and waits until all finished.
// Each call carries a deadline, so gRPC calls `done` for every call. Every
// 100 ms, calls for which `gone(call)` says their server left the map are
// cancelled (a frozen server would otherwise hold them to their deadline).
template <typename C, typename Start, typename Gone>
void RunAll(const std::vector<C*>& calls, absl::Duration timeout, Start start, Gone gone) {
  auto pending = std::make_shared<Pending>();
  {
    MutexLock lock(&pending->mu);
    pending->left = calls.size();
  }
  // Credentials go on each context, not through a channel interceptor: with
  // one, gRPC fills the response on its own threads through code TSAN cannot
  // follow (the suppression above covers this hand-off only).
  const std::shared_ptr<CallCredentials> credentials = ProcessCredentials();
  for (C* c : calls) {
    c->ctx = std::make_unique<grpc::ClientContext>();
    c->deadline = absl::Now() + timeout;
    c->ctx->set_deadline(absl::ToChronoTime(c->deadline));
    if (credentials != nullptr) credentials->AddTo(c->ctx.get());
    start(c, [pending, c](grpc::Status s) {
      c->status = std::move(s);
      MutexLock lock(&pending->mu);
      if (--pending->left == 0) pending->cv.Signal();
    });
  }
  std::vector<bool> cancelled(calls.size(), false);
  while (true) {
    {
      MutexLock lock(&pending->mu);
      if (pending->left == 0) return;
      pending->cv.WaitWithTimeout(&pending->mu, absl::Milliseconds(100));  // poll period for `gone`
      if (pending->left == 0) return;
    }
    const absl::Time now = absl::Now();
    for (size_t i = 0; i < calls.size(); ++i) {
      C* c = calls[i];
      if (cancelled[i]) continue;
      if (gone(c)) {
        cancelled[i] = true;
        c->ctx->TryCancel();
        if (c->data != nullptr) {
          c->data->Cancel(c->data_id,
                          grpc::Status(grpc::StatusCode::CANCELLED, "the server left the map"));
        }
      } else if (c->data != nullptr && now >= c->deadline) {
        // gRPC enforces its calls' deadlines; the data plane's are ours.
        cancelled[i] = true;
        c->data->Cancel(c->data_id, grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                                 "Deadline Exceeded (data plane)"));
      }
    }
  }
}

// Worth another attempt, after refreshing the map: the server is down or
// slow, was cut off (cancelled), or no longer holds the partitions.
bool Retryable(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
         s.error_code() == grpc::StatusCode::CANCELLED ||
         s.error_code() == grpc::StatusCode::ABORTED ||
         s.error_code() == grpc::StatusCode::FAILED_PRECONDITION;
}

// A refusal that a newer map cures: the server is behind the request's map
// (it is fetching the newer one now), or the client's map is behind the
// server's (the partition moved). A server answered; nothing is down.
bool StaleView(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::ABORTED ||
         s.error_code() == grpc::StatusCode::FAILED_PRECONDITION;
}

// The wait before a retry. A server that did not answer (`outage` counts
// such rounds; -1 if every part of this round was answered) backs off
// exponentially, 20 ms to 500 ms. Refusals that a newer map cures are
// retried after a few ms: a drain or a rebalance publishes one map per
// moved partition, and a client that doubled its wait at each of them
// trailed the moves by a second (a stall while nothing was down). After
// kFastRounds of those in one call the refusal is probably not going away
// with the next map (a worker the map no longer lists): exponential again.
constexpr int kFastRounds = 8;
absl::Duration RetryBackoff(int outage, int view_round) {
  auto exponential = [](int n) {
    return std::min(absl::Milliseconds(20) * (1 << std::min(n, 6)), absl::Milliseconds(500));
  };
  if (outage >= 0) return exponential(outage);
  if (view_round < kFastRounds) return absl::Milliseconds(5 * (1 + view_round));
  return exponential(view_round - kFastRounds);
}

}  // namespace

// Keys grouped by partition: refs are (input table index, key index).
struct KvClient::Routed {
  struct Part {
    std::vector<std::pair<uint32_t, uint32_t>> refs;
    size_t bytes = 0;
  };
  std::map<int, Part> parts;
};

KvClient::KvClient(Options options, std::vector<TableSpec> tables, ViewSource refresh_view)
    : options_(options),
      tables_(std::move(tables)),
      refresh_view_(std::move(refresh_view)),
      compressor_(options_.compression) {}

void KvClient::SetView(const rpc::ClusterView& view) {
  MutexLock lock(&mu_);
  if (view_ != nullptr && view.version() <= view_->version()) return;
  std::vector<std::shared_ptr<rpc::ParameterServer::Stub>> stubs;
  std::vector<std::shared_ptr<DataConnection>> data;
  for (int s = 0; s < view.servers_size(); ++s) {
    const bool same = view_ != nullptr && s < view_->servers_size() &&
                      s < static_cast<int>(stubs_.size()) &&
                      view_->servers(s).address() == view.servers(s).address();
    stubs.push_back(same ? std::move(stubs_[s])
                         : rpc::ParameterServer::NewStub(MakeChannel(view.servers(s).address(), nullptr)));
    const std::string& address = view.servers(s).data_address();
    if (address.empty() || !options_.data_plane) {
      data.push_back(nullptr);
    } else if (s < static_cast<int>(data_.size()) && data_[s] != nullptr &&
               data_[s]->address() == address) {
      data.push_back(std::move(data_[s]));
    } else {
      data.push_back(std::make_shared<DataConnection>(address));
    }
  }
  stubs_ = std::move(stubs);
  data_ = std::move(data);
  view_ = std::make_shared<const rpc::ClusterView>(view);
  auto owned = std::make_shared<Owned>(view.servers_size());
  for (int p = 0; p < view.partition_owner_size(); ++p) {
    const int s = view.partition_owner(p);
    if (s >= 0 && s < static_cast<int>(owned->size())) (*owned)[s].push_back(p);
  }
  owned_ = std::move(owned);
}

std::shared_ptr<const rpc::ClusterView> KvClient::CurrentView() {
  MutexLock lock(&mu_);
  return view_;
}

std::pair<std::shared_ptr<const rpc::ClusterView>, std::shared_ptr<const KvClient::Owned>>
KvClient::CurrentViewAndOwned() {
  MutexLock lock(&mu_);
  return {view_, owned_};
}

std::shared_ptr<rpc::ParameterServer::Stub> KvClient::Stub(int server) {
  MutexLock lock(&mu_);
  return stubs_[server];
}

bool KvClient::Answers(int server) {
  std::shared_ptr<rpc::ParameterServer::Stub> stub = Stub(server);
  if (stub == nullptr) return false;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(500)));
  if (const std::shared_ptr<CallCredentials> credentials = ProcessCredentials()) {
    credentials->AddTo(&ctx);
  }
  rpc::WorkerClockRequest req;
  req.set_worker(options_.rank);
  rpc::WorkerClockResponse resp;
  const grpc::Status s = stub->WorkerClock(&ctx, req, &resp);
  // Any answer, even a refusal, means the server is there.
  return s.error_code() != grpc::StatusCode::UNAVAILABLE &&
         s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED;
}

std::shared_ptr<DataConnection> KvClient::Data(int server) {
  MutexLock lock(&mu_);
  return server < static_cast<int>(data_.size()) ? data_[server] : nullptr;
}

absl::Status KvClient::RefreshView() {
  auto view = refresh_view_();
  if (!view.ok()) return view.status();
  SetView(*view);
  return absl::OkStatus();
}

absl::StatusOr<KvClient::Routed> KvClient::Route(const std::vector<TableKeys>& tables,
                                                 bool with_values) {
  // Keys are grouped through a per-thread partition -> group table, and the
  // map is built from the groups at the end, one insertion per partition (a
  // map lookup per key was a tenth of a sparse push of 10,000 keys).
  thread_local std::vector<int32_t> group_of;
  if (group_of.size() < static_cast<size_t>(options_.num_partitions)) {
    group_of.resize(options_.num_partitions, -1);
  }
  std::vector<std::pair<int, Routed::Part>> groups;
  struct Reset {  // leaves the table clean however this returns
    std::vector<std::pair<int, Routed::Part>>& groups;
    ~Reset() {
      for (const auto& [p, part] : groups) group_of[p] = -1;
    }
  } reset{groups};
  for (uint32_t t = 0; t < tables.size(); ++t) {
    const TableKeys& in = tables[t];
    if (in.table >= tables_.size()) return absl::InvalidArgumentError(absl::StrCat("unknown table ", in.table));
    const int dim = tables_[in.table].dim;
    if (with_values && in.values.size() != in.keys.size() * dim) {
      return absl::InvalidArgumentError(absl::StrCat("table '", tables_[in.table].name, "': ",
                                                     in.keys.size(), " keys but ", in.values.size(),
                                                     " values"));
    }
    for (uint32_t i = 0; i < in.keys.size(); ++i) {
      const int p = PartitionOf(in.table, in.keys[i], options_.num_partitions);
      int32_t& g = group_of[p];
      if (g < 0) {
        g = static_cast<int32_t>(groups.size());
        groups.emplace_back(p, Routed::Part());
      }
      Routed::Part& part = groups[g].second;
      part.refs.emplace_back(t, i);
      // A pull's reply carries the values, so its size counts them too.
      part.bytes += sizeof(uint64_t) + dim * sizeof(float);
    }
  }
  Routed routed;
  for (auto& [p, part] : groups) routed.parts.emplace(p, std::move(part));
  return routed;
}

namespace {

// Groups `partitions` by primary and cuts each server's share into requests
// of at most max_bytes (whole partitions).
struct Plan {
  int server;
  std::vector<int> partitions;
};
// (Vectors by server rather than maps: a clocked push plans every partition
// of the job, thousands of them.)
std::vector<Plan> PlanCalls(const std::vector<int>& partitions, const std::map<int, size_t>& bytes,
                            const rpc::ClusterView& view, size_t max_bytes) {
  // Indexed by server + 1: an owner of -1 (none in this map) gets a call
  // that fails and is retried, as any other server's.
  int num_servers = 0;
  for (int p : partitions) num_servers = std::max(num_servers, view.partition_owner(p) + 1);
  std::vector<std::vector<std::vector<int>>> chunks(num_servers + 1);  // server + 1 -> requests
  std::vector<size_t> fill(num_servers + 1, 0);
  for (int p : partitions) {
    const int s = std::max(-1, view.partition_owner(p)) + 1;
    auto& list = chunks[s];
    size_t n = 0;
    if (!bytes.empty()) {
      auto b = bytes.find(p);
      if (b != bytes.end()) n = b->second;
    }
    if (list.empty() || (fill[s] + n > max_bytes && !list.back().empty())) {
      list.emplace_back();
      fill[s] = 0;
    }
    list.back().push_back(p);
    fill[s] += n;
  }
  std::vector<Plan> plans;
  for (int s = 0; s <= num_servers; ++s) {
    for (auto& l : chunks[s]) plans.push_back(Plan{s - 1, std::move(l)});
  }
  return plans;
}

}  // namespace

bool KvClient::ServerGone(int server) {
  MutexLock lock(&mu_);
  if (view_ == nullptr || server >= view_->servers_size()) return false;
  if (view_->servers(server).dead()) return true;
  for (int owner : view_->partition_owner()) {
    if (owner == server) return false;
  }
  return true;  // primary of nothing any more
}

void KvClient::MaybeRefresh(uint64_t version) {
  {
    MutexLock lock(&mu_);
    if (view_ != nullptr && view_->version() >= version) return;
  }
  (void)RefreshView();
}

bool KvClient::KeepTrying(int attempt, absl::Time first_failure) const {
  return attempt < options_.max_retries || absl::Now() - first_failure < options_.failover_window;
}

template <typename CallT, typename Build, typename Start, typename OnOk>
absl::Status KvClient::RunWithRetries(const char* what, std::vector<int> partitions, Build build,
                                      Start start, OnOk on_ok, bool retry,
                                      const std::atomic<bool>* cancel) {
  absl::Time first_failure = absl::InfiniteFuture();
  grpc::Status last;
  std::map<int, absl::Time> failing_since;  // per server: its first failure in this call
  int outages = 0;      // rounds in which a server did not answer
  int view_rounds = 0;  // rounds refused only because a map was behind
  for (int attempt = 0;; ++attempt) {
    std::vector<std::unique_ptr<CallT>> calls = build(partitions);
    std::vector<CallT*> raw;
    for (auto& c : calls) raw.push_back(c.get());
    RunAll(raw, options_.rpc_timeout, start, [this, cancel](CallT* c) {
      return (cancel != nullptr && cancel->load(std::memory_order_acquire)) ||
             ServerGone(c->server);
    });
    partitions.clear();
    bool unanswered = false;
    std::set<int> reported;  // this round
    for (auto& c : calls) {
      if (c->status.ok()) {
        failing_since.erase(c->server);
        if (absl::Status s = on_ok(*c); !s.ok()) return s;
        continue;
      }
      last = c->status;
      if (!Retryable(c->status)) {
        return absl::Status(static_cast<absl::StatusCode>(c->status.error_code()),
                            absl::StrCat(what, " server ", c->server, ": ", c->status.error_message()));
      }
      partitions.insert(partitions.end(), c->partitions.begin(), c->partitions.end());
      const bool unreachable = c->status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                               c->status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
      unanswered |= !StaleView(c->status);
      // Every round: the scheduler fails over a server a worker keeps
      // failing to reach (while the scheduler can) after a heartbeat timeout.
      if (unreachable && retry && options_.report_unreachable &&
          reported.insert(c->server).second) {
        const absl::Time since = failing_since.try_emplace(c->server, absl::Now()).first->second;
        if (!Answers(c->server)) {
          options_.report_unreachable(c->server, c->status.error_message(), absl::Now() - since);
        }
      }
    }
    if (partitions.empty()) {
      if (attempt > 0) {
        spdlog::info("{}: went through after {} attempts, {} after the first failure", what,
                     attempt + 1, absl::FormatDuration(absl::Now() - first_failure));
      }
      return absl::OkStatus();
    }
    first_failure = std::min(first_failure, absl::Now());
    if (!retry) {
      return absl::UnavailableError(absl::StrCat(what, ": ", partitions.size(),
                                                 " partitions failed: ", last.error_message()));
    }
    if (!KeepTrying(attempt, first_failure)) {
      return absl::UnavailableError(absl::StrCat(what, " failed after ", attempt + 1, " attempts over ",
                                                 absl::FormatDuration(absl::Now() - first_failure),
                                                 ": ", last.error_message()));
    }
    spdlog::warn("{}: {} partitions failed ({}); retrying", what, partitions.size(),
                 last.error_message());
    absl::SleepFor(RetryBackoff(unanswered ? outages++ : -1, view_rounds++));
    // The map may have moved on (a failover): re-route with the newest one.
    if (absl::Status s = RefreshView(); !s.ok()) {
      spdlog::warn("{}: could not refresh the map: {}", what, std::string(s.message()));
    }
  }
}

void KvClient::Observe(bool push, const std::vector<TableKeys>& tables, absl::Time start,
                       const absl::Status& s) const {
  uint64_t bytes = 0;
  for (const TableKeys& t : tables)
    bytes += t.keys.size() * sizeof(uint64_t) + t.values.size() * sizeof(float);
  options_.observe(push, bytes, absl::Now() - start, s.ok());
}

absl::Status KvClient::Push(const std::vector<TableKeys>& tables, std::optional<int64_t> clock,
                            uint64_t num_examples, float lr_scale) {
  const absl::Time start = absl::Now();
  uint64_t wire_bytes = 0;
  absl::Status s = DoPush(tables, clock, num_examples, lr_scale, &wire_bytes);
  if (options_.observe) options_.observe(/*push=*/true, wire_bytes, absl::Now() - start, s.ok());
  return s;
}

uint64_t KvClient::map_version() {
  MutexLock lock(&mu_);
  return view_ == nullptr ? 0 : view_->version();
}

absl::Status KvClient::PullAhead(std::vector<TableKeys>* tables, int64_t clock, int64_t acked_clock,
                                 uint64_t map_version, const std::atomic<bool>* cancel) {
  if (map_version == 0) return absl::FailedPreconditionError("pull ahead without a map");
  const absl::Time start = absl::Now();
  Ahead ahead{map_version, std::min(acked_clock, clock), cancel};
  absl::Status s = DoPull(tables, clock, &ahead);
  // A failed one is redone as an ordinary pull, which is what counts.
  if (options_.observe && s.ok()) Observe(/*push=*/false, *tables, start, s);
  return s;
}

absl::Status KvClient::Pull(std::vector<TableKeys>* tables, std::optional<int64_t> clock) {
  if (!options_.observe) return DoPull(tables, clock, nullptr);
  const absl::Time start = absl::Now();
  absl::Status s = DoPull(tables, clock, nullptr);
  Observe(/*push=*/false, *tables, start, s);
  return s;
}

absl::Status KvClient::DoPush(const std::vector<TableKeys>& tables, std::optional<int64_t> clock,
                              uint64_t num_examples, float lr_scale, uint64_t* wire_bytes) {
  auto routed = Route(tables, /*with_values=*/true);
  if (!routed.ok()) return routed.status();
  const uint64_t seq = ++seq_;
  uint64_t raw_bytes = 0;
  for (const TableKeys& t : tables) {
    raw_bytes += t.keys.size() * sizeof(uint64_t) + t.values.size() * sizeof(float);
  }
  push_raw_bytes_.fetch_add(raw_bytes, std::memory_order_relaxed);
  // Encoded once, before the first attempt: retries send the same bytes, and
  // error feedback counts each push once.
  std::optional<GradientCompressor::Push> encoded;
  if (compressor_.enabled()) encoded = compressor_.Prepare(tables);
  using PushCall = Call<rpc::PushRequest, rpc::PushResponse>;

  // Same seq on every attempt: a part that was applied already is not applied again.
  auto build = [&](const std::vector<int>& partitions) {
    std::map<int, size_t> bytes;  // of the parts with keys (PlanCalls looks up only `partitions`)
    for (const auto& [p, part] : routed->parts) bytes.emplace_hint(bytes.end(), p, part.bytes);
    const auto [current, owned] = CurrentViewAndOwned();
    const rpc::ClusterView& view = *current;
    const int num_servers = static_cast<int>(owned->size());
    std::vector<Plan> plans;
    // Every partition of the job (a clocked push's first attempt): one
    // request per server from its Owned list, unless its keys are too many
    // for one (a job of 8,192 partitions planned them one by one per push).
    std::vector<size_t> server_bytes(num_servers, 0);
    bool whole = clock.has_value() &&
                 static_cast<int>(partitions.size()) == options_.num_partitions &&
                 view.partition_owner_size() == options_.num_partitions;
    for (const auto& [p, part] : routed->parts) {
      const int s = p < view.partition_owner_size() ? view.partition_owner(p) : -1;
      if (s < 0 || s >= num_servers) {
        whole = false;  // an owner the view does not list: planned one by one, and retried
      } else {
        server_bytes[s] += part.bytes;
      }
    }
    size_t covered = 0;
    for (int s = 0; s < num_servers && whole; ++s) covered += (*owned)[s].size();
    whole &= covered == partitions.size();
    if (whole) {
      for (int s = 0; s < num_servers; ++s) {
        if ((*owned)[s].empty()) continue;
        if (server_bytes[s] <= options_.max_chunk_bytes) {
          plans.push_back(Plan{s, (*owned)[s]});
        } else {
          for (Plan& plan : PlanCalls((*owned)[s], bytes, view, options_.max_chunk_bytes)) {
            plans.push_back(std::move(plan));
          }
        }
      }
    } else {
      plans = PlanCalls(partitions, bytes, view, options_.max_chunk_bytes);
    }
    // A clocked request that covers all its server's partitions says so
    // instead of listing them.
    std::vector<int> requests(num_servers, 0);  // per server
    for (const Plan& plan : plans) {
      if (plan.server >= 0 && plan.server < num_servers) ++requests[plan.server];
    }
    std::vector<std::unique_ptr<PushCall>> out;
    for (Plan& plan : plans) {
      auto c = std::make_unique<PushCall>();
      c->server = plan.server;
      const bool all = clock.has_value() && plan.server >= 0 && plan.server < num_servers &&
                       requests[plan.server] == 1 &&
                       (*owned)[plan.server].size() == plan.partitions.size();
      c->partitions = std::move(plan.partitions);
      rpc::PushRequest& req = c->req;
      req.set_worker(options_.rank);
      req.set_incarnation(options_.incarnation);
      req.set_seq(seq);
      if (clock.has_value()) req.set_clock(*clock);
      req.set_map_version(view.version());
      req.set_num_examples(num_examples);
      req.set_lr_scale(lr_scale);
      if (all) req.set_all_partitions(true);
      std::vector<rpc::TableSlice*> slices(tables.size(), nullptr);
      std::vector<size_t> order;  // t of each slice of req
      // Per table, its float32 rows for this request (adjacent ones merged).
      std::vector<frame::ValueSpans> rows(tables.size());
      auto add_part = [&](const Routed::Part& part) {
        for (const auto& [t, i] : part.refs) {
          if (slices[t] == nullptr) {
            slices[t] = req.add_slices();
            slices[t]->set_table(tables[t].table);
            order.push_back(t);
          }
          const size_t dim = tables_[tables[t].table].dim;
          slices[t]->add_keys(tables[t].keys[i]);
          if (encoded.has_value() && encoded->encoding(t) != rpc::FLOAT32) {
            encoded->AppendRow(t, i, static_cast<int>(dim), slices[t]);
            continue;
          }
          const float* made = encoded.has_value() ? encoded->values(t) : nullptr;
          const float* v = (made != nullptr ? made : tables[t].values.data()) + i * dim;
          frame::ValueSpans& spans = rows[t];
          if (!spans.empty() && spans.back().data() + spans.back().size() == v) {
            spans.back() = absl::MakeConstSpan(spans.back().data(), spans.back().size() + dim);
          } else {
            spans.emplace_back(v, dim);
          }
        }
      };
      if (all) {
        // The same keys as below (every partition of the server is in the plan).
        for (const auto& [p, part] : routed->parts) {
          if (view.partition_owner(p) == c->server) add_part(part);
        }
      } else {
        for (int p : c->partitions) {
          if (clock.has_value()) req.add_partitions(p);
          auto it = routed->parts.find(p);
          if (it != routed->parts.end()) add_part(it->second);
        }
      }
      for (rpc::TableSlice* slice : slices) {
        if (slice != nullptr) GradientCompressor::Push::FinishSlice(slice);
      }
      // The tail: each slice's rows as they lie in the caller's tables, or
      // copied together when they are many small pieces (a sendmsg entry
      // per row of a scattered table costs more than the copy).
      uint64_t tail_values = 0;
      size_t staged = 0;
      auto stage = [](const frame::ValueSpans& spans, size_t n) {
        return spans.size() > 16 && n * sizeof(float) / spans.size() < 4096;
      };
      std::vector<size_t> counts(tables.size(), 0);
      for (size_t t : order) {
        for (const auto& span : rows[t]) counts[t] += span.size();
        if (stage(rows[t], counts[t])) staged += counts[t];
      }
      c->staging.reserve(staged);
      for (size_t t : order) {
        if (rows[t].empty()) continue;
        slices[t]->set_raw_values(static_cast<uint32_t>(counts[t]));
        tail_values += counts[t];
        if (stage(rows[t], counts[t])) {
          const size_t at = c->staging.size();
          for (const auto& span : rows[t]) {
            c->staging.insert(c->staging.end(), span.begin(), span.end());
          }
          c->tail.emplace_back(c->staging.data() + at, counts[t]);
        } else {
          c->tail.insert(c->tail.end(), rows[t].begin(), rows[t].end());
        }
      }
      const uint64_t size = req.ByteSizeLong() + tail_values * sizeof(float);
      *wire_bytes += size;
      push_wire_bytes_.fetch_add(size, std::memory_order_relaxed);
      out.push_back(std::move(c));
    }
    return out;
  };
  // With a clock every partition is covered (most by an empty part), so each
  // partition counts this worker's clock.
  std::vector<int> partitions;
  if (clock.has_value()) {
    for (int p = 0; p < options_.num_partitions; ++p) partitions.push_back(p);
  } else {
    for (const auto& [p, part] : routed->parts) partitions.push_back(p);
  }
  return RunWithRetries<PushCall>(
      "push", std::move(partitions), build,
      [this](PushCall* c, auto done) {
        StartOn(Data(c->server), frame::Kind::kPush, c, std::move(done), [&](auto d) {
          Stub(c->server)->async()->Push(c->ctx.get(), &c->req, &c->resp, std::move(d));
        });
      },
      [](const PushCall&) { return absl::OkStatus(); });
}

absl::Status KvClient::DoPull(std::vector<TableKeys>* tables, std::optional<int64_t> clock,
                              const Ahead* ahead) {
  // A pull ahead is planned with the map its caller's push started from.
  std::shared_ptr<const rpc::ClusterView> pinned;
  if (ahead != nullptr) {
    pinned = CurrentView();
    if (pinned == nullptr || pinned->version() != ahead->map_version) {
      return absl::FailedPreconditionError(absl::StrCat("pull ahead: the map moved from version ",
                                                        ahead->map_version, " to ",
                                                        pinned == nullptr ? 0 : pinned->version()));
    }
  }
  auto routed = Route(*tables, /*with_values=*/false);
  if (!routed.ok()) return routed.status();
  // Sized, not cleared: a successful pull writes every value (scatter), and
  // a caller pulling into the same arrays again is spared a pass over them.
  for (TableKeys& t : *tables) t.values.resize(t.keys.size() * tables_[t.table].dim);
  using PullCall = Call<rpc::PullRequest, rpc::PullResponse>;

  auto build = [&](const std::vector<int>& partitions) {
    std::map<int, size_t> bytes;
    for (int p : partitions) bytes[p] = routed->parts[p].bytes;
    const std::shared_ptr<const rpc::ClusterView> current =
        ahead != nullptr ? pinned : CurrentView();
    const rpc::ClusterView& view = *current;
    std::vector<std::unique_ptr<PullCall>> out;
    for (Plan& plan : PlanCalls(partitions, bytes, view, options_.max_chunk_bytes)) {
      auto c = std::make_unique<PullCall>();
      c->server = plan.server;
      c->partitions = std::move(plan.partitions);
      c->req.set_worker(options_.rank);
      if (clock.has_value()) c->req.set_clock(*clock);
      if (clock.has_value() && ahead != nullptr && ahead->acked_clock < *clock) {
        c->req.set_acked_clock(ahead->acked_clock);
      }
      c->req.set_map_version(view.version());
      std::vector<rpc::TableSlice*> slices(tables->size(), nullptr);
      for (int p : c->partitions) {
        for (const auto& [t, i] : routed->parts[p].refs) {
          if (slices[t] == nullptr) {
            slices[t] = c->req.add_slices();
            slices[t]->set_table((*tables)[t].table);
          }
          slices[t]->add_keys((*tables)[t].keys[i]);
        }
      }
      out.push_back(std::move(c));
    }
    return out;
  };
  // Copies a call's reply into the callers' arrays, walking the same order
  // the request was built in.
  auto scatter = [&](const PullCall& c) -> absl::Status {
    std::vector<int> slice_of(tables->size(), -1);
    int next = 0;
    for (int p : c.partitions) {
      for (const auto& [t, i] : routed->parts[p].refs) {
        if (slice_of[t] < 0) slice_of[t] = next++;
      }
    }
    if (c.resp.slices_size() != next) return absl::InternalError("pull reply has the wrong slices");
    std::vector<int> pos(tables->size(), 0);
    for (int p : c.partitions) {
      for (const auto& [t, i] : routed->parts[p].refs) {
        TableKeys& out = (*tables)[t];
        const int dim = tables_[out.table].dim;
        const rpc::TableSlice& s = c.resp.slices(slice_of[t]);
        const int k = pos[t]++;
        if ((k + 1) * dim > s.values_size()) return absl::InternalError("pull reply is short");
        std::copy(s.values().begin() + k * dim, s.values().begin() + (k + 1) * dim,
                  out.values.begin() + static_cast<size_t>(i) * dim);
      }
    }
    return absl::OkStatus();
  };

  std::vector<int> partitions;
  for (const auto& [p, part] : routed->parts) partitions.push_back(p);
  return RunWithRetries<PullCall>(
      "pull", std::move(partitions), build,
      [this](PullCall* c, auto done) {
        StartOn(Data(c->server), frame::Kind::kPull, c, std::move(done), [&](auto d) {
          Stub(c->server)->async()->Pull(c->ctx.get(), &c->req, &c->resp, std::move(d));
        });
      },
      scatter, /*retry=*/ahead == nullptr, ahead != nullptr ? ahead->cancel : nullptr);
}

absl::StatusOr<int64_t> KvClient::ResumeClock() {
  using ClockCall = Call<rpc::WorkerClockRequest, rpc::WorkerClockResponse>;
  int64_t clock = 0;
  // Like a tick, a failed round goes again to every primary of the newest map.
  auto build = [&](const std::vector<int>&) {
    clock = std::numeric_limits<int64_t>::max();
    const std::shared_ptr<const rpc::ClusterView> view = CurrentView();
    std::set<int> servers(view->partition_owner().begin(), view->partition_owner().end());
    if (servers.empty()) clock = 0;
    std::vector<std::unique_ptr<ClockCall>> calls;
    for (int s : servers) {
      auto c = std::make_unique<ClockCall>();
      c->server = s;
      c->partitions = {s};
      c->req.set_worker(options_.rank);
      calls.push_back(std::move(c));
    }
    return calls;
  };
  absl::Status status = RunWithRetries<ClockCall>(
      "worker clock", {0}, build,
      [this](ClockCall* c, auto done) {
        Stub(c->server)->async()->WorkerClock(c->ctx.get(), &c->req, &c->resp, std::move(done));
      },
      [&clock](const ClockCall& c) {
        clock = std::min(clock, c.resp.next_clock());
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  return clock;
}

absl::Status KvClient::Tick(int64_t clock) {
  using TickCall = Call<rpc::TickRequest, rpc::TickResponse>;
  // A tick is idempotent, so after a failure it goes again to every primary
  // of the newest map (partitions may have moved to a server that took it
  // already): the "partitions" retried are a token for "all".
  auto build = [&](const std::vector<int>&) {
    const std::shared_ptr<const rpc::ClusterView> view = CurrentView();
    std::set<int> servers(view->partition_owner().begin(), view->partition_owner().end());
    std::vector<std::unique_ptr<TickCall>> calls;
    for (int s : servers) {
      auto c = std::make_unique<TickCall>();
      c->server = s;
      c->partitions = {s};
      c->req.set_worker(options_.rank);
      c->req.set_clock(clock);
      c->req.set_map_version(view->version());
      calls.push_back(std::move(c));
    }
    return calls;
  };
  return RunWithRetries<TickCall>(
      "tick", {0}, build,
      [this](TickCall* c, auto done) {
        Stub(c->server)->async()->Tick(c->ctx.get(), &c->req, &c->resp, std::move(done));
      },
      [](const TickCall&) { return absl::OkStatus(); });
}

}  // namespace ps

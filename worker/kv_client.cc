#include "worker/kv_client.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
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
  grpc::Status status;
};

// Starts every call with `start(call, done)` and waits until all finished.
// Each call carries a deadline, so gRPC calls `done` for every call.
template <typename C, typename Start>
void RunAll(const std::vector<C*>& calls, absl::Duration timeout, Start start) {
  auto pending = std::make_shared<Pending>();
  {
    MutexLock lock(&pending->mu);
    pending->left = calls.size();
  }
  for (C* c : calls) {
    c->ctx = std::make_unique<grpc::ClientContext>();
    c->ctx->set_deadline(DeadlineIn(timeout));
    start(c, [pending, c](grpc::Status s) {
      c->status = std::move(s);
      MutexLock lock(&pending->mu);
      if (--pending->left == 0) pending->cv.Signal();
    });
  }
  MutexLock lock(&pending->mu);
  while (pending->left > 0) pending->cv.Wait(&pending->mu);
}

bool Retryable(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
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
    : options_(options), tables_(std::move(tables)), refresh_view_(std::move(refresh_view)) {}

void KvClient::SetView(const rpc::ClusterView& view) {
  MutexLock lock(&mu_);
  if (view_ != nullptr && view.version() <= view_->version()) return;
  std::vector<std::unique_ptr<rpc::ParameterServer::Stub>> stubs;
  for (int s = 0; s < view.servers_size(); ++s) {
    const bool same = view_ != nullptr && s < view_->servers_size() &&
                      s < static_cast<int>(stubs_.size()) &&
                      view_->servers(s).address() == view.servers(s).address();
    stubs.push_back(same ? std::move(stubs_[s])
                         : rpc::ParameterServer::NewStub(MakeChannel(view.servers(s).address())));
  }
  stubs_ = std::move(stubs);
  view_ = std::make_shared<const rpc::ClusterView>(view);
}

std::shared_ptr<const rpc::ClusterView> KvClient::CurrentView() {
  MutexLock lock(&mu_);
  return view_;
}

rpc::ParameterServer::Stub* KvClient::Stub(int server) {
  MutexLock lock(&mu_);
  return stubs_[server].get();
}

absl::Status KvClient::RefreshView() {
  auto view = refresh_view_();
  if (!view.ok()) return view.status();
  SetView(*view);
  return absl::OkStatus();
}

absl::StatusOr<KvClient::Routed> KvClient::Route(const std::vector<TableKeys>& tables,
                                                 bool with_values) {
  Routed routed;
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
      Routed::Part& part = routed.parts[PartitionOf(in.table, in.keys[i], options_.num_partitions)];
      part.refs.emplace_back(t, i);
      // A pull's reply carries the values, so its size counts them too.
      part.bytes += sizeof(uint64_t) + dim * sizeof(float);
    }
  }
  return routed;
}

namespace {

// Groups `partitions` by owner and cuts each server's share into chunks of at
// most max_bytes (whole partitions). Servers in `all_servers` get at least one
// (maybe empty) call. Returns per call: (server, partitions, chunk index, count).
struct Plan {
  int server;
  std::vector<int> partitions;
  uint32_t chunk_index;
  uint32_t chunk_count;
};
std::vector<Plan> PlanCalls(const std::vector<int>& partitions,
                            const std::map<int, size_t>& bytes, const rpc::ClusterView& view,
                            const std::vector<int>& all_servers, size_t max_bytes) {
  std::map<int, std::vector<std::vector<int>>> chunks;  // server -> chunks
  std::map<int, size_t> fill;
  for (int s : all_servers) chunks[s];
  for (int p : partitions) {
    const int s = view.partition_owner(p);
    auto& list = chunks[s];
    const size_t b = bytes.at(p);
    if (list.empty() || (fill[s] + b > max_bytes && !list.back().empty())) {
      list.emplace_back();
      fill[s] = 0;
    }
    list.back().push_back(p);
    fill[s] += b;
  }
  std::vector<Plan> plans;
  for (auto& [s, list] : chunks) {
    if (list.empty()) list.emplace_back();
    for (uint32_t i = 0; i < list.size(); ++i) {
      plans.push_back(Plan{s, std::move(list[i]), i, static_cast<uint32_t>(list.size())});
    }
  }
  return plans;
}

}  // namespace

absl::Status KvClient::Push(const std::vector<TableKeys>& tables, std::optional<int64_t> clock,
                            uint64_t num_examples, float lr_scale) {
  auto routed = Route(tables, /*with_values=*/true);
  if (!routed.ok()) return routed.status();
  const uint64_t seq = ++seq_;
  using PushCall = Call<rpc::PushRequest, rpc::PushResponse>;
  std::vector<std::unique_ptr<PushCall>> calls;

  auto build = [&](const std::vector<int>& partitions) {
    std::map<int, size_t> bytes;
    for (int p : partitions) bytes[p] = routed->parts[p].bytes;
    const std::shared_ptr<const rpc::ClusterView> current = CurrentView();
    const rpc::ClusterView& view = *current;
    std::vector<int> all;
    if (clock.has_value()) {
      for (int s = 0; s < view.servers_size(); ++s) all.push_back(s);
    }
    std::vector<std::unique_ptr<PushCall>> out;
    for (Plan& plan : PlanCalls(partitions, bytes, view, all, options_.max_chunk_bytes)) {
      auto c = std::make_unique<PushCall>();
      c->server = plan.server;
      c->partitions = std::move(plan.partitions);
      rpc::PushRequest& req = c->req;
      req.set_worker(options_.rank);
      req.set_incarnation(options_.incarnation);
      req.set_seq(seq);
      if (clock.has_value()) req.set_clock(*clock);
      req.set_map_version(view.version());
      req.set_num_examples(num_examples);
      req.set_lr_scale(lr_scale);
      req.set_chunk_index(plan.chunk_index);
      req.set_chunk_count(plan.chunk_count);
      std::vector<rpc::TableSlice*> slices(tables.size(), nullptr);
      for (int p : c->partitions) {
        for (const auto& [t, i] : routed->parts[p].refs) {
          if (slices[t] == nullptr) {
            slices[t] = req.add_slices();
            slices[t]->set_table(tables[t].table);
          }
          const int dim = tables_[tables[t].table].dim;
          slices[t]->add_keys(tables[t].keys[i]);
          const float* v = tables[t].values.data() + static_cast<size_t>(i) * dim;
          slices[t]->mutable_values()->Add(v, v + dim);
        }
      }
      out.push_back(std::move(c));
    }
    return out;
  };

  std::vector<int> all_partitions;
  for (const auto& [p, part] : routed->parts) all_partitions.push_back(p);
  calls = build(all_partitions);
  grpc::Status last;
  for (int attempt = 0;; ++attempt) {
    std::vector<PushCall*> raw;
    for (auto& c : calls) raw.push_back(c.get());
    RunAll(raw, options_.rpc_timeout, [&](PushCall* c, auto done) {
      Stub(c->server)->async()->Push(c->ctx.get(), &c->req, &c->resp, std::move(done));
    });
    std::vector<std::unique_ptr<PushCall>> failed;
    bool stale = false;
    for (auto& c : calls) {
      if (c->status.ok()) continue;
      last = c->status;
      if (c->status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
        stale = true;
      } else if (!Retryable(c->status)) {
        return absl::Status(static_cast<absl::StatusCode>(c->status.error_code()),
                            absl::StrCat("push to server ", c->server, ": ", c->status.error_message()));
      }
      failed.push_back(std::move(c));
    }
    if (failed.empty()) return absl::OkStatus();
    if (attempt >= options_.max_retries) {
      return absl::UnavailableError(absl::StrCat("push failed after ", attempt + 1, " attempts: ",
                                                 last.error_message()));
    }
    spdlog::warn("push seq {}: {} of {} requests failed ({}); retrying", seq, failed.size(),
                 calls.size(), last.error_message());
    absl::SleepFor(absl::Milliseconds(50) * (1 << std::min(attempt, 5)));  // retry backoff
    if (stale) {
      if (absl::Status s = RefreshView(); !s.ok()) return s;
      std::vector<int> parts;
      for (auto& c : failed) parts.insert(parts.end(), c->partitions.begin(), c->partitions.end());
      calls = build(parts);
    } else {
      calls = std::move(failed);  // the same requests, same seq and chunk numbers
    }
  }
}

absl::Status KvClient::Pull(std::vector<TableKeys>* tables, std::optional<int64_t> clock) {
  auto routed = Route(*tables, /*with_values=*/false);
  if (!routed.ok()) return routed.status();
  for (TableKeys& t : *tables) t.values.assign(t.keys.size() * tables_[t.table].dim, 0.0f);
  using PullCall = Call<rpc::PullRequest, rpc::PullResponse>;

  auto build = [&](const std::vector<int>& partitions) {
    std::map<int, size_t> bytes;
    for (int p : partitions) bytes[p] = routed->parts[p].bytes;
    const std::shared_ptr<const rpc::ClusterView> current = CurrentView();
    const rpc::ClusterView& view = *current;
    std::vector<std::unique_ptr<PullCall>> out;
    for (Plan& plan : PlanCalls(partitions, bytes, view, {}, options_.max_chunk_bytes)) {
      auto c = std::make_unique<PullCall>();
      c->server = plan.server;
      c->partitions = std::move(plan.partitions);
      c->req.set_worker(options_.rank);
      if (clock.has_value()) c->req.set_clock(*clock);
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

  std::vector<int> all_partitions;
  for (const auto& [p, part] : routed->parts) all_partitions.push_back(p);
  auto calls = build(all_partitions);
  grpc::Status last;
  for (int attempt = 0;; ++attempt) {
    std::vector<PullCall*> raw;
    for (auto& c : calls) raw.push_back(c.get());
    RunAll(raw, options_.rpc_timeout, [&](PullCall* c, auto done) {
      Stub(c->server)->async()->Pull(c->ctx.get(), &c->req, &c->resp, std::move(done));
    });
    std::vector<int> failed_parts;
    bool stale = false;
    for (auto& c : calls) {
      if (c->status.ok()) {
        if (absl::Status s = scatter(*c); !s.ok()) return s;
        continue;
      }
      last = c->status;
      if (c->status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
        stale = true;
      } else if (!Retryable(c->status)) {
        return absl::Status(static_cast<absl::StatusCode>(c->status.error_code()),
                            absl::StrCat("pull from server ", c->server, ": ", c->status.error_message()));
      }
      failed_parts.insert(failed_parts.end(), c->partitions.begin(), c->partitions.end());
    }
    if (failed_parts.empty()) return absl::OkStatus();
    if (attempt >= options_.max_retries) {
      return absl::UnavailableError(absl::StrCat("pull failed after ", attempt + 1, " attempts: ",
                                                 last.error_message()));
    }
    spdlog::warn("pull: {} partitions failed ({}); retrying", failed_parts.size(), last.error_message());
    absl::SleepFor(absl::Milliseconds(50) * (1 << std::min(attempt, 5)));  // retry backoff
    if (stale) {
      if (absl::Status s = RefreshView(); !s.ok()) return s;
    }
    calls = build(failed_parts);
  }
}

absl::Status KvClient::Tick(int64_t clock) {
  using TickCall = Call<rpc::TickRequest, rpc::TickResponse>;
  const int servers = CurrentView()->servers_size();
  std::vector<std::unique_ptr<TickCall>> calls;
  for (int s = 0; s < servers; ++s) {
    auto c = std::make_unique<TickCall>();
    c->server = s;
    c->req.set_worker(options_.rank);
    c->req.set_clock(clock);
    calls.push_back(std::move(c));
  }
  for (int attempt = 0;; ++attempt) {
    std::vector<TickCall*> raw;
    for (auto& c : calls) raw.push_back(c.get());
    RunAll(raw, options_.rpc_timeout, [&](TickCall* c, auto done) {
      Stub(c->server)->async()->Tick(c->ctx.get(), &c->req, &c->resp, std::move(done));
    });
    std::vector<std::unique_ptr<TickCall>> failed;
    grpc::Status last;
    for (auto& c : calls) {
      if (c->status.ok()) continue;
      last = c->status;
      if (!Retryable(c->status) || attempt >= options_.max_retries) {
        return absl::Status(static_cast<absl::StatusCode>(c->status.error_code()),
                            absl::StrCat("tick to server ", c->server, ": ", c->status.error_message()));
      }
      failed.push_back(std::move(c));
    }
    if (failed.empty()) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(50) * (1 << std::min(attempt, 5)));  // retry backoff
    calls = std::move(failed);
  }
}

}  // namespace ps

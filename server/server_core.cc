#include "server/server_core.h"

#include <sys/stat.h>

#include <cerrno>
#include <Eigen/Core>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/partitioning.h"
#include "spdlog/spdlog.h"

namespace ps {
namespace {

constexpr int64_t kNoClock = std::numeric_limits<int64_t>::max();

}  // namespace

ServerCore::ServerCore(const config::JobConfig& job, int rank)
    : job_(job),
      rank_(rank),
      mode_(job.job().mode()),
      staleness_(job.job().staleness()),
      num_partitions_(job.cluster().num_partitions()),
      tables_(TablesForJob(job)) {
  for (const TableSpec& t : tables_) optimizers_.push_back(MakeOptimizer(t));
  for (int p = 0; p < num_partitions_; ++p) {
    partitions_.push_back(std::make_unique<Partition>(p, &tables_, &optimizers_, job.job().seed()));
  }
  MutexLock lock(&gate_mu_);
  owned_.assign(num_partitions_, false);
}

void ServerCore::UpdateView(const rpc::ClusterView& view) {
  {
    MutexLock lock(&gate_mu_);
    if (view.version() <= view_version_) return;
    view_version_ = view.version();
    for (int p = 0; p < num_partitions_; ++p) {
      owned_[p] = p < view.partition_owner_size() && view.partition_owner(p) == rank_;
    }
    live_workers_.assign(view.live_workers().begin(), view.live_workers().end());
  }
  AdvanceAndServe();
}

template <typename Request>
absl::StatusOr<ServerCore::Routing> ServerCore::Route(const Request& req, bool with_values) const {
  std::vector<bool> owned;
  uint64_t version;
  {
    MutexLock lock(&gate_mu_);
    if (view_version_ == 0) return absl::UnavailableError("server has no cluster view yet");
    owned = owned_;
    version = view_version_;
  }
  Routing routing;
  for (int s = 0; s < req.slices_size(); ++s) {
    const rpc::TableSlice& slice = req.slices(s);
    if (slice.table() >= tables_.size()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown table ", slice.table(), " (the job has ",
                                                     tables_.size(), " tables)"));
    }
    const TableSpec& table = tables_[slice.table()];
    const size_t want = static_cast<size_t>(slice.keys_size()) * table.dim;
    if (with_values && static_cast<size_t>(slice.values_size()) != want) {
      return absl::InvalidArgumentError(absl::StrCat(
          "table '", table.name, "': ", slice.keys_size(), " keys of dim ", table.dim, " need ", want,
          " values, got ", slice.values_size()));
    }
    if (with_values && !Eigen::Map<const Eigen::ArrayXf>(slice.values().data(), want).allFinite()) {
      for (size_t j = 0; j < want; ++j) {
        if (!std::isfinite(slice.values(j))) {
          return absl::InvalidArgumentError(absl::StrCat("table '", table.name, "': key ",
                                                         slice.keys(j / table.dim),
                                                         " has a non-finite gradient"));
        }
      }
    }
    for (int i = 0; i < slice.keys_size(); ++i) {
      const uint64_t key = slice.keys(i);
      if (table.num_keys != 0 && key >= table.num_keys) {
        return absl::InvalidArgumentError(absl::StrCat("table '", table.name, "': key ", key,
                                                       " is beyond its ", table.num_keys, " keys"));
      }
      const int p = PartitionOf(slice.table(), key, num_partitions_);
      if (!owned[p]) {
        return absl::FailedPreconditionError(absl::StrCat(
            "partition ", p, " is not on server ", rank_, " (map version ", version, ")"));
      }
      routing[p].push_back(KeyRef{static_cast<uint32_t>(s), static_cast<uint32_t>(i)});
    }
  }
  return routing;
}

absl::StatusOr<bool> ServerCore::Push(const rpc::PushRequest& req) {
  // Pushes with a clock are training steps (aggregated per clock in BSP);
  // pushes without one (statistics, benchmarks) are applied at once.
  const bool bsp = mode_ == config::BSP && req.has_clock();
  if (req.has_clock() && req.clock() < 0) return absl::InvalidArgumentError("negative clock");
  const uint32_t chunk_count = std::max<uint32_t>(1, req.chunk_count());
  if (req.chunk_index() >= chunk_count) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk_index ", req.chunk_index(), " >= chunk_count ", chunk_count));
  }
  auto routing = Route(req, /*with_values=*/true);
  if (!routing.ok()) return routing.status();
  if (bsp) {
    MutexLock lock(&gate_mu_);
    if (std::find(live_workers_.begin(), live_workers_.end(), req.worker()) == live_workers_.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker ", req.worker(), " is not a live worker of this job"));
    }
    // A clock is applied only after all of this worker's chunks for it
    // arrived, so a push for an applied clock is a retry.
    if (req.clock() < applied_clock_) {
      pushes_duplicate_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
  }
  bool any_applied = routing->empty();
  const double scale = 1.0 / static_cast<double>(std::max<uint64_t>(1, req.num_examples()));
  for (const auto& [p, refs] : *routing) {
    const bool fresh = bsp ? partitions_[p]->BufferPush(req, refs)
                           : partitions_[p]->ApplyPush(req, refs, scale);
    any_applied |= fresh;
  }
  (any_applied ? pushes_applied_ : pushes_duplicate_).fetch_add(1, std::memory_order_relaxed);
  if (req.has_clock()) {
    std::vector<Parked> ready;
    {
      MutexLock lock(&gate_mu_);
      if (bsp) examples_[req.clock()][req.worker()] = req.num_examples();
      int64_t& next = next_clock_[req.worker()];
      // A retry arriving after its clock completed must not start a new count.
      if (req.clock() >= next) {
        auto key = std::make_pair(req.worker(), req.clock());
        std::set<uint32_t>& got = chunks_[key];
        got.insert(req.chunk_index());
        if (got.size() == chunk_count) {
          chunks_.erase(key);
          next = req.clock() + 1;
        }
      }
      if (!bsp) TakeReadyLocked(&ready);
    }
    for (Parked& p : ready) p.done(Serve(*p.req, p.resp));
    if (bsp) AdvanceAndServe();
  }
  return !any_applied;
}

absl::Status ServerCore::Tick(int32_t worker, int64_t clock) {
  {
    MutexLock lock(&gate_mu_);
    int64_t& next = next_clock_[worker];
    next = std::max(next, clock);
  }
  AdvanceAndServe();
  return absl::OkStatus();
}

int64_t ServerCore::MinClockLocked() const {
  int64_t min = kNoClock;
  for (int32_t w : live_workers_) {
    auto it = next_clock_.find(w);
    min = std::min(min, it == next_clock_.end() ? 0 : it->second);
  }
  return min;
}

bool ServerCore::GateOpenLocked(int64_t clock) const {
  switch (mode_) {
    case config::BSP:
      return applied_clock_ >= clock;
    case config::SSP:
      return MinClockLocked() >= clock - staleness_;
    default:
      return true;
  }
}

void ServerCore::TakeReadyLocked(std::vector<Parked>* ready) {
  if (parked_.empty()) return;
  const int64_t min = MinClockLocked();
  auto keep = parked_.begin();
  for (auto it = parked_.begin(); it != parked_.end(); ++it) {
    if (GateOpenLocked(it->clock)) {
      if (min != kNoClock) max_staleness_ = std::max(max_staleness_, it->clock - min);
      ready->push_back(std::move(*it));
    } else {
      if (keep != it) *keep = std::move(*it);
      ++keep;
    }
  }
  parked_.erase(keep, parked_.end());
}

void ServerCore::AdvanceAndServe() {
  while (true) {
    std::vector<Parked> ready;
    int64_t target = 0;
    bool apply = false;
    std::vector<std::pair<int64_t, uint64_t>> clocks;  // (clock, global examples) to apply
    {
      MutexLock lock(&gate_mu_);
      if (applying_) return;  // the applying thread loops again when done
      if (mode_ == config::BSP && !shut_down_) {
        target = MinClockLocked();
        if (target == kNoClock) target = applied_clock_;  // no live workers: nothing to close
      }
      if (mode_ != config::BSP || target <= applied_clock_) {
        TakeReadyLocked(&ready);
      } else {
        applying_ = true;
        apply = true;
        for (auto it = examples_.lower_bound(applied_clock_);
             it != examples_.end() && it->first < target; ++it) {
          uint64_t n = 0;
          for (const auto& [w, e] : it->second) n += e;
          clocks.emplace_back(it->first, n);
        }
      }
    }
    if (!apply) {
      for (Parked& p : ready) p.done(Serve(*p.req, p.resp));
      return;
    }
    std::vector<int> owned;
    {
      MutexLock lock(&gate_mu_);
      for (int p = 0; p < num_partitions_; ++p) {
        if (owned_[p]) owned.push_back(p);
      }
    }
    for (const auto& [clock, n] : clocks) {
      const double scale = 1.0 / static_cast<double>(std::max<uint64_t>(1, n));
      for (int p : owned) partitions_[p]->ApplyClock(clock, scale);
    }
    {
      MutexLock lock(&gate_mu_);
      applied_clock_ = std::max(applied_clock_, target);
      applying_ = false;
      examples_.erase(examples_.begin(), examples_.lower_bound(target));
      TakeReadyLocked(&ready);
    }
    for (Parked& p : ready) p.done(Serve(*p.req, p.resp));
  }
}

absl::Status ServerCore::Serve(const rpc::PullRequest& req, rpc::PullResponse* resp) {
  // Routed again: a parked pull's partitions may have moved while it waited.
  auto routing = Route(req, /*with_values=*/false);
  if (!routing.ok()) return routing.status();
  for (const auto& [p, refs] : *routing) partitions_[p]->Read(req, refs, resp);
  pulls_served_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

void ServerCore::Pull(const rpc::PullRequest* req, rpc::PullResponse* resp, absl::Time deadline,
                      PullDone done) {
  auto routing = Route(*req, /*with_values=*/false);
  if (!routing.ok()) {
    done(routing.status());
    return;
  }
  resp->clear_slices();
  for (const rpc::TableSlice& in : req->slices()) {
    rpc::TableSlice* out = resp->add_slices();
    out->set_table(in.table());
    // Values only (the keys are the request's, in its order); every value is
    // written by Serve, so they are not zero-filled first.
    const int n = in.keys_size() * tables_[in.table()].dim;
    out->mutable_values()->Reserve(n);
    out->mutable_values()->AddNAlreadyReserved(n);
  }
  {
    ReleasableMutexLock lock(&gate_mu_);
    if (shut_down_) {
      lock.Release();
      done(absl::UnavailableError("server is shutting down"));
      return;
    }
    if (req->has_clock() && !GateOpenLocked(req->clock())) {
      pulls_parked_.fetch_add(1, std::memory_order_relaxed);
      parked_.push_back(Parked{req, resp, req->clock(), deadline, std::move(done)});
      return;
    }
    const int64_t min = MinClockLocked();
    if (req->has_clock() && min != kNoClock) {
      max_staleness_ = std::max(max_staleness_, req->clock() - min);
    }
  }
  done(Serve(*req, resp));
}

void ServerCore::ExpireParked(absl::Time now) {
  std::vector<Parked> expired;
  int64_t min;
  {
    MutexLock lock(&gate_mu_);
    min = MinClockLocked();
    auto keep = parked_.begin();
    for (auto it = parked_.begin(); it != parked_.end(); ++it) {
      if (it->deadline <= now) {
        expired.push_back(std::move(*it));
      } else {
        if (keep != it) *keep = std::move(*it);
        ++keep;
      }
    }
    parked_.erase(keep, parked_.end());
  }
  for (Parked& p : expired) {
    p.done(absl::DeadlineExceededError(absl::StrCat("pull at clock ", p.clock,
                                                    " waited past its deadline; slowest live worker "
                                                    "is at clock ", min)));
  }
}

void ServerCore::Shutdown() {
  std::vector<Parked> parked;
  {
    MutexLock lock(&gate_mu_);
    shut_down_ = true;
    parked.swap(parked_);
  }
  for (Parked& p : parked) p.done(absl::UnavailableError("server is shutting down"));
}

absl::StatusOr<rpc::SaveModelResponse> ServerCore::SaveModel(const std::string& dir) {
  if (absl::Status s = MakeDirs(dir); !s.ok()) return s;
  std::vector<bool> owned;
  {
    MutexLock lock(&gate_mu_);
    owned = owned_;
  }
  rpc::SaveModelResponse resp;
  for (int p = 0; p < num_partitions_; ++p) {
    if (!owned[p]) continue;
    std::vector<TableRows> rows = partitions_[p]->Snapshot();
    for (const TableRows& t : rows) resp.set_keys_written(resp.keys_written() + t.keys.size());
    if (absl::Status s = WritePartitionFile(dir, p, rows); !s.ok()) return s;
    resp.add_partitions(p);
  }
  return resp;
}

rpc::StatsResponse ServerCore::Stats() const {
  rpc::StatsResponse s;
  s.set_pushes_applied(pushes_applied_.load());
  s.set_pushes_duplicate(pushes_duplicate_.load());
  s.set_pulls_served(pulls_served_.load());
  s.set_pulls_parked(pulls_parked_.load());
  uint64_t keys = 0;
  for (const auto& p : partitions_) keys += p->num_keys();
  s.set_keys_stored(keys);
  MutexLock lock(&gate_mu_);
  s.set_max_staleness_served(max_staleness_);
  return s;
}

}  // namespace ps

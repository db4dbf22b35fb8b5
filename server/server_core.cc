#include "server/server_core.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/checkpoint.h"
#include "common/compression.h"
#include "common/file_util.h"
#include "common/partitioning.h"
#include "common/paths.h"
#include "spdlog/spdlog.h"

namespace ps {
namespace {

constexpr int64_t kNoClock = std::numeric_limits<int64_t>::max();

// Table ids, value counts and finiteness of a push's or pull's slices.
template <typename Request>
absl::Status CheckSlices(const Request& req, bool with_values, const std::vector<TableSpec>& tables) {
  for (const rpc::TableSlice& slice : req.slices()) {
    if (slice.table() >= tables.size()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown table ", slice.table(), " (the job has ",
                                                     tables.size(), " tables)"));
    }
    const TableSpec& table = tables[slice.table()];
    const size_t want = static_cast<size_t>(slice.keys_size()) * table.dim;
    if (with_values && static_cast<size_t>(slice.values_size()) != want) {
      return absl::InvalidArgumentError(absl::StrCat(
          "table '", table.name, "': ", slice.keys_size(), " keys of dim ", table.dim, " need ", want,
          " values, got ", slice.values_size()));
    }
    if (with_values && !AllFinite(slice.values().data(), want)) {
      for (size_t j = 0; j < want; ++j) {
        if (!std::isfinite(slice.values(j))) {
          return absl::InvalidArgumentError(absl::StrCat("table '", table.name, "': key ",
                                                         slice.keys(j / table.dim),
                                                         " has a non-finite gradient"));
        }
      }
    }
    if (table.num_keys != 0) {
      for (uint64_t key : slice.keys()) {
        if (key >= table.num_keys) {
          return absl::InvalidArgumentError(absl::StrCat("table '", table.name, "': key ", key,
                                                         " is beyond its ", table.num_keys, " keys"));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

ServerCore::ServerCore(const config::JobConfig& job, int rank)
    : job_(job),
      rank_(rank),
      mode_(job.job().mode()),
      staleness_(job.job().staleness()),
      num_partitions_(job.cluster().num_partitions()),
      tables_(TablesForJob(job)),
      // Worker ranks stay below the job's worker count (a standby takes a
      // dead worker's rank); a margin for benchmarks and tests that
      // simulate more.
      floor_(std::max(1024, job.cluster().num_workers())),
      replicator_(rank, job.cluster().num_partitions(),
                  absl::Milliseconds(std::min(job.cluster().rpc_timeout_ms(), 10000)),
                  Replicator::Callbacks{[this](int p) { Fenced(p); },
                                        [this](int p, int b) { Resync(p, b); },
                                        [this](int rank, const std::string& error) {
                                          std::function<void(int, const std::string&)> report;
                                          {
                                            MutexLock lock(&gate_mu_);
                                            report = report_peer_;
                                          }
                                          if (report) report(rank, error);
                                        }}) {
  for (const TableSpec& t : tables_) optimizers_.push_back(MakeOptimizer(t));
  visit_flags_ = std::make_unique<std::atomic<uint8_t>[]>(num_partitions_);
  for (int p = 0; p < num_partitions_; ++p) {
    visit_flags_[p].store(0);
    partitions_.push_back(std::make_unique<Partition>(p, &tables_, &optimizers_, job.job().seed(),
                                                      &floor_, &visit_flags_[p]));
  }
  MutexLock lock(&gate_mu_);
  role_.assign(num_partitions_, kNone);
  epoch_.assign(num_partitions_, 0);
  installed_epoch_.assign(num_partitions_, 0);
  restored_.assign(num_partitions_, false);
  load_requests_ = std::make_unique<std::atomic<uint64_t>[]>(num_partitions_);
  load_bytes_ = std::make_unique<std::atomic<uint64_t>[]>(num_partitions_);
  traffic_ = std::make_unique<std::atomic<uint64_t>[]>(4 * num_partitions_);
  for (int p = 0; p < num_partitions_; ++p) {
    load_requests_[p].store(0);
    load_bytes_[p].store(0);
  }
  for (int i = 0; i < 4 * num_partitions_; ++i) traffic_[i].store(0);
}

template <typename Request>
void ServerCore::CountLoad(const Request& req, const Routing& routing) {
  for (const auto& [p, refs] : routing) {
    uint64_t bytes = 0;
    for (const KeyRef& r : refs) bytes += sizeof(uint64_t) + tables_[req.slices(r.slice).table()].dim * sizeof(float);
    load_requests_[p].fetch_add(1, std::memory_order_relaxed);
    load_bytes_[p].fetch_add(bytes, std::memory_order_relaxed);
    const int base = 4 * p + (std::is_same_v<Request, rpc::PushRequest> ? 0 : 2);
    traffic_[base].fetch_add(1, std::memory_order_relaxed);
    traffic_[base + 1].fetch_add(bytes, std::memory_order_relaxed);
  }
}

std::vector<ServerCore::Traffic> ServerCore::PartitionTraffic() const {
  std::vector<Traffic> out(num_partitions_);
  for (int p = 0; p < num_partitions_; ++p) {
    out[p].push_requests = traffic_[4 * p].load(std::memory_order_relaxed);
    out[p].push_bytes = traffic_[4 * p + 1].load(std::memory_order_relaxed);
    out[p].pull_requests = traffic_[4 * p + 2].load(std::memory_order_relaxed);
    out[p].pull_bytes = traffic_[4 * p + 3].load(std::memory_order_relaxed);
  }
  return out;
}

std::vector<uint64_t> ServerCore::StalenessCounts() const {
  std::vector<uint64_t> out(kStalenessBuckets);
  for (int i = 0; i < kStalenessBuckets; ++i)
    out[i] = staleness_counts_[i].load(std::memory_order_relaxed);
  return out;
}

size_t ServerCore::ParkedPulls() const {
  MutexLock lock(&gate_mu_);
  return parked_.size();
}

std::vector<rpc::PartitionLoad> ServerCore::TakeLoad() {
  std::vector<rpc::PartitionLoad> out;
  for (int p = 0; p < num_partitions_; ++p) {
    const uint64_t requests = load_requests_[p].exchange(0, std::memory_order_relaxed);
    const uint64_t bytes = load_bytes_[p].exchange(0, std::memory_order_relaxed);
    if (requests == 0) continue;
    rpc::PartitionLoad& l = out.emplace_back();
    l.set_partition(p);
    l.set_requests(requests);
    l.set_bytes(bytes);
  }
  return out;
}

std::vector<uint32_t> ServerCore::SyncedBackups() const {
  MutexLock lock(&gate_mu_);
  std::vector<uint32_t> out;
  for (int p = 0; p < num_partitions_; ++p) {
    if (role_[p] == kBackup && installed_epoch_[p] > 0 && installed_epoch_[p] >= epoch_[p]) {
      out.push_back(p);
    }
  }
  return out;
}

ServerCore::~ServerCore() { Shutdown(); }

void ServerCore::SetViewRefresher(std::function<void()> refresh) {
  MutexLock lock(&gate_mu_);
  refresh_ = std::move(refresh);
}

void ServerCore::SetPeerReporter(std::function<void(int rank, const std::string& error)> report) {
  MutexLock lock(&gate_mu_);
  report_peer_ = std::move(report);
}

void ServerCore::SetFailureReporter(std::function<void(const std::string& message)> report) {
  MutexLock lock(&gate_mu_);
  report_failure_ = std::move(report);
}

uint64_t ServerCore::view_version() const {
  MutexLock lock(&gate_mu_);
  return view_version_;
}

std::vector<int32_t> ServerCore::LiveWorkers() const {
  MutexLock lock(&gate_mu_);
  return live_workers_;
}

void ServerCore::UpdateView(const rpc::ClusterView& view) {
  MutexLock view_lock(&view_mu_);
  std::vector<Role> old_role, new_role(num_partitions_, kNone);
  std::vector<uint64_t> old_epoch, new_epoch(num_partitions_, 0);
  std::vector<std::vector<int>> backups(num_partitions_);
  std::vector<std::string> restore_from(num_partitions_);
  std::vector<bool> rejoin(num_partitions_, false);
  std::vector<int32_t> live;
  for (int p = 0; p < num_partitions_; ++p) {
    if (p < view.placement_size()) {
      const rpc::Placement& pl = view.placement(p);
      new_epoch[p] = pl.epoch();
      if (pl.restore_epoch() == pl.epoch()) {
        restore_from[p] = pl.restore_from();
        rejoin[p] = pl.restore_rejoin();
      }
      if (pl.primary() == rank_) {
        new_role[p] = kPrimary;
        backups[p].assign(pl.backups().begin(), pl.backups().end());
      } else if (std::find(pl.backups().begin(), pl.backups().end(), rank_) != pl.backups().end()) {
        new_role[p] = kBackup;
      }
    } else if (p < view.partition_owner_size() && view.partition_owner(p) == rank_) {
      new_role[p] = kPrimary;  // a view without placement: no replication
      new_epoch[p] = 1;
    }
  }
  {
    MutexLock lock(&gate_mu_);
    if (view.version() <= view_version_) return;
    old_role = role_;
    old_epoch = epoch_;
  }
  // Partitions to load from a checkpoint are loaded before this server takes
  // them up, so no request ever finds one empty. (view_mu_ keeps role_ as
  // read above meanwhile.)
  std::vector<bool> loaded(num_partitions_, false);
  std::vector<int> restored;
  std::string restore_error;
  for (int p = 0; p < num_partitions_; ++p) {
    if (new_role[p] != kPrimary || restore_from[p].empty() ||
        (old_role[p] == kPrimary && old_epoch[p] == new_epoch[p])) {
      continue;
    }
    if (absl::Status s = Restore(p, restore_from[p], new_epoch[p], rejoin[p]); !s.ok()) {
      // Not ours after all: requests for it are refused, the job fails.
      new_role[p] = kNone;
      if (restore_error.empty()) restore_error = std::string(s.message());
      continue;
    }
    loaded[p] = true;
    restored.push_back(p);
  }
  // Partitions with backups are visited by every push (their backups learn
  // clocks from ops): flagged before pushes can see the new roles, so that
  // none of the new era skips one whose state goes to a new backup below.
  for (int p = 0; p < num_partitions_; ++p) {
    if (new_role[p] == kPrimary && !backups[p].empty()) {
      visit_flags_[p].fetch_or(Partition::kVisitServer);
    }
  }
  const uint64_t era = ++last_era_;
  {
    MutexLock lock(&gate_mu_);
    view_version_ = view.version();
    role_ = new_role;
    stepped_down_ = false;
    era_ = era;
    primaries_ = static_cast<int>(std::count(new_role.begin(), new_role.end(), kPrimary));
    epoch_ = new_epoch;
    for (int p = 0; p < num_partitions_; ++p) {
      const bool new_term = new_role[p] == kPrimary &&
                            (old_role[p] != kPrimary || old_epoch[p] != new_epoch[p]);
      if (new_term || new_role[p] != kPrimary) restored_[p] = loaded[p];
    }
    live_workers_.assign(view.live_workers().begin(), view.live_workers().end());
    live = live_workers_;
  }
  NewFloorEra(era, old_role, new_role);
  for (const rpc::ServerInfo& s : view.servers()) replicator_.SetAddress(s.rank(), s.address());
  int promoted = 0;
  for (int p = 0; p < num_partitions_; ++p) {
    Partition& part = *partitions_[p];
    if (new_role[p] != kPrimary) {
      if (old_role[p] == kPrimary) replicator_.SetPrimary(p, false);
      continue;
    }
    const bool new_term = old_role[p] != kPrimary || old_epoch[p] != new_epoch[p];
    if (new_term) {
      // A new primary (or a new epoch): every backup starts from our snapshot,
      // since backups may hold different tails of the old primary's ops.
      if (old_role[p] == kPrimary) replicator_.SetPrimary(p, false);
      if (old_role[p] == kBackup) ++promoted;
      part.SetEpoch(new_epoch[p]);
      replicator_.SetPrimary(p, true);
      for (int b : backups[p]) {
        part.State([&](const rpc::PartitionState& s) { replicator_.AddBackup(p, b, s); });
      }
      continue;
    }
    const std::vector<int> current = replicator_.Backups(p);
    for (int b : current) {
      if (std::find(backups[p].begin(), backups[p].end(), b) == backups[p].end()) {
        replicator_.RemoveBackup(p, b);
      }
    }
    for (int b : backups[p]) {
      if (std::find(current.begin(), current.end(), b) == current.end()) {
        part.State([&](const rpc::PartitionState& s) { replicator_.AddBackup(p, b, s); });
      }
    }
  }
  if (promoted > 0) {
    spdlog::warn("server {}: promoted to primary of {} partition{} (map version {})", rank_,
                 promoted, promoted == 1 ? "" : "s", view.version());
  }
  if (!restored.empty()) {
    spdlog::info("server {}: loaded {} partition{} from checkpoint {} (map version {})", rank_,
                 restored.size(), restored.size() == 1 ? "" : "s", restore_from[restored[0]],
                 view.version());
  }
  if (!restore_error.empty()) {
    spdlog::error("server {}: {}", rank_, restore_error);
    std::function<void(const std::string&)> report;
    {
      MutexLock lock(&gate_mu_);
      report = report_failure_;
    }
    if (report) report(restore_error);
  }
  for (int p = 0; p < num_partitions_; ++p) {
    if (new_role[p] != kPrimary || backups[p].empty()) {
      visit_flags_[p].fetch_and(static_cast<uint8_t>(~Partition::kVisitServer));
    }
  }
  if (mode_ == config::BSP) {
    // Live workers may have shrunk, or we may hold complete clocks we were
    // not primary for: close what can be closed.
    for (int p = 0; p < num_partitions_; ++p) {
      if (new_role[p] == kPrimary) partitions_[p]->CloseClocks(live, &replicator_);
    }
  }
  WakeParked();
}

void ServerCore::NewFloorEra(uint64_t era, const std::vector<Role>& old_role,
                             const std::vector<Role>& new_role) {
  // Pushes checked against the old roles raise the old era's floor until
  // this returns it; from then on they visit every partition they list.
  const uint64_t old_era = floor_.era();
  const std::vector<std::pair<int32_t, int64_t>> floors = floor_.NewEra(era);
  for (int p = 0; p < num_partitions_; ++p) {
    if (old_role[p] == kPrimary) partitions_[p]->FoldFloor(old_era, floors);
  }
  for (int p = 0; p < num_partitions_; ++p) {
    if (new_role[p] == kPrimary) partitions_[p]->FollowFloor(era);
  }
}

absl::Status ServerCore::Restore(int partition, const std::string& dir, uint64_t epoch,
                                 bool rejoin) {
  auto state = ReadPartitionState(dir, partition);
  if (!state.ok()) {
    return absl::Status(state.status().code(), absl::StrCat("cannot load partition ", partition,
                                                            " from its checkpoint: ",
                                                            state.status().message()));
  }
  // The checkpoint's epoch belongs to the job that wrote it; this primary
  // term's epoch is the view's.
  state->set_epoch(epoch);
  if (partitions_[partition]->Install(*state, 0) != Partition::InstallResult::kInstalled) {
    return absl::DataLossError(absl::StrCat("partition ", partition, " in checkpoint ", dir,
                                            " does not fit this job's tables"));
  }
  if (rejoin) partitions_[partition]->Rejoin();
  return absl::OkStatus();
}

absl::Status ServerCore::CheckMapVersion(uint64_t version) {
  std::function<void()> refresh;
  uint64_t mine;
  {
    MutexLock lock(&gate_mu_);
    if (shut_down_) return absl::UnavailableError("server is shutting down");
    if (view_version_ == 0) return absl::UnavailableError("server has no cluster view yet");
    if (version <= view_version_) return absl::OkStatus();
    refresh = refresh_;
    mine = view_version_;
  }
  if (refresh) refresh();
  // ABORTED, not UNAVAILABLE: the server is fine, only behind (it is
  // fetching the view now); clients retry without reporting it.
  return absl::AbortedError(absl::StrCat("server ", rank_, " has map version ", mine,
                                         ", the request ", version, "; retry"));
}

template <typename Request>
absl::StatusOr<ServerCore::Routing> ServerCore::Route(const Request& req, bool with_values,
                                                      RoleView* roles) {
  if (absl::Status s = CheckMapVersion(req.map_version()); !s.ok()) return s;
  if (absl::Status s = CheckSlices(req, with_values, tables_); !s.ok()) return s;
  std::vector<Role> role;
  uint64_t version;
  {
    MutexLock lock(&gate_mu_);
    role = role_;
    version = view_version_;
    if (roles != nullptr) {
      roles->version = view_version_;
      roles->stepped_down = stepped_down_;
      roles->era = era_;
      roles->primaries = primaries_;
    }
  }
  // Keys are grouped through a per-thread partition -> group table (a map
  // lookup per key cost a tenth of a sparse push); the map is built from the
  // groups at the end, one insertion per partition.
  thread_local std::vector<int32_t> group_of;
  if (group_of.size() < static_cast<size_t>(num_partitions_)) group_of.resize(num_partitions_, -1);
  std::vector<std::pair<int, std::vector<KeyRef>>> groups;
  absl::Status status;
  for (int s = 0; s < req.slices_size() && status.ok(); ++s) {
    const rpc::TableSlice& slice = req.slices(s);
    for (int i = 0; i < slice.keys_size(); ++i) {
      const int p = PartitionOf(slice.table(), slice.keys(i), num_partitions_);
      if (role[p] != kPrimary) {
        status = absl::FailedPreconditionError(absl::StrCat("partition ", p, " is not on server ",
                                                            rank_, " (map version ", version, ")"));
        break;
      }
      int32_t& g = group_of[p];
      if (g < 0) {
        g = static_cast<int32_t>(groups.size());
        groups.emplace_back(p, std::vector<KeyRef>());
      }
      groups[g].second.push_back(KeyRef{static_cast<uint32_t>(s), static_cast<uint32_t>(i)});
    }
  }
  Routing routing;
  for (auto& [p, refs] : groups) {
    group_of[p] = -1;
    if (status.ok()) routing.emplace(p, std::move(refs));
  }
  if (!status.ok()) return status;
  if (roles != nullptr) roles->role = std::move(role);
  return routing;
}

void ServerCore::Push(const rpc::PushRequest* req, rpc::PushResponse* resp, absl::Time deadline,
                      Done done) {
  if (req->has_clock() && req->clock() < 0) {
    done(absl::InvalidArgumentError("negative clock"));
    return;
  }
  // A push at clock c moves the worker's clock to c + 1 (workers' clocks
  // stay far below: epoch << 32 plus batches; ticks end at INT64_MAX / 2).
  if (req->has_clock() && req->clock() >= std::numeric_limits<int64_t>::max() / 2) {
    done(absl::InvalidArgumentError(absl::StrCat("clock ", req->clock(), " is out of range")));
    return;
  }
  // Compressed slices (the job's compression section) become float32 here,
  // before anything reads them; at most as many values as a request of
  // security.limits.max_message_bytes carries in float32.
  std::unique_ptr<rpc::PushRequest> decoded;
  const size_t max_values =
      static_cast<size_t>(job_.security().limits().max_message_bytes()) / sizeof(float);
  for (int i = 0; i < req->slices_size(); ++i) {
    const rpc::TableSlice& slice = req->slices(i);
    if (!IsEncoded(slice)) continue;
    if (slice.table() >= tables_.size()) break;  // Route names it
    if (decoded == nullptr) decoded = std::make_unique<rpc::PushRequest>(*req);
    if (absl::Status s =
            DecodeSlice(tables_[slice.table()], max_values, decoded->mutable_slices(i));
        !s.ok()) {
      done(s);
      return;
    }
  }
  if (decoded != nullptr) req = decoded.get();
  RoleView view;
  auto routing = Route(*req, /*with_values=*/true, &view);
  const std::vector<Role>& role = view.role;
  if (!routing.ok()) {
    done(routing.status());
    return;
  }
  // The partitions this push covers: the listed ones (a clocked push lists
  // every partition it sends to this server, empty ones too), else those of
  // its keys.
  std::vector<int> cover;
  if (req->has_clock() && req->all_partitions()) {
    if (req->partitions_size() > 0) {
      done(absl::InvalidArgumentError("a push that covers all partitions must not list them"));
      return;
    }
    // The sender's map must be ours: with another, "all" is another set
    // (also when this server gave up a partition since: the sender would
    // count it as covered here).
    if (req->map_version() != view.version || view.stepped_down) {
      done(absl::FailedPreconditionError(absl::StrCat(
          "the push covers the partitions of map version ", req->map_version(), "; server ", rank_,
          view.stepped_down ? " gave up a partition of map version " : " has map version ",
          view.version, view.stepped_down ? " (retry with the next)" : "")));
      return;
    }
    cover.reserve(view.primaries);
    for (int p = 0; p < num_partitions_; ++p) {
      if (role[p] == kPrimary) cover.push_back(p);
    }
  } else if (req->has_clock() && req->partitions_size() > 0) {
    for (uint32_t p : req->partitions()) {
      if (p >= static_cast<uint32_t>(num_partitions_)) {
        done(absl::InvalidArgumentError(absl::StrCat("partition ", p, " is beyond the job's ",
                                                     num_partitions_, " partitions")));
        return;
      }
      if (role[p] != kPrimary) {
        done(absl::FailedPreconditionError(
            absl::StrCat("partition ", p, " is not on server ", rank_)));
        return;
      }
      cover.push_back(static_cast<int>(p));
    }
    std::sort(cover.begin(), cover.end());
    cover.erase(std::unique(cover.begin(), cover.end()), cover.end());
    for (const auto& [p, refs] : *routing) {
      if (!std::binary_search(cover.begin(), cover.end(), p)) {
        done(absl::InvalidArgumentError(
            absl::StrCat("a key of partition ", p, " is in a push that does not list it")));
        return;
      }
    }
  } else {
    for (const auto& [p, refs] : *routing) cover.push_back(p);
  }
  // Pushes with a clock are training steps (aggregated per clock in BSP);
  // pushes without one (statistics, benchmarks) are applied at once.
  const bool bsp = mode_ == config::BSP && req->has_clock();
  const std::vector<int32_t> live = LiveWorkers();
  const bool is_live = std::find(live.begin(), live.end(), req->worker()) != live.end();
  if (bsp && !is_live) {
    done(absl::FailedPreconditionError(
        absl::StrCat("worker ", req->worker(), " is not a live worker of this job")));
    return;
  }
  CountLoad(*req, *routing);
  bool any_fresh = cover.empty();
  bool moved = false;
  std::vector<std::pair<int, uint64_t>> needs;
  static const std::vector<KeyRef> kNoKeys;
  auto visit = [&](int p, const std::vector<KeyRef>& refs) {
    const Partition::PushResult r = partitions_[p]->Push(*req, refs, bsp, live, &replicator_);
    any_fresh |= r.fresh;
    // A BSP read waits for applied clocks only: the pushes before a clock's
    // last do not need to look at the parked pulls (K^2 checks per clock).
    moved |= bsp ? r.applied_moved : r.clock_moved;
    needs.emplace_back(p, r.lsn);
  };
  // A live worker's clocked push that lists every partition this server is
  // primary of leaves out those it has no keys for and that do not ask for
  // visits: it raises the clock floor for them, after the visits (a
  // partition that reads the floor must already have what the push brought
  // it). Its BSP example count goes to the floor's record first.
  const bool lists_all = req->has_clock() &&
                         (req->partitions_size() > 0 || req->all_partitions()) && is_live &&
                         view.era != 0 && static_cast<int>(cover.size()) == view.primaries;
  if (bsp) {
    floor_.Record(req->worker(), req->clock(), req->num_examples(),
                  req->lr_scale() > 0 ? req->lr_scale() : 1.0f);
  }
  // The partitions with keys (routing is sorted, as is cover), then those
  // without: visited, or skipped.
  std::vector<int> keyed, rest, skipped;
  keyed.reserve(routing->size());
  if (lists_all) skipped.reserve(cover.size());
  for (const auto& [p, refs] : *routing) keyed.push_back(p);
  auto next_keyed = keyed.begin();
  for (int p : cover) {
    while (next_keyed != keyed.end() && *next_keyed < p) ++next_keyed;
    if (next_keyed != keyed.end() && *next_keyed == p) continue;
    (lists_all && visit_flags_[p].load() == 0 ? skipped : rest).push_back(p);
  }
  // Workers' pushes walk the partitions from different places (by rank), so
  // that two of them do not queue behind each other for lock after lock.
  const size_t start =
      keyed.empty() ? 0 : static_cast<size_t>(std::max(0, req->worker())) * 7919 % keyed.size();
  for (size_t i = 0; i < keyed.size(); ++i) {
    const int p = keyed[(start + i) % keyed.size()];
    visit(p, routing->at(p));
  }
  for (int p : rest) visit(p, kNoKeys);
  if (!skipped.empty()) {
    bool raised_floor = false;
    const bool raised = floor_.Raise(view.era, req->worker(), req->clock() + 1, &raised_floor);
    any_fresh |= raised_floor;
    moved |= raised_floor;
    // A partition that asked for visits meanwhile either sees the raised
    // floor when it next reads it or is visited here (the flag is set
    // before that read, the floor raised before this check).
    for (int p : skipped) {
      if (!raised || visit_flags_[p].load() != 0) visit(p, kNoKeys);
    }
  }
  (any_fresh ? pushes_applied_ : pushes_duplicate_).fetch_add(1, std::memory_order_relaxed);
  if (bsp) moved |= CloseAgainIfLiveChanged(live, needs);
  if (moved) WakeParked();
  const bool duplicate = !any_fresh;
  replicator_.WhenReplicated(std::move(needs), deadline,
                             [resp, duplicate, done = std::move(done)](absl::Status s) {
                               if (s.ok()) resp->set_duplicate(duplicate);
                               done(std::move(s));
                             });
}

int64_t ServerCore::WorkerClock(int32_t worker) const {
  std::vector<Role> role;
  {
    MutexLock lock(&gate_mu_);
    role = role_;
  }
  int64_t clock = std::numeric_limits<int64_t>::max();
  for (int p = 0; p < num_partitions_; ++p) {
    if (role[p] == kPrimary) clock = std::min(clock, partitions_[p]->NextClock(worker));
  }
  return clock;
}

void ServerCore::Tick(const rpc::TickRequest& req, absl::Time deadline, Done done) {
  if (absl::Status s = CheckMapVersion(req.map_version()); !s.ok()) {
    done(s);
    return;
  }
  std::vector<Role> role;
  std::vector<int32_t> live;
  uint64_t era;
  {
    MutexLock lock(&gate_mu_);
    role = role_;
    live = live_workers_;
    era = era_;
  }
  bool moved = false;
  std::vector<std::pair<int, uint64_t>> needs;
  auto visit = [&](int p) {
    const Partition::PushResult r =
        partitions_[p]->Tick(req.worker(), req.clock(), mode_ == config::BSP, live, &replicator_);
    moved |= r.clock_moved;
    needs.emplace_back(p, r.lsn);
  };
  // A live worker's tick covers every primary partition: as a push does
  // (Push), it raises the floor for those that do not ask for visits.
  const bool lazy = era != 0 && std::find(live.begin(), live.end(), req.worker()) != live.end();
  std::vector<int> skipped;
  for (int p = 0; p < num_partitions_; ++p) {
    if (role[p] != kPrimary) continue;
    if (lazy && visit_flags_[p].load() == 0) {
      skipped.push_back(p);
      continue;
    }
    visit(p);
  }
  if (!skipped.empty()) {
    bool raised_floor = false;
    const bool raised = floor_.Raise(era, req.worker(), req.clock(), &raised_floor);
    moved |= raised_floor;
    for (int p : skipped) {
      if (!raised || visit_flags_[p].load() != 0) visit(p);
    }
  }
  if (mode_ == config::BSP) moved |= CloseAgainIfLiveChanged(live, needs);
  if (moved) WakeParked();
  replicator_.WhenReplicated(std::move(needs), deadline, std::move(done));
}

bool ServerCore::CloseAgainIfLiveChanged(const std::vector<int32_t>& live,
                                         const std::vector<std::pair<int, uint64_t>>& visited) {
  const std::vector<int32_t> now = LiveWorkers();
  if (now == live) return false;
  // A view that dropped a worker closed what it could before this request's
  // visits (UpdateView), and the visits looked with the old list, on which
  // the dropped worker still held the clock: close again with the new one.
  bool moved = false;
  for (const auto& [p, lsn] : visited)
    moved |= partitions_[p]->CloseClocks(now, &replicator_).applied_moved;
  return moved;
}

void ServerCore::WakeParked(bool fresh_only) {
  {
    // Before waking_ is looked at: a round running now goes again, at the
    // new version.
    MutexLock lock(&gate_mu_);
    if (!fresh_only) ++gate_version_;
  }
  while (true) {
    std::vector<Parked> batch;
    std::vector<int32_t> live;
    std::vector<Role> role;
    uint64_t version;
    {
      MutexLock lock(&gate_mu_);
      version = gate_version_;
      if (waking_) {
        rewake_ = true;
        return;
      }
      if (parked_.empty()) return;
      waking_ = true;
      rewake_ = false;
      batch.swap(parked_);
      live = live_workers_;
      role = role_;
    }
    std::map<int, Partition::Gate> gates;  // each partition checked once per round
    std::vector<Parked> ready, still;
    int64_t staleness = 0;
    const bool bsp = mode_ == config::BSP;
    for (Parked& pull : batch) {
      if (pull.closed_at == version) {  // nothing opened a gate since it was found closed
        still.push_back(std::move(pull));
        continue;
      }
      bool open = true;
      int64_t min = kNoClock;
      for (int p : pull.partitions) {
        if (role[p] != kPrimary) continue;  // moved away: Serve says so
        auto it = gates.find(p);
        // BSP looks at the applied clock: while a worker holds it, finding
        // that one is enough (the slowest clock is needed only for the
        // staleness of a pull served).
        if (it == gates.end()) it = gates.emplace(p, partitions_[p]->GateState(live, !bsp)).first;
        if (bsp && !it->second.min_exact && it->second.applied_clock >= pull.clock) {
          it->second = partitions_[p]->GateState(live);
        }
        const Partition::Gate& g = it->second;
        min = std::min(min, g.min_clock);
        open &= bsp ? g.applied_clock >= pull.clock
                    : g.min_clock == kNoClock || g.min_clock >= pull.clock - staleness_;
      }
      if (open) {
        if (min != kNoClock) {
          const int64_t s = std::max<int64_t>(0, pull.clock - min);
          staleness = std::max(staleness, s);
          staleness_counts_[std::min<int64_t>(s, kStalenessBuckets - 1)].fetch_add(
              1, std::memory_order_relaxed);
        }
        ready.push_back(std::move(pull));
      } else {
        if (!pull.waited) {
          pull.waited = true;
          pulls_parked_.fetch_add(1, std::memory_order_relaxed);
        }
        pull.closed_at = version;
        still.push_back(std::move(pull));
      }
    }
    bool again;
    {
      MutexLock lock(&gate_mu_);
      max_staleness_ = std::max(max_staleness_, staleness);
      for (Parked& p : still) parked_.push_back(std::move(p));
      if (shut_down_) {
        for (Parked& p : parked_) ready.push_back(std::move(p));
        parked_.clear();
      }
      again = rewake_;
      waking_ = false;
    }
    for (Parked& p : ready) p.done(Serve(*p.req, p.resp));
    if (!again) return;
  }
}

absl::Status ServerCore::Serve(const rpc::PullRequest& req, rpc::PullResponse* resp) {
  // Routed again: a parked pull's partitions may have moved while it waited.
  auto routing = Route(req, /*with_values=*/false);
  if (!routing.ok()) return routing.status();
  // BSP: the model with exactly the clocks below the pull's applied, also on
  // a partition that applied its clock already (Partition::Read).
  std::optional<int64_t> bsp_clock;
  if (mode_ == config::BSP && req.has_clock()) bsp_clock = req.clock();
  for (const auto& [p, refs] : *routing) partitions_[p]->Read(req, refs, resp, bsp_clock);
  CountLoad(req, *routing);
  pulls_served_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

void ServerCore::Pull(const rpc::PullRequest* req, rpc::PullResponse* resp, absl::Time deadline,
                      Done done) {
  if (req->has_acked_clock() && (req->acked_clock() < 0 || !req->has_clock())) {
    done(absl::InvalidArgumentError(
        absl::StrCat("acked_clock ", req->acked_clock(),
                     req->has_clock() ? " is negative" : " without a clock")));
    return;
  }
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
  if (!req->has_clock() || mode_ == config::ASP) {
    done(Serve(*req, resp));
    return;
  }
  // Partitions loaded from a checkpoint: the puller has covered every clock
  // below its own (see restored_).
  std::vector<int> catch_up;
  std::vector<int32_t> live;
  {
    MutexLock lock(&gate_mu_);
    for (const auto& [p, refs] : *routing) {
      if (restored_[p]) catch_up.push_back(p);
    }
    if (!catch_up.empty()) live = live_workers_;
  }
  const int64_t covered =
      req->has_acked_clock() ? std::min(req->acked_clock(), req->clock()) : req->clock();
  bool caught_up = false;  // a catch-up tick moved a clock
  for (int p : catch_up) {
    caught_up |= partitions_[p]
                     ->Tick(req->worker(), covered, mode_ == config::BSP, live, &replicator_)
                     .clock_moved;
  }
  Parked parked{req, resp, req->clock(), deadline, std::move(done), {}, false, 0};
  for (const auto& [p, refs] : *routing) parked.partitions.push_back(p);
  {
    MutexLock lock(&gate_mu_);
    parked_.push_back(std::move(parked));
  }
  // Only this pull is new (unless its catch-up ticks moved clocks).
  WakeParked(/*fresh_only=*/!caught_up);
}

absl::Status ServerCore::Replicate(const rpc::ReplicateRequest& req, rpc::ReplicateResponse* resp) {
  for (const rpc::PartitionState& s : req.installs()) {
    if (s.partition() >= static_cast<uint32_t>(num_partitions_)) {
      return absl::InvalidArgumentError(absl::StrCat("snapshot of partition ", s.partition(),
                                                     ": the job has ", num_partitions_));
    }
  }
  for (const rpc::ReplicaOp& op : req.ops()) {
    if (op.partition() >= static_cast<uint32_t>(num_partitions_)) {
      return absl::InvalidArgumentError(absl::StrCat("op for partition ", op.partition(),
                                                     ": the job has ", num_partitions_));
    }
    if (absl::Status s = CheckSlices(op.push(), true, tables_); !s.ok()) return s;
    for (const rpc::TableSlice& slice : op.push().slices()) {
      for (uint64_t key : slice.keys()) {
        if (PartitionOf(slice.table(), key, num_partitions_) != static_cast<int>(op.partition())) {
          return absl::InvalidArgumentError(
              absl::StrCat("op for partition ", op.partition(), " holds key ", key,
                           " of another partition"));
        }
      }
    }
  }
  std::vector<uint64_t> view_epoch;
  std::vector<Role> role;
  {
    MutexLock lock(&gate_mu_);
    if (shut_down_) return absl::UnavailableError("server is shutting down");
    view_epoch = epoch_;
    role = role_;
  }
  std::set<uint32_t> refused;
  // Where our view still says we are primary, a copy from elsewhere is
  // either stale (refused) or proof that our view is: then we stop acting as
  // primary there and ask for it again once our view has caught up.
  std::set<uint32_t> stepped_down;
  auto primary_here = [&](uint32_t p, uint64_t epoch) {
    if (role[p] != kPrimary) return false;
    if (refused.insert(p).second) {
      if (epoch > view_epoch[p]) {
        resp->add_resync(p);
        stepped_down.insert(p);
      } else {
        resp->add_fenced(p);
      }
    }
    return true;
  };
  for (const rpc::PartitionState& s : req.installs()) {
    if (primary_here(s.partition(), s.epoch())) continue;
    switch (partitions_[s.partition()]->Install(s, view_epoch[s.partition()])) {
      case Partition::InstallResult::kInstalled: {
        MutexLock lock(&gate_mu_);
        installed_epoch_[s.partition()] = std::max(installed_epoch_[s.partition()], s.epoch());
        break;
      }
      case Partition::InstallResult::kFenced:
        refused.insert(s.partition());
        resp->add_fenced(s.partition());
        break;
      case Partition::InstallResult::kMalformed:
        return absl::InvalidArgumentError(
            absl::StrCat("snapshot of partition ", s.partition(), " is malformed"));
    }
  }
  bool moved = false;
  for (const rpc::ReplicaOp& op : req.ops()) {
    const uint32_t p = op.partition();
    if (refused.count(p) > 0 || primary_here(p, op.epoch())) continue;
    switch (partitions_[p]->ApplyOp(op, view_epoch[p])) {
      case Partition::OpResult::kApplied:
        replica_ops_applied_.fetch_add(1, std::memory_order_relaxed);
        moved = true;
        break;
      case Partition::OpResult::kDuplicate:
        break;
      case Partition::OpResult::kFenced:
        refused.insert(p);
        resp->add_fenced(p);
        break;
      case Partition::OpResult::kGap:
        refused.insert(p);
        resp->add_resync(p);
        break;
    }
  }
  (void)moved;
  for (uint32_t p : stepped_down) Fenced(static_cast<int>(p));
  return absl::OkStatus();
}

void ServerCore::Fenced(int partition) {
  std::function<void()> refresh;
  {
    MutexLock view_lock(&view_mu_);
    std::vector<Role> old_role, new_role;
    const uint64_t era = ++last_era_;
    {
      MutexLock lock(&gate_mu_);
      old_role = role_;
      if (role_[partition] == kPrimary) {
        role_[partition] = kNone;
        stepped_down_ = true;
      }
      new_role = role_;
      era_ = era;
      primaries_ = static_cast<int>(std::count(role_.begin(), role_.end(), kPrimary));
      refresh = refresh_;
    }
    NewFloorEra(era, old_role, new_role);
    replicator_.SetPrimary(partition, false);
    if (mode_ == config::BSP) {
      // As UpdateView does: a fold of the floor may have completed clocks
      // that a push visiting meanwhile (floor 0) could not close.
      const std::vector<int32_t> live = LiveWorkers();
      for (int p = 0; p < num_partitions_; ++p) {
        if (new_role[p] == kPrimary) partitions_[p]->CloseClocks(live, &replicator_);
      }
    }
  }
  // Pulls parked while the era changed saw a floor of 0 meanwhile.
  WakeParked();
  spdlog::warn("server {}: stepped down as primary of partition {}: a newer primary exists", rank_,
               partition);
  if (refresh) refresh();
}

void ServerCore::Resync(int partition, int backup) {
  MutexLock view_lock(&view_mu_);
  std::vector<int> backups = replicator_.Backups(partition);
  if (std::find(backups.begin(), backups.end(), backup) == backups.end()) return;
  spdlog::warn("server {}: backup {} of partition {} is out of sequence; sending a snapshot", rank_,
               backup, partition);
  partitions_[partition]->State(
      [&](const rpc::PartitionState& s) { replicator_.AddBackup(partition, backup, s); });
}

void ServerCore::ExpireParked(absl::Time now) {
  replicator_.Expire(now);
  std::vector<Parked> expired;
  {
    MutexLock lock(&gate_mu_);
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
  if (expired.empty()) return;
  const std::vector<int32_t> live = LiveWorkers();
  for (Parked& p : expired) {
    int64_t min = kNoClock;
    for (int part : p.partitions) min = std::min(min, partitions_[part]->GateState(live).min_clock);
    p.done(absl::DeadlineExceededError(absl::StrCat("pull at clock ", p.clock,
                                                    " waited past its deadline; slowest live worker "
                                                    "is at clock ", min)));
  }
}

void ServerCore::Shutdown() {
  std::vector<Parked> parked;
  {
    MutexLock lock(&gate_mu_);
    if (shut_down_) return;
    shut_down_ = true;
    parked.swap(parked_);
  }
  for (Parked& p : parked) p.done(absl::UnavailableError("server is shutting down"));
  replicator_.Shutdown();
}

absl::StatusOr<rpc::SaveModelResponse> ServerCore::SaveModel(const std::string& requested) {
  auto resolved = WritableJobDir(job_, requested);
  if (!resolved.ok()) return resolved.status();
  const std::string& dir = *resolved;
  if (absl::Status s = MakeDirs(dir); !s.ok()) return s;
  std::vector<Role> role;
  {
    MutexLock lock(&gate_mu_);
    role = role_;
  }
  rpc::SaveModelResponse resp;
  for (int p = 0; p < num_partitions_; ++p) {
    if (role[p] != kPrimary) continue;
    std::vector<TableRows> rows = partitions_[p]->Snapshot();
    uint64_t keys = 0;
    for (const TableRows& t : rows) keys += t.keys.size();
    resp.set_keys_written(resp.keys_written() + keys);
    resp.add_partition_keys(keys);
    // An empty partition has no file: the MANIFEST lists it as empty.
    if (keys == 0) {
      resp.add_partitions(p);
      continue;
    }
    if (absl::Status s = WritePartitionFile(dir, p, rows); !s.ok()) return s;
    resp.add_partitions(p);
  }
  return resp;
}

absl::StatusOr<rpc::CheckpointResponse> ServerCore::Checkpoint(const std::string& requested) {
  auto resolved = WritableJobDir(job_, requested);
  if (!resolved.ok()) return resolved.status();
  const std::string& dir = *resolved;
  if (absl::Status s = MakeDirs(dir); !s.ok()) return s;
  std::vector<Role> role;
  {
    MutexLock lock(&gate_mu_);
    role = role_;
  }
  rpc::CheckpointResponse resp;
  const std::vector<int32_t> live = LiveWorkers();
  for (int p = 0; p < num_partitions_; ++p) {
    if (role[p] != kPrimary) continue;
    // Clocks the floor passed with nothing buffered are closed first, so a
    // checkpoint does not depend on when the partition was last visited.
    if (mode_ == config::BSP && partitions_[p]->CloseClocks(live, &replicator_).applied_moved) {
      WakeParked();
    }
    const rpc::PartitionState state = partitions_[p]->State();
    for (const rpc::PartitionState::WorkerClock& c : state.clocks()) {
      resp.set_next_clock(std::max(resp.next_clock(), c.next()));
    }
    std::string sha256;
    if (absl::Status s = WritePartitionState(dir, state, &sha256); !s.ok()) return s;
    resp.set_bytes(resp.bytes() + state.ByteSizeLong());
    resp.add_partitions(p);
    resp.add_sha256(std::move(sha256));
  }
  return resp;
}

rpc::StatsResponse ServerCore::Stats() const {
  rpc::StatsResponse s;
  s.set_pushes_applied(pushes_applied_.load());
  s.set_pushes_duplicate(pushes_duplicate_.load());
  s.set_pulls_served(pulls_served_.load());
  s.set_pulls_parked(pulls_parked_.load());
  s.set_replica_ops_applied(replica_ops_applied_.load());
  const Replicator::Counters c = replicator_.counters();
  s.set_replica_ops_sent(c.ops_sent);
  s.set_snapshots_sent(c.snapshots_sent);
  std::vector<Role> role;
  {
    MutexLock lock(&gate_mu_);
    s.set_max_staleness_served(max_staleness_);
    role = role_;
  }
  uint64_t keys = 0;
  for (int p = 0; p < num_partitions_; ++p) {
    if (role[p] == kPrimary) {
      keys += partitions_[p]->num_keys();
      s.set_partitions_primary(s.partitions_primary() + 1);
    } else if (role[p] == kBackup) {
      s.set_partitions_backup(s.partitions_backup() + 1);
    }
  }
  s.set_keys_stored(keys);
  return s;
}

}  // namespace ps

#include "scheduler/rebalancer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/audit.h"
#include "scheduler/placement.h"
#include "spdlog/spdlog.h"

namespace ps {

Rebalancer::Rebalancer(const config::ClusterSection& cluster)
    : replication_(cluster.replication()),
      interval_ms_(cluster.rebalance_interval_ms()),
      threshold_(cluster.rebalance_threshold()) {}

void Rebalancer::ReportTraffic(const rpc::ClusterView& view, int32_t server,
                               const std::map<uint32_t, uint64_t>& bytes, double seconds) {
  if (load_.size() != static_cast<size_t>(view.placement_size())) {
    load_.assign(view.placement_size(), 0.0);
  }
  const double dt = std::max(1e-3, seconds);
  for (int p = 0; p < view.placement_size(); ++p) {
    if (view.placement(p).primary() != server) continue;
    auto b = bytes.find(p);
    const double rate = b == bytes.end() ? 0.0 : b->second / dt;
    load_[p] = 0.5 * load_[p] + 0.5 * rate;
  }
}

std::map<int, double> Rebalancer::ServerLoads(const rpc::ClusterView& view,
                                              const std::set<int32_t>& eligible) const {
  std::map<int, double> load;
  for (int32_t rank : eligible) load[rank] = 0;
  for (int p = 0; p < view.placement_size() && p < static_cast<int>(load_.size()); ++p) {
    auto it = load.find(view.placement(p).primary());
    if (it != load.end()) it->second += load_[p];
  }
  return load;
}

void Rebalancer::Start(int partition, int to, absl::Time now, rpc::ClusterView* view) {
  rpc::Placement* pl = view->mutable_placement(partition);
  if (moves_.count(partition) > 0 || pl->primary() == to) return;
  if (!Holds(pl->backups(), to)) {
    pl->add_backups(to);
    view->set_version(view->version() + 1);
  }
  moves_[partition] = Move{partition, pl->primary(), to, now};
}

void Rebalancer::Advance(absl::Time now, const Servers& servers, rpc::ClusterView* view,
                         const std::function<void()>& refill) {
  constexpr size_t kMovesInFlight = 4;
  while (moves_.size() < kMovesInFlight && !planned_.empty()) {
    const Move m = planned_.front();
    planned_.pop_front();
    if (view->placement(m.partition).primary() != m.from || !Alive(servers, m.to)) continue;
    Start(m.partition, m.to, now, view);
  }
  bool flipped = false;
  for (auto it = moves_.begin(); it != moves_.end();) {
    const Move m = it->second;
    rpc::Placement* pl = view->mutable_placement(m.partition);
    if (pl->primary() != m.from || !Alive(servers, m.to)) {
      it = moves_.erase(it);  // a failover got there first
      continue;
    }
    if (!Holds(pl->synced_backups(), m.to)) {
      if (now - m.started > absl::Seconds(30)) {
        spdlog::warn("moving partition {} to server {}: no complete copy after {}; given up",
                     m.partition, m.to, absl::FormatDuration(now - m.started));
        if (pl->backups_size() >= replication_) {
          DropBackup(pl, m.to);
          view->set_version(view->version() + 1);
        }
        it = moves_.erase(it);
      } else {
        ++it;
      }
      continue;
    }
    // The flip: the target is primary in a new epoch (the old primary's
    // forwards are refused from now on); the old primary keeps no copy.
    DropBackup(pl, m.to);
    pl->set_primary(m.to);
    NewTerm(pl);
    view->set_partition_owner(m.partition, m.to);
    ++migrations_;
    moved_at_[m.partition] = now;
    flipped = true;
    spdlog::info("moved partition {} from server {} to server {} in {}", m.partition, m.from, m.to,
                 absl::FormatDuration(now - m.started));
    Audit("partition_moved", {{"partition", absl::StrCat(m.partition)},
                              {"from", absl::StrCat(m.from)},
                              {"to", absl::StrCat(m.to)}});
    it = moves_.erase(it);
  }
  if (flipped) {
    refill();
    view->set_version(view->version() + 1);
  }
}

void Rebalancer::Step(absl::Time now, const Servers& servers, rpc::ClusterView* view,
                      const std::function<void()>& refill) {
  if (view->placement_size() == 0) return;
  if (load_.size() != static_cast<size_t>(view->placement_size())) {
    load_.assign(view->placement_size(), 0.0);
  }
  Advance(now, servers, view, refill);
  // Draining servers: their backup copies go at once (others are placed),
  // their primaries move to the least busy servers.
  for (int32_t rank : servers.draining) {
    bool changed = false;
    for (int p = 0; p < view->placement_size(); ++p) {
      rpc::Placement* pl = view->mutable_placement(p);
      if (!Holds(pl->backups(), rank)) continue;
      DropBackup(pl, rank);
      changed = true;
    }
    if (changed) {
      refill();
      view->set_version(view->version() + 1);
    }
    std::map<int, double> load = ServerLoads(*view, servers.eligible);
    if (load.empty()) return;
    for (int p = 0; p < view->placement_size(); ++p) {
      if (view->placement(p).primary() != rank || moves_.count(p) > 0) continue;
      bool planned = false;
      for (const Move& m : planned_) planned |= m.partition == p;
      if (planned) continue;
      int best = -1;
      for (const auto& [r, l] : load) {
        if (best < 0 || l < load.at(best)) best = r;
      }
      load[best] += load_[p] + 1;  // spread the moves
      spdlog::info("draining server {}: moving partition {} to server {}", rank, p, best);
      planned_.push_back(Move{p, rank, best, now});
    }
  }
  Advance(now, servers, view, refill);
  if (interval_ms_ <= 0 || !moves_.empty() || !planned_.empty() ||
      now - last_balance_ < absl::Milliseconds(interval_ms_)) {
    return;
  }
  last_balance_ = now;
  const std::map<int, double> load = ServerLoads(*view, servers.eligible);
  if (load.size() < 2) return;
  double total = 0;
  int hot = -1, cool = -1;
  for (const auto& [rank, l] : load) {
    total += l;
    if (hot < 0 || l > load.at(hot)) hot = rank;
    if (cool < 0 || l < load.at(cool)) cool = rank;
  }
  const double mean = total / load.size();
  if (total <= 0 || load.at(hot) <= threshold_ * mean) {
    imbalanced_checks_ = 0;
    return;
  }
  if (++imbalanced_checks_ < 2) return;  // seen twice in a row before acting
  imbalanced_checks_ = 0;
  // Partitions of the busiest server, largest first, that together carry
  // about half the gap to the least busy one, without overshooting.
  std::vector<int> candidates;
  for (int p = 0; p < view->placement_size(); ++p) {
    auto moved = moved_at_.find(p);
    if (moved != moved_at_.end() && now - moved->second < absl::Seconds(30)) continue;
    if (view->placement(p).primary() == hot && load_[p] > 0) candidates.push_back(p);
  }
  std::sort(candidates.begin(), candidates.end(),
            [&](int a, int b) { return load_[a] > load_[b]; });
  double budget = (load.at(hot) - load.at(cool)) / 2;
  std::vector<int> chosen;
  for (int p : candidates) {
    if (load_[p] <= budget) {
      chosen.push_back(p);
      budget -= load_[p];
    }
  }
  if (chosen.empty()) return;
  spdlog::info(
      "rebalance: server {} carries {:.0f} B/s (mean {:.0f}; server {}: {:.0f}); moving {} "
      "of its partitions to server {}",
      hot, load.at(hot), mean, cool, load.at(cool), chosen.size(), cool);
  for (int p : chosen) planned_.push_back(Move{p, hot, cool, now});
  Advance(now, servers, view, refill);
}

std::string Rebalancer::Describe() const {
  std::string out;
  for (const auto& [p, m] : moves_) {
    absl::StrAppend(&out, out.empty() ? "" : ", ",
                    absl::StrFormat("partition %d: server %d -> %d", p, m.from, m.to));
  }
  return out;
}

void Rebalancer::Save(rpc::SchedulerState* s) const {
  for (const auto& [p, m] : moves_) {
    rpc::SchedulerState::Move* out = s->add_moves();
    out->set_partition(m.partition);
    out->set_from(m.from);
    out->set_to(m.to);
  }
  for (const Move& m : planned_) {
    rpc::SchedulerState::Move* out = s->add_planned();
    out->set_partition(m.partition);
    out->set_from(m.from);
    out->set_to(m.to);
  }
  s->set_migrations(migrations_);
}

void Rebalancer::Load(const rpc::SchedulerState& s, absl::Time now) {
  moves_.clear();
  for (const auto& m : s.moves())
    moves_[m.partition()] = Move{m.partition(), m.from(), m.to(), now};
  planned_.clear();
  for (const auto& m : s.planned()) planned_.push_back(Move{m.partition(), m.from(), m.to(), now});
  migrations_ = s.migrations();
}

}  // namespace ps

#include "scheduler/placement.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_format.h"

namespace ps {

bool Holds(const google::protobuf::RepeatedField<int32_t>& list, int32_t rank) {
  return std::find(list.begin(), list.end(), rank) != list.end();
}

void Drop(google::protobuf::RepeatedField<int32_t>* list, int32_t rank) {
  list->erase(std::remove(list->begin(), list->end(), rank), list->end());
}

void DropBackup(rpc::Placement* pl, int32_t rank) {
  Drop(pl->mutable_backups(), rank);
  Drop(pl->mutable_synced_backups(), rank);
}

void NewTerm(rpc::Placement* pl) {
  pl->set_epoch(pl->epoch() + 1);
  pl->clear_synced_backups();
}

void PlaceInitially(int partitions, int servers, int replication, const std::string& restore_from,
                    rpc::ClusterView* view) {
  view->clear_partition_owner();
  view->clear_placement();
  for (int p = 0; p < partitions; ++p) {
    view->add_partition_owner(p % servers);
    rpc::Placement* pl = view->add_placement();
    pl->set_primary(p % servers);
    for (int b = 1; b < replication; ++b) pl->add_backups((p + b) % servers);
    pl->set_epoch(1);
    if (!restore_from.empty()) {
      pl->set_restore_from(restore_from);
      pl->set_restore_epoch(pl->epoch());
    }
  }
}

std::string PartitionsOf(const rpc::ClusterView& view, int32_t rank) {
  int primary = 0, backup = 0;
  for (const rpc::Placement& pl : view.placement()) {
    primary += pl.primary() == rank;
    backup += Holds(pl.backups(), rank);
  }
  return absl::StrFormat("primary of %d, backup of %d", primary, backup);
}

std::vector<int> PartitionsLostWithout(const rpc::ClusterView& view, int32_t rank,
                                       const std::function<bool(int32_t)>& alive) {
  std::vector<int> lost;
  for (int p = 0; p < view.placement_size(); ++p) {
    const rpc::Placement& pl = view.placement(p);
    if (pl.primary() != rank) continue;
    bool backup_alive = false;
    for (int32_t b : pl.synced_backups()) backup_alive |= b != rank && alive(b);
    if (!backup_alive) lost.push_back(p);
  }
  return lost;
}

int PromoteBackupsOf(rpc::ClusterView* view, int32_t rank,
                     const std::function<bool(int32_t)>& alive) {
  int promoted = 0;
  for (int p = 0; p < view->placement_size(); ++p) {
    rpc::Placement* pl = view->mutable_placement(p);
    DropBackup(pl, rank);
    if (pl->primary() != rank) continue;
    // The first live backup with a complete copy takes over, in a new
    // epoch: the old primary's forwards are refused from now on.
    const auto& synced = pl->synced_backups();
    const auto next = std::find_if(synced.begin(), synced.end(), alive);
    if (next == synced.end()) continue;  // REQUIRES says this cannot be
    pl->set_primary(*next);
    DropBackup(pl, pl->primary());
    NewTerm(pl);
    pl->clear_restore_from();  // the state comes from the backup
    pl->clear_restore_rejoin();
    view->set_partition_owner(p, pl->primary());
    ++promoted;
  }
  return promoted;
}

int RefillBackups(rpc::ClusterView* view, int want, const std::set<int32_t>& servers) {
  if (want <= 0 || view->placement_size() == 0) return 0;
  // Replicas held per server; standbys (holding nothing) come first.
  std::map<int32_t, int> load;
  for (int32_t rank : servers) load[rank] = 0;
  for (const rpc::Placement& pl : view->placement()) {
    if (load.count(pl.primary()) > 0) ++load[pl.primary()];
    for (int32_t b : pl.backups()) {
      if (load.count(b) > 0) ++load[b];
    }
  }
  int added = 0;
  for (int p = 0; p < view->placement_size(); ++p) {
    rpc::Placement* pl = view->mutable_placement(p);
    while (pl->backups_size() < want) {
      int32_t best = -1;
      for (const auto& [rank, n] : load) {
        if (rank == pl->primary() || Holds(pl->backups(), rank)) continue;
        if (best < 0 || n < load[best]) best = rank;
      }
      if (best < 0) break;  // no server left to hold another copy
      pl->add_backups(best);
      ++load[best];
      ++added;
    }
  }
  return added;
}

}  // namespace ps

// Placement: where each partition's copies live, as pure functions over the
// shard map (rpc::ClusterView's placements): the initial map, a dead
// server's partitions promoted to their backups, backups refilled on the
// servers holding the fewest copies. SchedulerCore calls them under its lock
// on its own view; they touch nothing else, so they are tested on made-up
// maps (tests/scheduler/placement_test.cc).
#ifndef PS_SCHEDULER_PLACEMENT_H_
#define PS_SCHEDULER_PLACEMENT_H_

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "google/protobuf/repeated_field.h"
#include "proto/scheduler.pb.h"

namespace ps {

// Membership tests and removals on a placement's rank lists.
bool Holds(const google::protobuf::RepeatedField<int32_t>& list, int32_t rank);
void Drop(google::protobuf::RepeatedField<int32_t>* list, int32_t rank);
// Takes server `rank` out of a partition's backups (complete copy or not).
void DropBackup(rpc::Placement* pl, int32_t rank);
// A new primary term for the partition (promotion, move, restore). Its
// backups hold copies of the old term until the new primary's snapshot
// reaches them, and a server reports a backup complete only with a snapshot
// of the view's epoch: none counts as complete until it says so again (a
// move's flip left them listed, so psctl showed nothing copying while the
// new primary was the only complete copy, and the chaos run killed it).
void NewTerm(rpc::Placement* pl);

// The initial map of `partitions` partitions on `servers` servers: primary
// p mod n, backups on the next replication-1 servers, epoch 1; with
// `restore_from` (a resumed job), every primary loads from it first.
void PlaceInitially(int partitions, int servers, int replication, const std::string& restore_from,
                    rpc::ClusterView* view);

// "primary of P, backup of B": what server `rank` holds.
std::string PartitionsOf(const rpc::ClusterView& view, int32_t rank);

// The partitions server `rank` is primary of that have no complete copy on
// a server `alive` says is alive: lost if `rank` dies.
std::vector<int> PartitionsLostWithout(const rpc::ClusterView& view, int32_t rank,
                                       const std::function<bool(int32_t)>& alive);

// Server `rank` is gone: it leaves every backup list, and each partition it
// was primary of is taken over by its first complete backup that is alive,
// in a new term. Returns how many were promoted. REQUIRES: no partition of
// PartitionsLostWithout(view, rank, alive) still has `rank` as its primary.
int PromoteBackupsOf(rpc::ClusterView* view, int32_t rank,
                     const std::function<bool(int32_t)>& alive);

// Gives every partition short of `want` backups new ones among `servers`
// (live, not draining), on those holding the fewest copies (primary or
// backup) first; never two copies on one server. Returns how many were
// placed (fewer when there are not enough servers).
int RefillBackups(rpc::ClusterView* view, int want, const std::set<int32_t>& servers);

}  // namespace ps

#endif  // PS_SCHEDULER_PLACEMENT_H_

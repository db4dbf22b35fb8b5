#include "server/partition.h"

#include <algorithm>
#include <limits>

#include "common/partitioning.h"

namespace ps {
namespace {

constexpr int64_t kNoClock = std::numeric_limits<int64_t>::max();

float LrScale(const rpc::PushRequest& req) { return req.lr_scale() > 0 ? req.lr_scale() : 1.0f; }

// The push `req` cut to `refs`, for a backup.
rpc::PushRequest CutPush(const rpc::PushRequest& req, absl::Span<const KeyRef> refs,
                         const std::vector<TableSpec>& tables) {
  rpc::PushRequest out;
  out.set_worker(req.worker());
  out.set_incarnation(req.incarnation());
  out.set_seq(req.seq());
  if (req.has_clock()) out.set_clock(req.clock());
  out.set_num_examples(req.num_examples());
  out.set_lr_scale(req.lr_scale());
  std::vector<rpc::TableSlice*> slices(req.slices_size(), nullptr);
  for (const KeyRef& r : refs) {
    const rpc::TableSlice& in = req.slices(r.slice);
    rpc::TableSlice*& s = slices[r.slice];
    if (s == nullptr) {
      s = out.add_slices();
      s->set_table(in.table());
    }
    const int dim = tables[in.table()].dim;
    s->add_keys(in.keys(r.index));
    const float* v = in.values().data() + static_cast<size_t>(r.index) * dim;
    s->mutable_values()->Add(v, v + dim);
  }
  return out;
}

}  // namespace

std::vector<KeyRef> AllKeys(const rpc::PushRequest& push) {
  std::vector<KeyRef> refs;
  for (int s = 0; s < push.slices_size(); ++s) {
    for (int i = 0; i < push.slices(s).keys_size(); ++i) {
      refs.push_back(KeyRef{static_cast<uint32_t>(s), static_cast<uint32_t>(i)});
    }
  }
  return refs;
}

Partition::Partition(int id, const std::vector<TableSpec>* tables,
                     const std::vector<std::unique_ptr<Optimizer>>* optimizers, uint64_t seed,
                     ClockFloor* floor, std::atomic<uint8_t>* visit_flag)
    : id_(id),
      tables_(tables),
      optimizers_(optimizers),
      seed_(seed),
      floor_(floor),
      visit_flag_(visit_flag),
      before_index_(tables->size()),
      before_values_(tables->size()) {
  data_.reserve(tables->size());
  for (uint32_t t = 0; t < tables->size(); ++t) data_.emplace_back(stride(t));
}

int Partition::stride(uint32_t table) const {
  return (*tables_)[table].dim * (1 + (*optimizers_)[table]->num_slots());
}

float* Partition::RowLocked(uint32_t table, uint64_t key, uint32_t** step) {
  bool inserted;
  float* row = data_[table].FindOrAdd(key, (*optimizers_)[table]->slot_init(), step, &inserted);
  if (inserted) InitializeRow((*tables_)[table], seed_, key, row);
  return row;
}

int64_t Partition::FloorLocked(int32_t worker) const {
  return following_ == 0 ? 0 : floor_->Get(following_, worker);
}

int64_t Partition::NextLocked(int32_t worker) const {
  auto it = next_clock_.find(worker);
  const int64_t own = it == next_clock_.end() ? 0 : it->second;
  return std::max(own, FloorLocked(worker));
}

void Partition::FoldLocked(absl::Span<const std::pair<int32_t, int64_t>> floors) {
  for (const auto& [worker, floor] : floors) {
    int64_t& own = next_clock_[worker];
    if (floor <= own) continue;
    for (auto it = pending_.lower_bound(own); it != pending_.end() && it->first < floor; ++it) {
      if (it->second.count(worker) > 0) continue;
      uint64_t examples;
      float lr_scale;
      if (floor_ != nullptr && floor_->Recorded(worker, it->first, &examples, &lr_scale)) {
        Buffered& b = it->second[worker];
        b.examples = examples;
        b.lr_scale = lr_scale;
      }
    }
    own = floor;
  }
}

void Partition::CompleteClockLocked(int64_t clock) {
  if (floor_ == nullptr) return;
  auto it = pending_.find(clock);
  if (it == pending_.end()) return;
  // Workers past `clock` with no part buffered for it passed it through the
  // floor (or ticked over it: then nothing was recorded, and rightly nothing
  // is added). Their own clocks are those or the floor's.
  std::vector<int32_t> workers;
  for (const auto& [worker, next] : next_clock_) workers.push_back(worker);
  for (const auto& [worker, next] : floor_->All(following_)) workers.push_back(worker);
  for (int32_t worker : workers) {
    if (it->second.count(worker) > 0 || NextLocked(worker) <= clock) continue;
    uint64_t examples;
    float lr_scale;
    if (floor_->Recorded(worker, clock, &examples, &lr_scale)) {
      Buffered& b = it->second[worker];
      b.examples = examples;
      b.lr_scale = lr_scale;
    }
  }
}

void Partition::UpdateVisitFlagLocked() {
  if (visit_flag_ == nullptr) return;
  if (!pending_.empty() || rejoining_) {
    visit_flag_->fetch_or(kVisitSelf);
  } else {
    visit_flag_->fetch_and(static_cast<uint8_t>(~kVisitSelf));
  }
}

void Partition::FollowFloor(uint64_t era) {
  MutexLock lock(&mu_);
  if (floor_ != nullptr) following_ = era;
}

void Partition::FoldFloor(uint64_t era, absl::Span<const std::pair<int32_t, int64_t>> floors) {
  MutexLock lock(&mu_);
  if (following_ == 0 || following_ != era) return;
  FoldLocked(floors);
  following_ = 0;
}

bool Partition::SeenLocked(const rpc::PushRequest& req) {
  if (req.seq() == 0) return false;
  uint64_t& last = last_seq_[PusherId{req.worker(), req.incarnation()}];
  if (req.seq() <= last) return true;
  last = req.seq();
  return false;
}

void Partition::EmitLocked(OpSink* sink, rpc::ReplicaOp op) {
  op.set_partition(id_);
  op.set_epoch(epoch_);
  op.set_lsn(lsn_);
  sink->Enqueue(id_, std::move(op));
}

bool Partition::PushLocked(const rpc::PushRequest& req, absl::Span<const KeyRef> refs, bool buffer) {
  if (buffer) {
    // One contribution per worker and clock: a standby worker that took over
    // a rank redoes the clock its predecessor died in; the partitions that
    // have it already keep the first (the same gradient).
    auto it = next_clock_.find(req.worker());
    if (it != next_clock_.end() && it->second > req.clock()) return false;
  }
  if (SeenLocked(req)) return false;
  if (buffer && req.clock() < applied_clock_) {
    // Its clock was closed without it (the worker had been dropped): too late.
  } else if (buffer) {
    Buffered& b = pending_[req.clock()][req.worker()];
    b.lr_scale = LrScale(req);
    b.examples = req.num_examples();
    for (const KeyRef& r : refs) {
      const rpc::TableSlice& in = req.slices(r.slice);
      const int dim = (*tables_)[in.table()].dim;
      b.keys.emplace_back(in.table(), in.keys(r.index));
      const float* g = in.values().data() + static_cast<size_t>(r.index) * dim;
      b.grads.insert(b.grads.end(), g, g + dim);
    }
    // Before anything reads the floor (CloseClocksLocked): a push that
    // raises it and then finds the flag clear is seen by that read.
    UpdateVisitFlagLocked();
  } else {
    const float scale = static_cast<float>(1.0 / static_cast<double>(std::max<uint64_t>(1, req.num_examples())));
    for (const KeyRef& r : refs) {
      const rpc::TableSlice& in = req.slices(r.slice);
      const uint32_t table = in.table();
      const int dim = (*tables_)[table].dim;
      const float* g = in.values().data() + static_cast<size_t>(r.index) * dim;
      uint32_t* step;
      float* row = RowLocked(table, in.keys(r.index), &step);
      (*optimizers_)[table]->Update(dim, g, scale, LrScale(req), row, row + dim, step, dim);
    }
  }
  if (req.has_clock()) TickLocked(req.worker(), req.clock() + 1);
  return true;
}

bool Partition::TickLocked(int32_t worker, int64_t clock) {
  if (rejoining_) rejoined_.insert(worker);
  int64_t& next = next_clock_[worker];
  if (clock <= next) return false;
  next = clock;
  return true;
}

Partition::PushResult Partition::Push(const rpc::PushRequest& req, absl::Span<const KeyRef> refs,
                                      bool buffer, absl::Span<const int32_t> live, OpSink* sink) {
  MutexLock lock(&mu_);
  PushResult result;
  result.fresh = PushLocked(req, refs, buffer);
  if (result.fresh) {
    ++lsn_;
    if (sink != nullptr && sink->Replicating(id_)) {
      rpc::ReplicaOp op;
      op.set_kind(buffer ? rpc::ReplicaOp::BUFFER : rpc::ReplicaOp::APPLY);
      *op.mutable_push() = CutPush(req, refs, *tables_);
      EmitLocked(sink, std::move(op));
    }
    result.clock_moved = req.has_clock();
  }
  if (buffer) {
    result.applied_moved = CloseClocksLocked(live, sink);
    result.clock_moved |= result.applied_moved;
  }
  result.lsn = lsn_;
  return result;
}

Partition::PushResult Partition::Tick(int32_t worker, int64_t clock, bool close,
                                      absl::Span<const int32_t> live, OpSink* sink) {
  MutexLock lock(&mu_);
  PushResult result;
  if (TickLocked(worker, clock)) {
    result.clock_moved = true;
    ++lsn_;
    if (sink != nullptr && sink->Replicating(id_)) {
      rpc::ReplicaOp op;
      op.set_kind(rpc::ReplicaOp::TICK);
      op.set_worker(worker);
      op.set_clock(clock);
      EmitLocked(sink, std::move(op));
    }
  }
  if (close) {
    result.applied_moved = CloseClocksLocked(live, sink);
    result.clock_moved |= result.applied_moved;
  }
  result.lsn = lsn_;
  return result;
}

Partition::PushResult Partition::CloseClocks(absl::Span<const int32_t> live, OpSink* sink) {
  MutexLock lock(&mu_);
  PushResult result;
  result.clock_moved = result.applied_moved = CloseClocksLocked(live, sink);
  result.lsn = lsn_;
  return result;
}

bool Partition::CloseClocksLocked(absl::Span<const int32_t> live, OpSink* sink) {
  if (live.empty()) return false;
  // A worker still at the applied clock holds it: no need to look further.
  // All but a clock's last push stop here, at the worker that held it the
  // last time if it still does, else at the next one on from it, so a clock
  // costs O(workers) lookups per partition, not O(workers^2) (workers
  // pushing in rank order made every push look at the ranks before it).
  const size_t n = live.size();
  const size_t start = holder_hint_ < n ? holder_hint_ : 0;
  for (size_t k = 0, i = start; k < n; ++k, i = i + 1 == n ? 0 : i + 1) {
    if (CountsLocked(live[i]) && NextLocked(live[i]) <= applied_clock_) {
      holder_hint_ = i;
      return false;
    }
  }
  int64_t target = kNoClock;
  for (int32_t w : live) {
    if (CountsLocked(w)) target = std::min(target, NextLocked(w));
  }
  if (target == kNoClock) return false;  // rejoining, nobody heard from yet
  bool moved = false;
  while (applied_clock_ < target) {
    // Clocks nobody pushed anything here for change nothing but the clock:
    // they are closed as one, up to the next clock with pushes or the
    // target (a worker's clock may jump far ahead: one step per clock
    // would loop for as long; found by fuzz_data_frame).
    int64_t clock = applied_clock_;
    auto next = pending_.lower_bound(clock);
    if (next == pending_.end() || next->first > clock) {
      clock = (next == pending_.end() ? target : std::min(target, next->first)) - 1;
    } else {
      CompleteClockLocked(clock);
    }
    ApplyClockLocked(clock);
    ++lsn_;
    if (sink != nullptr && sink->Replicating(id_)) {
      rpc::ReplicaOp op;
      op.set_kind(rpc::ReplicaOp::CLOCK);
      op.set_clock(clock);
      EmitLocked(sink, std::move(op));
    }
    moved = true;
  }
  return moved;
}

void Partition::ApplyClockLocked(int64_t clock) {
  applied_clock_ = std::max(applied_clock_, clock + 1);
  before_clock_ = clock;
  for (auto& index : before_index_) {
    if (!index.empty()) index.clear();
  }
  for (auto& values : before_values_) values.clear();
  auto it = pending_.find(clock);
  if (it == pending_.end()) return;
  // Most partitions of a large job got only the clock (empty parts of
  // clocked pushes): nothing to apply.
  bool any_keys = false;
  for (const auto& [rank, b] : it->second) any_keys |= !b.keys.empty();
  if (!any_keys) {
    pending_.erase(it);
    UpdateVisitFlagLocked();
    return;
  }
  // Each key's gradient is its workers' sum in rank order (std::map iterates
  // ranks ascending), in double, so the result does not depend on arrival
  // order. First an index: per table, each key's contributions in rank order
  // (pointers into the buffered pushes, which stay until the end).
  clock_index_.resize(data_.size());
  for (ClockIndex& c : clock_index_) {
    c.keys.clear();
    c.first.clear();
    c.last.clear();
  }
  contributions_.clear();
  // Size each table's index for every key it may get (twice as many slots).
  std::vector<size_t>& counts = clock_counts_;
  counts.assign(data_.size(), 0);
  for (const auto& [rank, b] : it->second) {
    for (const auto& [table, key] : b.keys) ++counts[table];
  }
  for (uint32_t table = 0; table < counts.size(); ++table) {
    if (counts[table] == 0) continue;
    size_t cap = 16;
    while (cap < 2 * counts[table]) cap *= 2;
    clock_index_[table].slots.assign(cap, 0);
  }
  constexpr uint32_t kEnd = UINT32_MAX;
  const float lr_scale = it->second.begin()->second.lr_scale;  // the same for every rank
  uint64_t examples = 0;
  for (const auto& [rank, b] : it->second) {
    examples += b.examples;
    const float* g = b.grads.data();
    for (const auto& [table, key] : b.keys) {
      ClockIndex& c = clock_index_[table];
      const size_t mask = c.slots.size() - 1;
      size_t i = static_cast<size_t>(Mix64(key)) & mask;
      while (c.slots[i] != 0 && c.keys[c.slots[i] - 1] != key) i = (i + 1) & mask;
      const uint32_t at = static_cast<uint32_t>(contributions_.size());
      contributions_.push_back(Contribution{g, kEnd});
      if (c.slots[i] == 0) {
        c.keys.push_back(key);
        c.slots[i] = static_cast<uint32_t>(c.keys.size());
        c.first.push_back(at);
        c.last.push_back(at);
      } else {
        uint32_t& last = c.last[c.slots[i] - 1];
        contributions_[last].next = at;
        last = at;
      }
      g += (*tables_)[table].dim;
    }
  }
  // Then per key, a range of at most kClockBlock values at a time: the sum
  // over its contributions, scaled (the mean over the clock's examples), the
  // values before the step (for Read), and the optimizer's step over the
  // range, all while the range is in cache (one pass over the row instead of
  // a pass per stage).
  constexpr int kClockBlock = 1024;
  const double scale = 1.0 / static_cast<double>(std::max<uint64_t>(1, examples));
  for (uint32_t table = 0; table < clock_index_.size(); ++table) {
    const ClockIndex& c = clock_index_[table];
    if (c.keys.empty()) continue;
    const int dim = (*tables_)[table].dim;
    // Statistics rows (min and max at fixed places) are updated whole.
    const int block = (*tables_)[table].statistics ? dim : std::min(dim, kClockBlock);
    clock_grad_.resize(block);
    clock_sum_.resize(block);
    const Optimizer& optimizer = *(*optimizers_)[table];
    std::vector<float>& before = before_values_[table];
    before.reserve(c.keys.size() * dim);
    before_index_[table].reserve(c.keys.size());
    for (size_t j = 0; j < c.keys.size(); ++j) {
      clock_sources_.clear();
      for (uint32_t k = c.first[j]; k != kEnd; k = contributions_[k].next) {
        clock_sources_.push_back(contributions_[k].grad);
      }
      uint32_t* step;
      float* row = RowLocked(table, c.keys[j], &step);
      before_index_[table].emplace(c.keys[j], static_cast<uint32_t>(before.size() / dim));
      const uint32_t step_before = *step;
      uint32_t step_after = step_before;
      for (int from = 0; from < dim; from += block) {
        const int n = std::min(block, dim - from);
        float* grad = clock_grad_.data();
        // 0.0 + g, as a sum from 0 gives it (-0.0 becomes +0.0).
        const float* g0 = clock_sources_[0] + from;
        if (clock_sources_.size() == 1) {
          for (int d = 0; d < n; ++d) grad[d] = static_cast<float>((0.0 + g0[d]) * scale);
        } else if (clock_sources_.size() == 2) {
          const float* g1 = clock_sources_[1] + from;
          for (int d = 0; d < n; ++d) {
            grad[d] = static_cast<float>(((0.0 + g0[d]) + g1[d]) * scale);
          }
        } else {
          double* sum = clock_sum_.data();
          for (int d = 0; d < n; ++d) sum[d] = 0.0 + g0[d];
          for (size_t k = 1; k < clock_sources_.size(); ++k) {
            const float* g = clock_sources_[k] + from;
            for (int d = 0; d < n; ++d) sum[d] += g[d];
          }
          for (int d = 0; d < n; ++d) grad[d] = static_cast<float>(sum[d] * scale);
        }
        before.insert(before.end(), row + from, row + from + n);
        step_after = step_before;  // every range is the same step
        optimizer.Update(n, clock_grad_.data(), 1.0f, lr_scale, row + from, row + dim + from,
                         &step_after, dim);
      }
      *step = step_after;
    }
  }
  pending_.erase(it);
  UpdateVisitFlagLocked();
}

int64_t Partition::NextClock(int32_t worker) const {
  MutexLock lock(&mu_);
  return NextLocked(worker);
}

Partition::Gate Partition::GateState(absl::Span<const int32_t> live, bool need_min) const {
  MutexLock lock(&mu_);
  Gate g;
  g.applied_clock = applied_clock_;
  g.min_clock = kNoClock;
  // One pass, from where a holder was found last. Without need_min it may
  // stop at a worker at the applied clock: that one holds it, so the
  // adjustment below would change nothing.
  const size_t n = live.size();
  const size_t start = holder_hint_ < n ? holder_hint_ : 0;
  for (size_t k = 0, i = start; k < n; ++k, i = i + 1 == n ? 0 : i + 1) {
    if (!CountsLocked(live[i])) continue;
    const int64_t next = NextLocked(live[i]);
    if (!need_min && next <= applied_clock_) {
      holder_hint_ = i;
      g.min_clock = next;
      g.min_exact = false;
      return g;
    }
    g.min_clock = std::min(g.min_clock, next);
  }
  // Clocks below the slowest worker's with nothing buffered change nothing:
  // a partition that follows the floor closes them when it is next visited
  // (CloseClocksLocked), and counts them as applied until then.
  if (g.min_clock != kNoClock && g.min_clock > g.applied_clock) {
    auto next = pending_.lower_bound(g.applied_clock);
    g.applied_clock = next == pending_.end() ? g.min_clock : std::min(g.min_clock, next->first);
  }
  return g;
}

void Partition::Read(const rpc::PullRequest& req, absl::Span<const KeyRef> refs,
                     rpc::PullResponse* resp, std::optional<int64_t> bsp_clock) {
  MutexLock lock(&mu_);
  // A pull at the clock applied last: what that clock changed, as it was.
  const bool before =
      bsp_clock.has_value() && *bsp_clock == before_clock_ && applied_clock_ == *bsp_clock + 1;
  for (const KeyRef& r : refs) {
    const rpc::TableSlice& in = req.slices(r.slice);
    const uint32_t table = in.table();
    const int dim = (*tables_)[table].dim;
    float* out = resp->mutable_slices(r.slice)->mutable_values()->mutable_data() +
                 static_cast<size_t>(r.index) * dim;
    if (before) {
      auto it = before_index_[table].find(in.keys(r.index));
      if (it != before_index_[table].end()) {
        const float* v = before_values_[table].data() + static_cast<size_t>(it->second) * dim;
        std::copy(v, v + dim, out);
        continue;
      }
    }
    uint32_t* step;
    const float* row = RowLocked(table, in.keys(r.index), &step);
    std::copy(row, row + dim, out);
  }
}

Partition::OpResult Partition::ApplyOp(const rpc::ReplicaOp& op, uint64_t view_epoch) {
  MutexLock lock(&mu_);
  if (op.epoch() < std::max(epoch_, view_epoch)) return OpResult::kFenced;
  epoch_ = op.epoch();
  if (op.lsn() <= lsn_) return OpResult::kDuplicate;
  if (op.lsn() != lsn_ + 1) return OpResult::kGap;
  switch (op.kind()) {
    case rpc::ReplicaOp::APPLY:
    case rpc::ReplicaOp::BUFFER: {
      const std::vector<KeyRef> refs = AllKeys(op.push());
      PushLocked(op.push(), refs, op.kind() == rpc::ReplicaOp::BUFFER);
      break;
    }
    case rpc::ReplicaOp::CLOCK:
      ApplyClockLocked(op.clock());
      break;
    case rpc::ReplicaOp::TICK:
      TickLocked(op.worker(), op.clock());
      break;
    default:
      break;
  }
  lsn_ = op.lsn();
  return OpResult::kApplied;
}

rpc::PartitionState Partition::State(
    const std::function<void(const rpc::PartitionState&)>& under_lock) {
  MutexLock lock(&mu_);
  // The state leaves with the clocks the floor gave it.
  if (following_ != 0) FoldLocked(floor_->All(following_));
  rpc::PartitionState s;
  s.set_partition(id_);
  s.set_epoch(epoch_);
  s.set_lsn(lsn_);
  s.set_applied_clock(applied_clock_);
  for (uint32_t table = 0; table < data_.size(); ++table) {
    const RowStore& t = data_[table];
    rpc::PartitionState::Table* out = s.add_tables();
    out->set_table(table);
    const int st = t.stride();
    out->mutable_keys()->Reserve(static_cast<int>(t.size()));
    out->mutable_steps()->Reserve(static_cast<int>(t.size()));
    out->mutable_rows()->Reserve(static_cast<int>(t.size() * st));
    for (size_t r = 0; r < t.size(); ++r) {
      out->add_keys(t.key(r));
      out->add_steps(t.step(r));
      out->mutable_rows()->Add(t.row(r), t.row(r) + st);
    }
  }
  for (const auto& [who, seq] : last_seq_) {
    rpc::PartitionState::Seen* seen = s.add_seen();
    seen->set_worker(who.worker);
    seen->set_incarnation(who.incarnation);
    seen->set_seq(seq);
  }
  for (const auto& [worker, next] : next_clock_) {
    rpc::PartitionState::WorkerClock* c = s.add_clocks();
    c->set_worker(worker);
    c->set_next(next);
  }
  for (const auto& [clock, by_worker] : pending_) {
    for (const auto& [worker, b] : by_worker) {
      rpc::PartitionState::Buffered* out = s.add_pending();
      out->set_clock(clock);
      out->set_worker(worker);
      out->set_lr_scale(b.lr_scale);
      out->set_examples(b.examples);
      for (const auto& [table, key] : b.keys) {
        out->add_tables(table);
        out->add_keys(key);
      }
      out->mutable_grads()->Add(b.grads.begin(), b.grads.end());
    }
  }
  s.set_rejoining(rejoining_);
  s.mutable_rejoined()->Add(rejoined_.begin(), rejoined_.end());
  s.set_before_clock(before_clock_);
  for (uint32_t table = 0; table < before_index_.size(); ++table) {
    if (before_index_[table].empty()) continue;
    rpc::PartitionState::Before* out = s.add_before();
    out->set_table(table);
    std::vector<uint64_t> keys(before_index_[table].size());  // in index order
    for (const auto& [key, i] : before_index_[table]) keys[i] = key;
    out->mutable_keys()->Add(keys.begin(), keys.end());
    out->mutable_values()->Add(before_values_[table].begin(), before_values_[table].end());
  }
  if (under_lock) under_lock(s);
  return s;
}

Partition::InstallResult Partition::Install(const rpc::PartitionState& s, uint64_t view_epoch) {
  for (const rpc::PartitionState::Table& in : s.tables()) {
    if (in.table() >= tables_->size() || in.steps_size() != in.keys_size() ||
        static_cast<size_t>(in.rows_size()) != static_cast<size_t>(in.keys_size()) * stride(in.table())) {
      return InstallResult::kMalformed;
    }
  }
  for (const auto& in : s.pending()) {
    if (in.keys_size() != in.tables_size()) return InstallResult::kMalformed;
    size_t want = 0;
    for (uint32_t t : in.tables()) {
      if (t >= tables_->size()) return InstallResult::kMalformed;
      want += (*tables_)[t].dim;
    }
    if (want != static_cast<size_t>(in.grads_size())) return InstallResult::kMalformed;
  }
  for (const auto& in : s.before()) {
    if (in.table() >= tables_->size() ||
        static_cast<size_t>(in.values_size()) !=
            static_cast<size_t>(in.keys_size()) * (*tables_)[in.table()].dim) {
      return InstallResult::kMalformed;
    }
  }
  MutexLock lock(&mu_);
  if (s.epoch() < std::max(epoch_, view_epoch)) return InstallResult::kFenced;
  epoch_ = s.epoch();
  lsn_ = s.lsn();
  applied_clock_ = s.applied_clock();
  for (RowStore& t : data_) t.Clear();
  for (const rpc::PartitionState::Table& in : s.tables()) {
    RowStore& t = data_[in.table()];
    const int st = t.stride();
    for (int i = 0; i < in.keys_size(); ++i) {
      uint32_t* step;
      bool inserted;
      float* row = t.FindOrAdd(in.keys(i), 0.0f, &step, &inserted);
      std::copy_n(in.rows().data() + static_cast<size_t>(i) * st, st, row);
      *step = in.steps(i);
    }
  }
  last_seq_.clear();
  for (const auto& seen : s.seen()) last_seq_[PusherId{seen.worker(), seen.incarnation()}] = seen.seq();
  next_clock_.clear();
  for (const auto& c : s.clocks()) next_clock_[c.worker()] = c.next();
  pending_.clear();
  for (const auto& in : s.pending()) {
    Buffered& b = pending_[in.clock()][in.worker()];
    b.lr_scale = in.lr_scale();
    b.examples = in.examples();
    for (int i = 0; i < in.keys_size() && i < in.tables_size(); ++i) {
      b.keys.emplace_back(in.tables(i), in.keys(i));
    }
    b.grads.assign(in.grads().begin(), in.grads().end());
  }
  rejoining_ = s.rejoining();
  rejoined_ = std::set<int32_t>(s.rejoined().begin(), s.rejoined().end());
  // following_ stays: only a primary follows the floor, and a snapshot that
  // reaches a partition promoted meanwhile replaces a state the floor's
  // raises of this era covered all the same (workers passed those clocks here).
  UpdateVisitFlagLocked();
  before_clock_ = s.before_clock();
  before_index_.assign(tables_->size(), {});
  before_values_.assign(tables_->size(), {});
  for (const auto& in : s.before()) {
    auto& index = before_index_[in.table()];
    std::vector<float>& values = before_values_[in.table()];
    const int dim = (*tables_)[in.table()].dim;
    for (int i = 0; i < in.keys_size(); ++i) {
      if (!index.emplace(in.keys(i), static_cast<uint32_t>(values.size() / dim)).second) continue;
      values.insert(values.end(), in.values().begin() + static_cast<size_t>(i) * dim,
                    in.values().begin() + static_cast<size_t>(i + 1) * dim);
    }
  }
  return InstallResult::kInstalled;
}

void Partition::Rejoin() {
  MutexLock lock(&mu_);
  rejoining_ = true;
  rejoined_.clear();
  UpdateVisitFlagLocked();
}

void Partition::SetEpoch(uint64_t epoch) {
  MutexLock lock(&mu_);
  epoch_ = std::max(epoch_, epoch);
}

uint64_t Partition::lsn() const {
  MutexLock lock(&mu_);
  return lsn_;
}

std::vector<TableRows> Partition::Snapshot() const {
  MutexLock lock(&mu_);
  std::vector<TableRows> out;
  for (uint32_t table = 0; table < data_.size(); ++table) {
    const RowStore& t = data_[table];
    const int dim = (*tables_)[table].dim;
    TableRows rows;
    rows.table = table;
    rows.dim = dim;
    // Sorted by key, so files do not depend on arrival order.
    std::vector<std::pair<uint64_t, uint32_t>> idx(t.size());
    for (uint32_t i = 0; i < idx.size(); ++i) idx[i] = {t.key(i), i};
    std::sort(idx.begin(), idx.end());
    rows.keys.reserve(idx.size());
    rows.values.reserve(idx.size() * dim);
    for (const auto& [key, i] : idx) {
      rows.keys.push_back(key);
      rows.values.insert(rows.values.end(), t.row(i), t.row(i) + dim);
    }
    out.push_back(std::move(rows));
  }
  return out;
}

uint64_t Partition::num_keys() const {
  MutexLock lock(&mu_);
  uint64_t n = 0;
  for (const RowStore& t : data_) n += t.size();
  return n;
}

size_t Partition::StoreBytes() const {
  MutexLock lock(&mu_);
  size_t n = 0;
  for (const RowStore& t : data_) n += t.MemoryBytes();
  return n;
}

}  // namespace ps

#include "server/partition.h"

#include <algorithm>
#include <limits>

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
                     const std::vector<std::unique_ptr<Optimizer>>* optimizers, uint64_t seed)
    : id_(id),
      tables_(tables),
      optimizers_(optimizers),
      seed_(seed),
      data_(tables->size()),
      before_index_(tables->size()),
      before_values_(tables->size()) {}

int Partition::stride(uint32_t table) const {
  return (*tables_)[table].dim * (1 + (*optimizers_)[table]->num_slots());
}

float* Partition::RowLocked(uint32_t table, uint64_t key, uint32_t** step) {
  TableData& t = data_[table];
  const int s = stride(table);
  auto [it, inserted] = t.index.try_emplace(key, static_cast<uint32_t>(t.steps.size()));
  if (inserted) {
    const TableSpec& spec = (*tables_)[table];
    t.rows.resize(t.rows.size() + s, (*optimizers_)[table]->slot_init());
    InitializeRow(spec, seed_, key, t.rows.data() + t.rows.size() - s);
    t.steps.push_back(0);
    t.keys.push_back(key);
  }
  *step = &t.steps[it->second];
  return t.rows.data() + static_cast<size_t>(it->second) * s;
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
  } else {
    const float scale = static_cast<float>(1.0 / static_cast<double>(std::max<uint64_t>(1, req.num_examples())));
    for (const KeyRef& r : refs) {
      const rpc::TableSlice& in = req.slices(r.slice);
      const uint32_t table = in.table();
      const int dim = (*tables_)[table].dim;
      const float* g = in.values().data() + static_cast<size_t>(r.index) * dim;
      uint32_t* step;
      float* row = RowLocked(table, in.keys(r.index), &step);
      (*optimizers_)[table]->Update(dim, g, scale, LrScale(req), row, row + dim, step);
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
  if (buffer) result.clock_moved |= CloseClocksLocked(live, sink);
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
  if (close) result.clock_moved |= CloseClocksLocked(live, sink);
  result.lsn = lsn_;
  return result;
}

Partition::PushResult Partition::CloseClocks(absl::Span<const int32_t> live, OpSink* sink) {
  MutexLock lock(&mu_);
  PushResult result;
  result.clock_moved = CloseClocksLocked(live, sink);
  result.lsn = lsn_;
  return result;
}

bool Partition::CloseClocksLocked(absl::Span<const int32_t> live, OpSink* sink) {
  if (live.empty()) return false;
  int64_t target = kNoClock;
  for (int32_t w : live) {
    if (!CountsLocked(w)) continue;
    auto it = next_clock_.find(w);
    target = std::min(target, it == next_clock_.end() ? 0 : it->second);
  }
  if (target == kNoClock) return false;  // rejoining, nobody heard from yet
  bool moved = false;
  while (applied_clock_ < target) {
    const int64_t clock = applied_clock_;
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
  for (auto& index : before_index_) index.clear();
  for (auto& values : before_values_) values.clear();
  auto it = pending_.find(clock);
  if (it == pending_.end()) return;
  // Sum in rank order (std::map iterates ranks ascending), in double, so the
  // result does not depend on arrival order.
  std::vector<absl::flat_hash_map<uint64_t, std::vector<double>>> sums(data_.size());
  std::vector<std::vector<uint64_t>> order(data_.size());  // first-seen key order
  const float lr_scale = it->second.begin()->second.lr_scale;  // the same for every rank
  uint64_t examples = 0;
  for (const auto& [rank, b] : it->second) {
    examples += b.examples;
    size_t offset = 0;
    for (const auto& [table, key] : b.keys) {
      const int dim = (*tables_)[table].dim;
      auto [s, inserted] = sums[table].try_emplace(key);
      if (inserted) {
        s->second.assign(dim, 0.0);
        order[table].push_back(key);
      }
      for (int i = 0; i < dim; ++i) s->second[i] += b.grads[offset + i];
      offset += dim;
    }
  }
  pending_.erase(it);
  const double scale = 1.0 / static_cast<double>(std::max<uint64_t>(1, examples));
  std::vector<float> grad;
  for (uint32_t table = 0; table < sums.size(); ++table) {
    const int dim = (*tables_)[table].dim;
    grad.resize(dim);
    for (uint64_t key : order[table]) {
      const std::vector<double>& s = sums[table][key];
      for (int i = 0; i < dim; ++i) grad[i] = static_cast<float>(s[i] * scale);
      uint32_t* step;
      float* row = RowLocked(table, key, &step);
      std::vector<float>& before = before_values_[table];
      before_index_[table].emplace(key, static_cast<uint32_t>(before.size() / dim));
      before.insert(before.end(), row, row + dim);
      (*optimizers_)[table]->Update(dim, grad.data(), 1.0f, lr_scale, row, row + dim, step);
    }
  }
}

int64_t Partition::NextClock(int32_t worker) const {
  MutexLock lock(&mu_);
  auto it = next_clock_.find(worker);
  return it == next_clock_.end() ? 0 : it->second;
}

Partition::Gate Partition::GateState(absl::Span<const int32_t> live) const {
  MutexLock lock(&mu_);
  Gate g;
  g.applied_clock = applied_clock_;
  g.min_clock = kNoClock;
  for (int32_t w : live) {
    if (!CountsLocked(w)) continue;
    auto it = next_clock_.find(w);
    g.min_clock = std::min(g.min_clock, it == next_clock_.end() ? 0 : it->second);
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
  rpc::PartitionState s;
  s.set_partition(id_);
  s.set_epoch(epoch_);
  s.set_lsn(lsn_);
  s.set_applied_clock(applied_clock_);
  for (uint32_t table = 0; table < data_.size(); ++table) {
    const TableData& t = data_[table];
    rpc::PartitionState::Table* out = s.add_tables();
    out->set_table(table);
    out->mutable_keys()->Add(t.keys.begin(), t.keys.end());
    out->mutable_rows()->Add(t.rows.begin(), t.rows.end());
    out->mutable_steps()->Add(t.steps.begin(), t.steps.end());
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
  data_.assign(tables_->size(), TableData());
  for (const rpc::PartitionState::Table& in : s.tables()) {
    TableData& t = data_[in.table()];
    t.keys.assign(in.keys().begin(), in.keys().end());
    t.rows.assign(in.rows().begin(), in.rows().end());
    t.steps.assign(in.steps().begin(), in.steps().end());
    for (uint32_t i = 0; i < t.keys.size(); ++i) t.index.emplace(t.keys[i], i);
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
    const TableData& t = data_[table];
    const int dim = (*tables_)[table].dim;
    const int s = stride(table);
    TableRows rows;
    rows.table = table;
    rows.dim = dim;
    // Sorted by key, so files do not depend on arrival order.
    std::vector<uint32_t> idx(t.keys.size());
    for (uint32_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) { return t.keys[a] < t.keys[b]; });
    for (uint32_t i : idx) {
      rows.keys.push_back(t.keys[i]);
      const float* row = t.rows.data() + static_cast<size_t>(i) * s;
      rows.values.insert(rows.values.end(), row, row + dim);
    }
    out.push_back(std::move(rows));
  }
  return out;
}

uint64_t Partition::num_keys() const {
  MutexLock lock(&mu_);
  uint64_t n = 0;
  for (const TableData& t : data_) n += t.keys.size();
  return n;
}

}  // namespace ps

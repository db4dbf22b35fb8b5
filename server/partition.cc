#include "server/partition.h"

#include <algorithm>

namespace ps {
namespace {

float LrScale(const rpc::PushRequest& req) { return req.lr_scale() > 0 ? req.lr_scale() : 1.0f; }

}  // namespace

Partition::Partition(int id, const std::vector<TableSpec>* tables,
                     const std::vector<std::unique_ptr<Optimizer>>* optimizers, uint64_t seed)
    : id_(id), tables_(tables), optimizers_(optimizers), seed_(seed), data_(tables->size()) {}

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

void Partition::Read(const rpc::PullRequest& req, absl::Span<const KeyRef> refs,
                     rpc::PullResponse* resp) {
  MutexLock lock(&mu_);
  for (const KeyRef& r : refs) {
    const rpc::TableSlice& in = req.slices(r.slice);
    const int dim = (*tables_)[in.table()].dim;
    uint32_t* step;
    const float* row = RowLocked(in.table(), in.keys(r.index), &step);
    float* out = resp->mutable_slices(r.slice)->mutable_values()->mutable_data() +
                 static_cast<size_t>(r.index) * dim;
    std::copy(row, row + dim, out);
  }
}

bool Partition::ApplyPush(const rpc::PushRequest& req, absl::Span<const KeyRef> refs,
                          double scale) {
  MutexLock lock(&mu_);
  if (SeenLocked(req)) return false;
  for (const KeyRef& r : refs) {
    const rpc::TableSlice& in = req.slices(r.slice);
    const uint32_t table = in.table();
    const int dim = (*tables_)[table].dim;
    const float* g = in.values().data() + static_cast<size_t>(r.index) * dim;
    uint32_t* step;
    float* row = RowLocked(table, in.keys(r.index), &step);
    (*optimizers_)[table]->Update(dim, g, static_cast<float>(scale), LrScale(req), row, row + dim,
                                  step);
  }
  return true;
}

bool Partition::BufferPush(const rpc::PushRequest& req, absl::Span<const KeyRef> refs) {
  MutexLock lock(&mu_);
  if (SeenLocked(req)) return false;
  Buffered& b = pending_[req.clock()][req.worker()];
  b.lr_scale = LrScale(req);
  for (const KeyRef& r : refs) {
    const rpc::TableSlice& in = req.slices(r.slice);
    const int dim = (*tables_)[in.table()].dim;
    b.keys.emplace_back(in.table(), in.keys(r.index));
    const float* g = in.values().data() + static_cast<size_t>(r.index) * dim;
    b.grads.insert(b.grads.end(), g, g + dim);
  }
  return true;
}

void Partition::ApplyClock(int64_t clock, double scale) {
  MutexLock lock(&mu_);
  auto it = pending_.find(clock);
  if (it == pending_.end()) return;
  // Sum in rank order (std::map iterates ranks ascending), in double, so the
  // result does not depend on arrival order.
  std::vector<absl::flat_hash_map<uint64_t, std::vector<double>>> sums(data_.size());
  std::vector<std::vector<uint64_t>> order(data_.size());  // first-seen key order
  const float lr_scale = it->second.begin()->second.lr_scale;  // the same for every rank
  for (const auto& [rank, b] : it->second) {
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
  std::vector<float> grad;
  for (uint32_t table = 0; table < sums.size(); ++table) {
    const int dim = (*tables_)[table].dim;
    grad.resize(dim);
    for (uint64_t key : order[table]) {
      const std::vector<double>& s = sums[table][key];
      for (int i = 0; i < dim; ++i) grad[i] = static_cast<float>(s[i] * scale);
      uint32_t* step;
      float* row = RowLocked(table, key, &step);
      (*optimizers_)[table]->Update(dim, grad.data(), 1.0f, lr_scale, row, row + dim, step);
    }
  }
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

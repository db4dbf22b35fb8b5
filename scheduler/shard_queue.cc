#include "scheduler/shard_queue.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"

namespace ps {

absl::Status ShardQueue::SetExamples(int32_t epoch, uint64_t examples) {
  if (examples == 0) return absl::InvalidArgumentError("next shard: no training examples");
  uint64_t& n = examples_[epoch];
  if (n != 0 && n != examples) {
    return absl::InvalidArgumentError(absl::StrCat("a worker has ", examples,
                                                   " training examples in epoch ", epoch + 1,
                                                   ", another ", n, ": the data files differ"));
  }
  n = examples;
  return absl::OkStatus();
}

std::optional<ShardQueue::Shard> ShardQueue::Next(int32_t epoch) {
  auto again = requeued_.find(epoch);
  if (again != requeued_.end() && !again->second.empty()) {
    const auto [begin, end] = again->second.front();
    again->second.pop_front();
    return Shard{static_cast<uint32_t>(begin / shard_size_), begin, end};
  }
  auto n = examples_.find(epoch);
  if (n == examples_.end()) return std::nullopt;
  const uint64_t shards = (n->second + shard_size_ - 1) / shard_size_;
  uint32_t& next = next_[epoch];
  if (next >= shards) return std::nullopt;
  Shard shard{next, next * shard_size_, std::min<uint64_t>(n->second, (next + 1) * shard_size_)};
  ++next;
  return shard;
}

void ShardQueue::Requeue(int32_t epoch, uint64_t begin, uint64_t end) {
  requeued_[epoch].emplace_back(begin, end);
}

void ShardQueue::Save(rpc::SchedulerState* state) const {
  std::set<int32_t> epochs;
  for (const auto& [e, n] : next_) epochs.insert(e);
  for (const auto& [e, n] : examples_) epochs.insert(e);
  for (const auto& [e, q] : requeued_) epochs.insert(e);
  for (int32_t e : epochs) {
    rpc::SchedulerState::ShardQueue* q = state->add_shard_queues();
    q->set_epoch(e);
    if (auto it = next_.find(e); it != next_.end()) q->set_next_shard(it->second);
    if (auto it = examples_.find(e); it != examples_.end()) q->set_examples(it->second);
    if (auto it = requeued_.find(e); it != requeued_.end()) {
      for (const auto& [begin, end] : it->second) {
        q->add_requeued_begin(begin);
        q->add_requeued_end(end);
      }
    }
  }
}

void ShardQueue::Load(const rpc::SchedulerState& state) {
  next_.clear();
  examples_.clear();
  requeued_.clear();
  for (const rpc::SchedulerState::ShardQueue& q : state.shard_queues()) {
    next_[q.epoch()] = q.next_shard();
    if (q.examples() > 0) examples_[q.epoch()] = q.examples();
    for (int i = 0; i < q.requeued_begin_size() && i < q.requeued_end_size(); ++i) {
      requeued_[q.epoch()].emplace_back(q.requeued_begin(i), q.requeued_end(i));
    }
  }
}

}  // namespace ps

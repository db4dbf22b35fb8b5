// The data-shard queue (dynamic sharding, SSP and ASP jobs): per epoch, the
// training set is cut into shards of data.shard_size examples, handed out
// one at a time to whichever worker asks; a dead worker's shard is handed
// out again before new ones. Kept in the scheduler's state file.
//
// Not thread-safe: its owner's lock guards it (SchedulerCore::mu_).
#ifndef PS_SCHEDULER_SHARD_QUEUE_H_
#define PS_SCHEDULER_SHARD_QUEUE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "proto/checkpoint.pb.h"

namespace ps {

class ShardQueue {
 public:
  explicit ShardQueue(uint64_t shard_size) : shard_size_(shard_size == 0 ? 1 : shard_size) {}

  struct Shard {
    uint32_t index = 0;
    uint64_t begin = 0, end = 0;  // examples [begin, end)
  };

  // A worker's count of training examples in `epoch`: INVALID_ARGUMENT if
  // it is 0 or differs from another worker's (their data files differ).
  absl::Status SetExamples(int32_t epoch, uint64_t examples);
  // The next shard of `epoch` (after SetExamples): a requeued one first,
  // then the next new one; none once every shard is out.
  std::optional<Shard> Next(int32_t epoch);
  // A shard whose worker died: handed out again before new ones.
  void Requeue(int32_t epoch, uint64_t begin, uint64_t end);

  // Into and from the scheduler's state file.
  void Save(rpc::SchedulerState* state) const;
  void Load(const rpc::SchedulerState& state);

 private:
  const uint64_t shard_size_;
  std::map<int32_t, uint32_t> next_;      // next new shard, by epoch
  std::map<int32_t, uint64_t> examples_;  // training examples, by epoch
  std::map<int32_t, std::deque<std::pair<uint64_t, uint64_t>>> requeued_;  // by epoch
};

}  // namespace ps

#endif  // PS_SCHEDULER_SHARD_QUEUE_H_

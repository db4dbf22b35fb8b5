// The worker's training loop: for each batch, pull -> gradient -> push (which
// advances the worker's clock); after each epoch a barrier, then evaluation
// of this worker's share of the test set, merged by the scheduler.
//
// Data order: each epoch is a seeded permutation of the training set, the
// same on every worker. In BSP a worker is a rank with a fixed place in it:
// global batch t is positions [t*K*b, (t+1)*K*b) and rank r takes the r-th
// b of them, so the model does not depend on timing and K workers at batch b
// equal one worker at batch K*b. In SSP/ASP workers take data shards (ranges
// of positions) from the scheduler's queue, so fast workers take more.
//
// Thread-safety: Run() on one thread; progress() from any thread.
#ifndef PS_WORKER_TRAINER_H_
#define PS_WORKER_TRAINER_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/scheduler_client.h"
#include "proto/job_config.pb.h"
#include "worker/kv_client.h"
#include "worker/libsvm_reader.h"
#include "worker/logistic_regression.h"

namespace ps {

// The permutation of [0, n) used in `epoch` (identity if !shuffle).
std::vector<uint64_t> EpochOrder(uint64_t n, uint64_t seed, int epoch, bool shuffle);

class Trainer {
 public:
  struct Progress {
    std::atomic<uint64_t> samples_done{0};
    std::atomic<int32_t> epoch{0};
    std::atomic<double> loss_sum{0};
    std::atomic<uint64_t> epoch_samples{0};
  };

  // Borrows everything; all must outlive Run().
  Trainer(const config::JobConfig& job, int32_t rank, uint32_t node_id, int num_workers,
          SchedulerClient* scheduler, KvClient* kv, const Dataset* train, const Dataset* test,
          absl::Duration iteration_delay);

  absl::Status Run();
  Progress& progress() { return progress_; }

 private:
  // One batch: returns the summed loss.
  absl::StatusOr<double> Step(absl::Span<const uint64_t> rows, int64_t clock);
  absl::Status Evaluate(int epoch, int64_t clock, double loss_sum, uint64_t samples);

  const config::JobConfig& job_;
  const int32_t rank_;
  const uint32_t node_id_;
  const int num_workers_;
  SchedulerClient* const scheduler_;
  KvClient* const kv_;
  const Dataset* const train_;
  const Dataset* const test_;
  const absl::Duration iteration_delay_;
  const LogisticRegression model_;
  Progress progress_;
};

}  // namespace ps

#endif  // PS_WORKER_TRAINER_H_

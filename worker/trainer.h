// The worker's training loop: optional statistics pass (scaling, class
// weights; see preprocess.h), then per batch pull -> gradient -> push (which
// advances the worker's clock); after each epoch a barrier, evaluation of
// this worker's share of the validation and test sets (merged by the
// scheduler), and a second barrier that carries the stop decision (early
// stopping, max_iterations).
//
// Data order: each epoch is a seeded permutation of the training rows, the
// same on every worker. In BSP a worker is a rank with a fixed place in it:
// global batch t is positions [t*K*b, (t+1)*K*b) and rank r takes the r-th
// b of them, so the model does not depend on timing and K workers at batch b
// equal one worker at batch K*b. In SSP/ASP workers take data shards (ranges
// of positions) from the scheduler's queue, so fast workers take more; with
// data.dynamic_shards false each takes a fixed share of the shards instead
// (rank r of K: shards r, r + K, ...).
//
// Thread-safety: Run() on one thread; progress() from any thread.
#ifndef PS_WORKER_TRAINER_H_
#define PS_WORKER_TRAINER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/scheduler_client.h"
#include "proto/job_config.pb.h"
#include "worker/kv_client.h"
#include "worker/libsvm_reader.h"
#include "worker/model.h"

namespace ps {

// The permutation of [0, n) used in `epoch` (identity if !shuffle).
std::vector<uint64_t> EpochOrder(uint64_t n, uint64_t seed, int epoch, bool shuffle);

// The learning-rate schedule's factor at `epoch`, `fraction` of the whole
// job done (0..1).
float LearningRateScale(const config::OptimizerSection& optimizer, int epoch, double fraction);

// Clips the mean gradient (sums / n) of a batch in place: element-wise at
// clip_value, then to global L2 norm clip_norm (0 disables either).
void ClipGradients(const config::OptimizerSection& optimizer, uint64_t n,
                   std::vector<TableKeys>* grads);

class Trainer {
 public:
  struct Progress {
    std::atomic<uint64_t> samples_done{0};
    std::atomic<int32_t> epoch{0};
    std::atomic<double> loss_sum{0};
    std::atomic<uint64_t> epoch_samples{0};
    std::atomic<uint64_t> train_examples{0};
  };

  // Borrows the clients; they must outlive Run().
  Trainer(const config::JobConfig& job, int32_t rank, uint32_t node_id, int num_workers,
          SchedulerClient* scheduler, KvClient* kv, Dataset train, Dataset test,
          absl::Duration iteration_delay);

  // A job resumed from a checkpoint: training starts at `epoch` (0-based)
  // and, in BSP, at `clock` (RegisterResponse.start_epoch/start_clock); the
  // statistics tables are in the checkpoint, so they are only read. Call
  // before Run().
  void ResumeAt(int epoch, int64_t clock) {
    start_epoch_ = epoch;
    start_clock_ = clock;
  }

  absl::Status Run();
  Progress& progress() { return progress_; }

  // This worker replaces a dead one of the same rank whose clocks stand at
  // `clock` on the servers: Run skips what was done before it (the data
  // order is a function of the seed and the epoch, so the position follows
  // from the clock), does not push statistics again, and redoes the rest.
  void TakeOver(int64_t clock) {
    takeover_ = true;
    resume_clock_ = clock;
  }

 private:
  // One batch: returns the summed loss. `next` (BSP only; empty if none):
  // the rows of this worker's batch at clock + 1, whose pull goes out with
  // this batch's push (prefetch_).
  absl::StatusOr<double> Step(absl::Span<const uint64_t> rows, int64_t clock, float lr_scale,
                              absl::Span<const uint64_t> next = {});
  // DP-SGD (privacy.dp_sgd): the sum over `rows` of each example's gradient
  // clipped to privacy.clip_norm, plus Gaussian noise; returns the loss.
  double PrivateGradient(absl::Span<const uint64_t> rows, const std::vector<TableKeys>& params,
                         std::vector<TableKeys>* grads, uint64_t seed);
  // Scaling and class weights from statistics over the whole training set.
  absl::Status Prepare();
  absl::Status Evaluate(int epoch, int64_t clock, double loss_sum, uint64_t samples,
                        const rpc::ClusterView& view);
  // Scores of `rows` of `data` into scores/labels.
  absl::Status Score(const Dataset& data, const std::vector<uint64_t>& rows, int64_t clock,
                     google::protobuf::RepeatedField<float>* scores,
                     google::protobuf::RepeatedField<float>* labels);

  const config::JobConfig& job_;
  const int32_t rank_;
  const uint32_t node_id_;
  const int num_workers_;
  bool takeover_ = false;
  int64_t resume_clock_ = 0;
  SchedulerClient* const scheduler_;
  KvClient* const kv_;
  Dataset train_, test_;
  const absl::Duration iteration_delay_;
  const std::unique_ptr<Model> model_;
  std::vector<uint64_t> train_rows_, validation_rows_;
  std::vector<float> class_weights_;
  std::mt19937_64 dp_noise_{
      std::random_device{}()};  // seeded unpredictably: the noise must not be known
  int start_epoch_ = 0;
  int64_t start_clock_ = 0;
  // BSP: the parameters of the next batch, pulled at its clock while this
  // batch's push was in flight. The pull parks on the servers until every
  // worker's push of this clock is applied (the gate), so it reads what a
  // pull sent after the push would, one round trip sooner (Fashion-MNIST
  // MLP, 2 workers: 1.28 -> 1.05 s per epoch). It is tried once and says
  // which pushes were acknowledged (KvClient::Pull `ahead`); if it failed,
  // the next Step pulls as before. Used only by the Step of the same clock
  // and rows. Touched by the training thread only.
  struct Prefetch {
    int64_t clock = -1;
    const uint64_t* rows = nullptr;
    size_t size = 0;
    std::vector<TableKeys> params;
  };
  Prefetch prefetch_;
  Progress progress_;
};

}  // namespace ps

#endif  // PS_WORKER_TRAINER_H_

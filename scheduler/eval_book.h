// The evaluation book: each epoch's evaluation, merged from every live
// worker's share (scores and labels of its part of the test and validation
// sets, its training loss); the history of merged epochs; early stopping on
// the validation metric (which epoch is best, whether to stop, a save of the
// best model pending). SchedulerCore feeds it under its lock; the metrics
// (sorts over whole sets) are computed outside the lock (Merge).
//
// Thread-safety: none; SchedulerCore holds it under its own lock.
#ifndef PS_SCHEDULER_EVAL_BOOK_H_
#define PS_SCHEDULER_EVAL_BOOK_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/checkpoint.pb.h"
#include "proto/job_config.pb.h"
#include "proto/scheduler.pb.h"
#include "scheduler/job_outputs.h"

namespace ps {

class EvalBook {
 public:
  explicit EvalBook(const config::JobConfig& job) : job_(job) {}

  // Worker `req.node_id()`'s share of epoch `req.epoch()` (0-based).
  // INVALID_ARGUMENT if scores and labels do not fit; a late share (the
  // epoch is merged already: a retry, a standby replaying) is ignored.
  // Returns whether it was taken.
  absl::StatusOr<bool> Add(const rpc::SubmitEvalRequest& req);
  // Training samples of epoch `epoch` over the shares in so far.
  uint64_t SamplesOf(int32_t epoch) const;
  // A dead or replaced worker's shares go (a standby sends its own).
  void Drop(uint32_t node_id);
  // Epochs with shares waiting for the others'.
  std::vector<int32_t> Waiting() const;

  // Every share of an epoch, taken out to be merged.
  struct Shares {
    int32_t epoch = 0;
    std::vector<float> scores, labels, val_scores, val_labels;
    double loss_sum = 0;
    uint64_t samples = 0;
    std::vector<uint64_t> worker_samples;  // by rank
  };
  // The shares of `epoch` once every one of `live_workers` (node ids) sent
  // its own (taken out, with those of workers that sent theirs and died),
  // else nullopt. `rank_of` maps a node id to its rank (-1: none).
  std::optional<Shares> TakeIfComplete(int32_t epoch, const std::set<uint32_t>& live_workers,
                                       const std::function<int32_t(uint32_t)>& rank_of);
  // The epoch's metrics (no lock needed). `seconds`: since training started.
  static absl::StatusOr<EpochResult> Merge(const config::JobConfig& job, Shares shares,
                                           double seconds);
  // Records a merged epoch (history, early stopping). Returns true if it is
  // the best so far with early stopping: its model must be saved before its
  // "eval-E" barrier is released (save_pending), else the epoch counts as
  // evaluated at once.
  absl::StatusOr<bool> Record(int32_t epoch, EpochResult result);

  // Its evaluation is merged (and its model saved where needed): "eval-E"
  // may be released.
  bool evaluated(int32_t epoch) const { return evaluated_.count(epoch) > 0; }
  // The best model of epoch save_pending() was saved (or not: `saved`).
  void BestSaved(int32_t epoch, bool saved);
  int32_t save_pending() const { return save_pending_; }
  bool stop_early() const { return stop_early_; }
  int32_t saved_best_epoch() const { return saved_best_epoch_; }
  const std::vector<EpochResult>& history() const { return history_; }

  // The history and early-stopping state (checkpoints, the state).
  void SaveProgress(rpc::ProgressRecord* progress) const;
  void LoadProgress(const rpc::ProgressRecord& progress);
  // Shares waiting, evaluated epochs, the pending save (the state).
  void Save(rpc::SchedulerState* state) const;
  void Load(const rpc::SchedulerState& state);

 private:
  struct Share {
    std::vector<float> scores, labels, val_scores, val_labels;
    double loss_sum = 0;
    uint64_t samples = 0;
  };
  const config::JobConfig& job_;
  std::map<int32_t, std::map<uint32_t, Share>> shares_;  // by epoch, by node id
  std::vector<EpochResult> history_;
  std::set<int32_t> evaluated_;
  // Early stopping: best validation value so far, its epoch (0-based, -1:
  // none), evaluations without improvement, a save of the best model
  // pending, the epoch whose model was saved as the best.
  double best_value_ = 0;
  int32_t best_epoch_ = -1;
  int32_t saved_best_epoch_ = -1;
  int32_t bad_evaluations_ = 0;
  int32_t save_pending_ = -1;
  bool stop_early_ = false;
};

}  // namespace ps

#endif  // PS_SCHEDULER_EVAL_BOOK_H_

#include "scheduler/eval_book.h"

#include <algorithm>

#include "common/evaluation.h"
#include "common/tables.h"
#include "spdlog/spdlog.h"

namespace ps {
namespace {

rpc::EvaluationRecord ToRecord(const Evaluation& e) {
  rpc::EvaluationRecord r;
  r.set_line(e.line);
  r.set_json(e.json);
  for (const auto& [name, value] : e.values) {
    r.add_value_names(name);
    r.add_values(value);
  }
  for (const auto& [fpr, tpr] : e.roc) {
    r.add_roc_fpr(fpr);
    r.add_roc_tpr(tpr);
  }
  for (const auto& row : e.confusion)
    r.add_confusion()->mutable_counts()->Add(row.begin(), row.end());
  return r;
}

Evaluation FromRecord(const rpc::EvaluationRecord& r) {
  Evaluation e;
  e.line = r.line();
  e.json = r.json();
  for (int i = 0; i < r.value_names_size() && i < r.values_size(); ++i)
    e.values[r.value_names(i)] = r.values(i);
  for (int i = 0; i < r.roc_fpr_size() && i < r.roc_tpr_size(); ++i) {
    e.roc.emplace_back(r.roc_fpr(i), r.roc_tpr(i));
  }
  for (const auto& row : r.confusion())
    e.confusion.emplace_back(row.counts().begin(), row.counts().end());
  return e;
}

}  // namespace

absl::StatusOr<bool> EvalBook::Add(const rpc::SubmitEvalRequest& req) {
  const int outputs = NumOutputs(job_.model());
  if (req.labels_size() * outputs != req.scores_size() ||
      req.val_labels_size() * outputs != req.val_scores_size()) {
    return absl::InvalidArgumentError("submit eval: scores and labels differ in length");
  }
  // Late (a standby worker replaying an epoch its predecessor finished).
  if (evaluated(req.epoch())) return false;
  for (const EpochResult& r : history_) {
    // Merged already: a retry after the scheduler restarted.
    if (r.epoch == req.epoch() + 1) return false;
  }
  Share& share = shares_[req.epoch()][req.node_id()];
  share.scores.assign(req.scores().begin(), req.scores().end());
  share.labels.assign(req.labels().begin(), req.labels().end());
  share.val_scores.assign(req.val_scores().begin(), req.val_scores().end());
  share.val_labels.assign(req.val_labels().begin(), req.val_labels().end());
  share.loss_sum = req.train_loss_sum();
  share.samples = req.train_samples();
  return true;
}

uint64_t EvalBook::SamplesOf(int32_t epoch) const {
  uint64_t total = 0;
  auto it = shares_.find(epoch);
  if (it == shares_.end()) return 0;
  for (const auto& [id, share] : it->second) total += share.samples;
  return total;
}

void EvalBook::Drop(uint32_t node_id) {
  for (auto& [epoch, shares] : shares_) shares.erase(node_id);
}

std::vector<int32_t> EvalBook::Waiting() const {
  std::vector<int32_t> epochs;
  for (const auto& [epoch, shares] : shares_) epochs.push_back(epoch);
  return epochs;
}

std::optional<EvalBook::Shares> EvalBook::TakeIfComplete(
    int32_t epoch, const std::set<uint32_t>& live_workers,
    const std::function<int32_t(uint32_t)>& rank_of) {
  auto found = shares_.find(epoch);
  if (found == shares_.end()) return std::nullopt;
  for (uint32_t id : live_workers) {
    if (found->second.count(id) == 0) return std::nullopt;
  }
  Shares all;
  all.epoch = epoch;
  all.worker_samples.assign(job_.cluster().num_workers(), 0);
  for (const auto& [id, share] : found->second) {
    const int32_t rank = rank_of(id);
    if (rank >= 0 && rank < static_cast<int32_t>(all.worker_samples.size())) {
      all.worker_samples[rank] += share.samples;
    }
    all.scores.insert(all.scores.end(), share.scores.begin(), share.scores.end());
    all.labels.insert(all.labels.end(), share.labels.begin(), share.labels.end());
    all.val_scores.insert(all.val_scores.end(), share.val_scores.begin(), share.val_scores.end());
    all.val_labels.insert(all.val_labels.end(), share.val_labels.begin(), share.val_labels.end());
    all.loss_sum += share.loss_sum;
    all.samples += share.samples;
  }
  shares_.erase(found);
  return all;
}

absl::StatusOr<EpochResult> EvalBook::Merge(const config::JobConfig& job, Shares shares,
                                            double seconds) {
  const Task task = TaskOf(job.model());
  const int classes = job.model().num_classes();
  EpochResult r;
  r.epoch = shares.epoch + 1;
  r.train_loss = shares.samples > 0 ? shares.loss_sum / static_cast<double>(shares.samples) : 0;
  r.seconds = seconds;
  r.worker_samples = std::move(shares.worker_samples);
  if (!shares.labels.empty()) {
    auto test = Evaluate(task, classes, shares.scores, shares.labels);
    if (!test.ok()) return test.status();
    r.test = std::move(*test);
  }
  if (!shares.val_labels.empty()) {
    auto val = Evaluate(task, classes, shares.val_scores, shares.val_labels);
    if (!val.ok()) return val.status();
    r.validation = std::move(*val);
    r.has_validation = true;
  }
  return r;
}

absl::StatusOr<bool> EvalBook::Record(int32_t epoch, EpochResult r) {
  spdlog::info("epoch {}/{}: train loss {:.4f}{}{} | test {}", r.epoch, job_.train().epochs(),
               r.train_loss, r.has_validation ? " | validation " : "",
               r.has_validation ? r.validation.line : "", r.test.line.empty() ? "-" : r.test.line);
  // Early stopping on the validation metric.
  bool save = false;
  const config::TrainSection& train = job_.train();
  if (train.early_stopping_patience() > 0 && r.has_validation) {
    auto metric = MetricForStopping(r.validation, train.early_stopping_metric());
    if (!metric.ok()) return metric.status();
    const auto [value, higher_better] = *metric;
    const bool better =
        best_epoch_ < 0 || (higher_better ? value > best_value_ : value < best_value_);
    if (better) {
      best_value_ = value;
      best_epoch_ = epoch;
      bad_evaluations_ = 0;
      save_pending_ = epoch;  // saved before "eval-E" is released
      save = true;
    } else if (++bad_evaluations_ >= train.early_stopping_patience()) {
      stop_early_ = true;
      spdlog::info(
          "early stopping: {} has not improved for {} evaluations; keeping epoch {} ({} {:.4f})",
          train.early_stopping_metric(), bad_evaluations_, best_epoch_ + 1,
          train.early_stopping_metric(), best_value_);
    }
  }
  history_.push_back(std::move(r));
  if (!save) evaluated_.insert(epoch);
  return save;
}

void EvalBook::BestSaved(int32_t epoch, bool saved) {
  save_pending_ = -1;
  if (!saved) return;
  saved_best_epoch_ = epoch;
  evaluated_.insert(epoch);
}

void EvalBook::SaveProgress(rpc::ProgressRecord* p) const {
  for (const EpochResult& r : history_) {
    rpc::EpochRecord* e = p->add_history();
    e->set_epoch(r.epoch);
    e->set_train_loss(r.train_loss);
    if (!r.test.line.empty() || !r.test.values.empty()) *e->mutable_test() = ToRecord(r.test);
    if (r.has_validation) *e->mutable_validation() = ToRecord(r.validation);
    // Only the job's final model's ROC curve is drawn (the last or the best
    // epoch's): the others' would only make this file grow with the job.
    if (&r != &history_.back() && r.epoch != best_epoch_ + 1 && r.epoch != saved_best_epoch_ + 1) {
      for (rpc::EvaluationRecord* set : {e->has_test() ? e->mutable_test() : nullptr,
                                         e->has_validation() ? e->mutable_validation() : nullptr}) {
        if (set == nullptr) continue;
        set->clear_roc_fpr();
        set->clear_roc_tpr();
      }
    }
    e->set_seconds(r.seconds);
    e->mutable_worker_samples()->Add(r.worker_samples.begin(), r.worker_samples.end());
  }
  p->set_best_value(best_value_);
  p->set_best_epoch(best_epoch_);
  p->set_saved_best_epoch(saved_best_epoch_);
  p->set_bad_evaluations(bad_evaluations_);
  p->set_stop_early(stop_early_);
}

void EvalBook::LoadProgress(const rpc::ProgressRecord& p) {
  history_.clear();
  for (const rpc::EpochRecord& e : p.history()) {
    EpochResult r;
    r.epoch = e.epoch();
    r.train_loss = e.train_loss();
    if (e.has_test()) r.test = FromRecord(e.test());
    r.has_validation = e.has_validation();
    if (r.has_validation) r.validation = FromRecord(e.validation());
    r.seconds = e.seconds();
    r.worker_samples.assign(e.worker_samples().begin(), e.worker_samples().end());
    history_.push_back(std::move(r));
  }
  best_value_ = p.best_value();
  best_epoch_ = p.best_epoch();
  saved_best_epoch_ = p.saved_best_epoch();
  bad_evaluations_ = p.bad_evaluations();
  stop_early_ = p.stop_early();
}

void EvalBook::Save(rpc::SchedulerState* s) const {
  for (const auto& [epoch, shares] : shares_) {
    for (const auto& [id, share] : shares) {
      rpc::SchedulerState::EvalShare* e = s->add_evals();
      e->set_epoch(epoch);
      e->set_node_id(id);
      e->mutable_scores()->Add(share.scores.begin(), share.scores.end());
      e->mutable_labels()->Add(share.labels.begin(), share.labels.end());
      e->mutable_val_scores()->Add(share.val_scores.begin(), share.val_scores.end());
      e->mutable_val_labels()->Add(share.val_labels.begin(), share.val_labels.end());
      e->set_loss_sum(share.loss_sum);
      e->set_samples(share.samples);
    }
  }
  s->mutable_evaluated()->Add(evaluated_.begin(), evaluated_.end());
  s->set_save_pending(save_pending_);
}

void EvalBook::Load(const rpc::SchedulerState& s) {
  shares_.clear();
  for (const rpc::SchedulerState::EvalShare& e : s.evals()) {
    Share& share = shares_[e.epoch()][e.node_id()];
    share.scores.assign(e.scores().begin(), e.scores().end());
    share.labels.assign(e.labels().begin(), e.labels().end());
    share.val_scores.assign(e.val_scores().begin(), e.val_scores().end());
    share.val_labels.assign(e.val_labels().begin(), e.val_labels().end());
    share.loss_sum = e.loss_sum();
    share.samples = e.samples();
  }
  evaluated_ = std::set<int32_t>(s.evaluated().begin(), s.evaluated().end());
  save_pending_ = s.save_pending();
}

}  // namespace ps

#include "worker/trainer.h"

#include <algorithm>
#include <cmath>
#include <future>
#include <limits>
#include <numeric>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/partitioning.h"
#include "common/tables.h"
#include "spdlog/spdlog.h"
#include "worker/preprocess.h"

namespace ps {
namespace {

// SSP/ASP clocks of epoch e start at e << 32, so a worker that finished an
// epoch (and ticked to the next base) never holds back one still in it.
int64_t EpochBase(int epoch) { return static_cast<int64_t>(epoch) << 32; }
constexpr int64_t kDoneClock = std::numeric_limits<int64_t>::max() / 2;

// This worker's rows of `rows` for work split by rank: every K-th from its rank.
std::vector<uint64_t> ShareOf(const std::vector<uint64_t>& rows, int rank, int workers) {
  std::vector<uint64_t> out;
  for (size_t i = rank; i < rows.size(); i += workers) out.push_back(rows[i]);
  return out;
}

}  // namespace

std::vector<uint64_t> EpochOrder(uint64_t n, uint64_t seed, int epoch, bool shuffle) {
  std::vector<uint64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (!shuffle) return order;
  SplitMix64 rng(Mix64(seed) ^ Mix64(static_cast<uint64_t>(epoch) + 1));
  for (uint64_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng.NextBelow(i)]);
  return order;
}

float LearningRateScale(const config::OptimizerSection& o, int epoch, double fraction) {
  double scale = 1.0;
  switch (o.schedule()) {
    case config::STEP:
      scale = std::pow(o.step_gamma(), epoch / o.step_epochs());
      break;
    case config::COSINE: {
      const double floor = o.learning_rate() > 0 ? o.min_learning_rate() / o.learning_rate() : 0;
      scale = floor + (1 - floor) * 0.5 * (1 + std::cos(M_PI * std::min(1.0, fraction)));
      break;
    }
    default:
      break;
  }
  if (o.warmup_fraction() > 0 && fraction < o.warmup_fraction()) {
    scale *= fraction / o.warmup_fraction();
  }
  return static_cast<float>(std::max(scale, 1e-12));
}

void ClipGradients(const config::OptimizerSection& o, uint64_t n, std::vector<TableKeys>* grads) {
  if (n == 0) return;
  const double count = static_cast<double>(n);
  if (o.clip_value() > 0) {
    const float limit = static_cast<float>(o.clip_value() * count);  // on sums: n * value
    for (TableKeys& t : *grads) {
      for (float& g : t.values) g = std::clamp(g, -limit, limit);
    }
  }
  if (o.clip_norm() > 0) {
    double sq = 0;
    for (const TableKeys& t : *grads) {
      for (float g : t.values) sq += (g / count) * (g / count);
    }
    const double norm = std::sqrt(sq);
    if (norm > o.clip_norm()) {
      const float factor = static_cast<float>(o.clip_norm() / norm);
      for (TableKeys& t : *grads) {
        for (float& g : t.values) g *= factor;
      }
    }
  }
}

Trainer::Trainer(const config::JobConfig& job, int32_t rank, uint32_t node_id, int num_workers,
                 SchedulerClient* scheduler, KvClient* kv, Dataset train, Dataset test,
                 absl::Duration iteration_delay)
    : job_(job), rank_(rank), node_id_(node_id), num_workers_(num_workers), scheduler_(scheduler),
      kv_(kv), train_(std::move(train)), test_(std::move(test)),
      iteration_delay_(iteration_delay), model_(MakeModel(job.model())) {}

absl::StatusOr<double> Trainer::Step(absl::Span<const uint64_t> rows, int64_t clock, float lr_scale,
                                     absl::Span<const uint64_t> next) {
  if (iteration_delay_ > absl::ZeroDuration()) absl::SleepFor(iteration_delay_);  // test hook: a slow worker
  Prefetch fetched = std::move(prefetch_);
  prefetch_ = Prefetch();
  if (rows.empty()) {
    // Nothing to learn from, but the clock must still advance everywhere.
    if (absl::Status s = kv_->Push({}, clock, 0, lr_scale); !s.ok()) return s;
    return 0.0;
  }
  std::vector<TableKeys> params;
  if (fetched.clock == clock && fetched.rows == rows.data() && fetched.size == rows.size()) {
    params = std::move(fetched.params);
  } else {
    params = model_->KeysFor(train_, rows);
    if (absl::Status s = kv_->Pull(&params, clock); !s.ok()) return s;
  }
  std::vector<TableKeys> grads;
  const uint64_t seed = Mix64(job_.job().seed() ^ (static_cast<uint64_t>(rank_) << 40) ^
                              static_cast<uint64_t>(clock));
  double loss;
  if (job_.privacy().dp_sgd()) {
    loss = PrivateGradient(rows, params, &grads, seed);
  } else {
    loss = model_->Gradient(train_, rows, class_weights_, params, &grads, seed);
    ClipGradients(job_.optimizer(), rows.size(), &grads);
  }
  if (next.empty()) {
    if (absl::Status s = kv_->Push(grads, clock, rows.size(), lr_scale); !s.ok()) return s;
    return loss;
  }
  // The next batch's pull on a second thread while this one pushes (the
  // push stays on this thread: its sequence numbers and error feedback are
  // the training thread's). The worker still computes nothing before its
  // push is acknowledged.
  Prefetch ahead{clock + 1, next.data(), next.size(), model_->KeysFor(train_, next)};
  const uint64_t map_version = kv_->map_version();  // the push starts from it or a newer one
  std::atomic<bool> cancel{false};
  std::future<absl::Status> pulled;
  try {
    // Every push below `clock` was acknowledged (this Step runs after them).
    pulled = std::async(std::launch::async, [this, &ahead, &cancel, clock, map_version] {
      return kv_->PullAhead(&ahead.params, ahead.clock, clock, map_version, &cancel);
    });
  } catch (const std::system_error& e) {  // no thread for it: pull after the push
    if (absl::Status s = kv_->Push(grads, clock, rows.size(), lr_scale); !s.ok()) return s;
    return loss;
  }
  const absl::Status pushed = kv_->Push(grads, clock, rows.size(), lr_scale);
  // A failed push leaves the pull waiting for the clock it was to complete.
  if (!pushed.ok()) cancel.store(true, std::memory_order_release);
  const absl::Status pull = pulled.get();
  if (!pushed.ok()) return pushed;
  if (pull.ok()) {
    prefetch_ = std::move(ahead);
  } else {
    // Tried once (a failover, a move): the next Step pulls as usual.
    spdlog::debug("worker {}: the pull ahead of clock {} failed ({}); pulling again", rank_,
                  ahead.clock, std::string(pull.message()));
  }
  return loss;
}

double Trainer::PrivateGradient(absl::Span<const uint64_t> rows,
                                const std::vector<TableKeys>& params, std::vector<TableKeys>* grads,
                                uint64_t seed) {
  const double clip = job_.privacy().clip_norm();
  *grads = params;
  for (TableKeys& t : *grads) std::fill(t.values.begin(), t.values.end(), 0.0f);
  double loss = 0;
  std::vector<TableKeys> one;
  for (size_t i = 0; i < rows.size(); ++i) {
    loss += model_->Gradient(train_, rows.subspan(i, 1), class_weights_, params, &one,
                             seed ^ Mix64(rows[i]));
    double norm2 = 0;
    for (const TableKeys& t : one) {
      for (float v : t.values) norm2 += static_cast<double>(v) * v;
    }
    const double norm = std::sqrt(norm2);
    const float scale = norm > clip ? static_cast<float>(clip / norm) : 1.0f;
    for (size_t t = 0; t < one.size() && t < grads->size(); ++t) {
      std::vector<float>& sum = (*grads)[t].values;
      for (size_t j = 0; j < one[t].values.size() && j < sum.size(); ++j)
        sum[j] += scale * one[t].values[j];
    }
  }
  // Gaussian noise of noise_multiplier * clip_norm on every coordinate of the sum.
  const double stddev = job_.privacy().noise_multiplier() * clip;
  if (stddev > 0) {
    std::normal_distribution<double> noise(0.0, stddev);
    for (TableKeys& t : *grads) {
      for (float& v : t.values) v += static_cast<float>(noise(dp_noise_));
    }
  }
  return loss;
}

absl::Status Trainer::Prepare() {
  const int classes = TaskOf(job_.model()) == Task::kRegression ? 0 : std::max(2, NumOutputs(job_.model()));
  const uint32_t stats_table = FeatureStatsTable(job_);
  const uint32_t class_table = ClassCountsTable(job_);
  // Each worker adds its share of the training rows; the servers sum them.
  // A worker taking over a dead one's rank does not add its share again, nor
  // do the workers of a resumed job (the servers loaded the totals with
  // their partitions).
  if (!takeover_ && start_epoch_ == 0) {
    const std::vector<uint64_t> share = ShareOf(train_rows_, rank_, num_workers_);
    if (absl::Status s = kv_->Push(PartialStatistics(train_, share, stats_table, class_table, classes),
                                   std::nullopt, 0);
        !s.ok()) {
      return s;
    }
  }
  if (start_epoch_ == 0) {
    const absl::Duration lost_after = absl::Milliseconds(job_.cluster().scheduler_timeout_ms());
    if (auto b = scheduler_->Barrier(node_id_, "statistics", lost_after); !b.ok()) return b.status();
  }
  std::vector<TableKeys> pulled = StatisticsKeys({&train_, &test_}, stats_table, class_table, classes);
  if (absl::Status s = kv_->Pull(&pulled, std::nullopt); !s.ok()) return s;
  const DatasetStats stats = ReduceStatistics(pulled);
  if (stats.rows != train_rows_.size()) {
    return absl::InternalError(absl::StrCat("statistics cover ", stats.rows, " rows, the training set has ",
                                            train_rows_.size(), ": do all workers read the same files?"));
  }
  FillAndScale(job_.data(), stats, &train_);
  FillAndScale(job_.data(), stats, &test_);
  class_weights_ = ClassWeights(job_.data(), stats);
  spdlog::info("worker {}: statistics over {} training rows and {} features applied", rank_, stats.rows,
               stats.features.size());
  return absl::OkStatus();
}

absl::Status Trainer::Score(const Dataset& data, const std::vector<uint64_t>& rows, int64_t clock,
                            google::protobuf::RepeatedField<float>* scores,
                            google::protobuf::RepeatedField<float>* labels) {
  // In slices, so a large evaluation set does not become one huge pull.
  constexpr size_t kSlice = 4096;
  for (size_t begin = 0; begin < rows.size(); begin += kSlice) {
    absl::Span<const uint64_t> part(rows.data() + begin, std::min(kSlice, rows.size() - begin));
    std::vector<TableKeys> params = model_->KeysFor(data, part);
    if (absl::Status s = kv_->Pull(&params, clock); !s.ok()) return s;
    for (float p : model_->Predict(data, part, params)) scores->Add(p);
    for (uint64_t r : part) labels->Add(data.labels[r]);
  }
  return absl::OkStatus();
}

absl::Status Trainer::Evaluate(int epoch, int64_t clock, double loss_sum, uint64_t samples,
                               const rpc::ClusterView& view) {
  // Shares follow the live workers, so a dead worker's rows are still scored.
  int position = 0, live = 0;
  for (int32_t w : view.live_workers()) {
    if (w == rank_) position = live;
    ++live;
  }
  if (live == 0) {
    position = rank_;
    live = num_workers_;
  }
  rpc::SubmitEvalRequest req;
  req.set_node_id(node_id_);
  req.set_epoch(epoch);
  req.set_train_loss_sum(loss_sum);
  req.set_train_samples(samples);
  std::vector<uint64_t> test_rows(test_.rows());
  std::iota(test_rows.begin(), test_rows.end(), 0);
  if (absl::Status s = Score(test_, ShareOf(test_rows, position, live), clock,
                             req.mutable_scores(), req.mutable_labels());
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Score(train_, ShareOf(validation_rows_, position, live), clock,
                             req.mutable_val_scores(), req.mutable_val_labels());
      !s.ok()) {
    return s;
  }
  return scheduler_->SubmitEval(req);
}

absl::Status Trainer::Run() {
  const config::Mode mode = job_.job().mode();
  const uint64_t b = job_.train().batch_size();
  const int epochs = job_.train().epochs();
  // Barriers wait out a scheduler restart (cluster.scheduler_timeout_ms).
  const absl::Duration lost_after = absl::Milliseconds(job_.cluster().scheduler_timeout_ms());
  const int classes = TaskOf(job_.model()) == Task::kRegression ? 0 : std::max(2, NumOutputs(job_.model()));
  SplitValidation(train_.rows(), job_.data().validation_fraction(), job_.job().seed(), &train_rows_,
                  &validation_rows_);
  if (NeedsStatistics(job_)) {
    if (absl::Status s = Prepare(); !s.ok()) return s;
  }
  progress_.train_examples.store(train_rows_.size());
  const int64_t max_steps = job_.train().max_iterations();
  // A resumed BSP job goes on at the checkpoint's clock, which counts the
  // steps before it; in SSP/ASP steps count from the resume.
  int64_t clock = start_clock_;
  int64_t steps = mode == config::BSP ? start_clock_ : 0;
  for (int epoch = start_epoch_; epoch < epochs; ++epoch) {
    const std::vector<uint64_t> rows =
        Resample(job_.data(), train_, train_rows_, classes, job_.job().seed(), epoch);
    const uint64_t n = rows.size();
    std::vector<uint64_t> order = EpochOrder(n, job_.job().seed(), epoch, job_.data().shuffle());
    for (uint64_t& o : order) o = rows[o];  // positions -> training rows
    progress_.epoch.store(epoch);
    progress_.loss_sum.store(0);
    progress_.epoch_samples.store(0);
    double loss_sum = 0;
    uint64_t samples = 0;
    bool limit_reached = false;
    auto run_batch = [&](uint64_t begin, uint64_t end,
                         absl::Span<const uint64_t> next = {}) -> absl::Status {
      if (clock < resume_clock_ && mode == config::BSP) {
        // Done by the worker we replace: skip, keeping the clock and the count.
        ++clock;
        if (max_steps > 0 && ++steps >= max_steps) limit_reached = true;
        return absl::OkStatus();
      }
      absl::Span<const uint64_t> batch(order.data() + begin, end - begin);
      const double fraction = (epoch + static_cast<double>(begin) / std::max<uint64_t>(1, n)) / epochs;
      auto loss = Step(batch, clock++, LearningRateScale(job_.optimizer(), epoch, fraction), next);
      if (!loss.ok()) return loss.status();
      loss_sum += *loss;
      samples += batch.size();
      progress_.samples_done.fetch_add(batch.size());
      progress_.loss_sum.store(loss_sum);
      progress_.epoch_samples.store(samples);
      if (max_steps > 0 && ++steps >= max_steps) limit_reached = true;
      return absl::OkStatus();
    };
    if (mode == config::BSP) {
      // Every rank runs the same number of steps (empty ones included), so
      // max_iterations stops them all at the same clock.
      const uint64_t global = b * num_workers_;
      const uint64_t batches = (n + global - 1) / global;
      for (uint64_t t = 0; t < batches && !limit_reached; ++t) {
        const uint64_t begin = std::min(n, t * global + rank_ * b);
        const uint64_t end = std::min(n, begin + b);
        // The next batch of this epoch, if this worker will run it.
        const uint64_t next_begin = std::min(n, (t + 1) * global + rank_ * b);
        const bool prefetch = t + 1 < batches && clock + 1 >= resume_clock_ &&
                              (max_steps <= 0 || steps + 1 < max_steps);
        const absl::Span<const uint64_t> next =
            prefetch ? absl::Span<const uint64_t>(order.data() + next_begin,
                                                  std::min(n, next_begin + b) - next_begin)
                     : absl::Span<const uint64_t>();
        if (absl::Status s = run_batch(begin, end, next); !s.ok()) return s;
      }
    } else {
      clock = std::max(clock, EpochBase(epoch));
      // Taking over in SSP/ASP: epochs before the predecessor's are done;
      // in its epoch the shard queue hands out what is left (its own shard
      // was put back).
      if (takeover_ && EpochBase(epoch + 1) <= resume_clock_) limit_reached = true;
      // Static shares (data.dynamic_shards false): shards rank, rank + K, ...
      // of the queue's cut, without asking the scheduler.
      const uint64_t shard_size = job_.data().shard_size();
      uint64_t static_shard = rank_;
      while (!limit_reached) {
        uint64_t shard_begin = 0, shard_end = 0;
        if (job_.data().dynamic_shards()) {
          rpc::NextShardRequest req;
          req.set_node_id(node_id_);
          req.set_epoch(epoch);
          req.set_train_examples(n);
          auto shard = scheduler_->NextShard(req);
          if (!shard.ok()) return shard.status();
          if (!shard->has_shard()) break;
          shard_begin = shard->begin();
          shard_end = shard->end();
        } else {
          if (static_shard * shard_size >= n) break;
          shard_begin = static_shard * shard_size;
          shard_end = std::min(n, shard_begin + shard_size);
          static_shard += num_workers_;
        }
        for (uint64_t begin = shard_begin; begin < shard_end && !limit_reached; begin += b) {
          if (absl::Status s = run_batch(begin, std::min(shard_end, begin + b)); !s.ok()) return s;
        }
      }
      // Done with this epoch: stop holding back the others.
      if (takeover_ && EpochBase(epoch + 1) <= resume_clock_) limit_reached = false;
      clock = EpochBase(epoch + 1);
      if (absl::Status s = kv_->Tick(clock); !s.ok()) return s;
    }
    auto trained = scheduler_->Vote(node_id_, absl::StrCat("epoch-", epoch), limit_reached, lost_after);
    if (!trained.ok()) return trained.status();
    const bool last = trained->stop() || epoch + 1 == epochs;
    bool stop = trained->stop();
    if (job_.train().eval_every_epoch() || last || job_.train().early_stopping_patience() > 0) {
      if (absl::Status s = Evaluate(epoch, clock, loss_sum, samples, trained->view()); !s.ok()) {
        return s;
      }
      // Nobody trains on until everyone has read the model being evaluated and
      // the scheduler has decided (and saved the best model).
      auto evaluated = scheduler_->Vote(node_id_, absl::StrCat("eval-", epoch), false, lost_after);
      if (!evaluated.ok()) return evaluated.status();
      stop |= evaluated->stop();
    }
    if (stop) {
      spdlog::info("worker {}: training stops after epoch {}", rank_, epoch + 1);
      break;
    }
  }
  if (mode != config::BSP) {
    if (absl::Status s = kv_->Tick(kDoneClock); !s.ok()) return s;
  }
  auto view = scheduler_->Barrier(node_id_, "end", lost_after);
  if (!view.ok()) return view.status();
  return absl::OkStatus();
}

}  // namespace ps

#include "worker/trainer.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/partitioning.h"
#include "spdlog/spdlog.h"

namespace ps {
namespace {

// SSP/ASP clocks of epoch e start at e << 32, so a worker that finished an
// epoch (and ticked to the next base) never holds back one still in it.
int64_t EpochBase(int epoch) { return static_cast<int64_t>(epoch) << 32; }
constexpr int64_t kDoneClock = std::numeric_limits<int64_t>::max() / 2;

}  // namespace

std::vector<uint64_t> EpochOrder(uint64_t n, uint64_t seed, int epoch, bool shuffle) {
  std::vector<uint64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (!shuffle) return order;
  SplitMix64 rng(Mix64(seed) ^ Mix64(static_cast<uint64_t>(epoch) + 1));
  for (uint64_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng.NextBelow(i)]);
  return order;
}

Trainer::Trainer(const config::JobConfig& job, int32_t rank, uint32_t node_id, int num_workers,
                 SchedulerClient* scheduler, KvClient* kv, const Dataset* train,
                 const Dataset* test, absl::Duration iteration_delay)
    : job_(job), rank_(rank), node_id_(node_id), num_workers_(num_workers), scheduler_(scheduler),
      kv_(kv), train_(train), test_(test), iteration_delay_(iteration_delay),
      model_(job.model()) {}

absl::StatusOr<double> Trainer::Step(absl::Span<const uint64_t> rows, int64_t clock) {
  if (iteration_delay_ > absl::ZeroDuration()) absl::SleepFor(iteration_delay_);  // test hook: a slow worker
  if (rows.empty()) {
    // Nothing to learn from, but the clock must still advance everywhere.
    if (absl::Status s = kv_->Push({}, clock, 0); !s.ok()) return s;
    return 0.0;
  }
  std::vector<TableKeys> params = model_.KeysFor(*train_, rows);
  if (absl::Status s = kv_->Pull(&params, clock); !s.ok()) return s;
  std::vector<TableKeys> grads;
  const double loss = model_.Gradient(*train_, rows, params, &grads);
  if (absl::Status s = kv_->Push(grads, clock, rows.size()); !s.ok()) return s;
  return loss;
}

absl::Status Trainer::Evaluate(int epoch, int64_t clock, double loss_sum, uint64_t samples) {
  rpc::SubmitEvalRequest req;
  req.set_node_id(node_id_);
  req.set_epoch(epoch);
  req.set_train_loss_sum(loss_sum);
  req.set_train_samples(samples);
  std::vector<uint64_t> rows;
  for (uint64_t r = rank_; r < test_->rows(); r += num_workers_) rows.push_back(r);
  // Evaluate in slices so a large test set does not become one huge pull.
  constexpr size_t kSlice = 4096;
  for (size_t begin = 0; begin < rows.size(); begin += kSlice) {
    absl::Span<const uint64_t> part(rows.data() + begin, std::min(kSlice, rows.size() - begin));
    std::vector<TableKeys> params = model_.KeysFor(*test_, part);
    if (absl::Status s = kv_->Pull(&params, clock); !s.ok()) return s;
    for (float p : model_.Predict(*test_, part, params)) req.add_scores(p);
    for (uint64_t r : part) req.add_labels(test_->labels[r]);
  }
  return scheduler_->SubmitEval(req);
}

absl::Status Trainer::Run() {
  const config::Mode mode = job_.job().mode();
  const uint64_t n = train_->rows();
  const uint64_t b = job_.train().batch_size();
  const int epochs = job_.train().epochs();
  const absl::Duration lost_after = absl::Milliseconds(job_.cluster().heartbeat_timeout_ms());
  int64_t clock = 0;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    const std::vector<uint64_t> order = EpochOrder(n, job_.job().seed(), epoch, job_.data().shuffle());
    progress_.epoch.store(epoch);
    progress_.loss_sum.store(0);
    progress_.epoch_samples.store(0);
    double loss_sum = 0;
    uint64_t samples = 0;
    auto run_batch = [&](uint64_t begin, uint64_t end) -> absl::Status {
      absl::Span<const uint64_t> rows(order.data() + begin, end - begin);
      auto loss = Step(rows, clock++);
      if (!loss.ok()) return loss.status();
      loss_sum += *loss;
      samples += rows.size();
      progress_.samples_done.fetch_add(rows.size());
      progress_.loss_sum.store(loss_sum);
      progress_.epoch_samples.store(samples);
      return absl::OkStatus();
    };
    if (mode == config::BSP) {
      const uint64_t global = b * num_workers_;
      const uint64_t steps = (n + global - 1) / global;
      for (uint64_t t = 0; t < steps; ++t) {
        const uint64_t begin = std::min(n, t * global + rank_ * b);
        const uint64_t end = std::min(n, begin + b);
        if (absl::Status s = run_batch(begin, end); !s.ok()) return s;
      }
    } else {
      clock = std::max(clock, EpochBase(epoch));
      while (true) {
        rpc::NextShardRequest req;
        req.set_node_id(node_id_);
        req.set_epoch(epoch);
        req.set_train_examples(n);
        auto shard = scheduler_->NextShard(req);
        if (!shard.ok()) return shard.status();
        if (!shard->has_shard()) break;
        for (uint64_t begin = shard->begin(); begin < shard->end(); begin += b) {
          if (absl::Status s = run_batch(begin, std::min(shard->end(), begin + b)); !s.ok()) return s;
        }
      }
      // Done with this epoch: stop holding back the others.
      clock = EpochBase(epoch + 1);
      if (absl::Status s = kv_->Tick(clock); !s.ok()) return s;
    }
    auto view = scheduler_->Barrier(node_id_, absl::StrCat("epoch-", epoch), lost_after);
    if (!view.ok()) return view.status();
    if (job_.train().eval_every_epoch() || epoch + 1 == epochs) {
      if (absl::Status s = Evaluate(epoch, clock, loss_sum, samples); !s.ok()) return s;
      if (mode != config::BSP) {
        // Nobody trains on until everyone has read the model being evaluated.
        auto after = scheduler_->Barrier(node_id_, absl::StrCat("eval-", epoch), lost_after);
        if (!after.ok()) return after.status();
      }
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

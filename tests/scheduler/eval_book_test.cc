// The evaluation book: an epoch merges once every live worker's share is
// in, a late share is ignored, early stopping keeps the best epoch and stops
// after its patience, and the book survives a restart through the state.
#include "scheduler/eval_book.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

config::JobConfig Job(int patience) {
  config::JobConfig job;
  job.mutable_cluster()->set_num_workers(2);
  job.mutable_train()->set_epochs(10);
  job.mutable_train()->set_early_stopping_patience(patience);
  job.mutable_train()->set_early_stopping_metric("accuracy");
  return job;
}

// Worker `node`'s share: `right` of 4 validation and test examples right.
rpc::SubmitEvalRequest Share(uint32_t node, int32_t epoch, int right) {
  rpc::SubmitEvalRequest req;
  req.set_node_id(node);
  req.set_epoch(epoch);
  for (int i = 0; i < 4; ++i) {
    const float label = i % 2;
    const float score = i < right ? (label > 0 ? 0.9f : 0.1f) : (label > 0 ? 0.1f : 0.9f);
    req.add_labels(label);
    req.add_scores(score);
    req.add_val_labels(label);
    req.add_val_scores(score);
  }
  req.set_train_loss_sum(2.0);
  req.set_train_samples(10);
  return req;
}

const auto kRank = [](uint32_t node) { return static_cast<int32_t>(node) - 1; };

// Both workers' shares of `epoch`, merged and recorded. Returns Record's answer.
bool Epoch(EvalBook& book, const config::JobConfig& job, int32_t epoch, int right) {
  EXPECT_TRUE(*book.Add(Share(1, epoch, right)));
  EXPECT_FALSE(book.TakeIfComplete(epoch, {1, 2}, kRank).has_value()) << "one share of two";
  EXPECT_TRUE(*book.Add(Share(2, epoch, right)));
  auto shares = book.TakeIfComplete(epoch, {1, 2}, kRank);
  EXPECT_TRUE(shares.has_value());
  auto merged = EvalBook::Merge(job, std::move(*shares), 1.0);
  EXPECT_TRUE(merged.ok()) << merged.status();
  auto save = book.Record(epoch, std::move(*merged));
  EXPECT_TRUE(save.ok()) << save.status();
  return *save;
}

TEST(EvalBook, AnEpochMergesOnceEveryLiveWorkersShareIsIn) {
  const config::JobConfig job = Job(0);
  EvalBook book(job);
  EXPECT_FALSE(Epoch(book, job, 0, 3));
  ASSERT_EQ(book.history().size(), 1u);
  const EpochResult& r = book.history()[0];
  EXPECT_EQ(r.epoch, 1);
  EXPECT_DOUBLE_EQ(r.train_loss, 0.2);  // 4.0 over 20 samples
  EXPECT_THAT(r.worker_samples, ::testing::ElementsAre(10, 10));
  EXPECT_DOUBLE_EQ(r.test.values.at("accuracy"), 0.75);
  EXPECT_TRUE(book.evaluated(0));
  // Late: a retry, or a standby replaying the epoch.
  auto late = book.Add(Share(2, 0, 4));
  ASSERT_TRUE(late.ok());
  EXPECT_FALSE(*late);
  // Bad input is refused and changes nothing.
  rpc::SubmitEvalRequest bad = Share(1, 1, 4);
  bad.add_scores(0.5);
  EXPECT_EQ(book.Add(bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(book.Waiting().empty());
  // A replaced worker's share goes (its successor sends its own).
  ASSERT_TRUE(*book.Add(Share(1, 1, 4)));
  book.Drop(1);
  EXPECT_FALSE(book.TakeIfComplete(1, {2}, kRank).has_value());
  ASSERT_TRUE(*book.Add(Share(2, 1, 4)));
  EXPECT_TRUE(book.TakeIfComplete(1, {2}, kRank).has_value());
  // A worker that sent its share and died does not stand in for a live one
  // that has not: the merge waits for every live worker's own.
  ASSERT_TRUE(*book.Add(Share(1, 2, 4)));
  EXPECT_FALSE(book.TakeIfComplete(2, {2, 3}, kRank).has_value());
  ASSERT_TRUE(*book.Add(Share(2, 2, 4)));
  EXPECT_FALSE(book.TakeIfComplete(2, {2, 3}, kRank).has_value());
  ASSERT_TRUE(*book.Add(Share(3, 2, 4)));
  auto three = book.TakeIfComplete(2, {2, 3}, kRank);
  ASSERT_TRUE(three.has_value());
  EXPECT_EQ(three->samples, 30u) << "the dead worker's share is merged too";
}

TEST(EvalBook, EarlyStoppingKeepsTheBestEpochAndStopsAfterItsPatience) {
  const config::JobConfig job = Job(2);
  EvalBook book(job);
  EXPECT_TRUE(Epoch(book, job, 0, 2)) << "the first is the best so far: saved first";
  EXPECT_FALSE(book.evaluated(0));
  EXPECT_EQ(book.save_pending(), 0);
  book.BestSaved(0, true);
  EXPECT_TRUE(book.evaluated(0));
  EXPECT_TRUE(Epoch(book, job, 1, 3));  // better
  book.BestSaved(1, true);
  EXPECT_FALSE(Epoch(book, job, 2, 3));  // no better: 1 of 2
  EXPECT_FALSE(book.stop_early());
  // The state, as a restarted scheduler reads it.
  rpc::SchedulerState state;
  book.Save(&state);
  book.SaveProgress(state.mutable_progress());
  EvalBook again(job);
  again.Load(state);
  again.LoadProgress(state.progress());
  EXPECT_EQ(again.history().size(), 3u);
  EXPECT_FALSE(Epoch(again, job, 3, 2));  // worse: 2 of 2
  EXPECT_TRUE(again.stop_early());
  EXPECT_EQ(again.saved_best_epoch(), 1);
  EXPECT_TRUE(again.evaluated(3));
}

}  // namespace
}  // namespace ps

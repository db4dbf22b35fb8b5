// The job's outputs from a made-up history: which epoch's model is kept,
// what metrics.json says, the report file.
#include "scheduler/job_outputs.h"

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace ps {
namespace {

using ::testing::HasSubstr;

std::vector<EpochResult> History() {
  std::vector<EpochResult> h(3);
  for (int i = 0; i < 3; ++i) {
    h[i].epoch = i + 1;
    h[i].train_loss = 1.0 / (i + 1);
    h[i].seconds = i + 0.5;
    h[i].worker_samples = {10, 20};
    h[i].test.line = absl::StrCat("acc=0.", 7 + i);
    h[i].test.json = absl::StrCat("{\"accuracy\": 0.", 7 + i, "}");
    h[i].test.values = {{"loss", 0.5}, {"accuracy", 0.7 + 0.1 * i}};
  }
  return h;
}

TEST(JobOutputs, TheKeptModelIsTheBestWithEarlyStoppingElseTheLast) {
  config::JobConfig job;
  const std::vector<EpochResult> history = History();
  JobRecord rec{&job, &history, 100, /*saved_best_epoch=*/0};
  ASSERT_NE(FinalResult(rec), nullptr);
  EXPECT_EQ(FinalResult(rec)->epoch, 3) << "no early stopping: the last";
  job.mutable_train()->set_early_stopping_patience(2);
  EXPECT_EQ(FinalResult(rec)->epoch, 1);
  const std::vector<EpochResult> none;
  rec.history = &none;
  EXPECT_EQ(FinalResult(rec), nullptr);
}

TEST(JobOutputs, MetricsJsonSaysWhatTheJobDid) {
  config::JobConfig job;
  job.mutable_job()->set_name("outputs");
  job.mutable_cluster()->set_num_workers(2);
  const std::vector<EpochResult> history = History();
  const JobRecord rec{&job, &history, 30, -1};
  const std::string json = MetricsJson(rec, 2.0, 58, "{\"rank\": 0}");
  EXPECT_THAT(json, HasSubstr("\"job\": \"outputs\""));
  EXPECT_EQ(testing::JsonNumber(json, "{", "epochs"), 3);
  EXPECT_EQ(testing::JsonNumber(json, "{", "train_samples"), 90);  // 30 examples x 3 epochs
  EXPECT_EQ(testing::JsonNumber(json, "{", "samples_per_second"), 45);
  EXPECT_THAT(json, HasSubstr("\"worker_samples\": [30, 60]"));
  EXPECT_EQ(testing::JsonNumber(json, "{", "model_epoch"), 3);
  EXPECT_THAT(json, HasSubstr("\"test\": {\"accuracy\": 0.9}"));
  EXPECT_THAT(json, Not(HasSubstr("privacy")));
}

TEST(JobOutputs, DpSgdEpsilonGrowsWithEpochsAndIsInTheMetrics) {
  config::JobConfig job;
  job.mutable_privacy()->set_dp_sgd(true);
  job.mutable_privacy()->set_noise_multiplier(1.1);
  job.mutable_privacy()->set_delta(1e-5);
  job.mutable_train()->set_batch_size(32);
  const std::vector<EpochResult> history = History();
  const JobRecord rec{&job, &history, 3000, -1};
  EXPECT_GT(EpsilonAfter(rec, 1), 0);
  EXPECT_GT(EpsilonAfter(rec, 3), EpsilonAfter(rec, 1));
  EXPECT_THAT(MetricsJson(rec, 1.0, 1, ""), HasSubstr("\"privacy\": {\"epsilon\": "));
}

TEST(JobOutputs, TheReportIsWrittenIntoTheOutputFolder) {
  config::JobConfig job;
  const std::string out = testing::NewTempDir("job-outputs");
  job.mutable_job()->set_output_dir(out);
  job.mutable_job()->set_name("report-job");
  const std::vector<EpochResult> history = History();
  ASSERT_TRUE(WriteJobReport({&job, &history, 30, -1}, 1.5).ok());
  const std::string html = testing::ReadFile(out + "/report.html");
  EXPECT_THAT(html, HasSubstr("report-job"));
  EXPECT_THAT(html, HasSubstr("acc=0.9"));
  job.mutable_job()->set_output_dir(out + "/missing/folder");
  EXPECT_FALSE(WriteJobReport({&job, &history, 30, -1}, 1.5).ok());
}

}  // namespace
}  // namespace ps

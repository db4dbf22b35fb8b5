#include "common/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "absl/status/status.h"

namespace ps {
namespace {

using ::testing::HasSubstr;

constexpr double kTol = 1e-12;

BinaryMetrics MustCompute(const std::vector<float>& scores, const std::vector<float>& labels,
                          double threshold = 0.5) {
  absl::StatusOr<BinaryMetrics> m = ComputeBinaryMetrics(scores, labels, threshold);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : BinaryMetrics{};
}

// labels {0,0,1,1}, scores {0.1,0.4,0.35,0.8}; by hand:
//   threshold 0.5 -> predictions {0,0,0,1}: tp=1 (0.8), fn=1 (0.35),
//   tn=2 (0.1, 0.4), fp=0. acc=3/4, prec=1/1, rec=1/2, f1=2*1*0.5/1.5=2/3.
//   AUC: positive/negative pairs (0.35>0.1 yes, 0.35>0.4 no, 0.8>0.1 yes,
//   0.8>0.4 yes) -> 3 of 4 = 0.75.
//   logloss = -(ln 0.9 + ln 0.6 + ln 0.35 + ln 0.8) / 4
//           = (0.1053605 + 0.5108256 + 1.0498221 + 0.2231436) / 4 = 0.4722880.
TEST(ComputeBinaryMetrics, SmallExampleByHand) {
  BinaryMetrics m = MustCompute({0.1f, 0.4f, 0.35f, 0.8f}, {0, 0, 1, 1});
  EXPECT_EQ(m.n, 4u);
  EXPECT_EQ(m.tp, 1u);
  EXPECT_EQ(m.fn, 1u);
  EXPECT_EQ(m.tn, 2u);
  EXPECT_EQ(m.fp, 0u);
  EXPECT_DOUBLE_EQ(m.accuracy, 0.75);
  EXPECT_DOUBLE_EQ(m.precision, 1.0);
  EXPECT_DOUBLE_EQ(m.recall, 0.5);
  EXPECT_DOUBLE_EQ(m.f1, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.roc_auc, 0.75);
  EXPECT_NEAR(m.log_loss, 0.4722880, 1e-7);
  // The same loss from the definition, with the float-rounded scores.
  const double expected_loss = -(std::log(1.0 - double{0.1f}) + std::log(1.0 - double{0.4f}) +
                                 std::log(double{0.35f}) + std::log(double{0.8f})) /
                               4.0;
  EXPECT_NEAR(m.log_loss, expected_loss, kTol);
}

TEST(ComputeBinaryMetrics, ScoreEqualToThresholdIsPositive) {
  BinaryMetrics m = MustCompute({0.5f, 0.49f}, {1, 0});
  EXPECT_EQ(m.tp, 1u);
  EXPECT_EQ(m.tn, 1u);
  // A higher threshold flips the first prediction.
  m = MustCompute({0.5f, 0.49f}, {1, 0}, /*threshold=*/0.6);
  EXPECT_EQ(m.fn, 1u);
  EXPECT_EQ(m.tn, 1u);
}

TEST(ComputeBinaryMetrics, AllScoresTiedGiveHalfAuc) {
  BinaryMetrics m = MustCompute({0.5f, 0.5f, 0.5f, 0.5f}, {0, 1, 0, 1});
  EXPECT_DOUBLE_EQ(m.roc_auc, 0.5);
  // -ln(0.5) per example.
  EXPECT_NEAR(m.log_loss, std::log(2.0), kTol);
}

// scores {0.2,0.6,0.6,0.6,0.9,0.3}, labels {0,1,0,1,1,0}. By hand:
//   sorted: 0.2(-) 0.3(-) 0.6(+) 0.6(-) 0.6(+) 0.9(+); ranks 1, 2, then the
//   three 0.6 share ranks 3,4,5 -> 4 each, 0.9 rank 6.
//   positive rank sum = 4 + 4 + 6 = 14; U = 14 - 3*4/2 = 8; AUC = 8/(3*3) = 8/9.
//   Pairwise check: each positive beats 0.2 and 0.3 (6), the 0.9 beats the
//   0.6 negative (1), the two 0.6 positives tie it (2 * 1/2) -> 8 of 9.
TEST(ComputeBinaryMetrics, AucWithPartialTiesByHand) {
  BinaryMetrics m = MustCompute({0.2f, 0.6f, 0.6f, 0.6f, 0.9f, 0.3f}, {0, 1, 0, 1, 1, 0});
  EXPECT_DOUBLE_EQ(m.roc_auc, 8.0 / 9.0);
}

TEST(ComputeBinaryMetrics, PerfectAndInvertedClassifiers) {
  const std::vector<float> labels = {0, 0, 1, 1, 0, 1};
  BinaryMetrics perfect = MustCompute({0.1f, 0.2f, 0.7f, 0.9f, 0.3f, 0.6f}, labels);
  EXPECT_DOUBLE_EQ(perfect.roc_auc, 1.0);
  EXPECT_DOUBLE_EQ(perfect.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(perfect.f1, 1.0);
  BinaryMetrics inverted = MustCompute({0.9f, 0.8f, 0.3f, 0.1f, 0.7f, 0.2f}, labels);
  EXPECT_DOUBLE_EQ(inverted.roc_auc, 0.0);
  EXPECT_DOUBLE_EQ(inverted.accuracy, 0.0);
  EXPECT_EQ(inverted.tp, 0u);
  EXPECT_DOUBLE_EQ(inverted.precision, 0.0);
  EXPECT_DOUBLE_EQ(inverted.f1, 0.0);
}

TEST(ComputeBinaryMetrics, OneClassGivesNanAuc) {
  BinaryMetrics only_neg = MustCompute({0.1f, 0.7f}, {0, 0});
  EXPECT_TRUE(std::isnan(only_neg.roc_auc));
  EXPECT_EQ(only_neg.fp, 1u);
  BinaryMetrics only_pos = MustCompute({0.1f, 0.7f}, {1, 1});
  EXPECT_TRUE(std::isnan(only_pos.roc_auc));
  EXPECT_DOUBLE_EQ(only_pos.recall, 0.5);
}

TEST(ComputeBinaryMetrics, NoPredictedPositivesGivesZeroPrecision) {
  BinaryMetrics m = MustCompute({0.1f, 0.2f, 0.3f}, {1, 0, 1});
  EXPECT_EQ(m.tp + m.fp, 0u);
  EXPECT_DOUBLE_EQ(m.precision, 0.0);
  EXPECT_DOUBLE_EQ(m.recall, 0.0);
  EXPECT_DOUBLE_EQ(m.f1, 0.0);
}

// labels {1,0}, scores {0.8,0.2}: logloss = -(ln 0.8 + ln 0.8)/2 = 0.2231436.
// Confident mistakes are clipped: label 1 with score 0 costs -ln(1e-15)
// = 15 ln 10 = 34.5387764. Label 0 with score 1 clips the score to the double
// nearest 1-1e-15 (0.999999999999999000799), so it costs
// -ln(9.992007221626409e-16) = 34.5387764 - ln(0.9992007221626409)
// = 34.5387764 + 0.0007996 = 34.5395760 (sklearn clips the same way).
TEST(ComputeBinaryMetrics, LogLossByHandAndClipping) {
  EXPECT_NEAR(MustCompute({0.8f, 0.2f}, {1, 0}).log_loss, 0.2231436, 1e-7);
  EXPECT_NEAR(MustCompute({0.0f}, {1}).log_loss, 34.5387764, 1e-6);
  EXPECT_NEAR(MustCompute({1.0f}, {0}).log_loss, 34.5395760, 1e-6);
  // Perfect confident predictions cost -ln(1 - 1e-15), about 1e-15.
  EXPECT_NEAR(MustCompute({1.0f, 0.0f}, {1, 0}).log_loss, 0.0, 1e-14);
}

// Reference values from scikit-learn 1.2.1 (Debian python3-sklearn) on this
// hand-made example; the scores are exact binary fractions, so float32 and
// float64 hold the same values. Produced with:
//   y = [1,0,1,1,0,0,1,0,1,0,0,1]
//   s = [0.875,0.125,0.5,0.25,0.5,0.625,1.0,0.0,0.75,0.25,0.375,0.5]
//   p = (s >= 0.5)
//   confusion_matrix(y,p).ravel() -> tn=4 fp=2 fn=1 tp=5
//   accuracy_score 0.75; precision_score(zero_division=0) 0.7142857142857143
//   recall_score 0.83333333333333337; f1_score 0.76923076923076916
//   roc_auc_score(y,s) 0.81944444444444453
//   log_loss(y,s,eps=1e-15) 0.47991630960081638
//   log_loss([1,0,1,0],[0,1,1,0],eps=1e-15) 17.269588096812889,
//   roc_auc_score of the same 0.5
TEST(ComputeBinaryMetrics, MatchesScikitLearnReference) {
  BinaryMetrics m = MustCompute(
      {0.875f, 0.125f, 0.5f, 0.25f, 0.5f, 0.625f, 1.0f, 0.0f, 0.75f, 0.25f, 0.375f, 0.5f},
      {1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1});
  EXPECT_EQ(m.tn, 4u);
  EXPECT_EQ(m.fp, 2u);
  EXPECT_EQ(m.fn, 1u);
  EXPECT_EQ(m.tp, 5u);
  EXPECT_NEAR(m.accuracy, 0.75, kTol);
  EXPECT_NEAR(m.precision, 0.7142857142857143, kTol);
  EXPECT_NEAR(m.recall, 0.83333333333333337, kTol);
  EXPECT_NEAR(m.f1, 0.76923076923076916, kTol);
  EXPECT_NEAR(m.roc_auc, 0.81944444444444453, kTol);
  EXPECT_NEAR(m.log_loss, 0.47991630960081638, kTol);

  BinaryMetrics clipped = MustCompute({0.0f, 1.0f, 1.0f, 0.0f}, {1, 0, 1, 0});
  EXPECT_NEAR(clipped.log_loss, 17.269588096812889, 1e-9);
  EXPECT_NEAR(clipped.roc_auc, 0.5, kTol);
}

TEST(ComputeBinaryMetrics, RejectsSizeMismatch) {
  absl::StatusOr<BinaryMetrics> m =
      ComputeBinaryMetrics(std::vector<float>{0.1f, 0.2f}, std::vector<float>{1});
  ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("2 scores but 1 labels"));
}

TEST(ComputeBinaryMetrics, RejectsEmptySet) {
  EXPECT_EQ(ComputeBinaryMetrics({}, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ComputeBinaryMetrics, RejectsLabelNotZeroOne) {
  absl::StatusOr<BinaryMetrics> m =
      ComputeBinaryMetrics(std::vector<float>{0.1f, 0.2f, 0.3f}, std::vector<float>{0, 1, -1});
  ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("index 2"));
}

TEST(ComputeBinaryMetrics, RejectsNanOrOutOfRangeScore) {
  for (float bad : {std::nanf(""), -0.01f, 1.5f, INFINITY}) {
    absl::StatusOr<BinaryMetrics> m =
        ComputeBinaryMetrics(std::vector<float>{0.1f, bad}, std::vector<float>{0, 1});
    ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(m.status().message(), HasSubstr("index 1")) << bad;
  }
}

TEST(ComputeBinaryMetrics, RejectsBadThreshold) {
  EXPECT_EQ(ComputeBinaryMetrics(std::vector<float>{0.1f}, std::vector<float>{0}, std::nan(""))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FormatBinaryMetrics, OneLineWithFourDecimals) {
  BinaryMetrics m = MustCompute({0.1f, 0.4f, 0.35f, 0.8f}, {0, 0, 1, 1});
  EXPECT_EQ(FormatBinaryMetrics(m),
            "acc=0.7500 prec=1.0000 rec=0.5000 f1=0.6667 auc=0.7500 "
            "logloss=0.4723 n=4");
  m.roc_auc = std::nan("");
  EXPECT_THAT(FormatBinaryMetrics(m), HasSubstr("auc=nan "));
}

TEST(BinaryMetricsToJson, WritesAllFieldsAndNanAsNull) {
  BinaryMetrics m;
  m.n = 4;
  m.tp = 1;
  m.fp = 0;
  m.tn = 2;
  m.fn = 1;
  m.accuracy = 0.75;
  m.precision = 1;
  m.recall = 0.5;
  m.f1 = 0.25;
  m.roc_auc = std::nan("");
  m.log_loss = 0.125;
  EXPECT_EQ(BinaryMetricsToJson(m),
            "{\"n\":4,\"tp\":1,\"fp\":0,\"tn\":2,\"fn\":1,\"accuracy\":0.75,"
            "\"precision\":1,\"recall\":0.5,\"f1\":0.25,\"roc_auc\":null,"
            "\"log_loss\":0.125}");
}

}  // namespace
}  // namespace ps

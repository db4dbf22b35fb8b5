#include "common/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <utility>
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
  m.precision_macro = 0.5;
  m.recall_macro = 0.375;
  m.f1_macro = 0.0625;
  m.precision_weighted = 2;
  m.recall_weighted = 3;
  m.f1_weighted = std::nan("");
  EXPECT_EQ(BinaryMetricsToJson(m),
            "{\"n\":4,\"tp\":1,\"fp\":0,\"tn\":2,\"fn\":1,\"accuracy\":0.75,"
            "\"precision\":1,\"recall\":0.5,\"f1\":0.25,\"roc_auc\":null,"
            "\"log_loss\":0.125,\"precision_macro\":0.5,\"recall_macro\":0.375,"
            "\"f1_macro\":0.0625,\"precision_weighted\":2,\"recall_weighted\":3,"
            "\"f1_weighted\":null}");
}

// labels {1,0,0,0,0,1,1,0}, scores {0.875,0.25,0.625,0.375,0.125,0.75,0.375,
// 0.875}; predictions at 0.5: {1,0,1,0,0,1,0,1}. By hand:
//   tp=2 (0.875, 0.75), fn=1 (0.375), fp=2 (0.625, 0.875), tn=3.
//   class 1 (support 3): P=2/4, R=2/3, F1=2*2/(4+3)=4/7.
//   class 0 (support 5): P=3/4 (tn/(tn+fn)), R=3/5, F1=2*3/(4+5)=2/3.
//   macro:    P=(1/2+3/4)/2=0.625, R=(2/3+3/5)/2=19/30, F1=(4/7+2/3)/2=13/21.
//   weighted: P=(3*1/2+5*3/4)/8=0.65625, R=(3*2/3+5*3/5)/8=0.625,
//             F1=(3*4/7+5*2/3)/8=53/84.
// scikit-learn 1.2.1 agrees:
//   p = (s >= 0.5); kw = dict(labels=[0,1], zero_division=0)
//   precision_score(y,p,average='macro',**kw) 0.625, recall 0.6333333333333333,
//   f1 0.6190476190476191; average='weighted': 0.65625, 0.625, 0.6309523809523809
TEST(ComputeBinaryMetrics, MacroAndWeightedAveragesByHand) {
  BinaryMetrics m = MustCompute({0.875f, 0.25f, 0.625f, 0.375f, 0.125f, 0.75f, 0.375f, 0.875f},
                                {1, 0, 0, 0, 0, 1, 1, 0});
  EXPECT_EQ(m.tp, 2u);
  EXPECT_EQ(m.fn, 1u);
  EXPECT_EQ(m.fp, 2u);
  EXPECT_EQ(m.tn, 3u);
  EXPECT_NEAR(m.precision_macro, 0.625, kTol);
  EXPECT_NEAR(m.recall_macro, 19.0 / 30.0, kTol);
  EXPECT_NEAR(m.f1_macro, 13.0 / 21.0, kTol);
  EXPECT_NEAR(m.precision_weighted, 0.65625, kTol);
  EXPECT_NEAR(m.recall_weighted, 0.625, kTol);
  EXPECT_NEAR(m.f1_weighted, 53.0 / 84.0, kTol);
  EXPECT_NEAR(m.f1_macro, 0.6190476190476191, kTol);
  EXPECT_NEAR(m.f1_weighted, 0.6309523809523809, kTol);
  // Weighted recall is always the accuracy.
  EXPECT_NEAR(m.recall_weighted, m.accuracy, kTol);
}

// The 12-example sklearn reference above (tn=4 fp=2 fn=1 tp=5, 6 per class),
// averaged with labels=[0,1], zero_division=0 in scikit-learn 1.2.1:
//   macro    precision 0.7571428571428571 recall 0.75 f1 0.7482517482517481
//   weighted precision 0.7571428571428571 recall 0.75 f1 0.7482517482517482
// By hand: class 0 P=4/5 R=4/6 F1=8/11, class 1 P=5/7 R=5/6 F1=10/13;
// P=(4/5+5/7)/2=53/70, F1=(8/11+10/13)/2=107/143.
// And with a single class, both classes still count: y=p=[0,0] gives macro
// precision (1+0)/2 = 0.5 (sklearn with labels=[0,1]: 0.5; without: 1.0).
TEST(ComputeBinaryMetrics, MacroAndWeightedMatchScikitLearn) {
  BinaryMetrics m = MustCompute(
      {0.875f, 0.125f, 0.5f, 0.25f, 0.5f, 0.625f, 1.0f, 0.0f, 0.75f, 0.25f, 0.375f, 0.5f},
      {1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1});
  EXPECT_NEAR(m.precision_macro, 0.7571428571428571, kTol);
  EXPECT_NEAR(m.recall_macro, 0.75, kTol);
  EXPECT_NEAR(m.f1_macro, 0.7482517482517481, kTol);
  EXPECT_NEAR(m.precision_weighted, 0.7571428571428571, kTol);
  EXPECT_NEAR(m.recall_weighted, 0.75, kTol);
  EXPECT_NEAR(m.f1_weighted, 0.7482517482517482, kTol);

  BinaryMetrics one_class = MustCompute({0.125f, 0.25f}, {0, 0});
  EXPECT_DOUBLE_EQ(one_class.precision_macro, 0.5);
  EXPECT_DOUBLE_EQ(one_class.precision_weighted, 1.0);
}

std::vector<std::pair<double, double>> MustRoc(const std::vector<float>& scores,
                                               const std::vector<float>& labels,
                                               int max_points = 200) {
  absl::StatusOr<std::vector<std::pair<double, double>>> curve =
      RocCurve(scores, labels, max_points);
  EXPECT_TRUE(curve.ok()) << curve.status();
  return curve.ok() ? *curve : std::vector<std::pair<double, double>>{};
}

// scores {0.2,0.6,0.6,0.6,0.9,0.3}, labels {0,1,0,1,1,0}, 3 of each. By hand,
// thresholds in decreasing order: 0.9 takes one positive -> (0,1/3); the
// three 0.6 together take 2 positives and 1 negative -> (1/3,1); 0.3 ->
// (2/3,1); 0.2 -> (1,1). sklearn 1.2.1
// roc_curve(y, s, drop_intermediate=False) gives the same five points:
//   [(0,0), (0,0.3333333333333333), (0.3333333333333333,1),
//    (0.6666666666666666,1), (1,1)]
TEST(RocCurve, GroupsTiesLikeScikitLearn) {
  std::vector<std::pair<double, double>> curve =
      MustRoc({0.2f, 0.6f, 0.6f, 0.6f, 0.9f, 0.3f}, {0, 1, 0, 1, 1, 0});
  ASSERT_EQ(curve.size(), 5u);
  const std::vector<std::pair<double, double>> expected = {
      {0, 0}, {0, 1.0 / 3.0}, {1.0 / 3.0, 1}, {2.0 / 3.0, 1}, {1, 1}};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_DOUBLE_EQ(curve[i].first, expected[i].first) << i;
    EXPECT_DOUBLE_EQ(curve[i].second, expected[i].second) << i;
  }
}

// The 12-example sklearn reference; roc_curve(y, s, drop_intermediate=False)
// in scikit-learn 1.2.1 returns the 10 points (fpr, tpr), in sixths:
//   (0,0) (0,1) (0,2) (0,3) (1,3) (2,5) (3,5) (4,6) (5,6) (6,6).
// Downsampled to 4 points: indices round(k*9/3) = 0, 3, 6, 9.
TEST(RocCurve, DownsamplesKeepingEndpoints) {
  const std::vector<float> scores = {0.875f, 0.125f, 0.5f,  0.25f, 0.5f,   0.625f,
                                     1.0f,   0.0f,   0.75f, 0.25f, 0.375f, 0.5f};
  const std::vector<float> labels = {1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1};
  const std::vector<std::pair<int, int>> sixths = {{0, 0}, {0, 1}, {0, 2}, {0, 3}, {1, 3},
                                                   {2, 5}, {3, 5}, {4, 6}, {5, 6}, {6, 6}};
  std::vector<std::pair<double, double>> full = MustRoc(scores, labels);
  ASSERT_EQ(full.size(), sixths.size());
  for (size_t i = 0; i < sixths.size(); ++i) {
    EXPECT_DOUBLE_EQ(full[i].first, sixths[i].first / 6.0) << i;
    EXPECT_DOUBLE_EQ(full[i].second, sixths[i].second / 6.0) << i;
  }
  EXPECT_EQ(MustRoc(scores, labels, /*max_points=*/10), full);
  std::vector<std::pair<double, double>> four = MustRoc(scores, labels, /*max_points=*/4);
  ASSERT_EQ(four.size(), 4u);
  EXPECT_EQ(four[0], full[0]);
  EXPECT_EQ(four[1], full[3]);
  EXPECT_EQ(four[2], full[6]);
  EXPECT_EQ(four[3], full[9]);
  std::vector<std::pair<double, double>> two = MustRoc(scores, labels, /*max_points=*/2);
  EXPECT_EQ(two, (std::vector<std::pair<double, double>>{{0, 0}, {1, 1}}));
}

TEST(RocCurve, RejectsBadInputs) {
  EXPECT_EQ(RocCurve(std::vector<float>{0.1f, 0.2f}, std::vector<float>{1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RocCurve({}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RocCurve(std::vector<float>{0.1f, 0.2f}, std::vector<float>{1, 2}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      RocCurve(std::vector<float>{0.1f, std::nanf("")}, std::vector<float>{1, 0}).status().code(),
      absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::vector<std::pair<double, double>>> one_class =
      RocCurve(std::vector<float>{0.1f, 0.2f}, std::vector<float>{1, 1});
  ASSERT_EQ(one_class.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(one_class.status().message(), HasSubstr("both classes"));
  EXPECT_EQ(RocCurve(std::vector<float>{0.1f, 0.2f}, std::vector<float>{1, 0}, /*max_points=*/1)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

MulticlassMetrics MustComputeMulticlass(const std::vector<float>& probs,
                                        const std::vector<float>& labels, int num_classes) {
  absl::StatusOr<MulticlassMetrics> m = ComputeMulticlassMetrics(probs, labels, num_classes);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : MulticlassMetrics{};
}

// Three classes, nine examples; probabilities are exact binary fractions and
// every row sums to 1. Rows (label): argmax prediction
//   0 [.5   .25  .25 ] (0): 0     5 [.5   .25  .25 ] (2): 0
//   1 [.25  .5   .25 ] (0): 1     6 [.75  .125 .125] (0): 0
//   2 [.25  .5   .25 ] (1): 1     7 [.125 .75  .125] (1): 1
//   3 [.5   .25  .25 ] (1): 0     8 [.375 .375 .25 ] (1): 0 (tie -> lowest)
//   4 [.25  .375 .375] (2): 1 (tie -> lowest)
const std::vector<float> kProbs = {0.5f,   0.25f, 0.25f,  0.25f,  0.5f,   0.25f,  0.25f,
                                   0.5f,   0.25f, 0.5f,   0.25f,  0.25f,  0.25f,  0.375f,
                                   0.375f, 0.5f,  0.25f,  0.25f,  0.75f,  0.125f, 0.125f,
                                   0.125f, 0.75f, 0.125f, 0.375f, 0.375f, 0.25f};
const std::vector<float> kLabels = {0, 0, 1, 1, 2, 2, 0, 1, 1};

// By hand:
//   confusion [true][pred] = [[2,1,0],[2,2,0],[1,1,0]]; accuracy 4/9.
//   Class 2 is never predicted: precision 0 (zero_division=0).
//   P = (2/5, 2/4, 0), R = (2/3, 2/4, 0), F1 = 2tp/(pred+support)
//     = (4/8, 4/8, 0); supports (3, 4, 2).
//   macro P = 0.9/3 = 0.3, R = (2/3+1/2)/3 = 7/18, F1 = 1/3;
//   weighted P = (1.2+2)/9 = 3.2/9, R = 4/9, F1 = (1.5+2)/9 = 3.5/9.
//   OvR AUC by pairs (ties count 1/2):
//     class 0: positives .5 .25 .75 vs negatives .25 .5 .25 .5 .125 .375:
//       5 + 2 + 6 = 13 of 18.
//     class 1: positives .5 .25 .75 .375 vs negatives .25 .5 .375 .25 .125:
//       4.5 + 2 + 5 + 3.5 = 15 of 20 = 0.75.
//     class 2: positives .375 .25 vs negatives .25 x5, .125 x2:
//       7 + (2 + 5/2) = 11.5 of 14.
//     macro = (13/18 + 3/4 + 11.5/14)/3 = 0.764550;
//     weighted = (3*13/18 + 4*3/4 + 2*11.5/14)/9 = 0.756614.
//   log loss = (2 ln 2 + 3 ln 4 + 2 ln(8/3) + 2 ln(4/3)) / 9 = 0.898022.
// scikit-learn 1.2.1, L = [0,1,2], pred = P.argmax(axis=1):
//   confusion_matrix(y,pred,labels=L) [[2,1,0],[2,2,0],[1,1,0]]
//   accuracy_score 0.4444444444444444
//   kw = dict(labels=L, zero_division=0)
//   precision_score(average='macro') 0.3, recall 0.38888888888888884,
//     f1 0.3333333333333333
//   average='weighted': 0.35555555555555557, 0.4444444444444444, 0.3888888888888889
//   f1_score(average=None) [0.5 0.5 0.]
//   roc_auc_score(y,P,multi_class='ovr',average='macro') 0.7645502645502645
//   roc_auc_score(y,P,multi_class='ovr',average='weighted') 0.7566137566137565
//   [roc_auc_score(y==c,P[:,c]) for c in L]
//     [0.7222222222222222, 0.75, 0.8214285714285714]
//   log_loss(y,P,eps=1e-15,labels=L) 0.898022232822953
TEST(ComputeMulticlassMetrics, SmallExampleByHandAndScikitLearn) {
  MulticlassMetrics m = MustComputeMulticlass(kProbs, kLabels, 3);
  EXPECT_EQ(m.n, 9u);
  EXPECT_EQ(m.num_classes, 3);
  EXPECT_EQ(m.confusion, (std::vector<std::vector<uint64_t>>{{2, 1, 0}, {2, 2, 0}, {1, 1, 0}}));
  EXPECT_NEAR(m.accuracy, 4.0 / 9.0, kTol);
  EXPECT_NEAR(m.precision_macro, 0.3, kTol);
  EXPECT_NEAR(m.recall_macro, 0.38888888888888884, kTol);
  EXPECT_NEAR(m.f1_macro, 0.3333333333333333, kTol);
  EXPECT_NEAR(m.precision_weighted, 0.35555555555555557, kTol);
  EXPECT_NEAR(m.recall_weighted, 0.4444444444444444, kTol);
  EXPECT_NEAR(m.f1_weighted, 0.3888888888888889, kTol);
  ASSERT_EQ(m.per_class_f1.size(), 3u);
  EXPECT_NEAR(m.per_class_f1[0], 0.5, kTol);
  EXPECT_NEAR(m.per_class_f1[1], 0.5, kTol);
  EXPECT_EQ(m.per_class_f1[2], 0.0);
  ASSERT_EQ(m.per_class_roc_auc.size(), 3u);
  EXPECT_NEAR(m.per_class_roc_auc[0], 13.0 / 18.0, kTol);
  EXPECT_NEAR(m.per_class_roc_auc[1], 0.75, kTol);
  EXPECT_NEAR(m.per_class_roc_auc[2], 11.5 / 14.0, kTol);
  EXPECT_NEAR(m.roc_auc_ovr_macro, 0.7645502645502645, kTol);
  EXPECT_NEAR(m.roc_auc_ovr_weighted, 0.7566137566137565, kTol);
  EXPECT_NEAR(m.log_loss, 0.898022232822953, kTol);
}

// Rows [1,0,0] (label 1), [.5,.5,.5] (label 0), [0,0,1] (label 2). Each row
// is clipped to [1e-15, 1-1e-15] and divided by its sum: the first gives label
// 1 the probability 1e-15/(1+1e-15), cost 15 ln 10 + ~1e-15 = 34.5387764; the
// second 1/3, cost ln 3 = 1.0986123; the third ~1, cost ~2e-15.
// scikit-learn 1.2.1: log_loss(y,P,eps=1e-15,labels=[0,1,2])
// 11.879129561192931; row by row 34.538776394910684 and 1.0986122886681098.
TEST(ComputeMulticlassMetrics, LogLossClipsAndRenormalizesRows) {
  MulticlassMetrics m =
      MustComputeMulticlass({1, 0, 0, 0.5f, 0.5f, 0.5f, 0, 0, 1}, {1, 0, 2}, /*num_classes=*/3);
  EXPECT_NEAR(m.log_loss, 11.879129561192931, 1e-9);
  EXPECT_NEAR(MustComputeMulticlass({1, 0, 0}, {1}, 3).log_loss, 34.538776394910684, 1e-9);
  EXPECT_NEAR(MustComputeMulticlass({0.5f, 0.5f, 0.5f}, {0}, 3).log_loss, 1.0986122886681098, kTol);
}

// Class 2 never occurs in the labels but is predicted once. Rows (label):
//   [.5 .25 .25] (0), [.25 .5 .25] (1), [.25 .25 .5] (1), [.5 .375 .125] (0).
// By hand: predictions 0,1,2,0; confusion [[2,0,0],[0,1,1],[0,0,0]].
//   Class 2: precision 0/1, recall 0/0 -> 0 (zero_division), F1 0.
//   P = (1,1,0), R = (1,1/2,0), F1 = (1,2/3,0), supports (2,2,0).
//   macro P 2/3, R 1/2, F1 5/9; weighted P 1, R 3/4, F1 5/6.
//   AUC: class 0: positives .5 .5 beat negatives .25 .25 -> 1. class 1:
//   positives .5 .25 vs negatives .25 .375: 2 + 1/2 = 2.5 of 4 = 0.625.
//   class 2 has no positive: NaN, left out: macro (1+0.625)/2 = 0.8125,
//   weighted (2*1 + 2*0.625)/4 = 0.8125.
// scikit-learn 1.2.1 (labels=[0,1,2], zero_division=0): macro 0.6666666666666666
// 0.5 0.5555555555555555, weighted 1.0 0.75 0.8333333333333333; per-class AUC
// roc_auc_score(y==c, P[:,c]) 1.0 and 0.625; roc_auc_score(multi_class='ovr',
// labels=[0,1,2]) raises "Only one class present in y_true".
TEST(ComputeMulticlassMetrics, ClassAbsentFromLabelsHasNanAucLeftOutOfAverages) {
  MulticlassMetrics m = MustComputeMulticlass(
      {0.5f, 0.25f, 0.25f, 0.25f, 0.5f, 0.25f, 0.25f, 0.25f, 0.5f, 0.5f, 0.375f, 0.125f},
      {0, 1, 1, 0}, 3);
  EXPECT_EQ(m.confusion, (std::vector<std::vector<uint64_t>>{{2, 0, 0}, {0, 1, 1}, {0, 0, 0}}));
  EXPECT_NEAR(m.precision_macro, 0.6666666666666666, kTol);
  EXPECT_NEAR(m.recall_macro, 0.5, kTol);
  EXPECT_NEAR(m.f1_macro, 0.5555555555555555, kTol);
  EXPECT_NEAR(m.precision_weighted, 1.0, kTol);
  EXPECT_NEAR(m.recall_weighted, 0.75, kTol);
  EXPECT_NEAR(m.f1_weighted, 0.8333333333333333, kTol);
  EXPECT_DOUBLE_EQ(m.per_class_roc_auc[0], 1.0);
  EXPECT_DOUBLE_EQ(m.per_class_roc_auc[1], 0.625);
  EXPECT_TRUE(std::isnan(m.per_class_roc_auc[2]));
  EXPECT_DOUBLE_EQ(m.roc_auc_ovr_macro, 0.8125);
  EXPECT_DOUBLE_EQ(m.roc_auc_ovr_weighted, 0.8125);
}

TEST(ComputeMulticlassMetrics, SingleClassInLabelsGivesNanAuc) {
  // Class 0 has no negative, classes 1 and 2 no positive.
  MulticlassMetrics m = MustComputeMulticlass({0.5f, 0.25f, 0.25f, 0.25f, 0.5f, 0.25f}, {0, 0}, 3);
  for (double auc : m.per_class_roc_auc) EXPECT_TRUE(std::isnan(auc));
  EXPECT_TRUE(std::isnan(m.roc_auc_ovr_macro));
  EXPECT_TRUE(std::isnan(m.roc_auc_ovr_weighted));
  EXPECT_DOUBLE_EQ(m.accuracy, 0.5);
}

TEST(ComputeMulticlassMetrics, RejectsBadInputs) {
  const std::vector<float> probs = {0.5f, 0.5f, 0.25f, 0.75f};
  // Sizes.
  absl::StatusOr<MulticlassMetrics> m =
      ComputeMulticlassMetrics(probs, std::vector<float>{0, 1, 1}, 2);
  ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("4 probabilities but 3 labels x 2 classes"));
  EXPECT_EQ(
      ComputeMulticlassMetrics(std::vector<float>{0.5f, 0.5f, 0.25f}, std::vector<float>{0}, 2)
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ComputeMulticlassMetrics({}, {}, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ComputeMulticlassMetrics(std::vector<float>{1, 1}, std::vector<float>{0, 0}, 1)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  // Labels that are not class ids.
  for (float bad : {-1.0f, 2.0f, 0.5f, std::nanf(""), INFINITY}) {
    m = ComputeMulticlassMetrics(probs, std::vector<float>{0, bad}, 2);
    ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(m.status().message(), HasSubstr("index 1")) << bad;
  }
  // Probabilities.
  for (float bad : {std::nanf(""), -0.25f, 1.5f, INFINITY}) {
    m = ComputeMulticlassMetrics(std::vector<float>{0.5f, 0.5f, 0.25f, bad},
                                 std::vector<float>{0, 1}, 2);
    ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(m.status().message(), HasSubstr("index 1")) << bad;
  }
}

TEST(FormatMulticlassMetrics, OneLineWithFourDecimals) {
  MulticlassMetrics m = MustComputeMulticlass(kProbs, kLabels, 3);
  EXPECT_EQ(FormatMulticlassMetrics(m),
            "acc=0.4444 f1_macro=0.3333 f1_weighted=0.3889 auc_ovr=0.7646 logloss=0.8980 n=9");
}

TEST(MulticlassMetricsToJson, WritesAllFieldsAndNanAsNull) {
  MulticlassMetrics m;
  m.n = 3;
  m.num_classes = 2;
  m.accuracy = 0.5;
  m.precision_macro = 0.25;
  m.recall_macro = 0.125;
  m.f1_macro = 1;
  m.precision_weighted = 2;
  m.recall_weighted = 3;
  m.f1_weighted = 4;
  m.roc_auc_ovr_macro = std::nan("");
  m.roc_auc_ovr_weighted = 0.75;
  m.log_loss = 1.5;
  m.confusion = {{1, 0}, {2, 0}};
  m.per_class_f1 = {0.5, 0};
  m.per_class_roc_auc = {0.75, std::nan("")};
  EXPECT_EQ(MulticlassMetricsToJson(m),
            "{\"n\":3,\"num_classes\":2,\"accuracy\":0.5,\"precision_macro\":0.25,"
            "\"recall_macro\":0.125,\"f1_macro\":1,\"precision_weighted\":2,"
            "\"recall_weighted\":3,\"f1_weighted\":4,\"roc_auc_ovr_macro\":null,"
            "\"roc_auc_ovr_weighted\":0.75,\"log_loss\":1.5,\"confusion\":[[1,0],[2,0]],"
            "\"per_class_f1\":[0.5,0],\"per_class_roc_auc\":[0.75,null]}");
}

RegressionMetrics MustComputeRegression(const std::vector<float>& predictions,
                                        const std::vector<float>& labels) {
  absl::StatusOr<RegressionMetrics> m = ComputeRegressionMetrics(predictions, labels);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : RegressionMetrics{};
}

// labels {3,-0.5,2,7}, predictions {2.5,0,2,8}. By hand:
//   errors 0.5, -0.5, 0, -1: MSE = (0.25+0.25+0+1)/4 = 0.375,
//   RMSE = sqrt(0.375) = 0.6123724, MAE = 2/4 = 0.5.
//   mean label 11.5/4 = 2.875; SS_tot = 0.125^2 + 3.375^2 + 0.875^2 + 4.125^2
//   = 29.1875; SS_res = 1.5; R^2 = 1 - 1.5/29.1875 = 0.9486081.
// scikit-learn 1.2.1: mean_squared_error(y,p,squared=False) 0.6123724356957945,
// mean_absolute_error 0.5, r2_score 0.9486081370449679, np.mean(y) 2.875.
TEST(ComputeRegressionMetrics, SmallExampleByHandAndScikitLearn) {
  RegressionMetrics m = MustComputeRegression({2.5f, 0.0f, 2.0f, 8.0f}, {3.0f, -0.5f, 2.0f, 7.0f});
  EXPECT_EQ(m.n, 4u);
  EXPECT_NEAR(m.rmse, 0.6123724356957945, kTol);
  EXPECT_NEAR(m.mae, 0.5, kTol);
  EXPECT_NEAR(m.r2, 0.9486081370449679, kTol);
  EXPECT_NEAR(m.mean_label, 2.875, kTol);
}

// scikit-learn 1.2.1 r2_score: [1,2,3] vs [3,2,1] -> -3.0 (1 - 8/2); constant
// labels [2,2,2]: predictions [2,2,2] -> 1.0, [1,2,3] -> 0.0; one example ->
// nan.
TEST(ComputeRegressionMetrics, R2EdgeCasesMatchScikitLearn) {
  EXPECT_DOUBLE_EQ(MustComputeRegression({3, 2, 1}, {1, 2, 3}).r2, -3.0);
  EXPECT_DOUBLE_EQ(MustComputeRegression({2, 2, 2}, {2, 2, 2}).r2, 1.0);
  EXPECT_DOUBLE_EQ(MustComputeRegression({1, 2, 3}, {2, 2, 2}).r2, 0.0);
  RegressionMetrics one = MustComputeRegression({2}, {1});
  EXPECT_TRUE(std::isnan(one.r2));
  EXPECT_DOUBLE_EQ(one.rmse, 1.0);
  EXPECT_DOUBLE_EQ(one.mae, 1.0);
}

TEST(ComputeRegressionMetrics, RejectsBadInputs) {
  absl::StatusOr<RegressionMetrics> m =
      ComputeRegressionMetrics(std::vector<float>{1, 2}, std::vector<float>{1});
  ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("2 predictions but 1 labels"));
  EXPECT_EQ(ComputeRegressionMetrics({}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
    m = ComputeRegressionMetrics(std::vector<float>{1, bad}, std::vector<float>{1, 2});
    ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(m.status().message(), HasSubstr("index 1")) << bad;
    m = ComputeRegressionMetrics(std::vector<float>{1, 2}, std::vector<float>{bad, 2});
    ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(m.status().message(), HasSubstr("index 0")) << bad;
  }
}

TEST(FormatRegressionMetrics, OneLineWithFourDecimals) {
  RegressionMetrics m = MustComputeRegression({2.5f, 0.0f, 2.0f, 8.0f}, {3.0f, -0.5f, 2.0f, 7.0f});
  EXPECT_EQ(FormatRegressionMetrics(m), "rmse=0.6124 mae=0.5000 r2=0.9486 mean_label=2.8750 n=4");
}

TEST(RegressionMetricsToJson, WritesAllFieldsAndNanAsNull) {
  RegressionMetrics m;
  m.n = 1;
  m.rmse = 1.5;
  m.mae = 0.25;
  m.r2 = std::nan("");
  m.mean_label = -2;
  EXPECT_EQ(RegressionMetricsToJson(m),
            "{\"n\":1,\"rmse\":1.5,\"mae\":0.25,\"r2\":null,\"mean_label\":-2}");
}

}  // namespace
}  // namespace ps

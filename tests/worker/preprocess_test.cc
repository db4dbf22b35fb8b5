// Statistics through the cluster give the numbers one machine computes.
#include "worker/preprocess.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "common/tables.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "worker/libsvm_reader.h"

namespace ps {
namespace {

// What a server's statistics table ends up holding after every worker's
// push (server/optimizer.cc's Accumulate, in float as there).
std::vector<TableKeys> AccumulateLikeTheServers(const std::vector<std::vector<TableKeys>>& pushes,
                                                const std::vector<TableKeys>& wanted) {
  std::vector<TableKeys> out = wanted;
  for (size_t t = 0; t < out.size(); ++t) {
    const int dim = t == 0 ? 6 : 1;
    out[t].values.assign(out[t].keys.size() * dim, 0.0f);
    for (size_t i = 0; dim == 6 && i < out[t].keys.size(); ++i) {
      out[t].values[i * 6 + 4] = std::numeric_limits<float>::infinity();
      out[t].values[i * 6 + 5] = -std::numeric_limits<float>::infinity();
    }
    for (const auto& push : pushes) {
      const TableKeys& p = push[t];
      for (size_t k = 0; k < p.keys.size(); ++k) {
        const size_t i = std::lower_bound(out[t].keys.begin(), out[t].keys.end(), p.keys[k]) -
                         out[t].keys.begin();
        float* v = out[t].values.data() + i * dim;
        const float* g = p.values.data() + k * dim;
        if (dim == 1) {
          v[0] += g[0];
          continue;
        }
        for (int d = 0; d < 4; ++d) v[d] += g[d];
        v[4] = std::min(v[4], g[4]);
        v[5] = std::max(v[5], g[5]);
      }
    }
  }
  return out;
}

TEST(Preprocess, TwoWorkersStatisticsMatchScikitLearnsScaler) {
  auto data = ReadLibsvm(testing::SourceDir() + "/data/spambase/train.libsvm");
  ASSERT_TRUE(data.ok()) << data.status();
  std::vector<uint64_t> even, odd;
  for (uint64_t r = 0; r < data->rows(); ++r) (r % 2 ? odd : even).push_back(r);
  const auto a = PartialStatistics(*data, even, 10, 11, 2);
  const auto b = PartialStatistics(*data, odd, 10, 11, 2);
  const DatasetStats stats =
      ReduceStatistics(AccumulateLikeTheServers({a, b}, StatisticsKeys({&*data}, 10, 11, 2)));
  EXPECT_EQ(stats.rows, 3680u);
  ASSERT_EQ(stats.class_counts.size(), 2u);
  EXPECT_EQ(stats.class_counts[0], 2230);  // data/spambase/README.txt
  EXPECT_EQ(stats.class_counts[1], 1450);
  // sklearn's StandardScaler (ddof=0) on the same rows.
  std::ifstream in(testing::SourceDir() + "/data/spambase/scaler_train_mean_std.tsv");
  std::string line;
  std::getline(in, line);  // header
  int checked = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    uint64_t index;
    std::string name;
    double mean, stddev;
    fields >> index >> name >> mean >> stddev;
    const FeatureStats& f = stats.features.at(index);
    EXPECT_NEAR(f.mean, mean, 1e-4 * std::max(1.0, std::abs(mean))) << name;
    EXPECT_NEAR(f.stddev, stddev, 1e-3 * std::max(1.0, stddev)) << name;
    ++checked;
  }
  EXPECT_EQ(checked, 57);
}

TEST(Preprocess, StandardizedValuesMatchTheShippedStandardizedFile) {
  auto raw = ReadLibsvm(testing::SourceDir() + "/data/spambase/train.libsvm");
  auto reference = ReadLibsvm(testing::SourceDir() + "/data/spambase/train.std.libsvm");
  ASSERT_TRUE(raw.ok() && reference.ok());
  std::vector<uint64_t> all(raw->rows());
  for (uint64_t r = 0; r < all.size(); ++r) all[r] = r;
  const DatasetStats stats = ReduceStatistics(AccumulateLikeTheServers(
      {PartialStatistics(*raw, all, 10, 11, 2)}, StatisticsKeys({&*raw}, 10, 11, 2)));
  config::DataSection options;
  options.set_scaling(config::STANDARDIZE);
  FillAndScale(options, stats, &*raw);
  ASSERT_EQ(raw->rows(), reference->rows());
  ASSERT_EQ(raw->values.size(), reference->values.size()) << "standardizing densifies the rows";
  double worst = 0;
  for (size_t j = 0; j < raw->values.size(); ++j) {
    ASSERT_EQ(raw->indices[j], reference->indices[j]);
    worst = std::max(worst, std::abs(static_cast<double>(raw->values[j]) - reference->values[j]) /
                                std::max(1.0, std::abs(static_cast<double>(reference->values[j]))));
  }
  EXPECT_LT(worst, 1e-3);
}

TEST(Preprocess, MissingValuesAreFilledWithTheMean) {
  Dataset d;
  d.labels = {0, 1, 0};
  d.row_offsets = {0, 1, 2, 3};
  d.indices = {1, 1, 1};
  d.values = {2.0f, std::nanf(""), 4.0f};
  std::vector<uint64_t> rows = {0, 1, 2};
  const DatasetStats stats = ReduceStatistics(AccumulateLikeTheServers(
      {PartialStatistics(d, rows, 10, 11, 2)}, StatisticsKeys({&d}, 10, 11, 2)));
  EXPECT_EQ(stats.features.at(1).count, 2u);
  EXPECT_DOUBLE_EQ(stats.features.at(1).mean, 3.0);
  config::DataSection options;
  options.set_fill_missing(config::FILL_MEAN);
  FillAndScale(options, stats, &d);
  EXPECT_EQ(d.values, (std::vector<float>{2.0f, 3.0f, 4.0f}));
}

TEST(Preprocess, MinMaxKeepsSparseDataSparseWhenMinIsZero) {
  Dataset d;
  d.labels = {0, 1};
  d.row_offsets = {0, 1, 2};
  d.indices = {1, 2};
  d.values = {4.0f, 2.0f};
  std::vector<uint64_t> rows = {0, 1};
  const DatasetStats stats = ReduceStatistics(AccumulateLikeTheServers(
      {PartialStatistics(d, rows, 10, 11, 2)}, StatisticsKeys({&d}, 10, 11, 2)));
  config::DataSection options;
  options.set_scaling(config::MINMAX);
  FillAndScale(options, stats, &d);
  EXPECT_EQ(d.values, (std::vector<float>{1.0f, 1.0f}));
  EXPECT_EQ(d.indices, (std::vector<uint64_t>{1, 2}));
}

TEST(Preprocess, ValidationSplitIsSeededAndDisjoint) {
  std::vector<uint64_t> t1, v1, t2, v2;
  SplitValidation(100, 0.2, 7, &t1, &v1);
  SplitValidation(100, 0.2, 7, &t2, &v2);
  EXPECT_EQ(v1.size(), 20u);
  EXPECT_EQ(t1.size(), 80u);
  EXPECT_EQ(v1, v2);
  std::vector<uint64_t> all = t1;
  all.insert(all.end(), v1.begin(), v1.end());
  std::sort(all.begin(), all.end());
  for (uint64_t i = 0; i < 100; ++i) EXPECT_EQ(all[i], i);
}

TEST(Preprocess, BalancedClassWeightsAndResampling) {
  Dataset d;
  d.labels = {0, 0, 0, 1};
  d.row_offsets = {0, 0, 0, 0, 0};
  DatasetStats stats;
  stats.class_counts = {3, 1};
  config::DataSection options;
  options.set_class_weight(config::BALANCED);
  const std::vector<float> w = ClassWeights(options, stats);
  EXPECT_FLOAT_EQ(w[0], 4.0f / 6);
  EXPECT_FLOAT_EQ(w[1], 2.0f);
  std::vector<uint64_t> rows = {0, 1, 2, 3};
  options.set_sampling(config::OVERSAMPLE);
  std::vector<uint64_t> over = Resample(options, d, rows, 2, 1, 0);
  EXPECT_EQ(over.size(), 6u);
  EXPECT_EQ(std::count(over.begin(), over.end(), 3u), 3);
  options.set_sampling(config::UNDERSAMPLE);
  std::vector<uint64_t> under = Resample(options, d, rows, 2, 1, 0);
  EXPECT_EQ(under.size(), 2u);
  EXPECT_EQ(std::count(under.begin(), under.end(), 3u), 1);
}

}  // namespace
}  // namespace ps

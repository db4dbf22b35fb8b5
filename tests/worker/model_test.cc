// Every model's gradient agrees with finite differences of its loss, and its
// predictions are well-formed.
#include "worker/model.h"

#include <cmath>

#include "common/partitioning.h"
#include "common/tables.h"
#include "gtest/gtest.h"
#include "worker/trainer.h"

namespace ps {
namespace {

// A small sparse dataset: 6 rows over features 1..5.
Dataset SmallData(int classes) {
  Dataset d;
  SplitMix64 rng(3);
  d.row_offsets.push_back(0);
  for (int r = 0; r < 6; ++r) {
    for (uint64_t f = 1; f <= 5; ++f) {
      if (rng.NextDouble() < 0.6) {
        d.indices.push_back(f);
        d.values.push_back(static_cast<float>(rng.NextDouble() * 2 - 1));
      }
    }
    d.row_offsets.push_back(d.indices.size());
    d.labels.push_back(classes == 0 ? static_cast<float>(rng.NextDouble() * 3) : static_cast<float>(r % classes));
  }
  d.max_index = 5;
  return d;
}

void Randomize(std::vector<TableKeys>* params, uint64_t seed) {
  SplitMix64 rng(seed);
  for (TableKeys& t : *params) {
    for (float& v : t.values) v = static_cast<float>((rng.NextDouble() * 2 - 1) * 0.5);
  }
}

struct ModelCase {
  const char* name;
  config::ModelType type;
  int classes;  // 0: regression labels
};

class GradientCheck : public ::testing::TestWithParam<ModelCase> {};

TEST_P(GradientCheck, MatchesFiniteDifferences) {
  const ModelCase c = GetParam();
  config::ModelSection section;
  section.set_type(c.type);
  section.set_num_classes(std::max(2, c.classes));
  section.set_num_features(5);
  section.set_fm_factors(3);
  section.add_hidden_units(4);
  section.set_activation(config::TANH);  // smooth, so finite differences are exact enough
  const Dataset data = SmallData(c.classes);
  const std::unique_ptr<Model> model = MakeModel(section);
  std::vector<uint64_t> rows = {0, 1, 2, 3, 4, 5};
  std::vector<TableKeys> params = model->KeysFor(data, rows);
  config::JobConfig job;
  *job.mutable_model() = section;
  const std::vector<TableSpec> specs = TablesForJob(job);
  for (TableKeys& t : params) t.values.resize(t.keys.size() * specs[t.table].dim);
  Randomize(&params, 11);
  std::vector<TableKeys> grads;
  model->Gradient(data, rows, {}, params, &grads, 0);
  int checked = 0;
  for (size_t t = 0; t < params.size(); ++t) {
    for (size_t i = 0; i < params[t].values.size(); ++i) {
      const float saved = params[t].values[i];
      const float h = 1e-2f;
      std::vector<TableKeys> unused;
      params[t].values[i] = saved + h;
      const double up = model->Gradient(data, rows, {}, params, &unused, 0);
      params[t].values[i] = saved - h;
      const double down = model->Gradient(data, rows, {}, params, &unused, 0);
      params[t].values[i] = saved;
      const double numeric = (up - down) / (2 * h);
      EXPECT_NEAR(grads[t].values[i], numeric, 2e-3 + 2e-2 * std::abs(numeric))
          << c.name << " table " << params[t].table << " value " << i;
      ++checked;
    }
  }
  EXPECT_GT(checked, 5);
  // Predictions: probabilities sum to 1 per row for multiclass, lie in [0,1] for binary.
  const std::vector<float> p = model->Predict(data, rows, params);
  ASSERT_EQ(p.size(), rows.size() * model->num_outputs());
  for (size_t r = 0; r < rows.size(); ++r) {
    if (model->num_outputs() > 1) {
      double sum = 0;
      for (int k = 0; k < model->num_outputs(); ++k) sum += p[r * model->num_outputs() + k];
      EXPECT_NEAR(sum, 1.0, 1e-5);
    } else if (c.classes == 2) {
      EXPECT_GE(p[r], 0.0f);
      EXPECT_LE(p[r], 1.0f);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, GradientCheck,
                         ::testing::Values(ModelCase{"logistic", config::LOGISTIC_REGRESSION, 2},
                                           ModelCase{"softmax", config::SOFTMAX_REGRESSION, 3},
                                           ModelCase{"linear", config::LINEAR_REGRESSION, 0},
                                           ModelCase{"fm", config::FACTORIZATION_MACHINE, 2},
                                           ModelCase{"mlp", config::MLP, 3}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Schedule, StepCosineAndWarmup) {
  config::OptimizerSection o;
  o.set_learning_rate(0.1f);
  EXPECT_FLOAT_EQ(LearningRateScale(o, 5, 0.5), 1.0f);
  o.set_schedule(config::STEP);
  o.set_step_epochs(10);
  o.set_step_gamma(0.5f);
  EXPECT_FLOAT_EQ(LearningRateScale(o, 9, 0.5), 1.0f);
  EXPECT_FLOAT_EQ(LearningRateScale(o, 10, 0.5), 0.5f);
  EXPECT_FLOAT_EQ(LearningRateScale(o, 25, 0.5), 0.25f);
  o.set_schedule(config::COSINE);
  o.set_min_learning_rate(0.01f);
  EXPECT_FLOAT_EQ(LearningRateScale(o, 0, 0.0), 1.0f);
  EXPECT_NEAR(LearningRateScale(o, 0, 0.5), 0.55f, 1e-6);
  EXPECT_NEAR(LearningRateScale(o, 0, 1.0), 0.1f, 1e-6);
  o.set_schedule(config::CONSTANT_LR);
  o.set_warmup_fraction(0.1f);
  EXPECT_NEAR(LearningRateScale(o, 0, 0.05), 0.5f, 1e-6);
  EXPECT_FLOAT_EQ(LearningRateScale(o, 0, 0.2), 1.0f);
}

TEST(Clipping, ByValueThenByGlobalNorm) {
  config::OptimizerSection o;
  std::vector<TableKeys> g(2);
  g[0].values = {30.0f, -40.0f};  // sums over 10 examples: mean (3, -4)
  g[1].values = {0.0f};
  o.set_clip_value(3.5f);  // mean clipped to (3, -3.5)
  ClipGradients(o, 10, &g);
  EXPECT_FLOAT_EQ(g[0].values[0], 30.0f);
  EXPECT_FLOAT_EQ(g[0].values[1], -35.0f);
  o.set_clip_value(0);
  o.set_clip_norm(1.0f);  // mean norm sqrt(9 + 12.25) = 4.61 -> scaled to 1
  ClipGradients(o, 10, &g);
  const double mean_norm = std::hypot(g[0].values[0] / 10, g[0].values[1] / 10);
  EXPECT_NEAR(mean_norm, 1.0, 1e-6);
}

}  // namespace
}  // namespace ps

#include "server/optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace {

TableSpec Table(config::OptimizerType type, float lr, float l2 = 0) {
  TableSpec t;
  t.dim = 2;
  t.optimizer.set_type(type);
  t.optimizer.set_learning_rate(lr);
  t.l2 = l2;
  return t;
}

// One step from w = {1, -1} with gradient {0.5, -2}.
struct Step {
  std::vector<float> w{1.0f, -1.0f};
  std::vector<float> slots;
  uint32_t step = 0;
  void Run(const Optimizer& opt, std::vector<float> g = {0.5f, -2.0f}) {
    if (slots.empty()) slots.assign(opt.num_slots() * 2, opt.slot_init());
    opt.Update(2, g.data(), 1.0f, 1.0f, w.data(), slots.data(), &step, 2);
  }
};

TEST(Optimizer, SgdWithL2) {
  auto opt = MakeOptimizer(Table(config::SGD, 0.1f, /*l2=*/0.5f));
  Step s;
  s.Run(*opt);
  // w - lr * (g + l2 w)
  EXPECT_FLOAT_EQ(s.w[0], 1.0f - 0.1f * (0.5f + 0.5f * 1.0f));
  EXPECT_FLOAT_EQ(s.w[1], -1.0f - 0.1f * (-2.0f + 0.5f * -1.0f));
  EXPECT_EQ(s.step, 1u);
}

TEST(Optimizer, MomentumAccumulatesVelocity) {
  TableSpec t = Table(config::MOMENTUM, 0.1f);
  t.optimizer.set_momentum(0.9f);
  auto opt = MakeOptimizer(t);
  Step s;
  s.Run(*opt);
  s.Run(*opt);
  // v1 = g, v2 = 0.9 g + g; w = w0 - lr (v1 + v2)
  EXPECT_FLOAT_EQ(s.w[0], 1.0f - 0.1f * (0.5f + 1.9f * 0.5f));
}

TEST(Optimizer, AdaGradDividesByAccumulatedSquares) {
  TableSpec t = Table(config::ADAGRAD, 0.1f);
  t.optimizer.set_initial_accumulator(0.0f);
  t.optimizer.set_epsilon(0.0f);
  auto opt = MakeOptimizer(t);
  Step s;
  s.Run(*opt);
  EXPECT_FLOAT_EQ(s.w[0], 1.0f - 0.1f);   // g / |g|
  EXPECT_FLOAT_EQ(s.w[1], -1.0f + 0.1f);
}

TEST(Optimizer, AdamFamilyFirstStepIsLearningRateTimesSign) {
  for (auto type : {config::ADAM, config::ADAMAX}) {
    TableSpec t = Table(type, 0.01f);
    t.optimizer.set_epsilon(0.0f);
    auto opt = MakeOptimizer(t);
    Step s;
    s.Run(*opt);
    EXPECT_NEAR(s.w[0], 1.0f - 0.01f, 1e-6) << config::OptimizerType_Name(type);
    EXPECT_NEAR(s.w[1], -1.0f + 0.01f, 1e-6) << config::OptimizerType_Name(type);
  }
}

TEST(Optimizer, AdamWDecaysWeightsIndependentlyOfTheGradient) {
  TableSpec t = Table(config::ADAMW, 0.01f);
  t.optimizer.set_weight_decay(0.5f);
  t.optimizer.set_epsilon(0.0f);
  auto opt = MakeOptimizer(t);
  Step s;
  s.Run(*opt);
  EXPECT_NEAR(s.w[0], 1.0f * (1 - 0.01f * 0.5f) - 0.01f, 1e-6);
}

TEST(Optimizer, InitializerIsDeterministicPerKey) {
  TableSpec t = Table(config::SGD, 0.1f);
  t.init = config::NORMAL;
  t.init_scale = 1.0f;
  float a[2], b[2], c[2];
  InitializeRow(t, 42, 7, a);
  InitializeRow(t, 42, 7, b);
  InitializeRow(t, 42, 8, c);
  EXPECT_EQ(a[0], b[0]);
  EXPECT_EQ(a[1], b[1]);
  EXPECT_NE(a[0], c[0]);
  EXPECT_TRUE(std::isfinite(a[0]));
}

}  // namespace
}  // namespace ps

namespace ps {
namespace {

TEST(Optimizer, L1SoftThresholdsAfterTheStep) {
  TableSpec t = Table(config::SGD, 0.1f);
  t.l1 = 2.0f;  // threshold lr * l1 = 0.2
  auto opt = MakeOptimizer(t);
  Step s;
  s.w = {0.1f, -1.0f};
  s.Run(*opt, {0.0f, 0.0f});
  EXPECT_FLOAT_EQ(s.w[0], 0.0f);    // |0.1| < 0.2: zeroed
  EXPECT_FLOAT_EQ(s.w[1], -0.8f);   // shrunk toward 0 by 0.2
}

TEST(Optimizer, FtrlClosedForm) {
  // One step from z = n = 0, w = 0, with alpha 0.5, beta 1, l1 0.1, l2 0:
  // n = g^2, sigma = |g| / alpha, z = g; w = -(z - sign(z) l1) / ((beta + |g|) / alpha).
  TableSpec t = Table(config::FTRL, 0.5f);
  t.optimizer.set_ftrl_beta(1.0f);
  t.l1 = 0.1f;
  auto opt = MakeOptimizer(t);
  Step s;
  s.w = {0.0f, 0.0f};
  s.Run(*opt, {0.5f, -0.05f});
  EXPECT_NEAR(s.w[0], -(0.5f - 0.1f) / ((1.0f + 0.5f) / 0.5f), 1e-6);
  EXPECT_FLOAT_EQ(s.w[1], 0.0f);  // |z| = 0.05 <= l1: exactly zero (sparsity)
}

TEST(Optimizer, LearningRateScaleMultipliesTheStep) {
  auto opt = MakeOptimizer(Table(config::SGD, 0.1f));
  std::vector<float> w = {1.0f, 1.0f}, g = {1.0f, 1.0f};
  uint32_t step = 0;
  opt->Update(2, g.data(), 1.0f, 0.5f, w.data(), nullptr, &step, 2);
  EXPECT_FLOAT_EQ(w[0], 1.0f - 0.05f);
}

// A BSP clock steps a long row a range at a time (Partition::
// ApplyClockLocked: slots `slot_stride` apart, every range at the same
// step): for every optimizer, with L1 and L2, the bits are those of one
// call over the whole row, over several steps.
TEST(Optimizer, ARowUpdatedInRangesEqualsOneUpdateBitForBit) {
  constexpr int kDim = 2500;  // ranges of 1,024: 1,024 + 1,024 + 452
  constexpr int kRange = 1024;
  struct Case {
    config::OptimizerType type;
    bool nesterov;
  };
  for (const Case c :
       {Case{config::SGD, false}, Case{config::MOMENTUM, false}, Case{config::MOMENTUM, true},
        Case{config::ADAGRAD, false}, Case{config::ADAM, false}, Case{config::ADAMW, false},
        Case{config::ADAMAX, false}, Case{config::FTRL, false}}) {
    TableSpec t = Table(c.type, 0.05f, /*l2=*/0.01f);
    t.dim = kDim;
    t.l1 = 0.001f;
    t.optimizer.set_nesterov(c.nesterov);
    t.optimizer.set_weight_decay(0.1f);
    t.optimizer.set_ftrl_beta(1.0f);
    auto opt = MakeOptimizer(t);
    const int slots = opt->num_slots();
    std::vector<float> whole(kDim * (1 + slots), opt->slot_init());
    for (int i = 0; i < kDim; ++i) whole[i] = std::sin(0.37f * static_cast<float>(i));
    std::vector<float> ranged = whole;
    uint32_t whole_step = 0, ranged_step = 0;
    std::vector<float> g(kDim);
    for (int s = 0; s < 5; ++s) {
      // -0.0 and exact zeros among the values, a different gradient each step.
      for (int i = 0; i < kDim; ++i) {
        g[i] = i % 97 == 0 ? -0.0f : std::cos(0.11f * static_cast<float>(i * (s + 1)));
      }
      opt->Update(kDim, g.data(), 0.5f, 0.8f, whole.data(), whole.data() + kDim, &whole_step, kDim);
      const uint32_t before = ranged_step;
      for (int from = 0; from < kDim; from += kRange) {
        const int n = std::min(kRange, kDim - from);
        ranged_step = before;
        opt->Update(n, g.data() + from, 0.5f, 0.8f, ranged.data() + from,
                    ranged.data() + kDim + from, &ranged_step, kDim);
      }
    }
    EXPECT_EQ(ranged_step, whole_step) << config::OptimizerType_Name(c.type);
    EXPECT_EQ(whole_step, 5u) << config::OptimizerType_Name(c.type);
    // Values and every slot, compared as bits.
    EXPECT_EQ(std::memcmp(whole.data(), ranged.data(), whole.size() * sizeof(float)), 0)
        << config::OptimizerType_Name(c.type) << (c.nesterov ? " (Nesterov)" : "");
  }
}

}  // namespace
}  // namespace ps

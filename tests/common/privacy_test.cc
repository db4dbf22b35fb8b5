#include "common/privacy.h"

#include <cmath>

#include "gtest/gtest.h"

namespace ps {
namespace {

// Without subsampling the RDP of the Gaussian mechanism is alpha / (2 sigma^2).
TEST(Privacy, FullBatchIsTheGaussianMechanism) {
  for (double sigma : {0.5, 1.0, 4.0}) {
    for (int alpha : {2, 8, 32}) {
      EXPECT_NEAR(SampledGaussianRdp(0.999999999, sigma, alpha), alpha / (2 * sigma * sigma),
                  1e-6 * alpha / (sigma * sigma));
    }
  }
}

// At order 2 the sum has three terms: log((1-q)^2 + 2q(1-q) + q^2 e^{1/sigma^2}).
TEST(Privacy, OrderTwoMatchesItsClosedForm) {
  const double q = 0.01, sigma = 1.3;
  EXPECT_NEAR(SampledGaussianRdp(q, sigma, 2),
              std::log((1 - q) * (1 - q) + 2 * q * (1 - q) + q * q * std::exp(1 / (sigma * sigma))),
              1e-12);
}

// The figure the DP-SGD literature quotes for MNIST (Abadi et al. 2016; TF
// Privacy's tutorial): 60,000 examples, lots of 256, sigma 1.1, 60 epochs,
// delta 1e-5 gives epsilon about 3 with integer RDP orders.
TEST(Privacy, MnistReferencePoint) {
  const double q = 256.0 / 60000;
  const int64_t steps = 60 * 60000 / 256;
  const double eps = DpSgdEpsilon(q, 1.1, steps, 1e-5);
  EXPECT_GT(eps, 2.5);
  EXPECT_LT(eps, 3.5);
}

TEST(Privacy, MoreNoiseFewerStepsOrSmallerLotsSpendLess) {
  const double base = DpSgdEpsilon(0.01, 1.0, 1000, 1e-5);
  EXPECT_LT(DpSgdEpsilon(0.01, 2.0, 1000, 1e-5), base);
  EXPECT_LT(DpSgdEpsilon(0.01, 1.0, 100, 1e-5), base);
  EXPECT_LT(DpSgdEpsilon(0.001, 1.0, 1000, 1e-5), base);
  EXPECT_LT(DpSgdEpsilon(0.01, 1.0, 1000, 1e-3), base);
  EXPECT_TRUE(std::isinf(DpSgdEpsilon(0.01, 0.0, 1000, 1e-5)));
  EXPECT_EQ(DpSgdEpsilon(0.01, 1.0, 0, 1e-5), 0.0);
}

}  // namespace
}  // namespace ps

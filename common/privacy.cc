#include "common/privacy.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ps {
namespace {

double LogAdd(double a, double b) {
  if (a == -std::numeric_limits<double>::infinity()) return b;
  if (b == -std::numeric_limits<double>::infinity()) return a;
  const double hi = std::max(a, b), lo = std::min(a, b);
  return hi + std::log1p(std::exp(lo - hi));
}

}  // namespace

double SampledGaussianRdp(double q, double sigma, int alpha) {
  if (q <= 0) return 0;
  if (sigma <= 0) return std::numeric_limits<double>::infinity();
  if (q >= 1) return alpha / (2 * sigma * sigma);  // the Gaussian mechanism itself
  // A_alpha = sum_k C(alpha, k) (1-q)^(alpha-k) q^k exp((k^2 - k) / (2 sigma^2)), in logs.
  double log_a = -std::numeric_limits<double>::infinity();
  for (int k = 0; k <= alpha; ++k) {
    const double log_binom =
        std::lgamma(alpha + 1.0) - std::lgamma(k + 1.0) - std::lgamma(alpha - k + 1.0);
    const double term = log_binom + (alpha - k) * std::log1p(-q) + k * std::log(q) +
                        (static_cast<double>(k) * k - k) / (2 * sigma * sigma);
    log_a = LogAdd(log_a, term);
  }
  return log_a / (alpha - 1);
}

double DpSgdEpsilon(double q, double sigma, int64_t steps, double delta) {
  if (steps <= 0 || q <= 0) return 0;
  if (sigma <= 0) return std::numeric_limits<double>::infinity();
  double best = std::numeric_limits<double>::infinity();
  for (int alpha = 2; alpha <= 256; ++alpha) {
    const double rdp = steps * SampledGaussianRdp(q, sigma, alpha);
    best = std::min(best, rdp + std::log(1 / delta) / (alpha - 1));
  }
  return best;
}

}  // namespace ps

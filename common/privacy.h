// The privacy accountant of DP-SGD (config privacy.dp_sgd): Rényi
// differential privacy of the sampled Gaussian mechanism (Mironov, Talwar,
// Zhang 2019, integer orders), composed over the steps and converted to
// (epsilon, delta). Pure functions; thread-safe.
#ifndef PS_COMMON_PRIVACY_H_
#define PS_COMMON_PRIVACY_H_

#include <cstdint>

namespace ps {

// RDP of one step at integer order `alpha` >= 2: each example is in the
// step's lot with probability `q`, the lot's clipped gradient sum gets
// Gaussian noise of `sigma` times the clip norm.
double SampledGaussianRdp(double q, double sigma, int alpha);

// Epsilon at `delta` after `steps` such steps (the best over orders 2..256).
// Infinity when sigma is 0 (no noise).
double DpSgdEpsilon(double q, double sigma, int64_t steps, double delta);

}  // namespace ps

#endif  // PS_COMMON_PRIVACY_H_

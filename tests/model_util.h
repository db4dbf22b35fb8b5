// Comparing saved models in tests.
#ifndef PS_TESTS_MODEL_UTIL_H_
#define PS_TESTS_MODEL_UTIL_H_

#include <string>

namespace ps::testing {

// Largest difference between the weights of the models saved in folders `a`
// and `b` (infinity if either cannot be read or their keys differ).
double MaxModelDifference(const std::string& a, const std::string& b);

}  // namespace ps::testing

#endif  // PS_TESTS_MODEL_UTIL_H_

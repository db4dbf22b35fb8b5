// Command-line helpers for the role binaries.
#ifndef PS_COMMON_FLAGS_UTIL_H_
#define PS_COMMON_FLAGS_UTIL_H_

#include <string>
#include <vector>

namespace ps {

// Removes every "--NAME VALUE" and "--NAME=VALUE" from argv (so a flag can be
// repeated, which absl flags cannot) and returns the values in order.
// Updates *argc. A trailing "--NAME" with no value is returned as "".
std::vector<std::string> ExtractRepeatedFlag(const std::string& name, int* argc, char** argv);

}  // namespace ps

#endif  // PS_COMMON_FLAGS_UTIL_H_

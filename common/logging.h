// Logging setup: one named spdlog logger per role, writing to stderr. Call
// InitLogging once from main before any other thread starts.
#ifndef PS_COMMON_LOGGING_H_
#define PS_COMMON_LOGGING_H_

#include <string>

#include "spdlog/spdlog.h"

namespace ps {

// Makes a logger named `role` (e.g. "server-1") the default one. `level` is
// an spdlog level name ("debug", "info", "warn", ...).
void InitLogging(const std::string& role, const std::string& level = "info");

}  // namespace ps

#endif  // PS_COMMON_LOGGING_H_

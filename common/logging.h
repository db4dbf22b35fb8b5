// Logging setup: one named spdlog logger per role, writing to stderr, one
// line per event. --log_format=json writes each line as a JSON object
// {"time", "level", "role", "id", "msg"} for log shippers. Call InitLogging
// once from main before any other thread starts.
#ifndef PS_COMMON_LOGGING_H_
#define PS_COMMON_LOGGING_H_

#include <string>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "spdlog/spdlog.h"

// --log_format (text or json), for launchers that pass it on.
ABSL_DECLARE_FLAG(std::string, log_format);

namespace ps {

// Makes a logger named `role` (e.g. "server") the default one. `level` is
// an spdlog level name ("debug", "info", "warn", ...). An unknown
// --log_format is an error naming the flag.
absl::Status InitLogging(const std::string& role, const std::string& level = "info");

// Who this process is once it knows (e.g. "rank 1, node 3"): the "id" of
// JSON lines. Thread-safe.
void SetLogId(const std::string& id);

}  // namespace ps

#endif  // PS_COMMON_LOGGING_H_

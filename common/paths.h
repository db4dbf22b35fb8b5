// Where a job may write (issue 9, "Paths"): the directories a request may
// name are derived from the job config alone, under the job's output root.
// Pure functions; thread-safe.
#ifndef PS_COMMON_PATHS_H_
#define PS_COMMON_PATHS_H_

#include <string>

#include "absl/status/statusor.h"
#include "proto/job_config.pb.h"

namespace ps {

// `requested` if it is one of the directories the job writes its results
// to: <job.output_dir>/model, /best_model or /last_model, or
// <checkpoint root>/epoch-N. Anything else is PERMISSION_DENIED naming it:
// another path, a relative one, a `..` or `.` component, or a symlink on the
// way below the root (which could point out of it).
absl::StatusOr<std::string> WritableJobDir(const config::JobConfig& job,
                                           const std::string& requested);

// An output root a job may use: not empty, not "/", no `..` component
// (an error names `field`).
absl::Status CheckOutputRoot(const std::string& dir, const std::string& field);

}  // namespace ps

#endif  // PS_COMMON_PATHS_H_

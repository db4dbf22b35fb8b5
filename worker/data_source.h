// Loads a job's training and test sets in the configured format (LIBSVM,
// CSV, IDX), checking labels against the task: 0/1 for binary models,
// class ids below model.num_classes for multiclass ones, any number for
// regression. Errors name the file (and line where there is one).
// Pure; thread-safe.
#ifndef PS_WORKER_DATA_SOURCE_H_
#define PS_WORKER_DATA_SOURCE_H_

#include "absl/status/statusor.h"
#include "proto/job_config.pb.h"
#include "worker/libsvm_reader.h"

namespace ps {

absl::StatusOr<Dataset> LoadTrainingSet(const config::JobConfig& job);
// An empty Dataset when the job has no test set.
absl::StatusOr<Dataset> LoadTestSet(const config::JobConfig& job);

// Loads any file of the job's format (for ps_predict); labels_path for IDX.
absl::StatusOr<Dataset> LoadDataFile(const config::JobConfig& job, const std::string& path,
                                     const std::string& labels_path);

// Removes missing values (NaN: CSV cells documented as missing) from the
// rows: with data.fill_missing fill_zero and no scaling they are zeros.
void DropMissing(Dataset* data);

}  // namespace ps

#endif  // PS_WORKER_DATA_SOURCE_H_

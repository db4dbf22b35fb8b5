#include "worker/data_source.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/tables.h"

namespace ps {
namespace {

absl::Status CheckLabels(const config::JobConfig& job, const std::string& path, const Dataset& data) {
  const Task task = TaskOf(job.model());
  for (size_t r = 0; r < data.rows(); ++r) {
    const float y = data.labels[r];
    if (!std::isfinite(y)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": example ", r + 1, ": label is not a number"));
    }
    if (task == Task::kMulticlass &&
        (y != std::floor(y) || y < 0 || y >= job.model().num_classes())) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": example ", r + 1, ": label ", y, " is outside the ", job.model().num_classes(),
          " classes 0..", job.model().num_classes() - 1, " (model.num_classes)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Dataset> LoadDataFile(const config::JobConfig& job, const std::string& path,
                                     const std::string& labels_path) {
  const Task task = TaskOf(job.model());
  absl::StatusOr<Dataset> data;
  switch (job.data().format()) {
    default: {
      LibsvmOptions options;
      options.binary_labels = task == Task::kBinary;
      if (job.model().hash_bits() == 0) options.max_feature_index = job.model().num_features();
      data = ReadLibsvm(path, options);
      break;
    }
  }
  (void)labels_path;
  if (!data.ok()) return data.status();
  if (absl::Status s = CheckLabels(job, path, *data); !s.ok()) return s;
  return data;
}

absl::StatusOr<Dataset> LoadTrainingSet(const config::JobConfig& job) {
  return LoadDataFile(job, job.data().train_path(), job.data().train_labels_path());
}

absl::StatusOr<Dataset> LoadTestSet(const config::JobConfig& job) {
  if (job.data().test_path().empty()) return Dataset();
  return LoadDataFile(job, job.data().test_path(), job.data().test_labels_path());
}

}  // namespace ps

#include "worker/data_source.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/tables.h"
#include "worker/csv_reader.h"
#include "worker/idx_reader.h"
#include "worker/preprocess.h"

namespace ps {
namespace {

absl::Status CheckLabels(const config::JobConfig& job, const std::string& path, const Dataset& data) {
  const Task task = TaskOf(job.model());
  for (size_t r = 0; r < data.rows(); ++r) {
    const float y = data.labels[r];
    if (!std::isfinite(y)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": example ", r + 1, ": label is not a number"));
    }
    if (task == Task::kBinary && y != 0 && y != 1) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": example ", r + 1, ": label ", y,
                                                     " is not 0 or 1 (a binary model)"));
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
    case config::CSV: {
      if (job.data().label_column().empty()) {
        return absl::InvalidArgumentError("data.label_column: required for CSV data");
      }
      CsvOptions options;
      options.label_column = job.data().label_column();
      options.binary_labels = task == Task::kBinary;
      if (task == Task::kMulticlass) options.num_classes = job.model().num_classes();
      data = ReadCsv(path, options);
      break;
    }
    case config::IDX: {
      if (labels_path.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "data.train_labels_path / data.test_labels_path: IDX images '", path, "' need a labels file"));
      }
      data = ReadIdx(path, labels_path);
      break;
    }
    default: {
      LibsvmOptions options;
      options.binary_labels = task == Task::kBinary;
      if (job.model().hash_bits() == 0) options.max_feature_index = job.model().num_features();
      data = ReadLibsvm(path, options);
      break;
    }
  }
  if (!data.ok()) return data.status();
  if (absl::Status s = CheckLabels(job, path, *data); !s.ok()) return s;
  if (!NeedsStatistics(job)) DropMissing(&*data);  // data.fill_missing: fill_zero, no scaling
  return data;
}

void DropMissing(Dataset* data) {
  // A sparse row's absent entry is a 0: a missing cell (NaN) just goes.
  size_t out = 0;
  std::vector<uint64_t> offsets = {0};
  for (size_t r = 0; r < data->rows(); ++r) {
    for (uint64_t j = data->row_offsets[r]; j < data->row_offsets[r + 1]; ++j) {
      if (std::isnan(data->values[j])) continue;
      data->indices[out] = data->indices[j];
      data->values[out] = data->values[j];
      ++out;
    }
    offsets.push_back(out);
  }
  data->indices.resize(out);
  data->values.resize(out);
  data->row_offsets = std::move(offsets);
}

absl::StatusOr<Dataset> LoadTrainingSet(const config::JobConfig& job) {
  return LoadDataFile(job, job.data().train_path(), job.data().train_labels_path());
}

absl::StatusOr<Dataset> LoadTestSet(const config::JobConfig& job) {
  if (job.data().test_path().empty()) return Dataset();
  return LoadDataFile(job, job.data().test_path(), job.data().test_labels_path());
}

}  // namespace ps

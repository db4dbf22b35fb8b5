// Metrics of one evaluation set for the job's task, computed over the whole
// set (the scheduler merges every worker's scores first), in the forms the
// scheduler needs: a log line, a JSON object, named values for charts and
// early stopping, and the ROC curve for binary tasks. Pure; thread-safe.
#ifndef PS_COMMON_EVALUATION_H_
#define PS_COMMON_EVALUATION_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/tables.h"

namespace ps {

struct Evaluation {
  std::string line;                            // one line for the log
  std::string json;                            // a JSON object
  std::map<std::string, double> values;        // "accuracy", "auc", "f1", "loss", "rmse", ...
  std::vector<std::pair<double, double>> roc;  // (FPR, TPR), binary only
  std::vector<std::vector<uint64_t>> confusion;  // [true][predicted], classification only
};

// scores: num_outputs per example (1 for binary and regression).
absl::StatusOr<Evaluation> Evaluate(Task task, int num_classes, absl::Span<const float> scores,
                                    absl::Span<const float> labels);

// The value of metric `name` (see TrainSection.early_stopping_metric) and
// whether higher is better; an error names the metrics the task has.
absl::StatusOr<std::pair<double, bool>> MetricForStopping(const Evaluation& evaluation,
                                                          const std::string& name);

}  // namespace ps

#endif  // PS_COMMON_EVALUATION_H_

#include "common/evaluation.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/metrics.h"

namespace ps {

absl::StatusOr<Evaluation> Evaluate(Task task, int num_classes, absl::Span<const float> scores,
                                    absl::Span<const float> labels) {
  Evaluation e;
  switch (task) {
    case Task::kBinary: {
      auto m = ComputeBinaryMetrics(scores, labels);
      if (!m.ok()) return m.status();
      e.line = FormatBinaryMetrics(*m);
      e.json = BinaryMetricsToJson(*m);
      e.values = std::map<std::string, double>{
          {"accuracy", m->accuracy}, {"auc", m->roc_auc},       {"f1", m->f1},
          {"precision", m->precision}, {"recall", m->recall}, {"loss", m->log_loss}};
      if (auto roc = RocCurve(scores, labels); roc.ok()) e.roc = std::move(*roc);  // none with one class
      e.confusion = {{m->tn, m->fp}, {m->fn, m->tp}};
      break;
    }
    case Task::kMulticlass: {
      auto m = ComputeMulticlassMetrics(scores, labels, num_classes);
      if (!m.ok()) return m.status();
      e.line = FormatMulticlassMetrics(*m);
      e.json = MulticlassMetricsToJson(*m);
      e.confusion = m->confusion;
      e.values = std::map<std::string, double>{{"accuracy", m->accuracy},
                                              {"auc", m->roc_auc_ovr_macro},
                                              {"f1", m->f1_macro},
                                              {"loss", m->log_loss}};
      break;
    }
    case Task::kRegression: {
      auto m = ComputeRegressionMetrics(scores, labels);
      if (!m.ok()) return m.status();
      e.line = FormatRegressionMetrics(*m);
      e.json = RegressionMetricsToJson(*m);
      e.values = std::map<std::string, double>{
          {"rmse", m->rmse}, {"mae", m->mae}, {"r2", m->r2}, {"loss", m->rmse * m->rmse}};
      break;
    }
  }
  return e;
}

absl::StatusOr<std::pair<double, bool>> MetricForStopping(const Evaluation& evaluation,
                                                          const std::string& name) {
  auto it = evaluation.values.find(name);
  if (it == evaluation.values.end()) {
    std::vector<std::string> names;
    for (const auto& [n, v] : evaluation.values) names.push_back(n);
    return absl::InvalidArgumentError(absl::StrCat("train.early_stopping_metric: '", name,
                                                   "' is not a metric of this task (",
                                                   absl::StrJoin(names, ", "), ")"));
  }
  const bool lower_is_better = name == "loss" || name == "rmse" || name == "mae";
  return std::make_pair(it->second, !lower_is_better);
}

}  // namespace ps

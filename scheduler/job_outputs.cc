#include "scheduler/job_outputs.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/config.h"
#include "common/privacy.h"
#include "common/report.h"
#include "common/tables.h"

namespace ps {

std::string ModeName(config::Mode mode) {
  std::string name = config::Mode_Name(mode);
  std::transform(name.begin(), name.end(), name.begin(), ::tolower);
  return name;
}

const EpochResult* FinalResult(const JobRecord& rec) {
  const config::JobConfig& job = *rec.job;
  const std::vector<EpochResult>& history = *rec.history;
  if (history.empty()) return nullptr;
  if (job.train().early_stopping_patience() > 0 && rec.saved_best_epoch >= 0) {
    for (const EpochResult& r : history) {
      if (r.epoch == rec.saved_best_epoch + 1) return &r;
    }
  }
  return &history.back();
}

std::string MetricsJson(const JobRecord& rec, double wall_seconds, uint64_t keys,
                        const std::string& server_stats) {
  const config::JobConfig& job = *rec.job;
  const std::vector<EpochResult>& history = *rec.history;
  const uint64_t samples =
      rec.train_examples * static_cast<uint64_t>(history.empty() ? 0 : history.back().epoch);
  std::string out = "{\n";
  absl::StrAppend(&out, "  \"job\": \"", job.job().name(), "\",\n");
  absl::StrAppend(&out, "  \"mode\": \"", ModeName(job.job().mode()), "\",\n");
  absl::StrAppend(&out, "  \"servers\": ", job.cluster().num_servers(), ",\n");
  absl::StrAppend(&out, "  \"workers\": ", job.cluster().num_workers(), ",\n");
  absl::StrAppend(&out, "  \"epochs\": ", history.empty() ? 0 : history.back().epoch, ",\n");
  absl::StrAppend(&out, "  \"train_samples\": ", samples, ",\n");
  // What each worker trained on, by rank, over the epochs in the history.
  std::vector<uint64_t> worker_samples(job.cluster().num_workers(), 0);
  for (const EpochResult& r : history) {
    for (size_t w = 0; w < r.worker_samples.size() && w < worker_samples.size(); ++w) {
      worker_samples[w] += r.worker_samples[w];
    }
  }
  absl::StrAppend(&out, "  \"worker_samples\": [", absl::StrJoin(worker_samples, ", "), "],\n");
  absl::StrAppend(&out, "  \"wall_seconds\": ", absl::StrFormat("%.3f", wall_seconds), ",\n");
  absl::StrAppend(&out, "  \"samples_per_second\": ",
                  absl::StrFormat("%.1f", wall_seconds > 0 ? samples / wall_seconds : 0.0), ",\n");
  absl::StrAppend(&out, "  \"model_keys\": ", keys, ",\n");
  absl::StrAppend(&out, "  \"server_stats\": [\n", server_stats, "\n  ],\n");
  if (const EpochResult* final = FinalResult(rec); final != nullptr) {
    absl::StrAppend(&out, "  \"model_epoch\": ", final->epoch, ",\n");
    absl::StrAppend(&out, "  \"train_loss\": ", absl::StrFormat("%.6f", final->train_loss), ",\n");
    if (final->has_validation)
      absl::StrAppend(&out, "  \"validation\": ", final->validation.json, ",\n");
    if (!final->test.json.empty()) absl::StrAppend(&out, "  \"test\": ", final->test.json, ",\n");
  }
  const config::PrivacySection& privacy = job.privacy();
  if (privacy.dp_sgd() && !history.empty()) {
    absl::StrAppend(&out, "  \"privacy\": {\"epsilon\": ",
                    absl::StrFormat("%.4f", EpsilonAfter(rec, history.back().epoch)),
                    ", \"delta\": ", absl::StrFormat("%g", privacy.delta()),
                    ", \"noise_multiplier\": ", absl::StrFormat("%g", privacy.noise_multiplier()),
                    ", \"clip_norm\": ", absl::StrFormat("%g", privacy.clip_norm()),
                    ", \"accountant\": \"rdp-sampled-gaussian\"},\n");
  }
  absl::StrAppend(&out, "  \"history\": [");
  for (size_t i = 0; i < history.size(); ++i) {
    const EpochResult& r = history[i];
    absl::StrAppend(&out, i == 0 ? "\n" : ",\n", "    {\"epoch\": ", r.epoch,
                    ", \"seconds\": ", absl::StrFormat("%.3f", r.seconds),
                    ", \"train_loss\": ", absl::StrFormat("%.6f", r.train_loss),
                    ", \"worker_samples\": [", absl::StrJoin(r.worker_samples, ", "), "]");
    if (privacy.dp_sgd())
      absl::StrAppend(&out, ", \"epsilon\": ", absl::StrFormat("%.4f", EpsilonAfter(rec, r.epoch)));
    if (r.has_validation) absl::StrAppend(&out, ", \"validation\": ", r.validation.json);
    if (!r.test.json.empty()) absl::StrAppend(&out, ", \"test\": ", r.test.json);
    absl::StrAppend(&out, "}");
  }
  absl::StrAppend(&out, history.empty() ? "]\n" : "\n  ]\n", "}\n");
  return out;
}

double EpsilonAfter(const JobRecord& rec, int epochs) {
  const config::JobConfig& job = *rec.job;
  // The lot: every worker's batch of one clock in BSP, one worker's batch
  // otherwise; each example is in one lot per epoch.
  const double n = static_cast<double>(std::max<uint64_t>(rec.train_examples, 1));
  const double lot = static_cast<double>(job.train().batch_size()) *
                     (job.job().mode() == config::BSP ? job.cluster().num_workers() : 1);
  const double q = std::min(1.0, lot / n);
  const int64_t steps = static_cast<int64_t>(std::ceil(n / lot)) * epochs;
  return DpSgdEpsilon(q, job.privacy().noise_multiplier(), steps, job.privacy().delta());
}

absl::Status WriteJobReport(const JobRecord& rec, double wall_seconds) {
  const config::JobConfig& job = *rec.job;
  const std::vector<EpochResult>& history = *rec.history;
  Report report;
  report.title = job.job().name();
  report.config_yaml = JobConfigToYaml(job);
  const EpochResult* final = FinalResult(rec);
  report.summary = {{"mode", ModeName(job.job().mode())},
                    {"cluster", absl::StrCat(job.cluster().num_servers(), " servers, ",
                                             job.cluster().num_workers(), " workers")},
                    {"model", absl::AsciiStrToLower(config::ModelType_Name(job.model().type()))},
                    {"wall time", absl::StrFormat("%.1f s", wall_seconds)},
                    {"epochs run", absl::StrCat(history.empty() ? 0 : history.back().epoch)}};
  if (final != nullptr) {
    report.summary.emplace_back("model kept", absl::StrCat("epoch ", final->epoch));
    if (!final->test.line.empty()) report.summary.emplace_back("test", final->test.line);
    if (final->has_validation) report.summary.emplace_back("validation", final->validation.line);
  }
  if (job.privacy().dp_sgd() && !history.empty()) {
    report.summary.emplace_back(
        "privacy",
        absl::StrFormat("DP-SGD: epsilon %.3f at delta %g (noise multiplier %g, clip norm %g)",
                        EpsilonAfter(rec, history.back().epoch), job.privacy().delta(),
                        job.privacy().noise_multiplier(), job.privacy().clip_norm()));
  }
  // Learning curves: loss, then the task's main metric, per epoch.
  const bool regression = TaskOf(job.model()) == Task::kRegression;
  const std::string metric = regression ? "rmse" : "accuracy";
  ReportChart loss{"Loss per epoch", "epoch", regression ? "squared error" : "log-loss", {}, false};
  ReportChart score{absl::StrCat(metric, " per epoch"), "epoch", metric, {}, false};
  ReportSeries train{"train (running)", {}, {}}, val_loss{"validation", {}, {}},
      test_loss{"test", {}, {}};
  ReportSeries val_score{"validation", {}, {}}, test_score{"test", {}, {}};
  ReportTable table{"History", {"epoch", "seconds", "train loss", "validation", "test"}, {}};
  for (const EpochResult& r : history) {
    train.x.push_back(r.epoch);
    train.y.push_back(regression ? 2 * r.train_loss : r.train_loss);  // 1/2 e^2 -> e^2
    if (r.has_validation) {
      val_loss.x.push_back(r.epoch);
      val_loss.y.push_back(r.validation.values.at("loss"));
      val_score.x.push_back(r.epoch);
      val_score.y.push_back(r.validation.values.at(metric));
    }
    if (!r.test.values.empty()) {
      test_loss.x.push_back(r.epoch);
      test_loss.y.push_back(r.test.values.at("loss"));
      test_score.x.push_back(r.epoch);
      test_score.y.push_back(r.test.values.at(metric));
    }
    table.rows.push_back({absl::StrCat(r.epoch), absl::StrFormat("%.2f", r.seconds),
                          absl::StrFormat("%.4f", r.train_loss),
                          r.has_validation ? r.validation.line : "-", r.test.line});
  }
  for (ReportSeries* s : {&train, &val_loss, &test_loss}) {
    if (!s->x.empty()) loss.series.push_back(std::move(*s));
  }
  for (ReportSeries* s : {&val_score, &test_score}) {
    if (!s->x.empty()) score.series.push_back(std::move(*s));
  }
  report.charts = {std::move(loss), std::move(score)};
  if (final != nullptr && (!final->test.roc.empty() || !final->validation.roc.empty())) {
    ReportChart roc{"ROC curve", "false positive rate", "true positive rate", {}, true};
    for (const auto& [name, e] : {std::pair<const char*, const Evaluation*>{"test", &final->test},
                                  {"validation", &final->validation}}) {
      if (e->roc.empty()) continue;
      ReportSeries s{absl::StrFormat("%s (AUC %.4f)", name, e->values.at("auc")), {}, {}};
      for (const auto& [fpr, tpr] : e->roc) {
        s.x.push_back(fpr);
        s.y.push_back(tpr);
      }
      roc.series.push_back(std::move(s));
    }
    report.charts.push_back(std::move(roc));
  }
  report.tables.push_back(std::move(table));
  if (final != nullptr && !final->test.confusion.empty()) {
    ReportTable confusion{
        "Confusion matrix (test; rows: true class, columns: predicted)", {""}, {}};
    for (size_t c = 0; c < final->test.confusion.size(); ++c)
      confusion.header.push_back(absl::StrCat(c));
    for (size_t t = 0; t < final->test.confusion.size(); ++t) {
      std::vector<std::string> row = {absl::StrCat(t)};
      for (uint64_t v : final->test.confusion[t]) row.push_back(absl::StrCat(v));
      confusion.rows.push_back(std::move(row));
    }
    report.tables.push_back(std::move(confusion));
  }
  return WriteReport(job.job().output_dir() + "/report.html", report);
}

}  // namespace ps

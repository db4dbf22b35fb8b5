// What a job hands its user at the end, made from its history of epochs:
// metrics.json (MetricsJson) and report.html (WriteJobReport), and which
// epoch's model it keeps (FinalResult: the best on validation with early
// stopping, else the last). Pure functions over a JobRecord; SchedulerCore
// makes one under its lock and writes the files.
#ifndef PS_SCHEDULER_JOB_OUTPUTS_H_
#define PS_SCHEDULER_JOB_OUTPUTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/evaluation.h"
#include "proto/job_config.pb.h"

namespace ps {

// One evaluated epoch.
struct EpochResult {
  int epoch = 0;  // 1-based
  double train_loss = 0;
  Evaluation test;
  bool has_validation = false;
  Evaluation validation;
  double seconds = 0;                    // since training started
  std::vector<uint64_t> worker_samples;  // training samples of the epoch, by worker rank
};

// A view of what the outputs are made of (not owned; valid while used).
struct JobRecord {
  const config::JobConfig* job = nullptr;
  const std::vector<EpochResult>* history = nullptr;
  uint64_t train_examples = 0;
  // Early stopping: the epoch (0-based) whose model was saved as the best,
  // -1 if none.
  int32_t saved_best_epoch = -1;
};

// "bsp", "ssp", "asp".
std::string ModeName(config::Mode mode);
// The history entry whose model the job keeps, or null if none.
const EpochResult* FinalResult(const JobRecord& rec);
// DP-SGD: the privacy spent after `epochs` epochs (common/privacy.h).
double EpsilonAfter(const JobRecord& rec, int epochs);
// metrics.json: the job, its throughput, the kept model's metrics, the
// history; `server_stats` is the servers' counters as JSON objects.
std::string MetricsJson(const JobRecord& rec, double wall_seconds, uint64_t keys,
                        const std::string& server_stats);
// <job.output_dir>/report.html: summary, learning curves, ROC, history,
// confusion matrix.
absl::Status WriteJobReport(const JobRecord& rec, double wall_seconds);

}  // namespace ps

#endif  // PS_SCHEDULER_JOB_OUTPUTS_H_

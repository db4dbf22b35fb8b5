// Binary classification metrics computed exactly over a whole evaluation set.
//
// Given one predicted probability P(y=1) per example and its 0/1 label, computes
// the confusion matrix at a threshold, accuracy/precision/recall/F1 for the
// positive class 1, ROC AUC (exact, ties get averaged ranks as in the
// Mann-Whitney U statistic) and mean log loss. Definitions match scikit-learn
// (accuracy_score, precision/recall/f1 with zero_division=0, roc_auc_score,
// log_loss with eps=1e-15).
//
// Thread-safety: all functions are pure; they may be called concurrently.
// Ownership: inputs are borrowed for the duration of the call only.
#ifndef PS_COMMON_METRICS_H_
#define PS_COMMON_METRICS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace ps {

struct BinaryMetrics {
  // Confusion matrix; positive class = 1, predicted 1 iff score >= threshold.
  uint64_t n = 0, tp = 0, fp = 0, tn = 0, fn = 0;
  // Ratios of the confusion matrix. A ratio whose denominator is zero is 0
  // (e.g. precision with no predicted positives), as sklearn zero_division=0.
  double accuracy = 0, precision = 0, recall = 0, f1 = 0;
  // Exact area under the ROC curve; tied scores count one half. NaN if the
  // evaluation set lacks one of the classes.
  double roc_auc = 0;
  // Mean of -log(p) for label 1 and -log(1-p) for label 0, with the score p
  // clipped to [1e-15, 1-1e-15] first (as sklearn.metrics.log_loss).
  double log_loss = 0;
};

// Computes the metrics of `scores` (predicted P(y=1), in [0,1]) against
// `labels` (each exactly 0 or 1). O(n log n) time, O(n) extra memory.
// Returns InvalidArgument if the sizes differ, the set is empty, the threshold
// is not in [0,1], or a label is not 0/1 or a score is NaN or outside [0,1]
// (the message names the first offending index).
absl::StatusOr<BinaryMetrics> ComputeBinaryMetrics(absl::Span<const float> scores,
                                                   absl::Span<const float> labels,
                                                   double threshold = 0.5);

// One line for logs, ratios with 4 decimals, e.g.
// "acc=0.9294 prec=0.9209 rec=0.8981 f1=0.9093 auc=0.9702 logloss=0.2326 n=921".
// A NaN AUC is written "nan".
std::string FormatBinaryMetrics(const BinaryMetrics& m);

// A single-line JSON object with every field of `m`, numbers in shortest
// round-trip form, NaN written as null. Keys are the field names, e.g.
// {"n":4,"tp":1,...,"roc_auc":0.75,"log_loss":0.5}.
std::string BinaryMetricsToJson(const BinaryMetrics& m);

}  // namespace ps

#endif  // PS_COMMON_METRICS_H_

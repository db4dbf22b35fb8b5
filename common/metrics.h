// Evaluation metrics computed exactly over a whole evaluation set: binary
// classification, multiclass classification and regression.
//
// Binary: given one predicted probability P(y=1) per example and its 0/1
// label, computes the confusion matrix at a threshold, accuracy and
// precision/recall/F1 (for the positive class 1 and macro/weighted over both
// classes), ROC AUC (exact, ties get averaged ranks as in the Mann-Whitney U
// statistic), the ROC curve and mean log loss.
// Multiclass: given a row of C class probabilities per example, the same
// family with argmax predictions and one-vs-rest AUC.
// Regression: RMSE, MAE and R^2.
// Definitions match scikit-learn 1.2.1 (accuracy_score, precision/recall/f1
// with zero_division=0, roc_auc_score, roc_curve, log_loss with eps=1e-15,
// mean_squared_error, mean_absolute_error, r2_score); each function states
// where it departs from it.
//
// Thread-safety: all functions are pure; they may be called concurrently.
// Ownership: inputs are borrowed for the duration of the call only.
#ifndef PS_COMMON_METRICS_H_
#define PS_COMMON_METRICS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

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
  // Precision/recall/F1 of each class 0 and 1 (class 0 predicted iff score <
  // threshold), averaged with equal weights (macro) or weighted by the number
  // of examples of each class (weighted), as sklearn average='macro' /
  // 'weighted' with labels=[0,1] and zero_division=0. Both classes always
  // count, even when one is absent from labels and predictions (sklearn
  // without labels=[0,1] would then average over the one class present).
  double precision_macro = 0, recall_macro = 0, f1_macro = 0;
  double precision_weighted = 0, recall_weighted = 0, f1_weighted = 0;
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
// {"n":4,"tp":1,...,"roc_auc":0.75,"log_loss":0.5,"precision_macro":...,
// "recall_macro":...,"f1_macro":...,"precision_weighted":...,
// "recall_weighted":...,"f1_weighted":...}.
std::string BinaryMetricsToJson(const BinaryMetrics& m);

// The ROC curve of `scores` against 0/1 `labels` as (false positive rate,
// true positive rate) points, from (0,0) to (1,1) with non-decreasing
// coordinates: one point per distinct score, taken in decreasing order, with
// all examples of that score counted at once (sklearn roc_curve with
// drop_intermediate=False, plus its leading (0,0)). When that gives more than
// `max_points` points, keeps `max_points` of them evenly spaced by index,
// always including both endpoints.
// Returns InvalidArgument on the inputs ComputeBinaryMetrics rejects, if
// `labels` lacks one of the classes (the curve is undefined), or if
// max_points < 2.
absl::StatusOr<std::vector<std::pair<double, double>>> RocCurve(absl::Span<const float> scores,
                                                                absl::Span<const float> labels,
                                                                int max_points = 200);

struct MulticlassMetrics {
  uint64_t n = 0;
  int num_classes = 0;
  // Fraction of examples whose argmax class is the label.
  double accuracy = 0;
  // Precision/recall/F1 per class (zero_division=0: a class never predicted
  // has precision 0), averaged over all num_classes classes, including those
  // absent from labels and predictions (sklearn labels=range(C)); 'weighted'
  // weights each class by its number of examples.
  double precision_macro = 0, recall_macro = 0, f1_macro = 0;
  double precision_weighted = 0, recall_weighted = 0, f1_weighted = 0;
  // One-vs-rest ROC AUC (ties count one half) averaged over the classes whose
  // per_class_roc_auc is defined, with equal weights (macro) or weighted by
  // class support (weighted). NaN if no class has one. Equals sklearn
  // roc_auc_score(multi_class='ovr') whenever every class occurs in labels
  // (sklearn raises otherwise).
  double roc_auc_ovr_macro = 0, roc_auc_ovr_weighted = 0;
  // Mean of -log(p[label]) after clipping each probability of the row to
  // [1e-15, 1-1e-15] and dividing the row by its sum (sklearn 1.2.1 log_loss
  // with eps=1e-15; its default eps='auto' would be the dtype's machine
  // epsilon instead).
  double log_loss = 0;
  // confusion[true_class][predicted_class] = number of examples.
  std::vector<std::vector<uint64_t>> confusion;
  // F1 of each class, indexed by class id.
  std::vector<double> per_class_f1;
  // One-vs-rest AUC of each class; NaN for a class with no positive or no
  // negative example (such classes are left out of the AUC averages).
  std::vector<double> per_class_roc_auc;
};

// Computes the metrics of `probs` (n rows of num_classes probabilities,
// row-major) against `labels` (n class ids). The predicted class of a row is
// its argmax, the lowest class id on ties. Rows need not sum to exactly 1
// (sklearn's roc_auc_score would reject rows far from 1; here AUC ranks the
// raw column and log_loss renormalizes).
// O(C n log n) time, O(n + C^2) extra memory.
// Returns InvalidArgument if num_classes < 2, labels is empty, probs.size()
// != labels.size() * num_classes, a label is not an integer in
// [0, num_classes), or a probability is NaN or outside [0,1] (the message
// names the first offending example).
absl::StatusOr<MulticlassMetrics> ComputeMulticlassMetrics(absl::Span<const float> probs,
                                                           absl::Span<const float> labels,
                                                           int num_classes);

// One line for logs, ratios with 4 decimals, e.g.
// "acc=0.4444 f1_macro=0.3333 f1_weighted=0.3889 auc_ovr=0.7646 logloss=0.8980 n=9"
// (auc_ovr is the macro average). A NaN is written "nan".
std::string FormatMulticlassMetrics(const MulticlassMetrics& m);

// A single-line JSON object with every field of `m` under its field name,
// numbers in shortest round-trip form, NaN as null, confusion as an array of
// rows, e.g. {"n":3,"num_classes":2,"accuracy":0.5,...,"confusion":[[1,0],[2,0]],
// "per_class_f1":[0.5,0],"per_class_roc_auc":[0.75,null]}.
std::string MulticlassMetricsToJson(const MulticlassMetrics& m);

struct RegressionMetrics {
  uint64_t n = 0;
  // Root mean squared error and mean absolute error.
  double rmse = 0, mae = 0;
  // Coefficient of determination 1 - SS_res / SS_tot, SS_tot being the sum of
  // squared deviations of the labels from their mean. As sklearn 1.2.1
  // r2_score (force_finite=True): 1 if SS_res == 0 (even when SS_tot == 0),
  // 0 if SS_tot == 0 < SS_res, and NaN if n < 2.
  double r2 = 0;
  double mean_label = 0;
};

// Computes the metrics of `predictions` against `labels`.
// Returns InvalidArgument if the sizes differ, the set is empty, or a value
// is NaN or infinite (the message names the first offending index).
absl::StatusOr<RegressionMetrics> ComputeRegressionMetrics(absl::Span<const float> predictions,
                                                           absl::Span<const float> labels);

// One line for logs with 4 decimals, e.g.
// "rmse=0.6124 mae=0.5000 r2=0.9486 mean_label=2.8750 n=4".
std::string FormatRegressionMetrics(const RegressionMetrics& m);

// A single-line JSON object with every field of `m`, NaN as null, e.g.
// {"n":1,"rmse":1.5,"mae":0.25,"r2":null,"mean_label":-2}.
std::string RegressionMetricsToJson(const RegressionMetrics& m);

}  // namespace ps

#endif  // PS_COMMON_METRICS_H_

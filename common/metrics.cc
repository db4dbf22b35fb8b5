#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ps {
namespace {

constexpr double kLogLossEps = 1e-15;

// Exact ROC AUC via the Mann-Whitney U statistic with averaged ranks for ties.
// REQUIRES: labels are 0/1, both classes present.
double RocAuc(absl::Span<const float> scores, absl::Span<const float> labels, uint64_t positives,
              uint64_t negatives) {
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Sum of the 1-based ranks of the positives; a tie group of ranks
  // [first, last] gives each member the average (first + last) / 2.
  double positive_rank_sum = 0;
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    uint64_t group_positives = 0;
    while (j < n && scores[order[j]] == scores[order[i]]) {
      if (labels[order[j]] == 1.0f) ++group_positives;
      ++j;
    }
    const double average_rank = (static_cast<double>(i + 1) + j) / 2.0;
    positive_rank_sum += average_rank * group_positives;
    i = j;
  }
  const double p = static_cast<double>(positives);
  const double u = positive_rank_sum - p * (p + 1) / 2.0;
  return u / (p * static_cast<double>(negatives));
}

double Ratio(uint64_t num, uint64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

// Shortest round-trip decimal form of a finite double; "null" for NaN/inf.
std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return "null";  // Cannot happen with 64 bytes.
  return std::string(buf, end);
}

// F1 = 2PR/(P+R) written with counts; equal to it whenever it is defined, and
// 0 when tp == 0 (sklearn zero_division=0).
double F1(uint64_t tp, uint64_t predicted, uint64_t actual) {
  return Ratio(2 * tp, predicted + actual);
}

// Checks the inputs of the binary functions. Messages name the first
// offending index.
absl::Status CheckBinaryInputs(absl::Span<const float> scores, absl::Span<const float> labels) {
  if (scores.size() != labels.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics: ", scores.size(), " scores but ", labels.size(), " labels"));
  }
  if (scores.empty()) {
    return absl::InvalidArgumentError("metrics: empty evaluation set");
  }
  for (size_t i = 0; i < scores.size(); ++i) {
    if (labels[i] != 0.0f && labels[i] != 1.0f) {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics: label ", labels[i], " at index ", i, " is not 0/1"));
    }
    if (!(scores[i] >= 0.0f && scores[i] <= 1.0f)) {  // Also rejects NaN.
      return absl::InvalidArgumentError(
          absl::StrCat("metrics: score ", scores[i], " at index ", i, " is not in [0,1]"));
    }
  }
  return absl::OkStatus();
}

std::string JsonArray(absl::Span<const double> values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ",", JsonNumber(values[i]));
  }
  out += "]";
  return out;
}

}  // namespace

absl::StatusOr<BinaryMetrics> ComputeBinaryMetrics(absl::Span<const float> scores,
                                                   absl::Span<const float> labels,
                                                   double threshold) {
  if (absl::Status s = CheckBinaryInputs(scores, labels); !s.ok()) return s;
  if (!(threshold >= 0.0 && threshold <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics: threshold ", threshold, " is not in [0,1]"));
  }
  BinaryMetrics m;
  m.n = scores.size();
  double loss_sum = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    const float label = labels[i];
    const float score = scores[i];
    const bool actual = label == 1.0f;
    const bool predicted = static_cast<double>(score) >= threshold;
    if (actual) {
      predicted ? ++m.tp : ++m.fn;
    } else {
      predicted ? ++m.fp : ++m.tn;
    }
    // Clip P(y=1) first, then take the complement, exactly as sklearn's
    // log_loss does; so a score of 1 for label 0 costs -log(1 - (1 - 1e-15)),
    // slightly more than the -log(1e-15) of a score of 0 for label 1.
    const double p = std::clamp(static_cast<double>(score), kLogLossEps, 1.0 - kLogLossEps);
    loss_sum -= actual ? std::log(p) : std::log1p(-p);
  }
  m.accuracy = Ratio(m.tp + m.tn, m.n);
  m.precision = Ratio(m.tp, m.tp + m.fp);
  m.recall = Ratio(m.tp, m.tp + m.fn);
  // Equals 2PR/(P+R) whenever that is defined, and 0 when tp == 0.
  m.f1 = F1(m.tp, m.tp + m.fp, m.tp + m.fn);
  // Class 0 seen as the positive class: its "true positives" are m.tn.
  const double precision0 = Ratio(m.tn, m.tn + m.fn);
  const double recall0 = Ratio(m.tn, m.tn + m.fp);
  const double f1_0 = F1(m.tn, m.tn + m.fn, m.tn + m.fp);
  const double weight1 = Ratio(m.tp + m.fn, m.n);
  const double weight0 = Ratio(m.tn + m.fp, m.n);
  m.precision_macro = (precision0 + m.precision) / 2;
  m.recall_macro = (recall0 + m.recall) / 2;
  m.f1_macro = (f1_0 + m.f1) / 2;
  m.precision_weighted = weight0 * precision0 + weight1 * m.precision;
  m.recall_weighted = weight0 * recall0 + weight1 * m.recall;
  m.f1_weighted = weight0 * f1_0 + weight1 * m.f1;
  m.log_loss = loss_sum / static_cast<double>(m.n);
  const uint64_t positives = m.tp + m.fn;
  const uint64_t negatives = m.tn + m.fp;
  m.roc_auc = (positives == 0 || negatives == 0) ? std::nan("")
                                                 : RocAuc(scores, labels, positives, negatives);
  return m;
}

std::string FormatBinaryMetrics(const BinaryMetrics& m) {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "acc=%.4f prec=%.4f rec=%.4f f1=%.4f auc=%.4f logloss=%.4f "
                "n=%llu",
                m.accuracy, m.precision, m.recall, m.f1, m.roc_auc, m.log_loss,
                static_cast<unsigned long long>(m.n));
  return buf;
}

std::string BinaryMetricsToJson(const BinaryMetrics& m) {
  return absl::StrCat(
      "{\"n\":", m.n, ",\"tp\":", m.tp, ",\"fp\":", m.fp, ",\"tn\":", m.tn, ",\"fn\":", m.fn,
      ",\"accuracy\":", JsonNumber(m.accuracy), ",\"precision\":", JsonNumber(m.precision),
      ",\"recall\":", JsonNumber(m.recall), ",\"f1\":", JsonNumber(m.f1),
      ",\"roc_auc\":", JsonNumber(m.roc_auc), ",\"log_loss\":", JsonNumber(m.log_loss),
      ",\"precision_macro\":", JsonNumber(m.precision_macro),
      ",\"recall_macro\":", JsonNumber(m.recall_macro), ",\"f1_macro\":", JsonNumber(m.f1_macro),
      ",\"precision_weighted\":", JsonNumber(m.precision_weighted),
      ",\"recall_weighted\":", JsonNumber(m.recall_weighted),
      ",\"f1_weighted\":", JsonNumber(m.f1_weighted), "}");
}

absl::StatusOr<std::vector<std::pair<double, double>>> RocCurve(absl::Span<const float> scores,
                                                                absl::Span<const float> labels,
                                                                int max_points) {
  if (absl::Status s = CheckBinaryInputs(scores, labels); !s.ok()) return s;
  if (max_points < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics: RocCurve max_points ", max_points, " < 2"));
  }
  const size_t n = scores.size();
  uint64_t positives = 0;
  for (float label : labels) positives += label == 1.0f ? 1 : 0;
  const uint64_t negatives = n - positives;
  if (positives == 0 || negatives == 0) {
    return absl::InvalidArgumentError("metrics: the ROC curve needs both classes in the labels");
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  std::vector<std::pair<double, double>> points = {{0.0, 0.0}};
  uint64_t tp = 0, fp = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    for (; j < n && scores[order[j]] == scores[order[i]]; ++j) {
      labels[order[j]] == 1.0f ? ++tp : ++fp;
    }
    points.emplace_back(static_cast<double>(fp) / static_cast<double>(negatives),
                        static_cast<double>(tp) / static_cast<double>(positives));
    i = j;
  }
  const size_t keep = static_cast<size_t>(max_points);
  if (points.size() <= keep) return points;
  // Index round(k * (size-1) / (keep-1)) for k in [0, keep): strictly
  // increasing since size > keep, first 0 and last size-1.
  std::vector<std::pair<double, double>> sampled;
  sampled.reserve(keep);
  const size_t last = points.size() - 1;
  for (size_t k = 0; k < keep; ++k) {
    sampled.push_back(points[(k * last + (keep - 1) / 2) / (keep - 1)]);
  }
  return sampled;
}

absl::StatusOr<MulticlassMetrics> ComputeMulticlassMetrics(absl::Span<const float> probs,
                                                           absl::Span<const float> labels,
                                                           int num_classes) {
  if (num_classes < 2) {
    return absl::InvalidArgumentError(absl::StrCat("metrics: num_classes ", num_classes, " < 2"));
  }
  const size_t c_count = static_cast<size_t>(num_classes);
  if (labels.empty()) {
    return absl::InvalidArgumentError("metrics: empty evaluation set");
  }
  if (probs.size() / c_count != labels.size() || probs.size() % c_count != 0) {
    return absl::InvalidArgumentError(absl::StrCat("metrics: ", probs.size(), " probabilities but ",
                                                   labels.size(), " labels x ", num_classes,
                                                   " classes"));
  }
  const size_t n = labels.size();
  MulticlassMetrics m;
  m.n = n;
  m.num_classes = num_classes;
  m.confusion.assign(c_count, std::vector<uint64_t>(c_count, 0));
  double loss_sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const float label = labels[i];
    if (!(label >= 0.0f && label < static_cast<float>(num_classes)) || label != std::floor(label)) {
      return absl::InvalidArgumentError(absl::StrCat("metrics: label ", label, " at index ", i,
                                                     " is not a class id in [0,", num_classes,
                                                     ")"));
    }
    const absl::Span<const float> row = probs.subspan(i * c_count, c_count);
    size_t predicted = 0;
    double row_sum = 0;
    for (size_t c = 0; c < c_count; ++c) {
      if (!(row[c] >= 0.0f && row[c] <= 1.0f)) {  // Also rejects NaN.
        return absl::InvalidArgumentError(absl::StrCat(
            "metrics: probability ", row[c], " of class ", c, " at index ", i, " is not in [0,1]"));
      }
      if (row[c] > row[predicted]) predicted = c;
      row_sum += std::clamp(static_cast<double>(row[c]), kLogLossEps, 1.0 - kLogLossEps);
    }
    const size_t actual = static_cast<size_t>(label);
    ++m.confusion[actual][predicted];
    const double p_actual =
        std::clamp(static_cast<double>(row[actual]), kLogLossEps, 1.0 - kLogLossEps);
    loss_sum -= std::log(p_actual / row_sum);
  }
  m.log_loss = loss_sum / static_cast<double>(n);

  uint64_t correct = 0;
  std::vector<uint64_t> support(c_count, 0), predicted_count(c_count, 0);
  for (size_t t = 0; t < c_count; ++t) {
    correct += m.confusion[t][t];
    for (size_t p = 0; p < c_count; ++p) {
      support[t] += m.confusion[t][p];
      predicted_count[p] += m.confusion[t][p];
    }
  }
  m.accuracy = Ratio(correct, n);

  m.per_class_f1.resize(c_count);
  m.per_class_roc_auc.resize(c_count);
  std::vector<float> column(n), is_class(n);
  double auc_sum = 0, auc_weighted_sum = 0;
  uint64_t auc_classes = 0, auc_support = 0;
  for (size_t c = 0; c < c_count; ++c) {
    const uint64_t tp = m.confusion[c][c];
    const double precision = Ratio(tp, predicted_count[c]);
    const double recall = Ratio(tp, support[c]);
    const double f1 = F1(tp, predicted_count[c], support[c]);
    const double weight = Ratio(support[c], n);
    m.per_class_f1[c] = f1;
    m.precision_macro += precision;
    m.recall_macro += recall;
    m.f1_macro += f1;
    m.precision_weighted += weight * precision;
    m.recall_weighted += weight * recall;
    m.f1_weighted += weight * f1;

    const uint64_t positives = support[c];
    const uint64_t negatives = n - support[c];
    if (positives == 0 || negatives == 0) {
      m.per_class_roc_auc[c] = std::nan("");
      continue;
    }
    for (size_t i = 0; i < n; ++i) {
      column[i] = probs[i * c_count + c];
      is_class[i] = static_cast<size_t>(labels[i]) == c ? 1.0f : 0.0f;
    }
    const double auc = RocAuc(column, is_class, positives, negatives);
    m.per_class_roc_auc[c] = auc;
    auc_sum += auc;
    auc_weighted_sum += static_cast<double>(positives) * auc;
    ++auc_classes;
    auc_support += positives;
  }
  m.precision_macro /= num_classes;
  m.recall_macro /= num_classes;
  m.f1_macro /= num_classes;
  m.roc_auc_ovr_macro = auc_classes == 0 ? std::nan("") : auc_sum / auc_classes;
  m.roc_auc_ovr_weighted =
      auc_support == 0 ? std::nan("") : auc_weighted_sum / static_cast<double>(auc_support);
  return m;
}

std::string FormatMulticlassMetrics(const MulticlassMetrics& m) {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "acc=%.4f f1_macro=%.4f f1_weighted=%.4f auc_ovr=%.4f logloss=%.4f n=%llu",
                m.accuracy, m.f1_macro, m.f1_weighted, m.roc_auc_ovr_macro, m.log_loss,
                static_cast<unsigned long long>(m.n));
  return buf;
}

std::string MulticlassMetricsToJson(const MulticlassMetrics& m) {
  std::string confusion = "[";
  for (size_t t = 0; t < m.confusion.size(); ++t) {
    absl::StrAppend(&confusion, t == 0 ? "[" : ",[");
    for (size_t p = 0; p < m.confusion[t].size(); ++p) {
      absl::StrAppend(&confusion, p == 0 ? "" : ",", m.confusion[t][p]);
    }
    confusion += "]";
  }
  confusion += "]";
  return absl::StrCat(
      "{\"n\":", m.n, ",\"num_classes\":", m.num_classes, ",\"accuracy\":", JsonNumber(m.accuracy),
      ",\"precision_macro\":", JsonNumber(m.precision_macro),
      ",\"recall_macro\":", JsonNumber(m.recall_macro), ",\"f1_macro\":", JsonNumber(m.f1_macro),
      ",\"precision_weighted\":", JsonNumber(m.precision_weighted),
      ",\"recall_weighted\":", JsonNumber(m.recall_weighted),
      ",\"f1_weighted\":", JsonNumber(m.f1_weighted),
      ",\"roc_auc_ovr_macro\":", JsonNumber(m.roc_auc_ovr_macro),
      ",\"roc_auc_ovr_weighted\":", JsonNumber(m.roc_auc_ovr_weighted),
      ",\"log_loss\":", JsonNumber(m.log_loss), ",\"confusion\":", confusion,
      ",\"per_class_f1\":", JsonArray(m.per_class_f1),
      ",\"per_class_roc_auc\":", JsonArray(m.per_class_roc_auc), "}");
}

absl::StatusOr<RegressionMetrics> ComputeRegressionMetrics(absl::Span<const float> predictions,
                                                           absl::Span<const float> labels) {
  if (predictions.size() != labels.size()) {
    return absl::InvalidArgumentError(absl::StrCat("metrics: ", predictions.size(),
                                                   " predictions but ", labels.size(), " labels"));
  }
  if (labels.empty()) {
    return absl::InvalidArgumentError("metrics: empty evaluation set");
  }
  const size_t n = labels.size();
  double label_sum = 0, squared_error_sum = 0, absolute_error_sum = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(predictions[i]) || !std::isfinite(labels[i])) {
      return absl::InvalidArgumentError(absl::StrCat("metrics: prediction ", predictions[i],
                                                     " or label ", labels[i], " at index ", i,
                                                     " is not finite"));
    }
    const double error = static_cast<double>(labels[i]) - static_cast<double>(predictions[i]);
    label_sum += labels[i];
    squared_error_sum += error * error;
    absolute_error_sum += std::abs(error);
  }
  RegressionMetrics m;
  m.n = n;
  m.mean_label = label_sum / static_cast<double>(n);
  m.rmse = std::sqrt(squared_error_sum / static_cast<double>(n));
  m.mae = absolute_error_sum / static_cast<double>(n);
  double total_sum_of_squares = 0;  // Second pass, as sklearn, for accuracy.
  for (float label : labels) {
    const double deviation = static_cast<double>(label) - m.mean_label;
    total_sum_of_squares += deviation * deviation;
  }
  if (n < 2) {
    m.r2 = std::nan("");
  } else if (squared_error_sum == 0) {
    m.r2 = 1.0;
  } else if (total_sum_of_squares == 0) {
    m.r2 = 0.0;
  } else {
    m.r2 = 1.0 - squared_error_sum / total_sum_of_squares;
  }
  return m;
}

std::string FormatRegressionMetrics(const RegressionMetrics& m) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), "rmse=%.4f mae=%.4f r2=%.4f mean_label=%.4f n=%llu", m.rmse,
                m.mae, m.r2, m.mean_label, static_cast<unsigned long long>(m.n));
  return buf;
}

std::string RegressionMetricsToJson(const RegressionMetrics& m) {
  return absl::StrCat("{\"n\":", m.n, ",\"rmse\":", JsonNumber(m.rmse),
                      ",\"mae\":", JsonNumber(m.mae), ",\"r2\":", JsonNumber(m.r2),
                      ",\"mean_label\":", JsonNumber(m.mean_label), "}");
}

}  // namespace ps

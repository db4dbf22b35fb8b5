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

}  // namespace

absl::StatusOr<BinaryMetrics> ComputeBinaryMetrics(absl::Span<const float> scores,
                                                   absl::Span<const float> labels,
                                                   double threshold) {
  if (scores.size() != labels.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics: ", scores.size(), " scores but ", labels.size(), " labels"));
  }
  if (scores.empty()) {
    return absl::InvalidArgumentError("metrics: empty evaluation set");
  }
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
    if (label != 0.0f && label != 1.0f) {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics: label ", label, " at index ", i, " is not 0/1"));
    }
    if (!(score >= 0.0f && score <= 1.0f)) {  // Also rejects NaN.
      return absl::InvalidArgumentError(
          absl::StrCat("metrics: score ", score, " at index ", i, " is not in [0,1]"));
    }
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
  m.f1 = Ratio(2 * m.tp, 2 * m.tp + m.fp + m.fn);
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
      ",\"roc_auc\":", JsonNumber(m.roc_auc), ",\"log_loss\":", JsonNumber(m.log_loss), "}");
}

}  // namespace ps

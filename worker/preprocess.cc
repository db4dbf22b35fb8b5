#include "worker/preprocess.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/container/flat_hash_map.h"
#include "common/partitioning.h"

namespace ps {
namespace {

// The statistics table's key holding the row count: outside any feature's
// range (feature indices, 0 included, stay usable as keys).
constexpr uint64_t kRowsKey = std::numeric_limits<uint64_t>::max();

}  // namespace

void SplitValidation(uint64_t n, double fraction, uint64_t seed, std::vector<uint64_t>* train,
                     std::vector<uint64_t>* validation) {
  train->clear();
  validation->clear();
  std::vector<uint64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  SplitMix64 rng(Mix64(seed ^ 0x5bd1e995ULL));
  for (uint64_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng.NextBelow(i)]);
  const uint64_t held = static_cast<uint64_t>(std::floor(fraction * static_cast<double>(n)));
  validation->assign(order.begin(), order.begin() + held);
  train->assign(order.begin() + held, order.end());
  std::sort(validation->begin(), validation->end());
  std::sort(train->begin(), train->end());
}

bool NeedsStatistics(const config::JobConfig& job) {
  const config::DataSection& d = job.data();
  return d.scaling() == config::STANDARDIZE || d.scaling() == config::MINMAX ||
         d.fill_missing() == config::FILL_MEAN || d.class_weight() == config::BALANCED;
}

std::vector<TableKeys> PartialStatistics(const Dataset& data, absl::Span<const uint64_t> rows,
                                         uint32_t stats_table, uint32_t class_table,
                                         int num_classes) {
  struct Acc {
    double present = 0, missing = 0, sum = 0, sumsq = 0;
    float min = std::numeric_limits<float>::infinity();
    float max = -std::numeric_limits<float>::infinity();
  };
  absl::flat_hash_map<uint64_t, Acc> acc;
  std::vector<double> classes(num_classes, 0.0);
  for (uint64_t r : rows) {
    for (uint64_t j = data.row_offsets[r]; j < data.row_offsets[r + 1]; ++j) {
      Acc& a = acc[data.indices[j]];
      const float v = data.values[j];
      if (std::isnan(v)) {
        a.missing += 1;
        continue;
      }
      a.present += 1;
      a.sum += v;
      a.sumsq += static_cast<double>(v) * v;
      a.min = std::min(a.min, v);
      a.max = std::max(a.max, v);
    }
    const int label = static_cast<int>(data.labels[r]);
    if (num_classes > 0 && label >= 0 && label < num_classes) classes[label] += 1;
  }
  TableKeys stats;
  stats.table = stats_table;
  stats.keys.push_back(kRowsKey);
  stats.values.insert(stats.values.end(),
                      {static_cast<float>(rows.size()), 0, 0, 0, 0, 0});
  std::vector<uint64_t> features;
  for (const auto& [f, a] : acc) features.push_back(f);
  std::sort(features.begin(), features.end());
  for (uint64_t f : features) {
    const Acc& a = acc[f];
    stats.keys.push_back(f);
    // A feature seen only as missing has no min/max: fold nothing in.
    const float lo = a.present > 0 ? a.min : std::numeric_limits<float>::max();
    const float hi = a.present > 0 ? a.max : -std::numeric_limits<float>::max();
    stats.values.insert(stats.values.end(),
                        {static_cast<float>(a.present), static_cast<float>(a.missing),
                         static_cast<float>(a.sum), static_cast<float>(a.sumsq), lo, hi});
  }
  std::vector<TableKeys> out = {std::move(stats)};
  if (num_classes > 0) {
    TableKeys counts;
    counts.table = class_table;
    for (int c = 0; c < num_classes; ++c) {
      counts.keys.push_back(c);
      counts.values.push_back(static_cast<float>(classes[c]));
    }
    out.push_back(std::move(counts));
  }
  return out;
}

std::vector<TableKeys> StatisticsKeys(const std::vector<const Dataset*>& datasets,
                                      uint32_t stats_table, uint32_t class_table,
                                      int num_classes) {
  TableKeys stats;
  stats.table = stats_table;
  stats.keys.push_back(kRowsKey);
  for (const Dataset* d : datasets) stats.keys.insert(stats.keys.end(), d->indices.begin(), d->indices.end());
  std::sort(stats.keys.begin(), stats.keys.end());
  stats.keys.erase(std::unique(stats.keys.begin(), stats.keys.end()), stats.keys.end());
  std::vector<TableKeys> out = {std::move(stats)};
  if (num_classes > 0) {
    TableKeys counts;
    counts.table = class_table;
    for (int c = 0; c < num_classes; ++c) counts.keys.push_back(c);
    out.push_back(std::move(counts));
  }
  return out;
}

DatasetStats ReduceStatistics(const std::vector<TableKeys>& pulled) {
  DatasetStats out;
  const TableKeys& stats = pulled[0];
  for (size_t i = 0; i < stats.keys.size(); ++i) {
    if (stats.keys[i] == kRowsKey) out.rows = static_cast<uint64_t>(stats.values[i * 6]);
  }
  const double n = static_cast<double>(out.rows);
  for (size_t i = 0; i < stats.keys.size(); ++i) {
    if (stats.keys[i] == kRowsKey) continue;
    const float* v = stats.values.data() + i * 6;
    const double present = v[0], missing = v[1];
    FeatureStats f;
    const double count = n - missing;  // absent sparse entries are zeros, not missing
    f.count = static_cast<uint64_t>(std::max(0.0, count));
    if (count > 0) {
      f.mean = v[2] / count;
      f.stddev = std::sqrt(std::max(0.0, v[3] / count - f.mean * f.mean));
    }
    f.min = present > 0 ? v[4] : 0;
    f.max = present > 0 ? v[5] : 0;
    if (present < count) {  // some rows hold an implicit zero
      f.min = std::min(f.min, 0.0);
      f.max = std::max(f.max, 0.0);
    }
    out.features[stats.keys[i]] = f;
  }
  if (pulled.size() > 1) out.class_counts.assign(pulled[1].values.begin(), pulled[1].values.end());
  return out;
}

void FillAndScale(const config::DataSection& options, const DatasetStats& stats, Dataset* data) {
  const config::Scaling scaling = options.scaling();
  // The value a feature's zero (or missing value) becomes.
  auto transform = [&](const FeatureStats& f, float x) -> float {
    if (std::isnan(x)) x = options.fill_missing() == config::FILL_MEAN ? static_cast<float>(f.mean) : 0.0f;
    if (scaling == config::STANDARDIZE) return f.stddev > 0 ? static_cast<float>((x - f.mean) / f.stddev) : 0.0f;
    if (scaling == config::MINMAX) {
      return f.max > f.min ? static_cast<float>((x - f.min) / (f.max - f.min)) : 0.0f;
    }
    return x;
  };
  bool densify = false;
  for (const auto& [index, f] : stats.features) {
    if (transform(f, 0.0f) != 0.0f) densify = true;
  }
  Dataset out;
  out.labels = data->labels;
  out.feature_names = data->feature_names;
  out.row_offsets.push_back(0);
  for (size_t r = 0; r < data->rows(); ++r) {
    const uint64_t begin = data->row_offsets[r], end = data->row_offsets[r + 1];
    if (!densify) {
      for (uint64_t j = begin; j < end; ++j) {
        auto it = stats.features.find(data->indices[j]);
        const float v = it == stats.features.end() ? (std::isnan(data->values[j]) ? 0.0f : data->values[j])
                                                   : transform(it->second, data->values[j]);
        if (v == 0.0f) continue;
        out.indices.push_back(data->indices[j]);
        out.values.push_back(v);
      }
    } else {
      // Every feature of the statistics, in index order (both are sorted).
      uint64_t j = begin;
      for (const auto& [index, f] : stats.features) {
        while (j < end && data->indices[j] < index) ++j;
        const float raw = (j < end && data->indices[j] == index) ? data->values[j] : 0.0f;
        const float v = transform(f, raw);
        if (v == 0.0f) continue;
        out.indices.push_back(index);
        out.values.push_back(v);
      }
    }
    out.row_offsets.push_back(out.indices.size());
  }
  out.max_index = data->max_index;
  *data = std::move(out);
}

std::vector<float> ClassWeights(const config::DataSection& options, const DatasetStats& stats) {
  if (options.class_weight() != config::BALANCED || stats.class_counts.empty()) return {};
  double n = 0;
  for (double c : stats.class_counts) n += c;
  const double k = static_cast<double>(stats.class_counts.size());
  std::vector<float> w;
  for (double c : stats.class_counts) w.push_back(c > 0 ? static_cast<float>(n / (k * c)) : 0.0f);
  return w;
}

std::vector<uint64_t> Resample(const config::DataSection& options, const Dataset& data,
                               const std::vector<uint64_t>& rows, int num_classes, uint64_t seed,
                               int epoch) {
  if (options.sampling() != config::OVERSAMPLE && options.sampling() != config::UNDERSAMPLE) {
    return rows;
  }
  std::vector<std::vector<uint64_t>> by_class(num_classes);
  for (uint64_t r : rows) {
    const int c = static_cast<int>(data.labels[r]);
    if (c >= 0 && c < num_classes) by_class[c].push_back(r);
  }
  size_t target = options.sampling() == config::OVERSAMPLE ? 0 : std::numeric_limits<size_t>::max();
  for (const auto& rs : by_class) {
    if (rs.empty()) continue;
    target = options.sampling() == config::OVERSAMPLE ? std::max(target, rs.size())
                                                      : std::min(target, rs.size());
  }
  SplitMix64 rng(Mix64(seed ^ Mix64(static_cast<uint64_t>(epoch) + 0x1234)));
  std::vector<uint64_t> out;
  for (auto& rs : by_class) {
    if (rs.empty()) continue;
    if (options.sampling() == config::OVERSAMPLE) {
      out.insert(out.end(), rs.begin(), rs.end());
      for (size_t i = rs.size(); i < target; ++i) out.push_back(rs[rng.NextBelow(rs.size())]);
    } else {
      for (size_t i = rs.size(); i > 1; --i) std::swap(rs[i - 1], rs[rng.NextBelow(i)]);
      out.insert(out.end(), rs.begin(), rs.begin() + target);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace ps

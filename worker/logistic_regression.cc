#include "worker/logistic_regression.h"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_map.h"
#include "common/partitioning.h"
#include "common/tables.h"

namespace ps {
namespace {

double Sigmoid(double z) {
  return z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z));
}

// log(1 + exp(-|z|)) + max(z, 0) - y z: the log-loss from the margin, stable.
double LogLoss(double z, double y) {
  return std::log1p(std::exp(-std::abs(z))) + std::max(z, 0.0) - y * z;
}

}  // namespace

LogisticRegression::LogisticRegression(const config::ModelSection& model)
    : hash_bits_(model.hash_bits()) {}

uint64_t LogisticRegression::KeyOf(uint64_t feature) const {
  if (hash_bits_ == 0) return feature;
  return Mix64(feature) & ((uint64_t{1} << hash_bits_) - 1);
}

std::vector<TableKeys> LogisticRegression::KeysFor(const Dataset& data,
                                                   absl::Span<const uint64_t> rows) const {
  std::vector<TableKeys> tables(2);
  tables[0].table = kLrWeights;
  tables[1].table = kLrBias;
  tables[1].keys = {0};
  std::vector<uint64_t>& keys = tables[0].keys;
  for (uint64_t r : rows) {
    for (uint64_t j = data.row_offsets[r]; j < data.row_offsets[r + 1]; ++j) {
      keys.push_back(KeyOf(data.indices[j]));
    }
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return tables;
}

double LogisticRegression::Gradient(const Dataset& data, absl::Span<const uint64_t> rows,
                                    const std::vector<TableKeys>& params,
                                    std::vector<TableKeys>* grads) const {
  const std::vector<uint64_t>& keys = params[0].keys;
  absl::flat_hash_map<uint64_t, uint32_t> slot;
  slot.reserve(keys.size());
  for (uint32_t i = 0; i < keys.size(); ++i) slot[keys[i]] = i;
  std::vector<double> gw(keys.size(), 0.0);
  double gb = 0, loss = 0;
  const double bias = params[1].values[0];
  for (uint64_t r : rows) {
    double z = bias;
    for (uint64_t j = data.row_offsets[r]; j < data.row_offsets[r + 1]; ++j) {
      z += static_cast<double>(params[0].values[slot.at(KeyOf(data.indices[j]))]) * data.values[j];
    }
    const double y = data.labels[r];
    const double err = Sigmoid(z) - y;
    loss += LogLoss(z, y);
    for (uint64_t j = data.row_offsets[r]; j < data.row_offsets[r + 1]; ++j) {
      gw[slot.at(KeyOf(data.indices[j]))] += err * data.values[j];
    }
    gb += err;
  }
  *grads = {params[0], params[1]};
  for (size_t i = 0; i < gw.size(); ++i) (*grads)[0].values[i] = static_cast<float>(gw[i]);
  (*grads)[1].values[0] = static_cast<float>(gb);
  return loss;
}

std::vector<float> LogisticRegression::Predict(const Dataset& data, absl::Span<const uint64_t> rows,
                                               const std::vector<TableKeys>& params) const {
  const std::vector<uint64_t>& keys = params[0].keys;
  absl::flat_hash_map<uint64_t, uint32_t> slot;
  for (uint32_t i = 0; i < keys.size(); ++i) slot[keys[i]] = i;
  std::vector<float> out;
  out.reserve(rows.size());
  for (uint64_t r : rows) {
    double z = params[1].values[0];
    for (uint64_t j = data.row_offsets[r]; j < data.row_offsets[r + 1]; ++j) {
      z += static_cast<double>(params[0].values[slot.at(KeyOf(data.indices[j]))]) * data.values[j];
    }
    out.push_back(static_cast<float>(Sigmoid(z)));
  }
  return out;
}

}  // namespace ps

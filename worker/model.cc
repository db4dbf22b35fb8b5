#include "worker/model.h"

#include <algorithm>
#include <cmath>

#include "common/partitioning.h"

namespace ps {
namespace internal {

uint64_t FeatureKey(uint64_t feature, int hash_bits) {
  if (hash_bits == 0) return feature;
  return Mix64(feature) & ((uint64_t{1} << hash_bits) - 1);
}

std::vector<uint64_t> FeatureKeysOf(const Dataset& data, absl::Span<const uint64_t> rows,
                                    int hash_bits) {
  std::vector<uint64_t> keys;
  for (uint64_t r : rows) {
    for (uint64_t j = data.row_offsets[r]; j < data.row_offsets[r + 1]; ++j) {
      keys.push_back(FeatureKey(data.indices[j], hash_bits));
    }
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

uint32_t KeyIndex::operator()(uint64_t key) const {
  return static_cast<uint32_t>(std::lower_bound(keys_.begin(), keys_.end(), key) - keys_.begin());
}

double Sigmoid(double z) {
  return z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z));
}

double LogLoss(double z, double y) {
  return std::log1p(std::exp(-std::abs(z))) + std::max(z, 0.0) - y * z;
}

}  // namespace internal

std::unique_ptr<Model> MakeModel(const config::ModelSection& model) {
  switch (model.type()) {
    case config::FACTORIZATION_MACHINE:
      return internal::MakeFmModel(model);
    case config::MLP:
      return internal::MakeMlpModel(model);
    default:
      return internal::MakeLinearModel(model);
  }
}

}  // namespace ps

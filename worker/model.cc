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

namespace {
// Largest key range, as a multiple of the number of keys, that is cheaper
// to walk with a table indexed by key than to sort or search.
constexpr uint64_t kDirectSpread = 32;
}  // namespace

std::vector<uint64_t> FeatureKeysOf(const Dataset& data, absl::Span<const uint64_t> rows,
                                    int hash_bits) {
  std::vector<uint64_t> keys;
  uint64_t max_key = 0;
  for (uint64_t r : rows) {
    for (uint64_t j = data.row_offsets[r]; j < data.row_offsets[r + 1]; ++j) {
      keys.push_back(FeatureKey(data.indices[j], hash_bits));
      max_key = std::max(max_key, keys.back());
    }
  }
  if (!keys.empty() && max_key / kDirectSpread < keys.size()) {
    // Small keys (e.g. the pixels of an image): mark them, then read the marks in order.
    std::vector<uint8_t> present(max_key + 1, 0);
    for (uint64_t k : keys) present[k] = 1;
    keys.clear();
    for (uint64_t k = 0; k <= max_key; ++k) {
      if (present[k]) keys.push_back(k);
    }
    return keys;
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

KeyIndex::KeyIndex(const std::vector<uint64_t>& sorted_keys) : keys_(sorted_keys) {
  if (keys_.empty() || keys_.back() / kDirectSpread >= keys_.size()) return;
  direct_.assign(keys_.back() + 1, 0);
  for (uint32_t i = 0; i < keys_.size(); ++i) direct_[keys_[i]] = i;
}

uint32_t KeyIndex::Search(uint64_t key) const {
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

// Second-order factorization machine (Rendle 2010) for binary labels:
//   z = b + sum_j w_j x_j + 1/2 sum_f [(sum_j v_jf x_j)^2 - sum_j v_jf^2 x_j^2]
// with the logistic loss. Tables: kLrWeights (dim 1), kLrBias, kFmFactors
// (key = feature, dim = fm_factors).
#include <vector>

#include "common/tables.h"
#include "worker/model.h"

namespace ps::internal {
namespace {

class FmModel final : public Model {
 public:
  FmModel(int factors, int hash_bits) : k_(factors), hash_bits_(hash_bits) {}

  int num_outputs() const override { return 1; }

  std::vector<TableKeys> KeysFor(const Dataset& data,
                                 absl::Span<const uint64_t> rows) const override {
    std::vector<TableKeys> t(3);
    t[0].table = kLrWeights;
    t[0].keys = FeatureKeysOf(data, rows, hash_bits_);
    t[1].table = kLrBias;
    t[1].keys = {0};
    t[2].table = kFmFactors;
    t[2].keys = t[0].keys;
    return t;
  }

  double Gradient(const Dataset& data, absl::Span<const uint64_t> rows,
                  absl::Span<const float> class_weights, const std::vector<TableKeys>& params,
                  std::vector<TableKeys>* grads, uint64_t) const override {
    const KeyIndex index(params[0].keys);
    std::vector<double> gw(params[0].values.size(), 0.0), gv(params[2].values.size(), 0.0);
    std::vector<double> sum(k_);
    double gb = 0, loss = 0;
    for (uint64_t r : rows) {
      const double z = Margin(data, r, params, index, &sum);
      const double y = data.labels[r];
      const double weight = class_weights.empty() ? 1.0 : class_weights[static_cast<int>(y)];
      loss += weight * LogLoss(z, y);
      const double dz = weight * (Sigmoid(z) - y);
      gb += dz;
      for (uint64_t j = data.row_offsets[r]; j < data.row_offsets[r + 1]; ++j) {
        const uint32_t i = index(FeatureKey(data.indices[j], hash_bits_));
        const double x = data.values[j];
        gw[i] += dz * x;
        const float* v = params[2].values.data() + static_cast<size_t>(i) * k_;
        for (int f = 0; f < k_; ++f) gv[static_cast<size_t>(i) * k_ + f] += dz * x * (sum[f] - v[f] * x);
      }
    }
    *grads = params;
    for (size_t i = 0; i < gw.size(); ++i) (*grads)[0].values[i] = static_cast<float>(gw[i]);
    (*grads)[1].values[0] = static_cast<float>(gb);
    for (size_t i = 0; i < gv.size(); ++i) (*grads)[2].values[i] = static_cast<float>(gv[i]);
    return loss;
  }

  std::vector<float> Predict(const Dataset& data, absl::Span<const uint64_t> rows,
                             const std::vector<TableKeys>& params) const override {
    const KeyIndex index(params[0].keys);
    std::vector<double> sum(k_);
    std::vector<float> out;
    out.reserve(rows.size());
    for (uint64_t r : rows) out.push_back(static_cast<float>(Sigmoid(Margin(data, r, params, index, &sum))));
    return out;
  }

 private:
  // z for row r; leaves sum_j v_jf x_j in *sum.
  double Margin(const Dataset& data, uint64_t r, const std::vector<TableKeys>& params,
                const KeyIndex& index, std::vector<double>* sum) const {
    double z = params[1].values[0];
    std::fill(sum->begin(), sum->end(), 0.0);
    double squares = 0;
    for (uint64_t j = data.row_offsets[r]; j < data.row_offsets[r + 1]; ++j) {
      const uint32_t i = index(FeatureKey(data.indices[j], hash_bits_));
      const double x = data.values[j];
      z += params[0].values[i] * x;
      const float* v = params[2].values.data() + static_cast<size_t>(i) * k_;
      for (int f = 0; f < k_; ++f) {
        (*sum)[f] += v[f] * x;
        squares += static_cast<double>(v[f]) * v[f] * x * x;
      }
    }
    double pair = 0;
    for (int f = 0; f < k_; ++f) pair += (*sum)[f] * (*sum)[f];
    return z + 0.5 * (pair - squares);
  }

  const int k_;
  const int hash_bits_;
};

}  // namespace

std::unique_ptr<Model> MakeFmModel(const config::ModelSection& model) {
  return std::make_unique<FmModel>(model.fm_factors(), model.hash_bits());
}

}  // namespace ps::internal

// Linear models over sparse features: z = W^T x + b with one output
// (logistic regression, linear regression) or num_classes outputs (softmax
// regression). Weights: table kLrWeights, key = feature, dim = outputs;
// bias: table kLrBias, key 0.
#include <cmath>
#include <vector>

#include "common/tables.h"
#include "worker/model.h"

namespace ps::internal {
namespace {

enum class Loss { kLogistic, kSquared, kSoftmax };

class LinearModel final : public Model {
 public:
  LinearModel(Loss loss, int outputs, int hash_bits)
      : loss_(loss), outputs_(outputs), hash_bits_(hash_bits) {}

  int num_outputs() const override { return outputs_; }

  std::vector<TableKeys> KeysFor(const Dataset& data,
                                 absl::Span<const uint64_t> rows) const override {
    std::vector<TableKeys> t(2);
    t[0].table = kLrWeights;
    t[0].keys = FeatureKeysOf(data, rows, hash_bits_);
    t[1].table = kLrBias;
    t[1].keys = {0};
    return t;
  }

  double Gradient(const Dataset& data, absl::Span<const uint64_t> rows,
                  absl::Span<const float> class_weights, const std::vector<TableKeys>& params,
                  std::vector<TableKeys>* grads, uint64_t) const override {
    const KeyIndex index(params[0].keys);
    std::vector<double> gw(params[0].values.size(), 0.0), gb(outputs_, 0.0), z(outputs_),
        dz(outputs_);
    double loss = 0;
    for (uint64_t r : rows) {
      Forward(data, r, params, index, &z);
      const double y = data.labels[r];
      const double weight =
          class_weights.empty() || loss_ == Loss::kSquared ? 1.0 : class_weights[static_cast<int>(y)];
      loss += weight * LossAndDelta(z, y, &dz);
      for (int c = 0; c < outputs_; ++c) dz[c] *= weight;
      for (uint64_t j = data.row_offsets[r]; j < data.row_offsets[r + 1]; ++j) {
        const size_t at = static_cast<size_t>(index(FeatureKey(data.indices[j], hash_bits_))) * outputs_;
        for (int c = 0; c < outputs_; ++c) gw[at + c] += dz[c] * data.values[j];
      }
      for (int c = 0; c < outputs_; ++c) gb[c] += dz[c];
    }
    *grads = params;
    for (size_t i = 0; i < gw.size(); ++i) (*grads)[0].values[i] = static_cast<float>(gw[i]);
    for (int c = 0; c < outputs_; ++c) (*grads)[1].values[c] = static_cast<float>(gb[c]);
    return loss;
  }

  std::vector<float> Predict(const Dataset& data, absl::Span<const uint64_t> rows,
                             const std::vector<TableKeys>& params) const override {
    const KeyIndex index(params[0].keys);
    std::vector<float> out;
    out.reserve(rows.size() * outputs_);
    std::vector<double> z(outputs_);
    for (uint64_t r : rows) {
      Forward(data, r, params, index, &z);
      switch (loss_) {
        case Loss::kLogistic:
          out.push_back(static_cast<float>(Sigmoid(z[0])));
          break;
        case Loss::kSquared:
          out.push_back(static_cast<float>(z[0]));
          break;
        case Loss::kSoftmax: {
          Softmax(&z);
          for (double p : z) out.push_back(static_cast<float>(p));
          break;
        }
      }
    }
    return out;
  }

 private:
  void Forward(const Dataset& data, uint64_t r, const std::vector<TableKeys>& params,
               const KeyIndex& index, std::vector<double>* z) const {
    for (int c = 0; c < outputs_; ++c) (*z)[c] = params[1].values[c];
    for (uint64_t j = data.row_offsets[r]; j < data.row_offsets[r + 1]; ++j) {
      const size_t at = static_cast<size_t>(index(FeatureKey(data.indices[j], hash_bits_))) * outputs_;
      for (int c = 0; c < outputs_; ++c) (*z)[c] += params[0].values[at + c] * data.values[j];
    }
  }

  static void Softmax(std::vector<double>* z) {
    double max = (*z)[0];
    for (double v : *z) max = std::max(max, v);
    double sum = 0;
    for (double& v : *z) sum += (v = std::exp(v - max));
    for (double& v : *z) v /= sum;
  }

  // The example's loss; dz = dLoss/dz.
  double LossAndDelta(const std::vector<double>& z, double y, std::vector<double>* dz) const {
    switch (loss_) {
      case Loss::kLogistic:
        (*dz)[0] = Sigmoid(z[0]) - y;
        return LogLoss(z[0], y);
      case Loss::kSquared: {
        const double e = z[0] - y;
        (*dz)[0] = e;
        return 0.5 * e * e;
      }
      case Loss::kSoftmax: {
        std::vector<double> p = z;
        Softmax(&p);
        const int label = static_cast<int>(y);
        for (int c = 0; c < outputs_; ++c) (*dz)[c] = p[c] - (c == label ? 1.0 : 0.0);
        return -std::log(std::max(p[label], 1e-15));
      }
    }
    return 0;
  }

  const Loss loss_;
  const int outputs_;
  const int hash_bits_;
};

}  // namespace

std::unique_ptr<Model> MakeLinearModel(const config::ModelSection& model) {
  switch (model.type()) {
    case config::SOFTMAX_REGRESSION:
      return std::make_unique<LinearModel>(Loss::kSoftmax, model.num_classes(), model.hash_bits());
    case config::LINEAR_REGRESSION:
      return std::make_unique<LinearModel>(Loss::kSquared, 1, model.hash_bits());
    default:
      return std::make_unique<LinearModel>(Loss::kLogistic, 1, model.hash_bits());
  }
}

}  // namespace ps::internal

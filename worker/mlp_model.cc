// A multi-layer perceptron with a softmax output: hidden layers of
// model.hidden_units with ReLU or tanh and dropout, then num_classes logits.
// Layer l's weights are table MlpWeights(l), one key per input unit (the
// first layer's inputs are the sparse features, so a batch pulls only the
// rows of the features it has) with dim = output units; its bias is
// MlpBias(l), key 0. Forward and backward passes use Eigen.
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common/partitioning.h"
#include "common/tables.h"
#include "worker/model.h"

namespace ps::internal {
namespace {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMatMap = Eigen::Map<const Mat>;
using RowVec = Eigen::Map<const Eigen::RowVectorXf>;

class MlpModel final : public Model {
 public:
  explicit MlpModel(const config::ModelSection& model)
      : hash_bits_(model.hash_bits()),
        relu_(model.activation() != config::TANH),
        dropout_(model.dropout()) {
    units_.assign(model.hidden_units().begin(), model.hidden_units().end());
    units_.push_back(model.num_classes());
  }

  int num_outputs() const override { return units_.back(); }

  std::vector<TableKeys> KeysFor(const Dataset& data,
                                 absl::Span<const uint64_t> rows) const override {
    std::vector<TableKeys> t(2 * units_.size());
    for (size_t l = 0; l < units_.size(); ++l) {
      t[2 * l].table = MlpWeights(l);
      if (l == 0) {
        t[0].keys = FeatureKeysOf(data, rows, hash_bits_);
      } else {
        t[2 * l].keys.resize(units_[l - 1]);
        std::iota(t[2 * l].keys.begin(), t[2 * l].keys.end(), 0);
      }
      t[2 * l + 1].table = MlpBias(l);
      t[2 * l + 1].keys = {0};
    }
    return t;
  }

  double Gradient(const Dataset& data, absl::Span<const uint64_t> rows,
                  absl::Span<const float> class_weights, const std::vector<TableKeys>& params,
                  std::vector<TableKeys>* grads, uint64_t seed) const override {
    Pass pass = Forward(data, rows, params, /*train=*/true, seed);
    const int B = static_cast<int>(rows.size());
    const size_t L = units_.size();
    Mat& p = pass.out;  // probabilities, B x C
    double loss = 0;
    Mat g = p;  // dLoss/dlogits
    for (int i = 0; i < B; ++i) {
      const int y = static_cast<int>(data.labels[rows[i]]);
      const float w = class_weights.empty() ? 1.0f : class_weights[y];
      loss -= w * std::log(std::max(p(i, y), 1e-15f));
      g(i, y) -= 1.0f;
      g.row(i) *= w;
    }
    *grads = params;
    for (size_t l = L; l-- > 0;) {
      // g is dLoss/dZ_l (B x out_l).
      // Summed into an aligned vector, then copied: Eigen sums the columns
      // of an unaligned destination's head one way and the rest another, so
      // summing straight into the std::vector made the bias gradient depend
      // on its address (BSP runs differed in the last bits).
      const Eigen::RowVectorXf bias_grad = g.colwise().sum();
      std::copy(bias_grad.data(), bias_grad.data() + units_[l], (*grads)[2 * l + 1].values.data());
      if (l > 0) {
        Eigen::Map<Mat>((*grads)[2 * l].values.data(), units_[l - 1], units_[l]) =
            pass.h[l].transpose() * g;
        ConstMatMap w(params[2 * l].values.data(), units_[l - 1], units_[l]);
        Mat dh = g * w.transpose();
        // Through dropout and the activation of layer l-1's output.
        dh = dh.cwiseProduct(pass.mask[l]);
        if (relu_) {
          dh = dh.cwiseProduct((pass.z[l - 1].array() > 0).cast<float>().matrix());
        } else {
          dh = dh.cwiseProduct((1.0f - pass.a[l - 1].array().square()).matrix());
        }
        g = std::move(dh);
      } else {
        std::vector<float>& gw = (*grads)[0].values;
        const int out = units_[0];
        if (pass.x.size() > 0) {
          // Dense first layer: dW = X^T g.
          Eigen::Map<Mat>(gw.data(), pass.x.cols(), out).noalias() = pass.x.transpose() * g;
          continue;
        }
        // Sparse first layer: each present feature's row gets x * g_i.
        const KeyIndex index(params[0].keys);
        std::fill(gw.begin(), gw.end(), 0.0f);
        for (int i = 0; i < B; ++i) {
          const uint64_t r = rows[i];
          for (uint64_t j = data.row_offsets[r]; j < data.row_offsets[r + 1]; ++j) {
            float* row = gw.data() + static_cast<size_t>(index(FeatureKey(data.indices[j], hash_bits_))) * out;
            Eigen::Map<Eigen::RowVectorXf>(row, out) += data.values[j] * g.row(i);
          }
        }
      }
    }
    return loss;
  }

  std::vector<float> Predict(const Dataset& data, absl::Span<const uint64_t> rows,
                             const std::vector<TableKeys>& params) const override {
    Pass pass = Forward(data, rows, params, /*train=*/false, 0);
    return std::vector<float>(pass.out.data(), pass.out.data() + pass.out.size());
  }

 private:
  struct Pass {
    std::vector<Mat> z;     // z[l]: pre-activation of layer l (B x out_l)
    std::vector<Mat> a;     // a[l]: activation of hidden layer l (before dropout)
    std::vector<Mat> h;     // h[l]: input of layer l (l >= 1): a[l-1] after dropout
    std::vector<Mat> mask;  // mask[l]: dropout scale applied to h[l] (0 or 1/(1-p))
    Mat out;                // softmax probabilities
    Mat x;                  // dense first-layer input (B x keys), if used
  };
  // The first layer runs as a dense product once at least 1 in kDenseFill
  // of the batch's (row, key) cells is nonzero.
  static constexpr uint64_t kDenseFill = 8;

  Pass Forward(const Dataset& data, absl::Span<const uint64_t> rows,
               const std::vector<TableKeys>& params, bool train, uint64_t seed) const {
    const int B = static_cast<int>(rows.size());
    const size_t L = units_.size();
    Pass pass;
    pass.z.resize(L);
    pass.a.resize(L);
    pass.h.resize(L);
    pass.mask.resize(L);
    // Layer 0 from the features: one matrix product over the batch's keys
    // when the batch fills enough of them (images), else row by row over
    // each row's nonzeros (sparse text or click data).
    const KeyIndex index(params[0].keys);
    const int keys = static_cast<int>(params[0].keys.size());
    const int out0 = units_[0];
    uint64_t nonzeros = 0;
    for (uint64_t r : rows) nonzeros += data.row_offsets[r + 1] - data.row_offsets[r];
    Mat z0 = RowVec(params[1].values.data(), out0).replicate(B, 1);
    if (nonzeros * kDenseFill >= static_cast<uint64_t>(B) * keys) {
      pass.x = Mat::Zero(B, keys);
      for (int i = 0; i < B; ++i) {
        const uint64_t r = rows[i];
        for (uint64_t j = data.row_offsets[r]; j < data.row_offsets[r + 1]; ++j) {
          pass.x(i, index(FeatureKey(data.indices[j], hash_bits_))) += data.values[j];
        }
      }
      z0.noalias() += pass.x * ConstMatMap(params[0].values.data(), keys, out0);
    } else {
      for (int i = 0; i < B; ++i) {
        const uint64_t r = rows[i];
        for (uint64_t j = data.row_offsets[r]; j < data.row_offsets[r + 1]; ++j) {
          const float* w =
              params[0].values.data() +
              static_cast<size_t>(index(FeatureKey(data.indices[j], hash_bits_))) * out0;
          z0.row(i) += data.values[j] * RowVec(w, out0);
        }
      }
    }
    pass.z[0] = std::move(z0);
    for (size_t l = 1; l < L; ++l) {
      // Hidden activation of layer l-1, dropout, then layer l.
      Mat a = relu_ ? Mat(pass.z[l - 1].cwiseMax(0.0f)) : Mat(pass.z[l - 1].array().tanh().matrix());
      Mat mask = Mat::Ones(a.rows(), a.cols());
      if (train && dropout_ > 0) {
        SplitMix64 rng(Mix64(seed ^ (l * 0x9e3779b97f4a7c15ULL)));
        const float keep = 1.0f - dropout_;
        for (int i = 0; i < mask.size(); ++i) {
          mask.data()[i] = rng.NextDouble() < keep ? 1.0f / keep : 0.0f;
        }
      }
      pass.h[l] = a.cwiseProduct(mask);
      pass.a[l - 1] = std::move(a);
      pass.mask[l] = std::move(mask);
      ConstMatMap w(params[2 * l].values.data(), units_[l - 1], units_[l]);
      pass.z[l] = pass.h[l] * w;
      pass.z[l].rowwise() += RowVec(params[2 * l + 1].values.data(), units_[l]);
    }
    // Softmax over the last layer's logits.
    Mat& logits = pass.z[L - 1];
    pass.out = logits;
    for (int i = 0; i < B; ++i) {
      auto row = pass.out.row(i);
      row.array() -= row.maxCoeff();
      row = row.array().exp().matrix();
      row /= row.sum();
    }
    return pass;
  }

  const int hash_bits_;
  const bool relu_;
  const float dropout_;
  std::vector<int> units_;  // output units per layer; the last is num_classes
};

}  // namespace

std::unique_ptr<Model> MakeMlpModel(const config::ModelSection& model) {
  return std::make_unique<MlpModel>(model);
}

}  // namespace ps::internal

// Models, as the worker sees them: a model turns a batch into the parameter
// keys it needs and, given their values (pulled from the servers), into
// gradient sums and the batch's loss, or into predictions. Parameters live on
// the servers only (tables of common/tables.h); a Model holds nothing but its
// hyper-parameters, so it is immutable and thread-safe.
#ifndef PS_WORKER_MODEL_H_
#define PS_WORKER_MODEL_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/types/span.h"
#include "proto/job_config.pb.h"
#include "worker/kv_client.h"
#include "worker/libsvm_reader.h"

namespace ps {

class Model {
 public:
  virtual ~Model() = default;

  // Values Predict gives per example: 1 (P(y=1), or the regression value) or
  // num_classes probabilities.
  virtual int num_outputs() const = 0;

  // The tables and keys (sorted, unique) a batch of `rows` needs.
  virtual std::vector<TableKeys> KeysFor(const Dataset& data,
                                         absl::Span<const uint64_t> rows) const = 0;

  // Fills `grads` (the same tables and keys as `params`) with the gradient
  // sums of the loss over `rows` and returns the summed loss. Each example
  // counts class_weights[label] times when class_weights is not empty.
  // `seed` drives dropout (the same seed gives the same masks).
  virtual double Gradient(const Dataset& data, absl::Span<const uint64_t> rows,
                          absl::Span<const float> class_weights,
                          const std::vector<TableKeys>& params, std::vector<TableKeys>* grads,
                          uint64_t seed) const = 0;

  // num_outputs() values per row, row after row.
  virtual std::vector<float> Predict(const Dataset& data, absl::Span<const uint64_t> rows,
                                     const std::vector<TableKeys>& params) const = 0;
};

std::unique_ptr<Model> MakeModel(const config::ModelSection& model);

namespace internal {

// Key of a feature index (its hash with hash_bits > 0).
uint64_t FeatureKey(uint64_t feature, int hash_bits);
// The sorted unique keys of the features of `rows`.
std::vector<uint64_t> FeatureKeysOf(const Dataset& data, absl::Span<const uint64_t> rows,
                                    int hash_bits);
// Position of each key in a sorted key list: a direct table when the keys
// are small numbers (feature indices of a dense-ish data set), else a binary
// search.
class KeyIndex {
 public:
  explicit KeyIndex(const std::vector<uint64_t>& sorted_keys);
  uint32_t operator()(uint64_t key) const {
    return key < direct_.size() ? direct_[key] : Search(key);
  }

 private:
  uint32_t Search(uint64_t key) const;

  const std::vector<uint64_t>& keys_;
  std::vector<uint32_t> direct_;  // key -> position, for keys <= keys_.back()
};

// The concrete models (linear_model.cc, fm_model.cc, mlp_model.cc).
std::unique_ptr<Model> MakeLinearModel(const config::ModelSection& model);
std::unique_ptr<Model> MakeFmModel(const config::ModelSection& model);
std::unique_ptr<Model> MakeMlpModel(const config::ModelSection& model);

// Numerically stable pieces shared by the models.
double Sigmoid(double z);
double LogLoss(double z, double y);  // -log p(y | margin z) for y in {0, 1}

}  // namespace internal
}  // namespace ps

#endif  // PS_WORKER_MODEL_H_

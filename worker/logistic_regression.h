// Sparse binary logistic regression: p(y=1|x) = sigmoid(w.x + b). Weights
// live on the servers in table kLrWeights (key = feature index, or its hash
// when model.hash_bits > 0), the bias in kLrBias (key 0). This class turns a
// batch into the keys it needs and, given their values, into gradient sums.
// Stateless after construction: thread-safe.
#ifndef PS_WORKER_LOGISTIC_REGRESSION_H_
#define PS_WORKER_LOGISTIC_REGRESSION_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "proto/job_config.pb.h"
#include "worker/kv_client.h"
#include "worker/libsvm_reader.h"

namespace ps {

class LogisticRegression {
 public:
  explicit LogisticRegression(const config::ModelSection& model);

  // The key of a feature index as written in the data.
  uint64_t KeyOf(uint64_t feature) const;

  // The tables a batch of `rows` needs: sorted unique weight keys and the bias.
  std::vector<TableKeys> KeysFor(const Dataset& data, absl::Span<const uint64_t> rows) const;

  // Given `params` (KeysFor's tables with pulled values), fills `grads` with
  // the gradient sums of the log-loss over `rows` (same keys as params) and
  // returns the summed log-loss.
  double Gradient(const Dataset& data, absl::Span<const uint64_t> rows,
                  const std::vector<TableKeys>& params, std::vector<TableKeys>* grads) const;

  // P(y=1) for each of `rows`.
  std::vector<float> Predict(const Dataset& data, absl::Span<const uint64_t> rows,
                             const std::vector<TableKeys>& params) const;

 private:
  const int hash_bits_;
};

}  // namespace ps

#endif  // PS_WORKER_LOGISTIC_REGRESSION_H_

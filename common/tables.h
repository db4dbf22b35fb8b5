// The parameter tables of a job, derived from its model config. Every role
// derives the same list from the same config, so a table id means the same
// table everywhere. Pure; thread-safe.
#ifndef PS_COMMON_TABLES_H_
#define PS_COMMON_TABLES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "proto/job_config.pb.h"

namespace ps {

// Keys of one table (for pulls) and, for pushes, their gradient sums.
struct TableKeys {
  uint32_t table = 0;
  std::vector<uint64_t> keys;
  std::vector<float> values;  // pushes: keys.size() * dim; pulls: filled in
};

struct TableSpec {
  uint32_t id = 0;
  std::string name;
  int dim = 1;                       // floats per key
  uint64_t num_keys = 0;             // keys must be < num_keys; 0: any uint64 key
  config::InitType init = config::ZEROS;
  float init_value = 0;
  float init_scale = 0;
  int fan_in = 1, fan_out = 1;       // for XAVIER/HE
  config::OptimizerSection optimizer;
  float l2 = 0;                      // lambda of lambda/2 * ||w||^2, applied on the servers
  float l1 = 0;                      // lambda of lambda * |w| (proximal step; FTRL's own L1)
  // A statistics table: pushes accumulate instead of training. dim 6 holds,
  // per feature, (present count, missing count, sum, sum of squares, min,
  // max); dim 1 holds a sum. Accumulated in float: counts are exact up to
  // 2^24 per key, sums to float precision.
  bool statistics = false;
};

// Table ids of the logistic/linear/softmax regression and FM models.
inline constexpr uint32_t kLrWeights = 0;
inline constexpr uint32_t kLrBias = 1;
inline constexpr uint32_t kFmFactors = 2;

// Table ids of the BENCHMARK model.
inline constexpr uint32_t kBenchDense4K = 0;
inline constexpr uint32_t kBenchDense1M = 1;
inline constexpr uint32_t kBenchDense16M = 2;
inline constexpr uint32_t kBenchSparse = 3;  // dim 8
inline constexpr uint32_t kBenchDense4M = 4;
inline constexpr uint32_t kBenchSparse1 = 5;  // dim 1

// MLP layer l: weights (key = input unit, dim = output units) and bias (key 0).
inline uint32_t MlpWeights(int layer) { return 2 * layer; }
inline uint32_t MlpBias(int layer) { return 2 * layer + 1; }

std::vector<TableSpec> TablesForJob(const config::JobConfig& job);

// The statistics tables every job has after its model's tables.
uint32_t FeatureStatsTable(const config::JobConfig& job);  // dim 6, key = feature index
uint32_t ClassCountsTable(const config::JobConfig& job);   // dim 1, key = class id

// Labels the model predicts: 1 score (binary, regression) or num_classes.
enum class Task { kBinary, kMulticlass, kRegression };
Task TaskOf(const config::ModelSection& model);
int NumOutputs(const config::ModelSection& model);

}  // namespace ps

#endif  // PS_COMMON_TABLES_H_

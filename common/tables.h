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

struct TableSpec {
  uint32_t id = 0;
  std::string name;
  int dim = 1;                       // floats per key
  uint64_t num_keys = 0;             // keys must be < num_keys; 0: any uint64 key
  config::InitType init = config::ZEROS;
  float init_value = 0;
  float init_scale = 0;
  config::OptimizerSection optimizer;
  float l2 = 0;                      // lambda of lambda/2 * ||w||^2, applied on the servers
};

// Table ids of the logistic regression model.
inline constexpr uint32_t kLrWeights = 0;
inline constexpr uint32_t kLrBias = 1;

// Table ids of the BENCHMARK model.
inline constexpr uint32_t kBenchDense4K = 0;
inline constexpr uint32_t kBenchDense1M = 1;
inline constexpr uint32_t kBenchDense16M = 2;
inline constexpr uint32_t kBenchSparse = 3;

std::vector<TableSpec> TablesForJob(const config::JobConfig& job);

}  // namespace ps

#endif  // PS_COMMON_TABLES_H_

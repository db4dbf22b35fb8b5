// Data preparation on the workers, with statistics computed over the whole
// training set through the servers: every worker adds its share's partial
// sums to the statistics tables (common/tables.h), waits at a barrier, pulls
// the totals, and transforms its data with them. So every worker scales with
// the same numbers, and they are those of the whole training set.
// Functions are pure; thread-safe.
#ifndef PS_WORKER_PREPROCESS_H_
#define PS_WORKER_PREPROCESS_H_

#include <cstdint>
#include <map>
#include <vector>

#include "absl/types/span.h"
#include "proto/job_config.pb.h"
#include "worker/kv_client.h"
#include "worker/libsvm_reader.h"

namespace ps {

// Splits [0, n) into training and validation rows, seeded (the same on every
// worker). Both lists ascend.
void SplitValidation(uint64_t n, double fraction, uint64_t seed, std::vector<uint64_t>* train,
                     std::vector<uint64_t>* validation);

// This worker's partial statistics over `rows`: pushes for the feature-stats
// table (one key beyond any feature holds the row count) and, for classification, the
// class-counts table. Missing values are NaN; absent sparse entries are zeros.
std::vector<TableKeys> PartialStatistics(const Dataset& data, absl::Span<const uint64_t> rows,
                                         uint32_t stats_table, uint32_t class_table,
                                         int num_classes);

// Whole-training-set statistics of one feature.
struct FeatureStats {
  double mean = 0, stddev = 0, min = 0, max = 0;
  uint64_t count = 0;  // values that are not missing
};
struct DatasetStats {
  uint64_t rows = 0;
  std::map<uint64_t, FeatureStats> features;  // by feature index
  std::vector<double> class_counts;
};

// The keys to pull from the statistics tables: the row count's and every
// feature of `datasets`.
std::vector<TableKeys> StatisticsKeys(const std::vector<const Dataset*>& datasets,
                                      uint32_t stats_table, uint32_t class_table,
                                      int num_classes);
// Totals from the pulled statistics tables.
DatasetStats ReduceStatistics(const std::vector<TableKeys>& pulled);

// Fills missing values and scales features in place, with `stats`. Standard
// scaling (and min-max scaling where a feature's min is not 0) moves zeros,
// so the data becomes dense over the features in `stats`.
void FillAndScale(const config::DataSection& options, const DatasetStats& stats, Dataset* data);

// BALANCED: n / (classes * n_c) per class; empty for NO_CLASS_WEIGHT.
std::vector<float> ClassWeights(const config::DataSection& options, const DatasetStats& stats);

// An epoch's training rows with over/under-sampling applied (seeded by
// seed and epoch; the same on every worker). Returns `rows` as they are for
// NO_SAMPLING.
std::vector<uint64_t> Resample(const config::DataSection& options, const Dataset& data,
                               const std::vector<uint64_t>& rows, int num_classes, uint64_t seed,
                               int epoch);

// True if the job needs the statistics pass.
bool NeedsStatistics(const config::JobConfig& job);

}  // namespace ps

#endif  // PS_WORKER_PREPROCESS_H_

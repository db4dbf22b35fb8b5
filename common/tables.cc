#include "common/tables.h"

#include <iterator>

#include "absl/strings/str_cat.h"

namespace ps {
namespace {

std::vector<TableSpec> ModelTables(const config::JobConfig& job) {
  const config::ModelSection& model = job.model();
  std::vector<TableSpec> tables;
  TableSpec base;
  base.optimizer = job.optimizer();
  base.init = model.init();
  base.init_value = model.init_value();
  base.init_scale = model.init_scale();
  base.l2 = model.l2();
  base.l1 = model.l1();
  uint64_t feature_keys = 0;  // 0: any key
  if (model.hash_bits() > 0) {
    feature_keys = uint64_t{1} << model.hash_bits();
  } else if (model.num_features() > 0) {
    feature_keys = model.num_features() + 1;  // indices are 1-based
  }
  auto bias_of = [&](uint32_t id, const std::string& name, int dim) {
    TableSpec b = base;
    b.id = id;
    b.name = name;
    b.dim = dim;
    b.num_keys = 1;
    b.init = config::ZEROS;
    b.l2 = 0;  // biases are not penalized
    b.l1 = 0;
    return b;
  };
  switch (model.type()) {
    case config::BENCHMARK: {
      const std::pair<const char*, int> dense[] = {{"dense_4k", 1024},     {"dense_1m", 262144},
                                                   {"dense_16m", 4194304}, {"sparse", 8},
                                                   {"dense_4m", 1048576},  {"sparse_1", 1}};
      for (uint32_t id = 0; id < std::size(dense); ++id) {
        TableSpec t = base;
        t.id = id;
        t.name = dense[id].first;
        t.dim = dense[id].second;
        t.init = config::ZEROS;
        t.l1 = t.l2 = 0;
        tables.push_back(t);
      }
      break;
    }
    case config::MLP: {
      std::vector<int> units(model.hidden_units().begin(), model.hidden_units().end());
      units.push_back(model.num_classes());
      int fan_in = static_cast<int>(model.num_features());
      for (size_t l = 0; l < units.size(); ++l) {
        TableSpec w = base;
        w.id = MlpWeights(l);
        w.name = absl::StrCat("layer", l, "_weights");
        w.dim = units[l];
        w.num_keys = l == 0 ? feature_keys : static_cast<uint64_t>(fan_in);
        w.init = model.mlp_init();
        w.fan_in = std::max(1, fan_in);
        w.fan_out = units[l];
        tables.push_back(w);
        tables.push_back(bias_of(MlpBias(l), absl::StrCat("layer", l, "_bias"), units[l]));
        fan_in = units[l];
      }
      break;
    }
    default: {
      const int outputs = model.type() == config::SOFTMAX_REGRESSION ? model.num_classes() : 1;
      TableSpec w = base;
      w.id = kLrWeights;
      w.name = "weights";
      w.dim = outputs;
      w.num_keys = feature_keys;
      tables.push_back(w);
      tables.push_back(bias_of(kLrBias, "bias", outputs));
      if (model.type() == config::FACTORIZATION_MACHINE) {
        TableSpec v = base;
        v.id = kFmFactors;
        v.name = "factors";
        v.dim = model.fm_factors();
        v.num_keys = feature_keys;
        v.init = config::NORMAL;  // factors must not start at zero (their gradient would stay 0)
        v.init_scale = model.init_scale() > 0 ? model.init_scale() : 0.01f;
        if (model.fm_factor_l2() >= 0) v.l2 = model.fm_factor_l2();
        tables.push_back(v);
      }
      break;
    }
  }
  return tables;
}

}  // namespace

std::vector<TableSpec> TablesForJob(const config::JobConfig& job) {
  std::vector<TableSpec> tables = ModelTables(job);
  TableSpec stats;
  stats.id = static_cast<uint32_t>(tables.size());
  stats.name = "feature_stats";
  stats.dim = 6;
  stats.statistics = true;
  tables.push_back(stats);
  TableSpec classes = stats;
  classes.id = stats.id + 1;
  classes.name = "class_counts";
  classes.dim = 1;
  tables.push_back(classes);
  return tables;
}

uint32_t FeatureStatsTable(const config::JobConfig& job) {
  return static_cast<uint32_t>(TablesForJob(job).size()) - 2;
}

uint32_t ClassCountsTable(const config::JobConfig& job) {
  return static_cast<uint32_t>(TablesForJob(job).size()) - 1;
}

Task TaskOf(const config::ModelSection& model) {
  switch (model.type()) {
    case config::SOFTMAX_REGRESSION:
    case config::MLP:
      return Task::kMulticlass;
    case config::LINEAR_REGRESSION:
      return Task::kRegression;
    default:
      return Task::kBinary;
  }
}

int NumOutputs(const config::ModelSection& model) {
  return TaskOf(model) == Task::kMulticlass ? model.num_classes() : 1;
}

}  // namespace ps

#include "common/tables.h"

namespace ps {

std::vector<TableSpec> TablesForJob(const config::JobConfig& job) {
  const config::ModelSection& model = job.model();
  std::vector<TableSpec> tables;
  switch (model.type()) {
    case config::BENCHMARK: {
      const std::pair<const char*, int> dense[] = {
          {"dense_4k", 1024}, {"dense_1m", 262144}, {"dense_16m", 4194304}, {"sparse", 8}};
      for (uint32_t id = 0; id < 4; ++id) {
        TableSpec t;
        t.id = id;
        t.name = dense[id].first;
        t.dim = dense[id].second;
        t.optimizer = job.optimizer();
        tables.push_back(t);
      }
      break;
    }
    case config::LOGISTIC_REGRESSION:
    default: {
      TableSpec w;
      w.id = kLrWeights;
      w.name = "weights";
      w.dim = 1;
      if (model.hash_bits() > 0) {
        w.num_keys = uint64_t{1} << model.hash_bits();
      } else if (model.num_features() > 0) {
        w.num_keys = model.num_features() + 1;  // LIBSVM indices are 1-based
      }
      w.init = model.init();
      w.init_value = model.init_value();
      w.init_scale = model.init_scale();
      w.optimizer = job.optimizer();
      w.l2 = model.l2();
      tables.push_back(w);
      TableSpec b = w;
      b.id = kLrBias;
      b.name = "bias";
      b.num_keys = 1;
      b.init = config::ZEROS;
      b.l2 = 0;  // the bias is not penalized
      tables.push_back(b);
      break;
    }
  }
  return tables;
}

}  // namespace ps

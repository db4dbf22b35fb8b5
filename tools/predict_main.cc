// ps_predict: applies a saved model to a data file and writes one prediction
// per line: P(label = 1) for binary models, the value for regression, the
// num_classes probabilities (space-separated) for multiclass models. The
// job's config is read from the model directory (job.yaml, written with the
// model), so the same preprocessing (missing values, scaling with the
// training set's statistics) is applied.
#include <fstream>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/config.h"
#include "common/model_io.h"
#include "common/sealed_file.h"
#include "common/tables.h"
#include "worker/data_source.h"
#include "worker/model.h"
#include "worker/preprocess.h"

ABSL_FLAG(std::string, model, "", "saved model directory (a job's output_dir/model), required");
ABSL_FLAG(std::string, data, "", "data file in the job's format, required");
ABSL_FLAG(std::string, labels, "", "IDX only: the labels file that goes with --data");
ABSL_FLAG(std::string, output, "-", "where to write the predictions; - for standard output");

namespace ps {
namespace {

int Fatal(const std::string& message) {
  std::cerr << "ps_predict: error: " << message << std::endl;
  return 1;
}

// Values of `keys` of table `id` from the loaded model; keys the model never
// saw (features absent from training) get zeros.
TableKeys Lookup(const LoadedModel& model, uint32_t id, const std::vector<uint64_t>& keys) {
  TableKeys t;
  t.table = id;
  t.keys = keys;
  const LoadedModel::Table& table = model.tables.at(id);
  t.values.assign(keys.size() * table.dim, 0.0f);
  for (size_t i = 0; i < keys.size(); ++i) {
    auto it = table.rows.find(keys[i]);
    if (it != table.rows.end()) std::copy(it->second.begin(), it->second.end(), t.values.begin() + i * table.dim);
  }
  return t;
}

int Run() {
  const std::string dir = absl::GetFlag(FLAGS_model);
  const std::string path = absl::GetFlag(FLAGS_data);
  if (dir.empty() || path.empty()) return Fatal("--model and --data are required");
  auto job = LoadJobConfig(dir + "/job.yaml");
  if (!job.ok()) return Fatal(std::string(job.status().message()));
  auto model = ReadModel(dir);
  if (!model.ok()) return Fatal(std::string(model.status().message()));
  auto data = LoadDataFile(*job, path, absl::GetFlag(FLAGS_labels));
  if (!data.ok()) return Fatal(std::string(data.status().message()));
  const std::vector<TableSpec> specs = TablesForJob(*job);
  for (const TableSpec& spec : specs) {
    if (model->tables.count(spec.id) == 0) {
      return Fatal(absl::StrCat(dir, ": the model has no table '", spec.name, "' that its job.yaml needs"));
    }
  }
  if (NeedsStatistics(*job)) {
    // The training set's statistics were saved with the model.
    const uint32_t stats_table = FeatureStatsTable(*job);
    std::vector<uint64_t> keys;
    for (const auto& [key, values] : model->tables.at(stats_table).rows) keys.push_back(key);
    const DatasetStats stats = ReduceStatistics({Lookup(*model, stats_table, keys)});
    FillAndScale(job->data(), stats, &*data);
  }
  const std::unique_ptr<Model> m = MakeModel(job->model());
  std::ofstream file;
  const std::string output = absl::GetFlag(FLAGS_output);
  if (output != "-") {
    file.open(output);
    if (!file) return Fatal(absl::StrCat("cannot write '", output, "'"));
  }
  std::ostream& out = output == "-" ? std::cout : file;
  constexpr size_t kSlice = 4096;
  std::vector<uint64_t> rows;
  const int outputs = m->num_outputs();
  for (size_t begin = 0; begin < data->rows(); begin += kSlice) {
    rows.clear();
    for (size_t r = begin; r < std::min(data->rows(), begin + kSlice); ++r) rows.push_back(r);
    std::vector<TableKeys> params = m->KeysFor(*data, rows);
    for (TableKeys& t : params) t = Lookup(*model, t.table, t.keys);
    const std::vector<float> predictions = m->Predict(*data, rows, params);
    for (size_t i = 0; i < rows.size(); ++i) {
      for (int c = 0; c < outputs; ++c) {
        out << (c ? " " : "") << absl::StrFormat("%.6g", predictions[i * outputs + c]);
      }
      out << "\n";
    }
  }
  out.flush();
  if (!out) return Fatal(absl::StrCat("writing '", output, "' failed"));
  return 0;
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "ps_predict --model OUTPUT_DIR/model --data FILE [--labels FILE] [--output FILE]");
  absl::ParseCommandLine(argc, argv);
  if (absl::Status s = ps::SetEncryptionKeyFromFlag(); !s.ok()) {
    std::cerr << "ps_predict: error: " << s.message() << std::endl;
    return 1;
  }
  return ps::Run();
}

// ps_model: reads a saved model directory (see common/model_io.h) and prints
// it as text, one line per key: "table key v0 v1 ...".
#include <iostream>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/model_io.h"
#include "common/sealed_file.h"

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("ps_model [--encryption_key_file=F] dump MODEL_DIR");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 3 || std::string(args[1]) != "dump") {
    std::cerr << "usage: ps_model dump MODEL_DIR" << std::endl;
    return 2;
  }
  if (absl::Status s = ps::SetEncryptionKeyFromFlag(); !s.ok()) {
    std::cerr << "ps_model: error: " << s.message() << std::endl;
    return 1;
  }
  auto model = ps::ReadModel(args[2]);
  if (!model.ok()) {
    std::cerr << "ps_model: error: " << model.status().message() << std::endl;
    return 1;
  }
  std::cout << ps::DumpModelText(*model);
  return 0;
}

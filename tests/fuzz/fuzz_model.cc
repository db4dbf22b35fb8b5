// libFuzzer target: the saved-model readers: the sealed-file check and the
// part-file parser behind it, for a model of two tables.
#include <string>

#include "common/model_io.h"
#include "common/sealed_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  ps::LoadedModel model;
  model.num_partitions = 4;
  model.tables[0].id = 0;
  model.tables[0].name = "w";
  model.tables[0].dim = 1;
  model.tables[1].id = 1;
  model.tables[1].name = "v";
  model.tables[1].dim = 3;
  // As it is on disk (checksummed), and as the parser sees an unsealed part.
  auto unsealed = ps::Unseal("fuzz/part-00000.bin", bytes);
  if (unsealed.ok()) (void)ps::ParsePartFile("fuzz/part-00000.bin", 0, *unsealed, &model);
  (void)ps::ParsePartFile("fuzz/part-00000.bin", 0, bytes, &model);
  return 0;
}

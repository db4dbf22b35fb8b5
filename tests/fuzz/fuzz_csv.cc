// libFuzzer target: the CSV reader (quoting, missing cells, labels).
#include <string_view>

#include "worker/csv_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  ps::CsvOptions options;
  options.label_column = "y";
  (void)ps::ParseCsv(text, "fuzz.csv", options);
  options.binary_labels = false;
  options.num_classes = 3;
  (void)ps::ParseCsv(text, "fuzz.csv", options);
  return 0;
}

// libFuzzer target: the LIBSVM reader, binary and regression labels.
#include <string_view>

#include "worker/libsvm_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  ps::LibsvmOptions options;
  (void)ps::ParseLibsvm(text, "fuzz.libsvm", options);
  options.binary_labels = false;
  options.max_feature_index = 100;
  (void)ps::ParseLibsvm(text, "fuzz.libsvm", options);
  return 0;
}

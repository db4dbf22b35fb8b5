// libFuzzer target: the YAML job-config loader (parse, overrides, validation).
#include <string>

#include "common/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // The first line, when it looks like one, is also tried as a --set override.
  const size_t nl = text.find('\n');
  std::vector<std::string> overrides;
  if (nl != std::string::npos && nl < 200 && text.find('=') < nl)
    overrides.push_back(text.substr(0, nl));
  (void)ps::ParseJobConfig(text, "fuzz.yaml", {});
  if (!overrides.empty()) (void)ps::ParseJobConfig(text.substr(nl + 1), "fuzz.yaml", overrides);
  return 0;
}

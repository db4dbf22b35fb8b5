#include "common/flags_util.h"

namespace ps {

std::vector<std::string> ExtractRepeatedFlag(const std::string& name, int* argc, char** argv) {
  std::vector<std::string> values;
  const std::string bare = "--" + name;
  const std::string with_eq = bare + "=";
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = argv[i];
    if (arg == bare) {
      values.push_back(i + 1 < *argc ? argv[++i] : "");
    } else if (arg.rfind(with_eq, 0) == 0) {
      values.push_back(arg.substr(with_eq.size()));
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  argv[out] = nullptr;
  return values;
}

}  // namespace ps

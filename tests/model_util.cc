#include "tests/model_util.h"

#include <algorithm>
#include <cmath>

#include "common/model_io.h"

namespace ps::testing {

double MaxModelDifference(const std::string& a, const std::string& b) {
  auto ma = ReadModel(a), mb = ReadModel(b);
  if (!ma.ok() || !mb.ok()) return INFINITY;
  double diff = 0;
  for (const auto& [id, table] : ma->tables) {
    auto other = mb->tables.find(id);
    if (other == mb->tables.end() || other->second.rows.size() != table.rows.size()) {
      return INFINITY;
    }
    for (const auto& [key, values] : table.rows) {
      auto row = other->second.rows.find(key);
      if (row == other->second.rows.end()) return INFINITY;
      for (size_t i = 0; i < values.size(); ++i) {
        diff = std::max(diff, std::abs(static_cast<double>(values[i]) - row->second[i]));
      }
    }
  }
  return diff;
}

}  // namespace ps::testing

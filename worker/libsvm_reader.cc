#include "worker/libsvm_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "worker/data_file.h"

namespace ps {
namespace {

// Debian's Abseil is built with its own absl::string_view, which does not
// convert from std::string_view; this bridges the two for StrCat.
absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// Parses all of `token` as a float. std::from_chars rejects a leading '+',
// which LIBSVM labels ("+1") commonly carry, so one is skipped here.
// Returns false if `token` is not entirely a number or is out of float range.
bool ParseFloat(std::string_view token, float* out) {
  if (token.size() > 1 && token[0] == '+' && token[1] != '-') {
    token.remove_prefix(1);
  }
  const char* end = token.data() + token.size();
  auto [ptr, ec] = std::from_chars(token.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

bool ParseIndex(std::string_view token, uint64_t* out) {
  const char* end = token.data() + token.size();
  auto [ptr, ec] = std::from_chars(token.data(), end, *out);
  return ec == std::errc() && ptr == end && !token.empty();
}

// Splits a line (comment already removed) into whitespace-separated tokens,
// one at a time.
class Tokenizer {
 public:
  explicit Tokenizer(std::string_view line) : rest_(line) {}
  bool Next(std::string_view* token) {
    size_t i = 0;
    while (i < rest_.size() && IsSpace(rest_[i])) ++i;
    if (i == rest_.size()) return false;
    size_t j = i;
    while (j < rest_.size() && !IsSpace(rest_[j])) ++j;
    *token = rest_.substr(i, j - i);
    rest_.remove_prefix(j);
    return true;
  }

 private:
  std::string_view rest_;
};

// Parses one non-blank line into `data`. Returns the error description
// (without the "<source>:<line>: " prefix), or an empty string on success.
std::string ParseLine(std::string_view line, const LibsvmOptions& options, Dataset* data) {
  Tokenizer tokens(line);
  std::string_view token;
  tokens.Next(&token);  // The caller guarantees a non-blank line.
  float label;
  if (!ParseFloat(token, &label) || !std::isfinite(label)) {
    return absl::StrCat("bad label '", Av(token), "' (expected a number)");
  }
  if (options.binary_labels) {
    if (label == -1.0f) {
      label = 0.0f;
    } else if (label != 0.0f && label != 1.0f) {
      return absl::StrCat("label '", Av(token), "' is not 0/1 (or -1/+1)");
    }
  }
  bool have_previous = false;
  uint64_t previous = 0;
  while (tokens.Next(&token)) {
    if (token.starts_with("qid:")) {
      return absl::StrCat("qid tokens are not supported ('", Av(token),
                          "'): ranking data cannot be read");
    }
    const size_t colon = token.find(':');
    uint64_t index;
    if (colon == std::string_view::npos || !ParseIndex(token.substr(0, colon), &index)) {
      return absl::StrCat("bad feature '", Av(token), "' (expected index:value)");
    }
    const std::string_view value_text = token.substr(colon + 1);
    float value;
    if (!ParseFloat(value_text, &value)) {
      return absl::StrCat("bad feature '", Av(token), "' (expected index:value)");
    }
    if (!std::isfinite(value)) {
      return absl::StrCat("feature ", index, " has non-finite value '", Av(value_text), "'");
    }
    if (have_previous && index <= previous) {
      return absl::StrCat("feature index ", index, " is not greater than the previous index ",
                          previous, " (indices must be strictly increasing)");
    }
    if (options.max_feature_index != 0 && index > options.max_feature_index) {
      return absl::StrCat("feature index ", index, " exceeds the declared maximum ",
                          options.max_feature_index);
    }
    have_previous = true;
    previous = index;
    data->indices.push_back(index);
    data->values.push_back(value);
  }
  if (have_previous && previous > data->max_index) data->max_index = previous;
  data->labels.push_back(label);
  data->row_offsets.push_back(data->indices.size());
  return "";
}

}  // namespace

absl::StatusOr<Dataset> ParseLibsvm(std::string_view text, std::string_view source_name,
                                    const LibsvmOptions& options) {
  Dataset data;
  data.row_offsets.push_back(0);
  // Rough capacity guess (about 8 bytes per feature) to avoid most regrowth.
  data.indices.reserve(text.size() / 8);
  data.values.reserve(text.size() / 8);
  uint64_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    const size_t hash = line.find('#');
    if (hash != std::string_view::npos) line = line.substr(0, hash);
    bool blank = true;
    for (char c : line) {
      if (!IsSpace(c)) {
        blank = false;
        break;
      }
    }
    if (blank) continue;
    std::string error = ParseLine(line, options, &data);
    if (!error.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Av(source_name), ":", line_number, ": ", error));
    }
  }
  if (data.rows() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(Av(source_name), ": no examples"));
  }
  data.indices.shrink_to_fit();
  data.values.shrink_to_fit();
  return data;
}

absl::StatusOr<Dataset> ReadLibsvm(const std::string& path, const LibsvmOptions& options) {
  // Bounded, regular files only, gunzipped when compressed (data_file.h).
  absl::StatusOr<std::string> text = ReadDataFile(path);
  if (!text.ok()) return text.status();
  return ParseLibsvm(*text, path, options);
}

}  // namespace ps

#include "worker/csv_reader.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "worker/data_file.h"

namespace ps {
namespace {

// Debian's Abseil is built with its own absl::string_view, which does not
// convert from std::string_view; this bridges the two for StrCat.
absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }

// At most this many header names are listed in a "no column" error.
constexpr size_t kMaxListedColumns = 20;

// Splits CSV text into records of cells, one record per call to Next().
class RecordReader {
 public:
  RecordReader(std::string_view text, char delimiter) : text_(text), delimiter_(delimiter) {}

  // Reads the next non-blank record into `cells` and its first line number
  // into `line`. Returns false at the end of the text, or with a non-empty
  // `error` (no "<source>:<line>: " prefix) for a malformed record. The cells
  // stay valid until the next call.
  bool Next(std::vector<std::string_view>* cells, uint64_t* line, std::string* error) {
    cells->clear();
    unescaped_.clear();
    SkipBlankLines();
    if (pos_ == text_.size()) return false;
    *line = line_;
    while (true) {
      SkipBlanks();
      std::string_view cell;
      if (pos_ < text_.size() && text_[pos_] == '"') {
        if (!ReadQuoted(&cell, error)) return false;
        SkipBlanks();
        if (pos_ < text_.size() && text_[pos_] != delimiter_ && text_[pos_] != '\n') {
          *error = absl::StrCat("unexpected '", Av(text_.substr(pos_, 1)),
                                "' after a closing quote (quote a field whole, doubling quotes "
                                "inside it)");
          return false;
        }
      } else {
        size_t end = pos_;
        while (end < text_.size() && text_[end] != delimiter_ && text_[end] != '\n') ++end;
        cell = text_.substr(pos_, end - pos_);
        while (!cell.empty() && IsBlank(cell.back())) cell.remove_suffix(1);
        pos_ = end;
      }
      cells->push_back(cell);
      if (pos_ < text_.size() && text_[pos_] == delimiter_) {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size()) {  // At '\n'.
        ++pos_;
        ++line_;
      }
      return true;
    }
  }

 private:
  bool IsBlank(char c) const { return c != delimiter_ && (c == ' ' || c == '\t' || c == '\r'); }

  void SkipBlanks() {
    while (pos_ < text_.size() && IsBlank(text_[pos_])) ++pos_;
  }

  void SkipBlankLines() {
    while (true) {
      size_t i = pos_;
      while (i < text_.size() && IsBlank(text_[i])) ++i;
      if (i == text_.size()) {
        pos_ = i;
        return;
      }
      if (text_[i] != '\n') return;
      pos_ = i + 1;
      ++line_;
    }
  }

  // REQUIRES: text_[pos_] == '"'. Reads the quoted field, unescaping '""'.
  bool ReadQuoted(std::string_view* cell, std::string* error) {
    const uint64_t start_line = line_;
    ++pos_;
    const size_t start = pos_;
    bool escaped = false;
    while (true) {
      const size_t quote = text_.find('"', pos_);
      if (quote == std::string_view::npos) {
        *error = absl::StrCat("quoted field opened on line ", start_line, " is never closed");
        return false;
      }
      for (size_t i = pos_; i < quote; ++i) line_ += text_[i] == '\n';
      if (quote + 1 < text_.size() && text_[quote + 1] == '"') {
        escaped = true;
        pos_ = quote + 2;
        continue;
      }
      pos_ = quote + 1;
      const std::string_view raw = text_.substr(start, quote - start);
      if (!escaped) {
        *cell = raw;
        return true;
      }
      std::string& out = unescaped_.emplace_back();
      out.reserve(raw.size());
      for (size_t i = 0; i < raw.size(); ++i) {
        out.push_back(raw[i]);
        if (raw[i] == '"') ++i;  // Skip the second quote of a pair.
      }
      *cell = out;
      return true;
    }
  }

  std::string_view text_;
  const char delimiter_;
  size_t pos_ = 0;
  uint64_t line_ = 1;
  // Unescaped quoted cells of the current record; a deque so that growing it
  // never moves the strings that cells point into.
  std::deque<std::string> unescaped_;
};

bool IsMissing(std::string_view cell) {
  return cell.empty() || cell == "?" || absl::EqualsIgnoreCase(Av(cell), "NA") ||
         absl::EqualsIgnoreCase(Av(cell), "N/A") || absl::EqualsIgnoreCase(Av(cell), "NaN");
}

// Parses all of `cell` as a float (a leading '+' allowed, which from_chars
// rejects). Returns false if it is not entirely a number or out of range.
bool ParseFloat(std::string_view cell, float* out) {
  if (cell.size() > 1 && cell[0] == '+' && cell[1] != '-') cell.remove_prefix(1);
  const char* end = cell.data() + cell.size();
  auto [ptr, ec] = std::from_chars(cell.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

// Returns the error (no prefix) for a bad label, or "" if `label` is allowed.
std::string CheckLabel(float label, std::string_view cell, const CsvOptions& options) {
  if (options.binary_labels && label != 0.0f && label != 1.0f) {
    return absl::StrCat("label ", Av(cell), " is not 0/1 (binary labels)");
  }
  if (options.num_classes > 0) {
    const bool is_class = label >= 0.0f && label < static_cast<float>(options.num_classes) &&
                          std::floor(label) == label;
    if (!is_class) {
      return absl::StrCat("label ", Av(cell), " is outside the ", options.num_classes,
                          " classes 0..", options.num_classes - 1);
    }
  }
  return "";
}

std::string ColumnList(const std::vector<std::string>& names) {
  std::string list;
  for (size_t i = 0; i < names.size() && i < kMaxListedColumns; ++i) {
    absl::StrAppend(&list, i == 0 ? "" : ", ", names[i]);
  }
  if (names.size() > kMaxListedColumns) {
    absl::StrAppend(&list, ", ... ", names.size() - kMaxListedColumns, " more");
  }
  return list;
}

}  // namespace

absl::StatusOr<Dataset> ParseCsv(std::string_view text, std::string_view source_name,
                                 const CsvOptions& options) {
  if (options.label_column.empty()) {
    return absl::InvalidArgumentError("CSV options: label_column is required");
  }
  if (options.num_classes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("CSV options: num_classes is ", options.num_classes, " (must be >= 0)"));
  }
  const char delimiter = options.delimiter;
  if (delimiter == '"' || delimiter == '\n' || delimiter == '\r' || delimiter == '\0') {
    return absl::InvalidArgumentError("CSV options: the delimiter cannot be a quote or line end");
  }
  auto error_at = [&](uint64_t line, std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(Av(source_name), ":", line, ": ", Av(what)));
  };

  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 byte order mark.
  RecordReader reader(text, delimiter);
  std::vector<std::string_view> cells;
  uint64_t line = 1;
  std::string error;
  if (!reader.Next(&cells, &line, &error)) {
    if (!error.empty()) return error_at(line, error);
    return absl::InvalidArgumentError(
        absl::StrCat(Av(source_name), ": empty file (expected a header row)"));
  }

  // The header.
  std::vector<std::string> header(cells.begin(), cells.end());
  std::unordered_map<std::string_view, size_t> column_of;
  for (size_t c = 0; c < header.size(); ++c) {
    if (header[c].empty()) {
      return error_at(line, absl::StrCat("header column ", c + 1, " has no name"));
    }
    auto [it, inserted] = column_of.emplace(header[c], c);
    if (!inserted) {
      return error_at(line, absl::StrCat("duplicate column name '", header[c], "' (columns ",
                                         it->second + 1, " and ", c + 1, ")"));
    }
  }
  const auto label_it = column_of.find(options.label_column);
  if (label_it == column_of.end()) {
    return error_at(line, absl::StrCat("no column '", options.label_column,
                                       "' in the header (columns: ", ColumnList(header), ")"));
  }
  const size_t label_column = label_it->second;

  Dataset data;
  data.feature_names.reserve(header.size() - 1);
  for (size_t c = 0; c < header.size(); ++c) {
    if (c != label_column) data.feature_names.push_back(header[c]);
  }
  const uint64_t num_features = data.feature_names.size();
  data.row_offsets.push_back(0);

  // The rows.
  while (reader.Next(&cells, &line, &error)) {
    if (cells.size() != header.size()) {
      return error_at(
          line, absl::StrCat("row has ", cells.size(), " cells, the header has ", header.size()));
    }
    const std::string_view label_cell = cells[label_column];
    if (IsMissing(label_cell)) {
      return error_at(line, absl::StrCat("missing label (column '", options.label_column, "')"));
    }
    float label;
    if (!ParseFloat(label_cell, &label) || !std::isfinite(label)) {
      return error_at(line, absl::StrCat("label column '", options.label_column, "': '",
                                         Av(label_cell), "' is not a number"));
    }
    if (std::string bad = CheckLabel(label, label_cell, options); !bad.empty()) {
      return error_at(line, bad);
    }
    uint64_t index = 0;
    for (size_t c = 0; c < cells.size(); ++c) {
      if (c == label_column) continue;
      ++index;
      float value = std::numeric_limits<float>::quiet_NaN();
      if (!IsMissing(cells[c]) && (!ParseFloat(cells[c], &value) || std::isinf(value))) {
        return error_at(
            line, absl::StrCat("column '", header[c], "': '", Av(cells[c]), "' is not a number"));
      }
      data.indices.push_back(index);
      data.values.push_back(value);
    }
    data.labels.push_back(label);
    data.row_offsets.push_back(data.indices.size());
  }
  if (!error.empty()) return error_at(line, error);
  if (data.rows() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(Av(source_name), ": no examples (only a header row)"));
  }
  data.max_index = num_features;
  return data;
}

absl::StatusOr<Dataset> ReadCsv(const std::string& path, const CsvOptions& options) {
  absl::StatusOr<std::string> text = ReadDataFile(path);
  if (!text.ok()) return text.status();
  return ParseCsv(*text, path, options);
}

}  // namespace ps

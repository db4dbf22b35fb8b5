#include "common/config.h"

// GCC 12 reports a false -Wdangling-pointer inside yaml-cpp 0.7's node/impl.h.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#include <yaml-cpp/yaml.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/net.h"
#include "common/paths.h"
#include "common/status_macros.h"
#include "common/tables.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace ps {
namespace {

// Debian's Abseil is built with its own absl::string_view, distinct from
// std::string_view; the public API takes std::string_view.
absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Field path ("optimizer.learning_rate", "a.b[2]") -> where it was set
// ("job.yaml:12" or "--set optimizer.learning_rate=0.1"). Lets errors found
// after parsing name the line of the offending field.
using FieldLocations = absl::flat_hash_map<std::string, std::string>;

// One-line error "<where>: <path>: <what>" (the path part omitted if empty).
absl::Status ConfigError(absl::string_view where, absl::string_view path, absl::string_view what) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", path, ": ", what));
}

std::string JoinPath(absl::string_view prefix, absl::string_view name) {
  if (prefix.empty()) return std::string(name);
  return absl::StrCat(prefix, ".", name);
}

// Where `path` was set, else where its closest enclosing section was set,
// else just the source name.
std::string LocationOf(absl::string_view path, const FieldLocations& locations,
                       absl::string_view source_name) {
  absl::string_view p = path;
  while (!p.empty()) {
    auto it = locations.find(p);
    if (it != locations.end()) return it->second;
    size_t cut = p.find_last_of(".[");
    if (cut == absl::string_view::npos) break;
    p = p.substr(0, cut);
  }
  return std::string(source_name);
}

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// "unknown field 'x' in section 's' (did you mean 'y'?)"; at the top level
// "unknown section 'x' ...".
std::string UnknownFieldMessage(const Descriptor& descriptor, absl::string_view section,
                                absl::string_view name) {
  const std::string lower_name = absl::AsciiStrToLower(name);
  const FieldDescriptor* best = nullptr;
  size_t best_distance = 4;  // suggest only within distance 3
  for (int i = 0; i < descriptor.field_count(); ++i) {
    const FieldDescriptor* field = descriptor.field(i);
    size_t distance = EditDistance(lower_name, field->name());
    if (distance < best_distance && distance < std::max<size_t>(name.size(), 1)) {
      best = field;
      best_distance = distance;
    }
  }
  std::string message = section.empty()
                            ? absl::StrCat("unknown section '", name, "'")
                            : absl::StrCat("unknown field '", name, "' in section '", section, "'");
  if (best != nullptr) absl::StrAppend(&message, " (did you mean '", best->name(), "'?)");
  return message;
}

// Shortest text that parses back to the same value.
template <typename T>
std::string FormatFloat(T value) {
  if (std::isnan(value)) return ".nan";
  if (std::isinf(value)) return value > 0 ? ".inf" : "-.inf";
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

// A range bound: "1", "65536", "0.5".
std::string FormatBound(double bound) {
  if (std::trunc(bound) == bound && std::fabs(bound) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(bound));
  }
  return FormatFloat(bound);
}

std::string LowerEnumNames(const EnumDescriptor& descriptor) {
  std::vector<std::string> names;
  for (int i = 0; i < descriptor.value_count(); ++i) {
    const std::string& name = descriptor.value(i)->name();
    if (absl::EndsWith(name, "_UNSPECIFIED")) continue;
    names.push_back(absl::AsciiStrToLower(name));
  }
  return absl::StrJoin(names, ", ");
}

// What a field expects, for "expected X, got Y".
std::string ExpectedKind(const FieldDescriptor& field) {
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
      return "an integer";
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return "a non-negative integer";
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return "a number";
    case FieldDescriptor::CPPTYPE_BOOL:
      return "a boolean (true/false/yes/no)";
    case FieldDescriptor::CPPTYPE_STRING:
      return "a string";
    case FieldDescriptor::CPPTYPE_ENUM:
      return absl::StrCat("one of: ", LowerEnumNames(*field.enum_type()));
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return "a mapping of fields";
  }
  return "a value";
}

// "'abc'", "a mapping", "a sequence", "nothing".
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return absl::StrCat("'", node.Scalar(), "'");
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a sequence";
    default:
      return "nothing";
  }
}

bool IsDecimalInteger(absl::string_view text) {
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) text.remove_prefix(1);
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return absl::ascii_isdigit(c); });
}

// Converts a scalar to a signed integer in [lo, hi]; `what` receives the
// problem on failure.
bool ParseSigned(absl::string_view text, int64_t lo, int64_t hi, absl::string_view type_name,
                 int64_t* out, std::string* what) {
  if (!IsDecimalInteger(text)) {
    *what = absl::StrCat("expected an integer, got '", text, "'");
    return false;
  }
  if (!absl::SimpleAtoi(text, out) || *out < lo || *out > hi) {
    *what = absl::StrCat("out of range for ", type_name, ", got '", text, "'");
    return false;
  }
  return true;
}

bool ParseUnsigned(absl::string_view text, uint64_t hi, absl::string_view type_name, uint64_t* out,
                   std::string* what) {
  if (!IsDecimalInteger(text)) {
    *what = absl::StrCat("expected a non-negative integer, got '", text, "'");
    return false;
  }
  if (text[0] == '-') {
    int64_t negative;
    if (!absl::SimpleAtoi(text, &negative) || negative != 0) {
      *what = absl::StrCat("must not be negative, got '", text, "'");
      return false;
    }
    *out = 0;
    return true;
  }
  if (!absl::SimpleAtoi(text, out) || *out > hi) {
    *what = absl::StrCat("out of range for ", type_name, ", got '", text, "'");
    return false;
  }
  return true;
}

bool ParseDouble(absl::string_view text, bool is_float, double* out, std::string* what) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == ".inf" || lower == "+.inf") {
    *out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (lower == "-.inf") {
    *out = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (!absl::SimpleAtod(text, out) || std::isnan(*out)) {
    *what = absl::StrCat("expected a number, got '", text, "'");
    return false;
  }
  const bool written_as_inf = absl::StrContains(lower, "inf");
  const bool overflows = is_float ? std::isinf(static_cast<float>(*out)) : std::isinf(*out);
  if (!written_as_inf && overflows) {
    *what = absl::StrCat("out of range for ", is_float ? "float" : "double", ", got '", text, "'");
    return false;
  }
  return true;
}

bool ParseBool(absl::string_view text, bool* out, std::string* what) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "true" || lower == "yes") {
    *out = true;
    return true;
  }
  if (lower == "false" || lower == "no") {
    *out = false;
    return true;
  }
  *what = absl::StrCat("expected a boolean (true/false/yes/no), got '", text, "'");
  return false;
}

const EnumValueDescriptor* ParseEnum(absl::string_view text, const EnumDescriptor& descriptor,
                                     std::string* what) {
  for (int i = 0; i < descriptor.value_count(); ++i) {
    const EnumValueDescriptor* value = descriptor.value(i);
    if (absl::EndsWith(value->name(), "_UNSPECIFIED")) continue;
    if (absl::EqualsIgnoreCase(value->name(), text)) return value;
  }
  *what = absl::StrCat("unknown value '", text, "', expected one of: ", LowerEnumNames(descriptor));
  return nullptr;
}

// Sets (or, for a repeated field, adds) the scalar `text` to `field` of
// `*message`. Returns false with `what` set if the text does not fit the type.
bool SetScalar(absl::string_view text, const FieldDescriptor& field, Message* message,
               std::string* what) {
  const Reflection& r = *message->GetReflection();
  const bool add = field.is_repeated();
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      int64_t v;
      if (!ParseSigned(text, std::numeric_limits<int32_t>::min(),
                       std::numeric_limits<int32_t>::max(), "int32", &v, what)) {
        return false;
      }
      add ? r.AddInt32(message, &field, static_cast<int32_t>(v))
          : r.SetInt32(message, &field, static_cast<int32_t>(v));
      return true;
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v;
      if (!ParseSigned(text, std::numeric_limits<int64_t>::min(),
                       std::numeric_limits<int64_t>::max(), "int64", &v, what)) {
        return false;
      }
      add ? r.AddInt64(message, &field, v) : r.SetInt64(message, &field, v);
      return true;
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint64_t v;
      if (!ParseUnsigned(text, std::numeric_limits<uint32_t>::max(), "uint32", &v, what)) {
        return false;
      }
      add ? r.AddUInt32(message, &field, static_cast<uint32_t>(v))
          : r.SetUInt32(message, &field, static_cast<uint32_t>(v));
      return true;
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v;
      if (!ParseUnsigned(text, std::numeric_limits<uint64_t>::max(), "uint64", &v, what)) {
        return false;
      }
      add ? r.AddUInt64(message, &field, v) : r.SetUInt64(message, &field, v);
      return true;
    }
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      const bool is_float = field.cpp_type() == FieldDescriptor::CPPTYPE_FLOAT;
      double v;
      if (!ParseDouble(text, is_float, &v, what)) return false;
      if (is_float) {
        add ? r.AddFloat(message, &field, static_cast<float>(v))
            : r.SetFloat(message, &field, static_cast<float>(v));
      } else {
        add ? r.AddDouble(message, &field, v) : r.SetDouble(message, &field, v);
      }
      return true;
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool v;
      if (!ParseBool(text, &v, what)) return false;
      add ? r.AddBool(message, &field, v) : r.SetBool(message, &field, v);
      return true;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string v(text);
      add ? r.AddString(message, &field, std::move(v)) : r.SetString(message, &field, std::move(v));
      return true;
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const EnumValueDescriptor* v = ParseEnum(text, *field.enum_type(), what);
      if (v == nullptr) return false;
      add ? r.AddEnum(message, &field, v) : r.SetEnum(message, &field, v);
      return true;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  *what = absl::StrCat("expected ", ExpectedKind(field), ", got '", text, "'");
  return false;
}

// Fills messages from YAML nodes by reflection, recording where each field
// was set.
class YamlReader {
 public:
  // `override_location` non-empty: every location is that string (the
  // "--set ..." of an override); else locations are "<source_name>:<line>".
  YamlReader(absl::string_view source_name, std::string override_location,
             FieldLocations* locations)
      : source_name_(source_name),
        override_location_(std::move(override_location)),
        locations_(locations) {}

  std::string Where(const YAML::Mark& mark, absl::string_view fallback) const {
    if (!override_location_.empty()) return override_location_;
    if (mark.is_null()) return std::string(fallback);
    return absl::StrCat(source_name_, ":", mark.line + 1);
  }

  // Fills `*message` from the mapping `node` (null: nothing to fill). `path`
  // names the message ("" at the top), `where` is its location.
  absl::Status FillMessage(const YAML::Node& node, const std::string& path,
                           const std::string& where, Message* message) {
    if (node.IsNull()) return absl::OkStatus();
    if (!node.IsMap()) {
      return ConfigError(where, path,
                         absl::StrCat("expected a mapping of fields, got ", Describe(node)));
    }
    const Descriptor& descriptor = *message->GetDescriptor();
    absl::flat_hash_map<std::string, int> seen;  // key -> 1-based line
    for (auto it = node.begin(); it != node.end(); ++it) {
      // yaml-cpp's iterator hands out a temporary pair: copy the nodes (cheap
      // handles), never hold references into it.
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      const std::string key_where = Where(key.Mark(), where);
      if (!key.IsScalar()) {
        return ConfigError(key_where, path,
                           absl::StrCat("expected a field name as key, got ", Describe(key)));
      }
      const std::string& name = key.Scalar();
      const std::string field_path = JoinPath(path, name);
      auto [first, inserted] = seen.emplace(name, key.Mark().line + 1);
      if (!inserted) {
        std::string what = absl::StrCat("duplicate key '", name, "'");
        if (override_location_.empty())
          absl::StrAppend(&what, " (first at line ", first->second, ")");
        return ConfigError(key_where, field_path, what);
      }
      const FieldDescriptor* field = descriptor.FindFieldByName(name);
      if (field == nullptr) {
        return ConfigError(key_where, field_path, UnknownFieldMessage(descriptor, path, name));
      }
      RETURN_IF_ERROR(FillField(value, *field, field_path, key_where, message));
    }
    return absl::OkStatus();
  }

  // Sets `field` of `*message` from `node`. A repeated field is replaced.
  absl::Status FillField(const YAML::Node& node, const FieldDescriptor& field,
                         const std::string& path, const std::string& where, Message* message) {
    if (locations_ != nullptr) (*locations_)[path] = where;
    const Reflection& r = *message->GetReflection();
    if (field.is_repeated()) {
      r.ClearField(message, &field);
      if (node.IsNull()) return absl::OkStatus();
      if (!node.IsSequence()) {
        return ConfigError(
            where, path,
            absl::StrCat("expected a sequence of ", ExpectedKind(field), ", got ", Describe(node)));
      }
      for (size_t i = 0; i < node.size(); ++i) {
        const YAML::Node& element = node[i];
        const std::string element_path = absl::StrCat(path, "[", i, "]");
        const std::string element_where = Where(element.Mark(), where);
        if (locations_ != nullptr) (*locations_)[element_path] = element_where;
        if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
          RETURN_IF_ERROR(
              FillMessage(element, element_path, element_where, r.AddMessage(message, &field)));
        } else {
          RETURN_IF_ERROR(FillScalar(element, field, element_path, element_where, message));
        }
      }
      return absl::OkStatus();
    }
    if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      return FillMessage(node, path, where, r.MutableMessage(message, &field));
    }
    return FillScalar(node, field, path, where, message);
  }

 private:
  absl::Status FillScalar(const YAML::Node& node, const FieldDescriptor& field,
                          const std::string& path, const std::string& where, Message* message) {
    if (node.IsNull()) {
      // An empty value clears a string ("test_path:" or "--set data.test_path=").
      if (field.cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
        return SetScalar("", field, message, nullptr)
                   ? absl::OkStatus()
                   : ConfigError(where, path, "cannot set an empty string");
      }
      return ConfigError(where, path,
                         absl::StrCat("missing value, expected ", ExpectedKind(field)));
    }
    if (!node.IsScalar()) {
      return ConfigError(where, path,
                         absl::StrCat("expected ", ExpectedKind(field), ", got ", Describe(node)));
    }
    std::string what;
    if (!SetScalar(node.Scalar(), field, message, &what)) return ConfigError(where, path, what);
    return absl::OkStatus();
  }

  absl::string_view source_name_;
  std::string override_location_;
  FieldLocations* locations_;  // not owned; may be null
};

absl::Status ApplyOverrideImpl(absl::string_view assignment, config::JobConfig* config,
                               FieldLocations* locations) {
  const std::string where = absl::StrCat("--set ", assignment);
  const size_t eq = assignment.find('=');
  if (eq == absl::string_view::npos) {
    return ConfigError(where, "", "expected section.field=value");
  }
  const std::string path(absl::StripAsciiWhitespace(assignment.substr(0, eq)));
  const std::string value(absl::StripAsciiWhitespace(assignment.substr(eq + 1)));
  if (path.empty()) return ConfigError(where, "", "expected section.field=value");

  // Resolve the path on descriptors first, so that a bad path changes nothing.
  std::vector<const FieldDescriptor*> fields;
  const Descriptor* descriptor = config->GetDescriptor();
  std::string prefix;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (descriptor == nullptr) {
      return ConfigError(where, path, absl::StrCat("'", prefix, "' is not a section"));
    }
    const FieldDescriptor* field = descriptor->FindFieldByName(std::string(part));
    const std::string field_path = JoinPath(prefix, part);
    if (field == nullptr) {
      return ConfigError(where, field_path, UnknownFieldMessage(*descriptor, prefix, part));
    }
    fields.push_back(field);
    descriptor = field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !field->is_repeated()
                     ? field->message_type()
                     : nullptr;
    prefix = field_path;
  }
  YAML::Node node;
  try {
    node = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    return ConfigError(where, path, absl::StrCat("invalid value: ", e.msg));
  }
  Message* message = config;
  for (size_t i = 0; i + 1 < fields.size(); ++i) {
    message = message->GetReflection()->MutableMessage(message, fields[i]);
  }
  const FieldDescriptor* field = fields.back();

  YamlReader reader("--set", where, locations);
  try {
    return reader.FillField(node, *field, path, where, message);
  } catch (const std::exception& e) {
    return ConfigError(where, path, e.what());
  }
}

bool NumericAsDouble(const Message& message, const FieldDescriptor& field, int index, double* out,
                     std::string* text) {
  const Reflection& r = *message.GetReflection();
  const bool rep = field.is_repeated();
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t v = rep ? r.GetRepeatedInt32(message, &field, index) : r.GetInt32(message, &field);
      *out = v;
      *text = absl::StrCat(v);
      return true;
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v = rep ? r.GetRepeatedInt64(message, &field, index) : r.GetInt64(message, &field);
      *out = static_cast<double>(v);
      *text = absl::StrCat(v);
      return true;
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t v = rep ? r.GetRepeatedUInt32(message, &field, index) : r.GetUInt32(message, &field);
      *out = v;
      *text = absl::StrCat(v);
      return true;
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v = rep ? r.GetRepeatedUInt64(message, &field, index) : r.GetUInt64(message, &field);
      *out = static_cast<double>(v);
      *text = absl::StrCat(v);
      return true;
    }
    case FieldDescriptor::CPPTYPE_FLOAT: {
      float v = rep ? r.GetRepeatedFloat(message, &field, index) : r.GetFloat(message, &field);
      *out = v;
      *text = FormatFloat(v);
      return true;
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double v = rep ? r.GetRepeatedDouble(message, &field, index) : r.GetDouble(message, &field);
      *out = v;
      *text = FormatFloat(v);
      return true;
    }
    default:
      return false;
  }
}

absl::Status CheckRanges(const Message& message, const std::string& path,
                         const FieldLocations& locations, absl::string_view source_name) {
  const Descriptor& descriptor = *message.GetDescriptor();
  const Reflection& r = *message.GetReflection();
  for (int i = 0; i < descriptor.field_count(); ++i) {
    const FieldDescriptor& field = *descriptor.field(i);
    const std::string field_path = JoinPath(path, field.name());
    const int count = field.is_repeated() ? r.FieldSize(message, &field) : 1;
    for (int j = 0; j < count; ++j) {
      const std::string element_path =
          field.is_repeated() ? absl::StrCat(field_path, "[", j, "]") : field_path;
      if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        const Message& sub = field.is_repeated() ? r.GetRepeatedMessage(message, &field, j)
                                                 : r.GetMessage(message, &field);
        RETURN_IF_ERROR(CheckRanges(sub, element_path, locations, source_name));
        continue;
      }
      const google::protobuf::FieldOptions& options = field.options();
      const bool has_min = options.HasExtension(config::min);
      const bool has_max = options.HasExtension(config::max);
      if (!has_min && !has_max) break;
      double value;
      std::string text;
      if (!NumericAsDouble(message, field, j, &value, &text)) break;
      const double lo = options.GetExtension(config::min);
      const double hi = options.GetExtension(config::max);
      std::string what;
      if (std::isnan(value)) {
        what = "must be a number, got nan";
      } else if (has_min && value < lo) {
        what = absl::StrCat("must be >= ", FormatBound(lo), ", got ", text);
      } else if (has_max && value > hi) {
        what = absl::StrCat("must be <= ", FormatBound(hi), ", got ", text);
      } else {
        continue;
      }
      return ConfigError(LocationOf(element_path, locations, source_name), element_path, what);
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateJobConfigImpl(const config::JobConfig& config, absl::string_view source_name,
                                   const FieldLocations& locations) {
  RETURN_IF_ERROR(CheckRanges(config, "", locations, source_name));
  const auto where = [&](absl::string_view path) {
    return LocationOf(path, locations, source_name);
  };
  if (config.data().train_path().empty()) {
    return ConfigError(where("data.train_path"), "data.train_path", "required");
  }
  if (absl::Status s = CheckOutputRoot(config.job().output_dir(), "job.output_dir"); !s.ok()) {
    return ConfigError(where("job.output_dir"), "job.output_dir",
                       std::string(absl::StripPrefix(s.message(), "job.output_dir: ")));
  }
  if (config.privacy().dp_sgd()) {
    const config::DataSection& d = config.data();
    if (d.scaling() != config::NO_SCALING || d.fill_missing() == config::FILL_MEAN ||
        d.class_weight() == config::BALANCED) {
      return ConfigError(
          where("privacy.dp_sgd"), "privacy.dp_sgd",
          "data.scaling, data.fill_missing: fill_mean and data.class_weight: balanced "
          "compute statistics of the raw training data that DP-SGD does not protect; "
          "preprocess the data beforehand or turn them off");
    }
  }
  if (config.compression().tables_size() > 0) {
    std::vector<std::string> names;
    for (const TableSpec& t : TablesForJob(config)) {
      if (!t.statistics) names.push_back(t.name);
    }
    for (int i = 0; i < config.compression().tables_size(); ++i) {
      const std::string& name = config.compression().tables(i).table();
      if (std::find(names.begin(), names.end(), name) == names.end()) {
        const std::string path = absl::StrCat("compression.tables[", i, "].table");
        return ConfigError(where(path), path,
                           absl::StrCat("this model has no table '", name,
                                        "' (its tables: ", absl::StrJoin(names, ", "), ")"));
      }
    }
  }
  if (const config::CompressionSection& c = config.compression(); c.momentum() > 0) {
    // The workers carry the momentum: the servers must not add their own,
    // and every table must go through the compressor that keeps it.
    std::string problem;
    if (config.optimizer().type() != config::SGD) {
      problem = absl::StrCat(
          "the workers keep the momentum, so the servers must step plain SGD; ",
          "set optimizer.type: sgd (it is ",
          absl::AsciiStrToLower(config::OptimizerType_Name(config.optimizer().type())), ")");
    } else if (!c.error_feedback()) {
      problem =
          "momentum correction accumulates what is not sent: it needs "
          "compression.error_feedback: true";
    } else {
      for (const TableSpec& t : TablesForJob(config)) {
        if (t.statistics) continue;
        config::CompressionType type = c.type();
        for (const config::TableCompression& tc : c.tables()) {
          if (tc.table() == t.name) type = tc.type();
        }
        if (type == config::NO_COMPRESSION || type == config::COMPRESSION_UNSPECIFIED) {
          problem = absl::StrCat("table '", t.name,
                                 "' is not compressed, so it would train without momentum (set "
                                 "compression.type, or optimizer.type: momentum without it)");
          break;
        }
      }
    }
    if (!problem.empty()) {
      return ConfigError(where("compression.momentum"), "compression.momentum", problem);
    }
  }
  const config::LimitsSection& limits = config.security().limits();
  // A chunk plus its framing (slice headers, request fields) must fit.
  if (static_cast<int64_t>(config.cluster().max_chunk_bytes()) + 4096 >
      limits.max_message_bytes()) {
    const bool chunk_written = locations.contains("cluster.max_chunk_bytes");
    const std::string field =
        chunk_written ? "cluster.max_chunk_bytes" : "security.limits.max_message_bytes";
    return ConfigError(where(field), field,
                       absl::StrCat("cluster.max_chunk_bytes (", config.cluster().max_chunk_bytes(),
                                    ") + 4096 must fit in security.limits.max_message_bytes (",
                                    limits.max_message_bytes(), ")"));
  }
  const config::ClusterSection& cluster = config.cluster();
  // At least 3 heartbeats per timeout: the scheduler counts a member as
  // quiet after half the timeout (scheduler/liveness.h), and a live member
  // must be heard more often than that.
  if (static_cast<int64_t>(cluster.heartbeat_timeout_ms()) <
      3 * static_cast<int64_t>(cluster.heartbeat_interval_ms())) {
    // Blame the one of the two that was written, preferring the timeout.
    const bool timeout_written = locations.contains("cluster.heartbeat_timeout_ms");
    const bool interval_written = locations.contains("cluster.heartbeat_interval_ms");
    if (!timeout_written && interval_written) {
      return ConfigError(
          where("cluster.heartbeat_interval_ms"), "cluster.heartbeat_interval_ms",
          absl::StrCat("must be at most a third of cluster.heartbeat_timeout_ms (",
                       cluster.heartbeat_timeout_ms(), "), got ", cluster.heartbeat_interval_ms()));
    }
    return ConfigError(
        where("cluster.heartbeat_timeout_ms"), "cluster.heartbeat_timeout_ms",
        absl::StrCat("must be at least 3 times cluster.heartbeat_interval_ms (",
                     cluster.heartbeat_interval_ms(), "), got ", cluster.heartbeat_timeout_ms()));
  }
  if (cluster.coordinator() == config::ETCD) {
    if (absl::StripAsciiWhitespace(cluster.etcd_endpoints()).empty()) {
      return ConfigError(where("cluster.coordinator"), "cluster.etcd_endpoints",
                         "required with cluster.coordinator: etcd (host:port of etcd's client "
                         "endpoints, comma-separated)");
    }
    // Members wait scheduler_timeout_ms for a scheduler; a standby takes
    // over up to a lease and a quarter after the leader was last heard.
    if (2 * 1000 * static_cast<int64_t>(cluster.etcd_lease_seconds()) >
        cluster.scheduler_timeout_ms()) {
      const bool lease_written = locations.contains("cluster.etcd_lease_seconds");
      const std::string field =
          lease_written ? "cluster.etcd_lease_seconds" : "cluster.scheduler_timeout_ms";
      return ConfigError(where(field), field,
                         absl::StrCat("cluster.etcd_lease_seconds (", cluster.etcd_lease_seconds(),
                                      " s) must be at most half of cluster.scheduler_timeout_ms (",
                                      cluster.scheduler_timeout_ms(),
                                      " ms): members must outwait a standby's take-over"));
    }
  } else if (cluster.scheduler_standbys_size() > 0) {
    return ConfigError(where("cluster.scheduler_standbys"), "cluster.scheduler_standbys",
                       "standby schedulers need cluster.coordinator: etcd (they take the job "
                       "over from the state and lease kept there)");
  }
  for (int i = 0; i < cluster.scheduler_standbys_size(); ++i) {
    const std::string field = absl::StrCat("cluster.scheduler_standbys[", i, "]");
    std::string host;
    int port;
    if (absl::Status s = ParseHostPort(cluster.scheduler_standbys(i), field, &host, &port);
        !s.ok()) {
      return ConfigError(where(field), field,
                         std::string(absl::StripPrefix(s.message(), field + ": ")));
    }
    if (port == 0) {
      return ConfigError(where(field), field,
                         absl::StrCat("'", cluster.scheduler_standbys(i),
                                      "' has port 0: members dial a standby at a fixed port"));
    }
  }
  if (cluster.coordinator() == config::ETCD) {
    // host:port each (etcd's http:// client URL spelling accepted).
    for (absl::string_view one :
         absl::StrSplit(cluster.etcd_endpoints(), ',', absl::SkipWhitespace())) {
      std::string endpoint(absl::StripAsciiWhitespace(one));
      absl::string_view bare = endpoint;
      absl::ConsumePrefix(&bare, "http://");
      bare = absl::StripSuffix(bare, "/");
      std::string host;
      int port = 0;
      if (absl::StrContains(bare, "://") ||
          !ParseHostPort(std::string(bare), "", &host, &port).ok() || port == 0) {
        return ConfigError(where("cluster.etcd_endpoints"), "cluster.etcd_endpoints",
                           absl::StrCat("'", endpoint,
                                        "' is not host:port of an etcd client endpoint (e.g. "
                                        "etcd-0:2379; TLS to etcd is not supported yet)"));
      }
    }
  }
  if (cluster.replication() > cluster.num_servers()) {
    return ConfigError(where("cluster.replication"), "cluster.replication",
                       absl::StrCat("needs at least as many servers (cluster.num_servers is ",
                                    cluster.num_servers(), "), got ", cluster.replication()));
  }
  return absl::OkStatus();
}

// Parses, then resolves file paths against `base_dir` (if not empty), then
// applies overrides, then validates.
absl::StatusOr<config::JobConfig> ParseImpl(absl::string_view yaml_text,
                                            absl::string_view source_name,
                                            const std::vector<std::string>& overrides,
                                            const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return ConfigError(source_name, "", e.msg);
    return ConfigError(absl::StrCat(source_name, ":", e.mark.line + 1), "", e.msg);
  } catch (const std::exception& e) {
    return ConfigError(source_name, "", e.what());
  }

  config::JobConfig config;
  std::vector<std::string> sections;
  for (int i = 0; i < config.GetDescriptor()->field_count(); ++i) {
    sections.push_back(config.GetDescriptor()->field(i)->name());
  }
  if (root.IsNull()) {
    return ConfigError(source_name, "",
                       absl::StrCat("config is empty; expected a mapping with sections ",
                                    absl::StrJoin(sections, ", ")));
  }
  FieldLocations locations;
  YamlReader reader(source_name, "", &locations);
  const std::string root_where = reader.Where(root.Mark(), source_name);
  if (!root.IsMap()) {
    return ConfigError(
        root_where, "",
        absl::StrCat("expected a mapping with sections ", absl::StrJoin(sections, ", "),
                     " at the top level, got ", Describe(root)));
  }
  try {
    RETURN_IF_ERROR(reader.FillMessage(root, "", root_where, &config));
  } catch (const std::exception& e) {
    return ConfigError(source_name, "", e.what());
  }
  if (!base_dir.empty()) ResolveRelativePaths(base_dir, &config);
  for (const std::string& assignment : overrides) {
    RETURN_IF_ERROR(ApplyOverrideImpl(assignment, &config, &locations));
  }
  RETURN_IF_ERROR(ValidateJobConfigImpl(config, source_name, locations));
  return config;
}

void EmitMessage(const Message& message, YAML::Emitter* out);

void EmitScalar(const Message& message, const FieldDescriptor& field, int index,
                YAML::Emitter* out) {
  const Reflection& r = *message.GetReflection();
  const bool rep = field.is_repeated();
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      *out << YAML::DoubleQuoted
           << (rep ? r.GetRepeatedString(message, &field, index) : r.GetString(message, &field));
      return;
    case FieldDescriptor::CPPTYPE_BOOL:
      *out << ((rep ? r.GetRepeatedBool(message, &field, index) : r.GetBool(message, &field))
                   ? "true"
                   : "false");
      return;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const EnumValueDescriptor* v =
          rep ? r.GetRepeatedEnum(message, &field, index) : r.GetEnum(message, &field);
      *out << absl::AsciiStrToLower(v->name());
      return;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      EmitMessage(
          rep ? r.GetRepeatedMessage(message, &field, index) : r.GetMessage(message, &field), out);
      return;
    default: {
      double unused;
      std::string text;
      NumericAsDouble(message, field, index, &unused, &text);
      *out << text;
      return;
    }
  }
}

void EmitMessage(const Message& message, YAML::Emitter* out) {
  const Descriptor& descriptor = *message.GetDescriptor();
  const Reflection& r = *message.GetReflection();
  *out << YAML::BeginMap;
  for (int i = 0; i < descriptor.field_count(); ++i) {
    const FieldDescriptor& field = *descriptor.field(i);
    *out << YAML::Key << field.name() << YAML::Value;
    if (field.is_repeated()) {
      const int size = r.FieldSize(message, &field);
      if (size == 0 || field.cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) *out << YAML::Flow;
      *out << YAML::BeginSeq;
      for (int j = 0; j < size; ++j) EmitScalar(message, field, j, out);
      *out << YAML::EndSeq;
    } else {
      EmitScalar(message, field, -1, out);
    }
  }
  *out << YAML::EndMap;
}

}  // namespace

absl::StatusOr<config::JobConfig> LoadJobConfig(const std::string& path,
                                                const std::vector<std::string>& overrides) {
  auto read = ReadWholeFile(path, kMaxConfigBytes);
  if (!read.ok()) {
    // "cannot open 'P': why" -> "cannot read config file 'P': why".
    absl::string_view why = read.status().message();
    const std::string opening = absl::StrCat("cannot open '", path, "': ");
    if (absl::StartsWith(why, opening)) why.remove_prefix(opening.size());
    return absl::Status(read.status().code(),
                        absl::StrCat("cannot read config file '", path, "': ", why));
  }
  const std::string& text = *read;
  const std::string base_dir = std::filesystem::path(path).parent_path().string();
  return ParseImpl(text, path, overrides, base_dir);
}

absl::StatusOr<config::JobConfig> ParseJobConfig(std::string_view yaml_text,
                                                 std::string_view source_name,
                                                 const std::vector<std::string>& overrides) {
  return ParseImpl(ToAbsl(yaml_text), ToAbsl(source_name), overrides, /*base_dir=*/"");
}

absl::Status ApplyOverride(std::string_view assignment, config::JobConfig* config) {
  return ApplyOverrideImpl(ToAbsl(assignment), config, /*locations=*/nullptr);
}

absl::Status ValidateRanges(const config::JobConfig& config, std::string_view source_name) {
  return CheckRanges(config, "", FieldLocations(), ToAbsl(source_name));
}

absl::Status ValidateJobConfig(const config::JobConfig& config, std::string_view source_name) {
  return ValidateJobConfigImpl(config, ToAbsl(source_name), FieldLocations());
}

std::string JobConfigToYaml(const config::JobConfig& config) {
  YAML::Emitter out;
  EmitMessage(config, &out);
  return std::string(out.c_str()) + "\n";
}

void ResolveRelativePaths(const std::string& base_dir, config::JobConfig* config) {
  if (base_dir.empty()) return;
  const auto resolve = [&](std::string* path) {
    if (path->empty()) return;
    std::filesystem::path p(*path);
    if (p.is_absolute()) return;
    *path = (std::filesystem::path(base_dir) / p).lexically_normal().string();
  };
  if (config->has_data()) {
    config::DataSection* data = config->mutable_data();
    if (data->has_train_path()) resolve(data->mutable_train_path());
    if (data->has_test_path()) resolve(data->mutable_test_path());
    if (data->has_train_labels_path()) resolve(data->mutable_train_labels_path());
    if (data->has_test_labels_path()) resolve(data->mutable_test_labels_path());
  }
  if (config->has_security()) {
    config::SecuritySection* security = config->mutable_security();
    if (security->has_encryption_key_file()) resolve(security->mutable_encryption_key_file());
    if (security->has_tls()) {
      config::TlsSection* tls = security->mutable_tls();
      if (tls->has_ca()) resolve(tls->mutable_ca());
      if (tls->has_cert()) resolve(tls->mutable_cert());
      if (tls->has_key()) resolve(tls->mutable_key());
    }
  }
}

}  // namespace ps

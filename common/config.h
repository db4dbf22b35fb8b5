// Job config: a YAML file mapped onto the proto2 schema ps::config::JobConfig
// (proto/job_config.proto), plus command-line overrides, then validated.
//
// The mapping is generic and done by protobuf reflection: a YAML mapping is a
// message, its keys are field names, scalars are converted by field type
// (integers, floats, bools, strings, enums by case-insensitive value name) and
// sequences fill repeated fields. A new field in the schema therefore needs no
// code here. Numeric fields are range-checked against the (ps.config.min) and
// (ps.config.max) field options.
//
// Every error is an absl::Status whose message is ONE line of the form
//   <file>:<line>: <field.path>: <what is wrong>
// or, for an override, "--set <assignment>: <field.path>: <what is wrong>".
// Errors found after parsing (ranges, cross-field checks) still name the line
// of the offending field. Parse and validation errors are kInvalidArgument; a
// missing file is kNotFound.
//
// Thread-safety: all functions are pure (no global state besides the immutable
// generated descriptors) and may be called concurrently. yaml-cpp exceptions
// never escape.
#ifndef PS_COMMON_CONFIG_H_
#define PS_COMMON_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/job_config.pb.h"

namespace ps {

// Loads the YAML job config at `path`, applies `overrides` (each
// "section.field=value", from repeated --set flags, in order, after the file)
// and validates the result with ValidateJobConfig().
//
// Relative data paths written in the file (data.train_path, data.test_path)
// are resolved against the directory of `path`, as the schema documents.
// Paths given by an override are kept as given (relative to the working
// directory, like any other command-line path).
//
// Returns kNotFound "cannot read config file '<path>': <strerror>" if the file
// cannot be read, kInvalidArgument for any parse or validation error.
// Largest config file read (a config is a few KiB; /dev/zero is refused).
inline constexpr int64_t kMaxConfigBytes = 16 << 20;

absl::StatusOr<config::JobConfig> LoadJobConfig(const std::string& path,
                                                const std::vector<std::string>& overrides = {});

// Same as LoadJobConfig() from YAML text; `source_name` stands for the file
// name in error messages. Does not resolve relative paths.
absl::StatusOr<config::JobConfig> ParseJobConfig(std::string_view yaml_text,
                                                 std::string_view source_name,
                                                 const std::vector<std::string>& overrides = {});

// Applies one override "a.b=value" to `*config`. The path names a field by its
// field names; the value is parsed as YAML with the same rules as the file (a
// scalar, or a sequence for a repeated field, or a mapping for a message
// field). A repeated field is replaced, not appended to.
// Errors read "--set <assignment>: <path>: <what is wrong>".
// REQUIRES: config != nullptr.
absl::Status ApplyOverride(std::string_view assignment, config::JobConfig* config);

// Checks every numeric field (set or defaulted, recursively, repeated
// elements included) against its (min)/(max) options. Returns the first
// violation as "<source_name>: <field.path>: must be >= 1, got 0". (Through
// ParseJobConfig/LoadJobConfig the message names the field's line instead.)
absl::Status ValidateRanges(const config::JobConfig& config, std::string_view source_name);

// ValidateRanges() plus the few cross-field checks: data.train_path is
// required; cluster.heartbeat_timeout_ms > cluster.heartbeat_interval_ms.
absl::Status ValidateJobConfig(const config::JobConfig& config, std::string_view source_name);

// Renders `config` as YAML with every field of every section, defaults
// included, enums as lower-case names. ParseJobConfig() of the result gives
// back `config` with every field set explicitly (equal to `config` under
// MessageDifferencer::Equivalent, which counts defaults as set).
std::string JobConfigToYaml(const config::JobConfig& config);

// Replaces a non-empty relative data.train_path / data.test_path by
// `base_dir`/path. Absolute and empty paths, and an empty `base_dir`, are left
// alone. REQUIRES: config != nullptr.
void ResolveRelativePaths(const std::string& base_dir, config::JobConfig* config);

}  // namespace ps

#endif  // PS_COMMON_CONFIG_H_

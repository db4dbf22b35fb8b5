#include "common/paths.h"

#include <sys/stat.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/checkpoint.h"

namespace ps {
namespace {

bool HasDotComponent(const std::string& path) {
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == ".." || part == ".") return true;
  }
  return false;
}

// `path` with runs of '/' collapsed and no trailing '/'.
std::string WithoutTrailingSlashes(const std::string& in) {
  std::string path;
  for (char c : in) {
    if (c == '/' && !path.empty() && path.back() == '/') continue;
    path.push_back(c);
  }
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// Whether any existing component of `path` below `root` is a symlink.
bool SymlinkBelow(const std::string& root, const std::string& path) {
  std::string partial = root;
  const std::string rest = path.substr(root.size());
  for (absl::string_view part : absl::StrSplit(rest, '/', absl::SkipEmpty())) {
    absl::StrAppend(&partial, "/", part);
    struct stat st;
    if (lstat(partial.c_str(), &st) != 0) return false;  // not there yet: made by us
    if (S_ISLNK(st.st_mode)) return true;
  }
  return false;
}

}  // namespace

absl::Status CheckOutputRoot(const std::string& dir, const std::string& field) {
  const std::string d = WithoutTrailingSlashes(std::string(absl::StripAsciiWhitespace(dir)));
  if (d.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field,
                                                   ": must not be empty (the folder of the job's "
                                                   "model, logs and metrics)"));
  }
  if (d == "/") return absl::InvalidArgumentError(absl::StrCat(field, ": must not be '/'"));
  if (HasDotComponent(d)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", dir, "' must not contain '.' or '..'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> WritableJobDir(const config::JobConfig& job,
                                           const std::string& requested) {
  const std::string refused = absl::StrCat("refused to write to '", requested, "': ");
  if (requested.empty() || requested[0] != '/') {
    return absl::PermissionDeniedError(absl::StrCat(refused, "not an absolute path"));
  }
  if (HasDotComponent(requested)) {
    return absl::PermissionDeniedError(absl::StrCat(refused, "'.' or '..' in the path"));
  }
  const std::string path = WithoutTrailingSlashes(requested);
  const std::string out = WithoutTrailingSlashes(job.job().output_dir());
  const std::string checkpoints = WithoutTrailingSlashes(CheckpointRoot(job));
  std::string root;
  for (const char* name : {"/model", "/best_model", "/last_model"}) {
    if (path == out + name) root = out;
  }
  if (root.empty() && absl::StartsWith(path, checkpoints + "/epoch-")) {
    const std::string n = path.substr(checkpoints.size() + 7);
    bool digits = !n.empty() && n.size() <= 9;
    for (char c : n) digits = digits && absl::ascii_isdigit(static_cast<unsigned char>(c));
    if (digits) root = checkpoints;
  }
  if (root.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(refused, "not a directory of this job (", out,
                                                    "/model, ", out, "/best_model or ", checkpoints,
                                                    "/epoch-N)"));
  }
  // From the output root when the directory is under it (the checkpoint
  // root too, by default), else from the configured checkpoint root.
  const std::string base = absl::StartsWith(path, out + "/") ? out : root;
  if (SymlinkBelow(base, path)) {
    return absl::PermissionDeniedError(absl::StrCat(refused, "a symbolic link below ", base));
  }
  return path;
}

}  // namespace ps

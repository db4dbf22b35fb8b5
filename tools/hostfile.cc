#include "tools/hostfile.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"

namespace ps {

absl::StatusOr<std::vector<Host>> ParseHostfile(const std::string& text, const std::string& path) {
  std::vector<Host> hosts;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = line.substr(0, line.find('#'));
    std::vector<absl::string_view> words =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (words.empty()) continue;
    const std::string where = absl::StrCat(path, ":", line_no, ": ");
    Host host;
    host.name = std::string(words[0]);
    for (size_t i = 1; i < words.size(); ++i) {
      const absl::string_view w = words[i];
      absl::string_view roles = w;
      if (!absl::ConsumePrefix(&roles, "roles=")) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "unknown option '", w, "' (expected roles=server,worker)"));
      }
      host.servers = host.workers = false;
      for (absl::string_view role : absl::StrSplit(roles, ',')) {
        if (role == "server") {
          host.servers = true;
        } else if (role == "worker") {
          host.workers = true;
        } else {
          return absl::InvalidArgumentError(
              absl::StrCat(where, "unknown role '", role, "' (server or worker)"));
        }
      }
    }
    hosts.push_back(std::move(host));
  }
  if (hosts.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no hosts"));
  bool servers = false, workers = false;
  for (const Host& h : hosts) {
    servers |= h.servers;
    workers |= h.workers;
  }
  if (!servers) return absl::InvalidArgumentError(absl::StrCat(path, ": no host takes servers"));
  if (!workers) return absl::InvalidArgumentError(absl::StrCat(path, ": no host takes workers"));
  return hosts;
}

absl::StatusOr<std::vector<Host>> ReadHostfile(const std::string& path) {
  auto text = ReadWholeFile(path);
  if (!text.ok()) return absl::NotFoundError(absl::StrCat("--hostfile: ", text.status().message()));
  return ParseHostfile(*text, path);
}

std::string ShellCommand(const std::vector<std::string>& args) {
  std::string out;
  for (const std::string& a : args) {
    if (!out.empty()) out += ' ';
    const bool plain =
        !a.empty() && a.find_first_not_of(
                          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                          "_-./:=,@+%") == std::string::npos;
    if (plain) {
      out += a;
      continue;
    }
    out += '\'';
    for (char c : a) {
      if (c == '\'') {
        out += "'\\''";
      } else {
        out += c;
      }
    }
    out += '\'';
  }
  return out;
}

}  // namespace ps

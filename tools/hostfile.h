// A hostfile for ps_launch --hostfile: the machines a job's servers and
// workers run on, one per line, as with mpirun or dmlc's tracker:
//
//   # comments and blank lines are ignored
//   node1                    # servers and workers
//   node2 roles=server       # servers only
//   10.0.0.7 roles=worker
//
// The name is what the process advertises to its peers and what the remote
// shell (ssh) is given. Ranks go round-robin over the hosts that take the
// role, standbys after them.
#ifndef PS_TOOLS_HOSTFILE_H_
#define PS_TOOLS_HOSTFILE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ps {

struct Host {
  std::string name;
  bool servers = true;
  bool workers = true;
};

// Errors name the file and line: `hosts:3: unknown role 'sever' (server or worker)`.
absl::StatusOr<std::vector<Host>> ParseHostfile(const std::string& text, const std::string& path);
absl::StatusOr<std::vector<Host>> ReadHostfile(const std::string& path);

// `args` as one POSIX shell command line (each word single-quoted as needed),
// for a remote shell.
std::string ShellCommand(const std::vector<std::string>& args);

}  // namespace ps

#endif  // PS_TOOLS_HOSTFILE_H_

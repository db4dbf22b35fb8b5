// Child processes of a launcher: spawn, wait with a deadline, terminate.
// Children get PR_SET_PDEATHSIG(SIGKILL), so they die with the launcher even
// if it is killed with SIGKILL. Not thread-safe: one owner thread.
#ifndef PS_TOOLS_PROCESS_GROUP_H_
#define PS_TOOLS_PROCESS_GROUP_H_

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ps {

struct ChildSpec {
  std::string name;               // e.g. "worker-1"
  std::vector<std::string> argv;  // argv[0] is the program path
  std::string log_path;           // stdout+stderr go here; empty: inherit
};

struct ChildExit {
  std::string name;
  pid_t pid = 0;
  int code = 0;     // exit code, or 128 + signal
  bool signaled = false;
};

class ProcessGroup {
 public:
  ProcessGroup() = default;
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;
  // Kills (SIGKILL) and reaps every child still running.
  ~ProcessGroup();

  absl::StatusOr<pid_t> Spawn(const ChildSpec& spec);
  // The next child to exit, or DEADLINE_EXCEEDED at `deadline`, or NOT_FOUND
  // when no child is running.
  absl::StatusOr<ChildExit> WaitAny(absl::Time deadline);
  // SIGTERM to all, then SIGKILL to those still running after `grace`; reaps all.
  std::vector<ChildExit> TerminateAll(absl::Duration grace);
  bool Running(pid_t pid) const { return children_.count(pid) > 0; }
  size_t size() const { return children_.size(); }
  const std::map<pid_t, ChildSpec>& children() const { return children_; }
  // True (and the exit in *out) if child `pid` has exited; reaps it.
  bool Exited(pid_t pid, ChildExit* out);
  // Sends `sig` to one child.
  void Signal(pid_t pid, int sig);

 private:
  std::map<pid_t, ChildSpec> children_;
};

// The directory holding the running executable.
std::string ExecutableDir();

// Waits until `path` holds a port number (written atomically by the child),
// failing if `pid` exits first or at `deadline`.
absl::StatusOr<int> WaitForPortFile(const std::string& path, ProcessGroup* group, pid_t pid,
                                    absl::Time deadline);

// The last `n` lines of a file (for error reports).
std::string TailOfFile(const std::string& path, int n);

}  // namespace ps

#endif  // PS_TOOLS_PROCESS_GROUP_H_

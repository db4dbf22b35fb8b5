#include "tools/process_group.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>
#include <deque>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace ps {
namespace {

// Poll period of the waits below; each wait is bounded by its deadline.
constexpr absl::Duration kPoll = absl::Milliseconds(10);

ChildExit ToExit(const std::string& name, pid_t pid, int status) {
  ChildExit e;
  e.name = name;
  e.pid = pid;
  if (WIFEXITED(status)) {
    e.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    e.code = 128 + WTERMSIG(status);
    e.signaled = true;
  }
  return e;
}

}  // namespace

ProcessGroup::~ProcessGroup() {
  for (const auto& [pid, spec] : children_) kill(pid, SIGKILL);
  for (const auto& [pid, spec] : children_) waitpid(pid, nullptr, 0);
}

absl::StatusOr<pid_t> ProcessGroup::Spawn(const ChildSpec& spec) {
  if (spec.argv.empty()) return absl::InvalidArgumentError("spawn: empty argv");
  if (access(spec.argv[0].c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot run '", spec.argv[0], "': ", strerror(errno)));
  }
  int log_fd = -1;
  if (!spec.log_path.empty()) {
    log_fd = open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      return absl::InternalError(absl::StrCat("cannot write '", spec.log_path, "': ", strerror(errno)));
    }
  }
  std::vector<char*> argv;
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    if (log_fd >= 0) close(log_fd);
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the launcher already died
    if (log_fd >= 0) {
      dup2(log_fd, STDOUT_FILENO);
      dup2(log_fd, STDERR_FILENO);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (log_fd >= 0) close(log_fd);
  children_[pid] = spec;
  return pid;
}

absl::StatusOr<ChildExit> ProcessGroup::WaitAny(absl::Time deadline) {
  while (true) {
    if (children_.empty()) return absl::NotFoundError("no child is running");
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      auto it = children_.find(pid);
      if (it == children_.end()) continue;
      ChildExit e = ToExit(it->second.name, pid, status);
      children_.erase(it);
      return e;
    }
    if (absl::Now() >= deadline) return absl::DeadlineExceededError("no child exited in time");
    absl::SleepFor(kPoll);
  }
}

std::vector<ChildExit> ProcessGroup::TerminateAll(absl::Duration grace) {
  std::vector<ChildExit> exits;
  for (const auto& [pid, spec] : children_) kill(pid, SIGTERM);
  const absl::Time deadline = absl::Now() + grace;
  while (!children_.empty()) {
    auto e = WaitAny(deadline);
    if (e.ok()) {
      exits.push_back(*e);
      continue;
    }
    for (const auto& [pid, spec] : children_) kill(pid, SIGKILL);
    for (const auto& [pid, spec] : children_) {
      int status = 0;
      waitpid(pid, &status, 0);
      exits.push_back(ToExit(spec.name, pid, status));
    }
    children_.clear();
  }
  return exits;
}

bool ProcessGroup::Exited(pid_t pid, ChildExit* out) {
  auto it = children_.find(pid);
  if (it == children_.end()) return false;
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) != pid) return false;
  *out = ToExit(it->second.name, pid, status);
  children_.erase(it);
  return true;
}

void ProcessGroup::Signal(pid_t pid, int sig) {
  if (children_.count(pid)) kill(pid, sig);
}

std::string ExecutableDir() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string path(buf, n);
  return path.substr(0, path.rfind('/'));
}

absl::StatusOr<int> WaitForPortFile(const std::string& path, ProcessGroup* group, pid_t pid,
                                    absl::Time deadline) {
  while (true) {
    std::ifstream in(path);
    std::string text;
    if (in && std::getline(in, text)) {
      int port = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &port) && port > 0) return port;
    }
    ChildExit exit;
    if (group->Exited(pid, &exit)) {
      return absl::FailedPreconditionError(
          absl::StrCat(exit.name, " exited (code ", exit.code, ") before reporting its port"));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("no port in '", path, "' in time"));
    }
    absl::SleepFor(kPoll);
  }
}

std::string TailOfFile(const std::string& path, int n) {
  std::ifstream in(path);
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (static_cast<int>(lines.size()) > n) lines.pop_front();
  }
  std::string out;
  for (const std::string& l : lines) absl::StrAppend(&out, "    ", l, "\n");
  return out;
}

}  // namespace ps

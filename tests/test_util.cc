#include "tests/test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ps::testing {

std::string BinDir() { return PS_BIN_DIR; }

std::string SourceDir() { return PS_SOURCE_DIR; }

std::string NewTempDir(const std::string& name) {
  std::string tmpl = absl::StrCat(::testing::TempDir(), "/", name, "-XXXXXX");
  char* dir = mkdtemp(tmpl.data());
  return dir != nullptr ? std::string(dir) : tmpl;
}

CommandResult RunCommand(const std::vector<std::string>& argv, absl::Duration timeout) {
  CommandResult result;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return result;
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  const absl::Time deadline = absl::Now() + timeout;
  char buf[4096];
  int status = 0;
  bool exited = false;
  while (true) {
    const ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n > 0) {
      result.output.append(buf, n);
      continue;
    }
    if (n == 0) break;  // EOF: every writer closed the pipe
    if (!exited && waitpid(pid, &status, WNOHANG) == pid) exited = true;
    if (absl::Now() > deadline) {
      if (!exited) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        result.output += "\n[test: command timed out and was killed]\n";
        close(fds[0]);
        return result;
      }
      result.output += "\n[test: the command exited but something kept its output open]\n";
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));  // poll period while waiting for output
  }
  if (!exited) waitpid(pid, &status, 0);
  close(fds[0]);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

CommandResult Launch(const std::string& config, const std::string& out,
                     const std::vector<std::string>& sets, const std::vector<std::string>& extra,
                     absl::Duration timeout) {
  std::vector<std::string> argv = {BinDir() + "/ps_launch", "--config", SourceDir() + "/" + config,
                                   "--set", "job.output_dir=" + out, "--set",
                                   "train.progress_interval_ms=0"};
  for (const std::string& s : sets) {
    argv.push_back("--set");
    argv.push_back(s);
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  return RunCommand(argv, timeout);
}

std::string SchedulerAddress(const std::string& log_dir) {
  const std::string port = ReadFile(log_dir + "/scheduler.port");
  return "127.0.0.1:" + port.substr(0, port.find('\n'));
}

std::vector<int> JobProcesses(const std::string& scheduler, const std::string& binary,
                              bool standby) {
  std::vector<int> pids;
  for (int p : ProcessesMentioning(scheduler)) {
    const std::string cmd = ReadFile(absl::StrCat("/proc/", p, "/cmdline"));
    if (cmd.find(binary) == std::string::npos) continue;
    if (!standby && cmd.find("--standby") != std::string::npos) continue;
    pids.push_back(p);
  }
  return pids;
}

std::vector<int> ListeningPorts(int pid) {
  std::set<std::string> sockets;
  const std::string fd_dir = absl::StrCat("/proc/", pid, "/fd");
  if (DIR* fds = opendir(fd_dir.c_str())) {
    while (dirent* e = readdir(fds)) {
      char target[256] = {};
      const std::string link = fd_dir + "/" + e->d_name;
      const ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
      if (n > 0 && std::string(target, n).rfind("socket:[", 0) == 0) {
        sockets.insert(std::string(target + 8, n - 9));
      }
    }
    closedir(fds);
  }
  std::vector<int> ports;
  for (const char* table : {"tcp", "tcp6"}) {
    std::istringstream in(ReadFile(absl::StrCat("/proc/", pid, "/net/", table)));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retr, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (state != "0A" || sockets.count(inode) == 0) continue;  // 0A: LISTEN
      const size_t colon = local.rfind(':');
      if (colon != std::string::npos) ports.push_back(std::stoi(local.substr(colon + 1), nullptr, 16));
    }
  }
  return ports;
}

bool WaitForText(const std::string& path, const std::string& needle, absl::Time deadline) {
  while (ReadFile(path).find(needle) == std::string::npos) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));  // poll period, bounded by the deadline
  }
  return true;
}

std::vector<int> ProcessesMentioning(const std::string& needle) {
  std::vector<int> pids;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  while (dirent* e = readdir(proc)) {
    const int pid = std::atoi(e->d_name);
    if (pid <= 0 || pid == getpid()) continue;
    std::string cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (cmdline.find(needle) != std::string::npos) {
      // Skip zombies: they are gone, only not reaped.
      const std::string s = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
      const size_t close_paren = s.rfind(')');
      if (close_paren != std::string::npos && close_paren + 2 < s.size() && s[close_paren + 2] == 'Z') {
        continue;
      }
      pids.push_back(pid);
    }
  }
  closedir(proc);
  return pids;
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path);
  out << contents;
}

std::string ReadFile(const std::string& path) {
  // read(2), not a stream: reading /proc/PID/... of a process that exits
  // meanwhile fails with ESRCH, which libstdc++'s filebuf throws as an
  // exception (a test polling for a killed job's processes died of it).
  std::string out;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[65536];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // end of file, or the file went away
    }
  }
  close(fd);
  return out;
}

double JsonNumber(const std::string& json, const std::string& anchor, const std::string& key) {
  size_t pos = json.find(anchor);
  if (pos == std::string::npos) return std::nan("");
  pos = json.find("\"" + key + "\"", pos);
  if (pos == std::string::npos) return std::nan("");
  pos = json.find(':', pos);
  return std::strtod(json.c_str() + pos + 1, nullptr);
}

int UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string TokenFlag(const std::string& role) { return "--token_file=" + TokenPath(role); }

std::string TokenPath(const std::string& role) {
  static const std::string* dir = [] {
    auto* d = new std::string(NewTempDir("tokens") + "/keys");
    CommandResult r = RunCommand({BinDir() + "/psctl", "keygen", *d}, absl::Seconds(30));
    if (r.exit_code != 0) std::cerr << "psctl keygen failed: " << r.output << std::endl;
    return d;
  }();
  const std::string file = role == "server" || role == "worker" ? role : "job";
  return *dir + "/" + file + ".token";
}

}  // namespace ps::testing

#include "tools/local_cluster.h"

#include <sys/stat.h>

#include <filesystem>
#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/auth.h"
#include "common/file_util.h"
#include "common/rpc.h"

namespace ps {
namespace {

std::string DescribeExit(int code) {
  if (code > 128) return absl::StrCat("on signal ", code - 128);
  return absl::StrCat("with code ", code);
}

}  // namespace

absl::Status LocalCluster::Start(const config::JobConfig& job, const LocalClusterOptions& options) {
  if (absl::Status s = MakeDirs(options.log_dir); !s.ok()) return s;
  const std::string port_file = options.log_dir + "/scheduler.port";
  unlink(port_file.c_str());
  const bool remote = !options.hosts.empty();
  // Flags every process gets: the log format, TLS, the message limit.
  std::vector<std::string> common_flags = options.member_flags;
  common_flags.push_back(
      absl::StrCat("--max_message_bytes=", job.security().limits().max_message_bytes()));
  // Each process's own flags: its role's token file and certificate.
  auto role_flags = [&](const std::string& role) {
    std::vector<std::string> flags;
    if (!auth_dir_.empty()) {
      flags.push_back(absl::StrCat("--token_file=", auth_dir_, "/",
                                   role == "scheduler" ? "job" : role, ".token"));
    }
    if (!job.security().tls().cert().empty()) {
      const TlsFiles tls = TlsFilesForRole(job.security().tls(), role);
      flags.insert(flags.end(),
                   {"--tls_ca=" + tls.ca, "--tls_cert=" + tls.cert, "--tls_key=" + tls.key});
      if (tls.mutual) flags.push_back("--tls_mutual");
    }
    return flags;
  };
  if (!job.security().insecure()) {
    // Beside the logs, absolute (remote hosts share the paths).
    std::error_code ec;
    const std::filesystem::path logs = std::filesystem::absolute(options.log_dir, ec);
    auth_dir_ = (logs.lexically_normal().parent_path() / "auth").string();
    if (!logs.has_filename()) auth_dir_ = (logs.parent_path().parent_path() / "auth").string();
    absl::Status made = options.token_file.empty()
                            ? WriteTokenFiles(auth_dir_)
                            : WriteTokenFilesFrom(options.token_file, auth_dir_);
    if (!made.ok()) return made;
  }
  ChildSpec scheduler{"scheduler",
                      {options.bin_dir + "/ps_scheduler", "--config", options.config_path, "--host",
                       remote ? "0.0.0.0" : "127.0.0.1", "--port", "0", "--port_file", port_file},
                      options.scheduler_to_log ? options.log_dir + "/scheduler.log" : ""};
  if (remote) scheduler.argv.push_back("--advertise=" + options.scheduler_host);
  for (const std::string& o : options.overrides) {
    scheduler.argv.push_back("--set");
    scheduler.argv.push_back(o);
  }
  scheduler.argv.insert(scheduler.argv.end(), options.scheduler_flags.begin(),
                        options.scheduler_flags.end());
  scheduler.argv.insert(scheduler.argv.end(), common_flags.begin(), common_flags.end());
  for (const std::string& f : role_flags("scheduler")) scheduler.argv.push_back(f);
  auto pid = group_.Spawn(scheduler);
  if (!pid.ok()) return pid.status();
  pids_["scheduler"] = *pid;
  logs_["scheduler"] = scheduler.log_path;
  auto port = WaitForPortFile(port_file, &group_, *pid, absl::Now() + options.start_timeout);
  if (!port.ok()) {
    return absl::Status(port.status().code(),
                        absl::StrCat("the scheduler did not start: ", port.status().message()));
  }
  scheduler_address_ = absl::StrCat(remote ? options.scheduler_host : "127.0.0.1", ":", *port);
  // Round-robin over the hosts that take each role.
  std::map<std::string, std::vector<const Host*>> hosts_for;
  for (const Host& h : options.hosts) {
    if (h.servers) hosts_for["server"].push_back(&h);
    if (h.workers) hosts_for["worker"].push_back(&h);
  }
  std::map<std::string, size_t> next_host;
  auto spawn = [&](const std::string& role, int rank, std::vector<std::string> extra) -> absl::Status {
    const std::string name = absl::StrCat(role, "-", rank);
    std::vector<std::string> argv = {absl::StrCat(options.bin_dir, "/ps_", role), "--scheduler",
                                     scheduler_address_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.insert(argv.end(), common_flags.begin(), common_flags.end());
    for (const std::string& f : role_flags(role)) argv.push_back(f);
    if (remote) {
      const std::vector<const Host*>& on = hosts_for[role];
      const Host& host = *on[next_host[role]++ % on.size()];
      argv.insert(argv.end(), {"--host", "0.0.0.0", "--advertise", host.name});
      std::vector<std::string> shell = options.rsh;
      shell.push_back(host.name);
      shell.push_back("exec " + ShellCommand(argv));
      argv = std::move(shell);
    }
    ChildSpec spec{name, std::move(argv), absl::StrCat(options.log_dir, "/", name, ".log")};
    auto p = group_.Spawn(spec);
    if (!p.ok()) return p.status();
    pids_[name] = *p;
    logs_[name] = spec.log_path;
    return absl::OkStatus();
  };
  for (int i = 0; i < job.cluster().num_servers(); ++i) {
    if (absl::Status s = spawn("server", i, {}); !s.ok()) return s;
  }
  for (int i = 0; i < job.cluster().standby_servers(); ++i) {
    if (absl::Status s = spawn("server", job.cluster().num_servers() + i, {"--standby"}); !s.ok()) {
      return s;
    }
  }
  // With replicas or checkpoints the job may outlive a server.
  replicated_ = job.cluster().replication() >= 2 || job.checkpoint().every_epochs() > 0;
  if (options.start_workers) {
    for (int i = 0; i < job.cluster().num_workers(); ++i) {
      std::vector<std::string> extra;
      auto d = options.worker_delay_ms.find(i);
      if (d != options.worker_delay_ms.end()) extra = {"--iteration_delay_ms", std::to_string(d->second)};
      if (absl::Status s = spawn("worker", i, extra); !s.ok()) return s;
    }
    for (int i = 0; i < job.cluster().standby_workers(); ++i) {
      const int n = job.cluster().num_workers() + i;
      if (absl::Status s = spawn("worker", n, {"--standby"}); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

pid_t LocalCluster::Pid(const std::string& name) const {
  auto it = pids_.find(name);
  return it == pids_.end() ? 0 : it->second;
}

int LocalCluster::Wait(absl::Time deadline, std::string* error,
                       const std::function<bool()>& interrupted) {
  while (group_.size() > 0) {
    if (interrupted && interrupted()) {
      *error = "interrupted; stopped the job";
      group_.TerminateAll(absl::Seconds(3));
      return 130;
    }
    auto exit = group_.WaitAny(std::min(deadline, absl::Now() + absl::Milliseconds(200)));
    if (!exit.ok()) {
      if (absl::Now() < deadline) continue;
      *error = "the job did not finish in time; stopped it";
      group_.TerminateAll(absl::Seconds(2));
      return 1;
    }
    const bool member_may_go = exit->name.rfind("worker-", 0) == 0 ||
                               (replicated_ && exit->name.rfind("server-", 0) == 0);
    if (exit->code != 0 && member_may_go) {
      // The scheduler decides: it goes on without a dead worker, or fails the
      // job (then it exits non-zero and we report this worker too).
      std::cerr << "ps_launch: " << exit->name << " exited " << DescribeExit(exit->code)
                << "; the scheduler decides whether the job goes on" << std::endl;
      if (worker_error_.empty()) {
        worker_error_ = absl::StrCat(exit->name, " exited with code ", exit->code);
        const std::string& log = logs_[exit->name];
        if (!log.empty()) absl::StrAppend(&worker_error_, "; the end of ", log, ":\n", TailOfFile(log, 5));
      }
      continue;
    }
    if (exit->code != 0) {
      *error = absl::StrCat(exit->name, " exited with code ", exit->code);
      if (exit->name == "scheduler" && !worker_error_.empty()) absl::StrAppend(error, "; ", worker_error_);
      const std::string& log = logs_[exit->name];
      if (!log.empty()) absl::StrAppend(error, "; the end of ", log, ":\n", TailOfFile(log, 5));
      group_.TerminateAll(absl::Seconds(2));
      return 1;
    }
    if (exit->name == "scheduler") {
      // The job is over; the others leave within a heartbeat or two.
      const absl::Time grace = std::min(deadline, absl::Now() + absl::Seconds(10));
      while (group_.size() > 0) {
        auto rest = group_.WaitAny(grace);
        if (!rest.ok()) {
          for (const auto& e : group_.TerminateAll(absl::Seconds(2))) {
            if (replicated_) {
              // The job went on without it (cut off, frozen): the scheduler
              // said the job succeeded.
              std::cerr << "ps_launch: " << e.name
                        << " was still running after the job ended (the job went on without it); "
                           "stopped it"
                        << std::endl;
            } else {
              *error = absl::StrCat(e.name, " did not exit after the job ended; killed");
            }
          }
          return error->empty() ? 0 : 1;
        }
        if (rest->code != 0) *error = absl::StrCat(rest->name, " exited with code ", rest->code);
      }
      return error->empty() ? 0 : 1;
    }
  }
  return 0;
}

}  // namespace ps

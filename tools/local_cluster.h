// A whole job on this machine: one ps_scheduler, the job's servers and
// (optionally) workers, each a separate process on loopback with port 0;
// or, with LocalClusterOptions.hosts, on several machines through ssh.
// Used by ps_launch, ps_bench and the multi-process tests.
// Not thread-safe: one owner thread.
#ifndef PS_TOOLS_LOCAL_CLUSTER_H_
#define PS_TOOLS_LOCAL_CLUSTER_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/job_config.pb.h"
#include "tools/hostfile.h"
#include "tools/process_group.h"

namespace ps {

struct LocalClusterOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // --set values, passed on to the scheduler
  std::string bin_dir;                 // where ps_scheduler/ps_server/ps_worker are
  std::string log_dir;                 // servers' and workers' logs
  bool start_workers = true;
  bool scheduler_to_log = false;       // else the scheduler writes to our stdout/stderr
  std::map<int, int> worker_delay_ms;  // rank -> per-iteration delay (test hook)
  std::vector<std::string> scheduler_flags;  // extra ps_scheduler flags, e.g. --resume
  // Passed to every process (scheduler, servers, workers), e.g. --log_format=json.
  std::vector<std::string> member_flags;
  absl::Duration start_timeout = absl::Seconds(30);
  // Several machines (ps_launch --hostfile): servers and workers run on
  // these hosts (round-robin over those that take the role) through the
  // remote shell `rsh` (its words; the host and the command line follow),
  // bound to every interface and advertising the host's name; the scheduler
  // runs here, bound to every interface, and is reached at scheduler_host.
  // Paths (binaries, data, the output folder) must be the same on every host.
  std::vector<Host> hosts;
  std::vector<std::string> rsh;
  std::string scheduler_host;
  // Credentials (unless security.insecure): the job secret in this file
  // (job.token of `psctl keygen`), or, when empty, a fresh one that Start
  // writes to <log_dir>/../auth/job.token. Either way each process gets
  // its role's file as --token_file: the scheduler job.token, servers
  // server.token, workers worker.token (in auth_dir(), mode 0600).
  std::string token_file;
};

class LocalCluster {
 public:
  // Starts the scheduler, waits for its port, starts servers and workers.
  absl::Status Start(const config::JobConfig& job, const LocalClusterOptions& options);

  // Waits for the job to end: returns 0 when every process exited 0; else
  // terminates the rest and returns 1, with `*error` naming the process that
  // failed first and the tail of its log. Gives up at `deadline` (returns 1).
  // Stops the job and returns 130 when `interrupted` (polled) says so.
  int Wait(absl::Time deadline, std::string* error,
           const std::function<bool()>& interrupted = nullptr);

  const std::string& scheduler_address() const { return scheduler_address_; }
  // The folder of the job's token files ("" with security.insecure).
  const std::string& auth_dir() const { return auth_dir_; }
  ProcessGroup& processes() { return group_; }
  // pid of server/worker `rank` ("server-0", "worker-1"), or 0.
  pid_t Pid(const std::string& name) const;

 private:
  ProcessGroup group_;
  std::string scheduler_address_;
  std::string auth_dir_;
  std::map<std::string, pid_t> pids_;
  std::map<std::string, std::string> logs_;
  std::string worker_error_;  // the first worker that exited non-zero
  bool replicated_ = false;   // servers may die too: the scheduler decides
};

}  // namespace ps

#endif  // PS_TOOLS_LOCAL_CLUSTER_H_

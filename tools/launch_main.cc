// ps_launch: runs a whole job on this machine from its config file: one
// scheduler, the servers and the workers, each its own process. Prints the
// scheduler's progress; servers' and workers' logs go to <output_dir>/logs.
// Exits 0 when the job succeeded, non-zero (and says why) otherwise; leaves
// no process behind either way.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/file_util.h"
#include "common/flags_util.h"
#include "common/logging.h"
#include "common/signals.h"
#include "tools/local_cluster.h"

ABSL_FLAG(std::string, config, "", "job config file (YAML), required");
ABSL_FLAG(std::string, bin_dir, "", "where the ps_* binaries are; default: next to ps_launch");
ABSL_FLAG(std::string, worker_delay, "",
          "test hook: RANK:MS makes worker RANK sleep MS milliseconds every iteration");
ABSL_FLAG(int, timeout_s, 0, "stop the job (and fail) after this many seconds; 0: no limit");
ABSL_FLAG(std::string, hostfile, "",
          "run the servers and workers on the hosts listed in this file (one per line: NAME "
          "[roles=server,worker]) through --rsh; the scheduler runs here");
ABSL_FLAG(std::string, rsh, "ssh -o BatchMode=yes -tt",
          "--hostfile: the remote shell, followed by the host and the command line (-tt: the "
          "remote process ends with the connection)");
ABSL_FLAG(std::string, scheduler_host, "",
          "--hostfile: the name the hosts reach this machine at (default: its hostname)");
ABSL_FLAG(bool, resume, false,
          "restart the job from its latest complete checkpoint (see checkpoint.every_epochs)");

namespace ps {
namespace {

int Fatal(const std::string& message, int code = 2) {
  std::cerr << "ps_launch: error: " << message << std::endl;
  return code;
}

absl::Status CheckReadable(const std::string& config_path, const std::string& field,
                           const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(config_path, ": ", field, ": cannot open '", path, "': ", strerror(errno)));
  }
  return absl::OkStatus();
}

int Run(const std::vector<std::string>& overrides) {
  const std::string config_path = absl::GetFlag(FLAGS_config);
  if (config_path.empty()) return Fatal("--config is required");
  auto job = LoadJobConfig(config_path, overrides);
  if (!job.ok()) return Fatal(std::string(job.status().message()));
  if (absl::Status s = CheckReadable(config_path, "data.train_path", job->data().train_path()); !s.ok()) {
    return Fatal(std::string(s.message()));
  }
  for (const auto& [field, path] : {std::pair<const char*, std::string>{"data.test_path", job->data().test_path()},
                                     {"data.train_labels_path", job->data().train_labels_path()},
                                     {"data.test_labels_path", job->data().test_labels_path()}}) {
    if (path.empty()) continue;
    if (absl::Status s = CheckReadable(config_path, field, path); !s.ok()) {
      return Fatal(std::string(s.message()));
    }
  }
  LocalClusterOptions options;
  options.config_path = config_path;
  options.token_file = TokenFileFromFlags();
  options.overrides = overrides;
  options.bin_dir = absl::GetFlag(FLAGS_bin_dir).empty() ? ExecutableDir() : absl::GetFlag(FLAGS_bin_dir);
  options.log_dir = job->job().output_dir() + "/logs";
  if (absl::Status s = MakeDirs(options.log_dir); !s.ok()) return Fatal(std::string(s.message()));
  if (const std::string d = absl::GetFlag(FLAGS_worker_delay); !d.empty()) {
    std::vector<std::string> parts = absl::StrSplit(d, ':');
    int rank, ms;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &rank) || !absl::SimpleAtoi(parts[1], &ms)) {
      return Fatal(absl::StrCat("--worker_delay: '", d, "' is not RANK:MS"));
    }
    options.worker_delay_ms[rank] = ms;
  }
  if (absl::GetFlag(FLAGS_resume)) options.scheduler_flags.push_back("--resume");
  const std::string log_format = absl::GetFlag(FLAGS_log_format);
  if (log_format != "text" && log_format != "json") {
    return Fatal(absl::StrCat("--log_format: '", log_format, "' is not text or json"));
  }
  options.member_flags.push_back("--log_format=" + log_format);
  if (const std::string hostfile = absl::GetFlag(FLAGS_hostfile); !hostfile.empty()) {
    auto hosts = ReadHostfile(hostfile);
    if (!hosts.ok()) return Fatal(std::string(hosts.status().message()));
    options.hosts = std::move(*hosts);
    options.rsh = absl::StrSplit(absl::GetFlag(FLAGS_rsh), ' ', absl::SkipEmpty());
    if (options.rsh.empty()) return Fatal("--rsh is empty");
    options.scheduler_host = absl::GetFlag(FLAGS_scheduler_host);
    if (options.scheduler_host.empty()) {
      char name[256] = {};
      gethostname(name, sizeof(name) - 1);
      options.scheduler_host = name;
    }
  }
  LocalCluster cluster;
  if (absl::Status s = cluster.Start(*job, options); !s.ok()) return Fatal(std::string(s.message()), 1);
  std::cout << "ps_launch: job '" << job->job().name() << "': scheduler at "
            << cluster.scheduler_address() << ", " << job->cluster().num_servers() << " servers, "
            << job->cluster().num_workers() << " workers"
            << (options.hosts.empty() ? "" : absl::StrCat(" on ", options.hosts.size(), " hosts"))
            << "; logs in " << options.log_dir << std::endl;
  const int timeout = absl::GetFlag(FLAGS_timeout_s);
  const absl::Time deadline =
      timeout > 0 ? absl::Now() + absl::Seconds(timeout) : absl::InfiniteFuture();
  std::string error;
  const int code = cluster.Wait(deadline, &error, [] { return StopRequested(); });
  if (code != 0) return Fatal(error, code);
  const std::string metrics_path = job->job().output_dir() + "/metrics.json";
  std::ifstream metrics(metrics_path);
  std::string line;
  std::cout << "ps_launch: job '" << job->job().name() << "' finished:" << std::endl;
  for (const char* key : {"\"wall_seconds\"", "\"samples_per_second\"", "\"test\""}) {
    metrics.clear();
    metrics.seekg(0);
    while (std::getline(metrics, line)) {
      if (line.find(key) != std::string::npos) {
        std::cout << line << std::endl;
        break;
      }
    }
  }
  std::cout << "ps_launch: results in " << metrics_path << ", model in " << job->job().output_dir()
            << "/model (print it with: ps_model dump " << job->job().output_dir() << "/model)"
            << std::endl;
  return 0;
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("ps_launch --config=JOB.yaml [--set section.field=value ...] [--resume]");
  std::vector<std::string> overrides = ps::ExtractRepeatedFlag("set", &argc, argv);
  absl::ParseCommandLine(argc, argv);
  ps::InstallStopSignalHandlers();
  umask(077);  // the job's files (token files among them) are its owner's alone
  return ps::Run(overrides);
}

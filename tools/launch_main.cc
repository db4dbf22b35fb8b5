// ps_launch: runs a whole job on this machine from its config file: one
// scheduler, the servers and the workers, each its own process. Prints the
// scheduler's progress; servers' and workers' logs go to <output_dir>/logs.
// Exits 0 when the job succeeded, non-zero (and says why) otherwise; leaves
// no process behind either way.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/audit.h"
#include "common/auth.h"
#include "common/checkpoint.h"
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
  const int timeout = absl::GetFlag(FLAGS_timeout_s);
  const absl::Time deadline =
      timeout > 0 ? absl::Now() + absl::Seconds(timeout) : absl::InfiniteFuture();
  const std::string output_dir = job->job().output_dir();
  // A restart resumes only from a checkpoint this launch wrote (or, with
  // --resume, one it was asked to resume from): not from one an earlier
  // job left in the same directory.
  const auto launched = std::filesystem::file_time_type::clock::now();
  const bool asked_to_resume = absl::GetFlag(FLAGS_resume);
  if (job->job().max_restarts() > 0) {
    if (absl::Status s = OpenAuditLog(output_dir + "/audit.log", "launcher"); !s.ok()) {
      return Fatal(std::string(s.message()));
    }
  }
  for (int attempt = 0;; ++attempt) {
    LocalCluster cluster;
    if (absl::Status s = cluster.Start(*job, options); !s.ok()) {
      return Fatal(std::string(s.message()), 1);
    }
    std::cout << "ps_launch: job '" << job->job().name() << "': scheduler at "
              << cluster.scheduler_address() << ", " << job->cluster().num_servers()
              << " servers, " << job->cluster().num_workers() << " workers"
              << (options.hosts.empty() ? "" : absl::StrCat(" on ", options.hosts.size(), " hosts"))
              << "; logs in " << options.log_dir << std::endl;
    std::string error;
    const int code = cluster.Wait(deadline, &error, [] { return StopRequested(); });
    if (code == 0) break;
    // Stopped by the user (130) or out of time: not a failure to retry.
    if (code == 130 || StopRequested() || absl::Now() >= deadline ||
        attempt >= job->job().max_restarts()) {
      return Fatal(error, code);
    }
    // job.max_restarts: the job again, from its latest complete checkpoint
    // if it has one (else from the start), the failed attempt's logs kept.
    auto found = FindLatestCheckpoint(CheckpointRoot(*job));
    if (!found.ok() && !absl::IsNotFound(found.status())) {
      // A damaged checkpoint: not silently replaced by a start from scratch.
      return Fatal(absl::StrCat(error, "\nps_launch: no restart (job.max_restarts): ",
                                found.status().message()),
                   code);
    }
    std::error_code time_error;
    const bool ours = found.ok() &&
                      (asked_to_resume ||
                       std::filesystem::last_write_time(found->dir + "/manifest", time_error) >=
                           launched);
    const std::string from =
        ours ? found->dir
             : (found.ok() ? "the start (its only checkpoints are older than this launch)"
                           : "the start (no complete checkpoint)");
    std::cerr << "ps_launch: the job failed: " << error << std::endl;
    std::cerr << "ps_launch: restart " << attempt + 1 << " of " << job->job().max_restarts()
              << " (job.max_restarts), from " << from << std::endl;
    Audit("job_restarted", {{"restart", absl::StrCat(attempt + 1)},
                            {"max_restarts", absl::StrCat(job->job().max_restarts())},
                            {"from", from},
                            {"error", error.substr(0, error.find('\n'))}});
    const std::string kept = absl::StrCat(output_dir, "/logs-attempt-", attempt + 1);
    std::error_code ec;
    std::filesystem::remove_all(kept, ec);
    std::filesystem::rename(options.log_dir, kept, ec);
    if (ec) {
      std::cerr << "ps_launch: warning: could not keep the failed attempt's logs in " << kept
                << ": " << ec.message() << "; the next attempt writes over them" << std::endl;
    }
    if (absl::Status s = MakeDirs(options.log_dir); !s.ok()) return Fatal(std::string(s.message()));
    auto& flags = options.scheduler_flags;
    flags.erase(std::remove(flags.begin(), flags.end(), "--resume"), flags.end());
    if (ours) flags.push_back("--resume");
    // A job failing the same way each time does not spin.
    absl::SleepFor(absl::Seconds(std::min(attempt + 1, 10)));
  }
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

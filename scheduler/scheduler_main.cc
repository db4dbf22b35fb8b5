// ps_scheduler: reads the job config, hands it to the servers and workers
// that register, coordinates the job, writes its results.
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/audit.h"
#include "common/auth.h"
#include "common/checkpoint.h"
#include "common/config.h"
#include "common/file_util.h"
#include "common/flags_util.h"
#include "common/logging.h"
#include "common/model_io.h"
#include "common/monitoring.h"
#include "common/net.h"
#include "common/refusal_metrics.h"
#include "common/rpc.h"
#include "common/sealed_file.h"
#include "common/signals.h"
#include "common/sync.h"
#include "scheduler/scheduler_core.h"
#include "scheduler/scheduler_metrics.h"
#include "scheduler/scheduler_service.h"

ABSL_FLAG(std::string, config, "", "job config file (YAML), required");
ABSL_FLAG(std::string, host, "", "address to listen on; default: the host of cluster.scheduler_address");
ABSL_FLAG(int, port, -1, "port to listen on (0 picks one); default: cluster.scheduler_address's port");
ABSL_FLAG(std::string, port_file, "", "if set, the bound port is written to this file");
ABSL_FLAG(std::string, advertise, "",
          "HOST the scheduler lists its own metrics under in the targets file (default: the listen "
          "host, or the hostname if it is a wildcard)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error");
ABSL_FLAG(bool, resume, false,
          "restart the job from its latest complete checkpoint (checkpoint.dir): servers load "
          "their partitions from it, workers start at the epoch after it");
ABSL_FLAG(bool, restore, false,
          "carry on a running job whose scheduler stopped, from its state file "
          "(<job.output_dir>/scheduler.state), on the port it had (unless --port is given); its "
          "servers and workers keep training meanwhile and keep their node ids");

namespace ps {
namespace {

int Fatal(const std::string& message) {
  std::cerr << "ps_scheduler: error: " << message << std::endl;
  return 1;
}

std::string Absolute(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof(cwd)) == nullptr) return path;
  return absl::StrCat(cwd, "/", path);
}

int Run(const std::vector<std::string>& overrides) {
  const std::string path = absl::GetFlag(FLAGS_config);
  if (path.empty()) return Fatal("--config is required");
  auto job = LoadJobConfig(path, overrides);
  if (!job.ok()) return Fatal(std::string(job.status().message()));
  // LoadJobConfig made data paths relative to the config file's folder; the
  // other processes may run elsewhere, so hand them absolute paths.
  ResolveRelativePaths(Absolute("."), &*job);
  job->mutable_job()->set_output_dir(Absolute(job->job().output_dir()));
  if (!job->checkpoint().dir().empty()) {
    job->mutable_checkpoint()->set_dir(Absolute(job->checkpoint().dir()));
  }
  if (absl::Status s = MakeDirs(job->job().output_dir()); !s.ok()) return Fatal(std::string(s.message()));
  // Before any model, checkpoint or state file is read or written.
  if (absl::Status s = SetEncryptionKeyFile(job->security().encryption_key_file(),
                                            "security.encryption_key_file");
      !s.ok()) {
    return Fatal(std::string(s.message()));
  }
  const bool resume = absl::GetFlag(FLAGS_resume), restore = absl::GetFlag(FLAGS_restore);
  if (resume && restore) return Fatal("--resume and --restore exclude each other");
  const std::string state_path = job->job().output_dir() + "/scheduler.state";
  rpc::SchedulerState saved;
  if (restore) {
    // The job as the first scheduler resolved it, not the file as it is now.
    auto read = ReadSchedulerState(state_path);
    if (!read.ok()) return Fatal(absl::StrCat("--restore: ", read.status().message()));
    saved = std::move(*read);
    *job = saved.job();
  }

  // Security: TLS (flags, else security.tls), then the job secret.
  if (absl::Status s = SetTransportSecurityFromFlags(); !s.ok())
    return Fatal(std::string(s.message()));
  if (!TransportIsTls() && !job->security().tls().cert().empty()) {
    if (absl::Status s = SetTransportSecurity(TlsFilesForRole(job->security().tls(), "scheduler"));
        !s.ok()) {
      return Fatal(absl::StrCat("security.tls: ", s.message()));
    }
  }
  std::unique_ptr<TicketSigner> signer;
  if (job->security().insecure()) {
    spdlog::warn(
        "security.insecure is set: calls without a credential are accepted; anyone who "
        "reaches this job's ports can push, pull, save or drain");
  } else {
    const std::string token_path = TokenFileFromFlags();
    if (token_path.empty()) {
      return Fatal(
          "no credential: give --token_file (or $PS_TOKEN_FILE) the job secret: `psctl keygen DIR` "
          "writes DIR/job.token for the scheduler and psctl, DIR/server.token and "
          "DIR/worker.token for the members (ps_launch does this itself); or set "
          "security.insecure: true to accept anonymous calls");
    }
    auto token = LoadProcessCredentials(token_path, rpc::PRINCIPAL_SCHEDULER);
    if (!token.ok()) return Fatal(std::string(token.status().message()));
    if (token->kind != TokenKind::kJob) {
      return Fatal(absl::StrCat("--token_file: '", token_path,
                                "' holds a member's key; the scheduler needs the job secret "
                                "(job.token of `psctl keygen`)"));
    }
    auto made = TicketSigner::Create(token->secret);
    if (!made.ok()) return Fatal(std::string(made.status().message()));
    signer = std::move(*made);
  }
  if (absl::Status s = OpenAuditLog(job->job().output_dir() + "/audit.log", "scheduler"); !s.ok()) {
    return Fatal(std::string(s.message()));
  }

  std::string host;
  int port;
  if (absl::Status s = ParseHostPort(job->cluster().scheduler_address(), "cluster.scheduler_address",
                                     &host, &port);
      !s.ok()) {
    return Fatal(std::string(s.message()));
  }
  if (restore) {
    // Members know the old address.
    if (!saved.host().empty()) host = saved.host();
    port = saved.port();
  }
  if (!absl::GetFlag(FLAGS_host).empty()) host = absl::GetFlag(FLAGS_host);
  if (absl::GetFlag(FLAGS_port) >= 0) port = absl::GetFlag(FLAGS_port);

  auto monitoring_or = Monitoring::FromFlags(host);
  if (!monitoring_or.ok()) return Fatal(std::string(monitoring_or.status().message()));
  Monitoring* monitoring = monitoring_or->get();
  SetLogId(absl::StrCat("job ", job->job().name()));
  SchedulerCore::Options options{state_path};
  if (monitoring != nullptr) options.barrier_waited = BarrierWaitObserver(monitoring);
  SchedulerCore core(*job, absl::Now(), std::move(options));
  std::unique_ptr<Monitoring::Collection> state_metrics;
  if (monitoring != nullptr) state_metrics = ExportSchedulerState(&core, monitoring);
  if (restore) {
    if (absl::Status s = core.Restore(saved, core.Now()); !s.ok()) {
      return Fatal(absl::StrCat("--restore: ", s.message()));
    }
  }
  if (resume) {
    auto found = FindLatestCheckpoint(CheckpointRoot(*job));
    if (!found.ok()) return Fatal(absl::StrCat("--resume: ", found.status().message()));
    if (absl::Status s = core.ResumeFrom(*found); !s.ok()) return Fatal(std::string(s.message()));
  }
  SchedulerService service(&core, signer.get(), job->security());
  std::unique_ptr<Monitoring::Collection> refusal_metrics;
  if (monitoring != nullptr)
    refusal_metrics = ExportRefusals(&service.authorizer(), "scheduler", monitoring);
  ServerLimits limits = ServerLimitsFromFlags();
  limits.max_message_bytes = job->security().limits().max_message_bytes();
  limits.max_streams_per_peer = job->security().limits().max_streams_per_peer();
  auto running = StartGrpcServer(host, port, {&service}, limits);
  if (!running.ok()) return Fatal(std::string(running.status().message()));
  core.SetListenAddress(host, running->port);
  std::string self_metrics;
  if (monitoring != nullptr) {
    auto advertised = AdvertisedAddress(absl::GetFlag(FLAGS_advertise), host, monitoring->port(),
                                        absl::Milliseconds(job->cluster().connect_timeout_ms()));
    if (!advertised.ok()) return Fatal(std::string(advertised.status().message()));
    self_metrics = *advertised;
    spdlog::info("scheduler metrics on {}", self_metrics);
    Monitoring::SetReady(true);
  }
  if (restore) {
    spdlog::info("scheduler of job '{}' restored, listening on {}:{}", job->job().name(), host,
                 running->port);
  } else {
    spdlog::info("scheduler of job '{}' listening on {}:{}; waiting for {} servers and {} workers",
                 job->job().name(), host, running->port, job->cluster().num_servers(),
                 job->cluster().num_workers());
  }
  if (!absl::GetFlag(FLAGS_port_file).empty()) {
    if (absl::Status s = WriteFileAtomically(absl::GetFlag(FLAGS_port_file),
                                             absl::StrCat(running->port, "\n"));
        !s.ok()) {
      return Fatal(std::string(s.message()));
    }
  }
  // Every member's /metrics endpoint, for Prometheus's file_sd_configs.
  const std::string targets_path = job->job().output_dir() + "/prometheus_targets.json";
  std::string targets;
  absl::Time targets_checked;
  while (!core.Poll(core.Now())) {
    if (absl::Now() - targets_checked > absl::Milliseconds(500)) {
      targets_checked = absl::Now();
      std::string now = PrometheusTargets(core.Status(targets_checked), self_metrics);
      if (now != targets && WriteFileAtomically(targets_path, now).ok()) targets = std::move(now);
    }
    if (StopRequested()) {
      // Members see FAILED at their next heartbeat (or are being stopped too).
      core.Fail("the scheduler was asked to stop");
      break;
    }
    core.WaitForWork(absl::Milliseconds(50));  // the loop's period, or sooner when there is work
  }
  running->server->Shutdown(DeadlineIn(absl::Seconds(1)));
  // Only a scheduler that stops without getting here leaves a state to restore.
  core.RemoveStateFile();
  if (core.state() != rpc::DONE) return Fatal(absl::StrCat("the job failed: ", core.failure()));
  spdlog::info("job '{}' done", job->job().name());
  return 0;
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "ps_scheduler --config=JOB.yaml [--set section.field=value ...] [--port=N --port_file=F] "
      "[--resume | --restore]");
  std::vector<std::string> overrides = ps::ExtractRepeatedFlag("set", &argc, argv);
  absl::ParseCommandLine(argc, argv);
  ps::InstallStopSignalHandlers();
  umask(077);  // the job's files are its owner's alone
  ps::ConfigureMutexDeadlockDetection();
  if (absl::Status s = ps::InitLogging("scheduler", absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    std::cerr << "ps_scheduler: error: " << s.message() << std::endl;
    return 1;
  }
  return ps::Run(overrides);
}

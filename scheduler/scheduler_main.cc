// ps_scheduler: reads the job config, hands it to the servers and workers
// that register, coordinates the job, writes its results.
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <iostream>

#include "absl/cleanup/cleanup.h"
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
#include "scheduler/etcd_coordinator.h"
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
          "servers and workers keep training meanwhile and keep their node ids); with "
          "cluster.coordinator: etcd, from the state in etcd");
ABSL_FLAG(bool, standby, false,
          "with cluster.coordinator: etcd: stand by for the job's leading scheduler and take the "
          "job over, from its state in etcd, once the leader's lease expires; meanwhile listen "
          "(answering UNAVAILABLE) on --host/--port, by default the first of "
          "cluster.scheduler_standbys");

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

bool IsRunning(const rpc::SchedulerState& s) {
  return s.state() != rpc::DONE && s.state() != rpc::FAILED;
}

enum class StandbyEnd { kLead, kJobOver, kStopped };

// A standby: waits until the job's leader is gone and etcd holds a running
// job to carry on, then leads (kLead, the state in *state). kJobOver: a
// leader was seen and is gone, and the job did not go on (*state: its last
// state, if any). It never leads a job that is not running (a standby
// started before its leader, or after the job ended, waits), so it never
// starts one over.
absl::StatusOr<StandbyEnd> StandBy(EtcdCoordinator* c, const std::string& job, int lease_seconds,
                                   rpc::SchedulerState* state) {
  const absl::Duration period = absl::Seconds(lease_seconds) / 4;
  std::string seen;
  bool saw_leader = false;
  absl::Time last_complaint;
  auto complain = [&](const std::string& what) {
    if (absl::Now() - last_complaint < absl::Seconds(10)) return;
    last_complaint = absl::Now();
    spdlog::warn("standby scheduler: {}", what);
  };
  while (true) {
    // The poll period (the take-over delay beyond the lease), in short
    // steps so that a stop is prompt.
    for (absl::Time until = absl::Now() + period; absl::Now() < until;) {
      if (StopRequested()) return StandbyEnd::kStopped;
      absl::SleepFor(absl::Milliseconds(50));
    }
    auto leader = c->Leader();
    if (!leader.ok()) {
      complain(std::string(leader.status().message()));
      continue;
    }
    if (leader->has_value()) {
      if (**leader != seen) spdlog::info("the job's scheduler is at {}", **leader);
      seen = **leader;
      saw_leader = true;
      continue;
    }
    auto read = c->ReadState();
    if (!read.ok()) {
      complain(std::string(read.status().message()));
      continue;
    }
    if (!read->has_value() || !IsRunning(**read)) {
      if (saw_leader) {
        if (read->has_value()) *state = std::move(**read);
        return StandbyEnd::kJobOver;
      }
      complain(absl::StrCat("no leader, and etcd holds no running job '", job,
                            "': waiting for its scheduler to start it"));
      continue;
    }
    std::string other;
    auto led = c->TryLead(&other);
    if (!led.ok()) {
      complain(std::string(led.status().message()));
      continue;
    }
    if (!*led) continue;  // another standby was first
    // Leading: nobody else can write now; read what the last leader left.
    read = c->ReadState();
    if (!read.ok()) return read.status();
    if (!read->has_value() || !IsRunning(**read)) {
      c->Resign();
      if (read->has_value()) *state = std::move(**read);
      return StandbyEnd::kJobOver;
    }
    *state = std::move(**read);
    return StandbyEnd::kLead;
  }
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
  const bool standby = absl::GetFlag(FLAGS_standby);
  if (resume && restore) return Fatal("--resume and --restore exclude each other");
  const bool etcd = job->cluster().coordinator() == config::ETCD;
  if (standby && !etcd) {
    return Fatal(
        "--standby needs cluster.coordinator: etcd (the leader's state and lease live there)");
  }
  if (standby && (resume || restore)) {
    return Fatal("--standby takes the job over as its leader left it: no --resume or --restore");
  }
  const std::string state_path = etcd ? "" : job->job().output_dir() + "/scheduler.state";
  std::unique_ptr<EtcdClient> etcd_client;
  if (etcd) {
    auto made = EtcdClient::Create(job->cluster().etcd_endpoints(), "cluster.etcd_endpoints");
    if (!made.ok()) return Fatal(std::string(made.status().message()));
    etcd_client = std::move(*made);
  }
  rpc::SchedulerState saved;
  if (restore && !etcd) {
    // The job as the first scheduler resolved it, not the file as it is now.
    auto read = ReadSchedulerState(state_path);
    if (!read.ok()) return Fatal(absl::StrCat("--restore: ", read.status().message()));
    saved = std::move(*read);
    *job = saved.job();
  }
  // --restore with etcd: where the stopped scheduler listened (members know
  // that address); the state itself is read again once this one leads.
  rpc::SchedulerState restored_from;
  if (restore && etcd) {
    auto client = EtcdClient::Create(job->cluster().etcd_endpoints(), "cluster.etcd_endpoints");
    if (!client.ok()) return Fatal(std::string(client.status().message()));
    EtcdCoordinator peek(std::move(*client), {job->cluster().etcd_prefix(), job->job().name(), "",
                                              absl::Seconds(job->cluster().etcd_lease_seconds())});
    auto read = peek.ReadState();
    if (!read.ok()) return Fatal(absl::StrCat("--restore: ", read.status().message()));
    if (read->has_value()) restored_from = std::move(**read);
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
    const rpc::SchedulerState& was = etcd ? restored_from : saved;
    if (!was.host().empty()) host = was.host();
    if (was.port() != 0) port = was.port();
  }
  if (standby && job->cluster().scheduler_standbys_size() > 0) {
    if (absl::Status s = ParseHostPort(job->cluster().scheduler_standbys(0),
                                       "cluster.scheduler_standbys[0]", &host, &port);
        !s.ok()) {
      return Fatal(std::string(s.message()));
    }
  }
  if (!absl::GetFlag(FLAGS_host).empty()) host = absl::GetFlag(FLAGS_host);
  if (absl::GetFlag(FLAGS_port) >= 0) port = absl::GetFlag(FLAGS_port);

  auto monitoring_or = Monitoring::FromFlags(host);
  if (!monitoring_or.ok()) return Fatal(std::string(monitoring_or.status().message()));
  Monitoring* monitoring = monitoring_or->get();
  SetLogId(absl::StrCat("job ", job->job().name()));
  // The leader key names the address members dial.
  const std::string me = absl::StrCat(
      absl::GetFlag(FLAGS_advertise).empty() ? host : absl::GetFlag(FLAGS_advertise), ":");
  // Declared before the service and the gRPC server, so destroyed after them
  // on every return.
  std::unique_ptr<EtcdCoordinator> coordinator;
  std::unique_ptr<SchedulerCore> core;
  std::unique_ptr<Monitoring::Collection> state_metrics;
  // Gives the lead up on every return once it is held (a failed start must
  // not keep the key for a whole lease).
  absl::Cleanup resign = [&] {
    if (coordinator != nullptr) coordinator->Resign();
  };
  // The core, fresh or carrying on from `saved`, resumed from a checkpoint
  // with --resume.
  auto make_core = [&](bool fresh) -> absl::Status {
    SchedulerCore::Options options;
    options.state_path = state_path;
    if (coordinator != nullptr) {
      options.save_state = [c = coordinator.get()](const rpc::SchedulerState& s) {
        return c->WriteState(s);
      };
      options.may_act = [c = coordinator.get()] { return c->Leading(); };
    }
    if (monitoring != nullptr) options.barrier_waited = BarrierWaitObserver(monitoring);
    core = std::make_unique<SchedulerCore>(*job, absl::Now(), std::move(options));
    if (monitoring != nullptr) state_metrics = ExportSchedulerState(core.get(), monitoring);
    if (!fresh) {
      if (absl::Status s = core->Restore(saved, core->Now()); !s.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat(standby ? "taking the job over: " : "--restore: ", s.message()));
      }
    }
    if (resume) {
      auto found = FindLatestCheckpoint(CheckpointRoot(*job));
      if (!found.ok()) {
        return absl::Status(found.status().code(),
                            absl::StrCat("--resume: ", found.status().message()));
      }
      if (absl::Status s = core->ResumeFrom(*found); !s.ok()) return s;
    }
    return absl::OkStatus();
  };
  // The service answers UNAVAILABLE until it has a core (Lead): members that
  // reach a standby try the next scheduler address.
  SchedulerService service(nullptr, signer.get(), job->security());
  bool fresh = !restore;
  if (!etcd) {
    if (absl::Status s = make_core(fresh); !s.ok()) return Fatal(std::string(s.message()));
    service.Lead(core.get(), nullptr);
  }
  std::unique_ptr<Monitoring::Collection> refusal_metrics;
  if (monitoring != nullptr)
    refusal_metrics = ExportRefusals(&service.authorizer(), "scheduler", monitoring);
  ServerLimits limits = ServerLimitsFromFlags();
  limits.max_message_bytes = job->security().limits().max_message_bytes();
  limits.max_streams_per_peer = job->security().limits().max_streams_per_peer();
  auto running = StartGrpcServer(host, port, {&service}, limits);
  if (!running.ok()) return Fatal(std::string(running.status().message()));
  auto write_port_file = [&]() -> absl::Status {
    if (absl::GetFlag(FLAGS_port_file).empty()) return absl::OkStatus();
    return WriteFileAtomically(absl::GetFlag(FLAGS_port_file), absl::StrCat(running->port, "\n"));
  };

  // With etcd: lead (or stand by until this scheduler may), then carry on
  // from the state there.
  if (etcd) {
    coordinator = std::make_unique<EtcdCoordinator>(
        std::move(etcd_client),
        EtcdCoordinator::Options{job->cluster().etcd_prefix(), job->job().name(),
                                 absl::StrCat(me, running->port),
                                 absl::Seconds(job->cluster().etcd_lease_seconds())});
    if (standby) {
      // Members must know the standby's address before it leads.
      if (absl::Status s = write_port_file(); !s.ok()) return Fatal(std::string(s.message()));
      spdlog::info("standby scheduler of job '{}' listening on {}:{}; etcd {}, key {}",
                   job->job().name(), host, running->port, coordinator->endpoint(),
                   coordinator->leader_key());
      auto stood = StandBy(coordinator.get(), job->job().name(),
                           job->cluster().etcd_lease_seconds(), &saved);
      if (!stood.ok()) return Fatal(std::string(stood.status().message()));
      if (*stood == StandbyEnd::kStopped) return Fatal("stopped while standing by");
      if (*stood == StandbyEnd::kJobOver) {
        if (saved.state() == rpc::DONE) {
          spdlog::info("job '{}' ended under the scheduler this one stood by for",
                       job->job().name());
          return 0;
        }
        return Fatal(absl::StrCat("job '", job->job().name(),
                                  "' ended under the scheduler this one stood by for, ",
                                  saved.has_job() ? absl::StrCat("failed: ", saved.failure())
                                                  : "which left no state in etcd"));
      }
      *job = saved.job();
      fresh = false;
    } else {
      std::string leader;
      auto led = coordinator->TryLead(&leader);
      if (!led.ok()) return Fatal(std::string(led.status().message()));
      if (!*led) {
        return Fatal(absl::StrCat("job '", job->job().name(), "' already has a scheduler, at ",
                                  leader, " (etcd key ", coordinator->leader_key(),
                                  "); start this one with --standby to stand by for it"));
      }
      auto state = coordinator->ReadState();
      if (!state.ok()) return Fatal(std::string(state.status().message()));
      const bool running_job = state->has_value() && IsRunning(**state);
      if (running_job && resume) {
        // Restarted from a checkpoint (by hand, or by ps_launch's
        // job.max_restarts after the last attempt failed): its state goes.
        spdlog::warn(
            "etcd holds the state of job '{}', still running, whose scheduler stopped: "
            "--resume starts it over from its latest checkpoint instead",
            job->job().name());
      } else if (running_job && !restore) {
        return Fatal(absl::StrCat("etcd holds the state of job '", job->job().name(),
                                  "', still running, whose "
                                  "scheduler stopped (key ",
                                  coordinator->state_key(),
                                  "): carry it on with --restore, "
                                  "or remove it (etcdctl del --prefix ",
                                  coordinator->job_prefix(), ") to start over"));
      }
      if (restore && !running_job) {
        return Fatal(absl::StrCat("--restore: etcd holds no running job '", job->job().name(),
                                  "' (key ", coordinator->state_key(), ")"));
      }
      if (running_job && restore) {
        saved = std::move(**state);
        *job = saved.job();
      }
    }
    if (absl::Status s = make_core(fresh); !s.ok()) return Fatal(std::string(s.message()));
  }
  core->SetListenAddress(host, running->port);
  if (etcd) service.Lead(core.get(), [c = coordinator.get()] { return c->Leading(); });
  if (!standby) {
    if (absl::Status s = write_port_file(); !s.ok()) return Fatal(std::string(s.message()));
  }
  std::string self_metrics;
  if (monitoring != nullptr) {
    auto advertised = AdvertisedAddress(absl::GetFlag(FLAGS_advertise), host, monitoring->port(),
                                        absl::Milliseconds(job->cluster().connect_timeout_ms()));
    if (!advertised.ok()) return Fatal(std::string(advertised.status().message()));
    self_metrics = *advertised;
    spdlog::info("scheduler metrics on {}", self_metrics);
    Monitoring::SetReady(true);
  }
  if (!fresh) {
    spdlog::info("scheduler of job '{}' {}, listening on {}:{}", job->job().name(),
                 standby ? "taken over from the state in etcd" : "restored", host, running->port);
  } else {
    spdlog::info("scheduler of job '{}' listening on {}:{}; waiting for {} servers and {} workers",
                 job->job().name(), host, running->port, job->cluster().num_servers(),
                 job->cluster().num_workers());
  }
  // Every member's /metrics endpoint, for Prometheus's file_sd_configs.
  const std::string targets_path = job->job().output_dir() + "/prometheus_targets.json";
  std::string targets;
  absl::Time targets_checked;
  bool lost_lead = false;
  while (!core->Poll(core->Now())) {
    if (coordinator != nullptr && !coordinator->Leading()) {
      // Fenced: another scheduler may lead by now. Stop at once, touching
      // nothing (the state in etcd is the new leader's to carry on).
      lost_lead = true;
      break;
    }
    if (absl::Now() - targets_checked > absl::Milliseconds(500)) {
      targets_checked = absl::Now();
      std::string now = PrometheusTargets(core->Status(targets_checked), self_metrics);
      if (now != targets && WriteFileAtomically(targets_path, now).ok()) targets = std::move(now);
    }
    if (StopRequested()) {
      // Members see FAILED at their next heartbeat (or are being stopped too).
      core->Fail("the scheduler was asked to stop");
      break;
    }
    core->WaitForWork(absl::Milliseconds(50));  // the loop's period, or sooner when there is work
  }
  // A deposed leader answers its parked barrier calls UNAVAILABLE (the
  // callers go to the next scheduler) rather than have the shutdown cancel
  // them.
  if (lost_lead) core->AbandonWaiters();
  running->server->Shutdown(DeadlineIn(absl::Seconds(1)));
  if (lost_lead) {
    return Fatal(absl::StrCat("this scheduler lost the lead of job '", job->job().name(),
                              "' (it could not renew its lease in etcd in time); a standby "
                              "scheduler carries the job on"));
  }
  // Only a scheduler that stops without getting here leaves a state to restore
  // (in etcd, the final state stays: a standby sees the job is over).
  core->RemoveStateFile();
  if (core->state() != rpc::DONE) return Fatal(absl::StrCat("the job failed: ", core->failure()));
  spdlog::info("job '{}' done", job->job().name());
  return 0;
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "ps_scheduler --config=JOB.yaml [--set section.field=value ...] [--port=N --port_file=F] "
      "[--resume | --restore | --standby]");
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

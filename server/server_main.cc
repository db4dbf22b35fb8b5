// ps_server: registers with the scheduler, receives the job config, serves
// its partitions until the job ends.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <random>

#include "absl/cleanup/cleanup.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/audit.h"
#include "common/auth.h"
#include "common/logging.h"
#include "common/monitoring.h"
#include "common/net.h"
#include "common/refusal_metrics.h"
#include "common/rpc.h"
#include "common/scheduler_client.h"
#include "common/sealed_file.h"
#include "common/signals.h"
#include "common/sync.h"
#include "server/data_plane.h"
#include "server/ps_service.h"
#include "server/server_core.h"
#include "server/server_metrics.h"

ABSL_FLAG(std::string, scheduler, "", "host:port of the scheduler (required)");
ABSL_FLAG(std::string, host, "127.0.0.1",
          "address to listen on (0.0.0.0: every interface), for gRPC and --metrics_port");
ABSL_FLAG(std::string, advertise, "",
          "HOST[:PORT] peers reach this server at (default: --host, or the hostname if --host is "
          "a wildcard; the bound port)");
ABSL_FLAG(int, port, 0, "port to listen on; 0 picks a free one");
ABSL_FLAG(int, data_port, 0,
          "port of the TCP data plane (cluster.data_plane: tcp; not opened with TLS); 0 picks a "
          "free one. Advertised with the --advertise host");
ABSL_FLAG(int, connect_timeout_ms, 30000, "how long to wait for the scheduler to come up");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error");
ABSL_FLAG(bool, standby, false,
          "join as a standby server: hold nothing until the scheduler places partitions here "
          "(after a server dies)");

namespace ps {
namespace {

int Fatal(const std::string& message) {
  spdlog::error("{}", message);
  std::cerr << "ps_server: error: " << message << std::endl;
  return 1;
}

int Run() {
  const std::string scheduler = absl::GetFlag(FLAGS_scheduler);
  const absl::Duration connect_timeout =
      absl::Milliseconds(absl::GetFlag(FLAGS_connect_timeout_ms));
  if (absl::Status s = InitMemberSecurity(rpc::PRINCIPAL_SERVER); !s.ok()) {
    return Fatal(std::string(s.message()));
  }
  auto scheduler_client = SchedulerClient::ForFlag(scheduler, connect_timeout);
  if (!scheduler_client.ok()) return Fatal(std::string(scheduler_client.status().message()));
  SchedulerClient& client = **scheduler_client;
  const std::string host = absl::GetFlag(FLAGS_host);
  auto monitoring = Monitoring::FromFlags(host);
  if (!monitoring.ok()) return Fatal(std::string(monitoring.status().message()));
  PsService service;
  if (*monitoring != nullptr) ObserveRequests(&service, monitoring->get());
  auto running =
      StartGrpcServer(host, absl::GetFlag(FLAGS_port), {&service}, ServerLimitsFromFlags());
  if (!running.ok()) return Fatal(std::string(running.status().message()));
  auto advertised =
      AdvertisedAddress(absl::GetFlag(FLAGS_advertise), host, running->port, connect_timeout);
  if (!advertised.ok()) return Fatal(std::string(advertised.status().message()));
  const std::string my_address = *advertised;
  std::string advertised_host;
  int advertised_port;
  (void)ParseHostPort(my_address, "--advertise", &advertised_host, &advertised_port);
  // Pushes and pulls over plain TCP, unless TLS is on (then gRPC carries them).
  std::unique_ptr<DataPlaneServer> data_plane;
  std::string data_address;
  if (!TransportIsTls()) {
    data_plane = std::make_unique<DataPlaneServer>(
        &service, static_cast<uint32_t>(ServerLimitsFromFlags().max_message_bytes));
    auto data_port = data_plane->Start(host, absl::GetFlag(FLAGS_data_port));
    if (!data_port.ok()) return Fatal(absl::StrCat("--data_port: ", data_port.status().message()));
    data_address = absl::StrCat(advertised_host, ":", *data_port);
  }

  rpc::RegisterRequest reg;
  reg.set_role(rpc::SERVER);
  reg.set_address(my_address);
  reg.set_incarnation(SchedulerClient::NewIncarnation());
  const bool standby = absl::GetFlag(FLAGS_standby);
  reg.set_standby(standby);
  reg.set_metrics_address(MetricsAddress(monitoring->get(), advertised_host));
  reg.set_data_address(data_address);
  auto registered = client.Register(reg, connect_timeout);
  if (!registered.ok()) return Fatal(std::string(registered.status().message()));
  const config::JobConfig& job = registered->config();
  const uint32_t node_id = registered->node_id();
  if (job.cluster().coordinator() == config::ETCD) {
    client.AddAddressesOf(job.cluster());  // the standby schedulers
  }
  if (data_plane != nullptr && job.cluster().data_plane() != config::TCP) {
    data_plane->Stop();  // the job pushes and pulls over gRPC
    data_address.clear();
  }
  if (absl::Status s = AdoptTicket(registered->ticket(), job.security().insecure()); !s.ok()) {
    return Fatal(std::string(s.message()));
  }
  if (absl::Status s = SetEncryptionKeyFile(job.security().encryption_key_file(),
                                            "security.encryption_key_file");
      !s.ok()) {
    return Fatal(std::string(s.message()));
  }
  if (registered->ticket_key().empty()) {
    service.authorizer().SetInsecure();
  } else {
    auto verifier = TicketVerifier::Create(registered->ticket_key());
    if (!verifier.ok()) return Fatal(std::string(verifier.status().message()));
    service.authorizer().SetVerifier(std::move(*verifier));
    if (TransportIsMutualTls()) service.authorizer().SetMutualTls();
  }
  const std::string who =
      absl::StrCat(standby ? "standby " : "", "server rank ", registered->rank());
  if (absl::Status s = OpenAuditLog(job.job().output_dir() + "/audit.log", who); !s.ok()) {
    spdlog::warn("{}", std::string(s.message()));  // e.g. no shared output folder on this host
  }
  SetLogId(
      absl::StrCat(standby ? "standby " : "", "rank ", registered->rank(), ", node ", node_id));
  spdlog::info(
      "{}server rank {} listening on {} (node {}){}", standby ? "standby " : "", registered->rank(),
      my_address, node_id,
      absl::StrCat(data_address.empty() ? "" : absl::StrCat(", data plane on ", data_address),
                   reg.metrics_address().empty()
                       ? ""
                       : absl::StrCat(", metrics on ", reg.metrics_address())));

  ServerCore core(job, registered->rank());
  // The data plane's readers call into the core: they stop before it goes.
  absl::Cleanup stop_data_plane = [&data_plane] {
    if (data_plane != nullptr) data_plane->Stop();
  };
  std::unique_ptr<Monitoring::Collection> state_metrics, refusal_metrics;
  if (*monitoring != nullptr) {
    state_metrics = ExportServerState(&core, monitoring->get());
    refusal_metrics = ExportRefusals(&service.authorizer(), "server", monitoring->get());
  }
  // A request showing a newer map, or a backup refusing our forwards, wakes
  // the loop below to fetch the view at once.
  Mutex refresh_mu;
  CondVar refresh_cv;
  bool refresh_wanted = false;
  core.SetViewRefresher([&] {
    MutexLock lock(&refresh_mu);
    refresh_wanted = true;
    refresh_cv.Signal();
  });
  core.SetPeerReporter([&client, node_id](int rank, const std::string& error) {
    (void)client.Suspect(node_id, rank, error);
  });
  service.Attach(&core, job.security().limits());
  core.SetFailureReporter([&client, node_id](const std::string& message) {
    (void)client.Fail(node_id, message);
  });
  // How long to go on without the scheduler (it may be restarting).
  const absl::Duration lost_after = absl::Milliseconds(job.cluster().scheduler_timeout_ms());
  absl::StatusOr<rpc::ClusterView> view;
  if (standby) {
    view = client.GetView();
    if (!view.ok()) {
      core.Shutdown();
      running->server->Shutdown(DeadlineIn(absl::Seconds(1)));
      return Fatal(absl::StrCat("get view: ", view.status().message()));
    }
    core.UpdateView(*view);
  } else {
    view = client.Barrier(node_id, "start", absl::Milliseconds(job.cluster().connect_timeout_ms()));
    if (!view.ok()) {
      core.Shutdown();
      running->server->Shutdown(DeadlineIn(absl::Seconds(1)));
      return Fatal(absl::StrCat("start barrier: ", view.status().message()));
    }
    core.UpdateView(*view);
    // Workers start once every server has adopted the view.
    view = client.Barrier(node_id, "ready", absl::Milliseconds(job.cluster().connect_timeout_ms()));
    if (!view.ok()) {
      core.Shutdown();
      running->server->Shutdown(DeadlineIn(absl::Seconds(1)));
      return Fatal(absl::StrCat("ready barrier: ", view.status().message()));
    }
  }

  Monitoring::SetReady(true);
  // Heartbeat loop: follow the view, expire parked pulls, stop with the job.
  const absl::Duration interval = absl::Milliseconds(job.cluster().heartbeat_interval_ms());
  absl::Time last_ok = absl::Now();
  uint64_t view_version = view->version();
  int exit_code = 0;
  std::string why;
  while (!StopRequested()) {
    bool refresh = false;
    {
      MutexLock lock(&refresh_mu);
      if (!refresh_wanted) {
        refresh_cv.WaitWithTimeout(&refresh_mu, std::min(interval, absl::Milliseconds(100)));
      }
      refresh = refresh_wanted;
      refresh_wanted = false;
    }
    core.ExpireParked(absl::Now());
    if (refresh) {
      auto v = client.GetView();
      if (v.ok()) {
        core.UpdateView(*v);
        view_version = std::max(view_version, v->version());
      }
    }
    if (absl::Now() - last_ok < interval) continue;
    rpc::HeartbeatRequest hb;
    hb.set_node_id(node_id);
    for (uint32_t p : core.SyncedBackups()) hb.add_synced_partitions(p);
    for (rpc::PartitionLoad& l : core.TakeLoad()) *hb.add_partition_load() = std::move(l);
    auto resp = client.Heartbeat(hb);
    if (!resp.ok()) {
      if (absl::Now() - last_ok > lost_after) {
        exit_code = 1;
        why = absl::StrCat("lost the scheduler at ", scheduler, ": ", resp.status().message());
        break;
      }
      continue;
    }
    last_ok = absl::Now();
    if (resp->state() == rpc::DONE) break;
    if (resp->state() == rpc::FAILED) {
      exit_code = 1;
      why = "the job failed (see the scheduler's log)";
      break;
    }
    if (!resp->known()) {
      // Declared dead while we were cut off or frozen: our partitions have
      // other primaries now (backups refuse our old epoch), so we step down.
      spdlog::warn("server rank {}: the scheduler replaced this server (it missed its heartbeat "
                   "timeout); stepping down",
                   registered->rank());
      break;
    }
    if (resp->view_version() > view_version) {
      auto v = client.GetView();
      if (v.ok()) {
        core.UpdateView(*v);
        view_version = v->version();
      }
    }
  }
  Monitoring::SetReady(false);
  (void)client.Leave(node_id);
  core.Shutdown();
  running->server->Shutdown(DeadlineIn(absl::Seconds(2)));
  const rpc::StatsResponse stats = core.Stats();
  spdlog::info("server rank {} done: {} pushes applied, {} duplicates, {} pulls ({} waited), "
               "max staleness served {}, {} keys",
               registered->rank(), stats.pushes_applied(), stats.pushes_duplicate(),
               stats.pulls_served(), stats.pulls_parked(), stats.max_staleness_served(),
               stats.keys_stored());
  if (exit_code != 0) return Fatal(why);
  return 0;
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "ps_server --scheduler=HOST:PORT [--host=ADDR --port=N --advertise=HOST[:PORT] "
      "--metrics_port=N]");
  absl::ParseCommandLine(argc, argv);
  ps::InstallStopSignalHandlers();
  umask(077);  // the job's files are its owner's alone
  ps::ConfigureMutexDeadlockDetection();
  if (absl::Status s = ps::InitLogging("server", absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    std::cerr << "ps_server: error: " << s.message() << std::endl;
    return 1;
  }
  return ps::Run();
}

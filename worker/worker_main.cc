// ps_worker: registers with the scheduler, loads its data, trains.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <random>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/auth.h"
#include "common/heartbeat.h"
#include "common/logging.h"
#include "common/monitoring.h"
#include "common/net.h"
#include "common/rpc.h"
#include "common/scheduler_client.h"
#include "common/signals.h"
#include "common/sync.h"
#include "common/tables.h"
#include "worker/data_source.h"
#include "worker/kv_client.h"
#include "worker/trainer.h"
#include "worker/worker_metrics.h"

ABSL_FLAG(bool, standby, false,
          "join as a standby worker: wait, and take over the rank, data position and clock of the "
          "first worker that dies");
ABSL_FLAG(std::string, scheduler, "", "host:port of the scheduler (required)");
ABSL_FLAG(int, connect_timeout_ms, 30000, "how long to wait for the scheduler to come up");
ABSL_FLAG(std::string, host, "127.0.0.1",
          "address --metrics_port listens on (0.0.0.0: every interface)");
ABSL_FLAG(std::string, advertise, "",
          "HOST the scheduler lists this worker's metrics under (default: --host, or the hostname "
          "if --host is a wildcard)");
ABSL_FLAG(int, iteration_delay_ms, 0, "test hook: sleep this long in every iteration (a slow worker)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error");

namespace ps {
namespace {

int Fatal(const std::string& message) {
  spdlog::error("{}", message);
  std::cerr << "ps_worker: error: " << message << std::endl;
  return 1;
}

int Run() {
  const absl::Duration connect_timeout =
      absl::Milliseconds(absl::GetFlag(FLAGS_connect_timeout_ms));
  if (absl::Status s = InitMemberSecurity(rpc::PRINCIPAL_WORKER); !s.ok()) {
    return Fatal(std::string(s.message()));
  }
  auto scheduler_client = SchedulerClient::ForFlag(absl::GetFlag(FLAGS_scheduler), connect_timeout);
  if (!scheduler_client.ok()) return Fatal(std::string(scheduler_client.status().message()));
  SchedulerClient& client = **scheduler_client;
  const std::string host = absl::GetFlag(FLAGS_host);
  auto monitoring_or = Monitoring::FromFlags(host);
  if (!monitoring_or.ok()) return Fatal(std::string(monitoring_or.status().message()));
  Monitoring* monitoring = monitoring_or->get();
  KvClient::Options kv_options;
  rpc::RegisterRequest reg;
  if (monitoring != nullptr) {
    ObserveWorker(monitoring, &kv_options, &client);
    auto advertised = AdvertisedAddress(absl::GetFlag(FLAGS_advertise), host, monitoring->port(),
                                        connect_timeout);
    if (!advertised.ok()) return Fatal(std::string(advertised.status().message()));
    reg.set_metrics_address(*advertised);
  }
  reg.set_role(rpc::WORKER);
  const uint64_t incarnation = SchedulerClient::NewIncarnation();
  reg.set_incarnation(incarnation);
  const bool standby = absl::GetFlag(FLAGS_standby);
  reg.set_standby(standby);
  auto registered = client.Register(reg, connect_timeout);
  if (!registered.ok()) return Fatal(std::string(registered.status().message()));
  const config::JobConfig job = registered->config();
  const uint32_t node_id = registered->node_id();
  if (job.cluster().coordinator() == config::ETCD) {
    client.AddAddressesOf(job.cluster());  // the standby schedulers
  }
  if (absl::Status s = AdoptTicket(registered->ticket(), job.security().insecure()); !s.ok()) {
    return Fatal(std::string(s.message()));
  }
  int32_t rank = registered->rank();
  SetLogId(standby ? absl::StrCat("standby, node ", node_id)
                   : absl::StrCat("rank ", rank, ", node ", node_id));
  if (standby) {
    spdlog::info("standby worker registered (node {})", node_id);
  } else {
    spdlog::info("worker rank {} registered (node {})", rank, node_id);
  }
  Monitoring::SetReady(true);
  // Training goes on while the scheduler restarts.
  client.SetRetryWindow(absl::Milliseconds(job.cluster().scheduler_timeout_ms()));
  auto fail = [&](const std::string& message) {
    (void)client.Fail(node_id, absl::StrCat("worker ", rank, ": ", message));
    return Fatal(message);
  };

  // Heartbeats and progress, on their own thread; a failed job ends the process.
  Trainer::Progress* progress = nullptr;
  Mutex progress_mu;
  auto heartbeat = std::make_unique<Heartbeat>(
      &client, node_id, absl::Milliseconds(job.cluster().heartbeat_interval_ms()),
      absl::Milliseconds(job.cluster().scheduler_timeout_ms()),
      [&](rpc::HeartbeatRequest* hb) {
        MutexLock lock(&progress_mu);
        if (progress == nullptr) return;
        hb->set_samples_done(progress->samples_done.load());
        hb->set_epoch(progress->epoch.load());
        hb->set_loss_sum(progress->loss_sum.load());
        hb->set_epoch_samples(progress->epoch_samples.load());
        hb->set_train_examples(progress->train_examples.load());
      },
      [&](Heartbeat::End end, const std::string& why) {
        if (end == Heartbeat::End::kSignal) {
          (void)client.Fail(node_id, absl::StrCat("worker ", rank, " was asked to stop"));
        }
        std::cerr << "ps_worker: error: " << why << std::endl;
        std::_Exit(1);
      });
  auto stop = [&](int code) {
    heartbeat.reset();
    return code;
  };

  auto train = LoadTrainingSet(job);
  if (!train.ok()) return stop(fail(std::string(train.status().message())));
  auto test = LoadTestSet(job);
  if (!test.ok()) return stop(fail(std::string(test.status().message())));
  spdlog::info("worker rank {}: {} training and {} test examples", rank, train->rows(), test->rows());

  if (standby) {
    // Until a worker dies and we take over its rank (the heartbeat thread
    // keeps us alive meanwhile).
    const absl::Duration interval = absl::Milliseconds(job.cluster().heartbeat_interval_ms());
    while (rank < 0) {
      absl::SleepFor(interval);  // poll period of the standby
      rpc::HeartbeatRequest hb;
      hb.set_node_id(node_id);
      auto resp = client.Heartbeat(hb);
      if (!resp.ok()) continue;  // the heartbeat thread decides when the scheduler is lost
      if (resp->state() == rpc::DONE) {
        spdlog::info("standby worker: the job ended without needing us");
        (void)client.Leave(node_id);
        return stop(0);
      }
      rank = resp->rank();
    }
    spdlog::warn("standby worker (node {}) takes over rank {}", node_id, rank);
    SetLogId(absl::StrCat("rank ", rank, ", node ", node_id));
  }
  auto view = client.WaitForStart(node_id, absl::Milliseconds(job.cluster().connect_timeout_ms()));
  if (!view.ok()) return stop(Fatal(absl::StrCat("start barrier: ", view.status().message())));

  kv_options.rank = rank;
  kv_options.incarnation = incarnation;
  kv_options.num_partitions = job.cluster().num_partitions();
  kv_options.rpc_timeout = absl::Milliseconds(job.cluster().rpc_timeout_ms());
  kv_options.max_retries = job.cluster().max_retries();
  kv_options.max_chunk_bytes = job.cluster().max_chunk_bytes();
  kv_options.report_unreachable = [&client, node_id](int server, const std::string& error,
                                                     absl::Duration failing_for) {
    (void)client.Suspect(node_id, server, error, failing_for);
  };
  kv_options.failover_window = 2 * absl::Milliseconds(job.cluster().heartbeat_timeout_ms()) +
                               absl::Seconds(2);
  auto compression = CompressionOptionsFor(job, TablesForJob(job));
  if (!compression.ok()) return stop(Fatal(std::string(compression.status().message())));
  kv_options.compression = std::move(*compression);
  KvClient kv(kv_options, TablesForJob(job), [&client] { return client.GetView(); });
  kv.SetView(*view);
  heartbeat->OnNewView([&kv](uint64_t version) { kv.MaybeRefresh(version); });

  Trainer trainer(job, rank, node_id, view->live_workers_size(), &client, &kv, std::move(*train),
                  std::move(*test), absl::Milliseconds(absl::GetFlag(FLAGS_iteration_delay_ms)));
  if (registered->start_epoch() > 0) {
    spdlog::info("worker rank {}: the job resumes at epoch {}", rank, registered->start_epoch() + 1);
    trainer.ResumeAt(registered->start_epoch(), registered->start_clock());
  }
  if (standby) {
    // Resume where the rank's clocks stand on the servers.
    auto clock = kv.ResumeClock();
    if (!clock.ok()) return stop(fail(absl::StrCat("taking over rank ", rank, ": ", clock.status().message())));
    spdlog::info("worker {}: resuming at clock {}", rank, *clock);
    trainer.TakeOver(*clock);
  }
  {
    MutexLock lock(&progress_mu);
    progress = &trainer.progress();
  }
  std::unique_ptr<Monitoring::Collection> progress_metrics;
  if (monitoring != nullptr) progress_metrics = ExportProgress(&trainer.progress(), monitoring);
  absl::Status result = trainer.Run();
  {
    MutexLock lock(&progress_mu);
    progress = nullptr;
  }
  if (!result.ok()) return stop(fail(std::string(result.message())));
  (void)client.Leave(node_id);
  spdlog::info(
      "worker rank {} done ({} pushes: {} bytes sent for {} bytes of float32 keys and "
      "gradients)",
      rank, kv.last_seq(), kv.push_wire_bytes(), kv.push_raw_bytes());
  return stop(0);
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "ps_worker --scheduler=HOST:PORT [--metrics_port=N --host=ADDR --advertise=HOST]");
  absl::ParseCommandLine(argc, argv);
  ps::InstallStopSignalHandlers();
  umask(077);  // the job's files are its owner's alone
  ps::ConfigureMutexDeadlockDetection();
  if (absl::Status s = ps::InitLogging("worker", absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    std::cerr << "ps_worker: error: " << s.message() << std::endl;
    return 1;
  }
  return ps::Run();
}

#include "scheduler/scheduler_metrics.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "prometheus/histogram.h"

namespace ps {
namespace {

const char* RoleLabel(rpc::Role role) { return role == rpc::SERVER ? "server" : "worker"; }

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppend(&out, "\\u00", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

std::function<void(const std::string&, absl::Duration)> BarrierWaitObserver(
    Monitoring* monitoring) {
  auto& family = prometheus::BuildHistogram()
                     .Name("ps_scheduler_barrier_wait_seconds")
                     .Help(
                         "Time from a barrier's first arrival to its release (what the slowest "
                         "member, an evaluation or a checkpoint cost the others)")
                     .Register(monitoring->registry());
  return [&family](const std::string& name, absl::Duration waited) {
    family.Add({{"barrier", BarrierKind(name)}}, WaitBuckets())
        .Observe(absl::ToDoubleSeconds(waited));
  };
}

std::unique_ptr<Monitoring::Collection> ExportSchedulerState(const SchedulerCore* core,
                                                             Monitoring* monitoring) {
  return monitoring->AddCollector([core] {
    using prometheus::MetricType;
    const rpc::JobStatus s = core->Status(absl::Now());
    std::vector<prometheus::MetricFamily> out;
    auto gauge = [&out](const std::string& name, const std::string& help, double v) {
      prometheus::MetricFamily f = Family(name, help, MetricType::Gauge);
      AddSample(&f, v);
      out.push_back(std::move(f));
    };
    auto counter = [&out](const std::string& name, const std::string& help, double v) {
      prometheus::MetricFamily f = Family(name, help, MetricType::Counter);
      AddSample(&f, v);
      out.push_back(std::move(f));
    };
    prometheus::MetricFamily state =
        Family("ps_job_state", "1 for the job's state", MetricType::Gauge);
    for (rpc::JobState js : {rpc::WAITING, rpc::RUNNING, rpc::DONE, rpc::FAILED}) {
      std::string name = rpc::JobState_Name(js);
      for (char& c : name) c = static_cast<char>(std::tolower(c));
      AddSample(&state, s.state() == js ? 1 : 0, {{"state", name}});
    }
    out.push_back(std::move(state));
    gauge("ps_job_epochs_evaluated", "Epochs finished and evaluated", s.epochs_evaluated());
    gauge("ps_job_epochs", "Epochs configured (train.epochs)", s.epochs());
    gauge("ps_job_training_seconds", "Seconds since training started", s.seconds());
    uint64_t samples = 0;
    prometheus::MetricFamily members =
        Family("ps_scheduler_members", "Members by role and state", MetricType::Gauge);
    prometheus::MetricFamily load =
        Family("ps_scheduler_server_load_bytes_per_second",
               "Traffic of the partitions each server is primary of (what load balancing uses)",
               MetricType::Gauge);
    prometheus::MetricFamily held =
        Family("ps_scheduler_server_partitions", "Partitions each server holds, by role",
               MetricType::Gauge);
    std::map<std::pair<std::string, std::string>, int> count;
    for (const rpc::MemberStatus& m : s.members()) {
      ++count[{RoleLabel(m.role()), m.state()}];
      if (m.role() == rpc::WORKER) samples += m.samples_done();
      if (m.role() == rpc::SERVER && m.state() != "dead" && m.state() != "left") {
        const std::string rank = std::to_string(m.rank());
        AddSample(&load, m.load_bytes_per_s(), {{"rank", rank}});
        AddSample(&held, m.partitions_primary(), {{"rank", rank}, {"role", "primary"}});
        AddSample(&held, m.partitions_backup(), {{"rank", rank}, {"role", "backup"}});
      }
    }
    for (const auto& [key, n] : count)
      AddSample(&members, n, {{"role", key.first}, {"state", key.second}});
    out.push_back(std::move(members));
    out.push_back(std::move(load));
    out.push_back(std::move(held));
    counter("ps_job_samples_total", "Training examples the workers processed (from heartbeats)",
            static_cast<double>(samples));
    gauge("ps_job_samples_per_second", "Training examples per second of training so far",
          s.seconds() > 0 ? samples / s.seconds() : 0);
    gauge("ps_scheduler_map_version",
          "Version of the shard map (changes with every failover and move)",
          static_cast<double>(s.view().version()));
    gauge("ps_scheduler_live_workers", "Workers the job counts on now",
          s.view().live_workers_size());
    counter("ps_scheduler_server_failovers_total", "Servers declared dead and failed over",
            s.server_failovers());
    counter("ps_scheduler_promotions_total", "Partitions whose backup was promoted to primary",
            s.promotions());
    counter("ps_scheduler_worker_takeovers_total",
            "Standby workers that took over a dead worker's rank", s.worker_takeovers());
    counter("ps_scheduler_partition_moves_total",
            "Partitions moved between servers (load balancing, drain)", s.migrations());
    counter("ps_scheduler_data_shards_total", "Data shards handed out to workers (SSP/ASP)",
            static_cast<double>(s.shards_done()));
    return out;
  });
}

std::string PrometheusTargets(const rpc::JobStatus& status, const std::string& self) {
  std::string out = "[";
  auto group = [&](const std::string& address, const std::string& role, int rank) {
    absl::StrAppend(&out, out.size() > 1 ? ",\n " : "\n ", "{\"targets\": [", JsonString(address),
                    "], \"labels\": {\"ps_job\": ", JsonString(status.job()),
                    ", \"role\": ", JsonString(role),
                    rank >= 0 ? absl::StrCat(", \"rank\": \"", rank, "\"") : "", "}}");
  };
  if (!self.empty()) group(self, "scheduler", -1);
  for (const rpc::MemberStatus& m : status.members()) {
    if (m.metrics_address().empty() || m.state() == "dead" || m.state() == "left") continue;
    group(m.metrics_address(),
          m.state() == "standby" ? absl::StrCat(RoleLabel(m.role()), "-standby")
                                 : RoleLabel(m.role()),
          m.rank());
  }
  return out + "\n]\n";
}

}  // namespace ps

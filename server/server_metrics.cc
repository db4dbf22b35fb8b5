#include "server/server_metrics.h"

#include <limits>
#include <string>

#include "prometheus/counter.h"
#include "prometheus/histogram.h"

namespace ps {

void ObserveRequests(PsService* service, Monitoring* monitoring) {
  prometheus::Registry& registry = monitoring->registry();
  auto& latency = prometheus::BuildHistogram()
                      .Name("ps_server_request_duration_seconds")
                      .Help(
                          "Time from a push or pull's arrival to its answer (pulls include the "
                          "wait at the consistency gate, pushes the replication to backups)")
                      .Register(registry);
  auto& errors = prometheus::BuildCounter()
                     .Name("ps_server_request_errors_total")
                     .Help("Pushes and pulls answered with an error status")
                     .Register(registry);
  prometheus::Histogram* push_latency = &latency.Add({{"op", "push"}}, LatencyBuckets());
  prometheus::Histogram* pull_latency = &latency.Add({{"op", "pull"}}, LatencyBuckets());
  prometheus::Counter* push_errors = &errors.Add({{"op", "push"}});
  prometheus::Counter* pull_errors = &errors.Add({{"op", "pull"}});
  service->SetObserver([=](bool push, absl::Duration took, const absl::Status& status) {
    (push ? push_latency : pull_latency)->Observe(absl::ToDoubleSeconds(took));
    if (!status.ok()) (push ? push_errors : pull_errors)->Increment();
  });
}

std::unique_ptr<Monitoring::Collection> ExportServerState(const ServerCore* core,
                                                          Monitoring* monitoring) {
  return monitoring->AddCollector([core] {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> out;
    const rpc::StatsResponse stats = core->Stats();
    const std::vector<ServerCore::Traffic> traffic = core->PartitionTraffic();

    prometheus::MetricFamily requests =
        Family("ps_server_requests_total", "Push and pull requests (chunks) received per partition",
               MetricType::Counter);
    prometheus::MetricFamily bytes =
        Family("ps_server_bytes_total", "Key and value bytes of pushes and pulls per partition",
               MetricType::Counter);
    ServerCore::Traffic sum;
    for (size_t p = 0; p < traffic.size(); ++p) {
      const ServerCore::Traffic& t = traffic[p];
      if (t.push_requests + t.pull_requests == 0) continue;
      const std::string part = std::to_string(p);
      AddSample(&requests, t.push_requests, {{"op", "push"}, {"partition", part}});
      AddSample(&requests, t.pull_requests, {{"op", "pull"}, {"partition", part}});
      AddSample(&bytes, t.push_bytes, {{"op", "push"}, {"partition", part}});
      AddSample(&bytes, t.pull_bytes, {{"op", "pull"}, {"partition", part}});
      sum.push_bytes += t.push_bytes;
      sum.pull_bytes += t.pull_bytes;
    }
    out.push_back(std::move(requests));
    out.push_back(std::move(bytes));

    prometheus::MetricFamily ops = Family(
        "ps_server_ops_total", "Pushes applied and duplicates refused (exactly-once), pulls served",
        MetricType::Counter);
    AddSample(&ops, stats.pushes_applied(), {{"op", "push"}, {"result", "applied"}});
    AddSample(&ops, stats.pushes_duplicate(), {{"op", "push"}, {"result", "duplicate"}});
    AddSample(&ops, stats.pulls_served(), {{"op", "pull"}, {"result", "served"}});
    out.push_back(std::move(ops));

    prometheus::MetricFamily payload =
        Family("ps_server_payload_bytes_total",
               "Key and value bytes of pushes and pulls, all partitions", MetricType::Counter);
    AddSample(&payload, sum.push_bytes, {{"op", "push"}});
    AddSample(&payload, sum.pull_bytes, {{"op", "pull"}});
    out.push_back(std::move(payload));

    prometheus::MetricFamily waited =
        Family("ps_server_pulls_waited_total", "Pulls that waited at the consistency gate",
               MetricType::Counter);
    AddSample(&waited, stats.pulls_parked());
    out.push_back(std::move(waited));

    prometheus::MetricFamily parked = Family(
        "ps_server_pulls_parked", "Pulls waiting at the consistency gate now", MetricType::Gauge);
    AddSample(&parked, static_cast<double>(core->ParkedPulls()));
    out.push_back(std::move(parked));

    // Staleness of served reads, in clocks.
    prometheus::MetricFamily staleness = Family("ps_server_read_staleness_clocks",
                                                "Clocks between a served pull and the slowest live "
                                                "worker (BSP/SSP pulls that carry a clock)",
                                                MetricType::Histogram);
    {
      const std::vector<uint64_t> counts = core->StalenessCounts();
      prometheus::ClientMetric m;
      uint64_t cumulative = 0;
      double sum_clocks = 0;
      for (size_t s = 0; s < counts.size(); ++s) {
        cumulative += counts[s];
        sum_clocks += static_cast<double>(s) * counts[s];
        if (s + 1 < counts.size())
          m.histogram.bucket.push_back({cumulative, static_cast<double>(s)});
      }
      m.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
      m.histogram.sample_count = cumulative;
      m.histogram.sample_sum = sum_clocks;  // the last bucket counted at its lower bound
      staleness.metric.push_back(std::move(m));
    }
    out.push_back(std::move(staleness));

    prometheus::MetricFamily lag = Family(
        "ps_server_replication_lag_ops",
        "Snapshots and ops sent or queued to backups and not acknowledged yet", MetricType::Gauge);
    AddSample(&lag, static_cast<double>(core->ReplicationPending()));
    out.push_back(std::move(lag));

    prometheus::MetricFamily replicated =
        Family("ps_server_replication_total",
               "Replication traffic: ops forwarded and snapshots sent as a primary, "
               "ops applied as a backup",
               MetricType::Counter);
    AddSample(&replicated, stats.replica_ops_sent(), {{"kind", "ops_sent"}});
    AddSample(&replicated, stats.snapshots_sent(), {{"kind", "snapshots_sent"}});
    AddSample(&replicated, stats.replica_ops_applied(), {{"kind", "ops_applied"}});
    out.push_back(std::move(replicated));

    prometheus::MetricFamily partitions =
        Family("ps_server_partitions", "Partitions this server holds, by role", MetricType::Gauge);
    AddSample(&partitions, stats.partitions_primary(), {{"role", "primary"}});
    AddSample(&partitions, stats.partitions_backup(), {{"role", "backup"}});
    out.push_back(std::move(partitions));

    prometheus::MetricFamily keys = Family("ps_server_keys", "Keys stored", MetricType::Gauge);
    AddSample(&keys, stats.keys_stored());
    out.push_back(std::move(keys));

    return out;
  });
}

}  // namespace ps

// The HTTP endpoint every process serves on --metrics_port, through Debian's
// prometheus-cpp (its Exposer, on civetweb):
//   /metrics  the Prometheus text format: metrics registered in registry()
//             and families built at scrape time by collectors;
//   /healthz  200 "ok" while the process runs (liveness);
//   /readyz   200 "ready" once SetReady(true) (registered, serving), else 503.
// One per process: readiness is process-wide (civetweb's request callback
// has no pointer back to its owner). Include only from *_main.cc and
// *_metrics.cc: it brings prometheus headers.
#ifndef PS_COMMON_MONITORING_H_
#define PS_COMMON_MONITORING_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/exposer.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace ps {

class Monitoring {
 public:
  using Collector = std::function<std::vector<prometheus::MetricFamily>()>;

  // Binds host:port (port 0 picks a free one). A port that cannot be bound
  // is an error naming --metrics_port and why (e.g. Address already in use).
  static absl::StatusOr<std::unique_ptr<Monitoring>> Start(const std::string& host, int port);
  // Start with --metrics_port (default $PS_METRICS_PORT, else 0; -1: no
  // endpoint, returns nullptr) on `host`.
  static absl::StatusOr<std::unique_ptr<Monitoring>> FromFlags(const std::string& host);
  ~Monitoring();

  int port() const { return port_; }
  prometheus::Registry& registry() { return *registry_; }
  // Stops a collector's scrapes when destroyed (waiting for one under way),
  // so what it reads may go away after it. Must not outlive the Monitoring.
  class Collection {
   public:
    Collection(prometheus::Exposer* exposer, std::shared_ptr<prometheus::Collectable> c)
        : exposer_(exposer), collectable_(std::move(c)) {}
    ~Collection();
    Collection(const Collection&) = delete;
    Collection& operator=(const Collection&) = delete;

   private:
    prometheus::Exposer* const exposer_;
    const std::shared_ptr<prometheus::Collectable> collectable_;
  };
  // `collect` runs at every scrape (on a civetweb thread) while the returned
  // Collection lives: it must be thread-safe and cheap.
  [[nodiscard]] std::unique_ptr<Collection> AddCollector(Collector collect);

  static void SetReady(bool ready);

 private:
  Monitoring() = default;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

// "host:port" of the endpoint for peers: `advertised` is the process's
// advertised address (host:port), whose host is kept. Empty if none.
std::string MetricsAddress(const Monitoring* monitoring, const std::string& advertised_host);

// Helpers for collectors: a family and one sample of it.
using Labels = std::vector<std::pair<std::string, std::string>>;
prometheus::MetricFamily Family(const std::string& name, const std::string& help,
                                prometheus::MetricType type);
void AddSample(prometheus::MetricFamily* family, double value, const Labels& labels = {});

// A barrier's name without its epoch ("eval-3" -> "eval"), for a label.
std::string BarrierKind(const std::string& barrier);
// Bucket bounds in seconds, 100 us .. 10 s (request latency).
const std::vector<double>& LatencyBuckets();
// Bucket bounds in seconds, 1 ms .. 5 min (barrier waits).
const std::vector<double>& WaitBuckets();

}  // namespace ps

#endif  // PS_COMMON_MONITORING_H_

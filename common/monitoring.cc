#include "common/monitoring.h"

#include <CivetServer.h>
#include <civetweb.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/net.h"
#include "prometheus/collectable.h"

namespace {

int DefaultMetricsPort() {
  int port = 0;
  const char* env = std::getenv("PS_METRICS_PORT");
  if (env != nullptr && absl::SimpleAtoi(env, &port)) return port;
  return 0;
}

}  // namespace

ABSL_FLAG(int, metrics_port, DefaultMetricsPort(),
          "port of /metrics, /healthz and /readyz (0 picks a free one, -1: none); default "
          "$PS_METRICS_PORT, else 0");

namespace ps {
namespace {

std::atomic<bool> ready{false};

void Reply(mg_connection* conn, int code, const char* reason, const char* body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n%s",
            code, reason, std::strlen(body), body);
}

// Health endpoints, answered before civetweb's own handlers (/metrics).
int BeginRequest(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  if (info == nullptr || info->local_uri == nullptr) return 0;
  if (std::strcmp(info->local_uri, "/healthz") == 0) {
    Reply(conn, 200, "OK", "ok\n");
    return 200;
  }
  if (std::strcmp(info->local_uri, "/readyz") == 0) {
    if (ready.load()) {
      Reply(conn, 200, "OK", "ready\n");
      return 200;
    }
    Reply(conn, 503, "Service Unavailable", "not ready\n");
    return 503;
  }
  return 0;
}

// civetweb logs to stderr otherwise (e.g. a client that hung up).
int QuietLog(const mg_connection*, const char*) { return 1; }

class CallbackCollectable : public prometheus::Collectable {
 public:
  explicit CallbackCollectable(Monitoring::Collector collect) : collect_(std::move(collect)) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return collect_(); }

 private:
  const Monitoring::Collector collect_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Monitoring>> Monitoring::Start(const std::string& host, int port) {
  std::unique_ptr<Monitoring> m(new Monitoring());
  m->registry_ = std::make_shared<prometheus::Registry>();
  static const CivetCallbacks callbacks = [] {
    CivetCallbacks c;
    c.begin_request = BeginRequest;
    c.log_message = QuietLog;
    return c;
  }();
  const std::string address = absl::StrCat(
      host.find(':') != std::string::npos && host.front() != '[' ? absl::StrCat("[", host, "]")
                                                                 : host,
      ":", port);
  try {
    m->exposer_ = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", address, "num_threads", "2"}, &callbacks);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("--metrics_port: cannot listen on ", address, ": ",
                                               WhyCannotBind(host, port)));
  }
  const std::vector<int> ports = m->exposer_->GetListeningPorts();
  if (ports.empty() || ports[0] <= 0) {
    return absl::UnavailableError(absl::StrCat("--metrics_port: no port bound on ", address));
  }
  m->port_ = ports[0];
  m->exposer_->RegisterCollectable(m->registry_);
  return m;
}

absl::StatusOr<std::unique_ptr<Monitoring>> Monitoring::FromFlags(const std::string& host) {
  const int port = absl::GetFlag(FLAGS_metrics_port);
  if (port < 0) return std::unique_ptr<Monitoring>();
  if (port > 65535)
    return absl::InvalidArgumentError(absl::StrCat("--metrics_port: ", port, " is not a port"));
  return Start(host, port);
}

Monitoring::~Monitoring() {
  ready.store(false);
  exposer_.reset();  // stops civetweb's threads before the collectors go
}

std::unique_ptr<Monitoring::Collection> Monitoring::AddCollector(Collector collect) {
  auto c = std::make_shared<CallbackCollectable>(std::move(collect));
  exposer_->RegisterCollectable(c);
  return std::make_unique<Collection>(exposer_.get(), c);
}

Monitoring::Collection::~Collection() { exposer_->RemoveCollectable(collectable_); }

void Monitoring::SetReady(bool r) { ready.store(r); }

std::string MetricsAddress(const Monitoring* monitoring, const std::string& advertised_host) {
  if (monitoring == nullptr) return "";
  return absl::StrCat(advertised_host, ":", monitoring->port());
}

prometheus::MetricFamily Family(const std::string& name, const std::string& help,
                                prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void AddSample(prometheus::MetricFamily* family, double value, const Labels& labels) {
  prometheus::ClientMetric m;
  for (const auto& [k, v] : labels) m.label.push_back({k, v});
  if (family->type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  family->metric.push_back(std::move(m));
}

std::string BarrierKind(const std::string& barrier) {
  const size_t dash = barrier.rfind('-');
  int n;
  if (dash != std::string::npos && absl::SimpleAtoi(barrier.substr(dash + 1), &n))
    return barrier.substr(0, dash);
  return barrier;
}

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double> b = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  return b;
}

const std::vector<double>& WaitBuckets() {
  static const std::vector<double> b = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300};
  return b;
}

}  // namespace ps

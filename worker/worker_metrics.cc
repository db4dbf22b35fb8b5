#include "worker/worker_metrics.h"

#include "prometheus/counter.h"
#include "prometheus/histogram.h"

namespace ps {

void ObserveWorker(Monitoring* monitoring, KvClient::Options* kv, SchedulerClient* scheduler) {
  prometheus::Registry& registry = monitoring->registry();
  auto& latency = prometheus::BuildHistogram()
                      .Name("ps_worker_request_duration_seconds")
                      .Help("Time of a push or pull to every server it touches, retries included")
                      .Register(registry);
  auto& requests = prometheus::BuildCounter()
                       .Name("ps_worker_requests_total")
                       .Help("Pushes and pulls by result")
                       .Register(registry);
  auto& bytes = prometheus::BuildCounter()
                    .Name("ps_worker_payload_bytes_total")
                    .Help(
                        "Bytes of the push requests sent (compressed where the job compresses), "
                        "and key and value bytes pulled")
                    .Register(registry);
  struct Op {
    prometheus::Histogram* latency;
    prometheus::Counter *ok, *failed, *bytes;
  };
  auto op = [&](const std::string& name) {
    return Op{&latency.Add({{"op", name}}, LatencyBuckets()),
              &requests.Add({{"op", name}, {"result", "ok"}}),
              &requests.Add({{"op", name}, {"result", "error"}}), &bytes.Add({{"op", name}})};
  };
  const Op push = op("push"), pull = op("pull");
  kv->observe = [push, pull](bool is_push, uint64_t n, absl::Duration took, bool ok) {
    const Op& o = is_push ? push : pull;
    o.latency->Observe(absl::ToDoubleSeconds(took));
    (ok ? o.ok : o.failed)->Increment();
    o.bytes->Increment(static_cast<double>(n));
  };
  auto& barrier =
      prometheus::BuildHistogram()
          .Name("ps_worker_barrier_wait_seconds")
          .Help("Time this worker waited at a barrier for the others (and the scheduler)")
          .Register(registry);
  scheduler->SetBarrierObserver([&barrier](const std::string& name, absl::Duration waited) {
    // Family::Add returns the existing child for known labels (a few kinds).
    barrier.Add({{"barrier", BarrierKind(name)}}, WaitBuckets())
        .Observe(absl::ToDoubleSeconds(waited));
  });
}

std::unique_ptr<Monitoring::Collection> ExportProgress(const Trainer::Progress* progress,
                                                       Monitoring* monitoring) {
  return monitoring->AddCollector([progress] {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> out;
    prometheus::MetricFamily samples = Family(
        "ps_worker_samples_total", "Training examples this worker processed", MetricType::Counter);
    AddSample(&samples, static_cast<double>(progress->samples_done.load()));
    out.push_back(std::move(samples));
    prometheus::MetricFamily epoch =
        Family("ps_worker_epoch", "The epoch this worker trains (0-based)", MetricType::Gauge);
    AddSample(&epoch, progress->epoch.load());
    out.push_back(std::move(epoch));
    return out;
  });
}

}  // namespace ps

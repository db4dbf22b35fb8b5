// What ps_worker serves at /metrics: pushes and pulls as the worker sees
// them (count, bytes, latency including retries), time spent waiting at
// barriers, and its training progress (samples, epoch).
#ifndef PS_WORKER_WORKER_METRICS_H_
#define PS_WORKER_WORKER_METRICS_H_

#include <memory>

#include "common/monitoring.h"
#include "common/scheduler_client.h"
#include "worker/kv_client.h"
#include "worker/trainer.h"

namespace ps {

// Sets the observers of `kv` options and of `scheduler`; `monitoring` must
// outlive both.
void ObserveWorker(Monitoring* monitoring, KvClient::Options* kv, SchedulerClient* scheduler);
// Progress, read at every scrape while the result lives.
std::unique_ptr<Monitoring::Collection> ExportProgress(const Trainer::Progress* progress,
                                                       Monitoring* monitoring);

}  // namespace ps

#endif  // PS_WORKER_WORKER_METRICS_H_

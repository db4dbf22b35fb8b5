// What ps_scheduler serves at /metrics: the job (state, epoch, samples and
// samples/s, training time), the members by role and state, the map version,
// failovers, promotions, standby takeovers, partition moves, data shards
// handed out, each server's traffic, and barrier waits (first arrival to
// release). Also the Prometheus file_sd targets file listing every member's
// /metrics endpoint.
#ifndef PS_SCHEDULER_SCHEDULER_METRICS_H_
#define PS_SCHEDULER_SCHEDULER_METRICS_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "common/monitoring.h"
#include "scheduler/scheduler_core.h"

namespace ps {

// The observer for SchedulerCore::Options.barrier_waited.
std::function<void(const std::string&, absl::Duration)> BarrierWaitObserver(Monitoring* monitoring);
// Read from `core` at every scrape while the result lives.
std::unique_ptr<Monitoring::Collection> ExportSchedulerState(const SchedulerCore* core,
                                                             Monitoring* monitoring);

// The members' /metrics endpoints in Prometheus's file_sd format (JSON), one
// target group per member with labels job, role, rank; `self` is the
// scheduler's own endpoint (empty: none).
std::string PrometheusTargets(const rpc::JobStatus& status, const std::string& self);

}  // namespace ps

#endif  // PS_SCHEDULER_SCHEDULER_METRICS_H_

// What ps_server serves at /metrics: push and pull latency (histograms
// observed by PsService), and, read from ServerCore at scrape time, request
// and byte counts (in total and per partition), the staleness of served
// reads, pulls parked at the consistency gate, the replication lag, keys and
// the partitions held.
#ifndef PS_SERVER_SERVER_METRICS_H_
#define PS_SERVER_SERVER_METRICS_H_

#include "common/monitoring.h"
#include "server/ps_service.h"
#include "server/server_core.h"

namespace ps {

// Latency and errors of pushes and pulls: sets `service`'s observer, so call
// before its gRPC server starts. `service` must outlive `monitoring`.
void ObserveRequests(PsService* service, Monitoring* monitoring);
// The rest, read from `core` at every scrape while the result lives.
std::unique_ptr<Monitoring::Collection> ExportServerState(const ServerCore* core,
                                                          Monitoring* monitoring);

}  // namespace ps

#endif  // PS_SERVER_SERVER_METRICS_H_

// ps_bench --server: the server's own costs, measured in this process on
// ServerCore and Partition (no network, no other process):
//  - apply rate: pushes applied per second (ASP, and a BSP clock of 2
//    workers), in floats, against an Eigen axpy over as many floats in the
//    same run;
//  - cost growth: time per BSP clock (each simulated worker pushes a clocked
//    push listing every partition, as KvClient does, then pulls at the next
//    clock) as workers grow at 64 partitions and as partitions grow at 4
//    workers;
//  - memory per stored key (Adam, dim 1 and 64), as the process's resident
//    size grows and as the stores count their bytes.
#ifndef PS_BENCH_SERVER_BENCH_H_
#define PS_BENCH_SERVER_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ps::bench {

struct ServerBenchOptions {
  double max_seconds = 1.0;  // per apply measurement and per growth row
  bool apply_rates = true;
  uint64_t memory_keys = 10000000;
  std::vector<int> memory_dims = {1, 64};
  std::vector<int> growth_workers = {4, 16, 64};
  std::vector<int> growth_partitions = {64, 1024, 8192};
};

// The report, as printed.
absl::StatusOr<std::string> RunServerBench(const ServerBenchOptions& options);

}  // namespace ps::bench

#endif  // PS_BENCH_SERVER_BENCH_H_

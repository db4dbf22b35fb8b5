// libFuzzer target: the scheduler's state file, as --restore reads it: the
// sealed-file check, the parse, and SchedulerCore::Restore over it.
#include <string>

#include "absl/time/clock.h"
#include "common/config.h"
#include "common/sealed_file.h"
#include "proto/checkpoint.pb.h"
#include "scheduler/scheduler_core.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  (void)ps::Unseal("fuzz/scheduler.state", bytes);
  ps::rpc::SchedulerState state;
  if (!state.ParseFromString(bytes) || !state.has_job()) return 0;
  // Restore validates the job before using it, as the scheduler's main does.
  if (!ps::ValidateJobConfig(state.job(), "fuzz/scheduler.state").ok()) return 0;
  if (state.job().cluster().num_partitions() > 4096 || state.job().cluster().num_servers() > 64 ||
      state.job().cluster().num_workers() > 64) {
    return 0;  // valid but slow: not what this target is for
  }
  ps::SchedulerCore core(state.job(), absl::Now(), ps::SchedulerCore::Options{""});
  (void)core.Restore(state, absl::Now());
  (void)core.View();
  return 0;
}

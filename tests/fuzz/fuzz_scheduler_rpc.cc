// libFuzzer target: the scheduler's request handling past gRPC: a job of 2
// servers and 2 workers is registered, then the input is a sequence of
// requests, each a method byte, a length byte and that many bytes parsed as
// the method's request (Register, Heartbeat, NextShard, SubmitEval, Fail,
// Leave, Suspect, Drain, TakeCheckpoint), handed to SchedulerCore.
#include <string>

#include "absl/time/clock.h"
#include "scheduler/scheduler_core.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ps::config::JobConfig job;
  job.mutable_job()->set_mode(ps::config::ASP);
  job.mutable_job()->set_output_dir("/tmp/fuzz-scheduler-rpc");
  job.mutable_cluster()->set_num_servers(2);
  job.mutable_cluster()->set_num_workers(2);
  job.mutable_cluster()->set_num_partitions(8);
  job.mutable_data()->set_train_path("/dev/null");
  ps::SchedulerCore core(job, absl::Now(), ps::SchedulerCore::Options{""});
  for (int i = 0; i < 4; ++i) {
    ps::rpc::RegisterRequest reg;
    reg.set_role(i < 2 ? ps::rpc::SERVER : ps::rpc::WORKER);
    reg.set_address("127.0.0.1:" + std::to_string(1 + i));
    (void)core.Register(reg);
  }
  size_t at = 0;
  while (at + 2 <= size) {
    const uint8_t method = data[at], len = data[at + 1];
    at += 2;
    const std::string bytes(reinterpret_cast<const char*>(data + at),
                            std::min<size_t>(len, size - at));
    at += bytes.size();
    switch (method % 9) {
      case 0: {
        ps::rpc::RegisterRequest req;
        if (req.ParseFromString(bytes)) (void)core.Register(req);
        break;
      }
      case 1: {
        ps::rpc::HeartbeatRequest req;
        if (req.ParseFromString(bytes)) (void)core.Heartbeat(req, absl::Now());
        break;
      }
      case 2: {
        ps::rpc::NextShardRequest req;
        if (req.ParseFromString(bytes)) (void)core.NextShard(req);
        break;
      }
      case 3: {
        ps::rpc::SubmitEvalRequest req;
        if (req.ParseFromString(bytes)) (void)core.SubmitEval(req);
        break;
      }
      case 4: {
        ps::rpc::FailRequest req;
        if (req.ParseFromString(bytes)) core.FailFrom(req.node_id(), req.message());
        break;
      }
      case 5: {
        ps::rpc::LeaveRequest req;
        if (req.ParseFromString(bytes)) (void)core.Leave(req.node_id());
        break;
      }
      case 6: {
        ps::rpc::SuspectRequest req;
        if (req.ParseFromString(bytes)) core.Suspect(req.node_id(), req.server_rank(), req.error());
        break;
      }
      case 7: {
        ps::rpc::DrainRequest req;
        if (req.ParseFromString(bytes)) (void)core.Drain(req.server_rank());
        break;
      }
      case 8: {
        ps::rpc::TakeCheckpointRequest req;
        if (req.ParseFromString(bytes)) (void)core.RequestCheckpoint(req.request());
        break;
      }
    }
  }
  (void)core.Status(absl::Now());
  return 0;
}

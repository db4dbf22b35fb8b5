// libFuzzer target: the server's request handling past gRPC: the first byte
// picks the method (Push, Pull, Tick, Replicate, WorkerClock), the rest is
// parsed as its request and handed to a ServerCore that is primary of every
// partition, as PsService does after its checks.
#include <string>

#include "absl/time/clock.h"
#include "server/server_core.h"

namespace {

ps::config::JobConfig Job(uint8_t mode) {
  ps::config::JobConfig job;
  job.mutable_job()->set_mode(mode % 3 == 0   ? ps::config::BSP
                              : mode % 3 == 1 ? ps::config::SSP
                                              : ps::config::ASP);
  job.mutable_job()->set_output_dir("/tmp/fuzz-server-rpc");
  job.mutable_cluster()->set_num_partitions(4);
  job.mutable_model()->set_num_features(64);
  return job;
}

ps::rpc::ClusterView View() {
  ps::rpc::ClusterView view;
  view.set_version(1);
  for (int p = 0; p < 4; ++p) {
    view.add_partition_owner(0);
    auto* pl = view.add_placement();
    pl->set_primary(0);
    pl->set_epoch(1);
  }
  for (int w = 0; w < 2; ++w) view.add_live_workers(w);
  auto* s = view.add_servers();
  s->set_rank(0);
  s->set_address("127.0.0.1:1");
  return view;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t method = data[0];
  const std::string bytes(reinterpret_cast<const char*>(data + 2), size - 2);
  ps::ServerCore core(Job(data[1]), 0);
  core.UpdateView(View());
  const absl::Time deadline = absl::Now();  // parked calls expire at once
  auto ignore = [](absl::Status) {};
  switch (method % 5) {
    case 0: {
      ps::rpc::PushRequest req;
      ps::rpc::PushResponse resp;
      if (req.ParseFromString(bytes)) core.Push(&req, &resp, deadline, ignore);
      break;
    }
    case 1: {
      ps::rpc::PullRequest req;
      ps::rpc::PullResponse resp;
      if (req.ParseFromString(bytes)) core.Pull(&req, &resp, deadline, ignore);
      break;
    }
    case 2: {
      ps::rpc::TickRequest req;
      if (req.ParseFromString(bytes)) core.Tick(req, deadline, ignore);
      break;
    }
    case 3: {
      ps::rpc::ReplicateRequest req;
      ps::rpc::ReplicateResponse resp;
      if (req.ParseFromString(bytes)) (void)core.Replicate(req, &resp);
      break;
    }
    case 4: {
      ps::rpc::WorkerClockRequest req;
      if (req.ParseFromString(bytes)) (void)core.WorkerClock(req.worker());
      break;
    }
  }
  core.ExpireParked(absl::InfiniteFuture());
  core.Shutdown();
  return 0;
}

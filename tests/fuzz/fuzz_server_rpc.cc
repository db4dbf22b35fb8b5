// libFuzzer target: the server's request handling past gRPC: the first byte
// picks the method (Push, Pull, Tick, Replicate, WorkerClock), the rest is
// parsed as its request and handed to a ServerCore that is primary of every
// partition, as PsService does after its checks.
#include <string>

#include "absl/time/clock.h"
#include "server/server_core.h"
#include "tests/fuzz/server_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t method = data[0];
  const std::string bytes(reinterpret_cast<const char*>(data + 2), size - 2);
  ps::ServerCore core(ps::fuzz::Job(data[1], "/tmp/fuzz-server-rpc"), 0);
  core.UpdateView(ps::fuzz::View());
  const absl::Time deadline = absl::Now();  // parked calls expire at once
  auto ignore = [](absl::Status) {};
  // A parked pull holds its request and reply until it is answered (at the
  // end, by ExpireParked): they live as long as the core's calls.
  ps::rpc::PullRequest pull;
  ps::rpc::PullResponse pull_resp;
  switch (method % 5) {
    case 0: {
      ps::rpc::PushRequest req;
      ps::rpc::PushResponse resp;
      if (req.ParseFromString(bytes)) core.Push(&req, &resp, deadline, ignore);
      break;
    }
    case 1:
      if (pull.ParseFromString(bytes)) core.Pull(&pull, &pull_resp, deadline, ignore);
      break;
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

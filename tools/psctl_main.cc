// psctl: looks at a running job. `psctl --scheduler HOST:PORT status` prints
// the job's state and progress, the members (role, rank, address, liveness,
// heartbeat age), the shard map (version, partitions per server) and each
// server's counters (pushes, pulls, pulls that waited, largest staleness
// served, keys).
#include <iostream>
#include <map>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/rpc.h"
#include "proto/ps.grpc.pb.h"
#include "proto/scheduler.grpc.pb.h"

ABSL_FLAG(std::string, scheduler, "", "host:port of the job's scheduler (required)");
ABSL_FLAG(int, timeout_ms, 5000, "deadline of each call");

namespace ps {
namespace {

int Fatal(const std::string& message) {
  std::cerr << "psctl: error: " << message << std::endl;
  return 1;
}

int Status(const std::string& address, absl::Duration timeout) {
  auto stub = rpc::Scheduler::NewStub(MakeChannel(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(timeout));
  rpc::JobStatus s;
  grpc::Status st = stub->Status(&ctx, rpc::StatusRequest(), &s);
  if (!st.ok()) return Fatal(absl::StrCat("cannot reach the scheduler at ", address, ": ", st.error_message()));
  std::cout << absl::StrFormat("job %s (%s): %s, epoch %d of %d evaluated, %.1f s of training\n", s.job(),
                               s.mode(), absl::AsciiStrToLower(rpc::JobState_Name(s.state())),
                               s.epochs_evaluated(), s.epochs(), s.seconds());
  if (!s.failure().empty()) std::cout << "failure: " << s.failure() << "\n";
  std::map<int, int> partitions;
  for (int owner : s.view().partition_owner()) ++partitions[owner];
  std::cout << absl::StrFormat("map version %d: %d partitions, %d live workers\n", s.view().version(),
                               s.view().partition_owner_size(), s.view().live_workers_size());
  std::cout << absl::StrFormat("%-7s %4s %-22s %-6s %9s %6s %10s  %s\n", "role", "rank", "address",
                               "state", "heartbeat", "epoch", "samples", "server counters");
  for (const rpc::MemberStatus& m : s.members()) {
    const bool server = m.role() == rpc::SERVER;
    std::string counters;
    if (server && m.state() == "alive") {
      auto ps_stub = rpc::ParameterServer::NewStub(MakeChannel(m.address()));
      grpc::ClientContext sctx;
      sctx.set_deadline(DeadlineIn(timeout));
      rpc::StatsResponse stats;
      if (ps_stub->Stats(&sctx, rpc::StatsRequest(), &stats).ok()) {
        counters = absl::StrFormat(
            "%d partitions, %d keys, %d pushes (%d duplicate), %d pulls (%d waited), max staleness %d",
            partitions[m.rank()], stats.keys_stored(), stats.pushes_applied(),
            stats.pushes_duplicate(), stats.pulls_served(), stats.pulls_parked(),
            stats.max_staleness_served());
      } else {
        counters = "(unreachable)";
      }
    }
    std::cout << absl::StrFormat("%-7s %4d %-22s %-6s %7dms %6s %10s  %s\n", server ? "server" : "worker",
                                 m.rank(), m.address().empty() ? "-" : m.address(), m.state(),
                                 m.heartbeat_age_ms(), server ? "-" : absl::StrCat(m.epoch() + 1),
                                 server ? "-" : absl::StrCat(m.samples_done()), counters);
  }
  return 0;
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("psctl --scheduler=HOST:PORT status");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2 || std::string(args[1]) != "status") {
    std::cerr << "usage: psctl --scheduler=HOST:PORT status" << std::endl;
    return 2;
  }
  if (absl::GetFlag(FLAGS_scheduler).empty()) return ps::Fatal("--scheduler is required");
  return ps::Status(absl::GetFlag(FLAGS_scheduler), absl::Milliseconds(absl::GetFlag(FLAGS_timeout_ms)));
}

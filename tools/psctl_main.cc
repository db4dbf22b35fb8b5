// psctl: looks at and steers a running job.
//   psctl --scheduler HOST:PORT status   the job's state and progress, the
//       members (role, rank, address, liveness, heartbeat age), the shard map
//       (version, partitions per server as primary and backup, their load,
//       moves), and each server's counters (pushes, pulls, pulls that waited,
//       largest staleness served, keys, replication).
//   psctl --scheduler HOST:PORT checkpoint   asks for a checkpoint at the
//       end of the current epoch (a consistent cut) and waits until it is
//       written; prints its directory.
//   psctl --scheduler HOST:PORT drain RANK   moves every partition copy off
//       server RANK (a snapshot-and-tail copy each, then a map flip) and
//       waits until it holds nothing; it can then be stopped.
//   psctl keygen DIR   makes a job secret: DIR/job.token (the scheduler's and
//       psctl's --token_file), DIR/server.token and DIR/worker.token (the
//       members'), each mode 0600 in a 0700 DIR.
//   Calls to the scheduler and servers carry the admin credential made from
//   --token_file (default $PS_TOKEN_FILE; the job secret, job.token).
//   psctl health [URL]   exit 0 if URL (default
//       http://127.0.0.1:$PS_METRICS_PORT/healthz, a process's health
//       endpoint) answers 200, else 1: the container image's HEALTHCHECK.
#include <curl/curl.h>
#include <sys/stat.h>

#include <cstdlib>
#include <iostream>
#include <map>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/auth.h"
#include "common/rpc.h"
#include "proto/ps.grpc.pb.h"
#include "proto/scheduler.grpc.pb.h"

ABSL_FLAG(std::string, scheduler, "", "host:port of the job's scheduler (required)");
ABSL_FLAG(int, timeout_ms, 5000, "deadline of each call");
ABSL_FLAG(int, drain_timeout_s, 120,
          "drain, checkpoint: how long to wait for the server to empty / the checkpoint");

namespace ps {
namespace {

int Fatal(const std::string& message) {
  std::cerr << "psctl: error: " << message << std::endl;
  return 1;
}

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

int Health(std::string url, absl::Duration timeout) {
  if (url.empty()) {
    const char* port = std::getenv("PS_METRICS_PORT");
    if (port == nullptr) return Fatal("health: give a URL or set PS_METRICS_PORT");
    url = absl::StrCat("http://127.0.0.1:", port, "/healthz");
  }
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return Fatal("health: cannot initialize libcurl");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(absl::ToInt64Milliseconds(timeout)));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Discard);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(curl);
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) return Fatal(absl::StrCat("health: ", url, ": ", curl_easy_strerror(rc)));
  if (code != 200) return Fatal(absl::StrCat("health: ", url, " answered ", code));
  return 0;
}

int Status(const std::string& address, absl::Duration timeout) {
  auto stub = rpc::Scheduler::NewStub(MakeChannel(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(timeout));
  rpc::JobStatus s;
  grpc::Status st = stub->Status(&ctx, rpc::StatusRequest(), &s);
  if (!st.ok())
    return Fatal(absl::StrCat("cannot reach the scheduler at ", address, ": ", st.error_message()));
  std::cout << absl::StrFormat("job %s (%s): %s, epoch %d of %d evaluated, %.1f s of training\n",
                               s.job(), s.mode(),
                               absl::AsciiStrToLower(rpc::JobState_Name(s.state())),
                               s.epochs_evaluated(), s.epochs(), s.seconds());
  if (!s.failure().empty()) std::cout << "failure: " << s.failure() << "\n";
  int under_replicated = 0;
  for (const rpc::Placement& pl : s.view().placement()) {
    under_replicated += pl.synced_backups_size() < pl.backups_size();
  }
  std::cout << absl::StrFormat(
      "map version %d: %d partitions, %d live workers, %d partitions still "
      "copying to a new backup, %d moved%s\n",
      s.view().version(), s.view().partition_owner_size(), s.view().live_workers_size(),
      under_replicated, s.migrations(),
      s.migrating().empty() ? "" : absl::StrCat(", moving ", s.migrating()));
  std::cout << absl::StrFormat("%-7s %4s %-22s %-6s %9s %6s %10s  %s\n", "role", "rank", "address",
                               "state", "heartbeat", "epoch", "samples", "server counters");
  for (const rpc::MemberStatus& m : s.members()) {
    const bool server = m.role() == rpc::SERVER;
    std::string counters;
    if (server && (m.state() == "alive" || m.state() == "standby")) {
      auto ps_stub = rpc::ParameterServer::NewStub(MakeChannel(m.address()));
      grpc::ClientContext sctx;
      sctx.set_deadline(DeadlineIn(timeout));
      rpc::StatsResponse stats;
      if (ps_stub->Stats(&sctx, rpc::StatsRequest(), &stats).ok()) {
        counters = absl::StrFormat(
            "primary of %d, backup of %d%s, %.0f B/s, %d keys, %d pushes (%d duplicate), %d pulls "
            "(%d waited), max staleness %d, %d ops forwarded, %d replayed",
            m.partitions_primary(), m.partitions_backup(), m.draining() ? " (draining)" : "",
            m.load_bytes_per_s(), stats.keys_stored(), stats.pushes_applied(),
            stats.pushes_duplicate(), stats.pulls_served(), stats.pulls_parked(),
            stats.max_staleness_served(), stats.replica_ops_sent(), stats.replica_ops_applied());
      } else {
        counters = "(unreachable)";
      }
    }
    std::cout << absl::StrFormat("%-7s %4d %-22s %-6s %7dms %6s %10s  %s\n",
                                 server ? "server" : "worker", m.rank(),
                                 m.address().empty() ? "-" : m.address(), m.state(),
                                 m.heartbeat_age_ms(), server ? "-" : absl::StrCat(m.epoch() + 1),
                                 server ? "-" : absl::StrCat(m.samples_done()), counters);
  }
  return 0;
}

int Checkpoint(const std::string& address, absl::Duration timeout, absl::Duration wait) {
  auto stub = rpc::Scheduler::NewStub(MakeChannel(address));
  const absl::Time give_up = absl::Now() + wait;
  std::string before;
  for (bool first = true;; first = false) {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(timeout));
    rpc::TakeCheckpointResponse resp;
    rpc::TakeCheckpointRequest req;
    req.set_request(first);
    grpc::Status st = stub->TakeCheckpoint(&ctx, req, &resp);
    if (!st.ok()) return Fatal(absl::StrCat("checkpoint: ", st.error_message()));
    if (first) {
      before = resp.latest();
      std::cout << "checkpoint requested; it is taken at the end of the current epoch" << std::endl;
    } else if (!resp.pending() && resp.latest() != before) {
      std::cout << "checkpoint written: " << resp.latest() << " (" << resp.latest_epochs()
                << " epochs)" << std::endl;
      return 0;
    }
    if (!first && !resp.pending() && resp.latest() == before) {
      return Fatal("the checkpoint could not be written (see the scheduler's log)");
    }
    if (absl::Now() >= give_up) {
      return Fatal(absl::StrCat("no checkpoint written within ", absl::FormatDuration(wait)));
    }
    absl::SleepFor(absl::Milliseconds(200));  // poll period, bounded by --drain_timeout_s
  }
}

int Drain(const std::string& address, int rank, absl::Duration timeout, absl::Duration wait) {
  auto stub = rpc::Scheduler::NewStub(MakeChannel(address));
  const absl::Time give_up = absl::Now() + wait;
  uint32_t last = UINT32_MAX;
  while (true) {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(timeout));
    rpc::DrainRequest req;
    req.set_server_rank(rank);
    rpc::DrainResponse resp;
    grpc::Status st = stub->Drain(&ctx, req, &resp);
    if (!st.ok()) return Fatal(absl::StrCat("drain server ", rank, ": ", st.error_message()));
    if (resp.partitions_left() != last) {
      std::cout << absl::StrFormat("server %d holds %d partition copies\n", rank,
                                   resp.partitions_left())
                << std::flush;
      last = resp.partitions_left();
    }
    if (resp.partitions_left() == 0) {
      std::cout << "server " << rank << " is drained; it can be stopped" << std::endl;
      return 0;
    }
    if (absl::Now() >= give_up) {
      return Fatal(absl::StrCat("server ", rank, " still holds ", resp.partitions_left(),
                                " partition copies after ", absl::FormatDuration(wait)));
    }
    absl::SleepFor(absl::Milliseconds(200));  // poll period, bounded by --drain_timeout_s
  }
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "psctl --scheduler=HOST:PORT [--token_file=job.token] status | checkpoint | drain RANK; "
      "psctl keygen DIR; psctl health [URL]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::string usage =
      "usage: psctl --scheduler=HOST:PORT [--token_file=job.token] status | checkpoint | drain "
      "SERVER_RANK\n"
      "       psctl keygen DIR\n"
      "       psctl health [URL]";
  if (args.size() == 3 && std::string(args[1]) == "keygen") {
    umask(077);
    if (absl::Status s = ps::WriteTokenFiles(args[2]); !s.ok())
      return ps::Fatal(std::string(s.message()));
    std::cout << "psctl: wrote " << args[2] << "/job.token (scheduler, psctl), " << args[2]
              << "/server.token and " << args[2] << "/worker.token" << std::endl;
    return 0;
  }
  if (args.size() >= 2 && args.size() <= 3 && std::string(args[1]) == "health") {
    return ps::Health(args.size() == 3 ? args[2] : "",
                      absl::Milliseconds(absl::GetFlag(FLAGS_timeout_ms)));
  }
  const bool status = args.size() == 2 && std::string(args[1]) == "status";
  const bool checkpoint = args.size() == 2 && std::string(args[1]) == "checkpoint";
  const bool drain = args.size() == 3 && std::string(args[1]) == "drain";
  if (!status && !drain && !checkpoint) {
    std::cerr << usage << std::endl;
    return 2;
  }
  if (absl::GetFlag(FLAGS_scheduler).empty()) return ps::Fatal("--scheduler is required");
  if (absl::Status s = ps::SetTransportSecurityFromFlags(); !s.ok())
    return ps::Fatal(std::string(s.message()));
  if (const std::string token = ps::TokenFileFromFlags(); !token.empty()) {
    auto loaded = ps::LoadProcessCredentials(token, ps::rpc::PRINCIPAL_ADMIN);
    if (!loaded.ok()) return ps::Fatal(std::string(loaded.status().message()));
    if (loaded->kind != ps::TokenKind::kJob) {
      return ps::Fatal(absl::StrCat("--token_file: '", token,
                                    "' is a member's key; psctl needs the job secret (job.token)"));
    }
  }
  const absl::Duration timeout = absl::Milliseconds(absl::GetFlag(FLAGS_timeout_ms));
  if (status) return ps::Status(absl::GetFlag(FLAGS_scheduler), timeout);
  if (checkpoint) {
    return ps::Checkpoint(absl::GetFlag(FLAGS_scheduler), timeout,
                          absl::Seconds(absl::GetFlag(FLAGS_drain_timeout_s)));
  }
  int rank;
  if (!absl::SimpleAtoi(args[2], &rank) || rank < 0) {
    std::cerr << "psctl: drain: '" << args[2] << "' is not a server rank\n" << usage << std::endl;
    return 2;
  }
  return ps::Drain(absl::GetFlag(FLAGS_scheduler), rank, timeout,
                   absl::Seconds(absl::GetFlag(FLAGS_drain_timeout_s)));
}

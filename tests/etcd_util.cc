#include "tests/etcd_util.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/test_util.h"

namespace ps::testing {

absl::StatusOr<std::unique_ptr<EtcdServer>> EtcdServer::Start(const std::string& dir) {
  std::string binary;
  for (const char* candidate : {"/usr/bin/etcd", "/usr/local/bin/etcd"}) {
    if (access(candidate, X_OK) == 0) binary = candidate;
  }
  if (binary.empty()) {
    return absl::FailedPreconditionError(
        "etcd is not installed (deploy/setup.sh installs Debian's etcd-server)");
  }
  std::unique_ptr<EtcdServer> etcd(new EtcdServer());
  etcd->log_ = dir + "/etcd.log";
  std::filesystem::create_directories(dir);
  // Port 0 for both: the kernel picks; the peer URL is advertised but never
  // dialed (one member).
  auto pid = etcd->group_.Spawn(
      {"etcd",
       {binary, "--name", "test", "--data-dir", dir + "/data", "--listen-client-urls",
        "http://127.0.0.1:0", "--advertise-client-urls", "http://127.0.0.1:0", "--listen-peer-urls",
        "http://127.0.0.1:0", "--initial-advertise-peer-urls", "http://127.0.0.1:1",
        "--initial-cluster", "test=http://127.0.0.1:1", "--enable-grpc-gateway=false",
        "--log-outputs", "stderr"},
       etcd->log_});
  if (!pid.ok()) return pid.status();
  etcd->pid_ = *pid;
  const std::string marker = "serving insecure client requests on ";
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (true) {
    const std::string log = ReadFile(etcd->log_);
    const size_t at = log.find(marker);
    if (at != std::string::npos) {
      const size_t begin = at + marker.size();
      const size_t end = log.find_first_of(", \n", begin);
      if (end != std::string::npos) {
        etcd->endpoint_ = log.substr(begin, end - begin);
        return etcd;
      }
    }
    ChildExit exit;
    if (etcd->group_.Exited(etcd->pid_, &exit)) {
      return absl::InternalError(absl::StrCat("etcd exited with ", exit.code, ": ", log));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("etcd did not start within 30 s: ", log));
    }
    absl::SleepFor(absl::Milliseconds(20));  // poll period, bounded by the deadline
  }
}

EtcdServer::~EtcdServer() { group_.TerminateAll(absl::Seconds(5)); }

}  // namespace ps::testing

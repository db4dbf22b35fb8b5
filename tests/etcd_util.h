// A real etcd for tests (cluster.coordinator: etcd): one member, data in a
// temporary folder, client and peer ports picked by the kernel (port 0; the
// client address is read from etcd's log). Stopped with the object.
#ifndef PS_TESTS_ETCD_UTIL_H_
#define PS_TESTS_ETCD_UTIL_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tools/process_group.h"

namespace ps::testing {

class EtcdServer {
 public:
  // Starts etcd in `dir` (its log: dir/etcd.log) and waits until it serves
  // clients. FAILED_PRECONDITION if etcd is not installed (deploy/setup.sh
  // installs Debian's etcd-server).
  static absl::StatusOr<std::unique_ptr<EtcdServer>> Start(const std::string& dir);
  ~EtcdServer();

  // host:port of its client endpoint.
  const std::string& endpoint() const { return endpoint_; }
  const std::string& log_path() const { return log_; }

 private:
  EtcdServer() = default;
  ProcessGroup group_;
  pid_t pid_ = 0;
  std::string endpoint_, log_;
};

}  // namespace ps::testing

#endif  // PS_TESTS_ETCD_UTIL_H_

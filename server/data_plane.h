// The server side of the TCP data plane (common/data_frame.h): a listening
// socket and one reader thread per connection. A connection's first frame
// is a hello with a worker's ticket (checked like a gRPC call's); each push
// or pull frame after it is parsed and handed to the PsService, which runs
// the same checks and core calls as its gRPC methods, and the reply is
// written when the core finishes the call, from whichever thread does.
// A malformed frame (wrong magic or kind, a body over the limit, a body that
// does not parse) gets an error reply where it can be answered and closes
// the connection; the server keeps serving the others.
//
// Thread-safety: Start and Stop from one thread. mu_ guards conns_,
// readers_ and stopping_; each connection's write_mu serializes its replies.
#ifndef PS_SERVER_DATA_PLANE_H_
#define PS_SERVER_DATA_PLANE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/sync.h"

namespace ps {

class PsService;

class DataPlaneServer {
 public:
  // `service` outlives this. Bodies longer than `max_body` are refused.
  DataPlaneServer(PsService* service, uint32_t max_body);
  ~DataPlaneServer();  // Stop()

  // Listens on host:port (0: a free port); returns the port.
  absl::StatusOr<int> Start(const std::string& host, int port);
  // Closes the listener and every connection and joins their threads.
  // Replies of calls still in the core are dropped.
  void Stop();

  struct Conn;

 private:
  void AcceptLoop();
  void Serve(std::shared_ptr<Conn> conn);

  PsService* const service_;
  const uint32_t max_body_;
  int listen_fd_ = -1;
  std::thread acceptor_;

  Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::shared_ptr<Conn>> conns_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> readers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_SERVER_DATA_PLANE_H_

// The worker side of the TCP data plane (common/data_frame.h): one TCP
// connection to one server's data port, shared by the calls of one KvClient.
// Calls are pipelined on it: each gets an id, a reader thread matches the
// replies (which may come in any order) to their calls and finishes them. The
// connection says hello with the process's ticket first and again, on a new
// connection, whenever the ticket changed (a standby that took over a rank).
// A broken connection fails every call in flight on it (UNAVAILABLE, which
// KvClient retries), and the next call connects again.
//
// Deadlines are the caller's: it cancels a call whose deadline passed
// (KvClient's RunAll polls for that), and a late reply is dropped.
//
// Pushes and pulls go as split frames (common/data_frame.h): a push's values
// go from the caller's memory to the socket, and a pull reply's from the
// socket into the response's slices, without a copy here.
//
// Thread-safety: every method is thread-safe. mu_ guards the current link and
// the calls in flight; each link's write_mu serializes its frames.
#ifndef PS_WORKER_DATA_CLIENT_H_
#define PS_WORKER_DATA_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "common/data_frame.h"
#include "common/sync.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/status.h"
#include "proto/ps.pb.h"

namespace ps {

class DataConnection {
 public:
  using Done = std::function<void(grpc::Status)>;

  // `address`: the server's data plane, host:port.
  explicit DataConnection(std::string address);
  // Fails the calls still in flight (CANCELLED) and joins the reader threads.
  ~DataConnection();
  DataConnection(const DataConnection&) = delete;
  DataConnection& operator=(const DataConnection&) = delete;

  const std::string& address() const { return address_; }

  // Sends `req` as a split frame of `kind` (kPush or kPull) whose values are
  // `tail` (req's slices count them in raw_values; read before Start
  // returns), connecting first if needed (within the deadline, at most 5 s).
  // On the reply, reads its body into `resp` and calls done(OK), or
  // done(error); `resp` must live until then. `done` runs exactly once, maybe
  // before Start returns. Returns the call's id, for Cancel.
  uint64_t Start(frame::Kind kind, const google::protobuf::Message& req,
                 const frame::ValueSpans& tail, google::protobuf::Message* resp,
                 absl::Time deadline, Done done) ABSL_LOCKS_EXCLUDED(mu_);
  // Finishes call `id` with `status` if it has not finished yet (a call
  // whose reply is being read: once the read ends, which the cancel makes
  // immediate by breaking the connection).
  void Cancel(uint64_t id, grpc::Status status) ABSL_LOCKS_EXCLUDED(mu_);

  struct Link;

 private:
  struct Pending {
    Link* link = nullptr;
    google::protobuf::Message* resp = nullptr;
    // resp's slices if it has any (a split reply's values go there), else null.
    google::protobuf::RepeatedPtrField<rpc::TableSlice>* slices = nullptr;
    Done done;
    // The reader is reading its reply into resp (without mu_): a Cancel then
    // breaks the link, so the read ends, and leaves `done` to the reader
    // with `cancel` (a call is never finished while its resp is written).
    bool reading = false;
    std::optional<grpc::Status> cancel;
  };
  void ReadLoop(std::shared_ptr<Link> link);
  // Removes and returns the calls in flight on `link`.
  std::vector<Pending> TakeCallsOf(const Link* link) ABSL_LOCKS_EXCLUDED(mu_);

  const std::string address_;
  Mutex mu_;
  std::shared_ptr<Link> link_ ABSL_GUARDED_BY(mu_);
  // Replaced links; joined at the next reconnect once their readers are done, or at the end.
  std::vector<std::shared_ptr<Link>> retired_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Pending> pending_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ps

#endif  // PS_WORKER_DATA_CLIENT_H_

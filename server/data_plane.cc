#include "server/data_plane.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/data_frame.h"
#include "common/net.h"
#include "common/rpc.h"
#include "server/ps_service.h"
#include "spdlog/spdlog.h"

namespace ps {
namespace {

// Connections a server keeps open at once (a worker has one per KvClient);
// more are closed as soon as they are accepted.
constexpr size_t kMaxConnections = 1024;
// A request frame without a timeout waits at most this long in the core.
constexpr absl::Duration kDefaultTimeout = absl::Seconds(30);
// Error texts in replies are cut to this.
constexpr size_t kMaxErrorBytes = 4096;
// Until its hello is accepted a connection may send no longer frame (a
// ticket is at most 1 KiB): an anonymous peer makes the server allocate
// no more than this.
constexpr uint32_t kMaxHelloBytes = 4096;
// A reply that cannot be written for this long (the worker stopped reading:
// frozen, or gone without a FIN) closes the connection, so no thread that
// finishes calls stays blocked on it.
constexpr timeval kSendTimeout = {10, 0};

}  // namespace

struct DataPlaneServer::Conn {
  explicit Conn(int fd) : fd(fd), peer(PeerOf(fd)) {}
  ~Conn() { close(fd); }

  // Writes the reply of call `id`: `body` if `status` is OK, else the error
  // text. A failed write closes the connection (its reader sees it).
  void Reply(uint64_t id, const absl::Status& status, const google::protobuf::Message* body) {
    std::string out(frame::kHeaderBytes, '\0');
    if (status.ok()) {
      if (body != nullptr && !frame::SerializeBody(*body, &out)) {
        return Reply(id, absl::InternalError("the reply does not serialize"), nullptr);
      }
    } else {
      const absl::string_view text = status.message().substr(0, kMaxErrorBytes);
      out.append(text.data(), text.size());
    }
    frame::Header h;
    h.kind = frame::Kind::kReply;
    h.status = static_cast<uint16_t>(status.code());
    h.body_len = static_cast<uint32_t>(out.size() - frame::kHeaderBytes);
    h.call_id = id;
    frame::EncodeHeader(h, out.data());
    Write(out, {});
  }
  // The same as a split body: `body`'s values go from its slices to the
  // socket without a copy (they are moved out of `body`).
  void ReplySplit(uint64_t id, const absl::Status& status, rpc::PullResponse* body) {
    if (!status.ok()) return Reply(id, status, nullptr);
    std::vector<google::protobuf::RepeatedField<float>> kept;
    frame::ValueSpans tail;
    frame::SplitValues(body->mutable_slices(), &kept, &tail);
    frame::Header h;
    h.kind = frame::Kind::kReply;
    h.call_id = id;
    std::string out;
    if (!frame::SerializeSplitHead(*body, tail, &h, &out)) {
      return Reply(id, absl::InternalError("the reply does not serialize"), nullptr);
    }
    frame::EncodeHeader(h, out.data());
    Write(out, tail);
  }
  void Write(const std::string& head, const frame::ValueSpans& tail) {
    MutexLock lock(&write_mu);
    if (closed.load()) return;
    if (!frame::WriteFullSpans(fd, head, tail)) Close();
  }
  // Without the write lock: a shutdown also ends a send blocked under it.
  void Close() {
    closed.store(true);
    shutdown(fd, SHUT_RDWR);
  }

  const int fd;
  const std::string peer;
  std::atomic<bool> finished{false};  // its reader returned
  Mutex write_mu;                     // one reply at a time on the socket
  std::atomic<bool> closed{false};
};

namespace {

// Reads a request frame's body (after header `h`) into a request and hands
// it to `serve(req, resp, done)`; `done` writes the reply (split if the
// request was). The request and response live until then. False if the
// connection is to close: the stream broke, or (after an error reply) the
// body does not parse.
template <typename Req, typename Resp, typename Serve>
bool Dispatch(const std::shared_ptr<DataPlaneServer::Conn>& conn, const frame::Header& h,
              frame::Buffer* buffer, Serve serve) {
  struct Call {
    Req req;
    Resp resp;
  };
  auto call = std::make_shared<Call>();
  const uint64_t id = h.call_id;
  const bool split = (h.flags & frame::kSplitValues) != 0;
  absl::Status read;
  if (split) {
    read = frame::ReadSplitBody(
        h.body_len, [&](char* data, size_t size) { return frame::ReadFull(conn->fd, data, size); },
        buffer, &call->req, call->req.mutable_slices());
  } else {
    char* data = buffer->Reserve(h.body_len);
    if (!frame::ReadFull(conn->fd, data, h.body_len)) return false;
    if (!call->req.ParseFromArray(data, static_cast<int>(h.body_len))) {
      read = absl::InvalidArgumentError(
          absl::StrCat("the frame's body is not a ", Req::descriptor()->name()));
    }
  }
  if (!read.ok()) {
    if (read.code() != absl::StatusCode::kUnavailable) conn->Reply(id, read, nullptr);
    return false;
  }
  serve(&call->req, &call->resp, [conn, call, id, split](absl::Status s) {
    if constexpr (std::is_same_v<Resp, rpc::PullResponse>) {
      if (split) return conn->ReplySplit(id, s, &call->resp);
    }
    conn->Reply(id, s, &call->resp);
  });
  return true;
}

}  // namespace

DataPlaneServer::DataPlaneServer(PsService* service, uint32_t max_body)
    : service_(service), max_body_(max_body) {}

DataPlaneServer::~DataPlaneServer() { Stop(); }

absl::StatusOr<int> DataPlaneServer::Start(const std::string& host, int port) {
  int bound = 0;
  auto fd = ListenTcp(host, port, &bound);
  if (!fd.ok()) return fd.status();
  listen_fd_ = *fd;
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return bound;
}

void DataPlaneServer::Stop() {
  {
    MutexLock lock(&mu_);
    if (stopping_ || listen_fd_ < 0) return;
    stopping_ = true;
  }
  shutdown(listen_fd_, SHUT_RDWR);  // accept() returns
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> readers;
  {
    MutexLock lock(&mu_);
    for (auto& conn : conns_) conn->Close();
    readers.swap(readers_);
  }
  for (std::thread& t : readers) t.join();
  close(listen_fd_);
  MutexLock lock(&mu_);
  conns_.clear();
}

void DataPlaneServer::AcceptLoop() {
  while (true) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == EINTR || err == ECONNABORTED) continue;
      {
        MutexLock lock(&mu_);
        if (stopping_) return;
      }
      if (err == EMFILE || err == ENFILE) {
        spdlog::warn("data plane: accept: {}", strerror(err));
        absl::SleepFor(
            absl::Milliseconds(100));  // backoff: nothing to wait on until the OS frees one
        continue;
      }
      spdlog::error("data plane: accept: {}", strerror(err));
      return;
    }
    // Replies go out whole at once: no Nagle delay behind an unacknowledged one.
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &kSendTimeout, sizeof(kSendTimeout));
    auto conn = std::make_shared<Conn>(fd);
    MutexLock lock(&mu_);
    if (stopping_) return;  // conn closes its socket
    // Forget the connections whose readers have returned.
    for (size_t i = 0; i < conns_.size();) {
      if (conns_[i]->finished.load()) {
        readers_[i].join();
        conns_.erase(conns_.begin() + i);
        readers_.erase(readers_.begin() + i);
      } else {
        ++i;
      }
    }
    if (conns_.size() >= kMaxConnections) {
      spdlog::warn("data plane: refusing a connection from {}: {} are open", conn->peer,
                   conns_.size());
      continue;
    }
    conns_.push_back(conn);
    readers_.emplace_back([this, conn] { Serve(conn); });
  }
}

void DataPlaneServer::Serve(std::shared_ptr<Conn> conn) {
  std::string ticket;
  bool greeted = false;
  char head[frame::kHeaderBytes];
  frame::Buffer buffer;
  while (frame::ReadFull(conn->fd, head, sizeof(head))) {
    auto h = frame::DecodeHeader(head, greeted ? max_body_ : kMaxHelloBytes);
    if (!h.ok()) {
      conn->Reply(0, h.status(), nullptr);
      break;
    }
    const uint64_t id = h->call_id;
    if (!greeted) {
      char* data = buffer.Reserve(h->body_len);
      if (!frame::ReadFull(conn->fd, data, h->body_len)) break;
      const std::string_view body(data, h->body_len);
      if (h->kind != frame::Kind::kHello) {
        conn->Reply(id, absl::UnauthenticatedError("a data-plane connection starts with a hello"),
                    nullptr);
        break;
      }
      if (grpc::Status s = service_->DataHello(body, conn->peer); !s.ok()) {
        conn->Reply(id, FromGrpcStatus(s), nullptr);
        break;
      }
      ticket = std::string(body);
      greeted = true;
      conn->Reply(id, absl::OkStatus(), nullptr);
      continue;
    }
    const absl::Time deadline =
        absl::Now() + (h->timeout_ms > 0 ? absl::Milliseconds(h->timeout_ms) : kDefaultTimeout);
    const size_t bytes = h->body_len;
    bool parsed = false;
    if (h->kind == frame::Kind::kPush) {
      parsed = Dispatch<rpc::PushRequest, rpc::PushResponse>(
          conn, *h, &buffer, [&](const rpc::PushRequest* req, rpc::PushResponse* resp, auto done) {
            service_->DataPush(ticket, conn->peer, bytes, req, resp, deadline, std::move(done));
          });
    } else if (h->kind == frame::Kind::kPull) {
      parsed = Dispatch<rpc::PullRequest, rpc::PullResponse>(
          conn, *h, &buffer, [&](const rpc::PullRequest* req, rpc::PullResponse* resp, auto done) {
            service_->DataPull(ticket, conn->peer, bytes, req, resp, deadline, std::move(done));
          });
    } else {
      conn->Reply(id, absl::InvalidArgumentError("unexpected frame kind on a server"), nullptr);
    }
    if (!parsed) break;
  }
  conn->Close();
  conn->finished.store(true);
}

}  // namespace ps

#include "worker/data_client.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/auth.h"
#include "common/net.h"
#include "common/rpc.h"

namespace ps {
namespace {

// How long a call waits for a connection at most (a cut network link
// otherwise holds connect() for minutes).
constexpr absl::Duration kMaxConnectWait = absl::Seconds(5);
// A request that cannot be written for this long (the server stopped
// reading: frozen) breaks the link, so the calling thread is not held past
// it; its calls fail as UNAVAILABLE and are retried.
constexpr timeval kSendTimeout = {10, 0};

uint32_t TimeoutMs(absl::Time deadline) {
  const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
  return static_cast<uint32_t>(std::clamp<int64_t>(ms, 1, UINT32_MAX));
}

}  // namespace

struct DataConnection::Link {
  ~Link() {
    if (fd >= 0) close(fd);
  }
  // False if the link is broken (now or before).
  bool Write(const std::string& frame, const frame::ValueSpans& tail = {}) {
    MutexLock lock(&write_mu);
    if (broken.load()) return false;
    if (!frame::WriteFullSpans(fd, frame, tail)) {
      Break();
      return false;
    }
    return true;
  }
  // Its reader sees the end of the stream and fails the calls in flight.
  void Break() {
    broken.store(true);
    shutdown(fd, SHUT_RDWR);
  }

  int fd = -1;
  std::string ticket;  // the hello's
  std::thread reader;
  std::atomic<bool> broken{false};
  std::atomic<bool> finished{false};  // its reader has returned (join is immediate)
  Mutex write_mu;
};

DataConnection::DataConnection(std::string address) : address_(std::move(address)) {}

DataConnection::~DataConnection() {
  std::vector<std::shared_ptr<Link>> links;
  std::map<uint64_t, Pending> pending;
  {
    MutexLock lock(&mu_);
    if (link_ != nullptr) links.push_back(std::move(link_));
    links.insert(links.end(), retired_.begin(), retired_.end());
    retired_.clear();
    pending.swap(pending_);
  }
  for (auto& link : links) link->Break();
  // The readers first: one may be reading a reply into a call's response.
  for (auto& link : links) {
    if (link->reader.joinable()) link->reader.join();
  }
  for (auto& [id, p] : pending) p.done(grpc::Status(grpc::StatusCode::CANCELLED, "client closed"));
}

uint64_t DataConnection::Start(frame::Kind kind, const google::protobuf::Message& req,
                               const frame::ValueSpans& tail, google::protobuf::Message* resp,
                               absl::Time deadline, Done done) {
  std::string out;
  frame::Header h;
  if (!frame::SerializeSplitHead(req, tail, &h, &out)) {
    done(grpc::Status(grpc::StatusCode::INTERNAL, "the request does not serialize"));
    return 0;
  }
  const std::shared_ptr<CallCredentials> credentials = ProcessCredentials();
  const std::string ticket = credentials != nullptr ? credentials->ticket() : "";
  std::shared_ptr<Link> link;
  uint64_t id = 0;
  std::string connect_error;
  {
    MutexLock lock(&mu_);
    id = ++next_id_;
    if (link_ == nullptr || link_->broken.load() || link_->ticket != ticket) {
      if (link_ != nullptr) {
        link_->Break();
        retired_.push_back(std::move(link_));
      }
      // Links whose readers are done give back their threads and sockets now.
      for (auto it = retired_.begin(); it != retired_.end();) {
        if (!(*it)->finished.load()) {
          ++it;
          continue;
        }
        if ((*it)->reader.joinable()) (*it)->reader.join();
        it = retired_.erase(it);
      }
      auto fd = ConnectTcp(
          address_, std::clamp(deadline - absl::Now(), absl::ZeroDuration(), kMaxConnectWait));
      if (!fd.ok()) {
        connect_error = std::string(fd.status().message());
      } else {
        setsockopt(*fd, SOL_SOCKET, SO_SNDTIMEO, &kSendTimeout, sizeof(kSendTimeout));
        auto fresh = std::make_shared<Link>();
        fresh->fd = *fd;
        fresh->ticket = ticket;
        std::string hello(frame::kHeaderBytes, '\0');
        hello.append(ticket);
        frame::Header h;
        h.kind = frame::Kind::kHello;
        h.body_len = static_cast<uint32_t>(ticket.size());
        h.call_id = 0;  // the hello's reply
        frame::EncodeHeader(h, hello.data());
        fresh->Write(hello);  // a failure shows in the reader
        fresh->reader = std::thread([this, fresh] { ReadLoop(fresh); });
        link_ = std::move(fresh);
      }
    }
    if (connect_error.empty()) {
      link = link_;
      auto* pull = dynamic_cast<rpc::PullResponse*>(resp);
      pending_.emplace(id,
                       Pending{link.get(), resp, pull != nullptr ? pull->mutable_slices() : nullptr,
                               std::move(done), /*reading=*/false, std::nullopt});
    }
  }
  if (!connect_error.empty()) {
    done(grpc::Status(grpc::StatusCode::UNAVAILABLE, absl::StrCat("data plane: ", connect_error)));
    return id;
  }
  h.kind = kind;
  h.timeout_ms = TimeoutMs(deadline);
  h.call_id = id;
  frame::EncodeHeader(h, out.data());
  link->Write(out, tail);  // a failure breaks the link: its reader fails this call
  return id;
}

void DataConnection::Cancel(uint64_t id, grpc::Status status) {
  Done done;
  {
    MutexLock lock(&mu_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    if (it->second.reading) {
      if (!it->second.cancel.has_value()) it->second.cancel = std::move(status);
      it->second.link->Break();  // its reader's read ends now, and it finishes the call
      return;
    }
    done = std::move(it->second.done);
    pending_.erase(it);
  }
  done(std::move(status));
}

std::vector<DataConnection::Pending> DataConnection::TakeCallsOf(const Link* link) {
  std::vector<Pending> out;
  MutexLock lock(&mu_);
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.link == link) {
      out.push_back(std::move(it->second));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

void DataConnection::ReadLoop(std::shared_ptr<Link> link) {
  grpc::Status end(grpc::StatusCode::UNAVAILABLE,
                   absl::StrCat("data plane: the connection to ", address_, " was lost"));
  char head[frame::kHeaderBytes];
  frame::Buffer buffer;
  while (frame::ReadFull(link->fd, head, sizeof(head))) {
    auto h = frame::DecodeHeader(head, kMaxMessageBytes);
    if (!h.ok() || h->kind != frame::Kind::kReply) {
      end = grpc::Status(grpc::StatusCode::INTERNAL,
                         absl::StrCat("data plane: a malformed reply from ", address_));
      break;
    }
    const auto code = static_cast<grpc::StatusCode>(h->status);
    auto read = [&](char* data, size_t size) { return frame::ReadFull(link->fd, data, size); };
    if ((h->flags & frame::kSplitValues) != 0 && code == grpc::StatusCode::OK && h->call_id != 0) {
      // The values are read straight into the call's response, so the call
      // stays in pending_ (marked reading) until they are in: a Cancel
      // meanwhile breaks the link instead of finishing it.
      google::protobuf::Message* resp = nullptr;
      google::protobuf::RepeatedPtrField<rpc::TableSlice>* slices = nullptr;
      {
        MutexLock lock(&mu_);
        auto it = pending_.find(h->call_id);
        if (it != pending_.end() && it->second.link == link.get()) {
          it->second.reading = true;
          resp = it->second.resp;
          slices = it->second.slices;
        }
      }
      if (resp == nullptr) {  // cancelled: its reply is read and dropped
        if (!read(buffer.Reserve(h->body_len), h->body_len)) break;
        continue;
      }
      absl::Status s = absl::InvalidArgumentError("a split reply to a call that has no slices");
      if (slices != nullptr) s = frame::ReadSplitBody(h->body_len, read, &buffer, resp, slices);
      Pending call;
      {
        MutexLock lock(&mu_);
        auto it = pending_.find(h->call_id);
        if (it != pending_.end()) {  // else the destructor took it
          call = std::move(it->second);
          pending_.erase(it);
        }
      }
      if (call.done == nullptr) break;
      if (call.cancel.has_value()) {
        call.done(*call.cancel);
        break;  // the link is broken
      }
      if (!s.ok()) {  // the stream cannot be followed past it; the other calls are retried
        call.done(s.code() == absl::StatusCode::kUnavailable
                      ? end
                      : grpc::Status(grpc::StatusCode::INTERNAL,
                                     absl::StrCat("data plane: a malformed reply from ", address_,
                                                  ": ", s.message())));
        break;
      }
      call.done(grpc::Status::OK);
      continue;
    }
    char* body = buffer.Reserve(h->body_len);
    if (!frame::ReadFull(link->fd, body, h->body_len)) break;
    if (h->call_id == 0) {  // the hello's reply
      if (code != grpc::StatusCode::OK) {
        end = grpc::Status(code, std::string(body, h->body_len));
        break;
      }
      continue;
    }
    Pending call;
    {
      MutexLock lock(&mu_);
      auto it = pending_.find(h->call_id);
      if (it == pending_.end() || it->second.link != link.get()) continue;  // cancelled
      call = std::move(it->second);
      pending_.erase(it);
    }
    grpc::Status status(code, code == grpc::StatusCode::OK ? "" : std::string(body, h->body_len));
    if (code == grpc::StatusCode::OK &&
        !call.resp->ParseFromArray(body, static_cast<int>(h->body_len))) {
      status = grpc::Status(grpc::StatusCode::INTERNAL,
                            absl::StrCat("data plane: a reply from ", address_, " does not parse"));
    }
    call.done(std::move(status));
  }
  link->Break();
  for (Pending& call : TakeCallsOf(link.get())) call.done(end);
  link->finished.store(true);
}

}  // namespace ps

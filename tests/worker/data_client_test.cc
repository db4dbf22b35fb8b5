// The TCP data plane's framing and its client (common/data_frame.h,
// worker/data_client.h) against a scripted peer on a real loopback socket:
// replies in any order reach their calls, a cancelled call ignores its late
// reply, a lost connection fails the calls in flight and the next call
// connects again, a refused hello fails the calls with its status.
#include "worker/data_client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "absl/time/clock.h"
#include "common/data_frame.h"
#include "common/net.h"
#include "common/sync.h"
#include "gtest/gtest.h"
#include "proto/ps.pb.h"

namespace ps {
namespace {

TEST(DataFrame, HeadersRoundTripAndBadOnesAreRefused) {
  frame::Header h;
  h.kind = frame::Kind::kPull;
  h.status = 14;
  h.body_len = 123456;
  h.timeout_ms = 30000;
  h.call_id = 0x0102030405060708ULL;
  char buf[frame::kHeaderBytes];
  frame::EncodeHeader(h, buf);
  auto back = frame::DecodeHeader(buf, 1 << 20);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->kind, frame::Kind::kPull);
  EXPECT_EQ(back->status, 14);
  EXPECT_EQ(back->body_len, 123456u);
  EXPECT_EQ(back->timeout_ms, 30000u);
  EXPECT_EQ(back->call_id, 0x0102030405060708ULL);

  auto small = frame::DecodeHeader(buf, 1000);
  EXPECT_EQ(small.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(small.status().message().find("123456"), std::string::npos) << small.status();
  char bad[frame::kHeaderBytes];
  std::copy(buf, buf + sizeof(buf), bad);
  bad[0] ^= 1;
  EXPECT_EQ(frame::DecodeHeader(bad, 1 << 20).status().code(), absl::StatusCode::kInvalidArgument);
  std::copy(buf, buf + sizeof(buf), bad);
  bad[4] = 9;  // no such kind
  EXPECT_EQ(frame::DecodeHeader(bad, 1 << 20).status().code(), absl::StatusCode::kInvalidArgument);
}

// A peer that accepts connections and hands each to `script` on its own thread.
class ScriptedPeer {
 public:
  using Script = std::function<void(int fd)>;
  explicit ScriptedPeer(Script script) : script_(std::move(script)) {
    auto fd = ListenTcp("127.0.0.1", 0, &port_);
    EXPECT_TRUE(fd.ok()) << fd.status();
    listen_fd_ = *fd;
    acceptor_ = std::thread([this] {
      while (true) {
        const int fd = accept(listen_fd_, nullptr, nullptr);
        if (fd < 0) return;
        MutexLock lock(&mu_);
        fds_.push_back(fd);
        threads_.emplace_back([this, fd] { script_(fd); });
      }
    });
  }
  ~ScriptedPeer() {
    shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    MutexLock lock(&mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    for (std::thread& t : threads_) t.join();
    for (int fd : fds_) close(fd);
    close(listen_fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int connections() {
    MutexLock lock(&mu_);
    return static_cast<int>(fds_.size());
  }

 private:
  Script script_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  Mutex mu_;
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

struct Frame {
  frame::Header header;
  std::string body;
};

bool ReadFrame(int fd, Frame* f) {
  char head[frame::kHeaderBytes];
  if (!frame::ReadFull(fd, head, sizeof(head))) return false;
  auto h = frame::DecodeHeader(head, 1 << 24);
  if (!h.ok()) return false;
  f->header = *h;
  f->body.resize(h->body_len);
  return frame::ReadFull(fd, f->body.data(), f->body.size());
}

void WriteReply(int fd, uint64_t id, int status, const std::string& body) {
  std::string out(frame::kHeaderBytes, '\0');
  frame::Header h;
  h.kind = frame::Kind::kReply;
  h.status = static_cast<uint16_t>(status);
  h.body_len = static_cast<uint32_t>(body.size());
  h.call_id = id;
  frame::EncodeHeader(h, out.data());
  out += body;
  ASSERT_TRUE(frame::WriteFull(fd, out.data(), out.size()));
}

// The outcome of one call, waited on with a deadline.
struct Outcome {
  Mutex mu;
  CondVar cv;
  bool done ABSL_GUARDED_BY(mu) = false;
  grpc::Status status ABSL_GUARDED_BY(mu);
  DataConnection::Done Callback() {
    return [this](grpc::Status s) {
      MutexLock lock(&mu);
      EXPECT_FALSE(done) << "done ran twice";
      done = true;
      status = std::move(s);
      cv.SignalAll();
    };
  }
  grpc::Status Wait() {
    MutexLock lock(&mu);
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!done && absl::Now() < deadline) cv.WaitWithTimeout(&mu, deadline - absl::Now());
    EXPECT_TRUE(done) << "the call never finished";
    return status;
  }
};

rpc::PullResponse ReplyWith(float v) {
  rpc::PullResponse r;
  r.add_slices()->add_values(v);
  return r;
}

TEST(DataConnection, RepliesInAnyOrderReachTheirCalls) {
  // Answers the hello, then two requests in reverse order.
  ScriptedPeer peer([](int fd) {
    Frame hello, a, b;
    if (!ReadFrame(fd, &hello) || hello.header.kind != frame::Kind::kHello) return;
    WriteReply(fd, hello.header.call_id, 0, "");
    if (!ReadFrame(fd, &a) || !ReadFrame(fd, &b)) return;
    WriteReply(fd, b.header.call_id, 0, ReplyWith(2).SerializeAsString());
    WriteReply(fd, a.header.call_id, 0, ReplyWith(1).SerializeAsString());
  });
  DataConnection conn(peer.address());
  rpc::PullRequest req;
  rpc::PullResponse first, second;
  Outcome o1, o2;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  conn.Start(frame::Kind::kPull, req, &first, deadline, o1.Callback());
  conn.Start(frame::Kind::kPull, req, &second, deadline, o2.Callback());
  EXPECT_TRUE(o1.Wait().ok());
  EXPECT_TRUE(o2.Wait().ok());
  EXPECT_EQ(first.slices(0).values(0), 1.0f);
  EXPECT_EQ(second.slices(0).values(0), 2.0f);
}

TEST(DataConnection, ALostConnectionFailsItsCallsAndTheNextCallConnectsAgain) {
  // First connection: hello answered, the request read, then the peer closes.
  // Later connections: answered normally.
  std::atomic<int> n{0};
  ScriptedPeer peer([&n](int fd) {
    const int me = n++;
    Frame f;
    if (!ReadFrame(fd, &f)) return;
    WriteReply(fd, f.header.call_id, 0, "");
    while (ReadFrame(fd, &f)) {
      if (me == 0) {
        shutdown(fd, SHUT_RDWR);
        return;
      }
      WriteReply(fd, f.header.call_id, 0, ReplyWith(7).SerializeAsString());
    }
  });
  DataConnection conn(peer.address());
  rpc::PullRequest req;
  rpc::PullResponse resp;
  Outcome lost;
  conn.Start(frame::Kind::kPull, req, &resp, absl::Now() + absl::Seconds(20), lost.Callback());
  EXPECT_EQ(lost.Wait().error_code(), grpc::StatusCode::UNAVAILABLE);
  Outcome again;
  conn.Start(frame::Kind::kPull, req, &resp, absl::Now() + absl::Seconds(20), again.Callback());
  EXPECT_TRUE(again.Wait().ok());
  EXPECT_EQ(resp.slices(0).values(0), 7.0f);
  EXPECT_EQ(peer.connections(), 2);
}

TEST(DataConnection, ACancelledCallIgnoresItsLateReply) {
  Mutex mu;
  CondVar cv;
  bool release = false;
  ScriptedPeer peer([&](int fd) {
    Frame f;
    if (!ReadFrame(fd, &f)) return;
    WriteReply(fd, f.header.call_id, 0, "");
    Frame a, b;
    if (!ReadFrame(fd, &a)) return;
    {
      MutexLock lock(&mu);  // the reply comes only after the cancel
      const absl::Time deadline = absl::Now() + absl::Seconds(20);
      while (!release && absl::Now() < deadline) cv.WaitWithTimeout(&mu, deadline - absl::Now());
    }
    WriteReply(fd, a.header.call_id, 0, ReplyWith(1).SerializeAsString());
    if (!ReadFrame(fd, &b)) return;
    WriteReply(fd, b.header.call_id, 0, ReplyWith(2).SerializeAsString());
  });
  DataConnection conn(peer.address());
  rpc::PullRequest req;
  rpc::PullResponse cancelled_resp, resp;
  Outcome cancelled;
  const uint64_t id = conn.Start(frame::Kind::kPull, req, &cancelled_resp,
                                 absl::Now() + absl::Seconds(20), cancelled.Callback());
  conn.Cancel(id, grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "too late"));
  EXPECT_EQ(cancelled.Wait().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  {
    MutexLock lock(&mu);
    release = true;
    cv.SignalAll();
  }
  Outcome next;
  conn.Start(frame::Kind::kPull, req, &resp, absl::Now() + absl::Seconds(20), next.Callback());
  EXPECT_TRUE(next.Wait().ok());
  EXPECT_EQ(resp.slices(0).values(0), 2.0f);
  EXPECT_EQ(cancelled_resp.slices_size(), 0);  // the late reply was not written into it
}

TEST(DataConnection, ARefusedHelloFailsTheCallsWithItsStatus) {
  ScriptedPeer peer([](int fd) {
    Frame f;
    if (!ReadFrame(fd, &f)) return;
    WriteReply(fd, f.header.call_id, static_cast<int>(grpc::StatusCode::UNAUTHENTICATED),
               "DataHello: no credential");
    shutdown(fd, SHUT_RDWR);
  });
  DataConnection conn(peer.address());
  rpc::PullRequest req;
  rpc::PullResponse resp;
  Outcome o;
  conn.Start(frame::Kind::kPull, req, &resp, absl::Now() + absl::Seconds(20), o.Callback());
  const grpc::Status s = o.Wait();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(s.error_message(), "DataHello: no credential");
}

TEST(DataConnection, NoServerIsUnavailableNamingTheAddress) {
  int port = 0;
  auto fd = ListenTcp("127.0.0.1", 0, &port);  // bound, then closed: nobody listens there
  ASSERT_TRUE(fd.ok());
  close(*fd);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  DataConnection conn(address);
  rpc::PullRequest req;
  rpc::PullResponse resp;
  Outcome o;
  conn.Start(frame::Kind::kPull, req, &resp, absl::Now() + absl::Seconds(5), o.Callback());
  const grpc::Status s = o.Wait();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(s.error_message().find(address), std::string::npos) << s.error_message();
}

}  // namespace
}  // namespace ps

// The TCP data plane's framing and its client (common/data_frame.h,
// worker/data_client.h) against a scripted peer on a real loopback socket:
// replies in any order reach their calls, a cancelled call ignores its late
// reply, a lost connection fails the calls in flight and the next call
// connects again, a refused hello fails the calls with its status.
#include "worker/data_client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
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

// Reads from `bytes` as from a socket.
struct MemoryReader {
  const std::string& bytes;
  size_t at = 0;
  bool operator()(char* data, size_t size) {
    if (size == 0) return true;  // `data` may be null
    if (at + size > bytes.size()) return false;
    std::memcpy(data, bytes.data() + at, size);
    at += size;
    return true;
  }
};

// `msg` as a split frame's body (after the header), its values from `tail`.
std::string SplitBody(const google::protobuf::MessageLite& msg, const frame::ValueSpans& tail) {
  frame::Header h;
  std::string out;
  EXPECT_TRUE(frame::SerializeSplitHead(msg, tail, &h, &out));
  EXPECT_EQ(h.flags, frame::kSplitValues);
  for (const auto& span : tail) {
    out.append(reinterpret_cast<const char*>(span.data()), span.size() * sizeof(float));
  }
  EXPECT_EQ(out.size() - frame::kHeaderBytes, h.body_len);
  return out.substr(frame::kHeaderBytes);
}

TEST(DataFrame, SplitBodiesCarryEachSlicesValuesAfterTheHead) {
  // Three slices: values in two pieces of one array, none, and one more.
  const std::vector<float> grads = {1.5f, -2.0f, 3.25f, 4.0f, 5.0f};
  const std::vector<float> other = {-0.125f};
  rpc::PushRequest req;
  req.set_worker(3);
  req.set_seq(9);
  auto* a = req.add_slices();
  a->set_table(0);
  a->add_keys(10);
  a->add_keys(11);
  a->set_raw_values(5);
  auto* empty = req.add_slices();
  empty->set_table(1);
  auto* b = req.add_slices();
  b->set_table(2);
  b->add_keys(12);
  b->set_raw_values(1);
  const frame::ValueSpans tail = {absl::MakeConstSpan(grads).subspan(0, 2),
                                  absl::MakeConstSpan(grads).subspan(2),
                                  absl::MakeConstSpan(other)};
  const std::string body = SplitBody(req, tail);

  rpc::PushRequest back;
  frame::Buffer buffer;
  MemoryReader read{body};
  ASSERT_TRUE(frame::ReadSplitBody(static_cast<uint32_t>(body.size()), std::ref(read), &buffer,
                                   &back, back.mutable_slices())
                  .ok());
  EXPECT_EQ(read.at, body.size());
  EXPECT_EQ(back.worker(), 3);
  EXPECT_EQ(back.seq(), 9u);
  ASSERT_EQ(back.slices_size(), 3);
  EXPECT_EQ(std::vector<float>(back.slices(0).values().begin(), back.slices(0).values().end()),
            grads);
  EXPECT_EQ(back.slices(1).values_size(), 0);
  ASSERT_EQ(back.slices(2).values_size(), 1);
  EXPECT_EQ(back.slices(2).values(0), -0.125f);
  for (const auto& slice : back.slices()) EXPECT_EQ(slice.raw_values(), 0u);

  // SplitValues moves a message's values out (what a server does to a reply).
  rpc::PullResponse reply;
  reply.add_slices()->add_values(7.0f);
  reply.add_slices();
  reply.add_slices()->add_values(8.0f);
  std::vector<google::protobuf::RepeatedField<float>> kept;
  frame::ValueSpans spans;
  frame::SplitValues(reply.mutable_slices(), &kept, &spans);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(reply.slices(0).values_size(), 0);
  EXPECT_EQ(reply.slices(2).raw_values(), 1u);
  const std::string reply_body = SplitBody(reply, spans);
  rpc::PullResponse reply_back;
  MemoryReader reply_read{reply_body};
  ASSERT_TRUE(frame::ReadSplitBody(static_cast<uint32_t>(reply_body.size()), std::ref(reply_read),
                                   &buffer, &reply_back, reply_back.mutable_slices())
                  .ok());
  ASSERT_EQ(reply_back.slices_size(), 3);
  EXPECT_EQ(reply_back.slices(0).values(0), 7.0f);
  EXPECT_EQ(reply_back.slices(2).values(0), 8.0f);

  // A stream that ends early: UNAVAILABLE (the connection is gone).
  const std::string cut = body.substr(0, body.size() - 1);
  MemoryReader cut_read{cut};
  rpc::PushRequest partial;
  EXPECT_EQ(frame::ReadSplitBody(static_cast<uint32_t>(body.size()), std::ref(cut_read), &buffer,
                                 &partial, partial.mutable_slices())
                .code(),
            absl::StatusCode::kUnavailable);
}

TEST(DataFrame, SplitBodiesThatDoNotAddUpAreRefusedNamingWhy) {
  frame::Buffer buffer;
  auto read_as_push = [&](const std::string& body) {
    MemoryReader read{body};
    rpc::PushRequest req;
    return frame::ReadSplitBody(static_cast<uint32_t>(body.size()), std::ref(read), &buffer, &req,
                                req.mutable_slices());
  };
  const std::vector<float> one = {1.0f};
  rpc::PushRequest req;
  req.add_slices()->set_raw_values(2);  // announces 2, carries 1
  absl::Status s = read_as_push(SplitBody(req, {absl::MakeConstSpan(one)}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("announces 8 bytes of values; the body carries 4"), std::string::npos)
      << s;
  req.mutable_slices(0)->set_raw_values(1);
  req.mutable_slices(0)->add_values(5.0f);  // and values in the head too
  s = read_as_push(SplitBody(req, {absl::MakeConstSpan(one)}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("slice 0"), std::string::npos) << s;
  // A head length past the body, a body too short for one, a head that is
  // not a message.
  std::string body = SplitBody(rpc::PushRequest(), {});
  body[0] = 100;
  s = read_as_push(body);
  EXPECT_NE(s.message().find("longer than the body"), std::string::npos) << s;
  s = read_as_push("ab");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  const std::string junk = std::string("\x04\0\0\0", 4) + std::string(4, '\xff');
  s = read_as_push(junk);
  EXPECT_NE(s.message().find("not a ps.rpc.PushRequest"), std::string::npos) << s;
  // Flags other than kSplitValues: refused at the header.
  frame::Header h;
  h.kind = frame::Kind::kPush;
  char head[frame::kHeaderBytes];
  frame::EncodeHeader(h, head);
  head[5] = 2;
  EXPECT_EQ(frame::DecodeHeader(head, 1 << 20).status().code(), absl::StatusCode::kInvalidArgument);
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

// A split reply (as servers answer workers' split requests); of its values
// only the first `values_sent` go out (a server stopped mid-reply).
void WriteSplitReply(int fd, uint64_t id, rpc::PullResponse reply, size_t values_sent = SIZE_MAX) {
  std::vector<google::protobuf::RepeatedField<float>> kept;
  frame::ValueSpans tail;
  frame::SplitValues(reply.mutable_slices(), &kept, &tail);
  frame::Header h;
  h.kind = frame::Kind::kReply;
  h.call_id = id;
  std::string out;
  ASSERT_TRUE(frame::SerializeSplitHead(reply, tail, &h, &out));
  frame::EncodeHeader(h, out.data());
  for (auto& span : tail) {
    span = span.subspan(0, std::min(span.size(), values_sent));
    values_sent -= span.size();
  }
  ASSERT_TRUE(frame::WriteFullSpans(fd, out, tail));
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

// One pull on `conn`, waited for: its status.
grpc::Status PullOnce(DataConnection& conn, rpc::PullResponse* resp,
                      absl::Duration timeout = absl::Seconds(20)) {
  Outcome o;
  conn.Start(frame::Kind::kPull, rpc::PullRequest(), {}, resp, absl::Now() + timeout, o.Callback());
  return o.Wait();
}

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
  conn.Start(frame::Kind::kPull, req, {}, &first, deadline, o1.Callback());
  conn.Start(frame::Kind::kPull, req, {}, &second, deadline, o2.Callback());
  EXPECT_TRUE(o1.Wait().ok());
  EXPECT_TRUE(o2.Wait().ok());
  EXPECT_EQ(first.slices(0).values(0), 1.0f);
  EXPECT_EQ(second.slices(0).values(0), 2.0f);
}

TEST(DataConnection, APushsValuesGoFromTheCallersMemoryAndASplitReplyFillsTheResponse) {
  // The peer reads a split push and answers with its values, negated, split.
  ScriptedPeer peer([](int fd) {
    Frame hello;
    if (!ReadFrame(fd, &hello)) return;
    WriteReply(fd, hello.header.call_id, 0, "");
    char head[frame::kHeaderBytes];
    if (!frame::ReadFull(fd, head, sizeof(head))) return;
    auto h = frame::DecodeHeader(head, 1 << 24);
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_EQ(h->kind, frame::Kind::kPush);
    EXPECT_EQ(h->flags, frame::kSplitValues);
    rpc::PushRequest push;
    frame::Buffer buffer;
    ASSERT_TRUE(frame::ReadSplitBody(
                    h->body_len, [&](char* d, size_t n) { return frame::ReadFull(fd, d, n); },
                    &buffer, &push, push.mutable_slices())
                    .ok());
    rpc::PullResponse reply;
    for (const auto& slice : push.slices()) {
      auto* out = reply.add_slices();
      for (float v : slice.values()) out->add_values(-v);
    }
    WriteSplitReply(fd, h->call_id, std::move(reply));
  });
  DataConnection conn(peer.address());
  std::vector<float> grads(300000);  // 1.2 MB: more than one send's worth
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = static_cast<float>(i % 1000) * 0.5f;
  rpc::PushRequest req;
  auto* slice = req.add_slices();
  slice->add_keys(1);
  slice->set_raw_values(static_cast<uint32_t>(grads.size()));
  rpc::PullResponse resp;
  Outcome o;
  conn.Start(frame::Kind::kPush, req, {absl::MakeConstSpan(grads)}, &resp,
             absl::Now() + absl::Seconds(20), o.Callback());
  ASSERT_TRUE(o.Wait().ok());
  ASSERT_EQ(resp.slices_size(), 1);
  ASSERT_EQ(resp.slices(0).values_size(), static_cast<int>(grads.size()));
  for (size_t i = 0; i < grads.size(); i += 997) EXPECT_EQ(resp.slices(0).values(i), -grads[i]);
  EXPECT_EQ(resp.slices(0).raw_values(), 0u);
}

TEST(DataConnection, ASplitReplyThatDoesNotAddUpFailsItsCallNamingWhy) {
  ScriptedPeer peer([](int fd) {
    Frame hello, f;
    if (!ReadFrame(fd, &hello)) return;
    WriteReply(fd, hello.header.call_id, 0, "");
    if (!ReadFrame(fd, &f)) return;
    rpc::PullResponse reply;
    reply.add_slices()->set_raw_values(3);  // and no values follow
    std::string out;
    frame::Header h;
    h.kind = frame::Kind::kReply;
    h.call_id = f.header.call_id;
    ASSERT_TRUE(frame::SerializeSplitHead(reply, {}, &h, &out));
    frame::EncodeHeader(h, out.data());
    ASSERT_TRUE(frame::WriteFull(fd, out.data(), out.size()));
  });
  DataConnection conn(peer.address());
  rpc::PullResponse resp;
  const grpc::Status s = PullOnce(conn, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_NE(s.error_message().find("announces 12 bytes of values"), std::string::npos)
      << s.error_message();
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
  rpc::PullResponse resp;
  EXPECT_EQ(PullOnce(conn, &resp).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(PullOnce(conn, &resp).ok());
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
    WriteSplitReply(fd, a.header.call_id, ReplyWith(1));
    if (!ReadFrame(fd, &b)) return;
    WriteSplitReply(fd, b.header.call_id, ReplyWith(2));
  });
  DataConnection conn(peer.address());
  rpc::PullRequest req;
  rpc::PullResponse cancelled_resp, resp;
  Outcome cancelled;
  const uint64_t id = conn.Start(frame::Kind::kPull, req, {}, &cancelled_resp,
                                 absl::Now() + absl::Seconds(20), cancelled.Callback());
  conn.Cancel(id, grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "too late"));
  EXPECT_EQ(cancelled.Wait().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  {
    MutexLock lock(&mu);
    release = true;
    cv.SignalAll();
  }
  EXPECT_TRUE(PullOnce(conn, &resp).ok());
  EXPECT_EQ(resp.slices(0).values(0), 2.0f);
  EXPECT_EQ(cancelled_resp.slices_size(), 0);  // the late reply was not written into it
}

TEST(DataConnection, ACallWhoseReplyStoppedHalfWayCanBeCancelled) {
  // The peer sends a split reply's header and head and half of its values,
  // then nothing (a server frozen mid-reply): the reader waits inside the
  // reply. A cancel (deadline, or the server left the map) must still
  // finish the call, and the next call connects again. The half sent is
  // 16 MiB, more than the socket buffers hold, so once the peer's write is
  // done the reader is reading the values.
  Mutex mu;
  CondVar cv;
  bool half_sent = false;
  std::atomic<int> n{0};
  ScriptedPeer peer([&](int fd) {
    const int me = n++;
    Frame hello, f;
    if (!ReadFrame(fd, &hello)) return;
    WriteReply(fd, hello.header.call_id, 0, "");
    if (!ReadFrame(fd, &f)) return;
    rpc::PullResponse reply;
    auto* slice = reply.add_slices();
    const int n = me > 0 ? 1000 : 8 << 20;
    for (int i = 0; i < n; ++i) slice->add_values(static_cast<float>(i));
    if (me > 0) return WriteSplitReply(fd, f.header.call_id, std::move(reply));
    WriteSplitReply(fd, f.header.call_id, std::move(reply), n / 2);
    {
      MutexLock lock(&mu);
      half_sent = true;
      cv.SignalAll();
    }
    // Then silence, until the worker breaks the connection.
    char byte;
    while (read(fd, &byte, 1) > 0) {
    }
  });
  DataConnection conn(peer.address());
  rpc::PullRequest req;
  rpc::PullResponse stuck, resp;
  Outcome cancelled;
  const uint64_t id = conn.Start(frame::Kind::kPull, req, {}, &stuck,
                                 absl::Now() + absl::Seconds(20), cancelled.Callback());
  {
    MutexLock lock(&mu);
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!half_sent && absl::Now() < deadline) cv.WaitWithTimeout(&mu, deadline - absl::Now());
    ASSERT_TRUE(half_sent);
  }
  conn.Cancel(id, grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "too late"));
  EXPECT_EQ(cancelled.Wait().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_TRUE(PullOnce(conn, &resp).ok());
  ASSERT_EQ(resp.slices_size(), 1);
  EXPECT_EQ(resp.slices(0).values(999), 999.0f);
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
  rpc::PullResponse resp;
  const grpc::Status s = PullOnce(conn, &resp);
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
  rpc::PullResponse resp;
  const grpc::Status s = PullOnce(conn, &resp, absl::Seconds(5));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(s.error_message().find(address), std::string::npos) << s.error_message();
}

}  // namespace
}  // namespace ps

// libFuzzer target: the TCP data plane's server-side decoding
// (server/data_plane.cc) without the socket: the first byte picks the
// consistency mode, the rest is a stream of frames (common/data_frame.h),
// each header decoded with a 64 KiB body limit, each push or pull body parsed
// (whole, or split: common/data_frame.h's ReadSplitBody)
// and handed to a ServerCore that is primary of every partition, as
// DataPlaneServer does after PsService's checks. A header that does not
// decode ends the stream, as it closes a connection.
#include <cstring>
#include <deque>
#include <string>

#include "absl/time/clock.h"
#include "common/data_frame.h"
#include "server/server_core.h"
#include "tests/fuzz/server_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  ps::ServerCore core(ps::fuzz::Job(data[0], "/tmp/fuzz-data-frame"), 0);
  core.UpdateView(ps::fuzz::View());
  const char* p = reinterpret_cast<const char*>(data + 1);
  size_t left = size - 1;
  const absl::Time deadline = absl::Now();  // parked calls expire at once
  auto ignore = [](absl::Status) {};
  std::deque<std::pair<ps::rpc::PullRequest, ps::rpc::PullResponse>> pulls;
  ps::frame::Buffer buffer;
  while (left >= ps::frame::kHeaderBytes) {
    auto h = ps::frame::DecodeHeader(p, 64 << 10);
    if (!h.ok()) break;
    p += ps::frame::kHeaderBytes;
    left -= ps::frame::kHeaderBytes;
    if (h->body_len > left) break;  // the connection ended mid-frame
    const std::string body(p, h->body_len);
    p += h->body_len;
    left -= h->body_len;
    // Parses the body into `msg` as DataPlaneServer does: whole, or split.
    auto parse = [&](auto* msg) {
      if ((h->flags & ps::frame::kSplitValues) == 0) return msg->ParseFromString(body);
      size_t at = 0;
      return ps::frame::ReadSplitBody(
                 h->body_len,
                 [&](char* to, size_t n) {
                   if (n == 0) return true;  // `to` may be null
                   if (at + n > body.size()) return false;
                   std::memcpy(to, body.data() + at, n);
                   at += n;
                   return true;
                 },
                 &buffer, msg, msg->mutable_slices())
          .ok();
    };
    if (h->kind == ps::frame::Kind::kPush) {
      ps::rpc::PushRequest req;
      ps::rpc::PushResponse resp;
      if (!parse(&req)) break;
      core.Push(&req, &resp, deadline, ignore);
    } else if (h->kind == ps::frame::Kind::kPull) {
      // A parked pull holds its request and reply until it is answered (as
      // the data plane's connection does): they live to the input's end.
      pulls.emplace_back();
      auto& [req, resp] = pulls.back();
      if (!parse(&req)) break;
      core.Pull(&req, &resp, deadline, ignore);
    }
  }
  core.ExpireParked(absl::InfiniteFuture());
  core.Shutdown();
  return 0;
}

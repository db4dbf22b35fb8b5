// libFuzzer target: the TCP data plane's server-side decoding
// (server/data_plane.cc) without the socket: the first byte picks the
// consistency mode, the rest is a stream of frames (common/data_frame.h),
// each header decoded with a 64 KiB body limit, each push or pull body parsed
// and handed to a ServerCore that is primary of every partition, as
// DataPlaneServer does after PsService's checks. A header that does not
// decode ends the stream, as it closes a connection.
#include <string>

#include "absl/time/clock.h"
#include "common/data_frame.h"
#include "server/server_core.h"

namespace {

ps::config::JobConfig Job(uint8_t mode) {
  ps::config::JobConfig job;
  job.mutable_job()->set_mode(mode % 3 == 0   ? ps::config::BSP
                              : mode % 3 == 1 ? ps::config::SSP
                                              : ps::config::ASP);
  job.mutable_job()->set_output_dir("/tmp/fuzz-data-frame");
  job.mutable_cluster()->set_num_partitions(4);
  job.mutable_model()->set_num_features(64);
  return job;
}

ps::rpc::ClusterView View() {
  ps::rpc::ClusterView view;
  view.set_version(1);
  for (int p = 0; p < 4; ++p) {
    view.add_partition_owner(0);
    auto* pl = view.add_placement();
    pl->set_primary(0);
    pl->set_epoch(1);
  }
  for (int w = 0; w < 2; ++w) view.add_live_workers(w);
  auto* s = view.add_servers();
  s->set_rank(0);
  s->set_address("127.0.0.1:1");
  return view;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  ps::ServerCore core(Job(data[0]), 0);
  core.UpdateView(View());
  const char* p = reinterpret_cast<const char*>(data + 1);
  size_t left = size - 1;
  const absl::Time deadline = absl::Now();  // parked calls expire at once
  auto ignore = [](absl::Status) {};
  while (left >= ps::frame::kHeaderBytes) {
    auto h = ps::frame::DecodeHeader(p, 64 << 10);
    if (!h.ok()) break;
    p += ps::frame::kHeaderBytes;
    left -= ps::frame::kHeaderBytes;
    if (h->body_len > left) break;  // the connection ended mid-frame
    const std::string body(p, h->body_len);
    p += h->body_len;
    left -= h->body_len;
    if (h->kind == ps::frame::Kind::kPush) {
      ps::rpc::PushRequest req;
      ps::rpc::PushResponse resp;
      if (!req.ParseFromString(body)) break;
      core.Push(&req, &resp, deadline, ignore);
    } else if (h->kind == ps::frame::Kind::kPull) {
      ps::rpc::PullRequest req;
      ps::rpc::PullResponse resp;
      if (!req.ParseFromString(body)) break;
      core.Pull(&req, &resp, deadline, ignore);
    }
  }
  core.ExpireParked(absl::InfiniteFuture());
  core.Shutdown();
  return 0;
}

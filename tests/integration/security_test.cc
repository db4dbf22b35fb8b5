// Security against real processes (issue 9): a job started like ps_launch
// starts it, attacked as a process on the same network would: no
// credential, another job's, a worker's credential on admin and replication
// calls, a worker speaking for another rank, a server's pushing, write paths
// outside the job, oversized and malformed requests. Each is refused with
// the right code, audited, and changes nothing on the server (its counters,
// its memory). The test is the job's one worker (with a real worker key).
#include <grpcpp/generic/generic_stub.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/data_frame.h"
#include "common/net.h"
#include "common/partitioning.h"
#include "common/rpc.h"
#include "common/scheduler_client.h"
#include "common/sync.h"
#include "gtest/gtest.h"
#include "proto/ps.grpc.pb.h"
#include "proto/scheduler.grpc.pb.h"
#include "tests/test_util.h"
#include "tools/local_cluster.h"

namespace ps {
namespace {

using ::ps::testing::BinDir;
using ::ps::testing::NewTempDir;
using ::ps::testing::ReadFile;
using ::ps::testing::RunCommand;
using ::ps::testing::SourceDir;
using ::ps::testing::WriteFile;

// Resident memory of process `pid`, in KiB (from /proc).
long RssKiB(int pid) {
  std::istringstream in(ReadFile(absl::StrCat("/proc/", pid, "/status")));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmRSS:")) return std::stol(line.substr(6));
  }
  return -1;
}

int CountLines(const std::string& text, const std::vector<std::string>& needles) {
  int n = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + start, end - start);
    bool all = true;
    for (const std::string& needle : needles)
      all = all && line.find(needle) != std::string_view::npos;
    n += all ? 1 : 0;
    start = end + 1;
  }
  return n;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = NewTempDir("security");
    config_path_ = dir_ + "/job.yaml";
    WriteFile(config_path_, absl::StrCat(R"(job:
  name: security-test
  mode: asp
  output_dir: )",
                                         dir_, R"(/out
cluster:
  num_servers: 2
  num_workers: 1
  num_partitions: 8
  max_chunk_bytes: 65536
model:
  num_features: 100000
optimizer:
  type: sgd
  learning_rate: 1
data:
  train_path: )",
                                         SourceDir(), R"(/data/spambase/train.libsvm
security:
  limits:
    max_message_bytes: 1048576
    max_keys_per_request: 1000
)"));
    auto job = LoadJobConfig(config_path_);
    ASSERT_TRUE(job.ok()) << job.status();
    LocalClusterOptions options;
    options.config_path = config_path_;
    options.bin_dir = BinDir();
    options.log_dir = dir_ + "/out/logs";
    options.start_workers = false;
    options.scheduler_to_log = true;
    ASSERT_TRUE(cluster_.Start(*job, options).ok());
    ASSERT_FALSE(cluster_.auth_dir().empty());
    auto secret = ReadTokenFile(cluster_.auth_dir() + "/job.token");
    ASSERT_TRUE(secret.ok()) << secret.status();
    auto signer = TicketSigner::Create(secret->secret);
    ASSERT_TRUE(signer.ok());
    signer_ = std::move(*signer);
    // This process is the job's worker, with the worker's key like ps_worker.
    auto loaded =
        LoadProcessCredentials(cluster_.auth_dir() + "/worker.token", rpc::PRINCIPAL_WORKER);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    scheduler_ = std::make_unique<SchedulerClient>(cluster_.scheduler_address());
    rpc::RegisterRequest reg;
    reg.set_role(rpc::WORKER);
    reg.set_incarnation(7);
    auto registered = scheduler_->Register(reg, absl::Seconds(30));
    ASSERT_TRUE(registered.ok()) << registered.status();
    ASSERT_FALSE(registered->ticket().empty());
    ASSERT_TRUE(AdoptTicket(registered->ticket(), false).ok());
    node_id_ = registered->node_id();
    auto view = scheduler_->WaitForStart(node_id_, absl::Seconds(30));
    ASSERT_TRUE(view.ok()) << view.status();
    view_ = *view;
  }

  void TearDown() override {
    auto end = scheduler_->Barrier(node_id_, "end", absl::Seconds(30));
    EXPECT_TRUE(end.ok()) << end.status();
    (void)scheduler_->Leave(node_id_);
    std::string error;
    EXPECT_EQ(cluster_.Wait(absl::Now() + absl::Seconds(30), &error), 0) << error;
    SetProcessCredentials(nullptr);
  }

  // Credentials carrying a ticket of `principal` signed with this job's key
  // (`foreign`: another job's).
  std::shared_ptr<CallCredentials> As(rpc::Principal principal, int rank = 0,
                                      bool foreign = false) {
    rpc::TicketClaims claims;
    claims.set_principal(principal);
    claims.set_node_id(principal == rpc::PRINCIPAL_WORKER ? node_id_ : 0);
    claims.set_rank(rank);
    auto creds = std::make_shared<CallCredentials>();
    if (foreign) {
      auto other = TicketSigner::Create(std::string(32, 'x'));
      creds->SetTicket((*other)->Sign(claims));
    } else {
      creds->SetTicket(signer_->Sign(claims));
    }
    return creds;
  }
  std::unique_ptr<rpc::ParameterServer::Stub> Server(int rank,
                                                     std::shared_ptr<CallCredentials> creds) {
    return rpc::ParameterServer::NewStub(
        MakeChannel(view_.servers(rank).address(), std::move(creds)));
  }
  std::unique_ptr<rpc::Scheduler::Stub> Scheduler(std::shared_ptr<CallCredentials> creds) {
    return rpc::Scheduler::NewStub(MakeChannel(cluster_.scheduler_address(), std::move(creds)));
  }

  rpc::StatsResponse Stats(int rank) {
    rpc::StatsResponse stats;
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
    EXPECT_TRUE(
        Server(rank, As(rpc::PRINCIPAL_ADMIN))->Stats(&ctx, rpc::StatsRequest(), &stats).ok());
    return stats;
  }

  // A push of `keys` keys that server 0 is primary of.
  rpc::PushRequest PushOf(int worker, int keys, float grad) {
    rpc::PushRequest req;
    req.set_worker(worker);
    req.set_incarnation(7);
    req.set_seq(++seq_);
    req.set_num_examples(1);
    auto* slice = req.add_slices();
    slice->set_table(0);
    for (uint64_t key = 0; slice->keys_size() < keys; ++key) {
      if (view_.partition_owner(PartitionOf(0, key, 8)) != 0) continue;
      slice->add_keys(key);
      slice->add_values(grad);
    }
    return req;
  }

  grpc::Status Push(rpc::ParameterServer::Stub* stub, const rpc::PushRequest& req) {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
    rpc::PushResponse resp;
    return stub->Push(&ctx, req, &resp);
  }

  std::string Audit() { return ReadFile(dir_ + "/out/audit.log"); }

  std::string dir_, config_path_;
  LocalCluster cluster_;
  std::unique_ptr<TicketSigner> signer_;
  std::unique_ptr<SchedulerClient> scheduler_;
  uint32_t node_id_ = 0;
  uint64_t seq_ = 0;
  rpc::ClusterView view_;
};

TEST_F(SecurityTest, CallsWithoutAValidCredentialAreRefusedAuditedAndChangeNothing) {
  const rpc::StatsResponse before = Stats(0);
  for (auto creds :
       {std::shared_ptr<CallCredentials>(), As(rpc::PRINCIPAL_WORKER, 0, /*foreign=*/true)}) {
    auto server = Server(0, creds);
    EXPECT_EQ(Push(server.get(), PushOf(0, 3, 1e6f)).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    {
      grpc::ClientContext ctx;
      rpc::SaveModelRequest req;
      req.set_dir(dir_ + "/stolen");
      rpc::SaveModelResponse resp;
      EXPECT_EQ(server->SaveModel(&ctx, req, &resp).error_code(),
                grpc::StatusCode::UNAUTHENTICATED);
    }
    {
      grpc::ClientContext ctx;
      rpc::StatsResponse resp;
      EXPECT_EQ(server->Stats(&ctx, rpc::StatsRequest(), &resp).error_code(),
                grpc::StatusCode::UNAUTHENTICATED);
    }
    auto scheduler = Scheduler(creds);
    {
      grpc::ClientContext ctx;
      rpc::JobStatus resp;
      EXPECT_EQ(scheduler->Status(&ctx, rpc::StatusRequest(), &resp).error_code(),
                grpc::StatusCode::UNAUTHENTICATED);
    }
    {
      grpc::ClientContext ctx;
      rpc::DrainRequest req;
      rpc::DrainResponse resp;
      EXPECT_EQ(scheduler->Drain(&ctx, req, &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    }
    {
      grpc::ClientContext ctx;
      rpc::RegisterRequest req;
      req.set_role(rpc::SERVER);
      req.set_address("127.0.0.1:1");
      rpc::RegisterResponse resp;
      EXPECT_EQ(scheduler->Register(&ctx, req, &resp).error_code(),
                grpc::StatusCode::UNAUTHENTICATED);
    }
  }
  // A bearer key that is not this job's.
  {
    auto creds = std::make_shared<CallCredentials>();
    creds->SetRoleKey(std::string(32, 'k'));
    grpc::ClientContext ctx;
    rpc::RegisterRequest req;
    req.set_role(rpc::WORKER);
    rpc::RegisterResponse resp;
    const grpc::Status s = Scheduler(creds)->Register(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_TRUE(absl::StrContains(s.error_message(), "not this job's")) << s.error_message();
  }
  const rpc::StatsResponse after = Stats(0);
  EXPECT_EQ(after.pushes_applied(), before.pushes_applied());
  EXPECT_EQ(after.keys_stored(), before.keys_stored());
  EXPECT_NE(access((dir_ + "/stolen").c_str(), F_OK), 0)
      << "SaveModel wrote for an anonymous caller";
  const std::string audit = Audit();
  EXPECT_EQ(CountLines(audit, {"\"event\":\"refused\"", "\"method\":\"Push\"", "UNAUTHENTICATED"}),
            2)
      << audit;
  EXPECT_EQ(
      CountLines(audit, {"\"event\":\"refused\"", "\"method\":\"Register\"", "UNAUTHENTICATED"}), 3)
      << audit;
  EXPECT_GE(CountLines(audit, {"\"event\":\"refused\"", "\"peer\":\"ipv4:127.0.0.1:"}), 13)
      << audit;
  // ... and counted in /metrics.
  // The log of the process that is rank 0 (ranks go by registration order).
  std::string log;
  for (const char* name : {"server-0", "server-1"}) {
    const std::string text = ReadFile(dir_ + "/out/logs/" + name + ".log");
    if (absl::StrContains(text, "listening on " + view_.servers(0).address() + " ")) log = text;
  }
  const size_t at = log.find("metrics on ");
  ASSERT_NE(at, std::string::npos) << log;
  const std::string address = log.substr(at + 11, log.find_first_of("\n ", at + 11) - at - 11);
  auto scrape =
      RunCommand({"/usr/bin/curl", "-s", "http://" + address + "/metrics"}, absl::Seconds(30));
  EXPECT_EQ(CountLines(scrape.output, {"ps_requests_refused_total{", "method=\"Push\"",
                                       "code=\"UNAUTHENTICATED\"", "service=\"server\"", "} 2"}),
            1)
      << scrape.output.substr(scrape.output.find("ps_requests_refused_total"), 2000);
}

TEST_F(SecurityTest, EachRoleMayCallOnlyItsMethodsAndOnlyForItsOwnRank) {
  const rpc::StatsResponse before = Stats(0);
  auto as_worker = Server(0, ProcessCredentials());  // our real ticket: worker rank 0
  // A worker may not replicate, save or checkpoint, nor speak for rank 1.
  {
    grpc::ClientContext ctx;
    rpc::ReplicateRequest req;
    rpc::ReplicateResponse resp;
    EXPECT_EQ(as_worker->Replicate(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    rpc::SaveModelRequest req;
    req.set_dir(dir_ + "/out/model");
    rpc::SaveModelResponse resp;
    EXPECT_EQ(as_worker->SaveModel(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    rpc::CheckpointRequest req;
    req.set_dir(dir_ + "/out/checkpoints/epoch-1");
    rpc::CheckpointResponse resp;
    EXPECT_EQ(as_worker->Checkpoint(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  const grpc::Status other_rank = Push(as_worker.get(), PushOf(1, 3, 1e6f));
  EXPECT_EQ(other_rank.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(absl::StrContains(other_rank.error_message(), "may not speak for worker rank 1"))
      << other_rank.error_message();
  {
    grpc::ClientContext ctx;
    rpc::TickRequest req;
    req.set_worker(1);
    req.set_clock(1000);
    rpc::TickResponse resp;
    EXPECT_EQ(as_worker->Tick(&ctx, req, &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  // ... nor drain a server or ask for a checkpoint, nor speak for another node.
  auto scheduler_as_worker = Scheduler(ProcessCredentials());
  {
    grpc::ClientContext ctx;
    rpc::DrainRequest req;
    rpc::DrainResponse resp;
    EXPECT_EQ(scheduler_as_worker->Drain(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    rpc::TakeCheckpointRequest req;
    req.set_request(true);
    rpc::TakeCheckpointResponse resp;
    EXPECT_EQ(scheduler_as_worker->TakeCheckpoint(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    rpc::FailRequest req;
    req.set_node_id(node_id_ + 1);  // a server's node
    req.set_message("forged");
    rpc::FailResponse resp;
    EXPECT_EQ(scheduler_as_worker->Fail(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  // A server's credential may not push as a worker; a server's key may not
  // register a worker.
  EXPECT_EQ(Push(Server(0, As(rpc::PRINCIPAL_SERVER)).get(), PushOf(0, 3, 1e6f)).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // A server replicates only as itself: server 0's ticket may not claim
  // to be server 1 (a forged snapshot would replace a partition).
  {
    grpc::ClientContext ctx;
    rpc::ReplicateRequest req;
    req.set_from_rank(1);
    rpc::PartitionState* install = req.add_installs();
    install->set_partition(0);
    install->set_epoch(1u << 30);
    rpc::ReplicateResponse resp;
    const grpc::Status forged =
        Server(0, As(rpc::PRINCIPAL_SERVER, 0))->Replicate(&ctx, req, &resp);
    EXPECT_EQ(forged.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_TRUE(absl::StrContains(forged.error_message(), "may not speak for server rank 1"))
        << forged.error_message();
  }
  {
    auto secret = ReadTokenFile(cluster_.auth_dir() + "/server.token");
    ASSERT_TRUE(secret.ok());
    auto creds = std::make_shared<CallCredentials>();
    creds->SetRoleKey(secret->secret);
    grpc::ClientContext ctx;
    rpc::RegisterRequest req;
    req.set_role(rpc::WORKER);
    rpc::RegisterResponse resp;
    EXPECT_EQ(Scheduler(creds)->Register(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  // Even the scheduler's credential writes only to the job's directories.
  auto as_scheduler = Server(0, As(rpc::PRINCIPAL_SCHEDULER));
  for (const std::string& dir : {dir_ + "/elsewhere", dir_ + "/out/model/../../elsewhere",
                                 dir_ + "/out/logs", std::string("relative/model")}) {
    grpc::ClientContext ctx;
    rpc::SaveModelRequest req;
    req.set_dir(dir);
    rpc::SaveModelResponse resp;
    EXPECT_EQ(as_scheduler->SaveModel(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED)
        << dir;
  }
  ASSERT_EQ(symlink(dir_.c_str(), (dir_ + "/out/checkpoints").c_str()), 0);
  {
    grpc::ClientContext ctx;
    rpc::CheckpointRequest req;
    req.set_dir(dir_ + "/out/checkpoints/epoch-1");  // through a symlink out of the root
    rpc::CheckpointResponse resp;
    EXPECT_EQ(as_scheduler->Checkpoint(&ctx, req, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  EXPECT_NE(access((dir_ + "/elsewhere").c_str(), F_OK), 0);
  EXPECT_NE(access((dir_ + "/epoch-1").c_str(), F_OK), 0);
  // What it may do.
  {
    grpc::ClientContext ctx;
    rpc::SaveModelRequest req;
    req.set_dir(dir_ + "/out/model");
    rpc::SaveModelResponse resp;
    EXPECT_TRUE(as_scheduler->SaveModel(&ctx, req, &resp).ok());
    struct stat st;
    ASSERT_EQ(stat((dir_ + "/out/model").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
  }
  const rpc::StatsResponse after = Stats(0);
  EXPECT_EQ(after.pushes_applied(), before.pushes_applied());
  EXPECT_EQ(after.keys_stored(), before.keys_stored());
  const std::string audit = Audit();
  EXPECT_GE(
      CountLines(audit, {"\"event\":\"refused\"", "PERMISSION_DENIED", "\"principal\":\"worker\""}),
      8)
      << audit;
  EXPECT_EQ(
      CountLines(audit, {"\"method\":\"Push\"", "PERMISSION_DENIED", "\"principal\":\"server\""}),
      1)
      << audit;
  EXPECT_EQ(CountLines(audit, {"\"method\":\"SaveModel\"", "PERMISSION_DENIED",
                               "\"principal\":\"scheduler\""}),
            4)
      << audit;
  // A legitimate push by this worker is applied.
  EXPECT_TRUE(Push(as_worker.get(), PushOf(0, 1, 0.5f)).ok());
  EXPECT_EQ(Stats(0).pushes_applied(), before.pushes_applied() + 1);
}

TEST_F(SecurityTest, OversizedAndMalformedRequestsAreRefusedWithoutGrowingTheServer) {
  auto as_worker = Server(0, ProcessCredentials());
  // The process that is rank 0 (ranks go by registration order).
  int pid = 0;
  for (const char* name : {"server-0", "server-1"}) {
    for (int port : testing::ListeningPorts(cluster_.Pid(name))) {
      if (absl::EndsWith(view_.servers(0).address(), absl::StrCat(":", port))) pid = cluster_.Pid(name);
    }
  }
  ASSERT_GT(pid, 0);
  const long rss_before = RssKiB(pid);
  // More keys than security.limits.max_keys_per_request (1000).
  const grpc::Status many = Push(as_worker.get(), PushOf(0, 1001, 1.0f));
  EXPECT_EQ(many.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(many.error_message(), "max_keys_per_request"))
      << many.error_message();
  {
    rpc::PullRequest req;
    req.set_worker(0);
    auto* slice = req.add_slices();
    for (int k = 0; k < 1001; ++k) slice->add_keys(k);
    grpc::ClientContext ctx;
    rpc::PullResponse resp;
    EXPECT_EQ(as_worker->Pull(&ctx, req, &resp).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  // Values that disagree with the keys.
  {
    rpc::PushRequest req = PushOf(0, 10, 1.0f);
    req.mutable_slices(0)->mutable_values()->Truncate(7);
    EXPECT_EQ(Push(as_worker.get(), req).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  // Larger than security.limits.max_message_bytes (1 MiB): the transport refuses it.
  {
    rpc::PushRequest req = PushOf(0, 1, 1.0f);
    req.mutable_slices(0)->mutable_values()->Resize(300000, 1.0f);
    EXPECT_EQ(Push(as_worker.get(), req).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  // A small message whose packed keys field claims 10^9 keys (8 GB), and
  // truncated ones: bytes on the wire, past the generated stubs.
  grpc::GenericStub generic(MakeChannel(view_.servers(0).address(), ProcessCredentials()));
  auto raw_call = [&](const std::string& bytes) {
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1), response;
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
    Mutex mu;
    CondVar cv;
    bool done = false;
    grpc::Status status;
    generic.UnaryCall(&ctx, "/ps.rpc.ParameterServer/Push", grpc::StubOptions(), &request,
                      &response, [&](grpc::Status s) {
                        MutexLock lock(&mu);
                        status = s;
                        done = true;
                        cv.Signal();
                      });
    MutexLock lock(&mu);
    while (!done) cv.Wait(&mu);
    return status;
  };
  // PushRequest{worker: 0, slices: [TableSlice{table 0, keys: <packed, 8e9 bytes claimed>}]}
  std::string claim;
  claim += '\x12';                   // TableSlice.keys, length-delimited
  claim += "\x80\xa0\xb7\x87\x1d";   // varint 8,000,000,000
  claim += std::string(64, '\x01');  // ... of which 64 bytes follow
  std::string slice_msg = "\x08";    // TableSlice.table = 0
  slice_msg += '\0';
  slice_msg += claim;
  std::string push = "\x08";  // PushRequest.worker = 0
  push += '\0';
  push += '\x4a';  // PushRequest.slices (field 9), length-delimited
  push += static_cast<char>(slice_msg.size());
  push += slice_msg;
  for (int i = 0; i < 200; ++i) {
    EXPECT_FALSE(raw_call(push).ok());
    EXPECT_FALSE(raw_call(push.substr(0, 7 + i % 60)).ok()) << i;
  }
  const long rss_after = RssKiB(pid);
  EXPECT_LT(rss_after - rss_before, 32 * 1024)
      << "RSS grew from " << rss_before << " to " << rss_after << " KiB";
  // Still serving, nothing applied.
  EXPECT_EQ(Stats(0).pushes_applied(), 0u);
  EXPECT_TRUE(Push(as_worker.get(), PushOf(0, 1, 0.5f)).ok());
  const std::string audit = Audit();
  EXPECT_GE(
      CountLines(audit, {"\"event\":\"refused\"", "RESOURCE_EXHAUSTED", "max_keys_per_request"}), 2)
      << audit;
}

// The TCP data plane (common/data_frame.h) checks its callers like the gRPC
// methods: a hello with a worker's ticket first, then each push and pull
// for that worker's rank only, within the limits; a malformed frame closes
// its connection and the server goes on serving.
struct FrameReply {
  int code = -1;  // -1: the connection closed without a reply
  std::string body;
};

std::string Frame(frame::Kind kind, uint64_t id, const std::string& body) {
  std::string out(frame::kHeaderBytes, '\0');
  frame::Header h;
  h.kind = kind;
  h.body_len = static_cast<uint32_t>(body.size());
  h.call_id = id;
  frame::EncodeHeader(h, out.data());
  return out + body;
}

// A split frame (common/data_frame.h): `msg`'s values after its head.
std::string SplitFrame(frame::Kind kind, uint64_t id, google::protobuf::Message* msg) {
  std::vector<google::protobuf::RepeatedField<float>> kept;
  frame::ValueSpans tail;
  if (auto* push = dynamic_cast<rpc::PushRequest*>(msg)) {
    frame::SplitValues(push->mutable_slices(), &kept, &tail);
  }
  frame::Header h;
  h.kind = kind;
  h.call_id = id;
  std::string out;
  EXPECT_TRUE(frame::SerializeSplitHead(*msg, tail, &h, &out));
  frame::EncodeHeader(h, out.data());
  for (const auto& span : tail) {
    out.append(reinterpret_cast<const char*>(span.data()), span.size() * sizeof(float));
  }
  return out;
}

// Sends `bytes` on a new connection to `address`, then reads up to `replies`
// replies (fewer if the server closes the connection).
std::vector<FrameReply> Exchange(const std::string& address, const std::string& bytes,
                                 int replies) {
  auto fd = ConnectTcp(address, absl::Seconds(10));
  EXPECT_TRUE(fd.ok()) << fd.status();
  if (!fd.ok()) return {};
  const timeval timeout{20, 0};  // a missing reply fails the test instead of hanging it
  setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::vector<FrameReply> out;
  if (frame::WriteFull(*fd, bytes.data(), bytes.size())) {
    char head[frame::kHeaderBytes];
    while (static_cast<int>(out.size()) < replies && frame::ReadFull(*fd, head, sizeof(head))) {
      auto h = frame::DecodeHeader(head, 1 << 20);
      if (!h.ok()) break;
      FrameReply r;
      r.code = h->status;
      r.body.resize(h->body_len);
      if (!frame::ReadFull(*fd, r.body.data(), r.body.size())) break;
      out.push_back(std::move(r));
    }
  }
  close(*fd);
  return out;
}

TEST_F(SecurityTest, TheTcpDataPlaneChecksCallersAndRequestsLikeGrpc) {
  const std::string address = view_.servers(0).data_address();
  ASSERT_FALSE(address.empty()) << "cluster.data_plane is tcp by default";
  const rpc::StatsResponse before = Stats(0);
  const std::string ticket = ProcessCredentials()->ticket();  // worker rank 0's
  auto ticket_of = [&](rpc::Principal principal, int rank, bool foreign) {
    rpc::TicketClaims claims;
    claims.set_principal(principal);
    claims.set_node_id(node_id_);
    claims.set_rank(rank);
    if (!foreign) return signer_->Sign(claims);
    return (*TicketSigner::Create(std::string(32, 'x')))->Sign(claims);
  };
  auto push_body = [&](int worker, int keys) {
    return PushOf(worker, keys, 1e6f).SerializeAsString();
  };
  const int kUnauthenticated = static_cast<int>(grpc::StatusCode::UNAUTHENTICATED);
  const int kDenied = static_cast<int>(grpc::StatusCode::PERMISSION_DENIED);
  // No hello: refused, connection closed.
  auto r = Exchange(address, Frame(frame::Kind::kPush, 1, push_body(0, 1)), 2);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].code, kUnauthenticated) << r[0].body;
  // Another job's ticket, a server's, an empty one.
  for (const auto& [hello, code] : std::vector<std::pair<std::string, int>>{
           {ticket_of(rpc::PRINCIPAL_WORKER, 0, true), kUnauthenticated},
           {ticket_of(rpc::PRINCIPAL_SERVER, 0, false), kDenied},
           {"", kUnauthenticated}}) {
    r = Exchange(
        address,
        Frame(frame::Kind::kHello, 0, hello) + Frame(frame::Kind::kPush, 1, push_body(0, 1)), 2);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].code, code) << r[0].body;
  }
  // Before a hello is accepted, no frame may be longer than a ticket can be:
  // an anonymous peer cannot make the server allocate a request's worth.
  // (The header alone: the server answers it without reading a body.)
  r = Exchange(
      address,
      Frame(frame::Kind::kHello, 0, std::string(100000, 'x')).substr(0, frame::kHeaderBytes), 2);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].code, static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED)) << r[0].body;
  // Our ticket, speaking for rank 1: refused; the connection stays usable.
  r = Exchange(address,
               Frame(frame::Kind::kHello, 0, ticket) +
                   Frame(frame::Kind::kPush, 1, push_body(1, 1)) +
                   Frame(frame::Kind::kPush, 2, push_body(0, 1001)),
               3);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].code, 0) << r[0].body;
  EXPECT_EQ(r[1].code, kDenied) << r[1].body;
  EXPECT_TRUE(absl::StrContains(r[1].body, "may not speak for worker rank 1")) << r[1].body;
  EXPECT_EQ(r[2].code, static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED)) << r[2].body;
  EXPECT_TRUE(absl::StrContains(r[2].body, "max_keys_per_request")) << r[2].body;
  // Malformed: a body that does not parse, a wrong magic, a body of 10^9
  // bytes claimed: each answered with an error and the connection closed.
  std::string bad_magic = Frame(frame::Kind::kPush, 3, "");
  bad_magic[0] ^= 0x55;
  std::string huge = Frame(frame::Kind::kPush, 4, "");
  huge[8] = 0x00, huge[9] = static_cast<char>(0xca), huge[10] = static_cast<char>(0x9a),
  huge[11] = 0x3b;  // 1,000,000,000 little-endian
  for (const std::string& bad :
       {Frame(frame::Kind::kPush, 3, std::string(64, '\xff')), bad_magic, huge}) {
    r = Exchange(address, Frame(frame::Kind::kHello, 0, ticket) + bad, 3);
    ASSERT_EQ(r.size(), 2u);
    EXPECT_NE(r[1].code, 0) << r[1].body;
  }
  // Split bodies that do not add up: more values announced than sent, fewer,
  // a head longer than the body. Each refused, naming what is wrong.
  auto split_by_hand = [](int announced, uint32_t head_len_delta) {
    rpc::PushRequest head;
    head.set_worker(0);
    head.set_num_examples(1);
    auto* slice = head.add_slices();
    slice->add_keys(0);
    slice->set_raw_values(static_cast<uint32_t>(announced));
    const std::string bytes = head.SerializeAsString();
    const float value = 2.0f;  // one value follows
    std::string body(4, '\0');
    const uint32_t head_len = static_cast<uint32_t>(bytes.size()) + head_len_delta;
    std::memcpy(body.data(), &head_len, 4);
    body += bytes + std::string(reinterpret_cast<const char*>(&value), sizeof(value));
    std::string out = Frame(frame::Kind::kPush, 5, body);
    out[5] = static_cast<char>(frame::kSplitValues);
    return out;
  };
  for (const auto& [bad, what] : std::vector<std::pair<std::string, std::string>>{
           {split_by_hand(2, 0), "announces 8 bytes of values; the body carries 4"},
           {split_by_hand(0, 0), "announces 0 bytes of values; the body carries 4"},
           {split_by_hand(1, 1000), "is longer than the body"}}) {
    r = Exchange(address, Frame(frame::Kind::kHello, 0, ticket) + bad, 3);
    ASSERT_EQ(r.size(), 2u) << what;
    EXPECT_EQ(r[1].code, static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT)) << r[1].body;
    EXPECT_TRUE(absl::StrContains(r[1].body, what)) << r[1].body;
  }
  // Nothing was applied; a legitimate push is, and a pull reads it back.
  EXPECT_EQ(Stats(0).pushes_applied(), before.pushes_applied());
  rpc::PushRequest good = PushOf(0, 1, 0.5f);
  rpc::PullRequest pull;
  pull.set_worker(0);
  *pull.add_slices() = good.slices(0);
  pull.mutable_slices(0)->clear_values();
  r = Exchange(address,
               Frame(frame::Kind::kHello, 0, ticket) +
                   Frame(frame::Kind::kPush, 1, good.SerializeAsString()) +
                   Frame(frame::Kind::kPull, 2, pull.SerializeAsString()),
               3);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[1].code, 0) << r[1].body;
  EXPECT_EQ(r[2].code, 0) << r[2].body;
  rpc::PullResponse pulled;
  ASSERT_TRUE(pulled.ParseFromString(r[2].body));
  ASSERT_EQ(pulled.slices_size(), 1);
  ASSERT_EQ(pulled.slices(0).values_size(), 1);
  EXPECT_EQ(Stats(0).pushes_applied(), before.pushes_applied() + 1);
  // The same as split frames (as workers send them): the pull's reply comes
  // split too, its value one more push's worth lower.
  rpc::PushRequest split_push = PushOf(0, 1, 0.5f);
  r = Exchange(address,
               Frame(frame::Kind::kHello, 0, ticket) +
                   SplitFrame(frame::Kind::kPush, 1, &split_push) +
                   SplitFrame(frame::Kind::kPull, 2, &pull),
               3);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[1].code, 0) << r[1].body;
  EXPECT_EQ(r[2].code, 0) << r[2].body;
  rpc::PullResponse split_pulled;
  frame::Buffer buffer;
  size_t at = 0;
  ASSERT_TRUE(frame::ReadSplitBody(
                  static_cast<uint32_t>(r[2].body.size()),
                  [&](char* data, size_t size) {
                    if (size == 0) return true;  // `data` may be null
                    if (at + size > r[2].body.size()) return false;
                    std::memcpy(data, r[2].body.data() + at, size);
                    at += size;
                    return true;
                  },
                  &buffer, &split_pulled, split_pulled.mutable_slices())
                  .ok());
  ASSERT_EQ(split_pulled.slices_size(), 1);
  ASSERT_EQ(split_pulled.slices(0).values_size(), 1);
  EXPECT_LT(split_pulled.slices(0).values(0), pulled.slices(0).values(0));
  EXPECT_EQ(Stats(0).pushes_applied(), before.pushes_applied() + 2);
  const std::string audit = Audit();
  EXPECT_GE(CountLines(audit, {"\"method\":\"DataHello\"", "\"event\":\"refused\""}), 3) << audit;
  EXPECT_GE(CountLines(audit, {"\"method\":\"Push\"", "tcp:", "may not speak for worker rank 1"}),
            1)
      << audit;
}

// The processes' own checks of their credentials, as a user meets them.
TEST(SecurityCli, TokenFilesAreCheckedAndASecureJobNeedsOne) {
  const std::string dir = NewTempDir("security-cli");
  auto keygen = RunCommand({BinDir() + "/psctl", "keygen", dir + "/keys"}, absl::Seconds(30));
  ASSERT_EQ(keygen.exit_code, 0) << keygen.output;
  struct stat st;
  ASSERT_EQ(stat((dir + "/keys/worker.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((dir + "/keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // Readable by others: refused, naming the mode and the fix.
  ASSERT_EQ(chmod((dir + "/keys/worker.token").c_str(), 0644), 0);
  auto open = RunCommand({BinDir() + "/ps_worker", "--scheduler=127.0.0.1:1",
                          "--token_file=" + dir + "/keys/worker.token"},
                         absl::Seconds(30));
  EXPECT_EQ(open.exit_code, 1) << open.output;
  EXPECT_TRUE(absl::StrContains(open.output, "has mode 0644")) << open.output;
  EXPECT_TRUE(absl::StrContains(open.output, "chmod 600")) << open.output;
  // A huge token file: refused by size, its contents not echoed.
  {
    std::ofstream big(dir + "/big.token");
    big << "ps-worker-key " << std::string(50 << 20, 'A');
  }
  chmod((dir + "/big.token").c_str(), 0600);
  auto big = RunCommand(
      {BinDir() + "/ps_server", "--scheduler=127.0.0.1:1", "--token_file=" + dir + "/big.token"},
      absl::Seconds(30));
  EXPECT_EQ(big.exit_code, 1) << big.output.substr(0, 500);
  EXPECT_TRUE(absl::StrContains(big.output, "at most 4096")) << big.output.substr(0, 500);
  EXPECT_LT(big.output.size(), 2000u);
  // A member's key where the scheduler needs the job secret; none at all.
  const std::string job = SourceDir() + "/examples/spambase_lr.yaml";
  auto wrong = RunCommand(
      {BinDir() + "/ps_scheduler", "--config=" + job, "--set=job.output_dir=" + dir + "/o1",
       "--token_file=" + dir + "/keys/server.token"},
      absl::Seconds(30));
  EXPECT_EQ(wrong.exit_code, 1) << wrong.output;
  EXPECT_TRUE(absl::StrContains(wrong.output, "needs the job secret")) << wrong.output;
  auto none = RunCommand({"/usr/bin/env", "-u", "PS_TOKEN_FILE", BinDir() + "/ps_scheduler",
                          "--config=" + job, "--set=job.output_dir=" + dir + "/o2"},
                         absl::Seconds(30));
  EXPECT_EQ(none.exit_code, 1) << none.output;
  EXPECT_TRUE(absl::StrContains(none.output, "no credential")) << none.output;
  EXPECT_TRUE(absl::StrContains(none.output, "security.insecure")) << none.output;
  // An empty output folder would write the job into '/'.
  auto root = RunCommand({BinDir() + "/ps_launch", "--config=" + job, "--set=job.output_dir="},
                         absl::Seconds(30));
  EXPECT_NE(root.exit_code, 0) << root.output;
  EXPECT_TRUE(absl::StrContains(root.output, "job.output_dir: must not be empty")) << root.output;
}

TEST(SecurityCli, AnInsecureJobStillRunsAndSaysSo) {
  const std::string dir = NewTempDir("security-insecure");
  auto run =
      RunCommand({BinDir() + "/ps_launch", "--config=" + SourceDir() + "/examples/spambase_lr.yaml",
                  "--set=job.output_dir=" + dir + "/out", "--set=train.epochs=2",
                  "--set=security.insecure=true"},
                 absl::Seconds(120));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "security.insecure is set")) << run.output;
  EXPECT_NE(access((dir + "/out/auth").c_str(), F_OK), 0) << "no token files for an insecure job";
}

}  // namespace
}  // namespace ps

namespace ps {
namespace {

// DP-SGD on spambase: the privacy spent is in metrics.json after every
// epoch, grows with the epochs, shrinks with more noise, and the model still
// learns.
TEST(Privacy, DpSgdReportsEpsilonPerEpochAndStillLearns) {
  double last_eps[2] = {0, 0};
  int i = 0;
  for (const char* sigma : {"1.0", "2.0"}) {
    const std::string out = NewTempDir("dp");
    auto run = testing::Launch(
        "examples/spambase_lr.yaml", out,
        {"train.epochs=4", "privacy.dp_sgd=true", std::string("privacy.noise_multiplier=") + sigma},
        {}, absl::Seconds(120));
    ASSERT_EQ(run.exit_code, 0) << run.output;
    const std::string metrics = ReadFile(out + "/metrics.json");
    double previous = 0;
    for (int epoch = 1; epoch <= 4; ++epoch) {
      const double eps =
          testing::JsonNumber(metrics, absl::StrCat("{\"epoch\": ", epoch, ","), "epsilon");
      EXPECT_GT(eps, previous) << "epoch " << epoch << "\n" << metrics;
      previous = eps;
    }
    last_eps[i++] = previous;
    EXPECT_NEAR(testing::JsonNumber(metrics, "\"privacy\"", "epsilon"), previous, 1e-3);
    EXPECT_GT(testing::JsonNumber(metrics, "\"test\"", "accuracy"), 0.85) << metrics;
    EXPECT_TRUE(absl::StrContains(ReadFile(out + "/report.html"), "DP-SGD: epsilon"));
  }
  EXPECT_LT(last_eps[1], last_eps[0]);
}

TEST(Privacy, DpSgdRefusesStatisticsOfTheRawData) {
  const std::string out = NewTempDir("dp-stats");
  auto run = testing::Launch("examples/spambase_standardized.yaml", out, {"privacy.dp_sgd=true"},
                             {}, absl::Seconds(60));
  EXPECT_NE(run.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(run.output, "privacy.dp_sgd: data.scaling")) << run.output;
}

}  // namespace
}  // namespace ps

namespace ps {
namespace {

std::string MakeCerts(const std::string& dir) {
  auto made = RunCommand({SourceDir() + "/deploy/make_certs.sh", dir}, absl::Seconds(60));
  EXPECT_EQ(made.exit_code, 0) << made.output;
  return dir;
}

std::vector<std::string> TlsSets(const std::string& certs, bool mutual) {
  std::vector<std::string> sets = {"security.tls.ca=" + certs + "/ca.pem",
                                   "security.tls.cert=" + certs + "/{role}.pem",
                                   "security.tls.key=" + certs + "/{role}.key"};
  if (mutual) sets.push_back("security.tls.mutual=true");
  return sets;
}

// The warnings and errors in a job's logs (for a failure's message).
std::string Complaints(const std::string& out) {
  std::string found;
  for (const auto& entry : std::filesystem::directory_iterator(out + "/logs")) {
    std::istringstream in(ReadFile(entry.path().string()));
    for (std::string line; std::getline(in, line);) {
      if (absl::StrContains(line, " warn") || absl::StrContains(line, " error")) {
        absl::StrAppend(&found, entry.path().filename().string(), ": ", line, "\n");
      }
    }
  }
  return found;
}

// A job over mutual TLS ends with the model of the same job in plaintext.
TEST(Tls, AMutualTlsClusterTrainsTheSameModelAsAPlaintextOne) {
  const std::string dir = NewTempDir("tls-model");
  const std::string certs = MakeCerts(dir + "/certs");
  // A worker taken for dead under a sanitizer's load would change the model
  // (the job goes on without it); that is not what this test is about.
  const std::vector<std::string> base = {
      "train.epochs=3",
      absl::StrCat("cluster.heartbeat_timeout_ms=", 5000 * testing::SlowFactor())};
  auto plain =
      testing::Launch("examples/spambase_lr.yaml", dir + "/plain", base, {}, absl::Seconds(120));
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  std::vector<std::string> sets = base;
  for (const std::string& s : TlsSets(certs, /*mutual=*/true)) sets.push_back(s);
  auto tls =
      testing::Launch("examples/spambase_lr.yaml", dir + "/tls", sets, {}, absl::Seconds(120));
  ASSERT_EQ(tls.exit_code, 0) << tls.output;
  auto a = RunCommand({BinDir() + "/ps_model", "dump", dir + "/plain/model"}, absl::Seconds(30));
  auto b = RunCommand({BinDir() + "/ps_model", "dump", dir + "/tls/model"}, absl::Seconds(30));
  ASSERT_EQ(a.exit_code, 0) << a.output;
  EXPECT_GT(a.output.size(), 100u);
  EXPECT_EQ(a.output, b.output) << "plaintext job:\n"
                                << plain.output << Complaints(dir + "/plain") << "\nTLS job:\n"
                                << tls.output << Complaints(dir + "/tls");
}

// Against a TLS job: a plaintext client cannot even connect; a client
// certificate of another role than its ticket's is refused (mutual TLS).
TEST(Tls, PlaintextClientsAndMismatchedCertificatesAreRefused) {
  const std::string dir = NewTempDir("tls-refused");
  const std::string certs = MakeCerts(dir + "/certs");
  const std::string config = dir + "/job.yaml";
  std::string yaml = ReadFile(SourceDir() + "/examples/spambase_lr.yaml");
  WriteFile(config,
            absl::StrCat(yaml, "\nsecurity:\n  tls:\n    ca: ", certs, "/ca.pem\n    cert: ", certs,
                         "/{role}.pem\n    key: ", certs, "/{role}.key\n    mutual: true\n"));
  auto job =
      LoadJobConfig(config, {"job.output_dir=" + dir + "/out", "train.epochs=1",
                             "data.train_path=" + SourceDir() + "/data/spambase/train.std.libsvm",
                             "data.test_path=" + SourceDir() + "/data/spambase/test.std.libsvm"});
  ASSERT_TRUE(job.ok()) << job.status();
  LocalClusterOptions options;
  options.config_path = config;
  options.overrides = {"job.output_dir=" + dir + "/out", "train.epochs=1",
                       "data.train_path=" + SourceDir() + "/data/spambase/train.std.libsvm",
                       "data.test_path=" + SourceDir() + "/data/spambase/test.std.libsvm"};
  options.bin_dir = BinDir();
  options.log_dir = dir + "/out/logs";
  options.start_workers = false;  // the job waits for them: time to knock
  options.scheduler_to_log = true;
  LocalCluster cluster;
  ASSERT_TRUE(cluster.Start(*job, options).ok());
  const std::string token = "--token_file=" + cluster.auth_dir() + "/job.token";
  const std::vector<std::string> psctl = {
      BinDir() + "/psctl", "--scheduler", cluster.scheduler_address(),
      "--timeout_ms",      "3000",        token};
  auto tls_flags = [&](const std::string& role) {
    return std::vector<std::string>{"--tls_ca=" + certs + "/ca.pem",
                                    "--tls_cert=" + certs + "/" + role + ".pem",
                                    "--tls_key=" + certs + "/" + role + ".key"};
  };
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = psctl;
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("status");
    return RunCommand(argv, absl::Seconds(30));
  };
  auto admin = tls_flags("admin");
  auto ok = run(admin);
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_TRUE(absl::StrContains(ok.output, "job spambase-lr")) << ok.output;
  auto plaintext = run({});
  EXPECT_NE(plaintext.exit_code, 0) << plaintext.output;
  auto as_worker_cert = run(tls_flags("worker"));
  EXPECT_NE(as_worker_cert.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(as_worker_cert.output, "the client certificate is a worker's"))
      << as_worker_cert.output;
  cluster.processes().TerminateAll(absl::Seconds(5));
  const std::string audit = ReadFile(dir + "/out/audit.log");
  EXPECT_TRUE(absl::StrContains(audit, "the client certificate is a worker's")) << audit;
}

}  // namespace
}  // namespace ps

namespace ps {
namespace {

// security.encryption_key_file: the saved model (and checkpoints) are
// AES-256-GCM; ps_model and ps_predict read them only with the key.
TEST(AtRest, AnEncryptedModelNeedsItsKeyAndResumesFromEncryptedCheckpoints) {
  const std::string dir = NewTempDir("at-rest");
  auto keygen = RunCommand({BinDir() + "/psctl", "keygen", dir + "/keys"}, absl::Seconds(30));
  ASSERT_EQ(keygen.exit_code, 0) << keygen.output;
  const std::string key = dir + "/keys/data.key";
  const std::vector<std::string> sets = {"train.epochs=4", "checkpoint.every_epochs=2",
                                         "security.encryption_key_file=" + key};
  auto run = testing::Launch("examples/spambase_lr.yaml", dir + "/out", sets, {}, absl::Seconds(120));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const std::string part = ReadFile(dir + "/out/model/part-00000.bin");
  EXPECT_EQ(part.rfind("PSENC1", 0), 0u) << "the part file is not encrypted";
  auto without = RunCommand({BinDir() + "/ps_model", "dump", dir + "/out/model"}, absl::Seconds(30));
  EXPECT_EQ(without.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(without.output, "the file is encrypted")) << without.output;
  auto with = RunCommand({BinDir() + "/ps_model", "--encryption_key_file=" + key, "dump", dir + "/out/model"},
                         absl::Seconds(30));
  ASSERT_EQ(with.exit_code, 0) << with.output;
  EXPECT_GT(with.output.size(), 100u);
  // A checkpoint written encrypted is resumed from.
  auto resumed = testing::Launch("examples/spambase_lr.yaml", dir + "/out", sets, {"--resume"}, absl::Seconds(120));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_TRUE(absl::StrContains(resumed.output, "resuming from checkpoint")) << resumed.output;
}

}  // namespace
}  // namespace ps

// The data plane against real server processes: exactly-once pushes and
// malformed requests. The test itself is the job's one worker.
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/partitioning.h"
#include "common/rpc.h"
#include "common/scheduler_client.h"
#include "gtest/gtest.h"
#include "proto/ps.grpc.pb.h"
#include "tests/test_util.h"
#include "tools/local_cluster.h"

namespace ps {
namespace {

using ::ps::testing::BinDir;
using ::ps::testing::NewTempDir;
using ::ps::testing::SourceDir;
using ::ps::testing::WriteFile;

constexpr int kPartitions = 16;

class ServerRpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = NewTempDir("rpc");
    config_path_ = dir_ + "/job.yaml";
    WriteFile(config_path_, absl::StrCat(R"(job:
  name: rpc-test
  mode: asp
  output_dir: )", dir_, R"(/out
cluster:
  num_servers: 2
  num_workers: 1
  num_partitions: )", kPartitions, R"(
model:
  num_features: 1000
optimizer:
  type: sgd
  learning_rate: 1
data:
  train_path: )", SourceDir(), "/data/spambase/train.libsvm\n"));
    auto job = LoadJobConfig(config_path_);
    ASSERT_TRUE(job.ok()) << job.status();
    LocalClusterOptions options;
    options.config_path = config_path_;
    options.bin_dir = BinDir();
    options.log_dir = dir_ + "/logs";
    options.start_workers = false;
    options.scheduler_to_log = true;
    ASSERT_TRUE(cluster_.Start(*job, options).ok());
    // This process is the job's worker, with the worker's key like ps_worker.
    auto key = LoadProcessCredentials(cluster_.auth_dir() + "/worker.token", rpc::PRINCIPAL_WORKER);
    ASSERT_TRUE(key.ok()) << key.status();
    scheduler_ = std::make_unique<SchedulerClient>(cluster_.scheduler_address());
    rpc::RegisterRequest reg;
    reg.set_role(rpc::WORKER);
    auto registered = scheduler_->Register(reg, absl::Seconds(30));
    ASSERT_TRUE(registered.ok()) << registered.status();
    ASSERT_TRUE(AdoptTicket(registered->ticket(), false).ok());
    node_id_ = registered->node_id();
    auto view = scheduler_->WaitForStart(node_id_, absl::Seconds(30));
    ASSERT_TRUE(view.ok()) << view.status();
    view_ = *view;
    for (const auto& s : view_.servers()) stubs_.push_back(rpc::ParameterServer::NewStub(MakeChannel(s.address())));
  }

  void TearDown() override {
    // End the job properly and check every process exits 0.
    auto end = scheduler_->Barrier(node_id_, "end", absl::Seconds(30));
    EXPECT_TRUE(end.ok()) << end.status();
    (void)scheduler_->Leave(node_id_);
    std::string error;
    EXPECT_EQ(cluster_.Wait(absl::Now() + absl::Seconds(30), &error), 0) << error;
  }

  // The server owning `key` of table 0.
  int Owner(uint64_t key) { return view_.partition_owner(PartitionOf(0, key, kPartitions)); }

  grpc::Status Push(int server, const rpc::PushRequest& req, rpc::PushResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
    return stubs_[server]->Push(&ctx, req, resp);
  }

  absl::StatusOr<float> PullOne(uint64_t key) {
    rpc::PullRequest req;
    auto* slice = req.add_slices();
    slice->set_table(0);
    slice->add_keys(key);
    rpc::PullResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(absl::Seconds(10)));
    grpc::Status s = stubs_[Owner(key)]->Pull(&ctx, req, &resp);
    if (!s.ok()) return FromGrpcStatus(s);
    return resp.slices(0).values(0);
  }

  static rpc::PushRequest OneKeyPush(uint64_t key, float grad, uint64_t seq) {
    rpc::PushRequest req;
    req.set_worker(0);
    req.set_incarnation(99);
    req.set_seq(seq);
    req.set_num_examples(1);
    auto* slice = req.add_slices();
    slice->set_table(0);
    slice->add_keys(key);
    slice->add_values(grad);
    return req;
  }

  std::string dir_, config_path_;
  LocalCluster cluster_;
  std::unique_ptr<SchedulerClient> scheduler_;
  uint32_t node_id_ = 0;
  rpc::ClusterView view_;
  std::vector<std::unique_ptr<rpc::ParameterServer::Stub>> stubs_;
};

TEST_F(ServerRpcTest, PushSentTwiceWithTheSameSeqIsAppliedOnce) {
  const uint64_t key = 17;
  const rpc::PushRequest req = OneKeyPush(key, 0.25f, /*seq=*/5);
  rpc::PushResponse first, second;
  ASSERT_TRUE(Push(Owner(key), req, &first).ok());
  EXPECT_FALSE(first.duplicate());
  ASSERT_TRUE(Push(Owner(key), req, &second).ok());  // the retry of a lost ack
  EXPECT_TRUE(second.duplicate());
  auto value = PullOne(key);
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_FLOAT_EQ(*value, -0.25f);  // SGD, lr 1: applied once
  // A newer seq is applied; an older one is not.
  rpc::PushResponse third, old;
  ASSERT_TRUE(Push(Owner(key), OneKeyPush(key, 0.25f, 6), &third).ok());
  ASSERT_TRUE(Push(Owner(key), OneKeyPush(key, 0.25f, 4), &old).ok());
  EXPECT_TRUE(old.duplicate());
  EXPECT_FLOAT_EQ(*PullOne(key), -0.5f);
}

TEST_F(ServerRpcTest, MalformedRequestsGetErrorsAndTheServerKeepsServing) {
  const uint64_t key = 3;
  const int server = Owner(key);
  rpc::PushResponse resp;

  rpc::PushRequest mismatched = OneKeyPush(key, 1.0f, 1);
  mismatched.mutable_slices(0)->add_values(2.0f);  // 1 key, 2 values (dim 1)
  grpc::Status s = Push(server, mismatched, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("need 1 values, got 2"), std::string::npos) << s.error_message();

  rpc::PushRequest unknown_table = OneKeyPush(key, 1.0f, 2);
  unknown_table.mutable_slices(0)->set_table(42);
  s = Push(server, unknown_table, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("unknown table 42"), std::string::npos) << s.error_message();

  rpc::PushRequest nan = OneKeyPush(key, std::numeric_limits<float>::quiet_NaN(), 3);
  s = Push(server, nan, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("non-finite"), std::string::npos) << s.error_message();

  rpc::PushRequest beyond = OneKeyPush(5000, 1.0f, 4);  // num_features 1000
  s = Push(Owner(5000), beyond, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  rpc::PushRequest elsewhere = OneKeyPush(key, 1.0f, 5);  // sent to the wrong server
  s = Push(1 - server, elsewhere, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  // Nothing above changed the key, and the server still serves.
  auto value = PullOne(key);
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_FLOAT_EQ(*value, 0.0f);
  ASSERT_TRUE(Push(server, OneKeyPush(key, 2.0f, 6), &resp).ok());
  EXPECT_FLOAT_EQ(*PullOne(key), -2.0f);
}

TEST_F(ServerRpcTest, PsctlStatusShowsTheJob) {
  rpc::PushResponse resp;
  ASSERT_TRUE(Push(Owner(9), OneKeyPush(9, 1.0f, 1), &resp).ok());
  auto r = testing::RunCommand({BinDir() + "/psctl", "--scheduler", cluster_.scheduler_address(),
                                "--token_file=" + cluster_.auth_dir() + "/job.token", "status"},
                               absl::Seconds(30));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("job rpc-test (asp): running"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(absl::StrCat("map version ", view_.version(), ": 16 partitions, 1 live workers")),
            std::string::npos)
      << r.output;
  for (const auto& server : view_.servers()) {
    EXPECT_NE(r.output.find(server.address()), std::string::npos) << r.output;
  }
  EXPECT_NE(r.output.find("primary of 8, backup of 0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1 keys, 1 pushes"), std::string::npos) << r.output;
}

TEST(Psctl, UnreachableSchedulerIsAClearError) {
  auto r = testing::RunCommand({BinDir() + "/psctl", "--scheduler",
                                absl::StrCat("127.0.0.1:", testing::UnusedPort()), "--timeout_ms",
                                "500", "status"},
                               absl::Seconds(30));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("psctl: error: cannot reach the scheduler at"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace ps

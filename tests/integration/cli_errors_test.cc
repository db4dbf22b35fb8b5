// Bad input to the binaries: each gets a clear one-line error naming what is
// wrong and where, and a non-zero exit, never a crash or a hang.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace ps {
namespace {

using ::ps::testing::BinDir;
using ::ps::testing::NewTempDir;
using ::ps::testing::RunCommand;
using ::ps::testing::SourceDir;
using ::ps::testing::UnusedPort;
using ::ps::testing::WriteFile;
using ::testing::HasSubstr;

const absl::Duration kTimeout = absl::Seconds(60);

std::string GoodConfig(const std::string& dir, const std::string& train_path) {
  return absl::StrCat("job:\n  name: cli\n  output_dir: ", dir, "/out\n",
                      "cluster:\n  num_servers: 1\n  num_workers: 1\n  connect_timeout_ms: 3000\n",
                      "model:\n  num_features: 57\n",
                      "optimizer:\n  learning_rate: 0.1\n",
                      "data:\n  train_path: ", train_path, "\n",
                      "train:\n  epochs: 1\n");
}

TEST(CliErrors, ConfigTypoNamesFileLineAndField) {
  const std::string dir = NewTempDir("typo");
  const std::string path = dir + "/job.yaml";
  WriteFile(path, "job:\n  name: x\noptimizer:\n  type: adam\n  learning_rat: 0.1\n"
                  "data:\n  train_path: t.libsvm\n");
  auto r = RunCommand({BinDir() + "/ps_launch", "--config", path}, kTimeout);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr(path + ":5: optimizer.learning_rat: unknown field"));
  EXPECT_THAT(r.output, HasSubstr("did you mean 'learning_rate'"));
}

TEST(CliErrors, OutOfRangeValueNamesTheLine) {
  const std::string dir = NewTempDir("range");
  const std::string path = dir + "/job.yaml";
  WriteFile(path, "cluster:\n  num_servers: 0\ndata:\n  train_path: t.libsvm\n");
  auto r = RunCommand({BinDir() + "/ps_launch", "--config", path}, kTimeout);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr(path + ":2: cluster.num_servers"));
}

TEST(CliErrors, BadOverrideIsNamed) {
  auto r = RunCommand({BinDir() + "/ps_launch", "--config", SourceDir() + "/examples/spambase_lr.yaml",
                       "--set", "train.epochs=many"},
                      kTimeout);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("--set train.epochs=many"));
}

TEST(CliErrors, MissingDataFile) {
  const std::string dir = NewTempDir("nodata");
  const std::string path = dir + "/job.yaml";
  WriteFile(path, GoodConfig(dir, dir + "/missing.libsvm"));
  auto r = RunCommand({BinDir() + "/ps_launch", "--config", path}, kTimeout);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("data.train_path: cannot open '" + dir + "/missing.libsvm'"));
}

TEST(CliErrors, UnparsableLibsvmLineFailsTheJobWithFileAndLine) {
  const std::string dir = NewTempDir("badline");
  const std::string data = dir + "/bad.libsvm";
  WriteFile(data, "1 1:0.5 2:1\n0 3:2\n1 4:oops\n");
  const std::string path = dir + "/job.yaml";
  WriteFile(path, GoodConfig(dir, data));
  auto r = RunCommand({BinDir() + "/ps_launch", "--config", path}, kTimeout);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr(data + ":3:"));
}

TEST(CliErrors, PortAlreadyTaken) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  auto r = RunCommand({BinDir() + "/ps_scheduler", "--config",
                       SourceDir() + "/examples/spambase_lr.yaml", "--host", "127.0.0.1", "--port",
                       std::to_string(port)},
                      kTimeout);
  close(fd);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("cannot listen on 127.0.0.1:", port,
                                               ": Address already in use")));
}

TEST(CliErrors, SchedulerNotUpWorkerGivesUpAtItsDeadline) {
  const std::string address = absl::StrCat("127.0.0.1:", UnusedPort());
  for (const char* role : {"ps_worker", "ps_server"}) {
    auto r = RunCommand({BinDir() + "/" + role, "--scheduler", address, "--connect_timeout_ms", "1000"},
                        kTimeout);
    EXPECT_EQ(r.exit_code, 1) << role;
    EXPECT_THAT(r.output, HasSubstr("cannot reach the scheduler at " + address)) << role;
  }
}

TEST(CliErrors, MissingServersFailTheJobAtTheConnectTimeout) {
  const std::string dir = NewTempDir("noservers");
  const std::string path = dir + "/job.yaml";
  WriteFile(path, GoodConfig(dir, SourceDir() + "/data/spambase/train.libsvm"));
  auto r = RunCommand({BinDir() + "/ps_scheduler", "--config", path, "--port", "0"}, kTimeout);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("only 0 of 1 servers and 0 of 1 workers registered"));
}

TEST(CliErrors, MissingRequiredFlag) {
  auto r = RunCommand({BinDir() + "/ps_worker"}, kTimeout);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("--scheduler is required"));
}

}  // namespace
}  // namespace ps

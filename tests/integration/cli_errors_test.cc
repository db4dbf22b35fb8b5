// Bad input to the binaries: each gets a clear one-line error naming what is
// wrong and where, and a non-zero exit, never a crash or a hang.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace ps {
namespace {

using ::ps::testing::BinDir;
using ::ps::testing::NewTempDir;
using ::ps::testing::ReadFile;
using ::ps::testing::RunCommand;
using ::ps::testing::SourceDir;
using ::ps::testing::UnusedPort;
using ::ps::testing::WriteFile;
using ::testing::HasSubstr;

const absl::Duration kTimeout = absl::Seconds(60);

std::string GoodConfig(const std::string& dir, const std::string& train_path,
                       const std::string& data_extra = "",
                       const std::string& model = "model:\n  num_features: 57\n") {
  return absl::StrCat("job:\n  name: cli\n  output_dir: ", dir, "/out\n",
                      "cluster:\n  num_servers: 1\n  num_workers: 1\n  connect_timeout_ms: 3000\n",
                      model, "optimizer:\n  learning_rate: 0.1\n",
                      "data:\n  train_path: ", train_path, "\n", data_extra,
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

TEST(CliErrors, CompressionOfAnUnknownTableIsNamed) {
  const std::string dir = NewTempDir("compress");
  const std::string path = dir + "/job.yaml";
  WriteFile(
      path,
      ReadFile(SourceDir() + "/examples/spambase_lr.yaml") +
          "compression:\n  type: int8\n  tables:\n    - {table: layer0_weights, type: fp16}\n");
  auto r = RunCommand({BinDir() + "/ps_launch", "--config", path}, kTimeout);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("compression.tables[0].table: this model has no table "
                                  "'layer0_weights' (its tables: weights, bias)"));
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

// Runs a one-server one-worker job on `data` with `yaml_extra` lines added to
// the config; the job must fail with `expected` in its output.
void ExpectJobFails(const std::string& name, const std::string& data_file, const std::string& data,
                    const std::string& data_extra, const std::string& model,
                    const std::string& expected) {
  const std::string dir = NewTempDir(name);
  const std::string path = dir + "/" + data_file;
  WriteFile(path, data);
  WriteFile(dir + "/job.yaml", GoodConfig(dir, path, data_extra, model));
  auto r = RunCommand({BinDir() + "/ps_launch", "--config", dir + "/job.yaml"}, kTimeout);
  EXPECT_NE(r.exit_code, 0) << name;
  EXPECT_THAT(r.output, HasSubstr(expected)) << name;
}

TEST(CliErrors, CsvWithARaggedRow) {
  ExpectJobFails("ragged", "d.csv", "a,b,y\n1,2,0\n3,1\n",
                 "  format: csv\n  label_column: y\n", "model:\n  num_features: 2\n",
                 "d.csv:3: row has 2 cells, the header has 3");
}

TEST(CliErrors, LabelOutsideTheClasses) {
  ExpectJobFails("classes", "d.csv", "a,b,y\n1,2,0\n3,1,7\n",
                 "  format: csv\n  label_column: y\n",
                 "model:\n  type: softmax_regression\n  num_classes: 3\n",
                 "d.csv:3: label 7 is outside the 3 classes");
}

TEST(CliErrors, IdxWithAWrongMagicNumber) {
  const std::string dir = NewTempDir("idx");
  WriteFile(dir + "/labels.idx", std::string("\x00\x00\x08\x01\x00\x00\x00\x01\x03", 9));
  ExpectJobFails("idxmagic", "images.idx", std::string(16, '\0'),
                 "  format: idx\n  train_labels_path: " + dir + "/labels.idx\n",
                 "model:\n  type: mlp\n  num_features: 784\n  num_classes: 10\n",
                 "images.idx: bad IDX magic 0x00000000 (expected 0x00000803 for images)");
}

TEST(CliErrors, FeatureIndexBeyondTheDeclaredTable) {
  // model.num_features is 57 in GoodConfig.
  ExpectJobFails("beyond", "d.libsvm", "1 1:0.5 2:1\n0 3:2\n1 90:1\n", "",
                 "model:\n  num_features: 57\n", "d.libsvm:3: feature index 90 exceeds the declared maximum 57");
}

// A port something listens on while the object lives.
class TakenPort {
 public:
  TakenPort() : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd_, 1), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~TakenPort() { close(fd_); }
  int port() const { return port_; }

 private:
  const int fd_;
  int port_ = 0;
};

TEST(CliErrors, PortAlreadyTaken) {
  TakenPort taken;
  const int port = taken.port();
  auto r = RunCommand(
      {BinDir() + "/ps_scheduler", "--config", SourceDir() + "/examples/spambase_lr.yaml", "--host",
       "127.0.0.1", "--port", std::to_string(port), testing::TokenFlag("scheduler")},
      kTimeout);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("cannot listen on 127.0.0.1:", port,
                                               ": Address already in use")));
}

TEST(CliErrors, MetricsPortAlreadyTakenIsAnErrorNotAMissingEndpoint) {
  TakenPort taken;
  const std::string metrics = std::to_string(taken.port());
  const std::string scheduler = absl::StrCat("127.0.0.1:", UnusedPort());
  const std::vector<std::vector<std::string>> commands = {
      {BinDir() + "/ps_scheduler", "--config", SourceDir() + "/examples/spambase_lr.yaml", "--port",
       "0", testing::TokenFlag("scheduler")},
      {BinDir() + "/ps_server", "--scheduler", scheduler},
      {BinDir() + "/ps_worker", "--scheduler", scheduler}};
  for (std::vector<std::string> argv : commands) {
    argv.insert(argv.end(), {"--metrics_port", metrics});
    auto r = RunCommand(argv, kTimeout);
    EXPECT_EQ(r.exit_code, 1) << argv[0];
    EXPECT_THAT(r.output, HasSubstr(absl::StrCat("--metrics_port: cannot listen on 127.0.0.1:",
                                                 metrics, ": Address already in use")))
        << argv[0];
  }
}

TEST(CliErrors, UnknownLogFormatIsNamed) {
  const std::string config = "--config=" + SourceDir() + "/examples/spambase_lr.yaml";
  const std::vector<std::pair<std::string, std::string>> commands = {
      {"ps_launch", config},
      {"ps_scheduler", config},
      {"ps_server", "--scheduler=127.0.0.1:1"},
      {"ps_worker", "--scheduler=127.0.0.1:1"}};
  for (const auto& [binary, flag] : commands) {
    auto r = RunCommand({BinDir() + "/" + binary, "--log_format=xml", flag}, kTimeout);
    EXPECT_NE(r.exit_code, 0) << binary;
    EXPECT_THAT(r.output, HasSubstr("--log_format: 'xml' is not text or json")) << binary;
  }
}

TEST(CliErrors, UnresolvableSchedulerNameIsNamed) {
  for (const char* role : {"ps_worker", "ps_server"}) {
    auto r = RunCommand({BinDir() + "/" + role, "--scheduler", "no-such-scheduler.invalid:7000",
                         "--connect_timeout_ms", "500"},
                        kTimeout);
    EXPECT_EQ(r.exit_code, 1) << role;
    EXPECT_THAT(r.output, HasSubstr("--scheduler: cannot resolve host 'no-such-scheduler.invalid'"))
        << role;
  }
}

TEST(CliErrors, UnresolvableAdvertisedNameIsNamed) {
  const std::string scheduler = absl::StrCat("127.0.0.1:", UnusedPort());
  for (const char* role : {"ps_worker", "ps_server"}) {
    auto r = RunCommand({BinDir() + "/" + role, "--scheduler", scheduler, "--advertise",
                         "no-such-server.invalid", "--connect_timeout_ms", "500"},
                        kTimeout);
    EXPECT_EQ(r.exit_code, 1) << role;
    EXPECT_THAT(r.output, HasSubstr("--advertise: cannot resolve host 'no-such-server.invalid'"))
        << role;
  }
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
  auto r = RunCommand({BinDir() + "/ps_scheduler", "--config", path, "--port", "0",
                       testing::TokenFlag("scheduler")},
                      kTimeout);
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

// Regression tests for the defects a probe of the binaries found (issue 9).
namespace ps {
namespace {

TEST(ProbeDefects, MissingCsvCellsTrainWithTheDefaultFillZero) {
  const std::string dir = NewTempDir("csv-missing");
  std::string csv = "a,b,y\n";
  for (int i = 0; i < 200; ++i) {
    // Every 7th row misses a cell, written each way the docs list.
    const char* missing[] = {"", "NA", "nan", "?"};
    const std::string a = i % 7 == 0 ? missing[i % 4] : std::to_string((i % 10) * 0.1);
    absl::StrAppend(&csv, a, ",", (i % 3) * 0.5, ",", i % 2, "\n");
  }
  WriteFile(dir + "/train.csv", csv);
  WriteFile(dir + "/job.yaml",
            GoodConfig(dir, dir + "/train.csv", "  format: csv\n  label_column: y\n",
                       "model:\n  num_features: 2\n"));
  auto r = RunCommand({BinDir() + "/ps_launch", "--config", dir + "/job.yaml"}, absl::Seconds(120));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(ProbeDefects, AWorkersErrorThatIsNotUtf8ReachesTheScheduler) {
  const std::string dir = NewTempDir("utf8");
  WriteFile(dir + "/train.libsvm", "1 1:0.5\n0 \xff\xfe:1\n");
  WriteFile(dir + "/job.yaml", GoodConfig(dir, dir + "/train.libsvm"));
  auto r = RunCommand({BinDir() + "/ps_launch", "--config", dir + "/job.yaml"}, kTimeout);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("job failed: worker 0: " + dir + "/train.libsvm:2")) << r.output;
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("sent no heartbeat"))) << r.output;
}

TEST(ProbeDefects, BadSizesAndEndlessFilesAreErrorsNotCrashes) {
  const std::string dir = NewTempDir("probe");
  // A negative layer: a config error naming the line, not a worker abort.
  WriteFile(dir + "/mlp.yaml",
            GoodConfig(dir, SourceDir() + "/data/spambase/train.libsvm", "",
                       "model:\n  type: mlp\n  num_features: 57\n  hidden_units: [-5]\n"));
  auto r = RunCommand({BinDir() + "/ps_launch", "--config", dir + "/mlp.yaml"}, kTimeout);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output,
              HasSubstr(dir + "/mlp.yaml:11: model.hidden_units[0]: must be >= 1, got -5"));
  // /dev/zero as the config or the data: refused at once, not read forever.
  r = RunCommand({BinDir() + "/ps_launch", "--config", "/dev/zero"}, kTimeout);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("'/dev/zero' is not a regular file"));
  WriteFile(dir + "/zero.yaml", GoodConfig(dir, "/dev/zero"));
  r = RunCommand({BinDir() + "/ps_launch", "--config", dir + "/zero.yaml"}, kTimeout);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("data file '/dev/zero' is not a regular file"));
  // An empty state file: --restore says so instead of waiting forever.
  ASSERT_EQ(mkdir((dir + "/out-restore").c_str(), 0700), 0);
  WriteFile(dir + "/out-restore/scheduler.state", "");
  r = RunCommand(
      {BinDir() + "/ps_scheduler", "--config", SourceDir() + "/examples/spambase_lr.yaml", "--set",
       "job.output_dir=" + dir + "/out-restore", "--restore", testing::TokenFlag("scheduler")},
      kTimeout);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr(dir + "/out-restore/scheduler.state: the file is empty"));
}

}  // namespace
}  // namespace ps

// Metrics and health through real processes (issue 8): every process of a
// running job serves /metrics (accepted by promtool), /healthz and /readyz on
// the port it picked; the scheduler lists them in prometheus_targets.json;
// a real Prometheus server scraping them through that file sees the push
// counters rise while the job trains.
#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "tools/process_group.h"

namespace ps {
namespace {

using ::ps::testing::BinDir;
using ::ps::testing::ListeningPorts;
using ::ps::testing::NewTempDir;
using ::ps::testing::ReadFile;
using ::ps::testing::RunCommand;
using ::ps::testing::SourceDir;
using ::ps::testing::WriteFile;
using ::testing::HasSubstr;

struct Target {
  std::string address, role;
};

// The targets in a file_sd file the scheduler wrote.
std::vector<Target> ReadTargets(const std::string& path) {
  std::vector<Target> out;
  const std::string text = ReadFile(path);
  static const std::regex re(
      R"re(\{"targets": \["([^"]+)"\], "labels": \{"ps_job": "[^"]*", "role": "([a-z-]+)")re");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    out.push_back({(*it)[1], (*it)[2]});
  }
  return out;
}

struct Http {
  int code = 0;
  std::string body;
};

Http Get(const std::string& url) {
  auto r = RunCommand({"/usr/bin/curl", "-s", "--max-time", "10", "-w", "\n%{http_code}", url},
                      absl::Seconds(20));
  Http h;
  const size_t nl = r.output.rfind('\n');
  if (r.exit_code != 0 || nl == std::string::npos) return h;
  (void)absl::SimpleAtoi(r.output.substr(nl + 1), &h.code);
  h.body = r.output.substr(0, nl);
  return h;
}

// The value of the sample `series` (name{labels} as printed) in a /metrics text.
double Sample(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  double v = -1;
  if (at == std::string::npos) return v;
  const size_t begin = at + series.size() + 2;
  (void)absl::SimpleAtod(text.substr(begin, text.find('\n', begin) - begin), &v);
  return v;
}

const char kAppliedPushes[] = R"(ps_server_ops_total{op="push",result="applied"})";

class Monitoring : public ::testing::Test {
 protected:
  // One long job for the suite: spambase, 2 servers + 2 workers, one worker
  // slowed so that it trains for a while; ended when the suite is done.
  static void SetUpTestSuite() {
    out_ = new std::string(NewTempDir("monitoring"));
    group_ = new ProcessGroup();
    const std::vector<std::string> argv = {BinDir() + "/ps_launch",
                                           "--config",
                                           SourceDir() + "/examples/spambase_lr.yaml",
                                           "--set",
                                           "job.output_dir=" + *out_,
                                           "--set",
                                           "train.epochs=400",
                                           "--worker_delay",
                                           "0:2"};
    ASSERT_TRUE(group_->Spawn({"launcher", argv, *out_ + ".log"}).ok());
  }
  static void TearDownTestSuite() {
    group_->TerminateAll(absl::Seconds(10));
    delete group_;
    delete out_;
  }

  // Waits until the scheduler lists the scheduler, 2 servers and 2 workers.
  static std::vector<Target> AllTargets() {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      std::vector<Target> t = ReadTargets(*out_ + "/prometheus_targets.json");
      if (t.size() == 5) return t;
      absl::SleepFor(absl::Milliseconds(100));  // poll period for the file
    }
    return {};
  }

  static std::string* out_;
  static ProcessGroup* group_;
};
std::string* Monitoring::out_ = nullptr;
ProcessGroup* Monitoring::group_ = nullptr;

TEST_F(Monitoring, EveryProcessServesMetricsHealthAndReadiness) {
  const std::vector<Target> targets = AllTargets();
  ASSERT_EQ(targets.size(), 5u) << ReadFile(*out_ + "/prometheus_targets.json")
                                << ReadFile(*out_ + ".log");
  std::map<std::string, int> roles;
  // Families each role must export.
  const std::map<std::string, std::vector<std::string>> expected = {
      {"scheduler",
       {"ps_job_epochs_evaluated ", "ps_job_samples_per_second ",
        "ps_scheduler_barrier_wait_seconds_bucket{", "ps_scheduler_server_failovers_total ",
        "ps_scheduler_promotions_total ", "ps_scheduler_partition_moves_total ",
        "ps_scheduler_data_shards_total ",
        R"(ps_scheduler_members{role="server",state="alive"} 2)"}},
      {"server",
       {"ps_server_request_duration_seconds_bucket{", "ps_server_read_staleness_clocks_bucket{",
        "ps_server_pulls_parked ", "ps_server_replication_lag_ops ", "ps_server_bytes_total{",
        "ps_server_payload_bytes_total{", kAppliedPushes}},
      {"worker",
       {"ps_worker_request_duration_seconds_bucket{", "ps_worker_barrier_wait_seconds_bucket{",
        "ps_worker_samples_total ", "ps_worker_epoch "}}};
  for (const Target& t : targets) {
    ++roles[t.role];
    const std::string base = "http://" + t.address;
    const Http health = Get(base + "/healthz");
    EXPECT_EQ(health.code, 200) << t.address;
    EXPECT_EQ(health.body, "ok\n");
    // Ready, and every family there, within a deadline: a process becomes
    // ready once it joined, and the histograms appear at their first
    // observation (a barrier released, a request served); a sanitizer build
    // gets there seconds later.
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    Http metrics;
    while (true) {
      metrics = Get(base + "/metrics");
      bool all = Get(base + "/readyz").code == 200 && metrics.code == 200;
      for (const std::string& family : expected.at(t.role)) all = all && absl::StrContains(metrics.body, family);
      if (all || absl::Now() > deadline) break;
      absl::SleepFor(absl::Milliseconds(100));  // poll period, bounded by the deadline
    }
    EXPECT_EQ(Get(base + "/readyz").code, 200) << t.role << " at " << t.address << " is not ready";
    EXPECT_EQ(Get(base + "/nothing").code, 404);
    ASSERT_EQ(metrics.code, 200) << t.address;
    for (const std::string& family : expected.at(t.role)) {
      EXPECT_THAT(metrics.body, HasSubstr(family)) << t.role << " at " << t.address;
    }
    // promtool (Debian's prometheus) is the reference for the format.
    auto check =
        RunCommand({"/bin/sh", "-c", "curl -s " + base + "/metrics | promtool check metrics"},
                   absl::Seconds(30));
    EXPECT_EQ(check.exit_code, 0) << t.role << " at " << t.address << ": " << check.output;
  }
  EXPECT_EQ(roles["scheduler"], 1);
  EXPECT_EQ(roles["server"], 2);
  EXPECT_EQ(roles["worker"], 2);

  // The push counter of a server rises while the job trains.
  std::string server;
  for (const Target& t : targets) {
    if (t.role == "server") server = t.address;
  }
  const double before = Sample(Get("http://" + server + "/metrics").body, kAppliedPushes);
  ASSERT_GE(before, 0);
  double after = before;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (after <= before && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));  // poll period
    after = Sample(Get("http://" + server + "/metrics").body, kAppliedPushes);
  }
  std::cout << "server at " << server << ": pushes applied " << before << " -> " << after
            << std::endl;
  EXPECT_GT(after, before);
}

// The value of the first result of an instant query to Prometheus's HTTP API
// (-1 if none yet).
double Query(int port, const std::string& promql) {
  auto r = RunCommand({"/usr/bin/curl", "-s", "--max-time", "10", "-G",
                       absl::StrCat("http://127.0.0.1:", port, "/api/v1/query"), "--data-urlencode",
                       "query=" + promql},
                      absl::Seconds(20));
  static const std::regex value(R"re("value":\[[0-9.]+,"([^"]+)"\])re");
  std::smatch m;
  double v = -1;
  if (r.exit_code == 0 && std::regex_search(r.output, m, value))
    (void)absl::SimpleAtod(m[1].str(), &v);
  return v;
}

TEST_F(Monitoring, PrometheusScrapesTheClusterThroughTheTargetsFile) {
  ASSERT_EQ(AllTargets().size(), 5u) << ReadFile(*out_ + ".log");
  ASSERT_EQ(access("/usr/bin/prometheus", X_OK), 0)
      << "Debian's prometheus is needed (deploy/setup.sh installs it)";
  const std::string dir = NewTempDir("prometheus");
  WriteFile(dir + "/prometheus.yml",
            absl::StrCat("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                         "scrape_configs:\n  - job_name: paramserver\n    file_sd_configs:\n"
                         "      - files: [",
                         *out_, "/prometheus_targets.json]\n        refresh_interval: 1s\n"));
  ProcessGroup prometheus;
  auto pid = prometheus.Spawn(
      {"prometheus",
       {"/usr/bin/prometheus", "--config.file=" + dir + "/prometheus.yml",
        "--storage.tsdb.path=" + dir + "/data", "--web.listen-address=127.0.0.1:0"},
       dir + "/prometheus.log"});
  ASSERT_TRUE(pid.ok()) << pid.status();
  int port = 0;
  for (absl::Time deadline = absl::Now() + absl::Seconds(30);
       port == 0 && absl::Now() < deadline;) {
    const std::vector<int> ports = ListeningPorts(*pid);
    if (!ports.empty()) port = ports[0];
    if (port == 0) absl::SleepFor(absl::Milliseconds(100));  // poll period
  }
  ASSERT_NE(port, 0) << ReadFile(dir + "/prometheus.log");

  // Every target up, then the servers' summed push counter rising between
  // two scrapes.
  const std::string pushes = R"(sum(ps_server_ops_total{op="push",result="applied"}))";
  double up = -1, first = -1, later = -1;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline && (up < 5 || first < 0)) {
    up = Query(port, "count(up == 1)");
    first = Query(port, pushes);
    if (up < 5 || first < 0) absl::SleepFor(absl::Milliseconds(250));  // poll period
  }
  ASSERT_EQ(up, 5) << ReadFile(dir + "/prometheus.log");
  ASSERT_GE(first, 0);
  while (absl::Now() < deadline && later <= first) {
    absl::SleepFor(absl::Milliseconds(250));  // poll period
    later = Query(port, pushes);
  }
  std::cout << "Prometheus on port " << port << ": summed pushes applied " << first << " -> "
            << later << std::endl;
  EXPECT_GT(later, first);
  EXPECT_GE(Query(port, "ps_job_epochs_evaluated"), 0);
  prometheus.TerminateAll(absl::Seconds(5));
}

// --log_format=json: every line of every process's log is one JSON object
// with the time, level, role, id and the message.
TEST(JsonLogs, EveryLineIsAnObjectWithRoleAndId) {
  const std::string out = NewTempDir("json-logs");
  auto r =
      testing::Launch("examples/spambase_lr.yaml", out, {"train.epochs=1"}, {"--log_format=json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  static const std::regex line(
      R"re(\{"time":"[0-9T:.+-]+","level":"(info|warning|error|debug)","role":"(scheduler|server|worker)","id":"[^"]*","msg":"([^"\\]|\\.)*"\})re");
  int lines = 0;
  for (const std::string name : {"server-0", "server-1", "worker-0", "worker-1"}) {
    std::istringstream in(ReadFile(out + "/logs/" + name + ".log"));
    std::string l;
    while (std::getline(in, l)) {
      ++lines;
      EXPECT_TRUE(std::regex_match(l, line)) << name << ": " << l;
    }
  }
  EXPECT_GT(lines, 8);
  // Ranks come in registration order, not spawn order: either log may be rank 0's.
  EXPECT_THAT(ReadFile(out + "/logs/server-0.log") + ReadFile(out + "/logs/server-1.log"),
              HasSubstr(R"("role":"server","id":"rank 0, node )"));
  EXPECT_THAT(r.output,
              HasSubstr(R"("role":"scheduler","id":"job spambase-lr","msg":"training starts)"));
}

}  // namespace
}  // namespace ps

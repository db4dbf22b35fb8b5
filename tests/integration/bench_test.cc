// ps_bench end to end, briefly: it starts its own cluster, measures every
// size, checks that the servers hold exactly the pushed sums, and leaves no
// process behind.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace ps {
namespace {

using ::ps::testing::BinDir;
using ::ps::testing::NewTempDir;
using ::ps::testing::ProcessesMentioning;
using ::ps::testing::RunCommand;
using ::ps::testing::SourceDir;
using ::testing::HasSubstr;

TEST(Bench, RunsAndItsSpotCheckPasses) {
  const std::string out = NewTempDir("bench");
  auto r = RunCommand(
      {BinDir() + "/ps_bench", "--config", SourceDir() + "/bench/bench.yaml", "--budget_mib", "4",
       "--max_seconds", "0.2", "--sparse_keys", "100,1000", "--set", "job.output_dir=" + out},
      absl::Seconds(180));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("raw TCP GB/s"));
  EXPECT_THAT(r.output, HasSubstr("latency of one request at a time"));
  EXPECT_THAT(r.output, HasSubstr("4 MiB"));
  EXPECT_THAT(r.output, HasSubstr("push keys/s"));
  EXPECT_THAT(r.output, HasSubstr("spot check: passed"));
  EXPECT_THAT(ProcessesMentioning(out), ::testing::IsEmpty());
}

}  // namespace
}  // namespace ps

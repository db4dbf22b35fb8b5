#include "common/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"

namespace ps {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kFullYaml[] = R"yaml(# A complete job config.
job:
  name: spambase-lr
  mode: ssp
  staleness: 3
  seed: 7
  output_dir: runs/one
cluster:
  scheduler_address: "10.0.0.1:7000"
  num_servers: 4
  num_workers: 8
  num_partitions: 128
  heartbeat_interval_ms: 200
  heartbeat_timeout_ms: 2000
  rpc_timeout_ms: 1000
  connect_timeout_ms: 5000
  max_chunk_bytes: 65536
  max_retries: 3
model:
  type: logistic_regression
  num_features: 57
  hash_bits: 0
  init: normal
  init_value: 0.5
  init_scale: 0.1
  l2: 1e-4
optimizer:
  type: adamw
  learning_rate: 0.05
  momentum: 0.8
  nesterov: yes
  beta1: 0.85
  beta2: 0.99
  epsilon: 1e-7
  weight_decay: 0.001
  initial_accumulator: 0.2
data:
  format: libsvm
  train_path: data/train.svm
  test_path: /abs/test.svm
  shard_size: 256
  shuffle: false
  dynamic_shards: false
train:
  epochs: 5
  batch_size: 32
  eval_every_epoch: no
  progress_interval_ms: 0
)yaml";

// The smallest valid config.
constexpr char kMinimalYaml[] = "data:\n  train_path: train.svm\n";

// 1-based line of the first line of `text` that contains `needle`.
int LineOf(std::string_view text, std::string_view needle) {
  int line = 1;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    if (text.substr(start, end - start).find(needle) != std::string_view::npos) return line;
    start = end + 1;
    ++line;
  }
  ADD_FAILURE() << "no line contains " << needle;
  return 0;
}

// Parses `yaml` as "job.yaml"; expects an InvalidArgument error that names
// job.yaml at the line of `line_needle`, the field `path`, and `what`.
void ExpectParseError(const std::string& yaml, std::string_view line_needle,
                      const std::string& path, const std::string& what,
                      const std::vector<std::string>& overrides = {}) {
  SCOPED_TRACE(yaml);
  absl::StatusOr<config::JobConfig> config = ParseJobConfig(yaml, "job.yaml", overrides);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(config.status().message());
  EXPECT_THAT(message, HasSubstr(absl::StrCat("job.yaml:", LineOf(yaml, line_needle), ": ")));
  if (!path.empty()) {
    EXPECT_THAT(message, HasSubstr(absl::StrCat(": ", path, ": ")));
  }
  EXPECT_THAT(message, HasSubstr(what));
  EXPECT_THAT(message, Not(HasSubstr("\n")));
}

TEST(ParseJobConfig, FullConfigGivesExpectedValues) {
  absl::StatusOr<config::JobConfig> parsed = ParseJobConfig(kFullYaml, "full.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const config::JobConfig& c = *parsed;
  EXPECT_EQ(c.job().name(), "spambase-lr");
  EXPECT_EQ(c.job().mode(), config::SSP);
  EXPECT_EQ(c.job().staleness(), 3);
  EXPECT_EQ(c.job().seed(), 7u);
  EXPECT_EQ(c.job().output_dir(), "runs/one");
  EXPECT_EQ(c.cluster().scheduler_address(), "10.0.0.1:7000");
  EXPECT_EQ(c.cluster().num_servers(), 4);
  EXPECT_EQ(c.cluster().num_workers(), 8);
  EXPECT_EQ(c.cluster().num_partitions(), 128);
  EXPECT_EQ(c.cluster().heartbeat_interval_ms(), 200);
  EXPECT_EQ(c.cluster().heartbeat_timeout_ms(), 2000);
  EXPECT_EQ(c.cluster().rpc_timeout_ms(), 1000);
  EXPECT_EQ(c.cluster().connect_timeout_ms(), 5000);
  EXPECT_EQ(c.cluster().max_chunk_bytes(), 65536);
  EXPECT_EQ(c.cluster().max_retries(), 3);
  EXPECT_EQ(c.model().type(), config::LOGISTIC_REGRESSION);
  EXPECT_EQ(c.model().num_features(), 57u);
  EXPECT_EQ(c.model().hash_bits(), 0);
  EXPECT_EQ(c.model().init(), config::NORMAL);
  EXPECT_FLOAT_EQ(c.model().init_value(), 0.5f);
  EXPECT_FLOAT_EQ(c.model().init_scale(), 0.1f);
  EXPECT_FLOAT_EQ(c.model().l2(), 1e-4f);
  EXPECT_EQ(c.optimizer().type(), config::ADAMW);
  EXPECT_FLOAT_EQ(c.optimizer().learning_rate(), 0.05f);
  EXPECT_FLOAT_EQ(c.optimizer().momentum(), 0.8f);
  EXPECT_TRUE(c.optimizer().nesterov());
  EXPECT_FLOAT_EQ(c.optimizer().beta1(), 0.85f);
  EXPECT_FLOAT_EQ(c.optimizer().beta2(), 0.99f);
  EXPECT_FLOAT_EQ(c.optimizer().epsilon(), 1e-7f);
  EXPECT_FLOAT_EQ(c.optimizer().weight_decay(), 0.001f);
  EXPECT_FLOAT_EQ(c.optimizer().initial_accumulator(), 0.2f);
  EXPECT_EQ(c.data().format(), config::LIBSVM);
  EXPECT_EQ(c.data().train_path(), "data/train.svm");  // not resolved by ParseJobConfig
  EXPECT_EQ(c.data().test_path(), "/abs/test.svm");
  EXPECT_EQ(c.data().shard_size(), 256);
  EXPECT_FALSE(c.data().shuffle());
  EXPECT_FALSE(c.data().dynamic_shards());
  EXPECT_EQ(c.train().epochs(), 5);
  EXPECT_EQ(c.train().batch_size(), 32);
  EXPECT_FALSE(c.train().eval_every_epoch());
  EXPECT_EQ(c.train().progress_interval_ms(), 0);
}

TEST(ParseJobConfig, OmittedFieldsTakeDefaults) {
  absl::StatusOr<config::JobConfig> c = ParseJobConfig(kMinimalYaml, "min.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->cluster().num_partitions(), 64);
  EXPECT_EQ(c->cluster().num_servers(), 2);
  EXPECT_EQ(c->job().mode(), config::BSP);
  EXPECT_EQ(c->job().seed(), 42u);
  EXPECT_EQ(c->optimizer().type(), config::ADAM);
  EXPECT_FLOAT_EQ(c->optimizer().learning_rate(), 0.01f);
  EXPECT_TRUE(c->data().shuffle());
  EXPECT_TRUE(c->data().dynamic_shards());
  EXPECT_EQ(c->data().test_path(), "");
}

TEST(ParseJobConfig, EmptySectionIsAllowed) {
  absl::StatusOr<config::JobConfig> c = ParseJobConfig("job:\ndata: {train_path: t}\n", "x");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->job().name(), "job");
}

TEST(ParseJobConfig, EnumsMatchCaseInsensitively) {
  for (const char* mode : {"bsp", "BSP", "Bsp"}) {
    absl::StatusOr<config::JobConfig> c =
        ParseJobConfig(absl::StrCat("job: {mode: ", mode, "}\n", kMinimalYaml), "x");
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->job().mode(), config::BSP) << mode;
  }
  absl::StatusOr<config::JobConfig> c =
      ParseJobConfig(absl::StrCat("optimizer: {type: AdamW}\n", kMinimalYaml), "x");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->optimizer().type(), config::ADAMW);
}

TEST(ParseJobConfig, UnknownEnumValueListsAllowedNames) {
  const std::string yaml = absl::StrCat(kMinimalYaml, "optimizer:\n  type: adamz\n");
  ExpectParseError(yaml, "type: adamz", "optimizer.type",
                   "unknown value 'adamz', expected one of: sgd, momentum, adagrad, adam, adamw, "
                   "adamax");
  // *_UNSPECIFIED is neither listed nor accepted.
  ExpectParseError(absl::StrCat(kMinimalYaml, "job:\n  mode: mode_unspecified\n"),
                   "mode_unspecified", "job.mode", "expected one of: bsp, ssp, asp");
}

TEST(ParseJobConfig, SyntaxErrorNamesLine) {
  const std::string yaml = "job:\n  name: x\ncluster: [1,\n  num_servers: 2\n";
  absl::StatusOr<config::JobConfig> c = ParseJobConfig(yaml, "job.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("job.yaml:"));
  EXPECT_THAT(c.status().message(), HasSubstr("flow"));  // yaml-cpp's own message

  ExpectParseError("job:\n  name: x\n   mode: bsp\n", "mode: bsp", "", "illegal map value");
}

TEST(ParseJobConfig, UnknownFieldSuggestsClosestName) {
  const std::string yaml =
      absl::StrCat(kMinimalYaml, "optimizer:\n  type: sgd\n  learning_rat: 0.1\n");
  ExpectParseError(yaml, "learning_rat", "optimizer.learning_rat",
                   "unknown field 'learning_rat' in section 'optimizer' (did you mean "
                   "'learning_rate'?)");
}

TEST(ParseJobConfig, UnknownSectionSuggestsClosestName) {
  const std::string yaml = absl::StrCat(kMinimalYaml, "clustr:\n  num_servers: 2\n");
  ExpectParseError(yaml, "clustr", "clustr", "unknown section 'clustr' (did you mean 'cluster'?)");
}

TEST(ParseJobConfig, UnknownFieldFarFromAnyNameHasNoSuggestion) {
  const std::string yaml = absl::StrCat(kMinimalYaml, "train:\n  completely_different: 1\n");
  absl::StatusOr<config::JobConfig> c = ParseJobConfig(yaml, "job.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(),
              AllOf(HasSubstr("job.yaml:4: train.completely_different: unknown field "
                              "'completely_different' in section 'train'"),
                    Not(HasSubstr("did you mean"))));
}

TEST(ParseJobConfig, WrongScalarTypesAreRejected) {
  ExpectParseError(absl::StrCat(kMinimalYaml, "cluster:\n  num_servers: abc\n"), "abc",
                   "cluster.num_servers", "expected an integer, got 'abc'");
  ExpectParseError(absl::StrCat(kMinimalYaml, "cluster:\n  num_servers: 1.5\n"), "1.5",
                   "cluster.num_servers", "expected an integer, got '1.5'");
  ExpectParseError(absl::StrCat(kMinimalYaml, "cluster:\n  num_workers: 3000000000\n"),
                   "3000000000", "cluster.num_workers", "out of range for int32");
  ExpectParseError(absl::StrCat(kMinimalYaml, "job:\n  seed: -1\n"), "seed", "job.seed",
                   "must not be negative, got '-1'");
  ExpectParseError(absl::StrCat(kMinimalYaml, "job:\n  seed: 18446744073709551616\n"), "seed",
                   "job.seed", "out of range for uint64");
  ExpectParseError(absl::StrCat(kMinimalYaml, "optimizer:\n  beta1: fast\n"), "beta1",
                   "optimizer.beta1", "expected a number, got 'fast'");
  ExpectParseError(absl::StrCat(kMinimalYaml, "optimizer:\n  beta1: 1e99\n"), "beta1",
                   "optimizer.beta1", "out of range for float");
  ExpectParseError(absl::StrCat(kMinimalYaml, "optimizer:\n  nesterov: maybe\n"), "nesterov",
                   "optimizer.nesterov", "expected a boolean (true/false/yes/no), got 'maybe'");
  ExpectParseError(absl::StrCat(kMinimalYaml, "cluster:\n  num_servers:\n"), "num_servers",
                   "cluster.num_servers", "missing value, expected an integer");
}

TEST(ParseJobConfig, MappingWhereScalarExpectedAndViceVersa) {
  ExpectParseError(absl::StrCat(kMinimalYaml, "cluster:\n  num_servers:\n    count: 2\n"),
                   "num_servers", "cluster.num_servers", "expected an integer, got a mapping");
  ExpectParseError(absl::StrCat(kMinimalYaml, "job:\n  name: [a, b]\n"), "name: [a", "job.name",
                   "expected a string, got a sequence");
  ExpectParseError(absl::StrCat(kMinimalYaml, "cluster: 4\n"), "cluster: 4", "cluster",
                   "expected a mapping of fields, got '4'");
}

TEST(ParseJobConfig, DuplicateKeyIsRejected) {
  const std::string yaml = absl::StrCat(
      kMinimalYaml, "optimizer:\n  learning_rate: 0.1\n  beta1: 0.5\n", "  learning_rate: 0.2\n");
  ExpectParseError(yaml, "learning_rate: 0.2", "optimizer.learning_rate",
                   absl::StrCat("duplicate key 'learning_rate' (first at line ",
                                LineOf(yaml, "learning_rate: 0.1"), ")"));
  const std::string dup_section = absl::StrCat(kMinimalYaml, "data: {shuffle: false}\n");
  ExpectParseError(dup_section, "data: {shuffle", "data", "duplicate key 'data' (first at line 1)");
}

TEST(ParseJobConfig, EmptyOrNonMappingDocumentIsRejected) {
  for (const char* text : {"", "# nothing but a comment\n", "---\n"}) {
    absl::StatusOr<config::JobConfig> c = ParseJobConfig(text, "empty.yaml");
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(c.status().message(), HasSubstr("empty.yaml: config is empty"));
  }
  ExpectParseError("- job\n- cluster\n", "- job", "", "got a sequence");
  ExpectParseError("just a string\n", "just", "", "got 'just a string'");
}

TEST(ParseJobConfig, RangeErrorNamesLineOfField) {
  const std::string yaml =
      absl::StrCat(kMinimalYaml, "cluster:\n  num_workers: 3\n  num_servers: 0\n");
  ExpectParseError(yaml, "num_servers: 0", "cluster.num_servers", "must be >= 1, got 0");
  ExpectParseError(absl::StrCat("optimizer:\n  momentum: 1.5\n", kMinimalYaml), "momentum",
                   "optimizer.momentum", "must be <= 1, got 1.5");
  ExpectParseError(absl::StrCat(kMinimalYaml, "model:\n  hash_bits: 41\n"), "hash_bits",
                   "model.hash_bits", "must be <= 40, got 41");
}

TEST(ParseJobConfig, CrossFieldChecks) {
  ExpectParseError(absl::StrCat(kMinimalYaml, "cluster:\n  heartbeat_interval_ms: 500\n",
                                "  heartbeat_timeout_ms: 500\n"),
                   "heartbeat_timeout_ms", "cluster.heartbeat_timeout_ms",
                   "must be at least 3 times cluster.heartbeat_interval_ms (500), got 500");
  // Only the interval written: it is the one blamed.
  ExpectParseError(absl::StrCat(kMinimalYaml, "cluster:\n  heartbeat_interval_ms: 2000\n"),
                   "heartbeat_interval_ms", "cluster.heartbeat_interval_ms",
                   "must be at most a third of cluster.heartbeat_timeout_ms (5000), got 2000");
  // The etcd coordinator: its endpoints, a lease the members outwait,
  // standbys only with it, as host:port.
  ExpectParseError(absl::StrCat(kMinimalYaml, "cluster:\n  coordinator: etcd\n"), "coordinator",
                   "cluster.etcd_endpoints", "required with cluster.coordinator: etcd");
  ExpectParseError(absl::StrCat(kMinimalYaml,
                                "cluster:\n  coordinator: etcd\n  etcd_endpoints: e:2379\n"
                                "  etcd_lease_seconds: 40\n"),
                   "etcd_lease_seconds", "cluster.etcd_lease_seconds",
                   "must be at most half of cluster.scheduler_timeout_ms (60000 ms)");
  ExpectParseError(absl::StrCat(kMinimalYaml, "cluster:\n  scheduler_standbys: [b:7000]\n"),
                   "scheduler_standbys", "cluster.scheduler_standbys",
                   "need cluster.coordinator: etcd");
  ExpectParseError(absl::StrCat(kMinimalYaml,
                                "cluster:\n  coordinator: etcd\n  etcd_endpoints: e:2379\n"
                                "  scheduler_standbys:\n    - b:7000\n    - b7000\n"),
                   "b7000", "cluster.scheduler_standbys[1]", "'b7000' is not host:port");
  ExpectParseError(absl::StrCat(kMinimalYaml,
                                "cluster:\n  coordinator: etcd\n  etcd_endpoints: e:2379\n"
                                "  scheduler_standbys: [b:0]\n"),
                   "scheduler_standbys", "cluster.scheduler_standbys[0]",
                   "has port 0: members dial a standby at a fixed port");
  ExpectParseError(absl::StrCat(kMinimalYaml,
                                "cluster:\n  coordinator: etcd\n"
                                "  etcd_endpoints: http://e:2379, https://f:2379\n"),
                   "etcd_endpoints", "cluster.etcd_endpoints",
                   "'https://f:2379' is not host:port of an etcd client endpoint");
  ExpectParseError(absl::StrCat(kMinimalYaml, "cluster:\n  coordinator: zookeeper\n"),
                   "coordinator", "cluster.coordinator", "expected one of: file, etcd");
  {
    auto etcd =
        ParseJobConfig(absl::StrCat(kMinimalYaml,
                                    "cluster:\n  coordinator: etcd\n  etcd_endpoints: e:2379\n"
                                    "  scheduler_standbys: [b:7000]\n"),
                       "job.yaml");
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    EXPECT_EQ(etcd->cluster().coordinator(), config::ETCD);
    EXPECT_EQ(etcd->cluster().etcd_lease_seconds(), 5);
    EXPECT_EQ(etcd->cluster().etcd_prefix(), "/ps/");
  }
  // train_path missing: the data section's line, if there is one.
  ExpectParseError("job:\n  name: x\ndata:\n  shuffle: true\n", "data:", "data.train_path",
                   "required");
  absl::StatusOr<config::JobConfig> c = ParseJobConfig("job:\n  name: x\n", "nodata.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "nodata.yaml: data.train_path: required");
}

TEST(ParseJobConfig, OverridesApplyAfterFile) {
  const std::string yaml = absl::StrCat(kMinimalYaml, "optimizer:\n  learning_rate: 0.1\n");
  absl::StatusOr<config::JobConfig> c = ParseJobConfig(
      yaml, "job.yaml",
      {"optimizer.learning_rate=0.5", "job.mode=SSP", "cluster.num_servers = 7",
       "job.name=\"my job: two\"", "data.test_path=", "optimizer={type: sgd, momentum: 0.5}"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FLOAT_EQ(c->optimizer().learning_rate(), 0.5f);  // override beats file
  EXPECT_EQ(c->job().mode(), config::SSP);
  EXPECT_EQ(c->cluster().num_servers(), 7);
  EXPECT_EQ(c->job().name(), "my job: two");
  EXPECT_TRUE(c->data().has_test_path());
  EXPECT_EQ(c->data().test_path(), "");
  EXPECT_EQ(c->optimizer().type(), config::SGD);
  EXPECT_FLOAT_EQ(c->optimizer().momentum(), 0.5f);

  // Later overrides win over earlier ones.
  c = ParseJobConfig(kMinimalYaml, "job.yaml", {"train.epochs=3", "train.epochs=4"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->train().epochs(), 4);
}

void ExpectOverrideError(const std::string& assignment, const std::string& path,
                         const std::string& what) {
  SCOPED_TRACE(assignment);
  absl::StatusOr<config::JobConfig> c = ParseJobConfig(kMinimalYaml, "job.yaml", {assignment});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string expected_prefix = path.empty()
                                          ? absl::StrCat("--set ", assignment, ": ")
                                          : absl::StrCat("--set ", assignment, ": ", path, ": ");
  EXPECT_THAT(c.status().message(), HasSubstr(expected_prefix));
  EXPECT_THAT(c.status().message(), HasSubstr(what));
  EXPECT_THAT(c.status().message(), Not(HasSubstr("job.yaml")));
}

TEST(ParseJobConfig, OverrideErrorsNameTheOverride) {
  ExpectOverrideError("optimizer.learning_rat=0.1", "optimizer.learning_rat",
                      "unknown field 'learning_rat' in section 'optimizer' (did you mean "
                      "'learning_rate'?)");
  ExpectOverrideError("optimiser.learning_rate=0.1", "optimiser",
                      "unknown section 'optimiser' (did you mean 'optimizer'?)");
  ExpectOverrideError("cluster.num_servers=many", "cluster.num_servers",
                      "expected an integer, got 'many'");
  ExpectOverrideError("job.name.first=x", "job.name.first", "'job.name' is not a section");
  ExpectOverrideError("job.mode", "", "expected section.field=value");
  ExpectOverrideError("=3", "", "expected section.field=value");
  ExpectOverrideError("job.name=[unclosed", "job.name", "invalid value");
  // Range errors found after parsing name the override that set the value.
  ExpectOverrideError("cluster.num_partitions=0", "cluster.num_partitions", "must be >= 1, got 0");
}

TEST(ApplyOverride, SetsOneField) {
  config::JobConfig c;
  ASSERT_TRUE(ApplyOverride("train.batch_size=128", &c).ok());
  EXPECT_EQ(c.train().batch_size(), 128);
  ASSERT_TRUE(ApplyOverride("model.init=Uniform", &c).ok());
  EXPECT_EQ(c.model().init(), config::UNIFORM);
  ASSERT_TRUE(ApplyOverride("job.seed=18446744073709551615", &c).ok());
  EXPECT_EQ(c.job().seed(), std::numeric_limits<uint64_t>::max());
}

TEST(ApplyOverride, BadPathLeavesConfigUnchanged) {
  config::JobConfig c;
  absl::Status status = ApplyOverride("cluster.nm_servers=3", &c);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "--set cluster.nm_servers=3: cluster.nm_servers: unknown field 'nm_servers' in "
            "section 'cluster' (did you mean 'num_servers'?)");
  EXPECT_FALSE(c.has_cluster());
}

TEST(ValidateRanges, ChecksEveryNumericField) {
  config::JobConfig c;
  EXPECT_TRUE(ValidateRanges(c, "cfg").ok());
  c.mutable_optimizer()->set_learning_rate(-0.5f);
  EXPECT_EQ(ValidateRanges(c, "cfg").message(),
            "cfg: optimizer.learning_rate: must be >= 0, got -0.5");
  c.mutable_optimizer()->set_learning_rate(0.5f);
  c.mutable_cluster()->set_max_chunk_bytes(268435457);
  EXPECT_EQ(ValidateRanges(c, "cfg").message(),
            "cfg: cluster.max_chunk_bytes: must be <= 268435456, got 268435457");
}

TEST(ValidateJobConfig, RequiresTrainPath) {
  config::JobConfig c;
  EXPECT_EQ(ValidateJobConfig(c, "cfg").message(), "cfg: data.train_path: required");
  c.mutable_data()->set_train_path("t");
  EXPECT_TRUE(ValidateJobConfig(c, "cfg").ok());
}

TEST(JobConfigToYaml, RoundTripsThroughParse) {
  absl::StatusOr<config::JobConfig> original = ParseJobConfig(kFullYaml, "full.yaml");
  ASSERT_TRUE(original.ok()) << original.status();
  // Values that are hard to print faithfully.
  original->mutable_job()->set_name("a: b # not a comment \"quoted\"\n");
  original->mutable_job()->set_seed(std::numeric_limits<uint64_t>::max());
  original->mutable_optimizer()->set_learning_rate(0.1f);
  original->mutable_optimizer()->set_epsilon(1e-8f);
  original->mutable_model()->set_init_value(-3.4028235e38f);

  const std::string yaml = JobConfigToYaml(*original);
  absl::StatusOr<config::JobConfig> reparsed = ParseJobConfig(yaml, "resolved.yaml");
  ASSERT_TRUE(reparsed.ok()) << reparsed.status() << "\n" << yaml;
  // Equivalent: fields the file left out come back set to their defaults.
  EXPECT_TRUE(MessageDifferencer::Equivalent(*original, *reparsed)) << yaml;
}

TEST(JobConfigToYaml, WritesDefaultsToo) {
  absl::StatusOr<config::JobConfig> minimal = ParseJobConfig(kMinimalYaml, "min.yaml");
  ASSERT_TRUE(minimal.ok()) << minimal.status();
  const std::string yaml = JobConfigToYaml(*minimal);
  EXPECT_THAT(yaml, HasSubstr("num_partitions: 64"));
  EXPECT_THAT(yaml, HasSubstr("mode: bsp"));
  EXPECT_THAT(yaml, HasSubstr("type: adam\n"));

  absl::StatusOr<config::JobConfig> reparsed = ParseJobConfig(yaml, "resolved.yaml");
  ASSERT_TRUE(reparsed.ok()) << reparsed.status() << "\n" << yaml;
  // Every field is now set explicitly, with the default values.
  EXPECT_TRUE(reparsed->cluster().has_num_partitions());
  EXPECT_TRUE(MessageDifferencer::Equivalent(*minimal, *reparsed)) << yaml;
  // And printing is a fixed point.
  EXPECT_EQ(JobConfigToYaml(*reparsed), yaml);
}

TEST(ResolveRelativePaths, JoinsOnlyRelativePaths) {
  config::JobConfig c;
  c.mutable_data()->set_train_path("data/../train.svm");
  c.mutable_data()->set_test_path("/abs/test.svm");
  ResolveRelativePaths("/jobs/one", &c);
  EXPECT_EQ(c.data().train_path(), "/jobs/one/train.svm");
  EXPECT_EQ(c.data().test_path(), "/abs/test.svm");

  config::JobConfig untouched;
  ResolveRelativePaths("/jobs/one", &untouched);
  EXPECT_FALSE(untouched.has_data());
  config::JobConfig no_base;
  no_base.mutable_data()->set_train_path("t.svm");
  ResolveRelativePaths("", &no_base);
  EXPECT_EQ(no_base.data().train_path(), "t.svm");
}

class LoadJobConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("config_test_", ::testing::UnitTest::GetInstance()->random_seed(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(LoadJobConfigTest, LoadsFileAndResolvesPathsAgainstItsDirectory) {
  const std::string path = Write("job.yaml", kFullYaml);
  absl::StatusOr<config::JobConfig> c = LoadJobConfig(path, {"data.test_path=rel/test.svm"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->job().name(), "spambase-lr");
  EXPECT_EQ(c->data().train_path(), (dir_ / "data/train.svm").string());
  // Paths from overrides are kept as given (relative to the working directory).
  EXPECT_EQ(c->data().test_path(), "rel/test.svm");
}

TEST_F(LoadJobConfigTest, ErrorsNameTheFileAndLine) {
  const std::string yaml = absl::StrCat(kMinimalYaml, "train:\n  epochs: 0\n");
  const std::string path = Write("bad.yaml", yaml);
  absl::StatusOr<config::JobConfig> c = LoadJobConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            absl::StrCat(path, ":", LineOf(yaml, "epochs"), ": train.epochs: must be >= 1, got 0"));
}

TEST_F(LoadJobConfigTest, MissingFileIsNotFound) {
  const std::string path = (dir_ / "nope.yaml").string();
  absl::StatusOr<config::JobConfig> c = LoadJobConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c.status().message(),
            absl::StrCat("cannot read config file '", path, "': No such file or directory"));
}

TEST_F(LoadJobConfigTest, EmptyFileIsRejected) {
  const std::string path = Write("empty.yaml", "");
  absl::StatusOr<config::JobConfig> c = LoadJobConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr(absl::StrCat(path, ": config is empty")));
}

}  // namespace
}  // namespace ps

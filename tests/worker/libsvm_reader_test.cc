#include "worker/libsvm_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "tests/test_util.h"

namespace ps {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Source directory of the project, for the shipped data files.
std::string SourceDir() { return ps::testing::SourceDir(); }

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

absl::Status ParseError(std::string_view text, const LibsvmOptions& options = {}) {
  return ParseLibsvm(text, "train.libsvm", options).status();
}

TEST(ParseLibsvm, BuildsCsrArrays) {
  constexpr std::string_view kText =
      "# header comment\n"
      "1 1:0.5 3:2 10:-1.25\n"
      "\n"
      "-1 2:4e-1   # trailing comment\n"
      "  \t\n"
      "+1\n"  // A row with no features.
      "0 7:1\r\n";
  absl::StatusOr<Dataset> data = ParseLibsvm(kText, "mem");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->rows(), 4u);
  EXPECT_THAT(data->labels, ElementsAre(1.0f, 0.0f, 1.0f, 0.0f));
  EXPECT_THAT(data->row_offsets, ElementsAre(0u, 3u, 4u, 4u, 5u));
  EXPECT_THAT(data->indices, ElementsAre(1u, 3u, 10u, 2u, 7u));
  EXPECT_THAT(data->values, ElementsAre(0.5f, 2.0f, -1.25f, 0.4f, 1.0f));
  EXPECT_EQ(data->max_index, 10u);
}

TEST(ParseLibsvm, LastLineWithoutNewline) {
  absl::StatusOr<Dataset> data = ParseLibsvm("0 1:1\n1 2:2", "mem");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->rows(), 2u);
  EXPECT_THAT(data->indices, ElementsAre(1u, 2u));
}

TEST(ParseLibsvm, NonBinaryLabelsKeptWhenAllowed) {
  LibsvmOptions options;
  options.binary_labels = false;
  absl::StatusOr<Dataset> data = ParseLibsvm("2.5 1:1\n-3 2:1\n", "mem", options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_THAT(data->labels, ElementsAre(2.5f, -3.0f));
}

TEST(ParseLibsvm, IndexAtDeclaredMaximumIsAccepted) {
  LibsvmOptions options;
  options.max_feature_index = 57;
  EXPECT_TRUE(ParseLibsvm("1 57:1\n", "mem", options).ok());
}

TEST(ParseLibsvm, BadFeatureNamesFileAndLine) {
  absl::Status s = ParseError("0 1:1\n1 abc:1\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "train.libsvm:2: bad feature 'abc:1' (expected index:value)");
  EXPECT_THAT(Msg(ParseError("1 5\n")), StartsWith("train.libsvm:1: bad feature '5'"));
  EXPECT_THAT(Msg(ParseError("1 5:\n")), StartsWith("train.libsvm:1: bad feature '5:'"));
  EXPECT_THAT(Msg(ParseError("1 -5:1\n")), StartsWith("train.libsvm:1: bad feature '-5:1'"));
  EXPECT_THAT(Msg(ParseError("1 5:1x\n")), StartsWith("train.libsvm:1: bad feature '5:1x'"));
}

TEST(ParseLibsvm, LineNumbersCountBlankAndCommentLines) {
  EXPECT_THAT(Msg(ParseError("# c\n\n0 1:1\n\n1 2:zz\n")), StartsWith("train.libsvm:5: "));
}

TEST(ParseLibsvm, LabelNotBinary) {
  absl::Status s = ParseError("0 1:1\n1 1:1\n2 1:1\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s), StartsWith("train.libsvm:3: label '2' is not 0/1"));
}

TEST(ParseLibsvm, BadLabel) {
  EXPECT_THAT(Msg(ParseError("0 1:1\n1:1 2:1\n")), StartsWith("train.libsvm:2: bad label '1:1'"));
  EXPECT_THAT(Msg(ParseError("nan 1:1\n")), StartsWith("train.libsvm:1: bad label 'nan'"));
}

TEST(ParseLibsvm, IndexAboveDeclaredMaximum) {
  LibsvmOptions options;
  options.max_feature_index = 57;
  absl::Status s = ParseError("0 1:1\n0 1:1\n1 1:1\n1 1:1\n0 3:1 90:2\n", options);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "train.libsvm:5: feature index 90 exceeds the declared maximum 57");
}

TEST(ParseLibsvm, NonFiniteValues) {
  for (std::string_view bad : {"nan", "inf", "-inf", "NaN", "infinity"}) {
    const std::string text = "0 1:1\n1 4:" + std::string(bad) + "\n";
    absl::Status s = ParseError(text);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(Msg(s), StartsWith("train.libsvm:2: ")) << bad;
    EXPECT_THAT(Msg(s), HasSubstr("value '" + std::string(bad) + "'"));
  }
}

TEST(ParseLibsvm, IndicesMustBeStrictlyIncreasing) {
  EXPECT_THAT(Msg(ParseError("0 1:1 3:1 2:1\n")),
              StartsWith("train.libsvm:1: feature index 2 is not greater than "
                         "the previous index 3"));
  EXPECT_THAT(Msg(ParseError("0 1:1\n0 3:1 3:2\n")),
              StartsWith("train.libsvm:2: feature index 3 is not greater"));
}

TEST(ParseLibsvm, QidRejected) {
  absl::Status s = ParseError("0 1:1\n1 qid:3 1:1\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s), StartsWith("train.libsvm:2: qid tokens are not supported"));
}

TEST(ParseLibsvm, NoExamples) {
  for (std::string_view text : {"", "\n\n", "# only a comment\n  \n"}) {
    absl::Status s = ParseError(text);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(), "train.libsvm: no examples");
  }
}

TEST(ReadLibsvm, MissingFileIsNotFound) {
  const std::string path = "/nonexistent/dir/train.libsvm";
  absl::StatusOr<Dataset> data = ReadLibsvm(path);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(data.status().message(),
            "cannot open data file '/nonexistent/dir/train.libsvm': No such "
            "file or directory");
}

TEST(ReadLibsvm, ErrorsNameThePath) {
  char path[] = "/tmp/libsvm_reader_test_XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text = "1 1:1\n0 2:x\n";
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  absl::Status s = ReadLibsvm(path).status();
  ::unlink(path);
  EXPECT_THAT(Msg(s), StartsWith(std::string(path) + ":2: bad feature"));
}

// Counts from data/spambase/README.txt: 3680 train rows, 57 features,
// class_counts_train {'0': 2230, '1': 1450}.
TEST(ReadLibsvm, ReadsSpambaseTrain) {
  LibsvmOptions options;
  options.max_feature_index = 57;
  absl::StatusOr<Dataset> data = ReadLibsvm(SourceDir() + "/data/spambase/train.libsvm", options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->rows(), 3680u);
  EXPECT_EQ(data->max_index, 57u);
  ASSERT_EQ(data->row_offsets.size(), data->rows() + 1);
  EXPECT_EQ(data->row_offsets.back(), data->indices.size());
  EXPECT_EQ(data->indices.size(), data->values.size());
  size_t zeros = 0, ones = 0;
  for (float label : data->labels) (label == 0.0f ? zeros : ones)++;
  EXPECT_EQ(zeros, 2230u);
  EXPECT_EQ(ones, 1450u);
}

}  // namespace
}  // namespace ps

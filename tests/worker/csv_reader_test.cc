#include "worker/csv_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace ps {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

CsvOptions Label(std::string column) {
  CsvOptions options;
  options.label_column = std::move(column);
  return options;
}

absl::Status ParseError(std::string_view text, const CsvOptions& options = Label("y")) {
  return ParseCsv(text, "train.csv", options).status();
}

TEST(ParseCsv, BuildsDenseCsrRowsWithOneBasedIndices) {
  absl::StatusOr<Dataset> data = ParseCsv(
      "a,y,b,c\n"
      "1.5,1,0,-2\n"
      "0,0,3e2,+4\n",
      "mem", Label("y"));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->rows(), 2u);
  EXPECT_THAT(data->labels, ElementsAre(1.0f, 0.0f));
  EXPECT_THAT(data->row_offsets, ElementsAre(0u, 3u, 6u));
  // Zeros are stored: CSV rows are dense.
  EXPECT_THAT(data->indices, ElementsAre(1u, 2u, 3u, 1u, 2u, 3u));
  EXPECT_THAT(data->values, ElementsAre(1.5f, 0.0f, -2.0f, 0.0f, 300.0f, 4.0f));
  EXPECT_EQ(data->max_index, 3u);
  EXPECT_THAT(data->feature_names, ElementsAre("a", "b", "c"));
}

TEST(ParseCsv, MissingCellsBecomeNaN) {
  absl::StatusOr<Dataset> data = ParseCsv(
      "y,a,b,c,d,e,f\n"
      "0,,NA,NaN,?,na,1\n",
      "mem", Label("y"));
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->values.size(), 6u);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(std::isnan(data->values[i])) << i;
  EXPECT_EQ(data->values[5], 1.0f);
  EXPECT_THAT(data->indices, ElementsAre(1u, 2u, 3u, 4u, 5u, 6u));
}

TEST(ParseCsv, QuotedFields) {
  absl::StatusOr<Dataset> data = ParseCsv(
      "\"x,1\",\"say \"\"hi\"\"\",\"y\"\n"
      "\"2\", 3 ,1\r\n"
      "\"\",\"4\" ,0\r\n",
      "mem", Label("y"));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_THAT(data->feature_names, ElementsAre("x,1", "say \"hi\""));
  EXPECT_THAT(data->labels, ElementsAre(1.0f, 0.0f));
  ASSERT_EQ(data->values.size(), 4u);
  EXPECT_EQ(data->values[0], 2.0f);
  EXPECT_EQ(data->values[1], 3.0f);
  EXPECT_TRUE(std::isnan(data->values[2]));
  EXPECT_EQ(data->values[3], 4.0f);
}

TEST(ParseCsv, QuotedNewlineKeepsLineNumbers) {
  // The header's second name spans lines 1-2, so the bad row is on line 4.
  absl::Status s = ParseError("\"multi\nline\",y\n1,0\nabc,1\n");
  EXPECT_EQ(s.message(), "train.csv:4: column 'multi\nline': 'abc' is not a number");
}

TEST(ParseCsv, OtherDelimiterBlankLinesBomAndNoTrailingNewline) {
  CsvOptions options = Label("label");
  options.delimiter = ';';
  absl::StatusOr<Dataset> data = ParseCsv(
      "\xEF\xBB\xBF"
      "f;label\n\n1,5;1\n  \n2;0",
      "mem", options);
  // "1,5" is not a number with ';' as the delimiter.
  EXPECT_EQ(data.status().message(), "mem:3: column 'f': '1,5' is not a number");
  data = ParseCsv(
      "\xEF\xBB\xBF"
      "f;label\n\n1.5;1\n  \n2;0",
      "mem", options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_THAT(data->feature_names, ElementsAre("f"));
  EXPECT_THAT(data->values, ElementsAre(1.5f, 2.0f));
  EXPECT_THAT(data->labels, ElementsAre(1.0f, 0.0f));
}

TEST(ParseCsv, TabDelimiter) {
  CsvOptions options = Label("y");
  options.delimiter = '\t';
  absl::StatusOr<Dataset> data = ParseCsv("y\ta\tb\n1\t\t2\n", "mem", options);
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->values.size(), 2u);
  EXPECT_TRUE(std::isnan(data->values[0]));
  EXPECT_EQ(data->values[1], 2.0f);
}

TEST(ParseCsv, RaggedRow) {
  absl::Status s = ParseError("a,b,y\n1,2,0\n1,2,3,0\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "train.csv:3: row has 4 cells, the header has 3");
  EXPECT_EQ(Msg(ParseError("a,b,y\n1,0\n")), "train.csv:2: row has 2 cells, the header has 3");
}

TEST(ParseCsv, LabelColumnNotInHeader) {
  absl::Status s = ParseError("a,b,c\n1,2,3\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "train.csv:1: no column 'y' in the header (columns: a, b, c)");
}

TEST(ParseCsv, LongHeaderListIsShortened) {
  std::string header = "c0";
  for (int i = 1; i < 30; ++i) header += ",c" + std::to_string(i);
  EXPECT_THAT(Msg(ParseError(header + "\n")), HasSubstr("c19, ... 10 more)"));
}

TEST(ParseCsv, MissingLabel) {
  for (std::string_view text : {"a,y\n1,\n", "a,y\n1,NA\n", "a,y\n1,?\n"}) {
    EXPECT_EQ(Msg(ParseError(text)), "train.csv:2: missing label (column 'y')") << text;
  }
}

TEST(ParseCsv, NonNumericCells) {
  EXPECT_EQ(Msg(ParseError("age,y\n30,1\nabc,0\n")),
            "train.csv:3: column 'age': 'abc' is not a number");
  EXPECT_EQ(Msg(ParseError("age,y\ninf,0\n")), "train.csv:2: column 'age': 'inf' is not a number");
  EXPECT_EQ(Msg(ParseError("age,y\n1x,0\n")), "train.csv:2: column 'age': '1x' is not a number");
  EXPECT_EQ(Msg(ParseError("age,y\n1,yes\n")),
            "train.csv:2: label column 'y': 'yes' is not a number");
}

TEST(ParseCsv, LabelOutsideClasses) {
  CsvOptions options = Label("y");
  options.num_classes = 3;
  EXPECT_TRUE(ParseCsv("a,y\n1,0\n1,2\n", "mem", options).ok());
  EXPECT_EQ(Msg(ParseError("a,y\n1,0\n1,3\n", options)),
            "train.csv:3: label 3 is outside the 3 classes 0..2");
  EXPECT_EQ(Msg(ParseError("a,y\n1,1.5\n", options)),
            "train.csv:2: label 1.5 is outside the 3 classes 0..2");
  EXPECT_EQ(Msg(ParseError("a,y\n1,-1\n", options)),
            "train.csv:2: label -1 is outside the 3 classes 0..2");
}

TEST(ParseCsv, BinaryLabels) {
  CsvOptions options = Label("y");
  options.binary_labels = true;
  EXPECT_TRUE(ParseCsv("a,y\n1,0\n1,1\n", "mem", options).ok());
  EXPECT_THAT(Msg(ParseError("a,y\n1,0\n1,2\n", options)),
              StartsWith("train.csv:3: label 2 is not 0/1"));
  // Without the option any finite label is kept.
  absl::StatusOr<Dataset> data = ParseCsv("a,y\n1,-2.5\n", "mem", Label("y"));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_THAT(data->labels, ElementsAre(-2.5f));
}

TEST(ParseCsv, DuplicateAndEmptyHeaderNames) {
  EXPECT_EQ(Msg(ParseError("a,y,b,a\n")),
            "train.csv:1: duplicate column name 'a' (columns 1 and 4)");
  EXPECT_EQ(Msg(ParseError("a,,y\n")), "train.csv:1: header column 2 has no name");
}

TEST(ParseCsv, EmptyFileAndHeaderOnly) {
  for (std::string_view text : {"", "\n\n", "  \r\n"}) {
    absl::Status s = ParseError(text);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(), "train.csv: empty file (expected a header row)");
  }
  EXPECT_EQ(Msg(ParseError("a,y\n")), "train.csv: no examples (only a header row)");
}

TEST(ParseCsv, MalformedQuotes) {
  EXPECT_EQ(Msg(ParseError("a,y\n1,0\n\"2,1\n")),
            "train.csv:3: quoted field opened on line 3 is never closed");
  EXPECT_THAT(Msg(ParseError("a,y\n\"1\"x,0\n")),
              StartsWith("train.csv:2: unexpected 'x' after a closing quote"));
}

TEST(ParseCsv, BadOptions) {
  EXPECT_EQ(ParseCsv("a,y\n1,0\n", "mem", CsvOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
  CsvOptions options = Label("y");
  options.num_classes = -1;
  EXPECT_EQ(ParseError("a,y\n1,0\n", options).code(), absl::StatusCode::kInvalidArgument);
  options = Label("y");
  options.delimiter = '"';
  EXPECT_EQ(ParseError("a,y\n1,0\n", options).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ReadCsv, ReadsPlainAndGzippedFiles) {
  const std::string text = "x1,x2,y\n0.5,1,1\n2,NA,0\n";
  const std::string plain = testing::TempDir() + "/csv_reader_test_plain.csv";
  FILE* f = std::fopen(plain.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fwrite(text.data(), 1, text.size(), f), text.size());
  std::fclose(f);
  const std::string gzipped = testing::TempDir() + "/csv_reader_test_gzipped.csv";
  gzFile gz = gzopen(gzipped.c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  ASSERT_EQ(gzwrite(gz, text.data(), text.size()), static_cast<int>(text.size()));
  ASSERT_EQ(gzclose(gz), Z_OK);

  for (const std::string& path : {plain, gzipped}) {
    absl::StatusOr<Dataset> data = ReadCsv(path, Label("y"));
    ASSERT_TRUE(data.ok()) << data.status();
    EXPECT_THAT(data->labels, ElementsAre(1.0f, 0.0f));
    EXPECT_THAT(data->indices, ElementsAre(1u, 2u, 1u, 2u));
    EXPECT_THAT(data->feature_names, ElementsAre("x1", "x2"));
    EXPECT_EQ(Msg(ReadCsv(path, Label("label")).status()),
              path + ":1: no column 'label' in the header (columns: x1, x2, y)");
  }
  std::remove(plain.c_str());
  std::remove(gzipped.c_str());
}

TEST(ReadCsv, MissingFileIsNotFound) {
  absl::Status s = ReadCsv("/nonexistent/dir/train.csv", Label("y")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(),
            "cannot open data file '/nonexistent/dir/train.csv': No such file or directory");
}

}  // namespace
}  // namespace ps

#include "common/report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace ps {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

// The text of every <svg>...</svg> element, concatenated.
std::string SvgParts(const std::string& html) {
  std::string svg;
  for (size_t pos = html.find("<svg"); pos != std::string::npos; pos = html.find("<svg", pos)) {
    const size_t end = html.find("</svg>", pos);
    if (end == std::string::npos) break;
    svg += html.substr(pos, end - pos);
    pos = end;
  }
  return svg;
}

ReportSeries Series(std::string name, std::vector<double> x, std::vector<double> y) {
  return ReportSeries{std::move(name), std::move(x), std::move(y)};
}

ReportChart Chart(std::vector<ReportSeries> series, bool square = false) {
  ReportChart chart;
  chart.title = "chart";
  chart.x_label = "epoch";
  chart.y_label = "loss";
  chart.series = std::move(series);
  chart.square = square;
  return chart;
}

// A report like the one a finished logistic-regression job writes.
Report SampleReport() {
  Report r;
  r.title = "spambase-lr";
  r.summary = {{"mode", "BSP"},
               {"workers / servers", "4 / 2"},
               {"wall time", "12.4 s"},
               {"validation accuracy", "0.9294"},
               {"validation AUC", "0.9702"}};
  ReportChart loss;
  loss.title = "Log loss per epoch";
  loss.x_label = "epoch";
  loss.y_label = "log loss";
  ReportSeries train{"train", {}, {}}, validation{"validation", {}, {}};
  for (int e = 1; e <= 20; ++e) {
    train.x.push_back(e);
    train.y.push_back(0.22 + 0.5 * std::exp(-0.3 * e));
    validation.x.push_back(e);
    validation.y.push_back(e == 7 ? kNaN : 0.25 + 0.48 * std::exp(-0.27 * e));
  }
  loss.series = {train, validation};
  ReportChart roc;
  roc.title = "ROC curve (validation)";
  roc.x_label = "false positive rate";
  roc.y_label = "true positive rate";
  roc.square = true;
  ReportSeries curve{"AUC 0.970", {}, {}};
  for (int i = 0; i <= 100; ++i) {
    const double fpr = i / 100.0;
    curve.x.push_back(fpr);
    curve.y.push_back(1 - std::pow(1 - fpr, 12));
  }
  roc.series = {curve};
  r.charts = {loss, roc};
  ReportTable history{
      "Per-epoch history", {"epoch", "train loss", "validation loss", "accuracy"}, {}};
  for (int e = 1; e <= 5; ++e) {
    history.rows.push_back({absl::StrCat(e), absl::StrCat(0.22 + 0.5 * std::exp(-0.3 * e)),
                            absl::StrCat(0.25 + 0.48 * std::exp(-0.27 * e)),
                            absl::StrCat(0.8 + 0.02 * e)});
  }
  ReportTable confusion{"Confusion matrix (threshold 0.5)",
                        {"", "predicted 0", "predicted 1"},
                        {{"actual 0", "532", "26"}, {"actual 1", "39", "324"}}};
  r.tables = {history, confusion};
  r.config_yaml = "job: spambase-lr\nmode: bsp\noptimizer:\n  type: adagrad\n  lr: 0.1\n";
  return r;
}

TEST(RenderReportHtml, IsAnHtml5DocumentWithTheTitle) {
  const std::string html = RenderReportHtml(SampleReport());
  EXPECT_TRUE(html.starts_with("<!doctype html>"));
  EXPECT_THAT(html, HasSubstr("<meta charset=\"utf-8\">"));
  EXPECT_THAT(html, HasSubstr("<h1>spambase-lr</h1>"));
  EXPECT_THAT(html, HasSubstr("<title>spambase-lr"));
  EXPECT_THAT(html, HasSubstr("validation AUC"));
  EXPECT_THAT(html, HasSubstr("</html>"));
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, Not(HasSubstr("http"))) << "no links to fetch anything";
}

TEST(RenderReportHtml, EscapesEveryUserString) {
  const std::string evil = "<b>&\"'";
  const std::string escaped = "&lt;b&gt;&amp;&quot;&#39;";
  Report r;
  r.title = evil;
  r.summary = {{evil, evil}};
  ReportChart chart = Chart({Series(evil, {1, 2}, {3, 4})});
  chart.title = evil;
  chart.x_label = evil;
  chart.y_label = evil;
  r.charts = {chart};
  r.tables = {ReportTable{evil, {evil}, {{evil}}}};
  r.config_yaml = evil;
  const std::string html = RenderReportHtml(r);
  EXPECT_THAT(html, Not(HasSubstr("<b>")));
  EXPECT_THAT(html, Not(HasSubstr("&\"")));
  // Title (<title> and <h1>), summary key and value, chart title (caption and
  // aria-label), both axis labels, legend, two marker tooltips, table title,
  // header, cell, config.
  EXPECT_EQ(Count(html, escaped), 15u);
}

TEST(RenderReportHtml, OneSvgPerChart) {
  Report r = SampleReport();
  EXPECT_EQ(Count(RenderReportHtml(r), "<svg"), 2u);
  r.charts.push_back(Chart({}));
  EXPECT_EQ(Count(RenderReportHtml(r), "<svg"), 3u);
}

TEST(RenderReportHtml, OnePolylinePerNonEmptySeries) {
  Report r;
  r.charts = {Chart({Series("train", {1, 2, 3}, {0.7, 0.5, 0.4}), Series("empty", {}, {}),
                     Series("validation", {1, 2, 3}, {0.8, 0.6, 0.5})})};
  const std::string html = RenderReportHtml(r);
  EXPECT_EQ(Count(html, "<polyline"), 2u);
  // The empty series is still in the legend.
  EXPECT_THAT(html, HasSubstr("empty <span class=\"muted\">(no data)</span>"));
}

TEST(RenderReportHtml, SeriesGetDistinctColors) {
  Report r;
  r.charts = {Chart({Series("a", {1, 2}, {1, 2}), Series("b", {1, 2}, {2, 1})})};
  const std::string html = RenderReportHtml(r);
  EXPECT_THAT(html, HasSubstr("stroke=\"#1f77b4\""));
  EXPECT_THAT(html, HasSubstr("stroke=\"#ff7f0e\""));
}

TEST(RenderReportHtml, SquareChartHasTheDiagonal) {
  Report r;
  r.charts = {Chart({Series("roc", {0, 0.1, 1}, {0, 0.8, 1})}, /*square=*/true)};
  const std::string html = RenderReportHtml(r);
  EXPECT_EQ(Count(html, "<line class=\"diagonal\""), 1u);
  // Both axes run over [0, 1]; the plot area is square (296 x 296).
  EXPECT_THAT(html, HasSubstr("viewBox=\"0 0 382.00 360.00\""));
  EXPECT_THAT(html, HasSubstr(">1.0</text>"));

  r.charts[0].square = false;
  EXPECT_THAT(RenderReportHtml(r), Not(HasSubstr("<line class=\"diagonal\"")));
}

TEST(RenderReportHtml, NonFinitePointsLeaveAGap) {
  Report r;
  r.charts = {Chart({Series("loss", {1, 2, 3, 4, 5, 6}, {0.9, 0.7, kNaN, 0.5, kInf, 0.4}),
                     Series("bad x", {kNaN, 2, 3}, {1, 2, 3})})};
  const std::string html = RenderReportHtml(r);
  const std::string svg = absl::AsciiStrToLower(SvgParts(html));
  EXPECT_THAT(svg, Not(HasSubstr("nan")));
  EXPECT_THAT(svg, Not(HasSubstr("inf")));
  // loss: runs {1,2}, {4}, {6}: one line and two lone markers; bad x: {2,3}.
  EXPECT_EQ(Count(svg, "<polyline"), 2u);
}

TEST(RenderReportHtml, SinglePointIsShown) {
  Report r;
  r.charts = {Chart({Series("one", {3}, {0.25})})};
  const std::string svg = SvgParts(RenderReportHtml(r));
  EXPECT_EQ(Count(svg, "<circle"), 1u);
  EXPECT_THAT(svg, Not(HasSubstr("nan")));
}

TEST(RenderReportHtml, AllEqualValuesAndNoDataAreHandled) {
  Report r;
  r.charts = {Chart({Series("flat", {1, 2, 3}, {0.5, 0.5, 0.5})}),
              Chart({Series("all nan", {1, 2}, {kNaN, kNaN})}), Chart({})};
  const std::string html = RenderReportHtml(r);
  const std::string svg = absl::AsciiStrToLower(SvgParts(html));
  EXPECT_THAT(svg, Not(HasSubstr("nan\"")));
  EXPECT_THAT(svg, Not(HasSubstr("inf")));
  EXPECT_THAT(svg, Not(HasSubstr("nan,")));
  EXPECT_EQ(Count(svg, "<polyline"), 1u);
  EXPECT_EQ(Count(svg, ">no data</text>"), 2u);
}

TEST(RenderReportHtml, MismatchedSizesUseTheCommonPrefix) {
  Report r;
  r.charts = {Chart({Series("s", {1, 2, 3, 4}, {1, 2})})};
  const std::string svg = SvgParts(RenderReportHtml(r));
  EXPECT_EQ(Count(svg, "<circle"), 2u);
}

TEST(RenderReportHtml, TablesHaveHeaderRowsAndPadding) {
  Report r;
  r.tables = {ReportTable{"t", {"a", "b"}, {{"1.5", "x"}, {"only"}}}};
  const std::string html = RenderReportHtml(r);
  EXPECT_THAT(html, HasSubstr("<th>a</th><th>b</th>"));
  EXPECT_THAT(html, HasSubstr("<td class=\"num\">1.5</td><td>x</td>"));
  EXPECT_THAT(html, HasSubstr("<td>only</td><td></td>"));
}

TEST(NiceTicks, UsesOneTwoFiveSteps) {
  for (const auto& [lo, hi] : std::vector<std::pair<double, double>>{
           {0, 0.93}, {1, 20}, {0.2213, 0.7021}, {-3, 1234}, {1e-5, 3e-5}, {17, 17.5}}) {
    const internal::AxisTicks t = internal::NiceTicks(lo, hi, 5);
    ASSERT_GE(t.values.size(), 2u) << lo << " " << hi;
    EXPECT_LE(t.lo, lo);
    EXPECT_GE(t.hi, hi);
    EXPECT_LE(t.values.size(), 13u);
    const double step = t.values[1] - t.values[0];
    const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
    EXPECT_TRUE(std::fabs(mantissa - 1) < 1e-6 || std::fabs(mantissa - 2) < 1e-6 ||
                std::fabs(mantissa - 5) < 1e-6)
        << "step " << step << " for [" << lo << ", " << hi << "]";
    EXPECT_EQ(t.labels.size(), t.values.size());
  }
}

TEST(NiceTicks, LabelsShareOnePrecision) {
  const internal::AxisTicks t = internal::NiceTicks(0, 0.93, 5);
  EXPECT_THAT(t.labels, ::testing::ElementsAre("0.0", "0.2", "0.4", "0.6", "0.8", "1.0"));
  const internal::AxisTicks e = internal::NiceTicks(1, 20, 5);
  EXPECT_THAT(e.labels, ::testing::ElementsAre("0", "5", "10", "15", "20"));
}

TEST(NiceTicks, EqualBoundsAreWidened) {
  const internal::AxisTicks t = internal::NiceTicks(0.693, 0.693, 5);
  EXPECT_LT(t.lo, 0.693);
  EXPECT_GT(t.hi, 0.693);
  const internal::AxisTicks z = internal::NiceTicks(0, 0, 5);
  EXPECT_LT(z.lo, 0);
  EXPECT_GT(z.hi, 0);
  for (const std::string& label : z.labels) EXPECT_NE(label, "-0");
}

// Also leaves a sample in the test temp dir (/tmp by default) to look at.
TEST(WriteReport, WritesTheFileAtomically) {
  const std::string path = ::testing::TempDir() + "report-sample.html";
  std::remove(path.c_str());
  ASSERT_TRUE(WriteReport(path, SampleReport()).ok());
  absl::StatusOr<std::string> contents = ReadWholeFile(path);
  ASSERT_TRUE(contents.ok()) << contents.status();
  EXPECT_EQ(*contents, RenderReportHtml(SampleReport()));
  EXPECT_FALSE(ReadWholeFile(path + ".tmp").ok());
}

TEST(WriteReport, FailsOnAMissingDirectory) {
  const std::string path = ::testing::TempDir() + "no-such-dir-for-report/r.html";
  EXPECT_FALSE(WriteReport(path, SampleReport()).ok());
}

}  // namespace
}  // namespace ps

#include "common/report.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"

namespace ps {
namespace internal {

std::string HtmlEscape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

// The 1-2-5 step closest to `raw` (> 0), rounding as d3's tickIncrement.
double NiceStep(double raw) {
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / power;
  double nice = 1;
  if (f >= std::sqrt(50.0)) {
    nice = 10;
  } else if (f >= std::sqrt(10.0)) {
    nice = 5;
  } else if (f >= std::sqrt(2.0)) {
    nice = 2;
  }
  return nice * power;
}

}  // namespace

AxisTicks NiceTicks(double lo, double hi, int target) {
  target = std::max(target, 1);
  if (lo > hi) std::swap(lo, hi);
  const double magnitude = std::max(std::fabs(lo), std::fabs(hi));
  if (hi - lo <= 1e-12 * magnitude || hi == lo) {
    // All values equal: centre them in a band of +-10% (or +-1 around 0).
    const double pad = magnitude > 0 ? 0.1 * magnitude : 1.0;
    lo -= pad;
    hi += pad;
  }
  AxisTicks t;
  const double range = hi - lo;
  if (!std::isfinite(range)) {  // Near the limits of double: no rounding.
    t.lo = lo;
    t.hi = hi;
    t.values = {lo, hi};
    t.labels = {absl::StrFormat("%.3g", lo), absl::StrFormat("%.3g", hi)};
    return t;
  }
  const double step = NiceStep(range / target);
  const double first = std::floor(lo / step + 1e-9);
  const double last = std::ceil(hi / step - 1e-9);
  const int64_t n = static_cast<int64_t>(last - first);
  for (int64_t i = 0; i <= n; ++i) {
    double v = (first + static_cast<double>(i)) * step;
    if (std::fabs(v) < step * 1e-9) v = 0;  // no "-0"
    t.values.push_back(v);
  }
  // The outer ticks may miss lo/hi by a rounding error; the axis must not.
  t.lo = std::min(t.values.front(), lo);
  t.hi = std::max(t.values.back(), hi);
  const double biggest = std::max(std::fabs(t.lo), std::fabs(t.hi));
  const bool fixed = step >= 1e-4 && biggest < 1e9;
  const int decimals =
      fixed ? std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9))) : 0;
  for (double v : t.values) {
    t.labels.push_back(fixed ? absl::StrFormat("%.*f", decimals, v) : absl::StrFormat("%.3g", v));
  }
  return t;
}

}  // namespace internal

namespace {

using internal::HtmlEscape;

// Chart geometry in SVG user units (CSS pixels at 100% zoom).
constexpr double kChartWidth = 600;
constexpr double kChartHeight = 360;
constexpr double kMarginLeft = 68;
constexpr double kMarginRight = 18;
constexpr double kMarginTop = 14;
constexpr double kMarginBottom = 50;
// A series with at most this many finite points gets a marker on every point.
constexpr size_t kMaxMarkedPoints = 60;

// Tableau 10: distinct, colour-blind friendlier than pure hues.
constexpr std::array<const char*, 10> kPalette = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                                  "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                                  "#bcbd22", "#17becf"};

std::string SeriesColor(size_t i) { return kPalette[i % kPalette.size()]; }
// After the palette is used up, lines are told apart by their dash pattern too.
bool SeriesDashed(size_t i) { return (i / kPalette.size()) % 2 == 1; }

std::string Num(double v) { return absl::StrFormat("%.2f", v); }

bool FinitePoint(const ReportSeries& s, size_t i) {
  return std::isfinite(s.x[i]) && std::isfinite(s.y[i]);
}

size_t PointCount(const ReportSeries& s) { return std::min(s.x.size(), s.y.size()); }

// Maps data coordinates to SVG coordinates inside the plot area.
struct Frame {
  double left, top, width, height;
  internal::AxisTicks x, y;
  double Px(double v) const { return left + (v - x.lo) / (x.hi - x.lo) * width; }
  double Py(double v) const { return top + height - (v - y.lo) / (y.hi - y.lo) * height; }
};

void AppendAxes(const ReportChart& chart, const Frame& f, double svg_height, std::string& out) {
  const double right = f.left + f.width;
  const double bottom = f.top + f.height;
  out += "<g class=\"grid\">";
  for (double v : f.y.values) {
    absl::StrAppend(&out, "<line x1=\"", Num(f.left), "\" y1=\"", Num(f.Py(v)), "\" x2=\"",
                    Num(right), "\" y2=\"", Num(f.Py(v)), "\"/>");
  }
  for (double v : f.x.values) {
    absl::StrAppend(&out, "<line x1=\"", Num(f.Px(v)), "\" y1=\"", Num(f.top), "\" x2=\"",
                    Num(f.Px(v)), "\" y2=\"", Num(bottom), "\"/>");
  }
  out += "</g>\n<g class=\"axis\">";
  absl::StrAppend(&out, "<line x1=\"", Num(f.left), "\" y1=\"", Num(bottom), "\" x2=\"", Num(right),
                  "\" y2=\"", Num(bottom), "\"/>");
  absl::StrAppend(&out, "<line x1=\"", Num(f.left), "\" y1=\"", Num(f.top), "\" x2=\"", Num(f.left),
                  "\" y2=\"", Num(bottom), "\"/>");
  for (size_t i = 0; i < f.x.values.size(); ++i) {
    const double px = f.Px(f.x.values[i]);
    absl::StrAppend(&out, "<line x1=\"", Num(px), "\" y1=\"", Num(bottom), "\" x2=\"", Num(px),
                    "\" y2=\"", Num(bottom + 5), "\"/>");
    absl::StrAppend(&out, "<text class=\"tick\" x=\"", Num(px), "\" y=\"", Num(bottom + 18),
                    "\" text-anchor=\"middle\">", f.x.labels[i], "</text>");
  }
  for (size_t i = 0; i < f.y.values.size(); ++i) {
    const double py = f.Py(f.y.values[i]);
    absl::StrAppend(&out, "<line x1=\"", Num(f.left - 5), "\" y1=\"", Num(py), "\" x2=\"",
                    Num(f.left), "\" y2=\"", Num(py), "\"/>");
    absl::StrAppend(&out, "<text class=\"tick\" x=\"", Num(f.left - 8), "\" y=\"", Num(py + 4),
                    "\" text-anchor=\"end\">", f.y.labels[i], "</text>");
  }
  out += "</g>\n";
  if (!chart.x_label.empty()) {
    absl::StrAppend(&out, "<text class=\"label\" x=\"", Num(f.left + f.width / 2), "\" y=\"",
                    Num(svg_height - 8), "\" text-anchor=\"middle\">", HtmlEscape(chart.x_label),
                    "</text>\n");
  }
  if (!chart.y_label.empty()) {
    const double cx = 16, cy = f.top + f.height / 2;
    absl::StrAppend(&out, "<text class=\"label\" x=\"", Num(cx), "\" y=\"", Num(cy),
                    "\" text-anchor=\"middle\" transform=\"rotate(-90 ", Num(cx), " ", Num(cy),
                    ")\">", HtmlEscape(chart.y_label), "</text>\n");
  }
}

void AppendMarker(const ReportSeries& s, const Frame& f, size_t i, const std::string& color,
                  std::string& out) {
  absl::StrAppend(&out, "<circle cx=\"", Num(f.Px(s.x[i])), "\" cy=\"", Num(f.Py(s.y[i])),
                  "\" r=\"3\" fill=\"", color, "\"><title>", HtmlEscape(s.name), ": (",
                  absl::StrFormat("%.6g", s.x[i]), ", ", absl::StrFormat("%.6g", s.y[i]),
                  ")</title></circle>");
}

// One <polyline> per run of consecutive finite points; a run of one point
// (e.g. a single-point series, or a point between two NaNs) is a marker.
void AppendSeries(const ReportSeries& s, size_t index, const Frame& f, std::string& out) {
  const std::string color = SeriesColor(index);
  const size_t n = PointCount(s);
  size_t finite = 0;
  for (size_t i = 0; i < n; ++i) finite += FinitePoint(s, i) ? 1 : 0;
  if (finite == 0) return;
  const bool mark_all = finite <= kMaxMarkedPoints;
  absl::StrAppend(&out, "<g class=\"series\" stroke=\"", color, "\"",
                  SeriesDashed(index) ? " stroke-dasharray=\"6 4\"" : "", ">");
  size_t i = 0;
  while (i < n) {
    if (!FinitePoint(s, i)) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < n && FinitePoint(s, end)) ++end;
    if (end - i >= 2) {
      out += "<polyline points=\"";
      for (size_t k = i; k < end; ++k) {
        absl::StrAppend(&out, k == i ? "" : " ", Num(f.Px(s.x[k])), ",", Num(f.Py(s.y[k])));
      }
      out += "\"/>";
    }
    if (mark_all || end - i == 1) {
      for (size_t k = i; k < end; ++k) AppendMarker(s, f, k, color, out);
    }
    i = end;
  }
  out += "</g>\n";
}

void AppendChart(const ReportChart& chart, int chart_index, std::string& out) {
  // Data bounds over all finite points.
  double x_min = std::numeric_limits<double>::infinity(), x_max = -x_min;
  double y_min = x_min, y_max = -x_min;
  bool any = false;
  for (const ReportSeries& s : chart.series) {
    for (size_t i = 0; i < PointCount(s); ++i) {
      if (!FinitePoint(s, i)) continue;
      any = true;
      x_min = std::min(x_min, s.x[i]);
      x_max = std::max(x_max, s.x[i]);
      y_min = std::min(y_min, s.y[i]);
      y_max = std::max(y_max, s.y[i]);
    }
  }
  const double plot_height = kChartHeight - kMarginTop - kMarginBottom;
  const double plot_width = chart.square ? plot_height : kChartWidth - kMarginLeft - kMarginRight;
  const double svg_width = kMarginLeft + plot_width + kMarginRight;
  Frame f{kMarginLeft, kMarginTop, plot_width, plot_height, {}, {}};
  if (chart.square || !any) {
    f.x = internal::NiceTicks(0, 1, 5);
    f.y = internal::NiceTicks(0, 1, 5);
  } else {
    f.x = internal::NiceTicks(x_min, x_max, 8);
    f.y = internal::NiceTicks(y_min, y_max, 5);
  }

  absl::StrAppend(&out, "<figure class=\"chart\">\n<figcaption>", HtmlEscape(chart.title),
                  "</figcaption>\n");
  absl::StrAppend(&out, "<svg class=\"plot\" viewBox=\"0 0 ", Num(svg_width), " ",
                  Num(kChartHeight), "\" width=\"", Num(svg_width), "\" height=\"",
                  Num(kChartHeight), "\" role=\"img\" aria-label=\"", HtmlEscape(chart.title),
                  "\">\n");
  // Markers may stick out of the plot area by their radius; lines outside a
  // fixed (square) frame are cut off.
  const std::string clip_id = absl::StrCat("plot-clip-", chart_index);
  absl::StrAppend(&out, "<defs><clipPath id=\"", clip_id, "\"><rect x=\"", Num(f.left - 4),
                  "\" y=\"", Num(f.top - 4), "\" width=\"", Num(f.width + 8), "\" height=\"",
                  Num(f.height + 8), "\"/></clipPath></defs>\n");
  AppendAxes(chart, f, kChartHeight, out);
  if (chart.square) {
    absl::StrAppend(&out, "<line class=\"diagonal\" x1=\"", Num(f.Px(0)), "\" y1=\"", Num(f.Py(0)),
                    "\" x2=\"", Num(f.Px(1)), "\" y2=\"", Num(f.Py(1)), "\"/>\n");
  }
  if (!any) {
    absl::StrAppend(&out, "<text class=\"nodata\" x=\"", Num(f.left + f.width / 2), "\" y=\"",
                    Num(f.top + f.height / 2), "\" text-anchor=\"middle\">no data</text>\n");
  }
  absl::StrAppend(&out, "<g clip-path=\"url(#", clip_id, ")\">\n");
  for (size_t i = 0; i < chart.series.size(); ++i) AppendSeries(chart.series[i], i, f, out);
  out += "</g>\n</svg>\n";

  if (!chart.series.empty()) {
    out += "<div class=\"legend\">";
    for (size_t i = 0; i < chart.series.size(); ++i) {
      const ReportSeries& s = chart.series[i];
      bool empty = true;
      for (size_t k = 0; k < PointCount(s) && empty; ++k) empty = !FinitePoint(s, k);
      absl::StrAppend(&out, "<span class=\"key\"><span class=\"swatch\" style=\"border-top-color:",
                      SeriesColor(i), SeriesDashed(i) ? ";border-top-style:dashed" : "",
                      "\"></span>", HtmlEscape(s.name),
                      empty ? " <span class=\"muted\">(no data)</span>" : "", "</span>");
    }
    out += "</div>\n";
  }
  out += "</figure>\n";
}

bool LooksNumeric(const std::string& cell) {
  double unused;
  std::string s(absl::StripAsciiWhitespace(cell));
  if (!s.empty() && s.back() == '%') s.pop_back();
  return !s.empty() && absl::SimpleAtod(s, &unused);
}

void AppendTable(const ReportTable& table, std::string& out) {
  out += "<section class=\"table\">\n";
  if (!table.title.empty()) absl::StrAppend(&out, "<h2>", HtmlEscape(table.title), "</h2>\n");
  out += "<div class=\"scroll\"><table>\n";
  if (!table.header.empty()) {
    out += "<thead><tr>";
    for (const std::string& h : table.header) absl::StrAppend(&out, "<th>", HtmlEscape(h), "</th>");
    out += "</tr></thead>\n";
  }
  out += "<tbody>\n";
  for (const std::vector<std::string>& row : table.rows) {
    out += "<tr>";
    const size_t columns = std::max(row.size(), table.header.size());
    for (size_t i = 0; i < columns; ++i) {
      const std::string cell = i < row.size() ? row[i] : "";
      absl::StrAppend(&out, LooksNumeric(cell) ? "<td class=\"num\">" : "<td>", HtmlEscape(cell),
                      "</td>");
    }
    out += "</tr>\n";
  }
  if (table.rows.empty()) {
    absl::StrAppend(&out, "<tr><td class=\"muted\" colspan=\"",
                    std::max<size_t>(1, table.header.size()), "\">(no rows)</td></tr>\n");
  }
  out += "</tbody></table></div>\n</section>\n";
}

constexpr char kStyle[] = R"css(
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f5f6f8; color: #1f2430;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 24px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; word-break: break-word; }
.subtitle { color: #667085; margin: 0 0 20px; }
h2 { font-size: 18px; margin: 28px 0 10px; }
.card, figure.chart { background: #fff; border: 1px solid #dde1e7; border-radius: 8px; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 6px 24px;
  margin: 0; padding: 14px 18px; }
dl.summary dt { color: #667085; }
dl.summary dd { margin: 0; font-weight: 600; font-variant-numeric: tabular-nums;
  word-break: break-word; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure.chart { margin: 0; padding: 12px 14px 10px; flex: 1 1 auto; min-width: 0; }
figcaption { font-weight: 600; margin-bottom: 6px; }
svg.plot { display: block; margin: 0 auto; max-width: 100%; height: auto; }
svg.plot .grid line { stroke: #eceef2; }
svg.plot .axis line { stroke: #6b7280; }
svg.plot text { fill: #374151; }
svg.plot text.tick { font-size: 12px; font-variant-numeric: tabular-nums; }
svg.plot text.label { font-size: 13px; }
svg.plot text.nodata { font-size: 14px; fill: #98a2b3; }
svg.plot .diagonal { stroke: #98a2b3; stroke-dasharray: 5 4; }
svg.plot .series polyline { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
svg.plot .series circle { stroke: #fff; stroke-width: 1; stroke-dasharray: none; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 18px; justify-content: center; font-size: 13px;
  margin-top: 4px; }
.legend .key { display: inline-flex; align-items: center; gap: 6px; word-break: break-word; }
.legend .swatch { display: inline-block; width: 22px; height: 0; border-top: 3px solid; }
.muted { color: #98a2b3; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; background: #fff; font-size: 14px; }
th, td { border: 1px solid #d0d5dd; padding: 5px 12px; text-align: left; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; }
tbody tr:nth-child(even) td { background: #fafbfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre.config { background: #fff; border: 1px solid #dde1e7; border-radius: 8px; padding: 14px 16px;
  overflow-x: auto; font: 13px/1.5 ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; }
)css";

}  // namespace

std::string RenderReportHtml(const Report& report) {
  const std::string title = HtmlEscape(report.title);
  std::string out;
  absl::StrAppend(&out,
                  "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                  "<title>",
                  title, " \u2014 training report</title>\n<style>", kStyle,
                  "</style>\n</head>\n<body>\n<main>\n");
  absl::StrAppend(&out, "<h1>", title, "</h1>\n<p class=\"subtitle\">Training report</p>\n");
  if (!report.summary.empty()) {
    out += "<dl class=\"summary card\">\n";
    for (const auto& [key, value] : report.summary) {
      absl::StrAppend(&out, "<dt>", HtmlEscape(key), "</dt><dd>", HtmlEscape(value), "</dd>\n");
    }
    out += "</dl>\n";
  }
  if (!report.charts.empty()) {
    out += "<h2>Charts</h2>\n<div class=\"charts\">\n";
    for (size_t i = 0; i < report.charts.size(); ++i) {
      AppendChart(report.charts[i], static_cast<int>(i), out);
    }
    out += "</div>\n";
  }
  for (const ReportTable& table : report.tables) AppendTable(table, out);
  if (!report.config_yaml.empty()) {
    absl::StrAppend(&out, "<h2>Configuration</h2>\n<pre class=\"config\">",
                    HtmlEscape(report.config_yaml), "</pre>\n");
  }
  out += "</main>\n</body>\n</html>\n";
  return out;
}

absl::Status WriteReport(const std::string& path, const Report& report) {
  return WriteFileAtomically(path, RenderReportHtml(report));
}

}  // namespace ps

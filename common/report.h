// A self-contained HTML report of a training job: a summary, charts (learning
// curves, ROC curve), tables and the job's config, in one file that reads well
// when opened directly in a browser. No scripts and no network: charts are
// inline SVG, styling is an inline <style> sheet, tooltips are SVG <title>s.
//
// Every user-provided string (titles, labels, series names, cells, config) is
// HTML-escaped. Non-finite chart points (NaN, +-inf) are skipped and leave a
// gap in their line.
//
// Thread-safety: the functions are pure apart from the file WriteReport
// writes; they may be called concurrently (on different paths).
// Ownership: the Report is borrowed for the duration of the call only.
#ifndef PS_COMMON_REPORT_H_
#define PS_COMMON_REPORT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace ps {

// One line on a chart: point i is (x[i], y[i]). If the sizes differ the extra
// values of the longer vector are ignored.
struct ReportSeries {
  std::string name;
  std::vector<double> x;
  std::vector<double> y;
};

struct ReportChart {
  std::string title, x_label, y_label;
  std::vector<ReportSeries> series;
  // ROC style: both axes fixed to [0,1], a square plot area and a dashed
  // diagonal (the chance line).
  bool square = false;
};

struct ReportTable {
  std::string title;
  std::vector<std::string> header;
  // Rows shorter than the header are padded with empty cells.
  std::vector<std::vector<std::string>> rows;
};

struct Report {
  std::string title;  // e.g. "spambase-lr"
  // Key/value lines at the top (mode, workers, wall time, final metrics...).
  std::vector<std::pair<std::string, std::string>> summary;
  std::vector<ReportChart> charts;  // one <svg> each, in order
  std::vector<ReportTable> tables;  // e.g. per-epoch history, confusion matrix
  std::string config_yaml;          // shown verbatim (escaped) at the end; omitted if empty
};

// Returns a complete HTML5 document (UTF-8) for `report`.
std::string RenderReportHtml(const Report& report);

// Renders `report` and writes it to `path` atomically (writes path + ".tmp",
// then renames). Returns Internal if the file cannot be written.
absl::Status WriteReport(const std::string& path, const Report& report);

namespace internal {

// `s` with & < > " ' replaced by character references.
std::string HtmlEscape(const std::string& s);

// Axis ticks at round numbers (1, 2 or 5 times a power of ten) covering
// [lo, hi]: the axis runs from first to last tick.
struct AxisTicks {
  double lo = 0, hi = 1;  // axis bounds (== first and last tick)
  std::vector<double> values;
  std::vector<std::string> labels;  // values formatted with a common precision
};
// REQUIRES: lo and hi finite. If lo >= hi the range is widened around them.
// `target` is the approximate number of intervals wanted (>= 1).
AxisTicks NiceTicks(double lo, double hi, int target);

}  // namespace internal
}  // namespace ps

#endif  // PS_COMMON_REPORT_H_

// Tables, JSON and the timeline picture. The SVG is written by hand (it is only text) so the
// suite needs no plotting tool; it is plain SVG 1.1 that any browser shows.

#include "report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <tuple>
#include <utility>

namespace dynkv::faults {

namespace {

std::string fixed(double x, int decimals) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.*f", decimals, x);
  return text;
}

std::string convergedCell(bool converged, const std::optional<double>& seconds) {
  if (!converged) return "n";
  return seconds ? "y " + fixed(*seconds, 1) + "s" : "y";
}

std::string tombstonesCell(const CheckResult& r) {
  bool collected = r.tombstonesCollected && r.tombstonesLeft == 0;
  return collected ? convergedCell(true, r.tombstoneSeconds)
                   : "n " + std::to_string(r.tombstonesLeft) + " left";
}

std::string verdictCell(const RunSummary& run) {
  bool explained = run.verdict == "xfail" || run.verdict == "XPASS";
  return explained ? run.verdict + " (" + run.expectation + ")" : run.verdict;
}

const std::vector<std::string> HEADERS = {"scenario",    "ops",         "acked",    "lost",
                                          "unexpected",  "resurrected", "siblings", "converged",
                                          "after reads", "tombstones",  "verdict"};
// Which columns hold counts (right-aligned).
const std::vector<bool> NUMERIC = {false, true,  true,  true,  true, true,
                                   true,  false, false, false, false};

std::vector<std::string> cells(const RunSummary& run) {
  const CheckResult& r = run.result;
  return {run.scenario,
          std::to_string(r.ops),
          std::to_string(r.acknowledged),
          std::to_string(r.lost),
          std::to_string(r.unexpected),
          std::to_string(r.resurrected),
          std::to_string(r.maxSiblings),
          convergedCell(r.convergedWithoutReads, r.convergeSeconds),
          convergedCell(r.convergedAfterReads, r.convergeAfterReadsSeconds),
          tombstonesCell(r),
          verdictCell(run)};
}

std::string xmlEscape(const std::string& text) {
  std::string escaped;
  for (char c : text) {
    switch (c) {
      case '&':
        escaped += "&amp;";
        break;
      case '<':
        escaped += "&lt;";
        break;
      case '>':
        escaped += "&gt;";
        break;
      case '"':
        escaped += "&quot;";
        break;
      case '\'':
        escaped += "&apos;";
        break;
      default:
        // Control characters other than tab and newlines are not allowed in XML 1.0 at all.
        bool forbidden =
            static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r';
        escaped += forbidden ? '?' : c;
    }
  }
  return escaped;
}

// The smallest of 1, 2, 5 times a power of ten that is >= x (x > 0).
double niceStep(double x) {
  double power = std::pow(10.0, std::floor(std::log10(x)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * power >= x * (1 - 1e-9)) return m * power;
  }
  return 10 * power;
}

std::string latencyLabel(double ms) {
  if (ms >= 1000) return fixed(ms / 1000, 0) + " s";
  if (ms >= 1) return fixed(ms, 0) + " ms";
  return fixed(ms, int(std::ceil(-std::log10(ms) - 1e-9))) + " ms";
}

// Nearest-rank percentile of a sorted, non-empty sample.
double percentile(const std::vector<double>& sorted, double p) {
  size_t rank = size_t(std::ceil(p * double(sorted.size())));
  return sorted[std::min(sorted.size(), std::max<size_t>(rank, 1)) - 1];
}

// The picture's layout, in SVG user units.
constexpr double WIDTH = 900, HEIGHT = 420;
constexpr double LEFT = 64, RIGHT = 884;
constexpr double TOP_Y0 = 52, TOP_Y1 = 200;   // operations per second
constexpr double LOW_Y0 = 228, LOW_Y1 = 376;  // latency
constexpr double MIN_LATENCY_MS = 0.001;      // the log scale's floor (1 us)

const char* const OK_COLOUR = "#2ca02c";
const char* const NOT_OK_COLOUR = "#d62728";
const char* const P50_COLOUR = "#1f77b4";
const char* const P99_COLOUR = "#9467bd";
const char* const FAULT_COLOUR = "#ff7f0e";

double xAt(double t, double seconds) {
  return LEFT + t / seconds * (RIGHT - LEFT);
}

// A per-bucket series drawn as steps (each bucket's value held across its second), mapped to
// the panel by `yOf`; NaN marks an empty bucket, which breaks the line.
template <typename YOf>
std::string stepLines(const std::vector<double>& values, double seconds, YOf yOf,
                      const char* colour) {
  std::string svg;
  std::string points;
  auto flush = [&] {
    if (!points.empty()) {
      svg += "<polyline fill=\"none\" stroke=\"" + std::string(colour) +
             "\" stroke-width=\"1.5\" points=\"" + points + "\"/>\n";
    }
    points.clear();
  };
  for (size_t b = 0; b < values.size(); ++b) {
    if (std::isnan(values[b])) {
      flush();
      continue;
    }
    std::string y = fixed(yOf(values[b]), 1);
    points += (points.empty() ? "" : " ") + fixed(xAt(double(b), seconds), 1) + "," + y + " " +
              fixed(xAt(double(b + 1), seconds), 1) + "," + y;
  }
  flush();
  return svg;
}

std::string line(double x1, double y1, double x2, double y2, const char* stroke) {
  return "<line x1=\"" + fixed(x1, 1) + "\" y1=\"" + fixed(y1, 1) + "\" x2=\"" + fixed(x2, 1) +
         "\" y2=\"" + fixed(y2, 1) + "\" stroke=\"" + stroke + "\"/>\n";
}

std::string text(double x, double y, const std::string& content, const char* anchor = "start",
                 int size = 11) {
  return "<text x=\"" + fixed(x, 1) + "\" y=\"" + fixed(y, 1) + "\" font-size=\"" +
         std::to_string(size) + "\" text-anchor=\"" + anchor + "\">" + xmlEscape(content) +
         "</text>\n";
}

}  // namespace

std::string verdictFor(const CheckResult& result, const std::string& expectation) {
  bool passed = result.safe() && result.convergedWithoutReads && result.convergedAfterReads &&
                result.tombstonesCollected && result.tombstonesLeft == 0;
  if (expectation.empty()) return passed ? "pass" : "FAIL";
  return passed ? "XPASS" : "xfail";
}

std::string table(const std::vector<RunSummary>& runs) {
  std::vector<std::vector<std::string>> rows = {HEADERS};
  for (const RunSummary& run : runs) rows.push_back(cells(run));
  std::vector<size_t> widths(HEADERS.size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }

  std::string out;
  for (const auto& row : rows) {
    std::string lineText;
    for (size_t c = 0; c < row.size(); ++c) {
      std::string padding(widths[c] - row[c].size(), ' ');
      if (c > 0) lineText += "  ";
      lineText += NUMERIC[c] ? padding + row[c] : row[c] + padding;
    }
    lineText.erase(lineText.find_last_not_of(' ') + 1);
    out += lineText + "\n";
  }
  return out;
}

std::string markdownTable(const std::vector<RunSummary>& runs) {
  auto rowText = [](const std::vector<std::string>& row) {
    std::string out = "|";
    for (const std::string& cell : row) {
      std::string escaped;
      for (char c : cell) escaped += c == '|' ? std::string("\\|") : std::string(1, c);
      out += " " + escaped + " |";
    }
    return out + "\n";
  };
  std::string out = rowText(HEADERS) + "|";
  for (bool numeric : NUMERIC) out += numeric ? " --: |" : " --- |";
  out += "\n";
  for (const RunSummary& run : runs) out += rowText(cells(run));
  return out;
}

std::string toJsonArray(const std::vector<RunSummary>& runs) {
  auto seconds = [](const std::optional<double>& s) {
    return s ? nlohmann::json(*s) : nlohmann::json(nullptr);
  };
  nlohmann::json array = nlohmann::json::array();
  for (const RunSummary& run : runs) {
    const CheckResult& r = run.result;
    array.push_back({{"scenario", run.scenario},
                     {"run_dir", run.runDir},
                     {"ops", r.ops},
                     {"acknowledged", r.acknowledged},
                     {"failed", r.failed},
                     {"unknown", r.unknown},
                     {"lost", r.lost},
                     {"unexpected", r.unexpected},
                     {"resurrected", r.resurrected},
                     {"unreadable", r.unreadable},
                     {"max_siblings", r.maxSiblings},
                     {"converged_without_reads", r.convergedWithoutReads},
                     {"converge_s", seconds(r.convergeSeconds)},
                     {"converged_after_reads", r.convergedAfterReads},
                     {"converge_after_reads_s", seconds(r.convergeAfterReadsSeconds)},
                     {"tombstones_collected", r.tombstonesCollected},
                     {"tombstones_s", seconds(r.tombstoneSeconds)},
                     {"tombstones_left", r.tombstonesLeft},
                     {"verdict", run.verdict},
                     {"expectation", run.expectation}});
  }
  return array.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

void writeTimelineSvg(const std::string& path, const std::string& title,
                      const std::vector<Operation>& history,
                      const std::vector<FaultWindow>& faults) {
  // Time zero is the first invocation (or, with no operations, the first fault).
  int64_t origin = std::numeric_limits<int64_t>::max();
  for (const Operation& op : history) origin = std::min(origin, op.invokeMicros);
  if (history.empty()) {
    for (const FaultWindow& fault : faults) origin = std::min(origin, fault.startMicros);
  }
  if (origin == std::numeric_limits<int64_t>::max()) origin = 0;
  int64_t end = origin;
  for (const Operation& op : history) end = std::max(end, op.completeMicros);
  for (const FaultWindow& fault : faults) end = std::max({end, fault.startMicros, fault.endMicros});
  size_t buckets = std::max<size_t>(1, size_t(std::ceil(double(end - origin) / 1e6)));
  double seconds = double(buckets);

  std::vector<double> ok(buckets, 0), notOk(buckets, 0);
  std::vector<std::vector<double>> latencies(buckets);
  for (const Operation& op : history) {
    double t = double(op.completeMicros - origin) / 1e6;
    size_t b = std::min(buckets - 1, size_t(std::max(0.0, t)));
    (op.outcome == Outcome::OK ? ok : notOk)[b] += 1;
    latencies[b].push_back(
        std::max(MIN_LATENCY_MS, double(op.completeMicros - op.invokeMicros) / 1e3));
  }

  // Top panel: a linear scale from 0 to a round number above the busiest second.
  double busiest = std::max(1.0, std::max(*std::max_element(ok.begin(), ok.end()),
                                          *std::max_element(notOk.begin(), notOk.end())));
  double rateStep = std::max(1.0, niceStep(busiest / 4));  // whole operations
  double rateMax = std::ceil(busiest / rateStep) * rateStep;
  auto rateY = [&](double rate) { return TOP_Y1 - rate / rateMax * (TOP_Y1 - TOP_Y0); };

  // Bottom panel: a log scale spanning whole decades around every percentile drawn.
  std::vector<double> p50(buckets, NAN), p99(buckets, NAN);
  double lowest = std::numeric_limits<double>::infinity(), highest = 0;
  for (size_t b = 0; b < buckets; ++b) {
    if (latencies[b].empty()) continue;
    std::sort(latencies[b].begin(), latencies[b].end());
    p50[b] = percentile(latencies[b], 0.50);
    p99[b] = percentile(latencies[b], 0.99);
    lowest = std::min(lowest, p50[b]);
    highest = std::max(highest, p99[b]);
  }
  int decadeLow = highest > 0 ? int(std::floor(std::log10(lowest))) : -1;
  int decadeHigh = highest > 0 ? int(std::ceil(std::log10(highest))) : 3;
  if (decadeHigh <= decadeLow) decadeHigh = decadeLow + 1;
  auto latencyY = [&](double ms) {
    double fraction = (std::log10(ms) - decadeLow) / double(decadeHigh - decadeLow);
    return LOW_Y1 - fraction * (LOW_Y1 - LOW_Y0);
  };

  std::ostringstream svg;
  svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" << WIDTH
      << "\" height=\"" << HEIGHT << "\" viewBox=\"0 0 " << WIDTH << " " << HEIGHT
      << "\" font-family=\"sans-serif\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << LEFT << "\" y=\"18\" font-size=\"14\" font-weight=\"bold\">"
      << xmlEscape(title) << "</text>\n";

  // Legend.
  double legendX = LEFT;
  for (auto [colour, label] :
       {std::pair{OK_COLOUR, "acknowledged ops/s"},
        std::pair{NOT_OK_COLOUR, "failed or unknown ops/s"}, std::pair{P50_COLOUR, "p50 latency"},
        std::pair{P99_COLOUR, "p99 latency"}}) {
    svg << "<line x1=\"" << legendX << "\" y1=\"34\" x2=\"" << legendX + 18
        << "\" y2=\"34\" stroke=\"" << colour << "\" stroke-width=\"2\"/>\n"
        << text(legendX + 22, 38, label);
    legendX += 40 + 6.5 * std::string(label).size();
  }
  svg << "<rect x=\"" << legendX << "\" y=\"28\" width=\"18\" height=\"12\" fill=\"" << FAULT_COLOUR
      << "\" fill-opacity=\"0.2\"/>\n"
      << text(legendX + 22, 38, "fault");

  // Grid and axes: vertical lines at round seconds through both panels.
  double timeStep = std::max(1.0, niceStep(seconds / 10));
  for (double t = 0; t <= seconds + 1e-9; t += timeStep) {
    double x = xAt(t, seconds);
    svg << line(x, TOP_Y0, x, TOP_Y1, "#e0e0e0") << line(x, LOW_Y0, x, LOW_Y1, "#e0e0e0")
        << text(x, LOW_Y1 + 14, fixed(t, 0), "middle");
  }
  svg << text((LEFT + RIGHT) / 2, LOW_Y1 + 32, "seconds since the first operation", "middle");
  for (double rate = 0; rate <= rateMax + 1e-9; rate += rateStep) {
    svg << line(LEFT, rateY(rate), RIGHT, rateY(rate), "#e0e0e0")
        << text(LEFT - 4, rateY(rate) + 4, fixed(rate, 0), "end");
  }
  for (int decade = decadeLow; decade <= decadeHigh; ++decade) {
    double ms = std::pow(10.0, decade);
    svg << line(LEFT, latencyY(ms), RIGHT, latencyY(ms), "#e0e0e0")
        << text(LEFT - 4, latencyY(ms) + 4, latencyLabel(ms), "end", 10);
  }
  for (auto [y0, y1, label] :
       {std::tuple{TOP_Y0, TOP_Y1, "ops/s"}, std::tuple{LOW_Y0, LOW_Y1, "latency (log)"}}) {
    double middle = (y0 + y1) / 2;
    svg << "<rect x=\"" << LEFT << "\" y=\"" << y0 << "\" width=\"" << RIGHT - LEFT
        << "\" height=\"" << y1 - y0 << "\" fill=\"none\" stroke=\"#808080\"/>\n"
        << "<text x=\"12\" y=\"" << middle << "\" font-size=\"11\" text-anchor=\"middle\""
        << " transform=\"rotate(-90 12 " << middle << ")\">" << label << "</text>\n";
  }

  // Fault windows over both panels; names staggered over three rows so neighbours stay legible.
  for (size_t i = 0; i < faults.size(); ++i) {
    const FaultWindow& fault = faults[i];
    int64_t faultEnd = fault.endMicros == 0 ? end : fault.endMicros;
    double x0 = xAt(std::max(0.0, double(fault.startMicros - origin) / 1e6), seconds);
    double x1 = xAt(std::max(0.0, double(faultEnd - origin) / 1e6), seconds);
    std::string span = fault.name + ": +" + fixed(double(fault.startMicros - origin) / 1e6, 1) +
                       " s to +" + fixed(double(faultEnd - origin) / 1e6, 1) + " s";
    svg << "<rect x=\"" << fixed(x0, 1) << "\" y=\"" << TOP_Y0 << "\" width=\""
        << fixed(std::max(1.0, x1 - x0), 1) << "\" height=\"" << LOW_Y1 - TOP_Y0 << "\" fill=\""
        << FAULT_COLOUR << "\" fill-opacity=\"0.15\"><title>" << xmlEscape(span)
        << "</title></rect>\n"
        << text(x0 + 3, TOP_Y0 + 11 + 11 * double(i % 3), fault.name, "start", 10);
  }

  svg << stepLines(ok, seconds, rateY, OK_COLOUR) << stepLines(notOk, seconds, rateY, NOT_OK_COLOUR)
      << stepLines(p50, seconds, latencyY, P50_COLOUR)
      << stepLines(p99, seconds, latencyY, P99_COLOUR) << "</svg>\n";

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << svg.str();
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace dynkv::faults

#include "report.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace dynkv::bench {

namespace {

constexpr double NS_PER_US = 1000.0;

struct Stat {
  const char* name;  // JSON key
  const char* label;
  double (*get)(const Histogram&);
};

const Stat STATS[] = {
    {"p50", "p50", [](const Histogram& h) { return h.percentile(50); }},
    {"p99", "p99", [](const Histogram& h) { return h.percentile(99); }},
    {"p999", "p99.9", [](const Histogram& h) { return h.percentile(99.9); }},
    {"mean", "mean", [](const Histogram& h) { return h.mean(); }},
};

std::string cell(const Histogram& h, double (*get)(const Histogram&), const Histogram& floor) {
  // "812.3 (2.41×)": microseconds and the ratio to the same statistic of the floor.
  if (h.count() == 0) return "-";
  char buf[64];
  double v = get(h), f = get(floor);
  if (f > 0) {
    snprintf(buf, sizeof(buf), "%.1f (%.2f×)", v / NS_PER_US, v / f);
  } else {
    snprintf(buf, sizeof(buf), "%.1f", v / NS_PER_US);
  }
  return buf;
}

std::string ratio(const Histogram& a, const Histogram& b, double (*get)(const Histogram&)) {
  if (a.count() == 0 || b.count() == 0 || get(b) <= 0) return "-";
  char buf[32];
  snprintf(buf, sizeof(buf), "%.2f×", get(a) / get(b));
  return buf;
}

double rate(uint64_t count, double seconds) {
  return seconds > 0 ? double(count) / seconds : 0;
}

std::string jsonString(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string jsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

struct CpuPerOp {
  double bench = 0, nodes = 0;  // µs per operation
  double total() const { return bench + nodes; }
};

CpuPerOp cpuPerOp(const Totals& t) {
  if (t.ops == 0) return {};
  return {t.benchCpuSeconds * 1e6 / double(t.ops), t.nodesCpuSeconds * 1e6 / double(t.ops)};
}

std::string jsonCpu(const Totals& t, const Results& r) {
  // Beside a mode's (or the floor's) latencies: its CPU cost per operation and the rate the
  // machine's cores could sustain at that cost.
  auto cpu = cpuPerOp(t);
  std::ostringstream out;
  out << "\"cpu_us_per_op\": {\"bench\": " << jsonNumber(cpu.bench);
  if (r.nodesCpuKnown) {
    out << ", \"nodes\": " << jsonNumber(cpu.nodes) << ", \"total\": " << jsonNumber(cpu.total());
  }
  out << "}";
  if (r.nodesCpuKnown && cpu.total() > 0) {
    out << ", \"cpu_bound_ops_per_s\": " << jsonNumber(r.cores * 1e6 / cpu.total());
  }
  return out.str();
}

}  // namespace

std::string pad(const std::string& s, size_t width) {
  size_t columns = 0;
  for (unsigned char c : s) columns += (c & 0xc0) != 0x80;
  return s + std::string(columns < width ? width - columns : 0, ' ');
}

void printReport(FILE* out, const RunDescription& run, const Results& r) {
  fprintf(out, "\n%s\n", run.command.c_str());
  for (auto& [name, value] : run.settings)
    fprintf(out, "  %-12s %s\n", name.c_str(), value.c_str());

  auto& floor = r.floor.latency;
  fprintf(out, "\nTransport floor (%s): p50 %.1f µs, p99 %.1f µs, p99.9 %.1f µs, mean %.1f µs\n",
          run.floorShape.c_str(), floor.percentile(50) / NS_PER_US,
          floor.percentile(99) / NS_PER_US, floor.percentile(99.9) / NS_PER_US,
          floor.mean() / NS_PER_US);

  // The paper's Table 2: 99.9th percentile and average, read and write, per coordination.
  const size_t W = 18;
  auto p999 = STATS[2].get;
  auto mean = STATS[3].get;
  fprintf(out, "\nLatency in µs (× floor), the shape of the paper's Table 2\n");
  fprintf(out, "%s%s%s%s%s\n", pad("coordination", 16).c_str(), pad("99.9th read", W).c_str(),
          pad("99.9th write", W).c_str(), pad("avg read", W).c_str(), pad("avg write", W).c_str());
  auto row = [&](const char* name, const ModeStats& m) {
    if (!m.ran) return;
    fprintf(out, "%s%s%s%s%s\n", pad(name, 16).c_str(),
            pad(cell(m.read.latency, p999, floor), W).c_str(),
            pad(cell(m.write.latency, p999, floor), W).c_str(),
            pad(cell(m.read.latency, mean, floor), W).c_str(),
            pad(cell(m.write.latency, mean, floor), W).c_str());
  };
  row("server-driven", r.server);
  row("client-driven", r.client);
  if (r.server.ran && r.client.ran) {
    fprintf(out, "%s%s%s%s%s\n", pad("server / client", 16).c_str(),
            pad(ratio(r.server.read.latency, r.client.read.latency, p999), W).c_str(),
            pad(ratio(r.server.write.latency, r.client.write.latency, p999), W).c_str(),
            pad(ratio(r.server.read.latency, r.client.read.latency, mean), W).c_str(),
            pad(ratio(r.server.write.latency, r.client.write.latency, mean), W).c_str());
  }

  fprintf(out, "\n%s%s", pad("", 14).c_str(), pad("ops", 9).c_str());
  for (auto& s : STATS) fprintf(out, "%s", pad(s.label, W).c_str());
  fprintf(out, "%s%s\n", pad("ops/s", 10).c_str(), "errors");
  auto line = [&](const char* name, const OpStats& op, double seconds) {
    fprintf(out, "%s%s", pad(name, 14).c_str(), pad(std::to_string(op.latency.count()), 9).c_str());
    for (auto& s : STATS) fprintf(out, "%s", pad(cell(op.latency, s.get, floor), W).c_str());
    char rateText[32];
    snprintf(rateText, sizeof(rateText), "%.0f", rate(op.latency.count(), seconds));
    fprintf(out, "%s%llu\n", pad(rateText, 10).c_str(), static_cast<unsigned long long>(op.errors));
  };
  line("floor", r.floor, r.floorTotals.seconds);
  for (auto [name, m] :
       {std::pair<const char*, const ModeStats*>{"client", &r.client}, {"server", &r.server}}) {
    if (!m->ran) continue;
    if (m->read.latency.count() || m->read.errors) {
      line((std::string(name) + " read").c_str(), m->read, m->totals.seconds);
    }
    if (m->write.latency.count() || m->write.errors) {
      line((std::string(name) + " write").c_str(), m->write, m->totals.seconds);
    }
  }
  fprintf(out,
          "\nCPU per operation, µs (benchmark process + %s), and the rate %u cores could "
          "sustain at that cost\n",
          r.nodesCpuKnown ? "the nodes" : "nodes unknown with --seeds", r.cores);
  auto cpuLine = [&](const char* name, const Totals& t) {
    auto cpu = cpuPerOp(t);
    if (t.ops == 0) return;
    if (r.nodesCpuKnown) {
      fprintf(out, "  %-8s %7.1f + %7.1f = %7.1f µs   %8.0f ops/s\n", name, cpu.bench, cpu.nodes,
              cpu.total(), cpu.total() > 0 ? r.cores * 1e6 / cpu.total() : 0);
    } else {
      fprintf(out, "  %-8s %7.1f µs in the benchmark process\n", name, cpu.bench);
    }
  };
  cpuLine("floor", r.floorTotals);
  if (r.client.ran) cpuLine("client", r.client.totals);
  if (r.server.ran) cpuLine("server", r.server.totals);

  if (r.server.ran && r.client.ran) {
    auto p50 = STATS[0].get;
    fprintf(out, "\nserver-driven / client-driven: read p50 %s, p99.9 %s; write p50 %s, p99.9 %s\n",
            ratio(r.server.read.latency, r.client.read.latency, p50).c_str(),
            ratio(r.server.read.latency, r.client.read.latency, p999).c_str(),
            ratio(r.server.write.latency, r.client.write.latency, p50).c_str(),
            ratio(r.server.write.latency, r.client.write.latency, p999).c_str());
  }
  for (auto [name, op] : {std::pair<const char*, const OpStats*>{"floor", &r.floor},
                          {"client read", &r.client.read},
                          {"client write", &r.client.write},
                          {"server read", &r.server.read},
                          {"server write", &r.server.write}}) {
    if (op->errors) fprintf(out, "last %s error: %s\n", name, op->lastError.c_str());
  }
  fflush(out);
}

void writeJson(const std::string& path, const RunDescription& run, const Results& r) {
  auto& floor = r.floor.latency;
  auto ratios = [&](const OpStats& op) {
    std::ostringstream out;
    out << "{";
    bool first = true;
    for (auto& s : STATS) {
      double f = s.get(floor);
      char buf[32] = "null";
      if (op.latency.count() && f > 0) snprintf(buf, sizeof(buf), "%.3f", s.get(op.latency) / f);
      out << (first ? "" : ", ") << "\"" << s.name << "\": " << buf;
      first = false;
    }
    return out.str() + "}";
  };
  auto stats = [&](const OpStats& op, double seconds, bool withRatio) {
    std::ostringstream out;
    auto& h = op.latency;
    out << "{";
    for (auto& s : STATS) {
      out << "\"" << s.name << "\": " << (h.count() ? jsonNumber(s.get(h) / NS_PER_US) : "null")
          << ", ";
    }
    out << "\"ops_per_s\": " << jsonNumber(rate(h.count(), seconds)) << ", \"count\": " << h.count()
        << ", \"errors\": " << op.errors;
    if (withRatio) out << ", \"ratio_to_floor\": " << ratios(op);
    return out.str() + "}";
  };

  std::ostringstream out;
  out << "{\n  \"unit\": \"us\",\n  \"command\": " << jsonString(run.command) << ",\n";
  out << "  \"config\": {";
  bool first = true;
  for (auto& [name, value] : run.settings) {
    out << (first ? "" : ", ") << jsonString(name) << ": " << jsonString(value);
    first = false;
  }
  out << "},\n";
  auto floorJson = stats(r.floor, r.floorTotals.seconds, false);
  floorJson.pop_back();  // the closing brace: the CPU figures go inside
  out << "  \"floor\": " << floorJson << ", " << jsonCpu(r.floorTotals, r) << "},\n";
  out << "  \"modes\": {";
  first = true;
  for (auto [name, m] :
       {std::pair<const char*, const ModeStats*>{"client", &r.client}, {"server", &r.server}}) {
    if (!m->ran) continue;
    out << (first ? "\n" : ",\n") << "    \"" << name
        << "\": {\n      \"read\": " << stats(m->read, m->totals.seconds, true)
        << ",\n      \"write\": " << stats(m->write, m->totals.seconds, true) << ",\n      "
        << jsonCpu(m->totals, r) << "\n    }";
    first = false;
  }
  out << "\n  }\n}\n";

  std::ofstream file(path);
  file << out.str();
  if (!file) throw std::runtime_error("cannot write " + path);
}

bool gnuplotAvailable() {
  // Never installs it: a benchmark that runs apt-get as root changes the machine it measures.
  return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

bool writePlot(const std::string& svgPath, const RunDescription& run, const Results& r,
               std::string& message) {
  struct Series {
    const char* title;
    const Histogram* h;
    const char* style;
  };
  std::vector<Series> series = {
      {"floor (ping fan-out)", &r.floor.latency, "lc rgb '#888888' dt 2"}};
  if (r.client.ran) {
    series.push_back({"client-driven read", &r.client.read.latency, "lc rgb '#1f77b4'"});
    series.push_back({"client-driven write", &r.client.write.latency, "lc rgb '#1f77b4' dt 3"});
  }
  if (r.server.ran) {
    series.push_back({"server-driven read", &r.server.read.latency, "lc rgb '#d62728'"});
    series.push_back({"server-driven write", &r.server.write.latency, "lc rgb '#d62728' dt 3"});
  }

  // Two panels: the CDF itself, and the tail on a "nines" scale (y = 1 / (1 - F)), where the
  // 99th and 99.9th percentiles that Table 2 is about are visible.
  std::ostringstream gp;
  gp << "set terminal svg size 1100,480 dynamic font 'sans,11'\n"
     << "set output '" << svgPath << "'\n";
  std::vector<std::string> plotted;
  for (size_t i = 0; i < series.size(); i++) {
    if (series[i].h->count() == 0) continue;
    gp << "$s" << i << " << EOD\n";
    uint64_t total = series[i].h->count();
    series[i].h->forEachBucket([&](uint64_t upper, uint64_t seen) {
      double f = double(seen) / double(total);
      double nines = 1.0 / std::max(1.0 - f, 1.0 / double(total + 1));
      gp << double(upper) / NS_PER_US << " " << f << " " << nines << "\n";
    });
    gp << "EOD\n";
    plotted.push_back(std::to_string(i));
  }
  if (plotted.empty()) {
    message = "nothing was measured";
    return false;
  }
  std::string title = run.command;
  for (auto& c : title) {
    if (c == '\'') c = '"';
  }
  gp << "set multiplot layout 1,2 title '" << title << "' noenhanced\n"
     << "set logscale x\nset grid\nset key bottom right noenhanced\n"
     << "set xlabel 'latency (µs)'\n"
     << "set ylabel 'fraction of requests'\nset yrange [0:1]\n";
  auto plot = [&](const char* columns) {
    gp << "plot ";
    bool first = true;
    for (size_t i = 0; i < series.size(); i++) {
      if (series[i].h->count() == 0) continue;
      gp << (first ? "" : ", ") << "$s" << i << " using " << columns << " with steps "
         << series[i].style << " lw 2 title '" << series[i].title << "'";
      first = false;
    }
    gp << "\n";
  };
  plot("1:2");
  gp << "set logscale y\nset yrange [1:*]\nset ylabel 'percentile'\nset key top left\n"
     << "set ytics ('50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, "
        "'99.999%%' 100000)\n";
  plot("1:3");
  gp << "unset multiplot\n";

  std::string script = svgPath + ".gp";
  {
    std::ofstream file(script);
    file << gp.str();
    if (!file) {
      message = "cannot write " + script;
      return false;
    }
  }
  if (!gnuplotAvailable()) {
    message = "gnuplot is not installed (apt-get install gnuplot-nox); the plot script is at " +
              script + " (run: gnuplot " + script + ")";
    return false;
  }
  std::string command = "gnuplot '" + script + "' 2>&1";
  int status = system(command.c_str());
  if (status != 0) {
    message = "gnuplot failed on " + script;
    return false;
  }
  unlink(script.c_str());
  return true;
}

}  // namespace dynkv::bench

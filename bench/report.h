// What dynkv-bench measured and how it is shown: the table in the shape of the paper's
// Table 2, the JSON file and the gnuplot CDF plot. Latencies are recorded in nanoseconds and
// reported in microseconds, each also as a ratio to the transport floor of the same run.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "histogram.h"

namespace dynkv::bench {

struct OpStats {
  Histogram latency;  // ns, successful operations only
  uint64_t errors = 0;
  std::string lastError;
};

struct Totals {
  // What a mode's measured blocks took in all: wall time, and the CPU time of the benchmark
  // process and of the cluster's nodes (/proc/PID/schedstat), which a busy machine does not
  // inflate the way it inflates latency. CPU per operation bounds the throughput the cores
  // could give: cores / (CPU per operation).
  double seconds = 0;
  uint64_t ops = 0;  // operations started (a read-modify-write counts once)
  double benchCpuSeconds = 0;
  double nodesCpuSeconds = 0;
};

struct ModeStats {
  bool ran = false;
  OpStats read;
  OpStats write;
  Totals totals;
};

struct Results {
  OpStats floor;  // one sample per R-of-N ping fan-out
  Totals floorTotals;
  ModeStats client;
  ModeStats server;
  bool nodesCpuKnown = false;  // only for the benchmark's own cluster
  unsigned cores = 1;
};

struct RunDescription {
  std::string command;                                        // the command line, as given
  std::vector<std::pair<std::string, std::string>> settings;  // shown and written to JSON
  std::string floorShape;                                     // e.g. "2-of-3 ping fan-out"
};

std::string pad(const std::string& s, size_t width);
// `s` and spaces up to `width` columns: "×" and "µ" are two bytes of UTF-8 but one column.

void printReport(FILE* out, const RunDescription& run, const Results& results);

void writeJson(const std::string& path, const RunDescription& run, const Results& results);
// Throws std::runtime_error if the file cannot be written.

bool gnuplotAvailable();
// Whether `gnuplot` is on PATH. Never installs it (apt-get install gnuplot-nox does).

bool writePlot(const std::string& svgPath, const RunDescription& run, const Results& results,
               std::string& message);
// Draws the latency CDFs (floor, and read and write for each mode) with gnuplot into svgPath.
// On failure returns false and sets `message`; the gnuplot script is then left at
// svgPath + ".gp" (data inline) so it can be drawn later.

}  // namespace dynkv::bench

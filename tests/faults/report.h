// Presenting fault runs: a verdict per run, a text table for the terminal, a markdown table
// for notes, a JSON array for other tools, and an SVG timeline of one run.
#pragma once

#include <string>
#include <vector>

#include "checker.h"
#include "history.h"

namespace dynkv::faults {

struct RunSummary {
  std::string scenario;
  std::string runDir;
  CheckResult result;
  std::string expectation;  // "": the run must pass; else why it is expected to fail,
                            // e.g. "no anti-entropy yet (#10)"
  std::string verdict;      // verdictFor(result, expectation)
};

std::string verdictFor(const CheckResult& result, const std::string& expectation);
// A run passes when it is safe(), its replicas converged both without reads and after the
// final reads, and every tombstone was collected (no replica kept a tombstone-only copy).
// Returns "pass" or "FAIL" when `expectation` is empty; otherwise "XPASS" (it
// passed though expected to fail: the expectation is out of date) or "xfail".

std::string table(const std::vector<RunSummary>& runs);
// A fixed-width text table, one line per run after a header line, each line ending in '\n':
// scenario, ops, acknowledged, lost, unexpected, resurrected, most siblings, converged
// without reads ("y 3.2s" / "n"), converged after reads, tombstones collected ("y 12.5s" /
// "n 4 left": tombstone-only replica copies left), and the verdict (followed by the
// expectation in parentheses for xfail and XPASS).
std::string markdownTable(const std::vector<RunSummary>& runs);
// The same columns as a GitHub-flavoured markdown table.

std::string toJsonArray(const std::vector<RunSummary>& runs);
// A JSON array with one object per run: scenario, run_dir, ops, acknowledged, failed, unknown,
// lost, unexpected, resurrected, unreadable, max_siblings, converged_without_reads,
// converge_s (null if it never converged), converged_after_reads, converge_after_reads_s
// (likewise), tombstones_collected, tombstones_s (likewise), tombstones_left, verdict,
// expectation.

void writeTimelineSvg(const std::string& path, const std::string& title,
                      const std::vector<Operation>& history,
                      const std::vector<FaultWindow>& faults);
// Writes a standalone SVG 1.1 picture of one run to `path` (replacing it): operations per
// second (acknowledged, and not) and latency (p50, p99, log scale) per 1-second bucket of
// completion time, against seconds since the first invocation, with the fault windows shaded
// and named. Throws std::runtime_error if the file cannot be written.

}  // namespace dynkv::faults

// dynkv-faults: the Jepsen-style fault suite. As root it builds a private network of
// namespaces, runs a five-node cluster and three workload clients in it, injects each
// scenario's faults, and checks the clients' histories and the replicas' final state.
//
//   dynkv-faults [SCENARIO...]            run these scenarios (default: all), print the table
//   dynkv-faults --list                   the scenario names, one per line, with what they do
//   dynkv-faults check RUN_DIR            check a kept run again (histories and final state)
//
// The same binary plays the lab's other roles (client, observe, join, leave), started by the
// runner inside the namespaces. Exit status: 0 when every run met its expectation (pass, or
// an expected failure), 1 when one did not, 2 for a usage error, 77 when this machine cannot
// host the lab (the reason is printed; ctest counts it as skipped).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include "checker.h"
#include "lab.h"
#include "report.h"
#include "runner.h"
#include "workload.h"

#ifndef DYNKV_STORAGED_PATH
#define DYNKV_STORAGED_PATH "storaged"
#endif

namespace dynkv::faults {
namespace {

constexpr int SKIPPED = 77;

std::string selfPath() {
  std::error_code ec;
  auto path = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::runtime_error("cannot find this executable: " + ec.message());
  return path.string();
}

int runSuite(std::vector<std::string> names, RunOptions options, const std::string& jsonPath) {
  std::vector<const Scenario*> chosen;
  std::set<std::string> known;
  for (auto& s : scenarios()) known.insert(s.name);
  for (auto& n : names) {
    if (known.count(n) == 0) {
      std::cerr << "dynkv-faults: no scenario '" << n << "' (see --list)" << std::endl;
      return 2;
    }
  }
  for (auto& s : scenarios()) {
    if (names.empty() || std::find(names.begin(), names.end(), s.name) != names.end()) {
      chosen.push_back(&s);
    }
  }
  if (auto why = labUnavailable()) {
    std::cout << "dynkv-faults: skipped: " << *why << std::endl;
    return SKIPPED;
  }
  blockTerminationSignals();
  Lab::sweepStale();
  std::filesystem::create_directories(options.outDir);
  options.outDir = std::filesystem::canonical(options.outDir).string();

  std::vector<RunSummary> runs;
  try {
    for (auto* scenario : chosen) {
      Run run(*scenario, options);
      runs.push_back(run.execute());
      std::cerr << table({runs.back()});
    }
  } catch (const Interrupted&) {
    std::cerr << "dynkv-faults: interrupted; the lab is removed" << std::endl;
    return 130;
  }
  std::cout << "\n" << table(runs);
  std::cout << "runs kept in " << options.outDir << " (history/, final.json, timeline.svg)"
            << std::endl;
  if (!jsonPath.empty()) {
    std::ofstream out(jsonPath);
    out << toJsonArray(runs) << '\n';
    if (!out) {
      std::cerr << "dynkv-faults: cannot write " << jsonPath << std::endl;
      return 1;
    }
  }
  size_t failed = 0, xfailed = 0, passed = 0;
  for (auto& r : runs) {
    if (r.verdict == "FAIL") {
      failed++;
    } else if (r.verdict == "xfail") {
      xfailed++;
    } else {
      passed++;
    }
  }
  if (xfailed != 0) {
    std::cout << xfailed << " expected failures (counted as skipped below)" << std::endl;
  }
  std::cout << passed << " passed, " << failed << " failed, " << xfailed << " skipped" << std::endl;
  return failed == 0 ? 0 : 1;
}

}  // namespace
}  // namespace dynkv::faults

int main(int argc, char** argv) {
  using namespace dynkv::faults;
  CLI::App app{"dynkv-faults: fault scenarios on a real cluster in network namespaces (root)"};
  app.require_subcommand(0, 1);

  std::vector<std::string> names;
  bool list = false;
  std::string jsonPath;
  RunOptions options;
  options.storaged = DYNKV_STORAGED_PATH;
  options.outDir = "faults-runs";
  app.add_option("scenario", names, "scenarios to run (default: all)");
  app.add_flag("--list", list, "print the scenario names and what each does");
  app.add_option("--json", jsonPath, "also write the results as a JSON array to this file");
  app.add_option("--out", options.outDir, "where runs are kept, one directory per scenario")
      ->envname("DYNKV_FAULTS_OUT")
      ->capture_default_str();
  app.add_option("--storaged", options.storaged, "the storaged binary")->capture_default_str();
  app.add_option("--seconds", options.seconds, "workload duration per scenario")
      ->check(CLI::Range(5.0, 3600.0))
      ->capture_default_str();
  app.add_option("--converge", options.convergeSeconds,
                 "how long replicas may take to converge, without and then with reads")
      ->check(CLI::Range(1.0, 3600.0))
      ->capture_default_str();
  app.add_option("--anti-entropy-interval", options.antiEntropyIntervalSeconds,
                 "every node's anti-entropy interval (seconds); tombstones must be collected "
                 "within two of them after convergence, plus a margin")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();

  auto* checkCmd = app.add_subcommand("check", "check a kept run again");
  std::string checkDir;
  checkCmd->add_option("run_dir", checkDir, "a run's directory")->required();

  // The lab's roles, started by the runner inside namespaces.
  auto* clientCmd = app.add_subcommand("client", "(lab role) one workload client process");
  WorkloadOptions workload;
  std::vector<std::string> seeds;  // HOST:PORT,...
  clientCmd->add_option("--id", workload.client)->required();
  clientCmd->add_option("--threads", workload.threads)->check(CLI::Range(1, 64));
  clientCmd->add_option("--seeds", seeds)->delimiter(',')->required();
  clientCmd->add_option("--cluster", workload.cluster)->required();
  clientCmd->add_option("--seconds", workload.seconds)->check(CLI::Range(1.0, 3600.0));
  clientCmd->add_option("--delete-weight", workload.deleteWeight)->check(CLI::Range(0, 100));
  clientCmd->add_option("--history", workload.historyFile)->required();

  auto* observeCmd = app.add_subcommand("observe", "(lab role) final reads and convergence");
  ObserveOptions observe;
  observeCmd->add_option("--seeds", seeds)->delimiter(',')->required();
  observeCmd->add_option("--cluster", observe.cluster)->required();
  observeCmd->add_option("--run", observe.runDir)->required();
  observeCmd->add_option("--converge", observe.convergeSeconds);
  observeCmd->add_option("--anti-entropy-interval", observe.antiEntropyIntervalSeconds);

  auto* joinCmd = app.add_subcommand("join", "(lab role) join nodes to the ring");
  std::string cluster;
  std::vector<std::string> join;
  bool settle = false;
  double timeout = 60;
  joinCmd->add_option("--seeds", seeds)->delimiter(',')->required();
  joinCmd->add_option("--cluster", cluster)->required();
  joinCmd->add_option("--nodes", join)->delimiter(',')->required();
  joinCmd->add_flag("--settle", settle, "wait until exactly these nodes are up and settled");
  joinCmd->add_option("--timeout", timeout);

  auto* leaveCmd = app.add_subcommand("leave", "(lab role) take a node out of the ring");
  std::string leaving;
  leaveCmd->add_option("--seeds", seeds)->delimiter(',')->required();
  leaveCmd->add_option("--cluster", cluster)->required();
  leaveCmd->add_option("--node", leaving)->required();

  CLI11_PARSE(app, argc, argv);

  if (*clientCmd) {
    workload.seeds = seeds;
    return runWorkload(workload);
  }
  if (*observeCmd) {
    observe.seeds = seeds;
    return runObserver(observe);
  }
  if (*joinCmd) {
    return runJoin(seeds, cluster, join, settle ? join : std::vector<std::string>{}, timeout);
  }
  if (*leaveCmd) return runLeave(seeds, cluster, leaving);
  if (*checkCmd) {
    auto result = check(readHistory(checkDir), readFinalState(checkDir));
    RunSummary summary{checkDir, checkDir, result, "", verdictFor(result, "")};
    std::cout << table({summary});
    for (auto& a : result.anomalies) {
      std::cout << a.kind << "\t" << a.key << "\t" << a.value << "\t" << a.detail << "\n";
    }
    return summary.verdict == "pass" ? 0 : 1;
  }
  if (list) {
    for (auto& s : scenarios()) {
      std::cout << s.name << "\t" << s.description;
      if (!s.expectation.empty()) std::cout << " [expected to fail: " << s.expectation << "]";
      std::cout << "\n";
    }
    return 0;
  }
  try {
    options.self = selfPath();
    return runSuite(names, options, jsonPath);
  } catch (const std::exception& e) {
    std::cerr << "dynkv-faults: " << e.what() << std::endl;
    return 1;
  }
}

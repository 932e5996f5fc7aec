// One run of one fault scenario: a five-node cluster and three workload clients in a lab
// (lab.h), the scenario's faults injected while the clients run, then the observer's final
// reads and the checker's verdict.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "history.h"
#include "lab.h"
#include "report.h"

namespace dynkv::faults {

struct RunOptions {
  std::string self;             // this executable, run in the lab as client and observer
  std::string storaged;         // the storaged binary
  std::string outDir;           // runs go to outDir/SCENARIO/
  double seconds = 20;          // workload duration
  double convergeSeconds = 60;
  // Each convergence wait, from when the observer starts (right after the last heal, for a
  // -tail scenario): replicas must agree within 60 s of the heal. That is some five anti-entropy
  // rounds at the default interval (the failure detector must first stop suspecting a healed
  // node, and a round's exchanges run one after another); a wait ends as soon as it holds, so
  // only a failing run takes all of it.
  double antiEntropyIntervalSeconds = 10;
  // Every node's --anti-entropy-interval-ms (storaged's default), given explicitly so that the
  // observer knows how long tombstone collection may take (tombstoneWaitSeconds).
  uint32_t clients = 3, threads = 4;
};

class Run;

struct Scenario {
  std::string name;
  std::string description;
  std::string expectation;  // "": must pass; else why it is expected to fail today (xfail)
  bool tail = false;        // faults are healed only after the writes stop
  std::vector<std::string> ringAtStart = {"n1", "n2", "n3", "n4", "n5"};
  uint32_t deleteWeight = 25;         // percent of operations on del-* keys
  std::function<void(Run&)> prepare;  // before the nodes start (disks, clocks)
  std::function<void(Run&)> script;   // during the workload
};

const std::vector<Scenario>& scenarios();
// The full suite, in the order `dynkv-faults --list` prints it.

class Run {
 public:
  static constexpr const char* NODES[] = {"n1", "n2", "n3", "n4", "n5"};
  static constexpr uint16_t PORT = 7400;
  static constexpr const char* CLUSTER = "dynkv-faults";

  Run(const Scenario& scenario, const RunOptions& options);
  ~Run();

  RunSummary execute();
  // Everything: lab, cluster, workload with the scenario's faults, healing, observation,
  // checking, the timeline, and the lab removed with a check that nothing is left behind.
  // Throws Interrupted if a termination signal arrives (the lab is removed all the same).

  // ---- For scenario scripts ----

  void at(double fraction);
  // Waits until that fraction of the workload's duration has passed.

  using Fault = size_t;
  Fault begin(const std::string& name, const std::function<void()>& inject);
  // Injects a fault now and opens its window on the timeline.
  void end(Fault fault, const std::function<void()>& heal);
  // Heals it now, or after the writes stop in a -tail scenario.
  void endNow(Fault fault, const std::function<void()>& heal);
  // Heals it now, -tail or not (faults that are over by themselves, e.g. a restart).

  void kill(const std::string& node);     // kill -9, and reaped
  void restart(const std::string& node);  // with its data directory as it is
  void pause(const std::string& node);    // SIGSTOP
  void resume(const std::string& node);   // SIGCONT
  void wipe(const std::string& node);     // deletes its data directory (the node is down)
  void join(const std::string& node);
  // Starts the node if it is not running (nodes outside Scenario::ringAtStart are not started
  // before), then `admin join`, not waiting for its transfers.
  void leave(const std::string& node);  // `admin leave`
  void setClockOffset(const std::string& node, int64_t seconds);
  // Only for a node prepared with useFakeClock.
  void useFakeClock(const std::string& node);
  void useSmallDisk(const std::string& node, uint64_t bytes);
  void fillDisk(const std::string& node);
  void freeDisk(const std::string& node);

  Lab& lab() { return *lab_; }
  std::vector<std::string> nodes() const;        // n1..n5
  std::vector<std::string> clientHosts() const;  // c1..cK
  std::string address(const std::string& node) const;

 private:
  const Scenario& scenario_;
  const RunOptions& options_;
  std::string dir_;
  std::unique_ptr<Lab> lab_;
  std::map<std::string, pid_t> nodePids_;
  std::map<std::string, std::map<std::string, std::string>> nodeEnv_;
  std::vector<FaultWindow> windows_;
  std::vector<std::pair<Fault, std::function<void()>>> deferred_;
  double workloadStart_ = 0;  // steady clock, seconds

  std::string nodeDir(const std::string& node) const;
  void startNode(const std::string& node);
  void runInObserver(const std::vector<std::string>& args, double timeoutSeconds);
  void closeWindow(Fault fault);
  void writeFaults() const;
};

}  // namespace dynkv::faults

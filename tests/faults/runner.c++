#include "runner.h"

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "checker.h"
#include "workload.h"

namespace dynkv::faults {

namespace {

namespace fs = std::filesystem;

constexpr const char* FAKETIME_LIBRARY = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

double steadySeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t wallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string commaList(const std::vector<std::string>& items) {
  std::string s;
  for (auto& i : items) s += (s.empty() ? "" : ",") + i;
  return s;
}

void say(const std::string& scenario, const std::string& what) {
  std::cerr << "[" << scenario << "] " << what << std::endl;
}

}  // namespace

Run::Run(const Scenario& scenario, const RunOptions& options)
    : scenario_(scenario), options_(options), dir_(options.outDir + "/" + scenario.name) {}

Run::~Run() = default;

std::vector<std::string> Run::nodes() const {
  return {std::begin(NODES), std::end(NODES)};
}

std::vector<std::string> Run::clientHosts() const {
  std::vector<std::string> hosts;
  for (uint32_t c = 1; c <= options_.clients; c++) hosts.push_back("c" + std::to_string(c));
  return hosts;
}

std::string Run::address(const std::string& node) const {
  return lab_->host(node).ip + ":" + std::to_string(PORT);
}

std::string Run::nodeDir(const std::string& node) const {
  return dir_ + "/nodes/" + node;
}

void Run::startNode(const std::string& node) {
  fs::create_directories(nodeDir(node));
  std::vector<std::string> seeds;
  for (auto& n : {"n1", "n2", "n3"}) seeds.push_back(address(n));
  auto antiEntropyMillis = std::to_string(int64_t(options_.antiEntropyIntervalSeconds * 1000));
  std::vector<std::string> argv = {options_.storaged, "--data-dir", nodeDir(node) + "/data",
                                   "--listen", address(node), "--advertise", address(node),
                                   "--seeds", commaList(seeds), "--cluster", CLUSTER,
                                   "--anti-entropy-interval-ms", antiEntropyMillis,
                                   // Larger than any small disk: the disk fills, not the map.
                                   "--map-size", std::to_string(uint64_t(1) << 30)};
  nodePids_[node] = lab_->spawn(node, argv, nodeDir(node) + "/storaged.log", nodeEnv_[node]);
}

void Run::runInObserver(const std::vector<std::string>& args, double timeoutSeconds) {
  std::vector<std::string> argv = {options_.self};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_t pid = lab_->spawn("obs", argv, dir_ + "/observer.log");
  auto status = lab_->reap(pid, timeoutSeconds);
  if (!status) {
    lab_->signal(pid, SIGKILL);
    throw std::runtime_error("`dynkv-faults " + args.front() + "` in the observer took over " +
                             std::to_string(int(timeoutSeconds)) + " s");
  }
  if (*status != 0) {
    throw std::runtime_error("`dynkv-faults " + args.front() + "` in the observer failed (" +
                             std::to_string(*status) + "); see " + dir_ + "/observer.log");
  }
}

// ---- Scenario verbs ----

void Run::at(double fraction) {
  double wait = workloadStart_ + fraction * options_.seconds - steadySeconds();
  if (wait > 0) pauseFor(wait);
}

Run::Fault Run::begin(const std::string& name, const std::function<void()>& inject) {
  say(scenario_.name, "fault: " + name);
  windows_.push_back({name, wallMicros(), 0});
  inject();
  writeFaults();
  return windows_.size() - 1;
}

void Run::end(Fault fault, const std::function<void()>& heal) {
  if (scenario_.tail) {
    deferred_.emplace_back(fault, heal);
  } else {
    endNow(fault, heal);
  }
}

void Run::endNow(Fault fault, const std::function<void()>& heal) {
  say(scenario_.name, "healed: " + windows_.at(fault).name);
  heal();
  closeWindow(fault);
}

void Run::closeWindow(Fault fault) {
  windows_.at(fault).endMicros = wallMicros();
  writeFaults();
}

void Run::writeFaults() const {
  std::ofstream out(dir_ + "/faults.jsonl", std::ios::trunc);
  for (auto& w : windows_) out << toJsonLine(w) << '\n';
}

void Run::kill(const std::string& node) {
  lab_->signal(nodePids_.at(node), SIGKILL);
  nodePids_.erase(node);
}

void Run::restart(const std::string& node) {
  if (nodePids_.count(node) == 0) startNode(node);
}

void Run::pause(const std::string& node) {
  lab_->signal(nodePids_.at(node), SIGSTOP);
}
void Run::resume(const std::string& node) {
  lab_->signal(nodePids_.at(node), SIGCONT);
}

void Run::wipe(const std::string& node) {
  if (nodePids_.count(node) != 0) throw std::logic_error("wipe " + node + " while it runs");
  fs::remove_all(nodeDir(node) + "/data");
}

void Run::join(const std::string& node) {
  if (nodePids_.count(node) == 0) startNode(node);
  std::vector<std::string> seeds;
  for (auto& n : nodes()) seeds.push_back(address(n));
  runInObserver({"join", "--seeds", commaList(seeds), "--cluster", CLUSTER, "--nodes",
                 address(node), "--timeout", "30"},
                60);
}

void Run::leave(const std::string& node) {
  std::vector<std::string> seeds;
  for (auto& n : nodes()) seeds.push_back(address(n));
  runInObserver(
      {"leave", "--seeds", commaList(seeds), "--cluster", CLUSTER, "--node", address(node)}, 60);
}

void Run::useFakeClock(const std::string& node) {
  // libfaketime offsets the wall clock only (not the monotonic clock kj's timers use), read
  // from a file it re-reads every second, so the offset can change while the node runs.
  fs::create_directories(nodeDir(node));
  std::ofstream(nodeDir(node) + "/faketime") << "+0\n";
  nodeEnv_[node] = {{"LD_PRELOAD", FAKETIME_LIBRARY},
                    {"FAKETIME_TIMESTAMP_FILE", nodeDir(node) + "/faketime"},
                    {"FAKETIME_DONT_FAKE_MONOTONIC", "1"},
                    {"FAKETIME_CACHE_DURATION", "1"}};
}

void Run::setClockOffset(const std::string& node, int64_t seconds) {
  std::ofstream(nodeDir(node) + "/faketime", std::ios::trunc)
      << (seconds >= 0 ? "+" : "") << seconds << "\n";
}

// The small disk holds only the data directory, so the node's log outlives the mount.
void Run::useSmallDisk(const std::string& node, uint64_t bytes) {
  lab_->mountTmpfs(nodeDir(node) + "/data", bytes);
}

void Run::fillDisk(const std::string& node) {
  lab_->fillDisk(nodeDir(node) + "/data");
}
void Run::freeDisk(const std::string& node) {
  lab_->freeDisk(nodeDir(node) + "/data");
}

// ---- The run ----

RunSummary Run::execute() {
  fs::remove_all(dir_);
  fs::create_directories(dir_ + "/history");
  {
    std::ofstream(dir_ + "/scenario.json")
        << "{\"scenario\": \"" << scenario_.name << "\", \"description\": \""
        << scenario_.description << "\", \"seconds\": " << options_.seconds
        << ", \"tail\": " << (scenario_.tail ? "true" : "false") << "}\n";
  }
  std::vector<std::string> hosts = nodes();
  for (auto& c : clientHosts()) hosts.push_back(c);
  hosts.push_back("obs");
  lab_ = std::make_unique<Lab>(hosts);

  RunSummary summary;
  summary.scenario = scenario_.name;
  summary.runDir = dir_;
  summary.expectation = scenario_.expectation;
  std::string problem;
  try {
    if (scenario_.prepare) scenario_.prepare(*this);
    for (auto& n : scenario_.ringAtStart) startNode(n);
    std::vector<std::string> ring, all;
    for (auto& n : scenario_.ringAtStart) ring.push_back(address(n));
    for (auto& n : nodes()) all.push_back(address(n));
    say(scenario_.name, "cluster starting in " + dir_);
    runInObserver({"join", "--seeds", commaList(all), "--cluster", CLUSTER, "--nodes",
                   commaList(ring), "--settle", "--timeout", "90"},
                  120);

    say(scenario_.name, "workload: " + std::to_string(options_.clients) + " clients x " +
                            std::to_string(options_.threads) + " threads for " +
                            std::to_string(int(options_.seconds)) + " s");
    std::vector<pid_t> clients;
    workloadStart_ = steadySeconds();
    for (uint32_t c = 1; c <= options_.clients; c++) {
      auto host = "c" + std::to_string(c);
      clients.push_back(
          lab_->spawn(host,
                      {options_.self, "client", "--id", std::to_string(c), "--threads",
                       std::to_string(options_.threads), "--seeds", commaList(all), "--cluster",
                       CLUSTER, "--seconds", std::to_string(options_.seconds), "--delete-weight",
                       std::to_string(scenario_.deleteWeight), "--history",
                       dir_ + "/history/client-" + std::to_string(c) + ".jsonl"},
                      dir_ + "/" + host + ".log"));
    }
    if (scenario_.script) scenario_.script(*this);

    // The clients stop by themselves; one that hangs past its time is a finding, not a wait.
    for (auto pid : clients) {
      double left = workloadStart_ + options_.seconds + 30 - steadySeconds();
      auto status = lab_->reap(pid, std::max(left, 0.0));
      if (!status) {
        lab_->signal(pid, SIGKILL);
        problem += "a workload client hung past its time and was killed; ";
      } else if (*status != 0) {
        problem += "a workload client exited " + std::to_string(*status) + "; ";
      }
    }
    say(scenario_.name, "writes stopped");
    for (auto& [fault, heal] : deferred_) endNow(fault, heal);
    for (auto& w : windows_) {
      if (w.endMicros == 0) w.endMicros = wallMicros();
    }
    writeFaults();

    double tombstoneWait = tombstoneWaitSeconds(options_.antiEntropyIntervalSeconds);
    say(scenario_.name, "observing convergence (up to " +
                            std::to_string(int(options_.convergeSeconds)) +
                            " s, twice) and tombstone collection (up to " +
                            std::to_string(int(tombstoneWait)) + " s)");
    std::vector<std::string> members;
    for (auto& n : nodes()) {
      if (nodePids_.count(n) != 0) members.push_back(address(n));
    }
    runInObserver({"observe", "--seeds", commaList(members), "--cluster", CLUSTER, "--run", dir_,
                   "--converge", std::to_string(options_.convergeSeconds),
                   "--anti-entropy-interval", std::to_string(options_.antiEntropyIntervalSeconds)},
                  2 * options_.convergeSeconds + tombstoneWait + 300);
  } catch (const Interrupted&) {
    lab_.reset();
    throw;
  } catch (const std::exception& e) {
    problem += e.what();
  }

  lab_->cleanup();
  std::string left;
  if (lab_->leftovers(&left)) problem += "the lab left behind: " + left;
  lab_.reset();

  auto history = readHistory(dir_);
  if (problem.empty()) {
    summary.result = check(history, readFinalState(dir_));
  } else {
    summary.result.ops = history.size();
  }
  summary.verdict = problem.empty() ? verdictFor(summary.result, summary.expectation) : "FAIL";
  if (!problem.empty()) {
    summary.expectation = "run broken: " + problem;
    say(scenario_.name, "run broken: " + problem);
  }
  writeTimelineSvg(dir_ + "/timeline.svg", scenario_.name + ": " + scenario_.description, history,
                   readFaults(dir_));
  {
    std::ofstream anomalies(dir_ + "/anomalies.txt");
    for (auto& a : summary.result.anomalies) {
      anomalies << a.kind << "\t" << a.key << "\t" << a.value << "\t" << a.detail << "\n";
    }
  }
  return summary;
}

}  // namespace dynkv::faults

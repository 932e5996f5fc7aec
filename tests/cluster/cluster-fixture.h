// A real dynkv cluster for integration tests: storaged processes on loopback, in a
// temporary directory, on a port range of their own so that tests can run in parallel
// (`ctest -j`). The destructor always stops every node and removes the directory.
#pragma once

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <atomic>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <dynkv/client.h>

#include "local-cluster.h"

#ifndef DYNKV_STORAGED_PATH
#error "DYNKV_STORAGED_PATH must name the storaged binary (see tests/CMakeLists.txt)"
#endif

namespace dynkv::test {

inline bool portsFree(uint16_t base, uint32_t count) {
  // True when every port in [base, base + count) can be bound on loopback right now. The
  // sockets are held until all are probed, and bound without SO_REUSEADDR so that a port
  // still in TIME_WAIT counts as taken.
  std::vector<int> held;
  bool free = true;
  for (uint32_t i = 0; i < count && free; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    held.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(uint16_t(base + i));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  for (int fd : held) close(fd);
  return free;
}

inline uint16_t pickBasePort(uint32_t count) {
  // A random free range. It is drawn below the kernel's ephemeral range (32768 and up on
  // Linux by default), which clients' outgoing connections draw from: a port there could be
  // taken by some connection between a node's kill and its restart.
  uint32_t low = 20000, high = 60000;
  {
    std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
    uint32_t ephemeralLow = 0, ephemeralHigh = 0;
    if (range >> ephemeralLow >> ephemeralHigh && ephemeralLow > low + 1000) {
      high = std::min(high, ephemeralLow);
    }
  }
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<uint32_t> pick(low, high - count);
  for (int attempt = 0; attempt < 200; attempt++) {
    auto base = uint16_t(pick(rng));
    if (portsFree(base, count)) return base;
  }
  throw std::runtime_error("no free range of " + std::to_string(count) + " loopback ports");
}

inline std::string closedAddress() {
  // 127.0.0.1:PORT where nothing listens (free when probed; nothing of ours binds it).
  return "127.0.0.1:" + std::to_string(pickBasePort(1));
}

inline std::string makeTempDir(const std::string& prefix) {
  std::string pattern = "/tmp/" + prefix + "-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + pattern + " failed");
  }
  return pattern;
}

inline LocalClusterOptions testClusterOptions(const std::string& dir, uint32_t nodes,
                                              std::vector<std::string> extraArgs) {
  // A test cluster: in `dir`, on free ports, with the build's storaged, and named after its
  // directory so that no node of another test's cluster can gossip its way into it.
  LocalClusterOptions options;
  options.dir = dir;
  options.nodes = nodes;
  options.basePort = pickBasePort(nodes);
  options.storaged = DYNKV_STORAGED_PATH;
  options.extraArgs = std::move(extraArgs);
  options.cluster = std::filesystem::path(dir).filename().string();
  return options;
}

inline bool pollUntil(std::chrono::milliseconds timeout, const std::function<bool()>& condition) {
  // Polls `condition` every 20 ms until it holds (true) or `timeout` passes (false). Only for
  // effects that have no event to await, such as a background repair landing on a replica.
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

namespace detail {

// Storaged processes started by live fixtures, so that a test process that crashes (a
// segfault in the code under test) does not leave its cluster running: the destructor never
// runs then. Slots are handed out once per fixture and never reused.
inline std::array<std::atomic<pid_t>, 256> liveNodes{};
inline std::atomic<size_t> nextSlot{0};

inline void killLiveNodes(int signal) {
  // Async-signal-safe: kill(2) and signal(2) only. Catch2 reports the crash first, restores
  // the handler it found (this one) and re-raises.
  for (auto& pid : liveNodes) {
    pid_t p = pid.load();
    if (p > 0) ::kill(p, SIGKILL);
  }
  ::signal(signal, SIG_DFL);
  ::raise(signal);
}

inline bool installCrashReaper() {
  for (int s : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGTERM, SIGINT}) {
    ::signal(s, killLiveNodes);
  }
  return true;
}

inline const bool crashReaperInstalled = installCrashReaper();  // before Catch's main runs

}  // namespace detail

class ClusterFixture {
  // A running cluster of `nodes` storaged processes; node i listens on address(i).
 public:
  static constexpr std::chrono::seconds STARTUP_TIMEOUT{60};  // a loaded CI machine is slow

  explicit ClusterFixture(uint32_t nodes = 3, std::vector<std::string> extraArgs = {}) {
    // A range found free can still be taken before storaged binds it (by a test running in
    // parallel); then the node fails to come up and we try another range in a fresh directory.
    std::string lastError;
    for (int attempt = 0; attempt < 5; attempt++) {
      dir_ = makeTempDir("dynkv-cluster-test");
      cluster_ = std::make_unique<LocalCluster>(testClusterOptions(dir_, nodes, extraArgs));
      try {
        startAll();
        return;
      } catch (const std::exception& e) {
        lastError = e.what();
        tearDown();
      }
    }
    throw std::runtime_error("cannot start a local cluster: " + lastError);
  }

  ~ClusterFixture() { tearDown(); }

  ClusterFixture(const ClusterFixture&) = delete;
  ClusterFixture& operator=(const ClusterFixture&) = delete;

  LocalCluster& cluster() { return *cluster_; }
  std::vector<std::string> seeds() const { return cluster_->seeds(); }
  std::string address(size_t node) const { return cluster_->seeds().at(node); }

  ClientOptions clientOptions() const {
    // A generous deadline: these tests assert outcomes, not latency, and share the machine
    // (and its fsyncs: nodes run with sync durability) with whatever else is running.
    ClientOptions options;
    options.seeds = seeds();
    options.cluster = cluster_->clusterName();
    options.timeout = std::chrono::seconds(10);
    return options;
  }

  void killHard(size_t node) {
    // kill -9: no flush, no goodbye. Returns once the process is gone.
    cluster_->kill(node, SIGKILL);
    track();
  }

  void restart(size_t node) {
    cluster_->start(node);
    track();
    cluster_->waitListening(node, STARTUP_TIMEOUT);
  }

  void down() {
    cluster_->down(std::chrono::seconds(10));
    track();
  }

  void up() { startAll(); }

 private:
  std::string dir_;
  std::unique_ptr<LocalCluster> cluster_;
  size_t slot_ = 0;
  bool haveSlots_ = false;

  void startAll() {
    // Starts the stopped nodes and records them before up() joins and settles the cluster,
    // which takes a while: a crash meanwhile must not leak them either.
    for (size_t i = 0; i < cluster_->size(); i++) {
      if (!cluster_->running(i)) cluster_->start(i);
    }
    track();
    cluster_->up(STARTUP_TIMEOUT);
  }

  void track() {
    // Records the nodes' current pids for detail::killLiveNodes.
    if (!haveSlots_) {
      slot_ = detail::nextSlot.fetch_add(cluster_->size());
      haveSlots_ = true;
    }
    for (size_t i = 0; i < cluster_->size(); i++) {
      if (slot_ + i < detail::liveNodes.size()) detail::liveNodes[slot_ + i] = cluster_->pid(i);
    }
  }

  void untrack() {
    if (!haveSlots_) return;
    for (size_t i = 0; cluster_ && i < cluster_->size(); i++) {
      if (slot_ + i < detail::liveNodes.size()) detail::liveNodes[slot_ + i] = 0;
    }
    haveSlots_ = false;
  }

  void tearDown() {
    if (cluster_) {
      cluster_->down(std::chrono::seconds(10));
      untrack();
      cluster_.reset();
    }
    if (!dir_.empty()) {
      if (getenv("DYNKV_KEEP_TEST_DIRS") != nullptr) {
        fprintf(stderr, "keeping %s\n", dir_.c_str());
      } else {
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
      }
      dir_.clear();
    }
  }
};

}  // namespace dynkv::test

// dynkv-bench --workload anti-entropy (anti-entropy.h).
//
// Unlike the latency workloads this one stops and restarts nodes between measurements, which
// are blocking steps (process start, waiting for a port, polling the nodes' stats) on the
// benchmark's main thread. So the foreground load goes through the SDK's blocking Client, from
// threads of its own: each is one closed loop of gets, so K threads keep exactly K gets in
// flight, and they go on unchanged while the main thread stops, restarts and polls nodes.
#include "anti-entropy.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include <dynkv/client.h>
#include <nlohmann/json.hpp>

#include "admin.h"
#include "histogram.h"
#include "own-cluster.h"
#include "report.h"
#include "workload.h"

namespace dynkv::bench {

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t NODES = 3;     // N=3 on 3 nodes: every node holds every key, none falls back
constexpr size_t DIVERGED = 2;    // the node stopped while keys are overwritten (the third)
constexpr uint32_t WRITERS = 32;  // threads loading and overwriting keys

// Set by ^C or SIGTERM (a thread of its own waits for them): every wait of the run checks it,
// and the run unwinds, stopping the cluster on its way out.
std::atomic<bool> interrupted{false};

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

void checkInterrupted() {
  if (interrupted) throw Interrupted();
}

void pause(std::chrono::duration<double> length) {
  // A fixed stretch of measurement, cut short by an interruption.
  auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(length);
  while (Clock::now() < end) {
    checkInterrupted();
    std::this_thread::sleep_for(
        std::min<Clock::duration>(std::chrono::milliseconds(50), end - Clock::now()));
  }
}

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct GetStats {
  Histogram latency;  // ns, successful gets only
  uint64_t errors = 0;
  std::string lastError;

  void merge(const GetStats& other) {
    latency.merge(other.latency);
    errors += other.errors;
    if (!other.lastError.empty()) lastError = other.lastError;
  }
  double p999Micros() const { return latency.count() ? latency.percentile(99.9) / 1000 : 0; }
};

struct RepairPhase {
  bool ran = false;
  std::string skipped;  // why it did not run
  uint64_t keysOverwritten = 0;
  uint64_t overwriteFailures = 0;
  double convergeSeconds = 0;
  uint64_t bytesExchanged = 0;  // sum over the nodes of what their bytesSent grew by
  uint64_t keysRepaired = 0;    // likewise, keysRepaired
  std::vector<uint64_t> bytesSentByNode;
  std::map<std::string, uint64_t> bytesByCall;  // the same bytes split by Peer call
  std::string admission;  // as the nodes report it: on, off or mixed
  GetStats gets;
};

// ---- the foreground gets ----

class Foreground {
  // K threads, each a closed loop of gets of uniformly random keys, none of the keys the
  // benchmark overwrites (a get of one of those would repair it by read repair, and the
  // benchmark measures anti-entropy's repair). Latencies accumulate until collect().
 public:
  Foreground(Client& client, uint64_t keys, const std::vector<char>& excluded, uint32_t inflight)
      : client_(client), keys_(keys), excluded_(excluded), workers_(inflight) {
    for (auto& w : workers_) {
      w.thread = std::thread([this, &w]() { loop(w); });
    }
  }

  ~Foreground() {
    stop_ = true;
    for (auto& w : workers_) w.thread.join();
  }

  GetStats collect() {
    // What the gets since the last collect() measured (a get in flight counts in the next).
    GetStats out;
    for (auto& w : workers_) {
      std::lock_guard<std::mutex> lock(w.mutex);
      out.merge(w.stats);
      w.stats = GetStats();
    }
    return out;
  }

 private:
  struct Worker {
    std::thread thread;
    std::mutex mutex;
    GetStats stats;
  };

  Client& client_;
  uint64_t keys_;
  const std::vector<char>& excluded_;
  std::vector<Worker> workers_;
  std::atomic<bool> stop_{false};

  void loop(Worker& w) {
    std::mt19937_64 rng(std::random_device{}());
    std::uniform_int_distribution<uint64_t> pick(0, keys_ - 1);
    while (!stop_ && !interrupted) {
      uint64_t key;
      do key = pick(rng);
      while (excluded_[key]);
      auto start = Clock::now();
      std::string error;
      try {
        client_.get(Key("bench", keyName(key)));
      } catch (const std::exception& e) {
        error = e.what();
      }
      auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start);
      std::lock_guard<std::mutex> lock(w.mutex);
      if (error.empty()) {
        w.stats.latency.record(uint64_t(nanos.count()));
      } else {
        w.stats.errors++;
        w.stats.lastError = error;
      }
    }
  }
};

// ---- writes ----

uint64_t writeKeys(Client& client, const std::vector<uint64_t>& keys, const std::string& value,
                   std::vector<std::string>& contexts, const char* what) {
  // Each key once, WRITERS threads at a time, each put superseding the context last seen for
  // the key (so every object keeps one version). A failed put is retried a few times (the SDK
  // needs a call or two to notice a stopped node); returns how many still failed.
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> failures{0};
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < WRITERS; t++) {
    threads.emplace_back([&]() {
      for (size_t i = next++; i < keys.size() && !interrupted; i = next++) {
        uint64_t key = keys[i];
        std::string v = value;
        // Distinct values, so no write is a no-op on a replica.
        auto tag = std::to_string(i) + "/" + what;
        v.replace(0, std::min(v.size(), tag.size()), tag.substr(0, v.size()));
        bool ok = false;
        for (int attempt = 0; attempt < 5 && !ok; attempt++) {
          try {
            contexts[key] =
                client.put(Key("bench", keyName(key)), v, Context::fromToken(contexts[key]))
                    .token();
            ok = true;
          } catch (const std::exception&) {
          }
        }
        if (!ok) failures++;
      }
    });
  }
  // A line every 5 s while it lasts; joining is what waits for the writers.
  std::thread progress([&]() {
    auto last = Clock::now();
    while (next < keys.size() && !interrupted) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (secondsSince(last) >= 5) {
        fprintf(stderr, "  %s: %zu of %zu keys, %.0f s\n", what,
                std::min(size_t(next), keys.size()), keys.size(), secondsSince(start));
        last = Clock::now();
      }
    }
  });
  for (auto& t : threads) t.join();
  progress.join();
  checkInterrupted();
  fprintf(stderr, "  %s: %zu keys in %.1f s (%llu failed)\n", what, keys.size(),
          secondsSince(start), static_cast<unsigned long long>(failures.load()));
  return failures;
}

// ---- the nodes ----

bool storagedTakes(const std::string& storaged, const std::string& setting) {
  // Asks storaged itself: a setting it does not know is refused by name before anything else
  // (without --data-dir it starts nothing either way).
  std::string command = "'" + storaged + "' --" + setting + " off 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return false;
  std::string output;
  char buf[512];
  while (fgets(buf, sizeof(buf), pipe) != nullptr) output += buf;
  pclose(pipe);
  return output.find("unknown setting '" + setting + "'") == std::string::npos;
}

std::vector<NodeStats> statsOfAll(AdminClient& admin, const std::vector<std::string>& nodes) {
  std::vector<NodeStats> out;
  for (auto& node : nodes) out.push_back(admin.nodeStats(node, std::chrono::seconds(2)));
  return out;
}

bool treesEqual(const std::vector<NodeStats>& stats) {
  for (auto& s : stats) {
    if (s.antiEntropy.treesDigest != stats[0].antiEntropy.treesDigest) return false;
  }
  return true;
}

std::vector<NodeStats> waitConverged(const std::vector<std::string>& nodes, double timeoutSeconds,
                                     const char* what) {
  // Until every node reports the same trees digest. A node not answering yet (just restarted)
  // is not converged. Polling: convergence is a state of three processes, with no event to await.
  // (An AdminClient runs an event loop of its own, and a thread has one at a time: each wait
  // has its own client, and LocalCluster's waits theirs.)
  AdminClient admin(nodes);
  auto start = Clock::now(), lastLine = start;
  std::string problem = "the trees differ";
  for (;;) {
    checkInterrupted();
    try {
      auto stats = statsOfAll(admin, nodes);
      if (treesEqual(stats)) return stats;
      problem = "the trees differ";
    } catch (const std::exception& e) {
      problem = e.what();
    }
    if (secondsSince(start) > timeoutSeconds) {
      throw std::runtime_error(std::string(what) + ": the nodes' trees did not converge in " +
                               std::to_string(int(timeoutSeconds)) + " s (" + problem + ")");
    }
    if (secondsSince(lastLine) >= 5) {
      fprintf(stderr, "  %s: waiting for the trees to converge, %.0f s\n", what,
              secondsSince(start));
      lastLine = Clock::now();
    }
    pause(std::chrono::milliseconds(50));
  }
}

std::vector<NodeStats> waitIdle(const std::vector<std::string>& nodes) {
  // Until no node runs an exchange (10 s at most: rounds keep starting; the stats then are
  // the last read).
  AdminClient admin(nodes);
  auto start = Clock::now();
  for (;;) {
    checkInterrupted();
    auto stats = statsOfAll(admin, nodes);
    bool running = false;
    for (auto& s : stats) running |= s.antiEntropy.running;
    if (!running || secondsSince(start) > 10) return stats;
    pause(std::chrono::milliseconds(20));
  }
}

class Run {
 public:
  Run(const AntiEntropyBenchOptions& o, OwnCluster& own)
      : o_(o),
        cluster_(own.local()),
        nodes_(cluster_.seeds()),
        value_(o.valueSize, 'v'),
        contexts_(o.keys),
        excluded_(o.keys, 0) {
    ClientOptions options;
    options.seeds = nodes_;
    options.cluster = cluster_.clusterName();
    options.timeout = std::chrono::milliseconds(o.timeoutMillis);
    client_ = std::make_unique<Client>(options);
    // The keys each repair phase overwrites, chosen now and disjoint, so that the foreground
    // gets never touch them.
    std::vector<uint64_t> order(o.keys);
    for (uint64_t i = 0; i < o.keys; i++) order[i] = i;
    std::shuffle(order.begin(), order.end(), std::mt19937_64(std::random_device{}()));
    uint64_t count = std::max<uint64_t>(1, uint64_t(double(o.keys) * o.divergeFraction + 0.5));
    count = std::min(count, o.keys / 3);
    for (auto* set : {&divergeRepair_, &divergeNoAdmission_}) {
      set->assign(order.begin() + std::ptrdiff_t(set == &divergeRepair_ ? 0 : count),
                  order.begin() + std::ptrdiff_t(set == &divergeRepair_ ? count : 2 * count));
      for (auto k : *set) excluded_[k] = 1;
    }
  }

  GetStats idle;
  RepairPhase repair;
  RepairPhase noAdmission;
  double loadSeconds = 0;

  void run(bool admissionFlag) {
    std::vector<uint64_t> all(o_.keys);
    for (uint64_t i = 0; i < o_.keys; i++) all[i] = i;
    fprintf(stderr, "dynkv-bench: loading %llu keys\n", static_cast<unsigned long long>(o_.keys));
    auto start = Clock::now();
    if (writeKeys(*client_, all, value_, contexts_, "load") > 0) {
      throw std::runtime_error("some keys could not be loaded");
    }
    loadSeconds = secondsSince(start);
    waitConverged(nodes_, o_.convergeTimeoutSeconds, "after the load");

    Foreground foreground(*client_, o_.keys, excluded_, o_.inflight);
    fprintf(stderr, "dynkv-bench: phase idle, %.0f s of gets\n", o_.idleSeconds);
    foreground.collect();
    pause(std::chrono::duration<double>(o_.idleSeconds));
    idle = foreground.collect();

    fprintf(stderr, "dynkv-bench: phase repair (admission control as storaged defaults)\n");
    repair = diverge(foreground, divergeRepair_, {}, "repair");

    if (!admissionFlag) {
      noAdmission.skipped =
          "this storaged has no --admission setting (admission control is not in this build)";
      fprintf(stderr, "dynkv-bench: phase repair_no_admission skipped: %s\n",
              noAdmission.skipped.c_str());
      return;
    }
    fprintf(stderr,
            "dynkv-bench: phase repair_no_admission: restarting every node with "
            "--admission off\n");
    std::vector<std::string> off = {"--admission", "off"};
    for (size_t i = 0; i < NODES; i++) {
      // One at a time, so the other two keep serving the gets.
      cluster_.kill(i, SIGTERM);
      cluster_.start(i, off);
      cluster_.waitListening(i, std::chrono::seconds(30));
      cluster_.waitSettled(std::chrono::seconds(60));
    }
    waitConverged(nodes_, o_.convergeTimeoutSeconds, "after the restarts");
    noAdmission = diverge(foreground, divergeNoAdmission_, off, "repair_no_admission");
  }

 private:
  const AntiEntropyBenchOptions& o_;
  LocalCluster& cluster_;
  std::vector<std::string> nodes_;
  std::unique_ptr<Client> client_;
  std::string value_;
  std::vector<std::string> contexts_;  // per key: the context of its last write
  std::vector<char> excluded_;         // keys the foreground gets leave alone
  std::vector<uint64_t> divergeRepair_, divergeNoAdmission_;

  RepairPhase diverge(Foreground& foreground, const std::vector<uint64_t>& keys,
                      const std::vector<std::string>& args, const char* name) {
    RepairPhase phase;
    phase.ran = true;
    phase.keysOverwritten = keys.size();
    // 1. Stop a node and overwrite keys: the other two acknowledge every write (W=2), and with
    // no fourth node there is no fallback to hold a hint, so only anti-entropy can repair it.
    cluster_.kill(DIVERGED, SIGTERM);
    phase.overwriteFailures = writeKeys(*client_, keys, value_, contexts_, name);

    // 2. What the running nodes have sent so far; the restarted one counts from zero.
    std::vector<uint64_t> sentBefore(NODES, 0), repairedBefore(NODES, 0);
    std::map<std::string, uint64_t> byCallBefore;
    {
      AdminClient admin(nodes_);  // gone before waitConverged's: one event loop at a time
      for (size_t i = 0; i < NODES; i++) {
        if (i == DIVERGED) continue;
        auto stats = admin.nodeStats(nodes_[i], std::chrono::seconds(5));
        sentBefore[i] = stats.antiEntropy.bytesSent;
        repairedBefore[i] = stats.antiEntropy.keysRepaired;
        for (auto& [call, bytes] : stats.antiEntropy.byCall) byCallBefore[call] += bytes.sent;
      }
    }

    // 3. Restart it with its data; the gets from now on are the phase's.
    foreground.collect();
    auto restarted = Clock::now();
    cluster_.start(DIVERGED, args);
    cluster_.waitListening(DIVERGED, std::chrono::seconds(30));
    auto stats = waitConverged(nodes_, o_.convergeTimeoutSeconds, name);
    phase.convergeSeconds = secondsSince(restarted);
    phase.gets = foreground.collect();
    size_t admitting = 0;
    for (size_t i = 0; i < NODES; i++) {
      phase.bytesSentByNode.push_back(stats[i].antiEntropy.bytesSent - sentBefore[i]);
      phase.bytesExchanged += phase.bytesSentByNode.back();
      admitting += stats[i].admissionEnabled;
      for (auto& [call, bytes] : stats[i].antiEntropy.byCall) phase.bytesByCall[call] += bytes.sent;
    }
    for (auto& [call, bytes] : byCallBefore) phase.bytesByCall[call] -= bytes;
    phase.admission = admitting == NODES ? "on" : admitting == 0 ? "off" : "mixed";
    // An exchange counts the keys it repaired when it ends, which may be just after the trees
    // agree: they are read once no exchange is running.
    for (auto& s : waitIdle(nodes_)) phase.keysRepaired += s.antiEntropy.keysRepaired;
    for (auto before : repairedBefore) phase.keysRepaired -= before;
    fprintf(stderr,
            "  %s: admission %s (as the nodes report it); converged %.2f s after the restart, "
            "%llu bytes exchanged (sent by node",
            name, phase.admission.c_str(), phase.convergeSeconds,
            static_cast<unsigned long long>(phase.bytesExchanged));
    for (size_t i = 0; i < NODES; i++) {
      fprintf(stderr, " %zu: %llu%s", i + 1,
              static_cast<unsigned long long>(phase.bytesSentByNode[i]), i + 1 < NODES ? "," : ")\n");
    }
    fprintf(stderr, "  %s: bytes by call:", name);
    for (auto& [call, bytes] : phase.bytesByCall) {
      fprintf(stderr, " %s %llu", call.c_str(), static_cast<unsigned long long>(bytes));
    }
    fprintf(stderr, "\n");
    return phase;
  }
};

// ---- the report ----

std::string ratio(double value, double base) {
  if (base <= 0 || value <= 0) return "-";
  char buf[32];
  snprintf(buf, sizeof(buf), "%.2f×", value / base);
  return buf;
}

nlohmann::ordered_json orNull(bool known, double value) {
  return known ? nlohmann::ordered_json(value) : nlohmann::ordered_json(nullptr);
}

nlohmann::ordered_json getsJson(const GetStats& g) {
  auto us = [&](double p) { return g.latency.count() ? g.latency.percentile(p) / 1000 : 0.0; };
  return {{"count", g.latency.count()},
          {"errors", g.errors},
          {"p50", us(50)},
          {"p99", us(99)},
          {"p999", us(99.9)},
          {"mean", g.latency.mean() / 1000}};
}

nlohmann::ordered_json phaseJson(const RepairPhase& p) {
  if (!p.ran) return {{"skipped", p.skipped}};
  return {{"admission", p.admission},
          {"keys_overwritten", p.keysOverwritten},
          {"overwrite_failures", p.overwriteFailures},
          {"converge_s", p.convergeSeconds},
          {"bytes_exchanged", p.bytesExchanged},
          {"keys_repaired", p.keysRepaired},
          {"bytes_sent_by_node", p.bytesSentByNode},
          {"bytes_by_call", p.bytesByCall},
          {"gets", getsJson(p.gets)}};
}

}  // namespace

int runAntiEntropyBench(const AntiEntropyBenchOptions& o, const std::string& commandLine) {
  // Before any thread starts, so that every one inherits the mask and only the watcher takes
  // the signals (the nodes unblock them: LocalCluster::start).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([signals]() {
    int signal = 0;
    sigwait(&signals, &signal);
    fprintf(stderr, "dynkv-bench: interrupted: stopping the cluster\n");
    interrupted = true;
  }).detach();

  auto storaged = LocalCluster::findStoraged();
  bool admissionFlag = storagedTakes(storaged, "admission");
  fprintf(stderr,
          "dynkv-bench: starting a local %u-node cluster (%s durability, anti-entropy every %u "
          "ms)\n",
          NODES, o.durability.c_str(), o.intervalMillis);
  OwnCluster own(NODES,
                 {"--durability", o.durability, "--anti-entropy-interval-ms",
                  std::to_string(o.intervalMillis)},
                 o.keep);
  Run run(o, own);
  try {
    run.run(admissionFlag);
  } catch (const Interrupted&) {
    return 130;
  }

  uint64_t keyBytes = keyName(0).size();
  uint64_t dataBytes = o.keys * (keyBytes + o.valueSize);
  auto& idle = run.idle;
  auto& repair = run.repair;
  auto& noAdmission = run.noAdmission;

  std::vector<std::pair<std::string, std::string>> settings = {
      {"cluster", "local, 3 nodes, N=3 R=2 W=2, " + o.durability +
                      " durability, storaged --anti-entropy-interval-ms " +
                      std::to_string(o.intervalMillis)},
      {"keys", std::to_string(o.keys) + " of " + std::to_string(o.valueSize) + " B (" +
                   std::to_string(keyBytes) + " B keys), loaded in " +
                   std::to_string(int(run.loadSeconds + 0.5)) + " s"},
      {"divergence", std::to_string(repair.keysOverwritten) +
                         " keys overwritten per repair phase while node 3 is stopped"},
      {"gets", std::to_string(o.inflight) +
                   " in flight, uniform over the keys never overwritten (no read repair of "
                   "diverged keys)"},
      {"idle", std::to_string(int(o.idleSeconds)) + " s"},
  };
  printf("\n%s\n", commandLine.c_str());
  for (auto& [name, value] : settings) printf("  %-12s %s\n", name.c_str(), value.c_str());

  printf("\n%-21s %s%9s %7s %11s %16s %10s %9s\n", "phase", pad("get p99.9 µs", 20).c_str(), "gets",
         "errors", "converge s", "bytes exchanged", "of data", "repaired");
  auto row = [&](const char* name, const GetStats& g, const RepairPhase* p) {
    char latency[64];
    if (g.latency.count() == 0) {
      snprintf(latency, sizeof(latency), "-");
    } else if (p == nullptr) {
      snprintf(latency, sizeof(latency), "%.0f", g.p999Micros());
    } else {
      snprintf(latency, sizeof(latency), "%.0f (%s)", g.p999Micros(),
               ratio(g.p999Micros(), idle.p999Micros()).c_str());
    }
    printf("%-21s %s%9llu %7llu", name, pad(latency, 20).c_str(),
           static_cast<unsigned long long>(g.latency.count()),
           static_cast<unsigned long long>(g.errors));
    if (p == nullptr) {
      printf("\n");
    } else {
      printf(" %11.2f %16llu %9.2f%% %9llu\n", p->convergeSeconds,
             static_cast<unsigned long long>(p->bytesExchanged),
             100.0 * double(p->bytesExchanged) / double(dataBytes),
             static_cast<unsigned long long>(p->keysRepaired));
    }
  };
  row("idle", idle, nullptr);
  row("repair", repair.gets, &repair);
  if (noAdmission.ran) {
    row("repair_no_admission", noAdmission.gets, &noAdmission);
  } else {
    printf("%-21s skipped: %s\n", "repair_no_admission", noAdmission.skipped.c_str());
  }
  printf(
      "\ndata set %llu bytes (keys × (key + value)); goal: bytes exchanged ≤ 3%% of it: %s\n",
      static_cast<unsigned long long>(dataBytes),
      double(repair.bytesExchanged) <= 0.03 * double(dataBytes) &&
              (!noAdmission.ran || double(noAdmission.bytesExchanged) <= 0.03 * double(dataBytes))
          ? "met"
          : "missed");
  for (auto [name, p] : {std::pair<const char*, const RepairPhase*>{"repair", &repair},
                         {"repair_no_admission", &noAdmission}}) {
    if (p->overwriteFailures) {
      printf("%s: %llu overwrites failed\n", name,
             static_cast<unsigned long long>(p->overwriteFailures));
    }
    if (p->gets.errors) printf("last %s get error: %s\n", name, p->gets.lastError.c_str());
  }
  if (idle.errors) printf("last idle get error: %s\n", idle.lastError.c_str());
  fflush(stdout);

  if (!o.json.empty()) {
    nlohmann::ordered_json config = nlohmann::ordered_json::object();
    for (auto& [name, value] : settings) config[name] = value;
    nlohmann::ordered_json ae = {
        {"bytes_exchanged", repair.bytesExchanged},
        {"bytes_data", dataBytes},
        {"bytes_ratio", double(repair.bytesExchanged) / double(dataBytes)},
        {"converge_s", repair.convergeSeconds},
        {"get_p999_us",
         {{"idle", idle.p999Micros()},
          {"repair", repair.gets.p999Micros()},
          {"repair_no_admission", orNull(noAdmission.ran, noAdmission.gets.p999Micros())}}},
        {"get_p999_ratio_to_idle",
         {{"repair", orNull(idle.p999Micros() > 0, repair.gets.p999Micros() / idle.p999Micros())},
          {"repair_no_admission", orNull(noAdmission.ran && idle.p999Micros() > 0,
                                         noAdmission.gets.p999Micros() / idle.p999Micros())}}},
        {"converge_s_no_admission", orNull(noAdmission.ran, noAdmission.convergeSeconds)},
        {"bytes_exchanged_no_admission",
         orNull(noAdmission.ran, double(noAdmission.bytesExchanged))},
        {"anti_entropy_interval_ms", o.intervalMillis},
        {"phases",
         {{"idle", {{"seconds", o.idleSeconds}, {"gets", getsJson(idle)}}},
          {"repair", phaseJson(repair)},
          {"repair_no_admission", phaseJson(noAdmission)}}}};
    nlohmann::ordered_json out = {
        {"unit", "us"}, {"command", commandLine}, {"config", config}, {"anti_entropy", ae}};
    std::ofstream file(o.json);
    file << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    if (!file) throw std::runtime_error("cannot write " + o.json);
    fprintf(stderr, "dynkv-bench: wrote %s\n", o.json.c_str());
  }
  bool clean = idle.errors == 0 && repair.gets.errors == 0 && noAdmission.gets.errors == 0 &&
               repair.overwriteFailures == 0 && noAdmission.overwriteFailures == 0;
  return clean ? 0 : 1;
}

}  // namespace dynkv::bench

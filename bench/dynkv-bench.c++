// dynkv-bench: client-driven against server-driven coordination, and both against the
// transport floor, on one cluster in one run (issue #4; the paper's Table 2).
//
// Everything runs on one kj event loop: the SDK's AsyncClient (client-driven), the
// benchmark's Transport (server-driven requests and the ping floor), the progress line. So
// "K in flight" is exact: K requests of the mode being measured are outstanding at any time,
// and nothing else is. The modes are measured in interleaved blocks (floor, client, server,
// rotating which goes first) so that whatever the machine does meanwhile hits all of them
// alike. `--workload anti-entropy`, the cost of repairing a diverged replica, is a run of its
// own (anti-entropy.h).
#include <dynkv/async-client.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <kj/debug.h>
#include <kj/vector.h>
#include <time.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <variant>

#include <CLI/CLI.hpp>

#include "anti-entropy.h"
#include "command-line-parse.h"
#include "dynkv-version.h"
#include "own-cluster.h"
#include "report.h"
#include "transport.h"
#include "tls-cost.h"
#include "workload.h"

namespace dynkv::bench {
namespace {

enum class Mode { FLOOR, CLIENT, SERVER };

struct Options {
  std::vector<std::string> seeds;
  uint32_t nodes = 5;
  std::string durability = "buffered";
  uint64_t ops = 20000;
  double duration = 0;
  uint32_t inflight = 1;
  Workload workload = Workload::parse("a");
  uint64_t keys = 100000;
  uint32_t valueSize = 100;
  bool zipfian = true;
  bool client = true, server = true;
  uint32_t n = 3, r = 2, w = 2;
  NamespaceKind kind = NamespaceKind::VECTOR_CLOCK;
  uint32_t timeoutMillis = 2000;
  uint64_t block = 0;
  std::string json, plot;
  std::string cluster = "dynkv", secret;
  bool keep = false;
  bool antiEntropy = false;  // --workload anti-entropy
  bool tlsCost = false;      // --workload tls
  bool inflightGiven = false, durationGiven = false;
  uint32_t aeIntervalMillis = 1000;
  double convergeTimeout = 300;
};

std::string versionText() {
  return std::string("dynkv-bench ") + DYNKV_VERSION + " (git " + DYNKV_GIT_REVISION + ")";
}

std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    auto comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

struct Exit {
  // Answered without running: print `text` (stdout when `code` is 0, else stderr), exit `code`.
  int code;
  std::string text;
};

Exit usageError(const std::string& message) {
  return {2, "dynkv-bench: " + message + "\nRun `dynkv-bench --help` for its flags.\n"};
}

// The command line, parsed without running anything (CLI11, strict like `dynkv`'s): the
// options, or what to print and the exit code — 0 for --help and --version, 2 for a usage
// error (an unknown flag, named; a value not one of the choices or out of its range).
std::variant<Options, Exit> parseOptions(int argc, char** argv) {
  Options o;
  CLI::App app{
      "dynkv-bench: measures get and put latency with client-driven coordination (the SDK)\n"
      "and server-driven coordination (each request to a random node, which coordinates it),\n"
      "in interleaved blocks on one cluster, against a transport floor: a no-op RPC fanned\n"
      "out R-of-N like a quorum read. Without --seeds it starts its own local cluster.",
      "dynkv-bench"};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_version_flag("--version", versionText(), "print the version and git revision");
  // A whole number, refused (never wrapped) outside [min, max]; CLI11 shows the range.
  auto number = [&app](const std::string& flag, const std::string& valueName, auto& into,
                       const std::string& meaning, uint64_t min, uint64_t max) {
    return app.add_option("--" + flag, into, meaning)
        ->type_name(valueName)
        ->check(CLI::Range(min, max));
  };
  std::string seeds, workload = "a", dist = "zipfian", mode = "both", kind = "vc";
  app.add_option("--seeds", seeds, "an existing cluster (default: start a local one)")
      ->type_name("HOST:PORT,...");
  number("nodes", "K", o.nodes, "local cluster size (default 5)", 1, 64);
  app.add_option("--durability", o.durability, "local cluster durability (default buffered)")
      ->type_name("sync|buffered")
      ->check(CLI::IsMember({"sync", "buffered"}));
  number("ops", "N", o.ops, "measured operations per mode (default 20000)", 1,
         uint64_t(1) << 40);
  auto* duration = number("duration", "SEC", o.duration,
                          "measure for SEC seconds in all instead of --ops; with --workload "
                          "anti-entropy: the idle phase (default 10)",
                          1, 86400);
  auto* inflight = number("inflight", "K", o.inflight,
                          "requests outstanding at once (default 1; 64 for throughput; "
                          "anti-entropy: 4)",
                          1, 4096);
  app.add_option("--workload", workload,
                 "YCSB core workload (default a); w: writes only; anti-entropy: instead, what "
                 "repairing a diverged replica costs, on a local 3-node cluster of its own: "
                 "get p99.9 idle, during anti-entropy's repair with and without admission "
                 "control, bytes exchanged and time to converge (takes --keys, --value-size, "
                 "--inflight, --duration, --durability, --timeout, --json, --keep, "
                 "--ae-interval-ms, --converge-timeout); tls: what mutual TLS costs, gets "
                 "and puts against a plain and a TLS local cluster in interleaved rounds, p50 "
                 "and throughput of each (takes --nodes, --keys, --value-size, --inflight: "
                 "callers, default 4, --duration: default 10, --durability, --keep)")
      ->type_name("a|b|c|f|w|anti-entropy|tls")
      ->check(CLI::IsMember(
          {"a", "b", "c", "f", "w", "A", "B", "C", "F", "W", "anti-entropy", "tls"}));
  number("ae-interval-ms", "MS", o.aeIntervalMillis,
         "anti-entropy workload: its cluster's anti-entropy interval (default 1000)", 100,
         3600000);
  number("converge-timeout", "SEC", o.convergeTimeout,
         "anti-entropy workload: how long to wait for the trees to converge (default 300)", 1,
         86400);
  number("keys", "K", o.keys, "key space, loaded before measuring (default 100000)", 1,
         uint64_t(1) << 32);
  number("value-size", "B", o.valueSize, "bytes per value (default 100)", 0, 1 << 20);
  app.add_option("--dist", dist, "key distribution (default zipfian, theta 0.99, scrambled)")
      ->type_name("uniform|zipfian")
      ->check(CLI::IsMember({"uniform", "zipfian"}));
  app.add_option("--mode", mode, "coordination modes to measure (default both)")
      ->type_name("client|server|both")
      ->check(CLI::IsMember({"client", "server", "both"}));
  number("n", "N", o.n, "replicas per key (default 3)", 1, 64);
  number("r", "R", o.r, "replies a read waits for (default 2)", 1, 64);
  number("w", "W", o.w, "acknowledgements a write waits for (default 2)", 1, 64);
  app.add_option("--namespace", kind, "vector-clock (default) or last-write-wins namespace")
      ->type_name("vc|lww")
      ->check(CLI::IsMember({"vc", "vector-clock", "lww", "last-write-wins"}));
  number("timeout", "MS", o.timeoutMillis, "per-request deadline (default 2000)", 1, 600000);
  number("block", "OPS", o.block,
         "operations per interleaved block (default max(200, 32 * --inflight))", 1,
         uint64_t(1) << 32);
  app.add_option("--json", o.json, "write the results as JSON (microseconds)")
      ->type_name("FILE");
  app.add_option("--plot", o.plot,
                 "draw the latency CDFs with gnuplot (not installed by dynkv-bench: "
                 "apt-get install gnuplot-nox)")
      ->type_name("FILE.svg");
  app.add_option("--cluster", o.cluster, "the cluster's name (default dynkv)")
      ->type_name("NAME");
  app.add_option("--secret", o.secret, "the cluster's shared secret (default none)")
      ->type_name("SECRET");
  app.add_flag("--keep", o.keep, "leave the local cluster's directory (logs) behind");
  app.footer("exit codes: 0 done, 1 a failure (cluster, plot), 2 usage, 130 interrupted");
  auto parsed = parseArguments(app, argc, argv, versionText());
  if (parsed.done()) return Exit{0, parsed.text};
  if (parsed.outcome == ParsedArguments::Outcome::USAGE) return usageError(parsed.text);
  o.seeds = splitList(seeds);
  o.durationGiven = duration->count() > 0;
  o.inflightGiven = inflight->count() > 0;
  o.antiEntropy = workload == "anti-entropy";
  o.tlsCost = workload == "tls";
  if (!o.antiEntropy && !o.tlsCost) o.workload = Workload::parse(workload);
  o.zipfian = dist == "zipfian";
  o.client = mode != "server";
  o.server = mode != "client";
  o.kind = kind == "lww" || kind == "last-write-wins" ? NamespaceKind::LAST_WRITE_WINS
                                                      : NamespaceKind::VECTOR_CLOCK;
  if (app.count("--seeds") && o.seeds.empty()) return usageError("--seeds names no node");
  if (o.r > o.n || o.w > o.n) {
    return usageError("R (" + std::to_string(o.r) + ") and W (" + std::to_string(o.w) +
                      ") must not exceed N (" + std::to_string(o.n) + ")");
  }
  if (o.seeds.empty() && o.n > o.nodes) {
    return usageError("N=" + std::to_string(o.n) + " needs at least that many nodes (--nodes " +
                      std::to_string(o.nodes) + ")");
  }
  if (o.block == 0) o.block = std::max<uint64_t>(200, uint64_t(o.inflight) * 32);
  return o;
}

double cpuSeconds(pid_t pid) {
  // Time the process (its main thread: dynkv-bench and storaged run one event loop each) has
  // spent on a CPU, in ns resolution: the first field of /proc/PID/schedstat. 0 if unknown.
  std::ifstream in(pid == 0 ? std::string("/proc/self/schedstat")
                            : "/proc/" + std::to_string(pid) + "/schedstat");
  uint64_t ns = 0;
  in >> ns;
  return double(ns) / 1e9;
}

uint64_t monotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// ---- the benchmark ----

class Bench {
 public:
  Bench(const Options& o, kj::AsyncIoContext& io, std::vector<std::string> seeds,
        size_t expectNodes, std::vector<pid_t> nodePids)
      : o_(o),
        timer_(io.provider->getTimer()),
        transport_(io.provider->getNetwork(), timer_, seeds, o.cluster, o.secret),
        rng_(std::random_device{}()),
        keys_(o.keys, o.zipfian),
        contexts_(o.keys),
        expectNodes_(expectNodes),
        nodePids_(kj::mv(nodePids)) {
    ns_ = o.kind == NamespaceKind::LAST_WRITE_WINS ? "bench-lww" : "bench";
    ClientOptions client;
    client.seeds = seeds;
    client.cluster = o.cluster;
    client.secret = o.secret;
    client.n = o.n;
    client.r = o.r;
    client.w = o.w;
    client.timeout = std::chrono::milliseconds(o.timeoutMillis);
    if (o.kind == NamespaceKind::LAST_WRITE_WINS) client.namespaces[ns_] = o.kind;
    client_ = AsyncClient::create(io.provider->getNetwork(), timer_, kj::mv(client));
    settings_.kind = o.kind;
    settings_.n = o.n;
    settings_.r = o.r;
    settings_.w = o.w;
    settings_.timeoutMillis = o.timeoutMillis;
    value_.resize(o.valueSize);
    for (auto& c : value_) c = char('a' + rng_() % 26);
    results.client.ran = o.client;
    results.server.ran = o.server;
    results.nodesCpuKnown = !nodePids_.empty();
    results.cores = unsigned(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  }

  Results results;
  bool interrupted = false;

  // The cluster as it answered: the members of its partition map (fetched before the run).
  size_t clusterNodes() const { return transport_.map().nodes().size(); }
  uint64_t mapVersion() const { return transport_.map().version(); }

  kj::Promise<void> run() {
    return waitForView(0)
        .then([this]() {
          size_t nodes = clusterNodes();
          if (nodes < o_.n) {
            // The preference lists are shorter than N: say so before figures that mislead.
            fprintf(stderr, "%sdynkv-bench: warning: N=%u but the cluster has %zu node%s\n",
                    isatty(2) ? "\r" : "", o_.n, nodes, nodes == 1 ? "" : "s");
          }
          return load();
        })
        .then([this]() { return measure(); });
  }

  void interrupt() {
    interrupted = true;
    progress("interrupted: finishing the requests in flight");
  }

  void startProgress() { progressTask_ = progressLoop().eagerlyEvaluate(nullptr); }

  void endProgress() {
    progressTask_ = nullptr;
    if (isatty(2)) fprintf(stderr, "\r%-100s\r", "");
  }

 private:
  struct Block {
    Mode mode;
    uint64_t ops;
    bool record;
    uint64_t issued = 0;
    uint64_t done = 0;
  };

  const Options& o_;
  kj::Timer& timer_;
  Transport transport_;
  kj::Own<AsyncClient> client_;
  std::mt19937_64 rng_;
  KeyChooser keys_;
  std::vector<std::string> contexts_;  // per key: the latest context seen (read or write)
  std::string ns_;
  std::string value_;
  uint64_t writes_ = 0;
  Settings settings_;
  CallOptions callOptions_;
  size_t expectNodes_;
  std::vector<pid_t> nodePids_;
  uint64_t startNanos_ = monotonicNanos();
  std::function<std::string()> status_ = [] { return std::string("starting"); };
  kj::Promise<void> progressTask_ = nullptr;

  kj::Promise<void> progressLoop() {
    // Redrawn in place on a terminal; a line every 5 s otherwise (logs, CI).
    bool tty = isatty(2);
    return timer_.afterDelay((tty ? 250 : 5000) * kj::MILLISECONDS).then([this]() {
      progress(status_());
      return progressLoop();
    });
  }

  void progress(const std::string& line) {
    if (isatty(2)) {
      fprintf(stderr, "\r%-100s", line.c_str());
    } else {
      fprintf(stderr, "%s\n", line.c_str());
    }
    fflush(stderr);
  }

  double elapsed() const { return double(monotonicNanos() - startNanos_) / 1e9; }

  kj::Promise<void> waitForView(int attempt) {
    // A node's view may still be filling in just after start-up: wait (10 s at most) until
    // it has every node of our own cluster.
    return transport_.fetchView().then([this, attempt]() -> kj::Promise<void> {
      if (transport_.map().nodes().size() >= expectNodes_ || attempt >= 100) {
        return kj::READY_NOW;
      }
      return timer_.afterDelay(100 * kj::MILLISECONDS).then([this, attempt]() {
        return waitForView(attempt + 1);
      });
    });
  }

  std::string nextValue() {
    // Distinct values, so that last-write-wins ties and no-op replication never flatter a run.
    std::string v = value_;
    uint64_t n = ++writes_;
    for (size_t i = 0; i < v.size() && i < 8; i++) v[i] = char('a' + (n >> (4 * i)) % 16);
    return v;
  }

  // ---- one request of each kind, in each mode ----

  kj::Promise<Outcome> get(Mode mode, uint64_t key) {
    if (mode == Mode::CLIENT) {
      return client_->get(Key(ns_, keyName(key)), callOptions_).then([](Result<GetResult> r) {
        if (!r.ok()) return Outcome{false, {}, r.error().what()};
        return Outcome{true, r.value().context.bytes(), {}};
      });
    }
    return transport_.serverGet(ns_, keyName(key), settings_);
  }

  kj::Promise<Outcome> put(Mode mode, uint64_t key, std::string context) {
    if (mode == Mode::CLIENT) {
      return client_
          ->put(Key(ns_, keyName(key)), nextValue(), Context(kj::mv(context)), callOptions_)
          .then([](Result<Context> r) {
            if (!r.ok()) return Outcome{false, {}, r.error().what()};
            return Outcome{true, r.value().bytes(), {}};
          });
    }
    return transport_.serverWrite(ns_, keyName(key), nextValue(), context, settings_);
  }

  ModeStats& statsFor(Mode mode) { return mode == Mode::CLIENT ? results.client : results.server; }

  static void note(OpStats& stats, const Outcome& outcome, uint64_t startNanos, bool record) {
    if (!record) return;
    if (outcome.ok) {
      stats.latency.record(monotonicNanos() - startNanos);
    } else {
      stats.errors++;
      stats.lastError = outcome.error;
    }
  }

  kj::Promise<void> timedGet(Mode mode, uint64_t key, bool record,
                             kj::Function<kj::Promise<void>(Outcome)> then) {
    uint64_t start = monotonicNanos();
    return get(mode, key).then(
        [this, mode, key, record, start, then = kj::mv(then)](Outcome outcome) mutable {
          note(statsFor(mode).read, outcome, start, record);
          if (outcome.ok) contexts_[key] = outcome.context;
          return then(kj::mv(outcome));
        });
  }

  kj::Promise<void> timedPut(Mode mode, uint64_t key, bool record) {
    uint64_t start = monotonicNanos();
    return put(mode, key, contexts_[key]).then([this, mode, key, record, start](Outcome outcome) {
      note(statsFor(mode).write, outcome, start, record);
      if (outcome.ok) contexts_[key] = outcome.context;
    });
  }

  kj::Promise<void> oneOp(Mode mode, bool record) {
    auto kind = o_.workload.next(rng_);
    uint64_t key = keys_.next(rng_);
    if (mode == Mode::FLOOR) {
      uint64_t start = monotonicNanos();
      return transport_.floor(ns_, keyName(key), o_.n, o_.r, o_.timeoutMillis)
          .then([this, start, record](Outcome outcome) {
            note(results.floor, outcome, start, record);
          });
    }
    switch (kind) {
      case OpKind::READ:
        return timedGet(mode, key, record, [](Outcome) { return kj::READY_NOW; });
      case OpKind::UPDATE:
        return timedPut(mode, key, record);
      case OpKind::READ_MODIFY_WRITE:
        return timedGet(mode, key, record, [this, mode, key, record](Outcome read) {
          if (!read.ok) return kj::Promise<void>(kj::READY_NOW);
          return timedPut(mode, key, record);
        });
    }
    KJ_UNREACHABLE;
  }

  // ---- blocks of operations, K in flight ----

  kj::Promise<void> worker(Block& block) {
    if (block.issued >= block.ops || interrupted) return kj::READY_NOW;
    block.issued++;
    return oneOp(block.mode, block.record).then([this, &block]() {
      block.done++;
      return worker(block);
    });
  }

  kj::Promise<void> runBlock(Mode mode, uint64_t ops, bool record) {
    auto block = kj::heap<Block>(Block{mode, ops, record});
    auto& ref = *block;
    kj::Vector<kj::Promise<void>> workers;
    for (uint64_t i = 0; i < std::min<uint64_t>(o_.inflight, ops); i++) {
      workers.add(worker(ref));
    }
    uint64_t start = monotonicNanos();
    double benchCpu = cpuSeconds(0), nodesCpu = nodesCpuSeconds();
    return kj::joinPromises(workers.releaseAsArray())
        .then([this, mode, record, start, benchCpu, nodesCpu, &ref]() {
          if (!record) return;
          auto& totals = mode == Mode::FLOOR ? results.floorTotals : statsFor(mode).totals;
          totals.seconds += double(monotonicNanos() - start) / 1e9;
          totals.ops += ref.issued;
          totals.benchCpuSeconds += cpuSeconds(0) - benchCpu;
          totals.nodesCpuSeconds += nodesCpuSeconds() - nodesCpu;
        })
        .attach(kj::mv(block));
  }

  double nodesCpuSeconds() const {
    double sum = 0;
    for (pid_t pid : nodePids_) sum += cpuSeconds(pid);
    return sum;
  }

  // ---- loading the keys ----

  kj::Promise<void> loadWorker(uint64_t& next) {
    // Writes each key once, client-driven. On a cluster of our own the keys are new (blind
    // writes); on an existing one each is read first so that its context supersedes what
    // earlier runs left, keeping objects to one version.
    if (next >= o_.keys || interrupted) return kj::READY_NOW;
    uint64_t key = next++;
    kj::Promise<void> write = nullptr;
    if (o_.seeds.empty()) {
      write = timedPut(Mode::CLIENT, key, false);
    } else {
      write = timedGet(Mode::CLIENT, key, false,
                       [this, key](Outcome) { return timedPut(Mode::CLIENT, key, false); });
    }
    return write.then([this, &next]() { return loadWorker(next); });
  }

  uint64_t loadNext_ = 0;

  kj::Promise<void> load() {
    auto& ref = loadNext_;
    status_ = [this, &ref]() {
      char buf[128];
      snprintf(buf, sizeof(buf), "loading keys: %llu of %llu  %.0f s",
               static_cast<unsigned long long>(ref), static_cast<unsigned long long>(o_.keys),
               elapsed());
      return std::string(buf);
    };
    kj::Vector<kj::Promise<void>> workers;
    for (int i = 0; i < 64; i++) workers.add(loadWorker(ref));
    return kj::joinPromises(workers.releaseAsArray());
  }

  // ---- the measurement: interleaved rounds ----

  kj::Promise<void> measure() {
    std::vector<Mode> modes = {Mode::FLOOR};
    if (o_.client) modes.push_back(Mode::CLIENT);
    if (o_.server) modes.push_back(Mode::SERVER);
    measureStart_ = monotonicNanos();
    status_ = [this]() {
      char buf[160];
      int n = snprintf(buf, sizeof(buf), "round %llu  %.0f s ",
                       static_cast<unsigned long long>(round_), elapsed());
      n += snprintf(buf + n, sizeof(buf) - n, " floor %llu",
                    static_cast<unsigned long long>(results.floor.latency.count()));
      for (auto [name, m] : {std::pair<const char*, ModeStats*>{"client", &results.client},
                             {"server", &results.server}}) {
        if (!m->ran) continue;
        n += snprintf(
            buf + n, sizeof(buf) - n, "  %s %llu", name,
            static_cast<unsigned long long>(m->read.latency.count() + m->write.latency.count()));
        uint64_t errors = m->read.errors + m->write.errors;
        if (errors)
          n += snprintf(buf + n, sizeof(buf) - n, " (%llu errors)",
                        static_cast<unsigned long long>(errors));
      }
      if (o_.duration > 0) {
        snprintf(buf + n, sizeof(buf) - n, "   of %.0f s", o_.duration);
      } else {
        snprintf(buf + n, sizeof(buf) - n, "   of %llu ops per mode",
                 static_cast<unsigned long long>(o_.ops));
      }
      return std::string(buf);
    };
    // Warm-up: one unrecorded block per mode (connections, caches, the servers' views).
    return runModes(modes, 0, std::min(o_.block, o_.ops), false).then([this, modes]() {
      measureStart_ = monotonicNanos();
      return nextRound(modes);
    });
  }

  uint64_t round_ = 0;
  uint64_t measured_ = 0;  // operations (per mode) in the rounds done
  uint64_t measureStart_ = 0;

  kj::Promise<void> runModes(std::vector<Mode> modes, size_t i, uint64_t ops, bool record) {
    if (i >= modes.size() || interrupted) return kj::READY_NOW;
    // Rotate which mode goes first each round, so no mode always follows the same one.
    Mode mode = modes[(i + round_) % modes.size()];
    return runBlock(mode, ops, record)
        .then([this, modes = kj::mv(modes), i, ops, record]() mutable {
          return runModes(kj::mv(modes), i + 1, ops, record);
        });
  }

  kj::Promise<void> nextRound(std::vector<Mode> modes) {
    if (interrupted) return kj::READY_NOW;
    uint64_t ops;
    if (o_.duration > 0) {
      if (double(monotonicNanos() - measureStart_) / 1e9 >= o_.duration) return kj::READY_NOW;
      ops = o_.block;
    } else {
      if (measured_ >= o_.ops) return kj::READY_NOW;
      ops = std::min(o_.block, o_.ops - measured_);
    }
    round_++;
    measured_ += ops;
    auto copy = modes;
    return runModes(kj::mv(copy), 0, ops, true).then([this, modes = kj::mv(modes)]() mutable {
      return nextRound(kj::mv(modes));
    });
  }
};

std::string commandLine(int argc, char** argv) {
  std::string out = "dynkv-bench";
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    bool plain = !a.empty() && a.find_first_of(" \t'\"$\\") == std::string::npos;
    out += " " + (plain ? a : "'" + a + "'");
  }
  return out;
}

RunDescription describe(const Options& o, const std::string& command, size_t nodes,
                        uint64_t mapVersion) {
  RunDescription d;
  d.command = command;
  auto num = [](double v) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%g", v);
    return std::string(buf);
  };
  d.settings = {
      {"cluster", o.seeds.empty() ? "local, " + std::to_string(nodes) + " nodes, " + o.durability +
                                        " durability"
                                  : "--seeds, " + std::to_string(nodes) +
                                        " nodes (its partition map, version " +
                                        std::to_string(mapVersion) + ")"},
      {"workload", std::string(1, o.workload.name) + " (" + o.workload.description + ")"},
      {"keys",
       std::to_string(o.keys) + ", " + (o.zipfian ? "zipfian 0.99 (scrambled)" : "uniform")},
      {"value size", std::to_string(o.valueSize) + " B"},
      {"quorum", "N=" + std::to_string(o.n) + " R=" + std::to_string(o.r) +
                     " W=" + std::to_string(o.w) + " (per request: a cluster has no default)"},
      {"namespace",
       o.kind == NamespaceKind::LAST_WRITE_WINS ? "last-write-wins" : "vector clock (DVV)"},
      {"in flight", std::to_string(o.inflight)},
      {"measured",
       o.duration > 0 ? num(o.duration) + " s" : std::to_string(o.ops) + " ops per mode"},
      {"block", std::to_string(o.block) + " ops per mode per round, interleaved"},
  };
  d.floorShape = std::to_string(o.r) + "-of-" + std::to_string(o.n) + " ping fan-out";
  return d;
}

int runAntiEntropy(const Options& o, const std::string& command) {
  if (!o.seeds.empty()) {
    throw std::invalid_argument(
        "--workload anti-entropy stops and restarts nodes: it runs on a cluster of its own, "
        "without --seeds");
  }
  AntiEntropyBenchOptions a;
  a.keys = o.keys;
  a.valueSize = o.valueSize;
  a.inflight = o.inflightGiven ? o.inflight : 4;
  a.idleSeconds = o.durationGiven ? o.duration : 10;
  a.intervalMillis = o.aeIntervalMillis;
  a.convergeTimeoutSeconds = o.convergeTimeout;
  a.durability = o.durability;
  a.timeoutMillis = o.timeoutMillis;
  a.json = o.json;
  a.keep = o.keep;
  return runAntiEntropyBench(a, command);
}

int run(int argc, char** argv) {
  auto parsed = parseOptions(argc, argv);
  if (auto* exit = std::get_if<Exit>(&parsed)) {
    fputs(exit->text.c_str(), exit->code == 0 ? stdout : stderr);
    return exit->code;
  }
  const Options& o = std::get<Options>(parsed);
  if (o.antiEntropy) return runAntiEntropy(o, commandLine(argc, argv));
  if (o.tlsCost) {
    if (!o.seeds.empty()) {
      throw std::invalid_argument("--workload tls starts its own two clusters: no --seeds");
    }
    TlsCostOptions t;
    t.nodes = o.nodes;
    t.keys = o.keys;
    t.valueSize = o.valueSize;
    t.threads = o.inflightGiven ? o.inflight : 4;
    t.seconds = o.durationGiven ? o.duration : 10;
    t.durability = o.durability;
    t.keep = o.keep;
    return runTlsCostBench(t);
  }
  if (!o.plot.empty() && !gnuplotAvailable()) {
    // Say now, not after the run; the table and --json are written all the same.
    fprintf(stderr,
            "dynkv-bench: --plot needs gnuplot, which is not installed (apt-get install "
            "gnuplot-nox); the run goes on and leaves the plot script at %s.gp\n",
            o.plot.c_str());
  }

  std::optional<OwnCluster> own;
  std::vector<std::string> seeds = o.seeds;
  size_t expectNodes = 1;
  if (seeds.empty()) {
    fprintf(stderr, "dynkv-bench: starting a local %u-node cluster (%s durability)\n", o.nodes,
            o.durability.c_str());
    std::vector<std::string> extraArgs = {"--durability", o.durability, "--cluster", o.cluster};
    if (!o.secret.empty()) {
      extraArgs.push_back("--secret");
      extraArgs.push_back(o.secret);
    }
    own.emplace(o.nodes, kj::mv(extraArgs), o.keep);
    seeds = own->seeds();
    expectNodes = o.nodes;
  }
  // After the cluster is up, so that its processes do not inherit the blocked signals.
  kj::UnixEventPort::captureSignal(SIGINT);
  kj::UnixEventPort::captureSignal(SIGTERM);

  auto io = kj::setupAsyncIo();
  Bench bench(o, io, seeds, expectNodes, own ? own->pids() : std::vector<pid_t>{});
  bench.startProgress();
  auto stop = io.unixEventPort.onSignal(SIGINT)
                  .exclusiveJoin(io.unixEventPort.onSignal(SIGTERM))
                  .then([&bench](siginfo_t) -> kj::Promise<void> {
                    bench.interrupt();
                    return kj::NEVER_DONE;
                  });
  bench.run().exclusiveJoin(kj::mv(stop)).wait(io.waitScope);
  bench.endProgress();

  // The cluster's own count, not the seeds given: one seed of a 3-node cluster is 3 nodes.
  auto description =
      describe(o, commandLine(argc, argv), bench.clusterNodes(), bench.mapVersion());
  printReport(stdout, description, bench.results);
  int status = bench.interrupted ? 130 : 0;
  if (!o.json.empty()) {
    writeJson(o.json, description, bench.results);
    fprintf(stderr, "dynkv-bench: wrote %s\n", o.json.c_str());
  }
  if (!o.plot.empty()) {
    std::string message;
    if (writePlot(o.plot, description, bench.results, message)) {
      fprintf(stderr, "dynkv-bench: wrote %s\n", o.plot.c_str());
    } else {
      fprintf(stderr, "dynkv-bench: no plot: %s\n", message.c_str());
      status = status ? status : 1;
    }
  }
  return status;
}

}  // namespace
}  // namespace dynkv::bench

int main(int argc, char** argv) {
  try {
    return dynkv::bench::run(argc, argv);
  } catch (const std::invalid_argument& e) {
    std::cerr << "dynkv-bench: " << e.what() << std::endl;
    return 2;
  } catch (const kj::Exception& e) {
    std::cerr << "dynkv-bench: " << e.getDescription().cStr() << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "dynkv-bench: " << e.what() << std::endl;
    return 1;
  }
}

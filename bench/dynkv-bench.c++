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

#include "anti-entropy.h"
#include "own-cluster.h"
#include "report.h"
#include "transport.h"
#include "workload.h"

namespace dynkv::bench {
namespace {

const char USAGE[] =
    "usage: dynkv-bench [options]\n"
    "\n"
    "Measures get and put latency with client-driven coordination (the SDK) and\n"
    "server-driven coordination (each request to a random node, which coordinates it), in\n"
    "interleaved blocks on one cluster, against a transport floor: a no-op RPC fanned out\n"
    "R-of-N like a quorum read. Without --seeds it starts its own local cluster.\n"
    "\n"
    "  --seeds HOST:PORT,...    an existing cluster (default: start a local one)\n"
    "  --nodes K                local cluster size (default 5)\n"
    "  --durability sync|buffered   local cluster durability (default buffered)\n"
    "  --ops N                  measured operations per mode (default 20000)\n"
    "  --duration SEC           measure for SEC seconds in all instead of --ops\n"
    "  --inflight K             requests outstanding at once (default 1; 64 for throughput)\n"
    "  --workload a|b|c|f|w     YCSB core workload (default a); w: writes only\n"
    "  --workload anti-entropy  instead: what repairing a diverged replica costs, on a\n"
    "                           local 3-node cluster of its own: get p99.9 idle, during\n"
    "                           anti-entropy's repair with and without admission control,\n"
    "                           bytes exchanged and time to converge (--keys, --value-size,\n"
    "                           --inflight (default 4), --duration: the idle phase (default\n"
    "                           10), --durability, --timeout, --json, --keep, and:)\n"
    "  --ae-interval-ms MS      its cluster's anti-entropy interval (default 1000)\n"
    "  --converge-timeout SEC   how long it waits for the trees to converge (default 300)\n"
    "  --keys K                 key space (default 100000), loaded before measuring\n"
    "  --value-size B           bytes per value (default 100)\n"
    "  --dist uniform|zipfian   key distribution (default zipfian, theta 0.99, scrambled)\n"
    "  --mode client|server|both    coordination modes to measure (default both)\n"
    "  --n N --r R --w W        quorum (default 3/2/2)\n"
    "  --namespace vc|lww       vector-clock (default) or last-write-wins namespace\n"
    "  --timeout MS             per-request deadline (default 2000)\n"
    "  --block OPS              operations per interleaved block (default max(200, 32*K))\n"
    "  --json FILE              write the results as JSON (microseconds)\n"
    "  --plot FILE.svg          draw the latency CDFs with gnuplot\n"
    "  --cluster NAME --secret S    cluster credentials (default dynkv, none)\n"
    "  --keep                   leave the local cluster's directory (logs) behind\n";

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
  bool inflightGiven = false, durationGiven = false;
  uint32_t aeIntervalMillis = 1000;
  double convergeTimeout = 300;
};

uint64_t parseCount(const std::string& flag, const std::string& value, uint64_t min, uint64_t max) {
  try {
    size_t used = 0;
    auto v = std::stoull(value, &used);
    if (used == value.size() && v >= min && v <= max) return v;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument(flag + ": expected a number from " + std::to_string(min) + " to " +
                              std::to_string(max) + ", got '" + value + "'");
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

Options parseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") throw std::invalid_argument(USAGE);
    if (flag == "--keep") {
      o.keep = true;
      continue;
    }
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value\n" + USAGE);
    std::string v = argv[++i];
    if (flag == "--seeds") {
      o.seeds = splitList(v);
    } else if (flag == "--nodes") {
      o.nodes = uint32_t(parseCount(flag, v, 1, 64));
    } else if (flag == "--durability") {
      if (v != "sync" && v != "buffered") {
        throw std::invalid_argument("--durability: expected sync or buffered, got '" + v + "'");
      }
      o.durability = v;
    } else if (flag == "--ops") {
      o.ops = parseCount(flag, v, 1, uint64_t(1) << 40);
    } else if (flag == "--duration") {
      o.duration = double(parseCount(flag, v, 1, 86400));
      o.durationGiven = true;
    } else if (flag == "--inflight") {
      o.inflight = uint32_t(parseCount(flag, v, 1, 4096));
      o.inflightGiven = true;
    } else if (flag == "--workload") {
      o.antiEntropy = v == "anti-entropy";
      if (!o.antiEntropy) o.workload = Workload::parse(v);
    } else if (flag == "--ae-interval-ms") {
      o.aeIntervalMillis = uint32_t(parseCount(flag, v, 100, 3600000));
    } else if (flag == "--converge-timeout") {
      o.convergeTimeout = double(parseCount(flag, v, 1, 86400));
    } else if (flag == "--keys") {
      o.keys = parseCount(flag, v, 1, uint64_t(1) << 32);
    } else if (flag == "--value-size") {
      o.valueSize = uint32_t(parseCount(flag, v, 0, 1 << 20));
    } else if (flag == "--dist") {
      if (v != "uniform" && v != "zipfian") {
        throw std::invalid_argument("--dist: expected uniform or zipfian, got '" + v + "'");
      }
      o.zipfian = v == "zipfian";
    } else if (flag == "--mode") {
      if (v != "client" && v != "server" && v != "both") {
        throw std::invalid_argument("--mode: expected client, server or both, got '" + v + "'");
      }
      o.client = v != "server";
      o.server = v != "client";
    } else if (flag == "--n") {
      o.n = uint32_t(parseCount(flag, v, 1, 64));
    } else if (flag == "--r") {
      o.r = uint32_t(parseCount(flag, v, 1, 64));
    } else if (flag == "--w") {
      o.w = uint32_t(parseCount(flag, v, 1, 64));
    } else if (flag == "--namespace") {
      if (v == "vc" || v == "vector-clock") {
        o.kind = NamespaceKind::VECTOR_CLOCK;
      } else if (v == "lww" || v == "last-write-wins") {
        o.kind = NamespaceKind::LAST_WRITE_WINS;
      } else {
        throw std::invalid_argument("--namespace: expected vc or lww, got '" + v + "'");
      }
    } else if (flag == "--timeout") {
      o.timeoutMillis = uint32_t(parseCount(flag, v, 1, 600000));
    } else if (flag == "--block") {
      o.block = parseCount(flag, v, 1, uint64_t(1) << 32);
    } else if (flag == "--json") {
      o.json = v;
    } else if (flag == "--plot") {
      o.plot = v;
    } else if (flag == "--cluster") {
      o.cluster = v;
    } else if (flag == "--secret") {
      o.secret = v;
    } else {
      throw std::invalid_argument("unknown option " + flag + "\n" + USAGE);
    }
  }
  if (o.r > o.n || o.w > o.n) throw std::invalid_argument("R and W must not exceed N");
  if (o.seeds.empty() && o.n > o.nodes) {
    throw std::invalid_argument("N=" + std::to_string(o.n) + " needs at least that many nodes");
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

  kj::Promise<void> run() {
    return waitForView(0).then([this]() { return load(); }).then([this]() { return measure(); });
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

RunDescription describe(const Options& o, const std::string& command, size_t nodes) {
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
                                  : "--seeds, " + std::to_string(nodes) + " nodes"},
      {"workload", std::string(1, o.workload.name) + " (" + o.workload.description + ")"},
      {"keys",
       std::to_string(o.keys) + ", " + (o.zipfian ? "zipfian 0.99 (scrambled)" : "uniform")},
      {"value size", std::to_string(o.valueSize) + " B"},
      {"quorum",
       "N=" + std::to_string(o.n) + " R=" + std::to_string(o.r) + " W=" + std::to_string(o.w)},
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
  Options o = parseOptions(argc, argv);
  if (o.antiEntropy) return runAntiEntropy(o, commandLine(argc, argv));
  if (!o.plot.empty()) gnuplotAvailable(true);  // say now, not after the run, if it is missing

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

  size_t nodes = own ? o.nodes : o.seeds.size();
  auto description = describe(o, commandLine(argc, argv), nodes);
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
    if (std::string(e.what()) == dynkv::bench::USAGE) {
      std::cout << e.what();  // --help
      return 0;
    }
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

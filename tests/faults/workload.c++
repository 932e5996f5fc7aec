#include "workload.h"

#include <dynkv/client.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "admin.h"
#include "hash.h"
#include "history.h"
#include "partition-map.h"

namespace dynkv::faults {

namespace {

int64_t wallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const std::string LWW_NAMESPACE = "lww";

std::set<std::string> elementsOf(const std::vector<std::string>& values) {
  std::set<std::string> elements;
  for (auto& v : values) {
    std::istringstream words(v);
    for (std::string w; words >> w;) elements.insert(w);
  }
  return elements;
}

std::string joinElements(const std::set<std::string>& elements) {
  std::string s;
  for (auto& e : elements) s += (s.empty() ? "" : " ") + e;
  return s;
}

class HistoryLog {
  // One history file per client process, shared by its threads. Each line is flushed as the
  // operation completes, so a client killed mid-run keeps all it finished.
 public:
  explicit HistoryLog(const std::string& path) : out_(path, std::ios::app) {}
  bool ok() const { return bool(out_); }

  void append(const Operation& op) {
    auto line = toJsonLine(op);
    std::lock_guard<std::mutex> lock(mutex_);
    out_ << line << '\n';
    out_.flush();
  }

 private:
  std::mutex mutex_;
  std::ofstream out_;
};

class Worker {
  // One thread of a workload client: a random mix of the four operation families.
 public:
  Worker(Client& client, HistoryLog& log, const WorkloadOptions& options, uint32_t thread)
      : client_(client),
        log_(log),
        options_(options),
        thread_(thread),
        rng_(std::random_device{}()) {}

  void run(std::chrono::steady_clock::time_point start,
           std::chrono::steady_clock::time_point until) {
    start_ = start;
    while (std::chrono::steady_clock::now() < until) {
      uint32_t dice = pick(100);
      if (dice < options_.deleteWeight) {
        deleteCycle();
      } else if (dice < options_.deleteWeight + (100 - options_.deleteWeight) * 2 / 5) {
        addToSet();
      } else if (dice < options_.deleteWeight + (100 - options_.deleteWeight) * 3 / 5) {
        blindWrite();
      } else {
        lwwWrite();
      }
    }
  }

 private:
  Client& client_;
  HistoryLog& log_;
  const WorkloadOptions& options_;
  uint32_t thread_;
  std::mt19937_64 rng_;
  uint64_t seq_ = 0;
  std::chrono::steady_clock::time_point start_;

  uint32_t pick(uint32_t bound) { return uint32_t(rng_() % bound); }

  std::string uniqueValue() {
    return "c" + std::to_string(options_.client) + "t" + std::to_string(thread_) + "-" +
           std::to_string(++seq_);
  }

  Operation begin(OpKind kind, std::string key) {
    Operation op;
    op.client = options_.client;
    op.thread = thread_;
    op.kind = kind;
    op.key = std::move(key);
    op.invokeMicros = wallMicros();
    return op;
  }

  void finish(Operation& op, Outcome outcome, std::string error = "") {
    op.completeMicros = wallMicros();
    op.outcome = outcome;
    op.error = std::move(error);
    log_.append(op);
  }

  static Outcome outcomeOf(const Error& e) {
    // Only a call refused before anything was sent is certainly not applied; any other
    // failure may have reached some replica (Dynamo promises nothing either way).
    return e.kind() == ErrorKind::INVALID_ARGUMENT ? Outcome::FAIL : Outcome::UNKNOWN;
  }

  template <typename Write>
  void readThenWrite(Operation& op, Write&& write) {
    // A read failure means nothing was written: the operation certainly did not happen.
    GetResult read;
    try {
      read = client_.get(op.key);
    } catch (const Error& e) {
      finish(op, Outcome::FAIL, std::string("read: ") + toString(e.kind()) + ": " + e.what());
      return;
    }
    try {
      write(read);
      finish(op, Outcome::OK);
    } catch (const Error& e) {
      finish(op, outcomeOf(e), std::string(toString(e.kind())) + ": " + e.what());
    }
  }

  void addToSet() {
    auto op = begin(OpKind::ADD, "set-" + std::to_string(pick(options_.setKeys)));
    op.value = uniqueValue();
    readThenWrite(op, [&](const GetResult& read) {
      auto elements = elementsOf(read.values());
      elements.insert(op.value);
      client_.put(op.key, joinElements(elements), read.context);
    });
  }

  void blindWrite() {
    auto second =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start_)
            .count();
    auto op = begin(OpKind::BLIND, "blind-" + std::to_string(second) + "-" +
                                       std::to_string(pick(options_.blindKeysPerSecond)));
    op.value = uniqueValue();
    try {
      client_.put(op.key, op.value);
      finish(op, Outcome::OK);
    } catch (const Error& e) {
      finish(op, outcomeOf(e), std::string(toString(e.kind())) + ": " + e.what());
    }
  }

  void deleteCycle() {
    // Read the key; delete what is there, or write a new value where there is none.
    auto key = "del-" + std::to_string(pick(options_.deleteKeys));
    auto op = begin(OpKind::PUT, key);
    readThenWrite(op, [&](const GetResult& read) {
      auto values = read.values();
      if (values.empty()) {
        op.value = uniqueValue();
        client_.put(op.key, op.value, read.context);
      } else {
        op.kind = OpKind::DELETE;
        op.observed = values;
        client_.remove(op.key, read.context);
      }
    });
  }

  void lwwWrite() {
    auto op = begin(OpKind::LWW, "lww-" + std::to_string(pick(options_.lwwKeys)));
    op.value = uniqueValue();
    try {
      client_.put(Key(LWW_NAMESPACE, op.key), op.value);
      finish(op, Outcome::OK);
    } catch (const Error& e) {
      finish(op, outcomeOf(e), std::string(toString(e.kind())) + ": " + e.what());
    }
  }
};

ClientOptions clientOptions(const std::vector<std::string>& seeds, const std::string& cluster,
                            uint32_t timeoutMillis) {
  ClientOptions options;
  options.seeds = seeds;
  options.cluster = cluster;
  options.timeout = std::chrono::milliseconds(timeoutMillis);
  options.namespaces[LWW_NAMESPACE] = NamespaceKind::LAST_WRITE_WINS;
  return options;
}

}  // namespace

int runWorkload(const WorkloadOptions& options) {
  HistoryLog log(options.historyFile);
  if (!log.ok()) {
    std::cerr << "cannot write " << options.historyFile << std::endl;
    return 1;
  }
  Client client(clientOptions(options.seeds, options.cluster, options.timeoutMillis));
  auto start = std::chrono::steady_clock::now();
  auto until = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           std::chrono::duration<double>(options.seconds));
  std::vector<std::thread> threads;
  for (uint32_t t = 1; t <= options.threads; t++) {
    threads.emplace_back([&, t]() { Worker(client, log, options, t).run(start, until); });
  }
  for (auto& t : threads) t.join();
  return 0;
}

// ---- The observer ----

namespace {

struct KeyRef {
  std::string ns, key;
  bool operator<(const KeyRef& o) const { return std::tie(ns, key) < std::tie(o.ns, o.key); }
};

class Observer {
 public:
  explicit Observer(const ObserveOptions& options)
      : options_(options), admin_(options.seeds, options.cluster) {
    for (auto& op : readHistory(options.runDir)) {
      keys_.insert({op.kind == OpKind::LWW ? LWW_NAMESPACE : "", op.key});
    }
    map_ = newestMap();
    for (auto& k : keys_) {
      auto list = map_.preferenceList(map_.partitionOf(keyHash(k.ns, k.key)), options.n, 0);
      std::vector<std::string> replicas;
      for (uint32_t i = 0; i < list.primaries; i++) {
        replicas.push_back(map_.nodes()[list.nodes[i]].address);
      }
      replicas_[k] = replicas;
    }
  }

  FinalState run() {
    FinalState state;
    std::map<KeyRef, std::vector<ReplicaCopy>> copies;
    state.withoutReads = awaitConvergence(&copies);
    std::cerr << "observer: without reads: "
              << (state.withoutReads.converged ? "converged" : "not converged") << ", "
              << state.withoutReads.divergentKeys << " keys divergent" << std::endl;
    state.tombstones = awaitCollection(&copies);
    std::cerr << "observer: tombstones: "
              << (state.tombstones.collected ? "collected" : "not collected") << ", "
              << state.tombstones.copiesLeft << " tombstone-only copies left" << std::endl;
    if (!state.tombstones.collected) describeMembers();
    Client client(clientOptions(options_.seeds, options_.cluster, 10000));
    CallOptions all;
    all.n = options_.n;
    all.r = options_.n;
    for (auto& k : keys_) {
      KeyState ks;
      ks.ns = k.ns;
      ks.key = k.key;
      for (int attempt = 0; attempt < 3 && !ks.readOk; attempt++) {
        try {
          auto read = client.get(Key(k.ns, k.key), all);
          ks.readOk = true;
          ks.values = read.values();
          std::sort(ks.values.begin(), ks.values.end());
          ks.siblings = uint32_t(read.siblings.size());
          ks.readError.clear();
        } catch (const Error& e) {
          ks.readError = std::string(toString(e.kind())) + ": " + e.what();
        }
      }
      ks.replicas = copies[k];
      state.keys.push_back(std::move(ks));
    }
    state.afterReads = awaitConvergence(nullptr);
    std::cerr << "observer: after reads: "
              << (state.afterReads.converged ? "converged" : "not converged") << ", "
              << state.afterReads.divergentKeys << " keys divergent" << std::endl;
    return state;
  }

 private:
  const ObserveOptions& options_;
  AdminClient admin_;
  std::set<KeyRef> keys_;
  PartitionMap map_;
  std::map<KeyRef, std::vector<std::string>> replicas_;

  void describeMembers() {
    // What holds collection back, as each node sees the cluster: a member that says it holds
    // hints (for which partitions' tombstones wait), one still streaming, one not up.
    for (auto& seed : options_.seeds) {
      try {
        auto status = admin_.status(seed);
        std::cerr << "observer: as " << seed << " sees the members:";
        for (auto& m : status.members) {
          std::cerr << " " << m.address << " " << m.status << " handoff "
                    << (m.handoffEverywhere ? std::string("all")
                                          : std::to_string(m.handoffPartitions))
                    << " pending " << m.pendingTransfers << " map v" << m.mapVersion
                    << (m.suspected ? " suspected" : "") << ";";
        }
        std::cerr << std::endl;
        auto own = admin_.nodeStats(seed);
        std::cerr << "observer: " << seed << " itself: " << own.antiEntropy.partitionsHeld
                  << " partitions held, " << own.tombstones << " tombstones held, "
                  << own.tombstonesReaped << " reaped, " << own.partitionsDropped
                  << " partitions dropped, exchanges " << own.antiEntropy.exchangesFinished
                  << " finished / " << own.antiEntropy.exchangesFailed << " failed, last "
                  << own.antiEntropy.lastCompleteAgeMillis << " ms ago" << std::endl;
      } catch (const std::exception& e) {
        std::cerr << "observer: no status from " << seed << ": " << e.what() << std::endl;
      }
    }
  }

  PartitionMap newestMap() {
    // Every node should have adopted the same map by now; take the newest any of them has.
    std::optional<PartitionMap> newest;
    std::string errors;
    for (auto& seed : options_.seeds) {
      try {
        auto m = admin_.map(seed);
        if (!newest || m.version() > newest->version()) newest = std::move(m);
      } catch (const std::exception& e) {
        errors += std::string(e.what()) + "; ";
      }
    }
    if (!newest) throw std::runtime_error("no node gave its partition map: " + errors);
    return *newest;
  }

  std::vector<ReplicaCopy> readReplicas(const KeyRef& k) {
    std::vector<ReplicaCopy> out;
    for (auto& node : replicas_[k]) {
      ReplicaCopy copy;
      copy.node = node;
      try {
        auto local = admin_.localCopy(node, k.key, k.ns);
        if (local) {
          copy.found = true;
          copy.values = local->values;
          std::sort(copy.values.begin(), copy.values.end());
          copy.tombstones = local->tombstones;
          copy.digest = local->digest;
        }
      } catch (const std::exception&) {
        copy.reachable = false;
      }
      out.push_back(std::move(copy));
    }
    return out;
  }

  static bool identical(const std::vector<ReplicaCopy>& copies) {
    for (auto& c : copies) {
      if (!c.reachable || c.found != copies.front().found || c.digest != copies.front().digest) {
        return false;
      }
    }
    return true;
  }

  struct Wait {
    bool done = false;
    std::optional<double> seconds;  // when it was done, since the wait began
    uint32_t left = 0;              // what was left when the wait ended
  };

  using Remaining = std::function<uint32_t(const std::vector<ReplicaCopy>& copies)>;

  Wait pollUntilNone(double seconds, const Remaining& remaining,
                     std::map<KeyRef, std::vector<ReplicaCopy>>* lastCopies) {
    // Polls every replica of every key directly (a node's own copy: no read repair) until
    // `remaining` counts nothing left on any key, or the time is up.
    auto start = std::chrono::steady_clock::now();
    auto deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                std::chrono::duration<double>(seconds));
    Wait result;
    for (;;) {
      uint32_t left = 0;
      for (auto& k : keys_) {
        auto copies = readReplicas(k);
        left += remaining(copies);
        if (lastCopies != nullptr) (*lastCopies)[k] = std::move(copies);
      }
      auto now = std::chrono::steady_clock::now();
      result.left = left;
      if (left == 0) {
        result.done = true;
        result.seconds = std::chrono::duration<double>(now - start).count();
        return result;
      }
      if (now >= deadline) return result;
      // Repair is a background process of the nodes: nothing to await but its effect.
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  }

  Convergence awaitConvergence(std::map<KeyRef, std::vector<ReplicaCopy>>* lastCopies) {
    // Until all copies of every key are identical (a node that holds nothing of a key others
    // hold, e.g. one whose data directory was wiped, is not identical).
    auto wait = pollUntilNone(
        options_.convergeSeconds,
        [](const std::vector<ReplicaCopy>& copies) { return identical(copies) ? 0u : 1u; },
        lastCopies);
    return Convergence{wait.done, wait.seconds, wait.left};
  }

  TombstoneCollection awaitCollection(std::map<KeyRef, std::vector<ReplicaCopy>>* lastCopies) {
    // Until no reachable replica holds a copy of only tombstones.
    auto wait = pollUntilNone(
        tombstoneWaitSeconds(options_.antiEntropyIntervalSeconds),
        [](const std::vector<ReplicaCopy>& copies) {
          return uint32_t(std::count_if(copies.begin(), copies.end(),
                                        [](const ReplicaCopy& c) { return c.onlyTombstones(); }));
        },
        lastCopies);
    return TombstoneCollection{wait.done, wait.seconds, wait.left};
  }
};

}  // namespace

double tombstoneWaitSeconds(double antiEntropyIntervalSeconds) {
  constexpr double ROUND_MARGIN_SECONDS = 5;  // the rounds' own exchanges and collection
  return 2 * antiEntropyIntervalSeconds + ROUND_MARGIN_SECONDS;
}

int runObserver(const ObserveOptions& options) {
  try {
    Observer observer(options);
    auto state = observer.run();
    auto path = options.runDir + "/final.json";
    std::ofstream out(path);
    out << toJson(state) << '\n';
    if (!out) {
      std::cerr << "cannot write " << path << std::endl;
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "observer: " << e.what() << std::endl;
    return 1;
  }
}

int runJoin(const std::vector<std::string>& seeds, const std::string& cluster,
            const std::vector<std::string>& join, const std::vector<std::string>& settleAmong,
            double timeoutSeconds) {
  try {
    auto timeout = std::chrono::milliseconds(int64_t(timeoutSeconds * 1000));
    auto deadline = std::chrono::steady_clock::now() + timeout;
    joinToRing(seeds, cluster, join, deadline);
    if (!settleAmong.empty()) {
      waitSettled(settleAmong, cluster,
                  std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now()));
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "join: " << e.what() << std::endl;
    return 1;
  }
}

int runLeave(const std::vector<std::string>& seeds, const std::string& cluster,
             const std::string& address) {
  try {
    AdminClient(seeds, cluster).leave(address);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "leave: " << e.what() << std::endl;
    return 1;
  }
}

}  // namespace dynkv::faults

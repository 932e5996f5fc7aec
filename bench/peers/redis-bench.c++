// redis-bench: the Redis peer of dynkv-bench, on the same machine and the same shape.
//
// Redis with one primary and two replicas: a read is GET on the primary; a replicated write
// is SET followed by WAIT 1 (one replica has it, so two copies in all: dynkv's W=2). The
// transport floor is the same as dynkv-bench's: PING fanned out to the three servers,
// complete at the second reply. Floor and Redis operations run in interleaved blocks with K
// requests in flight, pipelined on one connection per server from one thread (hiredis, its
// reply reader driven by poll()), and latencies go into the same log-linear histogram.
//
//   redis-bench --servers HOST:PORT,HOST:PORT,HOST:PORT  (the primary first)
//               [--ops N | --duration SEC] [--inflight K] [--workload a|b|c|f|w]
//               [--keys K] [--value-size B] [--dist uniform|zipfian] [--json FILE]
#include <hiredis/hiredis.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "../histogram.h"
#include "../workload.h"

namespace dynkv::bench {
namespace {

uint64_t monotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

struct Options {
  std::vector<std::string> servers;
  uint64_t ops = 20000;
  double duration = 0;
  uint32_t inflight = 1;
  Workload workload = Workload::parse("a");
  uint64_t keys = 100000;
  uint32_t valueSize = 100;
  bool zipfian = true;
  uint64_t block = 0;
  int waitTimeoutMillis = 2000;
  std::string json;
};

struct Stats {
  Histogram latency;
  uint64_t errors = 0;
  std::string lastError;
};

// One step of an operation: a command sent to one server. `onReply` returns true when the
// operation it belongs to is finished.
struct Op;
struct Pending {
  Op* op;
  std::function<bool(redisReply*)> onReply;
};

struct Connection {
  std::string address;
  redisContext* context = nullptr;
  std::deque<Pending> pending;
};

struct Op {
  uint64_t start = 0;
  std::function<void()> done;  // set by the driver
};

class Driver {
 public:
  explicit Driver(const Options& o)
      : o_(o), keys_(o.keys, o.zipfian), rng_(std::random_device{}()) {
    for (auto& s : o.servers) {
      auto colon = s.rfind(':');
      if (colon == std::string::npos) throw std::invalid_argument("bad server address " + s);
      Connection c;
      c.address = s;
      c.context = redisConnect(s.substr(0, colon).c_str(), std::stoi(s.substr(colon + 1)));
      if (c.context == nullptr || c.context->err) {
        throw std::runtime_error("cannot connect to " + s + ": " +
                                 (c.context ? c.context->errstr : "out of memory"));
      }
      connections_.push_back(std::move(c));
    }
    if (connections_.size() != 3) {
      throw std::invalid_argument("--servers: give the primary and its two replicas");
    }
    value_.assign(o.valueSize, 'v');
  }

  ~Driver() {
    for (auto& c : connections_) redisFree(c.context);
  }

  Stats floor, read, write;
  double floorSeconds = 0, redisSeconds = 0;

  void load() {
    // SET every key once, pipelined 64 deep on the primary, and wait for the replicas.
    uint64_t next = 0;
    runClosedLoop(64, [&]() -> bool {
      if (next >= o_.keys) return false;
      auto key = keyName(next++);
      auto op = newOp();
      send(
          0, op,
          [op](redisReply*) {
            op->done();
            return true;
          },
          "SET %s %b", key.c_str(), value_.data(), value_.size());
      return true;
    });
    auto* reply = static_cast<redisReply*>(redisCommand(primary(), "WAIT 2 10000"));
    if (reply) freeReplyObject(reply);
  }

  void measure() {
    uint64_t block = o_.block;
    // Warm-up, unrecorded.
    runBlock(true, std::min(block, o_.ops), false);
    runBlock(false, std::min(block, o_.ops), false);
    uint64_t start = monotonicNanos(), measured = 0;
    for (uint64_t round = 0;; round++) {
      uint64_t ops;
      if (o_.duration > 0) {
        if (double(monotonicNanos() - start) / 1e9 >= o_.duration) break;
        ops = block;
      } else {
        if (measured >= o_.ops) break;
        ops = std::min(block, o_.ops - measured);
      }
      measured += ops;
      bool floorFirst = round % 2 == 0;
      runBlock(floorFirst, ops, true);
      runBlock(!floorFirst, ops, true);
      if (!isatty(2)) continue;  // a progress line only on a terminal
      fprintf(stderr, "\rround %llu  floor %llu  redis %llu ops",
              static_cast<unsigned long long>(round + 1),
              static_cast<unsigned long long>(floor.latency.count()),
              static_cast<unsigned long long>(read.latency.count() + write.latency.count()));
    }
    if (isatty(2)) fprintf(stderr, "\r%-80s\r", "");
  }

 private:
  const Options& o_;
  KeyChooser keys_;
  std::mt19937_64 rng_;
  std::vector<Connection> connections_;
  std::string value_;
  std::vector<std::unique_ptr<Op>> live_;
  uint64_t writes_ = 0;

  redisContext* primary() { return connections_[0].context; }

  Op* newOp() {
    live_.push_back(std::make_unique<Op>());
    live_.back()->start = monotonicNanos();
    return live_.back().get();
  }

  template <typename... Args>
  void send(size_t server, Op* op, std::function<bool(redisReply*)> onReply, const char* format,
            Args... args) {
    auto& c = connections_[server];
    if (redisAppendCommand(c.context, format, args...) != REDIS_OK) {
      throw std::runtime_error("redis " + c.address + ": " + c.context->errstr);
    }
    int done = 0;
    while (!done) {
      if (redisBufferWrite(c.context, &done) != REDIS_OK) {
        throw std::runtime_error("redis " + c.address + ": " + c.context->errstr);
      }
    }
    c.pending.push_back(Pending{op, std::move(onReply)});
  }

  static void note(Stats& stats, redisReply* reply, uint64_t start, bool record, bool ok) {
    if (!record) return;
    if (ok) {
      stats.latency.record(monotonicNanos() - start);
    } else {
      stats.errors++;
      stats.lastError = reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
    }
  }

  void issueFloor(bool record) {
    // PING to all three; the operation is done at the second reply.
    auto op = newOp();
    auto replies = std::make_shared<int>(0);
    for (size_t s = 0; s < 3; s++) {
      send(
          s, op,
          [this, op, replies, record](redisReply* r) {
            if (++*replies != 2) return *replies == 3;
            note(floor, r, op->start, record, r && r->type == REDIS_REPLY_STATUS);
            op->done();
            return true;
          },
          "PING");
    }
  }

  void issueSet(Op* op, const std::string& key, bool record) {
    // SET, then WAIT 1: acknowledged once one replica has it.
    uint64_t start = monotonicNanos();
    std::string v = value_;
    uint64_t n = ++writes_;
    for (size_t i = 0; i < v.size() && i < 8; i++) v[i] = char('a' + (n >> (4 * i)) % 16);
    send(
        0, op, [](redisReply*) { return false; }, "SET %s %b", key.c_str(), v.data(), v.size());
    send(
        0, op,
        [this, op, start, record](redisReply* r) {
          note(write, r, start, record, r && r->type == REDIS_REPLY_INTEGER && r->integer >= 1);
          op->done();
          return true;
        },
        "WAIT 1 %d", o_.waitTimeoutMillis);
  }

  void issueRedis(bool record) {
    auto kind = o_.workload.next(rng_);
    auto key = keyName(keys_.next(rng_));
    auto op = newOp();
    switch (kind) {
      case OpKind::READ:
        send(
            0, op,
            [this, op, record](redisReply* r) {
              note(read, r, op->start, record, r && r->type == REDIS_REPLY_STRING);
              op->done();
              return true;
            },
            "GET %s", key.c_str());
        break;
      case OpKind::UPDATE:
        issueSet(op, key, record);
        break;
      case OpKind::READ_MODIFY_WRITE:
        send(
            0, op,
            [this, op, key, record](redisReply* r) {
              bool ok = r && r->type == REDIS_REPLY_STRING;
              note(read, r, op->start, record, ok);
              if (!ok) {
                op->done();
                return true;
              }
              issueSet(op, key, record);
              return false;
            },
            "GET %s", key.c_str());
        break;
    }
  }

  void runBlock(bool isFloor, uint64_t ops, bool record) {
    uint64_t issued = 0;
    uint64_t start = monotonicNanos();
    runClosedLoop(o_.inflight, [&]() -> bool {
      if (issued >= ops) return false;
      issued++;
      if (isFloor) {
        issueFloor(record);
      } else {
        issueRedis(record);
      }
      return true;
    });
    if (record) (isFloor ? floorSeconds : redisSeconds) += double(monotonicNanos() - start) / 1e9;
  }

  void runClosedLoop(uint32_t inflight, const std::function<bool()>& issue) {
    // Keeps `inflight` operations outstanding: a new one is issued whenever one finishes.
    uint32_t outstanding = 0;
    bool more = true;
    auto top = [&]() {
      while (more && outstanding < inflight) {
        more = issue();
        if (!more) break;
        outstanding++;
        live_.back()->done = [&outstanding]() { outstanding--; };
      }
    };
    // Ops are created inside issue(); their `done` is set right after, before any reply can
    // be read, since replies are only read below.
    top();
    std::vector<pollfd> fds(connections_.size());
    while (outstanding > 0 || hasPending()) {
      for (size_t i = 0; i < connections_.size(); i++) {
        fds[i] = pollfd{connections_[i].context->fd, POLLIN, 0};
      }
      if (poll(fds.data(), fds.size(), 5000) <= 0) {
        throw std::runtime_error("no reply from redis in 5 s");
      }
      for (size_t i = 0; i < connections_.size(); i++) {
        if (!(fds[i].revents & (POLLIN | POLLERR | POLLHUP))) continue;
        auto& c = connections_[i];
        if (redisBufferRead(c.context) != REDIS_OK) {
          throw std::runtime_error("redis " + c.address + ": " + c.context->errstr);
        }
        void* raw = nullptr;
        while (redisGetReplyFromReader(c.context, &raw) == REDIS_OK && raw != nullptr) {
          auto* reply = static_cast<redisReply*>(raw);
          auto p = std::move(c.pending.front());
          c.pending.pop_front();
          p.onReply(reply);
          freeReplyObject(reply);
          raw = nullptr;
        }
      }
      reap();
      top();
    }
    live_.clear();
  }

  bool hasPending() const {
    for (auto& c : connections_) {
      if (!c.pending.empty()) return true;
    }
    return false;
  }

  void reap() {
    // Drop operations none of whose replies is still awaited.
    if (live_.size() < 4096) return;
    std::vector<Op*> awaited;
    for (auto& c : connections_) {
      for (auto& p : c.pending) awaited.push_back(p.op);
    }
    std::sort(awaited.begin(), awaited.end());
    live_.erase(std::remove_if(live_.begin(), live_.end(),
                               [&](const std::unique_ptr<Op>& op) {
                                 return !std::binary_search(awaited.begin(), awaited.end(),
                                                            op.get());
                               }),
                live_.end());
  }
};

// ---- report, in dynkv-bench's shape ----

struct StatDef {
  const char* name;
  const char* label;
  double (*get)(const Histogram&);
};
const StatDef STATS[] = {
    {"p50", "p50", [](const Histogram& h) { return h.percentile(50); }},
    {"p99", "p99", [](const Histogram& h) { return h.percentile(99); }},
    {"p999", "p99.9", [](const Histogram& h) { return h.percentile(99.9); }},
    {"mean", "mean", [](const Histogram& h) { return h.mean(); }},
};

std::string cell(const Histogram& h, double (*get)(const Histogram&), const Histogram& floor) {
  if (h.count() == 0) return "-";
  char buf[64];
  snprintf(buf, sizeof(buf), "%.1f (%.2fx)", get(h) / 1000,
           get(floor) > 0 ? get(h) / get(floor) : 0);
  return buf;
}

void report(const Options& o, const Driver& d, const std::string& command) {
  auto& f = d.floor.latency;
  printf("\n%s\n", command.c_str());
  printf("  servers      %s (primary), %s, %s; SET + WAIT 1 (2 copies), GET on the primary\n",
         o.servers[0].c_str(), o.servers[1].c_str(), o.servers[2].c_str());
  printf("  workload     %c (%s), %llu keys, %s, %u B values, %u in flight\n", o.workload.name,
         o.workload.description, static_cast<unsigned long long>(o.keys),
         o.zipfian ? "zipfian 0.99" : "uniform", o.valueSize, o.inflight);
  printf(
      "\nTransport floor (2-of-3 PING fan-out): p50 %.1f µs, p99 %.1f µs, p99.9 %.1f µs, mean %.1f "
      "µs\n",
      f.percentile(50) / 1000, f.percentile(99) / 1000, f.percentile(99.9) / 1000, f.mean() / 1000);
  printf("\nLatency in µs (x floor)\n%-16s%-20s%-20s%-20s%-20s\n", "system", "99.9th read",
         "99.9th write", "avg read", "avg write");
  printf("%-16s%-20s%-20s%-20s%-20s\n", "redis", cell(d.read.latency, STATS[2].get, f).c_str(),
         cell(d.write.latency, STATS[2].get, f).c_str(),
         cell(d.read.latency, STATS[3].get, f).c_str(),
         cell(d.write.latency, STATS[3].get, f).c_str());
  printf("\n%-14s%-9s%-20s%-20s%-20s%-20s%-10s%s\n", "", "ops", "p50", "p99", "p99.9", "mean",
         "ops/s", "errors");
  auto line = [&](const char* name, const Stats& s, double seconds) {
    printf("%-14s%-9llu", name, static_cast<unsigned long long>(s.latency.count()));
    for (auto& st : STATS) printf("%-20s", cell(s.latency, st.get, f).c_str());
    printf("%-10.0f%llu\n", seconds > 0 ? double(s.latency.count()) / seconds : 0,
           static_cast<unsigned long long>(s.errors));
    if (s.errors) printf("  last error: %s\n", s.lastError.c_str());
  };
  line("floor", d.floor, d.floorSeconds);
  if (d.read.latency.count() || d.read.errors) line("redis read", d.read, d.redisSeconds);
  if (d.write.latency.count() || d.write.errors) line("redis write", d.write, d.redisSeconds);

  if (o.json.empty()) return;
  auto stats = [&](const Stats& s, double seconds) {
    std::ostringstream out;
    out << "{";
    for (auto& st : STATS) {
      if (s.latency.count()) {
        out << "\"" << st.name << "\": " << st.get(s.latency) / 1000 << ", ";
      } else {
        out << "\"" << st.name << "\": null, ";
      }
    }
    out << "\"ops_per_s\": " << (seconds > 0 ? double(s.latency.count()) / seconds : 0)
        << ", \"count\": " << s.latency.count() << ", \"errors\": " << s.errors << "}";
    return out.str();
  };
  std::ofstream out(o.json);
  out << "{\n  \"unit\": \"us\",\n  \"floor\": " << stats(d.floor, d.floorSeconds)
      << ",\n  \"modes\": {\n    \"redis\": {\n      \"read\": " << stats(d.read, d.redisSeconds)
      << ",\n      \"write\": " << stats(d.write, d.redisSeconds) << "\n    }\n  }\n}\n";
}

uint64_t number(const std::string& flag, const std::string& v) {
  try {
    size_t used = 0;
    auto n = std::stoull(v, &used);
    if (used == v.size()) return n;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument(flag + " needs a number, got '" + v + "'");
}

int run(int argc, char** argv) {
  Options o;
  std::string command = "redis-bench";
  for (int i = 1; i < argc; i++) {
    std::string flag = argv[i];
    command += " " + flag;
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
    std::string v = argv[++i];
    command += " " + v;
    if (flag == "--servers") {
      std::stringstream in(v);
      std::string s;
      while (std::getline(in, s, ',')) o.servers.push_back(s);
    } else if (flag == "--ops") {
      o.ops = std::max<uint64_t>(1, number(flag, v));
    } else if (flag == "--duration") {
      o.duration = double(number(flag, v));
    } else if (flag == "--inflight") {
      o.inflight = uint32_t(std::max<uint64_t>(1, number(flag, v)));
    } else if (flag == "--workload") {
      o.workload = Workload::parse(v);
    } else if (flag == "--keys") {
      o.keys = std::max<uint64_t>(1, number(flag, v));
    } else if (flag == "--value-size") {
      o.valueSize = uint32_t(number(flag, v));
    } else if (flag == "--dist") {
      o.zipfian = v == "zipfian";
    } else if (flag == "--block") {
      o.block = number(flag, v);
    } else if (flag == "--json") {
      o.json = v;
    } else {
      throw std::invalid_argument("unknown option " + flag);
    }
  }
  if (o.block == 0) o.block = std::max<uint64_t>(200, uint64_t(o.inflight) * 32);
  Driver driver(o);
  fprintf(stderr, "redis-bench: loading %llu keys\n", static_cast<unsigned long long>(o.keys));
  driver.load();
  driver.measure();
  report(o, driver, command);
  return 0;
}

}  // namespace
}  // namespace dynkv::bench

int main(int argc, char** argv) {
  try {
    return dynkv::bench::run(argc, argv);
  } catch (const std::exception& e) {
    fprintf(stderr, "redis-bench: %s\n", e.what());
    return 1;
  }
}

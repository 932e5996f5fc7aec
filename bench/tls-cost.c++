#include "tls-cost.h"

#include <dynkv/client.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "own-cluster.h"

namespace dynkv::bench {

namespace {

using Clock = std::chrono::steady_clock;

struct Side {
  const char* name;
  std::vector<double> getMicros, putMicros;
  double busySeconds = 0;  // wall time of its rounds
  uint64_t ops = 0, errors = 0;
};

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size())))];
}

void round(Client& client, Side& side, const TlsCostOptions& o, const std::string& value,
           uint64_t first) {
  // `threads` callers share the block; each records its own latencies, merged after.
  std::vector<std::vector<double>> gets(o.threads), puts(o.threads);
  std::atomic<uint64_t> next{0}, errors{0};
  auto start = Clock::now();
  std::vector<std::thread> callers;
  for (uint32_t t = 0; t < o.threads; t++) {
    callers.emplace_back([&, t]() {
      for (uint64_t i; (i = next++) < o.block;) {
        std::string key = "tls-bench-" + std::to_string((first + i) % o.keys);
        auto began = Clock::now();
        try {
          if (i % 2 == 0) {
            client.put(key.c_str(), value);
          } else {
            client.get(key.c_str());
          }
        } catch (const std::exception&) {
          errors++;
          continue;
        }
        double micros =
            std::chrono::duration<double, std::micro>(Clock::now() - began).count();
        (i % 2 == 0 ? puts : gets)[t].push_back(micros);
      }
    });
  }
  for (auto& c : callers) c.join();
  side.busySeconds += std::chrono::duration<double>(Clock::now() - start).count();
  side.ops += o.block - errors;
  side.errors += errors;
  for (uint32_t t = 0; t < o.threads; t++) {
    side.getMicros.insert(side.getMicros.end(), gets[t].begin(), gets[t].end());
    side.putMicros.insert(side.putMicros.end(), puts[t].begin(), puts[t].end());
  }
}

}  // namespace

int runTlsCostBench(const TlsCostOptions& o) {
  fprintf(stderr, "dynkv-bench: starting two local %u-node clusters (plain TCP, TLS)\n",
          o.nodes);
  OwnCluster plainCluster(o.nodes, {"--durability", o.durability}, o.keep);
  OwnCluster tlsCluster(o.nodes, {"--durability", o.durability}, o.keep, true);

  ClientOptions plainOptions;
  plainOptions.seeds = plainCluster.seeds();
  ClientOptions tlsOptions;
  tlsOptions.seeds = tlsCluster.seeds();
  auto files = tlsCluster.local().tlsFiles("client");
  tlsOptions.tlsCa = files.ca;
  tlsOptions.tlsCert = files.certificate;
  tlsOptions.tlsKey = files.key;
  Client plain(plainOptions), tls(tlsOptions);

  std::string value(o.valueSize, 'v');
  Side sides[2] = {{"plain TCP", {}, {}, 0, 0, 0}, {"TLS", {}, {}, 0, 0, 0}};
  Client* clients[2] = {&plain, &tls};
  TlsCostOptions warmUp = o;
  warmUp.block = std::min<uint64_t>(o.block, 100);
  for (int s = 0; s < 2; s++) {
    Side ignored{"", {}, {}, 0, 0, 0};
    round(*clients[s], ignored, warmUp, value, 0);  // connections, handshakes, views
  }
  uint64_t first = 0;
  for (uint64_t r = 0; sides[0].busySeconds < o.seconds || sides[1].busySeconds < o.seconds;
       r++) {
    for (int i = 0; i < 2; i++) {
      int s = int((r + uint64_t(i)) % 2);  // each goes first every other round
      round(*clients[s], sides[s], o, value, first);
    }
    first += o.block;
  }

  printf("TLS cost: %u-node local clusters, %u callers, %u B values, %llu keys, %s "
         "durability\n\n",
         o.nodes, o.threads, o.valueSize, static_cast<unsigned long long>(o.keys),
         o.durability.c_str());
  printf("%-10s %12s %12s %12s %8s\n", "", "get p50 us", "put p50 us", "ops/s", "errors");
  double p50[2][2], rate[2];
  for (int s = 0; s < 2; s++) {
    p50[s][0] = percentile(sides[s].getMicros, 0.5);
    p50[s][1] = percentile(sides[s].putMicros, 0.5);
    rate[s] = double(sides[s].ops) / sides[s].busySeconds;
    printf("%-10s %12.0f %12.0f %12.0f %8llu\n", sides[s].name, p50[s][0], p50[s][1], rate[s],
           static_cast<unsigned long long>(sides[s].errors));
  }
  printf("%-10s %11.2fx %11.2fx %11.2fx\n", "TLS/plain", p50[1][0] / p50[0][0],
         p50[1][1] / p50[0][1], rate[1] / rate[0]);
  return sides[0].errors + sides[1].errors == 0 ? 0 : 1;
}

}  // namespace dynkv::bench

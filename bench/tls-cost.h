// dynkv-bench --workload tls: what mutual TLS costs. Two local clusters of the same shape run
// side by side, one over plain TCP and one with TLS (`dynkv local up --tls`'s certificates),
// and the same gets and puts go to each in interleaved rounds (so that noise on the machine
// falls on both alike); the report gives each one's p50 latency and throughput, and TLS's
// ratio to plain TCP.
#pragma once

#include <cstdint>
#include <string>

namespace dynkv::bench {

struct TlsCostOptions {
  uint32_t nodes = 3;
  uint64_t keys = 1000;
  uint32_t valueSize = 100;
  uint32_t threads = 4;      // callers at once, each one request at a time
  double seconds = 10;       // measured, in all, per cluster
  uint64_t block = 400;      // operations per cluster per round (half gets, half puts)
  std::string durability = "buffered";
  bool keep = false;
};

int runTlsCostBench(const TlsCostOptions& options);
// Prints the report; returns the process's exit status. Throws std::runtime_error if a cluster
// cannot be started.

}  // namespace dynkv::bench

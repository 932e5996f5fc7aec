// dynkv-bench --workload anti-entropy: what repairing a diverged replica costs. A local 3-node
// cluster (N=3: every node holds every key) is loaded; one node is stopped while 1% of the keys
// are overwritten, then restarted with its data, and the benchmark measures how long anti-entropy
// takes to make the three nodes' hash trees equal again, how many bytes the nodes exchanged
// doing it (against the size of the data set), and what it does to the tail latency of the gets
// the cluster serves meanwhile: with storaged's admission control, and once more with it off.
#pragma once

#include <cstdint>
#include <string>

namespace dynkv::bench {

struct AntiEntropyBenchOptions {
  uint64_t keys = 100000;
  uint32_t valueSize = 100;
  uint32_t inflight = 4;           // foreground gets outstanding at once
  double idleSeconds = 10;         // the idle phase's length
  uint32_t intervalMillis = 1000;  // storaged --anti-entropy-interval-ms for the bench cluster
  double divergeFraction = 0.01;   // of the keys, overwritten while a node is stopped
  double convergeTimeoutSeconds = 600;
  std::string durability = "buffered";
  uint32_t timeoutMillis = 2000;  // per request
  std::string json;               // write the results here too
  bool keep = false;              // leave the cluster's directory behind
};

int runAntiEntropyBench(const AntiEntropyBenchOptions& options, const std::string& commandLine);
// Runs the three phases (idle, repair, repair_no_admission) and prints the report; returns the
// process's exit status. Throws std::runtime_error if the cluster cannot be started, a node
// cannot be restarted or the trees do not converge in time.

}  // namespace dynkv::bench

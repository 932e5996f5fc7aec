// The fault suite's two cluster-facing roles, each run as its own process inside the lab:
// the workload client (only the public SDK, as an application uses it) and the observer
// (reads every replica's own copy to judge convergence, and joins and removes nodes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dynkv::faults {

struct WorkloadOptions {
  uint32_t client = 1;  // this process's number (names its history file)
  uint32_t threads = 4;
  std::vector<std::string> seeds;
  std::string cluster;
  double seconds = 20;      // runs this long, then returns
  std::string historyFile;  // JSON lines, appended
  uint32_t setKeys = 24, deleteKeys = 60, lwwKeys = 24;
  uint32_t blindKeysPerSecond = 20;  // blind writes go to keys of the current second only, so
                                     // keys written before a fault are never written again:
                                     // only repair can bring them to a replica that lost them
  uint32_t deleteWeight = 25;        // percent of operations on the del-* keys
  uint32_t timeoutMillis = 2000;     // per call
};

int runWorkload(const WorkloadOptions& options);
// Every thread loops over a random mix of set additions (read-modify-write through the read's
// context), blind writes, puts and deletes on del-* keys, and last-write-wins writes, logging
// each with its outcome (history.h). Returns 0, or 1 if the history could not be written.

struct ObserveOptions {
  std::vector<std::string> seeds;
  std::string cluster;
  std::string runDir;  // reads history/, writes final.json
  uint32_t n = 3;
  double convergeSeconds = 60;             // how long each convergence wait may take
  double antiEntropyIntervalSeconds = 10;  // the nodes' --anti-entropy-interval-ms
};

double tombstoneWaitSeconds(double antiEntropyIntervalSeconds);
// How long the observer waits for tombstones to be collected once the replicas have
// converged: a partition's primary collects them in the round after one in which it found every
// other replica holding them, so two intervals, plus a margin for the rounds themselves.

int runObserver(const ObserveOptions& options);
// After the workload: for every key the history names, waits (no client reads) until all of
// its preference list hold identical copies; then, up to tombstoneWaitSeconds(), until none
// of them holds a tombstone-only copy; then reads every key through the SDK with R = N, then
// waits for convergence again; writes FinalState to runDir/final.json.

int runJoin(const std::vector<std::string>& seeds, const std::string& cluster,
            const std::vector<std::string>& join, const std::vector<std::string>& settleAmong,
            double timeoutSeconds);
// Joins each address in `join` to the ring (as `dynkv admin join` does) and, when
// `settleAmong` is not empty, waits until exactly those nodes are up on one map with no
// transfer pending. Prints what went wrong and returns 1 if that does not happen in time.

int runLeave(const std::vector<std::string>& seeds, const std::string& cluster,
             const std::string& address);
// `dynkv admin leave`: the node hands its partitions off and is removed.

}  // namespace dynkv::faults

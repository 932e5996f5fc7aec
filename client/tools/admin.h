// Administration of a cluster (DESIGN.md, "Membership"): join and leave, and the members'
// status as one node sees it. Blocking, on an event loop of its own in the calling thread;
// for the `dynkv` tool, `dynkv local` and tests, not for applications (the SDK's data path
// never needs it).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "partition-map.h"

namespace dynkv {

struct MemberView {
  uint64_t id = 0;
  std::string address;
  std::string zone;
  uint32_t weight = 1;
  std::string status;          // joining | up | leaving | removed
  uint32_t partitions = 0;     // ring partitions it owns in the reporter's map
  uint32_t pendingTransfers = 0;
  uint64_t mapVersion = 0;     // the map version it has adopted (as last heard)
  uint64_t heartbeat = 0;      // gossip rounds it has run since it started (as last heard)
  double phi = 0;              // the reporter's failure-detector suspicion of it
  bool suspected = false;
};

struct LocalCopy {
  // One node's own copy of one key.
  std::vector<std::string> values;  // live sibling values, in the node's sibling order
  uint32_t tombstones = 0;          // deletion siblings
  std::string digest;               // hex; equal on two nodes iff they hold the same version
                                    // vector, dots, timestamps and values (in any order)
};

struct ClusterStatus {
  std::string reporter;
  uint64_t mapVersion = 0;
  std::vector<MemberView> members;

  bool settled() const;
  // Every member is up or removed, the reporter's map holds every up member, and every up
  // member has adopted that map and finished streaming.
};

class AdminClient {
 public:
  AdminClient(std::vector<std::string> seeds, std::string cluster = "dynkv",
              std::string secret = "");
  ~AdminClient();

  void join(const std::string& address);
  void leave(const std::string& address);
  // Sent to the first seed that answers. Throw std::runtime_error with the node's reason.

  ClusterStatus status(const std::string& node = "");
  // From `node`, or from the first seed that answers.

  std::optional<std::vector<std::string>> localValues(const std::string& node,
                                                      const std::string& key,
                                                      const std::string& ns = "");
  // What one node holds for a key, without a quorum: its live sibling values, or nullopt
  // when it holds nothing. Throws std::runtime_error if the node does not answer (or refuses,
  // e.g. while the key's partition is still streaming in).

  std::optional<LocalCopy> localCopy(const std::string& node, const std::string& key,
                                     const std::string& ns = "");
  // The same read, summarised whole: what a replica-convergence check compares. It triggers
  // no read repair.

  PartitionMap map(const std::string& node);
  // The partition map `node` routes by.

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

void joinToRing(const std::vector<std::string>& seeds, const std::string& cluster,
                const std::vector<std::string>& addresses,
                std::chrono::steady_clock::time_point deadline);
// Joins each of `addresses` that is not up in the ring yet (`dynkv admin join`), through
// the first of `seeds` that answers. Throws std::runtime_error naming the node it could not
// join by the deadline.

void waitSettled(const std::vector<std::string>& addresses, const std::string& cluster,
                 std::chrono::milliseconds timeout);
// Until each of `addresses` reports exactly those nodes up, all on one map version, with no
// transfer pending. Throws std::runtime_error saying which node has not settled when
// `timeout` passes.

}  // namespace dynkv

// Cluster membership as the node sees it, behind one interface so that the static seed
// list (this version) and gossip (DESIGN.md, "Membership and failure detection") are
// interchangeable for the rest of the daemon.
#pragma once

#include <kj/async.h>
#include <memory>
#include <string>
#include <vector>

#include "partition-map.h"

namespace dynkv::storaged {

using MapSnapshot = std::shared_ptr<const PartitionMap>;
// An immutable, shared view: holders keep a consistent map for a whole request even if a
// newer one is adopted meanwhile.

class Membership {
 public:
  virtual ~Membership() noexcept(false) = default;

  virtual MapSnapshot current() const = 0;
  // The partition map this node routes and answers by.

  virtual void observeVersion(uint64_t peerVersion) = 0;
  // A peer or client carried this map version: if it is newer, membership should catch up.
};

kj::Own<Membership> newStaticMembership(const NodeInfo& self, const std::vector<std::string>& seeds,
                                        uint32_t partitionBits);
// Members are this node plus every seed address (each seed's id is derived from its address,
// as a node started with no --name derives its own), so every node given the same set
// computes the same map. Version 1.

uint64_t nodeIdFor(const std::string& name);
// The node id a name maps to: hash64(name), never 0.

}  // namespace dynkv::storaged

// Cluster membership as the node sees it, behind one interface so that the daemon's other
// parts do not care whether members come from a fixed list (tests) or from gossip
// (DESIGN.md, "Membership and failure detection"; gossip.h).
#pragma once

#include <kj/async.h>
#include <memory>
#include <string>
#include <vector>

#include "membership-state.h"
#include "partition-map.h"
#include "dynkv.capnp.h"

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

  virtual void gossip(wire::GossipState::Reader in, wire::GossipState::Builder out);
  virtual void join(const std::string& address);
  virtual void leave(const std::string& address);
  virtual void forceRemove(const std::string& address, bool evenIfAlive);
  virtual void status(wire::Admin::StatusResults::Builder out);
  // Peer and admin requests. The defaults refuse: a fixed membership has no gossip.
};

kj::Own<Membership> newStaticMembership(const NodeInfo& self, const std::vector<std::string>& seeds,
                                        uint32_t partitionBits);
// Members are this node plus every seed address (each seed's id derived from its address,
// as a node derives its own), so every node given the same set computes the same map.
// Version 1. For tests that need no gossip.

uint64_t nodeIdFor(const std::string& name);
// The node id a name maps to: hash64(name), never 0.


}  // namespace dynkv::storaged

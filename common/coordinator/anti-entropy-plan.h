// What anti-entropy does around the exchanges (DESIGN.md, "Anti-entropy"): with whom a node
// exchanges, which partitions each exchange covers, and the decisions that need every replica's
// word — collecting tombstones, dropping a partition the node no longer owns, ending a rebuild.
// Pure: the map, what the failure detector suspects and the node's own roots come in as values;
// storaged/anti-entropy.h is the shell that runs the exchanges and acts on the decisions.
//
// Every such decision rests on one fact an exchange establishes (Exchange::covered()): when this
// node's root of partition P had value r, peer X held every version this node held (it held the
// same, or was handed the rest). If this node's root of P is still r now, nothing of P changed
// here since, so X held — and, since only a collection decided by P's primary removes anything,
// still holds, or holds something newer — every version this node holds now. A record for a
// root that has since changed is worth nothing, whatever its age: time alone never decides.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <vector>

#include "anti-entropy-exchange.h"
#include "membership-state.h"
#include "partition-map.h"

namespace dynkv {

std::vector<uint64_t> replicasOf(const PartitionMap& map, uint32_t partition, uint32_t n);
// The node ids that hold partition `partition`: the first min(n, members) distinct nodes of its
// preference list, in preference order (the first is its primary). Empty for an empty map.

struct ExchangePlan {
  uint64_t peer = 0;                 // a node id of the map
  std::vector<uint32_t> partitions;  // ascending: what this node and the peer both hold

  bool operator==(const ExchangePlan& o) const {
    return peer == o.peer && partitions == o.partitions;
  }
};

std::vector<ExchangePlan> planExchanges(const PartitionMap& map, uint64_t self, uint32_t n,
                                        const std::vector<uint32_t>& heldNotOwned,
                                        const std::function<bool(uint64_t node)>& suspected);
// One plan per peer this node should exchange with, ordered by peer id:
// - for every partition this node is a replica of, each of its other replicas;
// - for every partition of `heldNotOwned` (partitions this node has data of but is not a replica
//   of any more: it was one before a join or leave, or stored writes as a fallback), each of its
//   replicas, so that they get everything before the node drops it (planCollection()).
// Peers that `suspected` says are suspected are left out, and so is `self`. An empty map, or a
// self that is not in it and holds nothing, plans nothing.

class ReplicaLedger {
  // What this node has learnt from its exchanges since it started (kept in memory only: after a
  // restart, confirmations are earned again).
 public:
  void record(uint64_t peer, const std::vector<uint32_t>& partitions,
              const std::vector<Exchange::Covered>& covered, bool finished,
              const std::function<uint64_t(uint32_t partition)>& currentRoot);
  // An exchange with `peer` over `partitions` ended (`finished`: DONE rather than FAILED) having
  // covered these. A covered partition is recorded only if `currentRoot` says its root here is
  // still the one covered (a partition this exchange repaired here has a new root: the next
  // exchange confirms it); a record replaces the peer's earlier one for the partition.

  bool coveredByAll(uint32_t partition, const std::vector<uint64_t>& peers,
                    uint64_t currentRoot) const;
  // Every node of `peers` has a record for `partition` at exactly `currentRoot`. True for no
  // peers.

  bool exchangedWithAny(uint32_t partition, const std::vector<uint64_t>& peers) const;
  // Some node of `peers` finished an exchange covering `partition`. False for no peers.

  void forget(uint32_t partition);
  // Drops what is known of `partition` (the node dropped it).

 private:
  std::map<std::pair<uint32_t, uint64_t>, uint64_t> coveredRoots_;  // (partition, peer) -> root
  std::set<std::pair<uint32_t, uint64_t>> finished_;                  // (partition, peer)
};

struct PartitionState {
  // What the shell knows of one partition this node holds data of.
  uint32_t partition = 0;
  uint64_t root = 0;        // this node's current root
  uint64_t tombstones = 0;  // objects held whose every sibling is a tombstone
  bool heldElsewhere = false;
  // A node that is no replica of it was seen holding data of it lately (it exchanges with the
  // replicas to hand its copies over). Its copies may include versions a tombstone covers:
  // collected before they are handed over, the tombstone could not stop them coming back.
};

struct OutsideWrites {
  // Where writes of a partition may be that are in no replica's hash tree, so that no exchange
  // can have confirmed them: hints fallbacks hold for its owners, data a node that is no
  // replica of it still holds (a former owner, before it has handed everything over and
  // dropped it), and, for the collector, the partitions it is still streaming in, whose tree is
  // not whole yet. A tombstone collected while a write it covers waits there would let that
  // write come back when it lands. (A partition streaming into another replica needs nothing
  // here: collection waits for that replica's word, which an exchange gives only for what it
  // holds.)
  std::set<uint32_t> handoff;  // partitions some node holds writes of still to hand off
  bool everywhere = false;     // take every partition as such (too many to name)

  bool covers(uint32_t partition) const { return everywhere || handoff.count(partition) > 0; }
};

OutsideWrites outsideWrites(const MembershipState& state);
// What the gossiped records say, for every member that is not REMOVED (a removed node's writes
// are gone with it): the partitions each holds writes of still to hand off
// (Member::handoffPartitions), all of them if one holds too many to name. A record is as old
// as gossip makes it: the caller adds what it knows of itself now (its own hints, the
// partitions it holds but no longer owns, its streams).

struct CollectionPlan {
  std::vector<uint32_t> reap;  // partitions whose tombstones every replica holds: collect them
                               // on every replica (this node is their primary)
  std::vector<uint32_t> drop;  // partitions this node is not a replica of and every replica
                               // holds all it has: delete its copy

  bool operator==(const CollectionPlan& o) const { return reap == o.reap && drop == o.drop; }
};

CollectionPlan planCollection(const PartitionMap& map, uint64_t self, uint32_t n,
                              const std::vector<PartitionState>& held,
                              const ReplicaLedger& ledger, const OutsideWrites& outside);
// For each partition of `held`:
// - reap, if this node is its primary, it holds tombstones, no node outside its replicas is
//   known to hold data of it (heldElsewhere), no write of it may be outside the trees
//   (`outside`), and every other replica covered it at its current root (one node decides per
//   partition, so replicas never collect in turn and hand each other's tombstones back);
// - drop, if this node is not one of its replicas and every replica covered it at its current
//   root (the map is not empty and has replicas for it).
// Ascending partition order. An empty map decides nothing.

bool rebuilt(const PartitionMap& map, uint64_t self, uint32_t n, const ReplicaLedger& ledger);
// Whether a node that came back with an empty data directory has been refilled: for every
// partition it is a replica of that has other replicas, it finished an exchange with one of them.
// True when it is a replica of nothing.

}  // namespace dynkv

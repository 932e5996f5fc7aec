// The partition map (DESIGN.md, "Partitioning and placement", the paper's strategy 3).
//
// The hash space is split into Q = 2^partitionBits equal partitions. Each partition has one
// ring owner; walking the ring from a key's partition and collecting distinct nodes gives the
// key's preference list (the first N, spanning distinct zones wherever there are at least N
// zones) followed by its fallbacks. Placement is decoupled from partitioning: how many
// partitions a node owns follows its weight, and changing the member set moves as few
// partitions as possible.
//
// A PartitionMap is an immutable value: every client and node holding the same version
// derives the same preference lists.
#pragma once

#include <boost/container/small_vector.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dynkv {

struct NodeInfo {
  static constexpr size_t MAX_FIELD_BYTES = 255;
  // The most bytes a name, address or zone may hold. Every node keeps and gossips every
  // record, so an unbounded one would spread its cost through the cluster.

  uint64_t id = 0;
  std::string name;
  std::string address;  // HOST:PORT
  std::string zone;     // rack or data centre; empty means "no zone"
  uint32_t weight = 1;  // relative capacity; share of partitions is proportional to it

  bool operator==(const NodeInfo& o) const {
    return id == o.id && name == o.name && address == o.address && zone == o.zone &&
           weight == o.weight;
  }
  bool operator!=(const NodeInfo& o) const { return !(*this == o); }
};

std::optional<std::string> checkNodeInfo(const NodeInfo& info);
// nullopt when name, address and zone are within MAX_FIELD_BYTES, else a message naming the
// field and the limit (never the field's content, which may be huge).

std::optional<std::string> checkNodeField(const char* field, size_t bytes);
// The same check for one field ("address", say) of `bytes` bytes.

struct PreferenceList {
  // Indexes into PartitionMap::nodes(): the first `primaries` entries are the preference
  // list proper, the rest are fallbacks in the order sloppy quorum should try them.
  boost::container::small_vector<uint16_t, 8> nodes;
  uint32_t primaries = 0;
};

class PartitionMap {
 public:
  static constexpr uint32_t DEFAULT_PARTITION_BITS = 10;  // Q = 1024
  static constexpr uint32_t MAX_PARTITION_BITS = 16;
  static constexpr size_t MAX_NODES = 65535;

  PartitionMap() = default;
  // An empty map (version 0, no nodes): nothing can be placed on it.

  static PartitionMap build(std::vector<NodeInfo> nodes, uint32_t partitionBits,
                            uint64_t version);
  // A fresh map for `nodes` (ids unique, weights >= 1, at least one node). Each node owns a
  // number of partitions proportional to its weight (largest-remainder rounding), placed so
  // that consecutive partitions belong to different nodes (and zones) wherever possible.
  // Deterministic: the same arguments always give the same map, whatever their order.

  PartitionMap rebalanced(std::vector<NodeInfo> members, uint64_t newVersion) const;
  // The map for a new member set, moving as few partitions as possible: nodes no longer
  // present give up all of theirs, nodes over their new weighted target give up their excess,
  // and the freed partitions go to the nodes furthest below target. A single equal-weight
  // join to S nodes moves within 10% of Q/(S+1) partitions. Deterministic.

  static std::optional<PartitionMap> fromParts(uint64_t version, uint32_t partitionBits,
                                               std::vector<NodeInfo> nodes,
                                               std::vector<uint16_t> owners,
                                               std::string* error = nullptr);
  // Rebuilds a map received from the wire, validating it: bits in 1..MAX_PARTITION_BITS,
  // owners.size() == 2^bits, every owner index < nodes.size(), unique node ids, names,
  // addresses and zones within NodeInfo::MAX_FIELD_BYTES. On failure
  // returns nullopt and, if `error` is set, says what was wrong.

  uint64_t version() const { return version_; }
  uint32_t partitionBits() const { return partitionBits_; }
  uint32_t partitionCount() const { return uint32_t(owners_.size()); }
  const std::vector<NodeInfo>& nodes() const { return nodes_; }
  const std::vector<uint16_t>& owners() const { return owners_; }
  bool empty() const { return nodes_.empty(); }

  uint32_t partitionOf(uint64_t keyHash) const;
  // keyHash >> (64 - partitionBits).

  PreferenceList preferenceList(uint32_t partition, uint32_t n, uint32_t fallbacks) const;
  // Walks the ring clockwise from `partition`. The first min(n, nodes) distinct nodes are
  // the primaries; when there are at least n distinct zones they are all in distinct zones
  // (a node whose zone is already used is deferred, and used only if zones run out). Then up
  // to `fallbacks` further distinct nodes, in ring order.

  std::optional<uint16_t> indexOf(uint64_t nodeId) const;

  std::vector<uint32_t> shares() const;
  // Partitions owned per node index (ring ownership).

  bool operator==(const PartitionMap& o) const {
    return version_ == o.version_ && partitionBits_ == o.partitionBits_ && nodes_ == o.nodes_ &&
           owners_ == o.owners_;
  }

 private:
  uint64_t version_ = 0;
  uint32_t partitionBits_ = 0;
  std::vector<NodeInfo> nodes_;   // sorted by id
  std::vector<uint16_t> owners_;  // owners_[p] indexes nodes_
};

}  // namespace dynkv

// One partition's hash tree for anti-entropy (DESIGN.md, "Anti-entropy"; the paper's §4.7),
// built the way Riak 3's TicTac trees are: a fixed shape, leaves that combine their keys'
// hashes with XOR, so that a write updates one leaf and its branch in O(1) without reading
// any other key, and the tree never needs a rebuild to stay current.
//
// Shape: SEGMENTS leaves ("segments": a key's segment is fixed by its hash) under a tree of
// fan-out FANOUT: levels of 1 (the root), 8, 64, 512 and 4096 nodes. Every node is the XOR of
// its children, so a segment's hash is the XOR of entryHash() over the keys in it, and two
// replicas holding the same objects have the same tree whatever order their writes came in.
// Its memory is fixed (memoryBytes(), about 37 KiB) whatever the number of keys.
//
// Two replicas compare roots, then walk down only the children of nodes that differ; only keys
// in differing segments are then read and synced (common/coordinator/anti-entropy-exchange.h).
// The small fan-out keeps what a walk costs per differing key to 4 levels of 8 hashes, which
// is what makes a 1% divergence cost a few percent of the data set to find.
//
// A pure value: no I/O, no clock, no locking.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "dvv.h"

namespace dynkv {

uint64_t causalDigest(const Object& object);
// What anti-entropy compares of an object: for dotted version vectors its version vector
// (actors and counters) and its siblings' dots and tombstone flags, which identify every
// version it holds without reading the values; for last-write-wins its one version's
// timestamp, tombstone flag and value. Objects holding the same versions have equal digests;
// objects that differ in a version (a dot, a counter, a tombstone, a last-write-wins value)
// have different ones, up to 64-bit collisions. The version vector's timestamps, which only
// guide its truncation, are left out.

struct TreeNodeRef {
  // Node `index` of level `level` of partition `partition`'s tree.
  uint32_t partition = 0;
  uint8_t level = 0;  // < MerkleTree::SEGMENT_LEVEL for an ASK_CHILDREN node
  uint32_t index = 0;

  bool operator==(const TreeNodeRef& o) const {
    return partition == o.partition && level == o.level && index == o.index;
  }
};

struct SegmentRef {
  uint32_t partition = 0;
  uint32_t segment = 0;  // < MerkleTree::SEGMENTS

  bool operator==(const SegmentRef& o) const {
    return partition == o.partition && segment == o.segment;
  }
};

struct CausalSummary {
  // What an exchange needs to know of an object to tell which side lacks versions of it
  // (repairNeeds(), common/coordinator/repair-needs.h) without reading its values: for dotted
  // version vectors the version vector's counters (each sibling's dot is covered by it); for
  // last-write-wins its one version's timestamp and whether it is a tombstone.
  Versioning kind = Versioning::VECTOR_CLOCK;
  boost::container::small_vector<Dot, 4> counters;  // VECTOR_CLOCK: (actor, counter), by actor
  int64_t timestamp = 0;                            // LAST_WRITE_WINS
  bool tombstone = false;                           // LAST_WRITE_WINS

  bool operator==(const CausalSummary& o) const {
    return kind == o.kind && counters == o.counters && timestamp == o.timestamp &&
           tombstone == o.tombstone;
  }
  bool operator!=(const CausalSummary& o) const { return !(*this == o); }
};

CausalSummary causalSummary(const Object& object);
// The object's summary, as above. A last-write-wins object without a version (never stored)
// summarises as timestamp 0, not a tombstone.

struct KeyDigest {
  // One key of an exchange's listing (common/coordinator/anti-entropy-exchange.h).
  std::string key;        // the encoded storage key (storaged/storage-key.h): partition first
  uint64_t digest = 0;    // causalDigest() of the object stored under it
  CausalSummary summary;  // causalSummary() of the same object (unused where only the digest
                          // matters: tombstone collection)

  bool operator==(const KeyDigest& o) const {
    return key == o.key && digest == o.digest && summary == o.summary;
  }
};

uint64_t entryHash(std::string_view ns, std::string_view key, uint64_t digest);
// A key's contribution to its segment: its placement hash combined with its object's digest.

uint64_t combinedRoots(const std::vector<uint64_t>& roots);
// One hash of a list of roots, in order: what an exchange compares first, so that replicas
// that agree on every partition of a batch spend one hash on it rather than one per partition.
// Equal lists hash equal; different ones differ but for a 2^-64 chance.

uint32_t saltedHash(uint64_t hash, uint64_t salt);
// What an exchange sends of a tree node: 32 bits of a mix of the node's hash with the
// exchange's salt. Half the bytes of the full hash; and since every exchange draws a new salt,
// two different subtrees that happen to collide in one exchange do not in the next, so a
// difference is never hidden for good.

class MerkleTree {
 public:
  static constexpr size_t FANOUT = 8;
  static constexpr size_t LEVELS = 5;  // level 0 is the root, level LEVELS - 1 the segments
  static constexpr size_t SEGMENTS = 4096;  // FANOUT^(LEVELS - 1)
  static constexpr size_t SEGMENT_LEVEL = LEVELS - 1;

  static constexpr size_t nodesAt(size_t level) { return size_t(1) << (3 * level); }
  // How many nodes level `level` has: 1, 8, 64, 512, 4096.

  static size_t segmentOf(std::string_view ns, std::string_view key);
  // The key's segment, from keyHash (which also places it on the ring: keys of one partition
  // share its top bits, so the segment takes the low ones).

  void update(std::string_view ns, std::string_view key, std::optional<uint64_t> before,
              std::optional<uint64_t> after);
  // The key's object changed from digest `before` to `after` (nullopt: absent). The caller
  // passes what it stored and what it now stores, so the tree needs no read of its own.

  uint64_t root() const { return nodes_[0]; }
  uint64_t node(size_t level, size_t index) const;
  // The hash of node `index` of `level` (KJ_REQUIRE: both in range): the XOR of entryHash()
  // over every key of the segments under it.
  uint64_t segment(size_t s) const { return node(SEGMENT_LEVEL, s); }

  std::array<uint64_t, FANOUT> children(size_t level, size_t index) const;
  // The hashes of the FANOUT children of node `index` of `level` (< SEGMENT_LEVEL), in order;
  // child i is node index * FANOUT + i of level + 1.

  bool empty() const { return *this == MerkleTree(); }

  bool operator==(const MerkleTree& o) const { return nodes_ == o.nodes_; }
  bool operator!=(const MerkleTree& o) const { return !(*this == o); }

  static constexpr size_t memoryBytes() { return sizeof(MerkleTree); }
  // The same for every partition whatever it holds (about 37 KiB).

 private:
  static constexpr size_t NODES = 1 + 8 + 64 + 512 + 4096;
  static constexpr size_t offsetOf(size_t level) { return (nodesAt(level) - 1) / (FANOUT - 1); }
  std::array<uint64_t, NODES> nodes_{};  // level by level, root first

  void toggle(size_t segment, uint64_t hash);
};

}  // namespace dynkv

// One partition's hash tree for anti-entropy (DESIGN.md, "Anti-entropy"; the paper's §4.7),
// built the way Riak 3's TicTac trees are: a fixed shape, leaves that combine their keys'
// hashes with XOR, so that a write updates one leaf and its branch in O(1) without reading
// any other key, and the tree never needs a rebuild to stay current.
//
// Shape (TreeShape): segments ("leaves": a key's segment is fixed by its hash) under a tree of
// fan-out FANOUT: levels of 1 (the root), 8, 64, 512 and 4096 nodes at the finest shape, one
// or two levels fewer where the ring has so many partitions that 37 KiB trees would not fit a
// node's budget (TreeShape::forPartitions()). Every node is the XOR of its children, so a
// segment's hash is the XOR of entryHash() over the keys in it, and two replicas holding the
// same objects have the same tree whatever order their writes came in. Its memory is fixed by
// its shape (memoryBytes(): about 37 KiB, 4.6 KiB or 600 bytes) whatever the number of keys.
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
  uint8_t level = 0;  // < TreeShape::segmentLevel() for an ASK_CHILDREN node
  uint32_t index = 0;

  bool operator==(const TreeNodeRef& o) const {
    return partition == o.partition && level == o.level && index == o.index;
  }
};

struct SegmentRef {
  uint32_t partition = 0;
  uint32_t segment = 0;  // < TreeShape::segments() of the trees compared

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

class TreeShape {
  // How many levels a partition's tree has, the same on every node of a cluster (it follows
  // from the number of partitions, which they share): the root's level 0 down to the segments'
  // segmentLevel(). Keys are placed in FINE_SEGMENTS fine segments (what the digest index is
  // ordered by: storaged/hash-trees.h); a coarser shape's segment s is the run of fine segments
  // s << fineShift() up to (s + 1) << fineShift(), so the index serves every shape unchanged.
 public:
  static constexpr size_t FANOUT = 8;
  static constexpr size_t MAX_LEVELS = 5;
  static constexpr size_t MIN_LEVELS = 3;
  static constexpr size_t FINE_SEGMENTS = 4096;  // FANOUT^(MAX_LEVELS - 1)
  static constexpr size_t MEMORY_BUDGET = 48u << 20;
  // What the trees of every partition of the ring may take together at most, nodes only (a
  // node holds at most every partition): forPartitions() picks the finest shape within it,
  // which keeps the trees and their bookkeeping under 64 MiB per node at any ring size.

  constexpr TreeShape() = default;  // the finest: 4096 segments
  explicit TreeShape(size_t levels);
  // levels in MIN_LEVELS..MAX_LEVELS (KJ_REQUIRE).

  static TreeShape forPartitions(size_t partitions);
  // The finest shape whose trees, one per partition of a ring of `partitions`, fit
  // MEMORY_BUDGET: 4096 segments up to 1024 partitions, 512 up to 8192, 64 up to 65536.
  static TreeShape forSegments(size_t segments);
  // The shape with `segments` segments (512: 4 levels); throws for a count no shape has.

  size_t levels() const { return levels_; }
  size_t segmentLevel() const { return levels_ - 1; }
  size_t segments() const { return nodesAt(segmentLevel()); }
  size_t nodes() const;  // in every level together: 4681, 585 or 73
  size_t fineShift() const { return 3 * (MAX_LEVELS - levels_); }

  static constexpr size_t nodesAt(size_t level) { return size_t(1) << (3 * level); }
  // How many nodes level `level` has: 1, 8, 64, 512, 4096.

  bool operator==(const TreeShape& o) const { return levels_ == o.levels_; }
  bool operator!=(const TreeShape& o) const { return !(*this == o); }

 private:
  size_t levels_ = MAX_LEVELS;
};

class MerkleTree {
 public:
  static constexpr size_t FANOUT = TreeShape::FANOUT;

  explicit MerkleTree(TreeShape shape = TreeShape());
  // An empty tree (every node 0) of `shape`.

  const TreeShape& shape() const { return shape_; }

  static size_t fineSegmentOf(std::string_view ns, std::string_view key);
  // The key's fine segment (< TreeShape::FINE_SEGMENTS), from keyHash (which also places it on
  // the ring: keys of one partition share its top bits, so the segment takes the low ones).
  size_t segmentOf(std::string_view ns, std::string_view key) const;
  // Its segment in this tree: the fine one shifted by shape().fineShift().

  void update(std::string_view ns, std::string_view key, std::optional<uint64_t> before,
              std::optional<uint64_t> after);
  // The key's object changed from digest `before` to `after` (nullopt: absent). The caller
  // passes what it stored and what it now stores, so the tree needs no read of its own.

  uint64_t root() const { return nodes_[0]; }
  uint64_t node(size_t level, size_t index) const;
  // The hash of node `index` of `level` (KJ_REQUIRE: both in range): the XOR of entryHash()
  // over every key of the segments under it.
  uint64_t segment(size_t s) const { return node(shape_.segmentLevel(), s); }

  std::array<uint64_t, FANOUT> children(size_t level, size_t index) const;
  // The hashes of the FANOUT children of node `index` of `level` (< segmentLevel()), in order;
  // child i is node index * FANOUT + i of level + 1.

  bool empty() const;

  bool operator==(const MerkleTree& o) const {
    return shape_ == o.shape_ && nodes_ == o.nodes_;
  }
  bool operator!=(const MerkleTree& o) const { return !(*this == o); }

  size_t memoryBytes() const { return sizeof(MerkleTree) + nodes_.capacity() * sizeof(uint64_t); }
  // Fixed by the shape, whatever the tree holds: about 37 KiB, 4.6 KiB or 600 bytes.
  static size_t memoryBytes(TreeShape shape) {
    return sizeof(MerkleTree) + shape.nodes() * sizeof(uint64_t);
  }

 private:
  static constexpr size_t offsetOf(size_t level) {
    return (TreeShape::nodesAt(level) - 1) / (FANOUT - 1);
  }
  TreeShape shape_;
  std::vector<uint64_t> nodes_;  // level by level, root first

  void toggle(size_t segment, uint64_t hash);
};

}  // namespace dynkv

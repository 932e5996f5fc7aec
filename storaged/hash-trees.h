// The node's anti-entropy hash trees (DESIGN.md, "Anti-entropy"): one MerkleTree per partition
// it holds objects of (common/merkle-tree.h), kept in memory and updated as writes commit, and,
// under them, the DIGESTS table: every object's causal digest indexed by partition and segment,
// written in the same transaction as the object. The index is what lets an exchange list the
// keys of one segment without reading the partition, and what the trees are rebuilt from when
// the node starts (a scan of digests, not of objects).
//
// Every write to Table::OBJECTS must go through written() in its transaction (the versioned
// store's do), or the trees stop describing the store.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "anti-entropy-exchange.h"
#include "dvv.h"
#include "engine.h"
#include "group-commit.h"
#include "limits.h"
#include "merkle-tree.h"

namespace dynkv::storaged {

class HashTrees {
 public:
  HashTrees(StorageEngine& engine, const Limits& limits, TreeShape shape = TreeShape());
  // Loads the trees, of `shape` (TreeShape::forPartitions() of the ring), from the DIGESTS
  // table. A data directory written before the index existed has it built first, from OBJECTS,
  // in one transaction (throws, changing nothing, if that fails). `engine` must outlive the
  // trees.

  TreeShape shape() const { return shape_; }

  void written(BatchTransaction& txn, const std::string& storageKey,
               const std::optional<Object>& now);
  // The object under the encoded `storageKey` is now `now` (nullopt: removed) in `txn`: updates
  // its index entry in `txn` and, once the batch commits, its partition's tree and counts.

  const MerkleTree* tree(uint32_t partition) const;
  // The partition's tree; null if this node holds no object of it.

  std::vector<uint32_t> partitions() const;
  // The partitions this node holds objects of, ascending.

  uint64_t keys(uint32_t partition) const;
  uint64_t tombstones(uint32_t partition) const;
  // Objects held, and those of them whose every sibling is a tombstone.
  uint64_t tombstones() const;  // in every partition

  uint64_t digest() const;
  // A hash of every held partition's number and root: two nodes that hold the same partitions
  // have equal digests exactly when their trees agree.

  size_t memoryBytes() const;
  // Of the trees and their bookkeeping: what grows with the partitions held, not with the keys.
  static size_t memoryBytes(TreeShape shape, size_t partitions);
  // The same for a node holding `partitions` partitions.

  struct Listing {
    std::vector<KeyDigest> entries;
    size_t segmentsCovered = 0;
  };
  Listing list(const std::vector<SegmentRef>& segments, size_t maxEntries) const;
  // The (storage key, digest) of every object in the first segmentsCovered of `segments` (of
  // shape()): all of them, or as many whole segments as fit in about maxEntries (at least one
  // segment, whatever it holds).

  std::vector<KeyDigest> tombstonesOf(uint32_t partition) const;
  // The partition's objects that are only tombstones, from the index.

 private:
  struct Partition {
    explicit Partition(TreeShape shape) : tree(shape) {}
    MerkleTree tree;
    uint64_t keys = 0;
    uint64_t tombstones = 0;
  };

  StorageEngine& engine_;
  Limits limits_;
  TreeShape shape_;
  std::map<uint32_t, std::unique_ptr<Partition>> partitions_;
  uint64_t tombstones_ = 0;

  void apply(const std::string& storageKey, std::optional<uint64_t> before, bool wasTombstone,
             std::optional<uint64_t> after, bool isTombstone);
  void load();
};

bool onlyTombstones(const Object& object);
// Whether every sibling of a non-empty object is a tombstone: what a collection may remove.

}  // namespace dynkv::storaged

// One partition's hash tree for anti-entropy (DESIGN.md, "Anti-entropy"; the paper's §4.7),
// built the way Riak 3's TicTac trees are: a fixed shape, leaves that combine their keys'
// hashes with XOR, so that a write updates one leaf and its branch in O(1) without reading
// any other key, and the tree never needs a rebuild to stay current.
//
// Shape: SEGMENTS leaves ("segments": a key's segment is fixed by its hash), grouped into
// BRANCHES branches of SEGMENTS / BRANCHES segments each, and one root. Every level is the XOR
// of the level below, so a segment's hash is the XOR of entryHash() over the keys in it, and
// two replicas holding the same objects have the same tree whatever order their writes came
// in. Its memory is fixed (memoryBytes(), about 33 KiB) whatever the number of keys.
//
// Two replicas compare roots, then the branches of differing roots, then the segments of
// differing branches; only keys in differing segments are then read and synced.
//
// A pure value: no I/O, no clock, no locking.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

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

uint64_t entryHash(std::string_view ns, std::string_view key, uint64_t digest);
// A key's contribution to its segment: its placement hash combined with its object's digest.

class MerkleTree {
 public:
  static constexpr size_t SEGMENTS = 4096;
  static constexpr size_t BRANCHES = 64;
  static constexpr size_t SEGMENTS_PER_BRANCH = SEGMENTS / BRANCHES;

  static size_t segmentOf(std::string_view ns, std::string_view key);
  // The key's segment, from keyHash (which also places it on the ring: keys of one partition
  // share its top bits, so the segment takes the low ones).

  void update(std::string_view ns, std::string_view key, std::optional<uint64_t> before,
              std::optional<uint64_t> after);
  // The key's object changed from digest `before` to `after` (nullopt: absent). The caller
  // passes what it stored and what it now stores, so the tree needs no read of its own.

  uint64_t root() const { return root_; }
  uint64_t branch(size_t b) const { return branches_[b]; }
  uint64_t segment(size_t s) const { return segments_[s]; }
  const std::array<uint64_t, BRANCHES>& branches() const { return branches_; }

  std::vector<uint64_t> segmentsOfBranch(size_t b) const;
  // The branch's SEGMENTS_PER_BRANCH segment hashes, in segment order: what a replica sends
  // for a branch its peer found different.

  static std::vector<size_t> differingBranches(const std::array<uint64_t, BRANCHES>& mine,
                                               const std::array<uint64_t, BRANCHES>& theirs);
  // The indexes whose hashes differ.

  std::vector<size_t> differingSegments(size_t b, const std::vector<uint64_t>& theirs) const;
  // The segments of branch `b` (as segment numbers) whose hashes differ from `theirs`, the
  // peer's segmentsOfBranch(b). Throws (KJ_REQUIRE) if `theirs` has the wrong size.

  bool operator==(const MerkleTree& o) const { return segments_ == o.segments_; }
  bool operator!=(const MerkleTree& o) const { return !(*this == o); }

  static constexpr size_t memoryBytes() { return sizeof(MerkleTree); }
  // The same for every partition whatever it holds.

 private:
  std::array<uint64_t, SEGMENTS> segments_{};
  std::array<uint64_t, BRANCHES> branches_{};
  uint64_t root_ = 0;

  void toggle(size_t segment, uint64_t hash);
};

}  // namespace dynkv

// One anti-entropy exchange (DESIGN.md, "Anti-entropy"; the paper's §4.7), as a pure state
// machine: this node (the initiator) compares its hash trees (common/merkle-tree.h) with one
// peer's for a set of partitions they both hold, walks down only the subtrees that differ, lists
// the keys of the differing segments on both sides, and hands back the keys whose copies differ
// for the shell to sync. Riak's TicTac AAE exchange, batched over every partition the two nodes
// share, so one exchange costs a handful of round trips however many partitions it covers.
//
// Steps, each one request to the peer (or a local listing) that the shell performs and answers
// with the matching event:
//   ASK_ROOTS     whether the peer's roots of `partitions` hash
//                 to `rootsHash` (combinedRoots() of this node's)  -> rootsEqual()
//                 and if not, the peer's full 64-bit roots         -> rootsReceived()
//   ASK_CHILDREN  the peer's salted hashes of the FANOUT children
//                 of each of `nodes`                              -> childrenReceived()
//   LIST_KEYS     (storage key, causal digest, causal summary) of
//                 every key in `segments`, from this node's store
//                 and the peer's                                  -> keysListed()
//   REPAIR        the keys whose copies differ, each with what
//                 repairNeeds() (repair-needs.h) decided from the
//                 two summaries. The shell makes the peer hold a
//                 version covering this node's copy of each that
//                 needs a push (it pushes this node's copy, which
//                 the peer syncs), and, for a partition this node
//                 is a replica of, syncs here the peer's copy of
//                 each that needs a fetch                         -> repaired()
//   DONE          the exchange is over; stats() says what it found.
// One hash stands for every root of an ASK_ROOTS step: between replicas that agree (most pairs,
// most rounds) a step costs 8 bytes each way however many partitions it covers.
// In this order: every ASK_ROOTS first; then ASK_CHILDREN breadth-first, level by level (one step
// may finish a level and start the next); then LIST_KEYS, with a REPAIR step as soon as
// maxRepairsPerStep repairs are pending, so that what an exchange holds stays bounded however
// much differs; the remaining repairs last. Each step carries at most its limit.
// Any failure (a lost or refused request, a timeout, a crash of either side) is failed(): the
// exchange ends there. Nothing it did is lost (each repair is a sync, idempotent and
// commutative) and nothing is assumed: the next exchange starts again from the roots.
//
// Roots are compared in full (64 bits), so a partition found equal is equal but for a 2^-64
// chance: that is what tombstone collection and hand-off cleanup rely on (covered()). Below the
// roots the peer sends saltedHash(hash, salt) (32 bits), the salt drawn by the caller per
// exchange, so a collision hides a difference for one exchange at most. A node found different
// whose children all look equal is such a collision (or a write that landed meanwhile): its
// partition is left out of covered() (see there).
//
// Pure: no I/O, no clock, no randomness of its own. The local trees are read in place through
// `trees` when a step needs them; they may change between steps as writes land (a difference
// found that a write has since mended costs a key comparison, one a write has since made is found
// by the next exchange).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "merkle-tree.h"
#include "repair-needs.h"

namespace dynkv {

struct KeyRepair {
  // A key whose copies differ: what each side holds (nullopt: nothing), and which way its
  // versions must move (repairNeeds() of the two sides' summaries).
  std::string key;
  std::optional<uint64_t> local;
  std::optional<uint64_t> peer;
  RepairNeeds needs;

  bool operator==(const KeyRepair& o) const {
    return key == o.key && local == o.local && peer == o.peer && needs == o.needs;
  }
};

struct ExchangeLimits {
  // How much one step may carry, so that no request or reply grows with the data: a step over
  // more is split into several of these sizes.
  size_t maxPartitionsPerStep = 1024;  // ASK_ROOTS
  size_t maxNodesPerStep = 512;        // ASK_CHILDREN: 512 * 8 * 4 bytes of hashes back
  size_t maxSegmentsPerStep = 512;     // LIST_KEYS
  size_t maxRepairsPerStep = 128;      // REPAIR
};

struct ExchangeStats {
  size_t partitionsCompared = 0;  // roots compared
  size_t partitionsDiffering = 0;
  size_t segmentsDiffering = 0;   // segments whose salted hashes differed
  size_t keysCompared = 0;        // keys listed in those segments, both sides together
  size_t keysDiffering = 0;       // handed to REPAIR
  size_t keysRepaired = 0;        // what the shell reported through repaired()
  size_t steps = 0;               // requests made (round trips)
};

class Exchange {
 public:
  struct Step {
    enum class Kind : uint8_t { ASK_ROOTS, ASK_CHILDREN, LIST_KEYS, REPAIR, DONE, FAILED };
    Kind kind = Kind::DONE;
    std::vector<uint32_t> partitions;  // ASK_ROOTS
    uint64_t rootsHash = 0;            // ASK_ROOTS: combinedRoots() of this node's roots of them
    uint64_t salt = 0;                 // ASK_CHILDREN: what the peer salts its hashes with
    std::vector<TreeNodeRef> nodes;    // ASK_CHILDREN
    std::vector<SegmentRef> segments;  // LIST_KEYS
    std::vector<KeyRepair> repairs;    // REPAIR, in key order
  };

  using Trees = std::function<const MerkleTree*(uint32_t partition)>;
  // This node's tree of a partition, or null if it holds nothing of it (an empty tree).

  Exchange(std::vector<uint32_t> partitions, uint64_t salt, Trees trees,
           ExchangeLimits limits = {}, TreeShape shape = TreeShape());
  // An exchange over `partitions` (duplicates ignored) of trees of `shape`, which every tree
  // `trees` gives must have (KJ_REQUIRE) and the peer's too (the shell makes sure: see aeRoots).
  // `trees` must stay callable for the exchange's life. The first step is ASK_ROOTS (DONE at
  // once if `partitions` is empty).

  const Step& step() const { return step_; }
  // What to do now. Stays the same until the event that answers it.

  void rootsEqual();
  // The peer's roots of the ASK_ROOTS step's partitions hash to its rootsHash: each is equal to
  // this node's root when the step was made.

  void rootsReceived(const std::vector<uint64_t>& roots);
  // The peer's roots, one per partition of the ASK_ROOTS step, in its order (its hash of them
  // differed from rootsHash).

  void childrenReceived(const std::vector<std::array<uint32_t, MerkleTree::FANOUT>>& children);
  // The peer's salted child hashes, one array per node of the ASK_CHILDREN step, in its order.

  void keysListed(const std::vector<KeyDigest>& local, const std::vector<KeyDigest>& peer,
                  size_t segmentsCovered);
  // Both sides' keys of the first `segmentsCovered` segments of the LIST_KEYS step (>= 1; a side
  // whose reply had to stop early covers fewer: the rest are asked again in a later step), in any
  // order, each key at most once per side. Keys whose digests differ or that one side lacks
  // become repairs, with repairNeeds() of their summaries.

  void repaired(size_t keys);
  // The REPAIR step is done; `keys` of its repairs changed a copy on either side (for stats).

  void failed();
  // The current step failed; the exchange ends (step() is FAILED).
  //
  // An event that does not answer the current step, or whose sizes do not match it, is the
  // caller's mistake (KJ_REQUIRE): a peer's malformed reply must be refused by the shell, which
  // then calls failed().

  bool finished() const;  // DONE or FAILED

  const ExchangeStats& stats() const { return stats_; }

  struct Covered {
    uint32_t partition;
    uint64_t root;  // this node's root of it when the roots were compared
  };
  const std::vector<Covered>& covered() const { return covered_; }
  // The partitions of which the peer held every version this node held when the roots were
  // compared: those whose roots were equal then (an empty partition on both sides counts) and,
  // once the exchange is DONE, all of its other partitions — every key found different went to
  // REPAIR, and the shell answers repaired() only once the peer holds a version covering this
  // node's copy of each — but those where the walk met a node that differed and whose children
  // all looked equal (a salted collision, or a write meanwhile: what differs was not found). A
  // partition of the walk is covered with its root here at compare time. Past the roots, this
  // rests on the 32-bit salted hashes: a collision that hides one differing subtree beside
  // another that is found goes unnoticed, 2^-32 per such subtree and exchange. In the order
  // found. The caller may rely on a partition only while its root here is still the one
  // recorded (nothing changed here since): see anti-entropy-plan.h.

 private:
  // (the implementation's own state)
  std::vector<uint32_t> partitions_;
  uint64_t salt_;
  Trees trees_;
  ExchangeLimits limits_;
  MerkleTree empty_;  // what a partition this node holds nothing of hashes to: every node 0
  Step step_;
  ExchangeStats stats_;
  std::vector<Covered> covered_;
  std::vector<uint64_t> askedRoots_;  // this node's roots of the ASK_ROOTS step, as hashed
  std::vector<Covered> differing_;  // partitions whose roots differed, with this node's root
  std::set<uint32_t> unresolved_;  // differing partitions the walk lost track of: not covered
  size_t nextPartition_ = 0;              // ASK_ROOTS progress
  std::deque<TreeNodeRef> pendingNodes_;  // differing nodes whose children are still to ask
  std::deque<SegmentRef> pendingSegments_;
  std::deque<KeyRepair> pendingRepairs_;  // in key order

  const MerkleTree& localTree(uint32_t partition) const;
  void advance();
};

}  // namespace dynkv

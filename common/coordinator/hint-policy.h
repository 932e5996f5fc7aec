// Hinted-handoff delivery policy (DESIGN.md, "Request paths"; the paper's §4.6): which
// owners a hint holder serves in one delivery round, how many hints each, and where the hints
// of an owner that has left the ring go. Pure: the holder's backlog, the partition map and
// what the failure detector suspects come in as values; the storaged shell
// (storaged/hinted-handoff.h) reads the hints and sends them.
//
// What the policy guarantees the shell, whatever the backlog:
// - no owner can block another: an owner that is suspected is skipped for the round, and one
//   with a huge backlog gets at most HintBudget::perOwner hints while the round's budget is
//   shared evenly among the others that have hints;
// - hints for an owner that is not in the map any more are not kept for ever: they are routed
//   to their key's current preference list.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "partition-map.h"

namespace dynkv {

struct HintBacklog {
  // What a holder keeps for one owner.
  uint64_t ownerId = 0;
  uint64_t count = 0;  // hints held for it

  bool operator==(const HintBacklog& o) const { return ownerId == o.ownerId && count == o.count; }
};

struct HintBudget {
  // How much one round may deliver. Delivery is background work (DESIGN.md, "Anti-entropy":
  // the admission controller's budget): the per-owner cap keeps a recovering owner from being
  // buried, the per-round budget bounds what the holder spends.
  size_t perRound = 512;
  size_t perOwner = 256;
};

enum class HintRoute : uint8_t {
  TO_OWNER,           // the owner is a member: hand each hint to it (hintFor = 0)
  TO_CURRENT_OWNERS,  // the owner is not in the map: hand each hint to hintTargets() instead
};

struct HintTurn {
  // One owner's share of a round: deliver up to `max` of its hints, one at a time, in its
  // storage order from where its previous turn stopped.
  uint64_t ownerId = 0;
  HintRoute route = HintRoute::TO_OWNER;
  size_t max = 0;  // >= 1

  bool operator==(const HintTurn& o) const {
    return ownerId == o.ownerId && route == o.route && max == o.max;
  }
};

std::vector<HintTurn> planHintRound(const PartitionMap& map,
                                    const std::vector<HintBacklog>& backlog,
                                    const std::function<bool(uint64_t ownerId)>& suspected,
                                    const HintBudget& budget, uint64_t round);
// The turns of round number `round` (any counter the caller advances by one per round), each
// owner at most once, every `max` at least 1.
//
// An owner with count 0 is ignored. A member of `map` that `suspected` says is suspected gets
// no turn: its hints wait, and it is not asked again until it is believed up. Every other
// owner with hints is eligible: members with route TO_OWNER, owners that are not in the map
// with TO_CURRENT_OWNERS (`suspected` is not consulted for them: they have no address any
// more). The budget is filled as if handed out one hint at a time round-robin, so each owner
// gets min(count, perOwner, an even share of perRound plus what others leave unused). Who
// comes first in that order (and so gets the remainder of an uneven split, or a turn at all
// when there are more eligible owners than perRound) rotates with `round`: with E eligible
// owners, each gets a turn within ceil(E / perRound) consecutive rounds while they stay the
// same. Deterministic: the same arguments give the same turns whatever the order of `backlog`
// (its ids must be unique).
//
// An empty map decides nothing (no turns): a node that has no ring yet cannot tell a removed
// owner from one it has not heard of. perRound or perOwner 0 gives no turns.

std::vector<uint64_t> hintTargets(const PartitionMap& map, uint64_t keyHash, uint32_t n);
// Where a hint for a key with hash `keyHash` (dynkv::keyHash) goes when its owner has left the
// ring: the node ids of the key's current preference list, the first min(n, members) distinct
// nodes of its partition, in preference order. Empty for an empty map or n 0. The caller decides
// what to do about a target that is itself down (storaged keeps the write as a hint for it).

std::optional<std::string> checkHintOwner(const PartitionMap& map, uint64_t ownerId,
                                          uint64_t senderMapVersion);
// Whether a fallback should accept a write held as a hint for `ownerId` (a replicate call's
// hintFor), `map` being the fallback's own and `senderMapVersion` the one the sender carried.
// nullopt to accept, else the refusal ("invalid argument: ...").
//
// Refused: an owner that is not a node of `map` when the sender carried this same map version.
// The sender chose the owner from that map's preference list, so no correct sender names such a
// node: the hint is forged or from a bug. A sender with another version is not refused: with an
// older map it may name a node removed since, with a newer one a node that joined since, and
// refusing would fail a correct write (its "invalid argument" stops the sender from asking
// another fallback). Such a hint is not kept for ever either: while its owner is not in the map,
// planHintRound routes it to the key's current owners. An empty map decides nothing (accepted).

}  // namespace dynkv

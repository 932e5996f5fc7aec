// Which way one anti-entropy repair must go (DESIGN.md, "Anti-entropy"): for a key whose copies
// differ between this node and a peer, whether this node must fetch the peer's copy (the peer
// holds versions it lacks), push its own (it holds versions the peer lacks), or both. Decided
// from the two copies' causal summaries (common/merkle-tree.h) as the exchange listed them, so
// that a stale replica is only sent what it lacks and an up-to-date one sends only once,
// instead of every differing key costing a fetch and a push.
//
// Pure: no I/O. Each direction it leaves out would have been a no-op: a copy whose version
// vector descends the other's already holds, or has superseded, every version of the other
// (each sibling's dot is covered by its object's version vector), so sync() with the other adds
// nothing to it. When that cannot be told from the summaries — different namespace kinds,
// equal version vectors whose digests still differ, last-write-wins versions with one
// timestamp — both directions are asked for: every repair is a sync(), so an extra one is
// wasted bytes, never a wrong result.
#pragma once

#include <optional>

#include "merkle-tree.h"

namespace dynkv {

struct RepairNeeds {
  bool fetch = false;  // the peer holds versions this node's copy lacks: sync the peer's here
  bool push = false;   // this node's copy holds versions the peer's lacks: hand it over

  bool operator==(const RepairNeeds& o) const { return fetch == o.fetch && push == o.push; }
};

RepairNeeds repairNeeds(const std::optional<CausalSummary>& local,
                        const std::optional<CausalSummary>& peer);
// For a key whose copies differ (digests unequal, or one side holds none: nullopt):
// - one side holds none: only the other side's copy moves (fetch if it is the peer's);
// - both dotted version vectors: fetch unless this node's vector descends the peer's (every
//   counter at least the peer's), push unless the peer's descends this node's; both if each
//   descends the other (equal counters, yet the digests differ);
// - both last-write-wins: only the copy with the later timestamp moves; both on a tie (the
//   winner then depends on the values, which the summaries do not carry);
// - kinds differ: both.
// Never { false, false } unless both are nullopt. Guarantees covered() relies on: push is false
// only when the peer's copy already covers every version of this node's; fetch is false only
// when this node's covers every version of the peer's.

bool descends(const CausalSummary& a, const CausalSummary& b);
// Dotted version vectors: every counter of `b` is at most `a`'s for its actor (absent: 0).

}  // namespace dynkv

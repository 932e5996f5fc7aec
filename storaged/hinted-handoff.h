// Hinted handoff (DESIGN.md, "Request paths"; the paper's §4.6): writes this node accepted
// as a fallback for an unreachable owner wait in the hint store; this loop hands each one to
// its owner once the owner answers again, then deletes it. Which owners are served in a round,
// and how many hints each, is decided by the pure policy in common/coordinator/hint-policy.h;
// this class is the shell that reads the hints and sends them.
#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include <map>
#include <string>
#include <vector>

#include "admission.h"
#include "hint-policy.h"
#include "hint-store.h"
#include "membership.h"
#include "net/node-pool.h"
#include "versioned-store.h"

namespace dynkv::storaged {

class HintedHandoff {
 public:
  HintedHandoff(VersionedStore& store, HintStore& hints, Membership& membership, NodePool& pool,
                kj::Timer& timer, uint32_t replicas, HintBudget budget = {},
                BackgroundAdmission* admission = nullptr);
  // Delivers what `hints` holds; a hint reassigned to this node goes into `store`. `replicas`
  // is the cluster's N: hints for an owner that has left the ring go to the first N nodes of
  // their key's preference list. Each hint is handed off under a slot of `admission` (null:
  // unthrottled). This node is store.self().node; all references must outlive the
  // HintedHandoff.

  static constexpr auto INTERVAL = 1 * kj::SECONDS;
  static constexpr auto DELIVERY_TIMEOUT = 5 * kj::SECONDS;  // one hint to one node

  kj::Promise<void> run();
  // Delivers forever, one round every INTERVAL. Never fails: a failed delivery is retried in
  // a later round.

  kj::Promise<size_t> deliverRound();
  // One round: the owners planHintRound() picks for the store's current backlog and map are
  // served concurrently, each one hint at a time (background work: a recovering owner gets
  // at most one write from us at a time), from where that owner's previous turn stopped;
  // at the end of an owner's hints its cursor wraps to the first. Resolves, once every turn
  // has ended, to the number of hints handed off and deleted.
  //
  // - An owner that is a member: each hint is sent as an owner write (hintFor = 0), then
  //   deleted (unless it changed meanwhile). A failed or timed-out send is reported to the
  //   pool's failure detector and ends that owner's turn, not anyone else's; the hint is
  //   retried after the cursor has wrapped, so a hint the owner refuses cannot block the rest.
  // - Every hint, whichever the route, waits for a background slot (BackgroundAdmission) and
  //   holds it until it has been sent and deleted. A turn that cannot get one (too many
  //   background operations wait already) ends; its hints wait for a later round.
  // - An owner that is not in the map any more: each hint goes to its key's current
  //   preference list (hintTargets()). A target that is this node stores it locally; a target
  //   that is suspected, or fails or times out, gets it as a hint held here for it. Once every
  //   target has it (or a hint for it is held), the original hint is deleted.
  //
  // Never fails: a store failure (reading hints, keeping or deleting one) is logged and ends
  // only the turn it happened in.

 private:
  VersionedStore& store_;
  HintStore& hints_;
  Membership& membership_;
  NodePool& pool_;
  kj::Timer& timer_;
  uint32_t replicas_;
  HintBudget budget_;
  BackgroundAdmission* admission_;
  uint64_t round_ = 0;
  std::map<uint64_t, std::string> cursors_;  // owner id -> storage key its next turn starts
                                             // after ("" = from its first hint)

  kj::Promise<size_t> serve(MapSnapshot map, HintTurn turn);
  kj::Promise<size_t> deliverFrom(MapSnapshot map, HintTurn turn, HintStore::HintPage page,
                                  size_t next, size_t delivered);
  void advanceCursor(uint64_t owner, const HintStore::HintPage& page, size_t tried);
  kj::Promise<bool> handOff(const MapSnapshot& map, const HintTurn& turn,
                            const HintStore::Hint& hint);
  kj::Promise<void> send(const NodeInfo& node, uint64_t mapVersion,
                         const HintStore::Hint& hint);
  kj::Promise<void> reassign(MapSnapshot map, HintStore::Hint hint,
                             std::vector<uint64_t> targets, size_t next);
};

}  // namespace dynkv::storaged

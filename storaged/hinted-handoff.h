// Hinted handoff (DESIGN.md, "Request paths"; the paper's §4.6): writes this node accepted
// as a fallback for an unreachable owner wait in the hint store; this loop hands each one to
// its owner once the owner answers again, then deletes it.
#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include "membership.h"
#include "node-pool.h"
#include "store.h"

namespace dynkv::storaged {

class HintedHandoff {
 public:
  HintedHandoff(Store& store, Membership& membership, NodePool& pool, kj::Timer& timer);

  static constexpr auto INTERVAL = 1 * kj::SECONDS;
  static constexpr size_t BATCH = 256;  // hints read per round

  kj::Promise<void> run();
  // Delivers forever, one round every INTERVAL. Never fails: a failed delivery is retried in
  // a later round.

  kj::Promise<size_t> deliverRound();
  // One round: tries every held hint (up to BATCH) whose owner is not suspected; resolves to
  // the number delivered.

 private:
  Store& store_;
  Membership& membership_;
  NodePool& pool_;
  kj::Timer& timer_;

  kj::Promise<size_t> deliver(std::vector<Store::Hint> hints, size_t next, size_t delivered);
};

}  // namespace dynkv::storaged

#include "hint-policy.h"

#include <algorithm>

#include "anti-entropy-plan.h"

namespace dynkv {

std::vector<HintTurn> planHintRound(const PartitionMap& map,
                                    const std::vector<HintBacklog>& backlog,
                                    const std::function<bool(uint64_t ownerId)>& suspected,
                                    const HintBudget& budget, uint64_t round) {
  std::vector<HintTurn> turns;
  if (map.empty() || budget.perRound == 0 || budget.perOwner == 0) return turns;

  struct Eligible {
    HintTurn turn;
    size_t wants;  // min(count, perOwner)
  };
  std::vector<Eligible> eligible;
  for (auto& held : backlog) {
    if (held.count == 0) continue;
    bool member = map.indexOf(held.ownerId).has_value();
    if (member && suspected(held.ownerId)) continue;
    auto route = member ? HintRoute::TO_OWNER : HintRoute::TO_CURRENT_OWNERS;
    eligible.push_back(Eligible{HintTurn{held.ownerId, route, 0},
                                size_t(std::min<uint64_t>(held.count, budget.perOwner))});
  }
  if (eligible.empty()) return turns;

  // Sorting makes the plan independent of the backlog's order; rotating makes the owners that
  // come first (and get an uneven split's remainder, or a turn at all when owners outnumber
  // the budget) change from round to round. With more owners than budget, consecutive rounds
  // start where the previous one's window ended.
  std::sort(eligible.begin(), eligible.end(),
            [](auto& a, auto& b) { return a.turn.ownerId < b.turn.ownerId; });
  size_t step = eligible.size() > budget.perRound ? budget.perRound : 1;
  size_t start = size_t((round % eligible.size()) * step % eligible.size());
  std::rotate(eligible.begin(), eligible.begin() + ptrdiff_t(start), eligible.end());

  // Water-filling, equal to handing out one hint at a time round-robin: each pass gives every
  // owner that still wants hints an even share of what is left (at least one), in order. A
  // pass either satisfies an owner or leaves less budget than owners, so there are few passes.
  size_t left = budget.perRound;
  size_t unsatisfied = eligible.size();
  while (left > 0 && unsatisfied > 0) {
    size_t share = std::max<size_t>(1, left / unsatisfied);
    for (auto& e : eligible) {
      if (left == 0) break;
      size_t want = e.wants - e.turn.max;
      if (want == 0) continue;
      size_t give = std::min({share, want, left});
      e.turn.max += give;
      left -= give;
      if (e.turn.max == e.wants) unsatisfied--;
    }
  }

  for (auto& e : eligible) {
    if (e.turn.max > 0) turns.push_back(e.turn);
  }
  return turns;
}

std::vector<uint64_t> hintTargets(const PartitionMap& map, uint64_t keyHash, uint32_t n) {
  // The key's current owners are its partition's replicas.
  return replicasOf(map, map.partitionOf(keyHash), n);
}

std::optional<std::string> checkHintOwner(const PartitionMap& map, uint64_t ownerId,
                                          uint64_t senderMapVersion) {
  if (map.empty() || map.indexOf(ownerId) || senderMapVersion != map.version()) {
    return std::nullopt;
  }
  return "invalid argument: a hint for node " + std::to_string(ownerId) +
         ", which is not a member of partition map version " + std::to_string(map.version()) +
         " (the sender's is " + std::to_string(senderMapVersion) + "); nothing stored";
}

}  // namespace dynkv

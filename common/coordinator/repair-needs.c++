#include "repair-needs.h"

namespace dynkv {

bool descends(const CausalSummary& a, const CausalSummary& b) {
  // Both are sorted by actor: one merge-like pass.
  auto it = a.counters.begin();
  for (auto& dot : b.counters) {
    while (it != a.counters.end() && it->actor < dot.actor) ++it;
    if (it == a.counters.end() || it->actor != dot.actor || it->counter < dot.counter) {
      return false;
    }
  }
  return true;
}

RepairNeeds repairNeeds(const std::optional<CausalSummary>& local,
                        const std::optional<CausalSummary>& peer) {
  if (!local && !peer) return {};
  if (!local) return {true, false};
  if (!peer) return {false, true};
  if (local->kind != peer->kind) return {true, true};
  if (local->kind == Versioning::LAST_WRITE_WINS) {
    if (local->timestamp > peer->timestamp) return {false, true};
    if (local->timestamp < peer->timestamp) return {true, false};
    return {true, true};
  }
  bool localCovers = descends(*local, *peer);
  bool peerCovers = descends(*peer, *local);
  if (localCovers && peerCovers) return {true, true};
  return {!localCovers, !peerCovers};
}

}  // namespace dynkv

#include "router.h"

#include <utility>

namespace dynkv {

Router::Router(const PartitionMap& map, PreferenceList pref)
    : map_(map), pref_(std::move(pref)), nextFallback_(pref_.primaries) {}

std::vector<Target> Router::initial(const Health& health) {
  std::vector<Target> targets;
  for (uint32_t i = 0; i < pref_.primaries; i++) {
    uint16_t primary = pref_.nodes[i];
    if (health.suspect(primary)) {
      if (auto fallback = takeFallback(map_.nodes()[primary].id, health)) {
        targets.push_back(*fallback);
        continue;
      }
    }
    targets.push_back(Target{primary, 0});
  }
  return targets;
}

std::optional<Target> Router::takeFallback(uint64_t standingInFor, const Health& health) {
  for (size_t i = nextFallback_; i < pref_.nodes.size(); i++) {
    if (!health.suspect(pref_.nodes[i])) {
      std::swap(pref_.nodes[i], pref_.nodes[nextFallback_]);
      return Target{pref_.nodes[nextFallback_++], standingInFor};
    }
  }
  if (nextFallback_ < pref_.nodes.size()) {
    return Target{pref_.nodes[nextFallback_++], standingInFor};
  }
  return std::nullopt;
}

uint64_t Router::ownerOf(const Target& target) const {
  return target.isFallback() ? target.hintFor : map_.nodes()[target.node].id;
}

}  // namespace dynkv

// Routing by preference list with sloppy substitution (DESIGN.md, "Request paths"): which
// nodes a request goes to, and which fallback stands in for an owner that is suspected or has
// failed. Pure: what the failure detector believes comes in through Health.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "partition-map.h"

namespace dynkv {

class Health {
  // What the process's failure detector currently believes about the nodes of a map. The
  // network shell implements it over its connection pool; the simulation over its model.
 public:
  virtual ~Health() = default;
  virtual bool suspect(uint16_t node) const = 0;  // node: index into PartitionMap::nodes()
};

struct Target {
  uint16_t node = 0;     // index into the map's nodes
  uint64_t hintFor = 0;  // the owner (node id) a fallback stands in for; 0 for an owner

  bool isFallback() const { return hintFor != 0; }
};

class Router {
  // Primaries first; a suspected primary replaced by the next healthy fallback (sloppy
  // quorum); further fallbacks on demand, healthy ones before suspected ones.
 public:
  Router(const PartitionMap& map, PreferenceList pref);

  std::vector<Target> initial(const Health& health);
  // The preference list's primaries, each suspected one replaced by a fallback when one is
  // left (a suspected primary is still asked when none is).

  std::optional<Target> takeFallback(uint64_t standingInFor, const Health& health);
  // The next unused fallback, to stand in for owner `standingInFor`; nullopt when every
  // fallback is in use.

  uint64_t ownerOf(const Target& target) const;
  // The owner a target serves: itself, or the owner it stands in for.

 private:
  const PartitionMap& map_;
  PreferenceList pref_;
  size_t nextFallback_;
};

}  // namespace dynkv

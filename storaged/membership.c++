#include "membership.h"

#include <algorithm>
#include <kj/debug.h>

#include "codec.h"
#include "hash.h"

namespace dynkv::storaged {

uint64_t nodeIdFor(const std::string& name) {
  uint64_t id = hash64(name);
  return id == 0 ? 1 : id;
}

void Membership::gossip(wire::GossipState::Reader, wire::GossipState::Builder) {
  KJ_FAIL_REQUIRE("this node has a fixed membership and does not gossip");
}
void Membership::join(const std::string&) {
  KJ_FAIL_REQUIRE("this node has a fixed membership; join is not possible");
}
void Membership::leave(const std::string&) {
  KJ_FAIL_REQUIRE("this node has a fixed membership; leave is not possible");
}
void Membership::forceRemove(const std::string&, bool) {
  KJ_FAIL_REQUIRE("this node has a fixed membership; remove is not possible");
}
void Membership::status(wire::Admin::StatusResults::Builder) {
  KJ_FAIL_REQUIRE("this node has a fixed membership and keeps no member status");
}

namespace {

class StaticMembership final : public Membership {
 public:
  explicit StaticMembership(MapSnapshot map) : map_(kj::mv(map)) {}

  MapSnapshot current() const override { return map_; }

  void observeVersion(uint64_t peerVersion) override {
    if (peerVersion > map_->version()) {
      KJ_LOG(WARNING, "a peer carries a newer partition map than static membership can adopt",
             peerVersion, map_->version());
    }
  }

 private:
  MapSnapshot map_;
};

}  // namespace

kj::Own<Membership> newStaticMembership(const NodeInfo& self, const std::vector<std::string>& seeds,
                                        uint32_t partitionBits) {
  std::vector<NodeInfo> nodes{self};
  for (auto& seed : seeds) {
    if (seed == self.address) continue;
    if (std::any_of(nodes.begin(), nodes.end(), [&](auto& n) { return n.address == seed; })) {
      continue;
    }
    NodeInfo info;
    info.name = seed;
    info.address = seed;
    info.id = nodeIdFor(seed);
    nodes.push_back(kj::mv(info));
  }
  auto map = std::make_shared<const PartitionMap>(
      PartitionMap::build(kj::mv(nodes), partitionBits, 1));
  return kj::heap<StaticMembership>(kj::mv(map));
}

}  // namespace dynkv::storaged

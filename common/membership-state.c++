#include "membership-state.h"

#include <algorithm>
#include <kj/debug.h>
#include <tuple>

namespace dynkv {

namespace {

// The fields a node owns, ordered for the merge: the newer incarnation's latest heartbeat wins;
// a tie (the same heartbeat seen twice) compares the rest so the merge stays commutative.
auto liveness(const Member& m) {
  return std::tie(m.generation, m.heartbeat, m.mapVersion, m.pendingTransfers, m.info.address,
                  m.info.name, m.info.zone, m.info.weight, m.handoffEverywhere,
                  m.handoffPartitions, m.httpAddress);
}

void takeLiveness(Member& into, const Member& from) {
  into.info = from.info;
  into.generation = from.generation;
  into.heartbeat = from.heartbeat;
  into.mapVersion = from.mapVersion;
  into.pendingTransfers = from.pendingTransfers;
  into.handoffPartitions = from.handoffPartitions;
  into.handoffEverywhere = from.handoffEverywhere;
  into.httpAddress = from.httpAddress;
}

}  // namespace

const char* toString(MemberStatus status) {
  switch (status) {
    case MemberStatus::JOINING:
      return "joining";
    case MemberStatus::UP:
      return "up";
    case MemberStatus::LEAVING:
      return "leaving";
    case MemberStatus::REMOVED:
      return "removed";
  }
  return "unknown";
}

bool Member::operator==(const Member& o) const {
  // The integers first: they differ most often, and cost least.
  return heartbeat == o.heartbeat && generation == o.generation && status == o.status &&
         statusVersion == o.statusVersion && mapVersion == o.mapVersion &&
         pendingTransfers == o.pendingTransfers && handoffEverywhere == o.handoffEverywhere &&
         handoffPartitions == o.handoffPartitions && info == o.info &&
         httpAddress == o.httpAddress;
}

bool Member::holdsHandoffFor(uint32_t partition) const {
  return handoffEverywhere ||
         std::binary_search(handoffPartitions.begin(), handoffPartitions.end(), partition);
}

void Member::setHandoffPartitions(const std::vector<uint32_t>& ascending) {
  handoffEverywhere = ascending.size() > MAX_HANDOFF_PARTITIONS;
  if (handoffEverywhere) {
    handoffPartitions.clear();
  } else {
    handoffPartitions = ascending;
  }
}

Member mergeMember(const Member& a, const Member& b) {
  KJ_REQUIRE(a.info.id == b.info.id, "merging records of two different nodes");
  Member out;
  if (a == b) return a;
  takeLiveness(out, liveness(a) >= liveness(b) ? a : b);
  // Status: the later change; on a tie the later status in the lifecycle.
  const Member& st = std::make_pair(a.statusVersion, uint8_t(a.status)) >=
                             std::make_pair(b.statusVersion, uint8_t(b.status))
                         ? a
                         : b;
  out.status = st.status;
  out.statusVersion = st.statusVersion;
  return out;
}

ForceRemoval decideForceRemoval(MemberStatus status, bool suspected, bool evenIfAlive) {
  if (status == MemberStatus::REMOVED) return ForceRemoval::ALREADY_REMOVED;
  if (!suspected && !evenIfAlive) return ForceRemoval::REFUSE_ALIVE;
  return ForceRemoval::REMOVE;
}

MembershipState::MembershipState() : map_(std::make_shared<const PartitionMap>()) {}

const Member* MembershipState::find(uint64_t id) const {
  auto it = members_.find(id);
  return it == members_.end() ? nullptr : &it->second;
}

bool MembershipState::merge(const Member& member) {
  auto it = members_.find(member.info.id);
  if (it == members_.end()) {
    members_.emplace(member.info.id, member);
    return true;
  }
  // mergeMember(mine, member) done in place: gossip merges every record of every message, and
  // most are copies we have or older ones, which this answers from a few integers without
  // copying a record. The property tests check that both agree.
  auto& mine = it->second;
  bool changed = false;
  if (liveness(member) > liveness(mine)) {
    takeLiveness(mine, member);
    changed = true;
  }
  if (std::make_pair(member.statusVersion, uint8_t(member.status)) >
      std::make_pair(mine.statusVersion, uint8_t(mine.status))) {
    mine.status = member.status;
    mine.statusVersion = member.statusVersion;
    changed = true;
  }
  return changed;
}

bool MembershipState::merge(const MembershipState& other) {
  bool changed = false;
  for (auto& [id, m] : other.members_) changed |= merge(m);
  changed |= adoptMap(other.map_);
  return changed;
}

bool MembershipState::adoptMap(MapPtr map) {
  if (!map || map->version() <= map_->version()) return false;
  map_ = std::move(map);
  return true;
}

Member& MembershipState::mutableMember(uint64_t id) {
  auto it = members_.find(id);
  KJ_REQUIRE(it != members_.end(), "unknown member", id);
  return it->second;
}

void MembershipState::setStatus(uint64_t id, MemberStatus status) {
  auto& m = mutableMember(id);
  m.status = status;
  m.statusVersion++;
}

void MembershipState::forceRemove(uint64_t id) {
  if (mutableMember(id).status == MemberStatus::REMOVED) return;
  setStatus(id, MemberStatus::REMOVED);
}

std::vector<NodeInfo> MembershipState::ringMembers() const {
  std::vector<NodeInfo> out;
  for (auto& [id, m] : members_) {
    if (m.status == MemberStatus::UP) out.push_back(m.info);
  }
  return out;
}

bool MembershipState::mapIsCurrent() const {
  auto ring = ringMembers();
  auto& nodes = map_->nodes();
  if (ring.size() != nodes.size()) return false;
  for (size_t i = 0; i < ring.size(); i++) {
    if (ring[i] != nodes[i]) return false;  // both sorted by id
  }
  return true;
}

std::optional<uint64_t> MembershipState::designated(
    const std::function<bool(uint64_t)>& alive) const {
  for (auto& [id, m] : members_) {  // ascending id
    if (m.status == MemberStatus::UP && alive(id)) return id;
  }
  return std::nullopt;
}

uint64_t MembershipState::nextMapVersion(uint64_t current, uint64_t designatorId) {
  return (((current >> 16) + 1) << 16) | (designatorId & 0xffff);
}

MapPtr MembershipState::recomputedMap(uint32_t partitionBits, uint64_t designatorId) const {
  auto ring = ringMembers();
  if (ring.empty()) return nullptr;
  uint64_t version = nextMapVersion(map_->version(), designatorId);
  if (map_->empty()) {
    return std::make_shared<const PartitionMap>(
        PartitionMap::build(std::move(ring), partitionBits, version));
  }
  return std::make_shared<const PartitionMap>(map_->rebalanced(std::move(ring), version));
}

}  // namespace dynkv

#include "gossip-round.h"

#include <algorithm>
#include <kj/debug.h>

#include <tuple>

namespace dynkv {

namespace {

std::pair<uint64_t, uint8_t> statusOrder(const Member& m) {
  return {m.statusVersion, uint8_t(m.status)};
}

std::pair<uint64_t, uint64_t> liveness(const Member& m) {
  return {m.generation, m.heartbeat};
}

}  // namespace

GossipChanges& GossipChanges::operator|=(GossipChanges&& other) {
  durable |= other.durable;
  for (auto& a : other.adopted) adopted.push_back(std::move(a));
  return *this;
}

GossipRound::GossipRound(GossipRoundOptions options, MembershipState restored, Liveness& liveness)
    : options_(std::move(options)),
      state_(std::move(restored)),
      liveness_(liveness),
      rng_(options_.self.id ^ options_.generation) {
  if (state_.find(options_.self.id) == nullptr) {
    Member fresh;  // a new node: joining until an operator adds it to the ring
    fresh.info = options_.self;
    state_.merge(fresh);
  }
  // This process's liveness supersedes whatever an earlier run recorded (even if the clock
  // went backwards); the status (up, leaving, ...) survives the restart.
  auto& me = self();
  me.info = options_.self;
  me.generation = options_.generation;
  me.httpAddress = options_.httpAddress;
  me.heartbeat = 0;
  me.mapVersion = state_.map()->version();
}

bool GossipRound::suspected(uint64_t id, GossipMicros now) const {
  if (id == options_.self.id) return false;
  // Never heard from since this process started: not (yet) known to be alive. A record we
  // restored from disk says nothing about now.
  if (heard_.count(id) == 0) return true;
  auto member = state_.find(id);
  return member == nullptr || liveness_.suspected(member->info.address, now);
}

const Member* GossipRound::byAddress(const std::string& address) const {
  for (auto& [id, m] : state_.members()) {
    if (m.info.address == address) return &m;
  }
  return nullptr;
}

GossipChanges GossipRound::adopt(MapPtr map) {
  GossipChanges changes;
  auto previous = state_.map();
  if (!state_.adoptMap(map)) return changes;
  self().mapVersion = map->version();
  changes.durable = true;
  changes.adopted.emplace_back(std::move(previous), std::move(map));
  return changes;
}

GossipChanges GossipRound::beginRound(GossipMicros now, uint32_t pendingTransfers) {
  GossipChanges changes;
  self().heartbeat++;
  round_++;
  self().pendingTransfers = pendingTransfers;

  // The designated node recomputes the map when the ring's member set has changed. Two nodes
  // that both believe themselves designated (their detectors disagree) mint distinct versions
  // (MembershipState::nextMapVersion) and everyone converges on the higher.
  auto designated = state_.designated([&](uint64_t id) { return !suspected(id, now); });
  if (designated && *designated == options_.self.id && !state_.mapIsCurrent()) {
    if (auto map = state_.recomputedMap(options_.partitionBits, options_.self.id)) {
      changes |= adopt(std::move(map));
    }
  }

  // A leaving node is removed once every ring member has the map without it and has finished
  // streaming: its data has been handed off.
  auto& me = self();
  if (me.status == MemberStatus::LEAVING && !state_.map()->indexOf(options_.self.id)) {
    bool handedOff = me.pendingTransfers == 0;
    for (auto& [id, m] : state_.members()) {
      if (m.status == MemberStatus::UP &&
          (m.mapVersion < state_.map()->version() || m.pendingTransfers > 0)) {
        handedOff = false;
      }
    }
    if (handedOff) {
      state_.setStatus(options_.self.id, MemberStatus::REMOVED);
      changes.durable = true;
    }
  }
  return changes;
}

std::optional<GossipRound::Exchange> GossipRound::pickExchange(GossipMicros now) {
  std::vector<const Member*> others;  // every member we could gossip with
  others.reserve(state_.members().size());
  for (auto& [id, m] : state_.members()) {
    if (id != options_.self.id && m.status != MemberStatus::REMOVED) others.push_back(&m);
  }
  std::vector<const std::string*> seeds;
  for (auto& s : options_.seeds) {
    if (s != options_.self.address) seeds.push_back(&s);
  }

  const Member* target = nullptr;
  const std::string* seed = nullptr;
  bool seedRound = options_.seedEvery > 0 && round_ % options_.seedEvery == 0;
  if (!(seedRound && !seeds.empty()) && !others.empty()) {
    // A member believed alive, uniformly. Drawing and rejecting is the same distribution as
    // drawing from the live ones, and asks the detector about a few members, not all of them.
    for (int attempt = 0; attempt < 8 && target == nullptr; attempt++) {
      auto m = others[rng_() % others.size()];
      if (!suspected(m->info.id, now)) target = m;
    }
    if (target == nullptr) {
      std::vector<const Member*> live;
      for (auto m : others) {
        if (!suspected(m->info.id, now)) live.push_back(m);
      }
      if (!live.empty()) target = live[rng_() % live.size()];
    }
  }
  if (target == nullptr && !seeds.empty()) {
    seed = seeds[rng_() % seeds.size()];
  } else if (target == nullptr) {
    // Nobody live to talk to: try a suspected member, so a healed partition is noticed.
    if (others.empty()) return std::nullopt;
    target = others[rng_() % others.size()];
  }

  Exchange exchange;
  exchange.peer = target != nullptr ? target->info.address : *seed;
  if (target == nullptr) target = byAddress(exchange.peer);
  bool behind = target == nullptr || target->mapVersion < state_.map()->version();
  exchange.message = message(behind);
  return exchange;
}

GossipChanges GossipRound::receive(const GossipMessage& in, GossipMicros now) {
  GossipChanges changes;
  // Messages list records by id, as ours are kept: walking both in step finds each record's
  // copy here without a lookup (a lookup per record when a sender's order differs).
  auto& members = state_.members();
  auto cursor = members.begin();
  uint64_t previous = 0;
  for (auto& member : in.members) {
    uint64_t id = member.info.id;
    if (id == options_.self.id) {
      // Only our own status may be changed by others (admin commands); our liveness is ours.
      auto& mine = self();
      if (statusOrder(member) > statusOrder(mine)) {
        mine.status = member.status;
        mine.statusVersion = member.statusVersion;
        changes.durable = true;
      }
      continue;
    }
    if (id < previous) cursor = members.begin();
    previous = id;
    while (cursor != members.end() && cursor->first < id) ++cursor;
    const Member* before =
        cursor != members.end() && cursor->first == id ? &cursor->second : nullptr;
    if (before == nullptr) {
      state_.merge(member);  // std::map: `cursor` stays valid, and still the next id up
      changes.durable = true;
      liveness_.heartbeat(member.info.address, now);
      heard_.insert(id);
      continue;
    }
    bool fresher = liveness(member) > liveness(*before);
    auto statusBefore = statusOrder(*before);
    // The common cases: an older copy of the record, or the one we have, and no newer status.
    // Nothing to merge.
    if (!fresher && statusOrder(member) <= statusBefore &&
        (liveness(member) < liveness(*before) ||
         (member.mapVersion == before->mapVersion &&
          member.pendingTransfers == before->pendingTransfers &&
          member.handoffEverywhere == before->handoffEverywhere &&
          member.handoffPartitions == before->handoffPartitions))) {
      continue;
    }
    // A node's address, zone and weight are its process's: they can change only with a new
    // generation (a restart alone changes nothing that must be kept).
    bool infoChanges = member.generation > before->generation &&
                       !(member.info == before->info && member.httpAddress == before->httpAddress);
    if (state_.merge(member)) {
      // `before` still points at the (merged) record: std::map nodes are stable.
      if (infoChanges || statusOrder(*before) != statusBefore) changes.durable = true;
    }
    if (fresher) {
      liveness_.heartbeat(member.info.address, now);
      heard_.insert(id);
    }
  }
  if (in.map && in.map->version() > state_.map()->version()) changes |= adopt(in.map);
  return changes;
}

GossipMessage GossipRound::message(bool includeMap) const {
  GossipMessage out;
  out.members.reserve(state_.members().size());
  for (auto& [id, m] : state_.members()) out.members.push_back(m);
  out.mapVersion = state_.map()->version();
  if (includeMap && !state_.map()->empty()) out.map = state_.map();
  return out;
}

GossipMessage GossipRound::reply(uint64_t peerMapVersion) const {
  return message(peerMapVersion < state_.map()->version());
}

GossipMessage GossipRound::snapshot() const {
  return message(true);
}

GossipChanges GossipRound::setPendingTransfers(uint32_t count) {
  self().pendingTransfers = count;
  return {};
}

bool GossipRound::setHandoffPartitions(const std::vector<uint32_t>& ascending) {
  auto& me = self();
  Member next = me;
  next.setHandoffPartitions(ascending);
  if (next.handoffPartitions == me.handoffPartitions &&
      next.handoffEverywhere == me.handoffEverywhere) {
    return false;
  }
  bool added = (next.handoffEverywhere && !me.handoffEverywhere) ||
               (!next.handoffEverywhere &&
                !std::includes(me.handoffPartitions.begin(), me.handoffPartitions.end(),
                               next.handoffPartitions.begin(), next.handoffPartitions.end()));
  me.handoffPartitions = std::move(next.handoffPartitions);
  me.handoffEverywhere = next.handoffEverywhere;
  me.heartbeat++;
  if (added) eager_ = true;
  return added;
}

GossipChanges GossipRound::join(const std::string& address) {
  // Checked first: the refusal below would print the address.
  if (auto problem = checkNodeField("address", address.size())) {
    kj::throwFatalException(KJ_EXCEPTION(FAILED, kj::str(problem->c_str())));
  }
  GossipChanges changes;
  auto member = byAddress(address);
  KJ_REQUIRE(member != nullptr,
             "unknown node: no member has this address; start it with "
             "--seeds naming this cluster, then join it",
             address.c_str());
  if (member->status == MemberStatus::UP) return changes;
  state_.setStatus(member->info.id, MemberStatus::UP);
  changes.durable = true;
  eager_ = true;
  // The map is recomputed at the next round (an eager one), so joins issued together (as
  // `dynkv local up` does) make one map, and one set of transfers, instead of one each.
  return changes;
}

GossipChanges GossipRound::leave(const std::string& address) {
  // Checked first: the refusal below would print the address.
  if (auto problem = checkNodeField("address", address.size())) {
    kj::throwFatalException(KJ_EXCEPTION(FAILED, kj::str(problem->c_str())));
  }
  GossipChanges changes;
  auto member = byAddress(address);
  KJ_REQUIRE(member != nullptr, "unknown node: no member has this address", address.c_str());
  KJ_REQUIRE(member->status == MemberStatus::UP || member->status == MemberStatus::LEAVING,
             "only a node in the ring can leave it", address.c_str(), toString(member->status));
  if (member->status == MemberStatus::LEAVING) return changes;
  state_.setStatus(member->info.id, MemberStatus::LEAVING);
  changes.durable = true;
  eager_ = true;
  return changes;
}

GossipChanges GossipRound::forceRemove(const std::string& address, GossipMicros now,
                                       bool evenIfAlive) {
  // Checked first: the refusal below would print the address.
  if (auto problem = checkNodeField("address", address.size())) {
    kj::throwFatalException(KJ_EXCEPTION(FAILED, kj::str(problem->c_str())));
  }
  GossipChanges changes;
  auto member = byAddress(address);
  if (member == nullptr) {
    kj::throwFatalException(KJ_EXCEPTION(
        FAILED, kj::str("unknown node: no member has the address ", address.c_str())));
  }
  auto id = member->info.id;
  // Dead means heard from since this process started, and suspected since: a node this one
  // has not heard from yet (it restarted a moment ago) is no evidence either way.
  bool heard = heard_.count(id) != 0;
  switch (decideForceRemoval(member->status, heard && suspected(id, now), evenIfAlive)) {
    case ForceRemoval::ALREADY_REMOVED:
      return changes;
    case ForceRemoval::REFUSE_ALIVE:
      kj::throwFatalException(KJ_EXCEPTION(
          FAILED,
          kj::str("refused: ", address.c_str(),
                  heard ? " is alive as far as " : " has not been heard from since ",
                  options_.self.address.c_str(),
                  heard ? " can tell (its failure detector does not suspect it)"
                        : " started, so it cannot tell whether it is dead",
                  ". remove --force takes a node out without handing its partitions off, for a "
                  "node that is dead for good; for a live node use `dynkv admin leave ",
                  address.c_str(),
                  "`. If it really must go now, add --even-if-alive.")));
    case ForceRemoval::REMOVE:
      break;
  }
  state_.forceRemove(id);
  changes.durable = true;
  eager_ = true;
  return changes;
}

void GossipRound::observeVersion(uint64_t peerVersion) {
  // Someone has a newer map: gossip now instead of waiting for the next round.
  if (peerVersion > state_.map()->version()) eager_ = true;
}

bool GossipRound::takeEager() {
  bool eager = eager_;
  eager_ = false;
  return eager;
}

}  // namespace dynkv

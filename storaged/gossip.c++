#include "gossip.h"

#include <algorithm>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/debug.h>

#include "codec.h"

namespace dynkv::storaged {

namespace {

const kj::byte MEMBERSHIP_KEY[] = {'m', 'e', 'm', 'b', 'e', 'r', 's', 'h', 'i', 'p'};

PhiAccrual::Options gossipDetectorOptions() {
  // Heartbeats arrive about once a second, relayed through peers: allow for that jitter so
  // a live node is not suspected, while a stopped one is within a few seconds.
  PhiAccrual::Options o;
  o.minStdDevMillis = 500;
  o.acceptablePauseMillis = 1000;
  o.firstIntervalMillis = 1000;
  return o;
}

}  // namespace

GossipMembership::GossipMembership(GossipOptions options, StorageEngine& engine, NodePool& pool,
                                   kj::Timer& timer)
    : options_(kj::mv(options)),
      engine_(engine),
      pool_(pool),
      timer_(timer),
      rng_(options_.self.id ^ options_.generation) {
  load();
  if (state_.find(options_.self.id) == nullptr) {
    Member fresh;  // a new node: joining until an operator adds it to the ring
    fresh.info = options_.self;
    state_.merge(fresh);
  }
  // This process's liveness supersedes whatever an earlier run recorded (even if the clock
  // went backwards); the status (up, leaving, ...) survives the restart.
  auto& self = state_.mutableMember(options_.self.id);
  self.info = options_.self;
  self.generation = options_.generation;
  self.heartbeat = 0;
  self.mapVersion = state_.map()->version();
  persist();
}

int64_t GossipMembership::nowMillis() const {
  return (timer_.now() - kj::origin<kj::TimePoint>()) / kj::MILLISECONDS;
}

bool GossipMembership::suspected(uint64_t id) const {
  if (id == options_.self.id) return false;
  auto it = detectors_.find(id);
  // Never heard from since this process started: not (yet) known to be alive.
  if (it == detectors_.end() || !it->second.started()) return true;
  return it->second.phi(nowMillis()) > PHI_SUSPECT_THRESHOLD;
}

void GossipMembership::observeVersion(uint64_t peerVersion) {
  // Someone has a newer map: gossip now instead of waiting for the next round.
  if (peerVersion > state_.map()->version()) eagerRound_ = true;
}

void GossipMembership::fill(wire::GossipState::Builder out, bool includeMap) const {
  auto members = out.initMembers(state_.members().size());
  uint i = 0;
  for (auto& [id, m] : state_.members()) encodeMember(m, members[i++]);
  out.setMapVersion(state_.map()->version());
  if (includeMap && !state_.map()->empty()) {
    out.setHasMap(true);
    encodePartitionMap(*state_.map(), out.initMap());
  }
}

void GossipMembership::mergeIn(wire::GossipState::Reader in) {
  auto now = nowMillis();
  for (auto record : in.getMembers()) {
    auto member = decodeMember(record);
    if (member.info.id == options_.self.id) {
      // Only our own status may be changed by others (admin commands); our liveness is ours.
      auto& mine = state_.mutableMember(options_.self.id);
      if (std::make_pair(member.statusVersion, uint8_t(member.status)) >
          std::make_pair(mine.statusVersion, uint8_t(mine.status))) {
        mine.status = member.status;
        mine.statusVersion = member.statusVersion;
        dirty_ = true;
      }
      continue;
    }
    auto before = state_.find(member.info.id);
    bool fresher = before == nullptr ||
                   std::make_pair(member.generation, member.heartbeat) >
                       std::make_pair(before->generation, before->heartbeat);
    if (fresher) {
      detectors_.try_emplace(member.info.id, gossipDetectorOptions()).first->second.heartbeat(now);
    }
    dirty_ |= state_.merge(member);
  }
  if (in.getHasMap()) {
    auto map = std::make_shared<const PartitionMap>(decodePartitionMap(in.getMap()));
    if (map->version() > state_.map()->version()) adopt(kj::mv(map));
  }
}

void GossipMembership::adopt(MapPtr map) {
  auto previous = state_.map();
  if (!state_.adoptMap(map)) return;
  dirty_ = true;
  state_.mutableMember(options_.self.id).mapVersion = map->version();
  KJ_LOG(INFO, "adopted partition map", map->version(), map->nodes().size());
  KJ_IF_MAYBE(l, listener_) { (*l)(*previous, *map); }
  // Publish the transfers this map starts together with its version, so nobody reading our
  // record sees the new version with nothing pending and takes us for settled.
  KJ_IF_MAYBE(count, pendingTransfers_) {
    state_.mutableMember(options_.self.id).pendingTransfers = (*count)();
  }
}

void GossipMembership::gossip(wire::GossipState::Reader in, wire::GossipState::Builder out) {
  mergeIn(in);
  fill(out, in.getMapVersion() < state_.map()->version());
  if (dirty_) persist();
}

const Member* GossipMembership::byAddress(const std::string& address) const {
  for (auto& [id, m] : state_.members()) {
    if (m.info.address == address) return &m;
  }
  return nullptr;
}

void GossipMembership::join(const std::string& address) {
  auto member = byAddress(address);
  KJ_REQUIRE(member != nullptr, "unknown node: no member has this address; start it with "
             "--seeds naming this cluster, then join it", address.c_str());
  if (member->status == MemberStatus::UP) return;
  state_.setStatus(member->info.id, MemberStatus::UP);
  dirty_ = true;
  eagerRound_ = true;
  KJ_LOG(INFO, "admin join", address.c_str());
  // The map is recomputed at the next round (50 ms away), so joins issued together (as
  // `dynkv local up` does) make one map, and one set of transfers, instead of one each.
}

void GossipMembership::leave(const std::string& address) {
  auto member = byAddress(address);
  KJ_REQUIRE(member != nullptr, "unknown node: no member has this address", address.c_str());
  KJ_REQUIRE(member->status == MemberStatus::UP || member->status == MemberStatus::LEAVING,
             "only a node in the ring can leave it", address.c_str(), toString(member->status));
  if (member->status == MemberStatus::LEAVING) return;
  state_.setStatus(member->info.id, MemberStatus::LEAVING);
  dirty_ = true;
  eagerRound_ = true;
  KJ_LOG(INFO, "admin leave", address.c_str());
}

void GossipMembership::status(wire::Admin::StatusResults::Builder out) {
  auto map = state_.map();
  auto shares = map->shares();
  auto list = out.initMembers(state_.members().size());
  uint i = 0;
  auto now = nowMillis();
  for (auto& [id, m] : state_.members()) {
    auto entry = list[i++];
    encodeMember(m, entry.initMember());
    if (auto index = map->indexOf(id)) entry.setPartitions(shares[*index]);
    auto it = detectors_.find(id);
    entry.setPhi(id == options_.self.id || it == detectors_.end() ? 0 : it->second.phi(now));
    entry.setSuspected(suspected(id));
  }
  out.setMapVersion(map->version());
  out.setReporter(options_.self.address);
}

void GossipMembership::tick() {
  auto& self = state_.mutableMember(options_.self.id);
  KJ_IF_MAYBE(count, pendingTransfers_) {
    uint32_t pending = (*count)();
    if (pending != self.pendingTransfers) {
      self.pendingTransfers = pending;
      dirty_ = true;
    }
  }
  // The designated node recomputes the map when the ring's member set has changed.
  auto designated = state_.designated([this](uint64_t id) { return !suspected(id); });
  if (designated && *designated == options_.self.id && !state_.mapIsCurrent()) {
    if (auto map = state_.recomputedMap(options_.partitionBits, options_.self.id)) {
      adopt(kj::mv(map));
    }
  }
  // A leaving node is removed once every ring member has the map without it and has
  // finished streaming: its data has been handed off.
  auto& me = state_.mutableMember(options_.self.id);
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
      dirty_ = true;
      KJ_LOG(INFO, "left the cluster: partitions handed off");
    }
  }
}

kj::Promise<void> GossipMembership::run() {
  auto& self = state_.mutableMember(options_.self.id);
  self.heartbeat++;
  round_++;
  tick();
  auto exchanged = exchange().catch_([](kj::Exception&& e) {
    KJ_LOG(INFO, "gossip exchange failed", e.getDescription());
  });
  return exchanged.then([this]() {
    if (dirty_) persist();
    // An eager round (a newer map seen, an admin change) goes out at once, not a second later.
    auto delay = eagerRound_ ? 50 * kj::MILLISECONDS : options_.interval;
    eagerRound_ = false;
    return timer_.afterDelay(delay);
  }).then([this]() { return run(); });
}

kj::Promise<void> GossipMembership::exchange() {
  std::vector<std::string> peers;
  for (auto& [id, m] : state_.members()) {
    if (id == options_.self.id || m.status == MemberStatus::REMOVED) continue;
    if (!suspected(id)) peers.push_back(m.info.address);
  }
  std::vector<std::string> seeds;
  for (auto& s : options_.seeds) {
    if (s != options_.self.address) seeds.push_back(s);
  }
  std::string target;
  bool seedRound = options_.seedEvery > 0 && round_ % options_.seedEvery == 0;
  if (!peers.empty() && !(seedRound && !seeds.empty())) {
    target = peers[rng_() % peers.size()];
  } else if (!seeds.empty()) {
    target = seeds[rng_() % seeds.size()];
  } else {
    // Nobody live to talk to: try a suspected member, so a healed partition is noticed.
    std::vector<std::string> all;
    for (auto& [id, m] : state_.members()) {
      if (id != options_.self.id && m.status != MemberStatus::REMOVED) {
        all.push_back(m.info.address);
      }
    }
    if (all.empty()) return kj::READY_NOW;
    target = all[rng_() % all.size()];
  }

  auto targetMember = byAddress(target);
  bool behind = targetMember == nullptr || targetMember->mapVersion < state_.map()->version();
  auto call = pool_.peer(target).then(
      [this, behind](wire::Peer::Client peer)
          -> kj::Promise<capnp::Response<wire::Peer::GossipResults>> {
        auto request = peer.gossipRequest();
        fill(request.initState(), behind);
        return request.send();
      });
  return timer_.timeoutAfter(2 * kj::SECONDS, kj::mv(call))
      .then([this](capnp::Response<wire::Peer::GossipResults>&& response) {
        mergeIn(response.getState());
      }, [this, target](kj::Exception&& e) {
        pool_.reportFailure(target, e);
        kj::throwFatalException(kj::mv(e));
      });
}

void GossipMembership::persist() {
  dirty_ = false;
  capnp::MallocMessageBuilder message;
  fill(message.initRoot<wire::GossipState>(), true);
  auto words = capnp::messageToFlatArray(message);
  engine_.write([&](WriteTransaction& txn) {
    txn.put(Table::META, kj::arrayPtr(MEMBERSHIP_KEY, sizeof(MEMBERSHIP_KEY)), words.asBytes());
  });
}

void GossipMembership::load() {
  engine_.read([&](ReadTransaction& txn) {
    KJ_IF_MAYBE(bytes, txn.get(Table::META, kj::arrayPtr(MEMBERSHIP_KEY, sizeof(MEMBERSHIP_KEY)))) {
      auto words = kj::heapArray<capnp::word>(bytes->size() / sizeof(capnp::word));
      memcpy(words.begin(), bytes->begin(), words.size() * sizeof(capnp::word));
      capnp::FlatArrayMessageReader reader(words);
      auto in = reader.getRoot<wire::GossipState>();
      for (auto record : in.getMembers()) state_.merge(decodeMember(record));
      if (in.getHasMap()) {
        state_.adoptMap(std::make_shared<const PartitionMap>(decodePartitionMap(in.getMap())));
      }
    }
  });
}

}  // namespace dynkv::storaged

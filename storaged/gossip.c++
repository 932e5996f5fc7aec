#include "gossip.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/debug.h>

#include "codec.h"

namespace dynkv::storaged {

namespace {

const kj::byte MEMBERSHIP_KEY[] = {'m', 'e', 'm', 'b', 'e', 'r', 's', 'h', 'i', 'p'};

GossipRoundOptions roundOptions(const GossipOptions& options) {
  GossipRoundOptions o;
  o.self = options.self;
  o.generation = options.generation;
  o.httpAddress = options.httpAddress;
  o.seeds = options.seeds;
  o.partitionBits = options.partitionBits;
  o.seedEvery = options.seedEvery;
  return o;
}

}  // namespace

void encodeGossipMessage(const GossipMessage& message, wire::GossipState::Builder out) {
  auto members = out.initMembers(message.members.size());
  for (size_t i = 0; i < message.members.size(); i++) encodeMember(message.members[i], members[i]);
  out.setMapVersion(message.mapVersion);
  if (message.map) {
    out.setHasMap(true);
    encodePartitionMap(*message.map, out.initMap());
  }
}

GossipMessage decodeGossipMessage(wire::GossipState::Reader in) {
  GossipMessage message;
  // No reserve() for the count the list claims: a list of empty structs costs its sender
  // nothing per element, so a few bytes could claim millions of records (gigabytes reserved
  // before the first record is refused). Each record decoded holds bytes that were sent.
  for (auto record : in.getMembers()) message.members.push_back(decodeMember(record));
  message.mapVersion = in.getMapVersion();
  if (in.getHasMap()) {
    message.map = std::make_shared<const PartitionMap>(decodePartitionMap(in.getMap()));
  }
  return message;
}

GossipMembership::GossipMembership(GossipOptions options, GroupCommit& commits, NodePool& pool,
                                   FailureDetector& detector, kj::Timer& timer)
    : options_(kj::mv(options)),
      commits_(commits),
      pool_(pool),
      detector_(detector),
      timer_(timer),
      liveness_(detector),
      round_(roundOptions(options_), load(commits.engine()), liveness_),
      tasks_(*this) {
  // Our record changed (a new generation, perhaps a new address): keep it, now, before the
  // node answers anyone (nothing is queued with the group commit yet).
  commits_.engine().write([this](WriteTransaction& txn) { writeState(txn); });
}

int64_t GossipMembership::nowMicros() const {
  return (timer_.now() - kj::origin<kj::TimePoint>()) / kj::MICROSECONDS;
}

uint32_t GossipMembership::pendingTransfers() {
  KJ_IF_MAYBE (count, pendingTransfers_) {
    return (*count)();
  }
  return 0;
}

bool GossipMembership::publishHandoffPartitions() {
  KJ_IF_MAYBE (partitions, handoffPartitions_) {
    return round_.setHandoffPartitions((*partitions)());
  }
  return false;
}

void GossipMembership::handoffChanged() {
  if (!publishHandoffPartitions()) return;
  KJ_IF_MAYBE (wake, wake_) {
    (*wake)->fulfill();
    wake_ = nullptr;
  }
}

bool GossipMembership::suspected(uint64_t id) const {
  return round_.suspected(id, nowMicros());
}

void GossipMembership::observeVersion(uint64_t peerVersion) {
  round_.observeVersion(peerVersion);
}

void GossipMembership::apply(GossipChanges changes) {
  for (auto& [previous, now] : changes.adopted) {
    KJ_LOG(INFO, "adopted partition map", now->version(), now->nodes().size());
    KJ_IF_MAYBE (l, listener_) {
      (*l)(*previous, *now);
    }
  }
  // Publish the transfers the new map starts together with its version, before our record
  // next goes out, so nobody reading it sees the new version with nothing pending and takes us
  // for settled.
  if (!changes.adopted.empty()) round_.setPendingTransfers(pendingTransfers());
  if (changes.durable) persist();
}

void GossipMembership::gossip(wire::GossipState::Reader in, wire::GossipState::Builder out) {
  // The whole message is decoded, and so validated, before any of it is applied: one bad
  // record (an oversized name, say) refuses the message, and the sender gets the error.
  GossipMessage message;
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() { message = decodeGossipMessage(in); })) {
    logRefusal(*e);
    kj::throwFatalException(kj::mv(*e));
  }
  apply(round_.receive(kj::mv(message), nowMicros()));
  encodeGossipMessage(round_.reply(in.getMapVersion()), out);
}

void GossipMembership::logRefusal(const kj::Exception& exception) {
  // At most one line every ten seconds: a peer sending bad gossip every round must not fill
  // the log.
  constexpr int64_t INTERVAL_MICROS = 10 * 1000 * 1000;
  int64_t now = nowMicros();
  if (refusalLoggedAt_ != INT64_MIN && now - refusalLoggedAt_ < INTERVAL_MICROS) {
    refusalsUnlogged_++;
    return;
  }
  KJ_LOG(WARNING, "refused a gossip message; nothing of it applied", exception.getDescription(),
         refusalsUnlogged_);
  refusalLoggedAt_ = now;
  refusalsUnlogged_ = 0;
}

void GossipMembership::join(const std::string& address) {
  apply(round_.join(address));
  persistNow();
  KJ_LOG(INFO, "admin join", address.c_str());
}

void GossipMembership::leave(const std::string& address) {
  apply(round_.leave(address));
  persistNow();
  KJ_LOG(INFO, "admin leave", address.c_str());
}

void GossipMembership::forceRemove(const std::string& address, bool evenIfAlive) {
  apply(round_.forceRemove(address, nowMicros(), evenIfAlive));
  persistNow();
  KJ_LOG(WARNING, "admin remove --force: out of the ring without a hand-off", address.c_str(),
         evenIfAlive);
}

void GossipMembership::status(wire::Admin::StatusResults::Builder out) {
  auto& state = round_.state();
  auto map = state.map();
  auto shares = map->shares();
  auto list = out.initMembers(state.members().size());
  uint i = 0;
  auto now = nowMicros();
  for (auto& [id, m] : state.members()) {
    auto entry = list[i++];
    encodeMember(m, entry.initMember());
    if (auto index = map->indexOf(id)) entry.setPartitions(shares[*index]);
    entry.setPhi(id == options_.self.id ? 0 : detector_.phi(m.info.address, now));
    entry.setSuspected(round_.suspected(id, now));
  }
  out.setMapVersion(map->version());
  out.setReporter(options_.self.address);
}

kj::Promise<void> GossipMembership::run() {
  if (persistFailed_) persist();
  auto self = options_.self.id;
  bool leaving = round_.state().find(self)->status == MemberStatus::LEAVING;
  publishHandoffPartitions();
  apply(round_.beginRound(nowMicros(), pendingTransfers()));
  if (leaving && round_.state().find(self)->status == MemberStatus::REMOVED) {
    KJ_LOG(INFO, "left the cluster: partitions handed off");
  }
  auto exchanged = exchange().catch_(
      [](kj::Exception&& e) { KJ_LOG(INFO, "gossip exchange failed", e.getDescription()); });
  return exchanged
      .then([this]() {
        // An eager round (a newer map seen, an admin change, a partition newly held for handoff)
        // goes out at once, not a second later; so does one asked for while we wait.
        auto eager = 50 * kj::MILLISECONDS;
        auto delay = round_.takeEager() ? eager : options_.interval;
        auto woken = kj::newPromiseAndFulfiller<void>();
        wake_ = kj::mv(woken.fulfiller);
        return timer_.afterDelay(delay).exclusiveJoin(
            woken.promise.then([this, eager]() { return timer_.afterDelay(eager); }));
      })
      .then([this]() {
        wake_ = nullptr;
        return run();
      });
}

kj::Promise<void> GossipMembership::exchange() {
  auto picked = round_.pickExchange(nowMicros());
  if (!picked) return kj::READY_NOW;
  auto target = kj::mv(picked->peer);
  auto call = pool_.peer(target).then(
      [message = kj::mv(picked->message)](
          wire::Peer::Client peer) -> kj::Promise<capnp::Response<wire::Peer::GossipResults>> {
        auto request = peer.gossipRequest();
        encodeGossipMessage(message, request.initState());
        return request.send();
      });
  return timer_.timeoutAfter(2 * kj::SECONDS, kj::mv(call))
      .then(
          [this, target](capnp::Response<wire::Peer::GossipResults>&& response) {
            pool_.reportSuccess(target);
            apply(round_.receive(decodeGossipMessage(response.getState()), nowMicros()));
          },
          [this, target](kj::Exception&& e) {
            pool_.reportFailure(target, e);
            kj::throwFatalException(kj::mv(e));
          });
}

void GossipMembership::persist() {
  // One write per turn, of the state as it is when the batch commits: changes made later in
  // the same turn ride along instead of queueing writes of their own.
  if (persistQueued_) return;
  persistQueued_ = true;
  persistFailed_ = false;
  tasks_.add(commits_
                 .write([this](BatchTransaction& txn) {
                   persistQueued_ = false;
                   writeState(txn);
                 })
                 .catch_([this](kj::Exception&& e) {
                   persistQueued_ = false;
                   persistFailed_ = true;
                   KJ_LOG(ERROR, "could not keep the membership state; retrying next round", e);
                 }));
}

void GossipMembership::persistNow() {
  // An operator's command is kept before it is acknowledged, outside the turn's batch (the
  // batch's own write, if one is queued, writes the same state again).
  commits_.engine().write([this](WriteTransaction& txn) { writeState(txn); });
}

void GossipMembership::writeState(WriteTransaction& txn) {
  // Everything the round holds, liveness included; what matters after a restart are the
  // members, their statuses and status versions, and the map (the round starts our own
  // liveness afresh, and others' come back by gossip).
  writes_++;
  capnp::MallocMessageBuilder message;
  encodeGossipMessage(round_.snapshot(), message.initRoot<wire::GossipState>());
  auto words = capnp::messageToFlatArray(message);
  txn.put(Table::META, kj::arrayPtr(MEMBERSHIP_KEY, sizeof(MEMBERSHIP_KEY)), words.asBytes());
}

void GossipMembership::taskFailed(kj::Exception&& exception) {
  KJ_LOG(ERROR, "membership state write failed", exception);
}

MembershipState GossipMembership::load(StorageEngine& engine) {
  MembershipState state;
  engine.read([&](ReadTransaction& txn) {
    KJ_IF_MAYBE (bytes,
                 txn.get(Table::META, kj::arrayPtr(MEMBERSHIP_KEY, sizeof(MEMBERSHIP_KEY)))) {
      auto words = kj::heapArray<capnp::word>(bytes->size() / sizeof(capnp::word));
      memcpy(words.begin(), bytes->begin(), words.size() * sizeof(capnp::word));
      capnp::FlatArrayMessageReader reader(words);
      auto in = reader.getRoot<wire::GossipState>();
      for (auto record : in.getMembers()) state.merge(decodeMember(record));
      if (in.getHasMap()) {
        state.adoptMap(std::make_shared<const PartitionMap>(decodePartitionMap(in.getMap())));
      }
    }
  });
  return state;
}

}  // namespace dynkv::storaged

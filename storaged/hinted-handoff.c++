#include "hinted-handoff.h"

#include <algorithm>
#include <kj/debug.h>

#include "codec.h"
#include "hash.h"

namespace dynkv::storaged {

HintedHandoff::HintedHandoff(VersionedStore& store, HintStore& hints, Membership& membership,
                             NodePool& pool, kj::Timer& timer, uint32_t replicas, HintBudget budget,
                             BackgroundAdmission* admission)
    : store_(store),
      hints_(hints),
      membership_(membership),
      pool_(pool),
      timer_(timer),
      replicas_(replicas),
      budget_(budget),
      admission_(admission) {
  KJ_REQUIRE(replicas_ >= 1, "hinted handoff needs N >= 1 replicas", replicas_);
}

kj::Promise<void> HintedHandoff::run() {
  return timer_.afterDelay(INTERVAL)
      .then([this]() { return deliverRound(); })
      .then(
          [](size_t delivered) {
            if (delivered > 0) KJ_LOG(INFO, "hinted handoff delivered", delivered);
          },
          [](kj::Exception&& e) { KJ_LOG(WARNING, "hinted handoff round failed", e); })
      .then([this]() { return run(); });
}

kj::Promise<size_t> HintedHandoff::deliverRound() {
  auto map = membership_.current();
  auto backlog = hints_.hintBacklog();  // by owner id

  // A cursor outlives its owner's last hint only until the next round.
  for (auto it = cursors_.begin(); it != cursors_.end();) {
    bool held = std::binary_search(
        backlog.begin(), backlog.end(), HintBacklog{it->first, 0},
        [](const HintBacklog& a, const HintBacklog& b) { return a.ownerId < b.ownerId; });
    it = held ? std::next(it) : cursors_.erase(it);
  }

  auto suspected = [&](uint64_t ownerId) {
    auto index = map->indexOf(ownerId);
    return index && pool_.isSuspect(map->nodes()[*index].address);
  };
  auto turns = planHintRound(*map, backlog, suspected, budget_, round_++);

  // Turns run side by side, so an owner that times out delays no one else; each one ends on
  // its own, and a store failure in one is logged and ends only that one.
  auto promises = kj::heapArrayBuilder<kj::Promise<size_t>>(turns.size());
  for (auto& turn : turns) {
    auto served = kj::evalNow([&]() { return serve(map, turn); });
    promises.add(served.catch_([owner = turn.ownerId](kj::Exception&& e) {
      KJ_LOG(ERROR, "hinted handoff: a turn failed in the store", owner, e);
      return size_t(0);
    }));
  }
  return kj::joinPromises(promises.finish()).then([](kj::Array<size_t> delivered) {
    size_t total = 0;
    for (auto n : delivered) total += n;
    return total;
  });
}

kj::Promise<size_t> HintedHandoff::serve(MapSnapshot map, HintTurn turn) {
  auto& cursor = cursors_[turn.ownerId];
  auto page = hints_.hintsFor(turn.ownerId, cursor, turn.max);
  if (page.hints.empty() && !cursor.empty()) {
    // The cursor is past the owner's last hint: wrap now rather than waste the turn.
    page = hints_.hintsFor(turn.ownerId, "", turn.max);
  }
  return deliverFrom(kj::mv(map), turn, kj::mv(page), 0, 0);
}

void HintedHandoff::advanceCursor(uint64_t owner, const HintStore::HintPage& page,
                                  size_t tried) {
  // Past every hint tried, delivered or not: a hint that fails (its owner refuses it, say) is
  // tried again only after the owner's others, so it never blocks them.
  bool last = tried + 1 == page.hints.size() && page.end;
  cursors_[owner] = last ? std::string() : encodeStorageKey(page.hints[tried].key);
}

kj::Promise<size_t> HintedHandoff::deliverFrom(MapSnapshot map, HintTurn turn,
                                               HintStore::HintPage page, size_t next,
                                               size_t delivered) {
  if (next == page.hints.size()) return delivered;
  advanceCursor(turn.ownerId, page, next);
  // The slot is held until the hint has been handed off and deleted: both use this node's
  // storage and network, and a recovering owner is exactly when foreground latency matters.
  auto handedOff = acquireSlot(admission_).then(
      [this, map, turn, hint = page.hints[next]](BackgroundAdmission::Slot slot) {
        return handOff(map, turn, hint).attach(kj::mv(slot));
      },
      [owner = turn.ownerId](kj::Exception&& e) {
        KJ_LOG(WARNING, "hinted handoff: no background slot; the owner's turn ends", owner, e);
        return kj::Promise<bool>(false);
      });
  return handedOff.then([this, map = kj::mv(map), turn, page = kj::mv(page), next,
                         delivered](bool ok) mutable -> kj::Promise<size_t> {
    if (!ok) return delivered;
    return deliverFrom(kj::mv(map), turn, kj::mv(page), next + 1, delivered + 1);
  });
}

kj::Promise<bool> HintedHandoff::handOff(const MapSnapshot& map, const HintTurn& turn,
                                         const HintStore::Hint& hint) {
  // True once the hint is handed off and deleted; false if the owner failed (its turn ends).
  if (turn.route == HintRoute::TO_OWNER) {
    auto index = map->indexOf(turn.ownerId);
    KJ_ASSERT(index.has_value(), "the policy routes only members to themselves");
    auto& owner = map->nodes()[*index];
    return send(owner, map->version(), hint)
        .then([this, hint]() { return hints_.removeHint(hint).then([]() { return true; }); },
              [this, address = owner.address](kj::Exception&& e) {
                pool_.reportFailure(address, e);
                return kj::Promise<bool>(false);
              });
  }
  auto targets = hintTargets(*map, keyHash(hint.key.ns, hint.key.key), replicas_);
  KJ_ASSERT(!targets.empty(), "a non-empty map places every key");
  return reassign(map, hint, kj::mv(targets), 0)
      .then([this, hint]() { return hints_.removeHint(hint); })
      .then([]() { return true; });
}

kj::Promise<void> HintedHandoff::reassign(MapSnapshot map, HintStore::Hint hint,
                                          std::vector<uint64_t> targets, size_t next) {
  // The owner left the ring: the write belongs to the key's current replicas. One target at a
  // time; one that cannot take it now gets a hint here, delivered when it answers again, so
  // that the original hint can go (its owner will never come back for it).
  if (next == targets.size()) return kj::READY_NOW;
  uint64_t target = targets[next];
  kj::Promise<void> done = nullptr;
  if (target == store_.self().node) {
    done = store_.replicate(hint.key, hint.object);
  } else {
    auto index = map->indexOf(target);
    KJ_ASSERT(index.has_value(), "hintTargets() returns members");
    auto& node = map->nodes()[*index];
    if (pool_.isSuspect(node.address)) {
      done = hints_.storeHint(target, hint.key, hint.object);
    } else {
      done = send(node, map->version(), hint)
                 .catch_([this, target, hint, address = node.address](kj::Exception&& e) {
                   pool_.reportFailure(address, e);
                   return hints_.storeHint(target, hint.key, hint.object);
                 });
    }
  }
  return done.then(
      [this, map = kj::mv(map), hint = kj::mv(hint), targets = kj::mv(targets), next]() mutable {
        return reassign(kj::mv(map), kj::mv(hint), kj::mv(targets), next + 1);
      });
}

kj::Promise<void> HintedHandoff::send(const NodeInfo& node, uint64_t mapVersion,
                                      const HintStore::Hint& hint) {
  auto call = pool_.node(node.address).then([hint, mapVersion](wire::Node::Client client) {
    auto request = client.replicateRequest();
    request.setMapVersion(mapVersion);
    auto key = request.initKey();
    key.setNamespace(asData(hint.key.ns));
    key.setKey(asData(hint.key.key));
    encodeObject(hint.object, request.initObject());
    request.setHintFor(0);
    return request.send().ignoreResult();
  });
  return timer_.timeoutAfter(DELIVERY_TIMEOUT, kj::mv(call));
}

}  // namespace dynkv::storaged

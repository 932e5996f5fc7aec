#include "hinted-handoff.h"

#include <kj/debug.h>

#include "codec.h"

namespace dynkv::storaged {

HintedHandoff::HintedHandoff(Store& store, Membership& membership, NodePool& pool,
                             kj::Timer& timer)
    : store_(store), membership_(membership), pool_(pool), timer_(timer) {}

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
  return deliver(store_.hintsFor(nullptr, BATCH), 0, 0);
}

kj::Promise<size_t> HintedHandoff::deliver(std::vector<Store::Hint> hints, size_t next,
                                           size_t delivered) {
  // One hint at a time: handoff is background work and must not flood a recovering owner.
  auto map = membership_.current();
  while (next < hints.size()) {
    auto& hint = hints[next];
    auto owner = map->indexOf(hint.ownerId);
    if (!owner) {
      next++;  // not a member (any more): kept until membership decides (a later issue)
      continue;
    }
    auto& address = map->nodes()[*owner].address;
    if (pool_.isSuspect(address)) {
      next++;
      continue;
    }
    auto call = pool_.node(address).then(
        [hint, version = map->version()](wire::Node::Client node)
            -> kj::Promise<capnp::Response<wire::Node::ReplicateResults>> {
          auto request = node.replicateRequest();
          request.setMapVersion(version);
          auto key = request.initKey();
          key.setNamespace(asData(hint.key.ns));
          key.setKey(asData(hint.key.key));
          encodeObject(hint.object, request.initObject());
          request.setHintFor(0);
          return request.send();
        });
    return timer_.timeoutAfter(5 * kj::SECONDS, kj::mv(call))
        .then(
            [this, hints, next, delivered](auto&&) mutable {
              auto done = store_.removeHint(hints[next]);
              return done.then([this, hints = kj::mv(hints), next, delivered]() mutable {
                return deliver(kj::mv(hints), next + 1, delivered + 1);
              });
            },
            [this, hints, next, delivered, address](kj::Exception&& e) mutable {
              pool_.reportFailure(address, e);
              return deliver(kj::mv(hints), next + 1, delivered);
            });
  }
  return delivered;
}

}  // namespace dynkv::storaged

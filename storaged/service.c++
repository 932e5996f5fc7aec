#include "service.h"

#include <kj/debug.h>
#include <kj/time.h>

#include "codec.h"
#include "hash.h"
#include "dynkv.capnp.h"

namespace dynkv::storaged {

namespace {

int64_t nowMicros() {
  return (kj::systemPreciseCalendarClock().now() - kj::UNIX_EPOCH) / kj::MICROSECONDS;
}

class NodeImpl final : public wire::Node::Server {
 public:
  NodeImpl(Store& store, Membership& membership) : store_(store), membership_(membership) {}

  kj::Promise<void> get(GetContext context) override {
    auto params = context.getParams();
    auto map = observe(params.getMapVersion());
    auto key = storageKey(*map, params.getKey());
    auto results = context.getResults();
    results.setMapVersion(map->version());
    if (auto object = store_.get(key)) {
      results.setFound(true);
      encodeObject(*object, results.initObject());
    }
    return kj::READY_NOW;
  }

  kj::Promise<void> coordinatePut(CoordinatePutContext context) override {
    auto params = context.getParams();
    auto map = observe(params.getMapVersion());
    auto key = storageKey(*map, params.getKey());
    KJ_REQUIRE(params.getKind() == wire::NamespaceKind::VECTOR_CLOCK,
               "coordinatePut is for vector-clock namespaces; last-write-wins writes replicate "
               "directly");
    std::optional<std::string> value;
    if (!params.getTombstone()) {
      auto v = params.getValue();
      if (auto error = checkValue(store_.limits(), asStringView(v))) {
        KJ_FAIL_REQUIRE("invalid argument", *error);
      }
      value = std::string(asStringView(v));
    }
    auto vv = decodeVersionVector(params.getContext());
    return store_
        .coordinatePut(kj::mv(key), NamespaceKind::VECTOR_CLOCK, kj::mv(vv), kj::mv(value),
                       nowMicros())
        .then([context, map](Object object) mutable {
          auto results = context.getResults();
          results.setMapVersion(map->version());
          encodeObject(object, results.initObject());
        });
  }

  kj::Promise<void> replicate(ReplicateContext context) override {
    auto params = context.getParams();
    auto map = observe(params.getMapVersion());
    auto key = storageKey(*map, params.getKey());
    auto object = decodeObject(params.getObject(), store_.limits());
    uint64_t hintFor = params.getHintFor();
    auto done = hintFor == 0 ? store_.replicate(kj::mv(key), kj::mv(object))
                             : store_.storeHint(hintFor, kj::mv(key), kj::mv(object));
    return done.then([context, map]() mutable {
      context.getResults().setMapVersion(map->version());
    });
  }

  kj::Promise<void> getView(GetViewContext context) override {
    auto map = membership_.current();
    auto results = context.getResults();
    encodePartitionMap(*map, results.initMap());
    auto limits = results.initLimits();
    limits.setMaxKeyBytes(store_.limits().maxKeyBytes);
    limits.setMaxValueBytes(store_.limits().maxValueBytes);
    return kj::READY_NOW;
  }

  kj::Promise<void> ping(PingContext context) override {
    auto map = observe(context.getParams().getMapVersion());
    context.getResults().setMapVersion(map->version());
    return kj::READY_NOW;
  }

 private:
  Store& store_;
  Membership& membership_;

  MapSnapshot observe(uint64_t senderVersion) {
    // A sender with an older map still gets an answer; the reply's version tells it to
    // refresh. A sender with a newer one tells us to.
    membership_.observeVersion(senderVersion);
    return membership_.current();
  }

  StorageKey storageKey(const PartitionMap& map, wire::Key::Reader wireKey) {
    auto ns = asStringView(wireKey.getNamespace());
    auto key = asStringView(wireKey.getKey());
    if (auto error = checkKey(store_.limits(), ns, key)) {
      KJ_FAIL_REQUIRE("invalid argument", *error);
    }
    KJ_REQUIRE(!map.empty(), "this node has no partition map yet");
    return StorageKey{map.partitionOf(keyHash(ns, key)), std::string(ns), std::string(key)};
  }
};

class GatewayImpl final : public wire::Gateway::Server {
 public:
  GatewayImpl(Store& store, Membership& membership, ServiceOptions options)
      : node_(kj::heap<NodeImpl>(store, membership)), options_(kj::mv(options)) {}

  kj::Promise<void> authenticate(AuthenticateContext context) override {
    auto params = context.getParams();
    KJ_REQUIRE(params.getCluster() == kj::StringPtr(options_.cluster.c_str()),
               "wrong cluster: this node belongs to another cluster", options_.cluster.c_str(),
               params.getCluster());
    KJ_REQUIRE(asStringView(params.getSecret()) == options_.secret,
               "authentication failed: wrong cluster secret");
    context.getResults().setNode(node_);
    return kj::READY_NOW;
  }

 private:
  wire::Node::Client node_;
  ServiceOptions options_;
};

}  // namespace

capnp::Capability::Client newGateway(Store& store, Membership& membership,
                                     ServiceOptions options) {
  return kj::heap<GatewayImpl>(store, membership, kj::mv(options));
}

}  // namespace dynkv::storaged

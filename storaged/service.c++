#include "service.h"

#include <kj/debug.h>
#include <kj/time.h>

#include "admission.h"
#include "anti-entropy.h"
#include "codec.h"
#include "hash-trees.h"
#include "local-replica.h"
#include "server-driven.h"
#include "dynkv.capnp.h"

namespace dynkv::storaged {

namespace {

int64_t nowMicros() {
  return (kj::systemPreciseCalendarClock().now() - kj::UNIX_EPOCH) / kj::MICROSECONDS;
}

class NodeImpl final : public wire::Node::Server {
  // Decodes each replica call, has the LocalReplica answer it, and encodes the answer.
 public:
  NodeImpl(VersionedStore& store, HintStore& hints, Membership& membership,
           const ServiceOptions& options)
      : store_(store), hints_(hints), membership_(membership),
        local_(store, hints, membership, options.transfers, options.admission),
        serverDriven_(options.serverDriven) {}

  kj::Promise<void> get(GetContext context) override {
    auto params = context.getParams();
    auto map = local_.observe(params.getMapVersion());
    auto wireKey = params.getKey();
    auto key = local_.storageKey(*map, asStringView(wireKey.getNamespace()),
                                 asStringView(wireKey.getKey()));
    return local_.get(kj::mv(key)).then([context, map](std::optional<Object> object) mutable {
      auto results = context.getResults();
      results.setMapVersion(map->version());
      if (object) {
        results.setFound(true);
        encodeObject(*object, results.initObject());
      }
    });
  }

  kj::Promise<void> coordinatePut(CoordinatePutContext context) override {
    auto params = context.getParams();
    auto map = local_.observe(params.getMapVersion());
    auto wireKey = params.getKey();
    auto key = local_.storageKey(*map, asStringView(wireKey.getNamespace()),
                                 asStringView(wireKey.getKey()));
    KJ_REQUIRE(params.getKind() == wire::NamespaceKind::VECTOR_CLOCK,
               "coordinatePut is for vector-clock namespaces; last-write-wins writes replicate "
               "directly");
    std::optional<std::string> value;
    if (!params.getTombstone()) value = std::string(asStringView(params.getValue()));
    auto vv = decodeVersionVector(params.getContext());
    return local_.coordinatePut(kj::mv(key), kj::mv(vv), kj::mv(value), nowMicros())
        .then([context, map](Object object) mutable {
          auto results = context.getResults();
          results.setMapVersion(map->version());
          encodeObject(object, results.initObject());
        });
  }

  kj::Promise<void> replicate(ReplicateContext context) override {
    auto params = context.getParams();
    auto map = local_.observe(params.getMapVersion());
    auto wireKey = params.getKey();
    auto key = local_.storageKey(*map, asStringView(wireKey.getNamespace()),
                                 asStringView(wireKey.getKey()));
    auto object = decodeObject(params.getObject(), store_.limits());
    return local_.replicate(kj::mv(key), kj::mv(object), params.getHintFor())
        .then([context, map]() mutable { context.getResults().setMapVersion(map->version()); });
  }

  kj::Promise<void> getView(GetViewContext context) override {
    auto map = membership_.current();
    if (map->empty()) {
      // Not a refusal: the client asks another node.
      kj::throwFatalException(KJ_EXCEPTION(
          OVERLOADED, "this node is not in a ring yet: `dynkv admin join` adds it"));
    }
    auto results = context.getResults();
    encodePartitionMap(*map, results.initMap());
    auto limits = results.initLimits();
    limits.setMaxKeyBytes(store_.limits().maxKeyBytes);
    limits.setMaxValueBytes(store_.limits().maxValueBytes);
    return kj::READY_NOW;
  }

  kj::Promise<void> ping(PingContext context) override {
    auto map = local_.observe(context.getParams().getMapVersion());
    context.getResults().setMapVersion(map->version());
    return kj::READY_NOW;
  }

  // ---- server-driven coordination (server-driven.h; bench/) ----
  kj::Promise<void> coordinateGet(CoordinateGetContext context) override {
    auto map = local_.observe(context.getParams().getMapVersion());
    context.getResults().setMapVersion(map->version());
    return serverDriven().coordinateGet(context);
  }

  kj::Promise<void> coordinateWrite(CoordinateWriteContext context) override {
    auto map = local_.observe(context.getParams().getMapVersion());
    context.getResults().setMapVersion(map->version());
    return serverDriven().coordinateWrite(context);
  }
  // ---- end server-driven coordination ----

 private:
  VersionedStore& store_;
  HintStore& hints_;
  Membership& membership_;
  LocalReplica local_;
  ServerDriven* serverDriven_;

  ServerDriven& serverDriven() {
    if (serverDriven_ == nullptr) {
      KJ_FAIL_REQUIRE("server-driven coordination is not enabled on this node");
    }
    return *serverDriven_;
  }
};

// The anti-entropy a call needs, or the refusal of a node that runs none.
AntiEntropy& antiEntropyOf(AntiEntropy* antiEntropy) {
  if (antiEntropy == nullptr) {
    kj::throwFatalException(
        KJ_EXCEPTION(UNIMPLEMENTED, "this node runs no anti-entropy"));
  }
  return *antiEntropy;
}

class PeerImpl final : public wire::Peer::Server {
  // Node-to-node calls: gossip, partition streaming and anti-entropy.
 public:
  PeerImpl(VersionedStore& store, Membership& membership, AntiEntropy* antiEntropy)
      : store_(store), membership_(membership), antiEntropy_(antiEntropy) {}

  kj::Promise<void> aeRoots(AeRootsContext context) override {
    antiEntropyOf(antiEntropy_).answerRoots(context.getParams(), context.getResults());
    return kj::READY_NOW;
  }

  kj::Promise<void> aeChildren(AeChildrenContext context) override {
    antiEntropyOf(antiEntropy_).answerChildren(context.getParams(), context.getResults());
    return kj::READY_NOW;
  }

  kj::Promise<void> aeKeys(AeKeysContext context) override {
    antiEntropyOf(antiEntropy_).answerKeys(context.getParams(), context.getResults());
    return kj::READY_NOW;
  }

  kj::Promise<void> aeFetch(AeFetchContext context) override {
    antiEntropyOf(antiEntropy_).answerFetch(context.getParams(), context.getResults());
    return kj::READY_NOW;
  }

  kj::Promise<void> aePush(AePushContext context) override {
    return antiEntropyOf(antiEntropy_).answerPush(context.getParams());
  }

  kj::Promise<void> aeReap(AeReapContext context) override {
    return antiEntropyOf(antiEntropy_).answerReap(context.getParams()).then(
        [context](uint32_t reaped) mutable { context.getResults().setReaped(reaped); });
  }

  kj::Promise<void> gossip(GossipContext context) override {
    membership_.gossip(context.getParams().getState(), context.getResults().initState());
    return kj::READY_NOW;
  }

  kj::Promise<void> fetchPartition(FetchPartitionContext context) override {
    auto params = context.getParams();
    uint32_t partition = params.getPartition();
    KJ_REQUIRE(partition < membership_.current()->partitionCount(), "partition out of range",
               partition);
    size_t maxBytes = kj::min(size_t(params.getMaxBytes()), size_t(8) << 20);
    auto chunk = store_.scanPartition(partition, std::string(asStringView(params.getAfter())),
                                      kj::max(maxBytes, size_t(1)));
    auto results = context.getResults();
    auto entries = results.initEntries(chunk.entries.size());
    for (size_t i = 0; i < chunk.entries.size(); i++) {
      auto& [key, object] = chunk.entries[i];
      entries[i].setKey(asData(key.key));
      entries[i].setNamespace(asData(key.ns));
      encodeObject(object, entries[i].initObject());
    }
    results.setNext(asData(chunk.next));
    results.setDone(chunk.done);
    return kj::READY_NOW;
  }

 private:
  VersionedStore& store_;
  Membership& membership_;
  AntiEntropy* antiEntropy_;
};

class AdminImpl final : public wire::Admin::Server {
 public:
  AdminImpl(VersionedStore& store, HintStore& hints, Membership& membership,
            AntiEntropy* antiEntropy, BackgroundAdmission* admission)
      : store_(store),
        hints_(hints),
        membership_(membership),
        antiEntropy_(antiEntropy),
        admission_(admission) {}

  kj::Promise<void> nodeStats(NodeStatsContext context) override {
    auto out = context.getResults().initStats();
    auto map = membership_.current();
    if (auto index = map->indexOf(store_.self().node)) {
      encodeNodeInfo(map->nodes()[*index], out.initNode());
    } else {
      out.initNode().setId(store_.self().node);
    }
    out.setEpoch(store_.self().epoch);
    auto backlog = hints_.hintBacklog();
    auto hints = out.initHints(uint32_t(backlog.size()));
    for (size_t i = 0; i < backlog.size(); i++) {
      hints[uint32_t(i)].setOwner(backlog[i].ownerId);
      hints[uint32_t(i)].setCount(backlog[i].count);
      if (auto owner = map->indexOf(backlog[i].ownerId)) {
        hints[uint32_t(i)].setOwnerAddress(map->nodes()[*owner].address);
      }
    }
    if (antiEntropy_ != nullptr) {
      out.setRebuilding(antiEntropy_->rebuilding());
      antiEntropy_->fillStats(out.initAntiEntropy());
      out.setTombstonesReaped(antiEntropy_->tombstonesReaped());
      out.setPartitionsDropped(antiEntropy_->partitionsDropped());
    }
    out.setTombstones(store_.trees().tombstones());
    if (admission_ != nullptr) {
      auto stats = admission_->stats();
      out.setAdmissionSlots(stats.slots);
      out.setAdmissionEnabled(stats.enabled);
      out.setForegroundP99Micros(stats.foregroundP99Micros);
    }
    return kj::READY_NOW;
  }

  kj::Promise<void> repair(RepairContext context) override {
    int32_t partition = context.getParams().getPartition();
    std::optional<uint32_t> which;
    if (partition >= 0) which = uint32_t(partition);
    return antiEntropyOf(antiEntropy_).repair(which).then(
        [context](AntiEntropy::Report report) mutable {
          auto out = context.getResults().initReport();
          out.setExchanges(report.exchanges);
          out.setFailed(report.failed);
          out.setPartitions(report.partitions);
          out.setSegmentsDiffering(report.segmentsDiffering);
          out.setKeysRepaired(report.keysRepaired);
          out.setMessage(report.message);
        });
  }

  kj::Promise<void> join(JoinContext context) override {
    membership_.join(context.getParams().getAddress());
    return kj::READY_NOW;
  }

  kj::Promise<void> leave(LeaveContext context) override {
    membership_.leave(context.getParams().getAddress());
    return kj::READY_NOW;
  }

  kj::Promise<void> status(StatusContext context) override {
    membership_.status(context.getResults());
    return kj::READY_NOW;
  }

 private:
  VersionedStore& store_;
  HintStore& hints_;
  Membership& membership_;
  AntiEntropy* antiEntropy_;
  BackgroundAdmission* admission_;
};

class GatewayImpl final : public wire::Gateway::Server {
 public:
  GatewayImpl(VersionedStore& store, HintStore& hints, Membership& membership,
              ServiceOptions options)
      : node_(kj::heap<NodeImpl>(store, hints, membership, options)),
        peer_(kj::heap<PeerImpl>(store, membership, options.antiEntropy)),
        admin_(kj::heap<AdminImpl>(store, hints, membership, options.antiEntropy,
                                   options.admission)),
        options_(kj::mv(options)) {}

  kj::Promise<void> authenticate(AuthenticateContext context) override {
    auto params = context.getParams();
    KJ_REQUIRE(params.getCluster() == kj::StringPtr(options_.cluster.c_str()),
               "wrong cluster: this node belongs to another cluster", options_.cluster.c_str(),
               params.getCluster());
    // Compared apart from KJ_REQUIRE, which would print both operands, the secret among them,
    // into the error the caller gets.
    bool secretMatches = asStringView(params.getSecret()) == options_.secret;
    KJ_REQUIRE(secretMatches, "authentication failed: wrong cluster secret");
    auto results = context.getResults();
    results.setNode(node_);
    results.setPeer(peer_);
    results.setAdmin(admin_);
    return kj::READY_NOW;
  }

 private:
  wire::Node::Client node_;
  wire::Peer::Client peer_;
  wire::Admin::Client admin_;
  ServiceOptions options_;
};

}  // namespace

capnp::Capability::Client newGateway(VersionedStore& store, HintStore& hints,
                                     Membership& membership, ServiceOptions options) {
  return kj::heap<GatewayImpl>(store, hints, membership, kj::mv(options));
}

}  // namespace dynkv::storaged

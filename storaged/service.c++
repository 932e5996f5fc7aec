#include "service.h"

#include <kj/debug.h>
#include <kj/time.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <unordered_map>

#include "admission.h"
#include "anti-entropy.h"
#include "authentication.h"
#include "codec.h"
#include "hash-trees.h"
#include "hash.h"
#include "hint-policy.h"
#include "limits.h"
#include "local-replica.h"
#include "metrics.h"
#include "protocol-version.h"
#include "request-age.h"
#include "server-driven.h"
#include "dynkv.capnp.h"

namespace dynkv::storaged {

namespace {

int64_t nowMicros() {
  return (kj::systemPreciseCalendarClock().now() - kj::UNIX_EPOCH) / kj::MICROSECONDS;
}

struct SenderAge final : public kj::Refcounted {
  // The RequestAge of one sender's clock, shared by that sender's connections.
  RequestAge age;
};

class SenderAges {
  // One RequestAge per sender clock (Gateway.authenticate's `clock`), bounded: past
  // MAX_SENDERS clocks, one that no connection uses any more makes room, and if every one is
  // in use the new connection measures its requests alone, as a sender that names no clock
  // does.
 public:
  static constexpr size_t MAX_SENDERS = 4096;

  kj::Own<SenderAge> forClock(uint64_t clock) {
    if (clock == 0) return kj::refcounted<SenderAge>();
    auto found = ages_.find(clock);
    if (found != ages_.end()) return kj::addRef(*found->second);
    if (ages_.size() >= MAX_SENDERS) {
      auto unused = std::find_if(ages_.begin(), ages_.end(),
                                 [](auto& entry) { return !entry.second->isShared(); });
      if (unused == ages_.end()) return kj::refcounted<SenderAge>();
      ages_.erase(unused);
    }
    auto age = kj::refcounted<SenderAge>();
    auto ref = kj::addRef(*age);
    ages_.emplace(clock, kj::mv(age));
    return ref;
  }

 private:
  std::unordered_map<uint64_t, kj::Own<SenderAge>> ages_;
};

struct NodeShared {
  // What the Node of every connection shares: one LocalReplica answers them all.
  NodeShared(VersionedStore& store, HintStore& hints, Membership& membership,
             const ServiceOptions& options)
      : store(store),
        membership(membership),
        local(store, hints, membership, options.transfers, options.admission),
        serverDriven(options.serverDriven),
        metrics(options.metrics) {}

  VersionedStore& store;
  Membership& membership;
  LocalReplica local;
  ServerDriven* serverDriven;
  Metrics* metrics;
  uint64_t staleRefused = 0;  // write requests refused as too old (logged now and then)
  uint64_t retracted = 0;     // coordinated writes taken back: answered after the sender left
  SenderAges senderAges;
};

template <typename Body>
kj::Promise<void> measured(Metrics* metrics, Operation op, Body&& body) {
  // Runs the call's `body` and records in `metrics` (if any) how long its answer took and
  // whether it failed; a refusal thrown before any promise counts as a failure too.
  auto start = monotonicMicros();
  auto promise = kj::evalNow(kj::fwd<Body>(body));
  if (metrics == nullptr) return promise;
  auto since = [start]() { return uint64_t(kj::max(monotonicMicros() - start, int64_t(0))); };
  return promise.then(
      [metrics, op, since]() { metrics->recordRequest(op, since(), false); },
      [metrics, op, since](kj::Exception&& e) {
        metrics->recordRequest(op, since(), true);
        kj::throwFatalException(kj::mv(e));
      });
}

enum class Stale { COORDINATE_PUT, REPLICATE, AE_PUSH };

void refuseIfStale(RequestAge& age, NodeShared& shared, int64_t sentAtMicros,
                   uint64_t patienceMicros, Stale what) {
  // The sender has given up on this request (or is about to): it has had another replica
  // coordinate the write, counted this replica as failed and handed its copy to a fallback, or
  // ended the exchange that pushed it. Acting on it now would make a second version of the
  // write, or store a copy that may be older than a delete already collected (request-age.h).
  // `age` is the connection's; `shared` counts refusals for the log and the metrics.
  if (patienceMicros == 0) return;
  int64_t waited = age.observe(sentAtMicros, monotonicMicros());
  if (!staleRequest(waited, patienceMicros)) return;
  auto& refused = shared.staleRefused;
  if (shared.metrics != nullptr) shared.metrics->refused(Refusal::STALE);
  const char* call = what == Stale::COORDINATE_PUT ? "coordinatePut"
                     : what == Stale::REPLICATE    ? "replicate"
                                                   : "aePush";
  if (refused++ % 1000 == 0) {
    int64_t waitedMs = waited / 1000;
    uint64_t patienceMs = patienceMicros / 1000;
    KJ_LOG(WARNING, "refused stale write requests: this node read them too late", call,
           waitedMs, patienceMs, refused);
  }
  const char* consequence =
      what == Stale::COORDINATE_PUT
          ? "not coordinated here, so that the write is coordinated once, by the replica the "
            "sender asks next"
      : what == Stale::REPLICATE
          ? "not stored here: the sender counted this replica as failed, and the write reaches "
            "it by hinted handoff or anti-entropy"
          : "not stored here: the exchange that pushed it has ended, and the next one repairs "
            "what still differs";
  kj::throwFatalException(KJ_EXCEPTION(
      FAILED, kj::str("stale request: it reached this node ", waited / 1000,
                      " ms later than the connection's fastest, past half of the ",
                      patienceMicros / 1000, " ms its sender waits; ", consequence)));
}

class NodeImpl final : public wire::Node::Server {
  // Decodes each replica call, has the LocalReplica answer it, and encodes the answer. One per
  // connection; it measures how long requests waited (RequestAge) on the sender's clock, with
  // the sender's other connections (SenderAges).
 public:
  NodeImpl(NodeShared& shared, kj::Own<SenderAge> age)
      : shared_(shared),
        age_(kj::mv(age)),
        store_(shared.store),
        membership_(shared.membership),
        local_(shared.local),
        serverDriven_(shared.serverDriven) {}

  kj::Promise<void> get(GetContext context) override {
    return measured(shared_.metrics, Operation::REPLICA_GET, [&]() { return getNow(context); });
  }

  kj::Promise<void> coordinatePut(CoordinatePutContext context) override {
    auto op = context.getParams().getTombstone() ? Operation::COORDINATOR_DELETE
                                                 : Operation::COORDINATOR_PUT;
    return measured(shared_.metrics, op, [&]() { return coordinatePutNow(context); });
  }

  kj::Promise<void> replicate(ReplicateContext context) override {
    auto op = context.getParams().getHintFor() != 0 ? Operation::HINT_PUT
                                                    : Operation::REPLICA_PUT;
    return measured(shared_.metrics, op, [&]() { return replicateNow(context); });
  }

  kj::Promise<void> getNow(GetContext context) {
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

  kj::Promise<void> coordinatePutNow(CoordinatePutContext context) {
    auto params = context.getParams();
    auto map = local_.observe(params.getMapVersion());
    auto wireKey = params.getKey();
    auto key = local_.storageKey(*map, asStringView(wireKey.getNamespace()),
                                 asStringView(wireKey.getKey()));
    KJ_REQUIRE(params.getKind() == wire::NamespaceKind::VECTOR_CLOCK,
               "coordinatePut is for vector-clock namespaces; last-write-wins writes replicate "
               "directly");
    refuseIfStale(age_->age, shared_, params.getSentAtMicros(),
                  params.getPatienceMicros(), Stale::COORDINATE_PUT);
    std::optional<std::string> value;
    if (!params.getTombstone()) value = std::string(asStringView(params.getValue()));
    WriteContext seen(decodeVersionVector(params.getContext()),
                      decodeWriteIds(params.getSupersedes()));
    int64_t sentAt = params.getSentAtMicros();
    uint64_t patience = params.getPatienceMicros();
    return local_.coordinatePut(key, kj::mv(seen), kj::mv(value), nowMicros(),
                                params.getWriteId())
        .then([this, context, map, key, sentAt, patience](Object object) mutable
              -> kj::Promise<void> {
          if (abandonedRequest(age_->age.ageAt(sentAt, monotonicMicros()), patience)) {
            return retractUnanswered(kj::mv(key), object, patience);
          }
          auto results = context.getResults();
          results.setMapVersion(map->version());
          encodeObject(object, results.initObject());
          return kj::READY_NOW;
        });
  }

  kj::Promise<void> replicateNow(ReplicateContext context) {
    auto params = context.getParams();
    auto map = local_.observe(params.getMapVersion());
    auto wireKey = params.getKey();
    auto key = local_.storageKey(*map, asStringView(wireKey.getNamespace()),
                                 asStringView(wireKey.getKey()));
    refuseIfStale(age_->age, shared_, params.getSentAtMicros(),
                  params.getPatienceMicros(), Stale::REPLICATE);
    if (params.getHintFor() != 0) {
      if (auto problem = checkHintOwner(*map, params.getHintFor(), params.getMapVersion())) {
        kj::throwFatalException(KJ_EXCEPTION(FAILED, kj::str(problem->c_str())));
      }
    }
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
    return measured(shared_.metrics, Operation::COORDINATOR_GET, [&]() {
      auto map = local_.observe(context.getParams().getMapVersion());
      context.getResults().setMapVersion(map->version());
      return serverDriven().coordinateGet(context);
    });
  }

  kj::Promise<void> coordinateWrite(CoordinateWriteContext context) override {
    auto op = context.getParams().getTombstone() ? Operation::COORDINATOR_DELETE
                                                 : Operation::COORDINATOR_PUT;
    return measured(shared_.metrics, op, [&]() {
      auto map = local_.observe(context.getParams().getMapVersion());
      context.getResults().setMapVersion(map->version());
      return serverDriven().coordinateWrite(context);
    });
  }
  // ---- end server-driven coordination ----

 private:
  NodeShared& shared_;
  kj::Own<SenderAge> age_;
  VersionedStore& store_;
  Membership& membership_;
  LocalReplica& local_;
  ServerDriven* serverDriven_;

  kj::Promise<void> retractUnanswered(StorageKey key, const Object& object, uint64_t patience) {
    // The version is committed, but its writer stopped waiting before it was (this node was
    // paused, or cut off, between reading the request and answering): the writer has had the
    // write coordinated by another replica, and this version of it, which no answer ever
    // showed, would outlive a delete made with that replica's context. Taken back here;
    // the sender never sees this answer.
    Dot minted{store_.self(), object.vv.counter(store_.self())};
    return store_.retract(kj::mv(key), minted, nowMicros())
        .then([this, patience](bool retracted) -> kj::Promise<void> {
          if (shared_.metrics != nullptr) shared_.metrics->refused(Refusal::TOO_LATE);
          if (shared_.retracted++ % 100 == 0) {
            uint64_t patienceMs = patience / 1000, takenBack = shared_.retracted;
            KJ_LOG(WARNING, "took back coordinated writes whose sender had given up",
                   patienceMs, retracted, takenBack);
          }
          return KJ_EXCEPTION(FAILED, kj::str("too late: the write was coordinated after its "
                                              "sender stopped waiting (", patience / 1000,
                                              " ms), so it was taken back"));
        });
  }

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
  // Node-to-node calls: gossip, partition streaming and anti-entropy. One per connection; it
  // measures how long pushes waited (RequestAge) on the sender's clock, as NodeImpl does.
 public:
  PeerImpl(NodeShared& shared, kj::Own<SenderAge> age, AntiEntropy* antiEntropy)
      : shared_(shared),
        age_(kj::mv(age)),
        store_(shared.store),
        membership_(shared.membership),
        antiEntropy_(antiEntropy) {}

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
    auto params = context.getParams();
    refuseIfStale(age_->age, shared_, params.getSentAtMicros(),
                  params.getPatienceMicros(), Stale::AE_PUSH);
    return antiEntropyOf(antiEntropy_).answerPush(params);
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
  NodeShared& shared_;
  kj::Own<SenderAge> age_;
  VersionedStore& store_;
  Membership& membership_;
  AntiEntropy* antiEntropy_;
};

class AdminImpl final : public wire::Admin::Server {
 public:
  AdminImpl(VersionedStore& store, HintStore& hints, Membership& membership,
            AntiEntropy* antiEntropy, BackgroundAdmission* admission, StorageEngine* engine)
      : store_(store),
        hints_(hints),
        membership_(membership),
        antiEntropy_(antiEntropy),
        admission_(admission),
        engine_(engine) {}

  ~AdminImpl() noexcept(false) {
    // A snapshot still copying holds the engine: wait for it rather than pull the engine out
    // from under it.
    if (snapshotThread_.joinable()) snapshotThread_.join();
  }

  kj::Promise<void> inspect(InspectContext context) override {
    // The store's copy and each hint apart, so the operator sees which copy this node holds
    // as a replica and which it keeps standing in for another (the paper's section 4.6).
    auto params = context.getParams();
    auto map = membership_.current();
    KJ_REQUIRE(!map->empty(), "this node has no partition map yet");
    auto ns = asStringView(params.getKey().getNamespace());
    auto key = asStringView(params.getKey().getKey());
    if (auto error = checkKey(store_.limits(), ns, key)) {
      KJ_FAIL_REQUIRE("invalid argument", *error);
    }
    uint32_t partition = map->partitionOf(keyHash(ns, key));
    uint32_t n = params.getReplicas() == 0 ? 3 : params.getReplicas();
    auto list = map->preferenceList(partition, n, 0);
    bool replica = false;
    for (uint32_t i = 0; i < list.primaries; i++) {
      replica |= map->nodes()[list.nodes[i]].id == store_.self().node;
    }
    auto held = store_.heldCopies(StorageKey{partition, std::string(ns), std::string(key)});
    auto results = context.getResults();
    results.setPartition(partition);
    results.setReplica(replica);
    auto copies = results.initCopies(uint32_t(held.hinted.size() + (held.own ? 1 : 0)));
    uint32_t next = 0;
    if (held.own) encodeObject(*held.own, copies[next++].initObject());
    for (auto& [owner, object] : held.hinted) {
      auto copy = copies[next++];
      copy.setStandIn(true);
      copy.setOwner(owner);
      if (auto index = map->indexOf(owner)) copy.setOwnerAddress(map->nodes()[*index].address);
      encodeObject(object, copy.initObject());
    }
    return kj::READY_NOW;
  }

  kj::Promise<void> snapshot(SnapshotContext context) override {
    KJ_REQUIRE(engine_ != nullptr, "this node cannot take snapshots");
    std::string dir = context.getParams().getDir();
    namespace fs = std::filesystem;
    auto refuse = [&](kj::StringPtr why) {
      return KJ_EXCEPTION(FAILED, kj::str("refused: snapshot directory ", dir.c_str(), " ", why));
    };
    if (dir.empty() || !fs::path(dir).is_absolute()) {
      return KJ_EXCEPTION(FAILED, kj::str("invalid argument: the snapshot directory must be an "
                                          "absolute path on the node's host, not '",
                                          dir.c_str(), "'"));
    }
    // Until its thread ends, not until its caller stops waiting: a caller that hangs up does not
    // stop the copy.
    if (snapshotRunning_) return refuse("not started: another snapshot is still being taken");
    std::error_code error;
    auto status = fs::status(dir, error);
    if (fs::exists(status)) {
      if (!fs::is_directory(status)) return refuse("exists and is not a directory");
      if (!fs::is_empty(dir, error) || error) {
        return refuse("exists and is not empty: name a new or empty directory");
      }
    } else if (!fs::create_directories(dir, error) && error) {
      return KJ_EXCEPTION(FAILED, kj::str("cannot create snapshot directory ", dir.c_str(), ": ",
                                          error.message().c_str()));
    }
    // The copy can take minutes for a large store: it runs on a thread of its own (LMDB lets a
    // read transaction run there beside the loop's writes) and reports back across threads.
    if (snapshotThread_.joinable()) snapshotThread_.join();  // the last one, already finished
    auto paf = kj::newPromiseAndCrossThreadFulfiller<StorageEngine::SnapshotInfo>();
    snapshotRunning_ = true;
    // The fulfiller is held here, not by the thread, and released only once that has been
    // joined.
    snapshotFulfiller_ = kj::mv(paf.fulfiller);
    const kj::CrossThreadPromiseFulfiller<StorageEngine::SnapshotInfo>* fulfiller =
        snapshotFulfiller_.get();
    std::atomic<bool>& running = snapshotRunning_;
    snapshotThread_ = std::thread([engine = engine_, dir, fulfiller, &running]() {
      KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() {
                     fulfiller->fulfill(engine->snapshot(dir.c_str()));
                   })) {
        fulfiller->reject(kj::mv(*e));
      }
      running = false;
    });
    return paf.promise
        .then(
            [context](StorageEngine::SnapshotInfo info) mutable {
              auto results = context.getResults();
              results.setBytes(info.bytes);
              results.setKeys(info.keys);
            },
            [dir](kj::Exception&& e) {
              KJ_LOG(WARNING, "snapshot failed", dir, e);
              kj::throwFatalException(kj::mv(e));
            });
  }

  kj::Promise<void> nodeStats(NodeStatsContext context) override {
    fillNodeStats(store_, hints_, membership_, antiEntropy_, admission_, engine_,
                  context.getResults().initStats());
    return kj::READY_NOW;
  }

  static void fillNodeStats(VersionedStore& store, HintStore& hints, Membership& membership,
                            AntiEntropy* antiEntropy, BackgroundAdmission* admission,
                            StorageEngine* engine, wire::NodeStats::Builder out) {
    // Admin.nodeStats, and the HTTP port's report: one source for both.
    auto map = membership.current();
    if (auto index = map->indexOf(store.self().node)) {
      encodeNodeInfo(map->nodes()[*index], out.initNode());
    } else {
      out.initNode().setId(store.self().node);
    }
    out.setEpoch(store.self().epoch);
    auto backlog = hints.hintBacklog();
    auto held = out.initHints(uint32_t(backlog.size()));
    for (size_t i = 0; i < backlog.size(); i++) {
      held[uint32_t(i)].setOwner(backlog[i].ownerId);
      held[uint32_t(i)].setCount(backlog[i].count);
      if (auto owner = map->indexOf(backlog[i].ownerId)) {
        held[uint32_t(i)].setOwnerAddress(map->nodes()[*owner].address);
      }
    }
    if (antiEntropy != nullptr) {
      out.setRebuilding(antiEntropy->rebuilding());
      antiEntropy->fillStats(out.initAntiEntropy());
      out.setTombstonesReaped(antiEntropy->tombstonesReaped());
      out.setPartitionsDropped(antiEntropy->partitionsDropped());
    }
    out.setTombstones(store.trees().tombstones());
    if (engine != nullptr) out.setEngineBytes(engine->bytesUsed());
    if (admission != nullptr) {
      auto stats = admission->stats();
      out.setAdmissionSlots(stats.slots);
      out.setAdmissionEnabled(stats.enabled);
      out.setForegroundP99Micros(stats.foregroundP99Micros);
    }
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

  kj::Promise<void> forceRemove(ForceRemoveContext context) override {
    auto params = context.getParams();
    membership_.forceRemove(params.getAddress(), params.getEvenIfAlive());
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
  StorageEngine* engine_;
  std::atomic<bool> snapshotRunning_{false};
  kj::Own<kj::CrossThreadPromiseFulfiller<StorageEngine::SnapshotInfo>> snapshotFulfiller_;
  std::thread snapshotThread_;  // the last snapshot's; joined before the next starts
};

}  // namespace

struct Service::Shared {
  Shared(VersionedStore& store, HintStore& hints, Membership& membership, kj::Timer& timer,
         ServiceOptions optionsParam)
      : store(store),
        hints(hints),
        membership(membership),
        timer(timer),
        options(kj::mv(optionsParam)),
        node(store, hints, membership, options),
        admin(kj::heap<AdminImpl>(store, hints, membership, options.antiEntropy,
                                  options.admission, options.engine)) {}

  VersionedStore& store;
  HintStore& hints;
  Membership& membership;
  kj::Timer& timer;
  ServiceOptions options;
  NodeShared node;
  wire::Admin::Client admin;
  uint64_t authenticationsRefused = 0;  // logged now and then
};

namespace {

class GatewayImpl final : public wire::Gateway::Server {
  // One per connection, so that it holds that connection's failed authentications
  // (authentication.h).
 public:
  GatewayImpl(Service::Shared& shared, kj::Maybe<kj::Function<void()>> authenticated,
              kj::Maybe<Role> role)
      : shared_(shared), authenticated_(kj::mv(authenticated)), role_(role) {}

  kj::Promise<void> authenticate(AuthenticateContext context) override {
    auto params = context.getParams();
    const ServiceOptions& options = shared_.options;
    // First, so that a mismatch says what to upgrade rather than fail on whatever it changed.
    // Version 0 (an older build, the field absent) is judged by protocol-version.h's rule.
    auto mismatch = protocolMismatch(params.getProtocol(), "this node", "the client");
    if (mismatch) {
      kj::throwFatalException(
          kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(*mismatch)));
    }
    // The cluster's name is no secret; naming both tells an operator which config is wrong.
    KJ_REQUIRE(params.getCluster() == kj::StringPtr(options.cluster.c_str()),
               "wrong cluster: this node belongs to another cluster", options.cluster.c_str(),
               params.getCluster());
    // No message below names the offered or the real secret, and neither ever goes through
    // KJ_REQUIRE, which prints its operands into the error the caller gets.
    auto verdict = guard_.attempt();
    if (verdict != AuthenticationGuard::Verdict::COMPARE) refusedAuthentication();
    switch (verdict) {
      case AuthenticationGuard::Verdict::REFUSE_SPENT:
        KJ_FAIL_REQUIRE(
            "authentication refused: too many failed attempts on this connection; connect "
            "again with the right cluster secret");
      case AuthenticationGuard::Verdict::REFUSE_WAITING:
        KJ_FAIL_REQUIRE(
            "authentication refused: a failed attempt on this connection is still being "
            "answered; authenticate once at a time");
      case AuthenticationGuard::Verdict::COMPARE:
        break;
    }
    if (!secretsMatch(asStringView(params.getSecret()), options.secret)) {
      // The answer waits on the timer, never on the event loop: the node's other connections
      // go on being served meanwhile.
      guard_.failed();
      refusedAuthentication();
      return shared_.timer
          .afterDelay(AuthenticationGuard::FAILURE_PENALTY_MILLIS * kj::MILLISECONDS)
          .then([this]() {
            guard_.penaltyServed();
            KJ_FAIL_REQUIRE("authentication failed: wrong cluster secret");
          });
    }
    // Over TLS the certificate says what the caller may reach (roles.h); a capability it is
    // not granted is one that refuses every call, naming the role it would take. Over plain
    // TCP the secret is all there is, and it grants everything.
    Grants grants{true, true, true};
    KJ_IF_MAYBE(role, role_) {
      grants = grantsOf(*role);
      if (*role == Role::NONE) {
        refusedAuthentication();
        KJ_FAIL_REQUIRE(
            "permission denied: the certificate's common name names no role (client:NAME, "
            "node:NAME or admin:NAME)");
      }
    }
    auto results = context.getResults();
    // Both measure request ages on the sender's clock, with its other connections'.
    auto age = shared_.node.senderAges.forClock(params.getClock());
    results.setNode(kj::heap<NodeImpl>(shared_.node, kj::addRef(*age)));
    if (grants.peer) {
      results.setPeer(
          kj::heap<PeerImpl>(shared_.node, kj::mv(age), shared_.options.antiEntropy));
    } else {
      results.setPeer(denied("node-to-node calls (gossip, transfer, anti-entropy)", "node")
                          .castAs<wire::Peer>());
    }
    if (grants.admin) {
      results.setAdmin(shared_.admin);
    } else {
      results.setAdmin(denied("admin commands", "admin").castAs<wire::Admin>());
    }
    results.setProtocol(PROTOCOL_VERSION);
    KJ_IF_MAYBE(f, authenticated_) { (*f)(); }
    return kj::READY_NOW;
  }

 private:
  Service::Shared& shared_;
  kj::Maybe<kj::Function<void()>> authenticated_;
  kj::Maybe<Role> role_;  // from the TLS certificate; null over plain TCP
  AuthenticationGuard guard_;

  capnp::Capability::Client denied(const char* what, const char* needed) {
    const char* role = "none";
    KJ_IF_MAYBE(r, role_) { role = roleName(*r); }
    return capnp::Capability::Client(kj::Exception(
        kj::Exception::Type::FAILED, __FILE__, __LINE__,
        kj::str("permission denied: ", what, " need a certificate with role ", needed,
                "; this caller's role is ", role)));
  }

  void refusedAuthentication() {
    if (shared_.options.metrics != nullptr) {
      shared_.options.metrics->refused(Refusal::AUTHENTICATION);
    }
    // Neither secret is named: only that it happened, and how often.
    uint64_t refused = ++shared_.authenticationsRefused;
    if (refused % 100 == 1) {
      KJ_LOG(WARNING, "refused an authentication: wrong cluster secret or too many attempts",
             refused);
    }
  }
};

}  // namespace

Service::Service(VersionedStore& store, HintStore& hints, Membership& membership,
                 kj::Timer& timer, ServiceOptions options)
    : shared_(kj::heap<Shared>(store, hints, membership, timer, kj::mv(options))) {}

Service::~Service() noexcept(false) {}

capnp::Capability::Client Service::connect(kj::Maybe<kj::Function<void()>> authenticated,
                                           kj::Maybe<Role> role) {
  return kj::heap<GatewayImpl>(*shared_, kj::mv(authenticated), role);
}

void Service::nodeStats(wire::NodeStats::Builder out) {
  AdminImpl::fillNodeStats(shared_->store, shared_->hints, shared_->membership,
                           shared_->options.antiEntropy, shared_->options.admission,
                           shared_->options.engine, out);
}

void Service::status(wire::Admin::StatusResults::Builder out) {
  shared_->membership.status(out);
}

}  // namespace dynkv::storaged

// storaged: one per storage host. See DESIGN.md for what it keeps and why.
#include <algorithm>
#include <csignal>
#include <iostream>
#include <iterator>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <kj/debug.h>
#include <kj/main.h>
#include <kj/time.h>
#include <sys/resource.h>

#include "admission.h"
#include "anti-entropy.h"
#include "codec.h"
#include "config.h"
#include "data-dir-lock.h"
#include "hinted-handoff.h"
#include "gossip.h"
#include "hash-trees.h"
#include "group-commit.h"
#include "hint-store.h"
#include "http-status.h"
#include "identity.h"
#include "logging.h"
#include "membership.h"
#include "metrics.h"
#include "net/accept-loop.h"
#include "net/tls.h"
#include "roles.h"
#include "server-driven.h"
#include "service.h"
#include "transfer.h"
#include "versioned-store.h"

namespace dynkv::storaged {
namespace {

// Descriptors kept aside from the RPC listener's connections: LMDB's, the log's, the HTTP
// port's, and the connections this node opens to its peers.
constexpr uint64_t DESCRIPTOR_HEADROOM = 256;

uint32_t connectionsThatFit(uint32_t wanted) {
  // Raises the soft descriptor limit to the hard one, and returns `wanted`, or fewer if the
  // limit leaves too few descriptors: a node that runs out mid-accept only refuses and retries
  // (net/accept-loop.h), but its own files and peer connections would fail too.
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return wanted;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  if (limit.rlim_cur == RLIM_INFINITY) return wanted;
  uint64_t room = limit.rlim_cur > 2 * DESCRIPTOR_HEADROOM ? limit.rlim_cur - DESCRIPTOR_HEADROOM
                                                          : limit.rlim_cur / 2;
  if (wanted <= room) return wanted;
  uint64_t descriptors = limit.rlim_cur, maxConnections = room;
  KJ_LOG(WARNING, "max-connections lowered to fit the descriptor limit (ulimit -n)", wanted,
         maxConnections, descriptors);
  return uint32_t(room);
}

int64_t wallClockMicros() {
  return (kj::systemPreciseCalendarClock().now() - kj::UNIX_EPOCH) / kj::MICROSECONDS;
}

std::string advertisedHttp(const Config& config) {
  // The HTTP address peers show in their status: the one given, except that a wildcard host
  // (listening on every interface) is replaced by the advertised RPC host, which peers reach.
  auto colon = config.http.rfind(':');
  if (colon == std::string::npos) return config.http;
  auto host = config.http.substr(0, colon);
  if (host != "0.0.0.0" && host != "*" && host != "[::]" && !host.empty()) return config.http;
  auto rpcColon = config.advertise.rfind(':');
  auto rpcHost = rpcColon == std::string::npos ? config.advertise
                                               : config.advertise.substr(0, rpcColon);
  auto out = rpcHost + config.http.substr(colon);
  return out.size() <= 255 ? out : config.http;
}

int run(const Config& config) {
  // Every KJ_LOG from here on is a timestamped key=value line on stderr (logging.h).
  LogSink log(*parseLogLevel(config.logLevel));
  kj::UnixEventPort::captureSignal(SIGTERM);
  kj::UnixEventPort::captureSignal(SIGINT);
  auto io = kj::setupAsyncIo();

  // Taken before anything in the data directory is read or written, held until the process
  // ends; a second storaged on the same directory stops here, naming the first.
  kj::Maybe<kj::Own<DataDirLock>> dataDirLock;
  if (config.engine == "lmdb") dataDirLock = kj::heap<DataDirLock>(config.dataDir);

  kj::Own<StorageEngine> engine;
  if (config.engine == "memory") {
    engine = newMemoryEngine();
  } else {
    LmdbOptions options;
    options.path = kj::str(config.dataDir.c_str());
    options.durability = config.durability;
    options.mapSizeBytes = config.mapSizeBytes;
    engine = openLmdbEngine(options);
  }

  auto identity = loadOrCreateIdentity(*engine, config.advertise, nodeIdFor(config.advertise),
                                       wallClockMicros());
  NodeInfo self;
  self.id = identity.actor.node;
  self.name = identity.name;
  self.address = config.advertise;
  self.zone = config.zone;
  self.weight = config.weight;

  auto& timer = io.provider->getTimer();
  // The process's one failure detector: the pool feeds it from calls, gossip from heartbeats,
  // and routing (server-driven coordination, hinted handoff, transfers) and gossip both ask it
  // whom to suspect.
  FailureDetector detector;
  // Peers are reached through one connection pool (common/net/, as the SDK reaches nodes):
  // gossip, handoff, transfer and server-driven coordination share its connections.
  // Mutual TLS on both sides of every link when the three files are named (net/tls.h): the
  // node presents its certificate to its peers and callers, and trusts the cluster's CA alone.
  // Made before the pool, so that it outlives every connection.
  kj::Own<Tls> tls;
  if (!config.tlsCa.empty()) {
    tls = kj::heap<Tls>(TlsFiles{config.tlsCa, config.tlsCert, config.tlsKey});
  }
  NodePool peers(io.provider->getNetwork(), timer, detector, config.cluster, config.secret,
                 config.limits.maxValueBytes);
  if (tls.get() != nullptr) {
    peers.useTls(tls->context());
  } else {
    KJ_LOG(WARNING, "plain TCP: no --tls-ca, --tls-cert and --tls-key, so connections are "
                    "neither encrypted nor authenticated by certificate; anyone who reaches "
                    "the port with the cluster secret may call everything");
  }

  // Background work (transfers, hint delivery; anti-entropy) runs under one admission
  // controller, fed by the foreground's storage latency (LocalReplica) and the loop's lag. It
  // outlives every job that holds its slots.
  BackgroundAdmission admission(timer, config.admission);

  GroupCommit commits(*engine);
  HintStore hints(commits, config.limits);
  // Trees as fine as the ring's size allows within their memory budget (common/merkle-tree.h).
  HashTrees trees(*engine, config.limits,
                  TreeShape::forPartitions(size_t(1) << config.partitionBits));
  VersionedStore store(commits, hints, trees, identity.actor, config.limits);
  TransferManager transfers(store, *engine, peers, timer, self.id, config.replicas,
                            config.transferBytesPerSecond, &admission);
  GossipOptions gossipOptions;
  gossipOptions.self = self;
  gossipOptions.generation = uint64_t(wallClockMicros());
  gossipOptions.httpAddress = advertisedHttp(config);
  gossipOptions.seeds = config.seeds;
  gossipOptions.partitionBits = config.partitionBits;
  gossipOptions.interval = config.gossipIntervalMillis * kj::MILLISECONDS;
  GossipMembership membership(kj::mv(gossipOptions), commits, peers, detector, timer);
  membership.onMapChange([&transfers](const PartitionMap& previous, const PartitionMap& now) {
    transfers.mapChanged(previous, now);
  });
  membership.setPendingTransfers([&transfers]() { return transfers.pendingCount(); });

  // ---- server-driven coordination (server-driven.h; bench/) ----
  ServerDriven serverDriven(store, hints, membership, &transfers, peers, timer, &admission);
  // ---- end server-driven coordination ----
  // ---- anti-entropy (anti-entropy.h) ----
  AntiEntropyOptions antiEntropyOptions;
  antiEntropyOptions.replicas = config.replicas;
  antiEntropyOptions.interval = config.antiEntropyIntervalMillis * kj::MILLISECONDS;
  // A tombstone's minimum age before collection follows the exchange interval, so "collected
  // within two intervals of every replica holding it" holds at any interval.
  antiEntropyOptions.reapAfter = antiEntropyOptions.interval;
  antiEntropyOptions.rebuilding = identity.created;
  antiEntropyOptions.streaming = [&transfers](uint32_t p) { return !transfers.readable(p); };
  // What gossip says every node still has to hand off, and what this node has as it is now
  // (its own streams AntiEntropy adds).
  antiEntropyOptions.outsideWrites = [&membership, &hints]() {
    auto outside = outsideWrites(membership.state());
    for (auto p : hints.hintedPartitions()) outside.handoff.insert(p);
    return outside;
  };
  antiEntropyOptions.dropped = [&membership]() { membership.handoffChanged(); };
  AntiEntropy antiEntropy(store, trees, membership, peers, timer, &admission,
                          antiEntropyOptions);
  // Our gossip record names the partitions we hold writes of still to hand off: hints, and data
  // of partitions we are no replica of (until dropped). Their tombstones wait meanwhile.
  membership.setHandoffPartitions([&hints, &antiEntropy]() {
    std::vector<uint32_t> partitions;
    auto hinted = hints.hintedPartitions();
    auto notOwned = antiEntropy.heldNotOwned();
    std::set_union(hinted.begin(), hinted.end(), notOwned.begin(), notOwned.end(),
                   std::back_inserter(partitions));
    return partitions;
  });
  hints.onPartitionsChanged([&membership]() { membership.handoffChanged(); });

  transfers.finishWith([&antiEntropy](uint32_t p) { return antiEntropy.exchangePartition(p); });

  ServiceOptions serviceOptions;
  serviceOptions.cluster = config.cluster;
  serviceOptions.secret = config.secret;
  serviceOptions.serverDriven = &serverDriven;
  serviceOptions.transfers = &transfers;
  serviceOptions.antiEntropy = &antiEntropy;
  serviceOptions.admission = &admission;
  serviceOptions.engine = engine.get();
  Metrics metrics;  // what /metrics exports: requests, refusals, connections
  serviceOptions.metrics = &metrics;
  Service service(store, hints, membership, timer, kj::mv(serviceOptions));

  auto address = io.provider->getNetwork().parseAddress(config.listen).wait(io.waitScope);
  auto listener = address->listen();
  auto map = membership.current();
  auto me = membership.state().find(self.id);
  {
    // The start-up line: who this node is and how it is set up.
    const char* name = identity.name.c_str();
    uint64_t node = identity.actor.node, epoch = identity.actor.epoch;
    const char* listen = config.listen.c_str();
    kj::String status = kj::str(toString(me->status));
    size_t members = membership.state().members().size();
    uint64_t mapVersion = map->version();
    const char* durability = config.durability == Durability::SYNC ? "sync" : "buffered";
    const char* admission = config.admission.enabled ? "on" : "off";
    int64_t admissionTargetMs = config.admission.targetMicros / 1000;
    uint32_t admissionSlots = config.admission.maxSlots;
    KJ_LOG(INFO, "storaged started", name, node, epoch, listen, status, members, mapVersion,
           durability, admission, admissionTargetMs, admissionSlots);
  }

  auto logFailure = [](const char* what) {
    return [what](kj::Exception&& e) { KJ_LOG(ERROR, what, e); };
  };
  auto admissionLoop = admission.run().eagerlyEvaluate(logFailure("admission control stopped"));
  auto gossipLoop = membership.run().eagerlyEvaluate(logFailure("gossip stopped"));
  auto transferLoop = transfers.run().eagerlyEvaluate(logFailure("partition transfer stopped"));
  HintedHandoff handoff(store, hints, membership, peers, timer, config.replicas, {}, &admission);
  auto handoffLoop = handoff.run().eagerlyEvaluate(logFailure("hinted handoff stopped"));
  auto antiEntropyLoop = antiEntropy.run().eagerlyEvaluate(logFailure("anti-entropy stopped"));

  AcceptOptions accept;
  accept.reader = readerOptionsFor(config.limits.maxValueBytes);
  auto& bounds = config.connections;
  accept.maxConnections = connectionsThatFit(bounds.maxConnections);
  accept.maxConnectionsPerAddress = bounds.maxPerAddress;
  accept.timer = &timer;
  accept.handshakeTimeout = bounds.handshakeTimeoutMillis * kj::MILLISECONDS;
  accept.maxHandshakes = bounds.maxHandshakes;
  accept.idleTimeout = bounds.idleTimeoutMillis * kj::MILLISECONDS;
  accept.slowReaderTimeout = bounds.slowReaderTimeoutMillis * kj::MILLISECONDS;
  accept.maxWriteBacklog = bounds.maxBufferedBytes;
  accept.flowLimitWords = bounds.maxRequestBytesInFlight / sizeof(capnp::word);
  accept.counters = &metrics.rpcConnections;
  if (tls.get() != nullptr) accept.tls = &tls->context();
  // Over TLS the certificate's name says the caller's role, and the role what it is granted.
  auto serving = serveAuthenticated(
      *listener,
      [&service](Authenticated done, kj::Maybe<kj::StringPtr> certificate) {
        kj::Maybe<Role> role;
        KJ_IF_MAYBE(name, certificate) { role = roleOf(std::string_view(name->cStr())); }
        return service.connect(kj::mv(done), role);
      },
      kj::mv(accept));

  // The HTTP port (/metrics, the status page), if asked for: on this event loop, reading the
  // same state Admin.nodeStats and Admin.status answer from.
  kj::Own<kj::ConnectionReceiver> httpListener;  // null: no HTTP port
  kj::Own<HttpStatus> http;
  kj::Promise<void> httpServing = kj::NEVER_DONE;
  if (!config.http.empty()) {
    auto httpAddress = io.provider->getNetwork().parseAddress(config.http).wait(io.waitScope);
    httpListener = httpAddress->listen();
    http = kj::heap<HttpStatus>(timer, service, membership, trees, &transfers, metrics);
    httpServing = http->listen(*httpListener).eagerlyEvaluate(logFailure("HTTP port stopped"));
    KJ_LOG(INFO, "serving /metrics and the status page over HTTP", config.http.c_str());
  }
  auto stop = io.unixEventPort.onSignal(SIGTERM)
                  .exclusiveJoin(io.unixEventPort.onSignal(SIGINT))
                  .then([](siginfo_t info) { return info.si_signo; });
  auto signal = stop.exclusiveJoin(serving.then([]() { return 0; })).wait(io.waitScope);
  engine->flush();
  KJ_LOG(INFO, "storaged stopped", signal);
  return 0;
}

}  // namespace
}  // namespace dynkv::storaged

int main(int argc, char** argv) {
  auto parsed = dynkv::storaged::parseCommandLine(argc, argv);
  if (auto answer = std::get_if<dynkv::storaged::Exit>(&parsed)) {
    (answer->code == 0 ? std::cout : std::cerr) << answer->text << std::flush;
    return answer->code;
  }
  auto& config = std::get<dynkv::storaged::Config>(parsed);
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { exit(dynkv::storaged::run(config)); })) {
    std::cerr << "storaged: " << e->getDescription().cStr() << std::endl;
    return 1;
  }
  return 0;
}

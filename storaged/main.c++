// storaged: one per storage host. See DESIGN.md for what it keeps and why.
#include <csignal>
#include <iostream>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <kj/debug.h>
#include <kj/main.h>
#include <kj/time.h>

#include "codec.h"
#include "config.h"
#include "hinted-handoff.h"
#include "identity.h"
#include "membership.h"
#include "server.h"
#include "service.h"
#include "store.h"

namespace dynkv::storaged {
namespace {

int64_t wallClockMicros() {
  return (kj::systemPreciseCalendarClock().now() - kj::UNIX_EPOCH) / kj::MICROSECONDS;
}

int run(const Config& config) {
  kj::UnixEventPort::captureSignal(SIGTERM);
  kj::UnixEventPort::captureSignal(SIGINT);
  auto io = kj::setupAsyncIo();

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
  auto membership = newStaticMembership(self, config.seeds, config.partitionBits);

  Store store(*engine, identity.actor, config.limits, io.provider->getTimer());
  auto gateway = newGateway(store, *membership, ServiceOptions{config.cluster, config.secret});

  auto address = io.provider->getNetwork().parseAddress(config.listen).wait(io.waitScope);
  auto listener = address->listen();
  auto map = membership->current();
  std::cerr << "storaged: node " << identity.name << " (id " << identity.actor.node << ", epoch "
            << identity.actor.epoch << ") listening on " << config.listen << "; "
            << map->nodes().size() << " members, partition map v" << map->version() << ", "
            << (config.durability == Durability::SYNC ? "sync" : "buffered") << " durability"
            << std::endl;

  // Peers are reached through the same connection pool the client SDK uses.
  NodePool peers(io.provider->getNetwork(), io.provider->getTimer(), config.cluster,
                 config.secret, config.limits.maxValueBytes);
  HintedHandoff handoff(store, *membership, peers, io.provider->getTimer());
  auto handoffLoop = handoff.run().eagerlyEvaluate([](kj::Exception&& e) {
    KJ_LOG(ERROR, "hinted handoff stopped", e);
  });

  auto serving = serve(*listener, kj::mv(gateway), readerOptionsFor(config.limits.maxValueBytes));
  auto stop = io.unixEventPort.onSignal(SIGTERM)
                  .exclusiveJoin(io.unixEventPort.onSignal(SIGINT))
                  .then([](siginfo_t info) { return info.si_signo; });
  auto signal = stop.exclusiveJoin(serving.then([]() { return 0; })).wait(io.waitScope);
  engine->flush();
  std::cerr << "storaged: stopped by signal " << signal << std::endl;
  return 0;
}

}  // namespace
}  // namespace dynkv::storaged

int main(int argc, char** argv) {
  dynkv::storaged::Config config;
  try {
    config = dynkv::storaged::parseConfig(argc, argv);
  } catch (const std::invalid_argument& e) {
    std::cerr << "storaged: " << e.what() << std::endl;
    return 2;
  }
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { exit(dynkv::storaged::run(config)); })) {
    std::cerr << "storaged: " << e->getDescription().cStr() << std::endl;
    return 1;
  }
  return 0;
}

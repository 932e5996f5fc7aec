// One storaged node's storage and RPC service hosted in the test's own process, on a loopback
// port: a memory engine, its group commit, hint store and versioned store, and the gateway
// served over them with the daemon's receive limits. The test decides the ring (a
// FixedMembership) and wires whatever else it examines (server-driven mode, transfers) through
// the ServiceOptions it serves with.
#pragma once

#include <kj/async-io.h>
#include <kj/debug.h>

#include <string>

#include "accept-loop.h"
#include "codec.h"
#include "engine.h"
#include "fixed-membership.h"
#include "group-commit.h"
#include "hash-trees.h"
#include "hint-store.h"
#include "service.h"
#include "versioned-store.h"

namespace dynkv::storaged {

struct InProcessNode {
  InProcessNode(kj::AsyncIoContext& io, uint64_t id, const Limits& limits)
      : io(io),
        id(id),
        limits(limits),
        listener(listen(0)),
        port(listener->getPort()),
        address("127.0.0.1:" + std::to_string(port)),
        engine(newMemoryEngine()),
        commits(*engine),
        hints(commits, limits),
        trees(*engine, limits),
        store(commits, hints, trees, Actor{id, 1}, limits) {}

  kj::AsyncIoContext& io;
  uint64_t id;
  Limits limits;
  kj::Own<kj::ConnectionReceiver> listener;
  uint port;
  std::string address;
  kj::Own<StorageEngine> engine;
  GroupCommit commits;
  HintStore hints;
  HashTrees trees;
  VersionedStore store;
  kj::Own<FixedMembership> membership;
  ServiceOptions options{"test", "s3cret"};
  kj::Own<Service> service;
  kj::Promise<void> serving = nullptr;

  void serve(MapSnapshot map) {
    // Serves the gateway (cluster "test", secret "s3cret", plus whatever `options` the test
    // set) with `map` as the ring.
    membership = kj::heap<FixedMembership>(kj::mv(map));
    serve();
  }

  void serve() {
    // The same, with the ring `membership` already holds (for what must refer to it first).
    serving = nullptr;  // connections to a previous service end before it does
    service = kj::heap<Service>(store, hints, *membership, io.provider->getTimer(), options);
    serving = dynkv::serve(*listener, [this]() { return service->connect(); },
                           AcceptOptions{readerOptionsFor(limits.maxValueBytes)})
                  .eagerlyEvaluate([](kj::Exception&& e) { KJ_LOG(ERROR, "serving failed", e); });
  }

  void down() {
    // The node's connections close and its port refuses new ones, as a crashed node's would.
    serving = nullptr;
    listener = nullptr;
  }

  void up() {
    // Back on the same port, with the same data, ring and options.
    listener = listen(port);
    serve();
  }

 private:
  kj::Own<kj::ConnectionReceiver> listen(uint on) {
    auto where = "127.0.0.1:" + std::to_string(on);
    return io.provider->getNetwork().parseAddress(where).wait(io.waitScope)->listen();
  }
};

}  // namespace dynkv::storaged

// The node pool against a real storaged gateway served in-process over loopback (serve(), as
// storaged serves it): connecting, authenticating, suspicion and its clearing, reconnection
// after the server drops a connection. Every wait is on a promise (bounded by DEADLINE, a
// guard against a hang, not a measurement).
#include "node-pool.h"

#include <kj/async-io.h>
#include <kj/debug.h>

#include <catch2/catch.hpp>

#include "accept-loop.h"
#include "codec.h"
#include "fixed-membership.h"
#include "hash.h"
#include "replicas.h"
#include "service.h"
#include "group-commit.h"
#include "hash-trees.h"
#include "hint-store.h"
#include "versioned-store.h"

namespace dynkv::storaged {
namespace {

using Catch::Matchers::Contains;

constexpr uint64_t NODE = 1;
constexpr auto DEADLINE = 30 * kj::SECONDS;

struct Fixture {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::Timer& timer = io.provider->getTimer();
  Limits limits;

  kj::Own<kj::ConnectionReceiver> listener = listen(0);
  std::string address = "127.0.0.1:" + std::to_string(listener->getPort());
  MapSnapshot map = std::make_shared<const PartitionMap>(
      PartitionMap::build({NodeInfo{NODE, "node", address, "", 1}}, 4, 1));

  // The node: a store and its gateway on loopback.
  kj::Own<StorageEngine> engine = newMemoryEngine();
  GroupCommit commits{*engine};
  HintStore hints{commits, limits};
  HashTrees trees{*engine, limits};
  VersionedStore store{commits, hints, trees, Actor{NODE, 1}, limits};
  FixedMembership membership{map};
  Service service{store, hints, membership, timer, {"test", "s3cret"}};
  kj::Promise<void> serving = serve(*listener);

  FailureDetector detector;
  NodePool pool{io.provider->getNetwork(), timer, detector, "test", "s3cret", limits.maxValueBytes};

  kj::Own<kj::ConnectionReceiver> listen(uint port) {
    auto where = "127.0.0.1:" + std::to_string(port);
    return io.provider->getNetwork().parseAddress(where).wait(io.waitScope)->listen();
  }

  kj::Promise<void> serve(kj::ConnectionReceiver& on) {
    return dynkv::serve(on, [this]() { return service.connect(); }, AcceptOptions{readerOptionsFor(limits.maxValueBytes)})
        .eagerlyEvaluate([](kj::Exception&& e) { KJ_LOG(ERROR, "serving failed", e); });
  }

  kj::Promise<void> ping(NodePool& through, const std::string& to) {
    auto call = through.node(to).then([](wire::Node::Client node) {
      auto request = node.pingRequest();
      request.setMapVersion(1);
      return request.send().ignoreResult();
    });
    return timer.timeoutAfter(DEADLINE, kj::mv(call));
  }

  kj::Exception failureOf(kj::Promise<void> call) {
    // The exception the call fails with; fails the test if it succeeds.
    kj::Maybe<kj::Exception> failure;
    call.then([]() { FAIL("the call succeeded"); },
              [&failure](kj::Exception&& e) { failure = kj::mv(e); })
        .wait(io.waitScope);
    KJ_IF_MAYBE (e, failure) {
      return kj::mv(*e);
    }
    KJ_UNREACHABLE;
  }
};

TEST_CASE("node pool: a call succeeds, and a success clears the node's suspicion") {
  Fixture f;
  f.pool.reportTimeout(f.address);
  CHECK(f.pool.isSuspect(f.address));

  f.ping(f.pool, f.address).wait(f.io.waitScope);
  f.pool.reportSuccess(f.address);
  CHECK_FALSE(f.pool.isSuspect(f.address));
}

TEST_CASE("node pool: replica calls over the pool report their own success") {
  Fixture f;
  StorageKey key{f.map->partitionOf(keyHash("", "cart")), "", "cart"};
  auto object = coordinatePut(Object{}, Actor{NODE, 1}, {}, std::string("milk"), 10);
  f.store.replicate(key, object).wait(f.io.waitScope);

  uint64_t newestVersion = 0;
  PooledReplicas replicas(f.pool, f.limits, [&](uint64_t v) { newestVersion = v; });
  f.pool.reportTimeout(f.address);
  auto& node = f.map->nodes()[0];
  ReplicaKey replicaKey{f.map->version(), "", "cart"};
  auto reply = replicas.get(node, replicaKey).wait(f.io.waitScope);

  auto* copy = std::get_if<std::optional<Object>>(&reply);
  REQUIRE(copy != nullptr);
  CHECK(*copy == object);
  CHECK(newestVersion == f.map->version());  // every reply's map version is noted
  CHECK_FALSE(replicas.suspect(node));       // the answer cleared the earlier timeout
}

TEST_CASE("node pool: a closed port fails as DISCONNECTED; the node is suspect until it answers") {
  Fixture f;
  auto closed = f.listen(0);
  auto port = closed->getPort();
  auto address = "127.0.0.1:" + std::to_string(port);
  closed = nullptr;  // nobody listens there now: connecting is refused

  auto e = f.failureOf(f.ping(f.pool, address));
  CHECK(e.getType() == kj::Exception::Type::DISCONNECTED);
  f.pool.reportFailure(address, e);
  CHECK(f.pool.isSuspect(address));

  // The node comes back on its port: the next call connects afresh, and its success clears
  // the suspicion at once (without waiting out the backoff).
  auto back = f.listen(port);
  auto serving = f.serve(*back);
  f.ping(f.pool, address).wait(f.io.waitScope);
  f.pool.reportSuccess(address);
  CHECK_FALSE(f.pool.isSuspect(address));
}

TEST_CASE("node pool: a connection the server dropped is replaced on the next call") {
  Fixture f;
  f.ping(f.pool, f.address).wait(f.io.waitScope);

  // The node drops every connection (the serve loop owns them), as a restarted node would.
  f.serving = nullptr;
  f.io.waitScope.poll();  // the pool sees its connection close
  f.serving = f.serve(*f.listener);

  f.ping(f.pool, f.address).wait(f.io.waitScope);
}

TEST_CASE("node pool: a wrong cluster secret or name is refused with a message saying so") {
  Fixture f;
  NodePool intruder{f.io.provider->getNetwork(), f.timer, f.detector, "test", "guess",
                    f.limits.maxValueBytes};
  auto e = f.failureOf(f.ping(intruder, f.address));
  CHECK(e.getType() == kj::Exception::Type::FAILED);
  CHECK_THAT(e.getDescription().cStr(), Contains("authentication failed: wrong cluster secret"));
  CHECK_THAT(e.getDescription().cStr(), !Contains("s3cret"));

  NodePool stranger{f.io.provider->getNetwork(), f.timer, f.detector, "other", "s3cret",
                    f.limits.maxValueBytes};
  auto wrongCluster = f.failureOf(f.ping(stranger, f.address));
  CHECK_THAT(wrongCluster.getDescription().cStr(), Contains("wrong cluster"));
}

}  // namespace
}  // namespace dynkv::storaged

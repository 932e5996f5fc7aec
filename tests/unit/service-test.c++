// storaged's RPC service in-process, over kj::newTwoWayPipe() with the same receive limits
// as the daemon: authentication, the data calls, and what bad input gets back.
#include <catch2/catch.hpp>
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/timer.h>

#include <string>

#include "authentication.h"
#include "codec.h"
#include "driven-admission.h"
#include "membership.h"
#include "protocol-version.h"
#include "request-age.h"
#include "service.h"
#include "hash-trees.h"
#include "versioned-store.h"

namespace dynkv::storaged {
namespace {

struct Fixture {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::Own<StorageEngine> engine = newMemoryEngine();
  Limits limits;
  GroupCommit commits{*engine};
  HintStore hints{commits, limits};
  HashTrees trees{*engine, limits};
  VersionedStore store{commits, hints, trees, Actor{1, 1}, limits};
  NodeInfo self{nodeIdFor("127.0.0.1:1"), "127.0.0.1:1", "127.0.0.1:1", "", 1};
  kj::Own<Membership> membership = newStaticMembership(self, {}, 4);
  DrivenAdmission admission{io.waitScope, AdmissionOptions{}};
  // Driven by the tests that need a failed authentication's penalty to pass; no other test waits
  // on it.
  kj::TimerImpl timer{kj::origin<kj::TimePoint>()};
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  capnp::TwoPartyVatNetwork serverNetwork{*pipe.ends[0], capnp::rpc::twoparty::Side::SERVER,
                                          readerOptionsFor(limits.maxValueBytes)};
  Service service{store, hints, *membership, timer, options()};
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> server =
      capnp::makeRpcServer(serverNetwork, service.connect());
  capnp::TwoPartyClient client{*pipe.ends[1]};

  ServiceOptions options() {
    ServiceOptions o{"test", "s3cret"};
    o.admission = &admission.admission;
    return o;
  }

  wire::Gateway::Client gateway() { return client.bootstrap().castAs<wire::Gateway>(); }

  kj::Promise<void> authenticate(const char* secret) { return authenticate(client, secret); }

  kj::Promise<void> authenticate(capnp::TwoPartyClient& on, const char* secret) {
    // Succeeds once the gateway grants `on` a Node that answers.
    auto req = on.bootstrap().castAs<wire::Gateway>().authenticateRequest();
    req.setCluster("test");
    req.setSecret(asData(secret));
    auto getView = req.send().getNode().getViewRequest();
    return getView.send().ignoreResult();
  }

  void servePenalty() {
    timer.advanceTo(timer.now() + AuthenticationGuard::FAILURE_PENALTY_MILLIS * kj::MILLISECONDS);
  }

  wire::Node::Client node(uint64_t senderClock = 0) {
    // A new connection's Node; `senderClock` is the clock the sender names (0: none).
    auto req = gateway().authenticateRequest();
    req.setCluster("test");
    req.setSecret(asData("s3cret"));
    req.setClock(senderClock);
    return req.send().getNode();
  }
};

void setKey(wire::Key::Builder key, std::string_view k) {
  key.setNamespace(asData(""));
  key.setKey(asData(k));
}

struct OtherConnection {
  // A second connection to the fixture's service, as another client's would be.
  explicit OtherConnection(Fixture& f)
      : serverNetwork(*pipe.ends[0], capnp::rpc::twoparty::Side::SERVER,
                      readerOptionsFor(f.limits.maxValueBytes)),
        server(capnp::makeRpcServer(serverNetwork, f.service.connect())),
        client(*pipe.ends[1]) {}

  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  capnp::TwoPartyVatNetwork serverNetwork;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> server;
  capnp::TwoPartyClient client;
};

struct RoleConnection {
  // A connection whose TLS certificate said `role` (the accept loop reads it; roles.h).
  RoleConnection(Fixture& f, Role role)
      : serverNetwork(*pipe.ends[0], capnp::rpc::twoparty::Side::SERVER,
                      readerOptionsFor(f.limits.maxValueBytes)),
        server(capnp::makeRpcServer(serverNetwork, f.service.connect(nullptr, role))),
        client(*pipe.ends[1]) {}

  capnp::Response<wire::Gateway::AuthenticateResults> authenticate(kj::WaitScope& waitScope) {
    auto req = client.bootstrap().castAs<wire::Gateway>().authenticateRequest();
    req.setCluster("test");
    req.setSecret(asData("s3cret"));
    return req.send().wait(waitScope);
  }

  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  capnp::TwoPartyVatNetwork serverNetwork;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> server;
  capnp::TwoPartyClient client;
};

std::string failureOf(kj::Promise<void>& promise, kj::WaitScope& waitScope) {
  // The description of the error `promise` fails with; fails the test if it succeeds.
  try {
    promise.wait(waitScope);
  } catch (const kj::Exception& e) {
    return e.getDescription().cStr();
  }
  FAIL("expected the call to fail");
  return "";
}

TEST_CASE("service: the gateway grants nothing without the right cluster and secret") {
  Fixture f;
  auto wrongCluster = f.gateway().authenticateRequest();
  wrongCluster.setCluster("other");
  wrongCluster.setSecret(asData("s3cret"));
  CHECK_THROWS_WITH(wrongCluster.send().wait(f.io.waitScope), Catch::Contains("wrong cluster"));

  auto wrongSecret = f.authenticate("guess");
  CHECK_FALSE(wrongSecret.poll(f.io.waitScope));
  f.servePenalty();
  CHECK_THAT(failureOf(wrongSecret, f.io.waitScope), Catch::Contains("wrong cluster secret"));
}

TEST_CASE("service: over TLS a certificate's role decides the capabilities handed out") {
  Fixture f;
  auto& ws = f.io.waitScope;
  RoleConnection client(f, Role::CLIENT);
  auto granted = client.authenticate(ws);
  granted.getNode().getViewRequest().send().wait(ws);  // data: yes
  auto gossip = granted.getPeer().gossipRequest().send().ignoreResult();
  CHECK_THAT(failureOf(gossip, ws),
             Catch::Contains("permission denied: node-to-node calls") &&
                 Catch::Contains("need a certificate with role node; this caller's role is "
                                 "client"));
  auto status = granted.getAdmin().statusRequest().send().ignoreResult();
  CHECK_THAT(failureOf(status, ws), Catch::Contains("role admin; this caller's role is client"));

  RoleConnection admin(f, Role::ADMIN);
  auto operatorCaps = admin.authenticate(ws);
  operatorCaps.getAdmin().nodeStatsRequest().send().wait(ws);
  operatorCaps.getNode().getViewRequest().send().wait(ws);
  auto adminGossip = operatorCaps.getPeer().gossipRequest().send().ignoreResult();
  CHECK_THAT(failureOf(adminGossip, ws), Catch::Contains("this caller's role is admin"));

  RoleConnection nobody(f, Role::NONE);
  CHECK_THROWS_WITH(nobody.authenticate(ws),
                    Catch::Contains("permission denied: the certificate's common name names "
                                    "no role"));
}

TEST_CASE("service: a caller of another protocol version is refused, naming both") {
  Fixture f;
  auto newer = f.gateway().authenticateRequest();
  newer.setCluster("test");
  newer.setSecret(asData("s3cret"));
  newer.setProtocol(PROTOCOL_VERSION + 1);
  auto refused = newer.send().ignoreResult();
  CHECK_THAT(failureOf(refused, f.io.waitScope),
             Catch::EndsWith(*protocolMismatch(PROTOCOL_VERSION + 1, "this node", "the client")));

  // No version (an older build's request) is protocol 1; the answer names the node's.
  auto unversioned = f.gateway().authenticateRequest();
  unversioned.setCluster("test");
  unversioned.setSecret(asData("s3cret"));
  auto granted = unversioned.send().wait(f.io.waitScope);
  CHECK(granted.getProtocol() == PROTOCOL_VERSION);
}

TEST_CASE("service: a wrong secret is answered only after the penalty, naming neither secret") {
  Fixture f;
  auto wrong = f.authenticate("offered-guess-9b2e");
  CHECK_FALSE(wrong.poll(f.io.waitScope));
  f.timer.advanceTo(f.timer.now() +
                    (AuthenticationGuard::FAILURE_PENALTY_MILLIS - 1) * kj::MILLISECONDS);
  CHECK_FALSE(wrong.poll(f.io.waitScope));  // the node answers nothing before the penalty ends
  f.timer.advanceTo(f.timer.now() + 1 * kj::MILLISECONDS);
  REQUIRE(wrong.poll(f.io.waitScope));
  auto failure = failureOf(wrong, f.io.waitScope);
  CHECK_THAT(failure, Catch::Contains("authentication failed: wrong cluster secret"));
  CHECK_THAT(failure, !Catch::Contains("s3cret") && !Catch::Contains("9b2e"));

  // The penalty served, the right secret is granted on the same connection at once.
  auto right = f.authenticate("s3cret");
  CHECK_NOTHROW(right.wait(f.io.waitScope));
}

TEST_CASE("service: while a wrong secret waits out its penalty, the connection compares none") {
  // Pipelining guesses on one connection buys nothing: even the right secret is refused, at
  // once, until the failed attempt has been answered.
  Fixture f;
  auto wrong = f.authenticate("offered-guess-9b2e");
  auto right = f.authenticate("s3cret");
  REQUIRE(right.poll(f.io.waitScope));
  auto refusal = failureOf(right, f.io.waitScope);
  CHECK_THAT(refusal, Catch::Contains("authentication refused") &&
                          Catch::Contains("still being answered"));
  CHECK_THAT(refusal, !Catch::Contains("s3cret") && !Catch::Contains("9b2e"));
  CHECK_FALSE(wrong.poll(f.io.waitScope));

  f.servePenalty();
  CHECK_THAT(failureOf(wrong, f.io.waitScope), Catch::Contains("wrong cluster secret"));
  CHECK_NOTHROW(f.authenticate("s3cret").wait(f.io.waitScope));
}

TEST_CASE("service: a connection that fails three times is refused for good; others are served") {
  Fixture f;
  for (uint32_t i = 0; i < AuthenticationGuard::MAX_FAILURES; i++) {
    auto wrong = f.authenticate("offered-guess-9b2e");
    CHECK_FALSE(wrong.poll(f.io.waitScope));
    f.servePenalty();
    CHECK_THAT(failureOf(wrong, f.io.waitScope), Catch::Contains("wrong cluster secret"));
  }
  auto right = f.authenticate("s3cret");
  REQUIRE(right.poll(f.io.waitScope));  // refused at once, without a comparison
  auto refusal = failureOf(right, f.io.waitScope);
  CHECK_THAT(refusal, Catch::Contains("too many failed attempts on this connection"));
  CHECK_THAT(refusal, !Catch::Contains("s3cret") && !Catch::Contains("9b2e"));

  // Another client's connection to the same node is served as usual, without waiting.
  OtherConnection other(f);
  auto granted = f.authenticate(other.client, "s3cret");
  REQUIRE(granted.poll(f.io.waitScope));
  CHECK_NOTHROW(granted.wait(f.io.waitScope));
}

TEST_CASE("service: coordinatePut then get returns the stored version and the map version") {
  Fixture f;
  auto node = f.node();
  auto put = node.coordinatePutRequest();
  setKey(put.initKey(), "k");
  put.setValue(asData("v"));
  auto putResponse = put.send().wait(f.io.waitScope);
  CHECK(putResponse.getMapVersion() == 1);
  CHECK(putResponse.getObject().getSiblings().size() == 1);

  auto get = node.getRequest();
  get.setMapVersion(0);  // an older map still gets an answer, and learns the newer version
  setKey(get.initKey(), "k");
  auto response = get.send().wait(f.io.waitScope);
  CHECK(response.getFound());
  CHECK(response.getMapVersion() == 1);
  auto object = decodeObject(response.getObject(), f.limits);
  REQUIRE(object.siblings.size() == 1);
  CHECK(*object.siblings[0].value == "v");
}

TEST_CASE("service: a coordinatePut read after its sender gave up is refused, minting nothing") {
  // The sender stamps each request with its monotonic clock; this one waited 10 s longer than
  // the connection's first (as behind a paused node's socket), while the sender waits 1 s.
  Fixture f;
  auto node = f.node();
  int64_t now = monotonicMicros();
  auto put = [&](wire::Node::Client& to, const char* key, const char* value, int64_t sentAt) {
    auto request = to.coordinatePutRequest();
    setKey(request.initKey(), key);
    request.setValue(asData(value));
    request.setSentAtMicros(sentAt);
    request.setPatienceMicros(1'000'000);
    return request.send();
  };
  put(node, "k", "fresh", now).wait(f.io.waitScope);
  CHECK_THROWS_WITH(put(node, "k", "stale", now - 10'000'000).wait(f.io.waitScope),
                    Catch::Contains("stale request") && Catch::Contains("1000 ms"));

  auto get = node.getRequest();
  setKey(get.initKey(), "k");
  auto object = decodeObject(get.send().wait(f.io.waitScope).getObject(), f.limits);
  REQUIRE(object.siblings.size() == 1);
  CHECK(*object.siblings[0].value == "fresh");

  // A Node whose sender names no clock measures that connection's requests alone: the first
  // sets its floor.
  auto other = f.node();
  CHECK_NOTHROW(put(other, "k2", "v", now - 10'000'000).wait(f.io.waitScope));
}

TEST_CASE("service: a sender's new connection is measured on its clock, so a first request "
          "read late is refused too") {
  // A paused node's socket queues a fresh connection's first request; the sender gives up and
  // asks another replica. Its earlier connections have set the floor of its clock.
  Fixture f;
  int64_t now = monotonicMicros();
  auto put = [&](wire::Node::Client to, const char* key, int64_t sentAt) {
    auto request = to.coordinatePutRequest();
    setKey(request.initKey(), key);
    request.setValue(asData("v"));
    request.setSentAtMicros(sentAt);
    request.setPatienceMicros(1'000'000);
    return request.send().ignoreResult();
  };
  put(f.node(7), "a", now).wait(f.io.waitScope);
  auto late = put(f.node(7), "b", now - 10'000'000);
  CHECK_THAT(failureOf(late, f.io.waitScope), Catch::Contains("stale request"));
  // Another sender's clock has a floor of its own.
  CHECK_NOTHROW(put(f.node(8), "c", now - 10'000'000).wait(f.io.waitScope));
}

TEST_CASE("service: a replicated copy read after its sender gave up is refused, storing nothing") {
  // Held back in a cut-off link, a copy could land after a delete that covered it had been
  // collected everywhere, and bring the value back.
  Fixture f;
  auto node = f.node();
  int64_t now = monotonicMicros();
  auto put = node.coordinatePutRequest();
  setKey(put.initKey(), "source");
  put.setValue(asData("old"));
  auto object = put.send().wait(f.io.waitScope);
  auto copy = [&](const char* key, int64_t sentAt) {
    auto request = node.replicateRequest();
    setKey(request.initKey(), key);
    request.setObject(object.getObject());
    request.setSentAtMicros(sentAt);
    request.setPatienceMicros(1'000'000);
    return request.send();
  };
  copy("fresh", now).wait(f.io.waitScope);
  CHECK_THROWS_WITH(copy("late", now - 10'000'000).wait(f.io.waitScope),
                    Catch::Contains("stale request") && Catch::Contains("not stored here"));
  auto get = [&](const char* key) {
    auto request = node.getRequest();
    setKey(request.initKey(), key);
    return request.send().wait(f.io.waitScope).getFound();
  };
  CHECK(get("fresh"));
  CHECK(!get("late"));
}

TEST_CASE("service: each replica call is a foreground sample for admission control") {
  Fixture f;
  auto node = f.node();
  auto put = node.coordinatePutRequest();
  setKey(put.initKey(), "k");
  put.setValue(asData("v"));
  auto stored = put.send().wait(f.io.waitScope);

  auto replicate = node.replicateRequest();
  setKey(replicate.initKey(), "copy");
  replicate.setObject(stored.getObject());
  replicate.send().wait(f.io.waitScope);

  auto get = node.getRequest();
  setKey(get.initKey(), "k");
  get.send().wait(f.io.waitScope);

  f.admission.windows(1);
  CHECK(f.admission.admission.stats().operationSamples == 3);
}

TEST_CASE("service: oversized keys and values are refused, naming the limit, storing nothing") {
  Fixture f;
  auto node = f.node();
  auto bigKey = node.coordinatePutRequest();
  setKey(bigKey.initKey(), std::string(f.limits.maxKeyBytes + 1, 'k'));
  bigKey.setValue(asData("v"));
  CHECK_THROWS_WITH(bigKey.send().wait(f.io.waitScope), Catch::Contains("maxKeyBytes"));

  auto bigValue = node.coordinatePutRequest();
  setKey(bigValue.initKey(), "k");
  std::string value(f.limits.maxValueBytes + 1, 'v');
  bigValue.setValue(asData(value));
  CHECK_THROWS_WITH(bigValue.send().wait(f.io.waitScope), Catch::Contains("maxValueBytes"));

  auto get = node.getRequest();
  setKey(get.initKey(), "k");
  CHECK_FALSE(get.send().wait(f.io.waitScope).getFound());
}

TEST_CASE("service: a malformed replicated object is rejected and nothing is stored") {
  Fixture f;
  auto node = f.node();
  auto req = node.replicateRequest();
  setKey(req.initKey(), "k");
  auto object = req.initObject();
  // A sibling whose dot the object's version vector does not cover.
  auto sibling = object.initSiblings(1)[0];
  sibling.getDot().initActor().setNode(9);
  sibling.getDot().setCounter(3);
  sibling.setValue(asData("x"));
  CHECK_THROWS_WITH(req.send().wait(f.io.waitScope), Catch::Contains("does not cover"));

  auto get = node.getRequest();
  setKey(get.initKey(), "k");
  CHECK_FALSE(get.send().wait(f.io.waitScope).getFound());
}

TEST_CASE("service: a hint for a node that is not a member is refused, nothing stored") {
  Fixture f;
  auto node = f.node();
  auto mapVersion = f.membership->current()->version();
  auto hinted = [&](uint64_t owner, uint64_t senderVersion) {
    auto req = node.replicateRequest();
    setKey(req.initKey(), "k");
    req.setHintFor(owner);
    req.setMapVersion(senderVersion);
    encodeObject(coordinatePut(Object{}, Actor{9, 1}, {}, std::string("v"), 10),
                 req.initObject());
    return req.send().ignoreResult();
  };
  CHECK_THROWS_WITH(
      hinted(777, mapVersion).wait(f.io.waitScope),
      Catch::Contains("invalid argument: a hint for node 777, which is not a member"));
  CHECK(f.hints.hintCount() == 0);

  // A member is accepted, and so is a node the sender's newer map may have added.
  hinted(f.self.id, mapVersion).wait(f.io.waitScope);
  hinted(778, mapVersion + 1).wait(f.io.waitScope);
  CHECK(f.hints.hintCount() == 2);
}

TEST_CASE("service: a message over the receive limit is refused, not buffered") {
  Fixture f;
  auto node = f.node();
  auto req = node.replicateRequest();
  setKey(req.initKey(), "k");
  auto siblings = req.initObject().initSiblings(Limits::MAX_SIBLINGS + 1);
  std::string value(f.limits.maxValueBytes, 'v');
  for (auto s : siblings) s.setValue(asData(value));
  CHECK_THROWS(req.send().wait(f.io.waitScope));
}

TEST_CASE("service: getView hands out the partition map and the limits") {
  Fixture f;
  auto response = f.node().getViewRequest().send().wait(f.io.waitScope);
  auto map = decodePartitionMap(response.getMap());
  CHECK(map.nodes().size() == 1);
  CHECK(map.partitionCount() == 16);
  CHECK(response.getLimits().getMaxKeyBytes() == f.limits.maxKeyBytes);
}

}  // namespace
}  // namespace dynkv::storaged

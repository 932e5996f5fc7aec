// Server-driven coordination in one process: three storaged services on loopback, one of them
// coordinating on a caller's behalf (Node.coordinateGet / coordinateWrite) with its own replica
// answered from its store and the other two reached over its pool.
#include "server-driven.h"

#include <kj/async-io.h>
#include <kj/debug.h>
#include <kj/timer.h>

#include <catch2/catch.hpp>

#include "admission.h"
#include "codec.h"
#include "hash.h"
#include "in-process-node.h"
#include "node-pool.h"

namespace dynkv::storaged {
namespace {

using Catch::Matchers::StartsWith;
using ErrorKind = wire::Node::CoordinationError::Kind;

constexpr auto DEADLINE = 30 * kj::SECONDS;

struct Fixture {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::Timer& timer = io.provider->getTimer();
  Limits limits;
  InProcessNode a{io, 1, limits}, b{io, 2, limits}, c{io, 3, limits};
  MapSnapshot map = std::make_shared<const PartitionMap>(PartitionMap::build(
      {NodeInfo{a.id, "a", a.address, "", 1}, NodeInfo{b.id, "b", b.address, "", 1},
       NodeInfo{c.id, "c", c.address, "", 1}},
      4, 1));

  // Node a coordinates, over a pool of its own; the caller has another.
  FailureDetector aDetector;  // node a's, as storaged has one per process
  NodePool aPeers{io.provider->getNetwork(), timer, aDetector, "test", "s3cret", limits.maxValueBytes};
  // Node a's admission control, its windows on a timer of the test's (operations are timed on
  // the real clock: the test counts them, it does not weigh them).
  kj::TimerImpl admissionTimer{kj::origin<kj::TimePoint>()};
  BackgroundAdmission admission{admissionTimer, AdmissionOptions{}};
  kj::Promise<void> admissionLoop = admission.run().eagerlyEvaluate(nullptr);
  kj::Own<ServerDriven> serverDriven;
  FailureDetector callerDetector;
  NodePool caller{io.provider->getNetwork(), timer, callerDetector, "test", "s3cret",
                  limits.maxValueBytes};

  Fixture() {
    // Node a coordinates, routing by the same ring as it serves by.
    a.membership = kj::heap<FixedMembership>(map);
    serverDriven =
        kj::heap<ServerDriven>(a.store, a.hints, *a.membership, nullptr, aPeers, timer, &admission);
    a.options.serverDriven = serverDriven.get();
    a.serve();
    b.serve(map);
    c.serve(map);
  }

  struct Written {
    ErrorKind error;
    std::string message;
    std::string context;
  };

  Written write(const std::string& ns, const std::string& key, std::optional<std::string> value,
                const std::string& context = "",
                wire::NamespaceKind kind = wire::NamespaceKind::VECTOR_CLOCK, uint32_t w = 0) {
    auto call = caller.node(a.address).then([&](wire::Node::Client node) {
      auto request = node.coordinateWriteRequest();
      request.setMapVersion(map->version());
      request.initKey().setNamespace(asData(ns));
      request.getKey().setKey(asData(key));
      request.initCall().setKind(kind);
      request.getCall().setW(w);
      if (value) {
        request.setValue(asData(*value));
      } else {
        request.setTombstone(true);
      }
      request.setContext(asData(context));
      return request.send();
    });
    auto response = timer.timeoutAfter(DEADLINE, kj::mv(call)).wait(io.waitScope);
    return Written{response.getError().getKind(), response.getError().getMessage(),
                   std::string(asStringView(response.getContext()))};
  }

  struct Read {
    ErrorKind error;
    std::vector<std::string> values;  // tombstones as "<deleted>"
    std::string context;
  };

  Read get(const std::string& ns, const std::string& key,
           wire::NamespaceKind kind = wire::NamespaceKind::VECTOR_CLOCK) {
    auto call = caller.node(a.address).then([&](wire::Node::Client node) {
      auto request = node.coordinateGetRequest();
      request.setMapVersion(map->version());
      request.initKey().setNamespace(asData(ns));
      request.getKey().setKey(asData(key));
      request.initCall().setKind(kind);
      request.getCall().setR(3);
      return request.send();
    });
    auto response = timer.timeoutAfter(DEADLINE, kj::mv(call)).wait(io.waitScope);
    Read read{response.getError().getKind(), {}, std::string(asStringView(response.getContext()))};
    for (auto sibling : response.getSiblings()) {
      read.values.push_back(sibling.getDeleted() ? "<deleted>"
                                                 : std::string(asStringView(sibling.getValue())));
    }
    return read;
  }

  AdmissionStats endAdmissionWindow() {
    for (uint32_t i = 0; i < BackgroundAdmission::PROBES_PER_WINDOW; i++) {
      admissionTimer.advanceTo(admissionTimer.now() + BackgroundAdmission::PROBE_INTERVAL);
      io.waitScope.poll();
    }
    return admission.stats();
  }

  bool holds(InProcessNode& node, const std::string& ns, const std::string& key, const std::string& value) {
    auto object = node.store.get(StorageKey{map->partitionOf(keyHash(ns, key)), ns, key});
    if (!object) return false;
    for (auto& sibling : object->siblings) {
      if (sibling.value == value) return true;
    }
    return false;
  }
};

TEST_CASE("server-driven: a write coordinated by a node reaches its own store and its peers") {
  Fixture f;
  auto written = f.write("", "cart", std::string("milk"), "", wire::NamespaceKind::VECTOR_CLOCK, 3);
  REQUIRE(written.error == ErrorKind::NONE);
  CHECK_FALSE(written.context.empty());
  CHECK(f.holds(f.a, "", "cart", "milk"));
  CHECK(f.holds(f.b, "", "cart", "milk"));
  CHECK(f.holds(f.c, "", "cart", "milk"));

  auto read = f.get("", "cart");
  REQUIRE(read.error == ErrorKind::NONE);
  CHECK(read.values == std::vector<std::string>{"milk"});
}

TEST_CASE("server-driven: the coordinator's own replica calls are foreground samples") {
  Fixture f;
  REQUIRE(f.write("", "cart", std::string("milk"), "", wire::NamespaceKind::VECTOR_CLOCK, 3).error ==
          ErrorKind::NONE);
  REQUIRE(f.get("", "cart").error == ErrorKind::NONE);  // R = 3
  // Node a stored the write (as its coordinator or as a replica) and answered the read.
  CHECK(f.endAdmissionWindow().operationSamples == 2);
}

TEST_CASE("server-driven: a write with a read's context supersedes what the read saw") {
  Fixture f;
  REQUIRE(f.write("", "cart", std::string("milk")).error == ErrorKind::NONE);
  REQUIRE(f.write("", "cart", std::string("eggs")).error == ErrorKind::NONE);  // blind: a sibling
  auto both = f.get("", "cart");
  CHECK(both.values.size() == 2);

  auto merged = f.write("", "cart", std::string("milk, eggs"), both.context);
  REQUIRE(merged.error == ErrorKind::NONE);
  CHECK(f.get("", "cart").values == std::vector<std::string>{"milk, eggs"});
}

TEST_CASE("server-driven: versioning comes with each request, for any number of LWW namespaces") {
  Fixture f;
  for (int i = 0; i < 20; i++) {
    auto ns = "lww-" + std::to_string(i);
    auto written = f.write(ns, "k", std::string("v") + std::to_string(i), "",
                           wire::NamespaceKind::LAST_WRITE_WINS);
    REQUIRE(written.error == ErrorKind::NONE);
    auto read = f.get(ns, "k", wire::NamespaceKind::LAST_WRITE_WINS);
    REQUIRE(read.error == ErrorKind::NONE);
    CHECK(read.values == std::vector<std::string>{"v" + std::to_string(i)});
  }
}

TEST_CASE("server-driven: a bad request is an error result naming the rule, not an exception") {
  Fixture f;
  auto tooMany = f.write("", "cart", std::string("milk"), "", wire::NamespaceKind::VECTOR_CLOCK, 4);
  CHECK(tooMany.error == ErrorKind::INVALID_ARGUMENT);
  CHECK_THAT(tooMany.message, StartsWith("invalid argument: quorum must satisfy"));

  auto badContext = f.write("", "cart", std::string("milk"), "not a context");
  CHECK(badContext.error == ErrorKind::INVALID_ARGUMENT);
  CHECK_THAT(badContext.message, StartsWith("invalid argument: context is malformed"));

  auto tooLong = f.write("", std::string(f.limits.maxKeyBytes + 1, 'k'), std::string("v"));
  CHECK(tooLong.error == ErrorKind::INVALID_ARGUMENT);
}

TEST_CASE("server-driven: with a peer down, the write succeeds at W and the read at R") {
  Fixture f;
  f.c.serving = nullptr;
  f.c.listener = nullptr;  // c's port is closed: connecting to it is refused
  auto written = f.write("", "cart", std::string("milk"));  // W = 2: a and b
  REQUIRE(written.error == ErrorKind::NONE);
  CHECK(f.holds(f.a, "", "cart", "milk"));
  CHECK(f.holds(f.b, "", "cart", "milk"));

  auto call = f.caller.node(f.a.address).then([&](wire::Node::Client node) {
    auto request = node.coordinateGetRequest();
    request.setMapVersion(f.map->version());
    request.initKey().setKey(asData("cart"));
    return request.send();
  });
  auto response = f.timer.timeoutAfter(DEADLINE, kj::mv(call)).wait(f.io.waitScope);
  REQUIRE(response.getError().getKind() == ErrorKind::NONE);
  CHECK(response.getSiblings().size() == 1);
}

}  // namespace
}  // namespace dynkv::storaged

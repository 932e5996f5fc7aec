// Anti-entropy (the paper's section 4.7) in one process: storaged's services on loopback, each
// with the AntiEntropy that storaged/main.c++ wires (its own pool, versioned store and hash
// trees). The test writes straight into the stores to make replicas differ the way failures do,
// then has a node run its exchanges now (AntiEntropy::repair, what `dynkv admin repair` calls)
// and looks at what every replica holds afterwards.
#include "anti-entropy.h"

#include <kj/async-io.h>
#include <kj/debug.h>

#include <catch2/catch.hpp>
#include <map>
#include <optional>

#include "anti-entropy-codec.h"
#include "hash.h"
#include "in-process-node.h"
#include "node-pool.h"
#include "request-age.h"

namespace dynkv::storaged {
namespace {

constexpr uint32_t N = 3;
constexpr uint32_t PARTITION_BITS = 3;

// One node as storaged runs it: the in-process service plus its pool and anti-entropy.
struct Node {
  Node(kj::AsyncIoContext& io, uint64_t id, const Limits& limits)
      : host(io, id, limits),
        pool(io.provider->getNetwork(), io.provider->getTimer(), detector, "test", "s3cret",
             limits.maxValueBytes) {}

  void start(MapSnapshot map, kj::Timer& timer) {
    host.membership = kj::heap<FixedMembership>(map);
    AntiEntropyOptions options;
    options.replicas = N;
    antiEntropy = kj::heap<AntiEntropy>(host.store, host.trees, *host.membership, pool, timer,
                                        nullptr, options);
    host.options.antiEntropy = antiEntropy.get();
    host.serve();
  }

  InProcessNode host;
  FailureDetector detector;
  NodePool pool;
  kj::Own<AntiEntropy> antiEntropy;
};

struct Fixture {
  explicit Fixture(size_t nodes) {
    std::vector<NodeInfo> infos;
    for (size_t i = 0; i < nodes; i++) {
      this->nodes.push_back(kj::heap<Node>(io, i + 1, limits));
      auto& host = this->nodes.back()->host;
      infos.push_back(NodeInfo{host.id, "n" + std::to_string(i + 1), host.address, "", 1});
    }
    map = std::make_shared<const PartitionMap>(PartitionMap::build(infos, PARTITION_BITS, 1));
    for (auto& node : this->nodes) node->start(map, io.provider->getTimer());
  }

  kj::AsyncIoContext io = kj::setupAsyncIo();
  Limits limits;
  std::vector<kj::Own<Node>> nodes;
  MapSnapshot map;

  Node& node(uint64_t id) { return *nodes[id - 1]; }

  StorageKey key(const std::string& k) {
    return StorageKey{map->partitionOf(keyHash("", k)), "", k};
  }

  std::vector<uint64_t> replicas(const std::string& k) {
    return replicasOf(*map, key(k).partition, N);
  }

  // A key whose replicas are exactly `wanted` in preference order's first place (its primary)
  // or, with `notOn`, a key that node `notOn` is no replica of.
  std::string keyWithPrimary(uint64_t primary) {
    for (int i = 0;; i++) {
      auto k = "key-" + std::to_string(i);
      if (replicas(k)[0] == primary) return k;
    }
  }
  std::string keyNotOn(uint64_t id) {
    for (int i = 0;; i++) {
      auto k = "key-" + std::to_string(i);
      auto r = replicas(k);
      if (std::find(r.begin(), r.end(), id) == r.end()) return k;
    }
  }

  void store(uint64_t on, const std::string& k, const Object& object) {
    node(on).host.store.replicate(key(k), object).wait(io.waitScope);
  }

  std::optional<Object> held(uint64_t on, const std::string& k) {
    return node(on).host.store.ownCopies({encodeStorageKey(key(k))})[0];
  }

  AntiEntropy::Report repair(uint64_t on) {
    return node(on).antiEntropy->repair(std::nullopt).wait(io.waitScope);
  }
};

Object written(const Object& over, uint64_t actor, std::optional<std::string> value) {
  return coordinatePut(over, Actor{actor, 1}, over.vv, kj::mv(value), 1000);
}

TEST_CASE("anti-entropy: replicas that missed writes converge, and only what differs moves") {
  Fixture f(3);
  std::map<std::string, Object> everywhere;
  for (int i = 0; i < 300; i++) {
    auto k = "key-" + std::to_string(i);
    everywhere[k] = written({}, 1, std::string(100, 'v'));
    for (uint64_t n : {1, 2, 3}) f.store(n, k, everywhere[k]);
  }
  // Node 3 missed ten updates; nodes 1 and 2 missed three writes only node 3 took; node 2 missed
  // a delete only node 1 took.
  std::map<std::string, Object> expected = everywhere;
  for (int i = 0; i < 10; i++) {
    auto k = "key-" + std::to_string(i);
    expected[k] = written(everywhere[k], 1, std::string("newer"));
    for (uint64_t n : {1, 2}) f.store(n, k, expected[k]);
  }
  for (int i = 0; i < 3; i++) {
    auto k = "only-on-3-" + std::to_string(i);
    expected[k] = written({}, 3, std::string("x"));
    f.store(3, k, expected[k]);
  }
  expected["key-200"] = written(everywhere["key-200"], 1, std::nullopt);
  f.store(1, "key-200", expected["key-200"]);
  f.store(3, "key-200", expected["key-200"]);
  // And nodes 1 and 3 each took a different concurrent write to key-250: both copies change.
  auto one = written(everywhere["key-250"], 1, std::string("one"));
  auto three = written(everywhere["key-250"], 3, std::string("three"));
  f.store(1, "key-250", one);
  f.store(3, "key-250", three);
  expected["key-250"] = sync(one, three);
  REQUIRE(f.node(1).host.trees.digest() != f.node(3).host.trees.digest());

  auto report = f.repair(3);
  CHECK(report.exchanges == 2);
  CHECK(report.failed == 0);
  CHECK(report.message.empty());
  // Node 3 took ten updates and gave three writes to each of the others, and the delete to 2;
  // key-250 changed on both sides with node 1 (one key repaired), then went to node 2.
  CHECK(report.keysRepaired == 10 + 3 + 3 + 1 + 2);
  CHECK(report.segmentsDiffering <= 10 + 3 + 3 + 1 + 2);

  for (uint64_t n : {1, 2, 3}) {
    CHECK(f.node(n).host.trees.digest() == f.node(1).host.trees.digest());
    for (auto& [k, object] : expected) {
      auto copy = f.held(n, k);
      REQUIRE(copy);
      CHECK(*copy == object);
    }
  }
  // The replicas are equal now: another exchange finds nothing and moves no object.
  auto again = f.repair(1);
  CHECK(again.keysRepaired == 0);
  CHECK(again.segmentsDiffering == 0);
}

TEST_CASE("anti-entropy: a tombstone is collected only once every replica holds it") {
  Fixture f(3);
  auto k = f.keyWithPrimary(1);
  auto value = written({}, 2, std::string("old"));
  auto tombstone = written(value, 1, std::nullopt);
  f.store(1, k, tombstone);
  f.store(2, k, tombstone);
  f.store(3, k, value);  // node 3 missed the delete...
  f.node(3).host.down();  // ...and is down

  auto report = f.repair(1);
  CHECK(report.failed == 1);
  CHECK_FALSE(report.message.empty());
  CHECK(f.held(1, k) == tombstone);  // node 3 never said it holds it: kept
  CHECK(f.held(2, k) == tombstone);
  CHECK(f.node(1).antiEntropy->tombstonesReaped() == 0);

  f.node(3).host.up();
  f.node(1).pool.reportSuccess(f.node(3).host.address);
  f.repair(1);  // hands node 3 the tombstone; every replica now holds it: collected everywhere
  if (f.held(1, k)) f.repair(1);
  for (uint64_t n : {1, 2, 3}) {
    INFO("node " << n);
    CHECK_FALSE(f.held(n, k));  // gone, and the old value with it: nothing to come back
    CHECK(f.node(n).host.trees.tombstones() == 0);
  }
  CHECK(f.node(1).antiEntropy->tombstonesReaped() == 1);

  // A node that missed the delete cannot bring the value back once the tombstone is gone:
  // there is no replica left that holds the old value.
  auto report2 = f.repair(2);
  CHECK(report2.keysRepaired == 0);
  CHECK_FALSE(f.held(2, k));
}

TEST_CASE("anti-entropy: a newer write keeps its key when the tombstone under it is collected") {
  Fixture f(3);
  auto k = f.keyWithPrimary(1);
  auto tombstone = written(written({}, 2, std::string("old")), 1, std::nullopt);
  for (uint64_t n : {1, 2, 3}) f.store(n, k, tombstone);
  auto concurrent = written({}, 3, std::string("concurrent"));  // not seen by the delete
  f.store(3, k, concurrent);
  f.repair(1);
  f.repair(1);
  for (uint64_t n : {1, 2, 3}) {
    auto copy = f.held(n, k);
    REQUIRE(copy);  // not only a tombstone any more: nothing to collect
    bool hasConcurrent = false;
    for (auto& s : copy->siblings) hasConcurrent |= s.value == std::optional<std::string>("concurrent");
    CHECK(hasConcurrent);
  }
}

TEST_CASE("anti-entropy: a node that is no replica hands its copies over, then drops them") {
  Fixture f(4);
  auto k = f.keyNotOn(4);
  auto object = written({}, 4, std::string("kept by a fallback as data"));
  f.store(4, k, object);
  auto partition = f.key(k).partition;
  REQUIRE(f.node(4).host.trees.tree(partition) != nullptr);

  f.repair(4);
  for (auto replica : f.replicas(k)) {
    INFO("replica " << replica);
    CHECK(f.held(replica, k) == object);
  }
  CHECK_FALSE(f.held(4, k));
  CHECK(f.node(4).host.trees.tree(partition) == nullptr);
  CHECK(f.node(4).antiEntropy->partitionsDropped() == 1);
}

TEST_CASE("anti-entropy: tombstones wait while a node that is no replica still holds the key") {
  Fixture f(4);
  std::string k;
  for (int i = 0;; i++) {
    k = "key-" + std::to_string(i);
    auto r = f.replicas(k);
    if (r[0] == 1 && std::find(r.begin(), r.end(), 4) == r.end()) break;
  }
  auto value = written({}, 4, std::string("old, held by a former owner"));
  auto tombstone = written(value, 1, std::nullopt);
  for (auto replica : f.replicas(k)) f.store(replica, k, tombstone);
  f.store(4, k, value);

  f.repair(4);  // hands its copy over (the tombstone covers it) and drops it
  CHECK_FALSE(f.held(4, k));
  f.repair(1);  // the primary heard from node 4 just now: it keeps the tombstones for a while
  for (auto replica : f.replicas(k)) {
    INFO("replica " << replica);
    CHECK(f.held(replica, k) == tombstone);
  }
  CHECK(f.node(1).antiEntropy->tombstonesReaped() == 0);
}

TEST_CASE("anti-entropy: a round's exchange with a node exchanging with it already waits") {
  // Two exchanges between the same nodes at once would list and repair the same keys twice,
  // each side pushing what the other fetches: while node 1 exchanges with node 2, node 2's
  // round exchange is answered busy (and retried later); a transfer's or an operator's is not.
  Fixture f(2);
  for (int i = 0; i < 2000; i++) {
    f.store(1, "key-" + std::to_string(i), written({}, 1, std::string(100, 'v')));
  }
  auto toNode1 = f.node(2).pool.peer(f.node(1).host.address).wait(f.io.waitScope);
  auto busy = [&](uint64_t requester, bool deferrable) {
    auto request = toNode1.aeRootsRequest();
    request.setRequester(requester);
    request.setPartitions(asData(encodePartitions({0, 1})));
    request.setTreeSegments(4096);
    request.setDeferrable(deferrable);
    auto answer = request.send().wait(f.io.waitScope);
    if (answer.getBusy()) CHECK(answer.getRoots().size() == 0);
    return answer.getBusy();
  };
  CHECK_FALSE(busy(2, true));  // node 1 is exchanging with nobody

  auto repairing = f.node(1).antiEntropy->repair(std::nullopt);
  CHECK(busy(2, true));
  CHECK_FALSE(busy(2, false));  // a transfer's or an operator's exchange goes on
  // Node 1 has just answered node 2's exchange of these partitions with differing roots: a
  // round's exchange of them from node 3 waits (or both would repair the same keys here), an
  // operator's does not.
  CHECK(busy(3, true));
  CHECK_FALSE(busy(3, false));
  auto report = repairing.wait(f.io.waitScope);
  CHECK(report.failed == 0);
  CHECK(report.keysRepaired == 2000);
  CHECK_FALSE(busy(3, true));  // over (node 3's answered exchange was the last: its own goes on)

  // Node 2's own repair finds nothing left to do.
  CHECK(f.repair(2).keysRepaired == 0);
  CHECK(f.node(1).host.trees.digest() == f.node(2).host.trees.digest());
}

TEST_CASE("anti-entropy: a push read after its exchange gave up on it is refused, storing "
          "nothing") {
  // Held back in a cut-off link, a pushed copy could land after a delete that covered it had
  // been collected everywhere, and bring the value back: a push is stamped as it leaves, and
  // refused where it lands past half its sender's patience, as a replicate is.
  Fixture f(2);
  auto toNode2 = f.node(1).pool.peer(f.node(2).host.address).wait(f.io.waitScope);
  auto object = written({}, 1, std::string("pushed"));
  auto push = [&](const std::string& k, int64_t sentAt) {
    auto request = toNode2.aePushRequest();
    request.setEntries(asData(encodeEntries({KeyObject{encodeStorageKey(f.key(k)), object}})));
    request.setSentAtMicros(sentAt);
    request.setPatienceMicros(1'000'000);
    return request.send();
  };
  int64_t now = monotonicMicros();
  push("fresh", now).wait(f.io.waitScope);
  CHECK_THROWS_WITH(push("late", now - 10'000'000).wait(f.io.waitScope),
                    Catch::Contains("stale request") &&
                        Catch::Contains("the exchange that pushed it has ended"));
  CHECK(f.held(2, "fresh") == object);
  CHECK_FALSE(f.held(2, "late"));
}

TEST_CASE("anti-entropy: a peer's requests over the limits or naming what cannot exist are "
          "refused") {
  Fixture f(3);
  auto peer = f.node(1).pool.peer(f.node(2).host.address).wait(f.io.waitScope);

  std::vector<uint32_t> many;
  for (uint32_t p = 0; p <= AntiEntropy::MAX_PARTITIONS_PER_REQUEST; p++) many.push_back(p);
  auto tooMany = peer.aeRootsRequest();
  tooMany.setPartitions(asData(encodePartitions(many)));
  CHECK_THROWS_WITH(tooMany.send().wait(f.io.waitScope),
                    Catch::Contains("partitions per request"));

  auto noSuchNode = peer.aeChildrenRequest();
  noSuchNode.setNodes(asData(encodeTreeNodes({TreeNodeRef{0, 7, 0}})));
  CHECK_THROWS_WITH(noSuchNode.send().wait(f.io.waitScope), Catch::Contains("no such tree node"));

  auto garbled = peer.aeKeysRequest();
  garbled.setSegments(asData(std::string("\xff\xff\xff")));
  CHECK_THROWS_WITH(garbled.send().wait(f.io.waitScope), Catch::Contains("invalid argument"));

  auto badKey = peer.aeFetchRequest();
  badKey.setKeys(asData(encodeKeys({"x"})));
  CHECK_THROWS_WITH(badKey.send().wait(f.io.waitScope), Catch::Contains("storage key"));

  auto wrongPartition = peer.aeReapRequest();
  wrongPartition.setPartition(1);
  wrongPartition.initTombstones(1)[0].setKey(asData(encodeStorageKey(StorageKey{2, "", "k"})));
  CHECK_THROWS_WITH(wrongPartition.send().wait(f.io.waitScope),
                    Catch::Contains("another partition"));

  auto otherShape = peer.aeRootsRequest();
  otherShape.setPartitions(asData(encodePartitions({0})));
  otherShape.setTreeSegments(512);
  CHECK_THROWS_WITH(otherShape.send().wait(f.io.waitScope),
                    Catch::Contains("4096 segments per partition and the requester's 512"));

  // Still serving: roots that differ come back in full, equal ones as one flag.
  auto roots = peer.aeRootsRequest();
  roots.setPartitions(asData(encodePartitions({0})));
  roots.setTreeSegments(4096);
  roots.setRootsHash(combinedRoots({12345}));
  auto answer = roots.send().wait(f.io.waitScope);
  REQUIRE(!answer.getEqual());
  REQUIRE(answer.getRoots().size() == 1);
  auto same = peer.aeRootsRequest();
  same.setPartitions(asData(encodePartitions({0})));
  same.setTreeSegments(4096);
  same.setRootsHash(combinedRoots({answer.getRoots()[0]}));
  CHECK(same.send().wait(f.io.waitScope).getEqual());
}

}  // namespace
}  // namespace dynkv::storaged

// One anti-entropy exchange (common/coordinator/anti-entropy-exchange.h) between two in-memory
// replicas, answered step by step as storaged's shell answers them: it finds exactly the keys
// whose copies differ, costs what differs rather than what is stored, keeps every step within
// its limit, and vouches for a partition (covered()) only when it has seen the peer hold all
// this node held.
#include "anti-entropy-exchange.h"

#include <catch2/catch.hpp>
#include <kj/exception.h>
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "replica-fixture.h"

namespace dynkv {
namespace {

using Kind = Exchange::Step::Kind;

const Actor A{1, 1}, B{2, 1};
const uint64_t SALT = 0x5eed;

Replica filled(uint32_t partitions, size_t keys) {
  // The same `keys` keys in each partition, written once by A.
  Replica replica;
  for (uint32_t p = 0; p < partitions; p++) {
    for (size_t i = 0; i < keys; i++) replica.put(p, "k" + std::to_string(i), written({}, A, "v"));
  }
  return replica;
}

std::vector<uint32_t> upTo(uint32_t count) {
  std::vector<uint32_t> out;
  for (uint32_t p = 0; p < count; p++) out.push_back(p);
  return out;
}

void overwrite(Replica& replica, uint32_t partition, const std::string& key, const Actor& by) {
  // `by` writes a newer version over the replica's copy.
  replica.put(partition, key, written(*replica.find(partition, key), by, "newer"));
}

Exchange pastTheRoots(const Replica& local, const Replica& peer, uint32_t partitions) {
  // An exchange over partitions 0..partitions-1 whose roots the peer has answered.
  Exchange exchange(upTo(partitions), SALT, local.trees());
  exchange.rootsReceived(peer.roots(exchange.step().partitions));
  return exchange;
}

std::map<std::string, KeyRepair> differences(const Replica& local, const Replica& peer) {
  // The oracle: every key whose copies differ, compared object by object.
  std::map<std::string, KeyRepair> out;
  auto visit = [&](const Replica& from) {
    for (auto& [p, contents] : from.partitions()) {
      for (auto& [key, object] : contents) {
        auto mine = local.find(p, key), theirs = peer.find(p, key);
        if (mine && theirs && causalDigest(*mine) == causalDigest(*theirs)) continue;
        KeyRepair r{storageKey(p, key), {}, {}, {}};
        if (mine) r.local = causalDigest(*mine);
        if (theirs) r.peer = causalDigest(*theirs);
        r.needs = repairNeeds(mine ? std::optional<CausalSummary>(causalSummary(*mine)) : std::nullopt,
                              theirs ? std::optional<CausalSummary>(causalSummary(*theirs))
                                     : std::nullopt);
        out[r.key] = r;
      }
    }
  };
  visit(local);
  visit(peer);
  return out;
}

std::map<std::string, KeyRepair> repairsOf(const std::vector<Exchange::Step>& steps) {
  std::map<std::string, KeyRepair> out;
  for (auto& step : steps) {
    for (auto& r : step.repairs) {
      CHECK(out.count(r.key) == 0);  // each key handed over once
      out[r.key] = r;
    }
  }
  return out;
}

std::set<uint32_t> coveredPartitions(const Exchange& exchange) {
  std::set<uint32_t> out;
  for (auto& c : exchange.covered()) out.insert(c.partition);
  return out;
}

size_t count(const std::vector<Exchange::Step>& steps, Kind kind) {
  size_t n = 0;
  for (auto& s : steps) n += s.kind == kind ? 1 : 0;
  return n;
}

TEST_CASE("anti-entropy exchange: replicas that differ in a few keys repair exactly those keys") {
  auto local = filled(8, 200);
  auto peer = local;
  // Partition 1: newer here, newer there, concurrent writes on each side.
  overwrite(local, 1, "k3", A);
  overwrite(peer, 1, "k4", B);
  overwrite(local, 1, "k5", A);
  overwrite(peer, 1, "k5", B);
  // Partition 4: a delete on one side; a key each side lacks.
  local.put(4, "k9", coordinatePut(*local.find(4, "k9"), A, local.find(4, "k9")->vv,
                                   std::nullopt, 2000));
  local.put(4, "only-here", written({}, A, "x"));
  peer.put(4, "only-there", written({}, B, "y"));
  // Partition 6: this node lost a key; partition 8 is held by neither side.
  local.put(6, "k150", Object{});
  auto expected = differences(local, peer);
  REQUIRE(expected.size() == 7);
  uint64_t rootBefore1 = local.root(1);

  auto partitions = upTo(9);
  partitions.push_back(1);  // a duplicate is ignored
  Exchange exchange(partitions, SALT, local.trees());
  auto steps = runExchange(exchange, local, peer);

  REQUIRE(exchange.step().kind == Kind::DONE);
  CHECK(repairsOf(steps) == expected);
  // Versions move only the way they are missing: newer here is pushed, newer there fetched,
  // concurrent copies go both ways.
  CHECK(expected[storageKey(1, "k3")].needs == RepairNeeds{false, true});
  CHECK(expected[storageKey(1, "k4")].needs == RepairNeeds{true, false});
  CHECK(expected[storageKey(1, "k5")].needs == RepairNeeds{true, true});
  CHECK(expected[storageKey(4, "only-there")].needs == RepairNeeds{true, false});
  for (auto& step : steps) {
    for (size_t i = 1; i < step.repairs.size(); i++) {
      CHECK(step.repairs[i - 1].key < step.repairs[i].key);
    }
  }
  auto& stats = exchange.stats();
  CHECK(stats.partitionsCompared == 9);
  CHECK(stats.partitionsDiffering == 3);
  CHECK(stats.keysDiffering == 7);
  CHECK(stats.keysRepaired == 7);
  CHECK(stats.steps == steps.size());
  // Every partition is covered once the exchange is done, a differing one with this node's root
  // as it was compared (its copy of partition 1 has changed since: the ledger will not rely on it).
  CHECK(coveredPartitions(exchange) == std::set<uint32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(exchange.covered().size() == 9);
  for (auto& c : exchange.covered()) {
    if (c.partition == 1) CHECK(c.root == rootBefore1);
  }
  CHECK(local.root(1) != rootBefore1);

  // The replicas now agree, and the next exchange sees it from the roots alone.
  for (uint32_t p = 0; p < 8; p++) CHECK(local.root(p) == peer.root(p));
  CHECK(differences(local, peer).empty());
  CHECK(local.find(4, "only-there") != nullptr);
  CHECK(peer.find(4, "only-here") != nullptr);
  CHECK(peer.find(4, "k9")->allTombstones());
  CHECK(local.find(1, "k5")->siblings.size() == 2);
  Exchange again(upTo(9), SALT + 1, local.trees());
  auto second = runExchange(again, local, peer);
  CHECK(second.size() == 1);
  CHECK(again.stats().partitionsDiffering == 0);
}

TEST_CASE("anti-entropy exchange: a coarser tree finds the same keys in fewer, larger segments") {
  // A ring of many partitions has trees of 512 or 64 segments (TreeShape::forPartitions()): the
  // walk is shorter, each listing longer, and what it finds the same.
  for (size_t levels : {size_t(3), size_t(4)}) {
    CAPTURE(levels);
    TreeShape shape(levels);
    Replica local(shape), peer(shape);
    for (uint32_t p = 0; p < 4; p++) {
      for (size_t i = 0; i < 300; i++) {
        auto object = written({}, A, "v");
        local.put(p, "k" + std::to_string(i), object);
        peer.put(p, "k" + std::to_string(i), object);
      }
    }
    overwrite(local, 1, "k3", A);
    overwrite(peer, 2, "k200", B);
    local.put(3, "only-here", written({}, A, "x"));
    auto expected = differences(local, peer);
    REQUIRE(expected.size() == 3);

    Exchange exchange(upTo(4), SALT, local.trees(), ExchangeLimits{}, shape);
    auto steps = runExchange(exchange, local, peer);
    REQUIRE(exchange.step().kind == Kind::DONE);
    CHECK(repairsOf(steps) == expected);
    size_t deepest = 0;
    for (auto& step : steps) {
      for (auto& node : step.nodes) deepest = std::max(deepest, size_t(node.level));
      for (auto& segment : step.segments) CHECK(segment.segment < shape.segments());
    }
    CHECK(deepest == shape.segmentLevel() - 1);
    CHECK(coveredPartitions(exchange) == std::set<uint32_t>{0, 1, 2, 3});
    for (uint32_t p = 0; p < 4; p++) CHECK(local.root(p) == peer.root(p));
  }
  // Trees of another shape than the exchange's are a caller's mistake, refused at once.
  Replica fine;
  fine.put(0, "k", written({}, A, "v"));
  CHECK_THROWS_AS(Exchange({0}, SALT, fine.trees(), ExchangeLimits{}, TreeShape(3)),
                  kj::Exception);
}

TEST_CASE("anti-entropy exchange: one hash stands for every root of a step") {
  auto local = filled(6, 20);
  auto peer = local;
  Exchange exchange(upTo(6), SALT, local.trees());
  REQUIRE(exchange.step().kind == Kind::ASK_ROOTS);
  CHECK(exchange.step().rootsHash == combinedRoots(peer.roots(exchange.step().partitions)));
  exchange.rootsEqual();
  CHECK(exchange.step().kind == Kind::DONE);
  CHECK(coveredPartitions(exchange) == std::set<uint32_t>{0, 1, 2, 3, 4, 5});
  // One partition differs: the hash does too, and the roots themselves are compared.
  overwrite(peer, 2, "k1", B);
  Exchange other(upTo(6), SALT, local.trees());
  CHECK(other.step().rootsHash != combinedRoots(peer.roots(other.step().partitions)));
  other.rootsReceived(peer.roots(other.step().partitions));
  CHECK(other.stats().partitionsDiffering == 1);
  CHECK(coveredPartitions(other) == std::set<uint32_t>{0, 1, 3, 4, 5});
}

TEST_CASE("anti-entropy exchange: identical replicas are done after the roots, all covered") {
  auto local = filled(10, 30);
  auto peer = local;
  // 10..11: held by neither side (an absent tree is an empty one).
  ExchangeLimits limits;
  limits.maxPartitionsPerStep = 4;
  Exchange exchange(upTo(12), SALT, local.trees(), limits);
  auto steps = runExchange(exchange, local, peer);
  REQUIRE(exchange.step().kind == Kind::DONE);
  REQUIRE(steps.size() == 3);  // 12 partitions, 4 a step
  for (auto& s : steps) {
    CHECK(s.kind == Kind::ASK_ROOTS);
    CHECK(s.partitions.size() == 4);
  }
  CHECK(exchange.stats().steps == 3);
  CHECK(exchange.covered().size() == 12);
  for (auto& c : exchange.covered()) CHECK(c.root == local.root(c.partition));

  Exchange none({}, SALT, local.trees());
  CHECK(none.step().kind == Kind::DONE);
  CHECK(none.finished());
  CHECK(none.stats().steps == 0);
}

TEST_CASE("anti-entropy exchange: no step carries more than its limit; roots, then level order") {
  // The peer holds everything, this node nothing of four partitions (it lost its data): the
  // largest walk there is.
  Replica local;
  auto peer = filled(4, 300);
  local.put(2, "k1", written({}, B, "kept"));
  ExchangeLimits limits{3, 5, 7, 4};
  Exchange exchange(upTo(6), SALT, local.trees(), limits);
  auto steps = runExchange(exchange, local, peer);
  REQUIRE(exchange.step().kind == Kind::DONE);
  CHECK(repairsOf(steps).size() == 4 * 300);
  CHECK(differences(local, peer).empty());

  size_t lastLevel = 0;
  bool walking = false, listing = false;
  for (size_t i = 0; i < steps.size(); i++) {
    auto& s = steps[i];
    INFO("step " << i);
    switch (s.kind) {
      case Kind::ASK_ROOTS:
        CHECK(!walking);  // every root first
        CHECK(s.partitions.size() <= limits.maxPartitionsPerStep);
        break;
      case Kind::ASK_CHILDREN:
        walking = true;
        CHECK(!listing);  // the whole walk before any listing
        CHECK(s.salt == SALT);
        CHECK(s.nodes.size() <= limits.maxNodesPerStep);
        for (auto& n : s.nodes) {
          CHECK(n.level >= lastLevel);  // breadth-first
          lastLevel = n.level;
        }
        break;
      case Kind::LIST_KEYS:
        listing = true;
        CHECK(s.segments.size() <= limits.maxSegmentsPerStep);
        break;
      case Kind::REPAIR:
        CHECK(listing);
        CHECK(s.repairs.size() <= limits.maxRepairsPerStep);
        CHECK(!s.repairs.empty());
        break;
      default:
        FAIL("a step that is not a request");
    }
  }
  CHECK(lastLevel == TreeShape().segmentLevel() - 1);
  CHECK(count(steps, Kind::ASK_ROOTS) == 2);
  // Repairs go out as soon as a full step of them is pending, between listings.
  size_t firstRepair = steps.size(), lastListing = 0;
  for (size_t i = 0; i < steps.size(); i++) {
    if (steps[i].kind == Kind::REPAIR) firstRepair = std::min(firstRepair, i);
    if (steps[i].kind == Kind::LIST_KEYS) lastListing = i;
  }
  CHECK(firstRepair < lastListing);
}

TEST_CASE("anti-entropy exchange: segments a peer could not list in one reply are asked again") {
  auto local = filled(1, 2000);
  auto peer = local;
  std::set<std::string> changed;
  for (int i = 0; i < 2000; i += 50) {
    auto key = "k" + std::to_string(i);
    overwrite(peer, 0, key, B);
    changed.insert(storageKey(0, key));
  }
  ExchangeLimits limits;
  limits.maxSegmentsPerStep = 16;
  Exchange exchange({0}, SALT, local.trees(), limits);

  // Walk to the first listing, then answer it for its first segment alone.
  while (exchange.step().kind != Kind::LIST_KEYS) {
    auto& s = exchange.step();
    if (s.kind == Kind::ASK_ROOTS) exchange.rootsReceived(peer.roots(s.partitions));
    if (s.kind == Kind::ASK_CHILDREN) exchange.childrenReceived(peer.children(s.salt, s.nodes));
  }
  auto asked = exchange.step().segments;
  REQUIRE(asked.size() == 16);
  auto theirs = peer.listKeys({asked[0]});
  auto mine = local.listKeys({asked[0]});
  exchange.keysListed(mine.keys, theirs.keys, 1);
  // The next listing starts with the 15 not covered.
  REQUIRE(exchange.step().kind == Kind::LIST_KEYS);
  auto next = exchange.step().segments;
  REQUIRE(next.size() == 16);
  CHECK(std::vector<SegmentRef>(next.begin(), next.begin() + 15) ==
        std::vector<SegmentRef>(asked.begin() + 1, asked.end()));

  // A peer that stops after a key or two each time still gets every difference found.
  auto steps = runExchange(exchange, local, peer, 2);
  REQUIRE(exchange.step().kind == Kind::DONE);
  std::set<std::string> repaired;
  for (auto& s : steps) {
    for (auto& r : s.repairs) repaired.insert(r.key);
  }
  CHECK(repaired == changed);
  CHECK(count(steps, Kind::LIST_KEYS) > 40 / 16 + 1);  // replies that stopped early
  CHECK(differences(local, peer).empty());
}

TEST_CASE("anti-entropy exchange: a failed step ends it, covering only the equal roots") {
  auto local = filled(4, 50);
  auto peer = local;
  overwrite(peer, 1, "k7", B);
  peer.put(3, "k8", Object{});  // lost there
  auto exchange = pastTheRoots(local, peer, 4);
  REQUIRE(exchange.step().kind == Kind::ASK_CHILDREN);
  exchange.failed();
  CHECK(exchange.step().kind == Kind::FAILED);
  CHECK(exchange.finished());
  CHECK(coveredPartitions(exchange) == std::set<uint32_t>{0, 2});
  CHECK(exchange.stats().steps == 2);

  // Nothing more is taken from it.
  CHECK_THROWS_AS(exchange.childrenReceived({}), kj::Exception);
  CHECK_THROWS_AS(exchange.failed(), kj::Exception);
}

TEST_CASE("anti-entropy exchange: a key held on one side only is handed over") {
  Replica local, peer;
  local.put(5, "mine", written({}, A, "a"));
  peer.put(5, "theirs", written({}, B, "b"));
  peer.put(9, "elsewhere", written({}, B, "c"));  // a partition this node holds nothing of
  Exchange exchange({5, 9}, SALT, local.trees());
  auto steps = runExchange(exchange, local, peer);
  auto repairs = repairsOf(steps);
  REQUIRE(repairs.size() == 3);
  auto& mine = repairs[storageKey(5, "mine")];
  CHECK(mine.local == causalDigest(*local.find(5, "mine")));
  CHECK(!mine.peer);
  auto& theirs = repairs[storageKey(5, "theirs")];
  CHECK(!theirs.local);
  CHECK(theirs.peer == causalDigest(*peer.find(5, "theirs")));
  CHECK(!repairs[storageKey(9, "elsewhere")].local);
  CHECK(local.find(9, "elsewhere") != nullptr);
  CHECK(peer.find(5, "mine") != nullptr);
  CHECK(local.root(5) == peer.root(5));
  // Partition 9 is covered at the root this node had then: empty.
  for (auto& c : exchange.covered()) {
    if (c.partition == 9) CHECK(c.root == 0);
  }
}

TEST_CASE("anti-entropy exchange: a difference the walk cannot find leaves it uncovered") {
  // The peer answers as if the differing root's children all matched (a 32-bit collision, or a
  // write that mended it meanwhile): nothing was found to repair, so nothing is vouched for.
  auto local = filled(3, 40);
  auto peer = local;
  overwrite(peer, 0, "k1", B);
  overwrite(peer, 2, "k2", B);
  auto exchange = pastTheRoots(local, peer, 3);
  auto nodes = exchange.step().nodes;
  REQUIRE(nodes.size() == 2);  // the roots of partitions 0 and 2
  auto answer = peer.children(SALT, nodes);
  answer[0] = local.children(SALT, {nodes[0]})[0];  // partition 0 looks equal below the root
  exchange.childrenReceived(answer);
  auto steps = runExchange(exchange, local, peer);
  REQUIRE(exchange.step().kind == Kind::DONE);
  CHECK(repairsOf(steps).size() == 1);
  CHECK(coveredPartitions(exchange) == std::set<uint32_t>{1, 2});
}

TEST_CASE("anti-entropy exchange: an answer to another step, or of the wrong size, is refused") {
  auto local = filled(2, 20);
  auto peer = local;
  overwrite(peer, 0, "k1", B);
  Exchange exchange(upTo(2), SALT, local.trees());
  CHECK_THROWS_AS(exchange.childrenReceived({}), kj::Exception);
  CHECK_THROWS_AS(exchange.keysListed({}, {}, 1), kj::Exception);
  CHECK_THROWS_AS(exchange.repaired(0), kj::Exception);
  CHECK_THROWS_AS(exchange.rootsReceived({1}), kj::Exception);  // two partitions asked
  exchange.rootsReceived(peer.roots(exchange.step().partitions));
  CHECK_THROWS_AS(exchange.rootsReceived({1, 2}), kj::Exception);
  CHECK_THROWS_AS(exchange.childrenReceived({{}, {}}), kj::Exception);  // one node asked
  while (exchange.step().kind == Kind::ASK_CHILDREN) {
    exchange.childrenReceived(peer.children(SALT, exchange.step().nodes));
  }
  REQUIRE(exchange.step().kind == Kind::LIST_KEYS);
  auto segments = exchange.step().segments;
  CHECK_THROWS_AS(exchange.keysListed({}, {}, 0), kj::Exception);
  CHECK_THROWS_AS(exchange.keysListed({}, {}, segments.size() + 1), kj::Exception);
  KeyDigest twice{storageKey(0, "k1"), 1, {}};
  CHECK_THROWS_AS(exchange.keysListed({}, {twice, twice}, 1), kj::Exception);
  exchange.keysListed(local.listKeys(segments).keys, peer.listKeys(segments).keys,
                      segments.size());
  REQUIRE(exchange.step().kind == Kind::REPAIR);
  CHECK_THROWS_AS(exchange.repaired(2), kj::Exception);  // one key to repair
  exchange.repaired(1);
  CHECK(exchange.step().kind == Kind::DONE);
  CHECK_THROWS_AS(Exchange({0}, SALT, local.trees(), ExchangeLimits{1, 0, 1, 1}), kj::Exception);
}

TEST_CASE("anti-entropy exchange: a 1% divergence costs hashes per differing key, not per key") {
  // 100 partitions of 1000 keys, 10 keys newer on the peer, each in a partition of its own.
  auto local = filled(100, 1000);
  auto peer = local;
  for (uint32_t p = 5; p < 100; p += 10) {
    auto key = "k" + std::to_string(p * 7);
    overwrite(peer, p, key, B);
  }
  Exchange exchange(upTo(100), SALT, local.trees());
  auto steps = runExchange(exchange, local, peer);
  REQUIRE(exchange.step().kind == Kind::DONE);
  size_t nodesAsked = 0, segmentsListed = 0;
  for (auto& s : steps) {
    nodesAsked += s.nodes.size();
    segmentsListed += s.segments.size();
  }
  // One node a level for each differing key, down 4 levels: 40 hashes of 8 children, about 1.3
  // KiB, against 100,000 keys held. The roots are 100 more.
  CHECK(nodesAsked <= 10 * 4);
  CHECK(segmentsListed == 10);
  CHECK(exchange.stats().keysDiffering == 10);
  CHECK(exchange.stats().keysCompared <= 10 * 2 * 3);  // a segment holds a key or so
  CHECK(steps.size() == 1 + 4 + 1 + 1);  // roots, 4 levels, one listing, one repair
  CHECK(differences(local, peer).empty());
}

}  // namespace
}  // namespace dynkv

// What anti-entropy decides around its exchanges (common/coordinator/anti-entropy-plan.h): whom a
// node exchanges with and over which partitions, what its ledger may rely on, and when a
// partition's tombstones are collected, a handed-over partition dropped, a wiped node refilled.
// The map and the ledger come in as values; a few cases run real exchanges between in-memory
// replicas to show what the ledger makes of them.
#include "anti-entropy-plan.h"

#include <catch2/catch.hpp>
#include <kj/exception.h>
#include <set>

#include "hint-policy.h"
#include "hash.h"
#include "replica-fixture.h"

namespace dynkv {
namespace {

constexpr uint32_t N = 3;
const std::function<bool(uint64_t)> NONE_SUSPECTED = [](uint64_t) { return false; };

bool holds(const std::vector<uint64_t>& replicas, uint64_t node) {
  return std::find(replicas.begin(), replicas.end(), node) != replicas.end();
}

struct Roles {
  // Partitions of a map by what `self` is to them.
  uint32_t primary, secondary, none;
};
Roles rolesOf(const PartitionMap& map, uint64_t self) {
  std::optional<uint32_t> primary, secondary, none;
  for (uint32_t p = 0; p < map.partitionCount(); p++) {
    auto replicas = replicasOf(map, p, N);
    if (replicas[0] == self && !primary) primary = p;
    if (replicas[0] != self && holds(replicas, self) && !secondary) secondary = p;
    if (!holds(replicas, self) && !none) none = p;
  }
  REQUIRE((primary && secondary && none));
  return {*primary, *secondary, *none};
}

std::function<uint64_t(uint32_t)> rootsAre(std::map<uint32_t, uint64_t> roots) {
  return [roots](uint32_t p) { return roots.count(p) ? roots.at(p) : 0; };
}

void recordCovered(ReplicaLedger& ledger, uint64_t peer, uint32_t partition, uint64_t root) {
  // A finished exchange over `partition` alone that covered it at `root`, still the root here.
  ledger.record(peer, {partition}, {{partition, root}}, true, rootsAre({{partition, root}}));
}

TEST_CASE("anti-entropy plan: a partition's replicas are the first N nodes, the primary first") {
  auto map = ring({1, 2, 3, 4, 5});
  for (uint32_t p = 0; p < map.partitionCount(); p++) {
    auto replicas = replicasOf(map, p, N);
    REQUIRE(replicas.size() == N);
    CHECK(std::set<uint64_t>(replicas.begin(), replicas.end()).size() == N);
    CHECK(replicas[0] == map.nodes()[map.owners()[p]].id);  // the ring owner is its primary
    auto pref = map.preferenceList(p, N, 2);
    for (uint32_t i = 0; i < N; i++) CHECK(replicas[i] == map.nodes()[pref.nodes[i]].id);
  }
  // Where a removed owner's hints go is the same list.
  for (auto key : {"a", "b", "cart:17"}) {
    auto hash = keyHash("ns", key);
    CHECK(hintTargets(map, hash, N) == replicasOf(map, map.partitionOf(hash), N));
  }
  CHECK(replicasOf(ring({1, 2}), 0, N).size() == 2);  // fewer members than N
  CHECK(replicasOf(map, 0, 0).empty());
  CHECK(replicasOf(PartitionMap(), 0, N).empty());
  CHECK_THROWS_AS(replicasOf(map, map.partitionCount(), N), kj::Exception);
}

TEST_CASE("anti-entropy plan: a node exchanges with each replica it shares partitions with") {
  auto map = ring({1, 2, 3, 4, 5});
  const uint64_t self = 2;
  auto plans = planExchanges(map, self, N, {}, NONE_SUSPECTED);
  std::map<uint64_t, std::set<uint32_t>> expected;
  for (uint32_t p = 0; p < map.partitionCount(); p++) {
    auto replicas = replicasOf(map, p, N);
    if (!holds(replicas, self)) continue;
    for (auto r : replicas) {
      if (r != self) expected[r].insert(p);
    }
  }
  REQUIRE(plans.size() == 4);  // every other node shares some partition on a ring of 5
  for (size_t i = 0; i < plans.size(); i++) {
    CHECK(plans[i].peer != self);
    if (i > 0) CHECK(plans[i - 1].peer < plans[i].peer);
    CHECK(std::is_sorted(plans[i].partitions.begin(), plans[i].partitions.end()));
    CHECK(std::set<uint32_t>(plans[i].partitions.begin(), plans[i].partitions.end()) ==
          expected[plans[i].peer]);
    CHECK(plans[i].partitions.size() == expected[plans[i].peer].size());  // each once
  }

  // A suspected peer is left out; the others are planned as before.
  auto without4 = planExchanges(map, self, N, {}, [](uint64_t node) { return node == 4; });
  REQUIRE(without4.size() == 3);
  for (auto& plan : without4) CHECK(plan.peer != 4);
  CHECK(without4[0] == plans[0]);

  CHECK(planExchanges(PartitionMap(), self, N, {}, NONE_SUSPECTED).empty());
  CHECK(planExchanges(map, 9, N, {}, NONE_SUSPECTED).empty());  // not a member, holds nothing
}

TEST_CASE("anti-entropy plan: a partition held but not owned goes to every one of its replicas") {
  auto map = ring({1, 2, 3, 4, 5});
  auto roles = rolesOf(map, 1);
  auto replicas = replicasOf(map, roles.none, N);
  auto plans = planExchanges(map, 1, N, {roles.none, roles.none}, NONE_SUSPECTED);
  for (auto r : replicas) {
    auto plan = std::find_if(plans.begin(), plans.end(), [&](auto& x) { return x.peer == r; });
    REQUIRE(plan != plans.end());
    CHECK(std::count(plan->partitions.begin(), plan->partitions.end(), roles.none) == 1);
  }
  // A node that has left the ring hands what it still holds to the partition's replicas.
  auto left = planExchanges(map, 9, N, {roles.none}, NONE_SUSPECTED);
  REQUIRE(left.size() == N);
  for (size_t i = 0; i < N; i++) {
    CHECK(holds(replicas, left[i].peer));
    CHECK(left[i].partitions == std::vector<uint32_t>{roles.none});
  }
  CHECK_THROWS_AS(planExchanges(map, 1, N, {map.partitionCount()}, NONE_SUSPECTED),
                  kj::Exception);
}

TEST_CASE("anti-entropy plan: the ledger keeps a confirmation only for the root it was made at") {
  ReplicaLedger ledger;
  // Partition 3 covered at its current root; partition 4 covered at a root that has changed
  // since (this exchange repaired this node's copy).
  ledger.record(2, {3, 4}, {{3, 30}, {4, 40}}, true, rootsAre({{3, 30}, {4, 41}}));
  CHECK(ledger.coveredByAll(3, {2}, 30));
  CHECK(!ledger.coveredByAll(3, {2}, 31));  // a write here since voids it
  CHECK(!ledger.coveredByAll(4, {2}, 40));
  CHECK(!ledger.coveredByAll(4, {2}, 41));
  CHECK(!ledger.coveredByAll(3, {2, 5}, 30));  // every peer, not some
  CHECK(ledger.coveredByAll(3, {}, 30));

  // A later exchange's confirmation replaces the earlier one.
  recordCovered(ledger, 2, 3, 33);
  CHECK(!ledger.coveredByAll(3, {2}, 30));
  CHECK(ledger.coveredByAll(3, {2}, 33));

  // A failed exchange still confirms the roots it found equal, but finished nothing.
  ledger.record(5, {3, 7}, {{3, 33}}, false, rootsAre({{3, 33}}));
  CHECK(ledger.coveredByAll(3, {2, 5}, 33));
  CHECK(ledger.exchangedWithAny(3, {2}));
  CHECK(!ledger.exchangedWithAny(3, {5}));
  CHECK(!ledger.exchangedWithAny(7, {2, 5}));
  CHECK(!ledger.exchangedWithAny(3, {}));
  CHECK_THROWS_AS(ledger.record(5, {1}, {{3, 33}}, true, rootsAre({})), kj::Exception);

  ledger.forget(3);
  CHECK(!ledger.coveredByAll(3, {2}, 33));
  CHECK(!ledger.exchangedWithAny(3, {2}));
}

TEST_CASE("anti-entropy plan: an exchange that repaired this node's copy confirms on the next") {
  // Through real exchanges: this node (the primary) pulls a newer version from the peer, so its
  // root changes; only the next exchange, which finds the roots equal, confirms the partition.
  Replica here, there;
  const Actor a{1, 1}, b{2, 1};
  here.put(0, "k", written({}, a, "v"));
  there.put(0, "k", written(*here.find(0, "k"), b, "newer"));
  auto currentRoot = [&](uint32_t p) { return here.root(p); };
  ReplicaLedger ledger;

  Exchange first({0}, 1, here.trees());
  runExchange(first, here, there);
  REQUIRE(first.step().kind == Exchange::Step::Kind::DONE);
  ledger.record(2, {0}, first.covered(), true, currentRoot);
  CHECK(!ledger.coveredByAll(0, {2}, here.root(0)));
  CHECK(ledger.exchangedWithAny(0, {2}));

  Exchange second({0}, 2, here.trees());
  runExchange(second, here, there);
  ledger.record(2, {0}, second.covered(), true, currentRoot);
  CHECK(ledger.coveredByAll(0, {2}, here.root(0)));
}

TEST_CASE("anti-entropy plan: the primary reaps tombstones once every other replica covered it") {
  auto map = ring({1, 2, 3, 4, 5});
  auto roles = rolesOf(map, 1);
  auto others = replicasOf(map, roles.primary, N);
  others.erase(others.begin());
  const uint64_t root = 77;
  PartitionState state{roles.primary, root, 2};
  ReplicaLedger ledger;

  CHECK(planCollection(map, 1, N, {state}, ledger, {}).reap.empty());
  recordCovered(ledger, others[0], roles.primary, root);
  CHECK(planCollection(map, 1, N, {state}, ledger, {}).reap.empty());  // one replica is not enough
  recordCovered(ledger, others[1], roles.primary, root);
  CHECK(planCollection(map, 1, N, {state}, ledger, {}) ==
        CollectionPlan{{roles.primary}, {}});

  // A node that is no replica still holds data of it (to hand over): its copies may hold what
  // the tombstones cover, so they wait until it has handed them over and dropped them.
  PartitionState elsewhere = state;
  elsewhere.heldElsewhere = true;
  CHECK(planCollection(map, 1, N, {elsewhere}, ledger, {}).reap.empty());

  // No tombstones: nothing to do. A write here since: the confirmations are void.
  CHECK(planCollection(map, 1, N, {{roles.primary, root, 0}}, ledger, {}).reap.empty());
  CHECK(planCollection(map, 1, N, {{roles.primary, root + 1, 2}}, ledger, {}).reap.empty());

  // A secondary never reaps, however well covered: the primary decides for the partition.
  auto secondaryOthers = replicasOf(map, roles.secondary, N);
  for (auto r : secondaryOthers) {
    if (r != 1) recordCovered(ledger, r, roles.secondary, root);
  }
  CHECK(planCollection(map, 1, N, {{roles.secondary, root, 5}}, ledger, {}) == CollectionPlan{});
  CHECK(planCollection(PartitionMap(), 1, N, {state}, ledger, {}) == CollectionPlan{});
}

TEST_CASE("anti-entropy plan: tombstones wait while a write they may cover is outside the trees") {
  auto map = ring({1, 2, 3, 4, 5});
  auto roles = rolesOf(map, 1);
  auto others = replicasOf(map, roles.primary, N);
  others.erase(others.begin());
  const uint64_t root = 77;
  PartitionState state{roles.primary, root, 2};
  ReplicaLedger ledger;
  for (auto r : others) recordCovered(ledger, r, roles.primary, root);
  REQUIRE(planCollection(map, 1, N, {state}, ledger, {}).reap ==
          std::vector<uint32_t>{roles.primary});

  // A fallback holds hints for the partition: one of them may be a write a tombstone covers,
  // which no replica's tree shows. Hints for another partition do not matter.
  OutsideWrites hinted;
  hinted.handoff = {roles.primary};
  CHECK(planCollection(map, 1, N, {state}, ledger, hinted).reap.empty());
  OutsideWrites elsewhere;
  elsewhere.handoff = {roles.primary + 1};
  CHECK(planCollection(map, 1, N, {state}, ledger, elsewhere).reap ==
        std::vector<uint32_t>{roles.primary});
  OutsideWrites everywhere;
  everywhere.everywhere = true;
  CHECK(planCollection(map, 1, N, {state}, ledger, everywhere).reap.empty());

  // Dropping a copy this node holds but does not own loses nothing a replica lacks: hints do
  // not hold it back.
  auto replicas = replicasOf(map, roles.none, N);
  for (auto r : replicas) recordCovered(ledger, r, roles.none, 5);
  CHECK(planCollection(map, 1, N, {{roles.none, 5, 0}}, ledger, everywhere).drop ==
        std::vector<uint32_t>{roles.none});
}

TEST_CASE("anti-entropy plan: outside writes come from every member's gossiped record") {
  MembershipState state;
  Member a, b, c;
  a.info.id = 1;
  b.info.id = 2;
  c.info.id = 3;
  a.status = b.status = c.status = MemberStatus::UP;
  a.setHandoffPartitions({4, 9});
  b.setHandoffPartitions({9, 12});
  state.merge(a);
  state.merge(b);
  state.merge(c);
  auto outside = outsideWrites(state);
  CHECK(outside.handoff == std::set<uint32_t>{4, 9, 12});
  CHECK(!outside.everywhere);
  CHECK(outside.covers(12));
  CHECK(!outside.covers(5));

  // A node that holds hints for more partitions than its record can name covers them all. One
  // still streaming partitions in does not: collection waits for each replica's word anyway.
  std::vector<uint32_t> many;
  for (uint32_t p = 0; p <= Member::MAX_HANDOFF_PARTITIONS; p++) many.push_back(p);
  c.setHandoffPartitions(many);
  c.heartbeat++;
  state.merge(c);
  CHECK(outsideWrites(state).everywhere);
  c.setHandoffPartitions({});
  c.pendingTransfers = 1;
  c.heartbeat++;
  state.merge(c);
  CHECK(!outsideWrites(state).everywhere);

  // A removed node's hints are gone with it.
  c.heartbeat++;
  state.merge(c);
  state.setStatus(2, MemberStatus::REMOVED);
  CHECK(outsideWrites(state).handoff == std::set<uint32_t>{4, 9});
}

TEST_CASE("anti-entropy plan: a partition not owned is dropped once every replica covered it") {
  auto map = ring({1, 2, 3, 4, 5});
  auto roles = rolesOf(map, 1);
  auto replicas = replicasOf(map, roles.none, N);
  const uint64_t root = 5;
  PartitionState state{roles.none, root, 0};
  ReplicaLedger ledger;
  recordCovered(ledger, replicas[0], roles.none, root);
  recordCovered(ledger, replicas[1], roles.none, root);
  CHECK(planCollection(map, 1, N, {state}, ledger, {}).drop.empty());
  recordCovered(ledger, replicas[2], roles.none, root);
  CHECK(planCollection(map, 1, N, {state}, ledger, {}) == CollectionPlan{{}, {roles.none}});
  CHECK(planCollection(map, 1, N, {{roles.none, root + 1, 0}}, ledger, {}).drop.empty());

  // Both decisions at once, in partition order; a replica's own partition is never dropped.
  auto primaryOthers = replicasOf(map, roles.primary, N);
  for (size_t i = 1; i < N; i++) recordCovered(ledger, primaryOthers[i], roles.primary, root);
  for (auto r : replicasOf(map, roles.secondary, N)) {
    recordCovered(ledger, r, roles.secondary, root);
  }
  auto plan = planCollection(
      map, 1, N, {state, {roles.primary, root, 1}, {roles.secondary, root, 0}}, ledger, {});
  CHECK(plan.reap == std::vector<uint32_t>{roles.primary});
  CHECK(plan.drop == std::vector<uint32_t>{roles.none});
}

TEST_CASE("anti-entropy plan: a wiped node is rebuilt once it finished an exchange per partition") {
  auto map = ring({1, 2, 3});  // every node is a replica of every partition
  ReplicaLedger ledger;
  CHECK(!rebuilt(map, 1, N, ledger));
  for (uint32_t p = 0; p < map.partitionCount(); p++) {
    // With either other replica; a failed exchange's equal roots do not count.
    ledger.record(p % 2 ? 2 : 3, {p}, {{p, 9}}, p != 7, rootsAre({}));
  }
  CHECK(!rebuilt(map, 1, N, ledger));
  ledger.record(2, {7}, {{7, 9}}, true, rootsAre({}));
  CHECK(rebuilt(map, 1, N, ledger));

  CHECK(rebuilt(map, 9, N, ReplicaLedger()));         // a replica of nothing
  CHECK(rebuilt(ring({1}), 1, N, ReplicaLedger()));    // no other replica to ask
  CHECK(rebuilt(PartitionMap(), 1, N, ReplicaLedger()));
}

}  // namespace
}  // namespace dynkv

// Membership as a value: the merge algebra, the designated node's map, the phi accrual
// detector. The gossip round that storaged runs is simulated in
// tests/simulation/membership-simulation-test.c++.
#include <capnp/message.h>
#include <catch2/catch.hpp>
#include <random>

#include "codec.h"
#include "membership-state.h"
#include "phi-accrual.h"

namespace dynkv {
namespace {

Member randomMember(std::mt19937_64& rng, uint64_t id) {
  Member m;
  m.info.id = id;
  m.info.address = "10.0.0." + std::to_string(id) + ":7400";
  m.info.name = m.info.address;
  m.status = static_cast<MemberStatus>(rng() % 4);
  m.statusVersion = rng() % 4;
  m.generation = rng() % 3;
  m.heartbeat = rng() % 5;
  m.mapVersion = rng() % 3;
  m.pendingTransfers = uint32_t(rng() % 2);
  m.handoffEverywhere = rng() % 4 == 0;
  if (!m.handoffEverywhere && rng() % 2 == 0) m.handoffPartitions = {uint32_t(rng() % 3), 7};
  if (rng() % 2 == 0) m.httpAddress = "10.0.0." + std::to_string(rng() % 2) + ":7480";
  return m;
}

TEST_CASE("membership: record merge is commutative, associative and idempotent") {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; i++) {
    INFO("iteration " << i);
    auto a = randomMember(rng, 1), b = randomMember(rng, 1), c = randomMember(rng, 1);
    CHECK(mergeMember(a, b) == mergeMember(b, a));
    CHECK(mergeMember(mergeMember(a, b), c) == mergeMember(a, mergeMember(b, c)));
    CHECK(mergeMember(a, a) == a);
  }
}

TEST_CASE("membership: a record's hinted partitions go over the wire, and only within bounds") {
  Member m;
  m.info = NodeInfo{4, "n4", "a4", "", 1};
  m.setHandoffPartitions({0, 5, 65535});
  capnp::MallocMessageBuilder message;
  auto wire = message.initRoot<wire::Member>();
  encodeMember(m, wire);
  auto decoded = decodeMember(wire.asReader());
  CHECK(decoded == m);
  CHECK(decoded.holdsHandoffFor(65535));
  CHECK(!decoded.holdsHandoffFor(6));

  // A forged record: more partitions than a record may name, or out of order.
  auto tooMany = wire.initHandoffPartitions(Member::MAX_HANDOFF_PARTITIONS + 1);
  for (uint32_t i = 0; i < tooMany.size(); i++) tooMany.set(i, uint16_t(i));
  CHECK_THROWS_WITH(decodeMember(wire.asReader()),
                    Catch::Contains("more hinted partitions than a record may"));
  auto unordered = wire.initHandoffPartitions(2);
  unordered.set(0, 9);
  unordered.set(1, 9);
  CHECK_THROWS_WITH(decodeMember(wire.asReader()), Catch::Contains("not ascending"));
}

TEST_CASE("membership: merging a record into the state is mergeMember, in place") {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 2000; i++) {
    INFO("iteration " << i);
    auto a = randomMember(rng, 1), b = randomMember(rng, 1);
    if (rng() % 4 == 0) b.info.address = "elsewhere:7400";
    MembershipState state;
    state.merge(a);
    bool changed = state.merge(b);
    CHECK(*state.find(1) == mergeMember(a, b));
    CHECK(changed == (mergeMember(a, b) != a));
  }
}

TEST_CASE("membership: an admin status change survives the node's own heartbeats") {
  MembershipState node, admin;
  Member self;
  self.info.id = 5;
  self.info.address = "a:1";
  node.merge(self);
  admin.merge(self);
  admin.setStatus(5, MemberStatus::UP);
  // Meanwhile the node keeps bumping its heartbeat.
  node.mutableMember(5).heartbeat += 3;
  node.merge(admin);
  admin.merge(node);
  CHECK(node.find(5)->status == MemberStatus::UP);
  CHECK(node.find(5)->heartbeat == 3);
  CHECK(*node.find(5) == *admin.find(5));
}

TEST_CASE("membership: the designated node maps exactly the up members and others adopt it") {
  MembershipState a, b;
  for (uint64_t id : {30, 10, 20}) {
    Member m;
    m.info.id = id;
    m.info.address = "n" + std::to_string(id);
    a.merge(m);
  }
  for (uint64_t id : {10, 20}) a.setStatus(id, MemberStatus::UP);
  auto everyone = [](uint64_t) { return true; };
  CHECK(a.designated(everyone) == std::optional<uint64_t>(10));
  CHECK(a.designated([](uint64_t id) { return id != 10; }) == std::optional<uint64_t>(20));
  CHECK_FALSE(a.mapIsCurrent());
  a.adoptMap(a.recomputedMap(8, 10));
  CHECK(a.mapIsCurrent());
  CHECK(a.map()->nodes().size() == 2);

  b.merge(a);
  CHECK(b.map()->version() == a.map()->version());
  // Two designators racing mint distinct versions; everyone converges on the higher one.
  auto fromTen = a.recomputedMap(8, 10), fromTwenty = a.recomputedMap(8, 20);
  CHECK(fromTen->version() != fromTwenty->version());
  a.adoptMap(fromTen);
  b.adoptMap(fromTwenty);
  a.merge(b);
  b.merge(a);
  CHECK(a.map()->version() == b.map()->version());
}

TEST_CASE("membership: force-remove of a dead node spreads its partitions over the rest") {
  MembershipState state;
  for (uint64_t id : {10, 20, 30, 40}) {
    Member m;
    m.info.id = id;
    m.info.address = "n" + std::to_string(id);
    state.merge(m);
    state.setStatus(id, MemberStatus::UP);
  }
  state.adoptMap(state.recomputedMap(8, 10));
  REQUIRE(state.map()->indexOf(40));

  state.forceRemove(40);
  CHECK(state.find(40)->status == MemberStatus::REMOVED);
  CHECK_FALSE(state.mapIsCurrent());
  auto next = state.recomputedMap(8, 10);
  REQUIRE(next);
  CHECK(next->version() > state.map()->version());
  CHECK_FALSE(next->indexOf(40));
  CHECK(next->nodes().size() == 3);
  uint32_t owned = 0;
  for (auto share : next->shares()) owned += share;
  CHECK(owned == next->partitionCount());
  // Every partition still has three distinct replicas, none of them the removed node.
  for (uint32_t p = 0; p < next->partitionCount(); p++) {
    CHECK(next->preferenceList(p, 3, 0).nodes.size() == 3);
  }
  state.adoptMap(next);
  CHECK(state.mapIsCurrent());

  // Idempotent: a second removal changes nothing.
  auto version = state.find(40)->statusVersion;
  state.forceRemove(40);
  CHECK(state.find(40)->statusVersion == version);
}

TEST_CASE("membership: a removed record survives gossip merges, the node's own copies too") {
  MembershipState admin, stale;
  Member dead;
  dead.info.id = 7;
  dead.info.address = "n7";
  dead.status = MemberStatus::UP;
  dead.statusVersion = 3;
  dead.heartbeat = 40;
  admin.merge(dead);
  stale.merge(dead);
  admin.forceRemove(7);

  // The node comes back with the state it had on disk, heartbeat racing ahead; a node that
  // missed the removal still has it up; another had it leaving at the same version.
  Member back = dead;
  back.generation = 2;
  back.heartbeat = 1000;
  Member leaving = dead;
  leaving.status = MemberStatus::LEAVING;
  admin.merge(back);
  admin.merge(leaving);
  stale.merge(back);
  stale.merge(admin);
  admin.merge(stale);
  for (auto* state : {&admin, &stale}) {
    CHECK(state->find(7)->status == MemberStatus::REMOVED);
    CHECK(state->find(7)->heartbeat == 1000);  // liveness still merges: the record is kept
    CHECK(state->ringMembers().empty());
  }
}

TEST_CASE("membership: remove --force takes dead nodes, refuses live ones unless insisted") {
  using S = MemberStatus;
  for (auto status : {S::JOINING, S::UP, S::LEAVING}) {
    INFO(toString(status));
    CHECK(decideForceRemoval(status, true, false) == ForceRemoval::REMOVE);
    CHECK(decideForceRemoval(status, false, false) == ForceRemoval::REFUSE_ALIVE);
    CHECK(decideForceRemoval(status, false, true) == ForceRemoval::REMOVE);
  }
  for (bool suspected : {true, false}) {
    for (bool insist : {true, false}) {
      CHECK(decideForceRemoval(S::REMOVED, suspected, insist) == ForceRemoval::ALREADY_REMOVED);
    }
  }
}

TEST_CASE("phi accrual: suspicion grows with silence, scaled by the heartbeat history") {
  PhiAccrual::Options options;
  options.minStdDevMillis = 50;
  PhiAccrual fd(options);
  CHECK(fd.phi(0) == 0);
  for (int64_t t = 0; t <= 10000; t += 1000) fd.heartbeat(t);
  CHECK(fd.phi(10500) < 1);
  CHECK(fd.phi(11200) < PHI_SUSPECT_THRESHOLD);
  CHECK(fd.phi(13000) > PHI_SUSPECT_THRESHOLD);
  CHECK(fd.phi(12000) < fd.phi(12500));
  fd.heartbeat(13000);
  CHECK(fd.phi(13100) < 1);
}

TEST_CASE("phi accrual: only the last `window` intervals count") {
  PhiAccrual::Options options;
  options.window = 3;
  PhiAccrual fd(options);
  for (double interval : {1000.0, 1000.0, 10.0, 20.0, 30.0}) fd.addInterval(interval);
  CHECK(fd.meanMillis() == Approx(20.0));
  fd.addInterval(40.0);
  CHECK(fd.meanMillis() == Approx(30.0));
}

}  // namespace
}  // namespace dynkv

// The gossip round's rules, one at a time, with a fake liveness and explicit times. The round
// under a simulated network is tests/simulation/membership-simulation-test.c++.
#include "gossip-round.h"

#include <catch2/catch.hpp>
#include <kj/exception.h>
#include <set>

namespace dynkv {
namespace {

class FakeLiveness final : public Liveness {
 public:
  std::set<std::string> down;
  std::vector<std::string> heartbeats;
  void heartbeat(const std::string& address, GossipMicros) override {
    heartbeats.push_back(address);
  }
  bool suspected(const std::string& address, GossipMicros) const override {
    return down.count(address) != 0;
  }
};

NodeInfo node(uint64_t id) {
  return NodeInfo{id, "n" + std::to_string(id), "a" + std::to_string(id), "", 1};
}

GossipRoundOptions options(uint64_t id, std::vector<std::string> seeds = {}) {
  GossipRoundOptions o;
  o.self = node(id);
  o.generation = 100;
  o.seeds = std::move(seeds);
  o.partitionBits = 6;
  return o;
}

Member record(uint64_t id, uint64_t heartbeat, MemberStatus status = MemberStatus::UP,
              uint64_t statusVersion = 1) {
  Member m;
  m.info = node(id);
  m.generation = 7;
  m.heartbeat = heartbeat;
  m.status = status;
  m.statusVersion = statusVersion;
  return m;
}

TEST_CASE("gossip round: a new node joins as JOINING, a restarted one keeps its status") {
  FakeLiveness liveness;
  GossipRound fresh(options(1), MembershipState(), liveness);
  CHECK(fresh.state().find(1)->status == MemberStatus::JOINING);

  MembershipState restored;
  auto old = record(1, 55, MemberStatus::UP, 3);
  old.generation = 90;
  restored.merge(old);
  GossipRound restarted(options(1), restored, liveness);
  auto self = restarted.state().find(1);
  CHECK(self->status == MemberStatus::UP);
  CHECK(self->statusVersion == 3);
  CHECK(self->generation == 100);
  CHECK(self->heartbeat == 0);
}

TEST_CASE("gossip round: a join or leave naming an oversized address is refused without "
          "echoing it") {
  FakeLiveness liveness;
  GossipRound round(options(1), MembershipState(), liveness);
  std::string huge(1 << 20, 'x');
  for (bool join : {true, false}) {
    try {
      join ? round.join(huge) : round.leave(huge);
      FAIL("an oversized address was accepted");
    } catch (const kj::Exception& e) {
      std::string description = e.getDescription().cStr();
      CHECK_THAT(description, Catch::Contains("address is 1048576 bytes; the limit is 255"));
      CHECK(description.size() < 1000);
    }
  }
}

TEST_CASE("gossip round: others may change our status, never our liveness") {
  FakeLiveness liveness;
  GossipRound round(options(1), MembershipState(), liveness);
  round.beginRound(0, 0);
  GossipMessage in;
  auto forged = record(1, 1000, MemberStatus::UP, 1);
  forged.generation = 999;
  in.members.push_back(forged);
  auto changes = round.receive(in, 0);
  auto self = round.state().find(1);
  CHECK(changes.durable);
  CHECK(self->status == MemberStatus::UP);
  CHECK(self->generation == 100);
  CHECK(self->heartbeat == 1);
}

TEST_CASE(
    "gossip round: only durable changes ask to be persisted; fresher heartbeats are "
    "reported") {
  FakeLiveness liveness;
  GossipRound round(options(1), MembershipState(), liveness);
  GossipMessage in;
  in.members.push_back(record(2, 1));
  CHECK(round.receive(in, 0).durable);  // a new member
  CHECK(liveness.heartbeats == std::vector<std::string>{"a2"});

  in.members[0].heartbeat = 2;
  CHECK_FALSE(round.receive(in, 1000).durable);  // a heartbeat alone
  CHECK(liveness.heartbeats.size() == 2);
  CHECK_FALSE(round.receive(in, 2000).durable);  // the same record again: no news
  CHECK(liveness.heartbeats.size() == 2);
  in.members[0].heartbeat = 1;  // an older copy
  CHECK_FALSE(round.receive(in, 3000).durable);
  CHECK(round.state().find(2)->heartbeat == 2);

  in.members[0] = record(2, 2, MemberStatus::LEAVING, 2);
  CHECK(round.receive(in, 4000).durable);  // a status change
  CHECK(round.state().find(2)->status == MemberStatus::LEAVING);
  CHECK_FALSE(round.beginRound(5000, 0).durable);  // our own heartbeat
}

TEST_CASE(
    "gossip round: a member not heard from since we started is suspected, whatever "
    "liveness says") {
  FakeLiveness liveness;
  MembershipState restored;
  restored.merge(record(2, 5));
  GossipRound round(options(1), restored, liveness);
  CHECK_FALSE(round.suspected(1, 0));
  CHECK(round.suspected(2, 0));
  GossipMessage in;
  in.members.push_back(record(2, 6));
  round.receive(in, 0);
  CHECK_FALSE(round.suspected(2, 0));
  liveness.down.insert("a2");
  CHECK(round.suspected(2, 0));
}

TEST_CASE("gossip round: peers are live members, seeds when none is, suspected ones last") {
  FakeLiveness liveness;
  GossipRound round(options(1, {"a1", "s9"}), MembershipState(), liveness);
  round.beginRound(0, 0);
  auto first = round.pickExchange(0);
  REQUIRE(first);
  CHECK(first->peer == "s9");  // nobody heard of yet: a seed (never ourselves)

  GossipMessage in;
  in.members.push_back(record(2, 1));
  in.members.push_back(record(3, 1, MemberStatus::REMOVED, 2));
  round.receive(in, 0);
  for (int i = 0; i < 20; i++) {
    round.beginRound(0, 0);
    auto exchange = round.pickExchange(0);
    REQUIRE(exchange);
    // Node 2 is live; node 3 is removed; every tenth round goes to a seed.
    CHECK(exchange->peer == (round.rounds() % 10 == 0 ? "s9" : "a2"));
  }

  GossipRound alone(options(1), MembershipState(), liveness);
  alone.receive(in, 0);
  liveness.down.insert("a2");
  alone.beginRound(0, 0);
  auto fallback = alone.pickExchange(0);
  REQUIRE(fallback);
  CHECK(fallback->peer == "a2");  // no seed, nobody live: a suspected member
}

TEST_CASE(
    "gossip round: the designated node maps the up members; others adopt the map and "
    "get it only when behind") {
  FakeLiveness liveness;
  GossipRound one(options(1), MembershipState(), liveness);
  GossipRound two(options(2), MembershipState(), liveness);
  auto exchange = [&](GossipRound& from, GossipRound& to, GossipMicros now) {
    from.beginRound(now, 0);
    GossipMessage message;
    message.members.assign(from.state().members().size(), Member());
    size_t i = 0;
    for (auto& [id, m] : from.state().members()) message.members[i++] = m;
    message.mapVersion = from.state().map()->version();
    auto toChanges = to.receive(message, now);
    auto reply = to.reply(message.mapVersion);
    auto fromChanges = from.receive(reply, now);
    return std::make_pair(std::move(fromChanges), std::move(toChanges));
  };
  exchange(one, two, 0);
  one.join("a1");
  one.join("a2");
  CHECK(one.takeEager());
  CHECK_FALSE(one.takeEager());
  auto changes = one.beginRound(2000, 0);
  REQUIRE(changes.adopted.size() == 1);  // one is the lowest-id up member alive
  CHECK(changes.adopted[0].second->nodes().size() == 2);
  CHECK(changes.durable);

  auto reply = one.reply(0);
  REQUIRE(reply.map);
  CHECK_FALSE(one.reply(one.state().map()->version()).map);
  auto adopted = two.receive(reply, 3000);
  REQUIRE(adopted.adopted.size() == 1);
  CHECK(two.state().find(2)->status == MemberStatus::UP);  // others may set our status
  CHECK(two.state().map()->version() == one.state().map()->version());
  CHECK(two.state().find(2)->mapVersion == one.state().map()->version());
}

TEST_CASE(
    "gossip round: a leaving node is removed once every up member has the map without "
    "it and nothing pending") {
  FakeLiveness liveness;
  MembershipState settled;
  for (uint64_t id : {1, 2}) settled.merge(record(id, 1));
  settled.adoptMap(settled.recomputedMap(6, 1));
  for (uint64_t id : {1, 2}) settled.mutableMember(id).mapVersion = settled.map()->version();
  GossipRound leaver(options(2), settled, liveness);
  leaver.leave("a2");
  GossipMessage in;
  in.members.push_back(record(1, 2));
  leaver.receive(in, 0);
  CHECK(leaver.beginRound(0, 0).adopted.empty());  // node 1 is designated, not us
  CHECK(leaver.state().find(2)->status == MemberStatus::LEAVING);

  // Node 1 maps the ring without us; we adopt it, but node 1 is still streaming.
  MembershipState mapper = leaver.state();
  auto map = mapper.recomputedMap(6, 1);
  in.map = map;
  in.members[0].heartbeat = 3;
  in.members[0].mapVersion = map->version();
  in.members[0].pendingTransfers = 4;
  leaver.receive(in, 1000);
  leaver.beginRound(1000, 0);
  CHECK(leaver.state().find(2)->status == MemberStatus::LEAVING);

  in.members[0].heartbeat = 4;
  in.members[0].pendingTransfers = 0;
  leaver.receive(in, 2000);
  CHECK(leaver.beginRound(2000, 0).durable);
  CHECK(leaver.state().find(2)->status == MemberStatus::REMOVED);
}

TEST_CASE("gossip round: the partitions a node holds writes to hand off of reach the others, a "
          "new one at once") {
  FakeLiveness liveness;
  GossipRound a(options(1), MembershipState(), liveness);
  GossipRound b(options(2), MembershipState(), liveness);
  a.takeEager();
  auto heartbeat = a.state().find(1)->heartbeat;

  CHECK(a.setHandoffPartitions({3, 8}));
  CHECK(a.takeEager());  // a partition newly hinted goes out now, not at the next interval
  CHECK(a.state().find(1)->heartbeat > heartbeat);  // so that it wins over older copies
  b.receive(a.snapshot(), 10);
  CHECK(b.state().find(1)->handoffPartitions == std::vector<uint32_t>{3, 8});

  // Delivered hints shrink the set: published, but nothing urgent.
  CHECK(!a.setHandoffPartitions({8}));
  CHECK(!a.takeEager());
  CHECK(!a.setHandoffPartitions({8}));  // no change: no heartbeat either
  b.receive(a.snapshot(), 20);
  CHECK(b.state().find(1)->handoffPartitions == std::vector<uint32_t>{8});

  // More than a record may name: every partition counts as hinted.
  std::vector<uint32_t> many;
  for (uint32_t p = 0; p < 300; p++) many.push_back(p);
  CHECK(a.setHandoffPartitions(many));
  b.receive(a.snapshot(), 30);
  CHECK(b.state().find(1)->handoffEverywhere);
  CHECK(b.state().find(1)->handoffPartitions.empty());
  CHECK(b.state().find(1)->holdsHandoffFor(299));

  // Only the node itself says what it holds: an older copy carrying other partitions loses.
  GossipMessage stale;
  Member old = *b.state().find(1);
  old.heartbeat = 1;
  old.handoffEverywhere = false;
  old.handoffPartitions = {1};
  stale.members.push_back(old);
  stale.mapVersion = b.state().map()->version();
  b.receive(stale, 40);
  CHECK(b.state().find(1)->handoffEverywhere);
}

TEST_CASE("gossip round: admin commands name known members; only ring members may leave") {
  FakeLiveness liveness;
  GossipRound round(options(1), MembershipState(), liveness);
  CHECK_THROWS_WITH(round.join("nowhere"), Catch::Contains("unknown node"));
  CHECK_THROWS_WITH(round.leave("a1"), Catch::Contains("only a node in the ring"));
  CHECK(round.join("a1").durable);
  CHECK_FALSE(round.join("a1").durable);  // idempotent
  CHECK(round.leave("a1").durable);
  CHECK_FALSE(round.leave("a1").durable);
}

TEST_CASE("gossip round: remove --force takes a suspected member out at once, refuses a live "
          "one and says to leave it") {
  FakeLiveness liveness;
  MembershipState state;
  for (uint64_t id : {1, 2, 3}) state.merge(record(id, 1, MemberStatus::UP));
  GossipRound round(options(1), state, liveness);
  GossipMessage in;
  in.members = {record(2, 2), record(3, 2, MemberStatus::LEAVING, 2)};
  round.receive(in, 0);  // both heard from: alive as far as liveness says
  round.beginRound(0, 0);
  REQUIRE(round.state().map()->indexOf(2));

  CHECK_THROWS_WITH(round.forceRemove("nowhere", 0, false), Catch::Contains("unknown node"));
  for (auto address : {"a1", "a2"}) {  // ourselves, and a live member
    try {
      round.forceRemove(address, 0, false);
      FAIL("a live member was removed");
    } catch (const kj::Exception& e) {
      std::string description = e.getDescription().cStr();
      CHECK_THAT(description, Catch::StartsWith("refused: "));
      CHECK_THAT(description, Catch::Contains(std::string("dynkv admin leave ") + address));
    }
  }
  CHECK(round.state().find(2)->status == MemberStatus::UP);

  liveness.down = {"a2", "a3"};
  CHECK(round.forceRemove("a2", 0, false).durable);
  CHECK(round.forceRemove("a3", 0, false).durable);  // leaving, dead before its hand-off
  CHECK_FALSE(round.forceRemove("a2", 0, false).durable);  // idempotent
  CHECK(round.state().find(2)->status == MemberStatus::REMOVED);
  CHECK(round.state().find(3)->status == MemberStatus::REMOVED);
  CHECK(round.takeEager());
  CHECK_FALSE(round.beginRound(1000, 0).adopted.empty());  // we are designated: a new map
  CHECK_FALSE(round.state().map()->indexOf(2));
  CHECK(round.state().map()->nodes().size() == 1);

  // Insisting removes a live member too.
  liveness.down.clear();
  CHECK(round.forceRemove("a1", 1000, true).durable);
  CHECK(round.state().find(1)->status == MemberStatus::REMOVED);
}

TEST_CASE("gossip round: remove --force refuses a member not heard from since this node started") {
  // Restarted a moment ago, this node's detector knows nothing of a2 yet: no evidence it is
  // dead, so the operator must ask a node that has been up longer, or insist.
  FakeLiveness liveness;
  MembershipState state;
  for (uint64_t id : {1, 2}) state.merge(record(id, 1, MemberStatus::UP));
  GossipRound round(options(1), state, liveness);
  liveness.down = {"a2"};
  CHECK_THROWS_WITH(round.forceRemove("a2", 0, false),
                    Catch::Contains("refused: a2 has not been heard from since a1 started"));
  CHECK(round.state().find(2)->status == MemberStatus::UP);
  CHECK(round.forceRemove("a2", 0, true).durable);
}

}  // namespace
}  // namespace dynkv

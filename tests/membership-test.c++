// Membership as a value: the merge algebra, the designated node's map, the phi accrual
// detector, and a deterministic simulation of gossip among up to a thousand nodes with
// message loss (no sockets, no clock: rounds are the clock).
#include <catch2/catch.hpp>
#include <capnp/message.h>
#include <cmath>
#include <iostream>
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

// ---- the simulation ----

struct SimNode {
  MembershipState state;
  uint64_t id;
};

size_t encodedBytes(const MembershipState& state) {
  capnp::MallocMessageBuilder message;
  auto root = message.initRoot<wire::GossipState>();
  auto members = root.initMembers(state.members().size());
  uint i = 0;
  for (auto& [id, m] : state.members()) encodeMember(m, members[i++]);
  root.setMapVersion(state.map()->version());
  return message.sizeInWords() * sizeof(capnp::word);
}

struct SimResult {
  uint32_t rounds;       // until every node knows every member and holds the final map
  size_t bytesPerExchange;  // one side's message once converged (every record, no map)
};

// Every node starts knowing itself and the seeds' addresses (as storaged does), all are
// joined by an admin command at node 0, and each round every node bumps its heartbeat and
// does one push-pull exchange with a random known member (a seed every tenth round).
// Messages are lost with probability `loss`.
SimResult simulate(size_t n, double loss, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<SimNode> nodes(n);
  const size_t seeds = std::min<size_t>(3, n);
  for (size_t i = 0; i < n; i++) {
    nodes[i].id = i + 1;
    Member self;
    self.info.id = i + 1;
    self.info.address = "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ":7400";
    self.info.name = self.info.address;
    self.generation = 1;
    nodes[i].state.merge(self);
  }
  for (size_t i = 0; i < n; i++) {
    for (size_t s = 0; s < seeds; s++) nodes[i].state.merge(*nodes[s].state.find(s + 1));
  }
  // The operator joins everyone through node 0 as it learns of them.
  std::bernoulli_distribution lost(loss);
  for (uint32_t round = 1; round <= 200; round++) {
    for (auto& [id, m] : nodes[0].state.members()) {
      if (m.status == MemberStatus::JOINING) nodes[0].state.setStatus(id, MemberStatus::UP);
    }
    for (size_t i = 0; i < n; i++) {
      auto& node = nodes[i];
      node.state.mutableMember(node.id).heartbeat++;
      auto designated = node.state.designated([](uint64_t) { return true; });
      if (designated == node.id && !node.state.mapIsCurrent()) {
        node.state.adoptMap(node.state.recomputedMap(10, node.id));
      }
      auto& members = node.state.members();
      size_t peer;
      if (round % 10 == 0) {
        peer = rng() % seeds;
      } else {
        auto it = members.begin();
        std::advance(it, rng() % members.size());
        peer = it->first - 1;
      }
      if (peer == i) continue;
      if (!lost(rng)) nodes[peer].state.merge(node.state);
      if (!lost(rng)) node.state.merge(nodes[peer].state);
    }
    bool converged = true;
    for (auto& node : nodes) {
      if (node.state.members().size() != n || !node.state.mapIsCurrent() ||
          node.state.map()->version() != nodes[0].state.map()->version() ||
          node.state.map()->nodes().size() != n) {
        converged = false;
        break;
      }
    }
    if (converged) return SimResult{round, encodedBytes(nodes[0].state)};
  }
  return SimResult{0, 0};
}

TEST_CASE("membership simulation: rounds grow logarithmically, bytes linearly, to 1000 nodes") {
  std::vector<std::pair<size_t, SimResult>> results;
  for (size_t n : {10, 100, 1000}) {
    auto r = simulate(n, 0.1, 42 + n);
    std::cout << "gossip simulation: " << n << " nodes, 10% message loss: converged in "
              << r.rounds << " rounds, " << r.bytesPerExchange << " bytes per exchange"
              << std::endl;
    REQUIRE(r.rounds > 0);
    results.emplace_back(n, r);
  }
  for (auto& [n, r] : results) {
    // Logarithmic: push-pull gossip spreads in about log2(n) rounds; allow a constant factor
    // (joins are learned first, and the map travels after them).
    CHECK(r.rounds <= 4 * std::log2(double(n)) + 10);
    // Linear: a member record (address, name, versions) is well under 192 bytes.
    CHECK(r.bytesPerExchange <= 192 * n + 1024);
  }
  CHECK(results[2].second.bytesPerExchange <= 11 * results[1].second.bytesPerExchange);
  // And no faster than that: ten times the nodes does not take ten times the rounds.
  CHECK(results[2].second.rounds < 3 * results[1].second.rounds);
}

}  // namespace
}  // namespace dynkv

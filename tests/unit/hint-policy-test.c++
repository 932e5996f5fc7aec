// The hinted-handoff delivery policy (common/coordinator/hint-policy.h), fed backlogs and
// failure-detector beliefs directly: no store, no sockets, no clock.
#include <catch2/catch.hpp>
#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <utility>

#include "hint-policy.h"
#include "replica-fixture.h"

namespace dynkv {
namespace {

const std::function<bool(uint64_t)> NONE_SUSPECTED = [](uint64_t) { return false; };

std::map<uint64_t, HintTurn> byOwner(const std::vector<HintTurn>& turns) {
  std::map<uint64_t, HintTurn> out;
  for (auto& t : turns) {
    CHECK(out.count(t.ownerId) == 0);
    CHECK(t.max >= 1);
    out[t.ownerId] = t;
  }
  return out;
}

size_t total(const std::vector<HintTurn>& turns) {
  size_t sum = 0;
  for (auto& t : turns) sum += t.max;
  return sum;
}

TEST_CASE("hint policy: an owner with a huge backlog does not starve the others") {
  auto map = ring({1, 2, 3});
  HintBudget budget{512, 256};
  auto turns =
      byOwner(planHintRound(map, {{1, 100000}, {2, 3}, {3, 10}}, NONE_SUSPECTED, budget, 0));
  REQUIRE(turns.size() == 3);
  CHECK(turns[2].max == 3);  // everything it has
  CHECK(turns[3].max == 10);
  CHECK(turns[1].max == 256);  // the cap: a recovering owner is not buried
}

TEST_CASE("hint policy: the round's budget is shared evenly among owners with backlogs") {
  auto map = ring({1, 2, 3, 4});
  auto turns = planHintRound(map, {{1, 1000}, {2, 1000}, {3, 1000}, {4, 1000}}, NONE_SUSPECTED,
                             HintBudget{512, 256}, 7);
  REQUIRE(turns.size() == 4);
  for (auto& t : turns) CHECK(t.max == 128);
  for (auto& t : turns) CHECK(t.route == HintRoute::TO_OWNER);
}

TEST_CASE("hint policy: a suspected owner is skipped and blocks no one") {
  auto map = ring({1, 2, 3});
  auto suspected = [](uint64_t id) { return id == 1; };
  auto turns = byOwner(planHintRound(map, {{1, 5000}, {2, 4}}, suspected, HintBudget{}, 0));
  CHECK(turns.count(1) == 0);
  REQUIRE(turns.count(2) == 1);
  CHECK(turns[2].max == 4);

  // Once it is believed up again it is served.
  auto later = byOwner(planHintRound(map, {{1, 5000}, {2, 4}}, NONE_SUSPECTED, HintBudget{}, 1));
  CHECK(later.count(1) == 1);
}

TEST_CASE("hint policy: hints for an owner that left the ring go to the key's current owners") {
  auto map = ring({1, 2, 3});
  // The detector knows nothing of a node that left: its belief must not keep the hints here.
  auto suspected = [](uint64_t id) { return id == 9; };
  auto turns = byOwner(planHintRound(map, {{2, 1}, {9, 40}}, suspected, HintBudget{}, 0));
  REQUIRE(turns.count(9) == 1);
  CHECK(turns[9].route == HintRoute::TO_CURRENT_OWNERS);
  CHECK(turns[9].max == 40);
  CHECK(turns[2].route == HintRoute::TO_OWNER);

  uint64_t hash = 0x9e3779b97f4a7c15;
  auto targets = hintTargets(map, hash, 2);
  auto pref = map.preferenceList(map.partitionOf(hash), 2, 0);
  REQUIRE(targets.size() == 2);
  for (size_t i = 0; i < targets.size(); i++) CHECK(targets[i] == map.nodes()[pref.nodes[i]].id);
  CHECK(hintTargets(map, hash, 5).size() == 3);  // N past the member count: every member
}

TEST_CASE("hint policy: a hint for a node the sender's own map lacks is refused") {
  auto map = ring({1, 2, 3});
  CHECK_FALSE(checkHintOwner(map, 2, map.version()));
  CHECK_THAT(*checkHintOwner(map, 9, map.version()),
             Catch::StartsWith("invalid argument: a hint for node 9, which is not a member"));
  // Another map version may hold the node (removed since, or joined since): a correct write
  // is not failed, and planHintRound re-homes the hint while the node is not in the map.
  CHECK_FALSE(checkHintOwner(map, 9, map.version() - 1));
  CHECK_FALSE(checkHintOwner(map, 9, map.version() + 1));
  CHECK_FALSE(checkHintOwner(PartitionMap(), 9, 0));
}

TEST_CASE("hint policy: with no ring, nothing is decided") {
  PartitionMap none;
  CHECK(planHintRound(none, {{1, 10}}, NONE_SUSPECTED, HintBudget{}, 0).empty());
  CHECK(hintTargets(none, 42, 3).empty());
  auto map = ring({1});
  CHECK(planHintRound(map, {{1, 10}}, NONE_SUSPECTED, HintBudget{0, 10}, 0).empty());
  CHECK(planHintRound(map, {{1, 10}}, NONE_SUSPECTED, HintBudget{10, 0}, 0).empty());
  CHECK(planHintRound(map, {{1, 0}}, NONE_SUSPECTED, HintBudget{}, 0).empty());
}

TEST_CASE("hint policy: the plan does not depend on the backlog's order") {
  auto map = ring({1, 2, 3, 4, 5});
  std::vector<HintBacklog> backlog{{1, 7}, {2, 300}, {3, 1}, {4, 90}, {5, 2}, {11, 60}};
  auto expected = planHintRound(map, backlog, NONE_SUSPECTED, HintBudget{100, 50}, 3);
  std::mt19937 random(1);
  for (int i = 0; i < 20; i++) {
    std::shuffle(backlog.begin(), backlog.end(), random);
    CHECK(planHintRound(map, backlog, NONE_SUSPECTED, HintBudget{100, 50}, 3) == expected);
  }
}

TEST_CASE("hint policy: with more owners than budget, each is served within a few rounds") {
  auto map = ring({1, 2, 3});
  std::vector<HintBacklog> backlog;
  for (uint64_t id = 100; id < 110; id++) backlog.push_back({id, 50});  // all left the ring
  HintBudget budget{3, 256};
  size_t rounds = (backlog.size() + budget.perRound - 1) / budget.perRound;  // ceil(10 / 3)
  for (uint64_t first = 0; first < 12; first++) {
    std::set<uint64_t> served;
    for (uint64_t round = first; round < first + rounds; round++) {
      auto turns = planHintRound(map, backlog, NONE_SUSPECTED, budget, round);
      CHECK(total(turns) == 3);
      for (auto& t : turns) served.insert(t.ownerId);
    }
    CHECK(served.size() == backlog.size());
  }
}

TEST_CASE("hint policy: the remainder of an uneven split rotates from round to round") {
  auto map = ring({1, 2, 3});
  std::map<uint64_t, size_t> over3;
  for (uint64_t round = 0; round < 3; round++) {
    auto turns = planHintRound(map, {{1, 100}, {2, 100}, {3, 100}}, NONE_SUSPECTED,
                               HintBudget{4, 256}, round);
    CHECK(total(turns) == 4);
    for (auto& t : turns) over3[t.ownerId] += t.max;
  }
  for (auto& [owner, n] : over3) CHECK(n == 4);
}

TEST_CASE("hint policy: random backlogs, within budget, work-conserving, evenly shared") {
  std::mt19937_64 random(20240607);
  auto map = ring({1, 2, 3, 4, 5, 6});
  for (int trial = 0; trial < 500; trial++) {
    std::vector<HintBacklog> backlog;
    std::set<uint64_t> suspects;
    size_t owners = random() % 12;
    for (size_t i = 0; i < owners; i++) {
      uint64_t id = 1 + random() % 12;  // 1..6 members, 7..12 gone
      if (std::any_of(backlog.begin(), backlog.end(), [&](auto& b) { return b.ownerId == id; })) {
        continue;
      }
      backlog.push_back({id, random() % 4 == 0 ? 0 : random() % 400});
      if (random() % 4 == 0) suspects.insert(id);
    }
    HintBudget budget{random() % 600, 1 + random() % 300};
    auto suspected = [&](uint64_t id) { return suspects.count(id) > 0; };
    auto turns = planHintRound(map, backlog, suspected, budget, random() % 100);
    auto got = byOwner(turns);
    CHECK(total(turns) <= budget.perRound);

    size_t eligibleWant = 0;
    for (auto& b : backlog) {
      bool member = map.indexOf(b.ownerId).has_value();
      bool eligible = b.count > 0 && !(member && suspected(b.ownerId));
      if (!eligible) {
        CHECK(got.count(b.ownerId) == 0);
        continue;
      }
      size_t want = std::min<size_t>(b.count, budget.perOwner);
      eligibleWant += want;
      if (got.count(b.ownerId)) {
        CHECK(got[b.ownerId].max <= want);
        CHECK(got[b.ownerId].route ==
              (member ? HintRoute::TO_OWNER : HintRoute::TO_CURRENT_OWNERS));
      }
    }
    // Work-conserving: budget is left over only when every eligible owner got all it wants.
    CHECK(total(turns) == std::min(eligibleWant, budget.perRound));

    // Even: an owner gets more than another (by over one) only if the other got all it wants.
    for (auto& a : turns) {
      for (auto& b : backlog) {
        if (b.ownerId == a.ownerId || b.count == 0) continue;
        bool eligible = !(map.indexOf(b.ownerId) && suspected(b.ownerId));
        if (!eligible) continue;
        size_t bGot = got.count(b.ownerId) ? got[b.ownerId].max : 0;
        size_t bWants = std::min<size_t>(b.count, budget.perOwner);
        if (a.max > bGot + 1) CHECK(bGot == bWants);
      }
    }
  }
}

}  // namespace
}  // namespace dynkv

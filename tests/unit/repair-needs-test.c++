// Which way a repair goes (common/coordinator/repair-needs.h): a copy that already holds every
// version of the other is never sent to it, so a stale replica is only sent what it lacks; and
// whatever is left out was a no-op, checked against sync() itself over random histories.
#include "repair-needs.h"

#include <catch2/catch.hpp>
#include <random>

#include "replica-fixture.h"

namespace dynkv {
namespace {

const Actor A{1, 1}, B{2, 1}, C{3, 7};

const RepairNeeds FETCH{true, false}, PUSH{false, true}, BOTH{true, true};

std::optional<CausalSummary> of(const Object& o) { return causalSummary(o); }

TEST_CASE("repair needs: a copy one side lacks moves one way only") {
  auto one = written({}, A, "x");
  CHECK(repairNeeds(std::nullopt, of(one)) == FETCH);
  CHECK(repairNeeds(of(one), std::nullopt) == PUSH);
  CHECK(repairNeeds(std::nullopt, std::nullopt) == RepairNeeds{});
}

TEST_CASE("repair needs: the copy whose version vector descends the other's is only sent") {
  auto old = written({}, A, "old");
  auto newer = written(old, B, "new");  // B overwrote A's version: its vv descends old's
  CHECK(repairNeeds(of(newer), of(old)) == PUSH);
  CHECK(repairNeeds(of(old), of(newer)) == FETCH);
  // A tombstone is a version like any other.
  auto deleted = coordinatePut(newer, C, newer.vv, std::nullopt, 3000);
  CHECK(repairNeeds(of(deleted), of(newer)) == PUSH);
  CHECK(repairNeeds(of(old), of(deleted)) == FETCH);
}

TEST_CASE("repair needs: concurrent copies, or summaries that cannot tell, go both ways") {
  auto left = written({}, A, "l"), right = written({}, B, "r");
  CHECK(repairNeeds(of(left), of(right)) == BOTH);
  // Equal counters while the digests differ: only a sync can tell.
  CHECK(repairNeeds(of(left), of(left)) == BOTH);
  // Another kind of namespace.
  CHECK(repairNeeds(of(left), of(lastWriteWinsObject(std::string("v"), 5))) == BOTH);
}

TEST_CASE("repair needs: last-write-wins moves the later version; a tie goes both ways") {
  auto early = lastWriteWinsObject(std::string("a"), 100);
  auto late = lastWriteWinsObject(std::nullopt, 200);  // a later delete wins
  CHECK(repairNeeds(of(late), of(early)) == PUSH);
  CHECK(repairNeeds(of(early), of(late)) == FETCH);
  CHECK(repairNeeds(of(early), of(lastWriteWinsObject(std::string("b"), 100))) == BOTH);
}

TEST_CASE("repair needs: a direction left out is one sync() would not have changed") {
  // Three replicas of one key, each written by its own node (an actor writes only its own
  // copy, as storage nodes do), some writes with a stale context (making siblings), and now and
  // then two replicas syncing: whenever repairNeeds() leaves a direction out between two of
  // them, syncing that way changes no version.
  std::mt19937_64 rng(GENERATE(1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u));
  const Actor actors[] = {A, B, C};
  Object copies[3];
  Object stale;  // a context read some time ago
  int64_t now = 1000;
  for (int i = 0; i < 400; i++) {
    size_t n = rng() % 3;
    auto& copy = copies[n];
    switch (rng() % 5) {
      case 0:
      case 1:
        copy = coordinatePut(copy, actors[n], copy.vv,
                             rng() % 4 ? std::optional<std::string>("v" + std::to_string(i))
                                       : std::nullopt,
                             now++);
        break;
      case 2:
        copy = coordinatePut(copy, actors[n], stale.vv, "c" + std::to_string(i), now++);
        break;
      case 3:
        stale = copies[rng() % 3];
        break;
      case 4:
        copy = sync(copy, copies[rng() % 3]);
        break;
    }
    for (size_t l = 0; l < 3; l++) {
      for (size_t p = 0; p < 3; p++) {
        auto& local = copies[l];
        auto& peer = copies[p];
        if (l == p || causalDigest(local) == causalDigest(peer)) continue;
        auto needs = repairNeeds(local.empty() ? std::nullopt : of(local),
                                 peer.empty() ? std::nullopt : of(peer));
        INFO("step " << i << ", replicas " << l << " and " << p);
        CHECK((needs.fetch || needs.push));
        if (!needs.push) CHECK(causalDigest(sync(peer, local)) == causalDigest(peer));
        if (!needs.fetch) CHECK(causalDigest(sync(local, peer)) == causalDigest(local));
      }
    }
  }
}

}  // namespace
}  // namespace dynkv

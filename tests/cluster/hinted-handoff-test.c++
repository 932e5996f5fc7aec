// Hinted handoff in one process: a holder's HintedHandoff delivering over loopback to a live
// owner's storaged service while another owner is dead (a closed port). Rounds are driven by
// calling deliverRound(), each awaited with a deadline.
#include <catch2/catch.hpp>
#include <kj/async-io.h>
#include <kj/debug.h>

#include <optional>

#include "codec.h"
#include "fixed-membership.h"
#include "hash-trees.h"
#include "hash.h"
#include "hinted-handoff.h"
#include "accept-loop.h"
#include "service.h"
#include "versioned-store.h"

namespace dynkv::storaged {
namespace {

// Node ids: the dead owner's sort first, so its hints come first in the hint store.
constexpr uint64_t DEAD = 1;
constexpr uint64_t LIVE = 2;
constexpr uint64_t HOLDER = 3;
constexpr uint64_t GONE = 9;  // an owner that has left the ring

constexpr auto DEADLINE = 30 * kj::SECONDS;

struct Fixture {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::Timer& timer = io.provider->getTimer();
  Limits limits;

  kj::Own<kj::ConnectionReceiver> liveListener = listen();
  std::string liveAddress = "127.0.0.1:" + std::to_string(liveListener->getPort());
  std::string deadAddress = "127.0.0.1:" + std::to_string(listen()->getPort());  // closed
  MapSnapshot map = std::make_shared<const PartitionMap>(PartitionMap::build(
      {NodeInfo{DEAD, "dead", deadAddress, "", 1}, NodeInfo{LIVE, "live", liveAddress, "", 1},
       NodeInfo{HOLDER, "holder", "127.0.0.1:1", "", 1}},
      4, 1));

  // The live owner: a storaged service on loopback.
  kj::Own<StorageEngine> liveEngine = newMemoryEngine();
  GroupCommit liveCommits{*liveEngine};
  HintStore liveHints{liveCommits, limits};
  HashTrees liveTrees{*liveEngine, limits};
  VersionedStore live{liveCommits, liveHints, liveTrees, Actor{LIVE, 1}, limits};
  FixedMembership liveMembership{map};
  Service liveService{live, liveHints, liveMembership, timer, {"test", "s3cret"}};
  kj::Promise<void> serving =
      serve(*liveListener, [this]() { return liveService.connect(); },
            AcceptOptions{readerOptionsFor(limits.maxValueBytes)})
          .eagerlyEvaluate([](kj::Exception&& e) { KJ_LOG(ERROR, "serving failed", e); });

  // The holder: hints and the loop that hands them off.
  kj::Own<StorageEngine> holderEngine = newMemoryEngine();
  GroupCommit holderCommits{*holderEngine};
  HintStore holderHints{holderCommits, limits};
  HashTrees holderTrees{*holderEngine, limits};
  VersionedStore holder{holderCommits, holderHints, holderTrees, Actor{HOLDER, 1}, limits};
  FixedMembership holderMembership{map};
  FailureDetector detector;
  NodePool pool{io.provider->getNetwork(), timer, detector, "test", "s3cret", limits.maxValueBytes};
  HintedHandoff handoff{holder, holderHints, holderMembership, pool, timer, 3};

  kj::Own<kj::ConnectionReceiver> listen() {
    return io.provider->getNetwork().parseAddress("127.0.0.1:0").wait(io.waitScope)->listen();
  }

  StorageKey key(const std::string& k) {
    return StorageKey{map->partitionOf(keyHash("", k)), "", k};
  }

  void hint(uint64_t owner, const std::string& k) {
    auto object = coordinatePut(Object{}, Actor{HOLDER, 1}, {}, "value-" + k, 10);
    holderHints.storeHint(owner, key(k), kj::mv(object)).wait(io.waitScope);
  }

  size_t round() { return timer.timeoutAfter(DEADLINE, handoff.deliverRound()).wait(io.waitScope); }

  bool liveHolds(const std::string& k) {
    auto object = live.get(key(k));
    return object && object->siblings.size() == 1 && object->siblings[0].value == "value-" + k;
  }

  bool heldLocally(const std::string& k) {
    // In this node's own objects, not merely among the hints it holds for others.
    auto chunk = holder.scanPartition(key(k).partition, "", size_t(1) << 20);
    for (auto& [stored, object] : chunk.entries) {
      if (stored.key == k) return true;
    }
    return false;
  }
};

TEST_CASE("hinted handoff: a dead owner's backlog does not hold up a live owner's hints") {
  Fixture f;
  for (int i = 0; i < 300; i++) f.hint(DEAD, "dead-" + std::to_string(i));
  for (int i = 0; i < 40; i++) f.hint(LIVE, "live-" + std::to_string(i));
  REQUIRE(f.holderHints.hintBacklog() == std::vector<HintBacklog>{{DEAD, 300}, {LIVE, 40}});

  size_t rounds = 0;
  auto allDelivered = [&]() {
    for (int i = 0; i < 40; i++) {
      if (!f.liveHolds("live-" + std::to_string(i))) return false;
    }
    return true;
  };
  while (!allDelivered() && rounds < 3) {
    f.round();
    rounds++;
  }
  CHECK(allDelivered());
  // Delivered hints are deleted; the dead owner's all stay for when it comes back.
  CHECK(f.holderHints.hintBacklog() == std::vector<HintBacklog>{{DEAD, 300}});
  CHECK(f.holderHints.hintsFor(DEAD, "", 1000).hints.size() == 300);

  // Later rounds deliver nothing and keep every hint for the dead owner, whether they skip it
  // (suspected) or try it again (once the pool's backoff, measured in real time, has passed).
  CHECK(f.round() == 0);
  CHECK(f.holderHints.hintCount() == 300);
}

TEST_CASE("hinted handoff: a live owner's backlog is handed off over rounds, within budget") {
  Fixture f;
  for (int i = 0; i < 600; i++) f.hint(LIVE, "live-" + std::to_string(i));
  CHECK(f.round() == HintBudget{}.perOwner);  // one owner gets at most its cap per round
  CHECK(f.holderHints.hintCount() == 600 - HintBudget{}.perOwner);
  for (int n = 0; n < 3 && f.holderHints.hintCount() > 0; n++) f.round();
  CHECK(f.holderHints.hintCount() == 0);
  for (int i = 0; i < 600; i += 37) CHECK(f.liveHolds("live-" + std::to_string(i)));
}

TEST_CASE("hinted handoff: each hint waits for a background slot") {
  Fixture f;
  f.hint(LIVE, "a");
  f.hint(LIVE, "b");
  AdmissionOptions oneSlot;
  oneSlot.maxSlots = 1;
  BackgroundAdmission admission(f.timer, oneSlot);  // not run: one slot throughout
  HintedHandoff throttled{f.holder, f.holderHints, f.holderMembership, f.pool, f.timer, 3, {},
                          &admission};
  std::optional<BackgroundAdmission::Slot> held = admission.acquire().wait(f.io.waitScope);

  auto round = throttled.deliverRound().eagerlyEvaluate(nullptr);
  CHECK_FALSE(round.poll(f.io.waitScope));
  CHECK(admission.stats().waiting == 1);  // the live owner's turn, for its first hint
  CHECK_FALSE(f.liveHolds("a"));

  held.reset();
  CHECK(f.timer.timeoutAfter(DEADLINE, kj::mv(round)).wait(f.io.waitScope) == 2);
  CHECK(f.liveHolds("a"));
  CHECK(f.liveHolds("b"));
  CHECK(admission.stats().inUse == 0);
}

TEST_CASE("hinted handoff: hints for an owner that left the ring go to the key's owners") {
  Fixture f;
  std::vector<std::string> keys;
  for (int i = 0; i < 12; i++) keys.push_back("orphan-" + std::to_string(i));
  for (auto& k : keys) f.hint(GONE, k);

  // N = 3 of three members: every key's current owners are the dead node, the live one and
  // the holder itself.
  CHECK(f.round() == keys.size());
  for (auto& k : keys) {
    CHECK(f.liveHolds(k));    // sent as an owner write
    CHECK(f.heldLocally(k));  // the holder is an owner now: stored as its own
  }
  // The dead owner's share is kept here as hints for it; nothing is left for the gone one.
  CHECK(f.holderHints.hintBacklog() == std::vector<HintBacklog>{{DEAD, keys.size()}});
  auto forDead = f.holderHints.hintsFor(DEAD, "", 100).hints;
  REQUIRE(forDead.size() == keys.size());
  CHECK(forDead[0].object.siblings[0].value->rfind("value-orphan-", 0) == 0);
}

}  // namespace
}  // namespace dynkv::storaged

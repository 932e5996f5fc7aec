// The versioned store over the in-memory engine: coordinator writes, replication, the kind and
// sibling rules, and failures that must store nothing.
#include <catch2/catch.hpp>
#include <kj/async.h>

#include "codec.h"
#include "store-fixture.h"

namespace dynkv::storaged {
namespace {

using Fixture = StoreFixture;

TEST_CASE("versioned store: coordinator writes mint dots of this node and keep concurrent blind "
          "writes") {
  Fixture f;
  auto first = f.put("k", "a");
  auto second = f.put("k", "b");
  CHECK(values(second) == std::vector<std::string>{"a", "b"});
  CHECK(second.siblings[1].dot.actor == f.self);
  auto stored = f.store.get(f.key("k"));
  REQUIRE(stored);
  CHECK(*stored == second);

  auto resolved = f.put("k", "ab", second.vv);
  CHECK(values(resolved) == std::vector<std::string>{"ab"});
}

TEST_CASE("versioned store: a retracted version is gone, a concurrent one stays, and a second "
          "retraction finds nothing") {
  Fixture f;
  f.put("k", "a");
  auto both = f.put("k", "b");
  auto minted = both.siblings[1].dot;
  auto rootBefore = f.trees.digest();
  CHECK(f.store.retract(f.key("k"), minted, 50).wait(f.waitScope));
  auto stored = f.store.get(f.key("k"));
  REQUIRE(stored);
  CHECK(values(*stored) == std::vector<std::string>{"a"});
  CHECK(stored->vv.covers(minted));
  CHECK(f.trees.digest() != rootBefore);  // the tree follows, so anti-entropy spreads it
  CHECK_FALSE(f.store.retract(f.key("k"), minted, 60).wait(f.waitScope));
  CHECK_FALSE(f.store.retract(f.key("absent"), minted, 60).wait(f.waitScope));

  // The only version: a tombstone with a dot above every counter used stands in for it.
  auto alone = f.put("j", "c");
  CHECK(f.store.retract(f.key("j"), alone.siblings[0].dot, 70).wait(f.waitScope));
  auto tombstone = f.store.get(f.key("j"));
  REQUIRE(tombstone);
  REQUIRE(tombstone->siblings.size() == 1);
  CHECK(tombstone->siblings[0].isTombstone());
  CHECK(tombstone->siblings[0].dot.counter > alone.siblings[0].dot.counter);
}

TEST_CASE("versioned store: writes in one event-loop turn share one transaction (group commit)") {
  Fixture f;
  int before = f.engine.writes;
  auto a = f.store.coordinatePut(f.key("a"), Versioning::VECTOR_CLOCK, {}, "1", 1);
  auto b = f.store.coordinatePut(f.key("b"), Versioning::VECTOR_CLOCK, {}, "2", 1);
  auto c = f.store.replicate(f.key("c"), lastWriteWinsObject(std::string("3"), 5));
  a.wait(f.waitScope);
  b.wait(f.waitScope);
  c.wait(f.waitScope);
  CHECK(f.engine.writes == before + 1);
  CHECK(f.store.get(f.key("a")));
  CHECK(f.store.get(f.key("c")));
}

TEST_CASE("versioned store: replicate stores sync(local, incoming) and never loses a local "
          "version") {
  Fixture f;
  auto local = f.put("k", "mine");
  Object theirs = coordinatePut(Object{}, Actor{99, 1}, {}, std::string("theirs"), 2000);
  f.store.replicate(f.key("k"), theirs).wait(f.waitScope);
  auto stored = f.store.get(f.key("k"));
  REQUIRE(stored);
  CHECK(*stored == sync(local, theirs));
  CHECK(stored->siblings.size() == 2);
}

TEST_CASE("versioned store: an engine failure rejects the whole batch and stores nothing") {
  Fixture f;
  f.put("k", "before");
  f.engine.failWrites = true;
  auto a = f.store.coordinatePut(f.key("k"), Versioning::VECTOR_CLOCK, {}, "x", 1);
  auto b = f.store.coordinatePut(f.key("other"), Versioning::VECTOR_CLOCK, {}, "y", 1);
  CHECK_THROWS_WITH(a.wait(f.waitScope), Catch::Contains("storage full"));
  CHECK_THROWS_WITH(b.wait(f.waitScope), Catch::Contains("storage full"));
  f.engine.failWrites = false;
  CHECK(values(*f.store.get(f.key("k"))) == std::vector<std::string>{"before"});
  CHECK_FALSE(f.store.get(f.key("other")));
}

TEST_CASE("versioned store: a refused write does not fail the others in its batch") {
  Fixture f;
  f.store.replicate(f.key("lww"), lastWriteWinsObject(std::string("v"), 1)).wait(f.waitScope);
  auto bad = f.store.coordinatePut(f.key("lww"), Versioning::VECTOR_CLOCK, {}, "x", 1);
  auto good = f.store.coordinatePut(f.key("vc"), Versioning::VECTOR_CLOCK, {}, "y", 1);
  CHECK_THROWS_WITH(bad.wait(f.waitScope), Catch::Contains("kind mismatch"));
  CHECK(good.wait(f.waitScope).siblings.size() == 1);
}

TEST_CASE("versioned store: a replica of another kind is refused, the stored object kept") {
  Fixture f;
  auto mine = f.put("k", "vc");
  auto other = f.store.replicate(f.key("k"), lastWriteWinsObject(std::string("lww"), 5));
  CHECK_THROWS_WITH(other.wait(f.waitScope), Catch::Contains("kind mismatch"));
  CHECK(*f.store.get(f.key("k")) == mine);
}

TEST_CASE("versioned store: more siblings than the limit are refused with a message naming it") {
  Fixture f;
  for (uint32_t i = 0; i < Limits::MAX_SIBLINGS; i++) f.put("k", "v");
  auto more = f.store.coordinatePut(f.key("k"), Versioning::VECTOR_CLOCK, {}, "v", 1);
  CHECK_THROWS_WITH(more.wait(f.waitScope), Catch::Contains("limit"));
  CHECK(f.store.get(f.key("k"))->siblings.size() == Limits::MAX_SIBLINGS);
}

TEST_CASE("versioned store: a replica whose merge would pass the sibling limit is refused, the "
          "stored object kept readable") {
  // Two valid objects of MAX_SIBLINGS concurrent versions each merge into twice the limit:
  // stored, the key could never be decoded again.
  Fixture f;
  for (uint32_t i = 0; i < Limits::MAX_SIBLINGS; i++) f.put("k", "mine");
  Object theirs;
  for (uint32_t i = 0; i < Limits::MAX_SIBLINGS; i++) {
    theirs = coordinatePut(theirs, Actor{99, 1}, {}, std::string("theirs"), 2000);
  }
  REQUIRE(theirs.siblings.size() == Limits::MAX_SIBLINGS);
  auto refused = f.store.replicate(f.key("k"), theirs);
  CHECK_THROWS_WITH(refused.wait(f.waitScope),
                    Catch::Contains("128 siblings; the limit is 64 (MAX_SIBLINGS)"));
  auto stored = f.store.get(f.key("k"));
  REQUIRE(stored);
  CHECK(values(*stored) == std::vector<std::string>(Limits::MAX_SIBLINGS, "mine"));

  // The hint store merges by the same rule.
  f.hints.storeHint(77, f.key("h"), theirs).wait(f.waitScope);
  Object more = coordinatePut(Object{}, Actor{98, 1}, {}, std::string("x"), 3000);
  CHECK_THROWS_WITH(f.hints.storeHint(77, f.key("h"), more).wait(f.waitScope),
                    Catch::Contains("65 siblings"));
  CHECK(f.store.get(f.key("h"))->siblings.size() == Limits::MAX_SIBLINGS);
}

TEST_CASE("versioned store: a replica whose merge would pass the version-vector limit is "
          "refused, nothing stored") {
  Fixture f;
  f.put("k", "mine");
  Object theirs;  // the most entries a decoder accepts, each a different node
  for (uint64_t i = 0; i < MAX_DECODED_VV_ENTRIES; i++) theirs.vv.set(Actor{100 + i, 1}, 1, 10);
  theirs.siblings.push_back(Sibling{Dot{Actor{100, 1}, 1}, 10, std::string("theirs")});
  REQUIRE_FALSE(checkStorable(theirs, f.limits));
  auto refused = f.store.replicate(f.key("k"), theirs);
  CHECK_THROWS_WITH(refused.wait(f.waitScope),
                    Catch::Contains("41 version-vector entries; the limit is 40"));
  CHECK(values(*f.store.get(f.key("k"))) == std::vector<std::string>{"mine"});
}

TEST_CASE("versioned store: a forged context whose counter would wrap is refused, nothing "
          "stored") {
  Fixture f;
  auto acked = f.put("k", "acked");
  VersionVector forged;
  forged.set(f.self, ~uint64_t(0), 5);
  auto refused = f.store.coordinatePut(f.key("k"), Versioning::VECTOR_CLOCK, forged, "x", 1);
  CHECK_THROWS_WITH(refused.wait(f.waitScope), Catch::Contains("MAX_COUNTER"));
  CHECK(*f.store.get(f.key("k")) == acked);
  // The node's counters are untouched: its next write takes the next dot.
  CHECK(f.put("k", "after").vv.counter(f.self) == acked.vv.counter(f.self) + 1);
}

TEST_CASE("versioned store: a partition is scanned in chunks, its own keys only, from a cursor") {
  Fixture f;
  for (auto k : {"c", "a", "b"}) f.put(k, "v");
  f.store.replicate(StorageKey{6, "", "next partition"}, lastWriteWinsObject(std::string("v"), 1))
      .wait(f.waitScope);
  Object hinted = coordinatePut(Object{}, Actor{1, 1}, {}, std::string("held"), 10);
  f.hints.storeHint(77, f.key("hinted"), hinted).wait(f.waitScope);  // not this node's own

  std::vector<std::string> seen;
  std::string cursor;
  for (;;) {
    auto chunk = f.store.scanPartition(5, cursor, 1);  // one object a chunk
    for (auto& [key, object] : chunk.entries) {
      CHECK(key.partition == 5);
      seen.push_back(key.key);
    }
    cursor = chunk.next;
    if (chunk.done) break;
    REQUIRE(chunk.entries.size() == 1);
  }
  CHECK(seen == std::vector<std::string>{"a", "b", "c"});
}

}  // namespace
}  // namespace dynkv::storaged

// The hint store over the in-memory engine: hints kept per owner, read from a cursor per owner,
// removed only if unchanged, counted in memory, and the previous layout migrated at open.
#include <catch2/catch.hpp>
#include <kj/async.h>
#include <kj/vector.h>

#include "codec.h"
#include "store-fixture.h"

namespace dynkv::storaged {
namespace {

using Fixture = StoreFixture;

TEST_CASE("hint store: hints are kept per owner, visible to reads, and removed only if "
          "unchanged") {
  Fixture f;
  Object o = coordinatePut(Object{}, Actor{1, 1}, {}, std::string("hinted"), 10);
  f.hints.storeHint(77, f.key("k"), o).wait(f.waitScope);
  f.hints.storeHint(88, f.key("j"), o).wait(f.waitScope);
  CHECK(f.hints.hintCount() == 2);

  // A fallback's read includes what it holds for others.
  auto seen = f.store.get(f.key("k"));
  REQUIRE(seen);
  CHECK(values(*seen) == std::vector<std::string>{"hinted"});

  auto forOwner = f.hints.hintsFor(77, "", 10);
  REQUIRE(forOwner.hints.size() == 1);
  CHECK(forOwner.end);
  CHECK(forOwner.hints[0].key.key == "k");
  CHECK(forOwner.hints[0].object == o);

  // The hint changes between delivery and deletion: it must stay.
  Object newer = coordinatePut(o, Actor{1, 1}, o.vv, std::string("newer"), 20);
  f.hints.storeHint(77, f.key("k"), newer).wait(f.waitScope);
  f.hints.removeHint(forOwner.hints[0]).wait(f.waitScope);
  CHECK(f.hints.hintCount() == 2);

  auto again = f.hints.hintsFor(77, "", 10);
  f.hints.removeHint(again.hints[0]).wait(f.waitScope);
  CHECK(f.hints.hintCount() == 1);
  CHECK(f.hints.hintBacklog() == std::vector<HintBacklog>{{88, 1}});
  CHECK(f.hints.hintsFor(77, "", 10).hints.empty());

  // Removing it twice changes nothing, nor does removing what was never held.
  f.hints.removeHint(again.hints[0]).wait(f.waitScope);
  CHECK(f.hints.hintCount() == 1);
}

TEST_CASE("hint store: one owner's hints are read from a cursor without passing over the "
          "others'") {
  Fixture f;
  Object o = coordinatePut(Object{}, Actor{1, 1}, {}, std::string("v"), 10);
  // Owner 1 sorts first and holds a large backlog; owners 2 and 3 hold a few each.
  kj::Vector<kj::Promise<void>> writes;
  for (int i = 0; i < 500; i++) {
    writes.add(f.hints.storeHint(1, f.key(("a" + std::to_string(i)).c_str()), o));
  }
  for (auto k : {"e", "b", "d", "a", "c"}) writes.add(f.hints.storeHint(2, f.key(k), o));
  writes.add(f.hints.storeHint(3, f.key("a"), o));
  kj::joinPromises(writes.releaseAsArray()).wait(f.waitScope);
  CHECK(f.hints.hintBacklog() == std::vector<HintBacklog>{{1, 500}, {2, 5}, {3, 1}});

  std::vector<std::string> read;
  std::string cursor;
  for (;;) {
    f.engine.visited = 0;
    auto page = f.hints.hintsFor(2, cursor, 2);
    CHECK(f.engine.visited <= 3);  // O(max): one more to know whether there is more
    for (auto& h : page.hints) {
      CHECK(h.ownerId == 2);
      read.push_back(h.key.key);
    }
    cursor = page.next;
    if (page.end) break;
    REQUIRE(page.hints.size() == 2);
  }
  CHECK(read == std::vector<std::string>{"a", "b", "c", "d", "e"});

  // Past the last hint: an empty page that says so, and the cursor stays put.
  auto past = f.hints.hintsFor(2, cursor, 2);
  CHECK(past.hints.empty());
  CHECK(past.end);
  CHECK(past.next == cursor);

  // Hints stored behind the cursor are found after it wraps; ones ahead of it straight away.
  f.hints.storeHint(2, f.key("f"), o).wait(f.waitScope);
  auto more = f.hints.hintsFor(2, cursor, 2);
  REQUIRE(more.hints.size() == 1);
  CHECK(more.hints[0].key.key == "f");
  CHECK(f.hints.hintsFor(3, "", 10).hints.size() == 1);
}

TEST_CASE("hint store: a removed owner's hints move to the key's current owner without "
          "disturbing another owner's cursor") {
  // What hinted handoff does for an owner that left the ring and a current owner that cannot
  // take the write yet (hinted-handoff.h): keep the hint for the current owner, delete the
  // removed owner's. Meanwhile a down owner's turn is half-way through its own hints.
  constexpr uint64_t DOWN = 1, REMOVED = 2, CURRENT = 3;
  Fixture f;
  Object o = coordinatePut(Object{}, Actor{1, 1}, {}, std::string("v"), 10);
  kj::Vector<kj::Promise<void>> writes;
  for (auto k : {"a", "b", "c", "d"}) writes.add(f.hints.storeHint(DOWN, f.key(k), o));
  for (auto k : {"b", "x", "y"}) writes.add(f.hints.storeHint(REMOVED, f.key(k), o));
  kj::joinPromises(writes.releaseAsArray()).wait(f.waitScope);

  auto first = f.hints.hintsFor(DOWN, "", 2);
  REQUIRE(first.hints.size() == 2);
  auto cursor = first.next;

  // Each removed owner's hint is kept for the current owner and deleted for the removed one,
  // both in the same turn: one transaction, so a crash leaves the hint in one place or the other.
  int before = f.engine.writes;
  auto moving = f.hints.hintsFor(REMOVED, "", 10);
  REQUIRE(moving.end);
  kj::Vector<kj::Promise<void>> moves;
  for (auto& hint : moving.hints) {
    moves.add(f.hints.storeHint(CURRENT, hint.key, hint.object));
    moves.add(f.hints.removeHint(hint));
  }
  kj::joinPromises(moves.releaseAsArray()).wait(f.waitScope);
  CHECK(f.engine.writes == before + 1);
  CHECK(f.hints.hintBacklog() == std::vector<HintBacklog>{{DOWN, 4}, {CURRENT, 3}});
  CHECK(f.hints.hintsFor(REMOVED, "", 10).hints.empty());

  // The down owner's turn goes on where it stopped, as if nothing else had happened.
  auto rest = f.hints.hintsFor(DOWN, cursor, 10);
  REQUIRE(rest.hints.size() == 2);
  CHECK(rest.hints[0].key.key == "c");
  CHECK(rest.hints[1].key.key == "d");
  CHECK(rest.end);
  // The key both held hints for is still one object to a read: the hints merged.
  CHECK(*f.store.get(f.key("b")) == o);
}

TEST_CASE("hint store: hint counts per owner are rebuilt when the store is opened again") {
  Fixture f;
  Object o = coordinatePut(Object{}, Actor{1, 1}, {}, std::string("v"), 10);
  auto writes = kj::heapArrayBuilder<kj::Promise<void>>(4);
  writes.add(f.hints.storeHint(5, f.key("a"), o));
  writes.add(f.hints.storeHint(5, f.key("a"), o));  // the same key in the same batch: one hint
  writes.add(f.hints.storeHint(5, f.key("b"), o));
  writes.add(f.hints.storeHint(6, f.key("a"), o));
  kj::joinPromises(writes.finish()).wait(f.waitScope);
  CHECK(f.hints.hintBacklog() == std::vector<HintBacklog>{{5, 2}, {6, 1}});

  HintStore reopened{f.commits, f.limits};
  VersionedStore reopenedObjects{f.commits, reopened, f.trees, f.self, f.limits};
  CHECK(reopened.hintBacklog() == std::vector<HintBacklog>{{5, 2}, {6, 1}});
  CHECK(reopenedObjects.get(f.key("b")));
}

TEST_CASE("hint store: the partitions hints are held for are counted, and changes announced") {
  Fixture f;
  Object o = coordinatePut(Object{}, Actor{1, 1}, {}, std::string("v"), 10);
  int announced = 0;
  f.hints.onPartitionsChanged([&announced]() { announced++; });
  f.hints.storeHint(5, StorageKey{7, "", "a"}, o).wait(f.waitScope);
  f.hints.storeHint(6, StorageKey{7, "", "b"}, o).wait(f.waitScope);  // partition 7 again
  f.hints.storeHint(5, StorageKey{2, "", "c"}, o).wait(f.waitScope);
  CHECK(f.hints.hintedPartitions() == std::vector<uint32_t>{2, 7});
  CHECK(announced == 2);  // 7 and 2 appeared; the second hint for 7 changed nothing

  HintStore reopened{f.commits, f.limits};
  CHECK(reopened.hintedPartitions() == std::vector<uint32_t>{2, 7});

  // Delivered one by one: partition 7 stays hinted until its last hint is gone.
  auto five = f.hints.hintsFor(5, "", 10);
  REQUIRE(five.hints.size() == 2);
  for (auto& h : five.hints) f.hints.removeHint(h).wait(f.waitScope);
  CHECK(f.hints.hintedPartitions() == std::vector<uint32_t>{7});
  CHECK(announced == 3);
  f.hints.removeHint(f.hints.hintsFor(6, "", 10).hints[0]).wait(f.waitScope);
  CHECK(f.hints.hintedPartitions().empty());
  CHECK(announced == 4);
}

TEST_CASE("hint store: counts follow what is committed, also for a write nobody waits for") {
  Fixture f;
  Object o = coordinatePut(Object{}, Actor{1, 1}, {}, std::string("v"), 10);
  // A caller that goes away (a cancelled RPC) drops its promise; the hint is stored and counted.
  { auto dropped = f.hints.storeHint(5, f.key("dropped"), o); }
  f.hints.storeHint(5, f.key("kept"), o).wait(f.waitScope);
  CHECK(f.hints.hintBacklog() == std::vector<HintBacklog>{{5, 2}});

  // A batch that fails counts nothing.
  f.engine.failCommits = true;
  auto failed = f.hints.storeHint(6, f.key("a"), o);
  CHECK_THROWS_WITH(failed.wait(f.waitScope), Catch::Contains("commit failed"));
  f.engine.failCommits = false;
  CHECK(f.hints.hintBacklog() == std::vector<HintBacklog>{{5, 2}});
  CHECK(f.hints.hintsFor(6, "", 10).hints.empty());
}

TEST_CASE("hint store: hints stored in the previous layout are rewritten when the store opens") {
  // Before per-owner cursors: [storage key length: 2 BE][storage key][owner id: 8 BE], with no
  // layout record in META.
  constexpr uint64_t LOW = 3, HIGH = uint64_t(1) << 56;
  auto engine = newMemoryEngine();
  Object o = coordinatePut(Object{}, Actor{1, 1}, {}, std::string("old"), 10);
  auto words = objectToWords(o);
  auto legacyKey = [](uint64_t owner, const StorageKey& key) {
    auto storageKey = encodeStorageKey(key);
    std::string out{char(storageKey.size() >> 8), char(storageKey.size() & 0xff)};
    out += storageKey;
    for (int i = 0; i < 8; i++) out.push_back(char(owner >> (56 - 8 * i)));
    return out;
  };
  auto bytes = [](const std::string& s) {
    return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
  };
  engine->write([&](WriteTransaction& txn) {
    for (uint64_t owner : {LOW, HIGH}) {
      for (auto k : {"x", "y"}) {
        txn.put(Table::HINTS, bytes(legacyKey(owner, StorageKey{5, "", k})), words.asBytes());
      }
    }
  });

  kj::EventLoop loop;
  kj::WaitScope waitScope(loop);
  Limits limits;
  {
    GroupCommit commits(*engine);
    HintStore hints(commits, limits);
    HashTrees trees(commits.engine(), limits);
    VersionedStore store(commits, hints, trees, Actor{42, 7}, limits);
    CHECK(hints.hintBacklog() == std::vector<HintBacklog>{{LOW, 2}, {HIGH, 2}});
    auto page = hints.hintsFor(LOW, "", 10);
    REQUIRE(page.hints.size() == 2);
    CHECK(page.hints[0].key.key == "x");
    CHECK(page.hints[1].object == o);
    CHECK(store.get(StorageKey{5, "", "y"}));
    hints.removeHint(page.hints[0]).wait(waitScope);
  }
  // Opened again: already in the current layout, nothing is rewritten twice.
  GroupCommit commits(*engine);
  HintStore again(commits, limits);
  CHECK(again.hintBacklog() == std::vector<HintBacklog>{{LOW, 1}, {HIGH, 2}});
  CHECK(again.hintsFor(HIGH, "", 10).hints.size() == 2);
}

}  // namespace
}  // namespace dynkv::storaged

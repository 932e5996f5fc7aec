// The node's object store over the in-memory engine: coordinator writes, replication,
// group commit, hints, and failures that must store nothing.
#include <catch2/catch.hpp>
#include <kj/async.h>
#include <kj/debug.h>
#include <kj/timer.h>
#include <kj/vector.h>

#include "codec.h"
#include "engine.h"
#include "store.h"

namespace dynkv::storaged {
namespace {

// Counts the keys a read visits, to show what a read costs.
class CountingRead final : public ReadTransaction {
 public:
  CountingRead(ReadTransaction& inner, size_t& visited) : inner_(inner), visited_(visited) {}
  kj::Maybe<Bytes> get(Table table, Bytes key) override { return inner_.get(table, key); }
  void scan(Table table, Bytes begin, Bytes end,
            kj::FunctionParam<bool(Bytes key, Bytes value)> visit) override {
    inner_.scan(table, begin, end, [&](Bytes key, Bytes value) {
      visited_++;
      return visit(key, value);
    });
  }

 private:
  ReadTransaction& inner_;
  size_t& visited_;
};

// Wraps an engine to count transactions and visited keys and to fail on demand, as LevelDB's
// FaultInjectionTestEnv wraps its Env.
class FaultyEngine final : public StorageEngine {
 public:
  explicit FaultyEngine(kj::Own<StorageEngine> inner) : inner_(kj::mv(inner)) {}
  void read(kj::FunctionParam<void(ReadTransaction&)> body) override {
    inner_->read([&](ReadTransaction& txn) {
      CountingRead counting(txn, visited);
      body(counting);
    });
  }
  void write(kj::FunctionParam<void(WriteTransaction&)> body) override {
    writes++;
    if (failWrites) KJ_FAIL_REQUIRE("storage full: injected");
    inner_->write(body);
  }
  void flush() override { inner_->flush(); }
  Durability durability() const override { return inner_->durability(); }

  int writes = 0;
  size_t visited = 0;  // keys visited by reads' scans
  bool failWrites = false;

 private:
  kj::Own<StorageEngine> inner_;
};

struct Fixture {
  kj::EventLoop loop;
  kj::WaitScope waitScope{loop};
  kj::TimerImpl timer{kj::origin<kj::TimePoint>()};
  FaultyEngine engine{newMemoryEngine()};
  Actor self{42, 7};
  Limits limits;
  Store store{engine, self, limits, timer};

  StorageKey key(const char* k) { return StorageKey{5, "", k}; }
  Object put(const char* k, const char* value, VersionVector context = {}) {
    return store.coordinatePut(key(k), Versioning::VECTOR_CLOCK, kj::mv(context), value, 1000)
        .wait(waitScope);
  }
};

std::vector<std::string> values(const Object& o) {
  std::vector<std::string> out;
  for (auto& s : o.siblings) out.push_back(s.value.value_or("<deleted>"));
  return out;
}

TEST_CASE("store: coordinator writes mint dots of this node and keep concurrent blind writes") {
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

TEST_CASE("store: writes in one event-loop turn share one transaction (group commit)") {
  Fixture f;
  auto a = f.store.coordinatePut(f.key("a"), Versioning::VECTOR_CLOCK, {}, "1", 1);
  auto b = f.store.coordinatePut(f.key("b"), Versioning::VECTOR_CLOCK, {}, "2", 1);
  auto c = f.store.replicate(f.key("c"), lastWriteWinsObject(std::string("3"), 5));
  a.wait(f.waitScope);
  b.wait(f.waitScope);
  c.wait(f.waitScope);
  CHECK(f.engine.writes == 1);
  CHECK(f.store.get(f.key("a")));
  CHECK(f.store.get(f.key("c")));
}

TEST_CASE("store: replicate stores sync(local, incoming) and never loses a local version") {
  Fixture f;
  auto local = f.put("k", "mine");
  Object theirs = coordinatePut(Object{}, Actor{99, 1}, {}, std::string("theirs"), 2000);
  f.store.replicate(f.key("k"), theirs).wait(f.waitScope);
  auto stored = f.store.get(f.key("k"));
  REQUIRE(stored);
  CHECK(*stored == sync(local, theirs));
  CHECK(stored->siblings.size() == 2);
}

TEST_CASE("store: an engine failure rejects the whole batch and stores nothing") {
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

TEST_CASE("store: a refused write does not fail the others in its batch") {
  Fixture f;
  f.store.replicate(f.key("lww"), lastWriteWinsObject(std::string("v"), 1)).wait(f.waitScope);
  auto bad = f.store.coordinatePut(f.key("lww"), Versioning::VECTOR_CLOCK, {}, "x", 1);
  auto good = f.store.coordinatePut(f.key("vc"), Versioning::VECTOR_CLOCK, {}, "y", 1);
  CHECK_THROWS_WITH(bad.wait(f.waitScope), Catch::Contains("kind mismatch"));
  CHECK(good.wait(f.waitScope).siblings.size() == 1);
}

TEST_CASE("store: more siblings than the limit are refused with a message naming it") {
  Fixture f;
  for (uint32_t i = 0; i < Limits::MAX_SIBLINGS; i++) f.put("k", "v");
  auto more = f.store.coordinatePut(f.key("k"), Versioning::VECTOR_CLOCK, {}, "v", 1);
  CHECK_THROWS_WITH(more.wait(f.waitScope), Catch::Contains("limit"));
  CHECK(f.store.get(f.key("k"))->siblings.size() == Limits::MAX_SIBLINGS);
}

TEST_CASE("store: hints are kept per owner, visible to reads, and removed only if unchanged") {
  Fixture f;
  Object o = coordinatePut(Object{}, Actor{1, 1}, {}, std::string("hinted"), 10);
  f.store.storeHint(77, f.key("k"), o).wait(f.waitScope);
  f.store.storeHint(88, f.key("j"), o).wait(f.waitScope);
  CHECK(f.store.hintCount() == 2);

  // A fallback's read includes what it holds for others.
  auto seen = f.store.get(f.key("k"));
  REQUIRE(seen);
  CHECK(values(*seen) == std::vector<std::string>{"hinted"});

  auto forOwner = f.store.hintsFor(77, "", 10);
  REQUIRE(forOwner.hints.size() == 1);
  CHECK(forOwner.end);
  CHECK(forOwner.hints[0].key.key == "k");
  CHECK(forOwner.hints[0].object == o);

  // The hint changes between delivery and deletion: it must stay.
  Object newer = coordinatePut(o, Actor{1, 1}, o.vv, std::string("newer"), 20);
  f.store.storeHint(77, f.key("k"), newer).wait(f.waitScope);
  f.store.removeHint(forOwner.hints[0]).wait(f.waitScope);
  CHECK(f.store.hintCount() == 2);

  auto again = f.store.hintsFor(77, "", 10);
  f.store.removeHint(again.hints[0]).wait(f.waitScope);
  CHECK(f.store.hintCount() == 1);
  CHECK(f.store.hintBacklog() == std::vector<HintBacklog>{{88, 1}});
  CHECK(f.store.hintsFor(77, "", 10).hints.empty());

  // Removing it twice changes nothing, nor does removing what was never held.
  f.store.removeHint(again.hints[0]).wait(f.waitScope);
  CHECK(f.store.hintCount() == 1);
}

TEST_CASE("store: one owner's hints are read from a cursor without passing over the others'") {
  Fixture f;
  Object o = coordinatePut(Object{}, Actor{1, 1}, {}, std::string("v"), 10);
  // Owner 1 sorts first and holds a large backlog; owners 2 and 3 hold a few each.
  kj::Vector<kj::Promise<void>> writes;
  for (int i = 0; i < 500; i++) {
    writes.add(f.store.storeHint(1, f.key(("a" + std::to_string(i)).c_str()), o));
  }
  for (auto k : {"e", "b", "d", "a", "c"}) writes.add(f.store.storeHint(2, f.key(k), o));
  writes.add(f.store.storeHint(3, f.key("a"), o));
  kj::joinPromises(writes.releaseAsArray()).wait(f.waitScope);
  CHECK(f.store.hintBacklog() == std::vector<HintBacklog>{{1, 500}, {2, 5}, {3, 1}});

  std::vector<std::string> read;
  std::string cursor;
  for (;;) {
    f.engine.visited = 0;
    auto page = f.store.hintsFor(2, cursor, 2);
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
  auto past = f.store.hintsFor(2, cursor, 2);
  CHECK(past.hints.empty());
  CHECK(past.end);
  CHECK(past.next == cursor);

  // Hints stored behind the cursor are found after it wraps; ones ahead of it straight away.
  f.store.storeHint(2, f.key("f"), o).wait(f.waitScope);
  auto more = f.store.hintsFor(2, cursor, 2);
  REQUIRE(more.hints.size() == 1);
  CHECK(more.hints[0].key.key == "f");
  CHECK(f.store.hintsFor(3, "", 10).hints.size() == 1);
}

TEST_CASE("store: hint counts per owner are rebuilt when the store is opened again") {
  Fixture f;
  Object o = coordinatePut(Object{}, Actor{1, 1}, {}, std::string("v"), 10);
  auto writes = kj::heapArrayBuilder<kj::Promise<void>>(4);
  writes.add(f.store.storeHint(5, f.key("a"), o));
  writes.add(f.store.storeHint(5, f.key("a"), o));  // the same key in the same batch: one hint
  writes.add(f.store.storeHint(5, f.key("b"), o));
  writes.add(f.store.storeHint(6, f.key("a"), o));
  kj::joinPromises(writes.finish()).wait(f.waitScope);
  CHECK(f.store.hintBacklog() == std::vector<HintBacklog>{{5, 2}, {6, 1}});

  Store reopened{f.engine, f.self, f.limits, f.timer};
  CHECK(reopened.hintBacklog() == std::vector<HintBacklog>{{5, 2}, {6, 1}});
  CHECK(reopened.get(f.key("b")));
}

TEST_CASE("store: hints stored in the previous layout are rewritten when the store opens") {
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
  kj::TimerImpl timer(kj::origin<kj::TimePoint>());
  Limits limits;
  {
    Store store(*engine, Actor{42, 7}, limits, timer);
    CHECK(store.hintBacklog() == std::vector<HintBacklog>{{LOW, 2}, {HIGH, 2}});
    auto page = store.hintsFor(LOW, "", 10);
    REQUIRE(page.hints.size() == 2);
    CHECK(page.hints[0].key.key == "x");
    CHECK(page.hints[1].object == o);
    CHECK(store.get(StorageKey{5, "", "y"}));
    store.removeHint(page.hints[0]).wait(waitScope);
  }
  // Opened again: already in the current layout, nothing is rewritten twice.
  Store again(*engine, Actor{42, 7}, limits, timer);
  CHECK(again.hintBacklog() == std::vector<HintBacklog>{{LOW, 1}, {HIGH, 2}});
  CHECK(again.hintsFor(HIGH, "", 10).hints.size() == 2);
}

TEST_CASE("store: storage keys keep a partition contiguous and round-trip") {
  StorageKey k{0x1234, "ns", std::string("a\0b", 3)};
  auto bytes = encodeStorageKey(k);
  CHECK(uint8_t(bytes[0]) == 0x12);
  CHECK(uint8_t(bytes[1]) == 0x34);
  auto back = decodeStorageKey(
      kj::arrayPtr(reinterpret_cast<const kj::byte*>(bytes.data()), bytes.size()));
  CHECK(back.partition == k.partition);
  CHECK(back.ns == k.ns);
  CHECK(back.key == k.key);
}

}  // namespace
}  // namespace dynkv::storaged

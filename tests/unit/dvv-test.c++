// Dotted version vector sets: the algebra of sync over random histories, and the promise the
// design makes to users: a concurrent write is never lost, a superseded one never comes back.

#include "dvv.h"

#include <kj/exception.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>

namespace dynkv {
namespace {

const Actor A{1, 100};
const Actor B{2, 200};
const Actor C{3, 300};

Actor actorNumber(uint64_t i) {
  return Actor{i + 1, 1000 + i};
}

std::vector<std::optional<std::string>> values(const Object& o) {
  std::vector<std::optional<std::string>> result;
  for (auto& s : o.siblings) result.push_back(s.value);
  return result;
}

// Canonical form and the DVV invariant: every sibling's dot is within the object's vv.
void checkWellFormed(const Object& o) {
  for (size_t i = 1; i < o.siblings.size(); ++i) {
    REQUIRE(o.siblings[i - 1].dot < o.siblings[i].dot);
  }
  auto& entries = o.vv.entries();
  for (size_t i = 1; i < entries.size(); ++i) REQUIRE(entries[i - 1].actor < entries[i].actor);
  if (o.kind == Versioning::LAST_WRITE_WINS) {
    REQUIRE(o.siblings.size() <= 1);
    REQUIRE(o.vv.empty());
    for (auto& s : o.siblings) REQUIRE(s.dot == Dot{});
  } else {
    for (auto& s : o.siblings) REQUIRE(o.vv.covers(s.dot));
  }
  REQUIRE(o.superseded.size() <= Object::MAX_SUPERSEDED);
  for (size_t i = 1; i < o.superseded.size(); ++i) {
    REQUIRE(o.superseded[i - 1].writeId < o.superseded[i].writeId);
  }
  for (auto& s : o.siblings) {
    for (auto& w : o.superseded) REQUIRE(s.writeId != w.writeId);
  }
}

// A random cluster history: replicas take puts (coordinated by the replica's own actor, with
// a context from an earlier read of some replica, or none) and exchange state by sync. Now
// and then a writer gets no answer and has its write coordinated again by another replica:
// the two versions are twins, one named write. Every intermediate replica state goes into
// `pool`.
struct History {
  struct Write {
    Dot dot;
    std::optional<std::string> value;
    WriteContext context;
    uint64_t writeId = 0;  // twins only: other writes are unnamed
  };

  std::vector<Actor> actors;
  std::vector<Object> replicas;
  std::vector<Write> writes;
  std::vector<Object> pool;
  std::vector<WriteContext> contexts;  // reads taken so far, for later writes to use
  int64_t clock = 1'000'000;
  uint64_t names = 0;  // write ids handed out so far

  explicit History(size_t actorCount) {
    for (size_t i = 0; i < actorCount; ++i) actors.push_back(actorNumber(i));
    replicas.resize(actorCount);
    contexts.push_back(WriteContext());
  }

  void coordinate(size_t r, const WriteContext& context, std::optional<std::string> value,
                  uint64_t writeId) {
    clock += 1;
    Object next = coordinatePut(replicas[r], actors[r], context, value, clock, 0, writeId);
    Dot dot{actors[r], next.vv.counter(actors[r])};
    auto it = std::find_if(next.siblings.begin(), next.siblings.end(),
                           [&](const Sibling& s) { return s.dot == dot; });
    REQUIRE(it != next.siblings.end());
    REQUIRE(it->value == value);
    REQUIRE(it->writeId == writeId);
    // Truncation leaves at most MAX_ENTRIES entries, unless live siblings need more.
    std::set<Actor> siblingActors;
    for (auto& s : next.siblings) siblingActors.insert(s.dot.actor);
    REQUIRE(next.vv.size() <= std::max(VersionVector::MAX_ENTRIES, siblingActors.size()));
    writes.push_back(Write{dot, value, context, writeId});
    replicas[r] = std::move(next);
    pool.push_back(replicas[r]);
  }

  void step(std::mt19937_64& rng) {
    size_t r = rng() % replicas.size();
    switch (rng() % 4) {
      case 0: {  // a read: remember its context for some later write
        contexts.push_back(WriteContext{replicas[r].vv, writeIdsOf(replicas[r])});
        break;
      }
      case 1:
      case 2: {  // a write at replica r, with an old context, or blind
        WriteContext context =
            rng() % 4 == 0 ? WriteContext() : contexts[rng() % contexts.size()];
        std::optional<std::string> value;
        if (rng() % 5 != 0) value = "w" + std::to_string(writes.size());
        clock += int64_t(rng() % 1000);
        if (rng() % 8 != 0) {
          coordinate(r, context, value, 0);
        } else {  // unanswered at r, coordinated again at another replica
          uint64_t writeId = ++names;
          coordinate(r, context, value, writeId);
          coordinate((r + 1 + rng() % (replicas.size() - 1)) % replicas.size(), context, value,
                     writeId);
        }
        break;
      }
      case 3: {  // replication, read repair or anti-entropy between two replicas
        size_t other = rng() % replicas.size();
        Object merged = sync(replicas[r], replicas[other]);
        replicas[r] = merged;
        if (rng() % 2) replicas[other] = merged;
        pool.push_back(merged);
        break;
      }
    }
  }

  bool superseded(const Write& w) const {
    // Exactly when some write's context saw it, or saw a twin of it (contexts are reads taken
    // before the write, so they only ever see earlier writes).
    auto saw = [](const WriteContext& context, const Write& seen) {
      return context.vv.covers(seen.dot) ||
             (seen.writeId != 0 && std::count(context.writeIds.begin(), context.writeIds.end(),
                                              seen.writeId) > 0);
    };
    return std::any_of(writes.begin(), writes.end(), [&](const Write& later) {
      return std::any_of(writes.begin(), writes.end(), [&](const Write& twin) {
        bool same = twin.dot == w.dot || (w.writeId != 0 && twin.writeId == w.writeId);
        return same && saw(later.context, twin);
      });
    });
  }

  Object everything() const {
    Object all;
    for (auto& r : replicas) all = sync(all, r);
    return all;
  }
};

constexpr int HISTORIES = 300;

}  // namespace

TEST_CASE("VersionVector merge takes pointwise maxima with their timestamps") {
  VersionVector a, b;
  a.set(A, 3, 30);
  a.set(B, 1, 15);
  b.set(B, 2, 10);
  b.set(C, 5, 50);
  b.set(A, 3, 40);  // equal counters: the later timestamp

  VersionVector m = a;
  m.merge(b);
  REQUIRE(m.size() == 3);
  CHECK(m.entries()[0] == VvEntry{A, 3, 40});
  CHECK(m.entries()[1] == VvEntry{B, 2, 10});  // the timestamp goes with the larger counter
  CHECK(m.entries()[2] == VvEntry{C, 5, 50});
  VersionVector m2 = b;
  m2.merge(a);
  CHECK(m == m2);

  CHECK(m.descends(a));
  CHECK(m.descends(b));
  CHECK(b.descends(a));  // b has seen everything a has, and more
  CHECK_FALSE(a.descends(b));
  VersionVector c;
  c.set(C, 1, 5);
  CHECK_FALSE(a.descends(c));  // concurrent: neither has seen all of the other
  CHECK_FALSE(c.descends(a));
  CHECK(a.descends(VersionVector()));
  CHECK(m.counter(Actor{9, 9}) == 0);
  CHECK(m.covers(Dot{C, 5}));
  CHECK_FALSE(m.covers(Dot{C, 6}));
  CHECK_FALSE(m.covers(Dot{Actor{1, 101}, 1}));  // another incarnation of node 1
}

TEST_CASE("two blind writes through the same coordinator both survive as siblings") {
  Object o = coordinatePut(Object(), A, VersionVector(), std::string("cart: milk"), 10);
  o = coordinatePut(o, A, VersionVector(), std::string("cart: eggs"), 20);
  REQUIRE(o.siblings.size() == 2);
  CHECK(values(o) == std::vector<std::optional<std::string>>{"cart: milk", "cart: eggs"});
  CHECK(o.siblings[0].dot == Dot{A, 1});
  CHECK(o.siblings[1].dot == Dot{A, 2});
  CHECK(o.vv.counter(A) == 2);
  checkWellFormed(o);

  // A third writer that read before either write is concurrent with both.
  VersionVector stale;
  o = coordinatePut(o, A, stale, std::string("cart: bread"), 30);
  CHECK(o.siblings.size() == 3);
}

TEST_CASE("a retracted version leaves every copy it reached; the others' writes stay") {
  // A's write of "milk" was never answered: the writer had it coordinated again by B, then
  // deleted what B's answer showed it. A takes its version back.
  Object atA = coordinatePut(Object(), A, VersionVector(), std::string("eggs"), 5);
  atA = coordinatePut(atA, A, VersionVector(), std::string("milk"), 10);  // dot A:2
  REQUIRE(atA.siblings.size() == 2);
  Object pushedEarly = atA;  // anti-entropy copied it before the retraction
  Object retracted = retract(atA, Dot{A, 2}, A, 20);
  REQUIRE(retracted.siblings.size() == 1);
  CHECK(retracted.siblings[0].value == std::optional<std::string>("eggs"));
  CHECK(retracted.vv.covers(Dot{A, 2}));
  checkWellFormed(retracted);
  Object atC = sync(pushedEarly, coordinatePut(Object(), B, VersionVector(), "milk", 11));
  Object healed = sync(atC, retracted);
  CHECK(values(healed) == std::vector<std::optional<std::string>>{"eggs", "milk"});
  CHECK(std::none_of(healed.siblings.begin(), healed.siblings.end(),
                     [](const Sibling& s) { return s.dot == Dot{A, 2}; }));

  // The only version: a tombstone replaces it, or a copy holding it would keep it.
  Object alone = coordinatePut(Object(), A, VersionVector(), std::string("milk"), 10);
  Object gone = retract(alone, Dot{A, 1}, A, 20);
  REQUIRE(gone.siblings.size() == 1);
  CHECK(gone.siblings[0].isTombstone());
  CHECK(gone.siblings[0].dot == Dot{A, 2});
  CHECK(sync(alone, gone) == gone);

  // Superseded already (a later write's context covered it): nothing to take back.
  Object later = coordinatePut(alone, B, alone.vv, std::string("bread"), 30);
  CHECK(retract(later, Dot{A, 1}, A, 40) == later);
}

TEST_CASE("a write that saw one twin supersedes both, wherever the other turns up") {
  // The writer's put of "milk" (write 7) was minted at A, whose answer was lost; it had the
  // same write coordinated by B, and deleted what B's answer showed. A's twin, which the
  // delete's version vector does not cover, reaches the tombstone later by anti-entropy.
  Object atA = coordinatePut(Object(), A, VersionVector(), std::string("milk"), 10, 0, 7);
  Object atB = coordinatePut(Object(), B, VersionVector(), std::string("milk"), 11, 0, 7);
  WriteContext seen{atB.vv, writeIdsOf(atB)};
  REQUIRE(seen.writeIds == std::vector<uint64_t>{7});
  Object deleted = coordinatePut(atB, C, seen, std::nullopt, 20, 0, 8);
  REQUIRE(deleted.superseded.size() == 1);
  CHECK(deleted.superseded[0].writeId == 7);
  checkWellFormed(deleted);
  for (auto& healed : {sync(deleted, atA), sync(atA, deleted), sync(sync(atA, atB), deleted)}) {
    checkWellFormed(healed);
    REQUIRE(healed.siblings.size() == 1);
    CHECK(healed.siblings[0].isTombstone());
  }
  // Coordinated where the twin already is: the delete drops it at once.
  Object both = sync(atA, atB);
  REQUIRE(both.siblings.size() == 2);
  Object there = coordinatePut(both, A, seen, std::nullopt, 21, 0, 9);
  REQUIRE(there.siblings.size() == 1);
  CHECK(there.siblings[0].isTombstone());
  // A late retry of the superseded write is superseded as it is minted.
  Object late = coordinatePut(deleted, A, VersionVector(), std::string("milk"), 30, 0, 7);
  CHECK(values(late) == std::vector<std::optional<std::string>>{std::nullopt});
  // A retraction names nothing: the twin of the retracted version lives on.
  Object retracted = retract(atA, atA.siblings[0].dot, A, 40);
  CHECK(retracted.superseded.empty());
  auto healed = values(sync(retracted, atB));
  CHECK(std::count(healed.begin(), healed.end(), std::optional<std::string>("milk")) == 1);
}

TEST_CASE("an object remembers the newest superseded writes, at most MAX_SUPERSEDED") {
  Object o;
  for (uint64_t id = 1; id <= 3 * Object::MAX_SUPERSEDED; ++id) {
    WriteContext seen{o.vv, writeIdsOf(o)};
    o = coordinatePut(o, A, seen, "v" + std::to_string(id), int64_t(id), 0, id);
    checkWellFormed(o);
  }
  REQUIRE(o.superseded.size() == Object::MAX_SUPERSEDED);
  CHECK(o.superseded.front().writeId == 2 * Object::MAX_SUPERSEDED);
  CHECK(o.superseded.back().writeId == 3 * Object::MAX_SUPERSEDED - 1);
}

TEST_CASE("a write whose context covers the siblings replaces them") {
  Object o = coordinatePut(Object(), A, VersionVector(), std::string("x"), 10);
  o = coordinatePut(o, A, VersionVector(), std::string("y"), 20);
  Object other = coordinatePut(Object(), B, VersionVector(), std::string("z"), 15);
  o = sync(o, other);
  REQUIRE(o.siblings.size() == 3);

  VersionVector context = o.vv;  // a get returns this context
  Object replaced = coordinatePut(o, C, context, std::string("merged"), 40);
  REQUIRE(replaced.siblings.size() == 1);
  CHECK(replaced.siblings[0].value == std::optional<std::string>("merged"));
  CHECK(replaced.siblings[0].dot == Dot{C, 1});
  CHECK(replaced.vv.descends(context));

  // Replicas that still hold the old siblings lose them when they learn of the new write, and
  // keep nothing of a write the newer context did not see.
  CHECK(sync(other, replaced) == replaced);
  CHECK(sync(replaced, o) == replaced);

  // A context that saw only part of the siblings replaces only that part.
  Object partial = coordinatePut(o, A, other.vv, std::string("after z"), 50);
  CHECK(values(partial) == std::vector<std::optional<std::string>>{"x", "y", "after z"});

  // A delete is a tombstone sibling, and replaces what its context saw.
  Object removed = coordinatePut(o, B, context, std::nullopt, 60);
  REQUIRE(removed.siblings.size() == 1);
  CHECK(removed.siblings[0].isTombstone());
  CHECK(removed.allTombstones());
  CHECK_FALSE(o.allTombstones());
}

TEST_CASE("the coordinator's counter never reuses a dot its context has seen") {
  // B's replica lags: it has not seen A's write, but the context the client read elsewhere
  // carries B's counter ahead of B's local vv (B's own write, since handed off).
  Object atB = coordinatePut(Object(), B, VersionVector(), std::string("b1"), 10);
  VersionVector context = atB.vv;
  Object fresh;  // B's replica as restored from a replica that never saw b1
  Object next = coordinatePut(fresh, B, context, std::string("b2"), 20);
  CHECK(next.siblings.at(0).dot == Dot{B, 2});
}

TEST_CASE("a forged context whose counter would wrap is refused, not wrapped to an old dot") {
  Object acked = coordinatePut(Object(), A, VersionVector(), std::string("acked"), 10);
  for (uint64_t forged : {~uint64_t(0), Dot::MAX_COUNTER}) {
    VersionVector context;
    context.set(A, forged, 5);
    CHECK_THROWS_WITH(coordinatePut(acked, A, context, std::string("next"), 20),
                      Catch::Contains("invalid argument") && Catch::Contains("MAX_COUNTER"));
    // A replica carrying the counter is refused the same way.
    Object forgedReplica = acked;
    forgedReplica.vv = context;
    CHECK_THROWS_WITH(coordinatePut(forgedReplica, A, {}, std::string("next"), 20),
                      Catch::Contains("MAX_COUNTER"));
  }
  VersionVector last;  // the highest counter that may still be minted is minted
  last.set(A, Dot::MAX_COUNTER - 1, 5);
  CHECK(coordinatePut(acked, A, last, std::string("next"), 20).siblings.at(0).dot ==
        (Dot{A, Dot::MAX_COUNTER}));
}

TEST_CASE("sync is commutative, associative and idempotent over random histories") {
  for (int h = 0; h < HISTORIES; ++h) {
    uint64_t seed = 0x5eed0000 + h;
    INFO("seed " << seed);
    std::mt19937_64 rng(seed);
    History history(3);
    for (int i = 0; i < 40; ++i) history.step(rng);
    auto& pool = history.pool;
    pool.push_back(Object());
    for (auto& o : pool) checkWellFormed(o);

    for (int t = 0; t < 30; ++t) {
      const Object& a = pool[rng() % pool.size()];
      const Object& b = pool[rng() % pool.size()];
      const Object& c = pool[rng() % pool.size()];
      Object ab = sync(a, b);
      checkWellFormed(ab);
      REQUIRE(ab == sync(b, a));
      REQUIRE(sync(ab, c) == sync(a, sync(b, c)));
      REQUIRE(sync(a, a) == a);
      REQUIRE(sync(ab, a) == ab);  // absorbing what one already has changes nothing
      REQUIRE(sync(a, Object()) == a);
      REQUIRE(sync(Object(), a) == a);
    }
  }
}

TEST_CASE("no causally concurrent write is ever dropped, no superseded write survives") {
  for (int h = 0; h < HISTORIES; ++h) {
    uint64_t seed = 0xc105 + uint64_t(h) * 7919;
    INFO("seed " << seed);
    std::mt19937_64 rng(seed);
    History history(3);
    int steps = 10 + int(rng() % 60);
    for (int i = 0; i < steps; ++i) history.step(rng);

    // Anti-entropy to quiescence, in a random order: every replica converges to the same object.
    Object all = history.everything();
    checkWellFormed(all);
    for (size_t round = 0; round < 2; ++round) {
      for (size_t i = 0; i < history.replicas.size(); ++i) {
        size_t j = rng() % history.replicas.size();
        history.replicas[i] = sync(history.replicas[i], history.replicas[j]);
        history.replicas[j] = sync(history.replicas[j], all);
      }
    }
    for (auto& r : history.replicas) REQUIRE(sync(r, all) == all);

    std::set<uint64_t> supersededNames;
    std::map<Dot, std::optional<std::string>> expected;
    for (auto& w : history.writes) {
      bool superseded = history.superseded(w);
      if (superseded && w.writeId != 0) supersededNames.insert(w.writeId);
      if (!superseded) expected[w.dot] = w.value;
    }
    std::map<Dot, std::optional<std::string>> actual;
    for (auto& s : all.siblings) actual[s.dot] = s.value;
    if (supersededNames.size() <= Object::MAX_SUPERSEDED) {
      REQUIRE(actual == expected);
    } else {
      // Past what an object remembers, an old twin may come back; nothing live is lost.
      for (auto& [dot, value] : expected) REQUIRE(actual.count(dot) == 1);
    }
  }
}

TEST_CASE("sync of a vector-clock object with a last-write-wins object is refused") {
  Object vc = coordinatePut(Object(), A, VersionVector(), std::string("v"), 10);
  Object lww = lastWriteWinsObject(std::string("v"), 10);
  CHECK_THROWS_AS(sync(vc, lww), kj::Exception);
  CHECK_THROWS_AS(sync(lww, vc), kj::Exception);
  CHECK_THROWS_AS(coordinatePut(lww, A, VersionVector(), std::string("x"), 20), kj::Exception);
  // An empty object takes either kind.
  CHECK(sync(Object(), lww) == lww);
  CHECK(sync(lww, Object()) == lww);
}

TEST_CASE("last write wins: the highest timestamp wins, whatever the order") {
  for (int h = 0; h < HISTORIES; ++h) {
    uint64_t seed = 0x1a57 + uint64_t(h);
    INFO("seed " << seed);
    std::mt19937_64 rng(seed);
    size_t count = 1 + rng() % 12;
    std::vector<Object> writes;
    int64_t newest = -1;
    std::optional<std::string> newestValue;
    std::set<int64_t> used;
    for (size_t i = 0; i < count; ++i) {
      int64_t ts = int64_t(rng() % 100000);
      while (!used.insert(ts).second) ts = int64_t(rng() % 100000);
      std::optional<std::string> value;
      if (rng() % 3 != 0) value = "v" + std::to_string(i);
      writes.push_back(lastWriteWinsObject(value, ts));
      if (ts > newest) {
        newest = ts;
        newestValue = value;
      }
    }
    // Replicas receive the writes in different orders and merge in different shapes.
    std::vector<Object> replicas(3);
    for (auto& w : writes) {
      size_t r = rng() % 3;
      replicas[r] = sync(replicas[r], w);
    }
    for (int i = 0; i < 6; ++i) {
      size_t a = rng() % 3, b = rng() % 3;
      replicas[a] = sync(replicas[a], replicas[b]);
    }
    Object all;
    std::shuffle(writes.begin(), writes.end(), rng);
    for (auto& w : writes) all = sync(w, all);
    checkWellFormed(all);
    REQUIRE(all.kind == Versioning::LAST_WRITE_WINS);
    REQUIRE(all.siblings.size() == 1);
    CHECK(all.siblings[0].timestamp == newest);
    CHECK(all.siblings[0].value == newestValue);
    for (auto& r : replicas) {
      Object caughtUp = sync(r, all);
      CHECK(caughtUp == all);
    }
  }
}

TEST_CASE("last write wins: tombstones and equal timestamps") {
  Object put = lastWriteWinsObject(std::string("v1"), 100);
  Object del = lastWriteWinsObject(std::nullopt, 200);
  Object later = lastWriteWinsObject(std::string("v2"), 300);

  Object deleted = sync(put, del);
  CHECK(deleted == del);
  CHECK(deleted.allTombstones());
  CHECK_FALSE(deleted.empty());  // the tombstone is kept, so the old value cannot come back
  CHECK(sync(deleted, put) == del);
  CHECK(sync(deleted, later) == later);
  CHECK(sync(later, deleted) == later);

  // Equal timestamps: a value beats a tombstone, then the larger bytes win.
  Object tieDel = lastWriteWinsObject(std::nullopt, 500);
  Object tieA = lastWriteWinsObject(std::string("a"), 500);
  Object tieB = lastWriteWinsObject(std::string("b"), 500);
  CHECK(sync(tieDel, tieA) == tieA);
  CHECK(sync(tieA, tieDel) == tieA);
  CHECK(sync(tieA, tieB) == tieB);
  CHECK(sync(tieB, tieA) == tieB);
  CHECK(sync(sync(tieA, tieDel), tieB) == sync(tieA, sync(tieDel, tieB)));
}

TEST_CASE("truncation drops the oldest entries but never a live sibling's actor") {
  SECTION("a chain of overwrites keeps the newest MAX_ENTRIES actors") {
    Object o;
    for (uint64_t i = 0; i < 12; ++i) {
      o = coordinatePut(o, actorNumber(i), o.vv, "v" + std::to_string(i), int64_t(100 + i));
      REQUIRE(o.siblings.size() == 1);
    }
    REQUIRE(o.vv.size() == VersionVector::MAX_ENTRIES);
    CHECK(o.vv.counter(actorNumber(0)) == 0);
    CHECK(o.vv.counter(actorNumber(1)) == 0);
    for (uint64_t i = 2; i < 12; ++i) CHECK(o.vv.counter(actorNumber(i)) == 1);
  }

  SECTION("concurrent blind writes from many actors all stay covered") {
    Object o;
    for (uint64_t i = 0; i < 14; ++i) {
      o = coordinatePut(o, actorNumber(i), VersionVector(), "v" + std::to_string(i),
                        int64_t(100 + i));
    }
    CHECK(o.siblings.size() == 14);
    CHECK(o.vv.size() == 14);  // over the limit, because every entry is a live sibling's
    checkWellFormed(o);
    // One write that saw everything collapses the siblings, then truncation applies.
    o = coordinatePut(o, actorNumber(0), o.vv, std::string("merged"), 1000);
    CHECK(o.siblings.size() == 1);
    CHECK(o.vv.size() == VersionVector::MAX_ENTRIES);
    CHECK(o.vv.counter(actorNumber(0)) == 2);
  }

  SECTION("random histories over many actors") {
    for (int h = 0; h < HISTORIES; ++h) {
      uint64_t seed = 0x7a11 + uint64_t(h);
      INFO("seed " << seed);
      std::mt19937_64 rng(seed);
      History history(15);
      for (int i = 0; i < 80; ++i) history.step(rng);
      for (auto& o : history.pool) checkWellFormed(o);  // each sibling's actor is in the vv

      // Dropped entries can make a superseded write look concurrent again (the price the
      // paper pays for bounded vectors), but never make a concurrent write disappear.
      Object all = history.everything();
      std::set<Dot> present;
      for (auto& s : all.siblings) present.insert(s.dot);
      for (auto& w : history.writes) {
        if (!history.superseded(w)) CHECK(present.count(w.dot) == 1);
      }
    }
  }
}

}  // namespace dynkv

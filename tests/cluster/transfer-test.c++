// Partition transfer (the paper's section 4.9) in one process: three storaged services on
// loopback. Under the previous map a and c held every partition (N = 2 of two nodes); in the
// current map b joins, and its TransferManager (wired as storaged/main.c++ wires it: over the
// node's pool, its versioned store and its engine) streams the partitions it gained from them
// over Peer.fetchPartition. The transfer loop runs on the event loop; the test observes it
// between its steps (eventually(): a check at each tick of the loop's timer), and every wait is
// bounded by DEADLINE, a guard against a hang, not a measurement.
#include "transfer.h"

#include <kj/async-io.h>
#include <kj/debug.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <optional>
#include <variant>

#include "anti-entropy.h"
#include "hash.h"
#include "in-process-node.h"
#include "node-pool.h"
#include "replicas.h"

namespace dynkv::storaged {
namespace {

constexpr uint32_t N = 2;
constexpr uint32_t PARTITION_BITS = 4;
constexpr auto DEADLINE = 10 * kj::SECONDS;
constexpr uint64_t UNLIMITED = 0;  // transferBytesPerSecond: no pause between chunks
constexpr uint64_t CRAWL = 1;      // one byte a second: after its first chunk a stream pauses for
                                   // days, so the test decides when it stops

using Contents = std::map<std::pair<std::string, std::string>, Object>;  // (ns, key) -> object

Contents contents(VersionedStore& store, uint32_t partition) {
  // Every object the store holds of the partition, as its node would hand it over.
  Contents out;
  for (auto& [key, object] : store.scanPartition(partition, "", SIZE_MAX).entries) {
    out.emplace(std::make_pair(key.ns, key.key), object);
  }
  return out;
}

FailureDetector::Options failuresRemembered() {
  // A failed call keeps its node suspected for longer than any test runs, so that a transfer's
  // failed attempt stays visible to the test however late it looks.
  FailureDetector::Options options;
  options.firstBackoff = options.maxBackoff = 3600LL * 1000 * 1000;
  return options;
}

struct Fixture {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::Timer& timer = io.provider->getTimer();
  Limits limits;
  InProcessNode a{io, 1, limits}, b{io, 2, limits}, c{io, 3, limits};
  NodeInfo aInfo{a.id, "a", a.address, "", 1}, bInfo{b.id, "b", b.address, "", 1},
      cInfo{c.id, "c", c.address, "", 1};
  MapSnapshot previous =
      std::make_shared<const PartitionMap>(PartitionMap::build({aInfo, cInfo}, PARTITION_BITS, 1));
  MapSnapshot current = std::make_shared<const PartitionMap>(
      PartitionMap::build({aInfo, bInfo, cInfo}, PARTITION_BITS, 2));
  std::vector<uint32_t> gained = partitionsOfB();

  // Node b's pool, as storaged's: transfers and read-throughs reach a and c over it.
  FailureDetector detector{failuresRemembered()};
  NodePool pool{io.provider->getNetwork(), timer, detector, "test", "s3cret", limits.maxValueBytes};

  // What a and c hold (the same on both): partition -> contents.
  std::map<uint32_t, Contents> written;

  Fixture() {
    a.serve(current);
    c.serve(current);
  }

  std::vector<uint32_t> partitionsOfB() {
    std::vector<uint32_t> out;
    auto self = *current->indexOf(b.id);
    for (uint32_t p = 0; p < current->partitionCount(); p++) {
      auto pref = current->preferenceList(p, N, 0);
      for (uint32_t i = 0; i < pref.primaries; i++) {
        if (pref.nodes[i] == self) out.push_back(p);
      }
    }
    return out;
  }

  bool gains(uint32_t partition) const {
    return std::find(gained.begin(), gained.end(), partition) != gained.end();
  }

  StorageKey key(const std::string& ns, const std::string& k) const {
    return StorageKey{current->partitionOf(keyHash(ns, k)), ns, k};
  }

  void write(const StorageKey& key, const Object& object) {
    // Stores the object on both previous owners, as a write acknowledged under the previous map.
    auto both = kj::heapArrayBuilder<kj::Promise<void>>(2);
    both.add(a.store.replicate(key, object));
    both.add(c.store.replicate(key, object));
    kj::joinPromises(both.finish()).wait(io.waitScope);
    written[key.partition][{key.ns, key.key}] = object;
  }

  void writeKeys(int count) {
    // Keys in every partition, in two namespaces: most with one value, every tenth with two
    // concurrent siblings, every tenth deleted (a tombstone).
    Actor byA{a.id, 1}, byC{c.id, 1};
    for (int i = 0; i < count; i++) {
      auto k = "key-" + std::to_string(i);
      auto ns = i % 3 == 0 ? "carts" : "";
      int64_t t = 1000 + i;
      Object object;
      if (i % 10 == 3) {
        object = sync(coordinatePut(Object{}, byA, {}, "left-" + k, t),
                      coordinatePut(Object{}, byC, {}, "right-" + k, t));
        REQUIRE(object.siblings.size() == 2);
      } else if (i % 10 == 7) {
        auto put = coordinatePut(Object{}, byA, {}, "gone-" + k, t);
        object = coordinatePut(put, byA, put.vv, std::nullopt, t + 1);
        REQUIRE(object.allTombstones());
      } else {
        object = coordinatePut(Object{}, byA, {}, "value-" + k, t);
      }
      write(key(ns, k), object);
    }
  }

  kj::Own<TransferManager> newTransfers(uint64_t bytesPerSecond,
                                        BackgroundAdmission* admission = nullptr) {
    // Node b's transfer manager over its store and engine: it reads what an earlier one there
    // recorded.
    return kj::heap<TransferManager>(b.store, *b.engine, pool, timer, b.id, N, bytesPerSecond,
                                     admission);
  }

  kj::Promise<void> run(TransferManager& transfers) {
    return transfers.run().eagerlyEvaluate(
        [](kj::Exception&& e) { KJ_LOG(ERROR, "the transfer loop stopped", e); });
  }

  void eventually(const char* what, kj::Function<bool()> holds) {
    // Lets the event loop run (the transfer loop, the services) until holds() is true, checking
    // at each tick of the timer; fails the test if it does not hold by DEADLINE.
    bool held = timer.timeoutAfter(DEADLINE, check(holds))
                    .then([]() { return true; },
                          [](kj::Exception&& e) {
                            KJ_LOG(ERROR, e);
                            return false;
                          })
                    .wait(io.waitScope);
    INFO(what);
    REQUIRE(held);
  }

  kj::Promise<void> check(kj::Function<bool()>& holds) {
    if (holds()) return kj::READY_NOW;
    return timer.afterDelay(2 * kj::MILLISECONDS).then([this, &holds]() { return check(holds); });
  }

  std::vector<std::string> differences(uint32_t partition) {
    // Where b's copy of the partition differs from what the previous owners hold: keys missing,
    // objects not identical, keys that were never written.
    std::vector<std::string> out;
    auto& expected = written[partition];
    auto held = contents(b.store, partition);
    for (auto& [key, object] : expected) {
      auto it = held.find(key);
      if (it == held.end()) {
        out.push_back(key.first + "/" + key.second + " missing");
      } else if (it->second != object) {
        out.push_back(key.first + "/" + key.second + " differs");
      }
    }
    for (auto& [key, object] : held) {
      if (!expected.count(key)) out.push_back(key.first + "/" + key.second + " unexpected");
    }
    return out;
  }

  void checkComplete(TransferManager& transfers) {
    for (uint32_t p = 0; p < current->partitionCount(); p++) {
      INFO("partition " << p);
      CHECK(transfers.readable(p));
      if (gains(p)) {
        CHECK(!written[p].empty());
        CHECK(differences(p).empty());
      } else {
        CHECK(contents(b.store, p).empty());  // only the partitions it gained are streamed to it
      }
    }
  }
};

TEST_CASE(
    "transfer: a node that gains partitions streams every key of them from a previous owner") {
  Fixture f;
  REQUIRE(!f.gained.empty());
  REQUIRE(f.gained.size() < f.current->partitionCount());
  f.writeKeys(300);

  auto transfers = f.newTransfers(UNLIMITED);
  transfers->mapChanged(*f.previous, *f.current);
  CHECK(transfers->pendingCount() == f.gained.size());
  for (uint32_t p = 0; p < f.current->partitionCount(); p++) {
    CHECK(transfers->readable(p) == !f.gains(p));
  }

  auto loop = f.run(*transfers);
  f.eventually("every transfer finished", [&]() { return transfers->pendingCount() == 0; });
  f.checkComplete(*transfers);
}

TEST_CASE("transfer: a stale previous owner cannot hand over a hole: the exchange that ends the "
          "stream fills it") {
  Fixture f;
  f.writeKeys(100);
  // Where b streams a partition from a previous owner that is not its other replica now, that
  // source missed a write (it was down) that the other replica has.
  size_t holes = 0;
  for (uint32_t p : f.gained) {
    auto source = f.previous->nodes()[f.previous->preferenceList(p, N, 0).nodes[0]].id;
    auto now = f.current->preferenceList(p, N, 0);
    uint64_t other = 0;
    for (uint32_t i = 0; i < now.primaries; i++) {
      auto id = f.current->nodes()[now.nodes[i]].id;
      if (id != f.b.id) other = id;
    }
    if (other == source) continue;
    auto& upToDate = other == f.a.id ? f.a : f.c;
    for (int i = 0;; i++) {
      auto key = f.key("", "missed-by-the-source-" + std::to_string(i));
      if (key.partition != p) continue;
      auto object = coordinatePut(Object{}, Actor{other, 1}, {}, std::string("missed"), 5);
      upToDate.store.replicate(key, object).wait(f.io.waitScope);
      f.written[p][{key.ns, key.key}] = object;
      holes++;
      break;
    }
  }
  REQUIRE(holes > 0);  // without the exchange, each would be a hole in b's copy

  // Every node answers anti-entropy; b runs the exchanges that end its transfers.
  AntiEntropyOptions options;
  options.replicas = N;
  std::vector<kj::Own<AntiEntropy>> answering;
  for (auto* node : {&f.a, &f.c}) {
    answering.push_back(kj::heap<AntiEntropy>(node->store, node->trees, *node->membership, f.pool,
                                              f.timer, nullptr, options));
    node->down();
    node->options.antiEntropy = answering.back().get();
    node->up();
  }
  FixedMembership bMembership(f.current);
  AntiEntropy bAntiEntropy(f.b.store, f.b.trees, bMembership, f.pool, f.timer, nullptr, options);

  auto transfers = f.newTransfers(UNLIMITED);
  transfers->finishWith([&](uint32_t p) { return bAntiEntropy.exchangePartition(p); });
  transfers->mapChanged(*f.previous, *f.current);
  auto loop = f.run(*transfers);
  f.eventually("every transfer finished", [&]() { return transfers->pendingCount() == 0; });
  f.checkComplete(*transfers);  // the writes a missed included
}

TEST_CASE("transfer: each chunk waits for a background slot") {
  Fixture f;
  f.writeKeys(100);
  AdmissionOptions oneSlot;
  oneSlot.maxSlots = 1;
  BackgroundAdmission admission(f.timer, oneSlot);  // not run: one slot throughout
  std::optional<BackgroundAdmission::Slot> held = admission.acquire().wait(f.io.waitScope);

  auto transfers = f.newTransfers(UNLIMITED, &admission);
  transfers->mapChanged(*f.previous, *f.current);
  auto loop = f.run(*transfers);
  f.eventually("the transfer waits for the slot", [&]() { return admission.stats().waiting == 1; });
  for (uint32_t p : f.gained) CHECK(contents(f.b.store, p).empty());

  held.reset();
  f.eventually("every transfer finished", [&]() { return transfers->pendingCount() == 0; });
  f.checkComplete(*transfers);
}

TEST_CASE("transfer: a read of a partition still streaming in goes through a previous owner") {
  Fixture f;
  f.writeKeys(60);
  // The transfer manager is told of the map but its loop never runs: b's partitions stay
  // pending, and b serves reads with it as storaged does.
  auto transfers = f.newTransfers(UNLIMITED);
  transfers->mapChanged(*f.previous, *f.current);
  f.b.options.transfers = transfers.get();
  f.b.serve(f.current);

  // A key of a partition b gained whose previous preference list starts with a, so that a read
  // through b asks a first.
  std::optional<StorageKey> found;
  auto aIndex = *f.previous->indexOf(f.a.id);
  for (auto& [p, contents] : f.written) {
    if (!f.gains(p) || f.previous->preferenceList(p, N, 0).nodes[0] != aIndex) continue;
    for (auto& [key, object] : contents) {
      if (object.siblings.size() == 1 && !object.allTombstones()) {
        found = StorageKey{p, key.first, key.second};
        break;
      }
    }
    if (found) break;
  }
  REQUIRE(found);
  auto key = *found;
  auto& before = f.written[key.partition][{key.ns, key.key}];
  REQUIRE(!f.b.store.get(key));  // b holds nothing of it yet

  FailureDetector callerDetector;
  NodePool callerPool{f.io.provider->getNetwork(), f.timer, callerDetector, "test", "s3cret",
                      f.limits.maxValueBytes};
  PooledReplicas replicas(callerPool, f.limits, [](uint64_t) {});
  ReplicaKey replicaKey{f.current->version(), key.ns, key.key};
  auto read = [&]() -> kj::Promise<Reply<std::optional<Object>>> {
    return f.timer.timeoutAfter(DEADLINE, replicas.get(f.bInfo, replicaKey));
  };
  auto copyOf = [](Reply<std::optional<Object>>& reply) {
    auto* copy = std::get_if<std::optional<Object>>(&reply);
    REQUIRE(copy != nullptr);
    return *copy;
  };

  SECTION("it sees the previous owner's value") {
    auto reply = read().wait(f.io.waitScope);
    auto copy = copyOf(reply);
    REQUIRE(copy);
    CHECK(*copy == before);
  }

  SECTION("a write b took meanwhile is merged with what the previous owner has") {
    auto mine =
        f.b.store.coordinatePut(key, Versioning::VECTOR_CLOCK, {}, std::string("from b"), 5000)
            .wait(f.io.waitScope);
    auto reply = read().wait(f.io.waitScope);
    auto copy = copyOf(reply);
    REQUIRE(copy);
    CHECK(*copy == sync(before, mine));
    CHECK(copy->siblings.size() == 2);
  }

  SECTION("with the first previous owner down, the next one answers") {
    f.a.down();
    auto reply = read().wait(f.io.waitScope);
    auto copy = copyOf(reply);
    REQUIRE(copy);
    CHECK(*copy == before);
  }

  SECTION("with every previous owner down, the read fails as OVERLOADED, not as not found") {
    f.a.down();
    f.c.down();
    auto failure =
        read()
            .then(
                [](Reply<std::optional<Object>>&&) -> kj::Maybe<kj::Exception> { return nullptr; },
                [](kj::Exception&& e) -> kj::Maybe<kj::Exception> { return kj::mv(e); })
            .wait(f.io.waitScope);
    KJ_IF_MAYBE (e, failure) {
      CHECK(classify(*e) == ReplicaError::OVERLOADED);
    } else {
      FAIL("the read was answered");
    }
  }
}

TEST_CASE("transfer: an interrupted transfer resumes where it stopped and loses nothing") {
  Fixture f;
  f.writeKeys(200);
  // The first partition b gains (the first streamed) gets forty 32 KiB values: several chunks.
  uint32_t big = f.gained.front();
  for (int i = 0, n = 0; n < 40; i++) {
    auto key = f.key("", "big-" + std::to_string(i));
    if (key.partition != big) continue;
    f.write(key, coordinatePut(Object{}, Actor{f.a.id, 1}, {},
                               std::string(32 * 1024, char('a' + n % 26)), 1000 + i));
    n++;
  }
  size_t total = f.written[big].size();
  auto heldOfBig = [&]() { return contents(f.b.store, big).size(); };

  auto transfers = f.newTransfers(CRAWL);
  transfers->mapChanged(*f.previous, *f.current);
  auto loop = f.run(*transfers);
  f.eventually("the first chunk arrived", [&]() { return heldOfBig() > 0; });
  size_t afterFirst = heldOfBig();
  CHECK(afterFirst < total);
  CHECK(transfers->pendingCount() == f.gained.size());

  // b stops mid-stream (as if restarted). A new manager over the same engine is not told of the
  // map change: it knows what is pending, and where each stream stopped, from the record.
  loop = nullptr;
  transfers = nullptr;
  transfers = f.newTransfers(CRAWL);
  CHECK(transfers->pendingCount() == f.gained.size());
  CHECK_FALSE(transfers->readable(big));
  loop = f.run(*transfers);
  // Its first chunk continues after the last key received: a stream started over would bring
  // the same keys again.
  f.eventually("the resumed stream brought keys beyond the first chunk",
               [&]() { return heldOfBig() > afterFirst; });
  CHECK(heldOfBig() < total);

  // Stopped again, then resumed at full speed: it completes, every key there once and identical.
  loop = nullptr;
  transfers = nullptr;
  transfers = f.newTransfers(UNLIMITED);
  CHECK(transfers->pendingCount() == f.gained.size());
  loop = f.run(*transfers);
  f.eventually("every transfer finished", [&]() { return transfers->pendingCount() == 0; });
  CHECK(heldOfBig() == total);
  f.checkComplete(*transfers);

  // Done is recorded too: a manager made after it has nothing to resume.
  loop = nullptr;
  transfers = nullptr;
  CHECK(f.newTransfers(UNLIMITED)->pendingCount() == 0);
}

TEST_CASE("transfer: with every previous owner down it retries, and completes once one is back") {
  Fixture f;
  f.writeKeys(100);
  f.a.down();
  f.c.down();

  auto transfers = f.newTransfers(UNLIMITED);
  transfers->mapChanged(*f.previous, *f.current);
  auto loop = f.run(*transfers);
  f.eventually("both previous owners were tried",
               [&]() { return f.pool.isSuspect(f.a.address) && f.pool.isSuspect(f.c.address); });
  CHECK(transfers->pendingCount() == f.gained.size());
  for (uint32_t p : f.gained) CHECK(contents(f.b.store, p).empty());

  f.a.up();
  f.eventually("every transfer finished", [&]() { return transfers->pendingCount() == 0; });
  f.checkComplete(*transfers);
}

}  // namespace
}  // namespace dynkv::storaged

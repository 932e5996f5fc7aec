// The node's hash trees over the versioned store: kept as writes commit, rebuilt from the digest
// index on restart, built once for a data directory that predates the index; the segment
// listing, tombstone collection and partition drop that anti-entropy uses.
#include <catch2/catch.hpp>
#include <kj/async.h>

#include <set>

#include "codec.h"
#include "store-fixture.h"

namespace dynkv::storaged {
namespace {

using Fixture = StoreFixture;

// The tree a partition's objects make, computed from scratch.
MerkleTree treeOf(Fixture& f, uint32_t partition) {
  MerkleTree tree;
  auto chunk = f.store.scanPartition(partition, "", size_t(1) << 30);
  for (auto& [key, object] : chunk.entries) {
    tree.update(key.ns, key.key, std::nullopt, causalDigest(object));
  }
  return tree;
}

Object tombstoneOver(const Object& o) {
  return coordinatePut(o, Actor{9, 9}, o.vv, std::nullopt, 99);
}

TEST_CASE("hash trees: follow every write and come back the same after a restart") {
  Fixture f;
  for (int i = 0; i < 50; i++) f.put(("k" + std::to_string(i)).c_str(), "v");
  auto o = f.put("k3", "again");
  f.store.replicate(f.key("k7"), tombstoneOver(*f.store.get(f.key("k7")))).wait(f.waitScope);
  f.store.replicate(StorageKey{6, "ns", "other"}, lastWriteWinsObject(std::string("x"), 3))
      .wait(f.waitScope);

  REQUIRE(f.trees.tree(5));
  CHECK(*f.trees.tree(5) == treeOf(f, 5));
  CHECK(*f.trees.tree(6) == treeOf(f, 6));
  CHECK(f.trees.tree(7) == nullptr);
  CHECK(f.trees.partitions() == std::vector<uint32_t>{5, 6});
  CHECK(f.trees.keys(5) == 50);
  CHECK(f.trees.tombstones(5) == 1);
  CHECK(f.trees.tombstones() == 1);

  HashTrees reopened(f.engine, f.limits);
  CHECK(*reopened.tree(5) == *f.trees.tree(5));
  CHECK(reopened.digest() == f.trees.digest());
  CHECK(reopened.tombstones() == 1);
}

TEST_CASE("hash trees: a data directory without the index gets it built once") {
  Fixture f;
  for (auto k : {"a", "b", "c"}) f.put(k, "v");
  auto expected = *f.trees.tree(5);
  // Back to a directory written before the index existed: objects only.
  f.engine.write([](WriteTransaction& txn) {
    std::vector<std::string> keys;
    txn.scan(Table::DIGESTS, nullptr, nullptr, [&](Bytes key, Bytes) {
      keys.emplace_back(key.asChars().begin(), key.size());
      return true;
    });
    for (auto& k : keys) txn.remove(Table::DIGESTS, kj::StringPtr(k.c_str()).asBytes());
    txn.remove(Table::META, kj::StringPtr("digest-index").asBytes());
  });
  HashTrees rebuilt(f.engine, f.limits);
  REQUIRE(rebuilt.tree(5));
  CHECK(*rebuilt.tree(5) == expected);
  int writes = f.engine.writes;
  HashTrees again(f.engine, f.limits);  // built already: nothing to write
  CHECK(f.engine.writes == writes);
  CHECK(*again.tree(5) == expected);
}

TEST_CASE("hash trees: a segment's keys are listed from the index, whole segments at a time") {
  Fixture f;
  std::map<uint32_t, std::set<std::string>> bySegment;
  for (int i = 0; i < 200; i++) {
    auto k = "key-" + std::to_string(i);
    f.put(k.c_str(), "v");
    bySegment[uint32_t(MerkleTree::fineSegmentOf("", k))].insert(encodeStorageKey(f.key(k.c_str())));
  }
  std::vector<SegmentRef> asked;
  std::set<std::string> expected;
  for (auto& [segment, keys] : bySegment) {
    if (asked.size() == 20) break;
    asked.push_back(SegmentRef{5, segment});
    expected.insert(keys.begin(), keys.end());
  }
  asked.push_back(SegmentRef{5, 4095});  // perhaps empty
  auto all = f.trees.list(asked, 10000);
  CHECK(all.segmentsCovered == asked.size());
  std::set<std::string> listed;
  for (auto& e : all.entries) {
    listed.insert(e.key);
    CHECK(e.digest == causalDigest(*f.store.ownCopies({e.key})[0]));
  }
  for (auto& k : bySegment[4095]) expected.insert(k);
  CHECK(listed == expected);

  // A small budget stops at a segment boundary, after at least one segment.
  auto some = f.trees.list(asked, 1);
  CHECK(some.segmentsCovered >= 1);
  CHECK(some.segmentsCovered < asked.size());
  CHECK(some.entries.size() >= bySegment[asked[0].segment].size());
}

TEST_CASE("hash trees: a coarser shape lists each segment's run of fine segments") {
  // The index is ordered by fine segment whatever the shape: trees of 64 segments, loaded from
  // it, agree with trees built key by key, and a segment lists exactly its keys.
  Fixture f;
  std::map<uint32_t, std::set<std::string>> bySegment;
  TreeShape shape(3);
  MerkleTree expected(shape);
  for (int i = 0; i < 300; i++) {
    auto k = "key-" + std::to_string(i);
    auto object = f.put(k.c_str(), "v");
    expected.update("", k, std::nullopt, causalDigest(object));
    bySegment[uint32_t(MerkleTree::fineSegmentOf("", k) >> shape.fineShift())].insert(
        encodeStorageKey(f.key(k.c_str())));
  }
  HashTrees coarse(f.engine, f.limits, shape);
  CHECK(coarse.shape() == shape);
  REQUIRE(coarse.tree(5) != nullptr);
  CHECK(*coarse.tree(5) == expected);
  CHECK(coarse.tree(5)->root() == f.trees.tree(5)->root());  // the same keys, the same root
  CHECK(coarse.memoryBytes() < f.trees.memoryBytes() / 8);
  for (auto& [segment, keys] : bySegment) {
    auto listing = coarse.list({SegmentRef{5, segment}}, 10000);
    std::set<std::string> listed;
    for (auto& e : listing.entries) listed.insert(e.key);
    CHECK(listed == keys);
  }
  CHECK(bySegment.size() > 32);  // 300 keys spread over most of the 64 segments
  CHECK_THROWS(coarse.list({SegmentRef{5, 64}}, 10));
}

TEST_CASE("hash trees: every partition of a ring of any size fits 64 MiB of trees") {
  for (uint32_t bits = 1; bits <= 16; bits++) {
    size_t partitions = size_t(1) << bits;
    CAPTURE(bits);
    CHECK(HashTrees::memoryBytes(TreeShape::forPartitions(partitions), partitions) <=
          size_t(64) << 20);
  }
}

TEST_CASE("hash trees: reaping removes a tombstone only while it is the same tombstone") {
  Fixture f;
  auto live = f.put("live", "v");
  auto dead = tombstoneOver(f.put("dead", "v"));
  f.store.replicate(f.key("dead"), dead).wait(f.waitScope);
  auto deadKey = encodeStorageKey(f.key("dead"));
  auto liveKey = encodeStorageKey(f.key("live"));
  REQUIRE(f.trees.tombstonesOf(5) == std::vector<KeyDigest>{{deadKey, causalDigest(dead), {}}});

  CHECK_FALSE(f.store.reap(liveKey, causalDigest(live)).wait(f.waitScope));  // not a tombstone
  CHECK_FALSE(f.store.reap(deadKey, causalDigest(dead) + 1).wait(f.waitScope));  // changed since
  CHECK(f.store.reap(deadKey, causalDigest(dead)).wait(f.waitScope));
  CHECK_FALSE(f.store.get(f.key("dead")));
  CHECK(f.trees.tombstones() == 0);
  CHECK(*f.trees.tree(5) == treeOf(f, 5));
}

TEST_CASE("hash trees: a key whose tombstone was collected never gets a counter it had before") {
  // Otherwise a replica or a client still holding the old version vector would take the new
  // write for one it has seen, and drop it.
  Fixture f;
  auto first = f.put("k", "v1");
  auto dead = f.store.coordinatePut(f.key("k"), Versioning::VECTOR_CLOCK, first.vv, std::nullopt,
                                    2).wait(f.waitScope);
  uint64_t before = dead.vv.counter(f.self);
  REQUIRE(f.store.reap(encodeStorageKey(f.key("k")), causalDigest(dead)).wait(f.waitScope));
  auto reborn = f.put("k", "v2");
  CHECK(reborn.vv.counter(f.self) > before);
  CHECK_FALSE(dead.vv.covers(reborn.siblings[0].dot));
  CHECK(sync(dead, reborn).siblings.size() == 1);  // the old vv keeps the new write

  // Nor after a restart: the store resumes above its lease.
  uint64_t highest = reborn.vv.counter(f.self);
  VersionedStore restarted(f.commits, f.hints, f.trees, f.self, f.limits);
  auto other = restarted.coordinatePut(StorageKey{5, "", "other"}, Versioning::VECTOR_CLOCK, {},
                                       std::string("x"), 3).wait(f.waitScope);
  CHECK(other.vv.counter(f.self) > highest);
}

TEST_CASE("hash trees: a dropped partition leaves no object, index entry or tree") {
  Fixture f;
  for (int i = 0; i < 30; i++) f.put(("k" + std::to_string(i)).c_str(), "v");
  f.store.replicate(StorageKey{6, "", "stays"}, lastWriteWinsObject(std::string("x"), 3))
      .wait(f.waitScope);
  auto root = f.trees.tree(5)->root();
  CHECK(f.store.dropPartition(5, root ^ 1).wait(f.waitScope) == 0);  // changed since: kept
  CHECK(f.trees.keys(5) == 30);
  CHECK(f.store.dropPartition(5, root).wait(f.waitScope) == 30);
  CHECK_FALSE(f.store.get(f.key("k1")));
  CHECK(f.trees.tree(5) == nullptr);
  CHECK(f.trees.partitions() == std::vector<uint32_t>{6});
  HashTrees reopened(f.engine, f.limits);
  CHECK(reopened.partitions() == std::vector<uint32_t>{6});
}

}  // namespace
}  // namespace dynkv::storaged

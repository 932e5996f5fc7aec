// The anti-entropy hash tree as a value: kept current write by write it equals the tree built
// from the final contents, in any order; replicas that differ find exactly the segments of the
// keys that differ; its size does not grow with the keys.
#include "merkle-tree.h"

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>
#include <string>

#include "codec.h"
#include "replica-fixture.h"

namespace dynkv {
namespace {

const Actor A{1, 1}, B{2, 1};

using Contents = std::map<std::string, Object>;  // key -> object, in namespace "ns"

MerkleTree treeOf(const Contents& contents) {
  MerkleTree tree;
  for (auto& [key, object] : contents) tree.update("ns", key, std::nullopt, causalDigest(object));
  return tree;
}

TEST_CASE("merkle tree: digests tell versions apart and ignore what does not matter") {
  auto one = written({}, A, "x");
  CHECK(causalDigest(one) == causalDigest(written({}, A, "x")));
  // The same dot stamped at another time is the same version: timestamps are left out.
  CHECK(causalDigest(one) == causalDigest(coordinatePut({}, A, {}, std::string("x"), 5000)));
  CHECK(causalDigest(one) != causalDigest(written(one, A, "y")));  // a newer version
  CHECK(causalDigest(one) != causalDigest(written({}, B, "x")));   // another actor's dot
  auto deleted = coordinatePut(one, A, one.vv, std::nullopt, 2000);
  CHECK(causalDigest(deleted) != causalDigest(written(one, A, "z")));  // a tombstone is a version
  // Concurrent writes: the sync holds both siblings, unlike either side.
  auto left = written({}, A, "l"), right = written({}, B, "r");
  auto both = sync(left, right);
  CHECK(causalDigest(both) != causalDigest(left));
  CHECK(causalDigest(both) == causalDigest(sync(right, left)));

  // Last-write-wins: the one version's timestamp and value.
  auto lww = lastWriteWinsObject(std::string("v"), 10);
  CHECK(causalDigest(lww) == causalDigest(lastWriteWinsObject(std::string("v"), 10)));
  CHECK(causalDigest(lww) != causalDigest(lastWriteWinsObject(std::string("w"), 10)));
  CHECK(causalDigest(lww) != causalDigest(lastWriteWinsObject(std::string("v"), 11)));
  CHECK(causalDigest(lww) != causalDigest(lastWriteWinsObject(std::nullopt, 10)));
}

TEST_CASE("merkle tree: kept current write by write, it equals the tree of the final contents") {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 20; round++) {
    INFO("round " << round);
    Contents contents;
    MerkleTree incremental;
    for (int i = 0; i < 500; i++) {
      auto key = "k" + std::to_string(rng() % 120);
      auto it = contents.find(key);
      std::optional<uint64_t> before;
      if (it != contents.end()) before = causalDigest(it->second);
      if (it != contents.end() && rng() % 5 == 0) {
        contents.erase(it);  // collected: the key leaves the tree
        incremental.update("ns", key, before, std::nullopt);
        continue;
      }
      auto& object = contents[key];
      object = written(object, rng() % 2 ? A : B, "v" + std::to_string(i));
      incremental.update("ns", key, before, causalDigest(object));
    }
    auto rebuilt = treeOf(contents);
    CHECK(incremental == rebuilt);
    CHECK(incremental.root() == rebuilt.root());
    for (size_t i = 0; i < TreeShape::nodesAt(2); i++) CHECK(incremental.node(2, i) == rebuilt.node(2, i));
  }
  CHECK(MerkleTree{}.root() == 0);  // an empty partition
}

TEST_CASE("merkle tree: replicas that differ find exactly the segments of the differing keys") {
  std::mt19937_64 rng(5);
  Contents mine;
  for (int i = 0; i < 20000; i++) mine["k" + std::to_string(i)] = written({}, A, "v");
  auto theirs = mine;
  std::set<size_t> expected;
  // One key newer on their side, one missing there, one present only there.
  theirs["k17"] = written(theirs["k17"], B, "newer");
  theirs.erase("k4242");
  theirs["only-theirs"] = written({}, B, "x");
  for (auto key : {"k17", "k4242", "only-theirs"}) expected.insert(MerkleTree::fineSegmentOf("ns", key));

  auto a = treeOf(mine), b = treeOf(theirs);
  REQUIRE(a.root() != b.root());
  // Walk down from the root through the children that differ only.
  std::vector<size_t> differing{0};
  for (size_t level = 0; level < TreeShape().segmentLevel(); level++) {
    std::vector<size_t> next;
    for (size_t index : differing) {
      auto mineChildren = a.children(level, index), theirChildren = b.children(level, index);
      for (size_t i = 0; i < MerkleTree::FANOUT; i++) {
        if (mineChildren[i] != theirChildren[i]) next.push_back(index * MerkleTree::FANOUT + i);
      }
    }
    differing = next;
  }
  std::set<size_t> found(differing.begin(), differing.end());
  CHECK(found == expected);
  // Every inner node is the XOR of its children.
  for (size_t level = 0; level < TreeShape().segmentLevel(); level++) {
    for (size_t index = 0; index < TreeShape::nodesAt(level); index++) {
      uint64_t x = 0;
      for (auto h : a.children(level, index)) x ^= h;
      CHECK(x == a.node(level, index));
    }
  }

  // Once synced, the trees agree.
  for (auto& [key, object] : theirs) mine[key] = sync(mine[key], object);
  for (auto& [key, object] : mine) theirs[key] = sync(theirs[key], object);
  CHECK(treeOf(mine) == treeOf(theirs));
  CHECK(treeOf(mine).root() == treeOf(theirs).root());
}

TEST_CASE("merkle tree: salted hashes differ between exchanges, agree within one") {
  CHECK(saltedHash(1, 7) == saltedHash(1, 7));
  CHECK(saltedHash(1, 7) != saltedHash(2, 7));
  CHECK(saltedHash(1, 7) != saltedHash(1, 8));
}

TEST_CASE("merkle tree: a replica's tree is the same size with ten keys or a million") {
  MerkleTree tree;
  CHECK(tree.memoryBytes() == MerkleTree::memoryBytes(TreeShape()));
  CHECK(tree.memoryBytes() < 40 * 1024);
  for (int i = 0; i < 10000; i++) {
    tree.update("ns", "k" + std::to_string(i), std::nullopt, uint64_t(i));
  }
  CHECK(tree.memoryBytes() == MerkleTree::memoryBytes(TreeShape()));
  CHECK_THROWS(tree.children(TreeShape().segmentLevel(), 0));
  CHECK_THROWS(tree.node(1, MerkleTree::FANOUT));
  CHECK(MerkleTree().empty());
}

TEST_CASE("merkle tree: the shape follows the ring's size, so that every partition's tree fits "
          "64 MiB together") {
  CHECK(TreeShape::forPartitions(1024).segments() == 4096);
  CHECK(TreeShape::forPartitions(2048).segments() == 512);
  CHECK(TreeShape::forPartitions(8192).segments() == 512);
  CHECK(TreeShape::forPartitions(16384).segments() == 64);
  CHECK(TreeShape::forPartitions(65536).segments() == 64);
  for (uint32_t bits = 1; bits <= 16; bits++) {
    // A node holding every partition of the ring (a cluster of no more nodes than replicas).
    size_t partitions = size_t(1) << bits;
    auto shape = TreeShape::forPartitions(partitions);
    CAPTURE(bits, shape.segments());
    CHECK(partitions * MerkleTree::memoryBytes(shape) <= TreeShape::MEMORY_BUDGET);
    // The finest that fits: a finer one would not.
    if (shape.levels() < TreeShape::MAX_LEVELS) {
      CHECK(partitions * MerkleTree::memoryBytes(TreeShape(shape.levels() + 1)) >
            TreeShape::MEMORY_BUDGET);
    }
  }
  CHECK(TreeShape::forSegments(64) == TreeShape(3));
  CHECK(TreeShape::forSegments(512) == TreeShape(4));
  CHECK(TreeShape::forSegments(4096) == TreeShape());
  CHECK_THROWS(TreeShape::forSegments(100));
  CHECK_THROWS(TreeShape(2));
  CHECK_THROWS(TreeShape(6));
}

TEST_CASE("merkle tree: a coarse tree is the fine one with its lowest levels folded") {
  // Each segment of a coarser shape is the XOR of the fine segments it covers, and its inner
  // nodes are the fine tree's upper levels: the same keys give the same root in every shape.
  MerkleTree fine, medium(TreeShape(4)), coarse(TreeShape(3));
  for (int i = 0; i < 3000; i++) {
    auto key = "k" + std::to_string(i);
    for (auto* t : {&fine, &medium, &coarse}) t->update("ns", key, std::nullopt, uint64_t(i * 7));
  }
  CHECK(fine.root() == medium.root());
  CHECK(fine.root() == coarse.root());
  for (size_t s = 0; s < 64; s++) CHECK(coarse.segment(s) == fine.node(2, s));
  for (size_t s = 0; s < 512; s++) CHECK(medium.segment(s) == fine.node(3, s));
  CHECK(coarse.segmentOf("ns", "k1") == MerkleTree::fineSegmentOf("ns", "k1") >> 6);
  CHECK_THROWS(coarse.children(2, 0));  // its segments have no children
  CHECK(coarse.memoryBytes() < 1024);
  CHECK(medium.memoryBytes() < 5 * 1024);
  CHECK(MerkleTree() != MerkleTree(TreeShape(4)));  // different shapes never compare equal
}

}  // namespace
}  // namespace dynkv

namespace dynkv {
namespace {

TEST_CASE("what anti-entropy sends of an object: packed, back the same, bounded when read") {
  Object object = written({}, Actor{1, 1}, std::string(100, 'v'));
  object = sync(object, written({}, Actor{2, 5}, std::string("concurrent")));
  auto packed = objectToPackedBytes(object);
  CHECK(objectFromPackedBytes(packed, Limits{}) == object);
  CHECK(packed.size() < objectToWords(object).asBytes().size());

  Limits small;
  small.maxValueBytes = 50;
  CHECK_THROWS(objectFromPackedBytes(packed, small));  // a value over the limit
  auto garbage = kj::heapArray<kj::byte>({0xff, 0x01, 0x02});
  CHECK_THROWS(objectFromPackedBytes(garbage, Limits{}));
}

}  // namespace
}  // namespace dynkv

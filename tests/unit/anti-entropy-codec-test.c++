// The compact encodings of anti-entropy's lists (common/anti-entropy-codec.h): what is encoded
// decodes to the same values, a small object costs little more than its value, and a decoder
// given bytes from a peer refuses anything malformed or over a limit, naming it, rather than
// returning part of it or allocating what the bytes claim.
#include "anti-entropy-codec.h"

#include <catch2/catch.hpp>
#include <kj/exception.h>
#include <random>

#include "codec.h"
#include "replica-fixture.h"

namespace dynkv {
namespace {

const Actor A{1, 1}, B{0x123456789abcdefULL, 42};
const Limits LIMITS;

std::vector<KeyObject> someEntries() {
  auto one = written({}, A, std::string(100, 'v'));
  auto siblings = sync(written({}, A, "left"), written({}, B, "right"));
  auto deleted = coordinatePut(one, B, one.vv, std::nullopt, 7000);
  return {
      {storageKey(3, "bench/key000001"), one},
      {storageKey(3, "bench/key000002"), siblings},
      {storageKey(3, "bench/key000003"), std::nullopt},
      {storageKey(9, "other"), deleted},
      {storageKey(9, "other2"), lastWriteWinsObject(std::string("w"), -5)},
      {storageKey(9, "other3"), lastWriteWinsObject(std::nullopt, int64_t(1) << 62)},
  };
}

std::vector<KeyDigest> someListing() {
  std::vector<KeyDigest> out;
  for (auto& e : someEntries()) {
    if (e.object) out.push_back(KeyDigest{e.key, causalDigest(*e.object), causalSummary(*e.object)});
  }
  return out;
}

template <typename F>
std::string refusal(F&& decode) {
  // The message a decoder refuses with ("" if it does not).
  try {
    decode();
  } catch (const kj::Exception& e) {
    return e.getDescription().cStr();
  }
  return "";
}

TEST_CASE("anti-entropy codec: entries, listings, keys, segments and nodes round-trip") {
  auto entries = someEntries();
  CHECK(decodeEntries(encodeEntries(entries), 100, LIMITS) == entries);
  CHECK(decodeEntries(encodeEntries({}), 100, LIMITS).empty());
  auto listing = someListing();
  CHECK(decodeKeyDigests(encodeKeyDigests(listing), 100, LIMITS) == listing);
  std::vector<std::string> keys;
  for (auto& e : entries) keys.push_back(e.key);
  CHECK(decodeKeys(encodeKeys(keys), 100, LIMITS) == keys);
  std::vector<SegmentRef> segments = {{0, 0}, {7, 4095}, {3, 12}, {65535, 1}};
  CHECK(decodeSegments(encodeSegments(segments), 100, TreeShape()) == segments);
  std::vector<TreeNodeRef> nodes = {{0, 0, 0}, {9, 3, 511}, {2, 1, 7}, {65535, 2, 63}};
  CHECK(decodeTreeNodes(encodeTreeNodes(nodes), 100, TreeShape()) == nodes);
}

TEST_CASE("anti-entropy codec: partitions go as a bitmap when that is smaller") {
  std::vector<uint32_t> dense;
  for (uint32_t p = 0; p < 1024; p++) {
    if (p % 3) dense.push_back(p);
  }
  auto bytes = encodePartitions(dense);
  CHECK(bytes.size() < 140);  // 1024 bits, against 2 bytes a partition as a list
  CHECK(decodePartitions(bytes, 4096) == dense);
  for (std::vector<uint32_t> list : std::vector<std::vector<uint32_t>>{
           {}, {5}, {65535}, {0, 65535}, {9, 3, 3, 700}, {100, 200, 300}}) {
    CHECK(decodePartitions(encodePartitions(list), 4096) == list);
  }
  CHECK(refusal([&]() { decodePartitions(bytes, 100); }).find("partitions per request") !=
        std::string::npos);
}

TEST_CASE("anti-entropy codec: a 100-byte object costs little more than its value") {
  // 14-byte keys of one partition with a 100-byte value, as dynkv-bench writes them.
  std::vector<KeyObject> entries;
  Object last;
  for (int i = 0; i < 100; i++) {
    auto key = std::string("key") + std::to_string(100000 + i * 37);
    last = written({}, i % 2 ? A : B, std::string(100, 'v'));
    entries.push_back({storageKey(17, "\5bench" + key), last});
  }
  auto bytes = encodeEntries(entries);
  CHECK(bytes.size() / entries.size() < 140);
  CHECK(bytes.size() / entries.size() + 60 < objectToPackedBytes(last).size() + 40 + 2 * 24);
}

TEST_CASE("anti-entropy codec: decoders refuse what is over a limit, naming the limit") {
  Limits small;
  small.maxValueBytes = 10;
  small.maxKeyBytes = 8;
  auto entries = someEntries();
  CHECK(refusal([&]() { decodeEntries(encodeEntries(entries), 100, small); })
            .find("max") != std::string::npos);
  CHECK(refusal([&]() { decodeEntries(encodeEntries(entries), 2, LIMITS); })
            .find("entries per request") != std::string::npos);
  CHECK(refusal([&]() { decodeKeyDigests(encodeKeyDigests(someListing()), 2, LIMITS); })
            .find("keys per listing") != std::string::npos);
  std::vector<std::string> longKey = {std::string(maxStorageKeyBytes(small) + 1, 'k')};
  CHECK(refusal([&]() { decodeKeys(encodeKeys(longKey), 10, small); }).find("maxKeyBytes") !=
        std::string::npos);
  // An object with more siblings than Limits::MAX_SIBLINGS.
  Object crowded;
  crowded.vv.set(A, Limits::MAX_SIBLINGS + 1, 1000);
  for (uint64_t i = 1; i <= Limits::MAX_SIBLINGS + 1; i++) {
    crowded.siblings.push_back(Sibling{Dot{A, i}, 1000, std::string("x")});
  }
  CHECK(refusal([&]() {
          decodeEntries(encodeEntries({{storageKey(1, "k"), crowded}}), 10, LIMITS);
        }).find("MAX_SIBLINGS") != std::string::npos);
  auto segments = [](uint32_t segment, TreeShape shape) {
    return refusal([&]() { decodeSegments(encodeSegments({{1, segment}}), 10, shape); });
  };
  CHECK(segments(4096, TreeShape()).find("segment") != std::string::npos);
  CHECK(segments(4095, TreeShape()).empty());
  // A coarser tree has fewer segments and levels: what fits the finest is refused.
  CHECK(segments(64, TreeShape::forSegments(64)).find("segment") != std::string::npos);
  CHECK(segments(63, TreeShape::forSegments(64)).empty());
  auto node = [](uint8_t level, uint32_t index, TreeShape shape) {
    return refusal([&]() { decodeTreeNodes(encodeTreeNodes({{1, level, index}}), 10, shape); });
  };
  CHECK(node(4, 0, TreeShape()).find("tree node") != std::string::npos);
  CHECK(node(3, 511, TreeShape()).empty());
  CHECK(node(3, 512, TreeShape()).find("tree node") != std::string::npos);
  CHECK(node(2, 0, TreeShape::forSegments(64)).find("tree node") != std::string::npos);
  CHECK(node(1, 7, TreeShape::forSegments(64)).empty());
}

TEST_CASE("anti-entropy codec: truncated, padded or corrupted bytes are refused or decoded whole") {
  auto entries = encodeEntries(someEntries());
  auto listing = encodeKeyDigests(someListing());
  for (auto* blob : {&entries, &listing}) {
    for (size_t n = 0; n < blob->size(); n++) {
      auto cut = blob->substr(0, n);
      CHECK_THROWS_AS(blob == &entries ? (void)decodeEntries(cut, 100, LIMITS)
                                       : (void)decodeKeyDigests(cut, 100, LIMITS),
                      kj::Exception);
    }
    CHECK_THROWS_AS(decodeEntries(*blob + "x", 100, LIMITS), kj::Exception);
  }
  // Random corruption: either a refusal or a value, never a crash (the fuzz target does more).
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; i++) {
    auto bad = entries;
    bad[rng() % bad.size()] = char(rng());
    try {
      decodeEntries(bad, 100, LIMITS);
    } catch (const kj::Exception&) {
    }
  }
  SUCCEED();
}

}  // namespace
}  // namespace dynkv

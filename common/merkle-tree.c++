#include "merkle-tree.h"

#include <kj/debug.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "hash.h"

namespace dynkv {

namespace {

void append(std::string& out, uint64_t v) {
  char bytes[8];
  for (int i = 0; i < 8; i++) bytes[i] = char(v >> (56 - 8 * i));  // big-endian: stable
  out.append(bytes, 8);
}

void append(std::string& out, const Actor& actor) {
  append(out, actor.node);
  append(out, actor.epoch);
}

}  // namespace

uint64_t causalDigest(const Object& object) {
  std::string bytes;
  bytes.push_back(char(object.kind));
  if (object.kind == Versioning::LAST_WRITE_WINS) {
    for (auto& s : object.siblings) {
      append(bytes, uint64_t(s.timestamp));
      bytes.push_back(s.isTombstone() ? 't' : 'v');
      if (s.value) append(bytes, hash64(*s.value));
    }
    return hash64(bytes);
  }
  // Dotted version vectors: a dot names one version for good, so dots and counters say
  // which versions the object holds without reading any value.
  for (auto& e : object.vv.entries()) {
    append(bytes, e.actor);
    append(bytes, e.counter);
  }
  bytes.push_back('|');
  for (auto& s : object.siblings) {
    append(bytes, s.dot.actor);
    append(bytes, s.dot.counter);
    bytes.push_back(s.isTombstone() ? 't' : 'v');
  }
  return hash64(bytes);
}

CausalSummary causalSummary(const Object& object) {
  CausalSummary out;
  out.kind = object.kind;
  if (object.kind == Versioning::LAST_WRITE_WINS) {
    if (!object.siblings.empty()) {
      out.timestamp = object.siblings.front().timestamp;
      out.tombstone = object.siblings.front().isTombstone();
    }
    return out;
  }
  for (auto& e : object.vv.entries()) out.counters.push_back(Dot{e.actor, e.counter});
  return out;
}

uint64_t combinedRoots(const std::vector<uint64_t>& roots) {
  std::string bytes;
  bytes.reserve(8 * roots.size());
  for (auto r : roots) append(bytes, r);
  return hash64(bytes);
}

uint64_t entryHash(std::string_view ns, std::string_view key, uint64_t digest) {
  std::string bytes;
  append(bytes, keyHash(ns, key));
  append(bytes, digest);
  return hash64(bytes);
}

TreeShape::TreeShape(size_t levels) : levels_(levels) {
  KJ_REQUIRE(levels >= MIN_LEVELS && levels <= MAX_LEVELS, "no tree shape has this many levels",
             levels);
}

TreeShape TreeShape::forPartitions(size_t partitions) {
  for (size_t levels = MAX_LEVELS; levels > MIN_LEVELS; levels--) {
    if (partitions * MerkleTree::memoryBytes(TreeShape(levels)) <= MEMORY_BUDGET) {
      return TreeShape(levels);
    }
  }
  return TreeShape(MIN_LEVELS);
}

TreeShape TreeShape::forSegments(size_t segments) {
  for (size_t levels = MIN_LEVELS; levels <= MAX_LEVELS; levels++) {
    if (nodesAt(levels - 1) == segments) return TreeShape(levels);
  }
  KJ_FAIL_REQUIRE("no tree shape has this many segments", segments);
}

size_t TreeShape::nodes() const { return (nodesAt(levels_) - 1) / (FANOUT - 1); }

MerkleTree::MerkleTree(TreeShape shape) : shape_(shape), nodes_(shape.nodes(), 0) {}

size_t MerkleTree::fineSegmentOf(std::string_view ns, std::string_view key) {
  return size_t(keyHash(ns, key) & (TreeShape::FINE_SEGMENTS - 1));
}

size_t MerkleTree::segmentOf(std::string_view ns, std::string_view key) const {
  return fineSegmentOf(ns, key) >> shape_.fineShift();
}

bool MerkleTree::empty() const {
  return std::all_of(nodes_.begin(), nodes_.end(), [](uint64_t h) { return h == 0; });
}

void MerkleTree::toggle(size_t segment, uint64_t hash) {
  // XOR adds a hash and removes it again: each node stays the XOR of its children.
  for (size_t level = 0; level < shape_.levels(); level++) {
    nodes_[offsetOf(level) + (segment >> (3 * (shape_.segmentLevel() - level)))] ^= hash;
  }
}

void MerkleTree::update(std::string_view ns, std::string_view key, std::optional<uint64_t> before,
                        std::optional<uint64_t> after) {
  if (before == after) return;
  auto segment = segmentOf(ns, key);
  if (before) toggle(segment, entryHash(ns, key, *before));
  if (after) toggle(segment, entryHash(ns, key, *after));
}

uint64_t MerkleTree::node(size_t level, size_t index) const {
  KJ_REQUIRE(level < shape_.levels() && index < TreeShape::nodesAt(level), "no such tree node",
             level, index);
  return nodes_[offsetOf(level) + index];
}

std::array<uint64_t, MerkleTree::FANOUT> MerkleTree::children(size_t level, size_t index) const {
  KJ_REQUIRE(level < shape_.segmentLevel() && index < TreeShape::nodesAt(level),
             "no such inner tree node", level, index);
  std::array<uint64_t, FANOUT> out;
  auto first = nodes_.begin() + offsetOf(level + 1) + index * FANOUT;
  std::copy(first, first + FANOUT, out.begin());
  return out;
}

uint32_t saltedHash(uint64_t hash, uint64_t salt) {
  std::string bytes;
  append(bytes, hash);
  append(bytes, salt);
  return uint32_t(hash64(bytes));
}

}  // namespace dynkv

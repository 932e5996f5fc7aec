#include "merkle-tree.h"

#include <kj/debug.h>

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

uint64_t entryHash(std::string_view ns, std::string_view key, uint64_t digest) {
  std::string bytes;
  append(bytes, keyHash(ns, key));
  append(bytes, digest);
  return hash64(bytes);
}

size_t MerkleTree::segmentOf(std::string_view ns, std::string_view key) {
  return size_t(keyHash(ns, key) & (SEGMENTS - 1));
}

void MerkleTree::toggle(size_t segment, uint64_t hash) {
  // XOR adds a hash and removes it again: each level stays the XOR of the one below.
  segments_[segment] ^= hash;
  branches_[segment / SEGMENTS_PER_BRANCH] ^= hash;
  root_ ^= hash;
}

void MerkleTree::update(std::string_view ns, std::string_view key, std::optional<uint64_t> before,
                        std::optional<uint64_t> after) {
  if (before == after) return;
  auto segment = segmentOf(ns, key);
  if (before) toggle(segment, entryHash(ns, key, *before));
  if (after) toggle(segment, entryHash(ns, key, *after));
}

std::vector<uint64_t> MerkleTree::segmentsOfBranch(size_t b) const {
  KJ_REQUIRE(b < BRANCHES, "no such branch", b);
  auto first = segments_.begin() + b * SEGMENTS_PER_BRANCH;
  return std::vector<uint64_t>(first, first + SEGMENTS_PER_BRANCH);
}

std::vector<size_t> MerkleTree::differingBranches(const std::array<uint64_t, BRANCHES>& mine,
                                                  const std::array<uint64_t, BRANCHES>& theirs) {
  std::vector<size_t> out;
  for (size_t b = 0; b < BRANCHES; b++) {
    if (mine[b] != theirs[b]) out.push_back(b);
  }
  return out;
}

std::vector<size_t> MerkleTree::differingSegments(size_t b,
                                                  const std::vector<uint64_t>& theirs) const {
  KJ_REQUIRE(b < BRANCHES, "no such branch", b);
  KJ_REQUIRE(theirs.size() == SEGMENTS_PER_BRANCH, "a branch has SEGMENTS_PER_BRANCH segments",
             theirs.size());
  std::vector<size_t> out;
  for (size_t i = 0; i < SEGMENTS_PER_BRANCH; i++) {
    size_t s = b * SEGMENTS_PER_BRANCH + i;
    if (segments_[s] != theirs[i]) out.push_back(s);
  }
  return out;
}

}  // namespace dynkv

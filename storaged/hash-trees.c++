#include "hash-trees.h"

#include <kj/debug.h>

#include "codec.h"
#include "hash.h"
#include "storage-key.h"

namespace dynkv::storaged {

namespace {

// META marks a data directory whose DIGESTS index is complete.
const kj::byte INDEX_KEY[] = {'d', 'i', 'g', 'e', 's', 't', '-', 'i', 'n', 'd', 'e', 'x'};
constexpr size_t VALUE_BYTES = 9;

Bytes bytesOf(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

std::string indexPrefix(uint32_t partition, uint32_t segment) {
  std::string out;
  out.push_back(char(partition >> 8));
  out.push_back(char(partition & 0xff));
  out.push_back(char(segment >> 8));
  out.push_back(char(segment & 0xff));
  return out;
}

std::string indexKey(const std::string& storageKey) {
  // [partition][fine segment][the storage key's namespace and key]: a segment's keys are one
  // range, in every tree shape (a coarse segment is a run of fine ones).
  auto key = decodeStorageKey(bytesOf(storageKey));
  auto segment = uint32_t(MerkleTree::fineSegmentOf(key.ns, key.key));
  return indexPrefix(key.partition, segment) + storageKey.substr(2);
}

std::string storageKeyOf(Bytes indexKey) {
  KJ_ASSERT(indexKey.size() >= 5, "malformed digest index key");
  std::string out(reinterpret_cast<const char*>(indexKey.begin()), 2);
  out.append(reinterpret_cast<const char*>(indexKey.begin() + 4), indexKey.size() - 4);
  return out;
}

struct IndexValue {
  uint64_t digest = 0;
  bool tombstone = false;
};

std::string encodeValue(const IndexValue& v) {
  std::string out(VALUE_BYTES, '\0');
  for (int i = 0; i < 8; i++) out[size_t(i)] = char(v.digest >> (56 - 8 * i));
  out[8] = v.tombstone ? 1 : 0;
  return out;
}

IndexValue decodeValue(Bytes bytes) {
  KJ_ASSERT(bytes.size() == VALUE_BYTES, "malformed digest index value");
  IndexValue v;
  for (int i = 0; i < 8; i++) v.digest = (v.digest << 8) | bytes[size_t(i)];
  v.tombstone = bytes[8] != 0;
  return v;
}

}  // namespace

bool onlyTombstones(const Object& object) {
  if (object.siblings.empty()) return false;
  for (auto& s : object.siblings) {
    if (!s.isTombstone()) return false;
  }
  return true;
}

HashTrees::HashTrees(StorageEngine& engine, const Limits& limits, TreeShape shape)
    : engine_(engine), limits_(limits), shape_(shape) {
  load();
}

void HashTrees::load() {
  bool indexed = false;
  engine_.read([&](ReadTransaction& txn) {
    indexed = txn.get(Table::META, kj::arrayPtr(INDEX_KEY, sizeof(INDEX_KEY))) != nullptr;
  });
  if (!indexed) {
    // A data directory from before the index: build it from the objects, once.
    size_t built = 0;
    engine_.write([&](WriteTransaction& txn) {
      std::vector<std::pair<std::string, std::string>> entries;
      txn.scan(Table::OBJECTS, nullptr, nullptr, [&](Bytes key, Bytes value) {
        std::string storageKey(reinterpret_cast<const char*>(key.begin()), key.size());
        auto object = objectFromBytes(value, limits_);
        entries.emplace_back(indexKey(storageKey),
                             encodeValue({causalDigest(object), onlyTombstones(object)}));
        return true;
      });
      for (auto& [k, v] : entries) txn.put(Table::DIGESTS, bytesOf(k), bytesOf(v));
      txn.put(Table::META, kj::arrayPtr(INDEX_KEY, sizeof(INDEX_KEY)),
              kj::StringPtr("1").asBytes());
      built = entries.size();
    });
    if (built > 0) KJ_LOG(INFO, "built the anti-entropy digest index", built);
  }
  engine_.read([&](ReadTransaction& txn) {
    txn.scan(Table::DIGESTS, nullptr, nullptr, [&](Bytes key, Bytes value) {
      auto v = decodeValue(value);
      apply(storageKeyOf(key), std::nullopt, false, v.digest, v.tombstone);
      return true;
    });
  });
}

void HashTrees::written(BatchTransaction& txn, const std::string& storageKey,
                        const std::optional<Object>& now) {
  auto key = indexKey(storageKey);
  std::optional<uint64_t> before;
  bool wasTombstone = false;
  KJ_IF_MAYBE(bytes, txn.get(Table::DIGESTS, bytesOf(key))) {
    auto v = decodeValue(*bytes);
    before = v.digest;
    wasTombstone = v.tombstone;
  }
  std::optional<uint64_t> after;
  bool isTombstone = false;
  if (now) {
    after = causalDigest(*now);
    isTombstone = onlyTombstones(*now);
    txn.put(Table::DIGESTS, bytesOf(key), bytesOf(encodeValue({*after, isTombstone})));
  } else if (before) {
    txn.remove(Table::DIGESTS, bytesOf(key));
  }
  if (before == after && wasTombstone == isTombstone) return;
  txn.onCommit([this, storageKey, before, wasTombstone, after, isTombstone]() {
    apply(storageKey, before, wasTombstone, after, isTombstone);
  });
}

void HashTrees::apply(const std::string& storageKey, std::optional<uint64_t> before,
                      bool wasTombstone, std::optional<uint64_t> after, bool isTombstone) {
  auto key = decodeStorageKey(bytesOf(storageKey));
  auto& slot = partitions_[key.partition];
  if (!slot) slot = std::make_unique<Partition>(shape_);
  auto& p = *slot;
  p.tree.update(key.ns, key.key, before, after);
  if (before) {
    p.keys--;
    if (wasTombstone) p.tombstones--, tombstones_--;
  }
  if (after) {
    p.keys++;
    if (isTombstone) p.tombstones++, tombstones_++;
  }
  // A partition this node holds nothing of any more costs no memory.
  if (p.keys == 0) partitions_.erase(key.partition);
}

const MerkleTree* HashTrees::tree(uint32_t partition) const {
  auto it = partitions_.find(partition);
  return it == partitions_.end() ? nullptr : &it->second->tree;
}

std::vector<uint32_t> HashTrees::partitions() const {
  std::vector<uint32_t> out;
  for (auto& [p, _] : partitions_) out.push_back(p);
  return out;
}

uint64_t HashTrees::keys(uint32_t partition) const {
  auto it = partitions_.find(partition);
  return it == partitions_.end() ? 0 : it->second->keys;
}

uint64_t HashTrees::tombstones(uint32_t partition) const {
  auto it = partitions_.find(partition);
  return it == partitions_.end() ? 0 : it->second->tombstones;
}

uint64_t HashTrees::tombstones() const { return tombstones_; }

uint64_t HashTrees::digest() const {
  std::string bytes;
  for (auto& [p, state] : partitions_) {
    uint64_t root = state->tree.root();
    for (int i = 0; i < 4; i++) bytes.push_back(char(p >> (24 - 8 * i)));
    for (int i = 0; i < 8; i++) bytes.push_back(char(root >> (56 - 8 * i)));
  }
  return hash64(bytes);
}

size_t HashTrees::memoryBytes() const { return memoryBytes(shape_, partitions_.size()); }

size_t HashTrees::memoryBytes(TreeShape shape, size_t partitions) {
  // Each partition: its tree's nodes, the Partition, and a std::map node (four pointers and
  // the key beside the value).
  return partitions * (MerkleTree::memoryBytes(shape) - sizeof(MerkleTree) + sizeof(Partition) +
                       sizeof(void*) * 4 + sizeof(uint32_t) +
                       sizeof(std::unique_ptr<Partition>));
}

HashTrees::Listing HashTrees::list(const std::vector<SegmentRef>& segments,
                                   size_t maxEntries) const {
  Listing out;
  engine_.read([&](ReadTransaction& txn) {
    for (auto& ref : segments) {
      if (out.segmentsCovered > 0 && out.entries.size() >= maxEntries) break;
      KJ_REQUIRE(ref.partition <= 0xffff && ref.segment < shape_.segments(), "no such segment",
                 ref.partition, ref.segment);
      // The segment's run of fine segments in the index.
      uint32_t first = ref.segment << shape_.fineShift();
      uint32_t last = ((ref.segment + 1) << shape_.fineShift()) - 1;
      auto begin = indexPrefix(ref.partition, first);
      auto end = last + 1 < TreeShape::FINE_SEGMENTS
                     ? indexPrefix(ref.partition, last + 1)
                     : (ref.partition < 0xffff ? indexPrefix(ref.partition + 1, 0) : std::string());
      txn.scan(Table::DIGESTS, bytesOf(begin), bytesOf(end), [&](Bytes key, Bytes value) {
        out.entries.push_back(KeyDigest{storageKeyOf(key), decodeValue(value).digest, {}});
        return true;
      });
      out.segmentsCovered++;
    }
  });
  return out;
}

std::vector<KeyDigest> HashTrees::tombstonesOf(uint32_t partition) const {
  std::vector<KeyDigest> out;
  if (tombstones(partition) == 0) return out;
  auto begin = indexPrefix(partition, 0);
  auto end = partition < 0xffff ? indexPrefix(partition + 1, 0) : std::string();
  engine_.read([&](ReadTransaction& txn) {
    txn.scan(Table::DIGESTS, bytesOf(begin), bytesOf(end), [&](Bytes key, Bytes value) {
      auto v = decodeValue(value);
      if (v.tombstone) out.push_back(KeyDigest{storageKeyOf(key), v.digest, {}});
      return true;
    });
  });
  return out;
}

}  // namespace dynkv::storaged

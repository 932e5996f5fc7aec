#include "hint-store.h"

#include <algorithm>
#include <kj/debug.h>

#include "codec.h"
#include "versioned-store.h"

namespace dynkv::storaged {

namespace {

Bytes bytesOf(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

// Hint keys are [owner id: 8 bytes BE][storage key]: each owner's hints are one contiguous
// range in storage-key order, so handoff reads one owner from a cursor without passing over
// anyone else's backlog. A read of one key looks its hints up owner by owner (counts_ knows
// which owners have any; usually none).
std::string ownerPrefix(uint64_t ownerId) {
  std::string out;
  for (int i = 0; i < 8; i++) out.push_back(char(ownerId >> (56 - 8 * i)));
  return out;
}

std::string hintKey(uint64_t ownerId, const std::string& storageKey) {
  return ownerPrefix(ownerId) + storageKey;
}

struct ParsedHintKey {
  uint64_t owner;
  Bytes storageKey;
};

ParsedHintKey parseHintKey(Bytes key) {
  KJ_REQUIRE(key.size() > 8, "malformed hint key");
  uint64_t id = 0;
  for (size_t i = 0; i < 8; i++) id = (id << 8) | key[i];
  return ParsedHintKey{id, key.slice(8, key.size())};
}

// Before per-owner cursors, hint keys were [storage key length: 2 bytes BE][storage key]
// [owner id: 8 bytes BE]. A data directory whose META table lacks LAYOUT_KEY may hold hints in
// that layout; once any hint is written in the current one, the key is set.
const kj::byte LAYOUT_KEY[] = {'h', 'i', 'n', 't', '-', 'l', 'a', 'y', 'o', 'u', 't'};
const kj::byte LAYOUT_OWNER_FIRST[] = {'o', 'w', 'n', 'e', 'r', '-', 'f', 'i', 'r', 's', 't'};

ParsedHintKey parseLegacyHintKey(Bytes key) {
  KJ_REQUIRE(key.size() >= 10, "malformed hint key in the previous layout");
  size_t len = (size_t(key[0]) << 8) | key[1];
  KJ_REQUIRE(key.size() == 2 + len + 8, "malformed hint key in the previous layout");
  uint64_t id = 0;
  for (size_t i = 2 + len; i < key.size(); i++) id = (id << 8) | key[i];
  return ParsedHintKey{id, key.slice(2, 2 + len)};
}

std::string prefixEnd(std::string prefix) {
  // The smallest key greater than every key starting with `prefix` ("" = no bound).
  while (!prefix.empty() && uint8_t(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = char(uint8_t(prefix.back()) + 1);
  return prefix;
}

}  // namespace

HintStore::HintStore(GroupCommit& commits, const Limits& limits)
    : commits_(commits), limits_(limits) {
  open();
}

void HintStore::open() {
  auto& engine = commits_.engine();
  bool legacy = false;
  engine.read([&](ReadTransaction& txn) {
    layoutRecorded_ =
        txn.get(Table::META, kj::arrayPtr(LAYOUT_KEY, sizeof(LAYOUT_KEY))) != nullptr;
    txn.scan(Table::HINTS, nullptr, nullptr, [&](Bytes key, Bytes) {
      if (!layoutRecorded_) {
        legacy = true;
        return false;
      }
      auto parsed = parseHintKey(key);
      counts_[parsed.owner]++;
      partitionCounts_[decodeStorageKey(parsed.storageKey).partition]++;
      return true;
    });
  });
  if (!legacy) return;

  // Rewrite the previous layout's hints in one transaction, so that a crash leaves either all
  // of them or none rewritten. Only the keys are collected first (a rewritten key may sort
  // after the scan's position and must not be read as an old one); values are moved one by
  // one, and held back only in the (unlikely) case that a new key equals an old key not yet
  // moved. Directly on the engine, not through the group commit: nothing else can be writing
  // while the store opens, and the constructor must not return before it is done.
  std::map<uint64_t, uint64_t> counts;
  size_t moved = 0;
  engine.write([&](WriteTransaction& txn) {
    std::vector<std::string> keys;  // in byte order, as scanned
    txn.scan(Table::HINTS, nullptr, nullptr, [&](Bytes key, Bytes) {
      keys.emplace_back(key.asChars().begin(), key.size());
      return true;
    });
    std::vector<std::pair<std::string, kj::Array<kj::byte>>> heldBack;
    for (size_t i = 0; i < keys.size(); i++) {
      auto parsed = parseLegacyHintKey(bytesOf(keys[i]));
      auto newKey = hintKey(
          parsed.owner, std::string(parsed.storageKey.asChars().begin(), parsed.storageKey.size()));
      KJ_IF_MAYBE(value, txn.get(Table::HINTS, bytesOf(keys[i]))) {
        auto copy = kj::heapArray(*value);  // remove() may move the page the value is on
        txn.remove(Table::HINTS, bytesOf(keys[i]));
        if (std::binary_search(keys.begin() + ptrdiff_t(i + 1), keys.end(), newKey)) {
          heldBack.emplace_back(kj::mv(newKey), kj::mv(copy));
        } else {
          txn.put(Table::HINTS, bytesOf(newKey), copy);
        }
      }
      counts[parsed.owner]++;
      partitionCounts_[decodeStorageKey(parsed.storageKey).partition]++;
    }
    moved = keys.size();
    for (auto& [key, value] : heldBack) txn.put(Table::HINTS, bytesOf(key), value);
    txn.put(Table::META, kj::arrayPtr(LAYOUT_KEY, sizeof(LAYOUT_KEY)),
            kj::arrayPtr(LAYOUT_OWNER_FIRST, sizeof(LAYOUT_OWNER_FIRST)));
  });
  KJ_LOG(INFO, "hint store rewritten with each owner's hints together", moved, counts.size());
  counts_ = kj::mv(counts);
  layoutRecorded_ = true;
}

void HintStore::recordLayout(BatchTransaction& txn) {
  // With the first hint written in the current layout, say so: a later open must not take the
  // new keys for old ones. Until the batch commits, every hint write in it says so again.
  if (layoutRecorded_) return;
  txn.put(Table::META, kj::arrayPtr(LAYOUT_KEY, sizeof(LAYOUT_KEY)),
          kj::arrayPtr(LAYOUT_OWNER_FIRST, sizeof(LAYOUT_OWNER_FIRST)));
  txn.onCommit([this]() { layoutRecorded_ = true; });
}

void HintStore::counted(uint64_t ownerId, uint32_t partition) {
  counts_[ownerId]++;
  if (partitionCounts_[partition]++ == 0) {
    KJ_IF_MAYBE (listener, listener_) {
      (*listener)();
    }
  }
}

void HintStore::uncounted(uint64_t ownerId, uint32_t partition) {
  auto owner = counts_.find(ownerId);
  auto part = partitionCounts_.find(partition);
  KJ_ASSERT(owner != counts_.end() && owner->second > 0 && part != partitionCounts_.end() &&
                part->second > 0,
            "a stored hint was not counted", ownerId, partition);
  if (--owner->second == 0) counts_.erase(owner);
  if (--part->second == 0) {
    partitionCounts_.erase(part);
    KJ_IF_MAYBE (listener, listener_) {
      (*listener)();
    }
  }
}

kj::Promise<void> HintStore::storeHint(uint64_t ownerId, StorageKey key, Object object) {
  auto partition = key.partition;
  return commits_.write([this, ownerId, partition,
                         engineKey = hintKey(ownerId, encodeStorageKey(key)),
                         object = kj::mv(object)](BatchTransaction& txn) {
    auto merged = syncStored(txn, Table::HINTS, bytesOf(engineKey), object, limits_);
    if (!merged.changed) return;
    recordLayout(txn);
    if (!merged.existed) {
      txn.onCommit([this, ownerId, partition]() { counted(ownerId, partition); });
    }
  });
}

kj::Promise<void> HintStore::removeHint(const Hint& delivered) {
  return commits_.write([this, ownerId = delivered.ownerId,
                         engineKey = hintKey(delivered.ownerId, encodeStorageKey(delivered.key)),
                         partition = delivered.key.partition,
                         object = delivered.object](BatchTransaction& txn) {
    KJ_IF_MAYBE(bytes, txn.get(Table::HINTS, bytesOf(engineKey))) {
      if (objectFromBytes(*bytes, limits_) != object) return;  // changed since: it stays
      txn.remove(Table::HINTS, bytesOf(engineKey));
      txn.onCommit([this, ownerId, partition]() { uncounted(ownerId, partition); });
    }
  });
}

std::string HintStore::storedKey(uint64_t ownerId, const std::string& storageKey) {
  return hintKey(ownerId, storageKey);
}

HintStore::Hint HintStore::decodeStored(Bytes key, Bytes value, const Limits& limits) {
  auto parsed = parseHintKey(key);
  return Hint{parsed.owner, decodeStorageKey(parsed.storageKey), objectFromBytes(value, limits)};
}

HintStore::HintPage HintStore::hintsFor(uint64_t ownerId, const std::string& after,
                                        size_t max) const {
  HintPage page;
  page.next = after;
  page.end = true;
  auto prefix = ownerPrefix(ownerId);
  std::string begin = after.empty() ? prefix : hintKey(ownerId, after) + std::string(1, '\0');
  std::string end = prefixEnd(prefix);
  commits_.engine().read([&](ReadTransaction& txn) {
    txn.scan(Table::HINTS, bytesOf(begin), bytesOf(end), [&](Bytes key, Bytes value) {
      if (page.hints.size() >= max) {
        page.end = false;
        return false;
      }
      page.hints.push_back(decodeStored(key, value, limits_));
      page.next.assign(key.asChars().begin() + 8, key.size() - 8);
      return true;
    });
  });
  return page;
}

std::vector<HintBacklog> HintStore::hintBacklog() const {
  std::vector<HintBacklog> backlog;
  for (auto& [owner, count] : counts_) backlog.push_back(HintBacklog{owner, count});
  return backlog;
}

uint64_t HintStore::hintCount() const {
  uint64_t total = 0;
  for (auto& [owner, count] : counts_) total += count;
  return total;
}

std::vector<uint32_t> HintStore::hintedPartitions() const {
  std::vector<uint32_t> partitions;
  partitions.reserve(partitionCounts_.size());
  for (auto& [partition, count] : partitionCounts_) partitions.push_back(partition);
  return partitions;
}

void HintStore::mergeHeld(ReadTransaction& txn, const std::string& storageKey,
                          std::optional<Object>& into) const {
  for (auto& [owner, count] : counts_) {
    KJ_IF_MAYBE(bytes, txn.get(Table::HINTS, bytesOf(hintKey(owner, storageKey)))) {
      auto hinted = objectFromBytes(*bytes, limits_);
      if (!into) {
        into = kj::mv(hinted);
      } else if (into->kind == hinted.kind) {
        into = sync(*into, hinted);
      }
    }
  }
}

std::vector<std::pair<uint64_t, Object>> HintStore::held(ReadTransaction& txn,
                                                         const std::string& storageKey) const {
  std::vector<std::pair<uint64_t, Object>> out;
  for (auto& [owner, count] : counts_) {
    KJ_IF_MAYBE(bytes, txn.get(Table::HINTS, bytesOf(hintKey(owner, storageKey)))) {
      out.emplace_back(owner, objectFromBytes(*bytes, limits_));
    }
  }
  return out;
}

}  // namespace dynkv::storaged

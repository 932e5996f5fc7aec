#include "versioned-store.h"

#include <algorithm>
#include <kj/debug.h>

#include "codec.h"
#include "hash-trees.h"
#include "hint-store.h"
#include "merkle-tree.h"

namespace dynkv::storaged {

namespace {

Bytes bytesOf(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

// META's record of the counters this incarnation may have minted (coordinatePut).
const kj::byte COUNTER_LEASE_KEY[] = {'c', 'o', 'u', 'n', 't', 'e', 'r', '-', 'l', 'e', 'a', 's', 'e'};

// The encoded storage keys of a partition: [begin, end), end empty for the last one.
std::pair<std::string, std::string> partitionRange(uint32_t partition) {
  return {encodeStorageKey(StorageKey{partition, "", ""}),
          partition + 1 > 0xffff ? std::string()
                                 : encodeStorageKey(StorageKey{partition + 1, "", ""})};
}

}  // namespace

SyncedObject syncStored(WriteTransaction& txn, Table table, Bytes key, const Object& incoming,
                        const Limits& limits) {
  SyncedObject out;
  Object current;
  KJ_IF_MAYBE(bytes, txn.get(table, key)) {
    out.existed = true;
    current = objectFromBytes(*bytes, limits);
  }
  if (!current.empty() && !incoming.empty() && current.kind != incoming.kind) {
    kj::throwFatalException(KJ_EXCEPTION(FAILED, "namespace kind mismatch between the stored "
                                                 "object and the replicated one"));
  }
  out.object = sync(current, incoming);
  if (out.object == current) return out;  // nothing new: no write
  if (auto problem = checkStorable(out.object, limits)) {
    // Two valid replicas can merge past a limit (64 siblings each, say). Riak caps siblings
    // and warns; here the merge is refused and the stored object kept, so the key stays
    // readable and the sender's copy is not silently cut.
    kj::throwFatalException(KJ_EXCEPTION(FAILED, kj::str(problem->c_str())));
  }
  auto words = objectToWords(out.object);
  txn.put(table, key, words.asBytes());
  out.changed = true;
  return out;
}

VersionedStore::VersionedStore(GroupCommit& commits, const HintStore& hints, HashTrees& trees,
                               const Actor& self, const Limits& limits)
    : commits_(commits), hints_(hints), trees_(trees), self_(self), limits_(limits) {
  commits_.engine().read([&](ReadTransaction& txn) {
    KJ_IF_MAYBE(bytes, txn.get(Table::META, kj::arrayPtr(COUNTER_LEASE_KEY,
                                                         sizeof(COUNTER_LEASE_KEY)))) {
      KJ_REQUIRE(bytes->size() == 8, "corrupt counter lease in the data directory");
      for (auto b : *bytes) counterLease_ = (counterLease_ << 8) | b;
    }
  });
  // Anything up to the lease may have been minted before the restart.
  usedCounters_ = counterLease_;
}

std::optional<Object> VersionedStore::get(const StorageKey& key) {
  std::optional<Object> result;
  auto engineKey = encodeStorageKey(key);
  commits_.engine().read([&](ReadTransaction& txn) {
    KJ_IF_MAYBE(bytes, txn.get(Table::OBJECTS, bytesOf(engineKey))) {
      result = objectFromBytes(*bytes, limits_);
    }
    // Writes held here for an unreachable owner are part of what this node knows of the key.
    hints_.mergeHeld(txn, engineKey, result);
  });
  return result;
}

VersionedStore::HeldCopies VersionedStore::heldCopies(const StorageKey& key) {
  HeldCopies held;
  auto engineKey = encodeStorageKey(key);
  commits_.engine().read([&](ReadTransaction& txn) {
    KJ_IF_MAYBE(bytes, txn.get(Table::OBJECTS, bytesOf(engineKey))) {
      held.own = objectFromBytes(*bytes, limits_);
    }
    held.hinted = hints_.held(txn, engineKey);
  });
  return held;
}

kj::Promise<Object> VersionedStore::coordinatePut(StorageKey key, Versioning kind,
                                                  WriteContext context,
                                                  std::optional<std::string> value,
                                                  int64_t nowMicros, uint64_t writeId) {
  return commits_.write<Object>([this, engineKey = encodeStorageKey(key), kind,
                                 context = kj::mv(context), value = kj::mv(value), nowMicros,
                                 writeId](BatchTransaction& txn) {
    // Every refusal is decided before anything is written, so it fails this write alone.
    Object current;
    KJ_IF_MAYBE(bytes, txn.get(Table::OBJECTS, bytesOf(engineKey))) {
      current = objectFromBytes(*bytes, limits_);
    }
    if (!current.empty() && current.kind != kind) {
      kj::throwFatalException(KJ_EXCEPTION(FAILED, "namespace kind mismatch: the stored object is "
                                                   "last-write-wins, the write is vector-clock"));
    }
    auto result =
        dynkv::coordinatePut(current, self_, context, value, nowMicros, usedCounters_, writeId);
    if (auto problem = checkStorable(result, limits_)) {
      kj::throwFatalException(KJ_EXCEPTION(FAILED, kj::str(problem->c_str())));
    }
    storeMinted(txn, engineKey, result);
    return result;
  });
}

kj::Promise<bool> VersionedStore::retract(StorageKey key, Dot dot, int64_t nowMicros) {
  return commits_.write<bool>([this, engineKey = encodeStorageKey(key), dot,
                               nowMicros](BatchTransaction& txn) {
    Object current;
    KJ_IF_MAYBE(bytes, txn.get(Table::OBJECTS, bytesOf(engineKey))) {
      current = objectFromBytes(*bytes, limits_);
    }
    if (current.kind != Versioning::VECTOR_CLOCK) return false;
    auto result = dynkv::retract(current, dot, self_, nowMicros, usedCounters_);
    if (result == current) return false;
    storeMinted(txn, engineKey, result);
    return true;
  });
}

void VersionedStore::storeMinted(BatchTransaction& txn, const std::string& engineKey,
                                 const Object& result) {
  uint64_t counter = result.vv.counter(self_);
  usedCounters_ = std::max(usedCounters_, counter);
  if (counter >= counterLease_) {
    // Leased in the write's own transaction: it is on disk before the dot is acknowledged.
    uint64_t lease = counter + COUNTER_LEASE;
    kj::byte bytes[8];
    for (int i = 0; i < 8; i++) bytes[i] = kj::byte(lease >> (56 - 8 * i));
    txn.put(Table::META, kj::arrayPtr(COUNTER_LEASE_KEY, sizeof(COUNTER_LEASE_KEY)),
            kj::arrayPtr(bytes, 8));
    txn.onCommit([this, lease]() { counterLease_ = std::max(counterLease_, lease); });
  }
  auto words = objectToWords(result);
  txn.put(Table::OBJECTS, bytesOf(engineKey), words.asBytes());
  trees_.written(txn, engineKey, result);
}

kj::Promise<void> VersionedStore::replicate(StorageKey key, Object object) {
  return syncEncoded(encodeStorageKey(key), kj::mv(object)).ignoreResult();
}

kj::Promise<Object> VersionedStore::syncEncoded(std::string storageKey, Object object) {
  return commits_.write<Object>([this, storageKey = kj::mv(storageKey),
                                 object = kj::mv(object)](BatchTransaction& txn) {
    auto merged = syncStored(txn, Table::OBJECTS, bytesOf(storageKey), object, limits_);
    if (merged.changed) trees_.written(txn, storageKey, merged.object);
    return kj::mv(merged.object);
  });
}

std::vector<std::optional<Object>> VersionedStore::ownCopies(
    const std::vector<std::string>& storageKeys) {
  std::vector<std::optional<Object>> out(storageKeys.size());
  commits_.engine().read([&](ReadTransaction& txn) {
    for (size_t i = 0; i < storageKeys.size(); i++) {
      KJ_IF_MAYBE(bytes, txn.get(Table::OBJECTS, bytesOf(storageKeys[i]))) {
        out[i] = objectFromBytes(*bytes, limits_);
      }
    }
  });
  return out;
}

kj::Promise<bool> VersionedStore::reap(std::string storageKey, uint64_t digest) {
  return commits_.write<bool>([this, storageKey = kj::mv(storageKey),
                               digest](BatchTransaction& txn) {
    KJ_IF_MAYBE(bytes, txn.get(Table::OBJECTS, bytesOf(storageKey))) {
      auto object = objectFromBytes(*bytes, limits_);
      if (!onlyTombstones(object) || causalDigest(object) != digest) return false;
      txn.remove(Table::OBJECTS, bytesOf(storageKey));
      trees_.written(txn, storageKey, std::nullopt);
      return true;
    }
    return false;
  });
}

kj::Promise<size_t> VersionedStore::dropPartition(uint32_t partition, uint64_t expectedRoot) {
  return commits_.write<size_t>([this, partition, expectedRoot](BatchTransaction& txn) {
    // What the partition holds in this transaction (earlier writes of the batch included), as
    // a tree: the in-memory one follows only what is committed.
    MerkleTree now;
    std::vector<std::string> keys;
    auto [begin, end] = partitionRange(partition);
    txn.scan(Table::OBJECTS, bytesOf(begin), bytesOf(end), [&](Bytes key, Bytes value) {
      auto storageKey = decodeStorageKey(key);
      now.update(storageKey.ns, storageKey.key, std::nullopt,
                 causalDigest(objectFromBytes(value, limits_)));
      keys.emplace_back(reinterpret_cast<const char*>(key.begin()), key.size());
      return true;
    });
    if (now.root() != expectedRoot) return size_t(0);
    for (auto& key : keys) {
      txn.remove(Table::OBJECTS, bytesOf(key));
      trees_.written(txn, key, std::nullopt);
    }
    return keys.size();
  });
}

VersionedStore::PartitionChunk VersionedStore::scanPartition(uint32_t partition,
                                                             const std::string& after,
                                                             size_t maxBytes) {
  PartitionChunk chunk;
  // Not a structured binding: C++17 (and clang) does not let the lambda below capture one.
  auto range = partitionRange(partition);
  const std::string& first = range.first;
  const std::string& end = range.second;
  std::string begin = after.empty() ? first : after + std::string(1, '\0');  // the next key after
  size_t bytes = 0;
  chunk.done = true;
  commits_.engine().read([&](ReadTransaction& txn) {
    txn.scan(Table::OBJECTS, bytesOf(begin), bytesOf(end), [&](Bytes key, Bytes value) {
      if (bytes >= maxBytes) {
        chunk.done = false;
        return false;
      }
      chunk.entries.emplace_back(decodeStorageKey(key), objectFromBytes(value, limits_));
      chunk.next.assign(reinterpret_cast<const char*>(key.begin()), key.size());
      bytes += key.size() + value.size();
      return true;
    });
  });
  if (chunk.entries.empty()) chunk.next = after;
  return chunk;
}

}  // namespace dynkv::storaged

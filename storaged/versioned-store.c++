#include "versioned-store.h"

#include <kj/debug.h>

#include "codec.h"
#include "hint-store.h"

namespace dynkv::storaged {

namespace {

Bytes bytesOf(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
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
  auto words = objectToWords(out.object);
  txn.put(table, key, words.asBytes());
  out.changed = true;
  return out;
}

VersionedStore::VersionedStore(GroupCommit& commits, const HintStore& hints, const Actor& self,
                               const Limits& limits)
    : commits_(commits), hints_(hints), self_(self), limits_(limits) {}

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

kj::Promise<Object> VersionedStore::coordinatePut(StorageKey key, Versioning kind,
                                                  VersionVector context,
                                                  std::optional<std::string> value,
                                                  int64_t nowMicros) {
  return commits_.write<Object>([this, engineKey = encodeStorageKey(key), kind,
                                 context = kj::mv(context), value = kj::mv(value),
                                 nowMicros](BatchTransaction& txn) {
    // Every refusal is decided before anything is written, so it fails this write alone.
    Object current;
    KJ_IF_MAYBE(bytes, txn.get(Table::OBJECTS, bytesOf(engineKey))) {
      current = objectFromBytes(*bytes, limits_);
    }
    if (!current.empty() && current.kind != kind) {
      kj::throwFatalException(KJ_EXCEPTION(FAILED, "namespace kind mismatch: the stored object is "
                                                   "last-write-wins, the write is vector-clock"));
    }
    auto result = dynkv::coordinatePut(current, self_, context, value, nowMicros);
    if (result.siblings.size() > Limits::MAX_SIBLINGS) {
      kj::throwFatalException(KJ_EXCEPTION(
          FAILED, kj::str("too many siblings: the write would leave ", result.siblings.size(),
                          " concurrent versions; the limit is ", Limits::MAX_SIBLINGS,
                          ". Read the key, resolve and write with its context.")));
    }
    auto words = objectToWords(result);
    txn.put(Table::OBJECTS, bytesOf(engineKey), words.asBytes());
    return result;
  });
}

kj::Promise<void> VersionedStore::replicate(StorageKey key, Object object) {
  return commits_.write([this, engineKey = encodeStorageKey(key),
                         object = kj::mv(object)](BatchTransaction& txn) {
    syncStored(txn, Table::OBJECTS, bytesOf(engineKey), object, limits_);
  });
}

VersionedStore::PartitionChunk VersionedStore::scanPartition(uint32_t partition,
                                                             const std::string& after,
                                                             size_t maxBytes) {
  PartitionChunk chunk;
  std::string begin = after.empty() ? encodeStorageKey(StorageKey{partition, "", ""})
                                    : after + std::string(1, '\0');  // the next key after
  std::string end = partition + 1 > 0xffff ? std::string()
                                           : encodeStorageKey(StorageKey{partition + 1, "", ""});
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

#include "store.h"

#include <algorithm>
#include <kj/debug.h>

#include "codec.h"

namespace dynkv::storaged {

namespace {

kj::ArrayPtr<const kj::byte> bytesOf(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

kj::ArrayPtr<const kj::byte> bytesOf(const kj::Array<capnp::word>& words) {
  return words.asBytes();
}

// Hint keys are [owner id: 8 bytes BE][storage key]: each owner's hints are one contiguous
// range in storage-key order, so handoff reads one owner from a cursor without passing over
// anyone else's backlog. A read of one key looks its hints up owner by owner (hintCounts_
// knows which owners have any; usually none).
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
  kj::ArrayPtr<const kj::byte> storageKey;
};

ParsedHintKey parseHintKey(kj::ArrayPtr<const kj::byte> key) {
  KJ_REQUIRE(key.size() > 8, "malformed hint key");
  uint64_t id = 0;
  for (size_t i = 0; i < 8; i++) id = (id << 8) | key[i];
  return ParsedHintKey{id, key.slice(8, key.size())};
}

// Before per-owner cursors, hint keys were [storage key length: 2 bytes BE][storage key]
// [owner id: 8 bytes BE]. A data directory whose META table lacks HINT_LAYOUT_KEY may hold
// hints in that layout; once any hint is written in the current one, the key is set.
const kj::byte HINT_LAYOUT_KEY[] = {'h', 'i', 'n', 't', '-', 'l', 'a', 'y', 'o', 'u', 't'};
const kj::byte HINT_LAYOUT_OWNER_FIRST[] = {'o', 'w', 'n', 'e', 'r', '-', 'f', 'i', 'r', 's', 't'};

ParsedHintKey parseLegacyHintKey(kj::ArrayPtr<const kj::byte> key) {
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

std::string encodeStorageKey(const StorageKey& key) {
  KJ_REQUIRE(key.partition <= 0xffff, "partition out of range", key.partition);
  KJ_REQUIRE(key.ns.size() <= Limits::MAX_NAMESPACE_BYTES, "namespace too long");
  std::string out;
  out.reserve(3 + key.ns.size() + key.key.size());
  out.push_back(char(key.partition >> 8));
  out.push_back(char(key.partition & 0xff));
  out.push_back(char(key.ns.size()));
  out += key.ns;
  out += key.key;
  return out;
}

StorageKey decodeStorageKey(kj::ArrayPtr<const kj::byte> bytes) {
  KJ_REQUIRE(bytes.size() >= 3, "malformed storage key");
  StorageKey key;
  key.partition = (uint32_t(bytes[0]) << 8) | bytes[1];
  size_t nsLen = bytes[2];
  KJ_REQUIRE(bytes.size() >= 3 + nsLen, "malformed storage key");
  key.ns.assign(reinterpret_cast<const char*>(bytes.begin() + 3), nsLen);
  key.key.assign(reinterpret_cast<const char*>(bytes.begin() + 3 + nsLen),
                 bytes.size() - 3 - nsLen);
  return key;
}

struct Store::PendingWrite {
  enum class Op { COORDINATE, REPLICATE, HINT, REMOVE_HINT };
  Op op;
  Table table;
  std::string engineKey;
  Versioning kind = Versioning::VECTOR_CLOCK;
  VersionVector context;
  std::optional<std::string> value;
  int64_t nowMicros = 0;
  uint64_t hintOwner = 0;  // HINT, REMOVE_HINT
  Object object;           // REPLICATE, HINT: what to merge in; REMOVE_HINT: what was delivered
  kj::Own<kj::PromiseFulfiller<Object>> fulfiller;
  kj::Maybe<kj::Exception> refusal;  // set when this write alone is refused
  Object result;
};

Store::Store(StorageEngine& engine, const Actor& self, const Limits& limits, kj::Timer& timer)
    : engine_(engine), self_(self), limits_(limits), timer_(timer) {
  openHints();
  if (engine_.durability() == Durability::BUFFERED) {
    flusher_ = std::thread([this]() { flusherLoop(); });
  }
}

Store::~Store() noexcept(false) {
  if (flusher_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(flusherMutex_);
      stopFlusher_ = true;
    }
    flusherWake_.notify_all();
    flusher_.join();
  }
}

void Store::openHints() {
  bool legacy = false;
  engine_.read([&](ReadTransaction& txn) {
    hintLayoutRecorded_ =
        txn.get(Table::META, kj::arrayPtr(HINT_LAYOUT_KEY, sizeof(HINT_LAYOUT_KEY))) != nullptr;
    txn.scan(Table::HINTS, nullptr, nullptr, [&](Bytes key, Bytes) {
      if (!hintLayoutRecorded_) {
        legacy = true;
        return false;
      }
      hintCounts_[parseHintKey(key).owner]++;
      return true;
    });
  });
  if (!legacy) return;

  // Rewrite the previous layout's hints in one transaction, so that a crash leaves either all
  // of them or none rewritten. Only the keys are collected first (a rewritten key may sort
  // after the scan's position and must not be read as an old one); values are moved one by
  // one, and held back only in the (unlikely) case that a new key equals an old key not yet
  // moved.
  std::map<uint64_t, uint64_t> counts;
  size_t moved = 0;
  engine_.write([&](WriteTransaction& txn) {
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
    }
    moved = keys.size();
    for (auto& [key, value] : heldBack) txn.put(Table::HINTS, bytesOf(key), value);
    txn.put(Table::META, kj::arrayPtr(HINT_LAYOUT_KEY, sizeof(HINT_LAYOUT_KEY)),
            kj::arrayPtr(HINT_LAYOUT_OWNER_FIRST, sizeof(HINT_LAYOUT_OWNER_FIRST)));
  });
  KJ_LOG(INFO, "hint store rewritten with each owner's hints together", moved, counts.size());
  hintCounts_ = kj::mv(counts);
  hintLayoutRecorded_ = true;
}

void Store::flusherLoop() {
  std::unique_lock<std::mutex> lock(flusherMutex_);
  while (!stopFlusher_) {
    flusherWake_.wait_for(lock, BUFFERED_FLUSH_INTERVAL, [this]() { return stopFlusher_; });
    if (dirty_.exchange(false) || stopFlusher_) {
      lock.unlock();
      KJ_IF_MAYBE(e, kj::runCatchingExceptions([this]() { engine_.flush(); })) {
        KJ_LOG(ERROR, "buffered flush failed; will retry", *e);
        dirty_ = true;
      }
      lock.lock();
    }
  }
}

std::optional<Object> Store::get(const StorageKey& key) {
  std::optional<Object> result;
  auto engineKey = encodeStorageKey(key);
  engine_.read([&](ReadTransaction& txn) {
    KJ_IF_MAYBE(bytes, txn.get(Table::OBJECTS, bytesOf(engineKey))) {
      result = objectFromBytes(*bytes, limits_);
    }
    // Writes held here for an unreachable owner are part of what this node knows of the key.
    for (auto& [owner, count] : hintCounts_) {
      KJ_IF_MAYBE(bytes, txn.get(Table::HINTS, bytesOf(hintKey(owner, engineKey)))) {
        auto hinted = objectFromBytes(*bytes, limits_);
        if (!result) {
          result = kj::mv(hinted);
        } else if (result->kind == hinted.kind) {
          result = sync(*result, hinted);
        }
      }
    }
  });
  return result;
}

kj::Promise<Object> Store::coordinatePut(StorageKey key, Versioning kind,
                                         VersionVector context, std::optional<std::string> value,
                                         int64_t nowMicros) {
  auto write = kj::heap<PendingWrite>();
  write->op = PendingWrite::Op::COORDINATE;
  write->table = Table::OBJECTS;
  write->engineKey = encodeStorageKey(key);
  write->kind = kind;
  write->context = kj::mv(context);
  write->value = kj::mv(value);
  write->nowMicros = nowMicros;
  return enqueue(kj::mv(write));
}

kj::Promise<void> Store::replicate(StorageKey key, Object object) {
  auto write = kj::heap<PendingWrite>();
  write->op = PendingWrite::Op::REPLICATE;
  write->table = Table::OBJECTS;
  write->engineKey = encodeStorageKey(key);
  write->object = kj::mv(object);
  return enqueue(kj::mv(write)).ignoreResult();
}

kj::Promise<void> Store::storeHint(uint64_t ownerId, StorageKey key, Object object) {
  auto write = kj::heap<PendingWrite>();
  write->op = PendingWrite::Op::HINT;
  write->table = Table::HINTS;
  write->engineKey = hintKey(ownerId, encodeStorageKey(key));
  write->hintOwner = ownerId;
  write->object = kj::mv(object);
  return enqueue(kj::mv(write)).ignoreResult();
}

kj::Promise<void> Store::removeHint(const Hint& delivered) {
  auto write = kj::heap<PendingWrite>();
  write->op = PendingWrite::Op::REMOVE_HINT;
  write->table = Table::HINTS;
  write->engineKey = hintKey(delivered.ownerId, encodeStorageKey(delivered.key));
  write->hintOwner = delivered.ownerId;
  write->object = delivered.object;
  return enqueue(kj::mv(write)).ignoreResult();
}

Store::HintPage Store::hintsFor(uint64_t ownerId, const std::string& after, size_t max) {
  HintPage page;
  page.next = after;
  page.end = true;
  auto prefix = ownerPrefix(ownerId);
  std::string begin = after.empty() ? prefix : hintKey(ownerId, after) + std::string(1, '\0');
  std::string end = prefixEnd(prefix);
  engine_.read([&](ReadTransaction& txn) {
    txn.scan(Table::HINTS, bytesOf(begin), bytesOf(end), [&](Bytes key, Bytes value) {
      if (page.hints.size() >= max) {
        page.end = false;
        return false;
      }
      auto parsed = parseHintKey(key);
      page.hints.push_back(
          Hint{ownerId, decodeStorageKey(parsed.storageKey), objectFromBytes(value, limits_)});
      page.next.assign(parsed.storageKey.asChars().begin(), parsed.storageKey.size());
      return true;
    });
  });
  return page;
}

std::vector<HintBacklog> Store::hintBacklog() const {
  std::vector<HintBacklog> backlog;
  for (auto& [owner, count] : hintCounts_) backlog.push_back(HintBacklog{owner, count});
  return backlog;
}

uint64_t Store::hintCount() const {
  uint64_t total = 0;
  for (auto& [owner, count] : hintCounts_) total += count;
  return total;
}

Store::PartitionChunk Store::scanPartition(uint32_t partition, const std::string& after,
                                           size_t maxBytes) {
  PartitionChunk chunk;
  std::string begin = after.empty() ? encodeStorageKey(StorageKey{partition, "", ""})
                                    : after + std::string(1, '\0');  // the next key after
  std::string end = partition + 1 > 0xffff ? std::string()
                                           : encodeStorageKey(StorageKey{partition + 1, "", ""});
  size_t bytes = 0;
  chunk.done = true;
  engine_.read([&](ReadTransaction& txn) {
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

kj::Promise<Object> Store::enqueue(kj::Own<PendingWrite> write) {
  auto paf = kj::newPromiseAndFulfiller<Object>();
  write->fulfiller = kj::mv(paf.fulfiller);
  pending_.push_back(kj::mv(write));
  if (!flushScheduled_) {
    // Group commit: writes arriving in this turn of the event loop share one transaction.
    flushScheduled_ = true;
    batchTask_ = kj::evalLater([this]() { commitBatch(); }).eagerlyEvaluate([](kj::Exception&& e) {
      KJ_LOG(ERROR, "write batch failed", e);
    });
  }
  return kj::mv(paf.promise);
}

void Store::commitBatch() {
  flushScheduled_ = false;
  auto batch = kj::mv(pending_);
  pending_.clear();

  // What the batch does to the hint store, applied to hintCounts_ only once it is committed.
  std::map<uint64_t, int64_t> hintDeltas;
  bool recordsHintLayout = false;
  auto failure = kj::runCatchingExceptions([&]() {
    engine_.write([&](WriteTransaction& txn) {
      for (auto& w : batch) {
        w->refusal = nullptr;
        bool stored = false;
        Object current;
        KJ_IF_MAYBE(bytes, txn.get(w->table, bytesOf(w->engineKey))) {
          stored = true;
          current = objectFromBytes(*bytes, limits_);
        }
        bool kindsDiffer = !current.empty() && !w->object.empty() && current.kind != w->object.kind;
        switch (w->op) {
          case PendingWrite::Op::COORDINATE:
            if (!current.empty() && current.kind != w->kind) {
              w->refusal = KJ_EXCEPTION(FAILED, "namespace kind mismatch: the stored object is "
                                                "last-write-wins, the write is vector-clock");
              continue;
            }
            w->result = dynkv::coordinatePut(current, self_, w->context, w->value, w->nowMicros);
            if (w->result.siblings.size() > Limits::MAX_SIBLINGS) {
              w->refusal = KJ_EXCEPTION(
                  FAILED, kj::str("too many siblings: the write would leave ",
                                  w->result.siblings.size(), " concurrent versions; the limit is ",
                                  Limits::MAX_SIBLINGS, ". Read the key, resolve and write with "
                                  "its context."));
              continue;
            }
            break;
          case PendingWrite::Op::REPLICATE:
          case PendingWrite::Op::HINT:
            if (kindsDiffer) {
              w->refusal = KJ_EXCEPTION(FAILED, "namespace kind mismatch between the stored "
                                                "object and the replicated one");
              continue;
            }
            w->result = sync(current, w->object);
            if (w->result == current) continue;  // nothing new: no write
            break;
          case PendingWrite::Op::REMOVE_HINT:
            if (stored && current == w->object) {
              txn.remove(w->table, bytesOf(w->engineKey));
              hintDeltas[w->hintOwner]--;
            }
            continue;
        }
        auto words = objectToWords(w->result);
        txn.put(w->table, bytesOf(w->engineKey), bytesOf(words));
        if (w->op == PendingWrite::Op::HINT) {
          if (!stored) hintDeltas[w->hintOwner]++;
          if (!hintLayoutRecorded_ && !recordsHintLayout) {
            txn.put(Table::META, kj::arrayPtr(HINT_LAYOUT_KEY, sizeof(HINT_LAYOUT_KEY)),
                    kj::arrayPtr(HINT_LAYOUT_OWNER_FIRST, sizeof(HINT_LAYOUT_OWNER_FIRST)));
            recordsHintLayout = true;
          }
        }
      }
    });
  });

  KJ_IF_MAYBE(e, failure) {
    for (auto& w : batch) w->fulfiller->reject(kj::cp(*e));
    return;
  }
  dirty_ = true;
  if (recordsHintLayout) hintLayoutRecorded_ = true;
  for (auto& [owner, delta] : hintDeltas) {
    auto& count = hintCounts_[owner];
    count = uint64_t(int64_t(count) + delta);
    if (count == 0) hintCounts_.erase(owner);
  }
  for (auto& w : batch) {
    KJ_IF_MAYBE(refusal, w->refusal) {
      w->fulfiller->reject(kj::mv(*refusal));
    } else {
      w->fulfiller->fulfill(kj::mv(w->result));
    }
  }
}


}  // namespace dynkv::storaged
